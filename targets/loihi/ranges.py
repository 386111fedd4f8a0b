"""Range proof and model plan of the ``loihi`` target: never accepted-and-different.

The IR (docs/semantics.md) computes with exact integers and applies register rules where it says
so; Lava 0.10.0's fixed_pt models compute in int32 and wrap silently when a value leaves it
(``Dense`` sums, the in-port's sum, ``a << 6``, ``u + a``, ``v + u + bias``). The two agree
exactly when every intermediate value stays inside int32 and each IR rule is one Lava applies at
the same place. This module bounds every value statically, for *every* run length, and decides per
population which Lava process runs it:

- ``intel``: Lava's own ``LIF`` (PyLifModelBitAcc) fed by Lava ``Dense``/``Conv``. Needs a zero,
  immediate reset, one du/dv/vth per layer inside Loihi's field widths, a bias that fits
  ``bias_mant << bias_exp``, an accumulator rule that provably never fires (Lava's Dense does not
  saturate) and, where a synapse bias is moved into the voltage bias (Lava has no current bias),
  a proof that ``u`` never wraps (only then is the move exact).
- ``microcode``: snnhw's ``MicrocodeLIF`` (microcode_lif.py), which implements docs/semantics.md
  itself (accumulator rules, current bias, every reset, per-neuron parameters) in int32 registers.

A network is refused when some value can leave int32 on the model chosen: the message names the
layer, the register, the bound and a remedy.

Bounds (all magnitudes, per layer, valid for all t; ``h = 2^(bits-1)`` of a register):

- synapse output ``|W x + b| <= max_i (sum_j |W_ij| X + |b_i|)`` for inputs ``|x| <= X`` (1 for
  spikes, ``2^(bits-1) - 1`` for graded input); the accumulator rule caps it (saturate: h - 1).
- current input ``I = (A + R) << S`` (feed-forward A and recurrent R after their rules).
- current: the rules never increase a magnitude and ``|decay(x, q)| <= |x| q / 2^D`` (toward
  zero; floor rounding adds 1), so ``|u| <= U* = (I + r) / (1 - q/2^D)`` for ``q < 2^D``.
  ``wrap_once`` also closes at ``h``: if ``decay(h) + I <= 3h - 1`` then one correction brings
  every value back into ``(-h, h]`` and by induction ``|u| <= h`` for all t, also for ``q = 2^D``.
  A current with neither bound (no decay, not closed) grows without limit and is refused.
- voltage: stored ``|v| <= h_v - 1`` (saturate); before the rule ``decay(v) + u + bias`` and a
  subtractive reset ``± threshold``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from snnhw.ir import LIF, Dense, Graph
from snnhw.semantics import half, rule_bound, rule_needed, stored_bound, wrap_once_closed
from snnhw.targets.description import TargetDescription

INTEL = "intel"
MICROCODE = "microcode"
REMEDY = ("calibrate with --calib (state ranges set the scale), use fewer or smaller inputs "
          "(--input-bits), or smaller weights (--weight-bits)")


@dataclass
class LayerPlan:
    """Which Lava process runs one population, why, and the proven magnitude bounds (state units).

    acc: |feed-forward synaptic sum + bias| before its accumulator rule; rec: the same for the
    recurrent synapse; current_in: |(a + r) << input_shift|; current_pre / current: |u| before and
    after its rule; voltage_pre: |v| before its rule (decay, u, bias, reset); the int32 limit
    applies to all of them."""

    name: str
    model: str
    why_not_intel: list = field(default_factory=list)
    bias_moved_to_voltage: bool = False
    acc: int = 0
    rec: int = 0
    current_in: int = 0
    current_pre: int = 0
    current: int = 0
    voltage_pre: int = 0

    def bits_needed(self) -> int:
        """Signed register width holding every value of this population."""
        m = max(self.acc, self.rec, self.current_in, self.current_pre, self.voltage_pre)
        return m.bit_length() + 1

    def as_dict(self) -> dict:
        return {"model": self.model, "why_not_intel": list(self.why_not_intel),
                "bias_moved_to_voltage": self.bias_moved_to_voltage,
                "bounds": {"acc": self.acc, "rec": self.rec, "current_in": self.current_in,
                           "current_pre": self.current_pre, "current": self.current,
                           "voltage_pre": self.voltage_pre},
                "register_bits_needed": self.bits_needed()}


@dataclass(frozen=True)
class LavaFields:
    """[lava] of target.toml: Lava's integer width and Loihi's register fields."""

    int_max: int
    du_max: int
    dv_max: int
    vth_max: int
    bias_mant_max: int
    bias_exp_max: int
    weight_min: int
    weight_max: int
    rec_delay: int
    micro_max: int
    micro_decay_max: int

    @classmethod
    def of(cls, t: TargetDescription) -> "LavaFields":
        f = t.raw["lava"]
        wb = int(f["dense_weight_bits"])
        return cls(int_max=(1 << (int(f["int_bits"]) - 1)) - 1, du_max=(1 << int(f["du_bits"])) - 1,
                   dv_max=(1 << int(f["dv_bits"])) - 1, vth_max=(1 << int(f["vth_bits"])) - 1,
                   bias_mant_max=(1 << (int(f["bias_mant_bits"]) - 1)) - 1,
                   bias_exp_max=(1 << int(f["bias_exp_bits"])) - 1,
                   weight_min=-(1 << (wb - 1)), weight_max=(1 << (wb - 1)) - 1, rec_delay=int(f["rec_delay"]),
                   micro_max=(1 << (int(f["microcode_register_bits"]) - 1)) - 1,
                   micro_decay_max=(1 << (int(f["microcode_decay_bits"]) - 1)))


def bias_parts(bias: np.ndarray, fields: LavaFields):
    """Split state-unit biases into Lava's ``bias_mant << bias_exp`` (per neuron); None if impossible."""
    b = np.asarray(bias, dtype=np.int64)
    mant = b.copy()
    exp = np.zeros_like(b)
    for e in range(fields.bias_exp_max + 1):
        fits = np.abs(mant) <= fields.bias_mant_max
        if fits.all():
            return mant, exp
        shift = ~fits & (b % (1 << (e + 1)) == 0)
        mant = np.where(shift, b >> (e + 1), mant)
        exp = np.where(shift, e + 1, exp)
    return None


def feed_synapse(g: Graph, pop: LIF):
    """The Dense/Conv2d whose output the population reads directly or through Flatten (None: the input)."""
    n = g.through_reshapes(pop.input, pools=False)[0]
    return n if n.is_synapse else None


def feed_bias(g: Graph, pop: LIF) -> np.ndarray:
    """The feeding synapse's bias per neuron of ``pop`` (weight units; zeros without one)."""
    syn = feed_synapse(g, pop)
    if syn is None or syn.bias is None:
        return np.zeros(pop.shape, np.int64)
    b = np.broadcast_to(syn.bias_map().astype(np.int64), syn.shape)
    return np.ascontiguousarray(b).reshape(pop.shape)


def rec_bias(pop: LIF) -> np.ndarray:
    return np.zeros(pop.shape, np.int64) if pop.rec_bias is None else pop.rec_bias.astype(np.int64).reshape(pop.shape)


def voltage_bias(g: Graph, pop: LIF, lp: LayerPlan) -> np.ndarray:
    """Lava LIF's voltage bias in state units: the population's own plus, when the plan moves them
    (alpha == 0 and u provably never wraps, so v and the spikes are unchanged), the synapse biases."""
    total = np.broadcast_to(pop.bias, pop.shape).astype(np.int64)
    if lp.bias_moved_to_voltage:
        total = total + ((feed_bias(g, pop) + rec_bias(pop)) << pop.format.input_shift)
    return total


def _row_abs_sums(n) -> np.ndarray:
    """Per output neuron, sum of the largest |w| over its inputs (a conv: per output channel, ignoring
    padding; a plastic synapse: its weight bounds)."""
    w = n.weight_magnitudes().astype(np.int64)
    return w.reshape(w.shape[0], -1).sum(axis=1)


def _output_bounds(g: Graph) -> dict:
    """Per node, a bound on |output| (synapses: before their rule, raw sum without and with bias)."""
    inp = g.input
    out = {inp.name: (1 << (inp.bits - 1)) - 1 if inp.bits > 1 else 1}
    raw = {}
    for n in g.nodes[1:]:
        x = out[n.input]
        if n.is_synapse:
            sums = _row_abs_sums(n) * x
            bias = np.zeros_like(sums) if n.bias is None else np.abs(n.bias.astype(np.int64))
            raw[n.name] = (int(sums.max(initial=0)), int((sums + bias).max(initial=0)))
            out[n.name] = rule_bound(n.acc, raw[n.name][1])
        elif n.is_reshape:
            out[n.name] = int(n.bound(x))
        else:
            out[n.name] = 1
    return {"out": out, "raw": raw}


def _decay_bound(x: int, q: int, fmt) -> int:
    """Largest |decay(x', q)| for |x'| <= x (floor rounding of a negative value adds one)."""
    p = x * q
    return -(-p >> fmt.decay_bits) if fmt.decay_rounding == "floor" else p >> fmt.decay_bits


def _current_bounds(pop: LIF, current_in: int) -> tuple[int, int] | None:
    """(|u| before its rule, |u| stored), valid for every step; None if u can grow without limit."""
    f = pop.format
    q = int(np.max(pop.alpha))
    one = 1 << f.decay_bits
    best = None
    if q < one:  # fixed point of |u| <= |u| q / 2^D + I (+1 for floor rounding)
        r = 1 if f.decay_rounding == "floor" else 0
        best = math.ceil((current_in + r) * one / (one - q))
    h = stored_bound(f.current)
    closed = f.current.overflow != "wrap_once" or wrap_once_closed(f.current, _decay_bound(h, q, f) + current_in)
    if closed:
        best = h if best is None else min(best, h)
    if best is None:
        return None
    return _decay_bound(best, q, f) + current_in, best


def _voltage_pre(pop: LIF, current: int) -> int:
    f = pop.format
    v = stored_bound(f.voltage)
    bias = int(np.abs(pop.bias).max(initial=0))
    reset = int(np.max(pop.threshold)) if pop.reset_mode == "subtract" else 0
    return _decay_bound(v, int(np.max(pop.beta)), f) + current + bias + reset


def _intel_obstacles(g: Graph, pop: LIF, fields: LavaFields, num, acc_fires: bool) -> list[str]:
    """Why Lava's own LIF cannot run ``pop`` exactly (empty: it can)."""
    f = pop.format
    why = []
    if (pop.reset_mode, pop.reset_timing) != ("zero", "immediate"):
        why.append(f"reset {pop.reset_mode}/{pop.reset_timing} (Lava's LIF resets v to 0 in the spike's step)")
    if any(np.ndim(getattr(pop, k)) for k in ("alpha", "beta", "threshold")):
        why.append("per-neuron alpha/beta/threshold (Lava's LIF has one du, dv, vth per layer)")
    if (f.decay_bits, f.decay_rounding, f.input_shift) != (num.decay_bits, num.decay_rounding, num.input_shift) \
            or (f.current, f.voltage) != (num.current, num.voltage):
        why.append("a register format other than Lava's LIF (u 24-bit wrap_once, v 24-bit saturate)")
    one = 1 << f.decay_bits
    du = one - 1 - int(np.max(pop.alpha))
    dv = one - int(np.min(pop.beta))
    if not 0 <= du <= fields.du_max:
        why.append(f"alpha {int(np.max(pop.alpha))}/{one} needs du = {du}, outside Loihi's du field 0..{fields.du_max}")
    if not 0 <= dv <= fields.dv_max:
        why.append(f"beta {int(np.min(pop.beta))}/{one} needs dv = {dv}, outside Loihi's dv field 0..{fields.dv_max}")
    thr, lsb = int(np.max(pop.threshold)), 1 << num.threshold_lsb_bits
    if thr % lsb or thr // lsb > fields.vth_max:
        why.append(f"threshold {thr} is not vth << {num.threshold_lsb_bits} with vth <= {fields.vth_max}")
    if acc_fires:
        why.append("the synaptic sum can reach the accumulator limit (Lava's Dense does not saturate)")
    if pop.rec_weight is not None and pop.rec_delay != fields.rec_delay:
        why.append(f"recurrent delay {pop.rec_delay} (a Lava Dense loop delays by {fields.rec_delay})")
    return why


def plan(g: Graph, t: TargetDescription) -> tuple[dict, list[str]]:
    """Per population a :class:`LayerPlan`; and the refusals (empty: every value is proven in range)."""
    fields = LavaFields.of(t)
    num = t.numerics
    b = _output_bounds(g)
    plans, problems = {}, []
    for n in g.nodes[1:]:
        if n.is_synapse:
            w = n.weight
            if w.size and (int(w.min()) < fields.weight_min or int(w.max()) > fields.weight_max
                           or int(n.weight_magnitudes().max()) > max(-fields.weight_min, fields.weight_max)):
                problems.append(f"layer {n.name}: weights outside Lava Dense's {fields.weight_min}..{fields.weight_max}")
            if b["raw"][n.name][0] > fields.int_max:
                problems.append(f"layer {n.name}: the synaptic sum can reach {b['raw'][n.name][0]} "
                                f"(> {fields.int_max}, Lava's int32); {REMEDY}")
            if n.delay != num.synapse_delay:
                problems.append(f"layer {n.name}: synapse delay {n.delay}, but Lava's Dense/Conv delay by "
                                f"{num.synapse_delay} step; recompile for loihi")
            expected = getattr(num, n.acc_register)
            if n.acc != expected:
                problems.append(f"layer {n.name}: accumulator {n.acc.bits}-bit {n.acc.overflow} is not the "
                                f"loihi target's {expected.bits}-bit {expected.overflow}; recompile for loihi")
        if not n.is_population:
            continue
        plans[n.name], found = _plan_population(g, n, b, fields, num)
        problems += found
    return plans, problems


def _plan_population(g: Graph, pop: LIF, b: dict, fields: LavaFields, num):
    syn = feed_synapse(g, pop)
    shift = pop.format.input_shift
    if syn is None:
        acc = a = b["out"][pop.input]
        acc_fires = False
    else:
        acc = b["raw"][syn.name][1]
        a = rule_bound(syn.acc, acc)
        # Lava's Conv wraps its output itself (the IR's conv rule); Lava's Dense never saturates
        acc_fires = rule_needed(syn.acc, acc) and (isinstance(syn, Dense) or np.any(feed_bias(g, pop)))
    rec = r = 0
    problems = []
    if pop.rec_weight is not None:
        rec_raw = int(np.abs(pop.rec_weight.astype(np.int64)).sum(axis=1).max(initial=0))
        rec = rec_raw + int(np.abs(rec_bias(pop)).max(initial=0))
        r = rule_bound(pop.rec_acc, rec)
        acc_fires = acc_fires or rule_needed(pop.rec_acc, rec)
        if rec_raw > fields.int_max:
            problems.append(f"layer {pop.name}: the recurrent sum can reach {rec_raw} (> {fields.int_max}, int32)")
    lp = LayerPlan(pop.name, INTEL, acc=acc, rec=rec, current_in=(a + r) << shift)
    lp.why_not_intel = _intel_obstacles(g, pop, fields, num, acc_fires)
    has_syn_bias = bool(np.any(feed_bias(g, pop)) or np.any(rec_bias(pop)))
    if has_syn_bias:
        h = half(pop.format.current)
        if np.any(pop.alpha != 0):
            lp.why_not_intel.append("a synapse bias feeding a current with memory (Lava's LIF has no current bias)")
        elif lp.current_in > h - 1:
            lp.why_not_intel.append(f"a synapse bias moved into the voltage bias is exact only while u cannot "
                                    f"wrap; |u| can reach {lp.current_in} (>= 2^{pop.format.current.bits - 1})")
        lp.bias_moved_to_voltage = True
    total_bias = np.broadcast_to(pop.bias, pop.shape).astype(np.int64) + \
        ((feed_bias(g, pop) + rec_bias(pop)) << shift if has_syn_bias else 0)
    if bias_parts(total_bias, fields) is None:
        lp.why_not_intel.append(f"voltage bias up to {int(np.abs(total_bias).max())} does not fit bias_mant "
                                f"({fields.bias_mant_max}) << bias_exp (<= {fields.bias_exp_max})")
    if lp.why_not_intel:
        lp.model, lp.bias_moved_to_voltage = MICROCODE, False
    limit = fields.int_max if lp.model == INTEL else fields.micro_max
    if lp.model == MICROCODE:
        for k in ("alpha", "beta"):
            if int(np.max(getattr(pop, k))) > fields.micro_decay_max:
                problems.append(f"layer {pop.name}: {k} does not fit MicrocodeLIF's decay field "
                                f"(0..{fields.micro_decay_max})")
    cur = _current_bounds(pop, lp.current_in)
    what = "Lava's LIF" if lp.model == INTEL else "MicrocodeLIF"
    if cur is None:
        problems.append(f"layer {pop.name}: current u has no decay (alpha = 1) and inputs up to "
                        f"{lp.current_in} per step can carry it past 3 * 2^{pop.format.current.bits - 1}, where "
                        f"one wrap no longer restores it, so u grows without limit over a long run and leaves "
                        f"{what}'s int32; {REMEDY}")
        return lp, problems
    lp.current_pre, lp.current = cur
    lp.voltage_pre = _voltage_pre(pop, lp.current)
    for reg, val in (("synaptic input a << input_shift", lp.current_in), ("current u", lp.current_pre),
                     ("voltage v", lp.voltage_pre)):
        if val > limit:
            problems.append(f"layer {pop.name}: {reg} can reach {val} (> {limit}, the int32 register of {what}); "
                            f"over a long run Lava would wrap where the IR does not; {REMEDY}")
    return lp, problems


def problems(g: Graph, t: TargetDescription) -> list[str]:
    """The refusals of the range proof (the legalize pass runs this for a fixed IR)."""
    return plan(g, t)[1]
