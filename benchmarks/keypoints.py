"""``aistpp benchmark-keypoints`` on the shared real sequences: official and our own 3D against keypoints3d_optim,
and detect-format 2D files against the official keypoints2d.

No videos are available here, so the 2D "detectors" scored are files in the layout ``aistpp detect`` writes
(keypoints2d (9, N, 17, 3), det_scores, timestamps) made from data we have: the official keypoints3d_optim and our
own triangulation reprojected through each setting's cameras (confidence 1), and the official 2D itself (a sanity
check: 100%). The 3D entries: the official plain DLT (``keypoints3d``), our robust per-frame triangulation and our
temporally optimized result (:func:`aistpp.triangulate.reconstruct_keypoints3d`, default config) from the official
2D, all scored against the official ``keypoints3d_optim`` through the CLI, in the same process.

Run: ``python benchmarks/keypoints.py [--out DIR]`` (reports, summaries and plots of every run land in DIR).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aistpp.cli import main  # noqa: E402
from aistpp.io.annotations import AnnotationTree, write_keypoints2d, write_keypoints3d  # noqa: E402
from aistpp.triangulate import reconstruct_keypoints3d  # noqa: E402
from aistpp.triangulate.dlt import project_points  # noqa: E402

ANNOTATIONS = ROOT.parent / "shared" / "aistpp-data" / "annotations"


def bench(args) -> dict:
    out = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(out):
        rc = main(["benchmark-keypoints", *args])
    if rc:
        raise SystemExit(f"benchmark-keypoints {' '.join(args)} failed ({rc})")
    res = json.loads(out.getvalue())
    res["seconds"] = time.perf_counter() - t0
    return res


def reprojected(points3d, cameras):
    xy = project_points(points3d, cameras)
    return np.concatenate([xy, np.ones(xy.shape[:-1] + (1,))], -1)


def run(out: Path) -> None:
    tree = AnnotationTree.open(ANNOTATIONS)
    seqs = tree.sequences("keypoints3d")
    folders = {k: out / "pred" / k for k in ("ours_robust", "ours_optim", "reproj_official", "reproj_ours")}
    for f in folders.values():
        f.mkdir(parents=True, exist_ok=True)
    t_tri = 0.0
    for seq in seqs:
        k2 = tree.read("keypoints2d", seq)
        cams = tree.cameras_for(seq)
        t0 = time.perf_counter()
        ours = reconstruct_keypoints3d(k2["keypoints2d"], cams)
        t_tri += time.perf_counter() - t0
        write_keypoints3d(folders["ours_robust"] / f"{seq}.pkl", ours.keypoints3d)
        write_keypoints3d(folders["ours_optim"] / f"{seq}.pkl", ours.keypoints3d_optim)
        optim = tree.read("keypoints3d", seq)["keypoints3d_optim"]
        for name, pts in (("reproj_official", optim), ("reproj_ours", ours.keypoints3d_optim)):
            kp = reprojected(pts, cams)
            write_keypoints2d(folders[name] / f"{seq}.pkl", kp, np.ones(kp.shape[:2]), k2["timestamps"])
    ann = ["--annotations", str(ANNOTATIONS)]
    print(f"sequences: {', '.join(seqs)}; our triangulation took {t_tri:.1f} s\n")
    print("3D against the official keypoints3d_optim (protocol aistpp-keypoints-1)")
    print(f"{'prediction':38s} {'cover%':>7s} {'MPJPE':>7s} {'PA-MPJPE':>8s} {'median':>7s} {'PCK@5':>6s} "
          f"{'PCK@10':>6s} {'PCK@15':>6s} {'accel':>6s} {'boneCV%':>7s} {'MPJPE/DLT':>9s}")
    runs3d = [("official keypoints3d (plain DLT)", str(ANNOTATIONS / "keypoints3d"), "dlt"),
              ("ours: robust per frame", str(folders["ours_robust"]), "ours_robust"),
              ("ours: temporally optimized", str(folders["ours_optim"]), "ours_optim")]
    base = None
    for label, pred, tag in runs3d:
        o = bench(["--pred", pred, *ann, "--out", str(out / "reports" / tag)])["overall"]
        base = base or o["mpjpe_mm"]
        print(f"{label:38s} {100 * o['coverage']:7.2f} {o['mpjpe_mm']:7.2f} {o['pa_mpjpe_mm']:8.2f} "
              f"{o['median_error_mm']:7.2f} {100 * o['pck3d']['5']:6.1f} {100 * o['pck3d']['10']:6.1f} "
              f"{100 * o['pck3d']['15']:6.1f} {o['accel_error_mm_per_frame2']:6.2f} {100 * o['bone_length_cv']:7.2f} "
              f"{o['mpjpe_mm'] / base:9.3f}")
    print(f"(reference keypoints3d_optim bone-length CV: {100 * o['reference_bone_length_cv']:.2f}%; distances mm, "
          "accel mm/frame^2)\n")
    print("2D detect-format files against the official keypoints2d (reference confidence >= 0.15)")
    print(f"{'prediction':38s} {'det%':>6s} {'PCK@5':>6s} {'PCK@10':>6s} {'PCK@20':>6s} {'PCK@.1box':>9s} "
          f"{'median':>7s} {'p90':>6s} {'AP':>6s} {'AP50':>6s} {'AP75':>6s} {'s':>5s}")
    runs2d = [("official keypoints2d (itself)", str(ANNOTATIONS / "keypoints2d"), "self2d"),
              ("official 3D optim reprojected", str(folders["reproj_official"]), "reproj_official"),
              ("our 3D optim reprojected", str(folders["reproj_ours"]), "reproj_ours")]
    for label, pred, tag in runs2d:
        r = bench(["--pred", pred, *ann, "--out", str(out / "reports" / tag)])
        o = r["overall"]
        print(f"{label:38s} {100 * o['detection_rate']:6.1f} {100 * o['pck_px']['5']:6.1f} "
              f"{100 * o['pck_px']['10']:6.1f} {100 * o['pck_px']['20']:6.1f} {100 * o['pck_box']['0.1']:9.1f} "
              f"{o['median_px']:7.2f} {o['p90_px']:6.2f} {100 * o['ap']:6.1f} {100 * o['ap50']:6.1f} "
              f"{100 * o['ap75']:6.1f} {r['seconds']:5.1f}")
    print(f"\nreports, summaries and plots: {out / 'reports'}")


def cli() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, help="keep predictions and reports here (default: a temporary folder)")
    args = ap.parse_args()
    if not ANNOTATIONS.is_dir():
        raise SystemExit(f"shared annotations not found at {ANNOTATIONS}")
    if args.out:
        run(args.out)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            run(Path(tmp))


if __name__ == "__main__":
    cli()
