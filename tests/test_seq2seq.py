"""Chapter 5, sequence to sequence: additive attention (NumPy against PyTorch, and against the equations
written out), the encoder-decoder's fast paths against its step-by-step reference, greedy
decoding against beam search, beam search against an exhaustive search, and the toy
translation task."""

import itertools
import math

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose
from torch.testing import assert_close

from lstm_lab.nn.attention import AdditiveAttention, masked_softmax
from lstm_lab.nn.seq2seq import Seq2Seq, beam_search, greedy_decode, output_accuracy
from lstm_lab.scratch import attention as np_attention
from lstm_lab.tasks import toy_translation, translation_text
from lstm_lab.train import seq2seq_cross_entropy, teacher_forced_accuracy

TIGHT = dict(rtol=1e-12, atol=1e-12)


def _attention(seed=0, q=5, k=4, a=3):
    torch.manual_seed(seed)
    return AdditiveAttention(q, k, a).double()


def _params(att):
    return {n: getattr(att, n).detach().numpy() for n in ("W_s", "W_h", "v")}


# ----------------------------------------------------------------------------- additive attention
@pytest.mark.equation("eq-additive-score", "eq-additive-weights", "eq-additive-context")
@pytest.mark.parametrize("with_mask", [False, True])
def test_additive_attention_numpy_equals_torch_and_the_equations(with_mask):
    att = _attention()
    rng = np.random.default_rng(1)
    s, H = rng.normal(size=(3, 5)), rng.normal(size=(3, 6, 4))
    mask = np.ones((3, 6), dtype=bool)
    if with_mask:
        mask[0, 4:] = False
        mask[2, 1:] = False
    c_np, w_np = np_attention.additive_attention(s, H, _params(att), mask if with_mask else None)
    c_t, w_t = att(torch.from_numpy(s), torch.from_numpy(H), torch.from_numpy(mask) if with_mask else None)
    assert_allclose(c_t.detach().numpy(), c_np, **TIGHT)
    assert_allclose(w_t.detach().numpy(), w_np, **TIGHT)
    p = _params(att)
    for b in range(3):  # the equations, one pair (i, j) at a time
        e = [p["v"] @ np.tanh(s[b] @ p["W_s"] + H[b, j] @ p["W_h"]) for j in range(6)]  # eq-additive-score
        allowed = [j for j in range(6) if mask[b, j]]
        z = sum(math.exp(e[j]) for j in allowed)
        a = [math.exp(e[j]) / z if j in allowed else 0.0 for j in range(6)]  # eq-additive-weights
        c = sum(a[j] * H[b, j] for j in range(6))  # eq-additive-context
        assert_allclose(w_np[b], a, **TIGHT)
        assert_allclose(c_np[b], c, **TIGHT)
    assert_allclose(w_np.sum(axis=1), 1.0, **TIGHT)  # the weights sum to one over the allowed steps
    assert np.all(w_np[~mask] == 0.0)


def test_additive_attention_gradients_and_precomputed_keys():
    att = _attention(seed=2)
    s = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    H = torch.randn(2, 7, 4, dtype=torch.float64, requires_grad=True)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[1, 5:] = False
    assert torch.autograd.gradcheck(lambda s, H: att(s, H, mask), (s, H))
    keys = att.project_keys(H)
    for got, want in zip(att(s, H, mask, keys=keys), att(s, H, mask)):
        assert_close(got, want, **TIGHT)


def test_masked_softmax_numpy_and_torch_agree_and_empty_rows_are_zero():
    scores = np.random.default_rng(3).normal(size=(4, 5)) * 30  # large scores: the max is subtracted
    allowed = np.array([[1, 1, 1, 1, 1], [1, 0, 1, 0, 1], [0, 0, 0, 0, 0], [0, 0, 1, 0, 0]], dtype=bool)
    w_np = np_attention.masked_softmax(scores, allowed)
    w_t = masked_softmax(torch.from_numpy(scores), torch.from_numpy(allowed))
    assert_allclose(w_t.numpy(), w_np, **TIGHT)
    assert_allclose(w_np[[0, 1, 3]].sum(axis=1), 1.0, **TIGHT)
    assert np.all(w_np[2] == 0) and w_np[3, 2] == 1.0
    assert_allclose(np_attention.masked_softmax(scores), torch.softmax(torch.from_numpy(scores), -1).numpy(),
                    **TIGHT)


def test_additive_attention_bad_inputs():
    att = _attention()
    s, H = torch.zeros(2, 5, dtype=torch.float64), torch.zeros(2, 3, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="query_size"):
        att(torch.zeros(2, 6, dtype=torch.float64), H)
    with pytest.raises(ValueError, match="key_size = 4"):
        att(s, torch.zeros(2, 3, 5, dtype=torch.float64))
    with pytest.raises(TypeError, match="mask must be a boolean"):
        att(s, H, torch.ones(2, 3))
    with pytest.raises(ValueError, match="mask must have shape"):
        att(s, H, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="dtype"):
        att(s.float(), H)
    with pytest.raises(TypeError, match="mask must be a boolean"):
        np_attention.additive_attention(s.numpy(), H.numpy(), _params(att), np.ones((2, 3)))
    with pytest.raises(ValueError, match="W_s"):
        np_attention.additive_attention(np.zeros((2, 6)), H.numpy(), _params(att))


# ----------------------------------------------------------------------------- the encoder-decoder
K = 5  # source words; target ids: K words, BOS = K, EOS = K + 1


def _model(attention, seed=0):
    torch.manual_seed(seed)
    return Seq2Seq(K, K + 2, 6, 8, attention=attention).double()


def _batch(t=4, b=3, seed=0):
    x, y_in, y = toy_translation(batch_size=b, seq_len=t, num_symbols=K, seed=seed)
    return torch.from_numpy(x), torch.from_numpy(y_in), torch.from_numpy(y)


@pytest.mark.parametrize("attention", [False, True])
def test_teacher_forcing_equals_the_step_by_step_decoder(attention):
    """forward (one decoder call without attention) = decode_step after decode_step."""
    model = _model(attention)
    x, y_in, _ = _batch()
    logits, weights = model(x, y_in)
    assert logits.shape == (3, 5, K + 2)
    enc = model.encode(x)
    state, steps, step_weights = enc.state, [], []
    for i in range(y_in.shape[1]):
        out, state, w = model.decode_step(y_in[:, i], state, enc)
        steps.append(out)
        step_weights.append(w)
    assert_close(logits, torch.stack(steps, dim=1), **TIGHT)
    if attention:
        assert weights.shape == (3, 5, 4)
        assert_close(weights, torch.stack(step_weights, dim=1), **TIGHT)
        assert_close(weights.sum(-1), torch.ones(3, 5, dtype=torch.float64), **TIGHT)
    else:
        assert weights is None


@pytest.mark.parametrize("attention", [False, True])
def test_the_decoder_never_reads_ahead(attention):
    model = _model(attention, seed=1)
    x, y_in, _ = _batch(t=5)
    logits, _ = model(x, y_in)
    changed = y_in.clone()
    changed[:, 3:] = (changed[:, 3:] + 1) % K
    logits2, _ = model(x, changed)
    assert_close(logits2[:, :3], logits[:, :3], rtol=0, atol=0)


def test_the_plain_decoder_sees_the_source_only_through_the_final_state():
    model = _model(False, seed=2)
    x, y_in, _ = _batch(t=4)
    enc = model.encode(x)
    logits, _ = model(x, y_in)
    out, _ = model.decoder(model.target_embed(y_in), enc.state)
    assert_close(logits, model.head(out), **TIGHT)


@pytest.mark.equation("eq-seq2seq-prob")
def test_cross_entropy_is_minus_the_mean_log_probability():
    model = _model(True, seed=3)
    x, y_in, y = _batch()
    logits, _ = model(x, y_in)
    logp = torch.log_softmax(logits, -1).gather(-1, y[..., None])[..., 0]  # (b, u)
    # eq-seq2seq-prob: log p(y | x) = sum_i log p(y_i | y_<i, x)
    assert_close(seq2seq_cross_entropy(model, x, y_in, y), -logp.mean(), **TIGHT)


def _sequence_log_prob(model, x, tokens):
    """log p(tokens | x) under teacher forcing, tokens a 1-D LongTensor."""
    y_in = torch.cat([torch.tensor([K]), tokens[:-1]])[None]
    logits, _ = model(x, y_in)
    return torch.log_softmax(logits[0], -1).gather(-1, tokens[:, None]).sum().item()


@pytest.mark.parametrize("attention", [False, True])
def test_beam_width_one_is_greedy_decoding(attention):
    model = _model(attention, seed=4)
    x, _, _ = _batch(t=5, b=4, seed=5)
    greedy, _ = greedy_decode(model, x, bos=K, eos=K + 1, max_len=8)
    for r in range(4):
        [(tokens, score)] = beam_search(model, x[r : r + 1], bos=K, eos=K + 1, max_len=8, beam_width=1)
        row = greedy[r]
        end = int((row == K + 1).nonzero()[0]) + 1 if (row == K + 1).any() else len(row)
        assert torch.equal(tokens, row[:end])
        assert score == pytest.approx(_sequence_log_prob(model, x[r : r + 1], tokens), abs=1e-10)


def _exhaustive(model, x, max_len):
    """Every output up to max_len tokens (ended by EOS, or cut at max_len), with its log-probability."""
    out = []
    for n in range(1, max_len + 1):
        for words in itertools.product(range(K + 2), repeat=n):
            if (K + 1) in words[:-1]:
                continue  # EOS only last (an untrained model may well output BOS: it is a token too)
            if words[-1] != K + 1 and n < max_len:
                continue  # unfinished outputs count only at max_len
            tokens = torch.tensor(words)
            out.append((tokens, _sequence_log_prob(model, x, tokens)))
    return sorted(out, key=lambda pair: pair[1], reverse=True)


@pytest.mark.parametrize("attention", [False, True])
def test_a_wide_beam_is_an_exhaustive_search(attention):
    model = _model(attention, seed=6)
    x, _, _ = _batch(t=3, b=1, seed=7)
    best = _exhaustive(model, x, max_len=3)
    found = beam_search(model, x, bos=K, eos=K + 1, max_len=3, beam_width=200)
    for (tokens, score), (want_tokens, want_score) in zip(found[:5], best[:5]):
        assert torch.equal(tokens, want_tokens)
        assert score == pytest.approx(want_score, abs=1e-10)


@pytest.mark.equation("eq-beam-score")
@pytest.mark.parametrize("attention", [False, True])
def test_beam_scores_are_the_sequences_log_probabilities_in_order(attention):
    model = _model(attention, seed=8)
    x, _, _ = _batch(t=4, b=1, seed=9)
    found = beam_search(model, x, bos=K, eos=K + 1, max_len=6, beam_width=3)
    assert 1 <= len(found) <= 3
    scores = [s for _, s in found]
    assert scores == sorted(scores, reverse=True)
    for tokens, score in found:
        # eq-beam-score: the sum of the tokens' log-probabilities
        assert score == pytest.approx(_sequence_log_prob(model, x, tokens), abs=1e-10)


def test_decoding_leaves_the_training_mode_and_checks_its_arguments():
    model = _model(True)
    x, y_in, _ = _batch()
    model.train()
    greedy_decode(model, x, bos=K, eos=K + 1, max_len=3)
    beam_search(model, x[:1], bos=K, eos=K + 1, max_len=3)
    assert model.training
    with pytest.raises(ValueError, match="one source"):
        beam_search(model, x, bos=K, eos=K + 1, max_len=3)
    with pytest.raises(ValueError, match="bos"):
        greedy_decode(model, x, bos=K + 2, eos=K + 1, max_len=3)
    with pytest.raises(ValueError, match="max_len"):
        greedy_decode(model, x, bos=K, eos=K + 1, max_len=0)
    with pytest.raises(TypeError, match="integer tensor"):
        model(x.double(), y_in)
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        model(x + K, y_in)
    with pytest.raises(TypeError, match="attention must be True or False"):
        Seq2Seq(K, K + 2, attention=1)


def test_greedy_rows_hold_eos_after_they_finish():
    model = _model(False, seed=10)
    x, _, _ = _batch(t=3, b=5, seed=11)
    tokens, weights = greedy_decode(model, x, bos=K, eos=K + 1, max_len=7)
    assert weights is None and tokens.shape[0] == 5 and tokens.shape[1] <= 7
    for row in tokens:
        hits = (row == K + 1).nonzero()
        if len(hits):
            assert torch.all(row[int(hits[0]) :] == K + 1)


# ----------------------------------------------------------------------------- the task
def test_output_accuracy_counts_sentences_and_words():
    y = torch.tensor([[1, 2, 9], [3, 4, 9]])
    assert output_accuracy(torch.tensor([[1, 2, 9], [3, 5, 9]]), y) == (0.5, pytest.approx(5 / 6))
    assert output_accuracy(torch.tensor([[1, 9], [3, 4]]), y) == (0.0, pytest.approx(3 / 6))  # cut short
    assert output_accuracy(torch.tensor([[1, 2, 9, 9], [3, 4, 9, 9]]), y) == (1.0, 1.0)  # EOS padding
    with pytest.raises(ValueError, match="share b"):
        output_accuracy(torch.zeros(3, 2), y)


def test_toy_translation_swaps_neighbours_and_maps_each_word():
    x, y_in, y = toy_translation(batch_size=50, seq_len=7, num_symbols=10, seed=0)
    assert all(len(set(row)) == 7 for row in x)  # no word twice in a sentence
    assert x.shape == (50, 7) and y_in.shape == y.shape == (50, 8)
    assert np.all(y[:, -1] == 11) and np.all(y_in[:, 0] == 10)
    assert np.array_equal(y_in[:, 1:], y[:, :-1])
    order = [1, 0, 3, 2, 5, 4, 6]
    assert np.array_equal(y[:, :-1], 9 - x[:, order])
    again = toy_translation(batch_size=50, seq_len=7, num_symbols=10, rng=np.random.default_rng(0))
    assert all(np.array_equal(a, b) for a, b in zip((x, y_in, y), again))
    assert translation_text([0, 1, 2], side="source", num_symbols=10) == "a b c"
    assert translation_text([9 - 1, 9 - 0, 11, 3], side="target", num_symbols=10) == "Y Z >"
    assert translation_text([10], side="target", num_symbols=10) == "<"
    assert translation_text([25, 0, 27], side="target") == "Z A >"  # 26 words: a -> Z, ..., z -> A
    with pytest.raises(ValueError, match="seq_len must be at most num_symbols = 10"):
        toy_translation(batch_size=2, seq_len=11, num_symbols=10, seed=0)
    with pytest.raises(ValueError, match="num_symbols"):
        toy_translation(batch_size=2, seq_len=3, num_symbols=27, seed=0)
    with pytest.raises(ValueError, match="side"):
        translation_text([0], side="french")


@pytest.fixture
def one_thread():
    """Tiny matrices: one thread is faster, and does not fight the other test lane for the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_short_training_run_learns_the_task_with_attention(one_thread):
    """A smoke test of the pieces together: 150 steps on three-word sentences."""
    from lstm_lab.train import train

    torch.manual_seed(0)
    model = Seq2Seq(6, 8, 16, 32, attention=True)

    def batch(rng):
        return toy_translation(batch_size=32, seq_len=3, num_symbols=6, rng=rng)

    history = train(model, batch, seq2seq_cross_entropy, steps=150, lr=0.01, device="cpu", seed=0)
    assert np.mean(history.losses[-10:]) < 0.5 * np.mean(history.losses[:10])
    x, _, y = (torch.from_numpy(a) for a in toy_translation(batch_size=200, seq_len=3, num_symbols=6, seed=1))
    tokens, _ = greedy_decode(model, x, bos=6, eos=7, max_len=4)
    sentences, words = output_accuracy(tokens, y)
    assert sentences > 0.5 and words >= sentences
    y_in = torch.cat([torch.full((200, 1), 6), y[:, :-1]], dim=1)
    assert teacher_forced_accuracy(model, x, y_in, y) >= words - 0.05
