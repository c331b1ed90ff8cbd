"""Chapter 7's labelled equations, recomputed from the book's formulas with explicit loops in NumPy
and compared with lstm_lab's NumPy and PyTorch attention."""

import math

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from lstm_lab.nn import attention as nn_attention
from lstm_lab.scratch import attention as np_attention


def _qkv(seed=0, t_q=4, t_k=4, d_k=3, d_v=2):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(t_q, d_k)), rng.normal(size=(t_k, d_k)), rng.normal(size=(t_k, d_v))


def _loop_attention(q, k, v, causal):
    """s_ij, a_ij and o_i one entry at a time, straight from the book."""
    t_q, t_k = q.shape[0], k.shape[0]
    s = np.empty((t_q, t_k))
    for i in range(t_q):
        for j in range(t_k):
            s[i, j] = sum(q[i, c] * k[j, c] for c in range(q.shape[1])) / math.sqrt(q.shape[1])  # scores
            if causal and j > i:
                s[i, j] = -np.inf  # causal
    a = np.zeros_like(s)
    for i in range(t_q):
        m = max(s[i])
        e = [math.exp(s[i, j] - m) for j in range(t_k)]
        a[i] = np.array(e) / sum(e)  # softmax
    o = np.array([sum(a[i, j] * v[j] for j in range(t_k)) for i in range(t_q)])  # output
    return s, a, o


@pytest.mark.equation("eq-attention-scores", "eq-attention-softmax", "eq-attention-output")
def test_attention_equations_numpy_and_torch():
    q, k, v = _qkv()
    _, a, o = _loop_attention(q, k, v, causal=False)
    out, w = np_attention.scaled_dot_product_attention(q, k, v)
    assert_allclose(w, a, rtol=1e-12, atol=1e-14)
    assert_allclose(out, o, rtol=1e-12, atol=1e-14)
    out_t, w_t = nn_attention.scaled_dot_product_attention(*(torch.from_numpy(z) for z in (q, k, v)))
    assert_allclose(w_t.numpy(), a, rtol=1e-12, atol=1e-14)
    assert_allclose(out_t.numpy(), o, rtol=1e-12, atol=1e-14)


@pytest.mark.equation("eq-attention-causal")
def test_causal_equation():
    q, k, v = _qkv(seed=1, t_q=5, t_k=5)
    _, a, o = _loop_attention(q, k, v, causal=True)
    out, w = np_attention.scaled_dot_product_attention(q, k, v, causal=True)
    assert np.all(w[np.triu_indices(5, 1)] == 0.0)
    assert_allclose(w, a, rtol=1e-12, atol=1e-14)
    assert_allclose(out, o, rtol=1e-12, atol=1e-14)
    # the layer's mask with a KV cache: the last t_q of t_k positions
    allowed = nn_attention.causal_mask(2, 5, offset=3).numpy()
    assert np.array_equal(allowed, np.array([[j <= i + 3 for j in range(5)] for i in range(2)]))


@pytest.mark.equation("eq-positions")
def test_positions_equation():
    t, d = 9, 8
    P = np_attention.sinusoidal_positions(t, d)
    for p in range(t):
        for i in range(d // 2):
            angle = p / 10000 ** (2 * i / d)
            assert P[p, 2 * i] == pytest.approx(math.sin(angle), abs=1e-12)
            assert P[p, 2 * i + 1] == pytest.approx(math.cos(angle), abs=1e-12)
    stack = nn_attention.TransformerStack(d, n_heads=2, n_layers=1, max_len=t)
    assert_allclose(stack.P.numpy(), P, rtol=0, atol=1e-6)  # built in float32, then cast
