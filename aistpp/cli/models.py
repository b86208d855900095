"""Verbs of the FACT model: ``train``, ``generate``, ``import-mint``, ``evaluate``."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from aistpp.errors import AistppError

log = logging.getLogger("aistpp.models")


def register(sub) -> None:
    p = sub.add_parser(
        "train", help="train FACT on a corpus split (resumable)",
        description="Train FACT (mint fact_v5_deeper_t10_cm12 defaults: batch 32, Adam eps 1e-7, lr 1e-4 -> 1e-5 "
                    "at 100k -> 1e-6 at 150k) on the FACT windows of a corpus split. Writes RUN/config.json, "
                    "RUN/log.csv and RUN/checkpoints/; --resume continues bit-exactly from the newest checkpoint. "
                    "Multi-GPU: launch with torchrun (DDP is used when WORLD_SIZE > 1).")
    p.add_argument("--corpus", required=True, metavar="DIR", help="corpus with SMPL motion and music features")
    p.add_argument("--split", default="crossmodal_train",
                   help="split name (crossmodal_train, ...) or a file of sequence names (default crossmodal_train)")
    p.add_argument("--preset", default="paper", choices=("paper", "tiny"), help="model size (default paper)")
    p.add_argument("--out", required=True, metavar="RUN", help="run directory")
    p.add_argument("--steps", type=int, default=200_000, help="total optimizer steps (default 200000)")
    p.add_argument("--batch-size", type=int, default=32, help="global batch size (default 32)")
    p.add_argument("--lr", type=float, default=1e-4, help="initial learning rate (default 1e-4)")
    p.add_argument("--lr-schedule", default="100000:1e-5,150000:1e-6", metavar="STEP:LR[,STEP:LR]",
                   help="learning-rate drops (default 100000:1e-5,150000:1e-6; 'none' for a constant rate)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in RUN")
    p.add_argument("--checkpoint-every", type=int, default=1000, metavar="N", help="steps between checkpoints")
    p.add_argument("--keep-checkpoints", type=int, default=3, metavar="N", help="newest N kept (0 = all)")
    p.add_argument("--log-every", type=int, default=10, metavar="N", help="steps between log rows")
    p.add_argument("--amp", choices=("auto", "off", "bf16", "fp16"), default="auto",
                   help="mixed precision on CUDA (auto: bf16 where supported, else fp16; CPU: off)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of weights, data order and windows (default 0)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--no-cache", action="store_true", help="read windows from HDF5 instead of caching in RAM")
    p.add_argument("--sampling", choices=("slots", "mint"), default="slots",
                   help="training windows per epoch: slots = one every 60 frames of each sequence (default), mint = "
                        "one random window per sequence per pass, as mint trains")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "generate", help="autoregressive FACT dance generation from a seed motion and music",
        description="Generate FRAMES frames after a 120-frame seed (mint: keep the first predicted frame, slide "
                    "the motion and music windows). Writes per sequence DIR/<seed>_<music>.npy (seed + "
                    "generated, 225-d), .pkl (official motions format) and .json (metadata and music beats).")
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="checkpoint file or run directory")
    p.add_argument("--seed-motion", nargs="+", metavar="SEQ",
                   help="corpus sequence name(s) (with --corpus) or official motions .pkl file(s)")
    p.add_argument("--split", metavar="NAME", help="seed with every corpus sequence of this split instead")
    p.add_argument("--music", metavar="FILE",
                   help="music: audio file, .npy of (T, 35) features, or a music id in --corpus (default: the "
                        "seed sequence's own music from --corpus)")
    p.add_argument("--corpus", metavar="DIR", help="corpus to read seed motions and music from")
    p.add_argument("--frames", type=int, default=1200, help="frames to generate (default 1200 = 20 s)")
    p.add_argument("--snap", choices=("output", "step", "none"), default="output",
                   help="SVD-snap rotations in the output only (default), also at every step, or not at all "
                        "(none: raw network outputs in the .npy, as mint saves them; evaluate snaps when scoring)")
    p.add_argument("--music-align", choices=("timestamps", "start"), default="timestamps",
                   help="a corpus seed's own music: skip rint(timestamps[0]*60/1e6) music frames (default) or "
                        "pair motion frame 0 with music frame 0 (start: mint's preprocessing)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--device", default=None, help="cpu, cuda ... (default: cuda if available)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser(
        "import-mint", help="convert a google-research/mint FACT checkpoint (TensorFlow) into an aistpp checkpoint",
        description="Read mint's TensorFlow checkpoint (PREFIX.index + PREFIX.data-*, no TensorFlow needed) and its "
                    "text-format model config, map every model variable into aistpp's FACT and write a checkpoint "
                    "that 'aistpp generate' and 'aistpp evaluate' load and 'aistpp train --resume' continues "
                    "(fresh Adam state at mint's step). Optimizer slots and global_step are skipped.")
    p.add_argument("--checkpoint", required=True, metavar="PREFIX",
                   help="mint checkpoint prefix (e.g. ckpt-215), its .index file, or the folder with TensorFlow's "
                        "'checkpoint' file (its newest checkpoint)")
    p.add_argument("--config", required=True, metavar="FILE.config",
                   help="mint's text-format pipeline config (e.g. fact_v5_deeper_t10_cm12.config)")
    p.add_argument("--out", required=True, metavar="OUT",
                   help="output checkpoint (.pt), or a run directory (gets checkpoints/step_<mint step>.pt)")
    p.add_argument("--no-verify", action="store_true", help="skip the CRC32C check of the tensor data")
    p.set_defaults(func=cmd_import_mint)

    p = sub.add_parser(
        "evaluate", help="FID_k, FID_g, Dist_k, Dist_g, BeatAlign of generated motions and the ground truth",
        description="Score a folder written by 'aistpp generate' against the corpus ground truth on SMPL joints. "
                    "--profile picks a published protocol (bailando: Bailando's evaluation code, the common "
                    "AIST++ table; fact: mint's published metric scripts); the switches override single choices. Every switch is printed and stored with "
                    "the result.")
    p.add_argument("--generated", required=True, metavar="DIR", help="folder of generated motions (.npy + .json)")
    p.add_argument("--corpus", required=True, metavar="DIR", help="corpus with the ground-truth motions and music")
    p.add_argument("--smpl-model", metavar="PATH",
                   help="SMPL model (.pkl or folder with SMPL_MALE.pkl); default: the generated stand-in, whose "
                        "numbers are NOT comparable with published ones")
    p.add_argument("--profile", choices=("bailando", "fact"), default="bailando",
                   help="protocol defaults (default bailando)")
    p.add_argument("--accel-bug", action=argparse.BooleanOptionalAction, default=None,
                   help="keep fairmotion's acceleration precedence bug (both profiles: the peers' extractors still "
                        "have it) or fix it")
    p.add_argument("--geometric", choices=("fixed", "buggy"), help="geometric feature constants")
    p.add_argument("--recentre", action=argparse.BooleanOptionalAction, default=None,
                   help="subtract the first frame's root (bailando) or not (fact)")
    p.add_argument("--crop", metavar="N|none",
                   help="generated motions: frames after the seed kept for the features (bailando 1200, fact none)")
    p.add_argument("--gt-crop", metavar="N|none",
                   help="ground-truth and reference motions: frames kept for the features (both profiles: none)")
    p.add_argument("--reference", choices=("test", "all"),
                   help="FID reference pool: the ground-truth set or all corpus motions (both profiles: all)")
    p.add_argument("--beat-align", choices=("fact", "bailando"), help="BeatAlign variant")
    p.add_argument("--test-split", metavar="NAME|FILE",
                   help="ground-truth row (and 'test' reference pool): split name(s) joined by '+' or a names "
                        "file (bailando crossmodal_test, fact crossmodal_val+crossmodal_test as mint's beat "
                        "script; 'all' = every corpus motion)")
    p.add_argument("--out", metavar="FILE", help="write the result as JSON (default GENERATED/metrics.json)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_evaluate)


def _parse_schedule(text: str) -> tuple:
    if text.strip().lower() in ("", "none"):
        return ()
    out = []
    for part in text.split(","):
        try:
            step, lr = part.split(":")
            out.append((int(step), float(lr)))
        except ValueError:
            raise AistppError(f"--lr-schedule: cannot parse {part!r}; expected STEP:LR") from None
    return tuple(out)


def cmd_train(args) -> int:
    from aistpp.data import FACTDataset
    from aistpp.models.fact import build_fact
    from aistpp.models.train import TrainConfig, latest_checkpoint, load_checkpoint, train

    cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, learning_rate=args.lr,
                      lr_schedule=_parse_schedule(args.lr_schedule), checkpoint_every=args.checkpoint_every,
                      keep_checkpoints=args.keep_checkpoints, log_every=args.log_every, seed=args.seed,
                      amp=args.amp, num_workers=args.workers)
    model = build_fact(args.preset)
    if args.resume:
        ck = latest_checkpoint(args.out)
        if ck is not None:
            model_cfg = load_checkpoint(ck)["model_config"]
            if model_cfg != model.config.to_dict():
                raise AistppError(f"--preset {args.preset} differs from the run's model; resume with the preset "
                                  "it was started with", args.out)
    dataset = FACTDataset(args.corpus, split=args.split, seed=args.seed, cache=not args.no_cache,
                          progress=True, sampling=args.sampling)
    info = {"corpus": str(args.corpus), "split": str(args.split), "windows": len(dataset),
            "sequences": len(dataset.sequences), "window_config": dataset.config.to_dict()}
    log.info("training %s FACT (%.1f M parameters) on %d windows of %d sequences", args.preset,
             model.num_parameters() / 1e6, len(dataset), len(dataset.sequences))
    result = train(model, dataset, cfg, args.out, resume=args.resume, device=args.device, dataset_info=info)
    print(f"step {result.step}  loss {result.loss:.6g}  checkpoint {result.checkpoint}")
    return 0


def cmd_generate(args) -> int:
    from aistpp.models.generate import GenerateConfig, generate_to_dir
    from aistpp.models.train import model_from_checkpoint

    seeds = list(args.seed_motion or [])
    if args.split:
        if not args.corpus:
            raise AistppError("--split needs --corpus")
        from aistpp.data.datasets import select_sequences

        seeds += select_sequences(args.corpus, args.split)
    if not seeds:
        raise AistppError("give --seed-motion SEQ (or --split with --corpus)")
    if args.music is None and not args.corpus:
        raise AistppError("give --music FILE, or --corpus to use each seed sequence's own music")
    model, ck = model_from_checkpoint(args.checkpoint)
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    info = {"checkpoint": str(ck["path"]), "step": int(ck.get("step", 0))}
    config = GenerateConfig(frames=args.frames, snap=args.snap, music_align=args.music_align)
    for seed in seeds:
        rec = generate_to_dir(None, seed, args.music, args.out, config, corpus=args.corpus, model=model,
                              ckpt_info=info, progress=True)
        print(f"{rec['name']}: {rec['generated_frames']} frames -> {rec['paths']['npy']}")
    return 0


def cmd_import_mint(args) -> int:
    from aistpp.models.mint_import import import_mint_checkpoint, save_imported_checkpoint

    model = import_mint_checkpoint(args.checkpoint, args.config, verify=not args.no_verify)
    info = model.mint_info
    path = save_imported_checkpoint(model, args.out, info)
    print(f"{info['checkpoint']}: {info['variables']} variables, {model.num_parameters():,} parameters, global "
          f"step {info['global_step']} -> {path}")
    return 0


def cmd_evaluate(args) -> int:
    from aistpp.io.atomic import atomic_write_text
    from aistpp.models.metrics import EvalConfig, evaluate, format_table

    overrides = {}
    if args.accel_bug is not None:
        overrides["accel_bug"] = args.accel_bug
    if args.geometric:
        overrides["geometric"] = args.geometric
    if args.recentre is not None:
        overrides["recentre"] = args.recentre
    for key in ("crop", "gt_crop"):
        value = getattr(args, key)
        if value:
            try:
                overrides[key] = None if value.lower() == "none" else int(value)
            except ValueError:
                raise AistppError(f"--{key.replace('_', '-')} must be a frame count or 'none', got {value!r}") \
                    from None
    if args.reference:
        overrides["reference"] = args.reference
    if args.beat_align:
        overrides["beat_align"] = args.beat_align
    if args.test_split:
        overrides["test_split"] = None if args.test_split == "all" else args.test_split
    config = EvalConfig.preset(args.profile, **overrides)
    if args.smpl_model is None:
        log.warning("no --smpl-model: using the generated stand-in body; numbers are not comparable with "
                    "published ones")
    result = evaluate(args.generated, args.corpus, args.smpl_model, config, progress=True)
    result["profile"] = args.profile
    out = Path(args.out) if args.out else Path(args.generated) / "metrics.json"
    atomic_write_text(out, json.dumps(result, indent=1, default=float) + "\n")
    if args.json:
        print(json.dumps(result, indent=1, default=float))
    else:
        print(format_table(result))
        print("switches: " + ", ".join(f"{k}={v}" for k, v in config.to_dict().items()))
        print(f"reference pool: {result['reference_size']} motions; smpl model: {result['smpl_model']}; "
              f"written {out}")
    return 0
