"""Hypothesis strategies: random fixed-point networks."""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from snnhw.ir import LIF, Conv2d, Dense, Flatten, Graph, Input, NeuronFormat, Pool2d, StateFormat

LOIHI_FORMAT = NeuronFormat(12, "toward_zero", 6, StateFormat(24, "wrap_once"), StateFormat(24, "saturate"), 1.0)
LOIHI_ACC = StateFormat(25, "saturate")


def _ints(draw, lo, hi, shape):
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).integers(lo, hi + 1, shape)


@st.composite
def lava_networks(draw, max_layers=3, max_size=6, bias_step=1):
    """Random Dense/LIF chains inside Lava's fixed_pt LIF/Dense semantics, with an input array.

    Covers graded and binary input, bias (neuron and dense), recurrence, no-decay currents (which
    wrap), strong inputs (which saturate v) and thresholds from tiny to large. ``bias_step=64`` keeps
    neuron biases in weight units, as the loihi compiler emits them (and netx requires).
    """
    n_in = draw(st.integers(1, max_size))
    graded = draw(st.booleans())
    nodes = [Input("in", (n_in,), 8 if graded else 1, 1.0)]
    prev, prev_size = "in", n_in
    for i in range(draw(st.integers(1, max_layers))):
        size = draw(st.integers(1, max_size))
        wmax = draw(st.sampled_from([8, 127]))
        alpha = draw(st.sampled_from([0, 0, 4096, 2048, 4000]) | st.integers(0, 4096))
        dense_bias = _ints(draw, -300, 300, (size,)) if alpha == 0 and draw(st.booleans()) else None
        nodes.append(Dense(f"fc{i}", prev, _ints(draw, -wmax, wmax, (size, prev_size)), dense_bias, 1, LOIHI_ACC))
        thr = 64 * draw(st.sampled_from([1, 3, 50, 1000]) | st.integers(1, 131071))
        bias = bias_step * draw(st.sampled_from([0, 0, 320 // bias_step, -448 // bias_step])
                                | st.integers(-4095 // bias_step, 4095 // bias_step))
        rec = _ints(draw, -60, 60, (size, size)) if draw(st.booleans()) else None
        nodes.append(LIF(f"lif{i}", f"fc{i}", (size,), np.array(alpha), np.array(draw(st.integers(0, 4096))),
                         np.array(thr), np.array(bias), "zero", "immediate", rec, None, 1,
                         LOIHI_ACC if rec is not None else None, LOIHI_FORMAT))
        prev, prev_size = f"lif{i}", size
    g = Graph(nodes, kind="fixed", target="loihi").validate()
    T, B = draw(st.integers(1, 12)), draw(st.integers(1, 2))
    x = _ints(draw, -127, 127, (T, B, n_in)) if graded else _ints(draw, 0, 1, (T, B, n_in))
    return g, x


@st.composite
def any_fixed_networks(draw):
    """Random fixed IR graphs using every op and field (for file round trips)."""
    c, h, w = draw(st.integers(1, 3)), draw(st.integers(3, 6)), draw(st.integers(3, 6))
    nodes = [Input("in", (c, h, w), draw(st.integers(1, 16)), draw(st.sampled_from([1.0, 0.015625, 0.1])))]
    cout = draw(st.integers(1, 3))
    k = draw(st.integers(1, 3))
    acc = StateFormat(draw(st.integers(8, 32)), draw(st.sampled_from(["wrap", "saturate", "wrap_once"])))
    conv = Conv2d("conv", "in", _ints(draw, -100, 100, (cout, c, k, k)), (c, h, w),
                  _ints(draw, -5, 5, (cout,)) if draw(st.booleans()) else None, (1, 1), (k // 2, k // 2), (1, 1), 1,
                  draw(st.integers(0, 3)), acc)
    nodes.append(conv)
    fmt = NeuronFormat(draw(st.integers(4, 16)), draw(st.sampled_from(["floor", "toward_zero"])),
                       draw(st.integers(0, 8)), StateFormat(24, "wrap"), StateFormat(draw(st.integers(16, 32)), "saturate"),
                       draw(st.sampled_from([1.0, 2.0**-10, 0.3])))
    one = 1 << fmt.decay_bits
    per = conv.shape if draw(st.booleans()) else ()
    nodes.append(LIF("lif1", "conv", conv.shape, _ints(draw, 0, one, per), _ints(draw, 0, one, per),
                     _ints(draw, 1, 1000, per), _ints(draw, -50, 50, per),
                     draw(st.sampled_from(["zero", "subtract", "none"])), draw(st.sampled_from(["immediate", "delayed"])),
                     format=fmt))
    nodes.append(Pool2d("pool", "lif1", conv.shape, (1, 1), (1, 1), "sum"))
    nodes.append(Flatten("flat", "pool", nodes[-1].shape))
    n = int(np.prod(nodes[-1].shape))
    m = draw(st.integers(1, 5))
    nodes.append(Dense("fc", "flat", _ints(draw, -127, 127, (m, n)), None, draw(st.integers(0, 2)), acc))
    rec = draw(st.booleans())
    nodes.append(LIF("out", "fc", (m,), np.array(0), np.array(one), np.array(64), np.array(0), "subtract", "delayed",
                     _ints(draw, -9, 9, (m, m)) if rec else None, _ints(draw, -3, 3, (m,)) if rec and draw(st.booleans()) else None,
                     draw(st.integers(1, 3)), acc if rec else None, fmt))
    return Graph(nodes, kind="fixed", dt=draw(st.sampled_from([1e-3, 1e-4, 0.25])), target="emu",
                 meta={"source": "hypothesis"}).validate()


@st.composite
def lava_conv_networks(draw):
    """Conv -> LIF -> Flatten -> Dense -> LIF networks inside Lava's fixed_pt semantics."""
    c, h, w = draw(st.integers(1, 2)), draw(st.integers(3, 5)), draw(st.integers(3, 5))
    k = draw(st.integers(1, 3))
    cout = draw(st.integers(1, 3))
    graded = draw(st.booleans())
    stride = draw(st.sampled_from([(1, 1), (2, 1), (1, 2)]))
    pad = draw(st.sampled_from([(0, 0), (k // 2, k // 2), (1, 0)]))
    conv_acc = StateFormat(24, "wrap")
    bias = _ints(draw, -40, 40, (cout,)) if draw(st.booleans()) else None
    conv = Conv2d("conv", "in", _ints(draw, -127, 127, (cout, c, k, k)), (c, h, w), bias, stride, pad, (1, 1), 1, 1,
                  conv_acc)
    nodes = [Input("in", (c, h, w), 8 if graded else 1, 1.0), conv]
    thr1 = 64 * draw(st.sampled_from([1, 20, 300]) | st.integers(1, 5000))
    nodes.append(LIF("lif1", "conv", conv.shape, np.array(0), np.array(draw(st.integers(0, 4096))), np.array(thr1),
                     np.array(64 * draw(st.integers(-20, 20))), "zero", "immediate", format=LOIHI_FORMAT))
    nodes.append(Flatten("flat", "lif1", conv.shape))
    n = int(np.prod(conv.shape))
    m = draw(st.integers(1, 4))
    nodes.append(Dense("fc", "flat", _ints(draw, -127, 127, (m, n)), None, 1, LOIHI_ACC))
    nodes.append(LIF("lif2", "fc", (m,), np.array(draw(st.integers(0, 4096))), np.array(draw(st.integers(0, 4096))),
                     np.array(64 * draw(st.integers(1, 400))), np.array(0), "zero", "immediate", format=LOIHI_FORMAT))
    g = Graph(nodes, kind="fixed", target="loihi").validate()
    T, B = draw(st.integers(1, 8)), draw(st.integers(1, 2))
    x = _ints(draw, -127, 127, (T, B, c, h, w)) if graded else _ints(draw, 0, 1, (T, B, c, h, w))
    return g, x
