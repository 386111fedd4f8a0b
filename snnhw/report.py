"""``snnhw report``: counts, energy and plots of a build on an input, as report.json and a
self-contained report.html (plots embedded as PNG; no network access needed to view it)."""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np

from snnhw.build import MAPPING, load_build, write_json
from snnhw.energy import estimate
from snnhw.semantics import latency, pad_steps
from snnhw.shard import Sharding, run_sharded
from snnhw.targets import load as load_target

RASTER_NEURONS = 100
TRACE_NEURONS = 5


def build_report(build: Path, x: np.ndarray, input_file: str = "",
                 sharding: Sharding = Sharding()) -> tuple[dict, dict]:
    """The report dict and the run arrays it was computed from: the emulator on the build's fixed IR
    (bit for bit what every backend computes), sharded as ``sharding`` says."""
    g, manifest = load_build(build)
    tgt = load_target(manifest["target"])
    pad = latency(g)
    xp = pad_steps(x, pad)
    res = run_sharded("emu", Path(build), xp, True, sharding)
    mapping = json.loads((Path(build) / MAPPING).read_text()) if (Path(build) / MAPPING).exists() else None
    quant = json.loads((Path(build) / "quantization.json").read_text())
    report = {"build": str(build), "target": tgt.name, "input_file": input_file, "appended_steps": pad,
              "counts": estimate(g, res, mapping, tgt.energy, tgt.sources, xp), "overflow": res.overflow,
              "mapping": {"summary": mapping["summary"]} if mapping else None, "quantization": quant,
              "plastic": {n.name: n.summary() for n in g.nodes if n.is_plastic}}
    return report, {"graph": g, "run": res, "mapping": mapping}


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight", metadata={"Software": None})
    import matplotlib.pyplot as plt
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def plots(report: dict, ctx: dict) -> dict:
    """The report's figures as base64 PNGs; layer names are plain text (no ``$...$`` math parsing)."""
    import matplotlib
    matplotlib.use("Agg")
    with matplotlib.rc_context({"text.parse_math": False}):
        return _plots(report, ctx)


def _plots(report: dict, ctx: dict) -> dict:
    import matplotlib.pyplot as plt

    g, res, mapping = ctx["graph"], ctx["run"], ctx["mapping"]
    layers = report["counts"]["layers"]
    names = list(layers)
    out = {}

    fig, ax = plt.subplots(1, 2, figsize=(10, 3))
    ax[0].bar(names, [layers[n]["spikes"] for n in names])
    ax[0].set_title("spikes per layer")
    ax[1].bar(names, [layers[n]["rate_per_step"] for n in names], color="tab:orange")
    ax[1].set_title("spikes / neuron / step")
    out["counts"] = _png(fig)

    fig, ax = plt.subplots(figsize=(10, 3))
    w = 0.4
    xs = np.arange(len(names))
    ax.bar(xs - w / 2, [layers[n]["synaptic_ops"] for n in names], w, label="synaptic ops")
    ax.bar(xs + w / 2, [layers[n]["neuron_updates_active"] + layers[n]["neuron_updates_inactive"] for n in names], w,
           label="neuron updates")
    ax.set_xticks(xs, names)
    ax.legend()
    ax.set_title("operations per layer")
    out["ops"] = _png(fig)

    fig, axs = plt.subplots(len(names), 1, figsize=(10, 2.2 * len(names)), squeeze=False)
    for ax, pop in zip(axs[:, 0], g.neurons):
        s = res.spikes[pop.name][:, 0].reshape(res.spikes[pop.name].shape[0], -1)[:, :RASTER_NEURONS]
        t, n = np.nonzero(s)
        ax.scatter(t, n, s=4, marker="|")
        ax.set_ylabel(f"{pop.name}\nneuron")
        ax.set_xlim(-0.5, s.shape[0] - 0.5)
    axs[-1, 0].set_xlabel("timestep")
    out["raster"] = _png(fig)

    fig, axs = plt.subplots(len(names), 1, figsize=(10, 2.2 * len(names)), squeeze=False)
    for ax, pop in zip(axs[:, 0], g.neurons):
        v = res.voltage[pop.name][:, 0].reshape(res.voltage[pop.name].shape[0], -1)[:, :TRACE_NEURONS]
        ax.plot(v * np.broadcast_to(pop.format.state_scale, (pop.size,))[:v.shape[1]])  # per neuron: channel steps
        ax.axhline(float(np.max(np.asarray(pop.threshold) * pop.format.state_scale)), color="k", ls="--", lw=0.8)
        ax.set_ylabel(f"{pop.name}\nv (float units)")
    axs[-1, 0].set_xlabel("timestep (end-of-step membrane; dashed: threshold)")
    out["membrane"] = _png(fig)

    energy = report["counts"].get("energy")
    if energy:
        fig, ax = plt.subplots(1, 2, figsize=(10, 3))
        ax[0].bar(list(energy["by_layer_uj"]), list(energy["by_layer_uj"].values()))
        ax[0].set_title("energy by layer (µJ)")
        ax[1].bar(list(energy["by_core_uj"]), list(energy["by_core_uj"].values()), color="tab:green")
        ax[1].set_title("energy by core (µJ)")
        ax[1].set_xlabel("core")
        out["energy"] = _png(fig)

    if mapping:
        mx, my = mapping["limits"]["mesh"]
        grid = np.full((my, mx), np.nan)
        for c in mapping["cores"]:
            if c["chip"] == 0:
                grid[c["xy"][1], c["xy"][0]] = c["neuron_utilization"]
        fig, ax = plt.subplots(figsize=(5, 5 * my / max(mx, 1)))
        im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis")
        fig.colorbar(im, ax=ax, label="neuron utilization")
        ax.set_title("chip 0 cores (x, y)")
        out["cores"] = _png(fig)

    q = report["quantization"]["layers"]
    fig, ax = plt.subplots(figsize=(10, 3))
    qn = list(q)
    ax.bar(qn, [(q[n].get("weight") or q[n].get("threshold"))["max_rel_error"] for n in qn])
    ax.set_title("max relative quantization error (weights for synapses, thresholds for neurons)")
    out["quant"] = _png(fig)
    return out


def write_report(report: dict, ctx: dict, out_dir: Path) -> list[str]:
    """Write report.json and report.html into ``out_dir`` (atomically as a directory)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
    from snnhw.build import atomic_dir
    env = Environment(loader=PackageLoader("snnhw", "templates"), autoescape=select_autoescape(["html", "j2"]),
                      undefined=StrictUndefined)
    html = env.get_template("report.html.j2").render(r=report, plots=plots(report, ctx))
    with atomic_dir(out_dir, "report") as tmp:
        write_json(tmp / "report.json", report)
        (tmp / "report.html").write_text(html)
    return ["report.json", "report.html"]
