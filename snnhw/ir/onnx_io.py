"""Store the IR as an ONNX model (custom ``snnhw`` domain) and load it back losslessly.

Layout: graph input ``x`` is ``[T, B, *shape]``; an ``Input`` node turns it into the tensor named
after the input node; every other node outputs a tensor named after itself. Parameters are
initializers named ``<node>.<param>``. Floats that must survive exactly (scales, dt) are stored as
strings (``repr``), so a round trip is bit-identical. docs/ir.md lists every op and attribute.
"""
from __future__ import annotations

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import TensorProto, helper, numpy_helper

from snnhw.errors import InvalidFileError
from snnhw.ir.graph import Graph
from snnhw.ir.nodes import OPS, StateFormat

DOMAIN = "snnhw"
FORMAT_VERSION = "2"
OLDEST_FORMAT = "1"
"""Version 2 adds a LIF's extra inputs (after its parameters) and a synapse's ``out_shift``. A graph
using neither is written as version 1, byte for byte as before, so older snnhw still reads it; one
using them is written as version 2, which older snnhw refuses in one line."""
READABLE = (OLDEST_FORMAT, FORMAT_VERSION)
OPSET = 1
GRAPH_INPUT = "x"


# ----------------------------------------------------------------------------- save
def _narrow_int(a: np.ndarray) -> np.ndarray:
    """The narrowest of int8/int16/int32/int64 holding every value (weights are stored compactly)."""
    for dt in (np.int8, np.int16, np.int32):
        info = np.iinfo(dt)
        if a.size == 0 or (a.min() >= info.min and a.max() <= info.max):
            return a.astype(dt)
    return a.astype(np.int64)


def _param(name: str, a: np.ndarray, kind: str, weight: bool = False):
    if kind == "fixed":
        a = _narrow_int(np.asarray(a)) if weight else np.asarray(a).astype(np.int64)
    else:
        a = np.asarray(a, dtype=np.float32)
    return numpy_helper.from_array(np.array(a, order="C"), name)


def to_onnx(g: Graph) -> onnx.ModelProto:
    g.validate()
    nodes, inits, infos, outputs = [], [], [], []
    elem = TensorProto.FLOAT if g.kind == "float" else TensorProto.INT32

    def tensor_info(name, shape, t=elem):
        return helper.make_tensor_value_info(name, t, ["T", "B", *[int(d) for d in shape]])

    def add(op, inputs, out, **attrs):
        nodes.append(helper.make_node(op, inputs, [out], name=out, domain=DOMAIN,
                                      **{k: v for k, v in attrs.items() if v is not None}))

    def opt(node, key, arr, weight=False):
        if arr is None:
            return ""
        name = f"{node.name}.{key}"
        inits.append(_param(name, arr, g.kind, weight))
        return name

    for n in g.nodes:
        ins = [n.sources()[0]] if n.sources() else [GRAPH_INPUT]
        ins += [opt(n, key, arr, narrow) for key, arr, narrow in n.onnx_params()]
        ins += n.onnx_extra_inputs()
        add(n.op, ins, n.name, **n.onnx_attrs())
        if n.is_population:  # spikes: the graph's outputs
            outputs.append(tensor_info(n.name, n.shape, TensorProto.INT8))
        else:
            infos.append(tensor_info(n.name, n.shape))
    graph = helper.make_graph(nodes, "snnhw", [tensor_info(GRAPH_INPUT, g.input.shape)], outputs,
                              initializer=inits, value_info=infos)
    model = helper.make_model(graph, producer_name="snnhw", opset_imports=[helper.make_opsetid(DOMAIN, OPSET)])
    version = FORMAT_VERSION if any(n.uses_format_2() for n in g.nodes) else OLDEST_FORMAT
    meta = {"snnhw_format_version": version, "kind": g.kind, "dt": repr(float(g.dt)),
            "target": g.target or ""}
    meta.update({f"meta.{k}": str(v) for k, v in sorted(g.meta.items())})
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    return model


def save(g: Graph, path) -> None:
    """Write ``g`` to ``path`` (deterministic bytes for the same graph)."""
    data = to_onnx(g).SerializeToString(deterministic=True)
    with open(path, "wb") as fh:
        fh.write(data)


# ----------------------------------------------------------------------------- load
def _is_external(t: TensorProto) -> bool:
    """Whether an initializer points at ONNX external data (a file outside the IR, never read)."""
    return t.data_location == TensorProto.EXTERNAL or len(t.external_data) > 0


class _Reader:
    def __init__(self, model: onnx.ModelProto, kind: str):
        self.kind = kind
        self.inits = {t.name: t for t in model.graph.initializer}
        for t in model.graph.initializer:
            if _is_external(t):
                raise InvalidFileError(f"invalid IR: parameter {t.name!r} is stored outside the file (ONNX external "
                                       "data), which snnhw never reads; recompile the build with `snnhw compile`")

    def array(self, node, idx, required=True):
        names = list(node.input)
        name = names[idx] if idx < len(names) else ""
        if not name:
            if required:
                raise InvalidFileError(f"invalid IR: node {node.name!r} lacks input #{idx}")
            return None
        if name not in self.inits:
            raise InvalidFileError(f"invalid IR: node {node.name!r} refers to missing parameter {name!r}")
        try:
            return numpy_helper.to_array(self.inits[name]).copy()
        except Exception as exc:  # corrupt tensor payloads raise many kinds of errors
            raise InvalidFileError(f"invalid IR: parameter {name!r} is unreadable ({exc})") from None


def _attrs(node) -> dict:
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else (list(v) if isinstance(v, (list, tuple)) or
                                                                 type(v).__name__.startswith("Repeated") else v)
    return out


def _get(attrs, node, key, typ, default=...):
    if key not in attrs:
        if default is ...:
            raise InvalidFileError(f"invalid IR: node {node.name!r} lacks attribute {key!r}")
        return default
    v = attrs[key]
    try:
        if typ is tuple:
            v = tuple(int(x) for x in v)
        elif typ is float:
            v = float(v)  # stored as a repr string
        elif typ is int and not isinstance(v, int):
            raise TypeError
        elif typ is str and not isinstance(v, str):
            raise TypeError
    except (TypeError, ValueError):
        raise InvalidFileError(f"invalid IR: node {node.name!r} attribute {key!r} has the wrong type") from None
    return v


def _fmt(attrs, node, prefix, required):
    if f"{prefix}_bits" not in attrs:
        if required:
            raise InvalidFileError(f"invalid IR: node {node.name!r} lacks {prefix} register format")
        return None
    return StateFormat(_get(attrs, node, f"{prefix}_bits", int), _get(attrs, node, f"{prefix}_overflow", str))


class _NodeReader:
    """What an op's ``from_onnx`` reads one ONNX node through: its name, its data input ``src``,
    typed attributes (``get``), register formats (``fmt``) and parameter tensors (``param``)."""

    def __init__(self, node, attrs: dict, reader: _Reader, fixed: bool):
        self.node, self.attrs, self.reader, self.fixed = node, attrs, reader, fixed
        self.name = node.output[0]
        self.src = node.input[0] if node.input else ""

    def get(self, key, typ, default=...):
        return _get(self.attrs, self.node, key, typ, default)

    def fmt(self, prefix, required):
        return _fmt(self.attrs, self.node, prefix, required)

    def param(self, idx, required=True):
        return self.reader.array(self.node, idx, required)

    def inputs_after(self, idx) -> tuple:
        """The node's data inputs from position ``idx`` on (a LIF's extra inputs)."""
        return tuple(self.node.input[idx:])


def from_onnx(model: onnx.ModelProto) -> Graph:
    """The Graph stored in ``model``, validated; any defect raises InvalidFileError."""
    try:
        return _from_onnx(model)
    except InvalidFileError:
        raise
    except (ValueError, TypeError, IndexError, KeyError, OverflowError, UnicodeDecodeError, AttributeError) as exc:
        # a tampered file can break attribute decoding or shape arithmetic in many ways
        raise InvalidFileError(f"invalid IR: {type(exc).__name__}: {str(exc)[:200]}") from None


def _from_onnx(model: onnx.ModelProto) -> Graph:
    meta = {p.key: p.value for p in model.metadata_props}
    version = meta.get("snnhw_format_version")
    if version is None:
        raise InvalidFileError("not an snnhw IR file: the ONNX model has no snnhw_format_version")
    if version not in READABLE:
        raise InvalidFileError(f"IR format version {version!r} is not supported (this snnhw reads "
                               f"{' and '.join(READABLE)}); recompile the model with this snnhw")
    kind = meta.get("kind")
    if kind not in ("float", "fixed"):
        raise InvalidFileError(f"invalid IR: kind {kind!r}")
    try:
        dt = float(meta.get("dt", "0.001"))
    except ValueError:
        raise InvalidFileError(f"invalid IR: dt {meta.get('dt')!r} is not a number") from None
    fixed = kind == "fixed"
    r = _Reader(model, kind)
    nodes = []
    for node in model.graph.node:
        if node.domain != DOMAIN:
            raise InvalidFileError(f"invalid IR: node {node.name!r} has domain {node.domain!r}, expected {DOMAIN!r}")
        a = _attrs(node)
        if len(node.output) != 1:
            raise InvalidFileError(f"invalid IR: node {node.name!r} must have one output")
        op = OPS.get(node.op_type)
        if op is None:
            raise InvalidFileError(f"invalid IR: unknown op {node.op_type!r} in node {node.name!r}")
        nodes.append(op.from_onnx(_NodeReader(node, a, r, fixed)))
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise InvalidFileError(f"invalid IR: {str(exc).splitlines()[0]}") from None
    user_meta = {k[5:]: v for k, v in meta.items() if k.startswith("meta.")}
    g = Graph(nodes, kind=kind, dt=dt, target=meta.get("target") or None, meta=user_meta)
    from snnhw.safety import check_names
    check_names([n.name for n in nodes], "IR file")
    return g.validate()


def load(path) -> Graph:
    """Read and validate an IR file written by :func:`save`."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise InvalidFileError(f"cannot read IR file {path}: {exc.strerror}") from None
    try:
        model = onnx.load_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise InvalidFileError(f"{path} is not a readable ONNX file ({type(exc).__name__}); "
                               "recompile with `snnhw compile`") from None
    return from_onnx(model)
