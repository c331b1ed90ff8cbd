"""The Elman (tanh) RNN in NumPy: forward pass and backpropagation through time by hand.

Glossary (book symbols -> code): b batch, t time steps, d input features, h hidden units;
x_t -> ``x[:, t]`` (b, d); h_t -> ``h`` (b, h); W_xh (d, h); W_hh (h, h); b_h (h,).
Row vectors throughout: ``x_t @ W_xh`` is the book's x_t W_xh.

Equation (chapter 1, eq-rnn):  h_t = tanh(x_t W_xh + h_{t-1} W_hh + b_h)
"""

from __future__ import annotations

import numpy as np

from lstm_lab.scratch._checks import check_model_inputs, check_state, check_upstream
from lstm_lab.variants import rnn_param_shapes


def init_rnn_params(input_size: int, hidden_size: int, *, rng: np.random.Generator, dtype=np.float64) -> dict:
    """Parameters drawn uniformly from (-1/sqrt(h), 1/sqrt(h)), as ``torch.nn.RNN`` does."""
    bound = 1.0 / np.sqrt(hidden_size)
    shapes = rnn_param_shapes(input_size, hidden_size)
    return {k: rng.uniform(-bound, bound, size=s).astype(dtype) for k, s in shapes.items()}


def rnn_forward(x, params, h0=None):
    """Run a tanh RNN over a batch of sequences.

    Parameters
    ----------
    x : array (b, t, d), float
    params : dict with ``W_xh`` (d, h), ``W_hh`` (h, h), ``b_h`` (h,)
    h0 : array (b, h), optional; zeros when omitted

    Returns
    -------
    hs : array (b, t, h)
        The hidden state after every step; ``hs[:, -1]`` is the final state.
    cache : dict
        What :func:`rnn_backward` needs.
    """
    x, p, h, dtype = check_model_inputs(x, params, "W_xh", rnn_param_shapes, "the RNN")
    b, t, _ = x.shape
    h_prev = check_state(h0, "h0", b, h, dtype)
    hs = np.empty((b, t, h), dtype=dtype)
    for step in range(t):
        h_prev = np.tanh(x[:, step] @ p["W_xh"] + h_prev @ p["W_hh"] + p["b_h"])  # eq-rnn
        hs[:, step] = h_prev
    cache = {"x": x, "params": p, "h0": check_state(h0, "h0", b, h, dtype), "hs": hs}
    return hs, cache


def rnn_backward(dhs, cache):
    """Backpropagation through time for :func:`rnn_forward`.

    Parameters
    ----------
    dhs : array (b, t, h)
        dL/dh_t from the loss directly (not through later steps), for every step.
    cache : the second result of :func:`rnn_forward`

    Returns
    -------
    dict
        ``W_xh``, ``W_hh``, ``b_h``: parameter gradients; ``x`` (b, t, d); ``h0`` (b, h);
        ``hs`` (b, t, h): the total dL/dh_t, through every later step (eq-rnn-bptt).
    """
    x, p, h0, hs = cache["x"], cache["params"], cache["h0"], cache["hs"]
    dhs = check_upstream(dhs, hs.shape)
    b, t, h = hs.shape
    h_prevs = np.concatenate([h0[:, None], hs[:, :-1]], axis=1)  # (b, t, h): h_{t-1}
    da = np.empty_like(hs)  # dL/d(pre-activation) at every step
    dh_total = np.empty_like(hs)
    dh_next = np.zeros((b, h), dtype=hs.dtype)  # dL/dh_t arriving from step t+1
    for step in reversed(range(t)):
        dh = dhs[:, step] + dh_next  # eq-rnn-bptt: direct + through the future
        dh_total[:, step] = dh
        da[:, step] = dh * (1.0 - hs[:, step] ** 2)  # tanh' = 1 - h_t^2
        dh_next = da[:, step] @ p["W_hh"].T  # (b, h) @ (h, h)
    return {
        "W_xh": np.einsum("btd,bth->dh", x, da),  # eq-rnn-bptt-weights  sum_t x_t^T dL/da_t  (d, h)
        "W_hh": np.einsum("btk,bth->kh", h_prevs, da),  # eq-rnn-bptt-weights  sum_t h_{t-1}^T dL/da_t  (h, h)
        "b_h": da.sum(axis=(0, 1)),
        "x": da @ p["W_xh"].T,
        "h0": dh_next,
        "hs": dh_total,
    }
