"""`snnhw report` and the mapping: counts match `snnhw run`, the page renders in Chromium."""
from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from conftest import run_cli
from snnhw.compiler.mapping import map_graph
from snnhw.errors import UnsupportedError
from snnhw.ir import LIF, Dense, Graph, Input
from snnhw.targets import load
from strategies import LOIHI_ACC, LOIHI_FORMAT


@pytest.fixture(scope="module")
def loihi_build(digits_model, tmp_path_factory):
    d = tmp_path_factory.mktemp("rep")
    rc, _, se = run_cli("compile", digits_model["pt"], "--arch", digits_model["arch"], "--target", "loihi",
                        "--calib", digits_model["x"], "-o", d / "build")
    assert rc == 0, se
    np.save(d / "x.npy", np.load(digits_model["x"])[:, :20])
    return d


def test_report_counts_equal_run_output(loihi_build):
    d = loihi_build
    rc, _, se = run_cli("report", d / "build", "--input", d / "x.npy", "-o", d / "report")
    assert rc == 0, se
    rc, _, se = run_cli("run", d / "build", "--target", "emu", "--input", d / "x.npy", "-o", d / "out.npz")
    assert rc == 0, se
    rep = json.loads((d / "report" / "report.json").read_text())
    out = np.load(d / "out.npz")
    c = rep["counts"]
    for layer in ("lif1", "lif2"):
        assert c["layers"][layer]["spikes"] == int(out[layer].sum())
    assert c["counts"]["spikes"] == int(out["lif1"].sum() + out["lif2"].sum())
    # every lif1 spike drives the 10 output neurons through nonzero weights (recount from the IR)
    from snnhw.build import load_build
    g, _ = load_build(d / "build")
    outdeg = (g.node("fc2").weight != 0).sum(axis=0)
    assert c["layers"]["lif1"]["synaptic_ops"] == int(out["lif1"].sum(axis=(0, 1)) @ outdeg)
    e = c["energy"]
    assert e["total_uj"] == pytest.approx(sum(e["breakdown_uj"].values()))
    assert e["breakdown_uj"]["synaptic_ops"] == pytest.approx(c["counts"]["synaptic_ops"] * 23.6e-6)
    assert "Davies" in e["source"] and "Horowitz" in c["ann_reference"]["source"]
    assert rep["mapping"]["summary"]["cores"] == 2


def test_report_renders_in_headless_chromium(loihi_build, tmp_path):
    assert shutil.which("chromium"), "Debian's chromium is missing: `make install` installs it"
    from PIL import Image
    d = loihi_build
    if not (d / "report" / "report.html").exists():
        rc, _, se = run_cli("report", d / "build", "--input", d / "x.npy", "-o", d / "report")
        assert rc == 0, se
    html = (d / "report" / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') >= 7 and "http" not in html.split("<body>")[1].split("Source")[0]
    shot = tmp_path / "page.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,2400",
                    (d / "report" / "report.html").as_uri()], capture_output=True, timeout=120, check=True)
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    # the plots are drawn: many pixels of matplotlib's blue (31,119,180) and orange (255,127,14)
    blue = (np.abs(img - [31, 119, 180]).sum(axis=2) < 30).sum()
    orange = (np.abs(img - [255, 127, 14]).sum(axis=2) < 30).sum()
    assert blue > 5000 and orange > 2000, (blue, orange)


def _chain(sizes, fan):
    nodes = [Input("in", (fan,), 1, 1.0)]
    prev, k = "in", fan
    for i, n in enumerate(sizes):
        nodes.append(Dense(f"fc{i}", prev, np.broadcast_to(np.int8(1), (n, k)), None, 1, LOIHI_ACC))
        nodes.append(LIF(f"l{i}", f"fc{i}", (n,), np.array(0), np.array(4096), np.array(64), np.array(0), "zero",
                         "immediate", format=LOIHI_FORMAT))
        prev, k = f"l{i}", n
    return Graph(nodes, kind="fixed", target="loihi").validate()


def test_mapping_splits_large_layers_across_cores_and_chips():
    t = load("loihi")
    m = map_graph(_chain([1000, 10], 784), t)
    per_core = t.chip.synaptic_memory_bits_per_core // (784 * t.numerics.weight_bits)
    assert len(m["layers"]["l0"]) == -(-1000 // per_core)
    ranges = [m["cores"][c]["neurons"] for c in m["layers"]["l0"]]
    assert ranges[0][0] == 0 and ranges[-1][1] == 1000
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    assert all(c["synapse_bits"] <= t.chip.synaptic_memory_bits_per_core for c in m["cores"])
    big = map_graph(_chain([5000, 10], 4000), t)
    assert big["summary"]["chips"] == 2 and big["summary"]["cores"] > t.chip.cores_per_chip
    assert map_graph(_chain([1000, 10], 784), t) == m  # deterministic


def test_mapping_names_an_impossible_layer():
    with pytest.raises(UnsupportedError, match="layer l0: one neuron needs .* cannot be split"):
        map_graph(_chain([2], 200000), load("loihi"))
