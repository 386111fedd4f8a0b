"""The snnhw intermediate representation: node dataclasses, the graph, and its ONNX file format."""
from snnhw.ir.graph import Graph
from snnhw.ir.nodes import (
    LIF, Conv2d, Dense, Flatten, Input, LearningRule, NeuronFormat, PlasticDense, Pool2d, Product,
    StateFormat, Trace,
)
from snnhw.ir.onnx_io import load, save

__all__ = ["Graph", "Input", "Dense", "Conv2d", "Pool2d", "Flatten", "LIF", "NeuronFormat",
           "StateFormat", "PlasticDense", "LearningRule", "Product", "Trace", "load", "save"]
