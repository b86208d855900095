"""Everything ``aistpp viz`` draws for one sequence, written into one folder (each file atomically; files that
already exist are kept unless ``overwrite``, so an interrupted run resumes).

Files, for a sequence NAME (what the data allows; a generated motion has no cameras, so no overlay / QA of 2D):

    NAME_skeleton.mp4|gif         3D skeleton animation (side by side with ``compare`` when given)
    NAME_overlay.png              3x3 mosaic of the 9 views at ``frame``: projected 3D skeleton + 2D detections
    NAME_overlay.mp4              the same over ``frames`` (only with ``overlay_video``)
    NAME_qa_reprojection.png      reprojection error per camera over time
    NAME_qa_views.png             views used per joint over time
    NAME_qa_bones.png             bone-length stability
    NAME_qa_fit.png               SMPL fit error per frame (cm) and the stored smpl_loss
    NAME_qa_motion.png            joint speed, ankle heights, foot skating (also for a generated motion)
    NAME_qa.json                  the numbers behind the plots (medians per view, bone cv, fit error)
    NAME_mesh.png                 the SMPL mesh (stand-in or real model) at ``frame``, two views
    NAME_mesh_views.png           the same mesh over the 9 camera views (videos when given)
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

import numpy as np

from aistpp.errors import AistppError
from aistpp.io.atomic import atomic_write_text
from aistpp.naming import view_name
from aistpp.viz.config import PRODUCTS, VizConfig
from aistpp.viz.sources import SequenceData, smpl_forward

log = logging.getLogger(__name__)


def _skeleton_points(data: SequenceData, joints: str, body_model) -> np.ndarray:
    if joints == "keypoints3d":
        if data.keypoints3d is None:
            raise AistppError(f"{data.name} has no keypoints3d to draw (try --joints smpl)")
        return data.keypoints3d
    if data.smpl is None:
        raise AistppError(f"{data.name} has no SMPL motion to draw (try --joints keypoints3d)")
    if body_model is None:
        raise AistppError("drawing SMPL joints needs a body model")
    return smpl_forward(body_model, data.smpl)["joints"]


@contextlib.contextmanager
def _reported(written: dict, product: str):
    """A product that fails on a bad input file is reported in ``written["failed"]`` and the others are drawn."""
    try:
        yield
    except AistppError as err:
        written["failed"][product] = str(err)
        written.pop(product, None)
        log.warning("%s not drawn: %s", product, err)


def render_sequence(data: SequenceData, out_dir, compare: SequenceData | None = None, body_model=None,
                    config: VizConfig = VizConfig(), videos_dir=None, progress: bool = False) -> dict:
    """Draw what ``config.products`` asks for; returns {product: [paths written or kept]} and ``skipped`` reasons.

    ``body_model``: a smplx-style SMPL model (needed for SMPL joints, mesh and fit error); None skips those.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    unknown = set(config.products) - set(PRODUCTS)
    if unknown:
        raise AistppError(f"unknown products {sorted(unknown)}; expected some of {PRODUCTS}")
    if config.fmt not in ("mp4", "gif"):
        raise AistppError(f"animation format must be mp4 or gif, got {config.fmt!r}")
    written: dict = {"skipped": {}, "failed": {}}
    n = data.n_frames
    if n == 0:
        raise AistppError(f"{data.name}: nothing to draw")
    start, stop, step = config.frames
    indices = list(range(start or 0, n if stop is None else min(stop, n), step or 1))
    if not indices:
        raise AistppError(f"no frames selected in 0..{n - 1}")
    still = n // 2 if config.frame is None else config.frame
    if not 0 <= still < n:
        raise AistppError(f"--frame {still} is outside 0..{n - 1}")

    def target(suffix):
        p = out / f"{data.name}_{suffix}"
        return p, p.exists() and not config.overwrite

    if "skeleton" in config.products:
        with _reported(written, "skeleton"):
            seqs = [data] + ([compare] if compare is not None else [])
            kinds = [config.joints] * len(seqs)
            if config.joints == "auto":  # one kind for all when possible, else what each sequence has
                if all(s.keypoints3d is not None for s in seqs):
                    kinds = ["keypoints3d"] * len(seqs)
                elif all(s.smpl is not None for s in seqs):
                    kinds = ["smpl"] * len(seqs)
                else:
                    kinds = ["keypoints3d" if s.keypoints3d is not None else "smpl" for s in seqs]
            path, keep = target(f"skeleton.{config.fmt}")
            lacking = [s.name for s in seqs if s.keypoints3d is None and s.smpl is None]
            if lacking and config.joints == "auto":
                written["skipped"]["skeleton"] = f"no keypoints3d or SMPL motion for {', '.join(lacking)}"
            elif not keep:
                from aistpp.viz.animate import AnimationConfig, skeleton_animation

                motions = [_skeleton_points(s, k, body_model) for s, k in zip(seqs, kinds)]
                motions = [m[indices[0]:indices[-1] + 1] for m in motions]
                skeleton_animation(path, motions, [s.name for s in seqs], fps=data.fps,
                                   config=AnimationConfig(size=config.size, stride=step or 1), progress=progress)
            if "skeleton" not in written["skipped"]:
                written["skeleton"] = [str(path)]

    has_2d_geometry = data.cameras is not None and (data.keypoints3d is not None or data.keypoints2d is not None)
    if "overlay" in config.products:
        with _reported(written, "overlay"):
            if not has_2d_geometry:
                written["skipped"]["overlay"] = "no cameras or keypoints (a generated motion has no views)"
            else:
                from aistpp.viz.overlay import overlay_images, write_overlay_png, write_overlay_video

                paths = []
                path, keep = target("overlay.png")
                if not keep:
                    _, img = next(overlay_images(data.keypoints3d, data.cameras, [still], data.keypoints2d, videos_dir,
                                                 data.name if videos_dir else None, config.tile, config.min_confidence,
                                                 crop=config.crop))
                    write_overlay_png(path, img)
                paths.append(str(path))
                if config.overlay_video:
                    path, keep = target(f"overlay.{config.fmt}")
                    if not keep:
                        write_overlay_video(path, data.keypoints3d, data.cameras, indices, data.keypoints2d, videos_dir,
                                            data.name if videos_dir else None, config.tile, data.fps / (step or 1),
                                            crop=config.crop)
                    paths.append(str(path))
                written["overlay"] = paths

    if "qa" in config.products:
        with _reported(written, "qa"):
            written["qa"] = _qa(data, target, body_model, config, written["skipped"])

    if "mesh" in config.products:
        with _reported(written, "mesh"):
            if data.smpl is None or body_model is None:
                written["skipped"]["mesh"] = "no SMPL motion" if data.smpl is None else "no body model"
            else:
                path, keep = target("mesh.png")
                if not keep:
                    draw_mesh_png(path, data.smpl, body_model, still, size=config.size)
                written["mesh"] = [str(path)]
                if data.cameras is not None:
                    path, keep = target("mesh_views.png")
                    if not keep:
                        draw_mesh_views_png(path, data, body_model, still, config, videos_dir)
                    written["mesh"].append(str(path))
    return written


def draw_mesh_png(path, smpl: dict, body_model, frame: int, size=VizConfig.size) -> Path:
    """The posed mesh of ``frame`` from the front and from the side, as one PNG (two panels)."""
    from aistpp.viz.overlay import write_overlay_png
    from aistpp.viz.render import hstack_panels, look_at_camera, render_mesh

    res = smpl_forward(body_model, smpl, frames=slice(frame, frame + 1), vertices=True)
    verts = res["vertices"][0]
    faces = np.asarray(body_model.faces, np.int64)
    panels = [render_mesh(verts, faces, look_at_camera(verts, size=size, azimuth_deg=az, elevation_deg=10))
              for az in (0.0, 90.0)]
    return write_overlay_png(path, hstack_panels(panels)[..., ::-1])


def draw_mesh_views_png(path, data: SequenceData, body_model, frame: int, config: VizConfig = VizConfig(),
                        videos_dir=None) -> Path:
    """The posed mesh of ``frame`` over the 9 views (videos when given), as one 3x3 mosaic PNG."""
    from aistpp.viz.overlay import _video_frames, crop_boxes, mesh_tiles, mosaic, write_overlay_png

    verts = smpl_forward(body_model, data.smpl, frames=slice(frame, frame + 1), vertices=True)["vertices"][0]
    boxes = crop_boxes(verts[None], data.cameras, config.tile, margin=0.15) if config.crop else None
    frames = None
    if videos_dir is not None:
        from aistpp.naming import VIEWS

        views = tuple(VIEWS[:len(data.cameras)])
        got = next(_video_frames(videos_dir, data.name, data.n_frames, views, [frame]), None)
        frames = None if got is None else [got[1][v] for v in views]
    tiles = mesh_tiles(verts, np.asarray(body_model.faces, np.int64), data.cameras, frames, config.tile, boxes,
                       label=f"frame {frame}")
    return write_overlay_png(path, mosaic(tiles))


def _qa(data: SequenceData, target, body_model, config: VizConfig, skipped: dict) -> list[str]:
    from aistpp.viz import qa

    paths, summary = [], {"sequence": data.name, "frames": data.n_frames}
    k3, k2, cams = data.keypoints3d, data.keypoints2d, data.cameras
    if k3 is not None and k2 is not None and cams is not None:
        err = qa.reprojection_error_per_view(k3, k2, cams, config.min_confidence)
        with np.errstate(all="ignore"):
            summary["reprojection_median_px"] = {c: _num(np.nanmedian(e)) if np.isfinite(e).any() else None
                                                 for c, e in zip(cams.names, err)}
        path, keep = target("qa_reprojection.png")
        if not keep:
            qa.plot_reprojection_error(path, err, cams.names, data.fps, f"{data.name}: reprojection error")
        paths.append(str(path))
    else:
        skipped["qa_reprojection"] = "needs keypoints3d, keypoints2d and cameras"
    views_used = data.views_used
    if views_used is None and k2 is not None:
        views_used = qa.views_used_from_keypoints2d(k2, config.min_confidence)
        summary["views_used_from"] = f"keypoints2d confidence >= {config.min_confidence}"
    if views_used is not None:
        n_views = len(cams) if cams is not None else (k2.shape[0] if k2 is not None else 9)
        frac = qa.views_per_joint(views_used, n_views)
        summary["mean_views_per_joint"] = _num(frac.sum(axis=0).mean())
        path, keep = target("qa_views.png")
        if not keep:
            names = cams.names if cams is not None else [view_name(v) for v in range(n_views)]
            qa.plot_views_used(path, frac, names, data.fps, f"{data.name}: views used")
        paths.append(str(path))
    else:
        skipped["qa_views"] = "needs views_used or keypoints2d"
    if k3 is not None:
        lengths = qa.bone_lengths(k3)
        stab = qa.bone_stability(lengths)
        summary["bone_cv"] = [_num(x) for x in stab["cv"]]
        summary["bone_median_cm"] = [_num(x) for x in stab["median_cm"]]
        path, keep = target("qa_bones.png")
        if not keep:
            qa.plot_bone_lengths(path, lengths, data.fps, title=f"{data.name}: bone-length stability")
        paths.append(str(path))
    else:
        skipped["qa_bones"] = "needs keypoints3d"
    if data.smpl is not None:
        per_frame = data.smpl.get("per_frame_error")
        if per_frame is None and k3 is not None and body_model is not None:
            per_frame = qa.fit_error_per_frame(smpl_keypoints(data.smpl, body_model), k3)
        if per_frame is not None:
            summary["fit_error_median_cm"] = _num(np.nanmedian(per_frame))
            summary["smpl_loss"] = _num(data.smpl.get("smpl_loss", np.nan))
            path, keep = target("qa_fit.png")
            if not keep:
                qa.plot_fit_error(path, np.asarray(per_frame), data.fps, data.smpl.get("smpl_loss"),
                                  f"{data.name}: SMPL fit error per frame")
            paths.append(str(path))
        else:
            skipped["qa_fit"] = "needs keypoints3d and a body model (or a stored per-frame error)"
    else:
        skipped["qa_fit"] = "no SMPL motion"
    joints = names = None
    if k3 is not None:
        from aistpp.skeleton import COCO17

        joints, names = k3, COCO17
    elif data.smpl is not None and body_model is not None:
        from aistpp.viz.export import SMPL_JOINT_NAMES

        joints, names = smpl_forward(body_model, data.smpl)["joints"], SMPL_JOINT_NAMES
    if joints is not None:
        stats = qa.motion_statistics(joints, names, data.fps)
        summary["mean_joint_speed_cm_s"] = _num(np.nanmean(stats["speed"]))
        summary["foot_skating_median_cm_s"] = _num(stats["skating_median_cm_s"])
        summary["floor_work_fraction"] = _num(stats["floor_work_fraction"])
        path, keep = target("qa_motion.png")
        if not keep:
            qa.plot_motion(path, stats, data.fps, f"{data.name}: motion")
        paths.append(str(path))
    else:
        skipped["qa_motion"] = "needs keypoints3d, or SMPL and a body model"
    jpath = target("qa.json")[0]
    atomic_write_text(jpath, json.dumps(summary, indent=1))
    paths.append(str(jpath))
    return paths


def smpl_keypoints(smpl: dict, body_model) -> np.ndarray:
    """COCO-17 keypoints (N, 17, 3) cm of a motion (the SMPL <-> COCO map of :mod:`aistpp.smpl`)."""
    from aistpp.smpl import keypoints_from_motion

    return keypoints_from_motion(body_model, smpl["smpl_poses"], smpl["smpl_trans"], smpl["smpl_scaling"])


def _num(x):
    x = float(x)
    return x if np.isfinite(x) else None
