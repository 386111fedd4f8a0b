"""Build a Lava process graph from a fixed-point IR and run it in Lava's bit-accurate ``fixed_pt`` model.

Mapping (docs/targets/loihi.md): Input -> ``io.source.RingBuffer``; Dense -> ``Dense`` with
``num_weight_bits=9`` and ``sign_mode=MIXED`` (so int8 weights keep their LSB); Conv2d -> ``Conv``
(Lava convolves with a flipped kernel in (W, H, C) layout, so torch weights are flipped and
transposed); Flatten -> a transposed, flattened port (torch C-order); LIF -> the process
ranges.plan chose: Intel's ``LIF(du=4095-alpha, dv=4096-beta, vth=threshold>>6, bias_mant,
bias_exp)`` or snnhw's ``MicrocodeLIF`` (microcode_lif.py); a recurrent dense -> a ``Dense`` from
the population's ``s_out`` back to its ``a_in`` (Intel) or ``r_in`` (MicrocodeLIF). Spikes, v and u
are read with ``Monitor`` probes (v and u after the step's reset, as the emulator records them);
Intel layers also probe their synaptic input, from which overflow.py derives the overflow events.

Tensors of shape (C, H, W) in the IR are (W, H, C) in Lava.

This module imports lava; it runs inside the worker process (see worker.py), never in the CLI.
"""
from __future__ import annotations

import time

import numpy as np

from snnhw.ir import LIF, Conv2d, Dense, Flatten, Graph, PlasticDense
from snnhw.targets import load as load_target
from snnhw.targets.loihi import lava_compat, overflow, ranges

def to_lava(a: np.ndarray) -> np.ndarray:
    """(C, H, W) <-> Lava's (W, H, C) (its own inverse); 1-D unchanged."""
    return a.transpose(2, 1, 0) if a.ndim == 3 else a


def conv_weight(w: np.ndarray) -> np.ndarray:
    """torch (C_out, C_in, kH, kW) cross-correlation -> Lava (C_out, kW, kH, C_in) convolution."""
    return np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(0, 3, 2, 1))


def plan_of(g: Graph) -> dict:
    """The loihi target's per-population plan (ranges.plan): which process runs each population."""
    return ranges.plan(g, load_target("loihi"))[0]


def _formats(g: Graph, pop: LIF) -> dict:
    """MicrocodeLIF's register formats (plain values for proc_params)."""
    f = pop.format
    syn = ranges.feed_synapse(g, pop)
    return {"acc": (syn.acc.bits, syn.acc.overflow) if syn is not None else (32, "none"),
            "rec_acc": (pop.rec_acc.bits, pop.rec_acc.overflow) if pop.rec_acc is not None else (32, "none"),
            "current": (f.current.bits, f.current.overflow), "voltage": (f.voltage.bits, f.voltage.overflow),
            "decay_bits": f.decay_bits, "rounding": f.decay_rounding, "input_shift": f.input_shift,
            "reset": (pop.reset_mode, pop.reset_timing)}


def _lava_neuron(g: Graph, n: LIF, lp: ranges.LayerPlan, fields: ranges.LavaFields):
    """The Lava process running population ``n``: Intel's LIF or our MicrocodeLIF (see ranges.py),
    and the in-port its recurrent synapse connects to."""
    from lava.proc.lif.process import LIF as LavaLIF
    shape = to_lava(np.empty(n.shape)).shape
    lava = lambda a: to_lava(np.broadcast_to(np.asarray(a, np.int64), n.shape))
    if lp.model == ranges.INTEL:
        one = 1 << n.format.decay_bits
        mant, exp = ranges.bias_parts(ranges.voltage_bias(g, n, lp), fields)
        lif = LavaLIF(shape=shape, du=int(one - 1 - int(n.alpha)), dv=int(one - int(n.beta)),
                      vth=int(int(n.threshold) >> 6), bias_mant=to_lava(mant), bias_exp=to_lava(exp))
        return lif, lif.a_in
    from snnhw.targets.loihi.microcode_lif import MicrocodeLIF
    lif = MicrocodeLIF(shape=shape, alpha=lava(n.alpha), beta=lava(n.beta), threshold=lava(n.threshold),
                       bias=lava(n.bias), syn_bias=lava(ranges.feed_bias(g, n)), rec_bias=lava(ranges.rec_bias(n)),
                       formats=_formats(g, n))
    return lif, lif.r_in


class _Wiring:
    """One sample's Lava process graph while it is built: each node's out-port (``port``), the
    process port behind a possibly reshaped port (``real``, for probes), whether it carries graded
    values (``graded``), the learning synapses and the populations' monitors."""

    def __init__(self, g, plans, fields, T, record_state, source_port, dense):
        self.g, self.plans, self.fields, self.T, self.record_state, self.dense = g, plans, fields, T, record_state, dense
        name = g.input.name
        self.port, self.real, self.graded = {name: source_port}, {name: source_port}, {name: g.input.bits > 1}
        self.monitors, self.plastic = [], {}

    def out(self, n, port, real=None, graded=False):
        self.port[n.name], self.real[n.name], self.graded[n.name] = port, port if real is None else real, graded


WIRE: dict = {}
"""How each op type becomes Lava processes: ``wire(wiring, node, num_message_bits)``."""


def _wires(op):
    def register(fn):
        WIRE[op] = fn
        return fn
    return register


@_wires(PlasticDense)
def _wire_plastic(w: _Wiring, n, bits):
    """Learning synapses: targets/loihi/learning.py."""
    from snnhw.targets.loihi import learning
    w.plastic[n.name] = learning.synapse(n, w.port[n.input])
    w.out(n, w.plastic[n.name].a_out)


@_wires(Dense)
def _wire_dense(w: _Wiring, n, bits):
    d = w.dense(n.weight, bits)
    w.port[n.input].connect(d.s_in)
    w.out(n, d.a_out)


@_wires(Conv2d)
def _wire_conv(w: _Wiring, n, bits):
    from lava.proc.conv.process import Conv as LavaConv
    c, h, wd = n.in_shape
    conv = LavaConv(weight=conv_weight(n.weight).astype(np.int32), input_shape=(wd, h, c),
                    padding=n.padding[::-1], stride=n.stride[::-1], dilation=n.dilation[::-1],
                    groups=n.groups, num_message_bits=bits)
    w.port[n.input].connect(conv.s_in)
    w.out(n, conv.a_out)


@_wires(Flatten)
def _wire_flatten(w: _Wiring, n, bits):
    p = w.port[n.input]
    w.out(n, p.transpose([2, 1, 0]).flatten() if len(n.in_shape) == 3 else p, w.real[n.input], w.graded[n.input])


@_wires(LIF)
def _wire_lif(w: _Wiring, n, bits):
    from lava.proc.monitor.process import Monitor
    from snnhw.targets.loihi import learning
    lp = w.plans[n.name]
    lif, rec_port = _lava_neuron(w.g, n, lp, w.fields)
    w.port[n.input].connect(lif.a_in)
    if n.input in w.plastic:
        learning.connect_post(w.plastic[n.input], lif)
    probes = [("spikes", lif.s_out)]
    if n.rec_weight is not None:
        r = w.dense(n.rec_weight, 0)
        lif.s_out.connect(r.s_in)
        r.a_out.connect(rec_port)
        if lp.model == ranges.INTEL:
            probes.append(("rec_in", r.a_out))
    if w.record_state or lp.model == ranges.INTEL:
        probes += [("voltage", lif.v), ("current", lif.u)]
    if lp.model == ranges.INTEL:
        probes.append(("feed_in", w.real[n.input]))
    mons = []
    for key, target in probes:  # one Monitor per probe: a second probe on one Monitor fails in Lava 0.10
        m = Monitor()
        m.probe(target, w.T)
        mons.append((key, target, m))
    w.monitors.append((n, lif, mons))
    w.out(n, lif.s_out)


def simulate(g: Graph, x: np.ndarray, record_state: bool = False, timings: dict | None = None) -> dict:
    """Run ``g`` on integer input ``x`` ``[T, B, *shape]`` one sample at a time; return per-population
    ``spikes``/``voltage``/``current`` arrays ``[T, B, *shape]`` (int64) and ``overflow``: the
    events Lava itself showed (overflow.py). ``timings``, if given, receives ``run_s``: seconds
    spent in Lava's ``run()`` (all samples), for benchmarks."""
    lava_compat.import_lava()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense as LavaDense
    from lava.proc.io.source import RingBuffer
    from lava.utils.weightutils import SignMode
    from snnhw.targets.loihi import learning

    plans = plan_of(g)
    fields = ranges.LavaFields.of(load_target("loihi"))
    run_cfg = Loihi2SimCfg(select_tag="fixed_pt")
    if any(lp.model == ranges.MICROCODE for lp in plans.values()):
        from snnhw.targets.loihi.microcode_lif import MicrocodeLIF, PyMicrocodeLIFModel
        run_cfg = Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map={MicrocodeLIF: PyMicrocodeLIFModel})
    T, B = x.shape[:2]
    out = {k: {p.name: np.zeros((T, B, *p.shape), np.int64) for p in g.neurons}
           for k in ("spikes", "voltage", "current")}
    counter = overflow.Counter(g, plans)
    dense = lambda w, bits: LavaDense(weights=w.astype(np.int32), num_message_bits=bits,
                                      num_weight_bits=fields.weight_max.bit_length() + 1, sign_mode=SignMode.MIXED)
    for b in range(B):
        sample = x[:, b]
        data = sample.transpose(*range(sample.ndim - 1, -1, -1))  # [T, C, H, W] -> (W, H, C, T); [T, N] -> (N, T)
        src = RingBuffer(data=np.ascontiguousarray(data).astype(np.int32))
        w = _Wiring(g, plans, fields, T, record_state, src.s_out, dense)
        for n in g.nodes[1:]:
            n.registered(WIRE)(w, n, 24 if w.graded[n.input] else 0)
        monitors = w.monitors
        try:
            t0 = time.perf_counter()
            src.run(condition=RunSteps(num_steps=T), run_cfg=run_cfg)
            if timings is not None:
                timings["run_s"] = timings.get("run_s", 0.0) + time.perf_counter() - t0
            for n, lif, mons in monitors:
                rec = _recorded(mons, T)
                for key in ("spikes", "voltage", "current"):
                    if key in rec:
                        out[key][n.name][:, b] = rec[key].reshape(T, *n.shape)
                counter.observe(n, lif, rec, b)
            learning.read_weights(w.plastic, out, b, B)
        finally:
            src.stop()
    for p in g.neurons:
        if plans[p.name].bias_moved_to_voltage:  # the IR's u holds the synapse biases Lava added to v
            out["current"][p.name] += (ranges.feed_bias(g, p) + ranges.rec_bias(p)) << p.format.input_shift
    result = {k: v for k, v in out.items() if k in ("spikes", "weights") or record_state}
    result["overflow"] = counter.counts
    return result


def _recorded(mons, T: int) -> dict:
    """Monitors' recorded arrays, by probe key: ``[T, *IR shape]`` int64 ((W, H, C) turned back to (C, H, W))."""
    rec = {}
    for key, target, m in mons:
        data = m.get_data()
        arr = np.asarray(data[target.process.name][target.name]).reshape(T, *target.shape)
        rec[key] = np.stack([to_lava(a) for a in arr]).astype(np.int64) if arr.ndim == 4 else arr.astype(np.int64)
    return rec


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
