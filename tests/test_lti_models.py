"""The LTI SSM model (FFT convolution against its own recurrence and a direct sum), the recall
objectives, and the cost helpers of chapter 5."""

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from lstm_lab.cost import loglog_slope, median_times, saved_bytes, state_bytes
from lstm_lab.lti_models import LTISSM, LTIModel, query_accuracy, query_cross_entropy


def test_lti_ssm_convolution_matches_recurrence_and_direct_sum():
    torch.manual_seed(0)
    ssm = LTISSM(3, 4).double()
    x = torch.randn(2, 9, 3, dtype=torch.float64)
    y = ssm(x)
    assert_allclose(y.detach().numpy(), ssm.forward_recurrent(x).detach().numpy(), rtol=1e-9, atol=1e-10)
    # direct sum from the continuous parameters, in NumPy
    A = -np.exp(ssm.A_log.detach().numpy())
    delta = np.exp(ssm.log_delta.detach().numpy())[:, None]
    A_bar = np.exp(delta * A)
    B_bar = (A_bar - 1) / A * ssm.B.detach().numpy()
    C, D = ssm.C.detach().numpy(), ssm.D.detach().numpy()
    xn = x.numpy()
    expected = np.zeros_like(xn)
    for s in range(9):
        for k in range(s + 1):
            expected[:, s] += (C * A_bar**k * B_bar).sum(-1) * xn[:, s - k]
        expected[:, s] += D * xn[:, s]
    assert_allclose(y.detach().numpy(), expected, rtol=1e-9, atol=1e-10)


def test_lti_model_is_causal_and_trains_end_to_end():
    torch.manual_seed(1)
    model = LTIModel(7, d_model=8, d_state=4, n_layers=2)
    tokens = torch.randint(0, 7, (2, 6))
    logits = model(tokens)
    assert logits.shape == (2, 6, 7)
    changed = tokens.clone()
    changed[:, 3] = (changed[:, 3] + 1) % 7
    torch.testing.assert_close(model(changed)[:, :3], logits[:, :3], rtol=1e-5, atol=1e-6)
    assert (model(changed)[:, 3] - logits[:, 3]).abs().max() > 1e-6
    y = torch.randint(0, 7, (2, 2))
    loss = query_cross_entropy(model, tokens, y)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.blocks[0].ssm.A_log.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="integer"):
        model(torch.zeros(2, 3))


def test_query_objectives_read_the_last_positions():
    class Fixed(torch.nn.Module):
        def forward(self, x):
            logits = torch.nn.functional.one_hot(x, 5).float()  # predicts its own input token
            return logits, None

    x = torch.tensor([[0, 1, 2, 3], [4, 4, 1, 2]])
    assert query_accuracy(Fixed(), x, torch.tensor([[2, 3], [1, 0]])) == 0.75
    ce = query_cross_entropy(Fixed(), x, torch.tensor([[2, 3], [1, 2]]))
    expected = -torch.log_softmax(torch.tensor([1.0, 0, 0, 0, 0]), 0)[0]
    torch.testing.assert_close(ce, expected)
    with pytest.raises(ValueError, match="q <= t"):
        query_accuracy(Fixed(), x, torch.zeros(2, 5, dtype=torch.long))


def test_cost_helpers():
    assert loglog_slope([10, 20, 40], [3.0, 12.0, 48.0]) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="positive"):
        loglog_slope([1, 2], [0.0, 1.0])
    w = torch.randn(4, 4, requires_grad=True)
    x = torch.randn(3, 4)
    n = saved_bytes(lambda: torch.tanh(x @ w))  # saves x (for dW) and tanh's output (3, 4)
    assert n == 2 * 3 * 4 * 4
    assert state_bytes((torch.zeros(2, 3), [torch.zeros(5, dtype=torch.float64)], None)) == 24 + 40
    times = median_times({"a": lambda: None, "b": lambda: sum(range(100))}, rounds=3)
    assert set(times) == {"a", "b"} and all(v >= 0 for v in times.values())
