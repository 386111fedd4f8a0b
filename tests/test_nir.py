"""NIR frontend: snntorch's own NIR export, hand-built graphs with every supported node, bad files."""
from __future__ import annotations

import nir
import numpy as np
import pytest
import snntorch as snn
import torch
from torch import nn

from snnhw.errors import InvalidFileError, UnsupportedError
from snnhw.frontends import load_model
from snnhw.ir import LIF, Conv2d, Dense, Flatten, Pool2d
from snnhw.targets.emu.emulator import run


def test_snntorch_exported_mlp_reproduces_snntorch(tmp_path):
    from snntorch.export_nir import export_to_nir
    torch.manual_seed(0)
    kw = dict(init_hidden=True, reset_mechanism="zero", reset_delay=False)
    net = nn.Sequential(nn.Linear(16, 12), snn.Leaky(beta=torch.full((12,), 0.9), threshold=torch.ones(12), **kw),
                        nn.Linear(12, 5), snn.Leaky(beta=torch.full((5,), 0.8), threshold=torch.ones(5), **kw))
    nir.write(tmp_path / "m.nir", export_to_nir(net, torch.rand(16)))
    g = load_model(tmp_path / "m.nir")
    assert [type(n) for n in g.nodes[1:]] == [Dense, LIF, Dense, LIF]
    x = torch.rand(30, 4, 16) * 2
    from snntorch import utils
    utils.reset(net)
    with torch.no_grad():
        ref = torch.stack([net(x[t]) for t in range(30)]).numpy()
    assert ref.sum() > 0
    np.testing.assert_array_equal(run(g, x.numpy()).spikes[g.output.name], ref)


def _handmade(dt):
    """conv -> CubaLIF -> sumpool -> flatten -> affine -> recurrent LIF sub-graph, in NIR."""
    rng = np.random.default_rng(0)
    c = nir.Conv2d(input_shape=(4, 4), weight=rng.normal(size=(2, 1, 3, 3)), stride=1, padding=1, dilation=1,
                   groups=1, bias=np.zeros(2))
    shape = (2, 4, 4)
    cuba = nir.CubaLIF(tau_syn=np.full(shape, 2 * dt), tau_mem=np.full(shape, 4 * dt), r=np.full(shape, 4.0),
                       v_leak=np.zeros(shape), v_threshold=np.ones(shape), v_reset=np.zeros(shape),
                       w_in=np.full(shape, 1.0))
    pool = nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))
    flat = nir.Flatten(input_type={"input": np.array([2, 2, 2])}, start_dim=0, end_dim=-1)
    aff = nir.Affine(weight=rng.normal(size=(3, 8)), bias=np.zeros(3))
    lif = nir.LIF(tau=np.full(3, 10 * dt), r=np.full(3, 10.0), v_leak=np.zeros(3), v_threshold=np.ones(3),
                  v_reset=np.zeros(3))
    rec = nir.NIRGraph(nodes={"input": nir.Input({"input": np.array([3])}), "lif": lif,
                              "w_rec": nir.Linear(weight=rng.normal(size=(3, 3))),
                              "output": nir.Output({"output": np.array([3])})},
                       edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")])
    return nir.NIRGraph(
        nodes={"input": nir.Input({"input": np.array([1, 4, 4])}), "conv": c, "cuba": cuba, "pool": pool,
               "flat": flat, "aff": aff, "rnn": rec, "output": nir.Output({"output": np.array([3])})},
        edges=[("input", "conv"), ("conv", "cuba"), ("cuba", "pool"), ("pool", "flat"), ("flat", "aff"),
               ("aff", "rnn"), ("rnn", "output")])


def test_handmade_graph_with_every_supported_node(tmp_path):
    dt = 1e-3
    nir.write(tmp_path / "h.nir", _handmade(dt))
    g = load_model(tmp_path / "h.nir", dt=dt)
    assert [type(n) for n in g.nodes[1:]] == [Conv2d, LIF, Pool2d, Flatten, Dense, LIF]
    cuba, out = g.node("cuba"), g.node("rnn.lif")
    assert float(cuba.alpha) == pytest.approx(0.5) and float(cuba.beta) == pytest.approx(0.75)
    assert out.rec_weight.shape == (3, 3) and out.rec_delay == 1
    # gains (w_in*dt/tau_syn * r*dt/tau_mem = 0.5, r*dt/tau = 1) are folded into the weights
    src = nir.read(tmp_path / "h.nir")
    np.testing.assert_allclose(g.node("conv").weight, src.nodes["conv"].weight * 0.5, rtol=1e-6)
    res = run(g, np.random.default_rng(1).integers(0, 2, (20, 2, 1, 4, 4)).astype(np.float32))
    assert res.spikes["cuba"].sum() > 0


def test_bad_nir_inputs(tmp_path):
    (tmp_path / "bad.nir").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    with pytest.raises(InvalidFileError, match="not a readable NIR file"):
        load_model(tmp_path / "bad.nir")
    g = nir.NIRGraph(nodes={"input": nir.Input({"input": np.array([3])}),
                            "li": nir.LI(tau=np.ones(3), r=np.ones(3), v_leak=np.zeros(3)),
                            "output": nir.Output({"output": np.array([3])})},
                     edges=[("input", "li"), ("li", "output")])
    nir.write(tmp_path / "li.nir", g)
    with pytest.raises(UnsupportedError, match="LI"):
        load_model(tmp_path / "li.nir")
    lif = nir.LIF(tau=np.ones(3), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3), v_reset=np.full(3, 0.5))
    g = nir.NIRGraph(nodes={"input": nir.Input({"input": np.array([3])}), "lif": lif,
                            "output": nir.Output({"output": np.array([3])})},
                     edges=[("input", "lif"), ("lif", "output")])
    nir.write(tmp_path / "reset.nir", g)
    with pytest.raises(UnsupportedError, match="v_reset"):
        load_model(tmp_path / "reset.nir")
