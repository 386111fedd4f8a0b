"""Register overflow rules (docs/semantics.md §Registers) and their range algebra.

A register is a signed ``bits``-wide integer with a rule (``snnhw.ir.StateFormat``):
``saturate`` clips to [-(2^(b-1)-1), 2^(b-1)-1]; ``wrap`` is two's complement; ``wrap_once`` is a
single +-2^b correction keeping (-2^(b-1), 2^(b-1)] (Lava's fixed_pt LIF current). The range
functions bound what a rule can output, so compilers and RTL widths can prove values stay exact.
"""
from __future__ import annotations

import numpy as np

from snnhw.ir import StateFormat


def half(fmt: StateFormat) -> int:
    """2^(bits-1) of a register format."""
    return 1 << (fmt.bits - 1)


def rule_range(fmt: StateFormat) -> tuple[int, int]:
    """The closed interval [lo, hi] a rule keeps values in."""
    h = half(fmt)
    return {"saturate": (1 - h, h - 1), "wrap": (-h, h - 1), "wrap_once": (1 - h, h)}[fmt.overflow]


def apply_overflow(x: np.ndarray, fmt: StateFormat) -> tuple[np.ndarray, int]:
    """Apply ``fmt``'s overflow rule to integer-valued ``x``; return the result and the number of changed values."""
    h = float(half(fmt))
    lo, hi = rule_range(fmt)
    if x.size == 0 or (x.min() >= lo and x.max() <= hi):
        return x, 0  # the common case: nothing to do
    if fmt.overflow == "saturate":
        out = np.clip(x, lo, hi)
    elif fmt.overflow == "wrap":
        out = np.mod(x + h, 2 * h) - h
    else:  # wrap_once: one correction, keeping (-half, half]
        out = np.where(x > h, x - 2 * h, np.where(x <= -h, x + 2 * h, x))
    return out, int(np.count_nonzero(out != x))


def rule_bound(fmt: StateFormat, max_abs: int) -> int:
    """Largest |value| after applying ``fmt``'s overflow rule to values with |x| <= max_abs."""
    h = half(fmt)
    if fmt.overflow == "saturate":
        return min(max_abs, h - 1)
    if fmt.overflow == "wrap":
        return min(max_abs, h)
    return max_abs if max_abs <= h else max(h, max_abs - 2 * h)  # wrap_once: one correction


def rule_needed(fmt: StateFormat, max_abs: int) -> bool:
    """Whether some |x| <= max_abs lies outside the rule's range (every rule keeps |x| < 2^(b-1))."""
    return max_abs >= half(fmt)


def wrap_once_closed(fmt: StateFormat, max_abs: int) -> bool:
    """True if one wrap_once correction brings every |x| <= max_abs back into (-2^(b-1), 2^(b-1)]."""
    return max_abs <= 3 * half(fmt) - 1


def stored_bound(fmt: StateFormat) -> int:
    """Largest |value| a register holds after its rule (given its input was in the closed range)."""
    return half(fmt) if fmt.overflow != "saturate" else half(fmt) - 1
