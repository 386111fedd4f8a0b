"""Shared-kernel conv cores on fpga (targets/fpga/conv.py): each kernel stored once, addresses made in
the core; RTL simulation equals the emulator bit for bit and the cycle formula equals the simulation."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from snnhw.compiler.lowering import conv_as_dense, conv_to_dense
from snnhw.errors import UnsupportedError
from snnhw.ir import LIF, Conv2d, Dense, Flatten, Graph, Input, NeuronFormat, StateFormat
from snnhw.semantics import quantize_input
from snnhw.targets.description import load
from snnhw.targets.emu.emulator import run as emulate
from snnhw.targets.fpga.backend import BACKEND
from snnhw.targets.fpga.cycles import step_cycles
from snnhw.targets.fpga.render import render_design, write_design
from snnhw.targets.fpga.report import lint
from snnhw.targets.fpga.simulate import simulate

ACC = StateFormat(17, "saturate")


@pytest.fixture(autouse=True)
def _no_synthesis(monkeypatch):
    monkeypatch.setenv("SNNHW_FPGA_SYNTH", "0")


def _fmt():
    return NeuronFormat(12, "toward_zero", 6, StateFormat(24, "wrap_once"), StateFormat(24, "saturate"), 1.0)


def _lif(name, src, shape, rng, rec=False, per_neuron=False):
    n = int(np.prod(shape))
    thr = rng.integers(2000, 4000, shape) if per_neuron else np.array(64 * 40)
    rec_w = rng.integers(-40, 40, (n, n)) if rec else None
    return LIF(name, src, tuple(shape), np.array(1000), np.array(3600), thr, np.array(0), "subtract", "immediate",
               rec_w, None, 1, ACC if rec else None, _fmt())


def _conv(name, src, in_shape, cout, k, stride, pad, rng, groups=1, acc=ACC, bias=True, delay=0):
    w = rng.integers(-90, 90, (cout, in_shape[0] // groups, k, k))
    b = rng.integers(-20, 20, (cout,)) if bias else None
    return Conv2d(name, src, w, tuple(in_shape), b, (stride, stride), (pad, pad), (1, 1), groups, delay, acc)


def _net(in_shape, in_bits, convs, rng, dense=3, rec=False, per_neuron=False):
    """Input -> (Conv2d -> LIF) per ``convs`` entry ``(cout, k, stride, pad, groups)`` -> Flatten -> Dense -> LIF."""
    nodes, src, shape = [Input("in", tuple(in_shape), in_bits, 1.0)], "in", tuple(in_shape)
    for i, (cout, k, stride, pad, groups) in enumerate(convs):
        conv = _conv(f"c{i}", src, shape, cout, k, stride, pad, rng, groups, delay=i)   # later convs: delay 1
        nodes += [conv, _lif(f"l{i}", conv.name, conv.shape, rng, rec and i == 0, per_neuron)]
        src, shape = f"l{i}", conv.shape
    n = int(np.prod(shape))
    nodes += [Flatten("flat", src, shape), Dense("fc", "flat", rng.integers(-60, 60, (dense, n)), None, 0, ACC),
              LIF("out", "fc", (dense,), np.array(0), np.array(3800), np.array(64 * 30), np.array(0), "zero",
                  "immediate", format=_fmt())]
    return Graph(nodes, kind="fixed", target="fpga").validate()


def _input(g, rng, steps=5, samples=2, density=0.4):
    shape = (steps, samples, *g.input.shape)
    if g.input.bits > 1:
        return rng.integers(-100, 100, shape) * (rng.random(shape) < density)
    return (rng.random(shape) < density).astype(np.int64)


def _events(g, x_int, spikes, plan):
    """Per step and sample, each core's input and recurrent event counts (from the emulator's spikes)."""
    T, B = x_int.shape[:2]
    counts = {g.input.name: np.count_nonzero(x_int.reshape(T, B, -1), axis=2)}
    counts.update({k: v.reshape(T, B, -1).sum(axis=2) for k, v in spikes.items()})
    lag = lambda c, d, t, b: int(c[t - d, b]) if t >= d else 0
    return lambda t, b: ([lag(counts[c.source.name], c.delay, t, b) for c in plan.cores],
                         [lag(counts[c.name], c.rec_delay, t, b) if c.has_rec else 0 for c in plan.cores])


def _check_rtl(g, x, lanes, rtl_dir, with_lint=False):
    """RTL (Icarus) == emulator: spikes, u, v, overflow counts; simulated cycles == the formula."""
    plan = BACKEND.plan(g, lanes)
    assert [c.conv is not None for c in plan.cores] == [isinstance(g.node(c.synapse), Conv2d) for c in plan.cores]
    ref = emulate(g, x, record_state=True)
    x_int = quantize_input(g, x).astype(np.int64)
    files = write_design(plan, rtl_dir)
    sim = simulate(plan, [rtl_dir / f for f in files], x_int, trace=True, simulator="icarus")
    for name in ref.spikes:
        for kind in ("spikes", "current", "voltage"):
            want = getattr(ref, kind)[name]
            np.testing.assert_array_equal(getattr(sim, kind)[name], want.reshape(getattr(sim, kind)[name].shape),
                                          err_msg=f"P={lanes} {kind} of {name}")
    assert sim.overflow == {k: v for k, v in ref.overflow.items() if k != g.input.name}
    events = _events(g, x_int, ref.spikes, plan)
    want = [[step_cycles(plan, *events(t, b)) for t in range(x.shape[0])] for b in range(x.shape[1])]
    np.testing.assert_array_equal(sim.cycles, want, err_msg=f"P={lanes} cycles per step vs the formula")
    if with_lint:
        result = lint(plan, rtl_dir)
        assert result["clean"], result["messages"]
    return ref, plan


@pytest.mark.parametrize("lanes", [1, 2, 3, 4])
def test_stride_1_conv_equals_the_emulator(tmp_path, lanes):
    """Cin = 1, 3 output channels (P = 2 and 4 leave a short last channel block), no padding."""
    rng = np.random.default_rng(lanes)
    g = _net((1, 5, 5), 1, [(3, 3, 1, 0, 1)], rng)
    ref, _ = _check_rtl(g, _input(g, rng), lanes, tmp_path, with_lint=lanes == 3)
    assert 0 < int(ref.spikes["l0"].sum()) < ref.spikes["l0"].size


@pytest.mark.parametrize("lanes", [2, 4])
def test_stride_2_padded_multichannel_graded_input_equals_the_emulator(tmp_path, lanes):
    """Cin = 2, stride 2, padding 1 (windows hang over every edge), 8-bit graded input, 5 channels
    and per-neuron thresholds."""
    rng = np.random.default_rng(10 + lanes)
    g = _net((2, 6, 5), 8, [(5, 3, 2, 1, 1)], rng, per_neuron=True)
    ref, _ = _check_rtl(g, _input(g, rng), lanes, tmp_path, with_lint=lanes == 4)
    assert 0 < int(ref.spikes["l0"].sum()) < ref.spikes["l0"].size


@pytest.mark.parametrize("lanes", [1, 3])
def test_conv_conv_dense_chain_equals_the_emulator(tmp_path, lanes):
    """conv (2 -> 4, 3x3, pad 1) -> conv (4 -> 3, 2x2, stride 2, delay 1) -> dense: the second conv
    reads the first conv core's spike list (flat C-order indices, written in the conv core's update
    order) one step late."""
    rng = np.random.default_rng(20 + lanes)
    g = _net((2, 6, 6), 1, [(4, 3, 1, 1, 1), (3, 2, 2, 0, 1)], rng)
    ref, _ = _check_rtl(g, _input(g, rng, steps=6), lanes, tmp_path, with_lint=lanes == 3)
    assert all(int(ref.spikes[n].sum()) > 0 for n in ("l0", "l1", "out")), {k: int(v.sum()) for k, v in ref.spikes.items()}


def test_grouped_recurrent_conv_and_its_overflow_counts_equal_the_emulator(tmp_path):
    """groups = 2 (lanes of a block read different input channels), a recurrent conv population, and a
    9-bit accumulator the sums overflow: counts equal the emulator's, and are nonzero."""
    rng = np.random.default_rng(5)
    conv = _conv("c0", "in", (2, 5, 5), 4, 3, 1, 1, rng, groups=2, acc=StateFormat(9, "saturate"))
    g = Graph([Input("in", (2, 5, 5), 1, 1.0), conv, _lif("l0", "c0", conv.shape, rng, rec=True)],
              kind="fixed", target="fpga").validate()
    x = _input(g, rng, steps=6)
    ref, plan = _check_rtl(g, x, 3, tmp_path, with_lint=True)
    assert plan.cores[0].has_rec and ref.overflow["c0"].get("acc_saturate", 0) > 0, ref.overflow


@settings(max_examples=12, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(st.integers(1, 3), st.integers(3, 6), st.integers(3, 6), st.integers(1, 3), st.integers(1, 3),
       st.integers(0, 2), st.sampled_from([1, 1, 2]), st.integers(1, 3), st.integers(1, 5), st.sampled_from([1, 8]),
       st.integers(0, 2**32 - 1))
def test_random_conv_geometry_equals_the_emulator(tmp_path_factory, c, h, w, k, stride, pad, groups, per_group, lanes,
                                                  in_bits, seed):
    """Random channels, image, kernel, stride, padding, groups and lanes: RTL == emulator, cycles == formula."""
    assume(h + 2 * pad >= k and w + 2 * pad >= k and c % groups == 0)
    rng = np.random.default_rng(seed)
    conv = _conv("c0", "in", (c, h, w), groups * per_group, k, stride, pad, rng, groups)
    g = Graph([Input("in", (c, h, w), in_bits, 1.0), conv, _lif("l0", "c0", conv.shape, rng)],
              kind="fixed", target="fpga").validate()
    _check_rtl(g, _input(g, rng), lanes, tmp_path_factory.mktemp("rtl"))


def test_kernel_memory_and_addresses_give_the_unrolled_matrix():
    """An independent model of the core's address generation (coordinate ROM, off = b*C*kh*kw - y0*kw
    - x0 stepped per group, window test) applied to the kernel memory rebuilds, for every group, lane
    and input, exactly the matrix the conv-to-dense pass unrolls."""
    rng = np.random.default_rng(0)
    for in_shape, cout, k, stride, pad, groups, lanes in [((2, 5, 4), 5, 3, 2, 1, 1, 2), ((4, 4, 4), 4, 2, 1, 1, 2, 3),
                                                          ((1, 6, 6), 3, 3, 1, 0, 1, 4), ((3, 3, 5), 6, 3, 3, 2, 3, 1)]:
        conv = _conv("c", "in", in_shape, cout, k, stride, pad, rng, groups)
        g = Graph([Input("in", in_shape, 1, 1.0), conv, _lif("l", "c", conv.shape, rng)], kind="fixed",
                  target="fpga").validate()
        core = BACKEND.plan(g, lanes).cores[0]
        geo, rows = core.conv, core.weight_rows()
        P = core.lanes
        assert P == min(lanes, cout)  # at most one lane per output channel
        assert rows.shape == (core.weight_words, P) == (-(-cout // P) * in_shape[0] * k * k, P)
        _, ho, wo = conv.shape
        got = np.zeros((core.size, core.source.size), np.int64)
        for grp, neurons in enumerate(core.lane_neurons()):
            b, pos = divmod(grp, geo.positions)
            y0, x0 = (pos // wo) * stride - pad, (pos % wo) * stride - pad
            off = b * geo.taps - y0 * k - x0
            for i, (lin, y, x) in enumerate(geo.coords()):
                if 0 <= y - y0 < k and 0 <= x - x0 < k:
                    for p, n in enumerate(neurons):
                        if n >= 0:
                            got[n, i] = rows[lin + off, p]
        np.testing.assert_array_equal(got, conv_as_dense(conv), err_msg=str((in_shape, cout, k, stride, pad, groups)))


def _encoder(in_hw, stride):
    """The snntorch SAE tutorial's first encoder layer: Conv2d(1, 32, 3, padding=1, stride)."""
    rng = np.random.default_rng(1)
    conv = Conv2d("enc", "in", rng.integers(-127, 127, (32, 1, 3, 3)), (1, in_hw, in_hw), rng.integers(-9, 9, (32,)),
                  (stride, stride), (1, 1), (1, 1), 1, 0, ACC)
    return Graph([Input("in", (1, in_hw, in_hw), 1, 1.0), conv, _lif("l", "enc", conv.shape, rng)],
                 kind="fixed", target="fpga").validate()


def test_sae_encoder_kernel_is_stored_once(tmp_path):
    """Conv2d(1, 32, 3, padding=1, stride=2) on 1x32x32 (the tutorial's 8.4 M unrolled weights, refused
    by max_weight_words when unrolled) plans with 288 weights in memory; on 1x12x12 (stride 1) the
    emitted weight image has 32/P words of P weights, and the RTL equals the emulator."""
    g = _encoder(32, 2)
    conv = g.node("enc")
    unrolled = int(np.prod(conv.shape)) * int(np.prod(conv.in_shape))
    assert unrolled == 8_388_608 > int(load("fpga").raw["hardware"]["max_weight_words"])
    core = BACKEND.plan(g, 8).cores[0]
    assert core.weight_words * core.lanes == 288 and core.weights.size == 288
    small = _encoder(12, 1)
    with pytest.raises(UnsupportedError, match="layer enc: 8388608 weights exceed the 4194304-word weight memory"):
        BACKEND.plan(conv_to_dense(g), 8)                    # the same layer unrolled (the fallback pass)
    rng = np.random.default_rng(2)
    x = _input(small, rng, steps=3, samples=1, density=0.05)
    _, plan = _check_rtl(small, x, 8, tmp_path)
    image = (tmp_path / f"{plan.cores[0].module}_weights.mem").read_text().split()
    assert len(image) == 4 * 9 and all(len(w) == 8 * plan.cores[0].weight_bits // 4 for w in image)


def test_maxpool_or_layer_runs_on_a_conv_core():
    """The maxpool-to-or lowering's depthwise window conv keeps its kernel on fpga (no conv-to-dense)."""
    from snnhw.compiler.lower_maxpool import or_layers
    from snnhw.compiler.pipeline import CompileOptions, compile_graph
    from snnhw.ir import Pool2d
    z, one = np.zeros((), np.float32), np.ones((), np.float32)
    g = Graph([Input("x", (2, 4, 4)), Pool2d("p", "x", (2, 4, 4), (2, 2), (2, 2), "max"),
               Flatten("f", "p", (2, 2, 2)), Dense("d", "f", np.ones((3, 8), np.float32)),
               LIF("n", "d", (3,), z, z, np.full((), 0.5, np.float32), z, "zero", "immediate")]).validate()
    fixed = compile_graph(g, load("fpga"), CompileOptions())
    window = fixed.node(next(iter(or_layers(fixed)))).input
    core = next(c for c in BACKEND.plan(fixed, 1).cores if c.synapse == window)
    assert core.conv is not None and core.conv.groups == 2 and core.weight_words == 2 * 2 * 2 * 2


def test_dilation_is_refused_in_one_line():
    rng = np.random.default_rng(0)
    conv = Conv2d("c", "in", rng.integers(-9, 9, (2, 1, 2, 2)), (1, 5, 5), None, (1, 1), (0, 0), (2, 2), 1, 0, ACC)
    g = Graph([Input("in", (1, 5, 5), 1, 1.0), conv, _lif("l", "c", conv.shape, rng)], kind="fixed",
              target="fpga").validate()
    with pytest.raises(UnsupportedError) as err:
        BACKEND.plan(g)
    assert "\n" not in str(err.value) and "layer c: dilation (2, 2)" in str(err.value)


def test_design_is_deterministic_and_the_report_counts_kernel_words(tmp_path, monkeypatch):
    """Same plan, same bytes; fpga_report.json lists each core's weight memory words."""
    from snnhw.deploy import write_build
    monkeypatch.setenv("SNNHW_FPGA_LANES", "4")
    g = _encoder(12, 1)
    assert render_design(BACKEND.plan(g, 4)) == render_design(BACKEND.plan(g, 4))
    (tmp_path / "b").mkdir()
    write_build(tmp_path / "b", g)
    report = json.loads((tmp_path / "b" / "fpga_report.json").read_text())
    assert [(c["weight_words"], c["weight_word_bits"]) for c in report["cycles"]["layers"]] == [(8 * 9, 4 * 8)]
