"""Test footage made of real photographs: a person photo shipped by an installed package, shrunk to a third of a
1920x1080 frame's height, moving over a static textured background (a real texture photo, tiled) with a static
distractor (a tripod drawing and a still photo of an object) and per-frame sensor noise.

``person_photo(name)``: skimage's astronaut or matplotlib's grace_hopper (RGB). ``Scene`` renders frame ``i`` and
knows where the photo is (``placement(i) -> (x0, y0, scale)``), so a detection on the full-size photo maps to
the frame: ``x0 + scale * x``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def person_photo(name: str = "astronaut") -> np.ndarray:
    import cv2

    if name == "astronaut":
        from skimage.data import astronaut

        return astronaut()
    from matplotlib import cbook

    return cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))[..., ::-1].copy()


def textured_background(width: int = 1920, height: int = 1080, seed: int = 0, tripod: bool = True) -> np.ndarray:
    """A static studio-like background: a tiled real texture (skimage's brick), brightened, plus distractors."""
    import cv2
    from skimage.data import brick, coffee

    tex = cv2.resize(brick(), (480, 480), interpolation=cv2.INTER_AREA).astype(np.float32)
    tiles = np.tile(tex, (height // 480 + 1, width // 480 + 1))[:height, :width]
    base = np.clip(150 + 0.5 * (tiles - tiles.mean()), 0, 255)
    img = np.stack([base, base * 0.97, base * 0.92], -1).astype(np.uint8)
    if tripod:  # a tripod: three thin dark legs and a head, ~400 px tall
        x, y = int(width * 0.82), int(height * 0.35)
        for dx in (-110, 0, 110):
            cv2.line(img, (x, y), (x + dx, y + 420), (40, 40, 45), 6, cv2.LINE_AA)
        cv2.rectangle(img, (x - 40, y - 60), (x + 40, y), (30, 30, 30), -1)
        obj = cv2.resize(coffee(), (240, 160), interpolation=cv2.INTER_AREA)  # a still object on a shelf
        img[60:220, 80:320] = obj
    return img


@dataclass
class Scene:
    """A photo of a person moving over a static background. ``height_frac``: photo height / frame height."""

    photo: np.ndarray
    background: np.ndarray
    n: int
    height_frac: float = 1 / 3
    noise: float = 4.0
    seed: int = 0
    path: tuple = ((0.15, 0.45), (0.62, 0.5))  # start and end of the photo's top-left corner, fractions of W, H
    present: bool = True
    absent: tuple = ()  # frame indices where the person has left the scene
    placements: list | None = None  # per frame (x0, y0, scale), replaces height_frac and path

    def __post_init__(self):
        import cv2

        h, w = self.background.shape[:2]
        self.scale = self.height_frac * h / self.photo.shape[0]
        size = (round(self.photo.shape[1] * self.scale), round(self.photo.shape[0] * self.scale))
        self.small = cv2.resize(self.photo, size, interpolation=cv2.INTER_AREA)
        self.scale = (size[0] / self.photo.shape[1] + size[1] / self.photo.shape[0]) / 2
        rng = np.random.default_rng(self.seed)
        self.grain = [rng.normal(0, self.noise, self.background.shape[:2] + (1,)).astype(np.float32)
                      for _ in range(4)]

    def placement(self, i: int) -> tuple[int, int, float]:
        if self.placements is not None:
            x, y, s = self.placements[i]
            return int(round(x)), int(round(y)), float(s)
        h, w = self.background.shape[:2]
        t = i / max(1, self.n - 1)
        (ax, ay), (bx, by) = self.path
        x = (ax + (bx - ax) * t) * w
        y = (ay + (by - ay) * t) * h + 0.02 * h * np.sin(6 * np.pi * t)
        return int(round(x)), int(round(y)), self.scale

    def frame(self, i: int) -> np.ndarray:
        import cv2

        img = self.background.copy()
        if self.present and i not in self.absent:
            x, y, s = self.placement(i)
            small = self.small
            if self.placements is not None:
                size = (round(self.photo.shape[1] * s), round(self.photo.shape[0] * s))
                small = cv2.resize(self.photo, size, interpolation=cv2.INTER_AREA)
            ph, pw = small.shape[:2]
            xa, ya = max(x, 0), max(y, 0)
            xb, yb = min(x + pw, img.shape[1]), min(y + ph, img.shape[0])
            if xb > xa and yb > ya:
                img[ya:yb, xa:xb] = small[ya - y:yb - y, xa - x:xb - x]
        return np.clip(img + self.grain[i % len(self.grain)], 0, 255).astype(np.uint8)

    def frames(self):
        return (self.frame(i) for i in range(self.n))

    def to_frame(self, keypoints: np.ndarray, i: int) -> np.ndarray:
        """Keypoints (17, 3) detected on the full-size photo -> where they are in frame ``i`` (px)."""
        x, y, s = self.placement(i)
        out = np.array(keypoints, np.float64)
        out[:, 0] = x + s * out[:, 0]
        out[:, 1] = y + s * out[:, 1]
        return out
