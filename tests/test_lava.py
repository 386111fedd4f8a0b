"""Anchored to Lava: the emulator equals Lava's own fixed_pt LIF/Dense processes, spike for spike."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

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
    _assert_equal(g, x, lava)
    assert not _leftover_processes()


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


def test_loihi_refuses_subtractive_reset_with_a_retraining_hint(tmp_path):
    import snntorch as snn
    import torch
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), snn.Leaky(beta=0.5, init_hidden=True, surrogate_disable=True))
    torch.save(net, tmp_path / "m.pt")
    rc, so, se = run_cli("compile", tmp_path / "m.pt", "--target", "loihi", "-o", tmp_path / "b")
    assert rc == 2 and "Traceback" not in se
    assert "reset_mechanism='zero'" in se and "reset_delay=False" in se
    assert not (tmp_path / "b").exists()


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
    assert netx.problems(g) == []
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
    assert backend.notes(g)[0].startswith("no network.net: layer pool")
