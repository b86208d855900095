"""Fit SMPL motion (official AIST++ motions format) to a sequence of COCO-17 3D keypoints, all frames in one batch.

Model: ``keypoints_cm = s * COCO17(SMPL(global_orient, body_pose, betas)) + trans`` with one scale ``s`` per
sequence, betas fixed (0 by default, like the official motions), a translation, global orientation and body pose
per frame, fitted by minimizing a robust energy (:mod:`aistpp.smpl.energy`).

``w`` = confidence or visibility weights (NaN keypoints get 0; short gaps get interpolated targets at a reduced
weight). Gross outliers (farther than 20 cm from their 7-frame temporal median) are left out of the start and of
the per-frame stage, where nothing else tells them from a pose; the full energy sees them through the robust loss.
Initialization is closed form (:mod:`aistpp.smpl.start`). Then (:mod:`aistpp.smpl.solvers`)

1. per-frame Levenberg-Marquardt (all frames batched; analytic Jacobians of the kinematic chain,
   :mod:`aistpp.smpl.jacobian`), iteratively reweighted for the robust loss, with the scale and translations
   updated in closed form between steps -- everything but the temporal term, which couples frames;
2. L-BFGS (strong Wolfe) on the full energy with the temporal term, scale fixed (smoothing would shrink it).

Long sequences: the scale is fitted on frames spread over the whole sequence, then chunks are fitted with the scale
fixed and the previous chunk's last frames as fixed context (warm start, no seam).

The official recipe (aistplusplus_api processing/run_estimate_smpl.py) is plain SGD for 10,000 steps with MSE on
joints and no prior; ``benchmarks/smpl_fit.py`` compares the two.

Modules: this one holds the public API (:class:`FitConfig`, :class:`SMPLFit`, :func:`fit_sequence`) and the targets;
``start`` -> ``jacobian`` / ``energy`` -> ``solvers`` -> ``fit`` import one way.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from aistpp.errors import AistppError
from aistpp.smpl.jacobian import keypoints_and_jacobian, right_jacobian  # noqa: F401  (public names, re-exported)
from aistpp.smpl.joints import KeypointLayer
from aistpp.smpl.solvers import optimize_block
from aistpp.smpl.start import initialize

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitConfig:
    """SMPL fitting settings. The official recipe has no prior or smoothness and 10,000 SGD steps; these defaults
    are ours (robust loss, light priors, L-BFGS)."""

    robust_scale_cm: float = 10.0        # Geman-McClure scale: residuals well above this stop pulling
    smooth_weight: float = 0.5           # acceleration of the joints, cm^2 per frame^2
    pose_prior_weight: float = 0.2       # L2 on body pose (rad^2); keeps unobserved joints (hands, feet) at 0;
                                         # chosen on known truth at 2 cm noise (tests/test_smpl_fit.py): 0.02 and
                                         # 2.0 both give larger keypoint, joint and rotation errors
    hinge_weight: float = 1.0            # knees and elbows behave as hinges
    limit_weight: float = 10.0           # no hyper-extended knees / elbows
    lm_iterations: int = 20              # stage 1: per-frame Levenberg-Marquardt iterations
    iterations: int = 100                # stage 2: L-BFGS iterations on the full energy (adds smoothness)
    lbfgs_history: int = 30
    chunk_size: int = 4000               # frames per batch; longer sequences are chunked with warm start
    chunk_context: int = 2               # fixed frames from the previous chunk (continuity of the smooth term)
    scale_frames: int = 600              # frames (spread over the sequence) that fix the scale when chunking
    fit_scale: bool = True               # False: keep the bone-length estimate of the scale
    gap_frames: int = 15                 # missing keypoints in gaps up to this long get interpolated targets ...
    gap_weight: float = 0.3              # ... with this weight (relative to a confidence of 1)
    device: str | None = None            # None: the body model's device (load it on cuda to fit on the GPU)
    cpu_threads: int | None = 1          # torch threads while fitting on CPU (small per-frame ops: 1 avoids
                                         # oversubscription); None leaves torch's setting alone

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class SMPLFit:
    """A fitted motion in the official AIST++ motions format, plus per-frame error.

    smpl_poses (N, 72) float32 axis-angle; smpl_trans (N, 3) float32 cm; smpl_scaling (1,) float32;
    smpl_loss: weighted mean squared error per coordinate over valid keypoints, cm^2 (the official recipe's MSE);
    per_frame_error (N,) float32 cm: weighted mean keypoint distance per frame (NaN where nothing was valid).
    """

    smpl_poses: np.ndarray
    smpl_trans: np.ndarray
    smpl_scaling: np.ndarray
    smpl_loss: float
    per_frame_error: np.ndarray
    config: FitConfig = dataclasses.field(default_factory=FitConfig)
    seconds: float = float("nan")

    def canonical(self) -> dict:
        """Canonical SMPL at unit scale: poses (N, 72), trans (N, 3) in metres = smpl_trans / smpl_scaling."""
        return {"poses": self.smpl_poses.copy(),
                "trans": (self.smpl_trans / self.smpl_scaling[0]).astype(np.float32)}

    def motion(self) -> dict:
        """The official motions dict (what ``write_motion`` stores)."""
        return {"smpl_poses": self.smpl_poses, "smpl_trans": self.smpl_trans, "smpl_scaling": self.smpl_scaling,
                "smpl_loss": self.smpl_loss}


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _gap_targets(target, w, config: FitConfig):
    """Bridge short gaps: missing keypoints (w == 0) with valid ones on both sides within ``gap_frames`` get a
    linearly interpolated target at ``gap_weight`` (returns (target, weights), or None when nothing to fill)."""
    if config.gap_weight <= 0 or config.gap_frames <= 0 or (w > 0).all():
        return None
    target, w_fit = target.copy(), w.copy()
    t = np.arange(len(w))
    for k in range(w.shape[1]):
        ok = w[:, k] > 0
        if ok.all() or ok.sum() < 2:
            continue
        idx = np.where(ok)[0]
        pos = np.searchsorted(idx, t)
        inside = (~ok) & (pos > 0) & (pos < len(idx))
        prev = idx[np.clip(pos - 1, 0, len(idx) - 1)]
        nxt = idx[np.clip(pos, 0, len(idx) - 1)]
        fill = inside & (nxt - prev <= config.gap_frames + 1)
        if not fill.any():
            continue
        for c in range(3):
            target[fill, k, c] = np.interp(t[fill], idx, target[idx, k, c])
        w_fit[fill, k] = config.gap_weight * np.median(w[ok, k])
    return target, w_fit


def _targets(kp, w, config: FitConfig):
    """(targets (N, 17, 3) with short gaps bridged, their weights (N, 17)) for keypoints kp and weights w."""
    target = np.where(w[..., None] > 0, kp, 0.0)
    filled = _gap_targets(target, w, config)
    return filled if filled is not None else (target, w)


def _without_spikes(kp, w, window: int = 7, max_cm: float = 20.0):
    """Weights (N, 17) with gross outliers zeroed for the closed-form start: keypoints farther than ``max_cm`` from
    the median of their ``window``-frame neighbourhood (a smooth motion stays close to it at 60 fps). The robust
    loss then keeps them from pulling; started on them, the fit would stay in their basin."""
    n = len(kp)
    if n < 3:
        return w
    half = window // 2
    padded = np.pad(kp, ((half, half), (0, 0), (0, 0)), constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, window, axis=0)        # (N, 17, 3, window)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)                               # all-NaN neighbourhoods
        med = np.nanmedian(windows, axis=-1)
    spike = np.linalg.norm(kp - med, axis=-1) > max_cm
    return np.where(spike, 0.0, w)


def fit_sequence(keypoints3d, body_model, config: FitConfig = FitConfig(), weights=None, betas=None) -> SMPLFit:
    """Fit SMPL to COCO-17 keypoints of one sequence.

    keypoints3d (N, 17, 3) cm (NaN = missing); body_model: a ``smplx.SMPL`` from :func:`load_body_model`;
    weights (N, 17) confidences / visibilities >= 0 (default 1; NaN keypoints get 0); betas (10,) or None (= 0).
    Returns :class:`SMPLFit` (official motions format).
    """
    device = config.device or str(body_model.v_template.device)
    threads = torch.get_num_threads()
    if config.cpu_threads and device == "cpu":
        torch.set_num_threads(config.cpu_threads)
    try:
        return _fit_sequence(keypoints3d, body_model, config, weights, betas, device)
    finally:
        torch.set_num_threads(threads)


def _checked_inputs(keypoints3d, weights):
    """(keypoints (N, 17, 3) float64, weights (N, 17): 0 where the keypoint or its weight is not finite)."""
    kp = np.asarray(keypoints3d, dtype=np.float64)
    if kp.ndim != 3 or kp.shape[1:] != (17, 3) or len(kp) == 0:
        raise AistppError(f"keypoints3d must have shape (N, 17, 3) with N > 0, got {kp.shape}")
    w = np.ones(kp.shape[:2]) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != kp.shape[:2]:
        raise AistppError(f"weights must have shape {kp.shape[:2]}, got {w.shape}")
    w = np.where(np.isfinite(kp).all(-1) & np.isfinite(w), np.clip(w, 0, None), 0.0)
    if not (w > 0).any():
        raise AistppError("no valid keypoints to fit")
    return kp, w


def _fit_chunked(layer, config: FitConfig, target, w_fit, lm_data, start):
    """Sequences longer than ``chunk_size``: the scale from frames spread over the whole sequence, then chunks with
    the scale fixed and the previous chunk's last frames as fixed context (warm start). -> (orient, body, trans,
    scale)."""
    target_lm, w_lm = lm_data
    scale0, orient0, body0, trans0 = start
    n, device = len(target), layer.rest_joints.device
    scale = scale0
    # 1) the scale, from frames spread over the whole sequence (no smoothness: they are not consecutive)
    if config.fit_scale:
        sub = np.unique(np.linspace(0, n - 1, min(config.scale_frames, n)).round().astype(int))
        scale = optimize_block(layer, target[sub], w_fit[sub], config, scale0, orient0[sub], body0[sub],
                               trans0[sub], True, smooth=False, lm_data=(target_lm[sub], w_lm[sub]))[3]
    # 2) chunks with the scale fixed; the previous chunk's last frames are fixed context (warm start)
    orient = torch.zeros(n, 3, dtype=layer.rest_joints.dtype, device=device)
    body = torch.zeros(n, 69, dtype=orient.dtype, device=device)
    trans = torch.zeros(n, 3, dtype=orient.dtype, device=device)
    context = None
    for first in range(0, n, config.chunk_size):
        sl = slice(first, min(n, first + config.chunk_size))
        o, b, t, _, pts = optimize_block(layer, target[sl], w_fit[sl], config, scale, orient0[sl], body0[sl],
                                         trans0[sl], False, context=context, lm_data=(target_lm[sl], w_lm[sl]))
        orient[sl], body[sl], trans[sl] = o, b, t
        context = pts[-config.chunk_context:] if config.chunk_context > 0 else None
        log.debug("fit frames %d-%d", sl.start, sl.stop)
    return orient, body, trans, scale


def _fit_sequence(keypoints3d, body_model, config, weights, betas, device) -> SMPLFit:
    t0 = time.perf_counter()
    kp, w = _checked_inputs(keypoints3d, weights)
    target, w_fit = _targets(kp, w, config)
    w_init = _without_spikes(np.where(w[..., None] > 0, kp, np.nan), w)   # start and per-frame stage: no spikes
    target_lm, w_lm = _targets(kp, w_init, config)
    layer = KeypointLayer(body_model, betas).to(device)

    start = initialize(np.where(w_init[..., None] > 0, kp, np.nan), w_init, layer)
    n = len(kp)
    if n <= config.chunk_size:
        orient, body, trans, scale, _ = optimize_block(layer, target, w_fit, config, *start, config.fit_scale,
                                                       lm_data=(target_lm, w_lm))
    else:
        orient, body, trans, scale = _fit_chunked(layer, config, target, w_fit, (target_lm, w_lm), start)
    poses = torch.cat([orient, body], dim=1).cpu().numpy().astype(np.float32)
    trans_np = trans.cpu().numpy().astype(np.float32)
    per_frame, loss = _errors(layer, poses, trans_np, scale, kp, w)
    seconds = time.perf_counter() - t0
    log.info("SMPL fit: %d frames in %.1f s, scale %.2f, mse %.3f cm^2, median error %.2f cm", n, seconds, scale,
             loss, float(np.nanmedian(per_frame)))
    return SMPLFit(smpl_poses=poses, smpl_trans=trans_np, smpl_scaling=np.array([scale], np.float32),
                   smpl_loss=loss, per_frame_error=per_frame, config=config, seconds=seconds)


def _errors(layer, poses, trans, scale, kp, w):
    """(per-frame weighted mean keypoint distance (N,) float32 cm, NaN where nothing was valid; weighted MSE per
    coordinate, cm^2) of the fitted motion, evaluated at float32 like the stored motion."""
    n, device = len(poses), layer.rest_joints.device
    with torch.no_grad():
        model_kp = torch.cat([layer.keypoints(torch.as_tensor(poses[s:s + 4096], device=device))
                              for s in range(0, n, 4096)]).double().cpu().numpy()
    pred = np.float32(scale) * model_kp + trans[:, None].astype(np.float64)
    err = np.linalg.norm(pred - np.where(w[..., None] > 0, kp, 0.0), axis=-1)
    wsum = w.sum(1)
    per_frame = np.where(wsum > 0, (w * err).sum(1) / np.maximum(wsum, 1e-12), np.nan).astype(np.float32)
    loss = float((w * err ** 2).sum() / (3 * w.sum()))
    return per_frame, loss
