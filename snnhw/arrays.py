"""Reading user arrays and writing result archives deterministically and without destroying files."""
from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from io import BytesIO
from pathlib import Path

import numpy as np

from snnhw.errors import InvalidFileError, SnnhwError

FIXED_DATE = (1980, 1, 1, 0, 0, 0)
ZIP_COMMENT = b"written by snnhw run"   # marks the archives `snnhw run` may replace


def load_array(path, mmap: bool = False) -> np.ndarray:
    """A real numeric array from a ``.npy`` file (no pickles), or from the single array of a ``.npz``.

    mmap: map a ``.npy`` file read-only instead of reading it (pages are read as slices are used, so a
    run over a data set larger than memory holds only the shards in flight; a ``.npz`` is read whole)."""
    path = Path(path)
    if not path.is_file():
        raise SnnhwError(f"input file {path} does not exist")
    try:
        data = np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
        if isinstance(data, np.lib.npyio.NpzFile):
            with data:
                if len(data.files) != 1:
                    raise SnnhwError(f"{path} holds {len(data.files)} arrays; give a .npy file or a .npz with one array")
                data = data[data.files[0]]
    except SnnhwError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise InvalidFileError(f"{path} is not a readable .npy array ({first})") from None
    if np.issubdtype(data.dtype, np.complexfloating):
        raise SnnhwError(f"{path} has complex dtype {data.dtype}; give real values")
    if not (np.issubdtype(data.dtype, np.number) or data.dtype == bool):
        raise SnnhwError(f"{path} has dtype {data.dtype}; give a numeric array")
    return data


def check_samples(x: np.ndarray, what: str) -> None:
    """Refuse an input ``[T, B, ...]`` without a timestep or a sample (T = 0 or B = 0)."""
    if x.ndim < 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise SnnhwError(f"{what} has shape {tuple(x.shape)}; it needs at least one timestep and one sample "
                         "([T, B, *shape] with T, B >= 1)")


def written_by_snnhw(path: Path) -> bool:
    """Whether ``path`` is a result archive of ``snnhw run`` (its zip comment says so)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.comment == ZIP_COMMENT
    except (OSError, zipfile.BadZipFile):
        return False


def check_output_file(path, flag: str = "-o") -> None:
    """Refuse before any work an output file that cannot be written or would destroy a user's file."""
    path = Path(path)
    if path.is_symlink():
        raise SnnhwError(f"{flag} {path} is a symbolic link; name a regular file")
    if path.is_dir():
        raise SnnhwError(f"{flag} {path} is a directory; name a file, e.g. {flag} {path / 'out.npz'}")
    if path.exists() and not written_by_snnhw(path):
        raise SnnhwError(f"{flag} {path} exists and was not written by `snnhw run`; choose another file or "
                         "remove it yourself")
    parent = Path(os.path.abspath(path)).parent
    if not parent.is_dir():
        raise SnnhwError(f"{flag} {path}: folder {parent} does not exist")
    from snnhw.safety import writable_folder
    cannot = writable_folder(parent)
    if cannot:
        raise SnnhwError(f"{flag} {path}: cannot write in {parent} ({cannot})")


COPY_BYTES = 1 << 22  # bytes copied at a time from a streamed array's part file into the archive


def save_npz(path, arrays: dict) -> None:
    """Write ``arrays`` as a .npz with fixed timestamps (same arrays -> same bytes), atomically; an
    existing ``path`` is replaced only if ``snnhw run`` wrote it (:func:`check_output_file`)."""
    entries = {}
    for name, a in arrays.items():
        buf = BytesIO()
        np.lib.format.write_array(buf, np.ascontiguousarray(a), allow_pickle=False)
        data = buf.getvalue()
        entries[name] = (len(data), lambda data=data: [data])
    _write_npz(path, entries)


def _write_npz(path, entries: dict) -> None:
    """The archive writer of :func:`save_npz` and :class:`StreamedNpz`: ``entries`` maps a name to
    (size of its .npy bytes, a function returning an iterable of those bytes in pieces). The pieces
    are compressed as they come (deflate's output does not depend on how its input is split), so a
    streamed array gives the same bytes as one written whole."""
    path = Path(path)
    check_output_file(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.comment = ZIP_COMMENT
            for name in sorted(entries):
                size, pieces = entries[name]
                info = zipfile.ZipInfo(f"{name}.npy", date_time=FIXED_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.file_size = size  # known up front, as for a whole array (the zip64 choice depends on it)
                with zf.open(info, "w") as dest:
                    for piece in pieces():
                        dest.write(piece)
        os.replace(tmp, path)
    except OSError as exc:
        raise SnnhwError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)


class StreamedNpz:
    """A .npz of ``[T, B, *shape]`` arrays written in blocks (some steps x some samples), so the
    whole arrays are never in memory; the archive equals :func:`save_npz` of the whole arrays byte
    for byte.

    Each array is first assembled as a .npy part file in a hidden folder beside ``path`` (blocks
    are written in place, one contiguous run per step; the dtype is the first block's), then
    compressed into the archive by :meth:`finish`; the folder is removed in any case by
    :meth:`close`. ``aliases`` name further entries holding the same array as another (e.g. ``output``)."""

    def __init__(self, path, shapes: dict, aliases: dict | None = None):
        """shapes: name -> ``(T, B, *shape)`` of every array the archive will hold."""
        self.path = Path(path)
        check_output_file(self.path)
        self.shapes = {name: tuple(int(n) for n in shape) for name, shape in shapes.items()}
        self.aliases = dict(aliases or {})
        self.parts: dict = {}
        try:
            self.folder = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.parts-",
                                                dir=os.path.abspath(self.path.parent)))
        except OSError as exc:
            raise SnnhwError(f"cannot write beside {self.path}: {exc.strerror}") from None

    def _part(self, name: str, dtype: np.dtype):
        """The part file of ``name`` (created with its .npy header on the first block)."""
        if name not in self.parts:
            shape = self.shapes[name]
            f = open(self.folder / f"{len(self.parts)}.npy", "w+b")
            np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                     "fortran_order": False, "shape": shape})
            start = f.tell()
            size = start + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            f.truncate(size)
            self.parts[name] = (f, dtype, start, size)
        return self.parts[name]

    def write(self, name: str, t0: int, s0: int, block: np.ndarray) -> None:
        """Put ``block`` ``[Tc, Sc, *shape]`` at steps ``t0..``, samples ``s0..`` of array ``name``."""
        shape = self.shapes[name]
        try:
            f, dtype, start, _ = self._part(name, np.asarray(block).dtype)
        except OSError as exc:
            raise SnnhwError(f"cannot write beside {self.path}: {exc.strerror}") from None
        block = np.ascontiguousarray(block, dtype=dtype)
        inner = int(np.prod(shape[2:], dtype=np.int64)) * dtype.itemsize
        runs = [(start + t0 * shape[1] * inner, block)] if block.shape[1] == shape[1] else \
            [(start + ((t0 + t) * shape[1] + s0) * inner, block[t]) for t in range(block.shape[0])]
        try:
            for offset, run in runs:  # whole batch: one contiguous run; else one per step
                f.seek(offset)
                f.write(run.data)
        except OSError as exc:
            raise SnnhwError(f"cannot write beside {self.path}: {exc.strerror}") from None

    def finish(self) -> None:
        """Compress the parts into the archive (atomically) and remove them."""
        def pieces(f, size):
            def read():
                f.seek(0)
                left = size
                while left:
                    piece = f.read(min(COPY_BYTES, left))
                    left -= len(piece)
                    yield piece
            return read
        missing = sorted(set(self.shapes) - set(self.parts))
        if missing:
            raise SnnhwError(f"internal: no block was written for {missing[0]}")
        entries = {name: (size, pieces(f, size)) for name, (f, _, _, size) in self.parts.items()}
        entries.update({alias: entries[name] for alias, name in self.aliases.items()})
        try:
            _write_npz(self.path, entries)
        finally:
            self.close()

    def close(self) -> None:
        for f, *_ in self.parts.values():
            f.close()
        self.parts = {}
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
