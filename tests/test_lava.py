"""Anchored to Lava: the emulator equals Lava's own fixed_pt LIF/Dense processes, spike for spike."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, find, given, settings
from hypothesis import strategies as st

from conftest import run_cli
from snnhw.errors import SnnhwError
from snnhw.targets.emu.emulator import run as emulate
from snnhw.targets.loihi.backend import simulate_in_worker
from strategies import lava_conv_networks, lava_networks

pytestmark = pytest.mark.lava


@pytest.fixture(autouse=True)
def process_tag(monkeypatch):
    """A tag in the environment of every process this test starts (Lava's children inherit it)."""
    tag = f"snnhw-test-{uuid.uuid4().hex}"
    monkeypatch.setenv("SNNHW_TEST_TAG", tag)
    return tag


def _leftover_processes() -> list[int]:
    """Live processes started by the current test (they carry its tag in their environment)."""
    tag = f"SNNHW_TEST_TAG={os.environ['SNNHW_TEST_TAG']}".encode()
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != os.getpid():
            try:
                if tag in (d / "environ").read_bytes().split(b"\0"):
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


def test_shim_is_needed_and_makes_lava_import():
    code = "import lava.magma.compiler.var_model"
    plain = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if sys.version_info >= (3, 11):
        assert plain.returncode != 0 and "mutable default" in plain.stderr
    shimmed = subprocess.run([sys.executable, "-c",
                              "from snnhw.targets.loihi import lava_compat; lava_compat.import_lava();"
                              "from lava.magma.compiler.var_model import CoreEncoder as C;"
                              "a, b = C(), C(); assert a.x is not b.x and a.x == b.x; print('ok')"],
                             capture_output=True, text=True)
    assert shimmed.returncode == 0 and "ok" in shimmed.stdout, shimmed.stderr


def _assert_equal(g, x, lava):
    emu = emulate(g, x, record_state=True)
    for p in g.neurons:
        for kind in ("spikes", "voltage", "current"):
            ours = getattr(emu, kind)[p.name].astype(np.int64)
            np.testing.assert_array_equal(ours, lava[kind][p.name], err_msg=f"{p.name} {kind}")
    return emu


@settings(max_examples=int(os.environ.get("SNNHW_LAVA_EXAMPLES", "16")), deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(lava_networks())
def test_random_networks_equal_lava_fixed_pt(case):
    g, x = case
    lava = simulate_in_worker(g, x, record_state=True)
    assert lava["overflow"] == _assert_equal(g, x, lava).overflow
    assert not _leftover_processes()


@st.composite
def wide_range_networks(draw):
    """Dense/LIF chains in the ranges where the IR and Lava's int32 can part: fan-in up to 2200,
    8-bit graded input, synapse biases with many inputs, alpha near 1 (and exactly 1), beta 0,
    per-neuron parameters, every reset mode and timing, recurrence with biases, runs up to 200 steps."""
    from snnhw.ir import LIF, Dense, Graph, Input
    from strategies import LOIHI_ACC, LOIHI_FORMAT
    ints = lambda lo, hi, shape: np.random.default_rng(draw(st.integers(0, 2**32 - 1))).integers(lo, hi + 1, shape)
    n_in = draw(st.sampled_from([3, 40, 600, 2200]))
    graded = draw(st.booleans())
    nodes = [Input("in", (n_in,), 8 if graded else 1, 1.0)]
    prev, prev_size = "in", n_in
    for i in range(draw(st.integers(1, 2))):
        size = draw(st.integers(1, 4))
        per = (size,) if draw(st.booleans()) else ()
        pick = lambda choices, lo, hi: ints(lo, hi, per) if per and draw(st.booleans()) else \
            np.array(draw(st.sampled_from(choices) | st.integers(lo, hi)))
        wmax = draw(st.sampled_from([1, 8, 127]))
        bias = ints(-2000, 2000, (size,)) if draw(st.booleans()) else None
        nodes.append(Dense(f"fc{i}", prev, ints(-wmax, wmax, (size, prev_size)), bias, 1, LOIHI_ACC))
        rec = ints(-60, 60, (size, size)) if draw(st.booleans()) else None
        rec_b = ints(-100, 100, (size,)) if rec is not None and draw(st.booleans()) else None
        nodes.append(LIF(f"lif{i}", f"fc{i}", (size,), pick([0, 4000, 4090, 4095, 4096], 0, 4096),
                         pick([0, 1, 2048, 4095, 4096], 0, 4096), np.asarray(64 * pick([1, 50, 3000, 131071], 1, 131071)),
                         np.asarray(64 * pick([0, 4095, -4095], -4095, 4095)), draw(st.sampled_from(["zero", "subtract", "none"])),
                         draw(st.sampled_from(["immediate", "delayed"])), rec, rec_b, 1,
                         LOIHI_ACC if rec is not None else None, LOIHI_FORMAT))
        prev, prev_size = f"lif{i}", size
    g = Graph(nodes, kind="fixed", target="loihi").validate()
    T = draw(st.sampled_from([6, 60, 200]))
    x = ints(-127, 127, (T, 1, n_in)) if graded else ints(0, 1, (T, 1, n_in))
    return g, x


@settings(max_examples=int(os.environ.get("SNNHW_LAVA_EXAMPLES", "16")) // 2, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(wide_range_networks())
def test_wide_range_networks_are_refused_or_equal_lava(case):
    """Every case the range proof accepts runs in Lava exactly as in the emulator (spikes, u, v and
    the overflow events Lava showed); every refusal names a layer, a register and a remedy."""
    from snnhw.compiler.legalize import legalize
    from snnhw.errors import UnsupportedError
    g, x = case
    try:
        legalize(g, _loihi())
    except UnsupportedError as exc:
        assert str(exc).startswith("layer ") and "--calib" in str(exc)
        event("refused")
        return
    event("accepted")
    lava = simulate_in_worker(g, x, record_state=True)
    emu = _assert_equal(g, x, lava)
    assert lava["overflow"] == emu.overflow


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(wide_range_networks())
def test_range_bounds_hold_in_the_emulator(case):
    """The proven bounds are sound: the emulator's stored |u| never exceeds the plan's current bound
    (accepted or not: the bound itself is computed for every population that has one)."""
    from snnhw.targets.loihi import ranges
    g, x = case
    emu = emulate(g, x, record_state=True)
    for name, lp in ranges.plan(g, _loihi())[0].items():
        if lp.current:
            assert np.abs(emu.current[name]).max() <= lp.current, name


def test_wide_range_strategy_reaches_both_outcomes_and_both_models():
    """The strategy above is not vacuous: it produces accepted and refused cases, and layers on both models."""
    from snnhw.compiler.legalize import legalize
    from snnhw.errors import UnsupportedError
    from snnhw.targets.loihi import ranges

    def refused(case):
        try:
            legalize(case[0], _loihi())
            return False
        except UnsupportedError:
            return True
    find(wide_range_networks(), refused, settings=settings(database=None, max_examples=500))
    for model in (ranges.INTEL, ranges.MICROCODE):
        find(wide_range_networks(), lambda c, m=model: not refused(c) and
             any(lp.model == m for lp in ranges.plan(c[0], _loihi())[0].values()),
             settings=settings(database=None, max_examples=500))


@settings(max_examples=int(os.environ.get("SNNHW_LAVA_EXAMPLES", "16")) // 2, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(lava_conv_networks())
def test_random_conv_networks_equal_lava_fixed_pt(case):
    g, x = case
    _assert_equal(g, x, simulate_in_worker(g, x, record_state=True))
    assert not _leftover_processes()


def test_wrap_and_saturation_cases_equal_lava():
    """Networks driven into current wrap and voltage saturation still agree bit for bit."""
    from snnhw.ir import LIF, Dense, Graph, Input
    from strategies import LOIHI_ACC, LOIHI_FORMAT
    rng = np.random.default_rng(3)
    w = np.full((4, 6), 127)
    w[1] = -127
    g = Graph([Input("in", (6,), 8, 1.0), Dense("fc", "in", w, None, 1, LOIHI_ACC),
               LIF("l", "fc", (4,), np.array(4096), np.array(4096), np.array(64 * 131000), np.array(0), "zero",
                   "immediate", format=LOIHI_FORMAT)], kind="fixed").validate()
    x = rng.integers(60, 128, (12, 2, 6))
    emu = _assert_equal(g, x, simulate_in_worker(g, x, record_state=True))
    assert emu.overflow["l"]["current_wrap_once"] > 0 and emu.overflow["l"]["voltage_saturate"] > 0


def test_cli_loihi_run_equals_emulator(digits_model, tmp_path):
    b = tmp_path / "loihi"
    rc, _, se = run_cli("compile", digits_model["pt"], "--arch", digits_model["arch"], "--target", "loihi",
                        "--calib", digits_model["x"], "-o", b)
    assert rc == 0, se
    np.save(tmp_path / "x.npy", np.load(digits_model["x"])[:, :3])
    for tgt in ("loihi", "emu"):
        rc, _, se = run_cli("run", b, "--target", tgt, "--input", tmp_path / "x.npy", "-o", tmp_path / f"{tgt}.npz")
        assert rc == 0, se
    lava, emu = np.load(tmp_path / "loihi.npz"), np.load(tmp_path / "emu.npz")
    assert lava["output"].shape == (27, 3, 10)  # 25 steps + 2 synapse delays
    assert lava["lif1"].sum() > 0
    for k in lava.files:
        np.testing.assert_array_equal(lava[k], emu[k])
    assert not _leftover_processes()


def test_snntorch_default_leaky_runs_on_loihi_microcode_equal_to_emulator(tmp_path):
    """snntorch's defaults (subtract reset, delayed) were refused on loihi; they run on MicrocodeLIF,
    the build says so (notes, lava_plan.json, no network.net with the reason) and equals the emulator."""
    import json
    import snntorch as snn
    import torch
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), snn.Leaky(beta=0.5, init_hidden=True, surrogate_disable=True))
    with torch.no_grad():
        net[0].weight.uniform_(-0.2, 0.9)
    torch.save(net, tmp_path / "m.pt")
    rc, so, se = run_cli("compile", tmp_path / "m.pt", "--target", "loihi", "-o", tmp_path / "b")
    assert rc == 0, se
    assert "runs on MicrocodeLIF: reset subtract/delayed" in so and "no network.net" in so
    plan = json.loads((tmp_path / "b" / "lava_plan.json").read_text())
    assert plan["summary"] == {"intel": 0, "microcode": 1}
    np.save(tmp_path / "x.npy", (np.random.default_rng(0).random((12, 2, 4)) < 0.6).astype(np.float32))
    assert _lava_equals_emu(tmp_path)["output"].sum() > 0
    assert not _leftover_processes()


def _lava_equals_emu(tmp_path) -> dict:
    """Run the build ``tmp_path/b`` on ``x.npy`` with ``snnhw run`` on loihi and on emu (states
    recorded); every array must be equal. Returns Lava's arrays."""
    for tgt in ("loihi", "emu"):
        rc, _, se = run_cli("run", tmp_path / "b", "--target", tgt, "--input", tmp_path / "x.npy", "--record-state",
                            "-o", tmp_path / f"{tgt}.npz")
        assert rc == 0, se
    lava, emu = np.load(tmp_path / "loihi.npz"), np.load(tmp_path / "emu.npz")
    assert sorted(lava.files) == sorted(emu.files)
    for k in lava.files:
        np.testing.assert_array_equal(lava[k], emu[k], err_msg=k)
    return dict(lava)


TUTORIAL_CLASS = """
import torch, torch.nn as nn, snntorch as snn
num_steps = 10
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(12, 8)
        self.lif1 = snn.Leaky(beta=0.95)
        self.fc2 = nn.Linear(8, 3)
        self.lif2 = snn.Leaky(beta=0.95)
    def forward(self, x):
        mem1 = self.lif1.init_leaky()
        mem2 = self.lif2.init_leaky()
        spk2_rec = []
        for step in range(num_steps):
            spk1, mem1 = self.lif1(self.fc1(x), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            spk2_rec.append(spk2)
        return torch.stack(spk2_rec, dim=0)
"""


def test_tutorial_style_class_with_analog_input_runs_on_loihi_equal_to_emulator(tmp_path):
    """snntorch tutorial style (a class with a time loop, state_dict + --arch, analog input): it
    compiles for loihi with graded input and runs equal to the emulator in every array."""
    import torch
    (tmp_path / "net.py").write_text(TUTORIAL_CLASS)
    ns: dict = {}
    exec(compile(TUTORIAL_CLASS, "net.py", "exec"), ns)
    torch.manual_seed(3)
    torch.save(ns["Net"]().state_dict(), tmp_path / "m.pt")
    x = np.repeat(np.random.default_rng(3).uniform(0, 4, (1, 2, 12)).astype(np.float32), 10, axis=0)
    np.save(tmp_path / "x.npy", x)
    rc, so, se = run_cli("compile", tmp_path / "m.pt", "--arch", f"{tmp_path / 'net.py'}:Net", "--target", "loihi",
                         "--calib", tmp_path / "x.npy", "-o", tmp_path / "b")
    assert rc == 0, se
    assert "graded" in so
    assert _lava_equals_emu(tmp_path)["lif1"].sum() > 0


def test_lava_timeout_leaves_no_process(monkeypatch):
    from strategies import LOIHI_ACC, LOIHI_FORMAT
    from snnhw.ir import LIF, Dense, Graph, Input
    g = Graph([Input("in", (3,), 1, 1.0), Dense("fc", "in", np.ones((3, 3), int), None, 1, LOIHI_ACC),
               LIF("l", "fc", (3,), np.array(0), np.array(4096), np.array(64), np.array(0), "zero", "immediate",
                   format=LOIHI_FORMAT)], kind="fixed").validate()
    x = np.ones((400, 4, 3), int)
    with pytest.raises(SnnhwError, match="did not finish"):
        simulate_in_worker(g, x, timeout=1.0)
    assert not _leftover_processes()


@settings(max_examples=6, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=lava_networks(max_layers=2, bias_step=64) | lava_conv_networks())
def test_netx_file_loaded_by_lava_dl_equals_emulator(tmp_path_factory, case):
    from snnhw.targets.loihi import netx
    from snnhw.targets.loihi.backend import simulate_netx_in_worker
    g, x = case
    # alpha = 4096 / beta = 0 are outside Loihi's du/dv fields: those layers run on MicrocodeLIF, not in netx
    assume(all(int(p.alpha) < 4096 and int(p.beta) > 0 for p in g.neurons))
    problems = netx.problems(g)
    assume(not any("runs on MicrocodeLIF" in p for p in problems))  # the range proof keeps it off Intel's LIF
    assert problems == []
    path = tmp_path_factory.mktemp("netx") / "network.net"
    netx.write(g, path)
    out = simulate_netx_in_worker(g, path, x)
    np.testing.assert_array_equal(out, emulate(g, x).spikes[g.output.name].astype(np.int64))
    again = path.with_name("again.net")
    netx.write(g, again)
    assert path.read_bytes() == again.read_bytes()
    assert not _leftover_processes()


def test_netx_names_what_it_cannot_express():
    from snnhw.ir import LIF, Dense, Flatten, Graph, Input, Pool2d
    from snnhw.targets.loihi import backend, netx
    from strategies import LOIHI_ACC, LOIHI_FORMAT
    g = Graph([Input("in", (1, 4, 4), 1, 1.0), Pool2d("pool", "in", (1, 4, 4), (2, 2), (2, 2), "sum"),
               Flatten("flat", "pool", (1, 2, 2)), Dense("fc", "flat", np.ones((2, 4), int), None, 1, LOIHI_ACC),
               LIF("l", "fc", (2,), np.array(0), np.array(4096), np.array(64), np.array(0), "zero", "immediate",
                   format=LOIHI_FORMAT)], kind="fixed").validate()
    assert any("pool" in p for p in netx.problems(g))
    assert any(note.startswith("no network.net: layer pool") for note in backend.notes(g))


# ----------------------------------------------------------------------------- issue 13 reproducers
def _loihi():
    from snnhw.targets import load
    return load("loihi")


def _chain(n_in, bits, w, dense_bias, alpha, beta, thr, reset=("zero", "immediate")):
    from snnhw.ir import LIF, Dense, Graph, Input
    from strategies import LOIHI_ACC, LOIHI_FORMAT
    return Graph([Input("in", (n_in,), bits, 1.0), Dense("fc", "in", np.asarray(w, np.int8), dense_bias, 1, LOIHI_ACC),
                  LIF("l", "fc", (len(w),), np.array(alpha), np.array(beta), np.array(thr), np.array(0), *reset,
                      format=LOIHI_FORMAT)], kind="fixed", target="loihi").validate()


def _assert_lava_run_equal(g, x):
    """Lava (through the worker) equals the emulator in spikes, u, v and the overflow it observed."""
    from snnhw.compiler.legalize import legalize
    legalize(g, _loihi())
    lava = simulate_in_worker(g, x, record_state=True)
    emu = _assert_equal(g, x, lava)
    assert lava["overflow"] == emu.overflow
    return emu, lava


def test_reproducer_a_accumulator_beyond_25_bits_runs_equal_on_microcode():
    """(a) 8-bit graded input, fan-in 2200: the IR saturates the 25-bit accumulator; Lava's Dense does
    not, so the layer runs on MicrocodeLIF, which applies the accumulator rule itself."""
    from snnhw.targets.loihi import ranges
    g = _chain(2200, 8, np.full((2, 2200), 127), None, 0, 4096, 64 * 131000)
    lp = ranges.plan(g, _loihi())[0]["l"]
    assert lp.model == "microcode" and "accumulator" in lp.why_not_intel[0]
    x = np.full((4, 1, 2200), 127)
    emu, _ = _assert_lava_run_equal(g, x)
    assert emu.overflow["fc"]["acc_saturate"] > 0


def test_reproducer_b_dense_bias_with_wrapping_current_runs_equal():
    """(b) Leaky, fan-in 2048, 2030 active inputs and a Dense bias: u wraps, so the bias cannot move
    into Lava LIF's voltage bias; MicrocodeLIF adds it to u as the IR does."""
    from snnhw.targets.loihi import ranges
    g = _chain(2048, 1, np.full((3, 2048), 127), np.array([100, -100, 0]), 0, 3000, 64 * 1000)
    lp = ranges.plan(g, _loihi())[0]["l"]
    assert lp.model == "microcode" and any("wrap" in w for w in lp.why_not_intel)
    x = np.zeros((5, 1, 2048), int)
    x[:, :, :2030] = 1
    emu, _ = _assert_lava_run_equal(g, x)
    assert emu.overflow["l"]["current_wrap_once"] > 0


def test_dense_bias_within_the_proof_moves_into_intel_lif_voltage_bias():
    """The counterpart of (b): with few inputs u provably never wraps, so the Dense bias moves into
    Intel LIF's voltage bias (exact); the reported u adds it back in state units."""
    from snnhw.ir import LIF, Dense, Graph, Input
    from snnhw.targets.loihi import ranges
    from strategies import LOIHI_ACC, LOIHI_FORMAT
    g = Graph([Input("in", (5,), 1, 1.0), Dense("fc", "in", np.array([[30, -20, 9, 4, 1], [5, 5, 5, 5, 5]], np.int8),
                                                 np.array([17, -40]), 1, LOIHI_ACC),
               LIF("l", "fc", (2,), np.array(0), np.array(3500), np.array(64 * 40), np.array(0), "zero", "immediate",
                   np.array([[0, -30], [12, 0]], np.int8), np.array([3, -2]), 1, LOIHI_ACC, LOIHI_FORMAT)],
              kind="fixed", target="loihi").validate()
    lp = ranges.plan(g, _loihi())[0]["l"]
    assert lp.model == "intel" and lp.bias_moved_to_voltage
    emu, _ = _assert_lava_run_equal(g, np.random.default_rng(4).integers(0, 2, (15, 1, 5)))
    assert emu.spikes["l"].sum() > 0


def test_reproducer_c_slow_current_decay_with_graded_input_is_refused():
    """(c) Synaptic alpha 0.9995 with graded input: u leaves 24 bits in the IR and wraps at 2^31 in
    Lava after some hundred steps; the range proof refuses it, naming layer, register and remedy."""
    from snnhw.compiler.legalize import legalize
    from snnhw.errors import UnsupportedError
    g = _chain(100, 8, np.full((2, 100), 127), None, 4094, 4000, 64 * 100000)
    with pytest.raises(UnsupportedError) as exc:
        legalize(g, _loihi())
    msg = str(exc.value)
    assert "layer l" in msg and "current u" in msg and "2147483647" in msg and "--calib" in msg


def test_reproducer_c_within_the_proof_runs_equal_over_a_long_run():
    """The same slow decay with inputs the wrap_once closes (|u| <= 2^23 for every t): accepted, and
    equal over 300 steps in which u wraps repeatedly."""
    g = _chain(4, 8, np.array([[127, 127, 127, 127], [-127, 50, 3, 0]]), None, 4094, 4000, 64 * 100000)
    rng = np.random.default_rng(1)
    emu, _ = _assert_lava_run_equal(g, rng.integers(0, 128, (300, 1, 4)))
    assert emu.overflow["l"]["current_wrap_once"] > 0


def test_reproducer_d_decay_fields_outside_loihi_run_on_microcode_without_netx():
    """(d) alpha = 1.0 and beta = 0 need du = -1 and dv = 4096, outside Loihi's 12-bit fields: not on
    Intel's LIF and not in network.net (the reason is named); MicrocodeLIF runs them exactly."""
    from snnhw.targets.loihi import netx, ranges
    g = _chain(3, 1, np.array([[20, -5, 7], [1, 2, 3]]), None, 4096, 0, 64)
    lp = ranges.plan(g, _loihi())[0]["l"]
    assert lp.model == "microcode"
    assert any("du = -1" in w for w in lp.why_not_intel) and any("dv = 4096" in w for w in lp.why_not_intel)
    assert any("du = -1" in p for p in netx.problems(g))
    rng = np.random.default_rng(2)
    _assert_lava_run_equal(g, rng.integers(0, 2, (20, 2, 3)))


def test_run_of_a_build_with_network_net_runs_that_file_too(tmp_path, monkeypatch):
    """`run --target loihi` executes the deployment file as well (hash-checked) and refuses a build
    whose network.net disagrees with the Lava process graph."""
    import snntorch as snn
    import torch
    from snnhw.compiler.pipeline import CompileOptions, compile_graph
    from snnhw.deploy import write_build
    from snnhw.frontends.snntorch_trace import to_ir
    from snnhw.targets import load as load_target
    from snnhw.targets.loihi import backend
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(12, 8), snn.Leaky(beta=0.9, reset_mechanism="zero", init_hidden=True),
                              torch.nn.Linear(8, 4), snn.Leaky(beta=0.9, reset_mechanism="zero", init_hidden=True))
    with torch.no_grad():
        net[0].weight.mul_(3.0)
        net[2].weight.mul_(3.0)
    g = compile_graph(to_ir(net, (12,)), load_target("loihi"), CompileOptions())
    (tmp_path / "b").mkdir()
    write_build(tmp_path / "b", g)
    assert (tmp_path / "b" / "network.net").exists()
    x = (np.random.default_rng(0).random((8, 2, 12)) < 0.4).astype(np.float32)
    ran = []
    real = backend.simulate_netx_in_worker
    monkeypatch.setattr(backend, "simulate_netx_in_worker", lambda *a: ran.append(1) or real(*a))
    res = backend.BACKEND.run(tmp_path / "b", x)
    out = res.spikes[g.output.name]
    assert ran == [1] and int(out.sum()) > 0
    np.testing.assert_array_equal(out, emulate(g, x).spikes[g.output.name])
    monkeypatch.setattr(backend, "simulate_netx_in_worker", lambda *a: 1 - real(*a))
    with pytest.raises(SnnhwError, match="network.net .* other output spikes"):
        backend.BACKEND.run(tmp_path / "b", x)
