"""A Brian2-style experiment with snnhw.api, no training: LIF neurons driven by Poisson input.

100 Poisson sources at ``--rate`` Hz drive 200 LIF neurons (tau 20 ms, threshold 1, zero reset)
through random excitatory synapses (probability 0.1, weight 0.25 per spike). The network runs at
dt = 1 ms on the emulator in the fixed point of ``--target`` and in float (the float IR); the
script prints both spike counts and saves a spike raster and the membrane potentials of the first
ten neurons to ``--png``.

    python examples/lif_population.py [--steps 1000] [--rate 30] [--target emu] [--png lif_population.png]
"""
from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from snnhw.api import Network, poisson_spikes, random_weights  # noqa: E402

DT = 1e-3  # seconds per step
N_IN, N_LIF = 100, 200


def build() -> tuple[Network, object]:
    """The network and the monitor of its LIF population."""
    net = Network(dt=DT)
    inp = net.input(N_IN, kind="spikes")
    pop = net.lif(N_LIF, tau=20e-3, threshold=1.0, reset="zero", name="exc")
    net.connect(inp, pop, random_weights(N_IN, N_LIF, p=0.1, weight=0.25, seed=0))
    return net, net.monitor(pop, state=True)


def plot(mon, path: str) -> None:
    """Spike raster of the population and membrane potentials of neurons 0-9 (PNG)."""
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    steps, neurons = np.nonzero(mon.spikes)
    ax1.plot(mon.t[steps] * 1e3, neurons, "|", markersize=2, color="k")
    ax1.set_ylabel("neuron")
    ax1.set_title(f"{mon.group.size} LIF neurons, Poisson input")
    for i in range(10):
        ax2.plot(mon.t * 1e3, mon.voltage[:, i] + 1.5 * i, lw=0.8)
    ax2.set_xlabel("time (ms)")
    ax2.set_ylabel("v (threshold units; neuron i offset by 1.5 i)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--rate", type=float, default=30.0, help="Poisson rate of every input (Hz)")
    p.add_argument("--target", default="emu", help="numerics and timing of this target")
    p.add_argument("--png", default="lif_population.png")
    a = p.parse_args(argv)
    net, mon = build()
    x = poisson_spikes(np.full(N_IN, a.rate), a.steps, DT, seed=1)
    float_spikes = net.run(x, target=None).spikes["exc"]
    result = net.run(x, target=a.target)
    plot(mon, a.png)
    seconds = a.steps * DT
    print(f"{a.steps} steps of {DT * 1e3:g} ms, {int(x.sum())} input spikes ({x.sum() / N_IN / seconds:.1f} Hz each)")
    print(f"float IR:        {int(float_spikes.sum())} spikes ({float_spikes.sum() / N_LIF / seconds:.1f} Hz per neuron)")
    print(f"{a.target} fixed point: {int(mon.spikes.sum())} spikes ({mon.spikes.sum() / N_LIF / seconds:.1f} Hz per "
          f"neuron), overflow events: {sum(sum(d.values()) for d in result.overflow.values())}")
    print(f"wrote {a.png}")
    return {"input": x, "float_spikes": float_spikes, "spikes": mon.spikes, "voltage": mon.voltage, "png": a.png}


if __name__ == "__main__":
    main()
