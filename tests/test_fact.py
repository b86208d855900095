"""aistpp.models.fact: parameter count of the paper preset, mint initialisation, and the forward pass against an
independent NumPy re-computation with the mint conventions (einops qkv layout, d_model^-0.5 scale, tanh GELU,
pre-LayerNorm eps 1e-5, no final LayerNorm, head on every token)."""

import math

import numpy as np
import pytest
import torch

from aistpp.errors import AistppError
from aistpp.models.fact import FACTConfig, build_fact, expected_num_parameters


# ---- NumPy reference (float64), written from mint's base_models.py -----------------------------------------

def np_layer_norm(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def np_gelu(x):
    return x * 0.5 * (1.0 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def np_softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def P(t):
    return t.detach().double().numpy()


def np_block(x, blk, heads, scale):
    """Residual(Norm(Attention)) then Residual(Norm(MLP)); x (B, N, D)."""
    b, n, d = x.shape
    h = np_layer_norm(x, P(blk.norm1.weight), P(blk.norm1.bias))
    qkv = h @ P(blk.attn.to_qkv.weight).T                     # (B, N, 3D), Dense without bias
    qkv = qkv.reshape(b, n, 3, heads, d // heads)             # "b n (qkv h d)"
    q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))   # (B, H, N, Dh)
    attn = np_softmax(np.einsum("bhid,bhjd->bhij", q, k) * scale)
    out = np.einsum("bhij,bhjd->bhid", attn, v).transpose(0, 2, 1, 3).reshape(b, n, d)
    x = x + out @ P(blk.attn.to_out.weight).T + P(blk.attn.to_out.bias)
    h = np_layer_norm(x, P(blk.norm2.weight), P(blk.norm2.bias))
    h = np_gelu(h @ P(blk.mlp.fc1.weight).T + P(blk.mlp.fc1.bias))
    return x + h @ P(blk.mlp.fc2.weight).T + P(blk.mlp.fc2.bias)


def np_fact(model, motion, audio, scale):
    cfg = model.config
    m = motion @ P(model.motion_embed.weight).T + P(model.motion_embed.bias) + P(model.motion_pos)
    for blk in model.motion_transformer.blocks:
        m = np_block(m, blk, cfg.num_heads, scale)
    a = audio @ P(model.audio_embed.weight).T + P(model.audio_embed.bias) + P(model.audio_pos)
    for blk in model.audio_transformer.blocks:
        a = np_block(a, blk, cfg.num_heads, scale)
    x = np.concatenate([m, a], axis=1)
    for blk in model.cross_transformer.blocks:
        x = np_block(x, blk, cfg.num_heads, scale)
    return x @ P(model.head.weight).T + P(model.head.bias)


def _randomize(model, seed=0):
    """Non-trivial LayerNorm and bias values so the comparison exercises every parameter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(0.1 * torch.randn(p.shape, generator=g))


# ---- tests --------------------------------------------------------------------------------------------------

def test_paper_preset_parameter_count():
    with torch.device("meta"):
        model = build_fact("paper")
    cfg = model.config
    assert (cfg.hidden_size, cfg.num_heads, cfg.mlp_size) == (800, 10, 3072)
    assert (cfg.motion_layers, cfg.audio_layers, cfg.cross_layers) == (2, 2, 12)
    assert (cfg.motion_len, cfg.audio_len, cfg.motion_dim, cfg.audio_dim) == (120, 240, 225, 35)
    n = sum(p.numel() for p in model.parameters())
    # 16 blocks x 7,483,072 + embeddings 180,800 + 28,800 + positions 288,000 + head 180,225
    assert n == 16 * 7_483_072 + 180_800 + 28_800 + 288_000 + 180_225 == 120_406_977
    assert n == expected_num_parameters(cfg)
    assert round(n / 1e6, 1) == 120.4


def test_block_matches_numpy_mint_conventions():
    model = build_fact("tiny")
    _randomize(model)
    blk = model.cross_transformer.blocks[0]
    x = torch.randn(2, 17, model.config.hidden_size, generator=torch.Generator().manual_seed(1))
    ref = np_block(P(x), blk, model.config.num_heads, model.config.hidden_size ** -0.5)
    np.testing.assert_allclose(P(blk(x)), ref, rtol=1e-4, atol=1e-5)
    # the per-head scale is a different function (so the test above can tell them apart)
    ref_ph = np_block(P(x), blk, model.config.num_heads, (model.config.hidden_size // model.config.num_heads) ** -0.5)
    assert np.abs(ref_ph - ref).max() > 1e-3


@pytest.mark.parametrize("scale_mode", ["mint", "per_head"])
def test_full_forward_matches_numpy(scale_mode):
    model = build_fact("tiny", attention_scale=scale_mode, motion_len=12, audio_len=24)
    _randomize(model, seed=2)
    g = torch.Generator().manual_seed(3)
    motion, audio = torch.randn(2, 12, 225, generator=g), torch.randn(2, 24, 35, generator=g)
    cfg = model.config
    scale = cfg.hidden_size ** -0.5 if scale_mode == "mint" else (cfg.hidden_size // cfg.num_heads) ** -0.5
    out = model(motion, audio)
    assert out.shape == (2, 36, 225)
    np.testing.assert_allclose(P(out), np_fact(model, P(motion), P(audio), scale), rtol=1e-4, atol=1e-4)


def test_paper_initialisation_and_short_forward():
    torch.manual_seed(0)
    model = build_fact("paper", motion_len=4, audio_len=8, target_len=4).requires_grad_(False)
    attn = model.cross_transformer.blocks[0].attn
    lim = math.sqrt(6 / (800 + 2400))                       # Glorot uniform, fan_in 800, fan_out 2400
    w = attn.to_qkv.weight.detach()
    assert attn.to_qkv.bias is None
    assert float(w.abs().max()) <= lim and float(w.abs().max()) > 0.99 * lim
    assert float(w.std()) == pytest.approx(lim / math.sqrt(3), rel=0.01)
    assert float(attn.to_out.bias.abs().max()) == 0.0
    fc1 = model.cross_transformer.blocks[0].mlp.fc1.weight.detach()
    assert float(fc1.abs().max()) <= math.sqrt(6 / (800 + 3072))
    for p in (model.head.weight, model.audio_pos, model.motion_pos):
        assert float(p.abs().max()) <= 0.04                  # truncated at 2 std
    # truncated normal (std 0.02, +-2 std) has std 0.02 * 0.8796
    assert float(model.head.weight.detach().std()) == pytest.approx(0.02 * 0.8796, rel=0.02)
    assert float(model.head.bias.abs().max()) == 0.0
    ln = model.motion_transformer.blocks[1].norm2
    assert ln.eps == 1e-5 and torch.all(ln.weight == 1) and torch.all(ln.bias == 0)
    assert not any(isinstance(m, torch.nn.Dropout) for m in model.modules())
    with torch.no_grad():
        out = model(torch.randn(1, 4, 225), torch.randn(1, 8, 35))
    assert out.shape == (1, 12, 225) and torch.isfinite(out).all()


def test_bad_inputs_raise():
    model = build_fact("tiny")
    with pytest.raises(AistppError, match="motion input"):
        model(torch.zeros(1, 100, 225), torch.zeros(1, 240, 35))
    with pytest.raises(AistppError, match="unknown FACT preset"):
        build_fact("huge")
    with pytest.raises(AistppError):
        FACTConfig(attention_scale="other")
