"""The main demo (`make demo`): train a digits SNN in snntorch, compile it, run it, compare.

1. trains the 64-100-10 Leaky MLP of examples/digits_mlp.py on sklearn digits (offline, ~15 s);
2. `snnhw compile` for the emulator, for Loihi and for the FPGA (Verilog + yosys resource report);
3. `snnhw run` on the test set (emulator), and on a few samples in Lava's fixed_pt simulation and in
   the RTL simulation, each next to the emulator running the same build;
4. prints float vs fixed-point accuracy and whether Lava, the RTL and the emulator agree bit for bit.
"""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import digits_mlp  # noqa: E402

from snnhw.cli import main as snnhw  # noqa: E402

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else "demo-build")
BACKEND_SAMPLES = 5


def cli(*args) -> None:
    print(f"\n$ snnhw {' '.join(shlex.quote(str(a)) for a in args)}")
    rc = snnhw([str(a) for a in args])
    if rc != 0:
        sys.exit(rc)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    print("training the digits MLP in snntorch ...")
    digits_mlp.main(str(OUT))
    arch = f"{Path(digits_mlp.__file__)}:Net"
    x, y = np.load(OUT / "test_x.npy"), np.load(OUT / "test_y.npy")
    np.save(OUT / "few_x.npy", x[:, :BACKEND_SAMPLES])
    cli("compile", OUT / "digits_mlp.pt", "--arch", arch, "--target", "emu", "--calib", OUT / "test_x.npy",
        "-o", OUT / "emu")
    cli("run", OUT / "emu", "--input", OUT / "test_x.npy", "-o", OUT / "emu_out.npz")
    same = {}
    for target in ("loihi", "fpga"):
        cli("compile", OUT / "digits_mlp.pt", "--arch", arch, "--target", target, "--calib", OUT / "test_x.npy",
            "-o", OUT / target)
        cli("run", OUT / target, "--input", OUT / "few_x.npy", "-o", OUT / f"{target}_out.npz")
        cli("run", OUT / target, "--target", "emu", "--input", OUT / "few_x.npy", "-o", OUT / f"{target}_emu_out.npz")
        hw, emu = np.load(OUT / f"{target}_out.npz"), np.load(OUT / f"{target}_emu_out.npz")
        same[target] = all(np.array_equal(hw[k], emu[k]) for k in hw.files)

    net = digits_mlp.Net()
    net.load_state_dict(torch.load(OUT / "digits_mlp.pt", weights_only=True))
    with torch.no_grad():
        float_acc = digits_mlp.accuracy(net(torch.from_numpy(x[0])).numpy(), y)
    fixed_acc = digits_mlp.accuracy(np.load(OUT / "emu_out.npz")["output"], y)
    fpga = json.loads((OUT / "fpga" / "fpga_report.json").read_text())
    ice = fpga["synthesis"].get("ice40", {})
    print("\nsummary")
    print(f"  snntorch float accuracy   {float_acc:.4f}  ({len(y)} test digits, 25 steps)")
    print(f"  emulator fixed accuracy   {fixed_acc:.4f}  (8-bit weights, 24-bit state, calibrated)")
    for target, name in (("loihi", "Lava fixed_pt"), ("fpga", "RTL simulation")):
        verdict = "yes, bit for bit" if same[target] else "NO"
        print(f"  {name:<15} == emulator {verdict}  ({BACKEND_SAMPLES} samples, all layers)")
    if ice:
        print(f"  iCE40 synthesis           {ice['lut']} LUT, {ice['ff']} FF, {ice['bram']} BRAM, {ice['dsp']} DSP "
              f"(yosys synth_ice40 -dsp; details in {OUT / 'fpga' / 'fpga_report.json'})")
    placed = fpga.get("place_and_route", {}).get("iCE40 UP5K")
    if isinstance(placed, dict) and placed.get("fits"):
        print(f"  iCE40 UP5K place & route  Fmax {placed['fmax_mhz']} MHz (nextpnr), bitstream {placed['bitstream']}")
    if not all(same.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
