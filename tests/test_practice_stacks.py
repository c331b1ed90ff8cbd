"""The recurrent stacks in practice: bidirectional layers, batches of sequences of different
lengths and dropout between layers, each against torch.nn (outputs, final states and every
gradient), the masked loop against PyTorch's packed kernel, the LSTM variants' reverse
direction against the NumPy model, vmap, and clear errors."""

import copy
import itertools
import warnings

import numpy as np
import pytest
import torch
from torch.func import functional_call, stack_module_state, vmap
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torch.testing import assert_close

from lstm_lab import scratch
from lstm_lab.experiments import SeedEnsemble
from lstm_lab.nn import GRU, LSTM, RNN
from lstm_lab.nn.torch_layout import TORCH_BLOCKS, torch_suffix

OURS = {"RNN": RNN, "LSTM": LSTM, "GRU": GRU}
TIGHT = dict(rtol=1e-12, atol=1e-12)
B, T, D, H = 4, 5, 3, 4
MIXED = [3, 5, 1, 4]  # a length-1 sequence, a full-length one and two between, not sorted


def n_states(kind):
    return 2 if kind == "LSTM" else 1


def pack_state(kind, tensors):
    return tuple(tensors) if kind == "LSTM" else tensors[0]


def as_tuple(kind, state):
    return tuple(state) if kind == "LSTM" else (state,)


def grad_blocks(kind, module, layer, direction):
    """torch.nn parameter gradients split into book-named blocks: {name: [grad, ...]}; a merged
    bias b_k has two entries (bias_ih and bias_hh), which must both equal ours."""
    h, suffix = module.hidden_size, torch_suffix(layer, direction)
    out = {}
    for j, k in enumerate(TORCH_BLOCKS[kind]):
        rows = slice(j * h, (j + 1) * h)
        name = "h" if kind == "RNN" else k
        out[f"W_x{name}"] = [getattr(module, f"weight_ih_{suffix}").grad[rows].T]
        out[f"W_h{name}"] = [getattr(module, f"weight_hh_{suffix}").grad[rows].T]
        b_ih = getattr(module, f"bias_ih_{suffix}").grad[rows]
        b_hh = getattr(module, f"bias_hh_{suffix}").grad[rows]
        if kind == "GRU" and k == "n":
            out["b_n"], out["b_hn"] = [b_ih], [b_hh]
        else:
            out[f"b_{name}"] = [b_ih, b_hh]
    return out


def run_torch_nn(ref, x, state, lengths):
    """torch.nn's module, on a PackedSequence where lengths are given, padded back to t steps."""
    if lengths is None:
        return ref(x, state)
    packed = pack_padded_sequence(x, torch.tensor(lengths), batch_first=True, enforce_sorted=False)
    out, final = ref(packed, state)
    return pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0], final


def run_and_backward(model, x, state, lengths, upstream, *, torch_nn=False):
    """Outputs, final states, and the gradients of x and of the initial states after backward."""
    x = x.detach().clone().requires_grad_()
    state = [s.detach().clone().requires_grad_() for s in state]
    kind = type(model).__name__
    packed_state = pack_state(kind, state)
    if torch_nn:
        out, final = run_torch_nn(model, x, packed_state, lengths)
    else:
        out, final = model(x, packed_state, lengths=lengths)
    final = as_tuple(kind, final)
    torch.autograd.backward([out, *final], upstream)
    return [out, *final, x.grad, *(s.grad for s in state)]


def random_inputs(kind, layers, bidirectional, *, b=B, t=T, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = layers * (2 if bidirectional else 1)
    x = torch.randn(b, t, D, dtype=torch.double, generator=g)
    state = [torch.randn(n, b, H, dtype=torch.double, generator=g) for _ in range(n_states(kind))]
    width = H * (2 if bidirectional else 1)
    upstream = [torch.randn(b, t, width, dtype=torch.double, generator=g)]
    upstream += [torch.randn(n, b, H, dtype=torch.double, generator=g) for _ in range(n_states(kind))]
    return x, state, upstream


# ----------------------------------------------------------------------------- parity with torch.nn
METHODS = ["RNN-cell", "RNN-torch", "LSTM-cell", "LSTM-fused", "LSTM-torch", "GRU-cell", "GRU-torch"]
GRID = [(w, bi, n, lens) for w, bi, n, lens in itertools.product(METHODS, [False, True], [1, 2], [None, MIXED])
        if not (w == "LSTM-fused" and lens is not None)]


@pytest.mark.parametrize(
    "which, bidirectional, layers, lengths", GRID,
    ids=[f"{w}-{'bi' if bi else 'uni'}-L{n}-{'mixed' if lens else 'full'}" for w, bi, n, lens in GRID],
)
def test_parity_with_torch_nn(which, bidirectional, layers, lengths):
    kind, _, method = which.partition("-")
    torch.manual_seed(0)
    ref = getattr(torch.nn, kind)(D, H, layers, batch_first=True, bidirectional=bidirectional).double()
    ours = OURS[kind].from_torch(ref, method=method)
    assert ours.bidirectional == bidirectional
    assert all(layer.method == method for k in range(layers) for layer in ours.directions(k))
    x, state, upstream = random_inputs(kind, layers, bidirectional)

    theirs = run_and_backward(ref, x, state, lengths, upstream, torch_nn=True)
    mine = run_and_backward(ours, x, state, lengths, upstream)
    names = ["outputs", *(f"final {n}" for n in ("h", "c")[: n_states(kind)]), "dx",
             *(f"d{n}0" for n in ("h", "c")[: n_states(kind)])]
    assert mine[0].shape == (B, T, H * (2 if bidirectional else 1))
    for name, a, r in zip(names, mine, theirs):
        assert_close(a, r, **TIGHT, msg=name)

    for layer in range(layers):
        for direction in range(2 if bidirectional else 1):
            module = ours.direction(layer, direction)
            got = dict(module.named_parameters())
            want = grad_blocks(kind, ref, layer, direction)
            assert set(got) == set(want)
            for name, grads in want.items():
                for r in grads:
                    assert_close(got[name].grad, r, **TIGHT, msg=f"layer {layer} direction {direction} {name}")


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_to_torch_and_back_keep_both_directions_and_dropout(kind):
    torch.manual_seed(0)
    ours = OURS[kind](D, H, num_layers=2, bidirectional=True, dropout=0.25).double().eval()
    ref = ours.to_torch()
    assert ref.bidirectional and ref.dropout == 0.25 and ref.batch_first
    x = torch.randn(B, T, D, dtype=torch.double)
    assert_close(ours(x)[0], ref(x)[0], **TIGHT)
    again = OURS[kind].from_torch(ref)
    assert again.bidirectional and again.dropout == 0.25
    for (n1, p1), (n2, p2) in zip(ours.named_parameters(), again.named_parameters(), strict=True):
        assert n1 == n2
        assert torch.equal(p1, p2)


def test_the_reverse_direction_has_its_own_parameters_and_layer_inputs_are_2h():
    model = LSTM(D, H, num_layers=2, bidirectional=True)
    names = [n for n, _ in model.named_parameters()]
    assert "layers.0.W_xi" in names and "reverse_layers.0.W_xi" in names
    assert model.layers[1].W_xi.shape == (2 * H, H) and model.reverse_layers[1].W_xi.shape == (2 * H, H)
    assert model.reverse_layers[0].reverse and not model.layers[0].reverse
    plain = LSTM(D, H, num_layers=2)
    assert not hasattr(plain, "reverse_layers") and plain.num_directions == 1
    assert [n for n, _ in plain.named_parameters()] == [n for n in names if n.startswith("layers.")]


# ----------------------------------------------------------------------------- the masked loop and the packed kernel
@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_masked_loop_equals_packed_kernel(kind, bidirectional):
    torch.manual_seed(0)
    model = OURS[kind](D, H, num_layers=2, bidirectional=bidirectional, method="cell").double()
    x, state, upstream = random_inputs(kind, 2, bidirectional, b=6, t=7)
    lengths = torch.tensor([7, 2, 1, 5, 7, 3])
    results = {}
    for method in ("cell", "torch"):
        for k in range(2):
            for layer in model.directions(k):
                layer.method = method
        model.zero_grad()
        out = run_and_backward(model, x, state, lengths, upstream)
        results[method] = out + [p.grad.clone() for p in model.parameters()]
    for a, b in zip(results["cell"], results["torch"], strict=True):
        assert_close(a, b, **TIGHT)


@pytest.mark.parametrize("fill", ["large", "nan"])
@pytest.mark.parametrize("which", ["RNN-cell", "RNN-torch", "LSTM-cell", "LSTM-torch", "GRU-cell", "GRU-torch"])
def test_padded_values_change_nothing(which, fill):
    """Not the outputs, not the final states, not a gradient: not even NaNs in the padding."""
    kind, _, method = which.partition("-")
    torch.manual_seed(0)
    model = OURS[kind](D, H, num_layers=2, bidirectional=True, method=method).double()
    x, state, upstream = random_inputs(kind, 2, True)
    padded = torch.arange(T)[None, :] >= torch.tensor(MIXED)[:, None]  # (b, t)
    noise = 1e3 * torch.randn_like(x) if fill == "large" else torch.full_like(x, float("nan"))
    other = torch.where(padded[..., None], noise, x)
    results = []
    for inputs in (x, other):
        model.zero_grad()
        out = run_and_backward(model, inputs, state, MIXED, upstream)
        results.append(out + [p.grad.clone() for p in model.parameters()])
        dx = out[1 + n_states(kind)]
        assert torch.all(dx[padded] == 0), "no gradient reaches a padded input"
        assert torch.all(out[0][padded] == 0), "outputs at padded steps are zeros"
    for a, b in zip(*results, strict=True):
        assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("which", ["RNN-cell", "RNN-torch", "LSTM-cell", "LSTM-fused", "LSTM-torch", "GRU-cell"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_full_lengths_equal_no_lengths(which, bidirectional):
    kind, _, method = which.partition("-")
    torch.manual_seed(0)
    model = OURS[kind](D, H, num_layers=2, bidirectional=bidirectional, method=method).double()
    x = torch.randn(B, T, D, dtype=torch.double)
    whole = model(x)
    if method == "fused":
        with pytest.raises(ValueError, match="lengths needs method='cell'.*or method='torch'"):
            model(x, lengths=[T] * B)
        return
    for lengths in ([T] * B, torch.full((B,), T), np.full(B, T)):
        out, final = model(x, lengths=lengths)
        assert_close(out, whole[0], **TIGHT)
        for a, b in zip(as_tuple(kind, final), as_tuple(kind, whole[1])):
            assert_close(a, b, **TIGHT)


def test_lengths_as_list_tensor_and_numpy_agree():
    torch.manual_seed(0)
    model = GRU(D, H, bidirectional=True, method="cell").double()
    x = torch.randn(B, T, D, dtype=torch.double)
    outs = [model(x, lengths=lengths)[0] for lengths in (MIXED, tuple(MIXED), torch.tensor(MIXED),
                                                          np.array(MIXED, dtype=np.int32))]
    for out in outs[1:]:
        assert torch.equal(out, outs[0])


# ----------------------------------------------------------------------------- variants: the reverse direction
def numpy_reference(model, x, state, lengths, variant):
    """Each sequence alone, cut to its own length, through the NumPy LSTM: forward as it is and
    reverse on the sequence reversed (then reversed back). One layer."""
    h = model.hidden_size
    x = x.numpy()
    out = np.zeros((x.shape[0], x.shape[1], 2 * h))
    finals = [np.zeros((2, x.shape[0], s.shape[2])) for s in state]
    for j, n in enumerate(lengths):
        for direction in (0, 1):
            seq = x[j : j + 1, :n] if direction == 0 else x[j : j + 1, :n][:, ::-1]
            init = {name: s[direction, j : j + 1].numpy() for name, s in zip(("h0", "c0", "gates0"), state)}
            params = model.scratch_params(0, direction=direction)
            hs, cache = scratch.lstm_forward(seq, params, variant=variant, **init)
            if direction == 1:
                hs = hs[:, ::-1]
            out[j, :n, direction * h : (direction + 1) * h] = hs[0]
            last = [cache["hs"][0, -1], cache["cs"][0, -1]]
            if variant == "FGR":
                last.append(np.concatenate([cache["gates"][k][0, -1] for k in "ifo"]))
            for f, value in zip(finals, last):
                f[direction, j] = value
    return out, finals


@pytest.mark.parametrize("variant", ["peephole", "CIFG", "FGR"])
def test_variants_reverse_direction_reads_each_sequence_backwards(variant):
    torch.manual_seed(0)
    model = LSTM(D, H, variant=variant, bidirectional=True, method="auto").double()
    assert model.reverse_layers[0].method == "cell"
    with torch.no_grad():  # make the peepholes and FGR's gate matrices matter
        for p in model.parameters():
            p.mul_(3)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(B, T, D, dtype=torch.double, generator=g)
    widths = [H, H, 3 * H] if variant == "FGR" else [H, H]
    state = [torch.rand(2, B, w, dtype=torch.double, generator=g) for w in widths]
    out, final = model(x, tuple(state), lengths=MIXED)
    want_out, want_final = numpy_reference(model, x, state, MIXED, variant)
    assert_close(out.detach().numpy(), want_out, **TIGHT)
    for a, r in zip(final, want_final, strict=True):
        assert_close(a.detach().numpy(), r, **TIGHT)


def test_gru_cho_reverse_direction_reads_each_sequence_backwards():
    torch.manual_seed(0)
    model = GRU(D, H, form="cho", bidirectional=True).double()
    x = torch.randn(B, T, D, dtype=torch.double)
    out, h_n = model(x, lengths=MIXED)
    for j, n in enumerate(MIXED):
        params = model.scratch_params(0, direction=1)
        hs, _ = scratch.gru_forward(x[j : j + 1, :n].flip(1).numpy(), params, form="cho")
        assert_close(out[j, :n, H:].detach().numpy(), hs[0, ::-1].copy(), **TIGHT)
        assert_close(h_n[1, j].detach().numpy(), hs[0, -1], **TIGHT)


# ----------------------------------------------------------------------------- dropout
def twins(kind, p, **kwargs):
    """The same weights with dropout p and with no dropout."""
    torch.manual_seed(0)
    with_dropout = OURS[kind](D, 16, dropout=p, **kwargs).double()
    plain = OURS[kind](D, 16, **kwargs).double()
    plain.load_state_dict(with_dropout.state_dict())
    return with_dropout, plain


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_dropout_eval_is_deterministic_and_equals_no_dropout(kind):
    model, plain = twins(kind, 0.5, num_layers=3, bidirectional=True)
    x = torch.randn(B, T, D, dtype=torch.double)
    model.eval()
    first, second = model(x)[0], model(x)[0]
    assert torch.equal(first, second)
    assert torch.equal(first, plain(x)[0])  # plain is in training mode: with dropout=0 nothing changes


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_dropout_zero_draws_nothing_and_equals_the_old_stack(kind):
    draws = []
    for kwargs in ({}, {"dropout": 0.0, "bidirectional": False}):
        torch.manual_seed(0)
        model = OURS[kind](D, H, num_layers=2, **kwargs).double()
        x = torch.randn(B, T, D, dtype=torch.double)
        out, final = model(x)
        draws.append((out, *as_tuple(kind, final), torch.rand(3)))
    for a, b in zip(*draws):
        assert torch.equal(a, b)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("method", ["cell", "torch"])
def test_dropout_in_training_drops_the_inputs_of_the_layers_above_the_first(bidirectional, method):
    p = 0.3
    model, plain = twins("LSTM", p, num_layers=2, bidirectional=bidirectional, method=method)
    seen = {}
    model.layers[0].register_forward_hook(lambda m, args, out: seen.setdefault("below", []).append(out[0]))
    if bidirectional:
        model.reverse_layers[0].register_forward_hook(lambda m, args, out: seen["below"].append(out[0]))
    model.layers[1].register_forward_pre_hook(lambda m, args: seen.update(input=args[0]))
    x = torch.randn(64, 10, D, dtype=torch.double)  # 10240 (or 20480) features enter layer 1
    torch.manual_seed(5)
    out, _ = model(x)
    below = torch.cat(seen["below"], dim=2)  # (b, t, h or 2h): layer 0's output
    dropped = seen["input"] == 0
    assert abs(dropped.double().mean().item() - p) < 0.02, "about a fraction p of the features are zeroed"
    assert_close(seen["input"], torch.where(dropped, 0.0, below / (1 - p)), **TIGHT)  # the rest scaled by 1/(1-p)
    assert not torch.any(out == 0), "the top layer's outputs are not dropped"
    torch.manual_seed(5)
    assert torch.equal(model(x)[0], out), "a fixed seed gives the same masks"
    assert not torch.allclose(out, plain(x)[0])


def test_dropout_with_one_layer_warns_like_torch():
    with pytest.warns(UserWarning, match="num_layers greater than 1.*dropout=0.5 and num_layers=1"):
        model = LSTM(D, H, dropout=0.5)
    x = torch.randn(B, T, D)
    torch.manual_seed(0)
    out = model(x)[0]
    assert torch.equal(out, model.eval()(x)[0]), "one layer: nothing to drop"


# ----------------------------------------------------------------------------- vmap
class BiTagger(torch.nn.Module):
    """A bidirectional LSTM and a readout at every step: (b, t, d) -> (b, t, k)."""

    def __init__(self, kind="LSTM", method="auto"):
        super().__init__()
        self.core = OURS[kind](D, H, num_layers=2, bidirectional=True, method=method)
        self.head = torch.nn.Linear(2 * H, 2)

    def forward(self, x, state=None, lengths=None):
        out, state = self.core(x, state, lengths=lengths)
        return self.head(out), state


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_bidirectional_cell_runs_under_vmap(kind):
    """SeedEnsemble runs every member under vmap: "auto" runs the readable cell there, both
    directions, and each member equals the member run alone (with the torch kernel)."""
    ens = SeedEnsemble(lambda: BiTagger(kind), seeds=(0, 1))
    x = torch.randn(2, B, T, D)
    out = ens(x)
    assert out.shape == (2, B, T, 2)
    for j in range(2):
        member = ens.member(j)
        assert member.core.reverse_layers[0].method == "torch"
        with torch.no_grad():
            assert_close(out[j], member(x[j])[0], rtol=1e-5, atol=1e-6)


def test_vmap_with_lengths_equals_each_member_alone():
    models = []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        models.append(LSTM(D, H, num_layers=2, bidirectional=True).double())
    params, _ = stack_module_state(models)
    template = copy.deepcopy(models[0]).to("meta")
    lengths = torch.tensor(MIXED)

    def one(p, x_j):
        return functional_call(template, p, (x_j,), {"lengths": lengths})

    x = torch.randn(3, B, T, D, dtype=torch.double)
    out, (h_n, c_n) = vmap(one)(params, x)
    for j, model in enumerate(models):
        o, (h, c) = model(x[j], lengths=lengths)
        assert_close(out[j], o, **TIGHT)
        assert_close(h_n[j], h, **TIGHT)
        assert_close(c_n[j], c, **TIGHT)


def test_an_explicit_torch_kernel_under_vmap_still_gets_a_clear_error():
    ens = SeedEnsemble(lambda: BiTagger("GRU", method="torch"), seeds=(0, 1))
    with pytest.raises(ValueError, match="method='torch' cannot run under torch.func.vmap"):
        ens(torch.randn(2, B, T, D))


# ----------------------------------------------------------------------------- conversions by direction
def test_scratch_params_and_load_params_address_each_direction():
    torch.manual_seed(0)
    model = LSTM(D, H, num_layers=2, variant="peephole", bidirectional=True).double()
    other = LSTM(D, H, num_layers=2, variant="peephole", bidirectional=True).double()
    for k in range(2):
        other.load_params(model.scratch_params(k), k)  # the calls of a unidirectional stack: forward
        other.load_params(model.scratch_params(k, direction=1), layer=k, direction=1)
    for (n1, p1), (n2, p2) in zip(model.named_parameters(), other.named_parameters(), strict=True):
        assert n1 == n2 and torch.equal(p1, p2), n1
    assert not np.array_equal(model.scratch_params(0)["W_xi"], model.scratch_params(0, direction=1)["W_xi"])
    assert model.scratch_params(1, direction=1)["W_xi"].shape == (2 * H, H)
    with pytest.raises(IndexError, match="direction must be 0 .forward. or 1"):
        model.scratch_params(0, direction=2)
    with pytest.raises(IndexError, match="not bidirectional"):
        LSTM(D, H).scratch_params(direction=1)
    with pytest.raises(IndexError, match="not bidirectional"):
        LSTM(D, H).load_params(model.scratch_params(0), direction=1)
    with pytest.raises(TypeError, match="direction must be an int"):
        model.scratch_params(0, direction="reverse")


# ----------------------------------------------------------------------------- clear errors
BAD_LENGTHS = [
    ("float tensor", torch.tensor([3.0, 5.0, 1.0, 4.0]), TypeError, "lengths must be an int64 tensor"),
    ("int32 tensor", torch.tensor(MIXED, dtype=torch.int32), TypeError, "lengths must be an int64 tensor"),
    ("not on the cpu", torch.tensor(MIXED, device="meta"), ValueError, "lengths must be on the CPU"),
    ("2-D tensor", torch.tensor([MIXED]), ValueError, r"lengths must have shape \(b,\) = \(4,\)"),
    ("2-D array", np.array([MIXED]), ValueError, r"lengths must have shape \(b,\)"),
    ("float array", np.array(MIXED, dtype=float), TypeError, "lengths must hold ints"),
    ("too few", [3, 5, 1], ValueError, "lengths must hold one length per sequence"),
    ("zero", [3, 0, 1, 4], ValueError, r"every entry of lengths must be in \[1, t\] = \[1, 5\], got 0"),
    ("too long", [3, 6, 1, 4], ValueError, r"every entry of lengths must be in \[1, t\] = \[1, 5\], got 6"),
    ("a float", [3, 5.0, 1, 4], TypeError, "every entry of lengths must be an int"),
    ("a bool", [3, True, 1, 4], TypeError, "every entry of lengths must be an int"),
    ("a str", "3514", TypeError, "lengths must be a 1-D int64 tensor or a sequence of ints"),
    ("an int", 3, TypeError, "lengths must be a 1-D int64 tensor or a sequence of ints"),
]


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("name, lengths, error, message", BAD_LENGTHS, ids=[b[0] for b in BAD_LENGTHS])
def test_bad_lengths_get_a_clear_error(kind, name, lengths, error, message):
    with pytest.raises(error, match=message):
        OURS[kind](D, H, bidirectional=True)(torch.zeros(B, T, D), lengths=lengths)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(dropout=-0.1), ValueError, r"dropout must be a float in \[0, 1\), got -0.1"),
        (dict(dropout=1.0), ValueError, r"dropout must be a float in \[0, 1\), got 1.0"),
        (dict(dropout=float("nan")), ValueError, "dropout must be a float in"),
        (dict(dropout="0.5"), TypeError, "dropout must be a float"),
        (dict(dropout=True), TypeError, "dropout must be a float"),
        (dict(dropout=None), TypeError, "dropout must be a float"),
        (dict(bidirectional=1), TypeError, "bidirectional must be True or False"),
        (dict(bidirectional="yes"), TypeError, "bidirectional must be True or False"),
        (dict(bidirectional=None), TypeError, "bidirectional must be True or False"),
    ],
)
def test_bad_construction(kind, kwargs, error, message):
    with pytest.raises(error, match=message):
        OURS[kind](D, H, num_layers=2, **kwargs)


def test_a_bidirectional_state_has_two_entries_per_layer():
    model = LSTM(D, H, num_layers=2, bidirectional=True)
    x = torch.zeros(B, T, D)
    wrong = (torch.zeros(2, B, H), torch.zeros(2, B, H))
    with pytest.raises(ValueError, match=r"h0 must have shape \(num_layers \* 2, b, h\) = \(4, 4, 4\)"):
        model(x, wrong)
    out, (h_n, c_n) = model(x)
    assert out.shape == (B, T, 2 * H) and h_n.shape == c_n.shape == (4, B, H)
    zeros = torch.zeros(4, B, H)
    assert torch.equal(model(x, (zeros, zeros))[0], out), "a missing state equals zeros"


def test_fused_with_lengths_says_which_methods_take_them():
    with pytest.raises(ValueError, match="lengths needs method='cell' .the masked loop. or method='torch'"):
        LSTM(D, H, method="fused", bidirectional=True)(torch.zeros(B, T, D), lengths=MIXED)


# ----------------------------------------------------------------------------- GPU
@pytest.mark.gpu
@pytest.mark.parametrize("which", ["RNN-cell", "RNN-torch", "LSTM-cell", "LSTM-torch", "GRU-cell", "GRU-torch"])
def test_gpu_bidirectional_lengths_match_torch_nn(which):
    kind, _, method = which.partition("-")
    torch.manual_seed(0)
    ref = getattr(torch.nn, kind)(8, 16, 2, batch_first=True, bidirectional=True).double().cuda()
    ours = OURS[kind].from_torch(ref, method=method)
    x = torch.randn(6, 20, 8, dtype=torch.double, device="cuda")
    lengths = [20, 1, 7, 13, 20, 2]
    state = [torch.randn(4, 6, 16, dtype=torch.double, device="cuda") for _ in range(n_states(kind))]
    upstream = [torch.randn(6, 20, 32, dtype=torch.double, device="cuda")]
    upstream += [torch.randn(4, 6, 16, dtype=torch.double, device="cuda") for _ in range(n_states(kind))]
    theirs = run_and_backward(ref, x, state, lengths, upstream, torch_nn=True)
    mine = run_and_backward(ours, x, state, lengths, upstream)
    assert mine[0].device.type == "cuda"
    for a, r in zip(mine, theirs, strict=True):
        assert_close(a, r, rtol=1e-9, atol=1e-9)


def test_sequence_model_reads_out_both_directions():
    from lstm_lab.nn import SequenceModel

    torch.manual_seed(0)
    model = SequenceModel(LSTM(3, 4, bidirectional=True), 2, vocab_size=5)
    assert model.head.in_features == 8
    y, (h_n, c_n) = model(torch.tensor([[0, 1, 4], [2, 3, 3]]))
    assert y.shape == (2, 3, 2) and h_n.shape == (2, 2, 4)


# ----------------------------------------------------------------------------- variational dropout
@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_variational_dropout_keeps_each_mask_for_every_step(kind):
    """With an identity-like input, a unit dropped between layers is dropped at every step:
    the layer above sees zeros in the same columns at all t steps."""
    torch.manual_seed(0)
    model = OURS[kind](3, 6, 2, dropout=0.5, variational=True).double().train()
    seen = {}
    hook = model.layers[1].register_forward_pre_hook(lambda mod, args, kw: seen.update(x=args[0]), with_kwargs=True)
    model(torch.randn(4, 7, 3, dtype=torch.float64))
    hook.remove()
    zero = seen["x"] == 0  # (b, t, h): dropped entries of the layer below's output
    assert zero.any()
    assert torch.equal(zero, zero[:, :1].expand_as(zero))  # the same units at every step


def test_per_step_dropout_changes_its_mask_from_step_to_step():
    torch.manual_seed(0)
    model = LSTM(3, 6, 2, dropout=0.5).double().train()
    seen = {}
    hook = model.layers[1].register_forward_pre_hook(lambda mod, args, kw: seen.update(x=args[0]), with_kwargs=True)
    model(torch.randn(4, 7, 3, dtype=torch.float64))
    hook.remove()
    zero = seen["x"] == 0
    assert not torch.equal(zero, zero[:, :1].expand_as(zero))


def test_variational_dropout_runs_the_cell_and_acts_with_one_layer():
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one layer is enough: h_{t-1} is dropped too, so no warning
        model = LSTM(3, 5, 1, dropout=0.5, variational=True).double()
    x = torch.randn(2, 4, 3, dtype=torch.float64)
    model.eval()
    assert model.layers[0].method_for(x) == "torch"  # eval: nothing to drop, the kernel runs
    evaluated = model(x)[0]
    model.train()
    assert not torch.allclose(model(x)[0], evaluated)
    assert "variational=True" in repr(model)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_variational_dropout_with_lengths_matches_each_sequence_alone_in_eval_and_runs_in_training(kind):
    torch.manual_seed(1)
    model = OURS[kind](3, 4, 2, dropout=0.3, variational=True, bidirectional=True).double()
    x = torch.randn(4, 5, 3, dtype=torch.float64)
    out, _ = model.train()(x, lengths=MIXED)
    assert torch.all(out[1, 5:] == 0) and torch.all(out[0, 3:] == 0)  # padded steps stay zero
    model.eval()
    out, _ = model(x, lengths=MIXED)
    for j, n in enumerate(MIXED):
        assert_close(out[j, :n], model(x[j : j + 1, :n])[0][0], **TIGHT)


def test_variational_dropout_errors_are_clear():
    with pytest.raises(ValueError, match="variational dropout drops h_\\(t-1\\) inside the loop.*method='torch'"):
        LSTM(3, 4, 2, dropout=0.3, variational=True, method="torch")
    with pytest.raises(TypeError, match="variational"):
        GRU(3, 4, 2, dropout=0.3, variational="yes")
    with pytest.raises(ValueError, match="torch.nn has no variational dropout"):
        RNN(3, 4, 2, dropout=0.3, variational=True).to_torch()
    RNN(3, 4, 2, variational=True).to_torch()  # no dropout: nothing variational about it
