"""Backend of the ``loihi`` target: Lava fixed_pt simulation in a supervised worker process."""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from snnhw.errors import SnnhwError
from snnhw.ir import Graph, save
from snnhw.supervise import run_supervised
from snnhw.semantics import RunResult, quantize_input
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
        save(graph, job / "model.onnx")
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
                out.setdefault(kind, {})[name] = data[key]
        overflow_file = job / "overflow.json"
        if overflow_file.exists():
            out["overflow"] = json.loads(overflow_file.read_text())
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


def run(graph: Graph, x, record_state: bool = False, build_dir: Path | None = None) -> RunResult:
    """Spikes (and states) from Lava; overflow counts as Lava's states showed them (overflow.py),
    plus the input saturation of the host's input quantization."""
    res = RunResult(overflow_source="lava states")
    lava = simulate_in_worker(graph, quantize_input(graph, x, res), record_state)
    for node, counts in lava.get("overflow", {}).items():
        for key, n in counts.items():
            res.count(node, key, n)
    res.spikes = {k: v.astype(np.int8) for k, v in lava["spikes"].items()}
    res.voltage, res.current = lava.get("voltage", {}), lava.get("current", {})
    return res
