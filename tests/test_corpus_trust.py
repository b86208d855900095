"""A corpus that can be trusted: verify reports failed sequences, names are checked at every boundary, the
manifest cannot point outside the corpus, readers can check checksums and survive compaction."""

import json

import numpy as np
import pytest

from aistpp.corpus import Corpus, CorpusWriter, verify_corpus
from aistpp.errors import AistppError

SEQ_A, SEQ_B, SEQ_C = "gBR_sBM_cAll_d04_mBR0_ch01", "gBR_sBM_cAll_d04_mBR1_ch02", "gPO_sBM_cAll_d10_mPO0_ch01"


def _arrays(n=30, seed=0):
    rng = np.random.default_rng(seed)
    return {"keypoints3d": rng.normal(size=(n, 17, 3)), "smpl_poses": rng.normal(size=(n, 72)).astype(np.float32),
            "smpl_trans": rng.normal(size=(n, 3)).astype(np.float32), "smpl_scaling": np.array([93.0], np.float32)}


def test_verify_exits_nonzero_when_requested_sequences_failed(tmp_path, capsys):
    from aistpp.cli import main

    root = tmp_path / "c"
    with CorpusWriter(root) as w:
        w.add_failure(SEQ_A, "keypoints2d file missing")
        w.add_failure(SEQ_B, "only 1 view(s) have any detection")
    assert main(["verify", str(root)]) == 1  # every sequence failed: not OK
    out = capsys.readouterr().out
    assert f"FAILED {SEQ_A}: keypoints2d file missing" in out and "OK" not in out
    assert main(["verify", str(root), "--allow-failed"]) == 0  # explicitly accepted: still listed
    assert f"FAILED {SEQ_B}" in capsys.readouterr().out
    with CorpusWriter(root) as w:
        w.add_sequence(SEQ_C, _arrays())
    assert main(["verify", str(root), "--sequences", SEQ_C]) == 0  # the requested one is fine
    capsys.readouterr()
    assert main(["verify", str(root), "--sequences", SEQ_C, SEQ_A, "--json"]) == 1
    rep = json.loads(capsys.readouterr().out)
    assert rep["intact"] and not rep["ok"] and rep["failed_sequences"] == {SEQ_A: "keypoints2d file missing"}
    r = verify_corpus(root, sequences=[SEQ_C, "gJS_sFM_cAll_d01_mJS3_ch04"])
    assert r.intact and not r.ok and r.failed_sequences == {"gJS_sFM_cAll_d01_mJS3_ch04": "not in the corpus"}
