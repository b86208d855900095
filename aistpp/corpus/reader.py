"""Reading a corpus: :class:`Corpus` opens shards lazily, one handle per process (safe across ``fork`` and in
``DataLoader`` workers: a handle opened in a parent is never used by a child).

Each shard is checked when this process first opens it: its size always, and its sha256 against the manifest
when ``checksums`` says so (default ``"auto"``: shards up to :data:`CHECKSUM_AUTO_BYTES`, which costs little
next to reading them; ``True``: every shard; ``False``: size only). A reader keeps the manifest it loaded (a
snapshot): shards a writer retires stay on disk for a while (:mod:`aistpp.corpus.writer`), and if one is gone the
reader re-reads the manifest once and follows the sequence to its new shard.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from aistpp.corpus.manifest import file_sha256, read_manifest
from aistpp.corpus.schema import FIELDS, field_name
from aistpp.corpus.writer import read_attrs
from aistpp.errors import AistppError

DEFAULT_FIELDS = ("keypoints3d", "keypoints3d_optim", "smpl/poses", "smpl/trans", "smpl/scaling")
CHECKSUM_AUTO_BYTES = 64 * 2**20  # checksums="auto": sha256 of shards up to this size on first open


class _ShardGone(AistppError):
    """A shard of this reader's manifest is no longer on disk."""


class Corpus:
    """A read-only view of the corpus at ``root``.

    ``sequences()`` names the sequences stored with status ok; ``attrs(seq)`` their attributes;
    ``read(seq, fields, frames)`` arrays (frames slice applied along the frame axis, reading only those chunks);
    ``music(music_id)`` (N, 35) features; ``failures()`` the failed sequences and their reasons.
    """

    def __init__(self, root: str | Path, checksums: bool | str = "auto"):
        if checksums not in (True, False, "auto"):
            raise AistppError(f"checksums must be True, False or 'auto', got {checksums!r}")
        self.root = Path(root)
        self.checksums = checksums
        self.manifest = read_manifest(self.root)
        self._pid = os.getpid()
        self._handles: dict = {}

    # -- pickling / fork safety ---------------------------------------------------------------------------------
    def __getstate__(self):
        state = self.__dict__.copy()
        state["_handles"] = {}
        return state

    def _file(self, shard: str):
        if os.getpid() != self._pid:  # forked: never touch the parent's handles
            self._handles = {}
            self._pid = os.getpid()
        fh = self._handles.get(shard)
        if fh is None:
            import h5py

            path = self.root / shard
            if not path.is_file():
                raise _ShardGone("shard listed in manifest.json is missing", path)
            self._check_shard(shard, path)
            try:
                fh = h5py.File(path, "r")
            except OSError as err:
                raise AistppError(f"cannot open shard ({err})", path) from None
            self._handles[shard] = fh
        return fh

    def _check_shard(self, shard: str, path: Path) -> None:
        info = self.manifest["shards"].get(shard) or self.manifest.get("retired", {}).get(shard) or {}
        size = path.stat().st_size
        if "bytes" in info and size != info["bytes"]:
            raise AistppError(f"shard has {size} bytes, the manifest says {info['bytes']} (changed or truncated; "
                              "run aistpp verify)", path)
        full = self.checksums is True or (self.checksums == "auto" and size <= CHECKSUM_AUTO_BYTES)
        if full and info.get("sha256") and file_sha256(path) != info["sha256"]:
            raise AistppError("shard sha256 differs from the manifest (file changed or corrupted; run aistpp "
                              "verify)", path)

    def _open(self, key_kind: str, key: str):
        """(entry, open shard) of a sequence or music id; a shard gone since this manifest was loaded (retired
        and expired) makes the reader re-read the manifest once and follow the item to its current shard."""
        for attempt in (0, 1):
            e = self._ok_entry(key) if key_kind == "seq" else self.manifest.get("music", {}).get(key)
            if e is None:
                raise AistppError(f"music {key} is not in the corpus (add it with aistpp add-music)", self.root)
            try:
                return e, self._file(e["shard"])
            except _ShardGone:
                if attempt:
                    raise
                self.refresh()

    def close(self) -> None:
        if os.getpid() == self._pid:
            for fh in self._handles.values():
                try:
                    fh.close()
                except Exception:  # noqa: BLE001 - closing a dead handle
                    pass
        self._handles = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def refresh(self) -> None:
        """Re-read the manifest (after another process wrote to the corpus)."""
        self.close()
        self.manifest = read_manifest(self.root)

    # -- index --------------------------------------------------------------------------------------------------
    def sequences(self, genre: str | None = None, status: str = "ok") -> list[str]:
        """Sorted names of the sequences with ``status`` (default ok), optionally of one genre code."""
        out = [s for s, e in self.manifest["sequences"].items() if e.get("status") == status]
        if genre:
            out = [s for s in out if self.manifest["sequences"][s].get("attrs", {}).get("genre") == genre]
        return sorted(out)

    def __len__(self) -> int:
        return len(self.sequences())

    def __contains__(self, sequence: str) -> bool:
        e = self.manifest["sequences"].get(sequence)
        return bool(e and e.get("status") == "ok")

    def entry(self, sequence: str) -> dict:
        """The manifest entry: status, shard, frames, fields, config, config_hash, tool_version, stats."""
        e = self.manifest["sequences"].get(sequence)
        if e is None:
            raise AistppError(f"sequence {sequence} is not in the corpus", self.root)
        return e

    def stale(self, sequence: str) -> dict[str, str]:
        """{stage: reason} for stored stages whose input changed since they were computed (kept by a run of other
        stages; see docs/corpus.md, "Resume by content"). Empty when everything stored is current."""
        return dict(self._ok_entry(sequence).get("stale") or {})

    def failures(self) -> dict[str, str]:
        return {s: e.get("reason") or "" for s, e in sorted(self.manifest["sequences"].items())
                if e.get("status") == "failed"}

    def attrs(self, sequence: str) -> dict:
        """Sequence attributes (genre, situation, dancer, music, tempo, choreography, setting, fps, frames, ...)."""
        return dict(self._ok_entry(sequence).get("attrs", {}))

    def fields(self, sequence: str) -> list[str]:
        return list(self._ok_entry(sequence).get("fields", []))

    def frames(self, sequence: str) -> int:
        return int(self._ok_entry(sequence)["frames"])

    def _ok_entry(self, sequence: str) -> dict:
        e = self.entry(sequence)
        if e.get("status") != "ok":
            raise AistppError(f"sequence {sequence} failed to reconstruct: {e.get('reason')}", self.root)
        return e

    def group(self, sequence: str):
        """The open h5py group of ``sequence`` (read-only; valid in this process only)."""
        e, f = self._open("seq", sequence)
        if sequence not in f:
            raise AistppError(f"sequence {sequence} is indexed but missing from its shard", self.root / e["shard"])
        return f[sequence]

    # -- data ---------------------------------------------------------------------------------------------------
    def read(self, sequence: str, fields=DEFAULT_FIELDS, frames: slice | None = None) -> dict:
        """Arrays of ``sequence``: {field: ndarray} for the requested ``fields`` that are stored (names as given;
        flat aliases like ``smpl_poses`` accepted). ``frames`` (a slice) selects frames along each field's frame
        axis; per-sequence fields (scaling, cameras) are returned whole. A requested field that is not stored
        raises :class:`AistppError`."""
        grp = self.group(sequence)
        out = {}
        for f in fields:
            name = field_name(f)
            if name not in grp:
                raise AistppError(f"sequence {sequence} has no {name} (stored: {', '.join(self.fields(sequence))})",
                                  self.root)
            ds = grp[name]
            axis = FIELDS[name][2]
            if FIELDS[name][1] is str:
                out[f] = np.asarray([v.decode() if isinstance(v, bytes) else str(v) for v in ds[()]])
            elif frames is None or axis is None:
                out[f] = ds[()]
            else:
                index = [slice(None)] * ds.ndim
                index[axis] = frames
                out[f] = ds[tuple(index)]
        return out

    def read_all(self, sequence: str, frames: slice | None = None) -> dict:
        """Every stored field of ``sequence``."""
        return self.read(sequence, self.fields(sequence), frames)

    def group_attrs(self, sequence: str) -> dict:
        """The HDF5 attributes as stored in the shard (same content as :meth:`attrs`)."""
        return read_attrs(self.group(sequence))

    def cameras(self, sequence: str):
        """The :class:`aistpp.io.cameras.CameraGroup` stored with ``sequence``."""
        from aistpp.io.cameras import Camera, CameraGroup

        d = self.read(sequence, ("cameras/names", "cameras/size", "cameras/K", "cameras/dist", "cameras/rvec",
                                 "cameras/tvec"))
        cams = tuple(Camera(str(n), (int(s[0]), int(s[1])), K, dist, r, t) for n, s, K, dist, r, t in
                     zip(d["cameras/names"], d["cameras/size"], d["cameras/K"], d["cameras/dist"],
                         d["cameras/rvec"], d["cameras/tvec"]))
        return CameraGroup(cams, str(self.attrs(sequence).get("setting", "")))

    # -- music --------------------------------------------------------------------------------------------------
    def music_ids(self) -> list[str]:
        return sorted(self.manifest.get("music", {}))

    def music(self, music_id: str, frames: slice | None = None) -> np.ndarray:
        """(N, 35) float32 music features at 60 fps of ``music_id``."""
        _, f = self._open("music", music_id)
        ds = f["music"][music_id]["features"]
        return ds[()] if frames is None else ds[frames]
