"""Verbs ``detect`` (2D keypoints from the 9 videos of a sequence, or from images) and ``overlay`` (draw them)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from aistpp.errors import AistppError

log = logging.getLogger("aistpp.detect")

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def register(sub) -> None:
    p = sub.add_parser(
        "detect", help="detect COCO-17 2D keypoints on the 9 videos of a sequence, or on images",
        description="Videos: read <videos>/<video>.mp4 of the 9 views (c01..c09), align them on the 60 fps grid by "
                    "timestamps, detect the best person per frame and write the official keypoints2d pkl "
                    "(keypoints2d (9,N,17,3) px+conf, NaN where nothing; det_scores (9,N); timestamps (N,) us). "
                    "Missing, corrupt, truncated or other-size views are reported and left NaN. Finished views are "
                    "kept in <out>.parts/ so an interrupted run resumes. Images: write JSON, per image "
                    "{score, keypoints: {coco17 name: [x, y, conf]}}.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--videos", metavar="DIR", help="folder of <video>.mp4 files (gBR_sBM_c01_d04_mBR0_ch01.mp4 ...)")
    src.add_argument("--images", metavar="FILE", nargs="+", help="image files (detect on each, write JSON)")
    p.add_argument("--sequence", metavar="NAME", help="sequence name, e.g. gBR_sBM_cAll_d04_mBR0_ch01 (with --videos)")
    p.add_argument("--out", required=True, metavar="FILE", help="keypoints2d .pkl (videos) or .json (images)")
    p.add_argument("--backend", choices=("mediapipe", "onnx"), default="mediapipe",
                   help="mediapipe: MediaPipe Pose, offline (extra 'detect'); onnx: a top-down model file "
                        "(RTMPose SimCC or ViTPose/HRNet heatmaps, extra 'onnx')")
    p.add_argument("--model", metavar="FILE.onnx", help="the ONNX model (with --backend onnx)")
    p.add_argument("--input-size", metavar="WxH", help="ONNX model input size when the model's is dynamic")
    p.add_argument("--boxes", choices=("localize", "frame", "previous", "mediapipe"), default="localize",
                   help="where to detect: localize (default: find the dancer by tracking, a per-view background "
                        "model, boxes from the other views (with --cameras) and the whole frame as last resort, "
                        "then detect on a square crop around them; any backend); frame (the whole frame, for "
                        "comparison); previous / mediapipe (ONNX only: the previous keypoints' box / MediaPipe "
                        "boxes)")
    p.add_argument("--cameras", metavar="PATH",
                   help="the setting's cameras, for boxes projected from the views that found the dancer into "
                        "views that lost it: a setting*.json file or an annotations folder (cameras/mapping.txt)")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="processes, one view each (default 1)")
    p.add_argument("--frames", type=int, metavar="N",
                   help="expected frame count (default: the longest usable view)")
    p.add_argument("--size", metavar="WxH", default="1920x1080",
                   help="expected video size; views of another size are reported and skipped (default 1920x1080; "
                        "'any' accepts all)")
    p.add_argument("--resize", action="store_true", help="resize views of another size instead of skipping them")
    p.add_argument("--batch-size", type=int, default=8, help="frames decoded per batch and view (memory bound)")
    p.add_argument("--track", action="store_true",
                   help="MediaPipe video mode: track between consecutive frames (faster, smoother) instead of "
                        "detecting on every frame")
    p.add_argument("--force", action="store_true", help="recompute views already finished in <out>.parts/")
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser(
        "overlay", help="draw 2D keypoints on a video or an image",
        description="Draw COCO-17 keypoints and skeleton edges (subject-left orange, right blue) on a frame or a "
                    "whole video. Keypoints: a keypoints2d .pkl (one view: --view, default from the video name) or "
                    "the .json of 'aistpp detect --images'.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--video", metavar="FILE", help="a view's video")
    src.add_argument("--image", metavar="FILE", help="an image")
    p.add_argument("--keypoints", required=True, metavar="FILE", help="keypoints2d .pkl or detect --images .json")
    p.add_argument("--view", metavar="c01", help="view in the pkl (default: from the video file name)")
    p.add_argument("--frame", type=int, metavar="I",
                   help="grid frame index: draw only this frame (writes an image); with --image, the pkl frame")
    p.add_argument("--min-conf", type=float, default=0.1, help="hide points below this confidence (default 0.1)")
    p.add_argument("--out", required=True, metavar="FILE", help="output image (.png/.jpg) or video (.mp4)")
    p.set_defaults(func=cmd_overlay)


def _parse_size(text, flag):
    if text is None or text == "any":
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise AistppError(f"{flag} must look like 1920x1080, got {text!r}") from None
    return (w, h)


def _spec(args):
    from aistpp.detect.runner import DetectorSpec

    boxes = getattr(args, "boxes", "localize")
    if args.backend == "onnx":
        opts = {"box_source": boxes if boxes in ("previous", "mediapipe") else "frame"}
        if args.input_size:
            opts["input_size"] = _parse_size(args.input_size, "--input-size")
        return DetectorSpec("onnx", str(Path(args.model).resolve()) if args.model else None, opts)
    if args.model or boxes in ("previous", "mediapipe"):
        raise AistppError("--model and --boxes previous/mediapipe are only used with --backend onnx")
    return DetectorSpec("mediapipe", None, {"static_image_mode": not getattr(args, "track", False)})


def _detect_config(args):
    from aistpp.detect.base import DetectConfig

    return DetectConfig(boxes="localize" if getattr(args, "boxes", "localize") == "localize" else "frame")


def _cameras(path, sequence):
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


def _progress_bar(total, desc):
    from aistpp.progress import tqdm

    return tqdm(total=total, desc=desc, unit="frame", smoothing=0.1)  # a bar, or log lines without a terminal


def cmd_detect(args) -> int:
    spec = _spec(args)
    if args.images:
        return _detect_images(args, spec)
    if not args.sequence:
        raise AistppError("--videos needs --sequence NAME")
    if not Path(args.videos).is_dir():
        raise AistppError("videos folder not found", args.videos)
    import shutil

    from aistpp.detect.localize import BOX_SOURCES
    from aistpp.detect.runner import detect_sequence_parallel
    from aistpp.io.annotations import write_keypoints2d
    from aistpp.naming import parse_name
    from aistpp.video import VideoConfig

    seq = parse_name(args.sequence).sequence
    cameras = _cameras(args.cameras, seq)
    out = Path(args.out)
    parts = out.with_name(out.name + ".parts")
    if args.force and parts.exists():
        shutil.rmtree(parts)
    vcfg = VideoConfig(batch_size=args.batch_size, expected_size=_parse_size(args.size, "--size"),
                       on_resolution="resize" if args.resize else "skip")
    bar = None

    def progress(n):
        bar.update(n)

    from aistpp.video import SequenceReader

    n_frames = args.frames or SequenceReader(args.videos, seq, config=vcfg).n_frames
    bar = _progress_bar(9 * n_frames, seq)
    try:
        res = detect_sequence_parallel(args.videos, seq, spec, n_frames=n_frames, video_config=vcfg,
                                       config=_detect_config(args), workers=args.workers, parts_dir=parts,
                                       progress=progress, cameras=cameras)
    finally:
        bar.close()
    write_keypoints2d(out, res["keypoints2d"], res["det_scores"], res["timestamps"], box_source=res["box_source"])
    import numpy as np

    for k, v in enumerate(res["status"]):
        counts = np.bincount(res["box_source"][k], minlength=len(BOX_SOURCES))
        res["status"][v]["box_sources"] = {name: int(c) for name, c in zip(BOX_SOURCES, counts)}
    status_path = out.with_name(out.stem + ".status.json")
    from aistpp.io.atomic import atomic_write_text

    atomic_write_text(status_path, json.dumps({"sequence": seq, "n_frames": n_frames, "detector": spec.to_dict(),
                                               "video": vcfg.to_dict(), "views": res["status"]}, indent=2))
    shutil.rmtree(parts, ignore_errors=True)
    detected = (~np.isnan(res["keypoints2d"][..., 0]).all(-1)).mean(axis=1)
    for v, frac in zip(res["status"], detected):
        st = res["status"][v]
        by = ", ".join(f"{name} {c}" for name, c in st["box_sources"].items() if c and name != "none")
        log.info("%s %s: %s, %.0f%% frames with a person%s", seq, v, st["state"], 100 * frac,
                 f" (boxes: {by})" if by else "")
    bad = [v for v, st in res["status"].items() if not st["usable"]]
    log.info("wrote %s (%d frames, %d usable views%s); status in %s", out, n_frames, 9 - len(bad),
             f", unusable: {', '.join(bad)}" if bad else "", status_path)
    return 0


def _read_image(path):
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise AistppError("cannot read image", path)
    return img[..., ::-1].copy()


def _detect_images(args, spec) -> int:
    import math

    from aistpp.io.atomic import atomic_write_text
    from aistpp.skeleton import COCO17

    det = spec.build()
    results = {}
    bar = _progress_bar(len(args.images), "images")
    try:
        for path in args.images:
            img = _read_image(path)
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
    atomic_write_text(args.out, json.dumps({"detector": spec.to_dict(), "images": results}, indent=1))
    found = sum(r["score"] > 0 for r in results.values())
    log.info("wrote %s: a person in %d of %d images", args.out, found, len(results))
    return 0


def _json_keypoints(path, image):
    """(17, 3) of ``image`` from a detect --images JSON (matched by path, then file name, then the only entry)."""
    import numpy as np

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


def _pkl_view(args, video_path=None):
    from aistpp.io.annotations import read_keypoints2d
    from aistpp.naming import VIEWS, parse_name

    data = read_keypoints2d(args.keypoints)
    view = args.view
    if view is None and video_path is not None:
        try:
            view = parse_name(Path(video_path).stem).camera
        except AistppError:
            view = None
    if view not in VIEWS:
        raise AistppError("say which view of the pkl to draw: --view c01..c09")
    return data, VIEWS.index(view), view


def cmd_overlay(args) -> int:
    from aistpp.detect.draw import draw_keypoints

    kpath = Path(args.keypoints)
    if not kpath.exists():
        raise AistppError("keypoints file not found", kpath)
    is_json = kpath.suffix.lower() == ".json"
    out = Path(args.out)
    if args.image:
        img = _read_image(args.image)
        if is_json:
            kp = _json_keypoints(kpath, args.image)
            label = Path(args.image).name
        else:
            data, k, view = _pkl_view(args)
            if args.frame is None:
                raise AistppError("--image with a pkl needs --frame I")
            kp = data["keypoints2d"][k, _check_frame(args.frame, data["keypoints2d"].shape[1])]
            label = f"{view} frame {args.frame}"
        _write_image(out, draw_keypoints(img, kp, args.min_conf, label=label))
        log.info("wrote %s", out)
        return 0
    if is_json:
        raise AistppError("--video needs a keypoints2d .pkl (the JSON holds single images)")
    video = Path(args.video)
    if not video.exists():
        raise AistppError("video not found", video)
    data, k, view = _pkl_view(args, video)
    kps = data["keypoints2d"][k]
    n = kps.shape[0]
    from aistpp.video import VideoConfig, iter_view, probe_view

    vcfg = VideoConfig(expected_size=None, batch_size=8)
    status, pts = probe_view(video, view, n, vcfg)
    if not status.usable:
        raise AistppError(f"cannot use this video: {status.summary()}", video)
    if args.frame is not None:
        i = _check_frame(args.frame, n)
        for start, frames, valid in iter_view(video, view, n, vcfg, status, pts):
            if start <= i < start + len(frames):
                label = f"{view} frame {i}" + ("" if valid[i - start] else " (no frame at this time)")
                _write_image(out, draw_keypoints(frames[i - start], kps[i], args.min_conf, label=label))
                log.info("wrote %s", out)
                return 0
        raise AistppError(f"frame {i} not decoded", video)
    _write_video(out, video, view, kps, vcfg, status, pts, args.min_conf)
    log.info("wrote %s (%d frames)", out, n)
    return 0


def _check_frame(i, n):
    if not 0 <= i < n:
        raise AistppError(f"--frame {i} out of range 0..{n - 1}")
    return i


def _write_image(path, rgb):
    import cv2

    from aistpp.io.atomic import atomic_path

    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise AistppError("output image must be .png, .jpg, ...", path)
    with atomic_path(path, suffix=path.suffix) as tmp:
        if not cv2.imwrite(str(tmp), rgb[..., ::-1]):
            raise AistppError("cannot write image", path)


def _write_video(path, video, view, kps, vcfg, status, pts, min_conf):
    from aistpp.detect.draw import draw_keypoints
    from aistpp.video import iter_view, write_video

    n = kps.shape[0]
    bar = _progress_bar(n, "overlay")

    def drawn_frames():
        for start, frames, valid in iter_view(video, view, n, vcfg, status, pts):
            for j, img in enumerate(frames):
                i = start + j
                lab = f"{view} frame {i}" + ("" if valid[j] else " (no frame at this time)")
                yield draw_keypoints(img, kps[i], min_conf, label=lab)
            bar.update(len(frames))

    try:
        write_video(path, drawn_frames(), preset="veryfast", crf=20)
    finally:
        bar.close()
