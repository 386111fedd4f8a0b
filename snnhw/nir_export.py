"""NIR writer: an IR graph (float or fixed) -> a NIR graph (``nir.write``, HDF5).

NIR neurons are continuous-time ODEs; every NIR consumer (snntorch's ``import_from_nir``, snnhw's
own NIR frontend, Norse, ...) discretizes them with forward Euler at a timestep ``dt``. The writer
inverts that discretization so a consumer using the same ``dt`` recovers the IR's per-step numbers:

* ``alpha``/``beta`` (per step) -> ``tau_syn = dt/(1-alpha)``, ``tau = tau_mem = dt/(1-beta)``;
* input gain 1 -> ``r = tau_mem/dt`` and ``w_in = tau_syn/dt`` (so ``r*dt/tau = w_in*dt/tau_syn = 1``);
* voltage bias per step ``bias`` -> ``v_leak = bias * tau_mem/dt``;
* a population with ``alpha = 0`` is a ``LIF``, with ``alpha > 0`` a ``CubaLIF``; ``alpha = 0,
  beta = 1, bias = 0`` is an ``IF`` (``r = 1``); ``v_reset = 0``.

For a **fixed IR** every integer is first converted to the float value it stands for, so the NIR
graph takes the same user input (spikes, or analog values for graded input) as the float model:

* a node's output unit (float value of one integer unit): the input's ``scale`` (1 for spikes),
  1 for spikes leaving a population, unchanged through pooling/flatten, and for a Dense/Conv2d
  ``2^input_shift * state_scale`` of the population it feeds (one per output row where the quantizer
  gave that population per-channel weight steps: ``state_scale`` is then per neuron);
* weight ``W_int * unit(out)/unit(in)``, bias ``b_int * unit(out)``; recurrent weights and biases
  ``rec_int * 2^input_shift * state_scale``;
* threshold and voltage bias ``int * state_scale``; ``alpha``/``beta`` ``int / 2^decay_bits``.

snnhw's layer scales are powers of two, so these floats are exact in float32 (per-channel weight
steps are not: their floats are rounded to float32). What NIR cannot express
(reset mode and timing other than zero/immediate, decay rounding, register widths and overflow
rules, input quantization, synapse delays) is written into the graph's and the nodes' metadata
(``snnhw_not_expressed`` lists it in words) and returned to the caller, never dropped silently.
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import numpy as np

from snnhw import __version__
from snnhw.errors import SnnhwError, UnsupportedError
from snnhw.ir import LIF, Conv2d, Dense, Flatten, Graph, Pool2d

DEFAULT_DT = 1e-4  # s; the timestep snntorch's NIR exporter and importer hard-code (snntorch 1.0.0)


def default_dt(g: Graph) -> float:
    """The graph's own dt if it came from a NIR file (its time constants were read at that dt),
    else DEFAULT_DT, which snntorch's ``import_from_nir`` assumes."""
    return float(g.dt) if g.meta.get("frontend") == "nir" else DEFAULT_DT


def _names(g: Graph) -> dict:
    """NIR node names: the IR names reduced to ``[A-Za-z0-9_]`` (consumers such as nirtorch turn
    them into code identifiers), made unique."""
    out, used = {}, {"input", "output"}
    for n in g.nodes[1:]:
        base = re.sub(r"[^A-Za-z0-9_]", "_", n.name)[:64] or "node"
        name, k = base, 1
        while name in used or f"{name}_rec" in used:
            name, k = f"{base}_{k}", k + 1
        used.update({name, f"{name}_rec"})
        out[n.name] = name
    out[g.input.name] = "input"
    return out


def _fed_population(g: Graph, name: str) -> LIF:
    """The population a synapse's output reaches (through pooling, flatten and further synapses)."""
    pop = g.population_of(name)
    if pop is None:
        raise UnsupportedError(f"synapse {name} feeds no neuron population; NIR export needs each synapse chain "
                               "to end in a population")
    return pop


def _units(g: Graph) -> dict:
    """Float value of one unit of every node's output (all 1 in the float IR)."""
    fixed = g.kind == "fixed"
    unit = {}
    for n in g.nodes:
        if n.is_input:
            unit[n.name] = float(n.scale) if fixed and n.bits > 1 else 1.0
        elif n.is_synapse:
            pop = _fed_population(g, n.name)
            unit[n.name] = _scalar_or_rows((1 << (pop.format.input_shift + n.out_shift)) * pop.format.state_scale) \
                if fixed else 1.0
        elif n.is_reshape:
            unit[n.name] = unit[n.input]
        else:
            unit[n.name] = 1.0
    return unit


def _scalar_or_rows(a):
    """A unit as a float, or one per neuron/output row (per-channel weight steps) as a float64 array."""
    return float(a) if np.ndim(a) == 0 else np.asarray(a, np.float64)


def _per_row(unit, w: np.ndarray):
    """``unit`` (a float or one per output row) shaped to multiply weights ``w``."""
    return np.reshape(unit, (-1, *[1] * (w.ndim - 1))) if np.ndim(unit) else unit


def _f32(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


def _per_neuron(a, shape) -> np.ndarray:
    return np.ascontiguousarray(np.broadcast_to(np.asarray(a, np.float64), shape))


def _fmt(f) -> str:
    return f"{f.bits}-bit {f.overflow}"


def _neuron_values(pop: LIF, fixed: bool) -> dict:
    """alpha, beta (per step), threshold and voltage bias (float units), one value per neuron."""
    if fixed:
        f = pop.format
        one = float(1 << f.decay_bits)
        vals = {"alpha": pop.alpha / one, "beta": pop.beta / one,
                "threshold": pop.threshold * f.state_scale, "bias": pop.bias * f.state_scale}
    else:
        vals = {k: getattr(pop, k) for k in ("alpha", "beta", "threshold", "bias")}
    return {k: _per_neuron(v, pop.shape) for k, v in vals.items()}


def _biases_into_synapses(g: Graph, fixed: bool) -> dict:
    """Voltage biases that move into the Dense feeding their population, per Dense name (float units).

    Without a current decay (alpha = 0) ``v = beta v + (W x + b) + bias`` equals ``v = beta v +
    (W x + (b + bias))``: the bias goes into the Affine's bias, where every NIR reader has it (the
    quantizer moves synapse biases the other way, into the finer voltage bias; snntorch's importer
    does not read ``v_leak``)."""
    out = {}
    for pop in g.neurons:
        src = g.node(pop.input)
        v = _neuron_values(pop, fixed)
        if src.is_synapse and src.bias_per_output and not np.any(v["alpha"]) and np.any(v["bias"]):
            out[src.name] = v["bias"].reshape(-1)
    return out


def _neuron_node(pop: LIF, fixed: bool, dt: float, meta: dict, bias_moved: bool):
    import nir
    v = _neuron_values(pop, fixed)
    a, b, thr, bias = v["alpha"], v["beta"], v["threshold"], v["bias"]
    if bias_moved:
        bias = np.zeros_like(bias)
    zero = np.zeros(pop.shape)
    if not np.any(a) and np.all(b == 1) and not np.any(bias):
        return nir.IF(r=np.ones(pop.shape), v_threshold=thr, v_reset=zero, metadata=meta)
    if np.any(b >= 1) or np.any(a >= 1):
        raise UnsupportedError(f"population {pop.name} cannot be exported to NIR: alpha or beta is 1 (no leak), "
                               "which NIR's LIF/CubaLIF express only as an infinite time constant (NIR's IF "
                               "covers beta = 1 only without a synaptic current or bias)")
    tau_mem = dt / (1 - b)
    r = tau_mem / dt
    v_leak = bias * tau_mem / dt
    if not np.any(a):
        return nir.LIF(tau=tau_mem, r=r, v_leak=v_leak, v_threshold=thr, v_reset=zero, metadata=meta)
    tau_syn = dt / (1 - a)
    return nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, r=r, v_leak=v_leak, v_threshold=thr, v_reset=zero,
                       w_in=tau_syn / dt, metadata=meta)


def _nir_dense(n, w, bias, meta):
    import nir
    return nir.Linear(weight=w, metadata=meta) if bias is None else nir.Affine(weight=w, bias=bias, metadata=meta)


def _nir_conv(n, w, bias, meta):
    import nir
    return nir.Conv2d(input_shape=tuple(n.in_shape[1:]), weight=w, stride=tuple(n.stride), padding=tuple(n.padding),
                      dilation=tuple(n.dilation), groups=int(n.groups),
                      bias=bias if bias is not None else np.zeros(w.shape[0], np.float32), metadata=meta)


def _nir_pool(n, w, bias, meta):
    import nir
    cls = nir.SumPool2d if n.mode == "sum" else nir.AvgPool2d
    return cls(kernel_size=np.array(n.kernel), stride=np.array(n.stride), padding=np.array([0, 0]), metadata=meta)


def _nir_flatten(n, w, bias, meta):
    import nir
    return nir.Flatten(input_type={"input": np.array(n.in_shape)}, start_dim=0, end_dim=-1, metadata=meta)


_NIR = {Dense: _nir_dense, Conv2d: _nir_conv, Pool2d: _nir_pool, Flatten: _nir_flatten}
"""The NIR node each op becomes: ``node(op, weight in float units, bias, metadata)``."""


def to_nir(g: Graph, dt: float | None = None):
    """The NIR graph of IR ``g`` and the list of what NIR cannot express (also in its metadata)."""
    import nir
    dt = default_dt(g) if dt is None else float(dt)
    if not (np.isfinite(dt) and dt > 0):
        raise SnnhwError(f"--dt {dt}: must be a positive number of seconds")
    fixed = g.kind == "fixed"
    names, unit = _names(g), _units(g)
    lost: list[str] = []
    nodes, edges = {}, []
    inp = g.input
    in_meta = {}
    if fixed:
        in_meta = {"snnhw_bits": int(inp.bits), "snnhw_scale": float(inp.scale)}
        if inp.bits > 1:
            lim = (1 << (inp.bits - 1)) - 1
            lost.append(f"input quantization: the deployed network sees clip(round_half_even(x / {inp.scale!r}), "
                        f"-{lim}, {lim}) * {inp.scale!r} ({inp.bits}-bit graded input)")
        else:
            in_meta["snnhw_input"] = "binary spikes 0/1"
    nodes["input"] = nir.Input(input_type={"input": np.array(inp.shape)}, metadata=in_meta)
    moved = _biases_into_synapses(g, fixed)
    for n in g.nodes[1:]:
        name = names[n.name]
        edges += [(names[s], name) for s in n.sources()]  # several edges into a node: NIR sums them
        meta = {}
        if n.is_synapse:
            lsb = unit[n.name] / unit[n.input]
            w = _f32(n.weight.astype(np.float64) * _per_row(lsb, n.weight))
            bias = None if n.bias is None else n.bias.astype(np.float64) * unit[n.name]
            if n.name in moved:
                bias = (0.0 if bias is None else bias) + moved[n.name]
            bias = None if bias is None else _f32(bias)
            meta = {"snnhw_weight_lsb": lsb, "snnhw_bias_lsb": unit[n.name], "snnhw_delay_steps": int(n.delay)}
            if fixed:
                meta["snnhw_accumulator"] = _fmt(n.acc)
            if n.delay:
                lost.append(f"{name}: synapse delay of {n.delay} step(s) (y[t] = W x[t-{n.delay}] + b)")
            nodes[name] = n.registered(_NIR)(n, w, bias, meta)
        elif n.is_reshape:
            nodes[name] = n.registered(_NIR)(n, None, None, meta)
        else:
            nodes[name] = _neuron_node(n, fixed, dt, _pop_meta(n, fixed, lost, name), n.input in moved)
            if n.rec_weight is not None:
                s = _scalar_or_rows((1 << n.format.input_shift) * n.format.state_scale) if fixed else 1.0
                w = _f32(n.rec_weight.astype(np.float64) * _per_row(s, n.rec_weight))
                rmeta = {"snnhw_weight_lsb": s, "snnhw_delay_steps": int(n.rec_delay)}
                if fixed:
                    rmeta["snnhw_accumulator"] = _fmt(n.rec_acc)
                nodes[f"{name}_rec"] = nir.Linear(weight=w, metadata=rmeta) if n.rec_bias is None else \
                    nir.Affine(weight=w, bias=_f32(n.rec_bias.astype(np.float64) * s), metadata=rmeta)
                edges += [(name, f"{name}_rec"), (f"{name}_rec", name)]
                if n.rec_delay != 1:
                    lost.append(f"{name}: recurrent delay of {n.rec_delay} steps (NIR's cycle is one step)")
    out = g.output
    nodes["output"] = nir.Output(output_type={"output": np.array(out.shape)})
    edges.append((names[out.name], "output"))
    if fixed:
        lost.append("fixed-point arithmetic: integer decays rounded every step, u/v registers with widths and "
                    "overflow rules (per node: snnhw_decay_rounding, snnhw_current, snnhw_voltage, "
                    "snnhw_accumulator); a float simulator computes without rounding or overflow")
    meta = {"snnhw_version": __version__, "snnhw_kind": g.kind, "snnhw_dt": dt,
            "snnhw_discretization": "forward Euler at snnhw_dt: alpha = 1 - dt/tau_syn, beta = 1 - dt/tau_mem, "
                                    "input gain w_in*dt/tau_syn * r*dt/tau_mem = 1, bias = v_leak*dt/tau_mem",
            "snnhw_not_expressed": "; ".join(lost) or "nothing"}
    if g.target:
        meta["snnhw_target"] = g.target
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta), lost


def _pop_meta(n: LIF, fixed: bool, lost: list, name: str) -> dict:
    meta = {"snnhw_reset_mode": n.reset_mode, "snnhw_reset_timing": n.reset_timing,
            "snnhw_spike_rule": "v > threshold (strict)"}
    if fixed:
        f = n.format
        meta.update(snnhw_state_scale=_scalar_or_rows(f.state_scale), snnhw_decay_bits=int(f.decay_bits),
                    snnhw_decay_rounding=f.decay_rounding, snnhw_input_shift=int(f.input_shift),
                    snnhw_current=_fmt(f.current), snnhw_voltage=_fmt(f.voltage))
    if (n.reset_mode, n.reset_timing) != ("zero", "immediate"):
        lost.append(f"{name}: reset {n.reset_mode}/{n.reset_timing} (NIR resets v to v_reset in the step of the "
                    "spike, i.e. zero/immediate)")
    return meta


def _refuse_input_path(out: Path, inputs: list[Path]):
    if out.is_dir():
        raise SnnhwError(f"output {out} is a directory; name a file, e.g. -o model.nir")
    for p in inputs:
        if p.is_dir() and (out.resolve() == p.resolve() or p.resolve() in out.resolve().parents):
            raise SnnhwError(f"output {out} is inside the input build {p}; write it elsewhere")
        if out.exists() and p.exists() and os.path.samefile(out, p):
            raise SnnhwError(f"output {out} is the input {p}; choose another output file")


def write(g: Graph, out: Path, dt: float | None = None, inputs: tuple = ()) -> list[str]:
    """Write the NIR graph of ``g`` to ``out`` atomically (temporary file + rename); never onto an
    input. Returns what NIR cannot express (as stated in the file's metadata)."""
    import nir
    out = Path(out)
    _refuse_input_path(out, [Path(p) for p in inputs])
    graph, lost = to_nir(g, dt)
    parent = out.resolve().parent
    if not parent.is_dir():
        raise SnnhwError(f"directory {parent} does not exist; create it first")
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.tmp-", dir=parent)
    os.close(fd)
    try:
        nir.write(tmp, graph)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return lost
