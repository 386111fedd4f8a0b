"""The CLI as a user types it: compile, run, inspect, targets; bad input; atomic, deterministic builds."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from conftest import run_cli


@pytest.fixture(scope="module")
def emu_build(digits_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("b") / "build"
    rc, so, se = run_cli("compile", digits_model["pt"], "--arch", digits_model["arch"], "--target", "emu",
                         "--calib", digits_model["x"], "-o", out, "-v")
    assert rc == 0, se
    assert "quantize" in so and "legalize" in so
    return out


def test_compile_run_inspect_targets(emu_build, digits_model, tmp_path):
    out = tmp_path / "out.npz"
    rc, so, se = run_cli("run", emu_build, "--input", digits_model["x"], "-o", out, "--json")
    assert rc == 0, se
    summary = json.loads(so)
    res = np.load(out)
    assert set(res.files) == {"lif1", "lif2", "output"}
    assert res["output"].shape == (25, 60, 10) and res["output"].dtype == np.int8
    assert summary["spikes"]["lif2"] == int(res["lif2"].sum())
    # fixed point keeps the float accuracy of this model within a few samples
    with torch.no_grad():
        float_out = digits_model["net"](torch.from_numpy(np.load(digits_model["x"])[0])).numpy()
    y = digits_model["labels"]
    float_acc = (float_out.sum(0).argmax(-1) == y).mean()
    fixed_acc = (res["output"].sum(0).argmax(-1) == y).mean()
    assert fixed_acc >= float_acc - 0.05
    rc, so, _ = run_cli("inspect", emu_build, "--json")
    info = json.loads(so)
    assert rc == 0 and info["manifest"]["target"] == "emu"
    assert [n["op"] for n in info["nodes"]] == ["Input", "Dense", "LIF", "Dense", "LIF"]
    rc, so, _ = run_cli("inspect", emu_build)
    assert rc == 0 and "lif2" in so
    rc, so, _ = run_cli("targets", "--json")
    assert rc == 0 and {"emu", "loihi"} <= set(json.loads(so))


def test_record_state_traces(emu_build, digits_model, tmp_path):
    rc, _, se = run_cli("run", emu_build, "--input", digits_model["x"], "-o", tmp_path / "o.npz", "--record-state")
    assert rc == 0, se
    res = np.load(tmp_path / "o.npz")
    assert res["lif1.voltage"].shape == (25, 60, 100) and res["lif1.current"].dtype == np.int64


def test_same_input_gives_byte_identical_artifacts(digits_model, tmp_path):
    hashes = []
    for name in ("a", "b"):
        rc, _, se = run_cli("compile", digits_model["pt"], "--arch", digits_model["arch"], "--calib",
                            digits_model["x"], "-o", tmp_path / name)
        assert rc == 0, se
        hashes.append({f: (tmp_path / name / f).read_bytes() for f in os.listdir(tmp_path / name)})
        rc, _, _ = run_cli("run", tmp_path / name, "--input", digits_model["x"], "-o", tmp_path / f"{name}.npz")
        assert rc == 0
    assert hashes[0] == hashes[1]
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def _assert_clean_error(rc, so, se, words):
    assert rc == 2, (rc, so, se)
    assert "Traceback" not in se + so
    lines = [line for line in se.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), se
    assert words in se, se


def test_bad_model_files(digits_model, tmp_path):
    good = digits_model["pt"].read_bytes()
    (tmp_path / "trunc.pt").write_bytes(good[: len(good) // 2])
    (tmp_path / "random.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    (tmp_path / "empty.pt").write_bytes(b"")
    for name, words in (("trunc.pt", "not a readable torch file"), ("random.pt", "not a readable torch file"),
                        ("empty.pt", "empty"), ("missing.pt", "cannot read model")):
        out = tmp_path / f"build-{name}"
        rc, so, se = run_cli("compile", tmp_path / name, "--arch", digits_model["arch"], "-o", out)
        _assert_clean_error(rc, so, se, words)
        assert not out.exists()
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(f".build-{name}")]


def test_bad_arch_and_shapes(digits_model, tmp_path):
    pt, arch = digits_model["pt"], digits_model["arch"]
    cases = [
        (["--arch", "nofile.py:Net"], "does not exist"),
        (["--arch", arch.replace(":Net", ":Nope")], "defines no 'Nope'"),
        (["--arch", "justafile"], "FILE.py:NAME"),
        (["--arch", arch, "--input-shape", "3,x"], "--input-shape"),
        (["--arch", arch, "--input-shape", "65"], "failed"),
        (["--arch", arch, "--input-shape", "100000,100000"], "values per sample"),
        (["--arch", arch, "--target", "tpu"], "unknown target"),
    ]
    for extra, words in cases:
        rc, so, se = run_cli("compile", pt, *extra, "-o", tmp_path / "b")
        _assert_clean_error(rc, so, se, words)
        assert not (tmp_path / "b").exists()


def test_bad_run_inputs(emu_build, tmp_path):
    bad = {
        "rank.npy": np.zeros((25, 64)),
        "shape.npy": np.zeros((25, 2, 63)),
        "nan.npy": np.full((3, 1, 64), np.nan),
        "text.npy": np.array(["a", "b"]),
    }
    for name, arr in bad.items():
        np.save(tmp_path / name, arr)
    (tmp_path / "garbage.npy").write_bytes(b"not numpy at all")
    for name, words in (("rank.npy", "takes [T, B, 64]"), ("shape.npy", "takes [T, B, 64]"), ("nan.npy", "NaN"),
                        ("text.npy", "dtype"), ("garbage.npy", "not a readable .npy"), ("nope.npy", "does not exist")):
        rc, so, se = run_cli("run", emu_build, "--input", tmp_path / name, "-o", tmp_path / "o.npz")
        _assert_clean_error(rc, so, se, words)
        assert not (tmp_path / "o.npz").exists()
    rc, so, se = run_cli("run", tmp_path / "nobuild", "--input", tmp_path / "rank.npy", "-o", tmp_path / "o.npz")
    _assert_clean_error(rc, so, se, "does not exist")


def test_tampered_build_is_refused(emu_build, digits_model, tmp_path):
    import shutil
    b = tmp_path / "b"
    shutil.copytree(emu_build, b)
    data = bytearray((b / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (b / "model.onnx").write_bytes(bytes(data))
    rc, so, se = run_cli("run", b, "--input", digits_model["x"], "-o", tmp_path / "o.npz")
    _assert_clean_error(rc, so, se, "does not match its hash")


def test_failed_rebuild_keeps_the_existing_build(emu_build, digits_model, tmp_path):
    import shutil
    b = tmp_path / "keep"
    shutil.copytree(emu_build, b)
    before = {p.name: p.read_bytes() for p in b.iterdir()}
    (tmp_path / "bad.pt").write_bytes(b"PK\x03\x04 broken zip")
    rc, so, se = run_cli("compile", tmp_path / "bad.pt", "--arch", digits_model["arch"], "-o", b)
    _assert_clean_error(rc, so, se, "not a readable torch file")
    assert {p.name: p.read_bytes() for p in b.iterdir()} == before


def test_empty_model_is_refused(tmp_path):
    import torch
    torch.save(torch.nn.Sequential(), tmp_path / "empty.pt")
    rc, so, se = run_cli("compile", tmp_path / "empty.pt", "--input-shape", "4", "-o", tmp_path / "b")
    _assert_clean_error(rc, so, se, "called no layer")
    assert not (tmp_path / "b").exists()


def test_loihi_builds_are_byte_identical(digits_model, tmp_path):
    files = []
    for name in ("a", "b"):
        rc, _, se = run_cli("compile", digits_model["pt"], "--arch", digits_model["arch"], "--target", "loihi",
                            "--calib", digits_model["x"], "-o", tmp_path / name)
        assert rc == 0, se
        files.append({f: (tmp_path / name / f).read_bytes() for f in os.listdir(tmp_path / name)})
    assert {"network.net", "mapping.json", "model.onnx"} <= set(files[0])
    assert files[0] == files[1]
