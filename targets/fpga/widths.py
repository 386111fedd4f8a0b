"""Integer ranges and bit widths of the generated datapath.

Every width the RTL uses is derived here from the value ranges the IR allows, so that each
intermediate result of docs/semantics.md is held exactly (no silent truncation) and each stored
register is as narrow as its overflow rule permits.
"""
from __future__ import annotations

from snnhw.ir import StateFormat


def signed_bits(max_abs: int) -> int:
    """Width of a two's-complement register holding every integer in [-max_abs, max_abs] (>= 2)."""
    return max(2, int(max_abs).bit_length() + 1)


def unsigned_bits(max_value: int) -> int:
    """Width of an unsigned register holding 0..max_value (>= 1)."""
    return max(1, int(max_value).bit_length())


def index_bits(count: int) -> int:
    """Width of an index 0..count-1 (>= 1, so a single-element memory still has an address bit)."""
    return max(1, (int(count) - 1).bit_length())


def stored_bits(fmt: StateFormat) -> int:
    """Width of the stored register: wrap_once keeps +2^(b-1), which needs one more bit."""
    return fmt.bits + (1 if fmt.overflow == "wrap_once" else 0)
