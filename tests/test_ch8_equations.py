"""Chapter 8: state-space models and Mamba. Each labelled equation is recomputed in NumPy
(float64) straight from the book and compared with lstm_lab.nn.ssm, lstm_lab.nn.scan and the Mamba block."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from numpy.testing import assert_allclose

from lstm_lab.nn import MambaBlock
from lstm_lab.nn.scan import linear_scan
from lstm_lab.nn.ssm import (
    continuous_derivative,
    discretize_euler_b,
    discretize_zoh,
    gate_from_delta,
    lti_convolution,
    lti_kernel,
    lti_recurrence,
    selective_scan,
)

TIGHT = dict(rtol=1e-10, atol=1e-12)
b, t, d, n = 2, 9, 3, 4


def _t(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float64))


def _lti(seed=0):
    rng = np.random.default_rng(seed)
    A = -rng.uniform(0.5, 3.0, size=(d, n))
    B, C = rng.normal(size=(2, d, n))
    D = rng.normal(size=d)
    delta = rng.uniform(0.05, 0.5, size=d)
    x = rng.normal(size=(b, t, d))
    return A, B, C, D, delta, x


@pytest.mark.equation("eq-ssm-continuous")
def test_continuous_derivative():
    A, B, _, _, _, _ = _lti()
    rng = np.random.default_rng(1)
    h, x = rng.normal(size=(b, d, n)), rng.normal(size=(b, d))
    ref = A * h + B * x[..., None]  # h' = A h + B x, per channel
    assert_allclose(continuous_derivative(_t(h), _t(x), _t(A), _t(B)).numpy(), ref, **TIGHT)


@pytest.mark.equation("eq-ssm-zoh-a", "eq-ssm-zoh-b", "eq-ssm-simple-b")
def test_discretisations():
    A, B, _, _, delta, _ = _lti()
    A_bar, B_bar = discretize_zoh(_t(A), _t(B), _t(delta))
    dA = delta[:, None] * A
    assert_allclose(A_bar.numpy(), np.exp(dA), **TIGHT)
    assert_allclose(B_bar.numpy(), (np.exp(dA) - 1) / A * B, **TIGHT)
    A_bar2, B_bar2 = discretize_euler_b(_t(A), _t(B), _t(delta))
    assert_allclose(A_bar2.numpy(), np.exp(dA), **TIGHT)
    assert_allclose(B_bar2.numpy(), delta[:, None] * B, **TIGHT)


@pytest.mark.equation("eq-ssm-recurrence", "eq-ssm-kernel", "eq-ssm-convolution")
def test_recurrence_kernel_convolution():
    A, B, C, D, delta, x = _lti()
    A_bar, B_bar = np.exp(delta[:, None] * A), delta[:, None] * B
    h = np.zeros((b, d, n))
    y_ref = np.zeros((b, t, d))
    for s in range(t):  # h_t = A_bar h_{t-1} + B_bar x_t, y_t = C h_t + D x_t
        h = A_bar * h + B_bar * x[:, s, :, None]
        y_ref[:, s] = (C * h).sum(-1) + D * x[:, s]
    y = lti_recurrence(_t(x), _t(A_bar), _t(B_bar), _t(C), _t(D))
    assert_allclose(y.numpy(), y_ref, **TIGHT)
    K_ref = np.stack([(C * A_bar**k * B_bar).sum(-1) for k in range(t)], axis=1)  # (d, t)
    K = lti_kernel(_t(A_bar), _t(B_bar), _t(C), t)
    assert_allclose(K.numpy(), K_ref, **TIGHT)
    y_conv_ref = np.zeros((b, t, d))
    for s in range(t):  # y_t = sum_k K_k x_{t-k} + D x_t
        y_conv_ref[:, s] = sum(K_ref[:, k] * x[:, s - k] for k in range(s + 1)) + D * x[:, s]
    assert_allclose(lti_convolution(_t(x), K, _t(D)).numpy(), y_conv_ref, **TIGHT)
    assert_allclose(y_conv_ref, y_ref, **TIGHT)


def _numpy_s6(x, delta, A, B, C, D):
    h = np.zeros((x.shape[0], x.shape[2], A.shape[1]))
    y = np.zeros_like(x)
    for s in range(x.shape[1]):  # h_t = exp(delta_t A) h_{t-1} + delta_t B_t x_t
        h = np.exp(delta[:, s, :, None] * A) * h + delta[:, s, :, None] * B[:, s, None, :] * x[:, s, :, None]
        y[:, s] = (h * C[:, s, None, :]).sum(-1) + D * x[:, s]
    return y


@pytest.mark.equation("eq-s6-recurrence")
@pytest.mark.parametrize("method", ["sequential", "parallel", "chunked"])
def test_selective_recurrence(method):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(b, 40, d))
    delta = np.log1p(np.exp(rng.normal(size=(b, 40, d))))
    A = -rng.uniform(0.5, 3.0, size=(d, n))
    B, C = rng.normal(size=(2, b, 40, n))
    D = rng.normal(size=d)
    y = selective_scan(*map(_t, (x, delta, A, B, C, D)), method=method)
    assert_allclose(y.numpy(), _numpy_s6(x, delta, A, B, C, D), **TIGHT)


@pytest.mark.equation("eq-s6-recurrence")
def test_mamba_block_scan_is_the_selective_recurrence():
    torch.manual_seed(0)
    m = MambaBlock(4, d_state=3, d_conv=2).double()
    u = torch.randn(2, 6, 4, dtype=torch.float64)
    x, z = m.in_proj(u).chunk(2, dim=-1)
    xc = F.silu(m.conv1d(F.pad(x.transpose(1, 2), (1, 0))).transpose(1, 2))
    dt, B, C = m.x_proj(xc).split([m.dt_rank, 3, 3], dim=-1)
    delta = F.softplus(m.dt_proj(dt))
    A = -torch.exp(m.A_log)
    arrays = [v.detach().numpy() for v in (xc, delta, A, B, C, m.D)]
    y = torch.from_numpy(_numpy_s6(*arrays))
    ref = m.out_proj(y * F.silu(z))
    assert_allclose(m(u).detach().numpy(), ref.detach().numpy(), **TIGHT)


@pytest.mark.equation("eq-s6-gate")
def test_one_state_gate():
    rng = np.random.default_rng(3)
    w = 3 * rng.normal(size=(b, t, d))
    x = rng.normal(size=(b, t, d))
    delta = np.log1p(np.exp(w))
    a = np.exp(-delta)  # a_t = exp(delta_t A) with A = -1
    assert_allclose(gate_from_delta(_t(delta)).numpy(), 1 / (1 + np.exp(w)), **TIGHT)  # sigmoid(-w)
    h, ref = np.zeros((b, d)), np.zeros((b, t, d))
    for s in range(t):  # h_t = a_t h_{t-1} + (1 - a_t) x_t / (-A)
        h = a[:, s] * h + (1 - a[:, s]) * x[:, s]
        ref[:, s] = h
    ones = torch.ones(b, t, 1, dtype=torch.float64)
    y = selective_scan(_t(x), _t(delta), -torch.ones(d, 1, dtype=torch.float64), ones, ones,
                       discretization="zoh")
    assert_allclose(y.numpy(), ref, **TIGHT)


@pytest.mark.equation("eq-linear-recurrence", "eq-linear-scan-combine")
@pytest.mark.parametrize("method", ["sequential", "parallel", "chunked"])
def test_linear_scan_and_combine(method):
    rng = np.random.default_rng(4)
    a, u = rng.uniform(0, 1, size=(b, 100, d)), rng.normal(size=(b, 100, d))
    h0 = rng.normal(size=(b, d))
    h, ref = h0, np.zeros_like(u)
    for s in range(100):  # h_t = a_t h_{t-1} + b_t
        h = a[:, s] * h + u[:, s]
        ref[:, s] = h
    assert_allclose(linear_scan(_t(a), _t(u), _t(h0), method=method).numpy(), ref, **TIGHT)

    def combine(p, q):  # (a1, b1) then (a2, b2) -> (a2 a1, a2 b1 + b2)
        return q[0] * p[0], q[0] * p[1] + q[1]

    e = [(a[:, s], u[:, s]) for s in range(3)]
    left, right = combine(combine(e[0], e[1]), e[2]), combine(e[0], combine(e[1], e[2]))
    assert_allclose(left[0], right[0], **TIGHT)
    assert_allclose(left[1], right[1], **TIGHT)
    total = e[0]
    for s in range(1, 100):
        total = combine(total, (a[:, s], u[:, s]))
    assert_allclose(total[0] * h0 + total[1], ref[:, -1], **TIGHT)


@pytest.mark.equation("eq-linear-scan-backward")
@pytest.mark.parametrize("method", ["sequential", "parallel", "chunked"])
def test_linear_scan_backward(method):
    rng = np.random.default_rng(5)
    tt = 50
    a, u = rng.uniform(0, 1, size=(b, tt, d)), rng.normal(size=(b, tt, d))
    h0, dh = rng.normal(size=(b, d)), rng.normal(size=(b, tt, d))
    hs = np.zeros_like(u)
    h = h0
    for s in range(tt):
        h = a[:, s] * h + u[:, s]
        hs[:, s] = h
    g = np.zeros_like(u)
    nxt = np.zeros((b, d))
    for s in reversed(range(tt)):  # g_t = dh_t + a_{t+1} g_{t+1}
        nxt = dh[:, s] + (a[:, s + 1] * nxt if s + 1 < tt else 0)
        g[:, s] = nxt
    h_prev = np.concatenate([h0[:, None], hs[:, :-1]], axis=1)
    ta, tu, th0 = (_t(v).requires_grad_() for v in (a, u, h0))
    (linear_scan(ta, tu, th0, method=method) * _t(dh)).sum().backward()
    assert_allclose(tu.grad.numpy(), g, **TIGHT)
    assert_allclose(ta.grad.numpy(), g * h_prev, **TIGHT)
    assert_allclose(th0.grad.numpy(), a[:, 0] * g[:, 0], **TIGHT)
