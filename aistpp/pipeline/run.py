"""One sequence through the stages: :func:`run_sequence` loads (or detects) its 2D keypoints, triangulates them
and fits SMPL, as a pure function of a :class:`~aistpp.pipeline.tasks.SequenceTask`. It never raises: one bad
sequence never stops the others."""

from __future__ import annotations

import json
import logging
import os
import time
import traceback

import numpy as np

from aistpp.corpus import camera_arrays, sequence_attrs
from aistpp.errors import AistppError
from aistpp.pipeline.tasks import SequenceResult, SequenceTask, _config_dict

log = logging.getLogger("aistpp.pipeline")


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
        kp2d = _keypoints2d(task, tree, seq, setting, cameras, arrays, timings)
    k3_for_fit = None
    flags: dict = {}
    if kp2d is not None:
        flags = quality_flags(kp2d)
        present = kp2d.shape[0] - len(flags["views_missing"])
        if present < cfg.min_views_present and cfg.source != "keypoints3d":
            raise AistppError(f"only {present} view(s) have any detection (need {cfg.min_views_present})")

    if cfg.source == "keypoints3d":
        k3_for_fit = _keypoints3d_file(tree, seq, cfg.frames, arrays, timings)
    elif "triangulate" in task.stages:
        k3_for_fit, flags = _triangulate(kp2d, cameras, cfg, arrays, res.stats, timings)

    if "smpl" in task.stages:
        if k3_for_fit is None and task.stored:  # fit on the keypoints3d kept from an earlier, still current run
            k3_for_fit = _stored_keypoints3d(task.stored, seq)
        if k3_for_fit is None:
            raise AistppError("the smpl stage needs keypoints3d: add the triangulate stage or use --from keypoints3d")
        _fit(k3_for_fit, cfg, arrays, res.stats, timings)

    n = next((v.shape[1] if k in ("keypoints2d", "det_scores") else v.shape[0]) for k, v in arrays.items()
             if k in ("keypoints2d", "keypoints3d", "smpl/poses"))
    res.stats["frames"] = int(n)
    res.stats["views_missing"] = len(flags.get("views_missing", []))
    flags["ignore_list"] = seq in set(tree.ignore_list())  # datasets drop these by default, like the official split
    res.attrs = sequence_attrs(seq, setting, quality=flags)
    res.arrays = arrays


def _keypoints2d(task: SequenceTask, tree, seq: str, setting: str, cameras, arrays: dict, timings: dict):
    """Load (or detect) the 2D keypoints into ``arrays``, the known bad views blanked; returns keypoints2d."""
    from aistpp.naming import view_names
    from aistpp.triangulate import KNOWN_BAD_VIEWS

    data = _load_2d(task, tree, timings, cameras)
    data = _slice_frames(data, task.config.frames, {"keypoints2d": 1, "det_scores": 1, "box_source": 1,
                                                    "timestamps": 0})
    kp2d = data["keypoints2d"]
    if kp2d.shape[0] != len(cameras):
        raise AistppError(f"keypoints2d has {kp2d.shape[0]} views but setting {setting} has {len(cameras)}")
    if seq in KNOWN_BAD_VIEWS:  # views the official pipeline dropped (unsynchronized / wrong resolution)
        kp2d = kp2d.copy()
        kp2d[list(KNOWN_BAD_VIEWS[seq])] = np.nan
        data["keypoints2d"] = kp2d
        log.info("%s: camera(s) %s blanked as in the official pipeline (KNOWN_BAD_VIEWS)", seq,
                 view_names(KNOWN_BAD_VIEWS[seq]))
    arrays.update(data)
    return kp2d


def _keypoints3d_file(tree, seq: str, frames, arrays: dict, timings: dict):
    """``--from keypoints3d``: the official keypoints3d pkl into ``arrays``; returns the keypoints to fit."""
    t = time.perf_counter()
    path = tree.path("keypoints3d", seq)
    if not path.exists():
        raise AistppError("keypoints3d file missing", path)
    k3 = _slice_frames(tree.read("keypoints3d", seq), frames, {"keypoints3d": 0, "keypoints3d_optim": 0})
    arrays.update(k3)
    timings["load"] = timings.get("load", 0.0) + time.perf_counter() - t
    return k3.get("keypoints3d_optim", k3["keypoints3d"])


def _triangulate(kp2d, cameras, cfg, arrays: dict, stats: dict, timings: dict):
    """The triangulate stage into ``arrays`` and ``stats``; returns (keypoints to fit, quality flags)."""
    from aistpp.triangulate import reconstruct_keypoints3d

    t = time.perf_counter()
    tri = reconstruct_keypoints3d(kp2d, cameras, cfg.triangulation_config())
    timings["triangulate"] = time.perf_counter() - t
    arrays.update({"keypoints3d": tri.keypoints3d, "keypoints3d_optim": tri.keypoints3d_optim,
                   "views_used": tri.views_used, "reprojection_error": tri.reprojection_error})
    flags = quality_flags(kp2d, tri.keypoints3d)
    if not np.isfinite(tri.keypoints3d_optim).any():
        raise AistppError("no joint could be triangulated (fewer than 2 usable views everywhere)")
    rep = np.asarray(tri.reprojection_error, float)
    stats["reprojection_error_px"] = float(np.nanmedian(rep)) if np.isfinite(rep).any() else None
    stats["triangulated_fraction"] = flags["triangulated_fraction"]
    return tri.keypoints3d_optim, flags


def _fit(keypoints3d, cfg, arrays: dict, stats: dict, timings: dict) -> None:
    """The SMPL fit stage on ``keypoints3d`` (N, 17, 3) into ``arrays`` and ``stats``."""
    from aistpp.smpl import fit_sequence

    t = time.perf_counter()
    body = _body_model(cfg.smpl_model)
    timings["load_model"] = time.perf_counter() - t
    t = time.perf_counter()
    fit = fit_sequence(np.asarray(keypoints3d, np.float64), body, cfg.fit_config())
    timings["smpl"] = time.perf_counter() - t
    arrays.update({"smpl/poses": fit.smpl_poses, "smpl/trans": fit.smpl_trans, "smpl/scaling": fit.smpl_scaling,
                   "smpl/loss": float(fit.smpl_loss), "smpl/per_frame_error": fit.per_frame_error})
    stats["smpl_loss"] = float(fit.smpl_loss)
    err = np.asarray(fit.per_frame_error, float)
    stats["fit_error_cm"] = float(np.nanmedian(err)) if np.isfinite(err).any() else None


def _stored_keypoints3d(shard: str, seq: str):
    import h5py

    try:
        with h5py.File(shard, "r") as f:
            grp = f[seq]
            key = "keypoints3d_optim" if "keypoints3d_optim" in grp else "keypoints3d"
            return np.asarray(grp[key][()], np.float64) if key in grp else None
    except (OSError, KeyError) as err:
        raise AistppError(f"cannot read the stored keypoints3d of {seq} ({err})", shard) from None
