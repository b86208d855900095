"""``aistpp demo``: the generated sample is AIST++-shaped and on the beat, the reconstruction recovers the truth,
and later stages can append steps."""

import numpy as np
import pytest

from aistpp.demo import STEPS, DemoConfig, DemoContext, DemoStep, add_step, beat_track, dance_motion, run_demo


def test_beat_track_clicks_on_the_beat():
    sr, bpm = 22050, 90
    y = beat_track(4.0, bpm, sr)
    loud = np.abs(y) > 0.2
    onsets = np.flatnonzero(loud & ~np.concatenate([[False], loud[:-1]]))
    onsets = onsets[np.concatenate([[True], np.diff(onsets) > 0.2 * sr])] / sr  # first sample of each click
    np.testing.assert_allclose(onsets, np.arange(len(onsets)) * 60.0 / bpm, atol=2e-3)
    assert len(onsets) == 6


def test_dance_moves_on_the_beat():
    bpm = 100
    m = dance_motion(600, bpm, seed=1)
    knee = m["smpl_poses"][:, 4 * 3]  # left knee flexion (x axis-angle)
    spec = np.abs(np.fft.rfft(knee - knee.mean()))
    freqs = np.fft.rfftfreq(len(knee), 1 / 60)
    assert freqs[np.argmax(spec)] == pytest.approx(bpm / 60, abs=0.1)  # one bounce per beat
    assert m["smpl_poses"].shape == (600, 72) and m["smpl_trans"].shape == (600, 3)


def test_demo_end_to_end(tmp_path):
    from aistpp.io.annotations import AnnotationTree

    from test_pipeline import fast_fit

    seen = []

    def extra(ctx):
        seen.append(ctx.corpus)
        return DemoStep("extra", ["ok"])

    saved = list(STEPS)
    assert [n for n, _ in saved][:4] == ["generate", "reconstruct", "compare", "verify"]
    # the later stages' steps (FACT...) are tested by their owners; here the main job plus an appended step
    STEPS[:] = saved[:4]
    add_step("extra-test-step", extra)
    try:
        cfg = DemoConfig(out=str(tmp_path / "demo"), sequences=2, frames=90,
                         fit=fast_fit())
        ctx = DemoContext(cfg, tmp_path / "demo")
        steps = list(run_demo(cfg, ctx))
    finally:
        STEPS[:] = saved
    assert [s.title for s in steps][-1] == "extra" and seen == [ctx.corpus]
    # the sample is an official annotation tree; the second sequence lost a whole view
    tree = AnnotationTree.open(ctx.sample)
    kp = tree.read("keypoints2d", ctx.sequences[1])["keypoints2d"]
    assert kp.shape == (9, 90, 17, 3) and np.isnan(kp[4]).all() and np.isfinite(kp[0]).mean() > 0.8
    assert sorted(p.name for p in ctx.music.glob("*.wav")) == ["mBR0.wav", "mPO1.wav"]
    # reconstruction against the truth: robust beats plain DLT (outliers), the fit follows the keypoints
    for seq, row in ctx.results["mpjpe_cm"].items():
        assert row["robust"] < 0.5 * row["dlt"], row
        assert row["optim"] < 2.0 and row["smpl"] < 3.0, row
    assert ctx.results["verify_ok"]
    assert not ctx.results["reconstruct"].failed


def test_demo_twice_in_one_folder_and_another_seed_there(tmp_path):
    """A second run in the same folder resumes every step (the FACT training had finished: no crash), and another
    seed in that folder starts afresh instead of comparing the new truth with the old results."""
    from test_pipeline import fast_fit

    out = tmp_path / "demo"
    first = DemoContext(DemoConfig(out=str(out), sequences=2, frames=60, fit=fast_fit()), out)
    lines1 = [s for s in run_demo(first.config, first)]
    again = DemoContext(first.config, out)
    lines2 = [s for s in run_demo(again.config, again)]
    assert [s.title for s in lines2] == [s.title for s in lines1]
    assert sorted(again.results["reconstruct"].skipped) == sorted(again.sequences)  # nothing redone
    assert again.results["mpjpe_cm"] == first.results["mpjpe_cm"]
    fact_line = next(s for s in lines2 if s.title.startswith("FACT")).lines[0]
    assert "already trained 20 steps" in fact_line
    # another seed in the old folder: a new sample, reconstructed afresh (not compared with the old corpus)
    saved = list(STEPS)
    STEPS[:] = saved[:3]
    try:
        other = DemoContext(DemoConfig(out=str(out), sequences=2, frames=60, fit=fast_fit(), seed=1), out)
        list(run_demo(other.config, other))
    finally:
        STEPS[:] = saved
    assert sorted(other.results["reconstruct"].done) == sorted(other.sequences)
    assert not (out / "fact").exists()  # the old FACT run (trained on the old sample) is gone
    for row in other.results["mpjpe_cm"].values():
        assert row["optim"] < 2.0 and row["smpl"] < 3.0, row
