"""Timing of the fixed IR (docs/semantics.md §Timing): synapse delays, latency and the padding
that lets late spikes come out. Shared by the CLI, verify, report and every backend."""
from __future__ import annotations

import numpy as np

from snnhw.ir import Graph


def arrival(g: Graph) -> dict:
    """Per node, the summed synapse delays from the input (timesteps): a population's response to
    input step ``t`` appears at step ``t + arrival[name]`` (used to align runs with different timing).
    A population summing several paths counts its slowest one (so padding lets every path arrive)."""
    depth = {g.input.name: 0}
    for n in g.nodes[1:]:
        depth[n.name] = max(depth[s] for s in n.sources()) + int(getattr(n, "delay", 0))
    return depth


def latency(g: Graph) -> int:
    """Timesteps from an input spike to the earliest output-layer response: the sum of synapse
    delays on the path to the output population."""
    return arrival(g)[g.output.name]


def pad_steps(x: np.ndarray, steps: int) -> np.ndarray:
    """``x`` ``[T, B, *shape]`` followed by ``steps`` all-zero timesteps (so late spikes come out)."""
    if steps < 0:
        raise ValueError("steps must be >= 0")
    return np.concatenate([x, np.zeros((steps, *x.shape[1:]), x.dtype)]) if steps else x
