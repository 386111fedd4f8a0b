"""Shared-kernel convolution cores (docs/targets/fpga.md, "Convolution core").

A ``Conv2d`` synapse keeps its kernel: the core's P lanes are P output channels at one output
position. Group ``g = b * Ho*Wo + y'*Wo + x'`` (channel block ``b`` outer, position in C order inner)
holds lane ``p`` = output channel ``o = b*P + p``, neuron ``o*Ho*Wo + y'*Wo + x'`` (the emulator's C
order). An input event at ``(c, y, x)`` reaches every lane through the same kernel tap
``(ky, kx) = (y - y0, x - x0)`` with ``y0 = y'*stride_h - pad_h`` (``x0`` likewise), so one wide
word per ``(b, c, ky, kx)`` holds the P channels' weights side by side: the kernel memory has
``ceil(Cout/P) * C * kh * kw`` words, each kernel weight stored once (grouped convolutions store a
zero in the lanes whose group does not read channel ``c``).

The core walks every input event for every group; an event outside the group's window adds 0.
It finds ``(c, y, x)`` of an event index in a ROM (one word per input neuron: ``lin = c*kh*kw +
y*kw + x``, ``y``, ``x``); the weight address is ``lin + off`` with ``off = b*C*kh*kw - y0*kw - x0``,
which the walk updates by additions as it moves from group to group.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snnhw.errors import UnsupportedError
from snnhw.ir import Conv2d
from snnhw.targets.fpga import widths as wd


@dataclass(frozen=True)
class ConvGeometry:
    """Shapes of one conv core. in_shape ``(C, H, W)`` of the event source, out_shape ``(Cout, Ho,
    Wo)``, kernel ``(kh, kw)``, stride and padding ``(h, w)`` in input pixels, groups as torch;
    weight ``(Cout, C/groups, kh, kw)`` integers."""

    in_shape: tuple
    out_shape: tuple
    kernel: tuple
    stride: tuple
    padding: tuple
    groups: int
    weight: np.ndarray

    @classmethod
    def of(cls, syn: Conv2d) -> "ConvGeometry":
        """The geometry of ``syn``; refuses what the address generator does not walk."""
        if tuple(syn.dilation) != (1, 1):
            raise UnsupportedError(f"layer {syn.name}: dilation {tuple(syn.dilation)} is not supported by the fpga "
                                   "conv core; use dilation 1 (a larger kernel holding zeros is exact)")
        weight = np.asarray(syn.weight, np.int64)
        return cls(tuple(int(v) for v in syn.in_shape), tuple(int(v) for v in syn.shape),
                   tuple(int(v) for v in weight.shape[2:]), tuple(int(v) for v in syn.stride),
                   tuple(int(v) for v in syn.padding), int(syn.groups), weight)

    @property
    def positions(self) -> int:
        """Output positions Ho * Wo."""
        return self.out_shape[1] * self.out_shape[2]

    @property
    def taps(self) -> int:
        """Kernel words per channel block: C * kh * kw."""
        return self.in_shape[0] * self.kernel[0] * self.kernel[1]

    def blocks(self, lanes: int) -> int:
        """Channel blocks ceil(Cout / P)."""
        return -(-self.out_shape[0] // lanes)

    def lane_neurons(self, lanes: int) -> np.ndarray:
        """``(G, P)`` neuron index of each group's lanes (-1: a padding lane of the last block)."""
        cout, pos = self.out_shape[0], self.positions
        o = np.arange(self.blocks(lanes) * lanes).reshape(-1, lanes)         # (blocks, P) output channels
        n = (o[:, None, :] * pos + np.arange(pos)[None, :, None]).reshape(-1, lanes)
        return np.where(np.repeat(o, pos, axis=0) < cout, n, -1)

    def rows(self, lanes: int) -> np.ndarray:
        """``(blocks * C * kh * kw, P)`` kernel words: row ``((b*C + c)*kh + ky)*kw + kx``, lane p holds
        ``weight[b*P + p, c - group_start, ky, kx]`` (0 for padding lanes and other groups' channels)."""
        cout, cin_g, kh, kw = self.weight.shape
        per_group = cout // self.groups
        full = np.zeros((self.blocks(lanes) * lanes, self.in_shape[0], kh, kw), np.int64)
        for o in range(cout):
            start = (o // per_group) * cin_g
            full[o, start:start + cin_g] = self.weight[o]
        return full.reshape(self.blocks(lanes), lanes, -1).transpose(0, 2, 1).reshape(-1, lanes)

    def coords(self) -> list[tuple[int, int, int]]:
        """Per input neuron index (C order): ``(lin, y, x)`` with ``lin = c*kh*kw + y*kw + x``."""
        c, h, w = self.in_shape
        kh, kw = self.kernel
        return [(ci * kh * kw + y * kw + x, y, x) for ci in range(c) for y in range(h) for x in range(w)]

    def row_sum(self) -> int:
        """The largest sum of |weight| over one output channel's kernel (bound of a neuron's input sum)."""
        return int(np.abs(self.weight).reshape(self.weight.shape[0], -1).sum(axis=1).max(initial=0))

    def widths(self, lanes: int) -> dict:
        """Bit widths of the address generator: ``lin`` (unsigned), ``y``/``x`` (unsigned), ``coord``
        (signed: y0, x0, y - y0), ``addr`` (signed: off and lin + off), ``pos`` (an output position
        or row/column counter) and ``block`` (the neuron of a channel block's first lane)."""
        c, h, w = self.in_shape
        kh, kw = self.kernel
        _, ho, wo = self.out_shape
        lin_max = (c - 1) * kh * kw + (h - 1) * kw + (w - 1)
        y0_max = max((ho - 1) * self.stride[0], (wo - 1) * self.stride[1]) + max(self.padding)
        coord = wd.signed_bits(max(h, w) + y0_max + max(kh, kw))
        off_max = self.blocks(lanes) * self.taps + y0_max * (kw + 1)
        return {"lin": wd.unsigned_bits(lin_max), "y": wd.unsigned_bits(h - 1), "x": wd.unsigned_bits(w - 1),
                "coord": coord, "addr": wd.signed_bits(lin_max + off_max), "pos": wd.index_bits(self.positions),
                "block": wd.unsigned_bits(self.blocks(lanes) * lanes * self.positions)}
