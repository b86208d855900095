"""SMPL fitting: ours (aistpp.smpl.fit_sequence) against the official AIST++ recipe, same body model and data.

Official recipe (aistplusplus_api processing/run_estimate_smpl.py): smplx SMPL with parameters at their defaults
(pose 0, translation 0, scale 1), plain SGD for 10,000 steps on the MSE between the model's COCO-17 points and the
keypoints; learning rates: translation 100, scale 1, global orientation 0.1 from step 100, body pose 0.1 from step
400. Here:

- its *time* is measured with the official forward (full smplx SMPL, all 6,890 vertices, as the official code
  calls it) for ``--timing-steps`` steps and extrapolated to 10,000 steps (said in the output);
- its *error* comes from running its exact optimization trajectory for ``--official-steps`` steps (default the full
  10,000) with our keypoint-only forward, which computes the same 24 joints and face vertices (tested equal to
  smplx), so the same gradients, much faster.

Data: a 1,200-frame sequence = the official keypoints3d_optim of gBR_sBM_cAll_d04_mBR2_ch08 (576 frames) played
forward, backward, forward (continuous motion), fitted with the generated stand-in body model. Error: mean keypoint
distance (cm) to the fitted keypoints, and the official MSE (cm^2).

Run: ``.venv/bin/python benchmarks/smpl_fit.py [--official-steps 10000] [--timing-steps 5] [--threads 2]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aistpp.io.annotations import read_keypoints3d, read_motion  # noqa: E402
from aistpp.smpl import FACE_VERTEX_IDS, KeypointLayer, keypoints_from_motion, load_body_model  # noqa: E402
from aistpp.smpl.fit import fit_sequence  # noqa: E402
from aistpp.smpl.joints import COCO17_FROM_SMPL  # noqa: E402

SEQUENCE = "gBR_sBM_cAll_d04_mBR2_ch08"
OFFICIAL_STEPS = 10_000


def sequence_1200() -> np.ndarray:
    path = ROOT.parent / "shared" / "aistpp-data" / "annotations" / "keypoints3d" / f"{SEQUENCE}.pkl"
    k = read_keypoints3d(path)["keypoints3d_optim"]
    return np.concatenate([k, k[::-1], k])[:1200]


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
    ap.add_argument("--official-steps", type=int, default=OFFICIAL_STEPS,
                    help="steps of the official trajectory run for its error (default 10,000 = the full recipe)")
    ap.add_argument("--timing-steps", type=int, default=5, help="official steps timed with the full smplx forward")
    ap.add_argument("--threads", type=int, default=2, help="torch threads for the official recipe (2 cores)")
    args = ap.parse_args()

    model = load_body_model()
    target_np = sequence_1200()
    target = torch.as_tensor(target_np, dtype=torch.float32)
    n = len(target_np)
    print(f"SMPL fit benchmark: {n} frames ({SEQUENCE} keypoints3d_optim, forward/backward/forward), "
          f"stand-in body model, torch {torch.__version__}, {torch.get_num_threads()} threads available")

    # --- ours
    t0 = time.perf_counter()
    fit = fit_sequence(target_np, model)
    ours_s = time.perf_counter() - t0
    ours_kp = keypoints_from_motion(model, fit.smpl_poses, fit.smpl_trans, fit.smpl_scaling)
    ours_err = float(np.linalg.norm(ours_kp - target_np, axis=-1).mean())
    ours_mse = float(((ours_kp - target_np) ** 2).mean())
    print(f"ours:     {ours_s:8.1f} s   mean keypoint error {ours_err:.3f} cm   mse {ours_mse:.3f} cm^2   "
          f"scale {fit.smpl_scaling[0]:.2f}")

    # --- official: time per step with the official forward (full smplx SMPL), extrapolated
    torch.set_num_threads(args.threads)
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
    official_s = per_step * OFFICIAL_STEPS
    print(f"official: {official_s:8.1f} s   (measured {per_step:.3f} s/step with the full smplx forward over "
          f"{args.timing_steps} steps, {args.threads} threads; extrapolated to {OFFICIAL_STEPS} steps)")

    # --- official: its error, running its trajectory with the keypoint-only forward (same points, same gradients)
    layer = KeypointLayer(model)
    torch.set_num_threads(1)

    def fast_points(orient, body):
        return layer.keypoints(torch.cat([orient, body], dim=1))

    t0 = time.perf_counter()
    o, b, tr, sc, mse = official_sgd(fast_points, target, args.official_steps,
                                     log_every=max(1, args.official_steps // 10))
    replay_s = time.perf_counter() - t0
    with torch.no_grad():
        pred = fast_points(o, b) * sc + tr[:, None]
    off_err = float(torch.linalg.norm(pred - target, dim=-1).mean())
    steps_note = "the full recipe" if args.official_steps >= OFFICIAL_STEPS else \
        f"ONLY {args.official_steps} of its {OFFICIAL_STEPS} steps"
    print(f"official: error after {args.official_steps} steps ({steps_note}; replayed in {replay_s:.0f} s with the "
          f"keypoint-only forward): mean keypoint error {off_err:.3f} cm   mse {mse:.3f} cm^2   scale "
          f"{float(sc):.2f}")

    published = read_motion(ROOT.parent / "shared" / "aistpp-data" / "annotations" / "motions" / f"{SEQUENCE}.pkl")
    print(f"for reference: the released motions of {SEQUENCE} (official recipe, real SMPL, 576 frames) report "
          f"smpl_loss (mse) {published['smpl_loss']:.3f} cm^2")
    speedup = official_s / ours_s
    print(f"RESULT: ours is {speedup:.0f}x faster than the official recipe (target >= 20x) at "
          f"{ours_err:.3f} cm vs {off_err:.3f} cm mean keypoint error "
          f"({'<=' if ours_err <= off_err else '>'} official; target <=)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
