"""The grading sandbox (tools/sandbox.py) holds against what a hostile submission would try.

Each test runs a small program inside the sandbox, the way a student's notebook code would run,
and checks from outside what it could and could not do. Skipped, with the fix, where bubblewrap
is missing.
"""

from __future__ import annotations

import ast
import http.server
import os
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

import lstm_lab
from tools import sandbox

_why = sandbox.missing_cached()
pytestmark = pytest.mark.skipif(_why is not None, reason=f"no sandbox: {_why}")

PY = sys.executable


def run_python(code: str, **kwargs) -> sandbox.Outcome:
    return sandbox.run([PY, "-c", code], **kwargs)


def test_the_code_runs_unprivileged_and_its_results_come_back():
    outcome = run_python(
        "import os\n"
        "status = open('/proc/self/status').read()\n"
        "print(os.getuid(), os.getgid(), status.split('CapEff:')[1].split()[0])\n"
        "os.write(3, b'{\"answer\": 42}')\n")
    assert outcome.ok, outcome.stderr
    uid, gid, caps = outcome.stdout.split()
    if os.geteuid() == 0:
        assert int(uid) == int(gid) >= sandbox.UID_BASE
        again = run_python("import os; print(os.getuid())")
        assert int(again.stdout) >= sandbox.UID_BASE and int(again.stdout) != int(uid), "a new uid each run"
    assert int(caps, 16) == 0, "no capabilities inside"
    assert outcome.results == b'{"answer": 42}'


def test_only_the_named_paths_exist_and_none_is_writable(tmp_path):
    secret = tmp_path / "hidden_tests" / "q1.py"
    secret.parent.mkdir()
    secret.write_text("expected = 42\n")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "inputs.txt").write_text("public\n")
    code = (
        "import os, sys\n"
        f"print(os.path.exists({str(secret)!r}), os.path.exists({str(tmp_path)!r}))\n"
        "print(open('/input/inputs.txt').read().strip())\n"
        "for path in ['/input/new.txt', sys.prefix + '/planted.py', '/etc/planted']:\n"
        "    try:\n"
        "        open(path, 'w').write('x'); print('wrote', path)\n"
        "    except OSError as err:\n"
        "        print('refused', type(err).__name__)\n"
        "open('/tmp/scratch.txt', 'w').write('fine'); print('tmp ok')\n"
        "print(sorted(os.listdir('/')))\n")
    outcome = run_python(code, readonly={shared: Path("/input")})
    assert outcome.ok, outcome.stderr
    lines = outcome.stdout.decode().splitlines()
    assert lines[0] == "False False", "the hidden tests' folder is not there at all"
    assert lines[1] == "public"
    assert lines[2:5] == ["refused OSError"] * 3
    assert lines[5] == "tmp ok"
    # At the top: the system, the folders that lead to Python and the named path, nothing else.
    allowed = {"bin", "dev", "etc", "input", "lib", "lib32", "lib64", "libx32", "proc", "sbin", "tmp", "usr"}
    allowed |= {p.parts[1] for p in sandbox.python_paths()}
    assert set(ast.literal_eval(lines[6])) <= allowed, f"{lines[6]} shows more than {sorted(allowed)}"
    assert not (shared / "new.txt").exists()


def test_home_and_the_repository_are_not_there():
    home = str(Path.home())
    repo = str(Path(__file__).resolve().parents[1])
    outcome = run_python(
        "import os\n"
        f"print(os.path.isdir({str(Path(repo) / 'assignments')!r}), os.path.isdir({str(Path(repo) / 'tests')!r}))\n"
        f"print(os.path.exists({str(Path(home) / '.bashrc')!r}), os.environ['HOME'])\n")
    assert outcome.ok, outcome.stderr
    assert outcome.stdout.decode().split() == ["False", "False", "False", "/tmp"]


def test_no_network_not_even_the_graders_loopback():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        outcome = run_python(
            "import socket\n"
            f"for host, port in [('127.0.0.1', {port}), ('1.1.1.1', 53), ('pypi.org', 443)]:\n"
            "    try:\n"
            "        socket.create_connection((host, port), timeout=3); print('connected', host)\n"
            "    except OSError as err:\n"
            "        print('refused', host)\n")
    finally:
        server.shutdown()
        server.server_close()
    assert outcome.ok, outcome.stderr
    assert outcome.stdout.decode().split() == ["refused", "127.0.0.1", "refused", "1.1.1.1", "refused", "pypi.org"]


def test_nothing_planted_in_tmp_or_home_survives_into_the_next_run():
    planted = "/tmp/.ipython/profile_default/startup/00-full-marks.py"
    first = run_python(f"import os; os.makedirs(os.path.dirname({planted!r})); open({planted!r}, 'w').write('x')")
    assert first.ok, first.stderr
    second = run_python(f"import os; print(os.path.exists({planted!r}), sorted(os.listdir('/tmp')))")
    # /tmp starts empty, but for the folders that lead to a Python installed under /tmp.
    mounted = sorted({p.parts[2] for p in sandbox.python_paths() if p.parts[1] == "tmp"})
    assert second.stdout.decode().strip() == f"False {mounted}"


def _processes_with(token: str) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if token.encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            pass
    return found


def test_a_detached_process_does_not_outlive_the_run():
    token = f"detached-{uuid.uuid4().hex}"
    code = (
        "import os, subprocess, sys\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', {token!r}],\n"
        "                 start_new_session=True, stdin=subprocess.DEVNULL,\n"
        "                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        f"    os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(60)', {token!r}])\n"
        "print('left two behind')\n")
    outcome = run_python(code)
    assert outcome.ok and b"left two behind" in outcome.stdout, outcome.stderr
    deadline = time.monotonic() + 5
    while _processes_with(token) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_with(token) == []


def test_a_hung_run_is_stopped_at_its_time_limit_with_everything_it_started():
    token = f"hung-{uuid.uuid4().hex}"
    code = ("import subprocess, sys, time\n"
            f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', {token!r}])\n"
            "while True: time.sleep(1)\n")
    outcome = run_python(code, limits=sandbox.Limits(wall_seconds=3))
    assert outcome.timed_out and outcome.returncode is None and not outcome.ok
    assert outcome.seconds < 10
    time.sleep(0.5)
    assert _processes_with(token) == []


def test_memory_file_size_tmp_and_process_limits_hold():
    limits = sandbox.Limits(memory_bytes=1 << 30, file_bytes=8 << 20, tmp_bytes=16 << 20, processes=16)
    code = (
        "import os, subprocess, sys\n"
        "try:\n"
        "    block = bytearray(3 << 30); print('allocated')\n"
        "except MemoryError:\n"
        "    print('memory refused')\n"
        "try:\n"
        "    with open('/tmp/big', 'wb') as f: f.write(b'x' * (9 << 20))\n"
        "    print('big file written')\n"
        "except OSError:\n"
        "    print('file refused')\n"
        "os.remove('/tmp/big') if os.path.exists('/tmp/big') else None\n"
        "written = 0\n"
        "try:\n"
        "    for i in range(4):\n"
        "        with open(f'/tmp/part{i}', 'wb') as f: f.write(b'x' * (7 << 20))\n"
        "        written += 1\n"
        "except OSError:\n"
        "    pass\n"
        "print('tmp parts', written)\n"
        "children = []\n"
        "try:\n"
        "    for _ in range(100):\n"
        "        children.append(subprocess.Popen(['sleep', '30']))\n"
        "except OSError:\n"
        "    pass\n"
        "print('processes', len(children))\n"
        "[c.kill() for c in children]\n")
    outcome = run_python(code, limits=limits)
    lines = outcome.stdout.decode().splitlines()
    assert lines[0] == "memory refused"
    assert lines[1] == "file refused"
    assert lines[2] in ("tmp parts 2", "tmp parts 1"), "16 MB of /tmp hold two 7 MB files, not four"
    assert int(lines[3].split()[1]) < 16


def test_huge_output_is_cut_at_its_limit_and_the_grader_stays_small():
    limits = sandbox.Limits(output_bytes=1 << 16)
    outcome = run_python("import os, sys\n"
                         "chunk = b'x' * (1 << 20)\n"
                         "for _ in range(200): sys.stdout.buffer.write(chunk); os.write(3, chunk)\n",
                         limits=limits)
    assert outcome.ok, outcome.stderr[-500:]
    assert len(outcome.stdout) == len(outcome.results) == 1 << 16
    assert sorted(outcome.truncated) == ["results", "stdout"]


def test_a_cpu_bound_loop_is_stopped_by_the_cpu_limit():
    outcome = run_python("print('started', flush=True)\nwhile True: pass",
                         limits=sandbox.Limits(cpu_seconds=1, wall_seconds=30))
    assert outcome.stdout == b"started\n", outcome.stderr
    assert not outcome.ok and not outcome.timed_out and outcome.seconds < 10


# ----------------------------------------------------------------------------- the reference, hidden
def test_a_hidden_reference_cannot_be_called_imported_or_read_inside(tmp_path):
    """The copy of lstm_lab that grading mounts: the asked function only raises, under any
    name it can be reached by, its source is not in any file, and the rest of the package works."""
    from tools import assignments

    package = Path(lstm_lab.__file__).parent
    copy = assignments.hidden_copy(package, tmp_path, ["lstm_lab.scratch.rnn:rnn_forward"])
    # A piece of the reference's body that reads the same in its source and after ast.unparse.
    body_line = "np.tanh(x[:, step] @ p"
    assert body_line in (package / "scratch" / "rnn.py").read_text()
    unhidden = assignments.hidden_copy(package, tmp_path / "plain", [])
    assert body_line in (unhidden / "scratch" / "rnn.py").read_text(), "the check would see it"
    code = (
        "import importlib, pathlib, numpy as np\n"
        "import lstm_lab, lstm_lab.scratch as s\n"
        "from lstm_lab.scratch.rnn import rnn_forward as renamed\n"
        "calls = [lambda: s.rnn_forward, lambda: renamed,\n"
        "         lambda: getattr(importlib.import_module('lstm_lab.scratch.rnn'), 'rnn_forward')]\n"
        "for get in calls:\n"
        "    try:\n"
        "        get()(np.zeros((1, 2, 3)), {}); print('ran')\n"
        "    except NotImplementedError as err:\n"
        "        print('hidden')\n"
        "root = pathlib.Path(lstm_lab.__file__).parent\n"
        f"print(any({body_line!r} in p.read_text() for p in root.rglob('*.py')))\n"
        "print(sorted({p.suffix for p in root.rglob('*') if p.is_file()}))\n"
        "print(s.init_rnn_params(3, 4, rng=np.random.default_rng(0))['W_hh'].shape)\n")
    outcome = run_python(code, readonly={copy: package})
    assert outcome.ok, outcome.stderr.decode()[-2000:]
    lines = outcome.stdout.decode().splitlines()
    assert lines[:3] == ["hidden"] * 3
    assert lines[3] == "False", "the reference's code is in no file the submission can read"
    assert ".pyc" not in lines[4]
    assert lines[5] == "(4, 4)", "the rest of lstm_lab works"


def test_hidden_copy_names_what_it_cannot_find(tmp_path):
    from tools import assignments

    package = Path(lstm_lab.__file__).parent
    with pytest.raises(ValueError, match="defines no top-level"):
        assignments.hidden_copy(package, tmp_path, ["lstm_lab.scratch.rnn:no_such_function"])
    with pytest.raises(ValueError, match="names no module file"):
        assignments.hidden_copy(package, tmp_path, ["lstm_lab.nowhere:f"])
    with pytest.raises(ValueError, match="is not 'package.module:function'"):
        assignments.hidden_copy(package, tmp_path, ["numpy.linalg:norm"])
