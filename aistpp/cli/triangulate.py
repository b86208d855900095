"""Verbs of the triangulation stage: ``calibrate`` (camera refinement from the dancers' own keypoints)."""

from __future__ import annotations

import json
import logging

from aistpp.errors import AistppError

log = logging.getLogger("aistpp.calibrate")


def register(sub) -> None:
    p = sub.add_parser(
        "calibrate", help="refine a camera setting from 2D keypoints (bundle adjustment)",
        description="Refine the 9 cameras of a setting by bundle adjustment on the 2D keypoints (confidence >= "
                    "0.5) of its sequences that have keypoints2d in the annotation tree, starting from the official "
                    "cameras or from an AIST++-like camera ring, and write a setting JSON in the official format.")
    p.add_argument("--annotations", required=True, metavar="DIR", help="official annotation tree (has cameras/)")
    p.add_argument("--setting", required=True, metavar="NAME", help="camera setting, e.g. setting1")
    p.add_argument("--sequences", nargs="+", metavar="SEQ",
                   help="sequences to use (default: every sequence of the setting with keypoints2d in the tree)")
    p.add_argument("--init", choices=("official", "ring"), default="official",
                   help="start from the setting's official cameras or from the ring (f 1600 px, 8 cameras 45 "
                        "degrees apart 500 cm out at 180 cm, c09 low beside c01)")
    p.add_argument("--out", required=True, metavar="FILE.json", help="where to write the refined setting JSON")
    p.add_argument("--points", type=int, default=3000, help="3D points sampled per bundle-adjustment round")
    p.add_argument("--conf", type=float, default=0.5, help="keypoint confidence threshold (official: 0.5)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the point sampling")
    p.set_defaults(func=cmd_calibrate)


def cmd_calibrate(args) -> int:
    import numpy as np

    from aistpp.io.annotations import AnnotationTree
    from aistpp.io.cameras import CameraGroup, save_cameras
    from aistpp.naming import parse_name
    from aistpp.triangulate import KNOWN_BAD_VIEWS, CalibrationConfig, bundle_adjust, ring_cameras

    tree = AnnotationTree.open(args.annotations)
    official = tree.cameras(args.setting)  # raises if the setting does not exist
    mapping = tree.mapping()
    have = set(tree.sequences("keypoints2d"))
    if args.sequences:
        names = [parse_name(s).sequence for s in args.sequences]
        for n in names:
            if mapping.get(n) != args.setting:
                raise AistppError(f"sequence {n} belongs to {mapping.get(n, 'no setting')}, not {args.setting}",
                                  tree.mapping_path)
            if n not in have:
                raise AistppError(f"no keypoints2d for {n}", tree.path("keypoints2d", n))
    else:
        names = [s for s, st in mapping.items() if st == args.setting and s in have]
        if not names:
            raise AistppError(f"no sequence of {args.setting} has keypoints2d in this tree",
                              tree.root / "keypoints2d")
    chunks = []
    for n in names:
        kp = tree.read("keypoints2d", n)["keypoints2d"].astype(np.float64)
        if kp.shape[0] != len(official):
            raise AistppError(f"has {kp.shape[0]} views, the setting has {len(official)}", tree.path("keypoints2d", n))
        for v in KNOWN_BAD_VIEWS.get(n, ()):
            kp[v] = np.nan
        chunks.append(kp.reshape(kp.shape[0], -1, 3))
    keypoints2d = np.concatenate(chunks, axis=1)
    if args.init == "ring":
        init = ring_cameras(setting=args.setting)
        init = CameraGroup(tuple(type(c)(o.name, o.size, c.K, c.dist, c.rvec, c.tvec)
                                 for c, o in zip(init.cameras, official.cameras)), args.setting)
        thresholds = (200.0, 100.0, 50.0, 25.0, 12.0)
    else:
        init = official
        thresholds = CalibrationConfig.thresholds_px
    config = CalibrationConfig(conf_threshold=args.conf, n_points=args.points, seed=args.seed,
                               thresholds_px=thresholds)
    log.info("calibrating %s from %d sequence(s), %d points, init %s", args.setting, len(names),
             keypoints2d.shape[1], args.init)
    result = bundle_adjust(keypoints2d, init, config)
    save_cameras(result.cameras, args.out)
    print(json.dumps({"setting": args.setting, "sequences": names, "init": args.init,
                      "initial_median_error_px": round(result.initial_error_px, 3),
                      "final_median_error_px": round(result.final_error_px, 3), "out": str(args.out)}))
    return 0
