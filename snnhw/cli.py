"""The ``snnhw`` command line: compile, run, verify, report, inspect, finetune, targets.

Every user error prints one line ``error: ...`` on stderr and exits with code 2 (no traceback).
"""
from __future__ import annotations

import json
import sys
import tempfile
from contextlib import closing
from enum import Enum
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape as esc  # layer names are text, never rich markup
from rich.table import Table

from snnhw.errors import SnnhwError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Deploy snntorch spiking networks to Loihi (Lava), a bit-accurate emulator and FPGA RTL.")
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


class ChannelSteps(str, Enum):
    auto = "auto"
    on = "on"
    off = "off"


CHANNEL_STEPS_HELP = ("per-neuron weight steps (docs/compiler.md): auto where some row of a layer would keep too few "
                      "effective bits at one step per layer, on wherever a row gains a bit, off for one step per layer "
                      "(loihi: keeps Intel's LIF where it could run the layer)")


class InputKind(str, Enum):
    spikes = "spikes"
    graded = "graded"


class Encoding(str, Enum):
    rate = "rate"
    latency = "latency"
    delta = "delta"


ARCH_HELP = ("FILE.py:NAME building the module, for a state_dict; snnhw imports and runs FILE.py, so use only "
             "your own code (docs/security.md)")
WORKERS_HELP = "local worker processes the batch is sharded over (the same result for any N; docs/scale.md)"
RAY_HELP = ("run the shards on a Ray cluster: ADDRESS (ray://host:10001), 'auto' (this machine's cluster) or "
            "'local' (a private one with --workers CPUs)")

ENCODE_HELP = ("encode static input [B, *shape] ([T, B, *shape] for delta) into spikes (snnhw.encoders, "
               "docs/python-api.md)")


def _load_input(path: Path, encode: "Encoding | None", steps: int | None, seed: int | None,
                mmap: bool = False) -> np.ndarray:
    """The input array of --input, spike-encoded when --encode is given (mmap: a .npy file is mapped
    read-only, see snnhw.arrays.load_array)."""
    from snnhw.arrays import check_samples, load_array
    from snnhw.encoders import encode as encode_array
    x = load_array(path, mmap=mmap and encode is None)
    if encode is None:
        if steps is not None or seed is not None:
            raise SnnhwError("--steps and --seed need --encode rate|latency|delta")
    else:
        x = encode_array(encode.value, x, steps, seed)
    check_samples(x, f"--input {path}")
    return x


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


@app.command()
def compile(
    model: Path = typer.Argument(..., help="snntorch .pt (state_dict or whole module) or NIR .nir file"),
    output: Path = typer.Option(..., "-o", "--output", help="build directory to create (replaces only an snnhw "
                                "build, atomically)"),
    target: str = typer.Option("emu", "--target", "-t", help="target name (see `snnhw targets`)"),
    arch: Optional[str] = typer.Option(None, help=ARCH_HELP),
    input_shape: Optional[str] = typer.Option(None, help="per-sample input shape, e.g. 1,28,28 (required for conv nets)"),
    input_kind: Optional[InputKind] = typer.Option(None, help="spikes (0/1) or graded (analog values, direct "
                                                   "encoding); default: from --calib, else spikes"),
    input_bits: Optional[int] = typer.Option(None, help="width of graded input values (default: the target's)"),
    calib: Optional[Path] = typer.Option(None, help="sample input [T, B, *shape] (.npy) for input range and kind"),
    weight_bits: Optional[int] = typer.Option(None, help="weight width (at most the target's)"),
    channel_steps: ChannelSteps = typer.Option(ChannelSteps.auto, help=CHANNEL_STEPS_HELP),
    dt: Optional[float] = typer.Option(None, help="seconds per timestep (NIR import; default 1e-4 for NIR)"),
    trust_pickle: bool = typer.Option(False, help="load a whole pickled model even if it names classes outside "
                                      "the torch.nn/snntorch allowlist (runs code from the file)"),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="list the compiler passes as they run"),
):
    """Compile MODEL for a target into a build directory."""
    from snnhw import build as b
    from snnhw.arrays import load_array
    from snnhw.compile import compile_build
    from snnhw.compiler.pipeline import passes_for
    from snnhw.frontends import load_model
    from snnhw.safety import check_disjoint, one_line
    from snnhw.targets import load as load_target

    arch_file = arch.rpartition(":")[0] or None if arch else None
    check_disjoint(output, "-o", {"the model": model, "the --arch file": arch_file, "--calib": calib})
    b.check_output_dir(output, "build")
    tgt = load_target(target)
    with out.status(f"importing {model}"):
        float_g = load_model(model, arch=arch, input_shape=_parse_shape(input_shape), trust_pickle=trust_pickle, dt=dt)
    opts, _ = _compile_options(float_g, tgt, calib and load_array(calib), input_kind, input_bits, weight_bits,
                               "--calib", channel_steps)
    if verbose:
        out.print(f"passes: {' -> '.join(p.name for p in passes_for(tgt))}")
    built = compile_build(float_g, tgt, opts, output,
                          on_pass=(lambda p, g: out.print(f"  [bold]{p.name}[/]: {p.doc}")) if verbose else None)
    _print_layers(built.fixed)
    if built.mapping is not None:
        m = built.mapping["summary"]
        out.print(f"mapping: {m['cores']} cores on {m['chips']} chip(s); neuron utilization "
                  f"{m['neuron_utilization']:.1%}, synaptic memory {m['synaptic_memory_utilization']:.1%}")
    for note in built.notes:
        out.print(f"note: {esc(note)}")
    for warning in built.warnings:  # lost precision is never silent (quantization.json lists them too)
        err.print(f"warning: {one_line(warning)}", markup=False, soft_wrap=True)
    out.print(f"compiled {model} for [bold]{tgt.name}[/] -> {output}")


def _check_shape(x, g, what: str):
    shape = g.input.shape
    if x.ndim != len(shape) + 2 or tuple(x.shape[2:]) != tuple(shape):
        raise SnnhwError(f"{what} has shape {tuple(x.shape)}; expected [T, B, {', '.join(map(str, shape))}]")


def _compile_options(float_g, tgt, sample, input_kind, input_bits, weight_bits, what, channel_steps=ChannelSteps.auto):
    """Compile options from the flags and an optional sample input (its range and kind)."""
    from snnhw.arrays import check_samples
    from snnhw.compiler.pipeline import CompileOptions
    kind, x_max = input_kind, 1.0
    if weight_bits is not None and weight_bits < 2:
        raise SnnhwError(f"--weight-bits {weight_bits}: weights need at least 2 bits (sign and magnitude)")
    if sample is not None:
        check_samples(sample, what)
        _check_shape(sample, float_g, what)
        x_max = float(np.abs(sample).max()) or 1.0
        if kind is None:
            kind = InputKind.spikes if np.all((sample == 0) | (sample == 1)) else InputKind.graded
    kind = kind or InputKind.spikes
    bits = 1 if kind == InputKind.spikes else (tgt.numerics.input_bits if input_bits is None else input_bits)
    if kind == InputKind.graded and not (2 <= bits <= 24):
        raise SnnhwError(f"--input-bits {bits}: graded input needs 2..24 bits")
    return CompileOptions(input_bits=bits, input_max=x_max, weight_bits=weight_bits, calibration=sample,
                          channel_steps=ChannelSteps(channel_steps).value), kind.value


def _print_layers(g):
    t = Table(title=f"{g.kind} IR ({g.target or 'float'})")
    for col in ("layer", "op", "shape", "details"):
        t.add_column(col)
    for n in g.nodes:
        detail = ""
        if n.is_synapse:
            detail = f"weights {tuple(n.weight.shape)}, delay {n.delay}" + (", bias" if n.bias is not None else "")
            if n.out_shift:
                detail += f", output << {n.out_shift}"
            if n.is_plastic:
                detail += "; " + n.summary()
        elif n.is_population:
            fmt = lambda a: f"{np.asarray(a).item()}" if np.ndim(a) == 0 else f"[{np.min(a)}..{np.max(a)}]"
            detail = (f"alpha {fmt(n.alpha)}, beta {fmt(n.beta)}, threshold {fmt(n.threshold)}, "
                      f"reset {n.reset_mode}/{n.reset_timing}" + (", recurrent" if n.rec_weight is not None else ""))
            if n.extra_inputs:
                detail += ", input " + " + ".join(esc(s) for s in n.sources())
        elif n.is_input:
            detail = "binary spikes" if n.bits == 1 else (f"{n.bits}-bit graded, scale {n.scale}" if n.bits else "float")
        t.add_row(esc(n.name), type(n).__name__, "x".join(map(str, n.shape)), detail)
    out.print(t)


@app.command()
def run(
    build: Path = typer.Argument(..., help="build directory from `snnhw compile`"),
    input: Path = typer.Option(..., "--input", "-i", help="input [T, B, *shape] as .npy"),
    output: Path = typer.Option(..., "-o", "--output", help="result .npz: one [T', B, *shape] int8 array per layer "
                                "(replaces only a result `snnhw run` wrote)"),
    target: Optional[str] = typer.Option(None, "--target", "-t", help="backend to run on (default: the build's)"),
    extra_steps: Optional[int] = typer.Option(None, help="zero steps appended so late spikes come out "
                                              "(default: the network's latency)"),
    record_state: bool = typer.Option(False, help="also store <layer>.voltage and <layer>.current traces"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
    encode: Optional[Encoding] = typer.Option(None, help=ENCODE_HELP),
    steps: Optional[int] = typer.Option(None, help="timesteps to generate with --encode rate|latency"),
    seed: Optional[int] = typer.Option(None, help="seed of --encode rate (default 0)"),
    retarget: bool = typer.Option(False, help="if --target differs from the build's target: recompile the build's "
                                  "float IR (float.onnx) for it into a temporary build and run that"),
    workers: int = typer.Option(1, help=WORKERS_HELP),
    ray: Optional[str] = typer.Option(None, help=RAY_HELP),
    layers: Optional[str] = typer.Option(None, help="comma-separated populations to store (default: all; "
                                         "the output layer is always stored)"),
):
    """Run a build on an input array; store every layer's spikes (or --layers), streamed to the file."""
    from snnhw.arrays import StreamedNpz, check_output_file
    from snnhw.build import load_build
    from snnhw.safety import check_disjoint
    from snnhw.semantics import RunResult, latency, quantize_input
    from snnhw.shard import DEFAULT_SHARD_SAMPLES, plan_blocks, stream_sharded
    from snnhw.targets import load as load_target
    from snnhw.targets.contract import backend_for

    check_disjoint(output, "-o", {"the build": build, "--input": input})
    check_output_file(output)
    g, manifest = load_build(build)
    keep = _kept_layers(g, layers)
    tgt = load_target(target or manifest["target"])
    x = _load_input(input, encode, steps, seed, mmap=True)
    for s0 in range(0, x.shape[1], DEFAULT_SHARD_SAMPLES):  # validates shape and values before any backend
        quantize_input(g, x[:, s0:s0 + DEFAULT_SHARD_SAMPLES])  # starts, a few samples at a time (memory)
    with tempfile.TemporaryDirectory(prefix="snnhw-retarget-") as tmp:
        if retarget and tgt.name != g.target:
            g = _retarget(build, manifest, tgt, Path(tmp))
            build = Path(tmp)
        backend = backend_for(tgt)
        backend.check(g)  # refuses a build made for another target before any work (one line, with the remedy)
        pad = latency(g) if extra_steps is None else extra_steps
        if pad < 0:
            raise SnnhwError("--extra-steps must be >= 0")
        sharding = _sharding(workers, ray)
        T, B = x.shape[0] + pad, x.shape[1]  # each shard's slice is padded, never the whole input
        stored = [n for n in g.neurons if keep is None or n.name in keep]
        shapes = {n.name: (T, B, *n.shape) for n in stored}
        if record_state:
            shapes.update({f"{n.name}.{k}": (T, B, *n.shape) for n in stored for k in ("voltage", "current")})
        samples, chunk = plan_blocks(g, T, B, record_state, sharding, hasattr(backend, "stream"))
        res = RunResult(overflow_source="")
        spikes = {n.name: 0 for n in stored}
        with StreamedNpz(output, shapes, {"output": g.output.name}) as npz, \
                out.status(f"running {T} steps x {B} samples on {tgt.name} ({sharding.describe()})"):
            blocks = stream_sharded(tgt.name, Path(build), x, record_state, sharding, samples, keep, chunk, pad)
            with closing(blocks):
                for shard, t0, part in blocks:
                    for name, s in part.spikes.items():
                        npz.write(name, t0, shard.start, s.astype(np.int8, copy=False))
                        spikes[name] += int(np.count_nonzero(s))
                    for kind in ("voltage", "current"):
                        for name, v in getattr(part, kind).items():
                            npz.write(f"{name}.{kind}", t0, shard.start, v)
                    for node, counts in part.overflow.items():
                        for key, n in counts.items():
                            res.count(node, key, n)
                    res.overflow_source = part.overflow_source
            npz.finish()
    summary = {"target": tgt.name, "build_target": manifest["target"], "retargeted": g.target != manifest["target"],
               "timesteps": T, "batch": B, "appended_steps": pad,
               "spikes": spikes, "overflow": res.overflow,
               "overflow_source": res.overflow_source, "output_file": str(output)}
    if as_json:
        print(json.dumps(summary, indent=2, sort_keys=True))
        return
    t = Table(title=f"run on {tgt.name}: {summary['timesteps']} steps x {summary['batch']} samples")
    for col in ("layer", "neurons", "spikes", "spikes/neuron/step", f"overflow events ({res.overflow_source})"):
        t.add_column(col)
    for n in stored:
        rate = spikes[n.name] / max(1, T * B * n.size)
        ov = ", ".join(f"{k} {v}" for k, v in res.overflow.get(n.name, {}).items()) or "0"
        t.add_row(esc(n.name), str(n.size), str(spikes[n.name]), f"{rate:.4f}", ov)
    out.print(t)
    other = {k: v for k, v in res.overflow.items() if k not in {n.name for n in g.neurons}}
    for k, v in other.items():
        out.print(f"[yellow]overflow[/] in {esc(k)}: {v} ({res.overflow_source})")
    out.print(f"wrote {output}")


def _sharding(workers: int, ray: str | None):
    from snnhw.shard import Sharding
    return Sharding(workers, ray)


def _kept_layers(g, text: str | None) -> set | None:
    """The populations --layers names (plus the output layer), or None for all."""
    if text is None:
        return None
    names = {t.strip() for t in text.split(",") if t.strip()}
    known = {n.name for n in g.neurons}
    unknown = sorted(names - known)
    if unknown:
        raise SnnhwError(f"--layers: no population named {unknown[0]!r}; this build has {', '.join(sorted(known))}")
    return names | {g.output.name}


def _retarget(build: Path, manifest: dict, tgt, directory: Path):
    """Recompile the build's hash-checked float.onnx for ``tgt`` into ``directory``; return its fixed IR.

    The input keeps the build's kind, bits and scale; the build's --calib data and --weight-bits are
    not stored, so the state ranges are uncalibrated and weights use the target's width (said on screen)."""
    from snnhw.build import FLOAT_IR, load_build
    from snnhw.compile import write_compiled
    from snnhw.compiler.pipeline import CompileOptions
    float_g, _ = load_build(build, FLOAT_IR)
    inp = manifest["input"]
    bits = int(inp["bits"])
    x_max = float(inp["scale"]) * ((1 << (bits - 1)) - 1) if bits > 1 else 1.0
    opts = CompileOptions(input_bits=bits, input_max=x_max)
    fixed = write_compiled(directory, float_g, tgt, opts).fixed
    err.print(f"retargeted: recompiled {build}/{FLOAT_IR} (a {manifest['target']} build) for {tgt.name} into a "
              "temporary build, without the build's calibration data and with the target's weight width; "
              f"running that build, not {build}", markup=False, soft_wrap=True)
    return fixed


@app.command()
def verify(
    model: Path = typer.Argument(..., help="snntorch .pt (state_dict or whole module) or NIR .nir file"),
    input: Path = typer.Option(..., "--input", "-i", help="input [T, B, *shape] as .npy: the data that is scored"),
    labels: Optional[Path] = typer.Option(None, help="labels (.npy): class indices [B], or float targets [B, N] "
                                          "for --decode regression"),
    targets: Optional[str] = typer.Option(None, help="comma-separated targets to compile and verify (default emu)"),
    build: Optional[Path] = typer.Option(None, help="verify this existing build (from `snnhw compile` of MODEL) "
                                         "instead of compiling one"),
    calib: Optional[Path] = typer.Option(None, help="calibration input [T, B, *shape] (.npy) for the builds, as "
                                         "`snnhw compile --calib`; keep it apart from --input"),
    decode: str = typer.Option("count", help="how outputs are scored: count, first-spike, population:N, "
                               "membrane-max, membrane-final, regression (docs/verification.md)"),
    keep_builds: Optional[Path] = typer.Option(None, help="directory to keep the verified builds in (one per target)"),
    arch: Optional[str] = typer.Option(None, help=ARCH_HELP),
    input_shape: Optional[str] = typer.Option(None, help="per-sample input shape, e.g. 1,28,28"),
    input_kind: Optional[InputKind] = typer.Option(None, help="spikes or graded (default: from --calib, else spikes)"),
    input_bits: Optional[int] = typer.Option(None, help="width of graded input values (default: the target's)"),
    weight_bits: Optional[int] = typer.Option(None, help="weight width (at most the target's)"),
    channel_steps: ChannelSteps = typer.Option(ChannelSteps.auto, help=CHANNEL_STEPS_HELP),
    dt: Optional[float] = typer.Option(None, help="seconds per timestep (NIR import)"),
    trust_pickle: bool = typer.Option(False, help="see `snnhw compile --help`"),
    max_rate_error: float = typer.Option(0.05, help="fail if a layer's mean per-neuron rate error exceeds this"),
    min_class_agreement: float = typer.Option(0.9, help="fail if fewer decoded outputs agree with the reference"),
    max_accuracy_drop: float = typer.Option(0.05, help="fail if deployed accuracy is lower by more (needs --labels)"),
    min_activity: float = typer.Option(0.5, help="fail if a layer keeps less than this fraction of its float spikes"),
    min_import_f1: float = typer.Option(0.99, help="fail if a layer's float IR spikes match snntorch's with a lower F1"),
    fail_on_overflow: bool = typer.Option(False, help="fail on any saturation or wrap event"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
    encode: Optional[Encoding] = typer.Option(None, help=ENCODE_HELP),
    steps: Optional[int] = typer.Option(None, help="timesteps to generate with --encode rate|latency"),
    seed: Optional[int] = typer.Option(None, help="seed of --encode rate (default 0)"),
    workers: int = typer.Option(1, help=WORKERS_HELP),
    ray: Optional[str] = typer.Option(None, help=RAY_HELP),
    before: Optional[Path] = typer.Option(None, help="the model before fine-tuning (MODEL is the fine-tuned one, "
                                          "loading with the same --arch): also show its float accuracy and its "
                                          "deployed accuracy with the same compile options (needs --labels)"),
):
    """Score the deployed build of each target against the snntorch model, layer by layer; exit 1 if a check
    fails, 3 if a target refused the model (the others are still verified)."""
    from snnhw.arrays import load_array
    from snnhw.decode import parse_decoding
    from snnhw.frontends import load_model_and_module
    from snnhw.targets import load as load_target
    from snnhw.verify import Thresholds, before_finetuning, verify as run_verify, verify_build

    sharding = _sharding(workers, ray)
    decoding = parse_decoding(decode)
    if before is not None and (labels is None or build is not None):
        raise SnnhwError("--before compares accuracies, so it needs --labels, and it compiles the model before "
                         "fine-tuning with the options of the verified builds, so it cannot be combined with --build")
    if build is not None:
        given = [flag for flag, v in (("--targets", targets), ("--calib", calib), ("--input-kind", input_kind),
                                      ("--input-bits", input_bits), ("--weight-bits", weight_bits),
                                      ("--keep-builds", keep_builds),
                                      ("--channel-steps",
                                       None if channel_steps == ChannelSteps.auto else channel_steps))
                 if v is not None]
        if given:
            raise SnnhwError(f"--build verifies an existing build, whose target and compile options are fixed; "
                             f"drop {', '.join(given)}")
    names = [t.strip() for t in (targets or "emu").split(",") if t.strip()]
    if not names:
        raise SnnhwError("--targets is empty; name at least one target, e.g. --targets emu")
    tgts = [load_target(t) for t in names]
    with out.status(f"importing {model}"):
        float_g, net = load_model_and_module(model, arch=arch, input_shape=_parse_shape(input_shape),
                                             trust_pickle=trust_pickle, dt=dt)
    x = _load_input(input, encode, steps, seed)
    _check_shape(x, float_g, "--input")
    y = load_array(labels) if labels is not None else None
    reference, reference_error = None, None
    if net is not None:
        from snnhw.frontends.snntorch_reference import reference_run
        try:
            reference = reference_run(net, float_g.meta.get("forward", "per_step"), x)
        except SnnhwError as exc:
            reference_error = f"the snntorch model could not run on --input: {exc}"
    th = Thresholds(max_rate_error, min_class_agreement, max_accuracy_drop, min_activity, min_import_f1,
                    fail_on_overflow)
    if build is not None:
        with out.status(f"running float IR and build {build}"):
            report = verify_build(float_g, build, x, th, y, reference, reference_error, decoding, sharding)
    else:
        sample = calib and load_array(calib)
        options = {t.name: _compile_options(float_g, t, sample, input_kind, input_bits, weight_bits, "--calib",
                                            channel_steps)[0]
                   for t in tgts}
        if any(o.input_bits == 1 for o in options.values()) and not np.all((x == 0) | (x == 1)):
            raise SnnhwError("--input has values other than 0 and 1, but the builds take binary spikes (the default "
                             "without --calib); pass --input-kind graded, or --calib CALIB.npy with data apart "
                             "from the scored input")
        with out.status("compiling and running float IR, builds and backends"):
            report = run_verify(float_g, x, options, th, y, reference, reference_error, decoding, keep_builds,
                                sharding)
        if before is not None:
            with out.status(f"importing, compiling and running {before} (before fine-tuning)"):
                before_g, before_net = load_model_and_module(before, arch=arch, input_shape=_parse_shape(input_shape),
                                                             trust_pickle=trust_pickle, dt=dt)
                before_ref = None
                if before_net is not None:
                    from snnhw.frontends.snntorch_reference import reference_run
                    try:
                        before_ref = reference_run(before_net, before_g.meta.get("forward", "per_step"), x)
                    except SnnhwError as exc:  # then its float IR stands for it, and the table says so
                        err.print(f"warning: {before} could not run on --input ({exc}); its float IR is scored",
                                  markup=False, soft_wrap=True)
                before_finetuning(report, float_g, before_g, x, options, y, decoding, before_ref)
    if as_json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        _print_verify(report)
    raise typer.Exit(report["exit_code"])


def _fmt(v, spec=".4f") -> str:
    return "-" if v is None else format(v, spec)


def _print_verify(r: dict):
    s = r.get("snntorch")
    if s is not None and "layers" in s:
        f1 = ", ".join(f"{k} {'exact' if v['identical'] else _fmt(v['f1'])}" for k, v in s["layers"].items())
        out.print(f"snntorch vs float IR ({s['steps']} steps): spike F1 {esc(f1)}")
    for tname, e in r["targets"].items():
        if "refused" in e:
            out.print(f"[yellow]{tname}: refused[/] (not verified): {esc(e['refused'])}")
            continue
        t = Table(title=f"{tname}: deployed build vs float IR ({r['timesteps']} steps x {r['batch']} samples, "
                        f"latency {e['latency']})")
        for col in ("layer", "spikes float -> deployed", "P / R / F1", "Jaccard", "F1 vs snntorch",
                    "rate err mean/max", "first divergence: step, sample, neuron (spike, membrane)"):
            t.add_column(col)
        for name, L in e["layers"].items():
            d = L["first_divergence"]
            div = "none" if d is None else (
                f"{d['step']}, {d['sample']}, {d['neuron']} (spike {d['spike_reference']} -> {d['spike']}, "
                f"v {d.get('membrane_reference', float('nan')):.4g} -> {d.get('membrane', float('nan')):.4g})")
            snn = e.get("layers_snntorch", {}).get(name)
            of = f", OR of {esc(L['lowering_of'])}" if "lowering_of" in L else ""
            t.add_row(f"{esc(name)} ({L['neurons']}{of})", f"{L['spikes_reference']} -> {L['spikes']}",
                      f"{_fmt(L['precision'], '.3f')} / {_fmt(L['recall'], '.3f')} / {_fmt(L['f1'], '.3f')}",
                      _fmt(L["jaccard"], ".3f"), "-" if snn is None else _fmt(snn["f1"], ".3f"),
                      f"{L['rate_error_mean']:.4f} / {L['rate_error_max']:.4f}", div)
        out.print(t)
        key = "nrmse" if r["decode"] == "regression" else "accuracy"
        runs = [("snntorch", s or {}), ("float IR", r["float_ir"]), ("deployed", e)]
        score = ", ".join(f"{n} {_fmt(v.get(key))}" for n, v in runs if v.get(key) is not None)
        agree = "output NRMSE" if r["decode"] == "regression" else "class agreement"
        vs = f"with float IR {e['agreement_float_ir']:.4f}"
        if "agreement_snntorch" in e:
            vs += f", with snntorch {e['agreement_snntorch']:.4f}"
        undecided = f", {e['undecided']} undecided" if "undecided" in e else ""
        out.print(f"{tname} (decode {r['decode']}): {agree} {vs}" + (f"; {key} {score}" if score else "") +
                  f"; {e['silent']} silent samples{undecided}; overflow events "
                  f"{sum(sum(d.values()) for d in e['overflow'].values())} ({e['overflow_source']})")
    if "before" in r:
        _print_before_after(r)
    for c in r["checks"]:
        mark = "[green]PASS[/]" if c["passed"] else "[red]FAIL[/]"
        out.print(f"{mark} {esc(c['target'])}: {esc(c['check'])} ({esc(c['detail'])})")
    done = [t for t, e in r["targets"].items() if "refused" not in e]
    if r["exit_code"] == 0:
        out.print(f"[bold green]verified[/]: {', '.join(done)}")
    elif r["exit_code"] == 3:
        out.print(f"[bold yellow]not verified: {', '.join(r['refused'])} refused the model[/]" +
                  (f"; verified: {', '.join(done)}" if done else ""))
    else:
        out.print("[bold red]verification failed[/]")


def _print_before_after(r: dict):
    """Fine-tuning's effect per target: float accuracy (the model before fine-tuning), deployed before, after."""
    key = "nrmse" if r["decode"] == "regression" else "accuracy"
    bf = r["before"]
    ref_name, ref = ("snntorch", bf["snntorch"]) if "snntorch" in bf else ("float IR", bf["float_ir"])
    t = Table(title=f"fine-tuning ({key}, decode {r['decode']}; float: the model before fine-tuning, {ref_name})")
    for col in ("target", f"float {key}", "deployed before fine-tuning", "deployed after fine-tuning",
                "after - float"):
        t.add_column(col)
    for tname, e in r["targets"].items():
        b_ = bf["targets"].get(tname, {})
        if "refused" in e or "refused" in b_:
            t.add_row(tname, _fmt(ref.get(key)), "refused" if "refused" in b_ else _fmt(b_.get(key)),
                      "refused" if "refused" in e else _fmt(e.get(key)), "-")
            continue
        delta = None if e.get(key) is None or ref.get(key) is None else e[key] - ref[key]
        t.add_row(tname, _fmt(ref.get(key)), _fmt(b_.get(key)), _fmt(e.get(key)), _fmt(delta, "+.4f"))
    out.print(t)


@app.command()
def report(
    build: Path = typer.Argument(..., help="build directory from `snnhw compile`"),
    input: Path = typer.Option(..., "--input", "-i", help="input [T, B, *shape] as .npy"),
    output: Path = typer.Option(..., "-o", "--output", help="report directory: report.json and report.html "
                                "(replaces only a report folder snnhw wrote)"),
    encode: Optional[Encoding] = typer.Option(None, help=ENCODE_HELP),
    steps: Optional[int] = typer.Option(None, help="timesteps to generate with --encode rate|latency"),
    seed: Optional[int] = typer.Option(None, help="seed of --encode rate (default 0)"),
    workers: int = typer.Option(1, help=WORKERS_HELP),
    ray: Optional[str] = typer.Option(None, help=RAY_HELP),
):
    """Spike counts, synaptic operations, energy and plots of a build on an input."""
    from snnhw.build import check_output_dir, load_build
    from snnhw.report import build_report, write_report
    from snnhw.safety import check_disjoint
    from snnhw.semantics import quantize_input

    check_disjoint(output, "-o", {"the build": build, "--input": input})
    check_output_dir(output, "report")
    g, _ = load_build(build)
    x = _load_input(input, encode, steps, seed)
    quantize_input(g, x)
    with out.status("simulating and plotting"):
        rep, ctx = build_report(build, x, str(input), _sharding(workers, ray))
        write_report(rep, ctx, output)
    c = rep["counts"]
    t = Table(title=f"report: {rep['target']}, {c['timesteps']} steps x {c['batch']} samples")
    for col in ("layer", "spikes", "rate", "synaptic ops", "updates active/inactive", "energy µJ"):
        t.add_column(col)
    by_layer = c.get("energy", {}).get("by_layer_uj", {})
    for name, L in c["layers"].items():
        t.add_row(esc(name), str(L["spikes"]), f"{L['rate_per_step']:.4f}", str(L["synaptic_ops"]),
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
def export(
    source: Path = typer.Argument(..., help="build directory (exports the deployed fixed-point graph) or model file "
                                  "(.pt or .nir: exports its float graph)"),
    output: Path = typer.Option(..., "-o", "--output", help="NIR file to write (replaced atomically; never an input)"),
    arch: Optional[str] = typer.Option(None, help="FILE.py:NAME building the module, for a state_dict"),
    input_shape: Optional[str] = typer.Option(None, help="per-sample input shape, e.g. 1,28,28"),
    dt: Optional[float] = typer.Option(None, help="seconds per timestep the NIR time constants are computed for "
                                       "(default: the model's own for a NIR file, else 1e-4, snntorch's convention)"),
    trust_pickle: bool = typer.Option(False, help="see `snnhw compile --help`"),
):
    """Write a build's deployed graph, or a model's float graph, as a NIR file (docs/interop.md)."""
    from snnhw.nir_export import write
    if source.is_dir():
        from snnhw.build import load_build
        if arch or input_shape or trust_pickle:
            raise SnnhwError("--arch, --input-shape and --trust-pickle apply to a model file, not to a build")
        g, _ = load_build(source)
        what = f"deployed {g.target} graph of {source}"
    else:
        from snnhw.frontends import load_model
        with out.status(f"importing {source}"):
            g = load_model(source, arch=arch, input_shape=_parse_shape(input_shape), trust_pickle=trust_pickle, dt=dt)
        what = f"float graph of {source}"
    inputs = [source] + ([Path(arch.rsplit(":", 1)[0])] if arch else [])
    lost = write(g, output, dt, inputs)
    for item in lost:
        out.print(f"note: NIR cannot express {item} (stated in the file's metadata)", markup=False)
    out.print(f"wrote the {what} to {output}", markup=False)


@app.command()
def inspect(build: Path = typer.Argument(..., help="build directory"),
            as_json: bool = typer.Option(False, "--json", help="print as JSON")):
    """Show a build: target, input, layers, their fixed-point parameters and the backend's notes."""
    from snnhw.build import load_build
    from snnhw.compiler.lowering import notes as lowering_notes
    from snnhw.targets import load as load_target
    from snnhw.targets.contract import backend_for
    g, manifest = load_build(build)
    if as_json:
        from snnhw.compiler.lower_maxpool import or_layers
        layers = []
        lowering_of = or_layers(g)
        for n in g.nodes:
            d = {"name": n.name, "op": type(n).__name__, "shape": list(n.shape)}
            if n.name in lowering_of:
                d["lowering_of"] = lowering_of[n.name]
            if n.is_population:
                d.update(reset=f"{n.reset_mode}/{n.reset_timing}", recurrent=n.rec_weight is not None,
                         state_bits=[n.format.current.bits, n.format.voltage.bits],
                         state_lsb=np.asarray(n.format.state_scale).tolist())  # a list: per-channel steps
            elif hasattr(n, "delay"):
                d.update(delay=n.delay, weight_shape=list(n.weight.shape))
            layers.append(d)
        print(json.dumps({"manifest": manifest, "nodes": layers}, indent=2, sort_keys=True))
        return
    out.print(f"build {esc(str(build))}: target [bold]{manifest['target']}[/], snnhw {esc(manifest['snnhw_version'])}, "
              f"input {esc(str(manifest['input']['shape']))} ({esc(str(manifest.get('input_kind', '?')))})")
    _print_layers(g)
    out.print("files: " + esc(", ".join(sorted(manifest["files"]))))
    for note in [*backend_for(load_target(manifest["target"])).notes(g), *lowering_notes(g)]:
        out.print(f"note: {esc(note)}")


@app.command()
def finetune(
    model: Path = typer.Argument(..., help="snntorch .pt (state_dict, or a whole module with --trust-pickle)"),
    arch: str = typer.Option(..., help="FILE.py:NAME building the module (runs that file: use your own code)"),
    data: Path = typer.Option(..., help="training data .npz: x [T, B, *shape] and integer labels y [B]"),
    output: Path = typer.Option(..., "-o", "--output", help="fine-tuned state_dict (.pt) to write; loads with --arch"),
    target: str = typer.Option("emu", "--target", "-t", help="target whose fixed-point forward is trained against"),
    weight_bits: Optional[int] = typer.Option(None, help="weight width (at most the target's)"),
    channel_steps: ChannelSteps = typer.Option(ChannelSteps.auto, help=CHANNEL_STEPS_HELP),
    input_bits: Optional[int] = typer.Option(None, help="width of graded input values (default: the target's)"),
    input_shape: Optional[str] = typer.Option(None, help="per-sample input shape, e.g. 1,28,28"),
    epochs: int = typer.Option(5, help="passes over the training data"),
    seed: int = typer.Option(0, help="seed of the shuffling (same seed, same result)"),
    lr: float = typer.Option(2e-3, help="Adam learning rate (of the first epoch)"),
    lr_schedule: str = typer.Option("cosine", help="learning rate over the epochs: cosine (decays along a half "
                                    "cosine, docs/finetune.md) or constant"),
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
    opts, _ = _compile_options(float_g, tgt, None, kind, input_bits, weight_bits, "--data", channel_steps)
    _check_shape(x, float_g, "--data x")
    flags = [f"--target {tgt.name}"] + ([f"--input-shape {input_shape}"] if input_shape else []) + \
        ([f"--weight-bits {weight_bits}"] if weight_bits else []) + \
        (["--input-kind graded"] if kind == InputKind.graded else []) + \
        ([f"--input-bits {input_bits}"] if input_bits else []) + \
        ([f"--channel-steps {channel_steps.value}"] if channel_steps != ChannelSteps.auto else [])
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

        res = run_finetune(net, (x, y), tgt, opts, float_g.input.shape, epochs, seed, lr, batch_size, epoch, batch,
                           lr_schedule)
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
    """Run the CLI; return the exit code (2 for every user error, with a one-line message; 130 after
    Ctrl-C, 143 after SIGTERM, both once every child process and temporary file is gone)."""
    from snnhw.safety import SIGTERM_EXIT, Terminated, check_environment, one_line, sigterm_unwinds
    try:
        with sigterm_unwinds():
            check_environment()
            app(args=argv, prog_name="snnhw")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except SnnhwError as exc:
        err.print(f"error: {one_line(exc)}", markup=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except Terminated:
        err.print("terminated")
        return SIGTERM_EXIT
    except MemoryError:
        err.print("error: out of memory; use a smaller batch or fewer timesteps")
        return 2
    return 0


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
