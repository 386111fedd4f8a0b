"""Reading user arrays and writing result archives deterministically."""
from __future__ import annotations

import os
import zipfile
from io import BytesIO
from pathlib import Path

import numpy as np

from snnhw.errors import InvalidFileError, SnnhwError

FIXED_DATE = (1980, 1, 1, 0, 0, 0)


def load_array(path) -> np.ndarray:
    """A numeric array from a ``.npy`` file (no pickles), or from the single array of a ``.npz``."""
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
    if not (np.issubdtype(data.dtype, np.number) or data.dtype == bool):
        raise SnnhwError(f"{path} has dtype {data.dtype}; give a numeric array")
    return data


def save_npz(path, arrays: dict) -> None:
    """Write ``arrays`` as a .npz with fixed timestamps (same arrays -> same bytes), atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name in sorted(arrays):
                buf = BytesIO()
                np.lib.format.write_array(buf, np.ascontiguousarray(arrays[name]), allow_pickle=False)
                info = zipfile.ZipInfo(f"{name}.npy", date_time=FIXED_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, buf.getvalue())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise SnnhwError(f"cannot write {path}: {exc.strerror}") from None
