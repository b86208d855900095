"""Drawing without a display: a virtual pinhole camera, skeletons (COCO-17 or SMPL-24) and SMPL meshes with OpenCV.

Images are (H, W, 3) uint8 **BGR** (OpenCV order). Colours follow the subject's side: subject-left blue, subject-right
red, centre green. World frame: cm, +y up (AIST++).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aistpp.errors import AistppError
from aistpp.skeleton import COCO17, DRAW_EDGES
from aistpp.viz.config import AnimationConfig

# BGR colours
LEFT = (255, 128, 0)
RIGHT = (0, 0, 255)
CENTER = (0, 200, 0)
BACKGROUND = (255, 255, 255)
FLOOR = (215, 215, 215)


def side_colors(names) -> np.ndarray:
    """(J, 3) uint8 BGR colour per joint name: ``left_*`` blue, ``right_*`` red, others green."""
    return np.array([LEFT if n.startswith("left") else RIGHT if n.startswith("right") else CENTER for n in names],
                    np.uint8)


def edge_colors(edges, joint_colors) -> np.ndarray:
    """(E, 3) colour per edge: the colour of its child (second) joint, centre when the two sides differ."""
    jc = np.asarray(joint_colors)
    out = []
    for a, b in edges:
        out.append(jc[b] if (jc[a] == jc[b]).all() or (jc[a] == CENTER).all() else np.array(CENTER, np.uint8))
    return np.array(out, np.uint8).reshape(-1, 3)


@dataclass(frozen=True)
class Skeleton:
    """What to connect: joint names (J,) and edges (E, 2) (parent, child) indices."""

    names: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]

    @property
    def joint_colors(self) -> np.ndarray:
        return side_colors(self.names)

    @property
    def edge_colors(self) -> np.ndarray:
        return edge_colors(self.edges, self.joint_colors)


COCO_SKELETON = Skeleton(COCO17, tuple(DRAW_EDGES))


def smpl_skeleton(names=None, parents=None) -> Skeleton:
    """The SMPL 24-joint tree as a :class:`Skeleton` (edges parent -> child)."""
    from aistpp.viz.export import SMPL_JOINT_NAMES, SMPL_PARENTS

    names = tuple(names or SMPL_JOINT_NAMES)
    parents = tuple(parents or SMPL_PARENTS)
    return Skeleton(names, tuple((p, j) for j, p in enumerate(parents) if p >= 0))


def skeleton_for(n_joints: int) -> Skeleton:
    """COCO-17 for 17 joints, SMPL for 24."""
    if n_joints == 17:
        return COCO_SKELETON
    if n_joints == 24:
        return smpl_skeleton()
    raise AistppError(f"cannot draw a skeleton of {n_joints} joints (expected 17 COCO or 24 SMPL)")


@dataclass(frozen=True)
class ViewCamera:
    """A distortion-free pinhole for drawing: world (cm) -> camera ``X_c = R X + t``, pixels ``K X_c``.

    K (3, 3), R (3, 3), t (3,), size (w, h) px.
    """

    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    size: tuple[int, int]

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) world cm -> (..., 3) camera coordinates cm (z = depth)."""
        return np.asarray(points, np.float64) @ self.R.T + self.t

    def project(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) world cm -> (..., 2) pixels; points at or behind the camera give NaN."""
        cam = self.to_camera(points)
        z = cam[..., 2:3]
        with np.errstate(invalid="ignore", divide="ignore"):
            px = (cam[..., :2] / np.where(z > 1e-6, z, np.nan)) @ self.K[:2, :2].T + self.K[:2, 2]
        return px


def look_at_camera(points: np.ndarray, size=AnimationConfig.size, azimuth_deg: float = AnimationConfig.azimuth_deg,
                   elevation_deg: float = AnimationConfig.elevation_deg,
                   fov_deg: float = 40.0, margin: float = 1.1, center=None, radius=None) -> ViewCamera:
    """A camera that frames ``points`` (..., 3) cm (NaN ignored) from the given azimuth/elevation (+y up).

    Azimuth 0 looks along -z (from +z towards the origin); positive azimuth turns the camera around +y.
    ``center`` (3,) / ``radius`` cm override the framing (e.g. to share one scale between panels).
    """
    pts = np.asarray(points, np.float64).reshape(-1, 3)
    pts = pts[np.isfinite(pts).all(axis=1)]
    if center is None:
        if not len(pts):
            raise AistppError("nothing to draw: every point is NaN")
        center = 0.5 * (pts.min(axis=0) + pts.max(axis=0))
    center = np.asarray(center, np.float64)
    if radius is None:
        radius = float(np.linalg.norm(pts - center, axis=1).max()) if len(pts) else 100.0
    radius = max(float(radius), 1.0) * margin
    w, h = int(size[0]), int(size[1])
    f = 0.5 * min(w, h) / np.tan(np.radians(fov_deg) / 2)
    dist = radius / np.sin(np.radians(fov_deg) / 2)
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    eye = center + dist * np.array([np.sin(az) * np.cos(el), np.sin(el), np.cos(az) * np.cos(el)])
    fwd = center - eye
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    R = np.stack([right, down, fwd])  # rows: camera x (right), y (down), z (forward)
    K = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]])
    return ViewCamera(K, R, -R @ eye, (w, h))


def canvas(size, color=BACKGROUND) -> np.ndarray:
    """A blank (h, w, 3) uint8 image of ``size`` (w, h)."""
    img = np.empty((int(size[1]), int(size[0]), 3), np.uint8)
    img[:] = color
    return img


def _finite_int(pt) -> tuple[int, int] | None:
    if not np.isfinite(pt).all() or np.abs(pt).max() > 1e5:
        return None
    return int(round(pt[0])), int(round(pt[1]))


def draw_skeleton(image: np.ndarray, points2d: np.ndarray, skeleton: Skeleton, depth=None, radius: int = 4,
                  thickness: int = 3, joint_colors=None, edge_colors=None, visible=None) -> np.ndarray:
    """Draw one skeleton in place: points2d (J, 2) px (NaN = not drawn), edges far-to-near when ``depth`` (J,) is
    given, then joints as filled circles. ``visible`` (J,) bool hides joints. Returns ``image``."""
    import cv2

    pts = np.asarray(points2d, np.float64)
    if pts.shape != (len(skeleton.names), 2):
        raise AistppError(f"points2d has shape {pts.shape}, expected ({len(skeleton.names)}, 2)")
    ok = np.isfinite(pts).all(axis=1)
    if visible is not None:
        ok &= np.asarray(visible, bool)
    jc = skeleton.joint_colors if joint_colors is None else np.broadcast_to(np.asarray(joint_colors, np.uint8),
                                                                            (len(pts), 3))
    ec = skeleton.edge_colors if edge_colors is None else np.broadcast_to(np.asarray(edge_colors, np.uint8),
                                                                          (len(skeleton.edges), 3))
    edges = list(range(len(skeleton.edges)))
    d = None if depth is None else np.asarray(depth, np.float64)
    if d is not None:
        edges.sort(key=lambda e: -np.nanmean(d[list(skeleton.edges[e])]))
    for e in edges:
        a, b = skeleton.edges[e]
        if ok[a] and ok[b]:
            pa, pb = _finite_int(pts[a]), _finite_int(pts[b])
            if pa and pb:
                cv2.line(image, pa, pb, tuple(int(c) for c in ec[e]), thickness, cv2.LINE_AA)
    order = np.argsort(-d) if d is not None else range(len(pts))
    for j in order:
        if ok[j]:
            p = _finite_int(pts[j])
            if p:
                cv2.circle(image, p, radius, tuple(int(c) for c in jc[j]), -1, cv2.LINE_AA)
    return image


def draw_floor(image: np.ndarray, camera: ViewCamera, floor_y: float, center, half_extent: float = 300.0,
               step: float = 50.0, color=FLOOR) -> np.ndarray:
    """A square grid on the plane y = ``floor_y`` cm around ``center`` (x, z), in place."""
    import cv2

    cx, cz = float(center[0]), float(center[2])
    ticks = np.arange(-half_extent, half_extent + 1e-6, step)
    for t in ticks:
        for a, b in (((cx + t, cz - half_extent), (cx + t, cz + half_extent)),
                     ((cx - half_extent, cz + t), (cx + half_extent, cz + t))):
            seg = np.linspace([a[0], floor_y, a[1]], [b[0], floor_y, b[1]], 12)
            px = camera.project(seg)
            for p, q in zip(px[:-1], px[1:]):
                pa, pb = _finite_int(p), _finite_int(q)
                if pa and pb:
                    cv2.line(image, pa, pb, color, 1, cv2.LINE_AA)
    return image


def render_skeleton(points3d: np.ndarray, camera: ViewCamera, skeleton: Skeleton | None = None, floor_y=None,
                    title: str | None = None, radius: int = 5, thickness: int = 3, image=None) -> np.ndarray:
    """One frame of a 3D skeleton: points3d (J, 3) cm seen by ``camera``; optional floor grid at ``floor_y`` cm.

    Returns a (h, w, 3) uint8 BGR image of ``camera.size``.
    """
    import cv2

    pts = np.asarray(points3d, np.float64)
    skeleton = skeleton or skeleton_for(len(pts))
    img = canvas(camera.size) if image is None else image
    if floor_y is not None:
        c = np.nanmean(pts, axis=0) if np.isfinite(pts).any() else np.zeros(3)
        draw_floor(img, camera, floor_y, np.round(c / 50) * 50)
    depth = camera.to_camera(pts)[:, 2]
    draw_skeleton(img, camera.project(pts), skeleton, depth=depth, radius=radius, thickness=thickness)
    if title:
        text, scale = fit_text(title, img.shape[1] - 16)
        cv2.putText(img, text, (8, 8 + int(round(24 * scale))), cv2.FONT_HERSHEY_SIMPLEX, scale, (40, 40, 40), 1,
                    cv2.LINE_AA)
    return img


def fit_text(text: str, width: int, scale: float = 0.6, min_scale: float = 0.35) -> tuple[str, float]:
    """(text, font scale) that fit ``width`` px in OpenCV's simplex font: the scale shrinks down to ``min_scale``,
    then the middle of the text gives way to ``..`` (names of compared sequences differ at their ends, which stay).
    """
    import cv2

    def wide(t, sc):
        return cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, sc, 1)[0][0]

    scale = max(min_scale, min(scale, scale * width / max(1, wide(text, scale))))
    if wide(text, scale) <= width:
        return text, scale
    for cut in range(1, len(text)):
        keep = len(text) - cut
        head, tail = text[:keep // 3], text[len(text) - (keep - keep // 3):]
        short = f"{head}..{tail}"
        if wide(short, scale) <= width:
            return short, scale
    return text[-1:], scale


def render_mesh(vertices: np.ndarray, faces: np.ndarray, camera: ViewCamera, image=None,
                color=(180, 160, 140), light=(0.3, -0.6, -1.0), ambient: float = 0.35) -> np.ndarray:
    """Flat-shaded mesh by the painter's algorithm (far faces first): vertices (V, 3) cm, faces (F, 3) int.

    Shade per face = ambient + (1 - ambient) * |n . l| (two-sided, so the winding does not matter); ``light`` is a
    direction in camera coordinates. Returns a (h, w, 3) uint8 BGR image of ``camera.size``.
    """
    v = np.asarray(vertices, np.float64)
    f = _check_mesh(v, faces)
    img = canvas(camera.size) if image is None else image
    return fill_mesh(img, camera.project(v), camera.to_camera(v), f, color, light, ambient)


def _check_mesh(v: np.ndarray, faces) -> np.ndarray:
    f = np.asarray(faces, np.int64)
    if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3:
        raise AistppError(f"mesh needs vertices (V, 3) and faces (F, 3), got {v.shape} and {f.shape}")
    if len(f) and (f.min() < 0 or f.max() >= len(v)):
        raise AistppError(f"faces index vertices out of range 0..{len(v) - 1}")
    return f


def fill_mesh(image: np.ndarray, pixels: np.ndarray, camera_points: np.ndarray, faces: np.ndarray,
              color=(180, 160, 140), light=(0.3, -0.6, -1.0), ambient: float = 0.35) -> np.ndarray:
    """Draw a mesh in place from its projection: pixels (V, 2) px (NaN = behind the camera), camera_points (V, 3)
    in camera coordinates (z = depth, for the painter's order and the shading), faces (F, 3). Returns ``image``.

    Any projection works (e.g. :meth:`aistpp.io.cameras.CameraGroup.project` with lens distortion)."""
    import cv2

    f = _check_mesh(np.asarray(camera_points, np.float64), faces)
    tri_cam = np.asarray(camera_points, np.float64)[f]  # (F, 3, 3)
    tri_px = np.asarray(pixels, np.float64)[f]  # (F, 3, 2)
    ok = np.isfinite(tri_px).all(axis=(1, 2)) & (np.abs(tri_px) < 1e5).all(axis=(1, 2))
    ok &= (tri_cam[:, :, 2] > 0).all(axis=1)
    normal = np.cross(tri_cam[:, 1] - tri_cam[:, 0], tri_cam[:, 2] - tri_cam[:, 0])
    norm = np.linalg.norm(normal, axis=1)
    ok &= norm > 0
    normal = normal / np.where(norm > 0, norm, 1)[:, None]
    li = np.asarray(light, np.float64)
    li = li / np.linalg.norm(li)
    shade = ambient + (1 - ambient) * np.abs(normal @ li)
    depth = tri_cam[:, :, 2].mean(axis=1)
    base = np.asarray(color, np.float64)
    for i in np.argsort(-depth):
        if ok[i]:
            c = tuple(int(x) for x in np.clip(base * shade[i], 0, 255))
            cv2.fillConvexPoly(image, np.round(tri_px[i] * 16).astype(np.int32), c, cv2.LINE_AA, shift=4)
    return image


def hstack_panels(panels) -> np.ndarray:
    """Side-by-side panels (each (h, w_i, 3)); shorter ones are padded with the background colour."""
    h = max(p.shape[0] for p in panels)
    padded = [np.concatenate([p, canvas((p.shape[1], h - p.shape[0]))], axis=0) if p.shape[0] < h else p
              for p in panels]
    return np.concatenate(padded, axis=1)
