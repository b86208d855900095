"""aistpp.data datasets on a tiny corpus built from the official files, against an independent computation.

The corpus holds the two shared sequences (official keypoints2d/3d and SMPL motion, 576 frames each) and
generated music features for mBR2 (700 frames) and mJS2 (500 frames: shorter than the dance, so the mismatch
must be reported and only frames with music used).
"""

import logging

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from aistpp.errors import AistppError

BR, JS = "gBR_sBM_cAll_d04_mBR2_ch08", "gJS_sBM_cAll_d03_mJS2_ch07"
MUSIC_FRAMES = {"mBR2": 700, "mJS2": 500}


def _music(music_id):
    rng = np.random.default_rng(sum(map(ord, music_id)))
    return rng.normal(size=(MUSIC_FRAMES[music_id], 35)).astype(np.float32)


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory, annotations_dir, shared_sequences):
    from aistpp.corpus import CorpusWriter, import_official

    root = tmp_path_factory.mktemp("data") / "corpus"
    import_official(annotations_dir, root, sequences=shared_sequences)
    with CorpusWriter(root) as w:
        for m in MUSIC_FRAMES:
            w.add_music(m, _music(m), config={"generated": m})
    return root


@pytest.fixture(scope="module")
def official(tree):
    """Independent reference: mint's motion vector from the official pkl (scipy), per sequence."""
    out = {}
    for seq in (BR, JS):
        m = tree.read("motions", seq)
        rot = Rotation.from_rotvec(m["smpl_poses"].reshape(-1, 3).astype(np.float64)).as_matrix()
        feats = np.concatenate([m["smpl_trans"] / m["smpl_scaling"], rot.reshape(len(m["smpl_poses"]), -1)], -1)
        out[seq] = np.pad(feats, [[0, 0], [6, 0]]).astype(np.float32)
    return out


def _check_window(item, official):
    seq, s = item["sequence"], int(item["start"])
    ref = official[seq]
    music = _music(seq.split("_")[4])
    assert item["motion"].shape == (120, 225) and item["audio"].shape == (240, 35) and item["target"].shape == (20, 225)
    np.testing.assert_allclose(item["motion"].numpy(), ref[s:s + 120], atol=2e-6)
    np.testing.assert_allclose(item["target"].numpy(), ref[s + 120:s + 140], atol=2e-6)
    np.testing.assert_array_equal(item["audio"].numpy(), music[s:s + 240])


@pytest.mark.parametrize("cache", [True, False])
def test_fact_windows_equal_official_computation(corpus_dir, official, cache, caplog):
    from aistpp.data import FACTDataset

    with caplog.at_level(logging.WARNING):
        ds = FACTDataset(corpus_dir, split="crossmodal_train", stride=40, cache=cache, seed=3)
    assert ds.sequences == [BR, JS]
    # mJS2 music (500 frames) is shorter than the 576-frame dance: reported, windows only where music exists
    assert set(ds.alignment) == {JS} and ds.alignment[JS].missing == 76
    assert "76 motion frames have no music" in caplog.text
    n_br, n_js = (576 - 240) // 40 + 1, (500 - 240) // 40 + 1
    assert len(ds) == n_br + n_js
    starts = ds.starts()
    assert starts[:n_br].max() <= 576 - 240 and starts[n_br:].max() <= 500 - 240
    for i in range(len(ds)):
        _check_window(ds[i], official)
    # batches and single windows are copies: modifying them in place leaves the dataset (and its cache) intact
    from torch.utils.data import DataLoader

    batch = next(iter(DataLoader(ds, batch_size=4)))
    for key in ("motion", "audio", "target"):
        batch[key].add_(1.0)
        ds[1][key].add_(1.0)
    for i in range(4):
        _check_window(ds[i], official)
    # the grid (evaluation) mode uses fixed starts 0, stride, ...
    grid = FACTDataset(corpus_dir, split="crossmodal_train", stride=40, random_windows=False, cache=cache)
    assert [s for _, s in grid.window_index()][:n_br] == list(range(0, 576 - 240 + 1, 40))
    _check_window(grid[n_br - 1], official)


def test_fact_mint_sampling_one_random_window_per_sequence(corpus_dir, official):
    from aistpp.data import FACTDataset

    ds = FACTDataset(corpus_dir, split="crossmodal_train", sampling="mint", seed=5, stride=7)
    slots = FACTDataset(corpus_dir, split="crossmodal_train", seed=5, stride=7)
    assert len(ds) == 2 and len(slots) == (576 - 240) // 7 + 1 + (500 - 240) // 7 + 1
    assert ds.config.to_dict()["sampling"] == "mint"
    draws = {BR: set(), JS: set()}
    for epoch in range(40):
        ds.set_epoch(epoch)
        index = ds.window_index()
        assert [seq for seq, _ in index] == [BR, JS]  # each sequence exactly once per pass
        for seq, start in index:
            draws[seq].add(start)
        if epoch < 2:
            for i in range(2):
                _check_window(ds[i], official)
    # uniform starts over each sequence's whole usable range (not a stride grid), redrawn per epoch
    assert max(draws[BR]) <= 576 - 240 and max(draws[JS]) <= 500 - 240
    assert len(draws[BR]) > 30 and any(s % 7 for s in draws[BR])
    # seeded per epoch: the same epoch gives the same windows, another seed other windows
    ds.set_epoch(3)
    again = FACTDataset(corpus_dir, split="crossmodal_train", sampling="mint", seed=5)
    again.set_epoch(3)
    assert again.window_index() == ds.window_index()
    other = FACTDataset(corpus_dir, split="crossmodal_train", sampling="mint", seed=6)
    other.set_epoch(3)
    assert other.window_index() != ds.window_index()
    with pytest.raises(AistppError, match="sampling"):
        FACTDataset(corpus_dir, sampling="tf")


def test_fact_epochs_deterministic_across_workers(corpus_dir):
    from torch.utils.data import DataLoader

    from aistpp.data import FACTDataset

    def run(num_workers, seed=0, cache=True):
        ds = FACTDataset(corpus_dir, stride=8, seed=seed, cache=cache)
        loader = DataLoader(ds, batch_size=16, shuffle=True, num_workers=num_workers,
                            persistent_workers=num_workers > 0, generator=torch.Generator().manual_seed(7))
        epochs = []
        for epoch in range(2):
            ds.set_epoch(epoch)
            batches = list(loader)
            keys = sum((list(zip(b["sequence"], b["start"].tolist())) for b in batches), [])
            order = sorted(range(len(keys)), key=keys.__getitem__)  # the shuffle order is the sampler's business
            epochs.append(([keys[i] for i in order],) + tuple(torch.cat([b[k] for b in batches])[order]
                                                              for k in ("motion", "audio", "target")))
        return epochs

    serial = run(0)
    parallel = run(2)
    for (keys0, *t0), (keys2, *t2) in zip(serial, parallel):
        assert keys0 == keys2
        for a, b in zip(t0, t2):
            assert torch.equal(a, b)
    assert sorted(serial[0][0]) != sorted(serial[1][0])  # a new epoch draws new windows
    assert sorted(run(0, seed=1)[0][0]) != sorted(serial[0][0])
    assert run(2, cache=False)[1][0] == serial[1][0]  # the HDF5 path in workers gives the same windows


def test_selection_split_file_genres_ignore(corpus_dir, annotations_dir):
    from aistpp.data import FACTDataset
    from aistpp.data.datasets import select_sequences

    assert select_sequences(corpus_dir) == [BR, JS]
    assert select_sequences(corpus_dir, split="crossmodal_test") == []
    assert select_sequences(corpus_dir, split="pose_test") == [JS]  # dancer d03
    assert select_sequences(corpus_dir, split=annotations_dir / "splits" / "crossmodal_train.txt") == [BR, JS]
    assert select_sequences(corpus_dir, genres="gJS") == [JS]
    assert select_sequences(corpus_dir, ignore=[BR]) == [JS]
    assert select_sequences(corpus_dir, split=[JS, "gBR_sBM_cAll_d05_mBR0_ch01"]) == [JS]  # absent name logged
    with pytest.raises(AistppError):
        select_sequences(corpus_dir, split="crossmodal_bogus")
    ds = FACTDataset(corpus_dir, genres=["gBR"], stride=100)
    assert ds.sequences == [BR]
    with pytest.raises(AistppError):
        FACTDataset(corpus_dir, split="crossmodal_test")


def _corpus_without_music(corpus_dir):
    """A copy of the test corpus whose manifest lists no music."""
    import json
    import shutil

    dst = corpus_dir.parent / "no_music"
    if not dst.exists():
        shutil.copytree(corpus_dir, dst)
        manifest = json.loads((dst / "manifest.json").read_text())
        manifest["music"] = {}
        (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst


def test_sequence_dataset_items_and_collate(corpus_dir, official, tree):
    from torch.utils.data import DataLoader

    from aistpp.data import SequenceDataset, collate_sequences

    ds = SequenceDataset(corpus_dir, fields=("keypoints3d", "smpl", "motion", "music"))
    assert len(ds) == 2
    batch = next(iter(DataLoader(ds, batch_size=2, collate_fn=collate_sequences)))
    assert batch["sequence"] == [BR, JS] and batch["music_id"] == ["mBR2", "mJS2"]
    assert batch["keypoints3d"].shape == (2, 576, 17, 3) and batch["motion"].shape == (2, 576, 225)
    for b, seq in enumerate((BR, JS)):
        k3d = tree.read("keypoints3d", seq)["keypoints3d"]
        np.testing.assert_allclose(batch["keypoints3d"][b].numpy(), k3d, rtol=1e-6, atol=1e-4, equal_nan=True)
        m = tree.read("motions", seq)
        np.testing.assert_array_equal(batch["smpl_poses"][b].numpy(), m["smpl_poses"])
        np.testing.assert_allclose(batch["motion"][b].numpy(), official[seq], atol=2e-6)
    # music aligned by timestamps: mBR2 covers the dance, mJS2 (500 frames) leaves 76 frames masked and zero
    np.testing.assert_array_equal(batch["music"][0].numpy(), _music("mBR2")[:576])
    assert batch["music_mask"][0].all()
    np.testing.assert_array_equal(batch["music"][1, :500].numpy(), _music("mJS2"))
    assert not batch["music_mask"][1, 500:].any() and not batch["music"][1, 500:].any()

    # a field the corpus lacks for every sequence is an error that says what to do; for some, they are skipped
    with pytest.raises(AistppError, match="add-music"):
        SequenceDataset(_corpus_without_music(corpus_dir), fields=("smpl", "music"))

    # collate pads and masks variable lengths (known answer on hand-made items)
    items = [{"motion": torch.ones(3, 2), "keypoints2d": torch.ones(2, 3, 17, 3), "smpl_scaling": torch.ones(1),
              "frames": 3, "sequence": "a"},
             {"motion": 2 * torch.ones(5, 2), "keypoints2d": torch.ones(2, 5, 17, 3),
              "smpl_scaling": torch.ones(1), "frames": 5, "sequence": "b"}]
    out = collate_sequences(items)
    assert out["motion"].shape == (2, 5, 2) and out["keypoints2d"].shape == (2, 2, 5, 17, 3)
    assert out["motion"][0, 3:].abs().sum() == 0 and out["keypoints2d"][0, :, 3:].abs().sum() == 0
    assert out["mask"].tolist() == [[True] * 3 + [False] * 2, [True] * 5]
    assert out["lengths"].tolist() == [3, 5] and out["smpl_scaling"].shape == (2, 1)
    assert out["sequence"] == ["a", "b"]


def test_import_is_light():
    import subprocess
    import sys

    code = "import sys, aistpp.data; print(int('torch' in sys.modules), int('h5py' in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["0", "0"]
