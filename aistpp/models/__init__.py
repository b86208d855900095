"""FACT in PyTorch: the model (:mod:`.fact`), the trainer (:mod:`.train`), autoregressive generation
(:mod:`.generate`), the published metrics (:mod:`.metrics`), the demo's last step (:mod:`.demo`) and the import of
mint's TensorFlow checkpoints (:mod:`.mint_import`, reading bundles with :mod:`.tf_checkpoint`).

    from aistpp.models import build_fact, train, TrainConfig, generate_motion, evaluate
    model = build_fact("paper")          # mint fact_v5_deeper_t10_cm12, 120,406,977 parameters

Names are resolved lazily so ``import aistpp.models`` stays cheap.
"""

from __future__ import annotations

from aistpp._lazy import lazy_attributes

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
    "import_mint_checkpoint": "aistpp.models.mint_import",
    "EvalConfig": "aistpp.models.metrics",
    "kinetic_features": "aistpp.models.metrics",
    "geometric_features": "aistpp.models.metrics",
    "frechet_distance": "aistpp.models.metrics",
    "average_distance": "aistpp.models.metrics",
    "beat_align_score": "aistpp.models.metrics",
    "evaluate": "aistpp.models.metrics",
    "demo_step": "aistpp.models.demo",
}

__getattr__, __dir__, __all__ = lazy_attributes("aistpp.models", _LAZY)
