"""An RLeaky network fed analog input (the snntorch regression tutorial's shape, on digits): float IR
vs the emu deployment with a synapse exponent (recurrent and input weights on their own scales), vs
one shared step (what targets without `features.synapse_exponent` get), and the fpga description.

    python benchmarks/rleaky_analog_input.py [--hidden 128] [--epochs 3]

Compiled as `snnhw compile --calib` does (graded 8-bit input, calibrated on 300 training digits);
accuracies on the 450 held-out test digits.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import snntorch as snn
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import digits_mlp  # noqa: E402

from snnhw.compiler.pipeline import CompileOptions, compile_graph  # noqa: E402
from snnhw.frontends.snntorch_trace import to_ir  # noqa: E402
from snnhw.targets import load  # noqa: E402
from snnhw.targets.emu.emulator import run  # noqa: E402

STEPS = 20


class Net(nn.Module):
    """64 analog pixels -> Linear -> RLeaky(all-to-all) -> Linear -> RLeaky(all-to-all)."""

    def __init__(self, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(64, hidden)
        self.lif1 = snn.RLeaky(beta=0.9, linear_features=hidden, reset_mechanism="zero")
        self.fc2 = nn.Linear(hidden, 10)
        self.lif2 = snn.RLeaky(beta=0.9, linear_features=10, reset_mechanism="zero")

    def forward(self, x):
        spk1, mem1 = self.lif1.init_rleaky()
        spk2, mem2 = self.lif2.init_rleaky()
        out = []
        for _ in range(STEPS):
            spk1, mem1 = self.lif1(self.fc1(x), spk1, mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), spk2, mem2)
            out.append(spk2)
        return torch.stack(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    torch.manual_seed(0)
    x_train, x_test, y_train, y_test = digits_mlp.load_digits_split()
    net = Net(args.hidden)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train).long()
    for _ in range(args.epochs):
        for idx in torch.randperm(len(xt)).split(64):
            loss = nn.functional.cross_entropy(net(xt[idx]).sum(0), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    g = to_ir(net.eval(), (64,))
    x = np.repeat(x_test[None], STEPS, axis=0)
    calib = np.repeat(x_train[None, :300], STEPS, axis=0)
    acc = lambda s: float((s.sum(0).argmax(-1) == y_test).mean())
    print(f"float IR: {acc(run(g, x).spikes['lif2']):.4f}")
    emu = load("emu")
    shared = replace(emu, features=replace(emu.features, synapse_exponent=False))
    opts = CompileOptions(input_bits=8, input_max=float(np.abs(calib).max()), calibration=calib)
    for name, tgt in (("emu (synapse exponent)", emu), ("emu numerics, one shared step", shared),
                      ("fpga (one shared step)", load("fpga"))):
        f = compile_graph(g, tgt, opts)
        print(f"{name}: {acc(run(f, x).spikes['lif2']):.4f}; rec_weight_exp "
              f"{[n.rec_weight_exp for n in f.neurons]}, input scale {f.input.scale}")


if __name__ == "__main__":
    main()
