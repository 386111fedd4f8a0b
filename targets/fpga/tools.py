"""Running the external RTL tools (iverilog/vvp, verilator, yosys): supervised, with a timeout.

Each tool runs in its own process group; on timeout the whole group is killed. Failures become one
line of :class:`SnnhwError` naming the tool and its first error line.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

from snnhw.errors import SnnhwError
from snnhw.supervise import Finished, run_supervised


def find(tool: str) -> str | None:
    """Path of ``tool`` on PATH or beside this Python (a virtual environment's ``bin``, where pip puts
    the YoWASP tools of the ``ecp5`` extra), or None."""
    return shutil.which(tool) or shutil.which(tool, path=str(Path(sys.executable).parent))


def require(tool: str) -> str:
    """Path of ``tool`` (see :func:`find`), or a clear error saying how to install it."""
    path = find(tool)
    if path is None:
        raise SnnhwError(f"the fpga target needs `{tool}` on PATH (Debian: apt-get install iverilog verilator yosys "
                         "nextpnr-ice40 fpga-icestorm; pip install 'snnhw[ecp5]' for the ECP5 flow; or `make install`)")
    return path


def run_tool(args: list[str], cwd: Path, timeout: float, what: str, check: bool = True) -> Finished:
    """Run ``args`` in ``cwd``; raise SnnhwError (one line) on timeout or, if ``check``, a non-zero exit."""
    args = [require(args[0]), *args[1:]]
    done = run_supervised(args, timeout, what, "run fewer timesteps or samples, or raise SNNHW_FPGA_TIMEOUT", cwd)
    if check and done.returncode != 0:
        lines = [ln.strip() for ln in (done.stderr + "\n" + done.stdout).splitlines() if ln.strip()]
        first = next((ln for ln in lines if "error" in ln.lower()), lines[0] if lines else f"exit code {done.returncode}")
        raise SnnhwError(f"{what} failed: {first}")
    return done
