"""The triangulation stage entry point: 2D keypoints of 9 views -> robust per-frame 3D + temporally optimized 3D."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aistpp.errors import AistppError
from aistpp.io.cameras import CameraGroup
from aistpp.skeleton import BONES
from aistpp.triangulate.config import TriangulationConfig
from aistpp.triangulate.dlt import check_keypoints2d, mean_reprojection_error, triangulate_dlt, views_bitmask
from aistpp.triangulate.robust import triangulate_robust
from aistpp.triangulate.temporal import optimize_temporal


@dataclass(frozen=True)
class Keypoints3dResult:
    """Output of :func:`reconstruct_keypoints3d` for N frames of 17 joints.

    keypoints3d: (N, 17, 3) float64 cm, per-frame (robust) triangulation, NaN where fewer than ``min_views`` views;
    keypoints3d_optim: (N, 17, 3) float64 cm, temporally optimized (gaps interpolated), or a copy of
    ``keypoints3d`` when the optimization is disabled; views_used: (N, 17) uint16 bitmask of inlier views;
    reprojection_error: (N, 17) float32 px, mean over inlier views of ``keypoints3d``.
    """

    keypoints3d: np.ndarray
    keypoints3d_optim: np.ndarray
    views_used: np.ndarray
    reprojection_error: np.ndarray
    config: dict


def reconstruct_keypoints3d(keypoints2d: np.ndarray, cameras: CameraGroup,
                            config: TriangulationConfig = TriangulationConfig()) -> Keypoints3dResult:
    """Triangulate a sequence: keypoints2d (V, N, 17, 3) px + confidence, the V calibrated cameras -> 3D (cm)."""
    kp = check_keypoints2d(keypoints2d, cameras)
    if kp.ndim != 4:
        raise AistppError(f"keypoints2d must be (V, N, J, 3), got shape {kp.shape}")
    if config.robust:
        res = triangulate_robust(kp, cameras, conf_threshold=config.conf_threshold,
                                 inlier_threshold_px=config.inlier_threshold_px, min_views=config.min_views,
                                 weighted=config.weighted)
        X, inliers, rep = res.keypoints3d, res.inliers, res.reprojection_error
    else:
        X = triangulate_dlt(kp, cameras, conf_threshold=config.conf_threshold, min_views=config.min_views)
        inliers = np.isfinite(kp).all(-1) & (kp[..., 2] >= config.conf_threshold) & np.isfinite(X).all(-1)[None]
        rep = mean_reprojection_error(X, kp, cameras, inliers).astype(np.float32)
    if config.temporal:
        X_opt = optimize_temporal(
            kp, cameras, X, inliers=inliers if config.temporal_inliers_only else None,
            conf_threshold=config.conf_threshold, reproj_threshold_px=config.reproj_threshold_px,
            scale_smooth=config.scale_smooth, scale_length=config.scale_length, bones=BONES,
            max_iters=config.max_iters, ftol=config.ftol, chunk_frames=config.chunk_frames,
            chunk_overlap=config.chunk_overlap)
    else:
        X_opt = X.copy()
    return Keypoints3dResult(keypoints3d=X, keypoints3d_optim=X_opt, views_used=views_bitmask(inliers),
                             reprojection_error=rep.astype(np.float32), config=config.to_dict())
