"""aistpp: a toolkit for the AIST++ dance dataset.

Stages (data flows one way): video -> keypoints2d -> keypoints3d -> smpl -> corpus -> datasets -> models.
"""

__version__ = "0.1.0"

from aistpp.errors import AistppError  # noqa: E402

__all__ = ["AistppError", "__version__"]
