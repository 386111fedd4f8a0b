"""The classic STDP curve (Bi & Poo 1998): weight change against spike timing, from the fixed-point
learning rule as it runs on the emulator (and, bit for bit, on Loihi/Lava).

One post neuron has two plastic inputs: input 1 (weight 2, above threshold) makes it fire at step
T_POST; input 0 (weight 0.5, below threshold) is the measured synapse and spikes once at
T_POST - dt_steps. Every timing difference is one sample of a single batched run (each sample
learns its own copy of the weights). Saves the curve to ``--png`` with the exponential the rule
approximates (a_plus * w_max * exp(-dt/tau_plus) for pre-before-post, the mirror image after).

    python examples/stdp_curve.py [--max-dt 60] [--png docs/stdp_curve.png]
"""
from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from snnhw.api import STDP, Network  # noqa: E402

DT = 1e-3
RULE = STDP(w_max=2.0, a_plus=0.1, a_minus=0.1, tau_plus=20e-3, tau_minus=20e-3)
W0 = 0.5  # the measured synapse's initial weight (threshold units)


def curve(max_dt: int) -> tuple[np.ndarray, np.ndarray]:
    """Timing differences t_post - t_pre (steps) and the measured weight changes (threshold units)."""
    dts = np.arange(-max_dt, max_dt + 1)
    t_post = max_dt + 5
    x = np.zeros((2 * max_dt + 10, len(dts), 2), np.float32)
    x[t_post, :, 1] = 1
    x[t_post - dts, np.arange(len(dts)), 0] = 1
    net = Network(dt=DT)
    inp = net.input(2)
    post = net.lif(1, tau=5e-3, threshold=1.0, name="post")
    net.connect(inp, post, np.array([[W0, 2.0]], np.float32), plasticity=RULE)
    res = net.run(x, target="emu")
    return dts, res.weights["post"][:, 0, 0] - W0


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--max-dt", type=int, default=60, help="largest |t_post - t_pre| in steps (1 ms)")
    p.add_argument("--png", default="stdp_curve.png")
    a = p.parse_args(argv)
    dts, dw = curve(a.max_dt)
    t = np.linspace(-a.max_dt, a.max_dt, 400)
    ideal = np.where(t > 0, RULE.a_plus * RULE.w_max * np.exp(-t * DT / RULE.tau_plus),
                     -RULE.a_minus * RULE.w_max * np.exp(t * DT / RULE.tau_minus))
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(t, ideal, color="0.6", lw=1, label="a·w_max·exp(-|Δt|/τ)")
    ax.plot(dts, dw, "o", ms=3, label="fixed-point rule (emulator)")
    ax.axhline(0, color="k", lw=0.5)
    ax.axvline(0, color="k", lw=0.5)
    ax.set_xlabel("t_post - t_pre (ms)")
    ax.set_ylabel("weight change (threshold units)")
    ax.set_title("pair STDP: 7-bit traces, Loihi-form update")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(a.png, dpi=100)
    plt.close(fig)
    far = min(20, a.max_dt)
    print(f"dw at dt=+1: {dw[dts == 1][0]:+.4f}, dt=-1: {dw[dts == -1][0]:+.4f}, dt=+{far}: {dw[dts == far][0]:+.4f} "
          f"(threshold units) -> {a.png}")
    return {"dt": dts, "dw": dw}


if __name__ == "__main__":
    main()
