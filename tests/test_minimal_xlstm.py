"""minGRU/minLSTM (the scan against the loop, every scan method) and the xLSTM cells (sLSTM
stabilised against unstabilised, mLSTM recurrent against parallel), each also against an
explicit computation written here; gradients, states carried step by step, errors."""

import itertools
import math

import pytest
import torch
from torch.testing import assert_close

from lstm_lab.nn.minimal import MinGRU, MinLSTM
from lstm_lab.nn.xlstm import MLSTM, SLSTM, SLSTMCell

TIGHT = dict(rtol=1e-10, atol=1e-10)
F32 = dict(rtol=1e-5, atol=1e-5)


def _grads(loss, tensors):
    return torch.autograd.grad(loss, tensors)


def run(m, *args, method):
    """``m(*args)`` with ``method`` for this call (a module's method is an attribute its
    constructor sets), so that two methods run on the same weights."""
    old, m.method = m.method, method
    try:
        return m(*args)
    finally:
        m.method = old


# ============================================================================ minGRU / minLSTM
def test_mingru_sequential_is_the_formula():
    torch.manual_seed(1)
    m = MinGRU(3, 4).double()
    x, h0 = torch.randn(2, 3, 3, dtype=torch.double), torch.randn(2, 4, dtype=torch.double)
    h, expected = h0, []
    for s in range(3):
        z = 1 / (1 + torch.exp(-(x[:, s] @ m.W_xz + m.b_z)))
        h = (1 - z) * h + z * (x[:, s] @ m.W_xh + m.b_h)
        expected.append(h)
    for mode in ("sequential", "parallel"):
        assert_close(run(m, x, h0, method=mode)[0], torch.stack(expected, 1), **TIGHT)


def test_minlstm_sequential_is_the_formula():
    torch.manual_seed(2)
    m = MinLSTM(3, 4).double()
    x, h0 = torch.randn(2, 3, 3, dtype=torch.double), torch.randn(2, 4, dtype=torch.double)
    h, expected = h0, []
    for s in range(3):
        f = torch.sigmoid(x[:, s] @ m.W_xf + m.b_f)
        i = torch.sigmoid(x[:, s] @ m.W_xi + m.b_i)
        h = f / (f + i) * h + i / (f + i) * (x[:, s] @ m.W_xh + m.b_h)
        expected.append(h)
    for mode in ("sequential", "parallel"):
        assert_close(run(m, x, h0, method=mode)[0], torch.stack(expected, 1), **TIGHT)


GRID = list(itertools.product([MinGRU, MinLSTM], [1, 2, 45], [False, True], ["auto", "parallel", "chunked"]))


@pytest.mark.parametrize(
    "cls, t, with_h0, method",
    GRID,
    ids=[f"{c.__name__}-t{t}-{'h0' if s else 'zeros'}-{m}" for c, t, s, m in GRID],
)
def test_min_parallel_equals_sequential_float64_with_gradients(cls, t, with_h0, method):
    torch.manual_seed(3)
    m = cls(3, 5, method=method).double()
    x = torch.randn(2, t, 3, dtype=torch.double, requires_grad=True)
    h0 = torch.randn(2, 5, dtype=torch.double, requires_grad=True) if with_h0 else None
    upstream = torch.randn(2, t, 5, dtype=torch.double)
    inputs = [x, *([h0] if with_h0 else []), *m.parameters()]
    results = {}
    for form in ("sequential", method):
        hs, h_T = run(m, x, h0, method=form)
        assert_close(h_T, hs[:, -1], rtol=0, atol=0)
        results[form] = (hs, _grads((hs * upstream).sum(), inputs))
    assert_close(results[method][0], results["sequential"][0], **TIGHT)
    for g_par, g_seq in zip(results[method][1], results["sequential"][1]):
        assert_close(g_par, g_seq, **TIGHT)


@pytest.mark.parametrize("method", ["parallel", "chunked"])
@pytest.mark.parametrize("cls", [MinGRU, MinLSTM])
def test_min_parallel_equals_sequential_float32_long(cls, method):
    torch.manual_seed(4)
    m = cls(4, 8, method=method)
    x = torch.randn(2, 4096, 4)
    par, seq = m(x)[0], run(m, x, method="sequential")[0]
    assert par.dtype == torch.float32
    assert_close(par, seq, **F32)


@pytest.mark.parametrize("cls", [MinGRU, MinLSTM])
def test_min_missing_h0_is_zeros_and_steps_equal_whole(cls):
    torch.manual_seed(5)
    m = cls(3, 4).double()
    x = torch.randn(2, 9, 3, dtype=torch.double)
    whole, h_T = m(x)
    assert_close(m(x, torch.zeros(2, 4, dtype=torch.double))[0], whole, **TIGHT)
    h, outs = None, []
    for s in range(9):
        out, h = m(x[:, s : s + 1], h)
        outs.append(out)
    assert_close(torch.cat(outs, 1), whole, **TIGHT)
    assert_close(h, h_T, **TIGHT)
    x_before = x.clone()
    run(m, x, method="sequential")
    assert torch.equal(x, x_before)


def test_minlstm_parallel_is_finite_for_saturated_gates():
    m = MinLSTM(2, 3).double()
    with torch.no_grad():
        m.b_f.fill_(80.0)
        m.b_i.fill_(-80.0)
    x = torch.randn(1, 20, 2, dtype=torch.double)
    assert_close(m(x)[0], run(m, x, method="sequential")[0], **TIGHT)


@pytest.mark.parametrize("mode", ["sequential", "parallel"])
def test_minlstm_is_finite_and_right_when_both_gates_saturate(mode):
    """Both pre-activations at -95: in float32 sigma(-95) underflows to 0, so the plain f / (f + i)
    is 0/0. The normalised gates are still defined; float64 (no underflow) gives their value."""
    m = MinLSTM(2, 3)
    with torch.no_grad():
        m.W_xf.zero_(), m.W_xi.zero_()
        m.b_f.fill_(-95.0)
        m.b_i.fill_(-96.0)  # f' = sigma(1) = 0.73, i' = 0.27
    x = torch.randn(2, 6, 2)
    h0 = torch.randn(2, 3)
    hs, _ = run(m, x, h0, method=mode)
    assert torch.isfinite(hs).all()
    m64 = MinLSTM(2, 3).double()
    m64.load_state_dict(m.double().state_dict())
    f, i = torch.sigmoid(m64.b_f), torch.sigmoid(m64.b_i)
    h, expected = h0.double(), []
    for s in range(6):
        h = f / (f + i) * h + i / (f + i) * (x[:, s].double() @ m64.W_xh + m64.b_h)
        expected.append(h)
    assert_close(hs.double(), torch.stack(expected, 1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda m: m(torch.randn(2, 3, 5)), ValueError, "input_size"),
        (lambda m: m(torch.randn(2, 3)), ValueError, r"\(b, t, d\)"),
        (lambda m: m(torch.zeros(2, 3, 3, dtype=torch.long)), TypeError, "floating"),
        (lambda m: m(torch.randn(2, 3, 3), torch.zeros(2, 5)), ValueError, "h0"),
        (lambda m: m(torch.randn(2, 3, 3), torch.zeros(2, 4).double()), TypeError, "h0"),
        (lambda m: MinGRU(3, 4, method="scan"), ValueError, "method must be one of"),
        (lambda m: MinGRU(3, 0), ValueError, "hidden_size"),
        (lambda m: MinGRU(3, 4, method=None), TypeError, "method must be a str"),
    ],
)
def test_min_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(MinGRU(3, 4))


# ============================================================================ sLSTM
def _slstm_reference(cell, x, forget_gate):
    """eq-slstm written out with no stabiliser, float64, zero initial state."""
    b, t, _ = x.shape
    h = c = n = x.new_zeros(b, cell.hidden_size)
    out = []
    for s in range(t):
        pre = {k: x[:, s] @ getattr(cell, f"W_x{k}") + h @ getattr(cell, f"W_h{k}") + getattr(cell, f"b_{k}")
               for k in "zifo"}  # fmt: skip
        f = torch.exp(pre["f"]) if forget_gate == "exp" else torch.sigmoid(pre["f"])
        c = f * c + torch.exp(pre["i"]) * torch.tanh(pre["z"])
        n = f * n + torch.exp(pre["i"])
        h = torch.sigmoid(pre["o"]) * c / n
        out.append(h)
    return torch.stack(out, 1)


@pytest.mark.parametrize("forget_gate", ["exp", "sigmoid"])
def test_slstm_stabilised_equals_unstabilised_and_reference(forget_gate):
    torch.manual_seed(6)
    stab = SLSTM(3, 4, forget_gate=forget_gate).double()
    plain = SLSTM(3, 4, stabilised=False, forget_gate=forget_gate).double()
    plain.load_state_dict(stab.state_dict())
    x = torch.randn(2, 12, 3, dtype=torch.double, requires_grad=True)
    upstream = torch.randn(2, 12, 4, dtype=torch.double)
    hs_s, (h_s, c_s, n_s, m_s) = stab(x)
    hs_p, (h_p, c_p, n_p, m_p) = plain(x)
    assert_close(hs_s, _slstm_reference(stab.cell, x, forget_gate), **TIGHT)
    assert_close(hs_s, hs_p, **TIGHT)
    assert_close(c_s * m_s.exp(), c_p, **TIGHT)  # the stored memory is the true one times e^{-m}
    assert_close(n_s * m_s.exp(), n_p, **TIGHT)
    assert torch.all(m_p == 0)
    params_s, params_p = [x, *stab.parameters()], [x, *plain.parameters()]
    for g_s, g_p in zip(_grads((hs_s * upstream).sum(), params_s), _grads((hs_p * upstream).sum(), params_p)):
        assert_close(g_s, g_p, **TIGHT)


def test_slstm_state_carries_between_calls_and_between_kinds():
    torch.manual_seed(7)
    stab = SLSTM(3, 4).double()
    plain = SLSTM(3, 4, stabilised=False).double()
    plain.load_state_dict(stab.state_dict())
    x = torch.randn(2, 10, 3, dtype=torch.double)
    whole, _ = stab(x)
    first, state = stab(x[:, :4])
    rest, _ = stab(x[:, 4:], state)
    assert_close(torch.cat([first, rest], 1), whole, **TIGHT)
    rest_plain, _ = plain(x[:, 4:], state)  # a stabilised state read by the unstabilised cell
    assert_close(rest_plain, whole[:, 4:], **TIGHT)
    state, outs = None, []
    for s in range(10):
        state = stab.cell(x[:, s], state)
        outs.append(state[0])
    assert_close(torch.stack(outs, 1), whole, **TIGHT)


def _big_gate_biases(module, value):
    with torch.no_grad():
        module.b_i.fill_(value)
        module.b_f.fill_(value)


def test_slstm_stabilised_stays_finite_where_unstabilised_overflows():
    torch.manual_seed(8)
    stab = SLSTM(3, 4)
    _big_gate_biases(stab.cell, 100.0)  # i~, f~ near 100: e^100 overflows float32 (max ~ e^88.7)
    plain = SLSTM(3, 4, stabilised=False)
    plain.load_state_dict(stab.state_dict())
    x = torch.randn(2, 5, 3)
    assert not torch.isfinite(plain(x)[0]).all()
    hs, state = stab(x)
    assert all(torch.isfinite(s).all() for s in (hs, *state))
    assert hs.abs().max() <= 1.0  # c / n is a weighted mean of z in (-1, 1)
    ref = SLSTM(3, 4, stabilised=False).double()  # float64 holds e^500: the reference there
    ref.load_state_dict(stab.state_dict())
    out64 = ref(x.double())[0]
    assert torch.isfinite(out64).all()
    assert_close(hs.double(), out64, rtol=1e-4, atol=1e-5)


def test_slstm_errors():
    cell = SLSTMCell(3, 4)
    with pytest.raises(ValueError, match="forget_gate"):
        SLSTM(3, 4, forget_gate="tanh")
    with pytest.raises(TypeError, match="stabilised"):
        SLSTM(3, 4, stabilised=1)
    with pytest.raises(ValueError, match="x_t"):
        cell(torch.randn(2, 1, 3))
    with pytest.raises(ValueError, match="input_size"):
        cell(torch.randn(2, 5))
    with pytest.raises(TypeError, match="state"):
        cell(torch.randn(2, 3), (torch.zeros(2, 4),))
    with pytest.raises(ValueError, match="state h"):
        SLSTM(3, 4)(torch.randn(2, 5, 3), tuple(torch.zeros(2, 5) for _ in range(4)))


# ============================================================================ mLSTM
def _mlstm_reference(model, x):
    """eq-mlstm written out for one head with no stabiliser, zero initial state."""
    b, t, _ = x.shape
    d = model.head_size
    C, n, out = x.new_zeros(b, d, d), x.new_zeros(b, d), []
    for s in range(t):
        x_t = x[:, s]
        q, k, v = x_t @ model.W_xq, x_t @ model.W_xk / math.sqrt(d), x_t @ model.W_xv
        i = torch.exp(x_t @ model.W_xi + model.b_i)  # (b, 1)
        f = torch.sigmoid(x_t @ model.W_xf + model.b_f)
        C = f[:, :, None] * C + i[:, :, None] * torch.einsum("bv,bk->bvk", v, k)
        n = f * n + i * k
        den = torch.clamp(torch.einsum("bk,bk->b", n, q).abs(), min=1.0)
        out.append(torch.sigmoid(x_t @ model.W_xo + model.b_o) * torch.einsum("bvk,bk->bv", C, q) / den[:, None])
    return torch.stack(out, 1)


def test_mlstm_one_head_is_the_formula():
    torch.manual_seed(9)
    m = MLSTM(3, 4).double()
    x = torch.randn(2, 6, 3, dtype=torch.double)
    ref = _mlstm_reference(m, x)
    for mode in ("sequential", "parallel"):
        assert_close(run(m, x, method=mode)[0], ref, **TIGHT)


MGRID = list(itertools.product([1, 2], ["sigmoid", "exp"], [1, 9]))


@pytest.mark.parametrize("n_heads, forget_gate, t", MGRID, ids=[f"nh{a}-{b}-t{c}" for a, b, c in MGRID])
def test_mlstm_forms_agree_with_gradients(n_heads, forget_gate, t):
    torch.manual_seed(10)
    m = MLSTM(3, 8, n_heads, forget_gate=forget_gate).double()
    plain = MLSTM(3, 8, n_heads, stabilised=False, forget_gate=forget_gate).double()
    plain.load_state_dict(m.state_dict())
    x = torch.randn(2, t, 3, dtype=torch.double, requires_grad=True)
    upstream = torch.randn(2, t, 8, dtype=torch.double)
    hs_r, (C_r, n_r, m_r) = m(x)
    hs_p, (C_p, n_p, m_p) = run(m, x, method="parallel")
    hs_u, (C_u, n_u, _) = plain(x)
    assert_close(hs_p, hs_r, **TIGHT)
    assert_close(hs_u, hs_r, **TIGHT)
    for a, b in (
        (C_p, C_r),
        (n_p, n_r),
        (m_p, m_r),
        (C_u, C_r * m_r.exp()[..., None, None]),
        (n_u, n_r * m_r.exp()[..., None]),
    ):
        assert_close(a, b, **TIGHT)
    inputs = [x, *m.parameters()]
    g_r = _grads((hs_r * upstream).sum(), inputs)
    g_p = _grads((hs_p * upstream).sum(), inputs)
    for a, b in zip(g_p, g_r):
        assert_close(a, b, **TIGHT)


@pytest.mark.parametrize("mode", ["sequential", "parallel"])
def test_mlstm_state_carries_between_calls(mode):
    torch.manual_seed(11)
    m = MLSTM(3, 6, 2).double()
    x = torch.randn(2, 10, 3, dtype=torch.double)
    whole, final = m(x)
    first, state = run(m, x[:, :3], method=mode)
    rest, state = run(m, x[:, 3:], state, method=mode)
    assert_close(torch.cat([first, rest], 1), whole, **TIGHT)
    for a, b in zip(state, final):
        assert_close(a, b, **TIGHT)


def test_mlstm_float32_forms_agree_and_stabiliser_prevents_overflow():
    torch.manual_seed(12)
    m = MLSTM(4, 8, 2)
    x = torch.randn(3, 64, 4)
    assert_close(run(m, x, method="parallel")[0], m(x)[0], **F32)
    with torch.no_grad():
        m.b_i.fill_(120.0)  # i~ ~ 120: e^120 overflows float32
    plain = MLSTM(4, 8, 2, stabilised=False)
    plain.load_state_dict(m.state_dict())
    assert not torch.isfinite(plain(x)[0]).all()
    for mode in ("sequential", "parallel"):
        hs, state = run(m, x, method=mode)
        assert all(torch.isfinite(s).all() for s in (hs, *state))
    # with |n^T q| ~ e^120 >> 1, h = C q / |n^T q| can be ill-conditioned (n^T q near a sign change),
    # so the agreement in this regime is checked in float64, where e^120 does not overflow
    stab64, plain64, x64 = m.double(), plain.double(), x.double()
    assert torch.isfinite(plain64(x64)[0]).all()
    for mode in ("sequential", "parallel"):
        assert_close(run(stab64, x64, method=mode)[0], plain64(x64)[0], rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("dtype, i_bias", [(torch.float32, 110.0), (torch.float64, 760.0)])
@pytest.mark.parametrize("mode", ["sequential", "parallel"])
def test_mlstm_zero_query_with_a_large_stabiliser_gives_zero_not_nan(mode, dtype, i_bias):
    """With q_t = 0 the output is C_t q_t / max(|n_t^T q_t|, 1) = 0. Stabilised, the floor 1 is
    e^{-m_t}, which underflows once m_t passes ~104 (float32) / ~745 (float64): 0/0 without
    the guard."""
    torch.manual_seed(13)
    m = MLSTM(3, 4, 2).to(dtype)
    with torch.no_grad():
        m.W_xq.zero_()  # q_t = 0 for every input
        m.b_i.fill_(i_bias)  # i~_t ~ i_bias, so m_t ~ i_bias
    hs, state = run(m, torch.randn(2, 5, 3, dtype=dtype), method=mode)
    assert (state[2] > i_bias - 10).all()
    assert_close(hs, torch.zeros_like(hs), rtol=0, atol=0)


def test_mlstm_errors():
    with pytest.raises(ValueError, match="n_heads"):
        MLSTM(3, 6, 4)
    m = MLSTM(3, 4, 2)
    with pytest.raises(ValueError, match="method must be one of 'sequential', 'parallel'"):
        run(m, torch.randn(1, 2, 3), method="chunked")
    with pytest.raises(ValueError, match="stabilised"):
        MLSTM(3, 4, stabilised=False, method="parallel")
    with pytest.raises(ValueError, match="stabilised"):
        run(MLSTM(3, 4, stabilised=False), torch.randn(1, 2, 3), method="parallel")
    with pytest.raises(ValueError, match="state C"):
        m(torch.randn(1, 2, 3), (torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 2), torch.zeros(1, 2)))


# ============================================================================ GPU
@pytest.mark.gpu
def test_gpu_matches_cpu():
    torch.manual_seed(13)
    x = torch.randn(2, 300, 4, dtype=torch.double)
    for model, kwargs in ((MinGRU(4, 8), {}), (MinLSTM(4, 8), {}), (MLSTM(4, 8, 2, method="parallel"), {}),
                          (SLSTM(4, 8), {})):  # fmt: skip
        model = model.double()
        ref = model(x, **kwargs)[0]
        out = model.cuda()(x.cuda(), **kwargs)[0]
        assert out.device.type == "cuda"
        assert_close(out.cpu(), ref, **TIGHT)
