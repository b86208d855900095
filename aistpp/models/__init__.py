"""FACT in PyTorch: the model (:mod:`.fact`), the trainer (:mod:`.train`), autoregressive generation
(:mod:`.generate`), the published metrics (:mod:`.metrics`) and the demo's last step (:mod:`.demo`).

    from aistpp.models import build_fact, train, TrainConfig, generate_motion, evaluate
    model = build_fact("paper")          # mint fact_v5_deeper_t10_cm12, 120,406,977 parameters

Names are resolved lazily so ``import aistpp.models`` stays cheap.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "FACTConfig": "aistpp.models.fact",
    "FACTModel": "aistpp.models.fact",
    "PRESETS": "aistpp.models.fact",
    "build_fact": "aistpp.models.fact",
    "get_config": "aistpp.models.fact",
    "TrainConfig": "aistpp.models.train",
    "TrainResult": "aistpp.models.train",
    "train": "aistpp.models.train",
    "load_checkpoint": "aistpp.models.train",
    "model_from_checkpoint": "aistpp.models.train",
    "GenerateConfig": "aistpp.models.generate",
    "generate_motion": "aistpp.models.generate",
    "generate_to_dir": "aistpp.models.generate",
    "EvalConfig": "aistpp.models.metrics",
    "kinetic_features": "aistpp.models.metrics",
    "geometric_features": "aistpp.models.metrics",
    "frechet_distance": "aistpp.models.metrics",
    "average_distance": "aistpp.models.metrics",
    "beat_align_score": "aistpp.models.metrics",
    "evaluate": "aistpp.models.metrics",
    "demo_step": "aistpp.models.demo",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aistpp.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
