"""Synthetic recurrent tasks: the benchmarks that show what a gated memory can do.

Every generator is keyword-only, and the arguments they share mean the same everywhere:

- ``batch_size``: the number of sequences ``b``, at least 1.
- ``seed``, ``rng``: the randomness comes from one :class:`numpy.random.Generator`; pass
  exactly one of ``seed=`` (an int) or ``rng=`` (a generator). ``seed=s`` gives the same
  result as ``rng=numpy.random.default_rng(s)``; a shared ``rng`` advances, so two calls
  with it give two different batches.
- ``dtype``: where a task returns float arrays, ``np.float32`` (default) or ``np.float64``.
  It never changes what is drawn, only the type of the result.

Results are NumPy arrays, batch first; :func:`as_tensors` turns them into PyTorch tensors.

Symbols:

- ``b``  batch size (number of sequences).
- ``t``  time steps of a sequence.
- ``k``  number of symbols of a task's vocabulary (the width of a one-hot input).

Tasks:

- :func:`adding_problem`: add the two marked numbers of a long sequence.
- :func:`temporal_order`: classify the order of two relevant symbols among distractors.
- :func:`remember_first`: recall the first symbol after ``gap`` distractors.
- :func:`copy_task`: reproduce a sequence of symbols after a gap of blanks.
- :func:`reber_string`, :func:`embedded_reber_string`, :func:`reber_legal_next`,
  :func:`embedded_reber_batch`, :func:`continual_embedded_reber`: the (embedded) Reber grammar.
- :func:`load_corpus`, :class:`CharVocab`, :func:`char_lm_batch`, :func:`token_streams`: a
  small English corpus for character-level language models, as random windows or as parallel
  streams read from start to end.
- :func:`selective_copying`: reproduce the data tokens scattered among noise, in order.
- :func:`associative_recall`: multi-query associative recall over key-value pairs.
- :func:`running_parity`: the parity of the bits read so far, at every step (state tracking).
- :func:`toy_translation`, :func:`translation_text`: translate a string of symbols word by
  word, with neighbouring words swapped (sequence to sequence).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources

import numpy as np
import torch

from lstm_lab.checks import check_int
from lstm_lab.runtime import get_device

__all__ = [
    "ADDING_BASELINE_MSE",
    "TEMPORAL_ORDER_SYMBOLS",
    "REBER_SYMBOLS",
    "adding_problem",
    "temporal_order",
    "remember_first",
    "copy_task",
    "reber_string",
    "embedded_reber_string",
    "reber_legal_next",
    "embedded_reber_batch",
    "continual_embedded_reber",
    "load_corpus",
    "CharVocab",
    "char_lm_batch",
    "token_streams",
    "as_tensors",
    "selective_copying",
    "associative_recall",
    "running_parity",
    "toy_translation",
    "translation_text",
]

ADDING_BASELINE_MSE = 1.0 / 6.0
"""MSE of always predicting 1.0 on :func:`adding_problem`: the variance of a sum of two U(0, 1)."""

TEMPORAL_ORDER_SYMBOLS = ("a", "b", "c", "d", "X", "Y", "B", "E")
"""The 8 symbols of :func:`temporal_order`; a symbol's index is its one-hot position."""

REBER_SYMBOLS = "BTPSXVE"
"""The 7 symbols of the Reber grammar; a symbol's index is its one-hot position."""

IGNORE_INDEX = -100
"""Target at padded steps of :func:`embedded_reber_batch` (PyTorch's cross-entropy default)."""


# ----------------------------------------------------------------------------- checks
def _generator(seed, rng) -> np.random.Generator:
    """The one generator a task draws from: a fresh one from ``seed`` or the caller's ``rng``."""
    if (seed is None) == (rng is None):
        raise ValueError("pass exactly one of seed= or rng=")
    if rng is not None:
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        return rng
    return np.random.default_rng(check_int(seed, "seed", minimum=0))


def _float_dtype(dtype) -> np.dtype:
    try:
        dt = None if dtype is None else np.dtype(dtype)  # np.dtype(None) would be float64
    except TypeError:
        dt = None
    if dt is None or dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be np.float32 or np.float64, got {dtype!r}")
    return dt


def _one_hot(ids: np.ndarray, k: int, dtype) -> np.ndarray:
    """One-hot encode integer ``ids`` of any shape into shape ``ids.shape + (k,)``."""
    return np.eye(k, dtype=dtype)[ids]


# ----------------------------------------------------------------------------- adding problem
def adding_problem(*, batch_size, seq_len, seed=None, rng=None, dtype=np.float32):
    """The adding problem in the form of Le, Jaitly & Hinton (2015), the one later work uses.

    (Hochreiter & Schmidhuber's (1997) Experiment 4, the original, draws values from [-1, 1],
    marks two steps of the first half and asks for a rescaled sum.)

    Each step carries two numbers: a value drawn uniformly from [0, 1) and a marker.
    Exactly one step of the first half ``[0, t // 2)`` and exactly one step of the second
    half ``[t // 2, t)`` are marked with 1.0; every other marker is 0.0. The target is the
    sum of the two marked values. Always predicting 1.0 scores :data:`ADDING_BASELINE_MSE`
    = 1/6, the variance of the sum of two independent U(0, 1).

    Parameters
    ----------
    batch_size, seed, rng, dtype
        As for every task: see the module docstring.
    seq_len
        ``t >= 2``.

    Returns
    -------
    x : numpy.ndarray, shape ``(b, t, 2)``
        Channel 0 the values, channel 1 the markers.
    y : numpy.ndarray, shape ``(b, 1)``
        The sum of the two marked values.
    """
    b = check_int(batch_size, "batch_size", minimum=1)
    t = check_int(seq_len, "seq_len", minimum=2)
    dtype = _float_dtype(dtype)
    rng = _generator(seed, rng)
    values = rng.random((b, t))  # (b, t), float64 draws whatever the dtype
    first = rng.integers(0, t // 2, size=b)  # (b,) in the first half
    second = rng.integers(t // 2, t, size=b)  # (b,) in the second half
    rows = np.arange(b)
    x = np.zeros((b, t, 2), dtype=dtype)  # (b, t, 2)
    x[..., 0] = values
    x[rows, first, 1] = 1.0
    x[rows, second, 1] = 1.0
    y = (x[rows, first, 0] + x[rows, second, 0])[:, None]  # (b, 1), the sum of what x shows
    return x, y


# ----------------------------------------------------------------------------- temporal order
def _round_half_up(numerator: int, denominator: int) -> int:
    """``round(numerator / denominator)`` with halves rounded up, in exact integer arithmetic."""
    return (2 * numerator + denominator) // (2 * denominator)


def temporal_order(*, batch_size, seq_len, seed=None, rng=None, dtype=np.float32):
    """The temporal order problem of Hochreiter & Schmidhuber (1997), their Experiment 6a.

    A sequence over :data:`TEMPORAL_ORDER_SYMBOLS` ``("a", "b", "c", "d", "X", "Y", "B", "E")``
    starts with ``B`` and ends with ``E``. One relevant symbol, ``X`` or ``Y`` with
    probability 1/2 each, stands at a step ``t1`` drawn uniformly from
    ``[round(0.1 t), round(0.2 t)]`` and another at ``t2`` drawn uniformly from
    ``[round(0.5 t), round(0.6 t)]`` (both inclusive; halves round up). Every other step
    holds a distractor drawn uniformly from ``a, b, c, d``. The class is the order in which
    the relevant symbols appear: 0 ``XX``, 1 ``XY``, 2 ``YX``, 3 ``YY``.

    Parameters
    ----------
    batch_size, seed, rng, dtype
        As for every task: see the module docstring.
    seq_len
        ``t >= 10``.

    Returns
    -------
    x : numpy.ndarray, shape ``(b, t, 8)``
        One-hot symbols, in the order of :data:`TEMPORAL_ORDER_SYMBOLS`.
    y : numpy.ndarray of int64, shape ``(b,)``
        The class in ``{0, 1, 2, 3}``.
    """
    b = check_int(batch_size, "batch_size", minimum=1)
    t = check_int(seq_len, "seq_len", minimum=10)
    dtype = _float_dtype(dtype)
    rng = _generator(seed, rng)
    k = len(TEMPORAL_ORDER_SYMBOLS)
    sym = {s: i for i, s in enumerate(TEMPORAL_ORDER_SYMBOLS)}
    ids = rng.integers(0, 4, size=(b, t))  # (b, t) distractors a..d
    ids[:, 0] = sym["B"]
    ids[:, -1] = sym["E"]
    t1 = rng.integers(_round_half_up(t, 10), _round_half_up(2 * t, 10) + 1, size=b)  # (b,)
    t2 = rng.integers(_round_half_up(5 * t, 10), _round_half_up(6 * t, 10) + 1, size=b)  # (b,)
    first_is_y = rng.integers(0, 2, size=b)  # (b,) 0: X, 1: Y
    second_is_y = rng.integers(0, 2, size=b)
    rows = np.arange(b)
    ids[rows, t1] = sym["X"] + first_is_y
    ids[rows, t2] = sym["X"] + second_is_y
    y = (2 * first_is_y + second_is_y).astype(np.int64)  # XX 0, XY 1, YX 2, YY 3
    return _one_hot(ids, k, dtype), y


# ----------------------------------------------------------------------------- remember the first
def remember_first(*, batch_size, gap, num_symbols=4, seed=None, rng=None, dtype=np.float32):
    """Remember the first token: recall the symbol at step 0 after ``gap`` distractors.

    Step 0 shows a symbol ``s`` drawn uniformly from ``[0, k)``; steps ``1..gap`` show
    distractors drawn uniformly from the same ``k`` symbols. The target ``s`` is read out at
    the last step. Guessing scores an accuracy of ``1 / k``.

    Parameters
    ----------
    batch_size, seed, rng, dtype
        As for every task: see the module docstring.
    gap
        Number of distractor steps, ``>= 0``; the sequence has ``t = gap + 1`` steps.
    num_symbols
        ``k >= 2``.

    Returns
    -------
    x : numpy.ndarray, shape ``(b, gap + 1, k)``
        One-hot symbols.
    y : numpy.ndarray of int64, shape ``(b,)``
        The first symbol.
    """
    b = check_int(batch_size, "batch_size", minimum=1)
    gap = check_int(gap, "gap", minimum=0)
    k = check_int(num_symbols, "num_symbols", minimum=2)
    dtype = _float_dtype(dtype)
    rng = _generator(seed, rng)
    ids = rng.integers(0, k, size=(b, gap + 1))  # (b, t)
    y = ids[:, 0].astype(np.int64)  # (b,)
    return _one_hot(ids, k, dtype), y


# ----------------------------------------------------------------------------- copy memory
def copy_task(*, batch_size, length, gap, num_symbols=8, seed=None, rng=None, dtype=np.float32):
    """The copy-memory task: reproduce ``length`` symbols after a gap of blanks.

    The vocabulary has ``k + 2`` symbols: data symbols ``0..k-1``, the blank ``k`` and the
    delimiter ``k + 1``. A sequence has ``t = length + gap + length`` steps. The input is
    ``length`` data symbols drawn uniformly, then ``gap - 1`` blanks, then one delimiter
    (the cue to start copying), then ``length`` blanks. The target is the blank everywhere
    except the last ``length`` steps, which hold the data symbols in order.

    Parameters
    ----------
    batch_size, seed, rng, dtype
        As for every task: see the module docstring.
    length
        Number of symbols to copy, ``>= 1``.
    gap
        ``>= 1``: steps from the end of the data to the end of the delimiter.
    num_symbols
        ``k >= 2`` data symbols.

    Returns
    -------
    x : numpy.ndarray, shape ``(b, t, k + 2)``
        One-hot input symbols.
    y : numpy.ndarray of int64, shape ``(b, t)``
        Target symbols.
    mask : numpy.ndarray of bool, shape ``(b, t)``
        True at the last ``length`` steps, where the copy is scored.
    """
    b = check_int(batch_size, "batch_size", minimum=1)
    n = check_int(length, "length", minimum=1)
    gap = check_int(gap, "gap", minimum=1)
    k = check_int(num_symbols, "num_symbols", minimum=2)
    dtype = _float_dtype(dtype)
    rng = _generator(seed, rng)
    blank, delimiter = k, k + 1
    t = n + gap + n
    data = rng.integers(0, k, size=(b, n))  # (b, length)
    ids = np.full((b, t), blank, dtype=np.int64)  # (b, t)
    ids[:, :n] = data
    ids[:, n + gap - 1] = delimiter
    y = np.full((b, t), blank, dtype=np.int64)  # (b, t)
    y[:, t - n :] = data
    mask = np.zeros((b, t), dtype=bool)
    mask[:, t - n :] = True
    return _one_hot(ids, k + 2, dtype), y, mask


# ----------------------------------------------------------------------------- Reber grammar
# node -> ((symbol, next node), ...); None is the end of the string. Each branch has p = 1/2.
_REBER_GRAPH = {
    0: (("B", 1),),
    1: (("T", 2), ("P", 3)),
    2: (("S", 2), ("X", 4)),
    3: (("T", 3), ("V", 5)),
    4: (("X", 3), ("S", 6)),
    5: (("P", 4), ("V", 6)),
    6: (("E", None),),
}
_REBER_INDEX = {s: i for i, s in enumerate(REBER_SYMBOLS)}


def reber_string(*, seed=None, rng=None) -> str:
    """One string of the Reber grammar (Reber 1967), e.g. ``"BTSSXXTVVE"``.

    A walk through the grammar's graph from its start node, taking each of the two
    branches of a node with probability 1/2, until ``E``.
    """
    rng = _generator(seed, rng)
    node, out = 0, []
    while node is not None:
        branches = _REBER_GRAPH[node]
        symbol, node = branches[int(rng.integers(0, len(branches)))]
        out.append(symbol)
    return "".join(out)


def embedded_reber_string(*, seed=None, rng=None) -> str:
    """One embedded Reber string: ``"B" + c + reber_string() + c + "E"``, ``c`` in {T, P}.

    To predict the penultimate symbol a model must remember ``c``, the second symbol,
    across the whole inner string (Hochreiter & Schmidhuber 1997, Experiment 1).
    """
    rng = _generator(seed, rng)
    c = "TP"[int(rng.integers(0, 2))]
    return "B" + c + reber_string(rng=rng) + c + "E"


def _reber_walk(string: str, start: int) -> tuple[list[str], int]:
    """Walk a Reber string from ``string[start]``: the legal next symbols after each symbol
    of it (an empty string after its ``E``) and the index just past its ``E``."""
    node, legal, i = 0, [], start
    while node is not None:
        branches = dict(_REBER_GRAPH[node])
        if i >= len(string):
            raise ValueError(
                f"string {string!r} is not in the grammar: it ends after {string[start:]!r}, "
                f"expected one of {''.join(branches)} next"
            )
        if string[i] not in branches:
            raise ValueError(
                f"string {string!r} is not in the grammar: {string[i]!r} at position {i} "
                f"cannot follow {string[:i]!r}; expected one of {''.join(branches)}"
            )
        node = branches[string[i]]
        legal.append("" if node is None else "".join(s for s, _ in _REBER_GRAPH[node]))
        i += 1
    return legal, i


def reber_legal_next(string: str, embedded: bool) -> np.ndarray:
    """Which symbols may legally follow each prefix of a (embedded) Reber string.

    Parameters
    ----------
    string
        One whole Reber string (``embedded=False``) or embedded Reber string
        (``embedded=True``), over :data:`REBER_SYMBOLS`.
    embedded
        Whether ``string`` is an embedded Reber string.

    Returns
    -------
    numpy.ndarray of bool, shape ``(len(string), 7)``
        Row ``j`` marks the symbols that may come right after ``string[: j + 1]``, in the
        order of :data:`REBER_SYMBOLS`. After the final ``E`` only ``B`` is legal: in a
        continual stream the next string starts there.

    Raises
    ------
    ValueError
        If ``string`` is not a whole string of the grammar.
    """
    if not isinstance(string, str):
        raise TypeError(f"string must be a str, got {type(string).__name__}")
    if not isinstance(embedded, (bool, np.bool_)):
        raise TypeError(f"embedded must be a bool, got {type(embedded).__name__}")
    if embedded:
        if len(string) < 2 or string[0] != "B" or string[1] not in "TP":
            raise ValueError(
                f"string {string!r} is not an embedded Reber string: it must start with BT or BP"
            )
        c = string[1]
        inner, end = _reber_walk(string, 2)
        if string[end:] != c + "E":
            raise ValueError(
                f"string {string!r} is not an embedded Reber string: after the inner string "
                f"{string[2:end]!r} it must end with {c + 'E'!r}, got {string[end:]!r}"
            )
        legal = ["TP", "B", *inner[:-1], c, "E", "B"]  # after the inner E only c is legal
    else:
        legal, end = _reber_walk(string, 0)
        if end != len(string):
            raise ValueError(
                f"string {string!r} is not a Reber string: {string[end:]!r} follows its E"
            )
        legal[-1] = "B"
    mask = np.zeros((len(string), len(REBER_SYMBOLS)), dtype=bool)  # (t, 7)
    for j, symbols in enumerate(legal):
        mask[j, [_REBER_INDEX[s] for s in symbols]] = True
    return mask


def _reber_ids(string: str) -> np.ndarray:
    return np.array([_REBER_INDEX[s] for s in string], dtype=np.int64)


def embedded_reber_batch(*, batch_size, seed=None, rng=None, dtype=np.float32) -> dict:
    """A batch of embedded Reber strings for next-symbol prediction, padded to one length.

    Each string of ``n`` symbols gives ``n - 1`` steps: the input at step ``j`` is symbol
    ``j`` and the target is symbol ``j + 1``. Rows are zero-padded to the longest string in
    the batch, ``t = max(n) - 1`` steps.

    Parameters
    ----------
    batch_size, seed, rng, dtype
        As for every task: see the module docstring.

    Returns
    -------
    dict
        ``"x"``: one-hot inputs ``(b, t, 7)``, zeros at padding.
        ``"y"``: int64 next symbols ``(b, t)``, ``-100`` at padding.
        ``"legal"``: bool ``(b, t, 7)``, the symbols that may legally come next (all False at
        padding).
        ``"mask"``: bool ``(b, t)``, True at the valid steps.
        ``"long_range"``: bool ``(b, t)``, True at the one step per row whose target is the
        penultimate symbol, the ``T``/``P`` that must match the string's second symbol.
    """
    b = check_int(batch_size, "batch_size", minimum=1)
    dtype = _float_dtype(dtype)
    rng = _generator(seed, rng)
    strings = [embedded_reber_string(rng=rng) for _ in range(b)]
    t = max(len(s) for s in strings) - 1
    k = len(REBER_SYMBOLS)
    x = np.zeros((b, t, k), dtype=dtype)  # (b, t, 7)
    y = np.full((b, t), IGNORE_INDEX, dtype=np.int64)  # (b, t)
    legal = np.zeros((b, t, k), dtype=bool)  # (b, t, 7)
    mask = np.zeros((b, t), dtype=bool)
    long_range = np.zeros((b, t), dtype=bool)
    for row, s in enumerate(strings):
        n = len(s) - 1
        ids = _reber_ids(s)
        x[row, :n] = _one_hot(ids[:-1], k, dtype)
        y[row, :n] = ids[1:]
        legal[row, :n] = reber_legal_next(s, True)[:-1]
        mask[row, :n] = True
        long_range[row, n - 2] = True  # target ids[n - 1], the penultimate symbol
    return {"x": x, "y": y, "legal": legal, "mask": mask, "long_range": long_range}


def continual_embedded_reber(*, batch_size, length, seed=None, rng=None, dtype=np.float32) -> dict:
    """Continual embedded Reber streams (Gers, Schmidhuber & Cummins 2000).

    Each row is a stream of embedded Reber strings written one after the other with no
    marker and no reset between them, cut to ``length + 1`` symbols. A network that runs
    on such a stream without ever being reset must learn to forget each finished string;
    this is the task that motivated the forget gate.

    Parameters
    ----------
    batch_size, seed, rng, dtype
        As for every task: see the module docstring.
    length
        ``t >= 1`` steps per row.

    Returns
    -------
    dict
        ``"x"``: one-hot symbols ``0..t-1`` of each stream, ``(b, t, 7)``.
        ``"y"``: int64 symbols ``1..t``, the next symbol at each step, ``(b, t)``.
        ``"legal"``: bool ``(b, t, 7)``, the symbols that may legally come next.
        ``"long_range"``: bool ``(b, t)``, True where the target is the penultimate
        ``T``/``P`` of an embedded string (it must match that string's second symbol).
        ``"string_start"``: bool ``(b, t)``, True where ``x`` is the ``B`` that starts an
        embedded string.
    """
    b = check_int(batch_size, "batch_size", minimum=1)
    t = check_int(length, "length", minimum=1)
    dtype = _float_dtype(dtype)
    rng = _generator(seed, rng)
    k = len(REBER_SYMBOLS)
    ids = np.empty((b, t + 1), dtype=np.int64)  # (b, t + 1): the stream, one more than x
    legal = np.empty((b, t + 1, k), dtype=bool)  # legal[:, j]: what may follow ids[:, j]
    long_range = np.zeros((b, t), dtype=bool)  # (b, t)
    string_start = np.zeros((b, t), dtype=bool)
    for row in range(b):
        pos = 0  # where the next string starts in the stream
        while pos <= t:
            s = embedded_reber_string(rng=rng)
            n = min(len(s), t + 1 - pos)  # how much of it fits
            ids[row, pos : pos + n] = _reber_ids(s)[:n]
            legal[row, pos : pos + n] = reber_legal_next(s, True)[:n]
            if pos < t:
                string_start[row, pos] = True
            step = pos + len(s) - 3  # the step whose target is the penultimate symbol
            if step < t:
                long_range[row, step] = True
            pos += len(s)
    return {
        "x": _one_hot(ids[:, :-1], k, dtype),
        "y": ids[:, 1:].copy(),
        "legal": legal[:, :-1].copy(),
        "long_range": long_range,
        "string_start": string_start,
    }


# ----------------------------------------------------------------------------- character corpus
def load_corpus() -> str:
    """The course's small English corpus (about 10 KB of plain ASCII prose, written for it)."""
    return (resources.files("lstm_lab") / "data" / "corpus.txt").read_text(encoding="ascii")


@dataclass(frozen=True)
class CharVocab:
    """A character vocabulary: character ``chars[i]`` has id ``i``.

    Build one with :meth:`from_text`; ``CharVocab(chars)`` takes the characters directly
    (each once).
    """

    chars: str
    _index: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if not isinstance(self.chars, str) or not self.chars:
            raise ValueError(f"chars must be a non-empty str, got {self.chars!r}")
        if len(set(self.chars)) != len(self.chars):
            raise ValueError(f"chars must not repeat a character, got {self.chars!r}")
        object.__setattr__(self, "_index", {c: i for i, c in enumerate(self.chars)})

    @classmethod
    def from_text(cls, text: str) -> "CharVocab":
        """The vocabulary of the sorted unique characters of ``text``."""
        if not isinstance(text, str) or not text:
            raise ValueError("text must be a non-empty str")
        return cls("".join(sorted(set(text))))

    @property
    def size(self) -> int:
        """``k``, the number of characters."""
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """The ids of the characters of ``text``: int64, shape ``(len(text),)``."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        unknown = sorted(set(text) - self._index.keys())
        if unknown:
            raise ValueError(
                f"text has characters that are not in the vocabulary: "
                f"{', '.join(map(repr, unknown))}"
            )
        return np.fromiter((self._index[c] for c in text), dtype=np.int64, count=len(text))

    def decode(self, ids) -> str:
        """The text of ``ids``, integers in ``[0, size)`` of shape ``(t,)``."""
        ids = np.asarray(ids)
        if ids.ndim != 1 or (ids.size and ids.dtype.kind not in "iu"):
            raise ValueError(
                f"ids must be integers of shape (t,), got {ids.dtype} of shape {ids.shape}"
            )
        if ids.size and (ids.min() < 0 or ids.max() >= self.size):
            raise ValueError(
                f"ids must lie in [0, {self.size}), got values in [{ids.min()}, {ids.max()}]"
            )
        return "".join(self.chars[i] for i in ids.tolist())


def _check_id_stream(ids) -> np.ndarray:
    """``ids`` as an integer array (n,) with n >= 2 (a text to predict the next id of)."""
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        raise ValueError(f"ids must be integers of shape (n,), got {ids.dtype} of shape {ids.shape}")
    if ids.shape[0] < 2:
        raise ValueError(f"ids must hold at least 2 ids, got {ids.shape[0]}")
    return ids


def char_lm_batch(ids, *, batch_size, seq_len, seed=None, rng=None):
    """Random windows of a long id sequence for next-character prediction.

    Parameters
    ----------
    batch_size, seed, rng
        As for every task: see the module docstring.
    ids
        Integer array of shape ``(n,)``, e.g. ``CharVocab.encode(load_corpus())``.
    seq_len
        ``t`` in ``[1, n - 1]``.

    Returns
    -------
    x : numpy.ndarray of int64, shape ``(b, t)``
        ``ids[s : s + t]`` for a start ``s`` drawn uniformly from ``[0, n - t - 1]`` per row.
    y : numpy.ndarray of int64, shape ``(b, t)``
        ``ids[s + 1 : s + t + 1]``, the next character at every step.
    """
    ids = _check_id_stream(ids)
    b = check_int(batch_size, "batch_size", minimum=1)
    t = check_int(seq_len, "seq_len", minimum=1, maximum=ids.shape[0] - 1)
    rng = _generator(seed, rng)
    starts = rng.integers(0, ids.shape[0] - t, size=b)  # (b,), start + t <= n - 1
    window = ids[starts[:, None] + np.arange(t + 1)].astype(np.int64)  # (b, t + 1)
    return window[:, :-1], window[:, 1:]


def token_streams(ids, *, batch_size):
    """A long id sequence cut into ``batch_size`` parallel streams, for truncated backpropagation.

    Stream j is the j-th of b equal consecutive stretches of ``ids``; a model reads all b side
    by side, a chunk of steps at a time, carrying its state from one chunk to the next
    (:class:`lstm_lab.experiments.StreamChunks`). The last ``(n - 1) % b`` ids are left out.

    Parameters
    ----------
    ids
        Integer array of shape ``(n,)``, e.g. ``CharVocab.encode(load_corpus())``.
    batch_size
        ``b`` in ``[1, n - 1]``.

    Returns
    -------
    x : numpy.ndarray of int64, shape ``(b, s)``
        ``x[j] = ids[j * s : (j + 1) * s]``, with ``s = (n - 1) // b`` steps per stream.
    y : numpy.ndarray of int64, shape ``(b, s)``
        ``ids[j * s + 1 : (j + 1) * s + 1]``, the next id at every step.
    """
    ids = _check_id_stream(ids)
    b = check_int(batch_size, "batch_size", minimum=1, maximum=ids.shape[0] - 1)
    s = (ids.shape[0] - 1) // b  # steps per stream
    starts = np.arange(b)[:, None] * s + np.arange(s)  # (b, s)
    ids = ids.astype(np.int64)
    return ids[starts], ids[starts + 1]


# ----------------------------------------------------------------------------- to PyTorch
def as_tensors(*arrays, device=None, dtype=None):
    """Copy NumPy arrays into PyTorch tensors on one device.

    Parameters
    ----------
    *arrays
        NumPy arrays (or anything :func:`numpy.asarray` accepts) of float, integer or bool
        dtype; tensors are accepted too and copied to ``device``.
    device
        ``None`` for PyTorch's default device, or anything :func:`lstm_lab.get_device` takes
        (``"auto"``, ``"cpu"``, ``"cuda"``, a :class:`torch.device`).
    dtype
        A floating :class:`torch.dtype` for the float arrays (default ``torch.float32``).
        Integer and bool arrays keep their dtype (int64 labels stay ``torch.int64``).

    Returns
    -------
    torch.Tensor or tuple of torch.Tensor
        One tensor per array, in order; the tensor itself when one array is given. The
        tensors are copies: changing one never changes the array.
    """
    if not arrays:
        raise TypeError("as_tensors needs at least one array")
    if dtype is None:
        dtype = torch.float32
    elif not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"dtype must be a floating torch.dtype such as torch.float32, got {dtype!r}")
    if device is not None:
        device = get_device(device)
    tensors = []
    for i, a in enumerate(arrays):
        if isinstance(a, torch.Tensor):
            target = dtype if a.is_floating_point() else a.dtype
            tensors.append(a.to(device=device if device is not None else a.device, dtype=target, copy=True))
            continue
        arr = np.asarray(a)
        if arr.dtype.kind == "f":
            tensors.append(torch.tensor(arr, dtype=dtype, device=device))
        elif arr.dtype.kind in "iub":
            tensors.append(torch.tensor(arr, device=device))
        else:
            raise TypeError(f"arrays[{i}] must have a float, integer or bool dtype, got {arr.dtype}")
    return tensors[0] if len(tensors) == 1 else tuple(tensors)


# ----------------------------------------------------------------------------- recall tasks
def selective_copying(*, batch_size, seq_len, num_tokens, vocab_size, seed=None, rng=None):
    """Selective copying (Gu & Dao 2023): copy the data tokens scattered among noise, in order.

    Token ids: ``0`` is the noise token, ``1..vocab_size-1`` are data tokens and ``vocab_size``
    is the recall marker, so the input vocabulary has ``vocab_size + 1`` ids (the targets only
    ``1..vocab_size-1``). The first ``seq_len`` steps hold ``num_tokens`` data tokens, drawn
    uniformly (with repetition), at distinct positions drawn uniformly and kept in increasing
    order; every other step of them is noise. Then come ``num_tokens`` recall markers, one per
    token to emit. Unlike the copy task, where the data sit at fixed steps, the model must
    choose what to store from the content of each token.

    Parameters
    ----------
    batch_size, seed, rng
        As for every task: see the module docstring.
    seq_len
        Steps of the noisy part, ``>= num_tokens``.
    num_tokens
        Data tokens per sequence, ``>= 1``.
    vocab_size
        ``>= 2``: data tokens are ``1..vocab_size-1``; the marker is ``vocab_size``.

    Returns
    -------
    x : numpy.ndarray of int64, shape ``(b, seq_len + num_tokens)``
        Token ids in ``[0, vocab_size]``.
    y : numpy.ndarray of int64, shape ``(b, num_tokens)``
        The data tokens in the order they appear in ``x``; a model reads them out at the
        ``num_tokens`` marker steps.
    """
    b = check_int(batch_size, "batch_size", minimum=1)
    n = check_int(num_tokens, "num_tokens", minimum=1)
    t = check_int(seq_len, "seq_len", minimum=n)
    k = check_int(vocab_size, "vocab_size", minimum=2)
    rng = _generator(seed, rng)
    positions = np.sort(np.argsort(rng.random((b, t)), axis=1)[:, :n], axis=1)  # (b, n): distinct, increasing
    data = rng.integers(1, k, size=(b, n)).astype(np.int64)  # (b, n)
    x = np.zeros((b, t + n), dtype=np.int64)  # (b, t + n), noise 0
    x[np.arange(b)[:, None], positions] = data
    x[:, t:] = k  # the recall markers
    return x, data


def associative_recall(*, batch_size, num_pairs, num_queries, num_keys, num_values, seed=None, rng=None):
    """Multi-query associative recall (MQAR; Arora et al. 2023, "Zoology").

    Token ids: keys are ``0..num_keys-1`` and values are ``num_keys..num_keys+num_values-1``
    (disjoint ranges; the vocabulary has ``num_keys + num_values`` ids). A sequence shows
    ``num_pairs`` key-value pairs ``k1 v1 k2 v2 ...`` with distinct keys drawn uniformly
    without replacement and values drawn uniformly (values may repeat), then ``num_queries``
    queries: distinct keys of its pairs in random order (each pair is asked at most once,
    as in Zoology). The target of each query is the value paired with that key.

    Parameters
    ----------
    batch_size, seed, rng
        As for every task: see the module docstring.
    num_pairs
        Key-value pairs per sequence, in ``[1, num_keys]``.
    num_queries
        Queries per sequence, in ``[1, num_pairs]``.
    num_keys
        Size of the key vocabulary, ``>= 1``.
    num_values
        Size of the value vocabulary, ``>= 1``.

    Returns
    -------
    x : numpy.ndarray of int64, shape ``(b, 2 * num_pairs + num_queries)``
        The pairs, then the queries.
    y : numpy.ndarray of int64, shape ``(b, num_queries)``
        The value token of each query's key.
    """
    b = check_int(batch_size, "batch_size", minimum=1)
    num_keys = check_int(num_keys, "num_keys", minimum=1)
    num_values = check_int(num_values, "num_values", minimum=1)
    p = check_int(num_pairs, "num_pairs", minimum=1, maximum=num_keys)
    nq = check_int(num_queries, "num_queries", minimum=1, maximum=p)
    rng = _generator(seed, rng)
    rows = np.arange(b)[:, None]
    keys = np.argsort(rng.random((b, num_keys)), axis=1)[:, :p].astype(np.int64)  # (b, p): distinct keys
    values = num_keys + rng.integers(0, num_values, size=(b, p)).astype(np.int64)  # (b, p)
    asked = np.argsort(rng.random((b, p)), axis=1)[:, :nq]  # (b, nq): which pairs are queried
    x = np.empty((b, 2 * p + nq), dtype=np.int64)  # (b, 2p + nq)
    x[:, 0 : 2 * p : 2] = keys
    x[:, 1 : 2 * p : 2] = values
    x[:, 2 * p :] = keys[rows, asked]
    return x, values[rows, asked]


# ----------------------------------------------------------------------------- parity
def running_parity(*, batch_size, seq_len, seed=None, rng=None):
    """Running parity: after every bit, say whether the number of ones so far is odd.

    The input is a sequence of random bits; the target at step t is
    ``y_t = (x_1 + ... + x_t) mod 2``. A two-state automaton solves it for any length: flip the
    state at every 1. A model that has learned that rule generalises to sequences longer than
    it was trained on; one that has learned something else usually falls to chance (0.5) there.

    Parameters
    ----------
    batch_size, seed, rng
        As for every task: see the module docstring.
    seq_len
        ``t >= 1``.

    Returns
    -------
    x : numpy.ndarray of int64, shape ``(b, t)``
        Bits, 0 or 1, each with probability 1/2 (token ids for an embedding).
    y : numpy.ndarray of int64, shape ``(b, t)``
        The parity of ``x[:, :s + 1]`` at every step s.
    """
    b = check_int(batch_size, "batch_size", minimum=1)
    t = check_int(seq_len, "seq_len", minimum=1)
    rng = _generator(seed, rng)
    x = rng.integers(0, 2, size=(b, t)).astype(np.int64)  # (b, t)
    y = np.cumsum(x, axis=1) % 2  # (b, t)
    return x, y.astype(np.int64)


# ----------------------------------------------------------------------------- toy translation
def toy_translation(*, batch_size, seq_len, num_symbols=26, seed=None, rng=None):
    """A translation task made by code: source strings and their translations, for sequence to sequence.

    The source language has ``k = num_symbols`` words, written a, b, c, ...; the target
    language has k words, written with capitals from the other end of the alphabet (a -> Z,
    b -> Y, c -> X, ...). A sentence translates word by word, and the target
    language swaps every pair of neighbouring words (words 1 2 3 4 5 come out as 2' 1' 4' 3' 5'),
    as French puts most adjectives after their noun: the alignment is nearly, but not exactly,
    the diagonal. No word occurs twice in a sentence, so each output word has one source word
    to look at; every such sentence of ``seq_len`` words is equally likely.

    Target ids: the k words, then ``BOS = k`` and ``EOS = k + 1`` (a target vocabulary of k + 2).

    Parameters
    ----------
    batch_size, seed, rng
        As for every task: see the module docstring.
    seq_len
        ``t``, from 1 to ``num_symbols``: words per sentence.
    num_symbols
        ``k``, from 2 to 26.

    Returns
    -------
    x : numpy.ndarray of int64, shape ``(b, t)``
        The source sentences.
    y_in : numpy.ndarray of int64, shape ``(b, t + 1)``
        What the decoder reads under teacher forcing: BOS, then the translation without its EOS.
    y : numpy.ndarray of int64, shape ``(b, t + 1)``
        The translation, then EOS.
    """
    b = check_int(batch_size, "batch_size", minimum=1)
    t = check_int(seq_len, "seq_len", minimum=1)
    k = check_int(num_symbols, "num_symbols", minimum=2, maximum=26)
    rng = _generator(seed, rng)
    if t > k:
        raise ValueError(f"seq_len must be at most num_symbols = {k} (no word repeats in a sentence), got {t}")
    x = rng.permuted(np.tile(np.arange(k), (b, 1)), axis=1)[:, :t].astype(np.int64)  # (b, t), distinct words
    order = np.arange(t)
    pairs = order[: t - t % 2].reshape(-1, 2)[:, ::-1].reshape(-1)  # 1 0 3 2 ...
    order[: t - t % 2] = pairs  # an odd last word stays in place
    words = (k - 1) - x[:, order]  # (b, t): the dictionary a -> the last word, ...
    bos, eos = k, k + 1
    y = np.concatenate([words, np.full((b, 1), eos)], axis=1)  # (b, t + 1)
    y_in = np.concatenate([np.full((b, 1), bos), words], axis=1)  # (b, t + 1)
    return x, y_in.astype(np.int64), y.astype(np.int64)


def translation_text(ids, *, side: str, num_symbols: int = 26) -> str:
    """Write a sentence of :func:`toy_translation` (a 1-D sequence of ids) as text.

    ``side`` is "source" (lowercase words) or "target" (capitals; BOS is written ``<``, EOS
    ``>``, and nothing after the first EOS is written).
    """
    k = check_int(num_symbols, "num_symbols", minimum=2, maximum=26)
    if side not in ("source", "target"):
        raise ValueError(f"side must be 'source' or 'target', got {side!r}")
    ids = [int(i) for i in np.asarray(ids).reshape(-1)]
    letters = "abcdefghijklmnopqrstuvwxyz"
    if side == "source":
        if any(not 0 <= i < k for i in ids):
            raise ValueError(f"source ids must lie in [0, {k})")
        return " ".join(letters[i] for i in ids)
    words = []
    for i in ids:
        if not 0 <= i < k + 2:
            raise ValueError(f"target ids must lie in [0, {k + 2})")
        words.append(">" if i == k + 1 else "<" if i == k else letters[25 - (k - 1 - i)].upper())
        if i == k + 1:
            break
    return " ".join(words)
