"""The test environment is the one `make test` installs: every extra present, one OpenCV distribution, pip-consistent.

Optional-dependency tests use pytest.importorskip so a core-only install still runs the rest; this file makes sure
that in the full environment (CI) nothing is skipped for a missing package.
"""

import importlib
import importlib.metadata as md

import pytest

EXTRAS = ("av", "mediapipe", "onnxruntime", "onnx", "librosa", "soundfile", "ray", "matplotlib", "skimage",
          "pycocotools", "google_crc32c", "requests")


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
