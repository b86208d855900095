#!/usr/bin/env python
"""Whole-dataset reconstruction on a Ray cluster.

Run on the head node of a cluster started from ``pipelines/cluster.yaml`` (``ray up pipelines/cluster.yaml``, then
``ray submit pipelines/cluster.yaml pipelines/ray_reconstruct.py -- --annotations /data/aistpp/annotations
--out /data/aistpp/corpus``), or locally (it starts a local Ray when no cluster is running)::

    python pipelines/ray_reconstruct.py --annotations DIR --out CORPUS [--videos DIR] [--split crossmodal_train]
        [--from keypoints2d] [--stages triangulate,smpl] [--smpl-model PATH] [--address auto]

Every sequence is one Ray task (``aistpp.pipeline.run_sequence``, 1 CPU, retried once if its node dies); results
stream back to this driver, which alone writes the corpus (atomic shards, manifest last), so the run is resumable:
re-submit the same command after a failure and finished sequences are skipped. The annotation tree, videos and
SMPL model must be readable at the same paths on every node (a shared filesystem such as NFS/EFS); the corpus only
needs to be writable here. This is the same code path as ``aistpp reconstruct --executor ray``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

# Run from a checkout without installing: the project root on the path (cluster nodes install aistpp itself).
_ROOT = Path(__file__).resolve().parents[1]
if (_ROOT / "aistpp" / "__init__.py").is_file() and str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))


def main(argv=None) -> int:
    from aistpp.errors import AistppError
    from aistpp.naming import parse_genres
    from aistpp.pipeline import PipelineConfig, reconstruct, select_sequences

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--annotations", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--videos")
    sel = p.add_mutually_exclusive_group()
    sel.add_argument("--sequences", nargs="+")
    sel.add_argument("--genre")
    sel.add_argument("--split")
    p.add_argument("--from", dest="source", default="keypoints2d", choices=("videos", "keypoints2d", "keypoints3d"))
    p.add_argument("--stages", default="triangulate,smpl")
    p.add_argument("--smpl-model")
    p.add_argument("--address", default="auto", help="Ray address ('auto' = the cluster this node belongs to; "
                                                     "'local' = start a local Ray)")
    p.add_argument("--cpus", type=int, default=None, help="CPUs of a local Ray (with --address local)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = PipelineConfig(source=args.source, stages=tuple(s for s in args.stages.split(",") if s),
                                smpl_model=args.smpl_model)
        seqs = select_sequences(args.annotations, sequences=args.sequences, genres=parse_genres(args.genre),
                                split=args.split, source=args.source)
        summary = reconstruct(args.annotations, args.out, seqs, config, videos=args.videos, executor="ray",
                              workers=args.cpus, ray_address=None if args.address == "local" else args.address,
                              progress=sys.stderr.isatty())
    except AistppError as err:
        print(f"ray_reconstruct: error: {err}", file=sys.stderr)
        return 2
    print("\n".join(summary.lines()))
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
