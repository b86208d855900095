"""detect_sequence / detect_sequence_parallel on synthetic views: every grid frame gets the keypoints of the frame
shown at that time, holes and unusable views stay NaN, finished views are reused on a re-run."""

import numpy as np
import pytest

av = pytest.importorskip("av")

from aistpp.detect import DetectConfig, detect_sequence  # noqa: E402
from aistpp.detect.runner import DetectorSpec, detect_sequence_parallel  # noqa: E402
from aistpp.video import VideoConfig  # noqa: E402
from aistpp.video import write_video as write_video_file  # noqa: E402

import videotools  # noqa: E402
from videotools import read_stripes  # noqa: E402

SEQ = "gPO_sBM_cAll_d10_mPO1_ch02"
W, H, N = 128, 72, 40


def stripes(index):
    return videotools.stripes(index, W, H)


def write_video(path, pts_ticks, index_of=lambda k: k):
    write_video_file(path, (stripes(index_of(k)) for k in range(len(pts_ticks))), pts=pts_ticks)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("seq")
    for v in range(1, 10):
        name = d / f"{SEQ.replace('cAll', f'c0{v}')}.mp4"
        if v == 4:
            continue  # missing view
        if v == 7:
            write_video(name, [k for k in range(N) if k != 11], index_of=lambda k: k if k < 11 else k + 1)
        else:
            write_video(name, range(N))
    return d


class StripeDetector:
    """A fake detector whose 'keypoints' encode the frame index it sees (x = index, y = view resets)."""

    def __init__(self):
        self.resets = 0

    def reset(self):
        self.resets += 1

    def __call__(self, frames):
        idx = np.array([read_stripes(f) for f in frames], np.float32)
        kp = np.zeros((len(frames), 17, 3), np.float32)
        kp[..., 0] = idx[:, None]
        kp[..., 1] = self.resets
        kp[..., 2] = 0.9
        return kp, np.full(len(frames), 0.5, np.float32)


def test_detect_sequence_alignment_and_nan(videos):
    det = StripeDetector()
    res = detect_sequence(videos, SEQ, det, n_frames=N, video_config=VideoConfig(expected_size=(W, H)))
    kp, sc = res["keypoints2d"], res["det_scores"]
    assert kp.shape == (9, N, 17, 3) and kp.dtype == np.float32 and sc.shape == (9, N)
    assert res["timestamps"].dtype == np.int64 and res["timestamps"][-1] == round((N - 1) * 1e6 / 60)
    assert det.resets == 9
    for v in range(9):
        if v == 3:
            assert np.isnan(kp[v]).all() and (sc[v] == 0).all() and res["status"]["c04"]["state"] == "missing"
            continue
        frames = [i for i in range(N) if not (v == 6 and i == 11)]
        np.testing.assert_array_equal(kp[v, frames, :, 0], np.repeat(np.array(frames)[:, None], 17, 1))
        assert (kp[v, frames, :, 1] == v + 1).all()  # reset before each view
    assert np.isnan(kp[6, 11]).all() and sc[6, 11] == 0  # the dropped frame is a hole, not a neighbour's copy
    assert res["status"]["c07"]["holes"] == [11]


def constant_onnx(path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    hm = np.zeros((1, 17, 16, 12), np.float32)
    hm[0, :, 5, 7] = 0.7
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["B", 3, 64, 48])
    nodes = [helper.make_node("ReduceMean", ["input"], ["m"], axes=[1, 2, 3], keepdims=1),
             helper.make_node("Mul", ["m", "zero"], ["z"]), helper.make_node("Add", ["z", "hm"], ["heatmaps"])]
    inits = [numpy_helper.from_array(np.zeros((), np.float32), "zero"), numpy_helper.from_array(hm, "hm")]
    out = helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT, ["B", 17, 16, 12])
    model = helper.make_model(helper.make_graph(nodes, "c", [inp], [out], inits),
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


WHOLE = DetectConfig(boxes="frame")  # the constant model's answer depends on the box: check the whole-frame maths


def test_parallel_resume(videos, tmp_path):
    spec = DetectorSpec("onnx", str(constant_onnx(tmp_path / "c.onnx")))
    cfg = VideoConfig(expected_size=(W, H))
    parts = tmp_path / "parts"
    done = []
    res = detect_sequence_parallel(videos, SEQ, spec, n_frames=N, video_config=cfg, workers=1, parts_dir=parts,
                                   progress=done.append, config=WHOLE)
    assert sum(done) == 9 * N
    # the constant heatmap peak (7, 5) -> input (28, 20) of 48x64; whole-frame box 128x72 -> 128x170.67 x 1.25
    s = 160 / 48
    np.testing.assert_allclose(res["keypoints2d"][0, :, 0, :2], np.tile([64 + (28 - 24) * s, 36 + (20 - 32) * s],
                                                                        (N, 1)), atol=1e-3)
    assert np.isnan(res["keypoints2d"][3]).all() and np.isnan(res["keypoints2d"][6, 11]).all()
    assert sorted(p.name for p in parts.iterdir()) == [f"c0{v}.npz" for v in range(1, 10) if v != 4]
    # tamper with a finished view: a re-run with the same settings must reuse it, other settings must not
    with np.load(parts / "c01.npz") as z:
        saved = dict(z)
    saved["keypoints2d"] = np.full_like(saved["keypoints2d"], 123.0)
    np.savez(parts / "c01.npz", **saved)
    again = detect_sequence_parallel(videos, SEQ, spec, n_frames=N, video_config=cfg, workers=1, parts_dir=parts,
                                     config=WHOLE)
    assert (again["keypoints2d"][0] == 123.0).all()
    np.testing.assert_array_equal(again["keypoints2d"][1:], res["keypoints2d"][1:])
    other = detect_sequence_parallel(videos, SEQ, spec, n_frames=N, video_config=VideoConfig(expected_size=(W, H),
                                     batch_size=4), workers=1, parts_dir=parts, config=WHOLE)
    np.testing.assert_array_equal(other["keypoints2d"], res["keypoints2d"])
    # two worker processes give the same answer as one
    par = detect_sequence_parallel(videos, SEQ, spec, n_frames=N, video_config=cfg, workers=2, config=WHOLE)
    np.testing.assert_array_equal(par["keypoints2d"], res["keypoints2d"])
    np.testing.assert_array_equal(par["det_scores"], res["det_scores"])
    assert par["status"]["c07"]["holes"] == [11] and par["status"]["c04"]["state"] == "missing"


def test_cli_onnx_backend(videos, tmp_path):
    from aistpp.cli import main
    from aistpp.io.annotations import read_keypoints2d

    model = constant_onnx(tmp_path / "c.onnx")
    out = tmp_path / "kp.pkl"
    assert main(["detect", "--videos", str(videos), "--sequence", SEQ, "--out", str(out), "--backend", "onnx",
                 "--model", str(model), "--size", f"{W}x{H}", "--frames", str(N), "--boxes", "frame"]) == 0
    got = read_keypoints2d(out)
    s = 160 / 48  # whole-frame box, as in test_parallel_resume
    np.testing.assert_allclose(got["keypoints2d"][8, :, 5, :2], np.tile([64 + 4 * s, 36 - 12 * s], (N, 1)),
                               atol=1e-3)
    assert np.isnan(got["keypoints2d"][3]).all() and np.isnan(got["keypoints2d"][6, 11]).all()
    assert (got["det_scores"][0] == pytest.approx(0.7))
