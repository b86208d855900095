"""Decode and detection speed at 1920x1080, frames per second on ONE core (the process is pinned to one CPU).

Makes a synthetic 1080p 60 fps H.264 video (skimage's astronaut photo, scaled to 720 px, drifting over a grey
background, with sensor-like noise so the bitrate is camera-like), then measures:

- decode: aistpp.video.iter_view (PyAV, 1 decoder thread, grid alignment, RGB out) against two baselines in the
  same process: a plain PyAV decode loop (to_ndarray rgb24) and OpenCV VideoCapture.read + BGR->RGB;
- detection: MediaPipe Pose (model_complexity=1) per frame, static-image mode (a fresh detection every frame) and
  video mode (tracking), on the decoded 1080p frames.

Run: .venv/bin/python benchmarks/detect.py [--frames 120]
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


def make_video(path: Path, n: int) -> None:
    import cv2
    from skimage.data import astronaut

    from aistpp.video import write_video

    photo = cv2.resize(astronaut(), (720, 720), interpolation=cv2.INTER_CUBIC)
    rng = np.random.default_rng(0)
    grain = [rng.normal(0, 5, (1080, 1920, 1)).astype(np.int16) for _ in range(8)]  # sensor-like noise

    def frames():
        for i in range(n):
            img = np.full((1080, 1920, 3), 110, np.uint8)
            x, y = 300 + 4 * i, 200 + int(40 * np.sin(i / 10))
            img[y:y + 720, x:x + 720] = photo
            yield np.clip(img + grain[i % 8], 0, 255).astype(np.uint8)

    write_video(path, frames(), preset="veryfast", crf=20)


def timed(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--detect-frames", type=int, default=60)
    args = ap.parse_args()
    core = sorted(os.sched_getaffinity(0))[0]
    os.sched_setaffinity(0, {core})
    import av
    import cv2

    cv2.setNumThreads(1)
    from aistpp.video import VideoConfig, iter_view

    n = args.frames
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "gBR_sBM_c01_d04_mBR0_ch01.mp4"
        t = time.perf_counter()
        make_video(path, n)
        print(f"synthetic 1080p video: {n} frames, {path.stat().st_size / 1e6:.1f} MB, "
              f"made in {time.perf_counter() - t:.1f} s; pinned to CPU {core}")

        cfg = VideoConfig(batch_size=8, threads=1)
        frames_kept = []

        def ours():
            frames_kept.clear()
            got = 0
            for _, fr, _ in iter_view(path, "c01", n, cfg):
                got += len(fr)
                if len(frames_kept) < args.detect_frames:
                    frames_kept.extend(fr[: args.detect_frames - len(frames_kept)])
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

        from aistpp.detect import MediaPipeConfig, MediaPipeDetector

        frames = np.stack(frames_kept)
        res = {}
        for mode, static in (("static-image (detect every frame)", True), ("video (tracking)", False)):
            with MediaPipeDetector(MediaPipeConfig(static_image_mode=static)) as det:
                det(frames[:1])  # load the model outside the timing
                t = time.perf_counter()
                kp, sc = det(frames)
                res[mode] = time.perf_counter() - t
            found = float((sc > 0).mean())
            print(f"MediaPipe Pose {mode}: {len(frames) / res[mode]:6.1f} frames/s on one core "
                  f"({1000 * res[mode] / len(frames):.1f} ms/frame, person found in {100 * found:.0f}% of frames)")
        a, b = res.values()
        print(f"  tracking mode is x{a / b:.2f} the speed of static mode")
        per_frame = t_ours / n + a / len(frames)
        print(f"decode + static detection: {1 / per_frame:.1f} frames/s per core "
              f"(decode is {100 * (t_ours / n) / per_frame:.0f}% of it; a 9-view 20 s sequence = 10,800 frames "
              f"= {10800 * per_frame / 60:.1f} core-minutes)")


if __name__ == "__main__":
    main()
