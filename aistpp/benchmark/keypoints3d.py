"""3D keypoint scores against reference keypoints3d: MPJPE, per-frame Procrustes-aligned MPJPE, PCK3D, bone-length
consistency and acceleration error.

Pure, batched functions. Shapes: N frames, 17 COCO joints, positions in cm (world frame). Counting rules:
:mod:`aistpp.benchmark.protocol` (a finite reference joint counts; a NaN predicted joint is a miss).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aistpp.errors import AistppError
from aistpp.skeleton import BONES, NUM_JOINTS


def _points(x, name) -> np.ndarray:
    p = np.asarray(x, np.float64)
    if p.ndim != 3 or p.shape[1:] != (NUM_JOINTS, 3):
        raise AistppError(f"{name} must be (N, 17, 3) COCO-17 keypoints3d in cm, got shape {p.shape}")
    return p


def _align_frames(pred: np.ndarray, n: int) -> np.ndarray:
    """Prediction padded with NaN (missing frames) or cut to the reference's N frames."""
    if len(pred) == n:
        return pred
    out = np.full((n, NUM_JOINTS, 3), np.nan)
    m = min(n, len(pred))
    out[:m] = pred[:m]
    return out


def procrustes_align(source, target, mask=None) -> np.ndarray:
    """Per frame, the similarity transform (scale, rotation without reflection, translation) that best maps
    ``source`` (N, J, 3) onto ``target`` (N, J, 3) in least squares over the joints in ``mask`` (N, J) (default:
    finite in both), applied to ``source`` (Umeyama 1991). Frames with fewer than 3 joints in the mask -> NaN."""
    src = np.asarray(source, np.float64)
    dst = np.asarray(target, np.float64)
    if mask is None:
        mask = np.isfinite(src).all(-1) & np.isfinite(dst).all(-1)
    w = mask.astype(np.float64)[..., None]  # (N, J, 1)
    cnt = w.sum(1)  # (N, 1)
    ok = cnt[:, 0] >= 3
    cnt = np.maximum(cnt, 1)
    s0 = np.where(mask[..., None], src, 0.0)
    d0 = np.where(mask[..., None], dst, 0.0)
    mu_s = s0.sum(1) / cnt
    mu_d = d0.sum(1) / cnt
    sc = (s0 - mu_s[:, None]) * w
    dc = (d0 - mu_d[:, None]) * w
    cov = np.einsum("nji,njk->nik", dc, sc) / cnt[..., None]  # (N, 3, 3) target x source
    var_s = (sc ** 2).sum((1, 2)) / cnt[:, 0]
    u, d, vt = np.linalg.svd(cov)
    sign = np.sign(np.linalg.det(u) * np.linalg.det(vt))
    sign[sign == 0] = 1.0
    fix = np.ones((len(src), 3))
    fix[:, 2] = sign
    rot = u @ (fix[:, :, None] * vt)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = (d * fix).sum(-1) / var_s
    trans = mu_d - scale[:, None] * np.einsum("nij,nj->ni", rot, mu_s)
    out = scale[:, None, None] * np.einsum("nij,nkj->nki", rot, src) + trans[:, None]
    out[~ok] = np.nan
    return out


@dataclass(frozen=True)
class Errors3D:
    """Per-joint comparison over N frames.

    error_cm: (N, 17) distance; NaN where the reference joint does not count, +inf where the prediction misses it.
    pa_error_cm: (N, 17) the same after per-frame Procrustes alignment (frames with < 3 joints in both: misses).
    accel_error_cm: (N, 17) |second difference of prediction - of reference| in cm/frame^2 at frames 1..N-2 where
    both are finite at t-1, t, t+1; NaN elsewhere.
    bone_cv: (B,) coefficient of variation (std / mean over frames) of each :data:`aistpp.skeleton.BONES` length of
    the prediction; reference_bone_cv: the same for the reference.
    """

    error_cm: np.ndarray
    pa_error_cm: np.ndarray
    accel_error_cm: np.ndarray
    bone_cv: np.ndarray
    reference_bone_cv: np.ndarray


def bone_length_cv(points, bones=BONES) -> np.ndarray:
    """(B,) std / mean over frames of each bone length of (N, J, 3) points (frames where both ends are finite;
    NaN for a bone measured in fewer than 2 frames)."""
    p = np.asarray(points, np.float64)
    a, b = np.asarray(bones).T
    length = np.linalg.norm(p[:, a] - p[:, b], axis=-1)  # (N, B)
    ok = np.isfinite(length)
    n = ok.sum(0)
    l0 = np.where(ok, length, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = l0.sum(0) / n
        var = (np.where(ok, length - mean, 0.0) ** 2).sum(0) / n
        cv = np.sqrt(var) / mean
    cv[n < 2] = np.nan
    return cv


def second_difference(points) -> np.ndarray:
    """(N, J, 3) -> (N, J, 3): x[t-1] - 2 x[t] + x[t+1] at t = 1..N-2, NaN at the ends."""
    p = np.asarray(points, np.float64)
    out = np.full_like(p, np.nan)
    if len(p) >= 3:
        out[1:-1] = p[:-2] - 2 * p[1:-1] + p[2:]
    return out


def keypoint_errors_3d(prediction, reference) -> Errors3D:
    """Compare prediction (N', 17, 3) with reference (N, 17, 3) cm frame by frame (missing frames are misses,
    extra frames ignored)."""
    ref = _points(reference, "reference")
    pred = _align_frames(_points(prediction, "prediction"), len(ref))
    valid = np.isfinite(ref).all(-1)
    have = np.isfinite(pred).all(-1)
    dist = np.linalg.norm(pred - ref, axis=-1)
    err = np.where(valid, np.where(have, dist, np.inf), np.nan)
    aligned = procrustes_align(pred, ref, valid & have)
    pa = np.linalg.norm(aligned - ref, axis=-1)
    pa_err = np.where(valid, np.where(np.isfinite(pa), pa, np.inf), np.nan)
    acc = np.linalg.norm(second_difference(pred) - second_difference(ref), axis=-1)
    return Errors3D(error_cm=err, pa_error_cm=pa_err, accel_error_cm=acc, bone_cv=bone_length_cv(pred),
                    reference_bone_cv=bone_length_cv(ref))


def mean_covered(error) -> tuple[float, float]:
    """(mean of the finite errors, covered fraction = finite / counted) of an error array (NaN = not counted,
    +inf = miss); (NaN, NaN) if nothing counts."""
    e = np.asarray(error, np.float64)
    counted = ~np.isnan(e)
    fin = np.isfinite(e)
    n = counted.sum()
    if n == 0:
        return float("nan"), float("nan")
    return (float(e[fin].mean()) if fin.any() else float("nan")), float(fin.sum() / n)
