"""The AIST++ release: where its files live, their terms, which to fetch, and where they go.

Defaults are the URLs the official AIST++ API (``downloader.py``) and its users fetch from; each can be changed
per call (``--base-url``, ``--list-url``) or by an environment variable (for a mirror):

=============  =================================================================  ========================
what           default                                                            environment variable
=============  =================================================================  ========================
annotations    :data:`ANNOTATIONS_URL` (one zip of the annotation tree)           ``AISTPP_ANNOTATIONS_URL``
videos         :data:`VIDEOS_URL` + ``<video>.mp4``                               ``AISTPP_VIDEOS_URL``
video list     :data:`VIDEO_LIST_URL` (12,670 names)                              ``AISTPP_VIDEO_LIST_URL``
music (mp3)    :data:`MUSIC_URL` + ``<music_id>.mp3``                             ``AISTPP_MUSIC_URL``
music (wav)    :data:`MUSIC_WAV_URL` (one zip of the 60 wav files)                ``AISTPP_MUSIC_WAV_URL``
music list     the 60 ids of :data:`aistpp.naming.MUSIC_IDS`                      ``AISTPP_MUSIC_LIST_URL``
=============  =================================================================  ========================

Layout under ``out``: videos ``<video>.mp4`` (what ``--videos DIR`` reads), music ``<music_id>.mp3|wav`` (what
``--music DIR`` reads), annotations the tree itself (``cameras/``, ``keypoints2d/``...; what ``--annotations DIR``
reads). Bookkeeping (cached lists, archives, extraction records) lives in ``out/.aistpp-download/``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path, PurePosixPath
from urllib.parse import quote, urlsplit

from aistpp.download.archive import extract_zip
from aistpp.download.transfer import DownloadReport, FileTask, TransferConfig, fetch_files, fetch_one
from aistpp.errors import AistppError
from aistpp.io.atomic import atomic_write_text
from aistpp.naming import MUSIC_IDS, VIEWS, music_genre, parse_name

log = logging.getLogger(__name__)

ANNOTATIONS_URL = "https://storage.googleapis.com/aist_plusplus_public/20210308/fullset.zip"
VIDEOS_URL = "https://aistdancedb.ongaaccel.jp/v1.0.0/video/10M/"
VIDEO_LIST_URL = "https://storage.googleapis.com/aist_plusplus_public/20121228/video_list.txt"
MUSIC_URL = "https://aistdancedb.ongaaccel.jp/v1.0.0/audio/mp3/"
MUSIC_WAV_URL = "https://aistdancedb.ongaaccel.jp/v1.0.0/audio/wav.zip"
TERMS_URL = "https://aistdancedb.ongaaccel.jp/terms_of_use/"

ENV = {
    "annotations": "AISTPP_ANNOTATIONS_URL",
    "videos": "AISTPP_VIDEOS_URL",
    "video_list": "AISTPP_VIDEO_LIST_URL",
    "music": "AISTPP_MUSIC_URL",
    "music_wav": "AISTPP_MUSIC_WAV_URL",
    "music_list": "AISTPP_MUSIC_LIST_URL",
}
DEFAULTS = {"annotations": ANNOTATIONS_URL, "videos": VIDEOS_URL, "video_list": VIDEO_LIST_URL,
            "music": MUSIC_URL, "music_wav": MUSIC_WAV_URL, "music_list": None}
KINDS = ("annotations", "videos", "music")
STATE_DIR = ".aistpp-download"

_DB_TERMS = (
    "The AIST++ videos and music are part of the AIST Dance Video Database (AIST Dance DB) of the National Institute "
    "of Advanced Industrial Science and Technology (AIST), Japan. Using them is subject to its Terms of Use:\n\n"
    f"    {TERMS_URL}\n\n"
    "Read them before downloading: by accepting, you confirm that you have read them and will use the videos "
    "and music only as they allow.")
_ANNOTATION_TERMS = (
    "The AIST++ annotations (cameras, 2D/3D keypoints, SMPL motions, splits) are released by Google under the "
    "Creative Commons Attribution 4.0 licence (https://creativecommons.org/licenses/by/4.0/). They describe "
    "recordings of the AIST Dance Video Database, whose Terms of Use also apply:\n\n"
    f"    {TERMS_URL}")
TERMS = {"annotations": _ANNOTATION_TERMS, "videos": _DB_TERMS, "music": _DB_TERMS}


def terms_text(kind: str) -> str:
    """The terms a user must accept before downloading ``kind``."""
    return TERMS[kind]


def resolve_url(key: str, given: str | None = None) -> str | None:
    """``given`` (a flag), else the environment variable of ``key``, else the default."""
    return given or os.environ.get(ENV[key]) or DEFAULTS[key]


def file_url(base: str, filename: str) -> str:
    """``base`` (a folder URL, with or without the trailing slash) joined with ``filename``."""
    return base.rstrip("/") + "/" + quote(filename)


def _state(out: Path) -> Path:
    return out / STATE_DIR


def _cache_name(url: str) -> str:
    tail = PurePosixPath(urlsplit(url).path).name or "list.txt"
    return f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{tail}"


def fetch_text(url: str, out: Path, config: TransferConfig = TransferConfig(), what: str = "list") -> str:
    """The text at ``url`` (or a local file path), cached in ``out/.aistpp-download/lists`` so a rerun asks the
    server nothing. The fetch itself is resumable and retried like any file."""
    if not urlsplit(url).scheme or urlsplit(url).scheme == "file":
        path = Path(urlsplit(url).path if urlsplit(url).scheme == "file" else url)
        try:
            return path.read_text()
        except OSError as err:
            raise AistppError(f"cannot read the {what}: {err.strerror}", path) from None
    dest = _state(out) / "lists" / _cache_name(url)
    rep = fetch_one(FileTask(url, dest, name=what), config)
    if rep.failed:
        raise AistppError(f"could not fetch the {what}: {rep.failed[what]}", url)
    return dest.read_text()


def parse_name_list(text: str, source: str, kind: str = "video") -> list[str]:
    """Names one per line (blank lines and ``#`` comments skipped), validated; duplicates dropped, order kept."""
    names: list[str] = []
    for i, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if kind == "music":
            if line not in MUSIC_IDS:
                raise AistppError(f"line {i}: unknown music id {line!r}", source)
        else:
            try:
                if not parse_name(line).is_video:
                    raise AistppError(f"{line!r} is a sequence name (cAll), expected a video name (c01..c09)")
            except AistppError as err:
                raise AistppError(f"line {i}: {err}", source) from None
        names.append(line)
    return list(dict.fromkeys(names))


def read_checksums(source: str | None, out: Path, config: TransferConfig = TransferConfig()) -> dict[str, str]:
    """``sha256sum`` style lines (``<hex>  <file name>``) from a file or URL -> {file name: sha256}."""
    if not source:
        return {}
    sums: dict[str, str] = {}
    for i, line in enumerate(fetch_text(source, out, config, what="checksum list").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or len(parts[0]) != 64 or any(c not in "0123456789abcdefABCDEF" for c in parts[0]):
            raise AistppError(f"line {i}: expected '<sha256 hex>  <file name>', got {line[:80]!r}", source)
        sums[PurePosixPath(parts[1].lstrip("*").strip()).name] = parts[0].lower()
    return sums


# ----------------------------------------------------------------------------------------------- selection

def split_sequences(split: str, sequences: list[str], annotations: str | Path | None = None) -> list[str]:
    """The sequences of ``split``: a file of names, a split file of the annotation tree (``DIR/splits``), or a
    split regenerated from the names (``crossmodal_train``, ``pose_test``...; the ignore list of ``annotations``
    is applied when given, otherwise the published lists are regenerated, ignored sequences included)."""
    from aistpp.io.annotations import read_name_list
    from aistpp.splits import KINDS as SPLIT_KINDS
    from aistpp.splits import SUBSETS, SplitSpec, make_splits

    p = Path(split)
    if p.is_file():
        return read_name_list(p)
    ignore: list[str] = []
    if annotations is not None:
        from aistpp.io.annotations import AnnotationTree

        tree = AnnotationTree.open(annotations)
        if tree.split_path(split).is_file():
            return read_name_list(tree.split_path(split))
        ignore = tree.ignore_list()
    kind, _, subset = split.rpartition("_")
    if kind not in SPLIT_KINDS or subset not in SUBSETS or kind == "genre":
        raise AistppError(f"unknown split {split!r}: expected a file of names or one of "
                          f"{', '.join(f'{k}_{s}' for k in SPLIT_KINDS if k != 'genre' for s in SUBSETS)}")
    spec = SplitSpec(kind=kind, keep_ignored=annotations is None)
    return make_splits(sequences, spec, ignore=ignore)[subset]


def _parse_views(views) -> tuple[str, ...] | None:
    if not views:
        return None
    if isinstance(views, str):
        views = [v for v in views.split(",") if v.strip()]
    out = tuple(v.strip() for v in views)
    for v in out:
        if v not in VIEWS:
            raise AistppError(f"unknown view {v!r}; expected c01..c09")
    return out


def select_videos(names: list[str], sequences=None, genres=None, split=None, views=None,
                  annotations=None) -> list[str]:
    """Video names of the list ``names`` (in list order) that match every given filter. ``sequences`` may mix
    sequence names (all their views in the list) and video names (that view only); a name the list does not
    have is an error."""
    views = _parse_views(views)
    keep_videos: set[str] = set()
    keep_seqs: set[str] | None = None
    if sequences:
        parsed = [parse_name(s) for s in sequences]
        keep_videos = {str(p) for p in parsed if p.is_video}
        keep_seqs = {p.sequence for p in parsed if not p.is_video}
        listed_seqs = {parse_name(n).sequence for n in names}
        missing = sorted(keep_videos - set(names)) + sorted(keep_seqs - listed_seqs)
        if missing:
            raise AistppError(f"not in the video list: {', '.join(missing[:5])}"
                              + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
    elif split:
        all_seqs = list(dict.fromkeys(parse_name(n).sequence for n in names))
        keep_seqs = set(split_sequences(split, all_seqs, annotations))
    out = []
    for n in names:
        name = parse_name(n)
        if keep_seqs is not None and n not in keep_videos and name.sequence not in keep_seqs:
            continue
        if genres and name.genre not in genres:
            continue
        if views and name.camera not in views:
            continue
        out.append(n)
    return out


def select_music(music_ids: list[str], sequences=None, genres=None, split=None, annotations=None,
                 video_names: list[str] | None = None) -> list[str]:
    """Music ids (in list order) used by the given sequences / split, of the given genres. ``video_names``: the
    video or sequence names a ``split`` is drawn from."""
    wanted = None
    if sequences:
        wanted = {parse_name(s).music for s in sequences}
    elif split:
        seqs = list(dict.fromkeys(parse_name(n).sequence for n in (video_names or ())))
        wanted = {parse_name(s).music for s in split_sequences(split, seqs, annotations)}
    return [m for m in music_ids if (wanted is None or m in wanted) and (not genres or music_genre(m) in genres)]


# ------------------------------------------------------------------------------------------------ the verbs

def download_videos(out: str | Path, base_url: str | None = None, list_url: str | None = None,
                    sequences=None, genres=None, split=None, views=None, annotations=None,
                    checksums: str | None = None, config: TransferConfig = TransferConfig(),
                    progress: bool = False) -> DownloadReport:
    """Fetch the selected videos as ``out/<video>.mp4``. Returns the report (failures are listed there)."""
    out = Path(out)
    base_url, list_url = resolve_url("videos", base_url), resolve_url("video_list", list_url)
    names = parse_name_list(fetch_text(list_url, out, config, what="video list"), list_url)
    chosen = select_videos(names, sequences, genres, split, views, annotations)
    sums = read_checksums(checksums, out, config)
    tasks = [FileTask(file_url(base_url, f"{n}.mp4"), out / f"{n}.mp4", name=f"{n}.mp4",
                      sha256=sums.get(f"{n}.mp4")) for n in chosen]
    log.info("%d of %d videos selected from %s -> %s", len(tasks), len(names), base_url, out)
    return fetch_files(tasks, config, progress, out=out)


def download_music(out: str | Path, base_url: str | None = None, list_url: str | None = None,
                   fmt: str = "mp3", sequences=None, genres=None, split=None, annotations=None,
                   checksums: str | None = None, config: TransferConfig = TransferConfig(),
                   progress: bool = False, keep_archive: bool = False) -> DownloadReport:
    """Fetch the selected music as ``out/<music_id>.mp3`` (one file each) or ``.wav`` (from the wav archive)."""
    out = Path(out)
    if fmt not in ("mp3", "wav"):
        raise AistppError(f"unknown music format {fmt!r}; expected mp3 or wav")
    list_url = resolve_url("music_list", list_url)
    ids = (parse_name_list(fetch_text(list_url, out, config, what="music list"), list_url, kind="music")
           if list_url else list(MUSIC_IDS))
    video_names = None
    if split and not sequences:  # the names the split is drawn from: the tree's mapping, else the video list
        if annotations is not None:
            from aistpp.io.annotations import AnnotationTree

            video_names = list(AnnotationTree.open(annotations).mapping())
        else:
            vl = resolve_url("video_list")
            video_names = parse_name_list(fetch_text(vl, out, config, what="video list"), vl)
    chosen = select_music(ids, sequences, genres, split, annotations, video_names)
    sums = read_checksums(checksums, out, config)
    if fmt == "mp3":
        base_url = resolve_url("music", base_url)
        tasks = [FileTask(file_url(base_url, f"{m}.mp3"), out / f"{m}.mp3", name=f"{m}.mp3",
                          sha256=sums.get(f"{m}.mp3")) for m in chosen]
        return fetch_files(tasks, config, progress, out=out)
    url = resolve_url("music_wav", base_url)
    want = set(chosen)

    def select(rel: PurePosixPath):
        return PurePosixPath(rel.name) if rel.suffix.lower() == ".wav" and rel.stem in want else None

    targets = [f"{m}.wav" for m in chosen]
    return _download_archive(out, url, select=select, strip_top=False, targets=targets, checksums=sums,
                             config=config, progress=progress, keep_archive=keep_archive)


def download_annotations(out: str | Path, url: str | None = None, checksums: str | None = None,
                         config: TransferConfig = TransferConfig(), progress: bool = False,
                         keep_archive: bool = False) -> DownloadReport:
    """Fetch the annotation archive, check it and extract it safely into ``out`` (``out/cameras/``,
    ``out/keypoints2d/``...: what ``--annotations DIR`` reads)."""
    out = Path(out)
    url = resolve_url("annotations", url)
    sums = read_checksums(checksums, out, config)
    rep = _download_archive(out, url, select=None, strip_top=True, targets=None, checksums=sums, config=config,
                            progress=progress, keep_archive=keep_archive, require="cameras")
    return rep


def _download_archive(out: Path, url: str, select, strip_top: bool, targets: list[str] | None,
                      checksums: dict, config: TransferConfig, progress: bool, keep_archive: bool,
                      require: str | None = None) -> DownloadReport:
    """Fetch a zip into ``out/.aistpp-download/`` and extract it into ``out``. A record of what was extracted
    (``<archive>.extracted.json``) makes a rerun skip both steps while those files are there."""
    name = PurePosixPath(urlsplit(url).path).name
    if name in ("", ".", ".."):
        name = "archive.zip"
    archive = _state(out) / name
    record = _state(out) / f"{name}.extracted.json"
    report = DownloadReport(out=str(out), requested=1)
    if _already_extracted(out, record, url, targets):
        report.present.append(name)
        return report
    rep = fetch_files([FileTask(url, archive, name=name, sha256=checksums.get(name))], config, progress, out=out)
    report.merge(rep)
    report.seconds = rep.seconds
    if rep.failed:
        return report
    try:
        files = extract_zip(archive, out, strip_top=strip_top, select=select, progress=progress)
        if require and not (out / require).is_dir():
            raise AistppError(f"no {require}/ folder in the archive: not the AIST++ annotation tree", archive)
        missing = sorted(set(targets or ()) - set(files))
        if missing:
            raise AistppError(f"not in the archive: {', '.join(missing)}", archive)
    except AistppError as err:
        report.failed[name] = str(err)
        report.downloaded = [n for n in report.downloaded if n != name]
        report.resumed = [n for n in report.resumed if n != name]
        archive.unlink(missing_ok=True)  # a rerun fetches it again instead of trusting a bad archive
        log.warning("%s", err)
        return report
    atomic_write_text(record, json.dumps({"url": url, "files": files}, indent=1, sort_keys=True))
    report.extracted = len(files)
    if not keep_archive:
        archive.unlink(missing_ok=True)
    return report


def _already_extracted(out: Path, record: Path, url: str, targets: list[str] | None) -> bool:
    if targets and all((out / t).is_file() for t in targets):
        return True
    if not record.is_file():
        return False
    try:
        data = json.loads(record.read_text())
        files = dict(data["files"])
    except (ValueError, KeyError, TypeError):
        return False
    if data.get("url") != url or (targets is not None and not set(targets) <= set(files)):
        return False
    for rel, size in files.items():
        p = out / rel
        if not p.is_file() or p.stat().st_size != size:
            return False
    return True


def download(kind: str, out: str | Path, **kwargs) -> DownloadReport:
    """``download("videos", out, ...)``: dispatch to :func:`download_annotations`, :func:`download_videos` or
    :func:`download_music`."""
    funcs = {"annotations": download_annotations, "videos": download_videos, "music": download_music}
    if kind not in funcs:
        raise AistppError(f"unknown download {kind!r}; expected one of {', '.join(KINDS)}")
    return funcs[kind](out, **kwargs)
