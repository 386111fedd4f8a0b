"""The IR graph: nodes in topological order, the first one the network input."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from snnhw.errors import InvalidFileError
from snnhw.ir.nodes import (
    LIF, MAX_SYNAPSE_EXP, OVERFLOW_RULES, POOL_MODES, RESET_MODES, RESET_TIMINGS, ROUNDING_RULES,
    Conv2d, Dense, Flatten, Input, Node, PlasticDense, Pool2d, StateFormat,
)
from snnhw.ir import nodes as _nodes

KINDS = ("float", "fixed")
MAX_STATE_BITS = 48  # wide enough for every target
EXACT_BITS = 52      # a register times a decay stays below 2^53: exact in the emulator's float64


@dataclass
class Graph:
    """A spiking network. ``kind`` is ``float`` (from a frontend) or ``fixed`` (after quantization).

    dt: seconds per timestep (informational: used by reports and NIR conversion).
    target: the target the fixed IR was compiled for (None for the float IR).
    """

    nodes: list
    kind: str = "float"
    dt: float = 1e-3
    target: str | None = None
    meta: dict = field(default_factory=dict)

    @property
    def input(self) -> Input:
        return self.nodes[0]

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def shape_of(self, name: str) -> tuple:
        return tuple(self.node(name).shape)

    @property
    def neurons(self) -> list:
        return [n for n in self.nodes if isinstance(n, LIF)]

    @property
    def output(self) -> LIF:
        """The last neuron population: the network's output layer."""
        return self.neurons[-1]

    def feeding_synapse(self, name: str):
        """The Dense/Conv2d whose output reaches ``name`` through pooling/flatten (None if the input
        does), and the factor average pooling applies on the way (1/window per avg pool)."""
        factor = 1.0
        n = self.node(name)
        while isinstance(n, (Pool2d, Flatten)):
            if isinstance(n, Pool2d) and n.mode == "avg":
                factor /= n.kernel[0] * n.kernel[1]
            n = self.node(n.input)
        return (n if isinstance(n, (Dense, Conv2d)) else None), factor

    def synapse_bias(self, pop: LIF) -> np.ndarray:
        """Biases of the synapses feeding ``pop`` (its dense/conv and its recurrent dense), per neuron,
        in state units (``bias << input_shift``, each path also shifted by its synapse exponent:
        ``LIF.rec_weight_exp``); fixed IR only."""
        bias = np.zeros(pop.shape, np.int64)
        src = self.node(pop.input)
        shift, e = pop.format.input_shift, pop.rec_weight_exp
        if isinstance(src, (Dense, Conv2d)) and src.bias is not None:
            b = src.bias.astype(np.int64)
            bias = bias + ((b.reshape(-1, 1, 1) if isinstance(src, Conv2d) else b) << (shift + max(0, -e)))
        if pop.rec_bias is not None:
            bias = bias + (pop.rec_bias.astype(np.int64).reshape(pop.shape) << (shift + max(0, e)))
        return bias

    def validate(self) -> "Graph":
        """Check structure, shapes, enums and parameter types; raise InvalidFileError on any defect."""
        _validate(self)
        return self


def _fail(msg: str):
    raise InvalidFileError(f"invalid IR: {msg}")


def _check_format(fmt, where: str):
    if not isinstance(fmt, StateFormat):
        _fail(f"{where}: missing register format")
    if not (2 <= fmt.bits <= MAX_STATE_BITS):
        _fail(f"{where}: {fmt.bits} bits is outside 2..{MAX_STATE_BITS}")
    if fmt.overflow not in OVERFLOW_RULES:
        _fail(f"{where}: unknown overflow rule {fmt.overflow!r} (one of {', '.join(OVERFLOW_RULES)})")


def _check_array(arr, where: str, fixed: bool, shapes: tuple):
    if not isinstance(arr, np.ndarray):
        _fail(f"{where} is not an array")
    if fixed and not np.issubdtype(arr.dtype, np.integer):
        _fail(f"{where} must be integer in the fixed IR, got {arr.dtype}")
    if not fixed:
        if not np.issubdtype(arr.dtype, np.floating):
            _fail(f"{where} must be float in the float IR, got {arr.dtype}")
        if not np.all(np.isfinite(arr)):
            _fail(f"{where} contains NaN or Inf")
    if shapes and tuple(arr.shape) not in shapes:
        _fail(f"{where} has shape {tuple(arr.shape)}, expected one of {list(shapes)}")


def _validate(g: Graph):
    if g.kind not in KINDS:
        _fail(f"unknown kind {g.kind!r}")
    fixed = g.kind == "fixed"
    if not g.nodes or not isinstance(g.nodes[0], Input):
        _fail("the first node must be the Input")
    if not (isinstance(g.dt, float) and np.isfinite(g.dt) and g.dt > 0):
        _fail(f"dt must be a positive number of seconds, got {g.dt!r}")
    shapes: dict = {}
    for i, n in enumerate(g.nodes):
        where = f"node {n.name!r}" if isinstance(getattr(n, "name", None), str) else f"node #{i}"
        if not isinstance(getattr(n, "name", None), str) or not n.name:
            _fail(f"{where} has no name")
        if n.name in shapes:
            _fail(f"duplicate node name {n.name!r}")
        if isinstance(n, Input):
            if i != 0:
                _fail(f"{where}: only one Input, first")
            if not n.shape or any((not isinstance(d, int)) or d <= 0 for d in n.shape):
                _fail(f"{where}: shape {n.shape} must be positive integers")
            if fixed and not (1 <= n.bits <= 32):
                _fail(f"{where}: fixed IR input bits {n.bits} outside 1..32")
            if not (np.isfinite(n.scale) and n.scale > 0):
                _fail(f"{where}: scale must be positive")
            shapes[n.name] = tuple(n.shape)
            continue
        if n.input not in shapes:
            _fail(f"{where} reads {n.input!r}, which is not an earlier node")
        in_shape = shapes[n.input]
        if isinstance(n, Dense):
            _check_array(n.weight, f"{where} weight", fixed, ())
            if n.weight.ndim != 2 or in_shape != (n.weight.shape[1],):
                _fail(f"{where}: weight {n.weight.shape} does not fit input shape {in_shape}")
            if n.bias is not None:
                _check_array(n.bias, f"{where} bias", fixed, ((n.weight.shape[0],),))
            _check_synapse(n, where, fixed)
            if isinstance(n, PlasticDense):
                _check_plastic(g, n, where, fixed)
        elif isinstance(n, Conv2d):
            _check_array(n.weight, f"{where} weight", fixed, ())
            if tuple(n.in_shape) != in_shape or len(in_shape) != 3 or n.weight.ndim != 4:
                _fail(f"{where}: in_shape {n.in_shape} does not match input {in_shape}")
            if n.groups < 1 or in_shape[0] % n.groups or n.weight.shape[1] * n.groups != in_shape[0] \
                    or n.weight.shape[0] % n.groups:
                _fail(f"{where}: weight {n.weight.shape} and groups {n.groups} do not fit {in_shape[0]} input channels")
            for k, v in (("stride", n.stride), ("dilation", n.dilation)):
                if len(v) != 2 or min(v) < 1:
                    _fail(f"{where}: {k} {v} must be two positive integers")
            if len(n.padding) != 2 or min(n.padding) < 0:
                _fail(f"{where}: padding {n.padding} must be two non-negative integers")
            if min(n.shape) < 1:
                _fail(f"{where}: output shape {n.shape} is empty")
            if n.bias is not None:
                _check_array(n.bias, f"{where} bias", fixed, ((n.weight.shape[0],),))
            _check_synapse(n, where, fixed)
        elif isinstance(n, Pool2d):
            if tuple(n.in_shape) != in_shape or len(in_shape) != 3:
                _fail(f"{where}: in_shape {n.in_shape} does not match input {in_shape}")
            if n.mode not in POOL_MODES or (fixed and n.mode == "avg"):
                _fail(f"{where}: pool mode {n.mode!r} not allowed in the {g.kind} IR")
            if min(n.kernel) < 1 or min(n.stride) < 1 or min(n.shape) < 1:
                _fail(f"{where}: kernel {n.kernel} / stride {n.stride} do not fit {in_shape}")
        elif isinstance(n, Flatten):
            if tuple(n.in_shape) != in_shape:
                _fail(f"{where}: in_shape {n.in_shape} does not match input {in_shape}")
        elif isinstance(n, LIF):
            _check_lif(n, in_shape, where, fixed)
        else:
            _fail(f"{where}: unknown node type {type(n).__name__}")
        shapes[n.name] = tuple(n.shape)
    if not g.neurons:
        _fail("the network has no neuron population")


def _check_synapse(n, where, fixed):
    if not isinstance(n.delay, int) or not (0 <= n.delay <= 1024):
        _fail(f"{where}: delay {n.delay!r} outside 0..1024 steps")
    if fixed:
        _check_format(n.acc, f"{where} accumulator")


def _check_plastic(g: Graph, n: PlasticDense, where: str, fixed: bool):
    """A plastic synapse: binary pre spikes, feeding its ``post`` population directly, a valid rule."""
    consumers = [m for m in g.nodes if getattr(m, "input", None) == n.name]
    if len(consumers) != 1 or not isinstance(consumers[0], LIF) or consumers[0].name != n.post:
        _fail(f"{where}: a plastic synapse must feed exactly its post population {n.post!r} directly")
    if n.bias is not None:
        _fail(f"{where}: a plastic synapse has no bias")
    src = g.node(n.input)
    if fixed and not (isinstance(src, LIF) or (isinstance(src, Input) and src.bits == 1)):
        _fail(f"{where}: a plastic synapse needs binary spikes as input (a population or a 1-bit input)")
    if not (np.isfinite(n.w_min) and np.isfinite(n.w_max) and n.w_min <= n.w_max):
        _fail(f"{where}: weight bounds w_min {n.w_min} <= w_max {n.w_max} required")
    if fixed and (int(n.w_min) != n.w_min or int(n.w_max) != n.w_max or
                  max(abs(int(n.w_min)), abs(int(n.w_max))) > (1 << (_nodes.FACTOR_BITS["w"] - 1))):
        _fail(f"{where}: weight bounds must be integers within the 9-bit learning weight range")
    r = n.rule
    if not isinstance(r, _nodes.LearningRule):
        _fail(f"{where}: a plastic synapse needs a learning rule")
    if not isinstance(r.t_epoch, int) or not (1 <= r.t_epoch <= 64):
        _fail(f"{where}: t_epoch {r.t_epoch!r} outside 1..64 steps")
    if r.rounding not in _nodes.WEIGHT_ROUNDINGS:
        _fail(f"{where}: rounding {r.rounding!r} not one of {_nodes.WEIGHT_ROUNDINGS}")
    top = (1 << _nodes.TRACE_BITS) - 1
    for name in _nodes.TRACE_NAMES:
        t = r.trace(name)
        if not (isinstance(t, _nodes.Trace) and 0 <= t.impulse <= top and 0 <= t.decay <= 1 << _nodes.TRACE_DECAY_BITS):
            _fail(f"{where}: trace {name} needs impulse 0..{top} and decay 0..{1 << _nodes.TRACE_DECAY_BITS}")
    if not r.dw:
        _fail(f"{where}: the learning rule has no products")
    for p in r.dw:
        ok = isinstance(p, _nodes.Product) and -8 <= p.mantissa <= 7 and -7 <= p.exponent <= 8 \
            and p.dependency in _nodes.DEPENDENCIES
        ok = ok and all(len(f) == 2 and f[0] in _nodes.FACTOR_VARS and isinstance(f[1], int) and abs(f[1]) < 1 << 16
                        for f in p.factors)
        if not ok:
            _fail(f"{where}: bad product {p!r} (mantissa -8..7, exponent -7..8, dependency one of "
                  f"{_nodes.DEPENDENCIES}, factors (var, int const) with var one of {_nodes.FACTOR_VARS})")


def _check_lif(n: LIF, in_shape, where, fixed):
    if fixed:
        f = n.format
        if f is None:
            _fail(f"{where}: fixed IR population without a format")
        if not (1 <= f.decay_bits <= 16) or f.decay_rounding not in ROUNDING_RULES:
            _fail(f"{where}: decay_bits {f.decay_bits} / rounding {f.decay_rounding!r} invalid")
        if not (0 <= f.input_shift <= 16):
            _fail(f"{where}: input_shift {f.input_shift} outside 0..16")
        _check_format(f.current, f"{where} current")
        _check_format(f.voltage, f"{where} voltage")
        if max(f.current.bits, f.voltage.bits) + f.decay_bits > EXACT_BITS:
            _fail(f"{where}: register bits + decay_bits must not exceed {EXACT_BITS} (exact arithmetic)")
        if not (np.isfinite(f.state_scale) and f.state_scale > 0):
            _fail(f"{where}: state_scale must be positive")
    elif n.format is not None:
        _fail(f"{where}: float IR population with a fixed-point format")
    if tuple(n.shape) != in_shape:
        _fail(f"{where}: shape {n.shape} does not match its input {in_shape}")
    if n.reset_mode not in RESET_MODES:
        _fail(f"{where}: reset_mode {n.reset_mode!r} not one of {RESET_MODES}")
    if n.reset_timing not in RESET_TIMINGS:
        _fail(f"{where}: reset_timing {n.reset_timing!r} not one of {RESET_TIMINGS}")
    per = ((), tuple(n.shape))
    for k in ("alpha", "beta", "threshold", "bias"):
        _check_array(getattr(n, k), f"{where} {k}", fixed, per)
    if np.any(n.threshold <= 0):
        _fail(f"{where}: threshold must be positive")
    one = (1 << n.format.decay_bits) if (fixed and n.format) else 1.0
    for k in ("alpha", "beta"):
        v = getattr(n, k)
        if np.any(v < 0) or np.any(v > one):
            _fail(f"{where}: {k} must lie in [0, {one}]")
    if n.rec_weight is not None:
        _check_array(n.rec_weight, f"{where} rec_weight", fixed, ((n.size, n.size),))
        if n.rec_bias is not None:
            _check_array(n.rec_bias, f"{where} rec_bias", fixed, ((n.size,),))
        if not isinstance(n.rec_delay, int) or not (1 <= n.rec_delay <= 1024):
            _fail(f"{where}: rec_delay {n.rec_delay!r} outside 1..1024")
        if fixed:
            _check_format(n.rec_acc, f"{where} recurrent accumulator")
    elif n.rec_bias is not None:
        _fail(f"{where}: rec_bias without rec_weight")
    e = n.rec_weight_exp
    if not isinstance(e, (int, np.integer)) or isinstance(e, bool) or abs(int(e)) > MAX_SYNAPSE_EXP:
        _fail(f"{where}: rec_weight_exp {e!r} outside -{MAX_SYNAPSE_EXP}..{MAX_SYNAPSE_EXP}")
    if e and (not fixed or n.rec_weight is None):
        _fail(f"{where}: rec_weight_exp {e} needs a fixed IR population with recurrent weights")
    if fixed:
        vmax = (1 << (n.format.voltage.bits - 1)) - 1
        if np.any(n.threshold > vmax) or np.any(np.abs(n.bias) > vmax):
            _fail(f"{where}: threshold or bias does not fit the {n.format.voltage.bits}-bit voltage")
