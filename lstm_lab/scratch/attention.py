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
    if allowed is not None:
        scores = np.where(allowed, scores, -np.inf)  # eq-attention-causal (and the mask)
    m = scores.max(axis=-1, keepdims=True)  # (..., t_q, 1): the row maximum
    m = np.where(np.isfinite(m), m, 0.0)  # a row with no allowed key: exp(-inf) = 0 below
    e = np.exp(scores - m)  # (..., t_q, t_k), every entry in [0, 1]
    denom = e.sum(axis=-1, keepdims=True)
    weights = e / np.where(denom > 0, denom, 1.0)  # eq-attention-softmax
    out = weights @ v  # (..., t_q, d_v)  eq-attention-output
    return out, weights


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
