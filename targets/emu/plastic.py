"""Learning in the emulator: plastic synapses (``PlasticDense``) exactly as docs/semantics.md
(Plasticity) defines them, batched: every sample of a batch learns its own copy of the weights.

A plastic synapse's output depends on weights that change during the run, so it cannot be computed
for all timesteps at once like a static synapse: :class:`PlasticRunner` runs the synapse inside
the per-step loop of the population it feeds. All arithmetic is exact int64.
"""
from __future__ import annotations

import numpy as np

from snnhw.ir import LIF, PlasticDense
from snnhw.ir.nodes import (
    FACTOR_BITS, LEARN_ACC_BITS, LEARN_FRAC_BITS, MANTISSA_BITS, TRACE_BITS, TRACE_DECAY_BITS,
)
from snnhw.semantics import apply_overflow

TRACE_MAX = (1 << TRACE_BITS) - 1
ACC_MAX = (1 << (LEARN_ACC_BITS - 1)) - 1
PRODUCT_BITS = LEARN_ACC_BITS - 1  # a product is shifted back to 15 bits before scaling


def _clip_acc(v: np.ndarray) -> np.ndarray:
    """The learning accumulator's saturation, [-(2^15) - 1, 2^15 - 1] (Lava's bounds)."""
    return np.clip(v, -ACC_MAX - 2, ACC_MAX)


class Learner:
    """Traces, epoch spike times and weights of one plastic synapse for a batch of ``batch`` samples.

    W: ``[B, out, in]`` int64. x: ``[B, 2, in]`` (x1, x2), y: ``[B, 3, out]`` (y1, y2, y3), 7-bit.
    tx / ty: step within the epoch of each neuron's last spike (0: none yet).
    """

    def __init__(self, syn: PlasticDense, batch: int):
        self.syn, self.rule = syn, syn.rule
        n_out, n_in = syn.weight.shape
        self.W = np.broadcast_to(syn.weight.astype(np.int64), (batch, n_out, n_in)).copy()
        self.x = np.zeros((batch, 2, n_in), np.int64)
        self.y = np.zeros((batch, 3, n_out), np.int64)
        self.tx = np.zeros((batch, n_in), np.int64)
        self.ty = np.zeros((batch, n_out), np.int64)
        self.k = 0
        traces = lambda names: [self.rule.trace(t) for t in names]
        self.x_imp = np.array([t.impulse for t in traces(("x1", "x2"))], np.int64)[None, :, None]
        self.x_q = np.array([t.decay for t in traces(("x1", "x2"))], np.int64)[None, :, None]
        self.y_imp = np.array([t.impulse for t in traces(("y1", "y2", "y3"))], np.int64)[None, :, None]
        self.y_q = np.array([t.decay for t in traces(("y1", "y2", "y3"))], np.int64)[None, :, None]
        self.updates = 0  # synapse updates applied (epochs x synapses x samples)

    def step(self, pre: np.ndarray, post: np.ndarray) -> None:
        """Record one step's pre ``[B, in]`` and post ``[B, out]`` spikes; update at the epoch's end."""
        self.k += 1
        self.x, self.tx = self._spikes(self.x, self.tx, pre != 0, self.x_imp)
        self.y, self.ty = self._spikes(self.y, self.ty, post != 0, self.y_imp)
        if self.k == self.rule.t_epoch:
            self._update()
            self.k = 0

    def _spikes(self, z, tz, spiked, imp):
        """A second spike in an epoch adds its impulse to the epoch-start trace; the last spike's
        step is kept for the history."""
        again = (tz > 0) & spiked
        z = np.where(again[:, None, :], np.minimum(z + imp, TRACE_MAX), z)
        return z, np.where(spiked, self.k, tz)

    def _history(self, z, tz, imp, q) -> np.ndarray:
        """``[E+1, B, n_traces, N]``: h[0] = epoch start, h[i] = sat((h[i-1] q) >> 12 + I [tz = i])."""
        h = [z]
        for i in range(1, self.rule.t_epoch + 1):
            h.append(np.minimum(((h[-1] * q) >> TRACE_DECAY_BITS) + imp * (tz == i)[:, None, :], TRACE_MAX))
        return np.stack(h)

    def _factor(self, var: str, dep: str, hx, hy) -> np.ndarray:
        """The value of ``var`` for every synapse, broadcastable to ``[B, out, in]``."""
        b = np.arange(self.W.shape[0])[:, None]
        if var == "w":
            return self.W
        if var == "x0":
            return (self.tx > 0)[:, None, :].astype(np.int64)
        if var == "y0":
            return (self.ty > 0)[:, :, None].astype(np.int64)
        if var[0] == "x":
            h = hx[:, :, int(var[1]) - 1, :].transpose(1, 0, 2)  # [B, E+1, in]
            if dep == "x0":
                return np.take_along_axis(h, self.tx[:, None, :], axis=1)            # [B, 1, in]
            if dep == "y0":
                return h[b, self.ty]                                                 # [B, out, in]
            return h[:, -1][:, None, :]
        h = hy[:, :, int(var[1]) - 1, :].transpose(1, 0, 2)      # [B, E+1, out]
        if dep == "x0":
            return h[b, self.tx].transpose(0, 2, 1)                                  # [B, out, in]
        if dep == "y0":
            return np.take_along_axis(h, self.ty[:, None, :], axis=1).transpose(0, 2, 1)  # [B, out, 1]
        return h[:, -1][:, :, None]

    def _update(self) -> None:
        hx = self._history(self.x, self.tx, self.x_imp, self.x_q)
        hy = self._history(self.y, self.ty, self.y_imp, self.y_q)
        dep_value = {"x0": (self.tx > 0)[:, None, :], "y0": (self.ty > 0)[:, :, None], "u": np.ones((1, 1, 1), bool)}
        acc = self.W << LEARN_FRAC_BITS
        for p in self.rule.dw:
            prod = np.broadcast_to(dep_value[p.dependency].astype(np.int64), self.W.shape)
            width = MANTISSA_BITS
            for var, const in p.factors:
                b = FACTOR_BITS[var]
                prod = prod * np.clip(self._factor(var, p.dependency, hx, hy) + const, -(1 << b), (1 << b) - 1)
                width += b
            prod = (prod * p.mantissa) >> max(0, width - PRODUCT_BITS)
            acc = _clip_acc(acc + _clip_acc(prod << (p.exponent + LEARN_FRAC_BITS)))
        if self.rule.rounding == "nearest":
            acc = acc + (1 << (LEARN_FRAC_BITS - 1))
        self.W = np.clip(acc >> LEARN_FRAC_BITS, int(self.syn.w_min), int(self.syn.w_max))
        self.x, self.y = hx[-1], hy[-1]
        self.tx[:] = 0
        self.ty[:] = 0
        self.updates += self.W.size

    def output(self, pre: np.ndarray) -> np.ndarray:
        """``W(t) x[t]`` for every sample: ``[B, out]`` (exact)."""
        return np.einsum("boi,bi->bo", self.W, pre.astype(np.int64))


def weight_bound(syn: PlasticDense) -> float:
    """Largest |W x| for binary input, whatever the rule learns."""
    return float(max(abs(int(syn.w_min)), abs(int(syn.w_max))) * syn.weight.shape[1])


class PlasticInput:
    """The per-step input of a population fed by a plastic synapse: the synapse's output through
    its delay line and accumulator rule, and the learning step after the population has spiked."""

    def __init__(self, syn: PlasticDense, pop: LIF, batch: int):
        self.syn = syn
        self.learner = Learner(syn, batch)
        self.line = np.zeros((syn.delay, batch, syn.weight.shape[0]), np.int64)

    def input(self, pre: np.ndarray, res) -> np.ndarray:
        p = self.learner.output(pre)
        if self.syn.delay:
            self.line = np.concatenate([self.line, p[None]])
            p, self.line = self.line[0], self.line[1:]
        p, c = apply_overflow(p.astype(np.float64), self.syn.acc)
        res.count(self.syn.name, f"acc_{self.syn.acc.overflow}", c)
        return p

    def learn(self, pre: np.ndarray, post: np.ndarray) -> None:
        self.learner.step(pre, post)
