"""ONNX backend: decoding on small ONNX models built here with the onnx helper API.

1. A constant-output heatmap model (Gaussian peaks at known sub-pixel positions) and a constant SimCC model
   (one-hot peaks): the decoder must recover the peaks, mapped to frame pixels by the box we computed by hand.
2. An image-dependent heatmap model (heatmap = 4x4 average-pooled red channel of the input, for all 17 joints):
   a bright blob painted at a known frame pixel must come back at that pixel, which exercises crop, affine,
   normalization, decoding and the inverse map together.
"""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from aistpp.detect import OnnxPoseDetector, decode_heatmaps  # noqa: E402
from aistpp.errors import AistppError  # noqa: E402

WIN, HIN = 192, 256  # model input (W, H)


def save(graph, path):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def constant_model(path, outputs: dict):
    """Model with input (B, 3, 256, 192) whose outputs are the given constants (1, ...) broadcast to batch B."""
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["B", 3, HIN, WIN])
    nodes = [helper.make_node("ReduceMean", ["input"], ["m"], axes=[1, 2, 3], keepdims=1),
             helper.make_node("Mul", ["m", "zero"], ["z4"]),
             helper.make_node("Squeeze", ["z4", "ax"], ["z3"])]
    inits = [numpy_helper.from_array(np.zeros((), np.float32), "zero"),
             numpy_helper.from_array(np.array([3], np.int64), "ax")]
    outs = []
    for name, value in outputs.items():
        value = np.asarray(value, np.float32)
        inits.append(numpy_helper.from_array(value, f"{name}_c"))
        nodes.append(helper.make_node("Add", ["z4" if value.ndim == 4 else "z3", f"{name}_c"], [name]))
        outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["B", *value.shape[1:]]))
    return save(helper.make_graph(nodes, "const", [inp], outs, inits), path)


def gaussian_heatmaps(peaks, h=64, w=48, sigma=2.0):
    ys, xs = np.mgrid[0:h, 0:w]
    return np.stack([np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma ** 2)) for x, y in peaks])[None]


def test_decode_heatmaps_subpixel():
    rng = np.random.default_rng(0)
    peaks = np.c_[rng.uniform(3, 44, 17), rng.uniform(3, 60, 17)]
    hm = gaussian_heatmaps(peaks) * 0.9
    xy, val = decode_heatmaps(hm)
    np.testing.assert_allclose(xy[0], peaks, atol=1e-3)
    assert np.all(val > 0.8)


def test_heatmap_model_peaks_to_frame(tmp_path):
    rng = np.random.default_rng(1)
    peaks = np.c_[rng.uniform(3, 44, 17), rng.uniform(3, 60, 17)]
    det = OnnxPoseDetector(constant_model(tmp_path / "hm.onnx", {"heatmaps": gaussian_heatmaps(peaks) * 0.8}))
    assert det.kind == "heatmap" and det.input_size == (WIN, HIN)
    frames = np.zeros((2, 480, 640, 3), np.uint8)
    kp, score = det(frames, boxes=np.array([[100, 50, 300, 450], [0, 0, 640, 480]]))
    # by hand: box 1 is 200x400 (aspect 0.5 < 0.75: width grows to 300), x 1.25 -> 375x500 around (200, 250);
    # input pixel = heatmap pixel * 4; frame = center + (input - (96, 128)) * 375 / 192
    s1 = 375 / 192
    exp1 = np.c_[200 + (peaks[:, 0] * 4 - 96) * s1, 250 + (peaks[:, 1] * 4 - 128) * s1]
    # box 2 is 640x480 (aspect 1.33 > 0.75: height grows to 853.33) x 1.25 -> 800 x 1066.67 around (320, 240)
    s2 = 800 / 192
    exp2 = np.c_[320 + (peaks[:, 0] * 4 - 96) * s2, 240 + (peaks[:, 1] * 4 - 128) * s2]
    np.testing.assert_allclose(kp[0, :, :2], exp1, atol=0.02)
    np.testing.assert_allclose(kp[1, :, :2], exp2, atol=0.02)
    sampled_max = (gaussian_heatmaps(peaks) * 0.8).max(axis=(2, 3))[0]  # confidence = value at the argmax pixel
    np.testing.assert_allclose(kp[..., 2], np.broadcast_to(sampled_max, (2, 17)), atol=1e-6)
    np.testing.assert_allclose(score, sampled_max.mean(), atol=1e-6)


def test_simcc_model_peaks_to_frame(tmp_path):
    k = 2.0
    bx = np.arange(17) * 20 + 7          # simcc bins, x: 7..327 of 384
    by = np.arange(17) * 25 + 11         # y: 11..411 of 512
    sx = np.zeros((1, 17, int(WIN * k)), np.float32)
    sy = np.zeros((1, 17, int(HIN * k)), np.float32)
    sx[0, np.arange(17), bx] = 0.9
    sy[0, np.arange(17), by] = np.linspace(0.3, 0.7, 17)
    det = OnnxPoseDetector(constant_model(tmp_path / "simcc.onnx", {"simcc_y": sy, "simcc_x": sx}))
    assert det.kind == "simcc"
    frames = np.zeros((1, 300, 400, 3), np.uint8)
    kp, score = det(frames, boxes=np.array([[50, 0, 200, 200]]))
    # box 150x200 (aspect 0.75 exactly) x 1.25 -> 187.5 x 250 around (125, 100); frame = c + (bin/2 - in/2) * s
    s = 187.5 / 192
    np.testing.assert_allclose(kp[0, :, 0], 125 + (bx / k - 96) * s, atol=1e-3)
    np.testing.assert_allclose(kp[0, :, 1], 100 + (by / k - 128) * s, atol=1e-3)
    np.testing.assert_allclose(kp[0, :, 2], np.linspace(0.3, 0.7, 17), atol=1e-6)  # min of the two maxima


def pooled_red_model(path):
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["B", 3, HIN, WIN])
    nodes = [helper.make_node("Slice", ["input", "s0", "s1", "ax"], ["red"]),
             helper.make_node("AveragePool", ["red"], ["pooled"], kernel_shape=[4, 4], strides=[4, 4]),
             helper.make_node("Concat", ["pooled"] * 17, ["heatmaps"], axis=1)]
    inits = [numpy_helper.from_array(np.array([0], np.int64), "s0"),
             numpy_helper.from_array(np.array([1], np.int64), "s1"),
             numpy_helper.from_array(np.array([1], np.int64), "ax")]
    out = helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT, ["B", 17, HIN // 4, WIN // 4])
    return save(helper.make_graph(nodes, "pool", [inp], [out], inits), path)


def test_image_dependent_model_finds_blob(tmp_path):
    det = OnnxPoseDetector(pooled_red_model(tmp_path / "pool.onnx"))
    h, w = 540, 960
    ys, xs = np.mgrid[0:h, 0:w]
    frames = []
    truth = [(500.0, 260.0), (333.3, 150.7), (700.2, 400.9)]
    for x, y in truth:
        blob = 255 * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * 50.0 ** 2))
        frames.append(np.repeat(blob[..., None], 3, -1).astype(np.uint8))
    kp, _ = det(np.stack(frames))  # box = whole frame: 960x540 -> 960x1280 (aspect 0.75) x 1.25 = 1200x1600
    # One input px = 1200 / 192 = 6.25 frame px, one heatmap px = 25 frame px. Heatmap pixel j averages input
    # pixels 4j..4j+3 (centre 4j + 1.5), while the decoder maps j -> 4j (mmpose's convention, what trained models
    # follow), so this model reports every point 1.5 input px = 9.375 frame px up-left of the blob centre.
    for i, (x, y) in enumerate(truth):
        err = np.hypot(kp[i, :, 0] - (x - 9.375), kp[i, :, 1] - (y - 9.375))
        assert err.max() < 3.0, (i, err.max())  # an eighth of a heatmap pixel


def test_bad_model_outputs(tmp_path):
    path = constant_model(tmp_path / "bad.onnx", {"out": np.zeros((1, 17), np.float32) + np.zeros((1, 1))})
    with pytest.raises(AistppError, match="unsupported outputs"):
        OnnxPoseDetector(path)
    with pytest.raises(AistppError, match="not found"):
        OnnxPoseDetector(tmp_path / "nope.onnx")


def test_previous_box_tracking(tmp_path):
    from aistpp.detect.onnx_pose import OnnxPoseConfig, keypoints_to_boxes

    kp = np.array([[[10, 20, 0.9], [50, 30, 0.8], [500, 500, 0.1]] + [[np.nan, np.nan, 0]] * 14,
                   [[10, 20, 0.9]] + [[np.nan, np.nan, 0]] * 16])
    boxes = keypoints_to_boxes(kp, min_conf=0.3, min_size=64)
    np.testing.assert_allclose(boxes[0], [-2, -7, 62, 57])  # 40x10 around (30, 25) grown to 64x64
    assert np.isnan(boxes[1]).all()  # one confident point is not a person

    det = OnnxPoseDetector(pooled_red_model(tmp_path / "pool.onnx"),
                           OnnxPoseConfig(box_source="previous", min_box=200))
    h, w = 540, 960
    ys, xs = np.mgrid[0:h, 0:w]
    x, y = 700.2, 300.9
    blob = 255 * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * 50.0 ** 2))
    frames = np.repeat(np.repeat(blob[None, ..., None], 3, -1), 2, 0).astype(np.uint8)
    first, _ = det(frames)
    np.testing.assert_allclose(det.last_boxes, [[0, 0, w, h]] * 2)
    second, _ = det(frames)
    # all 17 points at one spot: the box is min_box (200) square around the first answer
    np.testing.assert_allclose(det.last_boxes[0], np.r_[first[-1, 0, :2] - 100, first[-1, 0, :2] + 100], atol=1e-3)
    # crop 200x200 -> 200x266.7 x 1.25 = 250 px wide: the model's 1.5 input px bias is now 1.95 frame px
    err = np.hypot(second[:, :, 0] - (x - 1.953), second[:, :, 1] - (y - 1.953))
    assert err.max() < 1.0
    det.reset()
    det(frames)
    np.testing.assert_allclose(det.last_boxes, [[0, 0, w, h]] * 2)  # a new view starts from the whole frame
