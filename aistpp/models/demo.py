"""The demo's last step: train the tiny FACT preset for a few steps on the demo corpus, generate, evaluate.

:func:`demo_step` is the library function behind the ``fact`` step of ``aistpp demo`` (:mod:`aistpp.demo`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from aistpp.errors import AistppError

log = logging.getLogger(__name__)


def demo_step(corpus_path, out_dir, music_dir=None, steps: int = 20, batch_size: int = 2, frames: int = 60,
              seed: int = 0, smpl_model=None, device: str | None = "cpu") -> dict:
    """Train ``tiny`` FACT for ``steps`` steps on every corpus sequence, generate ``frames`` frames after each
    sequence's 120-frame seed with its own music, and score them (FACT protocol switches, reference = all
    corpus motions, ground truth row = all corpus motions).

    Args:
        corpus_path: a corpus with SMPL motion; music features are added from ``music_dir`` (``<id>.wav``)
            when the corpus lacks them.
        out_dir: receives ``run/`` (checkpoints, log.csv), ``generated/`` (npy, pkl, json) and ``metrics.json``.

    Returns:
        {"train": {...}, "generated": [names], "metrics": {"generated": {...}, "ground_truth": {...}},
         "config": {...}, "seconds": {...}} -- numbers on a handful of synthetic sequences mean nothing beyond
        "the stages connect".
    """
    import json

    import torch

    from aistpp.corpus import Corpus
    from aistpp.data import FACTDataset
    from aistpp.io.atomic import atomic_write_text
    from aistpp.models.fact import build_fact
    from aistpp.models.generate import GenerateConfig, generate_to_dir
    from aistpp.models.metrics import EvalConfig, evaluate
    from aistpp.models.train import TrainConfig, train

    out = Path(out_dir)
    seconds = {}
    corpus = Corpus(corpus_path)
    if not corpus.music_ids():
        if music_dir is None:
            raise AistppError("the demo corpus has no music features and no music folder was given", corpus_path)
        from aistpp.audio import add_music_to_corpus

        corpus.close()
        add_music_to_corpus(corpus_path, music_dir)
        corpus = Corpus(corpus_path)
    t = time.perf_counter()
    # mint's windows (120 seed, 240 music, 20 target frames) when the sequences are long enough, else shorter
    # windows of the same proportions (a short demo sample still trains, generates and evaluates)
    shortest = min(corpus.frames(s) for s in corpus.sequences())
    if shortest >= 240:
        seed_len, audio_len, target_len = 120, 240, 20
    elif shortest >= 8:
        seed_len, audio_len = shortest // 2, shortest
        target_len = min(20, audio_len - seed_len)
    else:
        raise AistppError(f"demo sequences have {shortest} frames; FACT needs at least 8", corpus_path)
    dataset = FACTDataset(corpus, split=None, seed=seed, seed_frames=seed_len, audio_frames=audio_len,
                          target_frames=target_len)
    torch.manual_seed(seed)
    model = build_fact("tiny", motion_len=seed_len, audio_len=audio_len, target_len=target_len)
    bs = max(1, min(batch_size, len(dataset)))
    cfg = TrainConfig(steps=steps, batch_size=bs, learning_rate=1e-3, lr_schedule=(), log_every=1,
                      checkpoint_every=steps, seed=seed, tensorboard=False)
    run = out / "run"
    result = train(model, dataset, cfg, run, resume=(run / "checkpoints").is_dir(), device=device, progress=False,
                   dataset_info={"corpus": str(corpus_path), "split": None, "windows": len(dataset)})
    seconds["train"] = time.perf_counter() - t
    t = time.perf_counter()
    model.eval()
    names = []
    info = {"checkpoint": result.checkpoint, "step": result.step}
    for seq in dataset.sequences:
        rec = generate_to_dir(None, seq, None, out / "generated", GenerateConfig(frames=frames), corpus=corpus,
                              model=model, ckpt_info=info)
        names.append(rec["name"])
    seconds["generate"] = time.perf_counter() - t
    t = time.perf_counter()
    ecfg = EvalConfig.preset("fact", test_split=None)
    metrics = evaluate(out / "generated", corpus, smpl_model, ecfg)
    seconds["evaluate"] = time.perf_counter() - t
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=1, default=float) + "\n")
    reference = reference_features(corpus, smpl_model, ecfg)
    verdicts = {row: pool_verdicts(metrics[row], reference, against_itself=(row == "ground_truth"
                                                                             and ecfg.reference == "all"))
                for row in ("generated", "ground_truth") if metrics[row]}
    losses = [l for _, l in result.losses]
    return {"train": {"steps": result.step, "first_loss": losses[0] if losses else None,
                      "last_loss": losses[-1] if losses else None, "windows": len(dataset),
                      "checkpoint": result.checkpoint},
            "generated": names, "metrics": {k: metrics[k] for k in ("generated", "ground_truth")},
            "metrics_notes": metrics["notes"], "verdicts": verdicts, "stand_in_body": smpl_model is None,
            "config": ecfg.to_dict(), "seconds": seconds, "out": str(out)}



MIN_DIST_POOL = 3  # Dist normalizes by the pool's std: with 2 motions every feature becomes +-1, Dist = 2 sqrt(D)


def reference_features(corpus, smpl_model, config) -> list[dict]:
    """The evaluation features ({"kinetic": (72,), "geometric": (32,)}) of every corpus motion: the reference pool
    of the demo's evaluation (``reference="all"``)."""
    from aistpp.models.metrics import motion_features, motion_joints
    from aistpp.smpl import load_body_model

    body = load_body_model(smpl_model)
    feats = []
    for seq in corpus.sequences():
        d = corpus.read(seq, ("smpl/poses", "smpl/trans", "smpl/scaling"))
        joints = motion_joints(body, d["smpl/poses"], d["smpl/trans"], d["smpl/scaling"])
        if len(joints) >= 3:
            feats.append(motion_features(joints, config))
    return feats


def pool_verdicts(scores: dict, reference: list[dict], against_itself: bool = False) -> dict:
    """Which metrics of one score row (:func:`aistpp.models.metrics.score_set`) mean something on this pool.

    Returns ``{metric: (value, None)}`` for a metric that can be computed and ``{metric: (None, reason)}`` for one
    that cannot (the value it printed is noise):

    - ``FID_k`` / ``FID_g``: the reference covariance is singular unless the pool has more motions than features
      (72 kinetic, 32 geometric); a row scored against itself (``against_itself``) is 0 by construction.
    - ``Dist_k`` / ``Dist_g``: features are normalized by the pool's mean and std: the pool needs at least
      :data:`MIN_DIST_POOL` motions, the row 2, and no feature may be constant over the pool (its std + 1e-10
      turns any difference into ~1e10).
    - ``BeatAlign``: computable whenever music beats were found (finite).
    """
    import numpy as np

    n_ref, n_row = len(reference), int(scores.get("n", 0))
    out = {}
    for key, short in (("kinetic", "k"), ("geometric", "g")):
        ref = np.stack([f[key] for f in reference]) if reference else np.zeros((0, 0))
        dims = ref.shape[1]
        if against_itself:
            out[f"FID_{short}"] = (None, "scored against itself: 0 by construction")
        elif n_ref <= dims:
            out[f"FID_{short}"] = (None, f"needs a reference pool of more than {dims} motions ({key} features), "
                                         f"the pool has {n_ref}")
        else:
            out[f"FID_{short}"] = (scores[f"FID_{short}"], None)
        flat = int(np.sum(ref.std(axis=0) <= 1e-8 * np.maximum(1.0, np.abs(ref.mean(axis=0))))) if n_ref else 0
        if n_ref < MIN_DIST_POOL or n_row < 2:
            out[f"Dist_{short}"] = (None, f"needs >= {MIN_DIST_POOL} motions in the pool and 2 in the row, "
                                          f"has {n_ref} and {n_row}")
        elif flat:
            out[f"Dist_{short}"] = (None, f"{flat} of {dims} {key} features are constant over the pool")
        else:
            out[f"Dist_{short}"] = (scores[f"Dist_{short}"], None)
    beat = scores.get("BeatAlign", float("nan"))
    out["BeatAlign"] = (beat, None) if np.isfinite(beat) else (None, "no music beats found")
    return out
