"""Skeleton animations written as mp4 (H.264 through :func:`aistpp.video.write_video`) or gif (Pillow)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from aistpp.errors import AistppError
from aistpp.io.atomic import atomic_path
from aistpp.viz.config import AnimationConfig
from aistpp.viz.render import canvas, draw_floor, hstack_panels, look_at_camera, render_skeleton, skeleton_for

log = logging.getLogger(__name__)


def write_animation(path, frames: Iterable[np.ndarray], fps: float) -> Path:
    """Write BGR uint8 frames (H, W, 3) to ``path`` (.mp4 as H.264 that browsers play, .gif via Pillow),
    atomically. All frames must share one size. Returns the path; raises :class:`AistppError` when nothing was
    written."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".mp4", ".gif"):
        raise AistppError("animation files must end in .mp4 or .gif", path)
    if suffix == ".mp4":
        from aistpp.video import write_video

        n = write_video(path, (fr[..., ::-1] for fr in frames), fps=fps, preset="veryfast", crf=20)
    else:
        with atomic_path(path, suffix=suffix) as tmp:
            try:
                from PIL import Image
            except ImportError:
                raise AistppError("gif output needs Pillow: pip install 'aistpp[viz]' (or write .mp4)", path) from None

            images = [Image.fromarray(np.ascontiguousarray(fr[..., ::-1])) for fr in frames]
            n = len(images)
            if n == 0:
                raise AistppError("no frames to write", path)
            images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                           duration=max(20, int(round(1000 / fps))), loop=0)
    log.info("wrote %d frames to %s", n, path)
    return path


def panel_framing(motions: Sequence[np.ndarray], share: float = 1.5) -> tuple[list, float, float]:
    """How the panels of :func:`skeleton_animation` frame their motions (N_i, J_i, 3) cm: (centres (3,) per panel,
    one radius cm, one floor height cm).

    All panels share the scale and the floor (the lowest joint of all motions). When the motions dance on the same
    spot (their joint bounding box together is at most ``share`` times the largest alone) they share one camera, so
    the same pose at the same place (e.g. a generated dance's seed frames) looks the same in every panel; otherwise
    each panel is centred on its own motion (x, z) at a shared height."""
    boxes = []
    for m in motions:
        pts = np.asarray(m, np.float64).reshape(-1, 3)
        pts = pts[np.isfinite(pts).all(axis=1)]
        if not len(pts):
            raise AistppError("a motion has no finite joint")
        boxes.append((np.percentile(pts, 1, axis=0), np.percentile(pts, 99, axis=0), float(pts[:, 1].min())))
    radius = max(0.5 * float(np.linalg.norm(hi - lo)) for lo, hi, _ in boxes)
    lo = np.min([b[0] for b in boxes], axis=0)
    hi = np.max([b[1] for b in boxes], axis=0)
    floor = min(b[2] for b in boxes)
    together = 0.5 * float(np.linalg.norm(hi - lo))
    if together <= share * radius:
        return [0.5 * (lo + hi)] * len(motions), max(radius, together), floor
    centers = []
    for blo, bhi, _ in boxes:
        c = 0.5 * (blo + bhi)
        c[1] = 0.5 * (lo[1] + hi[1])
        centers.append(c)
    return centers, radius, floor


def skeleton_animation(path, motions: Sequence[np.ndarray], titles: Sequence[str] | None = None, fps: float = 60.0,
                       config: AnimationConfig = AnimationConfig(), progress: bool = False) -> dict:
    """Animate one or more skeleton sequences side by side.

    motions: list of (N_i, J_i, 3) cm arrays (COCO-17 keypoints3d or SMPL-24 joints; NaN joints are skipped).
    Each panel has a fixed virtual camera; all panels share one scale (the largest extent) and one floor, and one
    camera when the motions dance on the same spot (:func:`panel_framing`), so a real and a generated dance compare
    at the same size and identical frames look identical. Titles shrink or lose their middle to fit a panel.
    Shorter sequences hold their last frame.
    Returns {path, frames, size (w, h), fps}.
    """
    if not motions:
        raise AistppError("nothing to animate")
    motions = [np.asarray(m, np.float64) for m in motions]
    for m in motions:
        if m.ndim != 3 or m.shape[2] != 3 or not len(m):
            raise AistppError(f"a motion must be (N, J, 3), got {m.shape}")
    titles = list(titles or [""] * len(motions))
    centers, radius, floor = panel_framing(motions)
    skels = [skeleton_for(m.shape[1]) for m in motions]
    cams = []
    for c in centers:
        cams.append(look_at_camera(np.zeros((0, 3)), size=config.size,
                                   azimuth_deg=config.azimuth_deg, elevation_deg=config.elevation_deg,
                                   center=c, radius=radius))
    # The camera is fixed, so the floor grid (one height for every panel: the lowest joint of all) is drawn once.
    backgrounds = []
    for cam, c in zip(cams, centers):
        bg = canvas(cam.size)
        if config.floor:
            draw_floor(bg, cam, floor, np.round(c / 50) * 50, half_extent=max(300.0, 2 * radius))
        backgrounds.append(bg)
    n = max(len(m) for m in motions)
    idx = range(0, n, max(1, int(config.stride)))

    def frames():
        it = idx
        if progress:
            from aistpp.progress import tqdm

            it = tqdm(idx, desc=Path(path).name, unit="frame")
        for i in it:
            panels = [render_skeleton(m[min(i, len(m) - 1)], cam, sk, image=bg.copy(),
                                      title=f"{t} {min(i, len(m) - 1)}".strip())
                      for m, cam, sk, bg, t in zip(motions, cams, skels, backgrounds, titles)]
            yield hstack_panels(panels)

    out_fps = fps / max(1, int(config.stride))
    write_animation(path, frames(), out_fps)
    return {"path": str(path), "frames": len(idx), "size": (config.size[0] * len(motions), config.size[1]),
            "fps": out_fps}
