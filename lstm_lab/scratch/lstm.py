"""The LSTM and its variants in NumPy: forward pass and backpropagation through time by hand.

Glossary (book symbols -> code): b batch, t time steps, d input features, h hidden units.
Gates i (input), f (forget), o (output) and the candidate g (the book's c~_t) follow
PyTorch's letters; c is the cell state, h the hidden state. ``W_x<k>`` (d, h), ``W_h<k>``
(h, h), ``b_<k>`` (h,) belong to block k; ``p_<k>`` (h,) are peephole weights; ``R_<a><k>``
(h, h) the FGR variant's gate-to-gate weights. ``lstm_lab.variants`` lists the variants.
Row vectors throughout: ``x_t @ W_xi`` is the book's x_t W_xi.

Equations (chapter 3; peepholes and the variants in chapter 4):

    i_t = sigma(x_t W_xi + h_{t-1} W_hi + b_i [+ c_{t-1} * p_i])     eq-lstm-input
    f_t = sigma(x_t W_xf + h_{t-1} W_hf + b_f [+ c_{t-1} * p_f])     eq-lstm-forget
    g_t = tanh(x_t W_xg + h_{t-1} W_hg + b_g)                        eq-lstm-candidate
    c_t = f_t * c_{t-1} + i_t * g_t                                  eq-lstm-cell
    o_t = sigma(x_t W_xo + h_{t-1} W_ho + b_o [+ c_t * p_o])         eq-lstm-output
    h_t = o_t * tanh(c_t)                                            eq-lstm-hidden
"""

from __future__ import annotations

import numpy as np

from lstm_lab.scratch._checks import check_model_inputs, check_state, check_upstream
from lstm_lab.scratch.activations import sigmoid
from lstm_lab.variants import LSTMSpec, check_forget_bias, lstm_param_shapes, lstm_spec


def init_lstm_params(
    input_size: int,
    hidden_size: int,
    *,
    variant: str = "vanilla",
    forget_bias: float = 0.0,
    rng: np.random.Generator,
    dtype=np.float64,
) -> dict:
    """Parameters drawn uniformly from (-1/sqrt(h), 1/sqrt(h)), as ``torch.nn.LSTM`` does.

    ``forget_bias`` is added to ``b_f`` (Jozefowicz et al. 2015 recommend 1). For CIFG,
    whose forget gate is ``1 - i = sigma(-i_pre)``, it is subtracted from ``b_i`` instead;
    NFG has no forget gate, so a non-zero ``forget_bias`` is an error.
    """
    spec = lstm_spec(variant)
    check_forget_bias(spec, forget_bias)
    bound = 1.0 / np.sqrt(hidden_size)
    shapes = lstm_param_shapes(spec, input_size, hidden_size)
    params = {k: rng.uniform(-bound, bound, size=s).astype(dtype) for k, s in shapes.items()}
    if spec.coupled:
        params["b_i"] -= forget_bias
    elif spec.forget_gate:
        params["b_f"] += forget_bias
    return params


def _pre_activation(p, spec: LSTMSpec, k: str, x_t, h_prev, prev):
    """Block k's pre-activation x_t W_xk + h_{t-1} W_hk + b_k (b, h), plus FGR's terms from the
    previous step's gates ``prev``."""
    a = x_t @ p[f"W_x{k}"] + h_prev @ p[f"W_h{k}"] + p[f"b_{k}"]  # (b, d) @ (d, h) + (b, h) @ (h, h)
    for src, dst in spec.recurrent_gate_pairs:
        if dst == k:
            a = a + prev[src] @ p[f"R_{src}{k}"]  # (b, h) @ (h, h)
    return a


def lstm_forward(x, params, h0=None, c0=None, *, variant: str = "vanilla", gates0=None):
    """Run an LSTM (any variant) over a batch of sequences.

    Parameters
    ----------
    x : array (b, t, d), float
    params : dict of the variant's parameters (see ``lstm_lab.variants.lstm_param_shapes``)
    h0, c0 : arrays (b, h), optional; zeros when omitted
    variant : one of ``lstm_lab.variants.LSTM_VARIANTS``
    gates0 : array (b, 3h), FGR only: the previous step's [i, f, o]; zeros when omitted

    Returns
    -------
    hs : array (b, t, h)
        Hidden state after every step; ``hs[:, -1]`` is the final h.
    cache : dict
        What :func:`lstm_backward` needs; ``cache["cs"]`` (b, t, h) holds the cell states and
        ``cache["gates"]`` maps "i", "f", "g", "o" to their (b, t, h) activations.
    """
    spec = lstm_spec(variant)
    shapes_of = lambda d, h: lstm_param_shapes(spec, d, h)  # noqa: E731
    x, p, h, dtype = check_model_inputs(x, params, "W_xg", shapes_of, f"the {spec.name} LSTM")
    b, t, _ = x.shape
    h_prev = h0 = check_state(h0, "h0", b, h, dtype)
    c_prev = c0 = check_state(c0, "c0", b, h, dtype)
    if spec.full_gate_recurrence:
        gates0 = check_state(gates0, "gates0", b, 3 * h, dtype)
    elif gates0 is not None:
        raise ValueError(f"gates0 is only used by the FGR variant, not by {spec.name!r}")
    prev = dict(zip("ifo", np.split(gates0, 3, axis=1))) if spec.full_gate_recurrence else {}

    ones = np.ones((b, h), dtype=dtype)
    act = {k: np.empty((b, t, h), dtype=dtype) for k in "ifgo"}
    cs = np.empty((b, t, h), dtype=dtype)
    act_cs = np.empty((b, t, h), dtype=dtype)
    hs = np.empty((b, t, h), dtype=dtype)

    for step in range(t):
        x_t = x[:, step]

        peep = spec.peepholes
        if spec.input_gate:
            i_pre = _pre_activation(p, spec, "i", x_t, h_prev, prev)  # (b, h)
            i = sigmoid(i_pre + (c_prev * p["p_i"] if peep else 0))  # eq-lstm-input, eq-peephole-input
        else:
            i = ones
        if spec.coupled:
            f = 1.0 - i  # eq-cifg
        elif spec.forget_gate:
            f_pre = _pre_activation(p, spec, "f", x_t, h_prev, prev)  # (b, h)
            f = sigmoid(f_pre + (c_prev * p["p_f"] if peep else 0))  # eq-lstm-forget, eq-peephole-forget
        else:
            f = ones
        g_pre = _pre_activation(p, spec, "g", x_t, h_prev, prev)  # (b, h)
        g = np.tanh(g_pre) if spec.input_activation else g_pre  # eq-lstm-candidate
        c = f * c_prev + i * g  # eq-lstm-cell  (b, h)
        if spec.output_gate:
            o_pre = _pre_activation(p, spec, "o", x_t, h_prev, prev)  # (b, h)
            o = sigmoid(o_pre + (c * p["p_o"] if peep else 0))  # eq-lstm-output, eq-peephole-output
        else:
            o = ones
        act_c = np.tanh(c) if spec.output_activation else c
        h_prev = o * act_c  # eq-lstm-hidden

        for k, v in zip("ifgo", (i, f, g, o)):
            act[k][:, step] = v
        cs[:, step], act_cs[:, step], hs[:, step] = c, act_c, h_prev
        c_prev = c
        if spec.full_gate_recurrence:
            prev = {"i": i, "f": f, "o": o}

    cache = {"x": x, "params": p, "spec": spec, "h0": h0, "c0": c0, "gates0": gates0,
             "gates": act, "cs": cs, "act_cs": act_cs, "hs": hs}
    return hs, cache


def lstm_backward(dhs, cache, dc_last=None):
    """Backpropagation through time for :func:`lstm_forward`, every variant.

    Parameters
    ----------
    dhs : array (b, t, h)
        dL/dh_t from the loss directly (not through later steps), for every step.
    cache : the second result of :func:`lstm_forward`
    dc_last : array (b, h), optional
        dL/dc_T from outside the sequence (when the final cell state is used later).

    Returns
    -------
    dict
        A gradient for every parameter (same keys as ``params``), and ``x`` (b, t, d),
        ``h0`` (b, h), ``c0`` (b, h), for FGR ``gates0`` (b, 3h); plus the total gradients
        through time ``hs`` = dL/dh_t and ``cs`` = dL/dc_t, both (b, t, h).
    """
    x, p, spec = cache["x"], cache["params"], cache["spec"]
    hs, cs, act_cs, act = cache["hs"], cache["cs"], cache["act_cs"], cache["gates"]
    dhs = check_upstream(dhs, hs.shape)
    b, t, h = hs.shape
    c_prevs = np.concatenate([cache["c0"][:, None], cs[:, :-1]], axis=1)  # c_{t-1}
    h_prevs = np.concatenate([cache["h0"][:, None], hs[:, :-1]], axis=1)  # h_{t-1}
    zeros = np.zeros((b, h), dtype=hs.dtype)

    dpre = {k: np.zeros((b, t, h), dtype=hs.dtype) for k in spec.blocks}  # dL/d(pre-activation)
    dh_total = np.empty_like(hs)
    dc_total = np.empty_like(hs)
    dh_next = zeros.copy()  # dL/dh_t arriving from step t+1
    dc_next = zeros.copy() if dc_last is None else check_state(dc_last, "dc_last", b, h, hs.dtype).copy()
    dgate_next = {k: zeros for k in "ifo"}  # FGR: dL/d(gate activation) from step t+1
    peep = spec.peepholes

    for step in reversed(range(t)):
        i, f, g, o = (act[k][:, step] for k in "ifgo")
        act_c, c_prev = act_cs[:, step], c_prevs[:, step]

        dh = dhs[:, step] + dh_next
        dh_total[:, step] = dh
        # h_t = o_t * act(c_t)
        dc = dc_next + dh * o * ((1.0 - act_c**2) if spec.output_activation else 1.0)  # eq-lstm-cell-gradient
        if spec.output_gate:
            do = dh * act_c + dgate_next["o"]
            dpre["o"][:, step] = do_pre = do * o * (1.0 - o)
            if peep:
                dc = dc + do_pre * p["p_o"]  # o_t sees c_t
        dc_total[:, step] = dc
        # c_t = f_t * c_{t-1} + i_t * g_t
        dg = dc * i
        dc_prev = dc * f  # eq-lstm-cell-gradient: what reaches c_{t-1} through f_t
        if spec.input_gate:
            di = dc * g + dgate_next["i"]
            if spec.coupled:
                di = di - dc * c_prev  # f = 1 - i
            dpre["i"][:, step] = di_pre = di * i * (1.0 - i)
            if peep:
                dc_prev = dc_prev + di_pre * p["p_i"]
        if "f" in spec.gates:
            df = dc * c_prev + dgate_next["f"]
            dpre["f"][:, step] = df_pre = df * f * (1.0 - f)
            if peep:
                dc_prev = dc_prev + df_pre * p["p_f"]
        dpre["g"][:, step] = dg * (1.0 - g**2) if spec.input_activation else dg

        dh_next = sum(dpre[k][:, step] @ p[f"W_h{k}"].T for k in spec.blocks)  # (b, h) @ (h, h)
        dc_next = dc_prev
        if spec.full_gate_recurrence:
            dgate_next = {  # what reaches the previous gates through R: (b, h) @ (h, h)
                a: sum(dpre[k][:, step] @ p[f"R_{a}{k}"].T for k in spec.gates) for a in "ifo"
            }

    grads = {}
    for k in spec.blocks:
        grads[f"W_x{k}"] = np.einsum("btd,bth->dh", x, dpre[k])
        grads[f"W_h{k}"] = np.einsum("btk,bth->kh", h_prevs, dpre[k])
        grads[f"b_{k}"] = dpre[k].sum(axis=(0, 1))
    if peep:
        for k in spec.peephole_gates:
            seen = cs if k == "o" else c_prevs  # o looks at c_t, i and f at c_{t-1}
            grads[f"p_{k}"] = (dpre[k] * seen).sum(axis=(0, 1))
    if spec.full_gate_recurrence:
        g0 = dict(zip("ifo", np.split(cache["gates0"], 3, axis=1)))
        for a, k in spec.recurrent_gate_pairs:
            prev_a = np.concatenate([g0[a][:, None], act[a][:, :-1]], axis=1)
            grads[f"R_{a}{k}"] = np.einsum("bta,bth->ah", prev_a, dpre[k])
        grads["gates0"] = np.concatenate([dgate_next[a] for a in "ifo"], axis=1)
    grads["x"] = sum(dpre[k] @ p[f"W_x{k}"].T for k in spec.blocks)  # (b, t, h) @ (h, d)
    grads["h0"] = dh_next
    grads["c0"] = dc_next
    grads["hs"] = dh_total
    grads["cs"] = dc_total
    return grads
