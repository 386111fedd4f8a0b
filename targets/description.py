"""Target descriptions: what a target can run, as data (``targets/<name>/target.toml``).

Compiler passes learn about a target only through a :class:`TargetDescription`. The schema is
documented in docs/targets/schema.md; adding a target is adding a folder with a ``target.toml``
(and a backend module), no change to the passes.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from snnhw.errors import SnnhwError
from snnhw.ir import StateFormat

TARGETS_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Numerics:
    """Bit widths and arithmetic rules of a target's fixed-point datapath.

    weight_bits: signed weight width; weights lie in [-(2^(b-1)-1), 2^(b-1)-1].
    input_bits: signed width of graded (non-binary) input values.
    decay_bits / decay_rounding / input_shift: see snnhw.ir.NeuronFormat.
    threshold_lsb_bits: thresholds are multiples of 2^this in state units (Loihi: 6, vth << 6).
    threshold_max: largest threshold in state units.
    bias_lsb_bits / bias_max: a population's total voltage bias (its own plus synapse biases
    moved into it) is a multiple of 2^bias_lsb_bits with magnitude <= bias_max, in state units.
    synapse_delay: timesteps every Dense/Conv synapse adds (Loihi: 1; the emulator: 0).
    """

    weight_bits: int
    input_bits: int
    decay_bits: int
    decay_rounding: str
    input_shift: int
    threshold_lsb_bits: int
    threshold_max: int
    bias_lsb_bits: int
    bias_max: int
    synapse_delay: int
    current: StateFormat
    voltage: StateFormat
    accumulator: StateFormat
    conv_accumulator: StateFormat


@dataclass(frozen=True)
class Features:
    """Which IR features the target runs.

    synapse_exponent: a population's recurrent and feed-forward sums may have different power-of-two
    weight steps (``LIF.rec_weight_exp``).
    channel_steps: the quantizer may give each neuron of a Dense-fed population its own power-of-two
    weight step (compiler/quantize.py): its incoming weight rows, biases and threshold scaled by
    2^k_i, so the population needs per-neuron thresholds and biases (``per_neuron_threshold``).
    """

    reset_modes: tuple
    reset_timings: tuple
    per_neuron_decay: bool
    per_neuron_threshold: bool
    current_bias: bool
    recurrent: bool
    conv: bool
    pooling: bool
    plasticity: bool = False  # runs PlasticDense (on-chip learning)
    synapse_exponent: bool = False  # LIF.rec_weight_exp and a synapse's out_shift may be nonzero
    summed_inputs: bool = False  # a population may sum several input paths (LIF.extra_inputs)
    channel_steps: bool = False  # per-neuron weight steps (needs per_neuron_threshold)


@dataclass(frozen=True)
class Chip:
    """Core resources, for the mapping pass. A target without a ``[chip]`` table is not mapped.

    synaptic_memory_bits_per_core: synaptic memory per core, in bits; a synapse costs
    ``weight_bits`` (the target's own weight encoding).
    max_fan_in_per_core: distinct input axons a core accepts (0: no limit).
    mesh: cores per chip as (x, y) on the chip's 2-D mesh; spike hops are Manhattan distances.
    """

    cores_per_chip: int
    neurons_per_core: int
    synaptic_memory_bits_per_core: int
    max_fan_in_per_core: int
    mesh: tuple


@dataclass(frozen=True)
class TargetDescription:
    name: str
    summary: str
    backend: str
    numerics: Numerics
    features: Features
    chip: Chip | None = None
    energy: dict = field(default_factory=dict)
    sources: dict = field(default_factory=dict)
    raw: dict = field(default_factory=dict)
    lowering: tuple = ()  # names of the target's lowering passes (snnhw.compiler.lowering), run in order


def _fmt(d: dict, key: str) -> StateFormat:
    v = d[key]
    return StateFormat(int(v["bits"]), str(v["overflow"]))


def parse(data: dict, where: str = "target description") -> TargetDescription:
    try:
        t, n, f = data["target"], data["numerics"], data["features"]
        numerics = Numerics(
            weight_bits=int(n["weight_bits"]), input_bits=int(n["input_bits"]),
            decay_bits=int(n["decay_bits"]), decay_rounding=str(n["decay_rounding"]),
            input_shift=int(n["input_shift"]), threshold_lsb_bits=int(n["threshold_lsb_bits"]),
            threshold_max=int(n["threshold_max"]), bias_lsb_bits=int(n["bias_lsb_bits"]),
            bias_max=int(n["bias_max"]), synapse_delay=int(n["synapse_delay"]),
            current=_fmt(n, "current"), voltage=_fmt(n, "voltage"),
            accumulator=_fmt(n, "accumulator"), conv_accumulator=_fmt(n, "conv_accumulator"))
        features = Features(
            reset_modes=tuple(f["reset_modes"]), reset_timings=tuple(f["reset_timings"]),
            per_neuron_decay=bool(f["per_neuron_decay"]), per_neuron_threshold=bool(f["per_neuron_threshold"]),
            current_bias=bool(f["current_bias"]), recurrent=bool(f["recurrent"]),
            conv=bool(f["conv"]), pooling=bool(f["pooling"]),
            plasticity=bool(f.get("plasticity", False)),
            synapse_exponent=bool(f.get("synapse_exponent", False)),
            summed_inputs=bool(f.get("summed_inputs", False)),
            channel_steps=bool(f.get("channel_steps", False)))
        if features.channel_steps and not features.per_neuron_threshold:
            raise ValueError("features.channel_steps needs features.per_neuron_threshold")
        chip = None
        if "chip" in data:
            c = data["chip"]
            chip = Chip(int(c["cores_per_chip"]), int(c["neurons_per_core"]),
                        int(c["synaptic_memory_bits_per_core"]), int(c["max_fan_in_per_core"]),
                        tuple(int(v) for v in c["mesh"]))
            if chip.mesh[0] * chip.mesh[1] != chip.cores_per_chip or min(chip.cores_per_chip,
                                                                         chip.neurons_per_core) < 1:
                raise ValueError("chip.mesh must multiply to cores_per_chip")
        energy = {k: float(v) for k, v in data.get("energy", {}).items()}
        return TargetDescription(str(t["name"]), str(t["summary"]), str(t["backend"]), numerics, features,
                                 chip, energy, dict(data.get("sources", {})), data,
                                 tuple(str(p) for p in t.get("lowering", ())))
    except (KeyError, TypeError, ValueError) as exc:
        raise SnnhwError(f"{where}: missing or malformed field {exc}") from None


def available() -> list[str]:
    """Names of the targets shipped with snnhw (folders holding a target.toml)."""
    return sorted(p.parent.name for p in TARGETS_DIR.glob("*/target.toml"))


def load(name: str) -> TargetDescription:
    path = TARGETS_DIR / name / "target.toml"
    if not path.is_file():
        raise SnnhwError(f"unknown target {name!r}; available: {', '.join(available())}")
    with open(path, "rb") as fh:
        return parse(tomllib.load(fh), str(path))
