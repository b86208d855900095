"""Robust HTTP(S) file transfer: parallel workers, resumable ``.part`` files, retries with backoff, size and
checksum checks, atomic rename.

One :class:`FileTask` is one remote file and its destination. :func:`fetch_files` runs many of them:

* a destination that exists is complete (it only ever appears by an atomic rename after every check), so it is
  skipped without a request: a rerun transfers nothing;
* bytes go to ``<dest>.part``; a ``.part`` left by an interrupted run (even a ``kill -9``) is resumed with an
  HTTP ``Range: bytes=<size>-`` request; a server that ignores Range (200) restarts the file from byte 0;
* timeouts, dropped connections, truncated bodies, 408/425/429 and 5xx answers are retried with exponential
  backoff (``backoff * 2**k`` seconds, with jitter, capped; ``Retry-After`` honoured up to the cap); an attempt
  that added bytes resets the count, so a server that drops every connection still finishes; other 4xx are final;
* the finished ``.part`` must have the size the server announced (Content-Length / Content-Range) and, when
  known, the task's size and sha256; then it is fsynced and renamed onto the destination.

HTTP goes through ``requests`` (connection pooling per host, streaming, connect/read timeouts) on ``urllib3``,
which refuses a body shorter than its Content-Length. Failures never raise: they land in the
:class:`DownloadReport` with the reason.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

from aistpp import __version__
from aistpp.errors import AistppError
from aistpp.io.atomic import fsync_dir

try:  # advisory lock on a .part file, so that two runs into one folder cannot interleave bytes
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

log = logging.getLogger(__name__)

PART_SUFFIX = ".part"
RETRY_STATUS = frozenset({408, 425, 429})  # plus every 5xx
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*$")


@dataclass(frozen=True)
class TransferConfig:
    """How to transfer. ``retries``: attempts in a row without new bytes before a file is given up;
    ``backoff``: first retry delay in seconds (doubled per retry, capped at ``backoff_max``); ``timeout``:
    connect and read timeout in seconds; ``workers``: files in parallel."""

    workers: int = 4
    retries: int = 5
    backoff: float = 1.0
    backoff_max: float = 60.0
    timeout: float = 30.0
    chunk_bytes: int = 1 << 16

    def __post_init__(self):
        if self.workers < 1:
            raise AistppError("--workers must be >= 1")
        if self.retries < 0:
            raise AistppError("--retries must be >= 0")
        if self.backoff < 0 or self.timeout <= 0:
            raise AistppError("--backoff must be >= 0 and --timeout > 0")

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``failures`` (1, 2, ...)."""
        base = min(self.backoff_max, self.backoff * 2 ** (failures - 1))
        wait = base * (0.5 + 0.5 * random.random())
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.backoff_max))
        return wait


@dataclass(frozen=True)
class FileTask:
    """One remote file: ``url`` -> ``dest``. ``size`` / ``sha256`` are checked when given."""

    url: str
    dest: Path
    name: str = ""
    size: int | None = None
    sha256: str | None = None

    @property
    def label(self) -> str:
        return self.name or self.dest.name

    @property
    def part(self) -> Path:
        return self.dest.with_name(self.dest.name + PART_SUFFIX)


@dataclass
class DownloadReport:
    """What a download did: files fetched now (``downloaded``, of which ``resumed`` continued a ``.part``), files
    already there (``present``), ``failed`` {name: reason}, bytes received and wall seconds."""

    out: str
    requested: int = 0
    downloaded: list = field(default_factory=list)
    resumed: list = field(default_factory=list)
    present: list = field(default_factory=list)
    failed: dict = field(default_factory=dict)
    bytes: int = 0
    seconds: float = 0.0
    extracted: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed

    def merge(self, other: "DownloadReport") -> None:
        self.downloaded += other.downloaded
        self.resumed += other.resumed
        self.present += other.present
        self.failed.update(other.failed)
        self.bytes += other.bytes

    def to_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        mb = self.bytes / 1e6
        rate = mb / self.seconds if self.seconds > 0 else 0.0
        out = [f"{self.out}: {self.requested} requested, {len(self.downloaded)} downloaded "
               f"({len(self.resumed)} resumed), {len(self.present)} already there, {len(self.failed)} failed; "
               f"{mb:.1f} MB in {self.seconds:.1f} s ({rate:.1f} MB/s)"]
        if self.extracted:
            out.append(f"extracted {self.extracted} files")
        for name, reason in sorted(self.failed.items()):
            out.append(f"  FAILED {name}: {reason}")
        if self.failed:
            out.append("re-run the same command to retry what failed (finished files are kept, partial ones resume)")
        return out


class _Retry(Exception):
    """A transient failure: retry after a backoff."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


class _Fatal(Exception):
    """A final failure for this file (404, checksum mismatch after a fresh download...)."""


class _Stopped(Exception):
    """The run was interrupted."""


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """``bytes 100-199/1000`` -> (100, 1000); ``bytes */1000`` -> (None, 1000)."""
    m = _CONTENT_RANGE.match(value or "")
    if not m:
        return None, None
    start = int(m.group(1)) if m.group(1) is not None else None
    total = int(m.group(3)) if m.group(3) != "*" else None
    return start, total


def _retry_after(headers) -> float | None:
    try:
        return float(headers.get("Retry-After", ""))
    except ValueError:
        return None


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _session():
    try:
        import requests
        from requests.adapters import HTTPAdapter
    except ImportError as err:  # pragma: no cover - the download extra is installed in CI
        raise AistppError("aistpp download needs requests: pip install 'aistpp[download]'") from err
    s = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=4, max_retries=0)  # retries are ours (with resume)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    s.headers.update({"User-Agent": f"aistpp/{__version__}", "Accept-Encoding": "identity"})
    return s


def _transport_errors() -> tuple:
    import requests
    import urllib3

    return (requests.RequestException, urllib3.exceptions.HTTPError, OSError)


class _Transfer:
    """Runs tasks on a thread pool; one requests.Session per worker thread."""

    def __init__(self, config: TransferConfig, progress: bool):
        self.config = config
        self.progress = progress
        self.local = threading.local()
        self.stop = threading.Event()
        self.slots: queue.Queue = queue.Queue()
        for i in range(config.workers):
            self.slots.put(i + 1)
        self.errors = _transport_errors()

    def session(self):
        s = getattr(self.local, "session", None)
        if s is None:
            s = self.local.session = _session()
        return s

    def run(self, task: FileTask) -> tuple[str, int, bool]:
        """-> (status 'present' | 'downloaded', bytes received, resumed)."""
        if task.dest.exists():
            return "present", 0, False
        task.dest.parent.mkdir(parents=True, exist_ok=True)
        slot = self.slots.get()
        bar = None
        try:
            if self.progress:
                from tqdm import tqdm

                bar = tqdm(desc=task.label[-40:], unit="B", unit_scale=True, unit_divisor=1024, position=slot,
                           leave=False, dynamic_ncols=True)
            return self._fetch(task, bar)
        finally:
            if bar is not None:
                bar.close()
            self.slots.put(slot)

    def _fetch(self, task: FileTask, bar) -> tuple[str, int, bool]:
        """All attempts at one file, holding ``task.part`` open and locked (another process fetching the same
        file into the same folder fails it instead of interleaving bytes)."""
        with open(task.part, "ab") as fh:
            if fcntl is not None:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    raise _Fatal(f"{task.part} is being written by another download; run one at a time") from None
            try:
                return self._attempts(task, fh, bar)
            except BaseException:
                if os.fstat(fh.fileno()).st_size == 0:  # nothing worth resuming: leave no empty .part behind
                    task.part.unlink(missing_ok=True)
                raise

    def _attempts(self, task: FileTask, fh, bar) -> tuple[str, int, bool]:
        cfg = self.config
        failures = 0
        received = 0
        resumed = False
        while True:
            if self.stop.is_set():
                raise _Stopped()
            got = [0]
            try:
                was_resume = self._attempt(task, fh, got, bar)
                received += got[0]
                resumed = resumed or was_resume
                self._finish(task, fh)
                return "downloaded", received, resumed
            except _Fatal:
                raise
            except (_Retry, *self.errors) as err:
                received += got[0]
                failures = 1 if got[0] > 0 else failures + 1  # an attempt that brought bytes resets the count
                reason = str(err) if isinstance(err, _Retry) else \
                    f"{type(err).__name__}: {' '.join(str(err).split())[:200]}"
                if failures > cfg.retries:
                    raise _Fatal(f"{reason} (gave up after {cfg.retries} retries without progress)") from None
                wait = cfg.delay(failures, getattr(err, "retry_after", None))
                log.debug("%s: %s; retry %d in %.2f s", task.label, reason, failures, wait)
                if self.stop.wait(wait):
                    raise _Stopped() from None

    def _attempt(self, task: FileTask, fh, got: list, bar) -> bool:
        """One GET appended to the open ``.part`` ``fh`` from its current size; returns whether it resumed.
        Raises _Retry / _Fatal (or a transport error)."""
        cfg = self.config
        offset = os.fstat(fh.fileno()).st_size
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        with self.session().get(task.url, headers=headers, stream=True, timeout=(cfg.timeout, cfg.timeout)) as r:
            code = r.status_code
            if code == 416 and offset:
                _, total = _content_range(r.headers.get("Content-Range"))
                if total is not None and total == offset:
                    self._check_size(task, fh, offset, total)
                    return True  # the .part was already complete
                fh.truncate(0)
                raise _Retry(f"HTTP 416: partial file ({offset} bytes) does not fit the remote file; restarting")
            if code in RETRY_STATUS or code >= 500:
                raise _Retry(f"HTTP {code} {r.reason or ''}".strip(), _retry_after(r.headers))
            if code >= 400:
                raise _Fatal(f"HTTP {code} {r.reason or ''}".strip() + f" for {task.url}")
            if code == 206:
                start, total = _content_range(r.headers.get("Content-Range"))
                if start != offset:
                    fh.truncate(0)
                    raise _Retry(f"server answered Range bytes={offset}- with {r.headers.get('Content-Range')!r}")
                resumed = True
            elif code == 200:
                if offset:
                    log.info("%s: server ignored the Range request; restarting from byte 0", task.label)
                    fh.truncate(0)
                offset, resumed = 0, False
                length = r.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
            else:
                raise _Fatal(f"unexpected HTTP {code} for {task.url}")
            if task.size is not None and total is not None and total != task.size:
                raise _Fatal(f"server announces {total} bytes, expected {task.size}")
            if bar is not None:
                bar.reset(total=total)
                bar.update(offset)
            # urllib3 would raise on a short body and drop the bytes of the read in progress; we keep every byte
            # that arrived (the .part is resumed from there) and check the length ourselves below.
            r.raw.enforce_content_length = False
            try:
                for chunk in r.iter_content(cfg.chunk_bytes):
                    if self.stop.is_set():
                        raise _Stopped()
                    fh.write(chunk)
                    got[0] += len(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
            finally:
                fh.flush()  # what arrived is on disk for the next attempt or run
            size = offset + got[0]
            if total is not None and size < total:
                raise _Retry(f"connection ended after {size} of {total} bytes")
            self._check_size(task, fh, size, total)
            return resumed

    def _check_size(self, task: FileTask, fh, size: int, total: int | None) -> None:
        if total is not None and size != total:
            fh.truncate(0)
            raise _Retry(f"got {size} bytes, server announced {total}; restarting")
        if task.size is not None and size != task.size:
            fh.truncate(0)
            raise _Fatal(f"size {size} bytes, expected {task.size}")

    def _finish(self, task: FileTask, fh) -> None:
        fh.flush()
        os.fsync(fh.fileno())
        if task.sha256:
            digest = sha256_file(task.part)
            if digest != task.sha256.lower():
                fh.truncate(0)
                raise _Fatal(f"sha256 mismatch: got {digest}, expected {task.sha256.lower()} (partial file removed)")
        os.replace(task.part, task.dest)
        fsync_dir(task.dest.parent)


def fetch_files(tasks, config: TransferConfig = TransferConfig(), progress: bool = False,
                out: str | Path = "") -> DownloadReport:
    """Fetch every task (duplicates by destination are fetched once); never raises for a failed file.

    ``progress``: a tqdm bar per file in flight and one overall. Ctrl-C stops the workers (partial files stay
    for the next run) and re-raises KeyboardInterrupt.
    """
    unique: dict[Path, FileTask] = {}
    for t in tasks:
        unique.setdefault(Path(t.dest), t)
    todo = list(unique.values())
    report = DownloadReport(out=str(out), requested=len(todo))
    t0 = time.perf_counter()
    xfer = _Transfer(config, progress)
    overall = None
    if progress:
        from tqdm import tqdm

        overall = tqdm(total=len(todo), desc="files", unit="file", position=0, dynamic_ncols=True)
    pool = ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="aistpp-download")
    try:
        futures = {pool.submit(xfer.run, t): t for t in todo}
        for fut in as_completed(futures):
            task = futures[fut]
            try:
                status, nbytes, resumed = fut.result()
            except _Fatal as err:
                report.failed[task.label] = str(err)
                log.warning("%s: failed: %s", task.label, err)
            except _Stopped:
                pass
            except Exception as err:  # a bug or a local disk problem: report it, keep the other files going
                report.failed[task.label] = f"{type(err).__name__}: {err}"
                log.warning("%s: failed: %s: %s", task.label, type(err).__name__, err)
            else:
                report.bytes += nbytes
                if status == "present":
                    report.present.append(task.label)
                else:
                    report.downloaded.append(task.label)
                    if resumed:
                        report.resumed.append(task.label)
                    log.debug("%s: %d bytes -> %s", task.label, nbytes, task.dest)
            if overall is not None:
                overall.update(1)
                overall.set_postfix_str(f"{report.bytes / 1e6:.1f} MB, {len(report.failed)} failed")
    except KeyboardInterrupt:
        xfer.stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)
        if overall is not None:
            overall.close()
    report.seconds = time.perf_counter() - t0
    return report


def fetch_one(task: FileTask, config: TransferConfig = TransferConfig(), progress: bool = False) -> DownloadReport:
    """:func:`fetch_files` for one task."""
    return fetch_files([task], config, progress, out=task.dest.parent)
