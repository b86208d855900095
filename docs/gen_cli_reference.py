"""Write docs/cli/<verb>.md (one page per ``aistpp`` verb, from its argparse ``--help``) and docs/cli/index.md.

    python docs/gen_cli_reference.py            # rewrite the pages
    python docs/gen_cli_reference.py --check    # exit 1 if a committed page is stale (what tests/test_docs.py does)

The help text is rendered at a fixed width (100 columns), so the pages do not depend on the terminal.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIDTH = 100


def render_pages() -> dict[str, str]:
    """{file name: markdown} for every verb, plus ``index.md``."""
    os.environ["COLUMNS"] = str(WIDTH)  # argparse's HelpFormatter reads the width from here
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from aistpp.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help for a in sub._choices_actions}
    pages = {}
    index = ["# CLI reference", "",
             "Generated from the argparse parser by `docs/gen_cli_reference.py`; do not edit by hand.", "",
             "```text", parser.format_help().rstrip(), "```", "", "| verb | what it does |", "|---|---|"]
    for verb, p in sub.choices.items():
        index.append(f"| [`aistpp {verb}`]({verb}.md) | {helps.get(verb, '') or ''} |")
        pages[f"{verb}.md"] = "\n".join([
            f"# aistpp {verb}", "",
            helps.get(verb, "") or "", "",
            "Generated from `aistpp " + verb + " --help` by `docs/gen_cli_reference.py`; do not edit by hand.", "",
            "```text", p.format_help().rstrip(), "```", ""])
    pages["index.md"] = "\n".join(index) + "\n"
    return pages


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 when a page differs or is missing")
    ap.add_argument("--out", default=str(ROOT / "docs" / "cli"), help="folder of the pages")
    args = ap.parse_args(argv)
    out = Path(args.out)
    pages = render_pages()
    stale = [name for name, text in pages.items()
             if not (out / name).exists() or (out / name).read_text() != text]
    extra = sorted(p.name for p in out.glob("*.md") if p.name not in pages) if out.is_dir() else []
    if args.check:
        for name in stale:
            print(f"stale: {out / name}")
        for name in extra:
            print(f"no such verb any more: {out / name}")
        return 1 if stale or extra else 0
    out.mkdir(parents=True, exist_ok=True)
    for name in stale:
        (out / name).write_text(pages[name])
    for name in extra:
        (out / name).unlink()
    print(f"{len(pages)} pages in {out}: {len(stale)} rewritten, {len(extra)} removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
