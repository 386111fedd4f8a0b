"""The fold-linear pass: pooling composed into the adjacent synapse, exactly, so it deploys everywhere."""
from __future__ import annotations

import numpy as np
import pytest
import snntorch as snn
import torch
from torch import nn

from conftest import run_cli
from snnhw.compiler.fold_linear import fold_linear
from snnhw.compiler.pipeline import CompileOptions, compile_graph, compile_stages
from snnhw.compiler.quantize import quantize
from snnhw.errors import UnsupportedError
from snnhw.frontends.snntorch_trace import to_ir
from snnhw.ir import LIF, Conv2d, Dense, Flatten, Graph, Input, Pool2d
from snnhw.targets import description
from snnhw.targets.emu.emulator import run


def _leaky(beta):
    return snn.Leaky(beta, init_hidden=True)


NETS = {
    "conv-avgpool": (lambda: nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.AvgPool2d(2), _leaky(0.9), nn.Flatten(),
                                           nn.Linear(64, 5), _leaky(0.8)), (2, 8, 8)),
    "spikes-pool-flatten-linear": (lambda: nn.Sequential(nn.Conv2d(1, 3, 3), _leaky(0.9), nn.AvgPool2d(2), nn.Flatten(),
                                                         nn.Linear(27, 4), _leaky(0.8)), (1, 8, 8)),
    "spikes-overlapping-pool-dilated-conv": (lambda: nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), _leaky(0.9), nn.AvgPool2d(3, stride=2), nn.Conv2d(3, 4, 2, dilation=2),
        _leaky(0.8)), (1, 9, 9)),
    "input-pool-linear": (lambda: nn.Sequential(nn.AvgPool2d(2), nn.Flatten(), nn.Linear(16, 4), _leaky(0.8)),
                          (1, 8, 8)),
    "grouped-strided-conv-two-pools": (lambda: nn.Sequential(
        nn.Conv2d(2, 4, 3, stride=2, dilation=2, groups=2), nn.AvgPool2d(2, stride=1), nn.AvgPool2d(2), _leaky(0.9)),
        (2, 13, 13)),
}


@pytest.mark.parametrize("name", NETS)
def test_folded_graph_has_no_pooling_and_equals_the_unfolded_one_in_float(name):
    make, shape = NETS[name]
    torch.manual_seed(0)
    g = to_ir(make(), shape, fold=False)
    assert any(isinstance(n, Pool2d) for n in g.nodes)
    f = fold_linear(g)
    assert not any(isinstance(n, Pool2d) for n in f.nodes)
    assert [p.name for p in f.neurons] == [p.name for p in g.neurons]
    x = (np.random.default_rng(1).random((8, 3, *shape)) * 2).astype(np.float32)
    a, b = run(g, x, record_state=True), run(f, x, record_state=True)
    for p in g.neurons:
        np.testing.assert_allclose(b.voltage[p.name], a.voltage[p.name], rtol=1e-5, atol=1e-5)
        assert np.array_equal(a.spikes[p.name], b.spikes[p.name])


def test_conv_then_avgpool_is_the_hand_composed_conv():
    """1x1 conv (weight 2, bias 1) then 2x2 average pooling = a 2x2 conv of weight 0.5, stride 2."""
    g = Graph([Input("x", (1, 4, 4)),
               Conv2d("c", "x", np.full((1, 1, 1, 1), 2.0, np.float32), (1, 4, 4), np.ones(1, np.float32)),
               Pool2d("p", "c", (1, 4, 4), (2, 2), (2, 2), "avg"),
               LIF("n", "p", (1, 2, 2), *(np.zeros((), np.float32),) * 2, np.ones((), np.float32),
                   np.zeros((), np.float32))]).validate()
    f = fold_linear(g)
    c = f.node("c")
    assert [type(n) for n in f.nodes] == [Input, Conv2d, LIF] and f.node("n").input == "c"
    assert c.stride == (2, 2) and c.padding == (0, 0)
    np.testing.assert_array_equal(c.weight, np.full((1, 1, 2, 2), 0.5, np.float32))
    np.testing.assert_array_equal(c.bias, [1.0])


def test_sum_pool_alone_becomes_a_depthwise_conv_and_a_pool_before_a_padded_conv_a_dense():
    z = np.zeros((), np.float32)
    lif = lambda name, src, shape: LIF(name, src, shape, z, z, np.ones((), np.float32), z)
    g = Graph([Input("x", (2, 4, 4)), Pool2d("p", "x", (2, 4, 4), (2, 2), (2, 2), "sum"), lif("n", "p", (2, 2, 2))])
    f = fold_linear(g.validate())
    c = f.node("p")
    assert isinstance(c, Conv2d) and c.groups == 2 and np.all(c.weight == 1)
    g2 = Graph([Input("x", (2, 4, 4)), Pool2d("p", "x", (2, 4, 4), (2, 2), (2, 2), "avg"), Flatten("f", "p", (2, 2, 2)),
                Dense("d", "f", np.arange(24, dtype=np.float32).reshape(3, 8), np.ones(3, np.float32)),
                lif("n", "d", (3,))]).validate()
    f2 = fold_linear(g2)
    assert [type(n) for n in f2.nodes] == [Input, Flatten, Dense, LIF]
    x = np.random.default_rng(0).random((4, 2, 2, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(run(f2, x, record_state=True).voltage["n"], run(g2, x, record_state=True).voltage["n"],
                               rtol=1e-5)


@pytest.mark.parametrize("target", ["loihi", "fpga"])
def test_pooling_nets_compile_for_targets_without_pooling(target):
    """The fixed point of a pooling net is the quantization of the folded graph."""
    torch.manual_seed(0)
    zero = dict(init_hidden=True, reset_mechanism="zero")  # loihi's reset
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.AvgPool2d(2), snn.Leaky(0.9, **zero), nn.Flatten(),
                        nn.Linear(64, 5), snn.Leaky(0.8, **zero))
    g = to_ir(net, (2, 8, 8), fold=False)
    t = description.load(target)
    fixed, _ = compile_stages(g, t, CompileOptions())  # before the target's own lowering passes
    direct = quantize(fold_linear(g), t)
    assert not any(isinstance(n, Pool2d) for n in fixed.nodes)
    assert [n.name for n in fixed.nodes] == [n.name for n in direct.nodes]
    for a, b in zip(fixed.nodes, direct.nodes):
        for k in ("weight", "bias", "threshold", "beta", "alpha"):
            if getattr(a, k, None) is not None:
                np.testing.assert_array_equal(getattr(a, k), getattr(b, k))


def test_max_pooling_is_refused_on_targets_without_pooling():
    g = Graph([Input("x", (1, 4, 4)), Conv2d("c", "x", np.ones((1, 1, 1, 1), np.float32), (1, 4, 4)),
               Pool2d("p", "c", (1, 4, 4), (2, 2), (2, 2), "max"),
               LIF("n", "p", (1, 2, 2), *(np.zeros((), np.float32),) * 2, np.ones((), np.float32),
                   np.zeros((), np.float32))]).validate()
    with pytest.raises(UnsupportedError, match=r"layer p: max pooling \(on synaptic currents\).*nn.AvgPool2d.*stride-2"):
        compile_graph(g, description.load("loihi"), CompileOptions())
    assert any(n.mode == "max" for n in compile_graph(g, description.load("emu"), CompileOptions()).nodes
               if isinstance(n, Pool2d))


NET_PY = '''
import snntorch as snn
from torch import nn
def Net():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.AvgPool2d(2), snn.Leaky(0.9, init_hidden=True, reset_mechanism="zero"),
                         nn.Flatten(), nn.Linear(64, 5), snn.Leaky(0.8, init_hidden=True, reset_mechanism="zero"))
'''


def test_pooling_net_deploys_on_loihi_and_fpga_through_the_cli(tmp_path):
    (tmp_path / "net.py").write_text(NET_PY)
    ns: dict = {}
    exec(NET_PY, ns)
    torch.manual_seed(0)
    torch.save(ns["Net"]().state_dict(), tmp_path / "m.pt")
    np.save(tmp_path / "x.npy", (np.random.default_rng(0).random((10, 2, 1, 8, 8)) < 0.4).astype(np.float32))
    rc, out, err = run_cli("verify", tmp_path / "m.pt", "--arch", f"{tmp_path / 'net.py'}:Net", "--input-shape",
                           "1,8,8", "--input", tmp_path / "x.npy", "--targets", "emu,loihi,fpga")
    assert "PASS loihi: backend bit-exact with emulator" in out, out + err
    assert "PASS fpga: backend bit-exact with emulator" in out, out + err


def test_max_pooling_kernel_onnx_round_trip_and_fixed_point():
    """Max pooling: by hand on a 4x4 map; kept through ONNX; in the fixed IR the max of the
    integer conv outputs (scale unchanged), equal to the float IR up to quantization."""
    from snnhw.ir.onnx_io import from_onnx, to_onnx
    x = np.array([[1, 5, 0, 2], [3, 4, 7, 1], [0, 0, 1, 1], [2, 9, 1, 0]], np.float32)
    g = Graph([Input("in", (1, 4, 4)), Conv2d("c", "in", np.full((1, 1, 1, 1), 0.25, np.float32), (1, 4, 4)),
               Pool2d("p", "c", (1, 4, 4), (2, 2), (2, 2), "max"),
               LIF("n", "p", (1, 2, 2), *(np.zeros((), np.float32),) * 2, np.full((), 1.5, np.float32),
                   np.zeros((), np.float32), "zero", "immediate")]).validate()
    r = run(g, x.reshape(1, 1, 1, 4, 4), record_state=True)
    np.testing.assert_array_equal(r.voltage["n"][0, 0].reshape(2, 2), [[1.25, 0], [0, 0.25]])  # max/4, reset where > 1.5
    np.testing.assert_array_equal(r.spikes["n"][0, 0].reshape(2, 2), [[0, 1], [1, 0]])
    back = from_onnx(to_onnx(g))
    assert back.node("p").mode == "max"
    fixed = compile_graph(g, description.load("emu"), CompileOptions(input_bits=8, input_max=9.0))
    assert fixed.node("p").mode == "max"
    rf = run(fixed, x.reshape(1, 1, 1, 4, 4), record_state=True)
    np.testing.assert_array_equal(rf.spikes["n"], r.spikes["n"])
    assert from_onnx(to_onnx(fixed)).node("p").mode == "max"


def test_max_pooling_of_spikes_is_their_or():
    z = np.zeros((), np.float32)
    g = Graph([Input("x", (1, 2, 2)), Pool2d("p", "x", (1, 2, 2), (2, 2), (2, 2), "max"),
               Flatten("f", "p", (1, 1, 1)), Dense("d", "f", np.ones((1, 1), np.float32)),
               LIF("n", "d", (1,), z, z, np.full((), 0.5, np.float32), z, "zero", "immediate")]).validate()
    x = np.array([[0, 0, 0, 0], [0, 1, 0, 0], [1, 1, 1, 1]], np.float32).reshape(3, 1, 1, 2, 2)
    assert run(g, x).spikes["n"].reshape(-1).tolist() == [0, 1, 1]
