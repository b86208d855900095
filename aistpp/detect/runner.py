"""Running a detector over a sequence with one process per view, resumably.

:func:`detect_sequence_parallel` probes the 9 views once (frame count N = ``n_frames`` or the longest usable view),
runs :func:`aistpp.detect.base.detect_one_view` per view in a process pool, stores each finished view as
``<parts_dir>/<view>.npz`` (atomic), and on a re-run skips views already done with the same N and detector
settings. Detectors are built inside the workers from a picklable :class:`DetectorSpec`. Then frames a view
lost get a second pass (also one process per view; with ``cameras``, multi-view boxes from the other views).
"""

from __future__ import annotations

import json
import logging
import queue
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from aistpp.detect.base import (
    DetectConfig, detect_one_view, empty_keypoints, redetect_one_view, second_pass_frames, seed_boxes,
)
from aistpp.errors import AistppError
from aistpp.io.atomic import atomic_path
from aistpp.video import SequenceReader, VideoConfig

log = logging.getLogger(__name__)

BACKENDS = ("mediapipe", "onnx")


@dataclass(frozen=True)
class DetectorSpec:
    """Which detector to build: backend ``mediapipe`` or ``onnx`` (with ``model`` = path of the .onnx file) and
    backend options (MediaPipeConfig / OnnxPoseConfig fields)."""

    backend: str = "mediapipe"
    model: str | None = None
    options: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise AistppError(f"unknown detector backend {self.backend!r}; expected one of {', '.join(BACKENDS)}")
        if self.backend == "onnx" and not self.model:
            raise AistppError("the onnx backend needs a model file (--model FILE.onnx)")

    def to_dict(self) -> dict:
        return asdict(self)

    def build(self):
        """The detector (MediaPipeDetector or OnnxPoseDetector)."""
        if self.backend == "mediapipe":
            from aistpp.detect.mediapipe_pose import MediaPipeConfig, MediaPipeDetector

            return MediaPipeDetector(MediaPipeConfig(**self.options))
        from aistpp.detect.onnx_pose import OnnxPoseConfig, OnnxPoseDetector

        opts = dict(self.options)
        if "input_size" in opts and opts["input_size"] is not None:
            opts["input_size"] = tuple(opts["input_size"])
        return OnnxPoseDetector(self.model, OnnxPoseConfig(**opts))


def _view_job(videos_dir, sequence, view, spec: DetectorSpec, n_frames, video_config, config, progress_queue):
    """Worker: detect one view; progress goes to a manager queue."""
    return _view_job_inline(videos_dir, sequence, view, spec, n_frames, video_config, config, progress_queue.put)


def _settings_key(sequence, n_frames, spec, video_config, config) -> str:
    return json.dumps({"sequence": sequence, "n_frames": n_frames, "detector": spec.to_dict(),
                       "video": video_config.to_dict(), "detect": config.to_dict()}, sort_keys=True, default=str)


def _load_part(path: Path, key: str):
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["settings"]) != key:
                return None
            return {"keypoints2d": z["keypoints2d"], "det_scores": z["det_scores"],
                    "box_source": z["box_source"], "background": z["background"],
                    "bg_ready_at": int(z["bg_ready_at"]), "status": json.loads(str(z["status"]))}
    except (OSError, KeyError, ValueError):
        return None


def _save_part(path: Path, key: str, result: dict) -> None:
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, keypoints2d=result["keypoints2d"], det_scores=result["det_scores"],
                 box_source=result["box_source"], background=result["background"],
                 bg_ready_at=result["bg_ready_at"], status=json.dumps(result["status"]), settings=key)


def detect_sequence_parallel(videos_dir: str | Path, sequence: str, spec: DetectorSpec, n_frames: int | None = None,
                             video_config: VideoConfig = VideoConfig(), config: DetectConfig = DetectConfig(),
                             workers: int = 1, parts_dir: str | Path | None = None,
                             progress: Callable[[int], None] | None = None, cameras=None) -> dict:
    """Like :func:`aistpp.detect.detect_sequence`, one process per view (``workers`` at a time; 1 = in-process).

    Returns dict(keypoints2d (9, N, 17, 3) float32, det_scores (9, N), box_source (9, N) uint8, timestamps (N,)
    us, status {view: dict}). ``parts_dir``: where finished first passes are kept for resuming (None: not kept).
    ``progress(n)``: n grid frames done. ``cameras``: the setting's CameraGroup (view order) for multi-view boxes.
    """
    reader = SequenceReader(videos_dir, sequence, n_frames=n_frames, config=video_config)
    n = reader.n_frames
    seq = reader.sequence
    key = _settings_key(seq, n, spec, video_config, config)
    kp, sc = empty_keypoints(len(reader.views), n)
    results = {v: {"keypoints2d": kp[k], "det_scores": sc[k], "box_source": np.zeros(n, np.uint8),
                   "background": np.zeros((0, 0, 3), np.uint8), "bg_ready_at": n}
               for k, v in enumerate(reader.views)}
    status = {v: st.to_dict() for v, st in reader.status.items()}
    todo = []
    parts = Path(parts_dir) if parts_dir is not None else None
    for k, v in enumerate(reader.views):
        if not reader.status[v].usable:
            if progress:
                progress(n)
            continue
        done = _load_part(parts / f"{v}.npz", key) if parts is not None else None
        if done is not None:
            log.info("%s %s: already detected, reusing %s", seq, v, parts / f"{v}.npz")
            status[v] = done.pop("status")
            results[v] = done
            if progress:
                progress(n)
            continue
        todo.append(v)

    def collect(view, result):
        if parts is not None:
            _save_part(parts / f"{view}.npz", key, result)
        status[view] = result["status"]
        results[view] = {k: result[k] for k in ("keypoints2d", "det_scores", "box_source", "background",
                                                "bg_ready_at")}

    _run_jobs(todo, lambda v, sp: (_view_job, _view_job_inline, (videos_dir, seq, v, sp, n, video_config, config)),
              collect, workers, spec, progress)
    # second pass: lost frames, with the nearest found frame's box, the final background and multi-view boxes
    localizes = config.boxes == "localize"
    seeds = seed_boxes(results, reader.views, cameras, config) if localizes else {}
    retry = {}
    for v in reader.views:
        if localizes and reader.status[v].usable:
            cands = second_pass_frames(results[v], config, seeds.get(v))
            if cands:
                retry[v] = cands

    def collect_retry(view, result):
        results[view] = result

    _run_jobs(list(retry), lambda v, sp: (_retry_job, _retry_job_inline, (videos_dir, seq, v, sp, n, video_config,
                                                                       config, retry[v], results[v])),
              collect_retry, workers, spec, None)
    for k, v in enumerate(reader.views):
        kp[k], sc[k] = results[v]["keypoints2d"], results[v]["det_scores"]
    src = np.stack([results[v]["box_source"] for v in reader.views]).astype(np.uint8)
    return {"keypoints2d": kp, "det_scores": sc, "box_source": src, "timestamps": reader.timestamps,
            "status": status}


def _run_jobs(todo, job_of, collect, workers, spec, progress) -> None:
    """Run ``job_of(view, spec) -> (pool function, inline function, args)`` for each view, ``workers`` processes at a
    time (1: in this process); ``collect(view, result)`` as they finish."""
    if workers <= 1 or len(todo) <= 1:
        for v in todo:
            _, inline, args = job_of(v, spec)
            collect(*inline(*args, progress))
    else:
        import multiprocessing as mp
        import os

        n_workers = min(workers, len(todo))
        if spec.backend == "onnx" and not spec.options.get("threads"):  # no oversubscription: share the cores
            threads = max(1, len(os.sched_getaffinity(0)) // n_workers)
            spec = DetectorSpec(spec.backend, spec.model, {**spec.options, "threads": threads})
        ctx = mp.get_context("spawn")  # no fork of a process that may hold TFLite / ORT threads
        with ctx.Manager() as manager, ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx) as pool:
            q = manager.Queue()
            futures = set()
            for v in todo:
                fn, _, args = job_of(v, spec)
                futures.add(pool.submit(fn, *args, q))
            while futures:
                finished, futures = wait(futures, timeout=0.2, return_when=FIRST_COMPLETED)
                _drain(q, progress)
                for f in finished:
                    collect(*f.result())
            _drain(q, progress)


def _view_job_inline(videos_dir, sequence, view, spec, n_frames, video_config, config, progress):
    det = spec.build()
    try:
        return view, detect_one_view(videos_dir, sequence, view, det, n_frames, video_config, config, progress)
    finally:
        if hasattr(det, "close"):
            det.close()


def _retry_job(videos_dir, sequence, view, spec, n_frames, video_config, config, candidates, result,
               progress_queue):
    return _retry_job_inline(videos_dir, sequence, view, spec, n_frames, video_config, config, candidates, result,
                             None)


def _retry_job_inline(videos_dir, sequence, view, spec, n_frames, video_config, config, candidates, result,
                      progress):
    det = spec.build()
    try:
        return view, redetect_one_view(videos_dir, sequence, view, det, candidates, result, n_frames,
                                       video_config, config)
    finally:
        if hasattr(det, "close"):
            det.close()


def _drain(q, progress) -> None:
    while True:
        try:
            n = q.get_nowait()
        except queue.Empty:
            return
        if progress:
            progress(n)
