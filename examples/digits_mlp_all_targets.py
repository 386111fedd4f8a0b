"""Digits MLP (64-100-10 Leaky, examples/digits_mlp.py) deployed on emu, loihi and fpga with `snnhw verify`.

Trains the MLP in snntorch on sklearn's bundled digits (direct encoding, 25 steps), then runs
``snnhw verify --targets <t> --json`` through the CLI for each target and prints the snntorch,
float IR and deployed (fixed-point) accuracy, the builds calibrated on 200 training digits (never on the
scored ones). The emulator takes the whole test set; Lava
(~1 s per sample) and the RTL simulation run on the first ``--backend-samples`` test digits,
where verify also requires them to equal the emulator bit for bit.

    python examples/digits_mlp_all_targets.py [--epochs 15] [--backend-samples 20] [--out DIR]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import digits_mlp  # noqa: E402

from snnhw.cli import main as snnhw  # noqa: E402

CALIB_SAMPLES = 200  # training digits that calibrate the input and state ranges


def verify_json(*args) -> tuple[int, dict]:
    """``snnhw verify ... --json`` in this process; its exit code and report."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = snnhw(["verify", *map(str, args), "--json"])
    if rc not in (0, 1, 3):
        raise SystemExit(f"snnhw verify failed with exit code {rc}")
    return rc, json.loads(buf.getvalue())


def run(epochs: int, emu_samples: int | None, backend_samples: int, out: Path) -> dict:
    """Train, save, verify on each target; return ``{target: {samples, snntorch, float_ir, deployed, bit_exact, passed}}``."""
    out.mkdir(parents=True, exist_ok=True)
    net = digits_mlp.train(epochs=epochs)
    x_train, x_test, _, y_test = digits_mlp.load_digits_split()
    pt = out / "digits_mlp.pt"
    torch.save(net.state_dict(), pt)
    arch = f"{Path(digits_mlp.__file__).resolve()}:Net"
    x = digits_mlp.direct_encoding(x_test)
    np.save(out / "calib.npy", digits_mlp.direct_encoding(x_train[:CALIB_SAMPLES]))  # apart from the scored digits
    results = {}
    for target, n in (("emu", emu_samples or x.shape[1]), ("loihi", backend_samples), ("fpga", backend_samples)):
        np.save(out / f"x_{target}.npy", x[:, :n])
        np.save(out / f"y_{target}.npy", y_test[:n])
        rc, rep = verify_json(pt, "--arch", arch, "--input", out / f"x_{target}.npy",
                              "--labels", out / f"y_{target}.npy", "--calib", out / "calib.npy", "--targets", target)
        e = rep["targets"][target]
        results[target] = {"samples": n, "snntorch": rep["snntorch"]["accuracy"],
                           "float_ir": rep["float_ir"]["accuracy"], "deployed": e["accuracy"],
                           "bit_exact": None if e["backend"] is None else e["backend"]["bit_exact"],
                           "passed": rc == 0}
    return results


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--emu-samples", type=int, default=None, help="test digits on emu (default: all 450)")
    p.add_argument("--backend-samples", type=int, default=20, help="test digits for Lava and the RTL simulation")
    p.add_argument("--out", type=Path, default=None, help="directory for the model and inputs (default: temporary)")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        results = run(a.epochs, a.emu_samples, a.backend_samples, a.out or Path(tmp))
    from deploy import print_deployment
    print_deployment(f"digits MLP 64-100-10, {a.epochs} epochs, 25 steps, direct encoding "
                     f"(loihi/fpga: first {a.backend_samples} test digits only)", results)
    return results


if __name__ == "__main__":
    main()
