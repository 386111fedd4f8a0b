"""The documentation: the CLI reference is current, mkdocs builds it strictly, and runnable blocks run.

A code block is runnable when the line right before its opening fence is ``<!-- test -->``. The
blocks of one page run in order in one temporary directory (which links ``examples/``), ``bash``
blocks with ``set -euo pipefail`` and the venv's ``snnhw`` first on PATH, ``python`` blocks with the
venv's Python.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MARK = "<!-- test -->"
FENCE = re.compile(r"^```(bash|python)\s*$")


def runnable_blocks(page: Path) -> list[tuple[str, str]]:
    """(language, code) of every block of ``page`` whose fence follows a ``<!-- test -->`` line."""
    lines = page.read_text().splitlines()
    blocks = []
    for i, line in enumerate(lines):
        m = FENCE.match(line)
        if m and i > 0 and lines[i - 1].strip() == MARK:
            end = lines.index("```", i + 1)
            blocks.append((m.group(1), "\n".join(lines[i + 1:end]) + "\n"))
    return blocks


PAGES = sorted(p for p in DOCS.rglob("*.md") if runnable_blocks(p))


def test_some_pages_have_runnable_blocks():
    names = {p.relative_to(DOCS).as_posix() for p in PAGES}
    assert {"getting-started.md", "python-api.md"} <= names


def test_runnable_block_extraction(tmp_path):
    page = tmp_path / "p.md"
    page.write_text(f"```bash\nnot marked\n```\n{MARK}\n```python\nprint(1)\n```\n{MARK}\n\n```bash\nno: blank line\n```\n")
    assert runnable_blocks(page) == [("python", "print(1)\n")]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_runnable_blocks_run(page, tmp_path):
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "MPLBACKEND": "Agg", "COLUMNS": "200"}
    for n, (lang, code) in enumerate(runnable_blocks(page)):
        cmd = ["bash", "-euo", "pipefail", "-c", code] if lang == "bash" else [sys.executable, "-c", code]
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{page.name} block {n} ({lang}) failed:\n{code}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"


def test_cli_reference_is_current():
    proc = subprocess.run([sys.executable, str(DOCS / "gen_cli_reference.py"), "--check"], capture_output=True,
                          text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr


def test_mkdocs_build_strict(tmp_path):
    assert shutil.which("mkdocs", path=str(Path(sys.executable).parent)), \
        "mkdocs is missing from the venv: it is in the [dev] extra, run `make install`"
    mkdocs = Path(sys.executable).parent / "mkdocs"
    proc = subprocess.run([str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "site" / "cli" / "index.html").is_file()
    assert (tmp_path / "site" / "targets" / "emu" / "index.html").is_file()
