"""Chapter 9: gated recurrence returns. Each labelled equation is recomputed in NumPy (float64)
straight from the book and compared with lstm_lab.nn.minimal and lstm_lab.nn.xlstm."""

import math

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from lstm_lab.nn.minimal import MinGRU, MinLSTM
from lstm_lab.nn.xlstm import MLSTM, SLSTM

TIGHT = dict(rtol=1e-10, atol=1e-12)
b, t, d, h = 2, 11, 3, 4


def _np(module):
    return {name: p.detach().numpy() for name, p in module.named_parameters()}


def sigma(v):
    return 1 / (1 + np.exp(-v))


def _x(seed, scale=1.0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(b, t, d)) * scale, rng.normal(size=(b, h))


@pytest.mark.equation("eq-mingru")
@pytest.mark.parametrize("method", ["sequential", "parallel"])
def test_mingru_is_the_book_equation(method):
    torch.manual_seed(0)
    model = MinGRU(d, h, method=method).double()
    P = _np(model)
    x, h0 = _x(0)
    state, expected = h0, []
    for s in range(t):
        z = sigma(x[:, s] @ P["W_xz"] + P["b_z"])
        h_tilde = x[:, s] @ P["W_xh"] + P["b_h"]
        state = (1 - z) * state + z * h_tilde
        expected.append(state)
    hs, h_T = model(torch.from_numpy(x), torch.from_numpy(h0))
    assert_allclose(hs.detach().numpy(), np.stack(expected, 1), **TIGHT)
    assert_allclose(h_T.detach().numpy(), expected[-1], **TIGHT)


@pytest.mark.equation("eq-minlstm")
@pytest.mark.parametrize("method", ["sequential", "parallel"])
def test_minlstm_is_the_book_equation(method):
    torch.manual_seed(1)
    model = MinLSTM(d, h, method=method).double()
    P = _np(model)
    x, h0 = _x(1)
    state, expected = h0, []
    for s in range(t):
        f = sigma(x[:, s] @ P["W_xf"] + P["b_f"])
        i = sigma(x[:, s] @ P["W_xi"] + P["b_i"])
        f_n, i_n = f / (f + i), i / (f + i)
        assert_allclose(f_n + i_n, 1.0, rtol=1e-15)
        state = f_n * state + i_n * (x[:, s] @ P["W_xh"] + P["b_h"])
        expected.append(state)
    hs, _ = model(torch.from_numpy(x), torch.from_numpy(h0))
    assert_allclose(hs.detach().numpy(), np.stack(expected, 1), **TIGHT)


def _slstm_numpy(P, x, forget_gate, stabilised):
    """eq-slstm, or eq-slstm-stabilised, from zero state (m_0 = -inf when stabilised)."""
    h_ = c = n = np.zeros((b, h))
    m = np.full((b, h), -np.inf) if stabilised else np.zeros((b, h))
    hs, states = [], []
    for s in range(t):
        pre = {k: x[:, s] @ P[f"cell.W_x{k}"] + h_ @ P[f"cell.W_h{k}"] + P[f"cell.b_{k}"] for k in "zifo"}
        z, o = np.tanh(pre["z"]), sigma(pre["o"])
        log_f = pre["f"] if forget_gate == "exp" else np.log(sigma(pre["f"]))
        if stabilised:
            m_new = np.maximum(log_f + m, pre["i"])
            i, f = np.exp(pre["i"] - m_new), np.exp(log_f + m - m_new)
            m = m_new
        else:
            i, f = np.exp(pre["i"]), np.exp(log_f)
        c = f * c + i * z
        n = f * n + i
        h_ = o * c / n
        hs.append(h_)
        states.append((c, n, m))
    return np.stack(hs, 1), states


@pytest.mark.equation("eq-slstm")
@pytest.mark.parametrize("forget_gate", ["exp", "sigmoid"])
def test_slstm_is_the_book_equation(forget_gate):
    torch.manual_seed(2)
    model = SLSTM(d, h, stabilised=False, forget_gate=forget_gate).double()
    x, _ = _x(2)
    expected, states = _slstm_numpy(_np(model), x, forget_gate, stabilised=False)
    hs, (h_T, c_T, n_T, m_T) = model(torch.from_numpy(x))
    assert_allclose(hs.detach().numpy(), expected, **TIGHT)
    assert_allclose(c_T.detach().numpy(), states[-1][0], **TIGHT)
    assert_allclose(n_T.detach().numpy(), states[-1][1], **TIGHT)
    assert np.all(m_T.numpy() == 0)


@pytest.mark.equation("eq-slstm-stabilised")
@pytest.mark.parametrize("forget_gate", ["exp", "sigmoid"])
def test_slstm_stabiliser_is_the_book_equation_and_rescales_the_state(forget_gate):
    torch.manual_seed(3)
    model = SLSTM(d, h, stabilised=True, forget_gate=forget_gate).double()
    P = _np(model)
    x, _ = _x(3, scale=3.0)
    expected, states = _slstm_numpy(P, x, forget_gate, stabilised=True)
    plain, plain_states = _slstm_numpy(P, x, forget_gate, stabilised=False)
    hs, (_, c_T, n_T, m_T) = model(torch.from_numpy(x))
    assert_allclose(hs.detach().numpy(), expected, **TIGHT)
    assert_allclose(expected, plain, rtol=1e-9, atol=1e-12)  # the stabiliser does not change h
    for (c_s, n_s, m_s), (c_p, n_p, _) in zip(states, plain_states):  # c' = c e^{-m}, n' = n e^{-m}
        assert_allclose(c_s, c_p * np.exp(-m_s), rtol=1e-9, atol=1e-12)
        assert_allclose(n_s, n_p * np.exp(-m_s), rtol=1e-9, atol=1e-12)
        assert np.all(n_s >= 1 - 1e-12)  # the larger of i', f' n' is 1, so n' never underflows
    assert_allclose(m_T.detach().numpy(), states[-1][2], **TIGHT)
    # where exp overflows even float64, the stabilised form is still finite
    with torch.no_grad():
        model.cell.b_i.fill_(800.0)
    big, _ = model(torch.from_numpy(x))
    assert torch.isfinite(big).all()


@pytest.mark.equation("eq-mlstm")
@pytest.mark.parametrize("method", ["sequential", "parallel"])
def test_mlstm_is_the_book_equation(method):
    torch.manual_seed(4)
    nh, hid = 2, 6
    dh = hid // nh
    model = MLSTM(d, hid, n_heads=nh, forget_gate="sigmoid", method=method).double()
    P = _np(model)
    x, _ = _x(4)
    out = np.zeros((b, t, hid))
    for head in range(nh):
        cols = slice(head * dh, (head + 1) * dh)
        C, n = np.zeros((b, dh, dh)), np.zeros((b, dh))
        for s in range(t):
            xs = x[:, s]
            q, v = xs @ P["W_xq"][:, cols], xs @ P["W_xv"][:, cols]
            k = xs @ P["W_xk"][:, cols] / math.sqrt(dh)
            i = np.exp(xs @ P["W_xi"][:, head] + P["b_i"][head])  # (b,) one gate per head
            f = sigma(xs @ P["W_xf"][:, head] + P["b_f"][head])
            o = sigma(xs @ P["W_xo"][:, cols] + P["b_o"][cols])
            C = f[:, None, None] * C + i[:, None, None] * v[:, :, None] * k[:, None, :]
            n = f[:, None] * n + i[:, None] * k
            num = np.einsum("bvk,bk->bv", C, q)
            den = np.maximum(np.abs((n * q).sum(-1)), 1.0)
            out[:, s, cols] = o * num / den[:, None]
    hs, _ = model(torch.from_numpy(x))
    assert_allclose(hs.detach().numpy(), out, rtol=1e-9, atol=1e-12)
