"""Shared test configuration.

Markers (declared in pyproject.toml):

- ``equation("eq-label", ...)``: the test checks that the code computes the book's labelled
  equation(s); ``test_course_repo.py`` fails if a labelled equation has no such test.
- ``gpu``: needs a CUDA device; skipped one by one when none is present, run when one is.
- ``book``: builds the Jupyter Book (slow).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
GPU_SKIP_REASON = "needs a CUDA device; none is available here"


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason=GPU_SKIP_REASON)
    for item in items:
        if item.get_closest_marker("gpu") is not None:  # the marker, not any id that says "gpu"
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def root() -> Path:
    """The repository root."""
    return ROOT
