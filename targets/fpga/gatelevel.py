"""Gate-level check: the netlist yosys synthesized for the device behaves as the RTL does.

yosys (``synth_ice40``, ``synth_ecp5``) writes the netlist that nextpnr places also as Verilog
(``write_verilog``). This module simulates that netlist with yosys's own models of the family's
cells (``share/ice40/cells_sim.v`` compiled with ``-DNO_ICE40_DEFAULT_ASSIGNMENTS`` for Icarus;
``share/ecp5/cells_sim.v`` with snnhw's models of the MULT18X18D multiplier, which yosys has only
as a black box, and of the DP16KD block RAM, whose yosys module has no behaviour: a model file
listed later replaces a module of the same name in an earlier one; the flows are in
targets/fpga/pnr.py) and the RTL board top, both
driven by ``gate_tb`` with the same pseudo-random input, and compares every
spike and every step's cycle count. Only an equal netlist gets a bitstream (targets/fpga/pnr.py):
a tool that mis-maps the design (as yosys 0.23's ``ice40_dsp`` did with registers around the
decay multipliers, docs/targets/fpga.md) would otherwise ship hardware that is not what was
verified.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from snnhw.errors import SnnhwError
from snnhw.targets.fpga.plan import DesignPlan
from snnhw.targets.fpga.render import _environment, design_sources
from snnhw.targets.fpga.simulate import write_stimulus
from snnhw.targets.fpga.tools import require, run_tool

STEPS = 4                # timesteps simulated (one sample)
DENSITY = 0.3            # share of input neurons active per step
SEED = 0
TIMEOUT_S = 1800.0       # per simulator run; SNNHW_FPGA_TIMEOUT overrides
OUT = "gate_out.txt"


def cells_library(models: str) -> Path:
    """yosys's simulation models of a family's cells, ``models`` relative to the share directory next
    to the yosys binary (e.g. ``ice40/cells_sim.v``)."""
    yosys = Path(require("yosys")).resolve()
    for share in (yosys.parent.parent / "share" / "yosys", Path("/usr/share/yosys"), Path("/usr/local/share/yosys")):
        lib = share / models
        if lib.exists():
            return lib
    raise SnnhwError(f"yosys's {models} was not found next to the yosys binary")


def stimulus(plan: DesignPlan) -> np.ndarray:
    """``[STEPS, 1, inputs]`` integers: each input active with probability DENSITY, graded inputs
    with a nonzero value of either sign."""
    inp = plan.lists[0]
    rng = np.random.default_rng(SEED)
    active = rng.random((STEPS, 1, inp.size)) < DENSITY
    if not inp.value_bits:
        return active.astype(np.int64)
    top = (1 << (inp.value_bits - 1)) - 1
    values = rng.integers(1, top + 1, active.shape) * rng.choice([-1, 1], active.shape)
    return np.where(active, values, 0).astype(np.int64)


def _run(plan: DesignPlan, job: Path, sources: list, defines: list) -> tuple[str, list]:
    """Simulate ``sources`` with gate_tb; its output lines and the ``ERROR:`` lines a cell model
    printed when it met a configuration outside the model (it then stops the simulation)."""
    n_events = write_stimulus(plan, stimulus(plan), job)
    (job / "gate_tb.v").write_text(_environment().get_template("gate_tb.v.j2").render(plan=plan))
    params = [f"-Pgate_tb.N_STEPS={STEPS}", f"-Pgate_tb.N_EVENTS={n_events}"]
    limit = float(os.environ.get("SNNHW_FPGA_TIMEOUT") or TIMEOUT_S)
    run_tool(["iverilog", "-g2005", "-s", "gate_tb", "-o", "gate.vvp", *defines, *params, *map(str, sources),
              "gate_tb.v"], job, limit, "iverilog (gate-level check)")
    done = run_tool(["vvp", "-n", "gate.vvp"], job, limit, "the gate-level simulation")
    out = (job / OUT).read_text() if (job / OUT).exists() else ""
    (job / OUT).unlink(missing_ok=True)
    return out, [ln.strip() for ln in done.stdout.splitlines() if ln.strip().startswith("ERROR:")]


def modules_of(text: str) -> list:
    """Names of the modules a Verilog text defines."""
    return re.findall(r"^\s*module\s+\\?([A-Za-z_][A-Za-z0-9_$]*)", text, re.M)


def library(models: list, job: Path) -> list:
    """The model files to compile: a module defined in a later file replaces the one of the same name
    in an earlier file (yosys 0.23's ecp5 ``DP16KD`` has parameters only; snnhw's model replaces it).
    Files with a replaced module are copied into ``job`` without it."""
    out = []
    for k, path in enumerate(models):
        text = Path(path).read_text()
        later = {m for p in models[k + 1:] for m in modules_of(Path(p).read_text())}
        replaced = [m for m in modules_of(text) if m in later]
        for m in replaced:
            text = re.sub(rf"^\s*module\s+\\?{m}\b.*?^\s*endmodule\b", "", text, count=1, flags=re.M | re.S)
        if replaced:
            path = job / f"lib{k}_{Path(path).name}"
            path.write_text(text)
        out.append(Path(path))
    return out


def check(plan: DesignPlan, rtl_dir: Path, netlist: Path, models: list, defines: tuple) -> dict:
    """Simulate the RTL board top and the synthesized ``netlist`` on the same input; ``equal`` when
    their spikes and cycle counts agree line for line, else ``reason`` names the first difference,
    the error a cell model stopped the simulation with (a configuration outside the model), or why a
    simulation did not finish (``checked`` False: e.g. TIMEOUT_S, or SNNHW_FPGA_TIMEOUT, passed).
    models, defines: the family's cell model files (``pnr.Flow.models``) and their Icarus defines."""
    rtl_dir = Path(rtl_dir)
    with tempfile.TemporaryDirectory(prefix="snnhw-gate-") as tmp:
        job = Path(tmp)
        for f in rtl_dir.iterdir():
            if f.suffix in (".v", ".mem", ".bin"):
                shutil.copyfile(f, job / f.name)
        board = f"{plan.top}_board.v"
        out = {"simulator": "icarus", "checked": True, "steps": STEPS, "input_density": DENSITY, "seed": SEED}
        try:
            rtl, _ = _run(plan, job, design_sources(plan) + [board], [])
            gate, errors = _run(plan, job, [*library(models, job), Path(netlist).resolve()],
                                [*defines, *dict.fromkeys(f"-I{Path(m).parent}" for m in models)])
        except SnnhwError as err:  # a simulation that did not finish proves nothing: no bitstream, the reason said
            return {**out, "checked": False, "equal": False, "reason": f"the gate-level check did not run to the end: {err}"}
    out["rtl_spikes"] = sum(ln.startswith("S ") for ln in rtl.splitlines())
    if rtl == gate and rtl.endswith("END\n") and not errors:
        return {**out, "equal": True}
    if errors:
        return {**out, "equal": False, "reason": f"a cell model stopped the gate-level simulation: {errors[0]}"}
    a, b = rtl.splitlines(), gate.splitlines()
    first = next((i for i in range(max(len(a), len(b))) if (a[i:i + 1] or [""]) != (b[i:i + 1] or [""])), 0)
    line = lambda lines: lines[first] if first < len(lines) else "(no line)"
    return {**out, "equal": False,
            "reason": f"the synthesized netlist differs from the RTL at output line {first + 1}: RTL "
                      f"{line(a)!r}, netlist {line(b)!r}"}
