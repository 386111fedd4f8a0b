"""``snnhw verify``: score the deployed build of each target against the user's model, layer by layer.

On the same input ``x [T, B, *shape]`` it runs:

1. the snntorch model itself (when the model file is one), and the float IR in the emulator; the
   import check requires the float IR to reproduce the snntorch model spike for spike (see
   :data:`IMPORT_RULE`);
2. per target, the build written by :func:`snnhw.compile.compile_build` (the code path of
   ``snnhw compile``; or an existing build with :func:`verify_build`): its fixed IR, read back from the
   build, in the emulator (the reference semantics), and the target's backend on the build
   directory. The backend's run is what is scored; it must equal the emulator bit for bit.

Per layer it reports spike precision/recall/F1/Jaccard of the deployed spikes against the float IR
and against snntorch (a silent neuron agreeing with a silent neuron is not counted as agreement),
the activity ratio, rate errors and the first divergence; per target the decoded output
(:mod:`snnhw.decode`) against both references and the labels. Timesteps are aligned by each
layer's summed synapse delays. A target that refuses the network at compile time is reported as
refused; the others are still verified.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from snnhw import build as b
from snnhw.compile import compile_build
from snnhw.compiler.lower_maxpool import float_reference, or_layers
from snnhw.compiler.pipeline import CompileOptions, compile_graph
from snnhw.semantics import arrival, latency, pad_steps
from snnhw.decode import UNDECIDED, Decoding, accuracy, agreement, nrmse
from snnhw.errors import SnnhwError, UnsupportedError
from snnhw.ir import Graph
from snnhw.ir.onnx_io import to_onnx
from snnhw.semantics import RunResult
from snnhw.shard import Sharding, run_sharded
from snnhw.targets import load as load_target
from snnhw.targets.contract import backend_for
from snnhw.targets.description import TargetDescription
from snnhw.targets.emu.emulator import Emulator

EXIT_VERIFIED, EXIT_FAILED, EXIT_REFUSED = 0, 1, 3
IMPORT_RULE = ("both are float32 runs of the same equations, differing only in the order of floating-point "
               "sums, which flips a spike only when a membrane lands within rounding of the threshold")


@dataclass(frozen=True)
class Thresholds:
    """Pass/fail limits.

    max_rate_error: worst layer's mean |rate_fixed - rate_float| per neuron (spikes/step).
    min_class_agreement: decoded outputs equal to the reference's (regression: output NRMSE
      against the reference at most ``1 - min_class_agreement``).
    max_accuracy_drop: reference accuracy minus deployed accuracy (regression: NRMSE increase).
    min_activity: per layer, deployed spikes / float spikes (layers that spike in float).
    min_import_f1: per layer, spike F1 of the float IR against the snntorch model (1.0: exact).
    """

    max_rate_error: float = 0.05
    min_class_agreement: float = 0.9
    max_accuracy_drop: float = 0.05
    min_activity: float = 0.5
    min_import_f1: float = 0.99
    fail_on_overflow: bool = False


def _first_divergence(a: np.ndarray, b: np.ndarray):
    """Earliest (step, sample, neuron) where spike arrays ``[T, B, N]`` differ, or None."""
    idx = np.argwhere(a != b)
    return None if idx.size == 0 else tuple(int(i) for i in idx[0])


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def compare_layer(ref: np.ndarray, got: np.ndarray, ref_v=None, got_v=None) -> dict:
    """Spike agreement of two aligned ``[T, B, *shape]`` spike arrays of one layer.

    Counted over (step, sample, neuron) entries: tp both spike, fp only ``got``, fn only ``ref``.
    precision = tp/(tp+fp), recall = tp/(tp+fn), f1 = 2tp/(2tp+fp+fn), jaccard = tp/(tp+fp+fn);
    each is None when its denominator is 0 (no spike on the sides it looks at): silence is never
    counted as agreement. activity = spikes / spikes_reference (None when the reference is silent).
    """
    T, B = ref.shape[:2]
    r, g = ref.reshape(T, B, -1).astype(bool), got.reshape(T, B, -1).astype(bool)
    tp, fp, fn = int((r & g).sum()), int((~r & g).sum()), int((r & ~g).sum())
    rate_r, rate_g = r.mean(axis=(0, 1)), g.mean(axis=(0, 1))
    out = {
        "neurons": int(r.shape[2]), "identical": fp == 0 and fn == 0,
        "precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn), "jaccard": _ratio(tp, tp + fp + fn),
        "spikes_reference": int(r.sum()), "spikes": int(g.sum()), "activity": _ratio(int(g.sum()), int(r.sum())),
        "rate_error_mean": float(np.abs(rate_r - rate_g).mean()),
        "rate_error_max": float(np.abs(rate_r - rate_g).max()),
        "first_divergence": None,
    }
    first = _first_divergence(r, g)
    if first is not None:
        t, b_, n = first
        d = {"step": t, "sample": b_, "neuron": n, "spike_reference": int(r[t, b_, n]), "spike": int(g[t, b_, n])}
        if ref_v is not None and got_v is not None:
            d["membrane_reference"] = float(ref_v.reshape(T, B, -1)[t, b_, n])
            d["membrane"] = float(got_v.reshape(T, B, -1)[t, b_, n])
        out["first_divergence"] = d
    return out


def _run_backend(target: TargetDescription, build_dir: Path, x: np.ndarray, record_state: bool,
                 sharding: Sharding) -> RunResult:
    """The one place verify executes a target's backend: the build in ``build_dir`` on ``x`` (its
    hash-checked artifacts, as ``snnhw run`` executes them), sharded as ``sharding`` says."""
    backend_for(target).check(b.load_build(build_dir)[0])
    return run_sharded(target.name, build_dir, x, record_state, sharding)


def _is_emulator(target: TargetDescription) -> bool:
    """Whether the target's backend is the emulator itself (no second, independent execution)."""
    return target.backend == "snnhw.targets.emu.backend"


@dataclass
class _Run:
    """One execution's spikes per layer and what its output layer decodes to."""

    spikes: dict
    prediction: np.ndarray


def _scored(decoding: Decoding, spikes: dict, out_name: str, membrane) -> _Run:
    return _Run(spikes, decoding.predict(spikes[out_name], membrane))


def _score(decoding: Decoding, run: _Run, labels, out_name: str) -> dict:
    """Accuracy (classes) or RMSE/NRMSE (regression) against the labels, and how many samples are
    silent (no output spike) or undecided."""
    silent = int((run.spikes[out_name].reshape(*run.spikes[out_name].shape[:2], -1).sum(axis=(0, 2)) == 0).sum())
    if decoding.is_regression:
        d = {"silent": silent, "rmse": None, "nrmse": None}
        if labels is not None:
            d.update(rmse=float(np.sqrt(np.mean((run.prediction - labels) ** 2))), nrmse=nrmse(run.prediction, labels))
        return {**d, "accuracy": None}
    return {"silent": silent, "undecided": int((run.prediction == UNDECIDED).sum()),
            "accuracy": None if labels is None else accuracy(run.prediction, labels)}


def _agreement(decoding: Decoding, got: _Run, ref: _Run) -> float:
    """Class agreement, or for regression the NRMSE of the deployed outputs against the reference's."""
    return nrmse(got.prediction, ref.prediction) if decoding.is_regression else agreement(got.prediction, ref.prediction)


def _float_run(float_g: Graph, x: np.ndarray, decoding: Decoding) -> tuple[_Run, RunResult]:
    res = Emulator(float_g).run(x, record_state=True)
    out = float_g.output.name
    return _scored(decoding, res.spikes, out, res.voltage[out] if decoding.needs_membrane else None), res


def _import_check(float_g: Graph, float_res: RunResult, reference: tuple, x: np.ndarray, decoding: Decoding,
                  labels, th: Thresholds) -> tuple[dict, _Run, int, dict]:
    """The snntorch model against the float IR: per-layer agreement and the import check."""
    spikes, mems = reference
    out = float_g.output.name
    steps = min(x.shape[0], *(v.shape[0] for v in spikes.values()))
    layers, missing = {}, []
    for p in float_g.neurons:
        if p.name not in spikes:
            missing.append(p.name)
            continue
        snn_v = mems[p.name][:steps] if p.name in mems else None
        layers[p.name] = compare_layer(spikes[p.name][:steps], float_res.spikes[p.name][:steps], snn_v,
                                       float_res.voltage[p.name][:steps])
    run = None
    if out in spikes and (not decoding.needs_membrane or out in mems):
        run = _scored(decoding, spikes, out, mems.get(out))
    entry = {"steps": steps, "layers": layers, **(_score(decoding, run, labels, out) if run else {"accuracy": None})}
    bad = {n: L for n, L in layers.items() if not L["identical"] and (L["f1"] or 0.0) < th.min_import_f1}
    if missing:
        detail = f"snntorch layers {missing} were not recorded; the import cannot be compared"
    elif bad:
        worst = min(bad, key=lambda n: bad[n]["f1"] or 0.0)
        L = bad[worst]
        f1 = "none" if L["f1"] is None else f"{L['f1']:.4f}"
        detail = (f"the imported float IR does not reproduce the snntorch model: layer {worst} spike F1 {f1} "
                  f"< {th.min_import_f1} ({L['spikes_reference']} spikes in snntorch, {L['spikes']} in the IR), "
                  "so the deployment would compute a different network; docs/frontend.md says how each construct "
                  "is imported: rewrite the forward in a supported form, or report the model")
    else:
        exact = all(L["identical"] for L in layers.values())
        detail = "spike-exact in every layer" if exact else \
            f"every layer's spike F1 >= {th.min_import_f1} ({IMPORT_RULE})"
    check = {"target": "model", "check": "float IR reproduces the snntorch model",
             "passed": not missing and not bad, "detail": detail}
    return entry, run, steps, check


def _check(checks: list, target: str, name: str, passed: bool, detail: str) -> None:
    checks.append({"target": target, "check": name, "passed": bool(passed), "detail": detail})


def _score_build(build_dir: Path, float_res: RunResult, float_run: _Run, x: np.ndarray, decoding: Decoding,
                 sharding: Sharding, labels, snn: tuple | None) -> tuple[str, dict]:
    """Run one build (emulator and backend) and compare it with both references: (target, entry)."""
    fixed, manifest = b.load_build(build_dir)
    tname = manifest["target"]
    tgt = load_target(tname)
    T, out = x.shape[0], fixed.output.name
    pad = latency(fixed)
    xp = pad_steps(x, pad)
    emu = Emulator(fixed).run(xp, record_state=True)
    deployed = emu if _is_emulator(tgt) else _run_backend(tgt, build_dir, xp, decoding.needs_membrane, sharding)
    shift = arrival(fixed)
    scale = {p.name: p.format.state_scale for p in fixed.neurons}
    spikes = {p.name: deployed.spikes[p.name][shift[p.name]:shift[p.name] + T] for p in fixed.neurons}
    emu_v = {p.name: emu.voltage[p.name][shift[p.name]:shift[p.name] + T] * scale[p.name] for p in fixed.neurons}
    membrane = None
    if decoding.needs_membrane:
        membrane = deployed.voltage[out][shift[out]:shift[out] + T] * scale[out]
    run = _scored(decoding, spikes, out, membrane)
    reference, lowering_of = _reference_spikes(build_dir, fixed, float_res, x)
    layers = {p.name: compare_layer(reference[p.name], spikes[p.name], float_res.voltage.get(p.name),
                                    emu_v[p.name]) for p in fixed.neurons}
    for name, pool in lowering_of.items():
        layers[name]["lowering_of"] = pool
    entry = {
        "build": str(build_dir), "latency": pad,
        "layers": layers,
        "agreement_float_ir": _agreement(decoding, run, float_run),
        "overflow": deployed.overflow, "overflow_source": deployed.overflow_source,
        "backend": None if _is_emulator(tgt) else _bit_exact(fixed, emu, deployed),
        **_score(decoding, run, labels, out),
    }
    if snn is not None:
        snn_spikes, snn_run, steps = snn
        entry["layers_snntorch"] = {n: compare_layer(snn_spikes[n][:steps], spikes[n][:steps])
                                    for n in spikes if n in snn_spikes}
        if snn_run is not None:
            entry["agreement_snntorch"] = _agreement(decoding, run, snn_run)
    return tname, entry


def _reference_spikes(build_dir: Path, fixed: Graph, float_res: RunResult, x: np.ndarray) -> tuple[dict, dict]:
    """The float IR's spikes per layer of the build, and ``{layer: float node}`` for the layers a
    lowering pass added: an OR layer (compiler/lower_maxpool.py) is scored against the output of the
    max pool it lowers (the OR of the float spikes)."""
    lowering_of = or_layers(fixed)
    if not lowering_of:
        return float_res.spikes, {}
    float_g = b.load_build(build_dir, b.FLOAT_IR)[0]
    return {**float_res.spikes, **float_reference(float_g, fixed, float_res.spikes, x)}, lowering_of


def _bit_exact(fixed: Graph, emu: RunResult, got: RunResult) -> dict:
    """Whether the backend's spikes equal the emulator's on every layer, and where they differ."""
    mismatches = {}
    for p in fixed.neurons:
        a, g = emu.spikes[p.name], got.spikes[p.name]
        if a.shape != g.shape or not np.array_equal(a, g):
            same = a.shape == g.shape
            mismatches[p.name] = {"differing": int((a != g).sum()) if same else None,
                                  "first": _first_divergence(a.reshape(*a.shape[:2], -1),
                                                             g.reshape(*g.shape[:2], -1)) if same else None}
    return {"bit_exact": not mismatches, "mismatches": mismatches}


def _target_checks(checks: list, tname: str, e: dict, decoding: Decoding, th: Thresholds) -> None:
    add = lambda name, passed, detail: _check(checks, tname, name, passed, detail)
    if e["backend"] is not None:
        add("backend bit-exact with emulator", e["backend"]["bit_exact"],
            "all layers identical" if e["backend"]["bit_exact"] else f"differs in {sorted(e['backend']['mismatches'])}")
    lost = {n: L for n, L in e["layers"].items() if L["activity"] is not None and L["activity"] < th.min_activity}
    if lost:
        n = min(lost, key=lambda k: lost[k]["activity"])
        detail = (f"layer {n} lost its activity: {lost[n]['spikes']} spikes vs {lost[n]['spikes_reference']} in the "
                  f"float IR ({lost[n]['activity']:.3f})")
    else:
        ratios = [f"{n} {L['activity']:.3f}" for n, L in e["layers"].items() if L["activity"] is not None]
        detail = "spikes vs float IR: " + (", ".join(ratios) or "no layer spikes in the float IR")
    add(f"every layer keeps >= {th.min_activity} of its float activity", not lost, detail)
    worst = max(e["layers"].items(), key=lambda kv: kv[1]["rate_error_mean"])
    add(f"rate error <= {th.max_rate_error}", worst[1]["rate_error_mean"] <= th.max_rate_error,
        f"worst layer {worst[0]}: {worst[1]['rate_error_mean']:.4f} spikes/step")
    ref, ag = ("snntorch", e["agreement_snntorch"]) if "agreement_snntorch" in e else ("float IR", e["agreement_float_ir"])
    if decoding.is_regression:
        limit = 1 - th.min_class_agreement
        add(f"output NRMSE vs {ref} <= {limit:.4g}", ag <= limit, f"{ag:.4f} (decode {decoding})")
    else:
        add(f"class agreement with {ref} >= {th.min_class_agreement}", ag >= th.min_class_agreement,
            f"{ag:.4f} (decode {decoding}; {e['undecided']} undecided, {e['silent']} silent)")


def _accuracy_check(checks: list, tname: str, e: dict, ref_name: str, ref: dict, decoding: Decoding,
                    th: Thresholds) -> None:
    if decoding.is_regression:
        if e["nrmse"] is not None and ref.get("nrmse") is not None:
            rise = e["nrmse"] - ref["nrmse"]
            _check(checks, tname, f"NRMSE increase <= {th.max_accuracy_drop}", rise <= th.max_accuracy_drop,
                   f"{ref_name} {ref['nrmse']:.4f} -> deployed {e['nrmse']:.4f}")
    elif e["accuracy"] is not None and ref.get("accuracy") is not None:
        drop = ref["accuracy"] - e["accuracy"]
        _check(checks, tname, f"accuracy drop <= {th.max_accuracy_drop}", drop <= th.max_accuracy_drop,
               f"{ref_name} {ref['accuracy']:.4f} -> deployed {e['accuracy']:.4f}")


def _verdict(report: dict) -> None:
    """``passed``, ``refused`` and ``exit_code``: 0 every target verified, 1 a check failed, 3 no check
    failed but a target refused the network (it was not verified)."""
    failed = any(not c["passed"] for c in report["checks"])
    refused = sorted(t for t, e in report["targets"].items() if "refused" in e)
    report["refused"] = refused
    report["passed"] = not failed and not refused
    report["exit_code"] = EXIT_FAILED if failed else (EXIT_REFUSED if refused else EXIT_VERIFIED)


def _report(float_g: Graph, x: np.ndarray, decoding: Decoding, labels, reference, reference_error, th):
    """The target-independent part: float IR and snntorch runs, the import check."""
    decoding.check_output(float_g.output.size)
    if labels is not None:
        labels = decoding.check_labels(labels, x.shape[1], float_g.output.size)
    float_run, float_res = _float_run(float_g, x, decoding)
    out = float_g.output.name
    report = {"timesteps": int(x.shape[0]), "batch": int(x.shape[1]), "layers": [p.name for p in float_g.neurons],
              "decode": str(decoding), "checks": [], "targets": {},
              "float_ir": _score(decoding, float_run, labels, out)}
    snn = None
    if reference is not None:
        entry, snn_run, steps, check = _import_check(float_g, float_res, reference, x, decoding, labels, th)
        report["snntorch"] = entry
        report["checks"].append(check)
        snn = (reference[0], snn_run, steps)
    elif reference_error is not None:
        report["snntorch"] = {"error": reference_error, "accuracy": None}
        _check(report["checks"], "model", "float IR reproduces the snntorch model", False,
               f"not checked: {reference_error}")
    return report, labels, float_run, float_res, snn


def _finish_target(report: dict, build_dir: Path, x: np.ndarray, ctx: tuple, th: Thresholds, decoding: Decoding,
                   labels, sharding: Sharding) -> tuple[str, dict]:
    """Score one build and add its checks to the report: (target, entry)."""
    float_run, float_res, snn = ctx
    checks = report["checks"]
    tname, e = _score_build(build_dir, float_res, float_run, x, decoding, sharding, labels, snn)
    _target_checks(checks, tname, e, decoding, th)
    ref_name, ref = ("snntorch", report["snntorch"]) if snn is not None and snn[1] is not None \
        else ("float IR", report["float_ir"])
    _accuracy_check(checks, tname, e, ref_name, ref, decoding, th)
    if th.fail_on_overflow:
        total = sum(sum(d.values()) for d in e["overflow"].values())
        _check(checks, tname, "no overflow", total == 0,
               f"{total} overflow events {e['overflow']} ({e['overflow_source']})" if total else "none")
    return tname, e


def verify(float_g: Graph, x: np.ndarray, options: dict[str, CompileOptions], thresholds: Thresholds,
           labels: np.ndarray | None = None, reference: tuple | None = None, reference_error: str | None = None,
           decoding: Decoding = Decoding(), keep_builds: Path | None = None, sharding: Sharding = Sharding()) -> dict:
    """The verification report (JSON-ready); ``report['exit_code']`` is what ``snnhw verify`` returns.

    options: per target name, the compile options of its build (what ``snnhw compile`` gets; no
      calibration on ``x`` unless the caller put it there).
    reference: ``(spikes, membranes)`` per layer of the snntorch model on ``x``
      (:func:`snnhw.frontends.snntorch_reference.reference_run`); reference_error: why it could not run.
    keep_builds: directory receiving one build per target (``<dir>/<target>``); default: temporary.
    sharding: where the backends' runs go (:mod:`snnhw.shard`; the same report whatever it is).
    """
    report, labels, *ctx = _report(float_g, x, decoding, labels, reference, reference_error, thresholds)
    with tempfile.TemporaryDirectory(prefix="snnhw-verify-") as tmp:
        root = Path(keep_builds) if keep_builds is not None else Path(tmp)
        for tname, opts in options.items():
            try:
                compile_build(float_g, load_target(tname), opts, root / tname)
            except UnsupportedError as exc:
                report["targets"][tname] = {"refused": str(exc)}
                continue
            _, entry = _finish_target(report, root / tname, x, ctx, thresholds, decoding, labels, sharding)
            if keep_builds is None:
                entry["build"] = None
            report["targets"][tname] = entry
    _verdict(report)
    return report


def same_network(a: Graph, b_: Graph) -> str | None:
    """None when two float IRs describe the same network (ops, parameters, dt; not the source file
    name), else the first node that differs."""
    pa, pb = to_onnx(a), to_onnx(b_)
    if pa.graph.SerializeToString(deterministic=True) == pb.graph.SerializeToString(deterministic=True) \
            and a.dt == b_.dt and a.kind == b_.kind:
        return None
    na, nb = [n.name for n in a.nodes], [n.name for n in b_.nodes]
    if na != nb:
        return f"layers {na} vs {nb}"
    inits = lambda p: {i.name: i.SerializeToString(deterministic=True) for i in p.graph.initializer}
    ia, ib = inits(pa), inits(pb)
    for na_, nb_ in zip(pa.graph.node, pb.graph.node):
        if na_.SerializeToString(deterministic=True) != nb_.SerializeToString(deterministic=True) or \
                any(ia.get(i) != ib.get(i) for i in na_.input if i.startswith(na_.name + ".")):
            return f"layer {na_.name}"
    return f"dt {a.dt} vs {b_.dt}" if a.dt != b_.dt else "graph kind"


def verify_build(float_g: Graph, build_dir: Path, x: np.ndarray, thresholds: Thresholds,
                 labels: np.ndarray | None = None, reference: tuple | None = None,
                 reference_error: str | None = None, decoding: Decoding = Decoding(),
                 sharding: Sharding = Sharding()) -> dict:
    """The report of an existing build (``snnhw verify MODEL --build DIR``): its ``float.onnx`` must
    be the float IR of ``float_g`` (the build came from this model), then it is scored like a build
    :func:`verify` compiles."""
    report, labels, *ctx = _report(float_g, x, decoding, labels, reference, reference_error, thresholds)
    build_float, manifest = b.load_build(build_dir, b.FLOAT_IR)
    diff = same_network(float_g, build_float)
    _check(report["checks"], manifest["target"], "build compiled from this model", diff is None,
           f"{b.FLOAT_IR} equals the model's float IR" if diff is None else
           f"{build_dir}/{b.FLOAT_IR} differs from the model's float IR at {diff}; recompile the build from this model")
    if diff is None:
        tname, entry = _finish_target(report, Path(build_dir), x, ctx, thresholds, decoding, labels, sharding)
        report["targets"][tname] = entry
    _verdict(report)
    return report


def before_finetuning(report: dict, float_g: Graph, before_g: Graph, x: np.ndarray,
                      options: dict[str, CompileOptions], labels: np.ndarray, decoding: Decoding = Decoding(),
                      reference: tuple | None = None) -> dict:
    """Fine-tuning's effect (``snnhw verify TUNED --before MODEL``): ``report``, the verify report of
    the fine-tuned model (float IR ``float_g``), gains ``before``: the model before fine-tuning (float
    IR ``before_g``, the same layers and shapes) scored on ``x``: its snntorch run (``reference``, when
    given), its float IR, and per target its deployed score: its build compiled with that target's
    ``options`` (those of the fine-tuned build) and run in the emulator, the semantics the fine-tuned
    build's backend is checked against. Returns that entry."""
    mine, theirs = ([f"{n.name} {tuple(n.shape)}" for n in g.nodes] for g in (before_g, float_g))
    if mine != theirs:
        i = next((i for i, (p, q) in enumerate(zip(mine, theirs)) if p != q), min(len(mine), len(theirs)))
        at = lambda names: names[i] if i < len(names) else "no layer"
        raise SnnhwError(f"--before is not the same network as the verified model (layer {i}: {at(mine)} vs "
                         f"{at(theirs)}); pass the model that was fine-tuned, loading with the same --arch")
    labels = decoding.check_labels(labels, x.shape[1], before_g.output.size)
    out = before_g.output.name
    entry = {"float_ir": _score(decoding, _float_run(before_g, x, decoding)[0], labels, out), "targets": {}}
    if reference is not None:
        spikes, mems = reference
        if out in spikes and (not decoding.needs_membrane or out in mems):
            entry["snntorch"] = _score(decoding, _scored(decoding, spikes, out, mems.get(out)), labels, out)
    for tname, opts in options.items():
        try:
            fixed = compile_graph(before_g, load_target(tname), opts)
        except UnsupportedError as exc:
            entry["targets"][tname] = {"refused": str(exc)}
            continue
        entry["targets"][tname] = _emulated_score(fixed, x, decoding, labels)
    report["before"] = entry
    return entry


def _emulated_score(fixed: Graph, x: np.ndarray, decoding: Decoding, labels) -> dict:
    """The fixed IR in the emulator on ``x`` (with its latency's extra steps, the output aligned by its
    arrival), scored as a deployed build is."""
    T, out = x.shape[0], fixed.output.name
    res = Emulator(fixed).run(pad_steps(x, latency(fixed)), record_state=decoding.needs_membrane)
    s = arrival(fixed)[out]
    membrane = res.voltage[out][s:s + T] * fixed.output.format.state_scale if decoding.needs_membrane else None
    return _score(decoding, _scored(decoding, {out: res.spikes[out][s:s + T]}, out, membrane), labels, out)
