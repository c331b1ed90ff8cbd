"""Shared test configuration.

Markers (declared in pyproject.toml):

- ``equation("eq-label", ...)``: the test checks that the code computes the book's labelled
  equation(s); ``test_course_repo.py`` fails if a labelled equation has no such test.
- ``gpu``: needs a CUDA device; skipped one by one when none is present, run when one is.
- ``book``: builds the Jupyter Book (slow). The strict build is made once per session by the
  ``html`` fixture below and shared by the page tests and the browser tests.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
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


def _jupyter_book() -> str:
    here = Path(sys.executable).parent / "jupyter-book"
    found = str(here) if here.exists() else shutil.which("jupyter-book")
    if found is None:
        pytest.fail("jupyter-book is not installed: run `make test`, which installs it")
    return found


@pytest.fixture(scope="session")
def jupyter_book() -> str:
    """The jupyter-book command of this environment."""
    return _jupyter_book()


@pytest.fixture(scope="session")
def html(tmp_path_factory) -> Path:
    """Build the whole book once, strictly, into a temporary folder; return its html/ folder."""
    out = tmp_path_factory.mktemp("book")
    cmd = [_jupyter_book(), "build", str(ROOT), "--path-output", str(out),
           "-W", "-n", "--keep-going", "--all"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"book build failed (warnings are errors):\n{log[-6000:]}"
    assert "WARNING" not in log, log[-6000:]
    return out / "_build" / "html"


def _translated_book(tmp_path_factory, command: str) -> Path:
    out = tmp_path_factory.mktemp(f"hi-{command}")
    cmd = [sys.executable, "-m", "tools.translation", command, "--out", str(out), "-W", "-n", "--keep-going", "--all"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"Hindi book build failed (warnings are errors):\n{log[-6000:]}"
    assert "WARNING" not in log, log[-6000:]
    from tools import translation

    lang = translation.LANGUAGES["hi"]
    return out / (lang.student_root if command == "student" else lang.root)


@pytest.fixture(scope="session")
def html_hi(tmp_path_factory) -> Path:
    """The Hindi book (`make book-hi`), built strictly (-W -n) into a temporary folder; its html/ folder."""
    return _translated_book(tmp_path_factory, "build")


@pytest.fixture(scope="session")
def student_html_hi(tmp_path_factory) -> Path:
    """The Hindi student edition (`make student-book-hi`), built strictly; its html/ folder."""
    return _translated_book(tmp_path_factory, "student")
