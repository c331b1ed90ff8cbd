"""The checks of arguments that every module shares: one function per kind of argument.

The rule, everywhere in ``lstm_lab``: a value of the wrong type raises ``TypeError``, a value of
the right type outside what is allowed raises ``ValueError``, and each message names the
argument, what it must be, and what it got.
"""

from __future__ import annotations

import numpy as np


def check_int(value, name: str, *, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` as an int in [minimum, maximum] (no upper end when ``maximum`` is None).

    Bools are not ints here; NumPy integers are.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        if maximum is not None:
            allowed = f"an int in [{minimum}, {maximum}]"
        else:
            allowed = {1: "a positive int", 0: "a non-negative int"}.get(minimum, f"an int >= {minimum}")
        raise ValueError(f"{name} must be {allowed}, got {value}")
    return value


def check_size(value, name: str) -> int:
    """A size, a count or a length: a positive int."""
    return check_int(value, name, minimum=1)


def check_choice(value, allowed, name: str = "method") -> str:
    """One of the names in ``allowed``: a choice made by name (a str).

    The choice of algorithm is called ``method`` everywhere in ``lstm_lab`` and, for a module,
    made once in its constructor; other choices have their own names (``block``, ``forget_gate``).
    """
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, one of {', '.join(map(repr, allowed))}; got {type(value).__name__}")
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def check_flag(value, name: str) -> bool:
    """``value`` must be True or False (a bool; 0 and 1 are not)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def check_like(value, like, name: str, like_name: str) -> None:
    """``value`` (a tensor) must have ``like``'s dtype (else ``TypeError``) and be on its device
    (else ``ValueError``)."""
    if value.dtype != like.dtype:
        raise TypeError(f"{name} must have {like_name}'s dtype {like.dtype}, got {value.dtype}")
    if value.device != like.device:
        raise ValueError(f"{name} must be on {like_name}'s device {like.device}, got {value.device}")


# ----------------------------------------------------------------------------- attention's shapes
#: the axes of q, k and v, as error messages spell them
QKV_AXES = {"q": "t_q, d_k", "k": "t_k, d_k", "v": "t_k, d_v"}


def check_attention_shapes(q_shape, k_shape, v_shape) -> None:
    """q (..., t_q, d_k), k (..., t_k, d_k), v (..., t_k, d_v): at least two axes each, one
    d_k for q and k, one t_k for k and v, and leading axes that broadcast together.

    Shapes only (tuples or ``torch.Size``), so that the NumPy and the PyTorch attention share it.
    """
    q_shape, k_shape, v_shape = shapes = tuple(map(tuple, (q_shape, k_shape, v_shape)))
    for (name, axes), shape in zip(QKV_AXES.items(), shapes):
        if len(shape) < 2:
            raise ValueError(f"{name} must have shape (..., {axes}) (at least 2 axes), got shape {shape}")
    if q_shape[-1] != k_shape[-1]:
        raise ValueError(f"q and k must share d_k (their last axis), got q {q_shape} and k {k_shape}")
    if k_shape[-2] != v_shape[-2]:
        raise ValueError(f"k and v must share t_k (their second-to-last axis), got k {k_shape} and v {v_shape}")
    try:
        np.broadcast_shapes(q_shape[:-2], k_shape[:-2], v_shape[:-2])
    except ValueError:
        raise ValueError(
            f"the leading axes of q {q_shape}, k {k_shape} and v {v_shape} do not broadcast together"
        ) from None


def check_mask_shape(shape, t_q: int, t_k: int) -> None:
    """An attention mask's ``shape`` must broadcast to (..., t_q, t_k)."""
    shape = tuple(shape)
    try:
        np.broadcast_shapes(shape[-2:], (t_q, t_k))
    except ValueError:
        raise ValueError(f"mask must broadcast to (..., t_q, t_k) = (..., {t_q}, {t_k}), got shape {shape}") from None
