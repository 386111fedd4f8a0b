"""The bit-accurate CPU emulator: the executable definition of docs/semantics.md.

It runs a fixed-point IR with exact integer arithmetic (and a float IR with float32 arithmetic on
the same graph, so the two can be compared), batched, recording the spikes of every population
and optionally the u/v traces, and counting every overflow event.

Speed: synapses take all timesteps of their input in one matrix product (the neuron update is the
only per-step loop); a plastic synapse (``PlasticDense``, targets/emu/plastic.py) runs inside its
post population's step loop instead, since its weights change every epoch. Fixed-point values are integers held in float64: every value stays below
2^53 in magnitude (registers are at most 52 - decay_bits wide, checked by the IR), where float64
arithmetic on integers is exact, and a power-of-two scaling plus trunc/floor is exactly the
shift of docs/semantics.md. Matrix products use float32 BLAS when the largest possible |sum| is
below 2^24 and float64 BLAS below 2^53.
"""
from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from snnhw.errors import SnnhwError
from snnhw.ir import LIF, Conv2d, Dense, Flatten, Graph, PlasticDense, Pool2d
from snnhw.semantics import RunResult, apply_overflow, decay, quantize_input
from snnhw.targets.emu import events
from snnhw.targets.emu.plastic import PlasticInput, weight_bound

EXACT_F32 = 1 << 24
EXACT_F64 = 1 << 53


def _int_matmul(x: np.ndarray, wt: np.ndarray, bound: float) -> np.ndarray:
    """Exact integer ``x @ wt`` given ``bound`` >= every |sum|: float32 BLAS below 2^24, float64 below 2^53."""
    if bound < EXACT_F32:
        return x.astype(np.float32, copy=False) @ wt.astype(np.float32, copy=False)
    if bound < EXACT_F64:
        return x.astype(np.float64, copy=False) @ wt
    raise SnnhwError(f"synaptic sums can reach {bound:.3g}, beyond exact integer range (2^53); "
                     "the weights or inputs are far larger than any target allows")


_INT8_GEMM = None
INT8_GEMM_MIN_INPUT = 4096  # below this many input values the call overhead beats float BLAS
# torch is imported for the int8 product only where that pays: when it is loaded already (snntorch
# users, verify) or for a product of at least this many multiply-accumulates (float BLAS takes
# about as long as importing torch, ~1 s, from here on); small runs start without it.
INT8_GEMM_IMPORT_MACS = 1 << 34


def _int8_gemm():
    """torch's int8 x int8 -> int32 matrix product (VNNI on x86), if torch has it and it is exact
    here; None otherwise. Checked once against numpy on random data."""
    global _INT8_GEMM
    if _INT8_GEMM is None:
        _INT8_GEMM = False
        try:
            import torch
            rng = np.random.default_rng(0)
            a = rng.integers(-128, 128, (37, 70), dtype=np.int8)
            b = rng.integers(-128, 128, (70, 29), dtype=np.int8)
            got = torch._int_mm(torch.from_numpy(a), torch.from_numpy(b)).numpy()
            if np.array_equal(got, a.astype(np.int64) @ b.astype(np.int64)):
                _INT8_GEMM = lambda x, w: torch._int_mm(torch.from_numpy(x), torch.from_numpy(w)).numpy()
        except (ImportError, AttributeError, RuntimeError):
            pass
    return _INT8_GEMM or None


_INT8_PAYS = None


def _int8_pays() -> bool:
    """Whether torch's int8 product is faster than float32 BLAS on this machine, timed once on a
    128 x 256 x 256 product (best of 3 each). Without VNNI (AVX2-only x86) torch runs int8 GEMMs in
    a slow loop, 20-40x slower than float32 BLAS on the reference machine
    (benchmarks/emu_roofline.py); both give the same integers, so this only picks the speed."""
    global _INT8_PAYS
    if _INT8_PAYS is None:
        import time
        int8 = _int8_gemm()
        rng = np.random.default_rng(1)
        a, b = rng.integers(0, 2, (128, 256), dtype=np.int8), rng.integers(-127, 128, (256, 256), dtype=np.int8)
        af, bf = a.astype(np.float32), b.astype(np.float32)

        def best(fn):
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            return min(times)
        _INT8_PAYS = int8 is not None and best(lambda: int8(a, b)) < best(lambda: af @ bf)
    return _INT8_PAYS


# ----------------------------------------------------------------------------- synapses
class _Linear:
    """A weight matrix applied to ``[..., in]`` (fixed: exact integers; float: float32).

    Fixed point: sparse binary spikes take the event path (targets/emu/events.py: only the weight
    rows of active inputs are added); int8 weights and int8-range inputs use an int8 GEMM with int32
    accumulation when available and faster than float BLAS here (exact while |sum| < 2^31);
    otherwise float BLAS (exact, see _int_matmul). All paths give the same integers."""

    def __init__(self, weight: np.ndarray, fixed: bool):
        self.fixed = fixed
        self.wt = np.ascontiguousarray(weight.T, dtype=np.float64 if fixed else np.float32)
        self.colsum = float(np.abs(self.wt).sum(axis=0).max()) if self.wt.size else 0.0
        self.int8 = bool(fixed and self.wt.size and np.abs(self.wt).max() <= 127)
        self.wt8 = None
        if fixed and self.colsum * 2 < EXACT_F32:  # small weights: keep a float32 copy for BLAS
            self.wt32 = self.wt.astype(np.float32)

    def _int8_ready(self, x: np.ndarray) -> bool:
        """Whether to use the int8 product for input ``x`` (importing torch only where it pays)."""
        if self.wt8 is None:
            macs = x.size * self.wt.shape[1]
            if "torch" not in sys.modules and macs < INT8_GEMM_IMPORT_MACS:
                return False
            if _int8_gemm() is None or not _int8_pays():
                self.int8 = False
                return False
            self.wt8 = np.ascontiguousarray(self.wt, dtype=np.int8)
        return True

    def bound(self, x_bound: float) -> float:
        """Largest |output| for inputs bounded by ``x_bound``."""
        return x_bound * self.colsum

    def __call__(self, x: np.ndarray, x_bound: float) -> np.ndarray:
        if not self.fixed:
            return x.astype(np.float32, copy=False) @ self.wt
        b = self.bound(x_bound)
        wt = self.wt32 if b < EXACT_F32 and hasattr(self, "wt32") else self.wt
        if x_bound <= 1 and events.wants_events(x2 := x.reshape(-1, x.shape[-1]), wt.shape[1]) is not None:
            return events.accumulate(x2, wt).reshape(*x.shape[:-1], -1)
        if self.int8 and x_bound <= 127 and b < 2**31 - 1 and x.size >= INT8_GEMM_MIN_INPUT and self._int8_ready(x):
            lead = x.shape[:-1]
            x8 = np.ascontiguousarray(x.reshape(-1, x.shape[-1]), dtype=np.int8)
            return _INT8_GEMM(x8, self.wt8).reshape(*lead, -1)
        return _int_matmul(x, wt, b)


def _windows(x: np.ndarray, kh, kw, sh, sw, dh=1, dw=1) -> np.ndarray:
    """``[N, C, H, W]`` -> ``[N, Ho, Wo, C, kh, kw]`` sliding windows (a view)."""
    win = np.lib.stride_tricks.sliding_window_view(x, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
    win = win[:, :, ::sh, ::sw, ::dh, ::dw]
    return win.transpose(0, 2, 3, 1, 4, 5)


def _conv(n: Conv2d, x: np.ndarray, fixed: bool, x_bound: float) -> tuple[np.ndarray, float]:
    lead = x.shape[:-3]
    x = x.reshape(-1, *x.shape[-3:])
    ph, pw = n.padding
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    kh, kw = n.weight.shape[2:]
    win = _windows(x, kh, kw, *n.stride, *n.dilation)
    nb, ho, wo = win.shape[:3]
    cout = n.weight.shape[0]
    g = n.groups
    cin_g = n.weight.shape[1]
    outs, bound = [], 0.0
    for gi in range(g):
        lin = _Linear(n.weight[gi * cout // g:(gi + 1) * cout // g].reshape(cout // g, -1), fixed)
        cols = win[:, :, :, gi * cin_g:(gi + 1) * cin_g].reshape(nb * ho * wo, -1)
        outs.append(lin(cols, x_bound))
        bound = max(bound, lin.bound(x_bound))
    y = np.concatenate(outs, axis=1).reshape(nb, ho, wo, cout).transpose(0, 3, 1, 2)
    return y.reshape(*lead, cout, ho, wo), bound


def _pool(n: Pool2d, x: np.ndarray) -> np.ndarray:
    lead = x.shape[:-3]
    xx = x.reshape(-1, *x.shape[-3:])
    win = _windows(xx, *n.kernel, *n.stride)
    y = (win.max(axis=(4, 5)) if n.mode == "max" else win.sum(axis=(4, 5))).transpose(0, 3, 1, 2)
    if n.mode == "avg":
        y = (y / np.float32(n.kernel[0] * n.kernel[1])).astype(np.float32)
    return y.reshape(*lead, *n.shape)


# ----------------------------------------------------------------------------- neurons
class _Population:
    """Per-step update of one LIF population over a batch (``[B, N]`` state).

    Fixed point: integers held in float64 (exact, see the module docstring)."""

    def __init__(self, n: LIF, fixed: bool, batch: int, res: RunResult, a_bound: float = float("inf")):
        self.n, self.fixed, self.res = n, fixed, res
        dt = np.float64 if fixed else np.float32
        flat = lambda a: np.asarray(a, dtype=dt).reshape(-1) if np.ndim(a) else np.asarray(a, dtype=dt)
        self.alpha, self.beta = flat(n.alpha), flat(n.beta)
        self.thr, self.bias = flat(n.threshold), flat(n.bias)
        self.u = np.zeros((batch, n.size), dt)
        self.v = np.zeros((batch, n.size), dt)
        self.s = np.zeros((batch, n.size), bool)
        self.counts = {"current": 0, "voltage": 0}
        self.carry_reset = n.reset_mode == "subtract" and n.reset_timing == "immediate"
        self.has_bias = bool(np.any(self.bias != 0))
        if fixed:
            f = n.format
            one = float(1 << f.decay_bits)
            self.alpha_zero = bool(np.all(self.alpha == 0))
            self.beta_one = bool(np.all(self.beta == one))
            self.in_gain = float(1 << f.input_shift)
            # without current memory u is this step's input: skip its range check when it cannot overflow
            self.check_u = not (self.alpha_zero and a_bound * self.in_gain < (1 << (f.current.bits - 1)) - 1)

    def _integrate(self, a):
        if not self.fixed:
            u = self.alpha * self.u + a
            return u, self.beta * self.v + u + self.bias
        f = self.n.format
        u = np.multiply(a, self.in_gain, dtype=np.float64)
        if not self.alpha_zero:
            u += decay(self.u, self.alpha, f.decay_bits, f.decay_rounding)
        if self.check_u:
            u, c = apply_overflow(u, f.current)
            self.counts["current"] += c
        if self.beta_one:
            v = self.v + u
        else:
            v = decay(self.v, self.beta, f.decay_bits, f.decay_rounding)
            v += u
        if self.has_bias:
            v += self.bias
        return u, v

    def step(self, a: np.ndarray) -> np.ndarray:
        """Advance one timestep with synaptic input ``a`` (``[B, N]``, weight units); return spikes."""
        n = self.n
        u, v = self._integrate(a)
        # snntorch's immediate subtractive reset: a stored membrane still above threshold is
        # reduced by one threshold before the spike test, and the reset after it nets that out.
        carry = (self.v > self.thr) if self.carry_reset else None
        if n.reset_timing == "delayed":
            self._reset(v, self.s)
        elif carry is not None:
            self._reset(v, carry)
        v = self._overflow_v(v)
        s = v > self.thr
        if n.reset_timing == "immediate":
            self._reset(v, s)
            if carry is not None:
                v = self._overflow_v(v + carry * self.thr)
        self.u, self.v, self.s = u, v, s
        return s

    def _overflow_v(self, v):
        if not self.fixed:
            return v
        v, c = apply_overflow(v, self.n.format.voltage)
        self.counts["voltage"] += c
        return v

    def _reset(self, v, s):
        """Apply the reset in place where ``s``."""
        mode = self.n.reset_mode
        if mode == "subtract":
            np.subtract(v, np.broadcast_to(self.thr, v.shape), out=v, where=s)
        elif mode == "zero":
            v[s] = 0

    def flush_counts(self):
        """Move the overflow counts so far into ``res`` (and restart counting)."""
        f = self.n.format
        if self.fixed:
            self.res.count(self.n.name, f"current_{f.current.overflow}", self.counts["current"])
            self.res.count(self.n.name, f"voltage_{f.voltage.overflow}", self.counts["voltage"])
        self.counts = {"current": 0, "voltage": 0}


# ----------------------------------------------------------------------------- the run
class Emulator:
    """A graph prepared for repeated runs (weights transposed and bounded once)."""

    def __init__(self, g: Graph):
        self.g = g
        self.fixed = g.kind == "fixed"
        self.linear = {n.name: _Linear(n.weight, self.fixed) for n in g.nodes if type(n) is Dense}
        if not self.fixed and any(n.is_plastic for n in g.nodes):
            raise SnnhwError("plastic synapses learn in the fixed-point IR only (their rule is in integer weight "
                             "units); compile the network first")

    def run(self, x: np.ndarray, record_state: bool = False) -> RunResult:
        """Run on input ``x`` ``[T, B, *input_shape]``; see :class:`RunResult`."""
        x = np.asarray(x)
        return Session(self, x.shape[1] if x.ndim > 1 else 1).feed(x, record_state)

    def session(self, batch: int) -> "Session":
        """A run fed in time chunks (for long runs in constant memory)."""
        return Session(self, batch)


class Session:
    """A run that continues across calls: each :meth:`feed` takes the next timesteps ``[Tc, B, ...]``;
    neuron states, synapse delay lines and recurrent spike history persist between calls, so feeding
    an input in chunks gives exactly the result of feeding it whole (and memory stays bounded)."""

    def __init__(self, emu: Emulator, batch: int):
        self.emu, self.batch = emu, batch
        self.tails: dict = {}  # synapse -> its undelayed output of the last `delay` steps
        self.pops: dict = {}   # population -> _PopulationRunner

    def feed(self, x: np.ndarray, record_state: bool = False) -> RunResult:
        g, fixed = self.emu.g, self.emu.fixed
        res = RunResult()
        x = quantize_input(g, x, res)
        if x.shape[1] != self.batch:
            raise SnnhwError(f"this run has batch {self.batch}; the input chunk has {x.shape[1]}")
        vals = {g.input.name: x}
        # bound[name] >= max |value| of a node's output: picks exact BLAS precision, skips range checks
        bound = {g.input.name: g.input.value_bound if fixed else 0.0}
        for n in g.nodes[1:]:
            src, b_in = vals[n.input], bound[n.input]
            if len(n.sources()) > 1:  # a population summing several paths (docs/semantics.md)
                src, b_in = _summed([vals[s] for s in n.sources()], fixed), sum(bound[s] for s in n.sources())
            vals[n.name], bound[n.name] = n.registered(KERNELS)(self, n, src, b_in, res, record_state)
        return res

    def _delay(self, n, y: np.ndarray) -> np.ndarray:
        """``y`` delayed by ``n.delay`` steps, continuing the previous chunk's tail."""
        d = n.delay
        if d == 0:
            return y
        tail = self.tails.get(n.name)
        if tail is None:
            tail = np.zeros((d, *y.shape[1:]), y.dtype)
        full = np.concatenate([tail.astype(np.result_type(tail, y), copy=False), y])
        self.tails[n.name] = full[full.shape[0] - d:].copy()
        return full[: y.shape[0]]


KERNELS: dict = {}
"""The emulator's kernel for each op type (the node is the Process, the kernel its ProcessModel):
``kernel(session, node, x, x_bound, res, record) -> (output, bound)``, where ``x`` is the output of
the node it reads (``[T, B, *shape]``) and ``x_bound``/``bound`` bound their magnitudes."""


def kernel_for(*ops):
    """Register the decorated function as the kernel of ``ops``."""
    def register(fn):
        for op in ops:
            KERNELS[op] = fn
        return fn
    return register


@kernel_for(Dense)
def _dense(sess, n, src, b_in, res, record):
    lin = sess.emu.linear[n.name]
    return _synapse_out(sess, n, lin(src.reshape(*src.shape[:2], -1), b_in), lin.bound(b_in), res)


@kernel_for(Conv2d)
def _conv2d(sess, n, src, b_in, res, record):
    return _synapse_out(sess, n, *_conv(n, src, sess.emu.fixed, b_in), res)


def _synapse_out(sess, n, y, b, res):
    """A synapse's weighted sum ``y`` (bounded by ``b``) delayed, plus its bias, through the
    accumulator rule (fixed IR)."""
    y = sess._delay(n, y)
    if n.bias is not None:
        b += float(np.abs(n.bias).max())
        if sess.emu.fixed and b >= _exact_limit(y.dtype):
            y = y.astype(np.float64)
        y += n.bias_map().astype(y.dtype)
    if sess.emu.fixed:
        y, b = _acc(n, y, b, res)
        if n.out_shift:  # y << out_shift: exact (every |value| stays below 2^53, checked by the population)
            y, b = np.multiply(y, float(1 << n.out_shift), dtype=np.float64), b * (1 << n.out_shift)
    return y, b


def _summed(paths: list, fixed: bool) -> np.ndarray:
    """The sum of a population's input paths, left to right (fixed: exact integers in float64;
    float: float32, in snntorch's order ``(x_0 + x_1) + x_2 ...``)."""
    T, B = paths[0].shape[:2]
    total = paths[0].reshape(T, B, -1).astype(np.float64 if fixed else np.float32)
    for p in paths[1:]:
        total = total + p.reshape(T, B, -1).astype(total.dtype, copy=False)
    return total


@kernel_for(PlasticDense)
def _plastic(sess, n, src, b_in, res, record):
    """Passes its pre spikes on: it runs inside its post population's step loop (targets/emu/plastic.py)."""
    return src, weight_bound(n)


@kernel_for(Pool2d)
def _pool_kernel(sess, n, src, b_in, res, record):
    return _pool(n, src), n.bound(b_in)


@kernel_for(Flatten)
def _flatten(sess, n, src, b_in, res, record):
    return src.reshape(*src.shape[:2], -1), b_in


@kernel_for(LIF)
def _lif(sess, n, src, b_in, res, record):
    if n.name not in sess.pops:
        syn = sess.emu.g.node(n.input)
        sess.pops[n.name] = _PopulationRunner(n, sess.emu.fixed, sess.batch, b_in, syn if syn.is_plastic else None)
    return sess.pops[n.name].feed(src, res, record), 1.0


def _exact_limit(dtype) -> float:
    """Integers below this magnitude are exact in ``dtype``."""
    return {np.dtype(np.float32): EXACT_F32, np.dtype(np.int32): 2.0**31 - 1}.get(np.dtype(dtype), EXACT_F64)


def run(g: Graph, x: np.ndarray, record_state: bool = False) -> RunResult:
    """Run ``g`` on input ``x`` ``[T, B, *input_shape]``; see :class:`RunResult`."""
    return Emulator(g).run(x, record_state)


def _acc(n, y, b, res):
    """The synapse's accumulator rule (skipped when the bound shows it cannot trigger)."""
    half = 1 << (n.acc.bits - 1)
    if b < half - 1:
        return y, b
    y, c = apply_overflow(y, n.acc)
    res.count(n.name, f"acc_{n.acc.overflow}", c)
    return y, min(b, float(half))


PARALLEL_MIN_WORK = 1 << 14  # neurons x samples per step from which batch-parallel updates pay off


def _threads() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


class _PopulationRunner:
    """One population over the whole batch, across chunks. Samples are independent, so large
    batches are split into parts that run in parallel threads (numpy releases the GIL); results
    do not depend on the split."""

    def __init__(self, n: LIF, fixed: bool, batch: int, a_bound: float, plastic: PlasticDense | None = None):
        self.n, self.fixed, self.plastic = n, fixed, plastic
        self.rec = _Linear(n.rec_weight, fixed) if n.rec_weight is not None else None
        r_bound = 0.0
        if self.rec is not None:
            r_bound = self.rec.bound(1.0) + (float(np.abs(n.rec_bias).max()) if n.rec_bias is not None else 0.0)
            if fixed:
                r_bound = min(r_bound, float(1 << (n.rec_acc.bits - 1)))
        # the synapse exponent (docs/semantics.md): the coarser path's sum is scaled by 2^|e| (exact)
        e = n.rec_weight_exp if fixed else 0
        self.a_gain, self.r_gain = float(1 << max(0, -e)), float(1 << max(0, e))
        a_bound, r_bound = a_bound * self.a_gain, r_bound * self.r_gain
        if a_bound + r_bound >= EXACT_F64 / (1 << (n.format.input_shift if fixed else 0)):
            raise SnnhwError(f"layer {n.name}: synaptic input can reach {a_bound + r_bound:.3g}, beyond exact "
                             "integer range; rec_weight_exp or the accumulators are far larger than any target allows")
        chunks = min(_threads(), batch) if batch * n.size >= PARALLEL_MIN_WORK else 1
        edges = np.linspace(0, batch, chunks + 1).astype(int)
        self.parts = [slice(edges[i], edges[i + 1]) for i in range(chunks)]
        self.counts = [RunResult() for _ in self.parts]
        self.pops = [_Population(n, fixed, sl.stop - sl.start, c, a_bound + r_bound)
                     for sl, c in zip(self.parts, self.counts)]
        d = n.rec_delay if self.rec is not None else 0
        self.history = np.zeros((d, batch, n.size), np.int8)  # spikes of the last rec_delay steps
        # a plastic input synapse: one learner (own weights) per batch part
        self.plastic_in = [PlasticInput(plastic, n, sl.stop - sl.start) if plastic else None for sl in self.parts]

    def feed(self, a_in: np.ndarray, res: RunResult, record: bool) -> np.ndarray:
        n = self.n
        T, B = a_in.shape[:2]
        a_in = a_in.reshape(T, B, -1)
        d = self.history.shape[0]
        spikes = np.concatenate([self.history, np.zeros((T, B, n.size), np.int8)])  # steps -d .. T-1
        state_dtype = np.int64 if self.fixed else np.float32
        us = np.zeros((T, B, n.size), state_dtype) if record else None
        vs = np.zeros((T, B, n.size), state_dtype) if record else None
        work = [(pop, a_in[:, sl], spikes[:, sl], us[:, sl] if record else None, vs[:, sl] if record else None, pl)
                for pop, sl, pl in zip(self.pops, self.parts, self.plastic_in)]
        if len(work) == 1:
            self._loop(*work[0])
        else:
            with ThreadPoolExecutor(len(work)) as pool:
                list(pool.map(lambda w: self._loop(*w), work))
        for pop, c in zip(self.pops, self.counts):
            pop.flush_counts()
            for node, dd in c.overflow.items():
                for key, v in dd.items():
                    res.count(node, key, v)
            c.overflow.clear()
        self.history = spikes[spikes.shape[0] - d:].copy()
        if self.plastic is not None:
            res.weights[self.plastic.name] = np.concatenate([pl.learner.W for pl in self.plastic_in])
        shape = (T, B, *n.shape)
        res.spikes[n.name] = spikes[d:].reshape(shape)
        if record:
            res.current[n.name] = us.reshape(shape)
            res.voltage[n.name] = vs.reshape(shape)
        return res.spikes[n.name]

    def _loop(self, pop, a_in, spikes, us, vs, plastic=None):
        """The per-step loop for one batch part; ``spikes`` starts with the recurrent history.
        With a plastic input synapse ``a_in`` holds its pre spikes, turned into input step by step."""
        n, d = self.n, self.history.shape[0]
        for t in range(a_in.shape[0]):
            a = a_in[t] if plastic is None else plastic.input(a_in[t], pop.res)
            if self.rec is not None:
                r = self.rec(spikes[t], 1.0)  # the spikes of step t - rec_delay
                if n.rec_bias is not None:
                    r = r + n.rec_bias
                if self.fixed:
                    r, c = apply_overflow(r, n.rec_acc)
                    pop.res.count(n.name, f"rec_acc_{n.rec_acc.overflow}", c)
                    if n.rec_weight_exp:  # a + (r << e), or (a << -e) + r
                        a = np.multiply(a, self.a_gain, dtype=np.float64)
                        r = np.multiply(r, self.r_gain, dtype=np.float64)
                a = np.add(a, r, dtype=np.float64 if self.fixed else np.float32)
            spikes[t + d] = pop.step(a)
            if plastic is not None:
                plastic.learn(a_in[t], spikes[t + d])
            if us is not None:
                us[t], vs[t] = pop.u, pop.v
