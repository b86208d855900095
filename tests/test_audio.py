"""aistpp.audio: a click track at a known tempo, a direct librosa computation, and the corpus cache.

librosa JIT-compiles for ~25 s on first use, so the features are computed once per module.
"""

import logging

import numpy as np
import pytest

librosa = pytest.importorskip("librosa")
sf = pytest.importorskip("soundfile")

from aistpp.audio import (BEAT, PEAK, SAMPLE_RATE, AudioConfig, add_music_to_corpus, align_music,  # noqa: E402
                          beat_track_librosa081, feature_settings, music_features)
from aistpp.errors import AistppError  # noqa: E402

TEMPO = 100  # mBR2 and mJS2: 80 + 10 * 2 BPM
FILE_SR = 44100  # written at CD rate so loading exercises the resampling to 30720 Hz


def click_track(seconds, first=0.5, tempo=TEMPO, sr=FILE_SR, seed=0):
    """Clicks every beat from ``first`` s, over a quiet noise bed and a held tone (so MFCC/chroma are not
    degenerate). Returns (signal (S,), click times (K,) s)."""
    times = np.arange(first, seconds - 0.2, 60.0 / tempo)
    n = int(seconds * sr)
    y = librosa.clicks(times=times, sr=sr, length=n, click_freq=1500.0, click_duration=0.05)
    t = np.arange(n) / sr
    y = y + 0.05 * np.sin(2 * np.pi * 220.0 * t) + 0.005 * np.random.default_rng(seed).normal(size=n)
    return (0.5 * y / np.abs(y).max()).astype(np.float32), times


@pytest.fixture(scope="module")
def mbr2(tmp_path_factory):
    d = tmp_path_factory.mktemp("music")
    y, times = click_track(10.0)
    sf.write(d / "mBR2.wav", y, FILE_SR, subtype="PCM_16")
    return d, times, music_features(d / "mBR2.wav")


def test_click_track_beats_on_clicks(mbr2):
    _, times, feats = mbr2
    assert feats.dtype == np.float32 and feats.shape[1] == 35
    assert abs(feats.shape[0] - 10.0 * 60) <= 1  # one frame per 1/60 s
    click_frames = times * 60.0
    beats = np.flatnonzero(feats[:, BEAT])
    assert len(beats) >= len(times) - 2  # librosa may trim a weak first/last beat
    # every beat lies on a click, within one frame
    assert np.abs(beats[:, None] - click_frames[None, :]).min(axis=1).max() <= 1.0
    # and nearly every click got a beat
    assert (np.abs(click_frames[:, None] - beats[None, :]).min(axis=1) <= 1.0).sum() >= len(times) - 2
    peaks = np.flatnonzero(feats[:, PEAK])
    peaks = peaks[peaks > 6]  # the tone and noise bed start at 0 s: a genuine onset there
    assert len(peaks) >= len(times) - 1
    assert np.abs(peaks[:, None] - click_frames[None, :]).min(axis=1).max() <= 1.0


def test_matches_direct_librosa_computation(mbr2):
    d, _, feats = mbr2
    # written independently from mint's tools/preprocessing.py, with librosa 0.11 keyword arguments
    sr, hop = 60 * 512, 512
    data, _ = librosa.load(str(d / "mBR2.wav"), sr=sr)
    envelope = librosa.onset.onset_strength(y=data, sr=sr)
    mfcc = librosa.feature.mfcc(y=data, sr=sr, n_mfcc=20).T
    chroma = librosa.feature.chroma_cens(y=data, sr=sr, hop_length=hop, n_chroma=12).T
    peak_idxs = librosa.onset.onset_detect(onset_envelope=envelope.flatten(), sr=sr, hop_length=hop)
    peak = np.zeros_like(envelope, dtype=np.float32)
    peak[peak_idxs] = 1.0
    _, beat_idxs = librosa.beat.beat_track(onset_envelope=envelope, sr=sr, hop_length=hop, start_bpm=100,
                                           tightness=100)
    beat = np.zeros_like(envelope, dtype=np.float32)
    beat[beat_idxs] = 1.0
    ref = np.concatenate([envelope[:, None], mfcc, chroma, peak[:, None], beat[:, None]], axis=-1)
    assert SAMPLE_RATE == sr and AudioConfig().sample_rate == sr
    assert feats.shape == ref.shape
    np.testing.assert_allclose(feats, ref, rtol=1e-5, atol=1e-4)


def test_librosa081_beat_tracker_on_impulses():
    # impulses every 30 frames (120 BPM at 60 fps) from frame 20 to 290, nothing after: the chain runs on past the
    # last impulse with zero local score, trimming removes those beats, and 0.8.1's slice beats[first:last]
    # drops the last valid beat too (290)
    env = np.zeros(400, np.float32)
    impulses = np.arange(20, 300, 30)
    env[impulses] = 1.0
    np.testing.assert_array_equal(beat_track_librosa081(env, bpm=120.0), impulses[:-1])
    untrimmed = beat_track_librosa081(env, bpm=120.0, trim=False)
    np.testing.assert_array_equal(untrimmed[:len(impulses)], impulses)  # threshold 0 keeps the trailing beats
    assert len(untrimmed) > len(impulses)
    assert beat_track_librosa081(np.zeros(50, np.float32), bpm=120.0).size == 0


def test_librosa081_beat_tracker_agrees_with_librosa_inside(mbr2):
    # away from the ends the 0.8.1 dynamic program and current librosa's pick the same beats; they differ in how
    # predecessors before frame 0 count and in trimming (0.8.1 always drops the last beat)
    d, _, _ = mbr2
    y = librosa.load(str(d / "mBR2.wav"), sr=SAMPLE_RATE)[0]
    env = librosa.onset.onset_strength(y=y, sr=SAMPLE_RATE)
    _, new = librosa.beat.beat_track(onset_envelope=env, sr=SAMPLE_RATE, hop_length=512, start_bpm=100,
                                     tightness=100, trim=False)
    old = beat_track_librosa081(env, start_bpm=100, trim=False)
    inside = new[(new > 0) & (new < len(env) - 1)]
    np.testing.assert_array_equal(old, inside[:len(old)])
    assert len(inside) - len(old) <= 1
    _, trimmed = librosa.beat.beat_track(onset_envelope=env, sr=SAMPLE_RATE, hop_length=512, start_bpm=100,
                                         tightness=100)
    np.testing.assert_array_equal(beat_track_librosa081(env, start_bpm=100), trimmed[:-1])


def test_librosa081_compat_features_match_direct_computation(mbr2):
    d, _, current = mbr2
    feats = music_features(d / "mBR2.wav", config=AudioConfig(compat="librosa-0.8.1"))
    # written from librosa 0.8.1's defaults: onset mel spectrogram up to 11025 Hz, reflection padding of STFT and
    # CQT frames, 0.8.1's beat tracker (loading stays with soxr: see aistpp.audio)
    sr, hop = 60 * 512, 512
    y, _ = librosa.load(str(d / "mBR2.wav"), sr=sr)
    envelope = librosa.onset.onset_strength(y=y, sr=sr, fmax=11025.0, pad_mode="reflect")
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20, pad_mode="reflect").T
    cqt = np.abs(librosa.cqt(y=y, sr=sr, hop_length=hop, n_bins=252, bins_per_octave=36, tuning=None,
                             pad_mode="reflect"))
    chroma = librosa.feature.chroma_cens(C=cqt, sr=sr, hop_length=hop, n_chroma=12).T
    peak = np.zeros(len(envelope), np.float32)
    peak[librosa.onset.onset_detect(onset_envelope=envelope, sr=sr, hop_length=hop)] = 1.0
    beat = np.zeros(len(envelope), np.float32)
    beat[beat_track_librosa081(envelope, sr=sr, hop_length=hop, start_bpm=100, tightness=100)] = 1.0
    ref = np.concatenate([envelope[:, None], mfcc, chroma, peak[:, None], beat[:, None]], axis=-1)
    np.testing.assert_allclose(feats, ref, rtol=1e-5, atol=1e-4)
    # and the compat mode is not the current one: fmax moves the envelope, padding the edge MFCC frames
    assert np.abs(feats[:, 0] - current[:, 0]).max() > 0.02 * np.abs(current[:, 0]).max()
    assert np.abs(feats[-1, 1:21] - current[-1, 1:21]).max() > 1.0
    assert np.flatnonzero(feats[:, BEAT]).size < np.flatnonzero(current[:, BEAT]).size


def test_feature_settings_name_versions_and_every_parameter():
    s = feature_settings(AudioConfig(compat="librosa-0.8.1"))
    assert s["versions"]["librosa"] == librosa.__version__ and s["compat"] == "librosa-0.8.1"
    assert s["librosa_kwargs"]["onset_strength"]["fmax"] == 11025.0 and s["sample_rate"] == 30720
    assert feature_settings()["librosa_kwargs"]["load"]["res_type"] == "soxr_hq"
    with pytest.raises(AistppError, match="compat"):
        AudioConfig(compat="librosa-0.7")


def test_align_music_reports_and_never_cuts(caplog):
    ts = (np.arange(100) * 1e6 / 60).round().astype(np.int64) + 16667 * 3  # motion starts at music frame 3
    with caplog.at_level(logging.WARNING, logger="aistpp.audio"):
        a = align_music("s", "mBR2", 100, 90, ts)
    assert not a.ok and a.offset_frames == 3
    np.testing.assert_array_equal(a.music_index[:87], np.arange(3, 90))
    assert (a.music_index[87:] == -1).all() and a.missing == 13 and a.usable_frames == 87
    assert len(a.music_index) == 100  # nothing cut
    assert "13 motion frames have no music" in caplog.text
    assert align_music("s", "mBR2", 100, 100).ok
    with pytest.raises(AistppError):
        align_music("s", "mBR2", 100, 100, ts[:50])


def test_add_music_to_corpus_caches_and_reports(tmp_path, annotations_dir, shared_sequences, mbr2):
    from aistpp.corpus import Corpus, import_official

    music_dir, _, feats = mbr2  # 10 s = 600 frames, the shared mBR2 dance has 576: aligned
    corpus = tmp_path / "corpus"
    import_official(annotations_dir, corpus, sequences=shared_sequences)
    # a second, too short copy of the music under another folder: the mismatch must be reported
    short = tmp_path / "short"
    short.mkdir()
    y, _ = click_track(9.0)
    sf.write(short / "mBR2.wav", y, FILE_SR, subtype="PCM_16")

    res = add_music_to_corpus(corpus, music_dir)
    assert res["added"] == ["mBR2"] and res["cached"] == []
    assert res["missing"] == {"mJS2": ["gJS_sBM_cAll_d03_mJS2_ch07"]}  # reported, not silently skipped
    assert res["alignment"] == []
    with Corpus(corpus) as c:
        np.testing.assert_array_equal(c.music("mBR2"), feats)
        # the librosa version and every parameter are stored with the features (manifest and HDF5 attrs)
        stored = c.manifest["music"]["mBR2"]["config"]["audio"]
        assert stored["versions"]["librosa"] == librosa.__version__
        assert stored["librosa_kwargs"]["load"]["res_type"] == "soxr_hq" and stored["compat"] is None
        import json

        attrs = c._file(c.manifest["music"]["mBR2"]["shard"])["music"]["mBR2"].attrs["config"]
        assert json.loads(attrs.removeprefix("json:"))["audio"] == stored
    assert add_music_to_corpus(corpus, music_dir)["cached"] == ["mBR2"]  # resumable, nothing recomputed
    import aistpp.audio

    real_settings = aistpp.audio.feature_settings
    try:  # features cached by another librosa version are recomputed
        aistpp.audio.feature_settings = lambda cfg: {**real_settings(cfg), "versions": {"librosa": "0.8.1"}}
        assert add_music_to_corpus(corpus, music_dir)["added"] == ["mBR2"]
    finally:
        aistpp.audio.feature_settings = real_settings
    assert add_music_to_corpus(corpus, music_dir)["added"] == ["mBR2"]
    assert add_music_to_corpus(corpus, music_dir)["cached"] == ["mBR2"]
    # another compat mode is other features: recomputed, and back
    assert add_music_to_corpus(corpus, music_dir, config=AudioConfig(compat="librosa-0.8.1"))["added"] == ["mBR2"]
    assert add_music_to_corpus(corpus, music_dir)["added"] == ["mBR2"]
    from aistpp.corpus import CorpusWriter

    with CorpusWriter(corpus) as w:  # the pipeline passes its own writer (it holds the corpus lock)
        assert add_music_to_corpus(corpus, music_dir, writer=w)["cached"] == ["mBR2"]

    res = add_music_to_corpus(corpus, short, music_ids=["mBR2"])
    assert res["added"] == ["mBR2"]  # another file (size differs) under the same id is recomputed
    (mis,) = res["alignment"]
    assert mis["sequence"] == "gBR_sBM_cAll_d04_mBR2_ch08" and mis["motion_frames"] == 576
    assert mis["music_frames"] == 541 and mis["missing"] == 576 - 541
    with Corpus(corpus) as c:
        assert c.music("mBR2").shape == (541, 35)

    with pytest.raises(AistppError):
        add_music_to_corpus(corpus, tmp_path / "nowhere")


def test_cli_add_music(tmp_path, annotations_dir, shared_sequences, mbr2, capsys):
    from aistpp.cli import main
    from aistpp.corpus import import_official

    music_dir, _, feats = mbr2
    corpus = tmp_path / "corpus"
    import_official(annotations_dir, corpus, sequences=shared_sequences)
    assert main(["add-music", str(corpus), "--music", str(music_dir)]) == 1  # mJS2 has no file: not a success
    out = capsys.readouterr().out
    assert "1 added, 0 already cached, 1 missing" in out and "missing mJS2" in out
    assert main(["add-music", str(corpus), "--music", str(music_dir), "--music-id", "mBR2"]) == 0
    assert "0 added, 1 already cached" in capsys.readouterr().out
    assert main(["add-music", str(tmp_path / "none"), "--music", str(music_dir)]) == 2
    assert "not a corpus" in capsys.readouterr().err


def test_find_and_load_wav_mp3(tmp_path):
    from aistpp.audio import find_music_files, load_audio

    y, _ = click_track(2.0)
    sf.write(tmp_path / "mJS2.mp3", y, FILE_SR, format="MP3")
    sf.write(tmp_path / "mBR2.mp3", y, FILE_SR, format="MP3")
    sf.write(tmp_path / "mBR2.wav", y, FILE_SR, subtype="PCM_16")
    (tmp_path / "notes.txt").write_text("not music")
    found = find_music_files(tmp_path)
    assert found == {"mBR2": tmp_path / "mBR2.wav", "mJS2": tmp_path / "mJS2.mp3"}  # wav preferred
    wav, mp3 = load_audio(found["mBR2"]), load_audio(found["mJS2"])
    assert wav.dtype == np.float32 and abs(len(wav) - 2.0 * SAMPLE_RATE) <= 1
    assert abs(len(mp3) - 2.0 * SAMPLE_RATE) < 0.1 * SAMPLE_RATE  # the mp3 encoder pads a little
    with pytest.raises(AistppError):
        load_audio(tmp_path / "notes.txt")
