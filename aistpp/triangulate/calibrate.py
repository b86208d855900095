"""Camera refinement from the dancers' own 2D keypoints (bundle adjustment), and the AIST++-like camera ring.

The official cameras were calibrated this way: start from a hand-made ring of cameras, keep 2D keypoints with
confidence >= 0.5 from a few sequences of a setting, and run aniposelib's iterative bundle adjustment (camera:
rotation, translation, one focal length, k1; principal point fixed). :func:`bundle_adjust` does the same with a
vectorized residual and a sparse finite-difference Jacobian (scipy ``least_squares``, ``jac_sparsity``), in rounds:
robustly triangulate with the current cameras, keep the inlier observations under a shrinking pixel threshold,
sample points, adjust cameras and points jointly under a soft-L1 loss.

Gauge: reprojection error does not change under a global similarity of world and cameras. A weak prior pulls every
camera's rotation and centre toward the initial cameras (``prior_deg``, ``prior_cm``), which fixes the gauge close
to the initial world frame without biasing the fit; compare calibrations by reprojection error, not parameters.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.optimize import least_squares
from scipy.sparse import coo_matrix

from aistpp.errors import AistppError
from aistpp.io.cameras import Camera, CameraGroup, distort_normalized, rodrigues_to_matrix
from aistpp.triangulate.config import DEFAULT
from aistpp.triangulate.dlt import reprojection_errors
from aistpp.triangulate.robust import triangulate_robust

log = logging.getLogger(__name__)

# Views the official pipeline blanked before calibration and triangulation (sequence -> view indices).
KNOWN_BAD_VIEWS = {
    "gBR_sBM_cAll_d04_mBR0_ch01": (4,),  # c05 not synchronized
    "gJB_sBM_cAll_d07_mJB3_ch05": (6,),  # c07 recorded at 640x480
}

N_CAM_PARAMS = 8  # rvec (3), tvec (3), focal scale (1), k1 (1)


def _look_at(center, target) -> tuple[np.ndarray, np.ndarray]:
    """World->camera (rvec, tvec) of a camera at ``center`` looking at ``target`` with world +y up (image y down)."""
    from aistpp.io.cameras import matrix_to_rodrigues

    c = np.asarray(center, float)
    fwd = np.asarray(target, float) - c
    fwd /= np.linalg.norm(fwd)
    down = np.array([0.0, -1.0, 0.0])
    y = down - fwd * (down @ fwd)
    y /= np.linalg.norm(y)
    x = np.cross(y, fwd)
    R = np.stack([x, y, fwd])
    return matrix_to_rodrigues(R), -R @ c


def ring_cameras(focal_px: float = 1600.0, size: tuple[int, int] = (1920, 1080), radius_cm: float = 500.0,
                 height_cm: float = 180.0, low_height_cm: float = 100.0, setting: str = "ring") -> CameraGroup:
    """An AIST++-like ring of 9 cameras (the official calibration's starting point).

    c01..c08 stand 45 degrees apart on a circle of ``radius_cm`` around the world origin at ``height_cm``
    (c01 on +z, then clockwise seen from above: c02 at -45 degrees toward -x, c03 on -x, ... as in the official
    settings), looking horizontally at the vertical axis; c09 stands low (``low_height_cm``) beside c01, tilted up
    toward the c01 height. Pinhole: ``focal_px``, principal point at the image centre, no distortion.
    """
    w, h = size
    K = np.array([[focal_px, 0, w / 2], [0, focal_px, h / 2], [0, 0, 1]], float)
    cams = []
    for i in range(9):
        if i < 8:
            theta = np.radians(-45.0 * i)
            center = [radius_cm * np.sin(theta), height_cm, radius_cm * np.cos(theta)]
            target = [0.0, height_cm, 0.0]
        else:
            center = [0.0, low_height_cm, radius_cm]
            target = [0.0, height_cm, 0.0]
        rvec, tvec = _look_at(center, target)
        cams.append(Camera(f"c{i + 1:02d}", (int(w), int(h)), K.copy(), np.zeros(5), rvec, tvec))
    return CameraGroup(tuple(cams), setting)


@dataclass(frozen=True)
class CalibrationConfig:
    """Bundle adjustment settings. conf_threshold: 2D keypoints used (official: 0.5); thresholds_px: inlier
    pixel threshold of each round (robust triangulation with the current cameras); n_points: 3D points sampled per
    round; loss_scale_px: soft-L1 scale; prior_deg / prior_cm: gauge prior on camera rotations / centres;
    max_nfev: least-squares evaluations per round; seed: point sampling."""

    conf_threshold: float = 0.5
    thresholds_px: tuple[float, ...] = (40.0, 20.0, 12.0)
    n_points: int = 3000
    min_views: int = 3
    loss_scale_px: float = 4.0
    prior_deg: float = 10.0
    prior_cm: float = 100.0
    max_nfev: int = 60
    refine_focal: bool = True
    refine_distortion: bool = True
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CalibrationResult:
    """Refined cameras and the median reprojection error (px) of the observations before / after each round."""

    cameras: CameraGroup
    initial_error_px: float
    final_error_px: float
    rounds: list = field(default_factory=list)


def _cam_params(group: CameraGroup) -> np.ndarray:
    p = np.zeros((len(group), N_CAM_PARAMS))
    p[:, 0:3] = group.rvec
    p[:, 3:6] = group.tvec
    p[:, 6] = 1.0
    p[:, 7] = group.dist[:, 0]
    return p


def _apply_params(group: CameraGroup, params: np.ndarray) -> CameraGroup:
    cams = []
    for c, p in zip(group.cameras, params.reshape(len(group), N_CAM_PARAMS)):
        K = np.array(c.K, float, copy=True)
        K[0, 0] *= p[6]
        K[1, 1] *= p[6]
        dist = np.array(c.dist, float, copy=True)
        dist[0] = p[7]
        cams.append(Camera(c.name, c.size, K, dist, p[0:3].copy(), p[3:6].copy()))
    return CameraGroup(tuple(cams), group.setting)


def _project(params, points, K0, dist0, views, point_idx):
    """Distorted pixel projections of each observation (M_obs, 2)."""
    p = params
    R = rodrigues_to_matrix(p[:, 0:3])[views]
    X = points[point_idx]
    cam = np.einsum("nij,nj->ni", R, X) + p[views, 3:6]
    xy = cam[:, :2] / cam[:, 2:3]
    dist = dist0[views].copy()
    dist[:, 0] = p[views, 7]
    xy = distort_normalized(xy, dist)
    K = K0[views]
    s = p[views, 6]
    return np.stack([K[:, 0, 0] * s * xy[:, 0] + K[:, 0, 1] * xy[:, 1] + K[:, 0, 2],
                     K[:, 1, 1] * s * xy[:, 1] + K[:, 1, 2]], axis=-1)


def _centers(params):
    R = rodrigues_to_matrix(params[:, 0:3])
    return -np.einsum("vji,vj->vi", R, params[:, 3:6])


def _adjust(group: CameraGroup, obs_xy, views, point_idx, points0, cfg: CalibrationConfig, init_params):
    V = len(group)
    P = points0.shape[0]
    K0, dist0 = group.K, group.dist
    p0 = _cam_params(group)
    c_init = _centers(init_params)
    free = np.ones(N_CAM_PARAMS, bool)
    free[6] = cfg.refine_focal
    free[7] = cfg.refine_distortion
    n_free = int(free.sum())
    prior_r = 1.0 / np.radians(cfg.prior_deg)
    prior_c = 1.0 / cfg.prior_cm

    def unpack(x):
        cp = p0.copy()
        cp[:, free] = x[:V * n_free].reshape(V, n_free)
        return cp, x[V * n_free:].reshape(P, 3)

    def fun(x):
        cp, X = unpack(x)
        r = (_project(cp, X, K0, dist0, views, point_idx) - obs_xy).ravel()
        pr = np.concatenate([((cp[:, 0:3] - init_params[:, 0:3]) * prior_r).ravel(),
                             ((_centers(cp) - c_init) * prior_c).ravel()])
        return np.concatenate([r, pr])

    n_obs = len(views)
    rows, cols = [], []
    ob = np.arange(n_obs)
    for k in range(2):
        for j in range(n_free):
            rows.append(2 * ob + k), cols.append(views * n_free + j)
        for j in range(3):
            rows.append(2 * ob + k), cols.append(V * n_free + point_idx * 3 + j)
    base = 2 * n_obs
    for v in range(V):
        for a in range(6):  # rotation prior rows 0..3V, centre prior rows 3V..6V: depend on this camera's r, t
            row = base + (v * 3 + a if a < 3 else 3 * V + v * 3 + a - 3)
            for j in range(n_free):
                rows.append(np.array([row])), cols.append(np.array([v * n_free + j]))
    rows = np.concatenate(rows)
    cols = np.concatenate(cols)
    sparsity = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(base + 6 * V, V * n_free + 3 * P)).tocsr()
    x0 = np.concatenate([p0[:, free].ravel(), points0.ravel()])
    res = least_squares(fun, x0, jac_sparsity=sparsity, loss="soft_l1", f_scale=cfg.loss_scale_px,
                        x_scale="jac", method="trf", tr_solver="lsmr", max_nfev=cfg.max_nfev, ftol=1e-6)
    cp, _ = unpack(res.x)
    return _apply_params(group, cp)


def observation_error(cameras: CameraGroup, keypoints2d: np.ndarray,
                      conf_threshold: float = CalibrationConfig.conf_threshold,
                      inlier_threshold_px: float = DEFAULT.inlier_threshold_px) -> np.ndarray:
    """Pixel errors of every observation (V, M) with confidence >= ``conf_threshold`` against the robust
    triangulation (with these cameras) of its point; NaN elsewhere. keypoints2d: (V, M, 3) or (V, N, J, 3)."""
    kp = np.asarray(keypoints2d, np.float64).reshape(len(cameras), -1, 3)
    r = triangulate_robust(kp, cameras, conf_threshold=conf_threshold, inlier_threshold_px=inlier_threshold_px)
    err = reprojection_errors(r.keypoints3d, kp, cameras)
    use = np.isfinite(kp).all(-1) & (kp[..., 2] >= conf_threshold)
    return np.where(use, err, np.nan)


def bundle_adjust(keypoints2d: np.ndarray, cameras: CameraGroup,
                  config: CalibrationConfig = CalibrationConfig()) -> CalibrationResult:
    """Refine ``cameras`` from 2D keypoints (V, M, 3) px + confidence (frames x joints of any sequences, flattened).

    Returns a :class:`CalibrationResult` whose ``initial_error_px`` / ``final_error_px`` are the median
    :func:`observation_error` of the confident observations with the initial and the refined cameras.
    """
    kp = np.asarray(keypoints2d, np.float64)
    V = len(cameras)
    if kp.shape[0] != V or kp.shape[-1] != 3:
        raise AistppError(f"keypoints2d must be (V={V}, ..., 3), got shape {kp.shape}")
    kp = kp.reshape(V, -1, 3)
    use = np.isfinite(kp).all(-1) & (kp[..., 2] >= config.conf_threshold)
    kp = np.where(use[..., None], kp, np.nan)
    candidates = np.flatnonzero(use.sum(0) >= config.min_views)
    if len(candidates) < 50:
        raise AistppError(f"only {len(candidates)} points are seen in >= {config.min_views} views with confidence "
                          f">= {config.conf_threshold}; too few to calibrate")
    rng = np.random.default_rng(config.seed)
    init_params = _cam_params(cameras)
    group = cameras
    e0 = float(np.nanmedian(observation_error(group, kp, config.conf_threshold)))
    result = CalibrationResult(cameras=group, initial_error_px=e0, final_error_px=e0)
    for thr in config.thresholds_px:
        pick = rng.choice(candidates, size=min(config.n_points, len(candidates)), replace=False)
        sub = kp[:, pick]
        tri = triangulate_robust(sub, group, conf_threshold=config.conf_threshold, inlier_threshold_px=thr)
        inl = tri.inliers & np.isfinite(tri.keypoints3d).all(-1)[None]
        keep = inl.sum(0) >= 2
        inl = inl[:, keep]
        X0 = tri.keypoints3d[keep]
        views, pidx = np.nonzero(inl)
        obs = sub[:, keep][views, pidx, :2]
        group = _adjust(group, obs, views, pidx, X0, config, init_params)
        err = float(np.nanmedian(observation_error(group, kp, config.conf_threshold)))
        result.rounds.append({"threshold_px": thr, "points": int(keep.sum()), "observations": int(len(views)),
                              "median_error_px": err})
        log.info("bundle adjustment round (threshold %.0f px): %d points, median error %.2f px",
                 thr, keep.sum(), err)
    result.cameras = group
    result.final_error_px = result.rounds[-1]["median_error_px"] if result.rounds else e0
    return result
