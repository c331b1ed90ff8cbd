"""Every attack on the grader that the grading-sandbox issue lists, graded in one class run.

The submissions folder holds one notebook per attack (tests/grading_attacks.py), honest
classmates before and after them, an untouched notebook after the IPython-startup attack, and
the honest twin of the one attack that earns something honestly. Each test checks one attack's
row: it scores what its honest twin scores (nothing, for the attacks on unanswered notebooks), its
code never ran outside the sandbox, and the other submissions of the run were not touched.
"""

from __future__ import annotations

import csv
import hashlib
import socket
import sys
import threading
import time
from pathlib import Path

import grading_attacks as attacks
import pytest

from tools import assignments as A
from tools import sandbox

_why = sandbox.missing_cached()
pytestmark = pytest.mark.skipif(_why is not None, reason=f"grading needs its sandbox: {_why}")
NAME = "a1_rnn_bptt"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Listener:
    """A TCP port on this machine's loopback that records every connection made to it."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port, self.connections, self.running = self.server.getsockname()[1], 0, True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.running:
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self):
        self.running = False
        self.thread.join(timeout=5)
        self.server.close()


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> dict[str, A.Generated]:
    return {g.name: g for g in A.generate(None, tmp_path_factory.mktemp("generated"), run_tests=False)}


@pytest.fixture(scope="module")
def run(tmp_path_factory, generated):
    """One class run over every attack; returns the grades by file stem and what was watched."""
    base = tmp_path_factory.mktemp("attacks")
    generated = generated[NAME]
    solution, student = attacks.read(generated.solution), attacks.read(generated.student)
    subs = base / "submissions"
    spy = base / "spy"
    spy.mkdir()
    listener = Listener()
    ctx = attacks.Context(marker=spy / "code-ran-in-the-grader", submissions=subs, port=listener.port)
    attacks.write(solution, subs / "aa_classmate.ipynb")
    for n, attack in enumerate(attacks.ATTACKS):
        attacks.write(attack(solution, student, ctx), subs / f"b{n:02d}_{attack.__name__}.ipynb")
    attacks.write(attacks.with_q1(student, "import numpy as np\n\ndef rnn_forward(x, h0, W_xh, W_hh, b_h):\n"
                                           "    return np.zeros((x.shape[0], x.shape[1], h0.shape[1]))\n"),
                  subs / "c_patched_allclose_twin.ipynb")
    attacks.write(student, subs / "y_untouched.ipynb")
    attacks.write(solution, subs / "zz_classmate.ipynb")
    before = {p.name: _digest(p) for p in subs.glob("*.ipynb")}
    autograder = _digest(generated.autograder)

    peak, watching = [_rss_mb(), _rss_mb()], True

    def watch():
        while watching:
            peak[1] = max(peak[1], _rss_mb())
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out = base / "scores.csv"
    grades = A.grade_folder(NAME, subs, out, generated_in=generated.autograder.parents[2], cell_timeout=20,
                            notebook_timeout=60)
    watching = False
    watcher.join()
    time.sleep(6)  # longer than the detached process waits before it strikes
    listener.close()
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    yield {"grades": {Path(g.submission).stem: g for g in grades}, "rows": rows, "ctx": ctx, "subs": subs,
           "before": before, "after": {p.name: _digest(p) for p in subs.glob("*.ipynb")}, "spy": spy,
           "listener": listener, "autograder": (autograder, _digest(generated.autograder)),
           "rss": peak, "generated": generated}


def grade_of(run, attack) -> A.Grade:
    return run["grades"][f"b{attacks.ATTACKS.index(attack):02d}_{attack.__name__}"]


def test_honest_classmates_score_full_marks_before_and_after_the_attacks(run):
    for stem in ("aa_classmate", "zz_classmate"):
        grade = run["grades"][stem]
        assert grade.status == "ok" and grade.total == grade.possible == 10, grade


@pytest.mark.parametrize("attack", [attacks.reference_by_getattr, attacks.reference_by_importlib,
                                    attacks.reference_as_default_argument], ids=lambda a: a.__name__)
def test_the_reference_cannot_be_reached_under_any_name(run, attack):
    grade = grade_of(run, attack)
    assert grade.total == 0 and grade.possible == 10, grade
    assert "write it yourself" in grade.messages["q1"], grade.messages


def test_patching_numpy_inside_gains_nothing(run):
    grade, twin = grade_of(run, attacks.patched_allclose), run["grades"]["c_patched_allclose_twin"]
    assert grade.questions == twin.questions and grade.total == twin.total <= 1, (grade, twin)  # the shape only


def test_patching_otter_inside_gains_nothing(run):
    grade = grade_of(run, attacks.patched_otter)
    assert grade.total == 0 and grade.possible == 10, grade


def test_the_tests_cannot_be_rewritten(run):
    grade = grade_of(run, attacks.rewritten_tests)
    assert grade.total == 0 and grade.possible == 10, grade
    assert run["autograder"][0] == run["autograder"][1]
    assert not list(run["subs"].rglob("tests"))


def test_a_forged_result_runs_no_code_in_the_grader(run):
    grade = grade_of(run, attacks.forged_results)
    assert grade.total == 0, grade
    assert not run["ctx"].marker.exists()
    assert run["listener"].connections == 0


def test_code_in_metadata_never_runs(run):
    grade = grade_of(run, attacks.code_in_metadata)
    assert grade.total == 0 and grade.possible == 10, grade
    assert not run["ctx"].marker.exists()


def test_a_detached_process_touches_nothing_and_does_not_survive(run):
    grade = grade_of(run, attacks.detached_process)
    assert grade.total == 0, grade
    assert run["before"] == run["after"], "a submission was changed"
    assert not list(run["spy"].glob("stolen_*")), "a notebook was copied out"
    rows = run["rows"]
    assert len(rows) == len(run["grades"]) and all(r["total"] not in ("", "zeroed") for r in rows)
    leftovers = [p for p in Path("/proc").glob("[0-9]*/cmdline")
                 if b"stolen_" in (p.read_bytes() if p.exists() else b"")]
    assert not leftovers, "the detached process outlived grading"


def test_an_ipython_startup_file_reaches_no_later_notebook(run):
    grade = grade_of(run, attacks.ipython_startup)
    assert grade.total == 0, grade
    later = run["grades"]["y_untouched"]
    assert later.total == 0 and later.possible == 10, later
    assert not (Path.home() / ".ipython" / "profile_default" / "startup" / "00-answers.py").exists()


def test_killing_the_grader_stops_only_its_own_grading(run):
    grade = grade_of(run, attacks.kill_the_grader)
    assert grade.total == 0, grade
    assert {r["submission"] for r in run["rows"]} == {f"{stem}.ipynb" for stem in run["grades"]}


def test_huge_output_is_cut_and_the_grader_stays_small(run):
    grade = grade_of(run, attacks.huge_output)
    assert grade.total == grade.possible == 10, grade
    assert "stdout was cut" in grade.note, grade.note
    start, peak = run["rss"]
    assert peak - start < 150, f"the grader grew by {peak - start:.0f} MB while grading"


def test_an_honest_comment_is_never_penalised(run):
    grade = grade_of(run, attacks.honest_comment)
    assert grade.total == grade.possible == 10, grade


def test_a_notebook_without_otter_metadata_is_graded_and_says_so(run):
    grade = grade_of(run, attacks.no_otter_metadata)
    assert grade.total == grade.possible == 10, grade
    assert "no otter metadata" in grade.note
    row = next(r for r in run["rows"] if r["submission"].startswith("b13_"))
    assert "no otter metadata" in row["note"]


def test_the_csv_names_each_failed_test_and_why(run):
    row = next(r for r in run["rows"] if r["submission"] == "y_untouched.ipynb")
    assert "test_forward_shape: AssertionError: rnn_forward returned None" in row["q1 message"]
    assert row["note"] == "" and row["status"] == "ok"


def test_the_autograder_for_gradescope_installs_torch_and_lstm_lab(run):
    import zipfile

    with zipfile.ZipFile(run["generated"].autograder) as archive:
        environment = archive.read("environment.yml").decode()
    assert "torch" in environment and "lstm-lab @ git+" in environment, environment


@pytest.mark.parametrize("assignment", sorted(A.HIDDEN))
def test_every_hidden_reference_is_a_stub_inside_the_sandbox(assignment, generated, tmp_path):
    """Each function HIDDEN names, looked up inside the sandbox the way grading mounts lstm_lab,
    is a signature and docstring over a NotImplementedError, and the package still imports."""
    grader = A.Grader.prepare(generated[assignment], tmp_path / "grader")
    specs = [s for s in A.HIDDEN[assignment] if not s.endswith(":*")]
    modules = [s.partition(":")[0] for s in A.HIDDEN[assignment] if s.endswith(":*")]
    code = f"""
import ast, importlib, inspect, json, textwrap
report = {{}}
for spec in {specs!r}:
    module, _, name = spec.partition(":")
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    report[spec] = [type(n).__name__ for n in ast.parse(textwrap.dedent(inspect.getsource(obj))).body[0].body]
for module in {modules!r}:
    m = importlib.import_module(module)
    for name, fn in vars(m).items():
        if inspect.isfunction(fn) and fn.__module__ == module:
            report[module + ":" + name] = [type(n).__name__ for n in
                                           ast.parse(textwrap.dedent(inspect.getsource(fn))).body[0].body]
import lstm_lab, lstm_lab.nn, lstm_lab.scratch, lstm_lab.nn.ssm, lstm_lab.nn.scan
print(json.dumps(report))
"""
    outcome = sandbox.run([sys.executable, "-c", code], readonly=grader.mounts())
    assert outcome.ok, outcome.stderr.decode()[-2000:]
    import json

    report = json.loads(outcome.stdout)
    assert set(specs) <= set(report) and len(report) >= len(A.HIDDEN[assignment])
    for spec, body in report.items():
        assert body in (["Raise"], ["Expr", "Raise"]), f"{spec} still has a body inside the sandbox: {body}"
