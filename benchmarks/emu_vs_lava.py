"""Emulator vs Lava's fixed_pt simulation: time per sample-timestep, identical spikes required.

Networks: the snntorch tutorial 784-1000-10 (Leaky, zero reset: it runs on Intel's Lava LIF) and a small conv
net (Conv2d 1->8 3x3 on 1x12x12, Leaky, Flatten, Linear 1152->10, Leaky); rate-coded input spikes,
batch 1, 100 steps. Lava time is only its ``run()`` call (process build, compile and monitor
readout are excluded, which favours Lava); the emulator time is a whole ``run``. Goal (issue 3):
the emulator is at least 100x faster per sample-timestep.

    .venv/bin/python benchmarks/emu_vs_lava.py
"""
from __future__ import annotations

import time

import numpy as np
import snntorch as snn
import torch
from torch import nn

from snnhw.compiler.pipeline import CompileOptions, compile_graph
from snnhw.frontends.snntorch_trace import to_ir
from snnhw.targets import load
from snnhw.targets.emu.emulator import Emulator
from snnhw.targets.loihi.lava_sim import simulate

STEPS = 100


def networks():
    torch.manual_seed(0)
    kw = dict(init_hidden=True, reset_mechanism="zero", beta=0.95)
    mlp = nn.Sequential(nn.Linear(784, 1000), snn.Leaky(**kw), nn.Linear(1000, 10), snn.Leaky(**kw))
    conv = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), snn.Leaky(**kw), nn.Flatten(), nn.Linear(8 * 144, 10),
                         snn.Leaky(**kw))
    return [("784-1000-10", mlp, (784,)), ("conv 1x12x12", conv, (1, 12, 12))]


def main():
    loihi = load("loihi")
    print(f"batch 1, {STEPS} steps; Lava fixed_pt run() only vs emulator run()")
    print(f"{'network':>14} {'Lava ms/step':>13} {'emu us/step':>12} {'speed-up':>10} {'same spikes':>12}")
    for name, net, shape in networks():
        g = compile_graph(to_ir(net, shape), loihi, CompileOptions())
        rng = np.random.default_rng(0)
        x = (rng.random((STEPS, 1, *shape)) < 0.2).astype(np.int64)
        timings: dict = {}
        lava = simulate(g, x, timings=timings)
        emu = Emulator(g)
        emu.run(x)
        t0 = time.perf_counter()
        for _ in range(10):
            res = emu.run(x)
        t_emu = (time.perf_counter() - t0) / 10
        same = all(np.array_equal(res.spikes[p.name].astype(np.int64), lava["spikes"][p.name]) for p in g.neurons)
        t_lava = timings["run_s"]
        print(f"{name:>14} {t_lava / STEPS * 1e3:>13.2f} {t_emu / STEPS * 1e6:>12.1f} {t_lava / t_emu:>9.0f}x "
              f"{'yes' if same else 'NO':>12}")


if __name__ == "__main__":
    main()
