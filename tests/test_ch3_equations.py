"""Chapter 3: the LSTM's equations, each recomputed independently and compared with the package."""

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from lstm_lab import scratch
from lstm_lab.nn import LSTM


def sig(a):
    return 1.0 / (1.0 + np.exp(-a))


@pytest.fixture(scope="module")
def run():
    rng = np.random.default_rng(0)
    b, t, d, h = 3, 6, 4, 5
    params = scratch.init_lstm_params(d, h, forget_bias=1.0, rng=rng)
    x = rng.normal(size=(b, t, d))
    h0, c0 = rng.normal(size=(2, b, h))
    hs, cache = scratch.lstm_forward(x, params, h0=h0, c0=c0)
    h_prev = np.concatenate([h0[:, None], hs[:, :-1]], axis=1)
    c_prev = np.concatenate([c0[:, None], cache["cs"][:, :-1]], axis=1)
    return params, x, hs, cache, h_prev, c_prev


def _pre(params, x, h_prev, k):
    return x @ params[f"W_x{k}"] + h_prev @ params[f"W_h{k}"] + params[f"b_{k}"]


@pytest.mark.equation("eq-lstm-forget")
def test_forget_gate(run):
    params, x, hs, cache, h_prev, _ = run
    assert_allclose(cache["gates"]["f"], sig(_pre(params, x, h_prev, "f")), rtol=1e-13)


@pytest.mark.equation("eq-lstm-input")
def test_input_gate(run):
    params, x, hs, cache, h_prev, _ = run
    assert_allclose(cache["gates"]["i"], sig(_pre(params, x, h_prev, "i")), rtol=1e-13)


@pytest.mark.equation("eq-lstm-candidate")
def test_candidate(run):
    params, x, hs, cache, h_prev, _ = run
    assert_allclose(cache["gates"]["g"], np.tanh(_pre(params, x, h_prev, "g")), rtol=1e-13, atol=1e-15)


@pytest.mark.equation("eq-lstm-cell")
def test_cell_update(run):
    _, _, _, cache, _, c_prev = run
    g = cache["gates"]
    assert_allclose(cache["cs"], g["f"] * c_prev + g["i"] * g["g"], rtol=1e-13, atol=1e-15)


@pytest.mark.equation("eq-lstm-output")
def test_output_gate(run):
    params, x, hs, cache, h_prev, _ = run
    assert_allclose(cache["gates"]["o"], sig(_pre(params, x, h_prev, "o")), rtol=1e-13)


@pytest.mark.equation("eq-lstm-hidden")
def test_hidden_state(run):
    _, _, hs, cache, _, _ = run
    assert_allclose(hs, cache["gates"]["o"] * np.tanh(cache["cs"]), rtol=1e-13, atol=1e-15)


@pytest.mark.equation("eq-lstm-cell-gradient")
def test_cell_gradient_recurrence(run):
    """dL/dc_t = dL/dc_{t+1} * f_{t+1} + dL/dh_t * o_t * (1 - tanh^2 c_t), with dL/dh_t the total."""
    params, x, hs, cache, _, _ = run
    dhs = np.random.default_rng(1).normal(size=hs.shape)
    grads = scratch.lstm_backward(dhs, cache)
    dc, dh, g = grads["cs"], grads["hs"], cache["gates"]
    through_h = dh * g["o"] * (1.0 - np.tanh(cache["cs"]) ** 2)
    assert_allclose(dc[:, -1], through_h[:, -1], rtol=1e-12)
    assert_allclose(dc[:, :-1], dc[:, 1:] * g["f"][:, 1:] + through_h[:, :-1], rtol=1e-12, atol=1e-14)


@pytest.mark.equation("eq-lstm-forget", "eq-lstm-input", "eq-lstm-candidate", "eq-lstm-cell",
                      "eq-lstm-output", "eq-lstm-hidden")
@pytest.mark.parametrize("method", ["cell", "fused", "torch"])
def test_pytorch_models_compute_the_same_equations(run, method):
    params, x, hs, *_ = run
    ref, _ = scratch.lstm_forward(x, params)
    model = LSTM(4, 5, method=method).double().load_params(params)
    out, _ = model(torch.from_numpy(x))
    assert_allclose(out.detach().numpy(), ref, rtol=1e-12, atol=1e-13)
