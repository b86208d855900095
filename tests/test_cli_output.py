"""What the terminal shows: quiet exit on a closed pipe, log lines through tqdm's redirection, periodic progress
lines without a terminal, demo step headers before the step runs, -v / -vv as the help says."""

import logging
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT), **extra)
    env.pop("AISTPP_DEBUG", None)
    return env


def test_closed_pipe_exits_quietly(annotations_dir):
    """``aistpp split ... | head -0``: the reader is gone before the first line; no traceback, status 0."""
    p = subprocess.Popen([sys.executable, "-m", "aistpp", "split", "--annotations", str(annotations_dir),
                          "--kind", "crossmodal", "--subset", "train"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=_env(), cwd=ROOT)
    p.stdout.close()  # like head exiting
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 0, err
    assert "BrokenPipe" not in err and "Traceback" not in err, err


def test_progress_is_a_log_line_without_a_terminal(annotations_dir, tmp_path):
    """stderr is a pipe here (no terminal): the import's progress comes as log lines, not silence or a bar."""
    out = subprocess.run([sys.executable, "-m", "aistpp", "import-official", "--annotations", str(annotations_dir),
                          "--out", str(tmp_path / "official")], capture_output=True, text=True, env=_env(),
                         cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("INFO aistpp.progress: import:")]
    assert lines and lines[-1].startswith("INFO aistpp.progress: import: 100% 2/2"), out.stderr
    assert "\r" not in out.stderr


def test_log_line_tqdm_logs_start_periodic_and_end(caplog, monkeypatch):
    import time

    from aistpp.progress import LogLineTqdm, tqdm

    monkeypatch.setenv("AISTPP_PROGRESS_SECONDS", "0.05")
    with caplog.at_level(logging.INFO, logger="aistpp.progress"):
        bar = tqdm(total=4, desc="work", unit="seq", file=sys.stderr)  # captured: not a terminal
        assert isinstance(bar, LogLineTqdm)
        for _ in range(4):
            time.sleep(0.06)
            bar.update()
        bar.close()
    msgs = [r.getMessage() for r in caplog.records if r.name == "aistpp.progress"]
    assert msgs[0].startswith("work:   0% 0/4") and msgs[-1].startswith("work: 100% 4/4"), msgs
    assert len(msgs) >= 4  # start, some of the 4 updates (>= the interval apart), end

    class Terminal:
        def isatty(self):
            return True

        def write(self, s):
            pass

        def flush(self):
            pass

    bar = tqdm(total=2, file=Terminal())
    assert type(bar).__name__ == "tqdm" and not isinstance(bar, LogLineTqdm)
    bar.close()


def test_log_lines_go_through_tqdm_redirection(monkeypatch):
    """While a verb runs, the console handler is tqdm's (tqdm.write above the bar), and it is restored after."""
    import argparse

    import aistpp.cli as cli

    seen = {}

    def verb(args):
        seen["handlers"] = [type(h).__name__ for h in logging.getLogger().handlers]
        seen["level"] = logging.getLogger("aistpp").getEffectiveLevel()
        return 0

    def parser():
        p = argparse.ArgumentParser()
        p.add_argument("-v", "--verbose", action="count", default=0)
        p.add_argument("--debug", action="store_true")
        sub = p.add_subparsers(dest="verb")
        sub.add_parser("probe").set_defaults(func=verb)
        return p

    console = logging.StreamHandler(sys.stderr)
    root = logging.getLogger()
    root.addHandler(console)
    monkeypatch.setattr(cli, "build_parser", parser)
    try:
        assert cli.main(["probe"]) == 0
        assert "_TqdmLoggingHandler" in seen["handlers"] and "StreamHandler" not in seen["handlers"]
        assert seen["level"] == logging.INFO
        assert cli.main(["-v", "probe"]) == 0 and seen["level"] == logging.DEBUG
        assert console in root.handlers  # restored
    finally:
        root.removeHandler(console)


def test_verbosity_matches_its_help():
    from aistpp.cli import build_parser, log_levels

    assert log_levels(0) == (logging.WARNING, logging.INFO)     # aistpp info, libraries' warnings
    assert log_levels(1) == (logging.WARNING, logging.DEBUG)    # -v: aistpp debug
    assert log_levels(2) == (logging.DEBUG, logging.DEBUG)      # -vv: the libraries' debug too
    help_text = build_parser().format_help()
    assert "-v debug lines of aistpp" in " ".join(help_text.split())
    assert "-vv also those of the libraries" in " ".join(help_text.split())


def test_demo_header_comes_before_the_step_runs(tmp_path):
    from aistpp.demo import STEPS, DemoConfig, DemoStep, run_demo

    events = []

    def step(ctx):
        events.append("run")
        return DemoStep("t", [])

    saved = list(STEPS)
    STEPS[:] = [("a", step), ("b", step)]
    try:
        for s in run_demo(DemoConfig(out=str(tmp_path)), on_start=lambda i, n, name: events.append((i, n, name))):
            events.append("done")
    finally:
        STEPS[:] = saved
    assert events == [(1, 2, "a"), "run", "done", (2, 2, "b"), "run", "done"]


def test_demo_cli_prints_the_header_first(monkeypatch, capsys, tmp_path):
    import aistpp.demo as demo
    from aistpp.cli import main

    def step(ctx):
        print("STEP RUNNING")
        return demo.DemoStep("first step", ["line"])

    monkeypatch.setattr(demo, "STEPS", [("first", step)])
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == ["== [1/1] first ...", "STEP RUNNING", "   first step (0.0 s)"], out



def _walk(parser, path=()):
    """(verb path, option strings, help) of every argument of every verb, and (verb path, None, help) per verb."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield path + (name,), None, helps.get(name)
                yield from _walk(sub, path + (name,))
        else:
            yield path, tuple(action.option_strings) or (action.dest,), action.help


def test_every_option_of_every_verb_has_help():
    from aistpp.cli import build_parser

    rows = list(_walk(build_parser()))
    assert len({r[0] for r in rows}) > 15 and len(rows) > 150  # the walk reaches every verb
    missing = [f"aistpp {' '.join(path)} {' / '.join(opts) if opts else '(verb)'}" for path, opts, text in rows
               if not (text or "").strip()]
    assert not missing, missing


def _split(annotations_dir, *argv):
    out = subprocess.run([sys.executable, "-m", "aistpp", "split", "--annotations", str(annotations_dir), *argv],
                         capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.split(), out.stderr


def test_split_genre_alone_lists_all_of_the_genre_and_says_so(annotations_dir):
    from aistpp.io.annotations import AnnotationTree
    from aistpp.naming import parse_name

    tree = AnnotationTree.open(annotations_dir)
    ignore = set(tree.ignore_list())
    every_gbr = [s for s in tree.mapping() if parse_name(s).genre == "gBR"]
    names, err = _split(annotations_dir, "--genre", "gBR")
    assert names == [s for s in every_gbr if s not in ignore]
    n_ign = len(set(every_gbr) & ignore)
    assert (f"{len(names)} sequences: every sequence of gBR (of {len(every_gbr)} gBR sequences in mapping.txt; "
            f"{n_ign} on the ignore list left out") in err
    train, err = _split(annotations_dir, "--genre", "gBR", "--subset", "train")
    assert set(train) < set(names) and f"{len(train)} sequences: crossmodal train of gBR" in err
    kept, _ = _split(annotations_dir, "--genre", "gBR", "--subset", "all", "--keep-ignored")
    assert kept == every_gbr
