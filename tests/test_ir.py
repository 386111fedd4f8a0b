"""The IR file format: lossless round trips, onnx.checker, and refusal of tampered files."""
from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from onnx import helper

from snnhw.errors import InvalidFileError
from snnhw.ir import Graph, load, save
from snnhw.ir.onnx_io import from_onnx, to_onnx
from strategies import any_fixed_networks


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape and np.array_equal(a, b)
    return a == b


def assert_graphs_equal(a: Graph, b: Graph):
    assert (a.kind, a.dt, a.target, a.meta) == (b.kind, b.dt, b.target, b.meta)
    assert len(a.nodes) == len(b.nodes)
    for x, y in zip(a.nodes, b.nodes):
        assert type(x) is type(y)
        for f in dataclasses.fields(x):
            vx, vy = getattr(x, f.name), getattr(y, f.name)
            if isinstance(vx, tuple):
                vx, vy = tuple(vx), tuple(vy)
            assert _same(vx, vy), f"{x.name}.{f.name}: {vx!r} != {vy!r}"


@settings(max_examples=60, deadline=None, derandomize=True)
@given(any_fixed_networks())
def test_round_trip_is_lossless_and_checked(tmp_path_factory, g):
    path = tmp_path_factory.mktemp("ir") / "m.onnx"
    save(g, path)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    back = load(path)
    assert_graphs_equal(g, back)
    path2 = path.with_name("again.onnx")
    save(back, path2)
    assert path.read_bytes() == path2.read_bytes()


def test_float_ir_round_trip(tmp_path):
    import snntorch as snn
    import torch
    from snnhw.frontends.snntorch_trace import to_ir
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), snn.Leaky(beta=0.9, init_hidden=True),
                              torch.nn.AvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(18, 4),
                              snn.Synaptic(alpha=0.8, beta=0.7, init_hidden=True))
    g = to_ir(net, (1, 6, 6))
    save(g, tmp_path / "f.onnx")
    assert_graphs_equal(g, load(tmp_path / "f.onnx"))


def _model(g):
    return to_onnx(g)


@settings(max_examples=1, deadline=None, derandomize=True)
@given(any_fixed_networks())
def test_tampered_files_are_refused(g):
    cases = []
    m = _model(g)
    helper.set_model_props(m, {"snnhw_format_version": "99", "kind": "fixed"})
    cases.append((m, "format version"))
    m = _model(g)
    m.graph.node[-1].attribute[0].ints[:] = [1000]  # a shape that no longer fits
    cases.append((m, "invalid IR"))
    m = _model(g)
    del m.graph.initializer[0]
    cases.append((m, "missing parameter"))
    m = _model(g)
    for a in m.graph.node[-1].attribute:
        if a.name == "reset_mode":
            a.s = b"explode"
    cases.append((m, "reset_mode"))
    m = _model(g)
    m.graph.node[1].op_type = "MaxPool"
    cases.append((m, "unknown op"))
    for model, words in cases:
        with pytest.raises(InvalidFileError, match=words):
            from_onnx(model)


def test_garbage_and_truncated_files(tmp_path):
    p = tmp_path / "x.onnx"
    p.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(InvalidFileError):
        load(p)
    p.write_bytes(b"")
    with pytest.raises(InvalidFileError):
        load(p)
