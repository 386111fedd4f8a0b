"""Checks the IR's ops share: one-line failures, register formats, parameter arrays."""
from __future__ import annotations

import numpy as np

from snnhw.errors import InvalidFileError

OVERFLOW_RULES = ("saturate", "wrap", "wrap_once")
MAX_STATE_BITS = 48  # wide enough for every target
EXACT_BITS = 52      # a register times a decay stays below 2^53: exact in the emulator's float64


def fail(msg: str):
    """Refuse the IR with one line."""
    raise InvalidFileError(f"invalid IR: {msg}")


def check_format(fmt, where: str):
    """``fmt`` is a StateFormat of 2..MAX_STATE_BITS bits with a known overflow rule."""
    from snnhw.ir.nodes import StateFormat
    if not isinstance(fmt, StateFormat):
        fail(f"{where}: missing register format")
    if not (2 <= fmt.bits <= MAX_STATE_BITS):
        fail(f"{where}: {fmt.bits} bits is outside 2..{MAX_STATE_BITS}")
    if fmt.overflow not in OVERFLOW_RULES:
        fail(f"{where}: unknown overflow rule {fmt.overflow!r} (one of {', '.join(OVERFLOW_RULES)})")


def check_array(arr, where: str, fixed: bool, shapes: tuple):
    """``arr`` is an integer (fixed IR) or finite float (float IR) array of one of ``shapes``."""
    if not isinstance(arr, np.ndarray):
        fail(f"{where} is not an array")
    if fixed and not np.issubdtype(arr.dtype, np.integer):
        fail(f"{where} must be integer in the fixed IR, got {arr.dtype}")
    if not fixed:
        if not np.issubdtype(arr.dtype, np.floating):
            fail(f"{where} must be float in the float IR, got {arr.dtype}")
        if not np.all(np.isfinite(arr)):
            fail(f"{where} contains NaN or Inf")
    if shapes and tuple(arr.shape) not in shapes:
        fail(f"{where} has shape {tuple(arr.shape)}, expected one of {list(shapes)}")
