"""The NumPy models: hand-written backprop against finite differences and against PyTorch's
autograd on the same computation; step-by-step against whole-sequence; variant semantics."""

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose
from recurrent_cases import CASES, backward, case_id, forward, random_case, state_names, torch_model, torch_state

from lstm_lab import scratch
from lstm_lab.variants import lstm_param_shapes


def _loss(family, option, x, params, states, dhs, dc_last=None):
    hs, cache = forward(family, option, x, params, **states)
    loss = np.sum(hs * dhs)
    if dc_last is not None:
        loss += np.sum(cache["cs"][:, -1] * dc_last)
    return loss


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_backward_matches_central_differences_everywhere(case):
    """Every element of every gradient: parameters, input and initial states."""
    family, option = case
    x, params, states, dhs = random_case(family, option, b=2, t=3, d=2, h=3, seed=1)
    dc_last = np.random.default_rng(9).normal(size=(2, 3)) if family == "lstm" else None
    hs, cache = forward(family, option, x, params, **states)
    grads = scratch.lstm_backward(dhs, cache, dc_last=dc_last) if family == "lstm" else backward(family, dhs, cache)
    eps = 1e-6
    targets = {**{k: params for k in params}, "x": None, **{n: states for n in states}}
    for name, holder in targets.items():
        base = x if name == "x" else holder[name]
        numeric = np.zeros_like(base)
        for idx in np.ndindex(base.shape):
            for sign in (1, -1):
                bumped = base.copy()
                bumped[idx] += sign * eps
                if name == "x":
                    value = _loss(family, option, bumped, params, states, dhs, dc_last)
                elif holder is params:
                    value = _loss(family, option, x, {**params, name: bumped}, states, dhs, dc_last)
                else:
                    value = _loss(family, option, x, params, {**states, name: bumped}, dhs, dc_last)
                numeric[idx] += sign * value / (2 * eps)
        assert_allclose(grads[name], numeric, rtol=1e-6, atol=1e-8, err_msg=f"d{name}")


@pytest.mark.parametrize("with_state", [True, False], ids=["state", "zeros"])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_numpy_equals_pytorch_autograd(case, with_state):
    """Same weights, same upstream gradient: outputs and every gradient agree in float64."""
    family, option = case
    x, params, states, dhs = random_case(family, option, with_state=with_state)
    hs, cache = forward(family, option, x, params, **states)
    grads = backward(family, dhs, cache)

    model = torch_model(family, option, d=3, h=5).double().load_params(params)
    xt = torch.from_numpy(x).requires_grad_()
    if with_state:
        tensors, state = torch_state(family, option, states)
    else:
        tensors, state = [], None
    out, _ = model(xt, state)
    out.backward(torch.from_numpy(dhs))
    assert_allclose(out.detach().numpy(), hs, rtol=1e-12, atol=1e-13)
    assert_allclose(xt.grad.numpy(), grads["x"], rtol=1e-10, atol=1e-12)
    for name, p in model.layers[0].named_parameters():
        assert_allclose(p.grad.numpy(), grads[name], rtol=1e-10, atol=1e-12, err_msg=name)
    for name, tensor in zip(state_names(family, option), tensors):
        assert_allclose(tensor.grad[0].numpy(), grads[name], rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_step_by_step_equals_whole_sequence(case):
    family, option = case
    x, params, states, _ = random_case(family, option, t=6)
    whole, cache = forward(family, option, x, params, **states)
    first, c1 = forward(family, option, x[:, :2], params, **states)
    carried = {"h0": first[:, -1]}
    if family == "lstm":
        carried["c0"] = c1["cs"][:, -1]
        if option == "FGR":
            carried["gates0"] = np.concatenate([c1["gates"][k][:, -1] for k in "ifo"], axis=1)
    rest = [first]
    for s in range(2, 6):  # then one step at a time
        hs, c = forward(family, option, x[:, s : s + 1], params, **carried)
        rest.append(hs)
        carried = {"h0": hs[:, -1]}
        if family == "lstm":
            carried["c0"] = c["cs"][:, -1]
            if option == "FGR":
                carried["gates0"] = np.concatenate([c["gates"][k][:, -1] for k in "ifo"], axis=1)
    assert_allclose(np.concatenate(rest, axis=1), whole, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_missing_initial_state_equals_zeros(case):
    family, option = case
    x, params, states, _ = random_case(family, option)
    zeros = {n: np.zeros_like(v) for n, v in states.items()}
    implicit = forward(family, option, x, params)[0]
    assert_allclose(implicit, forward(family, option, x, params, **zeros)[0], rtol=0, atol=0)


def test_float32_accepted_and_kept():
    x, params, _, dhs = random_case("lstm", "vanilla")
    p32 = {k: v.astype(np.float32) for k, v in params.items()}
    hs, cache = scratch.lstm_forward(x.astype(np.float32), p32)
    assert hs.dtype == np.float32
    assert scratch.lstm_backward(dhs.astype(np.float32), cache)["W_xi"].dtype == np.float32
    assert_allclose(hs, scratch.lstm_forward(x, params)[0], rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- variant semantics
def _run(variant, seed=3, **kw):
    x, params, states, _ = random_case("lstm", variant, seed=seed, **kw)
    hs, cache = scratch.lstm_forward(x, params, variant=variant, **states)
    return x, params, states, hs, cache


def test_cifg_forget_gate_is_one_minus_input_gate():
    *_, cache = _run("CIFG")
    assert_allclose(cache["gates"]["f"], 1.0 - cache["gates"]["i"], rtol=0, atol=1e-15)


@pytest.mark.parametrize("variant, gate", [("NIG", "i"), ("NFG", "f"), ("NOG", "o")])
def test_removed_gates_are_constant_one(variant, gate):
    *_, cache = _run(variant)
    assert np.all(cache["gates"][gate] == 1.0)


def test_nfg_cell_only_adds():
    """Without a forget gate, c_t - c_{t-1} = i_t g_t: the 1997 constant error carousel."""
    x, params, states, hs, cache = _run("NFG")
    c_prev = np.concatenate([states["c0"][:, None], cache["cs"][:, :-1]], axis=1)
    assert_allclose(cache["cs"] - c_prev, cache["gates"]["i"] * cache["gates"]["g"], rtol=1e-12, atol=1e-14)


def test_noaf_output_is_o_times_c():
    *_, hs, cache = _run("NOAF")
    assert_allclose(hs, cache["gates"]["o"] * cache["cs"], rtol=1e-14)


def test_niaf_candidate_is_linear():
    x, params, states, hs, cache = _run("NIAF")
    h0 = states["h0"]
    g0 = x[:, 0] @ params["W_xg"] + h0 @ params["W_hg"] + params["b_g"]
    assert_allclose(cache["gates"]["g"][:, 0], g0, rtol=1e-14)
    scaled = {**params, "W_xg": params["W_xg"] * 50}
    _, big = scratch.lstm_forward(x, scaled, variant="NIAF", **states)
    assert np.abs(big["gates"]["g"]).max() > 1.0  # no tanh to bound it


def test_np_equals_vanilla_and_fgr_without_recurrence_equals_peephole():
    x, params, states, hs, _ = _run("vanilla")
    assert_allclose(scratch.lstm_forward(x, params, variant="NP", **states)[0], hs, rtol=0, atol=0)
    x, params, states, hs_fgr, _ = _run("FGR")
    zero_r = {k: (np.zeros_like(v) if k.startswith("R_") else v) for k, v in params.items()}
    peep = {k: v for k, v in params.items() if not k.startswith("R_")}
    s = {k: v for k, v in states.items() if k != "gates0"}
    assert_allclose(scratch.lstm_forward(x, zero_r, variant="FGR", **states)[0],
                    scratch.lstm_forward(x, peep, variant="peephole", **s)[0], rtol=1e-14)
    assert not np.allclose(hs_fgr, scratch.lstm_forward(x, peep, variant="peephole", **s)[0])


def test_peepholes_see_the_cell():
    x, params, states, hs, _ = _run("peephole")
    for k in ("p_i", "p_f", "p_o"):
        changed = {**params, k: params[k] + 1.0}
        assert not np.allclose(scratch.lstm_forward(x, changed, variant="peephole", **states)[0], hs), k


@pytest.mark.parametrize(
    "variant, blocks, peepholes, recurrent",
    [("vanilla", 4, 0, 0), ("NP", 4, 0, 0), ("peephole", 4, 3, 0), ("NIG", 3, 2, 0), ("NFG", 3, 2, 0),
     ("NOG", 3, 2, 0), ("NIAF", 4, 3, 0), ("NOAF", 4, 3, 0), ("CIFG", 3, 2, 0), ("FGR", 4, 3, 9)],
)
def test_parameter_counts(variant, blocks, peepholes, recurrent):
    d, h = 3, 5
    expected = blocks * (d * h + h * h + h) + peepholes * h + recurrent * h * h
    shapes = lstm_param_shapes(variant, d, h)
    assert sum(int(np.prod(s)) for s in shapes.values()) == expected
    params = scratch.init_lstm_params(d, h, variant=variant, rng=np.random.default_rng(0))
    assert sum(v.size for v in params.values()) == expected


def test_forget_bias_initialisation():
    rng = np.random.default_rng(0)
    plain = scratch.init_lstm_params(3, 400, rng=np.random.default_rng(0))
    biased = scratch.init_lstm_params(3, 400, forget_bias=1.0, rng=np.random.default_rng(0))
    assert_allclose(biased["b_f"] - plain["b_f"], 1.0)
    assert_allclose(biased["b_i"], plain["b_i"])
    cifg = scratch.init_lstm_params(3, 400, variant="CIFG", forget_bias=1.0, rng=rng)
    assert cifg["b_i"].mean() < -0.9  # f = 1 - i starts mostly open
    with pytest.raises(ValueError, match="NFG"):
        scratch.init_lstm_params(3, 4, variant="NFG", forget_bias=1.0, rng=rng)


# ----------------------------------------------------------------------------- bad input
def _bad_calls():
    x, params, _, dhs = random_case("lstm", "vanilla")
    gp = scratch.init_gru_params(3, 5, rng=np.random.default_rng(0))
    rp = scratch.init_rnn_params(3, 5, rng=np.random.default_rng(0))
    missing = {k: v for k, v in params.items() if k != "W_hf"}
    return [
        ("rank", lambda: scratch.lstm_forward(x[0], params), ValueError, r"shape \(b, t, d\)"),
        ("features", lambda: scratch.lstm_forward(x[..., :2], params), ValueError, "expect d = 3"),
        ("integer", lambda: scratch.rnn_forward(x.astype(int), rp), TypeError, "floating-point"),
        ("state", lambda: scratch.lstm_forward(x, params, h0=np.zeros((2, 4))), ValueError,
         r"h0 must have shape \(b, h\)"),
        ("cstate", lambda: scratch.lstm_forward(x, params, c0=np.zeros((3, 5))), ValueError, "c0 must have shape"),
        ("variant", lambda: scratch.lstm_forward(x, params, variant="LSTMx"), ValueError,
         "valid variants: vanilla, peephole, NIG"),
        ("missing", lambda: scratch.lstm_forward(x, missing), KeyError, r"missing \['W_hf'\]"),
        ("extra", lambda: scratch.lstm_forward(x, {**params, "p_i": np.zeros(5)}), KeyError, "unexpected keys"),
        ("shape", lambda: scratch.lstm_forward(x, {**params, "b_i": np.zeros(4)}), ValueError, r"params\['b_i'\]"),
        ("gates0", lambda: scratch.lstm_forward(x, params, gates0=np.zeros((2, 15))), ValueError,
         "only used by the FGR"),
        ("form", lambda: scratch.gru_forward(x, gp, form="keras"), ValueError, "form must be one of 'torch', 'cho'"),
        ("dhs", lambda: scratch.rnn_backward(dhs[:, :2], scratch.rnn_forward(x, rp)[1]), ValueError,
         "dhs must have the shape"),
        ("params type", lambda: scratch.rnn_forward(x, [1, 2]), TypeError, "params must be a dict"),
        ("empty", lambda: scratch.rnn_forward(x[:, :0], rp), ValueError, "at least one time step"),
    ]


@pytest.mark.parametrize("name, call, error, message", _bad_calls(), ids=[c[0] for c in _bad_calls()])
def test_bad_input_gets_a_clear_error(name, call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_torch_nn_lstm_has_exactly_the_variants_without_peepholes():
    """LSTMSpec.torch_twin, the one place that decides which variants torch.nn.LSTM computes."""
    from lstm_lab.nn import LSTM
    from lstm_lab.variants import LSTM_VARIANTS, lstm_spec

    twins = {v for v in LSTM_VARIANTS if lstm_spec(v).torch_twin}
    assert twins == {"vanilla", "NP"}
    for v in LSTM_VARIANTS:
        model = LSTM(3, 4, variant=v)
        assert model.layers[0].method == ("torch" if v in twins else "cell")
        if v not in twins:
            with pytest.raises(ValueError, match="torch.nn.LSTM has no"):
                model.to_torch()
