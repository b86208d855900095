"""COCO-17 <-> SMPL correspondence: the spec table, a known pose, and the official AIST++ files."""

import numpy as np
import pytest
import torch

from aistpp.skeleton import COCO17, FLIP_PERMUTATION
from aistpp.smpl import joints_from_motion, keypoints_from_motion, load_body_model, smpl_to_coco17


@pytest.fixture(scope="module")
def model():
    return load_body_model()


def test_map_matches_the_design_table():
    # docs: L/R hip 1/2, knee 4/5, ankle 7/8, shoulder 16/17, elbow 18/19, wrist 20/21; face from vertices
    # nose 332, left eye 2800, right eye 6260, left ear 583, right ear 4071 (passed here in that order)
    joints = np.arange(24)[:, None] * np.ones(3)
    face = (100 + np.arange(5))[:, None] * np.ones(3)
    out = smpl_to_coco17(joints, face)[:, 0]
    expected = {"nose": 100, "left_eye": 101, "right_eye": 102, "left_ear": 103, "right_ear": 104,
                "left_shoulder": 16, "right_shoulder": 17, "left_elbow": 18, "right_elbow": 19,
                "left_wrist": 20, "right_wrist": 21, "left_hip": 1, "right_hip": 2, "left_knee": 4,
                "right_knee": 5, "left_ankle": 7, "right_ankle": 8}
    assert out.tolist() == [expected[n] for n in COCO17]
    t = smpl_to_coco17(torch.as_tensor(joints), torch.as_tensor(face))
    np.testing.assert_array_equal(t.numpy()[:, 0], out)


def test_raised_left_arm_raises_coco_left_wrist(model):
    # SMPL rest: facing +z, subject-left = +x. Rotating the left shoulder (joint 16) +90 deg about z lifts the
    # left arm straight up; the COCO *left* wrist must be the high one and on the subject's left (+x).
    pose = np.zeros((1, 72), np.float32)
    pose[0, 16 * 3 + 2] = np.pi / 2
    kp = keypoints_from_motion(model, pose, np.zeros((1, 3)), [100.0])[0]
    name = {n: i for i, n in enumerate(COCO17)}
    assert kp[name["left_wrist"], 1] > kp[name["nose"], 1] + 20            # well above the head (cm)
    assert abs(kp[name["right_wrist"], 1] - kp[name["right_shoulder"], 1]) < 5
    assert kp[name["left_wrist"], 0] > 0 > kp[name["right_wrist"], 0]
    assert kp[name["left_eye"], 0] > 0 > kp[name["right_eye"], 0]
    assert kp[name["nose"], 2] > kp[name["left_ear"], 2]                   # the face looks to +z
    # the same pose, mirrored map: the check above would fail
    mirrored = kp[list(FLIP_PERMUTATION)]
    assert not mirrored[name["left_wrist"], 1] > mirrored[name["nose"], 1] + 20


def test_official_motions_through_our_map_land_on_official_keypoints(model, tree, shared_sequences):
    # Official motions were fitted (with the real SMPL) to official keypoints3d_optim. Through the stand-in and our
    # map, each left keypoint must follow the official left keypoint, not the right one.
    name = {n: i for i, n in enumerate(COCO17)}
    for seq in shared_sequences:
        motion = tree.read("motions", seq)
        official = tree.read("keypoints3d", seq)["keypoints3d_optim"]
        ours = keypoints_from_motion(model, motion["smpl_poses"], motion["smpl_trans"], motion["smpl_scaling"])
        same = np.linalg.norm(ours - official, axis=-1)
        other = np.linalg.norm(ours - official[:, list(FLIP_PERMUTATION)], axis=-1)
        for joint in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle", "eye", "ear"):
            k = name[f"left_{joint}"]
            assert np.median(same[:, k]) < 8.0, (seq, joint)                    # cm: stand-in is not SMPL
            assert (same[:, k] < other[:, k]).mean() > 0.9, (seq, joint)
        # trajectories: left wrist correlates with the official left wrist far better than with the right one
        centre = official[:, [11, 12]].mean(1)
        a = (ours[:, name["left_wrist"]] - centre).ravel()
        corr_left = np.corrcoef(a, (official[:, name["left_wrist"]] - centre).ravel())[0, 1]
        corr_right = np.corrcoef(a, (official[:, name["right_wrist"]] - centre).ravel())[0, 1]
        assert corr_left > 0.95 and corr_left > corr_right + 0.3, (seq, corr_left, corr_right)


def test_joints_from_motion_equals_scaled_smplx_output(model, tree, shared_sequences):
    motion = tree.read("motions", shared_sequences[0])
    sl = slice(0, 20)
    poses = torch.as_tensor(motion["smpl_poses"][sl])
    out = model(global_orient=poses[:, :3], body_pose=poses[:, 3:], betas=torch.zeros(20, 10),
                transl=torch.zeros(20, 3))
    expected = motion["smpl_scaling"][0] * out.joints[:, :24].double().numpy() + motion["smpl_trans"][sl, None]
    got = joints_from_motion(model, motion["smpl_poses"][sl], motion["smpl_trans"][sl], motion["smpl_scaling"])
    np.testing.assert_allclose(got, expected, atol=1e-3)
    kp = keypoints_from_motion(model, motion["smpl_poses"][sl], motion["smpl_trans"][sl], motion["smpl_scaling"])
    np.testing.assert_allclose(kp[:, 5:], got[:, [16, 17, 18, 19, 20, 21, 1, 2, 4, 5, 7, 8]], atol=1e-9)
