"""Motion representation helpers: axis-angle <-> rotation matrix <-> 6D, and the FACT 219/225-d motion vector.

All rotation functions are torch, batched over any leading dims ``(...)`` and differentiable. Conventions:

* axis-angle ``(..., 3)``: the rotation vector (unit axis times angle in radians), as ``smpl_poses`` stores it and
  as ``scipy.spatial.transform.Rotation.from_rotvec`` reads it;
* rotation matrix ``(..., 3, 3)``: acts on column vectors, ``x' = R @ x`` (scipy's ``as_matrix``);
* 6D ``(..., 6)``: the first two ROWS of the matrix, ``R[..., :2, :]`` flattened (Zhou et al. 2019, in the
  row layout PyTorch3D uses), so it is also the first 6 numbers of a row-major flattened matrix.

The FACT motion vector per frame (mint ``tools/preprocessing.py`` + ``fact_preprocessing``):

    219-d = [smpl_trans / smpl_scaling (3), rotmat of the 24 SMPL joints, row-major (24 * 9 = 216)]
    225-d = [6 zeros, the 219-d vector]      (mint pads translation from 3 to 9 dims)
"""

from __future__ import annotations

import numpy as np
import torch

from aistpp.errors import AistppError
from aistpp.smpl.joints import axis_angle_to_matrix  # noqa: F401  (the package's one Rodrigues; re-exported)

MOTION_DIM = 219
MOTION_DIM_PADDED = 225
N_JOINTS = 24
_PAD = MOTION_DIM_PADDED - MOTION_DIM


def _as_tensor(x, dtype=None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x if dtype is None else x.to(dtype)
    t = torch.as_tensor(np.asarray(x))
    if dtype is not None:
        t = t.to(dtype)
    elif not t.is_floating_point():
        t = t.to(torch.float32)
    return t


def _check_last(x: torch.Tensor, shape: tuple, name: str) -> None:
    if tuple(x.shape[x.dim() - len(shape):]) != shape or x.dim() < len(shape):
        raise AistppError(f"{name}: expected shape (..., {', '.join(map(str, shape))}), got {tuple(x.shape)}")


def _matrix_to_quaternion(m: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation -> unit quaternion (..., 4) as (w, x, y, z) with w >= 0.

    Computes the four candidate solutions and keeps, per matrix, the one with the largest (best conditioned)
    denominator, so it is stable for every angle including 180 degrees.
    """
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # 4 q_i^2 for i = w, x, y, z
    q_abs4 = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    q_abs = torch.sqrt(torch.clamp(q_abs4, min=1e-12)) * 0.5  # |q_i|, (..., 4)
    # candidate i: quaternion times 4 q_i (row i), so divide by 4 q_i
    cand = torch.stack([
        torch.stack([q_abs4[..., 0], m21 - m12, m02 - m20, m10 - m01], -1),
        torch.stack([m21 - m12, q_abs4[..., 1], m10 + m01, m02 + m20], -1),
        torch.stack([m02 - m20, m10 + m01, q_abs4[..., 2], m12 + m21], -1),
        torch.stack([m10 - m01, m20 + m02, m21 + m12, q_abs4[..., 3]], -1),
    ], -2)  # (..., 4, 4)
    cand = cand / (4 * q_abs[..., None]).clamp(min=1e-6)
    best = q_abs.argmax(-1)  # (...)
    idx = best[..., None, None].expand(best.shape + (1, 4))
    q = torch.gather(cand, -2, idx).squeeze(-2)
    q = q / torch.linalg.norm(q, dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


def matrix_to_axis_angle(matrix) -> torch.Tensor:
    """Rotation matrix (..., 3, 3) -> axis-angle (..., 3), angle in [0, pi] (scipy ``as_rotvec`` convention).

    Input should be a proper rotation; use :func:`orthonormalize` first on a network output.
    """
    m = _as_tensor(matrix)
    _check_last(m, (3, 3), "matrix_to_axis_angle")
    q = _matrix_to_quaternion(m)
    xyz = q[..., 1:]
    s = torch.linalg.norm(xyz, dim=-1, keepdim=True)  # sin(angle / 2)
    angle = 2 * torch.atan2(s, q[..., :1])
    small = s < 1e-4
    s_safe = torch.where(small, torch.ones_like(s), s)
    # angle / sin(angle/2) -> 2 + angle^2 / 12 for small angles
    factor = torch.where(small, 2 + angle * angle / 12, angle / s_safe)
    return xyz * factor


def matrix_to_6d(matrix) -> torch.Tensor:
    """Rotation matrix (..., 3, 3) -> 6D (..., 6): the first two rows, flattened."""
    m = _as_tensor(matrix)
    _check_last(m, (3, 3), "matrix_to_6d")
    return m[..., :2, :].reshape(m.shape[:-2] + (6,))


def rot6d_to_matrix(rot6d) -> torch.Tensor:
    """6D (..., 6) -> rotation matrix (..., 3, 3) by Gram-Schmidt on the two rows (inverse of :func:`matrix_to_6d`
    for a rotation; any non-degenerate 6-vector maps to a proper rotation)."""
    d = _as_tensor(rot6d)
    _check_last(d, (6,), "rot6d_to_matrix")
    a1, a2 = d[..., :3], d[..., 3:]
    b1 = torch.nn.functional.normalize(a1, dim=-1)
    b2 = torch.nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-2)


class _NearestRotation(torch.autograd.Function):
    """R = U diag(1, 1, det(U V^T)) V^T from the SVD M = U S V^T, with the polar-decomposition gradient.

    Autograd through ``torch.linalg.svd`` divides by differences of singular values and returns NaN for an exact
    rotation (all singular values 1). Writing M = R S' (S' = V diag(l) V^T, l = S with the last value signed by
    the determinant) gives dR = R W with W skew and V^T W V = V^T (R^T dM - dM^T R) V / (l_i + l_j): only sums of
    singular values, finite for any nonsingular M. The vector-Jacobian product is dL/dM = 2 R V P V^T with
    P = skew(V^T R^T G V) / (l_i + l_j).
    """

    @staticmethod
    def forward(ctx, m):
        u, sv, vh = torch.linalg.svd(m)
        det = torch.det(u @ vh)
        ones = torch.ones_like(det)
        d = torch.stack([ones, ones, det], -1)
        r = (u * d[..., None, :]) @ vh
        ctx.save_for_backward(r, vh, sv * d)
        return r

    @staticmethod
    def backward(ctx, grad):
        r, vh, lam = ctx.saved_tensors
        v = vh.transpose(-1, -2)
        k = vh @ r.transpose(-1, -2) @ grad @ v
        denom = (lam[..., :, None] + lam[..., None, :])
        denom = torch.where(denom.abs() < 1e-12, torch.full_like(denom, 1e-12), denom)
        p = 0.5 * (k - k.transpose(-1, -2)) / denom
        return 2 * r @ v @ p @ vh


def orthonormalize(matrix) -> torch.Tensor:
    """Nearest rotation (Frobenius norm) to each (..., 3, 3) matrix, by SVD: U diag(1, 1, det(U V^T)) V^T.

    Differentiable with a finite gradient also at exact rotations (see :class:`_NearestRotation`)."""
    m = _as_tensor(matrix)
    _check_last(m, (3, 3), "orthonormalize")
    return _NearestRotation.apply(m)


def _scaling_for(smpl_scaling, trans: torch.Tensor, where: str) -> torch.Tensor:
    """smpl_scaling as a tensor broadcastable to trans (..., N, 3): one value, or one per leading index
    ((...,), (..., 1)), reshaped to (..., 1, 1)."""
    scaling = _as_tensor(smpl_scaling).to(trans.dtype)
    if scaling.numel() == 1:
        return scaling.reshape(())
    lead = tuple(trans.shape[:-2])
    if scaling.numel() != int(np.prod(lead, dtype=np.int64)) or not lead:
        raise AistppError(f"{where}: smpl_scaling of shape {tuple(scaling.shape)} does not match the leading dims "
                          f"{lead} of a (..., N, 3) translation")
    return scaling.reshape(lead + (1, 1))


def encode_motion(smpl_poses, smpl_trans, smpl_scaling, pad: bool = True) -> torch.Tensor:
    """SMPL motion -> FACT motion vectors.

    Args:
        smpl_poses: (..., N, 72) axis-angle, 24 joints.
        smpl_trans: (..., N, 3) cm.
        smpl_scaling: (1,) or scalar, or one per leading index ((...,) or (..., 1)).
        pad: True -> (..., N, 225) with 6 leading zeros (mint layout); False -> (..., N, 219).

    Returns:
        float32 tensor ``[6 zeros if pad, trans / scaling (3), 24 rotmats row-major (216)]``.
    """
    poses = _as_tensor(smpl_poses)
    trans = _as_tensor(smpl_trans)
    _check_last(poses, (72,), "encode_motion smpl_poses")
    _check_last(trans, (3,), "encode_motion smpl_trans")
    if poses.shape[:-1] != trans.shape[:-1]:
        raise AistppError(f"encode_motion: smpl_poses {tuple(poses.shape)} and smpl_trans {tuple(trans.shape)} "
                          "have different frame counts")
    scaling = _scaling_for(smpl_scaling, trans, "encode_motion")
    rot = axis_angle_to_matrix(poses.reshape(poses.shape[:-1] + (N_JOINTS, 3)))
    rot = rot.reshape(poses.shape[:-1] + (N_JOINTS * 9,))
    parts = [(trans / scaling).to(rot.dtype), rot]
    if pad:
        parts.insert(0, rot.new_zeros(rot.shape[:-1] + (_PAD,)))
    return torch.cat(parts, -1).to(torch.float32)


def decode_motion(motion, smpl_scaling=1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """FACT motion vectors (..., N, 225) or (..., N, 219) -> (smpl_poses (..., N, 72), smpl_trans (..., N, 3)).

    The 3x3 blocks are re-orthonormalized by SVD (:func:`orthonormalize`) before conversion to axis-angle, so
    network outputs decode to valid rotations. ``smpl_trans`` is multiplied back by ``smpl_scaling`` (cm when
    the corpus scaling is given; the default 1.0 returns the normalized translation).
    """
    m = _as_tensor(motion)
    if m.shape[-1] == MOTION_DIM_PADDED:
        m = m[..., _PAD:]
    elif m.shape[-1] != MOTION_DIM:
        raise AistppError(f"decode_motion: expected (..., N, 219) or (..., N, 225), got {tuple(m.shape)}")
    trans = m[..., :3]
    rot = orthonormalize(m[..., 3:].reshape(m.shape[:-1] + (N_JOINTS, 3, 3)))
    poses = matrix_to_axis_angle(rot).reshape(m.shape[:-1] + (N_JOINTS * 3,))
    return poses, trans * _scaling_for(smpl_scaling, trans, "decode_motion")
