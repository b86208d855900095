"""2D keypoint scores against reference keypoints: per-keypoint errors, PCK, quantiles and COCO OKS AP.

Pure functions over arrays. Shapes: V views, N frames, 17 COCO joints; M counted (view, frame) pairs.
Counting rules: :mod:`aistpp.benchmark.protocol`. OKS and AP come from pycocotools' ``COCOeval`` (the reference
implementation, with its standard per-keypoint sigmas), not from a re-derivation.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import numpy as np

from aistpp.benchmark.protocol import REFERENCE_CONF_THRESHOLD
from aistpp.errors import AistppError
from aistpp.skeleton import NUM_JOINTS


@dataclass(frozen=True)
class Errors2D:
    """Per-keypoint comparison of a prediction with the reference.

    error_px: (V, N, 17) float64 pixel distance; NaN where the reference keypoint does not count, +inf where it
    counts and the prediction misses it (NaN keypoint, no person, missing view or frame).
    valid: (V, N, 17) bool, reference keypoint counts; counted: (V, N) bool, at least one counts;
    detected: (V, N) bool, the prediction has a person (any finite keypoint);
    box_size_px: (V, N) max(width, height) of the box around the counted reference keypoints (NaN if none).
    """

    error_px: np.ndarray
    valid: np.ndarray
    counted: np.ndarray
    detected: np.ndarray
    box_size_px: np.ndarray


def _xy(keypoints, name) -> np.ndarray:
    kp = np.asarray(keypoints, np.float64)
    if kp.ndim < 2 or kp.shape[-2] != NUM_JOINTS or kp.shape[-1] not in (2, 3):
        raise AistppError(f"{name} must be (..., 17, 2|3) COCO-17 keypoints, got shape {kp.shape}")
    return kp


def reference_valid(reference, conf_threshold: float = REFERENCE_CONF_THRESHOLD) -> np.ndarray:
    """(..., 17) bool: reference keypoints (..., 17, 3) that are finite with confidence >= ``conf_threshold``."""
    ref = _xy(reference, "reference")
    if ref.shape[-1] != 3:
        raise AistppError("reference keypoints need a confidence channel (..., 17, 3)")
    with np.errstate(invalid="ignore"):
        return np.isfinite(ref).all(-1) & (ref[..., 2] >= conf_threshold)


def box_size(reference, valid) -> tuple[np.ndarray, np.ndarray]:
    """Width and height (...,) px of the box around the ``valid`` (..., 17) points of ``reference`` (..., 17, 2|3);
    NaN where no point is valid."""
    xy = _xy(reference, "reference")[..., :2]
    lo = np.where(valid[..., None], xy, np.inf).min(-2)
    hi = np.where(valid[..., None], xy, -np.inf).max(-2)
    wh = hi - lo
    wh[~valid.any(-1)] = np.nan
    return wh[..., 0], wh[..., 1]


def keypoint_errors_2d(prediction, reference, conf_threshold: float = REFERENCE_CONF_THRESHOLD) -> Errors2D:
    """Compare prediction (V, N', 17, 2|3) with reference (V, N, 17, 3) frame by frame (index = 60 fps grid frame).

    Frames of the prediction past N are ignored; frames missing from it (N' < N) are misses."""
    ref = _xy(reference, "reference")
    pred = _xy(prediction, "prediction")[..., :2]
    if pred.ndim != ref.ndim or pred.shape[0] != ref.shape[0]:
        raise AistppError(f"prediction {pred.shape} and reference {ref.shape} differ in views")
    n = ref.shape[1] if ref.ndim == 4 else None
    if n is not None and pred.shape[1] != n:
        full = np.full(ref.shape[:-1] + (2,), np.nan)
        m = min(n, pred.shape[1])
        full[:, :m] = pred[:, :m]
        pred = full
    valid = reference_valid(ref, conf_threshold)
    dist = np.linalg.norm(pred - ref[..., :2], axis=-1)
    err = np.where(valid, np.where(np.isfinite(dist), dist, np.inf), np.nan)
    w, h = box_size(ref, valid)
    return Errors2D(error_px=err, valid=valid, counted=valid.any(-1),
                    detected=np.isfinite(pred).all(-1).any(-1), box_size_px=np.fmax(w, h))


def pck(error, threshold) -> float:
    """Fraction of counted keypoints (finite or +inf entries of ``error``; NaN = not counted) with error <=
    ``threshold`` (a scalar, or an array broadcast against ``error``, e.g. a fraction of the box size). NaN if
    none counts."""
    e = np.asarray(error, np.float64)
    counted = ~np.isnan(e)
    n = counted.sum()
    if n == 0:
        return float("nan")
    with np.errstate(invalid="ignore"):
        return float(((e <= threshold) & counted).sum() / n)


def quantile_with_misses(error, q: float) -> float:
    """Quantile ``q`` of the counted errors (NaN = not counted, +inf = a miss), linear interpolation between
    order statistics; +inf when it falls among the misses, NaN when nothing counts."""
    e = np.sort(np.asarray(error, np.float64).ravel())
    e = e[~np.isnan(e)]
    if len(e) == 0:
        return float("nan")
    pos = q * (len(e) - 1)
    lo, hi = int(np.floor(pos)), int(np.ceil(pos))
    if np.isinf(e[hi]) and (hi != lo or np.isinf(e[lo])):
        return float("inf")
    return float(e[lo] + (e[hi] - e[lo]) * (pos - lo)) if hi != lo else float(e[lo])


# -- COCO OKS AP (pycocotools) -----------------------------------------------------------------------------------

def _cocoeval():
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise AistppError("COCO OKS AP needs pycocotools: pip install 'aistpp[benchmark]' (or skip AP: --no-ap)") \
            from None
    return COCO, COCOeval


def coco_sigmas() -> np.ndarray:
    """The standard COCO per-keypoint OKS sigmas (17,), as pycocotools defines them."""
    _, COCOeval = _cocoeval()
    return np.asarray(COCOeval(iouType="keypoints").params.kpt_oks_sigmas, np.float64)


_FAR_PX = 1e9  # where a missing predicted keypoint is placed for pycocotools: its OKS term is exactly 0


class CocoKeypointEval:
    """COCO keypoint evaluation of M (view, frame) images, one reference person and at most one predicted person
    each, run once; :meth:`ap` then accumulates any subset of the images (per view, genre, ...).

    reference (M, 17, 3) px + conf and valid (M, 17): reference keypoints that count (visibility 2, others 0);
    the object area is the width x height of the box around them. prediction (M, 17, 2|3) px (NaN keypoints
    contribute 0 to OKS), present (M,) bool (False: no prediction in that image), scores (M,) rank the
    predictions. Every detection counts (area range [0, inf)); images whose reference has no valid keypoint
    must not be passed.
    """

    def __init__(self, reference, valid, prediction, present, scores):
        COCO, COCOeval = _cocoeval()
        ref = _xy(reference, "reference")
        pred = _xy(prediction, "prediction")[..., :2]
        valid = np.asarray(valid, bool)
        present = np.asarray(present, bool)
        scores = np.asarray(scores, np.float64)
        m = len(ref)
        if not valid.any(-1).all():
            raise AistppError("every image passed to the COCO evaluation needs at least one valid keypoint")
        w, h = box_size(ref, valid)
        x0 = np.where(valid, ref[..., 0], np.inf).min(-1)
        y0 = np.where(valid, ref[..., 1], np.inf).min(-1)
        gt_kp = np.concatenate([np.where(valid[..., None], ref[..., :2], 0.0), 2.0 * valid[..., None]], -1)
        dt_xy = np.where(np.isfinite(pred), pred, _FAR_PX)
        dt_kp = np.concatenate([dt_xy, np.ones(dt_xy.shape[:-1] + (1,))], -1)
        gts = [{"id": i + 1, "image_id": i, "category_id": 1, "iscrowd": 0, "area": float(w[i] * h[i]),
                "bbox": [float(x0[i]), float(y0[i]), float(w[i]), float(h[i])],
                "keypoints": gt_kp[i].ravel().tolist(), "num_keypoints": int(valid[i].sum())} for i in range(m)]
        dts = [{"image_id": i, "category_id": 1, "keypoints": dt_kp[i].ravel().tolist(), "score": float(scores[i])}
               for i in np.flatnonzero(present)]
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            gt = COCO()
            gt.dataset = {"images": [{"id": i} for i in range(m)], "annotations": gts,
                          "categories": [{"id": 1, "name": "person"}]}
            gt.createIndex()
            dt = gt.loadRes(dts) if dts else None
            self._eval = None
            if dt is not None:
                ev = COCOeval(gt, dt, iouType="keypoints")
                ev.params.imgIds = list(range(m))
                ev.params.areaRng = [[0.0, float("inf")]]
                ev.params.areaRngLbl = ["all"]
                ev.evaluate()
                self._eval = ev
        self.n_images = m
        self.iou_thresholds = (np.asarray(self._eval.params.iouThrs) if self._eval is not None
                               else np.linspace(0.5, 0.95, 10))

    def oks(self) -> np.ndarray:
        """(M,) OKS of each image's prediction with its reference (NaN where no prediction)."""
        out = np.full(self.n_images, np.nan)
        if self._eval is None:
            return out
        for (img, _), v in self._eval.ious.items():
            if len(v):
                out[img] = np.asarray(v)[0, 0]
        return out

    def ap(self, images=None) -> dict:
        """AP (mean over OKS 0.50:0.05:0.95), AP50 and AP75 over ``images`` (indices; None = all)."""
        import copy

        idx = np.arange(self.n_images) if images is None else np.unique(np.asarray(images, int))
        if len(idx) == 0:
            return {"ap": float("nan"), "ap50": float("nan"), "ap75": float("nan")}
        if self._eval is None:  # no prediction at all
            return {"ap": 0.0, "ap50": 0.0, "ap75": 0.0}
        ev = copy.copy(self._eval)
        ids = [int(i) for i in idx]
        ev.evalImgs = [self._eval.evalImgs[i] for i in ids]  # one category, one area range: index = image id
        ev._paramsEval = copy.deepcopy(self._eval._paramsEval)
        ev._paramsEval.imgIds = ids
        ev.params = copy.deepcopy(self._eval.params)
        ev.params.imgIds = ids
        with contextlib.redirect_stdout(io.StringIO()):
            ev.accumulate()
        prec = ev.eval["precision"][:, :, 0, 0, -1]  # (T, R)

        def mean(p):
            p = p[p > -1]
            return float(p.mean()) if p.size else float("nan")

        t = list(np.round(self.iou_thresholds, 2))
        return {"ap": mean(prec), "ap50": mean(prec[t.index(0.5)]), "ap75": mean(prec[t.index(0.75)])}
