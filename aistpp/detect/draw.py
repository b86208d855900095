"""Drawing COCO-17 keypoints and skeleton edges on images with OpenCV (reusable by ``aistpp.viz``).

Colours (RGB): subject-left points/edges orange, subject-right blue, centre (nose, torso cross edges) green, so a
left/right swap is visible at a glance.
"""

from __future__ import annotations

import numpy as np

from aistpp.skeleton import COCO17, DRAW_EDGES

LEFT_RGB = (255, 140, 0)
RIGHT_RGB = (30, 144, 255)
CENTER_RGB = (50, 205, 50)


def _side(j: int) -> tuple[int, int, int]:
    name = COCO17[j]
    return LEFT_RGB if name.startswith("left_") else RIGHT_RGB if name.startswith("right_") else CENTER_RGB


def _edge_colour(a: int, b: int) -> tuple[int, int, int]:
    ca, cb = _side(a), _side(b)
    return ca if ca == cb else CENTER_RGB


def draw_keypoints(image, keypoints, min_conf: float = 0.1, edges=DRAW_EDGES, radius: int | None = None,
                   thickness: int | None = None, label: str | None = None) -> np.ndarray:
    """Draw one person's keypoints (17, 3) px + conf on a copy of ``image`` (H, W, 3) uint8 RGB.

    Points with confidence < ``min_conf`` or NaN are skipped, with the edges touching them. Sizes scale with
    the image (about 5 px points at 1080p). ``label`` is written in the top-left corner.
    """
    import cv2

    img = np.ascontiguousarray(np.array(image, np.uint8, copy=True))
    kp = np.asarray(keypoints, np.float64).reshape(-1, 3)
    scale = max(img.shape[:2]) / 1920
    r = radius or max(3, int(round(6 * scale)))
    t = thickness or max(2, int(round(3 * scale)))
    ok = np.isfinite(kp).all(-1) & (kp[:, 2] >= min_conf)
    pts = np.round(np.nan_to_num(kp[:, :2])).astype(int)
    for a, b in edges:
        if ok[a] and ok[b]:
            cv2.line(img, tuple(pts[a]), tuple(pts[b]), _edge_colour(a, b), t, cv2.LINE_AA)
    for j in np.flatnonzero(ok):
        cv2.circle(img, tuple(pts[j]), r, _side(j), -1, cv2.LINE_AA)
        cv2.circle(img, tuple(pts[j]), r, (0, 0, 0), 1, cv2.LINE_AA)
    if label:
        cv2.putText(img, label, (10, 10 + int(30 * max(scale, 0.5))), cv2.FONT_HERSHEY_SIMPLEX,
                    max(scale, 0.5), (255, 255, 255), max(1, t // 2), cv2.LINE_AA)
    return img


def draw_batch(frames, keypoints, min_conf: float = 0.1, labels=None) -> np.ndarray:
    """Frames (B, H, W, 3) uint8 RGB + keypoints (B, 17, 3) -> drawn frames (B, H, W, 3)."""
    return np.stack([draw_keypoints(f, k, min_conf, label=None if labels is None else labels[i])
                     for i, (f, k) in enumerate(zip(frames, keypoints))])
