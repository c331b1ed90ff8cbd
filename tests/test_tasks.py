"""Synthetic tasks: every generator makes exactly the data its docstring promises, seeded."""

from __future__ import annotations

import string as string_module
from fractions import Fraction
from importlib import resources

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal

from lstm_lab import tasks
from lstm_lab.tasks import (
    ADDING_BASELINE_MSE,
    REBER_SYMBOLS,
    TEMPORAL_ORDER_SYMBOLS,
    CharVocab,
    adding_problem,
    as_tensors,
    char_lm_batch,
    continual_embedded_reber,
    copy_task,
    embedded_reber_batch,
    embedded_reber_string,
    load_corpus,
    reber_legal_next,
    reber_string,
    remember_first,
    temporal_order,
)

FLOAT_DTYPES = [np.float32, np.float64]

# Every seeded generator, called with small sizes; the keyword arguments are seed= / rng=.
GENERATORS = {
    "adding_problem": lambda **kw: adding_problem(batch_size=4, seq_len=12, **kw),
    "temporal_order": lambda **kw: temporal_order(batch_size=4, seq_len=20, **kw),
    "remember_first": lambda **kw: remember_first(batch_size=4, gap=6, **kw),
    "copy_task": lambda **kw: copy_task(batch_size=4, length=5, gap=3, **kw),
    "reber_string": lambda **kw: reber_string(**kw),
    "embedded_reber_string": lambda **kw: embedded_reber_string(**kw),
    "embedded_reber_batch": lambda **kw: embedded_reber_batch(batch_size=4, **kw),
    "continual_embedded_reber": lambda **kw: continual_embedded_reber(batch_size=3, length=40, **kw),
    "char_lm_batch": lambda **kw: char_lm_batch(np.arange(500) % 37, batch_size=4, seq_len=16, **kw),
}
STRING_GENERATORS = {"reber_string", "embedded_reber_string"}


def fingerprint(out) -> tuple:
    """A hashable copy of a generator's output (str, tuple of arrays or dict of arrays)."""
    if isinstance(out, str):
        return (out,)
    items = sorted(out.items()) if isinstance(out, dict) else enumerate(out)
    return tuple((key, a.dtype.str, a.shape, a.tobytes()) for key, a in items)


# ----------------------------------------------------------------------------- seeding
@pytest.mark.parametrize("name", GENERATORS)
def test_same_seed_same_output_and_seed_is_default_rng(name):
    make = GENERATORS[name]
    assert fingerprint(make(seed=3)) == fingerprint(make(seed=3))
    assert fingerprint(make(seed=3)) == fingerprint(make(rng=np.random.default_rng(3)))


@pytest.mark.parametrize("name", GENERATORS)
def test_different_seeds_differ_and_a_shared_rng_advances(name):
    make = GENERATORS[name]
    seeds = range(10)
    distinct = {fingerprint(make(seed=s)) for s in seeds}
    rng = np.random.default_rng(0)
    drawn = {fingerprint(make(rng=rng)) for _ in seeds}
    if name in STRING_GENERATORS:  # short strings such as BTXSE come up often
        assert len(distinct) >= 3 and len(drawn) >= 3
    else:
        assert len(distinct) == 10 and len(drawn) == 10


@pytest.mark.parametrize("name", GENERATORS)
def test_exactly_one_of_seed_and_rng(name):
    make = GENERATORS[name]
    with pytest.raises(ValueError, match="pass exactly one of seed= or rng="):
        make()
    with pytest.raises(ValueError, match="pass exactly one of seed= or rng="):
        make(seed=0, rng=np.random.default_rng(0))
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        make(rng=0)
    with pytest.raises(TypeError, match="seed must be an int"):
        make(seed=1.5)
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        make(seed=-1)


def test_generators_are_keyword_only():
    with pytest.raises(TypeError):
        adding_problem(4, 10, 0)
    with pytest.raises(TypeError):
        reber_string(0)


# ----------------------------------------------------------------------------- bad sizes
@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: adding_problem(batch_size=0, seq_len=5, seed=0), ValueError,
         "batch_size must be a positive int, got 0"),
        (lambda: adding_problem(batch_size=2, seq_len=1, seed=0), ValueError, "seq_len must be an int >= 2, got 1"),
        (lambda: adding_problem(batch_size=2.0, seq_len=5, seed=0), TypeError, "batch_size must be an int"),
        (lambda: adding_problem(batch_size=True, seq_len=5, seed=0), TypeError, "batch_size must be an int"),
        (lambda: adding_problem(batch_size=2, seq_len=5, seed=0, dtype=np.int32), ValueError,
         "dtype must be np.float32 or np.float64"),
        (lambda: adding_problem(batch_size=2, seq_len=5, seed=0, dtype=None), ValueError,
         "dtype must be np.float32 or np.float64"),
        (lambda: temporal_order(batch_size=2, seq_len=9, seed=0), ValueError, "seq_len must be an int >= 10, got 9"),
        (lambda: remember_first(batch_size=2, gap=-1, seed=0), ValueError, "gap must be a non-negative int, got -1"),
        (lambda: remember_first(batch_size=2, gap=3, num_symbols=1, seed=0), ValueError,
         "num_symbols must be an int >= 2, got 1"),
        (lambda: copy_task(batch_size=2, length=0, gap=3, seed=0), ValueError, "length must be a positive int, got 0"),
        (lambda: copy_task(batch_size=2, length=3, gap=0, seed=0), ValueError, "gap must be a positive int, got 0"),
        (lambda: copy_task(batch_size=2, length=3, gap=2, num_symbols=1, seed=0), ValueError,
         "num_symbols must be an int >= 2, got 1"),
        (lambda: embedded_reber_batch(batch_size=0, seed=0), ValueError, "batch_size must be a positive int"),
        (lambda: continual_embedded_reber(batch_size=2, length=0, seed=0), ValueError,
         "length must be a positive int, got 0"),
        (lambda: char_lm_batch(np.arange(10), batch_size=2, seq_len=10, seed=0), ValueError,
         r"seq_len must be an int in \[1, 9\], got 10"),
        (lambda: char_lm_batch(np.arange(10), batch_size=2, seq_len=0, seed=0), ValueError,
         r"seq_len must be an int in \[1, 9\], got 0"),
        (lambda: char_lm_batch(np.ones((2, 5), dtype=int), batch_size=2, seq_len=2, seed=0), ValueError,
         r"ids must be integers of shape \(n,\)"),
        (lambda: char_lm_batch(np.linspace(0, 1, 9), batch_size=2, seq_len=2, seed=0), ValueError,
         r"ids must be integers of shape \(n,\)"),
        (lambda: CharVocab.from_text(""), ValueError, "text must be a non-empty str"),
        (lambda: CharVocab("abca"), ValueError, "must not repeat"),
        (lambda: CharVocab("abc").decode([0, 3]), ValueError, r"ids must lie in \[0, 3\)"),
        (lambda: CharVocab("abc").decode([[0, 1]]), ValueError, r"shape \(t,\)"),
        (lambda: CharVocab("abc").encode(5), TypeError, "text must be a str"),
        (lambda: reber_legal_next(["B", "T"], False), TypeError, "string must be a str"),
        (lambda: as_tensors(), TypeError, "at least one array"),
        (lambda: as_tensors(np.ones(2), dtype=torch.int64), ValueError, "dtype must be a floating torch.dtype"),
        (lambda: as_tensors(np.ones(2), np.ones(2, dtype=complex)), TypeError,
         "arrays\\[1\\] must have a float, integer or bool dtype"),
    ],
)
def test_bad_input_gets_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()


# ----------------------------------------------------------------------------- adding problem
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("seq_len", [2, 3, 11, 50])
def test_adding_problem_structure(seq_len, dtype):
    b = 300
    x, y = adding_problem(batch_size=b, seq_len=seq_len, seed=1, dtype=dtype)
    assert x.shape == (b, seq_len, 2) and x.dtype == dtype
    assert y.shape == (b, 1) and y.dtype == dtype
    values, markers = x[..., 0], x[..., 1]
    assert np.all((values >= 0) & (values < 1))
    assert set(np.unique(markers)) <= {0.0, 1.0}
    half = seq_len // 2
    assert_array_equal(markers[:, :half].sum(axis=1), 1.0)
    assert_array_equal(markers[:, half:].sum(axis=1), 1.0)
    assert_allclose(y[:, 0], (values * markers).sum(axis=1), rtol=1e-6 if dtype == np.float32 else 1e-15)


def test_adding_problem_marks_every_position_of_each_half():
    x, _ = adding_problem(batch_size=4000, seq_len=10, seed=2)
    first = np.argmax(x[:, :5, 1], axis=1)
    second = 5 + np.argmax(x[:, 5:, 1], axis=1)
    assert set(first) == set(range(5)) and set(second) == set(range(5, 10))


def test_adding_problem_draws_do_not_depend_on_dtype():
    x32, y32 = adding_problem(batch_size=8, seq_len=7, seed=4, dtype=np.float32)
    x64, y64 = adding_problem(batch_size=8, seq_len=7, seed=4, dtype=np.float64)
    assert_allclose(x32, x64, rtol=1e-7, atol=0)
    assert_allclose(y32, y64, rtol=1e-6, atol=0)


def test_adding_baseline_is_the_variance_of_the_sum():
    # The target is the sum of two U(0, 1) draws: mean 1, variance 2 / 12. The estimate from
    # 200,000 sequences has a standard error of 4.4e-4, so 0.002 is a margin of 4.5 of them.
    _, y = adding_problem(batch_size=200_000, seq_len=6, seed=0, dtype=np.float64)
    mse = np.mean((y - 1.0) ** 2)
    assert abs(mse - ADDING_BASELINE_MSE) < 0.002
    assert abs(mse - 2 / 12) < 0.002
    assert abs(np.mean(y) - 1.0) < 0.01


# ----------------------------------------------------------------------------- temporal order
def round_half_up(x: Fraction) -> int:
    return int((x + Fraction(1, 2)) // 1)


@pytest.mark.parametrize("seq_len", [10, 15, 25, 37, 100])
def test_temporal_order_structure(seq_len):
    b = 3000
    x, y = temporal_order(batch_size=b, seq_len=seq_len, seed=5)
    assert x.shape == (b, seq_len, 8) and x.dtype == np.float32
    assert y.shape == (b,) and y.dtype == np.int64
    assert_array_equal(x.sum(axis=-1), 1.0)  # one-hot
    sym = {s: i for i, s in enumerate(TEMPORAL_ORDER_SYMBOLS)}
    assert TEMPORAL_ORDER_SYMBOLS == ("a", "b", "c", "d", "X", "Y", "B", "E")
    ids = np.argmax(x, axis=-1)
    assert np.all(ids[:, 0] == sym["B"]) and np.all(ids[:, -1] == sym["E"])
    middle = ids[:, 1:-1]
    relevant = (middle == sym["X"]) | (middle == sym["Y"])
    assert_array_equal(relevant.sum(axis=1), 2)
    assert np.all((middle < 4) | relevant)  # everything else is a distractor a..d
    assert set(np.unique(middle[~relevant])) == {0, 1, 2, 3}
    rows, cols = np.nonzero(relevant)
    t1, t2 = cols[0::2] + 1, cols[1::2] + 1  # positions in the whole sequence
    assert_array_equal(rows[0::2], np.arange(b))
    lo1, hi1 = round_half_up(Fraction(seq_len, 10)), round_half_up(Fraction(2 * seq_len, 10))
    lo2, hi2 = round_half_up(Fraction(5 * seq_len, 10)), round_half_up(Fraction(6 * seq_len, 10))
    # every position of each inclusive range occurs, and no other
    assert set(t1) == set(range(lo1, hi1 + 1))
    assert set(t2) == set(range(lo2, hi2 + 1))
    first_is_y = ids[np.arange(b), t1] == sym["Y"]
    second_is_y = ids[np.arange(b), t2] == sym["Y"]
    assert_array_equal(y, 2 * first_is_y + second_is_y)  # XX 0, XY 1, YX 2, YY 3


def test_temporal_order_classes_are_balanced():
    _, y = temporal_order(batch_size=40_000, seq_len=10, seed=6, dtype=np.float64)
    assert_allclose(np.bincount(y, minlength=4) / y.size, 0.25, atol=0.02)


# ----------------------------------------------------------------------------- remember the first
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("gap, k", [(0, 2), (1, 4), (30, 5)])
def test_remember_first(gap, k, dtype):
    b = 2000
    x, y = remember_first(batch_size=b, gap=gap, num_symbols=k, seed=7, dtype=dtype)
    assert x.shape == (b, gap + 1, k) and x.dtype == dtype
    assert y.shape == (b,) and y.dtype == np.int64
    assert_array_equal(x.sum(axis=-1), 1.0)
    assert_array_equal(y, np.argmax(x[:, 0], axis=-1))
    assert_allclose(np.bincount(y, minlength=k) / b, 1.0 / k, atol=0.05)
    if gap:
        later = np.argmax(x[:, 1:], axis=-1)
        assert set(np.unique(later)) == set(range(k))


# ----------------------------------------------------------------------------- copy task
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("length, gap, k", [(1, 1, 2), (5, 1, 8), (3, 10, 4)])
def test_copy_task_structure(length, gap, k, dtype):
    b = 50
    x, y, mask = copy_task(batch_size=b, length=length, gap=gap, num_symbols=k, seed=8, dtype=dtype)
    t = length + gap + length
    blank, delimiter = k, k + 1
    assert x.shape == (b, t, k + 2) and x.dtype == dtype
    assert y.shape == (b, t) and y.dtype == np.int64
    assert mask.shape == (b, t) and mask.dtype == bool
    assert_array_equal(x.sum(axis=-1), 1.0)
    ids = np.argmax(x, axis=-1)
    data = ids[:, :length]
    assert np.all(data < k)
    assert_array_equal(ids[:, length : length + gap - 1], blank)
    assert_array_equal(ids[:, length + gap - 1], delimiter)
    assert_array_equal(ids[:, length + gap :], blank)
    assert_array_equal(y[:, : length + gap], blank)
    assert_array_equal(y[:, length + gap :], data)
    expected_mask = np.zeros((b, t), dtype=bool)
    expected_mask[:, -length:] = True
    assert_array_equal(mask, expected_mask)


def test_copy_task_uses_every_data_symbol():
    x, _, _ = copy_task(batch_size=200, length=10, gap=2, num_symbols=8, seed=9)
    assert set(np.unique(np.argmax(x[:, :10], axis=-1))) == set(range(8))


# ----------------------------------------------------------------------------- Reber grammar
# The Reber grammar written out again, independently of lstm_lab.tasks: state -> {symbol: state}.
GRAMMAR = {
    "start": {"B": "s1"},
    "s1": {"T": "s2", "P": "s3"},
    "s2": {"S": "s2", "X": "s4"},
    "s3": {"T": "s3", "V": "s5"},
    "s4": {"X": "s3", "S": "s6"},
    "s5": {"P": "s4", "V": "s6"},
    "s6": {"E": "end"},
    "end": {},
}


def reber_state(prefix: str) -> str | None:
    """The grammar state after reading ``prefix``, or None if it cannot start a Reber string."""
    state = "start"
    for ch in prefix:
        state = GRAMMAR[state].get(ch)
        if state is None:
            return None
    return state


def is_reber(s: str) -> bool:
    return reber_state(s) == "end"


def is_embedded_reber(s: str) -> bool:
    return (
        len(s) >= 4 and s[0] == "B" and s[1] in "TP" and s[-2] == s[1] and s[-1] == "E"
        and is_reber(s[2:-2])
    )


def is_prefix(p: str, embedded: bool) -> bool:
    """Whether ``p`` can be extended to a whole (embedded) Reber string (every state can end)."""
    if not embedded:
        return reber_state(p) is not None
    if len(p) < 2:
        return "B".startswith(p)
    if p[0] != "B" or p[1] not in "TP":
        return False
    rest = p[2:]
    for cut in range(len(rest) + 1):  # where the inner string stops
        inner, tail = rest[:cut], rest[cut:]
        if tail == "" and reber_state(inner) is not None:
            return True
        if tail and is_reber(inner) and (p[1] + "E").startswith(tail):
            return True
    return False


def legal_next_by_search(s: str, embedded: bool) -> np.ndarray:
    """Legal next symbols by trying every symbol after every prefix; B after the whole string."""
    legal = np.zeros((len(s), 7), dtype=bool)
    for j in range(len(s)):
        prefix = s[: j + 1]
        for i, c in enumerate(REBER_SYMBOLS):
            legal[j, i] = c == "B" if j == len(s) - 1 else is_prefix(prefix + c, embedded)
    return legal


def as_mask(sets: list[str]) -> np.ndarray:
    return np.array([[c in allowed for c in REBER_SYMBOLS] for allowed in sets])


def test_the_test_recognizer_knows_a_few_strings():
    # The one-hot alphabet holds each symbol the grammar produces, once.
    produced = set("".join(embedded_reber_string(seed=s) for s in range(200)))
    assert produced == set(REBER_SYMBOLS) and len(REBER_SYMBOLS) == len(produced)
    for good in ["BTSSXXTVVE", "BTXSE", "BPVVE", "BPTVPXTTVVE", "BTXXVPSE"]:
        assert is_reber(good), good
    for bad in ["", "BTSSXXTVV", "BTSSXXTVVP", "BTXSEB", "TXSE", "BPVE", "btxse"]:
        assert not is_reber(bad), bad
    # The shortest Reber strings are BTXSE and BPVVE, so BTBTXSETE *is* an embedded Reber string.
    for good in ["BTBTXSETE", "BPBPVVEPE", "BTBTSSXXTVVETE"]:
        assert is_embedded_reber(good), good
    for bad in ["BTBTXSEPE", "BTBTXSET", "BTBTXSETEE", "BPVVE", "BTBTXSTE", "BXBTXSEXE"]:
        assert not is_embedded_reber(bad), bad


def test_generated_strings_are_in_the_grammar():
    rng = np.random.default_rng(10)
    plain = [reber_string(rng=rng) for _ in range(500)]
    embedded = [embedded_reber_string(rng=rng) for _ in range(500)]
    assert all(is_reber(s) for s in plain)
    assert all(is_embedded_reber(s) for s in embedded)
    assert all(s[1] == s[-2] for s in embedded)
    assert len(set(plain)) > 50  # a real walk through the graph, not a few fixed strings


def test_reber_branches_have_probability_one_half():
    rng = np.random.default_rng(11)
    plain = [reber_string(rng=rng) for _ in range(8000)]
    # BTXSE and BPVVE are each three coin flips away from the start.
    assert abs(plain.count("BTXSE") / 8000 - 1 / 8) < 0.02
    assert abs(plain.count("BPVVE") / 8000 - 1 / 8) < 0.02
    embedded = [embedded_reber_string(rng=rng) for _ in range(4000)]
    assert abs(sum(s[1] == "T" for s in embedded) / 4000 - 0.5) < 0.03


def test_legal_next_on_hand_written_strings():
    assert_array_equal(
        reber_legal_next("BTSSXXTVVE", False),
        as_mask(["TP", "SX", "SX", "SX", "SX", "TV", "TV", "PV", "E", "B"]),
    )
    assert_array_equal(reber_legal_next("BPVVE", False), as_mask(["TP", "TV", "PV", "E", "B"]))
    assert_array_equal(
        reber_legal_next("BTBTSSXXTVVETE", True),
        as_mask(["TP", "B", "TP", "SX", "SX", "SX", "SX", "TV", "TV", "PV", "E", "T", "E", "B"]),
    )
    assert_array_equal(
        reber_legal_next("BPBTXSEPE", True),
        as_mask(["TP", "B", "TP", "SX", "SX", "E", "P", "E", "B"]),
    )
    for s, embedded in [("BTSSXXTVVE", False), ("BPTVPXTTVVE", False), ("BTBTXSETE", True),
                        ("BPBPVPXVVEPE", True)]:
        assert_array_equal(reber_legal_next(s, embedded), legal_next_by_search(s, embedded))
        assert reber_legal_next(s, embedded).dtype == bool


def test_legal_next_matches_a_search_on_generated_strings():
    rng = np.random.default_rng(12)
    for _ in range(100):
        s = reber_string(rng=rng)
        assert_array_equal(reber_legal_next(s, False), legal_next_by_search(s, False))
        e = embedded_reber_string(rng=rng)
        assert_array_equal(reber_legal_next(e, True), legal_next_by_search(e, True))


@pytest.mark.parametrize(
    "s, embedded",
    [("", False), ("BTSSXXTVV", False), ("BTSSXXTVVP", False), ("BTXSEB", False), ("BTXSEE", False),
     ("btxse", False), ("BTBTXSETE", False), ("BPVVE", True), ("", True), ("BTBTXSEPE", True),
     ("BTBTXSET", True), ("BTBTXSETEE", True), ("BTBTXSETEB", True), ("BXBTXSEXE", True)],
)
def test_legal_next_rejects_strings_outside_the_grammar(s, embedded):
    with pytest.raises(ValueError, match="not"):
        reber_legal_next(s, embedded)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_embedded_reber_batch(dtype):
    b = 64
    batch = embedded_reber_batch(batch_size=b, seed=13, dtype=dtype)
    assert set(batch) == {"x", "y", "legal", "mask", "long_range"}
    x, y, legal, mask, long_range = (batch[k] for k in ("x", "y", "legal", "mask", "long_range"))
    t = x.shape[1]
    assert x.shape == (b, t, 7) and x.dtype == dtype
    assert y.shape == (b, t) and y.dtype == np.int64
    assert legal.shape == (b, t, 7) and legal.dtype == bool
    for a in (mask, long_range):
        assert a.shape == (b, t) and a.dtype == bool
    lengths = mask.sum(axis=1)
    assert lengths.max() == t  # padded to the longest string of the batch
    assert len(set(lengths)) > 1
    for row in range(b):
        n = lengths[row]
        assert_array_equal(mask[row], np.arange(t) < n)
        assert_array_equal(x[row, :n].sum(axis=-1), 1.0)
        assert_array_equal(x[row, n:], 0.0)
        assert_array_equal(y[row, n:], -100)
        assert not legal[row, n:].any() and not long_range[row, n:].any()
        ids = np.argmax(x[row, :n], axis=-1)
        assert_array_equal(y[row, : n - 1], ids[1:])
        s = "".join(REBER_SYMBOLS[i] for i in [*ids, y[row, n - 1]])
        assert is_embedded_reber(s), s
        assert_array_equal(legal[row, :n], legal_next_by_search(s, True)[:-1])
        # the long-range step: its target is the penultimate symbol, the T/P that repeats s[1]
        assert_array_equal(np.nonzero(long_range[row])[0], [n - 2])
        assert REBER_SYMBOLS[y[row, n - 2]] == s[1] == s[-2]
    steps = np.nonzero(mask)
    assert legal[steps[0], steps[1], y[steps]].all()  # the actual next symbol is always legal


def split_stream(stream: str) -> tuple[list[int], list[int]]:
    """Cut a stream into whole embedded Reber strings and one unfinished tail.

    Returns the start of every piece and, for each symbol, the start of its piece."""
    starts, owner, i = [], [], 0
    while i < len(stream):
        ends = [j for j in range(i + 1, len(stream) + 1) if is_embedded_reber(stream[i:j])]
        j = ends[0] if ends else len(stream)
        assert ends or is_prefix(stream[i:], True), f"bad tail {stream[i:]!r}"
        starts.append(i)
        owner += [i] * (j - i)
        i = j
    return starts, owner


@pytest.mark.parametrize("b, length", [(16, 1), (16, 8), (16, 9), (16, 200), (400, 30)])
def test_continual_embedded_reber_is_a_stream_of_whole_strings(b, length):
    out = continual_embedded_reber(batch_size=b, length=length, seed=14, dtype=np.float64)
    assert set(out) == {"x", "y", "legal", "long_range", "string_start"}
    x, y, legal = out["x"], out["y"], out["legal"]
    assert x.shape == (b, length, 7) and x.dtype == np.float64
    assert y.shape == (b, length) and y.dtype == np.int64
    assert legal.shape == (b, length, 7) and legal.dtype == bool
    for key in ("long_range", "string_start"):
        assert out[key].shape == (b, length) and out[key].dtype == bool
    assert_array_equal(x.sum(axis=-1), 1.0)
    ids = np.argmax(x, axis=-1)
    assert_array_equal(y[:, :-1], ids[:, 1:])
    rows, cols = np.meshgrid(np.arange(b), np.arange(length), indexing="ij")
    assert legal[rows, cols, y].all()
    for row in range(b):
        stream = "".join(REBER_SYMBOLS[i] for i in [*ids[row], y[row, -1]])  # length + 1 symbols
        starts, owner = split_stream(stream)
        expected_start = np.zeros(length, dtype=bool)
        expected_start[[s for s in starts if s < length]] = True
        assert_array_equal(out["string_start"][row], expected_start)
        expected_long = np.zeros(length, dtype=bool)
        expected_legal = np.zeros((length, 7), dtype=bool)
        for j in range(length):
            target_piece = stream[owner[j + 1] : j + 2]
            expected_long[j] = is_embedded_reber(target_piece + "E")  # target is the penultimate
            prefix = stream[owner[j] : j + 1]
            if is_embedded_reber(prefix):
                allowed = "B"
            else:
                allowed = [c for c in REBER_SYMBOLS if is_prefix(prefix + c, True)]
            expected_legal[j] = [c in allowed for c in REBER_SYMBOLS]
        assert_array_equal(out["long_range"][row], expected_long)
        assert_array_equal(legal[row], expected_legal)
        for j in np.nonzero(expected_long)[0]:
            assert REBER_SYMBOLS[y[row, j]] in "TP"
            assert REBER_SYMBOLS[y[row, j]] == stream[owner[j + 1] + 1]  # the string's second symbol
    if length == 200:
        assert out["long_range"].sum() > 5 * b and out["string_start"].sum() > 5 * b
    if b == 400:  # the edges: a stream cut just after a penultimate T/P, a string starting at the end
        assert out["long_range"][:, -1].any() and out["string_start"][:, -1].any()


def test_continual_streams_are_not_reset_between_strings():
    out = continual_embedded_reber(batch_size=4, length=100, seed=15)
    starts = out["string_start"]
    # Every string after the first starts right where the one before it ended: the symbol
    # before each later start is the E that closes an embedded string, with no marker between.
    ids = np.argmax(out["x"], axis=-1)
    rows, cols = np.nonzero(starts[:, 1:])
    assert rows.size > 0
    assert np.all(ids[rows, cols] == REBER_SYMBOLS.index("E"))


# ----------------------------------------------------------------------------- character corpus
def test_corpus_size_and_characters():
    text = load_corpus()
    raw = (resources.files("lstm_lab") / "data" / "corpus.txt").read_bytes()
    assert raw.decode("ascii") == text
    assert 8_000 <= len(raw) <= 15_000
    assert text.isascii()
    allowed = set(string_module.ascii_letters + string_module.digits + string_module.punctuation + " \n")
    assert set(text) <= allowed, sorted(set(text) - allowed)
    assert text.count("\n\n") >= 5  # several paragraphs
    words = text.lower().split()
    assert len(set(words)) < 0.4 * len(words)  # words repeat, so there is local structure to learn


def test_char_vocab_round_trip_and_errors():
    text = load_corpus()
    vocab = CharVocab.from_text(text)
    assert vocab.chars == "".join(sorted(set(text)))
    assert vocab.size == len(vocab.chars) < 100
    ids = vocab.encode(text)
    assert ids.shape == (len(text),) and ids.dtype == np.int64
    assert ids.min() == 0 and ids.max() == vocab.size - 1
    assert vocab.decode(ids) == text
    assert vocab.decode(list(ids[:20])) == text[:20]
    assert vocab.decode(np.array([], dtype=np.int64)) == ""
    assert vocab.encode("").shape == (0,)
    assert CharVocab.from_text("cab").chars == "abc"
    assert_array_equal(CharVocab.from_text("cab").encode("abcab"), [0, 1, 2, 0, 1])
    with pytest.raises(ValueError, match="'~'"):
        vocab.encode("the harbour~")
    with pytest.raises(ValueError, match=r"'#', '~'"):
        vocab.encode("~the #harbour")


def test_char_lm_batch_windows_are_shifted_by_one():
    ids = np.arange(12)
    x, y = char_lm_batch(ids, batch_size=2000, seq_len=3, seed=16)
    assert x.shape == (2000, 3) and y.shape == (2000, 3)
    assert x.dtype == np.int64 and y.dtype == np.int64
    starts = x[:, 0]
    assert set(starts) == set(range(12 - 3))  # every window that leaves room for the target
    assert_array_equal(x, starts[:, None] + np.arange(3))
    assert_array_equal(y, x + 1)
    # the longest window: the whole sequence but its last id
    x, y = char_lm_batch(ids.astype(np.int32), batch_size=3, seq_len=11, seed=0)
    assert_array_equal(x, np.broadcast_to(ids[:-1], (3, 11)))
    assert_array_equal(y, np.broadcast_to(ids[1:], (3, 11)))
    assert x.dtype == np.int64


def test_char_lm_batch_on_the_corpus():
    text = load_corpus()
    vocab = CharVocab.from_text(text)
    x, y = char_lm_batch(vocab.encode(text), batch_size=32, seq_len=64, seed=17)
    assert x.shape == (32, 64) and y.shape == (32, 64)
    assert_array_equal(y[:, :-1], x[:, 1:])
    for row in range(32):
        window = vocab.decode(x[row]) + vocab.decode(y[row, -1:])
        assert window in text
        assert vocab.decode(y[row]) == window[1:]


# ----------------------------------------------------------------------------- to PyTorch
def test_as_tensors_dtypes_and_copies():
    x, y, mask = copy_task(batch_size=3, length=2, gap=2, seed=18)
    tx, ty, tmask = as_tensors(x, y, mask)
    assert tx.dtype == torch.float32 and ty.dtype == torch.int64 and tmask.dtype == torch.bool
    assert tx.device.type == "cpu"
    assert_array_equal(tx.numpy(), x)
    assert_array_equal(ty.numpy(), y)
    assert_array_equal(tmask.numpy(), mask)
    tx.zero_()
    assert x.sum() > 0  # the tensor is a copy
    single = as_tensors(np.arange(3, dtype=np.int32))
    assert isinstance(single, torch.Tensor) and single.dtype == torch.int32
    t64 = as_tensors(np.linspace(0, 1, 5), dtype=torch.float64, device="cpu")
    assert t64.dtype == torch.float64
    assert_allclose(t64.numpy(), np.linspace(0, 1, 5), rtol=0, atol=0)
    assert as_tensors(np.linspace(0, 1, 5)).dtype == torch.float32


@pytest.mark.gpu
def test_as_tensors_on_cuda():
    x, y = adding_problem(batch_size=4, seq_len=6, seed=19)
    tx, ty = as_tensors(x, y, device="cuda")
    assert tx.device.type == "cuda" and ty.device.type == "cuda"
    torch.testing.assert_close(tx.cpu(), torch.from_numpy(x))
    _, labels = remember_first(batch_size=4, gap=2, seed=19)
    assert as_tensors(labels, device="cuda").dtype == torch.int64


def test_public_names_exist():
    for name in tasks.__all__:
        assert hasattr(tasks, name), name


def test_as_tensors_accepts_tensors_and_copies_them():
    t = torch.ones(2, dtype=torch.float64)
    moved = as_tensors(t, dtype=torch.float32)
    assert moved.dtype == torch.float32
    labels = as_tensors(torch.arange(3))
    assert labels.dtype == torch.int64
    same = as_tensors(t, dtype=torch.float64)
    same += 1
    assert t[0] == 1.0
