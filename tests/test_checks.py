"""lstm_lab.checks: the one positive-int check, and the rule every module follows (a wrong type
is a TypeError, a wrong value a ValueError, and the message names the argument)."""

import numpy as np
import pytest

from lstm_lab.checks import check_int, check_size


def test_ints_pass_and_come_back_as_python_ints():
    assert check_size(3, "n") == 3
    value = check_size(np.int64(4), "n")
    assert value == 4 and type(value) is int
    assert check_int(0, "gap", minimum=0) == 0
    assert check_int(8, "steps", minimum=2, maximum=8) == 8


@pytest.mark.parametrize("value", [2.0, "3", None, True, np.bool_(True), np.float64(2.0)])
def test_a_value_that_is_no_int_is_a_type_error(value):
    with pytest.raises(TypeError, match="hidden_size must be an int, got"):
        check_size(value, "hidden_size")


@pytest.mark.parametrize("value, kwargs, message", [
    (0, {}, "n must be a positive int, got 0"),
    (-3, {}, "n must be a positive int, got -3"),
    (1, dict(minimum=2), "n must be an int >= 2, got 1"),
    (9, dict(minimum=2, maximum=8), r"n must be an int in \[2, 8\], got 9"),
])
def test_a_value_out_of_range_is_a_value_error(value, kwargs, message):
    with pytest.raises(ValueError, match=message):
        check_int(value, "n", **kwargs)


def test_modules_follow_the_rule():
    from lstm_lab.nn import LSTM
    from lstm_lab.tasks import adding_problem

    with pytest.raises(TypeError, match="hidden_size must be an int"):
        LSTM(2, 4.0)
    with pytest.raises(ValueError, match="hidden_size must be a positive int"):
        LSTM(2, 0)
    with pytest.raises(TypeError, match="batch_size must be an int"):
        adding_problem(batch_size=2.0, seq_len=5, seed=0)


def test_check_like_names_a_dtype_mismatch_a_type_error_and_a_device_mismatch_a_value_error():
    import torch

    from lstm_lab.checks import check_like

    b = torch.zeros(2, 3)
    check_like(torch.ones(2), b, "h0", "b")
    with pytest.raises(TypeError, match="h0 must have b's dtype torch.float32, got torch.float64"):
        check_like(torch.ones(2, dtype=torch.float64), b, "h0", "b")
    with pytest.raises(ValueError, match="h0 must be on b's device cpu, got meta"):
        check_like(torch.ones(2, device="meta"), b, "h0", "b")


def test_choices_and_flags_follow_the_rule():
    from lstm_lab.checks import check_choice, check_flag
    from lstm_lab.nn import SLSTM, MambaStack, MultiHeadAttention

    assert check_choice("parallel", ("sequential", "parallel")) == "parallel"
    with pytest.raises(TypeError, match="method must be a str, one of 'a', 'b'; got int"):
        check_choice(1, ("a", "b"))
    with pytest.raises(ValueError, match="block must be one of 'a', 'b', got 'c'"):
        check_choice("c", ("a", "b"), "block")
    assert check_flag(False, "causal") is False
    for value in (1, 0, None, "yes", np.bool_(True)):
        with pytest.raises(TypeError, match="causal must be True or False"):
            check_flag(value, "causal")
    with pytest.raises(TypeError, match="causal must be True or False"):
        MultiHeadAttention(8, 2, causal=1)
    with pytest.raises(TypeError, match="forget_gate must be a str"):
        SLSTM(3, 4, forget_gate=None)
    with pytest.raises(ValueError, match="block must be one of 'selective', 'lti'"):
        MambaStack(8, block="s4")


def test_seeds_and_lengths_follow_the_rule():
    from lstm_lab import seed_everything
    from lstm_lab.tasks import adding_problem

    with pytest.raises(ValueError, match="seed must be a non-negative int, got -1"):
        adding_problem(batch_size=2, seq_len=4, seed=-1)
    with pytest.raises(TypeError, match="seed must be an int"):
        seed_everything(1.0)
    with pytest.raises(ValueError, match=r"seed must be an int in \[0, 4294967295\]"):
        seed_everything(2**32)
