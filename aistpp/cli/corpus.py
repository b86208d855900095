"""Verbs over the corpus: ``reconstruct``, ``verify``, ``export``, ``import-official``, ``demo``."""

from __future__ import annotations

import json

from aistpp.errors import AistppError


def register(sub) -> None:
    p = sub.add_parser(
        "reconstruct", help="2D keypoints (or videos) -> 3D keypoints -> SMPL, into a sharded HDF5 corpus",
        description="Run detect (with --from videos) -> triangulate -> SMPL fit for each selected sequence and write "
                    "the corpus at --out. Re-running skips sequences already finished with the same config and "
                    "redoes what changed or failed; one bad sequence never stops the others. Exit status 1 when "
                    "some sequence failed (the summary names it and why).")
    p.add_argument("--annotations", required=True, metavar="DIR",
                   help="official annotation tree (cameras/, mapping.txt, keypoints2d/...)")
    p.add_argument("--videos", metavar="DIR", help="folder of the 9-view videos (needed by --from videos)")
    p.add_argument("--out", required=True, metavar="CORPUS", help="corpus directory (created or resumed)")
    sel = p.add_mutually_exclusive_group()
    sel.add_argument("--sequences", nargs="+", metavar="SEQ", help="sequence names")
    sel.add_argument("--genre", metavar="G[,G]", help="all sequences of these genres, e.g. gBR,gPO")
    sel.add_argument("--split", metavar="NAME|FILE",
                     help="a split name (crossmodal_train, crossmodal_test, pose_test, ...) or a file of names")
    p.add_argument("--from", dest="source", choices=("videos", "keypoints2d", "keypoints3d"), default="keypoints2d",
                   help="input of the run (default keypoints2d: the official 2D keypoints)")
    p.add_argument("--stages", default="triangulate,smpl", metavar="LIST",
                   help="comma list of stages to run: triangulate,smpl (default both)")
    p.add_argument("--smpl-model", metavar="PATH", help="SMPL model file or folder (default: generated stand-in)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="parallel sequences (local processes or Ray CPUs; default 1)")
    p.add_argument("--executor", choices=("local", "ray"), default="local", help="local process pool (default) or Ray")
    p.add_argument("--ray-address", metavar="ADDR", help="Ray cluster address (default: start a local Ray)")
    p.add_argument("--detector", choices=("mediapipe", "onnx"), default="mediapipe",
                   help="2D detector for --from videos (default mediapipe; onnx needs --detector-model)")
    p.add_argument("--detector-model", metavar="FILE", help="the .onnx pose model of --detector onnx")
    p.add_argument("--music", metavar="DIR",
                   help="folder of <music_id>.wav: cache their 35-d music features in the corpus afterwards")
    p.add_argument("--frames", metavar="START:STOP", help="reconstruct only these frames (debugging)")
    p.add_argument("--force", action="store_true", help="redo sequences even if finished with the same config")
    p.add_argument("--commit-every", type=int, default=8, metavar="N",
                   help="commit finished sequences to the corpus every N sequences (and at least every minute)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("verify", help="check a corpus: shard checksums, sizes, index, shapes and failed sequences",
                       description="Exit status 0 when the corpus is intact and every requested sequence (default: "
                                   "every sequence in the manifest) reconstructed; 1 when something is wrong or a "
                                   "requested sequence failed or is absent (each is listed with its reason), unless "
                                   "--allow-failed.")
    p.add_argument("corpus", metavar="CORPUS", help="corpus directory (from reconstruct or import-official)")
    p.add_argument("--sequences", nargs="+", metavar="SEQ",
                   help="the sequences that must be present and ok (default: every sequence in the manifest)")
    p.add_argument("--allow-failed", action="store_true",
                   help="exit 0 on an intact corpus even if some sequences failed (they are still listed)")
    p.add_argument("--no-checksums", action="store_true", help="skip sha256 (sizes and shapes only)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("export",
                       help="write a corpus for other tools: official annotation tree, SMPL .npz, BVH, AMASS npz",
                       description="official: keypoints2d/, keypoints3d/ (keypoints3d = robust per-frame result, "
                                   "keypoints3d_optim = temporally optimized), motions/, cameras/ + mapping.txt; "
                                   "npz: <seq>.npz per sequence with canonical SMPL in metres (poses, trans = "
                                   "smpl_trans / smpl_scaling, scaling); bvh: <seq>.bvh of the SMPL skeleton "
                                   "(cm, +y up, rest offsets from the body model times smpl_scaling); amass: "
                                   "<seq>.npz AMASS-style (poses (N,156), trans m, betas, gender, "
                                   "mocap_framerate; rotated to +z up unless --up y).")
    p.add_argument("corpus", metavar="CORPUS", help="corpus directory to export")
    p.add_argument("--format", choices=("official", "npz", "bvh", "amass"), required=True,
                   help="official annotation tree, SMPL .npz, BVH or AMASS-style npz (see the description)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    p.add_argument("--sequences", nargs="+", metavar="SEQ", help="only these sequences")
    p.add_argument("--smpl-model", metavar="PATH", help="bvh/amass: SMPL model whose rest skeleton is used "
                                                        "(default: the generated stand-in)")
    p.add_argument("--bvh-order", choices=("ZXY", "XYZ"), default="ZXY", help="bvh: Euler channel order")
    p.add_argument("--up", choices=("z", "y"), default="z", help="amass: up axis of the export (AMASS is z-up)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("import-official", help="pack the official annotation release into a corpus as it is",
                       description="Every keypoints2d/keypoints3d/motions file that exists per sequence, with its "
                                   "cameras and attributes. Resumable.")
    p.add_argument("--annotations", required=True, metavar="DIR",
                   help="official annotation tree (cameras/, mapping.txt, keypoints2d/, keypoints3d/, motions/)")
    p.add_argument("--out", required=True, metavar="CORPUS", help="corpus directory (created or resumed)")
    p.add_argument("--sequences", nargs="+", metavar="SEQ", help="only these sequences")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("demo", help="the main job end to end on a generated AIST++-shaped sample (no data needed)",
                       description="Generates a small sample (a stand-in body dancing to a generated beat track, 2D "
                                   "keypoints through a 9-camera ring with noise, dropouts and outliers, written as "
                                   "an official annotation tree), reconstructs it into a corpus and compares the "
                                   "result with the known truth.")
    from aistpp.demo import DemoConfig

    demo = DemoConfig()  # the defaults live there
    p.add_argument("--out", default=demo.out, metavar="DIR", help=f"output folder (default {demo.out})")
    p.add_argument("--sequences", type=int, default=demo.sequences, metavar="N",
                   help=f"number of generated sequences (default {demo.sequences})")
    p.add_argument("--frames", type=int, default=demo.frames, metavar="N",
                   help=f"frames per sequence (default {demo.frames} = {demo.frames / 60:g} s)")
    p.add_argument("--workers", type=int, default=demo.workers, metavar="N",
                   help=f"sequences reconstructed in parallel by local processes (default {demo.workers})")
    p.add_argument("--seed", type=int, default=demo.seed, metavar="N",
                   help=f"random seed of the generated motions, camera noise and FACT training (default {demo.seed})")
    p.set_defaults(func=cmd_demo)


def _parse_frames(text):
    if not text:
        return None
    try:
        a, b = text.split(":")
        return int(a), int(b)
    except ValueError:
        raise AistppError(f"--frames expects START:STOP, got {text!r}") from None


def cmd_reconstruct(args) -> int:
    from aistpp.naming import parse_genres
    from aistpp.pipeline import PipelineConfig, reconstruct, select_sequences

    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())
    detector = None
    if args.source == "videos":
        from pathlib import Path

        from aistpp.detect.runner import DetectorSpec

        model = str(Path(args.detector_model).resolve()) if args.detector_model else None
        detector = DetectorSpec(args.detector, model)
    config = PipelineConfig(source=args.source, stages=stages, smpl_model=args.smpl_model,
                            frames=_parse_frames(args.frames), detector=detector)
    if args.source == "videos" and not args.videos:
        raise AistppError("--from videos needs --videos DIR")
    if args.workers < 1:
        raise AistppError("--workers must be >= 1")
    seqs = select_sequences(args.annotations, sequences=args.sequences, genres=parse_genres(args.genre),
                            split=args.split, source=args.source)
    summary = reconstruct(args.annotations, args.out, seqs, config, videos=args.videos, executor=args.executor,
                          workers=args.workers, ray_address=args.ray_address, progress=True,
                          commit_every=args.commit_every, force=args.force, music=args.music)
    print(json.dumps(summary.to_dict(), indent=2) if args.json else "\n".join(summary.lines()))
    return 1 if summary.failed or "error" in summary.music else 0


def cmd_verify(args) -> int:
    from aistpp.corpus import verify_corpus

    rep = verify_corpus(args.corpus, checksums=not args.no_checksums, sequences=args.sequences,
                        allow_failed=args.allow_failed)
    if args.json:
        print(json.dumps({"ok": rep.ok, "intact": rep.intact, "errors": rep.errors, "warnings": rep.warnings,
                          "shards": rep.shards, "sequences": rep.sequences, "failed": rep.failed,
                          "failed_sequences": rep.failed_sequences, "music": rep.music}, indent=2))
    else:
        print("\n".join(rep.lines()))
    return 0 if rep.ok else 1


def cmd_export(args) -> int:
    import logging

    from aistpp.corpus import Corpus, export_npz, export_official

    c = Corpus(args.corpus)
    seqs = args.sequences or c.sequences()
    missing = [s for s in seqs if s not in c]
    if missing:
        raise AistppError(f"not in the corpus (or failed): {', '.join(missing)}", args.corpus)
    if args.format == "official":
        counts = export_official(c, args.out, seqs)
        msg = ", ".join(f"{k} {v}" for k, v in counts.items())
    elif args.format in ("bvh", "amass"):
        from aistpp.smpl import load_body_model
        from aistpp.viz.export import export_corpus_motions

        n = export_corpus_motions(c, args.out, args.format, seqs, load_body_model(args.smpl_model),
                                  order=args.bvh_order, up=args.up)
        msg = f"{n} {args.format} files"
    else:
        msg = f"{export_npz(c, args.out, seqs)} npz files"
    logging.getLogger("aistpp.export").info("wrote %s to %s", msg, args.out)
    print(f"exported {len(seqs)} sequences to {args.out}: {msg}")
    return 0


def cmd_import(args) -> int:
    from aistpp.corpus import import_official

    res = import_official(args.annotations, args.out, sequences=args.sequences, progress=True)
    print(f"imported {res['imported']} sequences into {args.out} ({res['skipped']} already there, "
          f"{len(res['failed'])} failed)")
    for s, r in res["failed"].items():
        print(f"  FAILED {s}: {r}")
    return 1 if res["failed"] else 0


def cmd_demo(args) -> int:
    from aistpp.demo import DemoConfig, run_demo

    cfg = DemoConfig(out=args.out, sequences=args.sequences, frames=args.frames, workers=args.workers,
                     seed=args.seed)
    def header(number, count, name):
        print(f"== [{number}/{count}] {name} ...", flush=True)  # before the step: long steps are not silent

    for step in run_demo(cfg, on_start=header):
        print(f"   {step.title} ({step.seconds:.1f} s)")
        for line in step.lines:
            print(f"   {line}")
    return 0
