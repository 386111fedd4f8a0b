"""Place and route with the open flows: yosys -> nextpnr -> the family's bitstream packer.

Two families have an open flow here (:data:`FLOWS`): iCE40 (Debian's nextpnr-ice40 and icepack) and
ECP5 (nextpnr-ecp5 and ecppack with the Project Trellis database, as the YoWASP builds on PyPI:
``pip install 'snnhw[ecp5]'``, part of ``make install``). The devices, with their part, package and
tools, are data in ``targets/fpga/target.toml``; a device that names no ``place_and_route`` command
has no open flow here and gets synthesis figures only, and a flow whose tools are not installed
says so instead of failing the build.

The design placed is ``<top>_board`` (the accelerator without its simulation-only state trace).
nextpnr runs with a fixed seed, so placement, the achieved clock and the bitstream are the same
bytes for the same design and tool versions. Only the first listed device that the synthesized
design fits is placed (the smallest first in target.toml: a design that fits an iCE40 UP5K is not
placed again on an ECP5); the others say where it was placed.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from snnhw.targets.fpga import gatelevel
from snnhw.targets.fpga.plan import DesignPlan
from snnhw.targets.fpga.render import design_sources
from snnhw.targets.fpga.tools import find, run_tool

PNR_TIMEOUT_S = 1800.0
SEED = 1
NETLIST = "pnr_netlist.json"
LAYOUT = "pnr_layout.txt"
REPORT = "pnr_report.json"
GATE_NETLIST = "pnr_gate.v"
BITSTREAM = "pnr_bitstream"
SCRATCH = (NETLIST, LAYOUT, REPORT, GATE_NETLIST, BITSTREAM, "pnr_yosys.log")

NO_OPEN_FLOW = ("synthesis only: no open place-and-route flow for this device family is installed "
                "(open flows here: iCE40 and ECP5; none for Xilinx 7-series)")


@dataclass(frozen=True)
class Flow:
    """How one family's open flow is driven (its devices are data in target.toml).

    synth: the yosys command whose netlist nextpnr places (also what ``report.synthesize`` counts);
    layout: nextpnr's option writing the routed layout that the packer reads; unconstrained:
    nextpnr's option accepting a design whose I/O has no pin constraints; cells: yosys's simulation
    models of the family's cells (under yosys's ``share`` directory) for the gate-level check, with
    the preprocessor ``defines`` they need under Icarus, ``own_models``: models snnhw supplies
    for cells yosys has only as black boxes or without behaviour (files in targets/fpga/models; each
    replaces yosys's module of the same name and stops the simulation on a configuration it does
    not model, so such a netlist gets no bitstream); suffix: the bitstream file's extension; install: how to get the flow's tools."""

    synth: str
    layout: str
    unconstrained: str
    cells: str
    defines: tuple
    own_models: tuple
    suffix: str
    install: str

    def models(self) -> list:
        """Every simulation model file of the family's cells (yosys's, then snnhw's own)."""
        return [gatelevel.cells_library(self.cells), *(MODELS / m for m in self.own_models)]


MODELS = Path(__file__).resolve().parent / "models"
FLOWS = {
    "ice40": Flow("synth_ice40 -dsp", "--asc", "--pcf-allow-unconstrained", "ice40/cells_sim.v",
                  ("-DNO_ICE40_DEFAULT_ASSIGNMENTS",), (), ".bin",
                  "apt-get install nextpnr-ice40 fpga-icestorm, or `make install`"),
    # MULT18X18D is a black box in yosys (ecp5/cells_bb.v), DP16KD (block RAM) has only its
    # parameters in yosys 0.23's ecp5/cells_sim.v: models/ecp5_mult18x18d.v and ecp5_dp16kd.v model
    # the configurations synth_ecp5 emits for these designs and stop the check on any other.
    "ecp5": Flow("synth_ecp5", "--textcfg", "--lpf-allow-unconstrained", "ecp5/cells_sim.v", (),
                 ("ecp5_mult18x18d.v", "ecp5_dp16kd.v"), ".bit", "pip install 'snnhw[ecp5]', or `make install`"),
}


def board_top(plan: DesignPlan) -> str:
    return f"{plan.top}_board"


def bitstream_name(device: dict) -> str:
    """File name of a device's bitstream (e.g. ``bitstream_up5k_sg48.bin``, ``bitstream_85k_CABGA381.bit``)."""
    return f"bitstream_{device['part']}_{device['package']}{FLOWS[device['flow']].suffix}"


def _command(device: dict) -> list[str]:
    """nextpnr for the device's part and package (``place_and_route``, ``part``, ``package`` in target.toml)."""
    return [device["place_and_route"], f"--{device['part']}", "--package", device["package"]]


def _clock(report: dict) -> float:
    """Achieved Fmax (MHz) of the design clock ``clk`` in nextpnr's JSON report."""
    clocks = {k: v["achieved"] for k, v in report["fmax"].items()
              if "clk" in k.split("$")}  # iCE40 "clk$SB_IO_IN_$glb_clk", ECP5 "$glbnet$clk$TRELLIS_IO_IN"
    return round(min(clocks.values()), 2)


def place_and_route(plan: DesignPlan, rtl_dir: Path, device: dict, out_dir: Path) -> dict:
    """Synthesize ``<top>_board``, place and route it on ``device``; write its bitstream into ``out_dir``.

    Returns the achieved Fmax (MHz), nextpnr's utilization, the gate-level check of the synthesized
    netlist (:mod:`gatelevel`) and the bitstream's file name, which is ``None`` (with
    ``bitstream_withheld``) when that netlist does not behave as the RTL; or ``fits: False`` with
    nextpnr's reason when the design does not fit the device."""
    rtl_dir = Path(rtl_dir)
    flow = FLOWS[device["flow"]]
    top = board_top(plan)
    sources = " ".join(design_sources(plan) + [f"{top}.v"])
    script = f"read_verilog {sources}; {flow.synth} -top {top} -json {NETLIST}; write_verilog -noattr {GATE_NETLIST}"
    try:
        run_tool(["yosys", "-q", "-l", "pnr_yosys.log", "-p", script], rtl_dir, PNR_TIMEOUT_S, "yosys (place and route)")
        args = [*_command(device), "--json", NETLIST, flow.layout, LAYOUT, "--report", REPORT,
                "--seed", str(SEED), "--timing-allow-fail", flow.unconstrained, "-q"]
        done = run_tool(args, rtl_dir, PNR_TIMEOUT_S, "nextpnr", check=False)
        if done.returncode != 0:
            lines = [ln for ln in done.stderr.splitlines() if "ERROR" in ln]
            return {"device": device["name"], "fits": False,
                    "reason": (lines or [f"nextpnr exit code {done.returncode}"])[0].strip()}
        report = json.loads((rtl_dir / REPORT).read_text())
        gate = gatelevel.check(plan, rtl_dir, rtl_dir / GATE_NETLIST, flow.models(), flow.defines)
        name = bitstream_name(device) if gate["equal"] else None
        if name:  # packed inside rtl_dir (the WebAssembly tools see only their working directory), then moved
            run_tool([device["pack"], LAYOUT, BITSTREAM], rtl_dir, PNR_TIMEOUT_S, device["pack"])
            shutil.move(rtl_dir / BITSTREAM, Path(out_dir) / name)
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


def _missing_tools(device: dict) -> list:
    return [t for t in (device["place_and_route"], device["pack"]) if find(t) is None]


def place_and_route_all(plan: DesignPlan, rtl_dir: Path, devices: list, fits: list, out_dir: Path) -> dict:
    """Place and route the first listed device with an open flow whose synthesis figures the design
    fits (see the module docstring); every other device says why it was not placed."""
    fitting = {d["device"] for d in fits if d["fits"]}
    out, placed = {}, None
    for dev in devices:
        if "place_and_route" not in dev:
            out[dev["name"]] = NO_OPEN_FLOW
        elif dev["name"] not in fitting:
            out[dev["name"]] = "not placed: the synthesized design does not fit this device"
        elif placed is not None:
            out[dev["name"]] = f"not placed: the design fits the {placed}, listed first, where it was placed"
        elif _missing_tools(dev):
            out[dev["name"]] = (f"not placed: {', '.join(_missing_tools(dev))} not installed "
                                f"({FLOWS[dev['flow']].install})")
        else:
            out[dev["name"]] = place_and_route(plan, rtl_dir, dev, out_dir)
            placed = dev["name"] if out[dev["name"]]["fits"] else None  # nextpnr refused: try the next
    return out
