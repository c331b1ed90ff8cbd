"""Diagonal state-space models (SSMs): continuous time, discretisation, S4D-style and selective (S6).

Glossary (book symbols -> code):

- b batch, t time steps, d channels (each channel has its own SSM), n state size per channel.
- ``A`` (d, n): the diagonal of the state matrix, real and negative, stored as ``A_log`` with
  A = -exp(A_log) so that every mode decays; :func:`s4d_real_A_log` gives the S4D-real start
  A[:, k] = -(k + 1).
- ``B`` (d, n) or, selective, (b, t, n): the SSM *input* matrix. Capital B is only ever this
  matrix, never the batch size.
- ``C`` (d, n) or (b, t, n): the output matrix; ``D`` (d,): the skip connection.
- ``delta`` (d,) or (b, t, d), > 0: the step size of the discretisation.
- ``A_bar``, ``B_bar``: the discrete-time matrices; ``h`` (b, d, n): the state; x, y (b, t, d).

Equations (labels of the state-space chapter):

- eq-ssm-continuous:  h'(s) = A h(s) + B x(s),  y(s) = C h(s)   (one scalar input x per channel)
- eq-ssm-zoh-a:       A_bar = exp(delta A)
- eq-ssm-zoh-b:       B_bar = (exp(delta A) - 1) / A * B        (exact zero-order hold, diagonal A)
- eq-ssm-simple-b:    B_bar = delta B                           (what Mamba's reference code uses)
- eq-ssm-recurrence:  h_t = A_bar h_{t-1} + B_bar x_t,  y_t = C h_t + D x_t
- eq-ssm-kernel:      K_k = C A_bar^k B_bar  (summed over the n state entries)
- eq-ssm-convolution: y_t = sum_{k=0}^{t} K_k x_{t-k} + D x_t
- eq-s6-recurrence:   h_t = exp(delta_t A) * h_{t-1} + delta_t B_t x_t,  y_t = C_t . h_t + D x_t
- eq-s6-gate:         with n = 1, B = C = 1 and the exact ZOH B_bar = (1 - a_t) / (-A):
                      h_t = a_t h_{t-1} + (1 - a_t) x_t / (-A),  a_t = exp(delta_t A);
                      for A = -1 and delta_t = softplus(w_t), a_t = sigmoid(-w_t) exactly, and the
                      update is the convex-combination gate of the GRU and of the coupled LSTM.

Which discretisation each model uses: the time-invariant (S4D-style) functions take whatever
``A_bar, B_bar`` the caller made (S4D itself uses :func:`discretize_zoh`); :func:`selective_scan`
and ``lstm_lab.nn.mamba.MambaBlock`` default to ``discretization="zoh_a_euler_b"``
(:func:`discretize_euler_b`: ZOH for A, delta B for B, as in Mamba), and accept ``"zoh"``.

Every fast path has a slow reference beside it: :func:`lti_convolution` (FFT) beside
:func:`lti_recurrence` (a loop), and ``selective_scan(method="parallel")`` (a parallel linear
scan from :mod:`lstm_lab.nn.scan`) beside ``method="sequential"`` (a loop over
:func:`selective_step`).
"""

from __future__ import annotations

import math

import torch

from lstm_lab.checks import check_choice, check_size
from lstm_lab.nn.scan import linear_scan

DISCRETIZATIONS = ("zoh_a_euler_b", "zoh")
SCAN_METHODS = ("sequential", "parallel", "chunked", "auto")


# ----------------------------------------------------------------------------- checks
def _check_tensor(value, name: str, shape_text: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {shape_text}, got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor of shape {shape_text}, got dtype {value.dtype}")
    return value


def _check_shape(value, name: str, shape: tuple[int, ...], shape_text: str) -> torch.Tensor:
    value = _check_tensor(value, name, shape_text)
    if tuple(value.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {shape_text} = {tuple(shape)}, got {tuple(value.shape)}")
    return value


def _check_same(values: dict[str, torch.Tensor], like: torch.Tensor, like_name: str) -> None:
    for name, v in values.items():
        if v.dtype != like.dtype or v.device != like.device:
            raise TypeError(
                f"{name} must match {like_name}'s dtype and device ({like.dtype}, {like.device}), "
                f"got ({v.dtype}, {v.device})"
            )


def _check_x(x, name: str = "x") -> torch.Tensor:
    x = _check_tensor(x, name, "(b, t, d)")
    if x.dim() != 3:
        raise ValueError(f"{name} must have shape (b, t, d) (batch-first), got shape {tuple(x.shape)}")
    if x.shape[1] == 0:
        raise ValueError(f"{name} must have at least one time step, got shape {tuple(x.shape)}")
    return x


def _check_A(A) -> torch.Tensor:
    A = _check_tensor(A, "A", "(d, n)")
    if A.dim() != 2:
        raise ValueError(f"A must have shape (d, n), got shape {tuple(A.shape)}")
    return A


# ----------------------------------------------------------------------------- continuous time
def s4d_real_A_log(d: int, n: int, *, dtype=None, device=None) -> torch.Tensor:
    """The S4D-real initialisation as ``A_log`` (d, n): A = -exp(A_log) has A[:, k] = -(k + 1)."""
    d, n = check_size(d, "d"), check_size(n, "n")
    k = torch.arange(1, n + 1, dtype=dtype or torch.get_default_dtype(), device=device)  # (n,)
    return torch.log(k).expand(d, n).clone()  # (d, n)


def A_from_log(A_log: torch.Tensor) -> torch.Tensor:
    """A = -exp(A_log): a real, strictly negative diagonal (d, n) for any real ``A_log``."""
    return -torch.exp(_check_tensor(A_log, "A_log", "(d, n)"))


def continuous_derivative(h: torch.Tensor, x: torch.Tensor, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """h'(s) = A h(s) + B x(s) for a diagonal A (eq-ssm-continuous).

    Shapes: h (b, d, n); x (b, d), one scalar input per channel; A, B (d, n). Returns (b, d, n).
    """
    return A * h + B * x[..., None]  # eq-ssm-continuous  (b, d, n)


# ----------------------------------------------------------------------------- discretisation


def _check_discretize(A, B, delta):
    A = _check_A(A)
    B = _check_tensor(B, "B", "broadcastable to (..., d, n)")
    delta = _check_tensor(delta, "delta", "(..., d)")
    if delta.dim() == 0:
        raise ValueError("delta must have shape (..., d), one step size per channel, got a scalar")
    if delta.shape[-1:] != A.shape[:1]:
        d = A.shape[0]
        raise ValueError(f"delta must have shape (..., d) with d = {d} (A is (d, n)), got {tuple(delta.shape)}")
    _check_same({"B": B, "delta": delta}, A, "A")
    return A, B, delta


def discretize_zoh(A: torch.Tensor, B: torch.Tensor, delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact zero-order hold for a diagonal A: the input is held constant over each step.

    Shapes: A (d, n), nonzero (negative for a stable SSM); B broadcastable to (..., d, n)
    (e.g. (d, n), or (b, t, 1, n) for a selective B); delta (..., d) > 0.
    Returns ``(A_bar, B_bar)``, broadcast to one shape (..., d, n).
    """
    A, B, delta = _check_discretize(A, B, delta)
    if bool(torch.any(A == 0)):
        raise ValueError("discretize_zoh divides by A; A must be nonzero (negative for a stable SSM)")
    return tuple(torch.broadcast_tensors(*_discretize(delta, A, B, "zoh")))


def discretize_euler_b(A: torch.Tensor, B: torch.Tensor, delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ZOH for A and the simpler B_bar = delta B that Mamba's reference code uses.

    The two B_bar agree to first order in delta A: (exp(delta A) - 1) / A = delta + O(delta^2 A).
    Shapes as for :func:`discretize_zoh`; A may be any real (d, n) here.
    """
    A, B, delta = _check_discretize(A, B, delta)
    return tuple(torch.broadcast_tensors(*_discretize(delta, A, B, "zoh_a_euler_b")))


def _discretize(delta, A, B, discretization: str):
    """The one home of both discretisations; no checks. delta (..., d), A (d, n), B broadcastable
    to (..., d, n) -> A_bar, B_bar (..., d, n)."""
    dA = delta[..., None] * A  # (..., d, n)
    A_bar = torch.exp(dA)  # eq-ssm-zoh-a
    if discretization == "zoh":
        B_bar = torch.expm1(dA) / A * B  # eq-ssm-zoh-b  (exp(delta A) - 1) / A * B
    else:
        B_bar = delta[..., None] * B  # eq-ssm-simple-b  (..., d, n)
    return A_bar, B_bar


# ----------------------------------------------------------------------------- time-invariant (S4D-style)
def _check_lti(x, A_bar, B_bar, C, D):
    x = _check_x(x)
    d = x.shape[2]
    A_bar = _check_tensor(A_bar, "A_bar", "(d, n)")
    if A_bar.dim() != 2 or A_bar.shape[0] != d:
        raise ValueError(f"A_bar must have shape (d, n) with d = {d} (x is (b, t, d)), got {tuple(A_bar.shape)}")
    n = A_bar.shape[1]
    _check_shape(B_bar, "B_bar", (d, n), "(d, n)")
    _check_shape(C, "C", (d, n), "(d, n)")
    mats = {"A_bar": A_bar, "B_bar": B_bar, "C": C}
    if D is not None:
        mats["D"] = _check_shape(D, "D", (d,), "(d,)")
    _check_same(mats, x, "x")


def lti_recurrence(
    x: torch.Tensor, A_bar: torch.Tensor, B_bar: torch.Tensor, C: torch.Tensor, D: torch.Tensor | None = None
) -> torch.Tensor:
    """The time-invariant SSM run as a recurrence, one step at a time (the readable reference).

    Shapes: x (b, t, d); A_bar, B_bar, C (d, n); D (d,) or None (no skip). Returns y (b, t, d).
    The state starts at zero.
    """
    _check_lti(x, A_bar, B_bar, C, D)
    b, t, d = x.shape
    h = x.new_zeros(b, d, A_bar.shape[1])  # (b, d, n)
    ys = []
    for step in range(t):
        x_t = x[:, step]  # (b, d)
        h = A_bar * h + B_bar * x_t[..., None]  # eq-ssm-recurrence  (b, d, n)
        y_t = (h * C).sum(-1)  # eq-ssm-recurrence  C h_t  (b, d)
        ys.append(y_t if D is None else y_t + D * x_t)  # eq-ssm-recurrence  + D x_t
    return torch.stack(ys, dim=1)  # (b, t, d)


def lti_kernel(A_bar: torch.Tensor, B_bar: torch.Tensor, C: torch.Tensor, t: int) -> torch.Tensor:
    """The convolution kernel K_k = C A_bar^k B_bar for k = 0 .. t-1 (eq-ssm-kernel).

    Shapes: A_bar, B_bar, C (d, n). Returns K (d, t). The powers A_bar^k come from a
    cumulative product, so any real A_bar (negative ones included) works.
    """
    A_bar = _check_tensor(A_bar, "A_bar", "(d, n)")
    if A_bar.dim() != 2:
        raise ValueError(f"A_bar must have shape (d, n), got {tuple(A_bar.shape)}")
    _check_shape(B_bar, "B_bar", tuple(A_bar.shape), "(d, n)")
    _check_shape(C, "C", tuple(A_bar.shape), "(d, n)")
    _check_same({"B_bar": B_bar, "C": C}, A_bar, "A_bar")
    t = check_size(t, "t")
    ones = torch.ones_like(A_bar)[..., None]  # (d, n, 1)
    powers = torch.cat([ones, A_bar[..., None].expand(*A_bar.shape, t - 1)], dim=-1).cumprod(-1)  # A_bar^k (d, n, t)
    return torch.einsum("dn,dnk->dk", C * B_bar, powers)  # eq-ssm-kernel  (d, t)


def lti_convolution(x: torch.Tensor, K: torch.Tensor, D: torch.Tensor | None = None) -> torch.Tensor:
    """The time-invariant SSM as a causal convolution computed with the FFT (eq-ssm-convolution).

    Shapes: x (b, t, d); K (d, L) with L >= t (only K[:, :t] is used); D (d,) or None.
    Returns y (b, t, d), y_t = sum_{k=0}^{t} K_k x_{t-k} + D x_t. Both signals are
    zero-padded to length 2t, so the circular convolution of the FFT does not wrap around.
    """
    x = _check_x(x)
    b, t, d = x.shape
    K = _check_tensor(K, "K", "(d, L) with L >= t")
    if K.dim() != 2 or K.shape[0] != d or K.shape[1] < t:
        raise ValueError(f"K must have shape (d, L) with d = {d} and L >= t = {t}, got {tuple(K.shape)}")
    mats = {"K": K}
    if D is not None:
        mats["D"] = _check_shape(D, "D", (d,), "(d,)")
    _check_same(mats, x, "x")
    L = 2 * t
    x_f = torch.fft.rfft(x, n=L, dim=1)  # (b, t + 1, d) complex
    K_f = torch.fft.rfft(K[:, :t].T, n=L, dim=0)  # (t + 1, d) complex
    y = torch.fft.irfft(x_f * K_f, n=L, dim=1)[:, :t]  # eq-ssm-convolution  (b, t, d)
    return y if D is None else y + D * x  # eq-ssm-convolution  + D x_t


# ----------------------------------------------------------------------------- selective (S6)
def _check_selective(x, delta, A, B, C, D, h0):
    x = _check_x(x)
    b, t, d = x.shape
    _check_shape(delta, "delta", (b, t, d), "(b, t, d)")
    A = _check_A(A)
    if A.shape[0] != d:
        raise ValueError(f"A must have shape (d, n) with d = {d} (x is (b, t, d)), got {tuple(A.shape)}")
    n = A.shape[1]
    _check_shape(B, "B", (b, t, n), "(b, t, n)")
    _check_shape(C, "C", (b, t, n), "(b, t, n)")
    mats = {"delta": delta, "A": A, "B": B, "C": C}
    if D is not None:
        mats["D"] = _check_shape(D, "D", (d,), "(d,)")
    if h0 is not None:
        mats["h0"] = _check_shape(h0, "h0", (b, d, n), "(b, d, n)")
    _check_same(mats, x, "x")


def _discretize_selective(delta, A, B, discretization):
    """delta (..., d), A (d, n), B (..., n), shared by the channels -> A_bar, B_bar (..., d, n)."""
    return _discretize(delta, A, B[..., None, :], discretization)


def selective_step(
    x_t: torch.Tensor,
    delta_t: torch.Tensor,
    A: torch.Tensor,
    B_t: torch.Tensor,
    C_t: torch.Tensor,
    D: torch.Tensor | None,
    h: torch.Tensor,
    *,
    discretization: str = "zoh_a_euler_b",
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the selective SSM (eq-s6-recurrence); no input checks (the loop's body).

    Shapes: x_t, delta_t (b, d); A (d, n); B_t, C_t (b, n); D (d,) or None; h (b, d, n).
    Returns ``(y_t (b, d), h_t (b, d, n))``.
    """
    A_bar, B_bar = _discretize_selective(delta_t, A, B_t, discretization)  # (b, d, n) each
    h = A_bar * h + B_bar * x_t[..., None]  # eq-s6-recurrence  (b, d, n)
    y_t = torch.einsum("bdn,bn->bd", h, C_t)  # eq-s6-recurrence  C_t . h_t  (b, d)
    return (y_t if D is None else y_t + D * x_t), h  # eq-s6-recurrence  + D x_t


def selective_scan(
    x: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    *,
    h0: torch.Tensor | None = None,
    method: str = "sequential",
    discretization: str = "zoh_a_euler_b",
    return_state: bool = False,
):
    """The selective SSM (S6) of Mamba: delta, B and C change with every time step.

    Shapes: x (b, t, d); delta (b, t, d), > 0 (e.g. a softplus); A (d, n), negative;
    B, C (b, t, n), shared by the d channels; D (d,) or None; h0 (b, d, n) or None (zeros).
    Returns y (b, t, d), or ``(y, h_T)`` with h_T (b, d, n) when ``return_state``.

    ``method``: "sequential", the readable loop over :func:`selective_step`; or "parallel",
    "chunked" or "auto", which hand the recurrence h_t = a_t * h_{t-1} + u_t with
    a = exp(delta A) and u = B_bar x, both (b, t, d, n), to :func:`lstm_lab.nn.scan.linear_scan`
    with that method. ``discretization``: "zoh_a_euler_b" (Mamba: B_bar = delta B) or "zoh"
    (exact: B_bar = (exp(delta A) - 1) / A B).
    """
    check_choice(method, SCAN_METHODS)
    check_choice(discretization, DISCRETIZATIONS, "discretization")
    _check_selective(x, delta, A, B, C, D, h0)
    b, t, d = x.shape
    n = A.shape[1]
    if method == "sequential":
        h = x.new_zeros(b, d, n) if h0 is None else h0  # (b, d, n)
        ys = []
        for step in range(t):
            y_t, h = selective_step(
                x[:, step], delta[:, step], A, B[:, step], C[:, step], D, h, discretization=discretization
            )
            ys.append(y_t)
        y = torch.stack(ys, dim=1)  # (b, t, d)
        return (y, h) if return_state else y
    a, B_bar = _discretize_selective(delta, A, B, discretization)  # eq-ssm-zoh-a  (b, t, d, n) each
    u = B_bar * x[..., None]  # eq-s6-recurrence  B_bar x_t  (b, t, d, n)
    hs = linear_scan(a, u, h0, method=method)  # eq-s6-recurrence  h_t = a_t h_{t-1} + u_t  (b, t, d, n)
    y = torch.einsum("btdn,btn->btd", hs, C)  # eq-s6-recurrence  C_t . h_t  (b, t, d)
    if D is not None:
        y = y + D * x  # eq-s6-recurrence  + D x_t
    return (y, hs[:, -1]) if return_state else y


def gate_from_delta(delta: torch.Tensor, A: float = -1.0) -> torch.Tensor:
    """The forget-like gate a_t = exp(delta_t A) of a one-state selective SSM (eq-s6-gate).

    With A = -1 and delta = softplus(w), a = exp(-softplus(w)) = sigmoid(-w).
    """
    if not (isinstance(A, (int, float)) and not isinstance(A, bool) and A < 0 and math.isfinite(A)):
        raise ValueError(f"A must be a negative finite number, got {A!r}")
    return torch.exp(_check_tensor(delta, "delta", "(..., d)") * A)  # eq-s6-gate
