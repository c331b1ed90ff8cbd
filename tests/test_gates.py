"""Chapter 0: the sigmoid, tanh, a gate and a gated memory compute the book's equations."""

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from lstm_lab.scratch import dsigmoid, dtanh, gate, gate_backward, gated_memory, sigmoid, tanh

X = np.linspace(-30.0, 30.0, 241)


def central_difference(f, x, eps=1e-6):
    return (f(x + eps) - f(x - eps)) / (2 * eps)


@pytest.mark.equation("eq-sigmoid")
def test_sigmoid_is_the_logistic_function():
    assert_allclose(sigmoid(X), 1.0 / (1.0 + np.exp(-X)), rtol=1e-15, atol=0)
    assert_allclose(sigmoid(X), torch.sigmoid(torch.from_numpy(X)).numpy(), rtol=1e-15, atol=0)
    assert sigmoid(0.0) == 0.5


def test_sigmoid_never_overflows_and_stays_in_range():
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s = sigmoid(np.array([-1e6, -1000.0, -50.0, 50.0, 1000.0, 1e6]))
    assert np.all((s >= 0) & (s <= 1))
    assert s[0] == 0.0 and s[-1] == 1.0
    assert np.all(np.diff(sigmoid(X)) >= 0)


def test_dtypes_are_kept_and_integers_become_float64():
    assert sigmoid(np.zeros(3, dtype=np.float32)).dtype == np.float32
    assert tanh(np.zeros(3, dtype=np.float32)).dtype == np.float32
    assert sigmoid(np.arange(3)).dtype == np.float64
    assert gate(np.ones(2, dtype=np.float32), np.zeros(2, dtype=np.float32)).dtype == np.float32


@pytest.mark.equation("eq-sigmoid-symmetry")
def test_sigmoid_symmetry():
    assert_allclose(sigmoid(-X), 1.0 - sigmoid(X), rtol=0, atol=1e-15)


@pytest.mark.equation("eq-sigmoid-derivative")
def test_sigmoid_derivative_from_its_output():
    x = np.linspace(-8, 8, 33)
    assert_allclose(dsigmoid(sigmoid(x)), central_difference(sigmoid, x), rtol=0, atol=1e-9)
    xt = torch.from_numpy(x).requires_grad_()
    torch.sigmoid(xt).sum().backward()
    assert_allclose(dsigmoid(sigmoid(x)), xt.grad.numpy(), rtol=1e-14, atol=1e-16)
    assert dsigmoid(sigmoid(0.0)) == 0.25
    assert np.all(dsigmoid(sigmoid(x)) <= 0.25)


@pytest.mark.equation("eq-tanh")
def test_tanh_definition_and_derivative():
    x = np.linspace(-10, 10, 81)
    assert_allclose(tanh(x), (np.exp(x) - np.exp(-x)) / (np.exp(x) + np.exp(-x)), rtol=1e-14, atol=1e-15)
    assert_allclose(dtanh(tanh(x)), central_difference(tanh, x), rtol=0, atol=1e-9)


@pytest.mark.equation("eq-tanh-sigmoid")
def test_tanh_is_a_rescaled_sigmoid():
    assert_allclose(tanh(X), 2.0 * sigmoid(2.0 * X) - 1.0, rtol=0, atol=1e-15)


@pytest.mark.equation("eq-gate")
def test_gate_is_sigmoid_times_value():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(4, 5))
    a = rng.normal(scale=4, size=(4, 5))
    assert_allclose(gate(v, a), v / (1.0 + np.exp(-a)), rtol=1e-15)
    # open, shut and half-open
    assert_allclose(gate(2.0, 40.0), 2.0)
    assert_allclose(gate(2.0, -40.0), 0.0, atol=1e-16)
    assert gate(2.0, 0.0) == 1.0
    # broadcasting: one pre-activation per row
    assert_allclose(gate(v, a[:, :1]), v * sigmoid(a[:, :1]))


@pytest.mark.equation("eq-gate-gradients")
def test_gate_backward_matches_autograd_and_finite_differences():
    rng = np.random.default_rng(1)
    v, a, dy = rng.normal(size=(3, 6, 4))
    dv, da = gate_backward(dy, v, a)
    vt = torch.from_numpy(v).requires_grad_()
    at = torch.from_numpy(a).requires_grad_()
    (torch.sigmoid(at) * vt).backward(torch.from_numpy(dy))
    assert_allclose(dv, vt.grad.numpy(), rtol=1e-13)
    assert_allclose(da, at.grad.numpy(), rtol=1e-13)
    loss = lambda v_, a_: np.sum(dy * gate(v_, a_))
    eps = 1e-6
    for idx in [(0, 0), (2, 1), (5, 3)]:
        e = np.zeros_like(v)
        e[idx] = eps
        assert_allclose(dv[idx], (loss(v + e, a) - loss(v - e, a)) / (2 * eps), rtol=1e-6)
        assert_allclose(da[idx], (loss(v, a + e) - loss(v, a - e)) / (2 * eps), rtol=1e-6)


@pytest.mark.equation("eq-gated-memory")
def test_gated_memory_matches_the_unrolled_sum():
    # Unrolling eq-gated-memory: m_T = prod_s (1 - w_s) m_0 + sum_s w_s v_s prod_{r > s} (1 - w_r)
    rng = np.random.default_rng(2)
    b, t = 3, 9
    v = rng.normal(size=(b, t))
    w = rng.uniform(size=(b, t))
    m0 = rng.normal(size=b)
    memory = gated_memory(v, w, m0=m0)
    keep = 1.0 - w
    for T in range(t):
        expected = np.prod(keep[:, : T + 1], axis=1) * m0
        for s in range(T + 1):
            expected = expected + w[:, s] * v[:, s] * np.prod(keep[:, s + 1 : T + 1], axis=1)
        assert_allclose(memory[:, T], expected, rtol=1e-13)
    # one sequence at a time gives the same as the batch
    for i in range(b):
        assert_allclose(gated_memory(v[i], w[i], m0=m0[i]), memory[i], rtol=1e-15)


def test_shut_gate_holds_exactly_open_gate_copies():
    v = np.array([0.3, -2.0, 5.0, 7.0])
    assert_allclose(gated_memory(v, np.zeros(4), m0=1.25), np.full(4, 1.25), rtol=0, atol=0)
    assert_allclose(gated_memory(v, np.ones(4), m0=1.25), v, rtol=0, atol=0)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: sigmoid("abc"), TypeError, "x must be numeric"),
        (lambda: gate(np.ones(3), np.ones(4)), ValueError, "does not broadcast"),
        (lambda: gate_backward(np.ones(3), np.ones(3), np.ones(2)), ValueError, "same shape"),
        (lambda: gated_memory(np.ones((2, 3, 4)), np.ones((2, 3, 4))), ValueError, r"shape \(t,\) or \(b, t\)"),
        (lambda: gated_memory(np.ones(3), np.ones(4)), ValueError, "write_gate must have the shape"),
        (lambda: gated_memory(np.ones(3), np.full(3, 1.5)), ValueError, r"lie in \[0, 1\]"),
        (lambda: gated_memory(np.ones((2, 3)), np.ones((2, 3)), m0=np.ones(3)), ValueError, "m0 must be"),
    ],
)
def test_bad_input_gets_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()
