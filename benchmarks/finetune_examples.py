"""Fine-tuning on the examples: the digits MLP (examples/digits_mlp.py), the pooled digits conv net
(examples/digits_conv.py, AvgPool2d folded into the Linear after it), the digits MLP with Synaptic
neurons (defined here) and the Synaptic + RLeaky temporal-order net (examples/temporal_order.py).
Per model and weight width: the snntorch float
accuracy, the deployed accuracy (the target's fixed point, in the emulator) before and after
`snnhw.finetune`, and the fine-tuning time.

    python benchmarks/finetune_examples.py [--models mlp,conv,synaptic-digits,synaptic] [--bits 8,4] [--epochs 5]
        [--lr 2e-3] [--schedule cosine] [--target emu] [--threads 1] [--channel-steps auto]

Each model is trained in float as its example does (seed 0) and fine-tuned on its training set;
accuracies are on held-out data (450 test digits; 500 temporal-order samples of another seed).
Torch runs on ``--threads`` threads (1 by default: on a shared machine, more threads than free
cores make the many small tensor ops of the per-step loop wait for each other, 10x slower here).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import snntorch as snn
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import digits_conv  # noqa: E402
import digits_mlp  # noqa: E402
import temporal_order  # noqa: E402
from deploy import train_bptt  # noqa: E402

from snnhw.compiler.pipeline import CompileOptions  # noqa: E402
from snnhw.finetune import deployed_accuracy, deployment, finetune, spike_count_accuracy  # noqa: E402
from snnhw.targets import load  # noqa: E402


def mlp():
    """(name, trained net, constructor, input shape, (x, y) train [T, B, ...], (x, y) test, spike input?)"""
    x_train, x_test, y_train, y_test = digits_mlp.load_digits_split()
    net = digits_mlp.train(epochs=15)
    return ("digits MLP 64-100-10", net, digits_mlp.Net, (64,),
            (digits_mlp.direct_encoding(x_train), y_train), (digits_mlp.direct_encoding(x_test), y_test))


def conv():
    x_train, x_test, y_train, y_test = digits_mlp.load_digits_split()
    net = train_bptt(lambda: digits_conv.ConvNet("avgpool"), x_train.reshape(-1, 1, 8, 8), y_train, 10)
    enc = lambda x: digits_mlp.direct_encoding(x).reshape(digits_conv.NUM_STEPS, len(x), 1, 8, 8)
    return ("digits conv, AvgPool2d folded", net, lambda: digits_conv.ConvNet("avgpool"), (1, 8, 8),
            (enc(x_train), y_train), (enc(x_test), y_test))


class SynapticDigits(nn.Module):
    """The digits MLP with ``snn.Synaptic`` neurons: 64-100-10, synaptic current decay alpha 0.8,
    membrane decay beta 0.9, zero reset; the pixels fed every step (direct encoding)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 100)
        self.syn1 = snn.Synaptic(alpha=0.8, beta=0.9, reset_mechanism="zero")
        self.fc2 = nn.Linear(100, 10)
        self.syn2 = snn.Synaptic(alpha=0.8, beta=0.9, reset_mechanism="zero")

    def forward(self, x):
        """x: [B, 64] pixels in [0, 1]; returns output spikes [T, B, 10]."""
        i1, v1 = self.syn1.init_synaptic()
        i2, v2 = self.syn2.init_synaptic()
        out = []
        for _ in range(digits_mlp.NUM_STEPS):
            s1, i1, v1 = self.syn1(self.fc1(x), i1, v1)
            s2, i2, v2 = self.syn2(self.fc2(s1), i2, v2)
            out.append(s2)
        return torch.stack(out)


def synaptic_digits():
    x_train, x_test, y_train, y_test = digits_mlp.load_digits_split()
    net = train_bptt(SynapticDigits, x_train, y_train, 15)
    return ("digits Synaptic 64-100-10", net, SynapticDigits, (64,),
            (digits_mlp.direct_encoding(x_train), y_train), (digits_mlp.direct_encoding(x_test), y_test))


def synaptic():
    x_train, y_train = temporal_order.order_task(2000, seed=0)
    x_test, y_test = temporal_order.order_task(500, seed=1)
    net = train_bptt(temporal_order.OrderNet, x_train, y_train, 30, lr=5e-3, time_major=True)
    return ("temporal order, Synaptic + RLeaky", net, temporal_order.OrderNet, (2,), (x_train, y_train),
            (x_test, y_test))


MODELS = {"mlp": mlp, "conv": conv, "synaptic-digits": synaptic_digits, "synaptic": synaptic}


def float_accuracy(net, x: np.ndarray, y: np.ndarray) -> float:
    """The snntorch model's accuracy, decoded as the deployment's; static models get one step of ``x``."""
    with torch.no_grad():
        static = bool(np.all(x == x[:1]))
        return spike_count_accuracy(net(torch.from_numpy(x[0] if static else x)).numpy(), y)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="mlp,conv,synaptic-digits,synaptic", help=f"some of {', '.join(MODELS)}")
    ap.add_argument("--bits", default="8,4", help="weight widths, e.g. 8,4")
    ap.add_argument("--epochs", type=int, default=5, help="fine-tuning epochs")
    ap.add_argument("--lr", type=float, default=2e-3, help="fine-tuning learning rate (first epoch)")
    ap.add_argument("--schedule", default="cosine", help="learning rate over the epochs: cosine or constant")
    ap.add_argument("--target", default="emu")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--channel-steps", default="auto", help="per-channel weight steps, one or more of auto, on, "
                    "off (e.g. off,auto: one row per setting, fine-tuned from the same float model)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tgt = load(args.target)
    rows = []
    print("| model | weights | channel steps | float | deployed before | deployed after | after - float "
          "| fine-tuning wall / CPU |")
    print("|---|---|---|---|---|---|---|---|")
    for key in args.models.split(","):
        title, base, make, shape, (x, y), (xt, yt) = MODELS[key]()
        f_acc = float_accuracy(base, xt, yt)
        spikes = bool(np.all((x == 0) | (x == 1)))
        for bits, steps in ((int(b), c) for b in args.bits.split(",") for c in args.channel_steps.split(",")):
            net = make()
            net.load_state_dict(base.state_dict())
            opts = CompileOptions(input_bits=1, weight_bits=bits, channel_steps=steps) if spikes else \
                CompileOptions(input_bits=tgt.numerics.input_bits, input_max=1.0, weight_bits=bits,
                               channel_steps=steps)
            before = deployed_accuracy(deployment(net, shape, tgt, opts)[1], xt, yt)
            t0, c0 = time.perf_counter(), time.process_time()
            finetune(net, (x, y), tgt, opts, shape, epochs=args.epochs, seed=0, lr=args.lr, schedule=args.schedule,
                     on_epoch=lambda e: print(f"  {key} {bits}-bit {steps} epoch {e.epoch}: loss {e.loss:.4f}, "
                                              f"deployed (training data) {e.deployed_accuracy:.4f}, {e.seconds:.0f} s",
                                              file=sys.stderr, flush=True))
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            after = deployed_accuracy(deployment(net, shape, tgt, opts)[1], xt, yt)
            rows.append((f"{title} (channel steps {steps})", bits, f_acc, before, after))
            print(f"| {title} | {bits}-bit | {steps} | {f_acc:.4f} | {before:.4f} | {after:.4f} "
                  f"| {100 * (after - f_acc):+.2f} pt "
                  f"| {wall:.0f} s / {cpu:.0f} s ({args.epochs} epochs) |", flush=True)
    bar = {8: 0.5, 4: 1.5}
    for title, bits, f_acc, _, after in rows:
        if bits in bar:
            ok = after >= f_acc - bar[bits] / 100
            print(f"{title}, {bits}-bit: after >= float - {bar[bits]} pt: {'yes' if ok else 'NO'}")


if __name__ == "__main__":
    main()
