"""Checks at the public boundary of the NumPy models: bad input gets a clear error."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def check_sequence(x, name: str = "x") -> np.ndarray:
    """``x`` as a float array of shape (b, t, d)."""
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if x.dtype.kind not in "f":
        raise TypeError(
            f"{name} must be a floating-point array of shape (b, t, d), got dtype {x.dtype}"
            + ("; one-hot encode integer tokens first" if x.dtype.kind in "iub" else "")
        )
    if x.ndim != 3:
        raise ValueError(f"{name} must have shape (b, t, d) (batch, time, features), got shape {x.shape}")
    if x.shape[1] == 0:
        raise ValueError(f"{name} must have at least one time step, got shape {x.shape}")
    return x


def check_params(params: Mapping, shapes: Mapping[str, tuple[int, ...]], what: str) -> dict:
    """Every expected key present with the expected shape, and no others."""
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict of NumPy arrays, got {type(params).__name__}")
    missing = [k for k in shapes if k not in params]
    if missing:
        raise KeyError(f"params for {what} is missing {missing}; expected keys {list(shapes)}")
    extra = [k for k in params if k not in shapes]
    if extra:
        raise KeyError(f"params for {what} has unexpected keys {extra}; expected keys {list(shapes)}")
    out = {}
    for k, shape in shapes.items():
        arr = np.asarray(params[k])
        if arr.shape != shape:
            raise ValueError(f"params[{k!r}] for {what} must have shape {shape}, got {arr.shape}")
        out[k] = arr
    return out


def check_state(state, name: str, b: int, h: int, dtype) -> np.ndarray:
    """An initial state of shape (b, h); zeros when ``state`` is None."""
    if state is None:
        return np.zeros((b, h), dtype=dtype)
    state = np.asarray(state)
    if state.shape != (b, h):
        raise ValueError(f"{name} must have shape (b, h) = {(b, h)}, got {state.shape}")
    return state


def input_size(params: Mapping, key: str) -> int:
    """The input size d read off params[key] of shape (d, h), with a clear error."""
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict of NumPy arrays, got {type(params).__name__}")
    if key not in params:
        raise KeyError(f"params is missing {key!r}")
    w = np.asarray(params[key])
    if w.ndim != 2:
        raise ValueError(f"params[{key!r}] must have shape (d, h), got {w.shape}")
    return w.shape[0], w.shape[1]


def check_features(x: np.ndarray, d: int, name: str = "x") -> None:
    if x.shape[2] != d:
        raise ValueError(f"{name} has {x.shape[2]} features per step but the parameters expect d = {d}")


def check_upstream(dhs, hs_shape: tuple[int, ...], name: str = "dhs") -> np.ndarray:
    dhs = np.asarray(dhs)
    if dhs.shape != hs_shape:
        raise ValueError(f"{name} must have the shape of hs {hs_shape}, got {dhs.shape}")
    return dhs


def check_model_inputs(x, params, weight_key: str, shapes_of, what: str):
    """Validate a forward pass's ``x`` and ``params`` together.

    ``shapes_of(d, h)`` gives the expected parameter shapes, with d and h read off
    ``params[weight_key]`` (d, h). Returns ``(x, params, h, dtype)``, dtype being the one the
    computation runs in.
    """
    x = check_sequence(x)
    d, h = input_size(params, weight_key)
    p = check_params(params, shapes_of(d, h), what)
    check_features(x, d)
    return x, p, h, np.result_type(x, *p.values())
