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
    assert [type(n) for n in g.nodes[1:]] == [Conv2d, LIF, Flatten, Dense, LIF]  # the sum pool is folded into aff
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


# ----------------------------------------------------------------------------- every nir 1.0.8 primitive
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from snnhw.errors import SnnhwError  # noqa: E402
from snnhw.frontends.nir_import import nir_to_ir  # noqa: E402

DT = 1e-3
# dyadic parameters: float32 (emulator) and float64 (reference below) compute the same numbers exactly
TAUS = (DT, 2 * DT, 4 * DT)  # dt/tau = 1, 1/2, 1/4


def _dy(draw, shape, lo=-4, hi=4, den=4):
    return np.array(draw(st.lists(st.integers(lo, hi), min_size=int(np.prod(shape)), max_size=int(np.prod(shape)))),
                    dtype=np.float64).reshape(shape) / den


@st.composite
def nir_chains(draw):
    """A small chain Input -> primitives -> Output of nir 1.0.8 (sometimes nested), shape-consistent."""
    dims = draw(st.sampled_from([(4,), (2, 5), (2, 4, 4)]))
    shape, nodes, shapes_in = dims, [], []
    plan = []  # mostly synapse -> neuron blocks, sometimes any single primitive
    for _ in range(draw(st.integers(1, 3))):
        plan += ["synapse", "neuron"] if draw(st.integers(0, 3)) else ["any"]
    for step in plan:
        shapes_in.append(shape)
        syn = ["Affine", "Linear"] + {1: [], 2: ["Conv1d"], 3: ["Conv2d", "Conv2d", "SumPool2d", "AvgPool2d"]}[len(shape)]
        neuron = ["LIF", "IF", "CubaLIF", "Threshold"]
        kinds = {"synapse": syn, "neuron": neuron, "any": syn + neuron + ["Scale", "Delay", "LI", "I", "CubaLI"]
                 + (["Flatten"] if len(shape) > 1 else [])}[step]
        kind = draw(st.sampled_from(kinds))
        if kind in ("Affine", "Linear"):
            n_in, n_out = int(np.prod(shape)), draw(st.integers(1, 5))
            if len(shape) > 1:
                nodes.append(nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1))
                shapes_in.append((int(np.prod(shape)),))
            w = _dy(draw, (n_out, n_in))
            nodes.append(nir.Affine(weight=w, bias=_dy(draw, (n_out,))) if kind == "Affine" else nir.Linear(weight=w))
            shape = (n_out,)
        elif kind == "Conv2d":
            k = draw(st.integers(1, 3))
            nodes.append(nir.Conv2d(input_shape=shape[1:], weight=_dy(draw, (2, shape[0], k, k)), stride=1,
                                    padding=draw(st.integers(0, k // 2)), dilation=1, groups=1,
                                    bias=_dy(draw, (2,))))
            shape = tuple(int(d) for d in nodes[-1].output_type["output"])
        elif kind == "Conv1d":
            k = draw(st.integers(1, 3))
            nodes.append(nir.Conv1d(input_shape=shape[1], weight=_dy(draw, (3, shape[0], k)), stride=1,
                                    padding=draw(st.integers(0, 1)), dilation=1, groups=1, bias=_dy(draw, (3,))))
            shape = tuple(int(d) for d in nodes[-1].output_type["output"])
        elif kind in ("SumPool2d", "AvgPool2d"):
            pad = draw(st.sampled_from([0, 0, 1]))
            nodes.append(getattr(nir, kind)(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                            padding=np.array([pad, pad])))
            shape = (shape[0], (shape[1] + 2 * pad - 2) // 2 + 1, (shape[2] + 2 * pad - 2) // 2 + 1)
        elif kind == "Flatten":
            start = draw(st.sampled_from([0, 0, 1]))
            nodes.append(nir.Flatten(input_type={"input": np.array(shape)}, start_dim=start, end_dim=-1))
            shape = tuple(int(d) for d in nodes[-1].output_type["output"])
        elif kind == "Scale":
            nodes.append(nir.Scale(scale=np.full(shape, draw(st.sampled_from([0.5, 2.0, -1.0])))))
        elif kind == "Delay":
            nodes.append(nir.Delay(delay=np.full(shape, draw(st.sampled_from([0.0, DT])))))
        else:
            f = lambda: np.full(shape, draw(st.sampled_from(TAUS)))
            r = np.full(shape, draw(st.sampled_from([1.0, 2.0, 4.0])))
            thr = np.full(shape, draw(st.sampled_from([0.5, 1.0, 1.5])))
            zero = np.zeros(shape)
            nodes.append({"LIF": lambda: nir.LIF(tau=f(), r=r, v_leak=zero, v_threshold=thr, v_reset=zero),
                          "IF": lambda: nir.IF(r=r, v_threshold=thr, v_reset=zero),
                          "CubaLIF": lambda: nir.CubaLIF(tau_syn=f(), tau_mem=f(), r=r, v_leak=zero, v_threshold=thr,
                                                         v_reset=zero, w_in=np.ones(shape)),
                          "Threshold": lambda: nir.Threshold(threshold=thr),
                          "LI": lambda: nir.LI(tau=f(), r=r, v_leak=zero),
                          "I": lambda: nir.I(r=r),
                          "CubaLI": lambda: nir.CubaLI(tau_syn=f(), tau_mem=f(), r=r, v_leak=zero, w_in=r)}[kind]())
    names = [f"n{i}" for i in range(len(nodes))]
    if draw(st.booleans()) and len(nodes) > 1:  # nest the last node in a sub-graph
        inner = nir.NIRGraph(nodes={"input": nir.Input({"input": np.array(shapes_in[-1])}), "x": nodes[-1],
                                    "output": nir.Output({"output": np.array(shape)})},
                             edges=[("input", "x"), ("x", "output")])
        nodes[-1] = inner
    chain = ["input"] + names + ["output"]
    graph = nir.NIRGraph(nodes={"input": nir.Input({"input": np.array(dims)}), **dict(zip(names, nodes)),
                                "output": nir.Output({"output": np.array(shape)})},
                         edges=list(zip(chain, chain[1:])))
    return graph, dims


def _reference(graph, x):
    """NIR's own equations, forward Euler at DT, in float64 (independent of the importer): the
    spikes of every spiking node, by node name."""
    import torch
    import torch.nn.functional as F
    flat = []
    for name in [d for _, d in graph.edges][:-1]:
        v = graph.nodes[name]
        flat.append((name, v.nodes["x"]) if isinstance(v, nir.NIRGraph) else (name, v))
    T, B = x.shape[:2]
    state, out = {}, {}
    for t in range(T):
        h = x[t].astype(np.float64)
        for name, v in flat:
            kind = type(v).__name__
            if kind in ("Affine", "Linear"):
                h = h.reshape(B, -1) @ v.weight.T + (v.bias if kind == "Affine" else 0)
            elif kind in ("Conv2d", "Conv1d"):
                fn = F.conv2d if kind == "Conv2d" else F.conv1d
                h = fn(torch.from_numpy(h), torch.from_numpy(v.weight), torch.from_numpy(v.bias), int(np.ravel(v.stride)[0]),
                       int(np.ravel(v.padding)[0])).numpy()
            elif kind in ("SumPool2d", "AvgPool2d"):
                h = F.avg_pool2d(torch.from_numpy(h), 2).numpy() * (4 if kind == "SumPool2d" else 1)
            elif kind == "Flatten":
                h = h.reshape(B, -1)
            elif kind == "Scale":
                h = h * v.scale
            elif kind == "Delay":  # mapped graphs have only zero delays
                assert not np.any(v.delay)
            elif kind == "Threshold":
                h = (h > v.threshold).astype(np.float64)
            else:
                s = state.setdefault(name, {"v": np.zeros_like(h), "i": np.zeros_like(h)})
                if kind == "CubaLIF":
                    s["i"] = s["i"] + DT / v.tau_syn * (-s["i"] + v.w_in * h)
                    h = s["i"]
                if kind == "IF":
                    s["v"] = s["v"] + v.r * h
                else:
                    tau = v.tau if kind == "LIF" else v.tau_mem
                    s["v"] = s["v"] + DT / tau * (v.v_leak - s["v"] + v.r * h)
                h = (s["v"] > v.v_threshold).astype(np.float64)
                s["v"] = np.where(h > 0, 0.0, s["v"])
            if kind in ("LIF", "IF", "CubaLIF", "Threshold"):
                out.setdefault(name, []).append(h.copy())
    return {k: np.stack(v) for k, v in out.items()}


@settings(max_examples=120, deadline=None)
@given(nir_chains(), st.integers(0, 2**31 - 1))
def test_every_nir_primitive_is_mapped_exactly_or_refused_in_one_line(case, seed):
    graph, dims = case
    try:
        g = nir_to_ir(graph, DT)
    except SnnhwError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg and len(msg) < 400
        return
    x = np.random.default_rng(seed).integers(0, 2, (6, 2, *dims)).astype(np.float32)
    got = run(g, x)
    ref = _reference(graph, x)
    pops = {p.name.split(".")[0]: p.name for p in g.neurons}
    assert set(pops) == set(ref)
    for name, spikes in ref.items():
        np.testing.assert_array_equal(got.spikes[pops[name]].reshape(spikes.shape), spikes, err_msg=name)


def _chain(*nodes, shape=(4,), out=(2,)):
    names = [f"n{i}" for i in range(len(nodes))]
    chain = ["input"] + names + ["output"]
    return nir.NIRGraph(nodes={"input": nir.Input({"input": np.array(shape)}), **dict(zip(names, nodes)),
                               "output": nir.Output({"output": np.array(out)})}, edges=list(zip(chain, chain[1:])))


def test_scale_threshold_conv1d_and_delay_by_hand():
    w = np.array([[1.0, 0, 0, 0], [0, 1, 1, 0]])
    g = nir_to_ir(_chain(nir.Linear(weight=w), nir.Scale(scale=np.array([2.0, 0.5])),
                         nir.Delay(delay=np.zeros(2)), nir.Threshold(threshold=np.array([1.5, 0.75]))), DT)
    np.testing.assert_array_equal(g.node("n0").weight, [[2, 0, 0, 0], [0, 0.5, 0.5, 0]])
    th = g.node("n3")
    assert float(np.max(th.beta)) == 0 and float(np.max(th.alpha)) == 0 and th.reset_mode == "zero"
    x = np.array([[1, 1, 1, 0], [0, 1, 0, 0], [1, 0, 1, 1]], np.float32).reshape(3, 1, 4)
    assert run(g, x).spikes["n3"].reshape(3, 2).tolist() == [[1, 1], [0, 0], [1, 0]]
    conv = nir.Conv1d(input_shape=3, weight=np.array([[[1.0, -1.0]]]), stride=1, padding=0, dilation=1, groups=1,
                      bias=np.array([0.5]))
    g = nir_to_ir(_chain(conv, nir.IF(r=np.ones((1, 2)), v_threshold=np.ones((1, 2)), v_reset=np.zeros((1, 2))),
                         shape=(1, 3), out=(1, 2)), DT)
    np.testing.assert_array_equal(g.node("n0").weight, [[1, -1, 0], [0, 1, -1]])
    np.testing.assert_array_equal(g.node("n0").bias, [0.5, 0.5])
    with pytest.raises(UnsupportedError, match="Delay of 0.001 s"):
        nir_to_ir(_chain(nir.Linear(weight=w), nir.Delay(delay=np.full(2, DT)), nir.IF(
            r=np.ones(2), v_threshold=np.ones(2), v_reset=np.zeros(2))), DT)
