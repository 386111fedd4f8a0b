"""Weight memory of the fpga conv cores vs the unrolled Dense, on the snntorch SAE tutorial's encoder.

The encoder of snntorch's spiking autoencoder tutorial (its three stride-2 3x3 convolutions, 1 -> 32
-> 64 -> 128 channels on 1x32x32, then Linear(2048, 32); BatchNorm left out, random weights, seed 0)
is saved as a state dict and compiled with ``snnhw compile --target fpga`` (no synthesis). Printed
per layer, all measured in this run: the real weights, the words of the conv core's weight memory
(``fpga_report.json``: words x lanes), the words the same layer needs unrolled into the Dense the
``conv-to-dense`` pass makes (Cout*Ho*Wo x C*H*W, what fpga built before), their ratio, and the
cycles per timestep of the design from the report (no events / every neuron active).

    .venv/bin/python benchmarks/fpga_conv_memory.py [--lanes P]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ARCH = '''
import snntorch as snn
import torch.nn as nn


class Encoder(nn.Sequential):
    def __init__(self):
        leaky = lambda: snn.Leaky(beta=0.9, init_hidden=True)
        super().__init__(nn.Conv2d(1, 32, 3, padding=1, stride=2), leaky(),
                         nn.Conv2d(32, 64, 3, padding=1, stride=2), leaky(),
                         nn.Conv2d(64, 128, 3, padding=1, stride=2), leaky(),
                         nn.Flatten(), nn.Linear(128 * 4 * 4, 32), leaky())
'''


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lanes", default="8", help="synapse lanes P (SNNHW_FPGA_LANES)")
    args = ap.parse_args(argv)
    import torch
    with tempfile.TemporaryDirectory(prefix="snnhw-conv-mem-") as tmp:
        tmp = Path(tmp)
        (tmp / "sae_encoder.py").write_text(ARCH)
        sys.path.insert(0, str(tmp))
        import sae_encoder
        torch.manual_seed(0)
        net = sae_encoder.Encoder()
        torch.save(net.state_dict(), tmp / "enc.pt")
        env = {**os.environ, "SNNHW_FPGA_SYNTH": "0", "SNNHW_FPGA_LANES": str(args.lanes)}
        cmd = [sys.executable, "-m", "snnhw.cli", "compile", str(tmp / "enc.pt"), "--arch",
               f"{tmp / 'sae_encoder.py'}:Encoder", "--input-shape", "1,32,32", "--target", "fpga", "-o", str(tmp / "b")]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode:
            print(proc.stderr.strip())
            return proc.returncode
        report = json.loads((tmp / "b" / "fpga_report.json").read_text())
        convs = [m for m in net if isinstance(m, torch.nn.Conv2d)]
        shapes, hw = [], 32
        for m in convs:
            out = (hw + 2 * m.padding[0] - m.kernel_size[0]) // m.stride[0] + 1
            shapes.append((m.in_channels * hw * hw, m.out_channels * out * out))
            hw = out
        print(f"snntorch SAE encoder on fpga, P = {args.lanes}: `snnhw compile ... --input-shape 1,32,32 --target fpga`")
        print(f"{'layer':<8}{'weights':>10}{'conv core words':>18}{'unrolled words':>16}{'ratio':>10}")
        for k, (m, layer) in enumerate(zip(convs, report["cycles"]["layers"])):
            real = int(np.prod(m.weight.shape))
            stored = layer["weight_words"] * layer["lanes"]
            unrolled = shapes[k][0] * shapes[k][1]
            print(f"conv{k + 1:<4}{real:>10,}{stored:>18,}{unrolled:>16,}{unrolled / stored:>9,.0f}x")
        c = report["cycles"]
        print(f"cycles per step: {c['cycles_per_step_no_events']:,} (no events), "
              f"{c['cycles_per_step_all_active']:,} (every neuron active); "
              f"max_weight_words per core: 4,194,304 (the unrolled conv1 is refused)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
