"""NIR frontend: a NIR graph (HDF5, ``nir.write``) -> float IR.

NIR neurons are continuous-time ODEs without a timestep; they are discretized with forward Euler
at ``dt`` (default 1e-4 s, the value snntorch's NIR exporter assumes), as every NIR backend does:

* ``LIF(tau, r, v_leak, v_threshold, v_reset)``: ``beta = 1 - dt/tau``, input gain ``r*dt/tau``,
  voltage bias ``v_leak*dt/tau``;
* ``CubaLIF(tau_syn, tau_mem, r, v_leak, v_threshold, v_reset, w_in)``: ``alpha = 1 - dt/tau_syn``,
  ``beta = 1 - dt/tau_mem``, gain ``(w_in*dt/tau_syn) * (r*dt/tau_mem)``;
* ``IF(r, v_threshold, v_reset)``: ``beta = 1``, gain ``r``;
* ``Threshold(threshold)``: ``z = 1 if x > threshold`` without state: a population with
  ``alpha = beta = 0`` (``v`` is this step's input).

The gain is folded into the weights of the synapse feeding the population (and its recurrent
weights). NIR resets to ``v_reset`` in the step of the spike: ``reset_mode = zero``,
``reset_timing = immediate``; a nonzero ``v_reset`` is refused. A recurrent sub-graph
(neuron -> Affine/Linear -> the same neuron) becomes the population's recurrent dense.

Every other primitive of nir 1.0.8 is mapped exactly or refused with the reason:
``Affine``/``Linear`` -> Dense; ``Conv2d`` -> Conv2d; ``Conv1d`` -> an exact Dense (its unrolled
matrix; the IR's convolution is 2-D, so the layer after it is flat); ``SumPool2d``/``AvgPool2d``
-> Pool2d, composed into the adjacent synapse (compiler.fold_linear); ``Flatten`` of all per-sample
dims -> Flatten; ``Scale`` -> folded into the synapse before it (per output) or after it (per input);
``Delay`` of zero -> removed; ``Input``/``Output`` and nested graphs -> contracted. Refused: a nonzero
``Delay`` (the IR's synapse delays are the target's hardware delays), ``I``/``LI``/``CubaLI`` (they
output a membrane voltage; snnhw populations output spikes), partial ``Flatten``, pooling with
padding, fan-in or fan-out other than a chain.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from snnhw.compiler.fold_linear import fold_linear
from snnhw.errors import InvalidFileError, SnnhwError, UnsupportedError
from snnhw.ir import LIF, Conv2d, Dense, Flatten, Graph, Input, Pool2d

DEFAULT_DT = 1e-4
NEURON_TYPES = ("LIF", "CubaLIF", "IF", "Threshold")
NON_SPIKING = ("I", "LI", "CubaLI")
PASS_TYPES = ("Scale", "Delay")  # folded into a neighbouring synapse, or removed
SYNAPSE_TYPES = ("Affine", "Linear", "Conv2d")


def _flatten(graph, prefix=""):
    """Nodes and edges of a possibly nested NIRGraph, with sub-graph Input/Output nodes contracted."""
    import nir
    nodes, edges = {}, []
    for name, node in graph.nodes.items():
        full = f"{prefix}{name}"
        if isinstance(node, nir.NIRGraph):
            sub_nodes, sub_edges = _flatten(node, f"{full}.")
            nodes.update(sub_nodes)
            edges += sub_edges
        else:
            nodes[full] = node
    for src, dst in graph.edges:
        s, d = f"{prefix}{src}", f"{prefix}{dst}"
        if s not in nodes and f"{s}.output" in nodes:
            s = f"{s}.output"
        if d not in nodes and f"{d}.input" in nodes:
            d = f"{d}.input"
        edges.append((s, d))
    if prefix:
        return nodes, edges
    # contract pass-through nodes of sub-graphs (their Input/Output) and Identity nodes
    for name in [n for n, v in nodes.items() if type(v).__name__ in ("Input", "Output", "Identity") and "." in n]:
        ins = [s for s, d in edges if d == name]
        outs = [d for s, d in edges if s == name]
        edges = [(s, d) for s, d in edges if name not in (s, d)] + [(s, d) for s in ins for d in outs]
        del nodes[name]
    return nodes, sorted(set(edges))


def _arr(v, dtype=np.float64):
    a = np.asarray(v, dtype=dtype)
    if not np.all(np.isfinite(a)):
        raise SnnhwError("the NIR graph has NaN or Inf parameters")
    return a


def _scalar_or_array(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float32)
    return np.asarray(a.reshape(-1)[0]).reshape(()) if a.size and np.all(a == a.reshape(-1)[0]) else a


def load_nir(path: Path, dt: float | None = None, input_shape: tuple | None = None) -> Graph:
    import nir
    try:
        graph = nir.read(str(path))
    except Exception as exc:  # h5py and nir raise many kinds of errors on bad files
        raise InvalidFileError(f"{path} is not a readable NIR file ({type(exc).__name__}: {exc})") from None
    return nir_to_ir(graph, dt or DEFAULT_DT, input_shape, name=Path(path).name)


def nir_to_ir(graph, dt: float = DEFAULT_DT, input_shape: tuple | None = None, name: str = "nir",
              fold: bool = True) -> Graph:
    """The float IR of a NIR graph (see the module docstring); with ``fold``, sum/average pooling is
    composed into the adjacent synapse."""
    if not (np.isfinite(dt) and dt > 0):
        raise SnnhwError(f"--dt {dt}: must be a positive number of seconds")
    nodes, edges = _flatten(graph)
    inputs = [n for n, v in nodes.items() if type(v).__name__ == "Input"]
    if len(inputs) != 1:
        raise UnsupportedError(f"the NIR graph has {len(inputs)} Input nodes; snnhw needs exactly one")
    preds = {n: [s for s, d in edges if d == n] for n in nodes}
    # recurrent dense: neuron -> Affine/Linear -> same neuron
    recurrent = {}
    for n, v in nodes.items():
        if type(v).__name__ in NEURON_TYPES:
            for s in preds[n]:
                if type(nodes[s]).__name__ in ("Affine", "Linear") and preds[s] == [n]:
                    recurrent[n] = s
    for n, r in recurrent.items():
        preds[n] = [s for s in preds[n] if s != r]
    order, seen = [], set()

    def visit(n, stack=()):
        if n in seen:
            return
        if n in stack:
            raise UnsupportedError(f"the NIR graph has a cycle through {n} that is not a neuron's recurrent dense")
        for p in preds[n]:
            visit(p, stack + (n,))
        seen.add(n)
        order.append(n)

    for n in nodes:
        if n not in recurrent.values():
            visit(n)
    in_node = nodes[inputs[0]]
    shape = tuple(input_shape) if input_shape else tuple(int(d) for d in np.asarray(in_node.input_type["input"]).reshape(-1))
    ir_nodes = [Input("input", shape)]
    rename = {inputs[0]: "input"}
    shapes = {"input": shape}
    pending: dict = {}  # IR node -> a Scale still to be applied to its output (folded into the next synapse)
    for n in order:
        v = nodes[n]
        kind = type(v).__name__
        if kind in ("Input", "Output"):
            continue
        if len(preds[n]) != 1 and not (kind in NEURON_TYPES and preds[n]):
            raise UnsupportedError(f"NIR node {n} has {len(preds[n])} inputs; snnhw sums several inputs only into a "
                                   "neuron (a skip connection); other nodes need one input each")
        src = rename[preds[n][0]]
        extra = tuple(rename[p] for p in preds[n][1:])  # several edges into a neuron: NIR sums them
        if kind in PASS_TYPES:
            rename[n] = _pass(n, v, kind, src, shapes[src], ir_nodes, pending)
            continue
        if src in pending and kind not in ("Affine", "Linear", "Conv2d", "Conv1d"):
            raise UnsupportedError(f"NIR node {n} ({kind}) reads a Scale that follows no synapse; snnhw folds Scale "
                                   "only into an adjacent Affine/Linear/Conv")
        if extra and (src in pending or any(e in pending for e in extra)):
            raise UnsupportedError(f"NIR node {n}: a Scale on a summed input path is not supported; fold it into "
                                   "that path's Affine/Linear")
        new = _convert(n, v, kind, src, shapes[src], dt, recurrent.get(n) and nodes[recurrent[n]], ir_nodes, extra)
        for node in new if isinstance(new, list) else [new]:
            if src in pending and node.is_synapse:
                _scale_inputs(n, node, pending.pop(src))
            ir_nodes.append(node)
            shapes[node.name] = tuple(node.shape)
        rename[n] = ir_nodes[-1].name
    if pending:
        raise UnsupportedError(f"NIR Scale after {', '.join(pending)} reaches no synapse; it cannot be folded")
    g = Graph(ir_nodes, kind="float", dt=float(dt), meta={"source": name, "frontend": "nir"})
    if not g.neurons:
        raise UnsupportedError("the NIR graph has no spiking neuron node (LIF, CubaLIF, IF or Threshold)")
    g.validate()
    return fold_linear(g) if fold else g


def _pass(name, v, kind, src, in_shape, ir_nodes, pending) -> str:
    """A Scale or a zero Delay: nothing in the IR; returns the node standing for its output."""
    if kind == "Delay":
        if np.any(_arr(v.delay) != 0):
            raise UnsupportedError(f"NIR node {name}: Delay of {np.max(_arr(v.delay)):g} s is not supported: the IR's "
                                   "synapse delays are the target's hardware delays, not model parameters")
        return src
    s = np.broadcast_to(_arr(v.scale), in_shape) if np.size(v.scale) > 1 else np.full(in_shape, float(_arr(v.scale)))
    prev = next((n for n in ir_nodes if n.name == src), None)
    if prev is not None and prev.is_synapse:
        _scale_outputs(name, prev, s)
    else:
        pending[src] = s * pending.get(src, 1.0)
    return src


def _scale_outputs(name, syn, s):
    """``s * (W x + b)``: per output (a conv: one factor per channel)."""
    k = s.reshape(-1) if isinstance(syn, Dense) else _per_channel(name, s)
    syn.weight = (syn.weight * k.reshape(-1, *([1] * (syn.weight.ndim - 1)))).astype(np.float32)
    if syn.bias is not None:
        syn.bias = (syn.bias * k).astype(np.float32)


def _scale_inputs(name, syn, s):
    """``W (s * x) + b``: per input column (a conv: one factor per input channel)."""
    if isinstance(syn, Dense):
        syn.weight = (syn.weight * s.reshape(1, -1)).astype(np.float32)
        return
    k = _per_channel(name, s)
    cin = syn.weight.shape[1]
    per_out = np.stack([k[(o // (syn.weight.shape[0] // syn.groups)) * cin:][:cin] for o in range(syn.weight.shape[0])])
    syn.weight = (syn.weight * per_out[:, :, None, None]).astype(np.float32)


def _per_channel(name, s):
    s = np.asarray(s, np.float64)
    if s.ndim != 3 or not np.allclose(s, s[:, :1, :1]):
        raise UnsupportedError(f"NIR node {name}: a Scale next to a Conv2d must be one factor per channel")
    return s[:, 0, 0]


def _pair(v):
    a = np.asarray(v).reshape(-1)
    return (int(a[0]), int(a[0])) if a.size == 1 else (int(a[0]), int(a[1]))


def _convert(name, v, kind, src, in_shape, dt, rec, ir_nodes, extra=()):
    if kind in ("Affine", "Linear"):
        w = _arr(v.weight).astype(np.float32)
        if in_shape != (w.shape[1],):
            raise UnsupportedError(f"NIR node {name}: weight {w.shape} does not fit input shape {in_shape}")
        b = _arr(v.bias).astype(np.float32) if kind == "Affine" else None
        return Dense(name, src, w, b)
    if kind == "Conv2d":
        if isinstance(v.padding, str):
            if v.padding != "valid":
                raise UnsupportedError(f"NIR node {name}: padding {v.padding!r}; use explicit integer padding")
            pad = (0, 0)
        else:
            pad = _pair(v.padding)
        bias = _arr(v.bias).astype(np.float32) if v.bias is not None and np.size(v.bias) else None
        return Conv2d(name, src, _arr(v.weight).astype(np.float32), tuple(in_shape), bias, _pair(v.stride), pad,
                      _pair(v.dilation), int(v.groups))
    if kind in ("SumPool2d", "AvgPool2d"):
        if any(_pair(v.padding)):
            raise UnsupportedError(f"NIR node {name}: pooling with padding is not supported")
        return Pool2d(name, src, tuple(in_shape), _pair(v.kernel_size), _pair(v.stride),
                      "sum" if kind == "SumPool2d" else "avg")
    if kind == "Flatten":
        nd = len(in_shape)
        if (int(v.start_dim) % nd, int(v.end_dim) % nd) != (0, nd - 1) and len(in_shape) > 1:
            raise UnsupportedError(f"NIR node {name}: Flatten(start_dim={v.start_dim}, end_dim={v.end_dim}) of "
                                   f"{in_shape} keeps a dimension; only flattening every per-sample dim is supported")
        return Flatten(name, src, tuple(in_shape))
    if kind == "Conv1d":
        return _conv1d(name, v, src, in_shape)
    if kind in NEURON_TYPES:
        return _neuron(name, v, kind, src, in_shape, dt, rec, ir_nodes, extra)
    if kind in NON_SPIKING:
        raise UnsupportedError(f"NIR node {name} ({kind}) is a non-spiking integrator whose output is its membrane "
                               "voltage; snnhw populations output spikes (use LIF/CubaLIF/IF, or read the voltage of "
                               "the layer before in software)")
    raise UnsupportedError(f"NIR node {name} ({kind}) is not supported; snnhw imports Affine, Linear, Conv1d, Conv2d, "
                           "SumPool2d, AvgPool2d, Flatten, Scale, Delay (zero), Threshold, LIF, CubaLIF and IF")


def _conv1d(name, v, src, in_shape):
    """NIR Conv1d ``(C_in, L)`` as an exact Dense: its unrolled matrix (zero padding included);
    returns [Flatten, Dense] when the input is not flat."""
    import torch
    import torch.nn.functional as F
    if len(in_shape) != 2:
        raise UnsupportedError(f"NIR node {name}: Conv1d on a per-sample shape {in_shape}; expected (C, L)")
    if isinstance(v.padding, str):
        if v.padding != "valid":
            raise UnsupportedError(f"NIR node {name}: padding {v.padding!r}; use explicit integer padding")
        pad = 0
    else:
        pad = int(np.asarray(v.padding).reshape(-1)[0])
    w = torch.from_numpy(_arr(v.weight))
    size = int(np.prod(in_shape))
    basis = torch.eye(size, dtype=torch.float64).reshape(size, *in_shape)
    stride, dil = int(np.asarray(v.stride).reshape(-1)[0]), int(np.asarray(v.dilation).reshape(-1)[0])
    cols = F.conv1d(basis, w, None, stride, pad, dil, int(v.groups)).reshape(size, -1)
    bias = None
    if v.bias is not None and np.size(v.bias):
        out_len = cols.shape[1] // w.shape[0]
        bias = np.repeat(_arr(v.bias), out_len).astype(np.float32)
    flat = Flatten(f"{name}.flatten_in", src, tuple(in_shape))
    return [flat, Dense(name, flat.name, cols.numpy().T.astype(np.float32), bias)]


def _neuron(name, v, kind, src, shape, dt, rec, ir_nodes, extra=()):
    v_reset = getattr(v, "v_reset", None)
    if v_reset is not None and np.any(_arr(v_reset) != 0):
        raise UnsupportedError(f"NIR node {name}: v_reset != 0 is not supported (reset to zero only)")
    thr = _arr(v.threshold if kind == "Threshold" else v.v_threshold)
    for what in {"LIF": ("tau",), "CubaLIF": ("tau_syn", "tau_mem")}.get(kind, ()):
        tau = _arr(getattr(v, what))
        if not np.all(np.isfinite(tau) & (tau > 0)):
            raise UnsupportedError(f"NIR node {name}: {what} must be a positive number of seconds, got "
                                   f"{np.min(tau):g}; a LIF has no zero or negative time constant (fix the file)")
    if kind == "Threshold":
        alpha, beta, gain, bias = 0.0, np.zeros_like(thr), 1.0, 0.0
    elif kind == "IF":
        alpha, beta, gain, bias = 0.0, np.ones_like(thr), _arr(v.r), 0.0
    elif kind == "LIF":
        k = dt / _arr(v.tau)
        alpha, beta, gain, bias = 0.0, 1 - k, _arr(v.r) * k, _arr(v.v_leak) * k
    else:
        ks, km = dt / _arr(v.tau_syn), dt / _arr(v.tau_mem)
        alpha, beta = 1 - ks, 1 - km
        gain, bias = _arr(v.w_in) * ks * _arr(v.r) * km, _arr(v.v_leak) * km
    fit = lambda a: np.reshape(a, shape) if np.size(a) == int(np.prod(shape)) and np.ndim(a) else a
    alpha, beta, gain, bias, thr = fit(alpha), fit(beta), fit(gain), fit(bias), fit(thr)  # Conv1d: a flat layer
    for what, a in (("alpha", alpha), ("beta", beta)):
        if np.any(np.asarray(a) < 0) or np.any(np.asarray(a) > 1):
            raise UnsupportedError(f"NIR node {name}: dt={dt} s gives {what} outside [0, 1]; pass a smaller --dt")
    size = int(np.prod(shape))
    gain_n = np.broadcast_to(np.asarray(gain, np.float64).reshape(-1) if np.size(gain) > 1 else gain, (size,))
    if not np.allclose(gain_n, 1.0, rtol=1e-6):
        for path in (src, *extra):  # the gain multiplies the summed input: every path's weights
            _fold_gain(name, ir_nodes, path, gain_n, shape)
    lif = LIF(name, src, tuple(shape), _scalar_or_array(np.broadcast_to(alpha, shape)),
              _scalar_or_array(np.broadcast_to(beta, shape)), _scalar_or_array(np.broadcast_to(thr, shape)),
              _scalar_or_array(np.broadcast_to(bias, shape)), "zero", "immediate", extra_inputs=tuple(extra))
    if np.any(lif.threshold <= 0):
        raise UnsupportedError(f"NIR node {name}: thresholds must be positive")
    if rec is not None:
        w = _arr(rec.weight) * gain_n[:, None]
        lif.rec_weight = w.astype(np.float32)
        if type(rec).__name__ == "Affine" and rec.bias is not None:
            lif.rec_bias = (_arr(rec.bias) * gain_n).astype(np.float32)
    return lif


def _fold_gain(name, ir_nodes, src, gain_n, shape):
    """Multiply the weights feeding ``name`` by its per-neuron input gain (a uniform gain also through
    pooling and flatten, which commute with a constant factor)."""
    syn = next((n for n in ir_nodes if n.name == src), None)
    while syn is not None and syn.is_reshape and np.all(gain_n == gain_n[0]):
        syn = next(n for n in ir_nodes if n.name == syn.input)
        gain_n = np.full(int(np.prod(syn.shape)), gain_n[0])
        shape = syn.shape
    if isinstance(syn, Dense):
        syn.weight = (syn.weight * gain_n[:, None]).astype(np.float32)
        if syn.bias is not None:
            syn.bias = (syn.bias * gain_n).astype(np.float32)
        return
    if isinstance(syn, Conv2d):
        per_ch = gain_n.reshape(shape)
        if np.allclose(per_ch, per_ch[:, :1, :1]):
            g = per_ch[:, 0, 0]
            syn.weight = (syn.weight * g[:, None, None, None]).astype(np.float32)
            if syn.bias is not None:
                syn.bias = (syn.bias * g).astype(np.float32)
            return
    raise UnsupportedError(f"NIR node {name}: its input gain (r*dt/tau) is not 1 and cannot be folded into the "
                           "preceding layer's weights")
