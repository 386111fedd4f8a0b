"""Input quantization: user data to the Input node's integers (docs/semantics.md §Input)."""
from __future__ import annotations

import numpy as np

from snnhw.errors import SnnhwError
from snnhw.ir import Graph
from snnhw.semantics.result import RunResult

EXACT_F32 = 1 << 24  # integers below this magnitude are exact in float32


def quantize_input(g: Graph, x: np.ndarray, res: RunResult | None = None) -> np.ndarray:
    """Apply the Input node's semantics to user data ``[T, B, *shape]``.

    Fixed IR: returns the integer input values as floats (float32 while they are below 2^24);
    saturated values are counted in ``res`` as ``input_saturate``. Float IR: float32 values."""
    inp = g.input
    x = np.asarray(x)
    if x.ndim != len(inp.shape) + 2 or tuple(x.shape[2:]) != tuple(inp.shape):
        raise SnnhwError(f"input has shape {tuple(x.shape)}; this network takes [T, B, "
                         f"{', '.join(map(str, inp.shape))}] (timesteps, batch, then the input shape)")
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise SnnhwError(f"input has shape {tuple(x.shape)}: it needs at least one timestep and one sample")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise SnnhwError(f"input has dtype {x.dtype}; give numbers (spikes 0/1 or analog values)")
    if g.kind == "fixed" and inp.bits == 1:
        # every nonzero value is 1 (this also rejects NaN and Inf)
        if np.count_nonzero(x) != np.count_nonzero(x == 1):
            raise SnnhwError("this network was compiled for binary spike input, but the input has values "
                             "other than 0 and 1; encode it as spikes first, or recompile with --input-kind graded")
        return x.astype(np.float32, copy=False)
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        raise SnnhwError("input contains NaN or Inf values")
    if g.kind == "float":
        return x.astype(np.float32)
    q = np.round(x.astype(np.float64) / inp.scale)
    hi = (1 << (inp.bits - 1)) - 1
    out = np.clip(q, -hi, hi)
    if res is not None:
        res.count(inp.name, "input_saturate", int(np.count_nonzero(out != q)))
    return out.astype(np.float32) if hi < EXACT_F32 else out
