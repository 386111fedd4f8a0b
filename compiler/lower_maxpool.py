"""The ``maxpool-to-or`` lowering: max pooling of binary spikes as an OR population.

A max pool whose input is binary spikes (a population, the 1-bit network input, or another such
pool) outputs, per window, the OR of the window's spikes. A target without pooling runs that OR
exactly as one more neuron layer, built from the target description alone:

* ``<pool>.window``: a depthwise ``Conv2d`` (``groups = C``, kernel and stride of the pool, no
  padding) whose weights all equal ``w``; its output is ``w * k`` for ``k`` spikes in the window,
  ``0 <= k <= kH*kW``. Its delay is the target's ``synapse_delay`` ``d``, its accumulator the
  target's ``conv_accumulator`` (which ``w * kH*kW`` never reaches).
* ``<pool>.or``: a population with alpha = 0, no bias, zero/immediate reset, the target's register
  formats and ``threshold = 2^threshold_lsb_bits`` (the smallest positive threshold the target
  holds), ``w = (threshold >> input_shift) + 1`` (the smallest weight with ``w << input_shift >
  threshold``). Per step ``u = (w*k) << input_shift``: it is 0 or above the threshold, so the
  population spikes iff a spike is in its window and its stored v is 0 after every step (reset, or
  nothing added), whatever beta is. beta = 2^decay_bits (no decay) is the value every decay field
  holds (Loihi's ``dv = 2^12 - beta`` cannot hold beta = 0), so Intel's LIF runs the layer. Every
  value stays below the accumulator, current and voltage limits (checked), so no rule ever fires.
* every node that read the pool reads ``<pool>.or``; a population that read the pool directly
  reads it through ``<pool>.relay``, a depthwise 1x1 ``Conv2d`` of weight 1 (a population needs a
  synapse; ``1 * s = s``, the value the pool gave).

Exactness: the lowered graph equals the original with the synapses reading the pool delayed by
``d`` more steps (and a relay's ``2d``), bit for bit in every population, bias included
(tests/test_lower_maxpool.py); on targets with ``d = 0`` (fpga) it equals the original. The added
delay is in the graph, so latency, the padding of ``snnhw run`` and the alignment of ``verify``
(:mod:`snnhw.semantics.timing`) count it.

The graph's ``meta["or_layers"]`` maps each OR population to the pool it lowers (JSON), for
``verify``, ``quantization.json`` and the build notes.
"""
from __future__ import annotations

import json
import copy

import numpy as np

from snnhw.errors import InvalidFileError, UnsupportedError
from snnhw.ir import LIF, Conv2d, Graph, NeuronFormat, Pool2d
from snnhw.targets.description import TargetDescription

META_KEY = "or_layers"
ALTERNATIVES = ("retrain with nn.AvgPool2d (folded exactly into the synapse) or a stride-2 nn.Conv2d, or put the "
                "nn.MaxPool2d after a spiking layer (max pooling of spikes is lowered exactly to an OR layer), "
                "or use --target emu")


def on_spikes(g: Graph, pool) -> bool:
    """Whether ``pool`` is a max pool of binary spikes: it reads a population, a max pool of spikes,
    or the network input (in the float IR the input's kind is decided later, by the quantizer; a
    graded input is refused by the lowering)."""
    if not _is_max_pool(pool):
        return False
    src = g.node(pool.input)
    if src.is_input:
        return g.kind == "float" or src.bits == 1
    return src.is_population or on_spikes(g, src)


def _is_max_pool(n) -> bool:
    return isinstance(n, Pool2d) and n.mode == "max"


class _Same(dict):
    """A renaming that keeps every name it does not list."""

    def __missing__(self, key):
        return key


def _reading(n, old: str, new: str):
    """A copy of node ``n`` that reads ``new`` wherever it read ``old``."""
    m = copy.copy(n)
    m.renamed(_Same({old: new}))
    return m


def or_parameters(t: TargetDescription) -> tuple[int, int]:
    """(window weight w, threshold) of the OR population on target ``t`` (see the module docstring)."""
    num = t.numerics
    threshold = 1 << num.threshold_lsb_bits
    return (threshold >> num.input_shift) + 1, threshold


def _fresh(name: str, taken: set) -> str:
    while name in taken:
        name += "_"
    taken.add(name)
    return name


def _check_ranges(pool: Pool2d, t: TargetDescription, w: int, threshold: int) -> None:
    """Refuse a pool whose OR layer would not fit the target (no register rule may ever fire)."""
    num = t.numerics
    wmax = (1 << (num.weight_bits - 1)) - 1
    if w > wmax or threshold > num.threshold_max:
        raise UnsupportedError(f"layer {pool.name}: max pooling of spikes cannot be lowered on {t.name} (an OR layer "
                               f"needs weight {w} <= {wmax} and threshold {threshold} <= {num.threshold_max}); "
                               + ALTERNATIVES)
    peak = w * pool.kernel[0] * pool.kernel[1]
    for value, fmt, what in ((peak, num.conv_accumulator, "the window sum"),
                             (peak << num.input_shift, num.current, "the current"),
                             (peak << num.input_shift, num.voltage, "the voltage")):
        if value > (1 << (fmt.bits - 1)) - 1:
            raise UnsupportedError(f"layer {pool.name}: the {pool.kernel[0]}x{pool.kernel[1]} max pooling window is "
                                   f"too large for an OR layer on {t.name} ({what} reaches {value}, beyond its "
                                   f"{fmt.bits}-bit register); use a smaller window, or " + ALTERNATIVES)


def _or_nodes(g: Graph, pool: Pool2d, t: TargetDescription, taken: set) -> tuple[list, str]:
    """The window synapse and the OR population replacing ``pool``; and the population's name."""
    num = t.numerics
    w, threshold = or_parameters(t)
    _check_ranges(pool, t, w, threshold)
    c = pool.in_shape[0]
    window = Conv2d(_fresh(f"{pool.name}.window", taken), pool.input,
                    np.full((c, 1, *pool.kernel), w, np.int64), tuple(pool.in_shape), None, tuple(pool.stride),
                    (0, 0), (1, 1), c, num.synapse_delay, num.conv_accumulator)
    zero = np.zeros((), np.int64)
    # state LSB: one spike in the window (w << input_shift state units) is 1.0, as in the float pool
    fmt = NeuronFormat(num.decay_bits, num.decay_rounding, num.input_shift, num.current, num.voltage,
                       1.0 / (w << num.input_shift))
    pop = LIF(_fresh(f"{pool.name}.or", taken), window.name, tuple(pool.shape), zero,
              np.full((), 1 << num.decay_bits, np.int64),
              np.full((), threshold, np.int64), zero, "zero", "immediate", format=fmt)
    return [window, pop], pop.name


def _relay(pool: Pool2d, pop: LIF, t: TargetDescription, taken: set) -> Conv2d:
    """The identity synapse through which a population reads the OR population."""
    c = pop.shape[0]
    return Conv2d(_fresh(f"{pool.name}.relay", taken), pop.name, np.ones((c, 1, 1, 1), np.int64),
                  tuple(pop.shape), None, (1, 1), (0, 0), (1, 1), c, t.numerics.synapse_delay,
                  t.numerics.conv_accumulator)


def lower_maxpool(g: Graph, t: TargetDescription) -> Graph:
    """Replace every max pool of spikes in the fixed IR ``g`` by its OR layer (module docstring);
    refuse any other max pool with the alternatives named."""
    if not any(_is_max_pool(n) for n in g.nodes):
        return g
    nodes = list(g.nodes)
    taken = {n.name for n in nodes}
    lowered = dict(or_layers(g))
    while True:
        cur = Graph(nodes, kind=g.kind, dt=g.dt, target=g.target, meta=g.meta)
        pool = next((n for n in nodes if _is_max_pool(n)), None)
        if pool is None:
            break
        if not on_spikes(cur, pool):
            raise UnsupportedError(f"layer {pool.name}: max pooling of graded input values is not supported on "
                                   f"{t.name} (only max pooling of binary spikes is lowered, to an OR layer); "
                                   "compile with binary spike input (--input-kind spikes), or " + ALTERNATIVES)
        readers = cur.consumers(pool.name)
        if not readers:
            raise UnsupportedError(f"layer {pool.name}: a max pooling that no layer reads (after the output layer) "
                                   f"cannot be lowered on {t.name}; remove it")
        new, or_name = _or_nodes(cur, pool, t, taken)
        relay = _relay(pool, new[-1], t, taken) if any(n.is_population for n in readers) else None
        if relay is not None:
            new.append(relay)
        out = []
        for n in nodes:
            if n is pool:
                out.extend(new)
            elif pool.name in n.sources():
                out.append(_reading(n, pool.name, relay.name if n.is_population else or_name))
            else:
                out.append(n)
        nodes = out
        lowered[or_name] = pool.name
    done = [p for p in str(g.meta.get("lowered", "")).split(",") if p]
    meta = {**g.meta, "lowered": ",".join([*done, "maxpool-to-or"]), META_KEY: json.dumps(lowered, sort_keys=True)}
    return Graph(nodes, kind=g.kind, dt=g.dt, target=g.target, meta=meta).validate()


def or_layers(g: Graph) -> dict:
    """``{OR population: the max pool it lowers}`` of a lowered graph (empty for any other)."""
    raw = g.meta.get(META_KEY)
    if not raw:
        return {}
    try:
        found = json.loads(raw)
    except ValueError:
        raise InvalidFileError(f"invalid IR: metadata {META_KEY!r} is not JSON") from None
    if not isinstance(found, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in found.items()):
        raise InvalidFileError(f"invalid IR: metadata {META_KEY!r} must map population names to pool names")
    names = {n.name for n in g.nodes}
    return {k: v for k, v in found.items() if k in names}


def float_reference(float_g: Graph, fixed_g: Graph, spikes: dict, x: np.ndarray) -> dict:
    """Per OR population of ``fixed_g`` that lowers a pool of ``float_g``: that pool's output in a
    float run (``spikes`` per population, network input ``x`` ``[T, B, *shape]``), the spikes the
    OR population stands for, ``[T, B, *pool shape]``."""
    out = {}
    vals = dict(spikes)
    names = {n.name for n in float_g.nodes}
    for or_name, pool_name in or_layers(fixed_g).items():
        if pool_name not in names:
            continue
        chain = [float_g.node(pool_name)]
        while not (float_g.node(chain[0].input).is_population or float_g.node(chain[0].input).is_input):
            chain.insert(0, float_g.node(chain[0].input))
        src = chain[0].input
        y = x if src == float_g.input.name else vals[src]
        for p in chain:
            y = _max_pool(p, y)
        out[or_name] = y
    return out


def _max_pool(p: Pool2d, x: np.ndarray) -> np.ndarray:
    lead = x.shape[:-3]
    xx = np.asarray(x).reshape(-1, *p.in_shape)
    win = np.lib.stride_tricks.sliding_window_view(xx, tuple(p.kernel), axis=(2, 3))
    y = win[:, :, ::p.stride[0], ::p.stride[1]].max(axis=(4, 5))
    return y.reshape(*lead, *p.shape)


def describe(g: Graph) -> dict:
    """Per OR population of ``g``: the pool it lowers, its window weight, threshold and the delay
    its window synapse adds (steps); for quantization.json and the notes."""
    out = {}
    for or_name, pool_name in or_layers(g).items():
        pop = g.node(or_name)
        syn = g.node(pop.input)
        out[or_name] = {"op": "OR layer (LIF)", "lowering_of": pool_name, "window_weight": int(np.max(syn.weight)),
                        "threshold": int(np.max(pop.threshold)), "added_delay": int(syn.delay),
                        "exact": "spikes iff a spike is in the pool's window; nothing is quantized"}
    return out


def notes(g: Graph) -> list[str]:
    """One line per OR population: which pool it lowers, its parameters and its added latency."""
    return [f"layer {name}: the max pooling {d['lowering_of']} of spikes, lowered to an OR layer (window weight "
            f"{d['window_weight']}, threshold {d['threshold']}: it spikes iff a spike is in its window), exact"
            + (f"; it adds {d['added_delay']} step(s) of latency" if d["added_delay"] else "")
            for name, d in describe(g).items()]
