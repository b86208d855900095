"""Per-sequence quality checks as numbers and PNG plots (matplotlib, Agg backend; no display needed).

Metrics (all pure functions over arrays):

- :func:`reprojection_error_per_view` (V, N) px: median over joints of |project(keypoints3d) - keypoints2d| in each
  view, over 2D points with confidence >= ``min_confidence`` (0.15, the official triangulation threshold).
- :func:`views_per_joint` (V, N): fraction of the 17 joints for which view v was used (from ``views_used`` bits, or
  for the official release from the 2D confidences, which is the rule it was triangulated with).
- :func:`bone_lengths` (N, B) cm over :data:`aistpp.skeleton.BONES`; a well-reconstructed sequence keeps each bone
  nearly constant (coefficient of variation of a few %).
- :func:`fit_error_per_frame` (N,) cm: mean distance between the SMPL-derived COCO keypoints and keypoints3d.
- :func:`motion_statistics`: for any skeleton sequence (also a generated dance with no views): mean joint speed
  (cm/s), ankle heights above the floor (5th percentile of the lowest joint, cm) and foot skating (horizontal ankle
  speed while the ankle is in floor contact: low, the lowest joint, not moving up or down; floor work excluded).

The reprojection plot draws a rolling median over ``smooth`` frames (0.25 s at 60 fps) over the faint raw curve.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from aistpp.errors import AistppError
from aistpp.io.atomic import atomic_path
from aistpp.io.annotations import OFFICIAL_MIN_CONFIDENCE
from aistpp.skeleton import BONES, COCO17

log = logging.getLogger(__name__)

MIN_CONFIDENCE = OFFICIAL_MIN_CONFIDENCE


def reprojection_error_per_view(keypoints3d: np.ndarray, keypoints2d: np.ndarray, cameras,
                                min_confidence: float = MIN_CONFIDENCE) -> np.ndarray:
    """(V, N) px: per view and frame, the median over joints of the distance between the projected keypoints3d
    (N, 17, 3) cm and the 2D keypoints (V, N, 17, 3) with confidence >= ``min_confidence``; NaN where none."""
    k3 = np.asarray(keypoints3d, np.float64)
    k2 = np.asarray(keypoints2d, np.float64)
    if k2.ndim != 4 or k2.shape[1:3] != k3.shape[:2] or k2.shape[0] != len(cameras):
        raise AistppError(f"keypoints2d {k2.shape} does not match keypoints3d {k3.shape} and {len(cameras)} views")
    proj = cameras.project(k3)  # (V, N, 17, 2)
    err = np.linalg.norm(proj - k2[..., :2], axis=-1)
    err[~(k2[..., 2] >= min_confidence)] = np.nan
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmedian(err, axis=-1)


def views_used_from_keypoints2d(keypoints2d: np.ndarray, min_confidence: float = MIN_CONFIDENCE) -> np.ndarray:
    """(N, 17) uint16 bit masks: bit v set where view v has a finite 2D point with confidence >= threshold."""
    k2 = np.asarray(keypoints2d)
    ok = (k2[..., 2] >= min_confidence) & np.isfinite(k2[..., :2]).all(-1)  # (V, N, 17)
    weights = (1 << np.arange(k2.shape[0], dtype=np.uint32))[:, None, None]
    return (ok * weights).sum(axis=0).astype(np.uint16)


def views_per_joint(views_used: np.ndarray, n_views: int) -> np.ndarray:
    """(V, N): fraction of the joints for which each view was used, from bit masks (N, 17)."""
    vu = np.asarray(views_used).astype(np.uint32)
    bits = (vu[None] >> np.arange(n_views, dtype=np.uint32)[:, None, None]) & 1  # (V, N, 17)
    return bits.mean(axis=-1)


def bone_lengths(keypoints3d: np.ndarray, bones=BONES) -> np.ndarray:
    """(N, B) cm: length of each bone (pair of COCO-17 indices) per frame; NaN where a joint is missing."""
    k = np.asarray(keypoints3d, np.float64)
    a = np.array([b[0] for b in bones])
    b = np.array([b[1] for b in bones])
    return np.linalg.norm(k[:, a] - k[:, b], axis=-1)


def bone_stability(lengths: np.ndarray) -> dict:
    """Per bone: median length (cm) and coefficient of variation (std / median) over frames."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(lengths, axis=0)
        cv = np.nanstd(lengths, axis=0) / med
    return {"median_cm": med, "cv": cv}


def fit_error_per_frame(smpl_keypoints: np.ndarray, keypoints3d: np.ndarray) -> np.ndarray:
    """(N,) cm: mean over joints of |smpl_keypoints - keypoints3d|, both (N, 17, 3) cm; NaN joints skipped."""
    d = np.linalg.norm(np.asarray(smpl_keypoints, np.float64) - np.asarray(keypoints3d, np.float64), axis=-1)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(d, axis=-1)


FOOT_WORDS = ("ankle", "foot", "heel", "toe", "knee")  # joints that touch the floor in upright dancing


def motion_statistics(joints: np.ndarray, names, fps: float = 60.0, contact_cm: float = 5.0,
                      contact_speed_cm_s: float = 30.0, floor_work_cm: float = 25.0) -> dict:
    """Motion sanity numbers of joints (N, J, 3) cm, +y up, with joint ``names`` (COCO-17 or SMPL-24).

    The floor is the 5th percentile of the lowest joint's height per frame. An ankle is in floor contact when it is
    within ``contact_cm`` of the floor and of the frame's lowest joint, and moves up or down slower than
    ``contact_speed_cm_s``; frames of floor work (a joint other than the ankles, feet and knees, e.g. a hand, hip
    or the head, within ``floor_work_cm`` of the floor: break-dance power moves, kneeling on the hands) have no
    contact, since feet sweeping along the floor there are not skating.

    Returns {speed (N,) cm/s mean over joints (central differences), ankle_height (N, 2) cm [left, right] above
    the floor, floor_work (N,) bool, floor_work_fraction float, skating (N, 2) cm/s horizontal ankle speed while in
    contact (NaN elsewhere), skating_median_cm_s float}.
    """
    import warnings

    j = np.asarray(joints, np.float64)
    names = list(names)
    if j.ndim != 3 or j.shape[1] != len(names) or j.shape[2] != 3:
        raise AistppError(f"joints must be (N, {len(names)}, 3), got {j.shape}")
    vel = np.gradient(j, axis=0) * fps if len(j) > 1 else np.zeros_like(j)
    ankles = [names.index(n) for n in ("left_ankle", "right_ankle")]
    upper = [i for i, n in enumerate(names) if not any(w in n for w in FOOT_WORDS)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        speed = np.nanmean(np.linalg.norm(vel, axis=-1), axis=1)
        lowest = np.nanmin(j[..., 1], axis=1)                               # (N,)
        floor = np.nanpercentile(lowest, 5)                                 # robust to a few low outliers
        height = j[:, ankles, 1] - floor
        floor_work = np.nanmin(j[:, upper, 1], axis=1) - floor < floor_work_cm
        contact = ((height <= contact_cm) & (j[:, ankles, 1] - lowest[:, None] <= contact_cm)
                   & (np.abs(vel[:, ankles, 1]) <= contact_speed_cm_s) & ~floor_work[:, None])
        horiz = np.linalg.norm(vel[:, ankles][..., [0, 2]], axis=-1)
        skating = np.where(contact, horiz, np.nan)
        med = float(np.nanmedian(skating)) if np.isfinite(skating).any() else float("nan")
    return {"speed": speed, "ankle_height": height, "floor_work": floor_work,
            "floor_work_fraction": float(floor_work.mean()) if len(j) else 0.0, "skating": skating,
            "skating_median_cm_s": med}


def rolling_median(x: np.ndarray, window: int) -> np.ndarray:
    """NaN-aware centred rolling median of (..., N) along the last axis (edges use a shrunken window)."""
    import warnings

    x = np.asarray(x, np.float64)
    if window <= 1 or x.shape[-1] < 2:
        return x.copy()
    half = window // 2
    pad = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(half, half)], constant_values=np.nan)
    win = np.lib.stride_tricks.sliding_window_view(pad, 2 * half + 1, axis=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(win, axis=-1)


def pyplot(what: str = "QA plots", hint: str = ""):
    """matplotlib.pyplot on the Agg backend, or a one-line error naming the extra (``what`` needs matplotlib)."""
    try:
        import matplotlib
    except ImportError:
        raise AistppError(f"{what} need matplotlib: pip install 'aistpp[viz]'{hint}") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path) -> Path:
    """Write ``fig`` to ``path`` as a 100-dpi PNG atomically and close it."""
    plt = pyplot()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(path)


FIGSIZE = (10, 5)  # inches at 100 dpi -> 1000 x 500 px


def plot_reprojection_error(path, error: np.ndarray, view_names, fps: float = 60.0, title: str = "",
                            smooth: int = 15) -> Path:
    """Line plot of (V, N) px error over time (s), one line per view (rolling median over ``smooth`` frames on
    the faint raw curve), with the median per view in the legend."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    t = np.arange(error.shape[1]) / fps
    smoothed = rolling_median(error, smooth)
    for v, name in enumerate(view_names):
        med = np.nanmedian(error[v]) if np.isfinite(error[v]).any() else np.nan
        line, = ax.plot(t, smoothed[v], lw=1.2, label=f"{name} (median {med:.1f} px)")
        ax.plot(t, error[v], lw=0.5, alpha=0.2, color=line.get_color())
    ax.set(xlabel="time (s)", ylabel="reprojection error (px, median over joints)",
           title=title or "reprojection error per camera")
    ax.set_yscale("symlog", linthresh=10)
    top = float(np.nanmax(error)) if np.isfinite(error).any() else 10.0
    ticks = readable_ticks(top)
    ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
    ax.yaxis.set_minor_locator(plt.NullLocator())
    ax.set_ylim(0, max(ticks[-1], top) * 1.05)
    ax.legend(fontsize=7, ncol=3)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def readable_ticks(top: float, most: int = 10) -> list[float]:
    """Labelled ticks for a 0-based symlog / log axis up to ``top``: 0 and the 1-2-3-5 steps of each decade (fewer
    steps per decade when that gives more than ``most`` ticks), always up to the first step >= ``top``."""
    top = max(float(top), 1.0)
    for steps in ((1, 2, 3, 5), (1, 2, 5), (1, 3), (1,)):
        ticks = [0.0]
        k = 0
        while ticks[-1] < top:
            ticks += [s * 10.0 ** k for s in steps]
            k += 1
        ticks = [t for i, t in enumerate(ticks) if i == 0 or ticks[i - 1] < top]
        if len(ticks) <= most:
            return ticks
    return ticks


def plot_views_used(path, fractions: np.ndarray, view_names, fps: float = 60.0, title: str = "") -> Path:
    """Heat map of (V, N) fraction of joints each view contributed, plus the mean number of views per joint."""
    plt = pyplot()
    fig, (ax0, ax1) = plt.subplots(2, 1, figsize=FIGSIZE, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    n = fractions.shape[1]
    im = ax0.imshow(fractions, aspect="auto", interpolation="nearest", cmap="viridis", vmin=0, vmax=1,
                    extent=(0, n / fps, len(view_names) - 0.5, -0.5))
    ax0.set_yticks(range(len(view_names)), view_names)
    ax0.set_title(title or "views used (fraction of joints per view)")
    fig.colorbar(im, ax=ax0, fraction=0.03)
    ax1.plot(np.arange(n) / fps, fractions.sum(axis=0), lw=1, color="k")
    ax1.set(xlabel="time (s)", ylabel="views / joint")
    ax1.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_bone_lengths(path, lengths: np.ndarray, fps: float = 60.0, bones=BONES, title: str = "",
                      smooth: int = 1) -> Path:
    """Each bone's length divided by its median over time, with its coefficient of variation in the legend."""
    plt = pyplot()
    stab = bone_stability(lengths)
    fig, ax = plt.subplots(figsize=FIGSIZE)
    t = np.arange(len(lengths)) / fps
    for i, (a, b) in enumerate(bones):
        name = f"{COCO17[a]}-{COCO17[b]}".replace("left_", "L").replace("right_", "R")
        ax.plot(t, rolling_median(lengths[:, i], smooth) / stab["median_cm"][i], lw=0.8, color=plt.cm.tab20(i % 20),
                label=f"{name} {stab['median_cm'][i]:.0f} cm, cv {100 * stab['cv'][i]:.1f}%")
    ax.set(xlabel="time (s)", ylabel="length / median", title=title or "bone-length stability")
    ax.legend(fontsize=6, ncol=3)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_fit_error(path, per_frame: np.ndarray, fps: float = 60.0, total_loss=None, title: str = "") -> Path:
    """SMPL fit error per frame (cm) over time; the fit's total loss in the title when known."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    t = np.arange(len(per_frame)) / fps
    ax.plot(t, per_frame, lw=1, color="C3")
    extra = "" if total_loss is None or not np.isfinite(total_loss) else f" (smpl_loss {total_loss:.4g})"
    ax.set(xlabel="time (s)", ylabel="mean joint error (cm)", title=(title or "SMPL fit error per frame") + extra)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_motion(path, stats: dict, fps: float = 60.0, title: str = "") -> Path:
    """Joint speed, ankle heights and foot skating over time (see :func:`motion_statistics`)."""
    plt = pyplot()
    fig, (ax0, ax1, ax2) = plt.subplots(3, 1, figsize=FIGSIZE, sharex=True)
    t = np.arange(len(stats["speed"])) / fps
    ax0.plot(t, stats["speed"], lw=1, color="k")
    ax0.set(ylabel="joint speed\n(cm/s)", title=title or "motion")
    ax1.plot(t, stats["ankle_height"][:, 0], lw=1, color="C1", label="left")
    ax1.plot(t, stats["ankle_height"][:, 1], lw=1, color="C0", label="right")
    ax1.set(ylabel="ankle height\n(cm)")
    ax1.legend(fontsize=7, loc="upper right")
    ax2.plot(t, stats["skating"][:, 0], ".", ms=2, color="C1")
    ax2.plot(t, stats["skating"][:, 1], ".", ms=2, color="C0")
    work = stats.get("floor_work")
    if work is not None and np.any(work):  # shade floor work, where contact is not counted
        for ax in (ax0, ax1, ax2):
            ax.fill_between(t, 0, 1, where=work, color="0.85", transform=ax.get_xaxis_transform(), lw=0)
    med = stats["skating_median_cm_s"]
    share = f"; floor work (grey) {100 * stats.get('floor_work_fraction', 0.0):.0f}% of frames, not counted"
    ax2.set(xlabel="time (s)", ylabel="skating\n(cm/s)",
            title=(f"horizontal ankle speed in floor contact, median {med:.1f} cm/s" if np.isfinite(med)
                   else "no ankle in floor contact outside floor work") + share)
    ax2.title.set_fontsize(8)
    for ax in (ax0, ax1, ax2):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)
