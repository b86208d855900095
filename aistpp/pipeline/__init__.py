"""One sequence through the stages, and the driver that runs many of them into a corpus.

    source (videos -> detect | keypoints2d pkl | keypoints3d pkl) -> triangulate -> smpl fit -> corpus

:func:`run_sequence` is the whole per-sequence job: a pure function of a picklable :class:`SequenceTask` that
returns a :class:`SequenceResult` (arrays, attributes, stats, per-stage seconds, or the failure reason). It never
raises: one bad sequence never stops the others. Executors (:mod:`aistpp.executors`: a local process pool, Ray)
only schedule it, so local and cluster runs produce the same corpus. :func:`reconstruct` is the driver: it selects
the sequences, plans each one by content fingerprints (:func:`stage_configs`, :func:`plan_sequence`: a stage is
redone exactly when one of its inputs changed, and the run says why), schedules the rest, commits results as they
arrive (atomic shards), appends to ``reconstruct.log.jsonl`` in the corpus, and returns a :class:`RunSummary`.

One module per job (imports go down this list, never up):

* :mod:`~aistpp.pipeline.tasks`: :class:`PipelineConfig`, :class:`SequenceTask`, :class:`SequenceResult`;
* :mod:`~aistpp.pipeline.run`: :func:`run_sequence` and its stages;
* :mod:`~aistpp.pipeline.resume`: fingerprints, stage records, :func:`plan_sequence`;
* :mod:`~aistpp.pipeline.selection`: :func:`select_sequences` of an annotation tree;
* :mod:`~aistpp.pipeline.driver`: :func:`reconstruct`, :class:`RunSummary`.

Every module logs as ``aistpp.pipeline``.
"""

from aistpp.pipeline.tasks import (SOURCES, STAGES, PipelineConfig, SequenceResult, SequenceTask,  # noqa: F401
                                   failed_result)
from aistpp.pipeline.run import quality_flags, run_sequence  # noqa: F401
from aistpp.pipeline.resume import (CHANGE_WORDS, STAGE_FIELDS, STAGE_STATS, VIDEO_CACHE,  # noqa: F401
                                    VIDEO_FINGERPRINT_BYTES, Fingerprints, SequencePlan, plan_sequence,
                                    stage_configs, task_config, video_fingerprint, why_changed)
from aistpp.pipeline.selection import select_sequences  # noqa: F401
from aistpp.pipeline.driver import LOG_NAME, RunSummary, reconstruct  # noqa: F401

__all__ = ["CHANGE_WORDS", "Fingerprints", "LOG_NAME", "PipelineConfig", "RunSummary", "SOURCES", "STAGES",
           "STAGE_FIELDS", "STAGE_STATS", "SequencePlan", "SequenceResult", "SequenceTask", "VIDEO_CACHE",
           "VIDEO_FINGERPRINT_BYTES", "failed_result", "plan_sequence", "quality_flags", "reconstruct", "run_sequence",
           "select_sequences", "stage_configs", "task_config", "video_fingerprint", "why_changed"]
