"""The sharded HDF5 corpus: round trips against the official pkls, atomicity, verify, shards, music, fork safety."""

import json
import multiprocessing as mp
import os

import numpy as np
import pytest

from aistpp.corpus import Corpus, CorpusWriter, export_npz, export_official, import_official, verify_corpus
from aistpp.errors import AistppError
from aistpp.io.safe_pickle import load_pickle


@pytest.fixture(scope="module")
def official_corpus(annotations_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus") / "official"
    result = import_official(annotations_dir, out)
    assert result["imported"] == 2 and not result["failed"]
    return out


def _synthetic(n=600, v=9, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "keypoints2d": rng.normal(size=(v, n, 17, 3)).astype(np.float32),
        "det_scores": rng.random((v, n)).astype(np.float32),
        "timestamps": np.arange(n, dtype=np.int64) * 16667,
        "keypoints3d": rng.normal(size=(n, 17, 3)),
        "keypoints3d_optim": rng.normal(size=(n, 17, 3)),
        "smpl_poses": rng.normal(size=(n, 72)).astype(np.float32),
        "smpl_trans": rng.normal(size=(n, 3)).astype(np.float32),
        "smpl_scaling": np.array([93.0], np.float32),
        "smpl_loss": 1.5,
    }


SEQS = ["gBR_sBM_cAll_d04_mBR0_ch01", "gBR_sBM_cAll_d04_mBR1_ch02", "gPO_sBM_cAll_d10_mPO0_ch01",
        "gJS_sFM_cAll_d01_mJS3_ch04"]


def test_import_official_round_trip(official_corpus, annotations_dir, shared_sequences):
    c = Corpus(official_corpus)
    assert c.sequences() == sorted(shared_sequences)
    for seq in shared_sequences:
        k2 = load_pickle(annotations_dir / "keypoints2d" / f"{seq}.pkl")
        k3 = load_pickle(annotations_dir / "keypoints3d" / f"{seq}.pkl")
        mo = load_pickle(annotations_dir / "motions" / f"{seq}.pkl")
        d = c.read_all(seq)
        np.testing.assert_array_equal(d["keypoints2d"], k2["keypoints2d"])  # NaN in the same places too
        np.testing.assert_array_equal(d["det_scores"], k2["det_scores"])
        np.testing.assert_array_equal(d["timestamps"], k2["timestamps"])
        np.testing.assert_array_equal(d["keypoints3d"], k3["keypoints3d"])
        np.testing.assert_array_equal(d["keypoints3d_optim"], k3["keypoints3d_optim"])
        np.testing.assert_array_equal(d["smpl/poses"], mo["smpl_poses"])
        np.testing.assert_array_equal(d["smpl/trans"], mo["smpl_trans"])
        assert float(d["smpl/loss"]) == pytest.approx(float(mo["smpl_loss"]))
        attrs = c.attrs(seq)
        assert attrs["frames"] == 576 and attrs["views"] == 9 and attrs["fps"] == 60
        assert attrs["setting"] == {"gBR_sBM_cAll_d04_mBR2_ch08": "setting1",
                                    "gJS_sBM_cAll_d03_mJS2_ch07": "setting4"}[seq]
        assert attrs["genre"] == seq[:3] and attrs["music"] == seq.split("_")[4] and attrs["tempo"] > 0
        # frames slice reads only those frames, along each field's frame axis
        part = c.read(seq, ("keypoints2d", "smpl_poses", "smpl_scaling"), frames=slice(100, 110))
        np.testing.assert_array_equal(part["keypoints2d"], k2["keypoints2d"][:, 100:110])
        np.testing.assert_array_equal(part["smpl_poses"], mo["smpl_poses"][100:110])
        assert part["smpl_scaling"].shape == (1,)
        # cameras equal the setting file
        cams = json.loads((annotations_dir / "cameras" / f"{attrs['setting']}.json").read_text())
        got = c.cameras(seq)
        for cam, ref in zip(got, cams):
            assert cam.name == ref["name"]
            np.testing.assert_allclose(cam.K, ref["matrix"])
            np.testing.assert_allclose(cam.rvec, ref["rotation"])
            np.testing.assert_allclose(cam.tvec, ref["translation"])


def test_import_is_resumable(official_corpus, annotations_dir):
    before = json.loads((official_corpus / "manifest.json").read_text())
    again = import_official(annotations_dir, official_corpus)
    assert again["skipped"] == 2 and again["imported"] == 0
    after = json.loads((official_corpus / "manifest.json").read_text())
    assert after["shards"] == before["shards"]


def test_export_official_round_trip(official_corpus, annotations_dir, shared_sequences, tmp_path):
    counts = export_official(official_corpus, tmp_path / "tree")
    assert counts == {"keypoints2d": 2, "keypoints3d": 2, "motions": 2, "cameras": 2, "splits": 5, "ignored": 0}
    for kind in ("keypoints2d", "keypoints3d", "motions"):
        for seq in shared_sequences:
            ref = load_pickle(annotations_dir / kind / f"{seq}.pkl")
            got = load_pickle(tmp_path / "tree" / kind / f"{seq}.pkl")
            for key in ref:
                np.testing.assert_allclose(np.asarray(got[key], float), np.asarray(ref[key], float), rtol=1e-6)
    mapping = (tmp_path / "tree" / "cameras" / "mapping.txt").read_text().split("\n")
    assert "gBR_sBM_cAll_d04_mBR2_ch08 setting1" in mapping
    ref = json.loads((annotations_dir / "cameras" / "setting4.json").read_text())
    got = json.loads((tmp_path / "tree" / "cameras" / "setting4.json").read_text())
    for a, b in zip(ref, got):
        np.testing.assert_allclose(a["matrix"], b["matrix"])
        np.testing.assert_allclose(a["translation"], b["translation"])
    # the exported tree is readable by the project's own annotation reader
    from aistpp.io.annotations import AnnotationTree

    tree = AnnotationTree.open(tmp_path / "tree")
    assert tree.sequences("motions") == sorted(shared_sequences)


def _official_contract_load(anno_dir):
    """The official AISTDataset's file contract, written out: mapping.txt through np.loadtxt(dtype=str) unpacked
    row by row into (sequence, setting); motions and keypoints3d through plain pickle with their fields; cameras as
    a JSON list of dicts with name/size/matrix/rotation/translation/distortions."""
    import pickle
    import warnings

    seq2env, env2seq = {}, {}
    for seq_name, env_name in np.loadtxt(anno_dir / "cameras" / "mapping.txt", dtype=str):
        seq2env[seq_name] = env_name
        env2seq.setdefault(env_name, []).append(seq_name)
    motions = {}
    for seq_name, env_name in seq2env.items():
        with open(anno_dir / "motions" / f"{seq_name}.pkl", "rb") as fh:
            data = pickle.load(fh)
        motions[seq_name] = (data["smpl_poses"], data["smpl_scaling"], data["smpl_trans"])
        with open(anno_dir / "keypoints3d" / f"{seq_name}.pkl", "rb") as fh:
            assert pickle.load(fh)["keypoints3d"].shape[1:] == (17, 3)
        cams = json.loads((anno_dir / "cameras" / f"{env_name}.json").read_text())
        assert [c["name"] for c in cams] == [f"c0{i}" for i in range(1, 10)]
        assert all({"size", "matrix", "rotation", "translation", "distortions"} <= set(c) for c in cams)
    # mint's tools/preprocessing.py / calculate_beat_scores.py: split lists and ignore list via np.loadtxt.tolist()
    splits = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # numpy: "input contained no data" for an empty list
        for subset in ("train", "val", "test"):
            splits[subset] = list(np.loadtxt(anno_dir / "splits" / f"crossmodal_{subset}.txt", dtype=str).tolist())
        ignore = np.loadtxt(anno_dir / "ignore_list.txt", dtype=str).tolist()
    return seq2env, motions, splits, ignore


@pytest.mark.parametrize("count", [1, 2])
def test_export_official_opens_in_the_official_contract(official_corpus, annotations_dir, shared_sequences, count,
                                                        tmp_path):
    seqs = sorted(shared_sequences)[:count]
    export_official(official_corpus, tmp_path / "tree", seqs)
    seq2env, motions, splits, ignore = _official_contract_load(tmp_path / "tree")
    real = dict(np.loadtxt(annotations_dir / "cameras" / "mapping.txt", dtype=str))
    assert seq2env == {s: real[s] for s in seqs}
    for s in seqs:
        ref = load_pickle(annotations_dir / "motions" / f"{s}.pkl")
        np.testing.assert_allclose(motions[s][0], ref["smpl_poses"], rtol=1e-6)
        np.testing.assert_allclose(motions[s][2], ref["smpl_trans"], rtol=1e-6)
    # mint-style preprocessing finds its split files; each exported name is in exactly the split the rules give
    from aistpp.splits import crossmodal_subset
    from aistpp.naming import parse_name

    for subset, names in splits.items():
        assert all(len(n) > 10 for n in names)  # whole names, not the characters of one
        assert sorted(set(names)) == [s for s in seqs if crossmodal_subset(parse_name(s)) == subset]
    assert list(ignore) == []
    for pose in ("pose_train", "pose_test"):
        assert (tmp_path / "tree" / "splits" / f"{pose}.txt").is_file()
    # and the project's own reader sees each name once
    from aistpp.io.annotations import AnnotationTree, read_name_list

    tree = AnnotationTree.open(tmp_path / "tree")
    assert list(tree.mapping()) == seqs
    for subset in ("train", "val", "test"):
        assert read_name_list(tree.split_path(f"crossmodal_{subset}")) == sorted(set(splits[subset]))


def test_export_npz_canonical_metres(official_corpus, annotations_dir, shared_sequences, tmp_path):
    assert export_npz(official_corpus, tmp_path) == 2
    for seq in shared_sequences:
        mo = load_pickle(annotations_dir / "motions" / f"{seq}.pkl")
        z = np.load(tmp_path / f"{seq}.npz")
        np.testing.assert_allclose(z["trans"], mo["smpl_trans"] / mo["smpl_scaling"][0], rtol=1e-6)
        np.testing.assert_array_equal(z["poses"], mo["smpl_poses"])
        # metres: a standing body's root is ~1 m or so from the origin scale, not hundreds of cm
        assert np.abs(z["trans"]).max() < 10


def test_flipped_byte_is_caught(official_corpus, tmp_path):
    import shutil

    work = tmp_path / "c"
    shutil.copytree(official_corpus, work)
    assert verify_corpus(work).ok
    shard = next(work.glob("shard-*.h5"))
    data = bytearray(shard.read_bytes())
    pos = len(data) // 2
    data[pos] ^= 0x01
    shard.write_bytes(bytes(data))
    rep = verify_corpus(work)
    assert not rep.ok and any("sha256" in e for e in rep.errors)
    from aistpp.cli import main

    assert main(["verify", str(work)]) == 1


def test_chunked_and_compressed(tmp_path):
    import h5py

    with CorpusWriter(tmp_path / "c") as w:
        w.add_sequence(SEQS[0], _synthetic(600), {"setting": "setting1"}, {"a": 1})
    c = Corpus(tmp_path / "c")
    g = c.group(SEQS[0])
    assert g["keypoints2d"].chunks == (9, 256, 17, 3)
    assert g["keypoints3d"].chunks == (256, 17, 3)
    assert g["keypoints2d"].compression == "gzip"
    assert isinstance(g, h5py.Group)
    c.close()


def test_shards_roll_compact_and_rewrite(tmp_path):
    root = tmp_path / "c"
    data = {s: _synthetic(300, seed=i) for i, s in enumerate(SEQS)}
    # tiny target: every sequence commits its own shard
    with CorpusWriter(root, target_shard_bytes=100_000, max_pending=100) as w:
        for s in SEQS:
            w.add_sequence(s, data[s], config={"v": 1})
    m = json.loads((root / "manifest.json").read_text())
    assert len(m["shards"]) == 4
    # a new config for one sequence goes into a new shard; the stale copy stays unindexed until compaction
    new = _synthetic(300, seed=99)
    with CorpusWriter(root, target_shard_bytes=100_000, max_pending=1) as w:
        w.add_sequence(SEQS[1], new, config={"v": 2})
        assert w.is_done(SEQS[1], None) and not w.is_done(SEQS[1], json.loads(
            (root / "manifest.json").read_text())["sequences"][SEQS[0]]["config_hash"])
    c = Corpus(root)
    np.testing.assert_array_equal(c.read(SEQS[1], ("keypoints3d",))["keypoints3d"], new["keypoints3d"])
    c.close()
    with CorpusWriter(root, target_shard_bytes=50 * 2**20, retain_seconds=0) as w:  # no reader to keep old shards for
        assert w.compact() == 1
    m = json.loads((root / "manifest.json").read_text())
    assert len(m["shards"]) == 1 and sorted(p.name for p in root.glob("shard-*.h5")) == list(m["shards"])
    c = Corpus(root)
    assert c.sequences() == sorted(SEQS)
    for s in SEQS:
        ref = new if s == SEQS[1] else data[s]
        d = c.read(s, ("keypoints2d", "keypoints3d", "smpl_poses"))
        np.testing.assert_array_equal(d["keypoints2d"], ref["keypoints2d"])
        np.testing.assert_array_equal(d["keypoints3d"], ref["keypoints3d"])
        np.testing.assert_array_equal(d["smpl_poses"], ref["smpl_poses"])
    assert c.entry(SEQS[1])["config"] == {"v": 2}
    assert verify_corpus(root).ok


def test_leftovers_of_a_killed_writer_are_ignored_and_removed(tmp_path):
    root = tmp_path / "c"
    with CorpusWriter(root) as w:
        w.add_sequence(SEQS[0], _synthetic(50), config={})
    # what a kill -9 can leave: a half-written temporary shard, a renamed shard the manifest never referenced,
    # a temporary manifest
    (root / ".shard-00001.h5.abc.tmp").write_bytes(b"garbage")
    (root / "shard-00007.h5").write_bytes(b"not hdf5")
    (root / ".manifest.json.xyz.tmp").write_text("{")
    rep = verify_corpus(root)
    assert rep.ok and len(rep.warnings) == 2
    assert Corpus(root).sequences() == [SEQS[0]]
    with CorpusWriter(root) as w:
        w.add_sequence(SEQS[1], _synthetic(50, seed=1), config={})
    names = sorted(p.name for p in root.iterdir())
    assert names == [".writer.lock", "manifest.json", "shard-00000.h5", "shard-00001.h5"]
    assert verify_corpus(root).ok and not verify_corpus(root).warnings


def test_unflushed_work_is_not_visible(tmp_path):
    root = tmp_path / "c"
    w = CorpusWriter(root, max_pending=10)
    w.add_sequence(SEQS[0], _synthetic(40), config={})
    assert Corpus(root).sequences() == []  # nothing committed yet
    w.flush()
    assert Corpus(root).sequences() == [SEQS[0]]
    w.close()


def test_failures_recorded_and_one_writer_only(tmp_path):
    root = tmp_path / "c"
    with CorpusWriter(root) as w:
        w.add_failure(SEQS[2], "keypoints2d file missing\nsecond line", config={"x": 1})
        with pytest.raises(AistppError, match="another aistpp process"):
            CorpusWriter(root)
    c = Corpus(root)
    assert c.failures() == {SEQS[2]: "keypoints2d file missing second line"}
    assert c.sequences() == []
    with pytest.raises(AistppError, match="failed"):
        c.read(SEQS[2])


def test_bad_arrays_rejected(tmp_path):
    with CorpusWriter(tmp_path / "c") as w:
        bad = _synthetic(30)
        bad["keypoints3d"] = bad["keypoints3d"][:20]
        with pytest.raises(AistppError, match="keypoints3d"):
            w.add_sequence(SEQS[0], bad)
        with pytest.raises(AistppError, match="unknown corpus field"):
            w.add_sequence(SEQS[0], {"bogus": np.zeros(3)})
        with pytest.raises(AistppError, match="35"):
            w.add_music("mBR0", np.zeros((10, 20)))


def test_music_round_trip(tmp_path):
    feats = np.random.default_rng(3).normal(size=(1234, 35)).astype(np.float32)
    with CorpusWriter(tmp_path / "c") as w:
        w.add_music("mBR0", feats, config={"sr": 30720})
        w.add_sequence(SEQS[0], _synthetic(20), config={})
    c = Corpus(tmp_path / "c")
    assert c.music_ids() == ["mBR0"]
    np.testing.assert_array_equal(c.music("mBR0"), feats)
    np.testing.assert_array_equal(c.music("mBR0", frames=slice(5, 9)), feats[5:9])
    assert verify_corpus(tmp_path / "c").ok
    with pytest.raises(AistppError, match="add-music"):
        c.music("mPO1")


def _child_read(corpus, seq, q):
    q.put(corpus.read(seq, ("keypoints3d",))["keypoints3d"].sum())


def test_reader_safe_across_fork(tmp_path):
    data = _synthetic(100)
    with CorpusWriter(tmp_path / "c") as w:
        w.add_sequence(SEQS[0], data, config={})
    c = Corpus(tmp_path / "c")
    parent = c.read(SEQS[0], ("keypoints3d",))["keypoints3d"].sum()  # parent opens a handle first
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child_read, args=(c, SEQS[0], q))
    p.start()
    child = q.get(timeout=60)
    p.join(60)
    assert p.exitcode == 0 and child == pytest.approx(parent) and parent == pytest.approx(data["keypoints3d"].sum())
    # pickling drops handles
    import pickle

    c2 = pickle.loads(pickle.dumps(c))
    assert c2._handles == {} and c2.read(SEQS[0], ("keypoints3d",))["keypoints3d"].sum() == pytest.approx(parent)
    assert os.getpid() == c._pid


def test_cli_info_and_verify_on_corpus(official_corpus, annotations_dir, capsys):
    from aistpp.cli import main

    assert main(["info", str(official_corpus), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["sequences"] == 2 and s["frames"] == 1152 and s["genres"] == {"gBR": 1, "gJS": 1}
    assert main(["verify", str(official_corpus)]) == 0
    assert "OK" in capsys.readouterr().out
    # the annotation-tree path of `info` still works
    assert main(["info", str(annotations_dir), "--json", "--max-files", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["mapping_sequences"] == 1408


def test_export_official_ignore_list_and_motion_only_mapping(tmp_path):
    """Flagged sequences go to ignore_list.txt (readable by np.loadtxt(...).tolist() as mint filters with it); a
    motion-only sequence with a known setting is in mapping.txt, one without a setting is not; splits by rule."""
    import warnings

    from aistpp.corpus.official import sequence_attrs

    rng = np.random.default_rng(0)
    motion = {"smpl/poses": rng.normal(size=(30, 72)).astype(np.float32),
              "smpl/trans": rng.normal(size=(30, 3)).astype(np.float32),
              "smpl/scaling": np.ones(1, np.float32)}
    bad, ok, loose = ("gBR_sBM_cAll_d04_mBR0_ch02", "gJS_sFM_cAll_d03_mJS2_ch07", "gPO_sBM_cAll_d10_mPO1_ch01")
    with CorpusWriter(tmp_path / "c") as w:
        w.add_sequence(bad, motion, sequence_attrs(bad, "setting1", quality={"ignore_list": True}), {"n": 1})
        w.add_sequence(ok, motion, sequence_attrs(ok, "setting4"), {"n": 2})
        w.add_sequence(loose, motion, sequence_attrs(loose), {"n": 3})
    counts = export_official(tmp_path / "c", tmp_path / "tree")
    assert counts["motions"] == 3 and counts["ignored"] == 1
    tree = tmp_path / "tree"
    mapping = np.loadtxt(tree / "cameras" / "mapping.txt", dtype=str)
    assert mapping.ndim == 2 and dict(mapping) == {bad: "setting1", ok: "setting4"}
    ignore = np.loadtxt(tree / "ignore_list.txt", dtype=str).tolist()
    assert isinstance(ignore, list) and set(ignore) == {bad}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        split = {s: np.loadtxt(tree / "splits" / f"crossmodal_{s}.txt", dtype=str).tolist()
                 for s in ("train", "val", "test")}
    # mBR0 sBM ch02: test; mPO1 sBM ch01: val; mJS2: train
    assert set(split["test"]) == {bad} and set(split["val"]) == {loose} and set(split["train"]) == {ok}
    assert [n for n in split["test"] if n not in ignore] == []  # mint's filter drops the ignored one
