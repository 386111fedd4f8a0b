"""The semantics core: what one timestep of the fixed-point IR means, shared by every backend.

Nothing here knows about a particular target. Backends (``snnhw.targets.*``) build on it and never
import each other; docs/semantics.md is the prose version of these functions.

- :mod:`.result`: :class:`RunResult`, what every backend returns (spikes, states, observed overflow).
- :mod:`.overflow`: the register overflow rules and their range algebra.
- :mod:`.arith`: decay products and their rounding.
- :mod:`.inputs`: quantization of user input to the Input node's integers.
- :mod:`.timing`: synapse delays, latency and zero-step padding.
"""
from snnhw.semantics.arith import decay
from snnhw.semantics.inputs import quantize_input
from snnhw.semantics.overflow import apply_overflow, half, rule_bound, rule_needed, stored_bound, wrap_once_closed
from snnhw.semantics.result import RunResult
from snnhw.semantics.timing import arrival, latency, pad_steps

__all__ = ["RunResult", "apply_overflow", "arrival", "decay", "half", "latency", "pad_steps", "quantize_input",
           "rule_bound", "rule_needed", "stored_bound", "wrap_once_closed"]
