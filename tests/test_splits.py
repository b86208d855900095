import pytest

from aistpp import AistppError
from aistpp.io.annotations import read_name_list
from aistpp.naming import parse_name
from aistpp.splits import SplitSpec, check_leakage, make_splits


def test_crossmodal_regenerates_official_files(tree):
    splits = make_splits(tree.mapping(), SplitSpec(keep_ignored=True), ignore=tree.ignore_list())
    assert splits["train"] == read_name_list(tree.split_path("crossmodal_train"))
    assert splits["test"] == read_name_list(tree.split_path("crossmodal_test"))
    assert len(splits["val"]) == 20
    assert all(parse_name(s).choreography == "ch01" for s in splits["val"])


def test_ignore_list_applied_by_default(tree):
    ignore = set(tree.ignore_list())
    kept = make_splits(tree.mapping(), SplitSpec(keep_ignored=True), ignore=ignore)
    dropped = make_splits(tree.mapping(), SplitSpec(), ignore=ignore)
    for subset in ("train", "val", "test"):
        assert not set(dropped[subset]) & ignore
        assert set(dropped[subset]) == set(kept[subset]) - ignore
    assert len(dropped["train"]) == 980 - len(ignore & set(kept["train"]))


def test_crossmodal_has_no_music_or_sequence_leakage(tree):
    s = make_splits(tree.mapping(), SplitSpec(keep_ignored=True))
    rep = check_leakage(s["train"], s["test"])
    assert not rep.musics and not rep.sequences and not rep.choreographies


def test_pose_split_holds_out_dancers_divisible_by_three(tree):
    s = make_splits(tree.mapping(), SplitSpec(kind="pose"), ignore=tree.ignore_list())
    assert {parse_name(n).dancer_number % 3 for n in s["test"]} == {0}
    assert 0 not in {parse_name(n).dancer_number % 3 for n in s["train"]}
    assert not check_leakage(s["train"], s["test"]).dancers


def test_genre_selection_and_holdout(tree):
    s = make_splits(tree.mapping(), SplitSpec(genres=("gBR", "gPO")), ignore=tree.ignore_list())
    assert {parse_name(n).genre for n in s["train"] + s["test"]} == {"gBR", "gPO"}
    h = make_splits(tree.mapping(), SplitSpec(kind="genre", holdout_genres=("gKR",)), ignore=tree.ignore_list())
    assert {parse_name(n).genre for n in h["test"]} == {"gKR"}
    assert "gKR" not in {parse_name(n).genre for n in h["train"]}
    assert check_leakage(h["train"], h["test"]).clean  # dancers and musics are per genre


def test_leakage_report_detects_overlap():
    rep = check_leakage(["gBR_sBM_cAll_d04_mBR0_ch01"], ["gBR_sFM_cAll_d04_mBR1_ch03"])
    assert rep.dancers == ["d04"] and not rep.musics and not rep.clean


def test_bad_specs():
    with pytest.raises(AistppError, match="unknown genre"):
        SplitSpec(genres=("gZZ",))
    with pytest.raises(AistppError, match="holdout"):
        SplitSpec(kind="genre")


def test_select_sequences_core(tree, tmp_path, caplog):
    """aistpp.splits.select_sequences, behind both the pipeline's (tree) and the datasets' (corpus) selection."""
    from aistpp.splits import select_sequences

    mapping = list(tree.mapping())
    ignore = tree.ignore_list()
    rule = select_sequences(mapping, "crossmodal_train", ignore=ignore)
    assert rule == make_splits(mapping, SplitSpec(), ignore=ignore)["train"] and len(rule) < 980
    # the published file wins over the rule when a split folder is given (it keeps the ignored ones)
    assert select_sequences(mapping, "crossmodal_test", split_dir=tree.root / "splits") == \
        read_name_list(tree.split_path("crossmodal_test"))
    few = mapping[:5]
    asked = [mapping[3], "gKR_sBM_cAll_d28_mKR0_ch01", mapping[1], mapping[3]]
    assert select_sequences(few, asked) == [mapping[3], "gKR_sBM_cAll_d28_mKR0_ch01", mapping[1]]
    with caplog.at_level("WARNING", logger="aistpp.splits"):
        assert select_sequences(few, asked, missing="drop", where="the corpus") == [mapping[3], mapping[1]]
    assert "1 of 4 requested sequences are not in the corpus" in caplog.text
    f = tmp_path / "names.txt"
    f.write_text("\n".join(asked) + "\n")
    assert select_sequences(few, str(f), genres="gKR") == ["gKR_sBM_cAll_d28_mKR0_ch01"]
    assert select_sequences(mapping, None, ("gBR",)) == [s for s in mapping if s.startswith("gBR")]
    with pytest.raises(AistppError, match="unknown split 'pose_val'"):
        select_sequences(mapping, "pose_val")
