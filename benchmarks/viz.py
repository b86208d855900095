"""Speed of the pictures and exports, against the usual baselines, on a real shared sequence.

    python benchmarks/viz.py

1. 3D skeleton animation: our OpenCV renderer (fixed virtual camera, floor drawn once) vs. the usual matplotlib
   mplot3d loop (one 3D axes redrawn per frame, rendered to an array), both 480x480, 120 frames, in the same process.
2. BVH export + re-import (forward kinematics) of a 576-frame motion.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ANNOTATIONS = ROOT.parent / "shared" / "aistpp-data" / "annotations"
SEQ = "gJS_sBM_cAll_d03_mJS2_ch07"


def matplotlib_frames(k3: np.ndarray, size=(480, 480)) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from aistpp.skeleton import DRAW_EDGES

    fig = plt.figure(figsize=(size[0] / 100, size[1] / 100), dpi=100)
    ax = fig.add_subplot(projection="3d")
    lo, hi = np.nanmin(k3.reshape(-1, 3), 0), np.nanmax(k3.reshape(-1, 3), 0)
    n = 0
    for frame in k3:
        ax.cla()
        ax.set(xlim=(lo[0], hi[0]), ylim=(lo[2], hi[2]), zlim=(lo[1], hi[1]))
        for a, b in DRAW_EDGES:
            ax.plot([frame[a, 0], frame[b, 0]], [frame[a, 2], frame[b, 2]], [frame[a, 1], frame[b, 1]], "b-")
        ax.scatter(frame[:, 0], frame[:, 2], frame[:, 1], c="r", s=8)
        fig.canvas.draw()
        np.asarray(fig.canvas.buffer_rgba())
        n += 1
    plt.close(fig)
    return n


def main() -> int:
    from aistpp.io.annotations import AnnotationTree
    from aistpp.viz.animate import AnimationConfig
    from aistpp.viz.render import canvas, draw_floor, look_at_camera, render_skeleton

    tree = AnnotationTree.open(ANNOTATIONS)
    k3 = tree.read("keypoints3d", SEQ)["keypoints3d_optim"][:120]
    cfg = AnimationConfig()
    cam = look_at_camera(k3, size=cfg.size)
    bg = canvas(cam.size)
    draw_floor(bg, cam, float(np.nanmin(k3[..., 1])), np.nanmean(k3.reshape(-1, 3), 0))
    t0 = time.perf_counter()
    for frame in k3:
        render_skeleton(frame, cam, image=bg.copy())
    ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    matplotlib_frames(k3)
    base = time.perf_counter() - t0
    print(f"skeleton frames, 480x480, {len(k3)} frames: ours {len(k3) / ours:.0f} fps, matplotlib mplot3d "
          f"{len(k3) / base:.1f} fps -> {base / ours:.0f}x faster")

    from aistpp.smpl import load_body_model
    from aistpp.viz.export import bvh_forward_kinematics, read_bvh, rest_skeleton, write_bvh

    m = tree.read("motions", SEQ)
    rest, parents = rest_skeleton(load_body_model(None))
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        path = write_bvh(Path(d) / "m.bvh", m["smpl_poses"], m["smpl_trans"], m["smpl_scaling"], rest, parents)
        t1 = time.perf_counter()
        fk = bvh_forward_kinematics(read_bvh(path))
        t2 = time.perf_counter()
    print(f"BVH of {len(fk)} frames: write {t1 - t0:.2f} s, read + forward kinematics {t2 - t1:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
