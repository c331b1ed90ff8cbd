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
        grades every ``*.ipynb`` under the folder SUBMISSIONS with the autograder of NAME, on
        this machine, without Docker, and writes one CSV row per notebook: the score of each
        question, the total, and a status with the reason when something went wrong.

Each submission is graded in its own process, under its own name-independent copy, with a
time limit per cell (a cell that runs longer is interrupted and the rest still runs) and one
for the whole notebook (the process is killed and the submission scores 0 with status
"timeout"), so one bad notebook never stops the others.
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

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
    """Copy the package folder ``package`` to ``out/<its name>``, with each function named
    ``"package.module:function"`` in ``hidden`` reduced to its signature and docstring and a
    body that raises ``NotImplementedError``. No bytecode is copied, so the hidden bodies are
    nowhere in the copy. This copy is what grading mounts in the sandbox in place of the package,
    so the reference for a question a student answers cannot be called, imported under another
    name or read, while everything else in the package works."""
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
    for path, functions in wanted.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found = set()
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in functions:
                found.add(node.name)
                doc = [node.body[0]] if ast.get_docstring(node) is not None else []
                message = HIDDEN_MESSAGE.format(name=node.name)
                node.body = doc + [ast.parse(f"raise NotImplementedError({message!r})").body[0]]
        missing = sorted(functions - found)
        if missing:
            raise ValueError(f"hidden: {path.relative_to(package.parent)} defines no top-level {missing}")
        (target / path.relative_to(package)).write_text(ast.unparse(tree) + "\n", encoding="utf-8")
    return target


# ----------------------------------------------------------------------------- grading
@dataclass
class Grade:
    """The result for one submission; ``status`` is "ok", "errors" (some cells raised or timed out),
    "timeout" (the whole notebook ran too long) or "failed" (the grader could not run it)."""

    submission: str
    status: str
    total: float = 0.0
    possible: float = 0.0
    questions: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    seconds: float = 0.0


def _grade_one(autograder: str, submission: str, out: str, cell_timeout: int) -> None:
    """Child process: grade one notebook with otter's Python API and write a JSON summary."""
    import nbconvert.preprocessors as preprocessors
    from traitlets import Bool, Dict, Integer

    class TimedExecutePreprocessor(preprocessors.ExecutePreprocessor):
        """Interrupt a cell after ``cell_timeout`` seconds, record it as an error, and go on."""

        timeout = Integer(cell_timeout, allow_none=True).tag(config=True)
        interrupt_on_timeout = Bool(True).tag(config=True)
        error_on_timeout = Dict(
            {"ename": "CellTimeout", "evalue": f"the cell ran longer than {cell_timeout} s and was stopped",
             "traceback": []},
            allow_none=True,
        ).tag(config=True)

    # otter 7 grades outside Docker through nbconvert's ExecutePreprocessor, imported when it
    # grades, with no option for a time limit: give it one that has a limit.
    preprocessors.ExecutePreprocessor = TimedExecutePreprocessor
    from otter.api import grade_submission

    results = grade_submission(submission, autograder, quiet=True)
    errors = []
    for cell in results.notebook.cells if results.notebook is not None else []:
        for output in cell.get("outputs", []):
            if output.get("output_type") != "error":
                continue
            if output.get("ename") in ("KeyboardInterrupt", "CellTimeout"):  # our time limit
                errors.append(f"a cell ran too long and was stopped after {cell_timeout} s")
            else:
                errors.append(f"{output.get('ename')}: {output.get('evalue')}".strip()[:160])
    summary = {
        "total": results.total,
        "possible": results.possible,
        "questions": {q: r.score for q, r in results.results.items()},
        "errors": errors,
        "catastrophic": repr(results.catastrophic_error) if results.catastrophic_error else "",
    }
    Path(out).write_text(json.dumps(summary), encoding="utf-8")


def grade_notebook(generated: Generated, submission: Path, *, cell_timeout: int = CELL_TIMEOUT,
                   notebook_timeout: int = NOTEBOOK_TIMEOUT) -> Grade:
    """Grade one submitted notebook in a child process; never raises for a bad submission."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="grade_") as tmp:
        # otter's first cell opens "<name>.ipynb", so the copy must carry the assignment's name
        copy = Path(tmp) / f"{generated.name}.ipynb"
        shutil.copyfile(submission, copy)
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "tools.assignments", "_grade-one", str(generated.autograder), str(copy),
               str(out), "--cell-timeout", str(cell_timeout)]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        try:
            log, _ = proc.communicate(timeout=notebook_timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the kernel too: it is in the same session
            proc.communicate()
            return Grade(submission.name, "timeout", reason=f"the notebook ran longer than {notebook_timeout} s",
                         seconds=time.perf_counter() - start)
        seconds = time.perf_counter() - start
        if proc.returncode != 0 or not out.exists():
            last = (log or "").strip().splitlines()[-1:] or ["no output"]
            return Grade(submission.name, "failed", reason=f"the grader could not run it: {last[0][:200]}",
                         seconds=seconds)
        summary = json.loads(out.read_text(encoding="utf-8"))
    reasons = summary["errors"] + ([summary["catastrophic"]] if summary["catastrophic"] else [])
    return Grade(submission.name, "errors" if reasons else "ok", summary["total"], summary["possible"],
                 summary["questions"], "; ".join(reasons), seconds)


def require_posix(os_name: str = os.name) -> None:
    """Grading stops a submission's whole process group at its time limit: POSIX only."""
    if os_name != "posix":
        raise SystemExit("grading needs Linux or macOS: it stops each submission's process group "
                         "at its time limit, which Windows does not have (the student side of the "
                         "assignments works on Windows)")


def grade_folder(name: str, submissions: Path, out_csv: Path | None = None, *, generated_in: Path = BUILD,
                 cell_timeout: int = CELL_TIMEOUT, notebook_timeout: int = NOTEBOOK_TIMEOUT) -> list[Grade]:
    """Grade every ``*.ipynb`` under ``submissions`` (recursively) and write the scores as CSV."""
    require_posix()
    masters = [p.stem for p in master_paths()]
    if name not in masters:
        raise SystemExit(f"unknown assignment {name!r}; the masters are {masters}")
    try:
        generated = Generated.find(name, generated_in)
    except FileNotFoundError as err:
        raise SystemExit(str(err)) from None
    paths = sorted(p for p in Path(submissions).rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    if not paths:
        raise SystemExit(f"no .ipynb files under {submissions}")
    sheet = None
    if out_csv is not None:
        sheet = ScoreSheet(out_csv, autograded_questions(MASTERS / f"{name}.ipynb"), grader_version(generated))
    grades = []
    try:
        for path in paths:
            grade = grade_notebook(generated, path, cell_timeout=cell_timeout, notebook_timeout=notebook_timeout)
            grade.submission = path.relative_to(submissions).as_posix()
            print(f"{grade.submission}: {grade.total:g}/{grade.possible:g} {grade.status} ({grade.seconds:.1f} s)"
                  + (f" - {grade.reason}" if grade.reason else ""))
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
    seconds, reason, grader."""

    def __init__(self, path: Path, questions: list[str], grader: str):
        self.path, self.questions, self.grader = Path(path), list(questions), grader
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "w", newline="", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self._writer = csv.writer(self._file)
        self._write(["student", "submission", "status", *self.questions, "total", "possible", "seconds",
                     "reason", "grader"])

    def _write(self, row: list) -> None:
        self._writer.writerow(row)
        self._file.flush()
        os.fsync(self._file.fileno())

    def add(self, grade: Grade, student: str) -> None:
        self._write([student, grade.submission, grade.status, *(grade.questions.get(q, 0.0) for q in self.questions),
                     grade.total, grade.possible, f"{grade.seconds:.1f}", grade.reason, self.grader])

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
    one = sub.add_parser("_grade-one")  # internal: the child process of `grade`
    one.add_argument("autograder")
    one.add_argument("submission")
    one.add_argument("out")
    one.add_argument("--cell-timeout", type=int, default=CELL_TIMEOUT)
    args = parser.parse_args(argv)
    if args.command == "generate":
        generate(args.names or None, args.out, run_tests=not args.no_run_tests)
    elif args.command == "grade":
        out = args.out or args.submissions / "scores.csv"
        grade_folder(args.name, args.submissions, out, generated_in=args.generated,
                     cell_timeout=args.cell_timeout, notebook_timeout=args.timeout)
        print(f"wrote {out}")
    else:
        _grade_one(args.autograder, args.submission, args.out, args.cell_timeout)


if __name__ == "__main__":
    main()
