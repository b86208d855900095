"""The official AIST++ annotation tree: readers and writers for every file in it.

Layout (``DIR`` is what users pass as ``--annotations``)::

    DIR/cameras/setting*.json, DIR/cameras/mapping.txt
    DIR/keypoints2d/<seq>.pkl   keypoints2d (9, N, 17, 3) float32 px+conf, det_scores (9, N), timestamps (N,) int64 us
    DIR/keypoints3d/<seq>.pkl   keypoints3d (N, 17, 3) cm, keypoints3d_optim (N, 17, 3) cm
    DIR/motions/<seq>.pkl       smpl_poses (N, 72), smpl_trans (N, 3) cm, smpl_scaling (1,), smpl_loss float
    DIR/splits/<name>.txt, DIR/ignore_list.txt

Every reader checks keys and shapes and raises :class:`AistppError` naming the file and the problem.
Pickles are read through :mod:`aistpp.io.safe_pickle`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aistpp.errors import AistppError
from aistpp.io.atomic import atomic_write_text
from aistpp.io.cameras import CameraGroup, load_cameras
from aistpp.io.safe_pickle import load_pickle, save_pickle
from aistpp.naming import parse_name
from aistpp.shapes import format_spec, match_shape
from aistpp.skeleton import COCO17, NUM_JOINTS  # noqa: F401  (re-exported)
from aistpp.splits import read_name_list  # noqa: F401  (re-exported)

NUM_VIEWS = 9
FPS = 60
# The official triangulation dropped 2D keypoints below this confidence (the one place the number is written).
OFFICIAL_MIN_CONFIDENCE = 0.15


# (key, shape, dtype) per file kind; "N" is the frame count, "V" the number of views (see aistpp.shapes).
_SCHEMAS = {
    "keypoints2d": {
        "keypoints2d": (("V", "N", NUM_JOINTS, 3), np.float32),
        "det_scores": (("V", "N"), np.float32),
        "timestamps": (("N",), np.int64),
        "box_source": (("V", "N"), np.uint8),  # ours only: aistpp.detect.localize.BOX_SOURCES codes
    },
    "keypoints3d": {
        "keypoints3d": (("N", NUM_JOINTS, 3), np.float64),
        "keypoints3d_optim": (("N", NUM_JOINTS, 3), np.float64),
    },
    "motions": {
        "smpl_poses": (("N", 72), np.float32),
        "smpl_trans": (("N", 3), np.float32),
        "smpl_scaling": ((1,), np.float32),
    },
}
_OPTIONAL = {"keypoints3d": {"keypoints3d_optim"}, "keypoints2d": {"det_scores", "timestamps", "box_source"}, "motions": set()}


def _check(kind: str, data, path) -> dict:
    if not isinstance(data, dict):
        raise AistppError(f"expected a dict of arrays for {kind}, got {type(data).__name__}", path)
    schema = _SCHEMAS[kind]
    out: dict = {}
    dims: dict = {}
    for key, (shape, dtype) in schema.items():
        if key not in data:
            if key in _OPTIONAL[kind]:
                continue
            raise AistppError(f"missing key {key!r} (has {sorted(data)})", path)
        arr = np.asarray(data[key])
        if arr.dtype == object or not match_shape(arr.shape, shape, dims):
            bound = ", ".join(f"{k}={v}" for k, v in dims.items())
            raise AistppError(f"{key} has shape {arr.shape}, expected {format_spec(shape)}"
                              + (f" ({bound})" if bound else ""), path)
        out[key] = arr.astype(dtype, copy=False)
    if kind == "motions":
        out["smpl_loss"] = float(data.get("smpl_loss", np.nan))
    return out


def _load(path) -> object:
    """The pickle at ``path``; an empty file is reported as empty (not as a pickle it cannot parse)."""
    try:
        empty = Path(path).stat().st_size == 0
    except OSError:
        empty = False  # missing / unreadable: load_pickle says so
    if empty:
        raise AistppError("file is empty (0 bytes)", path)
    return load_pickle(path)


def _check_views(data, path) -> None:
    """The official keypoints2d has one row per camera c01..c09: a wrong count is named before the shapes."""
    if isinstance(data, dict) and "keypoints2d" in data:
        shape = np.shape(data["keypoints2d"])
        if len(shape) == 4 and shape[0] != NUM_VIEWS:
            raise AistppError(f"keypoints2d has {shape[0]} views, expected {NUM_VIEWS} (one per camera "
                              f"c01..c{NUM_VIEWS:02d})", path)


def read_keypoints2d(path: str | Path) -> dict:
    """keypoints2d pkl -> {keypoints2d (V, N, 17, 3) float32, det_scores (V, N), timestamps (N,) int64 us}.

    V must be 9 (cameras c01..c09). Missing det_scores / timestamps are filled (1 where detected / 60 fps from 0)."""
    data = _load(path)
    _check_views(data, path)
    out = _check("keypoints2d", data, path)
    kp = out["keypoints2d"]
    if "det_scores" not in out:
        out["det_scores"] = np.where(np.isnan(kp[..., 2]).all(axis=-1), 0, 1).astype(np.float32)
    if "timestamps" not in out:
        out["timestamps"] = frame_timestamps(kp.shape[1])
    return out


def read_keypoints3d(path: str | Path) -> dict:
    """keypoints3d pkl -> {keypoints3d (N, 17, 3) cm, keypoints3d_optim (N, 17, 3) cm when present}."""
    return _check("keypoints3d", _load(path), path)


def read_motion(path: str | Path) -> dict:
    """motions pkl -> {smpl_poses (N, 72), smpl_trans (N, 3) cm, smpl_scaling (1,), smpl_loss float}."""
    return _check("motions", _load(path), path)


def write_keypoints2d(path, keypoints2d, det_scores=None, timestamps=None, box_source=None) -> None:
    """Write the official keypoints2d pkl (validated like the reader); ``box_source`` (V, N) uint8: where
    ``aistpp detect`` found each person box (an extra key, :data:`aistpp.detect.localize.BOX_SOURCES`)."""
    kp = np.asarray(keypoints2d, np.float32)
    data = {"keypoints2d": kp,
            "det_scores": np.asarray(det_scores if det_scores is not None
                                     else np.where(np.isnan(kp[..., 2]).all(-1), 0, 1), np.float32),
            "timestamps": np.asarray(timestamps if timestamps is not None else frame_timestamps(kp.shape[1]),
                                     np.int64)}
    if box_source is not None:
        data["box_source"] = np.asarray(box_source, np.uint8)
    save_pickle(_check("keypoints2d", data, path), path)


def write_keypoints3d(path, keypoints3d, keypoints3d_optim=None) -> None:
    """Write the official keypoints3d pkl. ``keypoints3d_optim`` defaults to ``keypoints3d``."""
    k3 = np.asarray(keypoints3d, np.float64)
    data = {"keypoints3d": k3,
            "keypoints3d_optim": np.asarray(k3 if keypoints3d_optim is None else keypoints3d_optim, np.float64)}
    save_pickle(_check("keypoints3d", data, path), path)


def write_motion(path, smpl_poses, smpl_trans, smpl_scaling, smpl_loss=float("nan")) -> None:
    """Write the official motions pkl: smpl_poses (N, 72), smpl_trans (N, 3) cm, smpl_scaling (1,), smpl_loss."""
    data = {"smpl_poses": smpl_poses, "smpl_trans": smpl_trans,
            "smpl_scaling": np.asarray(smpl_scaling, np.float32).reshape(-1), "smpl_loss": float(smpl_loss)}
    save_pickle(_check("motions", data, path), path)


def frame_timestamps(n_frames: int, fps: float = FPS) -> np.ndarray:
    """Timestamps in microseconds of frames 0..N-1 at ``fps`` (official: round(i * 1e6 / 60))."""
    return np.round(np.arange(n_frames) * (1e6 / fps)).astype(np.int64)


def write_name_list(path: str | Path, names) -> None:
    atomic_write_text(path, "".join(f"{n}\n" for n in names))


def read_mapping(path: str | Path) -> dict[str, str]:
    """``mapping.txt`` -> {sequence: setting}, in file order."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise AistppError("mapping file not found", path) from None
    if not any(line.strip() for line in lines):
        raise AistppError("mapping file is empty", path)
    mapping: dict[str, str] = {}
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].startswith("setting"):
            raise AistppError(f"line {i}: expected '<sequence> <setting>', got {line.strip()!r}", path)
        try:
            mapping[parse_name(parts[0]).sequence] = parts[1]
        except AistppError as err:
            raise AistppError(f"line {i}: {err}", path) from None
    return mapping


def write_mapping(path: str | Path, mapping: dict[str, str]) -> None:
    atomic_write_text(path, "".join(f"{s} {t}\n" for s, t in mapping.items()))


@dataclass(frozen=True)
class AnnotationTree:
    """An official annotation directory. Paths are derived; :meth:`check` says what is missing."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @classmethod
    def open(cls, root: str | Path) -> "AnnotationTree":
        """Open ``root`` (must be a directory holding at least ``cameras/``)."""
        tree = cls(Path(root))
        if not tree.root.is_dir():
            raise AistppError("annotation directory not found", tree.root)
        if not tree.cameras_dir.is_dir():
            raise AistppError("not an AIST++ annotation tree: no cameras/ folder", tree.root)
        return tree

    @property
    def cameras_dir(self) -> Path:
        return self.root / "cameras"

    @property
    def mapping_path(self) -> Path:
        return self.cameras_dir / "mapping.txt"

    @property
    def ignore_list_path(self) -> Path:
        return self.root / "ignore_list.txt"

    def split_path(self, name: str) -> Path:
        return self.root / "splits" / f"{name}.txt"

    def path(self, kind: str, sequence: str) -> Path:
        """Path of ``kind`` (keypoints2d, keypoints3d, motions) for a sequence."""
        if kind not in _SCHEMAS:
            raise AistppError(f"unknown annotation kind {kind!r}; expected one of {sorted(_SCHEMAS)}")
        return self.root / kind / f"{parse_name(sequence).sequence}.pkl"

    def mapping(self) -> dict[str, str]:
        return read_mapping(self.mapping_path)

    def settings(self) -> list[str]:
        return sorted(p.stem for p in self.cameras_dir.glob("setting*.json"))

    def cameras(self, setting: str) -> CameraGroup:
        path = self.cameras_dir / f"{setting}.json"
        if not path.exists():
            raise AistppError(f"camera setting {setting!r} not found", path)
        return load_cameras(path)

    def cameras_for(self, sequence: str) -> CameraGroup:
        """The camera group of the setting ``mapping.txt`` assigns to ``sequence``."""
        seq = parse_name(sequence).sequence
        mapping = self.mapping()
        if seq not in mapping:
            raise AistppError(f"sequence {seq} is not in mapping.txt", self.mapping_path)
        return self.cameras(mapping[seq])

    def ignore_list(self) -> list[str]:
        return read_name_list(self.ignore_list_path) if self.ignore_list_path.exists() else []

    def sequences(self, kind: str) -> list[str]:
        """Sequences that have a file of ``kind`` (sorted)."""
        folder = self.root / kind
        return sorted(p.stem for p in folder.glob("*.pkl")) if folder.is_dir() else []

    def read(self, kind: str, sequence: str) -> dict:
        """Read one annotation file of ``kind`` for ``sequence``."""
        reader = {"keypoints2d": read_keypoints2d, "keypoints3d": read_keypoints3d, "motions": read_motion}[kind]
        return reader(self.path(kind, sequence))
