"""Scale-out of `snnhw run`: one batch sharded over local workers and a local Ray cluster, in one run.

The snntorch tutorial network 784-1000-10 (Leaky, beta 0.95, random weights, 15 % input spike rate,
25 steps) compiled for each target. Prints, per target and engine, throughput in sample-steps/s,
the speed-up over one worker and the parallel efficiency (speed-up / workers), after checking that
every sharded result equals the one-process result byte for byte; and whole-process start-up times
of `snnhw --help` and of `snnhw run` on the digits-size network.

The emulator runs the whole data set (``--samples``, default 10,000); Lava (~8 ms per step per
sample) and the RTL simulation run ``--slow-samples`` (default 16) so the benchmark stays minutes.
On this 2-core machine two workers are the most that can help. Last, the whole `snnhw run` command
on the whole data set (streamed to its file): wall time and peak memory, storing only the output
layer and storing every layer (the hidden layer alone is 10,000 x 1,000 x 25 bytes = 250 MB).

    .venv/bin/python benchmarks/scale_out.py [--samples N] [--slow-samples N] [--targets emu,loihi,fpga]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

STEPS = 25


def Net():
    """The tutorial network, seeded (``--arch benchmarks/scale_out.py:Net``)."""
    import snntorch as snn
    import torch
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(784, 1000), snn.Leaky(beta=0.95, init_hidden=True),
                               torch.nn.Linear(1000, 10), snn.Leaky(beta=0.95, init_hidden=True))


def DigitsNet():
    """A digits-size network (64-100-10) for the start-up measurement."""
    import snntorch as snn
    import torch
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 100), snn.Leaky(beta=0.9, init_hidden=True),
                               torch.nn.Linear(100, 10), snn.Leaky(beta=0.9, init_hidden=True))


def cli(*args) -> None:
    done = subprocess.run([sys.executable, "-m", "snnhw.cli", *map(str, args)], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"snnhw {' '.join(map(str, args))} failed: {done.stderr.strip()}")


def wall(args, repeat=3) -> float:
    """Best whole-process wall time of ``python -m snnhw.cli ARGS`` over ``repeat`` runs."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "snnhw.cli", *map(str, args)], capture_output=True, check=True)
        best = min(best, time.perf_counter() - t0)
    return best


# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over fork and exec, so it would report this
# benchmark's own footprint (torch, the data set) as the child's peak.
PEAK = ("import sys\nfrom snnhw.cli import main\nrc = main(sys.argv[1:])\n"
        "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')))\nsys.exit(rc)\n")


def run_peak(args) -> tuple[float, float]:
    """Whole-process wall time (s) and peak resident memory (MB) of ``snnhw ARGS``."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK, *map(str, args)], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"snnhw {' '.join(map(str, args))} failed: {done.stderr.strip()}")
    return time.perf_counter() - t0, int(done.stdout.split()[-1]) / 1024


def compile_build(tmp: Path, factory: str, target: str) -> Path:
    import torch
    pt = tmp / f"{factory}.pt"
    if not pt.exists():
        torch.save(globals()[factory]().state_dict(), pt)
    out = tmp / f"{factory}-{target}"
    cli("compile", pt, "--arch", f"{Path(__file__).resolve()}:{factory}", "-t", target, "-o", out)
    return out


def same(a, b) -> bool:
    return all(np.array_equal(v, b.spikes[k]) for k, v in a.spikes.items()) and a.overflow == b.overflow


def main():
    from snnhw.shard import Sharding, run_sharded
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--slow-samples", type=int, default=16)
    ap.add_argument("--targets", default="emu,loihi,fpga")
    args = ap.parse_args()
    workers = min(2, os.cpu_count() or 1)
    print(f"load: {os.getloadavg()[0]:.2f} (1 min) at the start")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        print(f"784-1000-10, {STEPS} steps, {workers} cores; throughput in sample-steps/s")
        print(" | ".join(("target", "samples", "engine", "workers", "sample-steps/s", "speed-up", "efficiency")))
        for target in args.targets.split(","):
            build = compile_build(tmp, "Net", target)
            n = args.samples if target == "emu" else args.slow_samples
            x = (rng.random((STEPS, n, 784)) < 0.15).astype(np.int8)
            base = None
            for engine, w, ray in (("local", 1, None), ("local", workers, None), ("ray local", workers, "local")):
                t0 = time.perf_counter()
                try:
                    res = run_sharded(target, build, x, sharding=Sharding(w, ray), layers={"3"})
                except Exception as exc:  # e.g. a local Ray instance that cannot start on a loaded machine
                    print(f"{target} | {n} | {engine} | {w} | failed: {str(exc).splitlines()[0]}")
                    continue
                dt = time.perf_counter() - t0
                if base is None:
                    base, ref = dt, res
                elif not same(res, ref):
                    raise SystemExit(f"{target} {engine} x{w}: result differs from one process")
                rate = STEPS * n / dt
                print(" | ".join((target, str(n), engine, str(w), f"{rate:,.0f}", f"{base / dt:.2f}x",
                                  f"{base / dt / w:.0%}")))
        emu_build = compile_build(tmp, "Net", "emu")
        x = (rng.random((STEPS, args.samples, 784)) < 0.15).astype(np.int8)
        np.save(tmp / "big.npy", x)
        del x
        for what, extra in (("output layer only", ["--layers", "3"]), ("every layer", [])):
            secs, mb = run_peak(["run", emu_build, "-i", tmp / "big.npy", "-o", tmp / "big.npz", *extra])
            print(f"\nsnnhw run, {args.samples} samples x {STEPS} steps, {what}: {secs:.1f} s whole process "
                  f"({STEPS * args.samples / secs:,.0f} sample-steps/s), peak memory {mb:.0f} MB, "
                  f"file {(tmp / 'big.npz').stat().st_size / 1e6:.1f} MB")
        digits = compile_build(tmp, "DigitsNet", "emu")
        np.save(tmp / "x.npy", (rng.random((STEPS, 5, 64)) < 0.3).astype(np.int8))
        print(f"\nstart-up (best of 3, whole process): snnhw --help {wall(['--help']):.2f} s; "
              f"snnhw run (64-100-10, 5 samples) {wall(['run', digits, '-i', tmp / 'x.npy', '-o', tmp / 'o.npz']):.2f} s")
        print(f"load: {os.getloadavg()[0]:.2f} (1 min) at the end")


if __name__ == "__main__":
    main()
