"""snntorch frontend: turn an ``nn.Module`` into the float IR by tracing one timestep.

Works for tutorial-style ``nn.Sequential(..., init_hidden=True)`` models called once per step, for
custom modules whose ``forward`` loops over time (``spk, mem = self.lif1(self.fc1(x), mem)``) and
for per-step ``forward``s that take the neuron states as arguments. Forward hooks on the layers
record which layer consumes which layer's output; a ``TorchFunctionMode`` follows tensors through
reshapes written in ``forward`` (``x.view(B, -1)``, ``x.flatten(1)``, ``x[step]``), scalar
multiplication and division (``x * c``, ``x / c``: folded into the adjacent synapse's weights) and
functional pooling (``F.max_pool2d``, ``F.avg_pool2d``) and sums of synapse outputs read by a
neuron layer (``lif(fc2(s1) + fc_skip(s0))``: a skip/residual connection, ``LIF.extra_inputs``), and
names any other operation between layers, which the IR cannot express (e.g. ``x - y``,
``torch.cat``). Tracing stops when a layer is called a second time: that is the next timestep.

Folded exactly (eval mode): ``nn.BatchNorm1d/2d`` right after a Linear/Conv2d (its per-channel affine
map multiplies the weights and shifts the bias); ``nn.Dropout*`` and ``nn.Identity`` are removed.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
import snntorch as snn
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from snnhw.compiler.fold_linear import fold_linear
from snnhw.errors import SnnhwError, UnsupportedError
from snnhw.ir import LIF, Conv2d, Dense, Flatten, Graph, Input, Pool2d

NEURONS = (snn.Leaky, snn.Synaptic, snn.RLeaky, snn.RSynaptic)
POOLS = (nn.AvgPool2d, nn.MaxPool2d)
SYNAPSES = (nn.Linear, nn.Conv2d, nn.Flatten) + POOLS
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
PASS_THROUGH = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout)
REFUSED = {
    snn.Alpha: "Alpha neurons (two opposing currents) are not in the CUBA-LIF family; use snn.Synaptic",
    snn.Lapicque: "Lapicque neurons use an RC input gain; use snn.Leaky (same dynamics with gain 1)",
    snn.SLSTM: "spiking LSTMs have no fixed-point neuron model here",
    snn.SConv2dLSTM: "spiking LSTMs have no fixed-point neuron model here",
}
SHAPE_OPS = {"view", "reshape", "flatten", "contiguous", "float", "to", "clone", "detach", "type",
             "__get__", "size", "dim", "shape", "numel"}
SCALE_OPS = {"mul": False, "multiply": False, "__mul__": False, "__rmul__": False,
             "div": True, "divide": True, "true_divide": True, "__truediv__": True}  # op -> divides
FUNCTIONAL_POOLS = {  # F.<name>(input, *args) -> the module, with F's positional argument order
    "max_pool2d": (nn.MaxPool2d, ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")),
    "avg_pool2d": (nn.AvgPool2d, ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                                  "divisor_override")),
}
ADD_OPS = {"add", "__add__", "__radd__"}
SKIP_OPS = {"sub", "__sub__", "__rsub__", "cat", "stack"}
INPUT = "input"
MAX_GLOBAL_BATCH = 4096


class _NextStep(Exception):
    """Raised by a hook when a layer runs a second time: one timestep has been traced."""


@dataclass
class _Call:
    """One layer call of the traced step. ``scale``: a scalar forward multiplied the input by;
    ``fresh_state``: the neuron was handed states created inside forward (reset every call)."""

    name: str
    module: nn.Module
    src: str | tuple  # a tuple of (layer, scale) pairs: the sum of those layers' outputs
    in_shape: tuple
    out_shape: tuple = ()
    scale: float = 1.0
    fresh_state: bool = False


def _leaves(model: nn.Module):
    """Layers to hook: supported and refused classes are leaves; containers are descended."""
    out = []

    def visit(prefix, m):
        known = NEURONS + SYNAPSES + NORMS + PASS_THROUGH + tuple(REFUSED)
        containers = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
        if isinstance(m, known) or (not list(m.children()) and not isinstance(m, containers)):
            out.append((prefix or type(m).__name__, m))
            return
        for name, child in m.named_children():
            visit(f"{prefix}.{name}" if prefix else name, child)

    visit("", model)
    return out


def _scalar(v):
    """The float value of a Python number or an untracked one-element tensor, else None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if torch.is_tensor(v) and v.numel() == 1 and v.dtype.is_floating_point:
        return float(v.reshape(-1)[0])
    return None


class _Tracer(TorchFunctionMode):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.prov: dict[int, tuple] = {}  # id(tensor) -> (source layer, tensor kept alive, scale)
        self.other: dict[int, tuple] = {}  # id(tensor) -> (op name, sources, tensor): untracked results
        self.calls: list[_Call] = []
        self.arg_ids: set = set()  # ids of state tensors passed to forward as arguments
        self.depth = 0
        self.time_indexed = False  # forward sliced the input (x[step]): the input has a time axis
        self.handles = []
        for name, m in _leaves(model):
            self.handles.append(m.register_forward_pre_hook(self._pre(name, m), with_kwargs=True))
            self.handles.append(m.register_forward_hook(self._post(name, m)))

    def track(self, t, src, scale=1.0):
        self.prov[id(t)] = (src, t, scale)

    def _prov(self, t):
        if not torch.is_tensor(t):
            return None
        p = self.prov.get(id(t))
        return p if p and p[1] is t else None

    def _paths(self, t) -> list:
        """The (layer, scale) pairs tensor ``t`` is the sum of (one pair for a layer's output)."""
        src, _, scale = self._prov(t)
        if isinstance(src, tuple):
            return [(s, k * scale) for s, k in src]
        return [(src, scale)]

    def _source(self, t):
        p = self._prov(t)
        return p[0] if p else None

    def _untracked(self, name, x) -> UnsupportedError:
        o = self.other.get(id(x))
        if o and o[2] is x:
            op, srcs = o[0], ", ".join(sorted(o[1]))
            if op in SKIP_OPS and len(o[1]) > 1:
                return UnsupportedError(
                    f"layer {name} reads `{op}` of the outputs of {srcs}; snnhw imports only sums (`a + b`) of "
                    "synapse outputs read by a neuron layer")
            return UnsupportedError(
                f"layer {name} reads the result of `{op}` applied to the output of {srcs} in forward; between layers "
                "snnhw follows only reshapes, x[step], and multiplication or division by a constant")
        return UnsupportedError(
            f"layer {name} receives a tensor computed outside the supported layers (for example an arithmetic "
            "operation in forward); snnhw needs layer outputs to feed layers directly")

    def _pre(self, name, m):
        def hook(mod, args, kwargs):
            if self.depth == 0:
                if any(c.name == name for c in self.calls):
                    raise _NextStep
                if type(m) in REFUSED:
                    raise UnsupportedError(f"layer {name} ({type(m).__name__}) is not supported: {REFUSED[type(m)]}")
                if not isinstance(m, NEURONS + SYNAPSES + NORMS + PASS_THROUGH):
                    raise UnsupportedError(
                        f"layer {name} ({type(m).__name__}) is not supported; snnhw imports nn.Linear, nn.Conv2d, "
                        "nn.AvgPool2d, nn.MaxPool2d, nn.Flatten, nn.BatchNorm1d/2d (folded), nn.Dropout (removed) "
                        "and snntorch Leaky, Synaptic, RLeaky, RSynaptic")
                x = args[0] if args else next(iter(kwargs.values()), None)
                p = self._prov(x)
                if p is None:
                    raise self._untracked(name, x)
                states = [t for t in list(args[1:]) + list(kwargs.values()) if torch.is_tensor(t)]
                fresh = bool(states) and all(id(t) not in self.arg_ids and self._prov(t) is None for t in states)
                self.calls.append(_Call(name, m, p[0], tuple(x.shape), scale=p[2], fresh_state=fresh))
            self.depth += 1
        return hook

    def _post(self, name, m):
        def hook(mod, args, out):
            self.depth -= 1
            if self.depth == 0:
                spk = out[0] if isinstance(out, tuple) else out
                if isinstance(m, PASS_THROUGH):
                    call = self.calls.pop()
                    self.track(spk, call.src, call.scale)
                    return
                self.calls[-1].out_shape = tuple(spk.shape)
                self.track(spk, name)
                if isinstance(out, tuple):
                    for extra in out[1:]:
                        if torch.is_tensor(extra):
                            self.track(extra, f"{name}:state")
        return hook

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if self.depth == 0 and torch.is_tensor(out):
            tracked = [(i, self._prov(a)) for i, a in enumerate(args) if self._prov(a)]
            if tracked:
                self._follow(func, args, kwargs or {}, tracked, out)
        return out

    def _follow(self, func, args, kwargs, tracked, out):
        fname = getattr(func, "__name__", str(func))
        srcs = {p[0] for _, p in tracked}
        if fname == "__getitem__" and srcs == {INPUT}:
            self.time_indexed = True
        one = tracked[0][1] if len(tracked) == 1 else None
        if fname in ADD_OPS and len(tracked) == 2 and len(args) == 2 and not kwargs:
            self.track(out, tuple(self._paths(args[0]) + self._paths(args[1])))  # a skip connection
        elif one and (fname in SHAPE_OPS or (fname == "__getitem__" and srcs == {INPUT})):
            self.track(out, one[0], one[2])
        elif one and fname in SCALE_OPS and len(args) == 2 and tracked[0][0] == 0 and not kwargs:
            c = _scalar(args[1])
            if c is not None and c != 0 and np.isfinite(c):
                self.track(out, one[0], one[2] / c if SCALE_OPS[fname] else one[2] * c)
                return
            self.other[id(out)] = (fname, srcs, out)
        elif one and fname in FUNCTIONAL_POOLS and tracked[0][0] == 0:
            cls, names = FUNCTIONAL_POOLS[fname]
            params = dict(zip(names, args[1:]), **kwargs)
            name = f"{fname}_{sum(c.name.startswith(fname) for c in self.calls) + 1}"
            self.calls.append(_Call(name, cls(**params), one[0], tuple(args[0].shape), tuple(out.shape), one[2]))
            self.track(out, name)
        else:
            self.other[id(out)] = (fname, srcs, out)  # a layer reading `out` is refused, naming the op

    def close(self):
        for h in self.handles:
            h.remove()


def _state_args(model: nn.Module) -> int:
    """How many required arguments ``forward`` takes after the input (the neuron states)."""
    try:
        params = list(inspect.signature(model.forward).parameters.values())[1:]
    except (TypeError, ValueError):
        return 0
    return sum(p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
               for p in params)


def _trace(model: nn.Module, x: torch.Tensor) -> tuple:
    tracer = _Tracer(model)
    tracer.track(x, INPUT)
    states = [torch.zeros(0) for _ in range(_state_args(model))]  # replaced by zeros of the right shape
    tracer.arg_ids = {id(s) for s in states}
    looped = False
    try:
        with torch.no_grad(), tracer:
            try:
                model(x, *states)
            except _NextStep:
                looped = True
    finally:
        tracer.close()
    return tracer.calls, tracer.time_indexed, looped


def _reset_state(model: nn.Module):
    for m in model.modules():
        if isinstance(m, NEURONS):
            m.reset_mem() if hasattr(m, "reset_mem") else None


FORWARD_STYLES = ("per_step", "loop_same_input", "loop_time_indexed")


def _global_batch_sizes(model: nn.Module) -> list:
    """Integers that ``forward`` reads from its module's globals (e.g. ``x.view(batch_size, -1)`` with a
    global ``batch_size = 128``): candidate batch sizes to trace with."""
    fwd = getattr(type(model), "forward", None)
    code, glb = getattr(fwd, "__code__", None), getattr(fwd, "__globals__", {})
    out = []
    for name in (code.co_names if code else ()):
        v = glb.get(name)
        if isinstance(v, int) and not isinstance(v, bool) and 2 < v <= MAX_GLOBAL_BATCH and v not in out:
            out.append(v)
    return out


def trace(model: nn.Module, input_shape: tuple) -> tuple[list, str]:
    """Record the layer calls of one timestep for per-sample ``input_shape``; also say how forward
    uses time (one of FORWARD_STYLES): called once per step, looping over steps with the same
    input, or looping and reading ``x[step]``.

    The input is tried as ``[B, *shape]`` (forward called per step, or forward repeating x every
    step) and, if forward indexes time itself (``x[step]``), as ``[T, B, *shape]``; B is 2, or a
    global integer forward reads when it fixes the batch size (``x.view(batch_size, -1)``).
    """
    model.eval()
    errors = []
    leads = [(2,), (2, 2)] + [lead for b in _global_batch_sizes(model) for lead in ((b,), (2, b))]
    for lead in leads:
        x = torch.zeros(*lead, *input_shape)
        _reset_state(model)
        try:
            calls, time_indexed, looped = _trace(model, x)
        except SnnhwError:
            raise
        except Exception as exc:  # the user's forward failed on this input layout; try the other one
            errors.append(f"{type(exc).__name__}: {exc}")
            continue
        if time_indexed != (len(lead) == 2):
            continue  # forward slices time out of its input: retry with a time axis
        _reset_state(model)
        style = "loop_time_indexed" if time_indexed else ("loop_same_input" if looped else "per_step")
        return calls, style
    raise SnnhwError(f"running the model's forward on an input of shape [B, {', '.join(map(str, input_shape))}] "
                     f"failed ({errors[0] if errors else 'no layer was called'}); check --input-shape, or that forward "
                     "runs with any batch size (a fixed batch size must be a global integer of the --arch file)")


# ----------------------------------------------------------------------------- to IR
def _f32(t) -> np.ndarray:
    a = t.detach().cpu().numpy() if torch.is_tensor(t) else np.asarray(t)
    a = a.astype(np.float32)
    if not np.all(np.isfinite(a)):
        raise SnnhwError("the model has NaN or Inf parameters; retrain or fix the checkpoint")
    return a


def _pair(v) -> tuple:
    return (int(v), int(v)) if isinstance(v, int) else tuple(int(i) for i in v)


def _per_neuron(t, shape, what, name) -> np.ndarray:
    a = _f32(t)
    if a.size == 1:
        return a.reshape(())
    try:
        return np.broadcast_to(a, shape).astype(np.float32).copy() if a.shape != tuple(shape) else a
    except ValueError:
        raise SnnhwError(f"layer {name}: {what} has shape {a.shape}, which does not fit the layer shape {shape}") from None


def _neuron(name, m, in_name, shape) -> LIF:
    opts = []
    if getattr(m, "inhibition", False):
        opts.append("inhibition=True (winner-take-all is not a per-neuron rule)")
    if getattr(m, "state_quant", False):
        opts.append("state_quant (use snnhw's quantizer instead)")
    if float(torch.as_tensor(m.graded_spikes_factor).flatten()[0]) != 1.0 or torch.as_tensor(m.graded_spikes_factor).numel() != 1:
        opts.append("graded_spikes_factor != 1")
    if isinstance(m, snn.RSynaptic) and not m.reset_delay:
        opts.append("RSynaptic with reset_delay=False (snntorch 1.0.0 drops that reset; use reset_delay=True)")
    if opts:
        raise UnsupportedError(f"layer {name} ({type(m).__name__}) uses {', '.join(opts)}: not supported")
    fn = getattr(getattr(m, "state_function", None), "__func__", None)
    mode = {"_base_sub": "subtract", "_base_zero": "zero", "_base_int": "none"}.get(getattr(fn, "__name__", ""))
    if mode is None:
        raise UnsupportedError(f"layer {name}: cannot tell its reset mechanism")
    timing = "delayed" if m.reset_delay else "immediate"
    if isinstance(m, snn.Leaky) and mode == "zero":
        timing = "immediate"  # Leaky zeroes the *old* membrane: spike-identical to an immediate reset
    beta = np.clip(_per_neuron(m.beta, shape, "beta", name), 0, 1)
    alpha = np.clip(_per_neuron(m.alpha, shape, "alpha", name), 0, 1) if hasattr(m, "alpha") else np.float32(0).reshape(())
    thr = _per_neuron(m.threshold, shape, "threshold", name)
    if np.any(thr <= 0):
        raise UnsupportedError(f"layer {name}: threshold must be positive")
    lif = LIF(name, in_name, tuple(shape), np.asarray(alpha, np.float32), np.asarray(beta, np.float32), thr,
              np.zeros((), np.float32), mode, timing)
    if isinstance(m, (snn.RLeaky, snn.RSynaptic)):
        n = int(np.prod(shape))
        rec = m.recurrent
        if isinstance(rec, nn.Linear):
            lif.rec_weight = _f32(rec.weight)
            lif.rec_bias = _f32(rec.bias) if rec.bias is not None else None
        elif type(rec).__name__ == "RecurrentOneToOne":
            v = _f32(rec.V).reshape(-1)
            lif.rec_weight = np.diag(np.broadcast_to(v, (n,))).astype(np.float32)
        else:
            raise UnsupportedError(f"layer {name}: convolutional recurrence is not supported; use all_to_all with "
                                   "linear_features or all_to_all=False")
        if lif.rec_weight.shape != (n, n):
            raise SnnhwError(f"layer {name}: recurrent weight {lif.rec_weight.shape} does not fit {n} neurons")
    return lif


def to_ir(model: nn.Module, input_shape: tuple, name: str = "model", fold: bool = True) -> Graph:
    """The float IR of ``model`` for per-sample ``input_shape``; with ``fold``, sum/average pooling
    is composed into the adjacent synapse (compiler.fold_linear), the graph every target runs."""
    calls, style = trace(model, input_shape)
    if not calls:
        raise SnnhwError("the model's forward called no layer")
    b = _Builder(tuple(int(d) for d in input_shape))
    for c in calls:
        b.add(c, style)
    g = Graph(b.nodes, kind="float", meta={"source": name, "frontend": "snntorch", "forward": style})
    if not g.neurons:
        raise UnsupportedError("the model has no snntorch neuron layer")
    if not g.nodes[-1].is_population:
        raise UnsupportedError(f"the last layer ({g.nodes[-1].name}) is not a neuron layer; snnhw outputs spikes")
    g.validate()
    return fold_linear(g) if fold else g


class _Builder:
    """IR nodes from traced calls. ``alias``: layers folded away (BatchNorm) -> the node standing for
    their output; ``scale``: a constant factor still to be applied to a node's output."""

    def __init__(self, input_shape: tuple):
        self.nodes: list = [Input(INPUT, input_shape)]
        self.shapes = {INPUT: input_shape}
        self.alias: dict = {}
        self.scale: dict = {}

    def node(self, name):
        return next(n for n in self.nodes if n.name == name)

    def add(self, c: _Call, style: str):
        if isinstance(c.src, tuple):
            return self._add_summed(c, style)
        src = self.alias.get(c.src, c.src)
        if src.endswith(":state"):
            raise UnsupportedError(f"layer {c.name} reads the membrane/current of {src[:-6]}; only spikes travel "
                                   "between layers")
        scale = c.scale * self.scale.get(src, 1.0)
        src, src_shape = self._reshaped(c, src)
        m = c.module
        if isinstance(m, NORMS):
            self._fold_norm(c.name, m, src, scale)
            return
        if isinstance(m, (nn.Linear, nn.Conv2d)) or scale == 1.0:
            node = _layer(c.name, m, src, src_shape, scale)
        elif isinstance(m, NEURONS):
            self._scale_synapse(c.name, src, scale)
            node = _layer(c.name, m, src, src_shape, 1.0)
        elif isinstance(m, nn.MaxPool2d) and scale < 0:
            raise UnsupportedError(f"layer {c.name}: max pooling of a tensor multiplied by {scale:g} (< 0) in forward "
                                   "is not supported")
        else:  # pooling and flatten commute with a constant factor: apply it further on
            node = _layer(c.name, m, src, src_shape, 1.0)
            self.scale[c.name] = scale
        if node.is_population and c.fresh_state and style == "per_step":
            node = _memoryless(c.name, m, node)
        self.nodes.append(node)
        self.shapes[c.name] = tuple(node.shape)
        if self.shapes[c.name] != tuple(c.out_shape[1:]):
            raise SnnhwError(f"layer {c.name}: traced output shape {c.out_shape[1:]} differs from {self.shapes[c.name]}")

    def _add_summed(self, c: _Call, style: str):
        """A neuron layer reading a sum of synapse outputs: its first path is ``input``, the others
        ``extra_inputs``; constant factors on each path fold into that path's synapse."""
        m = c.module
        names = ", ".join(s for s, _ in c.src)
        if not isinstance(m, NEURONS):
            raise UnsupportedError(f"layer {c.name} reads the sum of the outputs of {names}; snnhw imports such "
                                   "sums only as the input of a neuron layer (a skip connection into a population)")
        paths = []
        for src, k in c.src:
            src = self.alias.get(src, src)
            scale = c.scale * k * self.scale.get(src, 1.0)
            src, src_shape = self._reshaped(c, src)
            node = self.node(src)
            while node.is_reshape:
                node = self.node(node.input)
            self._synapse_of(c.name, node.name, "a summed input path")
            if scale != 1.0:
                self._scale_synapse(c.name, src, scale)
            paths.append((src, src_shape))
        if len({p for p, _ in paths}) != len(paths):
            raise UnsupportedError(f"layer {c.name} sums the output of one layer twice ({names}); scale that layer "
                                   "by 2 instead")
        node = _layer(c.name, m, paths[0][0], paths[0][1], 1.0)
        node.extra_inputs = tuple(p for p, _ in paths[1:])
        if c.fresh_state and style == "per_step":
            node = _memoryless(c.name, m, node)
        self.nodes.append(node)
        self.shapes[c.name] = tuple(node.shape)

    def _reshaped(self, c: _Call, src):
        """The node ``c`` reads: ``src``, or a Flatten of it when forward flattened it."""
        src_shape = self.shapes[src]
        sample_in = tuple(c.in_shape[1:])
        if sample_in == src_shape:
            return src, src_shape
        if int(np.prod(sample_in)) == int(np.prod(src_shape)) and len(sample_in) == 1:
            fl = f"{src}.flatten"
            if fl not in self.shapes:
                self.nodes.append(Flatten(fl, src, src_shape))
                self.shapes[fl] = (int(np.prod(src_shape)),)
                if src in self.scale:
                    self.scale[fl] = self.scale[src]
            return fl, self.shapes[fl]
        raise UnsupportedError(f"layer {c.name} gets input of per-sample shape {sample_in} from {src} "
                               f"(shape {src_shape}); only flattening reshapes are supported")

    def _synapse_of(self, name, src, what):
        node = self.node(src)
        if not node.is_synapse:
            raise UnsupportedError(f"layer {name}: {what} right after {type(node).__name__} {src!r} cannot be folded "
                                   "into weights; it must follow an nn.Linear or nn.Conv2d directly")
        return node

    def _scale_synapse(self, name, src, scale):
        """Fold ``scale`` (forward multiplied the synapse's output by it) into that synapse."""
        node = self.node(src)
        while node.is_reshape:  # linear (max pooling: for positive factors) per element
            if isinstance(node, Pool2d) and node.mode == "max" and scale < 0:
                raise UnsupportedError(f"layer {name}: a factor {scale:g} (< 0) after max pooling is not supported")
            node = self.node(node.input)
        syn = self._synapse_of(name, node.name, f"a constant factor {scale:g}")
        syn.weight = (syn.weight.astype(np.float64) * scale).astype(np.float32)
        if syn.bias is not None:
            syn.bias = (syn.bias.astype(np.float64) * scale).astype(np.float32)

    def _fold_norm(self, name, m, src, scale):
        """Eval-mode BatchNorm ``y = (x - mean) / sqrt(var + eps) * gamma + beta`` folded into the
        preceding synapse: ``W' = W * k``, ``b' = (b - mean) * k + beta`` with ``k = gamma / sqrt(var + eps)``
        per output channel (in float64, stored as float32)."""
        if m.running_mean is None or m.running_var is None:
            raise UnsupportedError(f"layer {name} ({type(m).__name__}) has no running statistics "
                                   "(track_running_stats=False): its eval output depends on the batch; not supported")
        syn = self._synapse_of(name, src, type(m).__name__)
        if scale != 1.0:
            self._scale_synapse(name, src, scale)
        var, mean = _f32(m.running_var).astype(np.float64), _f32(m.running_mean).astype(np.float64)
        gamma = _f32(m.weight).astype(np.float64) if m.weight is not None else np.ones_like(mean)
        beta = _f32(m.bias).astype(np.float64) if m.bias is not None else np.zeros_like(mean)
        if mean.shape != (syn.shape[0],):
            raise UnsupportedError(f"layer {name}: {mean.shape[0]} BatchNorm channels do not match the {syn.shape[0]} "
                                   f"outputs of {src}")
        k = gamma / np.sqrt(var + float(m.eps))
        w = syn.weight.astype(np.float64)
        syn.weight = (w * k.reshape(-1, *([1] * (w.ndim - 1)))).astype(np.float32)
        b = syn.bias.astype(np.float64) if syn.bias is not None else np.zeros_like(mean)
        syn.bias = ((b - mean) * k + beta).astype(np.float32)
        self.alias[name] = src
        self.shapes[name] = self.shapes[src]


def _memoryless(name, m, lif: LIF) -> LIF:
    """A neuron whose forward hands it states created anew in every call (``mem = lif.init_leaky()``
    inside a per-step forward) starts every step from zero: ``v = input``, spike if ``v > threshold``;
    that is beta = alpha = 0 with a zero reset (the delayed reset of zero is zero)."""
    if lif.rec_weight is not None:
        raise UnsupportedError(f"layer {name}: a recurrent neuron whose states are re-initialized in every forward "
                               "call is not supported; create the states once, outside the per-step call")
    zero = np.zeros((), np.float32)
    lif.alpha, lif.beta, lif.reset_mode, lif.reset_timing = zero, zero.copy(), "zero", "immediate"
    return lif


def _layer(name, m, src, in_shape, scale=1.0):
    if isinstance(m, nn.Linear):
        if len(in_shape) != 1:
            raise UnsupportedError(f"layer {name}: Linear on a {len(in_shape)}-D input; flatten it first")
        return Dense(name, src, _f32(m.weight.double() * scale), _f32(m.bias) if m.bias is not None else None)
    if isinstance(m, nn.Conv2d):
        if m.padding_mode != "zeros" or isinstance(m.padding, str) and m.padding != "valid":
            raise UnsupportedError(f"layer {name}: Conv2d padding {m.padding!r}/{m.padding_mode!r} is not supported; "
                                   "use integer zero padding")
        pad = (0, 0) if m.padding == "valid" else _pair(m.padding)
        return Conv2d(name, src, _f32(m.weight.double() * scale), tuple(in_shape),
                      _f32(m.bias) if m.bias is not None else None, _pair(m.stride), pad, _pair(m.dilation),
                      int(m.groups))
    if isinstance(m, POOLS):
        return _pool(name, m, src, in_shape)
    if isinstance(m, nn.Flatten):
        nd = len(in_shape) + 1
        if (m.start_dim % nd, m.end_dim % nd) != (1, nd - 1):
            raise UnsupportedError(f"layer {name}: nn.Flatten(start_dim={m.start_dim}, end_dim={m.end_dim}) on a "
                                   f"{nd}-D tensor does not flatten all per-sample dims; only that flatten is supported")
        return Flatten(name, src, tuple(in_shape))
    return _neuron(name, m, src, in_shape)


def _pool(name, m, src, in_shape):
    kind = "max" if isinstance(m, nn.MaxPool2d) else "avg"
    extra = _pair(m.padding) != (0, 0) or m.ceil_mode
    if kind == "max":
        extra = extra or _pair(m.dilation) != (1, 1) or m.return_indices
    else:
        extra = extra or m.divisor_override
    if extra:
        raise UnsupportedError(f"layer {name}: {type(m).__name__} with padding, ceil_mode, dilation, return_indices "
                               "or divisor_override is not supported")
    if len(in_shape) != 3:
        raise UnsupportedError(f"layer {name}: {type(m).__name__} on a per-sample shape {in_shape}; expected (C, H, W)")
    k = _pair(m.kernel_size)
    return Pool2d(name, src, tuple(in_shape), k, _pair(m.stride if m.stride not in (None, ()) else k), kind)
