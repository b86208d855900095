"""The ``download`` verb: the AIST++ annotations, videos and music, resumable and verified."""

from __future__ import annotations

import json
import sys

from aistpp.errors import AistppError


def register(sub) -> None:
    p = sub.add_parser(
        "download", help="fetch the AIST++ annotations, videos or music (parallel, resumable, verified)",
        description="Fetch part of the AIST++ release into --out. videos: <video>.mp4 per view from the AIST Dance "
                    "DB (default list: the official video_list.txt, 12,670 videos); music: <music_id>.mp3 (or .wav "
                    "from the wav archive); annotations: the official zip, checked and extracted safely into the "
                    "annotation tree (cameras/, keypoints2d/, ...) that --annotations DIR reads. Files arrive as "
                    ".part and are renamed when complete (size checked against the server's, sha256 with "
                    "--checksums); an interrupted run resumes partial files with HTTP Range requests; timeouts, "
                    "dropped connections and 5xx answers are retried with exponential backoff. A rerun fetches "
                    "only what is missing. Exit status 1 when some file failed (the report says which and why). "
                    "URLs default to the official ones; environment variables AISTPP_ANNOTATIONS_URL, "
                    "AISTPP_VIDEOS_URL, AISTPP_VIDEO_LIST_URL, AISTPP_MUSIC_URL, AISTPP_MUSIC_WAV_URL, "
                    "AISTPP_MUSIC_LIST_URL change them for a mirror.")
    p.add_argument("what", choices=("annotations", "videos", "music"), help="which part of the release to fetch")
    p.add_argument("--out", required=True, metavar="DIR", help="destination folder (created; a rerun resumes it)")
    sel = p.add_mutually_exclusive_group()
    sel.add_argument("--sequences", nargs="+", metavar="NAME",
                     help="videos/music: only these sequences (all their views) or video names (one view)")
    sel.add_argument("--split", metavar="NAME|FILE",
                     help="videos/music: a split (crossmodal_train, crossmodal_test, pose_test, ...) or a file of "
                          "sequence names")
    p.add_argument("--genre", metavar="G[,G]", help="videos/music: only these genres, e.g. gBR,gPO")
    p.add_argument("--views", metavar="c01[,c02]", help="videos: only these views (default all 9)")
    p.add_argument("--annotations", metavar="DIR",
                   help="with --split: annotation tree whose splits/ files and ignore list are used (default: "
                        "regenerate the published split lists from the names)")
    p.add_argument("--format", dest="fmt", choices=("mp3", "wav"), default="mp3",
                   help="music: one mp3 per track (default) or the wav files of the official wav archive")
    p.add_argument("--base-url", metavar="URL",
                   help="videos/music mp3: folder URL of the files; annotations/music wav: URL of the zip "
                        "(default: the official source, or the AISTPP_*_URL environment variable)")
    p.add_argument("--list-url", metavar="URL|FILE",
                   help="videos/music: list of names to choose from, one per line (default: the official "
                        "video list / the 60 music ids)")
    p.add_argument("--checksums", metavar="URL|FILE",
                   help="sha256sum-style list ('<sha256>  <file name>'): files named there are checked")
    p.add_argument("--agree-terms", action="store_true",
                   help="accept the terms of use without the interactive prompt (for scripts); read them first: "
                        "https://aistdancedb.ongaaccel.jp/terms_of_use/")
    from aistpp.download.transfer import TransferConfig

    cfg = TransferConfig()  # the defaults live there
    p.add_argument("--workers", type=int, default=cfg.workers, metavar="N",
                   help=f"files transferred in parallel (default {cfg.workers})")
    p.add_argument("--retries", type=int, default=cfg.retries, metavar="N",
                   help=f"retries of a file in a row without progress before it fails (default {cfg.retries})")
    p.add_argument("--backoff", type=float, default=cfg.backoff, metavar="S",
                   help=f"first retry delay in seconds, doubled per retry up to {cfg.backoff_max:g} s "
                        f"(default {cfg.backoff:g})")
    p.add_argument("--timeout", type=float, default=cfg.timeout, metavar="S",
                   help=f"connect and read timeout in seconds (default {cfg.timeout:g})")
    p.add_argument("--keep-archive", action="store_true",
                   help="annotations/music wav: keep the zip in DIR/.aistpp-download after extracting it")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_download)


def _check_options(args) -> None:
    what = args.what
    if what == "annotations":
        for opt, value in (("--sequences", args.sequences), ("--split", args.split), ("--genre", args.genre),
                           ("--views", args.views), ("--list-url", args.list_url)):
            if value:
                raise AistppError(f"{opt} selects videos or music; the annotations come as one archive")
    if what != "videos" and args.views:
        raise AistppError("--views applies to videos only")
    if what != "music" and args.fmt != "mp3":
        raise AistppError("--format applies to music only")
    if args.annotations and not args.split:
        raise AistppError("--annotations is used with --split only")


def accept_terms(what: str, agreed: bool) -> None:
    """Show the terms and ask, unless ``agreed``; without a terminal to ask on, fail with a clear message."""
    from aistpp.download.release import TERMS_URL, terms_text

    if agreed:
        return
    if not sys.stdin.isatty():
        raise AistppError(f"the terms of use must be accepted before downloading {what}: read {TERMS_URL} and pass "
                          "--agree-terms (no terminal to ask on)")
    print(terms_text(what), file=sys.stderr)
    answer = input("\nDo you agree with these Terms of Use? [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise AistppError("terms of use not accepted; nothing downloaded")


def cmd_download(args) -> int:
    from aistpp.download import TransferConfig, download
    from aistpp.naming import parse_genres

    _check_options(args)
    config = TransferConfig(workers=args.workers, retries=args.retries, backoff=args.backoff, timeout=args.timeout)
    accept_terms(args.what, args.agree_terms)
    common = dict(checksums=args.checksums, config=config, progress=sys.stderr.isatty())
    if args.what == "annotations":
        report = download("annotations", args.out, url=args.base_url, keep_archive=args.keep_archive, **common)
    else:
        select = dict(sequences=args.sequences, genres=parse_genres(args.genre), split=args.split,
                      annotations=args.annotations, base_url=args.base_url, list_url=args.list_url)
        if args.what == "videos":
            report = download("videos", args.out, views=args.views, **select, **common)
        else:
            report = download("music", args.out, fmt=args.fmt, keep_archive=args.keep_archive, **select, **common)
    print(json.dumps(report.to_dict(), indent=2) if args.json else "\n".join(report.lines()))
    return 0 if report.ok else 1
