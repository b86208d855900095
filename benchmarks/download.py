"""Download robustness and speed: `aistpp download`'s transfer against the official downloader's way, same files,
same server, same failures, in one process.

A local threaded HTTP server stands in for a distant, flaky host: every answer waits ``--latency`` seconds before
its first byte, each connection is capped at ``--rate`` MB/s, every 5th file's first answer is cut half way and
every 7th file's first answer is a 504. The failure schedule is per file and attempt, so both clients meet exactly
the same failures.

- baseline: what the official AIST++ ``downloader.py`` does: one ``urllib.request.urlretrieve`` per file, a failed
  file restarted from byte 0 (up to 10 tries, 0.1 s apart); with 1 worker (its default) and with as many workers
  as aistpp (equal work: then only the bytes differ);
- aistpp: :func:`aistpp.download.fetch_files` (Range resume of the cut files, backoff 0.1 s, ``--workers``).

Printed: wall seconds, bytes the server sent (the cut files show what resuming saves), files byte-identical.

Run: .venv/bin/python benchmarks/download.py [--files 24 --mb 1 --rate 2 --latency 0.05 --workers 4]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class Server:
    def __init__(self, files: dict, latency: float, rate_bytes: float):
        self.files, self.latency, self.rate = files, latency, rate_bytes
        self.attempts: dict = {}
        self.sent = 0
        self.lock = threading.Lock()
        srv = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                srv.answer(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def reset(self):
        with self.lock:
            self.attempts, self.sent = {}, 0

    def answer(self, h):
        name = h.path.lstrip("/")
        with self.lock:
            k = self.attempts[name] = self.attempts.get(name, 0) + 1
        time.sleep(self.latency)
        index = int(name.split("_")[0]) if name in self.files else -1
        if index < 0:
            return h.send_error(404)
        if k == 1 and index % 7 == 3:
            return h.send_error(504, "Gateway Timeout")
        data = self.files[name]
        start = 0
        rng = h.headers.get("Range", "")
        if rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            h.send_response(206)
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            h.send_response(200)
        body = data[start:]
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if k == 1 and index % 5 == 0:
            body = body[: len(body) // 2]  # connection cut half way
        chunk = 64 * 1024
        t0 = time.perf_counter()
        try:
            for i in range(0, len(body), chunk):
                h.wfile.write(body[i:i + chunk])
                with self.lock:
                    self.sent += len(body[i:i + chunk])
                ahead = (i + chunk) / self.rate - (time.perf_counter() - t0)
                if ahead > 0:
                    time.sleep(ahead)
        except OSError:
            pass
        h.close_connection = True


def baseline(url: str, names, out: Path, workers: int) -> None:
    """The official downloader's algorithm: urlretrieve, restart from zero on any error, 10 tries."""

    def one(name):
        dest = out / name
        for _ in range(10):
            try:
                urllib.request.urlretrieve(f"{url}/{name}", dest)
                return
            except Exception:
                dest.unlink(missing_ok=True)
                time.sleep(0.1)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, names))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=24)
    ap.add_argument("--mb", type=float, default=1.0, help="size of each file in MB")
    ap.add_argument("--rate", type=float, default=2.0, help="MB/s per connection")
    ap.add_argument("--latency", type=float, default=0.05, help="seconds before the first byte of each answer")
    ap.add_argument("--workers", type=int, default=4, help="aistpp download workers")
    args = ap.parse_args()

    from aistpp.download import FileTask, TransferConfig, fetch_files

    size = int(args.mb * 1e6)
    files = {}
    for i in range(args.files):
        seed = hashlib.sha256(str(i).encode()).digest()
        files[f"{i:03d}_video.mp4"] = (seed * (size // 32 + 1))[:size]
    server = Server(files, args.latency, args.rate * 1e6)
    total = sum(len(v) for v in files.values())
    print(f"{args.files} files x {args.mb} MB, {args.rate} MB/s per connection, {args.latency * 1000:.0f} ms to first "
          f"byte; cut half way: {sum(1 for i in range(args.files) if i % 5 == 0)} files, 504 first: "
          f"{sum(1 for i in range(args.files) if i % 7 == 3)} files")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, run in (
            ("official way (1 worker)", lambda out: baseline(server.url, list(files), out, 1)),
            (f"official way ({args.workers} workers)", lambda out: baseline(server.url, list(files), out, args.workers)),
            (f"aistpp download ({args.workers} workers)",
             lambda out: fetch_files([FileTask(f"{server.url}/{n}", out / n) for n in files],
                                     TransferConfig(workers=args.workers, backoff=0.1), out=out)),
        ):
            out = Path(tmp) / str(len(rows))
            out.mkdir()
            server.reset()
            t0 = time.perf_counter()
            run(out)
            dt = time.perf_counter() - t0
            ok = sum((out / n).is_file() and (out / n).read_bytes() == d for n, d in files.items())
            rows.append((label, dt, server.sent, ok))
    base = rows[0][1]
    for label, dt, sent, ok in rows:
        print(f"{label:32s} {dt:7.2f} s  ({base / dt:4.1f}x)  sent {sent / 1e6:7.2f} MB "
              f"({sent / total:5.1%} of the data)  byte-identical {ok}/{len(files)}")


if __name__ == "__main__":
    main()
