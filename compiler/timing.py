"""Timing pass: give every synapse the delay the target's hardware has.

snntorch has no per-layer latency; on Loihi every Dense/Conv adds one timestep
(``numerics.synapse_delay``). Recurrent connections keep their delay (1 in snntorch and Loihi).
What the delays mean (latency, arrival) is part of the semantics core: :mod:`snnhw.semantics.timing`.
"""
from __future__ import annotations

from dataclasses import replace

from snnhw.ir import Graph
from snnhw.semantics.timing import arrival, latency
from snnhw.targets.description import TargetDescription

__all__ = ["apply_target_delays", "arrival", "latency"]


def apply_target_delays(g: Graph, target: TargetDescription) -> Graph:
    d = target.numerics.synapse_delay
    nodes = [replace(n, delay=d) if n.is_synapse else n for n in g.nodes]
    return Graph(nodes, kind=g.kind, dt=g.dt, target=g.target, meta=dict(g.meta)).validate()
