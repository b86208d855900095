"""Person localization on real pixels: a real photo of a person (skimage's astronaut) a third of a 1920x1080 frame
tall, moving over a static real texture with sensor noise, a tripod and a still object (tests/photovideo.py).

Truth = MediaPipe on the full-size photo, scaled and shifted to where the photo is in each frame; compared on the
points it is sure of (confidence >= 0.5: face, shoulders, an elbow).
"""

import numpy as np
import pytest

av = pytest.importorskip("av")
cv2 = pytest.importorskip("cv2")
pytest.importorskip("mediapipe")
pytest.importorskip("skimage")

from aistpp.detect import DetectConfig, MediaPipeDetector, detect_sequence  # noqa: E402
from aistpp.detect.localize import (  # noqa: E402
    BACKGROUND, BOX_SOURCES, FRAME, MULTIVIEW, NONE, TRACK, BackgroundModel, LocalizeConfig, crop_square,
    keypoint_box, multiview_boxes, square_box, triangulate_views,
)
from aistpp.video import write_video  # noqa: E402

from photovideo import Scene, person_photo, textured_background  # noqa: E402

SEQ = "gBR_sBM_cAll_d04_mBR0_ch01"


@pytest.fixture(scope="module")
def detector():
    with MediaPipeDetector() as det:
        yield det


@pytest.fixture(scope="module")
def reference(detector):
    photo = person_photo("astronaut")
    kp, sc = detector(photo[None])
    assert sc[0] > 0.5
    return photo, kp[0]


def errors_px(keypoints, scene, ref):
    """Distances (px) of the sure points to the scaled full-photo detection, over the frames with a detection."""
    sure = ref[:, 2] >= 0.5
    out = []
    for i in np.flatnonzero(np.isfinite(keypoints[:, :, 0]).all(-1)):
        out.append(np.linalg.norm(keypoints[i, sure, :2] - scene.to_frame(ref, i)[sure, :2], axis=-1))
    return np.concatenate(out) if out else np.zeros(0)


def write_scene(folder, scene, view="c01"):
    write_video(folder / f"{SEQ.replace('cAll', view)}.mp4", scene.frames(), preset="ultrafast", crf=18)


# -- geometry -------------------------------------------------------------------------------------------------------

def test_crop_square_maps_points_back():
    frame = np.zeros((1080, 1920, 3), np.uint8)
    cv2.circle(frame, (1500, 300), 6, (255, 255, 255), -1)
    for box in ([1300.0, 100.0, 1700.0, 500.0], [1400.0, -200.0, 2000.0, 400.0]):  # inside, past the corner
        crop, (x0, y0, side) = crop_square(frame, box, 256)
        assert crop.shape == (256, 256, 3) and side == box[2] - box[0]
        ys, xs = np.nonzero(crop[..., 0] > 128)
        u, v = xs.mean() + 0.5, ys.mean() + 0.5  # continuous coordinates of the dot's centre
        np.testing.assert_allclose([x0 + u * side / 256, y0 + v * side / 256], [1500.5, 300.5], atol=1.0)
    np.testing.assert_allclose(square_box([10, 20, 30, 60], 1.5), [-10, 10, 50, 70])
    kp = np.full((17, 3), np.nan)
    kp[:3] = [[100, 200, 0.9], [140, 320, 0.8], [500, 500, 0.1]]
    np.testing.assert_allclose(keypoint_box(kp, 0.3, 48), [96, 200, 144, 320])
    assert np.isnan(keypoint_box(kp[:1].repeat(17, 0) * [1, 1, 0], 0.3)).all()


def test_background_finds_the_person_not_the_tripod_or_a_shadow():
    bg = textured_background()
    scene = Scene(person_photo("astronaut"), bg, 48)
    model = BackgroundModel(LocalizeConfig())
    for i in range(48):
        frame = scene.frame(i)
        model.observe(i, frame)
    assert model.ready and len(model.samples) >= 5
    i = 30
    x, y, s = scene.placement(i)
    truth = np.array([x, y, x + scene.small.shape[1], y + scene.small.shape[0]])
    boxes = model.boxes(scene.frame(i))
    assert len(boxes) == 1  # the tripod and the still object are background
    np.testing.assert_allclose(boxes[0], truth, atol=2 * model.config.bg_scale)
    # a flat dark shadow on the floor and a thin moving pole are not people
    frame = bg.copy()
    cv2.ellipse(frame, (900, 950), (260, 40), 0, 0, 360, (60, 60, 60), -1)
    cv2.line(frame, (300, 300), (300, 1000), (20, 20, 20), 10)
    assert len(model.boxes(frame)) == 0


def test_multiview_boxes_project_the_triangulated_person():
    from aistpp.triangulate.calibrate import ring_cameras

    cams = ring_cameras()
    rng = np.random.default_rng(0)
    X = np.array([0.0, 150.0, 0.0]) + rng.normal(0, 25, (5, 17, 3))  # (N, 17, 3) cm
    px = cams.project(X)  # (V, N, 17, 2)
    kp = np.concatenate([px, np.full(px.shape[:-1] + (1,), 0.9)], -1)
    np.testing.assert_allclose(triangulate_views(kp, cams), X, atol=1e-6)
    kp[[2, 6], :3] = np.nan  # views c03, c07 lost the first 3 frames
    boxes = multiview_boxes(kp, cams)
    truth = keypoint_box(np.concatenate([px, np.ones(px.shape[:-1] + (1,))], -1))
    np.testing.assert_allclose(boxes[[2, 6], :3], truth[[2, 6], :3], atol=1e-6)
    assert np.isnan(boxes[:, 3:]).all() and np.isnan(boxes[[0, 1, 3, 4, 5, 7, 8], :3]).all()
    kp[:8, 4] = np.nan  # one view left: nothing to triangulate from
    assert np.isnan(multiview_boxes(kp, cams)[8, 4]).all() and np.isnan(multiview_boxes(kp, cams)[:8, 4]).all()


# -- one view of real pixels -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def moving_view(tmp_path_factory):
    d = tmp_path_factory.mktemp("localize")
    scene = Scene(person_photo("astronaut"), textured_background(), 40)
    write_scene(d, scene)
    return d, scene


def test_localized_detection_finds_the_dancer_whole_frame_does_not(moving_view, detector, reference):
    d, scene = moving_view
    _, ref = reference
    whole = detect_sequence(d, SEQ, detector, views=("c01",), config=DetectConfig(boxes="frame"))
    loc = detect_sequence(d, SEQ, detector, views=("c01",))
    found_whole = np.isfinite(whole["keypoints2d"][0, :, :, 0]).all(-1).mean()
    kp = loc["keypoints2d"][0]
    found = np.isfinite(kp[:, :, 0]).all(-1).mean()
    err = errors_px(kp, scene, ref)
    print(f"whole frame: {found_whole:.0%} found; localized: {found:.1%} found, median {np.median(err):.1f} px, "
          f"{np.mean(err <= 10):.0%} within 10 px, boxes {np.bincount(loc['box_source'][0], minlength=5)}")
    assert found_whole < 0.5
    assert found >= 0.98
    assert np.median(err) <= 6 and np.mean(err <= 10) >= 0.65
    src = loc["box_source"][0]
    assert src.dtype == np.uint8 and (src[np.isfinite(kp[:, 0, 0])] != NONE).all()
    assert (src == TRACK).mean() >= 0.9  # found once, then tracked
    assert np.all(whole["box_source"][0][np.isfinite(whole["keypoints2d"][0, :, 0, 0])] == FRAME)


def test_reacquired_by_background_after_leaving(tmp_path, detector, reference):
    _, ref = reference
    absent = tuple(range(34, 42))
    scene = Scene(person_photo("astronaut"), textured_background(), 56, absent=absent,
                  path=((0.1, 0.5), (0.65, 0.4)))
    write_scene(tmp_path, scene)
    res = detect_sequence(tmp_path, SEQ, detector, views=("c01",))
    kp, src = res["keypoints2d"][0], res["box_source"][0]
    has = np.isfinite(kp[:, :, 0]).all(-1)
    present = np.setdiff1d(np.arange(56), absent)
    assert not has[list(absent)].any() and (src[list(absent)] == NONE).all()  # nobody: no false person
    assert has[present].mean() >= 0.98
    assert src[42] == BACKGROUND  # back at another place: the background model finds it again
    assert np.median(errors_px(kp, scene, ref)) <= 6


def test_empty_view_gives_nan_rows_not_a_person(tmp_path, detector):
    scene = Scene(person_photo("astronaut"), textured_background(), 24, present=False)
    write_scene(tmp_path, scene)
    res = detect_sequence(tmp_path, SEQ, detector, views=("c01",))
    assert np.isnan(res["keypoints2d"]).all() and (res["det_scores"] == 0).all()
    assert (res["box_source"] == NONE).all() and res["status"]["c01"]["state"] == "ok"


# -- nine views: multi-view seeding ----------------------------------------------------------------------------------

def nine_view_rig():
    """A ring of 7 cameras 5 m from the centre and c03, c07 9 m away (the dancer is small there)."""
    from aistpp.io.cameras import CameraGroup
    from aistpp.triangulate.calibrate import ring_cameras

    near, far = ring_cameras(radius_cm=500), ring_cameras(radius_cm=900)
    return CameraGroup(tuple(far[i] if i in (2, 6) else near[i] for i in range(9)), "rig")


def test_nine_views_lost_views_recovered_from_the_others(tmp_path, detector, reference):
    """The photo is a 110 cm billboard facing each camera, its centre moving along the x axis: c03 and c07 (on
    that axis, far away) see it small and standing still, so their background model absorbs it and the whole
    frame is too large for it: they start (and stay) lost on their own. The other views see it move."""
    photo, ref = reference
    cams = nine_view_rig()
    n = 20
    t = np.linspace(-1, 1, n)
    centers = np.stack([40 * t, np.full(n, 150.0), np.zeros(n)], -1)  # (N, 3) cm
    depth = cams.to_camera(centers)[..., 2]  # (V, N)
    px = cams.project(centers)  # (V, N, 2)
    bg = textured_background(tripod=False)
    scenes = []
    for v in range(9):
        s = 1600 * 110 / depth[v] / photo.shape[0]  # (N,) px per photo px
        placements = [(px[v, i, 0] - s[i] * photo.shape[1] / 2, px[v, i, 1] - s[i] * photo.shape[0] / 2, s[i])
                      for i in range(n)]
        scene = Scene(photo, bg, n, placements=placements, seed=v)
        write_scene(tmp_path, scene, f"c0{v + 1}")
        scenes.append(scene)
    alone = detect_sequence(tmp_path, SEQ, detector, views=("c03", "c07"))  # no cameras: each view on its own
    seeded = detect_sequence(tmp_path, SEQ, detector, cameras=cams)
    has_alone = np.isfinite(alone["keypoints2d"][..., 0]).all(-1)
    has = np.isfinite(seeded["keypoints2d"][..., 0]).all(-1)
    print("found alone (c03, c07)", has_alone.mean(1).round(2), "with cameras", has.mean(1).round(2))
    lost = [2, 6]
    assert has_alone.mean() <= 0.1 and not has_alone[:, 0].any()  # they start lost
    assert has[lost].mean() >= 0.98 and has.mean() >= 0.98
    assert (seeded["box_source"][has] != NONE).all() and (seeded["box_source"][~has] == NONE).all()
    assert (seeded["box_source"][lost] == MULTIVIEW).sum() >= 1  # seeded from the other views, then tracked
    for v in lost:
        err = errors_px(seeded["keypoints2d"][v], scenes[v], ref)
        print(f"c0{v + 1}: median {np.median(err):.1f} px from the scaled full-photo detection")
        assert np.median(err) <= 5, (v, np.median(err))  # the photo is ~200 px tall here
    assert BOX_SOURCES[MULTIVIEW] == "multiview"


def test_reconstruct_from_videos_localizes_with_the_setting_cameras_and_keeps_box_source(tmp_path, monkeypatch):
    """The pipeline's videos path: detection gets the setting's cameras (multi-view boxes) and the default
    (localized) detection config; box_source goes into the corpus arrays (a valid optional field)."""
    import aistpp.detect
    from aistpp.corpus.schema import validate_arrays
    from aistpp.io.annotations import write_mapping
    from aistpp.io.cameras import save_cameras
    from aistpp.pipeline import PipelineConfig, SequenceTask, run_sequence

    cams = nine_view_rig()
    root = tmp_path / "annotations"
    (root / "cameras").mkdir(parents=True)
    save_cameras(cams, root / "cameras" / "setting1.json")
    write_mapping(root / "cameras" / "mapping.txt", {SEQ: "setting1"})
    X = np.array([0.0, 150.0, 0.0]) + np.random.default_rng(1).normal(0, 25, (10, 17, 3))
    px = cams.project(X)
    kp = np.concatenate([px, np.full(px.shape[:-1] + (1,), 0.9)], -1).astype(np.float32)
    src = np.full(kp.shape[:2], TRACK, np.uint8)
    src[2, :4] = MULTIVIEW
    seen = {}

    def fake_detect_sequence(videos_dir, sequence, detector, n_frames=None, video_config=None,
                             config=DetectConfig(), views=None, progress=None, cameras=None):
        seen.update(cameras=cameras, config=config, supports_crops=detector.supports_crops)
        return {"keypoints2d": kp, "det_scores": np.full(kp.shape[:2], 0.9, np.float32), "box_source": src,
                "timestamps": np.round(np.arange(10) * 1e6 / 60).astype(np.int64), "status": {}}

    monkeypatch.setattr(aistpp.detect, "detect_sequence", fake_detect_sequence)
    task = SequenceTask(SEQ, str(root), PipelineConfig(source="videos", stages=("triangulate",)), str(tmp_path))
    res = run_sequence(task)
    assert res.status == "ok", res.reason
    np.testing.assert_allclose(seen["cameras"].extrinsics, cams.extrinsics)
    assert seen["config"].boxes == "localize" and seen["supports_crops"]
    np.testing.assert_array_equal(res.arrays["box_source"], src)
    np.testing.assert_allclose(res.arrays["keypoints3d"], X, atol=1e-3)
    arrays, n, v = validate_arrays(res.arrays)
    assert arrays["box_source"].dtype == np.uint8 and (n, v) == (10, 9)


# -- ONNX backend: the same localization, through the CLI -----------------------------------------------------------

def spot_onnx(path):
    """A 'pose model' that puts all 17 keypoints on the brightest spot of its 48x64 input: heatmaps = channel mean
    averaged over the 4x4 input pixels around 4k (stride 4, heatmap cell k <-> input pixel 4k as in mmpose), so its
    precision is bounded by the crop it is given."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["B", 3, 64, 48])
    out = helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT, ["B", 17, 16, 12])
    nodes = [helper.make_node("ReduceMean", ["input"], ["m"], axes=[1], keepdims=1),
             helper.make_node("AveragePool", ["m"], ["p"], kernel_shape=[4, 4], strides=[4, 4], pads=[2, 2, 1, 1]),
             helper.make_node("Tile", ["p", "reps"], ["heatmaps"])]
    inits = [numpy_helper.from_array(np.array([1, 17, 1, 1], np.int64), "reps")]
    model = helper.make_model(helper.make_graph(nodes, "spot", [inp], [out], inits),
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_onnx_cli_localizes_a_moving_spot(tmp_path):
    """A bright Gaussian spot moving over a dark noisy 640x360 view. On the whole frame it is ~1 px of the model input
    (weak, imprecise peaks); localized: the background model finds it once it has samples, the second pass
    covers the frames before, tracking the rest, and the keypoints land within a few px of the spot."""
    from aistpp.cli import main
    from aistpp.io.annotations import read_keypoints2d

    n, centers = 40, []
    rng = np.random.default_rng(0)
    frames = []
    yy, xx = np.mgrid[0:360, 0:640] + 0.5  # pixel centres
    for i in range(n):
        c = (150.0 + 8 * i, 120.0 + 3 * i)
        spot = 215 * np.exp(-((xx - c[0]) ** 2 + (yy - c[1]) ** 2) / (2 * 10.0 ** 2))
        img = np.clip(40 + spot + rng.normal(0, 4, spot.shape), 0, 255)[..., None].repeat(3, -1)
        frames.append(img.astype(np.uint8))
        centers.append(c)
    d = tmp_path / "videos"
    d.mkdir()
    write_video(d / f"{SEQ.replace('cAll', 'c01')}.mp4", frames, crf=12)
    model = spot_onnx(tmp_path / "spot.onnx")
    from aistpp.io.cameras import save_cameras

    save_cameras(nine_view_rig(), tmp_path / "setting1.json")  # one view only: nothing to seed from, but accepted
    got = {}
    for boxes in ("frame", "localize"):
        out = tmp_path / f"{boxes}.pkl"
        assert main(["detect", "--videos", str(d), "--sequence", SEQ, "--out", str(out), "--backend", "onnx",
                     "--model", str(model), "--size", "640x360", "--boxes", boxes,
                     "--cameras", str(tmp_path / "setting1.json")]) == 0
        got[boxes] = read_keypoints2d(out)
    assert main(["detect", "--videos", str(d), "--sequence", SEQ, "--out", str(tmp_path / "x.pkl"), "--backend",
                 "onnx", "--model", str(model), "--cameras", str(tmp_path / "nope.json")]) == 2
    centers = np.array(centers, float)
    err = {b: np.linalg.norm(g["keypoints2d"][0, :, 0, :2] - centers, axis=-1) for b, g in got.items()}
    print({b: np.round(np.median(e), 1) for b, e in err.items()})
    assert np.median(err["frame"]) > 5
    assert np.median(err["localize"]) <= 3 and err["localize"].max() <= 6
    src = got["localize"]["box_source"][0]
    assert set(src) <= {TRACK, BACKGROUND} and (src == BACKGROUND).any() and (src == TRACK).mean() > 0.8
