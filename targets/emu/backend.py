"""Backend of the ``emu`` target: the bit-accurate emulator (targets/emu/emulator.py).

The emulator is the executable definition of docs/semantics.md, so it runs the fixed IR of *any*
build exactly as compiled (its target's register formats, synapse delays and lowering): that is
what every other backend is tested against. It writes no artifacts beyond the IR; its overflow
counts are its own (``overflow_source = "emulator"``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from snnhw.compiler.legalize import legalize
from snnhw.errors import UnsupportedError
from snnhw.ir import Graph
from snnhw.semantics import RunResult
from snnhw.targets.contract import load_fixed
from snnhw.targets.description import TargetDescription, load
from snnhw.targets.emu.emulator import Emulator, run as emulate


class EmuBackend:
    """The ``BACKEND`` of ``emu`` (see :mod:`snnhw.targets.contract`)."""

    def __init__(self, target: TargetDescription):
        self.target = target

    def check(self, graph: Graph) -> None:
        """A fixed IR of any target, legal under emu's own description (every IR feature, emu's bit
        widths). Builds of other targets are accepted: the emulator is their reference semantics."""
        if graph.kind != "fixed":
            raise UnsupportedError("a build holds a fixed IR; this one is float; recompile it with `snnhw compile`")
        legalize(graph, self.target)

    def emit(self, graph: Graph, build_dir: Path, reports: bool = True) -> list[str]:
        """No artifacts: the build's model.onnx is what the emulator runs."""
        self.check(graph)
        return []

    def run(self, build_dir: Path, x: np.ndarray, record_state: bool = False) -> RunResult:
        """Emulate the build's hash-checked model.onnx on ``x`` ``[T, B, *input_shape]``."""
        graph = load_fixed(build_dir)
        self.check(graph)
        res = emulate(graph, x, record_state=record_state)
        res.overflow_source = "emulator"
        return res

    def stream(self, build_dir: Path, x: np.ndarray, record_state: bool, steps: int):
        """Like :meth:`run`, in chunks of ``steps`` timesteps (one emulator session): yields
        ``(first step, RunResult of those steps)``; the chunks together equal :meth:`run`."""
        graph = load_fixed(build_dir)
        self.check(graph)
        session = Emulator(graph).session(x.shape[1])
        for t0 in range(0, x.shape[0], steps):
            res = session.feed(x[t0:t0 + steps], record_state=record_state)
            res.overflow_source = "emulator"
            yield t0, res

    def notes(self, graph: Graph) -> list[str]:
        if graph.target not in (None, self.target.name):
            return [f"the emulator runs this {graph.target} build's fixed IR exactly as compiled "
                    f"({graph.target}'s registers, delays and lowering): its reference semantics"]
        return ["the emulator runs model.onnx itself; no other artifacts"]


BACKEND = EmuBackend(load("emu"))
