"""``lava_plan.json``: which Lava process runs each population of a loihi build, and why.

For every population: ``model`` (``intel``: lava.proc.lif.process.LIF, PyLifModelBitAcc;
``microcode``: snnhw's MicrocodeLIF, targets/loihi/microcode_lif.py), ``why_not_intel`` (the
features Intel's LIF cannot express), whether synapse biases were moved into the voltage bias,
and the range proof's bounds (targets/loihi/ranges.py) with the register width they need.
"""
from __future__ import annotations

from pathlib import Path

from snnhw.build import write_json
from snnhw.ir import Graph
from snnhw.targets import load as load_target
from snnhw.targets.loihi import ranges

PLAN_FILE = "lava_plan.json"
MODELS = {ranges.INTEL: "Intel's lava.proc.lif LIF (PyLifModelBitAcc)",
          ranges.MICROCODE: "snnhw's MicrocodeLIF (a Loihi 2 programmable-neuron model)"}


def plan(graph: Graph) -> dict:
    plans = ranges.plan(graph, load_target("loihi"))[0]
    layers = {name: dict(lp.as_dict(), process=MODELS[lp.model]) for name, lp in plans.items()}
    n_intel = sum(lp.model == ranges.INTEL for lp in plans.values())
    return {"layers": layers, "summary": {"intel": n_intel, "microcode": len(plans) - n_intel}}


def write(graph: Graph, build_dir: Path) -> str:
    write_json(Path(build_dir) / PLAN_FILE, plan(graph))
    return PLAN_FILE


def notes(graph: Graph) -> list[str]:
    p = plan(graph)
    out = [f"{PLAN_FILE}: {p['summary']['intel']} layer(s) on Intel's Lava LIF, "
           f"{p['summary']['microcode']} on snnhw's MicrocodeLIF"]
    for name, lp in p["layers"].items():
        if lp["model"] == ranges.MICROCODE:
            out.append(f"layer {name} runs on MicrocodeLIF: {'; '.join(lp['why_not_intel'])}")
    return out
