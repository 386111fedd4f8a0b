"""Calibration: the float IR's state ranges on sample inputs, for the quantization pass.

Runs the float IR in the emulator on the calibration data and records, per population, the
largest |u| and |v| reached (float units). The quantizer then keeps those values inside the
target's current and voltage registers, and the quantization report compares them with what
the fixed point did on the same data (predicted vs observed overflow).
"""
from __future__ import annotations

import numpy as np

from snnhw.ir import Graph
from snnhw.targets.emu.emulator import Emulator


def state_ranges(float_g: Graph, x: np.ndarray) -> dict:
    """{population: {"max_abs_current": float, "max_abs_voltage": float}} over all steps and samples."""
    res = Emulator(float_g).run(x, record_state=True)
    return {p.name: {"max_abs_current": float(np.abs(res.current[p.name]).max()),
                     "max_abs_voltage": float(np.abs(res.voltage[p.name]).max())}
            for p in float_g.neurons}
