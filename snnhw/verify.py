"""``snnhw verify``: the fixed-point deployment against the float reference, layer by layer.

Runs, on the same input: the snntorch model itself (when the model file is an snntorch module),
the float IR, the fixed IR of every chosen target in the emulator, and each target's own backend.
Timesteps are aligned by each layer's summed synapse delays. Reports per layer: exact spike
match, spike counts, per-neuron rate error and the first divergence (with the float and fixed
membrane there); per target: class agreement, accuracy (with labels), bit exactness of the
backend against the emulator, overflow counts; and whether each check passed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snnhw.compiler.pipeline import CompileOptions, compile_graph
from snnhw.compiler.timing import arrival, latency
from snnhw.deploy import run_graph
from snnhw.ir import Graph
from snnhw.targets import load as load_target
from snnhw.targets.emu.emulator import Emulator


@dataclass(frozen=True)
class Thresholds:
    """Pass/fail limits. rate_error: mean |rate_fixed - rate_float| per neuron (spikes/step)."""

    max_rate_error: float = 0.05
    min_class_agreement: float = 0.9
    max_accuracy_drop: float = 0.05
    fail_on_overflow: bool = False


def _first_divergence(a: np.ndarray, b: np.ndarray):
    """Earliest (step, sample, neuron) where spike arrays ``[T, B, N]`` differ, or None."""
    idx = np.argwhere(a != b)
    return None if idx.size == 0 else tuple(int(i) for i in idx[0])


def compare_layer(ref: np.ndarray, got: np.ndarray, ref_v=None, got_v=None) -> dict:
    """Spike agreement of two aligned ``[T, B, *shape]`` spike arrays of one layer."""
    T, B = ref.shape[:2]
    r, g = ref.reshape(T, B, -1), got.reshape(T, B, -1)
    rate_r, rate_g = r.mean(axis=(0, 1)), g.mean(axis=(0, 1))
    out = {
        "neurons": int(r.shape[2]),
        "spike_match": float((r == g).mean()),
        "spikes_reference": int(r.sum()), "spikes": int(g.sum()),
        "rate_error_mean": float(np.abs(rate_r - rate_g).mean()),
        "rate_error_max": float(np.abs(rate_r - rate_g).max()),
        "first_divergence": None,
    }
    first = _first_divergence(r, g)
    if first is not None:
        t, b, n = first
        d = {"step": t, "sample": b, "neuron": n, "spike_reference": int(r[t, b, n]), "spike": int(g[t, b, n])}
        if ref_v is not None and got_v is not None:
            d["membrane_reference"] = float(ref_v.reshape(T, B, -1)[t, b, n])
            d["membrane"] = float(got_v.reshape(T, B, -1)[t, b, n])
        out["first_divergence"] = d
    return out


def _classes(spikes: np.ndarray) -> np.ndarray:
    T, B = spikes.shape[:2]
    return spikes.reshape(T, B, -1).sum(axis=0).argmax(axis=-1)


def _accuracy(spikes, labels):
    return None if labels is None else float((_classes(spikes) == labels).mean())


def verify(float_g: Graph, x: np.ndarray, targets: list[str], options: CompileOptions,
           thresholds: Thresholds, labels: np.ndarray | None = None, reference: dict | None = None) -> dict:
    """The verification report (a JSON-ready dict); ``report['passed']`` says whether every check held.

    reference: spikes per layer of the snntorch model itself (from snntorch_reference), if any.
    """
    T = x.shape[0]
    float_run = Emulator(float_g).run(x, record_state=True)
    names = [p.name for p in float_g.neurons]
    out_name = float_g.output.name
    report = {"timesteps": T, "batch": int(x.shape[1]), "layers": names, "checks": [], "targets": {}}
    float_out = float_run.spikes[out_name]
    report["float_ir"] = {"accuracy": _accuracy(float_out, labels)}
    if reference is not None:
        steps = min(T, *(v.shape[0] for v in reference.values()))
        report["snntorch"] = {
            "steps": steps,
            "accuracy": _accuracy(reference[out_name][:steps], labels) if out_name in reference else None,
            "layers": {n: compare_layer(reference[n][:steps], float_run.spikes[n][:steps])
                       for n in names if n in reference},
        }
    for tname in targets:
        tgt = load_target(tname)
        fixed = compile_graph(float_g, tgt, options)
        pad = latency(fixed)
        xp = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)]) if pad else x
        run = Emulator(fixed).run(xp, record_state=True)
        shift = arrival(fixed)
        layers = {}
        for p in fixed.neurons:
            d = shift[p.name]
            got = run.spikes[p.name][d:d + T]
            got_v = run.voltage[p.name][d:d + T] * p.format.state_scale
            layers[p.name] = compare_layer(float_run.spikes[p.name], got, float_run.voltage[p.name], got_v)
        fixed_out = run.spikes[out_name][shift[out_name]:shift[out_name] + T]
        entry = {
            "latency": pad, "layers": layers, "overflow": run.overflow,
            "class_agreement": float((_classes(fixed_out) == _classes(float_out)).mean()),
            "accuracy": _accuracy(fixed_out, labels),
            "backend": _backend_check(tgt, fixed, xp, run) if tname != "emu" else None,
        }
        report["targets"][tname] = entry
        _checks(report["checks"], tname, entry, report["float_ir"]["accuracy"], thresholds)
    report["passed"] = all(c["passed"] for c in report["checks"])
    return report


def _backend_check(tgt, fixed, xp, emu_run) -> dict:
    """Run the target's own backend on a build of the same fixed IR; it must equal the emulator bit for bit."""
    got = run_graph(fixed, xp)
    mismatches = {}
    for p in fixed.neurons:
        a, b = emu_run.spikes[p.name], got.spikes[p.name]
        if a.shape != b.shape or not np.array_equal(a, b):
            first = _first_divergence(a.reshape(*a.shape[:2], -1), b.reshape(*b.shape[:2], -1)) \
                if a.shape == b.shape else None
            mismatches[p.name] = {"differing": int((a != b).sum()) if a.shape == b.shape else None,
                                  "first": first}
    return {"bit_exact": not mismatches, "mismatches": mismatches}


def _checks(checks: list, tname: str, e: dict, float_acc, th: Thresholds):
    def add(name, passed, detail):
        checks.append({"target": tname, "check": name, "passed": bool(passed), "detail": detail})

    if e["backend"] is not None:
        add("backend bit-exact with emulator", e["backend"]["bit_exact"],
            "all layers identical" if e["backend"]["bit_exact"] else f"differs in {sorted(e['backend']['mismatches'])}")
    worst = max(e["layers"].items(), key=lambda kv: kv[1]["rate_error_mean"])
    add(f"rate error <= {th.max_rate_error}", worst[1]["rate_error_mean"] <= th.max_rate_error,
        f"worst layer {worst[0]}: {worst[1]['rate_error_mean']:.4f} spikes/step")
    add(f"class agreement >= {th.min_class_agreement}", e["class_agreement"] >= th.min_class_agreement,
        f"{e['class_agreement']:.4f}")
    if e["accuracy"] is not None and float_acc is not None:
        drop = float_acc - e["accuracy"]
        add(f"accuracy drop <= {th.max_accuracy_drop}", drop <= th.max_accuracy_drop,
            f"float {float_acc:.4f} -> fixed {e['accuracy']:.4f}")
    if th.fail_on_overflow:
        total = sum(sum(d.values()) for d in e["overflow"].values())
        add("no overflow", total == 0, f"{total} overflow events {e['overflow']}" if total else "none")
