"""End to end on a corpus of the two official sequences (+ generated music with a beat column): aistpp train ->
generate -> evaluate through the CLI, and the demo's FACT step library function."""

import json

import numpy as np
import pytest

from aistpp.cli import main

BR, JS = "gBR_sBM_cAll_d04_mBR2_ch08", "gJS_sBM_cAll_d03_mJS2_ch07"


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _music(n, period, seed):
    f = np.random.default_rng(seed).normal(size=(n, 35)).astype(np.float32)
    f[:, -1] = 0
    f[::period, -1] = 1
    return f


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, annotations_dir, shared_sequences):
    from aistpp.corpus import CorpusWriter, import_official

    root = tmp_path_factory.mktemp("fact") / "corpus"
    import_official(annotations_dir, root, sequences=shared_sequences)
    with CorpusWriter(root) as w:
        w.add_music("mBR2", _music(700, 30, 0), config={"generated": "test"})
        w.add_music("mJS2", _music(700, 32, 1), config={"generated": "test"})
    return root


def test_train_generate_evaluate_cli(corpus, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--corpus", str(corpus), "--split", str(_names(tmp_path)),
                 "--preset", "tiny", "--out", str(run), "--steps", "3", "--batch-size", "2",
                 "--checkpoint-every", "2", "--log-every", "1"]) == 0
    assert (run / "checkpoints" / "step_000000003.pt").is_file()
    assert main(["train", "--corpus", str(corpus), "--split", str(_names(tmp_path)), "--preset", "tiny",
                 "--out", str(run), "--steps", "4", "--batch-size", "2", "--resume"]) == 0
    log_rows = (run / "log.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in log_rows[1:]] == ["1", "2", "3", "4"]
    # a different preset cannot resume this run
    assert main(["train", "--corpus", str(corpus), "--preset", "paper", "--out", str(run), "--resume"]) == 2
    mint_run = tmp_path / "mint_run"
    assert main(["train", "--corpus", str(corpus), "--split", str(_names(tmp_path)), "--preset", "tiny",
                 "--out", str(mint_run), "--steps", "2", "--batch-size", "2", "--sampling", "mint"]) == 0
    info = json.loads((mint_run / "config.json").read_text())["dataset"]
    assert info["window_config"]["sampling"] == "mint" and info["windows"] == 2  # one window per sequence

    gen = tmp_path / "gen"
    assert main(["generate", "--checkpoint", str(run), "--seed-motion", BR, JS, "--corpus", str(corpus),
                 "--frames", "40", "--out", str(gen)]) == 0
    for seq, music in ((BR, "mBR2"), (JS, "mJS2")):
        meta = json.loads((gen / f"{seq}_{music}.json").read_text())
        assert meta["generated_frames"] == 40 and meta["step"] == 4
        assert meta["music_beats"][:2] == ([0, 30] if music == "mBR2" else [0, 32])
        assert np.load(gen / f"{seq}_{music}.npy").shape == (160, 225)

    capsys.readouterr()
    assert main(["evaluate", "--generated", str(gen), "--corpus", str(corpus), "--profile", "fact",
                 "--test-split", str(_names(tmp_path)), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["config"]["accel_bug"] is True and res["config"]["reference"] == "all"
    assert res["generated"]["n"] == 2 and res["ground_truth"]["n"] == 2
    # ground truth scored against itself (test set = reference pool): FID 0 up to sqrtm rounding
    assert abs(res["ground_truth"]["FID_k"]) < 1e-6 * 72 and abs(res["ground_truth"]["FID_g"]) < 1e-6 * 32
    assert np.isfinite(res["generated"]["FID_k"]) and 0 <= res["generated"]["BeatAlign"] <= 1
    assert 0 <= res["ground_truth"]["BeatAlign"] <= 1
    assert (gen / "metrics.json").is_file()
    # switches override the profile and are recorded
    assert main(["evaluate", "--generated", str(gen), "--corpus", str(corpus), "--profile", "fact",
                 "--no-accel-bug", "--crop", "30", "--gt-crop", "400", "--beat-align", "bailando", "--test-split",
                 "all", "--out", str(tmp_path / "m.json")]) == 0
    cfg = json.loads((tmp_path / "m.json").read_text())["config"]
    assert cfg["accel_bug"] is False and cfg["crop"] == 30 and cfg["beat_align"] == "bailando"
    assert cfg["gt_crop"] == 400


def test_ground_truth_as_generated_scores_like_ground_truth(corpus, tmp_path):
    """Ground-truth motions written as 'generated' files (seed 0) score exactly like the ground-truth row: the
    encode -> npy -> decode -> joints path and the beat bookkeeping agree with the direct corpus path."""
    from aistpp.corpus import Corpus
    from aistpp.data.motion import encode_motion
    from aistpp.models.metrics import EvalConfig, evaluate

    c = Corpus(corpus)
    gen = tmp_path / "gt_as_gen"
    gen.mkdir()
    for seq, music in ((BR, "mBR2"), (JS, "mJS2")):
        d = c.read(seq, ("smpl/poses", "smpl/trans", "smpl/scaling"))
        np.save(gen / f"{seq}_{music}.npy", encode_motion(d["smpl/poses"], d["smpl/trans"], d["smpl/scaling"]).numpy())
        beats = np.flatnonzero(c.music(music)[:len(d["smpl/poses"]), -1] > 0.5)  # as generate writes them
        (gen / f"{seq}_{music}.json").write_text(json.dumps({"seed_frames": 0, "music_id": music,
                                                             "music_beats": beats.tolist()}))
    for profile in ("fact", "bailando"):
        cfg = EvalConfig.preset(profile, test_split=str(_names(tmp_path)), crop=300, gt_crop=300)
        res = evaluate(gen, c, None, cfg)
        g, t = res["generated"], res["ground_truth"]
        for key in ("Dist_k", "Dist_g", "BeatAlign"):
            assert g[key] == pytest.approx(t[key], rel=1e-4, abs=1e-6), (profile, key)
        assert abs(g["FID_k"]) < 1e-3 and abs(g["FID_g"]) < 1e-3
        assert 0 < t["BeatAlign"] < 1 and res["notes"]


def _names(tmp_path):
    p = tmp_path / "names.txt"
    p.write_text(f"{BR}\n{JS}\n")
    return p


def test_demo_step(corpus, tmp_path):
    from aistpp.models.demo import demo_step

    s = demo_step(corpus, tmp_path / "demo", steps=3, frames=20)
    assert s["train"]["steps"] == 3 and len(s["generated"]) == 2
    assert s["metrics"]["generated"]["n"] == 2
    assert (tmp_path / "demo" / "metrics.json").is_file()
    assert s["metrics"]["generated"]["n"] == 2 and np.isfinite(s["metrics"]["generated"]["FID_k"])


def test_demo_fact_step(corpus, tmp_path):
    from types import SimpleNamespace

    from aistpp.demo import step_fact

    ctx = SimpleNamespace(corpus=corpus, out=tmp_path, music=None, config=SimpleNamespace(seed=1), results={})
    step = step_fact(ctx)
    assert step.title.startswith("FACT") and "ground_truth" in "\n".join(step.lines)
    assert ctx.results["fact"]["train"]["steps"] == 20


def test_ground_truth_split_union(corpus):
    """'a+b' test splits (the fact profile's crossmodal_val+crossmodal_test) select the union, in order."""
    from aistpp.corpus import Corpus
    from aistpp.models.metrics import _select

    c = Corpus(corpus)
    assert _select(c, "crossmodal_val+crossmodal_test", True) == []
    assert _select(c, "crossmodal_test+crossmodal_train", True) == [BR, JS]
    assert _select(c, "pose_test+crossmodal_train", True) == [JS, BR]  # d03 is a pose-test dancer
