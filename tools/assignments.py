"""Autograded assignments: generate student notebooks and autograders, and grade a folder of submissions.

The masters live in ``assignments/<name>.ipynb`` in otter-grader's notebook format (a raw
``# ASSIGNMENT CONFIG`` cell, then questions with solutions and public and hidden tests).
Two commands, also in the Makefile (``make assignments``, ``make grade``):

    python -m tools.assignments generate [NAME ...] [--out _build/assignments]
        runs ``otter assign`` on each master: ``<out>/<name>/student/`` (the notebook to hand
        out and its public tests) and ``<out>/<name>/autograder/`` (the solution notebook and
        ``<name>-autograder_*.zip``, which holds every test, hidden ones included). otter
        checks that the solution passes every test while it generates.

    python -m tools.assignments grade NAME SUBMISSIONS [--out scores.csv]
        grades every ``*.ipynb`` under the folder SUBMISSIONS with the tests of NAME's
        autograder, on this machine (Linux, with bubblewrap), and writes one CSV row per
        notebook as soon as it is graded: the score of each question, the total, a status, the
        reasons and notes, and each failed test's message.

A submission is hostile until shown otherwise. Its code cells (and nothing else of the file)
run in a sandbox of their own (``tools.sandbox``: no network, no files of the grader's, a
private /tmp, limits, every process gone at the end) through ``tools/worker.py``, with a copy of
lstm_lab in which the references the questions ask for are stubs (``HIDDEN``, ``hidden_copy``).
otter's test files run here, in the grader: each call of a student's function goes into the
sandbox, and its result comes back as data (``tools.wire``). A cell that runs too long is
interrupted and the rest still runs; a notebook that runs too long is stopped, so one bad
notebook never stops the others.
"""

from __future__ import annotations

import argparse
import ast
import csv
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from tools import sandbox, wire

ROOT = Path(__file__).resolve().parents[1]
MASTERS = ROOT / "assignments"
BUILD = ROOT / "_build" / "assignments"
CELL_TIMEOUT = 60
NOTEBOOK_TIMEOUT = 300


def master_paths() -> list[Path]:
    """Every master notebook, in order."""
    return sorted(MASTERS.glob("*.ipynb"))


def _otter() -> str:
    here = Path(sys.executable).parent / "otter"
    found = str(here) if here.exists() else shutil.which("otter")
    if not found:
        raise SystemExit("otter-grader is not installed: run `make env` (it is part of lstm-lab[assign])")
    return found


@dataclass
class Generated:
    """The files ``otter assign`` wrote for one master."""

    name: str
    student: Path  # the student notebook
    student_tests: Path  # its public tests
    solution: Path  # the master with solutions, as the autograder sees it
    autograder: Path  # the zip with every test

    @classmethod
    def find(cls, name: str, out: Path = BUILD) -> Generated:
        base = out / name
        zips = sorted((base / "autograder").glob(f"{name}-autograder_*.zip"))
        if not zips:
            raise FileNotFoundError(f"no autograder for {name!r} under {base}: run `make assignments` first")
        return cls(name, base / "student" / f"{name}.ipynb", base / "student" / "tests",
                   base / "autograder" / f"{name}.ipynb", zips[-1])


def generate(names: list[str] | None = None, out: Path = BUILD, *, run_tests: bool = True) -> list[Generated]:
    """Run ``otter assign`` for each master (all when ``names`` is None) into ``out/<name>/``."""
    masters = {p.stem: p for p in master_paths()}
    unknown = sorted(set(names or ()) - set(masters))
    if unknown:
        raise SystemExit(f"unknown assignment(s) {unknown}; the masters are {sorted(masters)}")
    done = []
    for name in names or sorted(masters):
        target = out / name
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        cmd = [_otter(), "assign", str(masters[name]), str(target)]
        if not run_tests:
            cmd.append("--no-run-tests")
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            raise SystemExit(f"otter assign failed for {name}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
        generated = Generated.find(name, out)
        print(f"{name}: student {generated.student.relative_to(out)}, autograder "
              f"{generated.autograder.relative_to(out)} ({time.perf_counter() - start:.1f} s)")
        done.append(generated)
    return done


# ----------------------------------------------------------------------------- what a submission may import
HIDDEN_MESSAGE = ("{name} is not available while your work is graded: the question asks you "
                  "to write it yourself")


def hidden_copy(package: Path, out: Path, hidden: list[str]) -> Path:
    """Copy the package folder ``package`` to ``out/<its name>``, with each function named in
    ``hidden`` reduced to its signature and docstring and a body that raises
    ``NotImplementedError``. A name is ``"package.module:function"``, ``"package.module:Class.method"``
    or ``"package.module:*"`` (every top-level function of the module). No bytecode is
    copied, so the hidden bodies are nowhere in the copy. This copy is what grading mounts in the
    sandbox in place of the package, so the reference for a question a student answers cannot be
    called, imported under another name or read, while everything else in the package works."""
    package = Path(package)
    wanted: dict[Path, set[str]] = {}
    for spec in hidden:
        module, _, function = spec.partition(":")
        parts = module.split(".")
        if parts[0] != package.name or not function:
            raise ValueError(f"hidden: {spec!r} is not 'package.module:function' inside {package.name!r}")
        path = package.joinpath(*parts[1:]).with_suffix(".py")
        if not path.is_file():
            raise ValueError(f"hidden: {spec!r} names no module file ({path} does not exist)")
        wanted.setdefault(path, set()).add(function)
    target = Path(out) / package.name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(package, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo"))
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    for path, names in wanted.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found = set()
        for node in tree.body:
            members = [(node.name, node)] if isinstance(node, functions) else [
                (f"{node.name}.{m.name}", m) for m in node.body if isinstance(m, functions)
            ] if isinstance(node, ast.ClassDef) else []
            for name, fn in members:
                if name in names or "*" in names and fn is node:
                    found.add(name)
                    doc = [fn.body[0]] if ast.get_docstring(fn) is not None else []
                    message = HIDDEN_MESSAGE.format(name=name)
                    fn.body = doc + [ast.parse(f"raise NotImplementedError({message!r})").body[0]]
        missing = sorted(names - found - {"*"})
        if missing or not found:
            raise ValueError(f"hidden: {path.relative_to(package.parent)} defines no top-level {missing or '*'}")
        (target / path.relative_to(package)).write_text(ast.unparse(tree) + "\n", encoding="utf-8")
    return target


# ----------------------------------------------------------------------------- grading
# What each assignment hides from the submissions: the course's own reference for every function a
# question asks for, reduced by hidden_copy to a NotImplementedError in the copy of lstm_lab that
# the sandbox mounts. Functions the provided cells need stay (a3 trains lstm_lab's GRU and LSTM).
HIDDEN = {
    "a1_rnn_bptt": ["lstm_lab.scratch.rnn:rnn_forward", "lstm_lab.scratch.rnn:rnn_backward"],
    "a2_lstm_cell": ["lstm_lab.scratch.lstm:lstm_forward", "lstm_lab.scratch.lstm:lstm_backward",
                     "lstm_lab.nn.torch_layout:*", "lstm_lab.nn.fused_lstm:fused_lstm",
                     "lstm_lab.nn.base:StackedRecurrent.from_torch", "lstm_lab.nn.base:StackedRecurrent.to_torch",
                     "lstm_lab.nn.base:StackedRecurrent.scratch_params"],
    "a3_gru_variants": ["lstm_lab.scratch.gru:gru_forward", "lstm_lab.scratch.gru:gru_backward",
                        "lstm_lab.scratch.lstm:lstm_forward", "lstm_lab.scratch.lstm:lstm_backward"],
    "a4_scan_ssm": ["lstm_lab.nn.scan:*", "lstm_lab.nn.ssm:discretize_zoh", "lstm_lab.nn.ssm:selective_step",
                    "lstm_lab.nn.ssm:selective_scan", "lstm_lab.nn.ssm:lti_recurrence"],
    "a5_seq2seq_attention": ["lstm_lab.scratch.attention:additive_attention",
                             "lstm_lab.scratch.attention:masked_softmax",
                             "lstm_lab.nn.attention:masked_softmax",
                             "lstm_lab.nn.attention:AdditiveAttention.forward",
                             "lstm_lab.nn.seq2seq:beam_search"],
}
LIMITS = sandbox.Limits(wall_seconds=NOTEBOOK_TIMEOUT, cpu_seconds=2 * NOTEBOOK_TIMEOUT, memory_bytes=4 << 30)
CALL_TIMEOUT = 120
NOTEBOOK_BYTES = 64 << 20  # a larger submission is not read
# Cells that otter's own notebook machinery writes; grading runs its own checks instead.
OTTER_CELL = re.compile(r"\s*(import otter\s+grader\s*=\s*otter\.Notebook\([^()]*\)|grader\.check\([^()]*\)"
                        r"|grader\.check_all\(\)|grader\.export\([^()]*\))\s*")
BUILTIN_ERRORS = {e.__name__: e for e in (
    ArithmeticError, AssertionError, AttributeError, FloatingPointError, IndexError, KeyError, LookupError,
    NameError, NotImplementedError, OverflowError, RecursionError, RuntimeError, TypeError, ValueError,
    ZeroDivisionError)}


@dataclass
class Grade:
    """The result for one submission; ``status`` is "ok", "errors" (some cells raised or timed out),
    "timeout" (the whole notebook ran too long) or "failed" (the grader could not run it).
    ``messages`` holds, per question, why tests failed; ``note`` what the grader noticed."""

    submission: str
    status: str
    total: float = 0.0
    possible: float = 0.0
    questions: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    seconds: float = 0.0
    messages: dict[str, str] = field(default_factory=dict)
    note: str = ""


class SubmissionError(Exception):
    """An error the submission's code raised, of a type the grader does not rebuild."""


def _plain(text: str, limit: int = 300) -> str:
    """Text from a submission as one printable line of at most ``limit`` characters."""
    text = "".join(c if c.isprintable() else " " for c in str(text))
    return " ".join(text.split())[:limit]


def sanitized_cells(path: Path) -> tuple[list[tuple[int, str]], str]:
    """The code a submission asks to run, and a note: each code cell's source as text (outputs,
    attachments and every metadata field dropped; a cell tagged ``otter_ignore`` and otter's own
    check cells skipped). Raises ``ValueError`` for a file that is no notebook."""
    path = Path(path)
    if path.stat().st_size > NOTEBOOK_BYTES:
        raise ValueError(f"the notebook is larger than {NOTEBOOK_BYTES >> 20} MB")
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise ValueError(f"not a notebook: {_plain(err, 120)}") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise ValueError("not a notebook: no list of cells")
    cells = []
    for index, cell in enumerate(nb["cells"]):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(line, str) for line in source):
            source = "".join(source)
        if not isinstance(source, str):
            raise ValueError(f"cell {index} has a source that is not text")
        metadata = cell.get("metadata")
        tags = metadata.get("tags") if isinstance(metadata, dict) else None
        if isinstance(tags, list) and "otter_ignore" in tags or OTTER_CELL.fullmatch(source):
            continue
        cells.append((index, source))
    meta = nb.get("metadata")
    note = "" if isinstance(meta, dict) and isinstance(meta.get("otter"), dict) else (
        "no otter metadata: graded from its code cells")
    return cells, note


class _Sandboxed:
    """A submission running in its sandbox, as the grader talks to it. Every answer is decoded as
    data (``tools.wire``); a call that the submission's code fails raises, in the grader, the
    builtin exception of the same name, or ``SubmissionError``."""

    def __init__(self, session: sandbox.Session, call_timeout: float = CALL_TIMEOUT):
        self.session, self.call_timeout, self.calls = session, call_timeout, 0

    def request(self, payload: dict, timeout: float) -> dict:
        import dill

        self.session.send(dill.dumps(payload, recurse=True))
        reply = wire.decode(self.session.receive(timeout + 10), max_bytes=LIMITS.message_bytes)
        if not isinstance(reply, dict):
            raise wire.WireError("an answer that is not a dict")
        error = reply.get("error")
        if error is not None:
            if not (isinstance(error, (list, tuple)) and len(error) == 2):
                raise wire.WireError("an error that is not (type, message)")
            name, message = _plain(error[0], 60), _plain(error[1])
            if name in BUILTIN_ERRORS:
                raise BUILTIN_ERRORS[name](message)
            raise SubmissionError(f"{name}: {message}")
        return reply

    def call(self, name: str, args: tuple, kwargs: dict, *, count: bool = False):
        """Call the submission's ``name``; returns (value, number of torch operations or None)."""
        import torch

        self.calls += 1
        originals = wire.leaves([list(args), kwargs])
        needs_grad = [t for t in originals if isinstance(t, torch.Tensor) and t.requires_grad]
        sent = wire.replace_tensors([list(args), kwargs], {id(t): t.detach() for t in needs_grad})
        grad = [i for i, t in enumerate(originals) if isinstance(t, torch.Tensor) and t.requires_grad]
        reply = self.request({"op": "call", "name": name, "args": sent[0], "kwargs": sent[1], "grad": grad,
                              "count": count, "call": self.calls, "timeout": self.call_timeout},
                             self.call_timeout)
        after = wire.leaves(reply.get("args"))
        if len(after) == len(originals):  # what the call did to its arguments, done here too
            for old, new in zip(originals, after):
                _copy_into(old, new)
        value = reply.get("value")
        outputs = [t for t in wire.leaves(value) if isinstance(t, torch.Tensor) and t.requires_grad]
        if needs_grad and outputs:  # a result with no graph simply has no gradient here either
            call = self.calls
            linked = _remote_grad().apply(lambda grads: self.backward(call, grads, needs_grad), outputs, *needs_grad)
            value = wire.replace_tensors(value, dict(zip(map(id, outputs), linked)))
        count_ops = reply.get("count")
        return value, count_ops if isinstance(count_ops, int) else None

    def backward(self, call: int, grads: list, inputs: list) -> list:
        reply = self.request({"op": "backward", "call": call, "grads": [g.detach() for g in grads],
                              "timeout": self.call_timeout}, self.call_timeout)
        values = reply.get("value")
        if not isinstance(values, list) or len(values) != len(inputs):
            raise wire.WireError("gradients that do not match the inputs")
        out = []
        for g, t in zip(values, inputs):
            ok = g is None or (hasattr(g, "shape") and tuple(g.shape) == tuple(t.shape))
            if not ok:
                raise wire.WireError("a gradient of the wrong shape")
            out.append(None if g is None else g.to(t.dtype))
        return out


def _copy_into(old, new) -> None:
    """Make the grader's argument ``old`` hold what the submission's copy of it holds after a call."""
    import numpy as np
    import torch

    if isinstance(old, np.ndarray) and isinstance(new, np.ndarray):
        if old.shape == new.shape and old.flags.writeable and not np.array_equal(old, new, equal_nan=True):
            old[...] = new
    elif isinstance(old, torch.Tensor) and isinstance(new, torch.Tensor) and old.shape == new.shape:
        new = new.to(old.dtype)
        if not torch.equal(old.detach(), new):
            with torch.no_grad():
                old.copy_(new)


@functools.cache
def _remote_grad():
    import torch

    class RemoteGrad(torch.autograd.Function):
        """Outputs computed in the sandbox, linked to the grader's inputs that require grad: their
        backward asks the sandbox for the gradients (``_Sandboxed.backward``)."""

        @staticmethod
        def forward(ctx, backward, outputs, *inputs):
            ctx.remote_backward = backward
            return tuple(o.detach().clone() for o in outputs)

        @staticmethod
        def backward(ctx, *grad_outputs):
            return (None, None, *ctx.remote_backward(list(grad_outputs)))

    return RemoteGrad


class Environment(dict):
    """What otter's test functions receive, by parameter name: NumPy as ``np``, PyTorch as ``torch``,
    ``count_torch_ops``, and for any other name a stand-in that calls the submission's function
    of that name in its sandbox."""

    def __init__(self, submission: _Sandboxed):
        import numpy as np
        import torch

        super().__init__(np=np, torch=torch, count_torch_ops=self.count_torch_ops)
        self.submission = submission

    def get(self, name, default=None):
        if name in self:
            return self[name]
        return _Remote(name, self.submission)

    def count_torch_ops(self, fn, *args, **kwargs):
        """``fn(*args, **kwargs)`` and the number of PyTorch operations it ran (counted in the sandbox)."""
        if not isinstance(fn, _Remote):
            raise TypeError("count_torch_ops counts a submission's function")
        return fn.submission.call(fn.name, args, kwargs, count=True)


class _Remote:
    """The submission's function ``name``, called in its sandbox."""

    def __init__(self, name: str, submission: _Sandboxed):
        self.name, self.submission = name, submission
        self.__name__ = name

    def __call__(self, *args, **kwargs):
        return self.submission.call(self.name, args, kwargs)[0]

    def __repr__(self) -> str:
        return f"<the submission's {self.name}>"


@dataclass
class Grader:
    """Everything one assignment's grading needs, made once per class run: the test files (read
    from the autograder; they stay outside every sandbox), and the copy of lstm_lab with the
    references hidden that each sandbox mounts."""

    generated: Generated
    folder: Path

    @classmethod
    def prepare(cls, generated: Generated, folder: Path) -> Grader:
        import zipfile

        import lstm_lab

        folder = Path(folder)
        with zipfile.ZipFile(generated.autograder) as archive:
            for member in archive.namelist():
                if member.startswith("tests/") and member.endswith(".py"):
                    target = folder / "tests" / PurePosixPath(member).name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(archive.read(member))
        hidden_copy(Path(lstm_lab.__file__).parent, folder / "package", HIDDEN.get(generated.name, []))
        return cls(generated, folder)

    def mounts(self) -> dict[Path, Path]:
        import lstm_lab

        here = Path(__file__).parent
        return {self.folder / "package" / "lstm_lab": Path(lstm_lab.__file__).parent,
                here / "worker.py": Path("/grader/worker.py"), here / "wire.py": Path("/grader/wire.py")}

    def test_files(self) -> list[Path]:
        return sorted((self.folder / "tests").glob("*.py"), key=lambda p: _natural(p.stem))


def _test_name(test_case) -> str:
    """A test case's function name (otter calls it "q1 - 3")."""
    return getattr(getattr(test_case.body, "test_func", None), "__name__", test_case.name)


def grade_notebook(generated: Generated, submission: Path, *, cell_timeout: int = CELL_TIMEOUT,
                   notebook_timeout: int = NOTEBOOK_TIMEOUT, grader: Grader | None = None) -> Grade:
    """Grade one submitted notebook: its code runs in a sandbox, the tests run here on what its
    functions return. Never raises for a bad submission."""
    if grader is None:
        with tempfile.TemporaryDirectory(prefix="grader_") as tmp:
            return grade_notebook(generated, submission, cell_timeout=cell_timeout,
                                  notebook_timeout=notebook_timeout, grader=Grader.prepare(generated, Path(tmp)))
    from otter.test_files import create_test_file

    start = time.perf_counter()
    name = Path(submission).name
    try:
        cells, note = sanitized_cells(submission)
    except (OSError, ValueError) as err:
        return Grade(name, "failed", reason=f"the grader could not run it: {_plain(err)}")
    limits = sandbox.Limits(**{**LIMITS.__dict__, "wall_seconds": notebook_timeout})
    reasons, questions, messages, total, possible = [], {}, {}, 0.0, 0.0
    session = sandbox.Session([sys.executable, "-I", "/grader/worker.py"], readonly=grader.mounts(),
                              limits=limits)
    sandboxed = _Sandboxed(session)
    try:
        try:
            report = sandboxed.request({"op": "cells", "cells": cells, "timeout": cell_timeout},
                                         notebook_timeout).get("cells")
            for entry in report if isinstance(report, list) else []:
                if isinstance(entry, (list, tuple)) and len(entry) == 3:
                    index, kind, text = entry
                    reasons.append(f"cell {_plain(index, 8)}: {_plain(kind, 60)}: {_plain(text, 160)}"
                                   if kind != "CellTimeout" else
                                   f"cell {_plain(index, 8)} was stopped after {cell_timeout} s")
        except (sandbox.Stopped, wire.WireError) as err:
            reasons.append(f"its cells did not finish: {_plain(err)}")
        env = Environment(sandboxed)
        for path in grader.test_files():
            test_file = create_test_file(str(path), None)
            test_file.run(env)
            questions[path.stem] = test_file.score
            total += test_file.score
            possible += test_file.possible
            failed = [f"{_test_name(r.test_case)}: {r.message.strip().splitlines()[-1]}"
                      for r in test_file.test_case_results if not r.passed]
            if failed:
                messages[path.stem] = _plain("; ".join(failed), 600)
    finally:
        outcome = session.close()
    if session.stopped and not outcome.timed_out:
        reasons.append(f"its sandbox was stopped: {session.stopped}")
    status = "timeout" if outcome.timed_out else ("errors" if reasons else "ok")
    if outcome.timed_out:
        reasons.insert(0, f"the notebook ran longer than {notebook_timeout} s")
    if outcome.truncated:
        note = "; ".join(filter(None, [note, f"its {' and '.join(outcome.truncated)} was cut at the limit"]))
    return Grade(name, status, total, possible, questions, "; ".join(reasons), time.perf_counter() - start,
                 messages, note)


def require_linux(platform: str = sys.platform) -> None:
    """Grading runs each submission in a bubblewrap sandbox: Linux only."""
    if not platform.startswith("linux"):
        raise SystemExit("grading needs Linux: each submission runs in a bubblewrap sandbox, which is "
                         "made of Linux namespaces (elsewhere, grade with otter's Docker image, as "
                         "book/instructors.md explains; the student side of the assignments works "
                         "on every system)")


def grade_folder(name: str, submissions: Path, out_csv: Path | None = None, *, generated_in: Path = BUILD,
                 cell_timeout: int = CELL_TIMEOUT, notebook_timeout: int = NOTEBOOK_TIMEOUT) -> list[Grade]:
    """Grade every ``*.ipynb`` under ``submissions`` (recursively) and write the scores as CSV."""
    require_linux()
    masters = [p.stem for p in master_paths()]
    if name not in masters:
        raise SystemExit(f"unknown assignment {name!r}; the masters are {masters}")
    try:
        generated = Generated.find(name, generated_in)
    except FileNotFoundError as err:
        raise SystemExit(str(err)) from None
    why = sandbox.missing_cached()
    if why:
        raise SystemExit(f"grading runs each submission in a sandbox, and there is none here: {why}")
    paths = sorted(p for p in Path(submissions).rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    if not paths:
        raise SystemExit(f"no .ipynb files under {submissions}")
    sheet = None
    if out_csv is not None:
        sheet = ScoreSheet(out_csv, autograded_questions(MASTERS / f"{name}.ipynb"), grader_version(generated))
    grades = []
    try:
        with tempfile.TemporaryDirectory(prefix="grader_") as tmp:
            grader = Grader.prepare(generated, Path(tmp))
            for path in paths:
                grade = grade_notebook(generated, path, cell_timeout=cell_timeout, notebook_timeout=notebook_timeout,
                                       grader=grader)
                grade.submission = path.relative_to(submissions).as_posix()
                print(f"{grade.submission}: {grade.total:g}/{grade.possible:g} {grade.status} "
                      f"({grade.seconds:.1f} s)" + (f" - {grade.reason}" if grade.reason else ""))
                grades.append(grade)
                if sheet is not None:
                    sheet.add(grade, student_id(grade.submission, name))
    finally:
        if sheet is not None:
            sheet.close()
    return grades


def autograded_questions(master: Path) -> list[str]:
    """The names of a master's autograded questions (its manual ones left out), in order."""
    names = []
    for cell in json.loads(Path(master).read_text(encoding="utf-8"))["cells"]:
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "raw" and source.startswith("# BEGIN QUESTION"):
            fields = dict(line.split(":", 1) for line in source.splitlines()[1:] if ":" in line)
            if fields.get("manual", "false").strip().lower() != "true":
                names.append(fields["name"].strip())
    return names


def student_id(submission: str, assignment: str) -> str:
    """Who handed in ``submission`` (its path under the submissions folder): the file's name
    without ``.ipynb``, or its folder's when the file carries only the assignment's name
    (``alice/a1_rnn_bptt.ipynb`` is alice's)."""
    path = PurePosixPath(submission)
    return path.parent.as_posix() if path.stem == assignment and len(path.parts) > 1 else path.stem


def grader_version(generated: Generated) -> str:
    """What graded: the course package and its commit, otter-grader, and the autograder used."""
    import lstm_lab

    try:
        import otter
        otter_version = otter.__version__
    except ImportError:
        otter_version = "missing"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip() or "no git"
    return f"lstm_lab {lstm_lab.__version__} ({commit}); otter-grader {otter_version}; {generated.autograder.name}"


class ScoreSheet:
    """The CSV of a class run, written row by row: each row reaches the disk as soon as its
    submission is graded, so a run that is stopped keeps every row graded before the stop.

    Columns: student, submission, status, one per autograded question, total, possible,
    seconds, reason (why cells or the notebook failed), note (what the grader noticed, such as
    a notebook without otter's metadata), one message column per question (the tests it failed
    and why), grader."""

    def __init__(self, path: Path, questions: list[str], grader: str):
        self.path, self.questions, self.grader = Path(path), list(questions), grader
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "w", newline="", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self._writer = csv.writer(self._file)
        self._write(["student", "submission", "status", *self.questions, "total", "possible", "seconds",
                     "reason", "note", *(f"{q} message" for q in self.questions), "grader"])

    def _write(self, row: list) -> None:
        self._writer.writerow(row)
        self._file.flush()
        os.fsync(self._file.fileno())

    def add(self, grade: Grade, student: str) -> None:
        self._write([student, grade.submission, grade.status, *(grade.questions.get(q, 0.0) for q in self.questions),
                     grade.total, grade.possible, f"{grade.seconds:.1f}", grade.reason, grade.note,
                     *(grade.messages.get(q, "") for q in self.questions), self.grader])

    def close(self) -> None:
        self._file.close()


def _natural(text: str):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


# ----------------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.assignments", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="student notebooks and autograders for every master (or those named)")
    gen.add_argument("names", nargs="*")
    gen.add_argument("--out", type=Path, default=BUILD)
    gen.add_argument("--no-run-tests", action="store_true", help="skip otter's check of the solutions")
    grd = sub.add_parser("grade", help="grade a folder of submitted notebooks into a CSV")
    grd.add_argument("name", help="the assignment, e.g. a1_rnn_bptt")
    grd.add_argument("submissions", type=Path)
    grd.add_argument("--out", type=Path, default=None, help="CSV path (default: <submissions>/scores.csv)")
    grd.add_argument("--generated", type=Path, default=BUILD, help="where `generate` wrote the autograders")
    grd.add_argument("--cell-timeout", type=int, default=CELL_TIMEOUT)
    grd.add_argument("--timeout", type=int, default=NOTEBOOK_TIMEOUT, help="seconds per notebook")
    args = parser.parse_args(argv)
    if args.command == "generate":
        generate(args.names or None, args.out, run_tests=not args.no_run_tests)
    else:
        out = args.out or args.submissions / "scores.csv"
        grade_folder(args.name, args.submissions, out, generated_in=args.generated,
                     cell_timeout=args.cell_timeout, notebook_timeout=args.timeout)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
