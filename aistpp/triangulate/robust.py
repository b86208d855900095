"""Robust per-point triangulation: reject outlier views (left/right swaps, wrong person, jumps), all points at once.

Algorithm (exhaustive two-view consensus, vectorized):

1. Weighted linear triangulation with every kept view. Points whose every view reprojects within
   ``inlier_threshold_px`` are done (the common case on real data).
2. a. For the others, drop the worst view and refit; accepted when every remaining view agrees and the dropped
      one does not (a single outlier view, the next most common case).
   b. For the rest, every pair of kept views gives a hypothesis (a closed-form two-view solve); each is scored by
      its inlier views (reprojection error < threshold), ties broken by summed confidence and mean inlier error.
      This finds the consensus set even with many outlier views, which leave-one/two-out subsets cannot.
3. The consensus set is refit and the inlier set re-evaluated against every kept view (``refine_iters`` times).

The linear solves here fix the homogeneous coordinate to 1 (3x3 normal equations solved in closed form, rows
weighted by confidence), which is cheaper than the SVD of :func:`triangulate_dlt` and equivalent for
non-degenerate points. Everything runs on arrays of all points at once (pair hypotheses in blocks of ``block``
points, two threads).

Errors are measured in pixels on undistorted points (normalized error times the focal length); the reported
per-point ``reprojection_error`` is the mean pixel error over the inlier views in the original (distorted) image.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass

import numpy as np

from aistpp.io.cameras import CameraGroup
from aistpp.triangulate.config import DEFAULT
from aistpp.triangulate.dlt import (check_keypoints2d, mean_reprojection_error, normalize_points,
                                    observation_weights, views_bitmask)


@dataclass(frozen=True)
class RobustTriangulation:
    """Result of :func:`triangulate_robust` for keypoints (V, *S, 3).

    keypoints3d: (*S, 3) float64 cm, NaN where fewer than ``min_views`` usable views;
    inliers: (V, *S) bool, the views used; views_used: (*S,) uint16 bitmask of ``inliers``;
    reprojection_error: (*S,) float32 px, mean over inlier views (NaN where not triangulated).
    """

    keypoints3d: np.ndarray
    inliers: np.ndarray
    views_used: np.ndarray
    reprojection_error: np.ndarray


def _view_errors_px(X: np.ndarray, xy: np.ndarray, extr: np.ndarray, focal: np.ndarray) -> np.ndarray:
    """X (..., M, 3), xy (V, M, 2) -> pixel errors (..., V, M) (inf behind the camera or where xy is NaN)."""
    Xe = X[..., None, :, :]
    R, t = extr[:, :, :3], extr[:, :, 3]
    cam = [R[:, i, 0, None] * Xe[..., 0] + R[:, i, 1, None] * Xe[..., 1] + R[:, i, 2, None] * Xe[..., 2]
           + t[:, i, None] for i in range(3)]
    z = cam[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        dx = cam[0] / z - xy[..., 0]
        dy = cam[1] / z - xy[..., 1]
        e = np.sqrt(dx * dx + dy * dy) * focal[:, None]
    return np.where((z > 0) & np.isfinite(e), e, np.inf)


def _normal_terms(xy: np.ndarray, good: np.ndarray, w: np.ndarray, extr: np.ndarray):
    """Per-view inhomogeneous DLT normal equations: N (6, V, M) [xx, xy, xz, yy, yz, zz] and b (3, V, M).

    Each view contributes rows ``w (x P3 - P1)``, ``w (y P3 - P2)``; a point solves ``sum_v N X = sum_v b``."""
    ww = np.where(good, w, 0.0)
    R, t = extr[:, None, :, :3], extr[:, None, :, 3]
    N = np.zeros((6, *good.shape))
    b = np.zeros((3, *good.shape))
    for k in range(2):
        c = np.where(good, xy[..., k], 0.0)
        a = [(c * R[..., 2, j] - R[..., k, j]) * ww for j in range(3)]  # weighted row, (V, M) each
        a3 = (c * t[..., 2] - t[..., k]) * ww
        for n, (i, j) in enumerate(((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))):
            N[n] += a[i] * a[j]
        for i in range(3):
            b[i] -= a[i] * a3
    return N, b


def _solve_sym3(N: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched symmetric 3x3 solve by cofactors: N (6, ...) packed, b (3, ...) -> (..., 3); NaN where singular."""
    a, d, e, bb, f, c = N  # a=xx d=xy e=xz bb=yy f=yz c=zz
    A = bb * c - f * f
    B = e * f - d * c
    C = d * f - bb * e
    det = a * A + d * B + e * C
    E = a * c - e * e
    F = d * e - a * f
    I = a * bb - d * d
    b0, b1, b2 = b
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_det = 1.0 / det
        X = np.stack([(A * b0 + B * b1 + C * b2) * inv_det,
                      (B * b0 + E * b1 + F * b2) * inv_det,
                      (C * b0 + F * b1 + I * b2) * inv_det], axis=-1)
    return np.where(np.isfinite(X).all(-1, keepdims=True) & (np.abs(det) > 0)[..., None], X, np.nan)


def _subset_solve(N: np.ndarray, b: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Inhomogeneous DLT using the views in ``mask`` (V, M) -> (M, 3)."""
    m = mask.astype(np.float64)
    return _solve_sym3((N * m).sum(1), (b * m).sum(1))


def _pair_hypotheses(xy, good, N, b, extr, focal, thr, conf):
    """Best consensus inlier mask (V, M) from all two-view hypotheses of M points."""
    V, M = good.shape
    pairs = np.array(list(itertools.combinations(range(V), 2)))
    X = _solve_sym3(N[:, pairs[:, 0]] + N[:, pairs[:, 1]], b[:, pairs[:, 0]] + b[:, pairs[:, 1]])  # (P, M, 3)
    pair_ok = good[pairs[:, 0]] & good[pairs[:, 1]] & np.isfinite(X).all(-1)  # (P, M)
    f32 = np.float32
    err = _view_errors_px(X.astype(f32), xy.astype(f32), extr.astype(f32), focal.astype(f32))  # (P, V, M)
    inl = (err < thr) & good[None]
    n_in = inl.sum(1)
    mean_in = np.where(inl, err, 0).sum(1) / np.maximum(n_in, 1)
    # more inliers first, then more summed confidence, then lower error
    score = n_in + 0.5 * (np.where(inl, conf[None], 0).sum(1) / V) / (1 + n_in) + 0.1 * (1 - mean_in / thr) / V
    score = np.where(pair_ok & (n_in >= 2), score, -np.inf)
    best = np.argmax(score, axis=0)
    mask = np.take_along_axis(inl, best[None, None, :], axis=0)[0]  # (V, M)
    return np.where(np.isfinite(score[best, np.arange(M)])[None], mask, good)


def triangulate_robust(keypoints2d: np.ndarray, cameras: CameraGroup, *,
                       conf_threshold: float = DEFAULT.conf_threshold,
                       inlier_threshold_px: float = DEFAULT.inlier_threshold_px,
                       min_views: int = DEFAULT.min_views, weighted: bool = DEFAULT.weighted,
                       refine_iters: int = 3, block: int = 2048) -> RobustTriangulation:
    """Outlier-robust triangulation of keypoints (V, *S, 3) px + confidence; see the module docstring.

    Views with NaN or confidence < ``conf_threshold`` are never used; ``weighted`` weights DLT rows by
    confidence. Points with fewer than ``min_views`` kept views are NaN. ``block`` bounds memory (points per batch
    in the hypothesis stage). Returns a :class:`RobustTriangulation`.
    """
    kp = check_keypoints2d(keypoints2d, cameras)
    V = kp.shape[0]
    shape = kp.shape[1:-1]
    flat = kp.reshape(V, -1, 3)
    w = observation_weights(flat, conf_threshold, weighted)
    good = w > 0
    xy = normalize_points(np.where(good[..., None], flat, np.nan), cameras)
    good &= np.isfinite(xy).all(-1)
    conf = np.where(good, np.nan_to_num(flat[..., 2]), 0.0)
    extr = cameras.extrinsics
    focal = 0.5 * (cameras.K[:, 0, 0] + cameras.K[:, 1, 1])
    thr = float(inlier_threshold_px)
    N, b = _normal_terms(xy, good, w, extr)

    # 1. all kept views
    X = _subset_solve(N, b, good)
    err = _view_errors_px(X, xy, extr, focal)
    inl = good.copy()
    n_good = good.sum(0)
    enough = n_good >= max(min_views, 2)
    suspicious = np.flatnonzero(enough & ((err >= thr) & good).any(0) & (n_good >= 3))
    # 2a. one outlier view: drop the worst view and accept when the rest agree and the dropped one does not
    idx = suspicious
    if idx.size:
        e = np.where(good[:, idx], err[:, idx], -np.inf)
        worst = np.argmax(e, axis=0)
        m = good[:, idx].copy()
        m[worst, np.arange(idx.size)] = False
        X1 = _subset_solve(N[:, :, idx], b[:, :, idx], m)
        e1 = _view_errors_px(X1, xy[:, idx], extr, focal)
        ok = ~((e1 >= thr) & m).any(0) & (e1[worst, np.arange(idx.size)] >= thr)
        X[idx[ok]] = X1[ok]
        inl[:, idx[ok]] = m[:, ok]
        idx = idx[~ok]
    # 2b. consensus over all view pairs for the rest
    def run_block(bi):
        inl[:, bi] = _pair_hypotheses(xy[:, bi], good[:, bi], N[:, :, bi], b[:, :, bi], extr, focal, thr,
                                      conf[:, bi])

    blocks = [idx[s:s + block] for s in range(0, len(idx), block)]
    if len(blocks) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(len(blocks), os.cpu_count() or 1)) as pool:
            list(pool.map(run_block, blocks))
    elif blocks:
        run_block(blocks[0])
    # 3. refit on the consensus set, re-evaluate inliers against every kept view
    idx = suspicious
    for _ in range(max(refine_iters, 1)):
        if not idx.size:
            break
        Xb = _subset_solve(N[:, :, idx], b[:, :, idx], inl[:, idx])
        X[idx] = Xb
        e = _view_errors_px(Xb, xy[:, idx], extr, focal)
        new = (e < thr) & good[:, idx]
        keep = new.sum(0) >= 2
        changed = keep & (new != inl[:, idx]).any(0)
        inl[:, idx] = np.where(keep[None], new, inl[:, idx])
        idx = idx[changed]
    if idx.size:
        X[idx] = _subset_solve(N[:, :, idx], b[:, :, idx], inl[:, idx])
    X[~enough] = np.nan
    inl &= enough[None]
    rep = mean_reprojection_error(X, flat, cameras, inl).astype(np.float32)
    return RobustTriangulation(
        keypoints3d=X.reshape(shape + (3,)),
        inliers=inl.reshape((V,) + shape),
        views_used=views_bitmask(inl).reshape(shape),
        reprojection_error=rep.reshape(shape),
    )
