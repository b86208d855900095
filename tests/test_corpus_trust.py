"""A corpus that can be trusted: verify reports failed sequences, names are checked at every boundary, the
manifest cannot point outside the corpus, readers can check checksums and survive compaction."""

import json

import numpy as np
import pytest

from aistpp.corpus import Corpus, CorpusWriter, verify_corpus
from aistpp.errors import AistppError

SEQ_A, SEQ_B, SEQ_C = "gBR_sBM_cAll_d04_mBR0_ch01", "gBR_sBM_cAll_d04_mBR1_ch02", "gPO_sBM_cAll_d10_mPO0_ch01"


def _arrays(n=30, seed=0):
    rng = np.random.default_rng(seed)
    return {"keypoints3d": rng.normal(size=(n, 17, 3)), "smpl_poses": rng.normal(size=(n, 72)).astype(np.float32),
            "smpl_trans": rng.normal(size=(n, 3)).astype(np.float32), "smpl_scaling": np.array([93.0], np.float32)}


def test_verify_exits_nonzero_when_requested_sequences_failed(tmp_path, capsys):
    from aistpp.cli import main

    root = tmp_path / "c"
    with CorpusWriter(root) as w:
        w.add_failure(SEQ_A, "keypoints2d file missing")
        w.add_failure(SEQ_B, "only 1 view(s) have any detection")
    assert main(["verify", str(root)]) == 1  # every sequence failed: not OK
    out = capsys.readouterr().out
    assert f"FAILED {SEQ_A}: keypoints2d file missing" in out and "OK" not in out
    assert main(["verify", str(root), "--allow-failed"]) == 0  # explicitly accepted: still listed
    assert f"FAILED {SEQ_B}" in capsys.readouterr().out
    with CorpusWriter(root) as w:
        w.add_sequence(SEQ_C, _arrays())
    assert main(["verify", str(root), "--sequences", SEQ_C]) == 0  # the requested one is fine
    capsys.readouterr()
    assert main(["verify", str(root), "--sequences", SEQ_C, SEQ_A, "--json"]) == 1
    rep = json.loads(capsys.readouterr().out)
    assert rep["intact"] and not rep["ok"] and rep["failed_sequences"] == {SEQ_A: "keypoints2d file missing"}
    r = verify_corpus(root, sequences=[SEQ_C, "gJS_sFM_cAll_d01_mJS3_ch04"])
    assert r.intact and not r.ok and r.failed_sequences == {"gJS_sFM_cAll_d01_mJS3_ch04": "not in the corpus"}


# -- names and manifest paths -----------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["../../x", "gBR_sBM_cAll_d04_mBR0_ch01/../../x", "gBR_sBM_cAll_d04_mBR0_ch01\n",
                                 " gBR_sBM_cAll_d04_mBR0_ch01", "gBR_sBM_c01_d04_mBR0_ch01", "", "/etc/passwd"])
def test_writer_refuses_names_that_are_not_sequences(tmp_path, bad):
    root = tmp_path / "deep" / "c"
    with CorpusWriter(root) as w:
        with pytest.raises(AistppError, match="bad sequence name"):
            w.add_sequence(bad, _arrays())
        with pytest.raises(AistppError, match="bad sequence name"):
            w.add_failure(bad, "x")
        with pytest.raises(AistppError, match="bad camera setting"):
            w.add_sequence(SEQ_A, _arrays(), {"setting": "../../evil"})
        with pytest.raises(AistppError, match="bad music id"):
            w.add_music("../m", np.zeros((5, 35)))
    assert json.loads((root / "manifest.json").read_text())["sequences"] == {}
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(["deep", "c", ".writer.lock", "manifest.json"])


def _corpus_with_victim(tmp_path):
    root = tmp_path / "c"
    with CorpusWriter(root) as w:
        w.add_sequence(SEQ_A, _arrays(), {"setting": "setting1"})
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    return root, victim


@pytest.mark.parametrize("edit", ["shard", "sequence", "entry_shard", "music"])
def test_hostile_manifest_is_reported_by_verify_and_touched_by_nothing(tmp_path, capsys, edit):
    from aistpp.cli import main
    from aistpp.corpus import export_official

    root, victim = _corpus_with_victim(tmp_path)
    m = json.loads((root / "manifest.json").read_text())
    if edit == "shard":  # the next writer would have deleted it as an unreferenced shard
        m["shards"]["../victim.txt"] = {"bytes": 8, "sha256": "0", "sequences": 1, "music": 0}
    elif edit == "sequence":  # an export would write outside its folder
        m["sequences"]["../../x"] = dict(m["sequences"][SEQ_A])
    elif edit == "entry_shard":
        m["sequences"][SEQ_A]["shard"] = "../victim.txt"
    else:
        m["music"]["../victim"] = {"shard": "../victim.txt", "frames": 1}
    (root / "manifest.json").write_text(json.dumps(m))
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert main(["verify", str(root)]) == 1
    out = capsys.readouterr().out
    assert "ERROR manifest.json" in out and ("victim" in out or "../../x" in out)
    for action in (lambda: CorpusWriter(root), lambda: Corpus(root),
                   lambda: export_official(root, tmp_path / "export" / "a" / "b")):
        with pytest.raises(AistppError, match="unsafe or inconsistent manifest"):
            action()
    assert victim.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing created, nothing removed


def test_export_refuses_a_setting_name_that_is_a_path(tmp_path):
    from aistpp.corpus import export_official
    from aistpp.corpus.official import camera_arrays
    from aistpp.triangulate import ring_cameras

    root = tmp_path / "c"
    with CorpusWriter(root) as w:
        w.add_sequence(SEQ_A, {**_arrays(), **camera_arrays(ring_cameras())}, {"setting": "setting1"})
    m = json.loads((root / "manifest.json").read_text())
    m["sequences"][SEQ_A]["attrs"]["setting"] = "../../../evil"
    (root / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(AistppError, match="bad camera setting"):
        export_official(root, tmp_path / "e" / "x" / "y")
    assert not list(tmp_path.rglob("evil*"))


def test_import_reports_a_stray_file_and_imports_the_rest(annotations_dir, shared_sequences, tmp_path):
    import shutil

    from aistpp.corpus import import_official

    tree = tmp_path / "tree"
    shutil.copytree(annotations_dir / "cameras", tree / "cameras")
    (tree / "keypoints3d").mkdir()
    shutil.copy(annotations_dir / "keypoints3d" / f"{shared_sequences[0]}.pkl", tree / "keypoints3d")
    (tree / "keypoints3d" / "notes.pkl").write_bytes(b"not even a pickle")
    res = import_official(tree, tmp_path / "c")
    assert res["imported"] == 1 and list(res["failed"]) == ["notes"]
    assert "not an AIST++ sequence" in res["failed"]["notes"]
    assert Corpus(tmp_path / "c").sequences() == [shared_sequences[0]]


def test_viz_refuses_a_sequence_name_that_is_a_path(annotations_dir, tmp_path):
    from aistpp.viz.sources import load_sequence

    with pytest.raises(AistppError, match="malformed AIST|bad sequence name"):
        load_sequence(annotations_dir, "../../x")
    root, _ = _corpus_with_victim(tmp_path)  # a corpus whose index names a path (viz writes <name>_*.png)
    m = json.loads((root / "manifest.json").read_text())
    m["sequences"]["../../x"] = m["sequences"].pop(SEQ_A)
    (root / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(AistppError, match="malformed AIST|bad sequence name|unsafe"):
        load_sequence(root, "../../x")
    with pytest.raises(AistppError, match="unsafe or inconsistent manifest"):
        load_sequence(root)


def test_viz_reports_a_bad_file_and_draws_the_rest(annotations_dir, shared_sequences, tmp_path, capsys):
    from aistpp.cli import main

    seq = shared_sequences[0]
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"\x80\x04not a pickle")
    rc = main(["viz", str(annotations_dir), "--sequence", seq, "--out", str(tmp_path / "o"), "--what",
               "skeleton,overlay", "--frames", "0:12:6", "--size", "96x96", "--tile", "160x90",
               "--compare", str(bad)])
    out, err = capsys.readouterr()
    assert rc == 1
    for suffix in ("skeleton.mp4", "overlay.png"):  # the rest is drawn
        assert (tmp_path / "o" / f"{seq}_{suffix}").is_file() and f"{seq}_{suffix}" in out
    failed = [line for line in err.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and failed[0].startswith("FAILED compare:") and "bad.pkl" in failed[0], err



# -- readers: checksums, compaction ------------------------------------------------------------------------------
def test_reader_keeps_working_through_compaction(tmp_path):
    root = tmp_path / "c"
    data = {s: _arrays(40, seed=i) for i, s in enumerate((SEQ_A, SEQ_B, SEQ_C))}
    with CorpusWriter(root, target_shard_bytes=10_000, max_pending=1) as w:  # one shard per sequence
        for s, d in data.items():
            w.add_sequence(s, d)
    long_lived = Corpus(root)
    np.testing.assert_array_equal(long_lived.read(SEQ_A, ("keypoints3d",))["keypoints3d"], data[SEQ_A]["keypoints3d"])
    untouched = Corpus(root)  # opened before the compaction, reads nothing until after the files are gone
    old_shards = set(long_lived.manifest["shards"])
    with CorpusWriter(root, target_shard_bytes=50 * 2**20) as w:
        assert w.compact() == 1
    m = json.loads((root / "manifest.json").read_text())
    assert set(m["retired"]) == old_shards and all((root / n).is_file() for n in old_shards)  # deferred deletion
    for s in (SEQ_B, SEQ_C):  # shards this reader had not opened yet: still there, same snapshot
        np.testing.assert_array_equal(long_lived.read(s, ("smpl_poses",))["smpl_poses"], data[s]["smpl_poses"])
    rep = verify_corpus(root)
    assert rep.ok and not rep.warnings
    with CorpusWriter(root, retain_seconds=0):  # the retention is over: the next writer deletes them
        pass
    assert not any((root / n).exists() for n in old_shards)
    assert json.loads((root / "manifest.json").read_text())["retired"] == {}
    # a reader whose manifest names deleted shards re-reads the manifest and follows the sequence
    np.testing.assert_array_equal(untouched.read(SEQ_C, ("keypoints3d",))["keypoints3d"], data[SEQ_C]["keypoints3d"])
    with CorpusWriter(root, retain_seconds=0) as w:  # shard numbers are never reused
        w.add_sequence(SEQ_A, _arrays(40, seed=9))
    used = {int(n[6:11]) for n in json.loads((root / "manifest.json").read_text())["shards"]}
    assert min(used) > max(int(n[6:11]) for n in old_shards)


def test_reader_checks_sizes_and_checksums(tmp_path):
    root = tmp_path / "c"
    with CorpusWriter(root) as w:
        w.add_sequence(SEQ_A, _arrays(200))
    shard = next(root.glob("shard-*.h5"))
    raw = bytearray(shard.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # same size, other content
    shard.write_bytes(bytes(raw))
    for checksums in ("auto", True):  # the default checks a small shard's sha256 on first open
        with pytest.raises(AistppError, match="sha256 differs"):
            Corpus(root, checksums=checksums).read(SEQ_A, ("keypoints3d",))
    try:  # size-only checking does not notice (what it reads may be garbage, or h5py may fail)
        Corpus(root, checksums=False).read(SEQ_A, ("keypoints3d",))
    except AistppError as err:
        assert "sha256" not in str(err)
    except OSError:
        pass
    shard.write_bytes(bytes(raw) + b"x")  # a size change is always caught
    with pytest.raises(AistppError, match="bytes, the manifest says"):
        Corpus(root, checksums=False).read(SEQ_A, ("keypoints3d",))
    with pytest.raises(AistppError, match="checksums must be"):
        Corpus(root, checksums="sometimes")


def test_reconstruct_selection_skips_stray_files(annotations_dir, shared_sequences, tmp_path):
    import shutil

    from aistpp.pipeline import select_sequences

    tree = tmp_path / "tree"
    shutil.copytree(annotations_dir / "cameras", tree / "cameras")
    (tree / "keypoints2d").mkdir()
    shutil.copy(annotations_dir / "keypoints2d" / f"{shared_sequences[1]}.pkl", tree / "keypoints2d")
    (tree / "keypoints2d" / "..notes.pkl").write_bytes(b"x")
    assert select_sequences(tree) == [shared_sequences[1]]
