"""Decay products (docs/semantics.md §Decay)."""
from __future__ import annotations

import numpy as np


def decay(x: np.ndarray, q, bits: int, rounding: str) -> np.ndarray:
    """``x * q / 2^bits`` rounded toward zero (Lava) or down (floor); exact for |x*q| < 2^53.

    x: integer-valued register contents (float64 or int); q: decay in units of 2^-bits."""
    p = np.multiply(x, np.asarray(q, np.float64) * (2.0 ** -bits), dtype=np.float64)
    return np.floor(p, out=p) if rounding == "floor" else np.trunc(p, out=p)
