"""Shared fixtures. Real-data tests find ../shared/data and skip when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

# Torch's OpenMP pool busy-waits between ops; with several test processes on
# two cores that spinning starves the others. Set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("AUGMENT_SHARED_DATA", REPO.parent / "shared" / "data"))
CELEBA_WILD = SHARED_DATA / "celeba-wild-sample"
LFW_SAMPLE = SHARED_DATA / "lfw-view1-sample"


def _shared(root: Path, marker: str, what: str) -> Path:
    """``root`` when ``root / marker`` exists, else skip the test naming what is missing."""
    if not (root / marker).exists():
        pytest.skip(f"{what} not found at {root}")
    return root


@pytest.fixture
def celeba_wild() -> Path:
    return _shared(CELEBA_WILD, "img_celeba", "real CelebA sample")


@pytest.fixture
def lfw_sample() -> Path:
    return _shared(LFW_SAMPLE, "lfw-deepfunneled", "real LFW sample")


@pytest.fixture
def one_torch_thread():
    """One torch CPU thread for the test (restored after): small networks run
    faster so on a shared CPU, and the results do not depend on the core count.
    A test module opts in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    from augment.runtime import torch_threads

    with torch_threads(1):
        yield


CELEBA_ALIGNED_10K = SHARED_DATA / "celeba-aligned-10k"
CELEBA_IDENTITIES = SHARED_DATA / "celeba-identities"
CELEBA_FULLTEXT = SHARED_DATA / "celeba-fulltext"


@pytest.fixture
def celeba_aligned_10k() -> Path:
    return _shared(CELEBA_ALIGNED_10K, "img_align_celeba", "real CelebA aligned 89x109 copy")


@pytest.fixture
def celeba_identities() -> Path:
    return _shared(CELEBA_IDENTITIES, "img_align_celeba", "real CelebA identities set")


@pytest.fixture
def celeba_fulltext() -> Path:
    return _shared(CELEBA_FULLTEXT, "identity_CelebA.txt", "real CelebA text files")
