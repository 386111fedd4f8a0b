"""Make lava-nc 0.10.0 importable on Python 3.11+.

Lava declares Python < 3.11. On 3.11 ``lava/magma/compiler/var_model.py`` fails at import with
``ValueError: mutable default <class ByteEncoder> for field x is not allowed``: its dataclasses
(CoreEncoder, ChipEncoder, AxonEncoder) use dataclass *instances* as field defaults, which 3.11
rejects. :func:`install` registers an import hook that executes that one module with
``dataclasses._get_field`` wrapped so that such a default becomes ``default_factory`` returning a
fresh copy: the intended semantics (one ByteEncoder per instance), nothing else changes.

Lava upstream is archived, so this shim is kept here, tested (tests/test_lava_compat.py), and
applied only by the loihi target before it imports lava.
"""
from __future__ import annotations

import copy
import dataclasses
import importlib.abc
import importlib.machinery
import multiprocessing
import sys
from contextlib import contextmanager

PATCHED_MODULE = "lava.magma.compiler.var_model"


def _needs_factory(value) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type) and type(value).__hash__ is None


class _Loader(importlib.abc.Loader):
    def __init__(self, inner):
        self.inner = inner

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module):
        original = dataclasses._get_field

        def get_field(cls, a_name, *args, **kwargs):
            default = cls.__dict__.get(a_name, dataclasses.MISSING)
            if _needs_factory(default):
                setattr(cls, a_name, dataclasses.field(default_factory=lambda d=default: copy.deepcopy(d)))
            return original(cls, a_name, *args, **kwargs)

        dataclasses._get_field = get_field
        try:
            self.inner.exec_module(module)
        finally:
            dataclasses._get_field = original


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname != PATCHED_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader)
        return spec


def needed() -> bool:
    return sys.version_info >= (3, 11)


def install() -> None:
    """Install the hook (idempotent). Must run before ``lava.magma.compiler.var_model`` is imported."""
    if needed() and not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


@contextmanager
def _fork_start_method():
    """Lava's message infrastructure calls ``multiprocessing.set_start_method('fork')`` when it is
    imported, which raises if this process has fixed its start method already (any use of the
    default multiprocessing context does). Within the block that call is a no-op when the method is
    already ``fork``; another method is refused with the reason (Lava's runtime needs fork)."""
    current = multiprocessing.get_start_method(allow_none=True)
    if current is None:
        yield
        return
    if current != "fork":
        from snnhw.errors import SnnhwError
        raise SnnhwError(f"Lava needs the 'fork' multiprocessing start method, but this process uses {current!r}; "
                         "run the loihi target in a fresh process")
    original = multiprocessing.set_start_method
    multiprocessing.set_start_method = lambda method, force=False: None if method == "fork" else original(method, force)
    try:
        yield
    finally:
        multiprocessing.set_start_method = original


def import_lava():
    """Install the shim and import the Lava modules the loihi target uses; explain a missing lava-nc."""
    install()
    try:
        with _fork_start_method():
            import lava.magma.core.run_configs  # noqa: F401
            import lava.proc.dense.process  # noqa: F401
            import lava.proc.lif.process  # noqa: F401
    except ModuleNotFoundError as exc:
        from snnhw.errors import SnnhwError
        raise SnnhwError(f"the loihi target needs lava-nc ({exc}); run `make install`") from None


def import_netx():
    """Import lava-dl's netx without lava-dl's slayer (which needs torch<2.4, cv2 and more).

    netx imports one name from slayer, ``slayer.neuron.rf.neuron_params``, used only for resonate-
    and-fire neurons; a stub module provides it and refuses RF networks. Returns ``netx.hdf5``."""
    import types
    import_lava()
    name = "lava.lib.dl.slayer.neuron.rf"
    if name not in sys.modules:
        def neuron_params(*args, **kwargs):
            raise NotImplementedError("resonate-and-fire neurons need lava-dl's slayer, which is not installed")
        for mod in ("lava.lib.dl.slayer", "lava.lib.dl.slayer.neuron", name):
            stub = sys.modules.setdefault(mod, types.ModuleType(mod))
            stub.__path__ = []
        sys.modules[name].neuron_params = neuron_params
    try:
        from lava.lib.dl.netx import hdf5
    except ModuleNotFoundError as exc:
        from snnhw.errors import SnnhwError
        raise SnnhwError(f"reading netx files needs lava-dl ({exc}); run `make install`") from None
    return hdf5
