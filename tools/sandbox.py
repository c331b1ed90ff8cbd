"""Run untrusted code, such as a student's submission, in an OS-level sandbox (Debian's bubblewrap).

    python -m tools.sandbox check          # is the sandbox available here? (exit 0 when it is)
    python -m tools.sandbox run -- CMD...  # run CMD sandboxed, with the default limits

What the code inside gets, and nothing more:

* **No privileges.** It runs as a user id of its own (``fresh_uid``: no account, no files, a new
  one for each run, so no two runs share a process count or anything else) with no capabilities.
  As root, bubblewrap sets up the mounts and ``setpriv`` drops to that uid before the code
  starts; as another user,
  bubblewrap makes a user namespace and the code keeps that user's uid outside, with nothing
  mounted that the user could read besides the paths below.
* **A file system of a few read-only paths:** the system (``/usr``, ``/etc``), the Python
  installation and virtual environment that run it, and the paths the caller names. Nothing else
  exists inside: not HOME, not the course repository, not the hidden tests, not the other
  submissions, not ``/root``.
* **One writable place:** a private ``/tmp`` (a size-limited tmpfs, also HOME and the working
  directory), gone when the code ends.
* **No network:** a network namespace with only its own loopback.
* **Limits** (``Limits``): wall-clock time, CPU seconds, address space, file size, processes and
  open files, and the bytes of output that are kept.
* **Nothing left behind:** its own PID namespace, so every process it started, detached or not,
  is killed when it ends or when it is stopped at its time limit; and bubblewrap dies with the
  grader.

Results leave the sandbox only as bytes: what the code writes to its standard output and error,
and to the file descriptor ``RESULTS_FD`` (3), each read up to its limit. Whoever reads them must
treat them as data from an adversary (JSON, or ``numpy.load(..., allow_pickle=False)``).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import resource
import secrets
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

UID_BASE = 1 << 24  # sandboxed runs get uids from here up: far above any account's
RESULTS_FD = 3
INSTALL_HINT = "install bubblewrap (`sudo apt-get install bubblewrap` on Debian or Ubuntu)"


@dataclass(frozen=True)
class Limits:
    """What one sandboxed run may use."""

    wall_seconds: float = 300.0
    cpu_seconds: int = 300
    memory_bytes: int = 2 << 30  # address space of each process
    file_bytes: int = 64 << 20  # the largest file it may write
    tmp_bytes: int = 256 << 20  # all of /tmp together
    processes: int = 64
    open_files: int = 256
    output_bytes: int = 1 << 20  # kept of stdout, of stderr, and of the results
    message_bytes: int = 64 << 20  # the longest answer of a Session


@dataclass
class Outcome:
    """What came back from a sandboxed run."""

    returncode: int | None  # None when it was stopped at the time limit
    stdout: bytes
    stderr: bytes
    results: bytes
    seconds: float
    timed_out: bool = False
    truncated: list[str] = field(default_factory=list)  # the streams cut at output_bytes

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def bwrap() -> str | None:
    """The bubblewrap program, or None."""
    return shutil.which("bwrap")


def missing() -> str | None:
    """Why the sandbox cannot run here, or None when it can."""
    if sys.platform != "linux":
        return "the sandbox needs Linux (bubblewrap uses Linux namespaces)"
    if bwrap() is None:
        return "bubblewrap is not installed: " + INSTALL_HINT
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        return "setpriv (util-linux) is missing: it drops root to an unprivileged uid inside the sandbox"
    probe = subprocess.run(_bwrap_command(["/bin/true"], {}, Limits(), fresh_uid()), capture_output=True, timeout=60)
    if probe.returncode != 0:
        return ("bubblewrap cannot make a sandbox here (user namespaces may be disabled): "
                + probe.stderr.decode(errors="replace").strip()[-300:])
    return None


def python_paths() -> list[Path]:
    """The Python that runs this program: its virtual environment and its installation."""
    paths = {Path(sys.prefix), Path(sys.base_prefix)}
    real = Path(os.path.realpath(sys.executable)).parent.parent
    paths.add(real)
    return sorted(p for p in paths if p.exists())


def _parents(path: Path) -> list[Path]:
    return [p for p in reversed(path.parents) if p != Path("/")]


def fresh_uid() -> int:
    """An unused user id for one sandboxed run (as root; other users keep their own)."""
    return UID_BASE + secrets.randbelow(1 << 24)


def _bwrap_command(argv: list[str], readonly: dict[Path, Path], limits: Limits, uid: int) -> list[str]:
    """The bubblewrap command line that runs ``argv`` as ``uid`` (when root) with ``readonly``
    (host path -> path inside)."""
    cmd = [bwrap() or "bwrap", "--die-with-parent", "--new-session",
           "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    root = os.geteuid() == 0
    if not root:
        cmd += ["--unshare-user", "--disable-userns"]
    # The system, read-only. Debian merges /bin, /lib and /sbin into /usr.
    cmd += ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
    for name in ("bin", "lib", "lib64", "sbin", "lib32", "libx32"):
        top = Path("/") / name
        if top.is_symlink():
            cmd += ["--symlink", os.readlink(top), str(top)]
        elif top.is_dir():
            cmd += ["--ro-bind", str(top), str(top)]
    # /tmp first: a private tmpfs, under which the paths below may still be mounted (a checkout
    # in /tmp keeps its virtual environment there).
    cmd += ["--perms", "1777", "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]
    mounts = {p: p for p in python_paths()}
    mounts.update(readonly)
    made = set()
    for host, inside in sorted(mounts.items(), key=lambda item: len(item[1].parts)):
        # Parent folders readable by anyone, whatever their mode on the host (/root is 0700).
        for parent in _parents(inside):
            if parent not in made and parent != Path("/tmp") and not str(parent).startswith(
                    ("/usr", "/etc", "/proc", "/dev")):
                cmd += ["--perms", "0755", "--dir", str(parent)]
                made.add(parent)
        cmd += ["--ro-bind", str(host), str(inside)]
    cmd += ["--dev", "/dev", "--proc", "/proc", "--chdir", "/tmp",
            "--clearenv", "--setenv", "HOME", "/tmp", "--setenv", "TMPDIR", "/tmp",
            "--setenv", "PATH", f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "--setenv", "LANG", "C.UTF-8", "--setenv", "PYTHONDONTWRITEBYTECODE", "1",
            "--setenv", "MPLBACKEND", "Agg", "--setenv", "OMP_NUM_THREADS", "1",
            "--setenv", "MPLCONFIGDIR", "/tmp/.matplotlib"]
    if root:
        # Mounts are made as root; the code itself runs as ``uid`` with no capabilities left.
        cmd += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--",
                shutil.which("setpriv") or "setpriv", f"--reuid={uid}", f"--regid={uid}",
                "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
    else:
        cmd += ["--"]
    return cmd + list(argv)


def _processes_of(uid: int) -> int:
    """How many processes the user ``uid`` runs now."""
    count = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError):
            if f"\nUid:\t{uid}\t" in status.read_text():
                count += 1
    return count


def _set_limits(limits: Limits, processes: int) -> None:
    """In the child, before bubblewrap starts: limits that every process inside inherits.
    ``processes`` is the cap on the processes of the uid the code runs as, all of them."""
    for what, value in ((resource.RLIMIT_CPU, limits.cpu_seconds),
                        (resource.RLIMIT_AS, limits.memory_bytes),
                        (resource.RLIMIT_FSIZE, limits.file_bytes),
                        (resource.RLIMIT_NPROC, processes),
                        (resource.RLIMIT_NOFILE, limits.open_files),
                        (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(what, (value, value))


def _drain(stream, limit: int, into: bytearray, cut: list[str], name: str) -> None:
    """Read a stream to its end, keeping at most ``limit`` bytes (the rest is read and dropped)."""
    while True:
        chunk = stream.read(65536)
        if not chunk:
            break
        room = limit - len(into)
        if room > 0:
            into += chunk[:room]
        if len(chunk) > max(room, 0) and name not in cut:
            cut.append(name)
    stream.close()


class Stopped(RuntimeError):
    """A sandboxed program stopped answering: it ended, hit a limit or ran past its time."""


class _Started:
    """A program started in the sandbox, with its stdout and stderr drained in the background
    (each kept up to ``output_bytes``) and the read end of its results pipe."""

    def __init__(self, argv: list[str], readonly: dict | None, limits: Limits):
        why = missing_cached()
        if why:
            raise RuntimeError(f"no sandbox: {why}")
        # The process limit counts every process of the uid: as root, the run's own uid is new; as
        # an ordinary user, their desktop counts as well, so the sandbox's share comes on top.
        processes = limits.processes + (0 if os.geteuid() == 0 else _processes_of(os.getuid()))
        self.uid = fresh_uid() if os.geteuid() == 0 else os.getuid()
        self.results_fd, write_end = os.pipe()
        if write_end != RESULTS_FD:  # inside, the results pipe is fd 3 whatever its number here
            argv = ["/bin/bash", "-c", f'exec {RESULTS_FD}>&{write_end} {write_end}>&-; exec "$@"', "bash",
                    *argv]
        cmd = _bwrap_command(argv, {Path(k): Path(v) for k, v in (readonly or {}).items()}, limits, self.uid)
        self.limits, self.start = limits, time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     pass_fds=(write_end,), preexec_fn=lambda: _set_limits(limits, processes),
                                     start_new_session=True)
        os.close(write_end)
        self.out, self.err, self.cut = bytearray(), bytearray(), []
        self.timed_out = False
        self.readers = [threading.Thread(target=_drain, args=(stream, limits.output_bytes, buf, self.cut, name),
                                         daemon=True)
                        for stream, buf, name in ((self.proc.stdout, self.out, "stdout"),
                                                  (self.proc.stderr, self.err, "stderr"))]
        for reader in self.readers:
            reader.start()

    def kill(self) -> None:
        """Stop it and everything it started (bubblewrap; its PID namespace dies with it)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def wait(self, timeout: float) -> None:
        try:
            self.proc.wait(timeout=max(timeout, 0))
        except subprocess.TimeoutExpired:
            self.timed_out = True
            self.kill()
            self.proc.wait()

    def outcome(self, results: bytes) -> Outcome:
        for reader in self.readers:
            reader.join(timeout=10)
        return Outcome(None if self.timed_out else self.proc.returncode, bytes(self.out), bytes(self.err), results,
                       time.perf_counter() - self.start, self.timed_out, self.cut)


def run(argv: list[str], *, readonly: dict[Path, Path] | None = None, limits: Limits = Limits(),
        stdin: bytes = b"") -> Outcome:
    """Run ``argv`` in the sandbox and return what it printed and wrote to ``RESULTS_FD``."""
    started = _Started(argv, readonly, limits)
    res, cut = bytearray(), started.cut
    reader = threading.Thread(target=_drain, args=(os.fdopen(started.results_fd, "rb"), limits.output_bytes, res,
                                                   cut, "results"), daemon=True)
    reader.start()
    with contextlib.suppress(BrokenPipeError):
        started.proc.stdin.write(stdin)
        started.proc.stdin.close()
    started.wait(limits.wall_seconds)
    reader.join(timeout=10)
    return started.outcome(bytes(res))


FRAME_HEADER = 8  # bytes of a frame's length, big-endian, before its payload


class Session:
    """A sandboxed program to talk with, one message at a time: the caller's messages go to its
    standard input and its answers come back on ``RESULTS_FD``, each message a frame (its length
    in ``FRAME_HEADER`` bytes, then the payload). An answer longer than ``limits.output_bytes``,
    an answer late past its timeout, and the end of ``limits.wall_seconds`` stop the program
    (``Stopped``); ``close`` stops it in any case and returns what it printed."""

    def __init__(self, argv: list[str], *, readonly: dict[Path, Path] | None = None, limits: Limits = Limits()):
        self._started = _Started(argv, readonly, limits)
        self._buffer = bytearray()
        self.stopped = ""  # why it stopped, once it has

    def _stop(self, why: str) -> Stopped:
        self.stopped = self.stopped or why
        self._started.kill()
        return Stopped(self.stopped)

    def _time_left(self) -> float:
        return self._started.limits.wall_seconds - (time.perf_counter() - self._started.start)

    def send(self, payload: bytes) -> None:
        if self.stopped:
            raise Stopped(self.stopped)
        try:
            self._started.proc.stdin.write(len(payload).to_bytes(FRAME_HEADER, "big") + payload)
            self._started.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._stop("the program ended") from None

    def receive(self, timeout: float) -> bytes:
        """The next answer, waiting at most ``timeout`` seconds (and never past the wall limit)."""
        if self.stopped:
            raise Stopped(self.stopped)
        limit = self._started.limits.message_bytes
        deadline = time.perf_counter() + min(timeout, self._time_left())
        while True:
            if len(self._buffer) >= FRAME_HEADER:
                size = int.from_bytes(self._buffer[:FRAME_HEADER], "big")
                if size > limit:
                    raise self._stop(f"an answer of {size} bytes, over the limit of {limit}")
                if len(self._buffer) >= FRAME_HEADER + size:
                    payload = bytes(self._buffer[FRAME_HEADER:FRAME_HEADER + size])
                    del self._buffer[:FRAME_HEADER + size]
                    return payload
            wait = deadline - time.perf_counter()
            if wait <= 0:
                if self._time_left() <= 0:
                    self._started.timed_out = True
                    raise self._stop(f"it ran longer than {self._started.limits.wall_seconds:g} s")
                raise self._stop(f"no answer within {timeout:g} s")
            ready, _, _ = select.select([self._started.results_fd], [], [], wait)
            if ready:
                chunk = os.read(self._started.results_fd, 1 << 20)
                if not chunk:
                    raise self._stop("the program ended")
                self._buffer += chunk

    def close(self) -> Outcome:
        """Stop the program (if it still runs) and return what it printed."""
        with contextlib.suppress(BrokenPipeError, OSError):
            self._started.proc.stdin.close()
        self._started.kill()
        self._started.wait(10)
        with contextlib.suppress(OSError):
            os.close(self._started.results_fd)
        return self._started.outcome(b"")

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@functools.cache
def missing_cached() -> str | None:
    """``missing()``, asked once per process."""
    return missing()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.sandbox", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check")
    r = sub.add_parser("run")
    r.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    why = missing_cached()
    if args.command == "check" or why:
        print(f"sandbox: {why}" if why else "sandbox: available (bubblewrap "
              + subprocess.run([bwrap(), "--version"], capture_output=True, text=True).stdout.split()[-1] + ")")
        return 1 if why else 0
    outcome = run([a for a in args.argv if a != "--"])
    sys.stdout.buffer.write(outcome.stdout)
    sys.stderr.buffer.write(outcome.stderr)
    return 124 if outcome.timed_out else (outcome.returncode or 0)


if __name__ == "__main__":
    sys.exit(main())
