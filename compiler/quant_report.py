"""Per-layer quantization report: how far the fixed IR's parameters are from the float IR's."""
from __future__ import annotations

import numpy as np

from snnhw.ir import LIF, Conv2d, Dense, Flatten, Graph, Input, Pool2d


def _stats(float_v, fixed_v) -> dict:
    err = np.abs(np.asarray(float_v, np.float64) - np.asarray(fixed_v, np.float64))
    ref = float(np.abs(float_v).max()) if np.size(float_v) else 0.0
    return {"max_abs_error": float(err.max()) if err.size else 0.0,
            "max_rel_error": float(err.max() / ref) if err.size and ref > 0 else 0.0}


def signal_scales(float_g: Graph, fixed_g: Graph) -> dict:
    """Float value of one integer unit of every node's output in the fixed IR.

    Spikes are 1; the input has its scale; a synapse's step is the scale its population reads
    (``state_scale * 2^input_shift``) undone through any pooling (avg pools divide by the window).
    """
    scale = {}
    for n in fixed_g.nodes:
        if isinstance(n, Input):
            scale[n.name] = n.scale
        elif isinstance(n, LIF):
            scale[n.name] = 1.0
            s = n.format.state_scale * (1 << n.format.input_shift)
            src = n.input
            while isinstance(fixed_g.node(src), (Pool2d, Flatten)):
                fl = float_g.node(src)
                if isinstance(fl, Pool2d) and fl.mode == "avg":
                    s *= fl.kernel[0] * fl.kernel[1]
                src = fl.input
            scale[src] = s
    for n in fixed_g.nodes:  # pools/flattens: from their inputs
        if isinstance(n, (Pool2d, Flatten)):
            fl = float_g.node(n.name)
            div = fl.kernel[0] * fl.kernel[1] if isinstance(fl, Pool2d) and fl.mode == "avg" else 1
            scale[n.name] = scale[n.input] / div
    return scale


def quantization_report(float_g: Graph, fixed_g: Graph, calibration=None) -> dict:
    """Per layer: weight step and error; threshold, beta and alpha as the hardware sees them; with
    calibration data, the float state ranges, the overflow they predict, and the overflow the fixed
    point actually had on that data."""
    scale = signal_scales(float_g, fixed_g)
    layers = {}
    for fx in fixed_g.nodes[1:]:
        fl = float_g.node(fx.name)
        if isinstance(fx, (Dense, Conv2d)):
            step = scale.get(fx.name, 1.0)
            w_back = fx.weight.astype(np.float64) * step / scale[fx.input]
            layers[fx.name] = {"op": type(fx).__name__, "output_step": step, "delay": fx.delay,
                               "weight_max_int": int(np.abs(fx.weight).max()) if fx.weight.size else 0,
                               "weight": _stats(fl.weight, w_back)}
        elif isinstance(fx, LIF):
            s = fx.format.state_scale
            one = 1 << fx.format.decay_bits
            thr = np.asarray(fx.threshold) * s
            layers[fx.name] = {
                "op": "LIF", "state_lsb": s, "reset": f"{fx.reset_mode}/{fx.reset_timing}",
                "threshold_float": _short(fl.threshold), "threshold_fixed": _short(thr),
                "beta_float": _short(fl.beta), "beta_fixed": _short(np.asarray(fx.beta) / one),
                "alpha_float": _short(fl.alpha), "alpha_fixed": _short(np.asarray(fx.alpha) / one),
                "threshold": _stats(fl.threshold, thr),
                "beta": _stats(fl.beta, np.asarray(fx.beta) / one),
            }
    if calibration is not None:
        _calibration(float_g, fixed_g, calibration, layers)
    return {"input_scale": fixed_g.input.scale, "input_bits": fixed_g.input.bits, "layers": layers,
            "calibrated": calibration is not None}


def _calibration(float_g, fixed_g, x, layers):
    from snnhw.compiler.calibrate import state_ranges
    from snnhw.compiler.timing import latency
    from snnhw.targets.emu.emulator import Emulator
    ranges = state_ranges(float_g, x)
    pad = latency(fixed_g)
    xp = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)]) if pad else x
    observed = Emulator(fixed_g).run(xp).overflow
    for p in fixed_g.neurons:
        f, r = p.format, ranges[p.name]
        limits = {"current": (1 << (f.current.bits - 1)) - 1, "voltage": (1 << (f.voltage.bits - 1)) - 1}
        float_max = {"current": r["max_abs_current"], "voltage": r["max_abs_voltage"]}
        layers[p.name]["calibration"] = {
            "float_max_abs_current": float_max["current"], "float_max_abs_voltage": float_max["voltage"],
            "predicted_overflow": {k: float_max[k] / f.state_scale > limits[k] for k in limits},
            "observed_overflow": observed.get(p.name, {}),
        }


def _short(a):
    """A scalar as a number; per-neuron values summarized as [min, max]."""
    a = np.asarray(a, np.float64)
    return float(a) if a.ndim == 0 else [float(a.min()), float(a.max())]
