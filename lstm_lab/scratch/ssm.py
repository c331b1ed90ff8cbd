"""The selective state-space model (S6, Mamba's SSM) in NumPy: forward loop and backward by hand.

The NumPy twin of :func:`lstm_lab.nn.ssm.selective_scan`, for reading every step of the
recurrence and every gradient of its backward pass (chapter 8).

Glossary (book symbols -> code): b batch, t time steps, d channels, n state size per channel;
x_t -> ``x[:, t]`` (b, d); delta_t -> ``delta[:, t]`` (b, d), > 0; A (d, n), negative;
B_t, C_t -> ``B[:, t]``, ``C[:, t]`` (b, n), shared by the channels; D (d,); h_t (b, d, n).

Equations (chapter 8):

- eq-ssm-zoh-a:    A_bar_t = exp(delta_t A)
- eq-ssm-simple-b: B_bar_t = delta_t B_t  (Mamba's choice, ``discretization="zoh_a_euler_b"``)
- eq-ssm-zoh-b:    B_bar_t = (exp(delta_t A) - 1) / A * B_t  (``discretization="zoh"``)
- eq-s6-recurrence: h_t = A_bar_t * h_{t-1} + B_bar_t x_t,  y_t = C_t . h_t + D x_t

Backward: with g_t = dL/dh_t (everything that reaches h_t, from y_t and from h_{t+1}),
g_t = C_t dy_t + A_bar_{t+1} * g_{t+1}: the same recurrence run backwards in time.
"""

from __future__ import annotations

import numpy as np

from lstm_lab.checks import check_choice
from lstm_lab.scratch.activations import as_float_array

DISCRETIZATIONS = ("zoh_a_euler_b", "zoh")


def _check(x, delta, A, B, C, D, h0):
    x = as_float_array(x, "x")
    if x.ndim != 3:
        raise ValueError(f"x must have shape (b, t, d), got {x.shape}")
    b, t, d = x.shape
    delta = as_float_array(delta, "delta")
    if delta.shape != (b, t, d):
        raise ValueError(f"delta must have the shape of x, (b, t, d) = {(b, t, d)}, got {delta.shape}")
    A = as_float_array(A, "A")
    if A.ndim != 2 or A.shape[0] != d:
        raise ValueError(f"A must have shape (d, n) with d = {d}, got {A.shape}")
    n = A.shape[1]
    B, C = as_float_array(B, "B"), as_float_array(C, "C")
    for name, value in (("B", B), ("C", C)):
        if value.shape != (b, t, n):
            raise ValueError(f"{name} must have shape (b, t, n) = {(b, t, n)}, got {value.shape}")
    if D is not None:
        D = as_float_array(D, "D")
        if D.shape != (d,):
            raise ValueError(f"D must have shape (d,) = {(d,)}, got {D.shape}")
    if h0 is not None:
        h0 = as_float_array(h0, "h0")
        if h0.shape != (b, d, n):
            raise ValueError(f"h0 must have shape (b, d, n) = {(b, d, n)}, got {h0.shape}")
    return x, delta, A, B, C, D, h0


def selective_scan(x, delta, A, B, C, D=None, *, h0=None, discretization: str = "zoh_a_euler_b"):
    """The selective SSM over a batch of sequences: returns ``(y, cache)``, y (b, t, d).

    Shapes as in the module's glossary; D None means no skip term, h0 None a zero start.
    ``cache`` holds what :func:`selective_scan_backward` needs.
    """
    check_choice(discretization, DISCRETIZATIONS, "discretization")
    x, delta, A, B, C, D, h0 = _check(x, delta, A, B, C, D, h0)
    b, t, d = x.shape
    n = A.shape[1]
    dA = delta[..., None] * A  # (b, t, d, n)
    A_bar = np.exp(dA)  # eq-ssm-zoh-a  (b, t, d, n)
    if discretization == "zoh":
        B_bar = np.expm1(dA) / A * B[:, :, None, :]  # eq-ssm-zoh-b  (b, t, d, n)
    else:
        B_bar = delta[..., None] * B[:, :, None, :]  # eq-ssm-simple-b  (b, t, d, n)
    h = np.zeros((b, d, n), dtype=np.result_type(x, A)) if h0 is None else h0  # (b, d, n)
    hs = np.empty((b, t, d, n), dtype=h.dtype)
    for step in range(t):
        h = A_bar[:, step] * h + B_bar[:, step] * x[:, step, :, None]  # eq-s6-recurrence  (b, d, n)
        hs[:, step] = h
    y = np.einsum("btdn,btn->btd", hs, C)  # eq-s6-recurrence  C_t . h_t  (b, t, d)
    if D is not None:
        y = y + D * x  # eq-s6-recurrence  + D x_t
    cache = {"x": x, "delta": delta, "A": A, "B": B, "C": C, "D": D, "h0": h0, "A_bar": A_bar,
             "B_bar": B_bar, "hs": hs, "discretization": discretization}
    return y, cache


def selective_scan_backward(dy, cache):
    """Gradients of L = sum(dy * y) for :func:`selective_scan`: a dict with ``"x"``, ``"delta"``,
    ``"A"``, ``"B"``, ``"C"``, ``"D"`` (None without D) and ``"h0"`` (the start's gradient,
    also when the start was zeros)."""
    x, delta, A, B, C, D = (cache[k] for k in ("x", "delta", "A", "B", "C", "D"))
    A_bar, B_bar, hs = cache["A_bar"], cache["B_bar"], cache["hs"]
    dy = as_float_array(dy, "dy")
    if dy.shape != x.shape:
        raise ValueError(f"dy must have the shape of y, {x.shape}, got {dy.shape}")
    b, t, d = x.shape
    dh_direct = dy[..., None] * C[:, :, None, :]  # dL/dh_t through y_t  (b, t, d, n)
    g = np.empty_like(hs)  # g_t = dL/dh_t, all paths  (b, t, d, n)
    carry = np.zeros_like(hs[:, 0])  # A_bar_{t+1} * g_{t+1}  (b, d, n)
    for step in reversed(range(t)):
        g[:, step] = dh_direct[:, step] + carry
        carry = A_bar[:, step] * g[:, step]
    h_prev = np.concatenate([(np.zeros_like(hs[:, :1]) if cache["h0"] is None else cache["h0"][:, None]),
                             hs[:, :-1]], axis=1)  # h_{t-1}  (b, t, d, n)
    dA_bar = g * h_prev  # (b, t, d, n)
    dB_bar = g * x[..., None]  # (b, t, d, n)
    dx = np.einsum("btdn,btdn->btd", g, B_bar)  # (b, t, d)
    dC = np.einsum("btd,btdn->btn", dy, hs)  # (b, t, n)
    dD = None if D is None else np.einsum("btd,btd->d", dy, x)  # (d,)
    if D is not None:
        dx = dx + D * dy
    # A_bar = exp(delta A): dA_bar/d(delta A) = A_bar
    d_dA = dA_bar * A_bar  # dL/d(delta A)  (b, t, d, n)
    ddelta = np.einsum("btdn,dn->btd", d_dA, A)
    dA = np.einsum("btdn,btd->dn", d_dA, delta)
    if cache["discretization"] == "zoh":  # B_bar = (A_bar - 1) / A * B
        dB_bar_dB = np.expm1(delta[..., None] * A) / A  # (b, t, d, n)
        dB = np.einsum("btdn,btdn->btn", dB_bar, dB_bar_dB)
        ddelta = ddelta + np.einsum("btdn,btdn,btn->btd", dB_bar, A_bar, B)  # d/d delta: A_bar B
        dA = dA + np.einsum("btdn,btdn,btn->dn", dB_bar,
                            (delta[..., None] * A * A_bar - np.expm1(delta[..., None] * A)) / A**2, B)
    else:  # B_bar = delta B
        dB = np.einsum("btdn,btd->btn", dB_bar, delta)
        ddelta = ddelta + np.einsum("btdn,btn->btd", dB_bar, B)
    dh0 = carry  # A_bar_1 * g_1
    return {"x": dx, "delta": ddelta, "A": dA, "B": dB, "C": dC, "D": dD, "h0": dh0}
