"""Quantization pass: float IR -> fixed-point IR with per-layer power-of-two scales.

Scales (float value of one integer unit) are tracked along the graph:
* the input: binary spikes have scale 1; graded input gets 2^-k, the largest k with
  max|x| * 2^k <= 2^(input_bits-1) - 1 (max|x| from calibration data, 1.0 without);
* spikes leaving a population have scale 1; average pooling becomes sum pooling and divides the
  scale by the window size; flatten keeps it;
* a Dense/Conv quantizes its *effective* weights ``W * s_in`` with step 2^-k, the largest k that
  keeps every weight within the target's weight bits (and, for the population it feeds, the
  threshold within ``threshold_max``); its output scale is 2^-k;
* a population's state LSB is ``S / 2^input_shift`` for its input scale S; thresholds and biases
  are rounded in those units (thresholds to multiples of 2^threshold_lsb_bits); decays become
  integers in units of 2^-decay_bits.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from snnhw.errors import SnnhwError
from snnhw.ir import LIF, Conv2d, Dense, Flatten, Graph, Input, NeuronFormat, PlasticDense, Pool2d
from snnhw.targets.description import TargetDescription


def _exp_for(max_abs: float, limit: float) -> int:
    """Largest k with max_abs * 2^k <= limit (k may be negative)."""
    if max_abs <= 0:
        return 30
    return math.floor(math.log2(limit / max_abs))


def _round(x) -> np.ndarray:
    return np.asarray(np.round(np.asarray(x, dtype=np.float64)), dtype=np.int64)


def _round_weights(w: np.ndarray, factor: float, bits: int) -> np.ndarray:
    """``round(w * factor)`` for weights that fit ``bits`` (< 2^24: exact in float32), stored in the
    narrowest integer type, without float64 or int64 temporaries (weights are the bulk of a model)."""
    q = np.multiply(w, np.float32(factor), dtype=np.float32)
    np.rint(q, out=q)
    return q.astype(np.int8 if bits <= 8 else np.int16 if bits <= 16 else np.int32)


def input_scale(x_max: float, bits: int) -> float:
    if bits == 1:
        return 1.0
    return 2.0 ** -_exp_for(x_max, (1 << (bits - 1)) - 1)


def quantize(g: Graph, target: TargetDescription, input_bits: int = 1, input_max: float = 1.0,
             weight_bits: int | None = None, ranges: dict | None = None) -> Graph:
    """Return the fixed-point IR of float graph ``g`` for ``target``.

    input_bits: 1 for binary spike input, otherwise the graded input width.
    input_max: largest |input| expected (from calibration data), for graded input.
    weight_bits: overrides the target's weight width (must not exceed it).
    ranges: calibrated state ranges (compiler.calibrate.state_ranges); each population's scale then
    also keeps its largest calibrated |u| and |v| inside the current and voltage registers.
    """
    if g.kind != "float":
        raise SnnhwError("quantize expects a float IR")
    num = target.numerics
    wb = weight_bits or num.weight_bits
    if wb > num.weight_bits or wb < 2:
        raise SnnhwError(f"--weight-bits {wb}: target {target.name} supports 2..{num.weight_bits}")
    wmax = (1 << (wb - 1)) - 1
    consumers = {}
    for n in g.nodes[1:]:
        consumers.setdefault(n.input, []).append(n)

    out_exp = {n.name: _exp_for(0.0, wmax) for n in g.nodes if isinstance(n, (Dense, Conv2d))}
    scale = _scales(g, input_scale(input_max, input_bits), out_exp)
    for n in g.nodes:  # weight bits: in order, since a synapse's input scale is fixed upstream
        if isinstance(n, (Dense, Conv2d)):
            out_exp[n.name] = _exp_for(_weight_span(n) * scale[n.input], wmax)
            scale = _scales(g, scale[g.input.name], out_exp)
    for pop in g.neurons:  # threshold range and recurrent weights of the population fed
        syn, factor = g.feeding_synapse(pop.input)
        if syn is not None:
            out_exp[syn.name] = min(out_exp[syn.name], _pop_exp(pop, syn, factor, num, wmax),
                                    _range_exp(ranges.get(pop.name) if ranges else None, factor, num))
    scale = _scales(g, scale[g.input.name], out_exp)

    nodes = []
    for n in g.nodes:
        if isinstance(n, Input):
            nodes.append(Input(n.name, tuple(n.shape), input_bits, scale[n.name]))
        elif isinstance(n, (Dense, Conv2d)):
            step = 2.0 ** -out_exp[n.name]
            w = _round_weights(n.weight, scale[n.input] / step, wb)
            b = None if n.bias is None else _round(n.bias / step)
            acc = num.conv_accumulator if isinstance(n, Conv2d) else num.accumulator
            nodes.append(replace(n, weight=w, bias=b, delay=num.synapse_delay, acc=acc, **_bounds(n, scale[n.input] / step)))
        elif isinstance(n, Pool2d):
            nodes.append(replace(n, mode="sum" if n.mode == "avg" else n.mode))
        elif isinstance(n, Flatten):
            nodes.append(n)
        elif isinstance(n, LIF):
            nodes.append(_quantize_pop(n, scale[n.input], num, wmax))
    meta = dict(g.meta, weight_bits=str(wb))
    return Graph(nodes, kind="fixed", dt=g.dt, target=target.name, meta=meta).validate()


def _weight_span(n) -> float:
    """Largest |weight| a synapse can hold: its weights, and a plastic synapse's bounds."""
    span = float(np.abs(n.weight).max())
    return max(span, abs(float(n.w_min)), abs(float(n.w_max))) if isinstance(n, PlasticDense) else span


def _bounds(n, factor: float) -> dict:
    """A plastic synapse's weight bounds in integer weight units (nothing for a static synapse)."""
    if not isinstance(n, PlasticDense):
        return {}
    return {"w_min": int(np.round(float(n.w_min) * factor)), "w_max": int(np.round(float(n.w_max) * factor))}


def _scales(g: Graph, in_scale: float, out_exp: dict) -> dict:
    """Float value of one integer unit of every node's output."""
    scale = {}
    for n in g.nodes:
        if isinstance(n, Input):
            scale[n.name] = in_scale
        elif isinstance(n, (Dense, Conv2d)):
            scale[n.name] = 2.0 ** -out_exp[n.name]
        elif isinstance(n, Pool2d):
            scale[n.name] = scale[n.input] / (n.kernel[0] * n.kernel[1] if n.mode == "avg" else 1)
        elif isinstance(n, Flatten):
            scale[n.name] = scale[n.input]
        else:
            scale[n.name] = 1.0
    return scale


def _pop_exp(pop: LIF, syn, factor: float, num, wmax) -> int:
    """Largest synapse exponent keeping ``pop``'s threshold, total bias and recurrent weights in range."""
    shift = 1 << num.input_shift
    k = _exp_for(float(np.max(pop.threshold)) * shift / factor, num.threshold_max)
    bias = float(np.abs(pop.bias).max()) / factor
    if getattr(syn, "bias", None) is not None:
        bias += float(np.abs(syn.bias).max())
    if pop.rec_bias is not None:
        bias += float(np.abs(pop.rec_bias).max()) / factor
    k = min(k, _exp_for(bias * shift, num.bias_max))
    if pop.rec_weight is not None and pop.rec_weight.size:
        k = min(k, _exp_for(float(np.abs(pop.rec_weight).max()) / factor, wmax))
    return k


def _range_exp(r: dict | None, factor: float, num) -> int:
    """Largest exponent keeping calibrated state magnitudes inside the current/voltage registers."""
    if not r:
        return _exp_for(0.0, 1)
    shift = 1 << num.input_shift
    return min(_exp_for(r["max_abs_current"] * shift / factor, (1 << (num.current.bits - 1)) - 1),
               _exp_for(r["max_abs_voltage"] * shift / factor, (1 << (num.voltage.bits - 1)) - 1))


def _quantize_pop(n: LIF, in_scale: float, num, wmax) -> LIF:
    state = in_scale / (1 << num.input_shift)
    g = 1 << num.threshold_lsb_bits
    thr = np.asarray(np.maximum(_round(n.threshold / (state * g)), 1) * g, dtype=np.int64)
    one = 1 << num.decay_bits
    fmt = NeuronFormat(num.decay_bits, num.decay_rounding, num.input_shift, num.current, num.voltage, state)
    rec_w = rec_b = rec_acc = None
    if n.rec_weight is not None:
        rec_w = _round_weights(n.rec_weight, 1.0 / in_scale, wmax.bit_length() + 1)
        rec_b = None if n.rec_bias is None else _round(n.rec_bias / in_scale)
        rec_acc = num.accumulator
    lsb = 1 << num.bias_lsb_bits
    return replace(n, alpha=_round(n.alpha * one), beta=_round(n.beta * one), threshold=thr,
                   bias=np.asarray(_round(n.bias / (state * lsb)) * lsb), rec_weight=rec_w, rec_bias=rec_b, rec_acc=rec_acc, format=fmt)
