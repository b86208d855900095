"""What to run: the pipeline config, one sequence's task and its result.

:class:`PipelineConfig` (source, stages, stage configs) is shared by every sequence of a run; a
:class:`SequenceTask` (picklable, paths as strings) is one sequence's job and a :class:`SequenceResult` what a
worker returns (:func:`failed_result` for a task whose worker died).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from aistpp.errors import AistppError

SOURCES = ("videos", "keypoints2d", "keypoints3d")
STAGES = ("triangulate", "smpl")


@dataclass(frozen=True)
class PipelineConfig:
    """What to run for every sequence.

    source: where the per-sequence input comes from: ``videos`` (detect 2D keypoints), ``keypoints2d`` (official
    pkl, the default: the official pipeline's input to triangulation) or ``keypoints3d`` (official pkl; only the
    SMPL fit runs). stages: subset of ``("triangulate", "smpl")``. smpl_model: SMPL file or directory (None = the
    generated stand-in). frames: optional ``(start, stop)`` to reconstruct only those frames (debugging, tests).
    triangulation / fit: stage configs (None = that stage's defaults, which follow the official pipeline);
    detector: an :class:`aistpp.detect.runner.DetectorSpec` (None = MediaPipe, the offline default). min_views_present: a sequence with fewer views holding any detection fails with that reason.
    """

    source: str = "keypoints2d"
    stages: tuple[str, ...] = STAGES
    smpl_model: str | None = None
    frames: tuple[int, int] | None = None
    triangulation: object = None
    fit: object = None
    detector: object = None
    min_views_present: int = 2

    def __post_init__(self):
        if self.source not in SOURCES:
            raise AistppError(f"unknown source {self.source!r}; expected one of {', '.join(SOURCES)}")
        stages = tuple(self.stages)
        bad = [s for s in stages if s not in STAGES]
        if bad:
            raise AistppError(f"unknown stage(s) {', '.join(bad)}; expected a subset of {','.join(STAGES)}")
        object.__setattr__(self, "stages", tuple(s for s in STAGES if s in stages))
        if self.frames is not None:
            a, b = (int(x) for x in self.frames)
            if a < 0 or b <= a:
                raise AistppError(f"frames must be START:STOP with 0 <= START < STOP, got {a}:{b}")
            object.__setattr__(self, "frames", (a, b))

    @property
    def runs_triangulation(self) -> bool:
        return "triangulate" in self.stages and self.source != "keypoints3d"

    @property
    def runs_smpl(self) -> bool:
        return "smpl" in self.stages

    def triangulation_config(self):
        if self.triangulation is not None:
            return self.triangulation
        from aistpp.triangulate import TriangulationConfig

        return TriangulationConfig()

    def fit_config(self):
        if self.fit is not None:
            return self.fit
        from aistpp.smpl import FitConfig

        return FitConfig()

    def detector_spec(self):
        if self.detector is not None:
            return self.detector
        from aistpp.detect.runner import DetectorSpec

        return DetectorSpec()

    def to_dict(self) -> dict:
        """Everything that determines the output (hashed into the corpus for resume): stage configs included."""
        d = {"source": self.source, "stages": list(self.stages), "frames": list(self.frames) if self.frames else None,
             "min_views_present": self.min_views_present}
        if self.source == "videos":
            from aistpp.detect.base import DetectConfig

            d["detector"] = _config_dict(self.detector_spec())
            d["detect"] = DetectConfig().to_dict()  # person localization settings (results depend on them)
        if self.runs_triangulation:
            d["triangulation"] = _config_dict(self.triangulation_config())
        if self.runs_smpl:
            d["fit"] = _config_dict(self.fit_config())
            d["smpl_model"] = _model_identity(self.smpl_model)
        return d


def _config_dict(cfg) -> dict:
    if hasattr(cfg, "to_dict"):
        return cfg.to_dict()
    return asdict(cfg)


def _model_identity(path: str | None) -> dict:
    """Identify the body model for the config hash: the stand-in, or a file by name and size."""
    if path is None:
        return {"model": "standin"}
    p = Path(path)
    files = sorted(p.rglob("*")) if p.is_dir() else [p]
    return {"model": p.name, "files": {str(f.relative_to(p) if p.is_dir() else f.name): f.stat().st_size
                                       for f in files if f.is_file()}}


@dataclass(frozen=True)
class SequenceTask:
    """Everything a worker needs for one sequence (picklable, paths as strings). ``run_stages``: the stages to run
    (None = the config's); ``stored``: the corpus shard holding this sequence's earlier result, read when the SMPL
    fit runs on keypoints3d kept from an earlier triangulation."""

    sequence: str
    annotations: str
    config: PipelineConfig
    videos: str | None = None
    run_stages: tuple | None = None
    stored: str | None = None

    @property
    def stages(self) -> tuple:
        return tuple(self.config.stages if self.run_stages is None else self.run_stages)


@dataclass
class SequenceResult:
    """What a worker returns. ``arrays`` use corpus field names; ``timings`` are seconds per stage."""

    sequence: str
    status: str = "ok"
    reason: str | None = None
    arrays: dict = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    pid: int = 0
    host: str = ""


def failed_result(task: SequenceTask, reason: str) -> SequenceResult:
    """The result of a task whose worker died or whose result could not be returned (for the executors)."""
    return SequenceResult(task.sequence, status="failed", reason=reason)

