"""FPGA throughput of the generated design, measured: images/s at the achieved Fmax, beside peers.

For the digits MLP (examples/digits_mlp.py, 64-100-10 Leaky, 25 steps, direct-encoded pixels as
8-bit graded input), in one run:
1. trains it in snntorch (offline, ~15 s) and compiles it for the fpga target with synthesis, place
   and route (yosys + nextpnr-ice40 on an iCE40 UP5K, seed 1);
2. simulates the generated RTL on test images and takes the cycle counts the RTL itself reports
   (step pulse to ready, plus one cycle per streamed input event), so the cycles are measured, not
   modelled;
3. prints images/s = Fmax / cycles per image, with LUT/FF/BRAM/DSP and the deployed accuracy (the
   emulator on the whole test set; the RTL equals the emulator bit for bit on the simulated images).

``--tutorial`` adds the snntorch tutorial's 784-1000-10 (random weights, 15 % input spike rate):
synthesis only (its 6.3 Mbit of weights fit no device with an open place-and-route flow here, so no
Fmax is claimed; cycles per image are given).

Published figures beside it (their own tasks, devices and tools; see the sources):
Spiker+ MNIST 780 us/image at 7,612 logic cells and 18 BRAM (arXiv 2401.01141); Flexi-NeurA
97.23 %, 1,623 logic cells, 1.1 ms (arXiv 2602.18140); hls4ml SNN about 34 us per inference on
SHD, Vitis HLS (arXiv 2606.10008).

    .venv/bin/python benchmarks/fpga_throughput.py [--images N] [--tutorial]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import digits_mlp  # noqa: E402

from snnhw.compiler.pipeline import CompileOptions, compile_graph  # noqa: E402
from snnhw.frontends.snntorch_trace import to_ir  # noqa: E402
from snnhw.targets import load  # noqa: E402
from snnhw.semantics import quantize_input  # noqa: E402
from snnhw.targets.emu.emulator import Emulator  # noqa: E402
from snnhw.targets.fpga.backend import BACKEND  # noqa: E402
from snnhw.targets.fpga.simulate import simulate  # noqa: E402

PEERS = (
    ("Spiker+ (MNIST, Xilinx)", 1e6 / 780, "7,612 LC, 18 BRAM", "arXiv 2401.01141"),
    ("Flexi-NeurA (MNIST)", 1e6 / 1100, "1,623 LC", "arXiv 2602.18140"),
    ("hls4ml SNN (SHD, Vitis HLS)", 1e6 / 34, "-", "arXiv 2606.10008"),
)


def measured_cycles(graph, build: Path, x: np.ndarray) -> np.ndarray:
    """Cycles per image the RTL of ``build`` reports: sum over steps of (step pulse to ready) + streamed
    input events."""
    x_int = quantize_input(graph, x).astype(np.int64)
    sim = simulate(BACKEND.plan(graph), sorted((build / "rtl").iterdir()), x_int)
    ref = Emulator(graph).run(x)
    for k, s in sim.spikes.items():
        if not np.array_equal(s, ref.spikes[k].reshape(s.shape)):
            raise SystemExit(f"RTL and emulator spikes differ in {k}")
    events = np.count_nonzero(x_int.reshape(x_int.shape[0], x_int.shape[1], -1), axis=2).sum(axis=0)
    return sim.cycles.sum(axis=1) + events


def row(name, report, cycles, accuracy):
    s = report["synthesis"]["ice40"]
    pnr = report["place_and_route"].get("iCE40 UP5K")
    fmax = pnr["fmax_mhz"] if isinstance(pnr, dict) and pnr.get("fits") else None
    ips = fmax * 1e6 / cycles if fmax else None
    return (name, "iCE40 UP5K" if fmax else "(synthesis only)", f"{fmax:.2f}" if fmax else "-",
            f"{s['lut']}/{s['ff']}/{s['bram']}/{s['dsp']}", f"{cycles:,.0f}", f"{ips:,.0f}" if ips else "-",
            f"{accuracy:.4f}" if accuracy is not None else "-")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=8, help="test images simulated in RTL for the cycle counts")
    ap.add_argument("--tutorial", action="store_true", help="also synthesize the 784-1000-10 (minutes)")
    args = ap.parse_args()
    rows = []
    t0 = time.perf_counter()
    net = digits_mlp.train()
    _, x_test, _, y_test = digits_mlp.load_digits_split()
    x = digits_mlp.direct_encoding(x_test)
    g = compile_graph(to_ir(net, (64,)), load("fpga"), CompileOptions(input_bits=8, input_max=float(np.abs(x).max())))
    acc = digits_mlp.accuracy(Emulator(g).run(x).spikes[g.output.name], y_test)
    with tempfile.TemporaryDirectory() as tmp:
        BACKEND.emit(g, Path(tmp), synthesize=True)
        report = json.loads((Path(tmp) / "fpga_report.json").read_text())
        cycles = float(measured_cycles(g, Path(tmp), x[:, : args.images]).mean())
    rows.append(row("digits 64-100-10, 25 steps", report, cycles, acc))
    if args.tutorial:
        import snntorch as snn
        import torch
        torch.manual_seed(0)
        tut = torch.nn.Sequential(torch.nn.Linear(784, 1000), snn.Leaky(beta=0.95, init_hidden=True),
                                  torch.nn.Linear(1000, 10), snn.Leaky(beta=0.95, init_hidden=True))
        gt = compile_graph(to_ir(tut, (784,)), load("fpga"), CompileOptions())
        xt = (np.random.default_rng(0).random((25, 2, 784)) < 0.15).astype(np.int8)
        with tempfile.TemporaryDirectory() as tmp:
            BACKEND.emit(gt, Path(tmp), synthesize=True)
            rep_t = json.loads((Path(tmp) / "fpga_report.json").read_text())
            rows.append(row("784-1000-10, 25 steps", rep_t, float(measured_cycles(gt, Path(tmp), xt).mean()), None))
    head = ("network", "device", "Fmax MHz", "iCE40 LUT/FF/BRAM/DSP", "cycles/image", "images/s", "accuracy")
    print(" | ".join(head))
    for r in rows:
        print(" | ".join(r))
    print("\npublished (other tasks/devices/tools):")
    for name, ips, area, src in PEERS:
        print(f"  {name}: {ips:,.0f} images/s, {area} ({src})")
    print(f"\n(run took {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
