"""Body model loading (real-format pkls with chumpy / scipy objects, stand-in) and the keypoint-only forward."""

import pickle
import sys
import types
from collections import Counter

import numpy as np
import pytest
import torch

from aistpp.errors import AistppError
from aistpp.smpl import FACE_VERTEX_IDS, KeypointLayer, load_body_model, make_standin_model, write_standin
from aistpp.smpl.standin import PARENTS, rest_joints


@pytest.fixture(scope="module")
def standin():
    return make_standin_model()


def test_standin_has_smpl_format_and_is_deterministic(standin):
    shapes = {"v_template": (6890, 3), "shapedirs": (6890, 3, 10), "posedirs": (6890, 3, 207),
              "J_regressor": (24, 6890), "weights": (6890, 24), "kintree_table": (2, 24), "f": (13776, 3)}
    for key, shape in shapes.items():
        assert standin[key].shape == shape, key
    again = make_standin_model()
    for key in shapes:
        np.testing.assert_array_equal(standin[key], again[key])
    # SMPL's kinematic tree (published SMPL parents)
    assert list(standin["kintree_table"][0, 1:]) == [0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17,
                                                     18, 19, 20, 21]
    assert tuple(PARENTS[1:]) == tuple(standin["kintree_table"][0, 1:])


def test_standin_geometry_is_human_and_smpl_oriented(standin):
    v = standin["v_template"]
    height = v[:, 1].max() - v[:, 1].min()
    assert 1.65 < height < 1.85
    j = standin["J_regressor"] @ v
    np.testing.assert_allclose(j, rest_joints(), atol=1e-6)          # regressor reproduces the joints
    assert (standin["J_regressor"] >= 0).all()
    np.testing.assert_allclose(standin["J_regressor"].sum(1), 1, atol=1e-9)
    np.testing.assert_allclose(standin["weights"].sum(1), 1, atol=1e-9)
    assert (standin["weights"] >= 0).all()
    # subject-left = +x, like SMPL: every left joint has x > 0 and its right twin the mirrored x
    for left, right in ((1, 2), (4, 5), (7, 8), (13, 14), (16, 17), (18, 19), (20, 21)):
        assert j[left, 0] > 0.05 and j[right, 0] < -0.05
    assert j[15, 1] > j[12, 1] > j[9, 1] > j[0, 1] > j[4, 1] > j[7, 1]     # +y up along the body
    # human proportions (metres): arm span, leg length
    assert 1.4 < j[22, 0] - j[23, 0] < 1.7
    assert 0.7 < j[1, 1] - j[7, 1] < 0.9
    # face vertices: nose in front (+z), left eye/ear at +x, right at -x, all on the head above the head joint
    nose, leye, reye, lear, rear = v[list(FACE_VERTEX_IDS)]
    assert nose[2] > max(leye[2], reye[2]) - 0.03 and nose[2] > lear[2] + 0.05
    assert leye[0] > 0.01 and reye[0] < -0.01 and lear[0] > 0.05 and rear[0] < -0.05
    assert min(nose[1], leye[1], lear[1]) > j[15, 1]
    assert 0.055 < np.linalg.norm(leye - reye) < 0.08 and 0.14 < np.linalg.norm(lear - rear) < 0.2   # metres
    assert 0.035 < np.linalg.norm(nose - leye) < 0.07
    # smplx's own vertex ids for these points (independent source)
    from smplx.vertex_ids import vertex_ids

    ids = vertex_ids["smplh"]
    assert FACE_VERTEX_IDS == (ids["nose"], ids["leye"], ids["reye"], ids["lear"], ids["rear"])
    # skinning: a vertex near the left wrist follows the left forearm / hand, not the right side
    near = np.argmin(np.linalg.norm(v - j[20], axis=1))
    assert standin["weights"][near, [18, 20, 22]].sum() > 0.99


def test_standin_mesh_is_closed_and_outward(standin):
    f = standin["f"].astype(np.int64)
    assert len(np.unique(f)) == 6890
    edges = Counter(map(tuple, np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])))
    assert max(edges.values()) == 1
    assert all((b, a) in edges for a, b in edges)                      # every edge has its twin: closed manifold
    v = standin["v_template"][f]
    volume = np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() / 6
    assert 0.04 < volume < 0.12                                         # m^3, outward-facing, human-sized


def test_keypoint_layer_matches_smplx_forward():
    model = load_body_model()
    layer = KeypointLayer(model)
    torch.manual_seed(0)
    poses = torch.randn(32, 72) * 0.6
    out = model(global_orient=poses[:, :3], body_pose=poses[:, 3:], betas=torch.zeros(32, 10),
                transl=torch.zeros(32, 3))
    joints, face = layer(poses)
    torch.testing.assert_close(joints, out.joints[:, :24], atol=2e-6, rtol=0)
    torch.testing.assert_close(face, out.vertices[:, list(FACE_VERTEX_IDS)], atol=2e-6, rtol=0)
    # with betas: the shape space moves joints like smplx does
    betas = torch.tensor([[1.5, -1.0] + [0.0] * 8])
    out = model(global_orient=poses[:4, :3], body_pose=poses[:4, 3:], betas=betas.expand(4, 10),
                transl=torch.zeros(4, 3))
    joints, _ = KeypointLayer(model, betas=betas[0].numpy())(poses[:4])
    torch.testing.assert_close(joints, out.joints[:4, :24], atol=2e-6, rtol=0)


def test_standin_blend_shapes_option_through_smplx(tmp_path, standin):
    """The blend-shape option: non-zero posedirs and all ten shapedirs, of SMPL's magnitude, written as a file and
    loaded through smplx; the keypoint-only forward follows smplx with them (pose correctives move the face)."""
    path = write_standin(tmp_path / "SMPL_MALE.pkl", blend_shapes=True)
    blend = make_standin_model(blend_shapes=True)
    np.testing.assert_array_equal(blend["v_template"], standin["v_template"])     # only the blend shapes differ
    assert not standin["posedirs"].any()
    per_beta = np.linalg.norm(blend["shapedirs"], axis=1).max(0)                  # metres per unit beta
    assert (per_beta > 0.01).all() and (per_beta < 0.06).all()
    face = np.abs(blend["posedirs"][list(FACE_VERTEX_IDS)]).max()
    assert 0.002 < face and np.abs(blend["posedirs"]).max() < 0.05
    np.testing.assert_array_equal(make_standin_model(blend_shapes=True)["posedirs"], blend["posedirs"])
    from aistpp.cli import main

    assert main(["body-model", "standin", "--blend-shapes", "--out", str(tmp_path / "cli.pkl")]) == 0
    assert (tmp_path / "cli.pkl").read_bytes() == path.read_bytes()
    model = load_body_model(path)
    assert model.posedirs.abs().max() > 0.01
    torch.manual_seed(2)
    poses = torch.randn(16, 72) * 0.6
    betas = torch.randn(1, 10)
    out = model(global_orient=poses[:, :3], body_pose=poses[:, 3:], betas=betas.expand(16, 10),
                transl=torch.zeros(16, 3))
    joints, face_pts = KeypointLayer(model, betas=betas[0].numpy())(poses)
    torch.testing.assert_close(joints, out.joints[:, :24], atol=2e-6, rtol=0)
    torch.testing.assert_close(face_pts, out.vertices[:, list(FACE_VERTEX_IDS)], atol=2e-6, rtol=0)
    plain = load_body_model()
    moved = (face_pts - KeypointLayer(plain, betas=betas[0].numpy())(poses)[1]).norm(dim=-1)
    assert moved.max() > 0.003                                                    # metres: the correctives act


def _fake_chumpy_modules():
    """Modules named like chumpy whose Ch pickles the way chumpy's does (__getstate__ = __dict__ minus caches)."""
    chumpy = types.ModuleType("chumpy")
    ch = types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            self.x = np.asarray(x, np.float64)
            self._dirty_vars = set()
            self._itr = None
            self._depends_on_deps = {}
            self._make_dense = False
            self._parents = {}
            self._cache = {"r": None}

        def __getstate__(self):
            state = dict(self.__dict__)
            del state["_parents"], state["_cache"]
            return state

    Ch.__module__ = "chumpy.ch"
    Ch.__qualname__ = "Ch"
    ch.Ch = Ch
    chumpy.ch = ch
    return chumpy, ch


def test_real_smpl_style_pkl_loads_without_chumpy(tmp_path, standin):
    import scipy.sparse

    chumpy, ch = _fake_chumpy_modules()
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = chumpy, ch
    try:
        legacy = dict(standin)
        legacy["shapedirs"] = ch.Ch(standin["shapedirs"])
        legacy["v_template"] = ch.Ch(standin["v_template"])
        legacy["J_regressor"] = scipy.sparse.csc_matrix(standin["J_regressor"])
        legacy["kintree_table"] = standin["kintree_table"].astype(np.uint32)
        blob = pickle.dumps(legacy, protocol=2)
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]
    assert b"chumpy.ch" in blob and b"scipy.sparse" in blob
    smpl_dir = tmp_path / "smpl"
    smpl_dir.mkdir()
    (smpl_dir / "basicModel_m_lbs_10_207_0_v1.0.0.pkl").write_bytes(blob)
    assert "chumpy" not in sys.modules
    model = load_body_model(smpl_dir)                                   # directory -> male file
    assert "chumpy" not in sys.modules
    reference = load_body_model()                                       # stand-in from memory
    for name in ("v_template", "shapedirs", "J_regressor", "lbs_weights", "posedirs", "faces_tensor", "parents"):
        torch.testing.assert_close(getattr(model, name), getattr(reference, name), atol=0, rtol=0)


def test_written_standin_equals_generated_one(tmp_path):
    path = write_standin(tmp_path / "SMPL_MALE.pkl")
    a, b = load_body_model(path), load_body_model(tmp_path)
    ref = load_body_model(None)
    for m in (a, b):
        torch.testing.assert_close(m.v_template, ref.v_template, atol=0, rtol=0)
        torch.testing.assert_close(m.J_regressor, ref.J_regressor, atol=0, rtol=0)


def test_bad_model_files_are_refused(tmp_path):
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
    with pytest.raises(AistppError, match="evil.pkl.*refusing"):
        load_body_model(evil)
    partial = tmp_path / "partial.pkl"
    partial.write_bytes(pickle.dumps({"v_template": np.zeros((6890, 3))}))
    with pytest.raises(AistppError, match="missing 'shapedirs'"):
        load_body_model(partial)
    with pytest.raises(AistppError, match="no SMPL male model"):
        load_body_model(tmp_path)
    with pytest.raises(AistppError, match="not found"):
        load_body_model(tmp_path / "nope.pkl")
