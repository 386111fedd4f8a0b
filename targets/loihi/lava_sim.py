"""Build a Lava process graph from a fixed-point IR and run it in Lava's bit-accurate ``fixed_pt`` model.

Mapping (docs/targets/loihi.md): Input -> ``io.source.RingBuffer``; Dense -> ``Dense`` with
``num_weight_bits=9`` and ``sign_mode=MIXED`` (so int8 weights keep their LSB); LIF ->
``LIF(du=4095-alpha, dv=4096-beta, vth=threshold>>6, bias_mant, bias_exp)``; a recurrent dense
-> a ``Dense`` from the population's ``s_out`` back to its ``a_in``. Spikes, v and u are read with
``Monitor`` probes (v and u after the step's reset, as the emulator records them).

This module imports lava; it runs inside the worker process (see worker.py), never in the CLI.
"""
from __future__ import annotations

import numpy as np

from snnhw.ir import LIF, Dense, Flatten, Graph, Input
from snnhw.targets.loihi import lava_compat

BIAS_MANT_MAX = 4095  # 13-bit signed mantissa
BIAS_EXP_MAX = 7      # 3-bit exponent


def bias_parts(bias: np.ndarray):
    """Split state-unit biases into Lava's ``bias_mant << bias_exp`` (per neuron); None if impossible."""
    b = np.asarray(bias, dtype=np.int64).reshape(-1)
    mant = b.copy()
    exp = np.zeros_like(b)
    for e in range(BIAS_EXP_MAX + 1):
        fits = np.abs(mant) <= BIAS_MANT_MAX
        if fits.all():
            return mant, exp
        shift = ~fits & (b % (1 << (e + 1)) == 0)
        mant = np.where(shift, b >> (e + 1), mant)
        exp = np.where(shift, e + 1, exp)
    return None


def synapse_bias(g: Graph, pop: LIF) -> np.ndarray:
    """Synapse biases reaching ``pop`` (dense and recurrent), in state units.

    In the IR they enter the current u; Lava has no current bias, so for a population without
    current memory (alpha == 0, where u is just this step's input) they move to the LIF's voltage
    bias, which gives the same v and spikes. The reported u adds them back (IR terms)."""
    bias = np.zeros(pop.size, np.int64)
    src = g.node(pop.input)
    if isinstance(src, Dense) and src.bias is not None:
        bias = bias + (src.bias.astype(np.int64) << pop.format.input_shift)
    if pop.rec_bias is not None:
        bias = bias + (pop.rec_bias.astype(np.int64) << pop.format.input_shift)
    return bias


def lif_bias(g: Graph, pop: LIF) -> np.ndarray:
    """Lava's voltage bias in state units: the population's own plus the folded synapse biases."""
    return np.broadcast_to(pop.bias, (pop.size,)).astype(np.int64) + synapse_bias(g, pop)


def simulate(g: Graph, x: np.ndarray, record_state: bool = False) -> dict:
    """Run ``g`` on integer input ``x`` ``[T, B, *shape]`` one sample at a time; return per-population
    ``spikes``/``voltage``/``current`` arrays ``[T, B, *shape]`` (int64)."""
    lava_compat.import_lava()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense as LavaDense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF as LavaLIF
    from lava.proc.monitor.process import Monitor
    from lava.utils.weightutils import SignMode

    T, B = x.shape[:2]
    out = {k: {p.name: np.zeros((T, B, p.size), np.int64) for p in g.neurons}
           for k in ("spikes", "voltage", "current")}
    for b in range(B):
        data = x[:, b].reshape(T, -1).T.astype(np.int32)
        src = RingBuffer(data=data)
        port = {g.input.name: src.s_out}
        graded = {g.input.name: g.input.bits > 1}
        monitors = []
        for n in g.nodes[1:]:
            if isinstance(n, Dense):
                d = LavaDense(weights=n.weight.astype(np.int32), num_message_bits=24 if graded[n.input] else 0,
                              num_weight_bits=9, sign_mode=SignMode.MIXED)
                port[n.input].connect(d.s_in)
                port[n.name], graded[n.name] = d.a_out, False
            elif isinstance(n, Flatten):
                port[n.name], graded[n.name] = port[n.input], graded[n.input]
            elif isinstance(n, LIF):
                mant, exp = bias_parts(lif_bias(g, n))
                lif = LavaLIF(shape=(n.size,), du=int(4095 - int(n.alpha)), dv=int(4096 - int(n.beta)),
                              vth=int(int(n.threshold) >> 6), bias_mant=mant, bias_exp=exp)
                port[n.input].connect(lif.a_in)
                if n.rec_weight is not None:
                    r = LavaDense(weights=n.rec_weight.astype(np.int32), num_weight_bits=9, sign_mode=SignMode.MIXED)
                    lif.s_out.connect(r.s_in)
                    r.a_out.connect(lif.a_in)
                port[n.name], graded[n.name] = lif.s_out, False
                probes = [("spikes", lif.s_out)] + ([("voltage", lif.v), ("current", lif.u)] if record_state else [])
                for key, target in probes:
                    m = Monitor()
                    m.probe(target, T)
                    monitors.append((key, n.name, m, target))
            else:
                raise ValueError(f"node {n.name}: {type(n).__name__} is not mapped to Lava")
        try:
            src.run(condition=RunSteps(num_steps=T), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
            for key, name, m, target in monitors:
                data = m.get_data()
                proc = next(iter(data))
                arr = data[proc][next(iter(data[proc]))]
                out[key][name][:, b] = np.asarray(arr).reshape(T, -1).astype(np.int64)
        finally:
            src.stop()
    if record_state:
        for p in g.neurons:
            out["current"][p.name] += synapse_bias(g, p)
    shaped = {p.name: (T, B, *p.shape) for p in g.neurons}
    return {k: {name: a.reshape(shaped[name]) for name, a in v.items()} for k, v in out.items()
            if k == "spikes" or record_state}
