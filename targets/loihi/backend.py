"""Backend of the ``loihi`` target: Lava fixed_pt simulation in a supervised worker process.

``BACKEND.run`` executes the build's hash-checked model.onnx in Lava; the overflow counts it reports
are the ones the Lava worker derives from Lava's own recorded states (``overflow_source = "lava states"``),
never the emulator's.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from snnhw.build import read_manifest
from snnhw.compiler.legalize import legalize
from snnhw.errors import SnnhwError
from snnhw.safety import with_index_names
from snnhw.ir import Graph, save
from snnhw.semantics import RunResult, quantize_input
from snnhw.supervise import run_supervised
from snnhw.targets.contract import load_fixed, refuse_foreign_build, verified_file
from snnhw.targets.description import TargetDescription, load
from snnhw.targets.loihi import netx, plan_file

TIMEOUT_BASE_S = 60.0
TIMEOUT_PER_SAMPLE_STEP_S = 0.05


def emit(graph: Graph, build_dir: Path) -> list[str]:
    """``lava_plan.json`` (which Lava process runs each layer, and the proven bounds) and the netx
    HDF5 file for Loihi 2 deployment, when netx can express the network."""
    files = [plan_file.write(graph, Path(build_dir))]
    if netx.problems(graph):
        return files
    netx.write(graph, Path(build_dir) / netx.NETX_FILE)
    return files + [netx.NETX_FILE]


def notes(graph: Graph) -> list[str]:
    """What the user should know about this build's Loihi artifacts: which layers run on Intel's
    Lava models and which on snnhw's MicrocodeLIF, and whether network.net was written."""
    out = plan_file.notes(graph)
    found = netx.problems(graph)
    if not found:
        return out + [f"{netx.NETX_FILE}: lava-dl netx file for Loihi 2 deployment"]
    return out + [f"no {netx.NETX_FILE}: {p}; the Lava process graph still runs (snnhw run --target loihi)"
                  for p in found]


def _run_worker(graph: Graph, x_int: np.ndarray, options: dict, timeout: float | None) -> dict:
    """Run one job in ``python -m snnhw.targets.loihi.worker`` in its own process group."""
    T, B = x_int.shape[:2]
    timeout = timeout or float(os.environ.get("SNNHW_LAVA_TIMEOUT", TIMEOUT_BASE_S + TIMEOUT_PER_SAMPLE_STEP_S * T * B))
    with tempfile.TemporaryDirectory(prefix="snnhw-lava-") as tmp:
        job = Path(tmp)
        indexed, names = with_index_names(graph)  # the job holds no text from the model (docs/security.md)
        save(indexed, job / "model.onnx")
        np.save(job / "input.npy", x_int.astype(np.int64))
        (job / "options.json").write_text(json.dumps(options))
        done = run_supervised([sys.executable, "-m", "snnhw.targets.loihi.worker", str(job)], timeout,
                              "the Lava simulation", "run fewer timesteps or samples, or raise SNNHW_LAVA_TIMEOUT")
        if done.returncode != 0:
            err_file = job / "error.txt"
            detail = err_file.read_text().splitlines()[0] if err_file.exists() else \
                (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
            raise SnnhwError(f"the Lava simulation failed: {detail}")
        out: dict = {}
        with np.load(job / "result.npz") as data:
            for key in data.files:
                kind, name = key.split("/", 1)
                out.setdefault(kind, {})[names.get(name, name)] = data[key]
        overflow_file = job / "overflow.json"
        if overflow_file.exists():
            out["overflow"] = {names.get(node, node): counts
                               for node, counts in json.loads(overflow_file.read_text()).items()}
        return out


def simulate_in_worker(graph: Graph, x_int: np.ndarray, record_state: bool = False,
                       timeout: float | None = None) -> dict:
    """Run the Lava process graph of ``graph``; return {kind: {layer: array}} (spikes, voltage, current)
    and ``overflow``: {node: {key: count}} as Lava's states showed them."""
    return _run_worker(graph, x_int, {"record_state": record_state}, timeout)


def simulate_netx_in_worker(graph: Graph, netx_path: Path, x_int: np.ndarray, timeout: float | None = None) -> np.ndarray:
    """Run a netx file with lava-dl's loader; return the output layer's spikes ``[T, B, *shape]``."""
    opts = {"netx": str(Path(netx_path).resolve()), "graded": graph.input.bits > 1}
    return _run_worker(graph, x_int, opts, timeout)["spikes"]["output"]


class LoihiBackend:
    """The ``BACKEND`` of ``loihi`` (see :mod:`snnhw.targets.contract`)."""

    def __init__(self, target: TargetDescription):
        self.target = target

    def check(self, graph: Graph) -> None:
        refuse_foreign_build(graph, self.target)
        legalize(graph, self.target)

    def emit(self, graph: Graph, build_dir: Path, reports: bool = True) -> list[str]:
        self.check(graph)
        return emit(graph, build_dir)

    def run(self, build_dir: Path, x, record_state: bool = False) -> RunResult:
        """Run the build's hash-checked model.onnx in Lava: spikes (and states, learned weights) from
        Lava; overflow counts as Lava's own recorded states showed them (overflow.py), plus the input
        saturation of the host's input quantization. A build that holds network.net (the Loihi 2
        deployment file) also runs it, hash-checked, with lava-dl's netx loader on the same input,
        and is refused unless its output spikes equal the process graph's: the file that deploys is
        the file that ran."""
        graph = load_fixed(build_dir)
        self.check(graph)
        res = RunResult(overflow_source="lava states")
        x_int = quantize_input(graph, x, res)
        lava = simulate_in_worker(graph, x_int, record_state)
        if netx.NETX_FILE in read_manifest(build_dir)["files"]:
            deployed = simulate_netx_in_worker(graph, verified_file(build_dir, netx.NETX_FILE), x_int)
            if not np.array_equal(deployed, lava["spikes"][graph.output.name]):
                raise SnnhwError(f"{netx.NETX_FILE} (lava-dl netx) gives other output spikes than the Lava process "
                                 "graph of model.onnx on this input; do not deploy it, and report this build")
        for node, counts in lava.get("overflow", {}).items():
            for key, n in counts.items():
                res.count(node, key, n)
        res.spikes = {k: v.astype(np.int8) for k, v in lava["spikes"].items()}
        res.voltage, res.current = lava.get("voltage", {}), lava.get("current", {})
        res.weights = lava.get("weights", {})
        return res

    def notes(self, graph: Graph) -> list[str]:
        return notes(graph)


BACKEND = LoihiBackend(load("loihi"))
