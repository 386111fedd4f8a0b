"""Overflow events as Lava itself showed them (keys as the emulator's: ``current_wrap_once``,
``voltage_saturate``, ``acc_saturate``, ``rec_acc_saturate``, ...).

- Intel ``LIF`` layers: from Lava's recorded states. For every step the unruled values are
  recomputed from Lava's own previous ``u``/``v`` and the synaptic input Lava delivered (the
  probed ``a_out`` of the Dense/Conv feeding it and of its recurrent Dense):
  ``u_pre = decay(u[t-1]) + (a[t] << 6)`` is one wrap_once event where it differs from Lava's
  ``u[t]``; ``v_pre = decay(v[t-1]) + u[t] + bias`` is one saturation event where it lies outside
  the 24-bit range; ``a[t] + synapse bias`` outside the accumulator range is one accumulator
  event.
- ``MicrocodeLIF`` layers: the process's own rule counters (``n_acc``, ``n_rec``, ``n_u``, ``n_v``).

Not observed: wraps inside Lava's ``Conv`` (its output is already wrapped; only the wraps the
neuron's bias addition causes are counted) and the input quantization (counted by the host).
"""
from __future__ import annotations

import numpy as np

from snnhw.ir import LIF, Graph
from snnhw.semantics import half
from snnhw.targets.loihi import ranges


def _decay(x: np.ndarray, q, fmt) -> np.ndarray:
    p = x * np.asarray(q, np.int64)
    if fmt.decay_rounding == "floor":
        return p >> fmt.decay_bits
    return np.sign(p) * (np.abs(p) >> fmt.decay_bits)


class Counter:
    """Accumulates the observed events of one simulation (all samples) in ``counts``."""

    def __init__(self, g: Graph, plans: dict):
        self.g, self.plans = g, plans
        self.counts: dict = {}

    def _add(self, node: str, key: str, n: int):
        if n:
            d = self.counts.setdefault(node, {})
            d[key] = d.get(key, 0) + int(n)

    def observe(self, pop: LIF, lava_proc, rec: dict, sample: int):
        """Count ``pop``'s events of one sample from its Lava process and recorded arrays ``rec``."""
        syn = ranges.feed_synapse(self.g, pop)
        acc_node = syn.name if syn is not None else pop.name
        acc_key = f"acc_{syn.acc.overflow}" if syn is not None else "acc"
        rec_key = f"rec_acc_{pop.rec_acc.overflow}" if pop.rec_acc is not None else "rec_acc"
        f = pop.format
        if self.plans[pop.name].model == ranges.MICROCODE:
            for var, node, key in (("n_acc", acc_node, acc_key), ("n_rec", pop.name, rec_key),
                                   ("n_u", pop.name, f"current_{f.current.overflow}"),
                                   ("n_v", pop.name, f"voltage_{f.voltage.overflow}")):
                self._add(node, key, int(np.asarray(getattr(lava_proc, var).get()).sum()))
            return
        T = rec["current"].shape[0]
        flat = lambda a: a.reshape(T, -1)
        a = flat(rec["feed_in"])
        if syn is not None:
            self._add(acc_node, acc_key, np.count_nonzero(np.abs(a + ranges.feed_bias(self.g, pop).reshape(-1))
                                                          >= half(syn.acc)))
        if "rec_in" in rec:
            r = flat(rec["rec_in"])
            self._add(pop.name, rec_key, np.count_nonzero(np.abs(r + ranges.rec_bias(pop).reshape(-1))
                                                          >= half(pop.rec_acc)))
            a = a + r
        u, v = flat(rec["current"]), flat(rec["voltage"])
        prev = lambda x: np.concatenate([np.zeros_like(x[:1]), x[:-1]])
        u_pre = _decay(prev(u), pop.alpha, f) + (a << f.input_shift)
        self._add(pop.name, f"current_{f.current.overflow}", np.count_nonzero(u_pre != u))
        bias = ranges.voltage_bias(self.g, pop, self.plans[pop.name]).reshape(-1)
        v_pre = _decay(prev(v), pop.beta, f) + u + bias
        self._add(pop.name, f"voltage_{f.voltage.overflow}", np.count_nonzero(np.abs(v_pre) >= half(f.voltage)))
