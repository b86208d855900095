"""2D overlays on the 9 views: the 3D keypoints projected through each camera (``CameraGroup.project``, with lens
distortion) drawn as a skeleton (:func:`aistpp.detect.draw.draw_keypoints`: subject-left orange, right blue), and the
2D detections as small white crosses, on the video frame when given, on a blank grey canvas otherwise. Tiles are
downscaled copies of the full 1920x1080 frame; a 3x3 mosaic puts the views in c01..c09 order.

Images here are RGB (the video decoder's order); :func:`aistpp.viz.animate.write_animation` wants BGR, so callers flip.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from aistpp.errors import AistppError
from aistpp.viz.config import VizConfig

log = logging.getLogger(__name__)

CANVAS_RGB = (64, 64, 64)
DETECTION_RGB = (255, 255, 255)


def draw_view(keypoints2d_projected: np.ndarray | None, size, tile=VizConfig.tile, frame: np.ndarray | None = None,
              detections: np.ndarray | None = None, min_confidence: float = VizConfig.min_confidence,
              label: str | None = None, box=None) -> np.ndarray:
    """One view tile (tile_h, tile_w, 3) uint8 RGB.

    keypoints2d_projected: (17, 2) px of the full frame ``size`` (w, h) (NaN = not drawn); frame: (h, w, 3) RGB
    video frame or None (grey canvas); detections: (17, 3) px + confidence, drawn as crosses where confidence >=
    ``min_confidence``. Points are scaled by tile / size; with ``box`` (x0, y0, x1, y1) px the tile shows only that
    part of the frame (same aspect as the tile, see :func:`crop_boxes`) and points map into it.
    """
    import cv2

    from aistpp.detect.draw import draw_keypoints

    tw, th = int(tile[0]), int(tile[1])
    x0, y0, x1, y1 = (0.0, 0.0, float(size[0]), float(size[1])) if box is None else (float(b) for b in box)
    sx, sy = tw / (x1 - x0), th / (y1 - y0)
    if frame is None:
        img = np.empty((th, tw, 3), np.uint8)
        img[:] = CANVAS_RGB
    elif box is None:
        img = cv2.resize(np.asarray(frame, np.uint8), (tw, th), interpolation=cv2.INTER_AREA)
    else:
        # affine crop + scale; outside the frame stays the canvas colour
        m = np.array([[sx, 0, -x0 * sx], [0, sy, -y0 * sy]])
        img = cv2.warpAffine(np.asarray(frame, np.uint8), m, (tw, th), flags=cv2.INTER_AREA,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=CANVAS_RGB)
    if detections is not None:
        det = np.asarray(detections, np.float64)
        ok = np.isfinite(det).all(-1) & (det[:, 2] >= min_confidence)
        for x, y in (det[ok, :2] - (x0, y0)) * (sx, sy):
            cv2.drawMarker(img, (int(round(x)), int(round(y))), DETECTION_RGB, cv2.MARKER_CROSS,
                           max(5, int(0.012 * tw)), 1, cv2.LINE_AA)
    if keypoints2d_projected is not None:
        p = (np.asarray(keypoints2d_projected, np.float64) - (x0, y0)) * (sx, sy)
        kp = np.concatenate([p, np.ones((len(p), 1))], axis=1)
        img = draw_keypoints(img, kp, min_conf=0.5)
    if label:
        cv2.putText(img, label, (6, th - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1, cv2.LINE_AA)
    return img


def crop_boxes(keypoints3d: np.ndarray, cameras, tile=VizConfig.tile, margin: float = 0.3,
               min_height_px: float = 200.0) -> np.ndarray:
    """(V, 4) boxes x0, y0, x1, y1 px (full frame) around the projected keypoints3d (..., 17, 3) cm of all the
    given frames in each view, grown by ``margin`` of their size, at least ``min_height_px`` tall, with the aspect of
    ``tile``; one fixed box per view, so an overlay video does not jitter. Views that see nothing get the frame."""
    import warnings

    proj = cameras.project(np.asarray(keypoints3d, np.float64).reshape(-1, 3))  # (V, M, 2)
    aspect = tile[0] / float(tile[1])
    boxes = []
    for v, cam in enumerate(cameras):
        w, h = cam.size
        p = proj[v][np.isfinite(proj[v]).all(axis=1)]
        p = p[(p[:, 0] > -w) & (p[:, 0] < 2 * w) & (p[:, 1] > -h) & (p[:, 1] < 2 * h)]
        if not len(p):
            boxes.append((0.0, 0.0, float(w), float(h)))
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lo, hi = p.min(axis=0), p.max(axis=0)
        c = 0.5 * (lo + hi)
        bh = max((hi[1] - lo[1]) * (1 + 2 * margin), (hi[0] - lo[0]) * (1 + 2 * margin) / aspect, min_height_px)
        bw = bh * aspect
        boxes.append((c[0] - bw / 2, c[1] - bh / 2, c[0] + bw / 2, c[1] + bh / 2))
    return np.array(boxes)


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
                  tile=VizConfig.tile, min_confidence: float = VizConfig.min_confidence, frame_index: int | None = None,
                  boxes=None) -> list[np.ndarray]:
    """The V view tiles of one frame: keypoints3d (17, 3) cm projected through ``cameras``; frames: list of V RGB
    frames (or None entries / None); keypoints2d: (V, 17, 3) detections or None; boxes: (V, 4) crop boxes
    (:func:`crop_boxes`) or None for the whole frame. Returns V (h, w, 3) RGB tiles."""
    proj = None if keypoints3d is None else cameras.project(np.asarray(keypoints3d, np.float64))  # (V, 17, 2)
    tiles = []
    for v, cam in enumerate(cameras):
        fr = None if frames is None else frames[v]
        label = cam.name if frame_index is None else f"{cam.name} frame {frame_index}"
        tiles.append(draw_view(None if proj is None else proj[v], cam.size, tile, fr,
                               None if keypoints2d is None else keypoints2d[v], min_confidence, label,
                               None if boxes is None else boxes[v]))
    return tiles


MESH_RGB = (120, 170, 255)


def mesh_tiles(vertices: np.ndarray, faces: np.ndarray, cameras, frames=None, tile=VizConfig.tile, boxes=None,
               alpha: float = 0.6, label: str | None = None) -> list[np.ndarray]:
    """The posed mesh, vertices (V, 3) cm world, faces (F, 3), projected through each camera (with lens
    distortion) and blended over the view (``frames``: V RGB frames or None for the grey canvas) with opacity
    ``alpha``. boxes: (V, 4) crop boxes (:func:`crop_boxes`) or None. Returns V (h, w, 3) RGB tiles."""
    import cv2

    from aistpp.viz.render import fill_mesh

    verts = np.asarray(vertices, np.float64)
    proj = cameras.project(verts)  # (V, Nv, 2) full-frame px
    cam_pts = cameras.to_camera(verts)  # (V, Nv, 3)
    tw, th = int(tile[0]), int(tile[1])
    out = []
    for v, cam in enumerate(cameras):
        box = (0.0, 0.0, float(cam.size[0]), float(cam.size[1])) if boxes is None else boxes[v]
        base = draw_view(None, cam.size, tile, None if frames is None else frames[v], box=None if boxes is None
                         else box, label=f"{cam.name} {label}" if label else cam.name)
        x0, y0, x1, y1 = (float(b) for b in box)
        px = (proj[v] - (x0, y0)) * (tw / (x1 - x0), th / (y1 - y0))
        drawn = fill_mesh(base.copy(), px, cam_pts[v], faces, color=MESH_RGB)
        out.append(cv2.addWeighted(base, 1.0 - alpha, drawn, alpha, 0.0))
    return out


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
                   sequence: str | None = None, tile=VizConfig.tile, min_confidence: float = VizConfig.min_confidence,
                   crop: bool = False):
    """Yield (frame index, mosaic (3 h, 3 w, 3) RGB) for each grid frame in ``indices`` (sorted).

    keypoints3d (N, 17, 3) cm or None; keypoints2d (V, N, 17, 3) or None; with ``videos_dir`` and ``sequence`` the
    tiles show the decoded videos (views that are missing or unreadable fall back to the blank canvas); ``crop``
    zooms every view on the dancer (one fixed box per view over ``indices``, from keypoints3d).
    """
    indices = sorted(int(i) for i in indices)
    n = None
    if keypoints3d is not None:
        n = len(keypoints3d)
    elif keypoints2d is not None:
        n = keypoints2d.shape[1]
    if n is not None and indices and (indices[0] < 0 or indices[-1] >= n):
        raise AistppError(f"frame indices must lie in 0..{n - 1}, got {indices[0]}..{indices[-1]}")
    boxes = crop_boxes(keypoints3d[indices], cameras, tile) if crop and keypoints3d is not None else None
    if videos_dir is not None:
        from aistpp.naming import VIEWS

        views = tuple(VIEWS[:len(cameras)])
        source = ((i, [fr[v] for v in views]) for i, fr in _video_frames(videos_dir, sequence, n, views, indices))
    else:
        source = ((i, None) for i in indices)
    for i, frames in source:
        tiles = overlay_frame(None if keypoints3d is None else keypoints3d[i], cameras, frames,
                              None if keypoints2d is None else keypoints2d[:, i], tile, min_confidence, i, boxes)
        yield i, mosaic(tiles)


def write_overlay_video(path, keypoints3d, cameras, indices, keypoints2d=None, videos_dir=None, sequence=None,
                        tile=VizConfig.tile, fps: float = 60.0, crop: bool = False) -> Path:
    """The 3x3 overlay mosaic of the given frames as an mp4/gif (see :func:`overlay_images`)."""
    from aistpp.viz.animate import write_animation

    frames = (img[..., ::-1] for _, img in overlay_images(keypoints3d, cameras, indices, keypoints2d, videos_dir,
                                                          sequence, tile, crop=crop))
    return write_animation(path, frames, fps)


def write_overlay_png(path, image_rgb: np.ndarray) -> Path:
    """Write one RGB image as PNG atomically."""
    import cv2

    from aistpp.io.atomic import atomic_path

    with atomic_path(path, suffix=".png") as tmp:
        if not cv2.imwrite(str(tmp), np.ascontiguousarray(image_rgb[..., ::-1])):
            raise AistppError("could not write PNG", path)
    return Path(path)
