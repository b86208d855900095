"""Finding the dancer before detecting: person boxes for top-down detection on a crop, shared by every backend.

Whole-frame detection shrinks a 1920x1080 frame to the model's input (~256 px) and a dancer 360 px tall becomes too
small to find. Here every frame of a view gets a person box, and the detector runs on a square crop around it
(``margin`` x the box, resized to the model input); keypoints are mapped back to full-frame pixels. Box sources, in
the order they are tried (the winning one is recorded per frame and view, :data:`BOX_SOURCES`):

- ``track``: the box of the previous frame's confident keypoints (60 fps: the dancer moves a few px per frame).
  A detection whose person score is below ``LocalizeConfig.min_score`` counts as lost, and the next frame resets
  (no tracking from a bad detection);
- ``background``: AIST++ cameras do not move during a take, so a per-view median background over frames sampled
  along the view (at 1/``bg_scale`` resolution) gives foreground blobs; blobs are kept when their size, aspect and
  fill look like a standing/dancing person (a tripod is thin and hollow, a floor shadow flat), largest first;
- ``multiview``: with the setting's cameras, frames a view lost are re-tried with the box of the 3D keypoints
  triangulated from the views that have the dancer, projected into the lost view (:func:`multiview_boxes`);
- ``frame``: the whole frame, the last resort.

Frames that stay lost after the streaming pass (e.g. before the background model had enough samples) get a second
chance in a later pass (:func:`retry_candidates`): the box of the nearest found frame, the final background model,
and the multi-view box. Detectors opt in by setting ``supports_crops = True`` (MediaPipe, ONNX); other detectors
(test doubles, user callables) keep running on whole frames.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass

import numpy as np

from aistpp.skeleton import NUM_JOINTS

log = logging.getLogger(__name__)

# Box source codes stored per (view, frame) as uint8 (``box_source``); index = code.
BOX_SOURCES = ("none", "track", "background", "multiview", "frame")
NONE, TRACK, BACKGROUND, MULTIVIEW, FRAME = range(len(BOX_SOURCES))
BOX_MODES = ("localize", "frame")


@dataclass(frozen=True)
class LocalizeConfig:
    """How person boxes are found (see the module docstring).

    margin: crop side = margin x the longer side of the keypoint box (tracking, multi-view);
    fg_margin: the same for a foreground blob (which already holds the whole silhouette);
    crop_size: side of the crop handed to detectors that take plain images (MediaPipe); ONNX models get the box;
    min_conf: keypoints at or above it make boxes; min_score: a detection with a lower person score is rejected;
    min_box: smallest keypoint box side, px;
    bg_scale: background model resolution divisor; bg_samples: frames kept for the median (spread evenly over the
    frames seen so far); bg_every: first sampling stride in frames; bg_min_samples: samples needed before use;
    bg_threshold: colour difference (0..255, max over channels) that counts as foreground;
    fg_min_height / fg_max_height: blob height as a fraction of the frame height; fg_aspect: (min, max) blob
    width / height; fg_min_fill: blob pixels / box area; fg_candidates: blobs tried per frame; fg_min_overlap:
    foreground fraction a person found on the whole frame (or tracked from there) must cover once the background
    model is ready;
    whole_frame: try the whole frame when everything else failed; retry_frames: how far (frames) the second pass
    borrows the box of a found frame; seed_min_views: views with the dancer needed for a multi-view box.
    """

    margin: float = 1.5
    fg_margin: float = 1.25
    crop_size: int = 256
    min_conf: float = 0.3
    min_score: float = 0.3
    min_box: float = 48.0
    bg_scale: int = 8
    bg_samples: int = 24
    bg_every: int = 8
    bg_min_samples: int = 5
    bg_threshold: float = 30.0
    fg_min_height: float = 0.08
    fg_max_height: float = 0.98
    fg_aspect: tuple[float, float] = (0.2, 2.0)
    fg_min_fill: float = 0.2
    fg_candidates: int = 2
    fg_min_overlap: float = 0.1
    whole_frame: bool = True
    retry_frames: int = 60
    seed_min_views: int = 2

    def to_dict(self) -> dict:
        return asdict(self)


def keypoint_box(keypoints, min_conf: float = 0.3, min_size: float = 48.0) -> np.ndarray:
    """Keypoints (..., 17, 3) -> boxes (..., 4) x0, y0, x1, y1 px around points with confidence >= ``min_conf``
    (each side at least ``min_size``); NaN where fewer than 2 such points."""
    kp = np.asarray(keypoints, np.float64)
    ok = np.isfinite(kp).all(-1) & (kp[..., 2] >= min_conf)
    x = np.where(ok, kp[..., 0], np.nan)
    y = np.where(ok, kp[..., 1], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows
        lo = np.stack([np.nanmin(x, -1), np.nanmin(y, -1)], -1)
        hi = np.stack([np.nanmax(x, -1), np.nanmax(y, -1)], -1)
    c, half = (lo + hi) / 2, np.maximum((hi - lo) / 2, min_size / 2)
    boxes = np.concatenate([c - half, c + half], -1)
    boxes[ok.sum(-1) < 2] = np.nan
    return boxes


def square_box(box, margin: float) -> np.ndarray:
    """A box (..., 4) -> the square (..., 4) with the same centre and side ``margin`` x its longer side."""
    b = np.asarray(box, np.float64)
    c = (b[..., :2] + b[..., 2:]) / 2
    half = margin * np.maximum(b[..., 2] - b[..., 0], b[..., 3] - b[..., 1])[..., None] / 2
    return np.concatenate([c - half, c + half], -1)


def crop_square(frame: np.ndarray, box, size: int) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Cut the square ``box`` (x0, y0, x1, y1 px; may leave the frame: padded black) out of ``frame`` (H, W, 3) and
    resize it to ``size`` x ``size``. Returns the crop and (x0, y0, side) so that a crop point (u, v) px is the
    frame point (x0 + u * side / size, y0 + v * side / size) (continuous pixel coordinates, as the detectors')."""
    import cv2

    h, w = frame.shape[:2]
    x0, y0 = int(np.floor(box[0])), int(np.floor(box[1]))
    side = max(2, int(np.ceil(max(box[2] - box[0], box[3] - box[1]))))
    xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + side, w), min(y0 + side, h)
    if xb <= xa or yb <= ya:
        return np.zeros((size, size, 3), np.uint8), (float(x0), float(y0), float(side))
    part = frame[ya:yb, xa:xb]
    if (xa, ya, xb, yb) != (x0, y0, x0 + side, y0 + side):
        part = cv2.copyMakeBorder(part, ya - y0, y0 + side - yb, xa - x0, x0 + side - xb, cv2.BORDER_CONSTANT,
                                  value=(0, 0, 0))
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(part, (size, size), interpolation=interp), (float(x0), float(y0), float(side))


class BackgroundModel:
    """Median background of one static view at 1/``bg_scale`` resolution from frames sampled along the view.

    ``observe(i, frame)`` keeps every ``stride``-th frame; when ``bg_samples`` are held, every other one is dropped
    and the stride doubles, so the samples stay spread over all frames seen. ``boxes(frame)`` -> person-like
    foreground boxes (K, 4) full-frame px, best first.
    """

    def __init__(self, config: LocalizeConfig = LocalizeConfig(), image: np.ndarray | None = None):
        self.config = config
        self.stride = config.bg_every
        self.samples: list[tuple[int, np.ndarray]] = []
        self.frame_hw = (0, 0)
        self._median = None if image is None or np.asarray(image).size == 0 else np.asarray(image, np.uint8)
        self._fixed = self._median is not None
        self._mask_of = None

    def small(self, frame: np.ndarray) -> np.ndarray:
        import cv2

        h, w = frame.shape[:2]
        s = self.config.bg_scale
        return cv2.resize(frame, (max(1, w // s), max(1, h // s)), interpolation=cv2.INTER_AREA)

    def observe(self, index: int, frame: np.ndarray) -> None:
        if self._fixed or index % self.stride:
            return
        self.frame_hw = frame.shape[:2]
        self.samples.append((index, self.small(frame)))
        self._median = self._mask_of = None
        if len(self.samples) > self.config.bg_samples:
            self.stride *= 2
            self.samples = [(i, s) for i, s in self.samples if i % self.stride == 0]

    @property
    def ready(self) -> bool:
        return self._fixed or len(self.samples) >= self.config.bg_min_samples

    @property
    def image(self) -> np.ndarray | None:
        """The background (h, w, 3) uint8 at reduced resolution (None until ready)."""
        if self._median is None and self.ready:
            self._median = np.median(np.stack([s for _, s in self.samples]), axis=0).astype(np.uint8)
        return self._median

    def mask(self, frame: np.ndarray) -> np.ndarray | None:
        """Foreground mask (h, w) uint8 0/1 of ``frame`` at reduced resolution (None before the model is ready).
        The last frame's mask is cached (the same frame is asked for boxes and overlaps)."""
        if self._mask_of is not None and self._mask_of[0] is frame:
            return self._mask_of[1]
        bg = self.image
        mask = None if bg is None else self.small_mask(self.small(frame), bg)
        self._mask_of = (frame, mask)
        return mask

    def small_mask(self, small: np.ndarray, bg: np.ndarray) -> np.ndarray | None:
        """Foreground mask of a reduced frame against the reduced background ``bg``."""
        import cv2

        if small.shape != bg.shape:
            return None
        diff = np.abs(small.astype(np.int16) - bg.astype(np.int16)).max(-1)
        mask = (diff > self.config.bg_threshold).astype(np.uint8)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
        return cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7)))

    def boxes(self, frame: np.ndarray) -> np.ndarray:
        import cv2

        mask = self.mask(frame)
        if mask is None:
            return np.zeros((0, 4))
        c = self.config
        _, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        hs = mask.shape[0]
        out = []
        for x, y, w, h, area in stats[1:]:
            if not (c.fg_min_height * hs <= h <= c.fg_max_height * hs):
                continue
            if not (c.fg_aspect[0] <= w / h <= c.fg_aspect[1]) or area < c.fg_min_fill * w * h:
                continue
            out.append((area, x, y, w, h))
        out.sort(reverse=True)
        sx = frame.shape[1] / mask.shape[1]
        sy = frame.shape[0] / mask.shape[0]
        return np.array([[x * sx, y * sy, (x + w) * sx, (y + h) * sy] for _, x, y, w, h in out], np.float64
                        ).reshape(-1, 4)

    def overlap(self, frame: np.ndarray, box) -> float:
        """Foreground fraction inside ``box`` (x0, y0, x1, y1 px of ``frame``); NaN before the model is ready."""
        return mask_overlap(self.mask(frame), box, frame.shape[:2])

    def verify(self, boxes: dict, min_overlap: float) -> bool | None:
        """End of a view: do the provisional person boxes {frame index: box} cover foreground in the sampled frames
        among them, against the median of all samples (at least 3)? None when none of them was sampled."""
        if len(self.samples) < 3:
            return None
        bg = np.median(np.stack([s for _, s in self.samples]), axis=0).astype(np.uint8)
        checks = []
        for i, small in self.samples:
            if i in boxes:
                checks.append(mask_overlap(self.small_mask(small, bg), boxes[i], self.frame_hw) >= min_overlap)
        return None if not checks else bool(np.mean(checks) >= 0.5)


def mask_overlap(mask, box, frame_hw) -> float:
    """Fraction of ``mask`` (h, w) set inside ``box`` px of a frame of size ``frame_hw``; NaN without a mask."""
    if mask is None:
        return float("nan")
    sx = mask.shape[1] / frame_hw[1]
    sy = mask.shape[0] / frame_hw[0]
    x0, x1 = np.clip(np.round(np.array([box[0], box[2]]) * sx).astype(int), 0, mask.shape[1])
    y0, y1 = np.clip(np.round(np.array([box[1], box[3]]) * sy).astype(int), 0, mask.shape[0])
    if x1 <= x0 or y1 <= y0:
        return 0.0
    return float(mask[y0:y1, x0:x1].mean())


class Localizer:
    """Top-down detection on one view with tracking, background and whole-frame boxes (see the module docstring).

    ``detector``: an object with ``supports_crops`` (MediaPipe, ONNX): ONNX-style detectors take
    ``det(frames, boxes)``; the others get square crops of ``crop_size`` px. Call :meth:`run` on consecutive
    batches of one view, :meth:`reset` before another view.
    """

    def __init__(self, detector, config: LocalizeConfig = LocalizeConfig()):
        self.detector = detector
        self.config = config
        self.reset()

    def reset(self, background: np.ndarray | None = None) -> None:
        """Start a view (``background``: a finished background image to use as is, for a second pass)."""
        self.track = None  # (4,) keypoint box of the last good frame
        self.confirmed = False  # the tracked person was seen moving against the background model
        self.chain: dict = {}  # {frame: box} of the current person before it could be checked (provisional)
        self.dropped: list[int] = []  # provisional frames whose person turned out to be part of the background
        self._static = False
        self.background = BackgroundModel(self.config, background)
        self.bg_ready_at = 0 if self.background.ready else None  # first frame index with a usable background
        if hasattr(self.detector, "reset"):
            self.detector.reset()

    # -- one detection in a box ------------------------------------------------------------------------------
    def detect_in(self, frame: np.ndarray, box) -> tuple[np.ndarray, float]:
        """Detect in the square ``box`` of ``frame`` -> keypoints (17, 3) full-frame px, person score."""
        if getattr(self.detector, "takes_boxes", False):
            kp, sc = self.detector(frame[None], boxes=np.asarray(box, np.float64)[None])
            return kp[0], float(sc[0])
        size = self.config.crop_size
        crop, (x0, y0, side) = crop_square(frame, box, size)
        kp, sc = self.detector(crop[None])
        kp = kp[0].copy()
        kp[:, 0] = x0 + kp[:, 0] * side / size
        kp[:, 1] = y0 + kp[:, 1] * side / size
        return kp, float(sc[0])

    def detect_whole(self, frame: np.ndarray) -> tuple[np.ndarray, float]:
        h, w = frame.shape[:2]
        if getattr(self.detector, "takes_boxes", False):
            kp, sc = self.detector(frame[None], boxes=np.array([[0, 0, w, h]], np.float64))
        else:
            kp, sc = self.detector(frame[None])
        return kp[0], float(sc[0])

    def good(self, frame, kp, score, source) -> bool:
        """A detection is kept when its score is high enough and, once the background model is ready, a person
        not yet confirmed (found on the whole frame or tracked from there) overlaps the foreground: with a static
        camera, a 'person' that is part of the background (a poster, a face-like object) is not the dancer."""
        c = self.config
        box = keypoint_box(kp, c.min_conf, c.min_box)
        if score < c.min_score or not np.isfinite(box).all():
            return False
        if source == BACKGROUND or source == MULTIVIEW:
            return True
        if source == TRACK and self.confirmed:
            return True
        if self.background.overlap(frame, box) < c.fg_min_overlap:  # NaN (not ready): provisionally kept
            self._static |= source == TRACK
            return False
        return True

    def try_boxes(self, frame, candidates) -> tuple[np.ndarray, float, int]:
        """Try (box, source) candidates in order (box None = whole frame); the first good detection wins."""
        for box, source in candidates:
            kp, sc = self.detect_whole(frame) if box is None else self.detect_in(frame, box)
            if self.good(frame, kp, sc, source):
                if source != TRACK or not self.confirmed:
                    self.confirmed = source in (BACKGROUND, MULTIVIEW) or self.background.ready
                return kp, sc, source
        return np.full((NUM_JOINTS, 3), np.nan, np.float32), 0.0, NONE

    def candidates(self, frame) -> list:
        c = self.config
        out = []
        if self.track is not None:
            out.append((square_box(self.track, c.margin), TRACK))
        if self.background.ready:
            for b in self.background.boxes(frame)[: c.fg_candidates]:
                out.append((square_box(b, c.fg_margin), BACKGROUND))
        if c.whole_frame:
            out.append((None, FRAME))
        return out

    def run(self, start: int, frames: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One batch of a view -> keypoints (B, 17, 3), scores (B,), box sources (B,) uint8 (NONE where invalid)."""
        b = len(frames)
        kp, sc = np.full((b, NUM_JOINTS, 3), np.nan, np.float32), np.zeros(b, np.float32)
        src = np.zeros(b, np.uint8)
        for j in range(b):
            if not valid[j]:
                continue
            frame = frames[j]
            self.background.observe(start + j, frame)
            if self.bg_ready_at is None and self.background.ready:
                self.bg_ready_at = start + j
            was_confirmed, self._static = self.confirmed, False
            kp[j], sc[j], src[j] = self.try_boxes(frame, self.candidates(frame))
            if self._static and not was_confirmed:  # the person tracked so far stands still in the background
                self.dropped.extend(self.chain)
                self.chain = {}
            self.track = keypoint_box(kp[j], self.config.min_conf, self.config.min_box) if src[j] else None
            if src[j] and not self.confirmed:
                self.chain[start + j] = self.track
            elif self.confirmed:
                self.chain = {}
            self.confirmed = self.confirmed and bool(src[j])
        return kp, sc, src

    def finish(self) -> list[int]:
        """End of the view: frames whose person could never be checked against the background while streaming
        (a short view) are checked against the final background; returns every frame to drop (sorted)."""
        if self.chain and self.background.verify(self.chain, self.config.fg_min_overlap) is False:
            self.dropped.extend(self.chain)
        self.chain = {}
        return sorted(set(self.dropped))

    def retry(self, frame: np.ndarray, candidates: list) -> tuple[np.ndarray, float, int]:
        """Second chance for a lost frame: the given (box, source) candidates, then the background's blobs."""
        c = self.config
        bg = [(square_box(b, c.fg_margin), BACKGROUND) for b in self.background.boxes(frame)[: c.fg_candidates]]
        self.confirmed = True  # the candidates come from accepted detections (nearest frame, other views)
        return self.try_boxes(frame, list(candidates) + bg)


def retry_candidates(keypoints, box_source, config: LocalizeConfig = LocalizeConfig(), seeds=None) -> dict:
    """Second-pass boxes for one view: {frame index: [(box (4,), source), ...]} for frames without a person.

    keypoints (N, 17, 3) and box_source (N,) of the first pass; ``seeds`` (N, 4) multi-view boxes (NaN where none).
    Per lost frame: the multi-view box, then the keypoint box of the nearest found frame within
    ``retry_frames`` (grown by 1 % per frame of distance). Background boxes are added by the caller that holds the
    background model.
    """
    n = len(box_source)
    found = np.flatnonzero(np.asarray(box_source) != NONE)
    boxes = keypoint_box(keypoints, config.min_conf, config.min_box)
    out: dict = {}
    for i in np.flatnonzero(np.asarray(box_source) == NONE):
        cands = []
        if seeds is not None and np.isfinite(seeds[i]).all():
            cands.append((square_box(seeds[i], config.margin), MULTIVIEW))
        if len(found):
            k = int(np.clip(np.searchsorted(found, i), 1, len(found) - 1)) if len(found) > 1 else 0
            near = min((found[k - 1], found[k]) if len(found) > 1 else (found[0],), key=lambda f: abs(f - i))
            d = abs(int(near) - int(i))
            if d <= config.retry_frames and np.isfinite(boxes[near]).all():
                cands.append((square_box(boxes[near], config.margin * (1 + 0.01 * d)), TRACK))
        if cands:
            out[int(i)] = cands
    assert all(0 <= i < n for i in out)
    return out


def triangulate_views(keypoints2d, cameras, min_conf: float = 0.3) -> np.ndarray:
    """Plain DLT per frame and joint over the views with a confident point: keypoints2d (V, N, 17, 3) px ->
    (N, 17, 3) world points (NaN where fewer than 2 views)."""
    kp = np.asarray(keypoints2d, np.float64)
    v, n, j = kp.shape[:3]
    ok = np.isfinite(kp).all(-1) & (kp[..., 2] >= min_conf)
    xy = cameras.undistort_points(np.where(ok[..., None], kp[..., :2], np.nan), normalized=True)  # (V, N, J, 2)
    ok &= np.isfinite(xy).all(-1)
    xy = np.nan_to_num(xy)
    ext = cameras.extrinsics[:, None, None]  # (V, 1, 1, 3, 4)
    rx = xy[..., 0:1] * ext[..., 2, :] - ext[..., 0, :]  # (V, N, J, 4)
    ry = xy[..., 1:2] * ext[..., 2, :] - ext[..., 1, :]
    rows = np.stack([rx, ry], -2) * ok[..., None, None]  # (V, N, J, 2, 4)
    a = np.moveaxis(rows, 0, 2).reshape(n, j, 2 * v, 4)
    _, _, vt = np.linalg.svd(a)
    X = vt[..., -1, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        pts = X[..., :3] / X[..., 3:4]
    pts[ok.sum(0) < 2] = np.nan
    return pts


def multiview_boxes(keypoints2d, cameras, min_views: int = 2, min_conf: float = 0.3,
                    min_box: float = 48.0) -> np.ndarray:
    """Boxes (V, N, 4) px for every view from the other views: for each frame, triangulate the joints seen by at
    least ``min_views`` views that found the dancer and box their projection into each view that did not
    (NaN where the view has its own detection, too few views, or the dancer projects behind or off the camera)."""
    kp = np.asarray(keypoints2d, np.float64)
    v, n = kp.shape[:2]
    out = np.full((v, n, 4), np.nan)
    has = np.isfinite(keypoint_box(kp, min_conf)).all(-1)  # (V, N)
    frames = np.flatnonzero((~has).any(0) & (has.sum(0) >= min_views))
    if not len(frames):
        return out
    pts = triangulate_views(np.where(has[:, frames, None, None], kp[:, frames], np.nan), cameras, min_conf)
    depth = cameras.to_camera(pts)[..., 2]  # (V, F, J)
    px = cameras.project(pts)  # (V, F, J, 2)
    px[depth <= 0] = np.nan
    conf = np.where(np.isfinite(px).all(-1), 1.0, np.nan)[..., None]
    boxes = keypoint_box(np.concatenate([px, conf], -1), 0.5, min_box)  # (V, F, 4)
    sizes = np.array([c.size for c in cameras.cameras], np.float64)  # (V, 2) w, h
    inside = (boxes[..., 2] > 0) & (boxes[..., 3] > 0) & (boxes[..., 0] < sizes[:, None, 0]) & \
             (boxes[..., 1] < sizes[:, None, 1])
    boxes[~inside | has[:, frames]] = np.nan
    out[:, frames] = boxes
    return out
