"""Fit SMPL motion (official AIST++ motions format) to a sequence of COCO-17 3D keypoints, all frames in one batch.

Model: ``keypoints_cm = s * COCO17(SMPL(global_orient, body_pose, betas)) + trans`` with one scale ``s`` per
sequence, betas fixed (0 by default, like the official motions), a translation, global orientation and body pose
per frame.

Energy (summed over frames t; x = model points, y = keypoints, both cm)::

    E = sum_t [ sum_k w_tk rho(|x_tk - y_tk|) / mean_t(sum_k w_tk)          robust data term (Geman-McClure)
              + smooth_weight * mean_29 points |x_t+1 - 2 x_t + x_t-1|^2    24 joints + 5 face points
              + pose_prior_weight * |body_pose_t|^2                           (rad^2)
              + hinge_weight * (knee twist/ab-duction^2 + elbow ab-duction^2)
              + limit_weight * (knee / elbow hyper-extension^2) ]

``w`` = confidence or visibility weights (NaN keypoints get 0; short gaps get interpolated targets at a reduced
weight). Gross outliers (farther than 20 cm from their 7-frame temporal median) are left out of the start and of
the per-frame stage, where nothing else tells them from a pose; the full energy sees them through the robust loss. Initialization is closed form: scale from bone lengths, root orientation from hips and shoulders, arms and
legs by two-bone inverse kinematics with the elbow/knee as a hinge, translation from the torso. Then

1. per-frame Levenberg-Marquardt (all frames batched; analytic Jacobians of the kinematic chain, 75 x 75 solves per
   frame), iteratively reweighted for the robust loss, with the scale and translations updated in closed form
   between steps -- everything but the temporal term, which couples frames;
2. L-BFGS (strong Wolfe) on the full energy with the temporal term, scale fixed (smoothing would shrink it).

Long sequences: the scale is fitted on frames spread over the whole sequence, then chunks are fitted with the scale
fixed and the previous chunk's last frames as fixed context (warm start, no seam).

The official recipe (aistplusplus_api processing/run_estimate_smpl.py) is plain SGD for 10,000 steps with MSE on
joints and no prior; ``benchmarks/smpl_fit.py`` compares the two.
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
from aistpp.smpl.joints import COCO17_FROM_SMPL, KeypointLayer, axis_angle_to_matrix, skew as _skew

log = logging.getLogger(__name__)

# Two-bone chains: (SMPL upper, lower, end joint), (COCO upper, lower, end), flexion direction in the rest frame.
_LIMBS = (
    ((16, 18, 20), (5, 7, 9), (0.0, 0.0, 1.0)),      # left arm: elbow bends forward
    ((17, 19, 21), (6, 8, 10), (0.0, 0.0, 1.0)),     # right arm
    ((1, 4, 7), (11, 13, 15), (0.0, 0.0, -1.0)),     # left leg: knee bends backward
    ((2, 5, 8), (12, 14, 16), (0.0, 0.0, -1.0)),     # right leg
)
_SCALE_BONES = ((5, 7), (7, 9), (6, 8), (8, 10), (11, 13), (13, 15), (12, 14), (14, 16), (5, 6))
_TORSO = (5, 6, 11, 12)


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


# --------------------------------------------------------------------------------------------- initialization

def _normalize(v, eps=1e-9):
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), eps)


def _fill_gaps(kp: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Linear interpolation over time of invalid keypoints (N, 17, 3); joints never valid stay NaN."""
    out = kp.copy()
    t = np.arange(len(kp))
    for k in range(kp.shape[1]):
        ok = valid[:, k]
        if ok.all() or not ok.any():
            if not ok.any():
                out[:, k] = np.nan
            continue
        for c in range(3):
            out[~ok, k, c] = np.interp(t[~ok], t[ok], kp[ok, k, c])
    return out


def _body_frame(kp):
    """(..., 17, 3) -> rotation (..., 3, 3) whose columns are subject-left, up, forward."""
    left = (kp[..., 11, :] - kp[..., 12, :]) + (kp[..., 5, :] - kp[..., 6, :])
    up = _normalize((kp[..., 5, :] + kp[..., 6, :]) / 2 - (kp[..., 11, :] + kp[..., 12, :]) / 2)
    left = _normalize(left - (left * up).sum(-1, keepdims=True) * up)
    return np.stack([left, up, np.cross(left, up)], axis=-1)


def _frame_from(u, a):
    """Rotation with columns (u, a, u x a) for orthonormal u, a (..., 3)."""
    return np.stack([u, a, np.cross(u, a)], axis=-1)


def _swing(r, d):
    """Smallest rotations (..., 3, 3) taking unit vectors r (3,) to unit vectors d (..., 3)."""
    from scipy.spatial.transform import Rotation

    axis = np.cross(np.broadcast_to(r, d.shape), d)
    s = np.linalg.norm(axis, axis=-1, keepdims=True)
    c = (d * r).sum(-1, keepdims=True)
    angle = np.arctan2(s, c)
    fallback = np.cross(r, [1.0, 0, 0]) if abs(r[0]) < 0.9 else np.cross(r, [0, 1.0, 0])
    axis = np.where(s > 1e-9, axis / np.maximum(s, 1e-12), _normalize(fallback))
    return Rotation.from_rotvec((axis * angle).reshape(-1, 3)).as_matrix().reshape(d.shape[:-1] + (3, 3))


def initialize(keypoints3d, weights, layer: KeypointLayer):
    """Closed-form start: (scale, global_orient (N, 3), body_pose (N, 69), trans (N, 3) cm)."""
    from scipy.spatial.transform import Rotation

    valid = weights > 0
    kp = _fill_gaps(keypoints3d, valid)
    with torch.no_grad():
        zero = torch.zeros(1, 72, dtype=layer.rest_joints.dtype, device=layer.rest_joints.device)
        rest_kp = layer.keypoints(zero)[0].double().cpu().numpy()
    rest_j = layer.rest_joints.double().cpu().numpy()
    # scale: median ratio of bone lengths
    ratios = []
    for a, b in _SCALE_BONES:
        ok = valid[:, a] & valid[:, b]
        if ok.sum():
            ratios.append(np.median(np.linalg.norm(keypoints3d[ok, a] - keypoints3d[ok, b], axis=-1))
                          / np.linalg.norm(rest_kp[a] - rest_kp[b]))
    if not ratios:
        raise AistppError("no frame has a valid limb to estimate the body scale")
    scale = float(np.median(ratios))
    n = len(kp)
    # root orientation from hips and shoulders (frames without a torso: nearest frame that has one)
    root = np.repeat(np.eye(3)[None], n, axis=0)
    has_torso = np.isfinite(kp[:, _TORSO]).all(axis=(1, 2))
    if has_torso.any():
        frames = _body_frame(kp[has_torso])
        root[has_torso] = frames @ _body_frame(rest_kp).T
        idx = np.where(has_torso)[0]
        nearest = idx[np.clip(np.searchsorted(idx, np.arange(n)), 0, len(idx) - 1)]
        root[~has_torso] = root[nearest[~has_torso]]
    pose = np.zeros((n, 24, 3))
    pose[:, 0] = Rotation.from_matrix(root).as_rotvec()
    for (ju, jl, je), (cu, cl, ce), flex in _LIMBS:
        ok = np.isfinite(kp[:, [cu, cl, ce]]).all(axis=(1, 2))
        if not ok.any():
            continue
        r_u = _normalize(rest_j[jl] - rest_j[ju])
        r_l = _normalize(rest_j[je] - rest_j[jl])
        hinge = _normalize(np.cross(r_u, np.asarray(flex)))
        hinge = _normalize(hinge - (hinge @ r_u) * r_u)
        rt = np.swapaxes(root[ok], -1, -2)            # parent (spine / pelvis) frames are the root at init
        d_u = _normalize(np.einsum("nij,nj->ni", rt, kp[ok, cl] - kp[ok, cu]))
        d_l = _normalize(np.einsum("nij,nj->ni", rt, kp[ok, ce] - kp[ok, cl]))
        bend = np.cross(d_u, d_l)
        bent = np.linalg.norm(bend, axis=-1) > np.sin(np.radians(10))
        swing = _swing(r_u, d_u)
        a_new = np.where(bent[:, None], _normalize(bend), np.einsum("nij,j->ni", swing, hinge))
        a_new = _normalize(a_new - (a_new * d_u).sum(-1, keepdims=True) * d_u)
        upper = _frame_from(d_u, a_new) @ _frame_from(r_u, hinge).T   # takes (r_u, hinge) to (d_u, a_new)
        lower = _swing(r_l, np.einsum("nji,nj->ni", upper, d_l))       # in the upper joint's frame
        pose[ok, ju] = Rotation.from_matrix(upper).as_rotvec()
        pose[ok, jl] = Rotation.from_matrix(lower).as_rotvec()
    pose = pose.reshape(n, 72)
    with torch.no_grad():
        model_kp = layer.keypoints(torch.as_tensor(pose, dtype=layer.rest_joints.dtype,
                                                   device=layer.rest_joints.device)).double().cpu().numpy()
    # translation from the torso (observed, else gap-filled keypoints), else from any observed keypoint
    filled_w = np.where(np.isfinite(kp).all(-1), np.where(weights > 0, weights, 1.0), 0.0)
    diff = kp - scale * model_kp
    torso_w = np.zeros_like(weights)
    torso_w[:, list(_TORSO)] = filled_w[:, list(_TORSO)]
    use = np.where(torso_w.sum(1, keepdims=True) > 0, torso_w, filled_w)
    wsum = use.sum(1)
    trans = np.einsum("nk,nkc->nc", use, np.nan_to_num(diff)) / np.maximum(wsum, 1e-9)[:, None]
    if (wsum == 0).any():
        idx = np.where(wsum > 0)[0]
        nearest = idx[np.clip(np.searchsorted(idx, np.arange(n)), 0, len(idx) - 1)]
        trans[wsum == 0] = trans[nearest[wsum == 0]]
    return scale, pose[:, :3], pose[:, 3:], trans


# ------------------------------------------------------------------------------------------------ optimization

def _hinge_and_limits(body_pose: torch.Tensor):
    """(n, 69) -> (hinge penalty (n,), limit penalty (n,)) in rad^2. Knees (SMPL 4, 5) flex about +x, elbows
    (18, 19) about -y (left) / +y (right)."""
    p = body_pose.reshape(-1, 23, 3)
    knees = p[:, [3, 4]]                   # joints 4, 5 (body_pose index = joint - 1)
    elbows = p[:, [17, 18]]                # joints 18, 19
    hinge = (knees[..., 1:] ** 2).sum((-1, -2)) + (elbows[..., 2] ** 2).sum(-1)
    limit = (torch.relu(-knees[..., 0]) ** 2).sum(-1) + torch.relu(elbows[:, 0, 1]) ** 2 \
        + torch.relu(-elbows[:, 1, 1]) ** 2
    return hinge, limit


class _Problem:
    """Energy over a block of n frames, summed over frames (so each frame's parameters see O(1) curvature);
    ``context`` = fixed leading frames (world points, cm) for the smooth term. The scale is
    ``scale0 * exp(z / sqrt(n))`` (z = 0 keeps it fixed, as the L-BFGS stage does)."""

    def __init__(self, layer, target, weights, config: FitConfig, scale0: float, context=None, smooth=True):
        self.layer = layer
        self.target = target
        self.weights = weights
        self.n = target.shape[0]
        self.norm = (weights.sum() / self.n).clamp_min(1e-9)       # mean weight sum per frame
        self.config = config
        self.scale0 = scale0
        self.context = context
        self.smooth = smooth and config.smooth_weight > 0
        self.index = torch.as_tensor(COCO17_FROM_SMPL, device=target.device)

    def scale(self, z):
        return self.scale0 * torch.exp(z / self.n ** 0.5)

    def world(self, orient, body, trans_u, z):
        """World points (n, 29, 3) cm: 24 joints then the 5 face vertices."""
        joints, face = self.layer(torch.cat([orient, body], dim=1))
        return torch.cat([joints, face], dim=1) * self.scale(z) + (self.scale0 * trans_u)[:, None]

    def energy(self, orient, body, trans_u, z, rigid=False):
        pts = self.world(orient, body, trans_u, z)
        r2 = ((pts[:, self.index] - self.target) ** 2).sum(-1)
        sig2 = self.config.robust_scale_cm ** 2
        e = (self.weights * (sig2 * r2 / (sig2 + r2))).sum() / self.norm
        if self.smooth:
            seq = pts if self.context is None else torch.cat([self.context, pts], dim=0)
            if len(seq) >= 3:
                acc = seq[2:] - 2 * seq[1:-1] + seq[:-2]
                e = e + self.config.smooth_weight * (acc ** 2).sum(-1).mean(-1).sum()
        if not rigid:
            e = e + self.config.pose_prior_weight * (body ** 2).sum()
            hinge, limit = _hinge_and_limits(body)
            e = e + self.config.hinge_weight * hinge.sum() + self.config.limit_weight * limit.sum()
        return e


def right_jacobian(rotvec: torch.Tensor) -> torch.Tensor:
    """SO(3) right Jacobian (..., 3, 3): exp(rotvec + d) = exp(rotvec) exp(Jr(rotvec) d) to first order."""
    t2 = (rotvec * rotvec).sum(-1)[..., None, None]
    small = t2 < 1e-6
    t2s = torch.where(small, torch.ones_like(t2), t2)
    t = torch.sqrt(t2s)
    a = torch.where(small, 0.5 - t2 / 24, (1 - torch.cos(t)) / t2s)
    b = torch.where(small, 1 / 6 - t2 / 120, (t - torch.sin(t)) / (t2s * t))
    k = _skew(rotvec)
    return torch.eye(3, dtype=rotvec.dtype, device=rotvec.device) - a * k + b * (k @ k)


def _ancestry(parents) -> np.ndarray:
    """(24, 24): [j, k] = 1 when joint k is joint j or one of its ancestors (k's rotation moves j's subtree)."""
    m = np.zeros((len(parents), len(parents)))
    for j in range(len(parents)):
        k = j
        while k >= 0:
            m[j, k] = 1
            k = parents[k]
    return m


def _posedirs_jacobian(layer: KeypointLayer, poses: torch.Tensor, rots: torch.Tensor) -> torch.Tensor:
    """(n, 5, 3, 72): how the face vertices move through their pose-corrective blend shapes. The posed rest vertex
    is ``face_rest + sum_k (R_k - I) . P_k`` (R_k the local rotation of joint k >= 1) with dR_k = R_k [Jr dtheta]_x,
    then skinned: d face = (sum_j w_j G_j) d rest."""
    n = poses.shape[0]
    local = poses.reshape(n, 24, 3)[:, 1:]
    rot = axis_angle_to_matrix(local)                                                     # (n, 23, 3, 3)
    d_rot = rot[:, :, None] @ _skew(right_jacobian(local).transpose(-1, -2))              # (n, 23, 3i, 3, 3)
    basis = layer.face_posedirs.reshape(23, 3, 3, 5, 3)                                   # [k, a, b, v, c]
    d_rest = torch.einsum("nkiab,kabvc->nvcki", d_rot, basis)                             # (n, 5, 3, 23, 3)
    blend = torch.einsum("vj,njab->nvab", layer.face_weights, rots)                       # (n, 5, 3, 3)
    out = torch.zeros(n, 5, 3, 72, dtype=poses.dtype, device=poses.device)
    out[..., 3:] = torch.einsum("nvab,nvbki->nvaki", blend, d_rest).reshape(n, 5, 3, 69)
    return out


def keypoints_and_jacobian(layer: KeypointLayer, poses: torch.Tensor):
    """poses (n, 72) -> COCO-17 keypoints (n, 17, 3) at unit scale and their exact Jacobian (n, 17, 3, 72) with
    respect to the axis-angle pose, including the face vertices' pose-corrective blend shapes (real SMPL has
    them; the stand-in has them with ``blend_shapes=True``)."""
    n = poses.shape[0]
    rots, joints, face, per_joint = layer.kinematics(poses)
    anc = torch.as_tensor(_ancestry(layer.parents), dtype=poses.dtype, device=poses.device)
    # lever arm of each keypoint about each joint, zero where the joint does not move the keypoint
    body_lever = anc[:, :, None] * (joints[:, :, None] - joints[:, None])                # (n, 24, 24, 3)
    w_anc = layer.face_weights @ anc                                                      # (5, 24)
    face_lever = torch.einsum("vj,jk,nvjc->nvkc", layer.face_weights, anc, per_joint) \
        - w_anc[None, :, :, None] * joints[:, None]                                       # (n, 5, 24, 3)
    lever = torch.cat([body_lever, face_lever], dim=1)[:, torch.as_tensor(COCO17_FROM_SMPL, device=poses.device)]
    omega = rots @ right_jacobian(poses.reshape(n, 24, 3))                               # (n, 24, 3, 3)
    # d p = (omega d theta) x lever  ->  column i: omega[:, :, i] x lever
    cols = torch.cross(omega.transpose(-1, -2)[:, None], lever[:, :, :, None].expand(-1, -1, -1, 3, -1), dim=-1)
    jac = cols.permute(0, 1, 4, 2, 3).reshape(n, 17, 3, 72)
    if bool((layer.face_posedirs != 0).any()):
        face_rows = [i for i, k in enumerate(COCO17_FROM_SMPL) if k >= 24]
        corr = _posedirs_jacobian(layer, poses, rots)
        jac[:, face_rows] += corr[:, [int(COCO17_FROM_SMPL[i]) - 24 for i in face_rows]]
    kp = torch.cat([joints, face], dim=1)[:, torch.as_tensor(COCO17_FROM_SMPL, device=poses.device)]
    return kp, jac


_KNEE_TWIST = [3 * 4 + 1, 3 * 4 + 2, 3 * 5 + 1, 3 * 5 + 2]    # pose indices (72-vector): knee y, z
_ELBOW_ABD = [3 * 18 + 2, 3 * 19 + 2]                            # elbow z
# (pose index, sign): penalty relu(sign * angle): knee x < 0, left elbow y > 0, right elbow y < 0 are hyper-extension
_LIMITS = [(3 * 4, -1.0), (3 * 5, -1.0), (3 * 18 + 1, 1.0), (3 * 19 + 1, -1.0)]


def _prior_terms(x: torch.Tensor, config: FitConfig):
    """Per-frame prior cost (n,), gradient (n, 75) and Gauss-Newton diagonal (n, 75) of the pose priors
    (L2 on body pose, hinge, limits) for x = [pose (72), trans (3)]."""
    grad = torch.zeros_like(x)
    diag = torch.zeros_like(x)
    body = x[:, 3:72]
    cost = config.pose_prior_weight * (body ** 2).sum(-1)
    grad[:, 3:72] += 2 * config.pose_prior_weight * body
    diag[:, 3:72] += 2 * config.pose_prior_weight
    h = x[:, _KNEE_TWIST + _ELBOW_ABD]
    cost = cost + config.hinge_weight * (h ** 2).sum(-1)
    grad[:, _KNEE_TWIST + _ELBOW_ABD] += 2 * config.hinge_weight * h
    diag[:, _KNEE_TWIST + _ELBOW_ABD] += 2 * config.hinge_weight
    for idx, sign in _LIMITS:
        v = torch.relu(sign * x[:, idx])
        cost = cost + config.limit_weight * v ** 2
        grad[:, idx] += 2 * config.limit_weight * sign * v
        diag[:, idx] += 2 * config.limit_weight * (v > 0).to(x.dtype)
    return cost, grad, diag


def _levenberg_marquardt(layer, target, weights, config: FitConfig, scale, x, fit_scale, iterations):
    """Per-frame Levenberg-Marquardt with analytic Jacobians (frames are independent given the scale; no
    smoothness here), iteratively reweighted for the Geman-McClure loss; before each step the scale and the
    translations get their closed-form weighted least-squares update. x (n, 75) = [pose, trans / scale] ->
    (x, scale)."""
    n = x.shape[0]
    norm = float((weights.sum() / n).clamp_min(1e-9))
    sig2 = config.robust_scale_cm ** 2
    mu = torch.full((n, 1), 1e-3, dtype=x.dtype, device=x.device)
    eye3 = torch.eye(3, dtype=x.dtype, device=x.device)

    def data_cost(xx, w_fixed, s):
        kp = layer.keypoints(xx[:, :72])
        r2 = ((s * (kp + xx[:, None, 72:]) - target) ** 2).sum(-1)
        return (w_fixed * r2).sum(-1) / norm

    for it in range(iterations):
        with torch.no_grad():
            kp, jac = keypoints_and_jacobian(layer, x[:, :72])
            r2 = ((scale * (kp + x[:, None, 72:]) - target) ** 2).sum(-1)
            w_irls = weights * sig2 ** 2 / (sig2 + r2) ** 2                               # (n, 17)
            if fit_scale:  # closed form: min over s, u_t of sum w |s (m + u_t) - y|^2
                wt = w_irls.sum(1, keepdim=True).clamp_min(1e-12)
                m_bar = (w_irls[..., None] * kp).sum(1) / wt
                y_bar = (w_irls[..., None] * target).sum(1) / wt
                dm, dy = kp - m_bar[:, None], target - y_bar[:, None]
                scale = float((w_irls[..., None] * dm * dy).sum() / (w_irls[..., None] * dm * dm).sum().clamp_min(1e-12))
                seen = wt[:, 0] > 1e-9            # frames without data keep their translation
                x[seen, 72:] = y_bar[seen] / scale - m_bar[seen]
            res = scale * (kp + x[:, None, 72:]) - target                                  # (n, 17, 3)
            jd = torch.cat([jac, eye3.expand(n, 17, 3, 3)], dim=-1) * scale                # (n, 17, 3, 75)
            wj = (w_irls / norm)[..., None, None] * jd
            jtj = torch.einsum("nkci,nkcj->nij", wj, jd)
            g = torch.einsum("nkci,nkc->ni", wj, res)
            p_cost, p_grad, p_diag = _prior_terms(x, config)
            cost = (w_irls * (res ** 2).sum(-1)).sum(-1) / norm + p_cost
            h = jtj + torch.diag_embed(0.5 * p_diag)
            g = g + 0.5 * p_grad
            damp = mu * (torch.diagonal(h, dim1=1, dim2=2) + 1e-6)
            step = torch.linalg.solve(h + torch.diag_embed(damp), -g)
            x_new = x + step
            new_cost = data_cost(x_new, w_irls, scale) + _prior_terms(x_new, config)[0]
            better = new_cost < cost
            x = torch.where(better[:, None], x_new, x)
            mu = torch.where(better[:, None], mu * 0.3, mu * 10).clamp(1e-8, 1e8)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("LM %d: cost %.4f, accepted %d/%d, scale %.3f", it, float(cost.sum()),
                          int(better.sum()), n, scale)
    return x, scale


def _lbfgs(params, closure, iterations, history):
    if iterations <= 0:
        return
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=iterations, max_eval=int(iterations * 1.25) + 5,
                            history_size=history, tolerance_grad=1e-9, tolerance_change=1e-12,
                            line_search_fn="strong_wolfe")
    opt.step(closure)


def _optimize_block(layer, target, weights, config, scale0, orient0, body0, trans0, fit_scale,
                    context=None, smooth=True, lm_data=None):
    """One block of frames: per-frame Levenberg-Marquardt (robust data + priors, closed-form scale) on ``lm_data``
    = (target, weights) (default the block's; the caller passes them with temporal spikes removed: per frame,
    nothing else tells a gross outlier from a pose), then L-BFGS on the full energy (adds the temporal term and the
    context). Returns (orient, body, trans cm, scale, world points (n, 29, 3) cm), detached."""
    dev, dt = layer.rest_joints.device, layer.rest_joints.dtype
    as_t = lambda a: torch.as_tensor(np.asarray(a), dtype=dt, device=dev)  # noqa: E731
    target_t, weights_t = as_t(target), as_t(weights)
    lm_target, lm_weights = (target_t, weights_t) if lm_data is None else (as_t(lm_data[0]), as_t(lm_data[1]))
    x = torch.cat([as_t(orient0), as_t(body0), as_t(trans0) / scale0], dim=1)
    x, scale = _levenberg_marquardt(layer, lm_target, lm_weights, config, scale0, x, fit_scale,
                                    config.lm_iterations)
    orient = x[:, :3].clone().requires_grad_(True)
    body = x[:, 3:72].clone().requires_grad_(True)
    trans_u = x[:, 72:].clone().requires_grad_(True)
    z = torch.zeros(1, dtype=dt, device=dev)  # the scale stays at LM's estimate: smoothing would shrink it
    prob = _Problem(layer, target_t, weights_t, config, scale, context=context, smooth=smooth)
    params = [orient, body, trans_u]

    def closure():
        torch.set_grad_enabled(True)
        for p in params:
            p.grad = None
        e = prob.energy(orient, body, trans_u, z)
        e.backward()
        return e

    _lbfgs(params, closure, config.iterations, config.lbfgs_history)
    with torch.no_grad():
        pts = prob.world(orient, body, trans_u, z)
        new_scale = float(prob.scale(z))
    return orient.detach(), body.detach(), (trans_u * scale).detach(), new_scale, pts


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


def _fit_sequence(keypoints3d, body_model, config, weights, betas, device) -> SMPLFit:
    t0 = time.perf_counter()
    kp = np.asarray(keypoints3d, dtype=np.float64)
    if kp.ndim != 3 or kp.shape[1:] != (17, 3) or len(kp) == 0:
        raise AistppError(f"keypoints3d must have shape (N, 17, 3) with N > 0, got {kp.shape}")
    w = np.ones(kp.shape[:2]) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != kp.shape[:2]:
        raise AistppError(f"weights must have shape {kp.shape[:2]}, got {w.shape}")
    w = np.where(np.isfinite(kp).all(-1) & np.isfinite(w), np.clip(w, 0, None), 0.0)
    if not (w > 0).any():
        raise AistppError("no valid keypoints to fit")
    target, w_fit = _targets(kp, w, config)
    w_init = _without_spikes(np.where(w[..., None] > 0, kp, np.nan), w)   # start and per-frame stage: no spikes
    target_lm, w_lm = _targets(kp, w_init, config)
    layer = KeypointLayer(body_model, betas).to(device)

    scale0, orient0, body0, trans0 = initialize(np.where(w_init[..., None] > 0, kp, np.nan), w_init, layer)
    n = len(kp)
    if n <= config.chunk_size:
        orient, body, trans, scale, _ = _optimize_block(layer, target, w_fit, config, scale0, orient0, body0, trans0,
                                                        config.fit_scale, lm_data=(target_lm, w_lm))
    else:
        scale = scale0
        # 1) the scale, from frames spread over the whole sequence (no smoothness: they are not consecutive)
        if config.fit_scale:
            sub = np.unique(np.linspace(0, n - 1, min(config.scale_frames, n)).round().astype(int))
            scale = _optimize_block(layer, target[sub], w_fit[sub], config, scale0, orient0[sub], body0[sub],
                                    trans0[sub], True, smooth=False, lm_data=(target_lm[sub], w_lm[sub]))[3]
        # 2) chunks with the scale fixed; the previous chunk's last frames are fixed context (warm start)
        orient = torch.zeros(n, 3, dtype=layer.rest_joints.dtype, device=device)
        body = torch.zeros(n, 69, dtype=orient.dtype, device=device)
        trans = torch.zeros(n, 3, dtype=orient.dtype, device=device)
        context = None
        for start in range(0, n, config.chunk_size):
            sl = slice(start, min(n, start + config.chunk_size))
            o, b, t, _, pts = _optimize_block(layer, target[sl], w_fit[sl], config, scale, orient0[sl], body0[sl],
                                              trans0[sl], False, context=context, lm_data=(target_lm[sl], w_lm[sl]))
            orient[sl], body[sl], trans[sl] = o, b, t
            context = pts[-config.chunk_context:] if config.chunk_context > 0 else None
            log.debug("fit frames %d-%d", sl.start, sl.stop)
    poses = torch.cat([orient, body], dim=1).cpu().numpy().astype(np.float32)
    trans_np = trans.cpu().numpy().astype(np.float32)
    with torch.no_grad():
        model_kp = torch.cat([layer.keypoints(torch.as_tensor(poses[s:s + 4096], device=device))
                              for s in range(0, n, 4096)]).double().cpu().numpy()
    pred = np.float32(scale) * model_kp + trans_np[:, None].astype(np.float64)
    err = np.linalg.norm(pred - np.where(w[..., None] > 0, kp, 0.0), axis=-1)
    wsum = w.sum(1)
    per_frame = np.where(wsum > 0, (w * err).sum(1) / np.maximum(wsum, 1e-12), np.nan).astype(np.float32)
    loss = float((w * err ** 2).sum() / (3 * w.sum()))
    seconds = time.perf_counter() - t0
    log.info("SMPL fit: %d frames in %.1f s, scale %.2f, mse %.3f cm^2, median error %.2f cm", n, seconds, scale,
             loss, float(np.nanmedian(per_frame)))
    return SMPLFit(smpl_poses=poses, smpl_trans=trans_np, smpl_scaling=np.array([scale], np.float32),
                   smpl_loss=loss, per_frame_error=per_frame, config=config, seconds=seconds)
