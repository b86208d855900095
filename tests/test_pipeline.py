"""aistpp.pipeline: sequence selection, per-sequence failures with reasons, and the acceptance runs on the shared
sequences (reconstruct -> export -> compare with the official files)."""

import json
import os
import shutil

import numpy as np
import pytest

from aistpp.errors import AistppError
from aistpp.io.annotations import write_keypoints2d, write_mapping
from aistpp.io.safe_pickle import load_pickle
from aistpp.pipeline import PipelineConfig, SequenceTask, reconstruct, run_sequence, select_sequences

FRAMES = (0, 180)  # keep the CPU time of the end-to-end runs low


def make_tree(annotations_dir, root, sequences: dict):
    """A small annotation tree in ``root``: setting1 cameras, and keypoints2d files {name: array or None}."""
    (root / "cameras").mkdir(parents=True)
    shutil.copy(annotations_dir / "cameras" / "setting1.json", root / "cameras" / "setting1.json")
    write_mapping(root / "cameras" / "mapping.txt", {s: "setting1" for s in sequences})
    for s, kp in sequences.items():
        if kp is not None:
            write_keypoints2d(root / "keypoints2d" / f"{s}.pkl", kp)
    return root


def fast_fit():
    """The stage's FitConfig with every ``*iterations`` budget cut to 10 (keeps the tests' CPU time low)."""
    import dataclasses

    from aistpp.smpl import FitConfig

    return dataclasses.replace(FitConfig(), **{f.name: 10 for f in dataclasses.fields(FitConfig)
                                               if f.name.endswith("iterations")})


def shared_kp2d(annotations_dir, frames=slice(0, 120)):
    return load_pickle(annotations_dir / "keypoints2d" / "gBR_sBM_cAll_d04_mBR2_ch08.pkl")["keypoints2d"][:, frames]


def mapping_of(annotations_dir):
    from aistpp.io.annotations import read_mapping

    return list(read_mapping(annotations_dir / "cameras" / "mapping.txt"))


def test_select_sequences(annotations_dir, tmp_path):
    test = select_sequences(annotations_dir, split="crossmodal_test")
    assert test == [line for line in (annotations_dir / "splits" / "crossmodal_test.txt").read_text().split() if line]
    val = select_sequences(annotations_dir, split="crossmodal_val")
    assert len(val) == 20 and all(s.endswith("ch01") for s in val)
    f = tmp_path / "names.txt"
    f.write_text("gJS_sBM_cAll_d03_mJS2_ch07\ngBR_sBM_cAll_d04_mBR2_ch08\n")
    assert select_sequences(annotations_dir, split=str(f)) == ["gJS_sBM_cAll_d03_mJS2_ch07",
                                                                "gBR_sBM_cAll_d04_mBR2_ch08"]
    # default: every sequence with a keypoints2d file, mapping.txt order
    assert select_sequences(annotations_dir) == ["gBR_sBM_cAll_d04_mBR2_ch08", "gJS_sBM_cAll_d03_mJS2_ch07"]
    gjs = select_sequences(annotations_dir, genres=("gJS",))  # the whole genre, like a split (files or not)
    assert "gJS_sBM_cAll_d03_mJS2_ch07" in gjs and gjs == [s for s in mapping_of(annotations_dir) if s[:3] == "gJS"]
    pose_test = select_sequences(annotations_dir, split="pose_test")
    assert pose_test and all(int(s.split("_")[3][1:]) % 3 == 0 for s in pose_test)
    with pytest.raises(AistppError, match="unknown split"):
        select_sequences(annotations_dir, split="nonsense")


def test_config_validation():
    with pytest.raises(AistppError, match="unknown stage"):
        PipelineConfig(stages=("triangulate", "mesh"))
    with pytest.raises(AistppError, match="unknown source"):
        PipelineConfig(source="mocap")
    with pytest.raises(AistppError, match="START"):
        PipelineConfig(frames=(10, 5))
    assert PipelineConfig(stages=("smpl", "triangulate")).stages == ("triangulate", "smpl")


def test_bad_sequences_fail_with_reasons(annotations_dir, tmp_path):
    kp = shared_kp2d(annotations_dir)
    names = {"gBR_sBM_cAll_d04_mBR0_ch01": None,                                # no keypoints2d file
             "gBR_sBM_cAll_d04_mBR1_ch01": np.full_like(kp, np.nan),            # no view has a detection
             "gBR_sBM_cAll_d04_mBR3_ch01": kp[:5]}                              # 5 views, setting has 9
    root = make_tree(annotations_dir, tmp_path / "tree", names)
    cfg = PipelineConfig(stages=())
    reasons = {s: run_sequence(SequenceTask(s, str(root), cfg)) for s in names}
    assert all(r.status == "failed" for r in reasons.values())
    assert "keypoints2d file missing" in reasons["gBR_sBM_cAll_d04_mBR0_ch01"].reason
    assert "only 0 view(s) have any detection" in reasons["gBR_sBM_cAll_d04_mBR1_ch01"].reason
    assert "5 views" in reasons["gBR_sBM_cAll_d04_mBR3_ch01"].reason
    res = run_sequence(SequenceTask("gBR_sBM_cAll_d05_mBR0_ch01", str(root), cfg))
    assert res.status == "failed" and "mapping.txt" in res.reason


def test_local_pool_equals_in_process(annotations_dir, tmp_path):
    """The process-pool executor (2 spawned workers) stores the same content as the in-process run, and a bad
    sequence among them fails alone."""
    from aistpp.corpus import Corpus

    kp = shared_kp2d(annotations_dir, slice(0, 150))
    seqs = {"gBR_sBM_cAll_d04_mBR0_ch01": kp[:, :50], "gBR_sBM_cAll_d04_mBR1_ch01": kp[:, 50:100],
            "gBR_sBM_cAll_d04_mBR3_ch01": None, "gBR_sBM_cAll_d04_mBR4_ch01": kp[:, 100:]}
    root = make_tree(annotations_dir, tmp_path / "tree", seqs)
    cfg = PipelineConfig(stages=("triangulate",))
    one = reconstruct(root, tmp_path / "one", list(seqs), cfg, workers=1)
    two = reconstruct(root, tmp_path / "two", list(seqs), cfg, workers=2)
    assert set(one.failed) == set(two.failed) == {"gBR_sBM_cAll_d04_mBR3_ch01"}
    assert sorted(one.done) == sorted(two.done) and len(two.done) == 3
    a, b = Corpus(tmp_path / "one"), Corpus(tmp_path / "two")
    for s in a.sequences():
        da, db = a.read_all(s), b.read_all(s)
        assert sorted(da) == sorted(db)
        for k in da:  # the same up to BLAS summation order (thread counts differ)
            if da[k].dtype.kind == "f":
                np.testing.assert_allclose(db[k], da[k], rtol=1e-9, atol=1e-9, err_msg=k)
            else:
                np.testing.assert_array_equal(db[k], da[k], err_msg=k)
    pids = {json.loads(line)["pid"] for line in (tmp_path / "two" / "reconstruct.log.jsonl").read_text().split("\n")
            if line}
    import os

    assert os.getpid() not in pids


def test_cli_reconstruct_import_export(annotations_dir, tmp_path, capsys):
    from aistpp.cli import main
    from aistpp.corpus import Corpus

    names = tmp_path / "names.txt"
    names.write_text("gJS_sBM_cAll_d03_mJS2_ch07\n")
    rc = main(["reconstruct", "--annotations", str(annotations_dir), "--out", str(tmp_path / "c"), "--split",
               str(names), "--stages", "triangulate", "--frames", "0:30", "--json"])
    assert rc == 0
    s = json.loads(capsys.readouterr().out)
    assert s["done"] == ["gJS_sBM_cAll_d03_mJS2_ch07"] and s["frames"] == 30 and s["reprojection_error_px"] > 0
    c = Corpus(tmp_path / "c")
    official = load_pickle(annotations_dir / "keypoints2d" / "gJS_sBM_cAll_d03_mJS2_ch07.pkl")
    np.testing.assert_array_equal(c.read("gJS_sBM_cAll_d03_mJS2_ch07", ("keypoints2d",))["keypoints2d"],
                                  official["keypoints2d"][:, :30])
    # a bad flag value is a one-line error with exit status 2
    assert main(["reconstruct", "--annotations", str(annotations_dir), "--out", str(tmp_path / "c"),
                 "--stages", "mesh"]) == 2
    assert "unknown stage" in capsys.readouterr().err
    # import-official + export npz through the CLI
    assert main(["import-official", "--annotations", str(annotations_dir), "--out", str(tmp_path / "o")]) == 0
    assert main(["export", str(tmp_path / "o"), "--format", "npz", "--out", str(tmp_path / "npz")]) == 0
    assert sorted(p.name for p in (tmp_path / "npz").glob("*.npz")) == [
        "gBR_sBM_cAll_d04_mBR2_ch08.npz", "gJS_sBM_cAll_d03_mJS2_ch07.npz"]


class _KillsItsWorker:
    """A triangulation config whose first attribute read kills the worker process (a native crash / OOM kill)."""

    def to_dict(self):
        return {"kills": True}

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        os._exit(1)


def test_dying_worker_fails_only_its_sequence(annotations_dir, tmp_path):
    from aistpp.executors import run_local
    from aistpp.pipeline import failed_result

    kp = shared_kp2d(annotations_dir, slice(0, 40))
    seqs = {f"gBR_sBM_cAll_d04_mBR{k}_ch01": kp for k in range(4)}
    root = make_tree(annotations_dir, tmp_path / "tree", seqs)
    good = PipelineConfig(stages=("triangulate",))
    bad = PipelineConfig(stages=("triangulate",), triangulation=_KillsItsWorker())
    tasks = [SequenceTask(s, str(root), bad if i == 1 else good) for i, s in enumerate(seqs)]
    results = {r.sequence: r for r in run_local(tasks, workers=2, work=run_sequence, failed=failed_result)}
    assert sorted(results) == sorted(seqs)
    assert results["gBR_sBM_cAll_d04_mBR1_ch01"].status == "failed"
    assert "worker process died" in results["gBR_sBM_cAll_d04_mBR1_ch01"].reason
    assert all(r.status == "ok" for s, r in results.items() if s != "gBR_sBM_cAll_d04_mBR1_ch01")


def test_reconstruct_caches_music_features(annotations_dir, tmp_path):
    pytest.importorskip("librosa")
    from aistpp.corpus import Corpus, verify_corpus
    from aistpp.demo import _write_wav, beat_track

    kp = shared_kp2d(annotations_dir, slice(0, 30))
    seqs = {"gBR_sBM_cAll_d04_mBR0_ch01": kp, "gBR_sBM_cAll_d04_mBR1_ch01": kp}
    root = make_tree(annotations_dir, tmp_path / "tree", seqs)
    _write_wav(tmp_path / "music" / "mBR0.wav", beat_track(2.0, 80))  # mBR1 has no file
    s = reconstruct(root, tmp_path / "c", list(seqs), PipelineConfig(stages=("triangulate",)), workers=1,
                    music=tmp_path / "music")
    assert s.music == {"added": ["mBR0"], "cached": [], "missing": ["mBR1"]} and not s.failed
    c = Corpus(tmp_path / "c")
    feats = c.music("mBR0")
    assert feats.shape[1] == 35 and abs(feats.shape[0] - 120) <= 2  # 2 s at 60 fps
    assert verify_corpus(tmp_path / "c").ok
    again = reconstruct(root, tmp_path / "c", list(seqs), PipelineConfig(stages=("triangulate",)), workers=1,
                        music=tmp_path / "music")
    assert again.music["cached"] == ["mBR0"] and len(again.skipped) == 2
