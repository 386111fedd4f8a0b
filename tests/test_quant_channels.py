"""Per-channel weight steps (compiler/quantize.py channel_gains): each neuron of a Dense-fed layer
gets its own power-of-two weight step, its threshold and bias scaled with it. The fixed network keeps
more bits per row, runs bit-exactly on Lava and the RTL as the emulator runs it, and fine-tuning's
fixed-point forward equals the emulator on it."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from test_finetune import ConvNet, RecurrentNet, _padded, _same

from snnhw.compiler.pipeline import CompileOptions, compile_stages
from snnhw.compiler.quant_report import quantization_report
from snnhw.errors import SnnhwError
from snnhw.finetune import deployment, fixed_forward, param_tensors
from snnhw.frontends.snntorch_trace import to_ir
from snnhw.ir.onnx_io import from_onnx, to_onnx
from snnhw.semantics import quantize_input
from snnhw.targets import load
from snnhw.targets.emu.emulator import run

SPREAD = torch.tensor([2.0 ** -(i % 6) for i in range(16)])  # rows 1, 1/2, ..., 1/32 of the largest


def _spread_net(bias=True) -> RecurrentNet:
    """RecurrentNet whose feed-forward and recurrent rows span 32x in magnitude, one row all zero."""
    torch.manual_seed(0)
    net = RecurrentNet("subtract", True, bias=bias)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(3.0)
        net.rlif.recurrent.weight.mul_(1 / 16)
        net.fc1.weight.mul_(SPREAD[:, None])
        net.fc2.weight.mul_(SPREAD[:, None])  # the same spread as its recurrent rows: one gain per neuron
        net.rlif.recurrent.weight.mul_(SPREAD[:, None])
        net.fc1.weight[5] = 0.0
    return net


def _row_bits(w) -> np.ndarray:
    big = np.abs(np.asarray(w, np.int64)).max(axis=1)
    return np.array([int(b).bit_length() + 1 if b else 0 for b in big])


def _compile(net, target, channel_steps, bits=4):
    t = load(target) if isinstance(target, str) else target
    return compile_stages(to_ir(net, (12,)), t, CompileOptions(input_bits=8, input_max=1.0, weight_bits=bits,
                                                               channel_steps=channel_steps))


def test_rows_of_different_magnitude_keep_their_bits():
    """At 4-bit weights one step per layer leaves the small rows 0-2 effective bits; per-channel
    steps give every nonzero row (feed-forward and recurrent) at least 3, each neuron's threshold in
    float units stays the float threshold, and the all-zero row gains nothing. A target whose
    description has no channel steps builds exactly the one-step-per-layer network."""
    net = _spread_net()
    float_g = to_ir(net, (12,))
    _, per_layer = _compile(net, "emu", "off")
    q, per_channel = _compile(net, "emu", "auto")
    for syn in ("fc1", "fc2"):
        nonzero = np.any(float_g.node(syn).weight != 0, axis=1)
        coarse, fine = _row_bits(per_layer.node(syn).weight), _row_bits(per_channel.node(syn).weight)
        assert coarse[nonzero].min() <= 2 and fine[nonzero].min() >= 3, (syn, coarse, fine)
        assert np.all(fine >= coarse)
    rec_coarse, rec_fine = _row_bits(per_layer.node("rlif").rec_weight), _row_bits(per_channel.node("rlif").rec_weight)
    assert rec_coarse.min() <= 2 and rec_fine.min() >= 3 and np.all(rec_fine >= rec_coarse)
    pop = per_channel.node("syn1")
    assert np.ndim(pop.format.state_scale) == 1 and np.ndim(pop.threshold) == 1
    lsb = np.asarray(pop.format.state_scale)
    np.testing.assert_allclose(pop.threshold * lsb, float(float_g.node("syn1").threshold), rtol=1e-3)
    assert lsb[5] == lsb.max() and per_channel.node("fc1").weight[5].tolist() == [0] * 12  # the zero row: k = 0
    report = quantization_report(float_g, q, None, per_channel)
    assert report["channel_steps"] == "auto" and report["layers"]["syn1"]["channel_steps"]["synapse"] == "fc1"
    assert report["layers"]["syn1"]["channel_steps"]["gain"][1] >= 8
    json.dumps(report)  # what compile writes as quantization.json
    emu = load("emu")
    without = replace(emu, features=replace(emu.features, channel_steps=False))
    _, off = _compile(net, without, "auto")
    for n, m in zip(off.nodes[1:], per_layer.nodes[1:]):
        for k in ("weight", "bias", "threshold", "rec_weight"):
            assert np.array_equal(getattr(n, k, None), getattr(m, k, None)), (n.name, k)
    with pytest.raises(SnnhwError, match="no per-channel weight steps"):
        _compile(net, without, "on")


def test_auto_leaves_a_layer_whose_rows_keep_their_bits_alone():
    """At 8-bit weights the net's rows keep at least 4 effective bits in one step: auto changes
    nothing, on gives the rows that can gain their own steps."""
    torch.manual_seed(0)
    net = RecurrentNet("subtract", True)
    _, auto = _compile(net, "emu", "auto", bits=8)
    _, off = _compile(net, "emu", "off", bits=8)
    assert all(np.ndim(p.format.state_scale) == 0 for p in auto.neurons)
    assert all(np.array_equal(a.threshold, b.threshold) for a, b in zip(auto.neurons, off.neurons))
    _, on = _compile(net, "emu", "on", bits=8)
    assert any(np.ndim(p.format.state_scale) == 1 for p in on.neurons)


def test_conv_populations_keep_one_step_per_layer():
    torch.manual_seed(0)
    _, fixed = compile_stages(to_ir(ConvNet(), (1, 8, 8)), load("emu"),
                              CompileOptions(input_bits=8, input_max=1.0, weight_bits=4, channel_steps="on"))
    assert np.ndim(fixed.node("lif1").format.state_scale) == 0


def test_per_neuron_state_scale_survives_the_file_and_bad_values_are_refused():
    from snnhw.errors import InvalidFileError
    _, fixed = _compile(_spread_net(), "emu", "auto")
    back = from_onnx(to_onnx(fixed))
    for a, b in zip(fixed.neurons, back.neurons):
        assert np.array_equal(a.format.state_scale, b.format.state_scale) and \
            np.ndim(a.format.state_scale) == np.ndim(b.format.state_scale)
    model = to_onnx(fixed)
    node = next(n for n in model.graph.node if n.name == "syn1")
    attr = next(a for a in node.attribute if a.name == "state_scale")
    attr.s = json.dumps([-1.0] * 16).encode()
    with pytest.raises(InvalidFileError, match="state_scale"):
        from_onnx(model)


@pytest.mark.parametrize("target", ["loihi", "fpga"])
def test_channel_steps_run_bit_exactly_on_the_targets(target, tmp_path):
    """Lava (MicrocodeLIF) and the generated RTL (Icarus) equal the emulator in spikes, currents and
    voltages on a per-channel-quantized recurrent net."""
    _, fixed = _compile(_spread_net(bias=target != "loihi"), target, "auto")
    assert np.ndim(fixed.node("syn1").format.state_scale) == 1 and np.ndim(fixed.node("rlif").format.state_scale) == 1
    x = np.random.default_rng(0).random((14, 2, 12)).astype(np.float32)
    xp = _padded(fixed, x)
    ref = run(fixed, xp, record_state=True)
    assert all(s.sum() > 0 for s in ref.spikes.values())
    x_int = quantize_input(fixed, xp).astype(np.int64)
    if target == "loihi":
        from snnhw.targets.loihi.backend import simulate_in_worker
        got = simulate_in_worker(fixed, x_int, record_state=True)
        get = lambda kind, name: got[kind][name]
    else:
        from snnhw.targets.fpga.backend import BACKEND
        from snnhw.targets.fpga.render import write_design
        from snnhw.targets.fpga.simulate import simulate
        plan = BACKEND.plan(fixed)
        files = [tmp_path / f for f in write_design(plan, tmp_path)]
        sim = simulate(plan, files, x_int, trace=True, simulator="icarus")
        get = lambda kind, name: getattr(sim, kind)[name]
    for name in ref.spikes:
        for kind in ("spikes", "voltage", "current"):
            np.testing.assert_array_equal(np.asarray(get(kind, name), np.int64),
                                          getattr(ref, kind)[name].astype(np.int64), err_msg=f"{name} {kind}")


@pytest.mark.parametrize("target", ["emu", "fpga", "loihi"])
def test_finetune_forward_equals_the_emulator_with_channel_steps(target):
    """Fine-tuning quantizes through the compiler, so its fixed-point forward runs the per-channel
    integers exactly as the emulator does, and the gradients reach every weight through them."""
    net = _spread_net(bias=target != "loihi")
    float_g, fixed = deployment(net, (12,), load(target),
                                CompileOptions(input_bits=8, input_max=1.0, weight_bits=4))
    assert np.ndim(fixed.node("syn1").format.state_scale) == 1
    x = np.random.default_rng(1).random((16, 4, 12)).astype(np.float32)
    xp = _padded(fixed, x)
    ref = run(fixed, xp).spikes
    out = fixed_forward(fixed, xp, param_tensors(net, float_g, fixed))
    _same(out, ref)
    out[fixed.output.name].sum().backward()
    assert all(p.grad is not None and torch.any(p.grad != 0) for n, p in net.named_parameters()
               if n.endswith("weight"))


def test_nir_export_carries_the_per_neuron_units(tmp_path):
    """The NIR writer turns each row's integers into floats with that row's unit (recoverable from
    snnhw_weight_lsb), and the float thresholds are the float model's."""
    from snnhw.nir_export import to_nir
    net = _spread_net()
    _, fixed = _compile(net, "emu", "auto")
    graph, _ = to_nir(fixed)
    for syn in ("fc1", "fc2"):
        node = graph.nodes[syn]
        lsb = np.asarray(node.metadata["snnhw_weight_lsb"]).reshape(-1, 1)
        assert np.ptp(lsb) > 0
        np.testing.assert_array_equal(np.round(node.weight / lsb), fixed.node(syn).weight)
    np.testing.assert_allclose(graph.nodes["syn1"].v_threshold, float(net.syn1.threshold), rtol=1e-3)


def test_a_row_whose_gain_a_bound_limits_is_warned():
    """A neuron whose bias already fills bias_max cannot gain: its row of small weights keeps few
    bits, and compile says so (the other rows gain)."""
    net = _spread_net()
    emu = load("emu")
    _, fixed = _compile(net, emu, "auto")
    assert not any("rows keep fewer" in w for w in json.loads(fixed.meta["quantization_warnings"]))
    lsb = float(np.max(fixed.node("syn1").format.state_scale))  # the layer's state unit (row 5 keeps gain 1)
    with torch.no_grad():
        net.fc1.bias[4] = emu.numerics.bias_max * lsb * 0.9  # row 4 (1/16 of the largest) cannot gain
    _, fixed = _compile(net, emu, "auto")
    warned = [w for w in json.loads(fixed.meta["quantization_warnings"]) if "rows keep fewer" in w]
    assert warned and warned[0].startswith("layer fc1: ")


def test_cli_builds_say_which_steps_and_load_back(digits_model, tmp_path):
    """`snnhw compile --channel-steps on|off` write quantization.json saying which; the per-channel
    build loads back (`inspect --json` shows per-neuron state units) and `snnhw run` runs it as the
    emulator runs its fixed IR."""
    from conftest import run_cli
    builds = {}
    for steps in ("on", "off"):
        rc, _, se = run_cli("compile", digits_model["pt"], "--arch", digits_model["arch"], "--weight-bits", "4",
                            "--input-kind", "graded", "--channel-steps", steps, "-o", tmp_path / steps)
        assert rc == 0, se
        builds[steps] = json.loads((tmp_path / steps / "quantization.json").read_text())
        assert builds[steps]["channel_steps"] == steps
    assert "channel_steps" in builds["on"]["layers"]["lif1"] and "channel_steps" not in builds["off"]["layers"]["lif1"]
    rc, so, se = run_cli("inspect", tmp_path / "on", "--json")
    assert rc == 0, se
    lif1 = next(n for n in json.loads(so)["nodes"] if n["name"] == "lif1")
    assert isinstance(lif1["state_lsb"], list) and len(set(lif1["state_lsb"])) > 1
    rc, _, se = run_cli("run", tmp_path / "on", "-i", digits_model["x"], "-o", tmp_path / "out.npz")
    assert rc == 0, se
    from snnhw.build import load_build
    fixed, _ = load_build(tmp_path / "on")
    x = np.load(digits_model["x"])
    ref = run(fixed, _padded(fixed, x)).spikes
    out = np.load(tmp_path / "out.npz")
    for name in ("lif1", "lif2"):
        np.testing.assert_array_equal(out[name], ref[name])


def test_calibrated_ranges_bound_the_gains():
    """With --calib, a row gains only while the layer's calibrated |u| and |v| stay inside the
    registers in that neuron's finer unit: per-channel steps add no predicted overflow."""
    net = _spread_net()
    float_g = to_ir(net, (12,))
    x = np.random.default_rng(2).random((20, 8, 12)).astype(np.float32)
    warned = {}
    for steps in ("off", "auto"):
        opts = CompileOptions(input_bits=8, input_max=1.0, weight_bits=4, calibration=x, channel_steps=steps)
        q, fixed = compile_stages(float_g, load("emu"), opts)
        report = quantization_report(float_g, q, x, fixed)
        warned[steps] = {w.split(":")[0] for w in report["warnings"] if "calibration predicts" in w}
        for name, layer in report["layers"].items():
            if "calibration" in layer:
                r = layer["calibration"]
                assert r["float_max_abs_voltage"] <= r["register_max_abs"]["voltage"] or name in warned["off"], name
    assert np.ndim(fixed.node("syn1").format.state_scale) == 1
    assert warned["auto"] <= warned["off"]
