"""The two squashing functions of gated recurrence: the sigmoid and tanh.

Symbols (see the book's notation page):

- ``sigma`` is the logistic sigmoid, mapping any real number into (0, 1): eq. ``eq-sigmoid``.
- ``tanh`` maps any real number into (-1, 1): eq. ``eq-tanh``.
"""

from __future__ import annotations

import numpy as np


def as_float_array(x, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind in "fc":
        return arr
    if arr.dtype.kind in "iub":
        return arr.astype(np.float64)
    raise TypeError(f"{name} must be numeric (float, int or bool), got dtype {arr.dtype}")


def sigmoid(x):
    """Logistic sigmoid ``1 / (1 + exp(-x))``, eq. ``eq-sigmoid``; elementwise, any shape.

    Computed without overflow for large ``|x|``: for negative ``x`` the equivalent form
    ``exp(x) / (1 + exp(x))`` is used. Float inputs keep their dtype; integers become float64.
    """
    x = as_float_array(x, "x")
    z = np.exp(-np.abs(x))  # in (0, 1]: never overflows
    # eq-sigmoid for x >= 0; for x < 0 the same value as 1 - sigma(-x) (eq-sigmoid-symmetry)
    return np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z)).astype(x.dtype, copy=False)


def dsigmoid(s):
    """Derivative of the sigmoid written in terms of its output ``s = sigmoid(x)``: ``s (1 - s)``."""
    s = as_float_array(s, "s")
    return s * (1.0 - s)  # eq-sigmoid-derivative


def tanh(x):
    """Hyperbolic tangent, eq. ``eq-tanh``; elementwise, any shape. ``tanh(x) = 2 sigmoid(2x) - 1``."""
    x = as_float_array(x, "x")
    return np.tanh(x)  # eq-tanh, which equals 2 sigma(2x) - 1 (eq-tanh-sigmoid)


def dtanh(t):
    """Derivative of tanh written in terms of its output ``t = tanh(x)``: ``1 - t**2``."""
    t = as_float_array(t, "t")
    return 1.0 - t * t
