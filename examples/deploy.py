"""Shared by the examples: BPTT training of an snntorch model and deployment on snnhw targets.

:func:`train_bptt` trains any model whose ``forward`` returns output spikes ``[T, B, classes]``
(cross-entropy on spike counts). :func:`deploy` imports the trained module into the float IR,
compiles it for each target and runs ``snnhw verify`` (:func:`snnhw.verify.verify`): the deployed
build in the emulator and, for loihi/fpga, the target's own backend (Lava, RTL simulation), which
must equal the emulator bit for bit. Those backends are slow, so each target gets its own number
of samples.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from snnhw.compiler.pipeline import CompileOptions
from snnhw.frontends.snntorch_reference import reference_run
from snnhw.frontends.snntorch_trace import to_ir
from snnhw.targets import load as load_target
from snnhw.verify import Thresholds, verify, verify_build


def train_bptt(make_net: Callable[[], nn.Module], x: np.ndarray, y: np.ndarray, epochs: int, lr: float = 2e-3,
               batch: int = 64, seed: int = 0, time_major: bool = False) -> nn.Module:
    """Build ``make_net()`` with torch seeded by ``seed`` and train it: Adam + cross-entropy on output
    spike counts, backpropagated through time (same seed and data -> same model).

    x: ``[N, *shape]`` static samples, or ``[T, N, *shape]`` with ``time_major``; y: ``[N]`` labels.
    """
    torch.manual_seed(seed)
    net = make_net()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    xt, yt = torch.from_numpy(np.asarray(x, np.float32)), torch.from_numpy(np.asarray(y)).long()
    n = xt.shape[1] if time_major else xt.shape[0]
    gen = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    net.train()
    for _ in range(epochs):
        for idx in torch.randperm(n, generator=gen).split(batch):
            counts = net(xt[:, idx] if time_major else xt[idx]).sum(0)
            loss = loss_fn(counts, yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def spike_count_accuracy(spikes: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of the argmax of output spike counts; spikes ``[T, B, classes]``."""
    return float((np.asarray(spikes).sum(0).argmax(-1) == labels).mean())


def compile_options(x: np.ndarray, target: str) -> CompileOptions:
    """Binary spike input when ``x`` is 0/1, else graded input at the target's input width."""
    if np.all((x == 0) | (x == 1)):
        return CompileOptions(input_bits=1)
    return CompileOptions(input_bits=load_target(target).numerics.input_bits, input_max=float(np.abs(x).max()))


def deploy(net: nn.Module, input_shape: tuple, x: np.ndarray, y: np.ndarray, samples: dict) -> dict:
    """Verify ``net`` on each target of ``samples`` (target -> number of samples of ``x [T, B, *shape]``).

    Returns per target: samples, accuracy of the snntorch model, the float IR and the deployed
    build on those samples, and ``bit_exact``: whether the target's backend equals the emulator bit
    for bit (None on emu, which is the emulator). On emu, ``passed`` says whether every verify
    check held. Each target's build is compiled once (graded input range: the largest |x|; no
    state calibration); loihi and fpga then score it one sample per call: Lava runs one sample at a
    time anyway, and the fpga testbench mis-numbers spikes in some multi-sample runs (an
    IndexError in targets/fpga/simulate.py). A target that refuses the model gets
    ``{"refused": message}``.
    """
    float_g = to_ir(net, tuple(input_shape), name=type(net).__name__)
    out = {}
    with tempfile.TemporaryDirectory(prefix="snnhw-deploy-") as builds:
        for target, n in samples.items():
            chunks = [slice(0, n)] if target == "emu" else [slice(i, i + 1) for i in range(n)]
            c = chunks[0]
            first = verify(float_g, x[:, c], {target: compile_options(x, target)}, Thresholds(), y[c],
                           reference_run(net, float_g.meta["forward"], x[:, c]), keep_builds=Path(builds))
            if "refused" in first["targets"][target]:
                out[target] = {"refused": first["targets"][target]["refused"]}
                continue
            reports = [first] + [verify_build(float_g, Path(builds) / target, x[:, c], Thresholds(), y[c],
                                              reference_run(net, float_g.meta["forward"], x[:, c]))
                                 for c in chunks[1:]]
            weight = [r["batch"] / n for r in reports]
            mean = lambda get: float(sum(w * get(r) for w, r in zip(weight, reports)))
            out[target] = {"samples": n, "snntorch": mean(lambda r: r["snntorch"]["accuracy"]),
                           "float_ir": mean(lambda r: r["float_ir"]["accuracy"]),
                           "deployed": mean(lambda r: r["targets"][target]["accuracy"])}
            if target == "emu":
                out[target].update(bit_exact=None, passed=reports[0]["passed"])
            else:
                out[target]["bit_exact"] = all(r["targets"][target]["backend"]["bit_exact"] for r in reports)
    return out


def print_deployment(title: str, results: dict) -> None:
    """One line per target: float and deployed accuracy, or the refusal message."""
    print(f"\n{title}")
    for target, r in results.items():
        if "refused" in r:
            print(f"  {target:6s} refused: {r['refused']}")
            continue
        check = {None: f"emulator; verify checks {'passed' if r.get('passed') else 'FAILED'}",
                 True: "backend == emulator bit for bit", False: "BACKEND DIFFERS FROM EMULATOR"}[r["bit_exact"]]
        print(f"  {target:6s} {r['samples']:4d} samples: snntorch {r['snntorch']:.4f}, float IR {r['float_ir']:.4f}, "
              f"deployed {r['deployed']:.4f} ({check})")
