"""Check the Python that `make env` is about to use, before anything is installed.

    python3 tools/check_python.py [--venv .venv] [--explicit]

Exits 1 with a message that names the fix when this interpreter is not a Python the course
supports (torch and the book tools would otherwise fail much later with a resolver error).
With ``--venv`` it also looks at an existing virtual environment and removes it when it was
made by an unsupported or broken Python, or (with ``--explicit``, i.e. ``PYTHON=`` was given)
by a different Python version than this one, so that `make env` builds it afresh.

Runs under any Python 3, so it avoids syntax newer than 3.6.
"""

import argparse
import os
import shutil
import subprocess
import sys

SUPPORTED = ((3, 10), (3, 11), (3, 12), (3, 13))


def supported_text():
    return "{}.{}-{}.{}".format(*SUPPORTED[0], *SUPPORTED[-1])


def version_text(version):
    return "{}.{}".format(*version)


def problem_with(version):
    """A message if ``version`` (major, minor) is not supported, else None."""
    if tuple(version[:2]) in SUPPORTED:
        return None
    return (
        "lstm_lab needs Python {want}, but {exe} is Python {have}.\n"
        "Install a supported Python (python.org, your package manager, or `brew install "
        "python@3.12` on a Mac) and point make at it, for example:\n"
        "    make PYTHON=python3.12 test\n"
        "On Windows, which has no make, follow the README's pip-only steps."
    ).format(want=supported_text(), exe=sys.executable, have=version_text(version))


def venv_python(venv):
    for rel in (("bin", "python"), ("Scripts", "python.exe")):
        path = os.path.join(venv, *rel)
        if os.path.exists(path):
            return path
    return None


def venv_version(venv):
    """(major, minor) of the environment's Python, or None when it cannot be run."""
    python = venv_python(venv)
    if python is None:
        return None
    try:
        out = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    parts = out.stdout.decode().split()
    if out.returncode != 0 or len(parts) != 2:
        return None
    return int(parts[0]), int(parts[1])


def stale_reason(venv, explicit, current=None):
    """Why the existing environment ``venv`` must be rebuilt, or None to keep it."""
    current = tuple(current or sys.version_info[:2])
    if not os.path.isdir(venv):
        return None
    found = venv_version(venv)
    if found is None:
        return "its Python does not run"
    if found not in SUPPORTED:
        return "it was made with Python {}, which the course does not support".format(version_text(found))
    if explicit and found != current:
        return "it was made with Python {}, and PYTHON= asks for {}".format(
            version_text(found), version_text(current))
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", help="an existing virtual environment to check")
    parser.add_argument("--explicit", action="store_true", help="PYTHON= was given: rebuild on any version change")
    args = parser.parse_args(argv)
    message = problem_with(sys.version_info)
    if message:
        print(message, file=sys.stderr)
        return 1
    if args.venv:
        reason = stale_reason(args.venv, args.explicit)
        if reason:
            print("rebuilding {}: {}".format(args.venv, reason))
            shutil.rmtree(args.venv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
