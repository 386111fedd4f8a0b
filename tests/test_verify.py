"""`snnhw verify`: the deployed build against the snntorch model, with checks that can fail.

Decoding and spike agreement are tested on hand-made arrays; the checks are tested by breaking
things on purpose (a silenced layer, 2-bit weights, a wrongly imported model, a build from another
model, forced input saturation) and on the trained digits model, which must pass.
"""
from __future__ import annotations

import contextlib
import io
import json
import textwrap

import numpy as np
import pytest
import torch

from conftest import run_cli
from snnhw.cli import main
from snnhw.compiler.pipeline import CompileOptions
from snnhw.decode import UNDECIDED, Decoding, agreement, parse_decoding
from snnhw.errors import SnnhwError
from snnhw.frontends import load_model
from snnhw.verify import Thresholds, compare_layer, verify


def cli_json(*args) -> tuple[int, dict | None, str]:
    """``snnhw verify ... --json`` in this process: exit code, report (None on error), stdout."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["verify", *map(str, args), "--json"])
    text = buf.getvalue()
    return rc, (json.loads(text) if rc in (0, 1, 3) else None), text


def failed(report: dict) -> set:
    return {(c["target"], c["check"].split(" ")[0]) for c in report["checks"] if not c["passed"]}


@pytest.fixture(scope="module")
def data(digits_model, tmp_path_factory):
    """Scored input (test digits 0..29) and calibration input (test digits 30..59): disjoint."""
    d = tmp_path_factory.mktemp("v")
    x = np.load(digits_model["x"])
    np.save(d / "x.npy", x[:, :30])
    np.save(d / "y.npy", digits_model["labels"][:30])
    np.save(d / "calib.npy", x[:, 30:])
    np.save(d / "x4.npy", x[:, :4])  # Lava runs one sample at a time
    np.save(d / "y4.npy", digits_model["labels"][:4])
    return d


# ----------------------------------------------------------------------------- decoding, by hand
def spikes_of(counts_per_step: list) -> np.ndarray:
    """[T, B, N] from a list over steps of [B, N] 0/1 lists."""
    return np.asarray(counts_per_step, np.int8)


def test_count_decoding_ties_and_silence_are_undecided():
    s = spikes_of([[[1, 0, 0], [1, 1, 0], [0, 0, 0]],
                   [[1, 1, 0], [0, 0, 0], [0, 0, 0]]])  # sample 0: counts 2,1,0; 1: tie 1,1; 2: silent
    assert Decoding("count").predict(s).tolist() == [0, UNDECIDED, UNDECIDED]


def test_first_spike_decoding():
    s = spikes_of([[[0, 0, 0], [0, 0, 0], [0, 0, 0]],
                   [[0, 0, 1], [1, 1, 0], [0, 0, 0]],
                   [[1, 1, 1], [1, 0, 0], [0, 0, 0]]])
    # sample 0: neuron 2 first (step 1) although others spike later; 1: tie at step 1; 2: silent
    assert Decoding("first-spike").predict(s).tolist() == [2, UNDECIDED, UNDECIDED]


def test_population_decoding_sums_groups():
    s = np.zeros((3, 1, 6), np.int8)
    s[:, 0, 0] = 1          # class 0 group (neurons 0, 1): 3 spikes
    s[:2, 0, 4] = 1         # class 2 group (neurons 4, 5): 2 + 2 = 4 spikes
    s[:2, 0, 5] = 1
    assert Decoding("population", 2).predict(s).tolist() == [2]
    assert Decoding("count").predict(s).tolist() == [0]  # per-neuron argmax would say class 0
    with pytest.raises(SnnhwError, match="not a multiple of 4"):
        Decoding("population", 4).predict(s)


def test_membrane_decodings_and_regression():
    v = np.asarray([[[0.1, 0.9, 0.2]], [[0.5, 0.3, 0.4]]])  # [T=2, B=1, N=3]
    s = np.zeros(v.shape, np.int8)
    assert Decoding("membrane-max").predict(s, v).tolist() == [1]
    assert Decoding("membrane-final").predict(s, v).tolist() == [0]
    assert np.array_equal(Decoding("regression").predict(s, v), [[0.5, 0.3, 0.4]])
    assert Decoding("membrane-final").predict(s, np.zeros_like(v)).tolist() == [UNDECIDED]  # all tied


def test_undecided_never_agrees():
    a = np.asarray([1, UNDECIDED, 2])
    assert agreement(a, a) == pytest.approx(2 / 3)


@pytest.mark.parametrize("text, message", [("max", "expected one of"), ("population", "neurons per class"),
                                           ("population:0", "neurons per class"), ("count:3", "takes no argument")])
def test_bad_decode_text(text, message):
    with pytest.raises(SnnhwError, match=message):
        parse_decoding(text)


def test_spike_agreement_is_not_dominated_by_silent_neurons():
    ref = np.zeros((10, 1, 20), np.int8)
    ref[:, 0, 0] = 1                     # one neuron spikes every step; 19 are silent
    silent = np.zeros_like(ref)
    d = compare_layer(ref, silent)
    assert d["f1"] == 0.0 and d["recall"] == 0.0 and d["precision"] is None and d["activity"] == 0.0
    assert d["jaccard"] == 0.0  # an exact match rate would be 0.95 here
    both_silent = compare_layer(silent, silent)
    assert both_silent["identical"] and both_silent["f1"] is None and both_silent["activity"] is None
    shifted = np.roll(ref, 1, axis=0)
    shifted[0] = 0                        # same neuron, one spike fewer
    d = compare_layer(ref, shifted)
    assert d["precision"] == 1.0 and d["recall"] == pytest.approx(0.9) and d["f1"] == pytest.approx(18 / 19)


# ----------------------------------------------------------------------------- checks that hold
def test_verify_passes_on_the_digits_model(digits_model, data):
    rc, so, se = run_cli("verify", digits_model["pt"], "--arch", digits_model["arch"], "--input", data / "x.npy",
                         "--labels", data / "y.npy", "--calib", data / "calib.npy",
                         # 3 training epochs: 2 of 30 float outputs are ties, which never count as agreement
                         "--min-class-agreement", "0.85")
    assert rc == 0, (so, se)
    assert "snntorch vs float IR (25 steps): spike F1 lif1 exact, lif2 exact" in so
    assert "PASS model: float IR reproduces the snntorch model (spike-exact in every layer)" in so
    assert so.rstrip().endswith("verified: emu")
    assert "lif1 (100)" in so and "P / R / F1" in so


def test_verify_scores_the_build_compile_writes(digits_model, data, tmp_path):
    """--keep-builds keeps what verify scored: byte for byte the build `snnhw compile` deploys."""
    common = [digits_model["pt"], "--arch", digits_model["arch"], "--calib", data / "calib.npy"]
    assert main(["compile", *map(str, common), "-o", str(tmp_path / "deployed")]) == 0
    rc, r, _ = cli_json(*common, "--input", data / "x.npy", "--keep-builds", tmp_path / "kept",
                        "--min-class-agreement", "0.85")
    assert rc == 0
    for f in ("model.onnx", "float.onnx", "quantization.json", "manifest.json"):
        assert (tmp_path / "kept" / "emu" / f).read_bytes() == (tmp_path / "deployed" / f).read_bytes(), f
    e = r["targets"]["emu"]
    assert e["build"] == str(tmp_path / "kept" / "emu") and e["backend"] is None  # emu's backend is the emulator
    assert set(e["layers"]) == set(e["layers_snntorch"]) == {"lif1", "lif2"}
    for L in e["layers"].values():
        assert 0.5 < L["f1"] <= 1.0 and L["jaccard"] <= L["f1"] and 0.9 < L["activity"] < 1.1


def test_verify_build_checks_the_build_came_from_the_model(digits_model, data, tmp_path):
    common = ["--arch", digits_model["arch"], "--input", data / "x.npy", "--labels", data / "y.npy"]
    assert main(["compile", str(digits_model["pt"]), "--arch", digits_model["arch"], "--calib",
                 str(data / "calib.npy"), "-o", str(tmp_path / "b")]) == 0
    rc, r, _ = cli_json(digits_model["pt"], "--build", tmp_path / "b", *common, "--min-class-agreement", "0.85")
    assert rc == 0 and r["checks"][1]["check"] == "build compiled from this model" and r["checks"][1]["passed"]
    other = digits_model["net"].state_dict()
    other = {k: v * 1.01 if k == "fc2.weight" else v for k, v in other.items()}
    torch.save(other, tmp_path / "other.pt")
    rc, r, _ = cli_json(tmp_path / "other.pt", "--build", tmp_path / "b", *common)
    assert rc == 1 and ("emu", "build") in failed(r) and r["targets"] == {}
    assert "differs from the model's float IR at layer fc2" in r["checks"][-1]["detail"]
    assert main(["verify", str(digits_model["pt"]), "--build", str(tmp_path / "b"), *map(str, common),
                 "--targets", "loihi"]) == 2


def test_backends_equal_the_emulator_on_the_deployed_builds(digits_model, data, monkeypatch):
    monkeypatch.setenv("SNNHW_FPGA_SYNTH", "0")  # yosys' resource report takes minutes; the RTL is the same
    rc, r, _ = cli_json(digits_model["pt"], "--arch", digits_model["arch"], "--input", data / "x4.npy",
                        "--labels", data / "y4.npy", "--calib", data / "calib.npy", "--targets", "emu,loihi,fpga")
    assert rc == 0 and r["passed"] and r["layers"] == ["lif1", "lif2"]
    emu, loihi, fpga = r["targets"]["emu"], r["targets"]["loihi"], r["targets"]["fpga"]
    assert emu["latency"] == 0 and loihi["latency"] == 2 and fpga["latency"] == 0
    assert loihi["backend"]["bit_exact"] is True and fpga["backend"]["bit_exact"] is True
    assert loihi["accuracy"] == fpga["accuracy"] == emu["accuracy"] is not None
    names = {(c["target"], c["check"].split(" ")[0]) for c in r["checks"]}
    assert {("loihi", "backend"), ("fpga", "backend"), ("emu", "accuracy"), ("model", "float")} <= names


# ----------------------------------------------------------------------------- checks that fail
def test_verify_fails_when_a_layer_goes_silent_in_fixed_point(digits_model, data):
    """A dead lif1 neuron with huge outgoing weights: the float network barely notices, but the
    8-bit weight scale of fc2 is set by them, every other fc2 weight rounds to 0, lif2 goes silent."""
    g = load_model(digits_model["pt"], arch=digits_model["arch"])
    fc1, fc2 = g.node("fc1"), g.node("fc2")
    fc1.weight[7] = 0.0
    fc1.bias[7] = 0.0
    fc2.weight[:, 7] = 1000.0
    fc2.bias[:] = 0.0
    x = np.load(data / "x.npy")
    r = verify(g, x, {"emu": CompileOptions(input_bits=8, input_max=1.0)}, Thresholds(),
               labels=np.load(data / "y.npy"))
    lif2 = r["targets"]["emu"]["layers"]["lif2"]
    assert lif2["spikes_reference"] > 100 and lif2["spikes"] == 0 and lif2["f1"] == 0.0
    check = next(c for c in r["checks"] if c["check"].startswith("every layer keeps"))
    assert not check["passed"] and "layer lif2 lost its activity: 0 spikes" in check["detail"]
    assert r["exit_code"] == 1 and not r["passed"]
    assert r["targets"]["emu"]["silent"] == 30  # every sample's output is silent: no agreement, no accuracy
    assert r["targets"]["emu"]["agreement_float_ir"] == 0.0 and r["targets"]["emu"]["accuracy"] == 0.0


def test_membrane_decodings_read_the_dequantized_fixed_membrane(digits_model, data):
    """Regression labels = the float IR's own final output membranes: the float IR scores NRMSE 0,
    the deployed build (membrane in state units x state LSB) well below 1 (its spikes shift by a
    step here and there, and a zero reset at the last step moves that membrane by a threshold);
    a wrong scale would be off by orders of magnitude."""
    from snnhw.targets.emu.emulator import Emulator
    g = load_model(digits_model["pt"], arch=digits_model["arch"])
    x = np.load(data / "x.npy")
    opts = {"emu": CompileOptions(input_bits=8, input_max=1.0, calibration=np.load(data / "calib.npy"))}
    target = Emulator(g).run(x, record_state=True).voltage["lif2"][-1]
    r = verify(g, x, opts, Thresholds(), labels=target, decoding=Decoding("regression"))
    e = r["targets"]["emu"]
    assert r["float_ir"]["nrmse"] == 0.0 and 0.0 < e["nrmse"] < 0.5 and e["accuracy"] is None
    assert e["agreement_float_ir"] == pytest.approx(e["nrmse"])
    check = next(c for c in r["checks"] if c["check"].startswith("output NRMSE vs float IR <= 0.1"))
    assert check["passed"] == (e["nrmse"] <= 0.1)
    r = verify(g, x, opts, Thresholds(), labels=np.load(data / "y.npy"), decoding=Decoding("membrane-max"))
    e = r["targets"]["emu"]
    assert r["decode"] == "membrane-max" and e["undecided"] == 0 and e["silent"] == 0
    assert abs(e["accuracy"] - r["float_ir"]["accuracy"]) <= 0.2  # trained on counts: membranes score ~0.4
    with pytest.raises(SnnhwError, match=r"needs \[30, 10\]"):
        verify(g, x, opts, Thresholds(), labels=np.load(data / "y.npy"), decoding=Decoding("regression"))


def test_verify_fails_on_a_forced_bad_quantization(digits_model, data):
    rc, so, se = run_cli("verify", digits_model["pt"], "--arch", digits_model["arch"], "--input", data / "x.npy",
                         "--labels", data / "y.npy", "--calib", data / "calib.npy", "--weight-bits", "2")
    assert rc == 1, (so, se)
    assert "FAIL emu: class agreement with snntorch" in so and "FAIL emu: accuracy drop" in so
    assert so.rstrip().endswith("verification failed")
    first = [line for line in so.splitlines() if line.startswith("│ lif1")][0]
    assert "->" in first.split("│")[-2]  # the first divergence is located


def arch_module(directory, source: str, name: str):
    """Write ``source`` to ``directory/name.py`` (an --arch file) and import it."""
    import importlib.util
    path = directory / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


ONE_STEP_ARCH = '''
import snntorch as snn
from torch import nn


class OneStep(nn.Module):
    """Tutorial 6 style: forward is one step and re-initializes the membranes on every call."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(8, 6)
        self.lif1 = snn.Leaky(beta=0.9)
        self.fc2 = nn.Linear(6, 3)
        self.lif2 = snn.Leaky(beta=0.9)

    def forward(self, x):
        mem1 = self.lif1.init_leaky()
        mem2 = self.lif2.init_leaky()
        spk1, mem1 = self.lif1(self.fc1(x), mem1)
        spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
        return spk2, mem2
'''


def test_the_one_step_model_is_imported_memoryless_and_verified(tmp_path):
    """Each call starts from zero membranes: 8 inputs x 0.05 = 0.4 < threshold, so snntorch's lif1
    never spikes. The frontend imports such neurons memoryless, and verify's import check agrees."""
    net = arch_module(tmp_path, ONE_STEP_ARCH, "onestep").OneStep()
    with torch.no_grad():
        net.fc1.weight.fill_(0.05), net.fc1.bias.zero_(), net.fc2.weight.fill_(0.5), net.fc2.bias.zero_()
    torch.save(net.state_dict(), tmp_path / "m.pt")
    np.save(tmp_path / "x.npy", np.ones((10, 2, 8), np.float32))
    rc, r, _ = cli_json(tmp_path / "m.pt", "--arch", f"{tmp_path / 'onestep.py'}:OneStep", "--input", tmp_path / "x.npy",
                        "--input-kind", "graded")
    check = r["checks"][0]
    assert check["target"] == "model" and check["passed"], check
    assert r["snntorch"]["layers"]["lif1"]["spikes_reference"] == 0


def test_verify_fails_when_the_import_does_not_reproduce_the_snntorch_model(tmp_path):
    """An importer that kept the membranes of the one-step model (beta 0 -> 1, what snnhw did before
    it recognised the pattern) integrates 0.4 per step and spikes every third step, where snntorch
    never spikes: the import check must fail, name the layer and point to the remedy."""
    from dataclasses import replace
    from snnhw.frontends import load_model_and_module
    from snnhw.frontends.snntorch_reference import reference_run
    net = arch_module(tmp_path, ONE_STEP_ARCH, "onestep").OneStep()
    with torch.no_grad():
        net.fc1.weight.fill_(0.05), net.fc1.bias.zero_(), net.fc2.weight.fill_(0.5), net.fc2.bias.zero_()
    torch.save(net.state_dict(), tmp_path / "m.pt")
    float_g, net = load_model_and_module(tmp_path / "m.pt", arch=f"{tmp_path / 'onestep.py'}:OneStep")
    float_g.nodes = [replace(n, beta=np.ones_like(n.beta)) if n.name == "lif1" else n for n in float_g.nodes]
    x = np.ones((10, 2, 8), np.float32)
    report = verify(float_g, x, {"emu": CompileOptions(input_bits=8)}, Thresholds(), None,
                    reference_run(net, float_g.meta.get("forward", "per_step"), x))
    check = report["checks"][0]
    assert check["target"] == "model" and not check["passed"]
    assert "does not reproduce the snntorch model: layer lif1 spike F1 0.0000" in check["detail"]
    assert "0 spikes in snntorch" in check["detail"] and "docs/frontend.md" in check["detail"]
    assert report["exit_code"] == 1


REFUSED_ARCH = '''
import snntorch as snn
import torch
from torch import nn


class Echo(nn.Module):
    """Each of the 2x2 input pixels drives its own neuron (weight 2) through a max pooling of the
    synaptic currents (snntorch tutorial 6's order), which Loihi cannot run."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 2, bias=False)
        self.pool = nn.MaxPool2d(1)
        self.lif = snn.Leaky(beta=0.5, init_hidden=True)

    def forward(self, x):
        return self.lif(self.pool(self.conv(x)))
'''


def test_a_refusing_target_is_reported_and_the_others_verified(tmp_path):
    net = arch_module(tmp_path, REFUSED_ARCH, "echo").Echo()
    with torch.no_grad():
        net.conv.weight.copy_(2 * torch.eye(4).reshape(4, 1, 2, 2))
    torch.save(net.state_dict(), tmp_path / "m.pt")
    rng = np.random.default_rng(0)
    labels = np.arange(8) % 4
    x = (rng.random((12, 8, 4)) < 0.1).astype(np.float32)
    x[:, np.arange(8), labels] = (rng.random((12, 8)) < 0.8)  # the label's pixel spikes most
    np.save(tmp_path / "x.npy", x.reshape(12, 8, 1, 2, 2))
    np.save(tmp_path / "y.npy", labels)
    args = [tmp_path / "m.pt", "--arch", f"{tmp_path / 'echo.py'}:Echo", "--input", tmp_path / "x.npy",
            "--input-shape", "1,2,2", "--labels", tmp_path / "y.npy", "--targets", "emu,loihi"]
    rc, r, _ = cli_json(*args)
    assert rc == 3 and r["refused"] == ["loihi"] and not r["passed"]
    assert "max pooling" in r["targets"]["loihi"]["refused"]
    assert all(c["passed"] for c in r["checks"]) and {c["target"] for c in r["checks"]} == {"model", "emu"}
    assert r["targets"]["emu"]["accuracy"] == 1.0
    rc, so, _ = run_cli("verify", *args)
    assert rc == 3 and "loihi: refused (not verified)" in so
    assert so.rstrip().endswith("not verified: loihi refused the model; verified: emu")


def test_fail_on_overflow_fails_exactly_when_values_saturate(digits_model, data, tmp_path):
    """Input range and state ranges calibrated on pixels in [0, 1]: the test pixels do not saturate;
    4x the test pixels saturate at the input (counted) and in lif1."""
    common = [digits_model["pt"], "--arch", digits_model["arch"], "--calib", data / "calib.npy", "--fail-on-overflow"]
    rc, r, _ = cli_json(*common, "--input", data / "x.npy")
    check = next(c for c in r["checks"] if c["check"] == "no overflow")
    assert check["passed"] and check["detail"] == "none" and r["targets"]["emu"]["overflow"] == {}
    np.save(tmp_path / "x4.npy", 4 * np.load(data / "x.npy"))
    rc, r, _ = cli_json(*common, "--input", tmp_path / "x4.npy")
    check = next(c for c in r["checks"] if c["check"] == "no overflow")
    assert rc == 1 and not check["passed"] and "input_saturate" in check["detail"]


def cli_error(capsys, *args) -> tuple[int, str]:
    """``snnhw verify ...`` in this process: exit code and stderr."""
    rc = main(["verify", *map(str, args)])
    return rc, capsys.readouterr().err


def test_analog_input_is_never_used_as_calibration(digits_model, data, capsys):
    rc, se = cli_error(capsys, digits_model["pt"], "--arch", digits_model["arch"], "--input", data / "x.npy")
    assert rc == 2 and "--input has values other than 0 and 1" in se and "--calib CALIB.npy" in se, se


def test_verify_bad_labels_and_decodings(digits_model, data, tmp_path, capsys):
    np.save(tmp_path / "y.npy", np.zeros(3))
    common = [digits_model["pt"], "--arch", digits_model["arch"], "--input", data / "x.npy", "--input-kind", "graded"]
    rc, se = cli_error(capsys, *common, "--labels", tmp_path / "y.npy")
    assert rc == 2 and se.strip() == "error: --labels has 3 entries for 30 samples", se
    rc, se = cli_error(capsys, *common, "--decode", "population:3")
    assert rc == 2 and "the output layer has 10 neurons, not a multiple of 3" in se and se.count("\n") == 1, se
