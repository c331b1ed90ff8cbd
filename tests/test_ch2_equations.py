"""Chapter 2: Jacobians through time, the gradient bound and clipping compute the book's equations."""

import copy

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from lstm_lab import scratch
from lstm_lab.gradients import (
    chain_gradient,
    clip_by_norm,
    gradient_bound,
    orthogonal,
    rnn_step_jacobians,
    scaled_orthogonal,
    state_gradient_norms,
)
from lstm_lab.nn import RNN, SequenceModel
from lstm_lab.train import last_step_mse, train


def rnn_case(b=3, t=7, d=2, h=5, gain=1.3, seed=0):
    rng = np.random.default_rng(seed)
    params = scratch.init_rnn_params(d, h, rng=rng)
    params["W_hh"] = scaled_orthogonal(h, gain, rng=rng)
    x = rng.normal(size=(b, t, d))
    h0 = rng.normal(scale=0.5, size=(b, h))
    return x, params, h0


# ----------------------------------------------------------------------------- matrices
def test_orthogonal_and_scaled_orthogonal():
    rng = np.random.default_rng(3)
    q = orthogonal(6, rng=rng)
    assert_allclose(q @ q.T, np.eye(6), atol=1e-12)
    w = scaled_orthogonal(6, 0.7, rng=rng)
    assert_allclose(np.linalg.svd(w, compute_uv=False), np.full(6, 0.7), rtol=1e-12)
    assert_allclose(np.abs(np.linalg.eigvals(w)), np.full(6, 0.7), rtol=1e-10)
    # the same generator state gives the same matrix
    assert_allclose(orthogonal(4, rng=np.random.default_rng(1)), orthogonal(4, rng=np.random.default_rng(1)))
    with pytest.raises(ValueError):
        scaled_orthogonal(3, 0.0, rng=rng)
    with pytest.raises(ValueError):
        orthogonal(0, rng=rng)


# ----------------------------------------------------------------------------- eq-vg-jacobian
@pytest.mark.equation("eq-vg-jacobian")
def test_step_jacobian_is_diag_slope_times_W_hh_transposed():
    x, params, h0 = rnn_case()
    hs, _ = scratch.rnn_forward(x, params, h0)
    J = rnn_step_jacobians(hs, params["W_hh"])
    b, t, h = hs.shape
    assert J.shape == (b, t, h, h)
    prev = np.concatenate([h0[:, None], hs[:, :-1]], axis=1)  # the state before each step
    # 1. the formula, entry by entry: J[j, i] = (1 - h_t[j]^2) W_hh[i, j]
    for s in range(t):
        for n in range(b):
            expected = np.diag(1.0 - hs[n, s] ** 2) @ params["W_hh"].T
            assert_allclose(J[n, s], expected, rtol=1e-14)
    # 2. central differences of one step of the NumPy RNN with respect to the previous state
    eps = 1e-6
    for s in (0, 3, t - 1):
        for i in range(h):
            e = np.zeros(h)
            e[i] = eps
            up, _ = scratch.rnn_forward(x[:, s : s + 1], params, prev[:, s] + e)
            down, _ = scratch.rnn_forward(x[:, s : s + 1], params, prev[:, s] - e)
            assert_allclose(J[:, s, :, i], (up[:, 0] - down[:, 0]) / (2 * eps), rtol=1e-6, atol=1e-9)
    # 3. PyTorch autograd on one step of lstm_lab.nn.RNN(method="cell"), float64
    model = RNN(2, h, method="cell").double().load_params(params)
    for n in range(b):
        def step(h_prev, n=n, s=4):
            out, _ = model(torch.from_numpy(x[n : n + 1, s : s + 1]), h_prev.reshape(1, 1, h))
            return out.reshape(h)
        jac = torch.autograd.functional.jacobian(step, torch.from_numpy(prev[n, 4]))
        assert_allclose(J[n, 4], jac.numpy(), rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------- eq-vg-chain
@pytest.mark.equation("eq-vg-chain")
def test_gradient_through_time_is_a_product_of_jacobians():
    x, params, h0 = rnn_case(t=9)
    hs, cache = scratch.rnn_forward(x, params, h0)
    b, t, h = hs.shape
    rng = np.random.default_rng(5)
    dh_T = rng.normal(size=(b, h))
    J = rnn_step_jacobians(hs, params["W_hh"])
    dhs = np.zeros_like(hs)
    dhs[:, -1] = dh_T
    grads = scratch.rnn_backward(dhs, cache)
    chained = chain_gradient(dh_T, J)
    # the hand-written BPTT returns the same total dL/dh_k ...
    assert_allclose(grads["hs"], chained, rtol=1e-12, atol=1e-15)
    # ... as the product written out in full: dL/dh_k = dL/dh_T J_T J_{T-1} ... J_{k+1}
    for n in range(b):
        for s in range(t):
            product = np.eye(h)
            for r in range(t - 1, s, -1):  # J_T first, J_{s+1} last
                product = product @ J[n, r]
            assert_allclose(grads["hs"][n, s], dh_T[n] @ product, rtol=1e-12, atol=1e-15)
        # and one more Jacobian reaches the initial state
        assert_allclose(grads["h0"][n], grads["hs"][n, 0] @ J[n, 0], rtol=1e-12, atol=1e-15)
    # PyTorch autograd, keeping the grad of every hidden state of a step-by-step run
    model = RNN(2, h, method="cell").double().load_params(params)
    state = torch.from_numpy(h0)[None]
    states = []
    for s in range(t):
        _, state = model(torch.from_numpy(x[:, s : s + 1]), state)
        state.retain_grad()
        states.append(state)
    (state[0] * torch.from_numpy(dh_T)).sum().backward()
    autograd = np.stack([st.grad[0].numpy() for st in states], axis=1)
    assert_allclose(chained, autograd, rtol=1e-12, atol=1e-15)


# ----------------------------------------------------------------------------- eq-vg-bound
@pytest.mark.equation("eq-vg-bound")
def test_gradient_norms_obey_the_singular_value_bound():
    rng = np.random.default_rng(7)
    d, h, t = 2, 8, 30
    x = rng.normal(size=(4, t, d))
    lags = np.arange(t)
    for gain in (0.5, 1.0, 1.5, 3.0):
        params = scratch.init_rnn_params(d, h, rng=rng)
        # a general matrix: spectral radius and largest singular value differ
        params["W_hh"] = gain * rng.normal(size=(h, h)) / np.sqrt(h)
        sigma = np.linalg.svd(params["W_hh"], compute_uv=False)[0]
        bound = gradient_bound(params["W_hh"], lags)
        assert_allclose(bound, sigma**lags, rtol=1e-12)
        # every sequence's ||dL/dh_{T-lag}|| (with ||dL/dh_T|| = 1) stays under the bound
        hs, cache = scratch.rnn_forward(x, params)
        dhs = np.zeros_like(hs)
        u = rng.normal(size=(4, h))
        dhs[:, -1] = u / np.linalg.norm(u, axis=1, keepdims=True)
        per_seq = np.linalg.norm(scratch.rnn_backward(dhs, cache)["hs"], axis=2)[:, ::-1]  # (b, lag)
        assert np.all(per_seq <= bound * (1 + 1e-12))
        assert np.all(state_gradient_norms(params, x)["h"] <= bound * (1 + 1e-12))
    # tanh' = 1 at h = 0: with zero inputs, zero bias and zero initial state the network stays
    # at 0, every Jacobian is W_hh^T, and for a scaled orthogonal W_hh the bound is reached.
    for gain in (0.8, 1.0, 1.25):
        params = scratch.init_rnn_params(d, h, rng=rng)
        params["W_hh"] = scaled_orthogonal(h, gain, rng=rng)
        params["b_h"] = np.zeros(h)
        norms = state_gradient_norms(params, np.zeros((2, t, d)))["h"]
        assert_allclose(norms, gradient_bound(params["W_hh"], lags), rtol=1e-10)
    # gamma scales the rate
    assert_allclose(gradient_bound(2.0 * np.eye(3), [0, 1, 2], gamma=0.25), [1.0, 0.5, 0.25])


# ----------------------------------------------------------------------------- eq-vg-clip
def _one_sgd_step(clip_norm, lr=0.1, seed=0):
    torch.manual_seed(seed)
    model = SequenceModel(RNN(2, 6), 1).double()
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(4, 12, 2))
    y = rng.normal(size=(4, 1))
    before = copy.deepcopy(model)
    # the gradient, by autograd on a copy
    loss = last_step_mse(before, torch.from_numpy(x), torch.from_numpy(y))
    names = [n for n, _ in before.named_parameters()]
    g = dict(zip(names, (t.numpy() for t in torch.autograd.grad(loss, list(before.parameters())))))
    history = train(model, lambda _rng: (x, y), last_step_mse, steps=1, lr=lr, optimizer="sgd",
                    clip_norm=clip_norm, device="cpu", seed=seed)
    change = {n: (p0.detach() - p1.detach()).numpy() for (n, p0), p1 in
              zip(before.named_parameters(), model.parameters())}
    return g, change, history


@pytest.mark.equation("eq-vg-clip")
def test_train_clips_the_gradient_by_its_norm():
    lr = 0.1
    g, change, history = _one_sgd_step(clip_norm=None, lr=lr)
    norm = np.sqrt(sum(np.sum(v**2) for v in g.values()))
    assert_allclose(history.grad_norms[0], norm, rtol=1e-10)  # recorded before clipping
    for n in g:  # no clipping: plain SGD
        assert_allclose(change[n], lr * g[n], rtol=1e-10, atol=1e-14)
    for tau in (norm / 4, norm / 2, 2 * norm):
        _, change, history = _one_sgd_step(clip_norm=tau, lr=lr)
        assert_allclose(history.grad_norms[0], norm, rtol=1e-10)
        expected_scale = min(1.0, tau / norm)
        clipped, reported = clip_by_norm(g, tau)
        assert_allclose(reported, norm, rtol=1e-12)
        for n in g:
            # eq-vg-clip, written out, and the NumPy reference, both equal what train() did
            assert_allclose(change[n], lr * g[n] * expected_scale, rtol=1e-5, atol=1e-12)
            assert_allclose(change[n], lr * clipped[n], rtol=1e-5, atol=1e-12)
        step = np.sqrt(sum(np.sum(v**2) for v in change.values()))
        assert step <= lr * tau * (1 + 1e-6)


def test_clip_by_norm_lists_and_edge_cases():
    grads = [np.array([3.0, 0.0]), np.array([[0.0], [4.0]])]  # ||g|| = 5
    clipped, norm = clip_by_norm(grads, 1.0)
    assert norm == 5.0
    assert_allclose(clipped[0], [0.6, 0.0])
    assert_allclose(clipped[1], [[0.0], [0.8]])
    same, _ = clip_by_norm(grads, 10.0)
    assert_allclose(same[0], grads[0])
    zeros, norm = clip_by_norm([np.zeros(3)], 1.0)
    assert norm == 0.0 and np.all(zeros[0] == 0)
    with pytest.raises(ValueError):
        clip_by_norm(grads, 0.0)
