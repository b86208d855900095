"""Synchronized 9-view decoding on a synthetic set of short videos written here with PyAV.

Each frame carries its *source* frame index as 8 black/white stripes (bit k = stripe k), so what a grid frame shows
can be compared with the frame whose timestamp is nearest i/60 s, computed independently below.
"""

from fractions import Fraction

import numpy as np
import pytest

av = pytest.importorskip("av")

import videotools  # noqa: E402
from videotools import read_stripes  # noqa: E402

from aistpp.video import (  # noqa: E402
    CORRUPT, MISSING, OK, REALIGNED, RESOLUTION, TRUNCATED, SequenceReader, VideoConfig, align_to_grid, probe_view,
)
from aistpp.video import write_video as write_video_file  # noqa: E402

SEQ = "gBR_sBM_cAll_d04_mBR0_ch01"
W, H = 192, 108
N = 90  # 1.5 s at 60 fps


def stripes(index: int, width: int = W, height: int = H) -> np.ndarray:
    return videotools.stripes(index, width, height)


def write_video(path, pts_ticks, time_base=Fraction(1, 60000), size=(W, H), index_of=None, preset="ultrafast"):
    """Write frames with the given PTS (in ``time_base`` ticks); frame k shows index_of(k) (default k).
    preset "medium" uses B-frames (decode order != presentation order)."""
    frames = (stripes(k if index_of is None else index_of(k), *size) for k in range(len(pts_ticks)))
    write_video_file(path, frames, pts=pts_ticks, time_base=time_base, preset=preset)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    name = {v: SEQ.replace("cAll", v) for v in (f"c0{i}" for i in range(1, 10))}
    at60 = [k * 1000 for k in range(N)]
    for v in ("c01", "c07"):
        write_video(d / f"{name[v]}.mp4", at60)
    write_video(d / f"{name['c09']}.mp4", at60, preset="medium")  # B-frames
    # c02 missing
    write_video(d / f"{name['c03']}.mp4", [t for k, t in enumerate(at60) if k != 40],
                index_of=lambda k: k if k < 40 else k + 1)  # source frame 40 dropped
    write_video(d / f"{name['c04']}.mp4", [k * 1001 for k in range(N)])  # 59.94 fps
    write_video(d / f"{name['c05']}.mp4", at60[:60])  # ends 30 frames early
    write_video(d / f"{name['c06']}.mp4", at60, size=(96, 54))  # another resolution
    write_video(d / f"{name['c08']}.mp4", at60)
    data = (d / f"{name['c08']}.mp4").read_bytes()
    (d / f"{name['c08']}.mp4").write_bytes(data[: len(data) // 2])  # cut in half: moov atom (at the end) is lost
    return d


def nearest_source(source_times_s, n):
    """Reference alignment by brute force: for each grid time i/60, the source index with the nearest time."""
    grid = np.arange(n) / 60.0
    return np.abs(np.asarray(source_times_s)[None, :] - grid[:, None]).argmin(1)


def test_nine_views_aligned_by_timestamp(videos):
    cfg = VideoConfig(expected_size=(W, H), batch_size=16)
    reader = SequenceReader(videos, SEQ, n_frames=N, config=cfg)
    st = reader.status
    assert st["c01"].state == OK and st["c09"].state == OK
    assert st["c02"].state == MISSING
    assert st["c03"].state == REALIGNED and st["c03"].holes == [40]
    assert st["c05"].state == TRUNCATED and st["c05"].holes == list(range(60, N))
    assert st["c06"].state == RESOLUTION and "96x54" in st["c06"].message
    assert st["c08"].state == CORRUPT
    assert reader.n_frames == N
    np.testing.assert_array_equal(reader.timestamps, np.round(np.arange(N) * 1e6 / 60).astype(np.int64))

    shown = {v: [] for v in reader.views}
    valid = {v: [] for v in reader.views}
    starts = []
    for batch in reader:
        starts.append(batch.start)
        assert len(batch.timestamps) == batch.valid.shape[1] <= 16
        for k, v in enumerate(batch.views):
            fr = batch.frames[v]
            if fr is None:
                continue
            assert fr.shape[1:] == (H, W, 3) and fr.dtype == np.uint8
            shown[v] += [read_stripes(f) for f in fr]
            valid[v] += batch.valid[k].tolist()
    assert starts == list(range(0, N, 16))
    for v in ("c02", "c06", "c08"):
        assert shown[v] == []  # unusable views yield nothing (NaN downstream)
    for v in ("c01", "c07", "c09"):  # c09 has B-frames: packets out of presentation order
        assert shown[v] == list(range(N)) and all(valid[v])
    # dropped frame: every shown frame is the source frame at that time; grid frame 40 is a hole
    assert [s for i, s in enumerate(shown["c03"]) if i != 40] == [i for i in range(N) if i != 40]
    assert valid["c03"] == [i != 40 for i in range(N)]
    # 59.94 fps: the frame with the nearest timestamp (independent brute force)
    ref = nearest_source(np.arange(N) * 1001 / 60000, N)
    assert shown["c04"] == ref.tolist() and all(valid["c04"])
    # truncated: frames 0..59 right, then holes
    assert shown["c05"][:60] == list(range(60)) and valid["c05"] == [i < 60 for i in range(N)]


def test_resize_policy_keeps_other_resolution(videos):
    cfg = VideoConfig(expected_size=(W, H), on_resolution="resize", batch_size=32)
    st, pts = probe_view(videos / f"{SEQ.replace('cAll', 'c06')}.mp4", "c06", N, cfg)
    assert st.usable and "96x54" in st.message
    reader = SequenceReader(videos, SEQ, n_frames=N, config=cfg, views=("c06",))
    got = [read_stripes(f) for b in reader for f in b.frames["c06"]]
    assert got == list(range(N))


def test_frame_count_inferred_and_checked(videos):
    reader = SequenceReader(videos, SEQ, config=VideoConfig(expected_size=(W, H)), views=("c01", "c05"))
    assert reader.n_frames == N  # the longest usable view
    assert reader.status["c05"].state == TRUNCATED


def test_b_frames_present(videos):
    with av.open(str(videos / f"{SEQ.replace('cAll', 'c09')}.mp4")) as c:
        pts = [p.pts for p in c.demux(video=0) if p.pts is not None]
    assert pts != sorted(pts)  # so the alignment test above covers reordering


def test_align_59_94_over_30_s_reports_duplicates():
    n = 1800
    src = np.round(np.arange(1799) * 1001 / 60000 * 1e6).astype(np.int64)
    al = align_to_grid(src, n)
    ref = nearest_source(src / 1e6, n)
    np.testing.assert_array_equal(al.source_index, ref)
    assert al.valid.all()  # never more than half a frame off
    # 1798.2 source frames cover 1800 grid frames: some source frames are used twice, each reported once
    assert len(al.duplicates) == n - len(np.unique(ref))
    assert len(al.duplicates) >= 1


def test_align_shuffled_and_offset_inputs():
    src = np.array([50_000, 0, 16_667, 33_333])  # unsorted 60 fps frames 0..3; grid frame 4 has none within 0.6 periods
    al = align_to_grid(src, 5)
    np.testing.assert_array_equal(al.source_index, [0, 1, 2, 3, 3])
    np.testing.assert_array_equal(al.valid, [True, True, True, True, False])


def test_truncated_faststart_file_is_reported_and_read_up_to_the_cut(tmp_path):
    # moov atom first (index of all 90 frames), then the media data cut at 40%: the index promises frames the
    # file no longer holds; decoding must stop at the cut, the rest become holes, the state says truncated
    path = tmp_path / f"{SEQ.replace('cAll', 'c01')}.mp4"
    write_video_file(path, (stripes(k) for k in range(N)), container_options={"movflags": "faststart"})
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.4)])
    reader = SequenceReader(tmp_path, SEQ, n_frames=N, config=VideoConfig(expected_size=(W, H), batch_size=32),
                            views=("c01",))
    shown, valid = [], []
    for b in reader:
        shown += [read_stripes(f) for f in b.frames["c01"]]
        valid += b.valid[0].tolist()
    st = reader.status["c01"]
    assert st.state == TRUNCATED, st.summary()
    n_ok = sum(valid)
    assert 5 < n_ok < N - 5 and valid == [True] * n_ok + [False] * (N - n_ok)
    assert shown[:n_ok] == list(range(n_ok))
    assert st.holes == list(range(n_ok, N))


def test_frame_count_against_expectation(videos):
    path = videos / f"{SEQ.replace('cAll', 'c01')}.mp4"
    cfg = VideoConfig(expected_size=(W, H))
    st, _ = probe_view(path, "c01", N - 1, cfg)  # off by one (the official conversion bug): tolerated
    assert st.state == OK and st.n_source == N
    st, _ = probe_view(path, "c01", N - 10, cfg)
    assert st.state == REALIGNED and f"{N} frames for {N - 10} expected" in st.message
    st, _ = probe_view(path, "c01", N + 10, cfg)
    assert st.state == TRUNCATED and st.holes == list(range(N, N + 10))
