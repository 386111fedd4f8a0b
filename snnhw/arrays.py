"""Reading user arrays and writing result archives deterministically and without destroying files."""
from __future__ import annotations

import os
import zipfile
from io import BytesIO
from pathlib import Path

import numpy as np

from snnhw.errors import InvalidFileError, SnnhwError

FIXED_DATE = (1980, 1, 1, 0, 0, 0)
ZIP_COMMENT = b"written by snnhw run"   # marks the archives `snnhw run` may replace


def load_array(path) -> np.ndarray:
    """A real numeric array from a ``.npy`` file (no pickles), or from the single array of a ``.npz``."""
    path = Path(path)
    if not path.is_file():
        raise SnnhwError(f"input file {path} does not exist")
    try:
        data = np.load(path, allow_pickle=False)
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


def save_npz(path, arrays: dict) -> None:
    """Write ``arrays`` as a .npz with fixed timestamps (same arrays -> same bytes), atomically; an
    existing ``path`` is replaced only if ``snnhw run`` wrote it (:func:`check_output_file`)."""
    path = Path(path)
    check_output_file(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.comment = ZIP_COMMENT
            for name in sorted(arrays):
                buf = BytesIO()
                np.lib.format.write_array(buf, np.ascontiguousarray(arrays[name]), allow_pickle=False)
                info = zipfile.ZipInfo(f"{name}.npy", date_time=FIXED_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, buf.getvalue())
        os.replace(tmp, path)
    except OSError as exc:
        raise SnnhwError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)
