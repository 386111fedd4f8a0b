"""Backend of the ``fpga`` target: generate the RTL, check it, simulate the emitted files.

``emit`` writes ``rtl/`` (Verilog modules, $readmemh memory images, the testbench) and
``fpga_report.json`` (lint, synthesis, cycle budget, device fit). ``run`` simulates the build's own
``rtl/`` files, after checking every one against its hash in manifest.json (a modified file is
refused), and returns the spikes, end-of-step u/v and the overflow events the testbench's counters
observed in the RTL (``overflow_source = "rtl counters"``). The plan it needs to drive the
testbench (list widths, core names) is re-derived from the build's hash-checked model.onnx under
this backend's own target description.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from snnhw.build import read_manifest
from snnhw.compiler.legalize import legalize
from snnhw.errors import InvalidFileError
from snnhw.ir import Graph
from snnhw.semantics import RunResult, quantize_input
from snnhw.targets.contract import load_fixed, refuse_foreign_build, verified_file
from snnhw.targets.description import TargetDescription, load
from snnhw.targets.fpga.lanes import choose as choose_lanes
from snnhw.targets.fpga.plan import DesignPlan, build_plan
from snnhw.targets.fpga.render import write_design
from snnhw.targets.fpga.report import build_report, write_report
from snnhw.targets.fpga.simulate import simulate

RTL_DIR = "rtl"
REPORT = "fpga_report.json"
OVERFLOW_SOURCE = "rtl counters"


class FpgaBackend:
    """The ``BACKEND`` of ``fpga`` (see :mod:`snnhw.targets.contract`)."""

    def __init__(self, target: TargetDescription):
        self.target = target

    def plan(self, graph: Graph, lanes: int | str | None = None, weight_memory: str | None = None) -> DesignPlan:
        """The hardware plan of an fpga build's fixed IR (refuses other targets' builds and what the RTL
        cannot run), with ``lanes`` synapse lanes per core (default: snnhw.targets.fpga.lanes) and the
        weights in ``weight_memory`` (auto, ebr, spram; default: snnhw.targets.fpga.memory)."""
        refuse_foreign_build(graph, self.target)
        legalize(graph, self.target)
        return choose_lanes(lambda p: build_plan(graph, self.target, p, weight_memory), self.target.raw["hardware"],
                            lanes)

    def check(self, graph: Graph) -> None:
        self.plan(graph)

    def _synthesis_enabled(self, plan: DesignPlan, synthesize: bool | None) -> tuple[bool, str]:
        """Whether to run yosys, and why not: ``synthesize`` if given, else ``SNNHW_FPGA_SYNTH`` (1/0),
        else only designs up to ``[hardware].auto_synth_max_weights`` (large weight images take minutes)."""
        if synthesize is not None:
            return synthesize, "skipped (synthesize=False)"
        env = os.environ.get("SNNHW_FPGA_SYNTH", "").strip().lower()
        if env:
            return env not in ("0", "false", "no"), f"skipped (SNNHW_FPGA_SYNTH={env})"
        limit = int(self.target.raw["hardware"]["auto_synth_max_weights"])
        weights = sum(c.weights.size + (c.rec_weights.size if c.has_rec else 0) for c in plan.cores)
        return weights <= limit, f"skipped: {weights} weights > {limit} (minutes of yosys); set SNNHW_FPGA_SYNTH=1"

    def emit(self, graph: Graph, build_dir: Path, reports: bool = True, synthesize: bool | None = None,
             lanes: int | str | None = None, weight_memory: str | None = None) -> list[str]:
        """Write ``rtl/*`` and (with ``reports``) ``fpga_report.json`` into ``build_dir``; return their
        paths relative to it.

        synthesize: run the yosys flows of report.FLOWS (default: see :meth:`_synthesis_enabled`).
        lanes: synapse lanes per core, an integer or "auto" (default: ``SNNHW_FPGA_LANES``, then
        ``[hardware].lanes``; snnhw.targets.fpga.lanes). weight_memory: auto, ebr or spram (default:
        ``SNNHW_FPGA_WEIGHT_MEMORY``, then ``[hardware].weight_memory``; snnhw.targets.fpga.memory).
        """
        build_dir = Path(build_dir)
        plan = self.plan(graph, lanes, weight_memory)
        rtl = build_dir / RTL_DIR
        names = write_design(plan, rtl)
        if not reports:
            return [f"{RTL_DIR}/{n}" for n in names]
        report = build_report(plan, rtl, self.target.raw["hardware"], *self._synthesis_enabled(plan, synthesize))
        write_report(report, build_dir / REPORT)
        for scratch in sorted(rtl.glob("yosys_*")):  # logs and raw stats: summarized in the report
            scratch.unlink()
        bitstreams = sorted(p["bitstream"] for p in report.get("place_and_route", {}).values()
                            if isinstance(p, dict) and p.get("bitstream"))
        return [f"{RTL_DIR}/{n}" for n in names] + [REPORT] + bitstreams

    def run(self, build_dir: Path, x: np.ndarray, record_state: bool = False) -> RunResult:
        """Simulate the build's ``rtl/`` on ``x`` ``[T, B, *input_shape]``: spikes (and u/v per step) of
        every population and the RTL's overflow counts. Input values are quantized on the host
        (snnhw.semantics.quantize_input, which counts ``input_saturate``) as the RTL takes integers."""
        graph = load_fixed(build_dir)
        hashes = read_manifest(build_dir)["files"]
        plan = self.plan(graph, *_emitted(build_dir, hashes))
        res = RunResult(overflow_source=OVERFLOW_SOURCE)
        x_int = quantize_input(graph, x, res).astype(np.int64)
        rtl = sorted(f for f in hashes if f.startswith(f"{RTL_DIR}/"))
        sim = simulate(plan, [verified_file(build_dir, f) for f in rtl], x_int, trace=record_state)
        if sim.sources != {Path(f).name: hashes[f] for f in rtl}:
            raise InvalidFileError(f"the simulated RTL differs from {build_dir}/{RTL_DIR} as hashed in the manifest; "
                                   "recompile the build")
        shapes = {n.name: tuple(n.shape) for n in graph.neurons}
        reshape = lambda arrays: {k: v.reshape(v.shape[:2] + shapes[k]) for k, v in arrays.items()}
        res.spikes, res.current, res.voltage = reshape(sim.spikes), reshape(sim.current), reshape(sim.voltage)
        for node, counts in sim.overflow.items():
            for key, n in counts.items():
                res.count(node, key, n)
        return res

    def notes(self, graph: Graph) -> list[str]:
        lowered = str(graph.meta.get("lowered", ""))
        out = [f"{RTL_DIR}/: the Verilog design, memory images and testbench; `snnhw run --target fpga` simulates "
               "these files (hash-checked) and reports the overflow events its counters observe",
               f"{REPORT}: lint, cycle budget, synthesis, device fit, place and route (achieved Fmax) and any "
               "bitstream_*.bin"]
        if lowered:
            out.append(f"lowered for fpga ({lowered}): populations fed by a convolution are flat (C-order)")
        return out


def _emitted(build_dir: Path, hashes: dict) -> tuple:
    """The synapse lanes and weight memory the build's RTL was generated with, from its hash-checked
    fpga_report.json (None without a report: the defaults apply). The plan's P sizes the simulator
    choice and the timeout (snnhw.targets.fpga.simulate); its weight memory decides whether the
    testbench serves the flash image. A core smaller than P gets one lane per neuron, so the largest
    per-layer count rebuilds every layer's lanes."""
    if REPORT not in hashes:
        return None, None
    layers = json.loads(verified_file(build_dir, REPORT).read_text())["cycles"]["layers"]
    if not layers:
        return None, None
    styles = {layer.get("weight_memory", "ebr") for layer in layers}
    return max(int(layer["lanes"]) for layer in layers), (styles.pop() if len(styles) == 1 else "auto")


BACKEND = FpgaBackend(load("fpga"))
