"""aistpp.models.train / generate on the tiny preset: overfitting one batch of real AIST++ motion, bit-exact
resume, the learning-rate schedule, and autoregressive generation (window sliding checked against a manual
loop; SVD snapping; official-format output)."""

import csv
import json

import numpy as np
import pytest
import torch

from aistpp.errors import AistppError
from aistpp.models.fact import build_fact
from aistpp.models.train import TrainConfig, epoch_batches, load_checkpoint, model_from_checkpoint, train

SEQ = "gBR_sBM_cAll_d04_mBR2_ch08"


pytestmark = pytest.mark.usefixtures("torch_one_thread")


class Windows(torch.utils.data.Dataset):
    """FACT windows (motion 120, audio 240, target 20) of one encoded sequence, fixed random music."""

    def __init__(self, motion, starts, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.items = [{"motion": motion[s:s + 120], "audio": torch.randn(240, 35, generator=g),
                       "target": motion[s + 120:s + 140]} for s in starts]
        self.epochs = []

    def set_epoch(self, epoch):
        self.epochs.append(epoch)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


@pytest.fixture(scope="module")
def real_motion(annotations_dir):
    from aistpp.data.motion import encode_motion
    from aistpp.io.annotations import read_motion

    m = read_motion(annotations_dir / "motions" / f"{SEQ}.pkl")
    return encode_motion(m["smpl_poses"], m["smpl_trans"], m["smpl_scaling"])  # (576, 225)


def test_lr_schedule_and_epoch_order():
    cfg = TrainConfig()
    assert cfg.adam_eps == 1e-7 and cfg.batch_size == 32
    assert [cfg.lr_at(s) for s in (0, 99_999, 100_000, 149_999, 150_000, 10**6)] == [1e-4, 1e-4, 1e-5, 1e-5,
                                                                                      1e-6, 1e-6]
    a, b = epoch_batches(10, 3, seed=1, epoch=0), epoch_batches(10, 3, seed=1, epoch=1)
    assert len(a) == 3 and all(len(x) == 3 for x in a)
    assert len(set(sum(a, []))) == 9 and a != b and a == epoch_batches(10, 3, seed=1, epoch=0)


def test_tiny_overfits_one_batch(real_motion, tmp_path):
    torch.manual_seed(0)
    model = build_fact("tiny")
    data = Windows(real_motion, [0, 200])
    cfg = TrainConfig(steps=80, batch_size=2, learning_rate=3e-3, lr_schedule=(), log_every=1,
                      checkpoint_every=1000, tensorboard=False)
    result = train(model, data, cfg, tmp_path / "run", progress=False)
    losses = [l for _, l in result.losses]
    assert len(losses) == 80
    assert losses[0] / min(losses[-5:]) > 100, (losses[0], losses[-5:])
    # the loss is the MSE on the first 20 output frames: recompute it from the trained model
    model.eval()
    with torch.no_grad():
        b = torch.utils.data.default_collate(data.items)
        mse = torch.mean((model(b["motion"], b["audio"])[:, :20] - b["target"]) ** 2).item()
    assert mse < losses[0] / 50
    rows = list(csv.DictReader(open(tmp_path / "run" / "log.csv")))
    assert len(rows) == 80 and float(rows[0]["loss"]) == pytest.approx(losses[0], rel=1e-5)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train_config"]["adam_eps"] == 1e-7


def test_resume_is_bit_exact(real_motion, tmp_path):
    data = Windows(real_motion, [0, 50, 100, 150, 200, 250, 300])   # 3 batches of 2 per epoch: epochs cross
    k = 4
    cfg = TrainConfig(steps=2 * k, batch_size=2, learning_rate=1e-3, lr_schedule=((k + 1, 5e-4),),
                      checkpoint_every=k, keep_checkpoints=0, log_every=1, tensorboard=False)
    torch.manual_seed(0)
    straight = train(build_fact("tiny"), data, cfg, tmp_path / "a", progress=False)
    # interrupted run: stop after k steps, then resume in a model built from different random weights
    torch.manual_seed(0)
    first = train(build_fact("tiny"), data, TrainConfig(**{**cfg.to_dict(), "steps": k}), tmp_path / "b",
                  progress=False)
    assert first.step == k
    with pytest.raises(AistppError, match="--resume"):
        train(build_fact("tiny"), data, cfg, tmp_path / "b", progress=False)
    torch.manual_seed(123)
    resumed = train(build_fact("tiny"), data, cfg, tmp_path / "b", resume=True, progress=False)
    assert resumed.step == 2 * k
    a = load_checkpoint(tmp_path / "a")
    b = load_checkpoint(tmp_path / "b")
    assert a["step"] == b["step"] == 2 * k and a["data_position"] == b["data_position"] == 2 * k
    for name, t in a["model"].items():
        assert torch.equal(t, b["model"][name]), name
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"]) and torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])
    assert [l for _, l in straight.losses][k:] == [l for _, l in resumed.losses]
    # the log of the resumed run has every step once
    steps = [int(r["step"]) for r in csv.DictReader(open(tmp_path / "b" / "log.csv"))]
    assert steps == list(range(1, 2 * k + 1))


def test_generation_slides_windows(tmp_path):
    from aistpp.models.generate import generate_motion, snap_rotations

    torch.manual_seed(0)
    model = build_fact("tiny", motion_len=6, audio_len=10, target_len=2).eval()
    g = torch.Generator().manual_seed(0)
    seed = torch.randn(6, 225, generator=g)
    audio = torch.randn(14, 35, generator=g)
    out = generate_motion(model, seed, audio, frames=8)
    assert out.shape == (6 + 5, 225)          # music allows 14 - 10 + 1 = 5 steps
    # manual mint loop
    window, frames = seed[None], []
    with torch.no_grad():
        for i in range(5):
            f = model(window, audio[None, i:i + 10])[:, :1]
            frames.append(f)
            window = torch.cat([window[:, 1:], f], 1)
    expect = snap_rotations(torch.cat([seed[None]] + frames, 1))[0].numpy()
    np.testing.assert_allclose(out, expect, rtol=1e-5, atol=1e-5)
    rot = out[:, 9:].reshape(-1, 24, 3, 3).astype(np.float64)
    np.testing.assert_allclose(rot @ np.swapaxes(rot, -1, -2), np.broadcast_to(np.eye(3), rot.shape), atol=1e-5)
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-5)


def test_generate_to_dir_writes_official_motion(real_motion, annotations_dir, tmp_path):
    from aistpp.io.annotations import read_motion
    from aistpp.models.generate import generate_to_dir

    torch.manual_seed(0)
    model = build_fact("tiny")
    feats = np.random.default_rng(0).normal(size=(240 + 29, 35)).astype(np.float32)
    feats[:, -1] = 0
    feats[::20, -1] = 1                                      # a beat every 20 frames
    np.save(tmp_path / "mBR2.npy", feats)
    rec = generate_to_dir(None, str(annotations_dir / "motions" / f"{SEQ}.pkl"), str(tmp_path / "mBR2.npy"),
                          tmp_path / "gen", model=model)
    assert rec["generated_frames"] == 30 and rec["seed_frames"] == 120
    assert rec["music_beats"] == list(range(0, 150, 20))
    npy = np.load(rec["paths"]["npy"])
    assert npy.shape == (150, 225)
    m = read_motion(rec["paths"]["pkl"])
    assert m["smpl_poses"].shape == (150, 72) and m["smpl_trans"].shape == (150, 3)
    orig = read_motion(annotations_dir / "motions" / f"{SEQ}.pkl")
    # the seed frames round-trip: same poses (as rotations) and translations in cm
    np.testing.assert_allclose(m["smpl_trans"][:120], orig["smpl_trans"][:120], rtol=1e-4, atol=1e-2)
    from scipy.spatial.transform import Rotation as R
    ra = R.from_rotvec(m["smpl_poses"][:120].reshape(-1, 3).astype(np.float64)).as_matrix()
    rb = R.from_rotvec(orig["smpl_poses"][:120].reshape(-1, 3).astype(np.float64)).as_matrix()
    np.testing.assert_allclose(ra, rb, atol=1e-4)


def test_model_from_checkpoint_roundtrip(tmp_path, real_motion):
    torch.manual_seed(0)
    model = build_fact("tiny")
    data = Windows(real_motion, [0, 100])
    train(model, data, TrainConfig(steps=2, batch_size=2, tensorboard=False), tmp_path / "r", progress=False)
    loaded, ckpt = model_from_checkpoint(tmp_path / "r")
    assert ckpt["step"] == 2
    for (n, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a.cpu(), b), n
