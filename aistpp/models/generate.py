"""Autoregressive FACT generation (mint ``FACTModel.infer_auto_regressive``) and the files it writes.

Step ``i`` feeds the current motion window (``motion_len`` frames) and music frames ``[i, i + audio_len)``, keeps
the first predicted frame, appends it to the motion window and drops the oldest frame. The seed window covers
music frames ``[0, motion_len)``, so generated frame ``i`` is frame ``motion_len + i`` of the sequence.

Music of a corpus sequence (no ``music`` given): motion frame 0 is paired with music frame
``rint(timestamps[0] * 60 / 1e6)`` (the time of the sequence's first video frame, 0 for most sequences);
``GenerateConfig(music_align="start")`` pairs it with music frame 0, as mint's preprocessing does. As in mint,
generation stops early when the music runs out (fewer than ``audio_len`` frames left).

Output of :func:`generate_to_dir`, one set per sequence ``NAME = <seed sequence>_<music id>``:

    NAME.npy    (motion_len + F, 225) float32: seed + generated FACT vectors, rotations snapped to SO(3) (SVD;
                ``snap="none"``: raw network outputs, as mint saves them)
    NAME.pkl    official motions format (smpl_poses (N, 72), smpl_trans (N, 3) cm, smpl_scaling (1,))
    NAME.json   seed sequence, music id, seed_frames, generated frames, music beat frames (on NAME's frame
                axis), checkpoint, config, tool version -- what ``aistpp evaluate`` needs
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from aistpp.errors import AistppError
from aistpp.models.fact import FACTConfig

log = logging.getLogger(__name__)

BEAT_COLUMN = -1  # music features: [envelope, mfcc 20, chroma 12, peak onehot, beat onehot]


@dataclass(frozen=True)
class GenerateConfig:
    """frames: frames to generate after the seed (mint: 1200 = 20 s).
    snap: "output" snaps rotation blocks to the nearest rotation (SVD) in the written result only (mint's
    evaluation does this when it converts to axis-angle); "step" also snaps every predicted frame before it is
    fed back; "none" keeps the raw network outputs in NAME.npy (what mint saves; the .pkl and ``aistpp
    evaluate`` still snap when they decode rotations).
    music_align: where the seed sequence's own music starts: "timestamps" skips ``rint(timestamps[0] * 60 /
    1e6)`` music frames (the corpus' first video frame time), "start" pairs motion frame 0 with music frame 0
    (mint's preprocessing)."""

    frames: int = 1200
    snap: str = "output"
    music_align: str = "timestamps"

    def __post_init__(self):
        if self.frames < 1:
            raise AistppError(f"GenerateConfig: frames must be >= 1, got {self.frames}")
        if self.snap not in ("output", "step", "none"):
            raise AistppError(f"GenerateConfig: snap must be 'output', 'step' or 'none', got {self.snap!r}")
        if self.music_align not in ("timestamps", "start"):
            raise AistppError(f"GenerateConfig: music_align must be 'timestamps' or 'start', got "
                              f"{self.music_align!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def snap_rotations(motion: torch.Tensor) -> torch.Tensor:
    """(..., 225) FACT vectors -> same with each of the 24 row-major 3x3 blocks (dims 9:225) replaced by the
    nearest rotation (:func:`aistpp.data.motion.orthonormalize`)."""
    from aistpp.data.motion import orthonormalize

    rot = orthonormalize(motion[..., 9:].reshape(motion.shape[:-1] + (24, 3, 3)).double())
    return torch.cat([motion[..., :9], rot.reshape(motion.shape[:-1] + (216,)).to(motion.dtype)], -1)


@torch.no_grad()
def generate_motion(model, seed_motion, audio, frames: int = GenerateConfig.frames, snap: str = GenerateConfig.snap,
                    device=None, progress: bool = False) -> np.ndarray:
    """Autoregressive generation.

    Args:
        model: :class:`aistpp.models.fact.FACTModel`.
        seed_motion: (motion_len, 225) or (B, motion_len, 225) FACT vectors (the seed window).
        audio: (T, 35) or (B, T, 35) music features aligned so that audio frame 0 = seed frame 0; T >=
            audio_len.
        frames: frames to generate; fewer come out when ``T < frames + audio_len - 1`` (logged).
        snap: see :class:`GenerateConfig`.

    Returns:
        (motion_len + F, 225) or (B, motion_len + F, 225) float32: the seed followed by the F generated frames,
        rotation blocks snapped to SO(3) (raw network outputs with ``snap="none"``).
    """
    cfg = model.config
    seed = torch.as_tensor(np.asarray(seed_motion), dtype=torch.float32)
    aud = torch.as_tensor(np.asarray(audio), dtype=torch.float32)
    single = seed.dim() == 2
    if single:
        seed, aud = seed[None], aud[None]
    if seed.shape[1:] != (cfg.motion_len, cfg.motion_dim):
        raise AistppError(f"seed motion must be ({cfg.motion_len}, {cfg.motion_dim}) frames, got "
                          f"{tuple(seed.shape[-2:])}")
    if aud.dim() != 3 or aud.shape[-1] != cfg.audio_dim or aud.shape[0] != seed.shape[0]:
        raise AistppError(f"music features must be (T, {cfg.audio_dim}), got {tuple(aud.shape)}")
    n_avail = aud.shape[1] - cfg.audio_len + 1
    if n_avail < 1:
        raise AistppError(f"music has {aud.shape[1]} frames, fewer than the model's audio window "
                          f"{cfg.audio_len}")
    n = min(int(frames), n_avail)
    if n < frames:
        log.warning("music has %d frames: generating %d of %d requested frames", aud.shape[1], n, frames)
    if device is None:
        device = next(model.parameters()).device
    model.eval()
    window = seed.to(device)
    aud = aud.to(device)
    out = []
    from aistpp.progress import tqdm

    for i in tqdm(range(n), desc="generate", unit="frame", disable=not progress):
        pred = model(window, aud[:, i:i + cfg.audio_len])[:, :1]  # (B, 1, 225)
        if snap == "step":
            pred = snap_rotations(pred)
        out.append(pred)
        window = torch.cat([window[:, 1:], pred], dim=1)
    result = torch.cat([seed.to(device)] + out, dim=1).cpu()
    if snap != "none":
        result = snap_rotations(result)
    result = result.numpy().astype(np.float32)
    return result[0] if single else result


def music_beats(music_features: np.ndarray) -> np.ndarray:
    """Frame indices of the beats (the one-hot last column of the 35-d music features)."""
    return np.flatnonzero(np.asarray(music_features)[:, BEAT_COLUMN] > 0.5).astype(np.int64)


def load_seed(source: str, corpus=None, motion_len: int = FACTConfig.motion_len) -> dict:
    """Seed motion from a corpus sequence name (with ``corpus``) or an official motions pkl path.

    Returns dict(sequence, motion (motion_len, 225) float32, smpl_scaling (1,), music_id or None, offset (music
    frame of seed frame 0)).
    """
    from aistpp.data.motion import encode_motion
    from aistpp.naming import parse_name

    path = Path(source)
    offset = 0
    if path.suffix == ".pkl" and path.is_file():
        from aistpp.io.annotations import read_motion

        m = read_motion(path)
        name = path.stem
        poses, trans, scaling = m["smpl_poses"], m["smpl_trans"], m["smpl_scaling"]
    else:
        if corpus is None:
            raise AistppError(f"seed motion {source!r}: not a motions .pkl file; give --corpus to read a sequence")
        from aistpp.corpus import Corpus

        c = corpus if isinstance(corpus, Corpus) else Corpus(corpus)
        if source not in c:
            raise AistppError(f"sequence {source} is not in the corpus", c.root)
        d = c.read(source, ("smpl/poses", "smpl/trans", "smpl/scaling"), frames=None)
        poses, trans, scaling = d["smpl/poses"], d["smpl/trans"], d["smpl/scaling"]
        name = source
        ts = None
        grp = c.group(source)
        if "timestamps" in grp and grp["timestamps"].shape[0] == poses.shape[0]:
            ts = grp["timestamps"][()]
            offset = int(np.rint(ts[0] * 60 / 1e6))
    if poses.shape[0] < motion_len:
        raise AistppError(f"seed sequence {name} has {poses.shape[0]} frames, fewer than {motion_len}")
    motion = encode_motion(poses[:motion_len], trans[:motion_len], scaling).numpy()
    try:
        music_id = parse_name(name).music
    except Exception:  # noqa: BLE001 - a pkl with a free-form name
        music_id = None
    return {"sequence": name, "motion": motion, "smpl_scaling": np.asarray(scaling, np.float32).reshape(1),
            "music_id": music_id, "offset": max(offset, 0)}


def load_music(source: str, corpus=None) -> tuple[str, np.ndarray]:
    """(music id, (T, 35) features) from a .npy of features, an audio file (librosa, tempo from the AIST music id
    in the file name), or a music id stored in ``corpus``."""
    from aistpp.audio import music_id_of

    path = Path(source)
    if path.is_file():
        mid = music_id_of(path) or path.stem
        if path.suffix == ".npy":
            feats = np.load(path, allow_pickle=False)
        else:
            from aistpp.audio import music_features

            feats = music_features(path)
        feats = np.asarray(feats, np.float32)
        if feats.ndim != 2 or feats.shape[1] != 35:
            raise AistppError(f"music features must be (T, 35), got {feats.shape}", path)
        return mid, feats
    if corpus is not None:
        from aistpp.corpus import Corpus

        c = corpus if isinstance(corpus, Corpus) else Corpus(corpus)
        return source, np.asarray(c.music(source), np.float32)
    raise AistppError(f"music {source!r}: no such file (a music id needs --corpus)")


def generate_to_dir(checkpoint, seed: str, music: str | None, out_dir, config: GenerateConfig = GenerateConfig(),
                    corpus=None, device=None, progress: bool = False, model=None, ckpt_info: dict | None = None
                    ) -> dict:
    """Generate one sequence and write NAME.npy / NAME.pkl / NAME.json into ``out_dir`` (see module doc).

    ``music`` None = the seed sequence's own music (from ``corpus``), started at the seed's music frame.
    Returns the JSON record (with ``name`` and the paths)."""
    from aistpp import __version__
    from aistpp.data.motion import decode_motion
    from aistpp.io.annotations import write_motion
    from aistpp.io.atomic import atomic_path, atomic_write_text
    from aistpp.models.train import model_from_checkpoint

    if model is None:
        model, ck = model_from_checkpoint(checkpoint)
        ckpt_info = {"checkpoint": str(ck["path"]), "step": int(ck.get("step", 0))}
        if device is not None:
            model.to(device)
    cfg = model.config
    s = load_seed(seed, corpus, cfg.motion_len)
    offset = 0
    if music is None:
        if s["music_id"] is None:
            raise AistppError(f"seed {seed}: no music id in its name; pass --music")
        mid, feats = load_music(s["music_id"], corpus)
        offset = s["offset"] if config.music_align == "timestamps" else 0
    else:
        mid, feats = load_music(music, corpus)
    feats = feats[offset:]
    motion = generate_motion(model, s["motion"], feats, config.frames, config.snap, progress=progress)
    n_gen = motion.shape[0] - cfg.motion_len
    name = f"{s['sequence']}_{mid}"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / f"{name}.npy", suffix=".npy") as tmp:
        np.save(tmp, motion)
    poses, trans = decode_motion(torch.from_numpy(motion), torch.from_numpy(s["smpl_scaling"]))
    write_motion(out / f"{name}.pkl", poses.numpy().astype(np.float32), trans.numpy().astype(np.float32),
                 s["smpl_scaling"])
    beats = music_beats(feats[:motion.shape[0]])
    record = {"name": name, "seed_sequence": s["sequence"], "music_id": mid, "seed_frames": cfg.motion_len,
              "generated_frames": int(n_gen), "frames": int(motion.shape[0]), "music_offset": int(offset),
              "music_beats": beats.tolist(), "smpl_scaling": float(s["smpl_scaling"][0]),
              "config": config.to_dict(), "model_config": cfg.to_dict(), **(ckpt_info or {}),
              "tool_version": __version__}
    atomic_write_text(out / f"{name}.json", json.dumps(record, indent=1) + "\n")
    record["paths"] = {k: str(out / f"{name}.{k}") for k in ("npy", "pkl", "json")}
    return record
