"""The compiler pipeline: passes in a fixed order, each a function from IR to IR.

``snnhw compile -v`` lists them. Passes learn about the target only from its description.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from snnhw.ir import Graph
from snnhw.compiler.calibrate import state_ranges
from snnhw.compiler.fold_linear import fold_pass
from snnhw.compiler.legalize import legalize
from snnhw.compiler.quantize import quantize
from snnhw.compiler.timing import apply_target_delays
from snnhw.targets.description import TargetDescription


@dataclass(frozen=True)
class CompileOptions:
    input_bits: int = 1        # 1: binary spike input; n > 1: graded n-bit input
    input_max: float = 1.0     # largest |input| (graded input scale)
    weight_bits: int | None = None
    calibration: object = None  # sample input [T, B, *shape] (numpy): state ranges for the quantizer


@dataclass(frozen=True)
class Pass:
    name: str
    doc: str
    run: Callable[[Graph, TargetDescription, CompileOptions], Graph]


PASSES = (
    Pass("fold-linear", "compose sum/average pooling into the adjacent synapse (one linear map); refuse max pooling where the target has no pooling", lambda g, t, o: fold_pass(g, t)),
    Pass("check-features", "refuse ops and neuron features the target cannot run (before any work)",
         lambda g, t, o: legalize(g, t)),
    Pass("quantize", "float IR -> fixed IR: power-of-two weight scales within the weight bits, thresholds and "
         "calibrated state ranges; integer thresholds, biases and decays",
         lambda g, t, o: quantize(g, t, o.input_bits, o.input_max, o.weight_bits,
                                  None if o.calibration is None else state_ranges(g, o.calibration))),
    Pass("timing", "set every synapse's delay to the target's hardware delay",
         lambda g, t, o: apply_target_delays(g, t)),
    Pass("legalize", "check the fixed IR against the target's bit widths and features",
         lambda g, t, o: legalize(g, t)),
)


def compile_graph(g: Graph, target: TargetDescription, options: CompileOptions,
                  on_pass: Callable[[Pass, Graph], None] | None = None) -> Graph:
    for p in PASSES:
        g = p.run(g, target, options)
        if on_pass:
            on_pass(p, g)
    return g
