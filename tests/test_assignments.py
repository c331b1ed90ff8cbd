"""The autograded assignments, through the real generation and grading path (otter assign, the sandbox).

For every master in assignments/: the reference solution scores full marks; the student notebook,
unmodified, runs to the end and scores zero; a half-finished one scores partial marks; and no
solution line and no hidden test reaches anything a student receives. For one assignment, the
bad submissions an instructor will meet: a syntax error, a cell that raises, a cell that never
ends, a deleted check cell, graded together as a folder into a CSV.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest

from tools import assignments as A
from tools import course, sandbox

MASTERS = A.master_paths()
NAMES = [p.stem for p in MASTERS]
pytestmark = pytest.mark.skipif(not MASTERS, reason="no assignment masters")
_no_sandbox = sandbox.missing_cached()
needs_sandbox = pytest.mark.skipif(_no_sandbox is not None, reason=f"grading needs its sandbox: {_no_sandbox}")


@pytest.fixture(scope="session")
def generated(tmp_path_factory) -> dict[str, A.Generated]:
    """Every assignment, generated once into a temporary folder (otter assign, as `make assignments`)."""
    out = tmp_path_factory.mktemp("assignments")
    return {g.name: g for g in A.generate(None, out, run_tests=False)}


# ----------------------------------------------------------------------------- reading a master
def _config_lines(source: str) -> list[str]:
    """The source of a test cell without its ``# BEGIN TEST CONFIG`` block."""
    return re.sub(r'""" # BEGIN TEST CONFIG.*?""" # END TEST CONFIG', "", source, flags=re.S).splitlines()


def master_parts(path) -> dict[str, set[str]]:
    """Lines of a master, sorted into solution lines, hidden-test lines and everything else."""
    nb = nbformat.read(path, as_version=4)
    parts = {"solution": set(), "hidden": set(), "other": set()}
    in_solution = in_tests = False
    for cell in nb.cells:
        text = cell.source
        if cell.cell_type == "raw":
            head = text.strip().splitlines()[0] if text.strip() else ""
            in_solution = {"# BEGIN SOLUTION": True, "# END SOLUTION": False}.get(head, in_solution)
            in_tests = {"# BEGIN TESTS": True, "# END TESTS": False}.get(head, in_tests)
            continue
        if in_tests:
            hidden = re.search(r"BEGIN TEST CONFIG.*hidden:\s*true.*END TEST CONFIG", text, flags=re.S)
            parts["hidden" if hidden else "other"].update(_config_lines(text))
        elif in_solution and cell.cell_type == "markdown":
            parts["solution"].update(text.splitlines())
        elif in_solution:
            marked = False
            for line in text.splitlines():
                if line.strip() == "# BEGIN SOLUTION":
                    marked = True
                elif line.strip() == "# END SOLUTION":
                    marked = False
                elif marked or line.rstrip().endswith("# SOLUTION"):
                    parts["solution"].add(line.replace("# SOLUTION", ""))
                else:
                    parts["other"].add(line)
        else:
            parts["other"].update(text.splitlines())
    # a secret is a line of some substance that appears nowhere a student is meant to see it,
    # compared without whitespace (otter rewrites test code, and a line may be split differently)
    elsewhere = _squash("\n".join(parts["other"]))
    secret = lambda line: (len(line.strip()) >= 12 and not line.strip().startswith("#")  # noqa: E731
                           and _squash(line) not in elsewhere)
    return {"solution": {x.strip() for x in parts["solution"] if secret(x)},
            "hidden": {x.strip() for x in parts["hidden"] if secret(x)}}


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _student_texts(g: A.Generated) -> dict[str, str]:
    files = [g.student, *sorted(g.student_tests.rglob("*"))]
    return {f.name: f.read_text(encoding="utf-8") for f in files if f.is_file()}


# ----------------------------------------------------------------------------- the masters
@pytest.mark.parametrize("path", MASTERS, ids=NAMES)
def test_master_has_questions_points_public_and_hidden_tests(path):
    text = path.read_text(encoding="utf-8")
    assert "# ASSIGNMENT CONFIG" in text
    nb = nbformat.read(path, as_version=4)
    assert course._is_setup_cell(nb.cells[0]), "the first cell is the course's setup cell (make sync)"
    assert nb.cells[0].source == course.assignment_setup_cell_source()
    questions = [c.source for c in nb.cells if c.cell_type == "raw" and c.source.startswith("# BEGIN QUESTION")]
    assert len(questions) >= 3 and all("points:" in q for q in questions)
    parts = master_parts(path)
    assert parts["solution"] and parts["hidden"], "every master has solutions and hidden tests"


@pytest.mark.parametrize("name", NAMES)
def test_student_notebook_has_no_solution_and_no_hidden_test(generated, name):
    g = generated[name]
    parts = master_parts(A.MASTERS / f"{name}.ipynb")
    secrets = parts["solution"] | parts["hidden"]
    for fname, text in _student_texts(g).items():
        squashed = _squash(text)
        leaked = sorted(s for s in secrets if _squash(s) in squashed)
        assert not leaked, f"{name}: {fname} contains master-only lines: {leaked[:3]}"
        assert not re.search(r"""["']hidden["']\s*:\s*True""", text), f"{name}: {fname} holds a hidden test case"
    student = nbformat.read(g.student, as_version=4)
    assert course._is_setup_cell(student.cells[0]), "the student notebook starts with the setup cell"


@needs_sandbox
@pytest.mark.parametrize("name", NAMES)
def test_reference_solution_scores_full_marks(generated, name):
    g = generated[name]
    grade = A.grade_notebook(g, g.solution)
    assert grade.status == "ok", grade.reason
    assert grade.possible > 0 and grade.total == grade.possible, grade


@needs_sandbox
@pytest.mark.parametrize("name", NAMES)
def test_unmodified_student_notebook_runs_and_scores_zero(generated, name):
    g = generated[name]
    grade = A.grade_notebook(g, g.student)
    assert grade.status in ("ok", "errors"), grade.reason  # ran to the end: not "timeout" or "failed"
    assert grade.possible > 0 and grade.total == 0, grade


def _answer_cells(nb) -> list[int]:
    return [i for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and "otter_answer_cell" in c.metadata.get("tags", [])]


def _solution_answer_cells(g: A.Generated) -> list[int]:
    """Indices of the solution notebook's cells that are answer cells in the student notebook
    (matched by their first line, the ``def`` the student completes)."""
    student = nbformat.read(g.student, as_version=4)
    firsts = {student.cells[i].source.split("\n")[0] for i in _answer_cells(student)}
    solution = nbformat.read(g.solution, as_version=4)
    return [i for i, c in enumerate(solution.cells) if c.cell_type == "code" and c.source.split("\n")[0] in firsts]


def half_finished(g: A.Generated, path):
    """The student notebook with only the first answer cell filled in from the solution."""
    student = nbformat.read(g.student, as_version=4)
    solution = nbformat.read(g.solution, as_version=4)
    student.cells[_answer_cells(student)[0]].source = solution.cells[_solution_answer_cells(g)[0]].source
    nbformat.write(student, path)
    return path


@needs_sandbox
@pytest.mark.parametrize("name", NAMES)
def test_half_finished_submission_scores_partial_marks(generated, name, tmp_path):
    g = generated[name]
    grade = A.grade_notebook(g, half_finished(g, tmp_path / "half.ipynb"))
    assert 0 < grade.total < grade.possible, grade
    first = min(grade.questions, key=A._natural)
    assert grade.questions[first] > 0, grade


# ----------------------------------------------------------------------------- bad submissions
def _variant(g: A.Generated, path, edit):
    nb = nbformat.read(g.solution, as_version=4)
    edit(nb)
    nbformat.write(nb, path)


@needs_sandbox
def test_bad_submissions_each_get_a_score_and_a_reason(generated, tmp_path):
    g = generated[NAMES[0]]
    subs = tmp_path / "submissions"
    subs.mkdir()
    full = A.grade_notebook(g, g.solution)
    answers = _solution_answer_cells(g)
    assert len(answers) >= 2, "found the answer cells in the solution notebook"

    def syntax_error(nb):
        nb.cells[answers[-1]].source = "def broken(:\n    pass\n"

    def raises(nb):
        nb.cells.insert(answers[0] + 1, nbformat.v4.new_code_cell('raise RuntimeError("a student bug")'))

    def loops(nb):
        nb.cells.insert(answers[0] + 1, nbformat.v4.new_code_cell("while True:\n    pass"))

    def deletes_check(nb):
        nb.cells = [c for c in nb.cells if "grader.check(" not in c.source]

    for name, edit in [("syntax", syntax_error), ("raises", raises), ("loops", loops),
                       ("no_checks", deletes_check)]:
        _variant(g, subs / f"{name}.ipynb", edit)
    (subs / "not_a_notebook.ipynb").write_text("this is not JSON", encoding="utf-8")
    (subs / "nested").mkdir()
    _variant(g, subs / "nested" / "fine.ipynb", lambda nb: None)

    out = tmp_path / "scores.csv"
    grades = {gr.submission: gr for gr in A.grade_folder(g.name, subs, out, generated_in=g.autograder.parents[2],
                                                            cell_timeout=8, notebook_timeout=240)}
    assert set(grades) == {"syntax.ipynb", "raises.ipynb", "loops.ipynb", "no_checks.ipynb", "nested/fine.ipynb",
                           "not_a_notebook.ipynb"}
    broken = grades["not_a_notebook.ipynb"]
    assert broken.status == "failed" and broken.total == 0 and "could not run it" in broken.reason
    assert grades["nested/fine.ipynb"].total == full.total and grades["nested/fine.ipynb"].status == "ok"
    syntax = grades["syntax.ipynb"]
    assert 0 < syntax.total < full.total and "SyntaxError" in syntax.reason
    assert grades["raises.ipynb"].total == full.total and "RuntimeError: a student bug" in grades["raises.ipynb"].reason
    loops = grades["loops.ipynb"]
    assert loops.total == full.total and "stopped after 8 s" in loops.reason, loops  # interrupted, the rest ran
    assert grades["no_checks.ipynb"].total == full.total  # every test runs at the end anyway

    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["submission"] for r in rows] == sorted(grades)
    assert all(float(r["total"]) == grades[r["submission"]].total for r in rows)
    assert {"student", "status", "reason", "possible", "grader"} <= set(rows[0])
    assert [r["student"] for r in rows] == ["loops", "fine", "no_checks", "not_a_notebook", "raises", "syntax"]
    assert all(r["grader"].startswith("lstm_lab ") and g.autograder.name in r["grader"] for r in rows)
    questions = A.autograded_questions(A.MASTERS / f"{g.name}.ipynb")
    assert [k for k in rows[0] if k.startswith("q") and not k.endswith(" message")] == questions
    assert [k for k in rows[0] if k.endswith(" message")] == [f"{q} message" for q in questions]


@needs_sandbox
def test_a_notebook_past_the_time_limit_scores_zero_and_the_rest_go_on(generated, tmp_path):
    g = generated[NAMES[0]]
    subs = tmp_path / "submissions"
    subs.mkdir()
    _variant(g, subs / "a_forever.ipynb",
             lambda nb: nb.cells.insert(2, nbformat.v4.new_code_cell("while True:\n    pass")))
    _variant(g, subs / "b_fine.ipynb", lambda nb: None)
    grades = A.grade_folder(g.name, subs, None, generated_in=g.autograder.parents[2], cell_timeout=600,
                            notebook_timeout=25)
    forever, fine = grades
    assert forever.status == "timeout" and forever.total == 0 and "longer than 25 s" in forever.reason
    assert fine.status == "ok" and fine.total == fine.possible > 0


def test_commands_name_what_is_missing(tmp_path):
    with pytest.raises(SystemExit, match="unknown assignment 'nope'"):
        A.grade_folder("nope", tmp_path)
    with pytest.raises(SystemExit, match="run `make assignments` first"):
        A.grade_folder(NAMES[0], tmp_path, generated_in=tmp_path)
    with pytest.raises(SystemExit, match="unknown assignment"):
        A.generate(["nope"], tmp_path)


def test_grading_says_plainly_that_it_needs_linux():
    A.require_linux("linux")
    with pytest.raises(SystemExit, match="needs Linux"):
        A.require_linux("win32")


# ----------------------------------------------------------------------------- public tests that catch
def _public_score(tests_folder: Path, question: str, env: dict) -> tuple[float, float]:
    """(points, possible) of a question's public tests, run on the functions in ``env``."""
    from otter.test_files import create_test_file

    test_file = create_test_file(str(tests_folder / f"{question}.py"), None)
    test_file.run(env)
    return test_file.grade * test_file.possible, test_file.possible


def _rnn_forward(x, h0, W_xh, W_hh, b_h, *, transpose=False):
    hs = np.empty((x.shape[0], x.shape[1], h0.shape[1]))
    h = h0
    for step in range(x.shape[1]):
        h = np.tanh(x[:, step] @ (W_xh.T if transpose == "W_xh" else W_xh)
                    + h @ (W_hh.T if transpose == "W_hh" else W_hh) + b_h)
        hs[:, step] = h
    return hs


def _rnn_backward(dhs, x, h0, hs, W_hh, *, through_time=True):
    grads = {"W_xh": np.zeros((x.shape[2], hs.shape[2])), "W_hh": np.zeros_like(W_hh),
             "b_h": np.zeros(hs.shape[2])}
    dh_next = np.zeros_like(h0)
    for step in reversed(range(hs.shape[1])):
        h_prev = hs[:, step - 1] if step > 0 else h0
        da = (dhs[:, step] + (dh_next if through_time else 0.0)) * (1.0 - hs[:, step] ** 2)
        grads["W_xh"] += x[:, step].T @ da
        grads["W_hh"] += h_prev.T @ da
        grads["b_h"] += da.sum(axis=0)
        dh_next = da @ W_hh.T
    return {**grads, "h0": dh_next}


@pytest.mark.parametrize("mistake", ["W_hh", "W_xh"])
def test_a1_public_tests_catch_a_transposed_weight(generated, mistake):
    tests = generated["a1_rnn_bptt"].student_tests
    right = _public_score(tests, "q1", {"rnn_forward": _rnn_forward, "np": np})
    assert right[0] == right[1] > 0, "the right forward pass passes every public test"
    wrong = _public_score(tests, "q1", {"rnn_forward": lambda *a: _rnn_forward(*a, transpose=mistake), "np": np})
    assert wrong[0] < wrong[1], f"a forward pass with {mistake} transposed must fail a public test"


def test_a1_public_tests_catch_a_backward_pass_without_the_through_time_term(generated):
    tests = generated["a1_rnn_bptt"].student_tests
    right = _public_score(tests, "q2", {"rnn_backward": _rnn_backward, "np": np})
    assert right[0] == right[1] > 0, "the right backward pass passes every public test"
    wrong = _public_score(tests, "q2", {"rnn_backward": lambda *a: _rnn_backward(*a, through_time=False), "np": np})
    assert wrong[0] < wrong[1], "BPTT that drops dL/dh_t from the future must fail a public test"


# ----------------------------------------------------------------------------- the scores file
def test_autograded_questions_leave_out_the_written_ones():
    assert A.autograded_questions(A.MASTERS / "a1_rnn_bptt.ipynb") == ["q1", "q2", "q3"]


def test_the_student_is_named_by_the_file_or_by_its_folder():
    assert A.student_id("alice_smith.ipynb", "a1_rnn_bptt") == "alice_smith"
    assert A.student_id("alice/a1_rnn_bptt.ipynb", "a1_rnn_bptt") == "alice"
    assert A.student_id("group2/bob/a1_rnn_bptt.ipynb", "a1_rnn_bptt") == "group2/bob"
    assert A.student_id("bob/my_version.ipynb", "a1_rnn_bptt") == "my_version"


def test_each_row_is_on_disk_as_soon_as_it_is_graded(tmp_path):
    """A class run that is killed keeps the rows graded before: each row is flushed at once."""
    sheet = A.ScoreSheet(tmp_path / "scores.csv", ["q1", "q2"], "grader 1")
    sheet.add(A.Grade("alice.ipynb", "ok", 3.0, 5.0, {"q1": 3.0}, "", 4.2, {"q2": "test_b: AssertionError: no"},
                      "no otter metadata"), "alice")
    rows = list(csv.DictReader((tmp_path / "scores.csv").open(encoding="utf-8")))  # before close()
    assert rows == [{"student": "alice", "submission": "alice.ipynb", "status": "ok", "q1": "3.0", "q2": "0.0",
                     "total": "3.0", "possible": "5.0", "seconds": "4.2", "reason": "", "note": "no otter metadata",
                     "q1 message": "", "q2 message": "test_b: AssertionError: no", "grader": "grader 1"}]
    sheet.close()


@needs_sandbox
def test_a_gradient_through_the_students_function_is_computed_in_its_sandbox(generated, tmp_path):
    """a3's q1 asks for a differentiable gru_step: the grader's backward pass goes into the
    sandbox and back. A step that detaches h_prev loses exactly that test's point."""
    g = generated["a3_gru_variants"]

    def detach(nb):
        cell = next(c for c in nb.cells if c.source.startswith("def gru_step(x_t, h_prev, p):"))
        cell.source = cell.source.replace(
            "def gru_step(x_t, h_prev, p):",
            "def gru_step(x_t, h_prev, p):\n    h_prev = torch.from_numpy(h_prev.detach().numpy().copy())", 1)

    _variant(g, tmp_path / "detached.ipynb", detach)
    grade = A.grade_notebook(g, tmp_path / "detached.ipynb")
    assert grade.questions["q1"] == 2.0 and grade.total == 9.0, grade
    assert grade.messages["q1"].startswith("test_gru_vs_torch_grucell:"), grade.messages
