"""The AIST++ motion-generation metrics: FID_k, FID_g, Dist_k, Dist_g, BeatAlign, on SMPL joints.

Own vectorized implementations of the published code, with every known variant behind an explicit switch
(:class:`EvalConfig`), recorded with every result; :meth:`EvalConfig.preset` ``"bailando"`` (default) reproduces
Bailando's evaluation code, ``"fact"`` mint's published metric scripts (docs/models.md: what each reproduces and
what no published code fixes).

* kinetic features (72 = 24 joints x [horizontal kinetic energy, vertical kinetic energy, energy expenditure];
  fairmotion / aistplusplus_api ``features/kinetic.py``): mean over frames 1..N-1 of the squared norm of the
  velocity averaged over a +-2 frame window (60 fps, y up), and of the norm of the window-averaged acceleration.
  ``accel_bug=True`` keeps the operator-precedence bug ``v1 = p[k] - p[k-1] / frame_time`` of fairmotion's
  ``calc_average_acceleration``, which aistplusplus_api (hence mint's scripts) and Bailando's
  ``utils/features/utils.py`` still contain (no commit of theirs fixed it); False uses
  ``(p[k] - p[k-1]) / frame_time``. With the bug the energy features depend on where the body stands (``p[k]``
  enters unscaled), so they are NOT translation-invariant: recentring changes them (several-fold on AIST++
  motions).
* geometric features (32 boolean relations averaged over frames 1..N-1; fairmotion ``features/manual.py``, its
  velocities use 1/120 s per frame as the original does). ``geometric="fixed"``: the body-size constants
  (humerus length, shoulder and hip width) measured between the right SMPL template joints (aistplusplus_api
  ``manual.py`` after its fix, Bailando ``manual_new.py``; what mint's scripts and Bailando use); ``"buggy"``: the
  constants measured between shifted joints (head-lshoulder, head-relbow, lhip-rknee) as in Bailando's old
  ``manual.py``. It is not the pre-fix aistplusplus_api extractor (which also named the joints in another order),
  and the extractor behind the FACT paper's FID_g was never published: no switch reproduces it.
* FID: both feature sets normalized by the reference set's mean and std (+1e-10), then the Frechet distance of
  Gaussians fitted to them (mint ``calculate_frechet_feature_distance``; Bailando ``quantized_metrics``).
* Dist: mean pairwise Euclidean distance of the normalized features of a set (Bailando ``calculate_avg_distance``).
* BeatAlign ``"fact"`` (mint ``tools/calculate_beat_scores.py``): motion beats = local minima (order 10) of the
  summed joint speed, score = mean over motion beats of exp(-d^2 / (2 sigma^2)), d = frames to the nearest music
  beat, sigma 3. ``"bailando"`` (Bailando ``utils/beat_align_score.py``): mean joint speed (N-1 values),
  Gaussian smoothing (sigma 5), local minima, score averaged over music beats, sigma 3.
* joints: SMPL joints 0-23 of the body posed with ``smpl_poses`` and translated by ``smpl_trans / smpl_scaling``
  (SMPL units, about metres), as mint and Bailando compute them; ``recentre=True`` subtracts the first kept
  frame's root from every frame (Bailando's "zero start"), which changes the kinetic energy features when
  ``accel_bug`` is on.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aistpp.errors import AistppError

log = logging.getLogger(__name__)

FPS = 60
N_JOINTS = 24
SMPL_JOINT_NAMES = ("root", "lhip", "rhip", "belly", "lknee", "rknee", "spine", "lankle", "rankle", "chest",
                    "ltoes", "rtoes", "neck", "linshoulder", "rinshoulder", "head", "lshoulder", "rshoulder",
                    "lelbow", "relbow", "lwrist", "rwrist", "lhand", "rhand")
_J = {n: i for i, n in enumerate(SMPL_JOINT_NAMES)}

# SMPL (male, betas 0) template joint positions used for the body-size constants of the geometric features.
_TEMPLATE = {
    "lhip": (5.64076714e-02, -3.23069185e-01, 1.09197125e-02),
    "rhip": (-6.24834076e-02, -3.31302464e-01, 1.50412619e-02),
    "rknee": (-1.0574003e-01, -7.149903e-01, 1.019822e-02),
    "head": (1.21265e-03, 3.7817603e-01, 3.681623e-02),
    "lshoulder": (1.99113488e-01, 2.36807942e-01, -1.80702247e-02),
    "rshoulder": (-1.91692337e-01, 2.36928746e-01, -1.23055102e-02),
    "lelbow": (4.54445392e-01, 2.21158922e-01, -4.10167128e-02),
    "relbow": (-4.5181984e-01, 2.225595e-01, -4.357424e-02),
}


def _dist(a: str, b: str) -> float:
    return float(np.linalg.norm(np.subtract(_TEMPLATE[a], _TEMPLATE[b])))


def body_constants(variant: str = "fixed") -> dict[str, float]:
    """Humerus length ``hl``, shoulder width ``sw``, hip width ``hw`` (SMPL units) of the geometric features."""
    if variant == "fixed":
        return {"hl": _dist("lshoulder", "lelbow"), "sw": _dist("lshoulder", "rshoulder"),
                "hw": _dist("lhip", "rhip")}
    if variant == "buggy":
        return {"hl": _dist("head", "lshoulder"), "sw": _dist("head", "relbow"), "hw": _dist("lhip", "rknee")}
    raise AistppError(f"geometric variant must be 'fixed' or 'buggy', got {variant!r}")


def _check_joints(joints) -> np.ndarray:
    p = np.asarray(joints, dtype=np.float64)
    if p.ndim != 3 or p.shape[2] != 3 or p.shape[1] < N_JOINTS or p.shape[0] < 3:
        raise AistppError(f"joints must be (N >= 3, 24, 3), got {p.shape}")
    return p[:, :N_JOINTS]


# ------------------------------------------------------------------------------------------- kinetic (72)

def kinetic_features(joints, accel_bug: bool = False, frame_time: float = 1.0 / FPS, window: int = 2
                     ) -> np.ndarray:
    """(N, 24, 3) joints (y up) -> (72,) float32: per joint [horizontal KE, vertical KE, energy expenditure]."""
    p = _check_joints(joints)
    n = p.shape[0]
    i = np.arange(1, n)                                   # frames 1..N-1
    # velocity window: difference index k in [max(1, i-w), min(N-1, i+w)]
    d = np.diff(p, axis=0)                                # d[k-1] = p[k] - p[k-1], k = 1..N-1
    c = np.concatenate([np.zeros((1,) + p.shape[1:]), np.cumsum(d, axis=0)])  # c[k] = sum_{m<=k} d[m-1]
    lo = np.maximum(1, i - window)
    hi = np.minimum(n - 1, i + window)
    v = (c[hi] - c[lo - 1]) / ((hi - lo + 1)[:, None, None] * frame_time)     # (N-1, J, 3)
    horizontal = (v[..., 0] ** 2 + v[..., 2] ** 2).mean(0)
    vertical = (v[..., 1] ** 2).mean(0)
    # acceleration window: k in [max(1, i-w), min(N-2, i+w)]
    k = np.arange(1, n - 1)
    v2 = (p[k + 1] - p[k]) / frame_time
    v1 = (p[k] - p[k - 1] / frame_time) if accel_bug else (p[k] - p[k - 1]) / frame_time
    a = (v2 - v1) / frame_time                            # a[k-1] for k = 1..N-2
    ca = np.concatenate([np.zeros((1,) + p.shape[1:]), np.cumsum(a, axis=0)])
    lo_a = np.maximum(1, i - window)
    hi_a = np.minimum(n - 2, i + window)
    count = hi_a - lo_a + 1
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = (ca[np.maximum(hi_a, 0)] - ca[lo_a - 1]) / count[:, None, None]
    acc[count <= 0] = np.nan
    energy = np.linalg.norm(acc, axis=-1).mean(0)
    return np.stack([horizontal, vertical, energy], axis=1).reshape(-1).astype(np.float32)


# ------------------------------------------------------------------------------------------ geometric (32)

_TIME_PER_FRAME = 1.0 / 120  # as in fairmotion's feature utils (not the capture rate)


def geometric_features(joints, variant: str = "fixed") -> np.ndarray:
    """(N, 24, 3) joints (y up, SMPL units) -> (32,) float32: fraction of frames 1..N-1 where each of the 32
    fairmotion/AIST++ boolean pose relations holds."""
    p = _check_joints(joints)
    const = body_constants(variant)
    hl, sw, hw = const["hl"], const["sw"], const["hw"]
    cur, prev = p[1:], p[:-1]                          # (T, J, 3)
    t = cur.shape[0]
    ymin = cur[..., 1].min(axis=1)
    special = {"zero": np.zeros((t, 3)), "y_unit": np.tile([0.0, 1.0, 0.0], (t, 1)),
               "minus_y_unit": np.tile([0.0, -1.0, 0.0], (t, 1)),
               "y_min": np.stack([np.zeros(t), ymin, np.zeros(t)], axis=1)}

    def at(name):
        return special[name] if name in special else cur[:, _J[name]]

    def before(name):
        return prev[:, _J[name]]

    def dot(a, b):
        return np.sum(a * b, axis=-1)

    def norm(a):
        return np.linalg.norm(a, axis=-1)

    def move(j1, j2, j3, _j4, thr):
        vel = (at(j3) - at(j1)) - (before(j3) - before(j1))
        direction = at(j2) - at(j1)
        return dot(vel, direction) / norm(direction) / _TIME_PER_FRAME > thr

    def nmove(j1, j2, j3, j4, thr):
        vel = (at(j4) - at(j1)) - (before(j4) - before(j1))
        direction = np.cross(at(j3) - at(j1), at(j2) - at(j1))
        return dot(vel, direction) / norm(direction) / _TIME_PER_FRAME > thr

    def plane(j1, j2, j3, j4, thr):
        a = at(j1)
        cross = np.cross(at(j3) - a, at(j2) - a)
        return dot(cross, at(j4) - a) / norm(cross) > thr

    def nplane(j1, j2, j3, j4, thr):
        normal = at(j2) - at(j1)
        return dot(normal, at(j4) - at(j3)) / norm(normal) > thr

    def angle(j1, j2, j3, j4, rng):
        j = at(j2) - at(j1)
        k = at(j4) - at(j3)
        deg = np.degrees(np.arccos(dot(j, k) / (norm(j) * norm(k))))
        return (deg > rng[0]) & (deg < rng[1])

    def fast(j, thr):
        return norm(at(j) - before(j)) / _TIME_PER_FRAME > thr

    with np.errstate(invalid="ignore", divide="ignore"):
        feats = [
            nmove("neck", "rhip", "lhip", "rwrist", 1.8 * hl),
            nmove("neck", "lhip", "rhip", "lwrist", 1.8 * hl),
            nplane("chest", "neck", "neck", "rwrist", 0.2 * hl),
            nplane("chest", "neck", "neck", "lwrist", 0.2 * hl),
            move("belly", "chest", "chest", "rwrist", 1.8 * hl),
            move("belly", "chest", "chest", "lwrist", 1.8 * hl),
            angle("relbow", "rshoulder", "relbow", "rwrist", (0, 110)),
            angle("lelbow", "lshoulder", "lelbow", "lwrist", (0, 110)),
            nplane("lshoulder", "rshoulder", "lwrist", "rwrist", 2.5 * sw),
            move("lwrist", "rwrist", "rwrist", "lwrist", 1.4 * hl),
            move("rwrist", "root", "lwrist", "root", 1.4 * hl),
            move("lwrist", "root", "rwrist", "root", 1.4 * hl),
            fast("rwrist", 2.5 * hl),
            fast("lwrist", 2.5 * hl),
            plane("root", "lhip", "ltoes", "rankle", 0.38 * hl),
            plane("root", "rhip", "rtoes", "lankle", 0.38 * hl),
            nplane("zero", "y_unit", "y_min", "rankle", 1.2 * hl),
            nplane("zero", "y_unit", "y_min", "lankle", 1.2 * hl),
            nplane("lhip", "rhip", "lankle", "rankle", 2.1 * hw),
            angle("rknee", "rhip", "rknee", "rankle", (0, 110)),
            angle("lknee", "lhip", "lknee", "lankle", (0, 110)),
            fast("rankle", 2.5 * hl),
            fast("lankle", 2.5 * hl),
            angle("neck", "root", "rshoulder", "relbow", (25, 180)),
            angle("neck", "root", "lshoulder", "lelbow", (25, 180)),
            angle("neck", "root", "rhip", "rknee", (50, 180)),
            angle("neck", "root", "lhip", "lknee", (50, 180)),
            plane("rankle", "neck", "lankle", "root", 0.5 * hl),
            angle("neck", "root", "zero", "y_unit", (70, 110)),
            nplane("zero", "minus_y_unit", "y_min", "rwrist", -1.2 * hl),
            nplane("zero", "minus_y_unit", "y_min", "lwrist", -1.2 * hl),
            fast("root", 2.3 * hl),
        ]
    return np.stack(feats, axis=1).astype(np.float32).mean(axis=0)


# ----------------------------------------------------------------------------------------- FID and Dist

def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Frechet distance of N(mu1, sigma1) and N(mu2, sigma2):
    ``|mu1 - mu2|^2 + tr(sigma1 + sigma2 - 2 sqrtm(sigma1 sigma2))`` (pytorch-fid's stable form)."""
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise AistppError("frechet_distance: mean / covariance shapes differ")
    diff = mu1 - mu2
    import warnings

    with warnings.catch_warnings():  # singular covariances are normal with fewer motions than feature dims
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean, _ = linalg.sqrtm(sigma1.dot(sigma2), disp=False)
        if not np.isfinite(covmean).all():
            log.warning("FID: singular product; adding %g to the covariance diagonals", eps)
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            log.warning("FID: imaginary component %g dropped", float(np.max(np.abs(covmean.imag))))
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def normalize_features(features, reference) -> tuple[np.ndarray, np.ndarray]:
    """Both sets scaled by the reference set's per-dimension mean and std (+1e-10)."""
    ref = np.asarray(reference, np.float64)
    feat = np.asarray(features, np.float64)
    mean, std = ref.mean(axis=0), ref.std(axis=0) + 1e-10
    return (feat - mean) / std, (ref - mean) / std


def fid(features, reference, eps: float = 1e-6) -> float:
    """FID of a feature set (M, D) against a reference set (R, D), both normalized by the reference statistics.
    NaN when either set has fewer than 2 samples. ``eps``: see :func:`frechet_distance`."""
    feat, ref = normalize_features(features, reference)
    if feat.shape[0] < 2 or ref.shape[0] < 2:
        return float("nan")
    return frechet_distance(ref.mean(0), np.cov(ref, rowvar=False), feat.mean(0), np.cov(feat, rowvar=False), eps)


def average_distance(features) -> float:
    """Mean Euclidean distance over all pairs of rows of (M, D) (NaN for M < 2)."""
    from scipy.spatial.distance import pdist

    f = np.asarray(features, np.float64)
    return float(pdist(f).mean()) if f.shape[0] >= 2 else float("nan")


# ------------------------------------------------------------------------------------------- BeatAlign

def motion_beats(joints, method: str = "fact", order: int = 10, smoothing: float = 5.0) -> np.ndarray:
    """Frame indices of motion beats.

    ``"fact"``: speed[t] = sum over joints |p[t] - p[t-1]| (speed[0] = 0), local minima with ``order`` frames
    on each side. ``"bailando"``: speed[t] = mean over joints |p[t+1] - p[t]| (N-1 values), Gaussian-smoothed
    (sigma ``smoothing``), local minima (order 1).
    """
    from scipy.ndimage import gaussian_filter1d
    from scipy.signal import argrelextrema

    p = np.asarray(joints, np.float64)
    speed = np.linalg.norm(np.diff(p, axis=0), axis=-1)          # (N-1, J)
    if method == "fact":
        env = np.concatenate([[0.0], speed.sum(axis=1)])
        return argrelextrema(env, np.less, order=order)[0]
    if method == "bailando":
        env = gaussian_filter1d(speed.mean(axis=1), smoothing, mode="reflect", truncate=4.0)
        return argrelextrema(env, np.less)[0]
    raise AistppError(f"beat_align must be 'fact' or 'bailando', got {method!r}")


def beat_align_score(music_beats, motion_beats_idx, method: str = "fact", sigma: float = 3.0) -> float:
    """Beat alignment of frame-index sets. ``"fact"``: mean over motion beats of exp(-d^2 / 2 sigma^2), d =
    distance to the nearest music beat (0 without motion beats); ``"bailando"``: the same averaged over music
    beats (nearest motion beat; 0 without motion beats, NaN without music beats)."""
    mu = np.asarray(music_beats, np.float64).ravel()
    mo = np.asarray(motion_beats_idx, np.float64).ravel()
    if method == "fact":
        if mo.size == 0 or mu.size == 0:
            return 0.0
        d = np.abs(mo[:, None] - mu[None, :]).min(axis=1)
    elif method == "bailando":
        if mu.size == 0:
            return float("nan")
        if mo.size == 0:
            return 0.0
        d = np.abs(mu[:, None] - mo[None, :]).min(axis=1)
    else:
        raise AistppError(f"beat_align must be 'fact' or 'bailando', got {method!r}")
    return float(np.mean(np.exp(-d ** 2 / (2 * sigma ** 2))))


def sequence_beat_align(joints, music_beats, config: "EvalConfig") -> float:
    """BeatAlign of a whole motion (joints (N, 24, 3)) with music beat frames on the same frame axis, as the peers
    score a ground-truth motion: ``fact`` (mint ``calculate_beat_scores.py``): music beats of the frames the
    motion has (``audio_feature[:N]``), motion beats of the whole motion; ``bailando`` (Bailando
    ``beat_align_score.py``): music beats of the first N-1 frames (as many as speed values)."""
    beats = np.asarray(music_beats, np.int64).ravel()
    n = len(joints)
    if config.beat_align == "fact":
        mb = motion_beats(joints, "fact", order=config.fact_beat_order)
        return beat_align_score(beats[(beats >= 0) & (beats < n)], mb, "fact", config.beat_sigma)
    mb = motion_beats(joints, "bailando", smoothing=config.bailando_smoothing)
    return beat_align_score(beats[(beats >= 0) & (beats < n - 1)], mb, "bailando", config.beat_sigma)


def motion_beat_align(joints, music_beats, start: int, config: "EvalConfig") -> float:
    """BeatAlign of a generated motion (joints (N, 24, 3), seed + generated) from frame ``start`` (the seed length)
    to its end, music beat frames on the motion's frame axis. ``fact`` (mint, generated data): motion beats found
    on the whole motion, then both beat sets kept from ``start`` on (music beats are not cut at the motion's end);
    ``bailando``: :func:`sequence_beat_align` of the frames from ``start`` on (Bailando scores its whole output).
    No crop: both peers score the whole generated motion."""
    beats = np.asarray(music_beats, np.int64).ravel()
    if config.beat_align == "fact":
        mb = motion_beats(joints, "fact", order=config.fact_beat_order)
        return beat_align_score(beats[beats >= start] - start, mb[mb >= start] - start, "fact", config.beat_sigma)
    return sequence_beat_align(np.asarray(joints)[start:], beats[beats >= start] - start, config)


# --------------------------------------------------------------------------------------------- evaluate

@dataclass(frozen=True)
class EvalConfig:
    """Every switch that changes the published numbers; defaults = :meth:`preset` ``"bailando"`` (Bailando's code,
    the source of the commonly cited AIST++ table); ``"fact"`` gives mint's published metric scripts. See
    docs/models.md for what each preset reproduces and what no published code fixes."""

    accel_bug: bool = True           # fairmotion's acceleration precedence bug (still in aistplusplus_api, mint's
                                     # and Bailando's extractors) kept (True) or fixed
    geometric: str = "fixed"         # "fixed" or "buggy" body constants of the geometric features
    recentre: bool = True            # subtract the first frame's root position (Bailando) or not (mint)
    crop: int | None = 1200          # generated motions: frames after the seed kept for the features; None = all
    gt_crop: int | None = None       # ground-truth and reference motions: frames kept for the features; None = all
    reference: str = "all"           # FID reference pool: "test" (the ground-truth set) or "all" corpus motions
    beat_align: str = "bailando"     # "fact" or "bailando"
    fact_beat_order: int = 10
    bailando_smoothing: float = 5.0
    beat_sigma: float = 3.0
    fid_eps: float = 1e-5            # diagonal offset when the covariance product is singular (mint 1e-6)
    test_split: str | None = "crossmodal_test"   # ground-truth row: split name(s) joined by '+', a names file,
                                                 # None = all
    ignore_list: bool = True         # drop the official ignore list from the ground-truth and reference sets

    def __post_init__(self):
        body_constants(self.geometric)
        if self.reference not in ("test", "all"):
            raise AistppError(f"EvalConfig: reference must be 'test' or 'all', got {self.reference!r}")
        if self.beat_align not in ("fact", "bailando"):
            raise AistppError(f"EvalConfig: beat_align must be 'fact' or 'bailando', got {self.beat_align!r}")
        for key in ("crop", "gt_crop"):
            value = getattr(self, key)
            if value is not None and value < 3:
                raise AistppError(f"EvalConfig: {key} must be >= 3 frames or None")

    @classmethod
    def preset(cls, name: str, **overrides) -> "EvalConfig":
        presets = {
            "bailando": {},
            "fact": {"accel_bug": True, "geometric": "fixed", "recentre": False, "crop": None, "gt_crop": None,
                     "reference": "all", "beat_align": "fact", "fid_eps": 1e-6,
                     "test_split": "crossmodal_val+crossmodal_test"},
        }
        if name not in presets:
            raise AistppError(f"unknown metrics profile {name!r}; known: {', '.join(presets)}")
        return cls(**{**presets[name], **overrides})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def motion_joints(body_model, smpl_poses, smpl_trans, smpl_scaling) -> np.ndarray:
    """SMPL joints (N, 24, 3) in SMPL units: SMPL(pose) + smpl_trans / smpl_scaling (mint's evaluation)."""
    from aistpp.smpl import joints_from_motion

    scale = float(np.asarray(smpl_scaling, np.float64).reshape(-1)[0])
    trans = np.asarray(smpl_trans, np.float64) / scale
    return joints_from_motion(body_model, smpl_poses, trans, np.ones(1))


def motion_features(joints, config: EvalConfig, crop: int | None = None) -> dict:
    """{"kinetic": (72,), "geometric": (32,)} of one motion: its first ``crop`` frames (None = all), recentred on
    the first kept frame's root if ``config.recentre`` (Bailando crops, then recentres)."""
    j = np.asarray(joints, np.float64)
    if crop is not None:
        j = j[:crop]
    if config.recentre:
        j = j - j[:1, :1]
    return {"kinetic": kinetic_features(j, config.accel_bug), "geometric": geometric_features(j, config.geometric)}


def score_set(features: list[dict], reference: list[dict], beat_scores: list[float], fid_eps: float = 1e-6
              ) -> dict:
    """FID_k, FID_g (vs ``reference``), Dist_k, Dist_g (normalized by the reference statistics), BeatAlign."""
    out = {}
    for key, short in (("kinetic", "k"), ("geometric", "g")):
        feat = np.stack([f[key] for f in features])
        ref = np.stack([f[key] for f in reference])
        out[f"FID_{short}"] = fid(feat, ref, fid_eps)
        out[f"Dist_{short}"] = average_distance(normalize_features(feat, ref)[0])
    finite = [b for b in beat_scores if np.isfinite(b)]
    out["BeatAlign"] = float(np.mean(finite)) if finite else float("nan")
    out["n"] = len(features)
    return out


def score_motions(generated, ground_truth, others=(), config: EvalConfig = EvalConfig(), progress: bool = False
                  ) -> dict:
    """The protocol of ``config`` on joints: the core of :func:`evaluate`, without files.

    Args:
        generated: iterable of {"name", "joints" (N, 24, 3) seed + generated, "seed_frames", "music_beats"
            (frame indices on the motion's axis, or None)}. Features: frames after the seed, first ``config.crop``.
        ground_truth: iterable of {"name", "joints", "music_beats" or None}: the ground-truth row (features of the
            first ``config.gt_crop`` frames, BeatAlign of the whole motion).
        others: iterable of joints (N, 24, 3), consumed once: the rest of the reference pool when
            ``config.reference == "all"`` (the pool is the ground-truth set plus these).
    Returns {"generated", "ground_truth" (metric rows), "reference" (Dist_k / Dist_g of the pool normalized by
    itself, as Bailando's ``div_k_gt``), "reference_size", "test_sequences", "per_sequence"}.
    """
    from aistpp.progress import tqdm

    gen_feats, gen_beats, per_seq = [], [], []
    for item in tqdm(generated, desc="generated", disable=not progress):
        joints = np.asarray(item["joints"], np.float64)
        s = int(item.get("seed_frames", 0))
        if len(joints) - s < 3:
            log.warning("%s: %d generated frames, skipped", item["name"], len(joints) - s)
            continue
        gen_feats.append(motion_features(joints[s:], config, config.crop))
        beats = item.get("music_beats")
        ba = float("nan") if beats is None else motion_beat_align(joints, beats, s, config)
        gen_beats.append(ba)
        per_seq.append({"name": item["name"], "frames": int(len(joints) - s), "BeatAlign": ba})
    test_feats, test_beats = [], []
    for item in tqdm(ground_truth, desc="ground truth", disable=not progress):
        joints = np.asarray(item["joints"], np.float64)
        if len(joints) < 3:
            continue
        test_feats.append(motion_features(joints, config, config.gt_crop))
        beats = item.get("music_beats")
        test_beats.append(float("nan") if beats is None else sequence_beat_align(joints, beats, config))
    ref_feats = list(test_feats)
    if config.reference == "all":
        for joints in tqdm(others, desc="reference", disable=not progress):
            if len(joints) >= 3:
                ref_feats.append(motion_features(joints, config, config.gt_crop))
    if len(ref_feats) < 2:
        log.warning("reference pool has %d motion(s): FID is undefined (NaN)", len(ref_feats))
    reference_row = {"n": len(ref_feats)}
    for key, short in (("kinetic", "k"), ("geometric", "g")):
        ref = np.stack([f[key] for f in ref_feats]) if ref_feats else np.zeros((0, 1))
        reference_row[f"Dist_{short}"] = average_distance(normalize_features(ref, ref)[0]) if len(ref) else \
            float("nan")
    notes = []
    for key in ("kinetic", "geometric"):
        if ref_feats:
            flat = int(np.sum(np.stack([f[key] for f in ref_feats]).std(axis=0) < 1e-8))
            if flat:
                notes.append(f"{flat} {key} feature(s) are constant over the reference pool: the published "
                             "normalization (std + 1e-10) makes any difference there huge")
    return {
        "generated": score_set(gen_feats, ref_feats, gen_beats, config.fid_eps) if gen_feats and ref_feats else {},
        "ground_truth": (score_set(test_feats, ref_feats, test_beats, config.fid_eps) if test_feats else {}),
        "reference": reference_row, "reference_size": len(ref_feats), "test_sequences": len(test_feats),
        "per_sequence": per_seq, "notes": notes,
    }


def _read_generated(gen_dir: Path) -> list[dict]:
    items = []
    for npy in sorted(gen_dir.glob("*.npy")):
        meta_path = npy.with_suffix(".json")
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        motion = np.load(npy, allow_pickle=False)
        if motion.ndim != 2 or motion.shape[1] not in (219, 225):
            log.warning("%s: not a (N, 225) motion array, skipped", npy)
            continue
        items.append({"name": npy.stem, "motion": motion, "meta": meta,
                      "seed_frames": int(meta.get("seed_frames", 120)),
                      "music_id": meta.get("music_id") or npy.stem.rsplit("_", 1)[-1]})
    if not items:
        raise AistppError("no generated motions (*.npy, (N, 225)) found", gen_dir)
    return items


def _select(corpus, split, ignore) -> list[str]:
    """:func:`aistpp.data.datasets.select_sequences`, with ``"a+b"`` = the union of splits a and b, in order."""
    from aistpp.data.datasets import select_sequences

    if isinstance(split, str) and "+" in split and not Path(split).is_file():
        names: list[str] = []
        for part in split.split("+"):
            names += [n for n in select_sequences(corpus, part.strip(), ignore=ignore) if n not in names]
        return names
    return select_sequences(corpus, split, ignore=ignore)


def evaluate(generated_dir, corpus, smpl_model=None, config: EvalConfig = EvalConfig(), progress: bool = False
             ) -> dict:
    """Score generated motions (a folder written by ``aistpp generate``) and the ground truth, same switches.

    Rows: ``generated`` (generated frames after the seed) and ``ground_truth`` (the corpus motions of
    ``config.test_split``); FID against the reference pool (``config.reference``); ``reference``: Dist of the pool
    itself. Music beats come from each generated file's JSON (or the corpus music of its music id) and from the
    corpus music for the ground truth. See :func:`score_motions`.
    Returns {"generated": {...}, "ground_truth": {...}, "reference": {...}, "config": ..., "smpl_model": ...,
    "per_sequence": [...]}.
    """
    import torch

    from aistpp.corpus import Corpus
    from aistpp.data.motion import decode_motion
    from aistpp.smpl import load_body_model

    gen_dir = Path(generated_dir)
    c = corpus if isinstance(corpus, Corpus) else Corpus(corpus)
    body = load_body_model(smpl_model)
    music_ids = set(c.music_ids())
    music_cache: dict[str, np.ndarray] = {}

    def beats_of(mid):
        if mid not in music_ids:
            return None
        if mid not in music_cache:
            feats = np.asarray(c.music(mid))
            music_cache[mid] = np.flatnonzero(feats[:, -1] > 0.5)
        return music_cache[mid]

    def generated_items():
        for item in _read_generated(gen_dir):
            poses, trans_norm = decode_motion(torch.from_numpy(item["motion"].astype(np.float32)))
            beats = item["meta"].get("music_beats")
            if beats is None:
                beats = beats_of(item["music_id"])  # no JSON: assume music frame 0 = seed frame 0
            yield {"name": item["name"], "seed_frames": item["seed_frames"], "music_beats": beats,
                   "joints": motion_joints(body, poses.numpy(), trans_norm.numpy(), np.ones(1))}

    def joints_of(seq):
        d = c.read(seq, ("smpl/poses", "smpl/trans", "smpl/scaling"))
        return motion_joints(body, d["smpl/poses"], d["smpl/trans"], d["smpl/scaling"])

    def ground_truth_items(names):
        for seq in names:
            joints = joints_of(seq)
            b = beats_of(c.attrs(seq).get("music"))
            if b is not None:
                grp = c.group(seq)
                if "timestamps" in grp and grp["timestamps"].shape[0] == len(joints):
                    b = b - int(np.rint(grp["timestamps"][0] * FPS / 1e6))
            yield {"name": seq, "joints": joints, "music_beats": b}

    test_names = _select(c, config.test_split, config.ignore_list)
    ref_names = test_names
    others = ()
    if config.reference == "all":
        ref_names = _select(c, None, config.ignore_list)
        test_set = set(test_names)
        others = (joints_of(n) for n in ref_names if n not in test_set)
    result = score_motions(generated_items(), ground_truth_items(test_names), others, config, progress)
    result.update({"config": config.to_dict(), "smpl_model": str(getattr(body, "aistpp_source", smpl_model)),
                   "generated_dir": str(gen_dir), "corpus": str(c.root)})
    if set(ref_names) <= set(test_names):
        result["notes"].insert(0, "the reference pool is the ground-truth set itself: its FID is 0 by construction "
                               "(published ground-truth rows compare the test motions with all motions: "
                               "--reference all)")
    if smpl_model is None:
        result["notes"].append("stand-in SMPL body: not comparable with published numbers")
    return result


METRIC_KEYS = ("FID_k", "FID_g", "Dist_k", "Dist_g", "BeatAlign")


def format_table(result: dict) -> str:
    """Plain-text table of the reference-pool (Dist only), ground-truth and generated rows."""
    lines = [f"{'':14s}" + "".join(f"{k:>11s}" for k in METRIC_KEYS) + f"{'n':>6s}"]
    for row in ("reference", "ground_truth", "generated"):
        r = result.get(row) or {}
        if r:
            lines.append(f"{row:14s}" + "".join(f"{r.get(k, float('nan')):11.4f}" for k in METRIC_KEYS)
                         + f"{r.get('n', 0):6d}")
    return "\n".join(lines)
