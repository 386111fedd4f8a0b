"""Mapping: partition every population onto cores, and cores onto chips, from the target's
``[chip]`` description; deterministic (same graph -> same mapping).

A population's neurons are split into contiguous ranges, as many per core as both the neuron
limit and the synaptic memory allow (each neuron stores its fan-in synapses, ``weight_bits``
each, in the target's encoding; conv synapses are counted per neuron, an upper bound since
weights are shared). Cores are numbered in layer order and placed row by row on each chip's
mesh; a chip is full after ``cores_per_chip`` cores. The result is ``mapping.json``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from snnhw.errors import UnsupportedError
from snnhw.ir import LIF, Graph
from snnhw.targets.description import TargetDescription


@dataclass
class Core:
    id: int
    chip: int
    xy: tuple
    layer: str
    neurons: tuple  # [start, stop) in the population's flat (C-order) index
    synapse_bits: int
    fan_in: int


def fan_in(g: Graph, pop: LIF) -> int:
    """Synapses per neuron of ``pop`` (feed-forward plus recurrent)."""
    k = 0
    for path in pop.sources():  # every summed input path
        syn, _ = g.feeding_synapse(path)
        k += syn.fan_in if syn is not None else 0
    return k + (pop.size if pop.rec_weight is not None else 0)


def map_graph(g: Graph, target: TargetDescription) -> dict | None:
    """The mapping of ``g`` on ``target`` (None when the target has no cores to map to)."""
    chip = target.chip
    if chip is None:
        return None
    wb = target.numerics.weight_bits
    cores: list[Core] = []
    for pop in g.neurons:
        k_in = fan_in(g, pop)
        bits_per_neuron = k_in * wb
        per_core = chip.neurons_per_core
        if bits_per_neuron:
            per_core = min(per_core, chip.synaptic_memory_bits_per_core // bits_per_neuron)
        if per_core < 1:
            raise UnsupportedError(
                f"layer {pop.name}: one neuron needs {bits_per_neuron} bits of synaptic memory ({k_in} synapses x "
                f"{wb} bits), more than a {target.name} core has ({chip.synaptic_memory_bits_per_core}); it cannot "
                "be split: reduce this layer's fan-in or weight bits")
        if chip.max_fan_in_per_core and k_in > chip.max_fan_in_per_core:
            raise UnsupportedError(
                f"layer {pop.name}: fan-in {k_in} exceeds {chip.max_fan_in_per_core} input axons per core on "
                f"{target.name}; it cannot be split across cores: reduce the layer's input size")
        for start in range(0, pop.size, per_core):
            stop = min(pop.size, start + per_core)
            i = len(cores)
            local = i % chip.cores_per_chip
            cores.append(Core(i, i // chip.cores_per_chip, (local % chip.mesh[0], local // chip.mesh[0]), pop.name,
                              (start, stop), (stop - start) * bits_per_neuron, k_in))
    used_chips = cores[-1].chip + 1 if cores else 0
    summary = {
        "cores": len(cores), "chips": used_chips, "cores_per_chip": chip.cores_per_chip,
        "neurons": int(sum(c.neurons[1] - c.neurons[0] for c in cores)),
        "neuron_utilization": float(sum(c.neurons[1] - c.neurons[0] for c in cores) /
                                    max(1, len(cores) * chip.neurons_per_core)),
        "synaptic_memory_utilization": float(sum(c.synapse_bits for c in cores) /
                                             max(1, len(cores) * chip.synaptic_memory_bits_per_core)),
    }
    layers = {}
    for c in cores:
        layers.setdefault(c.layer, []).append(c.id)
    return {"target": target.name, "summary": summary, "layers": layers,
            "limits": {"neurons_per_core": chip.neurons_per_core,
                       "synaptic_memory_bits_per_core": chip.synaptic_memory_bits_per_core,
                       "max_fan_in_per_core": chip.max_fan_in_per_core, "mesh": list(chip.mesh)},
            "cores": [_core_json(c, chip) for c in cores]}


def _core_json(c: Core, chip) -> dict:
    d = asdict(c)
    d["xy"] = list(c.xy)
    d["neurons"] = list(c.neurons)
    d["neuron_utilization"] = (c.neurons[1] - c.neurons[0]) / chip.neurons_per_core
    d["memory_utilization"] = c.synapse_bits / chip.synaptic_memory_bits_per_core
    return d


def core_of(mapping: dict, layer: str, size: int) -> np.ndarray:
    """Core id of every neuron of ``layer`` (flat index)."""
    out = np.zeros(size, np.int64)
    for cid in mapping["layers"][layer]:
        c = mapping["cores"][cid]
        out[c["neurons"][0]:c["neurons"][1]] = cid
    return out
