"""Builds as the backends see them: write a fixed IR and its target's artifacts into a build
directory with a manifest, and run a backend on a build (application layer: used by the CLI,
``verify`` and the examples; backends never import it).

What is run is always a build directory: :func:`run_graph` writes a temporary one, so code that
starts from an in-memory graph executes exactly what ``snnhw compile`` would have deployed.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from snnhw import build as b
from snnhw.ir import Graph, save
from snnhw.semantics import RunResult
from snnhw.targets import load as load_target
from snnhw.targets.contract import Backend, backend_for


def write_build(directory: Path, fixed: Graph, float_g: Graph | None = None, json_files: dict | None = None,
                manifest_extra: dict | None = None, reports: bool = True) -> Backend:
    """Fill the existing, empty ``directory`` with a build of ``fixed`` (compiled for ``fixed.target``):
    model.onnx, float.onnx (when given), the JSON reports ``json_files`` (name -> data), the
    backend's artifacts (``reports``: with its quality reports) and manifest.json with every file's
    hash. Returns the backend."""
    directory = Path(directory)
    backend = backend_for(load_target(fixed.target))
    files = [b.FIXED_IR]
    save(fixed, directory / b.FIXED_IR)
    if float_g is not None:
        save(float_g, directory / b.FLOAT_IR)
        files.append(b.FLOAT_IR)
    for name, data in (json_files or {}).items():
        b.write_json(directory / name, data)
        files.append(name)
    files += backend.emit(fixed, directory, reports)
    b.write_manifest(directory, fixed, files, manifest_extra or {})
    return backend


def run_graph(fixed: Graph, x: np.ndarray, record_state: bool = False) -> RunResult:
    """Run ``fixed`` on its own target's backend through a temporary build (emit, hash, run; the
    build's deployable artifacts are those of ``snnhw compile``, without its slow quality reports)."""
    with tempfile.TemporaryDirectory(prefix="snnhw-build-") as tmp:
        backend = write_build(Path(tmp), fixed, reports=False)
        return backend.run(Path(tmp), x, record_state)
