"""Fine-tuning on the digits MLP (examples/digits_mlp.py): float accuracy, deployed accuracy on the
emulator at 8-bit and 4-bit weights before and after `snnhw.finetune`, and the training time.

    python benchmarks/finetune_digits.py [--epochs 5] [--train-epochs 15] [--lr 2e-3] [--bits 8,4]

Accuracies are on the 450 held-out test digits; fine-tuning uses the 1347 training digits.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import digits_mlp  # noqa: E402

from snnhw.compiler.pipeline import CompileOptions  # noqa: E402
from snnhw.finetune import deployed_accuracy, deployment, finetune  # noqa: E402
from snnhw.targets import load  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5, help="fine-tuning epochs")
    ap.add_argument("--train-epochs", type=int, default=15, help="float training epochs (as the example)")
    ap.add_argument("--target", default="emu")
    ap.add_argument("--lr", type=float, default=2e-3, help="fine-tuning learning rate")
    ap.add_argument("--bits", default="8,4", help="weight widths to measure, e.g. 8,4")
    args = ap.parse_args()
    torch.manual_seed(0)
    base = digits_mlp.train(epochs=args.train_epochs)
    x_train, x_test, y_train, y_test = digits_mlp.load_digits_split()
    x, xt = digits_mlp.direct_encoding(x_train), digits_mlp.direct_encoding(x_test)
    with torch.no_grad():
        float_acc = digits_mlp.accuracy(base(torch.from_numpy(x_test)).numpy(), y_test)
    print(f"snntorch float test accuracy: {float_acc:.4f}")
    tgt = load(args.target)
    print("| weights | float | deployed before | deployed after | fine-tuning wall / CPU time |")
    print("|---|---|---|---|---|")
    for bits in (int(b) for b in args.bits.split(",")):
        net = digits_mlp.Net()
        net.load_state_dict(base.state_dict())
        opts = CompileOptions(input_bits=8, input_max=1.0, weight_bits=bits)
        before = deployed_accuracy(deployment(net, (64,), tgt, opts)[1], xt, y_test)
        t0, c0 = time.perf_counter(), time.process_time()
        finetune(net, (x, y_train), tgt, opts, (64,), epochs=args.epochs, seed=0, lr=args.lr)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        after = deployed_accuracy(deployment(net, (64,), tgt, opts)[1], xt, y_test)
        print(f"| {bits}-bit | {float_acc:.4f} | {before:.4f} | {after:.4f} | {seconds:.0f} s / {cpu:.0f} s ({args.epochs} epochs) |",
              flush=True)


if __name__ == "__main__":
    main()
