"""Check that the test suite catches deliberate mistakes in the maths (see docs/mutations.md).

Each mutation replaces one exact snippet of one file (it must occur exactly once), in a temporary copy of this
checkout (tracked and untracked-but-not-ignored files; ``../shared`` linked beside it so the real-data tests run),
and runs the tests named for it there. A mutation is *caught* when pytest reports failures (exit status 1); a
pass, a collection error or a patch that no longer applies is reported as such and makes the script exit 1.

    python tests/check_mutations.py                 # all mutations
    python tests/check_mutations.py fid-ddof0 ...   # some of them (names below)
    python tests/check_mutations.py --list
    python tests/check_mutations.py --baseline      # also run each selection unmutated (must pass)

Not collected by pytest (no ``test_`` prefix) and not meant for CI: it runs several minutes of tests.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str
    why: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]


MUTATIONS = (
    Mutation("pose-prior-x10", "SMPL fit: pose prior weight x10 (0.2 -> 2.0)", "aistpp/smpl/fit.py",
             "pose_prior_weight: float = 0.2 ", "pose_prior_weight: float = 2.0 ",
             ("tests/test_smpl_fit.py", "-k", "known_truth")),
    Mutation("hinge-0", "SMPL fit: knee / elbow hinge weight 0", "aistpp/smpl/fit.py",
             "hinge_weight: float = 1.0 ", "hinge_weight: float = 0.0 ",
             ("tests/test_smpl_fit.py", "-k", "known_truth")),
    Mutation("jacobian-no-posedirs", "SMPL fit: analytic Jacobian ignores the pose-corrective blend shapes",
             "aistpp/smpl/jacobian.py", "    if bool((layer.face_posedirs != 0).any()):", "    if False:",
             ("tests/test_smpl_fit.py", "-k", "jacobian")),
    Mutation("fid-ddof0", "FID: biased covariances (ddof=0)", "aistpp/models/metrics.py",
             "np.cov(ref, rowvar=False), feat.mean(0), np.cov(feat, rowvar=False)",
             "np.cov(ref, rowvar=False, ddof=0), feat.mean(0), np.cov(feat, rowvar=False, ddof=0)",
             ("tests/test_metrics.py", "-k", "fid")),
    Mutation("unpickle-eval", "restricted unpickler: allow-list admits builtins.eval", "aistpp/io/safe_pickle.py",
             '"complex", "slice", "bytes")', '"complex", "slice", "bytes", "eval")',
             ("tests/test_safe_pickle.py",)),
    Mutation("temporal-official-weights", "temporal optimization: back to the official objective (15 px, bone 2)",
             "aistpp/triangulate/config.py",
             "    reproj_threshold_px: float = 6.0\n    scale_smooth: float = 4.0\n    scale_length: float = 2.5",
             "    reproj_threshold_px: float = 15.0\n    scale_smooth: float = 4.0\n    scale_length: float = 2.0",
             ("tests/test_triangulate_temporal.py", "-k", "beats")),
    Mutation("temporal-bone-x3", "temporal optimization: bone weight x3 (2.5 -> 7.5)",
             "aistpp/triangulate/config.py", "    scale_length: float = 2.5", "    scale_length: float = 7.5",
             ("tests/test_triangulate_temporal.py", "-k", "beats")),
)


def _project_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, check=True).stdout.decode()
    return [f for f in out.split("\0") if f and (ROOT / f).is_file()]


def _copy_checkout(dest: Path) -> Path:
    repo = dest / "repo"
    for rel in _project_files():
        target = repo / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)
    shared = ROOT.parent / "shared"
    if shared.exists():
        (dest / "shared").symlink_to(shared)
    return repo


def _run_tests(repo: Path, tests: tuple[str, ...]) -> tuple[int, str]:
    env = dict(os.environ, PYTHONPATH=str(repo), PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
                          cwd=repo, env=env, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.strip()]
    return proc.returncode, lines[-1] if lines else proc.stderr.strip()[-200:]


def check(mutation: Mutation, baseline: bool) -> bool:
    with tempfile.TemporaryDirectory(prefix="aistpp-mutation-") as tmp:
        repo = _copy_checkout(Path(tmp))
        if baseline:
            rc, summary = _run_tests(repo, mutation.tests)
            if rc != 0:
                print(f"{mutation.name}: BASELINE FAILS ({summary})", flush=True)
                return False
        path = repo / mutation.file
        text = path.read_text()
        if text.count(mutation.old) != 1:
            print(f"{mutation.name}: PATCH DOES NOT APPLY ({mutation.file} has the snippet "
                  f"{text.count(mutation.old)} times; update tests/check_mutations.py)", flush=True)
            return False
        path.write_text(text.replace(mutation.old, mutation.new))
        t0 = time.perf_counter()
        rc, summary = _run_tests(repo, mutation.tests)
        verdict = "caught" if rc == 1 else ("SURVIVED" if rc == 0 else f"ERROR (pytest exit {rc})")
        print(f"{mutation.name}: {verdict} by {' '.join(mutation.tests)} [{summary}] "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
        return rc == 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="mutations to check (default: all)")
    ap.add_argument("--list", action="store_true", help="list the mutations and exit")
    ap.add_argument("--baseline", action="store_true", help="first run each selection unmutated (must pass)")
    args = ap.parse_args(argv)
    by_name = {m.name: m for m in MUTATIONS}
    if args.list:
        for m in MUTATIONS:
            print(f"{m.name:28s} {m.why}  [{m.file}; {' '.join(m.tests)}]")
        return 0
    unknown = [n for n in args.names if n not in by_name]
    if unknown:
        ap.error(f"unknown mutation(s) {', '.join(unknown)}; see --list")
    chosen = [by_name[n] for n in args.names] or list(MUTATIONS)
    results = [check(m, args.baseline) for m in chosen]
    print(f"{sum(results)}/{len(results)} mutations caught")
    return 0 if all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
