"""The snntorch tutorial network: 784-1000-10 Leaky, beta 0.95, 25 steps, BPTT, on all three targets.

The tutorial trains on MNIST; offline, this script uses sklearn's 8x8 digits upscaled to 28x28
(bilinear ``scipy.ndimage.zoom`` by 3.5, clipped to [0, 1]) and fed every step (direct encoding).
Neurons reset to zero so the net deploys on Loihi. The emulator takes the whole test set; Lava and
the RTL simulation (784 k weights: Verilator) run on the first ``--backend-samples`` digits.
``--hidden`` shrinks the hidden layer for quick runs (the tests use it).

    python examples/tutorial_784.py [--epochs 5] [--hidden 1000] [--backend-samples 5]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import snntorch as snn
import torch
from scipy.ndimage import zoom
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deploy import deploy, print_deployment, train_bptt  # noqa: E402
from digits_mlp import direct_encoding, load_digits_split  # noqa: E402

NUM_STEPS = 25
BETA = 0.95


class TutorialNet(nn.Module):
    """snntorch tutorial 5: fc1 - Leaky - fc2 - Leaky, looping over time in forward."""

    def __init__(self, hidden: int = 1000):
        super().__init__()
        self.fc1 = nn.Linear(784, hidden)
        self.lif1 = snn.Leaky(beta=BETA, reset_mechanism="zero")
        self.fc2 = nn.Linear(hidden, 10)
        self.lif2 = snn.Leaky(beta=BETA, reset_mechanism="zero")

    def forward(self, x):
        """x: [B, 784] pixels in [0, 1], fed every step; returns output spikes [T, B, 10]."""
        mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        out = []
        for _ in range(NUM_STEPS):
            spk1, mem1 = self.lif1(self.fc1(x), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            out.append(spk2)
        return torch.stack(out)


def upscale_28(x64: np.ndarray) -> np.ndarray:
    """[N, 64] 8x8 digits in [0, 1] -> [N, 784] 28x28 (bilinear zoom x3.5, clipped to [0, 1]), float32."""
    img = zoom(x64.reshape(-1, 8, 8), (1, 3.5, 3.5), order=1)
    return np.clip(img, 0, 1).reshape(len(x64), 784).astype(np.float32)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--hidden", type=int, default=1000)
    p.add_argument("--train-samples", type=int, default=None, help="training digits (default: all 1347)")
    p.add_argument("--test-samples", type=int, default=None, help="test digits on emu (default: all 450)")
    p.add_argument("--backend-samples", type=int, default=5, help="test digits for Lava and the RTL simulation")
    a = p.parse_args(argv)
    x_train, x_test, y_train, y_test = load_digits_split()
    n_train, n_test = a.train_samples or len(x_train), a.test_samples or len(x_test)
    net = train_bptt(lambda: TutorialNet(a.hidden), upscale_28(x_train[:n_train]), y_train[:n_train], a.epochs, lr=5e-4)
    x = direct_encoding(upscale_28(x_test[:n_test]))
    results = deploy(net, (784,), x, y_test[:n_test], {"emu": n_test, "loihi": a.backend_samples,
                                                       "fpga": a.backend_samples})
    print_deployment(f"tutorial net 784-{a.hidden}-10, beta {BETA}, {NUM_STEPS} steps, {a.epochs} epochs on "
                     f"{n_train} digits (loihi/fpga: first {a.backend_samples} test digits)", results)
    return results


if __name__ == "__main__":
    main()
