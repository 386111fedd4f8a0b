"""Synaptic and recurrent neurons on a task that needs memory: which of two channels spiked first?

Each sample has two input channels that spike once each, at different random steps in the first
``T/2`` steps; the label is the channel that spiked first. The answer is read from the output spike
counts over all ``T`` steps, so the network must keep the order in its state: an ``snn.Synaptic``
layer (decaying synaptic current) feeds an all-to-all ``snn.RLeaky`` (recurrent) layer and a Leaky
output. Zero reset in the spike step (``reset_delay=False``) and a bias-free Linear before the
Synaptic layer let it deploy on loihi as well as emu and fpga. Data are generated (seeded).

    python examples/temporal_order.py [--epochs 30] [--train-samples 2000] [--backend-samples 10]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import snntorch as snn
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deploy import deploy, print_deployment, train_bptt  # noqa: E402

NUM_STEPS = 30
HIDDEN = 24


def order_task(n: int, steps: int = NUM_STEPS, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` samples: spikes ``[steps, n, 2]`` (float32, one spike per channel, distinct steps < steps/2)
    and labels ``[n]`` (0 if channel 0 spiked first, else 1)."""
    rng = np.random.default_rng(seed)
    times = np.stack([rng.choice(steps // 2, size=2, replace=False) for _ in range(n)])
    x = np.zeros((steps, n, 2), np.float32)
    x[times[:, 0], np.arange(n), 0] = 1
    x[times[:, 1], np.arange(n), 1] = 1
    return x, (times[:, 1] < times[:, 0]).astype(np.int64)


class OrderNet(nn.Module):
    """Linear(2, H, no bias) - Synaptic - Linear(H, H) - RLeaky(all-to-all) - Linear(H, 2) - Leaky."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(2, HIDDEN, bias=False)
        self.syn1 = snn.Synaptic(alpha=0.9, beta=0.85, reset_mechanism="zero", reset_delay=False)
        self.fc2 = nn.Linear(HIDDEN, HIDDEN)
        self.rec2 = snn.RLeaky(beta=0.9, linear_features=HIDDEN, reset_mechanism="zero", reset_delay=False)
        self.fc3 = nn.Linear(HIDDEN, 2)
        self.lif3 = snn.Leaky(beta=0.9, reset_mechanism="zero")

    def forward(self, x):
        """x: [T, B, 2] spikes; returns output spikes [T, B, 2]."""
        syn1, mem1 = self.syn1.init_synaptic()
        spk2, mem2 = self.rec2.init_rleaky()
        mem3 = self.lif3.init_leaky()
        out = []
        for step in range(x.shape[0]):
            spk1, syn1, mem1 = self.syn1(self.fc1(x[step]), syn1, mem1)
            spk2, mem2 = self.rec2(self.fc2(spk1), spk2, mem2)
            spk3, mem3 = self.lif3(self.fc3(spk2), mem3)
            out.append(spk3)
        return torch.stack(out)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--train-samples", type=int, default=2000)
    p.add_argument("--test-samples", type=int, default=500)
    p.add_argument("--backend-samples", type=int, default=10, help="test samples for Lava and the RTL simulation")
    a = p.parse_args(argv)
    x_train, y_train = order_task(a.train_samples, seed=0)
    x_test, y_test = order_task(a.test_samples, seed=1)
    net = train_bptt(OrderNet, x_train, y_train, a.epochs, lr=5e-3, time_major=True)
    results = deploy(net, (2,), x_test, y_test, {"emu": a.test_samples, "loihi": a.backend_samples,
                                                 "fpga": a.backend_samples})
    print_deployment(f"temporal order (Synaptic + RLeaky), {a.epochs} epochs on {a.train_samples} samples, chance 0.5 "
                     f"(loihi/fpga: first {a.backend_samples} test samples)", results)
    return results


if __name__ == "__main__":
    main()
