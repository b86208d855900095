"""BVH and AMASS exports: re-imported through an independent parser + forward kinematics they reproduce the SMPL
joints computed by smplx itself (betas 0, times smpl_scaling, plus smpl_trans) on the real shared AIST++ motions."""

import pickle

import numpy as np
import pytest

from aistpp.errors import AistppError
from aistpp.viz.export import (SMPL_PARENTS, Y_UP_TO_Z_UP, amass_arrays, bvh_forward_kinematics, export_motion,
                               read_bvh, rest_skeleton, write_bvh)

torch = pytest.importorskip("torch")
smplx = pytest.importorskip("smplx")


@pytest.fixture(scope="module")
def toy_smpl(tmp_path_factory):
    """A smplx.SMPL loaded from a numpy-only pkl in SMPL's sizes with a human-like rest skeleton (random skinning)."""
    rng = np.random.default_rng(0)
    n_verts = 6890
    # Rest joints of a standing body (metres, +y up), SMPL order, loosely the real template's.
    joints = np.array([
        [0, -0.22, 0.03], [0.06, -0.31, 0.02], [-0.06, -0.31, 0.02], [0, -0.11, 0.0], [0.1, -0.69, 0.02],
        [-0.1, -0.69, 0.02], [0, 0.03, 0.03], [0.09, -1.09, -0.02], [-0.09, -1.09, -0.02], [0, 0.08, 0.03],
        [0.12, -1.15, 0.1], [-0.12, -1.15, 0.1], [0, 0.29, 0.0], [0.08, 0.2, 0.0], [-0.08, 0.2, 0.0],
        [0, 0.36, 0.05], [0.17, 0.23, -0.01], [-0.17, 0.23, -0.01], [0.43, 0.21, -0.03], [-0.43, 0.21, -0.03],
        [0.68, 0.22, -0.03], [-0.68, 0.22, -0.03], [0.77, 0.21, -0.04], [-0.77, 0.21, -0.04]], float)
    owner = rng.integers(0, 24, n_verts)
    v_template = joints[owner] + rng.normal(scale=0.03, size=(n_verts, 3))
    # J_regressor: each joint = mean of its own vertices, offset-corrected so J_regressor @ v_template = joints.
    jreg = np.zeros((24, n_verts))
    for j in range(24):
        idx = np.flatnonzero(owner == j)
        jreg[j, idx] = 1.0 / len(idx)
    weights = np.zeros((n_verts, 24))
    weights[np.arange(n_verts), owner] = 0.7
    weights[np.arange(n_verts), np.array(SMPL_PARENTS)[owner].clip(0)] += 0.3
    model = {"v_template": v_template, "shapedirs": np.zeros((n_verts, 3, 10)),
             "posedirs": np.zeros((n_verts, 3, 207)), "J_regressor": jreg, "weights": weights,
             "kintree_table": np.array([[2 ** 32 - 1] + list(SMPL_PARENTS[1:]), list(range(24))]),
             "f": rng.integers(0, n_verts, (13776, 3))}
    path = tmp_path_factory.mktemp("smpl") / "SMPL_MALE.pkl"
    with open(path, "wb") as fh:
        pickle.dump(model, fh)
    return smplx.SMPL(model_path=str(path), batch_size=1)


def _smplx_joints(model, poses, trans, scaling):
    """World joints (N, 24, 3) cm by smplx forward: scaling * SMPL(pose, betas=0) + trans (the AIST++ rule)."""
    with torch.no_grad():
        out = model(global_orient=torch.tensor(poses[:, :3], dtype=torch.float64).float(),
                    body_pose=torch.tensor(poses[:, 3:], dtype=torch.float32),
                    betas=torch.zeros(len(poses), 10), transl=torch.zeros(len(poses), 3))
    return scaling * out.joints[:, :24].double().numpy() + trans[:, None, :]


@pytest.fixture(scope="module")
def real_motion(tree, shared_sequences):
    m = tree.read("motions", shared_sequences[0])
    sl = slice(0, 576, 4)  # 144 frames of a real break-dance sequence
    return {"smpl_poses": m["smpl_poses"][sl].astype(np.float64), "smpl_trans": m["smpl_trans"][sl].astype(np.float64),
            "smpl_scaling": m["smpl_scaling"]}


@pytest.mark.parametrize("order", ["ZXY", "XYZ"])
def test_bvh_roundtrip_reproduces_smplx_joints(toy_smpl, real_motion, tmp_path, order):
    rest, parents = rest_skeleton(toy_smpl)
    assert parents == SMPL_PARENTS
    path = write_bvh(tmp_path / "m.bvh", real_motion["smpl_poses"], real_motion["smpl_trans"],
                     real_motion["smpl_scaling"], rest, parents, order=order)
    bvh = read_bvh(path)
    assert len(bvh.names) == 24 and bvh.fps == pytest.approx(60.0, rel=1e-6)
    assert bvh.channels[bvh.names.index("pelvis")][:3] == ("Xposition", "Yposition", "Zposition")
    assert "".join(c[0] for c in bvh.channels[bvh.names.index("left_knee")]) == order
    fk = bvh_forward_kinematics(bvh)  # (N, 24, 3) in file order
    perm = [bvh.names.index(n) for n in
            ("pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
             "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
             "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
             "left_hand", "right_hand")]
    want = _smplx_joints(toy_smpl, real_motion["smpl_poses"], real_motion["smpl_trans"],
                         float(real_motion["smpl_scaling"][0]))
    err_cm = np.linalg.norm(fk[:, perm] - want, axis=-1)
    assert err_cm.max() < 0.1, f"max BVH joint error {err_cm.max() * 10:.3f} mm"
    # The motion is not trivial: joints move by metres over the sequence, wrists swing around the body.
    assert np.ptp(want[:, 20], axis=0).max() > 50


def test_bvh_reader_detects_a_wrong_rotation(toy_smpl, real_motion, tmp_path):
    """Reading the ZXY file as if its channels were XYZ must break the match (the check has teeth)."""
    rest, parents = rest_skeleton(toy_smpl)
    path = write_bvh(tmp_path / "m.bvh", real_motion["smpl_poses"], real_motion["smpl_trans"],
                     real_motion["smpl_scaling"], rest, parents, order="ZXY")
    path.write_text(path.read_text().replace("Zrotation Xrotation Yrotation", "Xrotation Yrotation Zrotation"))
    bvh = read_bvh(path)
    want = _smplx_joints(toy_smpl, real_motion["smpl_poses"], real_motion["smpl_trans"],
                         float(real_motion["smpl_scaling"][0]))
    fk = bvh_forward_kinematics(bvh)
    perm = [bvh.names.index(n) for n in ("left_wrist", "right_wrist")]
    assert np.linalg.norm(fk[:, perm] - want[:, [20, 21]], axis=-1).max() > 5


def test_read_bvh_rejects_garbage(tmp_path):
    p = tmp_path / "x.bvh"
    p.write_text("HIERARCHY\nROOT a\n{\n OFFSET 0 0 0\n CHANNELS 3 Xrotation Yrotation Zrotation\n}\n")
    with pytest.raises(AistppError, match="MOTION"):
        read_bvh(p)
    p.write_text("HIERARCHY\nROOT a\n{\n OFFSET 0 0 0\n CHANNELS 3 Xrotation Yrotation Zrotation\n}\n"
                 "MOTION\nFrames: 2\nFrame Time: 0.1\n1 2 3\n")
    with pytest.raises(AistppError, match="shape"):
        read_bvh(p)


def test_amass_z_up_is_the_rotated_motion(toy_smpl, real_motion, tmp_path):
    """AMASS arrays (z-up, unit body, metres) through smplx give Q @ (AIST++ joints / scaling)."""
    rest, _ = rest_skeleton(toy_smpl)
    scaling = float(real_motion["smpl_scaling"][0])
    arr = amass_arrays(real_motion["smpl_poses"], real_motion["smpl_trans"], real_motion["smpl_scaling"],
                       pelvis_rest=rest[0], up="z", layout="smplh")
    assert arr["poses"].shape == (len(real_motion["smpl_poses"]), 156) and arr["betas"].shape == (16,)
    assert str(arr["gender"]) == "male" and float(arr["mocap_framerate"]) == 60.0
    assert np.all(arr["poses"][:, 66:] == 0)
    poses72 = np.concatenate([arr["poses"][:, :66], real_motion["smpl_poses"][:, 66:]], axis=1).astype(np.float64)
    got = _smplx_joints(toy_smpl, poses72, arr["trans"].astype(np.float64), 1.0)  # metres, z up
    world_cm = _smplx_joints(toy_smpl, real_motion["smpl_poses"], real_motion["smpl_trans"], scaling)
    want = (world_cm / scaling) @ Y_UP_TO_Z_UP.T
    assert np.abs(got - want).max() < 1e-4  # 0.1 mm
    # z is up: the head is above the pelvis in most frames (this break-dance clip has some upside-down moves)
    assert np.mean(got[:, 15, 2] > got[:, 0, 2]) > 0.5 and np.mean(got[:, 15, 1] > got[:, 0, 1]) < 0.5


def test_amass_y_up_npz_file(toy_smpl, real_motion, tmp_path):
    path = export_motion("amass", tmp_path / "a.npz", real_motion, toy_smpl, up="y", layout="smpl")
    with np.load(path) as data:
        assert data["poses"].shape == (len(real_motion["smpl_poses"]), 72)
        np.testing.assert_allclose(data["trans"], real_motion["smpl_trans"] / real_motion["smpl_scaling"][0],
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(data["poses"], real_motion["smpl_poses"], atol=1e-6)
    with pytest.raises(AistppError, match="format"):
        export_motion("fbx", tmp_path / "x", real_motion, toy_smpl)
    with pytest.raises(AistppError, match="smpl_poses"):
        export_motion("bvh", tmp_path / "x.bvh", {"smpl_poses": np.zeros((3, 70)), "smpl_trans": np.zeros((3, 3)),
                                                  "smpl_scaling": np.ones(1)}, toy_smpl)
