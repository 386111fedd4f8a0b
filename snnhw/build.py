"""The build directory: written atomically, described by ``manifest.json``.

A build holds ``model.onnx`` (the fixed-point IR), ``float.onnx`` (the float IR it came from, for
verification), ``manifest.json`` and the target's own artifacts. It is written into a temporary
sibling directory and renamed into place only when complete, so a failed or killed compile leaves
no build directory and never destroys an existing one.

Output directories (builds and report folders) replace an existing directory only when snnhw wrote
it: a build is recognised by its ``manifest.json`` (which lists every file), a report folder by its
``report.json``; any other file in it, a symbolic link, or a folder snnhw did not write is refused
(docs/security.md). The final swap happens under an exclusive lock on the parent folder, with
SIGINT/SIGTERM held back for its two renames, so racing compiles never leave ``.X.old-*`` behind.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import tempfile
from contextlib import contextmanager
from pathlib import Path

from snnhw import __version__
from snnhw.errors import InvalidFileError, SnnhwError
from snnhw.ir import Graph, load
from snnhw.safety import is_control, one_line, writable_folder

MANIFEST = "manifest.json"
FIXED_IR = "model.onnx"
FLOAT_IR = "float.onnx"
MAPPING = "mapping.json"
REPORT_FILES = ("report.html", "report.json")
OUTPUT_KINDS = {"build": ("an snnhw build", "builds"), "report": ("an snnhw report folder", "report folders")}


def write_json(path: Path, data) -> None:
    """Deterministic JSON (sorted keys, fixed indentation, trailing newline)."""
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ----------------------------------------------------------------------------- what snnhw wrote
def _json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return None


def _written_files(folder: Path, kind: str) -> set | None:
    """Relative paths snnhw wrote into ``folder`` as an output of ``kind`` (None: not one)."""
    if kind == "build":
        m = _json(folder / MANIFEST)
        if isinstance(m, dict) and "snnhw_version" in m and isinstance(m.get("files"), dict):
            return set(m["files"]) | {MANIFEST}
        return None
    r = _json(folder / "report.json")
    return set(REPORT_FILES) if isinstance(r, dict) and "counts" in r and "target" in r else None


def _present_files(folder: Path) -> set:
    """Every file and symbolic link under ``folder`` (relative POSIX paths; links are not followed)."""
    found = set()

    def fail(exc):
        raise exc

    for root, dirs, files in os.walk(folder, onerror=fail):
        rel = Path(root).relative_to(folder)
        found.update((rel / f).as_posix() for f in files)
        found.update((rel / d).as_posix() for d in dirs if os.path.islink(os.path.join(root, d)))
    return found


def _replace_problem(dest: Path, kind: str) -> str | None:
    """Why ``dest`` may not be replaced by a new output of ``kind`` (None: it may)."""
    if dest.is_symlink():
        return "is a symbolic link; name the real directory or a new path"
    if not dest.exists():
        return None
    if not dest.is_dir():
        return "exists and is not a directory"
    try:
        present = _present_files(dest)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if not present:
        return None  # an empty folder: nothing to lose
    known = _written_files(dest, kind)
    if known is None:
        other = next((k for k in OUTPUT_KINDS if k != kind and _written_files(dest, k) is not None), None)
        what = OUTPUT_KINDS[other][0] if other else "a folder snnhw did not write"
        return (f"is {what}; this command replaces only {OUTPUT_KINDS[kind][1]} snnhw wrote; "
                "choose another path or remove it yourself")
    extra = sorted(present - known)
    if extra:
        more = f" and {len(extra) - 1} more" if len(extra) > 1 else ""
        return (f"holds files snnhw did not write ({extra[0]}{more}); move them out, remove the folder "
                "yourself or choose another path")
    return None


def _first_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output_dir(dest, kind: str, flag: str = "-o") -> None:
    """Refuse before any work an output folder that cannot be written or would destroy user data."""
    dest = Path(os.path.abspath(dest))
    cwd = Path.cwd().resolve()
    if dest.resolve() == cwd or dest.resolve() in cwd.parents:
        raise SnnhwError(f"{flag} {dest}: it is the current directory or contains it; name a new folder")
    problem = _replace_problem(dest, kind)
    if problem:
        raise SnnhwError(f"{flag} {dest}: {problem}")
    base = _first_existing(dest.parent)
    if not base.is_dir():
        raise SnnhwError(f"{flag} {dest}: {base} is not a directory")
    cannot = writable_folder(base)
    if cannot:
        raise SnnhwError(f"{flag} {dest}: cannot write in {base} ({cannot})")


@contextmanager
def _exclusive(folder: Path):
    """An exclusive lock on ``folder`` (flock on the directory itself: no lock file left behind)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextmanager
def _signals_held():
    """Hold SIGINT/SIGTERM back for a few renames; they are delivered when the block ends."""
    held = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _install(tmp: Path, dest: Path, kind: str) -> None:
    """Rename ``tmp`` to ``dest``, replacing ``dest`` only if snnhw wrote it (checked under the lock)."""
    with _exclusive(dest.parent), _signals_held():
        problem = _replace_problem(dest, kind)
        if problem:
            raise SnnhwError(f"output {dest} {problem}")
        if not dest.exists():
            os.rename(tmp, dest)
            return
        old = dest.parent / f".{dest.name}.old-{os.getpid()}"
        os.rename(dest, old)
        try:
            os.rename(tmp, dest)
        except BaseException:
            os.rename(old, dest)
            raise
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_dir(dest: Path, kind: str = "build"):
    """Yield a temporary directory that replaces ``dest`` only if the block succeeds.

    kind: ``build`` or ``report``; an existing ``dest`` is replaced only if it is that kind of
    snnhw output with no foreign files in it (see :func:`check_output_dir`).
    """
    dest = Path(os.path.abspath(dest))
    check_output_dir(dest, kind, "output")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; a build is an ordinary directory
    except OSError as exc:
        raise SnnhwError(f"cannot create the output directory next to {dest}: {exc.strerror}") from None
    try:
        yield tmp
        try:
            _install(tmp, dest, kind)
        except OSError as exc:
            raise SnnhwError(f"cannot put the output in place at {dest}: {exc.strerror}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------- manifest
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
    except (ValueError, OSError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InvalidFileError(f"{path} is corrupt ({type(exc).__name__}); recompile the build") from None
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict) or \
            not all(isinstance(k, str) and isinstance(v, str) for k, v in data["files"].items()):
        raise InvalidFileError(f"{path} is malformed; recompile the build")
    _check_manifest_text(data, path)
    from snnhw.targets import available
    target = data.get("target")
    if not isinstance(target, str) or target not in available():
        raise InvalidFileError(f"{path} names no known target ({str(target)[:40]!r}; known: "
                               f"{', '.join(available())}); recompile the build")
    inp = data.get("input")
    if not isinstance(inp, dict) or not isinstance(inp.get("shape"), list) or not isinstance(data.get("snnhw_version"), str):
        raise InvalidFileError(f"{path} lacks its input description or version; recompile the build")
    return data


def _check_manifest_text(data, path: Path) -> None:
    """Refuse control characters anywhere in the manifest and file entries that leave the build."""
    def strings(v):
        found, stack = [], [v]
        while stack:
            x = stack.pop()
            if isinstance(x, str):
                found.append(x)
            elif isinstance(x, dict):
                stack.extend(x.keys())
                stack.extend(x.values())
            elif isinstance(x, list):
                stack.extend(x)
        return found

    for text in strings(data):
        if any(is_control(ch) for ch in text):
            raise InvalidFileError(f"{path} holds text with control characters ({one_line(text)[:60]}); recompile the build")
    for f in data["files"]:
        p = Path(f)
        if p.is_absolute() or ".." in p.parts or not p.parts:
            raise InvalidFileError(f"{path} lists {f[:60]!r}, which is outside the build; recompile the build")


def load_build(build: Path, which: str = FIXED_IR) -> tuple[Graph, dict]:
    """The IR of a build (checked against the manifest's hash) and the manifest."""
    manifest = read_manifest(build)
    path = Path(build) / which
    want = manifest["files"].get(which)
    if path.is_symlink():
        raise InvalidFileError(f"{path} is a symbolic link; a build holds its own files; recompile the build")
    if not path.is_file():
        raise InvalidFileError(f"{path} is missing; recompile the build")
    if want != sha256(path):
        raise InvalidFileError(f"{path} does not match its hash in {MANIFEST} (modified or corrupt); recompile")
    g = load(path)
    kind = "float" if which == FLOAT_IR else "fixed"
    if g.kind != kind or (kind == "fixed" and g.target != manifest["target"]):
        raise InvalidFileError(f"{path} holds a {g.kind} IR for target {g.target or 'none'}, not the {kind} IR "
                               f"of a {manifest['target']} build; recompile the build with `snnhw compile`")
    return g, manifest
