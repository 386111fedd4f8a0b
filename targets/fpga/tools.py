"""Running the external RTL tools (iverilog/vvp, verilator, yosys): supervised, with a timeout.

Each tool runs in its own process group; on timeout the whole group is killed. Failures become one
line of :class:`SnnhwError` naming the tool and its first error line.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from snnhw.errors import SnnhwError


@dataclass(frozen=True)
class ToolResult:
    returncode: int
    stdout: str
    stderr: str


def require(tool: str) -> str:
    """Path of ``tool`` on PATH, or a clear error saying how to install it."""
    path = shutil.which(tool)
    if path is None:
        raise SnnhwError(f"the fpga target needs `{tool}` on PATH (Debian: apt-get install iverilog verilator yosys)")
    return path


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_tool(args: list[str], cwd: Path, timeout: float, what: str, check: bool = True) -> ToolResult:
    """Run ``args`` in ``cwd``; raise SnnhwError (one line) on timeout or, if ``check``, a non-zero exit."""
    require(args[0])
    proc = subprocess.Popen(args, cwd=str(cwd), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        proc.communicate()
        raise SnnhwError(f"{what} did not finish within {timeout:g} s and was stopped; run fewer timesteps or "
                         "samples, or raise SNNHW_FPGA_TIMEOUT") from None
    finally:
        _kill_group(proc)
    if check and proc.returncode != 0:
        lines = [ln.strip() for ln in (err + "\n" + out).splitlines() if ln.strip()]
        first = next((ln for ln in lines if "error" in ln.lower()), lines[0] if lines else f"exit code {proc.returncode}")
        raise SnnhwError(f"{what} failed: {first}")
    return ToolResult(proc.returncode, out, err)
