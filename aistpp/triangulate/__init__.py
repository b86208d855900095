"""Triangulation across the calibrated views: DLT, robust triangulation, temporal optimization, calibration.

Stage entry point: :func:`reconstruct_keypoints3d` (keypoints2d (V, N, 17, 3) + cameras -> :class:`Keypoints3dResult`).
The pieces are pure, batched functions over views x frames x joints:

- :func:`triangulate_dlt` -- linear DLT; defaults reproduce the official ``keypoints3d`` (aniposelib ``triangulate``);
- :func:`triangulate_robust` -- outlier views rejected per point by two-view consensus, with per-point diagnostics;
- :func:`optimize_temporal` -- soft-L1 reprojection + smoothness + bone lengths over a sequence (block-tridiagonal LM);
- :func:`bundle_adjust` / :func:`ring_cameras` -- camera refinement from 2D keypoints, the AIST++-like camera ring.
"""

from aistpp.triangulate.calibrate import (KNOWN_BAD_VIEWS, CalibrationConfig, CalibrationResult, bundle_adjust,
                                          observation_error, ring_cameras)
from aistpp.triangulate.dlt import (bitmask_views, mean_reprojection_error, reprojection_errors, triangulate_dlt,
                                    views_bitmask)
from aistpp.triangulate.reconstruct import Keypoints3dResult, TriangulationConfig, reconstruct_keypoints3d
from aistpp.triangulate.robust import RobustTriangulation, triangulate_robust
from aistpp.triangulate.temporal import interpolate_gaps, optimize_temporal

__all__ = [
    "KNOWN_BAD_VIEWS", "CalibrationConfig", "CalibrationResult", "Keypoints3dResult", "RobustTriangulation",
    "TriangulationConfig", "bitmask_views", "bundle_adjust", "interpolate_gaps", "mean_reprojection_error",
    "observation_error", "optimize_temporal", "reconstruct_keypoints3d", "reprojection_errors", "ring_cameras",
    "triangulate_dlt", "triangulate_robust", "views_bitmask",
]
