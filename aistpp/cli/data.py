"""Verbs for music features and the PyTorch data side: ``add-music``."""

from __future__ import annotations

import logging

log = logging.getLogger("aistpp.add-music")


def register(sub) -> None:
    p = sub.add_parser(
        "add-music", help="compute FACT music features (35-d, 60 fps) and cache them in a corpus",
        description="Compute the 35-d FACT music features (librosa at 30720 Hz, hop 512: onset envelope, MFCC 20, "
                    "chroma_cens 12, onset peaks, beats tracked from the music's AIST tempo) of every music the "
                    "corpus's sequences use, from DIR/<music_id>.wav (or .mp3/.flac/.ogg), and store them in the "
                    "corpus per music id. Already cached features are kept unless --overwrite. Motion/music length "
                    "mismatches and missing files are reported. Needs the 'audio' extra (librosa).")
    p.add_argument("corpus", metavar="CORPUS", help="corpus directory (from aistpp reconstruct / import-official)")
    p.add_argument("--music", metavar="DIR", required=True, help="folder with <music_id>.wav files, e.g. mBR0.wav")
    p.add_argument("--music-id", metavar="ID[,ID]",
                   help="only these music ids (default: every music the corpus's sequences use)")
    p.add_argument("--overwrite", action="store_true", help="recompute features that are already cached")
    p.add_argument("--compat", choices=("librosa-0.8.1",),
                   help="compute the features as librosa 0.8.1 did (mint, Bailando): onset fmax 11025 Hz, reflect "
                        "padding, 0.8.1's beat tracker; default: current librosa")
    p.set_defaults(func=cmd_add_music)


def cmd_add_music(args) -> int:
    from aistpp.audio import AudioConfig, add_music_to_corpus

    ids = [m.strip() for m in args.music_id.split(",") if m.strip()] if args.music_id else None
    result = add_music_to_corpus(args.corpus, args.music, music_ids=ids, overwrite=args.overwrite,
                                 config=AudioConfig(compat=args.compat), progress=True)
    print(f"music features: {len(result['added'])} added, {len(result['cached'])} already cached, "
          f"{len(result['missing'])} missing")
    for mid, seqs in sorted(result["missing"].items()):
        print(f"missing {mid}: no file in {args.music}; {len(seqs)} sequence(s) without music")
    for a in result["alignment"]:
        print(f"length mismatch {a['sequence']}: {a['motion_frames']} motion frames, music {a['music_id']} has "
              f"{a['music_frames']} ({a['missing']} motion frames without music)")
    return 1 if result["missing"] else 0
