"""FPGA throughput of the generated design, measured: images/s at the achieved Fmax, beside peers.

For the digits MLP (examples/digits_mlp.py, 64-100-10 Leaky, 25 steps, direct-encoded pixels as
8-bit graded input), in one run:
1. trains it in snntorch (offline, ~15 s) and compiles it for the fpga target with P synapse lanes
   (``--lanes``, default auto), synthesis, gate-level check, place and route (yosys +
   nextpnr-ice40 on an iCE40 UP5K, seed 1) and bitstream;
2. simulates the generated RTL on test images and takes the cycle counts the RTL itself reports
   (step pulse to ready, plus one cycle per streamed input event), and checks every step's count
   against the cycle formula (targets/fpga/cycles.py);
3. prints images/s = Fmax / cycles per image, with LUT/FF/BRAM/DSP and the deployed accuracy (the
   emulator on the whole test set; the RTL equals the emulator bit for bit on the simulated images).

``--weight-memory spram`` keeps the digits MLP's weights in the UP5K's SPRAM instead of block RAM
(loaded from the SPI flash at power-up: the load's cycles, measured in the RTL, are printed apart from
the cycles per step). ``--spram-mlp N:BITS:P[,...]`` places and routes a 784-N-10 MLP (the tutorial's
network with N hidden neurons, seeded random weights, BITS-bit weights, P lanes) with its first
layer in SPRAM on the UP5K: LC, Fmax, gate-level check, bitstream, load cycles, and images/s from
the cycle formula at 15 % input and 10 % hidden activity (784-166-10 at 8 bits, P = 2, and 784-332-10
at 4 bits, P = 4, are the largest whose first layer fits the four SPRAMs: 784 x ceil(N / P) rows of
16 bits <= 4 x 16,384).

The snntorch tutorial's 784-1000-10 is listed with its formula cycles per step and the reason it is
not placed on the UP5K (its 8-bit weights exceed the UP5K's block RAM and SPRAM); ``--ecp5`` places and
routes it at 4-bit weights (3.1 Mbit) on an ECP5 LFE5U-85F with ``--ecp5-lanes`` lanes (default 100)
and prints Fmax, utilization, the gate-level check, images/s at the achieved Fmax and the ratios to
Spiker+ (10-30 minutes more). P = 100 makes 10 neuron groups, so each lane's 10 x 784 = 7,840 weight
rows fit one 8K-deep DP16KD column; at P = 128 (8 x 784 rows of 512 bits) yosys cascades blocks in
depth and the read multiplexers nearly double the logic.

Published figures beside it (their own tasks, devices and tools; see the sources):
Spiker+ MNIST 780 us/image at 7,612 logic cells and 18 BRAM (arXiv 2401.01141); Flexi-NeurA
97.23 %, 1,623 logic cells, 1.1 ms (arXiv 2602.18140); hls4ml SNN about 34 us per inference on
SHD, Vitis HLS (arXiv 2606.10008).

    .venv/bin/python benchmarks/fpga_throughput.py [--images N] [--lanes auto|P|P1,P2,...] [--ecp5 [--ecp5-lanes P]]
        [--weight-memory auto|ebr|spram] [--spram-mlp N:BITS:P,...] [--no-gate-check]
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
from snnhw.targets.fpga.cycles import step_cycles  # noqa: E402
from snnhw.targets.fpga.simulate import simulate  # noqa: E402

STEPS = 25

SPIKER_LOGIC = 7612  # Spiker+ MNIST logic cells (arXiv 2401.01141)
PEERS = (
    ("Spiker+ (MNIST, Xilinx)", 1e6 / 780, "7,612 LC, 18 BRAM", "arXiv 2401.01141"),
    ("Flexi-NeurA (MNIST)", 1e6 / 1100, "1,623 LC", "arXiv 2602.18140"),
    ("hls4ml SNN (SHD, Vitis HLS)", 1e6 / 34, "-", "arXiv 2606.10008"),
)


def measured_cycles(graph, plan, build: Path, x: np.ndarray) -> tuple[np.ndarray, bool, int]:
    """Cycles per image the RTL of ``build`` reports (sum over steps of step pulse to ready, plus one
    cycle per streamed input event), whether every step's count equals the cycle formula
    (targets/fpga/cycles.py) evaluated on the emulator's event counts, and the cycles from reset to
    the first ready (the SPRAM weight load, once per power-up)."""
    x_int = quantize_input(graph, x).astype(np.int64)
    sim = simulate(plan, sorted((build / "rtl").iterdir()), x_int)
    ref = Emulator(graph).run(x)
    for k, s in sim.spikes.items():
        if not np.array_equal(s, ref.spikes[k].reshape(s.shape)):
            raise SystemExit(f"RTL and emulator spikes differ in {k}")
    T, B = x_int.shape[:2]
    counts = {graph.input.name: np.count_nonzero(x_int.reshape(T, B, -1), axis=2)}
    counts.update({k: v.reshape(T, B, -1).sum(axis=2) for k, v in ref.spikes.items()})
    lag = lambda name, d, t, b: int(counts[name][t - d, b]) if t >= d else 0
    formula = np.array([[step_cycles(plan, [lag(c.source.name, c.delay, t, b) for c in plan.cores],
                                     [lag(c.name, c.rec_delay, t, b) if c.has_rec else 0 for c in plan.cores])
                         for t in range(T)] for b in range(B)])
    events = counts[graph.input.name].sum(axis=0)
    return sim.cycles.sum(axis=1) + events, bool(np.array_equal(formula, sim.cycles)), sim.load_cycles


def row(name, plan, report, cycles, formula_ok, accuracy, load_cyc=None):
    s = report["synthesis"]["ice40"]
    pnr = report["place_and_route"].get("iCE40 UP5K")
    placed = isinstance(pnr, dict) and pnr.get("fits")
    fmax = pnr["fmax_mhz"] if placed else None
    lc = pnr["utilization"]["ICESTORM_LC"]["used"] if placed else "-"
    ips = fmax * 1e6 / cycles if fmax else None
    bits = "/".join(str(c.weight_bits) for c in plan.cores)
    lanes = "/".join(str(c.lanes) for c in plan.cores)
    memory = "/".join(c.weight_memory for c in plan.cores)
    return (name, "iCE40 UP5K" if fmax else "(synthesis only)", memory, lanes, bits, f"{lc}",
            f"{s['lut']}/{s['ff']}/{s['bram']}/{s['spram']}/{s['dsp']}", f"{fmax:.2f}" if fmax else "-",
            f"{cycles / STEPS:,.1f}" + (" (= formula)" if formula_ok else " (FORMULA MISMATCH)"),
            f"{ips:,.0f}" if ips else "-", f"{accuracy:.4f}" if accuracy is not None else "-",
            "yes" if placed and pnr.get("bitstream") else "no", _load(load_cyc, fmax))


def _load(cycles, fmax) -> str:
    """The SPRAM weight load: cycles (and ms at the achieved Fmax), once per power-up."""
    if not cycles:
        return "-"
    return f"{cycles:,}" + (f" ({cycles / (fmax * 1e3):.1f} ms)" if fmax else "")


TUTORIAL_EVENTS = (int(0.15 * 784), 100)  # input and hidden events a step at 15 % input activity


def tutorial_graph(weight_bits: int | None = None, hidden: int = 1000):
    """The snntorch tutorial's 784-1000-10 (Leaky, beta 0.95, seeded random weights) compiled for fpga
    (``hidden``: another hidden layer size, for the SPRAM rows)."""
    import snntorch as snn
    import torch
    torch.manual_seed(0)
    tut = torch.nn.Sequential(torch.nn.Linear(784, hidden), snn.Leaky(beta=0.95, init_hidden=True),
                              torch.nn.Linear(hidden, 10), snn.Leaky(beta=0.95, init_hidden=True))
    return compile_graph(to_ir(tut, (784,)), load("fpga"), CompileOptions(weight_bits=weight_bits))


def tutorial_row(lanes) -> tuple:
    """784-1000-10 at 8-bit weights: cycles/step from the formula at 15 % input activity; why it
    is not placed on the UP5K (weight memory), without synthesizing 6.3 Mbit of memory images."""
    gt = tutorial_graph()
    plan = BACKEND.plan(gt, lanes)
    bits = sum(c.weights.size * c.weight_bits for c in plan.cores)
    dev = next(d for d in load("fpga").raw["hardware"]["devices"] if d["name"] == "iCE40 UP5K")
    ebr_bits = dev["bram"] * 4096
    per_step = step_cycles(plan, list(TUTORIAL_EVENTS), [0, 0])
    why = (f"not placed: {bits / 1e6:.2f} Mbit of {plan.cores[0].weight_bits}-bit weights > the UP5K's "
           f"{dev['bram']} x 4 kbit = {ebr_bits // 1024} kbit of block RAM and its "
           f"{dev['spram']} x {dev['spram_words'] * dev['spram_width'] // 1024} kbit of SPRAM")
    return (f"784-1000-10 ({why})", "-", "-", "/".join(str(c.lanes) for c in plan.cores),
            "/".join(str(c.weight_bits) for c in plan.cores), "-", "-", "-",
            f"{per_step:,} (formula, {TUTORIAL_EVENTS[0]} input / {TUTORIAL_EVENTS[1]} hidden events)", "-", "-", "no", "-")


def spram_mlp_row(hidden: int, bits: int, lanes: int, gate_check: bool = True) -> tuple:
    """784-``hidden``-10 at ``bits``-bit weights on ``lanes`` lanes, weights where they fit (auto: the
    first layer in SPRAM), emitted with synthesis, place and route on the UP5K, gate-level check
    (load included) and bitstream; cycles/step from the formula at 15 % input and 10 % hidden
    activity (simulating the RTL would take minutes for its load alone). ``gate_check`` False skips
    the gate-level check (its 2.1 M-cycle load ran more than 20 min in Icarus here, unfinished): LC and Fmax only, and
    so no bitstream."""
    from snnhw.targets.fpga import pnr
    if not gate_check:
        pnr.gatelevel.check = lambda *a: {"equal": False, "checked": False, "reason": "skipped (--no-gate-check)"}
    gt = tutorial_graph(bits, hidden)
    plan = BACKEND.plan(gt, lanes, "auto")
    events = (TUTORIAL_EVENTS[0], hidden // 10)
    per_step = step_cycles(plan, list(events), [0, 0])
    from snnhw.targets.fpga.memory import load_cycles
    with tempfile.TemporaryDirectory() as tmp:
        BACKEND.emit(gt, Path(tmp), synthesize=True, lanes=lanes, weight_memory="auto")
        report = json.loads((Path(tmp) / "fpga_report.json").read_text())
    out = row(f"784-{hidden}-10 ({events[0]} input / {events[1]} hidden events a step)", plan, report,
              float(STEPS * (per_step + events[0])), True, None, load_cycles(plan))
    return out[:8] + (f"{per_step:,} (formula)",) + out[9:]


def tutorial_ecp5(lanes) -> str:
    """784-1000-10 at 4-bit weights placed and routed on the ECP5 LFE5U-85F (targets/fpga/pnr.py):
    achieved Fmax, nextpnr's utilization, the gate-level check, and images/s at that Fmax from the
    cycle formula at 15 % input activity (117 input, 100 hidden events a step; input streaming adds
    one cycle per input event). Takes a few minutes."""
    from snnhw.targets.fpga.pnr import place_and_route
    from snnhw.targets.fpga.render import write_design
    gt = tutorial_graph(4)
    plan = BACKEND.plan(gt, lanes)
    dev = next(d for d in load("fpga").raw["hardware"]["devices"] if d["flow"] == "ecp5")
    with tempfile.TemporaryDirectory() as tmp:
        write_design(plan, Path(tmp) / "rtl")
        res = place_and_route(plan, Path(tmp) / "rtl", dev, Path(tmp))
    if not res["fits"]:
        return f"784-1000-10, 4-bit weights, P = {plan.cores[0].lanes}: not placed on the {dev['name']}: {res['reason']}"
    per_step = step_cycles(plan, list(TUTORIAL_EVENTS), [0, 0])
    per_image = STEPS * (per_step + TUTORIAL_EVENTS[0])
    use = {k: f"{v['used']:,}/{v['available']:,}" for k, v in res["utilization"].items()
           if k in ("TRELLIS_COMB", "TRELLIS_FF", "DP16KD", "MULT18X18D")}
    gate = "equal" if res["gate_level"]["equal"] else f"DIFFERS ({res['gate_level']['reason']})"
    images = res["fmax_mhz"] * 1e6 / per_image
    comb = res["utilization"]["TRELLIS_COMB"]["used"]
    name, spiker_ips, _, src = PEERS[0]
    return (f"784-1000-10, 4-bit weights, P = {plan.cores[0].lanes}, {dev['name']}: Fmax {res['fmax_mhz']:.2f} MHz, "
            f"{', '.join(f'{k} {v}' for k, v in use.items())}; {per_step:,} cycles/step (formula); "
            f"{images:,.0f} images/s at 25 steps; gate-level check {gate}; "
            f"bitstream {res['bitstream'] or 'withheld'}\n"
            f"against {name} ({spiker_ips:,.0f} images/s, {SPIKER_LOGIC:,} logic cells, {src}): "
            f"{images / spiker_ips:.2f}x the images/s with {comb / SPIKER_LOGIC:.2f}x the logic "
            "(ECP5 LUT4 cells against Xilinx logic cells: different fabrics)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=8, help="test images simulated in RTL for the cycle counts")
    ap.add_argument("--lanes", default="auto", help="synapse lanes per core: auto, an integer, or several (2,8)")
    ap.add_argument("--ecp5", action="store_true", help="also place and route the 784-1000-10 at 4-bit weights "
                    "on the ECP5 LFE5U-85F (a few minutes)")
    ap.add_argument("--ecp5-lanes", type=int, default=100, help="lanes of the ECP5 784-1000-10 (100: 10 groups, so "
                    "each lane's 7,840 weight rows fit one 8K-deep DP16KD column)")
    ap.add_argument("--weight-memory", default="auto", choices=("auto", "ebr", "spram"),
                    help="where the digits MLP keeps its weights (spram: loaded from the SPI flash)")
    ap.add_argument("--spram-mlp", default="", help="784-N-10 MLPs with SPRAM weights on the UP5K, as N:BITS:P[,...]")
    ap.add_argument("--no-gate-check", action="store_true", help="--spram-mlp without the gate-level check (and so "
                    "without a bitstream): its weight load takes tens of minutes of gate-level simulation")
    args = ap.parse_args()
    choices = [p if p == "auto" else int(p) for p in args.lanes.split(",")]
    t0 = time.perf_counter()
    head = ("network", "device", "weight memory", "P", "weight bits", "LC (nextpnr)",
            "iCE40 LUT/FF/BRAM/SPRAM/DSP (yosys)", "Fmax MHz", "cycles/step (sim, incl. input streaming)", "images/s",
            "accuracy", "bitstream", "SPRAM load cycles (once per power-up)")
    print(" | ".join(head), flush=True)  # each row as soon as it is measured (the SPRAM MLPs take long)
    net = digits_mlp.train()
    _, x_test, _, y_test = digits_mlp.load_digits_split()
    x = digits_mlp.direct_encoding(x_test)
    g = compile_graph(to_ir(net, (64,)), load("fpga"), CompileOptions(input_bits=8, input_max=float(np.abs(x).max())))
    acc = digits_mlp.accuracy(Emulator(g).run(x).spikes[g.output.name], y_test)
    for lanes in choices:
        plan = BACKEND.plan(g, lanes, args.weight_memory)
        with tempfile.TemporaryDirectory() as tmp:
            BACKEND.emit(g, Path(tmp), synthesize=True, lanes=lanes, weight_memory=args.weight_memory)
            report = json.loads((Path(tmp) / "fpga_report.json").read_text())
            cycles, formula_ok, load_cyc = measured_cycles(g, plan, Path(tmp), x[:, : args.images])
        print(" | ".join(row(f"digits 64-{plan.cores[0].size}-10, {STEPS} steps", plan, report, float(cycles.mean()),
                             formula_ok, acc, load_cyc if plan.flash else None)), flush=True)
    for spec in filter(None, args.spram_mlp.split(",")):
        print(" | ".join(spram_mlp_row(*map(int, spec.split(":")), gate_check=not args.no_gate_check)), flush=True)
    print(" | ".join(tutorial_row(choices[-1])), flush=True)
    if args.ecp5:
        print("\n" + tutorial_ecp5(args.ecp5_lanes))
    print("\npublished (their own tasks, devices and tools):")
    for name, ips, area, src in PEERS:
        print(f"  {name}: {ips:,.0f} images/s, {area} ({src})")
    print(f"\n(run took {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
