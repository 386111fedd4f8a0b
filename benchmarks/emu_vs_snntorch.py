"""Emulator (bit-exact fixed point) vs snntorch (float) on the snntorch tutorial network.

784-1000-10 Leaky (beta 0.95), 25 steps, rate-coded input spikes, batch 1 and 256, both measured
in this run on this machine; prints time per forward pass and the ratio. Goal (issue 2): the
emulator is at least as fast as snntorch at batch 256.

    .venv/bin/python benchmarks/emu_vs_snntorch.py [--repeats N]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import snntorch as snn
import torch
from torch import nn

from snnhw.compiler.pipeline import CompileOptions, compile_graph
from snnhw.frontends.snntorch_trace import to_ir
from snnhw.targets import load
from snnhw.targets.emu.emulator import Emulator

STEPS = 25


def tutorial_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(784, 1000), snn.Leaky(beta=0.95, init_hidden=True),
                         nn.Linear(1000, 10), snn.Leaky(beta=0.95, init_hidden=True))


def snntorch_forward(net, x):
    from snntorch import utils
    utils.reset(net)
    with torch.no_grad():
        return torch.stack([net(x[t]) for t in range(x.shape[0])])


def best_of_interleaved(fns, repeats):
    """Minimum wall time of each function, running them alternately (machine noise hits both)."""
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    net = tutorial_net()
    emu = Emulator(compile_graph(to_ir(net, (784,)), load("emu"), CompileOptions()))
    print(f"torch threads: {torch.get_num_threads()}; best of {args.repeats} interleaved runs; {STEPS} steps")
    print(f"{'batch':>6} {'snntorch float':>16} {'emulator fixed':>16} {'ratio (snntorch/emu)':>22}")
    for batch in (1, 256):
        rng = np.random.default_rng(batch)
        x = (rng.random((STEPS, batch, 784)) < 0.1).astype(np.float32)
        xt = torch.from_numpy(x)
        snntorch_forward(net, xt), emu.run(x)  # warm-up
        t_torch, t_emu = best_of_interleaved([lambda: snntorch_forward(net, xt), lambda: emu.run(x)], args.repeats)
        print(f"{batch:>6} {t_torch * 1e3:>13.1f} ms {t_emu * 1e3:>13.1f} ms {t_torch / t_emu:>21.2f}x")


if __name__ == "__main__":
    main()
