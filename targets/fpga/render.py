"""Render a :class:`DesignPlan` into Verilog files and $readmemh memory images.

Templates live in ``templates/`` (jinja2 with ``{= ... =}`` for values, so Verilog's ``{{ }}``
replication stays literal). Output is deterministic: same plan, same bytes.

No text from the model file reaches the design: modules, signals, file names and comments are
derived from layer indices (layer k is entry k of the manifest's ``layers``), and every generated
file is checked to be printable ASCII (docs/security.md).
"""
from __future__ import annotations

from pathlib import Path

import jinja2

from snnhw.targets.fpga import memory
from snnhw.targets.fpga import widths as wd
from snnhw.targets.fpga.plan import CorePlan, DesignPlan

TEMPLATES = Path(__file__).resolve().parent / "templates"
TESTBENCH = "tb.v"


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)), variable_start_string="{=", variable_end_string="=}",
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined,
        autoescape=False)


def hex_words(values, bits: int) -> str:
    """One two's-complement hex word per line, ``bits`` wide (the $readmemh format)."""
    digits = (bits + 3) // 4
    mask = (1 << bits) - 1
    return "".join(f"{int(v) & mask:0{digits}x}\n" for v in values)


def _param_words(c: CorePlan) -> list[int]:
    """The packed per-neuron parameter words: the first field in the least significant bits."""
    words = [0] * c.size
    offset = 0
    for f in c.fields:
        mask = (1 << f.bits) - 1
        for j, v in enumerate(f.values):
            words[j] |= (v & mask) << offset
        offset += f.bits
    return words


def _offsets(c: CorePlan) -> dict:
    out, offset = {}, 0
    for f in c.fields:
        out[f.name] = offset
        offset += f.bits
    return out


def lane_words(rows, bits: int) -> list[int]:
    """A banked weight memory ``(words, P)`` as one word per row: lane p in bits ``[p*bits, (p+1)*bits)``
    (see :meth:`CorePlan.weight_rows`)."""
    mask = (1 << bits) - 1
    return [sum((int(w) & mask) << (p * bits) for p, w in enumerate(row)) for row in rows]


def coord_words(c: CorePlan, widths: dict) -> list[int]:
    """The coordinate ROM of a conv core: per input neuron ``{x, y, lin}`` (lin in the low bits;
    targets/fpga/conv.py)."""
    lb, yb = widths["lin"], widths["y"]
    return [lin | (y << lb) | (x << (lb + yb)) for lin, y, x in c.conv.coords()]


def mult_widths(c: CorePlan) -> dict:
    """Operand widths (bits, signed) of the two decay multipliers: the stored register times a
    decay factor 0..2^decay_bits, which needs one bit more than its unsigned width."""
    one = 1 << c.fmt.decay_bits
    factor = wd.unsigned_bits(one) + 1
    return {"u": (c.u_bits, factor), "v": (c.v_bits, factor)}


def _wmem_context(c: CorePlan, spram: dict | None) -> dict:
    """Values weight_mem.v.j2 prints: rows, address width, and for SPRAM (``spram``: the device entry
    of DesignPlan.spram) the grid of blocks (see memory.py)."""
    aw = wd.index_bits(c.weight_words)
    out = dict(c=c, rows=memory.rows(c), aw=aw)
    if c.weight_memory == "spram":
        sw_bits = wd.index_bits(int(spram["spram_words"]))
        cols, depth = memory.spram_grid(c, spram)
        out.update(dev=spram, cols=cols, depth=depth, sw_bits=sw_bits, bank_bits=max(aw - sw_bits, 1))
    return out


def _loader_context(plan: DesignPlan) -> dict:
    """Values weight_loader.v.j2 and snn_top.v.j2 print: the SPRAM layers (core, rows, bytes a row),
    the widest row address and data, and the counter widths."""
    spram = [(c, memory.rows(c), memory.row_bytes(c)) for c in plan.cores if c.weight_memory == "spram"]
    if not spram:
        return {"spram": []}
    return dict(spram=spram, aw=max(wd.index_bits(r) for _, r, _ in spram), dw=8 * max(b for _, _, b in spram),
                byte_bits=wd.index_bits(max(b for _, _, b in spram)), core_bits=wd.index_bits(len(spram)),
                wait_bits=wd.unsigned_bits(plan.flash["wake_cycles"]))


def flash_image(plan: DesignPlan) -> bytes:
    """The SPI flash image of the SPRAM weights: per SPRAM core in order, its rows (memory.rows), each
    ``memory.row_bytes`` bytes little-endian (what weight_loader.v reads back)."""
    out = bytearray()
    for c in plan.cores:
        if c.weight_memory == "spram":
            n = memory.row_bytes(c)
            for word in lane_words(c.weight_rows(), c.weight_bits):
                out += word.to_bytes(n, "little")
    return bytes(out)


def render_design(plan: DesignPlan) -> dict[str, str]:
    """File name -> contents of the whole design: modules, memory images and the testbench."""
    env = _environment()
    files = {}
    own = {lst.name: lst for lst in plan.lists}
    loader = _loader_context(plan)
    for lst in plan.lists:
        if lst.readers:
            files[f"{lst.module}.v"] = env.get_template("spike_list.v.j2").render(l=lst)
    for c in plan.cores:
        waw = wd.index_bits(c.weight_words)
        raw = wd.index_bits(c.groups * c.size)
        cw = c.conv.widths(c.lanes) if c.conv is not None else {}
        files[f"{c.module}.v"] = env.get_template("lif_core.v.j2").render(
            c=c, own=own[c.name], waw=waw, raw=raw, row_step=c.fan_in % (1 << waw),
            rec_row_step=c.size % (1 << raw), offsets=_offsets(c), group_bits=wd.index_bits(c.groups),
            lane_bits=wd.unsigned_bits(c.lanes), mult=mult_widths(c), cw=cw)
        files[f"{c.module}_wmem.v"] = env.get_template("weight_mem.v.j2").render(**_wmem_context(c, plan.spram))
        if c.weight_memory == "ebr":
            files[f"{c.module}_weights.mem"] = hex_words(lane_words(c.weight_rows(), c.weight_bits), c.lanes * c.weight_bits)
        if c.conv is not None:
            files[f"{c.module}_coords.mem"] = hex_words(coord_words(c, cw), cw["lin"] + cw["y"] + cw["x"])
        if c.fields:
            files[f"{c.module}_params.mem"] = hex_words(_param_words(c), c.param_bits)
        if c.has_rec:
            files[f"{c.module}_rec_weights.mem"] = hex_words(lane_words(c.banked(c.rec_weights), c.rec_weight_bits),
                                                             c.lanes * c.rec_weight_bits)
    if loader["spram"]:
        files["weight_loader.v"] = env.get_template("weight_loader.v.j2").render(plan=plan, **loader)
    files[f"{plan.top}.v"] = env.get_template("snn_top.v.j2").render(
        plan=plan, loader=loader, waws={c.id: wd.index_bits(c.weight_words) for c in plan.cores})
    files[f"{plan.top}_board.v"] = env.get_template("pnr_top.v.j2").render(plan=plan)
    files[TESTBENCH] = env.get_template("tb.v.j2").render(plan=plan)
    for name, text in files.items():
        _check_printable(name, text)
    return files


def _check_printable(name: str, text: str) -> None:
    """Generated files hold printable ASCII and newlines only (a guard against pasted-in text)."""
    bad = next((ch for ch in text if not (" " <= ch <= "~" or ch == "\n")), None)
    if bad is not None:
        raise AssertionError(f"generated {name} contains the character U+{ord(bad):04X}; templates must "
                             "print only values derived from indices and numbers")


def write_design(plan: DesignPlan, rtl_dir: Path) -> list[str]:
    """Write the design into ``rtl_dir`` (and the flash image when a core keeps its weights in SPRAM);
    return the file names (sorted)."""
    rtl_dir.mkdir(parents=True, exist_ok=True)
    files = render_design(plan)
    for name, text in files.items():
        (rtl_dir / name).write_text(text)
    if plan.flash:
        (rtl_dir / memory.FLASH_IMAGE).write_bytes(flash_image(plan))
        files[memory.FLASH_IMAGE] = ""
    return sorted(files)


def design_sources(plan: DesignPlan) -> list[str]:
    """The synthesizable Verilog files (no testbench), top module last."""
    lists = [f"{lst.module}.v" for lst in plan.lists if lst.readers]
    cores = [f for c in plan.cores for f in (f"{c.module}_wmem.v", f"{c.module}.v")]
    return lists + cores + (["weight_loader.v"] if plan.flash else []) + [f"{plan.top}.v"]
