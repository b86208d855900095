"""Progress of long work: a tqdm bar on a terminal, a periodic log line anywhere else (CI logs, ``2> file``, nohup).

Use :func:`tqdm` exactly like ``tqdm.tqdm`` (``from aistpp.progress import tqdm``). When its output stream is a
terminal it is tqdm's bar; otherwise a :class:`LogLineTqdm`, which draws no bar and logs the same status text
(``reconstruct:  40%|####      | 2/5 [00:41<01:02, ...]``) as one INFO line of the ``aistpp.progress`` logger at the
start, every :func:`log_interval` seconds (``AISTPP_PROGRESS_SECONDS``, default 30) and at the end.

Log lines and bars do not mix: the CLI routes logging through ``tqdm.contrib.logging.logging_redirect_tqdm``.
"""

from __future__ import annotations

import logging
import os
import sys

from tqdm import tqdm as _tqdm

log = logging.getLogger("aistpp.progress")

DEFAULT_LOG_SECONDS = 30.0


def log_interval() -> float:
    """Seconds between two progress lines when there is no terminal (``AISTPP_PROGRESS_SECONDS``, default 30)."""
    try:
        return max(0.0, float(os.environ.get("AISTPP_PROGRESS_SECONDS", DEFAULT_LOG_SECONDS)))
    except ValueError:
        return DEFAULT_LOG_SECONDS


class _Discard:
    def write(self, text):
        return len(text)

    def flush(self):
        pass


class LogLineTqdm(_tqdm):
    """tqdm without a bar: its status as an INFO log line at the start, at most every ``mininterval`` seconds
    (default :func:`log_interval`) while it advances, and when it closes."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("mininterval", log_interval())
        kwargs["file"] = _Discard()
        kwargs["dynamic_ncols"] = False
        iterable = args[0] if args else kwargs.get("iterable")
        if kwargs.get("total") is not None or hasattr(iterable, "__len__"):  # else tqdm's counter format
            kwargs.setdefault("bar_format", "{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} "
                                            "[{elapsed}<{remaining}, {rate_fmt}{postfix}]")
        super().__init__(*args, **kwargs)

    def display(self, msg=None, pos=None):
        text = (msg if msg is not None else self.format_meter(**self.format_dict)).strip()
        if text:  # close(leave=False) "clears" with an empty message
            log.info("%s", text)
        return True


def is_terminal(stream=None) -> bool:
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def tqdm(*args, **kwargs):
    """``tqdm.tqdm(...)`` on a terminal, :class:`LogLineTqdm` (periodic log lines) otherwise."""
    if is_terminal(kwargs.get("file")):
        return _tqdm(*args, **kwargs)
    return LogLineTqdm(*args, **kwargs)
