"""Hostile input: mutated IR files never crash the loader with anything but a clear InvalidFileError."""
from __future__ import annotations

import numpy as np
import onnx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snnhw.errors import InvalidFileError
from snnhw.ir import LIF, Dense, Graph, Input, NeuronFormat, StateFormat
from snnhw.ir.onnx_io import from_onnx, to_onnx

FMT = NeuronFormat(12, "toward_zero", 6, StateFormat(24, "wrap_once"), StateFormat(24, "saturate"), 0.5)
ACC = StateFormat(25, "saturate")
BASE = to_onnx(Graph([Input("in", (4,), 8, 0.25),
                      Dense("fc", "in", np.arange(12).reshape(3, 4) - 6, np.array([1, -2, 3]), 1, ACC),
                      LIF("l", "fc", (3,), np.array(0), np.array(3000), np.array(640), np.array([64, 0, -64]), "zero",
                          "immediate", np.eye(3, dtype=int), None, 1, ACC, FMT)], kind="fixed")).SerializeToString()


def _load(data: bytes):
    try:
        model = onnx.load_from_string(data)
    except Exception:  # not even protobuf: snnhw.ir.load reports this as InvalidFileError too
        return
    try:
        from_onnx(model)
    except InvalidFileError:
        pass


@settings(max_examples=1000, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(BASE) - 1), st.integers(0, 255)), min_size=1, max_size=8),
       st.integers(0, len(BASE)))
def test_mutated_ir_bytes(flips, cut):
    data = bytearray(BASE)
    for pos, val in flips:
        data[pos] = val
    _load(bytes(data[:max(cut, 1)] if cut < len(BASE) // 4 else data))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.data())
def test_mutated_ir_fields(data):
    """Structured tampering: attributes and initializers replaced with hostile values."""
    model = onnx.load_from_string(BASE)
    node = data.draw(st.sampled_from(list(model.graph.node)))
    if node.attribute:
        a = data.draw(st.sampled_from(list(node.attribute)))
        if a.type == onnx.AttributeProto.INT:
            a.i = data.draw(st.sampled_from([-1, 0, 10**9, -(2**62), 2**62]))
        elif a.type == onnx.AttributeProto.INTS:
            a.ints[:] = data.draw(st.lists(st.integers(-5, 10**6), max_size=4))
        elif a.type == onnx.AttributeProto.STRING:
            a.s = data.draw(st.sampled_from([b"", b"nan", b"inf", b"-1e309", b"\xff\xfe", b"wrap", b"saturate"]))
    if data.draw(st.booleans()) and model.graph.initializer:
        t = data.draw(st.sampled_from(list(model.graph.initializer)))
        t.dims[:] = data.draw(st.lists(st.integers(0, 7), max_size=3))
    _load(model.SerializeToString())
