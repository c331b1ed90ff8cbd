"""The grader's hands inside the sandbox: run a submission's code cells, then call its functions.

Started by ``tools.assignments`` inside ``tools.sandbox`` as ``python -I /grader/worker.py``. It
reads the grader's requests from its standard input, each a frame (``tools.sandbox.Session``)
holding a pickle made by the grader (only the grader writes them; this side may unpickle):

* ``{"op": "cells", "cells": [[index, source], ...], "timeout": s}`` runs each cell in one IPython
  shell, a cell stopped after ``timeout`` seconds, and answers which cells raised what;
* ``{"op": "call", "name": f, "args": [...], "kwargs": {...}, "grad": [i, ...], "count": bool,
  "timeout": s}`` calls the submission's ``f`` and answers with what it returned, its arguments
  as they are after the call, and, when asked, the PyTorch operations it ran; the tensors at the
  positions ``grad`` (in ``wire.leaves`` order) require grad, and the graph is kept for
* ``{"op": "backward", "call": n, "grads": [...]}``: the gradients of call ``n``'s outputs with
  respect to those tensors, given the gradients of its outputs.

Every answer goes out on file descriptor 3 as a ``wire`` message, which the grader reads as data.
Nothing here is trusted by the grader: the submission's code runs in this same process and may
change any of it; what it can change is only what comes back, never how the grader judges it.
"""

from __future__ import annotations

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import wire  # noqa: E402 (this folder first)

HEADER = 8
KEEP_GRAPHS = 32


class _Timer:
    """Interrupt the code it wraps after ``seconds``, as Jupyter's interrupt would."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def __enter__(self):
        def interrupt(signum, frame):
            raise KeyboardInterrupt(f"stopped after {self.seconds:g} s")

        signal.signal(signal.SIGALRM, interrupt)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, *exc):
        signal.setitimer(signal.ITIMER_REAL, 0)


def _read(stream) -> bytes | None:
    header = stream.read(HEADER)
    if len(header) < HEADER:
        return None
    size = int.from_bytes(header, "big")
    return stream.read(size)


def _error(err: BaseException, timeout: float | None = None) -> dict:
    if isinstance(err, KeyboardInterrupt) and timeout is not None:
        return {"error": ["CallTimeout", f"the call ran longer than {timeout:g} s and was stopped"]}
    return {"error": [type(err).__name__, str(err)[:2000]]}


def _count_ops():
    from torch.overrides import TorchFunctionMode

    class CountOps(TorchFunctionMode):
        count = 0

        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.count += 1
            return func(*args, **(kwargs or {}))

    return CountOps()


def main() -> None:
    requests = os.fdopen(os.dup(0), "rb")
    answers = os.fdopen(os.dup(3), "wb")
    os.close(3)

    import dill
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False
    shell = InteractiveShell.instance(config=config)
    graphs: dict[int, tuple] = {}

    def answer(value: dict) -> None:
        try:
            message = wire.encode(value)
        except Exception as err:  # e.g. nested too deep
            message = wire.encode(_error(err))
        answers.write(len(message).to_bytes(HEADER, "big") + message)
        answers.flush()

    while True:
        frame = _read(requests)
        if frame is None:
            return
        request = dill.loads(frame)
        op = request["op"]
        if op == "cells":
            report = []
            for index, source in request["cells"]:
                with _Timer(request["timeout"]):
                    try:
                        result = shell.run_cell(source, store_history=False)
                        error = result.error_before_exec or result.error_in_exec
                    except KeyboardInterrupt as err:
                        error = err
                if isinstance(error, KeyboardInterrupt):
                    report.append([index, "CellTimeout", f"the cell ran longer than {request['timeout']:g} s"])
                elif error is not None:
                    report.append([index, type(error).__name__, str(error)[:300]])
            answer({"cells": report})
        elif op == "call":
            try:
                fn = shell.user_ns.get(request["name"])
                if not callable(fn):
                    raise NameError(f"the notebook defines no function {request['name']!r}")
                args, kwargs = request["args"], request["kwargs"]
                inputs = []
                for i, leaf in enumerate(wire.leaves([args, kwargs])):
                    if i in request["grad"]:
                        inputs.append(leaf.requires_grad_(True))
                counter = None
                with _Timer(request["timeout"]):
                    start = time.perf_counter()
                    if request["count"]:
                        counter = _count_ops()
                        with counter:
                            value = fn(*args, **kwargs)
                    else:
                        value = fn(*args, **kwargs)
                    seconds = time.perf_counter() - start
                reply = {"value": value, "args": [args, kwargs], "seconds": seconds,
                         "count": None if counter is None else counter.count}
                if inputs:
                    outputs = [t for t in wire.leaves(value) if getattr(t, "requires_grad", False)]
                    graphs[request["call"]] = (inputs, outputs)
                    for old in sorted(graphs)[:-KEEP_GRAPHS]:
                        del graphs[old]
                answer(reply)
            except BaseException as err:  # the submission's own errors, reported to the grader
                answer(_error(err, request["timeout"]))
        elif op == "backward":
            try:
                import torch

                inputs, outputs = graphs[request["call"]]
                pairs = [(o, g) for o, g in zip(outputs, request["grads"]) if g is not None]
                with _Timer(request["timeout"]):
                    grads = torch.autograd.grad([o for o, _ in pairs], inputs, [g for _, g in pairs],
                                                allow_unused=True)
                answer({"value": list(grads)})
            except BaseException as err:
                answer(_error(err, request["timeout"]))


if __name__ == "__main__":
    main()
