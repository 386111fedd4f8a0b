"""Compile a float IR into a build directory: the one code path of ``snnhw compile`` and ``snnhw verify``.

``snnhw verify`` scores the build this function writes, so what it verifies is byte for byte what
``snnhw compile`` deploys with the same options.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from snnhw import build as b
from snnhw.compiler.mapping import map_graph
from snnhw.compiler.pipeline import CompileOptions, Pass, compile_graph
from snnhw.compiler.quant_report import quantization_report
from snnhw.ir import Graph, save
from snnhw.targets.description import TargetDescription


@dataclass(frozen=True)
class Build:
    """What :func:`compile_build` wrote: the fixed IR, its core mapping (None when the target has no
    cores to map to), the backend's notes and the build directory."""

    fixed: Graph
    mapping: dict | None
    notes: list
    path: Path


def backend_module(target: TargetDescription):
    """The backend module ``[target].backend`` names (its ``emit``, ``run`` and ``notes``)."""
    return importlib.import_module(target.backend)


def compile_build(float_g: Graph, target: TargetDescription, options: CompileOptions, out_dir: Path,
                  on_pass: Callable[[Pass, Graph], None] | None = None) -> Build:
    """Compile ``float_g`` for ``target`` and write the build into ``out_dir`` (replaced atomically).

    Writes ``float.onnx``, ``model.onnx`` (fixed IR), ``quantization.json``, the backend's artifacts,
    ``mapping.json`` (targets with cores) and ``manifest.json`` with every file's hash. Raises
    ``UnsupportedError`` (before writing anything) when the target refuses the network.
    """
    fixed = compile_graph(float_g, target, options, on_pass=on_pass)
    mapping = map_graph(fixed, target)
    backend = backend_module(target)
    out_dir = Path(out_dir)
    with b.atomic_dir(out_dir) as tmp:
        save(float_g, tmp / b.FLOAT_IR)
        save(fixed, tmp / b.FIXED_IR)
        b.write_json(tmp / "quantization.json", quantization_report(float_g, fixed, options.calibration))
        files = [b.FLOAT_IR, b.FIXED_IR, "quantization.json"] + backend.emit(fixed, tmp)
        if mapping is not None:
            b.write_json(tmp / b.MAPPING, mapping)
            files.append(b.MAPPING)
        b.write_manifest(tmp, fixed, files, {"input_kind": "spikes" if options.input_bits == 1 else "graded"})
    notes = list(getattr(backend, "notes", lambda g: [])(fixed))
    return Build(fixed, mapping, notes, out_dir)
