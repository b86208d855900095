"""AIST++ as a benchmark for 2D and 3D keypoint estimators (``aistpp benchmark-keypoints``).

- :mod:`aistpp.benchmark.protocol`: :data:`PROTOCOL_VERSION`, thresholds and counting rules, :class:`BenchmarkConfig`;
- :mod:`aistpp.benchmark.keypoints2d`: per-keypoint errors, PCK, quantiles with misses, COCO OKS AP (pycocotools);
- :mod:`aistpp.benchmark.keypoints3d`: MPJPE, per-frame Procrustes (PA-MPJPE), PCK3D, bone-length CV, acceleration;
- :mod:`aistpp.benchmark.sources`: predictions (pkl, folders, OpenPose JSON, corpus) and references (annotation tree,
  corpus), sequence selection;
- :mod:`aistpp.benchmark.score`: :func:`run_benchmark` with breakdowns per view / genre / situation / dancer / joint;
- :mod:`aistpp.benchmark.report`: ``report.json``, ``summary.md``, PNG plots.

The protocol is described in ``docs/benchmark.md``.
"""

from aistpp.benchmark.keypoints2d import (CocoKeypointEval, Errors2D, coco_sigmas, keypoint_errors_2d, pck,
                                         quantile_with_misses)
from aistpp.benchmark.keypoints3d import Errors3D, bone_length_cv, keypoint_errors_3d, procrustes_align
from aistpp.benchmark.protocol import PROTOCOL_VERSION, BenchmarkConfig
from aistpp.benchmark.report import markdown_summary, write_report
from aistpp.benchmark.score import BenchmarkResult, run_benchmark, summarize_2d, summarize_3d
from aistpp.benchmark.sources import Predictions, References, select_sequences

__all__ = [
    "PROTOCOL_VERSION", "BenchmarkConfig", "BenchmarkResult", "CocoKeypointEval", "Errors2D", "Errors3D",
    "Predictions", "References", "bone_length_cv", "coco_sigmas", "keypoint_errors_2d", "keypoint_errors_3d",
    "markdown_summary", "pck", "procrustes_align", "quantile_with_misses", "run_benchmark", "select_sequences",
    "summarize_2d", "summarize_3d", "write_report",
]
