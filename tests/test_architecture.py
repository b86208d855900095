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


def _float_literals(value: float) -> dict[str, int]:
    found = {}
    for path in sorted(PKG.rglob("*.py")):
        n = sum(1 for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.Constant) and isinstance(node.value, float) and node.value == value)
        if n:
            found[str(path.relative_to(PKG))] = n
    return found


def test_official_confidence_threshold_is_written_once():
    """0.15 as the official confidence threshold lives in one named constant; the other 0.15s are other things."""
    from aistpp.io.annotations import OFFICIAL_MIN_CONFIDENCE
    from aistpp.triangulate import TriangulationConfig
    from aistpp.viz.report import VizConfig

    assert OFFICIAL_MIN_CONFIDENCE == 0.15
    other_meanings = {"demo.py": 2,           # the kick drum's length in seconds
                      "viz/report.py": 1,     # the mesh crop margin
                      "smpl/standin.py": 1}   # a body part's size in metres
    assert _float_literals(0.15) == {"io/annotations.py": 1, **other_meanings}
    assert TriangulationConfig().conf_threshold is OFFICIAL_MIN_CONFIDENCE
    assert VizConfig().min_confidence is OFFICIAL_MIN_CONFIDENCE


def _definitions(name: str) -> list[str]:
    return [f"{path.relative_to(PKG)}:{node.lineno}" for path in sorted(PKG.rglob("*.py"))
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name]


def test_one_implementation_each():
    assert _definitions("axis_angle_to_matrix") == [d for d in _definitions("axis_angle_to_matrix")
                                                    if d.startswith("smpl/joints.py")] != []
    assert [d.split(":")[0] for d in _definitions("skew") + _definitions("_skew")] == ["smpl/joints.py"]
    assert [d.split(":")[0] for d in _definitions("import_official")] == ["corpus/official.py"]


def test_select_sequences_has_one_implementation():
    """The tree, corpus and benchmark selections are thin wrappers of aistpp.splits.select_sequences."""
    defs = [d.split(":")[0] for d in _definitions("select_sequences")]
    assert sorted(defs) == ["benchmark/sources.py", "data/datasets.py", "pipeline.py", "splits.py"]
    for wrapper in ("benchmark/sources.py", "data/datasets.py", "pipeline.py"):
        tree = ast.parse((PKG / wrapper).read_text())
        fn = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "select_sequences")
        calls = [n for n in ast.walk(fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                 and n.func.attr == "select_sequences" and getattr(n.func.value, "id", "") == "splits"]
        assert calls, wrapper
        assert fn.end_lineno - fn.lineno < 40, wrapper  # the benchmark adds its notes on what is scored
