"""One sequence through the stages, and the driver that runs many of them into a corpus.

    source (videos -> detect | keypoints2d pkl | keypoints3d pkl) -> triangulate -> smpl fit -> corpus

:func:`run_sequence` is the whole per-sequence job: a pure function of a picklable :class:`SequenceTask` that
returns a :class:`SequenceResult` (arrays, attributes, stats, per-stage seconds, or the failure reason). It never
raises: one bad sequence never stops the others. Executors (:mod:`aistpp.executors`: a local process pool, Ray)
only schedule it, so local and cluster runs produce the same corpus. :func:`reconstruct` is the driver: it selects
the sequences, plans each one by content fingerprints (:func:`stage_configs`, :func:`plan_sequence`: a stage is
redone exactly when one of its inputs changed, and the run says why), schedules the rest, commits results as they
arrive (atomic shards), appends to ``reconstruct.log.jsonl`` in the corpus, and returns a :class:`RunSummary`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from aistpp import __version__
from aistpp.corpus import CorpusWriter, camera_arrays, config_hash, sequence_attrs
from aistpp.errors import AistppError

log = logging.getLogger(__name__)

SOURCES = ("videos", "keypoints2d", "keypoints3d")
STAGES = ("triangulate", "smpl")
LOG_NAME = "reconstruct.log.jsonl"


@dataclass(frozen=True)
class PipelineConfig:
    """What to run for every sequence.

    source: where the per-sequence input comes from: ``videos`` (detect 2D keypoints), ``keypoints2d`` (official
    pkl, the default: the official pipeline's input to triangulation) or ``keypoints3d`` (official pkl; only the
    SMPL fit runs). stages: subset of ``("triangulate", "smpl")``. smpl_model: SMPL file or directory (None = the
    generated stand-in). frames: optional ``(start, stop)`` to reconstruct only those frames (debugging, tests).
    triangulation / fit: stage configs (None = that stage's defaults, which follow the official pipeline);
    detector: an :class:`aistpp.detect.runner.DetectorSpec` (None = MediaPipe, the offline default). min_views_present: a sequence with fewer views holding any detection fails with that reason.
    """

    source: str = "keypoints2d"
    stages: tuple[str, ...] = STAGES
    smpl_model: str | None = None
    frames: tuple[int, int] | None = None
    triangulation: object = None
    fit: object = None
    detector: object = None
    min_views_present: int = 2

    def __post_init__(self):
        if self.source not in SOURCES:
            raise AistppError(f"unknown source {self.source!r}; expected one of {', '.join(SOURCES)}")
        stages = tuple(self.stages)
        bad = [s for s in stages if s not in STAGES]
        if bad:
            raise AistppError(f"unknown stage(s) {', '.join(bad)}; expected a subset of {','.join(STAGES)}")
        object.__setattr__(self, "stages", tuple(s for s in STAGES if s in stages))
        if self.frames is not None:
            a, b = (int(x) for x in self.frames)
            if a < 0 or b <= a:
                raise AistppError(f"frames must be START:STOP with 0 <= START < STOP, got {a}:{b}")
            object.__setattr__(self, "frames", (a, b))

    @property
    def runs_triangulation(self) -> bool:
        return "triangulate" in self.stages and self.source != "keypoints3d"

    @property
    def runs_smpl(self) -> bool:
        return "smpl" in self.stages

    def triangulation_config(self):
        if self.triangulation is not None:
            return self.triangulation
        from aistpp.triangulate import TriangulationConfig

        return TriangulationConfig()

    def fit_config(self):
        if self.fit is not None:
            return self.fit
        from aistpp.smpl import FitConfig

        return FitConfig()

    def detector_spec(self):
        if self.detector is not None:
            return self.detector
        from aistpp.detect.runner import DetectorSpec

        return DetectorSpec()

    def to_dict(self) -> dict:
        """Everything that determines the output (hashed into the corpus for resume): stage configs included."""
        d = {"source": self.source, "stages": list(self.stages), "frames": list(self.frames) if self.frames else None,
             "min_views_present": self.min_views_present}
        if self.source == "videos":
            from aistpp.detect.base import DetectConfig

            d["detector"] = _config_dict(self.detector_spec())
            d["detect"] = DetectConfig().to_dict()  # person localization settings (results depend on them)
        if self.runs_triangulation:
            d["triangulation"] = _config_dict(self.triangulation_config())
        if self.runs_smpl:
            d["fit"] = _config_dict(self.fit_config())
            d["smpl_model"] = _model_identity(self.smpl_model)
        return d


def _config_dict(cfg) -> dict:
    if hasattr(cfg, "to_dict"):
        return cfg.to_dict()
    return asdict(cfg)


def _model_identity(path: str | None) -> dict:
    """Identify the body model for the config hash: the stand-in, or a file by name and size."""
    if path is None:
        return {"model": "standin"}
    p = Path(path)
    files = sorted(p.rglob("*")) if p.is_dir() else [p]
    return {"model": p.name, "files": {str(f.relative_to(p) if p.is_dir() else f.name): f.stat().st_size
                                       for f in files if f.is_file()}}


@dataclass(frozen=True)
class SequenceTask:
    """Everything a worker needs for one sequence (picklable, paths as strings). ``run_stages``: the stages to run
    (None = the config's); ``stored``: the corpus shard holding this sequence's earlier result, read when the SMPL
    fit runs on keypoints3d kept from an earlier triangulation."""

    sequence: str
    annotations: str
    config: PipelineConfig
    videos: str | None = None
    run_stages: tuple | None = None
    stored: str | None = None

    @property
    def stages(self) -> tuple:
        return tuple(self.config.stages if self.run_stages is None else self.run_stages)


@dataclass
class SequenceResult:
    """What a worker returns. ``arrays`` use corpus field names; ``timings`` are seconds per stage."""

    sequence: str
    status: str = "ok"
    reason: str | None = None
    arrays: dict = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    pid: int = 0
    host: str = ""


def failed_result(task: SequenceTask, reason: str) -> SequenceResult:
    """The result of a task whose worker died or whose result could not be returned (for the executors)."""
    return SequenceResult(task.sequence, status="failed", reason=reason)


# Per-process caches (a worker runs many sequences): body models by path.
_BODY_MODELS: dict = {}


def _body_model(path: str | None):
    key = path or ""
    if key not in _BODY_MODELS:
        from aistpp.smpl import load_body_model

        _BODY_MODELS[key] = load_body_model(path)
    return _BODY_MODELS[key]


_DETECTORS: dict = {}


def _detector(spec):
    key = json.dumps(_config_dict(spec), sort_keys=True)
    if key not in _DETECTORS:
        _DETECTORS[key] = spec.build()
    return _DETECTORS[key]


def _load_2d(task: SequenceTask, tree, timings: dict, cameras=None) -> dict:
    cfg = task.config
    t = time.perf_counter()
    if cfg.source == "videos":
        if not task.videos:
            raise AistppError("--from videos needs --videos DIR")
        from aistpp.detect import detect_sequence

        spec = cfg.detector_spec()
        out = detect_sequence(task.videos, task.sequence, _detector(spec),
                              n_frames=cfg.frames[1] if cfg.frames else None, cameras=cameras)
        data = {k: np.asarray(out[k]) for k in ("keypoints2d", "det_scores", "box_source", "timestamps")
                if k in out}
        timings["detect"] = time.perf_counter() - t
    else:
        path = tree.path("keypoints2d", task.sequence)
        if not path.exists():
            raise AistppError("keypoints2d file missing", path)
        data = tree.read("keypoints2d", task.sequence)
        timings["load"] = time.perf_counter() - t
    return data


def _slice_frames(data: dict, frames, axis_of: dict) -> dict:
    if frames is None:
        return data
    a, b = frames
    n = next(v.shape[axis_of[k]] for k, v in data.items() if k in axis_of)
    if a >= n:
        raise AistppError(f"frames {a}:{b} start past the end of the sequence ({n} frames)")
    out = {}
    for k, v in data.items():
        if k in axis_of:
            idx = [slice(None)] * v.ndim
            idx[axis_of[k]] = slice(a, min(b, n))
            v = v[tuple(idx)]
        out[k] = v
    return out


def quality_flags(keypoints2d: np.ndarray, keypoints3d: np.ndarray | None = None) -> dict:
    """Per-sequence quality flags: views with no detection at all, fraction of missing 2D rows, fraction of
    frames with every joint triangulated."""
    has = np.isfinite(keypoints2d[..., :2]).all(-1).any(-1)  # (V, N) any joint detected
    flags = {"views_missing": [int(v) for v in np.flatnonzero(~has.any(1))],
             "missing_2d_fraction": float(1 - has.mean()) if has.size else 1.0}
    if keypoints3d is not None:
        ok = np.isfinite(keypoints3d).all(-1)
        flags["triangulated_fraction"] = float(ok.mean()) if ok.size else 0.0
        flags["frames_fully_triangulated"] = float(ok.all(-1).mean()) if ok.size else 0.0
    return flags


def run_sequence(task: SequenceTask) -> SequenceResult:
    """Run the configured stages for one sequence. Never raises: failures come back with their reason."""
    import socket

    res = SequenceResult(task.sequence, pid=os.getpid(), host=socket.gethostname())
    t_all = time.perf_counter()
    try:
        _run(task, res)
    except AistppError as err:
        res.status, res.reason = "failed", str(err)
    except Exception as err:  # noqa: BLE001 - a stage bug must not stop the other sequences
        log.debug("%s failed:\n%s", task.sequence, traceback.format_exc())
        res.status, res.reason = "failed", f"{type(err).__name__}: {' '.join(str(err).split())}"
    if res.status != "ok":
        res.arrays = {}
        log.warning("%s failed: %s", task.sequence, res.reason)
    res.timings["total"] = time.perf_counter() - t_all
    return res


def _run(task: SequenceTask, res: SequenceResult) -> None:
    from aistpp.io.annotations import AnnotationTree
    from aistpp.naming import parse_name, view_names

    cfg = task.config
    seq = parse_name(task.sequence).sequence
    tree = AnnotationTree.open(task.annotations)
    mapping = tree.mapping()
    setting = mapping.get(seq)
    if setting is None:
        raise AistppError(f"sequence {seq} is not in mapping.txt (no camera setting)", tree.mapping_path)
    cameras = tree.cameras(setting)
    arrays: dict = camera_arrays(cameras)
    timings = res.timings

    kp2d = None
    if cfg.source != "keypoints3d" or tree.path("keypoints2d", seq).exists():
        data = _load_2d(task, tree, timings, cameras)
        data = _slice_frames(data, cfg.frames, {"keypoints2d": 1, "det_scores": 1, "box_source": 1, "timestamps": 0})
        kp2d = data["keypoints2d"]
        if kp2d.shape[0] != len(cameras):
            raise AistppError(f"keypoints2d has {kp2d.shape[0]} views but setting {setting} has {len(cameras)}")
        from aistpp.triangulate import KNOWN_BAD_VIEWS

        if seq in KNOWN_BAD_VIEWS:  # views the official pipeline dropped (unsynchronized / wrong resolution)
            kp2d = kp2d.copy()
            kp2d[list(KNOWN_BAD_VIEWS[seq])] = np.nan
            data["keypoints2d"] = kp2d
            log.info("%s: camera(s) %s blanked as in the official pipeline (KNOWN_BAD_VIEWS)", seq,
                     view_names(KNOWN_BAD_VIEWS[seq]))
        arrays.update(data)
    k3_for_fit = None
    flags: dict = {}
    if kp2d is not None:
        flags = quality_flags(kp2d)
        present = kp2d.shape[0] - len(flags["views_missing"])
        if present < cfg.min_views_present and cfg.source != "keypoints3d":
            raise AistppError(f"only {present} view(s) have any detection (need {cfg.min_views_present})")

    if cfg.source == "keypoints3d":
        t = time.perf_counter()
        path = tree.path("keypoints3d", seq)
        if not path.exists():
            raise AistppError("keypoints3d file missing", path)
        k3 = _slice_frames(tree.read("keypoints3d", seq), cfg.frames, {"keypoints3d": 0, "keypoints3d_optim": 0})
        arrays.update(k3)
        k3_for_fit = k3.get("keypoints3d_optim", k3["keypoints3d"])
        timings["load"] = timings.get("load", 0.0) + time.perf_counter() - t
    elif "triangulate" in task.stages:
        from aistpp.triangulate import reconstruct_keypoints3d

        t = time.perf_counter()
        tri = reconstruct_keypoints3d(kp2d, cameras, cfg.triangulation_config())
        timings["triangulate"] = time.perf_counter() - t
        arrays.update({"keypoints3d": tri.keypoints3d, "keypoints3d_optim": tri.keypoints3d_optim,
                       "views_used": tri.views_used, "reprojection_error": tri.reprojection_error})
        flags = quality_flags(kp2d, tri.keypoints3d)
        if not np.isfinite(tri.keypoints3d_optim).any():
            raise AistppError("no joint could be triangulated (fewer than 2 usable views everywhere)")
        k3_for_fit = tri.keypoints3d_optim
        rep = np.asarray(tri.reprojection_error, float)
        res.stats["reprojection_error_px"] = float(np.nanmedian(rep)) if np.isfinite(rep).any() else None
        res.stats["triangulated_fraction"] = flags["triangulated_fraction"]

    if "smpl" in task.stages:
        if k3_for_fit is None and task.stored:  # fit on the keypoints3d kept from an earlier, still current run
            k3_for_fit = _stored_keypoints3d(task.stored, seq)
        if k3_for_fit is None:
            raise AistppError("the smpl stage needs keypoints3d: add the triangulate stage or use --from keypoints3d")
        from aistpp.smpl import fit_sequence

        t = time.perf_counter()
        body = _body_model(cfg.smpl_model)
        timings["load_model"] = time.perf_counter() - t
        t = time.perf_counter()
        fit = fit_sequence(np.asarray(k3_for_fit, np.float64), body, cfg.fit_config())
        timings["smpl"] = time.perf_counter() - t
        arrays.update({"smpl/poses": fit.smpl_poses, "smpl/trans": fit.smpl_trans, "smpl/scaling": fit.smpl_scaling,
                       "smpl/loss": float(fit.smpl_loss), "smpl/per_frame_error": fit.per_frame_error})
        res.stats["smpl_loss"] = float(fit.smpl_loss)
        err = np.asarray(fit.per_frame_error, float)
        res.stats["fit_error_cm"] = float(np.nanmedian(err)) if np.isfinite(err).any() else None

    n = next((v.shape[1] if k in ("keypoints2d", "det_scores") else v.shape[0]) for k, v in arrays.items()
             if k in ("keypoints2d", "keypoints3d", "smpl/poses"))
    res.stats["frames"] = int(n)
    res.stats["views_missing"] = len(flags.get("views_missing", []))
    flags["ignore_list"] = seq in set(tree.ignore_list())  # datasets drop these by default, like the official split
    res.attrs = sequence_attrs(seq, setting, quality=flags)
    res.arrays = arrays


def _stored_keypoints3d(shard: str, seq: str):
    import h5py

    try:
        with h5py.File(shard, "r") as f:
            grp = f[seq]
            key = "keypoints3d_optim" if "keypoints3d_optim" in grp else "keypoints3d"
            return np.asarray(grp[key][()], np.float64) if key in grp else None
    except (OSError, KeyError) as err:
        raise AistppError(f"cannot read the stored keypoints3d of {seq} ({err})", shard) from None


# -- fingerprints and plans -----------------------------------------------------------------------------------------
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


def select_sequences(annotations: str | Path, sequences=None, genres=None, split: str | None = None,
                     source: str = "keypoints2d") -> list[str]:
    """The sequences to run, in mapping.txt order.

    ``sequences``: explicit names; ``split``: a split name (``crossmodal_train``, ``pose_test``... regenerated
    through :mod:`aistpp.splits`, or a file of that name in ``DIR/splits``) or the path of a file of names;
    otherwise every sequence that has a ``source`` file (keypoints2d/keypoints3d; all of mapping.txt for videos).
    ``genres`` (codes) filters the result; asked for alone, a genre means all its sequences in mapping.txt, like a
    split: one whose file is missing fails with that reason in the summary.
    """
    from aistpp import splits
    from aistpp.io.annotations import AnnotationTree

    tree = AnnotationTree.open(annotations)
    mapping = tree.mapping()
    if sequences:
        return splits.select_sequences((), list(sequences), genres)
    if split or genres or source == "videos":
        universe = list(mapping)
    else:
        from aistpp.naming import check_sequence_name

        have = set()
        for s in tree.sequences(source):
            try:
                have.add(check_sequence_name(s))
            except AistppError:  # a stray file in the folder is not a sequence
                log.warning("%s/%s.pkl ignored: not an AIST++ sequence name", source, s)
        universe = [s for s in mapping if s in have] + sorted(have - set(mapping))
    return splits.select_sequences(universe, split or None, genres, ignore=tree.ignore_list(),
                                   split_dir=tree.root / "splits", missing="keep")


@dataclass
class RunSummary:
    """What a :func:`reconstruct` run did."""

    corpus: str
    requested: int = 0
    done: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    failed: dict = field(default_factory=dict)
    frames: int = 0
    reprojection_error_px: float | None = None
    smpl_loss: float | None = None
    fit_error_cm: float | None = None
    stage_seconds: dict = field(default_factory=dict)
    wall_seconds: float = 0.0
    executor: str = "local"
    music: dict = field(default_factory=dict)
    redone: dict = field(default_factory=dict)  # {seq: "triangulate, smpl (cameras changed)"}: why it ran again
    stale: dict = field(default_factory=dict)  # {seq: {stage: reason}}: kept fields whose input changed

    def lines(self) -> list[str]:
        def f(v, unit=""):
            return "-" if v is None else f"{v:.3g}{unit}"

        out = [f"reconstruct -> {self.corpus} ({self.executor}, {self.wall_seconds:.1f} s)",
               f"  sequences: {self.requested} requested, {len(self.done)} reconstructed, {len(self.skipped)} "
               f"already done (same inputs and config), {len(self.failed)} failed",
               f"  frames reconstructed: {self.frames}",
               f"  median reprojection error: {f(self.reprojection_error_px, ' px')}; median SMPL fit loss: "
               f"{f(self.smpl_loss)}; median fit error: {f(self.fit_error_cm, ' cm')}"]
        if self.stage_seconds:
            out.append("  time per stage (s, summed over sequences): "
                       + ", ".join(f"{k} {v:.1f}" for k, v in self.stage_seconds.items()))
        if self.music:
            if "error" in self.music:
                out.append(f"  music features: ERROR {self.music['error']}")
            else:
                out.append(f"  music features: {len(self.music['added'])} added, {len(self.music['cached'])} "
                           f"already cached, {len(self.music['missing'])} missing"
                           + (f" ({', '.join(sorted(self.music['missing']))})" if self.music["missing"] else ""))
        for i, (s, r) in enumerate(self.redone.items()):
            if i == 20:
                out.append(f"  ... and {len(self.redone) - 20} more redone (see {LOG_NAME})")
                break
            out.append(f"  redone {s}: {r}")
        for s, st in self.stale.items():
            out.append(f"  STALE {s}: " + "; ".join(f"{k} kept but {v}" for k, v in st.items()))
        for s, r in self.failed.items():
            out.append(f"  FAILED {s}: {r}")
        return out

    def to_dict(self) -> dict:
        return asdict(self)


def _median(vals):
    vals = [v for v in vals if v is not None and np.isfinite(v)]
    return float(np.median(vals)) if vals else None


def reconstruct(annotations: str | Path, out: str | Path, sequences=None, config: PipelineConfig = PipelineConfig(),
                videos: str | Path | None = None, executor: str = "local", workers: int = 1,
                ray_address: str | None = None, progress: bool = False, commit_every: int = 8,
                commit_seconds: float = 60.0, force: bool = False, music: str | Path | None = None) -> RunSummary:
    """Reconstruct ``sequences`` (default: :func:`select_sequences`) from ``annotations`` into the corpus ``out``.

    Resume by content: each sequence's stage records (:func:`stage_configs`: sha256 of its keypoints2d file or a
    fingerprint of its videos, camera file, mapping line, stage configs, body model, tool version) are compared
    with those stored; only the stages whose inputs changed run again, and the run says why (``summary.redone``,
    the log). Stages not requested are kept: their fields stay, and a kept stage whose input changed (SMPL fits
    after a new triangulation) is marked stale (``entry["stale"]``, ``summary.stale``) until it is redone.
    ``force`` redoes every requested stage; failed sequences are redone. Results are committed every
    ``commit_every`` sequences or ``commit_seconds`` (atomically), so a killed run keeps its committed work.
    ``executor``: ``local`` (process pool of ``workers``; 1 = in this process) or ``ray`` (``ray_address`` or a
    local Ray with ``workers`` CPUs). ``music``: a folder of ``<music_id>.wav`` files; their 35-d features are
    cached in the corpus after the reconstruction (:func:`aistpp.audio.add_music_to_corpus`, resumable too).
    """
    from aistpp.executors import get_executor

    t0 = time.perf_counter()
    annotations = str(Path(annotations).resolve())
    if sequences is None:
        sequences = select_sequences(annotations, source=config.source)
    summary = RunSummary(str(out), requested=len(sequences), executor=executor)
    if not sequences:
        raise AistppError("no sequences selected (check --sequences/--genre/--split and the annotation tree)")
    from dataclasses import replace

    from aistpp.io.annotations import AnnotationTree

    tasks = [SequenceTask(s, annotations, config, None if videos is None else str(Path(videos).resolve()))
             for s in sequences]
    tree = AnnotationTree(Path(annotations))
    mapping = tree.mapping() if tree.mapping_path.exists() else {}
    out = Path(out)
    fp = Fingerprints(out / VIDEO_CACHE if config.source == "videos" else None)
    stage_cfgs = {t.sequence: stage_configs(t, fp, mapping) for t in tasks}
    configs = {t.sequence: task_config(t, stage_cfgs[t.sequence]) for t in tasks}
    stats_all: list[dict] = []
    with CorpusWriter(out, max_pending=commit_every, flush_seconds=commit_seconds) as writer:
        fp.save()
        todo, plans = [], {}
        for t in tasks:
            entry = writer.entry(t.sequence)
            plan = plan_sequence(t, entry, stage_cfgs[t.sequence], force)
            plans[t.sequence] = plan
            if plan.refuse:
                summary.failed[t.sequence] = plan.refuse  # nothing stored is touched
                log.warning("%s not run: %s", t.sequence, plan.refuse)
            elif not plan.run:
                summary.skipped.append(t.sequence)
            else:
                stored = str(out / entry["shard"]) if entry and entry.get("status") == "ok" and entry.get("shard") \
                    else None
                todo.append(replace(t, run_stages=plan.run, stored=stored))
                if entry is not None:
                    summary.redone[t.sequence] = f"{', '.join(plan.run)} ({', '.join(plan.why)})"
                    log.info("%s: redo %s (%s)", t.sequence, ", ".join(plan.run), ", ".join(plan.why))
        log.info("%d sequence(s) to run, %d already done with the same inputs", len(todo), len(summary.skipped))
        logfile = open(out / LOG_NAME, "a", encoding="utf-8")
        try:
            run = get_executor(executor, run_sequence, failed_result, workers=workers, ray_address=ray_address)
            bar = _progress(len(todo), progress)
            for res in run(todo):
                cfg = configs[res.sequence]
                plan = plans[res.sequence]
                if res.status == "ok":
                    try:
                        stages, stale = _compose(writer, res, plan)
                        writer.add_sequence(res.sequence, res.arrays, res.attrs, cfg, stats=res.stats,
                                            stages=stages, stale=stale)
                        if stale:
                            summary.stale[res.sequence] = stale
                    except AistppError as err:
                        res.status, res.reason = "failed", f"corpus: {err}"
                if res.status != "ok":
                    writer.add_failure(res.sequence, res.reason or "unknown error", cfg)
                    summary.failed[res.sequence] = res.reason
                else:
                    summary.done.append(res.sequence)
                    summary.frames += int(res.stats.get("frames", 0))
                    stats_all.append(res.stats)
                for k, v in res.timings.items():
                    summary.stage_seconds[k] = summary.stage_seconds.get(k, 0.0) + float(v)
                logfile.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "sequence": res.sequence,
                                          "status": res.status, "reason": res.reason,
                                          "stages_run": list(plan.run), "why": plan.why,
                                          "config_hash": config_hash(cfg), "pid": res.pid, "host": res.host,
                                          "stats": res.stats, "timings": res.timings,
                                          "tool_version": __version__}) + "\n")
                logfile.flush()
                bar.update(1)
                bar.set_postfix(failed=len(summary.failed))
            bar.close()
        finally:
            logfile.close()
        if music is not None:
            from aistpp.audio import add_music_to_corpus

            writer.flush()
            try:
                res = add_music_to_corpus(out, music, writer=writer, progress=progress)
                summary.music = {"added": res["added"], "cached": res["cached"], "missing": sorted(res["missing"])}
            except AistppError as err:
                summary.music = {"error": str(err)}
                log.error("music features: %s", err)
        writer.compact()
    summary.reprojection_error_px = _median([s.get("reprojection_error_px") for s in stats_all])
    summary.smpl_loss = _median([s.get("smpl_loss") for s in stats_all])
    summary.fit_error_cm = _median([s.get("fit_error_cm") for s in stats_all])
    summary.wall_seconds = time.perf_counter() - t0
    return summary


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


def _progress(total: int, enabled: bool):
    from aistpp.progress import tqdm

    return tqdm(total=total, desc="reconstruct", unit="seq", disable=not enabled, dynamic_ncols=True)
