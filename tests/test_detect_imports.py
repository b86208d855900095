"""Imports: OpenPose BODY_25 JSON (hand-written files with known points, and a write/read round trip) and the
official keypoints2d pkl."""

import json

import numpy as np
import pytest

from aistpp.detect import (
    read_openpose_folder, read_openpose_json, read_openpose_sequence, write_openpose_folder,
)
from aistpp.errors import AistppError
from aistpp.skeleton import COCO17

# BODY_25 names in index order, written out independently of the code's table.
BODY25 = ["Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "MidHip", "RHip",
          "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar", "LBigToe", "LSmallToe",
          "LHeel", "RBigToe", "RSmallToe", "RHeel"]
COCO_FROM_OPENPOSE_NAME = {"Nose": "nose", "LEye": "left_eye", "REye": "right_eye", "LEar": "left_ear",
                           "REar": "right_ear", "LShoulder": "left_shoulder", "RShoulder": "right_shoulder",
                           "LElbow": "left_elbow", "RElbow": "right_elbow", "LWrist": "left_wrist",
                           "RWrist": "right_wrist", "LHip": "left_hip", "RHip": "right_hip", "LKnee": "left_knee",
                           "RKnee": "right_knee", "LAnkle": "left_ankle", "RAnkle": "right_ankle"}


def person(points: dict) -> list:
    """BODY_25 flat list from {name: (x, y, c)}; others (0, 0, 0)."""
    flat = []
    for name in BODY25:
        flat += list(points.get(name, (0.0, 0.0, 0.0)))
    return flat


def write_frame(path, people):
    path.write_text(json.dumps({"version": 1.3, "people": [{"pose_keypoints_2d": p} for p in people]}))


def test_hand_written_json_maps_sides_correctly(tmp_path):
    # a front-facing person: subject's right (OpenPose R*) on the image left (small x)
    known = {name: (100.0 + 10 * i + (0 if name.startswith("R") else 500), 50.0 + 7 * i, 0.5 + 0.02 * i)
             for i, name in enumerate(BODY25[:19])}
    weak = {k: (v[0] + 3, v[1] + 3, 0.1) for k, v in known.items()}  # a second, less confident person
    f = tmp_path / "gBR_sBM_c01_d04_mBR0_ch01_000000000000_keypoints.json"
    write_frame(f, [person(weak), person(known)])
    kp, score = read_openpose_json(f)
    for op_name, coco_name in COCO_FROM_OPENPOSE_NAME.items():
        np.testing.assert_allclose(kp[COCO17.index(coco_name)], known[op_name], rtol=1e-6)
    assert kp[COCO17.index("left_shoulder"), 0] > kp[COCO17.index("right_shoulder"), 0]
    assert score == pytest.approx(np.mean([known[n][2] for n in COCO_FROM_OPENPOSE_NAME]), rel=1e-6)


def test_missing_points_and_empty_frames(tmp_path):
    d = tmp_path / "c01"
    d.mkdir()
    write_frame(d / "v_000000000000_keypoints.json", [person({"Nose": (10, 20, 0.9)})])
    write_frame(d / "v_000000000001_keypoints.json", [])
    # frame 2 has no file at all
    write_frame(d / "v_000000000003_keypoints.json", [person({"LAnkle": (5, 6, 0.7)})])
    kp, sc = read_openpose_folder(d)
    assert kp.shape == (4, 17, 3)
    np.testing.assert_allclose(kp[0, 0], (10, 20, 0.9), rtol=1e-6)
    assert np.isnan(kp[0, 1:, :2]).all() and (kp[0, 1:, 2] == 0).all()  # missing joint: NaN x, y, conf 0
    assert np.isnan(kp[1]).all() and sc[1] == 0 and np.isnan(kp[2]).all() and sc[2] == 0
    np.testing.assert_allclose(kp[3, COCO17.index("left_ankle")], (5, 6, 0.7), rtol=1e-6)


def test_round_trip_sequence(tmp_path):
    rng = np.random.default_rng(0)
    seq = "gBR_sBM_cAll_d04_mBR0_ch01"
    truth = np.concatenate([rng.uniform(0, 1920, (9, 5, 17, 1)), rng.uniform(0, 1080, (9, 5, 17, 1)),
                            rng.uniform(0.05, 1, (9, 5, 17, 1))], -1).astype(np.float32)
    truth[4, 2] = np.nan  # no detection in view c05, frame 2
    for v in range(9):
        if v == 6:
            continue  # view c07 has no folder
        video = seq.replace("cAll", f"c0{v + 1}")
        write_openpose_folder(tmp_path / (video if v % 2 else f"c0{v + 1}"), video, truth[v])
    # files are BODY_25 with the R/L convention: spot-check one file independently
    raw = json.loads((tmp_path / "c01" / f"{seq.replace('cAll', 'c01')}_000000000003_keypoints.json").read_text())
    flat = np.asarray(raw["people"][0]["pose_keypoints_2d"]).reshape(25, 3)
    np.testing.assert_allclose(flat[BODY25.index("RShoulder")], truth[0, 3, COCO17.index("right_shoulder")],
                               rtol=1e-6)
    np.testing.assert_allclose(flat[BODY25.index("Neck"), :2],
                               truth[0, 3, 5:7, :2].mean(0), rtol=1e-5)
    got = read_openpose_sequence(tmp_path, seq)
    assert got["keypoints2d"].shape == (9, 5, 17, 3)
    mask = np.ones(9, bool)
    mask[6] = False
    np.testing.assert_allclose(got["keypoints2d"][mask], truth[mask], rtol=1e-6)
    assert np.isnan(got["keypoints2d"][6]).all() and (got["det_scores"][6] == 0).all()
    assert got["det_scores"][4, 2] == 0
    np.testing.assert_array_equal(got["timestamps"], [0, 16667, 33333, 50000, 66667])


def test_bad_json(tmp_path):
    f = tmp_path / "x_000000000000_keypoints.json"
    f.write_text(json.dumps({"people": [{"pose_keypoints_2d": [1.0] * 54}]}))  # COCO-18 model, not BODY_25
    with pytest.raises(AistppError, match="BODY_25"):
        read_openpose_json(f)
    f.write_text("{not json")
    with pytest.raises(AistppError, match="OpenPose"):
        read_openpose_json(f)


def test_official_keypoints2d_read_as_detections(annotations_dir, shared_sequences):
    """The official pkl is read by aistpp.io.annotations.read_keypoints2d (the one reader; the name
    import_official belongs to aistpp.corpus, which packs the whole release into a corpus)."""
    import aistpp.detect
    from aistpp.io.annotations import read_keypoints2d

    assert not hasattr(aistpp.detect, "import_official")
    got = read_keypoints2d(annotations_dir / "keypoints2d" / f"{shared_sequences[0]}.pkl")
    assert got["keypoints2d"].shape == (9, 576, 17, 3) and got["keypoints2d"].dtype == np.float32
    assert got["det_scores"].shape == (9, 576) and got["timestamps"][1] == 16667
