"""The emulator's event-driven path (targets/emu/events.py) gives the dense path's integers bit for bit."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from snnhw.targets.emu import events


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 30), st.integers(1, 20), st.sampled_from([0.0, 0.02, 0.3, 1.0]),
       st.sampled_from([np.int8, np.float32, bool]), st.integers(0, 2**32 - 1))
def test_accumulate_equals_an_int64_product(rows, n_in, n_out, density, dtype, seed):
    """Against numpy's int64 product (an independent execution), for float32 and float64 weights."""
    rng = np.random.default_rng(seed)
    x = (rng.random((rows, n_in)) < density).astype(dtype)
    w = rng.integers(-127, 128, (n_in, n_out))
    ref = x.astype(np.int64) @ w
    for wt in (w.astype(np.float32), w.astype(np.float64) * 2**20):
        got = events.accumulate(x, wt)
        assert got.dtype == wt.dtype and got.shape == ref.shape
        np.testing.assert_array_equal(got, ref * (2**20 if wt.dtype == np.float64 else 1))


def test_the_rule_follows_the_measured_activity():
    rng = np.random.default_rng(0)
    sparse = (rng.random((400, 784)) < 0.004).astype(np.int8)
    dense = (rng.random((400, 784)) < 0.05).astype(np.int8)
    assert events.wants_events(sparse, 1000) == np.count_nonzero(sparse)
    assert events.wants_events(dense, 1000) is None               # too active
    assert events.wants_events(sparse, 10) is None                # too narrow
    graded = sparse.astype(np.float32)
    graded[3, 5] = -1.0                                           # a graded value among the spikes
    assert events.wants_events(graded, 1000) is None
    graded[3, 5] = 2.0
    assert events.wants_events(graded, 1000) is None


def test_emulator_event_path_equals_dense_path(monkeypatch):
    """Random networks (binary and graded input, recurrence, biases, delays) run with the event path
    forced on for every binary product and with it off: spikes, states and overflow counts are
    equal. The event path is counted, so the comparison is between two different executions; graded
    inputs are refused by it (they fall back to dense)."""
    import snnhw.targets.emu.emulator as emu
    from strategies import lava_networks

    took, refused = [], []
    wants = events.wants_events

    def counted(x2, outputs):
        k = wants(x2, outputs)
        (took if k is not None else refused).append(x2.shape)
        return k

    monkeypatch.setattr(events, "wants_events", counted)

    @settings(max_examples=40, deadline=None)
    @given(lava_networks(max_layers=3, max_size=12))
    def check(case):
        g, x = case
        monkeypatch.setattr(events, "MAX_DENSITY", 1.0)
        monkeypatch.setattr(events, "MIN_OUTPUTS", 0)
        sparse = emu.run(g, x, record_state=True)
        monkeypatch.setattr(events, "MAX_DENSITY", -1.0)
        dense = emu.run(g, x, record_state=True)
        for p in g.neurons:
            np.testing.assert_array_equal(sparse.spikes[p.name], dense.spikes[p.name])
            np.testing.assert_array_equal(sparse.voltage[p.name], dense.voltage[p.name])
            np.testing.assert_array_equal(sparse.current[p.name], dense.current[p.name])
        assert sparse.overflow == dense.overflow

    check()
    assert len(took) > 40, "the event path was not exercised"
    assert refused, "graded input never reached the event path's refusal"


def test_default_rule_takes_the_event_path_on_sparse_input(monkeypatch):
    """With the default rule, a sparse binary input to a wide layer runs event-driven, and the
    result equals the dense run (event path switched off)."""
    from strategies import LOIHI_ACC, LOIHI_FORMAT
    from snnhw.ir import LIF, Dense, Graph, Input
    import snnhw.targets.emu.emulator as emu

    rng = np.random.default_rng(1)
    g = Graph([Input("in", (300,), 1, 1.0), Dense("fc", "in", rng.integers(-127, 128, (200, 300)), None, 1, LOIHI_ACC),
               LIF("l", "fc", (200,), np.array(0), np.array(3900), np.array(64 * 2), np.array(0), "zero", "immediate",
                   None, None, 1, None, LOIHI_FORMAT)], kind="fixed").validate()
    x = (rng.random((25, 16, 300)) < 0.003).astype(np.int8)
    calls = []
    real = events.accumulate
    monkeypatch.setattr(events, "accumulate", lambda x2, wt: calls.append(x2.shape) or real(x2, wt))
    sparse = emu.run(g, x, record_state=True)
    assert calls == [(25 * 16, 300)]
    monkeypatch.setattr(events, "MAX_DENSITY", -1.0)
    dense = emu.run(g, x, record_state=True)
    assert len(calls) == 1 and sparse.spikes["l"].sum() > 0
    np.testing.assert_array_equal(sparse.spikes["l"], dense.spikes["l"])
    np.testing.assert_array_equal(sparse.voltage["l"], dense.voltage["l"])
