"""The detector interface and running a detector over the 9 views of a sequence.

A detector is any object with ``__call__(frames) -> (keypoints, scores)``:

- frames (B, H, W, 3) uint8 RGB;
- keypoints (B, 17, 3) float32: COCO-17 x px, y px (of the given frames), confidence in [0, 1]; a NaN row where no
  person was found; per frame only the person with the best score (as in the official release);
- scores (B,) float32: that person's score, 0 where none.

and an optional ``reset()`` (called before each view: trackers must not carry state from one camera to the next).

Detectors with ``supports_crops = True`` (MediaPipe, ONNX) run top-down on person boxes found by
:mod:`aistpp.detect.localize` (``DetectConfig.boxes = "localize"``, the default); the others on whole frames.
Every (view, frame) gets a ``box_source`` code (:data:`aistpp.detect.localize.BOX_SOURCES`).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Protocol, runtime_checkable

import numpy as np

from aistpp.detect.localize import (
    BOX_MODES, FRAME, NONE, TRACK, LocalizeConfig, Localizer, keypoint_box, multiview_boxes, retry_candidates,
    square_box,
)
from aistpp.errors import AistppError
from aistpp.skeleton import NUM_JOINTS
from aistpp.video import SequenceReader, VideoConfig

log = logging.getLogger(__name__)


@runtime_checkable
class Detector(Protocol):
    def __call__(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def empty_keypoints(*lead: int) -> tuple[np.ndarray, np.ndarray]:
    """All-NaN keypoints (*lead, 17, 3) float32 and zero scores (*lead,) float32."""
    return np.full((*lead, NUM_JOINTS, 3), np.nan, np.float32), np.zeros(lead, np.float32)


def check_frames(frames) -> np.ndarray:
    """Validate a batch of frames: (B, H, W, 3) uint8 RGB (a single (H, W, 3) image becomes B = 1)."""
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise AistppError(f"frames must be (B, H, W, 3) uint8 RGB, got {frames.shape} {frames.dtype}")
    return frames


def best_person(keypoints, scores) -> tuple[np.ndarray, np.ndarray]:
    """Pick the best-scoring person per frame.

    keypoints (B, P, 17, 3), scores (B, P) (NaN / -inf = no person) -> (B, 17, 3), (B,); no person -> NaN row, 0.
    """
    kp = np.asarray(keypoints, np.float32)
    sc = np.asarray(scores, np.float32)
    b = kp.shape[0]
    out_kp, out_sc = empty_keypoints(b)
    if kp.shape[1] == 0:
        return out_kp, out_sc
    s = np.where(np.isfinite(sc), sc, -np.inf)
    best = s.argmax(1)
    has = np.isfinite(s[np.arange(b), best])
    out_kp[has] = kp[np.arange(b), best][has]
    out_sc[has] = s[np.arange(b), best][has]
    return out_kp, out_sc


@dataclass(frozen=True)
class DetectConfig:
    """Running a detector over a sequence. detect_holes: also run on grid frames that have no decoded frame within
    tolerance (they carry the nearest frame); False (default) leaves NaN there, which is the honest answer.
    boxes: ``localize`` (top-down on person boxes, for detectors that support crops) or ``frame`` (whole frames).
    localize: how person boxes are found (:class:`aistpp.detect.localize.LocalizeConfig`)."""

    detect_holes: bool = False
    boxes: str = "localize"
    localize: LocalizeConfig = field(default_factory=LocalizeConfig)

    def __post_init__(self):
        if self.boxes not in BOX_MODES:
            raise AistppError(f"boxes must be one of {', '.join(BOX_MODES)}, got {self.boxes!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    def localizes(self, detector) -> bool:
        return self.boxes == "localize" and bool(getattr(detector, "supports_crops", False))


def detect_view(reader: SequenceReader, view: str, detector, config: DetectConfig = DetectConfig(),
                progress: Callable[[int], None] | None = None) -> dict:
    """Detect on one view of an open reader (first pass).

    Returns dict(keypoints2d (N, 17, 3), det_scores (N,) (NaN / 0 where nothing), box_source (N,) uint8,
    background (h, w, 3) uint8 (the view's background model at reduced size; (0, 0, 3) when none), bg_ready_at
    (first frame index where the background model was usable; N if never)). ``progress(n)`` is called with the
    number of grid frames done after each batch (also for an unusable view).
    """
    n = reader.n_frames
    kp, sc = empty_keypoints(n)
    src = np.zeros(n, np.uint8)
    loc = Localizer(detector, config.localize) if config.localizes(detector) else None
    if loc is not None:
        loc.reset()
    elif hasattr(detector, "reset"):
        detector.reset()
    done = 0
    for start, frames, valid in reader.view_iter(view):
        use = np.ones(len(valid), bool) if config.detect_holes else valid
        if use.any():
            if loc is not None:
                k, s, b = loc.run(start, frames, use)
                kp[start:start + len(valid)], sc[start:start + len(valid)] = k, s
                src[start:start + len(valid)] = b
            else:
                k, s = detector(frames[use])
                idx = start + np.flatnonzero(use)
                kp[idx], sc[idx] = np.asarray(k, np.float32), np.asarray(s, np.float32)
                src[idx] = np.where(np.isfinite(kp[idx, :, :2]).all(-1).any(-1), FRAME, NONE)
        done += len(valid)
        if progress:
            progress(len(valid))
    if progress and done < n:
        progress(n - done)
    dropped = loc.finish() if loc is not None else []
    if dropped:  # provisional detections of something that is part of the background
        log.info("%s: dropped %d early detections of a static 'person'", view, len(dropped))
        kp[dropped], sc[dropped], src[dropped] = np.nan, 0, NONE
    background = loc.background.image if loc is not None else None
    return {"keypoints2d": kp, "det_scores": sc, "box_source": src,
            "background": np.zeros((0, 0, 3), np.uint8) if background is None else background,
            "bg_ready_at": int(n if loc is None or loc.bg_ready_at is None else loc.bg_ready_at)}


def second_pass_frames(result: dict, config: DetectConfig, seeds=None) -> dict:
    """Which lost frames of one view get a second chance, with which boxes: {frame: [(box, source), ...]}.

    ``result``: the view's :func:`detect_view` output; ``seeds`` (N, 4) multi-view boxes. Lost frames before the
    background model was usable are retried (with the final background) even without other boxes."""
    src = np.asarray(result["box_source"])
    cands = retry_candidates(result["keypoints2d"], src, config.localize, seeds)
    if np.asarray(result["background"]).size:
        lost = np.flatnonzero(src[: int(result["bg_ready_at"])] == NONE)
        for i in lost:
            cands.setdefault(int(i), [])
    return cands


def redetect_view(reader: SequenceReader, view: str, detector, candidates: dict, result: dict,
                  config: DetectConfig = DetectConfig(), rounds: int = 2) -> dict:
    """Second pass over one view: decode it again and re-detect the frames of ``candidates`` ({frame: [(box,
    source)]}, from :func:`second_pass_frames`): first with the box of the previous frame when it has the dancer
    (tracking through the pass), then the given boxes, then the final background's. A further round retries the
    frames still lost with the box of the nearest frame found meanwhile (decoding stops after the last wanted
    frame). Updates and returns ``result`` (the view's first-pass dict)."""
    loc = Localizer(detector, config.localize)
    loc.reset(background=result["background"])
    kp, sc, src = result["keypoints2d"], result["det_scores"], result["box_source"]
    c = config.localize
    total = len(candidates)
    found = 0
    for _ in range(rounds):
        if not candidates:
            break
        last = max(candidates)
        for start, frames, valid in reader.view_iter(view):
            for j in range(len(frames)):
                i = start + j
                if i not in candidates or not (valid[j] or config.detect_holes):
                    continue
                prev = keypoint_box(kp[i - 1], c.min_conf, c.min_box) if i > 0 and src[i - 1] != NONE else None
                track = [(square_box(prev, c.margin), TRACK)] if prev is not None else []
                k, s_, b = loc.retry(frames[j], track + list(candidates[i]))
                if b != NONE:
                    kp[i], sc[i], src[i] = k, s_, b
                    found += 1
            if start + len(frames) > last:
                break
        lost = set(int(i) for i in candidates if src[i] == NONE)
        candidates = {i: cs for i, cs in retry_candidates(kp, src, c).items() if i in lost}
    log.info("%s: second pass found the dancer in %d of %d lost frames", view, found, total)
    return result


def seed_boxes(results: dict, views, cameras, config: DetectConfig) -> dict:
    """Multi-view boxes {view: (N, 4)} from the first-pass results of all views ({view: dict}); {} without
    cameras. ``cameras``: a :class:`aistpp.io.cameras.CameraGroup` in ``views`` order."""
    if cameras is None or not config.localize.seed_min_views:
        return {}
    if len(cameras) != len(views):
        raise AistppError(f"{len(cameras)} cameras for {len(views)} views")
    kp = np.stack([results[v]["keypoints2d"] for v in views])
    boxes = multiview_boxes(kp, cameras, config.localize.seed_min_views, config.localize.min_conf,
                            config.localize.min_box)
    return {v: boxes[k] for k, v in enumerate(views)}


def detect_sequence(videos_dir: str | Path, sequence: str, detector, n_frames: int | None = None,
                    video_config: VideoConfig = VideoConfig(), config: DetectConfig = DetectConfig(),
                    views=None, progress: Callable[[int], None] | None = None, cameras=None) -> dict:
    """Detect 2D keypoints on the 9 views of ``sequence`` (videos ``<videos_dir>/<video>.mp4``).

    Returns ``dict(keypoints2d (9, N, 17, 3) float32 px, NaN where no detection or no usable view,
    det_scores (9, N) float32, box_source (9, N) uint8, timestamps (N,) int64 us, status {view:
    ViewStatus.to_dict()})``. ``detector.reset()`` (when defined) is called before each view. Views are processed
    one after another (the CLI runs one process per view: :mod:`aistpp.detect.runner`); then frames a view lost
    get a second pass (nearest found frame's box, final background, and with ``cameras`` (CameraGroup in view
    order) the box projected from the views that found the dancer).
    """
    reader = SequenceReader(videos_dir, sequence, n_frames=n_frames, config=video_config,
                            **({"views": tuple(views)} if views else {}))
    results = {v: detect_view(reader, v, detector, config, progress) for v in reader.views}
    if config.localizes(detector):
        seeds = seed_boxes(results, reader.views, cameras, config)
        for v in reader.views:
            if reader.status[v].usable:
                redetect_view(reader, v, detector, second_pass_frames(results[v], config, seeds.get(v)),
                              results[v], config)
    kp = np.stack([results[v]["keypoints2d"] for v in reader.views])
    sc = np.stack([results[v]["det_scores"] for v in reader.views])
    src = np.stack([results[v]["box_source"] for v in reader.views])
    return {"keypoints2d": kp, "det_scores": sc, "box_source": src, "timestamps": reader.timestamps,
            "status": {v: st.to_dict() for v, st in reader.status.items()}}


def detect_one_view(videos_dir, sequence, view, detector, n_frames=None, video_config=VideoConfig(),
                    config=DetectConfig(), progress=None) -> dict:
    """One view of :func:`detect_sequence`, first pass (for a process per view): keypoints2d (N, 17, 3),
    det_scores (N,), box_source (N,), background, bg_ready_at, timestamps (N,), status (dict). Without
    ``n_frames`` N is this view's own length."""
    reader = SequenceReader(videos_dir, sequence, n_frames=n_frames, config=video_config, views=(view,))
    out = detect_view(reader, view, detector, config, progress)
    return {**out, "timestamps": reader.timestamps, "status": reader.status[view].to_dict()}


def redetect_one_view(videos_dir, sequence, view, detector, candidates, result, n_frames=None,
                      video_config=VideoConfig(), config=DetectConfig()) -> dict:
    """:func:`redetect_view` for a process per view."""
    reader = SequenceReader(videos_dir, sequence, n_frames=n_frames, config=video_config, views=(view,))
    return redetect_view(reader, view, detector, candidates, result, config)
