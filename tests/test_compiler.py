"""Compiler passes: calibrated quantization, its report, and its warnings and refusals."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from conftest import run_cli

from snnhw.compiler.legalize import legalize
from snnhw.errors import InvalidFileError, SnnhwError, UnsupportedError
from snnhw.ir import LIF, Dense, Graph, Input, NeuronFormat, StateFormat
from snnhw.ir.onnx_io import from_onnx, to_onnx
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
    w[0, 0] = 30.0  # one outlier sets the step of one step per layer: the others keep about 1 bit
    f = compile_graph(_net(w=w, thr=30.0), load("emu"), CompileOptions(weight_bits=4, channel_steps="off"))
    assert any("nonzero weights quantize to 0" in x for x in _warnings(f))
    # per-channel steps (the default where rows lose bits) confine the outlier to its own row
    f = compile_graph(_net(w=w, thr=30.0), load("emu"), CompileOptions(weight_bits=4))
    assert not any("nonzero weights quantize to 0" in x for x in _warnings(f))


ARCH = """
import snntorch as snn
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 10)
        self.lif = snn.Synaptic(alpha=0.5, beta=0.9, init_hidden=True)

    def forward(self, x):
        return self.lif(self.fc(x))
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


# ----------------------------------------------------------------------------- synapse exponent (issue 14.0)
ACC = StateFormat(32, "saturate")


def _rec_neuron(e, thr, w_rec=1, rec_bias=None, shift=0, n=1, w=None, bias=None):
    """Graded input -> Dense -> LIF with a recurrent dense and synapse exponent ``e`` (fixed IR);
    no leak (beta = 4096), zero/immediate reset, input_shift ``shift``."""
    fmt = NeuronFormat(12, "toward_zero", shift, StateFormat(24, "wrap_once"), StateFormat(24, "saturate"), 1.0)
    w = np.eye(n, dtype=np.int64) if w is None else w
    rec = np.full((n, n), w_rec, np.int64) if np.ndim(w_rec) == 0 else w_rec
    return Graph([Input("in", (w.shape[1],), 8, 1.0), Dense("d", "in", w, bias, 0, ACC),
                  LIF("n", "d", (n,), np.array(0), np.array(4096), np.array(thr), np.array(0), "zero", "immediate",
                      rec_weight=rec, rec_bias=rec_bias, rec_acc=ACC, format=fmt, rec_weight_exp=e)],
                 kind="fixed").validate()


def _trace1(g, inputs):
    r = run(g, np.array(inputs, np.float32).reshape(-1, 1, 1), record_state=True)
    return r.spikes["n"][:, 0, 0].tolist(), r.voltage["n"][:, 0, 0].tolist()


def test_recurrent_exponent_traces_by_hand():
    # e = 2: a + (r << 2); input 3 per step, self-weight 1, threshold 10
    # v: 3, 6, 9, 12>10 spike -> 0, then 3 + (1 << 2) = 7, 10 (not > 10), 13 spike -> 0, 7
    assert _trace1(_rec_neuron(2, 10), [3] * 8) == ([0, 0, 0, 1, 0, 0, 1, 0], [3, 6, 9, 0, 7, 10, 0, 7])
    # e = -2: (a << 2) + r; threshold 40: 12, 24, 36, 48 spike -> 0, 12 + 1 = 13, 25, 37, 49 spike -> 0
    assert _trace1(_rec_neuron(-2, 40), [3] * 8) == ([0, 0, 0, 1, 0, 0, 0, 1], [12, 24, 36, 0, 13, 25, 37, 0])
    # e = 0 is the plain sum: 3 + 1 = 4 after the first spike
    assert _trace1(_rec_neuron(0, 10), [3] * 5)[1] == [3, 6, 9, 0, 4]
    # the recurrent bias travels with the recurrent sum: r = 1*s + 1, shifted by 2, then << input_shift 1
    s, v = _trace1(_rec_neuron(2, 100, rec_bias=np.array([1]), shift=1), [3] * 3)
    assert v == [(3 + 4) * 2, 28, 42]


@pytest.mark.parametrize("e", [3, -2])
def test_recurrent_exponent_equals_prescaled_weights(e):
    """Differential: the exponent path of the emulator against the plain path on weights multiplied
    by 2^|e| up front (the same integers, computed without the shift)."""
    rng = np.random.default_rng(abs(e))
    n, m = 12, 6
    w = rng.integers(-20, 21, (n, m))
    rec = rng.integers(-15, 16, (n, n))
    bias, rec_bias = rng.integers(-5, 6, n), rng.integers(-3, 4, n)
    with_exp = _rec_neuron(e, 300, rec, rec_bias, shift=2, n=n, w=w, bias=bias)
    k = 1 << abs(e)
    plain = _rec_neuron(0, 300, rec * k if e > 0 else rec, rec_bias * k if e > 0 else rec_bias, shift=2, n=n,
                        w=w * k if e < 0 else w, bias=bias * k if e < 0 else bias)
    x = rng.integers(-40, 41, (30, 4, m)).astype(np.float32)
    a, b = run(with_exp, x, record_state=True), run(plain, x, record_state=True)
    assert a.spikes["n"].sum() > 10
    assert np.array_equal(a.spikes["n"], b.spikes["n"]) and np.array_equal(a.voltage["n"], b.voltage["n"])
    # the graph's synapse-bias helper shifts each bias with its path
    assert np.array_equal(with_exp.synapse_bias(with_exp.node("n")), plain.synapse_bias(plain.node("n")))


def test_recurrent_exponent_in_the_ir_file_and_its_validation():
    g = _rec_neuron(5, 10)
    assert from_onnx(to_onnx(g)).node("n").rec_weight_exp == 5
    plain = to_onnx(_rec_neuron(0, 10))
    assert not any(a.name == "rec_weight_exp" for a in plain.graph.node[-1].attribute)  # old files unchanged
    with pytest.raises(InvalidFileError, match="rec_weight_exp 17 outside -16..16"):
        _rec_neuron(17, 10)
    with pytest.raises(InvalidFileError, match="needs a fixed IR population with recurrent weights"):
        replace(_net(), nodes=[*_net().nodes[:2], replace(_net().nodes[2], rec_weight_exp=1)]).validate()


@pytest.mark.parametrize("target", ["loihi", "fpga"])
def test_targets_without_synapse_exponents_refuse_one(target):
    t = load(target)
    assert not t.features.synapse_exponent and load("emu").features.synapse_exponent
    g = _rec_neuron(3, 64)
    with pytest.raises(UnsupportedError, match=f"layer n: .*rec_weight_exp.* is not supported on {target}"):
        legalize(g, t)


def _digits_rleaky(digits_model, rec_std=0.1):
    """The digits MLP (analog input) with an all-to-all recurrent dense on its hidden layer whose
    weights are much larger than the input weights times the pixel scale (the tutorial's RLeaky)."""
    g = load_model(digits_model["pt"], arch=digits_model["arch"])
    g.node("lif1").rec_weight = np.random.default_rng(0).normal(0, rec_std, (100, 100)).astype(np.float32)
    return g.validate()


def test_recurrent_and_input_weights_keep_their_own_scales(digits_model):
    g = _digits_rleaky(digits_model)
    x = np.load(digits_model["x"])
    emu = load("emu")
    f = compile_graph(g, emu, CompileOptions(input_bits=8, input_max=1.0, calibration=x))
    lif1 = f.node("lif1")
    assert lif1.rec_weight_exp > 0
    assert np.abs(f.node("fc1").weight).max() >= 32 and np.abs(lif1.rec_weight).max() >= 64
    rep = quantization_report(g, f, x)
    assert rep["layers"]["lif1"]["rec_weight"]["max_rel_error"] < 0.01
    assert rep["layers"]["lif1"]["rec_weight_exp"] == lif1.rec_weight_exp
    # one shared step (a target without synapse exponents): the input gives up bits, said so
    shared = replace(emu, features=replace(emu.features, synapse_exponent=False))
    s = compile_graph(g, shared, CompileOptions(input_bits=8, input_max=1.0, calibration=x))
    assert s.node("lif1").rec_weight_exp == 0
    assert s.input.scale > f.input.scale
    assert any(w.startswith("input: graded input keeps") and "recurrent weights" in w for w in _warnings(s))
    # the float IR, the exponent build and the shared build on the same digits: spike agreement of lif1
    ref = run(g, x).spikes["lif1"]
    match = lambda fixed: float((run(fixed, x).spikes["lif1"] == ref).mean())
    assert match(f) > match(s)
