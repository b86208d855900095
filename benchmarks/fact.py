"""FACT speed: training steps/s and samples/s, autoregressive generation frames/s, metric extraction.

    python benchmarks/fact.py                 # CPU: tiny and paper presets (paper: a few steps only)
    python benchmarks/fact.py --device cuda   # GPU: paper preset, batch 32, AMP vs fp32

Baselines run in the same process: attention computed with explicit einsum + softmax as mint writes it
(vs PyTorch's fused scaled_dot_product_attention), fp32 (vs AMP) on GPU, and the published per-frame loops of the
kinetic / geometric feature extractors (vs the vectorized ones in aistpp.models.metrics).
"""

from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np
import torch

from aistpp.models.fact import Attention, build_fact


def einsum_attention(self, x):
    """mint's attention, written out (the baseline)."""
    b, n, d = x.shape
    qkv = self.to_qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
    dots = torch.einsum("bhid,bhjd->bhij", qkv[0], qkv[1]) * self.scale
    out = torch.einsum("bhij,bhjd->bhid", dots.softmax(-1), qkv[2])
    return self.to_out(out.transpose(1, 2).reshape(b, n, d))


@contextlib.contextmanager
def attention_impl(kind):
    saved = Attention.forward
    if kind == "einsum":
        Attention.forward = einsum_attention
    try:
        yield
    finally:
        Attention.forward = saved


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_train(preset, batch, steps, device, amp_dtype=None, warmup=1):
    torch.manual_seed(0)
    model = build_fact(preset).to(device)
    cfg = model.config
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, eps=1e-7)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    m = torch.randn(batch, cfg.motion_len, cfg.motion_dim, device=device)
    a = torch.randn(batch, cfg.audio_len, cfg.audio_dim, device=device)
    t = torch.randn(batch, cfg.target_len, cfg.motion_dim, device=device)

    def step():
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            pred = model(m, a)
        loss = ((t - pred[:, :cfg.target_len].float()) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    for _ in range(warmup):
        step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    dt = (time.perf_counter() - t0) / steps
    del model, opt
    return 1 / dt, batch / dt


@torch.no_grad()
def bench_generate(preset, batch, frames, device, amp_dtype=None):
    torch.manual_seed(0)
    model = build_fact(preset).to(device).eval()
    cfg = model.config
    window = torch.randn(batch, cfg.motion_len, cfg.motion_dim, device=device)
    audio = torch.randn(batch, cfg.audio_len + frames, cfg.audio_dim, device=device)

    def run(n):
        w = window
        for i in range(n):
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                f = model(w, audio[:, i:i + cfg.audio_len])[:, :1].float()
            w = torch.cat([w[:, 1:], f], 1)
        return w

    run(1)
    sync(device)
    t0 = time.perf_counter()
    run(frames)
    sync(device)
    dt = time.perf_counter() - t0
    return frames / dt, batch * frames / dt


def bench_metrics():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_metrics import _dance, _ref_geometric, _ref_kinetic  # the published loops, transcribed

    from aistpp.models import metrics as M

    pos = _dance(1200, seed=0)
    out = []
    for name, fast, slow in (("kinetic", lambda: M.kinetic_features(pos), lambda: _ref_kinetic(pos, False)),
                             ("geometric", lambda: M.geometric_features(pos),
                              lambda: _ref_geometric(pos, M.body_constants("fixed")))):
        t0 = time.perf_counter()
        fast()
        t1 = time.perf_counter()
        slow()
        t2 = time.perf_counter()
        out.append((name, t1 - t0, t2 - t1))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip-paper", action="store_true")
    ap.add_argument("--skip-metrics", action="store_true")
    ap.add_argument("--gpu-plan", action="store_true",
                    help="run the GPU plan (batch 32, AMP vs fp32) on any device (smoke test with --preset tiny)")
    ap.add_argument("--preset", default="paper", help="preset of the GPU plan (default paper)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads (on a shared, busy CPU 1 can be much faster than 2)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else
             f", {torch.get_num_threads()} threads"))
    if device.type == "cpu" and not args.gpu_plan:
        plans = [("tiny", 8, 10, 60)]
        if not args.skip_paper:
            plans.append(("paper", 2, 2, 3))
        for preset, batch, steps, frames in plans:
            res = {}
            for impl in ("einsum", "sdpa"):
                with attention_impl(impl):
                    res[impl] = bench_train(preset, batch, steps, device)
            print(f"train {preset:5s} batch {batch:2d}: {res['sdpa'][0]:8.3f} steps/s {res['sdpa'][1]:8.2f} samples/s"
                  f"  (einsum attention baseline {res['einsum'][0]:.3f} steps/s; ratio "
                  f"{res['sdpa'][0] / res['einsum'][0]:.2f}x)")
            fps, _ = bench_generate(preset, 1, frames, device)
            print(f"generate {preset:5s} batch  1: {fps:8.2f} frames/s  ({1200 / fps:.0f} s for a 1200-frame dance)")
    else:
        for preset, batch, steps in ((args.preset, 32, 10),):
            fp32 = bench_train(preset, batch, steps, device)
            for name, dt in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
                amp = bench_train(preset, batch, steps, device, dt)
                print(f"train {preset} batch {batch} AMP {name}: {amp[0]:.2f} steps/s {amp[1]:.1f} samples/s "
                      f"(fp32 baseline {fp32[1]:.1f} samples/s; ratio {amp[1] / fp32[1]:.2f}x)")
            with attention_impl("einsum"):
                ein = bench_train(preset, batch, steps, device, torch.bfloat16)
            amp = bench_train(preset, batch, steps, device, torch.bfloat16)
            print(f"train {preset} batch {batch} bf16: SDPA {amp[1]:.1f} vs einsum attention {ein[1]:.1f} samples/s "
                  f"(ratio {amp[1] / ein[1]:.2f}x)")
            for b in (1, 20):
                f32 = bench_generate(preset, b, 100, device)
                bf = bench_generate(preset, b, 100, device, torch.bfloat16)
                print(f"generate {preset} batch {b:2d}: bf16 {bf[1]:.1f} frames/s, fp32 {f32[1]:.1f} frames/s "
                      f"(ratio {bf[1] / f32[1]:.2f}x; 1200 frames x {b} dances in {1200 / bf[0]:.0f} s)")
            tiny = bench_train("tiny", 32, 20, device)
            print(f"train tiny batch 32 fp32: {tiny[0]:.1f} steps/s {tiny[1]:.0f} samples/s")
    if not args.skip_metrics:
        for name, fast, slow in bench_metrics():
            print(f"{name} features, 1200 frames: vectorized {fast * 1e3:.1f} ms vs published loop "
                  f"{slow * 1e3:.0f} ms ({slow / fast:.0f}x)")


if __name__ == "__main__":
    main()
