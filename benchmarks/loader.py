"""FACT window loading speed: FACTDataset (corpus, 0 and 2 workers, cached and HDF5 paths) against the
per-sequence path (load the official motion pkl, build the 225-d features with scipy, load the cached music
features, cut a window), in the same run.

    .venv/bin/python benchmarks/loader.py [--copies 20] [--windows 20000] [--batch-size 64] [--repeat 3]

Each figure is the best of ``--repeat`` runs (the machine's cores are shared; the best run is the least
disturbed one). The printed load average says how busy the machine was.

The corpus is built in a temporary folder from the two shared official sequences, each stored ``--copies`` times
under distinct valid names (sFM choreographies, crossmodal train), with generated music features.
Targets (issue 7): >= 20x the per-sequence path; >= 5,000 windows/s with 2 workers.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ANNOTATIONS = ROOT.parent / "shared" / "aistpp-data" / "annotations"
SOURCES = ("gBR_sBM_cAll_d04_mBR2_ch08", "gJS_sBM_cAll_d03_mJS2_ch07")


def build(tmp: Path, copies: int):
    from aistpp.corpus import CorpusWriter
    from aistpp.corpus.official import sequence_attrs
    from aistpp.io.annotations import AnnotationTree
    from aistpp.naming import parse_name

    tree = AnnotationTree.open(ANNOTATIONS)
    music_dir = tmp / "music_cache"
    music_dir.mkdir()
    source_of = {}
    with CorpusWriter(tmp / "corpus", max_pending=64) as w:
        for src in SOURCES:
            m = tree.read("motions", src)
            n = parse_name(src)
            feats = np.random.default_rng(0).normal(size=(len(m["smpl_poses"]) + 60, 35)).astype(np.float32)
            np.save(music_dir / f"{n.music}.npy", feats)
            w.add_music(n.music, feats, config={"generated": True})
            for k in range(copies):
                seq = f"{n.genre}_sFM_cAll_{n.dancer}_{n.music}_ch{10 + k:02d}"
                arrays = {"smpl/poses": m["smpl_poses"], "smpl/trans": m["smpl_trans"],
                          "smpl/scaling": m["smpl_scaling"], "smpl/loss": m["smpl_loss"],
                          "timestamps": np.round(np.arange(len(m["smpl_poses"])) * 1e6 / 60).astype(np.int64)}
                w.add_sequence(seq, arrays, sequence_attrs(seq, tree.mapping().get(src)))
                source_of[seq] = src
    return tmp / "corpus", music_dir, source_of


def per_sequence_window(pkl: Path, music_npy: Path, start: int):
    """The baseline: everything from files, for one window (what a loader without a corpus does)."""
    from scipy.spatial.transform import Rotation

    from aistpp.io.safe_pickle import load_pickle

    m = load_pickle(pkl)
    rot = Rotation.from_rotvec(m["smpl_poses"].reshape(-1, 3)).as_matrix().reshape(len(m["smpl_poses"]), -1)
    motion = np.pad(np.concatenate([m["smpl_trans"] / m["smpl_scaling"], rot], -1), [[0, 0], [6, 0]])
    motion = motion.astype(np.float32)
    audio = np.load(music_npy)
    return motion[start:start + 120], audio[start:start + 240], motion[start + 120:start + 140]


def time_loader(ds, workers: int, batch_size: int, n_windows: int) -> float:
    from torch.utils.data import DataLoader

    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers,
                        persistent_workers=workers > 0, drop_last=False)  # no re-fork per epoch
    seen = 0
    t0 = None
    epoch = 0
    while seen < n_windows:
        ds.set_epoch(epoch)
        for b in loader:
            if t0 is None:  # exclude worker start-up and the first batch
                t0 = time.perf_counter()
                continue
            seen += len(b["start"])
            if seen >= n_windows:
                break
        epoch += 1
    return seen / (time.perf_counter() - t0)


class _ZerosDataset:
    """Context for the worker figures: windows of the same sizes that cost nothing to make, so a DataLoader with
    workers measures only its own inter-process transfer (shared-memory batch + file descriptor passing)."""

    def __init__(self, n: int):
        import torch

        self.n = n
        self.item = {"motion": torch.zeros(120, 225), "audio": torch.zeros(240, 35), "target": torch.zeros(20, 225),
                     "start": 0}

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return dict(self.item)

    def set_epoch(self, epoch):
        pass


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=20)
    ap.add_argument("--windows", type=int, default=20000)
    ap.add_argument("--baseline-windows", type=int, default=150)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs per configuration (shared, noisy CPUs)")
    args = ap.parse_args(argv)
    if not ANNOTATIONS.is_dir():
        print(f"shared annotations not found at {ANNOTATIONS}")
        return 2
    import torch

    from aistpp.data import FACTDataset

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        corpus, music_dir, source_of = build(Path(d), args.copies)
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"corpus: {len(source_of)} sequences x 576 frames built in {time.perf_counter() - t:.1f} s")

        seqs = sorted(source_of)
        rng = np.random.default_rng(0)
        base = 0.0
        for _ in range(args.repeat):
            t = time.perf_counter()
            for _ in range(args.baseline_windows):
                seq = seqs[rng.integers(len(seqs))]
                src = source_of[seq]
                per_sequence_window(ANNOTATIONS / "motions" / f"{src}.pkl",
                                    music_dir / f"{src.split('_')[4]}.npy", int(rng.integers(0, 576 - 240 + 1)))
            base = max(base, args.baseline_windows / (time.perf_counter() - t))
        print(f"per-sequence path (pkl + scipy + npy, one window each): {base:9.0f} windows/s")

        results = {}
        for cache in (True, False):
            t = time.perf_counter()
            ds = FACTDataset(corpus, stride=1, cache=cache)
            setup = time.perf_counter() - t
            for workers in (0, 2):
                n = args.windows if cache else args.windows // 4
                rate = max(time_loader(ds, workers, args.batch_size, n) for _ in range(args.repeat))
                results[(cache, workers)] = rate
                print(f"FACTDataset cache={cache!s:5} workers={workers} batch={args.batch_size}: {rate:9.0f} "
                      f"windows/s = {rate / base:6.1f}x per-sequence path (setup {setup:.2f} s, "
                      f"{len(ds)} windows/epoch)")
        ceiling = max(time_loader(_ZerosDataset(len(ds)), 2, args.batch_size, args.windows // 2)
                      for _ in range(args.repeat))
        print(f"context: DataLoader with 2 workers moving zero windows of the same sizes (transfer only): "
              f"{ceiling:9.0f} windows/s")
        r0, r2 = results[(True, 0)], results[(True, 2)]
        print(f"targets (cached path): >= 20x per-sequence path: 0 workers {r0 / base:.1f}x "
              f"{'met' if r0 / base >= 20 else 'NOT met'}, 2 workers {r2 / base:.1f}x "
              f"{'met' if r2 / base >= 20 else 'NOT met'}; >= 5,000 windows/s with 2 workers: {r2:.0f} "
              f"{'met' if r2 >= 5000 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
