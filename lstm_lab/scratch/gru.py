"""The GRU in NumPy, in both common forms: forward pass and backpropagation by hand.

Glossary: b batch, t time steps, d input features, h hidden units; r reset gate, z update
gate, n the new (candidate) state, h the hidden state. ``W_x<k>`` (d, h), ``W_h<k>`` (h, h),
``b_<k>`` (h,) for k in r, z, n; ``b_hn`` (h,) only in PyTorch's form.

Equations (chapter 4):

    r_t = sigma(x_t W_xr + h_{t-1} W_hr + b_r)                          eq-gru-reset
    z_t = sigma(x_t W_xz + h_{t-1} W_hz + b_z)                          eq-gru-update
    n_t = tanh(x_t W_xn + b_n + r_t * (h_{t-1} W_hn + b_hn))   form="torch"  eq-gru-candidate
    n_t = tanh(x_t W_xn + (r_t * h_{t-1}) W_hn + b_n)          form="cho"    eq-gru-candidate-cho
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}                               eq-gru-hidden

Cho et al. (2014) reset the previous state *before* the recurrent matrix; PyTorch (and
cuDNN) reset it *after*, which lets the matrix product h_{t-1} W_hn be computed together
with the other gates'. Only ``form="torch"`` matches ``torch.nn.GRU``.
"""

from __future__ import annotations

import numpy as np

from lstm_lab.scratch._checks import check_model_inputs, check_state, check_upstream
from lstm_lab.scratch.activations import sigmoid
from lstm_lab.variants import check_gru_form, gru_param_shapes


def init_gru_params(
    input_size: int, hidden_size: int, *, form: str = "torch", rng: np.random.Generator, dtype=np.float64
) -> dict:
    """Parameters drawn uniformly from (-1/sqrt(h), 1/sqrt(h)), as ``torch.nn.GRU`` does."""
    bound = 1.0 / np.sqrt(hidden_size)
    shapes = gru_param_shapes(form, input_size, hidden_size)
    return {k: rng.uniform(-bound, bound, size=s).astype(dtype) for k, s in shapes.items()}


def gru_forward(x, params, h0=None, *, form: str = "torch"):
    """Run a GRU over a batch of sequences.

    Parameters
    ----------
    x : array (b, t, d), float
    params : dict with ``W_x{r,z,n}`` (d, h), ``W_h{r,z,n}`` (h, h), ``b_{r,z,n}`` (h,),
        and ``b_hn`` (h,) for ``form="torch"``
    h0 : array (b, h), optional; zeros when omitted
    form : "torch" (reset after the recurrent matrix, as ``torch.nn.GRU``) or "cho"

    Returns
    -------
    hs : array (b, t, h)
    cache : dict for :func:`gru_backward`
    """
    form = check_gru_form(form)
    shapes_of = lambda d, h: gru_param_shapes(form, d, h)  # noqa: E731
    x, p, h, dtype = check_model_inputs(x, params, "W_xn", shapes_of, f"the {form} GRU")
    b, t, _ = x.shape
    h_prev = h0 = check_state(h0, "h0", b, h, dtype)
    store = {k: np.empty((b, t, h), dtype=dtype) for k in ("r", "z", "n", "hn")}
    hs = np.empty((b, t, h), dtype=dtype)
    for step in range(t):
        x_t = x[:, step]
        r = sigmoid(x_t @ p["W_xr"] + h_prev @ p["W_hr"] + p["b_r"])  # eq-gru-reset
        z = sigmoid(x_t @ p["W_xz"] + h_prev @ p["W_hz"] + p["b_z"])  # eq-gru-update
        if form == "torch":
            hn = h_prev @ p["W_hn"] + p["b_hn"]  # (b, h) @ (h, h)
            n = np.tanh(x_t @ p["W_xn"] + p["b_n"] + r * hn)  # eq-gru-candidate
        else:
            hn = r * h_prev
            n = np.tanh(x_t @ p["W_xn"] + hn @ p["W_hn"] + p["b_n"])  # eq-gru-candidate-cho
        h_prev = (1.0 - z) * n + z * h_prev  # eq-gru-hidden
        for k, v in (("r", r), ("z", z), ("n", n), ("hn", hn)):
            store[k][:, step] = v
        hs[:, step] = h_prev
    cache = {"x": x, "params": p, "form": form, "h0": h0, "hs": hs, **store}
    return hs, cache


def gru_backward(dhs, cache):
    """Backpropagation through time for :func:`gru_forward`.

    Returns a dict with a gradient for every parameter, ``x`` (b, t, d), ``h0`` (b, h), and
    ``hs`` (b, t, h): the total dL/dh_t through every later step.
    """
    x, p, form, hs = cache["x"], cache["params"], cache["form"], cache["hs"]
    dhs = check_upstream(dhs, hs.shape)
    b, t, h = hs.shape
    h_prevs = np.concatenate([cache["h0"][:, None], hs[:, :-1]], axis=1)
    dpre = {k: np.empty((b, t, h), dtype=hs.dtype) for k in ("r", "z", "n")}
    dhn_all = np.empty((b, t, h), dtype=hs.dtype)  # torch: dL/d(h W_hn + b_hn); cho: dL/d(r*h)
    dh_total = np.empty_like(hs)
    dh_next = np.zeros((b, h), dtype=hs.dtype)
    for step in reversed(range(t)):
        r, z, n, hn = (cache[k][:, step] for k in ("r", "z", "n", "hn"))
        h_prev = h_prevs[:, step]
        dh = dhs[:, step] + dh_next
        dh_total[:, step] = dh
        # h_t = (1 - z) n + z h_{t-1}
        dn = dh * (1.0 - z)
        dz = dh * (h_prev - n)
        dh_prev = dh * z
        dpre["n"][:, step] = dn_pre = dn * (1.0 - n**2)
        if form == "torch":
            dr = dn_pre * hn
            dhn_all[:, step] = dhn = dn_pre * r
            dh_prev = dh_prev + dhn @ p["W_hn"].T  # (b, h) @ (h, h)
        else:
            dhn_all[:, step] = d_rh = dn_pre @ p["W_hn"].T  # (b, h) @ (h, h)
            dr = d_rh * h_prev
            dh_prev = dh_prev + d_rh * r
        dpre["r"][:, step] = dr_pre = dr * r * (1.0 - r)
        dpre["z"][:, step] = dz_pre = dz * z * (1.0 - z)
        dh_next = dh_prev + dr_pre @ p["W_hr"].T + dz_pre @ p["W_hz"].T  # (b, h) @ (h, h), twice

    grads = {}
    for k in ("r", "z", "n"):
        grads[f"W_x{k}"] = np.einsum("btd,bth->dh", x, dpre[k])
        grads[f"b_{k}"] = dpre[k].sum(axis=(0, 1))
    for k in ("r", "z"):
        grads[f"W_h{k}"] = np.einsum("btk,bth->kh", h_prevs, dpre[k])
    if form == "torch":
        grads["W_hn"] = np.einsum("btk,bth->kh", h_prevs, dhn_all)
        grads["b_hn"] = dhn_all.sum(axis=(0, 1))
    else:
        grads["W_hn"] = np.einsum("btk,bth->kh", cache["hn"], dpre["n"])  # (r * h_{t-1})^T dn_pre
    grads["x"] = sum(dpre[k] @ p[f"W_x{k}"].T for k in ("r", "z", "n"))  # (b, t, h) @ (h, d)
    grads["h0"] = dh_next
    grads["hs"] = dh_total
    return grads
