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


def half(fmt: StateFormat) -> int:
    """2^(bits-1) of a register format."""
    return 1 << (fmt.bits - 1)


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


def stored_bits(fmt: StateFormat) -> int:
    """Width of the stored register: wrap_once keeps +2^(b-1), which needs one more bit."""
    return fmt.bits + (1 if fmt.overflow == "wrap_once" else 0)


def stored_bound(fmt: StateFormat) -> int:
    """Largest |value| a register holds after its rule (given its input was in the closed range)."""
    return half(fmt) if fmt.overflow != "saturate" else half(fmt) - 1
