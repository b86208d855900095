"""Make the mint FACT checkpoint fixture with TensorFlow and mint's own code (not run by the tests).

How the committed files were made (TensorFlow 2.15.1 CPU with Keras 2 -- the tf.keras that mint was written for --,
einops 0.8.2, google-research/mint at b8f8bdf)::

    python -m venv /tmp/tf && /tmp/tf/bin/pip install tensorflow-cpu==2.15.1 einops==0.8.2
    # a checkout of google-research/mint in /tmp/mint
    PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python /tmp/tf/bin/python tests/data/mint_fact/make_fixture.py \
        --mint /tmp/mint --out tests/data/mint_fact

It builds mint's FACTModel from fact_tiny.config through mint's model_builder, sets every variable to seeded
random values (non-trivial LayerNorm gains/offsets and biases), runs two training steps as mint's trainer does
(Adam with mint's ManualStepping schedule, loss = mean squared error on the first target frames, the optimizer's
iteration counter tracked as model.global_step) and saves with tf.train.CheckpointManager(tf.train.Checkpoint(
optimizer=..., model=...)) like mint's trainer.py. Then it records mint's forward pass (``model.call``) and
``infer_auto_regressive`` on seeded inputs in reference.npz, and the checkpoint's variable list in keys.txt.
"""

import argparse
import sys
import types
from pathlib import Path

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mint", required=True, help="checkout of google-research/mint")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    sys.path.insert(0, args.mint)
    # mint.core.metrics imports tensorflow_graphics (for its scoring only); the network does not use it
    for name in ("tensorflow_graphics", "tensorflow_graphics.geometry",
                 "tensorflow_graphics.geometry.transformation"):
        sys.modules.setdefault(name, types.ModuleType(name))
    import tensorflow as tf
    from mint.core import learning_schedules, model_builder
    from mint.utils import config_util

    out = Path(args.out)
    configs = config_util.get_configs_from_pipeline_file(str(out / "fact_tiny.config"))
    model = model_builder.build(configs["model"], True)
    fact = configs["model"].fact_model
    lens = {m.feature_name: m.sequence_length for m in fact.modality}
    lm, la = lens["motion"], lens["audio"]
    n_target = int(configs["train_dataset"].target_length_sec)
    lr_cfg = configs["train_config"].learning_rate.manual_step_learning_rate
    schedule = learning_schedules.ManualStepping([s.step for s in lr_cfg.schedule],
                                                 [lr_cfg.initial_learning_rate]
                                                 + [s.learning_rate for s in lr_cfg.schedule], lr_cfg.warmup)
    optimizer = tf.keras.optimizers.legacy.Adam(schedule)   # mint's TF 2 (< 2.11) Adam is OptimizerV2
    model.global_step = optimizer.iterations

    rng = np.random.default_rng(19)

    def inputs(batch, audio_len):
        return {"motion_input": tf.constant(rng.normal(size=(batch, lm, 225)).astype(np.float32)),
                "audio_input": tf.constant(rng.normal(size=(batch, audio_len, 35)).astype(np.float32))}

    model(inputs(1, la))  # builds the variables
    for v in model.trainable_variables:
        shape = v.shape.as_list()
        name = v.name
        if "gamma" in name:
            value = 1 + 0.2 * rng.normal(size=shape)
        elif "beta" in name or "bias" in name:
            value = 0.2 * rng.normal(size=shape)
        else:
            value = rng.normal(size=shape) * (1.0 / np.sqrt(shape[0]) if len(shape) == 2 else 0.3)
        v.assign(value.astype(np.float32))

    for _ in range(2):  # mint's SingleTaskTrainer.train_step, one replica
        batch = inputs(2, la)
        target = tf.constant(rng.normal(size=(2, n_target, 225)).astype(np.float32))
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(model.loss(target, model(batch, training=True)))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(list(zip(grads, model.trainable_variables)))

    manager = tf.train.CheckpointManager(tf.train.Checkpoint(optimizer=optimizer, model=model),
                                         directory=str(out), max_to_keep=1, checkpoint_name="ckpt")
    path = manager.save(checkpoint_number=int(optimizer.iterations.numpy()))

    fwd = inputs(2, la)
    ar = inputs(1, la + 5)
    np.savez(out / "reference.npz",
             motion=fwd["motion_input"].numpy(), audio=fwd["audio_input"].numpy(),
             output=model.call(fwd).numpy(),
             ar_motion=ar["motion_input"].numpy(), ar_audio=ar["audio_input"].numpy(),
             ar_output=model.infer_auto_regressive(ar, steps=10).numpy(),
             global_step=np.int64(optimizer.iterations.numpy()))
    keys = tf.train.list_variables(path)
    (out / "keys.txt").write_text("".join(f"{k} {list(s)}\n" for k, s in keys))
    print(path, len(keys), "tensors")


if __name__ == "__main__":
    main()
