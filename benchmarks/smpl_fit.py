"""SMPL fitting: ours (aistpp.smpl.fit_sequence) against the official AIST++ recipe, on equal work.

Official recipe (aistplusplus_api processing/run_estimate_smpl.py): smplx SMPL with parameters at their defaults
(pose 0, translation 0, scale 1), plain SGD for 10,000 steps on the MSE between the model's COCO-17 points and the
keypoints; learning rates: translation 100, scale 1, global orientation 0.1 from step 100, body pose 0.1 from step
400.

Equal work: both run on the SAME keypoint-only forward (24 joints + 5 face vertices, tested equal to smplx), same
body model, same data, same process; the headline ratio is ours against the official recipe replayed for
``--official-steps`` steps (default the full 10,000; fewer are timed and EXTRAPOLATED linearly to 10,000, and the
printout says so; its error is then the error after that many steps). For information only, the official code's
own forward (full smplx, all 6,890 vertices) is timed for ``--timing-steps`` steps and extrapolated.

Data (``--data``):
- ``truth`` (default): known truth. The real poses of gBR_sBM_cAll_d04_mBR2_ch08 (official motions) made
  plausible (knees and elbows hinges), tiled forward/backward to ``--frames`` frames, through the blend-shaped
  stand-in body (pose and shape blend shapes), plus 2 cm Gaussian noise per coordinate. Errors are against the
  clean keypoints and the true SMPL joints.
- ``real``: the official keypoints3d_optim of the same sequence, tiled. No truth: the figures are RESIDUALS (mean
  distance to the fitted keypoints, MSE), with the plain stand-in.

Run: ``python benchmarks/smpl_fit.py [--data truth|real] [--frames 1200] [--official-steps 10000]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aistpp.io.annotations import read_keypoints3d, read_motion  # noqa: E402
from aistpp.smpl import (FACE_VERTEX_IDS, KeypointLayer, joints_from_motion, keypoints_from_motion,  # noqa: E402
                         load_body_model, write_standin)
from aistpp.smpl.fit import fit_sequence  # noqa: E402
from aistpp.smpl.joints import COCO17_FROM_SMPL  # noqa: E402

SEQUENCE = "gBR_sBM_cAll_d04_mBR2_ch08"
OFFICIAL_STEPS = 10_000


ANNOTATIONS = ROOT.parent / "shared" / "aistpp-data" / "annotations"


def pingpong(a: np.ndarray, n: int) -> np.ndarray:
    """Tile along the first axis forward, backward, forward ... to length n (continuous motion)."""
    reps = [a if i % 2 == 0 else a[::-1] for i in range(-(-n // len(a)))]
    return np.concatenate(reps)[:n]


def hinged(poses: np.ndarray) -> np.ndarray:
    """Knees and elbows made hinges without hyper-extension (as in tests/test_smpl_fit.py's known truth)."""
    p = np.array(poses, np.float64)
    p[:, [13, 14, 16, 17, 56, 59]] = 0.0
    p[:, 12], p[:, 15] = np.maximum(p[:, 12], 0), np.maximum(p[:, 15], 0)
    p[:, 55], p[:, 58] = np.minimum(p[:, 55], 0), np.maximum(p[:, 58], 0)
    return p.astype(np.float32)


def real_keypoints(frames: int) -> np.ndarray:
    k = read_keypoints3d(ANNOTATIONS / "keypoints3d" / f"{SEQUENCE}.pkl")["keypoints3d_optim"]
    return pingpong(k, frames)


def known_truth(model, frames: int, seed: int = 0):
    """(noisy keypoints, clean keypoints, true joints) in cm."""
    m = read_motion(ANNOTATIONS / "motions" / f"{SEQUENCE}.pkl")
    poses, trans = pingpong(hinged(m["smpl_poses"]), frames), pingpong(m["smpl_trans"], frames)
    clean = keypoints_from_motion(model, poses, trans, m["smpl_scaling"])
    joints = joints_from_motion(model, poses, trans, m["smpl_scaling"])
    noisy = clean + np.random.default_rng(seed).normal(0, 2.0, clean.shape)
    return noisy, clean, joints


def official_learning_rates(step: int, base_lr: float = 100.0):
    """(transl, scaling, global_orient, body_pose) learning rates of the official get_optimizer."""
    return (base_lr, base_lr * 0.01, 0.0 if step < 100 else base_lr * 0.001, 0.0 if step < 400 else base_lr * 0.001)


def official_sgd(points_fn, target: torch.Tensor, steps: int, log_every: int = 0):
    """The official recipe: plain SGD on MSE(points, target). points_fn(orient, body) -> (N, 17, 3) at unit scale.
    Returns (orient, body, transl, scaling, loss)."""
    n = target.shape[0]
    orient = torch.zeros(n, 3, requires_grad=True)
    body = torch.zeros(n, 69, requires_grad=True)
    transl = torch.zeros(n, 3, requires_grad=True)
    scaling = torch.ones(1, requires_grad=True)
    loss = torch.tensor(float("nan"))
    for step in range(steps):
        pred = points_fn(orient, body) * scaling + transl[:, None]
        loss = torch.nn.functional.mse_loss(pred, target)
        for p in (orient, body, transl, scaling):
            p.grad = None
        loss.backward()
        with torch.no_grad():
            for p, lr in zip((transl, scaling, orient, body), official_learning_rates(step)):
                if lr:
                    p -= lr * p.grad
        if log_every and step % log_every == 0:
            print(f"    official step {step:5d}: mse {loss.item():.3f} cm^2", flush=True)
    return orient.detach(), body.detach(), transl.detach(), scaling.detach(), float(loss.detach())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", choices=("truth", "real"), default="truth",
                    help="truth: known truth with 2 cm noise (errors); real: official keypoints (residuals only)")
    ap.add_argument("--frames", type=int, default=1200, help="frames (the sequence tiled forward/backward)")
    ap.add_argument("--official-steps", type=int, default=OFFICIAL_STEPS,
                    help="steps of the official recipe replayed (default 10,000 = the full recipe; fewer are "
                         "extrapolated linearly for its time)")
    ap.add_argument("--timing-steps", type=int, default=5,
                    help="official steps timed with the full smplx forward (information only)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for the official recipe (ours uses 1)")
    args = ap.parse_args()

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    if args.data == "truth":
        model = load_body_model(write_standin(Path(tempfile.mkdtemp()) / "SMPL_MALE.pkl", blend_shapes=True))
        target_np, clean, true_joints = known_truth(model, args.frames)
        what = "known truth (hinged official poses through the blend-shaped stand-in, 2 cm noise)"
    else:
        model = load_body_model()
        target_np = real_keypoints(args.frames)
        clean = true_joints = None
        what = "official keypoints3d_optim (no truth: residuals), stand-in body"
    target = torch.as_tensor(target_np, dtype=torch.float32)
    n = len(target_np)
    print(f"SMPL fit benchmark: {n} frames of {SEQUENCE} (forward/backward), {what}; torch {torch.__version__}, "
          f"{os.cpu_count()} cores, load average {load:.1f} at start")

    def report(name, poses, trans, scaling, seconds):
        kp = keypoints_from_motion(model, poses, trans, scaling)
        line = (f"{name}: {seconds:8.1f} s   residual: mean keypoint distance to the target "
                f"{np.linalg.norm(kp - target_np, axis=-1).mean():.3f} cm, mse {((kp - target_np) ** 2).mean():.3f} "
                f"cm^2")
        if clean is None:
            print(line)
            return float("nan")
        kp_err = float(np.linalg.norm(kp - clean, axis=-1).mean())
        j_err = float(np.linalg.norm(joints_from_motion(model, poses, trans, scaling) - true_joints, axis=-1).mean())
        print(line + f"\n{'':10s}error against the truth: keypoints {kp_err:.3f} cm, SMPL joints {j_err:.3f} cm")
        return kp_err

    # --- ours
    t0 = time.perf_counter()
    fit = fit_sequence(target_np, model)
    ours_s = time.perf_counter() - t0
    ours_err = report("ours    ", fit.smpl_poses, fit.smpl_trans, fit.smpl_scaling, ours_s)

    # --- official recipe on the same keypoint-only forward
    torch.set_num_threads(args.threads)
    layer = KeypointLayer(model)

    def fast_points(orient, body):
        return layer.keypoints(torch.cat([orient, body], dim=1))

    t0 = time.perf_counter()
    o, b, tr, sc, mse = official_sgd(fast_points, target, args.official_steps,
                                     log_every=max(1, args.official_steps // 5))
    replay_s = time.perf_counter() - t0
    official_s = replay_s / args.official_steps * OFFICIAL_STEPS
    full = args.official_steps >= OFFICIAL_STEPS
    poses = torch.cat([o, b], dim=1).numpy()
    off_err = report("official", poses, tr.numpy(), sc.numpy().reshape(1), official_s)
    print(f"{'':10s}official recipe replayed for {args.official_steps} steps in {replay_s:.1f} s, same forward, "
          f"{args.threads} thread(s)" + ("" if full else f"; its time EXTRAPOLATED to {OFFICIAL_STEPS} steps, its "
                                         f"error is after ONLY {args.official_steps} steps"))

    # --- information: the official code's own forward (all vertices), extrapolated
    smpl_index = list(range(24)) + [24 + [332, 6260, 2800, 4071, 583].index(v) for v in FACE_VERTEX_IDS]
    coco = torch.as_tensor(COCO17_FROM_SMPL)

    def full_points(orient, body):
        out = model(global_orient=orient, body_pose=body, betas=torch.zeros(orient.shape[0], 10),
                    transl=torch.zeros(orient.shape[0], 3))
        # smplx joints: 24 SMPL joints, then nose, right eye, left eye, right ear, left ear, ...
        return out.joints[:, smpl_index][:, coco]

    official_sgd(full_points, target, 1)  # warm-up
    t0 = time.perf_counter()
    official_sgd(full_points, target, args.timing_steps)
    per_step = (time.perf_counter() - t0) / args.timing_steps
    print(f"for information: the official code's forward (full smplx, 6,890 vertices) costs {per_step:.3f} s/step "
          f"(measured over {args.timing_steps} steps) -> {per_step * OFFICIAL_STEPS:.0f} s EXTRAPOLATED to "
          f"{OFFICIAL_STEPS} steps; not the comparison below (different forward)")
    published = read_motion(ANNOTATIONS / "motions" / f"{SEQUENCE}.pkl")
    print(f"for reference: the released motions of {SEQUENCE} (official recipe, real SMPL, 576 frames) report "
          f"smpl_loss (mse) {published['smpl_loss']:.3f} cm^2")
    err = "" if clean is None else (f" at {ours_err:.2f} vs {off_err:.2f} cm keypoint error against the truth")
    print(f"RESULT (equal work: same forward, same data): ours {ours_s:.1f} s, official recipe "
          f"{official_s:.0f} s{'' if full else ' (extrapolated)'} = {official_s / ours_s:.0f}x{err}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
