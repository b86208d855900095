"""Temporal optimization of a whole sequence of 3D keypoints: robust reprojection + smoothness + bone lengths.

The objective follows aniposelib's ``triangulate_optim`` (what produced the official ``keypoints3d_optim``):

- reprojection: pixel residuals of every used view (undistorted points, normalized error times the focal length)
  under a soft-L1 loss ``rho(e) = 2 s^2 (sqrt(1 + (e/s)^2) - 1)`` with scale ``s = reproj_threshold_px`` (15 px);
- smoothness: ``scale_smooth / mean|velocity|`` times the frame-to-frame difference of every coordinate
  (the velocity scale is measured on a median-filtered initial track, as aniposelib does);
- bone lengths: ``scale_length * 100 * (|X_a - X_b| - L_b) / L_b`` for the 14 COCO bones, ``L_b`` free per sequence.

It is solved by Levenberg-Marquardt with iteratively reweighted least squares for the soft-L1 loss. Unknowns are
ordered frame by frame, so the Gauss-Newton matrix is block tridiagonal (51 x 51 blocks; frames couple only through
smoothness), i.e. banded: each step is one banded Cholesky solve, linear in the number of frames. Bone lengths
are updated in closed form between steps. Missing points are linearly interpolated in time for the start and
then held by smoothness and bones. Long sequences are processed in overlapping chunks blended linearly across the
overlap.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.linalg import solveh_banded
from scipy.signal import medfilt

from aistpp.errors import AistppError
from aistpp.io.cameras import CameraGroup
from aistpp.skeleton import BONES
from aistpp.triangulate.config import OFFICIAL
from aistpp.triangulate.dlt import check_keypoints2d, normalize_points, observation_weights

log = logging.getLogger(__name__)


def interpolate_gaps(points: np.ndarray) -> np.ndarray:
    """Linearly interpolate NaN frames of (N, J, 3) along time per joint (edges held); all-NaN joints stay NaN."""
    X = np.array(points, np.float64, copy=True)
    t = np.arange(X.shape[0])
    for j in range(X.shape[1]):
        ok = np.isfinite(X[:, j]).all(-1)
        if ok.all() or not ok.any():
            continue
        for k in range(3):
            X[~ok, j, k] = np.interp(t[~ok], t[ok], X[ok, j, k])
    return X


def _velocity_scale(X: np.ndarray) -> float:
    """aniposelib's smoothness normalizer: 1 / mean |diff| of the median-filtered (7 frames) track (cm/frame)."""
    if X.shape[0] < 2:
        return 1.0
    pad = 12
    Xp = np.pad(X, ((pad, pad), (0, 0), (0, 0)), mode="reflect") if X.shape[0] > pad else X
    med = medfilt(Xp, kernel_size=(7, 1, 1))
    med = med[pad:-pad] if X.shape[0] > pad else med
    v = np.abs(np.diff(med, axis=0))
    m = np.nanmean(v) if np.isfinite(v).any() else np.nan
    return 1.0 / m if np.isfinite(m) and m > 1e-6 else 1.0


class _Problem:
    """One chunk: F frames x J joints. Unknown index ((f * J) + j) * 3 + k."""

    def __init__(self, xy, obs_w, extr, focal, X0, bones, s_reproj, s_smooth, s_length):
        V, F, J = obs_w.shape
        self.V, self.F, self.J = V, F, J
        self.n = F * J * 3
        self.bw = 3 * J  # bandwidth (upper diagonals)
        self.xy, self.obs_w, self.extr, self.focal = xy, obs_w, extr, focal
        self.xy0 = np.nan_to_num(xy)
        self.bones = np.asarray(bones, int).reshape(-1, 2)
        self.s_reproj, self.s_smooth, self.s_length = s_reproj, s_smooth, s_length
        self.X0 = X0

    # -- residual pieces ------------------------------------------------------------------------------------
    def reproj(self, X):
        R, t = self.extr[:, :, :3], self.extr[:, :, 3]
        cam = (X.reshape(1, -1, 3) @ R.transpose(0, 2, 1) + t[:, None, :]).reshape(self.V, self.F, self.J, 3)
        z = cam[..., 2]
        zs = np.where(np.abs(z) < 1e-6, 1e-6, z)
        p = cam[..., :2] / zs[..., None]
        f = self.focal[:, None, None, None]
        r = f * (p - self.xy0)  # (V, F, J, 2) px
        return r, cam, zs, p

    def bone_lengths(self, X):
        d = X[:, self.bones[:, 0]] - X[:, self.bones[:, 1]]  # (F, B, 3)
        return d, np.linalg.norm(d, axis=-1)

    def cost(self, X, L):
        r, *_ = self.reproj(X)
        e2 = (r * r).sum(-1)
        s2 = self.s_reproj ** 2
        c_rep = (self.obs_w * 2 * s2 * (np.sqrt(1 + e2 / s2) - 1)).sum()
        c_smooth = ((self.s_smooth * np.diff(X, axis=0)) ** 2).sum()
        _, ln = self.bone_lengths(X)
        rb = self.s_length * 100 * (ln - L) / L
        return c_rep + c_smooth + (rb ** 2).sum()

    # -- Gauss-Newton system in banded form --------------------------------------------------------------------
    def system(self, X, L):
        """Gauss-Newton matrix ``J^T W J`` in LAPACK upper banded storage ``ab`` (3J + 1, n), ``ab[u + i - j, j]
        = H[i, j]`` for i <= j, and gradient ``g = J^T W r`` (n,) (half the gradient of :meth:`cost` at fixed L)."""
        F, J, n, bw = self.F, self.J, self.n, self.bw
        r, cam, z, p = self.reproj(X)
        e2 = (r * r).sum(-1)
        s2 = self.s_reproj ** 2
        w = self.obs_w / np.sqrt(1 + e2 / s2)  # IRLS weight of soft-L1, (V, F, J)
        R = self.extr[:, :, :3]
        f = self.focal[:, None, None, None]
        # d p / d X = (R_row - p * R_2) / z  -> (V, F, J, 2, 3)
        Jr = (R[:, None, None, :2, :] - p[..., :, None] * R[:, None, None, 2:3, :]) / z[..., None, None]
        Jr = Jr * f[..., None]
        WJ = w[..., None, None] * Jr
        g = np.stack([(WJ[..., i] * r).sum(axis=(0, 3)) for i in range(3)], axis=-1)  # (F, J, 3)
        rows, cols, vals = [], [], []
        base = (np.arange(F)[:, None] * J + np.arange(J)[None, :]) * 3  # (F, J)
        for i in range(3):  # per-point 3x3 blocks sum_v,a w J_ai J_ak
            for k in range(i, 3):
                rows.append((base + i).ravel())
                cols.append((base + k).ravel())
                vals.append((WJ[..., i] * Jr[..., k]).sum(axis=(0, 3)).ravel())
        # smoothness: residual s (X[f+1] - X[f]) per coordinate
        s2m = self.s_smooth ** 2
        diff = np.diff(X, axis=0) * self.s_smooth  # (F-1, J, 3)
        g[:-1] -= self.s_smooth * diff
        g[1:] += self.s_smooth * diff
        if F > 1:
            cnt = np.full((F, J * 3), 2.0)
            cnt[0] = cnt[-1] = 1.0
            idx = np.arange(n)
            rows.append(idx), cols.append(idx), vals.append(cnt.ravel() * s2m)
            i0 = np.arange(n - bw)
            rows.append(i0), cols.append(i0 + bw), vals.append(np.full(n - bw, -s2m))
        # bones: residual c (|X_a - X_b| - L), c = scale_length * 100 / L
        if len(self.bones):
            d, ln = self.bone_lengths(X)
            u = d / np.maximum(ln, 1e-9)[..., None]  # (F, B, 3)
            c = self.s_length * 100 / L  # (B,)
            rb = c * (ln - L)  # (F, B)
            gb = (c * rb)[..., None] * u  # (F, B, 3)
            a, b = self.bones[:, 0], self.bones[:, 1]
            for i, (ja, jb) in enumerate(self.bones):
                g[:, ja] += gb[:, i]
                g[:, jb] -= gb[:, i]
            uu = (c ** 2)[None, :, None, None] * u[..., :, None] * u[..., None, :]  # (F, B, 3, 3)
            ba = (np.arange(F)[:, None] * J + a[None]) * 3
            bb = (np.arange(F)[:, None] * J + b[None]) * 3
            for i in range(3):
                for k in range(3):
                    if k >= i:  # (a, a) and (b, b) blocks: +uu
                        rows += [(ba + i).ravel(), (bb + i).ravel()]
                        cols += [(ba + k).ravel(), (bb + k).ravel()]
                        vals += [uu[..., i, k].ravel(), uu[..., i, k].ravel()]
                    ia, ib = (ba + i).ravel(), (bb + k).ravel()  # (a, b) block: -uu, stored in the upper triangle
                    rows.append(np.minimum(ia, ib)), cols.append(np.maximum(ia, ib))
                    vals.append(-uu[..., i, k].ravel())
        rows = np.concatenate(rows)
        cols = np.concatenate(cols)
        flat = (bw + rows - cols) * n + cols
        ab = np.bincount(flat, weights=np.concatenate(vals), minlength=(bw + 1) * n).reshape(bw + 1, n)
        return ab, g.ravel()

    def update_lengths(self, X):
        """Closed-form minimizer of sum_t ((l_t - L) / L)^2: L = sum l^2 / sum l."""
        _, ln = self.bone_lengths(X)
        return (ln ** 2).sum(0) / np.maximum(ln.sum(0), 1e-9)


def _single_thread_blas():
    """Context limiting BLAS/LAPACK to one thread: the many small dense/banded calls here are 10-50x slower with
    OpenBLAS threads on a busy machine. A no-op when threadpoolctl is missing."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _optimize_chunk(xy, obs_w, extr, focal, X0, bones, cfg) -> np.ndarray:
    with _single_thread_blas():
        return _optimize_chunk_lm(xy, obs_w, extr, focal, X0, bones, cfg)


def _optimize_chunk_lm(xy, obs_w, extr, focal, X0, bones, cfg) -> np.ndarray:
    V, F, J = obs_w.shape
    seen = np.isfinite(X0).all(-1).any(0)  # (J,)
    if not seen.any():
        return np.full(X0.shape, np.nan)
    Xi = interpolate_gaps(X0)
    Xi[:, ~seen] = 0.0
    obs_w = np.where(seen[None, None, :], obs_w, 0.0)  # a joint never triangulated here is left out (stays NaN)
    bones = [b for b in bones if seen[b[0]] and seen[b[1]]]
    s_smooth = cfg["scale_smooth"] * _velocity_scale(Xi[:, seen])
    prob = _Problem(xy, obs_w, extr, focal, Xi, bones, cfg["reproj_threshold_px"], s_smooth, cfg["scale_length"])
    X = Xi.copy()
    L = prob.update_lengths(X) if len(bones) else np.zeros(0)
    if len(bones):
        med = np.median(prob.bone_lengths(X)[1], axis=0)
        L = np.where(np.isfinite(med) & (med > 0), med, 1.0)
    cost = prob.cost(X, L)
    lam = 1e-3
    for it in range(cfg["max_iters"]):
        ab, g = prob.system(X, L)
        diag = ab[-1].copy()
        scale = np.maximum(diag, 1e-6 * max(diag.max(), 1.0))
        accepted = False
        for _ in range(8):
            ab[-1] = diag + lam * scale + 1e-9
            try:
                step = solveh_banded(ab, -g, check_finite=False)
            except np.linalg.LinAlgError:
                lam *= 10
                continue
            Xn = X + step.reshape(X.shape)
            Ln = prob.update_lengths(Xn) if len(bones) else L
            cn = prob.cost(Xn, Ln)
            if np.isfinite(cn) and cn <= cost:
                accepted = True
                break
            lam *= 10
        if not accepted:
            break
        rel = (cost - cn) / max(cost, 1e-12)
        X, L, cost = Xn, Ln, cn
        lam = max(lam / 10, 1e-7)
        log.debug("temporal iter %d cost %.6g (rel %.2e)", it, cost, rel)
        if rel < cfg["ftol"]:
            break
    X[:, ~seen] = np.nan
    return X


def optimize_temporal(keypoints2d: np.ndarray, cameras: CameraGroup, keypoints3d_init: np.ndarray, *,
                      inliers: np.ndarray | None = None, conf_threshold: float = OFFICIAL.conf_threshold,
                      reproj_threshold_px: float = OFFICIAL.reproj_threshold_px,
                      scale_smooth: float = OFFICIAL.scale_smooth, scale_length: float = OFFICIAL.scale_length,
                      bones=BONES, max_iters: int = OFFICIAL.max_iters, ftol: float = OFFICIAL.ftol,
                      chunk_frames: int = OFFICIAL.chunk_frames,
                      chunk_overlap: int = OFFICIAL.chunk_overlap) -> np.ndarray:
    """Jointly optimize a sequence of 3D keypoints against its 2D observations.

    keypoints2d: (V, N, J, 3) px + confidence; keypoints3d_init: (N, J, 3) cm (NaN allowed: gaps are interpolated);
    inliers: optional (V, N, J) bool, views allowed per point (e.g. the robust triangulation's), combined with
    the confidence threshold. Defaults follow the official pipeline (soft-L1 at 15 px, smoothness 4, bone length 2,
    first-order smoothness). Returns (N, J, 3) cm; NaN only for joints never triangulated within a chunk.
    """
    kp = check_keypoints2d(keypoints2d, cameras)
    if kp.ndim != 4:
        raise AistppError(f"keypoints2d must be (V, N, J, 3), got shape {kp.shape}")
    V, N, J, _ = kp.shape
    X0 = np.asarray(keypoints3d_init, np.float64)
    if X0.shape != (N, J, 3):
        raise AistppError(f"keypoints3d_init has shape {X0.shape}, expected {(N, J, 3)}")
    w = observation_weights(kp, conf_threshold, weighted=False)
    if inliers is not None:
        w = w * np.asarray(inliers, bool)
    xy = normalize_points(np.where(w[..., None] > 0, kp, np.nan), cameras)
    w = np.where(np.isfinite(xy).all(-1), w, 0.0)
    extr = cameras.extrinsics
    focal = 0.5 * (cameras.K[:, 0, 0] + cameras.K[:, 1, 1])
    cfg = dict(reproj_threshold_px=float(reproj_threshold_px), scale_smooth=float(scale_smooth),
               scale_length=float(scale_length), max_iters=int(max_iters), ftol=float(ftol))
    if N == 0:
        return X0.copy()
    chunk = max(int(chunk_frames), 2 * int(chunk_overlap) + 1, 10)
    overlap = max(int(chunk_overlap), 0)
    if N <= chunk:
        return _optimize_chunk(xy, w, extr, focal, X0, bones, cfg)
    out = np.zeros((N, J, 3))
    wsum = np.zeros((N, 1, 1))
    start = 0
    while True:
        end = min(start + chunk, N)
        Xc = _optimize_chunk(xy[:, start:end], w[:, start:end], extr, focal, X0[start:end], bones, cfg)
        ramp = np.ones(end - start)
        if start > 0:
            ramp[:overlap] = np.linspace(0, 1, overlap + 2)[1:-1]
        if end < N:
            ramp[-overlap:] = np.minimum(ramp[-overlap:], np.linspace(1, 0, overlap + 2)[1:-1])
        out[start:end] += ramp[:, None, None] * np.nan_to_num(Xc)
        wsum[start:end] += ramp[:, None, None]
        nan_here = ~np.isfinite(Xc)
        out[start:end][nan_here] = np.nan
        if end == N:
            break
        start = end - overlap
    return out / wsum
