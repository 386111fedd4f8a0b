"""The IR graph: nodes in topological order, the first one the network input."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from snnhw.ir.checks import fail
from snnhw.ir.nodes import LIF, NODE_TYPES, Input, Node

KINDS = ("float", "fixed")


@dataclass
class Graph:
    """A spiking network. ``kind`` is ``float`` (from a frontend) or ``fixed`` (after quantization).

    dt: seconds per timestep (informational: used by reports and NIR conversion).
    target: the target the fixed IR was compiled for (None for the float IR).
    """

    nodes: list
    kind: str = "float"
    dt: float = 1e-3
    target: str | None = None
    meta: dict = field(default_factory=dict)

    @property
    def input(self) -> Input:
        return self.nodes[0]

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def shape_of(self, name: str) -> tuple:
        return tuple(self.node(name).shape)

    @property
    def neurons(self) -> list:
        return [n for n in self.nodes if n.is_population]

    @property
    def output(self) -> LIF:
        """The last neuron population: the network's output layer."""
        return self.neurons[-1]

    def consumers(self, name: str) -> list:
        """The nodes that read ``name``'s output, in graph order."""
        return [m for m in self.nodes if name in m.sources()]

    def consumer(self, name: str):
        """The single node reading ``name`` (None when none or several do)."""
        c = self.consumers(name)
        return c[0] if len(c) == 1 else None

    def through_reshapes(self, name: str, pools: bool = True):
        """Walk back from node ``name`` through reshaping ops (Pool2d, Flatten; only Flatten with
        ``pools=False``) to the first other node; return it and the gain the reshaping ops apply on
        the way (1/window per average pool)."""
        factor = 1.0
        n = self.node(name)
        while n.is_reshape and (pools or n.keeps_values):
            factor /= n.divisor
            n = self.node(n.input)
        return n, factor

    def feeding_synapse(self, name: str):
        """The Dense/Conv2d whose output reaches ``name`` through pooling/flatten (None if the input
        or a population does), and the factor average pooling applies on the way (1/window per avg pool)."""
        n, factor = self.through_reshapes(name)
        return (n if n.is_synapse else None), factor

    def population_of(self, name: str):
        """The population that node ``name``'s output reaches, following the first consumer through
        reshaping ops and synapses (None if the chain ends before a population)."""
        c = next(iter(self.consumers(name)), None)
        while c is not None and not c.is_population:
            c = next(iter(self.consumers(c.name)), None)
        return c

    def paths_to_populations(self, name: str) -> list:
        """Every chain from node ``name`` to a population: ``(nodes, population)`` with ``nodes`` the
        synapses and reshaping ops in between, in flow order (one per summed input path it feeds)."""
        out = []

        def walk(n, chain):
            for c in self.consumers(n):
                if c.is_population:
                    if chain:
                        out.append((chain, c))
                else:
                    walk(c.name, chain + [c])
        walk(name, [])
        return out

    def synapse_bias(self, pop: LIF) -> np.ndarray:
        """Biases of the synapses feeding ``pop`` (its dense/convs read directly and its recurrent dense), per neuron,
        in state units (``bias << input_shift``, each path also shifted by its synapse exponent:
        ``LIF.rec_weight_exp``); fixed IR only."""
        bias = np.zeros(pop.shape, np.int64)
        shift, e = pop.format.input_shift, pop.rec_weight_exp
        for name in pop.sources():  # each path: its synapse's out_shift too
            src = self.node(name)
            if src.is_synapse and src.bias is not None:
                b = np.broadcast_to(src.bias_map().astype(np.int64), pop.shape)
                bias = bias + (b << (shift + max(0, -e) + src.out_shift))
        if pop.rec_bias is not None:
            bias = bias + (pop.rec_bias.astype(np.int64).reshape(pop.shape) << (shift + max(0, e)))
        return bias

    def validate(self) -> "Graph":
        """Check structure, shapes, enums and parameter types; raise InvalidFileError on any defect."""
        _validate(self)
        return self


def _validate(g: Graph):
    if g.kind not in KINDS:
        fail(f"unknown kind {g.kind!r}")
    fixed = g.kind == "fixed"
    if not g.nodes or not isinstance(g.nodes[0], Input):
        fail("the first node must be the Input")
    if not (isinstance(g.dt, float) and np.isfinite(g.dt) and g.dt > 0):
        fail(f"dt must be a positive number of seconds, got {g.dt!r}")
    shapes: dict = {}
    for i, n in enumerate(g.nodes):
        where = f"node {n.name!r}" if isinstance(getattr(n, "name", None), str) else f"node #{i}"
        if not isinstance(getattr(n, "name", None), str) or not n.name:
            fail(f"{where} has no name")
        if n.name in shapes:
            fail(f"duplicate node name {n.name!r}")
        if not isinstance(n, NODE_TYPES):
            fail(f"{where}: unknown node type {type(n).__name__}")
        if n.is_input and i != 0:
            fail(f"{where}: only one Input, first")
        srcs = n.sources()
        for s in srcs:
            if s not in shapes:
                fail(f"{where} reads {s!r}, which is not an earlier node")
        n.check(shapes[srcs[0]] if srcs else None, where, fixed, g)
        shapes[n.name] = tuple(n.shape)
    if not g.neurons:
        fail("the network has no neuron population")
