"""snntorch frontend: turn an ``nn.Module`` into the float IR by tracing one timestep.

Works for tutorial-style ``nn.Sequential(..., init_hidden=True)`` models called once per step and
for custom modules whose ``forward`` loops over time (``spk, mem = self.lif1(self.fc1(x), mem)``).
Forward hooks on the layers record which layer consumes which layer's output; a
``TorchFunctionMode`` follows tensors through reshapes written in ``forward`` (``x.view(B, -1)``,
``x[step]``) and catches any other operation between layers, which the IR cannot express. Tracing
stops when a layer is called a second time: that is the next timestep.
"""
from __future__ import annotations

import numpy as np
import snntorch as snn
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from snnhw.compiler.fold_linear import fold_linear
from snnhw.errors import SnnhwError, UnsupportedError
from snnhw.ir import LIF, Conv2d, Dense, Flatten, Graph, Input, Pool2d

NEURONS = (snn.Leaky, snn.Synaptic, snn.RLeaky, snn.RSynaptic)
SYNAPSES = (nn.Linear, nn.Conv2d, nn.AvgPool2d, nn.Flatten)
PASS_THROUGH = (nn.Identity, nn.Dropout)
REFUSED = {
    nn.MaxPool2d: "max pooling has no linear fixed-point synapse; retrain with nn.AvgPool2d",
    snn.Alpha: "Alpha neurons (two opposing currents) are not in the CUBA-LIF family; use snn.Synaptic",
    snn.Lapicque: "Lapicque neurons use an RC input gain; use snn.Leaky (same dynamics with gain 1)",
    snn.SLSTM: "spiking LSTMs have no fixed-point neuron model here",
    snn.SConv2dLSTM: "spiking LSTMs have no fixed-point neuron model here",
}
SHAPE_OPS = {"view", "reshape", "flatten", "contiguous", "float", "to", "clone", "detach", "type",
             "__get__", "size", "dim", "shape", "numel"}
INPUT = "input"


class _NextStep(Exception):
    """Raised by a hook when a layer runs a second time: one timestep has been traced."""


def _leaves(model: nn.Module):
    """Layers to hook: supported and refused classes are leaves; containers are descended."""
    out = []

    def visit(prefix, m):
        known = NEURONS + SYNAPSES + PASS_THROUGH + tuple(REFUSED)
        containers = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
        if isinstance(m, known) or (not list(m.children()) and not isinstance(m, containers)):
            out.append((prefix or type(m).__name__, m))
            return
        for name, child in m.named_children():
            visit(f"{prefix}.{name}" if prefix else name, child)

    visit("", model)
    return out


class _Tracer(TorchFunctionMode):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.prov: dict[int, tuple] = {}  # id(tensor) -> (source layer, tensor kept alive)
        self.calls: list[tuple] = []  # (layer name, module, source, input shape, output)
        self.depth = 0
        self.time_indexed = False  # forward sliced the input (x[step]): the input has a time axis
        self.handles = []
        for name, m in _leaves(model):
            self.handles.append(m.register_forward_pre_hook(self._pre(name, m)))
            self.handles.append(m.register_forward_hook(self._post(name, m)))

    def _source(self, t):
        if not torch.is_tensor(t):
            return None
        p = self.prov.get(id(t))
        return p[0] if p and p[1] is t else None

    def _pre(self, name, m):
        def hook(mod, args):
            if self.depth == 0:
                if any(c[0] == name for c in self.calls):
                    raise _NextStep
                if type(m) in REFUSED:
                    raise UnsupportedError(f"layer {name} ({type(m).__name__}) is not supported: {REFUSED[type(m)]}")
                if not isinstance(m, NEURONS + SYNAPSES + PASS_THROUGH):
                    raise UnsupportedError(
                        f"layer {name} ({type(m).__name__}) is not supported; snnhw imports nn.Linear, nn.Conv2d, "
                        "nn.AvgPool2d, nn.Flatten and snntorch Leaky, Synaptic, RLeaky, RSynaptic")
                x = args[0] if args else None
                src = self._source(x)
                if src is None:
                    raise UnsupportedError(
                        f"layer {name} receives a tensor computed outside the supported layers (for example an "
                        "arithmetic operation in forward); snnhw needs layer outputs to feed layers directly")
                self.calls.append([name, m, src, tuple(x.shape), None])
            self.depth += 1
        return hook

    def _post(self, name, m):
        def hook(mod, args, out):
            self.depth -= 1
            if self.depth == 0:
                spk = out[0] if isinstance(out, tuple) else out
                if isinstance(m, PASS_THROUGH):
                    self.calls.pop()
                    src = self._source(args[0])
                    self.prov[id(spk)] = (src, spk)
                    return
                self.calls[-1][4] = tuple(spk.shape)
                self.prov[id(spk)] = (name, spk)
                if isinstance(out, tuple):
                    for extra in out[1:]:
                        if torch.is_tensor(extra):
                            self.prov[id(extra)] = (f"{name}:state", extra)
        return hook

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if self.depth == 0 and torch.is_tensor(out):
            srcs = {self._source(a) for a in args if torch.is_tensor(a)} - {None}
            if srcs:
                fname = getattr(func, "__name__", str(func))
                if fname == "__getitem__" and srcs == {INPUT}:
                    self.time_indexed = True
                if fname in SHAPE_OPS or (fname == "__getitem__" and srcs == {INPUT}):
                    if len(srcs) == 1:
                        self.prov[id(out)] = (srcs.pop(), out)
                # any other op leaves `out` untracked; a layer reading it is refused in _pre
        return out

    def close(self):
        for h in self.handles:
            h.remove()


def _trace(model: nn.Module, x: torch.Tensor) -> list:
    tracer = _Tracer(model)
    tracer.prov[id(x)] = (INPUT, x)
    looped = False
    try:
        with torch.no_grad(), tracer:
            try:
                model(x)
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


def trace(model: nn.Module, input_shape: tuple) -> tuple[list, str]:
    """Record the layer calls of one timestep for per-sample ``input_shape``; also say how forward
    uses time (one of FORWARD_STYLES): called once per step, looping over steps with the same
    input, or looping and reading ``x[step]``.

    The input is tried as ``[B, *shape]`` (forward called per step, or forward repeating x every
    step) and, if forward indexes time itself (``x[step]``), as ``[T, B, *shape]``.
    """
    model.eval()
    errors = []
    for lead in ((2,), (2, 2)):
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
                     f"failed ({errors[-1] if errors else 'no layer was called'}); check --input-shape")


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
    nodes = [Input(INPUT, tuple(int(d) for d in input_shape))]
    shapes = {INPUT: tuple(input_shape)}
    for lname, m, src, in_shape, out_shape in calls:
        if src.endswith(":state"):
            raise UnsupportedError(f"layer {lname} reads the membrane/current of {src[:-6]}; only spikes travel "
                                   "between layers")
        src_shape = shapes[src]
        sample_in = tuple(in_shape[1:])
        if sample_in != src_shape:
            if int(np.prod(sample_in)) == int(np.prod(src_shape)) and len(sample_in) == 1:
                fl = f"{src}.flatten"
                if fl not in shapes:
                    nodes.append(Flatten(fl, src, src_shape))
                    shapes[fl] = (int(np.prod(src_shape)),)
                src, src_shape = fl, shapes[fl]
            else:
                raise UnsupportedError(f"layer {lname} gets input of per-sample shape {sample_in} from {src} "
                                       f"(shape {src_shape}); only flattening reshapes are supported")
        nodes.append(_layer(lname, m, src, src_shape))
        shapes[lname] = tuple(nodes[-1].shape)
        if shapes[lname] != tuple(out_shape[1:]):
            raise SnnhwError(f"layer {lname}: traced output shape {out_shape[1:]} differs from {shapes[lname]}")
    g = Graph(nodes, kind="float", meta={"source": name, "frontend": "snntorch", "forward": style})
    if not g.neurons:
        raise UnsupportedError("the model has no snntorch neuron layer")
    if not isinstance(g.nodes[-1], LIF):
        raise UnsupportedError(f"the last layer ({g.nodes[-1].name}) is not a neuron layer; snnhw outputs spikes")
    g.validate()
    return fold_linear(g) if fold else g


def _layer(name, m, src, in_shape):
    if isinstance(m, nn.Linear):
        if len(in_shape) != 1:
            raise UnsupportedError(f"layer {name}: Linear on a {len(in_shape)}-D input; flatten it first")
        return Dense(name, src, _f32(m.weight), _f32(m.bias) if m.bias is not None else None)
    if isinstance(m, nn.Conv2d):
        if m.padding_mode != "zeros" or isinstance(m.padding, str) and m.padding != "valid":
            raise UnsupportedError(f"layer {name}: Conv2d padding {m.padding!r}/{m.padding_mode!r} is not supported; "
                                   "use integer zero padding")
        pad = (0, 0) if m.padding == "valid" else _pair(m.padding)
        return Conv2d(name, src, _f32(m.weight), tuple(in_shape), _f32(m.bias) if m.bias is not None else None,
                      _pair(m.stride), pad, _pair(m.dilation), int(m.groups))
    if isinstance(m, nn.AvgPool2d):
        if _pair(m.padding) != (0, 0) or m.ceil_mode or m.divisor_override:
            raise UnsupportedError(f"layer {name}: AvgPool2d with padding, ceil_mode or divisor_override is not supported")
        k = _pair(m.kernel_size)
        return Pool2d(name, src, tuple(in_shape), k, _pair(m.stride if m.stride is not None else k), "avg")
    if isinstance(m, nn.Flatten):
        if m.start_dim != 1 or m.end_dim != -1:
            raise UnsupportedError(f"layer {name}: only nn.Flatten() (start_dim=1, end_dim=-1) is supported")
        return Flatten(name, src, tuple(in_shape))
    return _neuron(name, m, src, in_shape)
