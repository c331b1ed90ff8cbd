"""The PyTorch models: parity with torch.nn.RNN/LSTM/GRU (outputs and every gradient), the
fused LSTM against the readable cell, conversions, devices and clear errors."""

import itertools

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from lstm_lab.nn import GRU, LSTM, RNN, FusedLSTMFunction
from lstm_lab.nn.torch_layout import TORCH_BLOCKS

OURS = {"RNN": RNN, "LSTM": LSTM, "GRU": GRU}
TIGHT = dict(rtol=1e-10, atol=1e-10)


def _grad_blocks(kind, module, layer):
    """torch.nn parameter gradients split into book-named blocks: {name: [grad, ...]}.

    A merged bias b_k gets two entries, the gradients of bias_ih and bias_hh, which must both
    equal ours; the GRU's b_n and b_hn come from bias_ih and bias_hh respectively.
    """
    h = module.hidden_size
    out = {}
    for j, k in enumerate(TORCH_BLOCKS[kind]):
        rows = slice(j * h, (j + 1) * h)
        suffix = "h" if kind == "RNN" else k
        out[f"W_x{suffix}"] = [getattr(module, f"weight_ih_l{layer}").grad[rows].T]
        out[f"W_h{suffix}"] = [getattr(module, f"weight_hh_l{layer}").grad[rows].T]
        if module.bias:
            b_ih = getattr(module, f"bias_ih_l{layer}").grad[rows]
            b_hh = getattr(module, f"bias_hh_l{layer}").grad[rows]
            if kind == "GRU" and k == "n":
                out["b_n"], out["b_hn"] = [b_ih], [b_hh]
            else:
                out[f"b_{suffix}"] = [b_ih, b_hh]
    return out


LSTM_METHODS = ["RNN-cell", "RNN-torch", "LSTM-cell", "LSTM-fused", "LSTM-torch", "GRU-cell", "GRU-torch"]
GRID = list(itertools.product(LSTM_METHODS, [1, 2], [True, False], [False, True], [1, 5]))


@pytest.mark.parametrize(
    "which, layers, bias, with_state, t", GRID,
    ids=[f"{w}-L{n}-{'bias' if b else 'nobias'}-{'state' if s else 'zeros'}-t{t}" for w, n, b, s, t in GRID],
)
def test_parity_with_torch_nn(which, layers, bias, with_state, t):
    kind, _, method = which.partition("-")
    torch.manual_seed(0)
    d, h, b = 3, 4, 2
    ref = getattr(torch.nn, kind)(d, h, layers, bias=bias, batch_first=True).double()
    ours = OURS[kind].from_torch(ref, method=method)
    x1 = torch.randn(b, t, d, dtype=torch.double, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    n_states = 2 if kind == "LSTM" else 1
    s1 = [torch.randn(layers, b, h, dtype=torch.double, requires_grad=True) for _ in range(n_states)]
    s2 = [s.detach().clone().requires_grad_() for s in s1]
    pack = (lambda s: tuple(s) if n_states == 2 else s[0]) if with_state else (lambda s: None)

    out1, fin1 = ref(x1, pack(s1))
    out2, fin2 = ours(x2, pack(s2))
    fin1 = fin1 if n_states == 2 else (fin1,)
    fin2 = fin2 if n_states == 2 else (fin2,)
    assert_close(out2, out1, **TIGHT)
    for a, r in zip(fin2, fin1):
        assert_close(a, r, **TIGHT)

    # a fixed upstream gradient on the outputs and on every final state
    g = torch.Generator().manual_seed(1)
    upstream = [torch.randn(o.shape, dtype=torch.double, generator=g) for o in (out1, *fin1)]
    torch.autograd.backward([out1, *fin1], upstream)
    torch.autograd.backward([out2, *fin2], upstream)
    assert_close(x2.grad, x1.grad, **TIGHT)
    if with_state:
        for a, r in zip(s2, s1):
            assert_close(a.grad, r.grad, **TIGHT)
    for layer in range(layers):
        mine = dict(ours.layers[layer].named_parameters())
        theirs = _grad_blocks(kind, ref, layer)
        assert set(mine) == set(theirs)
        for name, grads in theirs.items():
            for r in grads:
                assert_close(mine[name].grad, r, **TIGHT, msg=f"layer {layer} {name}")


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("bias", [True, False])
def test_to_torch_round_trip(kind, bias):
    torch.manual_seed(0)
    ours = OURS[kind](3, 4, num_layers=2, bias=bias).double()
    ref = ours.to_torch()
    x = torch.randn(2, 5, 3, dtype=torch.double)
    assert_close(ours(x)[0], ref(x)[0], **TIGHT)
    again = OURS[kind].from_torch(ref)
    for (n1, p1), (n2, p2) in zip(ours.named_parameters(), again.named_parameters()):
        assert n1 == n2
        assert_close(p1, p2, **TIGHT)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
@pytest.mark.parametrize("bias", [True, False])
def test_fused_equals_readable_cell(dtype, tol, bias):
    torch.manual_seed(0)
    model = LSTM(6, 7, num_layers=2, bias=bias, forget_bias=1.0 if bias else 0.0, method="cell").to(dtype)
    x = torch.randn(3, 9, 6, dtype=dtype)
    state = tuple(torch.randn(2, 3, 7, dtype=dtype) for _ in range(2))
    upstream = [torch.randn(3, 9, 7, dtype=dtype), torch.randn(2, 3, 7, dtype=dtype), torch.randn(2, 3, 7, dtype=dtype)]
    results = {}
    for method in ("cell", "fused", "torch"):
        for layer in model.layers:
            layer.method = method
        model.zero_grad()
        xi = x.clone().requires_grad_()
        si = tuple(s.clone().requires_grad_() for s in state)
        out, (h_n, c_n) = model(xi, si)
        torch.autograd.backward([out, h_n, c_n], upstream)
        results[method] = [out, h_n, c_n, xi.grad, *(s.grad for s in si), *(p.grad.clone() for p in model.parameters())]
    for method in ("fused", "torch"):
        for a, b in zip(results[method], results["cell"]):
            assert_close(a, b, rtol=tol, atol=tol, msg=method)


def test_fused_function_passes_gradcheck():
    torch.manual_seed(0)
    b, t, d, h = 2, 3, 3, 2
    args = [torch.randn(*s, dtype=torch.double, requires_grad=True) for s in
            [(b, t, d), (b, h), (b, h), (d, 4 * h), (h, 4 * h), (4 * h,)]]
    assert torch.autograd.gradcheck(FusedLSTMFunction.apply, args)


def test_auto_picks_the_torch_kernel_where_torch_has_the_model():
    assert LSTM(2, 3).layers[0].method == "torch"
    assert LSTM(2, 3, variant="NP").layers[0].method == "torch"
    assert LSTM(2, 3, variant="peephole").layers[0].method == "cell"
    assert GRU(2, 3).layers[0].method == "torch"
    assert GRU(2, 3, form="cho").layers[0].method == "cell"
    assert RNN(2, 3).layers[0].method == "torch"
    out, _ = LSTM(2, 3, method="fused")(torch.randn(1, 2, 2))
    assert out.grad_fn.name().startswith("FusedLSTMFunction")
    with pytest.raises(ValueError, match="method='torch' needs a model that torch.nn has"):
        GRU(2, 3, form="cho", method="torch")
    with pytest.raises(ValueError, match="method='torch' needs"):
        LSTM(2, 3, variant="CIFG", method="torch")


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_the_torch_kernel_draws_no_random_numbers_and_keeps_no_state(kind):
    """method="auto" (= "torch") leaves the global RNG where method="cell" leaves it, and the layer
    holds nothing but its book-named parameters after a forward pass (no hidden module)."""
    draws = {}
    for method in ("auto", "cell"):
        torch.manual_seed(0)
        model = OURS[kind](3, 4, num_layers=2, method=method)
        model(torch.randn(2, 5, 3))
        draws[method] = torch.rand(3)
        for layer in model.layers:
            extra = {k: v for k, v in vars(layer).items() if isinstance(v, (torch.Tensor, torch.nn.Module))}
            assert not extra, f"{method}: the layer keeps {sorted(extra)}"
            assert not list(layer.children())
    assert torch.equal(draws["auto"], draws["cell"])


@pytest.mark.parametrize("method", ["cell", "torch"])
@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_step_by_step_equals_whole_sequence(kind, method):
    torch.manual_seed(0)
    model = OURS[kind](3, 4, num_layers=2, method=method).double()
    x = torch.randn(2, 6, 3, dtype=torch.double)
    whole, final = model(x)
    outs, state = [], None
    for s in range(6):
        out, state = model(x[:, s : s + 1], state)
        outs.append(out)
    assert_close(torch.cat(outs, dim=1), whole, **TIGHT)
    for a, b in zip(state if kind == "LSTM" else (state,), final if kind == "LSTM" else (final,)):
        assert_close(a, b, **TIGHT)


def test_fgr_state_carries_the_gates():
    torch.manual_seed(0)
    model = LSTM(3, 4, variant="FGR").double()
    x = torch.randn(2, 5, 3, dtype=torch.double)
    whole, final = model(x)
    assert len(final) == 3 and final[2].shape == (1, 2, 12)
    first, state = model(x[:, :2])
    rest, state = model(x[:, 2:], state)
    assert_close(torch.cat([first, rest], dim=1), whole, **TIGHT)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_missing_state_equals_zeros_and_dtype_device_follow_input(kind):
    model = OURS[kind](3, 4, num_layers=2)
    x = torch.randn(2, 5, 3)
    zeros = torch.zeros(2, 2, 4)
    out0, _ = model(x)
    out1, _ = model(x, (zeros, zeros) if kind == "LSTM" else zeros)
    assert_close(out0, out1, rtol=0, atol=0)
    assert out0.dtype == torch.float32 and out0.device == x.device
    out64, _ = model.double()(x.double())
    assert out64.dtype == torch.float64


def test_forget_bias_and_cifg_bias():
    torch.manual_seed(0)
    plain = LSTM(3, 300)
    torch.manual_seed(0)
    biased = LSTM(3, 300, forget_bias=1.0, method="cell")
    assert_close(biased.layers[0].b_f - plain.layers[0].b_f, torch.ones(300))
    assert LSTM(3, 300, variant="CIFG", forget_bias=1.0).layers[0].b_i.mean() < -0.9


def test_scratch_params_and_load_params_round_trip():
    model = LSTM(3, 4, variant="peephole", bias=False).double()
    params = model.scratch_params()
    assert set(params) >= {"W_xi", "p_o", "b_g"} and not params["b_g"].any()
    other = LSTM(3, 4, variant="peephole", bias=False).double().load_params(params)
    x = torch.randn(2, 3, 3, dtype=torch.double)
    assert_close(other(x)[0], model(x)[0], rtol=0, atol=0)
    with pytest.raises(ValueError, match="bias=False"):
        other.load_params({**params, "b_g": np.ones(4)})
    with pytest.raises(IndexError, match="layer"):
        model.scratch_params(layer=1)


def test_load_params_rejects_keys_the_model_does_not_have():
    """A peephole dict into a vanilla LSTM must not silently drop p_i, p_f, p_o (the NumPy
    models reject unknown keys too)."""
    peephole = LSTM(3, 4, variant="peephole").scratch_params()
    vanilla = LSTM(3, 4)
    before = [p.clone() for p in vanilla.parameters()]
    with pytest.raises(KeyError, match=r"unexpected keys \['p_i', 'p_f', 'p_o'\]"):
        vanilla.load_params(peephole)
    assert all(torch.equal(p, q) for p, q in zip(vanilla.parameters(), before)), "nothing is copied"
    with pytest.raises(KeyError, match="missing"):
        LSTM(3, 4, variant="peephole").load_params(vanilla.scratch_params())
    with pytest.raises(IndexError, match="layer"):
        vanilla.load_params(vanilla.scratch_params(), layer=1)


BAD = [
    ("not a tensor", lambda m: m(np.zeros((2, 3, 3))), TypeError, "torch.Tensor"),
    ("integer", lambda m: m(torch.zeros(2, 3, 3, dtype=torch.long)), TypeError, "floating-point"),
    ("rank", lambda m: m(torch.zeros(3, 3)), ValueError, r"shape \(b, t, d\)"),
    ("features", lambda m: m(torch.zeros(2, 3, 5)), ValueError, "input_size = 3"),
    ("dtype", lambda m: m(torch.zeros(2, 3, 3, dtype=torch.float64)), TypeError, "dtype"),
    ("state shape", lambda m: m(torch.zeros(2, 3, 3), (torch.zeros(1, 2, 5), torch.zeros(1, 2, 4))), ValueError,
     r"h0 must have shape \(num_layers, b, h\)"),
    ("state arity", lambda m: m(torch.zeros(2, 3, 3), torch.zeros(1, 2, 4)), TypeError, r"tuple \(h0, c0\)"),
    ("no steps", lambda m: m(torch.zeros(2, 0, 3)), ValueError, "at least one time step"),
]


@pytest.mark.parametrize("name, call, error, message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_gets_a_clear_error(name, call, error, message):
    with pytest.raises(error, match=message):
        call(LSTM(3, 4))


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(variant="vanila"), ValueError, "valid variants: vanilla, peephole, NIG, NFG"),
        (dict(variant="peephole", method="fused"), ValueError, "vanilla LSTM only"),
        (dict(method="fast"), ValueError, "method must be one of 'auto', 'cell', 'fused', 'torch'"),
        (dict(variant="NFG", forget_bias=1.0), ValueError, "no forget gate"),
        (dict(bias=False, forget_bias=1.0), ValueError, "bias=True"),
        (dict(num_layers=0), ValueError, "num_layers must be a positive int"),
    ],
)
def test_bad_construction(kwargs, error, message):
    with pytest.raises(error, match=message):
        LSTM(3, 4, **kwargs)


def test_from_torch_rejects_what_it_cannot_represent():
    with pytest.raises(ValueError, match="proj_size"):
        LSTM.from_torch(torch.nn.LSTM(3, 4, proj_size=2))
    with pytest.raises(ValueError, match="tanh"):
        RNN.from_torch(torch.nn.RNN(3, 4, nonlinearity="relu"))
    with pytest.raises(TypeError, match="torch.nn.GRU"):
        GRU.from_torch(torch.nn.LSTM(3, 4))
    with pytest.raises(ValueError, match="form='torch'"):
        GRU(3, 4, form="cho").to_torch()


# ----------------------------------------------------------------------------- GPU
@pytest.mark.gpu
@pytest.mark.parametrize("which", LSTM_METHODS)
def test_gpu_matches_cpu_and_torch_nn(which):
    kind, _, method = which.partition("-")
    torch.manual_seed(0)
    ref = getattr(torch.nn, kind)(8, 16, 2, batch_first=True).double().cuda()
    ours = OURS[kind].from_torch(ref, method=method)
    x = torch.randn(4, 20, 8, dtype=torch.double, device="cuda", requires_grad=True)
    out, _ = ours(x)
    assert out.device.type == "cuda"
    assert_close(out, ref(x)[0], rtol=1e-9, atol=1e-9)
    out.sum().backward()
    cpu = OURS[kind].from_torch(ref.cpu(), method=method)
    xc = x.detach().cpu().requires_grad_()
    cpu(xc)[0].sum().backward()
    assert_close(x.grad.cpu(), xc.grad, rtol=1e-9, atol=1e-9)


@pytest.mark.gpu
def test_gpu_float32_fused_equals_cell():
    torch.manual_seed(0)
    model = LSTM(16, 32, num_layers=2, method="cell").cuda()
    x = torch.randn(8, 50, 16, device="cuda")
    ref, _ = model(x)
    for layer in model.layers:
        layer.method = "fused"
    out, _ = model(x)
    assert_close(out, ref, rtol=1e-5, atol=1e-5)
