"""Simulate RTL files (a build's ``rtl/``) with their testbench; read back spikes, states, cycle
counts and the overflow events the testbench counted.

The simulator reads copies of exactly the files it is given (hashed as it reads them, see
:attr:`SimOutput.sources`); nothing is regenerated here.

Icarus Verilog (``iverilog``/``vvp``) has no build step and suits small designs; Verilator
(``--binary``) builds for a few seconds and then runs about 20x faster, so it takes the large ones.
The choice is automatic (:func:`pick_simulator`) or forced with ``SNNHW_FPGA_SIM=icarus|verilator``.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from snnhw.errors import SnnhwError
from snnhw.targets.fpga import memory
from snnhw.targets.fpga.cycles import step_cycles
from snnhw.targets.fpga.plan import DesignPlan
from snnhw.targets.fpga.render import TESTBENCH, design_sources, hex_words
from snnhw.targets.fpga.tools import run_tool

SIMULATORS = ("icarus", "verilator")
VERILATOR_MIN_CYCLES = 2_000_000     # estimated simulated cycles above which Verilator's build pays off
VERILATOR_MIN_WEIGHTS = 200_000      # Icarus loads large $readmemh images slowly
TIMEOUT_BASE_S = 120.0
TIMEOUT_PER_MCYCLE_S = 30.0          # Icarus runs >= ~50 k cycles/s on this design


@dataclass
class SimOutput:
    """What the testbench printed, as arrays.

    spikes: per population ``[T, B, N]`` int8; current/voltage: per population ``[T, B, N]`` int64
    (only when traced); cycles: ``[B, T]`` clock cycles from the step pulse to ready.
    overflow: ``{node: {"<register>_<rule>": events}}`` counted by the testbench's counters over
    the whole run (only nonzero counts). sources: file name -> sha256 of every file the simulator
    read (the design, its memory images and the testbench; not the stimulus).
    """

    spikes: dict
    current: dict
    voltage: dict
    cycles: np.ndarray
    overflow: dict
    sources: dict
    load_cycles: int = 0    # reset to the first ready: clearing the state, and loading SPRAM weights from the flash


def input_events(x_int: np.ndarray, graded: bool) -> tuple[list, list]:
    """Event words ({value, index} or index) and sample-major offsets for integer input ``[T, B, N]``.

    An event is an input that is nonzero; binary input has only 0/1, graded events carry the value.
    """
    T, B = x_int.shape[:2]
    flat = x_int.reshape(T, B, -1)
    words, offsets = [], [0]
    for b in range(B):
        for t in range(T):
            idx = np.flatnonzero(flat[t, b])
            words.extend((int(flat[t, b, i]), int(i)) if graded else (1, int(i)) for i in idx)
            offsets.append(len(words))
    return words, offsets


def estimated_cycles(plan: DesignPlan, steps: int, samples: int) -> int:
    """Upper bound of simulated cycles: every list full every step (the formula of :mod:`cycles`),
    plus the SPRAM weight load once (memory.load_cycles)."""
    per_step = step_cycles(plan, [c.source.size for c in plan.cores], [c.size if c.has_rec else 0 for c in plan.cores])
    load = memory.load_cycles(plan) or 0
    return load + samples * (steps * (per_step + plan.lists[0].size + 3) + max(c.size for c in plan.cores) + 4)


def pick_simulator(plan: DesignPlan, steps: int, samples: int) -> str:
    forced = os.environ.get("SNNHW_FPGA_SIM", "").strip().lower()
    if forced:
        if forced not in SIMULATORS:
            raise SnnhwError(f"SNNHW_FPGA_SIM={forced!r}: choose one of {', '.join(SIMULATORS)}")
        return forced
    weights = sum(c.weights.size + (c.rec_weights.size if c.has_rec else 0) for c in plan.cores)
    big = estimated_cycles(plan, steps, samples) > VERILATOR_MIN_CYCLES or weights > VERILATOR_MIN_WEIGHTS
    return "verilator" if big else "icarus"


def _timeout(plan: DesignPlan, steps: int, samples: int) -> float:
    env = os.environ.get("SNNHW_FPGA_TIMEOUT")
    if env:
        return float(env)
    return TIMEOUT_BASE_S + TIMEOUT_PER_MCYCLE_S * estimated_cycles(plan, steps, samples) / 1e6


def write_stimulus(plan: DesignPlan, x_int: np.ndarray, job: Path) -> int:
    """Write ``x_int``'s input events into ``job`` (stim_events.mem, stim_offsets.mem, what the
    testbenches read); return the event count the testbench's N_EVENTS takes."""
    inp = plan.lists[0]
    words, offsets = input_events(x_int, bool(inp.value_bits))
    bits = inp.index_bits + inp.value_bits
    packed = [((v & ((1 << inp.value_bits) - 1)) << inp.index_bits | i) if inp.value_bits else i for v, i in words]
    (job / "stim_events.mem").write_text(hex_words(packed or [0], bits))
    (job / "stim_offsets.mem").write_text(hex_words(offsets, 32))
    return max(1, len(words))


def _compile_and_run(sim: str, plan: DesignPlan, job: Path, params: dict, timeout: float) -> None:
    sources = design_sources(plan) + [TESTBENCH]
    if sim == "icarus":
        run_tool(["iverilog", "-g2005", "-s", "tb", "-o", "sim.vvp",
                  *[f"-Ptb.{k}={v}" for k, v in params.items()], *sources], job, timeout, "iverilog")
        run_tool(["vvp", "-n", "sim.vvp"], job, timeout, "the Icarus simulation")
    else:
        run_tool(["verilator", "--binary", "-j", "1", "-Wno-fatal", "-Wno-lint", "-Wno-style", "--top-module", "tb",
                  "-Mdir", "obj", "-o", "sim", *[f"-G{k}={v}" for k, v in params.items()], *sources],
                 job, timeout, "the Verilator build")
        run_tool([str(job / "obj" / "sim")], job, timeout, "the Verilator simulation")


def parse_output(text: str, plan: DesignPlan, steps: int, samples: int, trace: bool) -> SimOutput:
    """Turn the testbench's sim_out.txt into arrays (see the tb.v header for the line format)."""
    lines = text.splitlines()
    if not lines or lines[-1] != "END":
        raise SnnhwError("the RTL simulation ended before its last timestep (no END line in sim_out.txt)")
    spikes = {c.name: np.zeros((steps, samples, c.size), np.int8) for c in plan.cores}
    current = {c.name: np.zeros((steps, samples, c.size), np.int64) for c in plan.cores} if trace else {}
    voltage = {c.name: np.zeros((steps, samples, c.size), np.int64) for c in plan.cores} if trace else {}
    cycles = np.zeros((samples, steps), np.int64)
    names = [c.name for c in plan.cores]
    sites = {(c.id, site): (node, key) for c in plan.cores for site, node, key, _, _ in c.counters}
    overflow: dict = {}
    load = 0
    for line in lines[:-1]:
        kind, *vals = line.split()
        v = [int(s) for s in vals] if kind != "O" else []
        if kind == "S":
            spikes[names[v[2]]][v[1], v[0], v[3]] = 1
        elif kind == "V":
            current[names[v[2]]][v[1], v[0], v[3]] = v[4]
            voltage[names[v[2]]][v[1], v[0], v[3]] = v[5]
        elif kind == "C":
            cycles[v[0], v[1]] = v[2]
        elif kind == "L":
            load = v[0]
        elif kind == "O":
            node, key = sites[(int(vals[0]), vals[1])]
            if int(vals[2]):
                d = overflow.setdefault(node, {})
                d[key] = d.get(key, 0) + int(vals[2])
    return SimOutput(spikes, current, voltage, cycles, overflow, {}, load)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def simulate(plan: DesignPlan, files: list, x_int: np.ndarray, trace: bool = False,
             simulator: str | None = None) -> SimOutput:
    """Run integer input ``x_int`` ``[T, B, *shape]`` through the RTL ``files`` (paths of the design
    modules, memory images and testbench of ``plan``, e.g. a build's checked ``rtl/`` files).

    The files are copied into a private job directory (the simulators read ``$readmemh`` images
    from their working directory, and write their outputs there, never into the build); their
    hashes as read are returned in :attr:`SimOutput.sources`."""
    steps, samples = int(x_int.shape[0]), int(x_int.shape[1])
    sim = simulator or pick_simulator(plan, steps, samples)
    timeout = _timeout(plan, steps, samples)
    with tempfile.TemporaryDirectory(prefix="snnhw-fpga-") as tmp:
        job = Path(tmp)
        for f in map(Path, files):
            shutil.copyfile(f, job / f.name)
        missing = sorted(set(design_sources(plan) + [TESTBENCH]) - {Path(f).name for f in files})
        if missing:
            raise SnnhwError(f"the RTL files lack {', '.join(missing)}; recompile the build for fpga")
        sources = {Path(f).name: _sha256(job / Path(f).name) for f in files}
        n_events = write_stimulus(plan, x_int, job)
        params = {"N_SAMPLES": samples, "N_STEPS": steps, "N_EVENTS": n_events, "TRACE": int(trace)}
        _compile_and_run(sim, plan, job, params, timeout)
        out = job / "sim_out.txt"
        if not out.exists():
            raise SnnhwError("the RTL simulation wrote no sim_out.txt")
        result = parse_output(out.read_text(), plan, steps, samples, trace)
        result.sources = sources
        return result
