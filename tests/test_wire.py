"""tools/wire.py: what crosses out of the grading sandbox is data, and only data.

Round trips for every kind of value a test may receive, and refusals for every message that
``encode`` would not write: pickles in any form, compressed or oddly named entries, object or
structured arrays, unknown nodes, modules whose weights do not match their settings.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile

import numpy as np
import pytest
import torch

from tools import wire


def _message(entries: dict[str, bytes], compress=zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compress) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _npy(a: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, a, allow_pickle=True)
    return buffer.getvalue()


def _tree(tree) -> bytes:
    return _npy(np.frombuffer(json.dumps(tree).encode(), dtype=np.uint8))


def test_values_round_trip_with_their_types():
    value = {"a": np.arange(6.0).reshape(2, 3), "b": (1, 2.5, True, None, "text", 3 + 4j),
             "c": [np.float32(1.5), np.int64(7)], 5: torch.tensor([1.0, 2.0], dtype=torch.float64),
             "half": torch.ones(2, dtype=torch.bfloat16), "nan": float("nan")}
    back = wire.decode(wire.encode(value))
    assert np.array_equal(back["a"], value["a"]) and back["a"].dtype == np.float64
    assert back["b"] == (1, 2.5, True, None, "text", 3 + 4j) and type(back["b"][0]) is int
    assert type(back["c"][0]) is np.float32 and back["c"][1] == 7
    assert back[5].dtype == torch.float64 and torch.equal(back[5], value[5])
    assert back["half"].dtype == torch.bfloat16 and np.isnan(back["nan"])


def test_gradient_flags_and_rnn_modules_cross():
    t = torch.randn(3, requires_grad=True)
    assert wire.decode(wire.encode(t * 2)).requires_grad
    lstm = torch.nn.LSTM(3, 4, batch_first=True, dtype=torch.float64)
    back = wire.decode(wire.encode(lstm))
    assert type(back) is torch.nn.LSTM and back.batch_first and back.weight_ih_l0.dtype == torch.float64
    for name, value in lstm.state_dict().items():
        assert torch.equal(back.state_dict()[name], value)


def test_anything_else_arrives_as_an_opaque_placeholder():
    class Sneaky:
        def __reduce__(self):
            raise AssertionError("never pickled")

    back = wire.decode(wire.encode([Sneaky(), np.array([object()], dtype=object), lambda: 1]))
    assert all(isinstance(x, wire.Opaque) for x in back)
    assert "Sneaky" in repr(back[0])


def test_a_pickle_is_never_loaded(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (marker.touch, ())

    blob = pickle.dumps(Payload())
    objects = _npy(np.array([Payload()], dtype=object))
    for message in (blob, _message({"__tree__.npy": _tree({"ndarray": "a0"}), "a0.npy": objects}),
                    _message({"__tree__.npy": blob})):
        with pytest.raises(wire.WireError):
            wire.decode(message)
    assert not marker.exists()


@pytest.mark.parametrize("entries, compress", [
    ({"__tree__.npy": _tree(None), "../evil.npy": _npy(np.zeros(1))}, zipfile.ZIP_STORED),
    ({"__tree__.npy": _tree(None)}, zipfile.ZIP_DEFLATED),
    ({"a0.npy": _npy(np.zeros(1))}, zipfile.ZIP_STORED),
    ({"__tree__.npy": _tree({"ndarray": "a0"}), "a0.npy": _npy(np.zeros(2, dtype="i4,f8"))}, zipfile.ZIP_STORED),
    ({"__tree__.npy": _tree({"import": "os"})}, zipfile.ZIP_STORED),
    ({"__tree__.npy": _tree({"ndarray": "a9"})}, zipfile.ZIP_STORED),
], ids=["path", "compressed", "no-tree", "structured", "unknown-node", "missing-array"])
def test_messages_encode_would_not_write_are_refused(entries, compress):
    with pytest.raises(wire.WireError):
        wire.decode(_message(entries, compress))


def test_limits_on_size_and_depth():
    with pytest.raises(wire.WireError, match="over the limit"):
        wire.decode(wire.encode(np.zeros(1000)), max_bytes=1000)
    with pytest.raises(wire.WireError, match="structure of"):  # millions of Python objects: no
        wire.decode(wire.encode([0] * (3 << 20)))
    deep = None
    for _ in range(200):
        deep = {"list": [deep]}
    with pytest.raises(wire.WireError):
        wire.decode(_message({"__tree__.npy": _tree(deep)}))


def test_a_module_whose_weights_do_not_match_its_settings_is_refused():
    tree = {"module": "LSTM", "config": {"input_size": 10**6, "hidden_size": 10**6}, "dtype": "torch.float32",
            "state": {"dict": []}}
    with pytest.raises(wire.WireError, match="do not match"):
        wire.decode(_message({"__tree__.npy": _tree(tree)}))
    tree["module"] = "Transformer"
    with pytest.raises(wire.WireError, match="unknown module"):
        wire.decode(_message({"__tree__.npy": _tree(tree)}))
