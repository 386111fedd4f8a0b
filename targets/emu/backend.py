"""Backend of the ``emu`` target: the emulator itself; it writes no extra artifacts."""
from __future__ import annotations

from pathlib import Path

from snnhw.ir import Graph
from snnhw.targets.emu.emulator import RunResult, run as _run


def emit(graph: Graph, build_dir: Path) -> list[str]:
    """Write target artifacts into ``build_dir``; the emulator needs none beyond the IR."""
    return []


def run(graph: Graph, x, record_state: bool = False, build_dir: Path | None = None) -> RunResult:
    return _run(graph, x, record_state=record_state)
