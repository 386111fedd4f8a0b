"""Target-specific lowering passes: rewrites of the fixed IR that a target registers by name
(``[target].lowering`` in its target.toml) and the pipeline runs after the generic passes.

A lowering pass maps a fixed IR to a fixed IR with *exactly* the same spikes, currents and voltages
(docs/semantics.md), in ops the target's backend runs. Because the result is an ordinary IR, the
emulator runs the lowered graph too, and the proof that backend == emulator covers the lowering
(tests/test_contract.py checks lowered == unlowered on the emulator).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from snnhw.compiler import lower_maxpool
from snnhw.errors import SnnhwError, UnsupportedError
from snnhw.ir import Conv2d, Dense, Flatten, Graph, Pool2d
from snnhw.targets.description import TargetDescription


def conv_as_dense(n: Conv2d) -> np.ndarray:
    """The exact integer matrix ``(Cout*Ho*Wo, C*H*W)`` of a Conv2d (C-order flattening on both sides).

    ``y = M x`` with ``M[(co, oy, ox), (ci, iy, ix)] = W[co, ci - g*Cin_g, dy, dx]`` where
    ``iy = oy*stride_h - pad_h + dy*dil_h`` (same for x) and ``g`` is the output channel's group."""
    c, h, w = n.in_shape
    cout, cin_g, kh, kw = n.weight.shape
    _, ho, wo = n.shape
    mat = np.zeros((cout, ho, wo, c, h, w), dtype=np.int64)
    per_group = cout // n.groups
    oy, ox = np.meshgrid(np.arange(ho), np.arange(wo), indexing="ij")
    for co in range(cout):
        g = co // per_group
        for ci in range(cin_g):
            for dy in range(kh):
                for dx in range(kw):
                    iy = oy * n.stride[0] - n.padding[0] + dy * n.dilation[0]
                    ix = ox * n.stride[1] - n.padding[1] + dx * n.dilation[1]
                    ok = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
                    mat[co, oy[ok], ox[ok], g * cin_g + ci, iy[ok], ix[ok]] += int(n.weight[co, ci, dy, dx])
    return mat.reshape(cout * ho * wo, c * h * w)


def _flat(a: np.ndarray) -> np.ndarray:
    """A per-neuron parameter flattened (C-order); scalars (shape ``()``) stay scalars."""
    return a.reshape(-1) if np.ndim(a) else a


def conv_to_dense(g: Graph) -> Graph:
    """Replace every Conv2d by the Dense of :func:`conv_as_dense` (same name, delay, accumulator;
    the per-channel bias repeated over positions); populations and their parameters become flat
    (C-order), a Flatten is inserted where a multi-dimensional tensor enters a Dense.

    Exact: the conv's integer sums equal the matrix product term by term, and the bias and the
    accumulator rule apply to the same values in the same order. Pool2d has no flat equivalent
    here (it reads a 3-D population), so a graph with pooling is refused."""
    if not any(isinstance(n, Conv2d) for n in g.nodes):
        return g
    pool = next((n for n in g.nodes if isinstance(n, Pool2d)), None)
    if pool is not None:
        raise UnsupportedError(f"layer {pool.name}: Pool2d cannot follow the conv-to-dense lowering "
                               "(pooling reads a 2-D map); replace the pooling by a stride-2 convolution")
    shapes = {g.input.name: tuple(g.input.shape)}
    nodes = [g.input]
    for n in g.nodes[1:]:
        src = n.input
        if n.is_synapse and len(shapes[src]) > 1:
            flat = f"{n.name}.flat"
            nodes.append(Flatten(flat, src, shapes[src]))
            shapes[flat] = (int(np.prod(shapes[src])),)
            src = flat
        if isinstance(n, Conv2d):
            bias = None if n.bias is None else np.repeat(n.bias, int(np.prod(n.shape[1:])))
            n = Dense(n.name, src, conv_as_dense(n), bias, n.delay, n.acc)
        elif isinstance(n, Flatten):
            n = replace(n, in_shape=shapes[src])
        elif n.is_population:
            n = replace(n, input=src, shape=(n.size,), alpha=_flat(n.alpha), beta=_flat(n.beta),
                        threshold=_flat(n.threshold), bias=_flat(n.bias))
        else:
            n = replace(n, input=src)
        nodes.append(n)
        shapes[n.name] = tuple(n.shape)
    done = [p for p in str(g.meta.get("lowered", "")).split(",") if p]
    meta = {**g.meta, "lowered": ",".join([*done, "conv-to-dense"])}  # saved as an ONNX metadata string
    return Graph(nodes, kind=g.kind, dt=g.dt, target=g.target, meta=meta).validate()


@dataclass(frozen=True)
class Lowering:
    """A named lowering pass: ``run(graph, target) -> graph`` with identical semantics (up to the
    synapse delays it adds, which are part of the graph). ``lowers(graph, node)``: whether it rewrites
    ``node`` into ops the target has, so the feature checks before it let the node through.
    ``notes(graph)``: what a user should know about its result (shown by compile and inspect)."""

    name: str
    doc: str
    run: Callable[[Graph, TargetDescription], Graph]
    lowers: Callable[[Graph, object], bool] = lambda g, n: False
    notes: Callable[[Graph], list] = lambda g: []


LOWERINGS = {p.name: p for p in (
    Lowering("maxpool-to-or", "max pooling of spikes as an exact OR layer: a depthwise window synapse into a "
             "population that spikes iff its window holds a spike", lower_maxpool.lower_maxpool,
             lower_maxpool.on_spikes, lower_maxpool.notes),
    Lowering("conv-to-dense", "unroll every Conv2d into the exact integer Dense it equals (flat populations)",
             lambda g, t: conv_to_dense(g)),
)}


def lowering_passes(names) -> list[Lowering]:
    """The registered passes named by a target description, in order."""
    unknown = [n for n in names if n not in LOWERINGS]
    if unknown:
        raise SnnhwError(f"unknown lowering pass {unknown[0]!r} in the target description; "
                         f"registered: {', '.join(sorted(LOWERINGS))}")
    return [LOWERINGS[n] for n in names]


def lowered_later(g: Graph, node, target: TargetDescription) -> bool:
    """Whether one of ``target``'s lowering passes rewrites ``node`` of ``g`` (float or fixed IR)."""
    return any(p.lowers(g, node) for p in lowering_passes(target.lowering))


def notes(g: Graph) -> list[str]:
    """The notes of every lowering pass that ran on ``g`` (``meta["lowered"]``)."""
    done = [p for p in str(g.meta.get("lowered", "")).split(",") if p in LOWERINGS]
    return [line for name in done for line in LOWERINGS[name].notes(g)]
