"""What a run produced, on any backend."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RunResult:
    """What a run produced.

    spikes: per population ``[T, B, *shape]`` int8 (0/1).
    current / voltage: per population ``[T, B, *shape]`` u and v at the end of each step (state
    units, int64; float32 for the float IR); only when ``record_state`` was asked for.
    overflow: per node, event counts keyed ``<register>_<rule>`` (e.g. ``voltage_saturate``); an
    event is one (step, sample, neuron) whose value the overflow rule changed.
    weights: per plastic synapse, the learned weights at the end of the run, ``[B, out, in]`` int64
    (one matrix per sample: every sample learns independently).
    overflow_source: who observed the overflow counts (e.g. ``emulator``, ``lava states``, ``rtl
    counters``): a backend reports what it observed itself, labelled.
    """

    spikes: dict = field(default_factory=dict)
    current: dict = field(default_factory=dict)
    voltage: dict = field(default_factory=dict)
    overflow: dict = field(default_factory=dict)
    overflow_source: str = "emulator"
    weights: dict = field(default_factory=dict)

    def count(self, node: str, key: str, n: int):
        if n:
            d = self.overflow.setdefault(node, {})
            d[key] = d.get(key, 0) + int(n)

    @property
    def total_overflow(self) -> int:
        return sum(sum(d.values()) for d in self.overflow.values())
