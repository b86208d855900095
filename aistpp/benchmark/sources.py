"""Where predictions and references come from, and which sequences a benchmark run scores.

Predictions (``--pred``): one keypoints2d/keypoints3d pkl (the official layout, which ``aistpp detect`` writes), a
folder of ``<sequence>.pkl`` (or an annotation-tree-like folder with ``keypoints2d/`` / ``keypoints3d/``), a folder
of OpenPose BODY_25 JSON (``<video>/`` or ``<sequence>/c01..c09/`` folders, read by
:func:`aistpp.detect.imports.read_openpose_sequence`), or a corpus. References: an official annotation tree or a
corpus.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from aistpp.benchmark.protocol import PREDICTION_3D_KEY, REFERENCE_3D_KEY
from aistpp.errors import AistppError
from aistpp.naming import parse_name

log = logging.getLogger(__name__)

TASKS = ("2d", "3d")
_TASK_KEY = {"2d": "keypoints2d", "3d": "keypoints3d"}


def _sequence_of(text: str) -> str | None:
    try:
        return parse_name(text).sequence
    except AistppError:
        return None


def _check_task(task):
    if task is not None and task not in TASKS:
        raise AistppError(f"unknown task {task!r}; expected 2d or 3d")
    return task


def _read_pkl(path: Path) -> dict:
    from aistpp.io.safe_pickle import load_pickle

    data = load_pickle(path)
    if not isinstance(data, dict):
        raise AistppError(f"expected a dict of arrays, got {type(data).__name__}", path)
    return data


def _task_of(data: dict, path) -> str:
    if "keypoints2d" in data:
        return "2d"
    if "keypoints3d" in data or "keypoints3d_optim" in data:
        return "3d"
    raise AistppError(f"neither keypoints2d nor keypoints3d in this pkl (has {sorted(data)})", path)


def _check_2d(kp, det, path) -> dict:
    kp = np.asarray(kp, np.float32)
    if kp.ndim != 4 or kp.shape[2:] not in ((17, 3), (17, 2)):
        raise AistppError(f"keypoints2d has shape {kp.shape}, expected (V, N, 17, 3)", path)
    if det is None:
        det = np.where(np.isfinite(kp[..., :2]).all(-1).any(-1), 1.0, 0.0)
    det = np.asarray(det, np.float32)
    if det.shape != kp.shape[:2]:
        raise AistppError(f"det_scores has shape {det.shape}, expected {kp.shape[:2]}", path)
    return {"keypoints2d": kp, "det_scores": det}


def _check_3d(kp, path) -> np.ndarray:
    kp = np.asarray(kp, np.float64)
    if kp.ndim != 3 or kp.shape[1:] != (17, 3):
        raise AistppError(f"keypoints3d has shape {kp.shape}, expected (N, 17, 3) cm", path)
    return kp


class Predictions:
    """Predicted keypoints per sequence. ``task`` 2d or 3d; :meth:`load` -> 2d: dict(keypoints2d (V, N, 17, 3),
    det_scores (V, N)); 3d: (N, 17, 3) cm (``key`` of a pkl or corpus, default keypoints3d)."""

    def __init__(self, path, task: str | None = None, sequence: str | None = None, key: str | None = None):
        self.path = Path(path)
        self.key = key
        task = _check_task(task)
        self._files: dict[str, Path] = {}
        self._openpose: dict[str, Path] = {}
        self._corpus = None
        if self.path.is_file():
            seq = _sequence_of(sequence) if sequence else _sequence_of(self.path.stem)
            if seq is None:
                raise AistppError("cannot tell the sequence from the file name: pass --sequence NAME"
                                  if not sequence else f"malformed sequence name {sequence!r}", self.path)
            self._files[seq] = self.path
            self.kind = "pkl"
            task = task or _task_of(_read_pkl(self.path), self.path)
        elif self.path.is_dir():
            from aistpp.corpus.manifest import is_corpus

            if is_corpus(self.path):
                from aistpp.corpus.reader import Corpus

                if task is None:
                    raise AistppError("a corpus holds 2D and 3D keypoints: say which to score (--task 2d|3d)",
                                      self.path)
                self._corpus = Corpus(self.path)
                self.kind = "corpus"
            else:
                task = self._scan_folder(task)
        else:
            raise AistppError("predictions not found", self.path)
        if sequence and not self.path.is_file():
            raise AistppError("--sequence names the sequence of a single prediction file, not of a folder")
        self.task = task

    def _scan_folder(self, task):
        sub = {t: self.path / _TASK_KEY[t] for t in TASKS if (self.path / _TASK_KEY[t]).is_dir()}
        if sub:
            if task is None and len(sub) > 1:
                raise AistppError("the folder has keypoints2d/ and keypoints3d/: say which to score (--task 2d|3d)",
                                  self.path)
            task = task or next(iter(sub))
            if task not in sub:
                raise AistppError(f"no {_TASK_KEY[task]}/ folder", self.path)
            folder = sub[task]
        else:
            folder = self.path
        for f in sorted(folder.glob("*.pkl")):
            seq = _sequence_of(f.stem)
            if seq is not None:
                self._files[seq] = f
        if self._files:
            self.kind = "pkl"
            return task or _task_of(_read_pkl(next(iter(self._files.values()))), folder)
        # OpenPose: <video>/ folders, or <sequence>/ folders holding c01.. or <video> folders
        for d in sorted(p for p in self.path.iterdir() if p.is_dir()):
            seq = _sequence_of(d.name)
            if seq is None:
                continue
            root = self.path if parse_name(d.name).is_video else d
            if any(root.glob("*/*_keypoints.json")):
                self._openpose[seq] = root
        if self._openpose:
            if task == "3d":
                raise AistppError("OpenPose JSON holds 2D keypoints, not 3D", self.path)
            self.kind = "openpose"
            return "2d"
        raise AistppError("no predictions here: expected <sequence>.pkl files, keypoints2d/ or keypoints3d/, "
                          "OpenPose <video>/ folders or a corpus", self.path)

    def sequences(self) -> list[str]:
        if self._corpus is not None:
            return self._corpus.sequences()
        return sorted(set(self._files) | set(self._openpose))

    def __contains__(self, seq: str) -> bool:
        if self._corpus is not None:
            return seq in self._corpus
        return seq in self._files or seq in self._openpose

    def describe(self) -> dict:
        return {"path": str(self.path), "format": self.kind, "task": self.task,
                **({"key": self.key_3d} if self.task == "3d" else {})}

    @property
    def key_3d(self) -> str:
        return self.key or PREDICTION_3D_KEY

    def load(self, seq: str, n_frames: int | None = None):
        """Predicted keypoints of ``seq`` (see the class docstring)."""
        if self._corpus is not None:
            return self._load_corpus(seq)
        if seq in self._openpose:
            from aistpp.detect.imports import read_openpose_sequence

            d = read_openpose_sequence(self._openpose[seq], seq, n_frames)
            return _check_2d(d["keypoints2d"], d["det_scores"], self._openpose[seq])
        path = self._files[seq]
        data = _read_pkl(path)
        if self.task == "2d":
            if "keypoints2d" not in data:
                raise AistppError(f"no keypoints2d in this pkl (has {sorted(data)})", path)
            return _check_2d(data["keypoints2d"], data.get("det_scores"), path)
        if self.key_3d not in data:
            raise AistppError(f"no {self.key_3d} in this pkl (has {sorted(data)}; choose with --pred-key)", path)
        return _check_3d(data[self.key_3d], path)

    def _load_corpus(self, seq):
        c = self._corpus
        if self.task == "2d":
            fields = c.fields(seq)
            d = c.read(seq, ("keypoints2d",) + (("det_scores",) if "det_scores" in fields else ()))
            return _check_2d(d["keypoints2d"], d.get("det_scores"), c.root)
        return _check_3d(c.read(seq, (self.key_3d,))[self.key_3d], c.root)


class References:
    """Reference keypoints per sequence from an annotation tree (``annotations``) or a corpus (``corpus``).
    :meth:`load` -> 2d: keypoints2d (V, N, 17, 3) px + conf; 3d: (N, 17, 3) cm (``key``, default
    keypoints3d_optim)."""

    def __init__(self, task: str, annotations=None, corpus=None, key: str | None = None):
        if (annotations is None) == (corpus is None):
            raise AistppError("give the reference as an annotation tree (--annotations) or a corpus (--corpus)")
        self.task = _check_task(task)
        self.key = key or (REFERENCE_3D_KEY if task == "3d" else "keypoints2d")
        if task == "2d" and self.key != "keypoints2d":
            raise AistppError("the 2D reference is keypoints2d (--ref-key is for 3D)")
        self.tree = self.corpus = None
        if annotations is not None:
            from aistpp.io.annotations import AnnotationTree

            self.tree = AnnotationTree.open(annotations)
            self.path = self.tree.root
        else:
            from aistpp.corpus.reader import Corpus

            self.corpus = Corpus(corpus)
            self.path = self.corpus.root

    def describe(self) -> dict:
        return {"path": str(self.path), "format": "annotations" if self.tree is not None else "corpus",
                "key": self.key}

    def sequences(self) -> list[str]:
        if self.tree is not None:
            return self.tree.sequences(_TASK_KEY[self.task])
        return [s for s in self.corpus.sequences() if self.key in self.corpus.fields(s)]

    def load(self, seq: str):
        if self.tree is not None:
            kind = _TASK_KEY[self.task]
            data = self.tree.read(kind, seq)
            path = self.tree.path(kind, seq)
        else:
            data = self.corpus.read(seq, (self.key,))
            path = self.corpus.root
        if self.key not in data:
            raise AistppError(f"no {self.key} for {seq} (choose with --ref-key)", path)
        if self.task == "2d":
            kp = np.asarray(data["keypoints2d"], np.float32)
            if kp.shape[-1] != 3:
                raise AistppError("reference keypoints2d need a confidence channel", path)
            return kp
        return _check_3d(data[self.key], path)

    def split_names(self, split: str) -> list[str]:
        """Names of a split: a file of names, a split file of the tree (``DIR/splits/<name>.txt``), or
        ``<kind>_<subset>`` (crossmodal_test, pose_train, ...) regenerated by :mod:`aistpp.splits`."""
        from aistpp import splits

        if self.tree is not None:  # the rule leaves out the ignore list, as aistpp reconstruct --split does
            return splits.select_sequences(self.tree.mapping(), split, ignore=self.tree.ignore_list(),
                                           split_dir=self.tree.root / "splits", missing="keep")
        return splits.select_sequences(self.corpus.sequences(), split, missing="keep")


def select_sequences(predictions: Predictions, references: References, split: str | None = None,
                     genres=None, sequences=None) -> tuple[list[str], dict]:
    """The sequences to score and notes about the rest.

    With ``split``, ``genres`` or ``sequences`` the selection is the reference sequences they name, and a
    selected sequence without a prediction scores as all misses. Without them it is every predicted sequence that
    has a reference. Returns (names, {"missing_predictions": [...], "no_reference": [...]}).
    """
    have_ref = references.sequences()
    ref_set = set(have_ref)
    notes: dict = {"missing_predictions": [], "no_reference": []}
    if sequences or split or genres:  # aistpp.splits' selection rule over the reference, in its order
        from aistpp import splits

        asked = list(sequences) if sequences else references.split_names(split) if split else None
        names = splits.select_sequences(have_ref, asked, genres, missing="keep")
    else:
        names = list(dict.fromkeys(predictions.sequences()))
    notes["no_reference"] = [s for s in names if s not in ref_set]
    names = [s for s in names if s in ref_set]
    if sequences or split or genres:
        notes["missing_predictions"] = [s for s in names if s not in predictions]
    if notes["no_reference"]:
        log.warning("%d selected sequence(s) have no reference and are not scored (e.g. %s)",
                    len(notes["no_reference"]), notes["no_reference"][0])
    if notes["missing_predictions"]:
        log.warning("%d selected sequence(s) have no prediction and score as misses (e.g. %s)",
                    len(notes["missing_predictions"]), notes["missing_predictions"][0])
    if not names:
        raise AistppError("no sequence to score: none of the selected sequences has both a reference and "
                          f"(without --split/--genre) a prediction; predictions cover {len(predictions.sequences())}"
                          f", the reference {len(have_ref)}")
    return names, notes
