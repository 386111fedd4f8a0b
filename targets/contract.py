"""The backend contract: what every target's backend provides.

A backend is the executable side of a target (``targets/<name>/backend.py``, named by
``[target].backend`` in its ``target.toml``). It exposes one object ``BACKEND`` satisfying
:class:`Backend`. Backends build on the semantics core (``snnhw.semantics``) and the IR; they never
import another backend.

The promise the contract carries: **what is verified is what is deployed**.

- ``check`` re-legalizes a fixed IR against the backend's *own* target description and refuses
  (``UnsupportedError``, one line with the reason and the remedy) a build compiled for another
  target (``graph.target`` / the manifest's ``target``) unless the caller retargets explicitly
  (``snnhw run --retarget`` recompiles the build's float IR). The one exception is ``emu``, the
  reference semantics: it runs every target's fixed IR exactly as compiled.
- ``emit`` writes the deployable artifacts into the build directory and returns their paths
  (relative to it); the manifest records their hashes. ``reports=False`` skips slow quality
  reports that change no deployable artifact (fpga: lint and synthesis), for builds made only to run.
- ``run`` executes the artifacts *in the build directory* (after checking their hashes against the
  manifest), never a freshly regenerated copy, and returns a :class:`~snnhw.semantics.RunResult`
  whose overflow counts were observed by this backend itself (``overflow_source`` says how).
- ``notes`` are what the user should know about a build (which artifacts exist, approximations,
  what runs on which model).
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from snnhw.build import FIXED_IR, MANIFEST, load_build, read_manifest, sha256
from snnhw.errors import InvalidFileError, UnsupportedError
from snnhw.ir import Graph
from snnhw.semantics import RunResult
from snnhw.targets.description import TargetDescription


@runtime_checkable
class Backend(Protocol):
    """The four operations of a target's backend (see the module docstring)."""

    target: TargetDescription

    def check(self, graph: Graph) -> None:
        """Refuse ``graph`` if it was not compiled for this target or does not legalize against it."""

    def emit(self, graph: Graph, build_dir: Path, reports: bool = True) -> list[str]:
        """Write the deployable artifacts of ``graph`` into ``build_dir``; return their relative paths."""

    def run(self, build_dir: Path, x: np.ndarray, record_state: bool = False) -> RunResult:
        """Execute the artifacts of ``build_dir`` on input ``x`` ``[T, B, *input_shape]``."""

    def notes(self, graph: Graph) -> list[str]:
        """Human-readable facts about the build of ``graph`` on this target."""


def backend_for(target: TargetDescription) -> Backend:
    """The ``BACKEND`` object of the module ``[target].backend`` names."""
    return importlib.import_module(target.backend).BACKEND


def refuse_foreign_build(graph: Graph, target: TargetDescription) -> None:
    """Refuse (one line: reason and remedy) a fixed IR compiled for another target than ``target``."""
    if graph.kind != "fixed":
        raise UnsupportedError(f"{target.name} runs a fixed IR; compile the model for {target.name} first")
    if graph.target != target.name:
        raise UnsupportedError(
            f"this build was compiled for {graph.target}, not {target.name}, and {target.name} runs only its own "
            f"builds; run it with --target {graph.target}, or add --retarget to recompile its float IR for "
            f"{target.name}")


def load_fixed(build_dir: Path) -> Graph:
    """The build's fixed IR (``model.onnx``), checked against its hash in the manifest."""
    return load_build(build_dir, FIXED_IR)[0]


def verified_file(build_dir: Path, relative: str) -> Path:
    """Path of the build artifact ``relative``, after checking its bytes against the manifest's hash;
    a missing, unlisted or modified file is refused with one line."""
    path = Path(build_dir) / relative
    want = read_manifest(build_dir)["files"].get(relative)
    if want is None:
        raise InvalidFileError(f"{path} is not listed in {MANIFEST}; the build is incomplete, recompile it")
    if not path.is_file():
        raise InvalidFileError(f"{path} is missing; recompile the build")
    if sha256(path) != want:
        raise InvalidFileError(f"{path} does not match its hash in {MANIFEST} (modified or corrupt); "
                               "recompile the build")
    return path
