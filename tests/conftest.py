"""Shared fixtures: the real AIST++ annotation files in ../shared/aistpp-data (read-only, never copied)."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "aistpp-data"
ANNOTATIONS = SHARED / "annotations"
SEQUENCES = ("gBR_sBM_cAll_d04_mBR2_ch08", "gJS_sBM_cAll_d03_mJS2_ch07")


@pytest.fixture(scope="session")
def annotations_dir() -> Path:
    if not ANNOTATIONS.is_dir():
        pytest.skip(f"shared AIST++ annotations not found at {ANNOTATIONS}")
    return ANNOTATIONS


@pytest.fixture(scope="session")
def tree(annotations_dir):
    from aistpp.io.annotations import AnnotationTree

    return AnnotationTree.open(annotations_dir)


@pytest.fixture(scope="session")
def shared_sequences(tree):
    """The two sequences with full 2D/3D/SMPL annotations."""
    return SEQUENCES


@pytest.fixture
def torch_one_thread():
    """One intra-op torch thread: tiny models gain nothing from more, and a shared 2-core CPU punishes them."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
