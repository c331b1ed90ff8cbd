"""Chapter 1: the vanilla RNN, its readout, its loss and backpropagation through time compute
the book's equations. Each test recomputes an equation independently from its formula."""

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from lstm_lab.nn import RNN, SequenceModel
from lstm_lab.scratch import init_rnn_params, rnn_backward, rnn_forward
from lstm_lab.train import sequence_cross_entropy

B, T, D, H = 3, 6, 4, 5


def _setup(seed=0):
    rng = np.random.default_rng(seed)
    params = init_rnn_params(D, H, rng=rng)
    params["W_hh"] *= 3.0  # larger recurrent weights: tanh is non-linear, not near-identity
    x = rng.normal(size=(B, T, D))
    h0 = rng.normal(scale=0.5, size=(B, H))
    return rng, params, x, h0


@pytest.mark.equation("eq-rnn")
@pytest.mark.parametrize("method", ["numpy", "cell", "torch"])
def test_rnn_step_is_tanh_of_input_plus_recurrence(method):
    _, p, x, h0 = _setup()
    # the equation, one step at a time
    expected = np.empty((B, T, H))
    h = h0
    for t in range(T):
        h = np.tanh(x[:, t] @ p["W_xh"] + h @ p["W_hh"] + p["b_h"])
        expected[:, t] = h
    if method == "numpy":
        hs, _ = rnn_forward(x, p, h0)
    else:
        model = RNN(D, H, method=method).double().load_params(p)
        hs, h_n = model(torch.from_numpy(x), torch.from_numpy(h0)[None])
        assert_allclose(h_n[0].detach().numpy(), expected[:, -1], rtol=1e-12, atol=1e-13)
        hs = hs.detach().numpy()
    assert_allclose(hs, expected, rtol=1e-12, atol=1e-13)
    # shapes as the book writes them: W_xh (d, h), W_hh (h, h), b_h (h,)
    assert p["W_xh"].shape == (D, H) and p["W_hh"].shape == (H, H) and p["b_h"].shape == (H,)


@pytest.mark.equation("eq-rnn-readout")
def test_sequence_model_readout_is_h_times_W_hy_plus_b_y():
    torch.manual_seed(0)
    model = SequenceModel(RNN(D, H), 7).double()
    x = torch.randn(B, T, D, dtype=torch.float64)
    with torch.no_grad():
        y, _ = model(x)
        hs, _ = model.core(x)
        W_hy = model.head.weight.T.numpy()  # (h, k): torch stores (k, h)
        b_y = model.head.bias.numpy()
    assert W_hy.shape == (H, 7)
    assert_allclose(y.numpy(), hs.numpy() @ W_hy + b_y, rtol=1e-12, atol=1e-13)


@pytest.mark.equation("eq-rnn-loss")
def test_sequence_cross_entropy_is_mean_negative_log_probability():
    rng = np.random.default_rng(1)
    torch.manual_seed(1)
    k = 7
    model = SequenceModel(RNN(D, H), k, vocab_size=k).double()
    tokens = rng.integers(0, k, size=(B, T + 1))
    x, y = torch.from_numpy(tokens[:, :-1]), torch.from_numpy(tokens[:, 1:])
    with torch.no_grad():
        logits = model(x)[0].numpy()  # (b, t, k)
        loss = sequence_cross_entropy(model, x, y).item()
    # softmax, then the mean over every sequence and step of -log p(next character)
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    expected = -np.mean(np.take_along_axis(logp, tokens[:, 1:, None], axis=-1))
    assert_allclose(loss, expected, rtol=1e-12)
    # a model that knows nothing (equal logits) scores ln k
    with torch.no_grad():
        for p in model.head.parameters():
            p.zero_()
        assert_allclose(sequence_cross_entropy(model, x, y).item(), np.log(k), rtol=1e-12)


@pytest.mark.equation("eq-rnn-bptt")
def test_bptt_recurrence_for_the_total_state_gradient():
    rng, p, x, h0 = _setup(2)
    hs, cache = rnn_forward(x, p, h0)
    direct = rng.normal(size=hs.shape)  # dL/dh_t from the loss directly
    grads = rnn_backward(direct, cache)
    # the recurrence, run backwards from the last step
    total = np.empty_like(hs)
    total[:, -1] = direct[:, -1]
    for t in range(T - 2, -1, -1):
        total[:, t] = direct[:, t] + (total[:, t + 1] * (1 - hs[:, t + 1] ** 2)) @ p["W_hh"].T
    assert_allclose(grads["hs"], total, rtol=1e-12, atol=1e-13)
    # and it is the true gradient: autograd on L = sum_t <direct_t, h_t>
    xt, h0t = torch.from_numpy(x), torch.from_numpy(h0)
    pt = {k: torch.from_numpy(v).requires_grad_() for k, v in p.items()}
    h, states = h0t, []
    for t in range(T):
        h = torch.tanh(xt[:, t] @ pt["W_xh"] + h @ pt["W_hh"] + pt["b_h"])
        h.retain_grad()
        states.append(h)
    (torch.stack(states, 1) * torch.from_numpy(direct)).sum().backward()
    # autograd's h.grad holds the gradient through later steps as well: the total
    assert_allclose(np.stack([s.grad.numpy() for s in states], 1), total, rtol=1e-10, atol=1e-12)


@pytest.mark.equation("eq-rnn-bptt-weights")
def test_weight_gradients_are_sums_over_time():
    rng, p, x, h0 = _setup(3)
    hs, cache = rnn_forward(x, p, h0)
    grads = rnn_backward(rng.normal(size=hs.shape), cache)
    h_prev = np.concatenate([h0[:, None], hs[:, :-1]], axis=1)  # (b, t, h)
    da = grads["hs"] * (1 - hs**2)  # dL/da_t, a_t the pre-activation
    dW_xh = sum(x[:, t].T @ da[:, t] for t in range(T))
    dW_hh = sum(h_prev[:, t].T @ da[:, t] for t in range(T))
    db_h = sum(da[:, t].sum(0) for t in range(T))
    assert_allclose(grads["W_xh"], dW_xh, rtol=1e-12, atol=1e-13)
    assert_allclose(grads["W_hh"], dW_hh, rtol=1e-12, atol=1e-13)
    assert_allclose(grads["b_h"], db_h, rtol=1e-12, atol=1e-13)


def test_zero_recurrent_weights_cut_the_path_through_time():
    """Exercise of chapter 1: with W_hh = 0 only the direct gradient reaches h_t."""
    rng, p, x, h0 = _setup(4)
    p["W_hh"][:] = 0.0
    hs, cache = rnn_forward(x, p, h0)
    direct = rng.normal(size=hs.shape)
    grads = rnn_backward(direct, cache)
    assert_allclose(grads["hs"], direct, rtol=0, atol=0)
    assert_allclose(grads["h0"], 0.0, rtol=0, atol=0)  # nothing reaches the initial state
    assert np.abs(grads["W_hh"]).max() > 0  # but W_hh itself still gets a gradient
