"""Compile a float IR into a build directory: the one code path of ``snnhw compile`` and ``snnhw verify``.

``snnhw verify`` scores the build this function writes, so what it verifies is byte for byte what
``snnhw compile`` deploys with the same options.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from snnhw import build as b
from snnhw.compiler.lowering import notes as lowering_notes
from snnhw.compiler.mapping import map_graph
from snnhw.compiler.pipeline import CompileOptions, Pass, compile_stages
from snnhw.compiler.quant_report import quantization_report
from snnhw.deploy import write_build
from snnhw.ir import Graph
from snnhw.targets.description import TargetDescription


@dataclass(frozen=True)
class Build:
    """What :func:`compile_build` wrote: the fixed IR, its core mapping (None when the target has no
    cores to map to), the backend's notes, the quantizer's warnings (lost precision; also in
    quantization.json) and the build directory."""

    fixed: Graph
    mapping: dict | None
    notes: list
    warnings: list
    path: Path


def write_compiled(directory: Path, float_g: Graph, target: TargetDescription, options: CompileOptions,
                   on_pass: Callable[[Pass, Graph], None] | None = None) -> Build:
    """Compile ``float_g`` for ``target`` into the existing, empty ``directory``.

    Writes ``float.onnx``, ``model.onnx`` (fixed IR), ``quantization.json`` (of the IR before the
    target's lowering passes; the layers they added listed under ``lowered``), ``mapping.json`` (targets with cores), the backend's artifacts and
    ``manifest.json`` with every file's hash. Raises ``UnsupportedError`` (before writing anything)
    when the target refuses the network."""
    quantized, fixed = compile_stages(float_g, target, options, on_pass=on_pass)
    mapping = map_graph(fixed, target)
    reports = {"quantization.json": quantization_report(float_g, quantized, options.calibration, fixed)}
    if mapping is not None:
        reports[b.MAPPING] = mapping
    kind = "spikes" if options.input_bits == 1 else "graded"
    backend = write_build(Path(directory), fixed, float_g, reports, {"input_kind": kind})
    return Build(fixed, mapping, [*backend.notes(fixed), *lowering_notes(fixed)],
                 list(reports["quantization.json"]["warnings"]),
                 Path(directory))


def compile_build(float_g: Graph, target: TargetDescription, options: CompileOptions, out_dir: Path,
                  on_pass: Callable[[Pass, Graph], None] | None = None) -> Build:
    """Compile ``float_g`` for ``target`` and write the build into ``out_dir``, replaced atomically
    (only if it is a build snnhw wrote; see :func:`snnhw.build.atomic_dir`)."""
    with b.atomic_dir(out_dir, "build") as tmp:
        built = write_compiled(tmp, float_g, target, options, on_pass)
    return replace(built, path=Path(out_dir))
