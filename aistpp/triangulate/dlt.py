"""Linear (DLT) triangulation, vectorized over every point of a sequence at once.

Conventions: ``keypoints2d`` (V, ..., 3) float: x, y pixels of the full (distorted) frame plus a confidence in [0, 1];
NaN rows are missing detections. Cameras are an :class:`aistpp.io.cameras.CameraGroup` (world cm, world->camera).
Points are undistorted to *normalized* camera coordinates and triangulated against the normalized projection
matrices ``[R | t]`` -- exactly what aniposelib's ``CameraGroup.triangulate(points, undistort=True)`` does, which is
how the official AIST++ ``keypoints3d`` were produced (views with confidence < 0.15 dropped, NaN with < 2 views).
"""

from __future__ import annotations

import numpy as np

from aistpp.errors import AistppError
from aistpp.io.cameras import CameraGroup, distort_normalized
from aistpp.triangulate.config import OFFICIAL


def check_keypoints2d(keypoints2d: np.ndarray, cameras: CameraGroup) -> np.ndarray:
    """Validate (V, ..., 3) keypoints against a camera group; returns a float64 array."""
    kp = np.asarray(keypoints2d, np.float64)
    if kp.ndim < 2 or kp.shape[-1] != 3:
        raise AistppError(f"keypoints2d must be (V, ..., 3) [x, y, confidence], got shape {kp.shape}")
    if kp.shape[0] != len(cameras):
        raise AistppError(f"keypoints2d has {kp.shape[0]} views but the camera group has {len(cameras)}")
    return kp


def observation_weights(keypoints2d: np.ndarray, conf_threshold: float = OFFICIAL.conf_threshold,
                        weighted: bool = OFFICIAL.weighted) -> np.ndarray:
    """Per-view weights (V, ...) from confidences: 0 where missing / NaN / confidence < threshold.

    ``weighted=False`` gives 1 for every kept view (the official, unweighted DLT); ``True`` gives the confidence.
    """
    kp = np.asarray(keypoints2d)
    conf = kp[..., 2]
    ok = np.isfinite(kp).all(axis=-1) & (conf >= conf_threshold)
    if weighted:
        return np.where(ok, np.nan_to_num(conf), 0.0)
    return ok.astype(np.float64)


def normalize_points(keypoints2d: np.ndarray, cameras: CameraGroup) -> np.ndarray:
    """Undistorted normalized camera coordinates (V, ..., 2) of pixel keypoints (V, ..., 2 or 3); NaN stays NaN."""
    kp = check_keypoints2d(keypoints2d, cameras) if np.shape(keypoints2d)[-1] == 3 else np.asarray(keypoints2d)
    return cameras.undistort_points(kp[..., :2], normalized=True)


def dlt_normalized(xy: np.ndarray, extrinsics: np.ndarray, weights: np.ndarray, min_views: int = OFFICIAL.min_views,
                   method: str = "svd") -> np.ndarray:
    """Homogeneous DLT of M points seen in V views.

    xy: (V, M, 2) undistorted normalized coordinates (NaN allowed where the weight is 0);
    extrinsics: (V, 3, 4) ``[R | t]`` (world cm -> camera); weights: (V, M) >= 0, 0 = view not used.
    Each view contributes the rows ``w (x P3 - P1)`` and ``w (y P3 - P2)``; the point is the right singular vector
    of the smallest singular value (``method="svd"``, bit-for-bit the aniposelib formulation) or the smallest
    eigenvector of the 4x4 normal matrix (``"eigh"``, faster, same answer to ~1e-6 cm).
    Returns (M, 3) cm, NaN where fewer than ``min_views`` views have a positive weight.
    """
    xy = np.asarray(xy, np.float64)
    w = np.asarray(weights, np.float64)
    V, M = w.shape
    good = (w > 0) & np.isfinite(xy).all(axis=-1)
    w = np.where(good, w, 0.0)
    xy0 = np.where(good[..., None], xy, 0.0)
    # rows: (V, M, 2, 4)
    P = np.asarray(extrinsics, np.float64)
    A = xy0[..., :, None] * P[:, None, 2:3, :] - P[:, None, 0:2, :]
    A = A * w[..., None, None]
    out = np.full((M, 3), np.nan)
    enough = good.sum(axis=0) >= max(min_views, 2)
    if not enough.any():
        return out
    A = A[:, enough]  # (V, m, 2, 4)
    if method == "svd":
        A = np.moveaxis(A, 0, 1).reshape(-1, 2 * V, 4)  # (m, 2V, 4), view-major rows like aniposelib
        _, _, vh = np.linalg.svd(A, full_matrices=False)
        h = vh[:, -1, :]
    elif method == "eigh":
        B = np.moveaxis(A, 0, 1).reshape(-1, 2 * V, 4)
        _, vecs = np.linalg.eigh(B.transpose(0, 2, 1) @ B)
        h = vecs[:, :, 0]
    else:
        raise AistppError(f"unknown DLT method {method!r}; expected 'svd' or 'eigh'")
    with np.errstate(divide="ignore", invalid="ignore"):
        out[enough] = h[:, :3] / h[:, 3:4]
    return out


def triangulate_dlt(keypoints2d: np.ndarray, cameras: CameraGroup, *,
                    conf_threshold: float = OFFICIAL.conf_threshold, weighted: bool = OFFICIAL.weighted,
                    min_views: int = OFFICIAL.min_views, method: str = "svd") -> np.ndarray:
    """Linear triangulation of every keypoint.

    keypoints2d: (V, ..., 3) px + confidence (any leading shape after V, e.g. (V, N, 17, 3)).
    Views with NaN or confidence < ``conf_threshold`` are dropped; ``weighted=True`` weights the DLT rows by
    confidence. With the defaults (unweighted, 0.15, 2 views) this is the official AIST++ ``keypoints3d``.
    Returns (..., 3) cm, NaN where fewer than ``min_views`` views remain.
    """
    kp = check_keypoints2d(keypoints2d, cameras)
    shape = kp.shape[1:-1]
    flat = kp.reshape(len(cameras), -1, 3)
    w = observation_weights(flat, conf_threshold, weighted)
    xy = normalize_points(np.where(w[..., None] > 0, flat, np.nan), cameras)
    return dlt_normalized(xy, cameras.extrinsics, w, min_views, method).reshape(shape + (3,))


def project_normalized(points3d: np.ndarray, extrinsics: np.ndarray) -> np.ndarray:
    """World points (..., 3) cm -> undistorted normalized coordinates (V, ..., 2) and depth (V, ...) cm."""
    p = np.asarray(points3d, np.float64)
    cam = np.einsum("vij,...j->v...i", extrinsics[:, :, :3], p) + extrinsics[:, :, 3].reshape(
        (len(extrinsics),) + (1,) * (p.ndim - 1) + (3,))
    z = cam[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        return cam[..., :2] / z[..., None], z


def project_points(points3d: np.ndarray, cameras: CameraGroup) -> np.ndarray:
    """Distorted pixel projections (V, ..., 2) of world points (..., 3) cm (OpenCV model; same as
    ``CameraGroup.project``, written with batched matmuls for speed). NaN points give NaN pixels."""
    p = np.asarray(points3d, np.float64)
    flat = p.reshape(1, -1, 3)
    cam = flat @ cameras.R.transpose(0, 2, 1) + cameras.tvec[:, None, :]  # (V, M, 3)
    with np.errstate(divide="ignore", invalid="ignore"):
        xy = cam[..., :2] / cam[..., 2:3]
    xy = distort_normalized(xy, cameras.dist[:, None, :])
    K = cameras.K
    u = K[:, None, 0, 0] * xy[..., 0] + K[:, None, 0, 1] * xy[..., 1] + K[:, None, 0, 2]
    v = K[:, None, 1, 1] * xy[..., 1] + K[:, None, 1, 2]
    return np.stack([u, v], axis=-1).reshape((len(cameras),) + p.shape[:-1] + (2,))


def reprojection_errors(points3d: np.ndarray, keypoints2d: np.ndarray, cameras: CameraGroup) -> np.ndarray:
    """Pixel distance (V, ...) between each view's keypoint (V, ..., 2|3) and the distorted projection of
    ``points3d`` (..., 3) cm. NaN where either is missing."""
    proj = project_points(points3d, cameras)
    kp = np.asarray(keypoints2d, np.float64)[..., :2]
    return np.linalg.norm(proj - kp, axis=-1)


def mean_reprojection_error(points3d: np.ndarray, keypoints2d: np.ndarray, cameras: CameraGroup,
                            views_mask: np.ndarray) -> np.ndarray:
    """Mean pixel error (...,) over the views where ``views_mask`` (V, ...) is true; NaN where none."""
    err = reprojection_errors(points3d, keypoints2d, cameras)
    m = np.asarray(views_mask, bool) & np.isfinite(err)
    n = m.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.where(m, err, 0).sum(axis=0) / n, np.nan)


def views_bitmask(mask: np.ndarray) -> np.ndarray:
    """Boolean (V, ...) -> uint16 (...) bitmask, bit v set where ``mask[v]``."""
    m = np.asarray(mask, bool)
    bits = (1 << np.arange(m.shape[0], dtype=np.uint32)).reshape((-1,) + (1,) * (m.ndim - 1))
    return (m * bits).sum(axis=0).astype(np.uint16)


def bitmask_views(bits: np.ndarray, n_views: int) -> np.ndarray:
    """uint16 (...) bitmask -> boolean (V, ...)."""
    b = np.asarray(bits, np.uint32)
    return ((b[None] >> np.arange(n_views, dtype=np.uint32).reshape((-1,) + (1,) * b.ndim)) & 1).astype(bool)
