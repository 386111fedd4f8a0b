"""The main demo (`make demo`): train a digits SNN in snntorch, compile it, run it, compare.

1. trains the 64-100-10 Leaky MLP of examples/digits_mlp.py on sklearn digits (offline, ~15 s);
2. `snnhw compile` for the emulator and for Loihi;
3. `snnhw run` on the test set (emulator) and on a few samples in Lava's fixed_pt simulation;
4. prints float vs fixed-point accuracy and whether Lava and the emulator agree bit for bit.
"""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import digits_mlp  # noqa: E402

from snnhw.cli import main as snnhw  # noqa: E402

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else "demo-build")
LAVA_SAMPLES = 5


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
    np.save(OUT / "lava_x.npy", x[:, :LAVA_SAMPLES])
    cli("compile", OUT / "digits_mlp.pt", "--arch", arch, "--target", "emu", "--calib", OUT / "test_x.npy",
        "-o", OUT / "emu")
    cli("run", OUT / "emu", "--input", OUT / "test_x.npy", "-o", OUT / "emu_out.npz")
    cli("compile", OUT / "digits_mlp.pt", "--arch", arch, "--target", "loihi", "--calib", OUT / "test_x.npy",
        "-o", OUT / "loihi")
    cli("run", OUT / "loihi", "--input", OUT / "lava_x.npy", "-o", OUT / "lava_out.npz")
    cli("run", OUT / "loihi", "--target", "emu", "--input", OUT / "lava_x.npy", "-o", OUT / "lava_emu_out.npz")

    net = digits_mlp.Net()
    net.load_state_dict(torch.load(OUT / "digits_mlp.pt", weights_only=True))
    with torch.no_grad():
        float_acc = digits_mlp.accuracy(net(torch.from_numpy(x[0])).numpy(), y)
    fixed_acc = digits_mlp.accuracy(np.load(OUT / "emu_out.npz")["output"], y)
    lava, emu = np.load(OUT / "lava_out.npz"), np.load(OUT / "lava_emu_out.npz")
    same = all(np.array_equal(lava[k], emu[k]) for k in lava.files)
    print("\nsummary")
    print(f"  snntorch float accuracy   {float_acc:.4f}  ({len(y)} test digits, 25 steps)")
    print(f"  emulator fixed accuracy   {fixed_acc:.4f}  (8-bit weights, 24-bit state)")
    print(f"  Lava fixed_pt == emulator {'yes, bit for bit' if same else 'NO'}  ({LAVA_SAMPLES} samples, all layers)")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
