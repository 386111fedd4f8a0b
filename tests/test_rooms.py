"""The rooms of docs/concepts.md and what each may import, checked on every module's imports (ast).

Every module of the package belongs to exactly one room; a module importing a room its own room may
not import fails here, naming the module and the import. In particular the application layer
(verify, report, energy, api, ...) is imported only by the CLI, by itself and by users: never by the
IR, the semantics core, the compiler passes, the frontends or the backends.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

ROOMS = {
    "base": ("snnhw.errors", "snnhw.safety", "snnhw.supervise", "snnhw.arrays", "snnhw.encoders"),
    "ir": ("snnhw.ir",),
    "semantics": ("snnhw.semantics",),
    "descriptions": ("snnhw.targets.description", "snnhw.targets"),
    "frontends": ("snnhw.frontends",),
    "compiler": ("snnhw.compiler",),
    "build format": ("snnhw.build",),
    "backends": ("snnhw.targets.contract", "snnhw.targets.emu", "snnhw.targets.fpga", "snnhw.targets.loihi"),
    "application": ("snnhw.verify", "snnhw.report", "snnhw.energy", "snnhw.api", "snnhw.decode",
                    "snnhw.benchmark_counts", "snnhw.deploy", "snnhw.compile", "snnhw.finetune",
                    "snnhw.nir_export", "snnhw.shard"),
    "cli": ("snnhw.cli",),
}
"""Room -> the modules (and packages) in it; the longest matching prefix decides."""

REFERENCE_EMULATOR = "snnhw.targets.emu.emulator"
"""The executable semantics: the compiler's calibration and quantization report run the float and
fixed IR on it (it is a module of the emu backend, but no backend object)."""

ALLOWED = {
    "base": {"base"},
    "ir": {"ir", "base"},
    "semantics": {"semantics", "ir", "base"},
    "descriptions": {"descriptions", "ir", "base"},
    "frontends": {"frontends", "compiler", "ir", "base"},
    "compiler": {"compiler", "semantics", "descriptions", "ir", "base", REFERENCE_EMULATOR},
    "build format": {"build format", "descriptions", "ir", "base"},
    "backends": {"backends", "build format", "compiler", "semantics", "descriptions", "ir", "base"},
    "application": set(ROOMS) - {"cli"} | {REFERENCE_EMULATOR},
    "cli": set(ROOMS) | {REFERENCE_EMULATOR},
}
"""Room -> the rooms its modules may import (docs/concepts.md, Rooms). A backend importing another
target's folder is refused by tests/test_contract.py."""


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[0] in ("compiler", "targets"):  # installed as snnhw.compiler, snnhw.targets
        parts.insert(0, "snnhw")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room_of(module: str) -> str | None:
    best = None
    for room, prefixes in ROOMS.items():
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and (best is None or len(p) > len(best[1])):
                best = (room, p)
    return best and best[0]


def snnhw_imports(path: Path) -> set:
    """The snnhw modules ``path`` imports (``from a.b import c``: ``a.b.c`` when that is a module)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("snnhw.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("snnhw"):
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                out.add(sub if (ROOT / Path(*sub.split(".")[1:])).with_suffix(".py").exists()
                        or _is_package(sub) else node.module)
    return out - {"snnhw"}


def _is_package(module: str) -> bool:
    parts = module.split(".")[1:]
    return any((ROOT / base / Path(*parts)).joinpath("__init__.py").exists() for base in ("", "snnhw")) \
        or (ROOT / Path(*parts) / "__init__.py").exists()


def _modules() -> list:
    return sorted(p for d in ("snnhw", "compiler", "targets") for p in (ROOT / d).rglob("*.py")
                  if "templates" not in p.parts)


def test_every_module_is_in_a_room():
    homeless = [module_name(p) for p in _modules() if module_name(p) != "snnhw" and room_of(module_name(p)) is None]
    assert not homeless, f"modules in no room of tests/test_rooms.py (and docs/concepts.md): {homeless}"


def violations(paths, root: Path = ROOT) -> list:
    """One line per import a module's room may not make."""
    bad = []
    for path in paths:
        mod = module_name(path, root)
        room = room_of(mod)
        if room is None:
            continue
        for imp in snnhw_imports(path):
            target = room_of(imp)
            allowed = ALLOWED[room]
            if target in allowed or target == room or any(imp == a or imp.startswith(a + ".") for a in allowed):
                continue
            bad.append(f"{mod} ({room}) imports {imp} ({target})")
    return bad


def test_rooms_import_only_what_they_may():
    modules = _modules()
    assert len(modules) >= 60
    bad = violations(modules)
    assert not bad, "\n".join(bad)


def test_the_room_check_catches_a_forbidden_import(tmp_path):
    """The checker itself: a compiler pass importing the application layer, or the IR importing a
    backend, is reported."""
    for rel, line in (("compiler/quantize.py", "from snnhw.verify import verify_model"),
                      ("snnhw/ir/graph.py", "from snnhw.targets.emu import emulator")):
        probe = tmp_path / rel
        probe.parent.mkdir(parents=True, exist_ok=True)
        probe.write_text((ROOT / rel).read_text() + f"\n{line}\n")
        bad = violations([probe], tmp_path)
        assert len(bad) == 1 and line.split()[1] in bad[0], bad
