"""The fpga target: generated RTL simulated in Icarus/Verilator equals the emulator bit for bit.

Needs iverilog, verilator and yosys on PATH (Debian packages; see docs/targets/fpga.md).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snnhw.build import sha256
from snnhw.compiler.lowering import conv_to_dense
from snnhw.deploy import run_graph, write_build
from snnhw.errors import SnnhwError, UnsupportedError
from snnhw.ir import LIF, Conv2d, Dense, Flatten, Graph, Input, NeuronFormat, Pool2d, StateFormat
from snnhw.semantics import quantize_input
from snnhw.targets.description import load
from snnhw.targets.emu.emulator import run as emulate
from snnhw.targets.fpga import backend as fpga_backend
from snnhw.targets.fpga.backend import BACKEND
from snnhw.targets.fpga.plan import build_plan
from snnhw.targets.fpga.cycles import LAYER_OVERHEAD, STEP_OVERHEAD, step_cycles
from snnhw.targets.fpga.report import lint
from snnhw.targets.fpga.render import write_design
from snnhw.targets.fpga.simulate import simulate


@pytest.fixture(autouse=True)
def _no_synthesis(monkeypatch):
    """Builds in these tests skip yosys (test_emit_* asks for it explicitly)."""
    monkeypatch.setenv("SNNHW_FPGA_SYNTH", "0")


def _simulate(plan, x_int, rtl_dir, **kw):
    """Write ``plan``'s design into ``rtl_dir`` and simulate those files."""
    return simulate(plan, [rtl_dir / f for f in write_design(plan, rtl_dir)], x_int, **kw)


def _without_input(overflow: dict, g: Graph) -> dict:
    """Overflow counts of the registers (input saturation happens on the host, before the RTL)."""
    return {k: v for k, v in overflow.items() if k != g.input.name}

RULES = ["saturate", "wrap", "wrap_once"]


def _ints(draw, lo, hi, shape):
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).integers(lo, hi + 1, shape)


def _param(draw, lo, hi, size):
    """A scalar or a per-neuron parameter in [lo, hi], biased towards the ends of the range."""
    if draw(st.booleans()):
        return np.array(draw(st.sampled_from([lo, hi]) | st.integers(lo, hi)))
    return _ints(draw, lo, hi, (size,))


@st.composite
def fpga_networks(draw, max_layers=3, max_size=5):
    """Random Dense/LIF chains with every numeric feature of the IR the fpga target runs.

    Narrow accumulators, currents and voltages make every overflow rule fire; widths are drawn so a
    wrap_once register stays within one correction (what the RTL requires, see plan.py).
    """
    n_in = draw(st.integers(1, max_size))
    in_bits = draw(st.sampled_from([1, 1, 4, 8]))
    nodes = [Input("in", (n_in,), in_bits, 1.0)]
    prev, prev_size = "in", n_in
    for i in range(draw(st.integers(1, max_layers))):
        size = draw(st.integers(1, max_size))
        vb = draw(st.integers(10, 24))
        voltage = StateFormat(vb, draw(st.sampled_from(RULES)))
        ub = draw(st.integers(6, vb - 2 if voltage.overflow == "wrap_once" else 24))
        current = StateFormat(ub, draw(st.sampled_from(RULES)))
        shift = draw(st.integers(0, min(6, ub - 4)))
        acc_max = ub - shift - 1 if current.overflow == "wrap_once" else 20
        acc_rules = RULES[:2] if current.overflow == "wrap_once" else RULES  # wrap_once acc: |a| unbounded by bits
        acc = StateFormat(draw(st.integers(3, max(3, acc_max))), draw(st.sampled_from(acc_rules)))
        decay_bits = draw(st.sampled_from([4, 8, 12]))
        fmt = NeuronFormat(decay_bits, draw(st.sampled_from(["toward_zero", "floor"])), shift, current, voltage, 1.0)
        one = 1 << decay_bits
        wmax = draw(st.sampled_from([3, 30, 127]))
        dense_bias = _ints(draw, -20, 20, (size,)) if draw(st.booleans()) else None
        nodes.append(Dense(f"fc{i}", prev, _ints(draw, -wmax, wmax, (size, prev_size)), dense_bias,
                           draw(st.integers(0, 2)), acc))
        rec = draw(st.booleans())
        rec_w = _ints(draw, -wmax, wmax, (size, size)) if rec else None
        rec_b = _ints(draw, -9, 9, (size,)) if rec and draw(st.booleans()) else None
        nodes.append(LIF(f"lif{i}", f"fc{i}", (size,), _param(draw, 0, one, size), _param(draw, 0, one, size),
                         _param(draw, 1, min(1 << (vb - 2), 4000), size), _param(draw, -(1 << (vb - 4)), 1 << (vb - 4), size),
                         draw(st.sampled_from(["zero", "subtract", "none"])), draw(st.sampled_from(["immediate", "delayed"])),
                         rec_w, rec_b, draw(st.integers(1, 2)), acc if rec else None, fmt))
        prev, prev_size = f"lif{i}", size
    g = Graph(nodes, kind="fixed", target="fpga").validate()
    T, B = draw(st.integers(1, 10)), draw(st.integers(1, 2))
    hi = (1 << (in_bits - 1)) - 1
    x = _ints(draw, -hi, hi, (T, B, n_in)) if in_bits > 1 else _ints(draw, 0, 1, (T, B, n_in))
    return g, x


def _events(g: Graph, x_int, spikes, plan):
    """Per step, each core's input and recurrent event counts (from the emulator's spikes)."""
    T = x_int.shape[0]
    src_events = {g.input.name: np.count_nonzero(x_int.reshape(T, x_int.shape[1], -1), axis=2)}
    src_events.update({k: v.reshape(T, v.shape[1], -1).sum(axis=2) for k, v in spikes.items()})
    lag = lambda counts, d, t, b: int(counts[t - d, b]) if t >= d else 0
    return lambda t, b: ([lag(src_events[c.source.name], c.delay, t, b) for c in plan.cores],
                         [lag(src_events[c.name], c.rec_delay, t, b) if c.has_rec else 0 for c in plan.cores])


@settings(max_examples=40, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(fpga_networks(), st.sampled_from([1, 2, 3, 4, 8]))
def test_rtl_equals_emulator(tmp_path_factory, case, lanes):
    """Random networks on P synapse lanes: spikes, u, v and overflow counts equal the emulator's, and
    the cycles per step the simulation reports equal the cycle formula (targets/fpga/cycles.py)."""
    g, x = case
    ref = emulate(g, x, record_state=True)
    plan = BACKEND.plan(g, lanes)
    assert all(c.lanes == min(lanes, c.size) for c in plan.cores)  # a smaller core: one lane per neuron
    x_int = quantize_input(g, x).astype(np.int64)
    rtl = tmp_path_factory.mktemp("rtl")
    sim = _simulate(plan, x_int, rtl, trace=True, simulator="icarus")
    for name in ref.spikes:
        np.testing.assert_array_equal(sim.spikes[name], ref.spikes[name], err_msg=f"spikes of {name}")
        np.testing.assert_array_equal(sim.voltage[name], ref.voltage[name], err_msg=f"voltage of {name}")
        np.testing.assert_array_equal(sim.current[name], ref.current[name], err_msg=f"current of {name}")
    assert sim.overflow == _without_input(ref.overflow, g), "RTL overflow counters vs the emulator's counts"
    events = _events(g, x_int, ref.spikes, plan)
    expected = [[step_cycles(plan, *events(t, b)) for t in range(x.shape[0])] for b in range(x.shape[1])]
    np.testing.assert_array_equal(sim.cycles, np.array(expected), err_msg="cycles per step (report formula)")
    result = lint(plan, rtl)
    assert result["clean"], result["messages"]


def test_every_overflow_rule_in_rtl(tmp_path):
    """One network per register rule, driven past its range in the accumulator, the current and the
    voltage: the RTL equals the emulator exactly, and the RTL's own overflow counters (testbench
    counting the design's rule flags) equal the emulator's counts, which are nonzero."""
    rng = np.random.default_rng(7)
    for rule in ("saturate", "wrap", "wrap_once"):
        cur = StateFormat(10, rule)
        volt = StateFormat(12, rule if rule != "wrap_once" else "saturate")
        fmt = NeuronFormat(12, "floor", 0, cur, volt, 1.0)
        acc = StateFormat(9, "saturate" if rule == "wrap_once" else rule)
        g = Graph([Input("in", (4,), 8, 1.0), Dense("fc", "in", rng.integers(60, 127, (3, 4)), None, 0, acc),
                   LIF("l", "fc", (3,), np.array(4096), np.array(4000), np.array(900), np.array(5), "subtract",
                       "delayed", format=fmt)], kind="fixed", target="fpga").validate()
        x = rng.integers(0, 127, (12, 2, 4))
        ref = emulate(g, x, record_state=True)
        assert ref.overflow["l"].get(f"current_{rule}", 0) > 0, (rule, ref.overflow)
        assert ref.overflow["fc"].get(f"acc_{acc.overflow}", 0) > 0, (rule, ref.overflow)
        sim = _simulate(BACKEND.plan(g), quantize_input(g, x).astype(np.int64), tmp_path / rule, trace=True,
                        simulator="icarus")
        for kind in ("spikes", "voltage", "current"):
            np.testing.assert_array_equal(getattr(sim, kind)["l"], getattr(ref, kind)["l"], err_msg=f"{rule} {kind}")
        assert sim.overflow == ref.overflow, rule
    volt_rules = {"saturate", "wrap"}  # (a wrap_once voltage is refused by the plan unless far from its range)
    for rule in volt_rules:
        fmt = NeuronFormat(12, "toward_zero", 0, StateFormat(16, "saturate"), StateFormat(10, rule), 1.0)
        g = Graph([Input("in", (3,), 1, 1.0), Dense("fc", "in", np.full((2, 3), 100), None, 0, StateFormat(12, "saturate")),
                   LIF("l", "fc", (2,), np.array(0), np.array(4096), np.array(500), np.array(0), "none", "immediate",
                       format=fmt)], kind="fixed", target="fpga").validate()
        x = np.ones((8, 2, 3), np.int64)
        ref = emulate(g, x)
        assert ref.overflow["l"].get(f"voltage_{rule}", 0) > 0, (rule, ref.overflow)
        sim = _simulate(BACKEND.plan(g), x, tmp_path / f"v_{rule}", simulator="icarus")
        assert sim.overflow == ref.overflow, rule


def test_no_overflow_near_the_range_counts_zero_on_both(tmp_path):
    """A network whose voltage comes within 3% of its 12-bit range without leaving it: the RTL has the
    voltage counter (the ranges cannot rule the rule out) and it counts 0, as the emulator does."""
    fmt = NeuronFormat(12, "toward_zero", 0, StateFormat(16, "saturate"), StateFormat(12, "saturate"), 1.0)
    g = Graph([Input("in", (2,), 1, 1.0), Dense("fc", "in", np.array([[20, 20], [13, 17]]), None, 0,
                                                   StateFormat(12, "saturate")),
               LIF("l", "fc", (2,), np.array(0), np.array(4096), np.array(2000), np.array(0), "zero", "immediate",
                   format=fmt)], kind="fixed", target="fpga").validate()
    x = np.ones((120, 2, 2), np.int64)
    plan = BACKEND.plan(g)
    assert "voltage" in [site for site, *_ in plan.cores[0].counters]
    ref = emulate(g, x, record_state=True)
    sim = _simulate(plan, x, tmp_path, trace=True, simulator="icarus")
    np.testing.assert_array_equal(sim.voltage["l"], ref.voltage["l"])
    top = 2047  # the 12-bit saturate range
    assert 0.97 * top <= int(np.abs(sim.voltage["l"]).max()) < top, "the network must come close to the range"
    assert int(ref.spikes["l"].sum()) > 0
    assert ref.overflow == {} and sim.overflow == {}


def _fmt():
    return NeuronFormat(12, "toward_zero", 6, StateFormat(24, "wrap_once"), StateFormat(24, "saturate"), 1.0)


def test_conv_unrolled_into_dense_matches_emulator():
    rng = np.random.default_rng(3)
    acc = StateFormat(17, "saturate")
    conv = Conv2d("conv", "in", rng.integers(-60, 60, (2, 1, 3, 3)), (1, 5, 5), rng.integers(-3, 3, (2,)),
                  (2, 1), (1, 1), (1, 1), 1, 0, acc)
    nodes = [Input("in", (1, 5, 5), 1, 1.0), conv,
             LIF("lif0", "conv", conv.shape, np.array(0), np.array(3800), np.array(60), np.array(0), "subtract",
                 "immediate", format=_fmt()),
             Flatten("flat", "lif0", conv.shape),
             Dense("fc", "flat", rng.integers(-100, 100, (3, int(np.prod(conv.shape)))), None, 1, acc),
             LIF("out", "fc", (3,), np.array(2000), np.array(4000), np.array(100), np.array(5), "zero", "delayed",
                 format=_fmt())]
    g = Graph(nodes, kind="fixed", target="fpga").validate()
    x = rng.integers(0, 2, (6, 2, 1, 5, 5))
    lowered = conv_to_dense(g)  # the registered fallback pass; the fpga target itself runs convs on conv cores
    assert not any(isinstance(n, Conv2d) for n in lowered.nodes)
    ref, low = emulate(g, x, record_state=True), emulate(lowered, x, record_state=True)
    res = run_graph(lowered, x, record_state=True)
    assert res.spikes["lif0"].shape == (6, 2, int(np.prod(conv.shape)))
    for name in ("lif0", "out"):
        for kind in ("spikes", "voltage", "current"):  # lowered == unlowered on the emulator, RTL == lowered
            a, b, c = (getattr(r, kind)[name] for r in (ref, low, res))
            np.testing.assert_array_equal(b, a.reshape(b.shape), err_msg=f"lowered vs unlowered {kind} {name}")
            np.testing.assert_array_equal(c, b, err_msg=f"RTL vs lowered {kind} {name}")
    assert res.overflow == low.overflow == ref.overflow
    assert int(ref.spikes["lif0"].sum()) > 0


def _small_compiled():
    import snntorch as snn
    import torch
    from snnhw.compiler.pipeline import CompileOptions, compile_graph
    from snnhw.frontends.snntorch_trace import to_ir
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(20, 24), snn.Leaky(beta=0.9, init_hidden=True),
                              torch.nn.Linear(24, 4), snn.Leaky(beta=0.9, init_hidden=True))
    return compile_graph(to_ir(net, (20,)), load("fpga"), CompileOptions())


def test_emit_writes_deterministic_rtl_and_a_synthesis_report(tmp_path):
    g = _small_compiled()
    files = BACKEND.emit(g, tmp_path / "a", synthesize=True, lanes=2)
    assert "fpga_report.json" in files and "rtl/snn_top.v" in files and "rtl/tb.v" in files
    assert any(f.endswith(".mem") for f in files)
    report = json.loads((tmp_path / "a" / "fpga_report.json").read_text())
    assert report["lint"]["clean"], report["lint"]["messages"]
    ice40, xilinx = report["synthesis"]["ice40"], report["synthesis"]["xilinx"]
    assert ice40["bram"] >= 1, "weights/state must be in block RAM"
    assert xilinx["bram"] + xilinx["lut_as_memory"] > 0, "memories must map to (block or distributed) RAM"
    assert ice40["dsp"] >= 1 and xilinx["dsp"] >= 1, "the decay multipliers must use DSP blocks"
    mem_bits = sum(c.weights.size * c.weight_bits + c.size * (c.u_bits + c.v_bits + 1) for c in BACKEND.plan(g, 2).cores)
    assert ice40["ff"] < mem_bits / 2 and xilinx["ff"] < mem_bits / 2, "memories flattened into flip-flops"
    assert 50 < ice40["lut"] < 5000 and 20 < xilinx["lut"] < 5000
    assert {d["device"] for d in report["devices"]} >= {"iCE40 UP5K", "Artix-7 XC7A100T"}
    assert report["cycles"]["cycles_per_step_no_events"] < report["cycles"]["cycles_per_step_all_active"]
    placed = report["place_and_route"]["iCE40 UP5K"]
    assert placed["gate_level"]["equal"] and placed["bitstream"] in files, placed
    files_b = BACKEND.emit(g, tmp_path / "b", synthesize=True, lanes=2)
    assert files == files_b
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f"{f} differs between runs"


def _build(g: Graph, directory) -> "Path":
    directory.mkdir()
    write_build(directory, g)
    return directory


def test_compiled_network_runs_through_the_backend(tmp_path):
    g = _small_compiled()
    x = np.random.default_rng(0).integers(0, 2, (8, 3, 20))
    res, ref = BACKEND.run(_build(g, tmp_path / "b"), x, record_state=True), emulate(g, x, record_state=True)
    for name in ref.spikes:
        np.testing.assert_array_equal(res.spikes[name], ref.spikes[name])
        np.testing.assert_array_equal(res.current[name], ref.current[name])
    assert res.overflow_source == "rtl counters" and res.overflow == ref.overflow


def test_run_simulates_the_emitted_files_byte_for_byte(tmp_path, monkeypatch):
    """What runs is what was emitted: the files the simulator read hash equal to build/rtl (and the
    manifest); a modified file is refused with one line; a modified file whose manifest hash is
    updated too is what runs (its changed comparator changes the spikes)."""
    g = _small_compiled()
    build = _build(g, tmp_path / "b")
    x = np.random.default_rng(1).integers(0, 2, (8, 2, 20))
    read, real = [], fpga_backend.simulate

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        read.append(out.sources)
        return out
    monkeypatch.setattr(fpga_backend, "simulate", spy)
    ref = emulate(g, x)
    res = BACKEND.run(build, x)
    on_disk = {p.name: sha256(p) for p in sorted((build / "rtl").iterdir())}
    manifest = json.loads((build / "manifest.json").read_text())["files"]
    assert read[0] == on_disk == {k[4:]: v for k, v in manifest.items() if k.startswith("rtl/")}
    assert {"snn_top.v", "tb.v", "lif_core_0.v", "lif_core_0_weights.mem"} <= set(read[0])
    np.testing.assert_array_equal(res.spikes[g.output.name], ref.spikes[g.output.name])
    core = build / "rtl" / "lif_core_1.v"
    text = core.read_text()
    assert text.count("wire spike = v_limited > threshold;") == 1
    core.write_text(text.replace("wire spike = v_limited > threshold;", "wire spike = v_limited < threshold;"))
    with pytest.raises(SnnhwError, match="lif_core_1.v does not match its hash") as err:
        BACKEND.run(build, x)
    assert "\n" not in str(err.value)
    manifest["rtl/lif_core_1.v"] = sha256(core)
    (build / "manifest.json").write_text(json.dumps({**json.loads((build / "manifest.json").read_text()),
                                                     "files": manifest}))
    broken = BACKEND.run(build, x)
    assert not np.array_equal(broken.spikes[g.output.name], ref.spikes[g.output.name])


@pytest.mark.slow
def test_snntorch_tutorial_784_1000_10(tmp_path, monkeypatch):
    """The snntorch tutorial network compiles, simulates (Verilator) equal to the emulator, and lints."""
    import snntorch as snn
    import torch
    from snnhw.compiler.pipeline import CompileOptions, compile_graph
    from snnhw.frontends.snntorch_trace import to_ir
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(784, 1000), snn.Leaky(beta=0.95, init_hidden=True),
                              torch.nn.Linear(1000, 10), snn.Leaky(beta=0.95, init_hidden=True))
    g = compile_graph(to_ir(net, (784,)), load("fpga"), CompileOptions())
    x = (np.random.default_rng(0).random((3, 1, 784)) < 0.15).astype(np.int8)
    monkeypatch.delenv("SNNHW_FPGA_SYNTH", raising=False)
    monkeypatch.setenv("SNNHW_FPGA_LANES", "4")
    build = _build(g, tmp_path / "b")
    res, ref = BACKEND.run(build, x, record_state=True), emulate(g, x, record_state=True)
    for name in ref.spikes:
        np.testing.assert_array_equal(res.spikes[name], ref.spikes[name])
        np.testing.assert_array_equal(res.voltage[name], ref.voltage[name])
    assert int(ref.spikes[g.neurons[0].name].sum()) > 0
    report = json.loads((build / "fpga_report.json").read_text())
    assert report["lint"]["clean"], report["lint"]["messages"]
    assert report["synthesis"].startswith("skipped: 794000 weights")
    # P = 4 lanes: 250 groups of the hidden layer walk 784 events each after their restart cycle,
    # 3 groups of the output 1000
    assert [c["lanes"] for c in report["cycles"]["layers"]] == [4, 4]
    assert report["cycles"]["cycles_per_step_all_active"] == \
        250 * 785 + 4 + LAYER_OVERHEAD + 3 * 1001 + 2 + LAYER_OVERHEAD + STEP_OVERHEAD


def test_refusals_name_the_layer():
    acc = StateFormat(17, "saturate")
    pool = [Input("in", (1, 4, 4), 1, 1.0),
            Conv2d("conv", "in", np.ones((1, 1, 1, 1), np.int64), (1, 4, 4), None, acc=acc),
            LIF("lif0", "conv", (1, 4, 4), np.array(0), np.array(4096), np.array(1), np.array(0), format=_fmt()),
            Pool2d("pool", "lif0", (1, 4, 4), (2, 2), (2, 2)), Flatten("flat", "pool", (1, 2, 2)),
            Dense("fc", "flat", np.ones((2, 4), np.int64), acc=acc),
            LIF("out", "fc", (2,), np.array(0), np.array(4096), np.array(1), np.array(0), format=_fmt())]
    with pytest.raises(UnsupportedError, match="layer pool: pooling is not supported on fpga"):
        BACKEND.plan(Graph(pool, kind="fixed", target="fpga").validate())
    wide = StateFormat(32, "saturate")  # a << 6 can reach 2^37: wrap_once u would grow without bound
    grow = [Input("in", (3,), 1, 1.0), Dense("fc", "in", np.full((2, 3), 2**20), acc=wide),
            LIF("lif0", "fc", (2,), np.array(4096), np.array(4096), np.array(1), np.array(0), format=_fmt())]
    with pytest.raises(UnsupportedError, match="layer lif0: .*wrap_once current"):  # the generator's own check
        build_plan(Graph(grow, kind="fixed", target="fpga").validate(), BACKEND.target)


def test_bad_input_and_timeout_are_one_line_errors(monkeypatch, tmp_path):
    build = _build(_small_compiled(), tmp_path / "b")
    with pytest.raises(SnnhwError, match="input has shape"):
        BACKEND.run(build, np.zeros((4, 1, 19)))
    with pytest.raises(SnnhwError, match="binary spike input"):
        BACKEND.run(build, np.full((4, 1, 20), 0.5))
    monkeypatch.setenv("SNNHW_FPGA_TIMEOUT", "0.01")
    with pytest.raises(SnnhwError, match="did not finish within") as err:
        BACKEND.run(build, np.ones((50, 2, 20)))
    assert "\n" not in str(err.value)


def test_target_description_parses():
    t = load("fpga")
    assert t.backend == "snnhw.targets.fpga.backend" and t.features.conv and not t.features.pooling
    assert t.lowering == ("maxpool-to-or",) and BACKEND.target == t  # Conv2d runs on conv cores (test_fpga_conv.py)
    assert set(t.features.reset_modes) == {"zero", "subtract", "none"}
    assert t.raw["hardware"]["clock_mhz"] > 0 and t.raw["hardware"]["devices"]


def test_verilator_batch_labels_every_spike_with_its_own_step(tmp_path):
    """Regression: with Verilator, a step's last spikes could be printed after the testbench moved
    to the next sample; spikes are now labelled by the step they belong to."""
    rng = np.random.default_rng(3)
    acc = StateFormat(17, "saturate")
    fmt = _fmt()
    g = Graph([Input("in", (1, 6, 6), 8, 1.0),
               Conv2d("conv", "in", rng.integers(-60, 127, (4, 1, 3, 3)), (1, 6, 6), None, (2, 2), (1, 1), (1, 1), 1,
                      0, acc),
               LIF("l1", "conv", (4, 3, 3), np.array(0), np.array(3700), np.array(64 * 40), np.array(0), "zero",
                   "immediate", format=fmt),
               Flatten("flat", "l1", (4, 3, 3)),
               Dense("fc", "flat", rng.integers(-127, 127, (5, 36)), None, 0, acc),
               LIF("l2", "fc", (5,), np.array(0), np.array(3700), np.array(64 * 30), np.array(0), "zero", "immediate",
                   format=fmt)], kind="fixed", target="fpga").validate()
    g = conv_to_dense(g)
    x = rng.integers(0, 127, (25, 10, 1, 6, 6))
    ref = emulate(g, x)
    sim = _simulate(BACKEND.plan(g), quantize_input(g, x).astype(np.int64), tmp_path, simulator="verilator")
    assert ref.spikes["l1"].sum() > 100
    assert sim.overflow == _without_input(ref.overflow, g)
    for name in ("l1", "l2"):
        np.testing.assert_array_equal(sim.spikes[name], ref.spikes[name].reshape(sim.spikes[name].shape))


def test_lanes_from_emit_environment_or_target_toml_and_auto_fits_the_budget(tmp_path, monkeypatch):
    """P is emit(lanes=) first, then SNNHW_FPGA_LANES, then [hardware].lanes; "auto" takes the largest
    power of two whose predicted LUTs fit the budget device; a bad value is one line; the weight
    memory holds P lanes side by side (lane p of word g*fan_in + i = weight of neuron g*P + p)."""
    from snnhw.targets.fpga import lanes as fl
    g = _small_compiled()
    hw = BACKEND.target.raw["hardware"]
    monkeypatch.setenv("SNNHW_FPGA_LANES", "2")
    assert {c.lanes for c in BACKEND.plan(g).cores} == {2}
    assert {c.lanes for c in BACKEND.plan(g, 3).cores} == {3}
    monkeypatch.setenv("SNNHW_FPGA_LANES", "two")
    with pytest.raises(SnnhwError, match="SNNHW_FPGA_LANES = 'two': synapse lanes must be") as err:
        BACKEND.plan(g)
    assert "\n" not in str(err.value)
    monkeypatch.delenv("SNNHW_FPGA_LANES")
    assert hw["lanes"] == "auto"
    plan = BACKEND.plan(g)
    _, luts = fl.budget(hw)
    assert [c.lanes for c in plan.cores] == [min(hw["max_lanes"], c.size) for c in plan.cores]
    assert fl.predicted_luts(plan, hw["lut_model"]) <= luts
    small = {**hw, "lane_budget": {**hw["lane_budget"], "lut_fraction": 0.0}}
    assert {c.lanes for c in fl.choose(lambda p: build_plan(g, BACKEND.target, p), small).cores} == {1}
    tight = {**hw, "lane_budget": {**hw["lane_budget"], "lut_fraction":
                                   fl.predicted_luts(build_plan(g, BACKEND.target, 2), hw["lut_model"]) / 5280}}
    assert {c.lanes for c in fl.choose(lambda p: build_plan(g, BACKEND.target, p), tight).cores} == {2}
    BACKEND.emit(g, tmp_path, reports=False, lanes=4)
    core = BACKEND.plan(g, 4).cores[0]
    words = [int(w, 16) for w in (tmp_path / "rtl" / "lif_core_0_weights.mem").read_text().split()]
    assert len(words) == core.groups * core.fan_in
    wb = core.weight_bits
    for j, i in ((0, 0), (5, 3), (23, 19), (13, 7)):
        lane = (words[(j // 4) * core.fan_in + i] >> (j % 4 * wb)) & ((1 << wb) - 1)
        assert lane - ((lane >> (wb - 1)) << wb) == core.weights[j, i]


def test_lanes_bit_exact_recurrent_graded_and_cycles(tmp_path):
    """A recurrent layer reading graded 8-bit input on P = 1, 2, 4, 8 lanes (N = 6: P = 4 leaves a
    2-neuron last group, P = 8 a single padded group): RTL equals the emulator, cycles the formula."""
    rng = np.random.default_rng(11)
    acc = StateFormat(17, "saturate")
    g = Graph([Input("in", (5,), 8, 1.0), Dense("fc", "in", rng.integers(-90, 90, (6, 5)), rng.integers(-9, 9, (6,)), 0, acc),
               LIF("l", "fc", (6,), np.array(3000), rng.integers(3500, 4096, (6,)), np.array(64 * 40), np.array(3),
                   "subtract", "immediate", rng.integers(-60, 60, (6, 6)), None, 1, acc, _fmt())],
              kind="fixed", target="fpga").validate()
    x = rng.integers(-127, 127, (10, 2, 5))
    ref = emulate(g, x, record_state=True)
    assert 0 < int(ref.spikes["l"].sum()) < ref.spikes["l"].size
    x_int = quantize_input(g, x).astype(np.int64)
    for lanes in (1, 2, 4, 8):
        plan = BACKEND.plan(g, lanes)
        sim = _simulate(plan, x_int, tmp_path / f"p{lanes}", trace=True, simulator="icarus")
        for kind in ("spikes", "current", "voltage"):
            np.testing.assert_array_equal(getattr(sim, kind)["l"], getattr(ref, kind)["l"], err_msg=f"P={lanes} {kind}")
        events = _events(g, x_int, ref.spikes, plan)
        expected = [[step_cycles(plan, *events(t, b)) for t in range(10)] for b in range(2)]
        np.testing.assert_array_equal(sim.cycles, expected, err_msg=f"P={lanes} cycles")


def test_run_plans_with_the_lanes_the_build_was_emitted_with(tmp_path, monkeypatch):
    """A build emitted on 2 lanes is simulated (simulator choice, timeout) as a 2-lane design even
    when SNNHW_FPGA_LANES says otherwise at run time; results equal the emulator."""
    g = _small_compiled()
    monkeypatch.setenv("SNNHW_FPGA_LANES", "2")
    build = _build(g, tmp_path / "b")
    monkeypatch.setenv("SNNHW_FPGA_LANES", "8")
    seen, real = [], fpga_backend.simulate
    monkeypatch.setattr(fpga_backend, "simulate", lambda plan, *a, **k: seen.append(plan) or real(plan, *a, **k))
    x = np.random.default_rng(2).integers(0, 2, (5, 1, 20))
    res = BACKEND.run(build, x)
    assert {c.lanes for c in seen[0].cores} == {2}
    np.testing.assert_array_equal(res.spikes[g.output.name], emulate(g, x).spikes[g.output.name])


@pytest.mark.parametrize("lanes", [32, 100, 128])
def test_wide_lanes_equal_the_emulator(tmp_path, monkeypatch, lanes):
    """P = 32, 100 and 128 (the ECP5 designs of docs/targets/fpga.md): on a 40-300-10 net at 4-bit
    weights with both layers firing, spikes, u and v equal the emulator's, and every step's cycle
    count equals the formula (P = 100 divides the 300 neurons into 3 full groups, 128 leaves a
    44-neuron last group)."""
    import snntorch as snn
    import torch
    from snnhw.compiler.pipeline import CompileOptions, compile_graph
    from snnhw.frontends.snntorch_trace import to_ir
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(40, 300), snn.Leaky(beta=0.9, init_hidden=True),
                              torch.nn.Linear(300, 10), snn.Leaky(beta=0.9, init_hidden=True))
    with torch.no_grad():
        net[2].weight.mul_(6.0)
    g = compile_graph(to_ir(net, (40,)), load("fpga"), CompileOptions(weight_bits=4))
    x = (np.random.default_rng(0).random((10, 2, 40)) < 0.3).astype(np.int8)
    monkeypatch.setenv("SNNHW_FPGA_LANES", str(lanes))
    build = _build(g, tmp_path / "b")
    res, ref = BACKEND.run(build, x, record_state=True), emulate(g, x, record_state=True)
    assert all(int(s.sum()) > 0 for s in ref.spikes.values()), {k: int(s.sum()) for k, s in ref.spikes.items()}
    for name in ref.spikes:
        np.testing.assert_array_equal(res.spikes[name], ref.spikes[name])
        np.testing.assert_array_equal(res.current[name], ref.current[name])
        np.testing.assert_array_equal(res.voltage[name], ref.voltage[name])
    report = json.loads((build / "fpga_report.json").read_text())
    assert [c["lanes"] for c in report["cycles"]["layers"]] == [lanes, 10]  # 10 output neurons: 10 lanes
    plan = BACKEND.plan(g, lanes)
    x_int = quantize_input(g, x).astype(np.int64)
    sim = _simulate(plan, x_int, tmp_path / "cycles")
    events = _events(g, x_int, ref.spikes, plan)
    expected = [[step_cycles(plan, *events(t, b)) for t in range(x.shape[0])] for b in range(x.shape[1])]
    np.testing.assert_array_equal(sim.cycles, np.array(expected), err_msg=f"P={lanes} cycles per step")


def _two_layer_recurrent(rng):
    """Graded 8-bit input -> 6 recurrent neurons -> 3 neurons: both layers' weights can go to SPRAM."""
    acc = StateFormat(17, "saturate")
    return Graph([Input("in", (5,), 8, 1.0), Dense("fc", "in", rng.integers(-90, 90, (6, 5)), rng.integers(-9, 9, (6,)), 0, acc),
                  LIF("l", "fc", (6,), np.array(3000), rng.integers(3500, 4096, (6,)), np.array(64 * 40), np.array(3),
                      "subtract", "immediate", rng.integers(-60, 60, (6, 6)), None, 1, acc, _fmt()),
                  Dense("fc2", "l", rng.integers(-127, 127, (3, 6)), None, 0, acc),
                  LIF("out", "fc2", (3,), np.array(3500), np.array(3800), np.array(64 * 30), np.array(0),
                      "zero", "immediate", format=_fmt())],
                 kind="fixed", target="fpga").validate()


@pytest.mark.parametrize("lanes, words", [(1, 16384), (2, 16384), (4, 16384), (2, 8)])
def test_spram_weights_load_from_the_flash_and_equal_the_emulator(tmp_path, monkeypatch, lanes, words):
    """SPRAM style (SNNHW_FPGA_WEIGHT_MEMORY=spram): the testbench's SPI flash model serves
    rtl/weights_flash.bin, weight_loader fills both layers' SPRAM (P = 4: two SPRAMs side by side;
    8-word SPRAMs: banks stacked deep), then the RTL equals the emulator (spikes, u, v); each step's
    cycles equal the network formula and the load its own (memory.load_cycles). The flash image holds
    each layer's rows (row g*fan_in + i: lane p = weight of neuron g*P + p from input i) little-endian."""
    from snnhw.targets.fpga import memory
    dev = memory.spram_device(BACKEND.target.raw["hardware"])
    monkeypatch.setitem(dev, "spram_words", words)
    monkeypatch.setitem(dev, "spram", 64)
    monkeypatch.setenv("SNNHW_FPGA_WEIGHT_MEMORY", "spram")
    rng = np.random.default_rng(11)
    g = _two_layer_recurrent(rng)
    x = rng.integers(-127, 127, (8, 2, 5))
    ref = emulate(g, x, record_state=True)
    assert all(0 < int(s.sum()) < s.size for s in ref.spikes.values()), {k: int(s.sum()) for k, s in ref.spikes.items()}
    plan = BACKEND.plan(g, lanes)
    assert [c.weight_memory for c in plan.cores] == ["spram", "spram"]
    x_int = quantize_input(g, x).astype(np.int64)
    sim = _simulate(plan, x_int, tmp_path, trace=True, simulator="icarus")
    for name in ref.spikes:
        for kind in ("spikes", "current", "voltage"):
            np.testing.assert_array_equal(getattr(sim, kind)[name], getattr(ref, kind)[name], err_msg=f"{name} {kind}")
    events = _events(g, x_int, ref.spikes, plan)
    np.testing.assert_array_equal(sim.cycles, [[step_cycles(plan, *events(t, b)) for t in range(8)] for b in range(2)])
    assert sim.load_cycles == memory.load_cycles(plan)
    assert lint(plan, tmp_path)["clean"], lint(plan, tmp_path)["messages"]
    image = b""
    for c in plan.cores:
        P = c.lanes  # min(lanes, neurons)
        w = np.zeros((c.groups * P, c.fan_in), np.int64)
        w[:c.size] = c.weights
        n = -(-P * c.weight_bits // 8)
        for grp in range(c.groups):
            for i in range(c.fan_in):
                word = sum((int(w[grp * P + p, i]) & ((1 << c.weight_bits) - 1)) << (p * c.weight_bits)
                           for p in range(P))
                image += word.to_bytes(n, "little")
    assert (tmp_path / "weights_flash.bin").read_bytes() == image
    assert not any((tmp_path / f"{c.module}_weights.mem").exists() for c in plan.cores), "SPRAM weights in an image"


def test_weight_memory_auto_fits_ebr_then_spram_and_refuses_in_one_line(monkeypatch):
    """auto: block RAM when the memories fit the UP5K's 30 EBR; otherwise the largest weight memory
    moves to SPRAM (784-128-10 at 8-bit weights, P = 2: layer 0 in 4 SPRAMs deep, P = 8: 4 side by
    side; layer 1 in EBR); a design fitting neither (784-256-10) stays in block RAM (for a larger device); forced spram that does not fit
    and a bad style are refused in one line."""
    rng = np.random.default_rng(0)
    acc = StateFormat(17, "saturate")

    def mlp(n_in, hidden):
        lif = lambda name, src, n: LIF(name, src, (n,), np.array(0), np.array(3891), np.array(6400), np.array(0),
                                       "zero", "immediate", format=_fmt())
        return Graph([Input("in", (n_in,), 1, 1.0), Dense("fc1", "in", rng.integers(-127, 128, (hidden, n_in)), acc=acc),
                      lif("l1", "fc1", hidden), Dense("fc2", "l1", rng.integers(-127, 128, (10, hidden)), acc=acc),
                      lif("l2", "fc2", 10)], kind="fixed", target="fpga").validate()
    monkeypatch.delenv("SNNHW_FPGA_WEIGHT_MEMORY", raising=False)
    t = BACKEND.target
    assert [c.weight_memory for c in build_plan(mlp(64, 100), t, 1).cores] == ["ebr", "ebr"]
    big = mlp(784, 128)
    plan = build_plan(big, t, 2)
    assert [c.weight_memory for c in plan.cores] == ["spram", "ebr"] and plan.flash["bytes"] == 784 * 64 * 2
    assert [c.weight_memory for c in build_plan(big, t, 8).cores] == ["spram", "ebr"], "4 SPRAMs side by side"
    bigger = mlp(784, 256)
    assert [c.weight_memory for c in build_plan(bigger, t, 2).cores] == ["ebr", "ebr"], "7 SPRAMs deep: block RAM"
    with pytest.raises(UnsupportedError, match=r"exceed the iCE40 UP5K's 4 SPRAMs; use fewer lanes, --weight-bits 4"):
        build_plan(bigger, t, 2, "spram")
    monkeypatch.setenv("SNNHW_FPGA_WEIGHT_MEMORY", "spram")
    auto = BACKEND.plan(mlp(784, 32), "auto")  # P = 8 would need 4 + 4 SPRAMs side by side: auto lanes stop at 4
    assert [(c.lanes, c.weight_memory) for c in auto.cores] == [(4, "spram"), (4, "spram")]
    monkeypatch.setenv("SNNHW_FPGA_WEIGHT_MEMORY", "flash")
    with pytest.raises(SnnhwError, match="SNNHW_FPGA_WEIGHT_MEMORY = 'flash': the weight memory must be one of auto, ebr, spram"):
        build_plan(big, t, 2)


def test_a_spram_build_runs_from_its_own_files(tmp_path, monkeypatch):
    """A build emitted with SPRAM weights holds rtl/weights_flash.bin (hash-checked like every RTL
    file) and is simulated as emitted, loader included, even when the environment says ebr at run time."""
    g = _small_compiled()
    monkeypatch.setenv("SNNHW_FPGA_WEIGHT_MEMORY", "spram")
    build = _build(g, tmp_path / "b")
    monkeypatch.setenv("SNNHW_FPGA_WEIGHT_MEMORY", "ebr")
    report = json.loads((build / "fpga_report.json").read_text())
    assert report["weight_memory"]["layers"] == ["spram", "spram"]
    assert report["weight_memory"]["program"] == "iceprog -o 1048576 rtl/weights_flash.bin"
    assert "rtl/weights_flash.bin" in json.loads((build / "manifest.json").read_text())["files"]
    x = np.random.default_rng(2).integers(0, 2, (5, 1, 20))
    res = BACKEND.run(build, x)
    np.testing.assert_array_equal(res.spikes[g.output.name], emulate(g, x).spikes[g.output.name])
