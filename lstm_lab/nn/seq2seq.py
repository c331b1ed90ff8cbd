"""Sequence to sequence: an LSTM encoder, an LSTM decoder, and optionally additive attention.

Glossary (book symbols -> code): b batch, t source steps, u target steps, v_s / v_t the source
and target vocabularies, e the embedding width, h the hidden units, a the attention width.
x (b, t) source tokens; y (b, u) target tokens, each sequence ending with EOS; the decoder reads
BOS, y_1, ..., y_{u-1} and predicts y_1, ..., y_u. ``bos`` and ``eos`` are ids of the target
vocabulary.

- The plain encoder-decoder (Sutskever, Vinyals & Le, 2014): the decoder starts from the
  encoder's final state and never sees the source again (eq-seq2seq-prob).
- With ``attention=True`` (Bahdanau, Cho & Bengio, 2015): before every step the decoder's state
  s_{i-1} scores every encoder state h_j (eq-additive-score); the softmax of the scores
  (eq-additive-weights) weighs the encoder states into a context c_i (eq-additive-context),
  which the decoder reads beside the previous token and the readout sees beside s_i.

Training uses teacher forcing (:meth:`Seq2Seq.forward` reads the true previous tokens; the
objective is :func:`lstm_lab.train.seq2seq_cross_entropy`); generation feeds the model its own
tokens: :func:`greedy_decode` picks the likeliest token at every step, :func:`beam_search`
keeps the ``beam_width`` likeliest prefixes (eq-beam-score); :func:`output_accuracy` scores
what they wrote.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lstm_lab.checks import check_flag, check_int, check_size
from lstm_lab.nn.attention import AdditiveAttention
from lstm_lab.nn.lstm import LSTM

__all__ = ["Seq2Seq", "Encoded", "greedy_decode", "beam_search", "output_accuracy"]


@dataclass(frozen=True)
class Encoded:
    """What the decoder needs of one batch of sources."""

    H: torch.Tensor  # (b, t, h): every encoder state
    keys: torch.Tensor | None  # (b, t, a): H W_h, computed once (attention only)
    state: tuple[torch.Tensor, torch.Tensor]  # (h_T, c_T), each (1, b, h): the decoder's start


class Seq2Seq(nn.Module):
    """An encoder-decoder of one-layer LSTMs, with or without additive attention.

    Parameters
    ----------
    source_vocab, target_vocab
        Sizes of the two vocabularies (the target's includes ``bos`` and ``eos``).
    embed_size, hidden_size
        e and h, shared by encoder and decoder.
    attention
        False: the plain encoder-decoder. True: additive attention with ``attention_size``
        units (default h).

    Modules: ``source_embed``, ``encoder`` (:class:`lstm_lab.nn.LSTM`), ``target_embed``,
    ``decoder`` (:class:`lstm_lab.nn.LSTM` reading e, or e + h with attention),
    ``attention`` (:class:`lstm_lab.nn.AdditiveAttention` or None), ``head`` (``nn.Linear``
    from h, or 2h with attention, to the target vocabulary).
    """

    def __init__(self, source_vocab: int, target_vocab: int, embed_size: int = 32, hidden_size: int = 64, *,
                 attention: bool = True, attention_size: int | None = None, bidirectional: bool = False):
        super().__init__()
        self.source_vocab = check_size(source_vocab, "source_vocab")
        self.target_vocab = check_size(target_vocab, "target_vocab")
        e, h = check_size(embed_size, "embed_size"), check_size(hidden_size, "hidden_size")
        self.embed_size, self.hidden_size = e, h
        self.uses_attention = check_flag(attention, "attention")
        self.bidirectional = check_flag(bidirectional, "bidirectional")
        k = 2 * h if bidirectional else h  # the size of an encoder state h_j
        self.source_embed = nn.Embedding(self.source_vocab, e)
        self.encoder = LSTM(e, h, bidirectional=self.bidirectional)
        self.target_embed = nn.Embedding(self.target_vocab, e)
        # With attention the decoder runs one step per call, and for one step the readable cell
        # is faster than PyTorch's kernel, whose setup is paid at every call.
        self.decoder = LSTM(e + k, h, method="cell") if attention else LSTM(e, h)
        a = h if attention_size is None else check_size(attention_size, "attention_size")
        self.attention = AdditiveAttention(h, k, a) if attention else None
        self.head = nn.Linear(h + k if attention else h, self.target_vocab)

    def _check_tokens(self, tokens, name: str, vocab: int) -> torch.Tensor:
        if not isinstance(tokens, torch.Tensor) or tokens.is_floating_point() or tokens.dtype == torch.bool:
            what = tokens.dtype if isinstance(tokens, torch.Tensor) else type(tokens).__name__
            raise TypeError(f"{name} must be an integer tensor of token ids, shape (b, steps), got {what}")
        if tokens.dim() != 2 or tokens.shape[1] == 0:
            raise ValueError(f"{name} must have shape (b, steps) with steps >= 1, got {tuple(tokens.shape)}")
        if int(tokens.min()) < 0 or int(tokens.max()) >= vocab:
            raise ValueError(f"{name} ids must lie in [0, {vocab})")
        return tokens.to(self.head.weight.device)

    def encode(self, x: torch.Tensor) -> Encoded:
        """Source tokens x (b, t) -> :class:`Encoded` (all encoder states and the final state)."""
        x = self._check_tokens(x, "x", self.source_vocab)
        H, state = self.encoder(self.source_embed(x))  # (b, t, k), ((1 or 2, b, h), (1 or 2, b, h))
        keys = self.attention.project_keys(H) if self.uses_attention else None  # (b, t, a)
        # the decoder starts where the forward direction ended (a reverse direction ends at step 1)
        state = tuple(s[:1] for s in state)  # (1, b, h) each
        return Encoded(H=H, keys=keys, state=state)

    def decode_step(self, y_prev: torch.Tensor, state, enc: Encoded):
        """One decoder step: previous tokens y_prev (b,) and state -> (logits (b, v_t), state, weights).

        ``weights`` (b, t) are the attention weights this step used (None without attention).
        """
        emb = self.target_embed(y_prev)  # (b, e)
        weights = None
        if self.uses_attention:
            s_prev = state[0][0]  # (b, h): the decoder's hidden state s_{i-1}
            context, weights = self.attention(s_prev, enc.H, keys=enc.keys)  # (b, h), (b, t)
            emb = torch.cat([emb, context], dim=-1)  # (b, e + h)
        out, state = self.decoder(emb[:, None], state)  # (b, 1, h)
        s = out[:, 0]  # (b, h)
        features = torch.cat([s, context], dim=-1) if self.uses_attention else s  # (b, 2h) or (b, h)
        return self.head(features), state, weights  # (b, v_t)

    def forward(self, x: torch.Tensor, y_in: torch.Tensor):
        """Teacher forcing: source x (b, t), decoder inputs y_in (b, u) (BOS, y_1, ..., y_{u-1})
        -> ``(logits (b, u, v_t), weights (b, u, t) or None)``."""
        enc = self.encode(x)
        y_in = self._check_tokens(y_in, "y_in", self.target_vocab)
        if not self.uses_attention:  # the decoder reads only tokens: one call runs every step
            out, _ = self.decoder(self.target_embed(y_in), enc.state)  # (b, u, h)
            return self.head(out), None
        state, logits, weights = enc.state, [], []
        for i in range(y_in.shape[1]):
            step_logits, state, step_weights = self.decode_step(y_in[:, i], state, enc)
            logits.append(step_logits)
            weights.append(step_weights)
        return torch.stack(logits, dim=1), torch.stack(weights, dim=1)  # (b, u, v_t), (b, u, t)


def _check_decode_args(model, bos: int, eos: int, max_len: int) -> int:
    check_int(bos, "bos", minimum=0, maximum=model.target_vocab - 1)
    check_int(eos, "eos", minimum=0, maximum=model.target_vocab - 1)
    return check_size(max_len, "max_len")


@torch.no_grad()
def greedy_decode(model: Seq2Seq, x: torch.Tensor, *, bos: int, eos: int, max_len: int):
    """Generate from every source of x (b, t), always taking the likeliest token.

    Returns ``(tokens (b, u), weights (b, u, t) or None)``, u <= max_len: each row stops at its
    first EOS (included); after it the row holds EOS. Runs in eval mode.
    """
    max_len = _check_decode_args(model, bos, eos, max_len)
    was_training = model.training
    model.eval()
    try:
        enc = model.encode(x)
        b = enc.H.shape[0]
        y_prev = torch.full((b,), bos, dtype=torch.long, device=enc.H.device)
        done = torch.zeros(b, dtype=torch.bool, device=enc.H.device)
        state, tokens, weights = enc.state, [], []
        for _ in range(max_len):
            logits, state, w = model.decode_step(y_prev, state, enc)  # (b, v_t)
            y_prev = torch.where(done, eos, logits.argmax(dim=-1))  # (b,)
            tokens.append(y_prev)
            weights.append(w)
            done = done | (y_prev == eos)
            if bool(done.all()):
                break
    finally:
        model.train(was_training)
    return torch.stack(tokens, dim=1), (torch.stack(weights, dim=1) if model.uses_attention else None)


@torch.no_grad()
def beam_search(model: Seq2Seq, x: torch.Tensor, *, bos: int, eos: int, max_len: int, beam_width: int = 4):
    """The ``beam_width`` likeliest outputs for one source x (1, t) that beam search finds.

    At every step each of the kept prefixes is extended by every token and scored by its
    log-probability (eq-beam-score). Of the ``2 * beam_width`` best extensions, those that end
    with EOS and rank among the first ``beam_width`` are finished outputs; the best
    ``beam_width`` of the others are the prefixes kept for the next step (the rule of common
    translation toolkits: the beam stays full while outputs finish). The search stops when
    ``beam_width`` outputs are finished and no kept prefix can still overtake them (a score
    only falls as a prefix grows), or after ``max_len`` steps. With ``beam_width=1`` it is
    :func:`greedy_decode`; with a beam wide enough to keep every prefix it is an exhaustive
    search.

    Returns a list of ``(tokens, score)``, best first: tokens a 1-D LongTensor ending with EOS
    (or ``max_len`` long if no EOS came), score the sum of its tokens' log-probabilities.
    """
    max_len = _check_decode_args(model, bos, eos, max_len)
    k = check_size(beam_width, "beam_width")
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[0] != 1:
        raise ValueError(f"beam_search takes one source, x of shape (1, t), got {getattr(x, 'shape', type(x))}")
    was_training = model.training
    model.eval()
    try:
        enc = model.encode(x)
        device = enc.H.device
        prefixes = torch.full((1, 0), bos, dtype=torch.long, device=device)  # (n, i): the kept prefixes
        scores = torch.zeros(1, dtype=enc.H.dtype, device=device)  # (n,)
        y_prev = torch.full((1,), bos, dtype=torch.long, device=device)
        state, finished = enc.state, []
        for _ in range(max_len):
            n = prefixes.shape[0]
            beams = Encoded(H=enc.H.expand(n, -1, -1),
                            keys=None if enc.keys is None else enc.keys.expand(n, -1, -1), state=state)
            logits, state, _ = model.decode_step(y_prev, state, beams)  # (n, v_t)
            # eq-beam-score: the score of a prefix is the sum of its tokens' log-probabilities
            candidates = scores[:, None] + F.log_softmax(logits, dim=-1)  # (n, v_t)
            top, flat = candidates.flatten().topk(min(2 * k, candidates.numel()))  # best first
            rows, tokens = flat // model.target_vocab, flat % model.target_vocab  # (2k,), (2k,)
            extended = torch.cat([prefixes[rows], tokens[:, None]], dim=1)  # (2k, i + 1)
            ends = tokens == eos
            done = ends & (torch.arange(len(tokens), device=device) < k)  # EOS among the first k
            finished += [(p, s) for p, s in zip(extended[done], top[done].tolist())]
            keep = (~ends).nonzero()[:k, 0]  # the k best extensions that go on, best first
            if len(keep) == 0:
                break
            if len(finished) >= k and top[keep[0]].item() <= sorted(s for _, s in finished)[-k]:
                break  # no kept prefix can overtake the k-th best finished output
            prefixes, scores, y_prev = extended[keep], top[keep], tokens[keep]
            state = tuple(s[:, rows[keep]] for s in state)  # (1, k, h) each
        else:
            finished += [(p, s) for p, s in zip(prefixes, scores.tolist())]  # out of steps: unfinished
    finally:
        model.train(was_training)
    finished.sort(key=lambda pair: pair[1], reverse=True)
    return finished[:k]


def output_accuracy(tokens: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """How much of the targets y (b, u) the generated tokens (b, u') got right: (sentences, words).

    The first number is the share of rows that equal y exactly, EOS included; the second the
    share of the b * u target positions whose token is right. A row cut short (u' < u) is wrong
    at the positions it lacks; tokens after position u are ignored, as they follow the EOS that
    y ends with.
    """
    y = torch.as_tensor(y)
    tokens = torch.as_tensor(tokens).to(y.device)
    if tokens.dim() != 2 or y.dim() != 2 or tokens.shape[0] != y.shape[0]:
        raise ValueError(f"tokens (b, u') and y (b, u) must share b, got {tuple(tokens.shape)} and {tuple(y.shape)}")
    u = y.shape[1]
    if tokens.shape[1] < u:  # stopped early: the missing positions are wrong
        tokens = torch.cat([tokens, tokens.new_full((tokens.shape[0], u - tokens.shape[1]), -1)], dim=1)
    right = tokens[:, :u] == y  # (b, u)
    return right.all(dim=1).float().mean().item(), right.float().mean().item()
