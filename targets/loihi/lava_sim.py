"""Build a Lava process graph from a fixed-point IR and run it in Lava's bit-accurate ``fixed_pt`` model.

Mapping (docs/targets/loihi.md): Input -> ``io.source.RingBuffer``; Dense -> ``Dense`` with
``num_weight_bits=9`` and ``sign_mode=MIXED`` (so int8 weights keep their LSB); Conv2d -> ``Conv``
(Lava convolves with a flipped kernel in (W, H, C) layout, so torch weights are flipped and
transposed); Flatten -> a transposed, flattened port (torch C-order); LIF ->
``LIF(du=4095-alpha, dv=4096-beta, vth=threshold>>6, bias_mant, bias_exp)``; a recurrent dense
-> a ``Dense`` from the population's ``s_out`` back to its ``a_in``. Spikes, v and u are read with
``Monitor`` probes (v and u after the step's reset, as the emulator records them).

Tensors of shape (C, H, W) in the IR are (W, H, C) in Lava.

This module imports lava; it runs inside the worker process (see worker.py), never in the CLI.
"""
from __future__ import annotations

import time

import numpy as np

from snnhw.ir import LIF, Conv2d, Dense, Flatten, Graph, PlasticDense
from snnhw.targets.loihi import lava_compat

BIAS_MANT_MAX = 4095  # 13-bit signed mantissa
BIAS_EXP_MAX = 7      # 3-bit exponent


def bias_parts(bias: np.ndarray):
    """Split state-unit biases into Lava's ``bias_mant << bias_exp`` (per neuron); None if impossible."""
    b = np.asarray(bias, dtype=np.int64)
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


def to_lava(a: np.ndarray) -> np.ndarray:
    """(C, H, W) <-> Lava's (W, H, C) (its own inverse); 1-D unchanged."""
    return a.transpose(2, 1, 0) if a.ndim == 3 else a


def conv_weight(w: np.ndarray) -> np.ndarray:
    """torch (C_out, C_in, kH, kW) cross-correlation -> Lava (C_out, kW, kH, C_in) convolution."""
    return np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(0, 3, 2, 1))


def lif_bias(g: Graph, pop: LIF) -> np.ndarray:
    """Lava's voltage bias in state units: the population's own plus the synapse biases.

    In the IR synapse biases enter the current u; Lava has no current bias, so for a population
    without current memory (alpha == 0, where u is just this step's input) they move to the LIF's
    voltage bias, which gives the same v and spikes. The reported u adds them back (IR terms)."""
    return np.broadcast_to(pop.bias, pop.shape).astype(np.int64) + g.synapse_bias(pop)


def simulate(g: Graph, x: np.ndarray, record_state: bool = False, timings: dict | None = None) -> dict:
    """Run ``g`` on integer input ``x`` ``[T, B, *shape]`` one sample at a time; return per-population
    ``spikes``/``voltage``/``current`` arrays ``[T, B, *shape]`` (int64). ``timings``, if given,
    receives ``run_s``: seconds spent in Lava's ``run()`` (all samples), for benchmarks."""
    lava_compat.import_lava()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense as LavaDense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF as LavaLIF
    from lava.proc.monitor.process import Monitor
    from lava.utils.weightutils import SignMode

    from lava.proc.conv.process import Conv as LavaConv
    from snnhw.targets.loihi import learning

    T, B = x.shape[:2]
    out = {k: {p.name: np.zeros((T, B, *p.shape), np.int64) for p in g.neurons}
           for k in ("spikes", "voltage", "current")}
    for b in range(B):
        sample = x[:, b]
        data = sample.transpose(*range(sample.ndim - 1, -1, -1))  # [T, C, H, W] -> (W, H, C, T); [T, N] -> (N, T)
        src = RingBuffer(data=np.ascontiguousarray(data).astype(np.int32))
        port = {g.input.name: src.s_out}
        graded = {g.input.name: g.input.bits > 1}
        monitors, plastic = [], {}
        for n in g.nodes[1:]:
            bits = 24 if graded[n.input] else 0
            if isinstance(n, PlasticDense):  # learning synapses: targets/loihi/learning.py
                plastic[n.name] = learning.synapse(n, port[n.input])
                port[n.name] = plastic[n.name].a_out
            elif isinstance(n, Dense):
                d = LavaDense(weights=n.weight.astype(np.int32), num_message_bits=bits,
                              num_weight_bits=9, sign_mode=SignMode.MIXED)
                port[n.input].connect(d.s_in)
                port[n.name] = d.a_out
            elif isinstance(n, Conv2d):
                c, h, w = n.in_shape
                conv = LavaConv(weight=conv_weight(n.weight).astype(np.int32), input_shape=(w, h, c),
                                padding=n.padding[::-1], stride=n.stride[::-1], dilation=n.dilation[::-1],
                                groups=n.groups, num_message_bits=bits)
                port[n.input].connect(conv.s_in)
                port[n.name] = conv.a_out
            elif isinstance(n, Flatten):
                p = port[n.input]
                port[n.name] = p.transpose([2, 1, 0]).flatten() if len(n.in_shape) == 3 else p
            elif isinstance(n, LIF):
                mant, exp = bias_parts(lif_bias(g, n))
                lif = LavaLIF(shape=to_lava(np.empty(n.shape)).shape, du=int(4095 - int(n.alpha)),
                              dv=int(4096 - int(n.beta)), vth=int(int(n.threshold) >> 6),
                              bias_mant=to_lava(mant), bias_exp=to_lava(exp))
                port[n.input].connect(lif.a_in)
                if n.input in plastic:
                    learning.connect_post(plastic[n.input], lif)
                if n.rec_weight is not None:
                    r = LavaDense(weights=n.rec_weight.astype(np.int32), num_weight_bits=9, sign_mode=SignMode.MIXED)
                    lif.s_out.connect(r.s_in)
                    r.a_out.connect(lif.a_in)
                port[n.name] = lif.s_out
                probes = [("spikes", lif.s_out)] + ([("voltage", lif.v), ("current", lif.u)] if record_state else [])
                for key, target in probes:
                    m = Monitor()
                    m.probe(target, T)
                    monitors.append((key, n, m))
            else:
                raise ValueError(f"node {n.name}: {type(n).__name__} is not mapped to Lava")
            graded[n.name] = graded[n.input] if isinstance(n, Flatten) else False
        try:
            t0 = time.perf_counter()
            src.run(condition=RunSteps(num_steps=T), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
            if timings is not None:
                timings["run_s"] = timings.get("run_s", 0.0) + time.perf_counter() - t0
            for key, n, m in monitors:
                data = m.get_data()
                proc = next(iter(data))
                arr = np.asarray(data[proc][next(iter(data[proc]))]).reshape(T, *to_lava(np.empty(n.shape)).shape)
                out[key][n.name][:, b] = np.stack([to_lava(a) for a in arr]).astype(np.int64) if arr.ndim == 4 \
                    else arr.astype(np.int64)
            learning.read_weights(plastic, out, b, B)
        finally:
            src.stop()
    if record_state:
        for p in g.neurons:
            out["current"][p.name] += g.synapse_bias(p)
    return {k: v for k, v in out.items() if k in ("spikes", "weights") or record_state}


def simulate_netx(path: str, x: np.ndarray, graded: bool) -> np.ndarray:
    """Run a netx HDF5 file with lava-dl's own ``netx.hdf5.Network`` under fixed_pt; return the
    output layer's spikes ``[T, B, *shape]`` (int64, (C, H, W) order for conv outputs)."""
    hdf5 = lava_compat.import_netx()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.source import RingBuffer
    from lava.proc.monitor.process import Monitor

    T, B = x.shape[:2]
    outs = []
    for b in range(B):
        sample = x[:, b]
        net = hdf5.Network(net_config=str(path), input_message_bits=24 if graded else 0)
        src = RingBuffer(data=np.ascontiguousarray(sample.transpose(*range(sample.ndim - 1, -1, -1))).astype(np.int32))
        src.s_out.connect(net.inp)
        mon = Monitor()
        mon.probe(net.out, T)
        try:
            src.run(condition=RunSteps(num_steps=T), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
            data = mon.get_data()
            proc = next(iter(data))
            arr = np.asarray(data[proc][next(iter(data[proc]))]).reshape(T, *net.out.shape)
        finally:
            src.stop()
        outs.append(np.stack([to_lava(a) for a in arr]) if arr.ndim == 4 else arr)
    return np.stack(outs, axis=1).astype(np.int64)
