"""The build directory: written atomically, described by ``manifest.json``.

A build holds ``model.onnx`` (the fixed-point IR), ``float.onnx`` (the float IR it came from, for
verification), ``manifest.json`` and the target's own artifacts. It is written into a temporary
sibling directory and renamed into place only when complete, so a failed compile leaves no build
directory and never destroys an existing one.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from snnhw import __version__
from snnhw.errors import InvalidFileError, SnnhwError
from snnhw.ir import Graph, load

MANIFEST = "manifest.json"
FIXED_IR = "model.onnx"
FLOAT_IR = "float.onnx"
MAPPING = "mapping.json"


def write_json(path: Path, data) -> None:
    """Deterministic JSON (sorted keys, fixed indentation, trailing newline)."""
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextmanager
def atomic_dir(dest: Path):
    """Yield a temporary directory that replaces ``dest`` only if the block succeeds."""
    dest = Path(dest)
    parent = dest.resolve().parent
    if dest.exists() and not dest.is_dir():
        raise SnnhwError(f"output {dest} exists and is not a directory")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=parent))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; a build is an ordinary directory
    except OSError as exc:
        raise SnnhwError(f"cannot create the build directory next to {dest}: {exc.strerror}") from None
    try:
        yield tmp
        old = None
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=parent))
            os.rename(dest, old / "build")
        os.rename(tmp, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_manifest(build: Path, fixed: Graph, files: list[str], extra: dict) -> None:
    manifest = {
        "snnhw_version": __version__,
        "target": fixed.target,
        "input": {"name": fixed.input.name, "shape": list(fixed.input.shape), "bits": fixed.input.bits,
                  "scale": fixed.input.scale},
        "layers": [n.name for n in fixed.neurons],
        "output": fixed.output.name,
        "files": {f: sha256(build / f) for f in sorted(files)},
        **extra,
    }
    write_json(build / MANIFEST, manifest)


def read_manifest(build: Path) -> dict:
    build = Path(build)
    path = build / MANIFEST
    if not build.is_dir():
        raise SnnhwError(f"build directory {build} does not exist; create it with `snnhw compile`")
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InvalidFileError(f"{build} is not an snnhw build (no {MANIFEST}); create it with `snnhw compile`") from None
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise InvalidFileError(f"{path} is corrupt ({type(exc).__name__}); recompile the build") from None
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        raise InvalidFileError(f"{path} is malformed; recompile the build")
    return data


def load_build(build: Path, which: str = FIXED_IR) -> tuple[Graph, dict]:
    """The IR of a build (checked against the manifest's hash) and the manifest."""
    manifest = read_manifest(build)
    path = Path(build) / which
    want = manifest["files"].get(which)
    if not path.is_file():
        raise InvalidFileError(f"{path} is missing; recompile the build")
    if want != sha256(path):
        raise InvalidFileError(f"{path} does not match its hash in {MANIFEST} (modified or corrupt); recompile")
    return load(path), manifest
