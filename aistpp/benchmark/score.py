"""Scoring a set of sequences and breaking the scores down per view, genre, situation, dancer, sequence and joint.

:func:`run_benchmark` reads predictions and references sequence by sequence (:mod:`aistpp.benchmark.sources`),
compares them (:mod:`aistpp.benchmark.keypoints2d`, :mod:`aistpp.benchmark.keypoints3d`) and returns a
:class:`BenchmarkResult`: ``report`` (a JSON-ready dict, see ``docs/benchmark.md``) and ``series`` (per-frame
curves for the plots). Metrics: 2D in px and fractions, 3D distances in mm (inputs are cm).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from aistpp import __version__
from aistpp.benchmark.keypoints2d import (CocoKeypointEval, coco_sigmas, keypoint_errors_2d, pck,
                                         quantile_with_misses)
from aistpp.benchmark.keypoints3d import keypoint_errors_3d, mean_covered
from aistpp.benchmark.protocol import PROTOCOL_VERSION, QUANTILES, BenchmarkConfig
from aistpp.errors import AistppError
from aistpp.naming import SITUATIONS, VIEWS, parse_name
from aistpp.skeleton import BONES, COCO17, NUM_JOINTS

log = logging.getLogger(__name__)

GROUPS_2D = ("view", "genre", "situation", "dancer", "sequence")
GROUPS_3D = ("genre", "situation", "dancer", "sequence")


@dataclass
class BenchmarkResult:
    """report: JSON-ready dict; series: {sequence: {name: (N,) or (V, N) per-frame curve}} for the plots."""

    report: dict
    series: dict = field(default_factory=dict)


def _labels(seq: str) -> dict:
    n = parse_name(seq)
    return {"sequence": n.sequence, "genre": n.genre, "situation": SITUATIONS[n.situation], "dancer": n.dancer}


def _fmt_threshold(t) -> str:
    return f"{float(t):g}"


# -- 2D ------------------------------------------------------------------------------------------------------------

def summarize_2d(error, box, detected, config: BenchmarkConfig) -> dict:
    """Scores of M counted view-frames: error (M, 17) px (NaN not counted, +inf miss) or (M,) for one joint,
    box (M,) box size px, detected (M,) bool."""
    e = np.asarray(error, np.float64)
    b = np.asarray(box, np.float64)
    bb = b[:, None] if e.ndim == 2 else b
    counted = ~np.isnan(e)
    out = {"frames": int(len(e)), "keypoints": int(counted.sum()),
           "detection_rate": float(np.mean(detected)) if len(e) else float("nan"),
           "miss_rate": float(np.isinf(e).sum() / counted.sum()) if counted.any() else float("nan")}
    out["pck_px"] = {_fmt_threshold(t): pck(e, t) for t in config.pck_px}
    out["pck_box"] = {_fmt_threshold(f): pck(e, f * bb) for f in config.pck_box}
    out["median_px"] = quantile_with_misses(e, QUANTILES[0])
    out["p90_px"] = quantile_with_misses(e, QUANTILES[1])
    return out


def _score_2d(predictions, references, sequences, config, views, progress):
    view_idx = None
    rows = {k: [] for k in ("err", "box", "det", "ref", "valid", "pred", "score", "seq", "view")}
    series = {}
    from aistpp.progress import tqdm

    for s_i, seq in enumerate(tqdm(sequences, desc="benchmark 2D", unit="seq", disable=not progress)):
        ref = references.load(seq)
        n_views, n = ref.shape[:2]
        names = VIEWS[:n_views] if n_views <= len(VIEWS) else tuple(f"v{i}" for i in range(n_views))
        if views:
            missing = [v for v in views if v not in names]
            if missing:
                raise AistppError(f"reference of {seq} has no view {missing[0]} (views: {', '.join(names)})",
                                  references.path)
            view_idx = [names.index(v) for v in views]
        else:
            view_idx = list(range(n_views))
        if seq in predictions:
            p = predictions.load(seq, n)
            kp, det = p["keypoints2d"], p["det_scores"]
            if kp.shape[0] != n_views:
                raise AistppError(f"prediction of {seq} has {kp.shape[0]} views, the reference {n_views}",
                                  predictions.path)
            if kp.shape[1] != n:
                log.warning("%s: prediction has %d frames, reference %d (%s)", seq, kp.shape[1], n,
                            "missing frames are misses" if kp.shape[1] < n else "extra frames ignored")
        else:
            kp, det = np.full(ref.shape, np.nan, np.float32), np.zeros(ref.shape[:2], np.float32)
        kp, det, ref = kp[view_idx], det[view_idx], ref[view_idx]
        e = keypoint_errors_2d(kp, ref, config.conf_threshold)
        pred = np.full(ref.shape[:-1] + (2,), np.nan)
        m = min(n, kp.shape[1])
        pred[:, :m] = kp[:, :m, :, :2]
        dets = np.zeros(ref.shape[:2])
        dets[:, :m] = det[:, :m]
        conf = kp[:, :m, :, 2] if kp.shape[-1] == 3 else np.ones(kp.shape[:2] + (NUM_JOINTS,))[:, :m]
        score = np.zeros(ref.shape[:2])
        have = np.isfinite(kp[:, :m, :, 0]) & np.isfinite(conf)
        mean_conf = np.where(have, conf, 0.0).sum(-1) / np.maximum(have.sum(-1), 1)
        score[:, :m] = np.where(dets[:, :m] > 0, dets[:, :m], mean_conf)  # ranks predictions for AP
        v_i, f_i = np.nonzero(e.counted)
        rows["err"].append(e.error_px[v_i, f_i])
        rows["box"].append(e.box_size_px[v_i, f_i])
        rows["det"].append(e.detected[v_i, f_i])
        if config.ap:  # what the COCO evaluation needs (the largest rows: kept only when AP is asked for)
            rows["ref"].append(ref[v_i, f_i].astype(np.float64))
            rows["valid"].append(e.valid[v_i, f_i])
            rows["pred"].append(pred[v_i, f_i])
            rows["score"].append(score[v_i, f_i])
        rows["seq"].append(np.full(len(v_i), s_i))
        rows["view"].append(np.asarray(view_idx)[v_i])
        with np.errstate(invalid="ignore"), np.testing.suppress_warnings() as sup:
            sup.filter(RuntimeWarning)
            fin = np.where(np.isfinite(e.error_px), e.error_px, np.nan)
            series[seq] = {"median_px": np.nanmedian(fin.reshape(-1, n, NUM_JOINTS).transpose(1, 0, 2)
                                                     .reshape(n, -1), axis=1),
                           "detected": e.detected.mean(0)}
    cat = {k: np.concatenate(v) if v else np.zeros(0) for k, v in rows.items()}
    if len(cat["err"]) == 0:
        raise AistppError("no reference keypoint with confidence >= "
                          f"{config.conf_threshold} in the selected sequences and views")
    coco = None
    if config.ap:
        log.info("COCO OKS evaluation of %d view-frames (pycocotools)", len(cat["err"]))
        coco = CocoKeypointEval(cat["ref"], cat["valid"], cat["pred"], cat["det"], cat["score"])

    def block(mask):
        d = summarize_2d(cat["err"][mask], cat["box"][mask], cat["det"][mask], config)
        if coco is not None:
            d.update(coco.ap(np.flatnonzero(mask)))
            oks = coco.oks()[mask]
            d["mean_oks"] = float(np.nan_to_num(oks, nan=0.0).mean()) if len(oks) else float("nan")
        return d

    everything = np.ones(len(cat["err"]), bool)
    labels = [_labels(s) for s in sequences]
    seq_label = {g: np.array([lab[g] for lab in labels]) for g in ("sequence", "genre", "situation", "dancer")}
    report = {"overall": block(everything)}
    view_names = np.array(VIEWS + tuple(f"v{i}" for i in range(len(VIEWS), 64)))
    for g in GROUPS_2D:
        lab = view_names[cat["view"]] if g == "view" else seq_label[g][cat["seq"]]
        report[f"by_{g}"] = {str(k): block(lab == k) for k in sorted(set(lab.tolist()))}
    report["by_joint"] = {name: summarize_2d(cat["err"][:, j], cat["box"], cat["det"], config)
                          for j, name in enumerate(COCO17)}
    for j, name in enumerate(COCO17):
        del report["by_joint"][name]["detection_rate"]
        report["by_joint"][name]["frames"] = int((~np.isnan(cat["err"][:, j])).sum())
    return report, series


# -- 3D ------------------------------------------------------------------------------------------------------------

def summarize_3d(error, pa_error, accel, bone_cv, ref_bone_cv, config: BenchmarkConfig) -> dict:
    """Scores of frames: error, pa_error (M, 17) or (M,) cm (NaN not counted, +inf miss), accel (M, 17) cm/frame^2
    (NaN = not computable), bone_cv / ref_bone_cv (S, B) per sequence. Distances reported in mm."""
    e = np.asarray(error, np.float64)
    mpjpe, coverage = mean_covered(e)
    pa, _ = mean_covered(pa_error)
    acc = np.asarray(accel, np.float64)
    out = {"frames": int((~np.isnan(e)).reshape(len(e), -1).any(-1).sum()), "joints": int((~np.isnan(e)).sum()),
           "coverage": coverage, "mpjpe_mm": 10 * mpjpe, "pa_mpjpe_mm": 10 * pa,
           "median_error_mm": 10 * quantile_with_misses(e, QUANTILES[0]),
           "pck3d": {_fmt_threshold(t): pck(e, t) for t in config.pck3d_cm},
           "accel_error_mm_per_frame2": 10 * float(np.nanmean(acc)) if np.isfinite(acc).any() else float("nan")}
    if bone_cv is not None:
        with np.errstate(invalid="ignore"), np.testing.suppress_warnings() as sup:
            sup.filter(RuntimeWarning)
            out["bone_length_cv"] = float(np.nanmean(bone_cv)) if np.size(bone_cv) else float("nan")
            out["reference_bone_length_cv"] = float(np.nanmean(ref_bone_cv)) if np.size(ref_bone_cv) else \
                float("nan")
    return out


def _score_3d(predictions, references, sequences, config, progress):
    from aistpp.progress import tqdm

    rows = {k: [] for k in ("err", "pa", "acc", "seq")}
    bone_cv, ref_cv, series = [], [], {}
    for s_i, seq in enumerate(tqdm(sequences, desc="benchmark 3D", unit="seq", disable=not progress)):
        ref = references.load(seq)
        if seq in predictions:
            pred = predictions.load(seq, len(ref))
            if len(pred) != len(ref):
                log.warning("%s: prediction has %d frames, reference %d (%s)", seq, len(pred), len(ref),
                            "missing frames are misses" if len(pred) < len(ref) else "extra frames ignored")
        else:
            pred = np.full(ref.shape, np.nan)
        e = keypoint_errors_3d(pred, ref)
        keep = ~np.isnan(e.error_cm).all(-1)
        rows["err"].append(e.error_cm[keep])
        rows["pa"].append(e.pa_error_cm[keep])
        rows["acc"].append(e.accel_error_cm[keep])
        rows["seq"].append(np.full(int(keep.sum()), s_i))
        bone_cv.append(e.bone_cv)
        ref_cv.append(e.reference_bone_cv)
        with np.errstate(invalid="ignore"), np.testing.suppress_warnings() as sup:
            sup.filter(RuntimeWarning)
            fin = np.where(np.isfinite(e.error_cm), e.error_cm, np.nan)
            series[seq] = {"mpjpe_mm": 10 * np.nanmean(fin, -1),
                           "pa_mpjpe_mm": 10 * np.nanmean(np.where(np.isfinite(e.pa_error_cm), e.pa_error_cm,
                                                                   np.nan), -1)}
    cat = {k: np.concatenate(v) for k, v in rows.items()}
    if len(cat["err"]) == 0:
        raise AistppError("no finite reference joint in the selected sequences")
    bone_cv, ref_cv = np.stack(bone_cv), np.stack(ref_cv)

    def block(mask, seqs):
        return summarize_3d(cat["err"][mask], cat["pa"][mask], cat["acc"][mask], bone_cv[seqs], ref_cv[seqs],
                            config)

    labels = [_labels(s) for s in sequences]
    report = {"overall": block(np.ones(len(cat["err"]), bool), np.arange(len(sequences)))}
    for g in GROUPS_3D:
        lab = np.array([x[g] for x in labels])
        report[f"by_{g}"] = {str(k): block(lab[cat["seq"]] == k, np.flatnonzero(lab == k))
                             for k in sorted(set(lab.tolist()))}
    report["by_joint"] = {}
    for j, name in enumerate(COCO17):
        d = summarize_3d(cat["err"][:, j], cat["pa"][:, j], cat["acc"][:, j], None, None, config)
        d.pop("frames")
        report["by_joint"][name] = d
    with np.errstate(invalid="ignore"), np.testing.suppress_warnings() as sup:
        sup.filter(RuntimeWarning)
        report["by_bone"] = {f"{COCO17[a]}-{COCO17[b]}": {"bone_length_cv": float(np.nanmean(bone_cv[:, i])),
                                                          "reference_bone_length_cv": float(np.nanmean(ref_cv[:, i]))}
                             for i, (a, b) in enumerate(BONES)}
    return report, series


# -- driver --------------------------------------------------------------------------------------------------------

def run_benchmark(predictions, references, sequences, config: BenchmarkConfig = BenchmarkConfig(), views=None,
                  notes: dict | None = None, progress: bool = False) -> BenchmarkResult:
    """Score ``predictions`` against ``references`` (:mod:`aistpp.benchmark.sources`) on ``sequences``.

    ``views`` (2D only): view names to score (default all). The report records the protocol version, the config,
    the inputs, the sequences and ``notes`` (from :func:`aistpp.benchmark.sources.select_sequences`)."""
    if predictions.task != references.task:
        raise AistppError(f"predictions are {predictions.task}, the reference {references.task}")
    task = predictions.task
    if views and task == "3d":
        raise AistppError("--views applies to 2D benchmarks only")
    if task == "2d":
        body, series = _score_2d(predictions, references, sequences, config, views, progress)
    else:
        body, series = _score_3d(predictions, references, sequences, config, progress)
    protocol = {"version": PROTOCOL_VERSION, "standard_thresholds": config.is_standard, "config": config.to_dict(),
                "joints": list(COCO17)}
    if task == "2d":
        protocol["reference_conf_threshold"] = config.conf_threshold
        if config.ap:
            protocol["coco_sigmas"] = coco_sigmas().tolist()
    else:
        protocol["bones"] = [[COCO17[a], COCO17[b]] for a, b in BONES]
    report = {"protocol": protocol, "task": task, "tool_version": __version__,
              "predictions": predictions.describe(), "reference": references.describe(),
              "views": list(views) if views else (list(VIEWS) if task == "2d" else None),
              "sequences": list(sequences), **(notes or {"missing_predictions": [], "no_reference": []}), **body}
    return BenchmarkResult(report=report, series=series)
