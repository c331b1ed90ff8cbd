"""The cost helpers of chapter 5: log-log slopes, saved bytes, state bytes, interleaved timings."""

import pytest
import torch

from lstm_lab.cost import loglog_slope, median_times, saved_bytes, state_bytes


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
