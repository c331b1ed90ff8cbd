"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"): gates that see only the input.

When no gate reads h_{t-1}, each step is a linear recurrence h_t = a_t * h_{t-1} + b_t whose
coefficients a_t, b_t are known for every step before the recurrence starts, so the whole
sequence can be computed at once by a parallel scan instead of a loop over time.

Glossary: b batch, t time steps, d input features, h hidden units; x_t -> ``x[:, t]`` (b, d);
h_t -> ``hs[:, t]`` (b, h); weights W_x* (d, h), biases b_* (h,). Row vectors: ``x_t @ W_xz``
is the book's x_t W_xz. Equations (labels of the book's chapter on modern gated RNNs):

    minGRU   z_t = sigma(x_t W_xz + b_z),  h~_t = x_t W_xh + b_h
             h_t = (1 - z_t) * h_{t-1} + z_t * h~_t                           eq-mingru
    minLSTM  f_t = sigma(x_t W_xf + b_f),  i_t = sigma(x_t W_xi + b_i),  h~_t = x_t W_xh + b_h
             f'_t = f_t / (f_t + i_t),  i'_t = i_t / (f_t + i_t)
             h_t = f'_t * h_{t-1} + i'_t * h~_t                               eq-minlstm

Two forms of each model, held equal by ``tests/test_minimal_xlstm.py``:

- ``mode="sequential"``: the readable loop, one line per equation.
- ``mode="parallel"``: Heinsen's (2023) log-space scan, :func:`parallel_scan_log`. With
  A_t = sum_{s<=t} log a_s, the recurrence h_t = a_t h_{t-1} + b_t unrolls to
  log h_t = A_t + logcumsumexp_s(log b_s - A_s) (with log h_0 as the term s = 0).

**Signs.** The scan needs b_t > 0, but h~_t has either sign. The paper replaces h~ by a positive
g(h~) and so changes the model; we keep the model as written and split the candidate instead:
h~ = p - q with p = 1 + relu(h~) >= 1 and q = 1 + relu(-h~) >= 1 (exactly, for any h~), and h_0
likewise. Because the recurrence is linear, h = h^p - h^q where h^p and h^q are the same scan run
on p and on q; both are strictly positive, so their logs are finite and so are all gradients
(a split into relu(h~) and relu(-h~) alone would take log 0). Both gates are convex weights
((1 - z) + z = f' + i' = 1), so h^p and h^q stay within the range of their inputs.

**Precision.** In floating point, log h_t = A_t + (...) subtracts two numbers of size |A_t|,
which grows linearly with t (about 0.7 per step for gates near 1/2): in float32 the relative
error is about |A_t| * 6e-8, about 1e-4 after 2048 steps. :func:`parallel_scan_log` therefore
scans chunks of ``chunk_size`` steps in log space and carries the state from one chunk to the
next in a short loop (t / chunk_size steps); ``chunk_size=None`` is the one-chunk scan.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lstm_lab.nn.base import add_parameters, check_input, check_size, uniform_init

__all__ = ["MinGRU", "MinLSTM", "parallel_scan_log", "sequential_scan", "DEFAULT_CHUNK_SIZE"]

DEFAULT_CHUNK_SIZE = 32
"""Steps per log-space chunk of :func:`parallel_scan_log`: float32 error about 4e-6 after 2048 steps
(gates near 1/2), against 3e-4 for one chunk."""


# ----------------------------------------------------------------------------- scans
def sequential_scan(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """The reference loop for h_t = a_t * h_{t-1} + b_t.

    a, b (b, t, h); h0 (b, h) -> hs (b, t, h), the state after every step.
    """
    h, hs = h0, []
    for step in range(a.shape[1]):
        h = a[:, step] * h + b[:, step]
        hs.append(h)
    return torch.stack(hs, dim=1)  # (b, t, h)


def _scan_one_chunk(log_a: torch.Tensor, log_b: torch.Tensor, log_h0: torch.Tensor) -> torch.Tensor:
    """Heinsen's scan: log h_t = A_t + logcumsumexp([log h_0, log b_s - A_s]) over s <= t."""
    A = torch.cumsum(log_a, dim=1)  # (b, t, h): log of a_1 * ... * a_t
    terms = torch.cat([log_h0.unsqueeze(1), log_b - A], dim=1)  # (b, 1 + t, h)
    return A + torch.logcumsumexp(terms, dim=1)[:, 1:]  # (b, t, h)


def parallel_scan_log(
    log_a: torch.Tensor, log_b: torch.Tensor, log_h0: torch.Tensor, chunk_size: int | None = DEFAULT_CHUNK_SIZE
) -> torch.Tensor:
    """log h for h_t = a_t * h_{t-1} + b_t with a_t > 0, b_t > 0, h_0 > 0, all in log space.

    log_a, log_b (b, t, h); log_h0 (b, h) -> log_hs (b, t, h). Chunks of ``chunk_size`` steps
    are scanned at once; the state is carried between chunks (``None``: one chunk).
    """
    t = log_a.shape[1]
    if chunk_size is None:
        chunk_size = t
    chunk_size = check_size(chunk_size, "chunk_size")
    out, log_h = [], log_h0
    for start in range(0, t, chunk_size):
        chunk = _scan_one_chunk(log_a[:, start : start + chunk_size], log_b[:, start : start + chunk_size], log_h)
        out.append(chunk)
        log_h = chunk[:, -1]
    return torch.cat(out, dim=1)  # (b, t, h)


def _log_split(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log p, log q with v = p - q, p = 1 + relu(v), q = 1 + relu(-v) (both >= 1)."""
    return torch.log1p(torch.relu(v)), torch.log1p(torch.relu(-v))


def _signed_scan(log_a, log_coef, values, h0, chunk_size):
    """h_t = a_t h_{t-1} + coef_t * values_t for values and h0 of either sign (see module notes).

    log_a, log_coef, values (b, t, h); h0 (b, h) -> hs (b, t, h).
    """
    log_p, log_q = _log_split(values)  # (b, t, h) each
    log_p0, log_q0 = _log_split(h0)  # (b, h) each
    h_p = parallel_scan_log(log_a, log_coef + log_p, log_p0, chunk_size).exp()  # (b, t, h)
    h_q = parallel_scan_log(log_a, log_coef + log_q, log_q0, chunk_size).exp()  # (b, t, h)
    return h_p - h_q


# ----------------------------------------------------------------------------- modules
class _MinRNN(nn.Module):
    """Shared parts: parameters by book name, input checks, the two modes."""

    gates: tuple[str, ...] = ()

    def __init__(self, input_size: int, hidden_size: int, chunk_size: int | None = DEFAULT_CHUNK_SIZE):
        super().__init__()
        self.input_size = check_size(input_size, "input_size")
        self.hidden_size = check_size(hidden_size, "hidden_size")
        self.chunk_size = None if chunk_size is None else check_size(chunk_size, "chunk_size")
        d, h = self.input_size, self.hidden_size
        add_parameters(self, {n: s for k in (*self.gates, "h") for n, s in ((f"W_x{k}", (d, h)), (f"b_{k}", (h,)))})
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform in (-1/sqrt(h), 1/sqrt(h)), as ``torch.nn.GRU`` initialises."""
        uniform_init(self, self.hidden_size)

    def pre(self, k: str, x: torch.Tensor) -> torch.Tensor:
        """x W_xk + b_k for every step at once: (b, t, d) -> (b, t, h)."""
        return x @ getattr(self, f"W_x{k}") + getattr(self, f"b_{k}")  # (b, t, h)

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None, *, mode: str = "parallel"):
        """x (b, t, input_size), h0 (b, h) or None (zeros) -> (hs (b, t, h), h_T (b, h))."""
        x = check_input(x, self.input_size, self.W_xh)
        b = x.shape[0]
        if h0 is None:
            h0 = x.new_zeros(b, self.hidden_size)
        elif not isinstance(h0, torch.Tensor):
            raise TypeError(f"h0 must be a torch.Tensor of shape (b, h) = {(b, self.hidden_size)} or None")
        elif tuple(h0.shape) != (b, self.hidden_size):
            raise ValueError(f"h0 must have shape (b, h) = {(b, self.hidden_size)}, got {tuple(h0.shape)}")
        elif h0.dtype != x.dtype or h0.device != x.device:
            raise TypeError(
                f"h0 must match x's dtype and device ({x.dtype}, {x.device}), got ({h0.dtype}, {h0.device})"
            )
        if mode == "parallel":
            hs = self.forward_parallel(x, h0)
        elif mode == "sequential":
            hs = self.forward_sequential(x, h0)
        else:
            raise ValueError(f"mode must be 'parallel' or 'sequential', got {mode!r}")
        return hs, hs[:, -1]

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, chunk_size={self.chunk_size}"


class MinGRU(_MinRNN):
    """minGRU (eq-mingru): an update gate and a candidate that read only x_t.

    ``forward(x, h0=None, *, mode="parallel" | "sequential")`` takes x (b, t, input_size) and
    h0 (b, h) (zeros when None) and returns ``(hs (b, t, h), h_T (b, h))``. Parameters
    W_xz, W_xh (d, h); b_z, b_h (h,). ``chunk_size`` goes to :func:`parallel_scan_log`.
    """

    gates = ("z",)

    def forward_sequential(self, x: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
        """The readable loop: x (b, t, d), h0 (b, h) -> hs (b, t, h)."""
        h, hs = h0, []
        for step in range(x.shape[1]):
            x_t = x[:, step]  # (b, d)
            z = torch.sigmoid(x_t @ self.W_xz + self.b_z)  # (b, h)
            h_tilde = x_t @ self.W_xh + self.b_h  # (b, h)
            h = (1 - z) * h + z * h_tilde  # eq-mingru
            hs.append(h)
        return torch.stack(hs, dim=1)  # (b, t, h)

    def forward_parallel(self, x: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
        """The log-space scan of eq-mingru: a_t = 1 - z_t, b_t = z_t * h~_t."""
        z_pre = self.pre("z", x)  # (b, t, h)
        log_a = F.logsigmoid(-z_pre)  # log(1 - z_t)
        log_z = F.logsigmoid(z_pre)  # log z_t
        return _signed_scan(log_a, log_z, self.pre("h", x), h0, self.chunk_size)  # eq-mingru


class MinLSTM(_MinRNN):
    """minLSTM (eq-minlstm): forget and input gates from x_t only, normalised to sum to one.

    ``forward(x, h0=None, *, mode="parallel" | "sequential")`` takes x (b, t, input_size) and
    h0 (b, h) (zeros when None) and returns ``(hs (b, t, h), h_T (b, h))``. Parameters
    W_xf, W_xi, W_xh (d, h); b_f, b_i, b_h (h,). ``chunk_size`` goes to :func:`parallel_scan_log`.
    """

    gates = ("f", "i")

    def forward_sequential(self, x: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
        """The readable loop: x (b, t, d), h0 (b, h) -> hs (b, t, h)."""
        h, hs = h0, []
        for step in range(x.shape[1]):
            x_t = x[:, step]  # (b, d)
            f = torch.sigmoid(x_t @ self.W_xf + self.b_f)  # (b, h)
            i = torch.sigmoid(x_t @ self.W_xi + self.b_i)  # (b, h)
            f_norm, i_norm = f / (f + i), i / (f + i)
            h_tilde = x_t @ self.W_xh + self.b_h  # (b, h)
            h = f_norm * h + i_norm * h_tilde  # eq-minlstm
            hs.append(h)
        return torch.stack(hs, dim=1)  # (b, t, h)

    def forward_parallel(self, x: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
        """The log-space scan of eq-minlstm: a_t = f'_t, b_t = i'_t * h~_t.

        f' = f / (f + i) = sigmoid(log f - log i), so log f' = logsigmoid(logsigmoid(f~) -
        logsigmoid(i~)), which never forms f + i (stable for large pre-activations).
        """
        log_f = F.logsigmoid(self.pre("f", x))  # (b, t, h)
        log_i = F.logsigmoid(self.pre("i", x))  # (b, t, h)
        log_f_norm = F.logsigmoid(log_f - log_i)  # log f'_t
        log_i_norm = F.logsigmoid(log_i - log_f)  # log i'_t
        return _signed_scan(log_f_norm, log_i_norm, self.pre("h", x), h0, self.chunk_size)  # eq-minlstm
