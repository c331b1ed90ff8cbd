"""Diagonal state-space models (lstm_lab.nn.ssm): discretisation against integrating the ODE,
recurrence against FFT convolution, the selective scan's loop against its parallel path and
against an independent NumPy loop, the gate view of a one-state selective SSM, and clear errors.

Equations checked (labels of the state-space chapter, which is not written yet; the
``@pytest.mark.equation`` markers are to be added when it is, since ``test_course_repo.py``
rejects markers for labels the book does not have): eq-ssm-continuous, eq-ssm-zoh-a,
eq-ssm-zoh-b, eq-ssm-simple-b, eq-ssm-recurrence, eq-ssm-kernel, eq-ssm-convolution,
eq-s6-recurrence, eq-s6-gate.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from numpy.testing import assert_allclose
from torch.testing import assert_close

from lstm_lab import scratch
from lstm_lab.nn.ssm import (
    A_from_log,
    continuous_derivative,
    discretize_euler_b,
    discretize_zoh,
    gate_from_delta,
    lti_convolution,
    lti_kernel,
    lti_recurrence,
    s4d_real_A_log,
    selective_scan,
)

F64 = dict(dtype=torch.float64)
TIGHT = dict(rtol=1e-10, atol=1e-10)


def _lti(d=3, n=4, seed=0, delta_range=(1e-2, 1e-1)):
    g = torch.Generator().manual_seed(seed)
    A = A_from_log(s4d_real_A_log(d, n, **F64) + 0.1 * torch.randn(d, n, generator=g, **F64))
    B = torch.randn(d, n, generator=g, **F64)
    C = torch.randn(d, n, generator=g, **F64)
    D = torch.randn(d, generator=g, **F64)
    lo, hi = delta_range
    delta = lo + (hi - lo) * torch.rand(d, generator=g, **F64)
    return A, B, C, D, delta


def _selective(b=2, t=7, d=3, n=4, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, t, d, generator=g, dtype=dtype)
    delta = F.softplus(torch.randn(b, t, d, generator=g, dtype=dtype) - 1.0)
    A = A_from_log(s4d_real_A_log(d, n, dtype=dtype) + 0.1 * torch.randn(d, n, generator=g, dtype=dtype))
    B = torch.randn(b, t, n, generator=g, dtype=dtype)
    C = torch.randn(b, t, n, generator=g, dtype=dtype)
    D = torch.randn(d, generator=g, dtype=dtype)
    return x, delta, A, B, C, D


# ----------------------------------------------------------------------------- continuous time, discretisation
def test_s4d_real_init():
    A = A_from_log(s4d_real_A_log(3, 5, **F64))
    assert A.shape == (3, 5) and A.dtype == torch.float64
    assert_close(A, -torch.arange(1.0, 6.0, **F64).expand(3, 5), **TIGHT)
    assert torch.all(A_from_log(torch.randn(4, 4)) < 0)


@pytest.mark.equation("eq-ssm-continuous", "eq-ssm-zoh-a", "eq-ssm-zoh-b")
def test_zoh_is_the_exact_solution_of_the_ode_with_held_input():
    """eq-ssm-continuous, eq-ssm-zoh-a, eq-ssm-zoh-b: integrate h' = A h + B x with RK4 over one step."""
    A, B, _, _, delta = _lti(d=3, n=4, delta_range=(0.05, 0.3))
    h0 = torch.randn(2, 3, 4, **F64)
    x = torch.randn(2, 3, **F64)  # held constant over the step
    steps = 2000
    dt = (delta / steps)[:, None]  # (d, 1)
    h = h0.clone()
    for _ in range(steps):
        k1 = continuous_derivative(h, x, A, B)
        k2 = continuous_derivative(h + dt / 2 * k1, x, A, B)
        k3 = continuous_derivative(h + dt / 2 * k2, x, A, B)
        k4 = continuous_derivative(h + dt * k3, x, A, B)
        h = h + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    A_bar, B_bar = discretize_zoh(A, B, delta)
    assert A_bar.shape == B_bar.shape == (3, 4)
    assert_close(A_bar * h0 + B_bar * x[..., None], h, rtol=1e-11, atol=1e-11)


@pytest.mark.equation("eq-ssm-zoh-a", "eq-ssm-zoh-b")
def test_zoh_formula_values():
    A = torch.tensor([[-1.0, -2.0]], **F64)
    B = torch.tensor([[3.0, 5.0]], **F64)
    delta = torch.tensor([0.5], **F64)
    A_bar, B_bar = discretize_zoh(A, B, delta)
    assert_allclose(A_bar.numpy(), [[np.exp(-0.5), np.exp(-1.0)]], rtol=1e-14)
    assert_allclose(B_bar.numpy(), [[(1 - np.exp(-0.5)) * 3.0, (1 - np.exp(-1.0)) / 2 * 5.0]], rtol=1e-14)


@pytest.mark.equation("eq-ssm-simple-b")
def test_euler_b_is_delta_B_and_agrees_with_zoh_to_first_order():
    A, B, _, _, delta = _lti()
    A_bar, B_bar = discretize_euler_b(A, B, delta)
    assert_close(B_bar, delta[:, None] * B, **TIGHT)
    assert_close(A_bar, discretize_zoh(A, B, delta)[0], **TIGHT)
    gap = lambda s: (discretize_zoh(A, B, s * delta)[1] - discretize_euler_b(A, B, s * delta)[1]).abs().max()
    errs = [gap(1e-2), gap(5e-3)]
    assert 3.8 < float(errs[0] / errs[1]) < 4.2  # the gap is O(delta^2)


def test_discretize_broadcasts_a_selective_B():
    _, delta, A, B, _, _ = _selective(b=2, t=5, d=3, n=4)
    for fn in (discretize_zoh, discretize_euler_b):
        A_bar, B_bar = fn(A, B[:, :, None, :], delta)
        assert A_bar.shape == B_bar.shape == (2, 5, 3, 4)
        one = fn(A, B[1, 3][None, :].expand(3, 4), delta[1, 3])
        assert_close(A_bar[1, 3], one[0], **TIGHT)
        assert_close(B_bar[1, 3], one[1], **TIGHT)


# ----------------------------------------------------------------------------- time-invariant SSM
@pytest.mark.equation("eq-ssm-kernel")
def test_kernel_equals_matrix_powers():
    """eq-ssm-kernel against dense diagonal matrices raised with matrix_power."""
    A, B, C, _, delta = _lti(d=2, n=3)
    A_bar, B_bar = discretize_zoh(A, B, delta)
    K = lti_kernel(A_bar, B_bar, C, 6)
    assert K.shape == (2, 6)
    for ch in range(2):
        Ad = torch.diag(A_bar[ch])
        for k in range(6):
            ref = C[ch] @ torch.linalg.matrix_power(Ad, k) @ B_bar[ch]
            assert_close(K[ch, k], ref, **TIGHT)
    K_neg = lti_kernel(-A_bar, B_bar, C, 5)  # negative A_bar: signs alternate
    assert_close(K_neg, K[:, :5] * torch.tensor([1.0, -1, 1, -1, 1], **F64), **TIGHT)


@pytest.mark.equation("eq-ssm-recurrence", "eq-ssm-convolution")
@pytest.mark.parametrize("t", [1, 5, 64, 3000])
def test_recurrence_equals_fft_convolution(t):
    """eq-ssm-recurrence == eq-ssm-convolution with K from eq-ssm-kernel, float64."""
    A, B, C, D, delta = _lti(d=3, n=4, seed=t)
    A_bar, B_bar = discretize_zoh(A, B, delta)
    x = torch.randn(2, t, 3, generator=torch.Generator().manual_seed(t), **F64)
    y_rec = lti_recurrence(x, A_bar, B_bar, C, D)
    y_conv = lti_convolution(x, lti_kernel(A_bar, B_bar, C, t), D)
    assert y_rec.shape == y_conv.shape == (2, t, 3)
    assert_close(y_conv, y_rec, **TIGHT)
    assert_close(lti_convolution(x, lti_kernel(A_bar, B_bar, C, t)), lti_recurrence(x, A_bar, B_bar, C), **TIGHT)


@pytest.mark.equation("eq-ssm-convolution")
def test_fft_convolution_equals_direct_causal_sum():
    """eq-ssm-convolution: y_t = sum_k K_k x_{t-k}, with np.convolve as the reference."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 9, 3, generator=g, **F64)
    K = torch.randn(3, 12, generator=g, **F64)  # longer than t: only K[:, :9] is used
    y = lti_convolution(x, K).numpy()
    for i in range(2):
        for ch in range(3):
            ref = np.convolve(x[i, :, ch].numpy(), K[ch, :9].numpy())[:9]
            assert_allclose(y[i, :, ch], ref, rtol=1e-12, atol=1e-12)


def test_lti_float32_and_no_inplace():
    A, B, C, D, delta = (v.float() for v in _lti())
    A_bar, B_bar = discretize_zoh(A, B, delta)
    x = torch.randn(2, 50, 3)
    x_copy = x.clone()
    y_rec = lti_recurrence(x, A_bar, B_bar, C, D)
    y_conv = lti_convolution(x, lti_kernel(A_bar, B_bar, C, 50), D)
    assert y_rec.dtype == y_conv.dtype == torch.float32
    assert_close(y_conv, y_rec, rtol=1e-4, atol=1e-4)
    assert torch.equal(x, x_copy)


# ----------------------------------------------------------------------------- selective SSM
@pytest.mark.equation("eq-s6-recurrence")
@pytest.mark.parametrize("discretization", ["zoh_a_euler_b", "zoh"])
def test_selective_loop_equals_numpy_loop(discretization):
    """The PyTorch loop against the NumPy twin in lstm_lab.scratch.ssm (its gradients: test_scratch_ssm)."""
    x, delta, A, B, C, D = _selective()
    y = selective_scan(x, delta, A, B, C, D, method="sequential", discretization=discretization)
    assert y.shape == x.shape
    expected, _ = scratch.selective_scan(*(v.numpy() for v in (x, delta, A, B, C, D)), discretization=discretization)
    assert_allclose(y.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_selective_with_constant_parameters_is_the_lti_ssm():
    """delta, B, C fixed over time: eq-s6-recurrence reduces to eq-ssm-recurrence."""
    x, delta, A, B, C, D = _selective(b=2, t=6, d=3, n=4)
    delta = delta[:1, :1].expand_as(delta)
    B, C = B[:1, :1].expand_as(B), C[:1, :1].expand_as(C)
    y = selective_scan(x, delta, A, B, C, D)
    A_bar, B_bar = discretize_euler_b(A, B[0, 0].expand(3, 4), delta[0, 0])
    assert_close(y, lti_recurrence(x, A_bar, B_bar, C[0, 0].expand(3, 4), D), **TIGHT)


def test_selective_state_carries_over():
    x, delta, A, B, C, D = _selective(t=8)
    y, h = selective_scan(x, delta, A, B, C, D, return_state=True)
    y1, h1 = selective_scan(x[:, :3], delta[:, :3], A, B[:, :3], C[:, :3], D, return_state=True)
    y2, h2 = selective_scan(x[:, 3:], delta[:, 3:], A, B[:, 3:], C[:, 3:], D, h0=h1, return_state=True)
    assert h.shape == (2, 3, 4)
    assert_close(torch.cat([y1, y2], 1), y, **TIGHT)
    assert_close(h2, h, **TIGHT)
    y0 = selective_scan(x, delta, A, B, C, D, h0=torch.zeros(2, 3, 4, **F64))
    assert_close(y0, y, **TIGHT)  # a missing h0 equals zeros
    assert_close(selective_scan(x, delta, A, B, C), y - D * x, **TIGHT)  # D=None: no skip


@pytest.mark.parametrize("method", ["parallel", "chunked", "auto"])
@pytest.mark.parametrize("dtype, tol", [(torch.float32, dict(rtol=1e-5, atol=1e-5)), (torch.float64, TIGHT)])
@pytest.mark.parametrize("discretization", ["zoh_a_euler_b", "zoh"])
def test_parallel_equals_sequential_outputs_states_and_gradients(method, dtype, tol, discretization):
    """eq-s6-recurrence computed by lstm_lab.nn.scan.linear_scan equals the loop, gradients included."""
    inputs = _selective(b=2, t=33, d=3, n=4, seed=1, dtype=dtype)
    h0 = torch.randn(2, 3, 4, dtype=dtype)
    grads, outs = [], []
    for m in ("sequential", method):
        args = [v.detach().clone().requires_grad_() for v in (*inputs, h0)]
        y, h = selective_scan(*args[:6], h0=args[6], method=m, discretization=discretization, return_state=True)
        g = torch.Generator().manual_seed(5)
        loss = (y * torch.randn(y.shape, generator=g, dtype=dtype)).sum() + (h * h).sum()
        loss.backward()
        outs.append((y.detach(), h.detach()))
        grads.append([a.grad for a in args])
    assert_close(outs[1][0], outs[0][0], **tol)
    assert_close(outs[1][1], outs[0][1], **tol)
    for name, g_par, g_seq in zip(["x", "delta", "A", "B", "C", "D", "h0"], grads[1], grads[0]):
        assert_close(g_par, g_seq, **tol, msg=lambda m, name=name: f"d{name}: {m}")


def test_gradients_reach_every_input():
    args = [v.detach().clone().requires_grad_() for v in _selective(t=4)]
    selective_scan(*args).square().sum().backward()
    for a in args:
        assert a.grad is not None and torch.all(torch.isfinite(a.grad)) and a.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- the gate view
@pytest.mark.equation("eq-s6-gate")
def test_one_state_selective_ssm_is_a_convex_gate():
    """eq-s6-gate: n = 1, B = C = 1, A = -1, ZOH for B, delta = softplus(w): a_t = sigmoid(-w_t) and
    h_t = a_t h_{t-1} + (1 - a_t) x_t, the GRU's / coupled LSTM's interpolation."""
    g = torch.Generator().manual_seed(0)
    b, t, d = 2, 10, 3
    x = torch.randn(b, t, d, generator=g, **F64)
    w = 3 * torch.randn(b, t, d, generator=g, **F64)
    delta = F.softplus(w)
    ones = torch.ones(b, t, 1, **F64)
    y = selective_scan(x, delta, -torch.ones(d, 1, **F64), ones, ones, discretization="zoh")
    assert_close(gate_from_delta(delta), torch.sigmoid(-w), **TIGHT)
    h = torch.zeros(b, d, **F64)
    for s in range(t):
        f = torch.sigmoid(-w[:, s])  # the "forget" gate; 1 - f is the coupled input gate
        h = f * h + (1 - f) * x[:, s]
        assert_close(y[:, s], h, **TIGHT)


def test_one_state_gate_with_general_A():
    """eq-s6-gate with A != -1: h_t = a_t h_{t-1} + (1 - a_t) x_t / (-A), a_t = exp(delta_t A)."""
    x, delta, _, _, _, _ = _selective(b=2, t=6, d=3, n=1)
    A = -torch.tensor([[0.5], [2.0], [7.0]], **F64)
    ones = torch.ones(2, 6, 1, **F64)
    y = selective_scan(x, delta, A, ones, ones, discretization="zoh")
    h = torch.zeros(2, 3, **F64)
    for s in range(6):
        a = torch.exp(delta[:, s] * A[:, 0])
        h = a * h + (1 - a) * x[:, s] / (-A[:, 0])
        assert_close(y[:, s], h, **TIGHT)


# ----------------------------------------------------------------------------- errors
def test_errors_name_the_argument():
    x, delta, A, B, C, D = _selective()
    with pytest.raises(ValueError, match="x must have shape"):
        selective_scan(x[0], delta, A, B, C)
    with pytest.raises(ValueError, match="delta must have shape"):
        selective_scan(x, delta[:, :-1], A, B, C)
    with pytest.raises(ValueError, match="A must have shape"):
        selective_scan(x, delta, A[:2], B, C)
    with pytest.raises(ValueError, match="B must have shape"):
        selective_scan(x, delta, A, B[..., :2], C)
    with pytest.raises(ValueError, match="D must have shape"):
        selective_scan(x, delta, A, B, C, D[:2])
    with pytest.raises(TypeError, match="x must be a floating-point"):
        selective_scan(x.long(), delta, A, B, C)
    with pytest.raises(TypeError, match="C must match x's dtype"):
        selective_scan(x, delta, A, B, C.float())
    with pytest.raises(TypeError, match="B must be a torch.Tensor"):
        selective_scan(x, delta, A, B.numpy(), C)
    with pytest.raises(ValueError, match="method must be one of"):
        selective_scan(x, delta, A, B, C, method="fast")
    with pytest.raises(ValueError, match="discretization must be one of"):
        selective_scan(x, delta, A, B, C, discretization="bilinear")
    with pytest.raises(ValueError, match="h0 must have shape"):
        selective_scan(x, delta, A, B, C, h0=torch.zeros(2, 3, **F64))
    with pytest.raises(ValueError, match="A must be nonzero"):
        discretize_zoh(torch.zeros(3, 4, **F64), torch.ones(3, 4, **F64), torch.ones(3, **F64))
    with pytest.raises(ValueError, match="delta must have shape"):
        discretize_zoh(A, torch.ones(3, 4, **F64), torch.ones(4, **F64))
    A_bar, B_bar = discretize_zoh(A, torch.ones(3, 4, **F64), torch.ones(3, **F64))
    with pytest.raises(ValueError, match="C must have shape"):
        lti_recurrence(x, A_bar, B_bar, C[0, 0])
    with pytest.raises(ValueError, match="K must have shape"):
        lti_convolution(x, torch.ones(3, 2, **F64))
    with pytest.raises(ValueError, match="t must be a positive int"):
        lti_kernel(A_bar, B_bar, B_bar, 0)
