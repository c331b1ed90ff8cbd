"""The shared training loop, and the measured gradient norms of lstm_lab.gradients."""

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from lstm_lab import scratch
from lstm_lab.gradients import state_gradient_norms
from lstm_lab.nn import GRU, LSTM, RNN, SequenceModel
from lstm_lab.train import History, train


def _regression_batch(rng):
    """y = sum of the inputs over time: a task any recurrent net learns quickly."""
    x = rng.normal(size=(16, 5, 2)).astype(np.float32)
    return x, x.sum(axis=(1, 2))[:, None]


def _loss(model, x, y):
    out, _ = model(x)
    return torch.nn.functional.mse_loss(out[:, -1], y)


def _model(seed=0):
    torch.manual_seed(seed)
    return SequenceModel(LSTM(2, 16), 1)


def test_training_reduces_the_loss_and_is_deterministic():
    h1 = train(_model(), _regression_batch, _loss, steps=150, lr=1e-2, device="cpu", seed=3)
    h2 = train(_model(), _regression_batch, _loss, steps=150, lr=1e-2, device="cpu", seed=3)
    assert isinstance(h1, History) and h1.steps == 150
    assert h1.losses == h2.losses
    assert np.mean(h1.losses[-20:]) < 0.2 * np.mean(h1.losses[:20])
    h3 = train(_model(), _regression_batch, _loss, steps=5, lr=1e-2, device="cpu", seed=4)
    assert h3.losses != h1.losses[:5]


def test_clipping_bounds_the_update_and_records_the_raw_norm():
    torch.manual_seed(0)
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    hist = train(model, _regression_batch, _loss, steps=1, lr=0.1, optimizer="sgd", clip_norm=1e-3, device="cpu")
    step = torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(model.parameters(), before)))
    assert hist.grad_norms[0] > 1e-3  # the recorded norm is the one before clipping
    assert step.item() == pytest.approx(0.1 * 1e-3, rel=1e-4)  # SGD moved by lr * clip_norm


def test_stop_when_and_smoothing():
    hist = train(_model(), _regression_batch, _loss, steps=100, device="cpu",
                 stop_when=lambda step, h: step == 9)
    assert hist.steps == 10 and hist.stopped_early
    assert_allclose(History(losses=[1.0, 3.0, 5.0]).smoothed(2), [1.0, 2.0, 4.0])


def test_progress_bar_shows_no_timings(capsys):
    train(_model(), _regression_batch, _loss, steps=20, device="cpu", progress=True)
    err = capsys.readouterr().err
    assert "20/20" in err
    for timing in ("it/s", "s/it", "<", "00:"):
        assert timing not in err


@pytest.mark.parametrize(
    "kwargs, message",
    [(dict(steps=0), "steps"), (dict(steps=5, lr=0), "lr"), (dict(steps=5, clip_norm=-1), "clip_norm"),
     (dict(steps=5, optimizer="lbfgs"), "optimizer")],
)
def test_bad_training_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        train(_model(), _regression_batch, _loss, device="cpu", **kwargs)


def test_sequence_model_with_tokens():
    model = SequenceModel(GRU(8, 12), 5, vocab_size=20)
    y, state = model(torch.randint(0, 20, (3, 7)))
    assert y.shape == (3, 7, 5) and state.shape == (1, 3, 12)
    with pytest.raises(TypeError, match="integer tensor of token ids"):
        model(torch.zeros(3, 7))


# ----------------------------------------------------------------------------- diagnostics
def _rnn_params(scale, h=6, d=2, seed=0):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(h, h)))
    return {"W_xh": np.zeros((d, h)), "W_hh": scale * q, "b_h": np.zeros(h)}


@pytest.mark.parametrize("scale", [0.5, 1.0, 1.5])
def test_rnn_gradient_scales_by_the_recurrent_matrix_per_step(scale):
    """At h = 0, tanh' = 1, so dL/dh_{T-k} = (W_hh^T)^k u and ||.|| = scale^k exactly."""
    x = np.zeros((3, 12, 2))
    norms = state_gradient_norms(_rnn_params(scale), x)
    assert_allclose(norms["h"], scale ** norms["lag"], rtol=1e-12)
    assert "c" not in norms


def test_lstm_cell_gradient_decays_with_the_forget_gate_and_not_without():
    d, h = 2, 4
    x = np.zeros((2, 10, d))
    rng = np.random.default_rng(0)
    zeros = {k: np.zeros_like(v) for k, v in scratch.init_lstm_params(d, h, rng=rng).items()}
    # all weights 0: f = i = o = 1/2, g = c = h = 0; dL/dc_T = u/2, then times f = 1/2 per step
    norms = state_gradient_norms(zeros, x)
    assert_allclose(norms["c"], 0.5 * 0.5 ** norms["lag"], rtol=1e-12)
    nfg = {k: np.zeros_like(v) for k, v in scratch.init_lstm_params(d, h, variant="NFG", rng=rng).items()}
    norms = state_gradient_norms(nfg, x, variant="NFG")
    assert_allclose(norms["c"], 0.5, rtol=1e-12)  # the constant error carousel


def test_diagnostics_accept_torch_models():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 3)
    for model in (RNN(3, 4), LSTM(3, 4, variant="CIFG"), GRU(3, 4, form="cho")):
        norms = state_gradient_norms(model.double(), x)
        assert norms["h"].shape == (6,) and norms["h"][0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="one-layer"):
        state_gradient_norms(LSTM(3, 4, num_layers=2), x)


def test_objectives_and_accuracy():
    from lstm_lab.train import last_step_accuracy, last_step_cross_entropy, last_step_mse, sequence_cross_entropy

    torch.manual_seed(0)
    model = SequenceModel(LSTM(3, 5), 4)
    x = torch.randn(6, 7, 3)
    out, _ = model(x)
    y = torch.randint(0, 4, (6,))
    assert_allclose(last_step_cross_entropy(model, x, y).item(),
                    torch.nn.functional.cross_entropy(out[:, -1], y).item(), rtol=1e-6)
    target = torch.randn(6, 4)
    assert_allclose(last_step_mse(model, x, target).item(), ((out[:, -1] - target) ** 2).mean().item(), rtol=1e-6)
    ys = torch.randint(0, 4, (6, 7))
    mask = torch.zeros(6, 7, dtype=torch.bool)
    mask[:, -1] = True
    assert_allclose(sequence_cross_entropy(model, x, ys, mask).item(),
                    torch.nn.functional.cross_entropy(out[:, -1], ys[:, -1]).item(), rtol=1e-6)
    acc = last_step_accuracy(model, x.numpy(), y.numpy())
    assert acc == (out[:, -1].argmax(-1) == y).float().mean().item()


def test_predict_restores_training_mode_when_the_model_raises():
    from lstm_lab.train import predict

    model = SequenceModel(LSTM(3, 5), 4)
    with pytest.raises(ValueError, match="input_size = 3"):
        predict(model, torch.randn(2, 4, 6))
    assert model.training
    predict(model.eval(), torch.randn(2, 4, 3))
    assert not model.training
