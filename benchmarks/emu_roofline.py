"""The emulator against this machine's limit, snntorch, and its own event-driven path, in one run.

784-1000-10 Leaky (the snntorch tutorial network), 25 steps, batch 256, rate-coded input spikes.
Measured in this run on this machine, best of ``--repeats`` interleaved runs:

1. the roof: int8 x int8 -> int32 GEMM (``torch._int_mm``) and float32 GEMM (numpy, BLAS) throughput
   on the first layer's product for 640 sample-steps (640 x 784 x 1000), in multiply-accumulates
   per second, and which of the two the emulator uses here (it times them once, see _int8_pays);
2. the emulator's throughput (synaptic MACs of a whole run / its time) as a fraction of the faster
   roof, and the share of its time spent in the synaptic products (the rest is the per-step neuron
   update);
3. emulator (bit-exact fixed point) vs snntorch (float) at batch 256 (goal: >= 2x);
4. the event-driven path (targets/emu/events.py) at several input densities: the first layer's
   product alone (event kernel vs the dense product the emulator would otherwise use), and whole
   runs with the default rule vs the event path switched off (results checked equal).

    .venv/bin/python benchmarks/emu_roofline.py [--repeats N]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emu_vs_snntorch import STEPS, best_of_interleaved, snntorch_forward, tutorial_net  # noqa: E402

from snnhw.compiler.pipeline import CompileOptions, compile_graph  # noqa: E402
from snnhw.frontends.snntorch_trace import to_ir  # noqa: E402
from snnhw.targets import load  # noqa: E402
from snnhw.targets.emu import events  # noqa: E402
from snnhw.targets.emu.emulator import Emulator, _int8_pays, _Linear  # noqa: E402

BATCH = 256
DENSITIES = (0.002, 0.005, 0.01, 0.02, 0.05, 0.15)


def best(fn, repeats):
    return best_of_interleaved([fn], repeats)[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    net = tutorial_net()
    g = compile_graph(to_ir(net, (784,)), load("emu"), CompileOptions())
    emu = Emulator(g)
    fc1, fc2 = (n for n in g.nodes if n.name in emu.linear)
    macs_per_step = fc1.weight.size + fc2.weight.size
    rows = STEPS * BATCH
    print(f"load: {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} cores; torch threads {torch.get_num_threads()}; "
          f"best of {args.repeats}")

    # 1. the roof, on the first layer's shape
    a8 = rng.integers(0, 2, (640, 784), dtype=np.int8)
    w8 = np.ascontiguousarray(fc1.weight.T, dtype=np.int8)
    a8t, w8t = torch.from_numpy(a8), torch.from_numpy(w8)
    a32, w32 = a8.astype(np.float32), w8.astype(np.float32)
    t_i8 = best(lambda: torch._int_mm(a8t, w8t), args.repeats)
    t_f32 = best(lambda: a32 @ w32, args.repeats)
    gemm_macs = 640 * 784 * 1000
    roof_i8, roof_f32 = gemm_macs / t_i8, gemm_macs / t_f32
    roof = max(roof_i8, roof_f32)
    print(f"\nroof (640 x 784 x 1000): int8 GEMM (torch._int_mm) {roof_i8 / 1e9:.2f} GMAC/s; "
          f"float32 GEMM (numpy) {roof_f32 / 1e9:.2f} GMAC/s; the emulator's products use "
          f"{'int8' if _int8_pays() else 'float32 BLAS'} here")

    # 2. + 3. the emulator against the roof and against snntorch (15 % input spikes)
    x = (rng.random((STEPS, BATCH, 784)) < 0.15).astype(np.float32)
    xt = torch.from_numpy(x)
    ref = emu.run(x)
    snntorch_forward(net, xt)  # warm-up
    t_torch, t_emu = best_of_interleaved([lambda: snntorch_forward(net, xt), lambda: emu.run(x)], args.repeats)
    lin1, lin2 = emu.linear[fc1.name], emu.linear[fc2.name]
    s1 = ref.spikes[next(n.name for n in g.neurons)]
    t_syn = best(lambda: (lin1(x, 1.0), lin2(s1, 1.0)), args.repeats)
    rate = rows * macs_per_step / t_emu
    print(f"\nemulator, batch {BATCH}: {t_emu * 1e3:.1f} ms per run = {rows / t_emu:,.0f} sample-steps/s = "
          f"{rate / 1e9:.2f} GMAC/s synaptic = {rate / roof:.1%} of the roof; its synaptic products take "
          f"{t_syn * 1e3:.1f} ms ({t_syn / t_emu:.0%} of the run, at {rows * macs_per_step / t_syn / roof:.0%} of "
          f"the roof), the per-step neuron updates the rest")
    print(f"snntorch float, batch {BATCH}: {t_torch * 1e3:.1f} ms; emulator / snntorch speed: {t_torch / t_emu:.2f}x")

    # 4. the event path
    print(f"\nevent path (rule: binary, density <= {events.MAX_DENSITY:.4f}, >= {events.MIN_OUTPUTS} outputs)")
    print(f"{'density':>8} {'fc1 dense':>10} {'fc1 events':>11} {'kernel x':>9} {'run default':>12} "
          f"{'run dense':>10} {'run x':>7} {'path':>7}")
    dense_fc1 = _Linear(fc1.weight, True)
    for p in DENSITIES:
        xs = (rng.random((STEPS, BATCH, 784)) < p).astype(np.int8)
        x2 = xs.reshape(rows, 784)
        wt = dense_fc1.wt32 if hasattr(dense_fc1, "wt32") else dense_fc1.wt
        saved = events.MAX_DENSITY
        events.MAX_DENSITY = -1.0
        t_dense_k, t_event_k = best_of_interleaved([lambda: dense_fc1(xs, 1.0), lambda: events.accumulate(x2, wt)],
                                                   args.repeats)
        events.MAX_DENSITY = saved
        path = "events" if events.wants_events(x2, 1000) is not None else "dense"
        with_rule = emu.run(xs)

        def run_dense():
            events.MAX_DENSITY = -1.0
            try:
                return emu.run(xs)
            finally:
                events.MAX_DENSITY = saved
        without = run_dense()
        assert all(np.array_equal(v, without.spikes[k]) for k, v in with_rule.spikes.items())
        t_rule, t_off = best_of_interleaved([lambda: emu.run(xs), run_dense], args.repeats)
        print(f"{p:>8.3f} {t_dense_k * 1e3:>7.1f} ms {t_event_k * 1e3:>8.1f} ms {t_dense_k / t_event_k:>8.2f}x "
              f"{t_rule * 1e3:>9.1f} ms {t_off * 1e3:>7.1f} ms {t_off / t_rule:>6.2f}x {path:>7}")
    print(f"\nload: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
