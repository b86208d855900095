"""One sequence through the stages, and the driver that runs many of them into a corpus.

    source (videos -> detect | keypoints2d pkl | keypoints3d pkl) -> triangulate -> smpl fit -> corpus

:func:`run_sequence` is the whole per-sequence job: a pure function of a picklable :class:`SequenceTask` that
returns a :class:`SequenceResult` (arrays, attributes, stats, per-stage seconds, or the failure reason). It never
raises: one bad sequence never stops the others. Executors (:mod:`aistpp.executors`: a local process pool, Ray)
only schedule it, so local and cluster runs produce the same corpus. :func:`reconstruct` is the driver: it selects
the sequences, skips those already in the corpus with the same config hash, schedules the rest, commits results
as they arrive (atomic shards), appends to ``reconstruct.log.jsonl`` in the corpus, and returns a
:class:`RunSummary`.
"""

from __future__ import annotations

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
    """Everything a worker needs for one sequence (picklable, paths as strings)."""

    sequence: str
    annotations: str
    config: PipelineConfig
    videos: str | None = None


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
    from aistpp.naming import parse_name

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
            log.info("%s: views %s blanked as in the official pipeline", seq, list(KNOWN_BAD_VIEWS[seq]))
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
    elif cfg.runs_triangulation:
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

    if cfg.runs_smpl:
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


# -- driver -------------------------------------------------------------------------------------------------------
def task_config(task: SequenceTask) -> dict:
    """The provenance dict stored (and hashed) for one sequence: the pipeline config plus the identity of its
    inputs (file names and sizes, camera setting)."""
    from aistpp.io.annotations import AnnotationTree

    tree = AnnotationTree(Path(task.annotations))
    cfg = task.config.to_dict()
    kinds = ["keypoints2d"] if task.config.source == "keypoints2d" else (
        ["keypoints3d", "keypoints2d"] if task.config.source == "keypoints3d" else [])
    inputs = {}
    for k in kinds:
        p = tree.path(k, task.sequence)
        inputs[k] = {"name": p.name, "bytes": p.stat().st_size} if p.exists() else None
    if task.config.source == "videos":
        inputs["videos"] = str(task.videos)
    cfg["inputs"] = inputs
    return cfg


def select_sequences(annotations: str | Path, sequences=None, genres=None, split: str | None = None,
                     source: str = "keypoints2d") -> list[str]:
    """The sequences to run, in mapping.txt order.

    ``sequences``: explicit names; ``split``: a split name (``crossmodal_train``, ``pose_test``... regenerated
    through :mod:`aistpp.splits`, or a file of that name in ``DIR/splits``) or the path of a file of names;
    otherwise every sequence that has a ``source`` file (keypoints2d/keypoints3d; all of mapping.txt for videos).
    ``genres`` (codes) filters the result.
    """
    from aistpp.io.annotations import AnnotationTree, read_name_list
    from aistpp.naming import parse_name

    tree = AnnotationTree.open(annotations)
    mapping = tree.mapping()
    if sequences:
        names = [parse_name(s).sequence for s in sequences]
    elif split:
        names = _split_names(tree, mapping, split, read_name_list)
    elif source == "videos":
        names = list(mapping)
    else:
        have = set(tree.sequences(source))
        names = [s for s in mapping if s in have] + sorted(have - set(mapping))
    if genres:
        names = [s for s in names if parse_name(s).genre in set(genres)]
    seen: set = set()
    return [s for s in names if not (s in seen or seen.add(s))]


def _split_names(tree, mapping, split: str, read_name_list) -> list[str]:
    p = Path(split)
    if p.is_file():
        return read_name_list(p)
    if tree.split_path(split).is_file():
        return read_name_list(tree.split_path(split))
    from aistpp.splits import KINDS, SUBSETS, SplitSpec, make_splits

    kind, _, subset = split.rpartition("_")
    if kind not in KINDS or subset not in SUBSETS or kind == "genre":
        raise AistppError(f"unknown split {split!r}: expected a file of names or one of "
                          f"{', '.join(f'{k}_{s}' for k in KINDS if k != 'genre' for s in SUBSETS)}")
    return make_splits(mapping, SplitSpec(kind=kind), ignore=tree.ignore_list())[subset]


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

    def lines(self) -> list[str]:
        def f(v, unit=""):
            return "-" if v is None else f"{v:.3g}{unit}"

        out = [f"reconstruct -> {self.corpus} ({self.executor}, {self.wall_seconds:.1f} s)",
               f"  sequences: {self.requested} requested, {len(self.done)} reconstructed, {len(self.skipped)} "
               f"already done (same config), {len(self.failed)} failed",
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

    Sequences already stored with status ok and the same config hash are skipped (``force`` redoes them); changed
    or failed ones are redone. Results are committed every ``commit_every`` sequences or ``commit_seconds``
    (atomically), so a killed run keeps its committed work. ``executor``: ``local`` (process pool of ``workers``;
    1 = in this process) or ``ray`` (``ray_address`` or a local Ray with ``workers`` CPUs). ``music``: a folder of
    ``<music_id>.wav`` files; their 35-d features are cached in the corpus after the reconstruction
    (:func:`aistpp.audio.add_music_to_corpus`, resumable too).
    """
    from aistpp.executors import get_executor

    t0 = time.perf_counter()
    annotations = str(Path(annotations).resolve())
    if sequences is None:
        sequences = select_sequences(annotations, source=config.source)
    summary = RunSummary(str(out), requested=len(sequences), executor=executor)
    if not sequences:
        raise AistppError("no sequences selected (check --sequences/--genre/--split and the annotation tree)")
    tasks = [SequenceTask(s, annotations, config, None if videos is None else str(Path(videos).resolve()))
             for s in sequences]
    configs = {t.sequence: task_config(t) for t in tasks}
    out = Path(out)
    stats_all: list[dict] = []
    with CorpusWriter(out, max_pending=commit_every, flush_seconds=commit_seconds) as writer:
        todo = []
        for t in tasks:
            if not force and writer.is_done(t.sequence, config_hash(configs[t.sequence])):
                summary.skipped.append(t.sequence)
            else:
                todo.append(t)
        log.info("%d sequence(s) to run, %d already done with the same config", len(todo), len(summary.skipped))
        logfile = open(out / LOG_NAME, "a", encoding="utf-8")
        try:
            run = get_executor(executor, workers=workers, ray_address=ray_address)
            bar = _progress(len(todo), progress)
            for res in run(todo):
                cfg = configs[res.sequence]
                if res.status == "ok":
                    try:
                        writer.add_sequence(res.sequence, res.arrays, res.attrs, cfg, stats=res.stats)
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


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="reconstruct", unit="seq", disable=not enabled, dynamic_ncols=True)
