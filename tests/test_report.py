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
    # every synaptic event is counted at the population it reaches: the nonzero (quantized) input
    # values drive fc1's nonzero weights into lif1, every lif1 spike fc2's into lif2 (recount from the IR)
    from snnhw.build import load_build
    from snnhw.semantics.inputs import quantize_input
    g, _ = load_build(d / "build")
    x_int = quantize_input(g, np.load(d / "x.npy"))
    from_input = int(np.count_nonzero(x_int, axis=(0, 1)) @ (g.node("fc1").weight != 0).sum(axis=0))
    from_lif1 = int(out["lif1"].sum(axis=(0, 1)) @ (g.node("fc2").weight != 0).sum(axis=0))
    assert c["layers"]["lif1"]["synaptic_ops"] == c["layers"]["lif1"]["synaptic_ops_input"] == from_input
    assert c["layers"]["lif2"]["synaptic_ops"] == from_lif1 and c["layers"]["lif2"]["synaptic_ops_input"] == 0
    assert c["counts"]["synaptic_ops"] == from_input + from_lif1
    assert c["counts"]["synaptic_ops_graded"] == from_input > 10 * from_lif1  # graded (direct-encoded) input
    e = c["energy"]
    assert e["total_uj"] == pytest.approx(sum(e["breakdown_uj"].values()))
    t = load("loihi").energy
    assert e["breakdown_uj"]["synaptic_ops"] == pytest.approx(
        (from_lif1 * t["synaptic_op_pj"] + from_input * t["graded_synaptic_op_pj"]) * 1e-6)
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


def test_counts_match_the_neurobench_package(digits_model, tmp_path):
    """NeuroBench 2.3's own metrics, run on the deployed network as snntorch executes it (the emu
    build's NIR export through snntorch's import_from_nir, spike for spike the deployed one,
    tests/test_export.py), equal the report's NeuroBench figures on the same 20 digits."""
    import nir
    import torch
    from neurobench.metrics.manager.static_manager import StaticMetricManager
    from neurobench.metrics.manager.workload_manager import WorkloadMetricManager
    from neurobench.metrics.static import ConnectionSparsity
    from neurobench.metrics.workload import ActivationSparsity, SynapticOperations
    from neurobench.models import SNNTorchModel
    from snntorch.import_nir import import_from_nir
    from snnhw.build import load_build
    from snnhw.cli import main
    from snnhw.nir_export import write
    from snnhw.report import build_report

    assert main(["compile", str(digits_model["pt"]), "--arch", digits_model["arch"], "--target", "emu",
                 "--calib", str(digits_model["x"]), "-o", str(tmp_path / "build")]) == 0
    write(load_build(tmp_path / "build")[0], tmp_path / "d.nir")
    x = np.load(digits_model["x"])[:, :20]
    ours = build_report(tmp_path / "build", x)[0]["counts"]["neurobench"]

    class PerStep(torch.nn.Module):  # NeuroBench's SNNTorchModel calls net(x_t) -> (spikes, state)
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, xt):
            return self.net(xt)[0], None

    model = SNNTorchModel(PerStep(import_from_nir(nir.read(tmp_path / "d.nir"))))
    static, workload = StaticMetricManager([ConnectionSparsity]), WorkloadMetricManager([SynapticOperations,
                                                                                          ActivationSparsity])
    workload.register_hooks(model)
    theirs = static.run_metrics(model)
    workload.initialize_metrics()
    batch = (torch.from_numpy(x).transpose(0, 1), torch.zeros(20))  # NeuroBench data is [B, T, ...]
    workload.run_metrics(model, model(batch[0]), batch, 20, 20)
    theirs.update(workload.results)
    syn = theirs["SynapticOperations"]
    assert syn["Effective_MACs"] == ours["effective_macs_per_sample"] > 0  # the graded input layer
    assert syn["Effective_ACs"] == ours["effective_acs_per_sample"] > 0    # the spiking layer
    assert syn["Dense"] == ours["dense_per_sample"]
    assert theirs["ActivationSparsity"] == pytest.approx(ours["activation_sparsity"], abs=1e-12)
    assert theirs["ConnectionSparsity"] == round(ours["connection_sparsity"], 4)


@pytest.mark.parametrize("cin,cout,groups,k,stride,pad,dil,h", [(2, 4, 1, 3, 1, 1, 1, 7), (4, 6, 2, 3, 2, 0, 1, 9),
                                                                (3, 3, 3, 2, 2, 1, 2, 8), (1, 2, 1, 5, 3, 2, 1, 11)])
def test_conv_out_degree_equals_probing_every_input_pixel(cin, cout, groups, k, stride, pad, dil, h):
    """NeuroBench counts a conv's operations per input pixel: the closed form equals running the
    emulator's convolution on one unit input per pixel."""
    from snnhw.benchmark_counts import _out_degree
    from snnhw.ir import Conv2d
    from snnhw.targets.emu.emulator import _conv
    w = np.random.default_rng(cin * h).integers(-1, 2, (cout, cin // groups, k, k)).astype(np.int8)
    n = Conv2d("c", "i", w, (cin, h, h), None, (stride, stride), (pad, pad), (dil, dil), groups)
    size = cin * h * h
    for ones in (False, True):
        probe = Conv2d("c", "i", np.ones(w.shape) if ones else (w != 0).astype(float), n.in_shape, None, n.stride,
                       n.padding, n.dilation, groups)
        y, _ = _conv(probe, np.eye(size).reshape(size, *n.in_shape), False, 1.0)
        np.testing.assert_array_equal(_out_degree(n, ones), y.reshape(size, -1).sum(axis=1))
