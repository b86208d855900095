"""What the pictures look like, in one place: :class:`VizConfig` (``aistpp viz``) and :class:`AnimationConfig`
(skeleton animations). Their defaults are also the defaults of the drawing pieces (overlay tiles, the virtual
camera), which read them from here."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from aistpp.io.annotations import OFFICIAL_MIN_CONFIDENCE

PRODUCTS = ("skeleton", "overlay", "qa", "mesh")


@dataclass(frozen=True)
class AnimationConfig:
    """How a skeleton animation looks. size: (w, h) px of one panel; stride: draw every k-th frame (the output
    plays at fps / stride so it keeps real time); azimuth/elevation of the fixed virtual camera in degrees."""

    size: tuple[int, int] = (480, 480)
    stride: int = 1
    azimuth_deg: float = 30.0
    elevation_deg: float = 15.0
    floor: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class VizConfig:
    """What ``aistpp viz`` draws. products: subset of ``skeleton, overlay, qa, mesh``; joints: ``auto`` (keypoints3d
    when every drawn sequence has them, else SMPL joints when all have SMPL, else what each has), ``keypoints3d`` or
    ``smpl``; frames: (start, stop, step) of the animation / overlay video (stop None = end); frame: the still frame
    (None = middle); fmt: ``mp4`` or ``gif``; size: (w, h) of one animation panel; tile: (w, h) of one overlay
    view; crop: zoom each overlay view on the dancer (default; False draws the whole 1920x1080 frame, where the
    dancer fills a few % of the tile)."""

    products: tuple[str, ...] = PRODUCTS
    joints: str = "auto"
    frames: tuple = (0, None, 1)
    frame: int | None = None
    fmt: str = "mp4"
    size: tuple[int, int] = AnimationConfig.size
    tile: tuple[int, int] = (640, 360)
    overlay_video: bool = False
    crop: bool = True
    min_confidence: float = OFFICIAL_MIN_CONFIDENCE
    overwrite: bool = False

    def to_dict(self) -> dict:
        return asdict(self)
