"""How a network's output activity becomes a prediction (``snnhw verify --decode``).

Every decoder reads the output layer over the ``T`` scored steps: its spikes ``[T, B, *shape]``
(0/1) and, for the membrane decoders, its membrane ``[T, B, *shape]`` in float units (the fixed
point dequantized with the layer's state LSB). A classification decoder returns one class per
sample, or :data:`UNDECIDED` when the output gives no answer: it is silent, or the best score is
shared by several classes. An undecided sample never counts as correct and never agrees with
anything, not even with another undecided sample.

==================  =====================================================================
``count``           class = the output neuron with the most spikes (one neuron per class)
``first-spike``     class = the output neuron that spikes first (time-to-first-spike)
``population:N``    neurons ``k*N .. k*N+N-1`` vote for class ``k``; class = group with most spikes
``membrane-max``    class = the neuron with the highest membrane over the steps (no spikes needed)
``membrane-final``  class = the neuron with the highest membrane at the last step
``regression``      one value per output neuron: its membrane at the last step (float labels)
==================  =====================================================================
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snnhw.errors import SnnhwError

UNDECIDED = -1
KINDS = ("count", "first-spike", "population", "membrane-max", "membrane-final", "regression")


def _unique_argmax(scores: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per row of ``scores [B, K]``, the index of the single highest score; UNDECIDED where the
    maximum is shared or ``valid [B]`` is False."""
    best = scores.max(axis=1, keepdims=True)
    winners = (scores == best).sum(axis=1)
    return np.where(valid & (winners == 1), scores.argmax(axis=1), UNDECIDED).astype(np.int64)


@dataclass(frozen=True)
class Decoding:
    """One decoding rule: ``kind`` (one of KINDS) and, for ``population``, ``group`` neurons per class."""

    kind: str = "count"
    group: int = 1

    def __str__(self) -> str:
        return f"population:{self.group}" if self.kind == "population" else self.kind

    @property
    def needs_membrane(self) -> bool:
        return self.kind in ("membrane-max", "membrane-final", "regression")

    @property
    def is_regression(self) -> bool:
        return self.kind == "regression"

    def predict(self, spikes: np.ndarray, membrane: np.ndarray | None = None) -> np.ndarray:
        """Classes ``[B]`` (int, UNDECIDED for no answer), or for ``regression`` values ``[B, N]``.

        spikes, membrane: the output layer ``[T, B, *shape]``."""
        T, B = spikes.shape[:2]
        s = np.asarray(spikes).reshape(T, B, -1).astype(np.int64)
        n = s.shape[2]
        if self.needs_membrane:
            if membrane is None:
                raise ValueError(f"decoding {self} needs the output membrane")
            v = np.asarray(membrane, np.float64).reshape(T, B, -1)
            if self.kind == "regression":
                return v[-1]
            scores = v.max(axis=0) if self.kind == "membrane-max" else v[-1]
            return _unique_argmax(scores, np.ones(B, bool))
        counts = s.sum(axis=0)  # [B, N]
        fired = counts.sum(axis=1) > 0
        if self.kind == "count":
            return _unique_argmax(counts, fired)
        if self.kind == "population":
            self.check_output(n)
            return _unique_argmax(counts.reshape(B, n // self.group, self.group).sum(axis=2), fired)
        # first-spike: earliest step of each neuron (T where it never spikes); earlier is better
        first = np.where(s.any(axis=0), s.argmax(axis=0), T)
        return _unique_argmax(-first, fired)

    def check_output(self, size: int) -> None:
        """Refuse an output layer of ``size`` neurons this decoding cannot read."""
        if self.kind == "population" and size % self.group:
            raise SnnhwError(f"--decode population:{self.group}: the output layer has {size} neurons, "
                             f"not a multiple of {self.group}")

    def check_labels(self, labels: np.ndarray, batch: int, output_size: int) -> np.ndarray:
        """``labels`` as this decoding scores them: int classes ``[B]``, or float values ``[B, N]``."""
        y = np.asarray(labels)
        if self.is_regression:
            y = y.astype(np.float64).reshape(y.shape[0], -1) if y.ndim else y
            if y.ndim != 2 or y.shape != (batch, output_size):
                raise SnnhwError(f"--labels has shape {tuple(np.shape(labels))}; --decode regression needs "
                                 f"[{batch}, {output_size}] (one value per sample and output neuron)")
            return y
        y = y.reshape(-1)
        if y.shape[0] != batch:
            raise SnnhwError(f"--labels has {y.shape[0]} entries for {batch} samples")
        yf = y.astype(np.float64)
        if not np.all(np.isfinite(yf)) or np.any(yf != np.round(yf)):
            raise SnnhwError(f"--labels must be whole class numbers for --decode {self} (found NaN, Inf or "
                             "fractions); use --decode regression for float targets")
        classes = output_size // self.group if self.kind == "population" else output_size
        if y.size and (yf.min() < 0 or yf.max() >= classes):
            groups = f" in groups of {self.group}" if self.kind == "population" else ""
            raise SnnhwError(f"--labels range over [{int(yf.min())}, {int(yf.max())}], but the output layer has "
                             f"{output_size} neurons{groups} (classes 0..{classes - 1})")
        return yf.astype(np.int64)


def parse_decoding(text: str) -> Decoding:
    """``count``, ``first-spike``, ``population:N``, ``membrane-max``, ``membrane-final``, ``regression``."""
    kind, _, arg = text.strip().partition(":")
    if kind not in KINDS:
        raise SnnhwError(f"--decode {text!r}: expected one of count, first-spike, population:N, membrane-max, "
                         "membrane-final, regression")
    if kind == "population":
        if not arg.isdigit() or int(arg) < 1:
            raise SnnhwError(f"--decode {text!r}: give the neurons per class, e.g. population:10")
        return Decoding(kind, int(arg))
    if arg:
        raise SnnhwError(f"--decode {text!r}: {kind} takes no argument")
    return Decoding(kind)


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of samples where two class predictions are equal and decided."""
    return float(((a == b) & (a != UNDECIDED)).mean())


def accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of samples decoded as their label (undecided samples are wrong)."""
    return float((pred == labels).mean())


def nrmse(pred: np.ndarray, target: np.ndarray) -> float:
    """Root-mean-square error of ``pred`` against ``target`` divided by the spread (standard
    deviation) of ``target``, so it has no unit: 0 is exact, 1 is as bad as always predicting the
    mean. A constant target is scored by the plain RMSE."""
    err = float(np.sqrt(np.mean((np.asarray(pred, np.float64) - target) ** 2)))
    spread = float(np.std(target))
    return err / spread if spread > 0 else err
