"""Quality gates of a generated design: Verilator lint, yosys synthesis, cycle budget, device fit.

Everything here is deterministic for a given design and tool versions (fpga_report.json is written
with sorted keys and no timestamps).
"""
from __future__ import annotations

import json
from pathlib import Path

from snnhw.targets.fpga import memory
from snnhw.targets.fpga.cycles import FORMULA, step_cycles
from snnhw.targets.fpga.plan import DesignPlan
from snnhw.targets.fpga.pnr import FLOWS as PNR_FLOWS, board_top, place_and_route_all
from snnhw.targets.fpga.render import design_sources
from snnhw.targets.fpga.tools import run_tool

LINT_TIMEOUT_S = 300.0
SYNTH_TIMEOUT_S = 1800.0
ICE40_CELLS = {"lut": ("SB_LUT4",), "bram": ("SB_RAM40_4K",), "dsp": ("SB_MAC16",), "spram": ("SB_SPRAM256KA",)}
XILINX_LUTS = ("LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6")
# LUTs taken by distributed RAM / shift-register cells (UG474, "Distributed RAM")
XILINX_LUTRAM = {"RAM32M": 4, "RAM64M": 4, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4, "RAM32X1S": 1,
                 "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4, "SRL16E": 1, "SRLC32E": 1}


def cycle_budget(plan: DesignPlan, clock_mhz: float) -> dict:
    """Best case (no events anywhere) and worst case (every neuron active every step)."""
    lo = step_cycles(plan, [0] * len(plan.cores), [0] * len(plan.cores))
    hi = step_cycles(plan, [c.source.size for c in plan.cores], [c.size if c.has_rec else 0 for c in plan.cores])
    hi_events = sum(c.size * (c.source.size + (c.size if c.has_rec else 0)) for c in plan.cores)
    hz = clock_mhz * 1e6
    return {
        "formula": FORMULA,
        "clock_mhz": clock_mhz,
        "cycles_per_step_no_events": lo,
        "cycles_per_step_all_active": hi,
        "steps_per_s_no_events": round(hz / lo, 1),
        "steps_per_s_all_active": round(hz / hi, 1),
        "synaptic_events_per_s_all_active": round(hi_events * hz / hi, 1),
        "layers": [{"layer": c.name, "neurons": c.size, "fan_in": c.fan_in, "recurrent": c.has_rec,
                    "input_delay": c.delay, "lanes": c.lanes, "groups": c.groups, "conv_core": c.conv is not None,
                    "weight_words": c.weight_words, "weight_word_bits": c.lanes * c.weight_bits,
                    "weight_memory": c.weight_memory} for c in plan.cores],
    }


def tool_version(tool: str, rtl_dir: Path) -> str:
    res = run_tool([tool, "-V" if tool == "yosys" else "--version"], rtl_dir, 60.0, f"{tool} --version")
    return (res.stdout.strip().splitlines() or ["unknown"])[0]


def lint(plan: DesignPlan, rtl_dir: Path) -> dict:
    """``verilator --lint-only -Wall`` on the synthesizable sources under the board top (which
    instantiates ``plan.top``); clean means no message at all."""
    top = board_top(plan)
    res = run_tool(["verilator", "--lint-only", "-Wall", "--top-module", top, *design_sources(plan), f"{top}.v"],
                   rtl_dir, LINT_TIMEOUT_S, "verilator lint", check=False)
    messages = [ln for ln in res.stderr.splitlines() if ln.startswith("%")]
    return {"tool": tool_version("verilator", rtl_dir), "command": "verilator --lint-only -Wall",
            "clean": res.returncode == 0 and not messages, "messages": messages}


def _cells(stat: dict, top: str) -> dict:
    """Primitive cells of ``top`` with every kept submodule (the decay multipliers are kept as their
    own modules, see lif_core.v.j2) counted into it, once per instance."""
    modules = {name.lstrip("\\"): m.get("num_cells_by_type", {}) for name, m in stat.get("modules", {}).items()}

    def flat(name: str) -> dict:
        out: dict = {}
        for kind, n in modules[name].items():
            kind = str(kind).lstrip("\\")
            for leaf, k in (flat(kind).items() if kind in modules else ((kind, 1),)):
                out[leaf] = out.get(leaf, 0) + int(n) * k
        return out
    return flat(top)


def _count(cells: dict, names) -> int:
    return sum(v for k, v in cells.items() if k in names)


def _ice40_resources(cells: dict) -> dict:
    ff = sum(v for k, v in cells.items() if k.startswith("SB_DFF"))
    return {"lut": _count(cells, ICE40_CELLS["lut"]), "ff": ff, "bram": _count(cells, ICE40_CELLS["bram"]),
            "dsp": _count(cells, ICE40_CELLS["dsp"]), "spram": _count(cells, ICE40_CELLS["spram"]),
            "bram_unit": "SB_RAM40_4K (4 kbit)"}


def _ecp5_resources(cells: dict) -> dict:
    """LUT4s (a TRELLIS_DPR16X4 distributed RAM takes the 4 LUTs of its half-PFU as memory), FFs,
    DP16KD (18 kbit EBR) and MULT18X18D multipliers."""
    lutram = 4 * cells.get("TRELLIS_DPR16X4", 0)
    return {"lut": cells.get("LUT4", 0) + lutram, "lut_as_memory": lutram, "ff": cells.get("TRELLIS_FF", 0),
            "bram": cells.get("DP16KD", 0), "dsp": cells.get("MULT18X18D", 0), "bram_unit": "DP16KD (18 kbit)"}


def _xilinx_resources(cells: dict) -> dict:
    ff = sum(v for k, v in cells.items() if k in ("FDRE", "FDSE", "FDCE", "FDPE"))
    lutram = sum(n * cells.get(k, 0) for k, n in XILINX_LUTRAM.items())
    return {"lut": _count(cells, XILINX_LUTS) + lutram, "lut_as_memory": lutram, "ff": ff,
            "bram": cells.get("RAMB36E1", 0) + cells.get("RAMB18E1", 0) / 2, "dsp": cells.get("DSP48E1", 0),
            "bram_unit": "RAMB36E1 (36 kbit; a RAMB18E1 counts 0.5)"}


FLOWS = {  # the place-and-route families synthesize as they are placed (pnr.FLOWS)
    "ice40": (f"{PNR_FLOWS['ice40'].synth} -top {{top}}", _ice40_resources),
    "ecp5": (f"{PNR_FLOWS['ecp5'].synth} -top {{top}}", _ecp5_resources),
    "xilinx": ("synth_xilinx -family xc7 -flatten -noiopad -top {top}", _xilinx_resources),
}


def synthesize(plan: DesignPlan, rtl_dir: Path, flow: str) -> dict:
    """Run one yosys flow on the design; resource counts from ``stat -json``."""
    command, resources = FLOWS[flow]
    command = command.format(top=plan.top)
    stat_file = f"yosys_{flow}_stat.json"
    script = (f"read_verilog {' '.join(design_sources(plan))}; {command}; tee -q -o {stat_file} stat -json")
    run_tool(["yosys", "-q", "-l", f"yosys_{flow}.log", "-p", script], rtl_dir, SYNTH_TIMEOUT_S, f"yosys {flow}")
    cells = _cells(json.loads((rtl_dir / stat_file).read_text()), plan.top)
    return {"command": command, "cells": dict(sorted(cells.items())), **resources(cells)}


def device_fit(synthesis: dict, devices: list) -> list:
    """Whether each named device holds the design (LUT, FF, BRAM and DSP all within its counts)."""
    out = []
    for dev in devices:
        res = synthesis.get(dev["flow"])
        if res is None:
            continue
        use = {k: res[k] for k in ("lut", "ff", "bram", "dsp", "spram") if k in res and (k != "spram" or res[k])}
        dev = {"spram": 0, **dev}
        fits = all(use[k] <= dev[k] for k in use)
        out.append({"device": dev["name"], "flow": dev["flow"], "fits": fits, "source": dev["source"],
                    "available": {k: dev[k] for k in use},
                    "utilization_percent": {k: round(100.0 * use[k] / dev[k], 1) for k in use}})
    return out


def weight_load(plan: DesignPlan) -> dict:
    """Where the weights are (per layer) and, with SPRAM, the flash image and its load time."""
    out = {"layers": [c.weight_memory for c in plan.cores]}
    if plan.flash:
        out.update(flash_image=memory.FLASH_PATH, flash_offset=plan.flash["offset"], bytes=plan.flash["bytes"],
                   load_cycles=memory.load_cycles(plan), program=memory.program_command(plan))
    return out


def build_report(plan: DesignPlan, rtl_dir: Path, hardware: dict, synth: bool, skip_reason: str) -> dict:
    report = {"lint": lint(plan, rtl_dir), "cycles": cycle_budget(plan, float(hardware["clock_mhz"])),
              "top": plan.top, "weight_memory": weight_load(plan)}
    if synth:
        # SPRAM weights (SB_SPRAM256KA) exist on the iCE40 UP5K only: the other families are not synthesized
        spram_flow = memory.spram_device(hardware)["flow"]
        flows = [f for f in FLOWS if not plan.flash or f == spram_flow]
        devices = [d for d in hardware.get("devices", []) if d["flow"] in flows]
        synthesis = {flow: synthesize(plan, rtl_dir, flow) for flow in flows}
        report["synthesis"] = {"tool": tool_version("yosys", rtl_dir), **synthesis}
        if plan.flash:
            report["synthesis"]["not_synthesized"] = {
                f: "the weights are in the iCE40 UP5K's SPRAM; weight_memory = \"ebr\" for this family"
                for f in FLOWS if f not in flows}
        report["devices"] = device_fit(synthesis, devices)
        report["place_and_route"] = place_and_route_all(plan, rtl_dir, devices, report["devices"], rtl_dir.parent)
        report["cycles"]["at_achieved_fmax"] = _rates_at_fmax(report["cycles"], report["place_and_route"])
    else:
        report["synthesis"] = skip_reason
    return report


def _rates_at_fmax(cycles: dict, placed: dict) -> dict:
    """Timestep rates at each placed device's achieved Fmax (instead of the assumed clock)."""
    out = {}
    for name, p in placed.items():
        if isinstance(p, dict) and p.get("fits"):
            hz = p["fmax_mhz"] * 1e6
            out[name] = {"fmax_mhz": p["fmax_mhz"],
                         "steps_per_s_no_events": round(hz / cycles["cycles_per_step_no_events"], 1),
                         "steps_per_s_all_active": round(hz / cycles["cycles_per_step_all_active"], 1)}
    return out


def write_report(report: dict, path: Path) -> None:
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
