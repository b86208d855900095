"""MediaPipe Pose (BlazePose) backend: 33 landmarks -> COCO-17, offline.

Only mediapipe <= 0.10.21 ships its pose models inside the wheel (``pose_detection.tflite``,
``pose_landmark_full.tflite``), and only ``model_complexity=1`` ("full") uses them; 0 ("lite") and 2 ("heavy")
download a model at first use, which fails on an offline machine, so they are refused here.

BlazePose finds one person per frame (the most prominent), so "the best person" is the only person. The legacy
solution does not expose its detection score; the person score here is the mean visibility of the 17 COCO points.
Confidence per point = MediaPipe ``visibility`` in [0, 1]. MediaPipe's LEFT_* landmarks are the subject's left,
as in COCO.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from dataclasses import asdict, dataclass

import numpy as np

from aistpp.detect.base import check_frames, empty_keypoints
from aistpp.errors import AistppError

log = logging.getLogger(__name__)

# MediaPipe Pose landmark index for each COCO-17 point (COCO order).
MEDIAPIPE_TO_COCO17 = (
    0,    # nose
    2,    # left_eye  (MediaPipe LEFT_EYE; 1/3 are the inner/outer corners)
    5,    # right_eye
    7,    # left_ear
    8,    # right_ear
    11,   # left_shoulder
    12,   # right_shoulder
    13,   # left_elbow
    14,   # right_elbow
    15,   # left_wrist
    16,   # right_wrist
    23,   # left_hip
    24,   # right_hip
    25,   # left_knee
    26,   # right_knee
    27,   # left_ankle
    28,   # right_ankle
)


@dataclass(frozen=True)
class MediaPipeConfig:
    """MediaPipe Pose settings. static_image_mode: detect on every frame (True; images, or frames in any order)
    or track between consecutive frames of one view (False; faster, smoother). model_complexity: only 1 runs
    offline. min_detection_confidence / min_tracking_confidence: MediaPipe's defaults (0.5)."""

    static_image_mode: bool = True
    model_complexity: int = 1
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5

    def __post_init__(self):
        if self.model_complexity != 1:
            raise AistppError(
                f"MediaPipe model_complexity={self.model_complexity} downloads its model at run time; only "
                "model_complexity=1 ships inside the mediapipe<=0.10.21 wheel and runs offline")

    def to_dict(self) -> dict:
        return {"backend": "mediapipe", **asdict(self)}


def landmarks_to_coco17(landmarks, width: int, height: int) -> np.ndarray:
    """MediaPipe landmarks (33, 4) [x, y normalized to the image, z, visibility] -> COCO-17 (17, 3) px + conf."""
    lm = np.asarray(landmarks, np.float32)
    sel = lm[list(MEDIAPIPE_TO_COCO17)]
    return np.stack([sel[:, 0] * width, sel[:, 1] * height, np.clip(sel[:, 3], 0, 1)], axis=-1).astype(np.float32)


@contextlib.contextmanager
def quiet_native_logs():
    """Silence what MediaPipe's C++ side (TFLite, absl, glog) writes straight to file descriptor 2 while its graph
    starts, unless ``AISTPP_DEBUG`` is set (``aistpp --debug``). Python's own logging is not affected outside."""
    if os.environ.get("AISTPP_DEBUG"):
        yield
        return
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded interpreters)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class MediaPipeDetector:
    """Batched wrapper of ``mp.solutions.pose.Pose``: ``det(frames (B, H, W, 3) uint8 RGB) -> (B, 17, 3), (B,)``.

    Frames are processed one by one (MediaPipe has no batch API). Use as a context manager or call ``close()``.
    ``supports_crops``: :mod:`aistpp.detect.localize` runs it on square crops around the dancer.
    """

    supports_crops = True

    def __init__(self, config: MediaPipeConfig = MediaPipeConfig()):
        self.config = config
        self._pose = None
        self._started = False  # the graph logs on its first frame

    def _make(self):
        try:
            import mediapipe as mp
        except ImportError:
            raise AistppError("the MediaPipe backend needs mediapipe: pip install 'aistpp[detect]'") from None
        c = self.config
        return mp.solutions.pose.Pose(static_image_mode=c.static_image_mode, model_complexity=c.model_complexity,
                                      smooth_landmarks=not c.static_image_mode, enable_segmentation=False,
                                      min_detection_confidence=c.min_detection_confidence,
                                      min_tracking_confidence=c.min_tracking_confidence)

    def reset(self) -> None:
        """Forget tracking state (a new view starts)."""
        self.close()

    def close(self) -> None:
        if self._pose is not None:
            self._pose.close()
            self._pose = None
            self._started = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __call__(self, frames) -> tuple[np.ndarray, np.ndarray]:
        frames = check_frames(frames)
        if self._pose is None:
            with quiet_native_logs():
                self._pose = self._make()
        b, h, w = frames.shape[:3]
        kp, sc = empty_keypoints(b)
        for i in range(b):
            if not self._started:
                with quiet_native_logs():
                    res = self._pose.process(np.ascontiguousarray(frames[i]))
                self._started = True
            else:
                res = self._pose.process(np.ascontiguousarray(frames[i]))
            if res.pose_landmarks is None:
                continue
            lm = [(p.x, p.y, p.z, p.visibility) for p in res.pose_landmarks.landmark]
            kp[i] = landmarks_to_coco17(lm, w, h)
            sc[i] = float(kp[i, :, 2].mean())
        return kp, sc
