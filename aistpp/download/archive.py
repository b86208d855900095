"""Safe zip extraction: every entry is checked before anything is written (no absolute paths, no ``..``, no
drive letters, no symlinks, no duplicate names: no zip slip), each file is written atomically and its CRC-32 is
checked while it is read.
"""

from __future__ import annotations

import logging
import re
import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath
from typing import Callable

from aistpp.errors import AistppError
from aistpp.io.atomic import atomic_path

log = logging.getLogger(__name__)

_DRIVE = re.compile(r"^[A-Za-z]:")


def safe_entry_path(name: str) -> PurePosixPath | None:
    """The relative path an archive entry may be written to, ``None`` for a directory entry; raises
    :class:`ValueError` for a name that would escape the target (absolute, drive letter, ``..``)."""
    norm = name.replace("\\", "/")
    if norm.startswith("/") or _DRIVE.match(norm):
        raise ValueError("absolute path")
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise ValueError("'..' in the path")
    if not parts or norm.endswith("/"):
        return None
    return PurePosixPath(*parts)


def plan_extraction(zf: zipfile.ZipFile, archive, strip_top: bool = True,
                    select: Callable[[PurePosixPath], PurePosixPath | None] | None = None
                    ) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """[(entry, relative target)] for the files of ``zf``. Raises :class:`AistppError` naming the archive and the
    entry when any entry is unsafe, so nothing is extracted from such an archive.

    ``strip_top``: drop a top-level folder that every file is under (``aist_plusplus_final/cameras/...`` ->
    ``cameras/...``). ``select``: maps a relative path to its target, or ``None`` to skip it.
    """
    files: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
    for info in zf.infolist():
        try:
            rel = safe_entry_path(info.filename)
        except ValueError as err:
            raise AistppError(f"refusing to extract: entry {info.filename!r} would be written outside the target "
                              f"({err}; zip slip)", archive) from None
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise AistppError(f"refusing to extract: entry {info.filename!r} is a symbolic link", archive)
        if rel is not None and not info.is_dir():
            files.append((info, rel))
    if strip_top and files:
        tops = {rel.parts[0] for _, rel in files}
        if len(tops) == 1 and all(len(rel.parts) > 1 for _, rel in files):
            files = [(info, PurePosixPath(*rel.parts[1:])) for info, rel in files]
    if select is not None:
        files = [(info, sel) for info, rel in files if (sel := select(rel)) is not None]
    seen: dict[PurePosixPath, str] = {}
    for info, rel in files:
        if rel in seen:
            raise AistppError(f"refusing to extract: entries {seen[rel]!r} and {info.filename!r} both write {rel}",
                              archive)
        seen[rel] = info.filename
    return files


def extract_zip(archive: str | Path, dest: str | Path, strip_top: bool = True,
                select: Callable[[PurePosixPath], PurePosixPath | None] | None = None,
                progress: bool = False) -> dict[str, int]:
    """Extract the files of ``archive`` under ``dest`` safely; returns {relative path: size}.

    Raises :class:`AistppError` for an archive that is not a zip, has an unsafe entry (nothing is written then),
    or fails its CRC check (files already extracted stay; they are whole).
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    written: dict[str, int] = {}
    try:
        with zipfile.ZipFile(archive) as zf:
            plan = plan_extraction(zf, archive, strip_top, select)
            for _, rel in plan:  # belt and braces: a symlinked folder already in dest must not lead outside it
                target = (dest / rel).resolve()
                if root != target and root not in target.parents:
                    raise AistppError(f"refusing to extract {rel}: it resolves outside {dest}", archive)
            from tqdm import tqdm

            for info, rel in tqdm(plan, desc=f"extract {archive.name}", unit="file", disable=not progress):
                target = dest / rel
                for stale in target.parent.glob(f".{target.name}.*.extract"):  # left by a killed extraction
                    stale.unlink(missing_ok=True)
                with zf.open(info) as src, atomic_path(target, suffix=".extract") as tmp:
                    with open(tmp, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)  # zipfile checks the CRC-32 at the end
                written[str(rel)] = info.file_size
    except zipfile.BadZipFile as err:
        raise AistppError(f"not a valid zip archive or corrupt entry: {err}", archive) from None
    log.info("extracted %d files from %s into %s", len(written), archive, dest)
    return written
