"""aistpp.synth: official format, projection against OpenCV, corruption rates, swaps, determinism."""

import cv2
import numpy as np
import pytest

from aistpp.errors import AistppError
from aistpp.io.annotations import read_keypoints2d, write_keypoints2d
from aistpp.skeleton import FLIP_PERMUTATION, INDEX
from aistpp.synth import synth_multiview


@pytest.fixture(scope="module")
def motion(tree, shared_sequences):
    seq = shared_sequences[0]
    return tree.read("keypoints3d", seq)["keypoints3d_optim"][:200], tree.cameras_for(seq)


def _cv2_project(X, cams):
    return np.stack([cv2.projectPoints(X.reshape(-1, 1, 3), c.rvec, c.tvec, c.K, c.dist)[0].reshape(X.shape[:2] + (2,))
                     for c in cams])


def test_clean_capture_is_the_opencv_projection(motion, tmp_path):
    X, cams = motion
    cap = synth_multiview(X, cams, noise_px=0.0, drop_rate=0.0, low_conf_rate=0.0)
    assert cap.keypoints2d.shape == (9, 200, 17, 3) and cap.keypoints2d.dtype == np.float32
    assert cap.det_scores.shape == (9, 200) and cap.timestamps.dtype == np.int64
    assert cap.timestamps[1] == 16667
    ref = _cv2_project(X, cams)
    ok = ~cap.dropped
    np.testing.assert_allclose(cap.keypoints2d[..., :2][ok], ref[ok], atol=1e-3)
    assert not cap.outlier.any()
    assert (cap.keypoints2d[..., 2][ok] >= 0.5).all()
    # round trip through the official pkl format
    write_keypoints2d(tmp_path / "s.pkl", cap.keypoints2d, cap.det_scores, cap.timestamps)
    back = read_keypoints2d(tmp_path / "s.pkl")
    np.testing.assert_array_equal(back["keypoints2d"], cap.keypoints2d)


def test_rates_and_masks(motion):
    X, cams = motion
    cap = synth_multiview(X, cams, noise_px=2.0, drop_rate=0.1, low_conf_rate=0.2, outlier_rate=0.15, seed=1)
    seen = ~cap.dropped
    assert np.isnan(cap.keypoints2d[cap.dropped]).all() and np.isfinite(cap.keypoints2d[seen]).all()
    dropped_frames = cap.dropped.all(-1)
    assert 0.07 < dropped_frames.mean() < 0.13
    assert (cap.det_scores[dropped_frames] == 0).all() and (cap.det_scores[~dropped_frames] > 0).all()
    conf = cap.keypoints2d[..., 2]
    low = seen & (conf < 0.15)
    assert 0.15 < low.sum() / seen.sum() < 0.25
    assert 0.12 < cap.outlier.sum() / seen.sum() < 0.18
    err = np.linalg.norm(cap.keypoints2d[..., :2] - _cv2_project(X, cams), axis=-1)
    assert (err[cap.outlier] >= 55).all()  # jumps are 60-400 px (+ noise)
    good = seen & ~cap.outlier
    assert 1.9 < np.sqrt(np.mean(err[good] ** 2) / 2) < 2.1  # per-coordinate noise std 2 px


def test_swaps_mirror_the_skeleton(motion):
    X, cams = motion
    cap = synth_multiview(X, cams, noise_px=0.0, drop_rate=0.0, low_conf_rate=0.0, swap_rate=0.3, seed=2)
    ref = _cv2_project(X, cams)
    lw, rw = INDEX["left_wrist"], INDEX["right_wrist"]
    swapped = np.linalg.norm(cap.keypoints2d[:, :, lw, :2] - ref[:, :, rw], axis=-1) < 1e-3
    swapped &= ~cap.dropped[:, :, lw] & ~cap.dropped[:, :, rw]
    assert 0.25 < swapped.mean() < 0.35
    v, n = np.nonzero(swapped)
    perm = np.asarray(FLIP_PERMUTATION)
    ok = ~cap.dropped[v, n] & ~cap.dropped[v, n][:, perm]
    np.testing.assert_allclose(cap.keypoints2d[v, n, :, :2][ok], ref[v, n][:, perm][ok], atol=1e-3)
    assert not cap.outlier[v, n, INDEX["nose"]].any()  # the nose has no twin


def test_deterministic_and_validated(motion):
    X, cams = motion
    a = synth_multiview(X, cams, outlier_rate=0.1, swap_rate=0.05, seed=7)
    b = synth_multiview(X, cams, outlier_rate=0.1, swap_rate=0.05, seed=7)
    c = synth_multiview(X, cams, outlier_rate=0.1, swap_rate=0.05, seed=8)
    np.testing.assert_array_equal(a.keypoints2d, b.keypoints2d)
    assert not np.array_equal(np.nan_to_num(a.keypoints2d), np.nan_to_num(c.keypoints2d))
    with pytest.raises(AistppError):
        synth_multiview(X[0], cams)
    with pytest.raises(AistppError):
        synth_multiview(X, cams, outlier_rate=1.5)
