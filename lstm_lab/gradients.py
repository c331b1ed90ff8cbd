"""Gradients through time: the Jacobians of the tanh RNN, the bound on what reaches a past state,
clipping, and the measured norm of dL/dh_t (and dL/dc_t) at every lag (chapters 2 and 3).

Glossary (book symbols -> code): b batch, t time steps, h hidden units; W_hh (h, h).
Row vectors, as in :mod:`lstm_lab.scratch.rnn`:  h_t = tanh(x_t W_xh + h_{t-1} W_hh + b_h).

Chapter 2's equations, and the function that computes each:

- eq-vg-jacobian  dh_t/dh_{t-1} = diag(1 - h_t^2) W_hh^T          :func:`rnn_step_jacobians`
- eq-vg-chain     dL/dh_k = dL/dh_T J_T J_{T-1} ... J_{k+1}       :func:`chain_gradient`
- eq-vg-bound     ||dL/dh_k|| <= (gamma sigma_max(W_hh))^(T-k) ||dL/dh_T||   :func:`gradient_bound`
- eq-vg-clip      g <- g min(1, tau / ||g||)                        :func:`clip_by_norm`

A Jacobian ``J[j, i] = d h_t[j] / d h_{t-1}[i]`` maps a change of the previous state to a
change of the new one; a gradient is a row vector, so it travels backwards as ``g @ J``.

:func:`orthogonal` and :func:`scaled_orthogonal` make recurrent matrices with a chosen spectrum,
to see the bound at work. :func:`state_gradient_norms` measures how much of a loss on h_T reaches
each earlier state, ||dL/dh_t|| (and ||dL/dc_t|| for the LSTM) at every lag T - t, with the
hand-written backward pass of :mod:`lstm_lab.scratch`, which returns exactly these totals
(``grads["hs"]`` and ``grads["cs"]``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from lstm_lab import scratch
from lstm_lab.checks import check_size


def orthogonal(h: int, *, rng: np.random.Generator) -> np.ndarray:
    """A random orthogonal matrix Q (h, h), Q Q^T = I, drawn uniformly (Haar measure).

    QR of a Gaussian matrix, with the signs of R's diagonal moved into Q so that the draw
    is uniform over the orthogonal group rather than biased by the QR convention.
    """
    h = check_size(h, "h")
    q, r = np.linalg.qr(rng.normal(size=(h, h)))  # (h, h), (h, h)
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)  # flip columns: a uniform draw


def scaled_orthogonal(h: int, gain: float, *, rng: np.random.Generator) -> np.ndarray:
    """``gain`` times a random orthogonal matrix (h, h).

    Every singular value of the result equals ``gain``, and so does the modulus of every
    eigenvalue: the spectral radius and the largest singular value are both ``gain``.
    ``gain < 1`` is the vanishing regime, ``gain = 1`` norm-preserving, ``gain > 1`` the
    regime in which gradients can explode.
    """
    if not (np.isfinite(gain) and gain > 0):
        raise ValueError(f"gain must be a positive number, got {gain!r}")
    return float(gain) * orthogonal(h, rng=rng)


def rnn_step_jacobians(hs: np.ndarray, W_hh: np.ndarray) -> np.ndarray:
    """The Jacobian of every step of a tanh RNN with respect to the state before it.

    Parameters
    ----------
    hs : array (b, t, h)
        Hidden states from :func:`lstm_lab.scratch.rnn_forward`; ``hs[:, s]`` is the state
        after step s.
    W_hh : array (h, h)

    Returns
    -------
    array (b, t, h, h)
        ``J[:, s] = d hs[:, s] / d (state before step s) = diag(1 - hs[:, s]^2) W_hh^T``
        (eq-vg-jacobian); entry ``[j, i]`` is the derivative of unit j after the step with
        respect to unit i before it.
    """
    hs = np.asarray(hs)
    W_hh = np.asarray(W_hh)
    if hs.ndim != 3 or W_hh.shape != (hs.shape[2], hs.shape[2]):
        raise ValueError(f"need hs (b, t, h) and W_hh (h, h), got {hs.shape} and {W_hh.shape}")
    slope = 1.0 - hs**2  # (b, t, h): tanh' at every step, from its output
    return slope[..., :, None] * W_hh.T  # (b, t, h, h): eq-vg-jacobian


def chain_gradient(dh_last: np.ndarray, jacobians: np.ndarray) -> np.ndarray:
    """dL/dh for every state, for a loss on the last state only, by multiplying Jacobians.

    Parameters
    ----------
    dh_last : array (b, h)
        dL/dh_T, the gradient of the loss with respect to the last state.
    jacobians : array (b, t, h, h)
        From :func:`rnn_step_jacobians`.

    Returns
    -------
    array (b, t, h)
        ``g[:, s]`` = dL/d hs[:, s] = dL/dh_T J_T J_{T-1} ... J_{s+1} (eq-vg-chain), so
        ``g[:, -1]`` is ``dh_last``. For the same loss this is what
        :func:`lstm_lab.scratch.rnn_backward` returns as ``"hs"``.
    """
    jacobians = np.asarray(jacobians)
    b, t, h, _ = jacobians.shape
    g = np.empty((b, t, h), dtype=np.result_type(dh_last, jacobians))
    g[:, -1] = dh_last
    for s in range(t - 1, 0, -1):
        g[:, s - 1] = np.einsum("bj,bji->bi", g[:, s], jacobians[:, s])  # eq-vg-chain  g J  (b, h)
    return g


def gradient_bound(W_hh: np.ndarray, lags, gamma: float = 1.0) -> np.ndarray:
    """The bound (gamma sigma_max(W_hh))^lag on ||dL/dh_{T-lag}|| / ||dL/dh_T|| (eq-vg-bound).

    ``gamma`` bounds the slope of the nonlinearity: 1 for tanh. Returns an array shaped like
    ``lags``.
    """
    sigma_max = np.linalg.norm(np.asarray(W_hh, dtype=float), ord=2)  # largest singular value
    return (gamma * sigma_max) ** np.asarray(lags, dtype=float)  # eq-vg-bound


def clip_by_norm(grads: Sequence[np.ndarray] | Mapping[str, np.ndarray], tau: float):
    """Rescale gradients so that their joint norm is at most ``tau`` (eq-vg-clip).

    ``grads`` is a list or a dict of arrays, treated as one long vector g. Returns
    ``(clipped, norm)``: the arrays times min(1, tau / ||g||) in the same container, and
    ||g|| before clipping. This is what ``torch.nn.utils.clip_grad_norm_`` does, which
    :func:`lstm_lab.train.train` calls when given ``clip_norm=tau``.
    """
    if not tau > 0:
        raise ValueError(f"tau must be positive, got {tau!r}")
    items = list(grads.values()) if isinstance(grads, Mapping) else list(grads)
    norm = float(np.sqrt(sum(np.sum(np.square(g, dtype=float)) for g in items)))
    scale = min(1.0, tau / norm) if norm > 0 else 1.0  # eq-vg-clip  min(1, tau / ||g||)
    if isinstance(grads, Mapping):
        return {k: np.asarray(g) * scale for k, g in grads.items()}, norm
    return [np.asarray(g) * scale for g in items], norm


def _family_of(params: dict) -> str:
    if "W_xh" in params:
        return "rnn"
    if "W_xn" in params:
        return "gru"
    if "W_xg" in params:
        return "lstm"
    raise KeyError("params is not an RNN, LSTM or GRU parameter dict (no W_xh, W_xg or W_xn)")


def state_gradient_norms(model_or_params, x, *, variant: str | None = None, form: str | None = None,
                         seed: int = 0) -> dict[str, np.ndarray]:
    """Norm of the gradient of a last-step loss with respect to every earlier state.

    Parameters
    ----------
    model_or_params
        A NumPy ``params`` dict (RNN, LSTM or GRU) or a one-layer ``lstm_lab.nn`` model
        (its ``scratch_params()`` are used).
    x : array (b, t, d)
        The input sequences; a numpy array or a tensor.
    variant, form
        The LSTM variant or the GRU form (taken from the model when one is given).
    seed
        Seeds the random upstream gradient dL/dh_T: a unit vector for each sequence.

    Returns
    -------
    dict with ``lag`` (t,) = 0, 1, ..., t-1; ``h`` (t,): the mean over the batch of
    ||dL/dh_{T-lag}||; and for the LSTM ``c`` (t,): the mean of ||dL/dc_{T-lag}||.
    """
    if isinstance(model_or_params, torch.nn.Module):
        model = model_or_params
        if getattr(model, "num_layers", 1) != 1:
            raise ValueError("state_gradient_norms needs a one-layer model")
        params = model.scratch_params()
        variant = getattr(model, "variant", variant)
        form = getattr(model, "form", form)
    else:
        params = model_or_params
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    params = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    family = _family_of(params)
    if family == "rnn":
        hs, cache = scratch.rnn_forward(x, params)
        backward = scratch.rnn_backward
    elif family == "lstm":
        hs, cache = scratch.lstm_forward(x, params, variant=variant or "vanilla")
        backward = scratch.lstm_backward
    else:
        hs, cache = scratch.gru_forward(x, params, form=form or "torch")
        backward = scratch.gru_backward
    b, t, h = hs.shape
    rng = np.random.default_rng(seed)
    dhs = np.zeros_like(hs)
    u = rng.normal(size=(b, h))
    dhs[:, -1] = u / np.linalg.norm(u, axis=1, keepdims=True)  # L = <u, h_T>, ||u|| = 1
    grads = backward(dhs, cache)
    out = {"lag": np.arange(t), "h": np.linalg.norm(grads["hs"], axis=2).mean(axis=0)[::-1]}
    if family == "lstm":
        out["c"] = np.linalg.norm(grads["cs"], axis=2).mean(axis=0)[::-1]
    return out
