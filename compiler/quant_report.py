"""Per-layer quantization report: how far the fixed IR's parameters are from the float IR's, and
which layers lost information (warnings) or would be dead (refused by the quantizer)."""
from __future__ import annotations

import json

import numpy as np

from snnhw.compiler.lower_maxpool import describe as describe_or_layers
from snnhw.compiler.quantize import CHANNEL_META
from snnhw.ir import LIF, Graph

THRESHOLD_REL_ERROR = 0.125  # a threshold further than this from its float value is warned

REMEDY = {
    "weight bits": "use more --weight-bits",
    "threshold range": "the threshold is large against the weights times the input scale: retrain with a lower "
                       "threshold or larger weights, or compile with fewer --input-bits",
    "bias range": "the biases are large against the weights: retrain with smaller biases or bias=False",
    "recurrent weights": "the recurrent weights are much larger than the feed-forward ones and share their step "
                         "on this target: retrain with smaller recurrent weights, compile with fewer --input-bits, "
                         "or use a target with synapse exponents (emu)",
    "calibrated state range": "the calibrated states are far larger than the threshold: retrain with resets or "
                              "compile without --calib",
}


def _stats(float_v, fixed_v) -> dict:
    err = np.abs(np.asarray(float_v, np.float64) - np.asarray(fixed_v, np.float64))
    ref = float(np.abs(float_v).max()) if np.size(float_v) else 0.0
    return {"max_abs_error": float(err.max()) if err.size else 0.0,
            "max_rel_error": float(err.max() / ref) if err.size and ref > 0 else 0.0}


def signal_scales(float_g: Graph, fixed_g: Graph) -> dict:
    """Float value of one integer unit of every node's output in the fixed IR.

    Spikes are 1; the input has its scale; a synapse's step is the scale its population reads
    (``state_scale * 2^input_shift``, one per output row where the population has per-channel weight
    steps) undone through any pooling (avg pools divide by the window).
    Nodes a target's lowering inserted (absent from ``float_g``) pass their input's scale on.
    """
    scale = {}
    for n in fixed_g.nodes:
        if n.is_input:
            scale[n.name] = n.scale
        elif n.is_population:
            scale[n.name] = 1.0
            for src in n.sources():  # each path: its synapse's out_shift makes its step coarser
                s = n.format.state_scale * (1 << n.format.input_shift)
                while fixed_g.node(src).is_reshape:
                    fl = _float_node(float_g, fixed_g, src)
                    s *= fl.divisor
                    src = fl.input
                scale[src] = s * (1 << getattr(fixed_g.node(src), "out_shift", 0))
    for n in fixed_g.nodes:  # pools/flattens: from their inputs
        if n.is_reshape:
            scale[n.name] = scale[n.input] / _float_node(float_g, fixed_g, n.name).divisor
    return scale


def _float_node(float_g: Graph, fixed_g: Graph, name: str):
    """The float IR's node ``name``, or the fixed IR's where a lowering pass added it."""
    return next((n for n in float_g.nodes if n.name == name), None) or fixed_g.node(name)


def quantization_report(float_g: Graph, fixed_g: Graph, calibration=None, deployed: Graph | None = None) -> dict:
    """Per layer: weight step, error and effective bits; synapse biases; threshold, beta, alpha and
    the total bias per step as the hardware sees them; with calibration data, the float state
    ranges, the overflow they predict, and the overflow the fixed point actually had on that data.
    ``warnings``: the quantizer's lost-information warnings (one line each). ``lowered`` (when
    ``deployed``, the graph after the target's lowering passes, or ``fixed_g`` has any): the layers
    a lowering added in place of a float node (OR layers of max pooling; nothing quantized in them)."""
    scale = signal_scales(float_g, fixed_g)
    layers = {}
    warnings = list(json.loads(fixed_g.meta.get("quantization_warnings", "[]")))
    in_float = {n.name for n in float_g.nodes}
    for fx in fixed_g.nodes[1:]:
        if fx.name not in in_float:
            continue  # added by a lowering pass: see "lowered"
        fl = float_g.node(fx.name)
        if fx.is_synapse:
            step = scale.get(fx.name, 1.0)
            w_back = fx.weight.astype(np.float64) * rows(step, fx.weight) / scale[fx.input]
            big = int(np.abs(fx.weight).max()) if fx.weight.size else 0
            L = layers[fx.name] = {"op": type(fx).__name__, "output_step": _short(step), "delay": fx.delay,
                                   "weight_max_int": big, "weight_effective_bits": big.bit_length() + 1 if big else 0,
                                   "weight": _stats(fl.weight, w_back)}
            if np.ndim(step):  # per-channel steps: the effective bits of the nonzero rows
                L["row_effective_bits"] = _row_bits(fx.weight)
            if fl.bias is not None:
                L["bias_float"] = _short(fl.bias)
                if fx.bias is None:
                    L["bias_fixed"] = "moved into the bias of the population it feeds (alpha = 0)"
                else:
                    L["bias_fixed"] = _short(fx.bias * step)
                    L["bias"] = _stats(fl.bias, fx.bias * step)
        elif fx.is_population:
            s = fx.format.state_scale
            one = 1 << fx.format.decay_bits
            thr = np.asarray(fx.threshold) * s
            b_float, b_fixed = _total_bias(float_g, fl), _total_bias(fixed_g, fx)
            layers[fx.name] = {
                "op": "LIF", "state_lsb": _short(s), "reset": f"{fx.reset_mode}/{fx.reset_timing}",
                "threshold_float": _short(fl.threshold), "threshold_fixed": _short(thr),
                "beta_float": _short(fl.beta), "beta_fixed": _short(np.asarray(fx.beta) / one),
                "alpha_float": _short(fl.alpha), "alpha_fixed": _short(np.asarray(fx.alpha) / one),
                "threshold": _stats(fl.threshold, thr),
                "beta": _stats(fl.beta, np.asarray(fx.beta) / one),
                "bias_float": _short(b_float), "bias_fixed": _short(b_fixed), "bias": _stats(b_float, b_fixed),
            }
            if fx.rec_weight is not None:
                big = int(np.abs(fx.rec_weight).max()) if fx.rec_weight.size else 0
                layers[fx.name].update(rec_weight_exp=int(fx.rec_weight_exp), rec_weight_max_int=big,
                                       rec_weight_effective_bits=big.bit_length() + 1 if big else 0,
                                       rec_weight=_stats(fl.rec_weight, fx.rec_weight * rows(_rec_step(fx),
                                                                                              fx.rec_weight)))
    if calibration is not None:
        _calibration(float_g, fixed_g, calibration, layers)
        warnings += [f"layer {name}: calibration predicts {k} overflow (float |{k[0]}| up to "
                     f"{L['calibration'][f'float_max_abs_{k}']:.4g}; the {k} register holds "
                     f"{L['calibration']['register_max_abs'][k]:.4g}); the quantizer keeps the weights' bits instead "
                     f"of that range: expect saturation (see overflow in `snnhw run`)"
                     for name, L in layers.items() if "calibration" in L
                     for k, v in L["calibration"]["predicted_overflow"].items() if v]
    channel = json.loads(fixed_g.meta.get(CHANNEL_META, '{"policy": "off", "layers": {}}'))
    for name, info in channel["layers"].items():
        layers[name]["channel_steps"] = info
    out = {"input_scale": fixed_g.input.scale, "input_bits": fixed_g.input.bits, "layers": layers,
           "calibrated": calibration is not None, "warnings": warnings, "channel_steps": channel["policy"]}
    lowered = describe_or_layers(deployed if deployed is not None else fixed_g)
    if lowered:
        out["lowered"] = lowered
    return out


def rows(step, w: np.ndarray):
    """``step`` (one number, or one per output row with per-channel steps) shaped to multiply ``w``."""
    return np.reshape(step, (-1, *[1] * (np.ndim(w) - 1))) if np.ndim(step) else step


def _row_max(w: np.ndarray) -> np.ndarray:
    """Largest |integer weight| of each output row of ``w``."""
    return np.abs(w.reshape(w.shape[0], -1).astype(np.int64)).max(axis=1)


def _row_bits(w: np.ndarray) -> list:
    """[min, max] effective bits of the nonzero rows of integer weights ``w``."""
    big = _row_max(w)
    bits = [int(b).bit_length() + 1 for b in big if b]
    return [min(bits), max(bits)] if bits else [0, 0]


def _rec_step(pop: LIF) -> float:
    """Float value of one recurrent weight unit of a fixed population (its input unit times 2^e for
    a coarser recurrent path); per neuron with per-channel steps."""
    return pop.format.state_scale * (1 << pop.format.input_shift) * 2.0 ** max(0, pop.rec_weight_exp)


def _total_bias(g: Graph, pop: LIF) -> np.ndarray:
    """Bias added per step, per neuron, in float units: the population's own plus the biases of the
    synapse feeding it directly and of its recurrent synapse (in the fixed IR: state units times
    the state LSB)."""
    if g.kind == "fixed":
        total = np.broadcast_to(pop.bias, pop.shape).astype(np.int64) + g.synapse_bias(pop)
        return total * pop.format.state_scale
    total = np.broadcast_to(np.asarray(pop.bias, np.float64), pop.shape).copy()
    for name in pop.sources():
        src = g.node(name)
        if src.is_synapse and src.bias is not None:
            total = total + np.asarray(src.bias_map(), np.float64)
    if pop.rec_bias is not None:
        total = total + np.asarray(pop.rec_bias, np.float64).reshape(pop.shape)
    return total


def information_problems(float_g: Graph, fixed_g: Graph, limit: dict, min_bits: int) -> tuple[list, list]:
    """(dead, lost): layers quantization leaves dead (every weight 0 where the float layer has some,
    or no neuron able to reach its threshold where the float layer has one), each with the reason
    and a remedy; and one warning per weight matrix keeping fewer than ``min_bits`` effective bits
    (or losing most of its nonzero weights), vanished biases and thresholds far from their float
    value. ``limit``: per synapse, what set its step (compiler.quantize)."""
    dead, lost = [], []
    wb = int(fixed_g.meta.get("weight_bits", 8))
    per_row = {v["synapse"] for v in json.loads(fixed_g.meta.get(CHANNEL_META, '{"layers": {}}'))["layers"].values()}
    # the float input's range and sign are those the fixed input can represent (spikes: 0/1)
    x_max = 1.0 if fixed_g.input.bits == 1 else ((1 << (fixed_g.input.bits - 1)) - 1) * fixed_g.input.scale
    x_max = -x_max if fixed_g.input.bits == 1 else x_max
    for fx in fixed_g.nodes[1:]:
        fl = float_g.node(fx.name)
        if fx.is_synapse:
            why = limit.get(fx.name, "weight bits")
            nonzero = int(np.count_nonzero(fl.weight))
            big = int(np.abs(fx.weight).max()) if fx.weight.size else 0
            eb = big.bit_length() + 1 if big else 0
            if nonzero and big == 0:
                dead.append(f"layer {fx.name}: every weight quantizes to 0 (the {why} sets the weight step above "
                            f"twice the largest weight); {REMEDY[why]}")
                continue
            if nonzero and eb < min(min_bits, wb):
                lost.append(f"layer {fx.name}: weights keep {eb} effective bits of {wb} (largest integer {big}; "
                            f"the {why} sets the step); {REMEDY[why]}")
            if fx.name in per_row:  # per-channel steps: a row whose gain a bound limited can still keep few bits
                rows = _row_max(fx.weight)
                few = np.any(fl.weight.reshape(rows.size, -1) != 0, axis=1) & (rows < 1 << (min(min_bits, wb) - 2))
                if np.any(few):
                    lost.append(f"layer {fx.name}: {int(few.sum())} of {rows.size} rows keep fewer than "
                                f"{min(min_bits, wb)} effective bits with per-channel steps (their threshold, bias or "
                                f"synaptic-sum bound limits the gain; compiler.md, per-channel steps)")
            zeroed = int(np.count_nonzero((fl.weight != 0) & (fx.weight == 0)))
            if zeroed * 2 > nonzero:
                lost.append(f"layer {fx.name}: {zeroed} of {nonzero} nonzero weights quantize to 0")
            if fl.bias is not None and fx.bias is not None:
                gone = int(np.count_nonzero((fl.bias != 0) & (fx.bias == 0)))
                if gone:
                    lost.append(f"layer {fx.name}: {gone} of {fl.bias.size} biases quantize to 0 (below half a "
                                f"weight step); retrain with larger biases or bias=False")
        elif fx.is_population:
            b_float, b_fixed = _total_bias(float_g, fl), _total_bias(fixed_g, fx)
            gone = int(np.count_nonzero((b_float != 0) & (b_fixed == 0)))
            if gone:
                lost.append(f"layer {fx.name}: {gone} of {b_float.size} neuron biases quantize to 0 (below half a "
                            f"state LSB of {float(np.min(fx.format.state_scale)):.3g})")
            if fx.rec_weight is not None and np.any(fl.rec_weight):
                big = int(np.abs(fx.rec_weight).max())
                eb = big.bit_length() + 1 if big else 0
                why = limit.get(fx.name, "weight bits")
                if eb < min(min_bits, wb):
                    lost.append(f"layer {fx.name}: recurrent weights keep {eb} effective bits of {wb} (largest "
                                f"integer {big}; the {why} sets the step); {REMEDY[why]}")
            thr = np.asarray(fx.threshold) * fx.format.state_scale
            rel = float(np.max(np.abs(thr - fl.threshold) / fl.threshold))
            if rel > THRESHOLD_REL_ERROR:
                lost.append(f"layer {fx.name}: threshold {_short(fl.threshold)} becomes {_short(thr)} "
                            f"({rel:.0%} off)")
            float_fires = _can_fire(float_g, fl, x_max, 1 + THRESHOLD_REL_ERROR)  # clearly, not asymptotically
            fixed_fires = _can_fire(fixed_g, fx, x_max)
            if np.any(float_fires) and not np.any(fixed_fires):
                syn, _ = fixed_g.feeding_synapse(fx.input)
                why = limit.get(syn.name, "weight bits") if syn is not None else "weight bits"
                dead.append(f"layer {fx.name}: no neuron can reach its threshold after quantization (the largest "
                            f"input it can receive stays below it); {REMEDY[why]}")
            elif np.count_nonzero(float_fires & ~fixed_fires):
                lost.append(f"layer {fx.name}: {int(np.count_nonzero(float_fires & ~fixed_fires))} of {fx.size} "
                            "neurons can no longer reach their threshold after quantization")
    return dead, lost


def _can_fire(g: Graph, pop: LIF, x_max: float, margin: float = 1.0) -> np.ndarray:
    """Per neuron (flat), whether any input could ever bring its membrane above ``margin`` times its
    threshold: an upper bound of the drive per step (positive weights times the largest input,
    positive biases), summed over infinitely many steps through the decays (overflow aside)."""
    e = pop.rec_weight_exp
    drive = np.broadcast_to(_drive(g, pop.input, x_max)[0], pop.shape).reshape(-1) * 2.0 ** max(0, -e)
    if pop.rec_weight is not None:
        rec = np.maximum(pop.rec_weight, 0).astype(np.float64).sum(axis=1)
        if pop.rec_bias is not None:
            rec = rec + np.maximum(np.asarray(pop.rec_bias, np.float64), 0)
        drive = drive + rec * 2.0 ** max(0, e)
    one, gain = 1.0, 1.0
    if g.kind == "fixed":
        one, gain = float(1 << pop.format.decay_bits), float(1 << pop.format.input_shift)
    flat = lambda a: np.broadcast_to(np.asarray(a, np.float64), pop.shape).reshape(-1)
    alpha, beta = flat(pop.alpha) / one, flat(pop.beta) / one
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.where(alpha < 1, drive * gain / (1 - alpha), np.where(drive > 0, np.inf, 0.0))
        p = u + np.maximum(flat(pop.bias), 0)
        v = np.where(beta < 1, p / (1 - beta), np.where(p > 0, np.inf, 0.0))
    return v > flat(pop.threshold) * margin


def _drive(g: Graph, name: str, x_max: float) -> tuple[np.ndarray, bool]:
    """Upper bound of node ``name``'s output values (per element, broadcastable to its shape) in its
    own units, and whether its values are never negative. x_max: the largest |input| in float units,
    negative for spike input (0/1)."""
    n = g.node(name)
    if n.is_input:
        spikes = x_max < 0
        bound = 1.0 if spikes else (x_max if g.kind == "float" else float((1 << (n.bits - 1)) - 1))
        return np.asarray(bound), spikes
    if n.is_population:
        return np.asarray(1.0), True
    src, nonneg = _drive(g, n.input, x_max)
    if n.keeps_values:  # Flatten
        return (np.broadcast_to(src, n.in_shape).reshape(-1) if src.ndim else src), nonneg
    if n.is_reshape:  # Pool2d
        per_channel = np.broadcast_to(src, n.in_shape).reshape(n.in_shape[0], -1).max(axis=1)
        win = n.kernel[0] * n.kernel[1] if n.mode == "sum" else 1
        return (per_channel * win).reshape(-1, 1, 1), nonneg
    w = np.asarray(n.weight, np.float64)
    w = np.maximum(w, 0) if nonneg else np.abs(w)
    m = float(np.max(src))  # one bound for every input element
    out = w.reshape(w.shape[0], -1).sum(axis=1) * m
    if n.bias is not None:
        out = out + np.maximum(np.asarray(n.bias, np.float64), 0)
    return out.reshape(-1, *[1] * (len(n.shape) - 1)), False


def _calibration(float_g, fixed_g, x, layers):
    from snnhw.compiler.calibrate import state_ranges
    from snnhw.compiler.timing import latency
    from snnhw.targets.emu.emulator import Emulator
    ranges = state_ranges(float_g, x)
    pad = latency(fixed_g)
    xp = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)]) if pad else x
    observed = Emulator(fixed_g).run(xp).overflow
    for p in fixed_g.neurons:
        if p.name not in ranges:
            continue  # added by a lowering pass: no float states
        f, r = p.format, ranges[p.name]
        unit = float(np.min(f.state_scale))  # per-channel steps: the finest neuron's registers hold the least
        limits = {"current": (1 << (f.current.bits - 1)) - 1, "voltage": (1 << (f.voltage.bits - 1)) - 1}
        float_max = {"current": r["max_abs_current"], "voltage": r["max_abs_voltage"]}
        layers[p.name]["calibration"] = {
            "float_max_abs_current": float_max["current"], "float_max_abs_voltage": float_max["voltage"],
            "register_max_abs": {k: limits[k] * unit for k in limits},
            "predicted_overflow": {k: bool(float_max[k] / unit > limits[k]) for k in limits},
            "observed_overflow": observed.get(p.name, {}),
        }


def _short(a):
    """A scalar as a number; per-neuron values summarized as [min, max]."""
    a = np.asarray(a, np.float64)
    return float(a) if a.ndim == 0 else [float(a.min()), float(a.max())]
