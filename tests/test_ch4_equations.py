"""Chapter 4: peepholes, coupled gates and the GRU (both forms), each equation recomputed
independently from the book and compared with the NumPy models and the PyTorch modules."""

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from lstm_lab import scratch
from lstm_lab.nn import GRU, LSTM

B, T, D, H = 3, 7, 4, 5


def sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def _inputs(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, T, D))
    h0, c0 = rng.normal(size=(2, B, H))
    return rng, x, h0, c0


def _lin(p, k, x_t, h_prev):
    return x_t @ p[f"W_x{k}"] + h_prev @ p[f"W_h{k}"] + p[f"b_{k}"]


def reference_lstm(x, p, h0, c0, coupled=False):
    """The peephole LSTM written from the book, one step at a time; coupled=True is CIFG."""
    h_prev, c_prev = h0, c0
    out = {k: [] for k in ("i", "f", "g", "o", "c", "h")}
    for s in range(x.shape[1]):
        x_t = x[:, s]
        i = sig(_lin(p, "i", x_t, h_prev) + c_prev * p["p_i"])  # eq-peephole-input
        f = 1.0 - i if coupled else sig(_lin(p, "f", x_t, h_prev) + c_prev * p["p_f"])  # eq-cifg / eq-peephole-forget
        g = np.tanh(_lin(p, "g", x_t, h_prev))
        c = f * c_prev + i * g
        o = sig(_lin(p, "o", x_t, h_prev) + c * p["p_o"])  # eq-peephole-output: sees c_t
        h_prev, c_prev = o * np.tanh(c), c
        for k, v in zip("ifgoch", (i, f, g, o, c, h_prev)):
            out[k].append(v)
    return {k: np.stack(v, axis=1) for k, v in out.items()}


def reference_gru(x, p, h0, form):
    """The GRU written from the book, one step at a time, in either form."""
    h_prev = h0
    out = {k: [] for k in ("r", "z", "n", "h")}
    for s in range(x.shape[1]):
        x_t = x[:, s]
        r = sig(_lin(p, "r", x_t, h_prev))
        z = sig(_lin(p, "z", x_t, h_prev))
        if form == "torch":
            n = np.tanh(x_t @ p["W_xn"] + p["b_n"] + r * (h_prev @ p["W_hn"] + p["b_hn"]))
        else:
            n = np.tanh(x_t @ p["W_xn"] + (r * h_prev) @ p["W_hn"] + p["b_n"])
        h_prev = (1.0 - z) * n + z * h_prev
        for k, v in zip("rznh", (r, z, n, h_prev)):
            out[k].append(v)
    return {k: np.stack(v, axis=1) for k, v in out.items()}


@pytest.fixture(scope="module")
def peephole():
    rng, x, h0, c0 = _inputs(0)
    p = scratch.init_lstm_params(D, H, variant="peephole", forget_bias=1.0, rng=rng)
    for k in ("p_i", "p_f", "p_o"):  # make the peepholes large enough to matter
        p[k] = rng.normal(scale=2.0, size=H)
    hs, cache = scratch.lstm_forward(x, p, h0=h0, c0=c0, variant="peephole")
    return x, p, h0, c0, hs, cache, reference_lstm(x, p, h0, c0)


def _torch_lstm(variant, p, x, h0, c0):
    model = LSTM(D, H, variant=variant, method="cell").double().load_params(p)
    state = (torch.from_numpy(h0)[None], torch.from_numpy(c0)[None])
    with torch.no_grad():
        return model(torch.from_numpy(x), state)[0].numpy()


@pytest.mark.equation("eq-peephole-input")
def test_peephole_input_gate(peephole):
    x, p, h0, c0, hs, cache, ref = peephole
    assert_allclose(cache["gates"]["i"], ref["i"], rtol=1e-13, atol=1e-15)
    # the peephole term is really there: without it the gate differs
    c_prev = np.concatenate([c0[:, None], cache["cs"][:, :-1]], axis=1)
    h_prev = np.concatenate([h0[:, None], hs[:, :-1]], axis=1)
    blind = sig(_lin(p, "i", x, h_prev))
    assert not np.allclose(cache["gates"]["i"], blind, atol=1e-3)
    assert_allclose(cache["gates"]["i"], sig(_lin(p, "i", x, h_prev) + c_prev * p["p_i"]), rtol=1e-13)


@pytest.mark.equation("eq-peephole-forget")
def test_peephole_forget_gate(peephole):
    x, p, h0, c0, hs, cache, ref = peephole
    assert_allclose(cache["gates"]["f"], ref["f"], rtol=1e-13, atol=1e-15)
    c_prev = np.concatenate([c0[:, None], cache["cs"][:, :-1]], axis=1)
    h_prev = np.concatenate([h0[:, None], hs[:, :-1]], axis=1)
    assert_allclose(cache["gates"]["f"], sig(_lin(p, "f", x, h_prev) + c_prev * p["p_f"]), rtol=1e-13)


@pytest.mark.equation("eq-peephole-output")
def test_peephole_output_gate_sees_the_new_cell(peephole):
    x, p, h0, c0, hs, cache, ref = peephole
    assert_allclose(cache["gates"]["o"], ref["o"], rtol=1e-13, atol=1e-15)
    h_prev = np.concatenate([h0[:, None], hs[:, :-1]], axis=1)
    c_prev = np.concatenate([c0[:, None], cache["cs"][:, :-1]], axis=1)
    assert_allclose(cache["gates"]["o"], sig(_lin(p, "o", x, h_prev) + cache["cs"] * p["p_o"]), rtol=1e-13)
    # c_t, not c_{t-1}: the other choice gives a different gate
    assert not np.allclose(cache["gates"]["o"], sig(_lin(p, "o", x, h_prev) + c_prev * p["p_o"]), atol=1e-3)
    # the whole model, NumPy and PyTorch's readable cell, matches the reference
    assert_allclose(hs, ref["h"], rtol=1e-12, atol=1e-14)
    assert_allclose(_torch_lstm("peephole", p, x, h0, c0), ref["h"], rtol=1e-12, atol=1e-14)


@pytest.mark.equation("eq-cifg")
def test_cifg_forget_is_one_minus_input():
    rng, x, h0, c0 = _inputs(1)
    p = scratch.init_lstm_params(D, H, variant="CIFG", rng=rng)
    assert "W_xf" not in p and "p_f" not in p  # no forget-gate parameters at all
    hs, cache = scratch.lstm_forward(x, p, h0=h0, c0=c0, variant="CIFG")
    assert_allclose(cache["gates"]["f"], 1.0 - cache["gates"]["i"], rtol=0, atol=1e-15)
    ref = reference_lstm(x, p, h0, c0, coupled=True)
    assert_allclose(hs, ref["h"], rtol=1e-12, atol=1e-14)
    assert_allclose(cache["cs"], ref["c"], rtol=1e-12, atol=1e-14)
    assert_allclose(_torch_lstm("CIFG", p, x, h0, c0), ref["h"], rtol=1e-12, atol=1e-14)
    # a forget bias b for CIFG starts the forget gate at sigma(b): b_i is lowered by b
    wide = scratch.init_lstm_params(D, 400, variant="CIFG", forget_bias=2.0, rng=rng)
    _, c = scratch.lstm_forward(np.zeros((1, 1, D)), wide, variant="CIFG")
    assert abs(c["gates"]["f"].mean() - sig(2.0)) < 0.02


@pytest.fixture(scope="module", params=["torch", "cho"])
def gru_run(request):
    form = request.param
    rng, x, h0, _ = _inputs(2)
    p = scratch.init_gru_params(D, H, form=form, rng=rng)
    hs, cache = scratch.gru_forward(x, p, h0=h0, form=form)
    return form, x, p, h0, hs, cache, reference_gru(x, p, h0, form)


def _torch_gru(form, p, x, h0, method="cell"):
    model = GRU(D, H, form=form, method=method).double().load_params(p)
    with torch.no_grad():
        return model(torch.from_numpy(x), torch.from_numpy(h0)[None])[0].numpy()


@pytest.mark.equation("eq-gru-reset")
def test_gru_reset_gate(gru_run):
    form, x, p, h0, hs, cache, ref = gru_run
    assert_allclose(cache["r"], ref["r"], rtol=1e-13, atol=1e-15)


@pytest.mark.equation("eq-gru-update")
def test_gru_update_gate(gru_run):
    form, x, p, h0, hs, cache, ref = gru_run
    assert_allclose(cache["z"], ref["z"], rtol=1e-13, atol=1e-15)


@pytest.mark.equation("eq-gru-candidate")
def test_gru_candidate_torch_form_is_torch_nn_gru():
    rng, x, h0, _ = _inputs(3)
    p = scratch.init_gru_params(D, H, form="torch", rng=rng)
    hs, cache = scratch.gru_forward(x, p, h0=h0, form="torch")
    ref = reference_gru(x, p, h0, "torch")
    assert_allclose(cache["n"], ref["n"], rtol=1e-13, atol=1e-15)
    assert_allclose(_torch_gru("torch", p, x, h0, "cell"), ref["h"], rtol=1e-12, atol=1e-14)
    assert_allclose(_torch_gru("torch", p, x, h0, "torch"), ref["h"], rtol=1e-12, atol=1e-14)
    reference = GRU(D, H).double().load_params(p).to_torch()  # torch.nn.GRU itself
    with torch.no_grad():
        out = reference(torch.from_numpy(x), torch.from_numpy(h0)[None])[0].numpy()
    assert_allclose(out, ref["h"], rtol=1e-12, atol=1e-14)


@pytest.mark.equation("eq-gru-candidate-cho")
def test_gru_candidate_cho_form_resets_before_the_matrix():
    rng, x, h0, _ = _inputs(4)
    p = scratch.init_gru_params(D, H, form="cho", rng=rng)
    assert "b_hn" not in p
    hs, cache = scratch.gru_forward(x, p, h0=h0, form="cho")
    ref = reference_gru(x, p, h0, "cho")
    assert_allclose(cache["n"], ref["n"], rtol=1e-13, atol=1e-15)
    assert_allclose(_torch_gru("cho", p, x, h0), ref["h"], rtol=1e-12, atol=1e-14)
    # with b_hn = 0 the two forms differ, unless the reset gate is fully open
    as_torch = {**p, "b_hn": np.zeros(H)}
    assert not np.allclose(scratch.gru_forward(x, as_torch, h0=h0, form="torch")[0], hs, atol=1e-4)
    p_open, t_open = {**p, "b_r": np.full(H, 40.0)}, {**as_torch, "b_r": np.full(H, 40.0)}
    assert_allclose(scratch.gru_forward(x, t_open, h0=h0, form="torch")[0],
                    scratch.gru_forward(x, p_open, h0=h0, form="cho")[0], rtol=0, atol=1e-12)


@pytest.mark.equation("eq-gru-hidden")
def test_gru_hidden_state_mixes_old_and_new(gru_run):
    form, x, p, h0, hs, cache, ref = gru_run
    h_prev = np.concatenate([h0[:, None], hs[:, :-1]], axis=1)
    assert_allclose(hs, (1.0 - cache["z"]) * cache["n"] + cache["z"] * h_prev, rtol=1e-13, atol=1e-15)
    assert_allclose(hs, ref["h"], rtol=1e-12, atol=1e-14)
    assert_allclose(_torch_gru(form, p, x, h0), ref["h"], rtol=1e-12, atol=1e-14)
