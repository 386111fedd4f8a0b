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
from snnhw.errors import UnsupportedError
from snnhw.finetune import param_tensors, deployment, finetune, fixed_forward
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


def test_pooling_composed_into_a_layer_is_refused_by_name():
    net = ConvNet()
    float_g, fixed = deployment(net, (1, 8, 8), load("emu"), CompileOptions(input_bits=8, input_max=1.0))
    with pytest.raises(UnsupportedError, match="layer fc was composed with the pooling"):
        param_tensors(net, float_g, fixed)


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


def test_finetune_cli_errors(digits_model, tmp_path):
    np.savez(tmp_path / "bad.npz", x=np.zeros((4, 3, 64), np.float32), y=np.zeros(2, np.int64))
    rc, _, se = run_cli("finetune", digits_model["pt"], "--arch", ARCH, "--data", tmp_path / "bad.npz",
                        "-o", tmp_path / "t.pt")
    assert rc == 2 and "y must be 3 integer labels" in se and "Traceback" not in se
    rc, _, se = run_cli("finetune", digits_model["pt"], "--arch", ARCH, "--data", tmp_path / "bad.npz",
                        "-o", digits_model["pt"])
    assert rc == 2 and "is one of this command's inputs" in se
    assert not (tmp_path / "t.pt").exists()
