"""Selective copying and multi-query associative recall: layout, targets checked independently,
determinism, shared generators and errors."""

import numpy as np
import pytest

from lstm_lab.tasks import associative_recall, running_parity, selective_copying

SC = dict(batch_size=16, seq_len=20, num_tokens=5, vocab_size=6)
AR = dict(batch_size=16, num_pairs=6, num_queries=4, num_keys=10, num_values=7)


def test_selective_copying_structure_and_targets():
    x, y = selective_copying(**SC, seed=0)
    assert x.shape == (16, 25) and y.shape == (16, 5)
    assert x.dtype == np.int64 and y.dtype == np.int64
    assert np.all(x[:, 20:] == 6), "the last num_tokens steps are the marker vocab_size"
    body = x[:, :20]
    assert body.min() >= 0 and body.max() <= 5 and y.min() >= 1 and y.max() <= 5
    for row in range(16):  # independent check: the non-noise tokens of the body, in order
        data = [tok for tok in body[row].tolist() if tok != 0]
        assert data == y[row].tolist()


def test_selective_copying_positions_vary_and_can_fill_the_body():
    x, _ = selective_copying(batch_size=64, seq_len=30, num_tokens=3, vocab_size=4, seed=1)
    first = np.argmax(x[:, :30] != 0, axis=1)
    assert len(set(first.tolist())) > 5, "data positions must be random, not fixed"
    x, y = selective_copying(batch_size=4, seq_len=3, num_tokens=3, vocab_size=2, seed=2)
    assert np.all(x[:, :3] == 1) and np.all(y == 1) and np.all(x[:, 3:] == 2)


def test_selective_copying_seed_and_rng():
    a = selective_copying(**SC, seed=3)
    b = selective_copying(**SC, rng=np.random.default_rng(3))
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    rng = np.random.default_rng(3)
    c, d = selective_copying(**SC, rng=rng), selective_copying(**SC, rng=rng)
    np.testing.assert_array_equal(c[0], a[0])
    assert not np.array_equal(c[0], d[0])


def test_associative_recall_structure_and_targets():
    x, y = associative_recall(**AR, seed=0)
    assert x.shape == (16, 2 * 6 + 4) and y.shape == (16, 4)
    assert x.dtype == np.int64 and y.dtype == np.int64
    keys, values, queries = x[:, 0:12:2], x[:, 1:12:2], x[:, 12:]
    assert keys.min() >= 0 and keys.max() < 10
    assert values.min() >= 10 and values.max() < 17 and y.min() >= 10 and y.max() < 17
    for row in range(16):  # independent check: a dictionary built from the pairs
        table = dict(zip(keys[row].tolist(), values[row].tolist()))
        assert len(table) == 6, "keys must be distinct within a sequence"
        assert len(set(queries[row].tolist())) == 4, "each pair is queried at most once"
        assert [table[q] for q in queries[row].tolist()] == y[row].tolist()


def test_associative_recall_uses_every_key_and_value():
    x, y = associative_recall(batch_size=200, num_pairs=4, num_queries=4, num_keys=8, num_values=5, seed=1)
    assert set(x[:, 0:8:2].ravel().tolist()) == set(range(8))
    assert set(x[:, 1:8:2].ravel().tolist()) == set(range(8, 13))
    assert not np.all(x[:, 8:] == x[:, 0:8:2]), "queries come in random order"


def test_associative_recall_seed_and_rng():
    a = associative_recall(**AR, seed=5)
    b = associative_recall(**AR, rng=np.random.default_rng(5))
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    rng = np.random.default_rng(5)
    c, d = associative_recall(**AR, rng=rng), associative_recall(**AR, rng=rng)
    np.testing.assert_array_equal(c[0], a[0])
    assert not np.array_equal(c[0], d[0])


@pytest.mark.parametrize(
    "changes, error, match",
    [
        (dict(seq_len=4), ValueError, "seq_len"),
        (dict(num_tokens=0), ValueError, "num_tokens"),
        (dict(vocab_size=1), ValueError, "vocab_size"),
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(seq_len=2.5), TypeError, "seq_len"),
        (dict(seed=None), ValueError, "exactly one"),
        (dict(rng=np.random.default_rng(0)), ValueError, "exactly one"),
    ],
)
def test_selective_copying_errors(changes, error, match):
    kwargs = dict(SC, seed=0)
    kwargs.update(changes)
    with pytest.raises(error, match=match):
        selective_copying(**kwargs)


@pytest.mark.parametrize(
    "changes, error, match",
    [
        (dict(num_pairs=11), ValueError, "num_pairs"),
        (dict(num_queries=7), ValueError, "num_queries"),
        (dict(num_queries=0), ValueError, "num_queries"),
        (dict(num_values=0), ValueError, "num_values"),
        (dict(num_keys=True), TypeError, "num_keys"),
        (dict(seed=-1), ValueError, "seed"),
        (dict(seed=None, rng=3), TypeError, "rng"),
    ],
)
def test_associative_recall_errors(changes, error, match):
    kwargs = dict(AR, seed=0)
    kwargs.update(changes)
    with pytest.raises(error, match=match):
        associative_recall(**kwargs)


# ---------------------------------------------------------------------------- running parity
def test_running_parity_targets_are_prefix_parities():
    x, y = running_parity(batch_size=50, seq_len=12, seed=0)
    assert x.shape == y.shape == (50, 12) and x.dtype == y.dtype == np.int64
    assert set(np.unique(x)) == {0, 1}
    for row_x, row_y in zip(x, y):
        ones = 0
        for bit, target in zip(row_x, row_y):
            ones += int(bit)
            assert target == ones % 2
    assert 0.4 < x.mean() < 0.6  # fair bits


def test_running_parity_seed_rng_and_errors():
    a = running_parity(batch_size=3, seq_len=5, seed=7)
    b = running_parity(batch_size=3, seq_len=5, rng=np.random.default_rng(7))
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    rng = np.random.default_rng(1)
    assert not np.array_equal(running_parity(batch_size=4, seq_len=9, rng=rng)[0],
                              running_parity(batch_size=4, seq_len=9, rng=rng)[0])
    with pytest.raises(ValueError, match="seq_len"):
        running_parity(batch_size=2, seq_len=0, seed=0)
    with pytest.raises(ValueError, match="exactly one"):
        running_parity(batch_size=2, seq_len=3)
