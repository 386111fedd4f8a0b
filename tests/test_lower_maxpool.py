"""The maxpool-to-or lowering: max pooling of spikes runs on loihi and fpga as an exact OR layer."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import snntorch as snn
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from snnhw.compiler.lower_maxpool import lower_maxpool, or_layers, or_parameters
from snnhw.compiler.pipeline import CompileOptions, compile_graph, compile_stages, passes_for
from snnhw.errors import UnsupportedError
from snnhw.frontends.snntorch_trace import to_ir
from snnhw.ir import LIF, Conv2d, Dense, Flatten, Graph, Input, Pool2d, StateFormat
from snnhw.targets import description
from snnhw.targets.emu.emulator import run
from strategies import LOIHI_FORMAT, _ints

ACC = StateFormat(24, "wrap")


def _pop(draw, name, src, shape, bias_ok):
    """A random fixed-point population (every reset, decays, per-neuron or scalar parameters)."""
    per = shape if draw(st.booleans()) else ()
    return LIF(name, src, shape, _ints(draw, 0, 4096, per) if draw(st.booleans()) else np.array(0),
               _ints(draw, 0, 4096, per), _ints(draw, 1, 900, per),
               _ints(draw, -200, 200, per) if bias_ok and draw(st.booleans()) else np.array(0),
               draw(st.sampled_from(["zero", "subtract", "none"])), draw(st.sampled_from(["immediate", "delayed"])),
               format=LOIHI_FORMAT)


@st.composite
def pooled_networks(draw):
    """A fixed IR with one or two max pools of spikes (of a conv population or of the 1-bit input)
    read by Flatten + Dense, by a Conv2d, or by a population directly; random biases; and the
    target whose description the lowering reads (loihi: delay 1, fpga: delay 0)."""
    t = description.load(draw(st.sampled_from(["loihi", "fpga"])))
    d = t.numerics.synapse_delay
    c, h, w = draw(st.integers(1, 3)), draw(st.integers(3, 7)), draw(st.integers(3, 7))
    nodes = [Input("in", (c, h, w), 1, 1.0)]
    src, shape = "in", (c, h, w)
    if draw(st.booleans()):
        co = draw(st.integers(1, 3))
        conv = Conv2d("c1", "in", _ints(draw, -40, 90, (co, c, 3, 3)), (c, h, w),
                      _ints(draw, -30, 30, (co,)) if draw(st.booleans()) else None, (1, 1), (1, 1), (1, 1), 1, d, ACC)
        nodes += [conv, _pop(draw, "l1", "c1", conv.shape, True)]
        src, shape = "l1", conv.shape
    pools = []
    for i in range(draw(st.integers(1, 2))):
        k = (draw(st.integers(1, min(3, shape[1]))), draw(st.integers(1, min(3, shape[2]))))
        p = Pool2d(f"p{i}", src, shape, k, (draw(st.integers(1, 3)), draw(st.integers(1, 3))), "max")
        nodes.append(p)
        pools.append(p.name)
        src, shape = p.name, p.shape
    bias = draw(st.booleans())
    reader = draw(st.sampled_from(["dense", "conv", "population"]))
    if reader == "dense":
        n = int(np.prod(shape))
        m = draw(st.integers(1, 4))
        nodes += [Flatten("f", src, shape), Dense("fc", "f", _ints(draw, -60, 127, (m, n)),
                                                 _ints(draw, -40, 40, (m,)) if bias else None, d, ACC)]
        src, shape = "fc", (m,)
    elif reader == "conv":
        co = draw(st.integers(1, 3))
        conv = Conv2d("c2", src, _ints(draw, -60, 127, (co, shape[0], 1, 1)), shape,
                      _ints(draw, -40, 40, (co,)) if bias else None, (1, 1), (0, 0), (1, 1), 1, d, ACC)
        nodes.append(conv)
        src, shape = "c2", conv.shape
    nodes.append(_pop(draw, "out", src, shape, bias))
    g = Graph(nodes, kind="fixed", target=t.name).validate()
    T, B = draw(st.integers(1, 10)), draw(st.integers(1, 3))
    density = draw(st.sampled_from([0.05, 0.3, 0.8]))
    x = (np.random.default_rng(draw(st.integers(0, 2**32 - 1))).random((T, B, c, h, w)) < density).astype(np.int64)
    return g, x, t, pools, reader, bias


def delayed_reference(g: Graph, pools: list, reader: str, d: int) -> Graph:
    """``g`` with the synapse reading the last pool delayed by ``d`` per pool (a population reading
    it directly: through an identity depthwise conv delayed by ``d`` more): what the lowering must equal."""
    extra = d * len(pools)
    nodes = []
    for n in g.nodes:
        if reader == "population" and n.name == "out":
            c = n.shape[0]
            nodes.append(Conv2d("id", n.input, np.ones((c, 1, 1, 1), np.int64), tuple(n.shape), None, (1, 1), (0, 0),
                                (1, 1), c, extra + d, ACC))
            n = replace(n, input="id")
        elif n.name in ("fc", "c2"):
            n = replace(n, delay=n.delay + extra)
        nodes.append(n)
    return Graph(nodes, kind="fixed", target=g.target).validate()


def _window_max(p: Pool2d, x: np.ndarray) -> np.ndarray:
    T, B = x.shape[:2]
    win = np.lib.stride_tricks.sliding_window_view(x.reshape(T * B, *p.in_shape), p.kernel, axis=(2, 3))
    return win[:, :, ::p.stride[0], ::p.stride[1]].max(axis=(4, 5)).reshape(T, B, *p.shape)


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(pooled_networks())
def test_or_lowering_equals_the_max_pool_with_the_added_delay(case):
    """Every population of the original graph: spikes, u, v and overflow counts equal bit for bit
    those of the graph with the pool's readers delayed as the OR layers delay them (biases
    included); with d = 0 that is the original graph. Each OR layer spikes exactly where its
    window held a spike d steps before. Without biases, the output is the unlowered run shifted by
    the added latency."""
    g, x, t, pools, reader, bias = case
    d = t.numerics.synapse_delay
    low = lower_maxpool(g, t)
    assert not any(isinstance(n, Pool2d) for n in low.nodes)
    assert sorted(or_layers(low).values()) == sorted(pools)
    ref = delayed_reference(g, pools, reader, d)
    a, b = run(ref, x, record_state=True), run(low, x, record_state=True)
    for p in g.neurons:
        for kind in ("spikes", "current", "voltage"):
            np.testing.assert_array_equal(getattr(b, kind)[p.name], getattr(a, kind)[p.name], err_msg=f"{p.name} {kind}")
    for name in ("l1", "out", "c1", "fc", "c2"):
        assert b.overflow.get(name, {}) == a.overflow.get(name, {}), name
    spikes = {"in": x, **b.spikes}
    for k, (or_name, pool_name) in enumerate(sorted(or_layers(low).items(), key=lambda kv: kv[1])):
        p = g.node(pool_name)
        src = spikes["in"] if p.input == "in" else spikes[p.input if p.input not in or_layers(low).values()
                                                            else f"{p.input}.or"]
        want = _window_max(p, src)
        want = np.concatenate([np.zeros_like(want[:d]), want])[:x.shape[0]]
        np.testing.assert_array_equal(b.spikes[or_name], want, err_msg=or_name)
        assert not b.voltage[or_name].any()  # reset after a spike, nothing added otherwise
        w = int(low.node(low.node(or_name).input).weight.max())
        np.testing.assert_array_equal(b.current[or_name] > 0, want.astype(bool))
        assert np.all(b.current[or_name] % (w << low.node(or_name).format.input_shift) == 0)
        assert not any(b.overflow.get(or_name, {}).values())
    if d == 0 and reader != "population":
        np.testing.assert_array_equal(b.spikes["out"], run(g, x).spikes["out"])
    if not bias and np.all(g.node("out").bias == 0):  # from rest, a population without input stays silent
        shift = d * len(pools) + (d if reader == "population" else 0)
        T = x.shape[0]
        pad = np.zeros((shift, *x.shape[1:]), x.dtype)
        late = run(low, np.concatenate([x, pad])).spikes["out"]
        early = run(g, np.concatenate([x, pad])).spikes["out"]
        assert not late[:shift].any()
        np.testing.assert_array_equal(late[shift:shift + T], early[:T])


def test_or_parameters_come_from_the_target_description():
    """loihi: thresholds are vth << 6, so the smallest is 64 and one spike must give more: weight 2;
    fpga: threshold 1, weight 1. A description with other formats gives other values."""
    assert or_parameters(description.load("loihi")) == (2, 64)
    assert or_parameters(description.load("fpga")) == (1, 1)
    t = description.load("fpga")
    coarse = replace(t, numerics=replace(t.numerics, threshold_lsb_bits=8, input_shift=3))
    assert or_parameters(coarse) == (33, 256)


NET_PY = """
import snntorch as snn
from torch import nn
def Net(pool_on="spikes", channels=2):
    z = dict(init_hidden=True, reset_mechanism="zero")
    conv, pool = nn.Conv2d(1, channels, 3, padding=1), nn.MaxPool2d(2)
    body = [conv, snn.Leaky(0.9, **z), pool] if pool_on == "spikes" else [conv, pool, snn.Leaky(0.9, **z)]
    return nn.Sequential(*body, nn.Flatten(), nn.Linear(channels * 9, 3), snn.Leaky(0.8, **z))
"""
_NS: dict = {}
exec(NET_PY, _NS)
_snn_net = _NS["Net"]


def test_snntorch_maxpool_on_spikes_compiles_for_loihi_and_fpga_and_keeps_the_pool_on_emu():
    torch.manual_seed(0)
    g = to_ir(_snn_net(), (1, 6, 6))
    loihi = compile_graph(g, description.load("loihi"), CompileOptions())
    assert [type(n).__name__ for n in loihi.nodes] == ["Input", "Conv2d", "LIF", "Conv2d", "LIF", "Flatten", "Dense",
                                                        "LIF"]
    pool = next(n for n in g.nodes if isinstance(n, Pool2d)).name
    assert or_layers(loihi) == {f"{pool}.or": pool}
    window = loihi.node(f"{pool}.window")
    assert window.groups == 2 and window.delay == 1 and np.all(window.weight == 2)
    fpga = compile_graph(g, description.load("fpga"), CompileOptions())
    assert fpga.meta["lowered"] == "maxpool-to-or" and f"{pool}.or" in [p.name for p in fpga.neurons]
    emu = compile_graph(g, description.load("emu"), CompileOptions())
    assert any(isinstance(n, Pool2d) and n.mode == "max" for n in emu.nodes) and not or_layers(emu)
    from snnhw.semantics import latency
    assert latency(loihi) == latency(compile_stages(g, description.load("loihi"), CompileOptions())[0]) + 1 == 3


def test_or_layer_runs_on_intels_lif_on_loihi():
    """alpha = 0 and beta = 4096 (no decay; the OR's v is 0 after every step anyway) keep du and dv
    inside Loihi's fields: the OR layer is one Intel's LIF runs."""
    from snnhw.targets.loihi import ranges
    torch.manual_seed(0)
    fixed = compile_graph(to_ir(_snn_net(), (1, 6, 6)), description.load("loihi"), CompileOptions())
    plans, problems = ranges.plan(fixed, description.load("loihi"))
    name = next(iter(or_layers(fixed)))
    assert not problems and plans[name].model == ranges.INTEL, plans[name].why_not_intel


@pytest.mark.parametrize("target", ["loihi", "fpga"])
def test_max_pooling_of_currents_is_refused_in_one_line_with_the_alternatives(target):
    torch.manual_seed(0)
    g = to_ir(_snn_net(pool_on="currents"), (1, 6, 6))
    with pytest.raises(UnsupportedError) as exc:
        compile_graph(g, description.load(target), CompileOptions())
    msg = str(exc.value)
    assert "\n" not in msg and "max pooling (on synaptic currents) is not supported on " + target in msg
    for alternative in ("nn.AvgPool2d", "stride-2 nn.Conv2d", "after a spiking layer", "--target emu"):
        assert alternative in msg, msg
    emu = compile_graph(g, description.load("emu"), CompileOptions())
    assert any(isinstance(n, Pool2d) and n.mode == "max" for n in emu.nodes)


def test_max_pooling_of_graded_input_is_refused_and_of_spike_input_lowered():
    z = np.zeros((), np.float32)
    g = Graph([Input("x", (2, 4, 4)), Pool2d("p", "x", (2, 4, 4), (2, 2), (2, 2), "max"),
               Flatten("f", "p", (2, 2, 2)), Dense("d", "f", np.ones((3, 8), np.float32)),
               LIF("n", "d", (3,), z, z, np.full((), 0.5, np.float32), z, "zero", "immediate")]).validate()
    with pytest.raises(UnsupportedError, match=r"layer p: max pooling of graded input values .*--input-kind spikes"):
        compile_graph(g, description.load("loihi"), CompileOptions(input_bits=8, input_max=2.0))
    quantized, fixed = compile_stages(g, description.load("loihi"), CompileOptions())
    assert or_layers(fixed) == {"p.or": "p"} and fixed.node("p.window").input == "x"
    x = (np.random.default_rng(0).random((6, 2, 2, 4, 4)) < 0.2).astype(np.float32)
    lowered = run(fixed, np.concatenate([x, x[:1] * 0])).spikes["n"]
    assert not lowered[0].any() and lowered.sum() > 0
    np.testing.assert_array_equal(lowered[1:], run(quantized, x).spikes["n"])  # one step later


def test_fpga_lowerings_run_in_order_and_names_do_not_collide():
    assert [p.name for p in passes_for(description.load("fpga"))][-2:] == ["maxpool-to-or", "legalize"]
    z = np.zeros((), np.int64)
    one = np.ones((), np.int64)
    g = Graph([Input("x", (1, 2, 2), 1), Pool2d("p", "x", (1, 2, 2), (2, 2), (2, 2), "max"),
               Conv2d("p.or", "p", np.ones((1, 1, 1, 1), np.int64), (1, 1, 1), None, delay=1, acc=ACC),
               LIF("p.window", "p.or", (1, 1, 1), z, z, one, z, format=LOIHI_FORMAT)], kind="fixed").validate()
    low = lower_maxpool(g, description.load("loihi"))
    assert or_layers(low) == {"p.or_": "p"} and low.node("p.or").input == "p.or_"
    assert low.node("p.or_").input == "p.window_"


# ----------------------------------------------------------------------------- backends and CLI
def _spiking_net() -> nn.Module:
    """:data:`NET_PY`'s net on spikes with weights scaled so every layer spikes."""
    torch.manual_seed(0)
    net = _snn_net()
    with torch.no_grad():
        net[0].weight.mul_(3)
        net[4].weight.abs_().mul_(3)
    return net


def _compiled(target, x_shape=(8, 2)):
    """The tutorial-6 shape on spikes (Conv2d -> Leaky -> MaxPool2d -> Flatten -> Linear -> Leaky):
    its float IR, the fixed IR for ``target`` before and after lowering, and a spike input."""
    g = to_ir(_spiking_net(), (1, 6, 6))
    x = (np.random.default_rng(0).random((*x_shape, 1, 6, 6)) < 0.4).astype(np.int64)
    return g, compile_stages(g, description.load(target), CompileOptions()), x


def test_fpga_rtl_runs_the_or_layer_equal_to_the_emulator(monkeypatch):
    """RTL simulation == emulator on every array of the lowered build; on fpga (no synapse delay)
    that is also the unlowered fixed IR, pool and all."""
    from snnhw.deploy import run_graph
    monkeypatch.setenv("SNNHW_FPGA_SYNTH", "0")
    g, (quantized, fixed), x = _compiled("fpga")
    or_name = next(iter(or_layers(fixed)))
    rtl, emu, unlowered = run_graph(fixed, x, record_state=True), run(fixed, x, record_state=True), run(quantized, x)
    assert int(emu.spikes[or_name].sum()) > 0 and int(emu.spikes[fixed.output.name].sum()) > 0
    for p in fixed.neurons:
        for kind in ("spikes", "current", "voltage"):
            np.testing.assert_array_equal(getattr(rtl, kind)[p.name], getattr(emu, kind)[p.name],
                                          err_msg=f"{p.name} {kind}")
    assert rtl.overflow == emu.overflow
    for p in quantized.neurons:
        np.testing.assert_array_equal(emu.spikes[p.name], unlowered.spikes[p.name].reshape(emu.spikes[p.name].shape))


@pytest.mark.lava
def test_lava_runs_the_or_layer_on_intels_lif_equal_to_the_emulator_and_netx_too(tmp_path):
    """Lava (the build's process graph, via ``snnhw run``) == emulator on every array; the OR layer is
    on Intel's LIF, so the whole net is, and lava-dl's netx loader runs network.net equal as well."""
    from conftest import run_cli
    from snnhw import build as b
    from snnhw.compile import compile_build
    from snnhw.semantics import quantize_input
    from snnhw.targets.loihi.backend import simulate_netx_in_worker
    g, _, x = _compiled("loihi", (6, 1))
    built = compile_build(g, description.load("loihi"), CompileOptions(), tmp_path / "b")
    assert any("OR layer" in n and "adds 1 step(s) of latency" in n for n in built.notes)
    assert any(n.startswith("lava_plan.json: 3 layer(s) on Intel's Lava LIF, 0") for n in built.notes), built.notes
    np.save(tmp_path / "x.npy", x.astype(np.float32))
    arrays = {}
    for tgt in ("loihi", "emu"):
        rc, _, se = run_cli("run", tmp_path / "b", "--target", tgt, "--input", tmp_path / "x.npy", "--record-state",
                            "-o", tmp_path / f"{tgt}.npz")
        assert rc == 0, se
        arrays[tgt] = dict(np.load(tmp_path / f"{tgt}.npz"))
    assert sorted(arrays["loihi"]) == sorted(arrays["emu"])
    for k in arrays["emu"]:
        np.testing.assert_array_equal(arrays["loihi"][k], arrays["emu"][k], err_msg=k)
    or_name = next(iter(or_layers(built.fixed)))
    assert arrays["emu"][or_name].sum() > 0 and arrays["emu"]["output"].sum() > 0
    assert arrays["emu"]["output"].shape[0] == x.shape[0] + 3  # padded by the latency, the OR layer's step included
    fixed, _ = b.load_build(tmp_path / "b")
    xi = quantize_input(fixed, np.concatenate([x, np.zeros((3, *x.shape[1:]), x.dtype)]))
    out = simulate_netx_in_worker(fixed, tmp_path / "b" / "network.net", xi)
    np.testing.assert_array_equal(out, run(fixed, xi).spikes[fixed.output.name].astype(np.int64))


def test_verify_inspect_and_report_show_the_or_layer_as_the_pools_lowering(tmp_path, monkeypatch):
    """verify scores the OR layer against the float pool's output (the OR of the float spikes),
    quantization.json, inspect and the report list it as the lowering of the pool; nothing crashes."""
    import json
    from conftest import run_cli
    monkeypatch.setenv("SNNHW_FPGA_SYNTH", "0")
    (tmp_path / "net.py").write_text(NET_PY)
    g, _, x = _compiled("fpga", (8, 2))
    torch.save(_spiking_net().state_dict(), tmp_path / "m.pt")
    np.save(tmp_path / "x.npy", x.astype(np.float32))
    rc, so, se = run_cli("verify", tmp_path / "m.pt", "--arch", f"{tmp_path / 'net.py'}:Net", "--input-shape", "1,6,6",
                         "--input", tmp_path / "x.npy", "--targets", "emu,fpga", "--keep-builds", tmp_path / "builds",
                         "--json")
    assert rc in (0, 1), se  # 1: a decoding check may fail on this untrained net; nothing may crash
    r = json.loads(so)
    pool = next(n for n in g.nodes if isinstance(n, Pool2d)).name
    layer = r["targets"]["fpga"]["layers"][f"{pool}.or"]
    assert layer["lowering_of"] == pool and layer["identical"] and layer["spikes"] > 0
    assert r["targets"]["fpga"]["backend"]["bit_exact"]
    assert f"{pool}.or" not in r["targets"]["emu"]["layers"]
    quant = json.loads((tmp_path / "builds" / "fpga" / "quantization.json").read_text())
    assert quant["lowered"][f"{pool}.or"]["lowering_of"] == pool and f"{pool}.or" not in quant["layers"]
    rc, so, se = run_cli("inspect", tmp_path / "builds" / "fpga", "--json")
    assert rc == 0, se
    nodes = {n["name"]: n for n in json.loads(so)["nodes"]}
    assert nodes[f"{pool}.or"]["lowering_of"] == pool
    rc, so, se = run_cli("inspect", tmp_path / "builds" / "fpga")
    assert rc == 0 and f"layer {pool}.or: the max pooling {pool} of spikes, lowered to an OR layer" in so, so + se
    rc, so, se = run_cli("report", tmp_path / "builds" / "fpga", "--input", tmp_path / "x.npy", "-o", tmp_path / "rep")
    assert rc == 0, se
    html = (tmp_path / "rep" / "report.html").read_text()
    assert f"OR layer (LIF), the lowering of {pool}" in html


@pytest.mark.parametrize("target", ["emu", "loihi", "fpga"])
def test_finetune_forward_runs_max_pooling_of_spikes_as_deployed(target):
    """snnhw finetune's torch forward equals the emulator on the deployed graph: the pool itself on
    emu, the OR layer (constant integers) on loihi and fpga (whose conv cores keep the Conv2d);
    gradients reach the conv through it. """
    from snnhw.finetune import deployment, fixed_forward, param_tensors
    from snnhw.semantics import latency
    net = _spiking_net()
    float_g, fixed = deployment(net, (1, 6, 6), description.load(target), CompileOptions())
    x = (np.random.default_rng(2).random((8, 3, 1, 6, 6)) < 0.4).astype(np.float32)
    x = np.concatenate([x, np.zeros((latency(fixed), *x.shape[1:]), x.dtype)])
    ref = run(fixed, x).spikes
    out = fixed_forward(fixed, x, param_tensors(net, float_g, fixed))
    assert set(out) == set(ref) and all(s.sum() > 0 for s in ref.values())
    for k, s in ref.items():
        np.testing.assert_array_equal(out[k].detach().numpy(), s, err_msg=k)
    out[fixed.output.name].sum().backward()
    assert net[0].weight.grad is not None and torch.any(net[0].weight.grad != 0)


def test_a_hostile_pool_name_reaches_no_generated_file_and_is_escaped_in_the_report(tmp_path, monkeypatch):
    """The OR layer's names derive from the pool's, a model's text: they stay in JSON/ONNX data and
    the escaped HTML, never in the RTL or the netx file (backends name nodes by index)."""
    from collections import OrderedDict
    from snnhw.compile import compile_build
    from snnhw.report import build_report, write_report
    monkeypatch.setenv("SNNHW_FPGA_SYNTH", "0")
    evil = '<img src=x onerror=alert(1)>"$system("touch PWNED")'
    net = _spiking_net()
    named = nn.Sequential(OrderedDict([(str(i), m) if i != 2 else (evil, m) for i, m in enumerate(net)]))
    g = to_ir(named, (1, 6, 6))
    x = (np.random.default_rng(0).random((6, 1, 1, 6, 6)) < 0.4).astype(np.float32)
    for target in ("fpga", "loihi"):
        built = compile_build(g, description.load(target), CompileOptions(), tmp_path / target)
        assert or_layers(built.fixed) == {f"{evil}.or": evil}
        code = [f for f in (tmp_path / target).rglob("*") if f.is_file() and f.suffix not in (".json", ".onnx")]
        assert code
        for f in code:
            data = f.read_bytes()
            assert b"onerror" not in data and b"PWNED" not in data, f
    report, ctx = build_report(tmp_path / "loihi", x)
    write_report(report, ctx, tmp_path / "r")
    html = (tmp_path / "r" / "report.html").read_text()
    assert "onerror=alert(1)&gt;" in html and "<img src=x" not in html
