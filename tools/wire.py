"""Values out of a grading sandbox, as data that cannot run code.

What a submission's function returns crosses from the sandbox to the grader as one message: a
``.npz`` archive (stored, not compressed) of plain NumPy arrays, with the structure around them
as JSON in the entry ``__tree__``. ``decode`` reads it with ``numpy.load(allow_pickle=False)``
after checking every entry's name, size and compression, and rebuilds only what this module
names: ``None``, bools, numbers, strings, lists, tuples, dicts, NumPy arrays and scalars, PyTorch
tensors, and the PyTorch recurrent modules ``torch.nn.RNN``, ``LSTM`` and ``GRU`` (their
configuration and weights). Anything else arrives as an ``Opaque`` placeholder that names its
type. No message can make the grader import, call or unpickle anything.

Both sides use this file: the worker inside the sandbox encodes (``tools/worker.py``), the
grader decodes (``tools/assignments.py``).
"""

from __future__ import annotations

import io
import json
import re
import zipfile

import numpy as np

try:  # the worker needs torch only when the submission uses it
    import torch
except ImportError:  # pragma: no cover - torch is part of the course's environment
    torch = None

TREE = "__tree__"
MAX_DEPTH = 64
MAX_ENTRIES = 100_000
MAX_TREE_BYTES = 4 << 20  # the structure; data belongs in arrays
ARRAY_KINDS = "biufc"  # bool, int, uint, float, complex: never object, void or strings
RNN_MODULES = ("RNN", "LSTM", "GRU")
RNN_CONFIG = ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional",
              "proj_size", "nonlinearity")
_NAME = re.compile(r"^(a\d{1,6}|__tree__)\.npy$")


class WireError(ValueError):
    """A message that is not one ``encode`` could have written, or breaks a limit."""


class Opaque:
    """Something the submission returned that does not cross the sandbox: only its type's name."""

    def __init__(self, type_name: str):
        self.type_name = type_name

    def __repr__(self) -> str:
        return f"<a {self.type_name} from the submission>"


# ----------------------------------------------------------------------------- encode (inside)
def encode(value) -> bytes:
    """``value`` as a message (see the module's docstring)."""
    arrays: dict[str, np.ndarray] = {}

    def array(a: np.ndarray) -> str:
        key = f"a{len(arrays)}"
        arrays[key] = np.asarray(a)
        return key

    def walk(v, depth: int):
        if depth > MAX_DEPTH:
            raise WireError(f"nested deeper than {MAX_DEPTH}")
        if v is None or isinstance(v, (bool, int, float, str)) and type(v) in (bool, int, float, str):
            return v
        if isinstance(v, complex):
            return {"complex": [v.real, v.imag]}
        if isinstance(v, np.ndarray) and v.dtype.kind in ARRAY_KINDS:
            return {"ndarray": array(v)}
        if isinstance(v, np.generic) and np.dtype(type(v)).kind in ARRAY_KINDS:
            return {"npscalar": array(np.asarray(v))}
        if torch is not None and isinstance(v, torch.Tensor):
            t = v.detach().cpu()
            if t.dtype in (torch.bfloat16, torch.float16):
                t = t.float()
            return {"tensor": array(t.resolve_conj().resolve_neg().numpy()), "dtype": str(v.dtype),
                    "requires_grad": bool(v.requires_grad)}
        if torch is not None and type(v) in tuple(getattr(torch.nn, n) for n in RNN_MODULES):
            config = {k: getattr(v, k) for k in RNN_CONFIG if hasattr(v, k)}
            if type(v) is not torch.nn.RNN:
                config.pop("nonlinearity", None)
            dtype = next((str(p.dtype) for p in v.parameters()), "torch.float32")
            return {"module": type(v).__name__, "config": config, "dtype": dtype, "training": bool(v.training),
                    "state": walk(dict(v.state_dict()), depth + 1)}
        if isinstance(v, (list, tuple)):
            return {"list" if isinstance(v, list) else "tuple": [walk(x, depth + 1) for x in v]}
        if isinstance(v, dict):
            return {"dict": [[walk(k, depth + 1), walk(x, depth + 1)] for k, x in v.items()]}
        return {"opaque": type(v).__name__[:80]}

    tree = walk(value, 0)
    arrays[TREE] = np.frombuffer(json.dumps(tree).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


# ----------------------------------------------------------------------------- decode (outside)
def _arrays(message: bytes, max_bytes: int) -> dict[str, np.ndarray]:
    if len(message) > max_bytes:
        raise WireError(f"a message of {len(message)} bytes, over the limit of {max_bytes}")
    try:
        archive = zipfile.ZipFile(io.BytesIO(message))
        infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as err:
        raise WireError(f"not an npz archive: {err}") from None
    if len(infos) > MAX_ENTRIES:
        raise WireError(f"{len(infos)} entries, over the limit of {MAX_ENTRIES}")
    total = 0
    for info in infos:
        if not _NAME.match(info.filename) or info.compress_type != zipfile.ZIP_STORED:
            raise WireError(f"an entry that encode does not write: {info.filename[:80]!r}")
        total += info.file_size
    if total > max_bytes:
        raise WireError(f"entries of {total} bytes, over the limit of {max_bytes}")
    out = {}
    try:
        with np.load(io.BytesIO(message), allow_pickle=False) as npz:
            for key in npz.files:
                a = npz[key]
                if a.dtype.kind not in ARRAY_KINDS or a.dtype.fields is not None:
                    raise WireError(f"an array of dtype {a.dtype}")
                out[key] = a
    except WireError:
        raise
    except Exception as err:  # numpy's own refusals, malformed headers
        raise WireError(f"unreadable array: {type(err).__name__}: {str(err)[:200]}") from None
    if TREE not in out or out[TREE].dtype != np.uint8 or out[TREE].ndim != 1:
        raise WireError("no structure entry")
    if out[TREE].size > MAX_TREE_BYTES:
        raise WireError(f"a structure of {out[TREE].size} bytes, over the limit of {MAX_TREE_BYTES}")
    return out


def decode(message: bytes, *, max_bytes: int = 256 << 20):
    """The value a message holds; ``WireError`` if it is not a message ``encode`` writes."""
    arrays = _arrays(message, max_bytes)
    try:
        tree = json.loads(arrays.pop(TREE).tobytes().decode())
    except (ValueError, RecursionError) as err:
        raise WireError(f"the structure is not JSON: {str(err)[:200]}") from None

    def take(key) -> np.ndarray:
        if not isinstance(key, str) or key not in arrays:
            raise WireError(f"no array {str(key)[:40]!r}")
        return arrays[key]

    def tensor(node: dict):
        a = take(node["tensor"])
        dtype = getattr(torch, str(node.get("dtype", "")).removeprefix("torch."), None)
        if not isinstance(dtype, torch.dtype):
            raise WireError(f"unknown tensor dtype {str(node.get('dtype'))[:40]!r}")
        t = torch.from_numpy(a.copy()).to(dtype)
        if node.get("requires_grad") is True and (t.is_floating_point() or t.is_complex()):
            t.requires_grad_(True)
        return t

    def module(node: dict, depth: int):
        kind = node.get("module")
        if kind not in RNN_MODULES or not isinstance(node.get("config"), dict):
            raise WireError(f"unknown module {str(kind)[:40]!r}")
        config = {k: v for k, v in node["config"].items() if k in RNN_CONFIG}
        if any(not isinstance(v, (bool, int, float, str)) for v in config.values()):
            raise WireError("a module configuration that is not numbers")
        dtype = getattr(torch, str(node.get("dtype", "")).removeprefix("torch."), None)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise WireError("a module dtype that is not a float type")
        state = walk(node.get("state"), depth + 1)
        if not isinstance(state, dict):
            raise WireError("a module without its weights")
        cls = getattr(torch.nn, kind)
        try:  # first with no memory at all, to check the weights sent are the module's own
            shapes = {k: tuple(v.shape) for k, v in cls(**config, device="meta", dtype=dtype).state_dict().items()}
        except Exception as err:
            raise WireError(f"a {kind} that cannot be built: {str(err)[:200]}") from None
        if shapes != {k: tuple(v.shape) if torch.is_tensor(v) else None for k, v in state.items()}:
            raise WireError(f"a {kind} whose weights do not match its configuration")
        built = cls(**config, dtype=dtype)
        built.load_state_dict(state)
        built.train(node.get("training") is True)
        return built

    def walk(node, depth: int):
        if depth > MAX_DEPTH:
            raise WireError(f"nested deeper than {MAX_DEPTH}")
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, dict) and len(node) >= 1:
            if "list" in node or "tuple" in node:
                items = node.get("list", node.get("tuple"))
                if not isinstance(items, list):
                    raise WireError("a list that is not a list")
                values = [walk(x, depth + 1) for x in items]
                return values if "list" in node else tuple(values)
            if "dict" in node:
                if not isinstance(node["dict"], list) or any(
                        not isinstance(p, list) or len(p) != 2 for p in node["dict"]):
                    raise WireError("a dict that is not a list of pairs")
                out = {}
                for k, v in node["dict"]:
                    key = walk(k, depth + 1)
                    if not isinstance(key, (str, int, float, bool, tuple, type(None))):
                        raise WireError("a dict key that cannot be a key")
                    out[key] = walk(v, depth + 1)
                return out
            if "ndarray" in node:
                return take(node["ndarray"]).copy()
            if "npscalar" in node:
                a = take(node["npscalar"])
                if a.shape != ():
                    raise WireError("a NumPy scalar that is not 0-d")
                return a[()]
            if "complex" in node:
                re_im = node["complex"]
                if not (isinstance(re_im, list) and len(re_im) == 2
                        and all(isinstance(x, (int, float)) for x in re_im)):
                    raise WireError("a complex number that is not two numbers")
                return complex(*re_im)
            if "tensor" in node and torch is not None:
                return tensor(node)
            if "module" in node and torch is not None:
                return module(node, depth)
            if "opaque" in node:
                return Opaque(str(node["opaque"])[:80])
        raise WireError(f"an unknown node {str(node)[:80]!r}")

    return walk(tree, 0)


# ----------------------------------------------------------------------------- both sides
def leaves(value) -> list:
    """The arrays and tensors in ``value`` (lists, tuples and dict values walked in order), the
    order in which ``encode`` and ``decode`` meet them."""
    found = []

    def walk(v, depth: int):
        if depth > MAX_DEPTH:
            return
        if isinstance(v, np.ndarray) or torch is not None and isinstance(v, torch.Tensor):
            found.append(v)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x, depth + 1)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x, depth + 1)

    walk(value, 0)
    return found


def replace_tensors(value, new: dict[int, object]):
    """``value`` with each tensor whose ``id`` is a key of ``new`` replaced by its value."""
    if torch is not None and isinstance(value, torch.Tensor):
        return new.get(id(value), value)
    if isinstance(value, list):
        return [replace_tensors(x, new) for x in value]
    if isinstance(value, tuple) and type(value) is tuple:
        return tuple(replace_tensors(x, new) for x in value)
    if isinstance(value, dict):
        return {k: replace_tensors(x, new) for k, x in value.items()}
    return value
