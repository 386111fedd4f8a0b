"""Compile time and peak memory at scale: quantize + legalize + map + write the IR.

Networks: input 100 -> Dense -> LIF(N), N = 10k, 100k and 1M neurons (1M neurons: 100M
synapses), random float weights, for the loihi target (which maps them onto cores and chips; a
second dense layer reading all 1M neurons would need 1M synapses per neuron, which no core holds). Each size runs in a fresh process; peak memory is that process's max RSS,
including the float IR the frontend would hand over. Goal (issue 4): 1M neurons / 100M synapses
in under 60 s and 4 GB, time about linear in synapses.

    .venv/bin/python benchmarks/compile_scale.py [--sizes 10000,100000,1000000]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

CHILD = r"""
import json, resource, sys, tempfile, time
from pathlib import Path
import numpy as np
from snnhw.compiler.mapping import map_graph
from snnhw.compiler.pipeline import CompileOptions, compile_graph
from snnhw.ir import LIF, Dense, Graph, Input, save
from snnhw.targets import load

n = int(sys.argv[1])
rng = np.random.default_rng(0)
g = Graph([Input("in", (100,)),
           Dense("fc1", "in", rng.standard_normal((n, 100), dtype=np.float32) * 0.1),
           LIF("l1", "fc1", (n,), np.float32(0).reshape(()), np.float32(0.9).reshape(()), np.float32(1).reshape(()),
               np.float32(0).reshape(()), "zero", "immediate")], kind="float")
t0 = time.perf_counter()
target = load("loihi")
fixed = compile_graph(g, target, CompileOptions())
t1 = time.perf_counter()
mapping = map_graph(fixed, target)
t2 = time.perf_counter()
with tempfile.TemporaryDirectory() as d:
    save(fixed, Path(d) / "model.onnx")
    (Path(d) / "mapping.json").write_text(json.dumps(mapping, sort_keys=True))
    size = (Path(d) / "model.onnx").stat().st_size
t3 = time.perf_counter()
print(json.dumps({"neurons": n, "synapses": 100 * n, "passes_s": t1 - t0, "map_s": t2 - t1, "write_s": t3 - t2,
                  "total_s": t3 - t0, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "ir_mb": size / 2**20, "cores": mapping["summary"]["cores"], "chips": mapping["summary"]["chips"]}))
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000,1000000")
    args = ap.parse_args()
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        out = subprocess.run([sys.executable, "-c", CHILD, str(n)], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{'neurons':>9} {'synapses':>11} {'passes s':>9} {'map s':>7} {'write s':>8} {'total s':>8} "
          f"{'peak MB':>8} {'IR MB':>7} {'cores':>6} {'chips':>5} {'us/synapse':>11}")
    for r in rows:
        print(f"{r['neurons']:>9} {r['synapses']:>11} {r['passes_s']:>9.2f} {r['map_s']:>7.2f} {r['write_s']:>8.2f} "
              f"{r['total_s']:>8.2f} {r['peak_mb']:>8.0f} {r['ir_mb']:>7.1f} {r['cores']:>6} {r['chips']:>5} "
              f"{r['total_s'] / r['synapses'] * 1e6:>11.4f}")
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        print(f"time ratio {b['total_s'] / a['total_s']:.1f}x for {b['synapses'] / a['synapses']:.0f}x synapses")


if __name__ == "__main__":
    main()
