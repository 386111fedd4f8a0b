"""Spike encoders: static data -> spike trains ``[T, B, *shape]``, as ``snntorch.spikegen`` defines them.

- :func:`rate`: Bernoulli spikes with probability ``clip(x * gain + offset, 0, 1)`` per step
  (``spikegen.rate``), drawn from a seeded numpy Generator so the same seed gives the same spikes.
- :func:`latency`: at most one spike per element, early for large values (``spikegen.latency``:
  log or linear code, ``torch.round`` half to even, ``normalize``, ``clip``).
- :func:`delta`: a spike where the signal rose by at least ``threshold`` since the previous step
  (``spikegen.delta``, ``>=``; -1 for falls with ``off_spike``).

Computations are float32, as in snntorch, so latency and delta give snntorch's exact output.
:func:`encode` is what ``snnhw run/verify/report --encode`` call.
"""
from __future__ import annotations

import numpy as np

from snnhw.errors import SnnhwError

ENCODINGS = ("rate", "latency", "delta")


def _finite(data, what: str) -> np.ndarray:
    x = np.asarray(data, dtype=np.float32)
    if not np.all(np.isfinite(x)):
        raise SnnhwError(f"{what}: data contains NaN or Inf values")
    return x


def _steps(num_steps, what: str) -> int:
    if isinstance(num_steps, bool) or not isinstance(num_steps, (int, np.integer)) or num_steps < 1:
        raise SnnhwError(f"{what}: the number of steps must be a positive integer, got {num_steps!r}")
    return int(num_steps)


def rate(data, num_steps: int, gain: float = 1.0, offset: float = 0.0, seed: int = 0) -> np.ndarray:
    """Rate code: ``[T, *data.shape]`` float32 0/1 spikes, P(spike) = clip(data*gain + offset, 0, 1) each step.

    data: any shape (e.g. ``[B, *input_shape]``), dimensionless (1 = one spike every step).
    seed: seed of the numpy Generator (PCG64); same seed and data -> same spikes.
    """
    x = _finite(data, "rate")
    p = np.clip(x * np.float32(gain) + np.float32(offset), 0.0, 1.0)
    rng = np.random.default_rng(seed)
    u = rng.random((_steps(num_steps, "rate"), *x.shape), dtype=np.float32)
    return (u < p).astype(np.float32)


def latency(data, num_steps: int, threshold: float = 0.01, tau: float = 1.0, linear: bool = False,
            normalize: bool = False, clip: bool = False) -> np.ndarray:
    """Latency code: ``[T, *data.shape]`` float32, one spike per element at step ``round(t)``.

    data: values in [0, 1]. tau: time constant in steps. Log code (default):
    ``t = tau * ln(x / (x - threshold))`` with ``x`` clamped to at least ``threshold + 1e-7``;
    linear code: ``t = min(tau * (1 - x), tau * (1 - threshold))``. ``normalize`` stretches the
    spike times to ``[0, num_steps - 1]``; ``clip`` drops the spikes of elements below ``threshold``.
    Rounding is half to even (torch.round). A spike time beyond ``num_steps - 1`` is an error
    (snntorch raises too): use more steps, a smaller ``tau``, or ``normalize``.
    """
    x = _finite(data, "latency")
    steps = _steps(num_steps, "latency")
    if x.size and (x.min() < 0 or x.max() > 1):
        raise SnnhwError(f"latency: data must be in [0, 1], got [{x.min():.4g}, {x.max():.4g}]; scale it first")
    if not 0 < threshold < 1:
        raise SnnhwError(f"latency: threshold must be in (0, 1), got {threshold}")
    if tau <= 0:
        raise SnnhwError(f"latency: tau must be > 0 steps, got {tau}")
    thr = np.float32(threshold)
    if linear:
        tau_eff = (steps - 1) if normalize else tau
        t = np.minimum(np.float32(-tau_eff) * (x - np.float32(1)), np.float32(-tau_eff * (threshold - 1)))
    else:
        xc = np.maximum(x, np.float32(threshold + 1e-7))
        t = np.float32(tau) * np.log(xc / (xc - thr))
        if normalize:
            t = t * np.float32(steps - 1) / t.max()
    step = np.rint(t).astype(np.int64)  # half to even, as torch.round
    if step.size and step.max() > steps - 1:
        raise SnnhwError(f"latency: the latest spike is at step {step.max()}, beyond the {steps} steps; "
                         "use more steps, a smaller tau, or normalize")
    out = (np.arange(steps).reshape(-1, *([1] * x.ndim)) == step[None]).astype(np.float32)
    if clip:
        out *= (x >= thr)[None]
    return out


def delta(data, threshold: float = 0.1, padding: bool = False, off_spike: bool = False) -> np.ndarray:
    """Delta code of a time series ``data [T, ...]``: float32 spikes, same shape.

    +1 where ``data[t] - data[t-1] >= threshold`` (``data[-1]`` is 0, or ``data[0]`` with ``padding``);
    with ``off_spike`` also -1 where the difference is ``<= -threshold``. threshold: in data units.
    """
    x = _finite(data, "delta")
    if x.ndim < 1 or x.shape[0] < 1:
        raise SnnhwError("delta: data needs a leading time axis [T, ...]")
    prev = np.concatenate([x[:1] if padding else np.zeros_like(x[:1]), x[:-1]])
    diff = x - prev
    out = (diff >= np.float32(threshold)).astype(np.float32)
    if off_spike:
        out -= (diff <= -np.float32(threshold)).astype(np.float32)
    return out


def encode(kind: str, data: np.ndarray, steps: int | None, seed: int | None) -> np.ndarray:
    """The CLI's ``--encode``: static data ``[B, *shape]`` (``[T, B, *shape]`` for delta) -> binary spikes.

    rate: ``rate(data, steps, seed=seed or 0)``, data in [0, 1]; latency: the linear code stretched
    over the steps, values below 0.01 silent (``latency(data, steps, linear=True, normalize=True,
    clip=True)``); delta: ``delta(data)`` with threshold 0.1 and on-spikes only.
    """
    if kind not in ENCODINGS:
        raise SnnhwError(f"--encode {kind!r}: expected one of {', '.join(ENCODINGS)}")
    if kind == "delta":
        if steps is not None or seed is not None:
            raise SnnhwError("--encode delta takes its timesteps from the data [T, B, *shape]; "
                             "drop --steps and --seed")
        return delta(data)
    if steps is None:
        raise SnnhwError(f"--encode {kind} needs --steps N (the number of timesteps to generate)")
    if kind == "latency" and seed is not None:
        raise SnnhwError("--encode latency is deterministic; drop --seed")
    if seed is not None and seed < 0:
        raise SnnhwError(f"--seed {seed}: a seed is a non-negative integer")
    x = _finite(data, kind)
    if x.size and (x.min() < 0 or x.max() > 1):
        raise SnnhwError(f"--encode {kind}: data must be in [0, 1], got [{x.min():.4g}, {x.max():.4g}]; "
                         "scale it first")
    if kind == "rate":
        return rate(x, steps, seed=0 if seed is None else seed)
    return latency(x, steps, linear=True, normalize=True, clip=True)
