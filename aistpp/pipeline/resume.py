"""Resume by content: fingerprints of each sequence's inputs, the per-stage records stored in the corpus, and the
plan of which stages to redo (a stage is redone exactly when one of its inputs changed, and the run says why)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from aistpp import __version__
from aistpp.pipeline.tasks import STAGES, SequenceResult, SequenceTask, _config_dict

# Fields each stage owns in a sequence group (the 2D inputs and cameras are rewritten by every run).
STAGE_FIELDS = {"triangulate": ("keypoints3d", "keypoints3d_optim", "views_used", "reprojection_error"),
                "smpl": ("smpl/poses", "smpl/trans", "smpl/scaling", "smpl/loss", "smpl/per_frame_error")}
STAGE_STATS = {"triangulate": ("reprojection_error_px", "triangulated_fraction"), "smpl": ("smpl_loss", "fit_error_cm")}
VIDEO_FINGERPRINT_BYTES = 2**20

# What a changed key of a stage config means, in the words the run log uses.
CHANGE_WORDS = {"keypoints2d": "keypoints2d changed", "videos": "videos changed", "cameras": "cameras changed",
                "setting": "camera setting changed", "mapping": "mapping changed", "frames": "frames changed",
                "tool_version": "tool version changed", "source": "source changed", "detector": "detector changed",
                "min_views_present": "min_views_present changed", "triangulation": "triangulation config changed",
                "keypoints3d": "keypoints3d changed", "keypoints3d_file": "keypoints3d file changed",
                "fit": "fit config changed", "smpl_model": "SMPL model changed"}


def video_fingerprint(path: str | Path) -> dict:
    """The documented cheap fingerprint of a (large) video: its size and the sha256 of its first and last MiB
    (reading whole videos on every resume would cost more than detecting them)."""
    path = Path(path)
    size = path.stat().st_size
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        h.update(fh.read(VIDEO_FINGERPRINT_BYTES))
        if size > VIDEO_FINGERPRINT_BYTES:
            fh.seek(max(VIDEO_FINGERPRINT_BYTES, size - VIDEO_FINGERPRINT_BYTES))
            h.update(fh.read(VIDEO_FINGERPRINT_BYTES))
    return {"bytes": size, "head_tail_sha256": h.hexdigest()}


VIDEO_CACHE = ".video-fingerprints.json"


class Fingerprints:
    """sha256 of input files, cached by (path, size, mtime) for one run (a camera file or the SMPL model is shared
    by many sequences). Video fingerprints are also cached across runs in ``video_cache`` (a JSON file in the
    corpus): a video whose size and modification time are unchanged is not read again."""

    def __init__(self, video_cache: str | Path | None = None):
        self._cache: dict = {}
        self._listings: dict = {}
        self._video_cache_path = Path(video_cache) if video_cache else None
        self._videos: dict = {}
        if self._video_cache_path is not None:
            try:
                loaded = json.loads(self._video_cache_path.read_text())
                self._videos = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError):
                self._videos = {}

    def video(self, path: Path) -> dict:
        st = path.stat()
        key = str(path.resolve())
        known = self._videos.get(key)
        if isinstance(known, dict) and known.get("bytes") == st.st_size and known.get("mtime_ns") == st.st_mtime_ns \
                and isinstance(known.get("head_tail_sha256"), str):
            return {"bytes": st.st_size, "head_tail_sha256": known["head_tail_sha256"]}
        fp = video_fingerprint(path)
        self._videos[key] = {**fp, "mtime_ns": st.st_mtime_ns}
        return fp

    def videos_of(self, folder: Path, names) -> dict:
        """{video name: fingerprint or None} for the views of one sequence (the folder is listed once)."""
        if folder not in self._listings:
            listing: dict = {}
            if folder.is_dir():
                for p in sorted(folder.iterdir()):
                    listing.setdefault(p.stem, p)
            self._listings[folder] = listing
        found = self._listings[folder]
        return {n: (self.video(found[n]) if n in found else None) for n in names}

    def save(self) -> None:
        """Persist the video fingerprint cache (atomically)."""
        if self._video_cache_path is not None and self._videos:
            from aistpp.io.atomic import atomic_write_text

            atomic_write_text(self._video_cache_path, json.dumps(self._videos, sort_keys=True))

    def sha256(self, path: Path) -> str | None:
        from aistpp.corpus.manifest import file_sha256

        path = Path(path)
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        if key not in self._cache:
            self._cache[key] = file_sha256(path)
        return self._cache[key]

    def model(self, path: str | None) -> dict:
        """The body model by content: the stand-in (by tool version), or every file of a model file/folder."""
        if path is None:
            return {"model": "standin", "tool_version": __version__}
        p = Path(path)
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        return {"model": p.name, "sha256": {str(f.relative_to(p)) if p.is_dir() else f.name: self.sha256(f)
                                            for f in files}}


def stage_configs(task: SequenceTask, fp: Fingerprints | None = None, mapping: dict | None = None) -> dict:
    """Everything each stage's result depends on, by content: ``inputs`` (keypoints2d sha256 or the videos'
    fingerprints, camera file sha256, the mapping line, frames, tool version), ``triangulate`` (inputs + its config,
    or the keypoints3d file with ``--from keypoints3d``) and ``smpl`` (the hash of the triangulate record it fits +
    fit config + body model content + tool version). Stored per sequence and stage; a changed hash redoes that
    stage."""
    from aistpp.corpus.manifest import config_hash
    from aistpp.io.annotations import AnnotationTree
    from aistpp.naming import parse_name

    fp = fp or Fingerprints()
    cfg = task.config
    tree = AnnotationTree(Path(task.annotations))
    seq = task.sequence
    if mapping is None:
        mapping = tree.mapping() if tree.mapping_path.exists() else {}
    setting = mapping.get(seq)
    inputs = {"source": cfg.source, "frames": list(cfg.frames) if cfg.frames else None,
              "min_views_present": cfg.min_views_present, "tool_version": __version__, "setting": setting,
              "mapping": f"{seq} {setting}" if setting else None,
              "cameras": fp.sha256(tree.cameras_dir / f"{setting}.json") if setting else None}
    if cfg.source == "videos":
        inputs["detector"] = _config_dict(cfg.detector_spec())
        names = parse_name(seq).video_names()
        inputs["videos"] = fp.videos_of(Path(task.videos), names) if task.videos else dict.fromkeys(names)
    else:
        inputs["keypoints2d"] = fp.sha256(tree.path("keypoints2d", seq))
    out = {"inputs": inputs}
    if cfg.source == "keypoints3d":
        out["triangulate"] = {"inputs": inputs, "keypoints3d_file": fp.sha256(tree.path("keypoints3d", seq))}
    else:
        out["triangulate"] = {"inputs": inputs, "triangulation": _config_dict(cfg.triangulation_config())}
    out["smpl"] = {"keypoints3d": config_hash(out["triangulate"]), "fit": _config_dict(cfg.fit_config()),
                   "smpl_model": fp.model(cfg.smpl_model), "tool_version": __version__}
    return out


def why_changed(old: dict | None, new: dict) -> list[str]:
    """The reasons a stage config differs from the stored one, in words (``cameras changed``...)."""
    if not old:
        return ["not done yet"]
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if key == "inputs" and isinstance(a, dict) and isinstance(b, dict):
            out += [r for r in why_changed(a, b) if r not in out]
        else:
            word = CHANGE_WORDS.get(key, f"{key} changed")
            if word not in out:
                out.append(word)
    return out


@dataclass
class SequencePlan:
    """What to do with one sequence: ``run`` (stages to run; empty = already done), ``why`` (reasons),
    ``stages`` (the stage records to store for what runs), ``refuse`` (a reason not to run at all)."""

    run: tuple = ()
    why: list = field(default_factory=list)
    stages: dict = field(default_factory=dict)
    refuse: str | None = None


def plan_sequence(task: SequenceTask, entry: dict | None, configs: dict, force: bool = False) -> SequencePlan:
    """Decide which requested stages to run for a sequence whose stored manifest ``entry`` (or None) holds the
    stage records of its earlier runs: a stage runs when its record is missing or its config (by content)
    changed; the SMPL fit also runs after a new triangulation. Stages not requested are kept (see
    :func:`reconstruct`)."""
    from aistpp.corpus.manifest import config_hash

    cfg = task.config
    requested = set(cfg.stages)
    if cfg.source == "keypoints3d":
        requested.add("triangulate")  # loading the keypoints3d file is this source's "triangulation"
    tri_want, smpl_want = configs["triangulate"], dict(configs["smpl"])
    stored = (entry or {}).get("stages") or {} if (entry or {}).get("status") == "ok" else {}
    if force or not stored:
        why = ["forced"] if force else ["not done yet"] if entry is None else [
            f"failed before ({entry.get('reason')})"] if entry.get("status") != "ok" else [
            "no fingerprints stored (corpus from an older aistpp)"]
        plan = SequencePlan(tuple(s for s in STAGES if s in requested), why)
    else:
        run, why = [], []
        tri_old = stored.get("triangulate")
        if "triangulate" in requested:
            if tri_old is None or tri_old.get("hash") != config_hash(tri_want):
                run.append("triangulate")
                why += why_changed((tri_old or {}).get("config"), tri_want)
            chain = config_hash(tri_want)
        else:
            chain = tri_old.get("hash") if tri_old else None
            if tri_old is not None and (tri_old.get("config") or {}).get("inputs") != tri_want["inputs"]:
                if "smpl" in requested:
                    changed = ", ".join(why_changed((tri_old.get("config") or {}).get("inputs"), tri_want["inputs"]))
                    return SequencePlan(refuse=f"stored keypoints3d are stale ({changed}): run the triangulate "
                                               "stage too")
        if "smpl" in requested:
            smpl_want["keypoints3d"] = chain
            smpl_old = stored.get("smpl")
            if run or smpl_old is None or smpl_old.get("hash") != config_hash(smpl_want):
                implied = {"keypoints3d changed"} if run else set()  # a new triangulation: said already
                why += [r for r in why_changed((smpl_old or {}).get("config"), smpl_want)
                        if r not in why and r not in implied]
                run.append("smpl")
        plan = SequencePlan(tuple(run), why)
    if "smpl" in plan.run and "triangulate" not in plan.run and stored.get("triangulate"):
        smpl_want["keypoints3d"] = stored["triangulate"].get("hash")
    elif "smpl" in plan.run:
        smpl_want["keypoints3d"] = config_hash(tri_want)
    records = {"triangulate": tri_want, "smpl": smpl_want}
    plan.stages = {s: {"hash": config_hash(records[s]), "config": records[s]} for s in plan.run}
    return plan


def task_config(task: SequenceTask, configs: dict | None = None) -> dict:
    """The provenance dict stored (and hashed) for one sequence: the pipeline config plus its inputs by content
    (``inputs`` of :func:`stage_configs`: file sha256, cameras, mapping line, tool version)."""
    cfg = task.config.to_dict()
    cfg["inputs"] = (configs or stage_configs(task))["inputs"]
    return cfg



def _compose(writer, res: SequenceResult, plan: SequencePlan) -> tuple[dict, dict]:
    """Keep what this run did not redo: the stored fields, stats and stage records of stages outside ``plan.run``
    are carried into ``res``; a kept stage whose input changed is marked stale. Returns (stage records, stale)."""
    entry = writer.entry(res.sequence)
    old = entry if entry and entry.get("status") == "ok" else None
    stages = dict(plan.stages)
    stale: dict = {}
    if old is None:
        return stages, stale
    old_stages = old.get("stages") or {}
    old_stale = old.get("stale") or {}
    keep = [s for s in STAGES if s not in plan.run and s in old_stages]
    fields = [f for s in keep for f in STAGE_FIELDS[s] if f in old.get("fields", []) and f not in res.arrays]
    if fields:
        res.arrays.update(writer.read_stored(res.sequence, fields))
    for s in keep:
        stages[s] = old_stages[s]
        for k in STAGE_STATS[s]:
            if k in (old.get("stats") or {}) and k not in res.stats:
                res.stats[k] = old["stats"][k]
        if s in old_stale:
            stale[s] = old_stale[s]
    if "smpl" in keep and "triangulate" in stages:
        fitted_on = (old_stages["smpl"].get("config") or {}).get("keypoints3d")
        if fitted_on != stages["triangulate"]["hash"]:
            stale["smpl"] = "its keypoints3d changed (triangulate redone); run the smpl stage to refit"
    quality = dict((old.get("attrs") or {}).get("quality") or {})
    quality.update(res.attrs.get("quality") or {})
    res.attrs["quality"] = quality
    return stages, stale
