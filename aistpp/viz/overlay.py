"""2D overlays on the 9 views: the 3D keypoints projected through each camera (``CameraGroup.project``, with lens
distortion) drawn as a skeleton (:func:`aistpp.detect.draw.draw_keypoints`: subject-left orange, right blue), and the
2D detections as small white crosses, on the video frame when given, on a blank grey canvas otherwise. Tiles are
downscaled copies of the full 1920x1080 frame; a 3x3 mosaic puts the views in c01..c09 order.

Images here are RGB (the video decoder's order); :func:`aistpp.viz.animate.write_video` wants BGR, so callers flip.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from aistpp.errors import AistppError

log = logging.getLogger(__name__)

CANVAS_RGB = (64, 64, 64)
DETECTION_RGB = (255, 255, 255)


def draw_view(keypoints2d_projected: np.ndarray | None, size, tile=(640, 360), frame: np.ndarray | None = None,
              detections: np.ndarray | None = None, min_confidence: float = 0.15, label: str | None = None
              ) -> np.ndarray:
    """One view tile (tile_h, tile_w, 3) uint8 RGB.

    keypoints2d_projected: (17, 2) px of the full frame ``size`` (w, h) (NaN = not drawn); frame: (h, w, 3) RGB
    video frame or None (grey canvas); detections: (17, 3) px + confidence, drawn as crosses where confidence >=
    ``min_confidence``. Points are scaled by tile / size.
    """
    import cv2

    from aistpp.detect.draw import draw_keypoints

    tw, th = int(tile[0]), int(tile[1])
    sx, sy = tw / float(size[0]), th / float(size[1])
    if frame is None:
        img = np.empty((th, tw, 3), np.uint8)
        img[:] = CANVAS_RGB
    else:
        img = cv2.resize(np.asarray(frame, np.uint8), (tw, th), interpolation=cv2.INTER_AREA)
    if detections is not None:
        det = np.asarray(detections, np.float64)
        ok = np.isfinite(det).all(-1) & (det[:, 2] >= min_confidence)
        for x, y in det[ok, :2] * (sx, sy):
            cv2.drawMarker(img, (int(round(x)), int(round(y))), DETECTION_RGB, cv2.MARKER_CROSS,
                           max(5, int(0.012 * tw)), 1, cv2.LINE_AA)
    if keypoints2d_projected is not None:
        p = np.asarray(keypoints2d_projected, np.float64) * (sx, sy)
        kp = np.concatenate([p, np.ones((len(p), 1))], axis=1)
        img = draw_keypoints(img, kp, min_conf=0.5)
    if label:
        cv2.putText(img, label, (6, th - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1, cv2.LINE_AA)
    return img


def mosaic(tiles, cols: int = 3) -> np.ndarray:
    """Tiles (each (h, w, 3), same size) in a grid of ``cols`` columns, row-major; missing cells are black."""
    tiles = list(tiles)
    if not tiles:
        raise AistppError("no tiles for a mosaic")
    h, w = tiles[0].shape[:2]
    rows = -(-len(tiles) // cols)
    out = np.zeros((rows * h, cols * w, 3), np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        out[r * h:(r + 1) * h, c * w:(c + 1) * w] = t
    return out


def overlay_frame(keypoints3d: np.ndarray | None, cameras, frames=None, keypoints2d: np.ndarray | None = None,
                  tile=(640, 360), min_confidence: float = 0.15, frame_index: int | None = None) -> list[np.ndarray]:
    """The V view tiles of one frame: keypoints3d (17, 3) cm projected through ``cameras``; frames: list of V RGB
    frames (or None entries / None); keypoints2d: (V, 17, 3) detections or None. Returns V (h, w, 3) RGB tiles."""
    proj = None if keypoints3d is None else cameras.project(np.asarray(keypoints3d, np.float64))  # (V, 17, 2)
    tiles = []
    for v, cam in enumerate(cameras):
        fr = None if frames is None else frames[v]
        label = cam.name if frame_index is None else f"{cam.name} frame {frame_index}"
        tiles.append(draw_view(None if proj is None else proj[v], cam.size, tile, fr,
                               None if keypoints2d is None else keypoints2d[v], min_confidence, label))
    return tiles


def _video_frames(videos_dir, sequence, n_frames, views, indices):
    """Yield (index, {view: RGB frame or None}) for the sorted grid ``indices`` of ``sequence``."""
    from aistpp.video import SequenceReader

    reader = SequenceReader(videos_dir, sequence, n_frames=n_frames, views=views)
    want = set(int(i) for i in indices)
    last = max(want)
    for batch in reader:
        for k in range(len(batch.timestamps)):
            i = batch.start + k
            if i in want:
                yield i, {v: (None if batch.frames[v] is None or not batch.valid[j, k] else batch.frames[v][k])
                          for j, v in enumerate(batch.views)}
        if batch.start + len(batch.timestamps) > last:
            break


def overlay_images(keypoints3d: np.ndarray | None, cameras, indices, keypoints2d=None, videos_dir=None,
                   sequence: str | None = None, tile=(640, 360), min_confidence: float = 0.15):
    """Yield (frame index, mosaic (3 h, 3 w, 3) RGB) for each grid frame in ``indices`` (sorted).

    keypoints3d (N, 17, 3) cm or None; keypoints2d (V, N, 17, 3) or None; with ``videos_dir`` and ``sequence`` the
    tiles show the decoded videos (views that are missing or unreadable fall back to the blank canvas).
    """
    indices = sorted(int(i) for i in indices)
    n = None
    if keypoints3d is not None:
        n = len(keypoints3d)
    elif keypoints2d is not None:
        n = keypoints2d.shape[1]
    if n is not None and indices and (indices[0] < 0 or indices[-1] >= n):
        raise AistppError(f"frame indices must lie in 0..{n - 1}, got {indices[0]}..{indices[-1]}")
    if videos_dir is not None:
        from aistpp.naming import VIEWS

        views = tuple(VIEWS[:len(cameras)])
        source = ((i, [fr[v] for v in views]) for i, fr in _video_frames(videos_dir, sequence, n, views, indices))
    else:
        source = ((i, None) for i in indices)
    for i, frames in source:
        tiles = overlay_frame(None if keypoints3d is None else keypoints3d[i], cameras, frames,
                              None if keypoints2d is None else keypoints2d[:, i], tile, min_confidence, i)
        yield i, mosaic(tiles)


def write_overlay_video(path, keypoints3d, cameras, indices, keypoints2d=None, videos_dir=None, sequence=None,
                        tile=(640, 360), fps: float = 60.0) -> Path:
    """The 3x3 overlay mosaic of the given frames as an mp4/gif (see :func:`overlay_images`)."""
    from aistpp.viz.animate import write_video

    frames = (img[..., ::-1] for _, img in overlay_images(keypoints3d, cameras, indices, keypoints2d, videos_dir,
                                                          sequence, tile))
    return write_video(path, frames, fps)


def write_overlay_png(path, image_rgb: np.ndarray) -> Path:
    """Write one RGB image as PNG atomically."""
    import cv2

    from aistpp.io.atomic import atomic_path

    with atomic_path(path, suffix=".png") as tmp:
        if not cv2.imwrite(str(tmp), np.ascontiguousarray(image_rgb[..., ::-1])):
            raise AistppError("could not write PNG", path)
    return Path(path)
