"""Lower a fixed IR into a hardware plan: spike lists, LIF cores, memory images and bit widths.

A population (``LIF``) becomes one core that updates its neurons one after another; its synapse
becomes the core's weight memory: a ``Dense`` matrix, or a ``Conv2d`` kernel stored once with
addresses generated in the core (targets/fpga/conv.py). The network input and every population own a spike list: a ring of per-timestep
event lists (neuron index, and the value for graded input) deep enough for the largest delay any
reader applies. Everything the RTL needs is computed here; the templates only print it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from snnhw.errors import UnsupportedError
from snnhw.ir import LIF, Conv2d, Dense, Graph, NeuronFormat, Pool2d, StateFormat
from snnhw.targets.description import TargetDescription
from snnhw.semantics import overflow as ov
from snnhw.targets.fpga import memory
from snnhw.targets.fpga import widths as wd
from snnhw.targets.fpga.conv import ConvGeometry
from snnhw.targets.fpga.cycles import CONV_WALK_STAGES, WALK_STAGES


@dataclass(frozen=True)
class ParamField:
    """One per-neuron field of a core's parameter memory word (``values`` in neuron order)."""

    name: str
    bits: int
    signed: bool
    values: tuple


@dataclass
class ListPlan:
    """The event list of one source (the input or a population), ``slots`` timesteps deep.

    index_bits: width of a neuron index; value_bits: width of a graded input value (0: binary
    spikes, every event has value 1); count_bits: width of an event count 0..size.
    prefix: signal-name prefix in the top module; writer: id of the core whose spikes fill it.
    readers: (core id, port ``in``/``rec``, delay in timesteps) of everyone reading the list.
    """

    name: str
    module: str
    size: int
    index_bits: int
    value_bits: int
    slots: int
    slot_bits: int
    count_bits: int
    is_input: bool
    prefix: str = ""
    writer: int | None = None
    readers: list = field(default_factory=list)


@dataclass
class CorePlan:
    """One LIF population on one time-multiplexed datapath (docs/targets/fpga.md, "Core").

    All widths are in bits. weights: ``(size, fan_in)`` integers of a Dense or a conv kernel (see
    ``conv``), stored banked over the lanes (:meth:`weight_rows`); sum_bits holds every exact synaptic
    sum without its bias; u_bits/v_bits are the stored registers; calc_bits holds every intermediate
    of one update but the two decay products, which keep their own width (u_bits or v_bits plus the
    factor's).
    scalars: parameters shared by all neurons; fields: per-neuron parameters (parameter memory).
    lanes: P, the synapse lanes: P weight banks read in parallel, so one input event reaches P
    neurons (a group) per cycle (docs/targets/fpga.md, "Synapse lanes").
    conv: the kernel geometry of a Conv2d synapse (then ``weights`` is its ``(Cout, C/groups, kh, kw)``
    kernel and the lanes are output channels, see targets/fpga/conv.py); None for a Dense.
    """

    id: int
    name: str
    synapse: str
    module: str
    size: int
    index_bits: int
    source: ListPlan
    delay: int
    weights: np.ndarray
    weight_bits: int
    sum_bits: int
    acc: StateFormat
    rec_delay: int | None
    rec_weights: np.ndarray | None
    rec_weight_bits: int
    rec_sum_bits: int
    rec_acc: StateFormat | None
    fmt: NeuronFormat
    reset_mode: str
    reset_timing: str
    u_bits: int
    v_bits: int
    calc_bits: int
    threshold_bits: int
    walk_bits: int
    scalars: dict
    fields: list
    rules: dict
    lanes: int = 1
    conv: ConvGeometry | None = None
    weight_memory: str = "ebr"        # "ebr" (block RAM set by the bitstream) or "spram" (snnhw.targets.fpga.memory)
    flash_offset: int | None = None   # spram: byte offset of this core's rows in the flash weight image

    @property
    def groups(self) -> int:
        """Neuron groups G: ceil(N / P) for a Dense (group g holds neurons g*P .. g*P+P-1, one per
        lane); ceil(Cout / P) * Ho * Wo for a conv core (:meth:`lane_neurons`)."""
        if self.conv is not None:
            return self.conv.blocks(self.lanes) * self.conv.positions
        return -(-self.size // self.lanes)

    @property
    def last_lanes(self) -> int:
        """Neurons in the last group (1..P); for a conv core, in every group of the last channel block."""
        per_group = self.conv.out_shape[0] if self.conv is not None else self.size
        return per_group - (-(-per_group // self.lanes) - 1) * self.lanes

    @property
    def walk_stages(self) -> int:
        """Pipeline stages of the walk (a conv core reads its event's coordinates first)."""
        return WALK_STAGES if self.conv is None else CONV_WALK_STAGES

    def lane_neurons(self) -> np.ndarray:
        """``(G, P)``: the neuron each lane of each group updates (-1: a padding lane)."""
        if self.conv is not None:
            return self.conv.lane_neurons(self.lanes)
        n = np.arange(self.groups * self.lanes).reshape(-1, self.lanes)
        return np.where(n < self.size, n, -1)

    def banked(self, weights: np.ndarray) -> np.ndarray:
        """``(G * fan_in, P)`` weights of a ``(N, fan_in)`` matrix: row ``g * fan_in + i`` holds, lane p,
        the weight from input i to the neuron of lane p in group g (0 for padding lanes). One wide
        memory word per row is the P banks side by side."""
        neurons = self.lane_neurons()
        padded = np.vstack([np.asarray(weights, np.int64), np.zeros((1, weights.shape[1]), np.int64)])
        return padded[neurons].transpose(0, 2, 1).reshape(-1, self.lanes)  # row -1 is the zero row

    def weight_rows(self) -> np.ndarray:
        """The weight memory, one row per word and one column per lane: the banked matrix of a
        Dense, the kernel words of a conv core (:meth:`ConvGeometry.rows`)."""
        return self.conv.rows(self.lanes) if self.conv is not None else self.banked(self.weights)

    @property
    def weight_words(self) -> int:
        """Words of the weight memory (each ``lanes * weight_bits`` wide)."""
        return (self.conv.blocks(self.lanes) * self.conv.taps if self.conv is not None
                else self.groups * self.fan_in)

    @property
    def fan_in(self) -> int:
        """Inputs a neuron can read: the source's size for a conv core, the matrix's columns otherwise."""
        return self.source.size if self.conv is not None else int(self.weights.shape[1])

    @property
    def has_rec(self) -> bool:
        return self.rec_weights is not None

    @property
    def param_bits(self) -> int:
        return sum(f.bits for f in self.fields)

    def field_names(self) -> set:
        return {f.name for f in self.fields}

    @property
    def counters(self) -> list:
        """The overflow event counters of this core: ``(site, IR node, RunResult key, after, before)``
        for every register rule the value ranges cannot rule out (``rules``). The core raises
        ``ov_<site>`` while it writes back a neuron whose value the rule changed (``after != before``,
        Verilog signal names of lif_core.v.j2); the testbench counts those cycles, as the emulator
        counts events (one per step, sample and neuron)."""
        out = []
        for site, node, reg, after, before in OVERFLOW_SITES:
            fmt = self.rules.get(site)
            if fmt is None or (site == "rec_acc" and not self.has_rec) or \
                    (site == "voltage_reset" and (self.reset_mode, self.reset_timing) != ("subtract", "immediate")):
                continue
            out.append((site, self.synapse if node == "synapse" else self.name, f"{reg}_{fmt.overflow}", after, before))
        return out


# (site, node owning the count, register name in RunResult keys, value after the rule, value before it)
OVERFLOW_SITES = (
    ("acc", "synapse", "acc", "a_in", "in_total_sum"),
    ("rec_acc", "population", "rec_acc", "a_rec", "rec_total_sum"),
    ("current", "population", "current", "u_new", "u_pre"),
    ("voltage", "population", "voltage", "v_limited", "v_reset"),
    ("voltage_reset", "population", "voltage", "v_new", "v_carried"),
)


@dataclass
class DesignPlan:
    """The whole accelerator: lists and cores in processing order, plus names of the top module."""

    lists: list
    cores: list
    top: str = "snn_top"
    layer_bits: int = 1
    spike_index_bits: int = 1
    trace_bits: int = 2
    flash: dict | None = None     # the SPI flash weight image ([hardware.flash] and its size in bytes), when any core uses SPRAM
    spram: dict | None = None     # then also the device entry with the SPRAM geometry (spram, spram_words, spram_width)


def _synapse_of(g: Graph, pop: LIF):
    """The population's synapse, its event source (Flatten is only a renaming of indices), its
    weights (a Dense matrix or a Conv2d kernel) and its bias per neuron (None without one)."""
    syn = g.node(pop.input)
    if not isinstance(syn, (Dense, Conv2d)):
        raise UnsupportedError(f"layer {pop.name}: reads {type(syn).__name__} {syn.name!r} directly; the fpga "
                               "target needs a Dense or Conv2d synapse in front of every population")
    src = g.through_reshapes(syn.input, pools=False)[0]
    if not (src.is_input or src.is_population):
        raise UnsupportedError(f"layer {syn.name}: reads {type(src).__name__} {src.name!r}; the fpga target "
                               "supports synapses fed by the input or a population (through Flatten)")
    weight = np.asarray(syn.weight, np.int64)
    bias = _per_neuron(syn.bias_map(), syn.shape) if syn.bias is not None and np.any(syn.bias) else None
    return syn, src, weight, bias


def _per_neuron(values, shape: tuple) -> np.ndarray:
    """A scalar, per-channel or per-neuron parameter as one value per neuron (C order)."""
    return np.broadcast_to(np.asarray(values, np.int64), tuple(shape)).reshape(-1)


def _refuse_unsupported_nodes(g: Graph):
    for n in g.nodes:
        if isinstance(n, Pool2d):
            raise UnsupportedError(f"layer {n.name}: Pool2d is not supported on fpga (the conv accumulator rule "
                                   "applies before pooling, so the pair has no exact Dense equivalent)")
        if n.is_plastic:
            raise UnsupportedError(f"layer {n.name}: plastic synapses are not supported on fpga (no learning engine "
                                   "in the RTL); freeze the learned weights and compile for fpga")
    if g.kind != "fixed":
        raise UnsupportedError("the fpga target runs a fixed IR; compile the model for fpga first")


def build_plan(g: Graph, target: TargetDescription, lanes: int = 1, weight_memory: str | None = None) -> DesignPlan:
    """Lower ``g`` (a fixed IR) into a :class:`DesignPlan` with ``lanes`` synapse lanes per core (a
    core with fewer neurons, or a conv core with fewer output channels, gets one lane for each) and
    each core's weights in the memory :func:`memory.assign` picks (``weight_memory``: auto, ebr,
    spram; default from the environment and target.toml); refuse what the RTL cannot run."""
    _refuse_unsupported_nodes(g)
    if lanes < 1:
        raise UnsupportedError(f"fpga lanes = {lanes}: the number of synapse lanes must be at least 1")
    hw = target.raw.get("hardware", {})
    inp = g.input
    x_max = (1 << (inp.bits - 1)) - 1 if inp.bits > 1 else 1
    lists = {inp.name: ListPlan(inp.name, "spike_list_0", int(np.prod(inp.shape)),
                                wd.index_bits(int(np.prod(inp.shape))), inp.bits if inp.bits > 1 else 0,
                                1, 1, wd.unsigned_bits(int(np.prod(inp.shape))), True, "l0")}
    for k, pop in enumerate(g.neurons, start=1):
        lists[pop.name] = ListPlan(pop.name, f"spike_list_{k}", pop.size, wd.index_bits(pop.size), 0, 1, 1,
                                   wd.unsigned_bits(pop.size), False, f"l{k}", k - 1)
    cores = []
    for cid, pop in enumerate(g.neurons):
        syn, src, weight, bias = _synapse_of(g, pop)
        src_list = lists[src.name]
        core = _core(cid, pop, syn, src_list, weight, bias, x_max if src_list.is_input else 1, hw,
                     min(lanes, weight.shape[0]))  # at most one lane per neuron (Dense) or output channel (conv)
        src_list.readers.append((cid, "in", syn.delay))
        if core.has_rec:
            lists[pop.name].readers.append((cid, "rec", pop.rec_delay))
        cores.append(core)
    for lst in lists.values():
        lst.slots = 1 + max((d for _, _, d in lst.readers), default=0)
        lst.slot_bits = wd.index_bits(lst.slots)
    plan = DesignPlan(list(lists.values()), cores)
    plan.layer_bits = wd.index_bits(len(cores))
    plan.spike_index_bits = max(c.index_bits for c in cores)
    plan.trace_bits = max(max(c.u_bits, c.v_bits) for c in cores)
    memory.assign(plan, hw, weight_memory)
    return plan


def _core(cid: int, pop: LIF, syn, src: ListPlan, weight: np.ndarray, bias, x_max: int, hw: dict,
          lanes: int) -> CorePlan:
    f = pop.format
    size = pop.size
    if size > int(hw.get("max_neurons_per_core", size)):
        raise UnsupportedError(f"layer {pop.name}: {size} neurons exceed the {hw['max_neurons_per_core']} "
                               "neurons one fpga core serves")
    conv = ConvGeometry.of(syn) if isinstance(syn, Conv2d) else None
    words = conv.blocks(lanes) * conv.taps * lanes if conv is not None else weight.size
    if words > int(hw.get("max_weight_words", words)):
        raise UnsupportedError(f"layer {syn.name}: {words} weights exceed the {hw['max_weight_words']}-word "
                               "weight memory of one fpga core")
    fields = []
    scalars = {}
    one = 1 << f.decay_bits
    for name, values, bits, signed in (
            ("alpha", pop.alpha, wd.unsigned_bits(one), False), ("beta", pop.beta, wd.unsigned_bits(one), False),
            ("threshold", pop.threshold, wd.unsigned_bits(int(np.max(pop.threshold))), False),
            ("bias", pop.bias, wd.signed_bits(int(np.max(np.abs(pop.bias)))), True)):
        if np.ndim(values):
            fields.append(ParamField(name, bits, signed, tuple(int(v) for v in _per_neuron(values, pop.shape))))
        else:
            scalars[name] = int(values)
    if bias is not None:
        fields.append(ParamField("syn_bias", wd.signed_bits(int(np.abs(bias).max())), True, tuple(map(int, bias))))
    rec_w = None if pop.rec_weight is None else np.asarray(pop.rec_weight, np.int64)
    if rec_w is not None and pop.rec_bias is not None and np.any(pop.rec_bias):
        rb = _per_neuron(pop.rec_bias, pop.shape)
        fields.append(ParamField("rec_bias", wd.signed_bits(int(np.abs(rb).max())), True, tuple(map(int, rb))))

    # value ranges (docs/semantics.md order) -> exact widths; refuse wrap_once growth
    row_sum = (conv.row_sum() if conv is not None else
               int(np.abs(weight).sum(axis=1).max()) if weight.size else 0) * x_max
    bias_max = int(np.abs(bias).max()) if bias is not None else 0
    a_max = ov.rule_bound(syn.acc, row_sum + bias_max)
    rec_sum = rec_bias_max = 0
    if rec_w is not None:
        rec_sum = int(np.abs(rec_w).sum(axis=1).max()) if rec_w.size else 0
        rec_bias_max = int(np.abs(pop.rec_bias).max()) if pop.rec_bias is not None else 0
        a_max += ov.rule_bound(pop.rec_acc, rec_sum + rec_bias_max)
    u_keep = ov.stored_bound(f.current)
    u_pre = u_keep + (a_max << f.input_shift)
    if f.current.overflow == "wrap_once" and not ov.wrap_once_closed(f.current, u_pre):
        raise UnsupportedError(
            f"layer {pop.name}: the synaptic input (up to {a_max} << {f.input_shift}) can push the "
            f"{f.current.bits}-bit wrap_once current beyond one correction, so it would grow without bound; "
            "use a narrower accumulator or a saturate/wrap current")
    u_max = ov.rule_bound(f.current, u_pre)
    thr_max = int(np.max(pop.threshold))
    v_keep = ov.stored_bound(f.voltage)
    v_pre = v_keep + u_max + int(np.max(np.abs(pop.bias))) + thr_max
    if f.voltage.overflow == "wrap_once" and not ov.wrap_once_closed(f.voltage, v_pre):
        raise UnsupportedError(
            f"layer {pop.name}: the {f.voltage.bits}-bit wrap_once voltage can leave its range after one "
            "correction (current, bias and threshold are too large for it); use a saturate/wrap voltage")
    v_reset = v_keep + thr_max  # immediate subtract: v - (s - r) * threshold
    sites = {"acc": (syn.acc, row_sum + bias_max), "current": (f.current, u_pre), "voltage": (f.voltage, v_pre),
             "voltage_reset": (f.voltage, v_reset)}
    if rec_w is not None:
        sites["rec_acc"] = (pop.rec_acc, rec_sum + rec_bias_max)
    rules = {k: fmt if ov.rule_needed(fmt, bound) else None for k, (fmt, bound) in sites.items()}
    calc_max = max([row_sum + bias_max, rec_sum + rec_bias_max, u_pre, v_pre + thr_max,
                    u_keep, v_keep, thr_max << 1]
                   + [2 * ov.half(fmt) for fmt in rules.values() if fmt is not None])
    return CorePlan(
        id=cid, name=pop.name, synapse=syn.name, module=f"lif_core_{cid}", size=size, index_bits=wd.index_bits(size),
        source=src, delay=int(syn.delay), weights=weight, weight_bits=wd.signed_bits(int(np.abs(weight).max(initial=0))),
        sum_bits=wd.signed_bits(row_sum), acc=syn.acc,
        rec_delay=int(pop.rec_delay) if rec_w is not None else None, rec_weights=rec_w,
        rec_weight_bits=wd.signed_bits(int(np.abs(rec_w).max(initial=0))) if rec_w is not None else 2,
        rec_sum_bits=wd.signed_bits(rec_sum), rec_acc=pop.rec_acc if rec_w is not None else None,
        fmt=f, reset_mode=pop.reset_mode, reset_timing=pop.reset_timing,
        u_bits=wd.stored_bits(f.current), v_bits=wd.stored_bits(f.voltage),
        calc_bits=wd.signed_bits(calc_max) + 1, threshold_bits=wd.unsigned_bits(thr_max),
        walk_bits=wd.unsigned_bits(max(src.size, size if rec_w is not None else 0, lanes)),
        scalars=scalars, fields=fields, rules=rules, lanes=lanes, conv=conv)
