"""The compiler pipeline: the generic passes in a fixed order, then the target's lowering passes,
then a final legalization; each pass is a function from IR to IR.

``snnhw compile -v`` lists them. Passes learn about the target only from its description; a target
names its lowering passes in ``[target].lowering`` (registered in :mod:`snnhw.compiler.lowering`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from snnhw.ir import Graph
from snnhw.compiler.calibrate import state_ranges
from snnhw.compiler.fold_linear import fold_pass
from snnhw.compiler.legalize import legalize
from snnhw.compiler.lowering import lowering_passes
from snnhw.compiler.quantize import quantize
from snnhw.compiler.timing import apply_target_delays
from snnhw.targets.description import TargetDescription


@dataclass(frozen=True)
class CompileOptions:
    input_bits: int = 1        # 1: binary spike input; n > 1: graded n-bit input
    input_max: float = 1.0     # largest |input| (graded input scale)
    weight_bits: int | None = None
    calibration: object = None  # sample input [T, B, *shape] (numpy): state ranges for the quantizer
    channel_steps: str = "auto"  # per-channel weight steps: auto, on, off (compiler.quantize.channel_gains)


@dataclass(frozen=True)
class Pass:
    name: str
    doc: str
    run: Callable[[Graph, TargetDescription, CompileOptions], Graph]


PASSES = (
    Pass("fold-linear", "compose sum/average pooling into the adjacent synapse (one linear map); refuse max "
         "pooling where the target has no pooling", lambda g, t, o: fold_pass(g, t)),
    Pass("check-features", "refuse ops and neuron features the target cannot run (before any work)",
         lambda g, t, o: legalize(g, t)),
    Pass("quantize", "float IR -> fixed IR: power-of-two weight scales within the weight bits, thresholds and "
         "calibrated state ranges (per neuron where a layer's rows would lose bits); integer thresholds, biases "
         "and decays",
         lambda g, t, o: quantize(g, t, o.input_bits, o.input_max, o.weight_bits,
                                  None if o.calibration is None else state_ranges(g, o.calibration),
                                  o.channel_steps)),
    Pass("timing", "set every synapse's delay to the target's hardware delay",
         lambda g, t, o: apply_target_delays(g, t)),
)
LEGALIZE = Pass("legalize", "check the fixed IR against the target's bit widths and features",
                lambda g, t, o: legalize(g, t))


def passes_for(target: TargetDescription) -> list[Pass]:
    """The generic passes, then the lowering passes ``target`` names, then legalization."""
    lowered = [Pass(p.name, f"({target.name} lowering) {p.doc}", lambda g, t, o, run=p.run: run(g, t))
               for p in lowering_passes(target.lowering)]
    return [*PASSES, *lowered, LEGALIZE]


def compile_stages(g: Graph, target: TargetDescription, options: CompileOptions,
                   on_pass: Callable[[Pass, Graph], None] | None = None) -> tuple[Graph, Graph]:
    """(the fixed IR after the generic passes, the final fixed IR after the target's lowering).

    The first is what the quantization report describes (its nodes correspond one to one with the
    float IR's); the second is what the build holds and every backend runs."""
    quantized = None
    for p in passes_for(target):
        g = p.run(g, target, options)
        if p is PASSES[-1]:
            quantized = g
        if on_pass:
            on_pass(p, g)
    return quantized, g


def compile_graph(g: Graph, target: TargetDescription, options: CompileOptions,
                  on_pass: Callable[[Pass, Graph], None] | None = None) -> Graph:
    """The fixed IR of ``g`` for ``target`` (see :func:`compile_stages`)."""
    return compile_stages(g, target, options, on_pass)[1]
