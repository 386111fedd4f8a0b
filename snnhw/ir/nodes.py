"""IR primitives: one small dataclass per op, each answering for itself (:class:`Op`): its role,
the nodes it reads, its validation, its ONNX form and its output shape. Backends map ops to their
own kernels through registries keyed by op class (:meth:`Op.registered`).

The same node types describe the float IR (produced by a frontend, parameters in float32) and the
fixed-point IR (produced by quantization, parameters in integers). ``docs/ir.md`` specifies every
field; ``docs/semantics.md`` defines what one timestep of the fixed-point IR computes.

Shapes are per sample (no time or batch axis). Tensors flowing between nodes are ``[T, B, *shape]``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import ClassVar, Optional, Union

import numpy as np

from snnhw.errors import UnsupportedError
from snnhw.ir.checks import EXACT_BITS, check_array, check_format, fail

RESET_MODES = ("zero", "subtract", "none")
RESET_TIMINGS = ("immediate", "delayed")
ROUNDING_RULES = ("toward_zero", "floor")
POOL_MODES = ("sum", "avg", "max")
MAX_SYNAPSE_EXP = 16  # largest |LIF.rec_weight_exp|


@dataclass(frozen=True)
class StateFormat:
    """A signed integer register: ``bits`` wide, with an overflow rule.

    ``saturate``: clip to [-(2^(bits-1)-1), 2^(bits-1)-1] (symmetric, as Lava's LIF voltage).
    ``wrap``: two's complement, the value modulo 2^bits in [-2^(bits-1), 2^(bits-1)).
    ``wrap_once``: a single correction of +-2^bits keeping (-2^(bits-1), 2^(bits-1)] (Lava's fixed_pt
    LIF current, reproduced for bit-exactness).
    """

    bits: int
    overflow: str

    @staticmethod
    def attrs(prefix: str, f: "StateFormat | None") -> dict:
        """ONNX attributes ``<prefix>_bits``, ``<prefix>_overflow`` (none for None)."""
        return {} if f is None else {f"{prefix}_bits": f.bits, f"{prefix}_overflow": f.overflow}


@dataclass(frozen=True)
class NeuronFormat:
    """How a fixed-point population stores and updates its state.

    decay_bits: the decays alpha and beta are integers in units of 2^-decay_bits (12 on Loihi).
    decay_rounding: rounding of the decay product ``x * q / 2^decay_bits``.
    input_shift: synaptic input enters the current as ``a << input_shift`` (6 on Loihi).
    current / voltage: the u and v registers.
    state_scale: float value of one u/v LSB; used only to compare with the float IR. A float, or one
    value per neuron (a 1-D float64 array) where the quantizer gave the population per-channel weight
    steps (docs/compiler.md): neuron i's threshold, bias and state are then in its own unit.
    """

    decay_bits: int = 12
    decay_rounding: str = "toward_zero"
    input_shift: int = 6
    current: StateFormat = StateFormat(24, "wrap_once")
    voltage: StateFormat = StateFormat(24, "saturate")
    state_scale: float | np.ndarray = 1.0


def _state_scale_attr(scale) -> str:
    """``state_scale`` as an ONNX string attribute: ``repr`` of a float, a JSON list per neuron."""
    if np.ndim(scale):
        return json.dumps([float(v) for v in np.asarray(scale).reshape(-1)])
    return repr(float(scale))


def _state_scale_of(text) -> float | np.ndarray:
    """The inverse of :func:`_state_scale_attr` (ValueError on anything else)."""
    if isinstance(text, str) and text.startswith("["):
        values = json.loads(text)
        if not isinstance(values, list) or not all(isinstance(v, (int, float)) for v in values):
            raise ValueError("state_scale list")
        return np.asarray(values, np.float64)
    return float(text)


class Op:
    """What every IR node answers for itself (one subclass per primitive).

    op: its ONNX op type (docs/ir.md). role: ``input`` (the network input), ``synapse`` (weights from
    its input to a current: Dense, Conv2d), ``reshape`` (a linear reshaping of its input: Pool2d,
    Flatten) or ``population`` (LIF neurons). Every op but Input reads one node, ``input``.
    """

    op: ClassVar[str] = ""
    role: ClassVar[str] = ""
    keeps_values: ClassVar[bool] = False  # a reshape passing every value on unchanged (Flatten)
    requires: ClassVar[tuple] = ()  # (target feature flag, "what ... is/are") this op needs on a target

    @property
    def is_input(self) -> bool:
        return self.role == "input"

    @property
    def is_synapse(self) -> bool:
        return self.role == "synapse"

    @property
    def is_reshape(self) -> bool:
        return self.role == "reshape"

    @property
    def is_population(self) -> bool:
        return self.role == "population"

    @property
    def is_plastic(self) -> bool:
        return False

    def sources(self) -> tuple:
        """The nodes whose output this op reads (data flow)."""
        return (self.input,)

    def renamed(self, names: dict) -> None:
        """Rename, in place, this node and every node name it refers to (``names``: old -> new)."""
        self.name = names[self.name]
        if self.sources():
            self.input = names[self.input]

    def registered(self, registry: dict):
        """This op's entry in a backend's per-op ``registry`` (keyed by op class; the nearest class of
        its MRO wins, so PlasticDense falls back to Dense's entry unless it has its own)."""
        for cls in type(self).__mro__:
            if cls in registry:
                return registry[cls]
        raise UnsupportedError(f"layer {self.name}: {type(self).__name__} is not supported here")

    def check(self, in_shape: tuple, where: str, fixed: bool, g) -> None:
        """Refuse (InvalidFileError, one line) a malformed node reading ``in_shape`` in graph ``g``."""

    def onnx_params(self) -> list:
        """Parameter tensors after the data input, in ONNX input order: ``(key, array or None, narrow)``;
        ``narrow``: stored in the narrowest integer type (weights)."""
        return []

    def onnx_attrs(self) -> dict:
        """ONNX attributes (None values are left out)."""
        return {}

    def onnx_extra_inputs(self) -> list:
        """Further data inputs, stored after the parameters (format version 2)."""
        return []

    def uses_format_2(self) -> bool:
        """Whether storing this node needs IR format version 2 (extra inputs, a synapse out_shift)."""
        return bool(self.onnx_extra_inputs() or getattr(self, "out_shift", 0))


@dataclass
class Input(Op):
    """The network input, ``[T, B, *shape]``.

    bits: 0 in the float IR (any float value); in the fixed IR 1 means binary spikes (0/1) and n>1
    means graded signed n-bit integers (direct encoding of analog values).
    scale: float value of one integer input unit (fixed IR); ``x_int = round(x / scale)``.
    """

    op: ClassVar[str] = "Input"
    role: ClassVar[str] = "input"

    name: str
    shape: tuple
    bits: int = 0
    scale: float = 1.0

    def sources(self) -> tuple:
        return ()

    @property
    def value_bound(self) -> float:
        """Largest |x_int| of the fixed IR's input (1 for spikes)."""
        return float((1 << (self.bits - 1)) - 1 if self.bits > 1 else 1)

    def check(self, in_shape, where, fixed, g):
        if not self.shape or any((not isinstance(d, int)) or d <= 0 for d in self.shape):
            fail(f"{where}: shape {self.shape} must be positive integers")
        if fixed and not (1 <= self.bits <= 32):
            fail(f"{where}: fixed IR input bits {self.bits} outside 1..32")
        if not (np.isfinite(self.scale) and self.scale > 0):
            fail(f"{where}: scale must be positive")

    def onnx_attrs(self):
        return dict(shape=list(self.shape), bits=self.bits, scale=repr(float(self.scale)))

    @classmethod
    def from_onnx(cls, r):
        return cls(r.name, r.get("shape", tuple), r.get("bits", int), r.get("scale", float))


class _Synapse(Op):
    """Shared by the weighted ops: delay, accumulator, bias.

    acc_register: the name of the target's numeric description entry giving this op's accumulator
    (``accumulator`` or ``conv_accumulator`` in target.toml).
    bias_per_output: one bias per output neuron (Dense), not one per channel (Conv2d).
    out_shift: s >= 0, the synapse's own power-of-two scale (fixed IR; 0 in the float IR): its output
    is ``acc_rule(W x + b) << s``, in units of the population it feeds, so several synapses summed
    into one population (``LIF.extra_inputs``) each keep their own weight step.
    """

    role: ClassVar[str] = "synapse"
    acc_register: ClassVar[str] = "accumulator"
    bias_per_output: ClassVar[bool] = True

    def bias_map(self) -> Optional[np.ndarray]:
        """The bias broadcastable to the output shape (None without a bias)."""
        return self.bias

    def weight_magnitudes(self) -> np.ndarray:
        """The largest |weight| each weight entry can hold during a run (the weights: they do not change)."""
        return np.abs(self.weight)

    @property
    def fan_in(self) -> int:
        """Inputs per output neuron (a conv: per output channel, ignoring padding)."""
        return int(np.prod(self.weight.shape[1:]))

    def _check_synapse(self, where, fixed):
        check_array(self.weight, f"{where} weight", fixed, ())
        if self.bias is not None:
            check_array(self.bias, f"{where} bias", fixed, ((self.weight.shape[0],),))
        if not isinstance(self.delay, int) or not (0 <= self.delay <= 1024):
            fail(f"{where}: delay {self.delay!r} outside 0..1024 steps")
        if fixed:
            check_format(self.acc, f"{where} accumulator")
        s = self.out_shift
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool) or not 0 <= int(s) <= MAX_SYNAPSE_EXP:
            fail(f"{where}: out_shift {s!r} outside 0..{MAX_SYNAPSE_EXP}")
        if s and not fixed:
            fail(f"{where}: out_shift {s} belongs to the fixed IR")


@dataclass
class Dense(_Synapse):
    """Synapse ``y[t] = W x[t - delay] + b``. weight ``(out, in)``, bias ``(out,)`` or None.

    acc: the accumulator register of the fixed IR (None in the float IR).
    """

    op: ClassVar[str] = "Dense"

    name: str
    input: str
    weight: np.ndarray
    bias: Optional[np.ndarray] = None
    delay: int = 0
    acc: Optional[StateFormat] = None
    out_shift: int = 0

    @property
    def shape(self) -> tuple:
        return (int(self.weight.shape[0]),)

    def check(self, in_shape, where, fixed, g):
        check_array(self.weight, f"{where} weight", fixed, ())
        if self.weight.ndim != 2 or in_shape != (self.weight.shape[1],):
            fail(f"{where}: weight {self.weight.shape} does not fit input shape {in_shape}")
        self._check_synapse(where, fixed)

    def onnx_params(self):
        return [("weight", self.weight, True), ("bias", self.bias, False)]

    def onnx_attrs(self):
        return dict(delay=self.delay, **StateFormat.attrs("acc", self.acc), out_shift=int(self.out_shift) or None)

    @classmethod
    def from_onnx(cls, r):
        return cls(r.name, r.src, r.param(1), r.param(2, False), r.get("delay", int), r.fmt("acc", r.fixed),
                   r.get("out_shift", int, 0))


@dataclass
class Conv2d(_Synapse):
    """2-D cross-correlation as torch.nn.Conv2d. weight ``(C_out, C_in/groups, kH, kW)``."""

    op: ClassVar[str] = "Conv2d"
    acc_register: ClassVar[str] = "conv_accumulator"
    requires: ClassVar[tuple] = (("conv", "Conv2d is"),)
    bias_per_output: ClassVar[bool] = False

    name: str
    input: str
    weight: np.ndarray
    in_shape: tuple
    bias: Optional[np.ndarray] = None
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    dilation: tuple = (1, 1)
    groups: int = 1
    delay: int = 0
    acc: Optional[StateFormat] = None
    out_shift: int = 0

    @property
    def shape(self) -> tuple:
        _, h, w = self.in_shape
        kh, kw = self.weight.shape[2:]
        ho = (h + 2 * self.padding[0] - self.dilation[0] * (kh - 1) - 1) // self.stride[0] + 1
        wo = (w + 2 * self.padding[1] - self.dilation[1] * (kw - 1) - 1) // self.stride[1] + 1
        return (int(self.weight.shape[0]), int(ho), int(wo))

    def bias_map(self):
        return None if self.bias is None else self.bias.reshape(-1, 1, 1)

    def check(self, in_shape, where, fixed, g):
        check_array(self.weight, f"{where} weight", fixed, ())
        if tuple(self.in_shape) != in_shape or len(in_shape) != 3 or self.weight.ndim != 4:
            fail(f"{where}: in_shape {self.in_shape} does not match input {in_shape}")
        w = self.weight.shape
        if self.groups < 1 or in_shape[0] % self.groups or w[1] * self.groups != in_shape[0] or w[0] % self.groups:
            fail(f"{where}: weight {w} and groups {self.groups} do not fit {in_shape[0]} input channels")
        for k, v in (("stride", self.stride), ("dilation", self.dilation)):
            if len(v) != 2 or min(v) < 1:
                fail(f"{where}: {k} {v} must be two positive integers")
        if len(self.padding) != 2 or min(self.padding) < 0:
            fail(f"{where}: padding {self.padding} must be two non-negative integers")
        if min(self.shape) < 1:
            fail(f"{where}: output shape {self.shape} is empty")
        self._check_synapse(where, fixed)

    def onnx_params(self):
        return [("weight", self.weight, True), ("bias", self.bias, False)]

    def onnx_attrs(self):
        return dict(in_shape=list(self.in_shape), stride=list(self.stride), padding=list(self.padding),
                    dilation=list(self.dilation), groups=self.groups, delay=self.delay,
                    **StateFormat.attrs("acc", self.acc), out_shift=int(self.out_shift) or None)

    @classmethod
    def from_onnx(cls, r):
        return cls(r.name, r.src, r.param(1), r.get("in_shape", tuple), r.param(2, False), r.get("stride", tuple),
                   r.get("padding", tuple), r.get("dilation", tuple), r.get("groups", int), r.get("delay", int),
                   r.fmt("acc", r.fixed), r.get("out_shift", int, 0))


@dataclass
class Pool2d(Op):
    """Pooling over ``kernel`` windows moved by ``stride`` (no padding), per channel:

    ``y[c, i, j] = sum_{a<kH, b<kW} x[c, sH*i + a, sW*j + b]`` (``sum``), that sum / (kH*kW) (``avg``), or
    ``max_{a, b} x[c, sH*i + a, sW*j + b]`` (``max``; on binary spikes the OR of the window).
    The fixed IR has ``sum`` and ``max`` (``avg`` becomes ``sum`` with the window moved into the scale);
    the compiler's fold-linear pass composes ``sum``/``avg`` into the adjacent synapse, so only ``max``
    reaches a backend.
    """

    op: ClassVar[str] = "Pool2d"
    role: ClassVar[str] = "reshape"
    requires: ClassVar[tuple] = (("pooling", "pooling is"),)

    name: str
    input: str
    in_shape: tuple
    kernel: tuple
    stride: tuple
    mode: str = "sum"

    @property
    def shape(self) -> tuple:
        c, h, w = self.in_shape
        return (c, (h - self.kernel[0]) // self.stride[0] + 1, (w - self.kernel[1]) // self.stride[1] + 1)

    @property
    def window(self) -> int:
        return int(self.kernel[0] * self.kernel[1])

    @property
    def divisor(self) -> int:
        """This op divides a uniform input by this (the window for ``avg``, else 1)."""
        return self.window if self.mode == "avg" else 1

    def bound(self, x_bound: float) -> float:
        """Largest |output| for inputs bounded by ``x_bound`` (integer modes)."""
        return x_bound * (1 if self.mode == "max" else self.window)

    def fixed_form(self) -> "Pool2d":
        """This op in the fixed IR: ``avg`` becomes ``sum`` (the window moves into the scale)."""
        return replace(self, mode="sum") if self.mode == "avg" else self

    def check(self, in_shape, where, fixed, g):
        if tuple(self.in_shape) != in_shape or len(in_shape) != 3:
            fail(f"{where}: in_shape {self.in_shape} does not match input {in_shape}")
        if self.mode not in POOL_MODES or (fixed and self.mode == "avg"):
            fail(f"{where}: pool mode {self.mode!r} not allowed in the {g.kind} IR")
        if min(self.kernel) < 1 or min(self.stride) < 1 or min(self.shape) < 1:
            fail(f"{where}: kernel {self.kernel} / stride {self.stride} do not fit {in_shape}")

    def onnx_attrs(self):
        return dict(in_shape=list(self.in_shape), kernel=list(self.kernel), stride=list(self.stride), mode=self.mode)

    @classmethod
    def from_onnx(cls, r):
        return cls(r.name, r.src, r.get("in_shape", tuple), r.get("kernel", tuple), r.get("stride", tuple),
                   r.get("mode", str))


@dataclass
class Flatten(Op):
    """Row-major (C-order) flatten of the per-sample shape, as torch.nn.Flatten()."""

    op: ClassVar[str] = "Flatten"
    role: ClassVar[str] = "reshape"
    divisor: ClassVar[int] = 1
    keeps_values: ClassVar[bool] = True

    name: str
    input: str
    in_shape: tuple

    @property
    def shape(self) -> tuple:
        return (int(np.prod(self.in_shape)),)

    def bound(self, x_bound: float) -> float:
        return x_bound

    def fixed_form(self) -> "Flatten":
        return self

    def check(self, in_shape, where, fixed, g):
        if tuple(self.in_shape) != in_shape:
            fail(f"{where}: in_shape {self.in_shape} does not match input {in_shape}")

    def onnx_attrs(self):
        return dict(in_shape=list(self.in_shape))

    @classmethod
    def from_onnx(cls, r):
        return cls(r.name, r.src, r.get("in_shape", tuple))


@dataclass
class LIF(Op):
    """A population of current-based leaky integrate-and-fire neurons (the CUBA-LIF family).

    Per step (docs/semantics.md): ``u = alpha*u + a``; ``v = beta*v + u + bias``; reset; spike if
    ``v > threshold``. Leaky is alpha = 0, Synaptic has alpha > 0.

    alpha, beta, threshold, bias: scalar (shape ``()``) or one value per neuron (shape ``shape``).
    Float IR: float32, alpha/beta in [0, 1]. Fixed IR: int64; alpha/beta in units of
    2^-format.decay_bits, threshold and bias in state units.
    rec_weight/rec_bias/rec_delay: optional recurrent dense from this population's spikes back to
    its own input (snntorch RLeaky/RSynaptic); rec_delay >= 1.
    rec_weight_exp: e, the exponent between the recurrent and the feed-forward weight steps (fixed IR;
    0 in the float IR): with the feed-forward sum ``a`` and the recurrent sum ``r`` (each after its
    accumulator rule), the population's input is ``a + (r << e)`` for e >= 0 and ``(a << -e) + r``
    for e < 0, so each path keeps its own power-of-two scale. |e| <= MAX_SYNAPSE_EXP; targets whose
    description lacks ``features.synapse_exponent`` need e = 0.
    extra_inputs: further nodes (synapses, or reshapes of them) of shape ``shape`` whose outputs are
    summed with ``input``'s: the population's feed-forward input is ``a = x_input + x_1 + ... + x_k``
    (in this order; each synapse's ``out_shift`` already applied), e.g. a residual/skip connection
    ``cur = fc2(spk1) + fc_skip(spk0)``. Targets whose description lacks ``features.summed_inputs``
    need none.
    """

    op: ClassVar[str] = "LIF"
    role: ClassVar[str] = "population"

    name: str
    input: str
    shape: tuple
    alpha: np.ndarray
    beta: np.ndarray
    threshold: np.ndarray
    bias: np.ndarray
    reset_mode: str = "subtract"
    reset_timing: str = "delayed"
    rec_weight: Optional[np.ndarray] = None
    rec_bias: Optional[np.ndarray] = None
    rec_delay: int = 1
    rec_acc: Optional[StateFormat] = None
    format: Optional[NeuronFormat] = None
    rec_weight_exp: int = 0
    extra_inputs: tuple = ()

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def sources(self) -> tuple:
        return (self.input, *self.extra_inputs)

    def renamed(self, names: dict) -> None:
        super().renamed(names)
        self.extra_inputs = tuple(names[s] for s in self.extra_inputs)

    def check(self, in_shape, where, fixed, g):
        if fixed:
            f = self.format
            if f is None:
                fail(f"{where}: fixed IR population without a format")
            if not (1 <= f.decay_bits <= 16) or f.decay_rounding not in ROUNDING_RULES:
                fail(f"{where}: decay_bits {f.decay_bits} / rounding {f.decay_rounding!r} invalid")
            if not (0 <= f.input_shift <= 16):
                fail(f"{where}: input_shift {f.input_shift} outside 0..16")
            check_format(f.current, f"{where} current")
            check_format(f.voltage, f"{where} voltage")
            if max(f.current.bits, f.voltage.bits) + f.decay_bits > EXACT_BITS:
                fail(f"{where}: register bits + decay_bits must not exceed {EXACT_BITS} (exact arithmetic)")
            sc = np.asarray(f.state_scale, np.float64)
            if sc.ndim not in (0, 1) or (sc.ndim and sc.size != self.size) or \
                    not (np.all(np.isfinite(sc)) and np.all(sc > 0)):
                fail(f"{where}: state_scale must be positive, one value or one per neuron")
        elif self.format is not None:
            fail(f"{where}: float IR population with a fixed-point format")
        if tuple(self.shape) != in_shape:
            fail(f"{where}: shape {self.shape} does not match its input {in_shape}")
        if not isinstance(self.extra_inputs, tuple) or len(set(self.sources())) != len(self.sources()):
            fail(f"{where}: extra_inputs must be a tuple of distinct node names other than input")
        for s in self.extra_inputs:
            if any(g.node(x).is_plastic for x in self.sources()):
                fail(f"{where}: a population fed by a plastic synapse sums no other input paths")
            if tuple(g.node(s).shape) != tuple(self.shape):
                fail(f"{where}: extra input {s!r} has shape {tuple(g.node(s).shape)}, not the population's {self.shape}")
        if self.reset_mode not in RESET_MODES:
            fail(f"{where}: reset_mode {self.reset_mode!r} not one of {RESET_MODES}")
        if self.reset_timing not in RESET_TIMINGS:
            fail(f"{where}: reset_timing {self.reset_timing!r} not one of {RESET_TIMINGS}")
        per = ((), tuple(self.shape))
        for k in ("alpha", "beta", "threshold", "bias"):
            check_array(getattr(self, k), f"{where} {k}", fixed, per)
        if np.any(self.threshold <= 0):
            fail(f"{where}: threshold must be positive")
        one = (1 << self.format.decay_bits) if (fixed and self.format) else 1.0
        for k in ("alpha", "beta"):
            v = getattr(self, k)
            if np.any(v < 0) or np.any(v > one):
                fail(f"{where}: {k} must lie in [0, {one}]")
        if self.rec_weight is not None:
            check_array(self.rec_weight, f"{where} rec_weight", fixed, ((self.size, self.size),))
            if self.rec_bias is not None:
                check_array(self.rec_bias, f"{where} rec_bias", fixed, ((self.size,),))
            if not isinstance(self.rec_delay, int) or not (1 <= self.rec_delay <= 1024):
                fail(f"{where}: rec_delay {self.rec_delay!r} outside 1..1024")
            if fixed:
                check_format(self.rec_acc, f"{where} recurrent accumulator")
        elif self.rec_bias is not None:
            fail(f"{where}: rec_bias without rec_weight")
        e = self.rec_weight_exp
        if not isinstance(e, (int, np.integer)) or isinstance(e, bool) or abs(int(e)) > MAX_SYNAPSE_EXP:
            fail(f"{where}: rec_weight_exp {e!r} outside -{MAX_SYNAPSE_EXP}..{MAX_SYNAPSE_EXP}")
        if e and (not fixed or self.rec_weight is None):
            fail(f"{where}: rec_weight_exp {e} needs a fixed IR population with recurrent weights")
        if fixed:
            vmax = (1 << (self.format.voltage.bits - 1)) - 1
            if np.any(self.threshold > vmax) or np.any(np.abs(self.bias) > vmax):
                fail(f"{where}: threshold or bias does not fit the {self.format.voltage.bits}-bit voltage")

    def onnx_extra_inputs(self) -> list:
        return list(self.extra_inputs)

    def onnx_params(self):
        return [(k, getattr(self, k), False) for k in ("alpha", "beta", "threshold", "bias")] + \
            [("rec_weight", self.rec_weight, True), ("rec_bias", self.rec_bias, False)]

    def onnx_attrs(self):
        f = self.format
        fmt = {} if f is None else dict(
            decay_bits=f.decay_bits, decay_rounding=f.decay_rounding, input_shift=f.input_shift,
            state_scale=_state_scale_attr(f.state_scale),
            **StateFormat.attrs("current", f.current), **StateFormat.attrs("voltage", f.voltage))
        return dict(shape=list(self.shape), reset_mode=self.reset_mode, reset_timing=self.reset_timing,
                    rec_delay=self.rec_delay, **StateFormat.attrs("rec_acc", self.rec_acc), **fmt,
                    rec_weight_exp=int(self.rec_weight_exp) or None)  # stored only when nonzero

    @classmethod
    def from_onnx(cls, r):
        fmt = None
        if r.fixed:
            fmt = NeuronFormat(r.get("decay_bits", int), r.get("decay_rounding", str), r.get("input_shift", int),
                               r.fmt("current", True), r.fmt("voltage", True),
                               _state_scale_of(r.get("state_scale", str)))
        rec_w = r.param(5, False)
        return cls(r.name, r.src, r.get("shape", tuple), r.param(1), r.param(2), r.param(3), r.param(4),
                   r.get("reset_mode", str), r.get("reset_timing", str), rec_w, r.param(6, False),
                   r.get("rec_delay", int, 1), r.fmt("rec_acc", r.fixed and rec_w is not None), fmt,
                   r.get("rec_weight_exp", int, 0), r.inputs_after(LIF_PARAMS))


# ----------------------------------------------------------------------------- plasticity
TRACE_NAMES = ("x1", "x2", "y1", "y2", "y3")   # pre-synaptic x1, x2; post-synaptic y1, y2, y3
DEPENDENCIES = ("x0", "y0", "u")               # pre spike, post spike, every epoch
FACTOR_VARS = ("x0", "y0", "x1", "x2", "y1", "y2", "y3", "w")
WEIGHT_ROUNDINGS = ("nearest", "floor")
TRACE_BITS = 7            # traces are unsigned 7-bit, saturating at 127
TRACE_DECAY_BITS = 12     # trace decays in units of 2^-12
LEARN_FRAC_BITS = 7       # the learning accumulator holds w << 7
LEARN_ACC_BITS = 16       # signed accumulator width (saturates at +-(2^15 - 1))
FACTOR_BITS = {"x0": 1, "y0": 1, "x1": 7, "x2": 7, "y1": 7, "y2": 7, "y3": 7, "w": 9}
MANTISSA_BITS = 4         # product scale mantissa: signed 4 bits, -8..7


@dataclass(frozen=True)
class Trace:
    """A spike trace (Loihi's x1, x2, y1, y2, y3): an unsigned 7-bit integer.

    Every step ``trace = (trace * decay) >> 12``; a spike adds ``impulse`` (saturating at 127).
    decay: 0..4096 in units of 2^-12 (4096 keeps the trace, 0 forgets it every step).
    impulse: 0..127.
    """

    impulse: int = 0
    decay: int = 0


@dataclass(frozen=True)
class Product:
    """One term of a weight update, Loihi's sum-of-products form (docs/semantics.md, Plasticity):

    ``mantissa * 2^exponent * dependency * prod(var + const for var, const in factors)``

    mantissa: -8..7 (4-bit signed); exponent: -7..8; dependency: ``x0`` (this pre neuron spiked in
    the epoch), ``y0`` (this post neuron spiked) or ``u`` (every epoch); factors: pairs
    ``(var, const)`` with var one of x0, y0, x1, x2, y1, y2, y3, w and an integer const.
    """

    mantissa: int
    exponent: int
    dependency: str
    factors: tuple = ()


@dataclass(frozen=True)
class LearningRule:
    """A learning rule in Loihi's form: traces with impulses and decays, and ``dw`` as a sum of
    products, applied every ``t_epoch`` steps.

    rounding: how the updated weight (7 fractional bits) becomes an integer: ``nearest`` (half up,
    ``(acc + 64) >> 7``) or ``floor`` (``acc >> 7``). Loihi and Lava round stochastically instead.
    """

    dw: tuple
    x1: Trace = Trace()
    x2: Trace = Trace()
    y1: Trace = Trace()
    y2: Trace = Trace()
    y3: Trace = Trace()
    t_epoch: int = 1
    rounding: str = "nearest"

    def trace(self, name: str) -> Trace:
        return getattr(self, name)


@dataclass
class PlasticDense(Dense):
    """A Dense synapse whose weights learn (docs/semantics.md, Plasticity).

    ``y[t] = W(t) x[t - delay]`` where W(t) are the weights during step t. The rule sees the
    synapse's input spikes ``x[t]`` (pre) and the spikes of population ``post`` (which this synapse
    feeds directly); at the end of every epoch (each ``rule.t_epoch`` steps)
    ``W <- clip(round(W + dw), w_min, w_max)`` per synapse, independently for every sample of a batch.
    w_min, w_max: weight bounds in the weight's units (integers in the fixed IR). No bias.
    """

    op: ClassVar[str] = "PlasticDense"
    requires: ClassVar[tuple] = (("plasticity", "plastic synapses (on-chip learning) are"),)

    post: str = ""
    rule: Optional[LearningRule] = None
    w_min: float = 0
    w_max: float = 0

    @property
    def is_plastic(self) -> bool:
        return True

    def renamed(self, names: dict) -> None:
        super().renamed(names)
        self.post = names[self.post]

    def weight_magnitudes(self) -> np.ndarray:
        """The largest |weight| each synapse can hold during a run: learning moves every weight
        anywhere in [w_min, w_max], so range proofs and scales must allow the bounds."""
        span = max(abs(self.w_min), abs(self.w_max))
        return np.maximum(np.abs(self.weight), np.asarray(span, dtype=self.weight.dtype))

    def summary(self) -> str:
        """One line: the rule as Loihi writes it, the bounds and the epoch."""
        def term(p):
            factors = "".join(f" * ({v}{c:+d})" if c else f" * {v}" for v, c in p.factors)
            return f"{p.mantissa}*2^{p.exponent} * {p.dependency}{factors}"
        return (f"learns (post {self.post}): dw = {' + '.join(term(p) for p in self.rule.dw)}; "
                f"w in [{self.w_min:g}, {self.w_max:g}], every {self.rule.t_epoch} step(s), round {self.rule.rounding}")

    def updates(self, steps: int) -> int:
        """Synapse updates of one sample over ``steps`` steps: every synapse once per completed epoch
        (the learning engine visits the whole synapse group; an upper bound where it skips idle ones)."""
        return (steps // self.rule.t_epoch) * int(self.weight.size)

    def check(self, in_shape, where, fixed, g):
        """Also: binary pre spikes, feeding its ``post`` population directly, a valid rule."""
        super().check(in_shape, where, fixed, g)
        consumers = g.consumers(self.name)
        if len(consumers) != 1 or not consumers[0].is_population or consumers[0].name != self.post:
            fail(f"{where}: a plastic synapse must feed exactly its post population {self.post!r} directly")
        if self.bias is not None:
            fail(f"{where}: a plastic synapse has no bias")
        src = g.node(self.input)
        if fixed and not (src.is_population or (src.is_input and src.bits == 1)):
            fail(f"{where}: a plastic synapse needs binary spikes as input (a population or a 1-bit input)")
        if not (np.isfinite(self.w_min) and np.isfinite(self.w_max) and self.w_min <= self.w_max):
            fail(f"{where}: weight bounds w_min {self.w_min} <= w_max {self.w_max} required")
        if fixed and (int(self.w_min) != self.w_min or int(self.w_max) != self.w_max or
                      max(abs(int(self.w_min)), abs(int(self.w_max))) > (1 << (FACTOR_BITS["w"] - 1))):
            fail(f"{where}: weight bounds must be integers within the 9-bit learning weight range")
        r = self.rule
        if not isinstance(r, LearningRule):
            fail(f"{where}: a plastic synapse needs a learning rule")
        if not isinstance(r.t_epoch, int) or not (1 <= r.t_epoch <= 64):
            fail(f"{where}: t_epoch {r.t_epoch!r} outside 1..64 steps")
        if r.rounding not in WEIGHT_ROUNDINGS:
            fail(f"{where}: rounding {r.rounding!r} not one of {WEIGHT_ROUNDINGS}")
        top = (1 << TRACE_BITS) - 1
        for name in TRACE_NAMES:
            t = r.trace(name)
            if not (isinstance(t, Trace) and 0 <= t.impulse <= top and 0 <= t.decay <= 1 << TRACE_DECAY_BITS):
                fail(f"{where}: trace {name} needs impulse 0..{top} and decay 0..{1 << TRACE_DECAY_BITS}")
        if not r.dw:
            fail(f"{where}: the learning rule has no products")
        for p in r.dw:
            ok = isinstance(p, Product) and -8 <= p.mantissa <= 7 and -7 <= p.exponent <= 8 \
                and p.dependency in DEPENDENCIES
            ok = ok and all(len(f) == 2 and f[0] in FACTOR_VARS and isinstance(f[1], int) and abs(f[1]) < 1 << 16
                            for f in p.factors)
            if not ok:
                fail(f"{where}: bad product {p!r} (mantissa -8..7, exponent -7..8, dependency one of "
                     f"{DEPENDENCIES}, factors (var, int const) with var one of {FACTOR_VARS})")

    def onnx_params(self):
        return [("weight", self.weight, True)]

    def onnx_attrs(self):
        """The rule as attributes; ``dw`` is a flat int list of products
        ``[mantissa, exponent, dependency index, number of factors, (var index, const) ...]``."""
        r = self.rule
        flat = []
        for p in r.dw:
            flat += [p.mantissa, p.exponent, DEPENDENCIES.index(p.dependency), len(p.factors)]
            for var, const in p.factors:
                flat += [FACTOR_VARS.index(var), int(const)]
        traces = {f"{t}_{k}": getattr(r.trace(t), k) for t in TRACE_NAMES for k in ("impulse", "decay")}
        return dict(delay=self.delay, **StateFormat.attrs("acc", self.acc), out_shift=int(self.out_shift) or None,
                    post=self.post,
                    w_min=repr(float(self.w_min)), w_max=repr(float(self.w_max)), t_epoch=r.t_epoch,
                    rounding=r.rounding, dw=flat, **traces)

    @classmethod
    def from_onnx(cls, r):
        flat = list(r.get("dw", tuple))
        products, i = [], 0
        try:
            while i < len(flat):
                mant, exp, dep, nf = flat[i:i + 4]
                pairs = flat[i + 4:i + 4 + 2 * nf]
                if nf < 0 or len(pairs) != 2 * nf or not 0 <= dep < len(DEPENDENCIES) or \
                        any(not 0 <= v < len(FACTOR_VARS) for v in pairs[::2]):
                    raise ValueError
                products.append(Product(mant, exp, DEPENDENCIES[dep],
                                        tuple((FACTOR_VARS[v], c) for v, c in zip(pairs[::2], pairs[1::2]))))
                i += 4 + 2 * nf
        except ValueError:
            fail(f"node {r.name!r} has a malformed dw product list")
        traces = {t: Trace(r.get(f"{t}_impulse", int), r.get(f"{t}_decay", int)) for t in TRACE_NAMES}
        rule = LearningRule(tuple(products), t_epoch=r.get("t_epoch", int), rounding=r.get("rounding", str), **traces)
        w_min, w_max = r.get("w_min", float), r.get("w_max", float)
        if r.fixed:
            w_min, w_max = int(w_min), int(w_max)
        return cls(r.name, r.src, r.param(1), None, r.get("delay", int), r.fmt("acc", r.fixed),
                   r.get("out_shift", int, 0), post=r.get("post", str), rule=rule, w_min=w_min, w_max=w_max)


LIF_PARAMS = 7
"""ONNX inputs of a LIF before its extra inputs: x, alpha, beta, threshold, bias, rec_weight, rec_bias."""

Synapse = Union[Dense, Conv2d, Pool2d, Flatten]
Node = Union[Input, Dense, PlasticDense, Conv2d, Pool2d, Flatten, LIF]
NODE_TYPES = (Input, Dense, PlasticDense, Conv2d, Pool2d, Flatten, LIF)
OPS = {t.op: t for t in NODE_TYPES}
"""Every op by its ONNX op type."""
