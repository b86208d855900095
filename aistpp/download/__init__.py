"""``aistpp download``: the AIST++ annotations, videos and music, resumable and verified.

    from aistpp.download import TransferConfig, download_videos
    report = download_videos("videos/", genres=("gBR",), views=("c01",), config=TransferConfig(workers=8))
    print("\\n".join(report.lines()))

:mod:`aistpp.download.release` knows the release (URLs, terms, lists, selection, layout);
:mod:`aistpp.download.transfer` moves bytes (parallel, ``.part`` + HTTP Range resume, retries, size and checksum
checks, atomic rename); :mod:`aistpp.download.archive` extracts zips safely (no zip slip).
"""

from aistpp.download.archive import extract_zip, safe_entry_path
from aistpp.download.release import (ANNOTATIONS_URL, ENV, KINDS, MUSIC_URL, MUSIC_WAV_URL, TERMS_URL, VIDEO_LIST_URL,
                                     VIDEOS_URL, download, download_annotations, download_music, download_videos,
                                     select_music, select_videos, terms_text)
from aistpp.download.transfer import DownloadReport, FileTask, TransferConfig, fetch_files

__all__ = ["ANNOTATIONS_URL", "DownloadReport", "ENV", "FileTask", "KINDS", "MUSIC_URL", "MUSIC_WAV_URL",
           "TERMS_URL", "TransferConfig", "VIDEOS_URL", "VIDEO_LIST_URL", "download", "download_annotations",
           "download_music", "download_videos", "extract_zip", "fetch_files", "safe_entry_path", "select_music",
           "select_videos", "terms_text"]
