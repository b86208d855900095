import pytest

from aistpp import AistppError
from aistpp.naming import (DANCERS, GENRES, MUSIC_IDS, build_name, music_genre, music_tempo, parse_genres,
                           parse_name, sequence_of)


def test_parse_sequence_and_video_names():
    n = parse_name("gBR_sBM_cAll_d04_mBR0_ch01")
    assert (n.genre, n.situation, n.camera, n.dancer, n.music, n.choreography) == (
        "gBR", "sBM", "cAll", "d04", "mBR0", "ch01")
    assert n.genre_name == "Break" and n.situation_name == "basic" and not n.is_video
    v = parse_name("gBR_sBM_c05_d04_mBR0_ch01")
    assert v.is_video and v.sequence == "gBR_sBM_cAll_d04_mBR0_ch01"
    assert n.video_names()[4] == "gBR_sBM_c05_d04_mBR0_ch01" and len(n.video_names()) == 9
    assert sequence_of("gHO_sFM_c09_d20_mHO3_ch21") == "gHO_sFM_cAll_d20_mHO3_ch21"


def test_build_round_trips():
    assert build_name("gJS", "sFM", 3, "mJS2", 7) == "gJS_sFM_cAll_d03_mJS2_ch07"
    assert build_name("gJS", "sFM", "d03", "mJS2", "ch07", view="c02") == "gJS_sFM_c02_d03_mJS2_ch07"


@pytest.mark.parametrize("music,bpm", [("mBR0", 80), ("mBR5", 130), ("mPO3", 110), ("mHO0", 110), ("mHO5", 135),
                                       ("mJB4", 120)])
def test_music_tempo(music, bpm):
    assert music_tempo(music) == bpm


def test_tables():
    assert len(GENRES) == 10 and len(MUSIC_IDS) == 60
    assert sum(len(d) for d in DANCERS.values()) == 30
    assert len({d for ds in DANCERS.values() for d in ds}) == 30
    assert music_genre("mKR2") == "gKR"


def test_mapping_agrees_with_tables(tree):
    mapping = tree.mapping()
    assert len(mapping) == 1408
    for seq in mapping:
        n = parse_name(seq)
        assert n.dancer in DANCERS[n.genre]
        assert music_genre(n.music) == n.genre


@pytest.mark.parametrize("bad", ["gXX_sBM_cAll_d04_mBR0_ch01", "gBR_sXX_cAll_d04_mBR0_ch01", "gBR_sBM_c10_d04_mBR0_ch01",
                                 "gBR_sBM_cAll_d01_mBR0_ch01", "gBR_sBM_cAll_d04_mBR9_ch01", "hello", ""])
def test_bad_names_raise_one_line(bad):
    with pytest.raises(AistppError) as err:
        parse_name(bad)
    assert "\n" not in str(err.value)


def test_parse_genres():
    assert parse_genres("gBR, gPO") == ("gBR", "gPO")
    assert parse_genres(None) is None
    with pytest.raises(AistppError, match="unknown genre 'gZZ'"):
        parse_genres("gBR,gZZ")
