"""Digits MLP (64-100-10 Leaky), trained in snntorch on sklearn's bundled 8x8 digits (offline).

The network is written as in the snntorch tutorials: a custom ``nn.Module`` whose forward loops
over time, feeding the analog pixels every step (direct encoding). Neurons reset to zero so the
model also deploys on Loihi (which has no subtractive reset).

    python examples/digits_mlp.py OUT_DIR     # trains, writes digits_mlp.pt, test_x.npy, test_y.npy
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import snntorch as snn
import torch
from torch import nn

NUM_STEPS = 25
BETA = 0.9


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 100)
        self.lif1 = snn.Leaky(beta=BETA, reset_mechanism="zero")
        self.fc2 = nn.Linear(100, 10)
        self.lif2 = snn.Leaky(beta=BETA, reset_mechanism="zero")

    def forward(self, x):
        """x: [B, 64] pixels in [0, 1], repeated every step; returns output spikes [T, B, 10]."""
        mem1 = self.lif1.init_leaky()
        mem2 = self.lif2.init_leaky()
        spk2_rec = []
        for _ in range(NUM_STEPS):
            spk1, mem1 = self.lif1(self.fc1(x), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            spk2_rec.append(spk2)
        return torch.stack(spk2_rec)


def load_digits_split():
    """Train/test split of sklearn digits, pixels scaled to [0, 1] (float32)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    return train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)


def train(epochs: int = 15, seed: int = 0) -> Net:
    torch.manual_seed(seed)
    x_train, _, y_train, _ = load_digits_split()
    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train).long()
    gen = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        for idx in torch.randperm(len(xt), generator=gen).split(64):
            counts = net(xt[idx]).sum(0)
            loss = loss_fn(counts, yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def direct_encoding(x: np.ndarray, steps: int = NUM_STEPS) -> np.ndarray:
    """[B, 64] pixels -> [T, B, 64]: the same analog values every step."""
    return np.repeat(x[None], steps, axis=0).astype(np.float32)


def accuracy(spikes: np.ndarray, labels: np.ndarray) -> float:
    """Spike-count argmax accuracy of output spikes [T, B, 10]."""
    return float((spikes.sum(0).argmax(-1) == labels).mean())


def main(out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    net = train()
    _, x_test, _, y_test = load_digits_split()
    torch.save(net.state_dict(), out / "digits_mlp.pt")
    np.save(out / "test_x.npy", direct_encoding(x_test))
    np.save(out / "test_y.npy", y_test)
    with torch.no_grad():
        acc = accuracy(net(torch.from_numpy(x_test)).numpy(), y_test)
    print(f"snntorch float test accuracy: {acc:.4f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "demo-build")
