"""COCO-17 keypoint conventions shared by every stage: names, left/right pairs, bones.

Left/right are the *subject's* left and right (official AIST++ keypoints2d/3d use this convention).
"""

from __future__ import annotations

COCO17 = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)
NUM_JOINTS = len(COCO17)
INDEX = {name: i for i, name in enumerate(COCO17)}

# Index permutation that swaps every left joint with its right twin (a mirrored detection).
FLIP_PERMUTATION = tuple(
    INDEX[n.replace("left_", "right_")] if n.startswith("left_")
    else INDEX[n.replace("right_", "left_")] if n.startswith("right_") else i
    for i, n in enumerate(COCO17)
)

# The 14 limb and torso bones whose lengths stay constant over a sequence (used for bone-length constraints).
BONES = (
    (5, 7), (7, 9), (6, 8), (8, 10),          # arms
    (11, 13), (13, 15), (12, 14), (14, 16),   # legs
    (5, 6), (11, 12), (5, 11), (6, 12),       # torso
    (0, 1), (0, 2),                           # nose-eyes
)

# Edges for drawing a skeleton (bones plus face).
DRAW_EDGES = BONES + ((1, 3), (2, 4))
