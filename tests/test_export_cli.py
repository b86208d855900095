"""``aistpp export --format bvh|amass`` on a corpus imported from the shared official tree, with the project's SMPL
stand-in loaded through ``aistpp.smpl.load_body_model``: the BVH re-imported by the independent reader reproduces
smplx's own forward pass (betas 0, times smpl_scaling, plus smpl_trans) within 1 mm on every frame."""

import numpy as np
import pytest

from aistpp.cli import main
from aistpp.viz.export import SMPL_JOINT_NAMES, Y_UP_TO_Z_UP, bvh_forward_kinematics, read_bvh

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def corpus(annotations_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "corpus"
    assert main(["import-official", "--annotations", str(annotations_dir), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def standin():
    from aistpp.smpl import load_body_model

    return load_body_model(None)


def _smplx_world(model, motion):
    poses = torch.as_tensor(np.asarray(motion["smpl_poses"], np.float32))
    with torch.no_grad():
        out = model(global_orient=poses[:, :3], body_pose=poses[:, 3:], betas=torch.zeros(len(poses), 10),
                    transl=torch.zeros(len(poses), 3))
    scale = float(motion["smpl_scaling"][0])
    return scale * out.joints[:, :24].double().numpy() + np.asarray(motion["smpl_trans"], np.float64)[:, None]


def test_export_bvh_cli_within_1mm(corpus, tree, shared_sequences, standin, tmp_path, capsys):
    assert main(["export", str(corpus), "--format", "bvh", "--out", str(tmp_path)]) == 0
    assert "2 bvh files" in capsys.readouterr().out
    for seq in shared_sequences:
        bvh = read_bvh(tmp_path / f"{seq}.bvh")
        motion = tree.read("motions", seq)
        assert bvh.motion.shape[0] == len(motion["smpl_poses"]) == 576
        fk = bvh_forward_kinematics(bvh)[:, [bvh.names.index(n) for n in SMPL_JOINT_NAMES]]
        want = _smplx_world(standin, motion)
        err_mm = 10 * np.linalg.norm(fk - want, axis=-1)
        assert err_mm.max() < 1.0, f"{seq}: max {err_mm.max():.3f} mm"


def test_export_amass_cli(corpus, tree, shared_sequences, standin, tmp_path):
    seq = shared_sequences[0]
    assert main(["export", str(corpus), "--format", "amass", "--out", str(tmp_path), "--sequences", seq]) == 0
    motion = tree.read("motions", seq)
    with np.load(tmp_path / f"{seq}.npz") as d:
        assert d["poses"].shape == (576, 156) and float(d["mocap_framerate"]) == 60.0 and str(d["gender"]) == "male"
        poses = np.concatenate([d["poses"][:, :66], motion["smpl_poses"][:, 66:]], axis=1)
        got = _smplx_world(standin, {"smpl_poses": poses, "smpl_trans": d["trans"], "smpl_scaling": np.ones(1)})
    want = _smplx_world(standin, motion) / float(motion["smpl_scaling"][0]) @ Y_UP_TO_Z_UP.T
    assert np.abs(got - want).max() < 1e-3  # metres: 1 mm
