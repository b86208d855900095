"""Every command in docs/ runs, and the CLI reference is up to date.

How docs/*.md code blocks are treated (see docs/README.md, "Runnable examples"):

- ```` ```bash ```` blocks run with ``bash -euo pipefail`` (``aistpp`` on PATH), ```` ```python ```` blocks with the
  project's Python; each page's blocks run in order in one fresh temporary folder that holds ``annotations`` (a link
  to the shared official annotation tree), so a later block can use what an earlier one wrote.
- ```` ```bash norun ```` / ```` ```python norun ```` blocks need what tests cannot have (real videos, a GPU, a Ray
  cluster, the full release, a licensed SMPL file). They are still checked: every ``aistpp ...`` command in them
  must parse with the real argument parser (verbs and flags exist), and Python must compile.
- ```` ```text ```` / ```` ```console ```` blocks are output, not run.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(p for p in DOCS.glob("*.md"))
FENCE = re.compile(r"^([ \t]*)```([a-z]+)([^\n]*)\n(.*?)^\1```[ \t]*$", re.S | re.M)
RUN_LANGS = ("bash", "python")


def blocks(path: Path):
    """[(language, runnable, code, line)] of a markdown page."""
    text = path.read_text()
    out = []
    for m in FENCE.finditer(text):
        lang, info, code = m.group(2), m.group(3).split(), textwrap.dedent(m.group(4))
        line = text[:m.start()].count("\n") + 1
        out.append((lang, "norun" not in info, code, line))
    return out


def aistpp_commands(code: str) -> list[list[str]]:
    """The argv of every ``aistpp ...`` command in a shell block (continuations joined, comments dropped)."""
    code = re.sub(r"\\\n", " ", code)
    cmds = []
    for line in code.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError as err:
            raise AssertionError(f"cannot split {line!r}: {err}") from None
        for i, tok in enumerate(tokens):
            if tok == "aistpp" and (i == 0 or tokens[i - 1] in ("|", "&&", ";", "||", "time", "then", "do")):
                argv = []
                for t in tokens[i + 1:]:
                    if t in ("|", "&&", ";", "||", ">", ">>", "2>", "2>&1") or t.startswith(">"):
                        break
                    argv.append(t)
                cmds.append(argv)
    return cmds


def _parse_ok(argv: list[str]) -> str | None:
    from aistpp.cli import build_parser

    parser = build_parser()
    try:
        parser.parse_args(argv)
    except SystemExit as err:
        if err.code not in (0, None):
            return f"'aistpp {' '.join(argv)}' does not parse"
    return None


@pytest.fixture(scope="module")
def bin_dir(tmp_path_factory):
    """A PATH folder with an ``aistpp`` launcher for this checkout and the test's Python as ``python``."""
    d = tmp_path_factory.mktemp("bin")
    (d / "aistpp").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m aistpp "$@"\n')
    (d / "aistpp").chmod(0o755)
    (d / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')  # a link would lose the venv
    (d / "python").chmod(0o755)
    return d


def test_pages_exist():
    names = {p.name for p in PAGES}
    for want in ("README.md", "architecture.md", "conventions.md", "corpus.md", "quickstart.md", "data.md",
                 "cluster.md", "models.md", "viz.md"):
        assert want in names, f"docs/{want} is missing"


@pytest.mark.parametrize("page", [p for p in PAGES if any(b[0] in RUN_LANGS for b in blocks(p))],
                         ids=lambda p: p.name)
def test_doc_examples_run(page, annotations_dir, bin_dir, tmp_path):
    todo = [b for b in blocks(page) if b[0] in RUN_LANGS]
    (tmp_path / "annotations").symlink_to(annotations_dir)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
               PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", MPLBACKEND="Agg")
    env.pop("AISTPP_DEBUG", None)
    for lang, runnable, code, line in todo:
        where = f"{page.name}:{line}"
        if not runnable:
            if lang == "bash":
                for argv in aistpp_commands(code):
                    problem = _parse_ok(argv)
                    assert problem is None, f"{where}: {problem}"
            else:
                compile(code, where, "exec")
            continue
        cmd = ["bash", "-euo", "pipefail", "-c", code] if lang == "bash" else [sys.executable, "-c", code]
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, (f"{where} failed (exit {proc.returncode}):\n{code}\n--- stdout\n"
                                      f"{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}")


def test_norun_commands_are_checked():
    """The norun check has teeth: a misspelled flag is caught."""
    assert _parse_ok(["viz", "annotations", "--sequence", "x", "--out", "o"]) is None
    assert _parse_ok(["viz", "annotations", "--sequense", "x", "--out", "o"]) is not None
    assert aistpp_commands("aistpp a --b \\\n  c | head\nx=1 # aistpp not\n") == [["a", "--b", "c"]]


def test_cli_reference_is_up_to_date():
    proc = subprocess.run([sys.executable, str(DOCS / "gen_cli_reference.py"), "--check"], capture_output=True,
                          text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, f"docs/cli is stale; run python docs/gen_cli_reference.py\n{proc.stdout}"


def test_cli_reference_covers_every_verb():
    from aistpp.cli import build_parser

    parser = build_parser()
    verbs = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices
    for verb in verbs:
        assert (DOCS / "cli" / f"{verb}.md").exists(), verb
