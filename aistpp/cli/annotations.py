"""Verbs over the official annotation tree: ``split`` and ``info``."""

from __future__ import annotations

import json
from pathlib import Path

from aistpp.errors import AistppError


def register(sub) -> None:
    p = sub.add_parser(
        "split", help="official and custom train/val/test splits",
        description="Print (or write) the sequences of a split, one per line, in mapping.txt order. Crossmodal "
                    "splits regenerate the official FACT files; the ignore list is applied unless --keep-ignored.")
    p.add_argument("--annotations", required=True, metavar="DIR", help="official annotation tree (has cameras/)")
    p.add_argument("--kind", choices=("crossmodal", "pose", "genre"), default="crossmodal",
                   help="crossmodal (FACT), pose (test = dancers divisible by 3), genre (see --holdout-genre)")
    p.add_argument("--subset", choices=("train", "val", "test"), default="train")
    p.add_argument("--genre", metavar="G[,G]", help="keep only these genres, e.g. gBR,gPO")
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


def cmd_split(args) -> int:
    from aistpp.io.annotations import AnnotationTree, write_name_list
    from aistpp.naming import parse_genres
    from aistpp.splits import SplitSpec, check_leakage, make_splits

    tree = AnnotationTree.open(args.annotations)
    holdout = parse_genres(args.holdout_genre) or ()
    spec = SplitSpec(kind="genre" if holdout else args.kind, genres=parse_genres(args.genre),
                     holdout_genres=holdout, keep_ignored=args.keep_ignored)
    splits = make_splits(tree.mapping(), spec, ignore=tree.ignore_list())
    if args.check:
        report = check_leakage(splits["train"], splits["test"])
        print("\n".join(report.lines()))
        return 0 if report.clean else 1
    names = splits[args.subset]
    if args.out:
        write_name_list(args.out, names)
        import logging

        logging.getLogger("aistpp.split").info("wrote %d %s names to %s", len(names), args.subset, args.out)
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
