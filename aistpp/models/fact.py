"""FACT (Li et al. 2021, "AI Choreographer"): the full-attention cross-modal transformer, in PyTorch.

Structure, initialisation and numerics follow google-research/mint (``mint/core/fact_model.py``,
``mint/core/base_models.py``) and its config ``fact_v5_deeper_t10_cm12``::

    motion (B, 120, 225) -> Linear 225->800 -> + position table (120, 800) -> Transformer x2  -> m (B, 120, 800)
    audio  (B, 240,  35) -> Linear  35->800 -> + position table (240, 800) -> Transformer x2  -> a (B, 240, 800)
    [m; a] (B, 360, 800) -> cross-modal Transformer x12 -> Linear 800->225 -> (B, 360, 225)

Only the first ``target_len`` (20) output tokens are supervised in training; generation keeps the first one.

Transformer block (mint ``Residual(Norm(Attention))``, ``Residual(Norm(MLP))``): pre-LayerNorm (eps 1e-5), no
final LayerNorm, no dropout, no mask (full attention). Attention: ``to_qkv`` Linear d->3d without bias whose output
is laid out ``(qkv, head, d_head)`` (einops ``b n (qkv h d)``), logits scaled by ``d_model ** -0.5`` (mint; 800^-0.5,
not the usual per-head ``d_head ** -0.5``: :attr:`FACTConfig.attention_scale` switches), output Linear d->d with
bias. MLP: Linear d->3072, tanh-approximated GELU, Linear 3072->d. Initialisation as Keras: Glorot-uniform
kernels and zero biases, LayerNorm (1, 0); the position tables and the output head use a normal of std 0.02
truncated at 2 std (``TruncatedNormal(0.02)``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from aistpp.errors import AistppError


@dataclass(frozen=True)
class FACTConfig:
    """Hyper-parameters of FACT. Defaults = mint ``fact_v5_deeper_t10_cm12`` (the published model)."""

    motion_dim: int = 225          # FACT motion vector (6 zeros + trans/scaling 3 + 24 row-major rotmats)
    audio_dim: int = 35            # music features
    motion_len: int = 120          # seed frames (2 s at 60 fps)
    audio_len: int = 240           # music frames (4 s)
    target_len: int = 20           # supervised output frames
    hidden_size: int = 800
    num_heads: int = 10
    mlp_size: int = 3072           # proto default intermediate_size
    motion_layers: int = 2
    audio_layers: int = 2
    cross_layers: int = 12
    layer_norm_eps: float = 1e-5
    attention_scale: str = "mint"  # "mint": d_model ** -0.5; "per_head": d_head ** -0.5 (standard transformer)
    init_range: float = 0.02       # std of the truncated normal for position tables and the head

    def __post_init__(self):
        if self.hidden_size % self.num_heads:
            raise AistppError(f"FACTConfig: hidden_size {self.hidden_size} is not a multiple of num_heads "
                              f"{self.num_heads}")
        if self.attention_scale not in ("mint", "per_head"):
            raise AistppError(f"FACTConfig: attention_scale must be 'mint' or 'per_head', got "
                              f"{self.attention_scale!r}")
        if not 0 < self.target_len <= self.motion_len + self.audio_len:
            raise AistppError(f"FACTConfig: target_len {self.target_len} out of range")

    @property
    def scale(self) -> float:
        d = self.hidden_size if self.attention_scale == "mint" else self.hidden_size // self.num_heads
        return d ** -0.5

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FACTConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise AistppError(f"FACTConfig: unknown keys {sorted(unknown)}")
        return cls(**d)


PRESETS: dict[str, FACTConfig] = {
    # mint fact_v5_deeper_t10_cm12: 120,406,977 parameters
    "paper": FACTConfig(),
    # same sequence lengths and data layout, a few hundred thousand parameters: CPU tests, demo, CI
    "tiny": FACTConfig(hidden_size=64, num_heads=4, mlp_size=128, motion_layers=1, audio_layers=1, cross_layers=2),
}


def get_config(preset: "str | FACTConfig | dict", **overrides) -> FACTConfig:
    """A :class:`FACTConfig` from a preset name, a config or a dict, with field overrides."""
    if isinstance(preset, FACTConfig):
        cfg = preset
    elif isinstance(preset, dict):
        cfg = FACTConfig.from_dict(preset)
    elif preset in PRESETS:
        cfg = PRESETS[preset]
    else:
        raise AistppError(f"unknown FACT preset {preset!r}; known: {', '.join(PRESETS)}")
    return dataclasses.replace(cfg, **overrides) if overrides else cfg


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """GELU, tanh approximation (mint ``base_model_util.gelu``)."""
    return F.gelu(x, approximate="tanh")


class Attention(nn.Module):
    """Multi-head self-attention, mint layout. (B, N, D) -> (B, N, D)."""

    def __init__(self, dim: int, heads: int, scale: float):
        super().__init__()
        self.heads = heads
        self.scale = scale
        self.to_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        # einops "b n (qkv h d) -> qkv b h n d"
        qkv = self.to_qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], scale=self.scale)  # (B, H, N, Dh)
        return self.to_out(out.transpose(1, 2).reshape(b, n, d))


class MLP(nn.Module):
    """Linear d->hidden, tanh-GELU, Linear hidden->d."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(gelu_tanh(self.fc1(x)))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, cfg: FACTConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.attn = Attention(cfg.hidden_size, cfg.num_heads, cfg.scale)
        self.norm2 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.mlp = MLP(cfg.hidden_size, cfg.mlp_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Transformer(nn.Module):
    """A stack of :class:`Block`, no final LayerNorm (mint ``base_models.Transformer``)."""

    def __init__(self, cfg: FACTConfig, layers: int):
        super().__init__()
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class FACTModel(nn.Module):
    """FACT. ``forward(motion (B, motion_len, motion_dim), audio (B, audio_len, audio_dim))
    -> (B, motion_len + audio_len, motion_dim)``; the first ``target_len`` frames are the prediction of the
    frames that follow the motion input."""

    def __init__(self, config: FACTConfig | None = None):
        super().__init__()
        cfg = self.config = config or FACTConfig()
        d = cfg.hidden_size
        self.motion_embed = nn.Linear(cfg.motion_dim, d)
        self.motion_pos = nn.Parameter(torch.empty(cfg.motion_len, d))
        self.motion_transformer = Transformer(cfg, cfg.motion_layers)
        self.audio_embed = nn.Linear(cfg.audio_dim, d)
        self.audio_pos = nn.Parameter(torch.empty(cfg.audio_len, d))
        self.audio_transformer = Transformer(cfg, cfg.audio_layers)
        self.cross_transformer = Transformer(cfg, cfg.cross_layers)
        self.head = nn.Linear(d, cfg.motion_dim)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Keras/mint initialisation (see the module docstring)."""
        std = self.config.init_range
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for p in (self.motion_pos, self.audio_pos, self.head.weight):
            nn.init.trunc_normal_(p, std=std, a=-2 * std, b=2 * std)

    def forward(self, motion: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if motion.dim() != 3 or tuple(motion.shape[1:]) != (cfg.motion_len, cfg.motion_dim):
            raise AistppError(f"FACT: motion input must be (B, {cfg.motion_len}, {cfg.motion_dim}), "
                              f"got {tuple(motion.shape)}")
        if audio.dim() != 3 or tuple(audio.shape[1:]) != (cfg.audio_len, cfg.audio_dim):
            raise AistppError(f"FACT: audio input must be (B, {cfg.audio_len}, {cfg.audio_dim}), "
                              f"got {tuple(audio.shape)}")
        m = self.motion_transformer(self.motion_embed(motion) + self.motion_pos)
        a = self.audio_transformer(self.audio_embed(audio) + self.audio_pos)
        return self.head(self.cross_transformer(torch.cat([m, a], dim=1)))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def build_fact(preset: "str | FACTConfig | dict" = "paper", **overrides) -> FACTModel:
    """Build FACT from a preset (``"paper"``, ``"tiny"``), a :class:`FACTConfig` or a dict; keyword arguments
    override config fields (e.g. ``attention_scale="per_head"``)."""
    return FACTModel(get_config(preset, **overrides))


def expected_num_parameters(cfg: FACTConfig) -> int:
    """Closed-form parameter count (used by the tests as an independent check)."""
    d, h = cfg.hidden_size, cfg.mlp_size
    block = 3 * d * d + (d * d + d) + 2 * 2 * d + (d * h + h) + (h * d + d)
    layers = cfg.motion_layers + cfg.audio_layers + cfg.cross_layers
    embed = (cfg.motion_dim * d + d) + (cfg.audio_dim * d + d)
    pos = (cfg.motion_len + cfg.audio_len) * d
    head = d * cfg.motion_dim + cfg.motion_dim
    return layers * block + embed + pos + head


__all__ = ["FACTConfig", "FACTModel", "PRESETS", "build_fact", "get_config", "expected_num_parameters"]
