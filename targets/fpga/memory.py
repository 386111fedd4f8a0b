"""Where each core's feed-forward weights live (docs/targets/fpga.md, "Weight memory").

Two styles, chosen per core:

- ``ebr``: block RAM whose contents the bitstream sets ($readmemh in the RTL, EBR / DP16KD after
  synthesis). Every device; the default when the design's memories fit the block RAM of the
  device named by ``[hardware].spram_device``.
- ``spram``: the iCE40 UP5K's single-port RAM (4 x SB_SPRAM256KA, 16,384 words x 16 bits each, data
  in that device's entry in target.toml). The bitstream cannot initialize SPRAM, so the design
  holds a weight loader (``weight_loader.v``) that, after reset, reads the weight image from the
  board's SPI configuration flash at ``[hardware.flash].offset`` (READ 0x03 + 24-bit address) and
  writes it row by row; the cores start only when it is done. A core's row of ``P * weight_bits``
  bits spans ceil(P * WB / 16) SPRAMs side by side and ceil(rows / 16,384) deep.

``[hardware].weight_memory`` (``auto`` | ``ebr`` | ``spram``), overridden by ``SNNHW_FPGA_WEIGHT_MEMORY``
or ``build_plan(weight_memory=...)``, picks the style. ``auto``: EBR when the cores' memories
(weights, recurrent weights, state, parameters; counted in blocks of the device's ``bram_shapes``;
the spike lists are not counted) fit the device's block RAMs; otherwise the largest weight memories move to SPRAM until the rest fits, if
they fit the SPRAMs (else the design stays in block RAM, for larger devices such as the ECP5).
``spram`` puts every core's weights in SPRAM and refuses a design whose weights do not fit it.
"""
from __future__ import annotations

import os

from snnhw.errors import SnnhwError, UnsupportedError

ENV = "SNNHW_FPGA_WEIGHT_MEMORY"
STYLES = ("auto", "ebr", "spram")
FLASH_IMAGE = "weights_flash.bin"       # the SPRAM weights, for the board's SPI flash at [hardware.flash].offset
FLASH_PATH = f"rtl/{FLASH_IMAGE}"        # where a build holds it (relative to the build directory)


def requested(hw: dict, style: str | None = None) -> str:
    """The requested style: argument, then ``SNNHW_FPGA_WEIGHT_MEMORY``, then ``[hardware].weight_memory``."""
    source = "build_plan(weight_memory=...)"
    if style is None and os.environ.get(ENV, "").strip():
        style, source = os.environ[ENV].strip().lower(), ENV
    if style is None:
        style, source = hw.get("weight_memory", "ebr"), "[hardware].weight_memory in targets/fpga/target.toml"
    if style not in STYLES:
        raise SnnhwError(f"{source} = {style!r}: the weight memory must be one of {', '.join(STYLES)}")
    return style


def spram_device(hw: dict) -> dict:
    """The device entry named by ``[hardware].spram_device`` (its ``bram``/``bram_shapes`` and ``spram*``)."""
    return next(d for d in hw["devices"] if d["name"] == hw["spram_device"])


def rows(c) -> int:
    """Words of a core's banked weight memory (G * fan_in; a conv core: its kernel words)."""
    return c.weight_words


def row_bits(c) -> int:
    """Bits of one weight row: P lanes of weight_bits."""
    return c.lanes * c.weight_bits


def row_bytes(c) -> int:
    """Bytes of one row in the flash image (little-endian: lane 0's weight in the first byte's low bits)."""
    return -(-row_bits(c) // 8)


def spram_grid(c, dev: dict) -> tuple[int, int]:
    """(side by side, deep): the SB_SPRAM256KA blocks a core's weight rows take."""
    return -(-row_bits(c) // int(dev["spram_width"])), -(-rows(c) // int(dev["spram_words"]))


def _blocks(c, dev: dict) -> int:
    cols, depth = spram_grid(c, dev)
    return cols * depth


def _ebr_blocks(width: int, depth: int, dev: dict) -> int:
    """Block RAMs a ``width`` x ``depth`` memory takes: the best of the device's block shapes
    (``bram_shapes``: [depth, width] pairs, e.g. SB_RAM40_4K 256 x 16 .. 2048 x 2)."""
    return min(-(-width // w) * -(-depth // d) for d, w in dev["bram_shapes"])


def _core_blocks(c, dev: dict, weights: bool) -> int:
    """Block RAMs of a core's state and parameters, recurrent weights, and (``weights``) its
    feed-forward weights."""
    n = _ebr_blocks(c.u_bits, c.size, dev) + _ebr_blocks(c.v_bits + 1, c.size, dev)
    n += _ebr_blocks(c.param_bits, c.size, dev) if c.fields else 0
    n += _ebr_blocks(c.lanes * c.rec_weight_bits, c.groups * c.size, dev) if c.has_rec else 0
    return n + (_ebr_blocks(row_bits(c), rows(c), dev) if weights else 0)


def assign(plan, hw: dict, style: str | None = None) -> None:
    """Set every core's ``weight_memory`` and the plan's ``flash`` image layout (see the module docstring)."""
    want = requested(hw, style)
    dev = spram_device(hw)
    blocks = int(dev["spram"])
    in_spram: list = []
    if want == "spram":
        in_spram = list(plan.cores)
    elif want == "auto":
        ebr = lambda: sum(_core_blocks(c, dev, c.id not in {s.id for s in in_spram}) for c in plan.cores)
        for c in sorted(plan.cores, key=lambda c: -rows(c) * row_bits(c)):
            if ebr() <= int(dev["bram"]):
                break
            in_spram.append(c)
        if ebr() > int(dev["bram"]) or sum(_blocks(c, dev) for c in in_spram) > blocks:
            in_spram = []  # fits neither on this device: block RAM, for a larger device
    need = sum(_blocks(c, dev) for c in in_spram)
    if need > blocks:
        kbit = sum(rows(c) * row_bits(c) for c in in_spram) / 1024
        raise UnsupportedError(
            f"weight memory spram: the weights ({kbit:,.0f} kbit as {need} blocks of 16 bits x "
            f"{dev['spram_words']} words) exceed the {dev['name']}'s {blocks} SPRAMs; use fewer lanes, "
            "--weight-bits 4, or weight_memory = \"auto\" (block RAM on a larger device)")
    offset, ids = 0, {c.id for c in in_spram}
    for c in plan.cores:
        c.weight_memory = "spram" if c.id in ids else "ebr"
        c.flash_offset = offset if c.id in ids else None
        offset += rows(c) * row_bytes(c) if c.id in ids else 0
    plan.flash = dict(hw["flash"], bytes=offset) if in_spram else None
    plan.spram = dict(dev) if in_spram else None


def load_cycles(plan) -> int | None:
    """Clock cycles from reset to ``loaded`` (weight_loader.v.j2), None without SPRAM weights: the
    wake command (8 bits, 2 cycles each), CS high for ``wake_cycles`` + 1, READ with its address
    (32 bits), 16 cycles a byte, and the done state. The network's cycles per step
    (snnhw.targets.fpga.cycles) start after it."""
    f = plan.flash
    if not f:
        return None
    return 2 * 8 + f["wake_cycles"] + 1 + 2 * 32 + 16 * f["bytes"] + 1


def program_command(plan) -> str | None:
    """How to write the weight image into the board's flash (after the bitstream, with iceprog)."""
    return f"iceprog -o {plan.flash['offset']} {FLASH_PATH}" if plan.flash else None
