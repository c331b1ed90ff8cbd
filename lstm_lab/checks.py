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
            allowed = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name} must be {allowed}, got {value}")
    return value


def check_size(value, name: str) -> int:
    """A size, a count or a length: a positive int."""
    return check_int(value, name, minimum=1)


def check_method(value, allowed, name: str = "method") -> str:
    """One of ``allowed``: the algorithm a function or module uses. Everywhere in ``lstm_lab``
    this choice is called ``method`` and, for a module, made once in its constructor."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, one of {', '.join(map(repr, allowed))}; got {type(value).__name__}")
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def check_like(value, like, name: str, like_name: str) -> None:
    """``value`` (a tensor) must have ``like``'s dtype (else ``TypeError``) and be on its device
    (else ``ValueError``)."""
    if value.dtype != like.dtype:
        raise TypeError(f"{name} must have {like_name}'s dtype {like.dtype}, got {value.dtype}")
    if value.device != like.device:
        raise ValueError(f"{name} must be on {like_name}'s device {like.device}, got {value.device}")
