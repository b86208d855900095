"""The corpus manifest: ``manifest.json``, the one file that says what the corpus holds.

It is written last and atomically (temporary file, fsync, rename), so readers only ever see shards that were
completely written. Layout::

    {"schema_version": 1, "tool": "aistpp", "tool_version": "...", "created": ISO, "updated": ISO,
     "target_shard_bytes": int,
     "shards": {"shard-00000.h5": {"bytes": int, "sha256": hex, "sequences": int, "music": int, "created": ISO}},
     "sequences": {seq: {"status": "ok" | "failed", "shard": name | null, "reason": str | null,
                         "frames": int, "views": int | null, "fields": [...], "attrs": {...},
                         "config": {...}, "config_hash": hex, "tool_version": "...", "finished_at": ISO,
                         "stats": {...}}},
     "music": {music_id: {"shard": name, "frames": int, "fps": 60, "config": {...}, "config_hash": hex}},
     "retired": {shard name: {"retired_at": ISO, "retired_unix": float}}, "last_shard_index": int}

A sequence entry made by ``aistpp reconstruct`` also holds ``stages`` ({stage: {"hash", "config"}}, compared by
content on resume) and, when a kept stage's input changed, ``stale`` ({stage: reason}). Retired shards are no
longer indexed but stay on disk for a while for readers of an older manifest (see :mod:`aistpp.corpus.writer`).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
from pathlib import Path

import numpy as np

from aistpp import __version__
from aistpp.corpus.schema import SCHEMA_VERSION
from aistpp.errors import AistppError
from aistpp.io.atomic import atomic_path

MANIFEST = "manifest.json"
SHARD_PREFIX = "shard-"
SHARD_SUFFIX = ".h5"


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def _plain(obj, inf=None):
    """JSON-safe copy of a config/attribute value (numpy scalars/arrays, tuples, paths): NaN -> None, +inf ->
    ``inf`` (None: what the manifest stores), -inf -> None."""
    if isinstance(obj, dict):
        return {str(k): _plain(v, inf) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v, inf) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist(), inf)
    if isinstance(obj, np.generic):
        return _plain(obj.item(), inf)
    if isinstance(obj, float) and not np.isfinite(obj):
        return inf if obj == np.inf else None
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def plain(obj, inf=None):
    """Public alias: a JSON-safe copy of ``obj`` (what the manifest stores); ``inf`` stands for +inf."""
    return _plain(obj, inf)


def config_hash(config: dict) -> str:
    """A short stable hash (16 hex) of a config dict: sha256 of its canonical JSON (sorted keys)."""
    text = json.dumps(_plain(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def file_sha256(path: str | Path, block: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            buf = fh.read(block)
            if not buf:
                break
            h.update(buf)
    return h.hexdigest()


def shard_name(index: int) -> str:
    return f"{SHARD_PREFIX}{index:05d}{SHARD_SUFFIX}"


_SHARD_RE = re.compile(r"shard-([0-9]{5,9})\.h5")


def shard_index(name: str) -> int | None:
    """The index of a shard file name (``shard-00012.h5`` -> 12); None for any other name."""
    m = _SHARD_RE.fullmatch(name) if isinstance(name, str) else None
    return int(m.group(1)) if m else None


def new_manifest(target_shard_bytes: int) -> dict:
    t = now_iso()
    return {"schema_version": SCHEMA_VERSION, "tool": "aistpp", "tool_version": __version__, "created": t,
            "updated": t, "target_shard_bytes": int(target_shard_bytes), "shards": {}, "sequences": {}, "music": {}}


def is_corpus(path: str | Path) -> bool:
    """True if ``path`` is a directory holding a ``manifest.json``."""
    p = Path(path)
    return p.is_dir() and (p / MANIFEST).is_file()


def manifest_problems(data: dict) -> list[str]:
    """What makes a parsed manifest unsafe or inconsistent, one line each: shard names that are not plain
    ``shard-NNNNN.h5`` files of the corpus folder (a manifest must never point a reader, writer or compaction at
    another file), sequence names that fail :func:`aistpp.naming.check_sequence_name`, music ids that are not plain
    tokens, and entries that point at shards the manifest does not list."""
    from aistpp.naming import check_sequence_name, check_token

    out: list[str] = []
    shards = data.get("shards")
    if not isinstance(shards, dict) or not isinstance(data.get("sequences"), dict) \
            or not isinstance(data.get("music", {}), dict):
        return ["shards, sequences and music must be JSON objects"]
    for name, info in shards.items():
        if shard_index(name) is None:
            out.append(f"shard {name[:80]!r} is not a shard file name of this corpus (shard-NNNNN.h5)")
        elif not isinstance(info, dict):
            out.append(f"shard {name}: entry is not an object")
    retired = data.get("retired", {})
    if not isinstance(retired, dict):
        out.append("retired must be a JSON object")
    else:
        for name in retired:
            if shard_index(name) is None:
                out.append(f"retired shard {name[:80]!r} is not a shard file name of this corpus (shard-NNNNN.h5)")
            elif name in shards:
                out.append(f"shard {name} is both listed and retired")
    for seq, e in data["sequences"].items():
        try:
            check_sequence_name(seq)
        except AistppError as err:
            out.append(f"sequence index: {err}")
            continue
        if not isinstance(e, dict):
            out.append(f"{seq}: entry is not an object")
        elif e.get("status") == "ok" and e.get("shard") not in shards:
            out.append(f"{seq}: indexed in shard {str(e.get('shard'))[:80]!r}, which the manifest does not list")
    for mid, e in data.get("music", {}).items():
        try:
            check_token(mid, "music id")
        except AistppError as err:
            out.append(f"music index: {err}")
            continue
        if not isinstance(e, dict) or e.get("shard") not in shards:
            out.append(f"music {mid}: indexed in a shard the manifest does not list")
    return out


def load_manifest_json(root: str | Path) -> dict:
    """Parse ``root/manifest.json`` and check its top-level layout and schema version (no safety checks: see
    :func:`read_manifest`)."""
    path = Path(root) / MANIFEST
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise AistppError("not a corpus: no manifest.json", Path(root)) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise AistppError(f"manifest is not valid JSON ({err})", path) from None
    if not isinstance(data, dict) or not all(k in data for k in ("schema_version", "shards", "sequences")):
        raise AistppError("manifest lacks schema_version/shards/sequences", path)
    if data["schema_version"] > SCHEMA_VERSION:
        raise AistppError(f"corpus schema version {data['schema_version']} is newer than this aistpp "
                          f"({SCHEMA_VERSION}); upgrade aistpp", path)
    data.setdefault("music", {})
    return data


def read_manifest(root: str | Path) -> dict:
    """Load and check ``root/manifest.json``; raise :class:`AistppError` naming the file on any problem, including
    every :func:`manifest_problems` (a hostile or corrupted manifest is refused before anything uses it)."""
    data = load_manifest_json(root)
    problems = manifest_problems(data)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s); run aistpp verify)" if len(problems) > 1 else ""
        raise AistppError(f"unsafe or inconsistent manifest: {problems[0]}{more}", Path(root) / MANIFEST)
    return data


def write_manifest(root: str | Path, manifest: dict) -> None:
    """Write the manifest atomically (the commit point of every corpus change)."""
    manifest["updated"] = now_iso()
    text = json.dumps(_plain(manifest), indent=1, sort_keys=False) + "\n"
    with atomic_path(Path(root) / MANIFEST) as tmp:
        tmp.write_text(text)
