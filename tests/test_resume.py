"""Resume by content: a rerun of ``reconstruct`` redoes exactly the sequences and stages whose inputs changed (same-
size edits and re-calibrated cameras included), says why, and a subset of stages keeps the other stages' fields."""

import dataclasses
import json
import shutil

import numpy as np
import pytest

from aistpp.corpus import Corpus
from aistpp.io.annotations import write_keypoints2d, write_mapping
from aistpp.pipeline import PipelineConfig, reconstruct

from test_pipeline import fast_fit, shared_kp2d

A, B = "gBR_sBM_cAll_d04_mBR0_ch01", "gBR_sBM_cAll_d04_mBR1_ch02"


@pytest.fixture
def tree(annotations_dir, tmp_path):
    kp = shared_kp2d(annotations_dir, slice(0, 48))
    root = tmp_path / "tree"
    (root / "cameras").mkdir(parents=True)
    shutil.copy(annotations_dir / "cameras" / "setting1.json", root / "cameras" / "setting1.json")
    shutil.copy(annotations_dir / "cameras" / "setting1.json", root / "cameras" / "setting2.json")
    write_mapping(root / "cameras" / "mapping.txt", {A: "setting1", B: "setting2"})
    write_keypoints2d(root / "keypoints2d" / f"{A}.pkl", kp)
    write_keypoints2d(root / "keypoints2d" / f"{B}.pkl", np.roll(kp, 7, axis=1))
    return root


def _edit_same_size(path, seed):
    """Move every detection by a few pixels, keeping the file's size (what a size check cannot see)."""
    from aistpp.io.annotations import read_keypoints2d

    d = read_keypoints2d(path)
    size = path.stat().st_size
    kp = d["keypoints2d"].copy()
    kp[..., :2] += np.random.default_rng(seed).normal(0, 6.0, kp[..., :2].shape).astype(np.float32)
    write_keypoints2d(path, kp, d.get("det_scores"), d.get("timestamps"))
    assert path.stat().st_size == size
    return kp


def _k3(corpus, seq):
    return Corpus(corpus).read(seq, ("keypoints3d_optim",))["keypoints3d_optim"]


def test_rerun_redoes_exactly_what_changed_and_says_why(tree, tmp_path):
    out = tmp_path / "corpus"
    cfg = PipelineConfig(fit=fast_fit())
    first = reconstruct(tree, out, [A, B], cfg)
    assert sorted(first.done) == [A, B] and not first.redone
    again = reconstruct(tree, out, [A, B], cfg)
    assert sorted(again.skipped) == [A, B] and not again.done

    # 1. keypoints2d of A edited to the same byte size: A (only) is redone, and the result is a fresh run's
    _edit_same_size(tree / "keypoints2d" / f"{A}.pkl", 1)
    r = reconstruct(tree, out, [A, B], cfg)
    assert r.done == [A] and r.skipped == [B]
    assert r.redone == {A: "triangulate, smpl (keypoints2d changed)"}
    fresh = tmp_path / "fresh"
    reconstruct(tree, fresh, [A], cfg)
    np.testing.assert_allclose(_k3(out, A), _k3(fresh, A))
    log = [json.loads(x) for x in (out / "reconstruct.log.jsonl").read_text().splitlines()]
    assert log[-1]["sequence"] == A and log[-1]["why"] == ["keypoints2d changed"]

    # 2. setting2 re-calibrated (B's cameras): B (only) is redone, "cameras changed"
    cams = json.loads((tree / "cameras" / "setting2.json").read_text())
    cams[0]["translation"] = [t + 5.0 for t in cams[0]["translation"]]
    (tree / "cameras" / "setting2.json").write_text(json.dumps(cams))
    before_b = _k3(out, B)
    r = reconstruct(tree, out, [A, B], cfg)
    assert r.done == [B] and r.skipped == [A] and r.redone == {B: "triangulate, smpl (cameras changed)"}
    assert not np.allclose(_k3(out, B), before_b, equal_nan=True)

    # 3. another fit config: only the SMPL stage runs again (the triangulation is kept as it is)
    k3_before = {s: _k3(out, s) for s in (A, B)}
    fit2 = dataclasses.replace(fast_fit(), **{f.name: 12 for f in dataclasses.fields(fast_fit())
                                              if f.name.endswith("iterations")})
    r = reconstruct(tree, out, [A, B], PipelineConfig(fit=fit2))
    assert sorted(r.done) == [A, B] and set(r.redone.values()) == {"smpl (fit config changed)"}
    assert "triangulate" not in r.stage_seconds and "smpl" in r.stage_seconds
    for s in (A, B):
        np.testing.assert_array_equal(_k3(out, s), k3_before[s])
    assert not Corpus(out).entry(A).get("stale")


def test_a_subset_of_stages_keeps_the_other_stages_fields(tree, tmp_path):
    out = tmp_path / "corpus"
    full = PipelineConfig(fit=fast_fit())
    tri_only = PipelineConfig(stages=("triangulate",), fit=fast_fit())
    smpl_only = PipelineConfig(stages=("smpl",), fit=fast_fit())
    reconstruct(tree, out, [A, B], full)
    poses = Corpus(out).read(A, ("smpl/poses",))["smpl/poses"]

    # nothing changed: triangulate only is already done, and the SMPL fields stay
    r = reconstruct(tree, out, [A, B], tri_only)
    assert sorted(r.skipped) == [A, B]
    assert "smpl/poses" in Corpus(out).fields(A)

    # A's input changed: its triangulation is redone, its SMPL fit is kept but marked stale (never dropped)
    _edit_same_size(tree / "keypoints2d" / f"{A}.pkl", 2)
    r = reconstruct(tree, out, [A, B], tri_only)
    assert r.done == [A] and r.skipped == [B] and list(r.stale) == [A]
    c = Corpus(out)
    assert {"smpl/poses", "smpl/trans", "smpl/scaling", "keypoints3d_optim"} <= set(c.fields(A))
    np.testing.assert_array_equal(c.read(A, ("smpl/poses",))["smpl/poses"], poses)
    assert "triangulate redone" in c.entry(A)["stale"]["smpl"] and not c.entry(B).get("stale")
    assert c.entry(A)["stats"].get("smpl_loss") is not None  # the kept stage's numbers stay too
    assert any("STALE" in line for line in r.lines())
    from aistpp.corpus import verify_corpus

    rep = verify_corpus(out)
    assert rep.ok and any(f"{A}: stored smpl is stale" in w for w in rep.warnings)
    assert set(c.stale(A)) == {"smpl"} and c.stale(B) == {}

    # the SMPL stage alone refits exactly the stale sequence, on the stored (current) keypoints3d
    r = reconstruct(tree, out, [A, B], smpl_only)
    assert r.done == [A] and r.skipped == [B] and r.redone == {A: "smpl (keypoints3d changed)"}
    c = Corpus(out)
    assert not c.entry(A).get("stale") and "keypoints3d_optim" in c.fields(A)
    assert not np.allclose(c.read(A, ("smpl/poses",))["smpl/poses"], poses)

    # the SMPL stage alone on keypoints3d whose input changed is refused, and the stored result is untouched
    _edit_same_size(tree / "keypoints2d" / f"{A}.pkl", 3)
    entry = Corpus(out).entry(A)
    r = reconstruct(tree, out, [A, B], smpl_only)
    assert "stored keypoints3d are stale (keypoints2d changed)" in r.failed[A] and r.skipped == [B]
    assert Corpus(out).entry(A) == entry


def test_music_features_follow_the_audio_content(tmp_path):
    pytest.importorskip("librosa")
    from aistpp.audio import add_music_to_corpus
    from aistpp.corpus import CorpusWriter
    from aistpp.demo import _write_wav, beat_track

    root = tmp_path / "c"
    CorpusWriter(root).close()
    wav = tmp_path / "music" / "mBR0.wav"
    _write_wav(wav, beat_track(3.0, 80))
    assert add_music_to_corpus(root, wav.parent, music_ids=["mBR0"])["added"] == ["mBR0"]
    assert add_music_to_corpus(root, wav.parent, music_ids=["mBR0"])["cached"] == ["mBR0"]
    size = wav.stat().st_size
    _write_wav(wav, beat_track(3.0, 120))  # another track in a file of the same size
    assert wav.stat().st_size == size
    assert add_music_to_corpus(root, wav.parent, music_ids=["mBR0"])["added"] == ["mBR0"]


def test_video_fingerprints_content_and_cache(tree, tmp_path):
    import os

    from aistpp.naming import parse_name
    from aistpp.pipeline import Fingerprints, SequenceTask, stage_configs

    videos = tmp_path / "videos"
    videos.mkdir()
    names = parse_name(A).video_names()
    for i, n in enumerate(names[:8]):  # c09 missing
        (videos / f"{n}.mp4").write_bytes(bytes([i]) * (3 * 2**20 + 5))
    task = SequenceTask(A, str(tree), PipelineConfig(source="videos"), str(videos))

    def fps(cache=None):
        fp = Fingerprints(cache)
        v = stage_configs(task, fp)["inputs"]["videos"]
        fp.save()
        return v

    first = fps()
    assert first[names[8]] is None and first[names[0]]["bytes"] == 3 * 2**20 + 5
    # a copy (new mtime, same bytes) is the same video; a changed byte in the last MiB is another one
    p = videos / f"{names[3]}.mp4"
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert fps() == first
    raw = bytearray(p.read_bytes())
    raw[-10] ^= 1
    p.write_bytes(bytes(raw))
    second = fps(tmp_path / "cache.json")
    assert second[names[3]] != first[names[3]] and {k: v for k, v in second.items() if k != names[3]} == {
        k: v for k, v in first.items() if k != names[3]}
    assert PipelineConfig(source="videos").to_dict()["source"] == "videos"
    # the cache (by size and mtime) avoids reading unchanged videos again: an edit that keeps both is not seen
    st = p.stat()
    raw[-10] ^= 1
    p.write_bytes(bytes(raw))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert fps(tmp_path / "cache.json")[names[3]] == second[names[3]]
    assert fps()[names[3]] == first[names[3]]  # without the cache the content is read


def test_plan_names_each_changed_input(tree, tmp_path):
    """Every input in a stage record, changed alone, redoes the stages that depend on it, with its reason."""
    from aistpp.corpus.manifest import config_hash
    from aistpp.pipeline import SequenceTask, plan_sequence, stage_configs

    model = tmp_path / "SMPL_MALE.pkl"
    model.write_bytes(b"model v1")
    cfg = PipelineConfig(smpl_model=str(model), fit=fast_fit())
    task = SequenceTask(A, str(tree), cfg)

    def stored():
        c = stage_configs(task)
        return {"status": "ok", "stages": {s: {"hash": config_hash(c[s]), "config": c[s]} for s in ("triangulate",
                                                                                                    "smpl")}}

    entry = stored()
    assert plan_sequence(task, entry, stage_configs(task)).run == ()
    model.write_bytes(b"model v2")  # same size
    p = plan_sequence(task, entry, stage_configs(task))
    assert p.run == ("smpl",) and p.why == ["SMPL model changed"]
    entry = stored()
    write_mapping(tree / "cameras" / "mapping.txt", {A: "setting2", B: "setting2"})  # same camera content
    p = plan_sequence(task, entry, stage_configs(task))
    assert p.run == ("triangulate", "smpl") and p.why == ["mapping changed", "camera setting changed"]
    entry = stored()
    p = plan_sequence(task, entry, stage_configs(SequenceTask(A, str(tree), PipelineConfig(
        smpl_model=str(model), fit=fast_fit(), frames=(0, 40)))))
    assert p.run == ("triangulate", "smpl") and p.why == ["frames changed"]
    p = plan_sequence(task, entry, stage_configs(task), force=True)
    assert p.run == ("triangulate", "smpl") and p.why == ["forced"]
