"""Export the fixed IR as a lava-dl **netx** HDF5 file (``network.net``) for Loihi 2 deployment.

Layout (lava-dl 0.6.0 ``lava/lib/dl/netx/hdf5.py``): ``/layer/<i>/`` in order, layer 0 the input;
``type`` is ``input``, ``dense``, ``dense_rec``, ``conv`` or ``flatten``; shapes are in slayer
order (C, H, W); each neuron layer has a ``neuron`` group ``{type: CUBA, iDecay, vDecay, vThMant,
refDelay, gradedSpike}`` that netx turns into ``LIF(du=iDecay-1, dv=vDecay, vth=vThMant,
bias_exp=6)``, and an optional ``bias`` (``bias_mant``, in weight units). So
``iDecay = 4096 - alpha``, ``vDecay = 4096 - beta``, ``vThMant = threshold >> 6`` and
``bias = total voltage bias >> 6``. Dense weights are integers (netx rescales them exactly within
[-256, 254]); conv weights are torch-ordered (out, in, kH, kW), netx flips them itself.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from snnhw.ir import LIF, Conv2d, Dense, Flatten, Graph
from snnhw.targets import load as load_target
from snnhw.targets.loihi import ranges

NETX_FILE = "network.net"


def problems(g: Graph) -> list[str]:
    """What netx 0.6.0 cannot express in ``g`` (empty: the file can be written)."""
    out = []
    plans = ranges.plan(g, load_target("loihi"))[0]
    for n in g.nodes[1:]:
        if n.is_plastic:
            out.append(f"layer {n.name}: netx has no learning synapses (a netx file would hold static weights)")
        elif not n.is_population and type(n) not in LAYERS:
            out.append(f"layer {n.name}: netx has no {n.op} layer (lava-dl 0.6.0; its 'pool' raises NotImplementedError)")
        if n.is_synapse and not (g.consumer(n.name) is not None and g.consumer(n.name).is_population):
            out.append(f"layer {n.name}: netx needs every synapse to feed a neuron layer")
        if n.is_population and plans[n.name].model != ranges.INTEL:
            out.append(f"layer {n.name}: netx describes only Intel's CUBA LIF, and this layer runs on "
                       f"MicrocodeLIF ({'; '.join(plans[n.name].why_not_intel)})")
        elif n.is_population:
            if np.any(ranges.voltage_bias(g, n, plans[n.name]) % 64):
                out.append(f"layer {n.name}: netx biases are in weight units (multiples of 64 state units)")
            if n.rec_weight is not None and g.node(n.input).op != Dense.op:
                out.append(f"layer {n.name}: netx has recurrence only on dense layers")
    return out


def _neuron(group: h5py.Group, pop: LIF):
    nrn = group.create_group("neuron")
    nrn.create_dataset("type", data=np.bytes_("CUBA"))
    nrn.create_dataset("iDecay", data=np.int64(4096 - int(pop.alpha)))
    nrn.create_dataset("vDecay", data=np.int64(4096 - int(pop.beta)))
    nrn.create_dataset("vThMant", data=np.int64(int(pop.threshold) >> 6))
    nrn.create_dataset("refDelay", data=np.int64(1))
    nrn.create_dataset("gradedSpike", data=np.bool_(False))


def _bias(group: h5py.Group, g: Graph, pop: LIF, lp: ranges.LayerPlan):
    total = ranges.voltage_bias(g, pop, lp) >> 6
    if not np.any(total):
        return
    if total.ndim == 3:
        per_channel = total[:, :1, :1]
        if np.all(total == per_channel):
            group.create_dataset("bias", data=per_channel.reshape(-1))
        else:  # netx compares per-neuron biases with its (W, H, C) neuron shape
            group.create_dataset("bias", data=total.transpose(2, 1, 0))
    else:
        group.create_dataset("bias", data=total)


def write(g: Graph, path: Path) -> None:
    """Write ``g`` (a fixed IR inside the loihi target) as a netx HDF5 file; see :func:`problems`."""
    plans = ranges.plan(g, load_target("loihi"))[0]
    pops = {n.input: n for n in g.neurons}
    # h5py writes no timestamps unless track_times is set; keep files byte-identical
    with h5py.File(path, "w", libver="earliest", track_order=True) as f:
        sim = f.create_group("simulation")
        sim.create_dataset("Ts", data=np.int64(1))
        sim.create_dataset("tSample", data=np.int64(0))
        layers = f.create_group("layer", track_order=True)
        inp = layers.create_group("0")
        inp.create_dataset("type", data=np.bytes_("input"))
        inp.create_dataset("shape", data=np.array(g.input.shape, np.int64))
        i = 1
        for n in g.nodes[1:]:
            if not n.is_population:  # a population is written with the synapse feeding it
                LAYERS[type(n)](layers.create_group(str(i)), n, g, pops.get(n.name), plans)
                i += 1


def _flatten_layer(grp, n, g, pop, plans):
    grp.create_dataset("type", data=np.bytes_("flatten"))
    grp.create_dataset("shape", data=np.array(n.shape, np.int64))


def _dense_layer(grp, n, g, pop, plans):
    grp.create_dataset("type", data=np.bytes_("dense_rec" if pop.rec_weight is not None else "dense"))
    grp.create_dataset("shape", data=np.array(pop.shape, np.int64))
    grp.create_dataset("inFeatures", data=np.int64(n.weight.shape[1]))
    grp.create_dataset("outFeatures", data=np.int64(n.weight.shape[0]))
    grp.create_dataset("weight", data=n.weight.astype(np.int64))
    if pop.rec_weight is not None:
        grp.create_dataset("weight_rec", data=pop.rec_weight.astype(np.int64))
    _neuron(grp, pop)
    _bias(grp, g, pop, plans[pop.name])


def _conv_layer(grp, n, g, pop, plans):
    grp.create_dataset("type", data=np.bytes_("conv"))
    grp.create_dataset("shape", data=np.array(pop.shape, np.int64))
    grp.create_dataset("inChannels", data=np.int64(n.in_shape[0]))
    grp.create_dataset("outChannels", data=np.int64(n.weight.shape[0]))
    grp.create_dataset("kernelSize", data=np.array(n.weight.shape[2:], np.int64))
    grp.create_dataset("stride", data=np.array(n.stride, np.int64))
    grp.create_dataset("padding", data=np.array(n.padding, np.int64))
    grp.create_dataset("dilation", data=np.array(n.dilation, np.int64))
    grp.create_dataset("groups", data=np.int64(n.groups))
    grp.create_dataset("weight", data=n.weight.astype(np.int64))
    _neuron(grp, pop)
    _bias(grp, g, pop, plans[pop.name])


LAYERS = {Flatten: _flatten_layer, Dense: _dense_layer, Conv2d: _conv_layer}
"""The netx layer each op type writes, ``write(group, node, graph, population fed, plans)`` (exact
types: a plastic synapse has no netx layer; a population is part of its synapse's layer)."""
