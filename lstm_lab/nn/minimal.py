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

Two forms of each model, chosen by the constructor's ``method`` and held equal by
``tests/test_minimal_xlstm.py``:

- ``method="sequential"``: the readable loop, one line per equation.
- ``method="parallel"``, ``"chunked"`` or ``"auto"`` (the default): every gate and candidate for
  all steps at once (one matrix product per weight), then the linear recurrence
  h_t = a_t * h_{t-1} + b_t with a_t = 1 - z_t (minGRU) or f'_t (minLSTM) by the course's scan,
  :func:`lstm_lab.nn.scan.linear_scan`, with that method ("auto" chooses by shape and device).
  Its backward is the same scan run backwards in time, so memory stays O(b t h) whatever the
  length.

The sequential form computes f' and i' by :func:`normalised_gates` too (in log space, so it
stays finite when both gates saturate); the tests hold it to the plain ratio where that is finite.

Feng et al. compute the recurrence in log space instead (Heinsen's scan, with the candidate
made positive by a function g); that changes the model, and the scan here needs no sign
condition, so we keep the equations as written.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lstm_lab.checks import check_choice, check_size
from lstm_lab.nn.base import add_parameters, check_input, check_state_tensor, uniform_init
from lstm_lab.nn.scan import METHODS, linear_scan

__all__ = ["MinGRU", "MinLSTM", "normalised_gates"]


def normalised_gates(f_pre: torch.Tensor, i_pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """minLSTM's f'_t = f_t / (f_t + i_t) and i'_t = i_t / (f_t + i_t), f = sigma(f~), i = sigma(i~).

    eq-minlstm. Computed as sigma(log f - log i) and sigma(log i - log f): the same numbers,
    but f + i is never formed. The plain ratio is 0/0 (NaN) once both gates saturate, i.e.
    both pre-activations below about -89 in float32 (-745 in float64), where sigma underflows
    to 0; the normalised gates are still well defined there. Any shape; the two must match.
    """
    log_f, log_i = F.logsigmoid(f_pre), F.logsigmoid(i_pre)
    return torch.sigmoid(log_f - log_i), torch.sigmoid(log_i - log_f)  # f'_t, i'_t  eq-minlstm


# ----------------------------------------------------------------------------- modules
class _MinRNN(nn.Module):
    """Shared parts: parameters by book name, input checks, the two forms."""

    gates: tuple[str, ...] = ()

    def __init__(self, input_size: int, hidden_size: int, *, method: str = "auto"):
        super().__init__()
        self.input_size = check_size(input_size, "input_size")
        self.hidden_size = check_size(hidden_size, "hidden_size")
        self.method = check_choice(method, METHODS)
        d, h = self.input_size, self.hidden_size
        add_parameters(self, {n: s for k in (*self.gates, "h") for n, s in ((f"W_x{k}", (d, h)), (f"b_{k}", (h,)))})
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform in (-1/sqrt(h), 1/sqrt(h)), as ``torch.nn.GRU`` initialises."""
        uniform_init(self, self.hidden_size)

    def pre(self, k: str, x: torch.Tensor) -> torch.Tensor:
        """x W_xk + b_k for every step at once: (b, t, d) -> (b, t, h)."""
        return x @ getattr(self, f"W_x{k}") + getattr(self, f"b_{k}")  # (b, t, h)

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None):
        """x (b, t, input_size), h0 (b, h) or None (zeros) -> (hs (b, t, h), h_T (b, h))."""
        x = check_input(x, self.input_size, self.W_xh)
        b = x.shape[0]
        if h0 is None:
            h0 = x.new_zeros(b, self.hidden_size)
        else:
            h0 = check_state_tensor(h0, "h0", (b, self.hidden_size), x, layout="(b, h)")
        method = check_choice(self.method, METHODS)
        hs = self.forward_sequential(x, h0) if method == "sequential" else self.forward_parallel(x, h0)
        return hs, hs[:, -1]

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, method={self.method!r}"


class MinGRU(_MinRNN):
    """minGRU (eq-mingru): an update gate and a candidate that read only x_t.

    ``forward(x, h0=None)`` takes x (b, t, input_size) and
    h0 (b, h) (zeros when None) and returns ``(hs (b, t, h), h_T (b, h))``. Parameters
    W_xz, W_xh (d, h); b_z, b_h (h,). ``method``: see the module's docstring.
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
        """eq-mingru for all steps at once: a_t = 1 - z_t, b_t = z_t * h~_t, then the scan."""
        z_pre = self.pre("z", x)  # (b, t, h)
        one_minus_z, z = torch.sigmoid(-z_pre), torch.sigmoid(z_pre)  # 1 - z_t without cancellation
        return linear_scan(one_minus_z, z * self.pre("h", x), h0, method=self.method)  # eq-mingru


class MinLSTM(_MinRNN):
    """minLSTM (eq-minlstm): forget and input gates from x_t only, normalised to sum to one.

    ``forward(x, h0=None)`` takes x (b, t, input_size) and
    h0 (b, h) (zeros when None) and returns ``(hs (b, t, h), h_T (b, h))``. Parameters
    W_xf, W_xi, W_xh (d, h); b_f, b_i, b_h (h,). ``method``: see the module's docstring.
    """

    gates = ("f", "i")

    def forward_sequential(self, x: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
        """The readable loop: x (b, t, d), h0 (b, h) -> hs (b, t, h)."""
        h, hs = h0, []
        for step in range(x.shape[1]):
            x_t = x[:, step]  # (b, d)
            f_norm, i_norm = normalised_gates(x_t @ self.W_xf + self.b_f, x_t @ self.W_xi + self.b_i)  # (b, h)
            h_tilde = x_t @ self.W_xh + self.b_h  # (b, h)
            h = f_norm * h + i_norm * h_tilde  # eq-minlstm
            hs.append(h)
        return torch.stack(hs, dim=1)  # (b, t, h)

    def forward_parallel(self, x: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
        """eq-minlstm for all steps at once: a_t = f'_t, b_t = i'_t * h~_t, then the scan."""
        f_norm, i_norm = normalised_gates(self.pre("f", x), self.pre("i", x))  # (b, t, h) each
        return linear_scan(f_norm, i_norm * self.pre("h", x), h0, method=self.method)  # eq-minlstm
