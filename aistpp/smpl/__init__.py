"""SMPL body models and fitting: load a real SMPL file or the generated stand-in through smplx, map SMPL to COCO-17,
fit whole sequences of 3D keypoints in one batch, and run motions forward to joints / keypoints.

Units: keypoints and smpl_trans in cm (AIST++ world), model space in metres; world = smpl_scaling * SMPL + trans.
"""

from aistpp.smpl.fit import FitConfig, SMPLFit, fit_sequence
from aistpp.smpl.joints import (COCO17_FROM_SMPL, FACE_VERTEX_IDS, SMPL_JOINT_OF_COCO, SMPL_VERTEX_OF_COCO,
                                KeypointLayer, joints_from_motion, keypoints_from_motion, smpl_to_coco17)
from aistpp.smpl.model import load_body_model, loads_smpl, read_body_model_arrays, resolve_model_file
from aistpp.smpl.standin import make_standin_model, write_standin

__all__ = [
    "FitConfig", "SMPLFit", "fit_sequence",
    "COCO17_FROM_SMPL", "FACE_VERTEX_IDS", "SMPL_JOINT_OF_COCO", "SMPL_VERTEX_OF_COCO", "KeypointLayer",
    "joints_from_motion", "keypoints_from_motion", "smpl_to_coco17", "load_body_model", "loads_smpl",
    "read_body_model_arrays", "resolve_model_file", "make_standin_model", "write_standin",
]
