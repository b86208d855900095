"""How close the music features come to mint's / Bailando's, computed with librosa 0.8.1.

    python benchmarks/music_compat.py --python081 /path/to/venv-with-librosa-0.8.1/bin/python [--audio song.wav]

The reference runs mint's ``tools/preprocessing.py`` calls (onset_strength, mfcc, chroma_cens, onset_detect,
beat_track with the music's start tempo and tightness 100, all at 30720 Hz, hop 512) in a second interpreter
that has librosa 0.8.1 (e.g. ``pip install librosa==0.8.1 numpy==1.23.5 scipy==1.11.4 numba==0.57.1
resampy==0.2.2 soundfile``). In this process the same file goes through ``aistpp.audio.music_features`` with the
current librosa (``compat=None``) and with ``compat="librosa-0.8.1"``, and the signal 0.8.1 loaded (resampy 0.2.2)
through ``features_from_signal`` in compat mode (what remains once loading is equal). Printed per block: the largest absolute
difference over the block's largest value, the frames where it is, and the beat / onset-peak frames that differ.
Without ``--audio`` a 30 s synthetic song (drums at 100 BPM, chords, bass, noise) is written and used.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REFERENCE = r'''
import sys, numpy as np, librosa
path, tempo, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
sr, hop = 60 * 512, 512
data, _ = librosa.load(path, sr=sr)
envelope = librosa.onset.onset_strength(data, sr=sr)
mfcc = librosa.feature.mfcc(data, sr=sr, n_mfcc=20).T
chroma = librosa.feature.chroma_cens(data, sr=sr, hop_length=hop, n_chroma=12).T
peak = np.zeros_like(envelope, dtype=np.float32)
peak[librosa.onset.onset_detect(onset_envelope=envelope.flatten(), sr=sr, hop_length=hop)] = 1.0
_, beats = librosa.beat.beat_track(onset_envelope=envelope, sr=sr, hop_length=hop, start_bpm=tempo, tightness=100)
beat = np.zeros_like(envelope, dtype=np.float32)
beat[beats] = 1.0
np.save(out, np.concatenate([envelope[:, None], mfcc, chroma, peak[:, None], beat[:, None]], axis=-1))
np.save(out + ".signal.npy", data)
print(librosa.__version__)
'''


def synthetic_song(path: Path, seconds: float = 30.0, tempo: float = 100.0, sr: int = 44100) -> None:
    import soundfile as sf

    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    beat = 60.0 / tempo
    y = np.zeros_like(t)
    for k, onset in enumerate(np.arange(0.3, seconds - 0.5, beat / 2)):
        i = int(onset * sr)
        n = int(0.15 * sr)
        env = np.exp(-np.arange(n) / (0.03 * sr))
        if k % 2 == 0:   # kick on the beat, hi-hat between
            hit = np.sin(2 * np.pi * 60 * np.arange(n) / sr * (1 + 2 * env)) * env
        else:
            hit = 0.3 * rng.normal(size=n) * env ** 3
        y[i:i + n] += hit[:len(y) - i]
    chords = ([220.0, 277.2, 329.6], [196.0, 246.9, 293.7], [174.6, 220.0, 261.6], [196.0, 246.9, 329.6])
    for bar in range(int(seconds / (4 * beat)) + 1):
        sl = (t >= bar * 4 * beat) & (t < (bar + 1) * 4 * beat)
        for f in chords[bar % 4]:
            y[sl] += 0.08 * np.sin(2 * np.pi * f * t[sl])
        y[sl] += 0.1 * np.sin(2 * np.pi * chords[bar % 4][0] / 2 * t[sl])
    y += 0.003 * rng.normal(size=len(y))
    sf.write(path, (0.5 * y / np.abs(y).max()).astype(np.float32), sr, subtype="PCM_16")


def compare(name: str, ours: np.ndarray, ref: np.ndarray) -> list[str]:
    n = min(len(ours), len(ref))
    lines = [f"{name}: {len(ours)} frames (reference {len(ref)})"]
    for block, sl in (("envelope", slice(0, 1)), ("mfcc", slice(1, 21)), ("chroma_cens", slice(21, 33))):
        d = np.abs(ours[:n, sl] - ref[:n, sl])
        scale = np.abs(ref[:n, sl]).max()
        worst = np.flatnonzero(d.max(axis=1) > 1e-3 * scale)
        inner = d[2:n - 2].max() / scale if n > 4 else float("nan")
        lines.append(f"  {block:12s} max |diff| / max = {d.max() / scale:.2e} (frames 2..N-3: {inner:.2e}); "
                     f"frames above 1e-3: {len(worst)}{' e.g. ' + str(worst[:4].tolist()) if len(worst) else ''}")
    for block, col in (("onset peaks", 33), ("beats", 34)):
        a, b = set(np.flatnonzero(ours[:n, col])), set(np.flatnonzero(ref[:n, col]))
        lines.append(f"  {block:12s} {len(a)} vs {len(b)}; only ours {sorted(a - b)[:6]}, only 0.8.1 "
                     f"{sorted(b - a)[:6]}")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--python081", required=True, help="a Python interpreter with librosa 0.8.1")
    ap.add_argument("--audio", help="music file named after its AIST id (default: a synthetic song at 100 BPM)")
    ap.add_argument("--tempo", type=float, default=100.0, help="start tempo of the beat tracker (default 100)")
    args = ap.parse_args(argv)

    from aistpp.audio import AudioConfig, feature_settings, features_from_signal, music_features

    with tempfile.TemporaryDirectory() as tmp:
        audio = Path(args.audio) if args.audio else Path(tmp) / "song.wav"
        if not args.audio:
            synthetic_song(audio, tempo=args.tempo)
        script = Path(tmp) / "reference.py"
        script.write_text(REFERENCE)
        out = Path(tmp) / "ref.npy"
        t = time.perf_counter()
        proc = subprocess.run([args.python081, str(script), str(audio), str(args.tempo), str(out)],
                              capture_output=True, text=True)
        if proc.returncode:
            print(proc.stderr[-2000:], file=sys.stderr)
            return 1
        t_ref = time.perf_counter() - t
        ref = np.load(out)
        lines = [f"reference: librosa {proc.stdout.strip()} in {args.python081} ({t_ref:.1f} s incl. start-up)"]
        for compat in (None, "librosa-0.8.1"):
            cfg = AudioConfig(compat=compat)
            t = time.perf_counter()
            ours = music_features(audio, tempo=args.tempo, config=cfg)
            secs = time.perf_counter() - t
            versions = feature_settings(cfg)["versions"]
            lines += compare(f"aistpp compat={compat} (librosa {versions['librosa']}, soxr {versions['soxr']}, "
                             f"{secs:.1f} s)", ours, ref)
        y081 = np.load(str(out) + ".signal.npy")
        ours = features_from_signal(y081, tempo=args.tempo, config=AudioConfig(compat="librosa-0.8.1"))
        lines += compare("aistpp compat=librosa-0.8.1 on the signal librosa 0.8.1 loaded", ours, ref)
        from aistpp.audio import load_audio

        y_ours = load_audio(audio)
        n = min(len(y081), len(y_ours))
        d = np.abs(y_ours[:n] - y081[:n])
        lines.append(f"loading (soxr_hq vs 0.8.1's resampy kaiser_best): |diff| median {np.median(d):.1e}, max "
                     f"{d.max():.1e} (signal max {np.abs(y081).max():.2f}); {len(y_ours)} vs {len(y081)} samples")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
