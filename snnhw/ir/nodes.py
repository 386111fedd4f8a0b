"""IR primitives: one small dataclass per op.

The same node types describe the float IR (produced by a frontend, parameters in float32) and the
fixed-point IR (produced by quantization, parameters in integers). ``docs/ir.md`` specifies every
field; ``docs/semantics.md`` defines what one timestep of the fixed-point IR computes.

Shapes are per sample (no time or batch axis). Tensors flowing between nodes are ``[T, B, *shape]``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import numpy as np

RESET_MODES = ("zero", "subtract", "none")
RESET_TIMINGS = ("immediate", "delayed")
OVERFLOW_RULES = ("saturate", "wrap", "wrap_once")
ROUNDING_RULES = ("toward_zero", "floor")
POOL_MODES = ("sum", "avg")
MAX_SYNAPSE_EXP = 16  # largest |LIF.rec_weight_exp|


@dataclass(frozen=True)
class StateFormat:
    """A signed integer register: ``bits`` wide, with an overflow rule.

    ``saturate``: clip to [-(2^(bits-1)-1), 2^(bits-1)-1] (symmetric, as Lava's LIF voltage).
    ``wrap``: two's complement, the value modulo 2^bits in [-2^(bits-1), 2^(bits-1)).
    ``wrap_once``: a single correction of +-2^bits keeping (-2^(bits-1), 2^(bits-1)] (Lava's fixed_pt
    LIF current, reproduced for bit-exactness).
    """

    bits: int
    overflow: str


@dataclass(frozen=True)
class NeuronFormat:
    """How a fixed-point population stores and updates its state.

    decay_bits: the decays alpha and beta are integers in units of 2^-decay_bits (12 on Loihi).
    decay_rounding: rounding of the decay product ``x * q / 2^decay_bits``.
    input_shift: synaptic input enters the current as ``a << input_shift`` (6 on Loihi).
    current / voltage: the u and v registers.
    state_scale: float value of one u/v LSB; used only to compare with the float IR.
    """

    decay_bits: int = 12
    decay_rounding: str = "toward_zero"
    input_shift: int = 6
    current: StateFormat = StateFormat(24, "wrap_once")
    voltage: StateFormat = StateFormat(24, "saturate")
    state_scale: float = 1.0


@dataclass
class Input:
    """The network input, ``[T, B, *shape]``.

    bits: 0 in the float IR (any float value); in the fixed IR 1 means binary spikes (0/1) and n>1
    means graded signed n-bit integers (direct encoding of analog values).
    scale: float value of one integer input unit (fixed IR); ``x_int = round(x / scale)``.
    """

    name: str
    shape: tuple
    bits: int = 0
    scale: float = 1.0


@dataclass
class Dense:
    """Synapse ``y[t] = W x[t - delay] + b``. weight ``(out, in)``, bias ``(out,)`` or None.

    acc: the accumulator register of the fixed IR (None in the float IR).
    """

    name: str
    input: str
    weight: np.ndarray
    bias: Optional[np.ndarray] = None
    delay: int = 0
    acc: Optional[StateFormat] = None

    @property
    def shape(self) -> tuple:
        return (int(self.weight.shape[0]),)


@dataclass
class Conv2d:
    """2-D cross-correlation as torch.nn.Conv2d. weight ``(C_out, C_in/groups, kH, kW)``."""

    name: str
    input: str
    weight: np.ndarray
    in_shape: tuple
    bias: Optional[np.ndarray] = None
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    dilation: tuple = (1, 1)
    groups: int = 1
    delay: int = 0
    acc: Optional[StateFormat] = None

    @property
    def shape(self) -> tuple:
        _, h, w = self.in_shape
        kh, kw = self.weight.shape[2:]
        ho = (h + 2 * self.padding[0] - self.dilation[0] * (kh - 1) - 1) // self.stride[0] + 1
        wo = (w + 2 * self.padding[1] - self.dilation[1] * (kw - 1) - 1) // self.stride[1] + 1
        return (int(self.weight.shape[0]), int(ho), int(wo))


@dataclass
class Pool2d:
    """Sum or average pooling over ``kernel`` windows (no padding). The fixed IR only has ``sum``."""

    name: str
    input: str
    in_shape: tuple
    kernel: tuple
    stride: tuple
    mode: str = "sum"

    @property
    def shape(self) -> tuple:
        c, h, w = self.in_shape
        return (c, (h - self.kernel[0]) // self.stride[0] + 1, (w - self.kernel[1]) // self.stride[1] + 1)


@dataclass
class Flatten:
    """Row-major (C-order) flatten of the per-sample shape, as torch.nn.Flatten()."""

    name: str
    input: str
    in_shape: tuple

    @property
    def shape(self) -> tuple:
        return (int(np.prod(self.in_shape)),)


@dataclass
class LIF:
    """A population of current-based leaky integrate-and-fire neurons (the CUBA-LIF family).

    Per step (docs/semantics.md): ``u = alpha*u + a``; ``v = beta*v + u + bias``; reset; spike if
    ``v > threshold``. Leaky is alpha = 0, Synaptic has alpha > 0.

    alpha, beta, threshold, bias: scalar (shape ``()``) or one value per neuron (shape ``shape``).
    Float IR: float32, alpha/beta in [0, 1]. Fixed IR: int64; alpha/beta in units of
    2^-format.decay_bits, threshold and bias in state units.
    rec_weight/rec_bias/rec_delay: optional recurrent dense from this population's spikes back to
    its own input (snntorch RLeaky/RSynaptic); rec_delay >= 1.
    rec_weight_exp: e, the exponent between the recurrent and the feed-forward weight steps (fixed IR;
    0 in the float IR): with the feed-forward sum ``a`` and the recurrent sum ``r`` (each after its
    accumulator rule), the population's input is ``a + (r << e)`` for e >= 0 and ``(a << -e) + r``
    for e < 0, so each path keeps its own power-of-two scale. |e| <= MAX_SYNAPSE_EXP; targets whose
    description lacks ``features.synapse_exponent`` need e = 0.
    """

    name: str
    input: str
    shape: tuple
    alpha: np.ndarray
    beta: np.ndarray
    threshold: np.ndarray
    bias: np.ndarray
    reset_mode: str = "subtract"
    reset_timing: str = "delayed"
    rec_weight: Optional[np.ndarray] = None
    rec_bias: Optional[np.ndarray] = None
    rec_delay: int = 1
    rec_acc: Optional[StateFormat] = None
    format: Optional[NeuronFormat] = None
    rec_weight_exp: int = 0

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


Synapse = Union[Dense, Conv2d, Pool2d, Flatten]
Node = Union[Input, Dense, Conv2d, Pool2d, Flatten, LIF]
NODE_TYPES = (Input, Dense, Conv2d, Pool2d, Flatten, LIF)
