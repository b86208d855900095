"""Calibrated camera groups: the official ``setting*.json`` files, projection, undistortion, aniposelib interop.

Camera model (OpenCV): world -> camera ``X_c = R X + t`` (R from the Rodrigues vector ``rotation``, t =
``translation`` in cm), pinhole ``K`` in pixels of the full frame, distortion ``(k1, k2, p1, p2, k3)``.
World frame: cm, +y up, origin not on the floor. Official JSON: a list of 9 dicts ``c01``..``c09`` with ``name``,
``size`` [w, h], ``matrix`` (3, 3), ``distortions`` (5,), ``rotation`` (3,), ``translation`` (3,).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from aistpp.errors import AistppError
from aistpp.io.atomic import atomic_write_text
from aistpp.naming import view_name

_KEYS = ("name", "size", "matrix", "distortions", "rotation", "translation")


def rodrigues_to_matrix(rvec: np.ndarray) -> np.ndarray:
    """Rotation vectors (..., 3) -> rotation matrices (..., 3, 3) (same convention as ``cv2.Rodrigues``)."""
    rvec = np.asarray(rvec, dtype=np.float64)
    theta = np.linalg.norm(rvec, axis=-1, keepdims=True)
    safe = np.where(theta < 1e-12, 1.0, theta)
    k = rvec / safe
    kx, ky, kz = k[..., 0], k[..., 1], k[..., 2]
    zero = np.zeros_like(kx)
    kmat = np.stack([zero, -kz, ky, kz, zero, -kx, -ky, kx, zero], axis=-1).reshape(rvec.shape[:-1] + (3, 3))
    s = np.sin(theta)[..., None]
    c = np.cos(theta)[..., None]
    eye = np.broadcast_to(np.eye(3), kmat.shape)
    rot = eye + s * kmat + (1 - c) * (kmat @ kmat)
    return np.where((theta < 1e-12)[..., None], eye, rot)


def matrix_to_rodrigues(rot: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> rotation vectors (..., 3) (inverse of :func:`rodrigues_to_matrix`)."""
    import cv2

    rot = np.asarray(rot, dtype=np.float64)
    flat = rot.reshape(-1, 3, 3)
    out = np.stack([cv2.Rodrigues(r)[0].ravel() for r in flat]) if len(flat) else np.zeros((0, 3))
    return out.reshape(rot.shape[:-2] + (3,))


def distort_normalized(xy: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Apply OpenCV radial/tangential distortion to normalized image points.

    xy: (..., 2) normalized coordinates (x/z, y/z); dist: (5,) k1, k2, p1, p2, k3, broadcastable as (..., 5).
    Returns (..., 2). Pure arithmetic, so it also works on torch tensors.
    """
    x, y = xy[..., 0], xy[..., 1]
    k1, k2, p1, p2, k3 = (dist[..., i] for i in range(5))
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    if isinstance(xy, np.ndarray):
        return np.stack([xd, yd], axis=-1)
    import torch

    return torch.stack([xd, yd], dim=-1)


@dataclass(frozen=True)
class Camera:
    """One calibrated view. K (3, 3) px, dist (5,), rvec (3,) Rodrigues world->camera, tvec (3,) cm, size (w, h)."""

    name: str
    size: tuple[int, int]
    K: np.ndarray
    dist: np.ndarray
    rvec: np.ndarray
    tvec: np.ndarray

    @property
    def R(self) -> np.ndarray:
        """World->camera rotation (3, 3)."""
        return rodrigues_to_matrix(self.rvec)

    @property
    def center(self) -> np.ndarray:
        """Camera centre in world coordinates (3,), cm."""
        return -self.R.T @ self.tvec

    def to_dict(self) -> dict:
        """The official JSON dict of this camera."""
        return {
            "name": self.name,
            "size": [int(self.size[0]), int(self.size[1])],
            "matrix": np.asarray(self.K, float).tolist(),
            "distortions": np.asarray(self.dist, float).tolist(),
            "rotation": np.asarray(self.rvec, float).tolist(),
            "translation": np.asarray(self.tvec, float).tolist(),
        }


@dataclass(frozen=True)
class CameraGroup:
    """The calibrated views of one setting, in view order (c01..c09). Arrays are stacked over views (V, ...)."""

    cameras: tuple[Camera, ...]
    setting: str = ""
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    def __len__(self) -> int:
        return len(self.cameras)

    def __iter__(self):
        return iter(self.cameras)

    def __getitem__(self, i):
        return self.cameras[i]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.cameras]

    def _stack(self, attr: str) -> np.ndarray:
        if attr not in self._cache:
            if attr == "R":
                self._cache[attr] = rodrigues_to_matrix(self._stack("rvec"))
            else:
                self._cache[attr] = np.stack([np.asarray(getattr(c, attr), np.float64) for c in self.cameras])
        return self._cache[attr]

    @property
    def K(self) -> np.ndarray:
        """(V, 3, 3)"""
        return self._stack("K")

    @property
    def dist(self) -> np.ndarray:
        """(V, 5)"""
        return self._stack("dist")

    @property
    def rvec(self) -> np.ndarray:
        """(V, 3)"""
        return self._stack("rvec")

    @property
    def tvec(self) -> np.ndarray:
        """(V, 3) cm"""
        return self._stack("tvec")

    @property
    def R(self) -> np.ndarray:
        """(V, 3, 3) world->camera rotations."""
        return self._stack("R")

    @property
    def extrinsics(self) -> np.ndarray:
        """(V, 3, 4) ``[R | t]``: maps world points to camera coordinates (normalized projection matrices)."""
        return np.concatenate([self.R, self.tvec[:, :, None]], axis=2)

    @property
    def projection_matrices(self) -> np.ndarray:
        """(V, 3, 4) ``K [R | t]``: projects world points to *undistorted* pixels."""
        return self.K @ self.extrinsics

    def to_camera(self, points3d: np.ndarray) -> np.ndarray:
        """World points (..., 3) cm -> camera coordinates (V, ..., 3) cm."""
        p = np.asarray(points3d, np.float64)
        flat = p.reshape(-1, 3)
        cam = np.einsum("vij,nj->vni", self.R, flat) + self.tvec[:, None, :]
        return cam.reshape((len(self),) + p.shape)

    def project(self, points3d: np.ndarray, distort: bool = True) -> np.ndarray:
        """Project world points (..., 3) cm into every view: (V, ..., 2) pixels (with lens distortion by default).

        NaN points give NaN pixels. Agrees with ``cv2.projectPoints`` for points in front of the camera.
        """
        cam = self.to_camera(points3d)
        shape = cam.shape
        cam = cam.reshape(len(self), -1, 3)
        xy = cam[..., :2] / cam[..., 2:3]
        if distort:
            xy = distort_normalized(xy, self.dist[:, None, :])
        px = np.einsum("vij,vnj->vni", self.K[:, :2, :2], xy) + self.K[:, None, :2, 2]
        return px.reshape(shape[:-1] + (2,))

    def undistort_points(self, points2d: np.ndarray, normalized: bool = False) -> np.ndarray:
        """Remove lens distortion from pixel points (V, ..., 2) seen in each view.

        Returns undistorted pixels (V, ..., 2), or normalized camera coordinates with ``normalized=True``.
        NaN points stay NaN.
        """
        import cv2

        pts = np.asarray(points2d, np.float64)
        if pts.shape[0] != len(self) or pts.shape[-1] != 2:
            raise AistppError(f"undistort_points expects (V={len(self)}, ..., 2), got {pts.shape}")
        out = np.full(pts.shape, np.nan)
        for v, cam in enumerate(self.cameras):
            flat = pts[v].reshape(-1, 2)
            ok = np.isfinite(flat).all(axis=1)
            if not ok.any():
                continue
            P = None if normalized else cam.K
            und = cv2.undistortPoints(flat[ok].reshape(-1, 1, 2), cam.K, cam.dist, P=P).reshape(-1, 2)
            res = out[v].reshape(-1, 2)
            res[ok] = und
            out[v] = res.reshape(pts[v].shape)
        return out

    def subset(self, views: Sequence[int]) -> "CameraGroup":
        """A group of the given view indices."""
        return CameraGroup(tuple(self.cameras[i] for i in views), self.setting)

    def to_dicts(self) -> list[dict]:
        return [c.to_dict() for c in self.cameras]

    def to_aniposelib(self):
        """An ``aniposelib.cameras.CameraGroup`` with the same intrinsics, distortion and extrinsics (needs the
        ``anipose`` extra)."""
        try:
            from aniposelib.cameras import Camera as ACamera
            from aniposelib.cameras import CameraGroup as AGroup
        except ImportError:
            raise AistppError("CameraGroup.to_aniposelib needs aniposelib: pip install 'aistpp[anipose]'") from None

        cams = [
            ACamera(name=c.name, size=tuple(c.size), matrix=np.asarray(c.K, float), rvec=np.asarray(c.rvec, float),
                    tvec=np.asarray(c.tvec, float), dist=np.asarray(c.dist, float))
            for c in self.cameras
        ]
        return AGroup(cams)

    @classmethod
    def from_aniposelib(cls, group, setting: str = "") -> "CameraGroup":
        """From an ``aniposelib.cameras.CameraGroup`` (distortion padded to 5 coefficients)."""
        cams = []
        for c in group.cameras:
            dist = np.zeros(5)
            d = np.asarray(c.get_distortions(), float).ravel()
            dist[: min(5, d.size)] = d[:5]
            cams.append(Camera(str(c.get_name()), tuple(int(s) for s in c.get_size()),
                               np.asarray(c.get_camera_matrix(), float), dist,
                               np.asarray(c.get_rotation(), float).ravel(),
                               np.asarray(c.get_translation(), float).ravel()))
        return cls(tuple(cams), setting)

    @classmethod
    def from_dicts(cls, items, setting: str = "", path=None) -> "CameraGroup":
        """From the official list of camera dicts; malformed entries raise :class:`AistppError` naming ``path``."""
        if not isinstance(items, list) or not items:
            raise AistppError("camera file must hold a non-empty JSON list of cameras", path)
        cams = []
        for i, d in enumerate(items):
            if not isinstance(d, dict) or any(k not in d for k in _KEYS):
                missing = [k for k in _KEYS if not isinstance(d, dict) or k not in d]
                label = d.get("name") if isinstance(d, dict) and d.get("name") else view_name(i)
                raise AistppError(f"camera {label} (entry {i + 1} of the list) lacks {', '.join(missing)}", path)
            try:
                cam = Camera(
                    name=str(d["name"]),
                    size=(int(d["size"][0]), int(d["size"][1])),
                    K=_as(d["matrix"], (3, 3)),
                    dist=_dist5(d["distortions"]),
                    rvec=_as(d["rotation"], (3,)),
                    tvec=_as(d["translation"], (3,)),
                )
            except (ValueError, TypeError, IndexError) as err:
                raise AistppError(f"camera {d.get('name') or view_name(i)} is malformed: {err}", path) from None
            cams.append(cam)
        return cls(tuple(cams), setting)


def _as(value, shape) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != shape:
        raise ValueError(f"expected shape {shape}, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("non-finite values")
    return arr


def _dist5(value) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64).ravel()
    if arr.size > 5 or not np.isfinite(arr).all():
        raise ValueError(f"expected up to 5 finite distortion coefficients, got {arr.size}")
    out = np.zeros(5)
    out[: arr.size] = arr
    return out


def load_cameras(path: str | Path) -> CameraGroup:
    """Read an official ``setting*.json`` into a :class:`CameraGroup` (setting name = file stem)."""
    path = Path(path)
    try:
        text = path.read_text()
        if not text.strip():
            raise AistppError("camera file is empty", path)
        items = json.loads(text)
    except FileNotFoundError:
        raise AistppError("camera file not found", path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise AistppError(f"camera file is not valid JSON ({err})", path) from None
    return CameraGroup.from_dicts(items, setting=path.stem, path=path)


def save_cameras(group: CameraGroup, path: str | Path) -> None:
    """Write a camera group in the official JSON format (atomically)."""
    atomic_write_text(path, json.dumps(group.to_dicts()))
