"""NeuroBench's workload and static metrics of a deployed network, on one emulator run.

The definitions are those of the ``neurobench`` package (2.3.0, ``neurobench/metrics``), applied to
the fixed IR with its integer input values, weights and spikes:

* synaptic operations (``workload/synaptic_operations.py``, ``utils/layers/macs.py``): for every
  call of a connection layer (a Dense or Conv2d, and a population's recurrent dense; one call per
  timestep), the inputs and the weights are binarized (nonzero -> 1) and the layer's output summed
  without bias: the number of (nonzero input, nonzero weight) pairs. A call whose input holds only
  0 and +-1 is *spiking* and counts as accumulates (effective ACs), any other call as
  multiply-accumulates (effective MACs); "Dense" is the same count with all inputs and weights
  set to 1. All per sample (summed over timesteps, divided by the batch).
* activation sparsity (``workload/activation_sparsity.py``): 1 - nonzero spikes / all spike
  entries, over every population, timestep and sample.
* connection sparsity (``static/connection_sparsity.py``): zero weights / all weights of the
  connection layers (recurrent weights included); here of the deployed integer weights.
* footprint (``static/footprint.py``): NeuroBench sums the bytes of a torch model's parameters and
  buffers. Here it is the deployed model's: every parameter at the width the target stores it in
  (weights at the weight width, synapse biases at the accumulator width, thresholds and biases at
  the voltage width, decays at decay_bits + 1 bits, a scalar once) plus the state registers (u, v
  and one spike bit per neuron), rounded up to bytes.

Pooling is not a connection layer (NeuroBench counts the convolution before it); the input of a
synapse that reads pooled values sees the pooled sums. Counts cover the steps the build ran
(the input plus the appended latency steps).
"""
from __future__ import annotations

import numpy as np

from snnhw.ir import Conv2d, Dense, Flatten, Graph, Pool2d


def _activations(g: Graph, res, x_int: np.ndarray) -> dict:
    """The value every node passes on, ``[T, B, *shape]`` (integers; spikes 0/1)."""
    act = {}
    for n in g.nodes:
        if n.is_input:
            act[n.name] = x_int
        elif n.is_population:
            act[n.name] = res.spikes[n.name]
        else:
            act[n.name] = n.registered(_ACTIVATION)(n, act[n.input].astype(np.float64))
    return act


def _conv_act(n, a):
    from snnhw.targets.emu.emulator import _conv
    y, _ = _conv(n, a, True, float(np.abs(a).max(initial=0)))  # the bound picks an exact product
    return y + (0 if n.bias is None else n.bias_map())


def _pool_act(n, a):
    from snnhw.targets.emu.emulator import _pool
    return _pool(n, a)


_ACTIVATION = {
    Dense: lambda n, a: a @ n.weight.T.astype(np.float64) + (0 if n.bias is None else n.bias),
    Conv2d: _conv_act,
    Pool2d: _pool_act,
    Flatten: lambda n, a: a.reshape(*a.shape[:2], -1),
}
"""Each op's output on float64 integer values (no accumulator rule): ``act(node, x)``."""


def _out_degree(n, all_ones: bool) -> np.ndarray:
    """Per input element of synapse ``n``: how many outputs its (nonzero) weights reach."""
    w = np.ones(n.weight.shape) if all_ones else (n.weight != 0).astype(np.float64)
    if n.weight.ndim == 2:  # Dense
        return w.sum(axis=0)
    # Conv2d: input pixel (c, y, x) meets kernel tap (ky, kx) at every output position (yo, xo)
    # with yo*stride - pad + ky*dilation = y; there it drives the nonzero taps of its group's filters
    cin, h, wd = n.in_shape
    cout, cin_g, kh, kw = n.weight.shape
    _, ho, wo = n.shape
    g = n.groups
    taps = w.reshape(g, cout // g, cin_g, kh, kw).sum(axis=1).reshape(cin, kh, kw)  # filters per (c_in, tap)
    deg = np.zeros((cin, h + 2 * n.padding[0], wd + 2 * n.padding[1]))
    for ky in range(kh):
        for kx in range(kw):
            y0, x0 = ky * n.dilation[0], kx * n.dilation[1]
            deg[:, y0:y0 + (ho - 1) * n.stride[0] + 1:n.stride[0],
                x0:x0 + (wo - 1) * n.stride[1] + 1:n.stride[1]] += taps[:, ky, kx][:, None, None]
    return deg[:, n.padding[0]:n.padding[0] + h, n.padding[1]:n.padding[1] + wd].reshape(-1)


def _layer_ops(a: np.ndarray, outdeg: np.ndarray, dense_outdeg: np.ndarray) -> tuple[int, int, int]:
    """(ACs, MACs, dense ops) of one connection layer called once per step on ``a`` [T, B, ...]."""
    T, B = a.shape[:2]
    flat = a.reshape(T, B, -1)
    per_step = np.count_nonzero(flat, axis=1).astype(np.float64) @ outdeg  # [T]
    spiking = np.all((flat == 0) | (np.abs(flat) == 1), axis=(1, 2))       # per call, as NeuroBench decides
    return int(per_step[spiking].sum()), int(per_step[~spiking].sum()), int(T * B * dense_outdeg.sum())


def _bits(a, bits: int) -> int:
    return (1 if np.ndim(a) == 0 else int(np.size(a))) * bits


def footprint_bits(g: Graph) -> int:
    """Bits of the deployed parameters at their stored widths plus the neuron state registers."""
    wbits = int(g.meta.get("weight_bits", 8))
    total = 0
    for n in g.nodes:
        if n.is_synapse:
            total += _bits(n.weight, wbits) + (0 if n.bias is None else _bits(n.bias, n.acc.bits))
        elif n.is_population:
            f = n.format
            total += _bits(n.alpha, f.decay_bits + 1) + _bits(n.beta, f.decay_bits + 1)
            total += _bits(n.threshold, f.voltage.bits) + _bits(n.bias, f.voltage.bits)
            if n.rec_weight is not None:
                total += _bits(n.rec_weight, wbits) + (0 if n.rec_bias is None else _bits(n.rec_bias, n.rec_acc.bits))
            total += n.size * (f.current.bits + f.voltage.bits + 1)
    return total


def neurobench_counts(g: Graph, res, x_int: np.ndarray) -> dict:
    """NeuroBench's metrics of one run ``res`` of fixed IR ``g`` on integer input ``x_int``."""
    act = _activations(g, res, x_int)
    B = x_int.shape[1]
    acs = macs = dense = 0
    zeros = weights = 0
    layers = {}
    for n in g.nodes:
        conns = []
        if n.is_synapse:
            conns.append((n.name, act[n.input], n, n.weight))
        if n.is_population and n.rec_weight is not None:
            rec = Dense(f"{n.name}.rec", n.name, n.rec_weight)
            d = min(n.rec_delay, act[n.name].shape[0])  # the spikes rec_delay steps before (zeros at first)
            prev = np.concatenate([np.zeros_like(act[n.name][:d]), act[n.name][:act[n.name].shape[0] - d]])
            conns.append((rec.name, prev, rec, n.rec_weight))
        for name, a, syn, w in conns:
            ac, mac, d = _layer_ops(a, _out_degree(syn, False), _out_degree(syn, True))
            layers[name] = {"effective_acs_per_sample": ac / B, "effective_macs_per_sample": mac / B}
            acs, macs, dense = acs + ac, macs + mac, dense + d
            zeros, weights = zeros + int(np.count_nonzero(w == 0)), weights + int(w.size)
    spikes = sum(int(res.spikes[p.name].sum()) for p in g.neurons)
    entries = sum(int(res.spikes[p.name].size) for p in g.neurons)
    bits = footprint_bits(g)
    return {
        "effective_acs_per_sample": acs / B, "effective_macs_per_sample": macs / B, "dense_per_sample": dense / B,
        "activation_sparsity": 1 - spikes / entries, "connection_sparsity": zeros / weights,
        "footprint_bytes": -(-bits // 8), "by_layer": layers,
        "what": "NeuroBench 2.3 definitions (snnhw/benchmark_counts.py): synaptic operations as effective ACs "
                "(calls with binary input) and MACs (graded input), binarized inputs x binarized weights, no bias, "
                "per sample; activation sparsity over all populations; connection sparsity of the deployed "
                "integer weights; footprint of the deployed parameters at their widths plus state registers",
    }
