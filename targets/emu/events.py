"""Event-driven synaptic products: for binary spike input, add only the weight rows of the inputs
that fired (as a neuromorphic core fans each spike out), instead of a dense matrix product.

For spikes ``x`` ``[rows, in]`` in {0, 1} and integer weights ``wt`` ``[in, out]``,
``y[r] = sum of wt[j] over the inputs j with x[r, j] = 1``. Every partial sum is a sum of a subset of
one column's weights, so its magnitude is at most the column's sum of |w| (the bound the caller
already uses to pick float32 below 2^24 or float64 below 2^53): the integers are exact and equal to
the dense product's bit for bit, whatever the order of the additions.

The rule (cheap, from the measured activity of the input): the event path runs when the input is
binary, its density (nonzero fraction) is at most ``MAX_DENSITY`` and the product has at least
``MIN_OUTPUTS`` outputs. The dense path costs rows x in x out multiply-adds at BLAS speed; the event
path about one scattered add per (spike, output) plus a fixed cost per active input, which on the
reference machine (benchmarks/emu_roofline.py) is ~50-70x a BLAS multiply-add, so it pays below
about 1.5 % activity (1.4-1.7x faster at 1 %, slower at 2 %), and not for narrow products, where
the per-input overhead dominates. Graded input
(any value other than 0 and 1) is refused and the caller takes the dense path.
"""
from __future__ import annotations

import numpy as np

MAX_DENSITY = 1 / 64   # largest fraction of active inputs for which the event path is taken
MIN_OUTPUTS = 64       # narrower products stay dense (the per-input cost dominates there)


def wants_events(x2: np.ndarray, outputs: int) -> int | None:
    """The number of active inputs of ``x2`` ``[rows, in]`` if the event path should run on it
    (sparse enough, wide enough, binary); None for the dense path."""
    if outputs < MIN_OUTPUTS or x2.size == 0:
        return None
    active = int(np.count_nonzero(x2))
    if active > MAX_DENSITY * x2.size:
        return None
    if x2.dtype != bool and int(np.count_nonzero(x2 == 1)) != active:
        return None  # graded input: not spikes
    return active


def accumulate(x2: np.ndarray, wt: np.ndarray) -> np.ndarray:
    """``x2 @ wt`` for binary ``x2`` ``[rows, in]``: for every input j that fired, add ``wt[j]`` to
    the rows where it fired (rows are distinct within one input, so the scatter is a plain add).
    Returns ``[rows, out]`` in ``wt``'s dtype (exact, see the module docstring)."""
    y = np.zeros((x2.shape[0], wt.shape[1]), wt.dtype)
    inputs, rows = np.nonzero(x2.T)  # grouped by input
    if inputs.size == 0:
        return y
    edges = np.flatnonzero(inputs[1:] != inputs[:-1]) + 1
    starts = np.concatenate(([0], edges)).tolist()
    stops = np.concatenate((edges, [inputs.size])).tolist()
    for j, a, b in zip(inputs[starts].tolist(), starts, stops):
        y[rows[a:b]] += wt[j]
    return y
