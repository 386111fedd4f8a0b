"""Several synapse paths summed into one population (skip/residual connections, LIF.extra_inputs)."""
from __future__ import annotations

import numpy as np
import pytest
import snntorch as snn
import torch
from torch import nn

from snnhw.compiler.pipeline import CompileOptions, compile_graph
from snnhw.errors import InvalidFileError, UnsupportedError
from snnhw.frontends.snntorch_reference import reference_run
from snnhw.frontends.snntorch_trace import to_ir
from snnhw.ir import LIF, Dense, Graph, Input, NeuronFormat, StateFormat, load, save
from snnhw.ir.onnx_io import to_onnx
from snnhw.targets import load as load_target
from snnhw.targets.emu.emulator import run


class Residual(nn.Module):
    """``lif2`` reads ``fc2(s1) + 0.5 * skip(s0)``: a skip connection over ``lif1``."""

    def __init__(self):
        super().__init__()
        self.fc0, self.lif0 = nn.Linear(12, 16), snn.Leaky(beta=0.9, init_hidden=True)
        self.fc1, self.lif1 = nn.Linear(16, 16), snn.Leaky(beta=0.8, init_hidden=True)
        self.fc2, self.skip = nn.Linear(16, 8), nn.Linear(16, 8)
        self.lif2 = snn.Leaky(beta=0.7, init_hidden=True)
        self.fc3, self.lif3 = nn.Linear(8, 4), snn.Leaky(beta=0.9, init_hidden=True)
        with torch.no_grad():
            self.skip.weight *= 8  # a coarser weight step than fc2: the skip path gets an out_shift

    def forward(self, x):
        s0 = self.lif0(self.fc0(x))
        s1 = self.lif1(self.fc1(s0))
        s2 = self.lif2(self.fc2(s1) + self.skip(s0) * 0.5)
        return self.lif3(self.fc3(s2))


def _net_and_input():
    torch.manual_seed(3)
    net = Residual()
    x = (torch.rand(25, 6, 12) * 2).numpy()
    return net, x


def test_residual_snntorch_net_imports_and_float_ir_equals_snntorch_spike_for_spike():
    net, x = _net_and_input()
    g = to_ir(net, (12,))
    lif2 = g.node("lif2")
    assert (lif2.input, lif2.extra_inputs) == ("fc2", ("skip",))
    assert [n.name for n in g.consumers("skip")] == ["lif2"]
    np.testing.assert_array_equal(g.node("skip").weight, net.skip.weight.detach().numpy() * 0.5)
    ref, _ = reference_run(net, g.meta["forward"], x)
    got = run(g, x)
    for layer, spikes in ref.items():
        assert np.array_equal(got.spikes[layer], spikes), layer
    assert ref["lif2"].sum() > 0 and ref["lif3"].sum() > 0


def test_residual_net_compiles_for_emu_with_a_shifted_skip_path_and_runs(tmp_path):
    net, x = _net_and_input()
    g = to_ir(net, (12,))
    fixed = compile_graph(g, load_target("emu"), CompileOptions(input_bits=8, input_max=2.0))
    assert fixed.node("lif2").extra_inputs == ("skip",)
    assert fixed.node("skip").out_shift > 0 and fixed.node("fc2").out_shift == 0
    save(fixed, tmp_path / "m.onnx")
    back = load(tmp_path / "m.onnx")
    assert back.node("skip").out_shift == fixed.node("skip").out_shift
    assert back.node("lif2").extra_inputs == ("skip",) and back.meta == fixed.meta
    a, b = run(fixed, x), run(back, x)
    for p in fixed.neurons:
        assert np.array_equal(a.spikes[p.name], b.spikes[p.name])
    assert a.spikes["lif2"].sum() > 0
    # the fixed point follows the float model: most output spikes agree
    ref = run(g, x).spikes["lif2"]
    agree = np.logical_and(ref, a.spikes["lif2"]).sum() / max(1, np.logical_or(ref, a.spikes["lif2"]).sum())
    assert agree > 0.5, agree


@pytest.mark.parametrize("target", ["loihi", "fpga"])
def test_targets_without_summed_inputs_refuse_in_one_line(target):
    net, _ = _net_and_input()
    g = to_ir(net, (12,))
    with pytest.raises(UnsupportedError) as err:
        compile_graph(g, load_target(target), CompileOptions(input_bits=8, input_max=2.0))
    msg = str(err.value)
    assert "\n" not in msg and "layer lif2: it sums 2 input paths (fc2, skip)" in msg and "run on emu" in msg


def _hand_graph(shift: int) -> Graph:
    fmt = NeuronFormat(12, "toward_zero", 6, StateFormat(24, "wrap_once"), StateFormat(24, "saturate"))
    acc = StateFormat(16, "saturate")
    i64 = lambda v: np.asarray(v, np.int64)
    return Graph([
        Input("inp", (1,), bits=1),
        Dense("a", "inp", np.array([[3]], np.int8), acc=acc),
        Dense("b", "inp", np.array([[2]], np.int8), acc=acc, out_shift=shift),
        LIF("p", "a", (1,), i64(0), i64(4096), i64(1000), i64(0), "subtract", "delayed", format=fmt,
            extra_inputs=("b",)),
    ], kind="fixed", target="emu").validate()


def test_summed_paths_follow_the_hand_derived_trace():
    """a = 3x + (2x << 2) = 11x; u = a << 6 = 704x; v integrates without leak; threshold 1000,
    delayed subtractive reset: v = 704, 1408 (spike), 1408 - 1000 = 408."""
    res = run(_hand_graph(2), np.array([1, 1, 0], np.float32).reshape(3, 1, 1), record_state=True)
    assert res.voltage["p"].reshape(-1).tolist() == [704, 1408, 408]
    assert res.spikes["p"].reshape(-1).tolist() == [0, 1, 0]
    plain = run(_hand_graph(0), np.ones((3, 1, 1), np.float32), record_state=True)
    assert plain.current["p"].reshape(-1).tolist() == [320, 320, 320]  # (3 + 2) << 6


def test_format_version_2_only_for_graphs_that_need_it(tmp_path):
    meta = lambda g: {p.key: p.value for p in to_onnx(g).metadata_props}["snnhw_format_version"]
    assert meta(_hand_graph(2)) == "2"
    single = _hand_graph(0)
    single.nodes = [single.nodes[0], single.nodes[1],
                    LIF("p", "a", (1,), *[np.asarray(v, np.int64) for v in (0, 4096, 1000, 0)],
                        format=single.nodes[3].format)]
    assert meta(single.validate()) == "1"


def test_malformed_extra_inputs_are_refused():
    g = _hand_graph(0)
    g.nodes[3].extra_inputs = ("a",)
    with pytest.raises(InvalidFileError, match="distinct"):
        g.validate()
    g.nodes[3].extra_inputs = ("missing",)
    with pytest.raises(InvalidFileError, match="reads 'missing', which is not an earlier node"):
        g.validate()
    g = _hand_graph(0)
    g.nodes[2].out_shift = 17
    with pytest.raises(InvalidFileError, match="out_shift 17 outside 0..16"):
        g.validate()


def test_sum_feeding_a_synapse_is_refused_by_name():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.fc3 = nn.Linear(4, 3), nn.Linear(4, 3), nn.Linear(3, 2)
            self.lif = snn.Leaky(beta=0.5, init_hidden=True)

        def forward(self, x):
            return self.lif(self.fc3(self.fc1(x) + self.fc2(x)))

    with pytest.raises(UnsupportedError, match="layer fc3 reads the sum of the outputs of fc1, fc2"):
        to_ir(Net(), (4,))


def test_residual_float_ir_survives_nir_export_and_import():
    """NIR sums the edges into a node: the skip path comes back as a second input of the population,
    with the same weights (NIR's reset differs from snntorch's subtract reset, so spikes are not
    compared here; tests/test_nir.py covers the neuron conversion)."""
    from snnhw.frontends.nir_import import nir_to_ir
    from snnhw.nir_export import default_dt, to_nir
    net, _ = _net_and_input()
    g = to_ir(net, (12,))
    back = nir_to_ir(to_nir(g)[0], dt=default_dt(g))
    summed = [p for p in back.neurons if p.extra_inputs]
    assert len(summed) == 1 and len(summed[0].sources()) == 2
    weights = sorted((back.node(s).weight for s in summed[0].sources()), key=lambda w: float(np.abs(w).sum()))
    want = sorted((g.node(s).weight for s in g.node("lif2").sources()), key=lambda w: float(np.abs(w).sum()))
    for w, v in zip(weights, want):
        np.testing.assert_array_equal(w, v)


def test_finetune_forward_equals_the_emulator_on_a_residual_net():
    from snnhw.finetune import fixed_forward
    net, x = _net_and_input()
    fixed = compile_graph(to_ir(net, (12,)), load_target("emu"), CompileOptions(input_bits=8, input_max=2.0))
    torch_spikes, emu = fixed_forward(fixed, x), run(fixed, x)
    for p in fixed.neurons:
        assert np.array_equal(torch_spikes[p.name].numpy().astype(bool), emu.spikes[p.name].astype(bool)), p.name


def test_residual_build_runs_and_its_report_counts_the_skip_path(tmp_path):
    """The whole pipeline on emu: compile_build writes the build, the emu backend runs it, and the
    report's synaptic operations of lif2 are the events of lif1 through fc2 plus those of lif0
    through the skip synapse (every nonzero weight a spike reaches)."""
    from snnhw.compile import compile_build
    from snnhw.report import build_report
    from snnhw.targets.contract import backend_for
    net, x = _net_and_input()
    g = to_ir(net, (12,))
    compile_build(g, load_target("emu"), CompileOptions(input_bits=8, input_max=2.0), tmp_path / "b")
    res = backend_for(load_target("emu")).run(tmp_path / "b", x)
    report, ctx = build_report(tmp_path / "b", x)
    fixed = ctx["graph"]
    for p in fixed.neurons:
        assert np.array_equal(res.spikes[p.name], ctx["run"].spikes[p.name]), p.name
    s0, s1 = (ctx["run"].spikes[k].reshape(*x.shape[:2], -1) for k in ("lif0", "lif1"))
    reach = lambda s, w: int((s.sum(axis=(0, 1)) * (w != 0).sum(axis=0)).sum())
    want = reach(s1, fixed.node("fc2").weight) + reach(s0, fixed.node("skip").weight)
    assert report["counts"]["layers"]["lif2"]["synaptic_ops"] == want > 0


@pytest.mark.parametrize("seed", range(6))
def test_random_summed_paths_emulator_equals_the_independent_torch_forward(seed):
    """Differential: random fixed IRs with a skip path (random out_shift, accumulator rules that
    fire, random resets) run equal in the emulator and in finetune's torch forward."""
    from snnhw.finetune import fixed_forward
    rng = np.random.default_rng(seed)
    n_in, n_mid, n_out = 5, 6, 3
    resets = [("subtract", "delayed"), ("zero", "immediate"), ("subtract", "immediate"), ("none", "delayed")]
    fmt = NeuronFormat(12, ["toward_zero", "floor"][seed % 2], 6, StateFormat(20, "wrap_once"),
                       StateFormat(20, "saturate"))
    acc = StateFormat(8, ["saturate", "wrap"][seed % 2])
    w = lambda *s: rng.integers(-127, 128, s).astype(np.int8)
    i64 = lambda v: np.asarray(v, np.int64)

    def pop(name, src, size, extra=()):
        mode, timing = resets[int(rng.integers(len(resets)))]
        return LIF(name, src, (size,), i64(rng.integers(0, 4097)), i64(rng.integers(2048, 4097)),
                   i64(rng.integers(200, 20000, size)), i64(0), mode, timing, format=fmt, extra_inputs=extra)
    g = Graph([
        Input("inp", (n_in,), bits=4, scale=1.0),
        Dense("a", "inp", w(n_mid, n_in), acc=acc),
        Dense("b", "inp", w(n_mid, n_in), rng.integers(-50, 50, n_mid).astype(np.int64), acc=acc,
              out_shift=int(rng.integers(0, 4))),
        pop("p1", "a", n_mid, ("b",)),
        Dense("c", "p1", w(n_out, n_mid), acc=acc),
        Dense("d", "inp", w(n_out, n_in), acc=acc, out_shift=int(rng.integers(0, 3))),
        pop("p2", "c", n_out, ("d",)),
    ], kind="fixed", target="emu").validate()
    x = rng.integers(-7, 8, (30, 4, n_in)).astype(np.float32)
    emu, torch_spikes = run(g, x), fixed_forward(g, x)
    assert sum(int(c) for d in emu.overflow.values() for c in d.values()) > 0 or seed % 2
    for p in g.neurons:
        assert np.array_equal(emu.spikes[p.name].astype(bool), torch_spikes[p.name].numpy().astype(bool)), p.name
    assert emu.spikes["p1"].sum() > 0
