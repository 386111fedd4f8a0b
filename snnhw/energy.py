"""Operation counts and the energy estimate from the mapped configuration and the simulated run.

Counts (from an emulator run of the build's fixed IR on the quantized input):

* synaptic operations: every synaptic event the target executes. A nonzero value of a source (an
  input value, or a spike of a population) drives each nonzero weight on its way to the next
  population (its column of the next synapse, through pooling/flatten/conv), plus a population's
  spikes drive their recurrent row. Counted at the receiving population; the input-driven ones
  are also given apart (``synaptic_ops_input``), and as *graded* when the input is graded
  (multi-bit values, direct encoding) rather than binary spikes;
* neuron updates: every neuron, every step; *active* when it received nonzero synaptic input,
  spiked, or held a nonzero state, else *inactive* (Davies et al. 2018 distinguish the two);
* spike messages: one per (spike, destination core) pair, from the mapping; each travels the
  Manhattan distance between the two cores on the chip mesh (x hops east-west, y hops
  north-south); messages between chips are counted apart (no published per-message energy).
  Input values enter their destination cores from outside the mesh: no messages are counted.

Energy = counts x the target's constants (``[energy]`` in its target.toml, each with its source);
a graded input event costs ``graded_synaptic_op_pj`` where the target gives one, else
``synaptic_op_pj`` (and the report says which). The NeuroBench definitions of the same run are in
:mod:`snnhw.benchmark_counts`. For comparison, the same network as a non-spiking ANN evaluated once
per sample: one multiply-accumulate per synapse, and the SNN's synaptic operations as accumulates,
at 45 nm (Horowitz, ISSCC 2014). Every figure says what it counts.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from snnhw.compiler.mapping import core_of, fan_in
from snnhw.ir import Conv2d, Dense, Flatten, Graph, Pool2d
from snnhw.semantics.inputs import quantize_input

# 45 nm, 0.9 V, 32-bit float (Horowitz, "Computing's energy problem", ISSCC 2014, Fig. 1.1.9):
# FP32 multiply 3.7 pJ + add 0.9 pJ = one MAC; an accumulate is one add.
ANN_REFERENCE = {
    "mac_pj": 4.6,
    "ac_pj": 0.9,
    "source": "Horowitz, 'Computing's energy problem (and what we can do about it)', ISSCC 2014: 45 nm, "
              "FP32 mult 3.7 pJ, FP32 add 0.9 pJ; memory access energy not included",
}


def _size(node) -> int:
    return int(np.prod(node.shape))


def _fanout_matrix(pop, chain: list) -> np.ndarray:
    """Dense ``(post, pre)`` 0/1 matrix of nonzero synapses from ``pop`` (a population or the Input)
    through ``chain`` (the ops of one path to a population: pooling, flatten and conv expanded by
    probing unit values)."""
    size = _size(pop)
    vals = np.eye(size, dtype=np.float64).reshape(1, size, *pop.shape)
    for n in chain:
        vals = n.registered(_PROBE)(n, vals)
    return (vals.reshape(size, -1) != 0).T


def _probe_conv(n, vals):
    from snnhw.targets.emu.emulator import _conv
    k = replace(n, weight=(n.weight != 0).astype(np.float64), bias=None, delay=0, acc=None)
    return _conv(k, vals, False, 1.0)[0]


def _probe_pool(n, vals):
    from snnhw.targets.emu.emulator import _pool
    return _pool(n, vals)


_PROBE = {
    Dense: lambda n, vals: vals.reshape(*vals.shape[:2], -1) @ (n.weight != 0).T.astype(np.float64),
    Conv2d: _probe_conv,
    Pool2d: _probe_pool,
    Flatten: lambda n, vals: vals.reshape(*vals.shape[:2], -1),
}
"""Where each op sends unit values (nonzero weights only): ``probe(node, vals)``, vals ``[1, size, *shape]``."""


def estimate(g: Graph, res, mapping: dict | None, energy: dict, sources: dict, x: np.ndarray) -> dict:
    """Counts and energy for one run ``res`` (RunResult with record_state) of fixed IR ``g`` on user
    input ``x`` ``[T, B, *shape]`` (the same, padded, array the run was given)."""
    from snnhw.benchmark_counts import neurobench_counts
    layers, cores = {}, {}
    x_int = quantize_input(g, x)
    T, B = x_int.shape[:2]
    totals = {"synaptic_ops": 0, "synaptic_ops_input": 0, "synaptic_ops_graded": 0, "neuron_updates_active": 0,
              "neuron_updates_inactive": 0, "spikes": 0, "messages": 0, "hops_east_west": 0, "hops_north_south": 0,
              "messages_between_chips": 0}
    for pop in g.neurons:
        s = res.spikes[pop.name]
        flat = s.reshape(T, B, -1)
        active = int(np.count_nonzero((res.voltage[pop.name].reshape(T, B, -1) != 0) |
                                      (res.current[pop.name].reshape(T, B, -1) != 0) | (flat != 0)))
        updates = T * B * pop.size
        spikes = int(flat.sum())
        layers[pop.name] = {"neurons": pop.size, "spikes": spikes, "rate_per_step": float(spikes / (T * B * pop.size)),
                            "synaptic_ops": 0, "synaptic_ops_input": 0, "synaptic_ops_graded": 0,
                            "neuron_updates_active": active, "neuron_updates_inactive": updates - active}
    graded = g.input.bits > 1
    for src in [g.input] + g.neurons:
        values = x_int if src.is_input else res.spikes[src.name]
        events = np.count_nonzero(values.reshape(T, B, -1), axis=(0, 1)).astype(np.int64)  # per source element
        for chain, post in g.paths_to_populations(src.name):  # every path: skip connections too
            fo = _fanout_matrix(src, chain)
            ops = int(events @ fo.sum(axis=0).astype(np.int64))
            L = layers[post.name]
            L["synaptic_ops"] += ops
            if src.is_input:
                L["synaptic_ops_input"] += ops
                L["synaptic_ops_graded"] += ops if graded else 0
            elif mapping is not None:
                for k, v in _messages(mapping, src, post, fo, events, cores).items():
                    layers[src.name][k] = layers[src.name].get(k, 0) + v
        if src.is_population and src.rec_weight is not None:
            layers[src.name]["synaptic_ops"] += int(events @ (src.rec_weight != 0).sum(axis=0).astype(np.int64))
    ann_macs = sum(fan_in(g, pop) * pop.size for pop in g.neurons)
    for L in layers.values():
        for k in totals:
            totals[k] += L.get(k, 0)
    plastic = [n for n in g.nodes if n.is_plastic]
    if plastic:  # learning: every synapse update of every epoch (Loihi's learning engine)
        totals["learning_updates"] = 0
        for n in plastic:
            layers[n.post]["learning_updates"] = n.updates(T) * B
            totals["learning_updates"] += layers[n.post]["learning_updates"]
    out = {"timesteps": T, "batch": B, "counts": totals, "layers": layers,
           "per_sample": {k: v / B for k, v in totals.items()},
           "synaptic_ops_what": "every synaptic event the target executes: each nonzero input value and each spike "
                                "drives its nonzero weights to the next population (and a spike its recurrent row); "
                                "counted at the receiving population; synaptic_ops_input: driven by the input, "
                                "synaptic_ops_graded: by graded (multi-bit) input values",
           "neurobench": neurobench_counts(g, res, x_int)}
    if energy:
        out["energy"] = _energy(layers, totals, energy, sources, B, mapping, cores)
    nb = out["neurobench"]
    out["ann_reference"] = {
        "macs_per_sample": ann_macs,
        "ann_energy_per_sample_uj": ann_macs * ANN_REFERENCE["mac_pj"] * 1e-6,
        "snn_synops_as_accumulates_per_sample_uj": totals["synaptic_ops"] / B * ANN_REFERENCE["ac_pj"] * 1e-6,
        "snn_effective_ops_per_sample_uj": (nb["effective_acs_per_sample"] * ANN_REFERENCE["ac_pj"]
                                            + nb["effective_macs_per_sample"] * ANN_REFERENCE["mac_pj"]) * 1e-6,
        "what": "the same weights as a non-spiking network evaluated once per sample (one MAC per synapse); this "
                "run's synaptic operations as accumulates; and this run's NeuroBench effective ACs and MACs "
                "(graded input drives MACs) at their 45 nm costs",
        "source": ANN_REFERENCE["source"],
    }
    return out


def _messages(mapping, pop, post, fo, per_neuron, cores) -> dict:
    """Spike messages from ``pop``'s cores to the cores of population ``post``, with hop counts."""
    src_core = core_of(mapping, pop.name, pop.size)
    dst_core = core_of(mapping, post.name, post.size)
    info = mapping["cores"]
    dst_ids = sorted(set(dst_core.tolist()))
    # reaches[j, d]: neuron j has a synapse onto a neuron of core d
    reaches = np.stack([fo[dst_core == d].any(axis=0) for d in dst_ids], axis=1)
    msgs = ew = ns = chips = 0
    for j in np.nonzero(per_neuron)[0]:
        cs = info[int(src_core[j])]
        for di in np.nonzero(reaches[j])[0]:
            cd = info[dst_ids[di]]
            n = int(per_neuron[j])
            msgs += n
            cores[cs["id"]] = cores.get(cs["id"], 0) + n
            if cs["chip"] != cd["chip"]:
                chips += n
            else:
                ew += n * abs(cs["xy"][0] - cd["xy"][0])
                ns += n * abs(cs["xy"][1] - cd["xy"][1])
    return {"messages": msgs, "hops_east_west": ew, "hops_north_south": ns, "messages_between_chips": chips}


def _energy(layers, totals, e, sources, B, mapping, cores_msgs) -> dict:
    graded_pj = e.get("graded_synaptic_op_pj", e.get("synaptic_op_pj", 0.0))
    pj = lambda c: {  # noqa: E731
        "synaptic_ops": (c["synaptic_ops"] - c["synaptic_ops_graded"]) * e.get("synaptic_op_pj", 0.0)
        + c["synaptic_ops_graded"] * graded_pj,
        "neuron_updates": c["neuron_updates_active"] * e.get("neuron_update_active_pj", 0.0)
        + c["neuron_updates_inactive"] * e.get("neuron_update_inactive_pj", 0.0),
        "spike_messages": c.get("messages", 0) * e.get("spike_within_tile_pj", 0.0)
        + c.get("hops_east_west", 0) * e.get("hop_east_west_pj", 0.0)
        + c.get("hops_north_south", 0) * e.get("hop_north_south_pj", 0.0),
        **({"learning_updates": c["learning_updates"] * e.get("synaptic_update_pj", 0.0)}
           if "learning_updates" in c else {}),
    }
    by_layer = {name: pj(c) for name, c in layers.items()}
    total = pj(totals)
    by_core = {}
    if mapping is not None:
        for core in mapping["cores"]:
            L = layers[core["layer"]]
            frac = (core["neurons"][1] - core["neurons"][0]) / L["neurons"]
            by_core[core["id"]] = (sum(by_layer[core["layer"]].values()) - by_layer[core["layer"]]["spike_messages"]) \
                * frac + cores_msgs.get(core["id"], 0) * e.get("spike_within_tile_pj", 0.0)
    return {
        "constants_pj": e, "source": sources.get("energy", "")
        + (f"; graded input: {sources['energy_graded']}" if "energy_graded" in sources else ""),
        "total_uj": sum(total.values()) * 1e-6, "per_sample_uj": sum(total.values()) * 1e-6 / B,
        "breakdown_uj": {k: v * 1e-6 for k, v in total.items()},
        "by_layer_uj": {k: sum(v.values()) * 1e-6 for k, v in by_layer.items()},
        "by_core_uj": {str(k): v * 1e-6 for k, v in sorted(by_core.items())},
        "what": "synaptic ops (input-driven included) x synaptic_op_pj, graded input events x "
                + ("graded_synaptic_op_pj" if "graded_synaptic_op_pj" in e else "synaptic_op_pj (no graded figure)")
                + " + active/inactive neuron updates x their pJ + spike messages x (within-tile pJ) + hops x hop pJ"
                " (+ learning updates x synaptic_update_pj for plastic synapses); chip-to-chip messages are "
                "counted, not costed; input values enter from outside the mesh (no messages counted)",
    }
