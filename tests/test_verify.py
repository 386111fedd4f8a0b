"""`snnhw verify`: float reference vs fixed point vs backends, with checks that can fail."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli


@pytest.fixture(scope="module")
def small_input(digits_model, tmp_path_factory):
    d = tmp_path_factory.mktemp("v")
    np.save(d / "x.npy", np.load(digits_model["x"])[:, :12])
    np.save(d / "y.npy", digits_model["labels"][:12])
    np.save(d / "x4.npy", np.load(digits_model["x"])[:, :4])  # Lava runs one sample at a time
    np.save(d / "y4.npy", digits_model["labels"][:4])
    return d


def test_verify_passes_and_reports_every_layer(digits_model, small_input):
    rc, so, se = run_cli("verify", digits_model["pt"], "--arch", digits_model["arch"], "--input",
                         small_input / "x4.npy", "--labels", small_input / "y4.npy", "--targets", "emu,loihi,fpga", "--json")
    assert rc == 0, se
    r = json.loads(so)
    assert r["passed"] and r["layers"] == ["lif1", "lif2"]
    # the snntorch model itself and the float IR agree spike for spike
    assert all(L["spike_match"] == 1.0 for L in r["snntorch"]["layers"].values())
    emu, loihi, fpga = r["targets"]["emu"], r["targets"]["loihi"], r["targets"]["fpga"]
    assert emu["latency"] == 0 and loihi["latency"] == 2 and fpga["latency"] == 0
    # the three backends agree bit for bit on every layer
    assert loihi["backend"]["bit_exact"] is True and fpga["backend"]["bit_exact"] is True
    for e in (emu, loihi):
        assert set(e["layers"]) == {"lif1", "lif2"}
        assert 0.8 <= e["layers"]["lif2"]["spike_match"] <= 1.0
        assert e["accuracy"] is not None
    names = {(c["target"], c["check"].split(" ")[0]) for c in r["checks"]}
    assert ("loihi", "backend") in names and ("emu", "accuracy") in names


def test_verify_fails_on_a_forced_bad_quantization(digits_model, small_input):
    rc, so, se = run_cli("verify", digits_model["pt"], "--arch", digits_model["arch"], "--input",
                         small_input / "x.npy", "--labels", small_input / "y.npy", "--weight-bits", "2")
    assert rc == 1, (so, se)
    assert "FAIL" in so and "verification failed" in so
    first = [line for line in so.splitlines() if line.startswith("│ lif1")][0]
    assert "->" in first  # the first divergence is located


def test_verify_fail_on_overflow(digits_model, small_input):
    rc, so, _ = run_cli("verify", digits_model["pt"], "--arch", digits_model["arch"], "--input",
                        small_input / "x.npy", "--fail-on-overflow", "--json")
    r = json.loads(so)
    total = sum(sum(d.values()) for d in r["targets"]["emu"]["overflow"].values())
    assert (rc == 1) == (total > 0)
    assert any(c["check"] == "no overflow" for c in r["checks"])


def test_verify_bad_labels(digits_model, small_input, tmp_path):
    np.save(tmp_path / "y.npy", np.zeros(3))
    rc, so, se = run_cli("verify", digits_model["pt"], "--arch", digits_model["arch"], "--input",
                         small_input / "x.npy", "--labels", tmp_path / "y.npy")
    assert rc == 2 and "--labels has 3 entries for 12 samples" in se and "Traceback" not in se
