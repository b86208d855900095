"""The AIST++ keypoint benchmark protocol: version, joint order, thresholds and counting rules, stated once.

Every report records :data:`PROTOCOL_VERSION` and :meth:`BenchmarkConfig.to_dict`; two numbers compare only when
both match. The rules (also in ``docs/benchmark.md``):

* Joints: COCO-17 in :data:`aistpp.skeleton.COCO17` order, subject-left/right.
* 2D: a reference keypoint counts when it is finite with confidence >= :data:`REFERENCE_CONF_THRESHOLD` (0.15, the
  official triangulation threshold); a (view, frame) counts when it has at least one such keypoint. Every finite
  predicted keypoint is used whatever its confidence; a NaN keypoint, a frame without a person, a missing view,
  frame or sequence is a miss (error +inf: it fails every PCK threshold and sorts last in the quantiles).
* 3D: a reference joint counts when it is finite; a NaN predicted joint is a miss (fails PCK3D, excluded from the
  MPJPE means, which report the covered fraction next to them).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from aistpp.io.annotations import OFFICIAL_MIN_CONFIDENCE

PROTOCOL_VERSION = "aistpp-keypoints-1"

# Official AIST++ triangulation dropped 2D points below this confidence; the benchmark scores only the rest.
REFERENCE_CONF_THRESHOLD = OFFICIAL_MIN_CONFIDENCE
PCK_PX = (5.0, 10.0, 20.0)
PCK_BOX = (0.05, 0.1, 0.2)
PCK3D_CM = (5.0, 10.0, 15.0)
QUANTILES = (0.5, 0.9)
REFERENCE_3D_KEY = "keypoints3d_optim"
PREDICTION_3D_KEY = "keypoints3d"


@dataclass(frozen=True)
class BenchmarkConfig:
    """Thresholds of the benchmark (defaults = protocol :data:`PROTOCOL_VERSION`; change them and the numbers no
    longer compare with published ones).

    conf_threshold: reference 2D keypoints below this confidence are not scored (official 0.15).
    pck_px: 2D PCK thresholds in pixels; pck_box: 2D PCK thresholds as a fraction of the reference person box
    size (max of width and height of the box around the scored reference keypoints); pck3d_cm: 3D PCK thresholds
    in cm; ap: compute COCO OKS AP (pycocotools; the slowest part, ~0.3 ms per view-frame).
    """

    conf_threshold: float = REFERENCE_CONF_THRESHOLD
    pck_px: tuple = PCK_PX
    pck_box: tuple = PCK_BOX
    pck3d_cm: tuple = PCK3D_CM
    ap: bool = True

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @property
    def is_standard(self) -> bool:
        """True when every threshold is the protocol's default (AP may be switched off)."""
        return (self.conf_threshold, tuple(self.pck_px), tuple(self.pck_box), tuple(self.pck3d_cm)) == (
            REFERENCE_CONF_THRESHOLD, PCK_PX, PCK_BOX, PCK3D_CM)
