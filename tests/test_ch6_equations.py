"""Chapter 6, recurrent networks in practice: each labelled equation recomputed from the book's
formula in float64 with explicit loops, and compared with what lstm_lab's stacks and objectives
compute (both directions, the masked update and loss, truncated backpropagation, variational
dropout)."""

import pytest
import torch
from torch.testing import assert_close

from lstm_lab.experiments import CarriedStateLoss
from lstm_lab.nn import GRU, LSTM, RNN, SequenceModel
from lstm_lab.nn.base import dropout_mask, hold
from lstm_lab.train import sequence_cross_entropy

TIGHT = dict(rtol=1e-12, atol=1e-12)


def _rnn_loop(layer, x, h0, h_mask=None):
    """eq-rnn one step at a time, with the recurrent input times ``h_mask`` if given."""
    h, hs = h0, []
    for step in range(x.shape[1]):
        h_in = h if h_mask is None else h * h_mask
        h = torch.tanh(x[:, step] @ layer.W_xh + h_in @ layer.W_hh + layer.b_h)
        hs.append(h)
    return torch.stack(hs, dim=1), h


@pytest.mark.equation("eq-bidirectional")
def test_a_bidirectional_layer_is_two_loops_side_by_side():
    torch.manual_seed(0)
    model = RNN(3, 4, bidirectional=True, method="cell").double()
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    out, h_n = model(x)
    zeros = x.new_zeros(2, 4)
    forward, h_fwd = _rnn_loop(model.layers[0], x, zeros)  # left to right
    backward, h_bwd = _rnn_loop(model.reverse_layers[0], x.flip(1), zeros)  # right to left
    assert_close(out, torch.cat([forward, backward.flip(1)], dim=2), **TIGHT)  # [h_fwd_t, h_bwd_t]
    assert_close(h_n, torch.stack([h_fwd, h_bwd]), **TIGHT)
    # output t reads x_{t+1}: the reverse half moves when a later input moves, the forward half does not
    x2 = x.clone()
    x2[:, 3] += 1.0
    out2, _ = model(x2)
    assert torch.equal(out2[:, :3, :4], out[:, :3, :4])
    assert not torch.allclose(out2[:, :3, 4:], out[:, :3, 4:])


@pytest.mark.equation("eq-masked-update")
def test_the_masked_update_holds_the_state_at_padded_steps():
    torch.manual_seed(1)
    new, old = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    mask = torch.tensor([[True, False], [False, False], [True, True]])[..., None]  # (b, t, 1)
    for step in range(2):
        m = mask[:, step].double()  # 1 at a real step, 0 at padding
        assert_close(hold(mask, step, new, old), m * new + (1 - m) * old, **TIGHT)
    # the whole stack: a padded batch ends in the state of each sequence read alone
    model = GRU(2, 3, method="cell").double()
    x = torch.randn(3, 6, 2, dtype=torch.float64)
    lengths = [6, 2, 4]
    _, h_n = model(x, lengths=lengths)
    for j, n in enumerate(lengths):
        _, h_alone = model(x[j : j + 1, :n])
        assert_close(h_n[:, j], h_alone[:, 0], **TIGHT)


@pytest.mark.equation("eq-masked-loss")
def test_the_masked_loss_averages_over_real_steps_only():
    torch.manual_seed(2)
    model = SequenceModel(LSTM(4, 5), 6, vocab_size=7).double()
    x = torch.randint(0, 7, (3, 5))
    y = torch.randint(0, 6, (3, 5))
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]], dtype=torch.bool)
    loss = sequence_cross_entropy(model, x, y, mask)
    with torch.no_grad():
        logits, _ = model(x)
    total, count = 0.0, 0
    for j in range(3):
        for t in range(5):
            if mask[j, t]:
                p = torch.softmax(logits[j, t], dim=0)
                total += -float(torch.log(p[y[j, t]]))
                count += 1
    assert count == 10
    assert_close(loss.item(), total / count, **TIGHT)


@pytest.mark.equation("eq-tbptt")
def test_truncated_backpropagation_starts_each_chunk_from_a_constant_state():
    """The second chunk's loss and gradient equal those of a model started from the first chunk's
    final state taken as a constant; the forward pass is the one long stream."""
    torch.manual_seed(3)
    model = SequenceModel(LSTM(3, 4), 5, vocab_size=6).double()
    x = torch.randint(0, 6, (2, 8))
    y = torch.randint(0, 5, (2, 8))
    loss_fn = CarriedStateLoss()
    loss_fn(model, x[:, :4], y[:, :4], torch.tensor(True))
    model.zero_grad()
    second = loss_fn(model, x[:, 4:], y[:, 4:], torch.tensor(False))
    second.backward()
    ours = [p.grad.clone() for p in model.parameters()]

    with torch.no_grad():
        _, state = model(x[:, :4])  # the carried state, a constant
    model.zero_grad()
    out, _ = model(x[:, 4:], state)
    expected = torch.nn.functional.cross_entropy(out.flatten(0, 1), y[:, 4:].flatten())
    expected.backward()
    assert_close(second, expected, **TIGHT)
    for g, h in zip(ours, (p.grad for p in model.parameters())):
        assert_close(g, h, **TIGHT)
    with torch.no_grad():  # and the forward pass equals reading all 8 steps at once
        whole, _ = model(x)
        assert_close(out, whole[:, 4:], **TIGHT)


@pytest.mark.equation("eq-variational-dropout")
@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_variational_dropout_draws_its_masks_once_per_sequence(kind):
    """Two layers of a variational stack in training mode, recomputed with the same masks (drawn
    in the same order from the same seed): one mask on the layer input for all steps, one on
    h_{t-1}; then the masks kept at every step, checked with a single RNN layer by hand."""
    torch.manual_seed(4)
    model = {"RNN": RNN, "LSTM": LSTM, "GRU": GRU}[kind](3, 4, 2, dropout=0.5, variational=True).double()
    x = torch.randn(5, 6, 3, dtype=torch.float64)
    torch.manual_seed(9)
    out, _ = model(x)
    torch.manual_seed(9)  # the stack draws: h-mask layer 0, input mask layer 1, h-mask layer 1
    m_h0 = dropout_mask(x, (5, 4), 0.5)
    m_x1 = dropout_mask(x, (5, 1, 4), 0.5)
    m_h1 = dropout_mask(x, (5, 4), 0.5)
    below, _ = model.layers[0](x, *[x.new_zeros(5, 4)] * len(model.state_names), h_mask=m_h0)
    ref, _ = model.layers[1](below * m_x1, *[x.new_zeros(5, 4)] * len(model.state_names), h_mask=m_h1)
    assert_close(out, ref, **TIGHT)
    assert set(torch.unique(m_h0).tolist()) <= {0.0, 2.0}  # kept units scaled by 1 / (1 - p)
    if kind == "RNN":  # the cell itself, against eq-rnn with h_{t-1} * m_h at every step
        expected, _ = _rnn_loop(model.layers[0], x, x.new_zeros(5, 4), m_h0)
        assert_close(below, expected, **TIGHT)
    with torch.no_grad():  # in eval mode nothing is dropped: the plain stack
        model.eval()
        plain = {"RNN": RNN, "LSTM": LSTM, "GRU": GRU}[kind](3, 4, 2).double()
        plain.load_state_dict(model.state_dict())
        assert_close(model(x)[0], plain(x)[0], **TIGHT)
