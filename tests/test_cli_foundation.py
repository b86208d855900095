"""The CLI front end: help texts, split/info on the shared tree, one-line errors with non-zero exit."""

import subprocess
import sys

import pytest

from aistpp.cli import build_parser, main
from aistpp.io.annotations import read_name_list


def run(*args):
    return subprocess.run([sys.executable, "-m", "aistpp", *args], capture_output=True, text=True)


def test_help_for_every_verb(capsys):
    parser = build_parser()
    verbs = parser._subparsers._group_actions[0].choices
    assert {"split", "info"} <= set(verbs)
    for verb, sub in verbs.items():
        text = sub.format_help()
        assert sub.description or sub.format_usage(), verb
        assert "usage: aistpp " + verb in text
    r = run("--help")
    assert r.returncode == 0 and "split" in r.stdout and "info" in r.stdout


def test_split_prints_official_test_names(annotations_dir, capsys):
    assert main(["split", "--annotations", str(annotations_dir), "--kind", "crossmodal", "--subset", "test",
                 "--keep-ignored"]) == 0
    out = capsys.readouterr().out.split()
    assert out == read_name_list(annotations_dir / "splits" / "crossmodal_test.txt")


def test_split_genre_selection_to_file(annotations_dir, tmp_path):
    out = tmp_path / "train.txt"
    assert main(["split", "--annotations", str(annotations_dir), "--kind", "crossmodal", "--subset", "train",
                 "--genre", "gBR,gPO", "--out", str(out)]) == 0
    names = read_name_list(out)
    assert names and {n[:3] for n in names} == {"gBR", "gPO"}


def test_split_check_reports_leakage(annotations_dir, capsys):
    assert main(["split", "--annotations", str(annotations_dir), "--holdout-genre", "gKR", "--check"]) == 0
    assert "no leakage" in capsys.readouterr().out
    assert main(["split", "--annotations", str(annotations_dir), "--kind", "pose", "--check"]) == 1
    out = capsys.readouterr().out
    assert "musics in both" in out and "dancers in both" not in out  # pose split: unseen dancers, shared music
    assert main(["split", "--annotations", str(annotations_dir), "--kind", "crossmodal", "--check"]) == 1
    assert "dancers in both" in capsys.readouterr().out


def test_info_on_tree(annotations_dir, capsys):
    assert main(["info", str(annotations_dir)]) == 0
    out = capsys.readouterr().out
    assert "sequences in mapping.txt: 1408" in out and "keypoints2d: 2 files, 1152 frames" in out


@pytest.mark.parametrize("args,msg", [
    (["split", "--annotations", "{ann}", "--genre", "gXX"], "unknown genre 'gXX'"),
    (["split", "--annotations", "/nonexistent/dir"], "annotation directory not found"),
    (["info", "/nonexistent/dir"], "no such file or directory"),
])
def test_errors_are_one_line(annotations_dir, args, msg):
    r = run(*[a.replace("{ann}", str(annotations_dir)) for a in args])
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and msg in lines[0] and "Traceback" not in r.stderr


def test_info_on_malformed_tree(annotations_dir, tmp_path):
    """A tree with a truncated camera file and a malicious pkl: one-line errors naming the file."""
    import pickle
    import shutil

    cams = tmp_path / "t" / "cameras"
    cams.mkdir(parents=True)
    shutil.copy(annotations_dir / "cameras" / "mapping.txt", cams / "mapping.txt")
    for f in (annotations_dir / "cameras").glob("setting*.json"):
        shutil.copy(f, cams / f.name)
    (cams / "setting3.json").write_text((annotations_dir / "cameras" / "setting3.json").read_text()[:500])
    r = run("info", str(tmp_path / "t"))  # the bad file is reported on one line and the rest is summarized
    assert r.returncode == 1 and "sequences in mapping.txt: 1408" in r.stdout
    problems = [line for line in r.stdout.splitlines() if "PROBLEM" in line]
    assert len(problems) == 1 and "setting3.json" in problems[0] and "setting4" in r.stdout

    shutil.copy(annotations_dir / "cameras" / "setting3.json", cams / "setting3.json")
    (tmp_path / "t" / "motions").mkdir()

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "t" / "motions" / "gBR_sBM_cAll_d04_mBR2_ch08.pkl").write_bytes(pickle.dumps({"x": Evil()}))
    shutil.copy(annotations_dir / "motions" / "gJS_sBM_cAll_d03_mJS2_ch07.pkl", tmp_path / "t" / "motions")
    (tmp_path / "t" / "motions" / "notes.pkl").write_bytes(b"stray")  # not a sequence name
    r = run("info", str(tmp_path / "t"))
    assert r.returncode == 1 and "pwned" not in r.stdout
    problems = [line for line in r.stdout.splitlines() if "PROBLEM" in line]
    assert len(problems) == 2 and "refusing" in problems[0] + problems[1]
    assert any("gBR_sBM_cAll_d04_mBR2_ch08.pkl" in p for p in problems) and any("notes" in p for p in problems)
    assert "motions: 3 files, 576 frames" in r.stdout  # the good file is still summarized
