"""Measuring what a sequence layer costs as the sequence grows: time, saved memory, log-log slopes.

Chapters 7 to 9 use it to set attention, LSTMs, scans and state-space blocks against each
other. Glossary: t sequence length; a "cost" is one number per length (seconds or bytes).

- :func:`interleaved_times`: several calls timed in interleaved rounds, so that a change in
  the machine's speed affects all alike; :func:`median_times` and :func:`fastest_times` reduce
  the rounds to one number per call (the fastest is the one other work disturbs least).
- :func:`saved_bytes`: the bytes that autograd keeps for the backward pass while a function runs,
  counted once per storage. Unlike a timing, this does not depend on the machine.
- :func:`state_bytes`: the bytes of every tensor in a (nested) state or cache.
- :func:`loglog_slope`: the least-squares slope of log(cost) against log(t); cost ~ t^slope.
- :func:`lstm_lab.plotting.plot_scaling` draws the cost curves on log-log axes.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def interleaved_times(
    fns: Mapping[str, Callable[[], object]], *, rounds: int = 5, warmup: int = 1
) -> dict[str, list[float]]:
    """{name: the seconds of each of ``rounds`` calls of fn()}, the functions taking turns in
    every round (so a slow spell of the machine hits all of them), after ``warmup`` untimed calls."""
    if rounds < 1 or warmup < 0:
        raise ValueError(f"need rounds >= 1 and warmup >= 0, got rounds = {rounds}, warmup = {warmup}")
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            _sync()
            start = time.perf_counter()
            fn()
            _sync()
            times[name].append(time.perf_counter() - start)
    return times


def median_times(fns: Mapping[str, Callable[[], object]], *, rounds: int = 5, warmup: int = 1) -> dict[str, float]:
    """{name: median seconds of fn()} over ``rounds`` interleaved rounds, after ``warmup`` untimed calls."""
    return {name: statistics.median(ts) for name, ts in interleaved_times(fns, rounds=rounds, warmup=warmup).items()}


def fastest_times(fns: Mapping[str, Callable[[], object]], *, rounds: int = 7, warmup: int = 1) -> dict[str, float]:
    """{name: fewest seconds of fn()} over ``rounds`` interleaved rounds, after ``warmup`` untimed calls.

    Other work on the machine can only slow a call down, so the fastest of several calls is
    the measure least disturbed by it: the one to fit growth rates to on a shared machine.
    """
    return {name: min(ts) for name, ts in interleaved_times(fns, rounds=rounds, warmup=warmup).items()}


def saved_bytes(fn: Callable[[], object]) -> int:
    """Bytes of the distinct storages that autograd saves for backward while ``fn()`` runs.

    Parameters saved by the graph count too (a constant that does not grow with t).
    """
    seen: dict[tuple[str, int], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        seen[(str(t.device), storage.data_ptr())] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def state_bytes(state) -> int:
    """Bytes of every tensor in ``state``: a tensor, a (nested) tuple/list/dict, a dataclass, or None."""
    if state is None:
        return 0
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if dataclasses.is_dataclass(state):
        return sum(state_bytes(getattr(state, f.name)) for f in dataclasses.fields(state))
    if isinstance(state, Mapping):
        return sum(state_bytes(v) for v in state.values())
    if isinstance(state, (tuple, list)):
        return sum(state_bytes(v) for v in state)
    if isinstance(state, (int, float, str)):
        return 0
    raise TypeError(f"state must hold tensors in tuples, lists, dicts or dataclasses, got {type(state).__name__}")


def loglog_slope(lengths: Sequence[float], costs: Sequence[float]) -> float:
    """The slope p of the least-squares line log(cost) = p log(t) + c."""
    t, c = np.asarray(lengths, dtype=float), np.asarray(costs, dtype=float)
    if t.shape != c.shape or t.ndim != 1 or t.size < 2:
        raise ValueError(f"lengths and costs must be 1-D of one length >= 2, got {t.shape} and {c.shape}")
    if np.any(t <= 0) or np.any(c <= 0):
        raise ValueError("lengths and costs must be positive to take logarithms")
    return float(np.polyfit(np.log(t), np.log(c), 1)[0])
