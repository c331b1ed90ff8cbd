"""lstm_lab.lm: baselines, sampling and the known-word share of character-level models."""

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from lstm_lab.lm import entropy, known_word_share, sample_text, sample_unigram_text, unigram_probs, words
from lstm_lab.nn import RNN, SequenceModel
from lstm_lab.tasks import CharVocab, load_corpus

VOCAB = CharVocab("ab c.")


def _model(seed=0, k=VOCAB.size):
    torch.manual_seed(seed)
    return SequenceModel(RNN(4, 8), k, vocab_size=k)


class _Fixed(torch.nn.Module):
    """A 'model' whose logits are always the same: it always predicts ``probs``."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.nn.Parameter(torch.as_tensor(logits, dtype=torch.float32))
        self.calls = 0

    def forward(self, x, state=None):
        self.calls += 1
        return self.logits.expand(x.shape[0], x.shape[1], -1), state


def test_unigram_probs_and_entropy():
    p = unigram_probs(np.array([0, 0, 1, 3]), 4)
    assert_allclose(p, [0.5, 0.25, 0.0, 0.25])
    assert_allclose(entropy(p), -(0.5 * np.log(0.5) + 2 * 0.25 * np.log(0.25)))
    assert entropy(np.ones(8) / 8) == pytest.approx(np.log(8))
    assert entropy([1.0, 0.0]) == 0.0
    with pytest.raises(ValueError, match="lie in"):
        unigram_probs(np.array([0, 4]), 4)
    with pytest.raises(ValueError, match="probability vector"):
        entropy([0.5, 0.6])


def test_sample_text_is_repeatable_and_uses_the_vocabulary():
    model = _model()
    a = sample_text(model, VOCAB, "ab", 40, seed=3)
    b = sample_text(model, VOCAB, "ab", 40, seed=3)
    c = sample_text(model, VOCAB, "ab", 40, seed=4)
    assert a == b and a != c
    assert len(a) == 40 and set(a) <= set(VOCAB.chars)
    assert sample_text(model, VOCAB, "a", 0) == ""
    assert model.training, "sample_text restores the model's mode"


def test_sample_text_follows_the_model_and_temperature():
    # a model that always gives 'c' the highest logit
    logits = np.zeros(VOCAB.size)
    logits[VOCAB.encode("c")[0]] = 3.0
    model = _Fixed(logits)
    cold = sample_text(model, VOCAB, "a", 200, temperature=0.05)
    assert cold == "c" * 200
    assert model.calls == 201, "one call for the prompt, then one per generated character"
    hot = sample_text(model, VOCAB, "a", 4000, temperature=1.0)
    p = np.exp(logits) / np.exp(logits).sum()
    assert hot.count("c") / 4000 == pytest.approx(p[VOCAB.encode("c")[0]], abs=0.03)


def test_sample_text_carries_the_state():
    """Sampling step by step with the state equals reading the whole text at once."""
    model = _model(1)
    text = "ab" + sample_text(model, VOCAB, "ab", 10, temperature=0.01)
    # with a near-zero temperature each character is the argmax after the text before it
    with torch.no_grad():
        logits, _ = model(torch.as_tensor(VOCAB.encode(text))[None])
    greedy = VOCAB.decode(logits[0, 1:-1].argmax(-1).numpy())
    assert greedy == text[2:]


def test_sample_text_checks_its_arguments():
    model = _model()
    with pytest.raises(ValueError, match="prompt"):
        sample_text(model, VOCAB, "", 5)
    with pytest.raises(ValueError, match="length"):
        sample_text(model, VOCAB, "a", -1)
    with pytest.raises(ValueError, match="temperature"):
        sample_text(model, VOCAB, "a", 5, temperature=0.0)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        sample_text(model, VOCAB, "z", 5)


def test_unigram_text_follows_the_frequencies():
    p = np.array([0.7, 0.3, 0.0, 0.0, 0.0])
    text = sample_unigram_text(VOCAB, p, 5000, seed=0)
    assert set(text) == {"a", "b"}
    assert text.count("a") / 5000 == pytest.approx(0.7, abs=0.03)
    assert text == sample_unigram_text(VOCAB, p, 5000, seed=0)


def test_words_and_known_word_share():
    assert words("The cat, the DOG's 2 bones.") == ["the", "cat", "the", "dog", "s", "bones"]
    ref = "the cat sat on the mat"
    assert known_word_share("The cat sat!", ref) == 1.0
    assert known_word_share("the dog sat on xyz", ref) == pytest.approx(3 / 5)
    assert known_word_share("... 42", ref) == 0.0
    corpus = load_corpus()
    assert known_word_share(corpus[:2000], corpus) == 1.0


class _Breaks(_Fixed):
    """Raises on its ``fail_at``-th call, like a model fed a bad state."""

    def __init__(self, logits, fail_at):
        super().__init__(logits)
        self.fail_at = fail_at

    def forward(self, x, state=None):
        if self.calls + 1 == self.fail_at:
            raise RuntimeError("broken on purpose")
        return super().forward(x, state)


@pytest.mark.parametrize("fail_at", [1, 3])
def test_sample_text_restores_training_mode_when_it_raises(fail_at):
    model = _Breaks(np.zeros(VOCAB.size), fail_at)
    with pytest.raises(RuntimeError, match="broken on purpose"):
        sample_text(model, VOCAB, "ab", 5)
    assert model.training
    model.fail_at = None
    model.eval()
    sample_text(model, VOCAB, "ab", 1)
    assert not model.training, "a model in eval mode stays in eval mode"
