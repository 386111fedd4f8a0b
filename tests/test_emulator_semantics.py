"""The emulator against hand-computed steps of docs/semantics.md and against snntorch itself."""
from __future__ import annotations

import numpy as np
import pytest
import snntorch as snn
import torch
from snntorch import utils
from torch import nn

from snnhw.frontends.snntorch_trace import to_ir
from snnhw.ir import LIF, Dense, Graph, Input, NeuronFormat, StateFormat
from snnhw.semantics import apply_overflow, decay
from snnhw.targets.emu.emulator import run


def test_decay_rounding_toward_zero_and_floor():
    x = np.array([-64, -65, 64, 100, -100], dtype=np.int64)
    assert decay(x, np.int64(1), 12, "toward_zero").tolist() == [0, 0, 0, 0, 0]
    assert decay(x, np.int64(1), 12, "floor").tolist() == [-1, -1, 0, 0, -1]
    assert decay(np.array([-8192]), np.int64(2048), 12, "toward_zero").tolist() == [-4096]


@pytest.mark.parametrize("rule,values,expected", [
    ("saturate", [8388607, 8388608, -8388608, -9000000], [8388607, 8388607, -8388607, -8388607]),
    ("wrap", [8388607, 8388608, -8388608, -8388609], [8388607, -8388608, -8388608, 8388607]),
    ("wrap_once", [8388608, 8388609, -8388608, -6537216 - 16777216 + 16777216],
     [8388608, -8388607, 8388608, -6537216]),
])
def test_overflow_rules(rule, values, expected):
    out, n = apply_overflow(np.array(values, dtype=np.int64), StateFormat(24, rule))
    assert out.tolist() == expected
    assert n == sum(a != b for a, b in zip(values, expected))


def _one_neuron(alpha, beta, thr, bias, mode, timing, weight=1, delay=0, fmt=None):
    fmt = fmt or NeuronFormat(12, "toward_zero", 0, StateFormat(24, "wrap"), StateFormat(24, "saturate"), 1.0)
    return Graph([Input("in", (1,), 8, 1.0),
                  Dense("d", "in", np.array([[weight]]), None, delay, StateFormat(32, "saturate")),
                  LIF("n", "d", (1,), np.array(alpha), np.array(beta), np.array(thr), np.array(bias), mode, timing,
                      format=fmt)], kind="fixed").validate()


def _trace(g, inputs):
    r = run(g, np.array(inputs, dtype=np.int64).reshape(-1, 1, 1), record_state=True)
    return r.spikes["n"][:, 0, 0].tolist(), r.voltage["n"][:, 0, 0].tolist()


def test_subtract_delayed_vs_immediate():
    # threshold 10, no leak (beta = 4096), input 7 every step
    s, v = _trace(_one_neuron(0, 4096, 10, 0, "subtract", "delayed"), [7] * 5)
    assert s == [0, 1, 1, 0, 1] and v == [7, 14, 11, 8, 15]
    s, v = _trace(_one_neuron(0, 4096, 10, 0, "subtract", "immediate"), [7] * 5)
    assert s == [0, 1, 1, 0, 1] and v == [7, 4, 1, 8, 5]


def test_immediate_subtract_carries_a_membrane_still_above_threshold():
    # snntorch reset_delay=False: a stored membrane above threshold is reduced before the spike test
    s, v = _trace(_one_neuron(0, 4096, 10, 0, "subtract", "immediate"), [25, 25, 25, 0, 0])
    assert s == [1, 1, 1, 1, 1] and v == [15, 30, 45, 35, 25]


def test_zero_reset_and_no_reset():
    s, v = _trace(_one_neuron(0, 4096, 10, 0, "zero", "immediate"), [7] * 4)
    assert s == [0, 1, 0, 1] and v == [7, 0, 7, 0]
    s, v = _trace(_one_neuron(0, 4096, 10, 0, "zero", "delayed"), [7] * 4)
    assert s == [0, 1, 0, 0] and v == [7, 14, 0, 7]
    s, v = _trace(_one_neuron(0, 4096, 10, 0, "none", "immediate"), [7] * 3)
    assert s == [0, 1, 1] and v == [7, 14, 21]


def test_current_decay_bias_and_delay():
    # alpha = 1/2, beta = 0 (no voltage memory): v = u + bias; input arrives 2 steps late
    s, v = _trace(_one_neuron(2048, 0, 100, 3, "zero", "immediate", delay=2), [8, 0, 0, 0])
    assert v == [3, 3, 11, 7]
    assert s == [0, 0, 0, 0]


def test_threshold_is_strict_and_input_shift():
    fmt = NeuronFormat(12, "toward_zero", 6, StateFormat(24, "wrap_once"), StateFormat(24, "saturate"), 1.0)
    s, v = _trace(_one_neuron(0, 4096, 128, 0, "zero", "immediate", fmt=fmt), [1, 1, 1])
    assert v == [64, 128, 0] and s == [0, 0, 1]


# ----------------------------------------------------------------------------- float IR == snntorch
def _dyadic(rng, shape, denom=32, span=24):
    return torch.from_numpy(rng.integers(-span, span + 1, shape) / denom).float()


NEURON_CASES = [
    ("leaky", dict(beta=0.875), {}),
    ("leaky", dict(beta=0.75, reset_mechanism="zero"), {}),
    ("leaky", dict(beta=0.75, reset_mechanism="none"), {}),
    ("leaky", dict(beta=0.875, reset_delay=False), {}),
    ("leaky", dict(beta=0.875, reset_mechanism="zero", reset_delay=False), {}),
    ("synaptic", dict(alpha=0.5, beta=0.875), {}),
    ("synaptic", dict(alpha=0.75, beta=0.5, reset_mechanism="zero"), {}),
    ("synaptic", dict(alpha=0.75, beta=0.5, reset_delay=False), {}),
    ("rleaky", dict(beta=0.875, linear_features=6), {}),
    ("rleaky", dict(beta=0.75, linear_features=6, reset_mechanism="zero"), {}),
    ("rleaky", dict(beta=0.75, all_to_all=False, V=0.25), {}),
    ("rsynaptic", dict(alpha=0.5, beta=0.75, linear_features=6), {}),
    ("leaky_per_neuron", dict(beta=torch.tensor([0.5, 0.75, 0.875, 0.9375, 0.5, 0.25]),
                              threshold=torch.tensor([1.0, 0.5, 0.75, 1.0, 1.25, 0.5])), {}),
]
CLASSES = {"leaky": snn.Leaky, "synaptic": snn.Synaptic, "rleaky": snn.RLeaky, "rsynaptic": snn.RSynaptic,
           "leaky_per_neuron": snn.Leaky}


@pytest.mark.parametrize("kind,kwargs,_", NEURON_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(NEURON_CASES)])
def test_float_ir_matches_snntorch_exactly(kind, kwargs, _):
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    fc = nn.Linear(5, 6)
    with torch.no_grad():
        fc.weight.copy_(_dyadic(rng, (6, 5)))
        fc.bias.copy_(_dyadic(rng, (6,), span=4))
    neuron = CLASSES[kind](init_hidden=True, **kwargs)
    if kind in ("rleaky", "rsynaptic") and isinstance(neuron.recurrent, nn.Linear):
        with torch.no_grad():
            neuron.recurrent.weight.copy_(_dyadic(rng, (6, 6)))
            neuron.recurrent.bias.copy_(_dyadic(rng, (6,), span=2))
    net = nn.Sequential(fc, neuron)
    g = to_ir(net, (5,))
    x = torch.from_numpy(rng.integers(0, 2, (40, 3, 5))).float()
    utils.reset(net)
    neuron.reset_mem()
    spk = []
    with torch.no_grad():
        for t in range(40):
            spk.append(net(x[t]))
    ref = torch.stack(spk).numpy()
    assert ref.sum() > 10, "the case must spike to test anything"
    out = run(g, x.numpy()).spikes["1"]
    np.testing.assert_array_equal(out, ref)


def test_int8_gemm_and_float_blas_paths_agree(monkeypatch):
    """The emulator's fast int8 path and its float BLAS path compute the same integers (the int8
    path forced on for every product, and counted, so the comparison is between two executions)."""
    import snnhw.targets.emu.emulator as emu
    from hypothesis import given, settings
    from strategies import lava_networks

    int8 = emu._int8_gemm()
    assert int8 is not None, "torch's int8 GEMM should be available in the test environment"
    calls = []

    def counted(x, w):
        calls.append(x.shape)
        return int8(x, w)

    monkeypatch.setattr(emu, "_INT8_PAYS", True)  # whatever this machine's speeds: the integers are compared
    monkeypatch.setattr(emu, "INT8_GEMM_MIN_INPUT", 0)
    monkeypatch.setattr(emu, "INT8_GEMM_IMPORT_MACS", 0)

    @settings(max_examples=40, deadline=None, derandomize=True)
    @given(lava_networks(max_layers=3, max_size=12))
    def check(case):
        g, x = case
        monkeypatch.setattr(emu, "_INT8_GEMM", counted)
        fast = emu.run(g, x, record_state=True)
        monkeypatch.setattr(emu, "_INT8_GEMM", False)
        slow = emu.run(g, x, record_state=True)
        for p in g.neurons:
            np.testing.assert_array_equal(fast.spikes[p.name], slow.spikes[p.name])
            np.testing.assert_array_equal(fast.voltage[p.name], slow.voltage[p.name])
        assert fast.overflow == slow.overflow

    check()
    assert len(calls) > 40, "the int8 path was not exercised"


def test_small_fixed_runs_do_not_import_torch():
    """Start-up: a small fixed-point run takes the float BLAS path without importing torch."""
    import subprocess
    import sys
    code = ("import sys, numpy as np\n"
            "from snnhw.ir import Dense, Graph, Input, LIF, NeuronFormat, StateFormat\n"
            "from snnhw.targets.emu.emulator import run\n"
            "f = NeuronFormat(12, 'toward_zero', 6, StateFormat(24, 'wrap_once'), StateFormat(24, 'saturate'), 1.0)\n"
            "g = Graph([Input('in', (64,), 1, 1.0), Dense('fc', 'in', np.ones((10, 64), np.int64),"
            " acc=StateFormat(25, 'saturate')), LIF('l', 'fc', (10,), np.array(0), np.array(3000),"
            " np.array(640), np.array(0), 'zero', 'immediate', format=f)], kind='fixed', target='emu').validate()\n"
            "r = run(g, np.ones((25, 8, 64)))\n"
            "assert r.spikes['l'].sum() > 0\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_feeding_chunks_equals_one_run():
    """Delays, recurrence and neuron state carry across chunks exactly."""
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from strategies import any_fixed_networks, lava_networks
    from snnhw.targets.emu.emulator import Emulator

    @settings(max_examples=30, deadline=None, derandomize=True)
    @given(st.one_of(lava_networks(), any_fixed_networks().map(
        lambda g: (g, np.random.default_rng(0).integers(-9, 9, (17, 2, *g.input.shape)) * (g.input.bits > 1)
                   + np.random.default_rng(1).integers(0, 2, (17, 2, *g.input.shape)) * (g.input.bits == 1)))),
           st.lists(st.integers(1, 6), min_size=1, max_size=6))
    def check(case, cuts):
        g, x = case
        whole = Emulator(g).run(x, record_state=True)
        sess = Emulator(g).session(x.shape[1])
        parts, t = [], 0
        for c in cuts + [x.shape[0]]:
            if t >= x.shape[0]:
                break
            parts.append(sess.feed(x[t:t + c], record_state=True))
            t += c
        for p in g.neurons:
            np.testing.assert_array_equal(np.concatenate([r.spikes[p.name] for r in parts]), whole.spikes[p.name])
            np.testing.assert_array_equal(np.concatenate([r.voltage[p.name] for r in parts]), whole.voltage[p.name])
        total: dict = {}
        for r in parts:
            for node, d in r.overflow.items():
                for k, v in d.items():
                    total.setdefault(node, {}).setdefault(k, 0)
                    total[node][k] += v
        assert total == whole.overflow

    check()


LONG_RUN = """
import sys
import numpy as np
from snnhw.ir import load
from snnhw.targets.emu.emulator import Emulator
g = load(sys.argv[1])
sess = Emulator(g).session(1)
rng = np.random.default_rng(0)
spikes = 0
for _ in range(int(sys.argv[2]) // 5000):
    spikes += int(sess.feed((rng.random((5000, 1, 64)) < 0.2).astype(np.int8)).spikes["l"].sum())
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")), spikes)
"""


def test_long_run_in_constant_memory(tmp_path):
    """100 000 steps fed in chunks: peak memory does not grow with the number of steps."""
    import subprocess
    import sys
    from strategies import LOIHI_ACC, LOIHI_FORMAT
    from snnhw.ir import save
    rng = np.random.default_rng(0)
    g = Graph([Input("in", (64,), 1, 1.0), Dense("fc", "in", rng.integers(-20, 20, (100, 64)), None, 1, LOIHI_ACC),
               LIF("l", "fc", (100,), np.array(0), np.array(3900), np.array(64 * 30), np.array(0), "zero", "immediate",
                   rng.integers(-5, 5, (100, 100)), None, 1, LOIHI_ACC, LOIHI_FORMAT)], kind="fixed").validate()
    save(g, tmp_path / "g.onnx")

    def peak_kb(steps):
        out = subprocess.run([sys.executable, "-c", LONG_RUN, str(tmp_path / "g.onnx"), str(steps)],
                             capture_output=True, text=True, check=True).stdout.split()
        return int(out[0]), int(out[1])

    short, _ = peak_kb(10_000)
    long, spikes = peak_kb(100_000)
    assert spikes > 0
    assert long < short + 8 * 1024, (short, long)  # within 8 MB of the 10x shorter run
