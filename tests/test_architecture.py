"""The code's shape: the executors know nothing of the pipeline, one implementation of each shared formula, one
named constant for the official confidence threshold."""

import ast
import math
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "aistpp"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def test_executors_do_not_import_the_pipeline():
    assert not {m for m in _imports(PKG / "executors.py") if m.startswith("aistpp.pipeline")}


def test_executors_run_any_work_function():
    from aistpp.executors import get_executor, run_local

    failed = lambda task, reason: ("failed", task, reason)  # noqa: E731
    assert sorted(run_local([1.0, 4.0, 9.0], workers=2, work=math.sqrt, failed=failed)) == [1.0, 2.0, 3.0]
    got = list(get_executor("local", math.sqrt, failed, workers=2)([16.0, "x"]))
    assert 4.0 in got and any(g[0] == "failed" and g[1] == "x" and "TypeError" in g[2] for g in got
                              if isinstance(g, tuple))
