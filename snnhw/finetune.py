"""Hardware-aware fine-tuning: train the float weights of an snntorch model with the target's
fixed-point forward in the loop.

Every training step imports the module's current weights into the float IR (the snntorch frontend)
and compiles them for the target with the compiler itself (:func:`compile_graph`: the same
exponents, integer weights, thresholds, decays, biases and register formats ``snnhw compile``
produces). :func:`fixed_forward` then runs that fixed IR in torch (float64 tensors holding
integers, exact below 2^53) exactly as docs/semantics.md and the emulator define it: integer
synapses with their delays and accumulator rules, decays rounded toward zero (or floor), the
current and voltage overflow rules, resets, recurrent sums with their exponent. Gradients reach
the float weights through straight-through estimators (each integer weight ``round(w * f)`` passes
the gradient of ``w * f``; rounding, truncation and overflow rules pass gradients unchanged) and
through snntorch's arctan surrogate spike gradient on ``(v - threshold) * state_lsb``. Thresholds
and decays are used as the compiler quantizes them and are not trained. Per-channel weight steps
(compiler.quantize.channel_gains) come with the compiled graph: a row's straight-through factor and
its neuron's state unit are that row's (``signal_scales`` gives one per row).

So the trained model compiles to exactly the integers it was trained against, and its fixed-point
forward equals ``snnhw run`` on the compiled build bit for bit (tests/test_finetune.py).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from snnhw.compiler.pipeline import CompileOptions, compile_graph
from snnhw.compiler.quant_report import rows, signal_scales
from snnhw.compiler.timing import latency
from snnhw.errors import SnnhwError, UnsupportedError
from snnhw.frontends.snntorch_trace import to_ir
from snnhw.ir import LIF, Conv2d, Dense, Flatten, Graph, Pool2d, StateFormat
from snnhw.semantics import quantize_input
from snnhw.targets.description import TargetDescription

SURROGATE_SLOPE = 2.0  # snntorch.surrogate.atan's default alpha
SCHEDULES = ("cosine", "constant")  # learning rate over the epochs (see finetune)


@dataclass
class EpochStats:
    """One epoch: mean training loss, deployed (fixed-point) accuracy on the training data after it,
    and wall time in seconds."""

    epoch: int
    loss: float
    deployed_accuracy: float
    seconds: float


@dataclass
class FinetuneResult:
    """What :func:`finetune` did: float accuracy of the model before, deployed accuracy before and
    after, per-epoch statistics, the compile options the deployment uses, total seconds."""

    float_accuracy: float
    deployed_before: float
    deployed_after: float
    epochs: list = field(default_factory=list)
    options: CompileOptions | None = None
    seconds: float = 0.0


# ----------------------------------------------------------------------------- straight-through pieces
def _ste(value: torch.Tensor, surrogate: torch.Tensor) -> torch.Tensor:
    """``value`` in the forward pass, the gradient of ``surrogate`` in the backward pass."""
    return surrogate + (value - surrogate).detach()


class _ArcTanSpike(torch.autograd.Function):
    """Heaviside ``x > 0`` with snntorch's arctan surrogate gradient ``1 / (1 + (pi/2 a x)^2) * a/2``."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        a = SURROGATE_SLOPE
        return grad * (a / 2) / (1 + (np.pi / 2 * a * x) ** 2)


def _overflow(x: torch.Tensor, fmt: StateFormat) -> torch.Tensor:
    """docs/semantics.md's register rules (straight-through)."""
    h = float(1 << (fmt.bits - 1))
    with torch.no_grad():
        if fmt.overflow == "saturate":
            y = x.clamp(1 - h, h - 1)
        elif fmt.overflow == "wrap":
            y = torch.remainder(x + h, 2 * h) - h
        else:  # wrap_once
            y = torch.where(x > h, x - 2 * h, torch.where(x <= -h, x + 2 * h, x))
    return _ste(y, x)


def _decay(x: torch.Tensor, q: torch.Tensor, bits: int, rounding: str) -> torch.Tensor:
    """``x * q / 2^bits`` rounded toward zero or down (straight-through), as snnhw.semantics.decay."""
    p = x * (q * 2.0 ** -bits)
    return _ste(torch.floor(p) if rounding == "floor" else torch.trunc(p), p)


def _delay(y: torch.Tensor, d: int) -> torch.Tensor:
    if d == 0:
        return y
    return torch.cat([torch.zeros_like(y[:d]), y[:-d]])


# ----------------------------------------------------------------------------- parameters
def param_tensors(net: nn.Module, float_g: Graph, fixed_g: Graph) -> dict:
    """Per node, its fixed-point parameters as float64 tensors: the compiler's integers in the
    forward pass, with straight-through gradients to the module's float parameters (through the
    composed linear map where the fold-linear pass merged pooling into the synapse)."""
    scale = signal_scales(float_g, fixed_g)
    synapses = float_synapses(net, float_g, fixed_g)
    out = {}
    in_float = {n.name for n in float_g.nodes}
    for fx in fixed_g.nodes[1:]:
        if fx.name not in in_float:  # added by a lowering pass (an OR layer of max pooling): constants
            out[fx.name] = _integers(fx)
            continue
        p = {}
        if fx.is_synapse:
            w, b = synapses[fx.name]
            step = scale[fx.name]  # one per output row with per-channel steps
            p["weight"] = _ste(_t(fx.weight), w * _t(rows(scale[fx.input] / step, fx.weight)))
            if fx.bias is not None:
                p["bias"] = _ste(_t(fx.bias), b / _t(step))
        elif fx.is_population:
            p["bias"] = _lif_bias(net, float_g, fixed_g, fx, synapses)
            if fx.rec_weight is not None:
                rec = net.get_submodule(fx.name).recurrent
                step = fx.format.state_scale * (1 << fx.format.input_shift) * 2.0 ** max(0, fx.rec_weight_exp)
                w = rec.weight.double() if isinstance(rec, nn.Linear) else torch.diag(
                    rec.V.double().reshape(-1).expand(fx.size))
                p["rec_weight"] = _ste(_t(fx.rec_weight), w / _t(rows(step, fx.rec_weight)))
                if fx.rec_bias is not None:
                    p["rec_bias"] = _ste(_t(fx.rec_bias), rec.bias.double() / _t(step))
        out[fx.name] = p
    return out


def float_synapses(net: nn.Module, float_g: Graph, fixed_g: Graph) -> dict:
    """Per fixed synapse (Dense/Conv2d), its float weight and bias (or None) as differentiable
    functions of the module's parameters: the module's own, or for a synapse the fold-linear pass
    composed with pooling, the composed map computed in torch from the unfolded layers."""
    out, unfolded = {}, None
    in_float = {n.name for n in float_g.nodes}
    for fx in fixed_g.nodes[1:]:
        if not fx.is_synapse or fx.name not in in_float:  # a lowering's synapses are constants
            continue
        m = _module(net, fx.name)
        if isinstance(m, (nn.Linear, nn.Conv2d)) and tuple(m.weight.shape) == tuple(fx.weight.shape):
            out[fx.name] = (m.weight.double(), None if m.bias is None else m.bias.double())
            continue
        if unfolded is None:
            unfolded = to_ir(net, tuple(float_g.input.shape), fold=False)
        out[fx.name] = _composed(net, unfolded, fixed_g, fx)
    return out


def _module(net: nn.Module, name: str):
    try:
        return net.get_submodule(name)
    except AttributeError:
        return None


def _composed(net: nn.Module, unfolded: Graph, fixed_g: Graph, fx) -> tuple:
    """The float weight and bias of fixed synapse ``fx``, which the fold-linear pass composed from
    the unfolded linear layers between its source and its population: the Jacobian of those layers
    (with the module's parameters, float64), as a matrix for a Dense, as a kernel for a Conv2d (read
    off the layers run without padding on one kernel-sized window; the composed Conv2d carries the
    padding). Linear in the parameters, so gradients flow to every layer of the segment."""
    seg = _segment(unfolded, fixed_g, fx)
    src_shape = tuple(unfolded.node(seg[0].input).shape)
    has_bias = any(getattr(n, "bias", None) is not None for n in seg)
    if isinstance(fx, Dense):
        size = int(np.prod(src_shape))
        basis = torch.eye(size, dtype=torch.float64).reshape(size, *src_shape)
        w = _apply(net, seg, basis, with_bias=False, padding=True).T
        bias = _apply(net, seg, torch.zeros(1, *src_shape, dtype=torch.float64), True, True)[0] if has_bias else None
        return w, bias
    o, cg, kh, kw = fx.weight.shape
    c = src_shape[0]
    basis = torch.eye(c * kh * kw, dtype=torch.float64).reshape(-1, c, kh, kw)
    jac = _apply(net, seg, basis, with_bias=False, padding=False).T.reshape(o, c, kh, kw)
    og = o // fx.groups
    w = torch.cat([jac[g * og:(g + 1) * og, g * cg:(g + 1) * cg] for g in range(fx.groups)])
    bias = _apply(net, seg, torch.zeros(1, c, kh, kw, dtype=torch.float64), True, False)[0] if has_bias else None
    return w, bias


def _segment(unfolded: Graph, fixed_g: Graph, fx) -> list:
    """The unfolded float IR's linear nodes composed into ``fx``: from the node ``fx`` reads (past
    the flatten the fold inserted) to the population ``fx`` feeds."""
    names = {n.name for n in unfolded.nodes}
    src = fx.input
    while src not in names:
        src = fixed_g.node(src).input
    consumers = {n.input: n for n in fixed_g.nodes[1:]}
    pop = consumers[fx.name]
    while not isinstance(pop, LIF):
        pop = consumers[pop.name]
    seg, name = [], unfolded.node(pop.name).input
    while name != src:
        seg.insert(0, unfolded.node(name))
        name = seg[0].input
    return seg


def _apply(net: nn.Module, seg: list, x: torch.Tensor, with_bias: bool, padding: bool) -> torch.Tensor:
    """The linear layers ``seg`` on ``x`` ``[N, *shape]`` with the module's parameters: ``[N, -1]``."""
    for n in seg:
        if isinstance(n, (Dense, Conv2d)):
            m = _module(net, n.name)
            if not isinstance(m, (nn.Linear, nn.Conv2d)):
                raise UnsupportedError(f"finetune: layer {n.name} is not an nn.Linear or nn.Conv2d module of the "
                                       "model, so its weights cannot be trained through the pooling composed with it")
            b = m.bias.double() if with_bias and m.bias is not None else None
            if isinstance(n, Dense):
                x = F.linear(x.reshape(x.shape[0], -1), m.weight.double(), b)
            else:
                x = F.conv2d(x, m.weight.double(), b, n.stride, n.padding if padding else 0, n.dilation, n.groups)
        elif isinstance(n, Pool2d):
            x = F.avg_pool2d(x, n.kernel, n.stride, divisor_override=1 if n.mode == "sum" else None)
        else:
            x = x.reshape(x.shape[0], *n.shape)
    return x.reshape(x.shape[0], -1)


def _lif_bias(net, float_g, fixed_g, fx: LIF, synapses: dict) -> torch.Tensor:
    """The population's bias per neuron; biases the compiler moved into it (alpha = 0) pass their
    gradient in state units."""
    value = _t(np.broadcast_to(fx.bias, fx.shape).reshape(-1))
    src, fl = float_g.node(fx.input), float_g.node(fx.name)
    moved = []
    if src.is_synapse and src.bias_per_output and src.bias is not None and fixed_g.node(src.name).bias is None:
        moved.append(synapses[src.name][1])
    if fl.rec_bias is not None and fx.rec_bias is None:
        moved.append(net.get_submodule(fx.name).recurrent.bias.double())
    if not moved:
        return value
    return _ste(value, sum(moved) / _t(fx.format.state_scale))


def _t(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, np.float64))


# ----------------------------------------------------------------------------- the forward
def fixed_forward(fixed_g: Graph, x: np.ndarray, params: dict | None = None) -> dict:
    """Spikes ``{population: [T, B, *shape]}`` (float64 0/1 tensors) of fixed IR ``fixed_g`` on input
    ``x`` ``[T, B, *shape]`` (user values: quantized as the Input node says), computed in torch.
    params: per node its parameter tensors (:func:`param_tensors`, for gradients); default: the
    graph's integers."""
    if fixed_g.kind != "fixed":
        raise SnnhwError("fixed_forward needs a fixed-point IR")
    params = params or {n.name: _integers(n) for n in fixed_g.nodes[1:]}
    vals = {fixed_g.input.name: torch.as_tensor(quantize_input(fixed_g, x).astype(np.float64))}
    spikes = {}
    for n in fixed_g.nodes[1:]:
        src = vals[n.input]
        T, B = src.shape[:2]
        if len(n.sources()) > 1:  # a population summing several paths (LIF.extra_inputs)
            src = sum(vals[s].reshape(T, B, -1) for s in n.sources())
        kernel = _TORCH_KERNELS.get(type(n))  # the exact op: a plastic synapse has no entry
        if kernel is None:
            raise UnsupportedError(f"finetune: layer {n.name} ({type(n).__name__}) has no fixed-point forward in "
                                   "torch; fine-tune a network of Dense/Conv2d synapses, pooling and LIF populations")
        vals[n.name] = kernel(n, src, params[n.name])
        if n.is_population:
            spikes[n.name] = vals[n.name]
    return spikes


def _synapse_out(n, y: torch.Tensor, bias) -> torch.Tensor:
    """A synapse's output after its delay, bias, accumulator rule and out_shift."""
    y = _delay(y, n.delay)
    if bias is not None:
        y = y + bias
    return _overflow(y, n.acc) * (1 << n.out_shift)


def _dense_kernel(n, src, p):
    T, B = src.shape[:2]
    return _synapse_out(n, src.reshape(T, B, -1) @ p["weight"].T, p.get("bias"))


def _conv_kernel(n, src, p):
    T, B = src.shape[:2]
    y = F.conv2d(src.reshape(T * B, *src.shape[2:]), p["weight"], None, n.stride, n.padding, n.dilation,
                 n.groups).reshape(T, B, *n.shape)
    bias = p.get("bias")
    return _synapse_out(n, y, None if bias is None else bias.reshape(-1, 1, 1))


def _pool_kernel(n, src, p):
    T, B = src.shape[:2]
    flat = src.reshape(T * B, *src.shape[2:])
    y = F.max_pool2d(flat, n.kernel, n.stride) if n.mode == "max" else \
        F.avg_pool2d(flat, n.kernel, n.stride, divisor_override=1)
    return y.reshape(T, B, *n.shape)


def _population_kernel(n, src, p):
    T, B = src.shape[:2]
    return _population(n, src.reshape(T, B, -1), p).reshape(T, B, *n.shape)


_TORCH_KERNELS = {
    Dense: _dense_kernel,
    Conv2d: _conv_kernel,
    Pool2d: _pool_kernel,
    Flatten: lambda n, src, p: src.reshape(*src.shape[:2], -1),
    LIF: _population_kernel,
}
"""The fixed-point forward of each op in torch (``kernel(node, input, params) -> output``), equal to
the emulator's kernels bit for bit. A plastic synapse has
no entry: its weights change during a run, which fine-tuning does not model."""


def _integers(n) -> dict:
    """A node's parameters as float64 tensors (population biases per neuron, flat)."""
    p = {k: _t(getattr(n, k)) for k in ("weight", "bias", "rec_weight", "rec_bias") if getattr(n, k, None) is not None}
    if n.is_population:
        p["bias"] = _t(np.broadcast_to(n.bias, n.shape).reshape(-1))
    return p


def _population(n: LIF, a_in: torch.Tensor, p: dict) -> torch.Tensor:
    """The per-step LIF update of docs/semantics.md over ``a_in`` ``[T, B, N]``; spikes ``[T, B, N]``."""
    f = n.format
    T, B, N = a_in.shape
    flat = lambda a: _t(np.broadcast_to(a, n.shape).reshape(-1))
    alpha, beta, thr = flat(n.alpha), flat(n.beta), flat(n.threshold)
    lsb = flat(f.state_scale)  # per neuron with per-channel steps: the surrogate sees float volts
    bias = p["bias"]
    gain = float(1 << f.input_shift)
    e = n.rec_weight_exp
    a_gain, r_gain = float(1 << max(0, -e)), float(1 << max(0, e))
    u = torch.zeros(B, N, dtype=torch.float64)
    v = torch.zeros(B, N, dtype=torch.float64)
    s = torch.zeros(B, N, dtype=torch.float64)
    history = [torch.zeros(B, N, dtype=torch.float64)] * (n.rec_delay if n.rec_weight is not None else 0)
    out = []
    for t in range(T):
        a = a_in[t]
        if n.rec_weight is not None:
            r = history[-n.rec_delay] @ p["rec_weight"].T
            if "rec_bias" in p:
                r = r + p["rec_bias"]
            r = _overflow(r, n.rec_acc)
            a = a * a_gain + r * r_gain
        u_new = a * gain
        if torch.any(alpha != 0):
            u_new = u_new + _decay(u, alpha, f.decay_bits, f.decay_rounding)
        u_new = _overflow(u_new, f.current)
        v_new = _decay(v, beta, f.decay_bits, f.decay_rounding) + u_new + bias
        carry = None
        if n.reset_mode == "subtract" and n.reset_timing == "immediate":
            carry = (v > thr).to(v.dtype).detach()
        if n.reset_timing == "delayed":
            v_new = _reset(v_new, s.detach(), thr, n.reset_mode)
        elif carry is not None:
            v_new = _reset(v_new, carry, thr, n.reset_mode)
        v_new = _overflow(v_new, f.voltage)
        s_new = _ArcTanSpike.apply((v_new - thr) * lsb)
        if n.reset_timing == "immediate":
            v_new = _reset(v_new, s_new.detach(), thr, n.reset_mode)
            if carry is not None:
                v_new = _overflow(v_new + carry * thr, f.voltage)
        u, v, s = u_new, v_new, s_new
        if n.rec_weight is not None:
            history = history[1:] + [s]
        out.append(s)
    return torch.stack(out)


def _reset(v: torch.Tensor, s: torch.Tensor, thr: torch.Tensor, mode: str) -> torch.Tensor:
    if mode == "subtract":
        return v - s * thr
    if mode == "zero":
        return v * (1 - s)
    return v


# ----------------------------------------------------------------------------- training
def deployment(net: nn.Module, input_shape: tuple, target: TargetDescription, options: CompileOptions):
    """The float IR of ``net``'s current weights and its fixed IR for ``target`` (what ``snnhw compile``
    builds from the same weights and options)."""
    float_g = to_ir(net, tuple(input_shape))
    return float_g, compile_graph(float_g, target, options)


def _padded(fixed_g: Graph, x: np.ndarray) -> np.ndarray:
    """``x`` with the network's latency appended as zero steps (as ``snnhw run`` does)."""
    pad = latency(fixed_g)
    return np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)]) if pad else x


def spike_count_accuracy(spikes, y: np.ndarray) -> float:
    """Accuracy of output spikes ``[T, B, *shape]`` decoded as ``snnhw verify`` does by default (the
    class with the most spikes; a tie or no spike is undecided, so wrong)."""
    from snnhw.decode import Decoding, accuracy
    return accuracy(Decoding().predict(np.asarray(spikes)), y)


def deployed_accuracy(fixed_g: Graph, x: np.ndarray, y: np.ndarray) -> float:
    """:func:`spike_count_accuracy` of the fixed IR in the emulator (the deployment's semantics)."""
    from snnhw.targets.emu.emulator import Emulator
    return spike_count_accuracy(Emulator(fixed_g).run(_padded(fixed_g, x)).spikes[fixed_g.output.name], y)


def _loader(data, batch_size: int, seed: int):
    """``data`` as a DataLoader of ``(x [B, T, ...], y [B])`` batches: a DataLoader as given; arrays
    ``(x [T, B, ...], y)`` as ``DataLoader(TensorDataset(x moved to [B, T, ...], y), batch_size,
    shuffle=True, generator=torch.Generator().manual_seed(seed))``, so that loader gives the same
    training as the arrays."""
    from torch.utils.data import DataLoader, TensorDataset
    if not isinstance(data, tuple):
        return data
    x, y = data
    ds = TensorDataset(torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, 0, 1))), torch.from_numpy(y))
    return DataLoader(ds, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))


def _batches(loader) -> Iterable:
    """(x [T, B, ...] float32 numpy, y [B] int64) from a loader yielding (x [B, T, ...], y [B])."""
    for xb, yb in loader:
        yield np.moveaxis(np.asarray(xb, np.float32), 0, 1), np.asarray(yb).reshape(-1).astype(np.int64)


def _arrays(data) -> tuple[np.ndarray, np.ndarray]:
    """All of ``data`` as ``(x [T, B, ...], y [B])`` for scoring: the arrays, or the loader's dataset
    read in order (not through the loader's sampler, so its shuffling is not advanced)."""
    from torch.utils.data import DataLoader, IterableDataset
    if isinstance(data, tuple):
        return data
    source = data if isinstance(data.dataset, IterableDataset) else \
        DataLoader(data.dataset, batch_size=256, collate_fn=data.collate_fn)
    xs, ys = zip(*_batches(source))
    return np.concatenate(xs, axis=1), np.concatenate(ys)


def finetune(net: nn.Module, data, target: TargetDescription, options: CompileOptions,
             input_shape: tuple, epochs: int = 5, seed: int = 0, lr: float = 2e-3, batch_size: int = 64,
             on_epoch: Callable[[EpochStats], None] | None = None,
             on_batch: Callable[[int, float], None] | None = None, schedule: str = "cosine") -> FinetuneResult:
    """Fine-tune ``net`` in place with ``target``'s fixed-point forward in the loop.

    data: ``(x [T, B, *input_shape], y [B] integer labels)`` numpy arrays, shuffled into batches of
    ``batch_size`` by a generator seeded with ``seed``; or a torch DataLoader yielding
    ``(x [B, T, *input_shape], y [B])`` batches in its own order and size (``DataLoader(TensorDataset(
    x [B, T, ...], y), batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))``
    trains exactly as the arrays). options: the compile options the deployment will use (``snnhw
    compile`` with the same flags builds the same integers). The loss is the cross entropy of the
    output layer's spike counts; Adam with learning rate ``lr``, decayed per epoch along a half cosine
    (epoch ``e`` of ``E`` trains at ``lr * (1 + cos(pi * (e - 1) / E)) / 2``) with ``schedule="cosine"``,
    or kept with ``"constant"``. Deterministic for a seed (and a deterministic loader).
    """
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise SnnhwError("finetune needs epochs >= 1, batch size >= 1 and a positive learning rate")
    if schedule not in SCHEDULES:
        raise SnnhwError(f"learning-rate schedule {schedule!r}: expected one of {', '.join(SCHEDULES)}")
    torch.manual_seed(seed)
    x_all, y_all = _arrays(data)
    loader = _loader(data, batch_size, seed)
    y_all = np.asarray(y_all).astype(np.int64)
    start = time.perf_counter()
    float_g, fixed_g = deployment(net, input_shape, target, options)
    n_out = fixed_g.output.size
    if y_all.min() < 0 or y_all.max() >= n_out:
        raise SnnhwError(f"labels must be integers in 0..{n_out - 1} (the output layer has {n_out} neurons)")
    from snnhw.targets.emu.emulator import Emulator
    float_acc = spike_count_accuracy(Emulator(float_g).run(x_all).spikes[float_g.output.name], y_all)
    result = FinetuneResult(float_acc, deployed_accuracy(fixed_g, x_all, y_all), 0.0, options=options)
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=lr)
    for epoch in range(1, epochs + 1):
        t0, losses = time.perf_counter(), []
        for group in opt.param_groups:
            group["lr"] = lr * (1 + np.cos(np.pi * (epoch - 1) / epochs)) / 2 if schedule == "cosine" else lr
        for i, (xb, yb) in enumerate(_batches(loader)):
            float_g, fixed_g = deployment(net, input_shape, target, options)
            params = param_tensors(net, float_g, fixed_g)
            out = fixed_forward(fixed_g, _padded(fixed_g, xb), params)[fixed_g.output.name]
            loss = F.cross_entropy(out.sum(0).reshape(out.shape[1], -1), torch.as_tensor(yb, dtype=torch.long))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if on_batch:
                on_batch(i, losses[-1])
        _, fixed_g = deployment(net, input_shape, target, options)
        stats = EpochStats(epoch, float(np.mean(losses)), deployed_accuracy(fixed_g, x_all, y_all),
                           time.perf_counter() - t0)
        result.epochs.append(stats)
        if on_epoch:
            on_epoch(stats)
    result.deployed_after = result.epochs[-1].deployed_accuracy
    result.seconds = time.perf_counter() - start
    return result


# ----------------------------------------------------------------------------- files
def load_training_data(path) -> tuple[np.ndarray, np.ndarray]:
    """``x`` [T, B, *shape] (float32) and integer labels ``y`` [B] from a ``.npz`` (no pickles)."""
    import zipfile
    try:
        with np.load(path, allow_pickle=False) as d:
            if not isinstance(d, np.lib.npyio.NpzFile) or not {"x", "y"} <= set(d.files):
                raise SnnhwError(f"--data {path}: expected a .npz holding arrays x [T, B, ...] and y [B]")
            x, y = d["x"], d["y"]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, AttributeError) as exc:
        raise SnnhwError(f"--data {path} is not a readable .npz ({type(exc).__name__})") from None
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool) or np.iscomplexobj(x) or x.ndim < 3 \
            or min(x.shape[:2]) < 1 or not np.all(np.isfinite(x)):
        raise SnnhwError(f"--data {path}: x must be finite real numbers [T, B, *input_shape] with T, B >= 1, "
                         f"got {x.dtype} {tuple(x.shape)}")
    if y.ndim != 1 or y.shape[0] != x.shape[1] or not np.issubdtype(y.dtype, np.integer):
        raise SnnhwError(f"--data {path}: y must be {x.shape[1]} integer labels (one per sample), got {y.dtype} "
                         f"{tuple(y.shape)}")
    return x.astype(np.float32, copy=False), y.astype(np.int64)


def save_state_dict(net: nn.Module, path) -> None:
    """Write ``net.state_dict()`` to ``path`` atomically (a temporary file renamed into place)."""
    import os
    from pathlib import Path
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(net.state_dict(), tmp)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise SnnhwError(f"cannot write {path}: {exc.strerror}") from None
