"""Fold-linear pass: sum/average pooling composed into the adjacent synapse, before quantization.

Between two nonlinear nodes (the input or a neuron population and the next population) the float IR
may chain several linear ops: ``Conv2d -> Pool2d`` (snntorch conv nets), ``Pool2d -> Flatten ->
Dense``, ``Pool2d -> Conv2d``, or a pool alone. Their composition is one linear map, so it is
rewritten as one synapse that every target with Dense/Conv2d runs, and no sum/average pooling
reaches a backend:

* a segment with at most one Conv2d, no Dense, and (after a pool) a Conv2d without padding becomes
  one Conv2d with a composed kernel (pools are per channel, so groups are kept; a pool alone becomes
  a depthwise Conv2d). Conv2d (kernel k, stride s, dilation d, padding p) then a pool (window K,
  stride S): ``W'[o, c, s*a + d*m] += W[o, c, m] * w_pool[a]`` per spatial axis, stride ``s*S``,
  padding ``p``, dilation 1, bias ``b * sum(w_pool)``; a pool then a Conv2d without padding:
  ``W'[o, c, S*d*m + a] += W[o, c, m] * w_pool[a]``, stride ``S*s``. ``w_pool`` is 1 (sum) or
  1/(K_h*K_w) (avg). The output shapes are equal (floor((floor(A/s) - n)/S) = floor((A - n*s)/(s*S))).
* any other segment containing a pool becomes ``Flatten`` + one Dense whose matrix is the segment's
  Jacobian and whose bias is the segment applied to zero (computed in float64).

Both are exact in real arithmetic; in float32 the folded graph differs from the unfolded one only by
rounding. The pass runs before quantization, so the fixed point is the quantization of the folded
graph. Max pooling is not linear and is kept (``Pool2d`` mode ``max``); targets without pooling
refuse it here with the alternatives named.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from snnhw.compiler.lowering import lowered_later
from snnhw.errors import UnsupportedError
from snnhw.ir import Conv2d, Dense, Flatten, Graph, Pool2d

LINEAR = (Dense, Conv2d, Flatten, Pool2d)


def _is_linear_pool(n) -> bool:
    return isinstance(n, Pool2d) and n.mode in ("sum", "avg")


def _pool_kernel(p: Pool2d) -> np.ndarray:
    """The pool as a per-channel ``(K_h, K_w)`` kernel (float64)."""
    w = 1.0 / (p.kernel[0] * p.kernel[1]) if p.mode == "avg" else 1.0
    return np.full(p.kernel, w)


class _ConvSpec:
    """A Conv2d being composed: weight ``(O, C/groups, kh, kw)`` float64, bias, stride, padding,
    dilation, groups; ``pure_pool`` while it holds only pools (one kernel shared by all channels)."""

    def __init__(self, weight, bias, stride, padding, dilation, groups, pure_pool):
        self.weight, self.bias = weight, bias
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        self.pure_pool = pure_pool

    @classmethod
    def of_pool(cls, p: Pool2d) -> "_ConvSpec":
        c = p.in_shape[0]
        w = np.broadcast_to(_pool_kernel(p), (c, 1, *p.kernel)).copy()
        return cls(w, None, tuple(p.stride), (0, 0), (1, 1), c, True)

    @classmethod
    def of_conv(cls, n: Conv2d) -> "_ConvSpec":
        b = None if n.bias is None else n.bias.astype(np.float64)
        return cls(n.weight.astype(np.float64), b, tuple(n.stride), tuple(n.padding), tuple(n.dilation),
                   n.groups, False)

    def then_pool(self, p: Pool2d) -> None:
        """Compose ``pool(conv(x))``: kernel positions ``s*a + d*m``."""
        pk = _pool_kernel(p)
        (sh, sw), (dh, dw) = self.stride, self.dilation
        o, ci, kh, kw = self.weight.shape
        w = np.zeros((o, ci, (pk.shape[0] - 1) * sh + (kh - 1) * dh + 1, (pk.shape[1] - 1) * sw + (kw - 1) * dw + 1))
        for a in range(pk.shape[0]):
            for b in range(pk.shape[1]):
                w[:, :, sh * a: sh * a + (kh - 1) * dh + 1: dh, sw * b: sw * b + (kw - 1) * dw + 1: dw] += \
                    self.weight * pk[a, b]
        self.weight = w
        if self.bias is not None:
            self.bias = self.bias * float(pk.sum())
        self.stride = (sh * p.stride[0], sw * p.stride[1])
        self.dilation = (1, 1)

    def then_conv(self, n: Conv2d) -> None:
        """Compose ``conv(pools(x))`` for a conv without padding: positions ``S*d*m + a``."""
        pk = self.weight[0, 0]  # pools: the same kernel for every channel
        (sh, sw), (dh, dw) = self.stride, tuple(n.dilation)
        wc = n.weight.astype(np.float64)
        o, ci, kh, kw = wc.shape
        w = np.zeros((o, ci, sh * dh * (kh - 1) + pk.shape[0], sw * dw * (kw - 1) + pk.shape[1]))
        for m in range(kh):
            for q in range(kw):
                w[:, :, sh * dh * m: sh * dh * m + pk.shape[0], sw * dw * q: sw * dw * q + pk.shape[1]] += \
                    wc[:, :, m, q, None, None] * pk
        self.weight = w
        self.bias = None if n.bias is None else n.bias.astype(np.float64)
        self.stride = (sh * n.stride[0], sw * n.stride[1])
        self.groups, self.pure_pool = n.groups, False


def _as_conv(seg: list) -> _ConvSpec | None:
    """The segment as one Conv2d, or None when it is not one (see the module docstring)."""
    ops = seg[:-1] if isinstance(seg[-1], Flatten) else seg
    if any(isinstance(n, (Dense, Flatten)) for n in ops):
        return None
    spec = None
    for n in ops:
        if spec is None:
            spec = _ConvSpec.of_pool(n) if isinstance(n, Pool2d) else _ConvSpec.of_conv(n)
        elif isinstance(n, Pool2d):
            spec.then_pool(n)
        elif spec.pure_pool and tuple(n.padding) == (0, 0):
            spec.then_conv(n)
        else:
            return None
    return spec


def _as_dense(seg: list, in_shape: tuple) -> tuple[np.ndarray, np.ndarray | None]:
    """The segment's matrix ``(out, prod(in_shape))`` and bias, in float64 (torch, exact ops)."""
    import torch
    import torch.nn.functional as F

    def apply(x, with_bias):
        for n in seg:
            if isinstance(n, Dense):
                b = torch.from_numpy(n.bias.astype(np.float64)) if with_bias and n.bias is not None else None
                x = F.linear(x.reshape(x.shape[0], -1), torch.from_numpy(n.weight.astype(np.float64)), b)
            elif isinstance(n, Conv2d):
                b = torch.from_numpy(n.bias.astype(np.float64)) if with_bias and n.bias is not None else None
                x = F.conv2d(x, torch.from_numpy(n.weight.astype(np.float64)), b, n.stride, n.padding,
                             n.dilation, n.groups)
            elif isinstance(n, Pool2d):
                k = _pool_kernel(n)
                x = F.avg_pool2d(x, n.kernel, n.stride) * float(k.sum())
            else:
                x = x.reshape(x.shape[0], -1)
        return x.reshape(x.shape[0], -1)

    size = int(np.prod(in_shape))
    with torch.no_grad():
        bias = apply(torch.zeros(1, *in_shape, dtype=torch.float64), True)[0].numpy()
        jac = torch.autograd.functional.jacobian(
            lambda v: apply(v.reshape(1, *in_shape), False)[0], torch.zeros(size, dtype=torch.float64),
            vectorize=True)
    has_bias = any(getattr(n, "bias", None) is not None for n in seg)
    return jac.numpy(), (bias if has_bias else None)


def _segment(nodes: list, consumers: dict, pool: Pool2d) -> list | None:
    """The chain of linear nodes around ``pool`` from its nonlinear source to one population, or
    None when it branches or does not end in a population."""
    by_name = {n.name: n for n in nodes}
    seg = [pool]
    while True:  # backwards to the source
        src = by_name[seg[0].input]
        if not isinstance(src, LINEAR) or len(consumers.get(src.name, [])) != 1 or \
                (isinstance(src, Pool2d) and src.mode == "max"):
            break
        seg.insert(0, src)
    while True:  # forwards to the population
        nxt = consumers.get(seg[-1].name, [])
        if len(nxt) != 1:
            return None
        if nxt[0].is_population:
            return seg
        if not isinstance(nxt[0], LINEAR) or (isinstance(nxt[0], Pool2d) and nxt[0].mode == "max"):
            return None
        seg.append(nxt[0])


def _fold_segment(nodes: list, seg: list, shapes: dict) -> list | None:
    """``nodes`` with ``seg`` replaced by one synapse (None when it is not expressible)."""
    src = seg[0].input
    in_shape = shapes[src]
    out_shape = tuple(seg[-1].shape)
    named = [n for n in seg if n.is_synapse]
    name = named[0].name if named else seg[0].name
    spec = _as_conv(seg)
    new: list = []
    if spec is not None:
        conv = Conv2d(name, src, spec.weight.astype(np.float32), tuple(in_shape),
                      None if spec.bias is None else spec.bias.astype(np.float32), spec.stride, spec.padding,
                      spec.dilation, spec.groups)
        new.append(conv)
        if isinstance(seg[-1], Flatten):
            new.append(Flatten(seg[-1].name, name, tuple(conv.shape)))
    if not new or tuple(new[-1].shape) != out_shape:
        if len(out_shape) != 1:
            return None  # a Dense would change the population's shape
        w, b = _as_dense(seg, in_shape)
        new = []
        if len(in_shape) != 1:
            new.append(Flatten(f"{name}.flatten_in", src, tuple(in_shape)))
            src = new[-1].name
        new.append(Dense(name, src, w.astype(np.float32), None if b is None else b.astype(np.float32)))
    out: list = []
    last = seg[-1].name
    drop = {n.name for n in seg}
    for n in nodes:
        if n.name == seg[0].name:
            out.extend(new)
        if n.name in drop:
            continue
        if last in n.sources():
            n = replace(n, input=new[-1].name) if n.input == last else \
                replace(n, extra_inputs=tuple(new[-1].name if s == last else s for s in n.extra_inputs))
        out.append(n)
    return out


def fold_linear(g: Graph) -> Graph:
    """Return ``g`` with every foldable sum/average pool composed into a synapse (float IR only;
    a fixed IR is returned unchanged)."""
    if g.kind != "float":
        return g
    nodes = list(g.nodes)
    tried: set = set()
    while True:
        consumers: dict = {}
        for n in nodes[1:]:
            for s in n.sources():
                consumers.setdefault(s, []).append(n)
        pools = [n for n in nodes if _is_linear_pool(n) and n.name not in tried]
        if not pools:
            break
        seg = _segment(nodes, consumers, pools[0])
        folded = None if seg is None else _fold_segment(nodes, seg, {n.name: tuple(n.shape) for n in nodes})
        if folded is None:
            tried.add(pools[0].name)  # left for the target's pooling feature to judge
            continue
        nodes = folded
    return Graph(nodes, kind=g.kind, dt=g.dt, target=g.target, meta=dict(g.meta)).validate()


def check_max_pooling(g: Graph, target) -> None:
    """Refuse max pooling on a target that runs no pooling op and lowers no such pool (max pooling
    of spikes: the ``maxpool-to-or`` lowering), naming the alternatives."""
    if target.features.pooling:
        return
    for n in g.nodes:
        if isinstance(n, Pool2d) and n.mode == "max" and not lowered_later(g, n, target):
            src = g.node(n.input)
            on = "spikes" if src.is_population else "input values" if src.is_input else "synaptic currents"
            spikes = " or put the nn.MaxPool2d after a spiking layer (max pooling of spikes is lowered exactly " \
                "to an OR layer)," if "maxpool-to-or" in target.lowering else ""
            raise UnsupportedError(
                f"layer {n.name}: max pooling (on {on}) is not supported on {target.name}: it is not a linear "
                f"synapse; retrain with nn.AvgPool2d (folded exactly into the synapse), a stride-2 nn.Conv2d,{spikes} "
                "or use --target emu")


def fold_pass(g: Graph, target) -> Graph:
    """The pipeline entry: fold, then refuse what still cannot run on ``target``."""
    g = fold_linear(g)
    check_max_pooling(g, target)
    return g
