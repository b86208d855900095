"""Music features for FACT: 35 numbers per frame at 60 fps, computed exactly as mint does.

mint (``tools/preprocessing.py``) loads the wav at ``sr = FPS * HOP = 60 * 512 = 30720`` Hz so one hop of 512
samples is one motion frame, then concatenates per frame::

    [ onset envelope (1) | MFCC (20) | chroma_cens (12) | onset-peak one-hot (1) | beat one-hot (1) ]  = 35

with ``librosa.onset.onset_strength``, ``librosa.feature.mfcc(n_mfcc=20)``, ``librosa.feature.chroma_cens
(n_chroma=12)``, ``librosa.onset.onset_detect`` on the envelope and ``librosa.beat.beat_track`` on the envelope
started at the music's tempo (``aistpp.naming.music_tempo``) with ``tightness=100``; hop 512 everywhere (librosa's
default n_fft 2048 for the envelope and MFCC). Frame ``i`` is centred on time ``i / 60`` s (librosa ``center=True``),
so music frame ``i`` and the motion frame with timestamp ``i / 60`` s line up.

librosa is an optional dependency (``pip install aistpp[audio]``), imported inside the functions; it JIT-compiles
for ~25 s on first use in a process. The librosa version and every parameter are stored with cached features
(:func:`feature_settings`); features cached by another librosa version or settings are recomputed.

``AudioConfig(compat="librosa-0.8.1")`` computes the features as mint and Bailando did with librosa 0.8.1, as far
as current librosa allows: onset envelope from a mel spectrogram limited to 11025 Hz (0.8.1's default ``fmax``),
STFT and CQT frames padded by reflection (0.8.1's ``pad_mode``), and the 0.8.1 beat tracker
(:func:`beat_track_librosa081`: its dynamic program, which also scores predecessors before frame 0, and its
trimming, which keeps ``beats[first_valid:last_valid]`` and so always drops the last beat). On the signal 0.8.1
loaded, envelope, MFCC, onset peaks and beats then equal 0.8.1's exactly. Not reproducible with current packages:
0.8.1 resampled with resampy 0.2.2 ``kaiser_best``, and resampy >= 0.3 resamples differently (further from it
than soxr, which compat mode therefore keeps), and librosa >= 0.10's constant-Q filters differ by ~1% (chroma).
Measured in docs/data.md (``python benchmarks/music_compat.py``).

Alignment: :func:`align_music` maps motion timestamps (microseconds) to music frames and reports, never hides, a
length mismatch (:class:`MusicAlignment`). :func:`add_music_to_corpus` computes the features of every music a
corpus needs from ``<music_dir>/<music_id>.wav`` (or .mp3/.flac/.ogg) and caches them in the corpus per music id.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from aistpp.errors import AistppError
from aistpp.naming import MUSIC_IDS, music_tempo

log = logging.getLogger(__name__)

FPS = 60
HOP_LENGTH = 512
SAMPLE_RATE = FPS * HOP_LENGTH  # 30720
MUSIC_DIM = 35
AUDIO_EXTENSIONS = (".wav", ".mp3", ".flac", ".ogg")
# Column slices of the 35-d feature vector.
ENVELOPE = slice(0, 1)
MFCC = slice(1, 21)
CHROMA = slice(21, 33)
PEAK = 33
BEAT = 34


COMPAT_MODES = (None, "librosa-0.8.1")


@dataclass(frozen=True)
class AudioConfig:
    """Music feature settings; the defaults are mint's (FACT paper) and should not be changed for FACT.

    ``compat``: None (current librosa's defaults, what mint's code gives when run today) or ``"librosa-0.8.1"``
    (the defaults of librosa 0.8.1, which mint and Bailando ran; see the module docstring)."""

    fps: int = FPS
    hop_length: int = HOP_LENGTH
    n_mfcc: int = 20
    n_chroma: int = 12
    tightness: float = 100.0
    compat: str | None = None

    def __post_init__(self):
        if self.compat not in COMPAT_MODES:
            raise AistppError(f"AudioConfig: compat must be one of {COMPAT_MODES}, got {self.compat!r}")

    @property
    def sample_rate(self) -> int:
        """Audio is resampled to ``fps * hop_length`` Hz so that one hop is one frame."""
        return self.fps * self.hop_length

    def librosa_kwargs(self) -> dict:
        """The librosa keyword arguments each step is called with (beyond sr and hop_length)."""
        if self.compat == "librosa-0.8.1":
            # loading and CQT downsampling stay with soxr: resampy >= 0.3 is not the resampy 0.2.2 that 0.8.1 ran
            # and measures further from it (benchmarks/music_compat.py)
            return {"load": {"res_type": "soxr_hq"},
                    "onset_strength": {"n_fft": 2048, "fmax": 11025.0, "pad_mode": "reflect"},
                    "mfcc": {"n_fft": 2048, "pad_mode": "reflect"},
                    "cqt": {"pad_mode": "reflect", "res_type": "soxr_hq"},
                    "beat_track": {"tracker": "librosa-0.8.1", "trim": True}}
        return {"load": {"res_type": "soxr_hq"}, "onset_strength": {"n_fft": 2048},
                "mfcc": {"n_fft": 2048}, "cqt": {}, "beat_track": {"tracker": "librosa", "trim": True}}

    def to_dict(self) -> dict:
        d = asdict(self)
        d["sample_rate"] = self.sample_rate
        d["layout"] = "envelope1,mfcc20,chroma_cens12,peak1,beat1"
        d["librosa_kwargs"] = self.librosa_kwargs()
        return d


def feature_settings(config: "AudioConfig" = None) -> dict:
    """Everything that determines cached music features: the config with every librosa keyword argument, and the
    versions of librosa, soxr, numpy and scipy."""
    from importlib import metadata

    config = config or AudioConfig()
    versions = {}
    for dist in ("librosa", "soxr", "numpy", "scipy"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {**config.to_dict(), "versions": versions}


def _librosa():
    try:
        import librosa
    except ImportError:
        raise AistppError("music features need librosa; install the extra: pip install 'aistpp[audio]'") from None
    return librosa


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE, res_type: str = "soxr_hq") -> np.ndarray:
    """Read a wav/mp3/flac/ogg file as mono float32 resampled to ``sample_rate`` Hz -> (S,). ``res_type``: the
    librosa resampler (``soxr_hq``: librosa >= 0.10's default; resampy's ``kaiser_best`` needs resampy)."""
    path = Path(path)
    if not path.is_file():
        raise AistppError("music file not found", path)
    librosa = _librosa()
    import warnings

    try:
        with warnings.catch_warnings():  # librosa's audioread fallback warns; a failure is reported below
            warnings.filterwarnings("ignore", message="PySoundFile failed", category=UserWarning)
            warnings.filterwarnings("ignore", category=FutureWarning, module="librosa")
            y, _ = librosa.load(str(path), sr=sample_rate, mono=True, res_type=res_type)
    except Exception as err:  # soundfile / audioread raise many types
        raise AistppError(f"cannot read audio ({type(err).__name__}: {err})", path) from None
    if y.size == 0:
        raise AistppError("audio file has no samples", path)
    return np.ascontiguousarray(y, dtype=np.float32)


def features_from_signal(y: np.ndarray, tempo: float | None = None,
                         config: AudioConfig = AudioConfig()) -> np.ndarray:
    """35-d features of a mono signal already at ``config.sample_rate`` Hz.

    Args:
        y: (S,) float samples.
        tempo: start tempo in BPM for beat tracking (None: librosa's default, 120).
    Returns:
        (T, 35) float32 with T = 1 + S // hop_length, frame i centred at i / fps seconds.
    """
    librosa = _librosa()
    sr, hop = config.sample_rate, config.hop_length
    kw = config.librosa_kwargs()
    y = np.asarray(y, dtype=np.float32)
    envelope = librosa.onset.onset_strength(y=y, sr=sr, hop_length=hop, **kw["onset_strength"])  # (T,)
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=config.n_mfcc, hop_length=hop, **kw["mfcc"]).T  # (T, 20)
    if kw["cqt"]:
        # chroma_cens's own CQT: 7 octaves of 36 bins from C1, tuning estimated from the signal (its defaults)
        cqt = np.abs(librosa.cqt(y=y, sr=sr, hop_length=hop, n_bins=7 * 36, bins_per_octave=36, tuning=None,
                                 **kw["cqt"]))
        chroma = librosa.feature.chroma_cens(C=cqt, sr=sr, hop_length=hop, n_chroma=config.n_chroma,
                                             bins_per_octave=36).T
    else:
        chroma = librosa.feature.chroma_cens(y=y, sr=sr, hop_length=hop, n_chroma=config.n_chroma).T  # (T, 12)
    peaks = librosa.onset.onset_detect(onset_envelope=envelope, sr=sr, hop_length=hop)
    beat_kw = {} if tempo is None else {"start_bpm": float(tempo)}
    if kw["beat_track"]["tracker"] == "librosa-0.8.1":
        beats = beat_track_librosa081(envelope, sr=sr, hop_length=hop, tightness=config.tightness,
                                      trim=kw["beat_track"]["trim"], **beat_kw)
    else:
        _, beats = librosa.beat.beat_track(onset_envelope=envelope, sr=sr, hop_length=hop,
                                           tightness=config.tightness, trim=kw["beat_track"]["trim"], **beat_kw)
    n = min(len(envelope), len(mfcc), len(chroma))
    if max(len(envelope), len(mfcc), len(chroma)) - n > 1:
        raise AistppError(f"librosa feature lengths disagree: envelope {len(envelope)}, mfcc {len(mfcc)}, "
                          f"chroma {len(chroma)}")
    out = np.zeros((n, 3 + config.n_mfcc + config.n_chroma), dtype=np.float32)
    out[:, 0] = envelope[:n]
    out[:, 1:1 + config.n_mfcc] = mfcc[:n]
    out[:, 1 + config.n_mfcc:1 + config.n_mfcc + config.n_chroma] = chroma[:n]
    peaks, beats = np.asarray(peaks, dtype=int), np.asarray(beats, dtype=int)
    out[peaks[peaks < n], -2] = 1.0
    out[beats[beats < n], -1] = 1.0
    return out


def beat_track_librosa081(envelope, sr: int = SAMPLE_RATE, hop_length: int = HOP_LENGTH, start_bpm: float = 120.0,
                          tightness: float = 100.0, trim: bool = True, bpm: float | None = None) -> np.ndarray:
    """Beat frames of an onset envelope as librosa 0.8.1's ``beat_track`` finds them (our implementation of its
    algorithm; the tempo estimate is current librosa's ``feature.tempo``, unchanged since 0.8).

    Period ``P = round(60 sr / hop / bpm)`` frames; local score = envelope / std (ddof 1) convolved ("same") with
    exp(-0.5 (32 k / P)^2), k = -P..P; dynamic program over predecessors ``i - 2P .. i - round(P / 2)`` weighted
    by ``-tightness log(d / P)^2``, where predecessors before frame 0 count with a cumulative score of 0 (librosa
    >= 0.10 skips them); a frame starts the chain while its local score is below 1% of the maximum; the last beat
    is the last local maximum of the cumulative score above half their median; then the beats' local scores,
    smoothed by a 5-point Hann window [0, .5, 1, .5, 0], above half their RMS (0 without ``trim``) bound the
    kept range ``beats[first:last]`` (the last valid beat excluded, as 0.8.1 slices). Returns (K,) int64 frames.
    """
    from scipy.signal import convolve

    env = np.asarray(envelope)
    if env.ndim != 1:
        raise AistppError(f"onset envelope must be 1-D, got {env.shape}")
    if not env.any():
        return np.zeros(0, np.int64)
    if bpm is None:
        librosa = _librosa()
        bpm = float(librosa.feature.tempo(onset_envelope=env, sr=sr, hop_length=hop_length,
                                          start_bpm=start_bpm)[0])
    if bpm <= 0 or tightness <= 0:
        raise AistppError(f"beat tracking needs a positive tempo and tightness, got {bpm}, {tightness}")
    period = round(60.0 * sr / hop_length / bpm)
    std = env.std(ddof=1)
    norm = env / std if std > 0 else env
    k = np.arange(-period, period + 1)
    local = convolve(norm, np.exp(-0.5 * (k * 32.0 / period) ** 2), "same")
    n = len(local)
    # predecessor offsets, farthest first (argmax keeps the first of equal candidates)
    rel = np.arange(-2 * period, -int(np.round(period / 2)) + 1)
    weight = -tightness * np.log(-rel / period) ** 2
    cumscore = np.zeros(n, dtype=local.dtype)
    backlink = np.zeros(n, np.int64)
    start_threshold = 0.01 * local.max()
    chain_started = False
    for i in range(n):
        pos = i + rel
        cand = weight + np.where(pos >= 0, cumscore[np.maximum(pos, 0)], 0.0)
        best = int(np.argmax(cand))
        cumscore[i] = local[i] + cand[best]
        if not chain_started and local[i] < start_threshold:
            backlink[i] = -1
        else:
            backlink[i] = pos[best]
            chain_started = True
    padded = np.concatenate([cumscore[:1], cumscore, cumscore[-1:]])
    maxima = (cumscore > padded[:-2]) & (cumscore >= padded[2:])
    median = np.median(cumscore[maxima])
    beats = [int(np.flatnonzero(cumscore * maxima * 2 > median).max())]
    while backlink[beats[-1]] >= 0:
        beats.append(int(backlink[beats[-1]]))
    beats = np.asarray(beats[::-1], np.int64)
    smooth = convolve(local[beats], np.array([0.0, 0.5, 1.0, 0.5, 0.0]), "same")
    threshold = 0.5 * np.sqrt(np.mean(smooth ** 2)) if trim else 0.0
    valid = np.flatnonzero(smooth > threshold)
    return beats[valid.min():valid.max()]


def music_id_of(path: str | Path) -> str | None:
    """The music id a file is named after (``.../mBR2.wav`` -> ``mBR2``), or None."""
    stem = Path(path).stem
    return stem if stem in MUSIC_IDS else None


def music_features(path: str | Path, tempo: float | None = None, config: AudioConfig = AudioConfig()) -> np.ndarray:
    """35-d music features at 60 fps of an audio file -> (T, 35) float32.

    ``tempo`` (BPM) starts the beat tracker; by default it is the AIST tempo of the music id the file is named
    after (``mBR2.wav`` -> 100 BPM), or librosa's default 120 BPM for other names (logged).
    """
    if tempo is None:
        mid = music_id_of(path)
        if mid is not None:
            tempo = music_tempo(mid)
        else:
            log.warning("%s: not named after an AIST music id; beat tracking starts at librosa's 120 BPM", path)
    y = load_audio(path, config.sample_rate, config.librosa_kwargs()["load"]["res_type"])
    return features_from_signal(y, tempo=tempo, config=config)


def find_music_files(music_dir: str | Path, music_ids=None) -> dict[str, Path]:
    """Music files in ``music_dir`` named ``<music_id>.<ext>`` -> {music_id: path} (wav preferred over mp3...).

    ``music_ids``: only these (default: every AIST music id found).
    """
    music_dir = Path(music_dir)
    if not music_dir.is_dir():
        raise AistppError("music directory not found", music_dir)
    wanted = MUSIC_IDS if music_ids is None else tuple(music_ids)
    found: dict[str, Path] = {}
    for mid in wanted:
        for ext in AUDIO_EXTENSIONS:
            p = music_dir / f"{mid}{ext}"
            if p.is_file():
                found[mid] = p
                break
    return found


@dataclass
class MusicAlignment:
    """How a sequence's motion frames line up with its music frames (both 60 fps, music frame i at i/60 s).

    ``music_index`` (N,) int64: music frame of each motion frame (``round(timestamp * fps)``), -1 where the
    music has no such frame. ``missing`` counts those motion frames; ``ok`` is True when every motion frame has
    music. Nothing is cut: callers decide, and :meth:`message` says what is wrong.
    """

    sequence: str
    music_id: str
    motion_frames: int
    music_frames: int
    music_index: np.ndarray = field(repr=False)
    missing: int = 0
    offset_frames: int = 0

    @property
    def ok(self) -> bool:
        return self.missing == 0

    @property
    def usable_frames(self) -> int:
        """Leading motion frames that all have music (what a window sampler may use)."""
        bad = np.flatnonzero(self.music_index < 0)
        return int(bad[0]) if bad.size else self.motion_frames

    def message(self) -> str:
        if self.ok:
            return (f"{self.sequence}: {self.motion_frames} motion frames aligned with music {self.music_id} "
                    f"({self.music_frames} frames)")
        return (f"{self.sequence}: music {self.music_id} has {self.music_frames} frames but the motion needs "
                f"{self.motion_frames} (from music frame {self.offset_frames}); {self.missing} motion frames "
                "have no music")

    def to_dict(self) -> dict:
        return {"sequence": self.sequence, "music_id": self.music_id, "motion_frames": self.motion_frames,
                "music_frames": self.music_frames, "missing": self.missing, "offset_frames": self.offset_frames}


def align_music(sequence: str, music_id: str, motion_frames: int, music_frames: int, timestamps_us=None,
                fps: int = FPS, warn: bool = True) -> MusicAlignment:
    """Align motion frames to music frames by time and report mismatches (logged as a warning when ``warn``).

    Args:
        timestamps_us: (N,) int64 motion timestamps in microseconds (None: frame k at k / fps s).
    """
    if timestamps_us is None:
        index = np.arange(motion_frames, dtype=np.int64)
    else:
        ts = np.asarray(timestamps_us, dtype=np.int64).ravel()
        if ts.shape[0] != motion_frames:
            raise AistppError(f"{sequence}: {ts.shape[0]} timestamps for {motion_frames} motion frames")
        index = np.rint(ts.astype(np.float64) * fps / 1e6).astype(np.int64)
    offset = int(index[0]) if index.size else 0
    index = np.where((index >= 0) & (index < music_frames), index, -1)
    out = MusicAlignment(sequence, music_id, int(motion_frames), int(music_frames), index,
                         missing=int((index < 0).sum()), offset_frames=offset)
    if warn and not out.ok:
        log.warning("%s", out.message())
    return out


def _sequence_music(entries: dict) -> dict[str, list[str]]:
    """{music_id: [sequences]} from manifest sequence entries with status ok."""
    out: dict[str, list[str]] = {}
    for seq, e in sorted(entries.items()):
        if e.get("status") != "ok":
            continue
        mid = (e.get("attrs") or {}).get("music")
        if mid is None:
            from aistpp.naming import parse_name

            mid = parse_name(seq).music
        out.setdefault(mid, []).append(seq)
    return out


def corpus_alignment(corpus, sequences=None) -> list[MusicAlignment]:
    """Alignment of every sequence's SMPL/keypoint frames with its cached music -> [MusicAlignment] (mismatches
    are logged). Sequences whose music is not cached are skipped. ``corpus``: a path or an open
    :class:`aistpp.corpus.Corpus`."""
    from aistpp.corpus import Corpus

    own = not isinstance(corpus, Corpus)
    if own:
        corpus = Corpus(corpus)
    try:
        music = corpus.manifest.get("music", {})
        out = []
        for seq in (corpus.sequences() if sequences is None else sequences):
            attrs = corpus.attrs(seq)
            mid = attrs.get("music")
            if mid not in music:
                continue
            grp = corpus.group(seq)
            frames = next((grp[k].shape[0] for k in ("smpl/poses", "keypoints3d") if k in grp), corpus.frames(seq))
            ts = grp["timestamps"][()] if "timestamps" in grp and grp["timestamps"].shape[0] == frames else None
            out.append(align_music(seq, mid, frames, int(music[mid]["frames"]), ts,
                                   fps=int(attrs.get("fps", FPS))))
        return out
    finally:
        if own:
            corpus.close()


def _audio_identity(path: Path) -> dict:
    """An audio file by content (resume recomputes features when the file changed, even at the same size)."""
    from aistpp.corpus.manifest import file_sha256

    return {"name": path.name, "sha256": file_sha256(path)}


def add_music_to_corpus(corpus_path: str | Path, music_dir: str | Path, music_ids=None,
                        config: AudioConfig = AudioConfig(), overwrite: bool = False, writer=None,
                        progress: bool = False) -> dict:
    """Compute and cache in the corpus the music features of every music its sequences use.

    Reads ``<music_dir>/<music_id>.wav`` (or .mp3/.flac/.ogg); beat tracking starts at the id's AIST tempo.
    Features already cached from the same file (name and size) with the same config are kept unless
    ``overwrite``. Resumable: each music is committed as it is written by the corpus writer.

    Args:
        corpus_path: the corpus directory (it must exist; sequences are optional: an empty corpus takes every
            music file found).
        music_ids: only these ids (default: those the corpus's sequences use, or all found for an empty corpus).
        writer: an open :class:`aistpp.corpus.CorpusWriter` on ``corpus_path`` to write through (the pipeline
            passes its own; the writer lock allows one writer). Default: open one here.

    Returns:
        {"added": [ids], "cached": [ids already present], "missing": {id: [sequences needing it]},
         "alignment": [MusicAlignment.to_dict() of sequences whose motion is longer than the music]}.
        Missing files and mismatches are logged as warnings, never silently dropped.
    """
    from aistpp.progress import tqdm

    from aistpp.corpus import CorpusWriter, is_corpus

    corpus_path = Path(corpus_path)
    if writer is None and not is_corpus(corpus_path):
        raise AistppError("not a corpus: no manifest.json (build one first with aistpp reconstruct or "
                          "aistpp import-official)", corpus_path)
    own = writer is None
    if own:
        writer = CorpusWriter(corpus_path)
    try:
        by_music = _sequence_music(writer.manifest["sequences"])
        if music_ids is not None:
            wanted = [str(m) for m in music_ids]
            for m in wanted:
                music_tempo(m)  # validates the id
        else:
            wanted = sorted(by_music) or None
        files = find_music_files(music_dir, wanted)
        if wanted is None:
            wanted = sorted(files)
        missing = {m: by_music.get(m, []) for m in wanted if m not in files}
        cfg = feature_settings(config)
        result = {"added": [], "cached": [], "missing": missing, "alignment": []}
        todo = []
        for m in wanted:
            if m not in files:
                continue
            have = (writer.manifest.get("music", {}).get(m) or {}).get("config") or {}
            same_source = have.get("source") == _audio_identity(files[m])
            if not overwrite and have.get("audio") == plain_config(cfg) and same_source:
                result["cached"].append(m)
            else:
                todo.append(m)
        for m, seqs in missing.items():
            log.warning("music %s: no %s/%s.{wav,mp3,flac,ogg}; %d sequence(s) have no music features",
                        m, music_dir, m, len(seqs))
        if not files:
            raise AistppError(f"no music files named <music_id>{{{','.join(AUDIO_EXTENSIONS)}}} for "
                              f"{', '.join(wanted[:6])}{'...' if len(wanted) > 6 else ''}", music_dir)
        for m in tqdm(todo, desc="music features", unit="music", disable=not progress):
            path = files[m]
            feats = music_features(path, tempo=music_tempo(m), config=config)
            writer.add_music(m, feats, config={"audio": cfg, "source": _audio_identity(path),
                                               "tempo": music_tempo(m)}, fps=config.fps)
            writer.flush()  # commit each music: a killed run keeps what is done
            result["added"].append(m)
            log.info("music %s: %d frames from %s", m, feats.shape[0], path.name)
        writer.flush()
        if own and result["added"]:
            writer.compact()  # merge the per-music commits into fewer shards
    finally:
        if own:
            writer.close()
    mismatches = [a for a in corpus_alignment(writer.root if not own else corpus_path) if not a.ok]
    result["alignment"] = [a.to_dict() for a in mismatches]
    return result


def plain_config(cfg: dict) -> dict:
    """The JSON form the manifest stores a config in (tuples -> lists), for comparing with a stored one."""
    from aistpp.corpus.manifest import plain

    return plain(cfg)
