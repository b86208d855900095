"""Verbs for SMPL: ``body-model standin`` (write the generated stand-in model) and ``fit-smpl`` (one sequence)."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("aistpp.smpl")


def register(sub) -> None:
    p = sub.add_parser(
        "body-model", help="body model files (the generated SMPL stand-in)",
        description="Body model utilities. 'standin' writes the project's generated stand-in SMPL model: SMPL's file "
                    "format, sizes and 24-joint tree with human proportions, usable wherever a SMPL .pkl is "
                    "expected (it is not the licensed SMPL body).")
    bsub = p.add_subparsers(dest="body_model_verb", metavar="ACTION")
    s = bsub.add_parser("standin", help="write the stand-in SMPL model (.pkl)",
                        description="Write the generated stand-in SMPL model as a numpy-only pkl, atomically.")
    s.add_argument("--out", required=True, metavar="PATH",
                   help="output .pkl, or a directory (writes PATH/SMPL_MALE.pkl)")
    s.add_argument("--seed", type=int, default=0, help="generator seed (default 0; the output is deterministic)")
    s.add_argument("--blend-shapes", action="store_true",
                   help="give it pose-corrective and all ten shape blend shapes of SMPL's magnitude (default: "
                        "posedirs zero, two shape components)")
    s.set_defaults(func=cmd_standin)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    p = sub.add_parser(
        "fit-smpl", help="fit SMPL motion to one sequence's 3D keypoints",
        description="Fit SMPL (betas 0, one global scale) to COCO-17 3D keypoints in cm and write the official "
                    "motions pkl (smpl_poses (N,72), smpl_trans cm, smpl_scaling (1,), smpl_loss). Whole sequence "
                    "in one batch (chunks for long ones), staged L-BFGS with a robust, confidence-weighted loss, "
                    "temporal smoothness and joint limits; GPU when present.")
    p.add_argument("--keypoints3d", required=True, metavar="FILE.pkl",
                   help="official keypoints3d pkl (keypoints3d / keypoints3d_optim (N,17,3) cm)")
    p.add_argument("--smpl-model", metavar="PATH",
                   help="SMPL .pkl or directory with SMPL_MALE.pkl / basicModel_m_lbs_10_207_0_v1.0.0.pkl; "
                        "default: the generated stand-in (not the real SMPL body)")
    p.add_argument("--out", required=True, metavar="motions.pkl", help="output motions pkl (written atomically)")
    p.add_argument("--key", choices=("auto", "keypoints3d_optim", "keypoints3d"), default="auto",
                   help="which array to fit (auto: keypoints3d_optim when present, like the official pipeline)")
    p.add_argument("--iterations", type=int, default=None, help="L-BFGS iterations of the main stage")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--canonical", metavar="FILE.npz",
                   help="also write canonical SMPL (poses (N,72), trans in metres = smpl_trans / smpl_scaling)")
    p.set_defaults(func=cmd_fit_smpl)


def cmd_standin(args) -> int:
    from aistpp.smpl.standin import write_standin

    path = write_standin(args.out, seed=args.seed, blend_shapes=args.blend_shapes)
    log.info("wrote the stand-in SMPL model to %s", path)
    return 0


def cmd_fit_smpl(args) -> int:
    import dataclasses

    import numpy as np

    from aistpp.errors import AistppError
    from aistpp.io.annotations import read_keypoints3d, write_motion
    from aistpp.smpl import load_body_model
    from aistpp.smpl.fit import FitConfig, default_device, fit_sequence

    data = read_keypoints3d(args.keypoints3d)
    key = args.key
    if key == "auto":
        key = "keypoints3d_optim" if "keypoints3d_optim" in data else "keypoints3d"
    if key not in data:
        raise AistppError(f"no {key} in this file", args.keypoints3d)
    device = args.device or default_device()
    if args.smpl_model is None:
        log.info("no --smpl-model given: using the generated stand-in body model (not the real SMPL body)")
    model = load_body_model(args.smpl_model, device=device)
    config = FitConfig()
    if args.iterations is not None:
        config = dataclasses.replace(config, iterations=args.iterations)
    fit = fit_sequence(data[key], model, config=config)
    write_motion(args.out, fit.smpl_poses, fit.smpl_trans, fit.smpl_scaling, fit.smpl_loss)
    if args.canonical:
        from aistpp.io.atomic import atomic_path

        can = fit.canonical()
        with atomic_path(Path(args.canonical), suffix=".npz") as tmp:
            np.savez(tmp, **can)
    log.info("fit %d frames of %s (%s): scale %.2f, loss %.3f cm^2, median error %.2f cm -> %s",
             len(fit.smpl_poses), Path(args.keypoints3d).name, key, float(fit.smpl_scaling[0]), fit.smpl_loss,
             float(np.nanmedian(fit.per_frame_error)), args.out)
    return 0
