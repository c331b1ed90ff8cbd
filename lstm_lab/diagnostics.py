"""Gradient diagnostics for the vanishing-gradient chapter.

How much of a loss at the last step reaches each earlier state? For a loss L on h_T we
measure ||dL/dh_t|| (and ||dL/dc_t|| for the LSTM) at every lag T - t, using the hand-written
backward pass of :mod:`lstm_lab.scratch`, which returns exactly these totals (``grads["hs"]``
and ``grads["cs"]``).
"""

from __future__ import annotations

import numpy as np
import torch

from lstm_lab import scratch


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
