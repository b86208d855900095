"""Between the corpus and the official formats: pack an official annotation tree as it is, export a corpus as an
official tree (keypoints2d, keypoints3d, motions, cameras, mapping) or as canonical SMPL ``.npz`` files."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from aistpp.corpus.reader import Corpus
from aistpp.corpus.writer import CorpusWriter
from aistpp.errors import AistppError
from aistpp.naming import check_sequence_name, check_token, parse_name

log = logging.getLogger(__name__)


def camera_arrays(cameras) -> dict:
    """A :class:`aistpp.io.cameras.CameraGroup` -> the corpus ``cameras/*`` arrays."""
    return {"cameras/K": cameras.K, "cameras/dist": cameras.dist, "cameras/rvec": cameras.rvec,
            "cameras/tvec": cameras.tvec, "cameras/size": np.asarray([c.size for c in cameras], np.int64),
            "cameras/names": np.asarray(cameras.names, dtype=object)}


def sequence_attrs(sequence: str, setting: str | None = None, fps: float = 60.0, quality: dict | None = None) -> dict:
    """The attributes stored with a sequence: name fields (genre, situation, dancer, music, tempo, choreography),
    setting, fps and quality flags."""
    attrs = parse_name(sequence).as_dict()
    attrs.update({"setting": setting or "", "fps": fps, "quality": dict(quality or {})})
    return attrs


def import_official(annotations: str | Path, out: str | Path, sequences=None, progress: bool = False) -> dict:
    """Pack the official annotation tree ``annotations`` into the corpus ``out`` as it is: for each sequence every
    file that exists (keypoints2d, keypoints3d, motions) and its cameras. Resumable (sequences already imported from
    files of the same content, sha256, and the same cameras are skipped). A file whose name is not a sequence is
    reported under ``failed`` and the rest imported. Returns {"imported", "skipped", "failed": {seq: reason}}."""
    from aistpp.progress import tqdm

    from aistpp.corpus.manifest import config_hash, file_sha256
    from aistpp.io.annotations import AnnotationTree

    tree = AnnotationTree.open(annotations)
    mapping = tree.mapping() if tree.mapping_path.exists() else {}
    found = sorted(set(tree.sequences("keypoints2d")) | set(tree.sequences("keypoints3d"))
                   | set(tree.sequences("motions")))
    result = {"imported": 0, "skipped": 0, "failed": {}}
    if sequences is not None:
        wanted = [parse_name(s).sequence for s in sequences]
        found = [s for s in wanted if s in set(found)] + [s for s in wanted if s not in set(found)]
    else:  # a stray file whose name is not a sequence is reported and the rest imported
        for name in [s for s in found if not _is_sequence_name(s)]:
            reason = f"not an AIST++ sequence name (file {name}.pkl ignored)"
            log.warning("%s: %s", name, reason)
            result["failed"][name] = reason
        found = [s for s in found if _is_sequence_name(s)]
    ignore = set(tree.ignore_list())
    with CorpusWriter(out) as writer:
        for seq in tqdm(found, desc="import", unit="seq", disable=not progress):
            files = {k: tree.path(k, seq) for k in ("keypoints2d", "keypoints3d", "motions")}
            present = {k: p for k, p in files.items() if p.exists()}
            setting = mapping.get(seq)
            cam_file = tree.cameras_dir / f"{setting}.json" if setting else None
            config = {"source": "official",  # content fingerprints: an edited file is re-imported
                      "files": {k: {"name": p.name, "sha256": file_sha256(p)} for k, p in present.items()},
                      "setting": setting,
                      "cameras_sha256": file_sha256(cam_file) if cam_file and cam_file.is_file() else None}
            if writer.is_done(seq, config_hash(config)):
                result["skipped"] += 1
                continue
            try:
                if not present:
                    raise AistppError("no keypoints2d, keypoints3d or motions file")
                arrays: dict = {}
                if "keypoints2d" in present:
                    arrays.update(tree.read("keypoints2d", seq))
                if "keypoints3d" in present:
                    arrays.update(tree.read("keypoints3d", seq))
                if "motions" in present:
                    m = tree.read("motions", seq)
                    arrays.update({"smpl/poses": m["smpl_poses"], "smpl/trans": m["smpl_trans"],
                                   "smpl/scaling": m["smpl_scaling"], "smpl/loss": m["smpl_loss"]})
                if setting:
                    arrays.update(camera_arrays(tree.cameras(setting)))
                quality = {"ignore_list": seq in ignore}
                writer.add_sequence(seq, arrays, sequence_attrs(seq, setting, quality=quality), config,
                                    stats=_official_stats(arrays))
                result["imported"] += 1
            except AistppError as err:
                log.warning("%s: %s", seq, err)
                writer.add_failure(seq, str(err), config)
                result["failed"][seq] = str(err)
        writer.compact()
    return result


def _is_sequence_name(name: str) -> bool:
    try:
        check_sequence_name(name)
    except AistppError:
        return False
    return True


def _official_stats(arrays: dict) -> dict:
    stats = {}
    if "smpl/loss" in arrays:
        stats["smpl_loss"] = float(np.asarray(arrays["smpl/loss"]))
    return stats


OFFICIAL_SPLITS = ("crossmodal_train", "crossmodal_val", "crossmodal_test", "pose_train", "pose_test")


def loadtxt_lines(lines: list[str]) -> str:
    """Text of a list file that ``np.loadtxt(path, dtype=str)`` reads the way the official scripts expect.

    numpy squeezes a one-line file (a mapping row becomes a 1-D (2,) array that the official ``AISTDataset``
    cannot unpack; a one-name split becomes a 0-d array whose ``.tolist()`` is a str that mint's ``seq_names +=``
    splits into characters), so a lone line is written twice: the readers then see a 2-D / 1-D array, and a
    repeated sequence changes no mean (dict keys, ``not in`` tests and per-sequence averages are unaffected).
    """
    if len(lines) == 1:
        lines = lines * 2
    return "".join(f"{line}\n" for line in lines)


def export_official(corpus: str | Path | Corpus, out: str | Path, sequences=None) -> dict:
    """Write the official annotation tree under ``out``: ``keypoints2d/``, ``keypoints3d/`` (``keypoints3d`` =
    robust per-frame result, ``keypoints3d_optim`` = temporally optimized), ``motions/``, ``cameras/<setting>.json``,
    ``cameras/mapping.txt``, ``splits/<name>.txt`` (:data:`OFFICIAL_SPLITS`, the official rules of
    :mod:`aistpp.splits` over the exported sequences; ignored ones included, as in the release) and
    ``ignore_list.txt`` (sequences flagged ``quality.ignore_list``). Only what a sequence stores is written.

    ``mapping.txt`` lists every exported sequence whose setting is known (cameras stored, or a ``setting``
    attribute); every list file loads with ``np.loadtxt(path, dtype=str)`` as the official ``AISTDataset`` and
    mint's / Bailando's preprocessing read it (:func:`loadtxt_lines`), also for a single sequence.
    Returns counts per kind, ``splits`` (split files written) and ``ignored`` (names in ignore_list.txt).
    """
    from aistpp.io.annotations import write_keypoints2d, write_keypoints3d, write_motion
    from aistpp.io.atomic import atomic_write_text
    from aistpp.io.cameras import save_cameras
    from aistpp.splits import crossmodal_subset, pose_subset

    c = corpus if isinstance(corpus, Corpus) else Corpus(corpus)
    out = Path(out)
    counts = {"keypoints2d": 0, "keypoints3d": 0, "motions": 0, "cameras": 0}
    mapping: dict[str, str] = {}
    written_settings: dict[str, object] = {}
    exported: list[str] = []
    ignored: list[str] = []
    for seq in sequences or c.sequences():
        check_sequence_name(seq, c.root)  # names become file names under out/
        fields = set(c.fields(seq))
        attrs = c.attrs(seq)
        wrote = False
        if "keypoints2d" in fields:
            d = c.read(seq, [f for f in ("keypoints2d", "det_scores", "timestamps") if f in fields])
            write_keypoints2d(out / "keypoints2d" / f"{seq}.pkl", d["keypoints2d"], d.get("det_scores"),
                              d.get("timestamps"))
            counts["keypoints2d"] += 1
            wrote = True
        if "keypoints3d" in fields or "keypoints3d_optim" in fields:
            d = c.read(seq, [f for f in ("keypoints3d", "keypoints3d_optim") if f in fields])
            k3 = d.get("keypoints3d", d.get("keypoints3d_optim"))
            write_keypoints3d(out / "keypoints3d" / f"{seq}.pkl", k3, d.get("keypoints3d_optim"))
            counts["keypoints3d"] += 1
            wrote = True
        if "smpl/poses" in fields:
            d = c.read(seq, ("smpl/poses", "smpl/trans", "smpl/scaling") + (("smpl/loss",) if "smpl/loss" in fields
                                                                             else ()))
            write_motion(out / "motions" / f"{seq}.pkl", d["smpl/poses"], d["smpl/trans"], d["smpl/scaling"],
                         float(d.get("smpl/loss", np.nan)))
            counts["motions"] += 1
            wrote = True
        if "cameras/K" in fields:
            cams = c.cameras(seq)
            setting = check_token(attrs.get("setting") or f"setting_{seq}", "camera setting", c.root)
            prev = written_settings.get(setting)
            if prev is None:
                save_cameras(cams, out / "cameras" / f"{setting}.json")
                written_settings[setting] = cams
                counts["cameras"] += 1
            elif not np.allclose(prev.projection_matrices, cams.projection_matrices):
                setting = f"{setting}_{seq}"
                save_cameras(cams, out / "cameras" / f"{setting}.json")
                counts["cameras"] += 1
                log.warning("%s: cameras differ from others of its setting; written as %s", seq, setting)
            mapping[seq] = setting
        elif wrote and attrs.get("setting"):
            mapping[seq] = str(attrs["setting"])
        if wrote:
            exported.append(seq)
            if (attrs.get("quality") or {}).get("ignore_list"):
                ignored.append(seq)
    (out / "cameras").mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "cameras" / "mapping.txt", loadtxt_lines([f"{s} {t}" for s, t in mapping.items()]))
    if exported and not mapping:
        log.warning("%s: no exported sequence has a known camera setting; mapping.txt is empty", out)
    split_counts: dict[str, int] = {}
    for split in OFFICIAL_SPLITS:
        kind, subset = split.split("_")
        rule = crossmodal_subset if kind == "crossmodal" else pose_subset
        names = [s for s in exported if rule(parse_name(s)) == subset]
        atomic_write_text(out / "splits" / f"{split}.txt", loadtxt_lines(names))
        split_counts[split] = len(names)
    atomic_write_text(out / "ignore_list.txt", loadtxt_lines(ignored))
    counts["splits"] = len(split_counts)
    counts["ignored"] = len(ignored)
    log.info("exported %d sequences to %s (mapping %d, splits %s)", len(exported), out, len(mapping), split_counts)
    return counts


def export_npz(corpus: str | Path | Corpus, out: str | Path, sequences=None) -> int:
    """Write ``<seq>.npz`` per sequence with canonical SMPL in metres: ``poses`` (N, 72) axis-angle, ``trans``
    (N, 3) m = smpl_trans / smpl_scaling (the official loaders' convention), ``scaling`` (1,), ``trans_cm`` (N, 3),
    ``betas`` (10,) zeros, ``gender`` 'male', ``mocap_framerate`` 60. Returns the number of files written."""
    from aistpp.io.atomic import atomic_path

    c = corpus if isinstance(corpus, Corpus) else Corpus(corpus)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for seq in sequences or c.sequences():
        check_sequence_name(seq, c.root)  # names become file names under out/
        if "smpl/poses" not in c.fields(seq):
            log.warning("%s: no SMPL motion stored; skipped", seq)
            continue
        d = c.read(seq, ("smpl/poses", "smpl/trans", "smpl/scaling"))
        scale = float(np.asarray(d["smpl/scaling"]).ravel()[0])
        with atomic_path(out / f"{seq}.npz", suffix=".npz") as tmp:
            np.savez(tmp, poses=d["smpl/poses"].astype(np.float32),
                     trans=(d["smpl/trans"] / scale).astype(np.float32),
                     scaling=np.asarray([scale], np.float32), trans_cm=d["smpl/trans"].astype(np.float32),
                     betas=np.zeros(10, np.float32), gender=np.asarray("male"),
                     mocap_framerate=np.asarray(float(c.attrs(seq).get("fps", 60))))
        n += 1
    return n
