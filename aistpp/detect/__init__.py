"""2D keypoint detection: the detector interface, backends and imports of existing keypoints.

- :mod:`aistpp.detect.base`: ``Detector`` protocol (frames (B, H, W, 3) uint8 RGB -> keypoints (B, 17, 3) px + conf,
  scores (B,)), :func:`detect_sequence` over the 9 views (-> keypoints2d (9, N, 17, 3), det_scores, timestamps).
- :mod:`aistpp.detect.mediapipe_pose`: MediaPipe Pose (offline, extra ``detect``).
- :mod:`aistpp.detect.onnx_pose`: top-down ONNX models (RTMPose SimCC, ViTPose/HRNet heatmaps; extra ``onnx``).
- :mod:`aistpp.detect.imports`: official keypoints2d pkl, OpenPose BODY_25 JSON folders.
- :mod:`aistpp.detect.localize`: finding the dancer (tracking, per-view background model, multi-view boxes, whole
  frame) so that detection runs top-down on a crop; ``BOX_SOURCES`` names the per-frame ``box_source`` codes.
- :mod:`aistpp.detect.runner`: :func:`detect_sequence_parallel` (one process per view, resumable) from a
  picklable :class:`DetectorSpec`.
- :mod:`aistpp.detect.draw`: drawing keypoints and skeletons (OpenCV): ``draw_keypoints``, ``draw_batch``.

Heavy backends are imported lazily: ``from aistpp.detect import MediaPipeDetector`` does not load mediapipe
until the first frame is processed.
"""

from aistpp.detect.base import (
    DetectConfig, Detector, best_person, check_frames, detect_one_view, detect_sequence, detect_view,
    empty_keypoints,
)
from aistpp.detect.imports import (
    BODY25_TO_COCO17, body25_to_coco17, coco17_to_body25, read_openpose_folder,
    read_openpose_json, read_openpose_sequence, write_openpose_folder, write_openpose_json,
)
from aistpp.detect.localize import BOX_SOURCES, LocalizeConfig, Localizer, multiview_boxes
from aistpp.detect.mediapipe_pose import MEDIAPIPE_TO_COCO17, MediaPipeConfig, MediaPipeDetector
from aistpp.detect.onnx_pose import (
    OnnxPoseConfig, OnnxPoseDetector, decode_heatmaps, decode_simcc, keypoints_to_boxes,
)
from aistpp.detect.runner import DetectorSpec, detect_sequence_parallel

__all__ = [
    "BODY25_TO_COCO17", "BOX_SOURCES", "LocalizeConfig", "Localizer", "multiview_boxes", "DetectConfig", "Detector", "DetectorSpec", "detect_sequence_parallel",
    "keypoints_to_boxes", "MEDIAPIPE_TO_COCO17", "MediaPipeConfig", "MediaPipeDetector",
    "OnnxPoseConfig", "OnnxPoseDetector", "best_person", "body25_to_coco17", "check_frames", "coco17_to_body25",
    "decode_heatmaps", "decode_simcc", "detect_one_view", "detect_sequence", "detect_view", "empty_keypoints",
    "read_openpose_folder", "read_openpose_json", "read_openpose_sequence",
    "write_openpose_folder", "write_openpose_json",
]
