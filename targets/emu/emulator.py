"""The bit-accurate CPU emulator: the executable definition of docs/semantics.md.

It runs a fixed-point IR with exact integer arithmetic (and a float IR with float32 arithmetic on
the same graph, so the two can be compared), batched, recording the spikes of every population
and optionally the u/v traces, and counting every overflow event.

Speed: synapses take all timesteps of their input in one matrix product (the neuron update is the
only per-step loop). Integer products go through float BLAS only when the largest possible |sum|
is below 2^53 (float64) or 2^24 (float32), where float arithmetic on integers is exact.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from snnhw.errors import SnnhwError
from snnhw.ir import LIF, Conv2d, Dense, Flatten, Graph, Input, Pool2d, StateFormat

EXACT_F32 = 1 << 24
EXACT_F64 = 1 << 53


@dataclass
class RunResult:
    """What a run produced.

    spikes: per population ``[T, B, *shape]`` int8 (0/1).
    current / voltage: per population ``[T, B, *shape]`` u and v at the end of each step (state
    units, int64; float32 for the float IR); only when ``record_state`` was asked for.
    overflow: per node, event counts keyed ``<register>_<rule>`` (e.g. ``voltage_saturate``); an
    event is one (step, sample, neuron) whose value the overflow rule changed.
    """

    spikes: dict = field(default_factory=dict)
    current: dict = field(default_factory=dict)
    voltage: dict = field(default_factory=dict)
    overflow: dict = field(default_factory=dict)

    def count(self, node: str, key: str, n: int):
        if n:
            d = self.overflow.setdefault(node, {})
            d[key] = d.get(key, 0) + int(n)

    @property
    def total_overflow(self) -> int:
        return sum(sum(d.values()) for d in self.overflow.values())


# ----------------------------------------------------------------------------- integer helpers
def apply_overflow(x: np.ndarray, fmt: StateFormat) -> tuple[np.ndarray, int]:
    """Apply ``fmt``'s overflow rule to int64 ``x``; return the result and the number of changed values."""
    half = 1 << (fmt.bits - 1)
    if fmt.overflow == "saturate":
        out = np.clip(x, -(half - 1), half - 1)
    elif fmt.overflow == "wrap":
        out = ((x + half) & ((half << 1) - 1)) - half
    else:  # wrap_once: one correction, keeping (-half, half]
        out = np.where(x > half, x - 2 * half, np.where(x <= -half, x + 2 * half, x))
    return out, int(np.count_nonzero(out != x))


def decay(x: np.ndarray, q: np.ndarray, bits: int, rounding: str) -> np.ndarray:
    """``x * q / 2^bits`` rounded toward zero (Lava) or down (floor), in int64."""
    p = x * q
    if rounding == "floor":
        return p >> bits
    return np.where(p < 0, -((-p) >> bits), p >> bits)


def _int_matmul(x: np.ndarray, wt: np.ndarray, wabs_colsum_max: float) -> np.ndarray:
    """Exact integer ``x @ wt`` for int arrays, through float BLAS while that is exact."""
    xmax = float(np.abs(x).max()) if x.size else 0.0
    bound = xmax * wabs_colsum_max
    if bound < EXACT_F32:
        return (x.astype(np.float32) @ wt.astype(np.float32)).astype(np.int64)
    if bound < EXACT_F64:
        return (x.astype(np.float64) @ wt.astype(np.float64)).astype(np.int64)
    return x.astype(object) @ wt.astype(object)  # beyond float64: exact but slow; legalization avoids it


# ----------------------------------------------------------------------------- synapses
class _Linear:
    """A weight matrix applied to ``[..., in]`` (fixed: exact integers; float: float32)."""

    def __init__(self, weight: np.ndarray, fixed: bool):
        self.fixed = fixed
        self.wt = np.ascontiguousarray(weight.T)
        if fixed:
            self.wt = self.wt.astype(np.int64)
            self.colsum = float(np.abs(self.wt).sum(axis=0).max()) if self.wt.size else 0.0
        else:
            self.wt = self.wt.astype(np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.fixed:
            return _int_matmul(x, self.wt, self.colsum)
        return x.astype(np.float32) @ self.wt


def _shift(y: np.ndarray, delay: int) -> np.ndarray:
    """Delay ``[T, ...]`` by ``delay`` steps (zeros enter first)."""
    if delay == 0:
        return y
    out = np.zeros_like(y)
    if delay < y.shape[0]:
        out[delay:] = y[: y.shape[0] - delay]
    return out


def _windows(x: np.ndarray, kh, kw, sh, sw, dh=1, dw=1) -> np.ndarray:
    """``[N, C, H, W]`` -> ``[N, Ho, Wo, C, kh, kw]`` sliding windows (a view)."""
    win = np.lib.stride_tricks.sliding_window_view(x, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
    win = win[:, :, ::sh, ::sw, ::dh, ::dw]
    return win.transpose(0, 2, 3, 1, 4, 5)


def _conv(n: Conv2d, x: np.ndarray, fixed: bool) -> np.ndarray:
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
    outs = []
    for gi in range(g):
        wg = n.weight[gi * cout // g:(gi + 1) * cout // g].reshape(cout // g, -1)
        cols = win[:, :, :, gi * cin_g:(gi + 1) * cin_g].reshape(nb * ho * wo, -1)
        outs.append(_Linear(wg, fixed)(cols))
    y = np.concatenate(outs, axis=1).reshape(nb, ho, wo, cout).transpose(0, 3, 1, 2)
    return y.reshape(*lead, cout, ho, wo)


def _pool(n: Pool2d, x: np.ndarray) -> np.ndarray:
    lead = x.shape[:-3]
    xx = x.reshape(-1, *x.shape[-3:])
    win = _windows(xx, *n.kernel, *n.stride)
    y = win.sum(axis=(4, 5)).transpose(0, 3, 1, 2)
    if n.mode == "avg":
        y = (y / np.float32(n.kernel[0] * n.kernel[1])).astype(np.float32)
    return y.reshape(*lead, *n.shape)


# ----------------------------------------------------------------------------- neurons
class _Population:
    """Per-step update of one LIF population over a batch (``[B, N]`` state)."""

    def __init__(self, n: LIF, fixed: bool, batch: int, res: RunResult):
        self.n, self.fixed, self.res = n, fixed, res
        dt = np.int64 if fixed else np.float32
        flat = lambda a: np.asarray(a, dtype=dt).reshape(-1) if np.ndim(a) else np.asarray(a, dtype=dt)
        self.alpha, self.beta = flat(n.alpha), flat(n.beta)
        self.thr, self.bias = flat(n.threshold), flat(n.bias)
        size = n.size
        self.u = np.zeros((batch, size), dt)
        self.v = np.zeros((batch, size), dt)
        self.s = np.zeros((batch, size), bool)
        self.counts = {"current": 0, "voltage": 0}
        self.carry_reset = n.reset_mode == "subtract" and n.reset_timing == "immediate"

    def step(self, a: np.ndarray) -> np.ndarray:
        """Advance one timestep with synaptic input ``a`` (``[B, N]``, weight units); return spikes."""
        n, f = self.n, self.n.format
        if self.fixed:
            u = decay(self.u, self.alpha, f.decay_bits, f.decay_rounding) + (a << f.input_shift)
            u, c = apply_overflow(u, f.current)
            self.counts["current"] += c
            v = decay(self.v, self.beta, f.decay_bits, f.decay_rounding) + u + self.bias
        else:
            u = self.alpha * self.u + a
            v = self.beta * self.v + u + self.bias
        # snntorch's immediate subtractive reset: a stored membrane still above threshold is
        # reduced by one threshold before the spike test, and the reset after it nets that out.
        carry = (self.v > self.thr) if self.carry_reset else None
        if n.reset_timing == "delayed":
            v = self._reset(v, self.s)
        elif carry is not None:
            v = self._reset(v, carry)
        v = self._overflow_v(v)
        s = v > self.thr
        if n.reset_timing == "immediate":
            v = self._reset(v, s)
            if carry is not None:
                v = self._overflow_v(v + np.where(carry, self.thr, np.zeros((), v.dtype)))
        self.u, self.v, self.s = u, v, s
        return s

    def _overflow_v(self, v):
        if not self.fixed:
            return v
        v, c = apply_overflow(v, self.n.format.voltage)
        self.counts["voltage"] += c
        return v

    def _reset(self, v, s):
        mode = self.n.reset_mode
        if mode == "subtract":
            return v - np.where(s, self.thr, np.zeros((), v.dtype))
        if mode == "zero":
            return np.where(s, np.zeros((), v.dtype), v)
        return v

    def flush_counts(self):
        f = self.n.format
        if self.fixed:
            self.res.count(self.n.name, f"current_{f.current.overflow}", self.counts["current"])
            self.res.count(self.n.name, f"voltage_{f.voltage.overflow}", self.counts["voltage"])


# ----------------------------------------------------------------------------- the run
def quantize_input(g: Graph, x: np.ndarray, res: RunResult | None = None) -> np.ndarray:
    """Apply the Input node's semantics to user data ``[T, B, *shape]`` (docs/semantics.md §Input)."""
    inp = g.input
    x = np.asarray(x)
    if x.ndim != len(inp.shape) + 2 or tuple(x.shape[2:]) != tuple(inp.shape):
        raise SnnhwError(f"input has shape {tuple(x.shape)}; this network takes [T, B, "
                         f"{', '.join(map(str, inp.shape))}] (timesteps, batch, then the input shape)")
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise SnnhwError(f"input has shape {tuple(x.shape)}: it needs at least one timestep and one sample")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise SnnhwError(f"input has dtype {x.dtype}; give numbers (spikes 0/1 or analog values)")
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        raise SnnhwError("input contains NaN or Inf values")
    if g.kind == "float":
        return x.astype(np.float32)
    if inp.bits == 1:
        if not np.all((x == 0) | (x == 1)):
            raise SnnhwError("this network was compiled for binary spike input, but the input has values "
                             "other than 0 and 1; encode it first (--encode rate) or recompile with "
                             "--input-kind graded")
        return x.astype(np.int64)
    q = np.round(x.astype(np.float64) / inp.scale)
    hi = (1 << (inp.bits - 1)) - 1
    out = np.clip(q, -hi, hi)
    if res is not None:
        res.count(inp.name, "input_saturate", int(np.count_nonzero(out != q)))
    return out.astype(np.int64)


def run(g: Graph, x: np.ndarray, record_state: bool = False) -> RunResult:
    """Run ``g`` on input ``x`` ``[T, B, *input_shape]``; see :class:`RunResult`."""
    fixed = g.kind == "fixed"
    res = RunResult()
    vals = {g.input.name: quantize_input(g, x, res)}
    T, B = vals[g.input.name].shape[:2]
    for n in g.nodes[1:]:
        src = vals[n.input]
        if isinstance(n, Dense):
            y = _Linear(n.weight, fixed)(src.reshape(T, B, -1))
            y = _shift(y, n.delay)
            if n.bias is not None:
                y = y + n.bias.astype(y.dtype)
            vals[n.name] = _acc(n, y, res) if fixed else y
        elif isinstance(n, Conv2d):
            y = _shift(_conv(n, src, fixed), n.delay)
            if n.bias is not None:
                y = y + n.bias.astype(y.dtype).reshape(-1, 1, 1)
            vals[n.name] = _acc(n, y, res) if fixed else y
        elif isinstance(n, Pool2d):
            vals[n.name] = _pool(n, src)
        elif isinstance(n, Flatten):
            vals[n.name] = src.reshape(T, B, -1)
        elif isinstance(n, LIF):
            vals[n.name] = _run_population(n, src, fixed, res, record_state)
    return res


def _acc(n, y, res):
    y, c = apply_overflow(y, n.acc)
    res.count(n.name, f"acc_{n.acc.overflow}", c)
    return y


def _run_population(n: LIF, a_in: np.ndarray, fixed: bool, res: RunResult, record: bool) -> np.ndarray:
    T, B = a_in.shape[:2]
    a_in = a_in.reshape(T, B, -1)
    pop = _Population(n, fixed, B, res)
    spikes = np.zeros((T, B, n.size), np.int8)
    if record:
        us = np.zeros((T, B, n.size), pop.u.dtype)
        vs = np.zeros((T, B, n.size), pop.v.dtype)
    rec = _Linear(n.rec_weight, fixed) if n.rec_weight is not None else None
    for t in range(T):
        a = a_in[t]
        if rec is not None:
            r = rec(spikes[t - n.rec_delay]) if t >= n.rec_delay else np.zeros_like(a)
            if n.rec_bias is not None:
                r = r + n.rec_bias.astype(r.dtype)
            if fixed:
                r, c = apply_overflow(r, n.rec_acc)
                res.count(n.name, f"rec_acc_{n.rec_acc.overflow}", c)
            a = a + r
        spikes[t] = pop.step(a)
        if record:
            us[t], vs[t] = pop.u, pop.v
    pop.flush_counts()
    shape = (T, B, *n.shape)
    res.spikes[n.name] = spikes.reshape(shape)
    if record:
        res.current[n.name] = us.reshape(shape)
        res.voltage[n.name] = vs.reshape(shape)
    return res.spikes[n.name]
