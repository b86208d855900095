"""Atomic, resumable corpus writing.

A :class:`CorpusWriter` buffers finished sequences in memory and commits them as a *new* shard file: written
under a temporary name, fsynced, renamed, and only then referenced by the manifest (itself replaced atomically).
A referenced shard is never modified in place, so a run killed at any moment leaves a valid corpus: at worst an
unreferenced temporary or shard file, which the next writer removes. A shard no index entry uses any more (after a
re-run or a compaction) is *retired*, not deleted: it stays listed under ``retired`` in the manifest and on disk
for ``retain_seconds`` (default :data:`RETAIN_SECONDS`), so a long-lived reader holding the previous manifest keeps
reading its snapshot; a later commit deletes it. Shard numbers are never reused. Buffers are committed when they
reach the target shard size, after ``max_pending`` sequences or ``flush_seconds``; :meth:`CorpusWriter.compact`
merges small shards into shards near the target size (copying the stored chunks, no recompression).

Only one writer may hold a corpus at a time (an exclusive ``flock`` on ``.writer.lock``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from pathlib import Path

import numpy as np

from aistpp import __version__
from aistpp.corpus.manifest import (MANIFEST, config_hash, file_sha256, is_corpus, new_manifest, now_iso, plain,
                                    read_manifest, shard_index, shard_name, write_manifest)
from aistpp.corpus.schema import FIELDS, MUSIC_DIM, chunk_shape, validate_arrays
from aistpp.errors import AistppError
from aistpp.io.atomic import atomic_path
from aistpp.naming import check_sequence_name, check_token

log = logging.getLogger(__name__)

DEFAULT_TARGET_SHARD_BYTES = 512 * 2**20
RETAIN_SECONDS = 3600.0  # how long a retired shard stays readable for readers of an older manifest


def _h5py():
    import h5py

    return h5py


def write_attrs(obj, attrs: dict) -> None:
    """Store a dict as HDF5 attributes: numbers and strings as they are, anything else as JSON text."""
    for k, v in attrs.items():
        v = plain(v)
        if v is None:
            continue
        if isinstance(v, (dict, list)):
            obj.attrs[k] = "json:" + json.dumps(v, sort_keys=True)
        else:
            obj.attrs[k] = v


def read_attrs(obj) -> dict:
    out = {}
    for k, v in obj.attrs.items():
        if isinstance(v, bytes):
            v = v.decode("utf-8")
        if isinstance(v, str) and v.startswith("json:"):
            v = json.loads(v[5:])
        elif isinstance(v, np.generic):
            v = v.item()
        out[k] = v
    return out


def write_sequence_group(h5file, sequence: str, arrays: dict, attrs: dict, compression: str = "gzip") -> None:
    """Write one sequence group into an open HDF5 file (arrays already validated, canonical names)."""
    h5py = _h5py()
    grp = h5file.create_group(sequence)
    for name, arr in arrays.items():
        if FIELDS[name][1] is str:
            grp.create_dataset(name, data=np.asarray(arr, dtype=object), dtype=h5py.string_dtype())
            continue
        chunks = chunk_shape(name, arr.shape)
        kw = {}
        if chunks is not None:
            kw = {"chunks": chunks, "compression": compression, "shuffle": True}
            if compression == "gzip":
                kw["compression_opts"] = 4
        grp.create_dataset(name, data=arr, **kw)
    write_attrs(grp, attrs)


class CorpusWriter:
    """Open (or create) the corpus directory ``root`` for writing.

    Parameters: ``target_shard_bytes`` (roll shards at about this size, uncompressed estimate while buffering),
    ``max_pending`` (commit after this many buffered sequences), ``flush_seconds`` (commit buffered work at least
    this often), ``compression`` ('gzip' or 'lzf').

    Use as a context manager; :meth:`close` commits what is buffered. Methods: :meth:`add_sequence`,
    :meth:`add_failure`, :meth:`add_music`, :meth:`flush`, :meth:`compact`, :meth:`is_done`.
    """

    def __init__(self, root: str | Path, target_shard_bytes: int = DEFAULT_TARGET_SHARD_BYTES,
                 max_pending: int = 16, flush_seconds: float = 120.0, compression: str = "gzip",
                 retain_seconds: float = RETAIN_SECONDS):
        if compression not in ("gzip", "lzf"):
            raise AistppError(f"unknown compression {compression!r}; expected gzip or lzf")
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise AistppError("corpus path exists and is not a directory", self.root)
        if self.root.is_dir() and not is_corpus(self.root) and any(self.root.iterdir()):
            raise AistppError("directory is not empty and is not a corpus (no manifest.json)", self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_pending = int(max_pending)
        self.retain_seconds = float(retain_seconds)
        self.flush_seconds = float(flush_seconds)
        self.compression = compression
        self._lock_fh = self._lock()
        if is_corpus(self.root):
            self.manifest = read_manifest(self.root)
        else:
            self.manifest = new_manifest(target_shard_bytes)
            write_manifest(self.root, self.manifest)
        self.target_shard_bytes = int(target_shard_bytes)
        self.manifest["target_shard_bytes"] = self.target_shard_bytes
        self._pending: list[tuple] = []  # (kind, key, arrays, attrs, entry)
        self._pending_bytes = 0
        self._last_flush = time.monotonic()
        self._garbage: list[str] = []
        self._cleanup()

    # -- housekeeping -------------------------------------------------------------------------------------------
    def _lock(self):
        import fcntl

        fh = open(self.root / ".writer.lock", "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            raise AistppError("another aistpp process is writing this corpus (.writer.lock is held)",
                              self.root) from None
        return fh

    def _cleanup(self) -> None:
        """Remove leftovers of a killed run: temporary files and shards the manifest does not reference (retired
        shards are referenced until they expire)."""
        referenced = set(self.manifest["shards"]) | set(self.manifest.get("retired", {}))
        for p in self.root.iterdir():
            stale_tmp = p.name.startswith(".shard-") or p.name.startswith(f".{MANIFEST}.")
            stale_shard = shard_index(p.name) is not None and p.name not in referenced
            if p.is_file() and (stale_tmp or stale_shard):
                log.info("removing leftover %s from an interrupted run", p.name)
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()

    def _next_shard(self) -> str:
        """A shard name never used before in this corpus (a reader of an old manifest can never meet another
        file under a name it knows)."""
        used = [shard_index(n) for n in list(self.manifest["shards"]) + list(self.manifest.get("retired", {}))]
        used += [shard_index(p.name) for p in self.root.glob("shard-*.h5")]
        used += [int(self.manifest.get("last_shard_index", -1))]
        used = [i for i in used if i is not None]
        index = max(used) + 1 if used else 0
        self.manifest["last_shard_index"] = index
        return shard_name(index)

    # -- queries ------------------------------------------------------------------------------------------------
    def entry(self, sequence: str) -> dict | None:
        return self.manifest["sequences"].get(sequence)

    def read_stored(self, sequence: str, fields) -> dict:
        """Arrays of the committed copy of ``sequence`` (to carry fields a partial re-run does not recompute)."""
        from aistpp.corpus.schema import field_name

        e = self.entry(sequence)
        if not e or e.get("status") != "ok" or not e.get("shard"):
            raise AistppError(f"sequence {sequence} has no stored result to keep", self.root)
        h5py = _h5py()
        out = {}
        with h5py.File(self.root / e["shard"], "r") as f:
            grp = f[sequence]
            for name in fields:
                name = field_name(name)
                ds = grp[name]
                out[name] = (np.asarray([v.decode() if isinstance(v, bytes) else str(v) for v in ds[()]], object)
                             if FIELDS[name][1] is str else ds[()])
        return out

    def is_done(self, sequence: str, config_hash_: str | None = None) -> bool:
        """True if ``sequence`` is stored with status ok (and, when given, with this config hash)."""
        e = self.entry(sequence)
        return bool(e and e.get("status") == "ok" and (config_hash_ is None or e.get("config_hash") == config_hash_))

    # -- writing ------------------------------------------------------------------------------------------------
    def add_sequence(self, sequence: str, arrays: dict, attrs: dict | None = None, config: dict | None = None,
                     stats: dict | None = None, tool_version: str = __version__, stages: dict | None = None,
                     stale: dict | None = None) -> None:
        """Buffer one finished sequence. ``arrays`` use the names of :data:`aistpp.corpus.schema.FIELDS` (or the
        flat aliases ``smpl_poses``...); ``attrs`` are the sequence attributes; ``config`` the dict of every stage
        config that produced it (hashed for resume); ``stats`` small summary numbers (shown by ``info``);
        ``stages`` the per-stage records {stage: {"hash", "config"}} resume compares by content; ``stale``
        {stage: reason} for kept fields whose input changed since they were computed."""
        check_sequence_name(sequence, self.root)
        arrays, frames, views = validate_arrays(arrays, where=f"{sequence}: ")
        attrs = dict(attrs or {})
        if attrs.get("setting"):  # exports name camera files after it
            check_token(attrs["setting"], "camera setting", self.root)
        attrs.setdefault("sequence", sequence)
        attrs["frames"] = int(frames)
        if views is not None:
            attrs["views"] = int(views)
        attrs.setdefault("fps", 60)
        config = plain(config or {})
        entry = {"status": "ok", "shard": None, "reason": None, "frames": int(frames), "views": views,
                 "fields": sorted(arrays), "attrs": plain(attrs), "config": config,
                 "config_hash": config_hash(config), "tool_version": tool_version, "finished_at": now_iso(),
                 "stats": plain(stats or {})}
        if stages:
            entry["stages"] = plain(stages)
        if stale:
            entry["stale"] = plain(stale)
        self._pending = [p for p in self._pending if not (p[0] == "seq" and p[1] == sequence)]
        self._pending.append(("seq", sequence, arrays, attrs, entry))
        self._pending_bytes += sum(int(a.nbytes) for a in arrays.values() if a.dtype != object)
        self._maybe_flush()

    def add_failure(self, sequence: str, reason: str, config: dict | None = None, attrs: dict | None = None,
                    tool_version: str = __version__) -> None:
        """Record that ``sequence`` failed (committed with the next manifest write; any stored data of an earlier
        successful run stays in its shard but is no longer indexed)."""
        check_sequence_name(sequence, self.root)
        config = plain(config or {})
        entry = {"status": "failed", "shard": None, "reason": " ".join(str(reason).split()), "frames": 0,
                 "views": None, "fields": [], "attrs": plain(attrs or {"sequence": sequence}), "config": config,
                 "config_hash": config_hash(config), "tool_version": tool_version, "finished_at": now_iso(),
                 "stats": {}}
        self._pending = [p for p in self._pending if not (p[0] == "seq" and p[1] == sequence)]
        self._pending.append(("fail", sequence, None, None, entry))
        self._maybe_flush()

    def add_music(self, music_id: str, features, config: dict | None = None, fps: float = 60.0) -> None:
        """Buffer the music features of ``music_id``: (N, 35) float32 at ``fps`` (stored as ``music/<id>``); ``config``
        (how they were computed) goes to the manifest entry and the group's attrs."""
        check_token(music_id, "music id", self.root)
        feats = np.asarray(features, np.float32)
        if feats.ndim != 2 or feats.shape[1] != MUSIC_DIM:
            raise AistppError(f"music {music_id}: features have shape {feats.shape}, expected (N, {MUSIC_DIM})")
        config = plain(config or {})
        entry = {"shard": None, "frames": int(feats.shape[0]), "fps": float(fps), "config": config,
                 "config_hash": config_hash(config), "tool_version": __version__, "finished_at": now_iso()}
        self._pending = [p for p in self._pending if not (p[0] == "music" and p[1] == music_id)]
        self._pending.append(("music", music_id, {"features": feats},
                              {"music_id": music_id, "fps": float(fps), "config": config}, entry))
        self._pending_bytes += int(feats.nbytes)
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        if (self._pending_bytes >= self.target_shard_bytes or len(self._pending) >= self.max_pending
                or time.monotonic() - self._last_flush >= self.flush_seconds):
            self.flush()

    def flush(self) -> str | None:
        """Commit everything buffered: a new shard (if there is data), then the manifest. Returns the shard name."""
        pending, self._pending, self._pending_bytes = self._pending, [], 0
        self._last_flush = time.monotonic()
        if not pending:
            return None
        name = None
        if any(kind != "fail" for kind, *_ in pending):
            name = self._next_shard()
            path = self.root / name
            h5py = _h5py()
            with atomic_path(path, suffix=".tmp") as tmp:
                with h5py.File(tmp, "w") as f:
                    f.attrs["schema_version"] = self.manifest["schema_version"]
                    f.attrs["tool_version"] = __version__
                    for kind, key, arrays, attrs, _ in pending:
                        if kind == "seq":
                            write_sequence_group(f, key, arrays, attrs, self.compression)
                        elif kind == "music":
                            grp = f.require_group("music").create_group(key)
                            grp.create_dataset("features", data=arrays["features"],
                                               chunks=(min(1024, max(1, len(arrays["features"]))), MUSIC_DIM),
                                               compression=self.compression, shuffle=True)
                            write_attrs(grp, attrs)
            self.manifest["shards"][name] = {
                "bytes": path.stat().st_size, "sha256": file_sha256(path),
                "sequences": sum(k == "seq" for k, *_ in pending), "music": sum(k == "music" for k, *_ in pending),
                "created": now_iso()}
        for kind, key, _, _, entry in pending:
            if kind == "music":
                entry["shard"] = name
                self.manifest["music"][key] = entry
            else:
                if kind == "seq":
                    entry["shard"] = name
                self.manifest["sequences"][key] = entry
        self._drop_unreferenced()
        write_manifest(self.root, self.manifest)
        self._collect_garbage()
        log.info("committed %d item(s)%s", len(pending), f" in {name}" if name else "")
        return name

    def _drop_unreferenced(self) -> None:
        """Retire shards no index entry points to any more: they leave ``shards`` for ``retired`` (with the time),
        and their files are deleted once ``retain_seconds`` have passed (:meth:`_collect_garbage`)."""
        used = {e.get("shard") for e in self.manifest["sequences"].values()}
        used |= {e.get("shard") for e in self.manifest["music"].values()}
        retired = self.manifest.setdefault("retired", {})
        for name in [n for n in self.manifest["shards"] if n not in used]:
            del self.manifest["shards"][name]
            retired[name] = {"retired_at": now_iso(), "retired_unix": time.time()}
        expired = [n for n, r in retired.items()
                   if time.time() - float(r.get("retired_unix", 0)) >= self.retain_seconds]
        for name in expired:
            del retired[name]
            self._garbage.append(name)

    def _collect_garbage(self) -> None:
        """Delete the files of expired retired shards (after the manifest that forgets them is committed)."""
        for name in self._garbage:
            if shard_index(name) is None:  # never: manifests are checked on load; belt and braces
                continue
            with contextlib.suppress(FileNotFoundError):
                (self.root / name).unlink()
        self._garbage.clear()

    def compact(self, min_fraction: float = 0.5) -> int:
        """Merge shards smaller than ``min_fraction`` of the target size into shards near the target, copying only
        the groups the index references (stale groups of re-run sequences are dropped). Returns the number of
        shards written. Atomic like every write: new shards first, then the manifest, then old files removed."""
        self.flush()
        self._collect_garbage()
        small = [n for n, s in sorted(self.manifest["shards"].items())
                 if s["bytes"] < min_fraction * self.target_shard_bytes]
        stale = [n for n in self.manifest["shards"] if n not in small and self._has_stale(n)]
        todo = small + stale
        if len(small) < 2 and not stale:
            return 0
        groups: list[list[str]] = [[]]
        size = 0
        for n in todo:
            b = self.manifest["shards"][n]["bytes"]
            if groups[-1] and size + b > self.target_shard_bytes:
                groups.append([])
                size = 0
            groups[-1].append(n)
            size += b
        h5py = _h5py()
        written = 0
        for group in groups:
            members = [(k, e) for k, e in self.manifest["sequences"].items() if e.get("shard") in group]
            music = [(k, e) for k, e in self.manifest["music"].items() if e.get("shard") in group]
            if len(group) == 1 and not self._has_stale(group[0]):
                continue
            name = self._next_shard()
            path = self.root / name
            with atomic_path(path, suffix=".tmp") as tmp:
                with h5py.File(tmp, "w") as dst:
                    dst.attrs["schema_version"] = self.manifest["schema_version"]
                    dst.attrs["tool_version"] = __version__
                    for src_name in group:
                        with h5py.File(self.root / src_name, "r") as src:
                            for k, e in members:
                                if e["shard"] == src_name:
                                    src.copy(src[k], dst, name=k)
                            for k, e in music:
                                if e["shard"] == src_name:
                                    src.copy(src["music"][k], dst.require_group("music"), name=k)
            self.manifest["shards"][name] = {"bytes": path.stat().st_size, "sha256": file_sha256(path),
                                             "sequences": len(members), "music": len(music), "created": now_iso()}
            for _, e in members + music:
                e["shard"] = name
            written += 1
        self._drop_unreferenced()
        write_manifest(self.root, self.manifest)
        self._collect_garbage()
        log.info("compacted into %d shard(s)", written)
        return written

    def _has_stale(self, shard: str) -> bool:
        s = self.manifest["shards"][shard]
        n_ref = sum(e.get("shard") == shard for e in self.manifest["sequences"].values())
        n_mus = sum(e.get("shard") == shard for e in self.manifest["music"].values())
        return n_ref < s.get("sequences", 0) or n_mus < s.get("music", 0)

    def close(self) -> None:
        """Commit what is buffered and release the lock."""
        if self._lock_fh is None:
            return
        try:
            self.flush()
            self._drop_unreferenced()  # retired shards whose time is up
            if self._garbage:
                write_manifest(self.root, self.manifest)
            self._collect_garbage()
        finally:
            self._lock_fh.close()
            self._lock_fh = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
