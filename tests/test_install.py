"""The test environment is the one `make test` installs: every extra present, one OpenCV distribution, pip-consistent.

Optional-dependency tests use pytest.importorskip so a core-only install still runs the rest; this file makes sure
that in the full environment (CI) nothing is skipped for a missing package.
"""

import importlib
import importlib.metadata as md

import pytest

EXTRAS = ("aniposelib", "av", "mediapipe", "onnxruntime", "onnx", "librosa", "soundfile", "ray", "matplotlib",
          "skimage", "pycocotools", "google_crc32c", "requests")


def test_exactly_one_opencv_distribution():
    names = sorted({(d.metadata["Name"] or "").lower() for d in md.distributions()})
    opencv = [n for n in names if n.startswith("opencv")]
    assert opencv == ["opencv-contrib-python"], opencv  # aniposelib requires the contrib build; two break cv2/
    import cv2

    assert hasattr(cv2, "aruco")  # contrib module present: the cv2 folder is the contrib build's


@pytest.mark.parametrize("module", EXTRAS)
def test_extras_are_installed(module):
    importlib.import_module(module)


def test_torch_is_the_pinned_cpu_build():
    import torch

    assert torch.__version__.split("+")[0] == "2.13.0"


HEAVY = ("ray", "mediapipe", "onnxruntime", "onnx", "jax", "jaxlib")


def _extra_requirements(extra: str) -> list[str]:
    """The requirement strings of the core plus one extra of setup.cfg (``%(name)s`` references expanded)."""
    import configparser
    from pathlib import Path

    cfg = configparser.ConfigParser()
    cfg.read(Path(__file__).resolve().parents[1] / "setup.cfg")
    extras = cfg["options.extras_require"]
    lines = cfg["options"]["install_requires"].splitlines() + extras[extra].splitlines()  # interpolation expands
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def _closure(requirements: list[str]) -> set[str]:
    """Distribution names needed by the requirements, transitively, from the installed packages' metadata
    (markers evaluated for this interpreter, no extras of dependencies)."""
    from packaging.requirements import Requirement

    seen, todo = set(), [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = req.name.lower().replace("_", "-")
        if name in seen or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        try:
            todo += [Requirement(r) for r in md.requires(req.name) or ()]
        except md.PackageNotFoundError:
            pass
    return seen


def test_demo_extra_needs_no_ray_mediapipe_onnx():
    demo = _closure(_extra_requirements("demo"))
    assert {"librosa", "soundfile", "torch", "numpy"} <= demo
    assert not demo & set(HEAVY), sorted(demo & set(HEAVY))
    # and the full install does pull them (so the check above looks at the real dependency graph)
    assert {"ray", "mediapipe", "onnxruntime", "jax"} <= _closure(_extra_requirements("all"))


def test_make_demo_installs_the_demo_extra_and_make_test_everything():
    from pathlib import Path

    make = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    rules = {}
    for block in make.split("\n\n"):
        head, _, body = block.partition("\n")
        if ":" in head and not head.startswith("#"):
            rules[head.split(":")[0].strip()] = (head, body)
    assert "$(DEMO_STAMP)" in rules["demo"][0] and "$(ALL_STAMP)" in rules["test"][0]
    assert "-c constraints.txt -e '.[demo]'" in rules["$(DEMO_STAMP)"][1]
    assert "-c constraints.txt -e '.[all]'" in rules["$(ALL_STAMP)"][1]
