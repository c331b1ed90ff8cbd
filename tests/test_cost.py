"""The cost helpers of chapter 7: log-log slopes, saved bytes, state bytes, interleaved timings."""

import time

import pytest
import torch

from lstm_lab.cost import fastest_times, interleaved_times, loglog_slope, median_times, saved_bytes, state_bytes


def test_cost_helpers():
    assert loglog_slope([10, 20, 40], [3.0, 12.0, 48.0]) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="positive"):
        loglog_slope([1, 2], [0.0, 1.0])
    w = torch.randn(4, 4, requires_grad=True)
    x = torch.randn(3, 4)
    n = saved_bytes(lambda: torch.tanh(x @ w))  # saves x (for dW) and tanh's output (3, 4)
    assert n == 2 * 3 * 4 * 4
    assert state_bytes((torch.zeros(2, 3), [torch.zeros(5, dtype=torch.float64)], None)) == 24 + 40
    times = median_times({"a": lambda: None, "b": lambda: sum(range(100))}, rounds=3)
    assert set(times) == {"a", "b"} and all(v >= 0 for v in times.values())


def test_fastest_times_ignore_calls_that_other_work_slowed_down():
    """A call slowed by the machine (here: two of seven sleep) moves the median of a few calls
    but not the fastest, which is why chapter 7 fits its growth rates to the fastest."""
    calls = {"n": 0}

    def sometimes_slow():
        calls["n"] += 1
        if calls["n"] in (3, 4):  # rounds 2 and 3, after one warm-up call
            time.sleep(0.05)

    all_times = interleaved_times({"f": sometimes_slow}, rounds=3, warmup=1)["f"]
    assert len(all_times) == 3 and sorted(all_times)[1] >= 0.05  # the median of 3 is a slow call
    calls["n"] = 0
    assert fastest_times({"f": sometimes_slow}, rounds=7)["f"] < 0.01
    with pytest.raises(ValueError, match="rounds"):
        fastest_times({"f": sometimes_slow}, rounds=0)
