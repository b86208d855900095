"""`aistpp download` against a local threaded HTTP server started by the tests: Range support, connections dropped
mid-file, 504 answers now and then, a throttled mode for kill -9, zips with a `../` entry. Every file must arrive
byte-identical, nothing may be written outside --out, an interrupted run resumes with Range requests, a rerun
transfers nothing."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import missing_shared_data

from aistpp.cli import main
from aistpp.download import (DownloadReport, FileTask, TransferConfig, download_music, download_videos,
                             fetch_files, safe_entry_path, select_music, select_videos)
from aistpp.download.archive import extract_zip
from aistpp.errors import AistppError
from aistpp.naming import VIEWS, build_name

pytest.importorskip("requests")

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--backoff", "0.01", "--timeout", "5", "--agree-terms"]


class FlakyServer:
    """Serves ``files`` {url path: bytes} on 127.0.0.1 with Range support and configurable misbehaviour:
    ``drop`` {path: n}: the first n answers of that path send half the body and close the connection;
    ``fail_every``: every n-th request (all paths) gets a 504; ``throttle``: seconds of sleep per ``chunk`` bytes;
    ``ignore_range``: answer 200 with the whole body to Range requests (``"wrong"``: 206 from byte 0);
    ``fail_paths``: always 504. ``log`` records every answer."""

    def __init__(self, files: dict, drop=None, fail_every=0, throttle=0.0, chunk=4096, ignore_range=False,
                 fail_paths=()):
        self.files = dict(files)
        self.fail_paths = set(fail_paths)
        self.in_flight = 0
        self.drop = dict(drop or {})
        self.fail_every = fail_every
        self.throttle = throttle
        self.chunk = chunk
        self.ignore_range = ignore_range
        self._log: list[dict] = []
        self.lock = threading.Lock()
        self.count = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def do_GET(self):
                server.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def log(self) -> list[dict]:
        """The requests answered so far, once every request received has been answered (a client can see the
        response before the handler thread records it)."""
        self.wait_idle()
        with self.lock:
            return list(self._log)

    def record(self, path, rng, status, sent):
        with self.lock:
            self._log.append({"path": path, "range": rng, "status": status, "sent": sent})
            self.in_flight -= 1

    def wait_idle(self, timeout=30.0):
        """Wait until every request received so far has been answered (or its client is gone)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if self.in_flight == 0:
                    return
            time.sleep(0.01)
        raise AssertionError("server handlers still busy")

    def sent(self, path=None) -> int:
        return sum(e["sent"] for e in self.log if path is None or e["path"] == path)

    def handle(self, h: BaseHTTPRequestHandler):
        path = h.path.lstrip("/")
        rng = h.headers.get("Range")
        with self.lock:
            self.count += 1
            self.in_flight += 1
            n = self.count
        if path not in self.files:
            h.send_error(404)
            return self.record(path, rng, 404, 0)
        if path in self.fail_paths or (self.fail_every and n % self.fail_every == 0):
            h.send_error(504, "Gateway Timeout")
            return self.record(path, rng, 504, 0)
        with self.lock:
            drop = self.drop.get(path, 0) > 0
            if drop:
                self.drop[path] -= 1
        data = self.files[path]
        start = 0
        m = re.match(r"bytes=(\d+)-$", rng or "")
        if m and self.ignore_range == "wrong":  # a broken server: 206, but from byte 0
            h.send_response(206)
            h.send_header("Content-Range", f"bytes 0-{len(data) - 1}/{len(data)}")
        elif m and not self.ignore_range:
            start = int(m.group(1))
            if start >= len(data):
                h.send_response(416)
                h.send_header("Content-Range", f"bytes */{len(data)}")
                h.send_header("Content-Length", "0")
                h.end_headers()
                return self.record(path, rng, 416, 0)
            h.send_response(206)
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            h.send_response(200)
        body = data[start:]
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Accept-Ranges", "bytes")
        h.end_headers()
        if drop:
            body = body[: len(body) // 2]
        sent = 0
        try:
            for i in range(0, len(body), self.chunk):
                piece = body[i:i + self.chunk]
                h.wfile.write(piece)
                h.wfile.flush()
                sent += len(piece)
                if self.throttle:
                    time.sleep(self.throttle)
        except (BrokenPipeError, ConnectionResetError):
            pass
        h.close_connection = True
        self.record(path, rng, 206 if start else 200, sent)


def video_names(n: int) -> list[str]:
    names = [build_name("gBR", "sBM", "d04", f"mBR{k}", k + 1, view=v) for k in range(3) for v in VIEWS]
    return names[:n]


def payload(name: str, size: int) -> bytes:
    """Deterministic, name-dependent bytes (a shifted block would not match)."""
    out = bytearray()
    i = 0
    while len(out) < size:
        out += hashlib.sha256(f"{name}:{i}".encode()).digest()
        i += 1
    return bytes(out[:size])


def video_server_files(names, sizes) -> dict:
    files = {f"videos/{n}.mp4": payload(n, s) for n, s in zip(names, sizes)}
    files["lists/video_list.txt"] = ("\n".join(names) + "\n").encode()
    return files


def listing(root: Path) -> set:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def assert_videos(out: Path, files: dict, names) -> None:
    for n in names:
        assert (out / f"{n}.mp4").read_bytes() == files[f"videos/{n}.mp4"], n
    got = {p for p in listing(out) if not p.startswith(".aistpp-download")}
    assert got == {f"{n}.mp4" for n in names}  # nothing missing, no .part left, no duplicates


def test_videos_from_flaky_server_are_byte_identical_and_a_rerun_transfers_nothing(tmp_path, capsys):
    names = video_names(12)
    sizes = [0, 1, 4095, 4096, 100_000] + [30_000 + 7_919 * i for i in range(7)]
    files = video_server_files(names, sizes)
    drop = {f"videos/{n}.mp4": 2 for n in names[3:9]}  # 6 files lose their connection twice mid-body
    with FlakyServer(files, drop=drop, fail_every=4) as srv:
        out = tmp_path / "run" / "videos"
        rc = main(["download", "videos", "--out", str(out), "--base-url", srv.url + "/videos/",
                   "--list-url", srv.url + "/lists/video_list.txt", "--workers", "4", "--retries", "8", *FAST,
                   "--json"])
        rep = json.loads(capsys.readouterr().out)
        assert rc == 0, rep["failed"]
        assert_videos(out, files, names)
        assert listing(tmp_path) == {f"run/videos/{p}" for p in listing(out)}  # nothing outside --out
        assert sorted(rep["downloaded"]) == sorted(f"{n}.mp4" for n in names)
        assert any(e["status"] == 504 for e in srv.log)
        # dropped files were resumed from where the connection ended, not restarted
        for n in names[4:9]:
            ranges = [e["range"] for e in srv.log if e["path"] == f"videos/{n}.mp4" and e["status"] == 206]
            assert ranges and all(r.startswith("bytes=") and r != "bytes=0-" for r in ranges), (n, ranges)
            assert f"{n}.mp4" in rep["resumed"]
        # every payload byte crossed the wire once: resumes never re-sent what had arrived
        total = sum(len(files[f"videos/{n}.mp4"]) for n in names)
        assert srv.sent() - len(files["lists/video_list.txt"]) == total

        before = len(srv.log)
        rc = main(["download", "videos", "--out", str(out), "--base-url", srv.url + "/videos/",
                   "--list-url", srv.url + "/lists/video_list.txt", *FAST, "--json"])
        rep = json.loads(capsys.readouterr().out)
        assert rc == 0 and rep["downloaded"] == [] and len(rep["present"]) == len(names) and rep["bytes"] == 0
        assert len(srv.log) == before  # not a single request, not even for the (cached) list


def test_kill_9_mid_transfer_resumes_partial_files_with_range_requests(tmp_path):
    names = video_names(4)
    files = video_server_files(names, [300_000] * 4)
    with FlakyServer(files, throttle=0.02, chunk=4096) as srv:
        out = tmp_path / "videos"
        cmd = [sys.executable, "-m", "aistpp", "download", "videos", "--out", str(out),
               "--base-url", srv.url + "/videos", "--list-url", srv.url + "/lists/video_list.txt", "--workers", "4",
               *FAST]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.time() + 60
            while time.time() < deadline:
                parts = {p.name: p.stat().st_size for p in out.glob("*.part")} if out.is_dir() else {}
                if len(parts) >= 3 and min(parts.values()) > 0:
                    break
                time.sleep(0.02)
            else:
                pytest.fail(f"no partial files appeared: {proc.poll()}")
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        assert proc.returncode == -signal.SIGKILL
        parts = {p.name[: -len(".part")]: p.stat().st_size for p in out.glob("*.part")}
        assert not list(out.glob("*.mp4"))  # nothing finished before the kill
        srv.throttle = 0.0
        srv.wait_idle()  # the killed client's answers are over before the second run starts
        first_run = srv.sent()
        n_log = len(srv.log)

        rc = main(["download", "videos", "--out", str(out), "--base-url", srv.url + "/videos",
                   "--list-url", srv.url + "/lists/video_list.txt", *FAST])
        assert rc == 0
        assert_videos(out, files, names)
        second = srv.log[n_log:]
        for name, size in parts.items():
            got = [e for e in second if e["path"] == f"videos/{name}"]
            assert [e["range"] for e in got] == [f"bytes={size}-" if size else None], (name, got)
            assert got[0]["sent"] == 300_000 - size
        second_bytes = sum(e["sent"] for e in second)
        assert second_bytes == 4 * 300_000 - sum(parts.values()) < 4 * 300_000
        assert first_run >= sum(parts.values())


@pytest.mark.parametrize("mode", [True, "wrong"])
def test_server_that_ignores_range_restarts_the_file(tmp_path, mode):
    names = video_names(2)
    files = video_server_files(names, [50_000, 60_000])
    out = tmp_path / "v"
    out.mkdir()
    (out / f"{names[0]}.mp4.part").write_bytes(b"x" * 10_000)  # a stale partial file the server will not resume
    with FlakyServer(files, ignore_range=mode) as srv:
        rep = download_videos(out, base_url=srv.url + "/videos", list_url=srv.url + "/lists/video_list.txt",
                              config=TransferConfig(backoff=0.01))
    assert rep.ok and rep.resumed == []
    assert_videos(out, files, names)


def test_a_complete_part_file_is_finished_without_transfer(tmp_path):
    """Killed after the last byte but before the rename: the server answers 416 and the .part is renamed."""
    names = video_names(1)
    files = video_server_files(names, [20_000])
    out = tmp_path / "v"
    out.mkdir()
    (out / f"{names[0]}.mp4.part").write_bytes(files[f"videos/{names[0]}.mp4"])
    with FlakyServer(files) as srv:
        rep = download_videos(out, base_url=srv.url + "/videos", list_url=srv.url + "/lists/video_list.txt")
        assert [e["status"] for e in srv.log if e["path"].startswith("videos/")] == [416]
    assert rep.ok and rep.resumed == [f"{names[0]}.mp4"]
    assert_videos(out, files, names)


def test_a_part_file_locked_by_another_run_is_not_touched(tmp_path):
    fcntl = pytest.importorskip("fcntl")
    names = video_names(2)
    files = video_server_files(names, [20_000, 30_000])
    out = tmp_path / "v"
    out.mkdir()
    part = out / f"{names[0]}.mp4.part"
    with FlakyServer(files) as srv, open(part, "ab") as held:
        held.write(files[f"videos/{names[0]}.mp4"][:5000])
        held.flush()
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # "another download" is writing it
        rep = download_videos(out, base_url=srv.url + "/videos", list_url=srv.url + "/lists/video_list.txt")
        assert "another download" in rep.failed[f"{names[0]}.mp4"]
        assert part.stat().st_size == 5000 and not any(names[0] in e["path"] for e in srv.log)
        assert rep.downloaded == [f"{names[1]}.mp4"]
    with FlakyServer(files) as srv:  # the other run is gone: this one resumes its bytes
        rep = download_videos(out, base_url=srv.url + "/videos", list_url=srv.url + "/lists/video_list.txt")
        assert rep.ok and rep.resumed == [f"{names[0]}.mp4"]
        assert [e["range"] for e in srv.log if names[0] in e["path"]] == ["bytes=5000-"]
    assert_videos(out, files, names)


def test_missing_and_always_failing_files_are_reported_and_exit_1(tmp_path, capsys):
    names = video_names(4)
    files = video_server_files(names, [5_000] * 4)
    del files[f"videos/{names[1]}.mp4"]  # 404
    sick = f"videos/{names[2]}.mp4"
    with FlakyServer(files, fail_paths={sick}) as srv:
        rc = main(["download", "videos", "--out", str(tmp_path / "v"), "--base-url", srv.url + "/videos",
                   "--list-url", srv.url + "/lists/video_list.txt", "--retries", "2", *FAST])
    text = capsys.readouterr().out
    assert rc == 1
    assert f"FAILED {names[1]}.mp4: HTTP 404" in text
    assert f"FAILED {names[2]}.mp4: HTTP 504 Gateway Timeout (gave up after 2 retries" in text
    assert len([e for e in srv.log if e["path"] == sick]) == 3
    assert len([e for e in srv.log if e["path"] == f"videos/{names[1]}.mp4"]) == 1  # a 404 is not retried
    assert (tmp_path / "v" / f"{names[0]}.mp4").read_bytes() == files[f"videos/{names[0]}.mp4"]
    assert not (tmp_path / "v" / f"{names[1]}.mp4").exists()
    assert not list((tmp_path / "v").glob("*.part"))  # failed before any byte: no empty .part left behind


def test_drops_with_progress_do_not_use_up_the_retries(tmp_path):
    """A server that cuts every connection half way still delivers: each attempt brings bytes, so --retries 2
    is never exhausted although the file needs 7 attempts."""
    data = payload("big", 64_000)
    with FlakyServer({"f.bin": data}, drop={"f.bin": 6}) as srv:
        rep = fetch_files([FileTask(srv.url + "/f.bin", tmp_path / "f.bin")],
                          TransferConfig(retries=2, backoff=0.01), out=tmp_path)
        assert len(srv.log) == 7
    assert rep.ok and (tmp_path / "f.bin").read_bytes() == data


def test_server_errors_exhaust_retries_with_exponential_backoff(tmp_path):
    files = {"f.bin": b"abc"}
    with FlakyServer(files, fail_every=1) as srv:
        t0 = time.perf_counter()
        rep = fetch_files([FileTask(srv.url + "/f.bin", tmp_path / "f.bin")],
                          TransferConfig(retries=3, backoff=0.05), out=tmp_path)
        dt = time.perf_counter() - t0
        assert len(srv.log) == 4 and all(e["status"] == 504 for e in srv.log)
    assert "HTTP 504" in rep.failed["f.bin"] and "gave up after 3 retries" in rep.failed["f.bin"]
    assert dt >= 0.5 * (0.05 + 0.1 + 0.2)  # 0.05, 0.1, 0.2 s (jitter takes at most half)
    assert not (tmp_path / "f.bin").exists()


def test_checksum_mismatch_fails_and_leaves_no_file(tmp_path, capsys):
    names = video_names(2)
    files = video_server_files(names, [3_000, 4_000])
    good = hashlib.sha256(files[f"videos/{names[0]}.mp4"]).hexdigest()
    files["sums.txt"] = f"{good}  {names[0]}.mp4\n{'0' * 64}  {names[1]}.mp4\n".encode()
    with FlakyServer(files) as srv:
        rc = main(["download", "videos", "--out", str(tmp_path / "v"), "--base-url", srv.url + "/videos",
                   "--list-url", srv.url + "/lists/video_list.txt", "--checksums", srv.url + "/sums.txt", *FAST])
    assert rc == 1
    assert "sha256 mismatch" in capsys.readouterr().out
    assert listing(tmp_path / "v") - {p for p in listing(tmp_path / "v") if p.startswith(".aistpp")} \
        == {f"{names[0]}.mp4"}


def test_terms_must_be_accepted(tmp_path, monkeypatch, capsys):
    names = video_names(1)
    files = video_server_files(names, [1000])
    with FlakyServer(files) as srv:
        args = ["download", "videos", "--out", str(tmp_path / "v"), "--base-url", srv.url + "/videos",
                "--list-url", srv.url + "/lists/video_list.txt", "--backoff", "0.01"]
        monkeypatch.setattr(sys.stdin, "isatty", lambda: False, raising=False)
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "--agree-terms" in err and "terms_of_use" in err and len(err.strip().splitlines()) == 1
        assert srv.log == [] and not (tmp_path / "v").exists()

        monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
        monkeypatch.setattr("builtins.input", lambda prompt="": "n")
        assert main(args) == 2 and srv.log == []
        assert "Terms of Use" in capsys.readouterr().err

        monkeypatch.setattr("builtins.input", lambda prompt="": "y")
        assert main(args) == 0
        assert (tmp_path / "v" / f"{names[0]}.mp4").read_bytes() == files[f"videos/{names[0]}.mp4"]


def test_environment_variables_set_the_urls(tmp_path, monkeypatch):
    names = video_names(3)
    files = video_server_files(names, [2000, 3000, 4000])
    with FlakyServer(files) as srv:
        monkeypatch.setenv("AISTPP_VIDEOS_URL", srv.url + "/videos/")
        monkeypatch.setenv("AISTPP_VIDEO_LIST_URL", srv.url + "/lists/video_list.txt")
        assert main(["download", "videos", "--out", str(tmp_path / "v"), "--views", "c02,c03", *FAST]) == 0
    assert_videos(tmp_path / "v", files, names[1:3])


def _tree_zip(annotations_dir: Path, extra: dict | None = None, top="aist_plusplus_final") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{top}/", "")
        for p in sorted(annotations_dir.rglob("*")):
            if p.is_file():
                zf.write(p, f"{top}/{p.relative_to(annotations_dir).as_posix()}")
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_annotations_archive_is_extracted_into_the_tree_other_verbs_read(tmp_path, annotations_dir, capsys):
    archive = _tree_zip(annotations_dir)
    with FlakyServer({"fullset.zip": archive}, drop={"fullset.zip": 1}, fail_every=3, chunk=65536) as srv:
        out = tmp_path / "annotations"
        rc = main(["download", "annotations", "--out", str(out), "--base-url", srv.url + "/fullset.zip", *FAST])
        assert rc == 0, capsys.readouterr()
        assert any(e["range"] for e in srv.log)  # the dropped archive was resumed
        want = {p.relative_to(annotations_dir).as_posix() for p in annotations_dir.rglob("*") if p.is_file()}
        got = {p for p in listing(out) if not p.startswith(".aistpp-download")}
        assert got == want
        for rel in want:
            assert (out / rel).read_bytes() == (annotations_dir / rel).read_bytes(), rel
        assert not (out / ".aistpp-download" / "fullset.zip").exists()  # archive removed once extracted
        capsys.readouterr()
        assert main(["info", str(out), "--max-files", "1"]) == 0
        assert "keypoints2d" in capsys.readouterr().out
        n = len(srv.log)
        assert main(["download", "annotations", "--out", str(out), "--base-url", srv.url + "/fullset.zip",
                     *FAST]) == 0
        assert len(srv.log) == n  # rerun: nothing transferred


def test_zip_slip_archive_is_refused_and_nothing_is_written(tmp_path, annotations_dir, capsys):
    archive = _tree_zip(annotations_dir, extra={"aist_plusplus_final/../../evil.txt": b"pwned", "../evil.txt": b"x"})
    with FlakyServer({"fullset.zip": archive}) as srv:
        out = tmp_path / "a" / "b" / "annotations"
        rc = main(["download", "annotations", "--out", str(out), "--base-url", srv.url + "/fullset.zip", *FAST])
    text = capsys.readouterr().out
    assert rc == 1
    assert "zip slip" in text and "evil.txt" in text
    assert not list(tmp_path.rglob("evil.txt"))
    assert not (out / "cameras").exists()  # the whole archive is refused before extracting anything
    assert {p for p in listing(tmp_path)} <= {f"a/b/annotations/{p}" for p in listing(out)}
    assert not list(out.glob(".aistpp-download/*.zip"))  # a refused archive is not kept


@pytest.mark.parametrize("name,ok", [
    ("a/b.txt", "a/b.txt"), ("./a//b.txt", "a/b.txt"), ("dir/", None),
    ("../x", False), ("a/../../x", False), ("/etc/passwd", False), ("C:/x", False), ("a\\..\\..\\x", False),
])
def test_safe_entry_path(name, ok):
    if ok is False:
        with pytest.raises(ValueError):
            safe_entry_path(name)
    else:
        got = safe_entry_path(name)
        assert (None if got is None else str(got)) == ok


def test_symlink_entries_are_refused(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("top/link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc")
        zf.writestr("top/link2", "x")
    (tmp_path / "a.zip").write_bytes(buf.getvalue())
    with pytest.raises(AistppError, match="symbolic link"):
        extract_zip(tmp_path / "a.zip", tmp_path / "out")
    assert not (tmp_path / "out" / "link2").exists()


def test_corrupt_archive_member_fails_crc(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("top/a.txt", b"A" * 1000)
    data = bytearray(buf.getvalue())
    i = data.index(b"A" * 1000)
    data[i + 500] = ord("B")  # flip one stored byte: the CRC-32 no longer matches
    (tmp_path / "a.zip").write_bytes(bytes(data))
    with pytest.raises(AistppError, match="CRC"):
        extract_zip(tmp_path / "a.zip", tmp_path / "out")
    assert listing(tmp_path / "out") == set()  # the atomic write left nothing behind


def test_leftovers_of_a_killed_extraction_are_removed(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("top/cameras/mapping.txt", b"m")
        zf.writestr("top/ignore_list.txt", b"i")
    (tmp_path / "a.zip").write_bytes(buf.getvalue())
    (tmp_path / "out" / "cameras").mkdir(parents=True)
    (tmp_path / "out" / "cameras" / ".mapping.txt.k2j4.extract").write_bytes(b"half")
    assert extract_zip(tmp_path / "a.zip", tmp_path / "out") == {"cameras/mapping.txt": 1, "ignore_list.txt": 1}
    assert listing(tmp_path / "out") == {"cameras/mapping.txt", "ignore_list.txt"}


def test_music_mp3_and_wav_archive(tmp_path):
    mp3 = {f"mp3/{m}.mp3": payload(m, 3000) for m in ("mBR0", "mBR1", "mPO1")}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for m in ("mBR0", "mBR1", "mPO1"):
            zf.writestr(f"wav/{m}.wav", payload(m + "wav", 2000))
        zf.writestr("wav/readme.txt", "x")
    lists = {"music_list.txt": b"mBR0\nmBR1\nmPO1\n", "wav.zip": buf.getvalue()}
    with FlakyServer({**mp3, **lists}, fail_every=2) as srv:
        cfg = TransferConfig(backoff=0.01)
        rep = download_music(tmp_path / "m", base_url=srv.url + "/mp3/", list_url=srv.url + "/music_list.txt",
                             genres=("gBR",), config=cfg)
        assert rep.ok and sorted(rep.downloaded) == ["mBR0.mp3", "mBR1.mp3"]
        assert (tmp_path / "m" / "mBR1.mp3").read_bytes() == mp3["mp3/mBR1.mp3"]
        rep = download_music(tmp_path / "w", fmt="wav", base_url=srv.url + "/wav.zip",
                             list_url=srv.url + "/music_list.txt", sequences=["gPO_sBM_cAll_d10_mPO1_ch02"],
                             config=cfg)
        assert rep.ok and rep.extracted == 1
        assert {p for p in listing(tmp_path / "w") if not p.startswith(".aistpp")} == {"mPO1.wav"}
        assert (tmp_path / "w" / "mPO1.wav").read_bytes() == payload("mPO1wav", 2000)
        n = len(srv.log)
        rep = download_music(tmp_path / "w", fmt="wav", base_url=srv.url + "/wav.zip",
                             list_url=srv.url + "/music_list.txt", sequences=["gPO_sBM_cAll_d10_mPO1_ch02"],
                             config=cfg)
        assert rep.ok and rep.present == ["wav.zip"] and len(srv.log) == n


def test_music_of_a_split_from_the_annotation_tree(tmp_path, annotations_dir):
    from aistpp.io.annotations import AnnotationTree, read_name_list

    tree = AnnotationTree.open(annotations_dir)
    test = read_name_list(tree.split_path("crossmodal_test"))
    mp3 = {f"mp3/{m}.mp3": payload(m, 500) for m in ("mBR0", "mPO1", "mLO2", "mMH3", "mLH4", "mHO5", "mWA0",
                                                      "mKR2", "mJS3", "mJB5", "mBR1")}
    with FlakyServer(mp3) as srv:
        rep = download_music(tmp_path / "m", base_url=srv.url + "/mp3", split="crossmodal_test",
                             annotations=annotations_dir)
    want = sorted({f"{s.split('_')[4]}.mp3" for s in test})
    assert rep.ok and sorted(rep.downloaded) == want and len(want) == 10


def test_the_official_video_list_as_a_local_file(tmp_path, annotations_dir, capsys):
    """--list-url may be a local file: here the real 12,670-name list; the selection picks 2 of them."""
    official = annotations_dir.parent / "lists" / "video_list.txt"
    if not official.is_file():
        missing_shared_data(f"the official video list {official}")
    names = ["gBR_sBM_c01_d04_mBR2_ch08", "gBR_sBM_c02_d04_mBR2_ch08"]
    files = {f"videos/{n}.mp4": payload(n, 1234) for n in names}
    with FlakyServer(files) as srv:
        rc = main(["download", "videos", "--out", str(tmp_path / "v"), "--base-url", srv.url + "/videos",
                   "--list-url", str(official), "--sequences", "gBR_sBM_cAll_d04_mBR2_ch08", "--views", "c01,c02",
                   *FAST])
        assert rc == 0 and sorted(e["path"] for e in srv.log) == sorted(files)
    assert "2 requested, 2 downloaded" in capsys.readouterr().out
    rc = main(["download", "videos", "--out", str(tmp_path / "v"), "--list-url", str(official), "--sequences",
               "gBR_sBM_cAll_d04_mBR9_ch08", *FAST])
    assert rc == 2 and "unknown music" in capsys.readouterr().err


def test_selection_matches_the_names():
    names = video_names(27)
    assert select_videos(names, genres=("gPO",)) == []
    assert select_videos(names, views="c05") == [n for n in names if "_c05_" in n]
    seq = build_name("gBR", "sBM", "d04", "mBR1", 2)
    one_view = build_name("gBR", "sBM", "d04", "mBR0", 1, view="c09")
    got = select_videos(names, sequences=[seq, one_view])
    assert sorted(got) == sorted([build_name("gBR", "sBM", "d04", "mBR1", 2, view=v) for v in VIEWS] + [one_view])
    with pytest.raises(AistppError, match="not in the video list"):
        select_videos(names, sequences=["gKR_sBM_cAll_d28_mKR2_ch02"])
    # names: mBR0 ch01, mBR1 ch02, mBR2 ch03 (sBM). Crossmodal rules: mBR0 is a test music, so its ch01 is val
    # (test would be ch02); sBM ch01/ch02 of other musics are unused; mBR2 ch03 is train.
    assert select_videos(names, split="crossmodal_test") == []
    assert select_videos(names, split="crossmodal_val") == [n for n in names if "mBR0" in n]
    assert select_videos(names, split="crossmodal_train") == [n for n in names if "mBR2" in n]
    assert select_music(["mBR0", "mBR1", "mPO1"], genres=("gBR",)) == ["mBR0", "mBR1"]
    assert select_music(["mBR0", "mBR1", "mPO1"], split="crossmodal_train", video_names=names) == []
    assert select_music(["mBR0", "mBR1", "mBR2"], split="crossmodal_train", video_names=names) == ["mBR2"]


def test_report_lines_name_the_failures():
    rep = DownloadReport(out="x", requested=3, downloaded=["a"], present=["b"], failed={"c": "HTTP 404"})
    text = "\n".join(rep.lines())
    assert "1 downloaded" in text and "1 already there" in text and "FAILED c: HTTP 404" in text
