"""Load ``model.pt`` safely: a state_dict plus ``--arch``, or a whole pickled module.

Nothing from the file is executed: torch.load runs with ``weights_only=True`` and an allowlist of
torch.nn / snntorch classes. A pickle naming anything else is refused unless the user passes the
explicit trust flag. ``--arch FILE.py:NAME`` imports and runs the user's own architecture file (a
module class or a factory, with literal arguments as ``FILE.py:NAME(hidden=128)``): code the user
chose to run, so only their own code (docs/security.md). Whatever it raises, ``sys.exit`` included,
becomes one error line.
"""
from __future__ import annotations

import ast
import importlib.util
import pickle
import re
import sys
import warnings
import zipfile
from pathlib import Path

import snntorch as snn
import torch
from torch import nn

from snnhw.errors import InvalidFileError, SnnhwError
from snnhw.safety import Terminated, one_line

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


def _refusal(msg: str, path: Path) -> str | None:
    """What torch's weights-only unpickler refused, from its several-line message (None: not a refusal).

    torch 2.13 says ``Trying to load unsupported GLOBAL posix.system whose module posix is blocked``
    or ``Unsupported global: GLOBAL x.Y was not an allowed global``; an instruction it does not run
    (a plain pickle of protocol 4/5 starts with FRAME, opcode 149) is ``Unsupported operand 149``.
    """
    found = re.search(r"GLOBAL\s+([\w.<>]+)", msg)
    if found:
        return f"pickles {found.group(1)}, which is not an allowlisted torch.nn/snntorch class"
    found = re.search(r"refusing getattr on (\S+)", msg)
    if found:
        return f"looks up {found.group(1)}, which is not a method of an allowlisted class"
    found = re.search(r"Unsupported operand (\d+)", msg)
    protocol = _pickle_protocol(path)
    if found and protocol:
        return (f"is a plain pickle (protocol {protocol}), not a torch.save file; the safe loader does not run "
                f"its instruction {found.group(1)}")
    return None


def _pickle_protocol(path: Path) -> int | None:
    """The protocol of a plain pickle file (it starts with PROTO n), else None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
    except OSError:
        return None
    return head[1] if len(head) == 2 and head[0] == pickle.PROTO[0] and 2 <= head[1] <= pickle.HIGHEST_PROTOCOL \
        else None


def _torch_load(path: Path, trust: bool):
    try:
        with warnings.catch_warnings():  # torch warns about unusual pickle protocols on stderr
            warnings.simplefilter("ignore")
            if trust:
                return torch.load(path, map_location="cpu", weights_only=False)
            with torch.serialization.safe_globals(SAFE_GLOBALS):
                return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        msg = str(exc)
        what = _refusal(msg, path)
        if what:
            raise SnnhwError(f"{path} {what}; save a state_dict with torch.save(model.state_dict(), ...) and pass "
                             "--arch FILE.py:NAME, or pass --trust-pickle if you trust this file (it can run "
                             "arbitrary code)") from None
        lines = [ln.strip() for ln in msg.split("WeightsUnpickler error:")[-1].splitlines() if ln.strip()]
        raise InvalidFileError(f"{path} is not a readable torch file ({(lines or [type(exc).__name__])[0][:200]})") \
            from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError, AttributeError,
            ModuleNotFoundError, TypeError, IndexError, MemoryError, OverflowError) as exc:
        protocol = _pickle_protocol(path)
        if protocol:
            raise InvalidFileError(f"{path} is a plain pickle (protocol {protocol}), not a torch.save file; save the "
                                   "model with torch.save(model.state_dict(), ...) and pass --arch") from None
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


def _described(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r})"
    return f"{type(exc).__name__}: {one_line(str(exc))[:300]}"


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
    except (KeyboardInterrupt, Terminated):
        raise
    except BaseException as exc:  # SystemExit too: sys.exit(0) in the file must not end snnhw silently
        raise SnnhwError(f"--arch: importing {file} failed: {_described(exc)}") from None
    finally:
        sys.path.remove(folder)
    obj = getattr(module, name, None)
    if obj is None:
        raise SnnhwError(f"--arch: {file} defines no {name!r}")
    call = f"{name}({', '.join([repr(a) for a in args] + [f'{k}={v!r}' for k, v in kwargs.items()])})"
    try:
        net = obj(*args, **kwargs)
    except (KeyboardInterrupt, Terminated):
        raise
    except BaseException as exc:
        raise SnnhwError(f"--arch: calling {call} failed ({_described(exc)}); NAME must be a module "
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
