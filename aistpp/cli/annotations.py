"""Verbs over the official annotation tree: ``split`` and ``info``."""

from __future__ import annotations

import json
from pathlib import Path

from aistpp.errors import AistppError


def register(sub) -> None:
    p = sub.add_parser(
        "split", help="official and custom train/val/test splits",
        description="Print (or write) the sequences of a split, one per line, in mapping.txt order, and say on "
                    "stderr what was selected. Crossmodal splits regenerate the official FACT files; the ignore "
                    "list is applied unless --keep-ignored. --genre alone lists every sequence of those genres; "
                    "with --kind or --subset it keeps those genres of that split.")
    p.add_argument("--annotations", required=True, metavar="DIR", help="official annotation tree (has cameras/)")
    p.add_argument("--kind", choices=("crossmodal", "pose", "genre"), default=None,
                   help="crossmodal (FACT; the default), pose (test = dancers divisible by 3), genre (see "
                        "--holdout-genre)")
    p.add_argument("--subset", choices=("train", "val", "test", "all"), default=None,
                   help="which part of the split: train, val, test, or all (every sequence that the genre and "
                        "ignore-list filters keep, in a subset of the kind or not); default: train, or all when "
                        "--genre is given without --kind/--subset")
    p.add_argument("--genre", metavar="G[,G]", help="keep only these genres, e.g. gBR,gPO (alone: all of them)")
    p.add_argument("--holdout-genre", metavar="G[,G]",
                   help="cross-genre split: test = these genres, train = the others (implies --kind genre)")
    p.add_argument("--keep-ignored", action="store_true", help="keep the 45 ignore-list sequences (as published)")
    p.add_argument("--out", metavar="FILE", help="write the names to FILE instead of printing them")
    p.add_argument("--check", action="store_true",
                   help="print a leakage report (dancers, musics, choreographies in both train and test); "
                        "exit 1 if anything leaks")
    p.set_defaults(func=cmd_split)

    p = sub.add_parser("info", help="summarize an annotation tree or a corpus",
                       description="What is in PATH: counts per genre, files, shapes, frames, NaN fractions. A "
                                   "malformed file of a tree is reported (PROBLEM <file>: <why>) and the rest is "
                                   "summarized; the exit status is then 1.")
    p.add_argument("path", metavar="PATH", help="annotation tree (or a corpus directory)")
    p.add_argument("--max-files", type=int, default=None, help="read at most this many pkls per kind")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_info)


def split_selection(args) -> tuple[str, str]:
    """(kind, subset) of ``aistpp split``'s arguments: --genre alone means every sequence of those genres."""
    holdout = bool(args.holdout_genre)
    kind = "genre" if holdout else (args.kind or "crossmodal")
    subset = args.subset
    if subset is None:
        subset = "all" if args.genre and args.kind is None and not holdout and not args.check else "train"
    return kind, subset


def describe_selection(kind: str, subset: str, names: list[str], genres, mapping, ignored: int,
                       holdout=()) -> str:
    """One line saying what ``aistpp split`` selected, e.g. ``96 sequences: crossmodal train of gBR (of 141 gBR
    sequences in mapping.txt; 6 on the ignore list left out)``."""
    from aistpp.naming import parse_name

    scope = ",".join(genres) if genres else "all genres"
    total = sum(1 for s in mapping if not genres or parse_name(s).genre in genres)
    what = f"every sequence of {scope}" if subset == "all" else f"{kind} {subset} of {scope}"
    if kind == "genre" and subset != "all":
        what += f", {','.join(holdout)} held out for test"
    left_out = f"; {ignored} on the ignore list left out, --keep-ignored keeps them" if ignored else ""
    return f"{len(names)} sequences: {what} (of {total} {'' if not genres else scope + ' '}sequences in " \
           f"mapping.txt{left_out})"


def cmd_split(args) -> int:
    import logging

    from aistpp.io.annotations import AnnotationTree, write_name_list
    from aistpp.naming import parse_genres
    from aistpp.splits import SplitSpec, check_leakage, make_splits

    log = logging.getLogger("aistpp.split")
    tree = AnnotationTree.open(args.annotations)
    holdout = parse_genres(args.holdout_genre) or ()
    genres = parse_genres(args.genre)
    kind, subset = split_selection(args)
    spec = SplitSpec(kind=kind, genres=genres, holdout_genres=holdout, keep_ignored=args.keep_ignored)
    mapping = tree.mapping()
    splits = make_splits(mapping, spec, ignore=tree.ignore_list())
    if args.check:
        report = check_leakage(splits["train"], splits["test"])
        print("\n".join(report.lines()))
        return 0 if report.clean else 1
    names = splits[subset]
    ignored = 0
    if not args.keep_ignored:
        with_ignored = make_splits(mapping, SplitSpec(kind=kind, genres=genres, holdout_genres=holdout,
                                                     keep_ignored=True))[subset]
        ignored = len(with_ignored) - len(names)
    log.info("%s", describe_selection(kind, subset, names, genres, mapping, ignored, holdout))
    if args.out:
        write_name_list(args.out, names)
        log.info("wrote %d %s names to %s", len(names), subset, args.out)
    else:
        print("\n".join(names))
    return 0


def cmd_info(args) -> int:
    path = Path(args.path)
    if not path.exists():
        raise AistppError("no such file or directory", path)
    from aistpp.corpus.manifest import is_corpus

    if is_corpus(path):  # a corpus directory (has manifest.json): the corpus summary
        from aistpp.corpus import format_corpus_summary, summarize_corpus

        summary = summarize_corpus(path)
        print(json.dumps(summary, indent=2) if args.json else "\n".join(format_corpus_summary(summary)))
        return 0
    from aistpp.io.annotations import AnnotationTree
    from aistpp.io.summary import format_summary, summarize_tree

    summary = summarize_tree(AnnotationTree.open(path), max_files=args.max_files)
    print(json.dumps(summary, indent=2) if args.json else "\n".join(format_summary(summary)))
    return 1 if summary["problems"] else 0
