"""Quantization pass: float IR -> fixed-point IR with per-layer power-of-two scales (refined per neuron
by per-channel steps where a layer's rows would lose bits).

Scales (float value of one integer unit) are tracked along the graph:
* the input: binary spikes have scale 1; graded input gets 2^-k, the largest k with
  max|x| * 2^k <= 2^(input_bits-1) - 1 (max|x| from calibration data, 1.0 without), coarsened when
  the first synapse would otherwise lose weight bits (below);
* spikes leaving a population have scale 1; average pooling becomes sum pooling and divides the
  scale by the window size; flatten keeps it;
* a Dense/Conv quantizes its *effective* weights ``W * s_in`` with step 2^-k, the largest k that
  keeps every weight within the target's weight bits and, for the population it feeds, the
  threshold within ``threshold_max``, the total bias within ``bias_max`` and the recurrent weights
  within the weight bits; with calibration data also the largest |u|, |v| inside the registers, but
  never at the cost of more than ``weight_bits - MIN_WEIGHT_BITS`` weight bits (beyond that the
  predicted overflow is reported instead);
* per-channel steps (:func:`channel_gains`, ``--channel-steps``, targets with
  ``features.channel_steps``): where a layer's rows would lose effective bits, each neuron of a
  Dense-fed population gets its own step, the layer's divided by a gain >= 1 that lets its row use
  the whole weight range within every bound; its threshold, bias and state unit scale with it;
* a population's state LSB is ``S / 2^input_shift`` for its input scale S (per neuron with
  per-channel steps); thresholds and biases
  are rounded in those units (thresholds to multiples of 2^threshold_lsb_bits); decays become
  integers in units of 2^-decay_bits. A population without current decay (alpha = 0) takes the
  biases of its Dense and recurrent synapses into its own bias (exactly the same sum, 2^input_shift times finer).

Never silent: every weight matrix keeping fewer than ``MIN_WEIGHT_BITS`` effective bits, every bias
that vanishes, every coarsened input is a warning (``Graph.meta['quantization_warnings']``, a JSON
list, shown by ``snnhw compile`` and in quantization.json); a layer that quantization leaves dead
(every weight 0, or a threshold no input can reach) is refused with the reason and a remedy.
"""
from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np

from snnhw.errors import SnnhwError
from snnhw.ir import LIF, Dense, Graph, Input, NeuronFormat
from snnhw.ir.nodes import MAX_SYNAPSE_EXP
from snnhw.targets.description import TargetDescription

MIN_WEIGHT_BITS = 4  # effective bits (sign included) a weight matrix keeps at least; fewer is warned
MIN_INPUT_BITS = 4   # effective bits graded input keeps at least when traded for weight bits
CHANNEL_STEPS = ("auto", "on", "off")  # per-channel weight steps: where rows lose bits, wherever a row gains, never
MAX_CHANNEL_BITS = 24  # a row's step is at most 2^24 times finer than its layer's (its threshold bounds it too)
WARNINGS = "quantization_warnings"
CHANNEL_META = "channel_steps"  # Graph.meta: JSON {"policy", "layers": {population: {synapse, gain, ...}}}


def _exp_for(max_abs: float, limit: float) -> int:
    """Largest k with max_abs * 2^k <= limit (k may be negative)."""
    if max_abs <= 0:
        return 30
    return math.floor(math.log2(limit / max_abs))


def _round(x) -> np.ndarray:
    return np.asarray(np.round(np.asarray(x, dtype=np.float64)), dtype=np.int64)


def _round_weights(w: np.ndarray, factor, bits: int) -> np.ndarray:
    """``round(w * factor)`` for weights that fit ``bits`` (< 2^24: exact in float32), stored in the
    narrowest integer type, without float64 or int64 temporaries (weights are the bulk of a model).
    factor: one number, or one per output row (per-channel steps)."""
    f = np.asarray(factor, np.float32)
    q = np.multiply(w, f.reshape(-1, *[1] * (w.ndim - 1)) if f.ndim else f, dtype=np.float32)
    np.rint(q, out=q)
    return q.astype(np.int8 if bits <= 8 else np.int16 if bits <= 16 else np.int32)


def effective_bits(max_int: int) -> int:
    """Signed bits a value of magnitude ``max_int`` uses (0 for 0)."""
    return int(max_int).bit_length() + 1 if max_int else 0


def input_scale(x_max: float, bits: int) -> float:
    if bits == 1:
        return 1.0
    return 2.0 ** -_exp_for(x_max, (1 << (bits - 1)) - 1)


def quantize(g: Graph, target: TargetDescription, input_bits: int = 1, input_max: float = 1.0,
             weight_bits: int | None = None, ranges: dict | None = None, channel_steps: str = "auto") -> Graph:
    """Return the fixed-point IR of float graph ``g`` for ``target``.

    input_bits: 1 for binary spike input, otherwise the graded input width.
    input_max: largest |input| expected (from calibration data), for graded input.
    weight_bits: overrides the target's weight width (must not exceed it).
    ranges: calibrated state ranges (compiler.calibrate.state_ranges); each population's scale then
    also keeps its largest calibrated |u| and |v| inside the current and voltage registers.
    channel_steps: per-channel weight steps (one of CHANNEL_STEPS, see :func:`channel_gains`):
    ``auto`` where a layer's rows would lose effective bits, ``on`` wherever a row gains,
    ``off`` never; only on targets whose description allows them (``features.channel_steps``).
    """
    if g.kind != "float":
        raise SnnhwError("quantize expects a float IR")
    num = target.numerics
    wb = weight_bits or num.weight_bits
    if wb > num.weight_bits or wb < 2:
        raise SnnhwError(f"--weight-bits {wb}: target {target.name} supports 2..{num.weight_bits}")
    wmax = (1 << (wb - 1)) - 1
    warnings: list[str] = []
    if channel_steps not in CHANNEL_STEPS:
        raise SnnhwError(f"--channel-steps {channel_steps}: expected one of {', '.join(CHANNEL_STEPS)}")
    if channel_steps == "on" and not target.features.channel_steps:
        raise SnnhwError(f"--channel-steps on: target {target.name} has no per-channel weight steps "
                         "(features.channel_steps); use --channel-steps off")

    in_scale = input_scale(input_max, input_bits)
    split = target.features.synapse_exponent
    out_exp, full, limit, rec_exp = _exponents(g, num, wb, in_scale, ranges, split)
    shifts = _path_shifts(g, out_exp, limit)
    if input_bits > 1:
        coarse = _input_coarsening(g, in_scale, input_max, wb, out_exp, full)
        if coarse:
            kept = effective_bits(round(input_max / in_scale)) - coarse
            warnings.append(f"input: graded input keeps {kept} of its {input_bits} bits (scale "
                            f"2^{int(math.log2(in_scale)) + coarse}) so that the first layer keeps its weight bits "
                            f"(the {limit[_first_synapse(g)]} limits the step); pass --input-bits {kept} to say so")
            in_scale *= 2.0 ** coarse
            out_exp, full, limit, rec_exp = _exponents(g, num, wb, in_scale, ranges, split)
            shifts = _path_shifts(g, out_exp, limit)
    shifts = _path_shifts(g, out_exp, limit)
    scale = _scales(g, in_scale, out_exp)
    folded = _folded_biases(g)
    policy = channel_steps if target.features.channel_steps else "off"
    gains = channel_gains(g, num, wb, scale, out_exp, rec_exp, ranges, policy)
    row_gain = {g.node(pop).input: k for pop, k in gains.items()}  # per synapse: gain_i per row
    for name, k in rec_exp.items():
        e = out_exp[g.feeding_synapse(g.node(name).input)[0].name] - k
        if e > 0 and not ranges:
            warnings.append(f"layer {name}: its recurrent weights use a 2^{e} times coarser step than its feed-forward "
                            "weights, so its state unit is finer than the recurrent input; without calibration data "
                            "the state range is not checked against it: pass --calib")

    nodes = []
    for n in g.nodes:
        if n.is_input:
            nodes.append(Input(n.name, tuple(n.shape), input_bits, scale[n.name]))
        elif n.is_synapse:
            step = 2.0 ** -out_exp[n.name] / row_gain.get(n.name, 1.0)  # per row with channel steps
            w = _round_weights(n.weight, scale[n.input] / step, wb)
            b = None if n.bias is None or n.name in folded else _round(n.bias / step)
            acc = getattr(num, n.acc_register)
            nodes.append(replace(n, weight=w, bias=b, delay=num.synapse_delay, acc=acc, out_shift=shifts.get(n.name, 0),
                                 **_bounds(n, scale[n.input] / step)))
        elif n.is_reshape:
            nodes.append(n.fixed_form())
        elif n.is_population:
            syn = g.node(n.input)
            extra = _bias_of(syn, n) if syn.name in folded else None
            e = out_exp[g.feeding_synapse(n.input)[0].name] - rec_exp[n.name] if n.name in rec_exp else 0
            unit = scale[n.input] / gains[n.name] if n.name in gains else scale[n.input]
            nodes.append(_quantize_pop(n, unit, num, wmax, not np.any(n.alpha), extra, e))
    summary = {pop: {"synapse": g.node(pop).input, "gain": [float(k.min()), float(k.max())],
                     "neurons_gaining": int(np.count_nonzero(k > 1))} for pop, k in gains.items()}
    fixed = Graph(nodes, kind="fixed", dt=g.dt, target=target.name,
                  meta=dict(g.meta, weight_bits=str(wb), **{CHANNEL_META: json.dumps({"policy": policy,
                                                                                     "layers": summary})}))
    fixed.validate()
    from snnhw.compiler.quant_report import information_problems
    dead, lost = information_problems(g, fixed, limit, MIN_WEIGHT_BITS)
    if dead:
        more = f" (and {len(dead) - 1} more: {'; '.join(dead[1:])})" if len(dead) > 1 else ""
        raise SnnhwError(dead[0] + more)
    fixed.meta[WARNINGS] = json.dumps(warnings + lost)
    return fixed


def _first_synapse(g: Graph) -> str | None:
    return next((n.name for n in g.nodes if n.is_synapse), None)


def _exponents(g: Graph, num, wb: int, in_scale: float, ranges: dict | None, split: bool):
    """Step exponents: per synapse the chosen one (``out_exp``) and the one its weight bits alone
    allow (``full``); per recurrent population its recurrent weights' exponent (``rec_exp``, in the
    same terms: the recurrent step is 2^-rec_exp times any average-pooling factor); and what limits
    each (``limit``: ``weight bits``, ``threshold range``, ``bias range``, ``recurrent weights``,
    ``calibrated state range``). split: the target keeps the recurrent and feed-forward steps apart
    (``features.synapse_exponent``); otherwise both paths share one step."""
    wmax = (1 << (wb - 1)) - 1
    out_exp = {n.name: _exp_for(0.0, wmax) for n in g.nodes if n.is_synapse}
    scale = _scales(g, in_scale, out_exp)
    for n in g.nodes:  # weight bits: in order, since a synapse's input scale is fixed upstream
        if n.is_synapse:
            out_exp[n.name] = _exp_for(_weight_span(n) * scale[n.input], wmax)
            scale = _scales(g, in_scale, out_exp)
    full = dict(out_exp)
    limit = {k: "weight bits" for k in out_exp}
    rec_exp = {}
    for pop in g.neurons:  # the population's unit: threshold, bias and calibrated state ranges
        syn, factor = g.feeding_synapse(pop.input)
        if syn is None:
            continue
        k_pop, why = min(_pop_exps(pop, syn, factor, num), key=lambda kw: kw[0])
        k_rec = None
        if pop.rec_weight is not None and pop.rec_weight.size:
            k_rec = _exp_for(float(np.abs(pop.rec_weight).max()) / factor, wmax)
            limit[pop.name] = "weight bits"
        finest = min(full[syn.name], k_rec if k_rec is not None else full[syn.name])
        if ranges:
            k_range = _range_exp(ranges.get(pop.name), factor, num)
            k_range = max(k_range, finest - max(0, wb - MIN_WEIGHT_BITS))  # never below MIN_WEIGHT_BITS for a range
            if k_range < k_pop:
                k_pop, why = k_range, "calibrated state range"
        if k_rec is not None and not split and k_rec < min(k_pop, out_exp[syn.name]):
            k_pop, why = k_rec, "recurrent weights"
        if k_pop < out_exp[syn.name]:
            out_exp[syn.name], limit[syn.name] = k_pop, why
        if k_rec is not None:
            rec_exp[pop.name] = out_exp[syn.name]
            if split:
                rec_exp[pop.name] = min(k_rec, k_pop, out_exp[syn.name] + MAX_SYNAPSE_EXP)
                out_exp[syn.name] = min(out_exp[syn.name], rec_exp[pop.name] + MAX_SYNAPSE_EXP)
                if k_pop < k_rec:
                    limit[pop.name] = why
    return out_exp, full, limit, rec_exp


def _path_shifts(g: Graph, out_exp: dict, limit: dict) -> dict:
    """Per synapse on a population's extra input path, its ``out_shift``: the population's unit is set
    by its first path (``out_exp`` of that synapse); an extra path keeps the step its weight bits
    allow when that is coarser, shifted left by the difference (at most MAX_SYNAPSE_EXP), and is
    limited to the population's unit otherwise (``out_exp`` adjusted in place)."""
    shifts = {}
    for pop in g.neurons:
        if not pop.extra_inputs:
            continue
        main, factor = g.feeding_synapse(pop.input)
        for name in pop.extra_inputs:
            syn, f = g.feeding_synapse(name)
            if syn is None or main is None or f != factor:
                raise SnnhwError(f"layer {pop.name}: input path {name} must come from a Dense/Conv2d with the same "
                                 "pooling as its first path; put a Linear/Conv2d on every path of a skip connection")
            k = out_exp[main.name]
            if out_exp[syn.name] > k:
                out_exp[syn.name], limit[syn.name] = k, f"the unit of population {pop.name}"
            if k - out_exp[syn.name] > MAX_SYNAPSE_EXP:
                out_exp[syn.name], limit[syn.name] = k - MAX_SYNAPSE_EXP, "the largest synapse shift"
            shifts[syn.name] = k - out_exp[syn.name]
    return shifts


def _input_coarsening(g: Graph, in_scale: float, input_max: float, wb: int, out_exp: dict, full: dict) -> int:
    """Bits by which to coarsen graded input so the synapse reading it loses fewer weight bits: the
    deficit is shared so input and weights end with about the same effective bits, the input keeping
    at least MIN_INPUT_BITS."""
    name = _first_synapse(g)
    if name is None:
        return 0
    src = g.through_reshapes(g.node(name).input, pools=False)[0]
    if not src.is_input:
        return 0
    deficit = full[name] - out_exp[name]
    have = effective_bits(round(input_max / in_scale))
    if deficit <= 0 or have <= MIN_INPUT_BITS:
        return 0
    return int(min(deficit, have - MIN_INPUT_BITS, max(0, math.ceil((have - wb + deficit) / 2))))


def _weight_span(n) -> float:
    """Largest |weight| a synapse can hold during a run (a plastic synapse: its bounds too)."""
    return float(n.weight_magnitudes().max())


def _bounds(n, factor: float) -> dict:
    """A plastic synapse's weight bounds in integer weight units (nothing for a static synapse)."""
    if not n.is_plastic:
        return {}
    return {"w_min": int(np.round(float(n.w_min) * factor)), "w_max": int(np.round(float(n.w_max) * factor))}


def _scales(g: Graph, in_scale: float, out_exp: dict) -> dict:
    """Float value of one integer unit of every node's output."""
    scale = {}
    for n in g.nodes:
        if n.is_input:
            scale[n.name] = in_scale
        elif n.is_synapse:
            scale[n.name] = 2.0 ** -out_exp[n.name]
        elif n.is_reshape:
            scale[n.name] = scale[n.input] / n.divisor
        else:
            scale[n.name] = 1.0
    return scale


def _folded_biases(g: Graph) -> set:
    """Dense synapses whose bias moves into the population they feed directly: without current decay
    (alpha = 0) ``u = a``, so ``W x + b`` then ``v += u + bias`` equals ``W x`` then ``v += u + (b + bias)``,
    and the population's bias has 2^input_shift finer units than the synapse's. (Conv biases stay
    per channel in the synapse: the fpga planner takes per-neuron parameters of 1-D populations only.)"""
    out = set()
    for pop in g.neurons:  # (a recurrent bias moves the same way: see _quantize_pop)
        src = g.node(pop.input)
        if src.is_synapse and src.bias_per_output and src.bias is not None and not np.any(pop.alpha):
            out.add(src.name)
    return out


def _bias_of(syn: Dense, pop: LIF) -> np.ndarray:
    """A Dense synapse's float bias per neuron of the population it feeds."""
    return np.broadcast_to(np.asarray(syn.bias, np.float64), pop.shape)


def _pop_exps(pop: LIF, syn, factor: float, num):
    """Largest exponents of ``pop``'s input unit keeping its threshold and total bias in range, each
    with its name."""
    shift = 1 << num.input_shift
    yield _exp_for(float(np.max(pop.threshold)) * shift / factor, num.threshold_max), "threshold range"
    bias = float(np.abs(pop.bias).max()) / factor
    if getattr(syn, "bias", None) is not None:
        bias += float(np.abs(syn.bias).max())
    if pop.rec_bias is not None:
        bias += float(np.abs(pop.rec_bias).max()) / factor
    yield _exp_for(bias * shift, num.bias_max), "bias range"


def _range_exp(r: dict | None, factor: float, num) -> int:
    """Largest exponent keeping calibrated state magnitudes inside the current/voltage registers."""
    if not r:
        return _exp_for(0.0, 1)
    shift = 1 << num.input_shift
    return min(_exp_for(r["max_abs_current"] * shift / factor, (1 << (num.current.bits - 1)) - 1),
               _exp_for(r["max_abs_voltage"] * shift / factor, (1 << (num.voltage.bits - 1)) - 1))


def _quantize_pop(n: LIF, in_scale: float, num, wmax, fold: bool, synapse_bias: np.ndarray | None,
                  e: int) -> LIF:
    """The fixed population. in_scale: float value of one unit of its feed-forward input (per neuron
    with channel steps); fold: biases
    of its synapses move into its own bias (alpha = 0); ``synapse_bias`` (float, per neuron) is the
    folded bias of its feed-forward synapse; e: the recurrent step is 2^e times the feed-forward one
    (the finer of the two is the population's input unit)."""
    rec_scale = in_scale * 2.0 ** e
    state = np.minimum(in_scale, rec_scale) / (1 << num.input_shift)  # per neuron with channel steps
    g = 1 << num.threshold_lsb_bits
    thr = np.asarray(np.maximum(_round(n.threshold / (state * g)), 1) * g, dtype=np.int64)
    one = 1 << num.decay_bits
    fmt = NeuronFormat(num.decay_bits, num.decay_rounding, num.input_shift, num.current, num.voltage,
                       state if np.ndim(state) else float(state))
    bias = np.asarray(n.bias, np.float64)
    rec_w = rec_b = rec_acc = None
    if n.rec_weight is not None:
        rec_w = _round_weights(n.rec_weight, 1.0 / rec_scale, wmax.bit_length() + 1)
        if n.rec_bias is not None and fold:
            bias = bias + np.asarray(n.rec_bias, np.float64).reshape(n.shape)
        elif n.rec_bias is not None:
            rec_b = _round(n.rec_bias / rec_scale)
        rec_acc = num.accumulator
    if synapse_bias is not None:
        bias = bias + synapse_bias
    lsb = 1 << num.bias_lsb_bits
    return replace(n, alpha=_round(n.alpha * one), beta=_round(n.beta * one), threshold=thr,
                   bias=np.asarray(_round(bias / (state * lsb)) * lsb), rec_weight=rec_w, rec_bias=rec_b,
                   rec_acc=rec_acc, format=fmt, rec_weight_exp=int(e))


def channel_gains(g: Graph, num, wb: int, scale: dict, out_exp: dict, rec_exp: dict, ranges: dict | None,
                  policy: str) -> dict:
    """Per population given per-channel steps, its gains (float array, one per neuron, >= 1): neuron
    i's incoming weight rows (feed-forward and recurrent) and synapse bias are quantized with the
    layer's step divided by ``gain_i``, and its threshold, bias and state unit are ``gain_i`` times
    finer. Scaling neuron i's whole input by any factor scales its current and voltage by it (the
    LIF update is linear in u and v, the reset subtracts the threshold or zeroes v, and the decays
    are unchanged), so the float network with row i, bias i and threshold i scaled by ``gain_i`` is
    the same network; the fixed one quantizes that, and with per-neuron thresholds and biases the IR
    and every backend run it unchanged. The gain need not be a power of two: a row takes the whole
    weight range (a power-of-two step wastes up to one bit per row; measured in docs/examples.md).

    Eligible: a 1-D population fed directly by a static Dense (a Conv2d keeps one step per layer:
    its population is C x H x W, and targets take per-neuron parameters of 1-D populations; a plastic
    synapse changes its weights during a run; a population summing several paths keeps the unit its
    first path sets). ``gain_i`` is the largest keeping, for that neuron, every bound the layer's
    step keeps: its weights (both paths) within the weight bits, its threshold within
    ``threshold_max``, its total bias within ``bias_max``, its worst-case synaptic sums (feed-forward
    and recurrent, every input at its largest) within the larger of the layer's largest and what
    neither fires the accumulator rule nor leaves the current register in one step
    (:func:`_sum_room`, shared by the two paths), and, with calibration, the layer's calibrated
    state range (at most 2^MAX_CHANNEL_BITS). A row of zeros keeps gain 1.
    ``auto`` applies them to a layer where some nonzero row keeps fewer than
    min(MIN_WEIGHT_BITS, weight bits) effective bits at the layer's step and gains; ``on`` to a layer
    where any row gains."""
    if policy == "off":
        return {}
    wmax = (1 << (wb - 1)) - 1
    few = min(MIN_WEIGHT_BITS, wb)
    gains = {}
    for pop in g.neurons:
        syn = g.node(pop.input)
        if pop.extra_inputs or len(pop.shape) != 1 or not syn.is_synapse or syn.is_plastic or syn.weight.ndim != 2:
            continue
        step = 2.0 ** -out_exp[syn.name]
        rec_step = step * 2.0 ** (out_exp[syn.name] - rec_exp[pop.name]) if pop.name in rec_exp else step
        state = min(step, rec_step) / (1 << num.input_shift)
        w = np.abs(np.asarray(syn.weight, np.float64)) * (scale[syn.input] / step)  # in integer units
        b_syn = np.zeros(pop.size) if syn.bias is None else np.abs(np.asarray(syn.bias, np.float64)) / step
        rows = [w.max(axis=1)]
        sums = [w.sum(axis=1) * _input_bound(g, syn) + b_syn]
        bias = np.abs(np.broadcast_to(np.asarray(pop.bias, np.float64), pop.shape)) + b_syn * step
        if pop.rec_weight is not None:
            r = np.abs(np.asarray(pop.rec_weight, np.float64)) / rec_step
            b_rec = np.zeros(pop.size) if pop.rec_bias is None else np.abs(np.asarray(pop.rec_bias, np.float64))
            rows.append(r.max(axis=1))
            sums.append(r.sum(axis=1) + b_rec / rec_step)
            bias = bias + b_rec
        thr = np.broadcast_to(np.asarray(pop.threshold, np.float64), pop.shape) / state
        room = _sum_room(num, getattr(num, syn.acc_register)) / len(sums)
        limits = [_room(m, wmax) for m in rows] + [_room(thr, num.threshold_max), _room(bias / state, num.bias_max)]
        limits += [_room(a, max(float(a.max()), room)) for a in sums]
        if ranges and ranges.get(pop.name):
            r = ranges[pop.name]
            limits += [_room(np.full(pop.size, r[f"max_abs_{k}"] / state), (1 << (getattr(num, k).bits - 1)) - 2)
                       for k in ("current", "voltage")]  # one unit inside the register: float rounding aside
        gain = np.clip(np.min(limits, axis=0), 1.0, 2.0 ** MAX_CHANNEL_BITS)
        gain[~np.any(rows, axis=0)] = 1.0  # a neuron with no weights has nothing to gain
        short = np.any([(m > 0) & (_round(m) < (1 << (few - 2))) for m in rows], axis=0)  # < few effective bits
        gaining = gain >= 1 + 1.0 / wmax  # a row gains at least one integer level
        if np.any(gaining) and (policy == "on" or np.any(short & gaining)):
            gains[pop.name] = gain
    return gains


def _room(values: np.ndarray, limit: float) -> np.ndarray:
    """Per element, the largest factor keeping value * factor <= limit (2^MAX_CHANNEL_BITS for 0)."""
    v = np.asarray(values, np.float64)
    return np.where(v > 0, limit / np.where(v > 0, v, 1.0), 2.0 ** MAX_CHANNEL_BITS)


def _sum_room(num, acc) -> float:
    """Largest |synaptic sum| that neither fires the accumulator rule nor, shifted by input_shift, leaves
    the current register in one step."""
    return float(min((1 << (acc.bits - 1)) - 1, (1 << (num.current.bits - 1 - num.input_shift)) - 1))


def _input_bound(g: Graph, syn) -> float:
    """Largest integer a synapse reads: 1 for spikes, ``2^(bits-1) - 1`` for graded input."""
    src = g.through_reshapes(syn.input, pools=False)[0]
    return float((1 << (src.bits - 1)) - 1) if src.is_input and src.bits > 1 else 1.0
