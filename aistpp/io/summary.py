"""What is in an annotation tree: counts per genre, files per kind, shapes, frames and NaN fractions."""

from __future__ import annotations

import numpy as np

from aistpp.errors import AistppError
from aistpp.io.annotations import AnnotationTree
from aistpp.splits import genre_counts

KINDS = ("keypoints2d", "keypoints3d", "motions")


def summarize_tree(tree: AnnotationTree, max_files: int | None = None) -> dict:
    """Summarize ``tree``. Reads every annotation pkl (or the first ``max_files`` per kind) and every camera
    setting; a malformed file is reported in ``problems`` (one line naming the file) and the rest is summarized."""
    problems: list[str] = []
    try:
        mapping = tree.mapping() if tree.mapping_path.exists() else {}
    except AistppError as err:
        problems.append(str(err))
        mapping = {}
    settings = tree.settings()
    if not settings:
        problems.append(str(AistppError("no camera settings (setting*.json) in cameras/", tree.cameras_dir)))
    for s in settings:
        try:
            tree.cameras(s)  # validates every camera file
        except AistppError as err:
            problems.append(str(err))
    missing_settings = sorted(set(mapping.values()) - set(settings))
    if missing_settings:
        problems.append(str(AistppError(f"mapping.txt names settings with no camera file: "
                                        f"{', '.join(missing_settings)}", tree.mapping_path)))
    out: dict = {
        "root": str(tree.root),
        "mapping_sequences": len(mapping),
        "genres": genre_counts(mapping),
        "settings": settings,
        "ignore_list": len(tree.ignore_list()),
        "splits": sorted(p.stem for p in (tree.root / "splits").glob("*.txt")),
        "files": {},
        "problems": problems,
    }
    for kind in KINDS:
        seqs = tree.sequences(kind)
        stats = {"count": len(seqs), "frames": 0, "shapes": {}, "nan_fraction": {}, "unreadable": 0}
        nan_counts: dict[str, list[int]] = {}
        for seq in seqs[:max_files]:
            try:
                data = tree.read(kind, seq)
            except AistppError as err:
                problems.append(str(err))
                stats["unreadable"] += 1
                continue
            for key, arr in data.items():
                if not isinstance(arr, np.ndarray):
                    continue
                stats["shapes"].setdefault(key, str(tuple(arr.shape)))
                if arr.dtype.kind == "f":
                    c = nan_counts.setdefault(key, [0, 0])
                    c[0] += int(np.isnan(arr).sum())
                    c[1] += arr.size
            n = next(a for a in data.values() if isinstance(a, np.ndarray))
            stats["frames"] += int(n.shape[1] if kind == "keypoints2d" else n.shape[0])
        stats["nan_fraction"] = {k: (c[0] / c[1] if c[1] else 0.0) for k, c in nan_counts.items()}
        out["files"][kind] = stats
    return out


def format_summary(summary: dict) -> list[str]:
    lines = [f"annotation tree {summary['root']}",
             f"  sequences in mapping.txt: {summary['mapping_sequences']}",
             "  per genre: " + ", ".join(f"{g} {n}" for g, n in summary["genres"].items()),
             f"  camera settings: {len(summary['settings'])} ({', '.join(summary['settings'])})",
             f"  ignore list: {summary['ignore_list']} sequences; split files: {', '.join(summary['splits']) or '-'}"]
    for kind, st in summary["files"].items():
        shapes = "; ".join(f"{k} {s}" for k, s in st["shapes"].items())
        nan = ", ".join(f"{k} {v:.2%}" for k, v in st["nan_fraction"].items())
        lines.append(f"  {kind}: {st['count']} files, {st['frames']} frames" + (f"; {shapes}" if shapes else "")
                     + (f"; {st['unreadable']} unreadable" if st.get("unreadable") else ""))
        if nan:
            lines.append(f"    NaN: {nan}")
    for p in summary.get("problems", []):
        lines.append(f"  PROBLEM {p}")
    return lines
