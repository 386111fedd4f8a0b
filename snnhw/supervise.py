"""Run an external program so that it can never hang snnhw or outlive it.

Simulators (Lava's forked processes, Icarus, Verilator, yosys) run in a new session with a
timeout; afterwards the whole process group is killed, whatever happened (an error, Ctrl-C, or
SIGTERM, which the CLI turns into an exception: snnhw.safety), so no child is left behind; a
timeout becomes one clear SnnhwError.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass

from snnhw.errors import SnnhwError

REAP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: str
    stderr: str


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def run_supervised(args: list[str], timeout: float, what: str, hint: str, cwd=None) -> Finished:
    """Run ``args``; on timeout raise "<what> did not finish within N s and was stopped; <hint>".

    The program gets a private ``TMPDIR`` (``snnhw-c*``, short: Lava's multiprocessing puts a unix
    socket in it), removed with everything in it once its process group is gone, so temporary files
    of the tools (Lava's ``pymp-*``, ...) never remain.
    """
    scratch = tempfile.mkdtemp(prefix="snnhw-c")
    try:
        proc = subprocess.Popen(args, cwd=None if cwd is None else str(cwd), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True, text=True, errors="replace",
                                env={**os.environ, "TMPDIR": scratch})
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            raise SnnhwError(f"{what} did not finish within {timeout:g} s and was stopped; {hint}") from None
        finally:
            _kill_group(proc)  # children it forked, whatever happened (an exception, Ctrl-C or SIGTERM too)
            _reap(proc)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return Finished(proc.returncode, out, err)


def _reap(proc: subprocess.Popen) -> None:
    """Wait for the killed leader, so it is gone before its temporary files are removed."""
    with contextlib.suppress(subprocess.TimeoutExpired):  # SIGKILL is not ignorable: a bound, not an expectation
        proc.wait(timeout=REAP_TIMEOUT_S)
