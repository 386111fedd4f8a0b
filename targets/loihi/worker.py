"""Run one Lava simulation in its own process: ``python -m snnhw.targets.loihi.worker JOB_DIR``.

JOB_DIR holds ``model.onnx`` (fixed IR), ``input.npy`` (integer input ``[T, B, *shape]``) and
``options.json`` (``record_state``, or ``netx``: the path of a netx file to run with lava-dl's own
loader instead); the worker writes ``result.npz`` (and ``overflow.json``, the observed overflow
counts) or ``error.txt``. The parent (backend.py) runs
it in a new session with a timeout and kills the whole process group afterwards, so Lava's forked
children never outlive a run, even when Lava hangs.
"""
from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

import numpy as np


def main(job: Path) -> int:
    try:
        from snnhw.ir import load
        from snnhw.targets.loihi.lava_sim import simulate, simulate_netx

        x = np.load(job / "input.npy", allow_pickle=False)
        opts = json.loads((job / "options.json").read_text())
        if opts.get("netx"):
            arrays = {"spikes/output": simulate_netx(opts["netx"], x, opts["graded"])}
        else:
            res = simulate(load(job / "model.onnx"), x, record_state=opts.get("record_state", False))
            (job / "overflow.json").write_text(json.dumps(res.pop("overflow")))
            arrays = {f"{kind}/{name}": a for kind, d in res.items() for name, a in d.items()}
        np.savez(job / "result.npz", **arrays)
        return 0
    except BaseException as exc:  # report everything to the parent, which turns it into one message
        (job / "error.txt").write_text(f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}")
        return 3


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
