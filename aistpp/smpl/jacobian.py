"""Exact Jacobian of the COCO-17 keypoints of SMPL with respect to the axis-angle pose (the per-frame
Levenberg-Marquardt stage of :mod:`aistpp.smpl.fit` uses it): lever arms along the kinematic chain, SO(3) right
Jacobians, and the face vertices' pose-corrective blend shapes."""

from __future__ import annotations

import numpy as np
import torch

from aistpp.smpl.joints import COCO17_FROM_SMPL, KeypointLayer, axis_angle_to_matrix, skew as _skew


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

