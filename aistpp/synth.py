"""Synthetic multi-view captures with known truth, for tests, benchmarks and the demo.

Known 3D motion (e.g. the official ``keypoints3d_optim``) is projected through real cameras (lens distortion
included) and corrupted the way detectors fail: pixel noise, dropped views (no detection), low confidences, and
outliers -- whole-skeleton left/right swaps in a view (:data:`aistpp.skeleton.FLIP_PERMUTATION`) and random jumps of
single keypoints. Everything is drawn from one ``numpy.random.Generator(seed)``, so a capture is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aistpp.errors import AistppError
from aistpp.io.annotations import OFFICIAL_MIN_CONFIDENCE, frame_timestamps
from aistpp.io.cameras import CameraGroup
from aistpp.skeleton import FLIP_PERMUTATION


@dataclass(frozen=True)
class SynthCapture:
    """A synthetic capture in the official keypoints2d format plus the truth.

    keypoints2d: (V, N, J, 3) float32 px + confidence, NaN rows where dropped; det_scores (V, N) float32 (0 = no
    person); timestamps (N,) int64 us at 60 fps; keypoints3d (N, J, 3) float64 cm (the truth);
    outlier (V, N, J) bool: observation is a swap or jump (more than noise away from the truth);
    dropped (V, N, J) bool: observation missing (dropped view or outside the image).
    """

    keypoints2d: np.ndarray
    det_scores: np.ndarray
    timestamps: np.ndarray
    keypoints3d: np.ndarray
    outlier: np.ndarray
    dropped: np.ndarray


def synth_multiview(keypoints3d: np.ndarray, cameras: CameraGroup, *, noise_px: float = 2.0,
                    drop_rate: float = 0.02, low_conf_rate: float = 0.05, outlier_rate: float = 0.0,
                    swap_rate: float = 0.0, jump_px: tuple[float, float] = (60.0, 400.0),
                    seed: int = 0) -> SynthCapture:
    """Project ``keypoints3d`` (N, J, 3) cm into every camera and corrupt the observations.

    noise_px: std of Gaussian pixel noise per coordinate; drop_rate: probability that a view misses a whole frame
    (NaN rows, det_score 0); low_conf_rate: probability per keypoint of a confidence below 0.15 (position still
    noisy-correct, the official pipeline drops it); swap_rate: probability per (view, frame) of a left/right-swapped
    skeleton; outlier_rate: probability per keypoint of a random jump of ``jump_px`` (min, max) pixels.
    Good keypoints get confidence U(0.5, 1); outliers U(0.3, 0.9) (detectors are confidently wrong).
    """
    X = np.asarray(keypoints3d, np.float64)
    if X.ndim != 3 or X.shape[-1] != 3:
        raise AistppError(f"keypoints3d must be (N, J, 3) cm, got shape {X.shape}")
    for name, rate in (("drop_rate", drop_rate), ("low_conf_rate", low_conf_rate), ("outlier_rate", outlier_rate),
                       ("swap_rate", swap_rate)):
        if not 0 <= rate <= 1:
            raise AistppError(f"{name} must be in [0, 1], got {rate}")
    rng = np.random.default_rng(seed)
    V, (N, J) = len(cameras), X.shape[:2]
    truth_px = cameras.project(X)  # (V, N, J, 2)
    depth = cameras.to_camera(X)[..., 2]
    px = truth_px + rng.normal(0.0, noise_px, truth_px.shape)
    conf = rng.uniform(0.5, 1.0, (V, N, J))
    outlier = np.zeros((V, N, J), bool)

    swap = rng.random((V, N)) < swap_rate
    if swap.any():
        perm = np.asarray(FLIP_PERMUTATION)
        swapped = px[:, :, perm]
        px = np.where(swap[..., None, None], swapped, px)
        moved = np.linalg.norm(truth_px[:, :, perm] - truth_px, axis=-1) > 4 * max(noise_px, 1.0)
        outlier |= swap[..., None] & moved

    jump = rng.random((V, N, J)) < outlier_rate
    if jump.any():
        ang = rng.uniform(0, 2 * np.pi, jump.shape)
        rad = rng.uniform(jump_px[0], jump_px[1], jump.shape)
        offset = np.stack([np.cos(ang), np.sin(ang)], -1) * rad[..., None]
        px = np.where(jump[..., None], px + offset, px)
        outlier |= jump
    conf = np.where(outlier, rng.uniform(0.3, 0.9, conf.shape), conf)

    low = (rng.random((V, N, J)) < low_conf_rate) & ~outlier
    conf = np.where(low, rng.uniform(0.0, OFFICIAL_MIN_CONFIDENCE, conf.shape), conf)

    w, h = np.array([c.size for c in cameras], float).T
    inside = ((px[..., 0] >= 0) & (px[..., 0] < w[:, None, None]) & (px[..., 1] >= 0)
              & (px[..., 1] < h[:, None, None]) & (depth > 0) & np.isfinite(px).all(-1))
    drop_frame = rng.random((V, N)) < drop_rate
    dropped = drop_frame[..., None] | ~inside
    outlier &= ~dropped

    kp = np.concatenate([px, conf[..., None]], axis=-1).astype(np.float32)
    kp[dropped] = np.nan
    n_seen = (~dropped).sum(-1)
    det = np.where(drop_frame | (n_seen == 0), 0.0, np.where(dropped, 0.0, conf).sum(-1) / np.maximum(n_seen, 1))
    return SynthCapture(keypoints2d=kp, det_scores=det.astype(np.float32), timestamps=frame_timestamps(N),
                        keypoints3d=X, outlier=outlier, dropped=dropped)
