"""Place and route with the open iCE40 flow: yosys ``synth_ice40`` -> nextpnr-ice40 -> icepack.

The design placed is ``<top>_board`` (the accelerator without its simulation-only state trace).
nextpnr runs with a fixed seed, so placement, the achieved clock and the bitstream are the same
bytes for the same design and tool versions. A device that names no ``place_and_route`` command in
``targets/fpga/target.toml`` has no open place-and-route flow here and gets synthesis figures only.
"""
from __future__ import annotations

import json
from pathlib import Path

from snnhw.targets.fpga import gatelevel
from snnhw.targets.fpga.plan import DesignPlan
from snnhw.targets.fpga.render import design_sources
from snnhw.targets.fpga.tools import run_tool

PNR_TIMEOUT_S = 1800.0
SEED = 1
NETLIST = "pnr_netlist.json"
ASC = "pnr.asc"
REPORT = "pnr_report.json"
GATE_NETLIST = "pnr_gate.v"
SCRATCH = (NETLIST, ASC, REPORT, GATE_NETLIST, "pnr_yosys.log")

NO_OPEN_FLOW = ("synthesis only: no open place-and-route flow for this device family is installed "
                "(Debian packages nextpnr for iCE40, not for Xilinx 7-series)")


def board_top(plan: DesignPlan) -> str:
    return f"{plan.top}_board"


def bitstream_name(device: dict) -> str:
    """File name of a device's bitstream (e.g. ``bitstream_up5k_sg48.bin``)."""
    return f"bitstream_{device['part']}_{device['package']}.bin"


def _command(device: dict) -> list[str]:
    """nextpnr for the device's part and package (``place_and_route``, ``part``, ``package`` in target.toml)."""
    return [device["place_and_route"], f"--{device['part']}", "--package", device["package"]]


def _clock(report: dict) -> float:
    """Achieved Fmax (MHz) of the design clock ``clk`` in nextpnr's JSON report."""
    clocks = {k: v["achieved"] for k, v in report["fmax"].items() if k.startswith("clk")}
    return round(min(clocks.values()), 2)


def place_and_route(plan: DesignPlan, rtl_dir: Path, device: dict, out_dir: Path) -> dict:
    """Synthesize ``<top>_board``, place and route it on ``device``; write its bitstream into ``out_dir``.

    Returns the achieved Fmax (MHz), nextpnr's utilization, the gate-level check of the synthesized
    netlist (:mod:`gatelevel`) and the bitstream's file name, which is ``None`` (with
    ``bitstream_withheld``) when that netlist does not behave as the RTL; or ``fits: False`` with
    nextpnr's reason when the design does not fit the device."""
    rtl_dir = Path(rtl_dir)
    top = board_top(plan)
    sources = " ".join(design_sources(plan) + [f"{top}.v"])
    script = f"read_verilog {sources}; synth_ice40 -dsp -top {top} -json {NETLIST}; write_verilog -noattr {GATE_NETLIST}"
    try:
        run_tool(["yosys", "-q", "-l", "pnr_yosys.log", "-p", script], rtl_dir, PNR_TIMEOUT_S, "yosys (place and route)")
        args = [*_command(device), "--json", NETLIST, "--asc", ASC, "--report", REPORT,
                "--seed", str(SEED), "--timing-allow-fail", "--pcf-allow-unconstrained", "-q"]
        done = run_tool(args, rtl_dir, PNR_TIMEOUT_S, "nextpnr", check=False)
        if done.returncode != 0:
            lines = [ln for ln in done.stderr.splitlines() if "ERROR" in ln]
            return {"device": device["name"], "fits": False,
                    "reason": (lines or [f"nextpnr exit code {done.returncode}"])[0].strip()}
        report = json.loads((rtl_dir / REPORT).read_text())
        gate = gatelevel.check(plan, rtl_dir, rtl_dir / GATE_NETLIST)
        name = bitstream_name(device) if gate["equal"] else None
        if name:
            run_tool(["icepack", ASC, str(Path(out_dir).resolve() / name)], rtl_dir, PNR_TIMEOUT_S, "icepack")
    finally:
        for f in SCRATCH:
            (rtl_dir / f).unlink(missing_ok=True)
    used = {k: {"used": v["used"], "available": v["available"]} for k, v in sorted(report["utilization"].items())
            if v["used"]}
    out = {"device": device["name"], "fits": True, "tool": " ".join(_command(device)), "seed": SEED,
           "fmax_mhz": _clock(report), "utilization": used, "gate_level": gate, "bitstream": name}
    if not name:
        out["bitstream_withheld"] = gate["reason"]
    return out


def place_and_route_all(plan: DesignPlan, rtl_dir: Path, devices: list, fits: list, out_dir: Path) -> dict:
    """Place and route every device whose synthesis figures fit and that has an open flow."""
    fitting = {d["device"] for d in fits if d["fits"]}
    out = {}
    for dev in devices:
        if "place_and_route" not in dev:
            out[dev["name"]] = NO_OPEN_FLOW
        elif dev["name"] not in fitting:
            out[dev["name"]] = "not placed: the synthesized design does not fit this device"
        else:
            out[dev["name"]] = place_and_route(plan, rtl_dir, dev, out_dir)
    return out
