"""snntorch frontend: the model styles users write, and clear refusals of what it cannot import."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest
import snntorch as snn
import torch
from torch import nn

from snnhw.errors import SnnhwError, UnsupportedError
from snnhw.frontends import load_model
from snnhw.frontends.snntorch_trace import to_ir
from snnhw.ir import LIF, Conv2d, Dense, Flatten, Pool2d
from snnhw.targets.emu.emulator import run

CUSTOM_CLASS = '''
import torch, torch.nn as nn, snntorch as snn
num_steps = 5
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(12, 8)
        self.lif1 = snn.Leaky(beta=0.9)
        self.fc2 = nn.Linear(8, 3)
        self.lif2 = snn.Leaky(beta=0.8, reset_mechanism="zero")
    def forward(self, x):
        mem1 = self.lif1.init_leaky()
        mem2 = self.lif2.init_leaky()
        spk2_rec, mem2_rec = [], []
        for step in range(num_steps):
            {body}
            spk2_rec.append(spk2)
            mem2_rec.append(mem2)
        return torch.stack(spk2_rec, dim=0), torch.stack(mem2_rec, dim=0)
'''
BODY_SAME_X = "cur1 = self.fc1(x); spk1, mem1 = self.lif1(cur1, mem1); cur2 = self.fc2(spk1); spk2, mem2 = self.lif2(cur2, mem2)"
BODY_TIME_X = "cur1 = self.fc1(x[step]); spk1, mem1 = self.lif1(cur1, mem1); cur2 = self.fc2(spk1); spk2, mem2 = self.lif2(cur2, mem2)"


def _write_arch(tmp_path, body, name="net.py"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(CUSTOM_CLASS).replace("{body}", body))
    return p


@pytest.mark.parametrize("body", [BODY_SAME_X, BODY_TIME_X], ids=["x-every-step", "x-indexed-by-step"])
def test_custom_class_with_time_loop_imports_from_state_dict(tmp_path, body):
    arch = _write_arch(tmp_path, body)
    ns: dict = {}
    exec(compile(arch.read_text(), str(arch), "exec"), ns)
    torch.manual_seed(1)
    net = ns["Net"]()
    torch.save(net.state_dict(), tmp_path / "m.pt")
    g = load_model(tmp_path / "m.pt", arch=f"{arch}:Net")
    assert [type(n) for n in g.nodes[1:]] == [Dense, LIF, Dense, LIF]
    assert g.input.shape == (12,)
    assert (g.node("lif1").reset_mode, g.node("lif1").reset_timing) == ("subtract", "delayed")
    assert (g.node("lif2").reset_mode, g.node("lif2").reset_timing) == ("zero", "immediate")
    np.testing.assert_array_equal(g.node("fc1").weight, net.fc1.weight.detach().numpy())
    # the imported graph reproduces the model's own forward pass
    x = torch.rand(5, 4, 12) * 3
    with torch.no_grad():
        ref = net(x if body == BODY_TIME_X else x[0])[0].numpy()
    xin = x.numpy() if body == BODY_TIME_X else np.repeat(x[:1].numpy(), 5, axis=0)
    np.testing.assert_array_equal(run(g, xin).spikes["lif2"], ref)


def test_sequential_conv_net_with_view_flatten():
    class ConvNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3, padding=1)
            self.lif1 = snn.Leaky(beta=0.9, init_hidden=True)
            self.pool = nn.AvgPool2d(2)
            self.fc = nn.Linear(4 * 4 * 4, 5)
            self.lif2 = snn.Leaky(beta=0.9, init_hidden=True)

        def forward(self, x):
            s = self.pool(self.lif1(self.conv(x)))
            return self.lif2(self.fc(s.view(s.shape[0], -1)))

    g = to_ir(ConvNet(), (1, 8, 8), fold=False)
    assert [type(n) for n in g.nodes[1:]] == [Conv2d, LIF, Pool2d, Flatten, Dense, LIF]
    assert g.node("pool").mode == "avg"
    folded = to_ir(ConvNet(), (1, 8, 8))  # what the frontend hands on: pooling composed into fc
    assert [type(n) for n in folded.nodes[1:]] == [Conv2d, LIF, Flatten, Dense, LIF]


def test_input_shape_required_for_conv_nets(tmp_path):
    net = nn.Sequential(nn.Conv2d(1, 2, 3), snn.Leaky(beta=0.5, init_hidden=True))
    torch.save(net.state_dict(), tmp_path / "c.pt")
    arch = tmp_path / "arch.py"
    arch.write_text("import torch.nn as nn, snntorch as snn\n"
                    "def make():\n    return nn.Sequential(nn.Conv2d(1, 2, 3), snn.Leaky(beta=0.5, init_hidden=True))\n")
    with pytest.raises(SnnhwError, match="--input-shape"):
        load_model(tmp_path / "c.pt", arch=f"{arch}:make")
    g = load_model(tmp_path / "c.pt", arch=f"{arch}:make", input_shape=(1, 5, 5))
    assert g.output.shape == (2, 3, 3)


@pytest.mark.parametrize("layer,words", [
    (nn.ReLU(), "ReLU"),
    (snn.Alpha(alpha=0.9, beta=0.8, init_hidden=True), "Alpha"),
])
def test_unsupported_layers_are_named(layer, words):
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), snn.Leaky(beta=0.5, init_hidden=True), layer,
                        nn.Flatten(), nn.Linear(2 * 64, 3),
                        snn.Leaky(beta=0.5, init_hidden=True))
    with pytest.raises(UnsupportedError, match=words):
        to_ir(net, (1, 8, 8))


@pytest.mark.parametrize("kwargs,words", [
    (dict(inhibition=True), "inhibition"),
    (dict(graded_spikes_factor=0.5), "graded_spikes_factor"),
])
def test_unsupported_neuron_options(kwargs, words):
    net = nn.Sequential(nn.Linear(4, 3), snn.Leaky(beta=0.5, init_hidden=True, **kwargs))
    with pytest.raises(UnsupportedError, match=words):
        to_ir(net, (4,))


def test_scalar_arithmetic_between_layers_is_folded_into_weights():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.lif1 = nn.Linear(4, 3), snn.Leaky(beta=0.5, init_hidden=True)
            self.fc2, self.lif2 = nn.Linear(3, 2), snn.Leaky(beta=0.5, init_hidden=True)

        def forward(self, x):
            s = self.lif1(self.fc1(x) * 2)    # current scaled: weight and bias of fc1 times 2
            return self.lif2(self.fc2(s / 4))  # spikes scaled: weight of fc2 / 4, bias kept

    torch.manual_seed(0)
    net = Net()
    g = to_ir(net, (4,))
    np.testing.assert_allclose(g.node("fc1").weight, net.fc1.weight.detach().numpy() * 2, rtol=1e-7)
    np.testing.assert_allclose(g.node("fc1").bias, net.fc1.bias.detach().numpy() * 2, rtol=1e-7)
    np.testing.assert_allclose(g.node("fc2").weight, net.fc2.weight.detach().numpy() / 4, rtol=1e-7)
    np.testing.assert_array_equal(g.node("fc2").bias, net.fc2.bias.detach().numpy())


@pytest.mark.parametrize("step,words", [
    (lambda self, s: self.lif2(self.fc2(s) - self.fc3(s)), "`sub` of the outputs of fc2, fc3; snnhw imports only sums"),
    (lambda self, s: self.lif2(torch.sigmoid(self.fc2(s))), "`sigmoid`"),
    (lambda self, s: self.lif2(self.fc2(s) + 1.0), "`add`"),
], ids=["skip", "sigmoid", "constant"])
def test_other_arithmetic_between_layers_is_refused_by_name(step, words):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.lif1 = nn.Linear(4, 3), snn.Leaky(beta=0.5, init_hidden=True)
            self.fc2, self.fc3, self.lif2 = nn.Linear(3, 2), nn.Linear(3, 2), snn.Leaky(beta=0.5, init_hidden=True)

        def forward(self, x):
            return step(self, self.lif1(self.fc1(x)))

    with pytest.raises(UnsupportedError, match=words):
        to_ir(Net(), (4,))


def test_membrane_fed_to_next_layer_is_refused():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.lif1 = nn.Linear(4, 3), snn.Leaky(beta=0.5)
            self.fc2, self.lif2 = nn.Linear(3, 2), snn.Leaky(beta=0.5)

        def forward(self, x):
            spk, mem = self.lif1(self.fc1(x))
            return self.lif2(self.fc2(mem))

    with pytest.raises(UnsupportedError, match="membrane"):
        to_ir(Net(), (4,))


def test_whole_module_pickle_with_allowlisted_classes(tmp_path):
    net = nn.Sequential(nn.Linear(4, 3), snn.Leaky(beta=0.5, init_hidden=True, surrogate_disable=True))
    torch.save(net, tmp_path / "whole.pt")
    g = load_model(tmp_path / "whole.pt")
    assert g.output.shape == (3,)


def test_malicious_pickle_is_refused_and_its_command_does_not_run(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os
            return (os.system, (f"touch {marker}",))

    torch.save({"weight": torch.zeros(2), "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(SnnhwError, match="trust-pickle"):
        load_model(tmp_path / "evil.pt", arch="unused.py:Net")
    assert not marker.exists()


def test_state_dict_without_arch_asks_for_it(tmp_path):
    torch.save(nn.Sequential(nn.Linear(4, 3), snn.Leaky(beta=0.5, init_hidden=True)).state_dict(), tmp_path / "s.pt")
    with pytest.raises(SnnhwError, match="--arch"):
        load_model(tmp_path / "s.pt")


def test_nan_weights_are_refused():
    net = nn.Sequential(nn.Linear(4, 3), snn.Leaky(beta=0.5, init_hidden=True))
    with torch.no_grad():
        net[0].weight[0, 0] = float("nan")
    with pytest.raises(SnnhwError, match="NaN"):
        to_ir(net, (4,))


# ----------------------------------------------------------------------------- snntorch's tutorial networks
import tutorial_nets  # noqa: E402
from snnhw.frontends.snntorch_reference import reference_run  # noqa: E402

TUTORIALS = {  # name -> (how to build the module, per-sample input shape, batch, steps for per-step models)
    "tutorial5": (lambda ns: ns["Net"](), (784,), 3, None),
    "tutorial6_sequential": (lambda ns: ns["make_net"](), (1, 28, 28), 3, 8),
    "tutorial6_class": (lambda ns: ns["Net"](), (1, 28, 28), 128, 3),
    "synaptic": (lambda ns: ns["Net"](), (784,), 2, None),
    "rleaky": (lambda ns: ns["Net"](), (784,), 3, None),
    "rsynaptic": (lambda ns: ns["Net"](), (784,), 3, None),
}


@pytest.mark.parametrize("name", TUTORIALS)
def test_tutorial_network_imports_and_float_ir_equals_snntorch_spike_for_spike(name):
    make, shape, batch, steps = TUTORIALS[name]
    torch.manual_seed(0)
    ns = tutorial_nets.namespace(name)
    net = make(ns)
    g = to_ir(net, shape)
    steps = steps or ns["num_steps"]
    x = np.repeat(torch.rand(1, batch, *shape).numpy() * 3, steps, axis=0)  # analog pixels fed every step
    ref, _ = reference_run(net, g.meta["forward"], x)
    got = run(g, x)
    assert set(ref) == {p.name for p in g.neurons}
    for layer, spikes in ref.items():
        assert np.array_equal(got.spikes[layer], spikes.reshape(got.spikes[layer].shape)), layer
    assert sum(int(s.sum()) for s in ref.values()) > 0


def test_tutorial6_class_is_memoryless_per_call_and_max_pools_currents():
    """Its forward re-creates the states every call, so each step starts from zero (beta = 0)."""
    g = to_ir(tutorial_nets.namespace("tutorial6_class")["Net"](), (1, 28, 28))
    assert [n.mode for n in g.nodes if isinstance(n, Pool2d)] == ["max", "max"]
    assert all(float(p.beta) == 0 and p.reset_mode == "zero" for p in g.neurons)
    assert isinstance(g.node(g.node("lif1").input), Pool2d)


def test_states_as_forward_arguments_threaded_by_the_caller():
    ns = tutorial_nets.namespace("states_as_arguments")
    torch.manual_seed(0)
    net = ns["Net"]()
    g = to_ir(net, (784,))
    assert g.meta["forward"] == "per_step" and [float(p.beta) for p in g.neurons] == [0.5, 0.5]
    x = torch.rand(6, 3, 784) * 3
    mem1, spk1, mem2 = net.lif1.init_leaky(), None, net.lif2.init_leaky()
    out = []
    with torch.no_grad():
        for t in range(6):
            mem1, spk1, mem2, spk2 = net(x[t], mem1, spk1, mem2)
            out.append(spk2.numpy())
    assert np.array_equal(run(g, x.numpy()).spikes["lif2"], np.stack(out))
    ref, _ = reference_run(net, "per_step", x.numpy())  # the reference verify runs
    assert np.array_equal(ref["lif2"], np.stack(out)) and np.stack(out).sum() > 0


def test_batchnorm_is_folded_and_dropout_removed_exactly():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), snn.Leaky(beta=0.9, init_hidden=True),
                        nn.Dropout2d(0.3), nn.Flatten(start_dim=1, end_dim=3), nn.Linear(3 * 36, 5, bias=False),
                        nn.BatchNorm1d(5), nn.Dropout(0.5), snn.Leaky(beta=0.8, init_hidden=True))
    for bn in (net[1], net[6]):  # trained-looking statistics
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)
    g = to_ir(net, (1, 6, 6))
    assert [type(n) for n in g.nodes[1:]] == [Conv2d, LIF, Flatten, Dense, LIF]
    assert g.node("5").bias is not None  # the BatchNorm shift became the Linear's bias
    x = (torch.rand(12, 4, 1, 6, 6) * 2).numpy()
    ref_spk, ref_mem = reference_run(net, "per_step", x)
    got = run(g, x, record_state=True)
    for layer in ("2", "8"):
        np.testing.assert_allclose(got.voltage[layer], ref_mem[layer], rtol=1e-5, atol=1e-5)
        assert np.array_equal(got.spikes[layer], ref_spk[layer])


def test_batchnorm_without_running_statistics_or_not_after_a_synapse_is_refused():
    net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3, track_running_stats=False),
                        snn.Leaky(beta=0.5, init_hidden=True))
    with pytest.raises(UnsupportedError, match="running statistics"):
        to_ir(net, (4,))
    net = nn.Sequential(nn.Linear(4, 3), snn.Leaky(beta=0.5, init_hidden=True), nn.BatchNorm1d(3),
                        nn.Linear(3, 2), snn.Leaky(beta=0.5, init_hidden=True))
    with pytest.raises(UnsupportedError, match="BatchNorm1d right after LIF"):
        to_ir(net, (4,))


def test_flatten_must_cover_every_per_sample_dim():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), snn.Leaky(beta=0.5, init_hidden=True), nn.Flatten(2),
                        snn.Leaky(beta=0.5, init_hidden=True))
    with pytest.raises(UnsupportedError, match=r"Flatten\(start_dim=2, end_dim=-1\)"):
        to_ir(net, (1, 5, 5))


SIBLING = "import snntorch as snn\n\ndef make_lif(beta):\n    return snn.Leaky(beta=beta)\n"
WITH_ARGS = '''
import torch, torch.nn as nn
from layers import make_lif  # a sibling module of this file

class Net(nn.Module):
    def __init__(self, timesteps, hidden, beta=0.9):
        super().__init__()
        self.timesteps = timesteps
        self.fc1, self.lif1 = nn.Linear(6, hidden), make_lif(beta)
        self.fc2, self.lif2 = nn.Linear(hidden, 2), make_lif(beta)

    def forward(self, x):
        mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        out = []
        for step in range(self.timesteps):
            spk1, mem1 = self.lif1(self.fc1(x[step]), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            out.append(spk2)
        return torch.stack(out)
'''


def test_arch_file_imports_its_sibling_and_takes_literal_constructor_arguments(tmp_path):
    (tmp_path / "layers.py").write_text(SIBLING)
    (tmp_path / "net.py").write_text(WITH_ARGS)
    ns: dict = {}
    import sys
    sys.path.insert(0, str(tmp_path))
    try:
        exec(WITH_ARGS, ns)
        torch.save(ns["Net"](timesteps=4, hidden=7, beta=0.8).state_dict(), tmp_path / "m.pt")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("layers", None)
    g = load_model(tmp_path / "m.pt", arch=f"{tmp_path / 'net.py'}:Net(timesteps=4, hidden=7, beta=0.8)")
    assert g.node("lif1").shape == (7,) and float(g.node("lif1").beta) == pytest.approx(0.8)
    assert g.meta["forward"] == "loop_time_indexed"
    for bad, words in ((f"Net(__import__('os').getcwd())", "literals"), ("Net(**{'hidden': 7})", r"\*\*kwargs"),
                       ("Net(", "a name or a call"), ("Net(timesteps=4)", "calling Net\\(timesteps=4\\) failed")):
        with pytest.raises(SnnhwError, match=words):
            load_model(tmp_path / "m.pt", arch=f"{tmp_path / 'net.py'}:{bad}")


def test_readme_quick_start_on_a_tutorial_model_with_analog_input(tmp_path):
    """README "Use": compile with --calib X.npy, then run on the same analog X."""
    from conftest import run_cli
    arch = tutorial_nets.write("tutorial5", tmp_path)
    torch.manual_seed(0)
    torch.save(tutorial_nets.namespace("tutorial5")["Net"]().state_dict(), tmp_path / "model.pt")
    np.save(tmp_path / "X.npy", np.repeat(np.random.default_rng(0).random((1, 3, 784), np.float32), 25, axis=0))
    rc, _, err = run_cli("compile", tmp_path / "model.pt", "--arch", f"{arch}:Net", "--calib", tmp_path / "X.npy",
                         "--target", "emu", "-o", tmp_path / "build")
    assert rc == 0, err
    rc, _, err = run_cli("run", tmp_path / "build", "--input", tmp_path / "X.npy", "-o", tmp_path / "out.npz")
    assert rc == 0, err
    assert np.load(tmp_path / "out.npz")["output"].shape == (25, 3, 10)


def test_max_pooling_of_spikes_imports_exactly_and_is_lowered_on_loihi():
    from snnhw.compiler.pipeline import CompileOptions, compile_graph
    from snnhw.targets import description
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), snn.Leaky(beta=0.9, init_hidden=True), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(64, 5), snn.Leaky(beta=0.8, init_hidden=True))
    g = to_ir(net, (1, 8, 8))
    assert g.node("2").mode == "max" and g.node("2").input == "1"
    x = (torch.rand(10, 3, 1, 8, 8) * 3).numpy()
    ref, _ = reference_run(net, "per_step", x)
    got = run(g, x)
    for layer in ("1", "5"):
        assert np.array_equal(got.spikes[layer], ref[layer])
    assert ref["5"].sum() > 0
    from snnhw.compiler.lower_maxpool import or_layers
    fixed = compile_graph(g, description.load("loihi"), CompileOptions())
    assert or_layers(fixed) == {"2.or": "2"}  # max pooling of spikes runs on loihi as an OR layer
    assert not any(n.op == "Pool2d" for n in fixed.nodes)
