"""Import FACT checkpoints written by google-research/mint (TensorFlow) into :func:`aistpp.models.build_fact`.

mint's trainer saves ``tf.train.Checkpoint(optimizer=..., model=FACTModel)`` with a ``CheckpointManager``
(``ckpt-N.index`` + ``ckpt-N.data-00000-of-00001`` + a ``checkpoint`` state file). Its keys name the Keras
attribute path of every variable, e.g.::

    model/motion_linear_embedding/net/kernel/.ATTRIBUTES/VARIABLE_VALUE                       (225, 800)
    model/motion_pos_embedding/position_embedding/.ATTRIBUTES/VARIABLE_VALUE                  (120, 800)
    model/motion_transformer/net/layer_with_weights-0/fn/norm/gamma/...                       block 0, LayerNorm 1
    model/motion_transformer/net/layer_with_weights-0/fn/fn/to_qkv/kernel/...                 (800, 2400)
    model/motion_transformer/net/layer_with_weights-1/fn/fn/net/layer_with_weights-0/kernel/... MLP fc1
    model/cross_modal_layer/transformer_layer/net/layer_with_weights-{2i, 2i+1}/...           cross-modal block i
    model/cross_modal_layer/cross_output_layer/kernel/...                                     (800, 225)

(``Residual(Norm(Attention))`` is the even Sequential entry of block ``i``, ``Residual(Norm(MLP))`` the odd
one; ``Residual.fn`` is the Norm, ``Norm.norm`` its LayerNorm and ``Norm.fn`` the wrapped layer.) Dense kernels are
stored ``(in, out)`` and are transposed into ``nn.Linear.weight`` ``(out, in)``; the qkv kernel's columns keep
mint's ``(qkv, head, d_head)`` order, which :class:`aistpp.models.fact.Attention` uses as is. Skipped: the
optimizer's slots (``.../.OPTIMIZER_SLOT/...``) and variables (``optimizer/...``), ``save_counter``,
``_CHECKPOINTABLE_OBJECT_GRAPH`` and ``model/global_step`` (mint's trainer tracks the optimizer's iteration
counter there; it becomes the imported checkpoint's step; mint's evaluator keeps a root ``global_step``). A
checkpoint written by Keras ``save_weights`` (the same keys without ``model/``) is accepted too.

The model's shape comes from mint's text-format pipeline config (e.g. ``configs/fact_v5_deeper_t10_cm12.config``),
parsed here without protobuf: the modality transformers' ``hidden_size``, ``num_attention_heads``,
``intermediate_size`` (proto default 3072) and ``num_hidden_layers``, the modalities' ``sequence_length``, the motion
``feature_dim``, the audio dimension (its ``feature_dim``, else the ``train_dataset`` audio ``dimension``) and the
cross-modal transformer and ``output_layer``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import torch

from aistpp.errors import AistppError
from aistpp.models.fact import FACTConfig, FACTModel

log = logging.getLogger(__name__)

VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
TRANSFORMER_DEFAULTS = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                        "intermediate_size": 3072}  # mint/protos/model.proto defaults


# ------------------------------------------------------------------------------ text-format config parsing

_TOKEN = re.compile(r'\s+|#[^\n]*|(?P<str>"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')|(?P<punct>[{}:<>\[\],;])'
                    r'|(?P<word>[A-Za-z0-9_.+\-]+)')


def _tokens(text: str, path) -> list[tuple[str, str, int]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            line = text.count("\n", 0, pos) + 1
            raise AistppError(f"mint config line {line}: unexpected character {text[pos]!r}", path)
        if m.lastgroup:
            out.append((m.lastgroup, m.group(m.lastgroup), text.count("\n", 0, pos) + 1))
        pos = m.end()
    return out


def parse_text_proto(text: str, path=None) -> dict:
    """Protobuf text format -> ``{field: [values]}`` (every field may repeat; sub-messages are dicts, scalars are
    strings with quotes removed). Enough for mint's configs; no schema, so defaults are applied by the caller."""
    toks = _tokens(text, path)
    pos = 0

    def err(msg, i):
        line = toks[i][2] if i < len(toks) else (toks[-1][2] if toks else 1)
        raise AistppError(f"mint config line {line}: {msg}", path)

    def message(end: str | None) -> dict:
        nonlocal pos
        fields: dict[str, list] = {}
        while True:
            if pos >= len(toks):
                if end is not None:
                    err(f"missing closing {end!r}", pos)
                return fields
            kind, val, _ = toks[pos]
            if kind == "punct" and val == end:
                pos += 1
                return fields
            if kind == "punct" and val in ",;":
                pos += 1
                continue
            if kind != "word":
                err(f"expected a field name, got {val!r}", pos)
            name = val
            pos += 1
            if pos < len(toks) and toks[pos][1] == ":":
                pos += 1
            if pos >= len(toks):
                err(f"field {name} has no value", pos)
            kind, val, _ = toks[pos]
            if kind == "punct" and val in "{<":
                pos += 1
                value = message("}" if val == "{" else ">")
                fields.setdefault(name, []).append(value)
            elif kind == "punct" and val == "[":
                pos += 1
                while pos < len(toks) and toks[pos][1] != "]":
                    if toks[pos][1] != ",":
                        fields.setdefault(name, []).append(_scalar(toks[pos]))
                    pos += 1
                pos += 1
            elif kind in ("word", "str"):
                fields.setdefault(name, []).append(_scalar(toks[pos]))
                pos += 1
            else:
                err(f"field {name}: unexpected {val!r}", pos)

    return message(None)


def _scalar(tok) -> str:
    kind, val, _ = tok
    if kind == "str":
        return bytes(val[1:-1], "utf-8").decode("unicode_escape")
    return val


def _one(msg: dict, name: str, default=None):
    vals = msg.get(name)
    return vals[-1] if vals else default  # proto2 text format: the last value of a singular field wins


def _int(msg: dict, name: str, default, path, where: str) -> int:
    v = _one(msg, name, default)
    try:
        return int(float(v)) if v is not None else None
    except ValueError:
        raise AistppError(f"mint config: {where}.{name} is not a number: {v!r}", path) from None


def _transformer(msg: dict | None, path, where: str) -> dict:
    if msg is None:
        raise AistppError(f"mint config: {where} has no transformer", path)
    return {k: _int(msg, k, d, path, where) for k, d in TRANSFORMER_DEFAULTS.items()}


def parse_mint_config(config: str | Path) -> FACTConfig:
    """A :class:`FACTConfig` from mint's text-format pipeline config (or its ``fact_model`` block)."""
    path = Path(config)
    if not path.is_file():
        raise AistppError("mint config file not found", path)
    root = parse_text_proto(path.read_text(errors="replace"), path)
    fact = _one(_one(root, "multi_modal_model", {}), "fact_model") or _one(root, "fact_model")
    if fact is None and "modality" in root and "cross_modal_model" in root:
        fact = root
    if fact is None:
        raise AistppError("mint config: no multi_modal_model { fact_model { ... } } block", path)
    modalities = {}
    for mod in fact.get("modality", []):
        name = _one(mod, "feature_name")
        if name in modalities:
            raise AistppError(f"mint config: modality {name!r} given twice", path)
        modalities[name] = mod
    for name in ("motion", "audio"):
        if name not in modalities:
            raise AistppError(f"mint config: no modality with feature_name \"{name}\"", path)
    motion, audio = modalities["motion"], modalities["audio"]
    cross = _one(fact, "cross_modal_model")
    if cross is None:
        raise AistppError("mint config: fact_model has no cross_modal_model", path)
    a, b = _one(cross, "modality_a", "motion"), _one(cross, "modality_b", "audio")
    if (a, b) != ("motion", "audio"):
        raise AistppError(f"mint config: cross_modal_model concatenates {a!r} then {b!r}; FACT concatenates "
                          "motion then audio", path)
    concat = _one(cross, "cross_modal_concat_dim", "SEQUENCE_WISE")
    if concat not in ("SEQUENCE_WISE", "1"):
        raise AistppError(f"mint config: cross_modal_concat_dim {concat} is not supported (SEQUENCE_WISE only)",
                          path)
    nets = {
        "motion": _transformer(_one(_one(motion, "model", {}), "transformer"), path, "motion modality"),
        "audio": _transformer(_one(_one(audio, "model", {}), "transformer"), path, "audio modality"),
        "cross": _transformer(_one(cross, "transformer"), path, "cross_modal_model"),
    }
    for key in ("hidden_size", "num_attention_heads", "intermediate_size"):
        values = {n: t[key] for n, t in nets.items()}
        if len(set(values.values())) > 1:
            raise AistppError(f"mint config: {key} differs between the transformers ({values}); build_fact uses "
                              "one width for all three", path)
    out_dim = _int(_one(cross, "output_layer", {}), "out_dim", None, path, "cross_modal_model.output_layer")
    motion_dim = _int(motion, "feature_dim", None, path, "motion modality") or out_dim or 225
    if out_dim is not None and out_dim != motion_dim:
        raise AistppError(f"mint config: output_layer out_dim {out_dim} differs from the motion feature_dim "
                          f"{motion_dim}", path)
    audio_dim = _int(audio, "feature_dim", None, path, "audio modality")
    train_data = _one(root, "train_dataset", {})
    if audio_dim is None:
        for mod in train_data.get("modality", []):
            general = _one(mod, "general_modality", {})
            if _one(general, "feature_name") == "audio":
                audio_dim = _int(general, "dimension", None, path, "train_dataset audio modality")
    target = _one(train_data, "target_length_sec")
    lens = {}
    for name, mod in (("motion", motion), ("audio", audio)):
        lens[name] = _int(mod, "sequence_length", None, path, f"{name} modality")
        if not lens[name]:
            raise AistppError(f"mint config: the {name} modality has no sequence_length", path)
    t = nets["motion"]
    kwargs = dict(motion_dim=motion_dim, audio_dim=audio_dim or 35, motion_len=lens["motion"],
                  audio_len=lens["audio"], hidden_size=t["hidden_size"], num_heads=t["num_attention_heads"],
                  mlp_size=t["intermediate_size"], motion_layers=t["num_hidden_layers"],
                  audio_layers=nets["audio"]["num_hidden_layers"], cross_layers=nets["cross"]["num_hidden_layers"],
                  attention_scale="mint")
    if target is not None:
        kwargs["target_len"] = max(1, min(int(float(target)), lens["motion"] + lens["audio"]))
    try:
        return FACTConfig(**kwargs)
    except AistppError as err:
        raise AistppError(f"mint config: {err}", path) from None


# ------------------------------------------------------------------------------------------ variable map

def mint_variable_map(cfg: FACTConfig, prefix: str = "model/") -> dict[str, tuple[str, bool]]:
    """{mint checkpoint key: (our state_dict name, transpose)} for every variable of the model."""
    m: dict[str, tuple[str, bool]] = {}

    def dense(mint_path, ours, bias=True):
        m[f"{prefix}{mint_path}/kernel{VALUE_SUFFIX}"] = (f"{ours}.weight", True)
        if bias:
            m[f"{prefix}{mint_path}/bias{VALUE_SUFFIX}"] = (f"{ours}.bias", False)

    def norm(mint_path, ours):
        m[f"{prefix}{mint_path}/gamma{VALUE_SUFFIX}"] = (f"{ours}.weight", False)
        m[f"{prefix}{mint_path}/beta{VALUE_SUFFIX}"] = (f"{ours}.bias", False)

    def transformer(mint_net, ours, layers):
        for i in range(layers):
            attn, mlp = f"{mint_net}/layer_with_weights-{2 * i}/fn", f"{mint_net}/layer_with_weights-{2 * i + 1}/fn"
            blk = f"{ours}.blocks.{i}"
            norm(f"{attn}/norm", f"{blk}.norm1")
            dense(f"{attn}/fn/to_qkv", f"{blk}.attn.to_qkv", bias=False)
            dense(f"{attn}/fn/to_out", f"{blk}.attn.to_out")
            norm(f"{mlp}/norm", f"{blk}.norm2")
            dense(f"{mlp}/fn/net/layer_with_weights-0", f"{blk}.mlp.fc1")
            dense(f"{mlp}/fn/net/layer_with_weights-1", f"{blk}.mlp.fc2")

    for mod in ("motion", "audio"):
        dense(f"{mod}_linear_embedding/net", f"{mod}_embed")
        m[f"{prefix}{mod}_pos_embedding/position_embedding{VALUE_SUFFIX}"] = (f"{mod}_pos", False)
        transformer(f"{mod}_transformer/net", f"{mod}_transformer", getattr(cfg, f"{mod}_layers"))
    transformer("cross_modal_layer/transformer_layer/net", "cross_transformer", cfg.cross_layers)
    dense("cross_modal_layer/cross_output_layer", "head")
    return m


def _skipped(key: str, prefix: str) -> bool:
    return (key == "_CHECKPOINTABLE_OBJECT_GRAPH" or "/.OPTIMIZER_SLOT/" in key or key.startswith("optimizer/")
            or key.startswith("save_counter/")
            or key in (f"{prefix}global_step{VALUE_SUFFIX}", f"global_step{VALUE_SUFFIX}"))


def read_mint_checkpoint(prefix, config, verify: bool = True) -> tuple[FACTConfig, dict, dict]:
    """(model config, our state_dict of float32 tensors, info {checkpoint, config, global_step, skipped}) from a
    mint checkpoint ``prefix`` (``ckpt-N``, its ``.index``, or the folder with TensorFlow's ``checkpoint`` file)
    and mint's text-format ``config`` (a path, or a :class:`FACTConfig`)."""
    from aistpp.models.tf_checkpoint import TensorBundle

    cfg = config if isinstance(config, FACTConfig) else parse_mint_config(config)
    bundle = TensorBundle(prefix)
    keys = bundle.keys()
    root = "model/" if any(k.startswith("model/motion_linear_embedding/") for k in keys) else ""
    if not root and not any(k.startswith("motion_linear_embedding/") for k in keys):
        raise AistppError("no mint FACT variables (model/motion_linear_embedding/...) in this checkpoint",
                          bundle.index_path)
    wanted = mint_variable_map(cfg, root)
    shapes = _state_shapes(cfg)
    skipped = [k for k in keys if _skipped(k, root)]
    unexpected = [k for k in keys if k not in wanted and not _skipped(k, root)]
    if unexpected:
        raise AistppError(f"unexpected variable {unexpected[0]} ({len(unexpected)} in all) for the FACT model of "
                          f"the config ({_describe(cfg)}): wrong config for this checkpoint?", bundle.index_path)
    missing = [k for k in wanted if k not in bundle]
    if missing:
        raise AistppError(f"missing variable {missing[0]} ({len(missing)} in all) for the FACT model of the "
                          f"config ({_describe(cfg)}): wrong config for this checkpoint?", bundle.index_path)
    state = {}
    for key, (ours, transpose) in wanted.items():
        entry = bundle.entries[key]
        expect = shapes[ours][::-1] if transpose else shapes[ours]
        if tuple(entry.shape) != expect:
            raise AistppError(f"shape mismatch for {key}: checkpoint {list(entry.shape)}, the config's model needs "
                              f"{list(expect)} ({_describe(cfg)})", bundle.index_path)
        if entry.dtype_name not in ("float32", "float16", "bfloat16", "float64"):
            raise AistppError(f"variable {key} has dtype {entry.dtype_name}, expected a float", bundle.index_path)
        arr = np.asarray(bundle.read(key, verify=verify), dtype=np.float32)
        state[ours] = torch.from_numpy(np.ascontiguousarray(arr.T if transpose else arr))
    step = 0
    for step_key in (f"{root}global_step{VALUE_SUFFIX}", f"global_step{VALUE_SUFFIX}"):  # trainer / evaluator
        if step_key in bundle:
            step = int(bundle.read(step_key, verify=verify))
            break
    info = {"checkpoint": str(bundle.prefix), "config": None if isinstance(config, FACTConfig) else str(config),
            "global_step": step, "variables": len(wanted), "skipped": len(skipped)}
    log.info("read %d mint variables from %s (global step %d; %d optimizer/bookkeeping entries skipped)",
             len(wanted), bundle.prefix, step, len(skipped))
    return cfg, state, info


def _state_shapes(cfg: FACTConfig) -> dict[str, tuple]:
    with torch.device("meta"):
        model = FACTModel(cfg)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _describe(cfg: FACTConfig) -> str:
    return (f"width {cfg.hidden_size}, {cfg.num_heads} heads, MLP {cfg.mlp_size}, layers {cfg.motion_layers}/"
            f"{cfg.audio_layers}/{cfg.cross_layers}, lengths {cfg.motion_len}/{cfg.audio_len}")


def import_mint_checkpoint(prefix, config, verify: bool = True) -> FACTModel:
    """A :class:`FACTModel` (eval mode) holding the weights of mint checkpoint ``prefix`` built from mint's
    text-format ``config``. ``verify`` checks every tensor's CRC32C."""
    cfg, state, info = read_mint_checkpoint(prefix, config, verify)
    with torch.device("meta"):  # no random initialisation of weights that are replaced anyway
        model = FACTModel(cfg)
    model.load_state_dict(state, assign=True)
    model.eval()
    model.mint_info = info
    return model


def save_imported_checkpoint(model: FACTModel, out, info: dict | None = None) -> Path:
    """Write ``model`` as an aistpp FACT checkpoint that ``aistpp generate`` / ``evaluate`` load and ``aistpp
    train --resume`` continues (fresh Adam state at mint's global step, data position 0, seeded RNG states).

    ``out`` ending in ``.pt`` is the checkpoint file; anything else is a run directory that gets
    ``checkpoints/step_<global step>.pt`` and ``checkpoints/latest.txt``. Returns the checkpoint path."""
    import random

    from aistpp import __version__
    from aistpp.io.atomic import atomic_write_text
    from aistpp.models.train import TrainConfig, rng_state, save_checkpoint, set_rng_state

    info = dict(info or getattr(model, "mint_info", {}) or {})
    step = int(info.get("global_step", 0))
    out = Path(out)
    run_dir = None
    if out.suffix != ".pt":
        run_dir = out
        out = run_dir / "checkpoints" / f"step_{step:09d}.pt"
    train_cfg = TrainConfig()
    optimizer = torch.optim.Adam(model.parameters(), lr=train_cfg.lr_at(step), betas=train_cfg.adam_betas,
                                 eps=train_cfg.adam_eps)
    saved = rng_state()
    torch.manual_seed(train_cfg.seed)
    np.random.seed(train_cfg.seed)
    random.seed(train_cfg.seed)
    rng = rng_state()
    set_rng_state(saved)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, {
        "format": "aistpp-fact-checkpoint-1", "tool_version": __version__,
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": None,
        "step": step, "data_position": 0, "epoch": 0, "rng": rng,
        "model_config": model.config.to_dict(), "train_config": train_cfg.to_dict(),
        "source": {"kind": "mint", **{k: v for k, v in info.items() if v is not None}}})
    if run_dir is not None:
        atomic_write_text(run_dir / "checkpoints" / "latest.txt", out.name + "\n")
    log.info("wrote %s", out)
    return out


__all__ = ["import_mint_checkpoint", "read_mint_checkpoint", "parse_mint_config", "parse_text_proto",
           "mint_variable_map", "save_imported_checkpoint"]
