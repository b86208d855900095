"""The driver: :func:`reconstruct` selects the sequences, plans each one by content fingerprints, schedules the
rest on an executor, commits results as they arrive (atomic shards), appends to ``reconstruct.log.jsonl`` in the
corpus and returns a :class:`RunSummary`."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from aistpp import __version__
from aistpp.corpus import CorpusWriter, config_hash
from aistpp.errors import AistppError
from aistpp.pipeline.resume import VIDEO_CACHE, Fingerprints, _compose, plan_sequence, stage_configs, task_config
from aistpp.pipeline.run import run_sequence
from aistpp.pipeline.selection import select_sequences
from aistpp.pipeline.tasks import PipelineConfig, SequenceTask, failed_result

log = logging.getLogger("aistpp.pipeline")

LOG_NAME = "reconstruct.log.jsonl"


@dataclass
class RunSummary:
    """What a :func:`reconstruct` run did."""

    corpus: str
    requested: int = 0
    done: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    failed: dict = field(default_factory=dict)
    frames: int = 0
    reprojection_error_px: float | None = None
    smpl_loss: float | None = None
    fit_error_cm: float | None = None
    stage_seconds: dict = field(default_factory=dict)
    wall_seconds: float = 0.0
    executor: str = "local"
    music: dict = field(default_factory=dict)
    redone: dict = field(default_factory=dict)  # {seq: "triangulate, smpl (cameras changed)"}: why it ran again
    stale: dict = field(default_factory=dict)  # {seq: {stage: reason}}: kept fields whose input changed

    def lines(self) -> list[str]:
        def f(v, unit=""):
            return "-" if v is None else f"{v:.3g}{unit}"

        out = [f"reconstruct -> {self.corpus} ({self.executor}, {self.wall_seconds:.1f} s)",
               f"  sequences: {self.requested} requested, {len(self.done)} reconstructed, {len(self.skipped)} "
               f"already done (same inputs and config), {len(self.failed)} failed",
               f"  frames reconstructed: {self.frames}",
               f"  median reprojection error: {f(self.reprojection_error_px, ' px')}; median SMPL fit loss: "
               f"{f(self.smpl_loss)}; median fit error: {f(self.fit_error_cm, ' cm')}"]
        if self.stage_seconds:
            out.append("  time per stage (s, summed over sequences): "
                       + ", ".join(f"{k} {v:.1f}" for k, v in self.stage_seconds.items()))
        if self.music:
            if "error" in self.music:
                out.append(f"  music features: ERROR {self.music['error']}")
            else:
                out.append(f"  music features: {len(self.music['added'])} added, {len(self.music['cached'])} "
                           f"already cached, {len(self.music['missing'])} missing"
                           + (f" ({', '.join(sorted(self.music['missing']))})" if self.music["missing"] else ""))
        for i, (s, r) in enumerate(self.redone.items()):
            if i == 20:
                out.append(f"  ... and {len(self.redone) - 20} more redone (see {LOG_NAME})")
                break
            out.append(f"  redone {s}: {r}")
        for s, st in self.stale.items():
            out.append(f"  STALE {s}: " + "; ".join(f"{k} kept but {v}" for k, v in st.items()))
        for s, r in self.failed.items():
            out.append(f"  FAILED {s}: {r}")
        return out

    def to_dict(self) -> dict:
        return asdict(self)


def _median(vals):
    vals = [v for v in vals if v is not None and np.isfinite(v)]
    return float(np.median(vals)) if vals else None


def reconstruct(annotations: str | Path, out: str | Path, sequences=None, config: PipelineConfig = PipelineConfig(),
                videos: str | Path | None = None, executor: str = "local", workers: int = 1,
                ray_address: str | None = None, progress: bool = False, commit_every: int = 8,
                commit_seconds: float = 60.0, force: bool = False, music: str | Path | None = None) -> RunSummary:
    """Reconstruct ``sequences`` (default: :func:`select_sequences`) from ``annotations`` into the corpus ``out``.

    Resume by content: each sequence's stage records (:func:`stage_configs`: sha256 of its keypoints2d file or a
    fingerprint of its videos, camera file, mapping line, stage configs, body model, tool version) are compared
    with those stored; only the stages whose inputs changed run again, and the run says why (``summary.redone``,
    the log). Stages not requested are kept: their fields stay, and a kept stage whose input changed (SMPL fits
    after a new triangulation) is marked stale (``entry["stale"]``, ``summary.stale``) until it is redone.
    ``force`` redoes every requested stage; failed sequences are redone. Results are committed every
    ``commit_every`` sequences or ``commit_seconds`` (atomically), so a killed run keeps its committed work.
    ``executor``: ``local`` (process pool of ``workers``; 1 = in this process) or ``ray`` (``ray_address`` or a
    local Ray with ``workers`` CPUs). ``music``: a folder of ``<music_id>.wav`` files; their 35-d features are
    cached in the corpus after the reconstruction (:func:`aistpp.audio.add_music_to_corpus`, resumable too).
    """
    from aistpp.executors import get_executor

    t0 = time.perf_counter()
    annotations = str(Path(annotations).resolve())
    if sequences is None:
        sequences = select_sequences(annotations, source=config.source)
    summary = RunSummary(str(out), requested=len(sequences), executor=executor)
    if not sequences:
        raise AistppError("no sequences selected (check --sequences/--genre/--split and the annotation tree)")
    from aistpp.io.annotations import AnnotationTree

    tasks = [SequenceTask(s, annotations, config, None if videos is None else str(Path(videos).resolve()))
             for s in sequences]
    tree = AnnotationTree(Path(annotations))
    mapping = tree.mapping() if tree.mapping_path.exists() else {}
    out = Path(out)
    fp = Fingerprints(out / VIDEO_CACHE if config.source == "videos" else None)
    stage_cfgs = {t.sequence: stage_configs(t, fp, mapping) for t in tasks}
    configs = {t.sequence: task_config(t, stage_cfgs[t.sequence]) for t in tasks}
    stats_all: list[dict] = []
    with CorpusWriter(out, max_pending=commit_every, flush_seconds=commit_seconds) as writer:
        fp.save()
        todo, plans = _plan_all(tasks, writer, stage_cfgs, force, out, summary)
        log.info("%d sequence(s) to run, %d already done with the same inputs", len(todo), len(summary.skipped))
        logfile = open(out / LOG_NAME, "a", encoding="utf-8")
        try:
            run = get_executor(executor, run_sequence, failed_result, workers=workers, ray_address=ray_address)
            bar = _progress(len(todo), progress)
            for res in run(todo):
                cfg = configs[res.sequence]
                plan = plans[res.sequence]
                _commit(writer, res, cfg, plan, summary, stats_all)
                logfile.write(_log_line(res, cfg, plan))
                logfile.flush()
                bar.update(1)
                bar.set_postfix(failed=len(summary.failed))
            bar.close()
        finally:
            logfile.close()
        if music is not None:
            summary.music = _add_music(writer, out, music, progress)
        writer.compact()
    summary.reprojection_error_px = _median([s.get("reprojection_error_px") for s in stats_all])
    summary.smpl_loss = _median([s.get("smpl_loss") for s in stats_all])
    summary.fit_error_cm = _median([s.get("fit_error_cm") for s in stats_all])
    summary.wall_seconds = time.perf_counter() - t0
    return summary


def _plan_all(tasks: list, writer, stage_cfgs: dict, force: bool, out: Path, summary: RunSummary):
    """Plan every task against the stored corpus: ``(tasks to run, with their stages and stored shard;
    {sequence: plan})``; refused and already done sequences go into ``summary``."""
    todo, plans = [], {}
    for t in tasks:
        entry = writer.entry(t.sequence)
        plan = plan_sequence(t, entry, stage_cfgs[t.sequence], force)
        plans[t.sequence] = plan
        if plan.refuse:
            summary.failed[t.sequence] = plan.refuse  # nothing stored is touched
            log.warning("%s not run: %s", t.sequence, plan.refuse)
        elif not plan.run:
            summary.skipped.append(t.sequence)
        else:
            stored = str(out / entry["shard"]) if entry and entry.get("status") == "ok" and entry.get("shard") \
                else None
            todo.append(replace(t, run_stages=plan.run, stored=stored))
            if entry is not None:
                summary.redone[t.sequence] = f"{', '.join(plan.run)} ({', '.join(plan.why)})"
                log.info("%s: redo %s (%s)", t.sequence, ", ".join(plan.run), ", ".join(plan.why))
    return todo, plans


def _commit(writer, res, cfg: dict, plan, summary: RunSummary, stats_all: list) -> None:
    """Write one result (with the stages it kept) or its failure to the corpus, and count it in ``summary``."""
    if res.status == "ok":
        try:
            stages, stale = _compose(writer, res, plan)
            writer.add_sequence(res.sequence, res.arrays, res.attrs, cfg, stats=res.stats,
                                stages=stages, stale=stale)
            if stale:
                summary.stale[res.sequence] = stale
        except AistppError as err:
            res.status, res.reason = "failed", f"corpus: {err}"
    if res.status != "ok":
        writer.add_failure(res.sequence, res.reason or "unknown error", cfg)
        summary.failed[res.sequence] = res.reason
    else:
        summary.done.append(res.sequence)
        summary.frames += int(res.stats.get("frames", 0))
        stats_all.append(res.stats)
    for k, v in res.timings.items():
        summary.stage_seconds[k] = summary.stage_seconds.get(k, 0.0) + float(v)


def _log_line(res, cfg: dict, plan) -> str:
    """One line of ``reconstruct.log.jsonl``."""
    return json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "sequence": res.sequence,
                       "status": res.status, "reason": res.reason,
                       "stages_run": list(plan.run), "why": plan.why,
                       "config_hash": config_hash(cfg), "pid": res.pid, "host": res.host,
                       "stats": res.stats, "timings": res.timings,
                       "tool_version": __version__}) + "\n"


def _add_music(writer, out: Path, music, progress: bool) -> dict:
    """Cache the music features in the corpus (after the reconstruction); the summary's ``music`` entry."""
    from aistpp.audio import add_music_to_corpus

    writer.flush()
    try:
        res = add_music_to_corpus(out, music, writer=writer, progress=progress)
        return {"added": res["added"], "cached": res["cached"], "missing": sorted(res["missing"])}
    except AistppError as err:
        log.error("music features: %s", err)
        return {"error": str(err)}


def _progress(total: int, enabled: bool):
    from aistpp.progress import tqdm

    return tqdm(total=total, desc="reconstruct", unit="seq", disable=not enabled, dynamic_ncols=True)
