"""DLT and robust triangulation: the official keypoints3d, known answers on synthetic captures, diagnostics."""

import dataclasses

import cv2
import numpy as np
import pytest

from aistpp.errors import AistppError
from aistpp.synth import synth_multiview
from aistpp.triangulate import (TriangulationConfig, bitmask_views, reconstruct_keypoints3d, triangulate_dlt,
                                triangulate_robust, views_bitmask)


@pytest.fixture(scope="module")
def official(tree, shared_sequences):
    out = {}
    for seq in shared_sequences:
        out[seq] = (tree.read("keypoints2d", seq)["keypoints2d"], tree.read("keypoints3d", seq), tree.cameras_for(seq))
    return out


def test_dlt_reproduces_official_keypoints3d(official):
    """Unweighted DLT, confidence >= 0.15, >= 2 views == the released keypoints3d (aniposelib triangulate)."""
    for seq, (k2, k3, cams) in official.items():
        ours = triangulate_dlt(k2, cams)
        ref = k3["keypoints3d"]
        assert ours.shape == ref.shape
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref), err_msg=seq)
        assert np.nanmax(np.abs(ours - ref)) < 0.01, seq
        fast = triangulate_dlt(k2, cams, method="eigh")
        assert np.nanmax(np.abs(fast - ref)) < 0.01, seq


def test_dlt_known_answer_and_min_views(official):
    k2, k3, cams = next(iter(official.values()))
    truth = k3["keypoints3d_optim"][:50]
    # independent projection with OpenCV (distortion included)
    proj = np.stack([cv2.projectPoints(truth.reshape(-1, 1, 3), c.rvec, c.tvec, c.K, c.dist)[0]
                     .reshape(truth.shape[:2] + (2,)) for c in cams])
    kp = np.concatenate([proj, np.ones(proj.shape[:-1] + (1,))], axis=-1)
    np.testing.assert_allclose(triangulate_dlt(kp, cams), truth, atol=1e-5)
    np.testing.assert_allclose(triangulate_dlt(kp, cams, weighted=True), truth, atol=1e-5)
    # only one view left with confidence >= 0.15 -> NaN; two views -> exact
    kp2 = kp.copy()
    kp2[1:, :, :, 2] = 0.1
    assert np.isnan(triangulate_dlt(kp2, cams)).all()
    kp2[5, :, :, 2] = 0.9
    np.testing.assert_allclose(triangulate_dlt(kp2, cams), truth, atol=1e-4)
    assert np.isnan(triangulate_dlt(kp, cams, min_views=10)).all()


def test_bad_input_raises(official):
    k2, _, cams = next(iter(official.values()))
    with pytest.raises(AistppError):
        triangulate_dlt(k2[:5], cams)
    with pytest.raises(AistppError):
        triangulate_dlt(k2[..., :2], cams)


def test_bitmask_roundtrip():
    rng = np.random.default_rng(0)
    m = rng.random((9, 20, 17)) < 0.5
    bits = views_bitmask(m)
    assert bits.dtype == np.uint16 and bits.shape == (20, 17)
    np.testing.assert_array_equal(bitmask_views(bits, 9), m)
    assert bits[0, 0] == sum(1 << v for v in range(9) if m[v, 0, 0])


def _mpjpe(a, b):
    return float(np.nanmean(np.linalg.norm(a - b, axis=-1)))


def test_robust_beats_dlt_with_20_percent_outlier_views(official):
    k2, k3, cams = next(iter(official.values()))
    cap = synth_multiview(k3["keypoints3d_optim"], cams, noise_px=2.0, outlier_rate=0.1, swap_rate=0.1, seed=3)
    frac = cap.outlier.sum() / (~cap.dropped).sum()
    assert 0.15 < frac < 0.25
    dlt = triangulate_dlt(cap.keypoints2d, cams)
    rob = triangulate_robust(cap.keypoints2d, cams)
    e_dlt, e_rob = _mpjpe(dlt, cap.keypoints3d), _mpjpe(rob.keypoints3d, cap.keypoints3d)
    assert e_rob * 3 <= e_dlt, (e_rob, e_dlt)
    assert e_rob < 2.0
    # the rejected views are the outliers: few far-off outliers kept, few good views dropped
    used = rob.inliers
    seen = ~cap.dropped & (cap.keypoints2d[..., 2] >= 0.15)
    truth_px = np.stack([cv2.projectPoints(cap.keypoints3d.reshape(-1, 1, 3), c.rvec, c.tvec, c.K, c.dist)[0]
                         .reshape(cap.keypoints3d.shape[:2] + (2,)) for c in cams])
    far = cap.outlier & seen & (np.linalg.norm(cap.keypoints2d[..., :2] - truth_px, axis=-1) > 40)
    assert (used & far).sum() < 0.03 * far.sum()
    assert (~used & seen & ~cap.outlier).sum() < 0.05 * (seen & ~cap.outlier).sum()
    np.testing.assert_array_equal(bitmask_views(rob.views_used, len(cams)), used)


def test_robust_diagnostics_match_opencv(official):
    k2, _, cams = next(iter(official.values()))
    rob = triangulate_robust(k2[:, :40], cams)
    X = rob.keypoints3d
    ok = np.isfinite(X).all(-1)
    errs = []
    for v, c in enumerate(cams):
        p = cv2.projectPoints(np.nan_to_num(X).reshape(-1, 1, 3), c.rvec, c.tvec, c.K, c.dist)[0]
        p = p.reshape(X.shape[:2] + (2,))
        errs.append(np.linalg.norm(p - k2[v, :40, :, :2], axis=-1))
    errs = np.stack(errs)
    m = rob.inliers
    expect = np.where(m, errs, 0).sum(0) / np.maximum(m.sum(0), 1)
    np.testing.assert_allclose(rob.reprojection_error[ok], expect[ok], rtol=1e-4, atol=1e-3)
    assert rob.reprojection_error.dtype == np.float32
    assert (m.sum(0)[ok] >= 2).all()
    # real data: mostly clean, so inlier errors are small
    assert np.nanmedian(rob.reprojection_error) < 10


def test_reconstruct_keypoints3d_contract(official):
    k2, k3, cams = next(iter(official.values()))
    cfg = TriangulationConfig(temporal=False)
    res = reconstruct_keypoints3d(k2[:, :60], cams, cfg)
    assert res.keypoints3d.shape == (60, 17, 3) and res.keypoints3d.dtype == np.float64
    assert res.keypoints3d_optim.shape == (60, 17, 3)
    assert res.views_used.shape == (60, 17) and res.views_used.dtype == np.uint16
    assert res.reprojection_error.shape == (60, 17) and res.reprojection_error.dtype == np.float32
    assert res.config == cfg.to_dict() and res.config["conf_threshold"] == 0.15
    with pytest.raises(Exception):
        cfg.robust = False  # frozen
    off = reconstruct_keypoints3d(k2[:, :60], cams, dataclasses.replace(TriangulationConfig.official(),
                                                                        temporal=False))
    ref = k3["keypoints3d"][:60]
    assert np.nanmax(np.abs(off.keypoints3d - ref)) < 0.01
