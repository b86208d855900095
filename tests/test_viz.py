"""Pictures from the real shared sequences, checked for content: joints land on the pixels an independent projection
(cv2.projectPoints) says, the canvas elsewhere stays background, files have the expected size and frame count."""

import json
import os

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from aistpp.cli import main  # noqa: E402
from aistpp.errors import AistppError  # noqa: E402
from aistpp.skeleton import COCO17  # noqa: E402
from aistpp.viz import qa  # noqa: E402
from aistpp.viz.animate import AnimationConfig, skeleton_animation  # noqa: E402
from aistpp.viz.overlay import CANVAS_RGB, crop_boxes, overlay_frame, overlay_images  # noqa: E402
from aistpp.viz.render import BACKGROUND, COCO_SKELETON, look_at_camera, render_mesh, render_skeleton  # noqa: E402


@pytest.fixture(scope="module")
def real(tree, shared_sequences):
    seq = shared_sequences[1]
    return {"name": seq, "k3": tree.read("keypoints3d", seq)["keypoints3d_optim"],
            "k2": tree.read("keypoints2d", seq)["keypoints2d"], "cams": tree.cameras_for(seq),
            "motion": tree.read("motions", seq)}


def _cv2_project(points, K, R, t, dist=None):
    rvec, _ = cv2.Rodrigues(np.asarray(R, np.float64))
    px, _ = cv2.projectPoints(np.asarray(points, np.float64).reshape(-1, 1, 3), rvec, np.asarray(t, np.float64),
                              np.asarray(K, np.float64), None if dist is None else np.asarray(dist, np.float64))
    return px.reshape(-1, 2)


def _near(pixel, color, tol=40):
    return np.abs(pixel.astype(int) - np.asarray(color, int)).max() <= tol


def test_rendered_joints_sit_where_opencv_projects_them(real):
    k = real["k3"][300]
    cam = look_at_camera(real["k3"], size=(400, 300), azimuth_deg=-40, elevation_deg=20)
    img = render_skeleton(k, cam, floor_y=None, radius=5)
    assert img.shape == (300, 400, 3) and img.dtype == np.uint8
    px = _cv2_project(k, cam.K, cam.R, cam.t)
    colors = COCO_SKELETON.joint_colors
    hits = 0
    for j, (x, y) in enumerate(px):
        xi, yi = int(round(x)), int(round(y))
        assert 0 <= xi < 400 and 0 <= yi < 300, COCO17[j]
        hits += _near(img[yi, xi], colors[j])
    assert hits >= 15, f"only {hits}/17 joints drawn in their colour at the cv2 projection"
    # Far from every joint the canvas is untouched.
    d = np.linalg.norm(np.stack(np.mgrid[0:300, 0:400][::-1], -1)[:, :, None, :] - px[None, None], axis=-1).min(-1)
    far = d > 60
    assert far.mean() > 0.3 and (img[far] == BACKGROUND).all()


def test_animation_side_by_side_mp4_and_gif(real, tmp_path):
    k = real["k3"][:90]
    other = real["k3"][200:260]  # shorter: holds its last frame
    info = skeleton_animation(tmp_path / "a.mp4", [k, other], ["a", "b"],
                              config=AnimationConfig(size=(160, 120), stride=3))
    assert info["frames"] == 30 and info["fps"] == 20.0
    cap = cv2.VideoCapture(str(tmp_path / "a.mp4"))
    frames = []
    while True:
        ok, fr = cap.read()
        if not ok:
            break
        frames.append(fr)
    assert len(frames) == 30 and frames[0].shape == (120, 320, 3)
    fr = np.stack(frames).astype(int)
    nonwhite = (fr < 200).any(-1)
    assert nonwhite[:, :, :160].mean() > 0.01 and nonwhite[:, :, 160:].mean() > 0.01  # both panels drawn
    assert np.abs(fr[0, :, :160] - fr[-1, :, :160]).mean() > 1  # the dancer moves
    assert np.abs(fr[20, :, 160:] - fr[-1, :, 160:]).max() < 60  # panel b holds its last frame (codec noise only)
    info = skeleton_animation(tmp_path / "a.gif", [k[:12]], config=AnimationConfig(size=(100, 80), stride=2))
    from PIL import Image

    with Image.open(tmp_path / "a.gif") as gif:
        assert gif.size == (100, 80) and gif.n_frames == 6
    with pytest.raises(AistppError, match="mp4 or .gif"):
        skeleton_animation(tmp_path / "a.avi", [k])


def test_overlay_joints_at_camera_projection_on_all_9_views(real):
    i = 288
    k3 = real["k3"][i]
    tile = (640, 360)
    tiles = overlay_frame(k3, real["cams"], None, real["k2"][:, i], tile)
    assert len(tiles) == 9
    from aistpp.detect.draw import CENTER_RGB, LEFT_RGB, RIGHT_RGB

    colors = [LEFT_RGB if n.startswith("left") else RIGHT_RGB if n.startswith("right") else CENTER_RGB
              for n in COCO17]
    for v, cam in enumerate(real["cams"]):
        img = tiles[v]
        assert img.shape == (360, 640, 3)
        px = _cv2_project(k3, cam.K, cam.R, cam.tvec, cam.dist) * (640 / 1920, 360 / 1080)
        assert _overlay_hits(img, px, colors) >= 14, f"view {cam.name}: joints not at their projection"
        assert (img[5:40, -60:-5] == CANVAS_RGB).all()  # a corner far from the dancer is the blank canvas
    # Zoomed on the dancer: the joints sit at (projection - box corner) * tile / box size, and fill the tile.
    boxes = crop_boxes(real["k3"][i:i + 1], real["cams"], tile)
    zoomed = overlay_frame(k3, real["cams"], None, None, tile, boxes=boxes)
    for v, cam in enumerate(real["cams"]):
        x0, y0, x1, y1 = boxes[v]
        assert (x1 - x0) / (y1 - y0) == pytest.approx(640 / 360)
        px = (_cv2_project(k3, cam.K, cam.R, cam.tvec, cam.dist) - (x0, y0)) * (640 / (x1 - x0), 360 / (y1 - y0))
        assert _overlay_hits(zoomed[v], px, colors) >= 14, f"zoomed view {cam.name}"
        assert np.ptp(px[:, 1]) > 0.5 * 360 or np.ptp(px[:, 0]) > 0.5 * 640  # the dancer fills the tile
    # A wrong camera (another view's) does not match: the check can fail.
    wrong = _cv2_project(k3, real["cams"][4].K, real["cams"][4].R, real["cams"][4].tvec) * (640 / 1920, 360 / 1080)
    assert _overlay_hits(tiles[0], np.clip(wrong, 1, [638, 358]), colors) < 8


def _overlay_hits(img, px, colors, r=5):
    """Joints whose 3x3 neighbourhood shows their colour, or the colour of a joint drawn within ``r`` px of them
    (in a profile view the left and right twins overlap and the later one covers the other)."""
    hits = 0
    for j, (x, y) in enumerate(px):
        xi, yi = int(round(x)), int(round(y))
        near = [colors[k] for k in range(len(px)) if np.hypot(*(px[k] - px[j])) <= r]
        patch = img[yi - 1:yi + 2, xi - 1:xi + 2].reshape(-1, 3)
        hits += any(_near(p, c, 60) for p in patch for c in near)
    return hits


def test_overlay_on_videos(real, tmp_path):
    """With a videos folder the tiles show the decoded frames (solid colours here) under the skeleton."""
    from aistpp.naming import VIEWS, parse_name

    seq = parse_name(real["name"])
    colors = {}
    for n, v in enumerate(VIEWS):
        bgr = (20 * n, 100, 200 - 15 * n)
        colors[v] = bgr[::-1]
        w = cv2.VideoWriter(str(tmp_path / f"{seq.with_view(v)}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 60,
                            (1920, 1080))
        for _ in range(6):
            w.write(np.full((1080, 1920, 3), bgr, np.uint8))
        w.release()
    (i, img), = list(overlay_images(real["k3"], real["cams"], [3], real["k2"], tmp_path, real["name"],
                                    tile=(320, 180)))
    assert i == 3 and img.shape == (540, 960, 3)
    for n, v in enumerate(VIEWS):
        r, c = divmod(n, 3)
        corner = img[r * 180 + 5, c * 320 + 310]
        assert _near(corner, colors[v], 12), (v, corner, colors[v])


def test_qa_metrics_against_independent_computation(real):
    k3, k2, cams = real["k3"][:120], real["k2"][:, :120], real["cams"]
    err = qa.reprojection_error_per_view(k3, k2, cams)
    assert err.shape == (9, 120)
    v, n = 2, 57
    px = _cv2_project(k3[n], cams[v].K, cams[v].R, cams[v].tvec, cams[v].dist)
    ok = k2[v, n, :, 2] >= 0.15
    assert err[v, n] == pytest.approx(np.median(np.linalg.norm(px[ok] - k2[v, n, ok, :2], axis=1)), rel=1e-6)
    # README fact: the official keypoints3d reproject onto keypoints2d with a median of a few px per camera.
    med = np.nanmedian(err, axis=1)
    assert (med > 1).all() and (med < 15).all()
    vu = qa.views_used_from_keypoints2d(k2)
    for f, j in ((0, 0), (57, 9), (119, 16)):
        want = sum(1 << v for v in range(9) if k2[v, f, j, 2] >= 0.15 and np.isfinite(k2[v, f, j, :2]).all())
        assert int(vu[f, j]) == want
    frac = qa.views_per_joint(vu, 9)
    assert frac[3, 57] == pytest.approx(np.mean([(int(b) >> 3) & 1 for b in vu[57]]))
    lengths = qa.bone_lengths(k3)
    assert lengths[10, 0] == pytest.approx(np.linalg.norm(k3[10, 5] - k3[10, 7]))
    stab = qa.bone_stability(lengths)
    assert (stab["cv"] < 0.15).all() and 20 < stab["median_cm"][0] < 40  # upper arm 20-40 cm, stable


def _png(path):
    img = cv2.imread(str(path))
    assert img is not None, path
    return img


def test_qa_plots_are_pictures(real, tmp_path):
    k3, k2, cams = real["k3"][:240], real["k2"][:, :240], real["cams"]
    paths = [qa.plot_reprojection_error(tmp_path / "r.png", qa.reprojection_error_per_view(k3, k2, cams), cams.names),
             qa.plot_views_used(tmp_path / "v.png", qa.views_per_joint(qa.views_used_from_keypoints2d(k2), 9),
                                cams.names),
             qa.plot_bone_lengths(tmp_path / "b.png", qa.bone_lengths(k3)),
             qa.plot_fit_error(tmp_path / "f.png", np.abs(np.sin(np.arange(240) / 10)) + 1, total_loss=1.5)]
    for p in paths:
        img = _png(p)
        assert img.shape == (500, 1000, 3)
        nonwhite = (img < 230).any(-1).mean()
        assert 0.03 < nonwhite < 0.9, (p, nonwhite)
        assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50  # lines, text, colours: not a flat image
    # the reprojection plot has the 9 matplotlib cycle colours (one line per camera); C0 = #1f77b4 -> BGR (180,119,31)
    img = _png(paths[0]).astype(int)
    assert (np.abs(img - (180, 119, 31)).max(-1) < 10).sum() > 100


def test_mesh_drawing_fills_the_projected_silhouette():
    # A 40 cm square (two triangles) facing the camera at the origin.
    verts = np.array([[-20, -20, 0], [20, -20, 0], [20, 20, 0], [-20, 20, 0]], float)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    cam = look_at_camera(verts, size=(200, 200), azimuth_deg=0, elevation_deg=0, margin=2.0)
    img = render_mesh(verts, faces, cam, color=(0, 0, 255))
    corners = _cv2_project(verts, cam.K, cam.R, cam.t)
    cx, cy = corners.mean(axis=0).round().astype(int)
    assert img[cy, cx, 2] > 150 and img[cy, cx, 0] == 0  # inside: shaded red
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    assert (img[:int(lo[1]) - 3] == BACKGROUND).all() and (img[:, int(hi[0]) + 3:] == BACKGROUND).all()
    filled = (img != BACKGROUND).any(-1).mean()
    area = np.prod(hi - lo) / 200 ** 2
    assert filled == pytest.approx(area, rel=0.1)
    with pytest.raises(AistppError, match="out of range"):
        render_mesh(verts, np.array([[0, 1, 9]]), cam)


def test_cli_viz_on_the_official_tree(annotations_dir, shared_sequences, tmp_path, capsys):
    seq = shared_sequences[0]
    other = annotations_dir / "motions" / f"{shared_sequences[1]}.pkl"
    rc = main(["viz", str(annotations_dir), "--sequence", seq, "--out", str(tmp_path), "--frames", "0:90:6",
               "--size", "160x160", "--tile", "320x180", "--frame", "40", "--compare", str(other)])
    assert rc == 0
    printed = capsys.readouterr().out.split()
    names = {p.split("/")[-1] for p in printed}
    for suffix in ("skeleton.mp4", "overlay.png", "qa_reprojection.png", "qa_views.png", "qa_bones.png",
                   "qa_fit.png", "qa.json", "mesh.png", "mesh_views.png"):
        assert f"{seq}_{suffix}" in names
    assert _png(tmp_path / f"{seq}_overlay.png").shape == (540, 960, 3)
    umask = os.umask(0)
    os.umask(umask)
    for name in names:  # plain file permissions, not the 0600 of the temporary files they were written as
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name
    mesh = _png(tmp_path / f"{seq}_mesh.png")
    assert mesh.shape == (160, 320, 3) and (mesh != 255).any(-1).mean() > 0.05
    summary = json.loads((tmp_path / f"{seq}_qa.json").read_text())
    assert set(summary["reprojection_median_px"]) == {f"c0{i}" for i in range(1, 10)}
    # The stand-in model is not the real SMPL: the official fit lands within a few cm, not exactly.
    assert 0.5 < summary["fit_error_median_cm"] < 15
    cap = cv2.VideoCapture(str(tmp_path / f"{seq}_skeleton.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 15 and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 320
    # Re-running keeps finished files (resume); --overwrite redraws them.
    before = (tmp_path / f"{seq}_qa_bones.png").stat().st_mtime_ns
    assert main(["viz", str(annotations_dir), "--sequence", seq, "--out", str(tmp_path), "--what", "qa"]) == 0
    assert (tmp_path / f"{seq}_qa_bones.png").stat().st_mtime_ns == before


def test_cli_viz_generated_motion_and_errors(annotations_dir, shared_sequences, tmp_path, capsys):
    motion = annotations_dir / "motions" / f"{shared_sequences[1]}.pkl"
    assert main(["viz", "--motion", str(motion), "--out", str(tmp_path), "--frames", "0:30:3", "--size", "96x96",
                 "--what", "skeleton,overlay", "--format", "gif"]) == 0
    out = capsys.readouterr().out
    assert out.strip().endswith(f"{shared_sequences[1]}_skeleton.gif") and "overlay" not in out
    assert main(["viz", str(annotations_dir), "--sequence", "gBR_sBM_cAll_d04_mBR0_ch01", "--out",
                 str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "no keypoints2d, keypoints3d or motions" in err
    assert main(["viz", str(annotations_dir), "--sequence", shared_sequences[0], "--out", str(tmp_path),
                 "--what", "pictures"]) == 2
    assert main(["viz", "--out", str(tmp_path)]) == 2


def test_motion_statistics_known_answer():
    """A body gliding at 30 cm/s along x with its left ankle lifted 20 cm in the second half: speed 30 cm/s,
    skating 30 cm/s for ankles on the floor, NaN for the lifted one; ankle heights as built."""
    n, fps = 120, 60.0
    t = np.arange(n) / fps
    j = np.zeros((n, 17, 3))
    j[:, :, 1] = np.linspace(160, 20, 17)[None]  # a standing column of joints, head up
    j[:, 15, 1] = j[:, 16, 1] = 10.0  # ankles 10 cm above the world origin (the floor is not at 0)
    j[n // 2:, 15, 1] += 20.0
    j[:, :, 0] = 30.0 * t[:, None]
    stats = qa.motion_statistics(j, COCO17, fps)
    steady = np.r_[0:n // 2 - 1, n // 2 + 1:n]  # the lift itself moves the ankle up for two frames
    np.testing.assert_allclose(stats["speed"][steady], 30.0, rtol=1e-9)
    np.testing.assert_allclose(stats["ankle_height"][:, 1], 0.0, atol=1e-9)
    assert stats["ankle_height"][-1, 0] == pytest.approx(20.0)
    assert np.isnan(stats["skating"][-1, 0]) and stats["skating"][-1, 1] == pytest.approx(30.0)
    assert stats["skating_median_cm_s"] == pytest.approx(30.0)
    assert not stats["floor_work"].any() and stats["floor_work_fraction"] == 0.0
    x = np.array([1.0, 5.0, 2.0, np.nan, 3.0, 100.0, 4.0])
    np.testing.assert_allclose(qa.rolling_median(x, 3), [3.0, 2.0, 3.5, 2.5, 51.5, 4.0, 52.0])


def test_foot_skating_ignores_floor_work():
    """Standing with planted feet for 1 s, then 1 s of floor work (hips and a hand down, the feet sweeping along
    the floor at 200 cm/s): no skating is counted. The same sweep while standing is skating, and a tapping foot
    (moving up and down fast) is not in contact."""
    n, fps = 120, 60.0
    t = np.arange(n) / fps
    j = np.zeros((n, 17, 3))
    j[:, :, 1] = np.linspace(160, 20, 17)[None] + 70.0  # floor at y = 70 cm (as in AIST++'s world frame)
    j[:, 15:17, 1] = 75.0                               # ankles 5 cm above it
    down = np.arange(n) >= n // 2
    j[down, :15, 1] = 85.0                              # floor work: hips, hands, head 15 cm above the floor
    sweep = 200.0 * t
    j[down, 15, 0] = sweep[down]
    j[down, 16, 2] = -sweep[down]
    stats = qa.motion_statistics(j, COCO17, fps)
    np.testing.assert_array_equal(stats["floor_work"], down)
    assert stats["floor_work_fraction"] == pytest.approx(0.5)
    assert np.isnan(stats["skating"][down]).all() and stats["skating_median_cm_s"] == pytest.approx(0.0)
    standing = j.copy()
    standing[:, :15, 1] = np.linspace(160, 20, 17)[None, :15] + 70.0
    sliding = qa.motion_statistics(standing, COCO17, fps)
    assert not sliding["floor_work"].any()
    assert sliding["skating"][-1, 0] == pytest.approx(200.0) and sliding["skating"][-1, 1] == pytest.approx(200.0)
    tapping = standing.copy()
    tapping[:, 15, 1] += 2.0 * np.sin(2 * np.pi * 5 * t)  # the left foot taps: within 2 cm, up to 63 cm/s
    tap = qa.motion_statistics(tapping, COCO17, fps)
    fast = np.abs(np.gradient(tapping[:, 15, 1]) * fps) > 30.0
    assert fast.sum() > n // 3 and np.isnan(tap["skating"][fast, 0]).all()
    assert np.isfinite(tap["skating"][~fast[1:-1].nonzero()[0] + 1, 1]).all()


def test_cli_viz_on_a_corpus_uses_its_diagnostics(tree, shared_sequences, tmp_path, capsys):
    """On a corpus the QA uses the stored views_used and per-frame SMPL error (here known patterns)."""
    from aistpp.corpus import CorpusWriter, camera_arrays, sequence_attrs

    seq, other = shared_sequences
    n = 60
    k2 = tree.read("keypoints2d", seq)["keypoints2d"][:, :n]
    k3 = tree.read("keypoints3d", seq)
    m = tree.read("motions", seq)
    views_used = np.full((n, 17), 0b1111, np.uint16)  # views c01..c04 only
    ramp = np.linspace(1.0, 3.0, n).astype(np.float32)
    arrays = {"keypoints2d": k2, "keypoints3d": k3["keypoints3d"][:n], "keypoints3d_optim": k3["keypoints3d_optim"][:n],
              "views_used": views_used, "reprojection_error": np.ones((n, 17), np.float32),
              "smpl_poses": m["smpl_poses"][:n], "smpl_trans": m["smpl_trans"][:n], "smpl_scaling": m["smpl_scaling"],
              "smpl_loss": np.float64(0.5), "smpl_per_frame_error": ramp, **camera_arrays(tree.cameras_for(seq))}
    with CorpusWriter(tmp_path / "corpus") as w:
        w.add_sequence(seq, arrays, sequence_attrs(seq, "setting1"))
        w.add_sequence(other, {"keypoints3d": tree.read("keypoints3d", other)["keypoints3d"][:n]},
                       sequence_attrs(other, "setting4"))
    out = tmp_path / "pics"
    assert main(["viz", str(tmp_path / "corpus"), "--sequence", seq, "--compare", other, "--out", str(out),
                 "--what", "qa,skeleton", "--size", "96x96", "--frames", "::10"]) == 0
    summary = json.loads((out / f"{seq}_qa.json").read_text())
    assert summary["mean_views_per_joint"] == pytest.approx(4.0)
    assert summary["fit_error_median_cm"] == pytest.approx(float(np.median(ramp)), rel=1e-5)
    assert summary["smpl_loss"] == pytest.approx(0.5)
    assert "views_used_from" not in summary
    cap = cv2.VideoCapture(str(out / f"{seq}_skeleton.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 6 and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 192
    assert main(["viz", str(tmp_path / "corpus"), "--out", str(out)]) == 2  # two sequences: which one?
    assert "--sequence" in capsys.readouterr().err


def test_mesh_over_the_views_covers_the_projected_joints(real):
    """The stand-in mesh posed by the real motion, drawn over the 9 views: the body joints (inside the body) fall on
    mesh pixels at their cv2 projection, and the canvas far from the body is untouched."""
    from aistpp.smpl import joints_from_motion, load_body_model
    from aistpp.viz.overlay import mesh_tiles
    from aistpp.viz.sources import smpl_forward

    body = load_body_model(None)
    f = 288
    motion = {k: (v[f:f + 1] if k in ("smpl_poses", "smpl_trans") else v) for k, v in real["motion"].items()}
    verts = smpl_forward(body, motion, vertices=True)["vertices"][0]
    joints = joints_from_motion(body, motion["smpl_poses"], motion["smpl_trans"], motion["smpl_scaling"])[0]
    tiles = mesh_tiles(verts, np.asarray(body.faces), real["cams"], None, (640, 360))
    inner = [0, 3, 6, 9, 1, 2, 4, 5]  # pelvis, spine, hips, knees: deep inside the body
    for v, cam in enumerate(real["cams"]):
        px = _cv2_project(joints[inner], cam.K, cam.R, cam.tvec, cam.dist) / 3.0
        covered = [not _near(tiles[v][int(round(y)), int(round(x))], CANVAS_RGB, 3) for x, y in px]
        assert all(covered), (cam.name, covered)
        assert (tiles[v][5:40, -60:-5] == CANVAS_RGB).all()


def test_cli_viz_mixed_sources_and_missing_joints(annotations_dir, shared_sequences, tmp_path, capsys):
    """keypoints3d next to a SMPL-only motion (auto: each draws what it has); a tree sequence with only 2D
    keypoints skips the skeleton and still draws the overlay."""
    import shutil

    seq, other = shared_sequences
    k3_only = tmp_path / "k3.pkl"
    shutil.copy(annotations_dir / "keypoints3d" / f"{other}.pkl", k3_only)
    assert main(["viz", "--motion", str(annotations_dir / "motions" / f"{seq}.pkl"), "--compare", str(k3_only),
                 "--out", str(tmp_path / "a"), "--what", "skeleton", "--frames", "0:20:5", "--size", "64x64"]) == 0
    cap = cv2.VideoCapture(str(tmp_path / "a" / f"{seq}_skeleton.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 4 and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 128
    tree2 = tmp_path / "tree"
    (tree2 / "keypoints2d").mkdir(parents=True)
    shutil.copytree(annotations_dir / "cameras", tree2 / "cameras")
    shutil.copy(annotations_dir / "keypoints2d" / f"{seq}.pkl", tree2 / "keypoints2d")
    capsys.readouterr()
    assert main(["viz", str(tree2), "--sequence", seq, "--out", str(tmp_path / "b"), "--what", "skeleton,overlay",
                 "--tile", "160x90"]) == 0
    out = capsys.readouterr().out
    assert "overlay.png" in out and "skeleton" not in out


def _captured_animation(monkeypatch, motions, titles, size=(240, 240)):
    import aistpp.viz.animate as animate

    got = {}

    def capture(path, frames, fps):
        got["frames"] = list(frames)
        return path

    monkeypatch.setattr(animate, "write_animation", capture)
    skeleton_animation("x.mp4", motions, titles, config=AnimationConfig(size=size))
    return got["frames"]


def test_compare_panels_share_floor_and_camera_and_fit_their_titles(real, monkeypatch):
    """A real sequence next to a 'generated' one that starts with the same seed frames and then walks 30 cm away:
    the seed frames look the same in both panels (one floor, one camera), and the two long titles, which differ
    only at their end, both fit a 240 px panel and stay different."""
    from aistpp.viz.render import fit_text

    seed = real["k3"][:40]
    k3, gen = seed.copy(), seed.copy()
    k3[20:, :, 1] -= 25.0  # after the seed: one steps down, the other jumps and walks away, so the lowest
    gen[20:, :, 1] += 25.0  # joints (each motion's own floor) differ by ~25 cm
    gen[20:, :, 0] += 30.0
    name = real["name"]
    titles = [name, f"{name}_mBR2"]
    frames = _captured_animation(monkeypatch, [k3, gen], titles)
    left, right = frames[0][:, :240], frames[0][:, 240:]
    body = slice(40, None)  # below the titles
    assert np.abs(left[body].astype(int) - right[body].astype(int)).max() == 0
    fitted = [fit_text(f"{t} 0", 240 - 16) for t in titles]
    assert fitted[0][0] != fitted[1][0] and fitted[1][0].endswith("_mBR2 0")
    for text, scale in fitted:
        assert cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] <= 224 and scale >= 0.35
    assert fit_text("short", 224) == ("short", 0.6)
    # far apart (another stage spot): each panel is centred on its own motion, still one floor height
    from aistpp.viz.animate import panel_framing

    away = k3 + np.array([800.0, 0.0, 0.0])
    centers, radius, floor = panel_framing([k3, away])
    assert centers[1][0] - centers[0][0] == pytest.approx(800.0) and centers[0][1] == centers[1][1]
    assert floor == pytest.approx(np.nanmin(k3[..., 1]))


def test_reprojection_plot_labels_several_ticks(monkeypatch, tmp_path):
    import aistpp.viz.qa as qa_mod

    seen = {}

    def keep(fig, path):
        seen["labels"] = [t.get_text() for t in fig.axes[0].get_yticklabels() if t.get_text()]
        seen["ylim"] = fig.axes[0].get_ylim()
        return path

    monkeypatch.setattr(qa_mod, "save_figure", keep)
    err = 2.0 + 6.0 * np.random.default_rng(0).random((9, 300))  # 2-8 px: below symlog's linear threshold
    qa_mod.plot_reprojection_error(tmp_path / "r.png", err, [f"c{v + 1:02d}" for v in range(9)])
    assert seen["labels"] == ["0", "1", "2", "3", "5", "10"] and seen["ylim"][1] >= 8.0
    assert qa.readable_ticks(300) == [0, 1, 2, 5, 10, 20, 50, 100, 200, 500]


def test_overlays_zoom_on_the_dancer_by_default():
    from aistpp.cli import build_parser
    from aistpp.viz.report import VizConfig

    assert VizConfig().crop is True
    parser = build_parser()
    assert parser.parse_args(["viz", "x", "--out", "o"]).crop is True
    assert parser.parse_args(["viz", "x", "--out", "o", "--no-crop"]).crop is False
