"""The triangulation stage's settings, in one place: :class:`TriangulationConfig` (the pipeline's defaults) and
its :meth:`~TriangulationConfig.official` variant, whose values are also the defaults of the batched pieces
(:func:`~aistpp.triangulate.dlt.triangulate_dlt`, :func:`~aistpp.triangulate.robust.triangulate_robust`,
:func:`~aistpp.triangulate.temporal.optimize_temporal`), so no default is written twice."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from aistpp.io.annotations import OFFICIAL_MIN_CONFIDENCE


@dataclass(frozen=True)
class TriangulationConfig:
    """Settings of the triangulation stage.

    conf_threshold: 2D keypoints below this confidence are dropped (official: 0.15).
    min_views: fewest views for a 3D point (official: 2).
    robust: reject outlier views per point (two-view consensus); False = plain DLT with every kept view (official).
    weighted: weight DLT rows by confidence (official: unweighted; ignored when ``robust`` is False).
    inlier_threshold_px: reprojection error above which a view is an outlier for a point.
    temporal: run the temporal optimization (official: yes, aniposelib ``triangulate_optim``).
    temporal_inliers_only: the optimization uses only the robust inlier views (official: every kept view).
    reproj_threshold_px, scale_smooth, scale_length: temporal objective. Official: 15 px soft-L1, 4, 2. Ours: a
    6 px soft-L1 scale (gross errors pull less) and bone weight 2.5, chosen on the two shared real sequences
    measured the official way (median reprojection error over every view's points with confidence >= 0.15, bone
    length CV over the 14 constrained bones): 6.32 / 5.18 px against the official keypoints3d_optim's 6.86 / 5.30
    px, bone CV 0.011 / 0.010 against 0.034 / 0.020, and no more jitter (mean acceleration 0.76 / 0.059 against
    0.94 / 0.066 cm/frame^2). With the official values our robust pipeline gives 6.30 / 5.22 px but bone CV
    0.021 / 0.014; bone weight 3 at 8 px gives CV 0.009 / 0.008 at 6.37 / 5.24 px (tests/test_triangulate_temporal.py
    pins reprojection and CV).
    max_iters, ftol: Levenberg-Marquardt stopping rules (ftol: relative cost decrease, 1e-3 as aniposelib);
    chunk_frames, chunk_overlap: chunking of long sequences.
    """

    conf_threshold: float = OFFICIAL_MIN_CONFIDENCE
    min_views: int = 2
    robust: bool = True
    weighted: bool = True
    inlier_threshold_px: float = 20.0
    temporal: bool = True
    temporal_inliers_only: bool = True
    reproj_threshold_px: float = 6.0
    scale_smooth: float = 4.0
    scale_length: float = 2.5
    max_iters: int = 30
    ftol: float = 1e-3
    chunk_frames: int = 3600
    chunk_overlap: int = 60

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def official(cls) -> "TriangulationConfig":
        """The official AIST++ settings: plain unweighted DLT of every view with confidence >= 0.15, then the
        temporal optimization over every kept view with the official objective (15 px soft-L1, bone weight 2)."""
        return cls(robust=False, weighted=False, temporal_inliers_only=False, reproj_threshold_px=15.0,
                   scale_length=2.0)


DEFAULT = TriangulationConfig()
"""Our settings: also the defaults of :func:`~aistpp.triangulate.robust.triangulate_robust` (robust is ours)."""
OFFICIAL = TriangulationConfig.official()
"""The official AIST++ settings: the defaults of the DLT and of the temporal optimization."""
