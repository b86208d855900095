"""``aistpp demo``: the main job end to end on a generated AIST++-shaped sample, as a list of steps.

Steps (each a function ``step(ctx) -> DemoStep``, run in order by :func:`run_demo`):

1. ``generate``: procedural dance motions of the stand-in SMPL body on the beat of a generated click track
   (``<music_id>.wav``), projected through an AIST++-like 9-camera ring (:func:`aistpp.triangulate.ring_cameras`)
   with pixel noise, dropped detections, low confidences, left/right swaps and jumps (:mod:`aistpp.synth`); one
   sequence loses a whole view, as two real AIST++ videos are missing. Written as an official annotation tree
   (``sample/annotations``), with the truth kept in ``sample/truth``.
2. ``reconstruct``: :func:`aistpp.pipeline.reconstruct` of the sample into ``corpus/`` (triangulate -> SMPL fit).
3. ``compare``: MPJPE against the truth of plain DLT, robust per-frame and temporally optimized keypoints3d, and of
   the SMPL fit's keypoints.
4. ``verify``: checksums and shapes of the corpus, and an official-format export.
5. ``fact``: music features of the click tracks, then the tiny FACT preset trained for a few steps, generation and
   evaluation (:func:`aistpp.models.demo.demo_step`).

Later stages append their own steps with :func:`add_step` (e.g. music features, FACT train/generate/evaluate);
``ctx`` carries the paths and results of earlier steps (``ctx.sample``, ``ctx.corpus``, ``ctx.music``,
``ctx.sequences``, ``ctx.truth``, ``ctx.results``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from aistpp.errors import AistppError

FPS = 60
# Sample sequences: valid AIST++ names (genre, situation, dancer, music, choreography), none of them in
# aistpp.triangulate.KNOWN_BAD_VIEWS (the pipeline blanks those views of the real recordings; the synthetic capture
# has its own missing view, below).
DEMO_SEQUENCES = ("gBR_sBM_cAll_d04_mBR0_ch02", "gPO_sBM_cAll_d10_mPO1_ch02", "gJS_sFM_cAll_d01_mJS3_ch04",
                  "gHO_sBM_cAll_d19_mHO5_ch02")
SMPL_SCALING = 93.0
FLOOR_Y_CM = 60.0  # like the AIST++ world frame, whose origin is not on the floor (feet at y ~ 60-70 cm)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoConfig:
    """out: output folder; sequences (1-4) x frames (60 fps); workers for the reconstruction; seed; fit: an
    :class:`aistpp.smpl.FitConfig` for the reconstruction (None = the stage default)."""

    out: str = "demo-output"
    sequences: int = 2
    frames: int = 240
    workers: int = 1
    seed: int = 0
    fit: object = None


@dataclass
class DemoContext:
    config: DemoConfig
    out: Path
    sample: Path = None  # official annotation tree of the sample
    truth: Path = None
    music: Path = None  # folder of <music_id>.wav
    corpus: Path = None
    sequences: list = field(default_factory=list)
    results: dict = field(default_factory=dict)


@dataclass
class DemoStep:
    title: str
    lines: list
    seconds: float = 0.0


STEPS: list[tuple[str, Callable]] = []


def add_step(name: str, fn: Callable, after: str | None = None) -> None:
    """Register a demo step ``fn(ctx) -> DemoStep`` (appended, or right after the step named ``after``)."""
    names = [n for n, _ in STEPS]
    if name in names:
        STEPS[names.index(name)] = (name, fn)
    elif after is not None and after in names:
        STEPS.insert(names.index(after) + 1, (name, fn))
    else:
        STEPS.append((name, fn))


# -- sample generation ------------------------------------------------------------------------------------------
def dance_motion(frames: int, bpm: float, seed: int = 0) -> dict:
    """Procedural dance of SMPL poses on the beat: knee bounces, arm swings, torso twist, head nods, and a slow
    walk around a circle. Returns smpl_poses (N, 72) float32 axis-angle, smpl_trans (N, 3) cm (before the floor
    offset), smpl_scaling (1,)."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / FPS
    phi = 2 * np.pi * t * bpm / 60.0 + rng.uniform(0, 2 * np.pi)
    a = rng.uniform(0.7, 1.3, 8)  # per-dancer style amplitudes
    pose = np.zeros((frames, 24, 3))
    bounce = 0.5 * (1 - np.cos(phi))  # 0..1 on every beat
    pose[:, 0, 1] = 0.5 * np.sin(phi / 8) * a[0]                    # global yaw, slow
    pose[:, 1, 0] = pose[:, 2, 0] = -0.35 * bounce * a[1]           # hips flex
    pose[:, 4, 0] = pose[:, 5, 0] = 0.7 * bounce * a[1]             # knees bend
    pose[:, 7, 0] = pose[:, 8, 0] = -0.3 * bounce * a[1]            # ankles
    pose[:, 3, 1] = 0.25 * np.sin(phi / 2) * a[2]                   # spine twist
    pose[:, 6, 2] = 0.12 * np.sin(phi / 2) * a[3]                   # side bend
    pose[:, 15, 0] = 0.2 * np.sin(phi) * a[4]                       # head nod
    pose[:, 16, 2] = -1.1 + 0.7 * np.sin(phi / 2) * a[5]            # left shoulder: arm down +- swing
    pose[:, 17, 2] = 1.1 + 0.7 * np.sin(phi / 2 + np.pi / 2) * a[5]
    pose[:, 16, 1] = 0.4 * np.sin(phi / 4) * a[6]
    pose[:, 17, 1] = -0.4 * np.sin(phi / 4 + 1.0) * a[6]
    pose[:, 18, 1] = -0.6 - 0.6 * np.abs(np.sin(phi / 2)) * a[7]   # elbows
    pose[:, 19, 1] = 0.6 + 0.6 * np.abs(np.cos(phi / 2)) * a[7]
    radius = rng.uniform(30, 60)
    w = 2 * np.pi / 8.0
    trans = np.stack([radius * np.sin(w * t), -6.0 * bounce, radius * np.cos(w * t)], -1)
    return {"smpl_poses": pose.reshape(frames, 72).astype(np.float32), "smpl_trans": trans.astype(np.float32),
            "smpl_scaling": np.array([SMPL_SCALING], np.float32)}


def beat_track(seconds: float, bpm: float, sr: int = 22050) -> np.ndarray:
    """A click track: a 1 kHz click on every beat and a 60 Hz kick on every bar's first beat; float32 mono."""
    n = int(round(seconds * sr))
    y = np.zeros(n, np.float32)
    beat = 60.0 / bpm
    click = np.sin(2 * np.pi * 1000 * np.arange(int(0.03 * sr)) / sr) * np.exp(-np.arange(int(0.03 * sr)) / (0.006 * sr))
    kick = np.sin(2 * np.pi * 60 * np.arange(int(0.15 * sr)) / sr) * np.exp(-np.arange(int(0.15 * sr)) / (0.04 * sr))
    for k, tb in enumerate(np.arange(0.0, seconds, beat)):
        i = int(round(tb * sr))
        for wave, amp in ((click, 0.5), (kick, 0.8 if k % 4 == 0 else 0.0)):
            m = min(len(wave), n - i)
            if m > 0 and amp:
                y[i:i + m] += amp * wave[:m]
    return np.clip(y, -1, 1).astype(np.float32)


def step_generate(ctx: DemoContext) -> DemoStep:
    from aistpp.io.annotations import write_keypoints2d, write_keypoints3d, write_mapping, write_motion
    from aistpp.io.cameras import save_cameras
    from aistpp.naming import parse_name, view_name
    from aistpp.smpl import keypoints_from_motion, load_body_model
    from aistpp.synth import synth_multiview
    from aistpp.triangulate import ring_cameras

    cfg = ctx.config
    if not 1 <= cfg.sequences <= len(DEMO_SEQUENCES):
        raise AistppError(f"demo sequences must be 1..{len(DEMO_SEQUENCES)}, got {cfg.sequences}")
    if cfg.frames < 30:
        raise AistppError(f"demo frames must be >= 30, got {cfg.frames}")
    ctx.sample = ctx.out / "sample" / "annotations"
    ctx.truth = ctx.out / "sample" / "truth"
    ctx.music = ctx.out / "sample" / "music"
    cams = ring_cameras()
    save_cameras(cams, ctx.sample / "cameras" / "setting1.json")
    body = load_body_model(None)
    ctx.sequences = list(DEMO_SEQUENCES[:cfg.sequences])
    write_mapping(ctx.sample / "cameras" / "mapping.txt", {s: "setting1" for s in ctx.sequences})
    lines = []
    for i, seq in enumerate(ctx.sequences):
        name = parse_name(seq)
        motion = dance_motion(cfg.frames, name.tempo, seed=cfg.seed + i)
        k3 = keypoints_from_motion(body, motion["smpl_poses"], motion["smpl_trans"], motion["smpl_scaling"])
        floor = np.nanmin(k3[..., 1]) - FLOOR_Y_CM  # put the lowest keypoint on the floor
        motion["smpl_trans"][:, 1] -= floor
        k3[..., 1] -= floor
        cap = synth_multiview(k3, cams, noise_px=2.5, drop_rate=0.03, low_conf_rate=0.05, outlier_rate=0.02,
                              swap_rate=0.01, seed=cfg.seed * 100 + i)
        kp2d, det = cap.keypoints2d.copy(), cap.det_scores.copy()
        missing = None
        if i == 1:  # like the two missing AIST++ videos: one view has no detections at all
            missing = 4
            kp2d[missing] = np.nan
            det[missing] = 0
            log.info("%s: camera %s left without detections on purpose (a missing video)", seq,
                     view_name(missing))
        write_keypoints2d(ctx.sample / "keypoints2d" / f"{seq}.pkl", kp2d, det, cap.timestamps)
        write_keypoints3d(ctx.truth / "keypoints3d" / f"{seq}.pkl", k3, k3)
        write_motion(ctx.truth / "motions" / f"{seq}.pkl", motion["smpl_poses"], motion["smpl_trans"],
                     motion["smpl_scaling"], 0.0)
        _write_wav(ctx.music / f"{name.music}.wav", beat_track(cfg.frames / FPS + 1.0, name.tempo))
        outl = cap.outlier.mean()
        lines.append(f"{seq}: {cfg.frames} frames, {name.tempo} BPM ({name.music}.wav), outliers {outl:.1%}"
                     + (f", camera {view_name(missing)} missing" if missing is not None else ""))
    lines.append(f"annotation tree: {ctx.sample}")
    return DemoStep("generate an AIST++-shaped sample (stand-in body, 9-camera ring)", lines)


def _write_wav(path: Path, y: np.ndarray, sr: int = 22050) -> None:
    from aistpp.io.atomic import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import soundfile as sf
    except ImportError:
        sf = None
    with atomic_path(path, suffix=".wav") as tmp:
        if sf is not None:
            sf.write(str(tmp), y, sr, subtype="PCM_16")
        else:  # the standard library's wave module (16-bit PCM)
            import wave

            with wave.open(str(tmp), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(sr)
                w.writeframes((np.clip(y, -1, 1) * 32767).astype("<i2").tobytes())


def step_reconstruct(ctx: DemoContext) -> DemoStep:
    from aistpp.pipeline import PipelineConfig, reconstruct

    ctx.corpus = ctx.out / "corpus"
    summary = reconstruct(ctx.sample, ctx.corpus, ctx.sequences, PipelineConfig(fit=ctx.config.fit),
                          workers=ctx.config.workers, progress=True)
    ctx.results["reconstruct"] = summary
    return DemoStep("reconstruct: triangulate -> SMPL fit -> corpus", summary.lines())


def mpjpe(a: np.ndarray, b: np.ndarray) -> float:
    """Mean per-joint position error (same units as the inputs) over the points finite in both."""
    d = np.linalg.norm(np.asarray(a, float) - np.asarray(b, float), axis=-1)
    return float(np.nanmean(d)) if np.isfinite(d).any() else float("nan")


def step_compare(ctx: DemoContext) -> DemoStep:
    from aistpp.corpus import Corpus
    from aistpp.io.annotations import AnnotationTree, read_keypoints3d
    from aistpp.smpl import keypoints_from_motion, load_body_model
    from aistpp.triangulate.dlt import triangulate_dlt

    c = Corpus(ctx.corpus)
    tree = AnnotationTree.open(ctx.sample)
    body = load_body_model(None)
    lines = ["MPJPE against the truth (cm): plain DLT | robust | optimized | SMPL fit keypoints"]
    rows = {}
    for seq in ctx.sequences:
        if seq not in c:
            lines.append(f"{seq}: not reconstructed ({c.failures().get(seq)})")
            continue
        truth = read_keypoints3d(ctx.truth / "keypoints3d" / f"{seq}.pkl")["keypoints3d"]
        d = c.read(seq, ("keypoints3d", "keypoints3d_optim", "smpl_poses", "smpl_trans", "smpl_scaling"))
        dlt = triangulate_dlt(tree.read("keypoints2d", seq)["keypoints2d"], tree.cameras("setting1"))
        dlt = getattr(dlt, "keypoints3d", dlt)
        fit = keypoints_from_motion(body, d["smpl_poses"], d["smpl_trans"], d["smpl_scaling"])
        row = {"dlt": mpjpe(dlt, truth), "robust": mpjpe(d["keypoints3d"], truth),
               "optim": mpjpe(d["keypoints3d_optim"], truth), "smpl": mpjpe(fit, truth)}
        rows[seq] = row
        lines.append(f"{seq}: {row['dlt']:.2f} | {row['robust']:.2f} | {row['optim']:.2f} | {row['smpl']:.2f}")
    c.close()
    ctx.results["mpjpe_cm"] = rows
    return DemoStep("compare with the known truth", lines)


def step_verify(ctx: DemoContext) -> DemoStep:
    from aistpp.corpus import export_official, summarize_corpus, verify_corpus

    rep = verify_corpus(ctx.corpus)
    counts = export_official(ctx.corpus, ctx.out / "export")
    s = summarize_corpus(ctx.corpus)
    ctx.results["verify_ok"] = rep.ok
    lines = rep.lines()[1:] + [f"corpus: {s['sequences']} sequences, {s['frames']} frames, {s['shards']} shard(s), "
                               f"{s['bytes'] / 2**20:.2f} MiB at {ctx.corpus}",
                               "official-format export: " + ", ".join(f"{k} {v}" for k, v in counts.items())
                               + f" in {ctx.out / 'export'}"]
    return DemoStep("verify the corpus and export the official format", lines)


def step_fact(ctx: DemoContext) -> DemoStep:
    """Music features, tiny FACT train / generate / evaluate on the demo corpus (:func:`aistpp.models.demo_step`)."""
    from aistpp.models.demo import demo_step
    from aistpp.models.metrics import METRIC_KEYS

    s = demo_step(ctx.corpus, Path(ctx.out) / "fact", music_dir=ctx.music, seed=getattr(ctx.config, "seed", 0))
    ctx.results["fact"] = s
    tr = s["train"]
    if tr["first_loss"] is None:  # a re-run in the same folder: the training had already finished
        head = (f"tiny FACT: already trained {tr['steps']} steps on {tr['windows']} window(s) (resumed from "
                f"{tr['checkpoint']}; losses in {Path(s['out']) / 'run' / 'log.csv'})")
    else:
        head = (f"tiny FACT: {tr['steps']} steps on {tr['windows']} window(s), loss {tr['first_loss']:.4f} -> "
                f"{tr['last_loss']:.4f} ({s['seconds']['train']:.1f} s)")
    lines = [head,
             f"generated {len(s['generated'])} sequence(s) into {s['out']}/generated "
             f"({s['seconds']['generate']:.1f} s)"]
    reasons: dict[str, list] = {}
    for row in ("ground_truth", "generated"):
        shown = []
        for k in METRIC_KEYS:  # only what this pool can give; the others once, with why (pool_verdicts)
            value, why = s["verdicts"].get(row, {}).get(k, (None, "no motions scored"))
            if why is None:
                shown.append(f"{k} {value:.3f}")
            else:
                reasons.setdefault(why, []).append(f"{k} ({row})")
        lines.append(f"{row}: " + (", ".join(shown) or "nothing computable") + " (FACT protocol)")
    lines += [f"not computable on this pool: {', '.join(keys)}: {why}" for why, keys in reasons.items()]
    lines.append("a few synthetic sequences" + (" and the stand-in body" if s["stand_in_body"] else "")
                 + ": the numbers only show that the stages connect (all notes: metrics.json)")
    return DemoStep("FACT: train tiny, generate, evaluate", lines)


add_step("generate", step_generate)
add_step("reconstruct", step_reconstruct)
add_step("compare", step_compare)
add_step("verify", step_verify)
add_step("fact", step_fact)


STAMP = "demo-config.json"
DEMO_FOLDERS = ("sample", "corpus", "fact", "export")


def _stamp(config: DemoConfig) -> dict:
    from aistpp import __version__
    from aistpp.corpus.manifest import plain

    fit = config.fit
    if fit is not None:
        from dataclasses import asdict, is_dataclass

        fit = fit.to_dict() if hasattr(fit, "to_dict") else asdict(fit) if is_dataclass(fit) else repr(fit)
    return plain({"sequences": config.sequences, "frames": config.frames, "seed": config.seed, "fit": fit,
                  "aistpp": __version__})


def prepare_out(config: DemoConfig, out: Path) -> list[str]:
    """Make ``out`` safe to (re)run in: the same demo config resumes (every step is idempotent); another one
    (``--seed``, ``--frames``...) starts from scratch, removing the demo's own folders (sample, corpus, fact,
    export) so no step compares or trains against an earlier run's results. Returns what was removed."""
    import json
    import logging
    import shutil

    from aistpp.io.atomic import atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    stamp_path = out / STAMP
    want = _stamp(config)
    try:
        have = json.loads(stamp_path.read_text())
    except FileNotFoundError:  # no stamp: an older demo's output (its corpus and truth) counts as another config
        have = {} if (out / "corpus" / "manifest.json").is_file() and (out / "sample" / "truth").is_dir() else None
    except (ValueError, UnicodeDecodeError):
        have = {}
    removed = []
    if have is not None and have != want:
        for name in DEMO_FOLDERS:
            if (out / name).is_dir():
                shutil.rmtree(out / name)
                removed.append(name)
        if removed:
            logging.getLogger(__name__).info("demo config changed: removed %s from %s", ", ".join(removed), out)
    atomic_write_text(stamp_path, json.dumps(want, indent=1, sort_keys=True) + "\n")
    return removed


def run_demo(config: DemoConfig = DemoConfig(), ctx: DemoContext | None = None,
             on_start: Callable[[int, int, str], None] | None = None):
    """Run every registered step in order; yields each :class:`DemoStep` as it finishes (with its seconds).
    Pass ``ctx`` to inspect the paths and results afterwards; ``on_start(number, count, name)`` is called before
    each step starts (the CLI prints its header then, so a long step is not silent). Re-running in the same folder
    resumes; another config starts afresh there (:func:`prepare_out`)."""
    ctx = ctx or DemoContext(config, Path(config.out))
    prepare_out(config, ctx.out)
    steps = list(STEPS)
    for i, (name, fn) in enumerate(steps):
        if on_start is not None:
            on_start(i + 1, len(steps), name)
        t = time.perf_counter()
        step = fn(ctx)
        step.seconds = time.perf_counter() - t
        yield step
    return ctx
