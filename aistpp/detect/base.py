"""The detector interface and running a detector over the 9 views of a sequence.

A detector is any object with ``__call__(frames) -> (keypoints, scores)``:

- frames (B, H, W, 3) uint8 RGB;
- keypoints (B, 17, 3) float32: COCO-17 x px, y px (of the given frames), confidence in [0, 1]; a NaN row where no
  person was found; per frame only the person with the best score (as in the official release);
- scores (B,) float32: that person's score, 0 where none.

and an optional ``reset()`` (called before each view: trackers must not carry state from one camera to the next).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Protocol, runtime_checkable

import numpy as np

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
    tolerance (they carry the nearest frame); False (default) leaves NaN there, which is the honest answer."""

    detect_holes: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def detect_view(reader: SequenceReader, view: str, detector, config: DetectConfig = DetectConfig(),
                progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Detect on one view of an open reader -> keypoints (N, 17, 3), det_scores (N,) (NaN / 0 where nothing).

    ``progress(n)`` is called with the number of grid frames done after each batch (also for an unusable view).
    """
    n = reader.n_frames
    kp, sc = empty_keypoints(n)
    if hasattr(detector, "reset"):
        detector.reset()
    done = 0
    for start, frames, valid in reader.view_iter(view):
        use = np.ones(len(valid), bool) if config.detect_holes else valid
        if use.any():
            k, s = detector(frames[use])
            idx = start + np.flatnonzero(use)
            kp[idx], sc[idx] = np.asarray(k, np.float32), np.asarray(s, np.float32)
        done += len(valid)
        if progress:
            progress(len(valid))
    if progress and done < n:
        progress(n - done)
    return kp, sc


def detect_sequence(videos_dir: str | Path, sequence: str, detector, n_frames: int | None = None,
                    video_config: VideoConfig = VideoConfig(), config: DetectConfig = DetectConfig(),
                    views=None, progress: Callable[[int], None] | None = None) -> dict:
    """Detect 2D keypoints on the 9 views of ``sequence`` (videos ``<videos_dir>/<video>.mp4``).

    Returns ``dict(keypoints2d (9, N, 17, 3) float32 px, NaN where no detection or no usable view,
    det_scores (9, N) float32, timestamps (N,) int64 us, status {view: ViewStatus.to_dict()})``.
    ``detector.reset()`` (when defined) is called before each view. Views are processed one after another; the
    CLI runs one process per view (:func:`detect_one_view`).
    """
    reader = SequenceReader(videos_dir, sequence, n_frames=n_frames, config=video_config,
                            **({"views": tuple(views)} if views else {}))
    kp, sc = empty_keypoints(len(reader.views), reader.n_frames)
    for k, v in enumerate(reader.views):
        kp[k], sc[k] = detect_view(reader, v, detector, config, progress)
    return {"keypoints2d": kp, "det_scores": sc, "timestamps": reader.timestamps,
            "status": {v: st.to_dict() for v, st in reader.status.items()}}


def detect_one_view(videos_dir, sequence, view, detector, n_frames=None, video_config=VideoConfig(),
                    config=DetectConfig(), progress=None) -> dict:
    """One view of :func:`detect_sequence` (for a process per view): keypoints2d (N, 17, 3), det_scores (N,),
    timestamps (N,), status (dict). Without ``n_frames`` N is this view's own length."""
    reader = SequenceReader(videos_dir, sequence, n_frames=n_frames, config=video_config, views=(view,))
    kp, sc = detect_view(reader, view, detector, config, progress)
    return {"keypoints2d": kp, "det_scores": sc, "timestamps": reader.timestamps,
            "status": reader.status[view].to_dict()}
