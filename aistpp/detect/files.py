"""Detection to and from files: a sequence's videos to its keypoints2d pkl and status JSON, images to a keypoints
JSON, and keypoints drawn back onto an image or a video (what ``aistpp detect`` and ``aistpp overlay`` run).

- :func:`detect_sequence_to_file`: :func:`aistpp.detect.runner.detect_sequence_parallel` over the 9 views, then the
  official keypoints2d pkl and ``<out stem>.status.json`` (per view: state, usable, box sources); finished views
  are kept in ``<out>.parts/`` until the pkl is written, so an interrupted run resumes.
- :func:`detect_images_to_json`: one detection per image, written as ``{detector, images: {path: {size, score,
  keypoints: {coco17 name: [x, y, conf]}}}}``; :func:`read_json_keypoints` reads one image's (17, 3) back.
- :func:`probe_video`, :func:`draw_video_frame`, :func:`write_overlay_video`, :func:`read_image`,
  :func:`write_image`: keypoints drawn on a view's video or an image.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np

from aistpp.errors import AistppError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def cameras_for_sequence(path, sequence: str):
    """The CameraGroup of ``sequence`` from a setting json or an annotations folder (None without a path)."""
    if not path:
        return None
    path = Path(path)
    if path.is_dir():
        from aistpp.io.annotations import AnnotationTree

        return AnnotationTree.open(path).cameras_for(sequence)
    if not path.exists():
        raise AistppError("cameras file not found", path)
    from aistpp.io.cameras import load_cameras

    return load_cameras(path)


def _progress_bar(total, desc, unit="frame"):
    from aistpp.progress import tqdm

    return tqdm(total=total, desc=desc, unit=unit, smoothing=0.1)  # a bar, or log lines without a terminal


def detect_sequence_to_file(videos: str | Path, sequence: str, out: str | Path, spec, n_frames: int | None = None,
                            video_config=None, config=None, workers: int = 1, cameras=None,
                            force: bool = False) -> dict:
    """Detect the 9 views of ``sequence`` in ``videos`` and write the keypoints2d pkl ``out`` and its status JSON.

    ``n_frames``: expected frame count (None = the longest usable view); ``spec``: a
    :class:`~aistpp.detect.runner.DetectorSpec`; ``video_config`` / ``config``: :class:`aistpp.video.VideoConfig`
    / :class:`~aistpp.detect.base.DetectConfig`; ``cameras``: the setting's CameraGroup (multi-view boxes);
    ``force`` recomputes the views already finished in ``<out>.parts/``. Returns ``{"sequence", "n_frames",
    "out", "status_path", "views": {view: status}, "detected": {view: fraction of frames with a person}}``.
    """
    from aistpp.detect.localize import BOX_SOURCES
    from aistpp.detect.runner import detect_sequence_parallel
    from aistpp.io.annotations import write_keypoints2d
    from aistpp.io.atomic import atomic_write_text
    from aistpp.video import SequenceReader, VideoConfig

    if not Path(videos).is_dir():
        raise AistppError("videos folder not found", videos)
    vcfg = video_config or VideoConfig()
    out = Path(out)
    parts = out.with_name(out.name + ".parts")
    if force and parts.exists():
        shutil.rmtree(parts)
    n_frames = n_frames or SequenceReader(videos, sequence, config=vcfg).n_frames
    bar = _progress_bar(9 * n_frames, sequence)
    try:
        res = detect_sequence_parallel(videos, sequence, spec, n_frames=n_frames, video_config=vcfg, config=config,
                                       workers=workers, parts_dir=parts, progress=bar.update, cameras=cameras)
    finally:
        bar.close()
    write_keypoints2d(out, res["keypoints2d"], res["det_scores"], res["timestamps"], box_source=res["box_source"])
    for k, v in enumerate(res["status"]):
        counts = np.bincount(res["box_source"][k], minlength=len(BOX_SOURCES))
        res["status"][v]["box_sources"] = {name: int(c) for name, c in zip(BOX_SOURCES, counts)}
    status_path = out.with_name(out.stem + ".status.json")
    atomic_write_text(status_path, json.dumps({"sequence": sequence, "n_frames": n_frames, "detector": spec.to_dict(),
                                               "video": vcfg.to_dict(), "views": res["status"]}, indent=2))
    shutil.rmtree(parts, ignore_errors=True)
    detected = (~np.isnan(res["keypoints2d"][..., 0]).all(-1)).mean(axis=1)
    return {"sequence": sequence, "n_frames": n_frames, "out": out, "status_path": status_path,
            "views": res["status"], "detected": {v: float(f) for v, f in zip(res["status"], detected)}}


def read_image(path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise AistppError("cannot read image", path)
    return img[..., ::-1].copy()


def write_image(path, rgb) -> None:
    """Write (H, W, 3) uint8 RGB as .png/.jpg/... (atomically)."""
    import cv2

    from aistpp.io.atomic import atomic_path

    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise AistppError("output image must be .png, .jpg, ...", path)
    with atomic_path(path, suffix=path.suffix) as tmp:
        if not cv2.imwrite(str(tmp), rgb[..., ::-1]):
            raise AistppError("cannot write image", path)


def detect_images_to_json(paths, out: str | Path, spec) -> dict:
    """Detect the best person on each image of ``paths`` with the detector of ``spec`` and write the JSON ``out``
    (atomically). Returns ``{path: {"size", "score", "keypoints"}}`` (score 0 where nobody was found)."""
    from aistpp.io.atomic import atomic_write_text
    from aistpp.skeleton import COCO17

    det = spec.build()
    results = {}
    bar = _progress_bar(len(paths), "images")
    try:
        for path in paths:
            img = read_image(path)
            kp, sc = det(img[None])
            results[str(path)] = {
                "size": [int(img.shape[1]), int(img.shape[0])],
                "score": float(sc[0]),
                "keypoints": {name: [None if math.isnan(float(v)) else round(float(v), 3) for v in kp[0, j]]
                              for j, name in enumerate(COCO17)},
            }
            bar.update(1)
    finally:
        bar.close()
        if hasattr(det, "close"):
            det.close()
    atomic_write_text(out, json.dumps({"detector": spec.to_dict(), "images": results}, indent=1))
    return results


def read_json_keypoints(path, image) -> np.ndarray:
    """(17, 3) of ``image`` from a detect --images JSON (matched by path, then file name, then the only entry)."""
    from aistpp.skeleton import COCO17

    try:
        data = json.loads(Path(path).read_text())
        images = data["images"]
    except (OSError, ValueError, KeyError, TypeError):
        raise AistppError("not a keypoints JSON from 'aistpp detect --images'", path) from None
    entry = images.get(str(image))
    if entry is None:
        by_name = [v for k, v in images.items() if Path(k).name == Path(image).name]
        entry = by_name[0] if len(by_name) == 1 else (next(iter(images.values())) if len(images) == 1 else None)
    if entry is None:
        raise AistppError(f"no entry for {image} (has {len(images)} images)", path)
    return np.array([[np.nan if v is None else v for v in entry["keypoints"][n]] for n in COCO17], np.float32)


def probe_video(video, view: str, n_frames: int) -> tuple:
    """``(video config, status, timestamps)`` of one view's video on a grid of ``n_frames``, for
    :func:`draw_video_frame` and :func:`write_overlay_video`; an unusable video raises with its reason."""
    from aistpp.video import VideoConfig, probe_view

    vcfg = VideoConfig(expected_size=None, batch_size=8)
    status, pts = probe_view(video, view, n_frames, vcfg)
    if not status.usable:
        raise AistppError(f"cannot use this video: {status.summary()}", video)
    return vcfg, status, pts


def draw_video_frame(video, view: str, keypoints, frame: int, min_conf: float, probe: tuple) -> np.ndarray:
    """Grid frame ``frame`` of the video with ``keypoints[frame]`` drawn on it (RGB); ``probe``: :func:`probe_video`."""
    from aistpp.detect.draw import draw_keypoints
    from aistpp.video import iter_view

    vcfg, status, pts = probe
    for start, frames, valid in iter_view(video, view, len(keypoints), vcfg, status, pts):
        if start <= frame < start + len(frames):
            label = f"{view} frame {frame}" + ("" if valid[frame - start] else " (no frame at this time)")
            return draw_keypoints(frames[frame - start], keypoints[frame], min_conf, label=label)
    raise AistppError(f"frame {frame} not decoded", video)


def write_overlay_video(path, video, view: str, keypoints, min_conf: float, probe: tuple) -> None:
    """Write the video with ``keypoints`` (N, 17, 3) drawn on every grid frame; ``probe``: :func:`probe_video`."""
    from aistpp.detect.draw import draw_keypoints
    from aistpp.video import iter_view, write_video

    vcfg, status, pts = probe
    n = keypoints.shape[0]
    bar = _progress_bar(n, "overlay")

    def drawn_frames():
        for start, frames, valid in iter_view(video, view, n, vcfg, status, pts):
            for j, img in enumerate(frames):
                i = start + j
                lab = f"{view} frame {i}" + ("" if valid[j] else " (no frame at this time)")
                yield draw_keypoints(img, keypoints[i], min_conf, label=lab)
            bar.update(len(frames))

    try:
        write_video(path, drawn_frames(), preset="veryfast", crf=20)
    finally:
        bar.close()
