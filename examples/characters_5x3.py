"""The 5x3-pixel character task: 15 input neurons, 4 output neurons, one per character.

Four characters drawn in 5x3 pixels; an "on" pixel is an input neuron spiking every step. A
single Linear(15, 4) + Leaky layer is trained in snntorch on noisy copies (each pixel flipped with
probability ``--noise``), deployed on emu, loihi and fpga, and run on the four clean characters:
the script prints, per target, each output neuron's spike count for each character (rows:
presented character, columns: output neuron), which should be largest on the diagonal.

    python examples/characters_5x3.py [--epochs 40] [--steps 20] [--noise 0.1]
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
from deploy import compile_options, train_bptt  # noqa: E402

from snnhw.compiler.pipeline import compile_graph  # noqa: E402
from snnhw.compiler.timing import arrival  # noqa: E402
from snnhw.deploy import run_graph  # noqa: E402
from snnhw.frontends.snntorch_trace import to_ir  # noqa: E402
from snnhw.targets import load as load_target  # noqa: E402

CHARACTERS = {  # 5 rows x 3 columns, "#" = on
    "T": ["###", ".#.", ".#.", ".#.", ".#."],
    "L": ["#..", "#..", "#..", "#..", "###"],
    "O": ["###", "#.#", "#.#", "#.#", "###"],
    "X": ["#.#", "#.#", ".#.", "#.#", "#.#"],
}


def pixels() -> np.ndarray:
    """The four characters as ``[4, 15]`` float32 0/1 pixels (row-major)."""
    return np.array([[c == "#" for c in "".join(rows)] for rows in CHARACTERS.values()], np.float32)


def spike_input(images: np.ndarray, steps: int) -> np.ndarray:
    """``[N, 15]`` 0/1 pixels -> ``[steps, N, 15]`` spikes: an on pixel spikes every step."""
    return np.repeat(images[None], steps, axis=0).astype(np.float32)


class CharNet(nn.Module):
    """Linear(15, 4) - Leaky, reading x[step]."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(15, 4)
        self.lif = snn.Leaky(beta=0.9, reset_mechanism="zero")

    def forward(self, x):
        """x: [T, B, 15] spikes; returns output spikes [T, B, 4]."""
        mem = self.lif.init_leaky()
        out = []
        for step in range(x.shape[0]):
            spk, mem = self.lif(self.fc(x[step]), mem)
            out.append(spk)
        return torch.stack(out)


def noisy_copies(n: int, noise: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` training images ``[n, 15]`` (each pixel flipped with probability ``noise``) and labels."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(CHARACTERS), n)
    flip = rng.random((n, 15)) < noise
    return np.abs(pixels()[y] - flip).astype(np.float32), y


def spike_counts(net: nn.Module, steps: int, target: str) -> np.ndarray:
    """``[4 characters, 4 output neurons]`` spike counts on ``target``'s own backend (emulator, Lava,
    RTL simulation) running the fixed point compiled for it, aligned by the target's latency."""
    x = spike_input(pixels(), steps)
    tgt = load_target(target)
    fixed = compile_graph(to_ir(net, (15,)), tgt, compile_options(x, target))
    d = arrival(fixed)[fixed.output.name]
    xp = np.concatenate([x, np.zeros((d, *x.shape[1:]), np.float32)])
    return run_graph(fixed, xp).spikes[fixed.output.name][d:].sum(0)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--train-samples", type=int, default=400)
    p.add_argument("--noise", type=float, default=0.1, help="pixel flip probability of the training copies")
    a = p.parse_args(argv)
    x_img, y = noisy_copies(a.train_samples, a.noise)
    net = train_bptt(CharNet, spike_input(x_img, a.steps), y, a.epochs, lr=1e-2, batch=32, time_major=True)
    with torch.no_grad():
        float_counts = net(torch.from_numpy(spike_input(pixels(), a.steps))).sum(0).numpy()
    counts = {"snntorch": float_counts}
    counts.update({t: spike_counts(net, a.steps, t) for t in ("emu", "loihi", "fpga")})
    names = list(CHARACTERS)
    for source, c in counts.items():
        print(f"\n{source}: spike counts over {a.steps} steps (row: character shown, column: output neuron)")
        print("      " + " ".join(f"{n:>4s}" for n in names))
        for name, row in zip(names, c):
            print(f"  {name:3s} " + " ".join(f"{int(v):4d}" for v in row))
        print(f"  each character's own neuron fires most: {bool(np.all(c.argmax(1) == np.arange(len(names))))}")
    return counts


if __name__ == "__main__":
    main()
