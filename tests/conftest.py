"""Shared fixtures: small snntorch models and fixed-point graphs."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

# Property tests are reproducible: no example database (CI starts from a clean checkout, so a
# local database would make local and CI runs differ) and derandomized generation.
settings.register_profile("snnhw", database=None, derandomize=True)
settings.load_profile("snnhw")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
os.environ.setdefault("PYTHONHASHSEED", "0")


@pytest.fixture(autouse=True)
def no_fpga_synthesis_unless_asked(monkeypatch):
    """fpga builds skip yosys, nextpnr and the gate-level check (minutes per build on this suite's
    examples): tests check the RTL against the emulator, and tests/test_fpga.py and
    tests/test_pnr.py synthesize, place and route on purpose (``emit(synthesize=True)``, or by
    setting ``SNNHW_FPGA_SYNTH`` themselves)."""
    monkeypatch.setenv("SNNHW_FPGA_SYNTH", "0")


@pytest.fixture(scope="session")
def digits_model(tmp_path_factory):
    """A digits MLP trained for 3 epochs (state_dict path, arch spec, test inputs, labels)."""
    import digits_mlp
    import torch
    out = tmp_path_factory.mktemp("digits")
    net = digits_mlp.train(epochs=3)
    _, x_test, _, y_test = digits_mlp.load_digits_split()
    torch.save(net.state_dict(), out / "digits_mlp.pt")
    x = digits_mlp.direct_encoding(x_test[:60])
    np.save(out / "x.npy", x)
    np.save(out / "y.npy", y_test[:60])
    return {"dir": out, "pt": out / "digits_mlp.pt", "arch": f"{ROOT / 'examples' / 'digits_mlp.py'}:Net",
            "x": out / "x.npy", "labels": y_test[:60], "net": net}


def run_cli(*args) -> tuple[int, str, str]:
    """Run the CLI in a subprocess (as a user would); return (exit code, stdout, stderr)."""
    import subprocess
    proc = subprocess.run([sys.executable, "-m", "snnhw.cli", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"}, timeout=600)
    return proc.returncode, proc.stdout, proc.stderr
