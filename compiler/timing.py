"""Timing pass: give every synapse the delay the target's hardware has.

snntorch has no per-layer latency; on Loihi every Dense/Conv adds one timestep
(``numerics.synapse_delay``). Recurrent connections keep their delay (1 in snntorch and Loihi).
"""
from __future__ import annotations

from dataclasses import replace

from snnhw.ir import Conv2d, Dense, Graph
from snnhw.targets.description import TargetDescription


def apply_target_delays(g: Graph, target: TargetDescription) -> Graph:
    d = target.numerics.synapse_delay
    nodes = [replace(n, delay=d) if isinstance(n, (Dense, Conv2d)) else n for n in g.nodes]
    return Graph(nodes, kind=g.kind, dt=g.dt, target=g.target, meta=dict(g.meta)).validate()


def latency(g: Graph) -> int:
    """Steps from an input spike to the earliest output-layer response: the sum of synapse delays
    on the path to the output population."""
    return arrival(g)[g.output.name]


def arrival(g: Graph) -> dict:
    """Per node, the summed synapse delays from the input: a population's response to input step
    ``t`` appears at step ``t + arrival[name]`` (used to align runs with different timing)."""
    depth = {g.input.name: 0}
    for n in g.nodes[1:]:
        depth[n.name] = depth[n.input] + (n.delay if isinstance(n, (Dense, Conv2d)) else 0)
    return depth
