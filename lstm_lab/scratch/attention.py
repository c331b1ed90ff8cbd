"""Scaled dot-product attention and sinusoidal positions in NumPy: the reference for ``lstm_lab.nn.attention``.

Glossary (book symbols -> code): ``...`` any leading (batch, head) axes; t_q query positions,
t_k key positions, d_k query/key features, d_v value features, t sequence length, d model features.
q (..., t_q, d_k) holds one query row q_i per position, k (..., t_k, d_k) one key row k_j,
v (..., t_k, d_v) one value row v_j. Row vectors throughout, as in the rest of the book.

Equations:

- eq-attention-scores:  s_ij = q_i . k_j / sqrt(d_k)
- eq-attention-causal:  s_ij = -inf where j > i (a position never looks ahead)
- eq-attention-softmax: a_ij = exp(s_ij - m_i) / sum_j' exp(s_ij' - m_i), m_i = max_j s_ij
- eq-attention-output:  o_i = sum_j a_ij v_j
- eq-positions:         P[p, 2i] = sin(p / 10000^(2i/d)),  P[p, 2i+1] = cos(p / 10000^(2i/d))
"""

from __future__ import annotations

import numpy as np

from lstm_lab.checks import QKV_AXES, check_attention_shapes, check_mask_shape, check_size


def _check_qkv(q, k, v):
    """q, k, v as float arrays with matching d_k and t_k and broadcastable leading axes."""
    q, k, v = arrays = [np.asarray(a) for a in (q, k, v)]
    for name, a in zip("qkv", arrays):
        if a.dtype.kind != "f":
            raise TypeError(f"{name} must be a floating-point array of shape (..., {QKV_AXES[name]}), "
                            f"got dtype {a.dtype}")
    check_attention_shapes(q.shape, k.shape, v.shape)
    return q, k, v


def _check_mask(mask, t_q: int, t_k: int) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        raise TypeError(f"mask must be a boolean array (True = may attend), got dtype {mask.dtype}")
    check_mask_shape(mask.shape, t_q, t_k)
    return mask


def causal_mask(t_q: int, t_k: int) -> np.ndarray:
    """(t_q, t_k) boolean, True where key j may be seen by query i, i.e. j <= i (eq-attention-causal).

    Aligned at the top-left corner, as ``torch.nn.functional.scaled_dot_product_attention(is_causal=True)``.
    """
    return np.tril(np.ones((t_q, t_k), dtype=bool))


def scaled_dot_product_attention(q, k, v, *, causal: bool = False, mask=None):
    """Attention of every query over every key it may see.

    Parameters
    ----------
    q : array (..., t_q, d_k), float
    k : array (..., t_k, d_k), float
    v : array (..., t_k, d_v), float
        The leading axes ``...`` (batch, heads) broadcast together.
    causal : bool
        Query i sees only keys j <= i (eq-attention-causal), counted from the first query and the
        first key, as in ``torch.nn.functional.scaled_dot_product_attention(is_causal=True)``.
    mask : boolean array broadcastable to (..., t_q, t_k), optional
        True where query i may attend to key j. Combined with ``causal`` by logical and.

    Returns
    -------
    out : array (..., t_q, d_v)
        o_i = sum_j a_ij v_j.
    weights : array (..., t_q, t_k)
        The attention weights a_ij; each row sums to 1.

    A query row with no key it may attend to (all of its mask False) gets weights of zero and an
    output of zero, not NaN: the softmax of an empty set is taken to be empty. PyTorch's
    ``scaled_dot_product_attention`` does the same.
    """
    q, k, v = _check_qkv(q, k, v)
    t_q, d_k, t_k = q.shape[-2], q.shape[-1], k.shape[-2]
    allowed = None if mask is None else _check_mask(mask, t_q, t_k)
    if causal:
        allowed = causal_mask(t_q, t_k) if allowed is None else allowed & causal_mask(t_q, t_k)

    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(d_k)  # (..., t_q, t_k)  eq-attention-scores
    weights = masked_softmax(scores, allowed)  # eq-attention-causal (and the mask), eq-attention-softmax
    out = weights @ v  # (..., t_q, d_v)  eq-attention-output
    return out, weights


def masked_softmax(scores: np.ndarray, allowed: np.ndarray | None = None) -> np.ndarray:
    """The softmax over the last axis of ``scores``, over the entries ``allowed`` (True) only.

    Stable: the row maximum m_i is subtracted first (eq-attention-softmax). A disallowed entry
    gets weight 0 (its score counts as -inf, eq-attention-causal); a row with no allowed entry
    gets weights of zero, not NaN.
    """
    if allowed is not None:
        scores = np.where(allowed, scores, -np.inf)  # eq-attention-causal (and the mask)
    m = scores.max(axis=-1, keepdims=True)  # (..., 1): the row maximum
    m = np.where(np.isfinite(m), m, 0.0)  # a row with no allowed entry: exp(-inf) = 0 below
    e = np.exp(scores - m)  # every entry in [0, 1]
    denom = e.sum(axis=-1, keepdims=True)
    return e / np.where(denom > 0, denom, 1.0)  # eq-attention-softmax


# ----------------------------------------------------------------------------- additive attention
def additive_attention(s, H, params, mask=None):
    """Additive attention (Bahdanau, Cho & Bengio, 2015): a decoder state looks at the encoder states.

    Parameters
    ----------
    s : array (b, q)
        The query: the decoder's state s_{i-1} before it emits output i.
    H : array (b, t, k)
        The keys and values: the encoder's states h_1 .. h_t.
    params : dict
        ``W_s`` (q, a), ``W_h`` (k, a), ``v`` (a,): the small MLP that scores a pair.
    mask : boolean array (b, t), optional
        True at the encoder steps that exist (False at padding).

    Returns
    -------
    context : array (b, k)
        c_i = sum_j a_ij h_j (eq-additive-context).
    weights : array (b, t)
        a_ij, each row summing to 1 over the allowed steps (eq-additive-weights).
    """
    s, H = np.asarray(s, dtype=float), np.asarray(H, dtype=float)
    if s.ndim != 2 or H.ndim != 3 or s.shape[0] != H.shape[0]:
        raise ValueError(f"need s (b, q) and H (b, t, k) with the same b, got {s.shape} and {H.shape}")
    q, a = np.shape(params["W_s"])
    if s.shape[1] != q or np.shape(params["W_h"]) != (H.shape[2], a) or np.shape(params["v"]) != (a,):
        raise ValueError(
            f"params must be W_s (q, a), W_h (k, a), v (a,) with q = {s.shape[1]} and k = {H.shape[2]}, got "
            f"{ {n: np.shape(params[n]) for n in ('W_s', 'W_h', 'v')} }"
        )
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype != np.bool_:
            raise TypeError(f"mask must be a boolean array (True where an encoder step exists), got dtype {mask.dtype}")
        if mask.shape != H.shape[:2]:
            raise ValueError(f"mask must have shape (b, t) = {H.shape[:2]}, got {mask.shape}")
    # eq-additive-score: e_ij = v . tanh(s_{i-1} W_s + h_j W_h)
    e = np.tanh((s @ params["W_s"])[:, None, :] + H @ params["W_h"]) @ params["v"]  # (b, 1, a) + (b, t, a) -> (b, t)
    weights = masked_softmax(e, mask)  # eq-additive-weights  (b, t)
    context = (weights[:, :, None] * H).sum(axis=1)  # eq-additive-context  (b, k)
    return context, weights


def sinusoidal_positions(t: int, d: int) -> np.ndarray:
    """The fixed position code P (t, d), float64, of "Attention Is All You Need" (eq-positions).

    Column 2i holds sin(p / 10000^(2i/d)) and column 2i+1 holds cos of the same angle; d must be even.
    """
    t, d = check_size(t, "t"), check_size(d, "d")
    if d % 2:
        raise ValueError(f"d must be even (sin and cos columns come in pairs), got d = {d}")
    p = np.arange(t, dtype=np.float64)[:, None]  # (t, 1)
    inv_freq = 10000.0 ** (-np.arange(0, d, 2, dtype=np.float64) / d)  # (d/2,): 1 / 10000^(2i/d)
    angle = p * inv_freq  # (t, d/2)
    P = np.empty((t, d), dtype=np.float64)
    P[:, 0::2] = np.sin(angle)  # eq-positions
    P[:, 1::2] = np.cos(angle)  # eq-positions
    return P
