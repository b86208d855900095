"""End to end: `aistpp detect` on synthetic 9-view videos showing a real photo, `detect --images`, `overlay`.

Each view shows skimage's astronaut (scaled to 256x256) pasted at a view-specific offset into a 384x288 grey frame;
so the nose must land in the hand-set astronaut nose box (see test_detect_mediapipe.py), halved and shifted by the
view's offset. View c02 is missing, c03 has another size.
"""

import json

import numpy as np
import pytest

av = pytest.importorskip("av")
pytest.importorskip("mediapipe")
skdata = pytest.importorskip("skimage.data")
cv2 = pytest.importorskip("cv2")

from aistpp.cli import main  # noqa: E402
from aistpp.detect.draw import LEFT_RGB, RIGHT_RGB  # noqa: E402
from aistpp.io.annotations import read_keypoints2d  # noqa: E402
from aistpp.skeleton import INDEX  # noqa: E402
from aistpp.video import write_video as write_video_file  # noqa: E402

SEQ = "gJS_sBM_cAll_d03_mJS2_ch07"
W, H, N = 384, 288, 12
NOSE_BOX = np.array([200, 110, 245, 150]) / 2  # astronaut nose box at half scale
OFFSETS = {f"c0{k}": (8 * k, 4 * k) for k in range(1, 10)}


def photo_frame(dx, dy, size=(W, H)):
    img = np.full((size[1], size[0], 3), 128, np.uint8)
    small = cv2.resize(skdata.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    img[dy:dy + 256, dx:dx + 256] = small[: size[1] - dy, : size[0] - dx]
    return img


def write_video(path, frame, n=N, size=(W, H)):
    write_video_file(path, [frame] * n, crf=12)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("detect_videos")
    for v, (dx, dy) in OFFSETS.items():
        if v == "c02":
            continue
        size = (320, 240) if v == "c03" else (W, H)
        write_video(d / f"{SEQ.replace('cAll', v)}.mp4", photo_frame(dx, dy, size), size=size)
    return d


def test_detect_videos_two_workers_and_overlay(videos, tmp_path, capfd):
    out = tmp_path / "kp" / f"{SEQ}.pkl"
    rc = main(["detect", "--videos", str(videos), "--sequence", SEQ, "--out", str(out), "--workers", "2",
               "--size", f"{W}x{H}"])
    assert rc == 0
    err = capfd.readouterr().err  # the workers' native MediaPipe / TFLite / absl lines are silenced
    assert "W0000" not in err and "XNNPACK" not in err and "absl" not in err, err
    data = read_keypoints2d(out)  # official format, validated by the reader
    kp = data["keypoints2d"]
    assert kp.shape == (9, N, 17, 3) and data["det_scores"].shape == (9, N)
    np.testing.assert_array_equal(data["timestamps"], np.round(np.arange(N) * 1e6 / 60))
    assert np.isnan(kp[1]).all() and (data["det_scores"][1] == 0).all()  # c02 missing
    assert np.isnan(kp[2]).all()  # c03 other size: skipped
    status = json.loads((out.parent / f"{SEQ}.status.json").read_text())
    assert status["views"]["c02"]["state"] == "missing" and status["views"]["c03"]["state"] == "resolution"
    assert (data["box_source"][[1, 2]] == 0).all() and (data["box_source"][[0, 3, 4, 5, 6, 7, 8]] > 0).all()
    assert sum(status["views"]["c01"]["box_sources"].values()) == N
    assert not (out.parent / f"{SEQ}.pkl.parts").exists()
    for k, (v, (dx, dy)) in enumerate(OFFSETS.items()):
        if v in ("c02", "c03"):
            continue
        x0, y0, x1, y1 = NOSE_BOX + [dx, dy, dx, dy]
        nose = kp[k, :, INDEX["nose"]]
        assert ((nose[:, 0] >= x0) & (nose[:, 0] <= x1) & (nose[:, 1] >= y0) & (nose[:, 1] <= y1)).all(), v
        assert (data["det_scores"][k] > 0.3).all()

    # overlay one frame of c05: the subject's left shoulder is drawn in the left colour
    png = tmp_path / "c05.png"
    video = videos / f"{SEQ.replace('cAll', 'c05')}.mp4"
    assert main(["overlay", "--video", str(video), "--keypoints", str(out), "--frame", "3", "--out", str(png)]) == 0
    img = cv2.imread(str(png))[..., ::-1]
    for joint, colour in (("left_shoulder", LEFT_RGB), ("right_shoulder", RIGHT_RGB)):
        x, y = np.round(kp[4, 3, INDEX[joint], :2]).astype(int)
        np.testing.assert_allclose(img[y, x], colour, atol=40)
    # whole video
    mp4 = tmp_path / "c05.mp4"
    assert main(["overlay", "--video", str(video), "--keypoints", str(out), "--out", str(mp4)]) == 0
    with av.open(str(mp4)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == N and frames[0].shape == (H, W, 3)


def test_detect_images_json_and_overlay(tmp_path):
    img_path = tmp_path / "astronaut.png"
    cv2.imwrite(str(img_path), skdata.astronaut()[..., ::-1])
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.zeros((64, 64, 3), np.uint8))
    out = tmp_path / "kp.json"
    assert main(["detect", "--images", str(img_path), str(blank), "--out", str(out)]) == 0
    res = json.loads(out.read_text())["images"]
    nose = res[str(img_path)]["keypoints"]["nose"]
    assert 200 <= nose[0] <= 245 and 110 <= nose[1] <= 150 and nose[2] > 0.5
    assert res[str(blank)]["score"] == 0 and res[str(blank)]["keypoints"]["nose"] == [None, None, None]
    png = tmp_path / "over.png"
    assert main(["overlay", "--image", str(img_path), "--keypoints", str(out), "--out", str(png)]) == 0
    drawn = cv2.imread(str(png))[..., ::-1]
    x, y = int(round(nose[0])), int(round(nose[1]))
    assert np.abs(drawn[y, x].astype(int) - skdata.astronaut()[y, x]).sum() > 60  # something drawn there


def test_cli_errors(tmp_path, capsys):
    assert main(["detect", "--videos", str(tmp_path), "--out", str(tmp_path / "x.pkl")]) == 2
    assert "--sequence" in capsys.readouterr().err
    assert main(["detect", "--videos", str(tmp_path), "--sequence", SEQ, "--backend", "onnx",
                 "--out", str(tmp_path / "x.pkl")]) == 2
    assert "--model" in capsys.readouterr().err
    assert main(["overlay", "--image", str(tmp_path / "no.png"), "--keypoints", str(tmp_path / "no.json"),
                 "--out", str(tmp_path / "o.png")]) == 2
