"""Legalization pass: check every op and parameter against the target description.

A violation raises one error naming the layer, the limit, the value and a way out; nothing is left
to fail later inside a backend for a reason visible here.
"""
from __future__ import annotations

import importlib

import numpy as np

from snnhw.compiler.lowering import lowered_later
from snnhw.errors import UnsupportedError
from snnhw.ir import LIF, Graph
from snnhw.targets.description import TargetDescription



_REMEDY = {"plasticity": "; learn on emu or loihi, then deploy the learned weights as a static network "
                         "(snnhw.api: Network.freeze)"}


def _problems(g: Graph, t: TargetDescription) -> list[str]:
    f, num = t.features, t.numerics
    out = []
    for n in g.nodes:
        if n.is_population:
            if n.reset_mode not in f.reset_modes:
                want = " or ".join(repr(m) for m in f.reset_modes)
                out.append(f"layer {n.name}: reset mode {n.reset_mode!r} is not supported on {t.name} "
                           f"(supported: {', '.join(f.reset_modes)}); retrain with reset_mechanism={want}")
            if n.reset_timing not in f.reset_timings:
                delay = "False" if "immediate" in f.reset_timings else "True"
                out.append(f"layer {n.name}: {n.reset_timing} reset is not supported on {t.name}; retrain with "
                           f"reset_delay={delay}")
            if not f.per_neuron_decay and (np.ndim(n.alpha) or np.ndim(n.beta)):
                out.append(f"layer {n.name}: per-neuron decays are not supported on {t.name}; use one beta/alpha "
                           "per layer")
            if not f.per_neuron_threshold and np.ndim(n.threshold):
                out.append(f"layer {n.name}: per-neuron thresholds are not supported on {t.name}; use one "
                           "threshold per layer")
            if n.rec_weight is not None and not f.recurrent:
                out.append(f"layer {n.name}: recurrent connections are not supported on {t.name}")
            if n.rec_weight_exp and not f.synapse_exponent:
                out.append(f"layer {n.name}: a recurrent weight step 2^{n.rec_weight_exp} times the feed-forward one "
                           f"(rec_weight_exp) is not supported on {t.name}; compile the float model for {t.name} "
                           "(its quantizer then gives both paths one step)")
            if n.extra_inputs and not f.summed_inputs:
                out.append(f"layer {n.name}: it sums {len(n.sources())} input paths ({', '.join(n.sources())}), a "
                           f"skip/residual connection, which {t.name} cannot run; remove the skip connection or run "
                           "on emu")
            has_bias = any(getattr(g.node(s), "bias", None) is not None and np.any(g.node(s).bias)
                           for s in n.sources()) or (n.rec_bias is not None and np.any(n.rec_bias))
            if has_bias and not f.current_bias and np.any(n.alpha != 0):
                out.append(f"layer {n.name}: a synapse bias feeding a neuron with current decay (snntorch Synaptic) "
                           f"is not supported on {t.name}; train the Linear/Conv2d with bias=False")
            if g.kind == "fixed":
                out += _bias_problems(g, n, t)
        for feature, what in n.requires:
            if not getattr(f, feature) and not lowered_later(g, n, t):
                out.append(f"layer {n.name}: {what} not supported on {t.name}{_REMEDY.get(feature, '')}")
        if n.is_synapse and n.out_shift and not f.synapse_exponent:
            out.append(f"layer {n.name}: a synapse step 2^{n.out_shift} times its population's unit (out_shift) is "
                       f"not supported on {t.name}; compile the float model for {t.name}")
        if n.is_synapse and g.kind == "fixed":
            wmax = (1 << (num.weight_bits - 1)) - 1
            big = max(-int(n.weight.min()), int(n.weight.max())) if n.weight.size else 0
            if big > wmax:
                out.append(f"layer {n.name}: weight magnitude {big} exceeds {num.weight_bits}-bit weights on {t.name} "
                           f"(max {wmax})")
    return out


def _bias_problems(g: Graph, n: LIF, t: TargetDescription) -> list[str]:
    """The voltage bias register: own bias plus (without a current bias) the synapse biases."""
    num = t.numerics
    total = np.broadcast_to(n.bias, n.shape).astype(np.int64)
    if not t.features.current_bias:
        total = total + g.synapse_bias(n)
    out = []
    big = int(np.abs(total).max()) if total.size else 0
    if big > num.bias_max:
        out.append(f"layer {n.name}: bias {big} exceeds {num.bias_max} state units on {t.name}; "
                   "retrain with smaller biases or bias=False")
    if np.any(total % (1 << num.bias_lsb_bits)):
        out.append(f"layer {n.name}: bias is not a multiple of 2^{num.bias_lsb_bits} state units as {t.name} needs")
    return out


def _range_problems(g: Graph, t: TargetDescription) -> list[str]:
    """The target's own range proof over the fixed IR, if its description names one
    (``[target].range_check``: a module with ``problems(graph, target) -> [str]``)."""
    checker = t.raw.get("target", {}).get("range_check")
    if g.kind != "fixed" or not checker:
        return []
    return importlib.import_module(checker).problems(g, t)


def legalize(g: Graph, t: TargetDescription) -> Graph:
    problems = _problems(g, t)
    problems += [] if problems else _range_problems(g, t)
    if problems:
        more = f" (and {len(problems) - 1} more: {'; '.join(problems[1:])})" if len(problems) > 1 else ""
        raise UnsupportedError(problems[0] + more)
    return g
