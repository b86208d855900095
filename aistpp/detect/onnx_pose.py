"""ONNX Runtime backend for top-down COCO-17 pose models that users bring as ``.onnx`` files.

Supported outputs (detected from the model's output shapes):

- SimCC (RTMPose): two outputs ``simcc_x`` (B, 17, W * k) and ``simcc_y`` (B, 17, H * k); the coordinate is
  ``argmax / k`` in model-input pixels (k = split ratio, found as output length / input size; RTMPose: 2.0),
  the confidence the smaller of the two maxima (as mmpose does), clipped to [0, 1].
- Heatmaps (ViTPose, HRNet, SimpleBaseline): one output (B, 17, h, w); the coordinate is the argmax refined to
  sub-pixel precision by a parabola through the peak and its neighbours (on log values where they are positive,
  which is exact for a Gaussian peak), times the stride ``W / w`` (mmpose's convention); confidence = peak value.

Preprocessing (mmpose's top-down pipeline): a person box (x0, y0, x1, y1) px is grown to the model's aspect
ratio and padded by ``padding`` (1.25), warped with an affine map onto the model input (W, H), normalized with
the ImageNet mean/std in RGB order (0..255 scale) and laid out NCHW float32. Keypoints are mapped back through the
inverse affine map to full-frame pixels. Person boxes (``OnnxPoseConfig.box_source``):

- ``frame``: the whole frame (no person detector; fine when the person fills the frame);
- ``previous``: the box around the previous batch's last confident keypoints (one dancer per view, as in AIST++;
  60 fps motion within a batch stays inside the padded box); the whole frame until a person is found;
- ``mediapipe``: boxes around MediaPipe Pose keypoints (offline person finder; whole frame where it finds none);
- or pass ``boxes`` per call, or ``box_fn(frames) -> (B, 4)``.

The person score is the mean keypoint confidence.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from aistpp.detect.base import check_frames
from aistpp.detect.localize import keypoint_box
from aistpp.errors import AistppError
from aistpp.skeleton import NUM_JOINTS

log = logging.getLogger(__name__)

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class OnnxPoseConfig:
    """input_size: (W, H) of the model input, None = read from the model (needs static H, W).
    padding: box growth factor (mmpose top-down: 1.25). mean/std: per RGB channel on the 0..255 scale.
    threads: ONNX Runtime intra-op threads (0 = its default). box_source: frame, previous or mediapipe (see the
    module docstring); min_box: smallest box side in px built from keypoints; box_conf: keypoints at or above this
    confidence make a box (and a mean at or above it keeps a ``previous`` box)."""

    input_size: tuple[int, int] | None = None
    padding: float = 1.25
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    threads: int = 0
    box_source: str = "frame"
    min_box: float = 64.0
    box_conf: float = 0.3

    def __post_init__(self):
        if self.box_source not in BOX_SOURCES:
            raise AistppError(f"box_source must be one of {', '.join(BOX_SOURCES)}, got {self.box_source!r}")

    def to_dict(self) -> dict:
        return {"backend": "onnx", **asdict(self)}


BOX_SOURCES = ("frame", "previous", "mediapipe")


# the name this module exported before the shared localization: the same box as every backend uses
keypoints_to_boxes = keypoint_box


def box_to_center_scale(boxes, aspect: float, padding: float = 1.25) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (B, 4) x0, y0, x1, y1 px -> centers (B, 2) px and sizes (B, 2) px (w, h) with w / h = ``aspect``
    (the shorter side is grown), times ``padding``."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    center = (b[:, :2] + b[:, 2:]) / 2
    w = b[:, 2] - b[:, 0]
    h = b[:, 3] - b[:, 1]
    w2 = np.where(w > h * aspect, w, h * aspect)
    h2 = np.where(w > h * aspect, w / aspect, h)
    return center, np.stack([w2, h2], -1) * padding


def crop_affine(center, size, input_size) -> np.ndarray:
    """2x3 affine maps (B, 2, 3) taking the frame to the model input: the box (center, size) -> (0..W, 0..H)."""
    center = np.asarray(center, np.float64).reshape(-1, 2)
    size = np.asarray(size, np.float64).reshape(-1, 2)
    win, hin = input_size
    sx, sy = win / size[:, 0], hin / size[:, 1]
    m = np.zeros((len(center), 2, 3))
    m[:, 0, 0], m[:, 1, 1] = sx, sy
    m[:, 0, 2] = win / 2 - center[:, 0] * sx
    m[:, 1, 2] = hin / 2 - center[:, 1] * sy
    return m


def preprocess(frames, boxes, input_size, padding=1.25, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """frames (B, H, W, 3) uint8 RGB, boxes (B, 4) -> model input (B, 3, Hin, Win) float32, affines (B, 2, 3)."""
    import cv2

    frames = check_frames(frames)
    win, hin = input_size
    center, size = box_to_center_scale(boxes, win / hin, padding)
    mats = crop_affine(center, size, input_size)
    out = np.empty((len(frames), 3, hin, win), np.float32)
    mean = np.asarray(mean, np.float32)[:, None, None]
    std = np.asarray(std, np.float32)[:, None, None]
    for i, (img, m) in enumerate(zip(frames, mats)):
        crop = cv2.warpAffine(img, m, (win, hin), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        out[i] = (crop.transpose(2, 0, 1).astype(np.float32) - mean) / std
    return out, mats


def to_frame(points, affines) -> np.ndarray:
    """Model-input points (B, J, 2) -> frame px through the inverse of the affine maps (B, 2, 3) (scale + shift)."""
    p = np.asarray(points, np.float64)
    m = np.asarray(affines, np.float64)
    x = (p[..., 0] - m[:, None, 0, 2]) / m[:, None, 0, 0]
    y = (p[..., 1] - m[:, None, 1, 2]) / m[:, None, 1, 1]
    return np.stack([x, y], -1)


def _parabola_offset(left, mid, right) -> np.ndarray:
    """Sub-pixel offset in [-0.5, 0.5] of a peak from three samples (log values when all positive)."""
    left, mid, right = (np.asarray(a, np.float64) for a in (left, mid, right))
    pos = (left > 0) & (mid > 0) & (right > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        l_, m_, r_ = (np.where(pos, np.log(np.where(pos, a, 1)), a) for a in (left, mid, right))
        den = l_ - 2 * m_ + r_
        off = np.where(den < 0, 0.5 * (l_ - r_) / den, 0.0)
    return np.clip(np.nan_to_num(off), -0.5, 0.5)


def decode_heatmaps(heatmaps) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps (B, J, h, w) -> peak coordinates (B, J, 2) in heatmap pixels (sub-pixel) and peak values (B, J)."""
    hm = np.asarray(heatmaps, np.float32)
    b, j, h, w = hm.shape
    flat = hm.reshape(b, j, -1)
    idx = flat.argmax(-1)
    val = np.take_along_axis(flat, idx[..., None], -1)[..., 0]
    y, x = np.divmod(idx, w)
    xy = np.stack([x, y], -1).astype(np.float64)
    bi, ji = np.meshgrid(np.arange(b), np.arange(j), indexing="ij")
    inner_x = (x > 0) & (x < w - 1)
    inner_y = (y > 0) & (y < h - 1)
    xl, xr = np.clip(x - 1, 0, w - 1), np.clip(x + 1, 0, w - 1)
    yu, yd = np.clip(y - 1, 0, h - 1), np.clip(y + 1, 0, h - 1)
    dx = _parabola_offset(hm[bi, ji, y, xl], val, hm[bi, ji, y, xr])
    dy = _parabola_offset(hm[bi, ji, yu, x], val, hm[bi, ji, yd, x])
    xy[..., 0] += np.where(inner_x, dx, 0)
    xy[..., 1] += np.where(inner_y, dy, 0)
    return xy, val


def decode_simcc(simcc_x, simcc_y, split_ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """SimCC vectors (B, J, Wk), (B, J, Hk) -> coordinates (B, J, 2) in input pixels (argmax / k) and
    confidences (B, J) = min of the two maxima (mmpose ``get_simcc_maximum``)."""
    sx, sy = np.asarray(simcc_x, np.float32), np.asarray(simcc_y, np.float32)
    x, y = sx.argmax(-1), sy.argmax(-1)
    conf = np.minimum(sx.max(-1), sy.max(-1))
    return np.stack([x, y], -1) / float(split_ratio), conf


class OnnxPoseDetector:
    """Top-down pose model in ONNX Runtime: ``det(frames, boxes=None) -> (B, 17, 3) px + conf, (B,) scores``.

    ``supports_crops`` / ``takes_boxes``: :mod:`aistpp.detect.localize` hands it the person boxes it finds.
    """

    supports_crops = True
    takes_boxes = True

    def __init__(self, model_path: str | Path, config: OnnxPoseConfig = OnnxPoseConfig(),
                 box_fn: Callable[[np.ndarray], np.ndarray] | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise AistppError("the ONNX backend needs onnxruntime: pip install 'aistpp[onnx]'") from None
        model_path = Path(model_path)
        if not model_path.exists():
            raise AistppError("ONNX model not found", model_path)
        opts = ort.SessionOptions()
        if config.threads:
            opts.intra_op_num_threads = config.threads
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
        except Exception as err:
            raise AistppError(f"cannot load ONNX model: {' '.join(str(err).split())}", model_path) from None
        self.config, self.box_fn, self.path = config, box_fn, model_path
        self._previous = None  # (4,) box for box_source="previous"
        self._mediapipe = None
        self.last_boxes = None  # (B, 4) boxes of the last call, for inspection
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        if config.input_size is not None:
            self.input_size = tuple(int(v) for v in config.input_size)
        else:
            hin, win = inp.shape[2], inp.shape[3]
            if not (isinstance(hin, int) and isinstance(win, int)):
                raise AistppError("model input has dynamic H, W; pass OnnxPoseConfig(input_size=(W, H))", model_path)
            self.input_size = (win, hin)
        outs = self.session.get_outputs()
        ranks = [len(o.shape) for o in outs]
        if len(outs) >= 2 and ranks[:2] == [3, 3]:
            self.kind = "simcc"
            names = [o.name for o in outs]
            self._order = (0, 1)
            if "simcc_x" in names and "simcc_y" in names:
                self._order = (names.index("simcc_x"), names.index("simcc_y"))
        elif ranks[0] == 4:
            self.kind = "heatmap"
        else:
            raise AistppError(f"unsupported outputs {[o.shape for o in outs]}: expected heatmaps (B, 17, h, w) or "
                              "SimCC (B, 17, W*k), (B, 17, H*k)", model_path)

    def to_dict(self) -> dict:
        return {**self.config.to_dict(), "model": str(self.path), "kind": self.kind,
                "input_size": list(self.input_size)}

    def reset(self) -> None:
        """Forget the previous box (a new view starts)."""
        self._previous = None

    def close(self) -> None:
        if self._mediapipe is not None:
            self._mediapipe.close()
            self._mediapipe = None

    def _boxes(self, frames) -> np.ndarray:
        b, h, w = frames.shape[:3]
        full = np.tile(np.array([0, 0, w, h], np.float64), (b, 1))
        c = self.config
        if self.box_fn is not None:
            boxes = np.asarray(self.box_fn(frames), np.float64).reshape(b, 4)
        elif c.box_source == "previous" and self._previous is not None:
            boxes = np.tile(self._previous, (b, 1))
        elif c.box_source == "mediapipe":
            if self._mediapipe is None:
                from aistpp.detect.mediapipe_pose import MediaPipeConfig, MediaPipeDetector

                self._mediapipe = MediaPipeDetector(MediaPipeConfig(static_image_mode=True))
            boxes = keypoints_to_boxes(self._mediapipe(frames)[0], c.box_conf, c.min_box)
        else:
            boxes = full
        bad = ~np.isfinite(boxes).all(-1)
        boxes[bad] = full[bad]
        return boxes

    def __call__(self, frames, boxes=None) -> tuple[np.ndarray, np.ndarray]:
        frames = check_frames(frames)
        if boxes is None:
            boxes = self._boxes(frames)
        self.last_boxes = np.asarray(boxes, np.float64)
        x, mats = preprocess(frames, boxes, self.input_size, self.config.padding, self.config.mean,
                             self.config.std)
        outs = self.session.run(None, {self.input_name: x})
        win, hin = self.input_size
        if self.kind == "simcc":
            sx, sy = outs[self._order[0]], outs[self._order[1]]
            k = sx.shape[-1] / win
            if abs(sy.shape[-1] / hin - k) > 1e-6:
                raise AistppError(f"SimCC outputs {sx.shape}, {sy.shape} do not match input {win}x{hin}", self.path)
            pts, conf = decode_simcc(sx, sy, k)
        else:
            hm = outs[0]
            pts, conf = decode_heatmaps(hm)
            pts = pts * np.array([win / hm.shape[3], hin / hm.shape[2]])
        if pts.shape[1] != NUM_JOINTS:
            raise AistppError(f"model gives {pts.shape[1]} keypoints, expected COCO-17", self.path)
        xy = to_frame(pts, mats)
        conf = np.clip(conf, 0, 1)
        kp = np.concatenate([xy, conf[..., None]], -1).astype(np.float32)
        score = conf.mean(-1).astype(np.float32)
        if self.config.box_source == "previous":
            nxt = keypoints_to_boxes(kp[-1:], self.config.box_conf, self.config.min_box)[0]
            self._previous = nxt if np.isfinite(nxt).all() and score[-1] >= self.config.box_conf else None
        return kp, score
