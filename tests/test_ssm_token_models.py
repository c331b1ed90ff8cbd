"""lstm_lab.nn.LTIBlock is the time-invariant SSM (against the recurrence), is causal, and has almost
the parameters of the Mamba block; lstm_lab.nn.MambaStack inside lstm_lab.nn.SequenceModel (the
SSM language models of chapters 7-9) and selective_deltas; the last-k objectives of lstm_lab.train."""

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from lstm_lab.nn import LTIBlock, MambaBlock, MambaStack, SequenceModel
from lstm_lab.nn.models import selective_deltas
from lstm_lab.nn.ssm import discretize_euler_b, lti_recurrence
from lstm_lab.train import last_k_accuracy, last_k_cross_entropy


def ssm_model(vocab_size, output_size, d_model=32, n_layers=2, **kw):
    """A token model: embedding -> MambaStack -> readout, as the chapters build it."""
    return SequenceModel(MambaStack(d_model, n_layers, **kw), output_size, vocab_size=vocab_size)


def test_lti_block_equals_the_recurrence():
    torch.manual_seed(0)
    m = LTIBlock(4, d_state=3, d_conv=2).double()
    u = torch.randn(2, 11, 4, dtype=torch.float64)
    x, z = m.in_proj(u).chunk(2, dim=-1)
    xc = F.silu(m.conv1d(F.pad(x.transpose(1, 2), (1, 0))).transpose(1, 2))
    A_bar, B_bar = discretize_euler_b(-torch.exp(m.A_log), m.B, F.softplus(m.dt_bias))
    y = lti_recurrence(xc, A_bar, B_bar, m.C, m.D)
    assert_close(m(u), m.out_proj(y * F.silu(z)), rtol=1e-10, atol=1e-10)


def test_lti_block_is_causal_and_comparable_in_size():
    torch.manual_seed(0)
    m = LTIBlock(8, d_state=4)
    u = torch.randn(1, 12, 8)
    u2 = u.clone()
    u2[:, 7:] += 1.0
    assert_close(m(u)[:, :7], m(u2)[:, :7])
    count = lambda mod: sum(p.numel() for p in mod.parameters())  # noqa: E731
    assert abs(count(m) - count(MambaBlock(8, d_state=4))) / count(MambaBlock(8, d_state=4)) < 0.1


@pytest.mark.parametrize("block", ["selective", "lti"])
def test_token_model_shapes_loss_and_accuracy(block):
    torch.manual_seed(0)
    model = ssm_model(6, 5, d_model=8, n_layers=2, block=block, d_state=4)
    x = torch.randint(0, 6, (3, 10))
    y = torch.randint(0, 5, (3, 4))
    logits, state = model(x)
    assert logits.shape == (3, 10, 5) and state is None
    loss = last_k_cross_entropy(model, x, y)
    assert loss.dim() == 0 and torch.isfinite(loss)
    acc = last_k_accuracy(model, x, y)
    pred = model(x)[0][:, -4:].argmax(-1)
    assert acc == pytest.approx((pred == y).float().mean().item())
    assert last_k_accuracy(model, x, y, batch_size=2) == pytest.approx(acc)  # chunks of 2, 1
    with pytest.raises(ValueError, match="batch_size"):
        last_k_accuracy(model, x, y, batch_size=0)
    assert model.training


def test_last_k_objectives_read_the_last_positions_of_any_model():
    class Fixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.unused = torch.nn.Parameter(torch.zeros(1))  # the objectives read the device from it

        def forward(self, x):
            logits = torch.nn.functional.one_hot(x, 5).float()  # predicts its own input token
            return logits, None

    x = torch.tensor([[0, 1, 2, 3], [4, 4, 1, 2]])
    assert last_k_accuracy(Fixed(), x, torch.tensor([[2, 3], [1, 0]])) == 0.75
    ce = last_k_cross_entropy(Fixed(), x, torch.tensor([[2, 3], [1, 2]]))
    expected = -torch.log_softmax(torch.tensor([1.0, 0, 0, 0, 0]), 0)[0]
    torch.testing.assert_close(ce, expected)
    with pytest.raises(ValueError, match="k <= t"):
        last_k_accuracy(Fixed(), x, torch.zeros(2, 5, dtype=torch.long))


    with pytest.raises(TypeError, match="torch tensors"):
        last_k_accuracy(Fixed(), x.numpy(), torch.zeros(2, 1, dtype=torch.long))
    ssm = ssm_model(5, 5, d_model=8, n_layers=1, block="lti")
    torch.testing.assert_close(
        last_k_cross_entropy(ssm, x, x[:, 2:]),
        torch.nn.functional.cross_entropy(ssm(x)[0][:, 2:].reshape(-1, 5), x[:, 2:].reshape(-1)),
    )


def test_errors():
    with pytest.raises(ValueError, match="block"):
        MambaStack(8, block="s4")
    with pytest.raises(TypeError, match="integer"):
        ssm_model(5, 4, d_model=8)(torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        ssm_model(5, 4, d_model=8)(torch.tensor([[0, 5]]))
    with pytest.raises(TypeError, match="no state"):
        MambaStack(8)(torch.randn(2, 3, 8), (torch.zeros(2, 8),))
    with pytest.raises(ValueError, match="d_model = 8"):
        MambaStack(8)(torch.randn(2, 3, 7))
    with pytest.raises(ValueError, match="dt_min"):
        LTIBlock(4, dt_min=0.2, dt_max=0.1)


def test_selective_deltas_match_the_block():
    torch.manual_seed(0)
    model = ssm_model(6, 5, d_model=8, n_layers=2, d_state=4)
    tokens = torch.randint(0, 6, (2, 7))
    seen = {}
    block = model.core.blocks[1]
    orig = block._ssm_inputs

    def spy(x):
        out = orig(x)
        seen["delta"] = out[0]
        return out

    block._ssm_inputs = spy
    model(tokens)
    assert_close(selective_deltas(model, tokens, layer=1), seen["delta"])
    with pytest.raises(ValueError, match="layer"):
        selective_deltas(model, tokens, layer=2)
    with pytest.raises(ValueError, match="selective"):
        selective_deltas(ssm_model(6, 5, d_model=8, block="lti"), tokens)
    with pytest.raises(TypeError, match="MambaStack"):
        selective_deltas(SequenceModel(torch.nn.GRU(8, 8, batch_first=True), 5, vocab_size=6), tokens)


@pytest.mark.parametrize("block", ["selective", "lti"])
def test_sequence_model_around_a_mamba_stack_by_hand(block):
    """embed -> (x + block(norm(x))) per layer -> norm_f -> head, spelled out; float features
    (no vocab_size) go straight into the stack."""
    torch.manual_seed(0)
    model = ssm_model(6, 5, d_model=8, n_layers=2, block=block, d_state=4).double()
    tokens = torch.randint(0, 6, (3, 9))
    x = model.embed(tokens)
    for norm, blk in zip(model.core.norms, model.core.blocks):
        x = x + blk(norm(x))
    expected = model.head(model.core.norm_f(x))
    logits, state = model(tokens)
    assert_close(logits, expected, rtol=1e-12, atol=1e-12)
    assert state is None
    features = SequenceModel(model.core, 5)
    features.head = model.head
    assert_close(features(model.embed(tokens))[0], expected, rtol=1e-12, atol=1e-12)
