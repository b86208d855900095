"""What a user reads when input is wrong: cameras by name (c01..c09), empty files called empty, a wrong view count
blamed as such, and --genre reporting missing files the way --split does."""

import json
import shutil

import pytest

from aistpp.errors import AistppError
from aistpp.io.annotations import read_keypoints2d, read_keypoints3d, read_mapping, read_motion
from aistpp.io.cameras import load_cameras
from aistpp.io.safe_pickle import load_pickle, save_pickle
from aistpp.naming import view_name, view_names


def test_view_names():
    assert view_name(0) == "c01" and view_name(4) == "c05" and view_name(8) == "c09"
    assert view_names([2, 4]) == "c03, c05"


def test_camera_errors_name_the_camera(annotations_dir, tmp_path):
    cams = json.loads((annotations_dir / "cameras" / "setting1.json").read_text())
    del cams[4]["translation"]
    p = tmp_path / "setting1.json"
    p.write_text(json.dumps(cams))
    with pytest.raises(AistppError, match=r"camera c05 \(entry 5 of the list\) lacks translation"):
        load_cameras(p)
    cams[4]["translation"] = [0, 0]
    p.write_text(json.dumps(cams))
    with pytest.raises(AistppError, match="camera c05 is malformed: expected shape"):
        load_cameras(p)


@pytest.mark.parametrize("reader", [read_keypoints2d, read_keypoints3d, read_motion, load_cameras, read_mapping])
def test_empty_files_are_called_empty(tmp_path, reader):
    p = tmp_path / ("setting1.json" if reader is load_cameras else "x.txt" if reader is read_mapping else "x.pkl")
    p.write_bytes(b"")
    with pytest.raises(AistppError, match="is empty") as err:
        reader(p)
    assert str(p) in str(err.value)


def test_wrong_view_count_is_blamed_on_the_views(annotations_dir, tmp_path):
    data = load_pickle(annotations_dir / "keypoints2d" / "gBR_sBM_cAll_d04_mBR2_ch08.pkl")
    p = tmp_path / "eight.pkl"
    save_pickle(dict(data, keypoints2d=data["keypoints2d"][:8]), p)  # det_scores keeps its 9 rows
    with pytest.raises(AistppError, match=r"keypoints2d has 8 views, expected 9 \(one per camera c01..c09\)"):
        read_keypoints2d(p)
    save_pickle({k: v[:8] if k != "timestamps" else v for k, v in data.items()}, p)
    with pytest.raises(AistppError, match="keypoints2d has 8 views, expected 9"):
        read_keypoints2d(p)


def test_genre_with_missing_files_fails_like_split(annotations_dir, tmp_path):
    """Two gPO sequences in mapping.txt, one keypoints2d file: --genre and --split both run the one and list the
    other as failed with the same reason."""
    from aistpp.io.annotations import write_keypoints2d, write_mapping
    from aistpp.pipeline import PipelineConfig, reconstruct, select_sequences

    root = tmp_path / "tree"
    (root / "cameras").mkdir(parents=True)
    shutil.copy(annotations_dir / "cameras" / "setting1.json", root / "cameras" / "setting1.json")
    have, missing = "gPO_sBM_cAll_d10_mPO0_ch01", "gPO_sBM_cAll_d10_mPO1_ch02"
    write_mapping(root / "cameras" / "mapping.txt", {have: "setting1", missing: "setting1"})
    kp = load_pickle(annotations_dir / "keypoints2d" / "gBR_sBM_cAll_d04_mBR2_ch08.pkl")["keypoints2d"][:, :20]
    write_keypoints2d(root / "keypoints2d" / f"{have}.pkl", kp)
    names = tmp_path / "names.txt"
    names.write_text(f"{have}\n{missing}\n")
    by_genre = select_sequences(root, genres=("gPO",))
    by_split = select_sequences(root, split=str(names))
    assert by_genre == by_split == [have, missing]
    cfg = PipelineConfig(stages=("triangulate",))
    runs = [reconstruct(root, tmp_path / f"c{i}", seqs, cfg) for i, seqs in enumerate((by_genre, by_split))]
    for summary in runs:
        assert summary.done == [have] and list(summary.failed) == [missing]
    assert runs[0].failed[missing] == runs[1].failed[missing]
    assert "keypoints2d file missing" in str(runs[0].failed[missing])
