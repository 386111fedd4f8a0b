"""Digits conv net: Conv2d(1,8,3,padding=1)-Leaky-<pooling>-Flatten-Linear(128,10)-Leaky.

The 8x8 digits (sklearn, offline) are fed as 1x8x8 images every step (direct encoding). Three
variants reduce the 8x8x8 spike maps to 8x4x4 = 128 features, and all deploy on the three targets:

* ``avgpool``: AvgPool2d(2) on the spikes; the compiler's fold-linear pass composes it into the
  Linear after it (one exact linear map).
* ``maxpool``: MaxPool2d(2) on the spikes; on loihi and fpga the maxpool-to-or lowering runs it as
  an OR layer (exact; on loihi one more step of latency).
* ``stride2``: a stride-2 convolution instead of pooling.

Lava and the RTL simulation run on the first ``--backend-samples`` digits.

    python examples/digits_conv.py [--epochs 10] [--train-samples 1347] [--backend-samples 10]
                                   [--variants avgpool,maxpool,stride2]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import snntorch as snn
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deploy import deploy, print_deployment, train_bptt  # noqa: E402
from digits_mlp import direct_encoding, load_digits_split  # noqa: E402

NUM_STEPS = 25
BETA = 0.9


VARIANTS = {"avgpool": "AvgPool2d(2) on spikes", "maxpool": "MaxPool2d(2) on spikes",
            "stride2": "stride-2 conv, no pooling"}


class ConvNet(nn.Module):
    """variant: ``avgpool`` or ``maxpool`` (conv stride 1, then that pooling of the spikes) or
    ``stride2`` (conv with stride 2, no pooling)."""

    def __init__(self, variant: str = "avgpool"):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1, stride=2 if variant == "stride2" else 1)
        self.lif1 = snn.Leaky(beta=BETA, reset_mechanism="zero")
        self.pool = {"avgpool": nn.AvgPool2d(2), "maxpool": nn.MaxPool2d(2), "stride2": nn.Identity()}[variant]
        self.fc = nn.Linear(8 * 4 * 4, 10)
        self.lif2 = snn.Leaky(beta=BETA, reset_mechanism="zero")

    def forward(self, x):
        """x: [B, 1, 8, 8] pixels in [0, 1], fed every step; returns output spikes [T, B, 10]."""
        mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        out = []
        for _ in range(NUM_STEPS):
            spk1, mem1 = self.lif1(self.conv(x), mem1)
            spk2, mem2 = self.lif2(self.fc(self.pool(spk1).flatten(1)), mem2)
            out.append(spk2)
        return torch.stack(out)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--train-samples", type=int, default=None, help="training digits (default: all 1347)")
    p.add_argument("--test-samples", type=int, default=None, help="test digits on emu (default: all 450)")
    p.add_argument("--backend-samples", type=int, default=10, help="test digits for Lava and the RTL simulation")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    a = p.parse_args(argv)
    variants = a.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        p.error(f"unknown variant {unknown[0]!r}; choose from {', '.join(VARIANTS)}")
    x_train, x_test, y_train, y_test = load_digits_split()
    n_train = a.train_samples or len(x_train)
    n_test = a.test_samples or len(x_test)
    x = direct_encoding(x_test[:n_test]).reshape(NUM_STEPS, n_test, 1, 8, 8)
    results = {}
    for name in variants:
        net = train_bptt(lambda: ConvNet(name), x_train[:n_train].reshape(-1, 1, 8, 8), y_train[:n_train], a.epochs)
        results[name] = deploy(net, (1, 8, 8), x, y_test[:n_test],
                               {"emu": n_test, "loihi": a.backend_samples, "fpga": a.backend_samples})
        print_deployment(f"conv net ({VARIANTS[name]}), {a.epochs} epochs on {n_train} digits (loihi/fpga: first "
                         f"{a.backend_samples} test digits)", results[name])
    return results


if __name__ == "__main__":
    main()
