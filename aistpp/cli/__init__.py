"""The ``aistpp`` command line. Each module in :data:`COMMAND_MODULES` registers its verbs; verbs parse arguments,
build configs, call the library and report. Heavy libraries are imported inside the verbs so ``--help`` is fast.

Errors from bad input (:class:`aistpp.AistppError`) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from aistpp import __version__
from aistpp.errors import AistppError

# One module per stage; each defines ``register(subparsers)``.
COMMAND_MODULES = (
    "aistpp.cli.annotations",
    "aistpp.cli.corpus",
    "aistpp.cli.data",
    "aistpp.cli.detect",
    "aistpp.cli.models",
    "aistpp.cli.smpl",
    "aistpp.cli.triangulate",
    "aistpp.cli.viz",
)

log = logging.getLogger("aistpp")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aistpp",
        description="Toolkit for the AIST++ dance dataset: reconstruct 3D keypoints and SMPL motions from 9 views, "
                    "build a sharded HDF5 corpus, split it, load it in PyTorch, train and evaluate FACT.",
    )
    parser.add_argument("--version", action="version", version=f"aistpp {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("--debug", action="store_true", help="show a full traceback on errors")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose + 1, 2)  # default INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    debug = args.debug or os.environ.get("AISTPP_DEBUG")
    if args.debug:  # also shows native (MediaPipe / TFLite / absl) log lines, in worker processes too
        os.environ["AISTPP_DEBUG"] = "1"
    try:
        rc = args.func(args)
        return int(rc or 0)
    except AistppError as err:
        if debug:
            raise
        print(f"aistpp {args.verb}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"aistpp {args.verb}: interrupted; finished work is kept, re-run to resume", file=sys.stderr)
        return 130
    except (OSError, ValueError, RuntimeError) as err:
        if debug:
            raise
        msg = " ".join(str(err).split())
        print(f"aistpp {args.verb}: error: {type(err).__name__}: {msg} (--debug shows the traceback)",
              file=sys.stderr)
        return 1
