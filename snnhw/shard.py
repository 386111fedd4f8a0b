"""Sharded runs: one batch split into contiguous sample ranges, run on local worker processes or on
a Ray cluster, merged back in order.

Every backend treats the samples of a batch independently (no state crosses the batch axis: the
emulator's per-sample rows, Lava and the RTL clear their state per sample), so a shard's result is
exactly the slice of the whole run's result. Shards are contiguous and merged in order
(concatenation along the batch axis, overflow counts summed), so the result is byte-identical
whatever the number of workers or the engine. Inputs are encoded before sharding, so random
encodings depend on the sample, not on the worker.

Engines:

- ``workers=1``: shards run one after another in this process (bounded memory for large batches);
- ``workers=N``: N local processes (``spawn``: a clean interpreter, no inherited threads);
- ``ray=ADDRESS``: tasks on a Ray cluster (``ray`` extra; ``local`` starts a private local
  instance with ``workers`` CPUs, ``auto`` joins the cluster of this machine, ``ray://host:10001``
  a remote one). The build's files travel through Ray's object store, so worker nodes need no
  shared file system; each task re-checks them against the manifest's hashes.

Streaming: :func:`stream_sharded` yields the results block by block in order instead of merging
them (``snnhw run`` writes each block into its output file as it comes); in this process the
emulator's blocks are also cut along the timesteps (its session continues the run), and at most two
shards per worker are in flight, so memory holds a few blocks whatever the size of the run.

A failing shard is reported with its sample range; Ctrl-C or SIGTERM stops every worker (local
workers turn SIGTERM into an exception, so their own child processes and temporary files are
cleaned up as in the CLI).
"""
from __future__ import annotations

import multiprocessing
import tempfile
from collections import deque
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from snnhw.errors import SnnhwError
from snnhw.safety import unwind_on_sigterm
from snnhw.semantics import RunResult, pad_steps

DEFAULT_SHARD_SAMPLES = 256  # samples per shard when one process runs a large batch in pieces
BLOCK_BYTES = 128 << 20      # memory one streamed block of a run may take (samples x steps, see plan_blocks)


@dataclass(frozen=True)
class Sharding:
    """Where a run's shards go: ``workers`` local processes (or Ray CPUs for ``ray="local"``), or
    the Ray cluster at ``ray`` (see the module docstring)."""

    workers: int = 1
    ray: str | None = None

    def __post_init__(self):
        if self.workers < 1:
            raise SnnhwError(f"--workers {self.workers}: give at least 1")

    def describe(self) -> str:
        return f"Ray ({self.ray})" if self.ray else (f"{self.workers} workers" if self.workers > 1 else "one process")


@dataclass(frozen=True)
class Shard:
    """Samples ``start`` .. ``stop - 1`` of the batch."""

    start: int
    stop: int

    def describe(self) -> str:
        return f"samples {self.start}..{self.stop - 1}"


def plan_shards(batch: int, workers: int, max_samples: int = DEFAULT_SHARD_SAMPLES) -> list[Shard]:
    """Contiguous shards covering ``[0, batch)``: at least ``workers`` of them (when there are that
    many samples), none larger than ``max_samples``, sizes differing by at most one."""
    if batch < 1 or workers < 1 or max_samples < 1:
        raise SnnhwError(f"cannot shard {batch} samples over {workers} workers")
    count = min(batch, max(workers, -(-batch // max_samples)))
    edges = np.linspace(0, batch, count + 1).round().astype(int)
    return [Shard(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def plan_blocks(g, steps: int, batch: int, record_state: bool, sharding: Sharding, streams: bool,
                block_bytes: int = BLOCK_BYTES) -> tuple[int, int | None]:
    """(samples per shard, timesteps per block) so one block of a run of graph ``g`` on ``steps`` x
    ``batch`` needs about ``block_bytes`` at most: every node's values are counted at 8 bytes per
    sample-step (plus 16 for a population's recorded u and v). A backend that ``streams`` in this
    process (the emulator's session) keeps full-size shards and cuts the steps; otherwise (Lava, the
    RTL, worker processes, Ray) the shards get fewer samples for long inputs (at least one)."""
    per = 8 * sum(int(np.prod(n.shape)) for n in g.nodes) + (16 * sum(n.size for n in g.neurons) if record_state else 0)
    if streams and sharding.workers == 1 and sharding.ray is None:
        return DEFAULT_SHARD_SAMPLES, max(1, block_bytes // (min(batch, DEFAULT_SHARD_SAMPLES) * per))
    return max(1, min(DEFAULT_SHARD_SAMPLES, block_bytes // (steps * per))), None


def merge(parts: list[RunResult]) -> RunResult:
    """One result from shard results in batch order (arrays concatenated on axis 1, counts summed)."""
    out = RunResult(overflow_source=parts[0].overflow_source)
    for field in ("spikes", "current", "voltage"):
        first = getattr(parts[0], field)
        setattr(out, field, {k: np.concatenate([getattr(p, field)[k] for p in parts], axis=1) for k in first})
    for p in parts:
        for node, counts in p.overflow.items():
            for key, n in counts.items():
                out.count(node, key, n)
    return out


def _keep(res: RunResult, layers) -> RunResult:
    """``res`` with only the arrays of ``layers`` (all when None; overflow counts are always kept)."""
    if layers is not None:
        for field in ("spikes", "current", "voltage"):
            setattr(res, field, {k: v for k, v in getattr(res, field).items() if k in layers})
    return res


def run_build(target: str, build_dir: str, record_state: bool, x: np.ndarray, layers=None) -> RunResult:
    """Run ``x`` on the build in ``build_dir`` with ``target``'s backend (what one shard does);
    keep only the arrays of ``layers`` (all when None; overflow counts are always kept)."""
    from snnhw.targets import load
    from snnhw.targets.contract import backend_for
    return _keep(backend_for(load(target)).run(Path(build_dir), x, record_state=record_state), layers)


def stream_build(target: str, build_dir, record_state: bool, x: np.ndarray, layers=None, steps: int | None = None):
    """Like :func:`run_build`, yielding ``(first step, result)`` chunks of ``steps`` timesteps where
    the backend can continue a run across calls (its ``stream`` method: the emulator's session);
    other backends, or ``steps`` None, give one chunk."""
    from snnhw.targets import load
    from snnhw.targets.contract import backend_for
    backend = backend_for(load(target))
    if steps is None or steps >= x.shape[0] or not hasattr(backend, "stream"):
        yield 0, _keep(backend.run(Path(build_dir), x, record_state=record_state), layers)
        return
    for t0, res in backend.stream(Path(build_dir), x, record_state, steps):
        yield t0, _keep(res, layers)


def _failed(shard: Shard, exc: BaseException) -> SnnhwError:
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return SnnhwError(f"{shard.describe()} failed: {detail}")


def _shard_input(x: np.ndarray, s: Shard, pad: int) -> np.ndarray:
    """Shard ``s``'s samples of ``x`` (a slice of a memory-mapped file reads only those) followed by
    ``pad`` zero steps, as one contiguous array of its own (never a view of a read-only map)."""
    return np.require(pad_steps(x[:, s.start:s.stop], pad), requirements=["C", "W", "O"])


def _local_blocks(target, build_dir, record_state, layers, x, shards, workers, steps, pad):
    """(shard, first step, result) in order; with workers > 1 at most ``2 * workers`` shards are
    in flight (or finished and waiting), so memory stays bounded however many shards there are."""
    if workers == 1:
        for s in shards:
            try:
                for t0, res in stream_build(target, build_dir, record_state, _shard_input(x, s, pad), layers, steps):
                    yield s, t0, res
            except SnnhwError as exc:
                raise _failed(s, exc) from None
        return
    pool = multiprocessing.get_context("spawn").Pool(workers, initializer=unwind_on_sigterm)
    finished = False
    try:
        todo, pending = iter(shards), deque()

        def submit():
            s = next(todo, None)
            if s is not None:
                pending.append((s, pool.apply_async(run_build, (target, str(build_dir), record_state,
                                                              _shard_input(x, s, pad), layers))))
        for _ in range(2 * workers):
            submit()
        while pending:
            s, job = pending.popleft()
            try:
                res = job.get()
            except Exception as exc:  # a worker's error, raised again here: name the shard
                raise _failed(s, exc) from None
            submit()
            yield s, 0, res
        finished = True
    finally:
        if finished:  # every worker is idle: they exit on their own (a SIGTERM now would land in their exit)
            pool.close()
        else:  # a failure or an interrupt: SIGTERM to every worker still running (their cleanup runs)
            pool.terminate()
        pool.join()


def _build_files(build_dir: Path) -> dict[str, bytes]:
    """The build's manifest and every file it lists (what a remote task needs to run it)."""
    from snnhw.build import MANIFEST, read_manifest
    names = [MANIFEST, *read_manifest(build_dir)["files"]]
    return {n: (Path(build_dir) / n).read_bytes() for n in names}


def run_files(target: str, files: dict, record_state: bool, x: np.ndarray, layers=None) -> RunResult:
    """Unpack a build's files into a private directory and run them (a Ray task; hashes are
    checked by the backend against the unpacked manifest)."""
    with tempfile.TemporaryDirectory(prefix="snnhw-shard-") as tmp:
        for name, data in files.items():
            path = Path(tmp) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return run_build(target, tmp, record_state, x, layers)


def _ray_blocks(target, build_dir, record_state, layers, x, shards, workers, address, pad):
    """(shard, 0, result) in order from Ray tasks, at most two per CPU of the cluster in flight."""
    try:
        import ray
    except ImportError:
        raise SnnhwError("--ray needs the ray package: pip install 'snnhw[ray]'") from None
    started = not ray.is_initialized()
    if started:
        if address == "local":
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
        else:
            try:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise SnnhwError(f"cannot connect to the Ray cluster at {address!r}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    pending = deque()
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(run_files)
        files = ray.put(_build_files(Path(build_dir)))
        todo = iter(shards)

        def submit():
            s = next(todo, None)
            if s is not None:
                pending.append((s, task.remote(target, files, record_state, _shard_input(x, s, pad), layers)))
        for _ in range(2 * max(workers, int(ray.cluster_resources().get("CPU", 1)))):
            submit()
        while pending:
            s, ref = pending.popleft()
            try:
                res = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:
                raise _failed(s, getattr(exc, "cause", None) or exc) from None
            submit()
            yield s, 0, res
    finally:
        for _, ref in pending:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()


def stream_sharded(target: str, build_dir: Path, x: np.ndarray, record_state: bool = False,
                   sharding: Sharding = Sharding(), max_samples: int = DEFAULT_SHARD_SAMPLES,
                   layers=None, steps: int | None = None, pad: int = 0):
    """Run ``x`` ``[T, B, ...]`` on the build with ``target``'s backend, sharded over the batch, as
    a stream of blocks ``(shard, first step, result of those steps of the shard's samples)`` in
    order (shard by shard, each shard's steps in order).

    sharding: where the shards run (:class:`Sharding`); max_samples: the largest shard; steps: the
    timesteps per block where the backend can stream (the emulator, in this process; None: all);
    layers: names of the populations whose arrays are kept (None: all); pad: zero steps appended to
    every shard's input (:func:`snnhw.semantics.pad_steps` per shard, so ``x`` itself, possibly a
    memory-mapped file, is never copied whole). Memory holds a few blocks, never the whole run."""
    workers, ray = sharding.workers, sharding.ray
    shards = plan_shards(int(x.shape[1]), workers, max_samples)
    if ray is not None:
        return _ray_blocks(target, build_dir, record_state, layers, x, shards, workers, ray, pad)
    return _local_blocks(target, build_dir, record_state, layers, x, shards, min(workers, len(shards)), steps, pad)


def run_sharded(target: str, build_dir: Path, x: np.ndarray, record_state: bool = False,
                sharding: Sharding = Sharding(), max_samples: int = DEFAULT_SHARD_SAMPLES, layers=None) -> RunResult:
    """The whole result of :func:`stream_sharded` (one block per shard, merged): equals an
    unsharded run byte for byte."""
    with closing(stream_sharded(target, build_dir, x, record_state, sharding, max_samples, layers)) as blocks:
        return merge([res for _, _, res in blocks])
