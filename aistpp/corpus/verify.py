"""Integrity checks and summaries of a corpus: checksums, sizes, index, shapes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aistpp.corpus.manifest import (MANIFEST, file_sha256, load_manifest_json, manifest_problems, read_manifest,
                                    shard_index)
from aistpp.corpus.schema import FIELDS, validate_arrays
from aistpp.errors import AistppError


@dataclass
class VerifyReport:
    """What :func:`verify_corpus` found.

    ``intact`` is True when the files agree with the manifest (no errors; warnings are leftovers a writer removes).
    ``failed_sequences`` holds the requested sequences that failed to reconstruct (or are not in the corpus at all)
    with their reasons; ``ok`` is True when the corpus is intact and none of them failed (or ``allow_failed``).
    """

    root: str
    shards: int = 0
    sequences: int = 0
    failed: int = 0
    music: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    failed_sequences: dict = field(default_factory=dict)
    allow_failed: bool = False

    @property
    def intact(self) -> bool:
        return not self.errors

    @property
    def ok(self) -> bool:
        return self.intact and (self.allow_failed or not self.failed_sequences)

    def lines(self) -> list[str]:
        head = (f"corpus {self.root}: {self.shards} shards, {self.sequences} sequences ({self.failed} failed), "
                f"{self.music} music tracks")
        out = [head] + [f"  ERROR {e}" for e in self.errors] + [f"  warning {w}" for w in self.warnings]
        out += [f"  FAILED {s}: {r}" for s, r in self.failed_sequences.items()]
        if self.ok:
            out.append("  OK: checksums, sizes and shapes verified"
                       + (f" ({len(self.failed_sequences)} failed sequence(s) allowed)" if self.failed_sequences
                          else ""))
        else:
            out.append(f"  FAILED: {len(self.errors)} error(s), {len(self.failed_sequences)} failed sequence(s)")
        return out


def verify_corpus(root: str | Path, checksums: bool = True, shapes: bool = True, sequences=None,
                  allow_failed: bool = False) -> VerifyReport:
    """Check a corpus: every shard listed exists with the recorded size and sha256; every indexed sequence is in
    its shard with datasets of the schema's shapes agreeing with the manifest (frames, views, fields); music
    tracks are (N, 35). Unreferenced files are warnings (a writer removes them).

    ``sequences``: the sequences that were asked for (default: every sequence in the manifest); those that failed
    or are absent are listed in ``failed_sequences`` and make ``ok`` False unless ``allow_failed``."""
    import h5py

    root = Path(root)
    manifest = load_manifest_json(root)
    problems = manifest_problems(manifest)
    if problems:  # a hostile or corrupted index: reported, and no file it names is opened
        return VerifyReport(str(root), errors=[f"{MANIFEST}: {p}" for p in problems], allow_failed=allow_failed)
    rep = VerifyReport(str(root), shards=len(manifest["shards"]), music=len(manifest.get("music", {})),
                       allow_failed=allow_failed)
    wanted = sorted(manifest["sequences"]) if sequences is None else list(dict.fromkeys(sequences))
    for seq in wanted:
        e = manifest["sequences"].get(seq)
        if e is None:
            rep.failed_sequences[seq] = "not in the corpus"
        elif e.get("status") != "ok":
            rep.failed_sequences[seq] = e.get("reason") or "failed"
    bad_shards = set()
    for name, info in sorted(manifest["shards"].items()):
        path = root / name
        if not path.is_file():
            rep.errors.append(f"{name}: listed in {MANIFEST} but missing")
            bad_shards.add(name)
            continue
        size = path.stat().st_size
        if size != info.get("bytes"):
            rep.errors.append(f"{name}: size {size} bytes, manifest says {info.get('bytes')}")
            bad_shards.add(name)
        if checksums and file_sha256(path) != info.get("sha256"):
            rep.errors.append(f"{name}: sha256 mismatch (file changed or corrupted)")
            bad_shards.add(name)
    retired = set(manifest.get("retired", {}))  # kept a while for readers of an older manifest: not leftovers
    for p in sorted(root.iterdir()):
        if (shard_index(p.name) is not None and p.name not in manifest["shards"] and p.name not in retired) \
                or p.name.startswith(".shard-"):
            rep.warnings.append(f"{p.name}: not referenced by the manifest (leftover of an interrupted run)")

    handles: dict = {}

    def open_shard(name):
        if name not in handles:
            handles[name] = h5py.File(root / name, "r")
        return handles[name]

    try:
        for seq, e in sorted(manifest["sequences"].items()):
            if e.get("status") != "ok":
                rep.failed += 1
                continue
            rep.sequences += 1
            for stage, why in sorted((e.get("stale") or {}).items()):
                rep.warnings.append(f"{seq}: stored {stage} is stale ({why})")
            shard = e.get("shard")
            if shard not in manifest["shards"]:
                rep.errors.append(f"{seq}: indexed in shard {shard!r}, which the manifest does not list")
                continue
            if not shapes or shard in bad_shards:
                continue
            try:
                f = open_shard(shard)
                if seq not in f:
                    rep.errors.append(f"{seq}: missing from {shard}")
                    continue
                _check_group(f[seq], seq, e, rep)
            except (OSError, KeyError, ValueError, RuntimeError) as err:
                rep.errors.append(f"{seq}: unreadable in {shard} ({' '.join(str(err).split())})")
        for mid, e in sorted(manifest.get("music", {}).items()):
            shard = e.get("shard")
            if shard not in manifest["shards"]:
                rep.errors.append(f"music {mid}: indexed in shard {shard!r}, which the manifest does not list")
                continue
            if not shapes or shard in bad_shards:
                continue
            try:
                ds = open_shard(shard)["music"][mid]["features"]
                if ds.ndim != 2 or ds.shape[1] != 35 or ds.shape[0] != e.get("frames"):
                    rep.errors.append(f"music {mid}: features shape {ds.shape}, expected ({e.get('frames')}, 35)")
            except (OSError, KeyError, ValueError, RuntimeError) as err:
                rep.errors.append(f"music {mid}: unreadable in {shard} ({' '.join(str(err).split())})")
    finally:
        for fh in handles.values():
            fh.close()
    return rep


def _check_group(grp, seq: str, entry: dict, rep: VerifyReport) -> None:
    names = []
    grp.visit(lambda n: names.append(n) if n in FIELDS else None)
    unknown = []
    grp.visititems(lambda n, o: unknown.append(n) if hasattr(o, "shape") and n not in FIELDS else None)
    if unknown:
        rep.errors.append(f"{seq}: unknown datasets {unknown}")
    if sorted(names) != sorted(entry.get("fields", [])):
        rep.errors.append(f"{seq}: datasets {sorted(names)} differ from manifest fields {entry.get('fields')}")
    # Shapes only: build zero-size stand-ins with the stored shapes so validation reads no data.
    fake = {n: np.broadcast_to(np.zeros((), dtype=object if FIELDS[n][1] is str else FIELDS[n][1]),
                               grp[n].shape) for n in names}
    try:
        _, frames, views = validate_arrays(fake, where=f"{seq}: ")
    except AistppError as err:
        rep.errors.append(str(err))
        return
    if frames != entry.get("frames"):
        rep.errors.append(f"{seq}: {frames} frames stored, manifest says {entry.get('frames')}")
    if views is not None and entry.get("views") is not None and views != entry.get("views"):
        rep.errors.append(f"{seq}: {views} views stored, manifest says {entry.get('views')}")


def summarize_corpus(root: str | Path) -> dict:
    """Counts per genre and status, frames, bytes, and the median of per-sequence stats (from the manifest only)."""
    root = Path(root)
    m = read_manifest(root)
    seqs = m["sequences"]
    ok = {s: e for s, e in seqs.items() if e.get("status") == "ok"}
    genres: dict[str, int] = {}
    for e in ok.values():
        g = e.get("attrs", {}).get("genre", "?")
        genres[g] = genres.get(g, 0) + 1
    fields: dict[str, int] = {}
    for e in ok.values():
        for f in e.get("fields", []):
            fields[f] = fields.get(f, 0) + 1
    stat_keys = sorted({k for e in ok.values() for k, v in e.get("stats", {}).items()
                        if isinstance(v, (int, float))})
    stats = {}
    for k in stat_keys:
        vals = [e["stats"][k] for e in ok.values() if isinstance(e.get("stats", {}).get(k), (int, float))]
        stats[k] = float(np.median(vals)) if vals else None
    return {
        "root": str(root), "schema_version": m["schema_version"], "tool_version": m.get("tool_version"),
        "shards": len(m["shards"]), "bytes": int(sum(s["bytes"] for s in m["shards"].values())),
        "sequences": len(ok), "failed": {s: e.get("reason") for s, e in sorted(seqs.items())
                                         if e.get("status") != "ok"},
        "frames": int(sum(e.get("frames", 0) for e in ok.values())), "genres": dict(sorted(genres.items())),
        "fields": fields, "configs": len({e.get("config_hash") for e in ok.values()}),
        "median_stats": stats, "music": len(m.get("music", {})), "updated": m.get("updated"),
    }


def format_corpus_summary(s: dict) -> list[str]:
    lines = [f"corpus {s['root']} (schema {s['schema_version']}, aistpp {s['tool_version']}, updated {s['updated']})",
             f"  {s['sequences']} sequences, {s['frames']} frames ({s['frames'] / 60 / 60:.1f} min at 60 fps), "
             f"{len(s['failed'])} failed; {s['shards']} shards, {s['bytes'] / 2**20:.1f} MiB; "
             f"{s['music']} music tracks; {s['configs']} distinct config(s)",
             "  per genre: " + (", ".join(f"{g} {n}" for g, n in s["genres"].items()) or "-"),
             "  fields: " + (", ".join(f"{f} {n}" for f, n in sorted(s["fields"].items())) or "-")]
    if s["median_stats"]:
        lines.append("  medians: " + ", ".join(f"{k} {v:.3g}" for k, v in s["median_stats"].items() if v is not None))
    for seq, reason in s["failed"].items():
        lines.append(f"  failed {seq}: {reason}")
    return lines
