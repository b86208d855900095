"""aistpp.models.tf_checkpoint / mint_import and ``aistpp import-mint``.

* A checkpoint written by mint's own code with TensorFlow 2.15 (tests/data/mint_fact, see make_fixture.py there)
  imports and reproduces mint's forward pass and ``infer_auto_regressive`` within 1e-5 in float32.
* Bundles written by tests/tfbundle.py (an independent writer of the documented format) with mint's variable
  naming and known random weights import and match a NumPy forward pass computed from the raw TF-layout weights.
* Corrupt / truncated files and wrong configs give one-line errors naming the file and the key.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from aistpp.errors import AistppError
from aistpp.models.mint_import import import_mint_checkpoint, parse_mint_config, parse_text_proto
from aistpp.models.tf_checkpoint import TensorBundle, crc32c, _crc32c_python
from tfbundle import MINT_CONFIG, SUFFIX, crc32c_bitwise, mint_fact_variables, with_trainer_extras, write_bundle

FIXTURE = Path(__file__).parent / "data" / "mint_fact"
DIMS = dict(hidden=16, heads=4, mlp=24, motion_len=6, audio_len=10, motion_dim=225, audio_dim=35,
            motion_layers=1, audio_layers=2, cross_layers=2)

pytestmark = pytest.mark.usefixtures("torch_one_thread")


# ---- NumPy forward of mint's network on the raw TF-layout weights (float64), from mint's base_models.py ---------

def _w(v, path, name):
    return v[f"model/{path}/{name}{SUFFIX}"].astype(np.float64)


def _dense(v, path, x, bias=True):
    y = x @ _w(v, path, "kernel")
    return y + _w(v, path, "bias") if bias else y


def _ln(v, path, x):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5) * _w(v, path, "gamma") + _w(v, path, "beta")


def _transformer(v, net, layers, x, heads):
    b, n, d = x.shape
    for i in range(layers):
        a = f"{net}/layer_with_weights-{2 * i}/fn"
        h = _ln(v, f"{a}/norm", x)
        qkv = _dense(v, f"{a}/fn/to_qkv", h, bias=False).reshape(b, n, 3, heads, d // heads)  # (qkv h d)
        q, k, val = (qkv[:, :, j].transpose(0, 2, 1, 3) for j in range(3))
        dots = np.einsum("bhid,bhjd->bhij", q, k) * d ** -0.5
        att = np.exp(dots - dots.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        out = np.einsum("bhij,bhjd->bhid", att, val).transpose(0, 2, 1, 3).reshape(b, n, d)
        x = x + _dense(v, f"{a}/fn/to_out", out)
        m = f"{net}/layer_with_weights-{2 * i + 1}/fn"
        h = _dense(v, f"{m}/fn/net/layer_with_weights-0", _ln(v, f"{m}/norm", x))
        h = 0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h ** 3)))
        x = x + _dense(v, f"{m}/fn/net/layer_with_weights-1", h)
    return x


def np_mint_fact(v, dims, motion, audio):
    heads = dims["heads"]
    m = _dense(v, "motion_linear_embedding/net", motion) + _w(v, "motion_pos_embedding", "position_embedding")
    m = _transformer(v, "motion_transformer/net", dims["motion_layers"], m, heads)
    a = _dense(v, "audio_linear_embedding/net", audio) + _w(v, "audio_pos_embedding", "position_embedding")
    a = _transformer(v, "audio_transformer/net", dims["audio_layers"], a, heads)
    x = _transformer(v, "cross_modal_layer/transformer_layer/net", dims["cross_layers"],
                     np.concatenate([m, a], 1), heads)
    return _dense(v, "cross_modal_layer/cross_output_layer", x)


# ---- fixtures --------------------------------------------------------------------------------------------------

def _write_config(path, **over):
    path.write_text(MINT_CONFIG.format(**{**DIMS, **over}))
    return path


@pytest.fixture
def synthetic(tmp_path):
    """A mint-named checkpoint with trainer extras (Adam slots, global_step 7, ...) and its config."""
    rng = np.random.default_rng(5)
    variables = mint_fact_variables(DIMS, rng)
    tensors, strings = with_trainer_extras(variables, rng, step=7)
    ckdir = tmp_path / "mint_run"
    ckdir.mkdir()
    write_bundle(ckdir / "ckpt-7", tensors, strings, block_size=300, restart_interval=3)
    (ckdir / "checkpoint").write_text('model_checkpoint_path: "ckpt-7"\nall_model_checkpoint_paths: "ckpt-7"\n')
    return {"dir": ckdir, "prefix": ckdir / "ckpt-7", "config": _write_config(tmp_path / "fact.config"),
            "variables": variables, "tensors": tensors}


def _one_line(excinfo):
    msg = str(excinfo.value)
    assert "\n" not in msg
    return msg


# ---- the tensor-bundle reader ------------------------------------------------------------------------------------

def test_crc32c_known_values():
    assert crc32c(b"123456789") == 0xE3069283 == _crc32c_python(b"123456789") == crc32c_bitwise(b"123456789")
    data = np.random.default_rng(0).bytes(1000)
    assert crc32c(data) == _crc32c_python(data) == crc32c_bitwise(data)


def test_reader_reads_back_what_the_writer_wrote(tmp_path):
    rng = np.random.default_rng(1)
    tensors = {f"group_{i % 3}/var_{i:03d}/.ATTRIBUTES/VARIABLE_VALUE": rng.normal(size=(i % 4 + 1, 3))
               .astype([np.float32, np.float64, np.float16][i % 3]) for i in range(40)}
    tensors["ints/.ATTRIBUTES/VARIABLE_VALUE"] = np.arange(-5, 7, dtype=np.int64).reshape(3, 4)
    tensors["scalar/.ATTRIBUTES/VARIABLE_VALUE"] = np.float32(2.5).reshape(())
    write_bundle(tmp_path / "ck", tensors, {"_CHECKPOINTABLE_OBJECT_GRAPH": b"graph"}, block_size=120,
                 restart_interval=4)
    b = TensorBundle(tmp_path / "ck.index")
    assert b.keys() == sorted(list(tensors) + ["_CHECKPOINTABLE_OBJECT_GRAPH"])  # "" header excluded
    for name, arr in tensors.items():
        got = b.read(name)
        assert got.dtype == arr.dtype and got.shape == arr.shape
        np.testing.assert_array_equal(got, arr)
    assert b.entries["_CHECKPOINTABLE_OBJECT_GRAPH"].dtype_name == "string"
    with pytest.raises(AistppError, match="dtype string"):
        b.read("_CHECKPOINTABLE_OBJECT_GRAPH")


def test_reader_on_a_tensorflow_written_checkpoint():
    """The committed checkpoint (TensorFlow 2.15, mint's trainer layout): every key and shape as
    tf.train.list_variables listed them, every numeric tensor's CRC32C verified."""
    b = TensorBundle(FIXTURE)                     # folder with TensorFlow's 'checkpoint' state file
    assert b.prefix.name == "ckpt-2" and b.num_shards == 1
    listed = {}
    for line in (FIXTURE / "keys.txt").read_text().splitlines():
        name, shape = line.split(" ", 1)
        listed[name] = tuple(json.loads(shape))
    assert {k: e.shape for k, e in b.entries.items()} == listed
    for k, e in b.entries.items():
        if e.dtype_name != "string":
            assert b.read(k).shape == e.shape
    assert int(b.read("model/global_step/.ATTRIBUTES/VARIABLE_VALUE")) == 2


# ---- import: mint's own checkpoint -------------------------------------------------------------------------------

def test_import_reproduces_mint_forward_and_autoregressive_generation():
    from aistpp.models.generate import generate_motion

    ref = np.load(FIXTURE / "reference.npz")
    model = import_mint_checkpoint(FIXTURE / "ckpt-2", FIXTURE / "fact_tiny.config")
    cfg = model.config
    assert (cfg.hidden_size, cfg.num_heads, cfg.mlp_size, cfg.motion_layers, cfg.audio_layers, cfg.cross_layers,
            cfg.motion_len, cfg.audio_len, cfg.target_len) == (16, 4, 24, 1, 2, 2, 8, 12, 4)
    assert model.mint_info["global_step"] == int(ref["global_step"]) == 2
    with torch.no_grad():
        out = model(torch.from_numpy(ref["motion"]), torch.from_numpy(ref["audio"])).numpy()
    assert out.shape == ref["output"].shape
    np.testing.assert_allclose(out, ref["output"], rtol=0, atol=1e-5)
    assert np.abs(ref["output"]).max() > 1  # a non-trivial output
    # mint's infer_auto_regressive (raw outputs, stops when the music runs out: 17 - 12 + 1 = 6 frames)
    gen = generate_motion(model, ref["ar_motion"][0], ref["ar_audio"][0], frames=10, snap="none")
    np.testing.assert_allclose(gen[cfg.motion_len:], ref["ar_output"][0], rtol=0, atol=1e-5)
    np.testing.assert_array_equal(gen[:cfg.motion_len], ref["ar_motion"][0])


# ---- import: known random weights through the independent writer -------------------------------------------------

def test_import_matches_numpy_forward_of_the_raw_weights(synthetic):
    model = import_mint_checkpoint(synthetic["dir"], synthetic["config"])
    assert model.mint_info["global_step"] == 7 and model.mint_info["skipped"] > 0
    rng = np.random.default_rng(8)
    motion = rng.normal(size=(2, DIMS["motion_len"], 225))
    audio = rng.normal(size=(2, DIMS["audio_len"], 35))
    ref = np_mint_fact(synthetic["variables"], DIMS, motion, audio)
    with torch.no_grad():
        out32 = model(torch.tensor(motion, dtype=torch.float32), torch.tensor(audio, dtype=torch.float32)).numpy()
        out64 = model.double()(torch.tensor(motion), torch.tensor(audio)).numpy()
    np.testing.assert_allclose(out64, ref, rtol=0, atol=1e-10)
    np.testing.assert_allclose(out32, ref, rtol=0, atol=1e-5)
    # the qkv kernel keeps mint's column order: row 0 of our to_qkv weight = column 0 of mint's kernel
    k = synthetic["variables"][f"model/cross_modal_layer/transformer_layer/net/layer_with_weights-2/fn/fn/to_qkv/"
                                f"kernel{SUFFIX}"]
    np.testing.assert_array_equal(model.cross_transformer.blocks[1].attn.to_qkv.weight.detach().float().numpy(), k.T)


def test_import_keras_save_weights_layout(synthetic, tmp_path):
    """Keras model.save_weights() roots the keys at the model: the same names without 'model/'."""
    stripped = {k[len("model/"):]: v for k, v in synthetic["variables"].items()}
    write_bundle(tmp_path / "weights", stripped)
    a = import_mint_checkpoint(tmp_path / "weights", synthetic["config"])
    b = import_mint_checkpoint(synthetic["prefix"], synthetic["config"])
    for name, t in b.state_dict().items():
        assert torch.equal(a.state_dict()[name], t), name


def test_config_parser_paper_and_defaults(tmp_path):
    from aistpp.models.fact import PRESETS

    paper = dict(hidden=800, heads=10, mlp=3072, motion_len=120, audio_len=240, motion_dim=225, audio_dim=35,
                 motion_layers=2, audio_layers=2, cross_layers=12)
    text = MINT_CONFIG.format(**paper).replace("target_length_sec: 2", "target_length_sec: 20")
    text = text.replace("intermediate_size: 3072", "")  # mint's fact_v5 config relies on the proto default
    (tmp_path / "paper.config").write_text(text)
    assert parse_mint_config(tmp_path / "paper.config") == PRESETS["paper"]
    msg = parse_text_proto('a { b: "x\\"y" c: 1 c: [2, 3] } # comment\nd < e: E >')
    assert msg == {"a": [{"b": ['x"y'], "c": ["1", "2", "3"]}], "d": [{"e": ["E"]}]}


# ---- errors ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("change, pattern", [
    ({"cross_layers": 3}, r"missing variable model/cross_modal_layer/transformer_layer/net/layer_with_weights-4/"),
    ({"audio_layers": 1}, r"unexpected variable model/audio_transformer/net/layer_with_weights-2/"),
    ({"mlp": 32}, r"shape mismatch for model/\w+_transformer/net/layer_with_weights-1/fn/fn/net/"
                  r"layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE: checkpoint \[16, 24\]"),
    ({"motion_len": 7}, r"shape mismatch for model/motion_pos_embedding/position_embedding"),
])
def test_wrong_config_names_the_key(synthetic, tmp_path, change, pattern):
    with pytest.raises(AistppError, match=pattern) as ei:
        import_mint_checkpoint(synthetic["prefix"], _write_config(tmp_path / "wrong.config", **change))
    assert "ckpt-7.index" in _one_line(ei)


def test_unexpected_model_variable(tmp_path, synthetic):
    tensors = dict(synthetic["tensors"])
    tensors[f"model/extra_head/kernel{SUFFIX}"] = np.zeros((2, 2), np.float32)
    write_bundle(tmp_path / "x", tensors)
    with pytest.raises(AistppError, match="unexpected variable model/extra_head/kernel") as ei:
        import_mint_checkpoint(tmp_path / "x", synthetic["config"])
    _one_line(ei)


@pytest.mark.parametrize("text, pattern", [
    ("multi_modal_model { fact_model { modality { feature_name: \"audio\" }", r"line \d+: missing closing"),
    ("train_config { batch_size: 1 }", "no multi_modal_model"),
    ("multi_modal_model { fact_model { modality { feature_name: \"motion\" sequence_length: 4 } } }",
     'no modality with feature_name "audio"'),
])
def test_bad_config_one_line(tmp_path, synthetic, text, pattern):
    (tmp_path / "bad.config").write_text(text)
    with pytest.raises(AistppError, match=pattern) as ei:
        import_mint_checkpoint(synthetic["prefix"], tmp_path / "bad.config")
    assert "bad.config" in _one_line(ei)


def _copy(synthetic, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(synthetic["dir"], dst)
    return dst / "ckpt-7"


def test_truncated_and_corrupt_index(synthetic, tmp_path):
    prefix = _copy(synthetic, tmp_path)
    index = Path(f"{prefix}.index")
    raw = index.read_bytes()
    index.write_bytes(raw[:-10])
    with pytest.raises(AistppError, match="corrupt TensorFlow checkpoint index: .*magic") as ei:
        import_mint_checkpoint(prefix, synthetic["config"])
    assert "ckpt-7.index" in _one_line(ei)
    bad = bytearray(raw)
    bad[40] ^= 0x55  # inside the first data block
    index.write_bytes(bytes(bad))
    with pytest.raises(AistppError, match="checksum mismatch") as ei:
        import_mint_checkpoint(prefix, synthetic["config"])
    _one_line(ei)
    index.unlink()
    with pytest.raises(AistppError, match="index not found"):
        import_mint_checkpoint(prefix, synthetic["config"])


def test_truncated_and_corrupt_data(synthetic, tmp_path):
    prefix = _copy(synthetic, tmp_path)
    data = Path(f"{prefix}.data-00000-of-00001")
    raw = data.read_bytes()
    b = TensorBundle(prefix)
    key = f"model/cross_modal_layer/cross_output_layer/kernel{SUFFIX}"
    e = b.entries[key]
    bad = bytearray(raw)
    bad[e.offset + 17] ^= 0x01  # one bit of one weight
    data.write_bytes(bytes(bad))
    with pytest.raises(AistppError, match=f"checksum mismatch in tensor {key}") as ei:
        import_mint_checkpoint(prefix, synthetic["config"])
    assert "data-00000-of-00001" in _one_line(ei)
    import_mint_checkpoint(prefix, synthetic["config"], verify=False)  # --no-verify reads it anyway
    last = max(b.entries.values(), key=lambda x: x.offset + x.size if x.dtype_name != "string" else -1)
    data.write_bytes(raw[:last.offset + last.size - 3])
    with pytest.raises(AistppError, match="truncated checkpoint data: tensor") as ei:
        TensorBundle(prefix).read(last.name)
    _one_line(ei)


# ---- CLI: import-mint -> generate, and resume ----------------------------------------------------------------

def test_cli_import_generate_and_resume(synthetic, tmp_path, annotations_dir, capsys):
    from aistpp.cli import main
    from aistpp.models.generate import generate_motion, load_seed
    from aistpp.models.train import TrainConfig, model_from_checkpoint, train

    out = tmp_path / "fact.pt"
    assert main(["import-mint", "--checkpoint", str(synthetic["prefix"]) + ".index", "--config",
                 str(synthetic["config"]), "--out", str(out)]) == 0
    assert "global step 7" in capsys.readouterr().out
    model, ck = model_from_checkpoint(out)
    ref = import_mint_checkpoint(synthetic["prefix"], synthetic["config"])
    for name, t in ref.state_dict().items():
        assert torch.equal(model.state_dict()[name], t), name
    assert ck["step"] == 7 and ck["source"]["kind"] == "mint"

    seed_pkl = annotations_dir / "motions" / "gBR_sBM_cAll_d04_mBR2_ch08.pkl"
    music = np.random.default_rng(3).normal(size=(40, 35)).astype(np.float32)
    np.save(tmp_path / "mBR2.npy", music)
    gen = tmp_path / "gen"
    assert main(["generate", "--checkpoint", str(out), "--seed-motion", str(seed_pkl), "--music",
                 str(tmp_path / "mBR2.npy"), "--frames", "12", "--snap", "none", "--out", str(gen)]) == 0
    got = np.load(gen / "gBR_sBM_cAll_d04_mBR2_ch08_mBR2.npy")
    seed = load_seed(str(seed_pkl), None, model.config.motion_len)["motion"]
    expect = generate_motion(ref, seed, music, frames=12, snap="none")
    assert got.shape == (DIMS["motion_len"] + 12, 225)
    np.testing.assert_allclose(got, expect, rtol=0, atol=1e-6)
    rot = got[DIMS["motion_len"]:, 9:].reshape(-1, 3, 3)  # raw outputs: not rotations
    assert np.abs(np.einsum("nij,nkj->nik", rot, rot) - np.eye(3)).max() > 0.1

    # a run directory: 'aistpp train --resume' continues from mint's step with a fresh optimizer
    run = tmp_path / "run"
    assert main(["import-mint", "--checkpoint", str(synthetic["dir"]), "--config", str(synthetic["config"]),
                 "--out", str(run)]) == 0
    assert (run / "checkpoints" / "latest.txt").read_text().strip() == "step_000000007.pt"
    rng = np.random.default_rng(4)
    data = [{"motion": torch.tensor(rng.normal(size=(DIMS["motion_len"], 225)), dtype=torch.float32),
             "audio": torch.tensor(rng.normal(size=(DIMS["audio_len"], 35)), dtype=torch.float32),
             "target": torch.tensor(rng.normal(size=(2, 225)), dtype=torch.float32)} for _ in range(4)]
    res = train(model_from_checkpoint(run)[0], data, TrainConfig(steps=9, batch_size=2, log_every=1,
                                                                 tensorboard=False), run, resume=True)
    assert res.step == 9 and [s for s, _ in res.losses] == [8, 9]
    trained, _ = model_from_checkpoint(run)
    assert not torch.equal(trained.head.weight, ref.head.weight)


def test_cli_errors_are_one_line(synthetic, tmp_path, capsys):
    from aistpp.cli import main

    rc = main(["import-mint", "--checkpoint", str(tmp_path / "nope"), "--config", str(synthetic["config"]),
               "--out", str(tmp_path / "o.pt")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "index not found" in err and len(err.splitlines()) == 1


def test_music_align_option(monkeypatch, tmp_path, synthetic):
    """music_align="timestamps" skips the seed's music offset, "start" pairs frame 0 with music frame 0."""
    from aistpp.models import generate as g

    model = import_mint_checkpoint(synthetic["prefix"], synthetic["config"])
    music = np.random.default_rng(6).normal(size=(30, 35)).astype(np.float32)
    seed = np.random.default_rng(7).normal(size=(DIMS["motion_len"], 225)).astype(np.float32)
    monkeypatch.setattr(g, "load_seed", lambda *a, **k: {"sequence": "gBR_sBM_cAll_d04_mBR2_ch08", "motion": seed,
                                                         "smpl_scaling": np.ones(1, np.float32),
                                                         "music_id": "mBR2", "offset": 5})
    monkeypatch.setattr(g, "load_music", lambda *a, **k: ("mBR2", music))
    for align, offset in (("timestamps", 5), ("start", 0)):
        rec = g.generate_to_dir(None, "x", None, tmp_path / align, g.GenerateConfig(frames=4, music_align=align),
                                model=model)
        assert rec["music_offset"] == offset
        np.testing.assert_allclose(np.load(rec["paths"]["npy"]),
                                   g.generate_motion(model, seed, music[offset:], frames=4), atol=1e-6)
    with pytest.raises(AistppError, match="music_align"):
        g.GenerateConfig(music_align="mint")


def test_cli_import_generate_evaluate_on_a_corpus(synthetic, tmp_path, annotations_dir, shared_sequences, capsys):
    """The imported checkpoint drives 'aistpp generate' from corpus seeds (their own music, both alignments)
    and 'aistpp evaluate --profile fact'."""
    from aistpp.cli import main
    from aistpp.corpus import CorpusWriter, import_official

    corpus = tmp_path / "corpus"
    import_official(annotations_dir, corpus, sequences=shared_sequences)
    with CorpusWriter(corpus) as w:
        for i, mid in enumerate(("mBR2", "mJS2")):
            f = np.random.default_rng(i).normal(size=(200, 35)).astype(np.float32)
            f[:, -1] = 0
            f[::30, -1] = 1
            w.add_music(mid, f, config={"generated": "test"})
    names = tmp_path / "names.txt"
    names.write_text("\n".join(shared_sequences) + "\n")
    ckpt = tmp_path / "fact.pt"
    assert main(["import-mint", "--checkpoint", str(synthetic["prefix"]), "--config", str(synthetic["config"]),
                 "--out", str(ckpt)]) == 0
    gen = tmp_path / "gen"
    assert main(["generate", "--checkpoint", str(ckpt), "--split", str(names), "--corpus", str(corpus),
                 "--frames", "30", "--snap", "none", "--music-align", "start", "--out", str(gen)]) == 0
    for seq in shared_sequences:
        meta = json.loads((gen / f"{seq}_{seq.split('_')[4]}.json").read_text())
        assert meta["generated_frames"] == 30 and meta["step"] == 7 and meta["music_offset"] == 0
        assert meta["config"] == {"frames": 30, "snap": "none", "music_align": "start"}
    capsys.readouterr()
    assert main(["evaluate", "--generated", str(gen), "--corpus", str(corpus), "--profile", "fact",
                 "--test-split", str(names), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["generated"]["n"] == 2 and np.isfinite(res["generated"]["FID_k"])
    assert 0 <= res["generated"]["BeatAlign"] <= 1
