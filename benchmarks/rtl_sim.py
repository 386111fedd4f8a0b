"""RTL simulation speed of the fpga target vs the emulator, on two network sizes, in one run.

For each network (a 100-64-10 and the snntorch tutorial's 784-1000-10, Leaky beta 0.95, compiled
for fpga) and rate-coded input spikes, prints:
- RTL simulation (Verilator or Icarus, wall time including the Verilator build; the whole batch in
  one simulation) of the design with P synapse lanes (``--lanes``): timesteps/s and synaptic events/s (an event = one weight read and accumulate: for every step and core,
  neurons x (input events + recurrent events));
- the emulator on the same IR and input: timesteps/s and synaptic events/s;
- the emulator/RTL-simulation speed ratio;
- the modelled FPGA speed: timesteps/s at the target's clock from the simulated cycle counts.

    .venv/bin/python benchmarks/rtl_sim.py [--steps N] [--batch B] [--simulator icarus|verilator] [--lanes P|auto]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import snntorch as snn
import torch
from torch import nn

from snnhw.compiler.pipeline import CompileOptions, compile_graph
from snnhw.frontends.snntorch_trace import to_ir
from snnhw.targets import load
from snnhw.semantics import quantize_input
from snnhw.targets.emu.emulator import Emulator
from snnhw.targets.fpga.backend import BACKEND
from snnhw.targets.fpga.render import write_design
from snnhw.targets.fpga.simulate import simulate

SIZES = ((100, 64, 10), (784, 1000, 10))
INPUT_RATE = 0.15


def network(sizes) -> nn.Module:
    torch.manual_seed(0)
    n_in, n_hidden, n_out = sizes
    return nn.Sequential(nn.Linear(n_in, n_hidden), snn.Leaky(beta=0.95, init_hidden=True),
                         nn.Linear(n_hidden, n_out), snn.Leaky(beta=0.95, init_hidden=True))


def synaptic_events(plan, x_int, spikes) -> int:
    """Weight reads the RTL performs: per step and core, neurons x (input + recurrent events)."""
    T, B = x_int.shape[:2]
    counts = {plan.lists[0].name: np.count_nonzero(x_int.reshape(T, B, -1), axis=2)}
    counts.update({k: v.reshape(T, B, -1).sum(axis=2) for k, v in spikes.items()})
    total = 0
    for c in plan.cores:
        src = counts[c.source.name]
        total += c.size * int(src[: T - c.delay].sum()) if c.delay < T else 0
        if c.has_rec and c.rec_delay < T:
            total += c.size * int(counts[c.name][: T - c.rec_delay].sum())
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--simulator", choices=("icarus", "verilator"), default="verilator")
    ap.add_argument("--lanes", default="auto", help="synapse lanes per core (an integer or auto)")
    args = ap.parse_args()
    lanes = args.lanes if args.lanes == "auto" else int(args.lanes)
    clock_mhz = float(load("fpga").raw["hardware"]["clock_mhz"])
    print(f"{args.steps} steps x batch {args.batch}, input spike rate {INPUT_RATE}, RTL simulator: {args.simulator} "
          "(wall time includes its build)")
    head = ("network", "lanes P", "RTL sim steps/s", "RTL sim events/s", "emu steps/s", "emu events/s", "emu/RTL",
            f"FPGA steps/s @{clock_mhz:g}MHz")
    print(" | ".join(f"{h:>16}" for h in head))
    for sizes in SIZES:
        g = compile_graph(to_ir(network(sizes), (sizes[0],)), load("fpga"), CompileOptions())
        x = (np.random.default_rng(0).random((args.steps, args.batch, sizes[0])) < INPUT_RATE).astype(np.int8)
        x_int = quantize_input(g, x).astype(np.int64)
        plan = BACKEND.plan(g, lanes)
        with tempfile.TemporaryDirectory() as rtl:
            files = [Path(rtl) / f for f in write_design(plan, Path(rtl))]
            t0 = time.perf_counter()
            sim = simulate(plan, files, x_int, simulator=args.simulator)
            t_sim = time.perf_counter() - t0
        emu = Emulator(g)
        t0 = time.perf_counter()
        ref = emu.run(x)
        t_emu = time.perf_counter() - t0
        if any(not np.array_equal(sim.spikes[k], ref.spikes[k].reshape(sim.spikes[k].shape)) for k in sim.spikes):
            raise SystemExit(f"{sizes}: RTL and emulator spikes differ")
        steps = args.steps * args.batch
        events = synaptic_events(plan, x_int, ref.spikes)
        fpga_steps = clock_mhz * 1e6 * steps / float(sim.cycles.sum())
        row = ("-".join(map(str, sizes)), "/".join(str(c.lanes) for c in plan.cores), f"{steps / t_sim:.3g}", f"{events / t_sim:.3g}", f"{steps / t_emu:.3g}",
               f"{events / t_emu:.3g}", f"{t_sim / t_emu:.3g}x", f"{fpga_steps:.3g}")
        print(" | ".join(f"{c:>16}" for c in row))


if __name__ == "__main__":
    main()
