"""Differential run: random snntorch networks through every target, every array compared.

Each network (Leaky / Synaptic / RLeaky all-to-all and one-to-one / RSynaptic / conv / conv with
MaxPool2d on its spikes (an OR layer on loihi and fpga); every reset
mechanism, delayed and immediate resets, per-neuron beta and threshold, Linear biases, spike or
analog input) is saved as a whole-module ``.pt`` and driven through the CLI as a user would:
``python -m snnhw.cli compile`` for ``loihi`` and ``fpga``; each accepted build is run on its own
target and on ``emu`` (the reference semantics of the same build) with ``--record-state``, and
every array (spikes, voltage, current of every layer) must be equal. Outcomes per target:
``equal`` (accepted, all arrays equal), ``refused`` (exit 2 with a one-line reason) or
``DIFFERENT`` (accepted and different: the one outcome that must never happen); ``error`` (a
crash with a traceback, a bug of its own kind).

    .venv/bin/python benchmarks/differential.py [--networks 24] [--steps 20] [--targets loihi,fpga]
                                                [--kinds leaky,...,conv_maxpool]

prints the counts per target and, for loihi, the fraction of layers on Intel's Lava LIF vs
snnhw's MicrocodeLIF (from each build's lava_plan.json). tests/test_differential.py runs a small
version in CI.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

KINDS = ("leaky", "synaptic", "rleaky_all", "rleaky_one", "rsynaptic", "conv", "conv_maxpool")


def random_model(rng: np.random.Generator, kind: str):
    """A small random snntorch ``nn.Sequential`` of ``kind`` and its per-sample input shape."""
    import snntorch as snn
    import torch
    from torch import nn

    torch.manual_seed(int(rng.integers(1 << 31)))
    n_in, hidden, n_out = int(rng.integers(3, 8)), int(rng.integers(2, 6)), int(rng.integers(1, 4))

    def per_neuron(lo, hi, n):
        return torch.tensor(rng.uniform(lo, hi, n), dtype=torch.float32) if rng.random() < 0.4 else \
            float(round(rng.uniform(lo, hi), 3))

    def neuron(cls, n, **extra):
        mode = str(rng.choice(["subtract", "zero", "none"]))
        delay = True if cls is snn.RSynaptic else bool(rng.random() < 0.6)
        kw = dict(beta=per_neuron(0.3, 1.0, n), threshold=per_neuron(0.5, 1.5, n), reset_mechanism=mode,
                  reset_delay=delay, init_hidden=True, surrogate_disable=True, **extra)
        if cls in (snn.Synaptic, snn.RSynaptic):
            kw["alpha"] = per_neuron(0.0, 0.95, n)
        if cls in (snn.RLeaky, snn.RSynaptic):
            if kind == "rleaky_one":
                kw.update(all_to_all=False, V=float(round(rng.uniform(-0.5, 0.5), 3)))
            else:
                kw.update(linear_features=n)
        return cls(**kw)

    cls = {"leaky": snn.Leaky, "synaptic": snn.Synaptic, "rleaky_all": snn.RLeaky, "rleaky_one": snn.RLeaky,
           "rsynaptic": snn.RSynaptic, "conv": snn.Leaky, "conv_maxpool": snn.Leaky}[kind]
    bias = bool(rng.random() < 0.5)
    if kind == "conv":
        shape = (1, 5, 5)
        layers = [nn.Conv2d(1, 2, 3, bias=bias), neuron(snn.Leaky, (2, 3, 3)), nn.Flatten(),
                  nn.Linear(18, n_out, bias=bias), neuron(snn.Leaky, n_out, output=True)]
    elif kind == "conv_maxpool":  # max pooling of spikes, windows overlapping or not
        shape = (1, 6, 6)
        stride = int(rng.integers(1, 3))
        side = (4 - 2) // stride + 1
        layers = [nn.Conv2d(1, 2, 3, bias=bias), neuron(snn.Leaky, (2, 4, 4)), nn.MaxPool2d(2, stride=stride),
                  nn.Flatten(), nn.Linear(2 * side * side, n_out, bias=bias), neuron(snn.Leaky, n_out, output=True)]
    else:
        shape = (n_in,)
        layers = [nn.Linear(n_in, hidden, bias=bias), neuron(cls, hidden),
                  nn.Linear(hidden, n_out, bias=bias), neuron(snn.Leaky, n_out, output=True)]
    net = nn.Sequential(*layers)
    with torch.no_grad():
        for m in net:
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                m.weight.uniform_(-0.3, 1.0)
    return net, shape


def random_input(rng: np.random.Generator, shape: tuple, steps: int, batch: int = 1) -> np.ndarray:
    """Spikes (0/1) or analog values in [-1, 1], ``[steps, batch, *shape]`` float32."""
    if rng.random() < 0.5:
        return (rng.random((steps, batch, *shape)) < 0.5).astype(np.float32)
    return rng.uniform(-1, 1, (steps, batch, *shape)).astype(np.float32)


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snnhw.cli", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"}, timeout=900)


def check_target(work: Path, model: Path, shape: tuple, x_path: Path, target: str) -> dict:
    """Compile for ``target``; if accepted, run on it and on emu; compare every array."""
    build = work / f"build-{target}"
    shape_arg = ["--input-shape", ",".join(map(str, shape))] if len(shape) == 3 else []
    done = cli("compile", model, "--target", target, "--calib", x_path, *shape_arg, "-o", build)
    if done.returncode == 2:
        return {"outcome": "refused", "reason": done.stderr.strip().splitlines()[-1]}
    if done.returncode != 0:
        return {"outcome": "error", "reason": f"compile: {done.stderr.strip().splitlines()[-1]}"}
    out = {}
    for tgt in (target, "emu"):
        r = cli("run", build, "--target", tgt, "--input", x_path, "--record-state", "-o", work / f"{target}-{tgt}.npz")
        if r.returncode != 0:
            return {"outcome": "error", "reason": f"run on {tgt}: {r.stderr.strip().splitlines()[-1]}"}
        out[tgt] = np.load(work / f"{target}-{tgt}.npz")
    ours, ref = out[target], out["emu"]
    diff = sorted(set(ours.files) ^ set(ref.files)) + \
        [k for k in sorted(set(ours.files) & set(ref.files)) if not np.array_equal(ours[k], ref[k])]
    result = {"outcome": "DIFFERENT" if diff else "equal", "differing": diff}
    plan = build / "lava_plan.json"
    if plan.exists():
        result["plan"] = json.loads(plan.read_text())["summary"]
    return result


def run_network(seed: int, kind: str, steps: int, targets: tuple, work: Path) -> dict:
    import torch
    rng = np.random.default_rng(seed)
    net, shape = random_model(rng, kind)
    work.mkdir(parents=True, exist_ok=True)
    torch.save(net, work / "model.pt")
    np.save(work / "x.npy", random_input(rng, shape, steps))
    return {t: check_target(work, work / "model.pt", shape, work / "x.npy", t) for t in targets}


def tally(results: list) -> dict:
    counts: dict = {}
    layers = {"intel": 0, "microcode": 0}
    for res in results:
        for t, r in res.items():
            c = counts.setdefault(t, {"equal": 0, "refused": 0, "DIFFERENT": 0, "error": 0})
            c[r["outcome"]] += 1
            for k, v in r.get("plan", {}).items():
                layers[k] += v
    return {"counts": counts, "loihi_layers": layers}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", type=int, default=24)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--targets", default="loihi,fpga")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kinds", default=",".join(KINDS), help="network kinds, cycled through")
    args = ap.parse_args(argv)
    targets = tuple(args.targets.split(","))
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        ap.error(f"unknown kind {unknown[0] if unknown else ''!r}; choose from {', '.join(KINDS)}")
    results = []
    with tempfile.TemporaryDirectory(prefix="snnhw-diff-") as tmp:
        for i in range(args.networks):
            kind = kinds[i % len(kinds)]
            res = run_network(args.seed + i, kind, args.steps, targets, Path(tmp) / f"net{i}")
            print(f"net {i:3d} {kind:11s} " + "  ".join(f"{t}: {r['outcome']}" + (f" ({r['reason']})"
                  if r["outcome"] in ("refused", "error") else f" {r['differing']}" if r["outcome"] == "DIFFERENT" else "")
                  for t, r in res.items()), flush=True)
            results.append(res)
    summary = tally(results)
    for t, c in summary["counts"].items():
        print(f"{t}: accepted-equal {c['equal']}, refused {c['refused']}, accepted-different {c['DIFFERENT']}, "
              f"errors {c['error']}")
    lay = summary["loihi_layers"]
    total = max(1, lay["intel"] + lay["microcode"])
    if "loihi" in targets:
        print(f"loihi layers: {lay['intel']} on Intel's Lava LIF ({lay['intel'] / total:.0%}), "
              f"{lay['microcode']} on snnhw's MicrocodeLIF ({lay['microcode'] / total:.0%})")
    return summary


if __name__ == "__main__":
    main()
