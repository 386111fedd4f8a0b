"""How many synapse lanes P each core gets (docs/targets/fpga.md, "Synapse lanes").

P comes from, first to last: ``emit(lanes=...)``, the environment variable ``SNNHW_FPGA_LANES``, and
``[hardware].lanes`` in targets/fpga/target.toml. An integer is used as given; ``auto`` takes the
largest power of two up to ``[hardware].max_lanes`` whose predicted logic (:func:`predicted_luts`,
a linear model fitted to yosys ``synth_ice40`` results, coefficients in ``[hardware.lut_model]``)
stays within ``[hardware].lane_budget``'s share of the named device's LUTs.
"""
from __future__ import annotations

import os

from snnhw.errors import SnnhwError, UnsupportedError

ENV = "SNNHW_FPGA_LANES"


def requested(hw: dict, lanes: int | str | None = None) -> int | str:
    """The requested lanes: a positive integer or ``"auto"``."""
    source = "emit(lanes=...)"
    if lanes is None and os.environ.get(ENV, "").strip():
        lanes, source = os.environ[ENV].strip(), ENV
    if lanes is None:
        lanes, source = hw.get("lanes", 1), "[hardware].lanes in targets/fpga/target.toml"
    if str(lanes).strip().lower() == "auto":
        return "auto"
    try:
        value = int(lanes)
    except (TypeError, ValueError):
        value = 0
    if value < 1 or str(value) != str(lanes).strip():
        raise SnnhwError(f"{source} = {lanes!r}: synapse lanes must be a positive integer or \"auto\"")
    return value


def predicted_luts(plan, model: dict) -> int:
    """iCE40 LUTs the design is predicted to take: per core a fixed part plus one per bit of its
    update datapath, and per lane one per bit of its accumulators (times the graded-input product
    factor for a core reading graded input)."""
    total = 0.0
    for c in plan.cores:
        lane_bits = c.sum_bits + (c.rec_sum_bits if c.has_rec else 0)
        graded = model["graded_lane_factor"] if c.source.value_bits else 1.0
        total += model["core"] + model["per_datapath_bit"] * c.calc_bits
        total += c.lanes * model["per_lane_bit"] * lane_bits * graded
    return int(round(total))


def budget(hw: dict) -> tuple[str, int]:
    """The device named by ``[hardware].lane_budget`` and the LUTs ``auto`` may use on it."""
    spec = hw["lane_budget"]
    device = next((d for d in hw.get("devices", []) if d["name"] == spec["device"]), None)
    if device is None:
        raise SnnhwError(f"[hardware].lane_budget names {spec['device']!r}, which is not a [[hardware.devices]] entry")
    return device["name"], int(device["lut"] * float(spec["lut_fraction"]))


def choose(build, hw: dict, lanes: int | str | None = None):
    """The plan with the requested lanes; ``build(p)`` makes the plan for ``p`` lanes."""
    want = requested(hw, lanes)
    if want != "auto":
        return build(want)
    _, luts = budget(hw)
    best = build(1)
    p = 2
    while p <= int(hw["max_lanes"]):
        try:
            plan = build(p)
        except UnsupportedError:  # e.g. p lanes' weight rows no longer fit the SPRAM (memory.assign)
            break
        if predicted_luts(plan, hw["lut_model"]) > luts:
            break
        best, p = plan, 2 * p
    return best
