"""The ``snnhw`` command line: compile, run, verify, report, inspect, finetune, targets.

Every user error prints one line ``error: ...`` on stderr and exits with code 2 (no traceback).
"""
from __future__ import annotations

import importlib
import json
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from snnhw.errors import SnnhwError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Deploy snntorch spiking networks to Loihi (Lava), a bit-accurate emulator and FPGA RTL.")
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


class InputKind(str, Enum):
    spikes = "spikes"
    graded = "graded"


class Encoding(str, Enum):
    rate = "rate"
    latency = "latency"
    delta = "delta"


ENCODE_HELP = ("encode static input [B, *shape] ([T, B, *shape] for delta) into spikes (snnhw.encoders, "
               "docs/python-api.md)")


def _load_input(path: Path, encode: "Encoding | None", steps: int | None, seed: int | None) -> np.ndarray:
    """The input array of --input, spike-encoded when --encode is given."""
    from snnhw.arrays import load_array
    from snnhw.encoders import encode as encode_array
    x = load_array(path)
    if encode is None:
        if steps is not None or seed is not None:
            raise SnnhwError("--steps and --seed need --encode rate|latency|delta")
        return x
    return encode_array(encode.value, x, steps, seed)


MAX_INPUT_ELEMENTS = 1 << 26  # per sample; larger shapes are almost surely typos


def _parse_shape(text: str | None) -> tuple | None:
    if text is None:
        return None
    try:
        shape = tuple(int(p) for p in text.replace("x", ",").split(",") if p.strip())
    except ValueError:
        raise SnnhwError(f"--input-shape {text!r}: expected integers like 1,28,28") from None
    if not shape or min(shape) < 1:
        raise SnnhwError(f"--input-shape {text!r}: dimensions must be positive")
    if int(np.prod(shape, dtype=np.float64)) > MAX_INPUT_ELEMENTS:
        raise SnnhwError(f"--input-shape {text!r}: more than {MAX_INPUT_ELEMENTS} values per sample; "
                         "check the shape (C,H,W without the batch axis)")
    return shape


def backend_of(target):
    return importlib.import_module(target.backend)


@app.command()
def compile(
    model: Path = typer.Argument(..., help="snntorch .pt (state_dict or whole module) or NIR .nir file"),
    output: Path = typer.Option(..., "-o", "--output", help="build directory to create (replaced atomically)"),
    target: str = typer.Option("emu", "--target", "-t", help="target name (see `snnhw targets`)"),
    arch: Optional[str] = typer.Option(None, help="FILE.py:NAME building the module, for a state_dict"),
    input_shape: Optional[str] = typer.Option(None, help="per-sample input shape, e.g. 1,28,28 (required for conv nets)"),
    input_kind: Optional[InputKind] = typer.Option(None, help="spikes (0/1) or graded (analog values, direct "
                                                   "encoding); default: from --calib, else spikes"),
    input_bits: Optional[int] = typer.Option(None, help="width of graded input values (default: the target's)"),
    calib: Optional[Path] = typer.Option(None, help="sample input [T, B, *shape] (.npy) for input range and kind"),
    weight_bits: Optional[int] = typer.Option(None, help="weight width (at most the target's)"),
    dt: Optional[float] = typer.Option(None, help="seconds per timestep (NIR import; default 1e-4 for NIR)"),
    trust_pickle: bool = typer.Option(False, help="load a whole pickled model even if it names classes outside "
                                      "the torch.nn/snntorch allowlist (runs code from the file)"),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="list the compiler passes as they run"),
):
    """Compile MODEL for a target into a build directory."""
    from snnhw import build as b
    from snnhw.arrays import load_array
    from snnhw.compiler.mapping import map_graph
    from snnhw.compiler.pipeline import PASSES, compile_graph
    from snnhw.compiler.quant_report import quantization_report
    from snnhw.frontends import load_model
    from snnhw.ir import save
    from snnhw.targets import load as load_target

    tgt = load_target(target)
    with out.status(f"importing {model}"):
        float_g = load_model(model, arch=arch, input_shape=_parse_shape(input_shape), trust_pickle=trust_pickle, dt=dt)
    opts, kind = _compile_options(float_g, tgt, calib and load_array(calib), input_kind, input_bits, weight_bits,
                                  "--calib")
    if verbose:
        out.print(f"passes: {' -> '.join(p.name for p in PASSES)}")
    fixed = compile_graph(float_g, tgt, opts,
                          on_pass=(lambda p, g: out.print(f"  [bold]{p.name}[/]: {p.doc}")) if verbose else None)
    mapping = map_graph(fixed, tgt)
    with b.atomic_dir(output) as tmp:
        save(float_g, tmp / b.FLOAT_IR)
        save(fixed, tmp / b.FIXED_IR)
        quant = quantization_report(float_g, fixed, opts.calibration)
        b.write_json(tmp / "quantization.json", quant)
        backend = backend_of(tgt)
        files = [b.FLOAT_IR, b.FIXED_IR, "quantization.json"] + backend.emit(fixed, tmp)
        if mapping is not None:
            b.write_json(tmp / b.MAPPING, mapping)
            files.append(b.MAPPING)
        b.write_manifest(tmp, fixed, files, {"input_kind": kind})
    _print_layers(fixed)
    if mapping is not None:
        m = mapping["summary"]
        out.print(f"mapping: {m['cores']} cores on {m['chips']} chip(s); neuron utilization "
                  f"{m['neuron_utilization']:.1%}, synaptic memory {m['synaptic_memory_utilization']:.1%}")
    for note in getattr(backend, "notes", lambda g: [])(fixed):
        out.print(f"note: {note}")
    for warning in quant["warnings"]:  # lost precision is never silent (quantization.json lists them too)
        err.print(f"warning: {warning}", markup=False, soft_wrap=True)
    out.print(f"compiled {model} for [bold]{tgt.name}[/] -> {output}")


def _check_shape(x, g, what: str):
    shape = g.input.shape
    if x.ndim != len(shape) + 2 or tuple(x.shape[2:]) != tuple(shape):
        raise SnnhwError(f"{what} has shape {tuple(x.shape)}; expected [T, B, {', '.join(map(str, shape))}]")


def _compile_options(float_g, tgt, sample, input_kind, input_bits, weight_bits, what):
    """Compile options from the flags and an optional sample input (its range and kind)."""
    from snnhw.compiler.pipeline import CompileOptions
    kind, x_max = input_kind, 1.0
    if sample is not None:
        _check_shape(sample, float_g, what)
        x_max = float(np.abs(sample).max()) or 1.0
        if kind is None:
            kind = InputKind.spikes if np.all((sample == 0) | (sample == 1)) else InputKind.graded
    kind = kind or InputKind.spikes
    bits = 1 if kind == InputKind.spikes else (input_bits or tgt.numerics.input_bits)
    if kind == InputKind.graded and not (2 <= bits <= 24):
        raise SnnhwError(f"--input-bits {bits}: graded input needs 2..24 bits")
    return CompileOptions(input_bits=bits, input_max=x_max, weight_bits=weight_bits, calibration=sample), kind.value


def _print_layers(g):
    from snnhw.ir import LIF, Conv2d, Dense
    t = Table(title=f"{g.kind} IR ({g.target or 'float'})")
    for col in ("layer", "op", "shape", "details"):
        t.add_column(col)
    for n in g.nodes:
        detail = ""
        if isinstance(n, (Dense, Conv2d)):
            detail = f"weights {tuple(n.weight.shape)}, delay {n.delay}" + (", bias" if n.bias is not None else "")
        elif isinstance(n, LIF):
            fmt = lambda a: f"{np.asarray(a).item()}" if np.ndim(a) == 0 else f"[{np.min(a)}..{np.max(a)}]"
            detail = (f"alpha {fmt(n.alpha)}, beta {fmt(n.beta)}, threshold {fmt(n.threshold)}, "
                      f"reset {n.reset_mode}/{n.reset_timing}" + (", recurrent" if n.rec_weight is not None else ""))
        elif type(n).__name__ == "Input":
            detail = "binary spikes" if n.bits == 1 else (f"{n.bits}-bit graded, scale {n.scale}" if n.bits else "float")
        t.add_row(n.name, type(n).__name__, "x".join(map(str, n.shape)), detail)
    out.print(t)


@app.command()
def run(
    build: Path = typer.Argument(..., help="build directory from `snnhw compile`"),
    input: Path = typer.Option(..., "--input", "-i", help="input [T, B, *shape] as .npy"),
    output: Path = typer.Option(..., "-o", "--output", help="result .npz: one [T', B, *shape] int8 array per layer"),
    target: Optional[str] = typer.Option(None, "--target", "-t", help="backend to run on (default: the build's)"),
    extra_steps: Optional[int] = typer.Option(None, help="zero steps appended so late spikes come out "
                                              "(default: the network's latency)"),
    record_state: bool = typer.Option(False, help="also store <layer>.voltage and <layer>.current traces"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
    encode: Optional[Encoding] = typer.Option(None, help=ENCODE_HELP),
    steps: Optional[int] = typer.Option(None, help="timesteps to generate with --encode rate|latency"),
    seed: Optional[int] = typer.Option(None, help="seed of --encode rate (default 0)"),
):
    """Run a build on an input array; store every layer's spikes."""
    from snnhw.arrays import save_npz
    from snnhw.build import load_build
    from snnhw.compiler.timing import latency
    from snnhw.targets import load as load_target
    from snnhw.targets.emu.emulator import quantize_input

    g, manifest = load_build(build)
    tgt = load_target(target or manifest["target"])
    x = _load_input(input, encode, steps, seed)
    quantize_input(g, x)  # validates shape and values before any backend starts
    pad = latency(g) if extra_steps is None else extra_steps
    if pad < 0:
        raise SnnhwError("--extra-steps must be >= 0")
    if pad:
        x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
    with out.status(f"running {x.shape[0]} steps x {x.shape[1]} samples on {tgt.name}"):
        res = backend_of(tgt).run(g, x, record_state=record_state, build_dir=Path(build))
    arrays = {name: s.astype(np.int8) for name, s in res.spikes.items()}
    arrays["output"] = arrays[g.output.name]
    for name, v in res.voltage.items():
        arrays[f"{name}.voltage"] = v
    for name, u in res.current.items():
        arrays[f"{name}.current"] = u
    save_npz(output, arrays)
    summary = {"target": tgt.name, "timesteps": int(x.shape[0]), "batch": int(x.shape[1]), "appended_steps": pad,
               "spikes": {k: int(v.sum()) for k, v in res.spikes.items()}, "overflow": res.overflow,
               "output_file": str(output)}
    if as_json:
        print(json.dumps(summary, indent=2, sort_keys=True))
        return
    t = Table(title=f"run on {tgt.name}: {summary['timesteps']} steps x {summary['batch']} samples")
    for col in ("layer", "neurons", "spikes", "spikes/neuron/step", "overflow events"):
        t.add_column(col)
    for n in g.neurons:
        s = res.spikes[n.name]
        rate = s.sum() / max(1, s.size)
        ov = ", ".join(f"{k} {v}" for k, v in res.overflow.get(n.name, {}).items()) or "0"
        t.add_row(n.name, str(n.size), str(int(s.sum())), f"{rate:.4f}", ov)
    out.print(t)
    other = {k: v for k, v in res.overflow.items() if k not in {n.name for n in g.neurons}}
    for k, v in other.items():
        out.print(f"[yellow]overflow[/] in {k}: {v}")
    out.print(f"wrote {output}")


@app.command()
def verify(
    model: Path = typer.Argument(..., help="snntorch .pt (state_dict or whole module) or NIR .nir file"),
    input: Path = typer.Option(..., "--input", "-i", help="input [T, B, *shape] as .npy"),
    labels: Optional[Path] = typer.Option(None, help="labels [B] (.npy) for float vs fixed accuracy"),
    targets: str = typer.Option("emu", help="comma-separated targets, e.g. emu,loihi"),
    arch: Optional[str] = typer.Option(None, help="FILE.py:NAME building the module, for a state_dict"),
    input_shape: Optional[str] = typer.Option(None, help="per-sample input shape, e.g. 1,28,28"),
    input_kind: Optional[InputKind] = typer.Option(None, help="spikes or graded (default: from the input)"),
    input_bits: Optional[int] = typer.Option(None, help="width of graded input values (default: the target's)"),
    weight_bits: Optional[int] = typer.Option(None, help="weight width (at most the target's)"),
    dt: Optional[float] = typer.Option(None, help="seconds per timestep (NIR import)"),
    trust_pickle: bool = typer.Option(False, help="see `snnhw compile --help`"),
    max_rate_error: float = typer.Option(0.05, help="fail if a layer's mean per-neuron rate error exceeds this"),
    min_class_agreement: float = typer.Option(0.9, help="fail if fewer output classes agree with the float IR"),
    max_accuracy_drop: float = typer.Option(0.05, help="fail if fixed accuracy is lower by more (needs --labels)"),
    fail_on_overflow: bool = typer.Option(False, help="fail on any saturation or wrap event"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
    encode: Optional[Encoding] = typer.Option(None, help=ENCODE_HELP),
    steps: Optional[int] = typer.Option(None, help="timesteps to generate with --encode rate|latency"),
    seed: Optional[int] = typer.Option(None, help="seed of --encode rate (default 0)"),
):
    """Compare the fixed-point deployment with the float reference, layer by layer; exit 1 if a check fails."""
    from snnhw.arrays import load_array
    from snnhw.frontends import load_model_and_module
    from snnhw.targets import load as load_target
    from snnhw.verify import Thresholds, verify as run_verify

    names = [t.strip() for t in targets.split(",") if t.strip()]
    if not names:
        raise SnnhwError("--targets is empty; name at least one target, e.g. --targets emu")
    tgts = [load_target(t) for t in names]
    with out.status(f"importing {model}"):
        float_g, net = load_model_and_module(model, arch=arch, input_shape=_parse_shape(input_shape),
                                             trust_pickle=trust_pickle, dt=dt)
    x = _load_input(input, encode, steps, seed)
    opts, _ = _compile_options(float_g, tgts[0], x, input_kind, input_bits, weight_bits, "--input")
    y = None
    if labels is not None:
        y = load_array(labels).reshape(-1)
        if y.shape[0] != x.shape[1]:
            raise SnnhwError(f"--labels has {y.shape[0]} entries for {x.shape[1]} samples")
    reference, note = None, None
    if net is not None:
        from snnhw.frontends.snntorch_reference import reference_run
        try:
            reference = reference_run(net, float_g.meta.get("forward", "per_step"), x)[0]
        except SnnhwError as exc:
            note = f"snntorch model not run: {exc}"
    th = Thresholds(max_rate_error, min_class_agreement, max_accuracy_drop, fail_on_overflow)
    with out.status("running float IR, fixed point and targets"):
        report = run_verify(float_g, x, names, opts, th, y, reference)
    if note:
        report["note"] = note
    if as_json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        _print_verify(report)
    raise typer.Exit(0 if report["passed"] else 1)


def _print_verify(r: dict):
    if "snntorch" in r:
        s = r["snntorch"]
        match = ", ".join(f"{k} {v['spike_match']:.4f}" for k, v in s["layers"].items())
        out.print(f"snntorch vs float IR ({s['steps']} steps): spike match {match}")
    if r.get("note"):
        out.print(f"note: {r['note']}")
    for tname, e in r["targets"].items():
        t = Table(title=f"{tname}: fixed point vs float IR ({r['timesteps']} steps x {r['batch']} samples, "
                        f"latency {e['latency']})")
        for col in ("layer", "neurons", "spike match", "spikes float", "spikes fixed", "rate err mean/max",
                    "first divergence: step, sample, neuron (spike, membrane float -> fixed)"):
            t.add_column(col)
        for name, L in e["layers"].items():
            d = L["first_divergence"]
            div = "none" if d is None else (
                f"{d['step']}, {d['sample']}, {d['neuron']} (spike {d['spike_reference']} -> {d['spike']}, "
                f"v {d.get('membrane_reference', float('nan')):.4g} -> {d.get('membrane', float('nan')):.4g})")
            t.add_row(name, str(L["neurons"]), f"{L['spike_match']:.4f}", str(L["spikes_reference"]), str(L["spikes"]),
                      f"{L['rate_error_mean']:.4f} / {L['rate_error_max']:.4f}", div)
        out.print(t)
        acc = ""
        if e["accuracy"] is not None:
            acc = f"; accuracy float IR {r['float_ir']['accuracy']:.4f}, fixed {e['accuracy']:.4f}"
            if r.get("snntorch", {}).get("accuracy") is not None:
                acc += f", snntorch {r['snntorch']['accuracy']:.4f}"
        ov = sum(sum(d.values()) for d in e["overflow"].values())
        out.print(f"{tname}: class agreement {e['class_agreement']:.4f}{acc}; overflow events {ov}")
    for c in r["checks"]:
        mark = "[green]PASS[/]" if c["passed"] else "[red]FAIL[/]"
        out.print(f"{mark} {c['target']}: {c['check']} ({c['detail']})")
    out.print("[bold green]verified[/]" if r["passed"] else "[bold red]verification failed[/]")


@app.command()
def report(
    build: Path = typer.Argument(..., help="build directory from `snnhw compile`"),
    input: Path = typer.Option(..., "--input", "-i", help="input [T, B, *shape] as .npy"),
    output: Path = typer.Option(..., "-o", "--output", help="report directory: report.json and report.html"),
    encode: Optional[Encoding] = typer.Option(None, help=ENCODE_HELP),
    steps: Optional[int] = typer.Option(None, help="timesteps to generate with --encode rate|latency"),
    seed: Optional[int] = typer.Option(None, help="seed of --encode rate (default 0)"),
):
    """Spike counts, synaptic operations, energy and plots of a build on an input."""
    from snnhw.build import load_build
    from snnhw.report import build_report, write_report
    from snnhw.targets.emu.emulator import quantize_input

    g, _ = load_build(build)
    x = _load_input(input, encode, steps, seed)
    quantize_input(g, x)
    with out.status("simulating and plotting"):
        rep, ctx = build_report(build, x, str(input))
        write_report(rep, ctx, output)
    c = rep["counts"]
    t = Table(title=f"report: {rep['target']}, {c['timesteps']} steps x {c['batch']} samples")
    for col in ("layer", "spikes", "rate", "synaptic ops", "updates active/inactive", "energy µJ"):
        t.add_column(col)
    by_layer = c.get("energy", {}).get("by_layer_uj", {})
    for name, L in c["layers"].items():
        t.add_row(name, str(L["spikes"]), f"{L['rate_per_step']:.4f}", str(L["synaptic_ops"]),
                  f"{L['neuron_updates_active']}/{L['neuron_updates_inactive']}",
                  f"{by_layer[name]:.4g}" if name in by_layer else "-")
    out.print(t)
    if "energy" in c:
        out.print(f"energy: {c['energy']['per_sample_uj']:.4g} µJ per sample ({rep['target']} constants; "
                  f"source: {c['energy']['source'].split(',')[0]})")
    a = c["ann_reference"]
    out.print(f"non-spiking reference: {a['macs_per_sample']} MACs = {a['ann_energy_per_sample_uj']:.4g} µJ per sample "
              "(45 nm FP32, Horowitz 2014)")
    out.print(f"wrote {output}/report.json and {output}/report.html")


@app.command()
def inspect(build: Path = typer.Argument(..., help="build directory"),
            as_json: bool = typer.Option(False, "--json", help="print as JSON")):
    """Show a build: target, input, layers and their fixed-point parameters."""
    from snnhw.build import load_build
    g, manifest = load_build(build)
    if as_json:
        from snnhw.ir import LIF
        layers = []
        for n in g.nodes:
            d = {"name": n.name, "op": type(n).__name__, "shape": list(n.shape)}
            if isinstance(n, LIF):
                d.update(reset=f"{n.reset_mode}/{n.reset_timing}", recurrent=n.rec_weight is not None,
                         state_bits=[n.format.current.bits, n.format.voltage.bits], state_lsb=n.format.state_scale)
            elif hasattr(n, "delay"):
                d.update(delay=n.delay, weight_shape=list(n.weight.shape))
            layers.append(d)
        print(json.dumps({"manifest": manifest, "nodes": layers}, indent=2, sort_keys=True))
        return
    out.print(f"build {build}: target [bold]{manifest['target']}[/], snnhw {manifest['snnhw_version']}, "
              f"input {manifest['input']['shape']} ({manifest.get('input_kind', '?')})")
    _print_layers(g)
    out.print("files: " + ", ".join(sorted(manifest["files"])))


@app.command()
def finetune(
    model: Path = typer.Argument(..., help="snntorch .pt (state_dict, or a whole module with --trust-pickle)"),
    arch: str = typer.Option(..., help="FILE.py:NAME building the module (runs that file: use your own code)"),
    data: Path = typer.Option(..., help="training data .npz: x [T, B, *shape] and integer labels y [B]"),
    output: Path = typer.Option(..., "-o", "--output", help="fine-tuned state_dict (.pt) to write; loads with --arch"),
    target: str = typer.Option("emu", "--target", "-t", help="target whose fixed-point forward is trained against"),
    weight_bits: Optional[int] = typer.Option(None, help="weight width (at most the target's)"),
    input_bits: Optional[int] = typer.Option(None, help="width of graded input values (default: the target's)"),
    input_shape: Optional[str] = typer.Option(None, help="per-sample input shape, e.g. 1,28,28"),
    epochs: int = typer.Option(5, help="passes over the training data"),
    seed: int = typer.Option(0, help="seed of the shuffling (same seed, same result)"),
    lr: float = typer.Option(2e-3, help="Adam learning rate"),
    batch_size: int = typer.Option(64, help="samples per step"),
    trust_pickle: bool = typer.Option(False, help="see `snnhw compile --help`"),
):
    """Fine-tune MODEL's float weights with the target's fixed-point forward in the loop (docs/finetune.md)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from snnhw.finetune import finetune as run_finetune, load_training_data, save_state_dict
    from snnhw.frontends import load_model_and_module
    from snnhw.targets import load as load_target

    inputs = {p.resolve() for p in (model, data, Path(arch.rsplit(":", 1)[0]))}
    if output.resolve() in inputs:
        raise SnnhwError(f"-o {output} is one of this command's inputs; write the fine-tuned model elsewhere")
    if not output.resolve().parent.is_dir():
        raise SnnhwError(f"-o {output}: the directory {output.parent} does not exist")
    tgt = load_target(target)
    x, y = load_training_data(data)
    float_g, net = load_model_and_module(model, arch=arch, input_shape=_parse_shape(input_shape),
                                         trust_pickle=trust_pickle)
    kind = InputKind.spikes if np.all((x == 0) | (x == 1)) else InputKind.graded
    opts, _ = _compile_options(float_g, tgt, None, kind, input_bits, weight_bits, "--data")
    _check_shape(x, float_g, "--data x")
    flags = [f"--target {tgt.name}"] + ([f"--weight-bits {weight_bits}"] if weight_bits else []) + \
        (["--input-kind graded"] if kind == InputKind.graded else []) + ([f"--input-bits {input_bits}"] if input_bits else [])
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=out, transient=True) as bar:
        steps = -(-x.shape[1] // batch_size)
        task = bar.add_task("epoch 1", total=steps)

        def batch(i, loss):
            bar.update(task, completed=i + 1, description=f"epoch {len(result_epochs) + 1}/{epochs}, loss {loss:.4f}")

        result_epochs: list = []

        def epoch(s):
            result_epochs.append(s)
            bar.console.print(f"epoch {s.epoch}/{epochs}: loss {s.loss:.4f}, deployed accuracy {s.deployed_accuracy:.4f} "
                              f"({s.seconds:.1f} s)")
            bar.reset(task, total=steps)

        res = run_finetune(net, (x, y), tgt, opts, float_g.input.shape, epochs, seed, lr, batch_size, epoch, batch)
    save_state_dict(net, output)
    out.print(f"float accuracy {res.float_accuracy:.4f}; deployed on {tgt.name} before {res.deployed_before:.4f}, "
              f"after {res.deployed_after:.4f} (training data, {res.seconds:.1f} s)")
    out.print(f"wrote {output}; deploy with: snnhw compile {output} --arch {arch} {' '.join(flags)}", soft_wrap=True)


@app.command()
def targets(as_json: bool = typer.Option(False, "--json", help="print as JSON")):
    """List the targets and their limits."""
    from snnhw.targets import available, load
    descs = [load(n) for n in available()]
    if as_json:
        print(json.dumps({d.name: d.raw for d in descs}, indent=2, sort_keys=True))
        return
    t = Table(title="targets")
    for col in ("target", "summary", "weights", "state", "resets", "synapse delay"):
        t.add_column(col)
    for d in descs:
        n = d.numerics
        t.add_row(d.name, d.summary, f"{n.weight_bits}-bit",
                  f"u {n.current.bits}b {n.current.overflow}, v {n.voltage.bits}b {n.voltage.overflow}",
                  ", ".join(f"{m}" for m in d.features.reset_modes) + " / " + ", ".join(d.features.reset_timings),
                  str(n.synapse_delay))
    out.print(t)


def main(argv=None) -> int:
    """Run the CLI; return the exit code (2 for every user error, with a one-line message)."""
    try:
        app(args=argv, prog_name="snnhw")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except SnnhwError as exc:
        err.print(f"error: {exc}", markup=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except MemoryError:
        err.print("error: out of memory; use a smaller batch or fewer timesteps")
        return 2
    return 0


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
