"""COCO-17 <-> SMPL correspondence and a fast keypoint-only SMPL forward pass.

COCO-17 body points come from SMPL joints, face points from the smplx face vertices; left is the subject's left on
both sides (SMPL joint 16 = left shoulder sits at +x in the rest pose, and COCO index 5 = left_shoulder). The
official AIST++ fitting code before March 2021 and OpenPose's usual maps were mirrored; ours is not (tested).

:class:`KeypointLayer` computes exactly what ``smplx.SMPL.forward`` would give for the 24 joints and the 5 face
vertices, without skinning the other 6885 vertices (about 100x less work), so a whole sequence fits in one batch.
"""

from __future__ import annotations

import numpy as np
import torch

from aistpp.skeleton import COCO17

# SMPL joint indices (left = subject's left).
SMPL_JOINT_OF_COCO = {
    "left_shoulder": 16, "right_shoulder": 17, "left_elbow": 18, "right_elbow": 19,
    "left_wrist": 20, "right_wrist": 21, "left_hip": 1, "right_hip": 2,
    "left_knee": 4, "right_knee": 5, "left_ankle": 7, "right_ankle": 8,
}
# smplx vertex ids (vertex_ids['smplh']) for the COCO face points.
SMPL_VERTEX_OF_COCO = {"nose": 332, "left_eye": 2800, "right_eye": 6260, "left_ear": 583, "right_ear": 4071}
FACE_VERTEX_IDS = tuple(SMPL_VERTEX_OF_COCO[n] for n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear"))

# Index of each COCO-17 keypoint in the concatenation [24 SMPL joints, 5 face vertices (FACE_VERTEX_IDS order)].
COCO17_FROM_SMPL = np.array([
    24 + FACE_VERTEX_IDS.index(SMPL_VERTEX_OF_COCO[n]) if n in SMPL_VERTEX_OF_COCO else SMPL_JOINT_OF_COCO[n]
    for n in COCO17
], dtype=np.int64)


def smpl_to_coco17(joints24, face5):
    """SMPL joints (..., 24, 3) + face vertices (..., 5, 3) (nose, left eye, right eye, left ear, right ear)
    -> COCO-17 keypoints (..., 17, 3). Works on numpy arrays and torch tensors."""
    if isinstance(joints24, torch.Tensor):
        return torch.cat([joints24, face5], dim=-2)[..., torch.as_tensor(COCO17_FROM_SMPL, device=joints24.device),
                                                    :]
    return np.concatenate([joints24, face5], axis=-2)[..., COCO17_FROM_SMPL, :]


def skew(v: torch.Tensor) -> torch.Tensor:
    """(..., 3) -> (..., 3, 3) cross-product matrix [v]_x (the one implementation in the package)."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(v.shape[:-1] + (3, 3))


def axis_angle_to_matrix(axis_angle) -> torch.Tensor:
    """Rodrigues: axis-angle (..., 3) radians (tensor or array) -> rotation matrix (..., 3, 3); the one torch
    implementation in the package (also :func:`aistpp.data.motion.axis_angle_to_matrix`).

    R = I + a [v]x + b [v]x^2 with a = sin(t)/t, b = (1 - cos t)/t^2, t = |v|; Taylor series below t = 1e-3 so the
    value and the gradient are finite at t = 0.
    """
    v = axis_angle if isinstance(axis_angle, torch.Tensor) else torch.as_tensor(np.asarray(axis_angle))
    if not v.is_floating_point():
        v = v.to(torch.float32)
    if v.dim() < 1 or v.shape[-1] != 3:
        from aistpp.errors import AistppError

        raise AistppError(f"axis_angle_to_matrix: expected shape (..., 3), got {tuple(v.shape)}")
    t2 = (v * v).sum(-1, keepdim=True)[..., None]  # (..., 1, 1)
    small = t2 < 1e-6
    t2_safe = torch.where(small, torch.ones_like(t2), t2)
    t = torch.sqrt(t2_safe)
    a = torch.where(small, 1 - t2 / 6 + t2 * t2 / 120, torch.sin(t) / t)
    b = torch.where(small, 0.5 - t2 / 24 + t2 * t2 / 720, (1 - torch.cos(t)) / t2_safe)
    k = skew(v)
    eye = torch.eye(3, dtype=v.dtype, device=v.device).expand(k.shape)
    return eye + a * k + b * (k @ k)


class KeypointLayer(torch.nn.Module):
    """SMPL forward for the 24 joints and the 5 COCO face vertices only, from a loaded ``smplx.SMPL`` module.

    Buffers: rest joints (24, 3) for the given betas, the face vertices' shaped rest positions (5, 3), their
    pose-corrective basis (207, 15) and skinning weights (5, 24). ``forward(poses (B, 72))`` returns joints
    (B, 24, 3) and face vertices (B, 5, 3) in the model's units (metres for SMPL), no translation or scale --
    identical to ``smplx.SMPL(global_orient, body_pose, betas).joints[:, :24]`` and ``.vertices[:, FACE_VERTEX_IDS]``.
    """

    def __init__(self, body_model, betas=None, dtype=torch.float32):
        super().__init__()
        with torch.no_grad():
            nb = body_model.shapedirs.shape[-1]
            b = torch.zeros(nb, dtype=body_model.shapedirs.dtype, device=body_model.shapedirs.device)
            if betas is not None:
                betas = torch.as_tensor(np.asarray(betas, np.float64).reshape(-1)[:nb], dtype=b.dtype)
                b[: len(betas)] = betas.to(b.device)
            v_shaped = body_model.v_template + (body_model.shapedirs * b).sum(-1)       # (V, 3)
            rest = body_model.J_regressor @ v_shaped                                    # (24, 3)
            ids = torch.as_tensor(FACE_VERTEX_IDS, device=v_shaped.device)
            cols = (ids[:, None] * 3 + torch.arange(3, device=ids.device)).reshape(-1)
            self.register_buffer("rest_joints", rest.to(dtype))
            self.register_buffer("face_rest", v_shaped[ids].to(dtype))
            self.register_buffer("face_posedirs", body_model.posedirs[:, cols].to(dtype))  # (207, 15)
            self.register_buffer("face_weights", body_model.lbs_weights[ids].to(dtype))     # (5, 24)
        self.parents = [int(p) for p in body_model.parents.cpu().tolist()]
        self.parents[0] = -1
        # rest offsets of each joint from its parent
        offsets = self.rest_joints.clone()
        offsets[1:] = self.rest_joints[1:] - self.rest_joints[self.parents[1:]]
        self.register_buffer("offsets", offsets)

    def kinematics(self, poses: torch.Tensor):
        """poses (B, 72) -> global rotations (B, 24, 3, 3), joints (B, 24, 3), face vertices (B, 5, 3), and each
        face vertex as moved by each joint's transform alone (B, 5, 24, 3) (the face vertex is their
        skinning-weighted sum)."""
        bsz = poses.shape[0]
        rot = axis_angle_to_matrix(poses.reshape(bsz, 24, 3))                             # (B, 24, 3, 3)
        glob_r = [rot[:, 0]]
        glob_t = [self.offsets[0].expand(bsz, 3)]
        for j in range(1, 24):
            p = self.parents[j]
            glob_r.append(glob_r[p] @ rot[:, j])
            glob_t.append(glob_t[p] + (glob_r[p] @ self.offsets[j][:, None])[..., 0])
        rots = torch.stack(glob_r, dim=1)                                                  # (B, 24, 3, 3)
        joints = torch.stack(glob_t, dim=1)                                                # (B, 24, 3)
        eye = torch.eye(3, dtype=poses.dtype, device=poses.device)
        pose_feature = (rot[:, 1:] - eye).reshape(bsz, 207)
        face = self.face_rest + (pose_feature @ self.face_posedirs).reshape(bsz, 5, 3)   # (B, 5, 3) posed rest
        # LBS: x' = sum_j w_j (R_j (x - rest_j) + joint_j)
        per_joint = torch.einsum("bjmn,bvjn->bvjm", rots, face[:, :, None] - self.rest_joints) + joints[:, None]
        face = torch.einsum("vj,bvjm->bvm", self.face_weights, per_joint)
        return rots, joints, face, per_joint

    def forward(self, poses: torch.Tensor):
        """poses (B, 72) axis-angle -> joints (B, 24, 3), face vertices (B, 5, 3)."""
        _, joints, face, _ = self.kinematics(poses)
        return joints, face

    def keypoints(self, poses: torch.Tensor) -> torch.Tensor:
        """poses (B, 72) -> COCO-17 keypoints (B, 17, 3) in model units, no translation or scale."""
        joints, face = self(poses)
        return smpl_to_coco17(joints, face)


def _layer_for(body_model, betas=None) -> KeypointLayer:
    key = None if betas is None else tuple(np.round(np.asarray(betas, float).reshape(-1), 8))
    cache = body_model.__dict__.setdefault("_aistpp_keypoint_layers", {})
    if key not in cache:
        cache[key] = KeypointLayer(body_model, betas).to(body_model.v_template.device)
    return cache[key]


def _motion_forward(body_model, smpl_poses, smpl_trans, smpl_scaling, betas=None, batch: int = 4096):
    poses = np.asarray(smpl_poses, np.float32).reshape(-1, 72)
    trans = np.asarray(smpl_trans, np.float64).reshape(-1, 3)
    scale = float(np.asarray(smpl_scaling, np.float64).reshape(-1)[0])
    if len(trans) != len(poses):
        raise ValueError(f"smpl_poses has {len(poses)} frames but smpl_trans {len(trans)}")
    layer = _layer_for(body_model, betas)
    device = layer.rest_joints.device
    joints, face = [], []
    with torch.no_grad():
        for s in range(0, len(poses), batch):
            j, f = layer(torch.as_tensor(poses[s:s + batch], device=device))
            joints.append(j.double().cpu().numpy())
            face.append(f.double().cpu().numpy())
    joints = np.concatenate(joints) if joints else np.zeros((0, 24, 3))
    face = np.concatenate(face) if face else np.zeros((0, 5, 3))
    return scale * joints + trans[:, None], scale * face + trans[:, None]


def joints_from_motion(body_model, smpl_poses, smpl_trans, smpl_scaling, betas=None) -> np.ndarray:
    """Official motion (smpl_poses (N, 72), smpl_trans (N, 3) cm, smpl_scaling (1,)) -> SMPL joints (N, 24, 3) cm:
    ``smpl_scaling * SMPL(pose, betas).joints + smpl_trans`` (float64)."""
    return _motion_forward(body_model, smpl_poses, smpl_trans, smpl_scaling, betas)[0]


def keypoints_from_motion(body_model, smpl_poses, smpl_trans, smpl_scaling, betas=None) -> np.ndarray:
    """Official motion -> COCO-17 keypoints (N, 17, 3) cm (float64), subject-left = COCO left."""
    joints, face = _motion_forward(body_model, smpl_poses, smpl_trans, smpl_scaling, betas)
    return smpl_to_coco17(joints, face)
