import os
import pickle

import cv2
import numpy as np
import pytest

from aistpp import AistppError
from aistpp.io.annotations import (AnnotationTree, read_keypoints2d, read_keypoints3d, read_motion,
                                   write_keypoints2d, write_keypoints3d, write_motion)
from aistpp.io.cameras import CameraGroup, load_cameras, rodrigues_to_matrix, save_cameras
from aistpp.io.safe_pickle import load_pickle, loads_restricted


# ---------------------------------------------------------------- safe pickle
class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_restricted_unpickler_loads_plain_and_numpy():
    obj = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": [1, 2.5, "x", None], "c": (np.int64(3), {1, 2}),
           "d": np.array(["s"]), "e": np.float32(1.5)}
    for proto in (2, 4, 5):
        back = loads_restricted(pickle.dumps(obj, protocol=proto))
        np.testing.assert_array_equal(back["a"], obj["a"])
        assert back["b"] == obj["b"] and back["c"][1] == {1, 2} and back["e"] == np.float32(1.5)


def test_restricted_unpickler_refuses_code(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"keypoints3d": _Evil()}))
    with pytest.raises(AistppError, match=r"evil\.pkl.*refusing to unpickle (posix|os)\.system"):
        load_pickle(path)


def test_restricted_unpickler_refuses_object_arrays(tmp_path):
    path = tmp_path / "obj.pkl"
    path.write_bytes(pickle.dumps(np.array([_Evil()], dtype=object)))
    with pytest.raises(AistppError, match="refusing"):
        load_pickle(path)


def test_truncated_pickle_one_line(tmp_path, annotations_dir):
    data = (annotations_dir / "motions" / "gBR_sBM_cAll_d04_mBR2_ch08.pkl").read_bytes()
    path = tmp_path / "trunc.pkl"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AistppError, match="trunc.pkl: not a readable pickle") as err:
        read_motion(path)
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------- cameras
def test_rodrigues_matches_opencv():
    rng = np.random.default_rng(0)
    rv = rng.normal(size=(20, 3))
    rv[0] = 0
    for r, R in zip(rv, rodrigues_to_matrix(rv)):
        np.testing.assert_allclose(R, cv2.Rodrigues(r)[0], atol=1e-12)


@pytest.fixture(scope="module")
def setting1(annotations_dir):
    return load_cameras(annotations_dir / "cameras" / "setting1.json")


def test_projection_matches_cv2(setting1):
    rng = np.random.default_rng(1)
    pts = rng.uniform([-150, 0, -150], [150, 200, 150], size=(500, 3))
    ours = setting1.project(pts)
    for v, cam in enumerate(setting1):
        ref = cv2.projectPoints(pts, cam.rvec, cam.tvec, cam.K, cam.dist)[0].reshape(-1, 2)
        np.testing.assert_allclose(ours[v], ref, atol=1e-6)


def test_undistort_inverts_distortion(setting1):
    rng = np.random.default_rng(2)
    pts = rng.uniform([-100, 20, -100], [100, 180, 100], size=(200, 3))
    distorted = setting1.project(pts)
    undistorted = setting1.project(pts, distort=False)
    np.testing.assert_allclose(setting1.undistort_points(distorted), undistorted, atol=1e-3)
    distorted[0, :5] = np.nan
    assert np.isnan(setting1.undistort_points(distorted)[0, :5]).all()


def test_official_keypoints3d_land_on_keypoints2d(tree, shared_sequences):
    """Projecting official keypoints3d through the setting's cameras lands on keypoints2d (conf > 0.5)."""
    for seq in shared_sequences:
        cams = tree.cameras_for(seq)
        kp2d = tree.read("keypoints2d", seq)["keypoints2d"]
        kp3d = tree.read("keypoints3d", seq)["keypoints3d"]
        proj = cams.project(kp3d)  # (9, N, 17, 2)
        err = np.linalg.norm(proj - kp2d[..., :2], axis=-1)
        good = (kp2d[..., 2] > 0.5) & np.isfinite(err)
        for v in range(9):
            med = np.median(err[v][good[v]])
            assert med < 10, (seq, v, med)


def test_aniposelib_round_trip(setting1):
    ag = setting1.to_aniposelib()
    back = CameraGroup.from_aniposelib(ag, "setting1")
    pts = np.array([[0.0, 100.0, 0.0], [50.0, 150.0, -30.0]])
    np.testing.assert_allclose(back.project(pts), setting1.project(pts), atol=1e-9)
    # aniposelib projects with the same OpenCV model
    ref = ag.project(pts)
    np.testing.assert_allclose(ref, setting1.project(pts), atol=1e-6)


def test_save_load_cameras_round_trip(setting1, tmp_path):
    save_cameras(setting1, tmp_path / "s.json")
    back = load_cameras(tmp_path / "s.json")
    assert back.names == setting1.names
    np.testing.assert_array_equal(back.K, setting1.K)
    np.testing.assert_array_equal(back.tvec, setting1.tvec)


@pytest.mark.parametrize("content,msg", [
    ("", "camera file is empty"),
    ('[{"name": "c01"', "not valid JSON"),
    ("{}", "non-empty JSON list"),
    ('[{"name": "c01", "size": [1920, 1080]}]', "lacks matrix"),
    ('[{"name": "c01", "size": [1920, 1080], "matrix": [[1, 0], [0, 1]], "distortions": [0], "rotation": [0, 0, 0],'
     ' "translation": [0, 0, 0]}]', "malformed"),
])
def test_bad_camera_files(tmp_path, content, msg):
    path = tmp_path / "setting1.json"
    path.write_text(content)
    with pytest.raises(AistppError, match=msg) as err:
        load_cameras(path)
    assert str(path) in str(err.value)


def test_missing_camera_file(tmp_path):
    with pytest.raises(AistppError, match="camera file not found"):
        load_cameras(tmp_path / "nope.json")


def test_truncated_camera_file(tmp_path, annotations_dir):
    text = (annotations_dir / "cameras" / "setting1.json").read_text()
    path = tmp_path / "setting1.json"
    path.write_text(text[:1000])
    with pytest.raises(AistppError, match="not valid JSON"):
        load_cameras(path)


# ---------------------------------------------------------------- annotation files
def test_readers_on_real_files(tree, shared_sequences):
    seq = shared_sequences[0]
    k2 = read_keypoints2d(tree.path("keypoints2d", seq))
    assert k2["keypoints2d"].shape == (9, 576, 17, 3) and k2["keypoints2d"].dtype == np.float32
    assert k2["timestamps"][1] == 16667 and k2["det_scores"].shape == (9, 576)
    k3 = read_keypoints3d(tree.path("keypoints3d", seq))
    assert k3["keypoints3d"].shape == k3["keypoints3d_optim"].shape == (576, 17, 3)
    m = read_motion(tree.path("motions", seq))
    assert m["smpl_poses"].shape == (576, 72) and m["smpl_scaling"].shape == (1,)
    assert 80 < float(m["smpl_scaling"][0]) < 110 and np.isfinite(m["smpl_loss"])


def test_writers_round_trip(tree, shared_sequences, tmp_path):
    seq = shared_sequences[1]
    k2 = tree.read("keypoints2d", seq)
    write_keypoints2d(tmp_path / "k2.pkl", **k2)
    back = read_keypoints2d(tmp_path / "k2.pkl")
    for k in k2:
        np.testing.assert_array_equal(back[k], k2[k])
    k3 = tree.read("keypoints3d", seq)
    write_keypoints3d(tmp_path / "k3.pkl", **k3)
    np.testing.assert_array_equal(read_keypoints3d(tmp_path / "k3.pkl")["keypoints3d_optim"], k3["keypoints3d_optim"])
    m = tree.read("motions", seq)
    write_motion(tmp_path / "m.pkl", **m)
    back = read_motion(tmp_path / "m.pkl")
    np.testing.assert_array_equal(back["smpl_poses"], m["smpl_poses"])
    assert back["smpl_loss"] == pytest.approx(m["smpl_loss"])
    # the file we wrote is readable by plain pickle as the official format (dict of arrays)
    with open(tmp_path / "m.pkl", "rb") as fh:
        assert set(pickle.load(fh)) == {"smpl_poses", "smpl_trans", "smpl_scaling", "smpl_loss"}


@pytest.mark.parametrize("data,msg", [
    ({"smpl_poses": np.zeros((5, 24, 3)), "smpl_trans": np.zeros((5, 3)), "smpl_scaling": np.ones(1)},
     r"smpl_poses has shape \(5, 24, 3\), expected \(N, 72\)"),
    ({"smpl_poses": np.zeros((5, 72)), "smpl_scaling": np.ones(1)}, "missing key 'smpl_trans'"),
    ({"smpl_poses": np.zeros((5, 72)), "smpl_trans": np.zeros((4, 3)), "smpl_scaling": np.ones(1)}, "smpl_trans"),
    ([1, 2, 3], "expected a dict"),
])
def test_wrong_keys_or_shapes(tmp_path, data, msg):
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps(data))
    with pytest.raises(AistppError, match=msg):
        read_motion(path)


def test_tree_errors(tmp_path):
    with pytest.raises(AistppError, match="annotation directory not found"):
        AnnotationTree.open(tmp_path / "nope")
    with pytest.raises(AistppError, match="no cameras/ folder"):
        AnnotationTree.open(tmp_path)


def test_mapping_and_cameras_for(tree):
    assert tree.cameras_for("gJS_sBM_cAll_d03_mJS2_ch07").setting == "setting4"
    assert len(tree.settings()) == 14
    assert len(tree.ignore_list()) == 45


def test_atomic_writes_have_normal_permissions_and_leave_nothing_on_failure(tmp_path):
    from aistpp.io.atomic import atomic_path, atomic_write_text

    umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
        with pytest.raises(RuntimeError):
            with atomic_path(tmp_path / "b.txt") as tmp:
                tmp.write_text("half")
                raise RuntimeError("killed")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    finally:
        os.umask(umask)
