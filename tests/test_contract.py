"""The backend contract: every (build target, run target) pair runs exactly or refuses with one line;
--retarget recompiles explicitly; no backend imports another; lowering passes keep the semantics."""
from __future__ import annotations

import ast
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from strategies import lava_conv_networks
from snnhw.cli import main
from snnhw.compiler.lowering import conv_to_dense
from snnhw.compiler.pipeline import passes_for
from snnhw.ir import LIF, Conv2d, Dense, Flatten, Graph, Input, NeuronFormat, StateFormat
from snnhw.targets import available, load
from snnhw.targets.contract import Backend, backend_for
from snnhw.targets.emu.emulator import run as emulate

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ("emu", "loihi", "fpga")


def _cli(capsys, *args) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _one_line_error(rc, err, *words):
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: "), (rc, err)
    for w in words:
        assert w in lines[0], lines[0]


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """One build of the same small snntorch net per target (Loihi's reset: zero, immediate)."""
    import snntorch as snn
    import torch
    torch.manual_seed(3)
    net = torch.nn.Sequential(
        torch.nn.Linear(12, 8), snn.Leaky(beta=0.8, init_hidden=True, reset_mechanism="zero", reset_delay=False,
                  surrogate_disable=True),
        torch.nn.Linear(8, 4), snn.Leaky(beta=0.8, init_hidden=True, reset_mechanism="zero", reset_delay=False,
                  surrogate_disable=True))
    with torch.no_grad():
        for layer in (net[0], net[2]):
            layer.weight.mul_(3.0)
    d = tmp_path_factory.mktemp("contract")
    torch.save(net, d / "net.pt")
    x = (np.random.default_rng(0).random((10, 2, 12)) < 0.5).astype(np.float32)
    np.save(d / "x.npy", x)
    old = os.environ.get("SNNHW_FPGA_SYNTH")
    os.environ["SNNHW_FPGA_SYNTH"] = "0"
    try:
        for t in TARGETS:
            assert main(["compile", str(d / "net.pt"), "--target", t, "-o", str(d / t)]) == 0
    finally:
        if old is None:
            del os.environ["SNNHW_FPGA_SYNTH"]
        else:
            os.environ["SNNHW_FPGA_SYNTH"] = old
    return d


@pytest.mark.lava
def test_every_build_target_pair_runs_exactly_or_refuses(builds, capsys, monkeypatch):
    monkeypatch.setenv("SNNHW_FPGA_SYNTH", "0")
    outs = {}
    for b in TARGETS:
        for t in TARGETS:
            out = builds / f"{b}-on-{t}.npz"
            rc, so, se = _cli(capsys, "run", builds / b, "--target", t, "--input", builds / "x.npy", "-o", out)
            if t in (b, "emu"):  # a backend runs its own builds; the emulator (the reference) runs every build
                assert rc == 0, se
                outs[b, t] = np.load(out)
            else:
                _one_line_error(rc, se, f"compiled for {b}, not {t}", f"--target {b}", "--retarget")
                assert not out.exists()
    for b in ("loihi", "fpga"):  # the emulator on a foreign build computes what that target computes
        native, emu = outs[b, b], outs[b, "emu"]
        assert native.files == emu.files and int(native["output"].sum()) > 0
        for k in native.files:
            np.testing.assert_array_equal(native[k], emu[k], err_msg=f"{b} build: {b} vs emu, {k}")
    assert outs["loihi", "loihi"]["output"].shape[0] == 12  # 10 steps + 2 synapse delays (loihi timing kept)


@pytest.mark.lava
def test_retarget_recompiles_the_float_ir_and_says_so(builds, capsys, monkeypatch):
    monkeypatch.setenv("SNNHW_FPGA_SYNTH", "0")
    direct = {}
    for b, t in ((b, t) for b in TARGETS for t in TARGETS if b != t):
        out = builds / f"{b}-retarget-{t}.npz"
        rc, so, se = _cli(capsys, "run", builds / b, "--target", t, "--retarget", "--input", builds / "x.npy",
                          "-o", out, "--json")
        assert rc == 0, se
        assert f"retargeted: recompiled {builds / b}/float.onnx (a {b} build) for {t}" in se
        summary = json.loads(so)
        assert summary["retargeted"] and summary["target"] == t and summary["build_target"] == b
        # the same as compiling the float IR for t directly (the builds were compiled without --calib)
        if t not in direct:
            direct[t] = builds / f"direct-{t}.npz"
            assert _cli(capsys, "run", builds / t, "--input", builds / "x.npy", "-o", direct[t])[0] == 0
        got, want = np.load(out), np.load(direct[t])
        for k in want.files:
            np.testing.assert_array_equal(got[k], want[k], err_msg=f"{b} -> {t}: {k}")
    tampered = builds / "tampered"
    shutil.copytree(builds / "emu", tampered)
    (tampered / "float.onnx").write_bytes((tampered / "float.onnx").read_bytes()[:-7] + b"changed")
    rc, _, se = _cli(capsys, "run", tampered, "--target", "fpga", "--retarget", "--input", builds / "x.npy",
                     "-o", builds / "t.npz")
    _one_line_error(rc, se, "float.onnx does not match its hash")


def test_run_shows_who_observed_the_overflow(builds, capsys, monkeypatch):
    monkeypatch.setenv("SNNHW_FPGA_SYNTH", "0")
    from conftest import run_cli
    for t, source in (("emu", "emulator"), ("fpga", "rtl counters")):
        rc, so, se = _cli(capsys, "run", builds / t, "--input", builds / "x.npy", "-o", builds / f"src-{t}.npz",
                          "--json")
        assert rc == 0, se
        assert json.loads(so)["overflow_source"] == source
    rc, so, se = run_cli("run", builds / "fpga", "--input", builds / "x.npy", "-o", builds / "table.npz")
    assert rc == 0 and "overflow events (rtl counters)" in so, so + se


def test_every_target_has_a_contract_backend():
    for name in available():
        t = load(name)
        b = backend_for(t)
        assert isinstance(b, Backend) and b.target == t, name


def _imports(path: Path) -> set:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def test_no_backend_imports_another_backend():
    folders = [p.parent.name for p in (ROOT / "targets").glob("*/target.toml")]
    assert set(TARGETS) <= set(folders)
    seen = 0
    for own in folders:
        for path in sorted((ROOT / "targets" / own).rglob("*.py")):
            seen += 1
            foreign = {m for m in _imports(path) for other in folders if other != own
                       and (m == f"snnhw.targets.{other}" or m.startswith(f"snnhw.targets.{other}."))}
            assert not foreign, f"{path.relative_to(ROOT)} imports {sorted(foreign)}"
    assert seen >= 10
    for room, banned in (("snnhw/semantics", ("snnhw.targets", "snnhw.compiler", "snnhw.cli", "snnhw.verify")),
                         ("compiler", ("snnhw.targets.emu.backend", "snnhw.targets.fpga", "snnhw.targets.loihi",
                                       "snnhw.cli", "snnhw.verify", "snnhw.report"))):
        for path in sorted((ROOT / room).rglob("*.py")):
            bad = {m for m in _imports(path) for b in banned if m == b or m.startswith(b + ".")}
            assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_lowering_is_named_by_the_target_and_runs_after_the_generic_passes():
    names = [p.name for p in passes_for(load("fpga"))]
    assert names == ["fold-linear", "check-features", "quantize", "timing", "maxpool-to-or", "legalize"]
    assert "conv-to-dense" not in [p.name for p in passes_for(load("emu"))]  # (fpga runs convs on conv cores)
    assert [p.name for p in passes_for(load("loihi"))][-2:] == ["maxpool-to-or", "legalize"]


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(lava_conv_networks())
def test_conv_to_dense_lowering_equals_the_conv_on_the_emulator(case):
    g, x = case
    low = conv_to_dense(g)
    a, b = emulate(g, x, record_state=True), emulate(low, x, record_state=True)
    assert not any(isinstance(n, Conv2d) for n in low.nodes)
    for name in a.spikes:
        for kind in ("spikes", "current", "voltage"):
            ref = getattr(a, kind)[name]
            np.testing.assert_array_equal(getattr(b, kind)[name], ref.reshape(getattr(b, kind)[name].shape))
    assert a.overflow == b.overflow


def test_conv_chain_with_groups_lowers_exactly():
    """Two convolutions in a row (the second reads a lowered, flat population), groups, padding,
    dilation, per-neuron parameters and a narrow wrapping accumulator that overflows."""
    rng = np.random.default_rng(5)
    fmt = NeuronFormat(12, "toward_zero", 6, StateFormat(24, "wrap_once"), StateFormat(24, "saturate"), 1.0)
    acc = StateFormat(11, "wrap")
    c1 = Conv2d("c1", "in", rng.integers(-127, 127, (4, 1, 3, 3)), (2, 6, 6), rng.integers(-9, 9, (4,)),
                (1, 1), (1, 1), (1, 1), 2, 0, acc)
    c2 = Conv2d("c2", "l1", rng.integers(-127, 127, (2, 2, 2, 2)), c1.shape, None, (2, 1), (0, 1), (2, 1), 2, 1, acc)
    n2 = int(np.prod(c2.shape))
    g = Graph([Input("in", (2, 6, 6), 4, 1.0), c1,
               LIF("l1", "c1", c1.shape, np.array(0), rng.integers(3000, 4096, c1.shape),
                   rng.integers(200, 2000, c1.shape), rng.integers(-50, 50, c1.shape), "subtract", "immediate",
                   format=fmt), c2,
               LIF("l2", "c2", c2.shape, np.array(100), np.array(4000), np.array(900), np.array(0), "zero", "delayed",
                   format=fmt),
               Flatten("f", "l2", c2.shape), Dense("fc", "f", rng.integers(-127, 127, (3, n2)), None, 0, acc),
               LIF("out", "fc", (3,), np.array(0), np.array(4096), np.array(300), np.array(0), format=fmt)],
              kind="fixed", target="fpga").validate()
    x = rng.integers(-7, 8, (12, 2, 2, 6, 6))
    low = conv_to_dense(g)
    a, b = emulate(g, x, record_state=True), emulate(low, x, record_state=True)
    assert a.overflow.get("c1", {}).get("acc_wrap", 0) > 0 and int(a.spikes["l2"].sum()) > 0
    for name in a.spikes:
        np.testing.assert_array_equal(b.spikes[name], a.spikes[name].reshape(b.spikes[name].shape))
        np.testing.assert_array_equal(b.voltage[name], a.voltage[name].reshape(b.voltage[name].shape))
    assert a.overflow == b.overflow
