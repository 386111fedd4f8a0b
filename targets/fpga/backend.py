"""Backend of the ``fpga`` target: generate the RTL, check it, simulate it.

``emit`` writes ``rtl/`` (Verilog modules, $readmemh memory images, the testbench) and
``fpga_report.json`` (lint, synthesis, cycle budget, device fit). ``run`` simulates the generated
RTL and returns its spikes (and end-of-step u/v); overflow event counts come from the emulator on
the same IR, because the RTL does not count them.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from snnhw.ir import Graph
from snnhw.targets.description import load
from snnhw.targets.emu.emulator import RunResult, quantize_input, run as emulate
from snnhw.targets.fpga.plan import DesignPlan, build_plan
from snnhw.targets.fpga.render import write_design
from snnhw.targets.fpga.report import build_report, write_report
from snnhw.targets.fpga.simulate import simulate

RTL_DIR = "rtl"
REPORT = "fpga_report.json"


def plan_for(graph: Graph) -> DesignPlan:
    """The hardware plan of ``graph`` under the fpga target description (refuses what it cannot run)."""
    return build_plan(graph, load("fpga"))


def _synthesis_enabled(plan: DesignPlan, synthesize: bool | None) -> tuple[bool, str]:
    """Whether to run yosys, and why not: ``synthesize`` if given, else ``SNNHW_FPGA_SYNTH`` (1/0),
    else only designs up to ``[hardware].auto_synth_max_weights`` (large weight images take minutes)."""
    if synthesize is not None:
        return synthesize, "skipped (synthesize=False)"
    env = os.environ.get("SNNHW_FPGA_SYNTH", "").strip().lower()
    if env:
        return env not in ("0", "false", "no"), f"skipped (SNNHW_FPGA_SYNTH={env})"
    limit = int(load("fpga").raw["hardware"]["auto_synth_max_weights"])
    weights = sum(c.weights.size + (c.rec_weights.size if c.has_rec else 0) for c in plan.cores)
    return weights <= limit, f"skipped: {weights} weights > {limit} (minutes of yosys); set SNNHW_FPGA_SYNTH=1"


def emit(graph: Graph, build_dir: Path, synthesize: bool | None = None) -> list[str]:
    """Write ``rtl/*`` and ``fpga_report.json`` into ``build_dir``; return their paths relative to it.

    synthesize: run the two yosys flows (default: see :func:`_synthesis_enabled`).
    """
    build_dir = Path(build_dir)
    plan = plan_for(graph)
    rtl = build_dir / RTL_DIR
    names = write_design(plan, rtl)
    report = build_report(plan, rtl, load("fpga").raw["hardware"], *_synthesis_enabled(plan, synthesize))
    write_report(report, build_dir / REPORT)
    for scratch in sorted(rtl.glob("yosys_*")):  # logs and raw stats: summarized in the report
        scratch.unlink()
    bitstreams = sorted(p["bitstream"] for p in report.get("place_and_route", {}).values()
                        if isinstance(p, dict) and p.get("fits"))
    return [f"{RTL_DIR}/{n}" for n in names] + [REPORT] + bitstreams


def run(graph: Graph, x, record_state: bool = False, build_dir: Path | None = None) -> RunResult:
    """Simulate the RTL on ``x`` ``[T, B, *input_shape]``: spikes (and u/v per step) of every population."""
    x_int = quantize_input(graph, x).astype(np.int64)
    plan = plan_for(graph)
    sim = simulate(plan, x_int, trace=record_state)
    shapes = {n.name: tuple(n.shape) for n in graph.neurons}
    reshape = lambda arrays: {k: v.reshape(v.shape[:2] + shapes[k]) for k, v in arrays.items()}
    overflow = emulate(graph, x).overflow
    return RunResult(spikes=reshape(sim.spikes), current=reshape(sim.current), voltage=reshape(sim.voltage),
                     overflow=overflow)
