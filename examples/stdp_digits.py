"""Unsupervised digit learning with STDP, in the style of Diehl & Cook (2015), on sklearn's digits.

64 Poisson inputs (one per pixel of the 8x8 images, rate proportional to intensity) feed an
excitatory LIF layer through plastic synapses (pair STDP with Diehl & Cook's offset x_tar: on a
post spike, active inputs grow and silent ones shrink). Lateral inhibition lets one neuron win
per image, and an adaptive threshold (homeostasis) keeps every neuron in the competition. No
labels are used in training. Afterwards each neuron is assigned the class it responds to most on
the training images, and a test image is classified by the class whose neurons fire most.

Everything runs in the fixed point of the loihi target: ``--engine emu`` (the emulator) or
``--engine lava`` (Lava's process graph, one worker run per image; slow, use a small size); both
give the same weights bit for bit. Prints accuracy and training time; saves the learned receptive
fields to ``--png``.

    python examples/stdp_digits.py [--neurons 100] [--train 1000] [--test 500] [--steps 60] [--epochs 1]
                                   [--engine emu] [--png docs/stdp_digits_fields.png]
    python examples/stdp_digits.py --neurons 10 --lava-check 10 --steps 40
"""
from __future__ import annotations

import argparse
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from snnhw.api import STDP, Network, poisson_spikes  # noqa: E402

DT = 1e-3               # seconds per step
MAX_RATE = 250.0        # Hz for a full-intensity pixel (p = 0.25 per step)
THRESHOLD = 3.0         # threshold units
W_MAX = 1.0             # threshold units per input spike
INHIBITION = 6.0        # every spike pushes every other excitatory neuron down by this much
W_TOTAL = 0.1 * 64 * W_MAX  # weight normalization: each neuron's input weights sum to this (10 %, as D&C)
THETA_PLUS = 0.1        # homeostasis: excitability lost per spike (threshold units)
RULE = STDP(w_max=W_MAX, a_plus=0.08, a_minus=0.0, tau_plus=20e-3, tau_minus=20e-3, offset=0.4)


def data(n_train: int, n_test: int, seed: int = 0):
    """Shuffled sklearn digits as rates in [0, 1]: (train x, train y, test x, test y)."""
    d = load_digits()
    order = np.random.default_rng(seed).permutation(len(d.target))
    x, y = d.data[order] / 16.0, d.target[order]
    return x[:n_train], y[:n_train], x[n_train:n_train + n_test], y[n_train:n_train + n_test]


def build(neurons: int, seed: int = 0):
    net = Network(dt=DT)
    inp = net.input(64)
    exc = net.lif(neurons, tau=20e-3, threshold=THRESHOLD, name="exc")
    w0 = np.random.default_rng(seed).uniform(0.0, 0.3 * W_MAX, (neurons, 64)).astype(np.float32)
    net.connect(inp, exc, w0, plasticity=RULE)
    net.lateral_inhibition(exc, INHIBITION)
    net.adaptive_threshold(exc, THETA_PLUS)
    net.normalize_weights(exc, W_TOTAL)
    return net, exc


def encode(images: np.ndarray, steps: int, seed: int) -> np.ndarray:
    """Poisson spikes ``[steps, B, 64]``, one independent stream per image."""
    return np.stack([poisson_spikes(img * MAX_RATE, steps, DT, seed=seed + i) for i, img in enumerate(images)], axis=1)


def train(net: Network, exc, images: np.ndarray, steps: int, engine: str, epoch: int = 0) -> float:
    """One pass over ``images``, one learning run each (fresh Poisson spikes every epoch); returns seconds."""
    t0 = time.perf_counter()
    for i, img in enumerate(images):
        seed = 10_000 + epoch * len(images) + i
        net.run(encode(img[None], steps, seed=seed)[:, 0], target="loihi", learn=True, engine=engine)
        net.normalize_weights(exc, W_TOTAL)
    return time.perf_counter() - t0


def responses(net: Network, exc, images: np.ndarray, steps: int) -> np.ndarray:
    """Spike counts ``[B, neurons]`` with the learned weights frozen (one batched emulator run)."""
    mon = net.monitor(exc)
    net.run(encode(images, steps, seed=50_000), target="loihi")
    return mon.spikes.sum(axis=0)


def assign_and_score(r_train, y_train, r_test, y_test) -> tuple[np.ndarray, float]:
    """Diehl & Cook's labelling: each neuron takes the class with the highest mean response; a
    test image gets the class whose assigned neurons have the highest mean count."""
    mean = np.stack([r_train[y_train == c].mean(axis=0) if np.any(y_train == c) else np.zeros(r_train.shape[1])
                     for c in range(10)])
    labels = mean.argmax(axis=0)
    votes = np.stack([r_test[:, labels == c].mean(axis=1) if np.any(labels == c) else np.full(len(r_test), -1.0)
                      for c in range(10)], axis=1)
    return labels, float(np.mean(votes.argmax(axis=1) == y_test))


def plot_fields(weights: np.ndarray, labels: np.ndarray, path: str) -> None:
    n = weights.shape[0]
    cols = min(n, 10)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.9, rows * 1.0))
    for i, ax in enumerate(np.atleast_1d(axes).ravel()):
        ax.axis("off")
        if i < n:
            ax.imshow(weights[i].reshape(8, 8), cmap="hot", vmin=0)
            ax.set_title(str(labels[i]), fontsize=7)
    fig.suptitle("learned receptive fields (assigned class above each)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def same_on_lava(neurons: int, images: int, steps: int) -> tuple[bool, float, float]:
    """Train the same small network on the emulator and on Lava; (weights identical, emu s, lava s)."""
    x_tr = data(images, 0)[0]
    learned, secs = [], []
    for engine in ("emu", "lava"):
        net, exc = build(neurons)
        secs.append(train(net, exc, x_tr, steps, engine))
        learned.append(net.weights(exc))
    return bool(np.array_equal(*learned)), secs[0], secs[1]


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--neurons", type=int, default=100)
    p.add_argument("--train", type=int, default=1000)
    p.add_argument("--test", type=int, default=500)
    p.add_argument("--steps", type=int, default=60, help="steps per image (1 ms each)")
    p.add_argument("--epochs", type=int, default=1, help="passes over the training images")
    p.add_argument("--engine", default="emu", choices=["emu", "lava"])
    p.add_argument("--png", default="stdp_digits_fields.png")
    p.add_argument("--lava-check", type=int, default=0, metavar="IMAGES",
                   help="instead: train --neurons on IMAGES images on the emulator and on Lava, compare weights")
    a = p.parse_args(argv)
    if a.lava_check:
        same, t_emu, t_lava = same_on_lava(a.neurons, a.lava_check, a.steps)
        print(f"{a.neurons} neurons, {a.lava_check} images x {a.steps} steps: learned weights "
              f"{'identical' if same else 'DIFFERENT'} on the emulator ({t_emu:.1f} s) and Lava ({t_lava:.1f} s)")
        return {"same": same}
    x_tr, y_tr, x_te, y_te = data(a.train, a.test)
    net, exc = build(a.neurons)
    seconds = sum(train(net, exc, x_tr, a.steps, a.engine, e) for e in range(a.epochs))
    weights = net.weights(exc)
    net.freeze()
    labels, acc = assign_and_score(responses(net, exc, x_tr, a.steps), y_tr, responses(net, exc, x_te, a.steps), y_te)
    plot_fields(weights, labels, a.png)
    print(f"{a.neurons} neurons, {a.epochs} x {a.train} training images x {a.steps} steps on {a.engine}: {seconds:.1f} s; "
          f"test accuracy {acc:.3f} on {len(y_te)} images (chance 0.1); receptive fields -> {a.png}")
    return {"accuracy": acc, "seconds": seconds, "weights": weights, "labels": labels}


if __name__ == "__main__":
    main()
