"""Closed-form start of the SMPL fit (see :mod:`aistpp.smpl.fit`): scale from bone lengths, root orientation from
hips and shoulders, arms and legs by two-bone inverse kinematics with the elbow/knee as a hinge, translation from the
torso. NumPy in, NumPy out; the body model is only run forward."""

from __future__ import annotations

import numpy as np
import torch

from aistpp.errors import AistppError
from aistpp.smpl.joints import KeypointLayer

# Two-bone chains: (SMPL upper, lower, end joint), (COCO upper, lower, end), flexion direction in the rest frame.
_LIMBS = (
    ((16, 18, 20), (5, 7, 9), (0.0, 0.0, 1.0)),      # left arm: elbow bends forward
    ((17, 19, 21), (6, 8, 10), (0.0, 0.0, 1.0)),     # right arm
    ((1, 4, 7), (11, 13, 15), (0.0, 0.0, -1.0)),     # left leg: knee bends backward
    ((2, 5, 8), (12, 14, 16), (0.0, 0.0, -1.0)),     # right leg
)
_SCALE_BONES = ((5, 7), (7, 9), (6, 8), (8, 10), (11, 13), (13, 15), (12, 14), (14, 16), (5, 6))
_TORSO = (5, 6, 11, 12)
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
