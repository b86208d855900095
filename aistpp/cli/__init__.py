"""The ``aistpp`` command line. Each module in :data:`COMMAND_MODULES` registers its verbs; verbs parse arguments,
build configs, call the library and report. Heavy libraries are imported inside the verbs so ``--help`` is fast.

Errors from bad input (:class:`aistpp.AistppError`) print one line and exit with status 2. Logging (INFO for aistpp
by default) goes through ``tqdm.contrib.logging.logging_redirect_tqdm``, so log lines never break a progress bar;
output piped into a reader that stops early (``| head``) ends the command quietly.
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
    "aistpp.cli.benchmark",
    "aistpp.cli.corpus",
    "aistpp.cli.data",
    "aistpp.cli.detect",
    "aistpp.cli.download",
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
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output: -v debug lines of aistpp, -vv also those of the libraries it uses "
                             "(default: aistpp's info lines and the libraries' warnings)")
    parser.add_argument("--debug", action="store_true", help="show a full traceback on errors")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def log_levels(verbose: int) -> tuple[int, int]:
    """(level of the root logger = the libraries, level of the ``aistpp`` logger) for ``-v`` given ``verbose``
    times."""
    if verbose <= 0:
        return logging.WARNING, logging.INFO
    return (logging.WARNING if verbose == 1 else logging.DEBUG), logging.DEBUG


def _quiet_stdout() -> None:
    """The reader of stdout went away (``| head``): send what is still buffered nowhere instead of failing."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv=None) -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    parser = build_parser()
    args = parser.parse_args(argv)
    root_level, aistpp_level = log_levels(args.verbose)
    logging.basicConfig(level=root_level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    saved_level = log.level
    log.setLevel(aistpp_level)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    debug = args.debug or os.environ.get("AISTPP_DEBUG")
    if args.debug:  # also shows native (MediaPipe / TFLite / absl) log lines, in worker processes too
        os.environ["AISTPP_DEBUG"] = "1"
    try:
        with logging_redirect_tqdm():
            rc = args.func(args)
        sys.stdout.flush()
        return int(rc or 0)
    except BrokenPipeError:
        _quiet_stdout()
        return 0
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
    finally:
        log.setLevel(saved_level)
