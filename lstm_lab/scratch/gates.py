"""A gate is a sigmoid times a value; a gated memory is built from two of them.

Symbols (see the book's notation page and chapter 0):

- ``a``  pre-activation of a gate; the gate's opening is ``sigma(a)`` in (0, 1).
- ``v``  the value the gate lets through.
- ``w``  write gate of a gated memory, in [0, 1].
- ``m``  the memory; ``m0`` its initial value.
"""

from __future__ import annotations

import numpy as np

from lstm_lab.scratch.activations import as_float_array, sigmoid


def gate(values, pre_activation):
    """A soft switch: ``sigmoid(pre_activation) * values``, eq. ``eq-gate``.

    Parameters
    ----------
    values
        Array of any shape: what the gate lets through.
    pre_activation
        Array broadcastable against ``values``: large positive opens the gate (factor
        near 1), large negative closes it (factor near 0).

    Returns
    -------
    numpy.ndarray
        The gated values, of the broadcast shape of the two arguments.
    """
    values = as_float_array(values, "values")
    pre_activation = as_float_array(pre_activation, "pre_activation")
    try:
        np.broadcast_shapes(values.shape, pre_activation.shape)
    except ValueError:
        raise ValueError(
            f"pre_activation of shape {pre_activation.shape} does not broadcast against "
            f"values of shape {values.shape}"
        ) from None
    return sigmoid(pre_activation) * values  # eq-gate


def gate_backward(dy, values, pre_activation):
    """Backward pass of :func:`gate`, eq. ``eq-gate-gradients``.

    Given the upstream gradient ``dy`` of a loss with respect to ``y = sigmoid(a) * v``,
    returns ``(dvalues, dpre_activation)``: ``dv = dy * sigmoid(a)`` and
    ``da = dy * sigmoid(a) * (1 - sigmoid(a)) * v``. All three arguments must have the same
    shape (the forward pass may broadcast; reduce the gradients yourself if it did).
    """
    dy = as_float_array(dy, "dy")
    values = as_float_array(values, "values")
    pre_activation = as_float_array(pre_activation, "pre_activation")
    if not dy.shape == values.shape == pre_activation.shape:
        raise ValueError(
            "dy, values and pre_activation must have the same shape, got "
            f"{dy.shape}, {values.shape} and {pre_activation.shape}"
        )
    s = sigmoid(pre_activation)
    dvalues = dy * s  # eq-gate-gradients, left
    dpre_activation = dy * s * (1.0 - s) * values  # eq-gate-gradients, right
    return dvalues, dpre_activation


def gated_memory(values, write_gate, m0=0.0):
    """Run a one-number memory that a write gate controls, eq. ``eq-gated-memory``.

    At every step ``m_t = (1 - w_t) * m_{t-1} + w_t * v_t``: where the write gate is open
    (``w_t`` near 1) the memory takes the new value, where it is shut (near 0) it keeps
    the old one. This is the LSTM's cell update with its input gate ``w`` and its forget
    gate tied to ``1 - w`` (chapter 4 calls that a coupled gate).

    Parameters
    ----------
    values
        Shape ``(t,)`` or ``(b, t)``: the value offered at each step.
    write_gate
        Same shape as ``values``, entries in [0, 1].
    m0
        Initial memory, a scalar or shape ``(b,)``.

    Returns
    -------
    numpy.ndarray
        The memory after each step, same shape as ``values``.
    """
    values = as_float_array(values, "values")
    write_gate = as_float_array(write_gate, "write_gate")
    if values.ndim not in (1, 2):
        raise ValueError(f"values must have shape (t,) or (b, t), got shape {values.shape}")
    if write_gate.shape != values.shape:
        raise ValueError(
            f"write_gate must have the shape of values {values.shape}, got {write_gate.shape}"
        )
    if np.any((write_gate < 0) | (write_gate > 1)):
        raise ValueError("write_gate entries must lie in [0, 1]")
    lead = values.shape[:-1]
    m0 = as_float_array(m0, "m0")
    try:
        m = np.broadcast_to(m0, lead).astype(values.dtype)
    except ValueError:
        raise ValueError(f"m0 must be a scalar or have shape {lead}, got shape {m0.shape}") from None
    memory = np.empty_like(values)
    for t in range(values.shape[-1]):
        w = write_gate[..., t]
        m = (1.0 - w) * m + w * values[..., t]  # eq-gated-memory
        memory[..., t] = m
    return memory
