"""PyTorch-side access to the corpus: motion representation helpers, datasets and collate.

    from aistpp.data import SequenceDataset, FACTDataset, collate_sequences
    from aistpp.data.motion import encode_motion, decode_motion, axis_angle_to_matrix, ...

Names are resolved lazily (PEP 562) so ``import aistpp.data`` does not import torch or h5py.
"""

from __future__ import annotations

from aistpp._lazy import lazy_attributes

_LAZY = {
    "SequenceDataset": "aistpp.data.datasets",
    "FACTDataset": "aistpp.data.datasets",
    "collate_sequences": "aistpp.data.datasets",
    "FACTWindowConfig": "aistpp.data.datasets",
    "axis_angle_to_matrix": "aistpp.data.motion",
    "matrix_to_axis_angle": "aistpp.data.motion",
    "matrix_to_6d": "aistpp.data.motion",
    "rot6d_to_matrix": "aistpp.data.motion",
    "orthonormalize": "aistpp.data.motion",
    "encode_motion": "aistpp.data.motion",
    "decode_motion": "aistpp.data.motion",
}

__getattr__, __dir__, __all__ = lazy_attributes("aistpp.data", _LAZY)
