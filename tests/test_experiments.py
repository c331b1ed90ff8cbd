"""lstm_lab.experiments: seed ensembles train exactly like separate runs; the odyssey, Reber
and time-to-solve helpers measure what they say."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from numpy.testing import assert_allclose  # noqa: E402

from lstm_lab import scratch, seed_everything  # noqa: E402
from lstm_lab.experiments import (  # noqa: E402
    CarriedStateLoss,
    MemberLosses,
    ReberChunks,
    SeedEnsemble,
    StreamChunks,
    cell_state_norms,
    long_range_accuracy,
    run_odyssey,
    solve_times,
    stacked_batches,
    steps_to_solve,
    stop_when_solved,
    stream_losses,
)
from lstm_lab.nn import LSTM, SequenceModel  # noqa: E402
from lstm_lab.plotting import plot_odyssey  # noqa: E402
from lstm_lab.tasks import adding_problem, continual_embedded_reber, temporal_order, token_streams  # noqa: E402
from lstm_lab.train import History, last_step_cross_entropy, last_step_mse, train  # noqa: E402  # noqa: E402


def small(variant="peephole"):
    return SequenceModel(LSTM(8, 6, variant=variant, method="cell"), 4)


def test_ensemble_members_are_the_seeded_models():
    ens = SeedEnsemble(small, seeds=(3, 5))
    assert ens.size == 2 and ens.seeds == (3, 5)
    for j, seed in enumerate((3, 5)):
        seed_everything(seed)
        alone = small()
        member = ens.member(j)
        for (n, p), (m, q) in zip(alone.named_parameters(), member.named_parameters()):
            assert n == m
            assert torch.equal(p, q)
    # the template is not a submodule: the stacked parameters are the only ones
    assert sum(p.numel() for p in ens.parameters()) == 2 * sum(p.numel() for p in small().parameters())


def test_ensemble_forward_runs_each_member_on_its_own_batch():
    ens = SeedEnsemble(small, seeds=(0, 1, 2))
    x = torch.randn(3, 4, 5, 8)  # (s, b, t, d)
    out = ens(x)
    assert out.shape == (3, 4, 5, 4)
    for j in range(3):
        with torch.no_grad():
            assert_allclose(out[j].detach().numpy(), ens.member(j)(x[j])[0].numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="one batch per member"):
        ens(torch.randn(2, 4, 5, 8))


@pytest.mark.parametrize("method", ["auto", "cell"])
def test_the_docstring_ensemble_runs_with_the_default_impl(method):
    """SeedEnsemble's own example, ``lambda: SequenceModel(LSTM(8, 16), 4)``: under vmap an
    "auto" LSTM runs the cell (aten::lstm has no batching rule), the same function."""
    ens = SeedEnsemble(lambda: SequenceModel(LSTM(8, 16, method=method), 4), seeds=(0, 1))
    x = torch.randn(2, 3, 5, 8)
    out = ens(x)
    for j in range(2):
        with torch.no_grad():
            torch.testing.assert_close(out[j], ens.member(j)(x[j])[0], rtol=1e-5, atol=1e-6)
    assert ens.member(0).core.layers[0].method == ("torch" if method == "auto" else "cell")


def test_an_explicit_torch_kernel_under_vmap_gets_a_clear_error():
    ens = SeedEnsemble(lambda: SequenceModel(LSTM(8, 16, method="torch"), 4), seeds=(0, 1))
    with pytest.raises(ValueError, match="method='torch' cannot run under torch.func.vmap"):
        ens(torch.randn(2, 3, 5, 8))


def test_an_ensemble_with_dropout_follows_its_own_mode():
    """The template that vmap runs is not a submodule, so it must be put in the ensemble's mode:
    in eval mode no dropout (each member equals itself alone, repeatably), in training mode each
    member draws its own masks (vmap's randomness="different")."""
    make = lambda: SequenceModel(LSTM(3, 8, 2, dropout=0.5), 2)
    ens = SeedEnsemble(make, seeds=(0, 1)).eval()
    x = torch.randn(2, 4, 5, 3)
    out = ens(x)
    assert torch.equal(out, ens(x))
    for j in range(2):
        with torch.no_grad():
            torch.testing.assert_close(out[j], ens.member(j)(x[j])[0])
    ens.train()
    x_same = torch.randn(1, 4, 5, 3).expand(2, 4, 5, 3)  # one batch for both members
    torch.manual_seed(0)
    first = ens(x_same)
    torch.manual_seed(0)
    assert torch.equal(first, ens(x_same))  # the masks come from torch's generator
    assert not torch.allclose(first, ens.eval()(x_same))  # dropout acted in training mode
    twin = SeedEnsemble(make, seeds=(0, 0)).train()
    out = twin(x_same)  # two identical members: only their masks differ
    assert not torch.allclose(out[0], out[1])


def test_training_an_ensemble_equals_separate_runs():
    """Adam on the sum of the members' losses = Adam on each member alone, same batches."""
    seeds, steps = (0, 7), 4
    make_batch = lambda r: temporal_order(batch_size=8, seq_len=10, rng=r)
    ens = SeedEnsemble(small, seeds).double()
    loss_fn = MemberLosses(last_step_cross_entropy)
    train(ens, stacked_batches(make_batch, 2), loss_fn, steps=steps, lr=1e-2, seed=11, device="cpu")
    assert loss_fn.losses.shape == (2, steps)

    rng = np.random.default_rng(11)  # train(seed=11) draws its batches from this stream
    batches = [[make_batch(rng) for _ in seeds] for _ in range(steps)]
    for j, seed in enumerate(seeds):
        seed_everything(seed)
        alone = small().double()
        opt = torch.optim.Adam(alone.parameters(), lr=1e-2)
        for step in range(steps):
            x, y = batches[step][j]
            loss = last_step_cross_entropy(alone, torch.from_numpy(x).double(), torch.from_numpy(y))
            assert_allclose(loss.item(), loss_fn.losses[j, step], rtol=1e-10)
            opt.zero_grad()
            loss.backward()
            opt.step()
        for p, q in zip(alone.parameters(), ens.member(j).parameters()):
            assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-9, atol=1e-12)


def test_member_losses_apply_a_train_objective_to_each_member_and_stacked_batches():
    make = stacked_batches(lambda r: adding_problem(batch_size=4, seq_len=6, rng=r), 3)
    x, y = make(np.random.default_rng(0))
    assert x.shape == (3, 4, 6, 2) and y.shape == (3, 4, 1)
    assert not np.array_equal(x[0], x[1])
    assert MemberLosses(last_step_mse).losses.shape == (0, 0)
    ens = SeedEnsemble(lambda: SequenceModel(LSTM(2, 3), 1), (0, 1, 2)).double()
    loss_fn = MemberLosses(last_step_mse)
    x, y = torch.from_numpy(x).double(), torch.from_numpy(y).double()
    total = loss_fn(ens, x, y)
    alone = [last_step_mse(ens.member(j), x[j], y[j]).item() for j in range(3)]
    assert_allclose(loss_fn.losses[:, 0], alone, rtol=1e-12)
    assert_allclose(total.item(), sum(alone), rtol=1e-12)


@pytest.fixture(scope="module")
def odyssey():
    x_val, y_val = temporal_order(batch_size=16, seq_len=10, seed=1)

    def evaluate(model):
        with torch.no_grad():
            logits = model(torch.from_numpy(x_val))[0][:, -1]
        return {"acc": (logits.argmax(-1).numpy() == y_val).mean(), "one": 1.0}

    return run_odyssey(small, lambda r: temporal_order(batch_size=8, seq_len=10, rng=r), last_step_cross_entropy,
                       evaluate, variants=("peephole", "CIFG"), seeds=(0, 1), steps=3, device="cpu")


def test_run_odyssey_measures_every_variant_and_seed(odyssey):
    assert odyssey.variants == ("peephole", "CIFG") and odyssey.seeds == (0, 1)
    assert odyssey.train_losses["CIFG"].shape == (2, 3)
    assert odyssey.num_params["peephole"] == sum(p.numel() for p in small().parameters())
    assert odyssey.num_params["CIFG"] < odyssey.num_params["peephole"]
    assert set(odyssey.values("acc")) == {"peephole", "CIFG"}
    assert odyssey.values("one")["CIFG"].tolist() == [1.0, 1.0]
    with pytest.raises(KeyError, match="measured: acc, one"):
        odyssey.values("loss")


def test_odyssey_table_and_plot(odyssey):
    odyssey.metrics["CIFG"]["acc"] = np.array([0.5, 0.7])
    odyssey.metrics["peephole"]["acc"] = np.array([0.9, 1.0])
    table = odyssey.table("acc", decimals=2, lower_is_better=False).splitlines()
    assert table[0] == "acc over seeds 0, 1"
    assert table[2].split()[:3] == ["peephole", str(odyssey.num_params["peephole"]), "0.95"]
    assert table[3].split()[-2:] == ["0.50", "0.70"]
    assert odyssey.table("acc").splitlines()[2].startswith("CIFG")  # lower is better by default
    fig = plot_odyssey(odyssey, "acc", reference="peephole", log=True, title="t")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["peephole", "CIFG"]
    assert_allclose(ax.collections[0].get_offsets()[:, 1], [0.9, 1.0])
    assert ax.get_yscale() == "log"
    plt.close(fig)


class Oracle(torch.nn.Module):
    """Outputs fixed logits, whatever the input: for testing the metrics."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.nn.Parameter(torch.as_tensor(logits, dtype=torch.float32))

    def forward(self, x, state=None):
        return self.logits, state


def test_long_range_accuracy_scores_only_the_long_range_steps():
    stream = continual_embedded_reber(batch_size=2, length=60, seed=0)
    perfect = np.eye(7)[stream["y"]]  # (b, t, 7) one-hot of the targets
    assert long_range_accuracy(Oracle(perfect), stream) == 1.0
    wrong_there = perfect.copy()
    wrong_there[stream["long_range"]] = np.roll(wrong_there[stream["long_range"]], 1, axis=-1)
    assert long_range_accuracy(Oracle(wrong_there), stream) == 0.0
    wrong_elsewhere = np.roll(perfect, 1, axis=-1)
    wrong_elsewhere[stream["long_range"]] = perfect[stream["long_range"]]
    assert long_range_accuracy(Oracle(wrong_elsewhere), stream) == 1.0


def test_cell_state_norms_use_the_numpy_lstm():
    seed_everything(0)
    model = SequenceModel(LSTM(7, 5, variant="NFG", method="cell"), 7)
    x = continual_embedded_reber(batch_size=3, length=400, seed=1)["x"]
    norms = cell_state_norms(model, x)
    _, cache = scratch.lstm_forward(x.astype(float), model.core.scratch_params(), variant="NFG")
    assert norms.shape == (400,)
    assert_allclose(norms, np.linalg.norm(cache["cs"], axis=-1).mean(0))
    with torch.no_grad():
        c_torch = model.core(torch.from_numpy(x))[1][1][0]  # final c (b, h)
    assert_allclose(np.linalg.norm(c_torch.numpy(), axis=-1).mean(), norms[-1], rtol=1e-4)


def test_reber_chunks_serve_one_stream_in_order_then_a_new_one():
    make = ReberChunks(batch_size=2, chunk=5, chunks_per_stream=3)
    rng = np.random.default_rng(4)
    parts = [make(rng) for _ in range(4)]
    assert [bool(f) for _, _, f in parts] == [True, False, False, True]
    whole = continual_embedded_reber(batch_size=2, length=15, rng=np.random.default_rng(4))
    assert_allclose(np.concatenate([p[0] for p in parts[:3]], axis=1), whole["x"])
    assert_allclose(np.concatenate([p[1] for p in parts[:3]], axis=1), whole["y"])
    assert parts[3][0].shape == (2, 5, 7)


def test_token_streams_cut_a_text_into_parallel_consecutive_streams():
    ids = np.arange(23)
    x, y = token_streams(ids, batch_size=4)
    assert x.shape == y.shape == (4, 5) and x.dtype == np.int64
    assert_allclose(x[1], np.arange(5, 10))
    assert_allclose(y, x + 1)  # the next id at every step, across the streams' borders too
    with pytest.raises(ValueError, match="batch_size"):
        token_streams(ids, batch_size=23)
    with pytest.raises(ValueError, match="ids must be integers"):
        token_streams(np.zeros((2, 3), dtype=int), batch_size=1)


def test_stream_chunks_walk_the_streams_and_start_again():
    x, y = token_streams(np.arange(41), batch_size=2)  # (2, 20)
    make = StreamChunks(x, y, chunk=6)  # 3 whole chunks per pass, the last 2 steps never served
    rng = np.random.default_rng(0)
    parts = [make(rng) for _ in range(4)]
    assert [bool(f) for _, _, f in parts] == [True, False, False, True]
    assert_allclose(np.concatenate([p[0] for p in parts[:3]], axis=1), x[:, :18])
    assert_allclose(parts[3][1], y[:, :6])
    with pytest.raises(ValueError, match="chunk"):
        StreamChunks(x, y, chunk=21)
    with pytest.raises(ValueError, match="y \\(b, n\\)"):
        StreamChunks(x, y[:, :5], chunk=5)


def test_stream_losses_carry_the_state_or_restart_each_chunk():
    seed_everything(0)
    model = SequenceModel(LSTM(4, 6), 5, vocab_size=5).double()
    x, y = token_streams(np.random.default_rng(1).integers(0, 5, size=30), batch_size=2)  # (2, 14)
    carried = stream_losses(model, x, y, chunk=4)
    reset = stream_losses(model, x, y, chunk=4, carry=False)
    assert carried.shape == reset.shape == (2, 12)  # 3 chunks of 4; the last 2 steps left out
    with torch.no_grad():
        whole, _ = model(torch.from_numpy(x))
        first, _ = model(torch.from_numpy(x[:, 4:8]))
    expected = torch.nn.functional.cross_entropy(whole.transpose(1, 2), torch.from_numpy(y), reduction="none")
    assert_allclose(carried, expected[:, :12].numpy(), rtol=1e-12)
    expected = torch.nn.functional.cross_entropy(first.transpose(1, 2), torch.from_numpy(y[:, 4:8]), reduction="none")
    assert_allclose(reset[:, 4:8], expected.numpy(), rtol=1e-12)
    assert_allclose(reset[:, :4], carried[:, :4])  # the first chunk starts from zeros either way
    assert model.training  # eval mode only for the call


def test_carried_state_loss_sees_one_long_stream():
    seed_everything(0)
    model = SequenceModel(LSTM(7, 4), 7)
    make = ReberChunks(batch_size=2, chunk=6, chunks_per_stream=2)
    rng = np.random.default_rng(0)
    (x1, y1, f1), (x2, y2, f2) = make(rng), make(rng)
    loss_fn = CarriedStateLoss()
    tensors = [torch.as_tensor(a) for a in (x1, y1, f1, x2, y2, f2)]
    loss_fn(model, *tensors[:3])
    second = loss_fn(model, *tensors[3:])
    with torch.no_grad():
        out, _ = model(torch.from_numpy(np.concatenate([x1, x2], axis=1)))
        expected = torch.nn.functional.cross_entropy(out[:, 6:].flatten(0, 1), torch.from_numpy(y2).flatten())
    assert_allclose(second.item(), expected.item(), rtol=1e-6)
    assert all(not s.requires_grad for s in loss_fn.state)
    reset = CarriedStateLoss(carry=False)
    reset(model, *tensors[:3])
    with torch.no_grad():
        out, _ = model(torch.from_numpy(x2))  # every chunk from zeros
        expected = torch.nn.functional.cross_entropy(out.flatten(0, 1), torch.from_numpy(y2).flatten())
    assert_allclose(reset(model, *tensors[3:]).item(), expected.item(), rtol=1e-6)
    with pytest.raises(TypeError, match="carry"):
        CarriedStateLoss(carry="no")
    loss_fn(model, *tensors[:2], torch.tensor(True))  # fresh: starts from zeros again
    with torch.no_grad():
        h_alone = model(torch.from_numpy(x1))[1][0]
    assert_allclose(loss_fn.state[0].numpy(), h_alone.numpy())


def test_steps_to_solve_and_stop_when_solved_agree():
    losses = [1.0] * 10 + [0.0] * 10
    assert steps_to_solve(losses, threshold=0.5, window=4) == 13  # mean of steps 10..13 is 0.25
    assert steps_to_solve(losses, threshold=0.1, window=4) == 14
    assert steps_to_solve(losses, threshold=-1.0, window=4) is None
    assert steps_to_solve([0.0], threshold=1.0, window=2) is None
    history = History(losses=losses)
    assert steps_to_solve(history, threshold=0.5, window=4) == 13
    stop = stop_when_solved(threshold=0.5, window=4)
    first = next(n for n in range(1, 21) if stop(n - 1, History(losses=losses[:n])))
    assert first == 13


def test_solve_times_stops_at_the_solving_step():
    make = lambda: SequenceModel(LSTM(2, 4), 1)
    batch = lambda r: adding_problem(batch_size=4, seq_len=5, rng=r)
    from lstm_lab.train import last_step_mse as mse

    easy = solve_times(make, batch, mse, seeds=(0, 1), max_steps=30, threshold=10.0, window=3, device="cpu")
    assert easy == [3, 3]  # any loss is below 10: solved as soon as the window is full
    hard = solve_times(make, batch, mse, seeds=(0,), max_steps=5, threshold=0.0, window=3, device="cpu")
    assert hard == [None]
