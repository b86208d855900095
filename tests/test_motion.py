"""aistpp.data.motion against scipy.spatial.transform.Rotation and the official motion pkl."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from aistpp.data.motion import (axis_angle_to_matrix, decode_motion, encode_motion, matrix_to_6d,
                                matrix_to_axis_angle, orthonormalize, rot6d_to_matrix)
from aistpp.errors import AistppError


def _rotvecs(n, seed=0):
    rng = np.random.default_rng(seed)
    axes = rng.normal(size=(n, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = rng.uniform(0, np.pi, size=(n, 1))
    # edge cases: identity, tiny angles, exactly pi and nearly pi about several axes
    special = np.array([[0, 0, 0], [1e-9, 0, 0], [0, 1e-5, -1e-5], [np.pi, 0, 0], [0, np.pi, 0], [0, 0, np.pi],
                        [np.pi / np.sqrt(2), np.pi / np.sqrt(2), 0], [0, 0, np.pi - 1e-6], [-np.pi + 1e-3, 0, 0]])
    return np.concatenate([axes * angles, special])


def test_axis_angle_to_matrix_matches_scipy_batched():
    rv = _rotvecs(500)
    got = axis_angle_to_matrix(torch.as_tensor(rv).reshape(-1, 1, 3)).numpy().reshape(-1, 3, 3)
    np.testing.assert_allclose(got, Rotation.from_rotvec(rv).as_matrix(), atol=1e-12)


def test_matrix_to_axis_angle_matches_scipy_including_pi():
    rv = _rotvecs(500, seed=1)
    mats = Rotation.from_rotvec(rv).as_matrix()
    got = matrix_to_axis_angle(torch.as_tensor(mats)).numpy()
    # compare as rotations (axis-angle at exactly pi is defined up to sign) and as vectors away from pi
    np.testing.assert_allclose(Rotation.from_rotvec(got).as_matrix(), mats, atol=1e-9)
    ref = Rotation.from_matrix(mats).as_rotvec()
    away = np.linalg.norm(ref, axis=1) < np.pi - 1e-3
    np.testing.assert_allclose(got[away], ref[away], atol=1e-9)
    assert np.all(np.linalg.norm(got, axis=1) <= np.pi + 1e-9)


def test_6d_round_trip_and_gram_schmidt():
    mats = torch.as_tensor(Rotation.from_rotvec(_rotvecs(100, seed=2)).as_matrix())
    six = matrix_to_6d(mats)
    np.testing.assert_allclose(six.numpy(), mats.numpy().reshape(-1, 9)[:, :6])  # first two rows
    np.testing.assert_allclose(rot6d_to_matrix(six).numpy(), mats.numpy(), atol=1e-12)
    # any non-degenerate 6-vector gives a proper rotation
    r = rot6d_to_matrix(torch.randn(50, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    np.testing.assert_allclose((r @ r.transpose(-1, -2)).numpy(), np.broadcast_to(np.eye(3), (50, 3, 3)), atol=1e-12)
    np.testing.assert_allclose(torch.det(r).numpy(), 1.0, atol=1e-12)


def test_orthonormalize_is_nearest_rotation():
    rng = np.random.default_rng(3)
    mats = Rotation.from_rotvec(_rotvecs(200, seed=3)).as_matrix()
    noisy = mats + rng.normal(scale=0.05, size=mats.shape)
    got = orthonormalize(torch.as_tensor(noisy)).numpy()
    # independent: scipy's Kabsch / orthogonal Procrustes via polar decomposition, det fixed
    from scipy.linalg import polar
    ref = np.stack([polar(m)[0] for m in noisy])
    np.testing.assert_allclose(got, ref, atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(got), 1.0, atol=1e-9)


def test_gradients_finite_at_identity_and_correct():
    v = torch.zeros(4, 3, dtype=torch.float64, requires_grad=True)
    axis_angle_to_matrix(v).sum().backward()
    assert torch.isfinite(v.grad).all()
    v = torch.tensor(_rotvecs(20)[:20], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (v,))
    m = axis_angle_to_matrix(torch.tensor(_rotvecs(10, seed=5)[:10] * 0.9, dtype=torch.float64))
    assert torch.autograd.gradcheck(lambda x: matrix_to_axis_angle(x), (m.clone().requires_grad_(True),))
    assert torch.autograd.gradcheck(rot6d_to_matrix, (torch.randn(5, 6, dtype=torch.float64, requires_grad=True),))
    # orthonormalize: numerical gradient on general matrices (incl. a reflection), finite and tangent at rotations
    gen = torch.Generator().manual_seed(1)
    noisy = m + 0.2 * torch.randn(m.shape, dtype=torch.float64, generator=gen)
    noisy[0, :, 2] *= -1  # det < 0: the nearest rotation flips the weakest direction
    assert torch.autograd.gradcheck(orthonormalize, (noisy.requires_grad_(True),))
    r = m.clone().requires_grad_(True)
    g = torch.randn(m.shape, dtype=torch.float64, generator=gen)
    (orthonormalize(r) * g).sum().backward()
    rt_g = m.transpose(-1, -2) @ g
    np.testing.assert_allclose(r.grad.numpy(), (m @ (rt_g - rt_g.transpose(-1, -2)) / 2).numpy(), atol=1e-9)


def _mint_features(poses, trans, scaling):
    """Independent computation of mint's motion vector (tools/preprocessing.py) with scipy + numpy."""
    rot = Rotation.from_rotvec(poses.reshape(-1, 3).astype(np.float64)).as_matrix().reshape(poses.shape[0], -1)
    return np.pad(np.concatenate([trans / scaling, rot], axis=-1), [[0, 0], [6, 0]])


def test_encode_decode_official_motion(tree, shared_sequences):
    m = tree.read("motions", shared_sequences[0])
    poses, trans, scaling = m["smpl_poses"], m["smpl_trans"], m["smpl_scaling"]
    enc = encode_motion(poses, trans, scaling)
    assert enc.shape == (poses.shape[0], 225) and enc.dtype == torch.float32
    np.testing.assert_allclose(enc.numpy(), _mint_features(poses, trans, scaling), atol=2e-6)
    enc219 = encode_motion(poses, trans, scaling, pad=False)
    assert enc219.shape == (poses.shape[0], 219)
    np.testing.assert_array_equal(enc219.numpy(), enc.numpy()[:, 6:])
    # decode: same rotations (axis-angle may differ by 2 pi wraps in the official file) and trans in cm
    dec_poses, dec_trans = decode_motion(enc, scaling)
    np.testing.assert_allclose(dec_trans.numpy(), trans, rtol=1e-5, atol=1e-3)
    r_ref = Rotation.from_rotvec(poses.reshape(-1, 3).astype(np.float64)).as_matrix()
    r_got = Rotation.from_rotvec(dec_poses.numpy().reshape(-1, 3).astype(np.float64)).as_matrix()
    np.testing.assert_allclose(r_got, r_ref, atol=1e-5)
    # decoding a noisy (network-like) output still gives valid rotations close to the truth
    noisy = enc + 0.01 * torch.randn(enc.shape, generator=torch.Generator().manual_seed(0))
    dec_noisy, _ = decode_motion(noisy, scaling)
    r_noisy = Rotation.from_rotvec(dec_noisy.numpy().reshape(-1, 3).astype(np.float64))
    assert (r_noisy * Rotation.from_matrix(r_ref).inv()).magnitude().max() < 0.1


def test_encode_batched_and_bad_input():
    rng = np.random.default_rng(0)
    poses = rng.normal(scale=0.5, size=(2, 5, 72)).astype(np.float32)
    trans = rng.normal(scale=100, size=(2, 5, 3)).astype(np.float32)
    scaling = np.array([[90.0], [100.0]], dtype=np.float32)  # (B, 1)
    enc = encode_motion(poses, trans, scaling)
    for b in range(2):
        np.testing.assert_allclose(enc[b].numpy(), _mint_features(poses[b], trans[b], scaling[b]), atol=2e-6)
    # (B,) scalings too, even with B = 3 (which a careless broadcast would apply to x, y, z)
    poses3, trans3 = np.concatenate([poses, poses[:1]]), np.concatenate([trans, trans[:1]])
    scaling3 = np.array([90.0, 100.0, 80.0], dtype=np.float32)
    enc3 = encode_motion(poses3, trans3, scaling3)
    np.testing.assert_allclose(enc3[2].numpy(), _mint_features(poses3[2], trans3[2], 80.0), atol=2e-6)
    _, dec_trans3 = decode_motion(enc3, scaling3)
    np.testing.assert_allclose(dec_trans3.numpy(), trans3, rtol=1e-5, atol=1e-3)
    with pytest.raises(AistppError):
        encode_motion(poses, trans, np.ones(3))
    with pytest.raises(AistppError):
        encode_motion(poses[0, :, :70], trans[0], 90.0)
    with pytest.raises(AistppError):
        decode_motion(torch.zeros(3, 100))
