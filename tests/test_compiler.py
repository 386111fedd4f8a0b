"""Compiler passes: calibrated quantization and its report."""
from __future__ import annotations

import numpy as np

from snnhw.compiler.pipeline import CompileOptions, compile_graph
from snnhw.compiler.quant_report import quantization_report
from snnhw.frontends import load_model
from snnhw.targets import load
from snnhw.targets.emu.emulator import run


def test_calibration_keeps_states_in_range_and_reports_it(digits_model):
    g = load_model(digits_model["pt"], arch=digits_model["arch"])
    x = np.load(digits_model["x"])
    emu = load("emu")
    plain = compile_graph(g, emu, CompileOptions(input_bits=8, input_max=1.0))
    calibrated = compile_graph(g, emu, CompileOptions(input_bits=8, input_max=1.0, calibration=x))
    over_plain = run(plain, x).total_overflow
    over_cal = run(calibrated, x).total_overflow
    assert over_cal <= over_plain
    rep = quantization_report(g, calibrated, x)
    assert rep["calibrated"]
    for name in ("lif1", "lif2"):
        c = rep["layers"][name]["calibration"]
        assert c["float_max_abs_voltage"] > 0
        # predicted overflow from the float ranges agrees with what the fixed point did
        observed = any(k.startswith("voltage") for k in c["observed_overflow"])
        assert c["predicted_overflow"]["voltage"] == observed
    assert rep["layers"]["fc1"]["weight"]["max_rel_error"] < 0.05
