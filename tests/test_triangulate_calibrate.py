"""Camera refinement: perturbed official cameras recover their reprojection error; the ring; the CLI."""

import json

import cv2
import numpy as np

from aistpp.cli import main
from aistpp.io.cameras import Camera, CameraGroup, load_cameras
from aistpp.triangulate import CalibrationConfig, bundle_adjust, observation_error, ring_cameras, triangulate_dlt


def _perturb(cams, seed=5):
    rng = np.random.default_rng(seed)
    out = []
    for c in cams:
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        dR = cv2.Rodrigues(axis * np.radians(2.0) * rng.choice([-1, 1]))[0]
        R = dR @ cv2.Rodrigues(c.rvec)[0]
        K = c.K.copy()
        K[:2, :2] *= 1 + 0.05 * rng.choice([-1, 1])
        out.append(Camera(c.name, c.size, K, c.dist.copy(), cv2.Rodrigues(R)[0].ravel(),
                          c.tvec + rng.choice([-10.0, 10.0], size=3)))
    return CameraGroup(tuple(out), cams.setting)


def test_perturbed_cameras_recover_official_error(tree, shared_sequences):
    seq = shared_sequences[0]
    k2 = tree.read("keypoints2d", seq)["keypoints2d"]
    official = tree.cameras_for(seq)
    perturbed = _perturb(official)
    e_official = np.nanmedian(observation_error(official, k2))
    e_perturbed = np.nanmedian(observation_error(perturbed, k2))
    assert e_perturbed > 2 * e_official  # the perturbation matters
    res = bundle_adjust(k2, perturbed, CalibrationConfig(n_points=1500, thresholds_px=(40.0, 15.0)))
    e_refined = np.nanmedian(observation_error(res.cameras, k2))
    assert e_refined <= 1.1 * e_official, (e_refined, e_official)
    assert abs(res.final_error_px - e_refined) < 1e-9
    # up to the gauge (a global similarity), the 3D reconstruction matches the official one
    ref = tree.read("keypoints3d", seq)["keypoints3d"]
    got = triangulate_dlt(k2, res.cameras)
    start = triangulate_dlt(k2, perturbed)
    ok = np.isfinite(ref).all(-1) & np.isfinite(got).all(-1) & np.isfinite(start).all(-1)
    r_got, r_start = _aligned_residual(got[ok], ref[ok]), _aligned_residual(start[ok], ref[ok])
    assert r_got < 2.0 and r_got < 0.5 * r_start, (r_got, r_start)


def test_ring_initialization_converges(tree, shared_sequences):
    """From the hand-made ring (no knowledge of the real cameras) to the official cameras' reprojection error."""
    seq = shared_sequences[1]
    k2 = tree.read("keypoints2d", seq)["keypoints2d"]
    official = tree.cameras_for(seq)
    res = bundle_adjust(k2, ring_cameras(), CalibrationConfig(n_points=1500,
                                                              thresholds_px=(200.0, 100.0, 50.0, 25.0, 12.0)))
    e_official = np.nanmedian(observation_error(official, k2))
    assert res.initial_error_px > 2 * e_official
    assert res.final_error_px <= 1.1 * e_official, (res.final_error_px, e_official)
    ref = tree.read("keypoints3d", seq)["keypoints3d"]
    got = triangulate_dlt(k2, res.cameras)
    ok = np.isfinite(ref).all(-1) & np.isfinite(got).all(-1)
    assert _aligned_residual(got[ok], ref[ok]) < 2.0


def _aligned_residual(a, b):
    """Median distance (cm) between point sets a, b (K, 3) after the best similarity a -> b (Umeyama)."""
    ma, mb = a.mean(0), b.mean(0)
    A, B = a - ma, b - mb
    U, S, Vt = np.linalg.svd(B.T @ A)
    d = np.sign(np.linalg.det(U @ Vt))
    D = np.diag([1, 1, d])
    R = U @ D @ Vt
    scale = (S * np.diag(D)).sum() / (A ** 2).sum()
    return float(np.median(np.linalg.norm(scale * A @ R.T - B, axis=1)))


def test_ring_cameras_geometry():
    ring = ring_cameras()
    assert len(ring) == 9 and ring.names == [f"c{i:02d}" for i in range(1, 10)]
    centres = np.array([-cv2.Rodrigues(c.rvec)[0].T @ c.tvec for c in ring])
    np.testing.assert_allclose(centres[0], [0, 180, 500], atol=1e-9)
    np.testing.assert_allclose(centres[:8, 1], 180, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(centres[:8, [0, 2]], axis=1), 500, atol=1e-9)
    ang = np.degrees(np.arctan2(centres[:8, 0], centres[:8, 2]))
    np.testing.assert_allclose(np.diff(np.unwrap(np.radians(ang))), np.radians(-45), atol=1e-9)
    assert centres[2, 0] < -499  # c03 on -x like the official settings
    assert centres[8, 1] < 150 and np.linalg.norm(centres[8, [0, 2]] - centres[0, [0, 2]]) < 1
    for c in ring:
        assert c.K[0, 0] == c.K[1, 1] == 1600 and (c.K[0, 2], c.K[1, 2]) == (960, 540)
        p = cv2.projectPoints(np.array([[0.0, 180.0, 0.0]]), c.rvec, c.tvec, c.K, c.dist)[0].ravel()
        if c.name != "c09":
            np.testing.assert_allclose(p, [960, 540], atol=1e-6)  # looks at the vertical axis
        up = cv2.projectPoints(np.array([[0.0, 250.0, 0.0]]), c.rvec, c.tvec, c.K, c.dist)[0].ravel()
        assert up[1] < p[1]  # world +y is up in the image


def test_cli_calibrate_writes_official_json(annotations_dir, tmp_path, capsys):
    out = tmp_path / "setting1.json"
    rc = main(["calibrate", "--annotations", str(annotations_dir), "--setting", "setting1", "--out", str(out),
               "--points", "600"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["sequences"] == ["gBR_sBM_cAll_d04_mBR2_ch08"]
    assert report["final_median_error_px"] <= report["initial_median_error_px"] * 1.05
    raw = json.loads(out.read_text())
    assert [d["name"] for d in raw] == [f"c{i:02d}" for i in range(1, 10)]
    assert set(raw[0]) == {"name", "size", "matrix", "distortions", "rotation", "translation"}
    assert len(load_cameras(out)) == 9
    rc = main(["calibrate", "--annotations", str(annotations_dir), "--setting", "setting1", "--out", str(out),
               "--sequences", "gJS_sBM_cAll_d03_mJS2_ch07"])
    assert rc == 2
    assert "not setting1" in capsys.readouterr().err
