"""Build spiking networks in Python, without training, and run them bit-accurately (Brian2-style).

    net = Network(dt=1e-3)                                  # seconds per timestep
    inp = net.input(100)                                    # 100 spike sources
    pop = net.lif(200, tau=20e-3, threshold=1.0)            # leaky integrate-and-fire neurons
    net.connect(inp, pop, random_weights(100, 200, p=0.1, weight=0.4, seed=0))
    mon = net.monitor(pop, state=True)
    result = net.run(poisson_spikes(np.full(100, 20.0), steps=500, dt=1e-3, seed=0), target="emu")
    mon.spikes, mon.voltage, mon.t                          # [T, N] 0/1, [T, N] threshold units, [T] s

Units: time in seconds (``dt``, ``tau``, ``Result.t``); rates in Hz; the membrane potential is
dimensionless, in the unit of ``threshold`` (a weight ``w`` adds ``w`` to the membrane per input
spike when ``alpha = 0``). The network becomes the float IR (:mod:`snnhw.ir`), is compiled for the
chosen target description by :func:`snnhw.compiler.pipeline.compile_graph` (quantization, the
target's timing and feature checks) and runs in the bit-accurate emulator, whose results every
backend reproduces bit for bit (``snnhw verify`` checks that).

Learning (docs/python-api.md, "Learning"): ``connect(..., plasticity=STDP(...))`` makes a plastic
synapse (``PlasticDense``), ``lateral_inhibition`` a negative recurrent synapse,
``adaptive_threshold`` homeostasis between runs, ``weight_monitor`` records weights after each run,
``run(..., learn=True)`` keeps the learned weights, ``freeze()`` turns plastic synapses into static
ones for deployment on any target.

The IR gives every population one feed-forward synapse (from the input or an earlier population)
plus at most one recurrent synapse from itself: a second ``connect`` to the same population is
refused with an error.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from snnhw.errors import SnnhwError
from snnhw.ir import LIF, Dense, Graph, Input, LearningRule, PlasticDense, Product, Trace
from snnhw.ir.nodes import TRACE_BITS, TRACE_DECAY_BITS

RESETS = ("zero", "subtract", "none")


@dataclass(frozen=True)
class Group:
    """A handle on the input or a population: ``name`` (unique), ``size`` (neurons), ``kind``."""

    name: str
    size: int
    kind: str


@dataclass
class Monitor:
    """What :meth:`Network.run` records for one population; filled in place by each run.

    spikes: ``[T, N]`` (``[T, B, N]`` for batched input) float32 0/1. voltage / current: same shape,
    membrane and synaptic current in threshold units (only with ``state=True``). t: ``[T]`` seconds.
    """

    group: Group
    state: bool = False
    spikes: np.ndarray | None = None
    voltage: np.ndarray | None = None
    current: np.ndarray | None = None
    t: np.ndarray | None = None


@dataclass
class Result:
    """One run: per monitored population name, ``spikes``/``voltage``/``current`` as in :class:`Monitor`;
    ``t`` in seconds; ``overflow`` events of the fixed-point run; ``graph`` the IR that ran."""

    t: np.ndarray
    spikes: dict = field(default_factory=dict)
    voltage: dict = field(default_factory=dict)
    current: dict = field(default_factory=dict)
    overflow: dict = field(default_factory=dict)
    graph: Graph | None = None
    weights: dict = field(default_factory=dict)


TRACE_PEAK = (1 << TRACE_BITS) - 1  # trace impulse: a spike sets a 7-bit trace to its full range


def _mantissa_exponent(v: float):
    """The Loihi scale ``m * 2^e`` (m in 1..7, e in -7..8) closest to ``v`` > 0 (relative error)."""
    best = min(((m, e) for m in range(1, 8) for e in range(-7, 9)), key=lambda me: abs(me[0] * 2.0 ** me[1] - v))
    return best


@dataclass
class STDP:
    """Pair-based spike-timing-dependent plasticity in Loihi's form (docs/semantics.md, Plasticity).

    Each spike sets its neuron's trace to 127 (7 bits) which decays with ``tau_plus`` (pre) /
    ``tau_minus`` (post), seconds. On a post spike the weight grows by
    ``a_plus * w_max * (x_pre - offset)`` (x_pre in [0, 1] of the trace's peak; ``offset`` > 0 also
    depresses inputs that were silent, as Diehl & Cook's x_tar); on a pre spike it shrinks by
    ``a_minus * w_max * y_post``. Weights stay in [w_min, w_max] (threshold units).
    The scales become Loihi's ``m * 2^e`` (4-bit m) in integer weight units once the network is
    compiled (the weight step is known): :meth:`rule` says exactly what runs.
    t_epoch: steps per learning epoch (1: every step).
    """

    w_max: float
    w_min: float = 0.0
    a_plus: float = 0.05
    a_minus: float = 0.05
    tau_plus: float = 20e-3
    tau_minus: float = 20e-3
    offset: float = 0.0
    t_epoch: int = 1

    def rule(self, w_max_int: int, dt: float) -> LearningRule:
        """The Loihi-form rule for integer weights whose bound ``w_max`` is ``w_max_int``."""
        one = 1 << TRACE_DECAY_BITS
        decay = lambda tau: int(round(one * math.exp(-dt / tau)))
        products = []
        if self.a_plus > 0:
            m, e = _mantissa_exponent(self.a_plus * w_max_int / TRACE_PEAK)
            products.append(Product(m, e, "y0", (("x1", -int(round(self.offset * TRACE_PEAK))),)))
        if self.a_minus > 0:
            m, e = _mantissa_exponent(self.a_minus * w_max_int / TRACE_PEAK)
            products.append(Product(-m, e, "x0", (("y1", 0),)))
        if not products:
            raise SnnhwError("STDP: a_plus or a_minus must be > 0")
        return LearningRule(tuple(products), x1=Trace(TRACE_PEAK, decay(self.tau_plus)),
                            y1=Trace(TRACE_PEAK, decay(self.tau_minus)), t_epoch=self.t_epoch)


@dataclass
class WeightMonitor:
    """The weights of a plastic synapse after every learning run: ``weights`` is a list of
    ``(post, pre)`` float arrays in threshold units (``integers``: the fixed-point values)."""

    post: Group
    weights: list = field(default_factory=list)
    integers: list = field(default_factory=list)


@dataclass
class _Homeostasis:
    theta_plus: float
    decay: float
    theta: np.ndarray


def poisson_spikes(rates_hz, steps: int, dt: float, seed: int = 0) -> np.ndarray:
    """Independent Poisson spike trains ``[steps, N]`` (float32 0/1): P(spike per step) = rate · dt.

    rates_hz: one rate per source (Hz); every ``rate · dt`` must be at most 1. dt: seconds per step.
    """
    p = np.asarray(rates_hz, np.float64) * dt
    if p.ndim != 1 or np.any(p < 0) or np.any(p > 1) or not np.all(np.isfinite(p)):
        raise SnnhwError(f"poisson_spikes: rates must be a 1-D array with 0 <= rate*dt <= 1 (dt = {dt} s)")
    return (np.random.default_rng(seed).random((steps, p.size)) < p).astype(np.float32)


def random_weights(n_pre: int, n_post: int, p: float, weight: float, seed: int = 0) -> np.ndarray:
    """A random connectivity matrix ``(n_post, n_pre)``: each synapse exists with probability ``p``
    and has ``weight`` (threshold units per spike); absent synapses are 0."""
    if not 0 <= p <= 1:
        raise SnnhwError(f"random_weights: p must be in [0, 1], got {p}")
    mask = np.random.default_rng(seed).random((n_post, n_pre)) < p
    return (mask * np.float32(weight)).astype(np.float32)


class Network:
    """A network under construction. dt: seconds per timestep (beta = exp(-dt/tau) for ``tau``)."""

    def __init__(self, dt: float = 1e-3):
        if not dt > 0:
            raise SnnhwError(f"dt must be > 0 seconds, got {dt}")
        self.dt = float(dt)
        self._input: Group | None = None
        self._pops: dict[str, LIF] = {}
        self._synapses: dict[str, Dense] = {}  # population name -> its feed-forward synapse
        self._monitors: list[Monitor] = []
        self._plastic: dict[str, STDP] = {}      # population name -> the rule of its input synapse
        self._weight_monitors: list[WeightMonitor] = []
        self._homeostasis: dict[str, _Homeostasis] = {}

    # ------------------------------------------------------------------ building
    def input(self, n: int, kind: str = "spikes", name: str = "input") -> Group:
        """The network input: ``n`` channels. kind: ``spikes`` (0/1 per step) or ``graded`` (analog
        values, quantized to the target's input bits)."""
        if self._input is not None:
            raise SnnhwError("the network already has an input; the IR has one input node")
        if kind not in ("spikes", "graded"):
            raise SnnhwError(f"input kind {kind!r}: expected 'spikes' or 'graded'")
        self._input = Group(name, _positive(n, "input size"), kind)
        return self._input

    def lif(self, n: int, beta: float | None = None, tau: float | None = None, threshold: float = 1.0,
            alpha: float = 0.0, reset: str = "zero", reset_timing: str = "immediate", bias: float = 0.0,
            name: str | None = None) -> Group:
        """A population of ``n`` LIF neurons (docs/semantics.md): per step ``u = alpha·u + input``,
        ``v = beta·v + u + bias``, spike when ``v > threshold``, then reset.

        beta: membrane decay per step (0..1), or tau: membrane time constant in seconds
        (beta = exp(-dt/tau)); give exactly one. alpha: synaptic current decay per step (0 = no
        synaptic current). threshold and bias: threshold units (bias is added every step).
        reset: ``zero``, ``subtract`` or ``none``; reset_timing: ``immediate`` (in the spike step)
        or ``delayed`` (next step, snntorch's default). Loihi needs zero/immediate.
        """
        if (beta is None) == (tau is None):
            raise SnnhwError("lif: give exactly one of beta (per step) or tau (seconds)")
        if tau is not None:
            if not tau > 0:
                raise SnnhwError(f"lif: tau must be > 0 seconds, got {tau}")
            beta = float(np.exp(-self.dt / tau))
        for what, value in (("beta", beta), ("alpha", alpha)):
            if not 0 <= value <= 1:
                raise SnnhwError(f"lif: {what} must be in [0, 1], got {value}")
        if not threshold > 0:
            raise SnnhwError(f"lif: threshold must be > 0, got {threshold}")
        if reset not in RESETS or reset_timing not in ("immediate", "delayed"):
            raise SnnhwError(f"lif: reset must be one of {RESETS} and reset_timing 'immediate' or 'delayed'")
        name = name or f"lif{len(self._pops) + 1}"
        if name in self._pops or (self._input and name == self._input.name):
            raise SnnhwError(f"lif: the name {name!r} is taken")
        scalar = lambda v: np.asarray(v, np.float32).reshape(())
        self._pops[name] = LIF(name, "", (_positive(n, "population size"),), scalar(alpha), scalar(beta),
                               scalar(threshold), scalar(bias), reset, reset_timing)
        return Group(name, n, "lif")

    def connect(self, pre: Group, post: Group, weight, bias=None, plasticity: STDP | None = None) -> None:
        """Synapses from ``pre`` to population ``post``: ``weight`` is ``(post.size, pre.size)``
        (as torch.nn.Linear; threshold units per spike); ``bias`` ``(post.size,)`` is added every step.
        ``plasticity``: the weights learn by this rule (feed-forward synapses from spikes, no bias).

        ``pre`` is the input or a population created before ``post``; ``pre is post`` makes the
        recurrent synapse (one step delay). Each population takes one of each.
        """
        if post.kind != "lif" or post.name not in self._pops:
            raise SnnhwError(f"connect: the target {post.name!r} is not a population of this network")
        w = np.asarray(weight, np.float32)
        if w.shape != (post.size, pre.size) or not np.all(np.isfinite(w)):
            raise SnnhwError(f"connect {pre.name} -> {post.name}: weight must be finite with shape "
                             f"({post.size}, {pre.size}) = (post, pre), got {w.shape}")
        b = None if bias is None else np.asarray(bias, np.float32).reshape(post.size)
        pop = self._pops[post.name]
        if pre == post:
            if pop.rec_weight is not None:
                raise SnnhwError(f"connect: {post.name} already has its recurrent synapse (one per population)")
            pop.rec_weight, pop.rec_bias = w, b
            return
        if post.name in self._synapses:
            raise SnnhwError(f"connect: {post.name} already has an input synapse (from "
                             f"{self._synapses[post.name].input}); snnhw.api builds one feed-forward synapse per "
                             "population: merge the sources into one input or one earlier population, or import "
                             "a model with a skip connection from snntorch")
        order = list(self._pops)
        if not (pre == self._input or (pre.name in self._pops and order.index(pre.name) < order.index(post.name))):
            raise SnnhwError(f"connect: {pre.name} must be the input or a population created before {post.name}")
        if plasticity is not None:
            if b is not None or pre == post:
                raise SnnhwError(f"connect {pre.name} -> {post.name}: a plastic synapse is feed-forward, without bias")
            if self._input is pre and pre.kind != "spikes":
                raise SnnhwError("connect: a plastic synapse needs spike input (input kind 'spikes')")
            self._plastic[post.name] = plasticity
        self._synapses[post.name] = Dense(f"{post.name}.syn", pre.name, w, b)

    def lateral_inhibition(self, group: Group, weight: float) -> None:
        """Every neuron of ``group`` inhibits every other one by ``weight`` (threshold units, > 0)
        one step after it spikes (the recurrent synapse ``-weight * (1 - I)``)."""
        if not weight > 0:
            raise SnnhwError(f"lateral_inhibition: weight must be > 0, got {weight}")
        self.connect(group, group, -float(weight) * (1 - np.eye(group.size, dtype=np.float32)))

    def adaptive_threshold(self, group: Group, theta_plus: float, decay: float = 1.0) -> None:
        """Homeostasis between learning runs (Diehl & Cook's adaptive threshold): after every
        ``run(..., learn=True)`` each neuron's excitability drops by ``theta_plus`` threshold units
        per spike it fired (``theta = decay * theta + theta_plus * spikes``). The IR has no threshold
        that changes during a run, and Loihi has one threshold per population, so theta is applied
        as a per-neuron negative bias ``-theta * (1 - beta)``: in a steady state it raises the
        voltage needed to fire by theta. It changes between runs only."""
        pop = self._pops.get(group.name)
        if pop is None or not 0 <= decay <= 1 or not theta_plus >= 0:
            raise SnnhwError("adaptive_threshold: a population of this network, theta_plus >= 0, 0 <= decay <= 1")
        self._homeostasis[group.name] = _Homeostasis(float(theta_plus), float(decay), np.zeros(group.size))

    def weight_monitor(self, post: Group) -> WeightMonitor:
        """Record the weights of the plastic synapse into ``post`` after every learning run."""
        if post.name not in self._plastic:
            raise SnnhwError(f"weight_monitor: {post.name} has no plastic input synapse")
        mon = WeightMonitor(post)
        self._weight_monitors.append(mon)
        return mon

    def normalize_weights(self, post: Group, total: float) -> None:
        """Scale each neuron's input weights (into ``post``) to sum to ``total`` threshold units
        (Diehl & Cook's weight normalization); between runs, like every change made here: the next
        compile rounds the weights to the target's integer grid."""
        syn = self._synapses[post.name]
        sums = syn.weight.sum(axis=1, keepdims=True)
        syn.weight = np.where(sums > 0, syn.weight * (total / np.where(sums > 0, sums, 1)), syn.weight).astype(np.float32)
        if post.name in self._plastic:
            rule = self._plastic[post.name]
            syn.weight = np.clip(syn.weight, rule.w_min, rule.w_max)

    def weights(self, post: Group) -> np.ndarray:
        """The current weights ``(post, pre)`` into ``post`` (threshold units)."""
        return self._synapses[post.name].weight.copy()

    def freeze(self) -> None:
        """Make every plastic synapse static with its current (learned) weights, so the network
        compiles for any target (fpga included) and deploys what was learned."""
        self._plastic.clear()
        self._weight_monitors.clear()

    def monitor(self, group: Group, state: bool = False) -> Monitor:
        """Record the spikes of ``group`` (and its voltage and current with ``state=True``) in every run."""
        if group.name not in self._pops:
            raise SnnhwError(f"monitor: {group.name!r} is not a population of this network")
        mon = Monitor(group, state)
        self._monitors.append(mon)
        return mon

    # ------------------------------------------------------------------ compiling and running
    def graph(self) -> Graph:
        """The float IR of the network (validated)."""
        if self._input is None or not self._pops:
            raise SnnhwError("the network needs an input and at least one population")
        nodes = [Input(self._input.name, (self._input.size,))]
        for name, pop in self._pops.items():
            if name not in self._synapses:
                raise SnnhwError(f"population {name} has no input synapse; connect something to it")
            syn = self._synapses[name]
            pop.input = syn.name
            rule = self._plastic.get(name)
            if rule is not None:  # the rule in integer units is set when compiling (_learning_rules)
                syn = PlasticDense(syn.name, syn.input, syn.weight, post=name, rule=rule.rule(TRACE_PEAK, self.dt),
                                   w_min=float(rule.w_min), w_max=float(rule.w_max))
            if name in self._homeostasis:
                h = self._homeostasis[name]
                pop = replace(pop, bias=(pop.bias - h.theta * (1 - pop.beta)).astype(np.float32))
            nodes += [syn, pop]
        return Graph(nodes, kind="float", dt=self.dt, meta={"frontend": "snnhw.api"}).validate()

    def compile(self, target: str = "emu", x_max: float = 1.0) -> Graph:
        """The fixed IR for ``target`` (a name from ``snnhw targets``). x_max: largest |input| (graded input)."""
        from snnhw.compiler.pipeline import CompileOptions, compile_graph
        from snnhw.targets import load as load_target
        tgt = load_target(target)
        bits = 1 if self._input.kind == "spikes" else tgt.numerics.input_bits
        return self._learning_rules(compile_graph(self.graph(), tgt, CompileOptions(input_bits=bits, input_max=x_max)))

    def build(self, out_dir, target: str = "emu", x_max: float = 1.0) -> list[str]:
        """Write a build directory for ``target``, as ``snnhw compile`` does (fixed and float IR,
        quantization report, the backend's artifacts, mapping, manifest), with the weights as they
        are now: learned weights included. Plastic synapses stay plastic (``freeze()`` first to
        deploy the learned weights as static synapses, e.g. on fpga). Returns the files written."""
        import importlib
        from pathlib import Path
        from snnhw import build as b
        from snnhw.compiler.mapping import map_graph
        from snnhw.compiler.quant_report import quantization_report
        from snnhw.ir import save
        from snnhw.targets import load as load_target
        float_g, fixed = self.graph(), self.compile(target, x_max)
        mapping = map_graph(fixed, load_target(target))
        with b.atomic_dir(Path(out_dir)) as tmp:
            save(float_g, tmp / b.FLOAT_IR)
            save(fixed, tmp / b.FIXED_IR)
            b.write_json(tmp / "quantization.json", quantization_report(float_g, fixed, None))
            files = [b.FLOAT_IR, b.FIXED_IR, "quantization.json"]
            files += importlib.import_module(load_target(target).backend).emit(fixed, tmp)
            if mapping is not None:
                b.write_json(tmp / b.MAPPING, mapping)
                files.append(b.MAPPING)
            b.write_manifest(tmp, fixed, files, {"input_kind": self._input.kind})
        return files

    def _learning_rules(self, g: Graph) -> Graph:
        """Each plastic synapse's rule for its integer weights (the weight step is known now)."""
        nodes = [replace(n, rule=self._plastic[n.post].rule(int(n.w_max), self.dt)) if n.is_plastic
                 else n for n in g.nodes]
        return Graph(nodes, g.kind, g.dt, g.target, g.meta).validate()

    def run(self, x, target: str | None = "emu", learn: bool = False, engine: str | None = None) -> Result:
        """Run on input ``x`` ``[T, N]`` (or ``[T, B, N]``): spikes for a ``spikes`` input, values for ``graded``.

        target: compile for that target and run the build on that target's own backend (emu: the
        emulator; loihi: Lava; fpga: the RTL simulation); the spikes of a target with synapse delays
        (loihi) are shifted back so step ``t`` answers input step ``t``. ``None`` runs the float IR
        (float32, no quantization) in the emulator for comparison.
        learn: keep the weights plastic synapses learned (one sample: ``[T, N]`` input) and update
        adaptive thresholds; otherwise every run starts from the same weights.
        engine: ``None`` (the target's own backend, as above), ``emu`` (the emulator on the target's
        fixed-point IR: the fast path for learning loops; it equals every backend bit for bit) or
        ``lava`` (``target`` must be ``loihi``). ``Result.weights``: learned weights per plastic
        synapse's post population, ``[B, post, pre]`` threshold units.
        """
        from snnhw.compiler.timing import arrival
        if self._input is None:
            raise SnnhwError("the network needs an input")
        x = np.asarray(x, np.float32)
        single = x.ndim == 2
        xb = x[:, None] if single else x
        if xb.ndim != 3 or xb.shape[2] != self._input.size:
            raise SnnhwError(f"run: input must be [T, {self._input.size}] or [T, B, {self._input.size}], "
                             f"got {x.shape}")
        if target is None:
            g = self.graph()
        else:
            g = self.compile(target, float(np.abs(xb).max()) or 1.0)
        if learn and xb.shape[1] != 1:
            raise SnnhwError("run(learn=True) takes one sample [T, N]: samples learn independent weights")
        shift = arrival(g)
        pad = max(shift.values())
        xp = np.concatenate([xb, np.zeros((pad, *xb.shape[1:]), np.float32)]) if pad else xb
        run = self._engine(g, xp, any(m.state for m in self._monitors), target, engine)
        T = xb.shape[0]
        res = Result(t=np.arange(T) * self.dt, overflow=run.overflow, graph=g)
        for mon in self._monitors:
            name, d = mon.group.name, shift[mon.group.name]
            unit = 1.0 if g.kind == "float" else g.node(name).format.state_scale
            cut = lambda a, scale: (a[d:d + T] * scale).astype(np.float32)[:, 0] if single else \
                (a[d:d + T] * scale).astype(np.float32)
            res.spikes[name] = mon.spikes = cut(run.spikes[name], 1.0)
            if mon.state:
                res.voltage[name] = mon.voltage = cut(run.voltage[name], unit)
                res.current[name] = mon.current = cut(run.current[name], unit)
            mon.t = res.t
        for n in g.nodes:
            if n.is_plastic:
                res.weights[n.post] = run.weights[n.name] * _weight_unit(g, n)
        if learn:
            self._learned(g, run, res, shift, T)
        return res

    def _engine(self, g: Graph, x: np.ndarray, record: bool, target: str | None, engine: str | None):
        from snnhw.deploy import run_graph
        from snnhw.targets.emu.emulator import Emulator
        if engine not in (None, "emu", "lava") or (engine == "lava" and target != "loihi"):
            raise SnnhwError(f"engine {engine!r}: use None (the target's backend), 'emu', or 'lava' with target='loihi'")
        if target is None or engine == "emu":
            return Emulator(g).run(x, record_state=record)
        return run_graph(g, x, record)  # the target's own backend on a build (Lava for loihi)

    def _learned(self, g: Graph, run, res: Result, shift: dict, T: int) -> None:
        """Keep learned weights, record weight monitors, update adaptive thresholds."""
        for n in g.nodes:
            if n.is_plastic:
                syn = self._synapses[n.post]
                syn.weight = res.weights[n.post][0].astype(np.float32)
                for mon in self._weight_monitors:
                    if mon.post.name == n.post:
                        mon.weights.append(syn.weight.copy())
                        mon.integers.append(run.weights[n.name][0].copy())
        for name, h in self._homeostasis.items():
            d = shift[name]
            count = run.spikes[name][d:d + T, 0].reshape(T, -1).sum(axis=0)
            h.theta = h.decay * h.theta + h.theta_plus * count


def _weight_unit(g: Graph, syn: Dense) -> float:
    """Threshold units of one integer weight of ``syn`` (its post population's state LSB << input_shift)."""
    f = g.node(syn.post).format
    return f.state_scale * (1 << f.input_shift)


def _positive(n, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise SnnhwError(f"{what} must be a positive integer, got {n!r}")
    return int(n)
