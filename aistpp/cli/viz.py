"""``aistpp viz``: skeleton animations, 9-view overlays, QA plots and the SMPL mesh of one sequence."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from aistpp.errors import AistppError

log = logging.getLogger("aistpp.viz")


def _frames(text: str) -> tuple:
    parts = (text or "").split(":")
    if len(parts) > 3:
        raise AistppError(f"--frames wants START:STOP[:STEP], got {text!r}")
    try:
        vals = [int(p) if p.strip() else None for p in parts] + [None] * (3 - len(parts))
    except ValueError:
        raise AistppError(f"--frames wants integers START:STOP[:STEP], got {text!r}") from None
    start, stop, step = vals
    if step is not None and step < 1:
        raise AistppError("--frames STEP must be >= 1")
    return (start or 0, stop, step or 1)


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise AistppError(f"sizes are WxH, e.g. 480x480; got {text!r}") from None
    if w < 16 or h < 16:
        raise AistppError(f"size {text} is too small")
    return w, h


def register(sub) -> None:
    p = sub.add_parser(
        "viz", help="draw a sequence: 3D skeleton animation, 9-view overlays, QA plots, SMPL mesh",
        description="Draw one sequence into --out DIR (no display needed): a 3D skeleton animation (mp4 or gif; "
                    "side by side with --compare), the projected skeleton and the 2D detections on the 9 views "
                    "(on the videos with --videos, on a blank canvas otherwise), QA plots as PNG (reprojection "
                    "error per camera, views used, bone-length stability, SMPL fit error per frame) with their "
                    "numbers in NAME_qa.json, and the SMPL mesh. SOURCE is a corpus, an official annotation tree or "
                    "a motions / keypoints3d pkl (e.g. a generated dance); or give the pkl with --motion. A "
                    "product that fails on a bad input file (a video, the --compare pkl) is reported and the "
                    "others are drawn (exit status 1). Existing files are kept (re-runs resume) unless --overwrite.")
    p.add_argument("source", nargs="?", metavar="SOURCE",
                   help="corpus directory, official annotation tree, or a motions/keypoints3d .pkl")
    p.add_argument("--sequence", metavar="NAME", help="sequence to draw (needed for a tree or a multi-sequence corpus)")
    p.add_argument("--motion", metavar="FILE", help="a motions pkl (official format, e.g. from aistpp generate) "
                                                    "to draw instead of SOURCE")
    p.add_argument("--compare", metavar="OTHER",
                   help="a second sequence shown side by side in the animation: a motions/keypoints3d pkl, "
                        "or a sequence name in SOURCE")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    from aistpp.viz.config import PRODUCTS, VizConfig

    viz = VizConfig()  # the defaults live there
    p.add_argument("--what", default=",".join(viz.products), metavar="LIST",
                   help=f"comma-separated subset of {','.join(PRODUCTS)} (default: all)")
    p.add_argument("--joints", choices=("auto", "keypoints3d", "smpl"), default=viz.joints,
                   help="what the animation draws: keypoints3d (COCO-17) or SMPL joints (24); auto = keypoints3d "
                        "when every drawn sequence has them, else SMPL when all have it, else what each has")
    p.add_argument("--frames", default="::1", metavar="START:STOP[:STEP]",
                   help="frames of the animation / overlay video (STEP > 1 keeps real time by lowering the fps)")
    p.add_argument("--frame", type=int, default=None, help="frame of the overlay and mesh stills (default: middle)")
    p.add_argument("--format", dest="fmt", choices=("mp4", "gif"), default=viz.fmt, help="animation file format")
    p.add_argument("--size", default="%dx%d" % viz.size, metavar="WxH", help="size of one animation panel")
    p.add_argument("--tile", default="%dx%d" % viz.tile, metavar="WxH", help="size of one view in the overlay mosaic")
    p.add_argument("--videos", metavar="DIR", help="folder of the sequence's 9 videos <video_name>.mp4 (overlays "
                                                   "are drawn on them)")
    p.add_argument("--overlay-video", action="store_true", help="also write the overlay mosaic over --frames")
    p.add_argument("--crop", action=argparse.BooleanOptionalAction, default=viz.crop,
                   help="zoom every overlay view on the dancer, one fixed box per view (default); --no-crop draws "
                        "the whole frame")
    p.add_argument("--smpl-model", metavar="PATH",
                   help="SMPL model file or folder for joints, mesh and fit error (default: the generated stand-in)")
    p.add_argument("--overwrite", action="store_true", help="redraw files that already exist")
    p.set_defaults(func=cmd_viz)


def cmd_viz(args) -> int:
    from aistpp.viz.report import PRODUCTS, VizConfig, render_sequence
    from aistpp.viz.sources import load_body_model, load_sequence

    if not args.source and not args.motion:
        raise AistppError("give a SOURCE (corpus, annotation tree, pkl) or --motion FILE")
    what = tuple(w.strip() for w in args.what.split(",") if w.strip())
    bad = [w for w in what if w not in PRODUCTS]
    if bad:
        raise AistppError(f"--what: unknown {', '.join(bad)}; choose from {', '.join(PRODUCTS)}")
    data = load_sequence(args.motion, None) if args.motion else load_sequence(args.source, args.sequence)
    compare = None
    failed = {}
    if args.compare:
        cp = Path(args.compare)
        if not cp.is_file() and not (args.source and not Path(args.source).is_file()):
            raise AistppError("--compare must be a pkl file, or a sequence name in SOURCE", cp)
        try:  # a bad comparison file is reported; the sequence itself is still drawn
            compare = load_sequence(cp) if cp.is_file() else load_sequence(args.source, args.compare)
        except AistppError as err:
            failed["compare"] = str(err)
    needs_model = (("mesh" in what or "qa" in what) and any(d.smpl is not None for d in (data, compare) if d)) or (
        "skeleton" in what and any(d.keypoints3d is None for d in (data, compare) if d)) or args.joints == "smpl"
    body_model = load_body_model(args.smpl_model) if needs_model else None
    config = VizConfig(products=what, joints=args.joints, frames=_frames(args.frames), frame=args.frame,
                       fmt=args.fmt, size=_size(args.size), tile=_size(args.tile), overlay_video=args.overlay_video,
                       crop=args.crop, overwrite=args.overwrite)
    written = render_sequence(data, args.out, compare=compare, body_model=body_model, config=config,
                              videos_dir=args.videos, progress=True)
    for product in PRODUCTS:
        for path in written.get(product, []):
            print(path)
    for product, reason in written["skipped"].items():
        log.info("skipped %s: %s", product, reason)
    failed.update(written.get("failed", {}))
    for product, reason in failed.items():
        print(f"FAILED {product}: {reason}", file=sys.stderr)
    return 1 if failed else 0
