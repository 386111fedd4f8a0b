"""Guards against hostile or careless input (docs/security.md).

* Names from a model file (layer names, NIR node names) are data, never code: :func:`check_names`
  refuses control characters (newlines, escapes, bidi overrides) and absurd lengths at import, and
  generated code never contains them anyway (identifiers and comments derive from indices).
* Messages shown to the user are one line: :func:`one_line` escapes whatever control characters a
  message could still carry.
* SIGTERM (what ``timeout`` and CI runners send) unwinds like Ctrl-C: :func:`sigterm_unwinds`
  turns it into :class:`Terminated`, so every ``finally`` runs (child process groups killed,
  temporary directories and half-written outputs removed) and the CLI exits with 143.
* ``SNNHW_*_TIMEOUT`` variables must be positive numbers of seconds (:func:`check_environment`).
* Outputs never overlap inputs (:func:`check_disjoint`) and are written only where a real probe
  file can be created (:func:`writable_folder`).
* Worker processes get the IR with index names (:func:`with_index_names`), never the model's text.
"""
from __future__ import annotations

import math
import os
import signal
import tempfile
import unicodedata
from contextlib import contextmanager
from pathlib import Path

from snnhw.errors import InvalidFileError, SnnhwError

MAX_NAME_CHARS = 200        # longer layer names are not names; a generous bound for nested modules
SIGTERM_EXIT = 128 + signal.SIGTERM
TIMEOUT_VARIABLES = ("SNNHW_LAVA_TIMEOUT", "SNNHW_FPGA_TIMEOUT")


def is_control(ch: str) -> bool:
    """Control, format (bidi overrides, zero-width), surrogate, private and unassigned code points,
    and the line/paragraph separators."""
    return unicodedata.category(ch)[0] == "C" or unicodedata.category(ch) in ("Zl", "Zp")


def one_line(text) -> str:
    """``text`` with every control character written as an escape (``\\n``, ``\\x1b``, ``\\u202e``)."""
    return "".join(ch.encode("unicode_escape").decode("ascii") if is_control(ch) else ch for ch in str(text))


def name_problem(name) -> str | None:
    """Why ``name`` is not acceptable as a layer name, or None."""
    if not isinstance(name, str) or not name:
        return "is empty"
    if len(name) > MAX_NAME_CHARS:
        return f"is {len(name)} characters long (at most {MAX_NAME_CHARS})"
    bad = next((ch for ch in name if is_control(ch)), None)
    if bad is not None:
        return f"contains the control character {one_line(bad)} (U+{ord(bad):04X})"
    return None


def check_names(names, source) -> None:
    """Refuse a model whose layer names carry control characters or are absurdly long."""
    for name in names:
        problem = name_problem(name)
        if problem:
            shown = one_line(name if len(str(name)) <= 60 else str(name)[:60] + "...")
            raise InvalidFileError(f"{source}: layer name \"{shown}\" {problem}; rename the layer "
                                   "(letters, digits, '.', '_' are always safe)")


def with_index_names(g):
    """A copy of graph ``g`` whose nodes are named ``n0, n1, ...`` (no metadata), and the map from
    those names back to the user's: what a worker process gets instead of the model's text."""
    import copy
    indexed = copy.deepcopy(g)
    names = {n.name: f"n{i}" for i, n in enumerate(indexed.nodes)}
    for n in indexed.nodes:
        n.renamed(names)
    indexed.meta = {}
    return indexed, {v: k for k, v in names.items()}


class Terminated(BaseException):
    """SIGTERM arrived: unwind like KeyboardInterrupt (not an Exception, so nothing swallows it)."""


def _on_sigterm(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt the cleanup
    raise Terminated()


def _exit_on_sigterm(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(SIGTERM_EXIT)


def unwind_on_sigterm() -> None:
    """For worker processes: from now on SIGTERM raises ``SystemExit(143)``, so the worker's
    ``finally`` blocks kill its own children and remove its temporary files, and multiprocessing
    ends it quietly (no traceback)."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)


@contextmanager
def sigterm_unwinds():
    """Within the block SIGTERM raises :class:`Terminated` (main thread only; restored afterwards)."""
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread of the main interpreter: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def env_seconds(name: str) -> float | None:
    """The value of the timeout variable ``name`` in seconds, or None when unset or empty."""
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise SnnhwError(f"{name}={one_line(text)!r}: expected a positive number of seconds, e.g. {name}=600")
    return value


def check_environment() -> None:
    """Refuse garbage in the variables snnhw reads before any work starts."""
    for name in TIMEOUT_VARIABLES:
        env_seconds(name)


def writable_folder(folder: Path) -> str | None:
    """Why nothing can be created in ``folder`` (None: it can); tried for real, since permission bits
    do not tell (root, read-only mounts, /proc)."""
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".snnhw-probe-"):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def _resolved(p) -> Path:
    return Path(os.path.abspath(Path(p).expanduser())).resolve(strict=False)


def overlaps(a, b) -> bool:
    """Whether path ``a`` and path ``b`` are the same or one contains the other (symlinks resolved)."""
    ra, rb = _resolved(a), _resolved(b)
    return ra == rb or ra in rb.parents or rb in ra.parents


def check_disjoint(output, flag: str, inputs: dict) -> None:
    """Refuse an output that is, contains or lies inside one of ``inputs`` ({what: path})."""
    for what, path in inputs.items():
        if path is not None and overlaps(output, path):
            raise SnnhwError(f"{flag} {output} overlaps {what} {path}; write the output somewhere else")
