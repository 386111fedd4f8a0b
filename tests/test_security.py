"""Hostile and careless input against the CLI (docs/security.md): a growing corpus.

Every refused case must end in exactly one ``error:`` line, exit code 2, no traceback, and leave
every file it was given (and everything around it) byte for byte as it was. The accepted cases
check what they must: generated code free of model text, replaced outputs, exit 143 after SIGTERM
with no process or temporary file left. Add a case here for every new problem found.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from snnhw.cli import main

NET_PY = '''
import snntorch as snn
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 12)
        self.lif1 = snn.Leaky(beta=0.9, init_hidden=True, reset_mechanism="zero", reset_delay=False)
        self.fc2 = nn.Linear(12, 4)
        self.lif2 = snn.Leaky(beta=0.8, init_hidden=True, output=True, reset_mechanism="zero", reset_delay=False)

    def forward(self, x):
        return self.lif2(self.fc2(self.lif1(self.fc1(x))))
'''
# the attack of issue 11: a name that ends a Verilog comment, adds a module calling $system and binds it
VERILOG_ATTACK = 'fc\nendmodule\nmodule evil;initial $system("touch PWNED");endmodule\nbind tb evil e();\nmodule x;'
# printable, so accepted as a name: it must still never reach generated code, and HTML shows it escaped
PRINTABLE_ATTACK = '<img src=x onerror=alert(1)>"$system("touch PWNED")'


def cli(*args) -> tuple[int, str, str]:
    """Run the CLI in this process; return (exit code, stdout, stderr)."""
    so, se = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(so), contextlib.redirect_stderr(se):
        rc = main([str(a) for a in args])
    return rc, so.getvalue(), se.getvalue()


def snapshot(*roots) -> dict:
    """Every file and link under ``roots``: path -> bytes (or link target)."""
    out = {}
    for root in roots:
        for dirpath, dirs, files in os.walk(root):
            for name in files + [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]:
                p = Path(dirpath) / name
                out[str(p)] = ("link", os.readlink(p)) if p.is_symlink() else p.read_bytes()
            out.update({str(Path(dirpath) / d): "dir" for d in dirs})
    return out


def assert_refused(rc, so, se, words):
    assert rc == 2, (rc, so, se)
    assert "Traceback" not in so + se
    lines = [ln for ln in se.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), se
    assert words in lines[0], lines[0]


def _leaky():
    import snntorch as snn
    return snn.Leaky(beta=0.9, init_hidden=True, reset_mechanism="zero", reset_delay=False, surrogate_disable=True)


def whole_module(lif_name: str):
    """A whole nn.Sequential (picklable: no surrogate closure) whose first LIF layer is named ``lif_name``."""
    import snntorch as snn
    import torch
    from torch import nn
    torch.manual_seed(0)
    net = nn.Sequential(OrderedDict([("fc1", nn.Linear(16, 12)), (lif_name, _leaky()), ("fc2", nn.Linear(12, 4)),
                                     ("lif2", snn.Leaky(beta=0.8, init_hidden=True, output=True,
                                                        reset_mechanism="zero", reset_delay=False,
                                                        surrogate_disable=True))]))
    with torch.no_grad():
        net[0].weight.mul_(4)
    return net


def nir_file(path: Path, name: str = "fc", tau: float = 1e-3, **h5_edits):
    """A NIR Affine -> LIF graph (affine node called ``name``); ``h5_edits`` overwrite datasets."""
    import h5py
    import nir
    rng = np.random.default_rng(0)
    aff = nir.Affine(weight=rng.normal(size=(3, 4)) * 4, bias=np.zeros(3))
    lif = nir.LIF(tau=np.full(3, tau), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3), v_reset=np.zeros(3))
    nir.write(path, nir.NIRGraph(nodes={"input": nir.Input({"input": np.array([4])}), name: aff, "lif": lif,
                                        "output": nir.Output({"output": np.array([3])})},
                                 edges=[("input", name), (name, "lif"), ("lif", "output")]))
    with h5py.File(path, "r+") as f:
        for key, value in h5_edits.items():
            del f[key]
            f[key] = value
    return path


def nir_conv(path: Path, stride: int):
    import h5py
    import nir
    rng = np.random.default_rng(0)
    c = nir.Conv2d(input_shape=(4, 4), weight=rng.normal(size=(2, 1, 3, 3)), stride=1, padding=1, dilation=1,
                   groups=1, bias=np.zeros(2))
    s = (2, 4, 4)
    lif = nir.LIF(tau=np.full(s, 1e-3), r=np.ones(s), v_leak=np.zeros(s), v_threshold=np.ones(s), v_reset=np.zeros(s))
    nir.write(path, nir.NIRGraph(nodes={"input": nir.Input({"input": np.array([1, 4, 4])}), "conv": c, "lif": lif,
                                        "output": nir.Output({"output": np.array(s)})},
                                 edges=[("input", "conv"), ("conv", "lif"), ("lif", "output")]))
    with h5py.File(path, "r+") as f:
        del f["node/nodes/conv/stride"]
        f["node/nodes/conv/stride"] = np.array([stride, stride])
    return path


class Workspace:
    """Model files, inputs and an emu build shared by the cases (never modified by them)."""

    def __init__(self, root: Path):
        import torch
        self.root = root
        (root / "net.py").write_text(NET_PY)
        self.arch = f"{root / 'net.py'}:Net"
        sys.path.insert(0, str(root))
        try:
            from net import Net
        finally:
            sys.path.remove(str(root))
            sys.modules.pop("net", None)
        torch.manual_seed(0)
        net = Net()
        with torch.no_grad():
            net.fc1.weight.mul_(4)
        self.sd = root / "sd.pt"
        torch.save(net.state_dict(), self.sd)
        self.x = root / "x.npy"
        np.save(self.x, (np.random.default_rng(0).random((6, 2, 16)) < 0.5).astype(np.float32))
        self.static = root / "static.npy"
        np.save(self.static, np.random.default_rng(1).random((2, 16)).astype(np.float32))
        self.build = root / "build"
        rc, _, se = cli("compile", self.sd, "--arch", self.arch, "-o", self.build)
        assert rc == 0, se
        self.report = root / "report"
        rc, _, se = cli("report", self.build, "-i", self.x, "-o", self.report)
        assert rc == 0, se
        self.result = root / "out.npz"
        rc, _, se = cli("run", self.build, "-i", self.x, "-o", self.result)
        assert rc == 0, se


@pytest.fixture(scope="module")
def w(tmp_path_factory):
    return Workspace(tmp_path_factory.mktemp("security"))


def copy_build(w, tmp: Path) -> Path:
    b = tmp / "b"
    shutil.copytree(w.build, b)
    return b


def rewrite_manifest(build: Path, **changes):
    from snnhw.build import sha256
    m = json.loads((build / "manifest.json").read_text())
    for f in m["files"]:
        m["files"][f] = sha256(build / f)
    m.update(changes)
    for k, v in list(m.items()):
        if v is None:
            del m[k]
    (build / "manifest.json").write_text(json.dumps(m))


def rename_node_in_ir(build: Path, new_name: str):
    import onnx
    m = onnx.load(build / "model.onnx")
    old = m.graph.node[1].name
    for node in m.graph.node:
        node.input[:] = [new_name if i == old else i for i in node.input]
        if node.name == old:
            node.name, node.output[0] = new_name, new_name
    for vi in m.graph.value_info:
        if vi.name == old:
            vi.name = new_name
    onnx.save(m, build / "model.onnx")
    rewrite_manifest(build)


def external_data_ir(build: Path):
    """model.onnx with its first initializer stored as ONNX external data (location=secret.txt)."""
    import onnx
    from onnx import TensorProto
    m = onnx.load(build / "model.onnx")
    t = m.graph.initializer[0]
    t.ClearField("raw_data")
    t.ClearField("int32_data")
    t.ClearField("int64_data")
    t.data_location = TensorProto.EXTERNAL
    t.external_data.add(key="location", value="secret.txt")
    (build / "secret.txt").write_bytes(b"secret")
    with open(build / "model.onnx", "wb") as fh:
        fh.write(m.SerializeToString())
    rewrite_manifest(build)


def arch_file(tmp: Path, body: str) -> str:
    (tmp / "bad_arch.py").write_text(NET_PY + body)
    return f"{tmp / 'bad_arch.py'}:{'make' if 'def make' in body else 'Net'}"


def labels(tmp: Path, values) -> Path:
    np.save(tmp / "y.npy", np.asarray(values))
    return tmp / "y.npy"


def array(tmp: Path, a, name="a.npy") -> Path:
    np.save(tmp / name, a)
    return tmp / name


def torch_file(tmp: Path, obj, name="m.pt", **kw) -> Path:
    import torch
    torch.save(obj, tmp / name, **kw)
    return tmp / name


def _evil_pickle(tmp: Path) -> Path:
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch PWNED",))
    return torch_file(tmp, {"w": Evil()}, "evil.pt")


def _pickle5(tmp: Path) -> Path:
    import pickle
    (tmp / "p5.pt").write_bytes(pickle.dumps({"w": 1}, protocol=5))
    return tmp / "p5.pt"


def _user_dir(tmp: Path) -> Path:
    (tmp / "mine").mkdir()
    (tmp / "mine" / "thesis.tex").write_text("years of work")
    return tmp / "mine"


def _build_with_user_file(w, tmp):
    b = copy_build(w, tmp)
    (b / "notes.txt").write_text("mine")
    return b


def _model_next_to_output(w, tmp):
    shutil.copy(w.sd, tmp / "sd.pt")
    return tmp / "sd.pt"


def _symlink(tmp: Path, target) -> Path:
    os.symlink(target, tmp / "link")
    return tmp / "link"


def _dt_args(w, tmp, dt):
    return ["compile", nir_file(tmp / "m.nir"), "--dt", dt, "-o", tmp / "b"]


# id -> (setup(w, tmp, mp) -> CLI args, words the error line must contain)
REFUSED = {
    # 1. text from a model file
    "nir-name-verilog-attack": (lambda w, t, mp: ["compile", nir_file(t / "evil.nir", VERILOG_ATTACK), "-t", "fpga",
                                                   "-o", t / "b"], "control character \\n"),
    "pickled-module-attribute-newline": (lambda w, t, mp: ["compile", torch_file(t, whole_module(VERILOG_ATTACK)),
                                                            "-t", "fpga", "-o", t / "b"], "control character \\n"),
    "name-bidi-override": (lambda w, t, mp: ["compile", torch_file(t, whole_module("fc\u202eexe_txt")), "-o", t / "b"],
                           "U+202E"),
    "name-escape-sequence": (lambda w, t, mp: ["compile", torch_file(t, whole_module("fc\x1b[2J")), "-o", t / "b"],
                             "U+001B"),
    "name-absurd-length": (lambda w, t, mp: ["compile", torch_file(t, whole_module("f" * 5000)), "-o", t / "b"],
                           "5000 characters"),
    "build-ir-name-with-newline": (lambda w, t, mp: ["run", _renamed(w, t, "fc\nx"), "-i", w.x, "-o", t / "o.npz"],
                                   "control character"),
    "pickle-os-system": (lambda w, t, mp: ["compile", _evil_pickle(t), "-o", t / "b"], "pickles posix.system"),
    "pickle-protocol-5": (lambda w, t, mp: ["compile", _pickle5(t), "-o", t / "b"], "plain pickle (protocol 5)"),
    "model-dev-zero": (lambda w, t, mp: ["compile", "/dev/zero", "--arch", w.arch, "-o", t / "b"],
                       "not a readable torch file (Unsupported operand 0)"),
    "model-is-a-directory": (lambda w, t, mp: ["compile", _mkdir(t / "m"), "--arch", w.arch, "-o", t / "b"],
                             "cannot read model"),
    "input-object-array": (lambda w, t, mp: ["run", w.build, "-i", _object_npy(t), "-o", t / "o.npz"],
                           "not a readable .npy array"),
    "input-nan": (lambda w, t, mp: ["run", w.build, "-i", array(t, np.full((3, 1, 16), np.nan, np.float32)),
                                    "-o", t / "o.npz"], "values other than 0 and 1"),
    "arch-dev-zero": (lambda w, t, mp: ["compile", w.sd, "--arch", "/dev/zero:Net", "-o", t / "b"], "does not exist"),
    # 2. outputs never destroy user data or inputs
    "compile-o-user-dir": (lambda w, t, mp: ["compile", w.sd, "--arch", w.arch, "-o", _user_dir(t)],
                           "snnhw did not write"),
    "compile-o-folder-of-model": (lambda w, t, mp: ["compile", _model_next_to_output(w, t), "--arch", w.arch,
                                                     "-o", t], "overlaps the model"),
    "compile-o-folder-of-arch": (lambda w, t, mp: ["compile", w.sd, "--arch", arch_file(t, ""), "-o", t],
                                 "overlaps the --arch file"),
    "compile-o-model-file": (lambda w, t, mp: ["compile", _model_next_to_output(w, t), "--arch", w.arch,
                                                "-o", t / "sd.pt"], "overlaps the model"),
    "compile-o-calib": (lambda w, t, mp: ["compile", w.sd, "--arch", w.arch, "--calib", array(t, np.ones((2, 1, 16))),
                                          "-o", t], "overlaps --calib"),
    "compile-o-build-with-user-file": (lambda w, t, mp: ["compile", w.sd, "--arch", w.arch, "-o",
                                                          _build_with_user_file(w, t)], "notes.txt"),
    "compile-o-report-folder": (lambda w, t, mp: ["compile", w.sd, "--arch", w.arch, "-o", w.report],
                                "snnhw report folder"),
    "compile-o-existing-file": (lambda w, t, mp: ["compile", w.sd, "--arch", w.arch, "-o", array(t, np.ones(2))],
                                "not a directory"),
    "report-o-its-build": (lambda w, t, mp: ["report", w.build, "-i", w.x, "-o", w.build], "overlaps the build"),
    "report-o-inside-build": (lambda w, t, mp: ["report", w.build, "-i", w.x, "-o", w.build / "rep"],
                              "overlaps the build"),
    "report-o-user-dir": (lambda w, t, mp: ["report", w.build, "-i", w.x, "-o", _user_dir(t)], "snnhw did not write"),
    "report-o-another-build": (lambda w, t, mp: ["report", w.build, "-i", w.x, "-o", copy_build(w, t)],
                               "is an snnhw build"),
    "run-o-its-input": (lambda w, t, mp: ["run", w.build, "-i", w.x, "-o", w.x], "overlaps --input"),
    "run-o-build-model": (lambda w, t, mp: ["run", w.build, "-i", w.x, "-o", w.build / "model.onnx"],
                          "overlaps the build"),
    "run-o-user-file": (lambda w, t, mp: ["run", w.build, "-i", w.x, "-o", _text(t)], "not written by `snnhw run`"),
    "run-o-foreign-npz": (lambda w, t, mp: ["run", w.build, "-i", w.x, "-o", _npz(t)], "not written by `snnhw run`"),
    "run-o-directory": (lambda w, t, mp: ["run", w.build, "-i", w.x, "-o", t], "is a directory"),
    # 4. odd paths
    "compile-o-current-dir": (lambda w, t, mp: [mp.chdir(t), "compile", w.sd, "--arch", w.arch, "-o", "."][1:],
                              "current directory"),
    "compile-o-parent-of-current-dir": (lambda w, t, mp: [mp.chdir(_mkdir(t / "sub")), "compile", w.sd, "--arch",
                                                          w.arch, "-o", ".."][1:], "current directory"),
    "compile-o-dangling-symlink": (lambda w, t, mp: ["compile", w.sd, "--arch", w.arch, "-o", _symlink(t, t / "gone")],
                                   "symbolic link"),
    "compile-o-symlink-to-build": (lambda w, t, mp: ["compile", w.sd, "--arch", w.arch, "-o",
                                                      _symlink(t, copy_build(w, t))], "symbolic link"),
    "compile-o-below-a-file": (lambda w, t, mp: ["compile", w.sd, "--arch", w.arch, "-o", _text(t) / "b"],
                               "not a directory"),
    "compile-o-unwritable": (lambda w, t, mp: ["compile", w.sd, "--arch", w.arch, "-o", "/proc/snnhw-b"],
                             "cannot write in /proc"),
    "run-o-unwritable-before-running": (lambda w, t, mp: [mp.setattr("snnhw.targets.loihi.backend.LoihiBackend.run", _must_not_run),
                                                           "run", w.build, "-i", w.x, "-t", "loihi",
                                                           "-o", "/proc/o.npz"][1:], "cannot write in /proc"),
    "run-o-symlink": (lambda w, t, mp: ["run", w.build, "-i", w.x, "-o", _symlink(t, w.result)], "symbolic link"),
    # 5. files outside the build
    "onnx-external-data": (lambda w, t, mp: ["run", _external(w, t), "-i", w.x, "-o", t / "o.npz"],
                           "stored outside the file"),
    # 7. careless values
    "verify-T0": (lambda w, t, mp: ["verify", w.sd, "--arch", w.arch, "-i", array(t, np.zeros((0, 2, 16)))],
                  "at least one timestep"),
    "verify-B0": (lambda w, t, mp: ["verify", w.sd, "--arch", w.arch, "-i", array(t, np.zeros((4, 0, 16)))],
                  "at least one timestep and one sample"),
    "compile-calib-T0": (lambda w, t, mp: ["compile", w.sd, "--arch", w.arch, "--calib",
                                           array(t, np.zeros((0, 2, 16))), "-o", t / "b"], "at least one timestep"),
    "run-T0": (lambda w, t, mp: ["run", w.build, "-i", array(t, np.zeros((0, 2, 16))), "-o", t / "o.npz"],
               "at least one timestep"),
    "encode-rate-negative-seed": (lambda w, t, mp: ["run", w.build, "-i", w.static, "--encode", "rate", "--steps", 4,
                                                    "--seed", -1, "-o", t / "o.npz"], "--seed -1"),
    "lava-timeout-garbage": (lambda w, t, mp: [mp.setenv("SNNHW_LAVA_TIMEOUT", "soon"), "targets"][1:],
                             "SNNHW_LAVA_TIMEOUT='soon'"),
    "fpga-timeout-negative": (lambda w, t, mp: [mp.setenv("SNNHW_FPGA_TIMEOUT", "-5"), "targets"][1:],
                              "SNNHW_FPGA_TIMEOUT='-5'"),
    "fpga-timeout-nan": (lambda w, t, mp: [mp.setenv("SNNHW_FPGA_TIMEOUT", "nan"), "targets"][1:],
                         "positive number of seconds"),
    "manifest-without-target": (lambda w, t, mp: ["run", _manifest(w, t, target=None), "-i", w.x, "-o", t / "o.npz"],
                                "names no known target"),
    "manifest-target-traversal": (lambda w, t, mp: ["run", _manifest(w, t, target="../../../tmp/x"), "-i", w.x,
                                                    "-o", t / "o.npz"], "names no known target"),
    "manifest-target-number": (lambda w, t, mp: ["inspect", _manifest(w, t, target=5)], "names no known target"),
    "manifest-wrong-target": (lambda w, t, mp: ["run", _manifest(w, t, target="loihi"), "-i", w.x, "-o", t / "o.npz"],
                              "not the fixed IR of a loihi build"),
    "manifest-version-escape-sequence": (lambda w, t, mp: ["inspect", _manifest(w, t, snnhw_version="\x1b]0;owned\x07")],
                                         "control characters"),
    "manifest-file-outside-build": (lambda w, t, mp: ["inspect", _manifest_files(w, t, "../../etc/passwd")],
                                    "outside the build"),
    "manifest-absolute-file": (lambda w, t, mp: ["inspect", _manifest_files(w, t, "/etc/passwd")], "outside the build"),
    "build-ir-is-a-symlink": (lambda w, t, mp: ["run", _ir_symlink(w, t), "-i", w.x, "-o", t / "o.npz"],
                              "symbolic link"),
    "manifest-nested-100k-deep": (lambda w, t, mp: ["inspect", _deep_manifest(w, t)], "is corrupt"),
    "compile-o-folder-with-deep-manifest": (lambda w, t, mp: ["compile", w.sd, "--arch", w.arch, "-o",
                                                              _deep_manifest(w, t)], "snnhw did not write"),
    "manifest-input-not-a-dict": (lambda w, t, mp: ["inspect", _manifest(w, t, input=3)], "input description"),
    "float-ir-as-build": (lambda w, t, mp: ["report", _float_build(w, t), "-i", w.x, "-o", t / "r"],
                          "holds a float IR"),
    "arch-raises-baseexception": (lambda w, t, mp: ["compile", w.sd, "--arch", arch_file(t, "\nclass Boom(BaseException):"
                                                                                          "\n    pass\nraise Boom('x')\n"),
                                                    "-o", t / "b"], "Boom"),
    "arch-sys-exit-0": (lambda w, t, mp: ["compile", w.sd, "--arch", arch_file(t, "\nimport sys\nsys.exit(0)\n"),
                                          "-o", t / "b"], "sys.exit(0)"),
    "arch-factory-sys-exit": (lambda w, t, mp: ["compile", w.sd, "--arch",
                                                arch_file(t, "\ndef make():\n    raise SystemExit(3)\n"), "-o", t / "b"],
                              "sys.exit(3)"),
    "weight-bits-0": (lambda w, t, mp: ["compile", w.sd, "--arch", w.arch, "--weight-bits", 0, "-o", t / "b"],
                      "--weight-bits 0"),
    "input-bits-0": (lambda w, t, mp: ["compile", w.sd, "--arch", w.arch, "--input-kind", "graded", "--input-bits", 0,
                                       "-o", t / "b"], "--input-bits 0"),
    "dt-0": (lambda w, t, mp: _dt_args(w, t, 0), "--dt 0"),
    "dt-negative": (lambda w, t, mp: _dt_args(w, t, -1e-3), "--dt -0.001"),
    "dt-0-torch": (lambda w, t, mp: ["compile", w.sd, "--arch", w.arch, "--dt", 0, "-o", t / "b"], "--dt 0"),
    "labels-nan": (lambda w, t, mp: ["verify", w.sd, "--arch", w.arch, "-i", w.x, "--labels",
                                     labels(t, [0.0, np.nan])], "whole class numbers"),
    "labels-negative": (lambda w, t, mp: ["verify", w.sd, "--arch", w.arch, "-i", w.x, "--labels", labels(t, [0, -1])],
                        "4 neurons"),
    "labels-out-of-range": (lambda w, t, mp: ["verify", w.sd, "--arch", w.arch, "-i", w.x, "--labels",
                                              labels(t, [0, 4])], "classes 0..3"),
    "labels-fraction": (lambda w, t, mp: ["verify", w.sd, "--arch", w.arch, "-i", w.x, "--labels",
                                          labels(t, [0.5, 1])], "whole class numbers"),
    "nir-non-integer-input-shape": (lambda w, t, mp: ["compile", nir_file(t / "m.nir", **{
        "node/nodes/input/shape": np.array([4.7])}), "-o", t / "b"], "not a readable NIR file"),
    "complex-input": (lambda w, t, mp: ["run", w.build, "-i", array(t, np.ones((2, 2, 16), np.complex64)),
                                        "-o", t / "o.npz"], "complex dtype"),
    "nir-tau-0": (lambda w, t, mp: ["compile", nir_file(t / "m.nir", tau=0.0), "-o", t / "b"],
                  "tau must be a positive number of seconds"),
    "nir-conv-stride-0": (lambda w, t, mp: ["compile", nir_conv(t / "c.nir", 0), "-o", t / "b"],
                          "not a readable NIR file"),
}


def _must_not_run(*args, **kwargs):
    raise AssertionError("the backend ran although the output could not be written")


def _object_npy(t: Path) -> Path:
    np.save(t / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return t / "obj.npy"


def _mkdir(p: Path) -> Path:
    p.mkdir()
    return p


def _text(t: Path) -> Path:
    (t / "data.txt").write_text("mine")
    return t / "data.txt"


def _npz(t: Path) -> Path:
    np.savez(t / "mine.npz", output=np.ones(3))
    return t / "mine.npz"


def _renamed(w, t, name):
    b = copy_build(w, t)
    rename_node_in_ir(b, name)
    return b


def _external(w, t):
    b = copy_build(w, t)
    external_data_ir(b)
    return b


def _manifest(w, t, **changes):
    b = copy_build(w, t)
    rewrite_manifest(b, **changes)
    return b


def _manifest_files(w, t, extra: str):
    b = copy_build(w, t)
    rewrite_manifest(b)
    m = json.loads((b / "manifest.json").read_text())
    m["files"][extra] = "0" * 64
    (b / "manifest.json").write_text(json.dumps(m))
    return b


def _deep_manifest(w, t):
    b = copy_build(w, t)
    (b / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    return b


def _ir_symlink(w, t):
    b = copy_build(w, t)
    (b / "model.onnx").rename(t / "elsewhere.onnx")
    os.symlink(t / "elsewhere.onnx", b / "model.onnx")
    rewrite_manifest(b)
    return b


def _float_build(w, t):
    b = copy_build(w, t)
    shutil.copy(b / "float.onnx", b / "model.onnx")
    rewrite_manifest(b)
    return b


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_in_one_line_and_nothing_changes(case, w, tmp_path, monkeypatch):
    setup, words = REFUSED[case]
    work = tmp_path / "work"
    work.mkdir()
    args = setup(w, work, monkeypatch)
    before = snapshot(w.root, work)
    rc, so, se = cli(*args)
    assert_refused(rc, so, se, words)
    assert snapshot(w.root, work) == before
    assert not (work / "PWNED").exists() and not Path("PWNED").exists()


# ----------------------------------------------------------------------------- accepted cases
def test_outputs_snnhw_wrote_are_replaced(w, tmp_path):
    for src in (w.build, w.report):
        shutil.copytree(src, tmp_path / src.name)
    shutil.copy(w.result, tmp_path / "out.npz")
    (tmp_path / "empty").mkdir()
    for args in (["compile", w.sd, "--arch", w.arch, "-o", tmp_path / "build"],
                 ["compile", w.sd, "--arch", w.arch, "-o", tmp_path / "empty"],
                 ["report", w.build, "-i", w.x, "-o", tmp_path / "report"],
                 ["run", w.build, "-i", w.x, "-o", tmp_path / "out.npz"]):
        rc, _, se = cli(*args)
        assert rc == 0, (args, se)
    assert (tmp_path / "build" / "manifest.json").read_bytes() == (w.build / "manifest.json").read_bytes()
    assert (tmp_path / "empty" / "manifest.json").is_file()
    assert (tmp_path / "out.npz").read_bytes() == w.result.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["build", "empty", "out.npz", "report"]


def test_failed_swap_keeps_the_old_build_and_leaves_nothing(w, tmp_path, monkeypatch):
    """A build that cannot be renamed into place: one line, the old build intact, no .X.old/.X.tmp."""
    from snnhw import build as b
    shutil.copytree(w.build, tmp_path / "build")
    before = snapshot(tmp_path)
    real = os.rename

    def refuse_second(src, dst):
        if ".tmp-" in str(src):
            raise OSError(16, "Device or resource busy")
        return real(src, dst)

    monkeypatch.setattr(b.os, "rename", refuse_second)
    rc, so, se = cli("compile", w.sd, "--arch", w.arch, "-o", tmp_path / "build")
    assert_refused(rc, so, se, "Device or resource busy")
    assert snapshot(tmp_path) == before


def test_two_outputs_racing_to_the_same_path(w, tmp_path):
    """Two writers (as two compiles to the same -o) finish at the same moment, several times over:
    both succeed, the result is one complete output, nothing else is left next to it."""
    import threading
    from snnhw.build import atomic_dir, write_json
    dest = tmp_path / "b"
    for round_ in range(5):
        barrier, errors = threading.Barrier(2), []

        def writer(k):
            try:
                with atomic_dir(dest, "build") as tmp:
                    (tmp / "model.onnx").write_text(f"writer {k}")
                    write_json(tmp / "manifest.json", {"snnhw_version": "0", "files": {"model.onnx": "x"}})
                    barrier.wait(timeout=30)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert errors == [], (round_, errors)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]
        assert sorted(p.name for p in dest.iterdir()) == ["manifest.json", "model.onnx"]


def test_names_never_reach_generated_code_and_html_escapes_them(w, tmp_path, monkeypatch):
    """A printable hostile layer name is accepted, kept in JSON and HTML (escaped), and appears in no
    generated file; simulating the RTL runs nothing of it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SNNHW_FPGA_SYNTH", "0")
    model = torch_file(tmp_path, whole_module(PRINTABLE_ATTACK))
    rc, _, se = cli("compile", model, "-t", "fpga", "-o", tmp_path / "b")
    assert rc == 0, se
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    rtl = [f for f in manifest["files"] if f.startswith("rtl/")]
    assert rtl
    for f in rtl:
        text = (tmp_path / "b" / f).read_text()
        for fragment in ("PWNED", "onerror", "$system", "<img"):
            assert fragment not in text, (f, fragment)
    _assert_rendering_ignores_names(tmp_path / "b")
    rc, _, se = cli("run", tmp_path / "b", "-i", w.x, "-o", tmp_path / "o.npz")
    assert rc == 0, se
    rc, _, se = cli("report", tmp_path / "b", "-i", w.x, "-o", tmp_path / "r")
    assert rc == 0, se
    html = (tmp_path / "r" / "report.html").read_text()
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "<img src=x" not in html
    assert PRINTABLE_ATTACK in json.loads((tmp_path / "r" / "report.json").read_text())["counts"]["layers"]
    assert not (tmp_path / "PWNED").exists()


def _assert_rendering_ignores_names(build: Path):
    """Even a name that slipped past the import check (the attack of issue 11) is not rendered."""
    from snnhw.build import load_build
    from snnhw.targets.fpga.backend import BACKEND
    from snnhw.targets.fpga.render import render_design
    g, _ = load_build(build)
    old = g.neurons[0].name
    for n in g.nodes:
        if n.name == old:
            n.name = VERILOG_ATTACK
        if getattr(n, "input", None) == old:
            n.input = VERILOG_ATTACK
    files = render_design(BACKEND.plan(g))
    assert any("$readmemh" in text for text in files.values())
    for name, text in files.items():
        assert "PWNED" not in text and "bind" not in text and "evil" not in text, name


def test_rich_markup_in_names_is_shown_literally(w, tmp_path):
    model = torch_file(tmp_path, whole_module("fc[bold red]x"))
    rc, so, se = cli("compile", model, "-o", tmp_path / "b")
    assert rc == 0, se
    assert "fc[bold red]x" in so


def test_arch_help_says_it_runs_the_file():
    rc, so, _ = cli("compile", "--help")
    assert rc == 0
    assert "runs FILE.py" in " ".join(so.replace("│", " ").split())


# ----------------------------------------------------------------------------- SIGTERM
def _tagged(tag: str) -> list[int]:
    """Processes whose environment carries SNNHW_TEST_TAG=tag."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/environ", "rb") as fh:
            if f"SNNHW_TEST_TAG={tag}".encode() in fh.read().split(b"\0"):
                found.append(int(pid))
    return found


def _terminate_when(args, cwd: Path, ready, env_extra=None):
    """Start the CLI, wait until ``ready(children, tmpdir)``, send SIGTERM; return (rc, stderr, tmpdir, tag)."""
    tag = uuid.uuid4().hex
    # a short TMPDIR: Lava's multiprocessing puts a unix socket in it (paths are limited to 107 bytes)
    tmpdir = Path(tempfile.mkdtemp(prefix="st-", dir="/tmp"))
    env = {**os.environ, "SNNHW_TEST_TAG": tag, "TMPDIR": str(tmpdir), **(env_extra or {})}
    proc = subprocess.Popen([sys.executable, "-m", "snnhw.cli", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not ready([p for p in _tagged(tag) if p != proc.pid], tmpdir):
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before it could be interrupted: {proc.stderr.read()}")
        assert time.monotonic() < deadline, "the run never reached the state to interrupt"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err, tmpdir, tag


def _gone(tag: str, tmpdir: Path) -> tuple[list, list]:
    """Processes still tagged and files left in the TMPDIR of the run (which is then removed)."""
    deadline = time.monotonic() + 10
    while (_tagged(tag) or os.listdir(tmpdir)) and time.monotonic() < deadline:
        time.sleep(0.1)  # SIGKILLed processes take a moment to disappear from /proc
    left = _tagged(tag), os.listdir(tmpdir)
    shutil.rmtree(tmpdir)
    return left


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def test_sigterm_during_a_lava_run_leaves_nothing(w, tmp_path):
    rc, _, se = cli("compile", w.sd, "--arch", w.arch, "-t", "loihi", "-o", tmp_path / "b")
    assert rc == 0, se
    rc, err, tmpdir, tag = _terminate_when(
        ["run", tmp_path / "b", "-i", w.x, "-o", tmp_path / "o.npz"], tmp_path,
        lambda kids, tmp: len(kids) >= 3 and any(p.startswith("snnhw-lava-") for p in os.listdir(tmp)))
    assert rc == 143, err
    assert "Traceback" not in err
    assert _gone(tag, tmpdir) == ([], [])
    assert not (tmp_path / "o.npz").exists()


def test_sigterm_during_a_sharded_lava_run_leaves_nothing(w, tmp_path):
    """--workers 2: SIGTERM reaches both worker processes, which kill their Lava workers and remove
    their temporary folders before the CLI exits with 143."""
    rc, _, se = cli("compile", w.sd, "--arch", w.arch, "-t", "loihi", "-o", tmp_path / "b")
    assert rc == 0, se
    x = tmp_path / "x4.npy"
    np.save(x, np.concatenate([np.load(w.x)] * 4, axis=1))
    rc, err, tmpdir, tag = _terminate_when(
        ["run", tmp_path / "b", "-i", x, "-o", tmp_path / "o.npz", "--workers", "2"], tmp_path,
        lambda kids, tmp: sum(p.startswith("snnhw-lava-") for p in os.listdir(tmp)) >= 2)
    assert rc == 143, err
    assert "Traceback" not in err
    assert _gone(tag, tmpdir) == ([], [])
    assert not (tmp_path / "o.npz").exists()


def test_sigterm_during_yosys_leaves_no_half_build(w, tmp_path):
    rc, err, tmpdir, tag = _terminate_when(
        ["compile", w.sd, "--arch", w.arch, "-t", "fpga", "-o", tmp_path / "b"], tmp_path,
        lambda kids, tmp: any(_comm(p) == "yosys" for p in kids), {"SNNHW_FPGA_SYNTH": "1"})
    assert rc == 143, err
    assert _gone(tag, tmpdir) == ([], [])
    assert list(tmp_path.iterdir()) == []


def test_sigterm_during_an_icarus_simulation_leaves_nothing(w, tmp_path, monkeypatch):
    monkeypatch.setenv("SNNHW_FPGA_SYNTH", "0")
    rc, _, se = cli("compile", w.sd, "--arch", w.arch, "-t", "fpga", "-o", tmp_path / "b")
    assert rc == 0, se
    x = tmp_path / "long.npy"
    np.save(x, (np.random.default_rng(2).random((3000, 4, 16)) < 0.5).astype(np.float32))
    rc, err, tmpdir, tag = _terminate_when(
        ["run", tmp_path / "b", "-i", x, "-o", tmp_path / "o.npz"], tmp_path,
        lambda kids, tmp: any(_comm(p) == "vvp" for p in kids), {"SNNHW_FPGA_SIM": "icarus"})
    assert rc == 143, err
    assert _gone(tag, tmpdir) == ([], [])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "long.npy"]


def test_lava_worker_job_holds_no_model_text(w, tmp_path, monkeypatch):
    """The Lava worker gets the IR with index names; results come back under the user's names."""
    from snnhw.targets.loihi import backend
    model = torch_file(tmp_path, whole_module(PRINTABLE_ATTACK))
    rc, _, se = cli("compile", model, "-t", "loihi", "-o", tmp_path / "b")
    assert rc == 0, se
    jobs = []
    real = backend.run_supervised

    def spy(args, *rest, **kw):
        jobs.append(Path(args[-1], "model.onnx").read_bytes())
        return real(args, *rest, **kw)

    monkeypatch.setattr(backend, "run_supervised", spy)
    x = np.load(w.x)[:3, :1]
    res = backend.BACKEND.run(tmp_path / "b", x)
    assert len(jobs) == 2  # the Lava process graph and the build's network.net, each in its own worker job
    assert not [j for j in jobs if b"PWNED" in j or b"onerror" in j]
    assert b"PWNED" not in (tmp_path / "b" / "network.net").read_bytes()
    assert set(res.spikes) == {PRINTABLE_ATTACK, "lif2"}
