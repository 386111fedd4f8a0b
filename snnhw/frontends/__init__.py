"""Frontends: trained models -> float IR.

Every model file passes through :func:`load_model_and_module`, which refuses layer names that carry
control characters or are absurdly long (snnhw.safety): names are data, shown escaped in JSON/HTML
and never pasted into generated code.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

from snnhw.errors import InvalidFileError, SnnhwError
from snnhw.ir import Graph

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def load_model(path, arch: str | None = None, input_shape: tuple | None = None, trust_pickle: bool = False,
               dt: float | None = None) -> Graph:
    """The float IR of a model file: an snntorch ``.pt`` (state_dict or whole module) or a NIR file."""
    return load_model_and_module(path, arch, input_shape, trust_pickle, dt)[0]


def load_model_and_module(path, arch: str | None = None, input_shape: tuple | None = None,
                          trust_pickle: bool = False, dt: float | None = None):
    """The float IR and, for snntorch files, the torch module itself (None for NIR files)."""
    path = Path(path)
    if dt is not None and not (math.isfinite(dt) and dt > 0):
        raise SnnhwError(f"--dt {dt}: must be a positive number of seconds, e.g. --dt 1e-4")
    with warnings.catch_warnings(), np.errstate(all="ignore"):  # libraries' numeric warnings are not messages
        warnings.simplefilter("ignore", RuntimeWarning)
        g, net = _import(path, arch, input_shape, trust_pickle, dt)
    from snnhw.safety import check_names
    check_names([n.name for n in g.nodes], path)
    return g, net


def _import(path: Path, arch, input_shape, trust_pickle, dt):
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise SnnhwError(f"cannot read model {path}: {exc.strerror}") from None
    if not head:
        raise InvalidFileError(f"{path} is empty")
    if head == HDF5_MAGIC:
        from snnhw.frontends.nir_import import load_nir
        return load_nir(path, dt=dt, input_shape=input_shape), None
    from snnhw.frontends import snntorch_trace, torch_load
    net = torch_load.load_module(path, arch, trust_pickle)
    shape = input_shape or torch_load.first_layer_shape(net)
    if shape is None:
        raise SnnhwError("the model does not define its input shape (its first layer is not a Linear): "
                         "pass --input-shape, e.g. --input-shape 1,28,28")
    g = snntorch_trace.to_ir(net, tuple(shape), name=path.name)
    if dt is not None:
        g.dt = float(dt)
    return g, net
