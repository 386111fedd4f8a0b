"""Compiler passes: calibrated quantization, its report, and its warnings and refusals."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_cli

from snnhw.errors import SnnhwError
from snnhw.ir import LIF, Dense, Graph, Input
from snnhw.compiler.pipeline import CompileOptions, compile_graph
from snnhw.compiler.quant_report import quantization_report
from snnhw.frontends import load_model
from snnhw.targets import load
from snnhw.targets.emu.emulator import run


def test_calibration_keeps_states_in_range_and_reports_it(digits_model):
    g = load_model(digits_model["pt"], arch=digits_model["arch"])
    x = np.load(digits_model["x"])
    emu = load("emu")
    plain = compile_graph(g, emu, CompileOptions(input_bits=8, input_max=1.0))
    calibrated = compile_graph(g, emu, CompileOptions(input_bits=8, input_max=1.0, calibration=x))
    over_plain = run(plain, x).total_overflow
    over_cal = run(calibrated, x).total_overflow
    assert over_cal <= over_plain
    rep = quantization_report(g, calibrated, x)
    assert rep["calibrated"]
    for name in ("lif1", "lif2"):
        c = rep["layers"][name]["calibration"]
        assert c["float_max_abs_voltage"] > 0
        # predicted overflow from the float ranges agrees with what the fixed point did
        observed = any(k.startswith("voltage") for k in c["observed_overflow"])
        assert c["predicted_overflow"]["voltage"] == observed
    assert rep["layers"]["fc1"]["weight"]["max_rel_error"] < 0.05


# ----------------------------------------------------------------------------- never silent (issue 11.6)
def _net(w=None, bias=None, beta=0.9, thr=1.0, alpha=0.0, reset="zero"):
    """8 inputs -> Dense -> 10 LIF neurons (float IR)."""
    w = np.random.default_rng(0).normal(0, 0.3, (10, 8)).astype(np.float32) if w is None else w
    s = lambda v: np.array(v, np.float32)
    return Graph([Input("input", (8,)), Dense("fc", "input", w, bias),
                  LIF("lif", "fc", (10,), s(alpha), s(beta), s(thr), s(0.0), reset, "immediate")]).validate()


def _warnings(fixed):
    return json.loads(fixed.meta["quantization_warnings"])


def test_small_bias_is_kept_in_the_population_bias():
    # 0.002 is a quarter of the weight step (0.9/127): it used to round to 0
    g = _net(bias=np.full(10, 0.002, np.float32))
    f = compile_graph(g, load("emu"), CompileOptions())
    assert f.node("fc").bias is None
    lif = f.node("lif")
    assert np.allclose(np.asarray(lif.bias) * lif.format.state_scale, 0.002, rtol=0.05)
    rep = quantization_report(g, f)
    assert rep["layers"]["lif"]["bias"]["max_rel_error"] < 0.05
    assert rep["layers"]["fc"]["bias_float"] == pytest.approx([0.002, 0.002])
    assert rep["warnings"] == []


def test_a_bias_that_vanishes_is_warned():
    # Synaptic (alpha > 0): the bias stays in the synapse, in weight steps, where 0.002 rounds to 0
    g = _net(bias=np.full(10, 0.002, np.float32), alpha=0.5)
    f = compile_graph(g, load("emu"), CompileOptions())
    assert not np.any(f.node("fc").bias)
    assert any("10 of 10 biases quantize to 0" in w for w in _warnings(f))


def test_wide_graded_input_keeps_the_weights():
    # 16-bit input used to force the weight step up to the threshold range: weight_max_int 3
    g = _net()
    f = compile_graph(g, load("emu"), CompileOptions(input_bits=16))
    assert np.abs(f.node("fc").weight).max() >= 64
    (w,) = _warnings(f)
    kept = int(w.split("keeps ")[1].split(" ")[0])
    assert w.startswith(f"input: graded input keeps {kept} of its 16 bits") and "threshold range" in w
    assert 8 <= kept < 16 and f.input.scale == 2.0 ** -(kept - 2)  # max|x| = 1 -> 2^(kept-2)
    # the default 8-bit input loses nothing and warns about nothing
    assert _warnings(compile_graph(g, load("emu"), CompileOptions(input_bits=8))) == []


def test_calibration_on_overflowing_states_keeps_weight_bits_and_warns():
    # no reset, no leak, strong positive drive: the float membrane grows to ~4e4 in 1000 steps
    w = np.abs(np.random.default_rng(1).normal(0, 3, (10, 8))).astype(np.float32)
    g = _net(w=w, beta=1.0, reset="none")
    x = np.ones((1000, 2, 8), np.float32)
    f = compile_graph(g, load("emu"), CompileOptions(input_bits=8, calibration=x))
    assert np.abs(f.node("fc").weight).max() >= 4  # used to be 0: every weight gone
    rep = quantization_report(g, f, x)
    assert rep["layers"]["fc"]["weight_effective_bits"] >= 4
    assert any("calibration predicts voltage overflow" in w for w in rep["warnings"])
    assert rep["layers"]["lif"]["calibration"]["predicted_overflow"]["voltage"]


def test_a_layer_quantization_would_kill_is_refused():
    with pytest.raises(SnnhwError, match="every weight quantizes to 0 .*threshold range.*retrain with a lower threshold"):
        compile_graph(_net(thr=1e5), load("emu"), CompileOptions())
    # few weight bits: every weight rounds to 0 or 1 and no neuron can reach its threshold any more
    w = np.full((10, 8), 0.2, np.float32)
    w[:, 0] = 0.5
    with pytest.raises(SnnhwError, match="layer lif: no neuron can reach its threshold.*--weight-bits"):
        compile_graph(_net(w=w, thr=3.0, beta=0.5), load("emu"), CompileOptions(weight_bits=2))
    # a float layer that can fire keeps firing at 8 bits
    compile_graph(_net(w=w, thr=3.0, beta=0.5), load("emu"), CompileOptions())


def test_weights_with_few_effective_bits_are_warned():
    w = np.random.default_rng(0).normal(0, 0.3, (10, 8)).astype(np.float32)
    w[0, 0] = 30.0  # one outlier sets the step: the others keep about 1 bit
    f = compile_graph(_net(w=w, thr=30.0), load("emu"), CompileOptions(weight_bits=4))
    assert any("nonzero weights quantize to 0" in x for x in _warnings(f))


ARCH = """
import snntorch as snn
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 10)
        self.lif = snn.Synaptic(alpha=0.5, beta=0.9)

    def forward(self, x):
        syn, mem = self.lif.init_synaptic()
        spk, syn, mem = self.lif(self.fc(x), syn, mem)
        return spk
"""


def test_compile_prints_the_warnings_and_lists_biases(tmp_path):
    import torch
    (tmp_path / "arch.py").write_text(ARCH)
    ns: dict = {}
    exec(ARCH, ns)
    net = ns["Net"]()
    with torch.no_grad():
        net.fc.weight.copy_(torch.from_numpy(np.random.default_rng(0).normal(0, 0.3, (10, 8)).astype(np.float32)))
        net.fc.bias.fill_(0.002)
    torch.save(net.state_dict(), tmp_path / "m.pt")
    rc, so, se = run_cli("compile", tmp_path / "m.pt", "--arch", f"{tmp_path / 'arch.py'}:Net", "-o", tmp_path / "b")
    assert rc == 0, se
    assert "warning: layer fc: 10 of 10 biases quantize to 0" in se
    q = json.loads((tmp_path / "b" / "quantization.json").read_text())
    assert q["warnings"] == [line[len("warning: "):] for line in se.splitlines() if line.startswith("warning: ")]
    assert q["layers"]["fc"]["bias_float"] == pytest.approx([0.002, 0.002])
    assert q["layers"]["fc"]["bias_fixed"] == [0.0, 0.0]
    assert q["layers"]["lif"]["bias_fixed"] == [0.0, 0.0]
