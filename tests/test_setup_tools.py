"""The setup helpers behind `make env` and `make test-oldest`: a clear stop for an unsupported
Python, a stale .venv rebuilt rather than reused, and the lower bounds read from pyproject.toml."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

from tools import check_python, course


@pytest.mark.parametrize("version", [(3, 9), (3, 14), (2, 7)])
def test_an_unsupported_python_is_named_with_the_fix(version):
    message = check_python.problem_with(version)
    assert f"Python {version[0]}.{version[1]}" in message and "3.10-3.13" in message
    assert "make PYTHON=python3.12" in message


@pytest.mark.parametrize("version", check_python.SUPPORTED)
def test_a_supported_python_passes(version):
    assert check_python.problem_with(version) is None


def fake_venv(tmp_path, script: str):
    """A .venv whose bin/python is a shell script (POSIX)."""
    venv = tmp_path / ".venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text("#!/bin/sh\n" + script + "\n")
    python.chmod(0o755)
    return str(venv)


posix_only = pytest.mark.skipif(os.name != "posix", reason="the fake interpreter is a shell script")


@posix_only
def test_a_venv_of_an_unsupported_python_is_rebuilt(tmp_path):
    venv = fake_venv(tmp_path, "echo 3 9")
    assert "Python 3.9, which the course does not support" in check_python.stale_reason(venv, explicit=False)
    check_python.main(["--venv", venv])
    assert not os.path.exists(venv)


@posix_only
def test_a_broken_venv_is_rebuilt(tmp_path):
    venv = fake_venv(tmp_path, "exit 1")
    assert check_python.stale_reason(venv, explicit=False) == "its Python does not run"


@posix_only
def test_a_good_venv_is_kept_unless_python_asks_for_another(tmp_path):
    venv = fake_venv(tmp_path, "echo 3 11")
    assert check_python.stale_reason(venv, explicit=False, current=(3, 12)) is None
    assert check_python.stale_reason(venv, explicit=True, current=(3, 11)) is None
    assert "PYTHON= asks for 3.12" in check_python.stale_reason(venv, explicit=True, current=(3, 12))
    assert check_python.stale_reason(str(tmp_path / "missing"), explicit=True) is None


def test_the_check_runs_on_old_pythons_too(tmp_path):
    """It must parse under the Python it rejects: no syntax newer than 3.6."""
    source = (course.ROOT / "tools" / "check_python.py").read_text(encoding="utf-8")
    ast.parse(source, feature_version=(3, 6))
    proc = subprocess.run([sys.executable, str(course.ROOT / "tools" / "check_python.py")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_lower_bounds_pin_every_stated_minimum():
    pins = dict(p.split("==") for p in course.lower_bounds())
    assert pins["torch"] == "2.1" and pins["numpy"] == "1.24" and pins["matplotlib"] == "3.9"
    assert pins["tomli"] == '2; python_version < "3.11"', "a bound behind a marker keeps its marker"
    for name in ("jupyter-book", "sphinx-exercise", "otter-grader", "pytest", "nbval", "ipykernel"):
        assert name in pins, name


def test_lower_bounds_command_prints_pip_constraints():
    proc = subprocess.run([sys.executable, "-m", "tools.course", "lower-bounds"], cwd=course.ROOT,
                          capture_output=True, text=True, check=True)
    lines = proc.stdout.splitlines()
    assert lines == sorted(lines) and all("==" in line for line in lines)
    assert "torch==2.1" in lines


def test_supported_pythons_match_pyproject():
    """One list of Pythons: the classifiers and requires-python say what check_python enforces."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    project = tomllib.loads((course.ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    prefix = "Programming Language :: Python :: 3."
    minors = sorted(int(c[len(prefix):]) for c in project["classifiers"] if c.startswith(prefix))
    assert [(3, m) for m in minors] == list(check_python.SUPPORTED)
    assert project["requires-python"] == ">={}.{}".format(*check_python.SUPPORTED[0])
