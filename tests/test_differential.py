"""Differential test in CI: random snntorch networks through the CLI on emu, loihi and fpga.

benchmarks/differential.py builds each network (Leaky with snntorch's defaults, Synaptic with a
Linear bias, RLeaky one-to-one, RSynaptic all-to-all, a conv net, a conv net with MaxPool2d on its
spikes (an OR layer on loihi and fpga); random reset mechanisms and
timings, per-neuron beta/threshold, spike or analog input), compiles it with
``python -m snnhw.cli compile`` and runs every accepted build on its target and on emu, comparing
every array. Accepted-and-different must never happen; the counts are printed (``pytest -s``).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import differential  # noqa: E402

pytestmark = pytest.mark.lava

# (seed, kind, targets): small nets, 10 steps; fpga on two of them (its Icarus runs are slower)
CASES = [(0, "leaky", ("loihi", "fpga")), (1, "synaptic", ("loihi",)), (2, "rleaky_one", ("loihi",)),
         (3, "rsynaptic", ("loihi", "fpga")), (4, "conv", ("loihi",)), (5, "conv_maxpool", ("loihi", "fpga"))]


def test_random_snntorch_networks_are_refused_or_equal_on_every_target(tmp_path):
    results = [differential.run_network(seed, kind, 10, targets, tmp_path / f"net{seed}")
               for seed, kind, targets in CASES]
    summary = differential.tally(results)
    for t, c in summary["counts"].items():
        print(f"{t}: accepted-equal {c['equal']}, refused {c['refused']}, accepted-different {c['DIFFERENT']}, "
              f"errors {c['error']}")
    print(f"loihi layers: {summary['loihi_layers']}")
    bad = [(kind, t, r) for (seed, kind, _), res in zip(CASES, results) for t, r in res.items()
           if r["outcome"] in ("DIFFERENT", "error")]
    assert not bad, bad
    assert summary["counts"]["loihi"]["equal"] == len(CASES)  # every kind deploys on loihi
    or_layers = sum(kind == "conv_maxpool" for _, kind, _ in CASES)  # one more population: the pool's OR layer
    assert summary["loihi_layers"]["intel"] + summary["loihi_layers"]["microcode"] == 2 * len(CASES) + or_layers
