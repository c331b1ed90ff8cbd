"""Attention and the body of a small decoder-only Transformer in PyTorch, with a KV cache for generation.

Mirrors ``lstm_lab.scratch.attention`` (same function names and equations) and adds the layers
built on it. Glossary (book symbols -> code): b batch, t time steps (tokens), d ``d_model`` features,
n_h ``n_heads`` heads of d_h = d / n_h features each, d_ff hidden units of the MLP, t_q / t_k query /
key positions; ``...`` any leading (batch, head) axes. Row vectors throughout: ``x @ W_q`` is the
book's x W_q, with W_q, W_k, W_v, W_o of shape (d, d).

Equations:

- eq-attention-scores:  s_ij = q_i . k_j / sqrt(d_k)
- eq-attention-causal:  s_ij = -inf where position j is later than position i
- eq-attention-softmax: a_ij = exp(s_ij - m_i) / sum_j' exp(s_ij' - m_i), m_i = max_j s_ij
- eq-attention-output:  o_i = sum_j a_ij v_j
- eq-positions:         P[p, 2i] = sin(p / 10000^(2i/d)),  P[p, 2i+1] = cos(p / 10000^(2i/d))

The KV cache: when generating one token at a time, the keys and values of earlier positions do
not change (a causal model never lets them see later tokens), so each layer keeps them in a
:class:`KVCache` and a new token only computes its own query, key and value. The cache is never
changed in place: ``forward`` returns a new one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from lstm_lab.checks import (
    QKV_AXES,
    check_attention_shapes,
    check_flag,
    check_like,
    check_mask_shape,
    check_size,
)
from lstm_lab.nn.base import check_input
from lstm_lab.scratch.attention import sinusoidal_positions as _sinusoidal_positions_np

# ----------------------------------------------------------------------------- the function


def _check_qkv(q, k, v):
    for name, a in zip("qkv", (q, k, v)):
        if not isinstance(a, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of shape (..., {QKV_AXES[name]}), got {type(a).__name__}")
        if not a.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor of shape (..., {QKV_AXES[name]}), "
                            f"got dtype {a.dtype}")
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k and v must share one dtype, got {q.dtype}, {k.dtype} and {v.dtype}")
    check_attention_shapes(q.shape, k.shape, v.shape)


def _check_mask(mask, t_q: int, t_k: int, like: torch.Tensor) -> torch.Tensor:
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        what = f"dtype {mask.dtype}" if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise TypeError(f"mask must be a boolean torch.Tensor (True = may attend), got {what}")
    if mask.device != like.device:
        raise ValueError(f"mask is on {mask.device} but q is on {like.device}; move one of them with .to()")
    check_mask_shape(mask.shape, t_q, t_k)
    return mask


def causal_mask(t_q: int, t_k: int, *, offset: int = 0, device=None) -> torch.Tensor:
    """(t_q, t_k) boolean, True where query i (at position ``offset + i``) may see key j: j <= offset + i.

    ``offset = 0`` aligns the mask at the top-left corner, as ``is_causal=True`` in
    ``torch.nn.functional.scaled_dot_product_attention``; with a KV cache the queries are the last
    t_q of t_k positions, so ``offset = t_k - t_q`` (eq-attention-causal).
    """
    i = torch.arange(t_q, device=device)[:, None]  # (t_q, 1)
    j = torch.arange(t_k, device=device)[None, :]  # (1, t_k)
    return j <= i + offset


def scaled_dot_product_attention(q, k, v, *, causal: bool = False, mask=None):
    """Attention of every query over every key it may see, written one equation per line.

    Parameters
    ----------
    q : Tensor (..., t_q, d_k), float
    k : Tensor (..., t_k, d_k)
    v : Tensor (..., t_k, d_v)
        The leading axes ``...`` (batch, heads) broadcast together; one dtype for all three.
    causal : bool
        Query i sees only keys j <= i, counted from the first query and the first key, as
        ``torch.nn.functional.scaled_dot_product_attention(is_causal=True)`` (eq-attention-causal).
    mask : bool Tensor broadcastable to (..., t_q, t_k), optional
        True where query i may attend to key j; combined with ``causal`` by logical and.

    Returns
    -------
    out : Tensor (..., t_q, d_v)
    weights : Tensor (..., t_q, t_k)
        Rows sum to 1. A query with no key it may attend to gets a row of zeros and an output of
        zero (not NaN), as PyTorch's fused function gives; its gradients are zero too.
    """
    _check_qkv(q, k, v)
    t_q, d_k, t_k = q.shape[-2], q.shape[-1], k.shape[-2]
    allowed = None if mask is None else _check_mask(mask, t_q, t_k, q)
    if causal:
        tril = causal_mask(t_q, t_k, device=q.device)
        allowed = tril if allowed is None else allowed & tril

    scores = q @ k.transpose(-1, -2) / math.sqrt(d_k)  # (..., t_q, t_k)  eq-attention-scores
    weights = masked_softmax(scores, allowed)  # eq-attention-causal (and the mask), eq-attention-softmax
    out = weights @ v  # (..., t_q, d_v)  eq-attention-output
    return out, weights


def masked_softmax(scores: torch.Tensor, allowed: torch.Tensor | None = None) -> torch.Tensor:
    """The softmax over the last axis of ``scores``, over the entries ``allowed`` (True) only.

    Stable: the row maximum is subtracted first (eq-attention-softmax). A disallowed entry gets
    weight 0 (eq-attention-causal); a row with no allowed entry gets weights of zero, not NaN,
    and zero gradients.
    """
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))  # eq-attention-causal (and the mask)
    m = scores.amax(dim=-1, keepdim=True).detach()  # (..., 1); the softmax does not depend on it
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))  # nothing allowed: every exp below is 0
    e = torch.exp(scores - m)  # entries in [0, 1]
    denom = e.sum(dim=-1, keepdim=True)
    return e / torch.where(denom > 0, denom, torch.ones_like(denom))  # eq-attention-softmax


def sinusoidal_positions(t: int, d: int, *, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """The fixed position code P (t, d) (eq-positions), computed in float64 and then cast; d even."""
    return torch.from_numpy(_sinusoidal_positions_np(t, d)).to(dtype=dtype, device=device)


# ----------------------------------------------------------------------------- additive attention
class AdditiveAttention(nn.Module):
    """Additive attention (Bahdanau, Cho & Bengio, 2015): a decoder state scores every encoder state.

    Parameters: ``W_s`` (q, a), ``W_h`` (k, a), ``v`` (a,), the book's names, as in
    :func:`lstm_lab.scratch.attention.additive_attention`. ``forward(s (b, q), H (b, t, k),
    mask=None, keys=None)`` returns ``(context (b, k), weights (b, t))``. The projection
    H W_h does not change while a decoder reads one source, so a decoder computes it once with
    :meth:`project_keys` and passes it as ``keys``.
    """

    def __init__(self, query_size: int, key_size: int, attention_size: int):
        super().__init__()
        self.query_size = check_size(query_size, "query_size")
        self.key_size = check_size(key_size, "key_size")
        self.attention_size = check_size(attention_size, "attention_size")
        self.W_s = nn.Parameter(torch.empty(self.query_size, self.attention_size))
        self.W_h = nn.Parameter(torch.empty(self.key_size, self.attention_size))
        self.v = nn.Parameter(torch.empty(self.attention_size))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Uniform in (-1/sqrt(fan_in), 1/sqrt(fan_in)), as ``nn.Linear`` starts."""
        for w in (self.W_s, self.W_h):
            bound = 1.0 / math.sqrt(w.shape[0])
            w.uniform_(-bound, bound)
        bound = 1.0 / math.sqrt(self.attention_size)
        self.v.uniform_(-bound, bound)

    def project_keys(self, H: torch.Tensor) -> torch.Tensor:
        """H (b, t, k) -> H W_h (b, t, a): the encoder's half of every score."""
        H = check_input(H, self.key_size, self.W_h, name="H", size_name="key_size")
        return H @ self.W_h  # (b, t, k) @ (k, a)

    def forward(self, s: torch.Tensor, H: torch.Tensor, mask: torch.Tensor | None = None,
                keys: torch.Tensor | None = None):
        """s (b, q), H (b, t, k), mask (b, t) bool or None -> (context (b, k), weights (b, t))."""
        keys = self.project_keys(H) if keys is None else keys  # (b, t, a)
        H = check_input(H, self.key_size, self.W_h, name="H", size_name="key_size")
        if not isinstance(s, torch.Tensor):
            raise TypeError(f"s must be a torch.Tensor of shape (b, query_size), got {type(s).__name__}")
        if s.dim() != 2 or s.shape[1] != self.query_size:
            raise ValueError(f"s must have shape (b, query_size) = (b, {self.query_size}), got {tuple(s.shape)}")
        check_like(s, self.W_s, "s", "the parameters")
        if s.shape[0] != H.shape[0] or keys.shape != (*H.shape[:2], self.attention_size):
            raise ValueError(f"s {tuple(s.shape)}, H {tuple(H.shape)} and keys {tuple(keys.shape)} do not fit together")
        if mask is not None:
            if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
                raise TypeError("mask must be a boolean tensor (True where an encoder step exists)")
            if mask.shape != H.shape[:2]:
                raise ValueError(f"mask must have shape (b, t) = {tuple(H.shape[:2])}, got {tuple(mask.shape)}")
        # eq-additive-score: e_ij = v . tanh(s_{i-1} W_s + h_j W_h)
        e = torch.tanh((s @ self.W_s)[:, None, :] + keys) @ self.v  # (b, 1, a) + (b, t, a) -> (b, t)
        weights = masked_softmax(e, mask)  # eq-additive-weights  (b, t)
        context = (weights[:, :, None] * H).sum(dim=1)  # eq-additive-context  (b, k)
        return context, weights


# ----------------------------------------------------------------------------- the layers


@dataclass(frozen=True)
class KVCache:
    """The keys and values one attention layer has seen so far: k, v (b, n_h, t_seen, d_h)."""

    k: torch.Tensor
    v: torch.Tensor

    @property
    def length(self) -> int:
        """t_seen: how many positions are cached."""
        return self.k.shape[-2]


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention with book-named parameters and an optional KV cache.

    Parameters: W_q, W_k, W_v, W_o (d, d); with ``bias``, b_q, b_k, b_v, b_o (d,). Head h uses
    columns ``h*d_h:(h+1)*d_h`` of W_q, W_k and W_v, the layout of ``torch.nn.MultiheadAttention``.
    """

    def __init__(self, d_model: int, n_heads: int, *, causal: bool = True, bias: bool = True):
        super().__init__()
        self.d_model = check_size(d_model, "d_model")
        self.n_heads = check_size(n_heads, "n_heads")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model = {d_model} must be divisible by n_heads = {n_heads}")
        self.d_head = self.d_model // self.n_heads
        self.causal = check_flag(causal, "causal")
        self.bias = check_flag(bias, "bias")
        for w in "qkvo":
            self.register_parameter(f"W_{w}", nn.Parameter(torch.empty(d_model, d_model)))
            self.register_parameter(f"b_{w}", nn.Parameter(torch.empty(d_model)) if bias else None)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Xavier-uniform weights and zero biases, as ``torch.nn.MultiheadAttention`` starts its projections."""
        for w in "qkvo":
            nn.init.xavier_uniform_(getattr(self, f"W_{w}"))
            if self.bias:
                getattr(self, f"b_{w}").zero_()

    @classmethod
    def from_torch(cls, module: nn.MultiheadAttention, *, causal: bool = True) -> MultiHeadAttention:
        """A copy of a ``torch.nn.MultiheadAttention`` (self-attention, no extra k/v biases), same dtype and device.

        torch stores ``in_proj_weight`` (3d, d) = [W_q^T; W_k^T; W_v^T] and ``out_proj.weight`` = W_o^T.
        """
        if not isinstance(module, nn.MultiheadAttention):
            raise TypeError(f"module must be a torch.nn.MultiheadAttention, got {type(module).__name__}")
        if module.in_proj_weight is None or module.bias_k is not None or module.add_zero_attn:
            raise ValueError("only self-attention modules (one in_proj_weight, no bias_k/bias_v/add_zero_attn) convert")
        d = module.embed_dim
        bias = module.in_proj_bias is not None
        ours = cls(d, module.num_heads, causal=causal, bias=bias)
        like = module.in_proj_weight
        ours = ours.to(dtype=like.dtype, device=like.device)
        with torch.no_grad():
            for n, w in enumerate("qkv"):
                getattr(ours, f"W_{w}").copy_(module.in_proj_weight[n * d : (n + 1) * d].T)
                if bias:
                    getattr(ours, f"b_{w}").copy_(module.in_proj_bias[n * d : (n + 1) * d])
            ours.W_o.copy_(module.out_proj.weight.T)
            if bias:
                ours.b_o.copy_(module.out_proj.bias)
        return ours

    def project(self, x: torch.Tensor, w: str) -> torch.Tensor:
        """x W_w + b_w split into heads: (b, t, d) -> (b, n_h, t, d_h)."""
        a = x @ getattr(self, f"W_{w}")  # (b, t, d)
        if self.bias:
            a = a + getattr(self, f"b_{w}")
        b, t, _ = a.shape
        return a.view(b, t, self.n_heads, self.d_head).transpose(1, 2)  # (b, n_h, t, d_h)

    def check_cache(self, cache, x: torch.Tensor) -> None:
        if not isinstance(cache, KVCache):
            raise TypeError(
                f"cache must be a KVCache (from an earlier forward call) or None, got {type(cache).__name__}"
            )
        shape = (x.shape[0], self.n_heads, cache.length, self.d_head)
        for name in ("k", "v"):
            c = getattr(cache, name)
            if tuple(c.shape) != shape:
                raise ValueError(f"cache.{name} must have shape (b, n_h, t_seen, d_h) = {shape}, got {tuple(c.shape)}")
            check_like(c, x, f"cache.{name}", "x")

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, *, return_weights: bool = False):
        """Self-attention of the new positions x over the cached ones and themselves.

        Parameters
        ----------
        x : Tensor (b, t, d): the whole sequence, or with ``cache`` only the positions after it
        cache : KVCache, optional: keys and values (b, n_h, t_seen, d_h) of the t_seen earlier positions
        return_weights : also return the attention weights (b, n_h, t, t_seen + t)

        Returns
        -------
        y : Tensor (b, t, d)
        cache : KVCache of all t_seen + t positions (a new object; the one passed in is unchanged)
        weights : Tensor (b, n_h, t, t_seen + t), only with ``return_weights``
        """
        check_input(x, self.d_model, self.W_q, size_name="d_model")
        q, k, v = (self.project(x, w) for w in "qkv")  # (b, n_h, t, d_h) each
        if cache is not None:
            self.check_cache(cache, x)
            k = torch.cat([cache.k, k], dim=2)  # (b, n_h, t_seen + t, d_h)
            v = torch.cat([cache.v, v], dim=2)
        t, t_k = q.shape[2], k.shape[2]
        mask = causal_mask(t, t_k, offset=t_k - t, device=x.device) if self.causal else None  # eq-attention-causal
        o, weights = scaled_dot_product_attention(q, k, v, mask=mask)  # (b, n_h, t, d_h)
        o = o.transpose(1, 2).reshape(x.shape)  # (b, t, d): the heads side by side
        y = o @ self.W_o  # (b, t, d)
        if self.bias:
            y = y + self.b_o
        new_cache = KVCache(k=k, v=v)
        return (y, new_cache, weights) if return_weights else (y, new_cache)


class TransformerBlock(nn.Module):
    """A pre-norm decoder block: x + Attention(LN_1(x)), then + MLP(LN_2(.)) with a GELU.

    Parameters: ``attn`` (:class:`MultiHeadAttention`), ``ln_1``, ``ln_2`` (``nn.LayerNorm(d)``),
    and the MLP's W_1 (d, d_ff), b_1 (d_ff,), W_2 (d_ff, d), b_2 (d,).
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, *, causal: bool = True):
        super().__init__()
        self.attn = MultiHeadAttention(d_model, n_heads, causal=causal)
        self.d_model = self.attn.d_model
        self.d_ff = check_size(d_ff, "d_ff")
        self.ln_1 = nn.LayerNorm(self.d_model)
        self.ln_2 = nn.LayerNorm(self.d_model)
        self.W_1 = nn.Parameter(torch.empty(self.d_model, self.d_ff))
        self.b_1 = nn.Parameter(torch.empty(self.d_ff))
        self.W_2 = nn.Parameter(torch.empty(self.d_ff, self.d_model))
        self.b_2 = nn.Parameter(torch.empty(self.d_model))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The MLP as ``nn.Linear`` starts: uniform in (-1/sqrt(fan_in), 1/sqrt(fan_in))."""
        for w, b in ((self.W_1, self.b_1), (self.W_2, self.b_2)):
            bound = 1.0 / math.sqrt(w.shape[0])
            w.uniform_(-bound, bound)
            b.uniform_(-bound, bound)

    def mlp(self, x: torch.Tensor) -> torch.Tensor:
        """GELU(x W_1 + b_1) W_2 + b_2: (b, t, d) -> (b, t, d)."""
        a = nn.functional.gelu(x @ self.W_1 + self.b_1)  # (b, t, d_ff)
        return a @ self.W_2 + self.b_2  # (b, t, d)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None):
        """x (b, t, d), cache as in :meth:`MultiHeadAttention.forward` -> (y (b, t, d), cache)."""
        a, cache = self.attn(self.ln_1(x), cache)
        x = x + a  # residual
        x = x + self.mlp(self.ln_2(x))  # residual
        return x, cache


@dataclass(frozen=True)
class DecoderCache:
    """What a :class:`TransformerStack` has seen: one KVCache per block and the next position."""

    layers: list[KVCache] = field(default_factory=list)
    offset: int = 0


class TransformerStack(nn.Module):
    """The body of a small GPT-style decoder: positions added, causal blocks, a final LayerNorm.

    (b, t, d) -> (b, t, d). Wrapped in :class:`lstm_lab.nn.SequenceModel`, which adds the
    token embedding and the readout, it is a decoder-only Transformer language model.
    ``input_size`` and ``hidden_size`` are both ``d_model``; ``d_ff`` defaults to 4 d.

    Parameters: ``blocks`` (n_layers :class:`TransformerBlock`), ``ln_f`` (``nn.LayerNorm(d)``);
    the buffer ``P`` (max_len, d) holds the position code (eq-positions).
    """

    def __init__(self, d_model: int = 64, n_heads: int = 4, n_layers: int = 2, d_ff: int | None = None,
                 max_len: int = 512):
        super().__init__()
        self.d_model = check_size(d_model, "d_model")
        self.n_layers = check_size(n_layers, "n_layers")
        self.max_len = check_size(max_len, "max_len")
        self.input_size = self.hidden_size = self.d_model
        d_ff = 4 * self.d_model if d_ff is None else check_size(d_ff, "d_ff")
        if self.d_model % 2:
            raise ValueError(f"d_model must be even for the sinusoidal positions, got {d_model}")
        self.blocks = nn.ModuleList(
            [TransformerBlock(self.d_model, n_heads, d_ff, causal=True) for _ in range(self.n_layers)]
        )
        self.ln_f = nn.LayerNorm(self.d_model)
        self.register_buffer("P", sinusoidal_positions(self.max_len, self.d_model), persistent=False)

    def forward(self, x: torch.Tensor, cache: DecoderCache | None = None):
        """Run the blocks over ``x`` (b, t, d_model), the whole sequence or, with ``cache``, what follows it.

        ``cache`` is None or the :class:`DecoderCache` of the previous call; positions continue
        at ``cache.offset``. Returns ``(y (b, t, d_model), cache of all positions so far)``:
        feed the cache back in to decode the next tokens.
        """
        x = check_input(x, self.d_model, self.ln_f.weight, size_name="d_model")
        if cache is None:
            cache = DecoderCache(layers=[None] * self.n_layers, offset=0)
        elif not isinstance(cache, DecoderCache) or len(cache.layers) != self.n_layers:
            raise TypeError(f"cache must be a DecoderCache with {self.n_layers} layers (from an earlier call) or None")
        start, t = cache.offset, x.shape[1]
        if start + t > self.max_len:
            raise ValueError(f"positions {start}..{start + t - 1} exceed max_len = {self.max_len}")
        x = x + self.P[start : start + t]  # (b, t, d)  eq-positions
        layers = []
        for block, layer_cache in zip(self.blocks, cache.layers):
            x, layer_cache = block(x, layer_cache)  # (b, t, d)
            layers.append(layer_cache)
        return self.ln_f(x), DecoderCache(layers=layers, offset=start + t)  # (b, t, d)
