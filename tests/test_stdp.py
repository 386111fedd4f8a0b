"""Plastic synapses: hand-derived traces and weight updates (docs/semantics.md, Plasticity), the IR
round trip, batching, and the Lava paths against the emulator."""
from __future__ import annotations

import numpy as np
import pytest

from snnhw.errors import InvalidFileError
from snnhw.ir import LIF, Graph, Input, LearningRule, NeuronFormat, PlasticDense, Product, StateFormat, Trace, load, save
from snnhw.targets.emu.emulator import run
from snnhw.targets.emu.plastic import Learner

HALF = 2048  # trace decay 1/2 per step, in units of 2^-12
PAIR = (Product(1, 0, "y0", (("x1", 0),)), Product(-1, 0, "x0", (("y1", 0),)))


def pair_rule(**kw) -> LearningRule:
    args = dict(x1=Trace(64, HALF), y1=Trace(64, HALF))
    args.update(kw)
    return LearningRule(args.pop("dw", PAIR), **args)


def one_synapse(rule: LearningRule, w0: int = 10, delay: int = 0, w_max: int = 127) -> Graph:
    """1 pre -> 1 post. The post neuron fires from its bias alone at steps 3, 7, 11, ... (v grows by
    100000 per step, threshold 350000; one pre spike adds at most 127 << 6 = 8128)."""
    syn = PlasticDense("syn", "in", np.array([[w0]], np.int64), None, delay, StateFormat(32, "saturate"),
                       post="post", rule=rule, w_min=0, w_max=w_max)
    pop = LIF("post", "syn", (1,), np.array(0), np.array(4096), np.array(350000), np.array(100000), "zero",
              "immediate", format=NeuronFormat())
    return Graph([Input("in", (1,), 1), syn, pop], kind="fixed").validate()


def spikes_at(T: int, *steps) -> np.ndarray:
    x = np.zeros((T, 1, 1), np.float32)
    x[list(steps), 0, 0] = 1
    return x


def test_post_fires_where_the_hand_derivation_says():
    res = run(one_synapse(pair_rule()), spikes_at(12, 1))
    assert np.flatnonzero(res.spikes["post"][:, 0, 0]).tolist() == [3, 7, 11]


def test_pre_then_post_potentiates_by_the_decayed_pre_trace():
    # pre at t=1: x1 = 64; halves to 32 (t=2), 16 (t=3, post spike: dw = +16), ..., 1 (t=7: dw = +1)
    res = run(one_synapse(pair_rule()), spikes_at(8, 1))
    assert res.weights["syn"].tolist() == [[[10 + 16 + 1]]]
    res = run(one_synapse(pair_rule()), spikes_at(7, 1))
    assert res.weights["syn"].tolist() == [[[10 + 16]]]


def test_post_then_pre_depresses_by_the_decayed_post_trace():
    # post at t=3: y1 = 64; 32 (t=4), 16 (t=5, pre spike: dw = -16)
    res = run(one_synapse(pair_rule(), w0=30), spikes_at(6, 5))
    assert res.weights["syn"].tolist() == [[[30 - 16]]]


def test_weight_bounds_clip():
    res = run(one_synapse(pair_rule(), w0=120), spikes_at(8, 1))
    assert res.weights["syn"].tolist() == [[[127]]]
    res = run(one_synapse(pair_rule(), w0=5), spikes_at(6, 5))
    assert res.weights["syn"].tolist() == [[[0]]]


def test_rounding_of_fractional_updates():
    """dw = 2^-2 * y0 * x1 with trace decay 1/4 per step (post spike at t=3)."""
    rule = lambda r: LearningRule((Product(1, -2, "y0", (("x1", 0),)),), x1=Trace(64, 1024), rounding=r)
    # pre at t=1: x1 = 64 (t=1), 16 (t=2), 4 (t=3): dw = 4/4 = 1 exactly at the post spike of t=3
    assert run(one_synapse(rule("floor")), spikes_at(4, 1)).weights["syn"].tolist() == [[[11]]]
    # impulse 127 at t=0: 127 -> 31 -> 7 -> 1 at t=3; dw = 3 * 2^-2 * 1 = 0.75: nearest +1, floor 0
    r3 = lambda r: LearningRule((Product(3, -2, "y0", (("x1", 0),)),), x1=Trace(127, 1024), rounding=r)
    assert run(one_synapse(r3("nearest")), spikes_at(4, 0)).weights["syn"].tolist() == [[[11]]]
    assert run(one_synapse(r3("floor")), spikes_at(4, 0)).weights["syn"].tolist() == [[[10]]]


def test_learner_epoch_traces_by_hand():
    """t_epoch = 2: a second spike in an epoch adds its impulse to the epoch-start value; the history
    decays from there and adds the last spike's impulse at its own step."""
    syn = PlasticDense("s", "in", np.zeros((1, 1), np.int64), post="p", w_min=0, w_max=100,
                       rule=LearningRule((Product(1, 0, "u", (("x1", 0),)),), x1=Trace(64, HALF), t_epoch=2))
    L = Learner(syn, 1)
    one, zero = np.ones((1, 1)), np.zeros((1, 1))
    L.step(one, zero)      # k=1: tx = 1
    L.step(one, zero)      # k=2: again -> x1 = 0 + 64 (epoch start), tx = 2; epoch ends:
    # h0 = 64, h1 = 32 (no spike at 1: tx = 2), h2 = 16 + 64 = 80; dw = u * x1(end) = 80
    assert L.x[0, 0, 0] == 80 and L.W.tolist() == [[[80]]] and L.tx.tolist() == [[0]]
    L.step(zero, zero)
    L.step(zero, zero)     # 80 -> 40 -> 20; dw = +20
    assert L.x[0, 0, 0] == 20 and L.W.tolist() == [[[100]]]   # 80 + 20 = 100 = w_max


def test_weight_dependent_product_and_factor_clip():
    """dw = -1 * 2^0 * y0 * (w - 100) drives w towards 100: w = 10 -> 10 + 90 = 100 at one post spike.
    A factor beyond its width saturates: w - 600 clips to -512 (9-bit factor)."""
    toward = LearningRule((Product(-1, 0, "y0", (("w", -100),)),))
    assert run(one_synapse(toward), spikes_at(4)).weights["syn"].tolist() == [[[100]]]
    far = LearningRule((Product(-1, -3, "y0", (("w", -600),)),))
    # (10 - 600) clips to -512; * -1 = 512; width 9 + 4 = 13 <= 15: no shift; << 4 -> 8192 / 128 = +64
    assert run(one_synapse(far), spikes_at(4)).weights["syn"].tolist() == [[[74]]]


def test_delay_uses_the_weights_of_the_arrival_step():
    """With delay 1 the population reads W(t-1) x[t-1]: the input lags by a step, learning does not."""
    g0, g1 = one_synapse(pair_rule(), delay=0), one_synapse(pair_rule(), delay=1)
    x = spikes_at(8, 1)
    assert run(g0, x).weights["syn"].tolist() == run(g1, x).weights["syn"].tolist()


def test_batch_samples_learn_independently():
    g = one_synapse(pair_rule())
    x = np.concatenate([spikes_at(8, 1), spikes_at(8, 5), spikes_at(8)], axis=1)
    res = run(g, x)
    assert res.weights["syn"][:, 0, 0].tolist() == [27, 0 + 16, 10]  # 10 - 16 clips to w_min 0
    for b in range(3):
        assert run(g, x[:, b:b + 1]).weights["syn"][0].tolist() == res.weights["syn"][b].tolist()


def test_ir_round_trip_and_validation(tmp_path):
    g = one_synapse(LearningRule((Product(-3, 2, "x0", (("y2", -5), ("w", 7))), Product(1, -7, "u")),
                                 x2=Trace(3, 100), y2=Trace(9, 4096), t_epoch=5, rounding="floor"))
    save(g, tmp_path / "m.onnx")
    h = load(tmp_path / "m.onnx")
    assert h.nodes[1].rule == g.nodes[1].rule and (h.nodes[1].w_min, h.nodes[1].w_max) == (0, 127)
    with pytest.raises(InvalidFileError, match="bad product"):
        one_synapse(pair_rule(dw=(Product(9, 0, "y0"),)))
    with pytest.raises(InvalidFileError, match="t_epoch"):
        one_synapse(pair_rule(t_epoch=0))


# ----------------------------------------------------------------------------- Lava
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

VARS = ("x0", "y0", "x1", "x2", "y1", "y2", "y3", "w")


@st.composite
def plastic_networks(draw, lava_engine: bool):
    """Random input -> PlasticDense (delay 1, as compiled for loihi) -> LIF with optional recurrent
    inhibition, a random rule, and binary input ``[T, B, n_in]``. ``lava_engine``: only rules Lava's
    LearningDense computes exactly (decays 0, exponents >= 0, bounds [0, 255])."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_in, n_out = draw(st.integers(3, 5)), draw(st.integers(2, 3))
    products = []  # sampled_from lists start with active choices: hypothesis tries the first ones first
    for _ in range(draw(st.integers(2, 3))):
        factors = tuple((draw(st.sampled_from(("x1", "y1") + VARS)), draw(st.sampled_from([0, -3, 20, -100])))
                        for _ in range(draw(st.integers(1, 2))))
        mant = draw(st.sampled_from([3, -5, 7, -7, 1, -1, 2, 0]))
        exp = draw(st.sampled_from([0, 1]) if lava_engine else st.sampled_from([-2, -5, 0, -7, 1, 2]))
        products.append(Product(mant, exp, draw(st.sampled_from(["y0", "x0", "u"])), factors))
    decay = (lambda: 0) if lava_engine else (lambda: draw(st.sampled_from([2048, 3500, 0, 4096])))
    traces = {t: Trace(draw(st.sampled_from([37, 127, 5]) | st.integers(0, 127)), decay())
              for t in ("x1", "x2", "y1", "y2", "y3")}
    rule = LearningRule(tuple(products), t_epoch=draw(st.sampled_from([1, 2, 3])),
                        rounding=draw(st.sampled_from(["nearest", "floor"])), **traces)
    lo, hi = (0, 255) if lava_engine else draw(st.sampled_from([(0, 127), (-60, 90)]))
    syn = PlasticDense("syn", "in", rng.integers(max(lo, 0), 60, (n_out, n_in)), None, 1, StateFormat(25, "saturate"),
                       post="pop", rule=rule, w_min=lo, w_max=hi)
    rec = -rng.integers(0, 40, (n_out, n_out)) * (1 - np.eye(n_out, dtype=np.int64)) if draw(st.booleans()) else None
    pop = LIF("pop", "syn", (n_out,), np.array(0), np.array(draw(st.sampled_from([300, 4096]))),
              np.array(64 * draw(st.integers(20, 90))), np.array(0), "zero", "immediate", rec_weight=rec,
              rec_acc=StateFormat(25, "saturate") if rec is not None else None, format=NeuronFormat())
    g = Graph([Input("in", (n_in,), 1), syn, pop], kind="fixed").validate()
    x = (rng.random((draw(st.integers(16, 30)), draw(st.integers(2, 3)), n_in)) < 0.5).astype(np.int64)
    return g, x


def _same_as_emulator(g, x):
    from snnhw.targets.loihi.backend import simulate_in_worker
    emu = run(g, x)
    lava = simulate_in_worker(g, x)
    assert np.array_equal(lava["spikes"]["pop"], emu.spikes["pop"])
    assert np.array_equal(lava["weights"]["syn"], emu.weights["syn"])


@settings(max_examples=2, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(plastic_networks(lava_engine=True))
def test_lava_learning_dense_equals_emulator(case):
    """Lava's own LearningDense (bit-approximate engine) where its stochastic rounding cannot act."""
    from snnhw.targets.loihi.learning import uses_learning_dense
    g, x = case
    assert uses_learning_dense(g.node("syn"))
    _same_as_emulator(g, x)


@settings(max_examples=2, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(plastic_networks(lava_engine=False))
def test_lava_plastic_process_equals_emulator(case):
    """Any rule: snnhw's own fixed_pt Lava process (targets/loihi/learning.py)."""
    _same_as_emulator(*case)


def test_fpga_refuses_plastic_synapses_at_compile_time():
    from snnhw.compiler.pipeline import CompileOptions, compile_graph
    from snnhw.errors import UnsupportedError
    from snnhw.targets import load as load_target
    syn = PlasticDense("syn", "in", np.full((2, 3), 0.2, np.float32), post="pop", rule=pair_rule(), w_min=0.0, w_max=0.5)
    pop = LIF("pop", "syn", (2,), np.array(0, np.float32), np.array(0.9, np.float32), np.array(1.0, np.float32),
              np.array(0, np.float32), "zero", "immediate")
    g = Graph([Input("in", (3,), 0), syn, pop]).validate()
    with pytest.raises(UnsupportedError, match="plastic synapses .* not supported on fpga"):
        compile_graph(g, load_target("fpga"), CompileOptions())
    fixed = compile_graph(g, load_target("loihi"), CompileOptions())
    q = fixed.node("syn")
    # power-of-two weight step 2^-7 (0.5 * 2^7 = 64 <= 127): bounds and weights in the same units
    assert (q.w_min, q.w_max, q.delay) == (0, 64, 1) and q.weight.tolist() == [[26] * 3] * 2
    from snnhw.targets.loihi import netx
    assert any("learning" in p for p in netx.problems(fixed))
    from snnhw.targets.fpga.plan import build_plan
    from snnhw.targets.fpga.backend import BACKEND  # a loihi build handed to the fpga backend directly
    with pytest.raises(UnsupportedError, match="plastic synapses are not supported on fpga"):
        build_plan(fixed, BACKEND.target)


# ----------------------------------------------------------------------------- API, build, inspect, report
def _api_net(neurons: int = 3):
    from snnhw.api import STDP, Network
    net = Network(dt=1e-3)
    inp = net.input(6)
    exc = net.lif(neurons, tau=20e-3, threshold=1.0, name="exc")
    net.connect(inp, exc, np.full((neurons, 6), 0.3, np.float32), plasticity=STDP(w_max=1.0, a_plus=0.1, a_minus=0.05))
    return net, inp, exc


def test_api_learns_and_deploys_frozen_weights_to_fpga(tmp_path):
    from snnhw.api import poisson_spikes
    net, _, exc = _api_net()
    wm = net.weight_monitor(exc)
    x = poisson_spikes(np.array([150, 150, 150, 0, 0, 0.]), 80, 1e-3, seed=0)
    net.run(x, target="emu", learn=True)
    learned = net.weights(exc)
    assert len(wm.weights) == 1 and np.array_equal(wm.weights[0], learned)
    assert learned[:, :3].mean() > 0.3 > learned[:, 3:].max() - 1e-6  # active inputs grew, silent ones did not
    net.freeze()
    g = net.compile("fpga")  # accepted now (net.build(dir, "fpga") would also synthesize the RTL)
    syn = g.node("exc.syn")
    assert type(syn).__name__ == "Dense"  # static now: what was learned is what is deployed
    step = g.node("exc").format.state_scale * (1 << g.node("exc").format.input_shift)  # threshold units per LSB
    assert np.array_equal(syn.weight * step, learned)  # the learned weights exactly (a finer step: 2^-7)


def test_inspect_and_report_show_plastic_synapses_and_learning_energy(tmp_path):
    import json
    from conftest import run_cli
    from snnhw.api import poisson_spikes
    net, _, _ = _api_net()
    net.build(tmp_path / "b", target="loihi")
    np.save(tmp_path / "x.npy", np.stack([poisson_spikes(np.full(6, 100.0), 40, 1e-3, seed=s) for s in (0, 1)], 1))
    rc, so, se = run_cli("inspect", tmp_path / "b")
    assert rc == 0 and "PlasticDense" in so and "learns (post exc)" in so, se
    rc, so, se = run_cli("report", tmp_path / "b", "--input", tmp_path / "x.npy", "-o", tmp_path / "r")
    assert rc == 0, se
    r = json.loads((tmp_path / "r" / "report.json").read_text())
    assert "exc.syn" in r["plastic"]
    updates = (40 + 1) * 18 * 2  # (steps + 1 latency step) epochs x 18 synapses x 2 samples
    assert r["counts"]["counts"]["learning_updates"] == updates
    assert r["counts"]["energy"]["breakdown_uj"]["learning_updates"] == pytest.approx(updates * 120e-6)
    assert "Plastic synapses" in (tmp_path / "r" / "report.html").read_text()
