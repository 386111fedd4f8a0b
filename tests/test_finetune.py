"""Hardware-aware fine-tuning: the torch fixed-point forward equals the emulator and `snnhw run`
bit for bit, training is deterministic, and the CLI writes a state_dict that compiles to exactly
the integers it was trained against."""
from __future__ import annotations

import numpy as np
import pytest
import snntorch as snn
import torch
from conftest import ROOT, run_cli
from torch import nn

from snnhw.compiler.pipeline import CompileOptions
from snnhw.compiler.quant_report import signal_scales
from snnhw.errors import SnnhwError
from snnhw.finetune import deployment, finetune, fixed_forward, float_synapses, param_tensors
from snnhw.ir import Conv2d, Dense, Pool2d
from snnhw.targets import load
from snnhw.targets.emu.emulator import run

ARCH = f"{ROOT / 'examples' / 'digits_mlp.py'}:Net"


def _padded(fixed, x):
    from snnhw.compiler.timing import latency
    return np.concatenate([x, np.zeros((latency(fixed), *x.shape[1:]), x.dtype)])


def _same(torch_spikes: dict, run_spikes: dict):
    assert set(torch_spikes) == set(run_spikes)
    for k, s in run_spikes.items():
        assert np.array_equal(torch_spikes[k].detach().numpy(), s), k


class RecurrentNet(nn.Module):
    """Synaptic -> RLeaky (all-to-all) -> Leaky, reading analog input: every LIF feature in one net."""

    def __init__(self, reset="subtract", delay=True, bias=True):
        super().__init__()
        self.fc1 = nn.Linear(12, 16, bias=bias)  # Loihi has no current bias
        self.syn1 = snn.Synaptic(alpha=0.6, beta=0.85, reset_mechanism=reset, reset_delay=delay)
        self.fc2 = nn.Linear(16, 16)
        self.rlif = snn.RLeaky(beta=0.9, linear_features=16, reset_mechanism=reset, reset_delay=delay)
        self.fc3 = nn.Linear(16, 5)
        self.out = snn.Leaky(beta=0.8, reset_mechanism=reset, reset_delay=delay)

    def forward(self, x):
        syn, mem1 = self.syn1.init_synaptic()
        spk2, mem2 = self.rlif.init_rleaky()
        mem3 = self.out.init_leaky()
        rec = []
        for step in range(x.shape[0]):
            spk1, syn, mem1 = self.syn1(self.fc1(x[step]), syn, mem1)
            spk2, mem2 = self.rlif(self.fc2(spk1), spk2, mem2)
            spk3, mem3 = self.out(self.fc3(spk2), mem3)
            rec.append(spk3)
        return torch.stack(rec)


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.lif1 = snn.Leaky(beta=0.9, reset_mechanism="zero")
        self.pool = nn.AvgPool2d(2)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(4 * 4 * 4, 5)
        self.lif2 = snn.Leaky(beta=0.9, reset_mechanism="zero")

    def forward(self, x):
        m1, m2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        rec = []
        for step in range(x.shape[0]):
            s1, m1 = self.lif1(self.conv(x[step]), m1)
            s2, m2 = self.lif2(self.fc(self.flat(self.pool(s1))), m2)
            rec.append(s2)
        return torch.stack(rec)


def _scaled(net, gain):
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(gain)
    return net


@pytest.mark.parametrize("target,reset,delay", [("emu", "subtract", True), ("emu", "zero", False),
                                                ("fpga", "subtract", True), ("loihi", "zero", False)])
def test_torch_fixed_forward_equals_the_emulator_recurrent(target, reset, delay):
    torch.manual_seed(0)
    net = _scaled(RecurrentNet(reset, delay, bias=target != "loihi"), 3.0)
    with torch.no_grad():
        net.rlif.recurrent.weight.mul_(1 / 16)  # finer than fc2: a synapse exponent where the target has one
    x = np.random.default_rng(0).random((20, 6, 12)).astype(np.float32)
    float_g, fixed = deployment(net, (12,), load(target), CompileOptions(input_bits=8, input_max=1.0))
    assert (fixed.node("rlif").rec_weight_exp != 0) == load(target).features.synapse_exponent
    xp = _padded(fixed, x)
    ref = run(fixed, xp).spikes
    assert all(s.sum() > 0 for s in ref.values())
    _same(fixed_forward(fixed, xp), ref)
    params = param_tensors(net, float_g, fixed)
    out = fixed_forward(fixed, xp, params)
    _same(out, ref)
    out[fixed.output.name].sum().backward()  # gradients reach every trained float parameter
    assert all(p.grad is not None and torch.any(p.grad != 0) for n, p in net.named_parameters()
               if n.endswith("weight")), [n for n, p in net.named_parameters() if p.grad is None]


def test_torch_fixed_forward_equals_the_emulator_conv():
    torch.manual_seed(1)
    net = ConvNet()
    net.pool = nn.Identity()  # no pooling: fc then reads all 4 x 8 x 8 spikes
    net.fc = nn.Linear(4 * 8 * 8, 5)
    net = _scaled(net, 2.0)
    x = np.random.default_rng(1).random((12, 3, 1, 8, 8)).astype(np.float32)
    float_g, fixed = deployment(net, (1, 8, 8), load("emu"), CompileOptions(input_bits=8, input_max=1.0,
                                                                           weight_bits=5))
    ref = run(fixed, x).spikes
    assert all(s.sum() > 0 for s in ref.values())
    _same(fixed_forward(fixed, x, param_tensors(net, float_g, fixed)), ref)


class PoolConvNet(nn.Module):
    """Conv2d -> AvgPool2d -> Leaky: the fold composes the pool into the conv (a 4x4 kernel, stride 2)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.AvgPool2d(2)
        self.lif1 = snn.Leaky(beta=0.9, reset_mechanism="zero")
        self.fc = nn.Linear(4 * 4 * 4, 5)
        self.lif2 = snn.Leaky(beta=0.9, reset_mechanism="zero")

    def forward(self, x):
        m1, m2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        rec = []
        for step in range(x.shape[0]):
            s1, m1 = self.lif1(self.pool(self.conv(x[step])), m1)
            s2, m2 = self.lif2(self.fc(s1.flatten(1)), m2)
            rec.append(s2)
        return torch.stack(rec)


@pytest.mark.parametrize("target", ["emu", "fpga", "loihi"])
@pytest.mark.parametrize("make_net", [ConvNet, PoolConvNet], ids=["pool-into-dense", "pool-into-conv"])
def test_torch_fixed_forward_equals_the_emulator_through_folded_pooling(make_net, target):
    """Pooling the fold-linear pass composed into a synapse (and, on fpga/loihi, convolutions lowered to
    Dense): the torch forward equals the emulator, gradients reach every layer of the composed map,
    and that map, computed in torch from the module, is the compiler's folded synapse."""
    torch.manual_seed(1)
    net = _scaled(make_net(), 2.0)
    x = np.random.default_rng(1).random((12, 3, 1, 8, 8)).astype(np.float32)
    float_g, fixed = deployment(net, (1, 8, 8), load(target), CompileOptions(input_bits=8, input_max=1.0,
                                                                             weight_bits=5))
    assert not any(isinstance(n, Pool2d) for n in fixed.nodes)
    assert any(tuple(n.weight.shape) != tuple(net.get_submodule(n.name).weight.shape) for n in fixed.nodes
               if isinstance(n, (Dense, Conv2d)))  # a synapse is composed (or lowered)
    xp = _padded(fixed, x)
    ref = run(fixed, xp).spikes
    assert all(s.sum() > 0 for s in ref.values())
    params = param_tensors(net, float_g, fixed)
    out = fixed_forward(fixed, xp, params)
    _same(out, ref)
    out[fixed.output.name].sum().backward()
    assert all(p.grad is not None and torch.any(p.grad != 0) for p in net.parameters())
    scale, composed = signal_scales(float_g, fixed), float_synapses(net, float_g, fixed)
    for n in fixed.nodes:
        fl = float_g.node(n.name) if n.name in {m.name for m in float_g.nodes} else None
        if isinstance(n, (Dense, Conv2d)) and fl is not None and fl.weight.shape == n.weight.shape:
            w = composed[n.name][0].detach().numpy()
            np.testing.assert_allclose(w, fl.weight, rtol=1e-6, atol=1e-7)  # the compiler's fold, in float32
            assert np.array_equal(np.round(w * scale[n.input] / scale[n.name]).clip(-15, 15), n.weight)


def _tiny_digits(n=48, steps=8):
    import digits_mlp
    x_train, _, y_train, _ = digits_mlp.load_digits_split()
    return digits_mlp.direct_encoding(x_train[:n], steps), y_train[:n]


def test_finetune_is_deterministic_for_a_seed(digits_model):
    x, y = _tiny_digits()
    opts = CompileOptions(input_bits=8, input_max=1.0, weight_bits=4)
    states = []
    for seed in (3, 3, 4):
        import digits_mlp
        net = digits_mlp.Net()
        net.load_state_dict(digits_model["net"].state_dict())
        r = finetune(net, (x, y), load("emu"), opts, (64,), epochs=1, seed=seed, batch_size=16)
        assert len(r.epochs) == 1 and r.deployed_before >= 0 and r.epochs[0].loss > 0
        states.append(net.state_dict())
    same = lambda a, b: all(torch.equal(a[k], b[k]) for k in a)
    assert same(states[0], states[1]) and not same(states[0], states[2])
    assert not same(states[0], digits_model["net"].state_dict())  # it did train


def test_a_dataloader_trains_exactly_as_the_npz(digits_model, tmp_path):
    """The Python API with a torch DataLoader (shuffled by a generator with the seed) gives the same
    fine-tuned weights and accuracies as `snnhw finetune --data train.npz` with that seed."""
    from torch.utils.data import DataLoader, TensorDataset
    x, y = _tiny_digits()
    np.savez(tmp_path / "train.npz", x=x, y=y)
    rc, so, se = run_cli("finetune", digits_model["pt"], "--arch", ARCH, "--data", tmp_path / "train.npz",
                         "--weight-bits", "4", "--epochs", "2", "--batch-size", "16", "--seed", "5",
                         "-o", tmp_path / "tuned.pt")
    assert rc == 0, se
    import digits_mlp
    net = digits_mlp.Net()
    net.load_state_dict(digits_model["net"].state_dict())
    data = TensorDataset(torch.from_numpy(np.ascontiguousarray(x.swapaxes(0, 1))), torch.from_numpy(y))
    loader = DataLoader(data, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(5))
    r = finetune(net, loader, load("emu"), CompileOptions(input_bits=8, input_max=1.0, weight_bits=4), (64,),
                 epochs=2, seed=5)
    tuned = torch.load(tmp_path / "tuned.pt", weights_only=True)
    assert set(tuned) == set(net.state_dict())
    assert all(torch.equal(tuned[k], v) for k, v in net.state_dict().items())
    assert not torch.equal(tuned["fc1.weight"], digits_model["net"].fc1.weight)
    assert [f"epoch {s.epoch}/2: loss {s.loss:.4f}, deployed accuracy {s.deployed_accuracy:.4f}" for s in r.epochs] == \
        [line.split(" (")[0] for line in so.splitlines() if line.startswith("epoch ")]


def test_finetuned_model_compiles_to_what_it_was_trained_against(digits_model, tmp_path):
    """The decisive test: `snnhw finetune` writes a state_dict; `snnhw compile` + `snnhw run` on it
    give every layer's spikes exactly as the fine-tuned model's fixed-point forward in torch."""
    x, y = _tiny_digits()
    np.savez(tmp_path / "train.npz", x=x, y=y)
    np.save(tmp_path / "x.npy", x)
    rc, so, se = run_cli("finetune", digits_model["pt"], "--arch", ARCH, "--data", tmp_path / "train.npz",
                         "--target", "emu", "--weight-bits", "4", "--epochs", "1", "--batch-size", "16",
                         "-o", tmp_path / "tuned.pt")
    assert rc == 0, se
    assert "epoch 1/1: loss" in so and "deployed accuracy" in so
    assert "deploy with: snnhw compile" in so and "--weight-bits 4 --input-kind graded" in so
    rc, so, se = run_cli("compile", tmp_path / "tuned.pt", "--arch", ARCH, "--target", "emu", "--weight-bits", "4",
                         "--input-kind", "graded", "-o", tmp_path / "build")
    assert rc == 0, se
    rc, so, se = run_cli("run", tmp_path / "build", "-i", tmp_path / "x.npy", "-o", tmp_path / "out.npz")
    assert rc == 0, se
    ran = np.load(tmp_path / "out.npz")
    import digits_mlp
    net = digits_mlp.Net()
    net.load_state_dict(torch.load(tmp_path / "tuned.pt", weights_only=True))
    assert not all(torch.equal(a, b) for a, b in zip(net.state_dict().values(),
                                                     digits_model["net"].state_dict().values()))
    _, fixed = deployment(net, (64,), load("emu"), CompileOptions(input_bits=8, input_max=1.0, weight_bits=4))
    _same(fixed_forward(fixed, x), {k: ran[k] for k in ("lif1", "lif2")})


def test_pooled_conv_finetunes_and_compiles_to_what_it_was_trained_against(tmp_path):
    """examples/digits_conv.py (AvgPool2d folded into the Linear after it): `snnhw finetune` ->
    `snnhw compile` -> `snnhw run` gives the fine-tuned model's torch fixed-point spikes exactly."""
    import digits_conv
    import digits_mlp
    torch.manual_seed(0)
    net = digits_conv.ConvNet("avgpool")
    torch.save(net.state_dict(), tmp_path / "conv.pt")
    x_train, _, y_train, _ = digits_mlp.load_digits_split()
    x = digits_mlp.direct_encoding(x_train[:32], 6).reshape(6, 32, 1, 8, 8)
    np.savez(tmp_path / "train.npz", x=x, y=y_train[:32])
    np.save(tmp_path / "x.npy", x)
    arch = f"{ROOT / 'examples' / 'digits_conv.py'}:ConvNet"
    rc, so, se = run_cli("finetune", tmp_path / "conv.pt", "--arch", arch, "--input-shape", "1,8,8", "--data",
                         tmp_path / "train.npz", "--weight-bits", "4", "--epochs", "1", "--batch-size", "16",
                         "--lr", "1e-2", "-o", tmp_path / "tuned.pt")
    assert rc == 0, se
    rc, so, se = run_cli("compile", tmp_path / "tuned.pt", "--arch", arch, "--input-shape", "1,8,8", "--weight-bits",
                         "4", "--input-kind", "graded", "-o", tmp_path / "build")
    assert rc == 0, se
    rc, so, se = run_cli("run", tmp_path / "build", "-i", tmp_path / "x.npy", "-o", tmp_path / "out.npz")
    assert rc == 0, se
    ran = np.load(tmp_path / "out.npz")
    tuned = digits_conv.ConvNet("avgpool")
    tuned.load_state_dict(torch.load(tmp_path / "tuned.pt", weights_only=True))
    assert not torch.equal(tuned.fc.weight, net.fc.weight) and not torch.equal(tuned.conv.weight, net.conv.weight)
    _, fixed = deployment(tuned, (1, 8, 8), load("emu"), CompileOptions(input_bits=8, input_max=1.0, weight_bits=4))
    assert fixed.node("fc").weight.shape == (10, 512)  # the pooling is composed into fc
    spikes = fixed_forward(fixed, _padded(fixed, x))
    assert all(ran[k].sum() > 0 for k in ("lif1", "lif2"))
    _same(spikes, {k: ran[k] for k in ("lif1", "lif2")})


def test_verify_shows_accuracy_before_and_after_finetuning(digits_model, tmp_path):
    """`snnhw verify TUNED --before MODEL`: the float accuracy of the model before fine-tuning, and
    the deployed accuracy before and after, each equal to an independent computation."""
    import json

    import digits_mlp
    from snnhw.decode import Decoding, accuracy
    from snnhw.verify import before_finetuning
    x, y = _tiny_digits()
    opts = CompileOptions(input_bits=8, input_max=1.0, weight_bits=4)
    net = digits_mlp.Net()
    net.load_state_dict(digits_model["net"].state_dict())
    finetune(net, (x, y), load("emu"), opts, (64,), epochs=1, batch_size=16, lr=1e-2)
    torch.save(net.state_dict(), tmp_path / "tuned.pt")
    np.save(tmp_path / "y.npy", digits_model["labels"])
    args = ("verify", tmp_path / "tuned.pt", "--arch", ARCH, "--input", digits_model["x"], "--labels",
            tmp_path / "y.npy", "--input-kind", "graded", "--weight-bits", "4", "--before", digits_model["pt"])
    rc, so, se = run_cli(*args, "--json")
    assert rc in (0, 1), se
    r = json.loads(so)
    xt, yt = np.load(digits_model["x"]), digits_model["labels"]
    score = lambda spikes: accuracy(Decoding().predict(np.asarray(spikes), None), yt)  # verify's decoding
    with torch.no_grad():
        float_before = score(digits_model["net"](torch.from_numpy(xt[0])).numpy())
    deployed = lambda model: score(fixed_forward(deployment(model, (64,), load("emu"), opts)[1], xt)["lif2"])
    before, after = deployed(digits_model["net"]), deployed(net)
    assert r["before"]["snntorch"]["accuracy"] == pytest.approx(float_before)
    assert r["before"]["targets"]["emu"]["accuracy"] == pytest.approx(before)
    assert r["targets"]["emu"]["accuracy"] == pytest.approx(after)
    assert before != after  # fine-tuning changed the deployment
    rc, so, se = run_cli(*args)
    assert "deployed before fine-tuning" in so and f"{before:.4f}" in so and f"{after:.4f}" in so, so
    rc, _, se = run_cli(*args[:6], "--before", digits_model["pt"])  # no --labels
    assert rc == 2 and "--before compares accuracies, so it needs --labels" in se and "Traceback" not in se
    other = deployment(digits_conv_net(), (1, 8, 8), load("emu"), opts)[0]
    with pytest.raises(SnnhwError, match="--before is not the same network"):
        before_finetuning({"targets": {}}, deployment(net, (64,), load("emu"), opts)[0], other, xt, {"emu": opts},
                          yt, Decoding())


def digits_conv_net():
    import digits_conv
    return digits_conv.ConvNet()


def test_finetune_cli_errors(digits_model, tmp_path):
    np.savez(tmp_path / "bad.npz", x=np.zeros((4, 3, 64), np.float32), y=np.zeros(2, np.int64))
    rc, _, se = run_cli("finetune", digits_model["pt"], "--arch", ARCH, "--data", tmp_path / "bad.npz",
                        "-o", tmp_path / "t.pt")
    assert rc == 2 and "y must be 3 integer labels" in se and "Traceback" not in se
    rc, _, se = run_cli("finetune", digits_model["pt"], "--arch", ARCH, "--data", tmp_path / "bad.npz",
                        "-o", digits_model["pt"])
    assert rc == 2 and "is one of this command's inputs" in se
    assert not (tmp_path / "t.pt").exists()
