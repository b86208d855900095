"""``aistpp demo``: the generated sample is AIST++-shaped and on the beat, the reconstruction recovers the truth,
and later stages can append steps."""

import sys

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


def test_demo_end_to_end(tmp_path, monkeypatch):
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
    for heavy in ("ray", "mediapipe", "onnxruntime", "jax", "aniposelib"):  # not in the demo install
        monkeypatch.setitem(sys.modules, heavy, None)  # importing it now raises ImportError
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
    # only the view the sample dropped on purpose is missing: the first sequence keeps camera c05 (its name is
    # no real sequence of KNOWN_BAD_VIEWS, whose views the pipeline blanks), the second lost exactly c05
    from aistpp.corpus import Corpus

    c = Corpus(ctx.corpus)
    for seq, missing in zip(ctx.sequences, ([], [4])):
        used = np.bitwise_or.reduce(c.read(seq, ("views_used",))["views_used"].ravel().astype(int))
        assert [v for v in range(9) if not used >> v & 1] == missing, seq
    c.close()


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


def test_demo_names_are_not_known_bad_recordings():
    from aistpp.demo import DEMO_SEQUENCES
    from aistpp.naming import parse_name
    from aistpp.triangulate import KNOWN_BAD_VIEWS

    assert not set(DEMO_SEQUENCES) & set(KNOWN_BAD_VIEWS)
    assert all(parse_name(s).sequence == s for s in DEMO_SEQUENCES)


def test_known_bad_views_are_blanked_and_logged_by_camera_name(annotations_dir, tmp_path, caplog):
    import logging

    from aistpp.pipeline import PipelineConfig, SequenceTask, run_sequence

    from test_pipeline import make_tree, shared_kp2d

    seq = "gBR_sBM_cAll_d04_mBR0_ch01"  # the official pipeline dropped c05 (not synchronized)
    root = make_tree(annotations_dir, tmp_path / "tree", {seq: shared_kp2d(annotations_dir, slice(0, 30))})
    with caplog.at_level(logging.INFO, logger="aistpp.pipeline"):
        res = run_sequence(SequenceTask(seq, str(root), PipelineConfig(stages=())))
    assert res.status != "failed", res.reason
    assert any("c05" in r.getMessage() and "KNOWN_BAD_VIEWS" in r.getMessage() for r in caplog.records)


def _pool(n, seed=0, flat_kinetic=0):
    rng = np.random.default_rng(seed)
    pool = [{"kinetic": rng.normal(size=72), "geometric": rng.normal(size=32)} for _ in range(n)]
    for f in pool:
        f["kinetic"][:flat_kinetic] = 5.0  # the same value in every motion
    return pool


SCORES = {"FID_k": 1.5, "FID_g": 2.5, "Dist_k": 9.0, "Dist_g": 6.0, "BeatAlign": 0.3, "n": 4}


def test_pool_verdicts_keep_what_the_pool_can_give():
    from aistpp.models.demo import pool_verdicts

    big = pool_verdicts(SCORES, _pool(80))
    assert {k: v for k, (v, why) in big.items()} == {k: SCORES[k] for k in big}  # all computable, values kept
    assert all(why is None for _, why in big.values())
    mid = pool_verdicts(SCORES, _pool(40))  # 40 motions: enough for the 32 geometric features, not the 72 kinetic
    assert mid["FID_g"] == (2.5, None) and mid["FID_k"][0] is None and "more than 72" in mid["FID_k"][1]
    assert mid["Dist_k"] == (9.0, None)
    two = pool_verdicts(SCORES, _pool(2))
    assert [k for k, (v, _) in two.items() if v is not None] == ["BeatAlign"]
    flat = pool_verdicts(SCORES, _pool(80, flat_kinetic=3))
    assert flat["Dist_k"] == (None, "3 of 72 kinetic features are constant over the pool")
    assert flat["Dist_g"] == (6.0, None) and flat["FID_k"] == (1.5, None)
    itself = pool_verdicts(SCORES, _pool(80), against_itself=True)
    assert itself["FID_k"][0] is None and "by construction" in itself["FID_k"][1]
    assert pool_verdicts(dict(SCORES, BeatAlign=float("nan")), _pool(80))["BeatAlign"][0] is None


def test_demo_fact_lines_print_only_computable_metrics(monkeypatch, tmp_path):
    """The demo's FACT step prints the numbers its pool can give and names the others once with the reason: no
    NaN, no 1e19, no FID of a set against itself."""
    from types import SimpleNamespace

    import aistpp.models.demo as mdemo
    from aistpp.demo import step_fact
    from aistpp.models.demo import pool_verdicts

    noisy = {"FID_k": -1e-4, "FID_g": 1.13e19, "Dist_k": 16.97, "Dist_g": 8.47e8, "BeatAlign": 0.23, "n": 2}
    fake = {"train": {"steps": 20, "windows": 2, "first_loss": 0.4, "last_loss": 0.01},
            "seconds": {"train": 1.0, "generate": 1.0}, "generated": ["a", "b"], "out": str(tmp_path),
            "stand_in_body": True,
            "verdicts": {"ground_truth": pool_verdicts(noisy, _pool(2), against_itself=True),
                         "generated": pool_verdicts(dict(noisy, BeatAlign=float("nan")), _pool(2))}}
    monkeypatch.setattr(mdemo, "demo_step", lambda *a, **k: fake)
    ctx = SimpleNamespace(corpus=None, out=tmp_path, music=None, config=SimpleNamespace(seed=0), results={})
    text = "\n".join(step_fact(ctx).lines)
    assert "ground_truth: BeatAlign 0.230 (FACT protocol)" in text
    assert "generated: nothing computable" in text
    for noise in ("nan", "e+19", "e+08", "-0.000", "16.97"):
        assert noise not in text.lower(), (noise, text)
    assert "by construction" in text and "needs >= 3 motions" in text and "no music beats" in text
