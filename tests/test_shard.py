"""Sharded runs (snnhw.shard): byte-identical to one process whatever the workers or the engine."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import run_cli
from snnhw.errors import SnnhwError
from snnhw.shard import Shard, Sharding, merge, plan_shards, run_build, run_sharded

ARCH = '''
import snntorch as snn
import torch


def Net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(20, 30), snn.Leaky(beta=0.9, init_hidden=True),
                               torch.nn.Linear(30, 5), snn.Leaky(beta=0.9, init_hidden=True))
'''


@pytest.fixture(scope="module")
def emu_build(tmp_path_factory):
    import importlib.util
    import torch
    d = tmp_path_factory.mktemp("shard")
    (d / "net.py").write_text(ARCH)
    spec = importlib.util.spec_from_file_location("shard_net", d / "net.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    torch.save(mod.Net().state_dict(), d / "m.pt")
    rc, _, err = run_cli("compile", d / "m.pt", "--arch", f"{d / 'net.py'}:Net", "-t", "emu", "-o", d / "b")
    assert rc == 0, err
    x = (np.random.default_rng(0).random((12, 37, 20)) < 0.3).astype(np.float32)
    np.save(d / "x.npy", x)
    return d, x


def _assert_same(a, b):
    for field in ("spikes", "voltage", "current"):
        assert sorted(getattr(a, field)) == sorted(getattr(b, field))
        for k, v in getattr(a, field).items():
            assert np.array_equal(v, getattr(b, field)[k]), (field, k)
    assert a.overflow == b.overflow and a.overflow_source == b.overflow_source


def test_shards_cover_the_batch_in_order():
    for batch, workers, most in ((37, 2, 8), (5, 8, 256), (1000, 1, 256), (7, 3, 2)):
        shards = plan_shards(batch, workers, most)
        assert shards[0].start == 0 and shards[-1].stop == batch
        assert all(a.stop == b.start for a, b in zip(shards, shards[1:]))
        sizes = [s.stop - s.start for s in shards]
        assert max(sizes) - min(sizes) <= 1 and max(sizes) <= most and len(shards) >= min(batch, workers)
    with pytest.raises(SnnhwError):
        plan_shards(0, 2)


def test_local_workers_equal_one_process(emu_build):
    d, x = emu_build
    ref = run_build("emu", str(d / "b"), True, x)
    assert int(ref.spikes[sorted(ref.spikes)[0]].sum()) > 0
    for workers in (1, 2):
        _assert_same(run_sharded("emu", d / "b", x, record_state=True, sharding=Sharding(workers), max_samples=8), ref)


def test_workers_of_a_finished_run_exit_on_their_own_and_a_failed_run_terminates_them(emu_build, monkeypatch):
    """SIGTERM only stops work: sent to idle workers it lands in their interpreter's exit (logging and
    threading shutdown interrupted; seen hanging CI in `report --workers 2`)."""
    import multiprocessing.pool
    terminated = []
    real = multiprocessing.pool.Pool.terminate
    monkeypatch.setattr(multiprocessing.pool.Pool, "terminate", lambda self: terminated.append(1) or real(self))
    d, x = emu_build
    run_sharded("emu", d / "b", x, sharding=Sharding(2), max_samples=8)
    assert terminated == []
    bad = x.copy()
    bad[0, 30, 0] = 2.0
    with pytest.raises(SnnhwError, match="failed"):
        run_sharded("emu", d / "b", bad, sharding=Sharding(2), max_samples=8)
    assert terminated == [1]


def test_a_local_ray_cluster_equals_one_process(emu_build):
    d, x = emu_build
    ref = run_build("emu", str(d / "b"), False, x)
    _assert_same(run_sharded("emu", d / "b", x, sharding=Sharding(2, "local"), max_samples=10), ref)


def test_a_failing_shard_is_named_by_its_samples(emu_build, tmp_path):
    d, x = emu_build
    bad = x.copy()
    bad[0, 30, 0] = 2.0  # not a spike: sample 30 is refused by the backend
    with pytest.raises(SnnhwError, match=r"samples 2[0-9]\.\.3[0-9] failed: .*binary spike input"):
        run_sharded("emu", d / "b", bad, max_samples=10)


def test_merge_sums_overflow_and_concatenates():
    from snnhw.semantics import RunResult
    a = RunResult(spikes={"l": np.zeros((3, 2, 4), np.int8)}, overflow={"l": {"voltage_saturate": 2}})
    b = RunResult(spikes={"l": np.ones((3, 1, 4), np.int8)}, overflow={"l": {"voltage_saturate": 3}, "m": {"x": 1}})
    m = merge([a, b])
    assert m.spikes["l"].shape == (3, 3, 4) and m.spikes["l"][:, 2].all() and not m.spikes["l"][:, :2].any()
    assert m.overflow == {"l": {"voltage_saturate": 5}, "m": {"x": 1}}
    assert Shard(2, 5).describe() == "samples 2..4"


def test_cli_run_with_workers_writes_the_same_bytes(emu_build):
    d, _ = emu_build
    outs = []
    for i, extra in enumerate(([], ["--workers", "2"], ["--ray", "local", "--workers", "2"])):
        rc, _, err = run_cli("run", d / "b", "-i", d / "x.npy", "-o", d / f"o{i}.npz", "--record-state", *extra)
        assert rc == 0, err
        outs.append((d / f"o{i}.npz").read_bytes())
    assert outs[0] == outs[1] == outs[2]


def test_cli_run_maps_its_input_and_pads_each_shard(emu_build):
    """`run` maps a .npy input read-only and appends the extra steps shard by shard: the stored result
    equals an in-process run of the whole padded input."""
    from snnhw.arrays import load_array
    from snnhw.semantics import pad_steps
    d, x = emu_build
    mapped = load_array(d / "x.npy", mmap=True)
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable and np.array_equal(mapped, x)
    ref = run_build("emu", str(d / "b"), False, pad_steps(x, 3))
    for extra in ([], ["--workers", "2"]):
        rc, _, err = run_cli("run", d / "b", "-i", d / "x.npy", "-o", d / "padded.npz", "--extra-steps", "3", *extra)
        assert rc == 0, err
        with np.load(d / "padded.npz") as z:
            for name, s in ref.spikes.items():
                assert z[name].shape == (x.shape[0] + 3, *x.shape[1:2], *s.shape[2:])
                assert np.array_equal(z[name], s), name


def test_cli_run_stores_only_the_chosen_layers(emu_build):
    d, _ = emu_build
    rc, _, err = run_cli("run", d / "b", "-i", d / "x.npy", "-o", d / "first.npz", "--layers", "1")
    assert rc == 0, err
    with np.load(d / "first.npz") as z:
        assert sorted(z.files) == ["1", "3", "output"]
    rc, _, err = run_cli("run", d / "b", "-i", d / "x.npy", "-o", d / "bad.npz", "--layers", "nope")
    assert rc == 2 and "no population named 'nope'" in err and not (d / "bad.npz").exists()


def test_verify_and_report_give_the_same_results_with_workers_and_ray(emu_build, tmp_path, monkeypatch):
    """`verify --targets fpga` (RTL simulations sharded) and `report` are the same whatever the sharding."""
    monkeypatch.setenv("SNNHW_FPGA_SYNTH", "0")
    d, x = emu_build
    np.save(tmp_path / "x.npy", x[:4, :6])
    runs = []
    for extra in ([], ["--workers", "2"], ["--ray", "local", "--workers", "2"]):
        rc, out, err = run_cli("verify", d / "m.pt", "--arch", f"{d / 'net.py'}:Net", "-i", tmp_path / "x.npy",
                               "--targets", "fpga", "--json", "--min-class-agreement", "0", *extra)
        assert rc in (0, 1), err
        runs.append(out)
    assert runs[0] == runs[1] == runs[2]
    reports = []
    for i, extra in enumerate(([], ["--workers", "2"])):
        rc, _, err = run_cli("report", d / "b", "-i", tmp_path / "x.npy", "-o", tmp_path / f"r{i}", *extra)
        assert rc == 0, err
        reports.append((tmp_path / f"r{i}" / "report.json").read_text().replace(f"r{i}", "r"))
    assert reports[0] == reports[1]


def test_streamed_blocks_give_the_bytes_of_the_whole_run(emu_build, tmp_path, monkeypatch):
    """Blocks of 7 samples x 5 steps (emulator sessions), or whole shards from 2 workers, written
    through StreamedNpz in small pieces: the archive equals save_npz of the whole run's arrays."""
    import snnhw.arrays as arrays
    from snnhw.arrays import StreamedNpz, save_npz
    from snnhw.shard import stream_sharded
    d, x = emu_build
    whole = run_build("emu", str(d / "b"), True, x)
    ref = {**whole.spikes, **{f"{k}.voltage": v for k, v in whole.voltage.items()},
           **{f"{k}.current": v for k, v in whole.current.items()}, "output": whole.spikes["3"]}
    save_npz(tmp_path / "whole.npz", ref)
    monkeypatch.setattr(arrays, "COPY_BYTES", 333)  # many pieces into the compressor
    for i, (sharding, steps) in enumerate(((Sharding(1), 5), (Sharding(2), None))):
        seen = set()
        with StreamedNpz(tmp_path / f"s{i}.npz", {k: v.shape for k, v in ref.items() if k != "output"},
                         {"output": "3"}) as npz:
            for shard, t0, part in stream_sharded("emu", d / "b", x, True, sharding, 7, steps=steps):
                seen.add((shard.start, t0, part.spikes["1"].shape[0]))
                for name, s in part.spikes.items():
                    npz.write(name, t0, shard.start, s)
                for kind in ("voltage", "current"):
                    for name, v in getattr(part, kind).items():
                        npz.write(f"{name}.{kind}", t0, shard.start, v)
            npz.finish()
        assert (tmp_path / f"s{i}.npz").read_bytes() == (tmp_path / "whole.npz").read_bytes()
        assert len(seen) == (18 if steps else 6), seen  # 6 shards of 6-7 samples, x 3 chunks of 5, 5, 2 steps
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no part files left


# VmHWM (this process's own peak): getrusage's ru_maxrss carries the parent's (pytest's) over fork and
# exec, which would hide the child's growth below pytest's footprint
PEAK = """
import sys
from snnhw.cli import main
rc = main(sys.argv[1:])
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")))
sys.exit(rc)
"""

WIDE = '''
import snntorch as snn
import torch


def Net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(20, 1000), snn.Leaky(beta=0.9, init_hidden=True),
                               torch.nn.Linear(1000, 10), snn.Leaky(beta=0.9, init_hidden=True))
'''


@pytest.mark.slow
def test_cli_run_streams_large_outputs_in_bounded_memory(tmp_path):
    """12,000 samples x 25 steps x 1,000 neurons (300 MB of hidden-layer spikes): the peak memory
    of `snnhw run` stays within 120 MB of a 256-sample run's, and the file holds every spike."""
    import importlib.util
    import subprocess
    import sys
    import torch
    (tmp_path / "net.py").write_text(WIDE)
    spec = importlib.util.spec_from_file_location("wide_net", tmp_path / "net.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    torch.save(mod.Net().state_dict(), tmp_path / "m.pt")
    rc, _, err = run_cli("compile", tmp_path / "m.pt", "--arch", f"{tmp_path / 'net.py'}:Net", "-o", tmp_path / "b")
    assert rc == 0, err
    x = (np.random.default_rng(0).random((25, 12_000, 20)) < 0.3).astype(np.int8)
    np.save(tmp_path / "big.npy", x)
    np.save(tmp_path / "small.npy", x[:, :256])

    def peak_kb(name):
        done = subprocess.run([sys.executable, "-c", PEAK, "run", tmp_path / "b", "-i", tmp_path / f"{name}.npy",
                               "-o", tmp_path / f"{name}.npz", "--json"], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        summary = __import__("json").loads(done.stdout[:done.stdout.rindex("}") + 1])
        return int(done.stdout.split()[-1]), summary

    small, _ = peak_kb("small")
    big, summary = peak_kb("big")
    with np.load(tmp_path / "big.npz") as z:
        hidden = z["1"]
        assert hidden.shape == (summary["timesteps"], 12_000, 1000) and int(hidden.sum()) == summary["spikes"]["1"] > 0
        np.testing.assert_array_equal(hidden[:, :256], np.load(tmp_path / "small.npz")["1"])
    print(f"peak RSS: 256 samples {small / 1024:.0f} MB, 12,000 samples {big / 1024:.0f} MB")
    assert big < small + 120 * 1024, (small, big)


@pytest.mark.lava
@pytest.mark.slow
def test_verify_emu_and_loihi_on_digits_is_the_same_whatever_the_sharding(digits_model, tmp_path, monkeypatch):
    """The issue's done-means on 20 test digits: `verify --targets emu,loihi` gives the same report
    with one process, two workers and a local Ray cluster (Lava's runs are what is sharded)."""
    monkeypatch.setenv("SNNHW_LAVA_TIMEOUT", "3600")  # behaviour, not speed: a loaded machine must not fail it
    x = np.load(digits_model["x"])[:, :20]
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", digits_model["labels"][:20])
    reports = []
    for extra in ([], ["--workers", "2"], ["--ray", "local", "--workers", "2"]):
        rc, out, err = run_cli("verify", digits_model["pt"], "--arch", digits_model["arch"], "-i", tmp_path / "x.npy",
                               "--labels", tmp_path / "y.npy", "--input-kind", "graded", "--targets", "emu,loihi", "--json",
                               "--min-class-agreement", "0", *extra)
        assert rc in (0, 1), err
        reports.append(out)
    r = __import__("json").loads(reports[0])
    assert r["batch"] == 20 and r["targets"]["loihi"]["backend"]["bit_exact"] is True
    assert reports[0] == reports[1] == reports[2]
