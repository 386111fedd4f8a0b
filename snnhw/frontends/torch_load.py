"""Load ``model.pt`` safely: a state_dict plus ``--arch``, or a whole pickled module.

Nothing from the file is executed: torch.load runs with ``weights_only=True`` and an allowlist of
torch.nn / snntorch classes. A pickle naming anything else is refused unless the user passes the
explicit trust flag. ``--arch FILE.py:NAME`` runs the user's own architecture file (a module class
or a factory, with literal arguments as ``FILE.py:NAME(hidden=128)``), which is code the user chose to run.
"""
from __future__ import annotations

import ast
import importlib.util
import pickle
import sys
import zipfile
from pathlib import Path

import snntorch as snn
import torch
from torch import nn

from snnhw.errors import InvalidFileError, SnnhwError

ALLOWED_CLASSES = [
    nn.Sequential, nn.ModuleList, nn.Linear, nn.Conv2d, nn.AvgPool2d, nn.MaxPool2d, nn.Flatten, nn.Identity,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.BatchNorm1d, nn.BatchNorm2d,
    snn.SpikingNeuron, snn.LIF, snn.Leaky, snn.Synaptic, snn.RLeaky, snn.RSynaptic,
]
try:  # RLeaky's one-to-one recurrence
    from snntorch._neurons.rleaky import RecurrentOneToOne
    ALLOWED_CLASSES.append(RecurrentOneToOne)
except ImportError:  # pragma: no cover - other snntorch versions
    pass


def _restricted_getattr(obj, name):
    """snntorch pickles its surrogate bypass as ``getattr(neuron, '_surrogate_bypass')`` (a bound
    method). Allow only lookups of methods defined by an allowlisted class, never dunders."""
    cls = obj if isinstance(obj, type) else type(obj)
    allowed = cls in ALLOWED_CLASSES and not name.startswith("__") and callable(getattr(cls, name, None))
    if not allowed:
        raise pickle.UnpicklingError(f"refusing getattr on {cls.__name__}.{name} while loading an untrusted file")
    return getattr(obj, name)


SAFE_GLOBALS = ALLOWED_CLASSES + [(_restricted_getattr, "builtins.getattr")]


def _torch_load(path: Path, trust: bool):
    try:
        if trust:
            return torch.load(path, map_location="cpu", weights_only=False)
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        msg = str(exc)
        if "Unsupported global" in msg or "refusing" in msg or "GLOBAL" in msg:
            what = msg.split("Unsupported global:")[-1].split("was not")[0].strip() if "Unsupported global" in msg else msg
            raise SnnhwError(f"{path} pickles {what}, which is not an allowlisted torch.nn/snntorch class; save a "
                             "state_dict and pass --arch FILE.py:NAME, or pass --trust-pickle if you trust this file "
                             "(it can run arbitrary code)") from None
        raise InvalidFileError(f"{path} is not a readable torch file ({msg.splitlines()[0][:200]})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError, AttributeError,
            ModuleNotFoundError, TypeError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise InvalidFileError(f"{path} is not a readable torch file, or is truncated or corrupt ({first})") from None


def _state_dict_of(obj, path):
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
        if obj and all(isinstance(k, str) for k in obj) and all(torch.is_tensor(v) for v in obj.values()):
            return obj
    raise InvalidFileError(f"{path} holds a {type(obj).__name__}, not a state_dict or a module")


def _parse_call(text: str, spec: str) -> tuple[str, tuple, dict]:
    """``NAME`` or ``NAME(literal, key=literal, ...)`` -> (name, args, kwargs), parsed with ``ast``;
    only Python literals are accepted as arguments (nothing is evaluated)."""
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise SnnhwError(f"--arch {spec!r}: NAME must be a name or a call like Net(hidden=128)") from None
    if isinstance(tree, ast.Name):
        return tree.id, (), {}
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name)):
        raise SnnhwError(f"--arch {spec!r}: NAME must be a name or a call like Net(hidden=128)")
    try:
        args = tuple(ast.literal_eval(a) for a in tree.args)
        kwargs = {k.arg: ast.literal_eval(k.value) for k in tree.keywords if k.arg is not None}
    except ValueError:
        raise SnnhwError(f"--arch {spec!r}: constructor arguments must be literals (numbers, strings, "
                         "True/False/None, tuples, lists, dicts)") from None
    if len(kwargs) != len(tree.keywords):
        raise SnnhwError(f"--arch {spec!r}: **kwargs are not accepted; write the arguments out")
    return tree.func.id, args, kwargs


def load_arch(spec: str) -> nn.Module:
    """Build the module named by ``FILE.py:NAME`` or ``FILE.py:NAME(args)``: a module class or a
    factory, called with the given literal arguments (none by default). The file's folder is on
    ``sys.path`` while it is imported, so it can import its sibling modules."""
    cut = spec.find(".py:")
    file, name = (spec[:cut + 3], spec[cut + 4:]) if cut >= 0 else (spec.rpartition(":")[0], spec.rpartition(":")[2])
    if not file or not name:
        raise SnnhwError(f"--arch {spec!r}: expected FILE.py:NAME, e.g. net.py:Net or 'net.py:Net(hidden=128)'")
    name, args, kwargs = _parse_call(name, spec)
    path = Path(file)
    if not path.is_file():
        raise SnnhwError(f"--arch: file {file} does not exist")
    mod_name = f"snnhw_arch_{abs(hash(str(path.resolve())))}"
    spec_ = importlib.util.spec_from_file_location(mod_name, path)
    module = importlib.util.module_from_spec(spec_)
    sys.modules[mod_name] = module
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)
    try:
        spec_.loader.exec_module(module)
    except Exception as exc:
        raise SnnhwError(f"--arch: importing {file} failed: {type(exc).__name__}: {exc}") from None
    finally:
        sys.path.remove(folder)
    obj = getattr(module, name, None)
    if obj is None:
        raise SnnhwError(f"--arch: {file} defines no {name!r}")
    call = f"{name}({', '.join([repr(a) for a in args] + [f'{k}={v!r}' for k, v in kwargs.items()])})"
    try:
        net = obj(*args, **kwargs)
    except Exception as exc:
        raise SnnhwError(f"--arch: calling {call} failed ({type(exc).__name__}: {exc}); NAME must be a module "
                         "class or a factory; give its arguments as --arch 'FILE.py:NAME(a=1, b=2)'") from None
    if not isinstance(net, nn.Module):
        raise SnnhwError(f"--arch: {call} returned {type(net).__name__}, not a torch.nn.Module")
    return net


def load_module(path: Path, arch: str | None = None, trust: bool = False) -> nn.Module:
    """The module stored in ``path`` (with its architecture from ``arch`` for a state_dict)."""
    obj = _torch_load(path, trust)
    if isinstance(obj, nn.Module):
        if arch:
            raise SnnhwError(f"{path} holds a whole module; drop --arch")
        return obj
    sd = _state_dict_of(obj, path)
    if not arch:
        raise SnnhwError(f"{path} is a state_dict: pass the architecture with --arch FILE.py:NAME")
    net = load_arch(arch)
    try:
        net.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:400]
        raise SnnhwError(f"the state_dict in {path} does not fit --arch {arch}: {detail}") from None
    return net


def first_layer_shape(net: nn.Module):
    """Per-sample input shape when the model defines it (its first layer is a Linear), else None."""
    for m in net.modules():
        if isinstance(m, nn.Linear):
            return (int(m.in_features),)
        if isinstance(m, (nn.Conv2d, nn.AvgPool2d)):
            return None
    return None
