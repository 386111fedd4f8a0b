"""The backend contract: what every target's backend provides.

A backend is the executable side of a target (``targets/<name>/backend.py``, named by
``[target].backend`` in its ``target.toml``). It exposes one object ``BACKEND`` satisfying
:class:`Backend`. Backends build on the semantics core (``snnhw.semantics``) and the IR; they never
import another backend.

The promise the contract carries: **what is verified is what is deployed**.

- ``check`` re-legalizes a fixed IR against the backend's *own* target description and refuses
  (``UnsupportedError``, one line with the reason and the remedy) a build compiled for another
  target (``graph.target`` / the manifest's ``target``) unless the caller retargets explicitly.
- ``emit`` writes the deployable artifacts into the build directory and returns their paths
  (relative to it); the manifest records their hashes.
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

from snnhw.ir import Graph
from snnhw.semantics import RunResult
from snnhw.targets.description import TargetDescription


@runtime_checkable
class Backend(Protocol):
    """The four operations of a target's backend (see the module docstring)."""

    target: TargetDescription

    def check(self, graph: Graph) -> None:
        """Refuse ``graph`` if it was not compiled for this target or does not legalize against it."""

    def emit(self, graph: Graph, build_dir: Path) -> list[str]:
        """Write the deployable artifacts of ``graph`` into ``build_dir``; return their relative paths."""

    def run(self, build_dir: Path, x: np.ndarray, record_state: bool = False) -> RunResult:
        """Execute the artifacts of ``build_dir`` on input ``x`` ``[T, B, *input_shape]``."""

    def notes(self, graph: Graph) -> list[str]:
        """Human-readable facts about the build of ``graph`` on this target."""


def backend_for(target: TargetDescription) -> Backend:
    """The ``BACKEND`` object of the module ``[target].backend`` names."""
    return importlib.import_module(target.backend).BACKEND
