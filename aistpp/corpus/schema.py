"""What a corpus shard holds: the datasets of one sequence group, their shapes, dtypes and frame axes.

One HDF5 group per sequence, named by the sequence::

    <seq>/keypoints2d            (V, N, 17, 3) float32  px of the full frame + confidence; NaN row = no detection
    <seq>/det_scores             (V, N)        float32  0 where no person
    <seq>/box_source             (V, N)        uint8    where the detector's person box came from (provenance;
                                                        codes: aistpp.detect.localize.BOX_SOURCES)
    <seq>/timestamps             (N,)          int64    microseconds, 60 fps
    <seq>/keypoints3d            (N, 17, 3)    float64  cm, world; robust per-frame triangulation
    <seq>/keypoints3d_optim      (N, 17, 3)    float64  cm, world; temporally optimized
    <seq>/views_used             (N, 17)       uint16   bit v set = view v was an inlier
    <seq>/reprojection_error     (N, 17)       float32  px, mean over inlier views
    <seq>/smpl/poses             (N, 72)       float32  axis-angle, global orient + 23 joints
    <seq>/smpl/trans             (N, 3)        float32  cm
    <seq>/smpl/scaling           (1,)          float32
    <seq>/smpl/loss              ()            float64
    <seq>/smpl/per_frame_error   (N,)          float32  cm
    <seq>/cameras/{K (V,3,3), dist (V,5), rvec (V,3), tvec (V,3)} float64, size (V,2) int64, names (V,) str
    music/<music_id>/features    (N, 35)       float32  60 fps music features

Every dataset is optional (an imported official tree may lack some files); the present ones must agree on N
within a family (2D, 3D, SMPL) and on V. Frame-indexed datasets are chunked along frames and compressed.
Sequence attributes (genre, situation, dancer, music, tempo, choreography, setting, fps, frames, quality flags)
are HDF5 attributes of the group and are copied into the manifest index.
"""

from __future__ import annotations

import numpy as np

from aistpp.errors import AistppError
from aistpp.shapes import format_spec, match_shape

SCHEMA_VERSION = 1
CHUNK_FRAMES = 256
MUSIC_DIM = 35

# name -> (shape spec, dtype, frame axis or None, family). "V" views, "N" frames.
FIELDS: dict[str, tuple[tuple, type, int | None, str]] = {
    "keypoints2d": (("V", "N", 17, 3), np.float32, 1, "2d"),
    "det_scores": (("V", "N"), np.float32, 1, "2d"),
    "box_source": (("V", "N"), np.uint8, 1, "2d"),
    "timestamps": (("N",), np.int64, 0, "2d"),
    "keypoints3d": (("N", 17, 3), np.float64, 0, "3d"),
    "keypoints3d_optim": (("N", 17, 3), np.float64, 0, "3d"),
    "views_used": (("N", 17), np.uint16, 0, "3d"),
    "reprojection_error": (("N", 17), np.float32, 0, "3d"),
    "smpl/poses": (("N", 72), np.float32, 0, "smpl"),
    "smpl/trans": (("N", 3), np.float32, 0, "smpl"),
    "smpl/scaling": ((1,), np.float32, None, "smpl"),
    "smpl/loss": ((), np.float64, None, "smpl"),
    "smpl/per_frame_error": (("N",), np.float32, 0, "smpl"),
    "cameras/K": (("V", 3, 3), np.float64, None, "cameras"),
    "cameras/dist": (("V", 5), np.float64, None, "cameras"),
    "cameras/rvec": (("V", 3), np.float64, None, "cameras"),
    "cameras/tvec": (("V", 3), np.float64, None, "cameras"),
    "cameras/size": (("V", 2), np.int64, None, "cameras"),
    "cameras/names": (("V",), str, None, "cameras"),
}

# Flat names used across the stages (``smpl_poses`` ...) -> the dataset path in the group.
ALIASES = {
    "smpl_poses": "smpl/poses",
    "smpl_trans": "smpl/trans",
    "smpl_scaling": "smpl/scaling",
    "smpl_loss": "smpl/loss",
    "per_frame_error": "smpl/per_frame_error",
    "smpl_per_frame_error": "smpl/per_frame_error",
}

ATTRIBUTES = ("sequence", "genre", "situation", "dancer", "music", "tempo", "choreography", "setting", "fps",
              "frames", "views", "quality")


def field_name(name: str) -> str:
    """Canonical dataset path of ``name`` (accepts the flat aliases, e.g. ``smpl_poses``)."""
    name = ALIASES.get(name, name)
    if name not in FIELDS:
        raise AistppError(f"unknown corpus field {name!r}; known: {', '.join(list(FIELDS) + list(ALIASES))}")
    return name


def validate_arrays(arrays: dict, where: str = "") -> tuple[dict, int, int | None]:
    """Check and cast a sequence's arrays against :data:`FIELDS`.

    Returns ``(arrays with canonical names and dtypes, frames N, views V or None)``. N is the frame count of the
    first present family in the order 2d, 3d, smpl. Raises :class:`AistppError` on an unknown name, a wrong rank
    or trailing size, or a frame/view count that disagrees within a family.
    """
    out: dict = {}
    family_frames: dict[str, int] = {}
    views = None
    for key, value in arrays.items():
        if value is None:
            continue
        name = field_name(key)
        spec, dtype, _, family = FIELDS[name]
        if dtype is str:
            arr = np.asarray([str(v) for v in np.asarray(value).ravel()], dtype=object)
        else:
            arr = np.asarray(value)
            if name == "smpl/loss":
                arr = np.asarray(float(arr.ravel()[0]) if arr.size else np.nan)
            arr = arr.astype(dtype, copy=False)
        dims = {k: v for k, v in (("N", family_frames.get(family)), ("V", views)) if v is not None}
        if not match_shape(arr.shape, spec, dims):
            raise AistppError(f"{where}{name} has shape {arr.shape}, expected {format_spec(spec)} "
                              f"(N={family_frames.get(family)}, V={views})")
        if "N" in dims:
            family_frames[family] = dims["N"]
        views = dims.get("V", views)
        out[name] = arr
    frames = next((family_frames[f] for f in ("2d", "3d", "smpl") if f in family_frames), 0)
    return out, frames, views


def chunk_shape(name: str, shape: tuple) -> tuple | None:
    """HDF5 chunk shape: :data:`CHUNK_FRAMES` frames along the frame axis, whole along the others."""
    axis = FIELDS[name][2]
    if axis is None or shape[axis] == 0:
        return None
    chunk = list(shape)
    chunk[axis] = min(CHUNK_FRAMES, shape[axis])
    return tuple(chunk)
