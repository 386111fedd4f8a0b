"""Every example of examples/ at a tiny size, the snnhw.api network builder and the spike encoders."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import run_cli
from snnhw.api import Network, poisson_spikes, random_weights
from snnhw.errors import SnnhwError
from snnhw import encoders


def _deployed_everywhere(results: dict, chance: float):
    assert results["emu"]["deployed"] > chance + 0.1, results
    for target in ("loihi", "fpga"):
        assert results[target]["bit_exact"] is True, (target, results[target])


@pytest.mark.lava
def test_digits_mlp_all_targets():
    import digits_mlp_all_targets
    r = digits_mlp_all_targets.main(["--epochs", "2", "--emu-samples", "60", "--backend-samples", "2"])
    _deployed_everywhere(r, 0.1)
    assert [r[t]["samples"] for t in ("emu", "loihi", "fpga")] == [60, 2, 2]


@pytest.mark.lava
def test_digits_conv_maxpool_variant_deploys_everywhere():
    """MaxPool2d on spikes is lowered to an OR layer, so the pooled net deploys on every target (the
    avgpool and stride-2 variants' pieces are tested in test_fold_linear.py and test_fpga.py)."""
    import digits_conv
    r = digits_conv.main(["--epochs", "2", "--train-samples", "300", "--test-samples", "60",
                          "--backend-samples", "1", "--variants", "maxpool"])
    for name in ("maxpool",):
        # 2 epochs on 300 digits train little (maxpool: float IR 0.10-0.20): the deployed fixed point must
        # keep what the float IR learned, and every backend must equal the emulator
        assert r[name]["emu"]["deployed"] >= r[name]["emu"]["float_ir"] - 0.1
        for target in ("loihi", "fpga"):
            assert r[name][target]["bit_exact"] is True


@pytest.mark.lava
def test_tutorial_784_tiny():
    import tutorial_784
    r = tutorial_784.main(["--epochs", "2", "--hidden", "32", "--train-samples", "300", "--test-samples", "60",
                           "--backend-samples", "1"])
    _deployed_everywhere(r, 0.1)
    assert r["emu"]["float_ir"] == r["emu"]["snntorch"]


@pytest.mark.lava
def test_temporal_order_synaptic_rleaky():
    import temporal_order
    x, y = temporal_order.order_task(50, seed=3)
    first = x.argmax(0)  # [B, 2] spike step of each channel
    assert np.array_equal(y, (first[:, 1] < first[:, 0]).astype(int)) and x.sum() == 100
    r = temporal_order.main(["--epochs", "4", "--train-samples", "800", "--test-samples", "200",
                             "--backend-samples", "2"])
    _deployed_everywhere(r, 0.5)
    assert r["emu"]["deployed"] > 0.75


@pytest.mark.lava
def test_characters_each_neuron_prefers_its_character():
    import characters_5x3
    counts = characters_5x3.main(["--epochs", "20"])
    for source, c in counts.items():
        assert np.array_equal(c.argmax(1), np.arange(4)), (source, c)
        assert np.all(c.max(1) > np.sort(c, axis=1)[:, -2]), (source, c)  # strictly most
    assert np.array_equal(counts["emu"], counts["loihi"]) and np.array_equal(counts["emu"], counts["fpga"])


def _float_lif_reference(x, w, beta, threshold):
    """numpy float32 LIF with zero/immediate reset: v = beta v + W x; spike if v > threshold; v = 0 there."""
    v = np.zeros(w.shape[0], np.float32)
    out = []
    for xt in x:
        v = np.float32(beta) * v + (w @ xt).astype(np.float32)
        s = v > np.float32(threshold)
        v = np.where(s, np.float32(0), v)
        out.append(s)
    return np.array(out, np.float32)


def test_lif_population_example(tmp_path):
    import lif_population
    png = tmp_path / "raster.png"
    r = lif_population.main(["--steps", "300", "--png", str(png)])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    w = random_weights(100, 200, p=0.1, weight=0.25, seed=0)
    expected = _float_lif_reference(r["input"], w, float(np.exp(-1e-3 / 20e-3)), 1.0)
    assert np.array_equal(r["float_spikes"], expected)
    assert abs(r["spikes"].sum() - expected.sum()) <= 0.02 * expected.sum()
    assert r["voltage"].shape == (300, 200) and r["voltage"].max() <= 1.0


@pytest.mark.parametrize("target", ["emu", "loihi", "fpga"])
def test_api_integrator_spikes_every_fourth_step(target):
    net = Network(dt=1e-3)
    inp = net.input(1)
    pop = net.lif(1, beta=1.0, threshold=1.0)
    net.connect(inp, pop, [[0.3]])
    mon = net.monitor(pop, state=True)
    res = net.run(np.ones((20, 1)), target=target)
    assert np.array_equal(np.nonzero(mon.spikes[:, 0])[0], [3, 7, 11, 15, 19])
    assert res.spikes["lif1"] is mon.spikes and np.allclose(mon.voltage[:3, 0], [0.3, 0.6, 0.9], atol=0.01)
    assert np.allclose(res.t, np.arange(20) * 1e-3)


def test_api_refuses_a_second_input_synapse():
    net = Network()
    inp = net.input(3)
    a = net.lif(2, beta=0.9)
    b = net.lif(2, beta=0.9)
    net.connect(inp, a, np.ones((2, 3)))
    with pytest.raises(SnnhwError, match="already has an input synapse"):
        net.connect(inp, a, np.ones((2, 3)))
    c = net.lif(2, beta=0.9)
    with pytest.raises(SnnhwError, match="must be the input or a population created before"):
        net.connect(c, b, np.ones((2, 2)))
    with pytest.raises(SnnhwError, match=r"shape \(2, 3\)"):
        net.connect(inp, b, np.ones((3, 2)))
    with pytest.raises(SnnhwError, match="exactly one of beta"):
        net.lif(2, beta=0.9, tau=0.02)


def test_poisson_spikes_rate():
    x = poisson_spikes(np.array([10.0, 100.0]), steps=20_000, dt=1e-3, seed=0)
    assert np.allclose(x.mean(0), [0.01, 0.1], rtol=0.1)
    with pytest.raises(SnnhwError):
        poisson_spikes(np.array([2000.0]), steps=10, dt=1e-3)


# ----------------------------------------------------------------------------- encoders
def test_latency_equals_snntorch_spikegen():
    from snntorch import spikegen
    rng = np.random.default_rng(0)
    x = rng.random((40, 7)).astype(np.float32)
    x[0, :5] = [0.0, 1.0, 0.5, 0.01, 0.25]  # linear/normalize over 9 steps: 0.5 -> t = 4.5 -> step 4 (half to even)
    cases = [(9, dict(linear=True, normalize=True)), (9, dict(linear=True, normalize=True, clip=True)),
             (25, dict(linear=True, tau=5)), (30, dict()), (30, dict(tau=2, clip=True)),
             (12, dict(normalize=True)), (12, dict(threshold=0.2, normalize=True, clip=True))]
    for steps, kw in cases:
        ref = spikegen.latency(torch.from_numpy(x), num_steps=steps, **kw).numpy()
        assert np.array_equal(encoders.latency(x, steps, **kw), ref), kw
    assert encoders.latency(x, 9, linear=True, normalize=True)[4, 0, 2] == 1
    with pytest.raises(SnnhwError, match="beyond the 5 steps"):
        encoders.latency(x, 5)


def test_delta_equals_snntorch_spikegen():
    from snntorch import spikegen
    d = np.random.default_rng(1).random((15, 4, 6)).astype(np.float32)
    d[3, 0, 0], d[2, 0, 0] = 0.75, 0.5  # a rise of exactly 0.25: >= counts it
    for kw in (dict(), dict(padding=True), dict(threshold=0.25, off_spike=True), dict(threshold=0.25)):
        ref = spikegen.delta(torch.from_numpy(d), **kw).numpy()
        assert np.array_equal(encoders.delta(d, **kw), ref), kw
    assert encoders.delta(d, threshold=0.25)[3, 0, 0] == 1


def test_rate_is_seeded_and_has_the_right_rate():
    p = np.linspace(0, 1, 11, dtype=np.float32)
    a, b = encoders.rate(p, 4000, seed=3), encoders.rate(p, 4000, seed=3)
    assert np.array_equal(a, b) and not np.array_equal(a, encoders.rate(p, 4000, seed=4))
    assert set(np.unique(a)) <= {0.0, 1.0} and a.shape == (4000, 11)
    assert np.allclose(a.mean(0), p, atol=0.03)
    assert a[:, 0].sum() == 0 and a[:, -1].sum() == 4000
    assert np.allclose(encoders.rate(p, 4000, gain=0.5, seed=0).mean(0), p * 0.5, atol=0.03)


@pytest.fixture(scope="module")
def spike_build(digits_model, tmp_path_factory):
    """The digits MLP compiled for emu with binary spike input."""
    build = tmp_path_factory.mktemp("encode") / "build"
    rc, _, err = run_cli("compile", digits_model["pt"], "--arch", digits_model["arch"], "--input-kind", "spikes",
                         "-o", build)
    assert rc == 0, err
    return build


def test_cli_encode_equals_encoding_first(digits_model, spike_build, tmp_path):
    build = spike_build
    x_static = np.load(digits_model["x"])[0, :8]  # [B, 64] pixels in [0, 1]
    np.save(tmp_path / "static.npy", x_static)
    for kind, extra, pre in (("rate", ["--steps", "10", "--seed", "5"], encoders.rate(x_static, 10, seed=5)),
                             ("latency", ["--steps", "10"],
                              encoders.latency(x_static, 10, linear=True, normalize=True, clip=True))):
        np.save(tmp_path / "pre.npy", pre)
        rc, _, err = run_cli("run", build, "--input", tmp_path / "static.npy", "--encode", kind, *extra,
                             "-o", tmp_path / "a.npz")
        assert rc == 0, err
        rc, _, err = run_cli("run", build, "--input", tmp_path / "pre.npy", "-o", tmp_path / "b.npz")
        assert rc == 0, err
        a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
        assert a["output"].shape[0] == 10 and all(np.array_equal(a[k], b[k]) for k in b.files)
    rc, out, err = run_cli("verify", digits_model["pt"], "--arch", digits_model["arch"], "--input",
                           tmp_path / "static.npy", "--encode", "rate", "--steps", "10", "--json")
    assert rc in (0, 1) and '"timesteps": 10' in out, err


@pytest.mark.parametrize("args, message", [
    (["--encode", "rate"], "--encode rate needs --steps N"),
    (["--steps", "5"], "--steps and --seed need --encode"),
    (["--encode", "latency", "--steps", "5", "--seed", "1"], "--encode latency is deterministic"),
    (["--encode", "delta", "--steps", "5"], "--encode delta takes its timesteps from the data"),
    (["--encode", "rate", "--steps", "0"], "must be a positive integer"),
    (["--encode", "rate", "--steps", "5", "--scaled"], "data must be in [0, 1]"),
])
def test_cli_encode_bad_input_is_one_error_line(digits_model, spike_build, tmp_path, args, message):
    x = np.load(digits_model["x"])[0, :4]
    if "--scaled" in args:
        args = [a for a in args if a != "--scaled"]
        x = x * 16
    np.save(tmp_path / "static.npy", x)
    rc, out, err = run_cli("report", spike_build, "--input", tmp_path / "static.npy",
                           *args, "-o", tmp_path / "rep")
    assert rc == 2 and err.count("\n") == 1 and err.startswith("error:") and message in err, err


def test_stdp_curve_has_the_classic_shape(tmp_path):
    import stdp_curve
    out = stdp_curve.main(["--max-dt", "12", "--png", str(tmp_path / "c.png")])
    dt, dw = out["dt"], out["dw"]
    assert np.all(dw[dt > 0] > 0) and np.all(dw[dt < 0] < 0)          # pre before post potentiates
    assert np.all(np.diff(dw[dt > 0]) <= 0) and dw[dt == 1][0] > dw[dt == 12][0]  # and decays with |dt|
    assert np.all(np.diff(dw[dt < 0]) <= 0) and (tmp_path / "c.png").stat().st_size > 0


def test_stdp_digits_tiny_learns_normalized_fields(tmp_path):
    import stdp_digits
    out = stdp_digits.main(["--neurons", "6", "--train", "30", "--test", "20", "--steps", "30",
                            "--png", str(tmp_path / "f.png")])
    w = out["weights"]
    assert w.shape == (6, 64) and np.allclose(w.sum(axis=1), stdp_digits.W_TOTAL, rtol=0.05)
    net, exc = stdp_digits.build(6)  # the same start: random fields, normalized
    moved = np.abs(w - net.weights(exc)).sum(axis=1) / stdp_digits.W_TOTAL
    assert moved.min() > 0.05  # every neuron's field changed by more than 5 % of its total weight
    # and moved towards digits: the learned fields correlate better with the mean training image
    mean_img = stdp_digits.data(30, 0)[0].mean(axis=0)
    corr = lambda f: np.mean([np.corrcoef(r, mean_img)[0, 1] for r in f])
    assert corr(w) > corr(net.weights(exc)) + 0.1
    assert 0.0 <= out["accuracy"] <= 1.0 and (tmp_path / "f.png").stat().st_size > 0
