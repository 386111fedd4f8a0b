"""`snnhw verify --targets emu,loihi` on the whole digits test split, sharded three ways, in one run.

The digits MLP (examples/digits_mlp.py, 64-100-10, trained ``--epochs`` epochs) is verified on the
450 test digits (direct encoding, 25 steps) with one process, ``--workers 2`` and a local Ray
cluster (``--ray local --workers 2``): prints each whole-process wall time, the speed-up over one
process, and whether the three JSON reports are identical (they must be: the issue's done-means).

    .venv/bin/python benchmarks/verify_sharded.py [--samples N] [--epochs N]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))


def main():
    import digits_mlp
    import torch
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=450)
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    print(f"load: {os.getloadavg()[0]:.2f} (1 min) at the start, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        net = digits_mlp.train(epochs=args.epochs)
        _, x_test, _, y_test = digits_mlp.load_digits_split()
        torch.save(net.state_dict(), tmp / "digits.pt")
        np.save(tmp / "x.npy", digits_mlp.direct_encoding(x_test[:args.samples]))
        np.save(tmp / "y.npy", y_test[:args.samples])
        reports, base = [], None
        for name, extra in (("1 process", []), ("--workers 2", ["--workers", "2"]),
                            ("--ray local --workers 2", ["--ray", "local", "--workers", "2"])):
            t0 = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "snnhw.cli", "verify", tmp / "digits.pt", "--arch",
                                   f"{ROOT / 'examples' / 'digits_mlp.py'}:Net", "-i", tmp / "x.npy", "--labels",
                                   tmp / "y.npy", "--input-kind", "graded", "--targets", "emu,loihi", "--json",
                                   *extra],
                                  capture_output=True, text=True)
            secs = time.perf_counter() - t0
            if done.returncode not in (0, 1):
                raise SystemExit(f"verify {name} failed: {done.stderr.strip()}")
            reports.append(done.stdout)
            base = base or secs
            r = json.loads(done.stdout)
            print(f"{name}: {secs:.1f} s whole process ({base / secs:.2f}x), exit {done.returncode}, "
                  f"loihi bit-exact {r['targets']['loihi']['backend']['bit_exact']}, "
                  f"accuracy emu {r['targets']['emu']['accuracy']:.4f} loihi {r['targets']['loihi']['accuracy']:.4f}")
        same = reports[0] == reports[1] == reports[2]
        print(f"{args.samples} digits: the three reports are {'identical' if same else 'DIFFERENT'}")
        print(f"load: {os.getloadavg()[0]:.2f} (1 min) at the end")
        if not same:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
