"""Helpers for character-level language models: baselines, sampling, and a word check.

A character-level language model reads text one character at a time and predicts a
probability for every possible next character. This module holds what a chapter needs
around such a model, for a model that maps integer ids (b, t) to logits (b, t, k) and
takes and returns a recurrent state, as :class:`lstm_lab.nn.SequenceModel` does.

Symbols: ``b`` batch, ``t`` time steps, ``k`` the vocabulary size (characters).

- :func:`unigram_probs`, :func:`entropy`: the character frequencies of a text and the
  cross-entropy (in nats) a model reaches that knows nothing but them.
- :func:`sample_text`: let a trained model write, one character at a time.
- :func:`sample_unigram_text`: text drawn from the character frequencies alone, a baseline.
- :func:`words`, :func:`known_word_share`: what share of the words of a text are words of
  a reference text, a simple test of whether a model has picked up spelling.
"""

from __future__ import annotations

import re

import numpy as np
import torch

from lstm_lab.checks import check_int
from lstm_lab.runtime import eval_mode
from lstm_lab.tasks import CharVocab

__all__ = ["unigram_probs", "entropy", "sample_text", "sample_unigram_text", "words", "known_word_share"]

_WORD = re.compile(r"[a-z]+")


def unigram_probs(ids, k: int) -> np.ndarray:
    """How often each of ``k`` ids occurs in ``ids`` (n,), as probabilities: float64 (k,)."""
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.size == 0 or ids.dtype.kind not in "iu":
        raise ValueError(f"ids must be a non-empty integer array of shape (n,), got {ids.dtype} {ids.shape}")
    if ids.min() < 0 or ids.max() >= k:
        raise ValueError(f"ids must lie in [0, {k}), got values in [{ids.min()}, {ids.max()}]")
    counts = np.bincount(ids, minlength=k).astype(np.float64)  # (k,)
    return counts / counts.sum()


def entropy(p) -> float:
    """The entropy ``-sum p log p`` of a probability vector, in nats (0 log 0 = 0)."""
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 1 or np.any(p < 0) or not np.isclose(p.sum(), 1.0):
        raise ValueError("p must be a probability vector of shape (k,)")
    nz = p[p > 0]
    return float(-(nz * np.log(nz)).sum())


def _softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
    z = logits.astype(np.float64) / temperature
    z -= z.max()
    p = np.exp(z)
    return p / p.sum()


@torch.no_grad()
def sample_text(model, vocab: CharVocab, prompt: str, length: int, *, temperature: float = 1.0, seed: int = 0) -> str:
    """Continue ``prompt`` by ``length`` characters that ``model`` samples one at a time.

    The model reads the prompt, then repeatedly: turns its last logits into probabilities
    ``softmax(logits / temperature)``, draws the next character from them, and reads that
    character (carrying its recurrent state, so each step costs one step of the model).
    The draws come from ``numpy.random.default_rng(seed)``, so a call is repeatable.

    Parameters
    ----------
    model
        Maps ids (1, t) and a state (or None) to ``(logits (1, t, k), state)``.
    vocab
        The :class:`~lstm_lab.tasks.CharVocab` the model was trained with (``k = vocab.size``).
    prompt
        At least one character, all in ``vocab``.
    length
        Number of characters to generate, ``>= 0``.
    temperature
        ``> 0``; below 1 sharpens the distribution (safer, more repetitive text), above 1
        flattens it.
    seed
        Seed of the generator that draws the characters.

    Returns
    -------
    str
        The ``length`` generated characters, without the prompt.
    """
    if not isinstance(prompt, str) or not prompt:
        raise ValueError("prompt must be a non-empty str")
    length = check_int(length, "length", minimum=0)
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}")
    rng = np.random.default_rng(seed)
    device = next(model.parameters()).device
    ids = torch.as_tensor(vocab.encode(prompt), device=device)[None]  # (1, t)
    out = []
    with eval_mode(model):
        logits, state = model(ids)  # (1, t, k)
        for _ in range(length):
            p = _softmax(logits[0, -1].cpu().numpy(), temperature)  # (k,)
            nxt = int(rng.choice(vocab.size, p=p))
            out.append(nxt)
            logits, state = model(torch.tensor([[nxt]], device=device), state)  # (1, 1, k)
    return vocab.decode(np.array(out, dtype=np.int64))


def sample_unigram_text(vocab: CharVocab, probs, length: int, *, seed: int = 0) -> str:
    """``length`` characters drawn independently from ``probs`` (k,): text with no memory at all."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (vocab.size,):
        raise ValueError(f"probs must have shape ({vocab.size},), got {probs.shape}")
    rng = np.random.default_rng(seed)
    return vocab.decode(rng.choice(vocab.size, size=length, p=probs).astype(np.int64))


def words(text: str) -> list[str]:
    """The words of ``text``: maximal runs of the letters a-z, after lower-casing."""
    return _WORD.findall(text.lower())


def known_word_share(text: str, reference: str) -> float:
    """The share of the words of ``text`` that also occur as words in ``reference``.

    Every occurrence counts, so a text that repeats one real word scores high; read the
    number beside the text it came from. Returns 0.0 for a text without words.
    """
    found = words(text)
    if not found:
        return 0.0
    known = set(words(reference))
    return sum(w in known for w in found) / len(found)
