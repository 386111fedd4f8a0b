"""Plastic synapses on the loihi target: Lava processes for ``PlasticDense`` (docs/semantics.md,
Plasticity).

Two paths, chosen per synapse by :func:`uses_learning_dense`:

* **Lava's own engine**: ``LearningDense`` with a ``Loihi2FLearningRule`` built from the IR rule
  (:func:`lava_rule`), run by Lava's ``PyLearningDenseModelBitApproximate`` under ``fixed_pt``. Its
  trace decay and weight rounding are stochastic (float ``exp`` and numpy random draws), so it is
  used only where those draws cannot change a result: every trace decay 0 (Lava ``tau = 0``),
  every product exponent >= 0 (whole-LSB updates), and weight bounds equal to Lava's clip range
  for the sign mode ([0, 255] excitatory, [-256, 255] mixed).
* **snnhw's own process** otherwise: :class:`PlasticDenseProcess` with the ``fixed_pt`` model
  :class:`PyPlasticDenseModelFixed`, a direct per-synapse transcription of the semantics page
  (written independently of the emulator's batched kernel, which tests compare it with).

Both add Lava's one-step synapse delay (the product of step t, with the weights of step t, is sent
at t+1) and read the post population's spikes of step t through ``s_in_bap``.

This module imports lava: it runs inside the Lava worker process only.
"""
from __future__ import annotations

import numpy as np

from snnhw.ir import PlasticDense
from snnhw.ir.nodes import (
    FACTOR_BITS, LEARN_ACC_BITS, LEARN_FRAC_BITS, MANTISSA_BITS, TRACE_BITS, TRACE_DECAY_BITS, TRACE_NAMES,
)
from snnhw.targets.loihi import lava_compat

lava_compat.import_lava()

from lava.magma.core.decorator import implements, requires, tag  # noqa: E402
from lava.magma.core.learning.learning_rule import Loihi2FLearningRule  # noqa: E402
from lava.magma.core.model.py.model import PyLoihiProcessModel  # noqa: E402
from lava.magma.core.model.py.ports import PyInPort, PyOutPort  # noqa: E402
from lava.magma.core.model.py.type import LavaPyType  # noqa: E402
from lava.magma.core.process.ports.ports import InPort, OutPort  # noqa: E402
from lava.magma.core.process.process import AbstractProcess  # noqa: E402
from lava.magma.core.process.variable import Var  # noqa: E402
from lava.magma.core.resources import CPU  # noqa: E402
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol  # noqa: E402
from lava.proc.dense.process import LearningDense  # noqa: E402
from lava.utils.weightutils import SignMode  # noqa: E402

LAVA_WEIGHT_RANGE = {SignMode.EXCITATORY: (0, 255), SignMode.MIXED: (-256, 255)}  # clip_weights(num_bits=8)
LAVA_DEPENDENCY = {"x0": "x0", "y0": "y0", "u": "u0"}  # u0: every epoch (decimation 2^0)


# ----------------------------------------------------------------------------- Lava's LearningDense
def lava_rule(n: PlasticDense) -> Loihi2FLearningRule:
    """The IR rule as Lava's learning rule (products as ``m * 2^e * dep * (var + c) ...``)."""
    r = n.rule
    terms = []
    for p in r.dw:
        factors = "".join(f" * ({v} {'+' if c >= 0 else '-'} {abs(c)})" if c else f" * {v}" for v, c in p.factors)
        terms.append(f"{'-' if p.mantissa < 0 else '+'} {abs(p.mantissa)} * 2^{p.exponent} * "
                     f"{LAVA_DEPENDENCY[p.dependency]}{factors}")
    dw = " ".join(terms).lstrip("+ ")
    traces = {}
    for t in TRACE_NAMES:
        tr = r.trace(t)
        traces[f"{t}_impulse"] = tr.impulse
        traces[f"{t}_tau"] = 0  # only decay 0 reaches Lava's engine (see uses_learning_dense)
    return Loihi2FLearningRule(dw=dw, t_epoch=r.t_epoch, rng_seed=0, **traces)


def _sign_mode(n: PlasticDense):
    return next((m for m, rng in LAVA_WEIGHT_RANGE.items() if rng == (int(n.w_min), int(n.w_max))), None)


def uses_learning_dense(n: PlasticDense) -> bool:
    """True where Lava's ``LearningDense`` is exact for ``n``: no trace decays (their stochastic
    rounding), whole-LSB products (the weight's stochastic rounding), Lava's weight bounds."""
    r = n.rule
    return (_sign_mode(n) is not None and all(r.trace(t).decay == 0 for t in TRACE_NAMES)
            and all(p.exponent >= 0 for p in r.dw) and n.delay == 1 and all(p.mantissa != -8 for p in r.dw))  # Lava rewrites -8 * 2^e as -4 * 2^(e+1)


# ----------------------------------------------------------------------------- snnhw's own process
class PlasticDenseProcess(AbstractProcess):
    """A dense synapse that learns by an snnhw ``LearningRule`` (docs/semantics.md, Plasticity).

    s_in: pre spikes; s_in_bap: post spikes of the same step; a_out: ``W x`` of the previous step.
    weights: ``(out, in)`` integers.
    """

    def __init__(self, *, weights: np.ndarray, rule, w_min: int, w_max: int, **kwargs):
        super().__init__(rule=rule, w_min=int(w_min), w_max=int(w_max), **kwargs)
        n_out, n_in = weights.shape
        self.s_in = InPort(shape=(n_in,))
        self.s_in_bap = InPort(shape=(n_out,))
        self.a_out = OutPort(shape=(n_out,))
        self.weights = Var(shape=weights.shape, init=weights.astype(np.int64))
        self.a_buff = Var(shape=(n_out,), init=0)


@implements(proc=PlasticDenseProcess, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyPlasticDenseModelFixed(PyLoihiProcessModel):
    """Fixed-point model of :class:`PlasticDenseProcess`: integer traces and weight updates."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, bool, precision=1)
    s_in_bap: PyInPort = LavaPyType(PyInPort.VEC_DENSE, bool, precision=1)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    weights: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=9)
    a_buff: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.rule = proc_params["rule"]
        self.w_min, self.w_max = proc_params["w_min"], proc_params["w_max"]
        self.state = None

    def run_spk(self):
        if self.state is None:
            n_out, n_in = self.weights.shape
            self.state = {"x": np.zeros((2, n_in), np.int64), "y": np.zeros((3, n_out), np.int64),
                          "tx": np.zeros(n_in, np.int64), "ty": np.zeros(n_out, np.int64)}
        self.a_out.send(self.a_buff)
        pre = self.s_in.recv().astype(bool)
        self.a_buff = self.weights[:, pre].sum(axis=1).astype(np.int32)
        post = self.s_in_bap.recv().astype(bool)
        k = (self.time_step - 1) % self.rule.t_epoch + 1
        self._record(pre, "x", "tx", ("x1", "x2"), k)
        self._record(post, "y", "ty", ("y1", "y2", "y3"), k)
        if k == self.rule.t_epoch:
            self.weights = learn(self.rule, self.weights, self.state, self.w_min, self.w_max)

    def _record(self, spiked, trace_key, time_key, names, k):
        z, tz = self.state[trace_key], self.state[time_key]
        top = (1 << TRACE_BITS) - 1
        for j in np.flatnonzero(spiked):
            if tz[j] > 0:  # a second spike within the epoch: its impulse joins the epoch-start value
                for i, name in enumerate(names):
                    z[i, j] = min(z[i, j] + self.rule.trace(name).impulse, top)
            tz[j] = k


def _history(rule, start: np.ndarray, times: np.ndarray, names) -> np.ndarray:
    """``[n_traces, E+1, N]`` trace values over the epoch."""
    top = (1 << TRACE_BITS) - 1
    E = rule.t_epoch
    h = np.zeros((len(names), E + 1, start.shape[1]), np.int64)
    for i, name in enumerate(names):
        tr = rule.trace(name)
        h[i, 0] = start[i]
        for step in range(1, E + 1):
            for j in range(start.shape[1]):
                v = (int(h[i, step - 1, j]) * tr.decay) >> TRACE_DECAY_BITS
                h[i, step, j] = min(v + (tr.impulse if times[j] == step else 0), top)
    return h


def learn(rule, weights: np.ndarray, state: dict, w_min: int, w_max: int) -> np.ndarray:
    """One epoch's update of every synapse (post p, pre j), and the traces' new values."""
    hx = _history(rule, state["x"], state["tx"], ("x1", "x2"))
    hy = _history(rule, state["y"], state["ty"], ("y1", "y2", "y3"))
    tx, ty = state["tx"], state["ty"]
    amax = (1 << (LEARN_ACC_BITS - 1)) - 1
    clip_acc = lambda v: max(-amax - 2, min(amax, v))
    new = weights.copy()
    n_out, n_in = weights.shape
    for p in range(n_out):
        for j in range(n_in):
            when = {"x0": int(tx[j]), "y0": int(ty[p]), "u": rule.t_epoch}
            value = {"x0": int(tx[j] > 0), "y0": int(ty[p] > 0), "u": 1, "w": int(weights[p, j])}
            acc = int(weights[p, j]) << LEARN_FRAC_BITS
            for prod in rule.dw:
                at = when[prod.dependency]
                v = value[prod.dependency]
                width = MANTISSA_BITS
                for var, const in prod.factors:
                    if var in value:
                        f = value[var]
                    elif var[0] == "x":
                        f = int(hx[int(var[1]) - 1, at, j])
                    else:
                        f = int(hy[int(var[1]) - 1, at, p])
                    b = FACTOR_BITS[var]
                    v *= max(-(1 << b), min((1 << b) - 1, f + const))
                    width += b
                v = (v * prod.mantissa) >> max(0, width - (LEARN_ACC_BITS - 1))
                acc = clip_acc(acc + clip_acc(v << (prod.exponent + LEARN_FRAC_BITS)))
            if rule.rounding == "nearest":
                acc += 1 << (LEARN_FRAC_BITS - 1)
            new[p, j] = max(w_min, min(w_max, acc >> LEARN_FRAC_BITS))
    state["x"], state["y"] = hx[:, -1], hy[:, -1]
    tx[:] = 0
    ty[:] = 0
    return new


# ----------------------------------------------------------------------------- hooks for lava_sim
def synapse(n: PlasticDense, pre_port, force_own: bool = False):
    """The Lava process of plastic synapse ``n``, reading ``pre_port``; connect its ``s_in_bap``
    with :func:`connect_post` once the post population exists."""
    if n.delay != 1:
        raise ValueError(f"node {n.name}: Lava synapses add one step of delay; compile for the loihi target")
    if uses_learning_dense(n) and not force_own:
        mode = _sign_mode(n)
        proc = LearningDense(weights=n.weight.astype(np.int32), learning_rule=lava_rule(n), sign_mode=mode,
                             num_weight_bits=8 if mode == SignMode.EXCITATORY else 9)
    else:
        proc = PlasticDenseProcess(weights=n.weight, rule=n.rule, w_min=n.w_min, w_max=n.w_max)
    pre_port.connect(proc.s_in)
    return proc


def connect_post(proc, lif) -> None:
    lif.s_out.connect(proc.s_in_bap)


def read_weights(procs: dict, out: dict, b: int, batch: int) -> None:
    """Store each plastic synapse's weights after sample ``b``'s run in ``out['weights'][name]``."""
    for name, proc in procs.items():
        w = np.asarray(proc.weights.get()).astype(np.int64)
        out.setdefault("weights", {}).setdefault(name, np.zeros((batch, *w.shape), np.int64))[b] = w
