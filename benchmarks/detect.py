"""Decode and detection speed at 1920x1080, frames per second on ONE core (the process is pinned to one CPU), and
how often the dancer is found: whole-frame against localized (top-down on a crop) detection, side by side.

Makes a synthetic 1080p 60 fps H.264 video of real pixels (tests/photovideo.py: skimage's astronaut photo shrunk
to a third of the frame height, moving over a tiled brick texture with sensor noise, a tripod and a still photo of
a coffee cup), then measures:

- decode: aistpp.video.iter_view (PyAV, 1 decoder thread, grid alignment, RGB out) against two baselines in the
  same process: a plain PyAV decode loop (to_ndarray rgb24) and OpenCV VideoCapture.read + BGR->RGB;
- detection, decode included (aistpp.detect.detect_sequence on the view, MediaPipe Pose): whole frame
  (``DetectConfig(boxes="frame")``) and localized (the default): frames/s per core, share of frames with a person,
  and the distance of the sure keypoints (confidence >= 0.5 on the full-size photo) to MediaPipe's detection on the
  full-size photo, scaled and shifted to where the photo is in each frame.

Speeds are frames per CPU-second of the pinned process (robust to other processes sharing the core; the wall
time is printed too). Run: .venv/bin/python benchmarks/detect.py [--frames 120]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import sys

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

SEQ = "gBR_sBM_cAll_d04_mBR0_ch01"


def make_scene(n: int):
    from photovideo import Scene, person_photo, textured_background

    return Scene(person_photo("astronaut"), textured_background(), n)


def make_video(path: Path, scene) -> None:
    from aistpp.video import write_video

    write_video(path, scene.frames(), preset="veryfast", crf=20)


def timed(fn, repeat: int = 1) -> float:
    """Best CPU time of ``fn`` in seconds (the process is pinned to one core, so CPU time = that core's time, and
    other processes sharing the core do not count)."""
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=120, help="frames of the synthetic video (default 120)")
    args = ap.parse_args()
    core = sorted(os.sched_getaffinity(0))[0]
    os.sched_setaffinity(0, {core})
    import av
    import cv2

    cv2.setNumThreads(1)
    from aistpp.video import VideoConfig, iter_view

    n = args.frames
    scene = make_scene(n)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"{SEQ.replace('cAll', 'c01')}.mp4"
        t = time.perf_counter()
        make_video(path, scene)
        print(f"synthetic 1080p video: {n} frames, {path.stat().st_size / 1e6:.1f} MB, "
              f"made in {time.perf_counter() - t:.1f} s; pinned to CPU {core}")

        cfg = VideoConfig(batch_size=8, threads=1)

        def ours():
            got = sum(len(fr) for _, fr, _ in iter_view(path, "c01", n, cfg))
            assert got == n, got

        def pyav_plain():
            with av.open(str(path)) as c:
                s = c.streams.video[0]
                s.codec_context.thread_count = 1
                k = sum(1 for f in c.decode(s) if f.to_ndarray(format="rgb24") is not None)
            assert k == n

        def opencv():
            cap = cv2.VideoCapture(str(path))
            k = 0
            while True:
                ok, img = cap.read()
                if not ok:
                    break
                cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
                k += 1
            cap.release()
            assert k == n, k

        t_ours, t_av, t_cv = timed(ours, 2), timed(pyav_plain, 2), timed(opencv, 2)
        print("decode 1920x1080 -> RGB, frames/s on one core:")
        print(f"  aistpp.video.iter_view     {n / t_ours:7.1f}  (x{t_av / t_ours:.2f} vs plain PyAV, "
              f"x{t_cv / t_ours:.2f} vs OpenCV)")
        print(f"  plain PyAV decode loop     {n / t_av:7.1f}")
        print(f"  OpenCV VideoCapture.read   {n / t_cv:7.1f}")

        from aistpp.detect import DetectConfig, MediaPipeDetector, detect_sequence

        rows = {}
        with MediaPipeDetector() as det:
            ref = det(scene.photo[None])[0][0]  # the full-size photo; also loads the model outside the timing
            sure = ref[:, 2] >= 0.5
            for name, config in (("whole frame", DetectConfig(boxes="frame")), ("localized", DetectConfig())):
                t, w = time.process_time(), time.perf_counter()
                res = detect_sequence(d, SEQ, det, video_config=cfg, config=config, views=("c01",))
                dt = time.process_time() - t
                print(f"  ({name}: {dt:.1f} s CPU, {time.perf_counter() - w:.1f} s wall)")
                kp = res["keypoints2d"][0]
                found = np.isfinite(kp[:, :, 0]).all(-1)
                err = np.concatenate([np.linalg.norm(kp[i, sure, :2] - scene.to_frame(ref, i)[sure, :2], axis=-1)
                                      for i in np.flatnonzero(found)] or [np.zeros(0)])
                rows[name] = (n / dt, found.mean(), err, np.bincount(res["box_source"][0], minlength=5))
        from aistpp.detect.localize import BOX_SOURCES

        print(f"detection at 1080p, decode included, one core (MediaPipe Pose, {n} frames; person "
              f"{scene.small.shape[0]} px tall):")
        print(f"  {'':12s} {'frames/s':>9s} {'found':>7s} {'median px':>10s} {'<= 10 px':>9s}  box sources")
        for name, (fps, found, err, src) in rows.items():
            med = f"{np.median(err):10.1f}" if len(err) else f"{'-':>10s}"
            within = f"{100 * np.mean(err <= 10):8.0f}%" if len(err) else f"{'-':>9s}"
            srcs = ", ".join(f"{BOX_SOURCES[k]} {c}" for k, c in enumerate(src) if c)
            print(f"  {name:12s} {fps:9.1f} {100 * found:6.1f}% {med} {within}  {srcs}")
        (fw, ff, _, _), (lw, lf, _, _) = rows["whole frame"], rows["localized"]
        print(f"  localized / whole frame: x{lw / fw:.2f} the speed, x{lf / max(ff, 1e-9):.2f} the frames found")


if __name__ == "__main__":
    main()
