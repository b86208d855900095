"""Imports of existing 2D keypoints: OpenPose BODY_25 JSON folders (the official keypoints2d pkl is read by
:func:`aistpp.io.annotations.read_keypoints2d`).

OpenPose writes one ``<video>_<12-digit frame>_keypoints.json`` per frame, ``{"people": [{"pose_keypoints_2d":
[x0, y0, c0, x1, ...]}, ...]}``, with a missing point as (0, 0, 0). BODY_25 order: 0 Nose, 1 Neck, 2 RShoulder,
3 RElbow, 4 RWrist, 5 LShoulder, 6 LElbow, 7 LWrist, 8 MidHip, 9 RHip, 10 RKnee, 11 RAnkle, 12 LHip, 13 LKnee,
14 LAnkle, 15 REye, 16 LEye, 17 REar, 18 LEar, 19-24 feet. OpenPose's R/L are the subject's right/left, like
COCO's, so the map keeps sides (the official conversion script swapped them).

Missing points become x = y = NaN, confidence 0; a frame with no person (or no file) a NaN row with score 0.
The best person per frame is the one with the highest mean confidence over the 17 COCO points (OpenPose gives
no person score); that mean is the person score.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np

from aistpp.detect.base import best_person, empty_keypoints
from aistpp.errors import AistppError
from aistpp.io.annotations import frame_timestamps
from aistpp.io.atomic import atomic_write_text
from aistpp.naming import VIEWS, parse_name
from aistpp.skeleton import NUM_JOINTS

log = logging.getLogger(__name__)

# BODY_25 index of each COCO-17 point (COCO order).
BODY25_TO_COCO17 = (
    0,    # nose
    16,   # left_eye   <- LEye
    15,   # right_eye  <- REye
    18,   # left_ear   <- LEar
    17,   # right_ear  <- REar
    5,    # left_shoulder  <- LShoulder
    2,    # right_shoulder <- RShoulder
    6,    # left_elbow
    3,    # right_elbow
    7,    # left_wrist
    4,    # right_wrist
    12,   # left_hip
    9,    # right_hip
    13,   # left_knee
    10,   # right_knee
    14,   # left_ankle
    11,   # right_ankle
)
BODY25_NUM = 25

_FRAME_RE = re.compile(r"_(\d{12})_keypoints\.json$")


def body25_to_coco17(people) -> tuple[np.ndarray, np.ndarray]:
    """People (P, 25, 3) BODY_25 px + conf -> COCO-17 (P, 17, 3) (missing -> NaN, NaN, 0) and scores (P,)."""
    p = np.asarray(people, np.float32).reshape(-1, BODY25_NUM, 3)
    kp = p[:, list(BODY25_TO_COCO17)].copy()
    miss = kp[..., 2] <= 0
    kp[..., :2][miss] = np.nan
    kp[..., 2][miss] = 0
    return kp, kp[..., 2].mean(-1) if len(kp) else np.zeros(0, np.float32)


def coco17_to_body25(keypoints) -> np.ndarray:
    """COCO-17 (P, 17, 3) -> BODY_25 (P, 25, 3): neck = shoulder midpoint, mid-hip = hip midpoint (confidence =
    the smaller of the pair), feet missing; NaN points become OpenPose's (0, 0, 0)."""
    kp = np.asarray(keypoints, np.float32).reshape(-1, NUM_JOINTS, 3)
    out = np.zeros((len(kp), BODY25_NUM, 3), np.float32)
    out[:, list(BODY25_TO_COCO17)] = kp
    for dst, (a, b) in ((1, (5, 6)), (8, (11, 12))):
        out[:, dst, :2] = (kp[:, a, :2] + kp[:, b, :2]) / 2
        out[:, dst, 2] = np.minimum(kp[:, a, 2], kp[:, b, 2])
    bad = ~np.isfinite(out).all(-1) | (out[..., 2] <= 0)
    out[bad] = 0
    return out


def read_openpose_json(path: str | Path) -> tuple[np.ndarray, float]:
    """One OpenPose frame file -> COCO-17 (17, 3) of the best person (NaN row if none) and its score."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        people = [np.asarray(p["pose_keypoints_2d"], np.float32) for p in data.get("people", [])]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise AistppError(f"not an OpenPose keypoints file: {' '.join(str(err).split())}", path) from None
    for p in people:
        if p.size != BODY25_NUM * 3:
            raise AistppError(f"pose_keypoints_2d has {p.size} values, expected 75 (BODY_25)", path)
    if not people:
        kp, sc = empty_keypoints(1)
        return kp[0], 0.0
    kp, sc = body25_to_coco17(np.stack(people))
    best_kp, best_sc = best_person(kp[None], sc[None])
    return best_kp[0], float(best_sc[0])


def write_openpose_json(path: str | Path, keypoints=None) -> None:
    """Write one OpenPose frame file with one person per row of ``keypoints`` (P, 17, 3) COCO-17 (None: nobody)."""
    people = [] if keypoints is None else [
        {"person_id": [-1], "pose_keypoints_2d": [float(v) for v in p.reshape(-1)]}
        for p in coco17_to_body25(keypoints) if p[:, 2].any()]
    atomic_write_text(path, json.dumps({"version": 1.3, "people": people}))


def read_openpose_folder(folder: str | Path, n_frames: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A folder of ``*_<frame:012d>_keypoints.json`` -> COCO-17 (N, 17, 3) and scores (N,).

    N = ``n_frames`` or (last frame number + 1); frames without a file get a NaN row."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AistppError("OpenPose folder not found", folder)
    files = {}
    for f in folder.iterdir():
        m = _FRAME_RE.search(f.name)
        if m:
            files[int(m.group(1))] = f
    if not files and n_frames is None:
        raise AistppError("no *_000000000000_keypoints.json files", folder)
    n = n_frames if n_frames is not None else max(files) + 1
    kp, sc = empty_keypoints(n)
    for i, f in files.items():
        if i < n:
            kp[i], sc[i] = read_openpose_json(f)
    missing = n - sum(1 for i in files if i < n)
    if missing:
        log.warning("%s: %d of %d frames have no OpenPose file", folder, missing, n)
    return kp, sc


def write_openpose_folder(folder: str | Path, video: str, keypoints) -> None:
    """Write (N, 17, 3) (or (N, P, 17, 3)) COCO-17 as OpenPose files ``<video>_<i:012d>_keypoints.json``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    kp = np.asarray(keypoints, np.float32)
    if kp.ndim == 3:
        kp = kp[:, None]
    for i, people in enumerate(kp):
        write_openpose_json(folder / f"{video}_{i:012d}_keypoints.json", people)


def read_openpose_sequence(root: str | Path, sequence: str, n_frames: int | None = None) -> dict:
    """OpenPose output of the 9 views of ``sequence``: one folder per view under ``root``, named ``<video>`` (e.g.
    ``gBR_sBM_c01_d04_mBR0_ch01``) or ``c01``. -> dict(keypoints2d (9, N, 17, 3), det_scores (9, N),
    timestamps (N,) us at 60 fps). A view without a folder is NaN (logged)."""
    root = Path(root)
    seq = parse_name(sequence)
    folders = {}
    for v in VIEWS:
        for cand in (root / str(seq.with_view(v)), root / v):
            if cand.is_dir():
                folders[v] = cand
                break
    if not folders:
        raise AistppError(f"no OpenPose folder of {seq.sequence} (expected <video> or c01.. folders)", root)
    per_view = {v: read_openpose_folder(f, n_frames) for v, f in folders.items()}
    n = n_frames if n_frames is not None else max(k.shape[0] for k, _ in per_view.values())
    kp, sc = empty_keypoints(len(VIEWS), n)
    for k, v in enumerate(VIEWS):
        if v not in per_view:
            log.warning("%s: no OpenPose folder for view %s", root, v)
            continue
        a, s = per_view[v]
        m = min(n, len(a))
        kp[k, :m], sc[k, :m] = a[:m], s[:m]
    return {"keypoints2d": kp, "det_scores": sc, "timestamps": frame_timestamps(n)}
