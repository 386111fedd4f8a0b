"""``MicrocodeLIF``: a Lava process modelling a Loihi 2 programmable (microcode) neuron that runs
docs/semantics.md exactly, for the populations Intel's ``LIF`` cannot express.

Imported only inside the Lava worker (it imports lava).
"""
from __future__ import annotations

import numpy as np

from snnhw.targets.loihi import lava_compat

lava_compat.import_lava()

from lava.magma.core.decorator import implements, requires, tag  # noqa: E402
from lava.magma.core.model.py.model import PyLoihiProcessModel  # noqa: E402
from lava.magma.core.model.py.ports import PyInPort, PyOutPort  # noqa: E402
from lava.magma.core.model.py.type import LavaPyType  # noqa: E402
from lava.magma.core.process.ports.ports import InPort, OutPort  # noqa: E402
from lava.magma.core.process.process import AbstractProcess  # noqa: E402
from lava.magma.core.process.variable import Var  # noqa: E402
from lava.magma.core.resources import CPU  # noqa: E402
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol  # noqa: E402

RULES = ("none", "saturate", "wrap", "wrap_once")
RESETS = ("zero", "subtract", "none")
TIMINGS = ("immediate", "delayed")


class MicrocodeLIF(AbstractProcess):
    """A CUBA-LIF population as a Loihi 2 microcode neuron program (one step, integers)::

        a  = acc(a_in + syn_bias)                  # feed-forward synaptic input, its accumulator rule
        a += rec_acc(r_in + rec_bias)              # recurrent synaptic input (if connected)
        u  = decay(u, alpha) + (a << input_shift)  # then the current rule (24-bit wrap_once)
        v  = decay(v, beta) + u + bias
        delayed reset with the previous step's spikes, or the carried subtract (immediate subtract)
        v  = voltage rule (24-bit saturate);  s = v > threshold
        immediate reset: zero -> v = 0 where s; subtract -> v = rule(v - (s - carry) * threshold)

    ``decay(x, q) = sign(x q) (|x q| >> decay_bits)`` (toward zero) or ``x q >> decay_bits``
    (floor). alpha, beta: unsigned per-neuron decays in units of 2^-12 (0..4096, a 13-bit field;
    4096 means no decay), threshold and bias: per-neuron state units. u, v: 24-bit state registers
    with the IR's rules; every intermediate is an int32 register (targets/loihi/ranges.py proves
    no value leaves it). ``a_in`` receives Lava ``Dense`` sums (exact) or ``Conv`` sums (already
    wrapped to 24 bits, so re-applying the wrap after the bias is exact: wrap is modular).

    Real Loihi 2 hardware: this is a behavioural model, not Intel's microcode. A user needs
    Intel's lava-loihi (INRC) to write it as a NeuroCore microcode program with two dendritic
    accumulators (feed-forward and recurrent, so each gets its own saturation and bias), 24-bit u/v
    state, per-neuron alpha/beta/threshold/bias in neuron memory and a one-bit previous-spike flag
    for the delayed reset. Counters ``n_acc``, ``n_rec``, ``n_u``, ``n_v`` count the values each
    rule changed (the overflow events of docs/semantics.md).
    """

    def __init__(self, *, shape, alpha, beta, threshold, bias, syn_bias, rec_bias, formats: dict, **kwargs):
        super().__init__(shape=shape, formats=formats, **kwargs)
        self.a_in = InPort(shape=shape)
        self.r_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        for name, value in (("alpha", alpha), ("beta", beta), ("threshold", threshold), ("bias", bias),
                            ("syn_bias", syn_bias), ("rec_bias", rec_bias)):
            setattr(self, name, Var(shape=shape, init=np.broadcast_to(np.asarray(value, np.int64), shape).copy()))
        self.u = Var(shape=shape, init=0)
        self.v = Var(shape=shape, init=0)
        self.s_prev = Var(shape=shape, init=0)
        for name in ("n_acc", "n_rec", "n_u", "n_v"):
            setattr(self, name, Var(shape=(1,), init=0))


def apply_rule(x: np.ndarray, bits: int, rule: str) -> tuple[np.ndarray, int]:
    """A register rule of docs/semantics.md on int64 ``x``; returns the result and how many values changed."""
    if rule == "none":
        return x, 0
    h = np.int64(1) << (bits - 1)
    if rule == "saturate":
        out = np.clip(x, 1 - h, h - 1)
    elif rule == "wrap":
        out = ((x + h) & (2 * h - 1)) - h
    else:
        out = np.where(x > h, x - 2 * h, np.where(x <= -h, x + 2 * h, x))
    return out, int(np.count_nonzero(out != x))


@implements(proc=MicrocodeLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyMicrocodeLIFModel(PyLoihiProcessModel):
    """Integer model of :class:`MicrocodeLIF` (int64 arithmetic on values proven to fit int32)."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=32)
    r_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=32)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    alpha: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=13)
    beta: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=13)
    threshold: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    bias: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    syn_bias: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=32)
    rec_bias: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=32)
    u: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    v: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    s_prev: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=1)
    n_acc: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=32)
    n_rec: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=32)
    n_u: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=32)
    n_v: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=32)

    def _decay(self, x: np.ndarray, q: np.ndarray) -> np.ndarray:
        f = self.proc_params["formats"]
        p = x * q
        if f["rounding"] == "floor":
            return p >> f["decay_bits"]
        return np.sign(p) * (np.abs(p) >> f["decay_bits"])

    def run_spk(self):
        f = self.proc_params["formats"]
        a, n = apply_rule(self.a_in.recv().astype(np.int64) + self.syn_bias, *f["acc"])
        self.n_acc[0] += n
        r, n = apply_rule(self.r_in.recv().astype(np.int64) + self.rec_bias, *f["rec_acc"])
        self.n_rec[0] += n
        u, n = apply_rule(self._decay(self.u, self.alpha) + ((a + r) << f["input_shift"]), *f["current"])
        self.n_u[0] += n
        v = self._decay(self.v, self.beta) + u + self.bias
        thr = self.threshold
        carry = np.zeros_like(v)
        if f["reset"] == ("subtract", "immediate"):
            carry = (self.v > thr).astype(np.int64)
            v = v - carry * thr
        elif f["reset"] == ("subtract", "delayed"):
            v = v - self.s_prev * thr
        elif f["reset"] == ("zero", "delayed"):
            v = np.where(self.s_prev > 0, 0, v)
        v, n = apply_rule(v, *f["voltage"])
        self.n_v[0] += n
        s = (v > thr).astype(np.int64)
        if f["reset"] == ("zero", "immediate"):
            v = np.where(s > 0, 0, v)
        elif f["reset"] == ("subtract", "immediate"):
            v, n = apply_rule(v - (s - carry) * thr, *f["voltage"])
            self.n_v[0] += n
        self.u[:], self.v[:], self.s_prev[:] = u, v, s
        self.s_out.send(s.astype(np.int32))
