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
POOL_MODES = ("sum", "avg", "max")
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

    def weight_magnitudes(self) -> np.ndarray:
        """The largest |weight| each synapse can hold during a run (the weights: they do not change)."""
        return np.abs(self.weight)


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

    def weight_magnitudes(self) -> np.ndarray:
        """The largest |weight| each kernel entry can hold during a run (the weights)."""
        return np.abs(self.weight)


@dataclass
class Pool2d:
    """Pooling over ``kernel`` windows moved by ``stride`` (no padding), per channel:

    ``y[c, i, j] = sum_{a<kH, b<kW} x[c, sH*i + a, sW*j + b]`` (``sum``), that sum / (kH*kW) (``avg``), or
    ``max_{a, b} x[c, sH*i + a, sW*j + b]`` (``max``; on binary spikes the OR of the window).
    The fixed IR has ``sum`` and ``max`` (``avg`` becomes ``sum`` with the window moved into the scale);
    the compiler's fold-linear pass composes ``sum``/``avg`` into the adjacent synapse, so only ``max``
    reaches a backend.
    """

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


# ----------------------------------------------------------------------------- plasticity
TRACE_NAMES = ("x1", "x2", "y1", "y2", "y3")   # pre-synaptic x1, x2; post-synaptic y1, y2, y3
DEPENDENCIES = ("x0", "y0", "u")               # pre spike, post spike, every epoch
FACTOR_VARS = ("x0", "y0", "x1", "x2", "y1", "y2", "y3", "w")
WEIGHT_ROUNDINGS = ("nearest", "floor")
TRACE_BITS = 7            # traces are unsigned 7-bit, saturating at 127
TRACE_DECAY_BITS = 12     # trace decays in units of 2^-12
LEARN_FRAC_BITS = 7       # the learning accumulator holds w << 7
LEARN_ACC_BITS = 16       # signed accumulator width (saturates at +-(2^15 - 1))
FACTOR_BITS = {"x0": 1, "y0": 1, "x1": 7, "x2": 7, "y1": 7, "y2": 7, "y3": 7, "w": 9}
MANTISSA_BITS = 4         # product scale mantissa: signed 4 bits, -8..7


@dataclass(frozen=True)
class Trace:
    """A spike trace (Loihi's x1, x2, y1, y2, y3): an unsigned 7-bit integer.

    Every step ``trace = (trace * decay) >> 12``; a spike adds ``impulse`` (saturating at 127).
    decay: 0..4096 in units of 2^-12 (4096 keeps the trace, 0 forgets it every step).
    impulse: 0..127.
    """

    impulse: int = 0
    decay: int = 0


@dataclass(frozen=True)
class Product:
    """One term of a weight update, Loihi's sum-of-products form (docs/semantics.md, Plasticity):

    ``mantissa * 2^exponent * dependency * prod(var + const for var, const in factors)``

    mantissa: -8..7 (4-bit signed); exponent: -7..8; dependency: ``x0`` (this pre neuron spiked in
    the epoch), ``y0`` (this post neuron spiked) or ``u`` (every epoch); factors: pairs
    ``(var, const)`` with var one of x0, y0, x1, x2, y1, y2, y3, w and an integer const.
    """

    mantissa: int
    exponent: int
    dependency: str
    factors: tuple = ()


@dataclass(frozen=True)
class LearningRule:
    """A learning rule in Loihi's form: traces with impulses and decays, and ``dw`` as a sum of
    products, applied every ``t_epoch`` steps.

    rounding: how the updated weight (7 fractional bits) becomes an integer: ``nearest`` (half up,
    ``(acc + 64) >> 7``) or ``floor`` (``acc >> 7``). Loihi and Lava round stochastically instead.
    """

    dw: tuple
    x1: Trace = Trace()
    x2: Trace = Trace()
    y1: Trace = Trace()
    y2: Trace = Trace()
    y3: Trace = Trace()
    t_epoch: int = 1
    rounding: str = "nearest"

    def trace(self, name: str) -> Trace:
        return getattr(self, name)


@dataclass
class PlasticDense(Dense):
    """A Dense synapse whose weights learn (docs/semantics.md, Plasticity).

    ``y[t] = W(t) x[t - delay]`` where W(t) are the weights during step t. The rule sees the
    synapse's input spikes ``x[t]`` (pre) and the spikes of population ``post`` (which this synapse
    feeds directly); at the end of every epoch (each ``rule.t_epoch`` steps)
    ``W <- clip(round(W + dw), w_min, w_max)`` per synapse, independently for every sample of a batch.
    w_min, w_max: weight bounds in the weight's units (integers in the fixed IR). No bias.
    """

    post: str = ""
    rule: Optional[LearningRule] = None
    w_min: float = 0
    w_max: float = 0

    def weight_magnitudes(self) -> np.ndarray:
        """The largest |weight| each synapse can hold during a run: learning moves every weight
        anywhere in [w_min, w_max], so range proofs and scales must allow the bounds."""
        span = max(abs(self.w_min), abs(self.w_max))
        return np.maximum(np.abs(self.weight), np.asarray(span, dtype=self.weight.dtype))

    def summary(self) -> str:
        """One line: the rule as Loihi writes it, the bounds and the epoch."""
        def term(p):
            factors = "".join(f" * ({v}{c:+d})" if c else f" * {v}" for v, c in p.factors)
            return f"{p.mantissa}*2^{p.exponent} * {p.dependency}{factors}"
        return (f"learns (post {self.post}): dw = {' + '.join(term(p) for p in self.rule.dw)}; "
                f"w in [{self.w_min:g}, {self.w_max:g}], every {self.rule.t_epoch} step(s), round {self.rule.rounding}")

    def updates(self, steps: int) -> int:
        """Synapse updates of one sample over ``steps`` steps: every synapse once per completed epoch
        (the learning engine visits the whole synapse group; an upper bound where it skips idle ones)."""
        return (steps // self.rule.t_epoch) * int(self.weight.size)


REFERENCE_FIELDS = ("input", "post")
"""Node attributes that hold the name of another node (``input``: the node read; ``post``: the
population a plastic synapse learns from); renaming nodes must rename these too."""

Synapse = Union[Dense, Conv2d, Pool2d, Flatten]
Node = Union[Input, Dense, PlasticDense, Conv2d, Pool2d, Flatten, LIF]
NODE_TYPES = (Input, Dense, PlasticDense, Conv2d, Pool2d, Flatten, LIF)
