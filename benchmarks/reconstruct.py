#!/usr/bin/env python
"""Benchmark of ``aistpp reconstruct`` from official keypoints2d: sequences/hour per core and the time per stage.

Runs the two shared sequences (576 frames each) through the local executor in this process with torch limited to
one thread (so the figures are per core), into a fresh corpus, then prints per stage seconds, frames/s, sequences per
hour per core at the shared sequences' length and extrapolated to the AIST++ mean length (10.1 M images / 9 views /
1,408 sequences = 797 frames), and the core-hours for the whole dataset. The baseline in the same run is the
packing-only path (load + cameras + corpus write, no stages), which shows the pipeline's own overhead.

    .venv/bin/python benchmarks/reconstruct.py [--frames N] [--repeat K]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ANNOTATIONS = ROOT.parent / "shared" / "aistpp-data" / "annotations"
SEQUENCES = ["gBR_sBM_cAll_d04_mBR2_ch08", "gJS_sBM_cAll_d03_mJS2_ch07"]
AIST_MEAN_FRAMES = 10_100_000 / 9 / 1408
AIST_SEQUENCES = 1408


def run(out: Path, config, frames_total: int):
    from aistpp.pipeline import reconstruct

    t = time.perf_counter()
    s = reconstruct(ANNOTATIONS, out, SEQUENCES, config, workers=1, force=True)
    wall = time.perf_counter() - t
    if s.failed:
        raise SystemExit(f"failed: {s.failed}")
    return s, wall


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--frames", type=int, default=None, help="only the first N frames of each sequence")
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)
    from aistpp.pipeline import PipelineConfig

    frames = (0, args.frames) if args.frames else None
    tmp = Path(tempfile.mkdtemp(prefix="aistpp-bench-"))
    try:
        base_cfg = PipelineConfig(stages=(), frames=frames)
        full_cfg = PipelineConfig(frames=frames)
        base, base_wall = run(tmp / "base", base_cfg, 0)
        full, full_wall = run(tmp / "full", full_cfg, 0)
        n_frames = full.frames
        per_seq = full_wall / len(SEQUENCES)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"reconstruct benchmark: {len(SEQUENCES)} shared sequences, {n_frames} frames, 1 core (torch 1 thread); "
              f"{os.cpu_count()} cores, load average {load:.1f} at the end (shared machine: times vary with it)")
        print(f"  packing-only baseline (load + cameras + corpus write): {base_wall:.2f} s")
        print(f"  full run (triangulate + SMPL fit): {full_wall:.2f} s = {full_wall / max(base_wall, 1e-9):.1f}x the "
              f"baseline; {n_frames / full_wall:.0f} frames/s")
        print("  time per stage (s): " + ", ".join(f"{k} {v:.2f} ({v / full.stage_seconds['total']:.0%})"
                                                  for k, v in full.stage_seconds.items() if k != "total"))
        print(f"  median reprojection error {full.reprojection_error_px:.2f} px, median fit error "
              f"{full.fit_error_cm if full.fit_error_cm is None else round(full.fit_error_cm, 2)} cm")
        seq_frames = n_frames / len(SEQUENCES)
        print(f"  sequences/hour per core: {3600 / per_seq:.0f} at {seq_frames:.0f} frames; "
              f"{3600 / (per_seq * AIST_MEAN_FRAMES / seq_frames):.0f} at the AIST++ mean of {AIST_MEAN_FRAMES:.0f}")
        core_h = AIST_SEQUENCES * per_seq * AIST_MEAN_FRAMES / seq_frames / 3600
        print(f"  whole AIST++ from keypoints2d (1,408 sequences): ~{core_h:.1f} core-hours "
              f"(~{core_h / 16:.2f} h on 16 cores)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
