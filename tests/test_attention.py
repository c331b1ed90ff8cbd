"""Attention: the NumPy and PyTorch functions against torch.nn.functional.scaled_dot_product_attention
and each other, MultiHeadAttention and TransformerBlock against torch.nn with copied weights, the
decoder's causality and KV cache, the position code, and clear errors.

The book's equations (eq-attention-scores, eq-attention-causal, eq-attention-softmax,
eq-attention-output, eq-positions) are checked here; the ``@pytest.mark.equation`` markers are to be
added when the chapter that labels them exists (``test_course_repo.py`` rejects markers for labels
the book does not have yet).
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from numpy.testing import assert_allclose
from packaging.version import Version
from torch.testing import assert_close

from lstm_lab.nn.attention import (
    DecoderCache,
    KVCache,
    MultiHeadAttention,
    TransformerBlock,
    TransformerStack,
    causal_mask,
    scaled_dot_product_attention,
    sinusoidal_positions,
)
from lstm_lab.nn.models import SequenceModel
from lstm_lab.scratch import attention as np_attention

TIGHT = dict(rtol=1e-12, atol=1e-12)
MODEL_TOL = dict(rtol=1e-10, atol=1e-10)

# (leading axes, t_q, t_k, d_k, d_v)
SHAPES = [((), 1, 1, 1, 1), ((2,), 4, 4, 3, 5), ((2, 3), 5, 7, 4, 2), ((1, 2), 6, 3, 8, 8)]
MODES = ["plain", "causal", "mask", "key-mask", "causal+mask"]
GRID = [(s, m) for s in SHAPES for m in MODES]
GRID_IDS = [f"{lead}-{tq}x{tk}-dk{dk}-dv{dv}-{m}" for (lead, tq, tk, dk, dv), m in GRID]


def _case(shape, mode, seed=0):
    """float64 q, k, v (NumPy), our keyword arguments, and the keyword arguments for F.sdpa."""
    lead, t_q, t_k, d_k, d_v = shape
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((*lead, t_q, d_k))
    k = rng.standard_normal((*lead, t_k, d_k))
    v = rng.standard_normal((*lead, t_k, d_v))
    ours, ref = {}, {}
    if mode == "causal":
        ours["causal"] = ref["is_causal"] = True
    if mode in ("mask", "key-mask", "causal+mask"):
        mask_shape = (*lead, 1, t_k) if mode == "key-mask" else (*lead, t_q, t_k)
        mask = rng.random(mask_shape) < 0.6
        mask[..., 0] = True  # every query keeps a key (fully masked rows have their own test)
        ours["mask"] = mask
        ref["attn_mask"] = torch.from_numpy(mask)
        if mode == "causal+mask":
            ours["causal"] = True
            ref["attn_mask"] = ref["attn_mask"] & torch.ones(t_q, t_k, dtype=torch.bool).tril()
    return q, k, v, ours, ref


def _softmax_weights_ref(q, k, allowed):
    """Weights from torch.softmax on masked scores: an independent computation of eq-attention-softmax."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.softmax(scores, dim=-1)


def _torch(*arrays):
    return [torch.from_numpy(np.asarray(a)) for a in arrays]


# ----------------------------------------------------------------------------- the function


@pytest.mark.equation("eq-attention-scores", "eq-attention-causal", "eq-attention-softmax", "eq-attention-output")
@pytest.mark.parametrize("shape, mode", GRID, ids=GRID_IDS)
def test_numpy_matches_torch_sdpa(shape, mode):
    q, k, v, ours, ref = _case(shape, mode)
    out, weights = np_attention.scaled_dot_product_attention(q, k, v, **ours)
    tq, tk, tv = _torch(q, k, v)
    expected = F.scaled_dot_product_attention(tq, tk, tv, **ref)
    assert out.shape == tuple(expected.shape) and out.dtype == np.float64
    assert_allclose(out, expected.numpy(), **TIGHT)
    allowed = ref.get("attn_mask")
    if ref.get("is_causal"):
        allowed = torch.ones(shape[1], shape[2], dtype=torch.bool).tril()
    assert_allclose(weights, _softmax_weights_ref(tq, tk, allowed).numpy(), **TIGHT)


@pytest.mark.parametrize("shape, mode", GRID, ids=GRID_IDS)
def test_torch_function_matches_torch_sdpa_and_numpy(shape, mode):
    q, k, v, ours, ref = _case(shape, mode, seed=1)
    q1, k1, v1 = (a.requires_grad_() for a in _torch(q, k, v))
    q2, k2, v2 = (a.detach().clone().requires_grad_() for a in (q1, k1, v1))
    torch_ours = {**ours, "mask": torch.from_numpy(ours["mask"])} if "mask" in ours else ours
    out, weights = scaled_dot_product_attention(q1, k1, v1, **torch_ours)
    expected = F.scaled_dot_product_attention(q2, k2, v2, **ref)
    assert_close(out, expected, **TIGHT)
    # NumPy and PyTorch on the same inputs
    np_out, np_weights = np_attention.scaled_dot_product_attention(q, k, v, **ours)
    assert_allclose(out.detach().numpy(), np_out, **TIGHT)
    assert_allclose(weights.detach().numpy(), np_weights, **TIGHT)
    # gradients under a fixed upstream gradient
    g = torch.randn(out.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    out.backward(g)
    expected.backward(g)
    for a, r in ((q1, q2), (k1, k2), (v1, v2)):
        assert_close(a.grad, r.grad, **TIGHT)


@pytest.mark.parametrize("t_q, t_k", [(4, 4), (3, 6), (6, 3)])
def test_weights_rows_sum_to_one_and_causal_zeros_above_diagonal(t_q, t_k):
    rng = np.random.default_rng(3)
    q, k, v = rng.standard_normal((2, t_q, 5)), rng.standard_normal((2, t_k, 5)), rng.standard_normal((2, t_k, 3))
    above = np.triu(np.ones((t_q, t_k), dtype=bool), 1)  # j > i
    w_np = np_attention.scaled_dot_product_attention(q, k, v, causal=True)[1]
    w_t = scaled_dot_product_attention(*_torch(q, k, v), causal=True)[1].numpy()
    for w in (w_np, w_t):
        assert_allclose(w.sum(axis=-1), 1.0, rtol=0, atol=1e-14)
        assert np.all(w[..., above] == 0.0)
        assert np.all(w[..., ~above] > 0.0)
    # without causal every weight is positive
    w_full = np_attention.scaled_dot_product_attention(q, k, v)[1]
    assert np.all(w_full > 0.0) and np.allclose(w_full.sum(axis=-1), 1.0)


def test_stable_softmax_survives_huge_scores():
    q = np.array([[1000.0, 0.0], [-1000.0, 0.0]])
    k = np.array([[1000.0, 0.0], [999.0, 0.0], [0.0, 1.0]])
    v = np.eye(3)
    out, w = np_attention.scaled_dot_product_attention(q, k, v)
    assert np.all(np.isfinite(w))
    s = q @ k.T / math.sqrt(2)
    assert_allclose(w, torch.softmax(torch.from_numpy(s), dim=-1).numpy(), rtol=1e-12, atol=1e-300)
    out_t, w_t = scaled_dot_product_attention(*_torch(q, k, v))
    assert_allclose(w_t.numpy(), w, rtol=1e-12, atol=1e-300)


def test_row_with_no_allowed_key_gives_zeros_not_nan():
    rng = np.random.default_rng(4)
    q, k, v = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 5, 2))
    mask = rng.random((2, 3, 5)) < 0.7
    mask[:, :, 0] = True
    mask[1, 2] = False  # query 2 of sequence 1 may see nothing
    out, w = np_attention.scaled_dot_product_attention(q, k, v, mask=mask)
    assert np.all(out[1, 2] == 0.0) and np.all(w[1, 2] == 0.0)
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(w))
    assert_allclose(w[0].sum(axis=-1), 1.0, atol=1e-14)
    tq, tk, tv = (a.requires_grad_() for a in _torch(q, k, v))
    out_t, w_t = scaled_dot_product_attention(tq, tk, tv, mask=torch.from_numpy(mask))
    assert_allclose(out_t.detach().numpy(), out, **TIGHT)
    theirs = F.scaled_dot_product_attention(tq, tk, tv, attn_mask=torch.from_numpy(mask))
    if Version(torch.__version__).release >= (2, 5):
        # PyTorch's own function also gives zeros there since 2.5 ("safe softmax")
        assert_close(out_t, theirs, **TIGHT)
    else:  # older releases give NaN for a query that may see nothing; ours is still zeros
        seen = torch.from_numpy(mask.any(axis=-1))
        assert_close(out_t[seen], theirs[seen], **TIGHT)
    out_t.sum().backward()
    for a in (tq, tk, tv):
        assert torch.isfinite(a.grad).all()
    assert torch.all(tq.grad[1, 2] == 0.0)


def test_torch_function_gradcheck_with_a_fully_masked_row():
    g = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(1, s, 3, dtype=torch.float64, generator=g, requires_grad=True) for s in (3, 4, 4))
    mask = torch.tensor([[True, False, True, True], [False, False, False, False], [True, True, False, True]])
    assert torch.autograd.gradcheck(
        lambda q, k, v: scaled_dot_product_attention(q, k, v, mask=mask, causal=True), (q, k, v)
    )


def test_leading_axes_broadcast():
    """One set of keys/values shared by several query batches, as the docstring promises."""
    rng = np.random.default_rng(6)
    q, k, v = rng.standard_normal((3, 2, 4, 5)), rng.standard_normal((2, 6, 5)), rng.standard_normal((1, 6, 3))
    out, _ = np_attention.scaled_dot_product_attention(q, k, v, causal=True)
    kb, vb = np.broadcast_to(k, (3, 2, 6, 5)), np.broadcast_to(v, (3, 2, 6, 3))
    assert_allclose(out, np_attention.scaled_dot_product_attention(q, kb, vb, causal=True)[0], **TIGHT)


# ----------------------------------------------------------------------------- positions


@pytest.mark.equation("eq-positions")
@pytest.mark.parametrize("t, d", [(1, 2), (7, 6), (50, 16)])
def test_sinusoidal_positions_match_the_formula(t, d):
    P = np_attention.sinusoidal_positions(t, d)
    expected = np.empty((t, d))
    for p in range(t):
        for i in range(d // 2):
            angle = p / 10000.0 ** (2 * i / d)
            expected[p, 2 * i], expected[p, 2 * i + 1] = math.sin(angle), math.cos(angle)
    assert P.shape == (t, d) and P.dtype == np.float64
    assert_allclose(P, expected, rtol=0, atol=1e-12)
    assert_allclose(sinusoidal_positions(t, d, dtype=torch.float64).numpy(), expected, rtol=0, atol=1e-12)
    assert sinusoidal_positions(t, d).dtype == torch.float32


@pytest.mark.parametrize("fn", [np_attention.sinusoidal_positions, sinusoidal_positions])
def test_sinusoidal_positions_bad_sizes(fn):
    with pytest.raises(ValueError, match="even"):
        fn(4, 5)
    with pytest.raises(ValueError, match="positive int"):
        fn(0, 4)
    with pytest.raises(TypeError, match="d must be an int"):
        fn(3, 4.0)


# ----------------------------------------------------------------------------- layers


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_multihead_attention_matches_torch_nn(causal, bias):
    torch.manual_seed(0)
    b, t, d, n_h = 2, 5, 8, 2
    ref = torch.nn.MultiheadAttention(d, n_h, bias=bias, batch_first=True, dtype=torch.float64)
    if bias:  # torch starts biases at zero; make them matter
        with torch.no_grad():
            ref.in_proj_bias.normal_()
            ref.out_proj.bias.normal_()
    ours = MultiHeadAttention.from_torch(ref, causal=causal)
    assert ours.W_q.dtype == torch.float64 and (ours.b_q is not None) == bias
    assert_close(ours.W_k, ref.in_proj_weight[d : 2 * d].T, rtol=0, atol=0)
    x1 = torch.randn(b, t, d, dtype=torch.float64, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    not_allowed = torch.ones(t, t, dtype=torch.bool).triu(1) if causal else None  # torch: True = blocked
    expected, _ = ref(x1, x1, x1, attn_mask=not_allowed, need_weights=False)
    y, cache = ours(x2)
    assert_close(y, expected, **TIGHT)
    assert isinstance(cache, KVCache) and cache.length == t
    g = torch.randn(b, t, d, dtype=torch.float64)
    expected.backward(g)
    y.backward(g)
    assert_close(x2.grad, x1.grad, **TIGHT)
    assert_close(ours.W_q.grad, ref.in_proj_weight.grad[:d].T, **TIGHT)
    assert_close(ours.W_o.grad, ref.out_proj.weight.grad.T, **TIGHT)
    if bias:
        assert_close(ours.b_v.grad, ref.in_proj_bias.grad[2 * d :], **TIGHT)


def test_multihead_attention_cache_one_token_at_a_time():
    torch.manual_seed(1)
    mha = MultiHeadAttention(8, 4).double()
    x = torch.randn(2, 6, 8, dtype=torch.float64)
    y_full, _, w_full = mha(x, return_weights=True)
    assert w_full.shape == (2, 4, 6, 6)
    ys, cache = [], None
    for s in range(6):
        y, new_cache = mha(x[:, s : s + 1], cache)
        if cache is not None:
            assert cache.length == s  # the cache passed in is not changed
        cache = new_cache
        ys.append(y)
    assert_close(torch.cat(ys, dim=1), y_full, **MODEL_TOL)
    # two at once after a prompt of four
    y_a, cache = mha(x[:, :4])
    y_b, _, w_b = mha(x[:, 4:], cache, return_weights=True)
    assert_close(torch.cat([y_a, y_b], dim=1), y_full, **MODEL_TOL)
    assert_close(w_b, w_full[:, :, 4:], **MODEL_TOL)


def test_causal_mask_offset():
    assert torch.equal(causal_mask(3, 3), torch.ones(3, 3, dtype=torch.bool).tril())
    assert torch.equal(causal_mask(2, 5, offset=3), torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]).bool())


def test_transformer_block_matches_torch_encoder_layer_pre_norm():
    """Pre-norm block = nn.TransformerEncoderLayer(norm_first=True, activation="gelu") with a causal mask."""
    torch.manual_seed(2)
    d, n_h, d_ff, t = 8, 2, 12, 5
    ref = torch.nn.TransformerEncoderLayer(
        d, n_h, d_ff, dropout=0.0, activation="gelu", batch_first=True, norm_first=True, dtype=torch.float64
    )
    ours = TransformerBlock(d, n_h, d_ff).double()
    ours.attn = MultiHeadAttention.from_torch(ref.self_attn)
    with torch.no_grad():
        for ln_ours, ln_ref in ((ours.ln_1, ref.norm1), (ours.ln_2, ref.norm2)):
            ln_ref.weight.normal_()
            ln_ref.bias.normal_()
            ln_ours.load_state_dict(ln_ref.state_dict())
        ours.W_1.copy_(ref.linear1.weight.T)
        ours.b_1.copy_(ref.linear1.bias)
        ours.W_2.copy_(ref.linear2.weight.T)
        ours.b_2.copy_(ref.linear2.bias)
    x = torch.randn(3, t, d, dtype=torch.float64)
    not_allowed = torch.ones(t, t, dtype=torch.bool).triu(1)
    ref.train()  # the slow path (the eval fast path does not take float64 masks everywhere)
    assert_close(ours(x)[0], ref(x, src_mask=not_allowed), **TIGHT)


def transformer_lm(vocab_size, d_model=64, n_heads=4, n_layers=2, **kw):
    """A decoder-only Transformer language model, as chapter 7 builds it: embedding ->
    TransformerStack -> readout to the vocabulary."""
    return SequenceModel(TransformerStack(d_model, n_heads, n_layers, **kw), vocab_size, vocab_size=vocab_size)


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    args = dict(vocab_size=11, d_model=16, n_heads=4, n_layers=2, max_len=32)
    return transformer_lm(**{**args, **kw}).double()


def test_transformer_lm_by_hand():
    """embedding + positions -> blocks -> LayerNorm -> head, spelled out."""
    model = _model(seed=1)
    tokens = torch.randint(0, 11, (2, 6), generator=torch.Generator().manual_seed(2))
    x = model.embed(tokens) + model.core.P[:6]  # eq-positions
    for block in model.core.blocks:
        x, _ = block(x)
    assert_close(model(tokens)[0], model.head(model.core.ln_f(x)), **TIGHT)


def test_transformer_is_causal():
    model = _model()
    tokens = torch.randint(0, 11, (2, 9), generator=torch.Generator().manual_seed(3))
    logits, _ = model(tokens)
    assert logits.shape == (2, 9, 11) and logits.dtype == torch.float64
    for j in (0, 4, 8):
        changed = tokens.clone()
        changed[:, j] = (changed[:, j] + 1) % 11
        logits2, _ = model(changed)
        assert_close(logits2[:, :j], logits[:, :j], rtol=0, atol=0)  # the past never sees the future
        assert (logits2[:, j] - logits[:, j]).abs().max() > 1e-6  # ...and the change does reach position j


@pytest.mark.parametrize("prompt", [1, 4])
def test_kv_cache_decoding_equals_full_forward(prompt):
    model = _model(seed=4)
    tokens = torch.randint(0, 11, (3, 10), generator=torch.Generator().manual_seed(5))
    full, full_cache = model(tokens)
    assert full_cache.offset == 10
    parts, cache = [], None
    logits, cache = model(tokens[:, :prompt], cache)
    parts.append(logits)
    for s in range(prompt, 10):
        logits, cache = model(tokens[:, s : s + 1], cache)
        parts.append(logits)
    assert isinstance(cache, DecoderCache) and cache.offset == 10 and len(cache.layers) == 2
    assert_close(torch.cat(parts, dim=1), full, **MODEL_TOL)
    with pytest.raises(ValueError, match="max_len"):
        model(torch.zeros(3, 23, dtype=torch.long), cache)


def test_dtype_follows_the_model():
    model = transformer_lm(7, d_model=8, n_heads=2, n_layers=1, max_len=16)
    tokens = torch.tensor([[1, 2, 3]], dtype=torch.int32)
    assert model(tokens)[0].dtype == torch.float32
    assert model.double().core.P.dtype == torch.float64
    assert model(tokens)[0].dtype == torch.float64
    assert model.core.blocks[0].d_ff == 32


@pytest.mark.gpu
def test_transformer_on_cuda_matches_cpu_and_caches():
    model = _model(seed=6)
    tokens = torch.randint(0, 11, (2, 7), generator=torch.Generator().manual_seed(7))
    cpu, _ = model(tokens)
    gpu_model = model.to("cuda")
    full, _ = gpu_model(tokens.to("cuda"))
    assert full.device.type == "cuda" and gpu_model.core.P.device.type == "cuda"
    assert_close(full.cpu(), cpu, rtol=1e-9, atol=1e-9)
    logits, cache = gpu_model(tokens[:, :3].to("cuda"))
    parts = [logits]
    for s in range(3, 7):
        logits, cache = gpu_model(tokens[:, s : s + 1].to("cuda"), cache)
        parts.append(logits)
    assert_close(torch.cat(parts, dim=1), full, **MODEL_TOL)


# ----------------------------------------------------------------------------- errors


def _f64(*shape):
    return np.zeros(shape)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize(
    "q, k, v, kw, error, match",
    [
        (_f64(3, 4), _f64(3, 5), _f64(3, 2), {}, ValueError, "d_k"),
        (_f64(4), _f64(3, 4), _f64(3, 2), {}, ValueError, "at least 2 axes"),
        (np.zeros((3, 4), dtype=np.int64), _f64(3, 4), _f64(3, 2), {}, TypeError, "floating-point"),
        (_f64(3, 4), _f64(3, 4), _f64(5, 2), {}, ValueError, "t_k"),
        (_f64(2, 3, 4), _f64(3, 3, 4), _f64(3, 3, 2), {}, ValueError, "broadcast"),
        (_f64(3, 4), _f64(5, 4), _f64(5, 2), {"mask": np.ones((3, 5))}, TypeError, "boolean"),
        (_f64(3, 4), _f64(5, 4), _f64(5, 2), {"mask": np.ones((3, 4), dtype=bool)}, ValueError, "t_q, t_k"),
    ],
    ids=["mismatched-d_k", "rank-1-q", "integer-q", "mismatched-t_k", "batch", "float-mask", "mask-shape"],
)
def test_sdpa_bad_inputs(backend, q, k, v, kw, error, match):
    if backend == "numpy":
        fn = np_attention.scaled_dot_product_attention
    else:
        fn = scaled_dot_product_attention
        q, k, v = _torch(q, k, v)
        kw = {key: torch.from_numpy(val) for key, val in kw.items()}
    with pytest.raises(error, match=match):
        fn(q, k, v, **kw)


def test_torch_sdpa_rejects_arrays_and_mixed_dtypes():
    with pytest.raises(TypeError, match="torch.Tensor"):
        scaled_dot_product_attention(np.zeros((2, 3)), torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(TypeError, match="one dtype"):
        scaled_dot_product_attention(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.float64), torch.zeros(2, 3))


def test_layer_bad_inputs():
    with pytest.raises(ValueError, match="divisible by n_heads"):
        MultiHeadAttention(10, 4)
    with pytest.raises(ValueError, match="divisible by n_heads"):
        TransformerStack(10, n_heads=4)
    with pytest.raises(ValueError, match="positive int"):
        TransformerBlock(8, 2, 0)
    mha = MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match=r"\(b, t, d\)"):
        mha(torch.zeros(5, 8))
    with pytest.raises(ValueError, match="d_model = 8"):
        mha(torch.zeros(1, 5, 6))
    with pytest.raises(TypeError, match="floating-point"):
        mha(torch.zeros(1, 5, 8, dtype=torch.long))
    with pytest.raises(TypeError, match="dtype"):
        mha(torch.zeros(1, 5, 8, dtype=torch.float64))
    _, cache = mha(torch.zeros(2, 3, 8))
    with pytest.raises(ValueError, match="cache.k"):
        mha(torch.zeros(1, 1, 8), cache)  # batch size differs from the cache's
    with pytest.raises(TypeError, match="KVCache"):
        mha(torch.zeros(2, 1, 8), {"k": cache.k, "v": cache.v})
    model = transformer_lm(5, d_model=8, n_heads=2, n_layers=1, max_len=8)
    with pytest.raises(TypeError, match="integer"):
        model(torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"\(b, t\)"):
        model(torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="vocab_size"):
        model(torch.tensor([[0, 5]]))
    with pytest.raises(ValueError, match="max_len"):
        model(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(TypeError, match="DecoderCache"):
        model(torch.zeros(1, 2, dtype=torch.long), cache)
