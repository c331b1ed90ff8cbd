"""xLSTM cells (Beck et al. 2024): exponential gating with a normaliser and a max-stabiliser.

Glossary: b batch, t time steps, d input features, h hidden units; for the mLSTM, nh heads of
size d_h = h / nh (d_k = d_v = d_h). Row vectors: ``x_t @ W_xz`` is the book's x_t W_xz.

sLSTM (scalar memory; every pre-activation reads x_t and h_{t-1} through full matrices)::

    z_t = tanh(z~_t),  o_t = sigma(o~_t),  with k~_t = x_t W_xk + h_{t-1} W_hk + b_k
    i_t = exp(i~_t),   f_t = exp(f~_t)  (or sigma(f~_t): forget_gate="sigmoid")
    (The paper allows either forget gate. Our default is "exp"; the xLSTM reference code's
    sLSTM uses the sigmoid, so pass forget_gate="sigmoid" to compare with it.)
    c_t = f_t c_{t-1} + i_t z_t,  n_t = f_t n_{t-1} + i_t,  h_t = o_t * c_t / n_t     eq-slstm
    m_t = max(log f_t + m_{t-1}, i~_t),  i'_t = exp(i~_t - m_t),
    f'_t = exp(log f_t + m_{t-1} - m_t), and c, n updated with i', f'                 eq-slstm-stabilised

mLSTM (matrix memory per head; scalar gates per head that read only x_t)::

    q_t = x_t W_xq,  k_t = x_t W_xk / sqrt(d_h),  v_t = x_t W_xv,  o_t = sigma(x_t W_xo + b_o)
    C_t = f_t C_{t-1} + i_t v_t k_t^T,  n_t = f_t n_{t-1} + i_t k_t
    h_t = o_t * (C_t q_t) / max(|n_t^T q_t|, 1)                                        eq-mlstm

with i_t = exp(x_t W_xi + b_i) and f_t = sigma(x_t W_xf + b_f) (or exp: forget_gate="exp"),
stabilised with the same m_t as the sLSTM. C_t is (d_v, d_k): ``C_t q_t`` has d_v entries.

**Stabiliser convention.** Stabilised cells store c'_t = c_t e^{-m_t} and n'_t = n_t e^{-m_t}
(C' and n' for the mLSTM); h is unchanged because it is a ratio (for the mLSTM the floor 1
becomes e^{-m_t}, kept above the dtype's smallest normal number by :func:`stabilised_floor`
so that a zero query gives h = 0 rather than 0/0). A state is ``(h, c, n, m)`` (sLSTM) or ``(C, n, m)`` (mLSTM) in that
convention: the true memory is ``c * exp(m)``. The unstabilised reference cells store the true
memory and return m = 0, and read a given state as ``c * exp(m)``, so the two kinds of cell
accept each other's states. The default initial state is c = n = 0 with m = -inf ("nothing
stored yet"): the first step then sets m_1 = i~_1, so that n'_1 = 1 never underflows, whatever
the gap between f~_1 and i~_1.

Forms: :class:`SLSTM` runs :class:`SLSTMCell` in a loop; :class:`MLSTM` has the recurrent loop
(``method="sequential"``, stabilised or not) and the parallel, attention-like form
(``method="parallel"``, quadratic in t, always stabilised), chosen in its constructor and held
equal by ``tests/test_minimal_xlstm.py``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lstm_lab.checks import check_choice, check_flag, check_size
from lstm_lab.nn.base import add_parameters, check_input, check_state_tuple, uniform_init

__all__ = ["SLSTMCell", "SLSTM", "MLSTM", "stabilised_floor"]

_FORGET_GATES = ("exp", "sigmoid")


def _check_state(state, names: tuple[str, ...], shapes: tuple[tuple[int, ...], ...], x: torch.Tensor):
    return check_state_tuple(state, names, shapes, x, prefix="state ")


def _log_forget(f_pre: torch.Tensor, forget_gate: str) -> torch.Tensor:
    """log f_t: f~ itself for the exponential gate, logsigmoid(f~) for the sigmoid gate."""
    return f_pre if forget_gate == "exp" else F.logsigmoid(f_pre)


def stabilised_floor(m: torch.Tensor) -> torch.Tensor:
    """The mLSTM's floor 1 of eq-mlstm in the stabilised frame: e^{-m_t}, but never below the
    dtype's smallest normal number.

    e^{-m} underflows to 0 once m passes about 87-104 (float32) or 708-745 (float64); a zero
    query then gives C'q = 0 and |n'^T q| = 0, so the ratio would be 0/0 (NaN) where the true
    h is 0. The guard changes nothing while e^{-m} is a normal number, and otherwise keeps
    the denominator positive. (The xLSTM reference code adds an epsilon to it instead.)
    """
    return torch.exp(-m).clamp_min(torch.finfo(m.dtype).tiny)


# ----------------------------------------------------------------------------- sLSTM
class SLSTMCell(nn.Module):
    """One sLSTM step (eq-slstm, or eq-slstm-stabilised when ``stabilised=True``).

    ``forget_gate`` is "exp" (default) or "sigmoid", the one the xLSTM reference code uses.

    ``forward(x_t (b, d), state=(h, c, n, m) each (b, h) or None) -> (h, c, n, m)``.
    Parameters W_xz, W_xi, W_xf, W_xo (d, h); W_hz, W_hi, W_hf, W_ho (h, h); b_z, b_i, b_f, b_o (h,).
    """

    gates = ("z", "i", "f", "o")
    state_names = ("h", "c", "n", "m")

    def __init__(self, input_size: int, hidden_size: int, *, stabilised: bool = True, forget_gate: str = "exp"):
        super().__init__()
        self.input_size = check_size(input_size, "input_size")
        self.hidden_size = check_size(hidden_size, "hidden_size")
        self.stabilised = check_flag(stabilised, "stabilised")
        self.forget_gate = check_choice(forget_gate, _FORGET_GATES, "forget_gate")
        d, h = self.input_size, self.hidden_size
        for k in self.gates:
            add_parameters(self, {f"W_x{k}": (d, h), f"W_h{k}": (h, h), f"b_{k}": (h,)})
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform in (-1/sqrt(h), 1/sqrt(h))."""
        uniform_init(self, self.hidden_size)

    def initial_state(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """h = c = n = 0 and m = -inf, each (b, h), in x's dtype and device."""
        zeros = x.new_zeros(x.shape[0], self.hidden_size)
        return zeros, zeros, zeros, torch.full_like(zeros, -math.inf)

    def linear(self, k: str, x_t: torch.Tensor, h_prev: torch.Tensor) -> torch.Tensor:
        """k~_t = x_t W_xk + h_{t-1} W_hk + b_k: (b, d), (b, h) -> (b, h)."""
        return x_t @ getattr(self, f"W_x{k}") + h_prev @ getattr(self, f"W_h{k}") + getattr(self, f"b_{k}")

    def forward(self, x_t: torch.Tensor, state=None):
        """x_t (b, input_size), state (h, c, n, m) each (b, h) or None -> (h, c, n, m)."""
        if not isinstance(x_t, torch.Tensor) or x_t.dim() != 2:
            shape = tuple(x_t.shape) if isinstance(x_t, torch.Tensor) else type(x_t).__name__
            raise ValueError(f"x_t must be a tensor of shape (b, d) = (b, {self.input_size}), got {shape}")
        check_input(x_t.unsqueeze(1), self.input_size, self.W_xz, name="x_t")
        shape = (x_t.shape[0], self.hidden_size)
        if state is None:
            state = self.initial_state(x_t)
        state = _check_state(state, self.state_names, (shape,) * 4, x_t)
        return self.step(x_t, *state)

    def step(self, x_t, h_prev, c_prev, n_prev, m_prev):
        """The equations, one line each; no checks (the layer loop calls this)."""
        z = torch.tanh(self.linear("z", x_t, h_prev))  # (b, h)
        o = torch.sigmoid(self.linear("o", x_t, h_prev))
        i_pre = self.linear("i", x_t, h_prev)  # i~_t
        log_f = _log_forget(self.linear("f", x_t, h_prev), self.forget_gate)  # log f_t
        if self.stabilised:
            m = torch.maximum(log_f + m_prev, i_pre)  # eq-slstm-stabilised
            i = torch.exp(i_pre - m)  # eq-slstm-stabilised: i'_t
            f = torch.exp(log_f + m_prev - m)  # eq-slstm-stabilised: f'_t
        else:
            c_prev, n_prev = c_prev * torch.exp(m_prev), n_prev * torch.exp(m_prev)  # the true memory
            m = torch.zeros_like(m_prev)
            i = torch.exp(i_pre)  # eq-slstm
            f = torch.exp(log_f)  # eq-slstm
        c = f * c_prev + i * z  # eq-slstm
        n = f * n_prev + i  # eq-slstm
        h = o * c / n  # eq-slstm
        return h, c, n, m

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, stabilised={self.stabilised}, forget_gate={self.forget_gate!r}"


class SLSTM(nn.Module):
    """An sLSTM layer: :class:`SLSTMCell` run over a sequence, batch-first.

    ``forward(x (b, t, input_size), state=None) -> (hs (b, t, h), (h, c, n, m))``; ``state`` is
    None (h = c = n = 0, m = -inf) or ``(h, c, n, m)`` each (b, h). The parameters live in
    ``self.cell``.
    """

    def __init__(self, input_size: int, hidden_size: int, *, stabilised: bool = True, forget_gate: str = "exp"):
        super().__init__()
        self.cell = SLSTMCell(input_size, hidden_size, stabilised=stabilised, forget_gate=forget_gate)
        self.input_size, self.hidden_size = self.cell.input_size, self.cell.hidden_size

    def forward(self, x: torch.Tensor, state=None):
        x = check_input(x, self.input_size, self.cell.W_xz)
        shape = (x.shape[0], self.hidden_size)
        if state is None:
            state = self.cell.initial_state(x)
        state = _check_state(state, SLSTMCell.state_names, (shape,) * 4, x)
        hs = []
        for step in range(x.shape[1]):
            state = self.cell.step(x[:, step], *state)
            hs.append(state[0])
        return torch.stack(hs, dim=1), state  # (b, t, h)


# ----------------------------------------------------------------------------- mLSTM
MLSTM_METHODS = ("sequential", "parallel")


class MLSTM(nn.Module):
    """An mLSTM layer (eq-mlstm): a (d_v, d_k) memory per head, gates from the input only.

    ``method`` is "sequential" (the recurrent loop, the default) or "parallel" (all steps at
    once, like attention). ``forward(x (b, t, input_size), state=None)`` returns
    ``(hs (b, t, h), (C (b, nh, d_h, d_h), n (b, nh, d_h), m (b, nh)))``; ``state`` is None
    (C = n = 0, m = -inf) or such a tuple. ``stabilised=False`` (the unstabilised reference)
    is only for the sequential form.

    Parameters: W_xq, W_xk, W_xv, W_xo (d, h), b_o (h,); W_xi, W_xf (d, nh), b_i, b_f (nh,).
    """

    state_names = ("C", "n", "m")

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        n_heads: int = 1,
        *,
        stabilised: bool = True,
        forget_gate: str = "sigmoid",
        method: str = "sequential",
    ):
        super().__init__()
        self.input_size = check_size(input_size, "input_size")
        self.hidden_size = check_size(hidden_size, "hidden_size")
        self.n_heads = check_size(n_heads, "n_heads")
        self.method = check_choice(method, MLSTM_METHODS)
        if self.hidden_size % self.n_heads:
            raise ValueError(f"hidden_size ({hidden_size}) must be a multiple of n_heads ({n_heads})")
        self.head_size = self.hidden_size // self.n_heads
        self.stabilised = check_flag(stabilised, "stabilised")
        if self.method == "parallel" and not self.stabilised:
            raise ValueError("method='parallel' is always stabilised; use method='sequential' with stabilised=False")
        self.forget_gate = check_choice(forget_gate, _FORGET_GATES, "forget_gate")
        d, h, nh = self.input_size, self.hidden_size, self.n_heads
        add_parameters(self, {
            "W_xq": (d, h), "W_xk": (d, h), "W_xv": (d, h), "W_xo": (d, h), "b_o": (h,),
            "W_xi": (d, nh), "b_i": (nh,), "W_xf": (d, nh), "b_f": (nh,),
        })  # fmt: skip
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform in (-1/sqrt(h), 1/sqrt(h))."""
        uniform_init(self, self.hidden_size)

    def initial_state(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        b, nh, dh = x.shape[0], self.n_heads, self.head_size
        return x.new_zeros(b, nh, dh, dh), x.new_zeros(b, nh, dh), x.new_full((b, nh), -math.inf)

    def projections(self, x: torch.Tensor):
        """q, k, v (b, nh, t, d_h); i~, log f (b, nh, t); o (b, t, h) for every step at once."""
        b, t, _ = x.shape
        nh, dh = self.n_heads, self.head_size

        def heads(W):  # (b, t, d) -> (b, nh, t, d_h)
            return (x @ W).view(b, t, nh, dh).transpose(1, 2)  # (b, t, d) @ (d, h)

        q, k, v = heads(self.W_xq), heads(self.W_xk) / math.sqrt(dh), heads(self.W_xv)
        i_pre = (x @ self.W_xi + self.b_i).transpose(1, 2)  # (b, nh, t)
        log_f = _log_forget((x @ self.W_xf + self.b_f).transpose(1, 2), self.forget_gate)  # (b, nh, t)
        o = torch.sigmoid(x @ self.W_xo + self.b_o)  # (b, t, h)
        return q, k, v, i_pre, log_f, o

    def forward(self, x: torch.Tensor, state=None):
        x = check_input(x, self.input_size, self.W_xq)
        b, nh, dh = x.shape[0], self.n_heads, self.head_size
        method = check_choice(self.method, MLSTM_METHODS)
        if method == "parallel" and not self.stabilised:
            raise ValueError("method='parallel' is always stabilised; use method='sequential' with stabilised=False")
        shapes = ((b, nh, dh, dh), (b, nh, dh), (b, nh))
        state = self.initial_state(x) if state is None else _check_state(state, self.state_names, shapes, x)
        q, k, v, i_pre, log_f, o = self.projections(x)
        if method == "sequential":
            h_tilde, final = self.forward_recurrent(q, k, v, i_pre, log_f, *state)
        else:
            h_tilde, final = self.forward_parallel(q, k, v, i_pre, log_f, *state)
        hs = o * h_tilde.transpose(1, 2).reshape(x.shape[0], x.shape[1], self.hidden_size)  # (b, t, h)
        return hs, final

    def forward_recurrent(self, q, k, v, i_pre, log_f, C, n, m):
        """The readable loop (eq-mlstm): per-head h~ (b, nh, t, d_h) and the final (C, n, m)."""
        if not self.stabilised:
            C, n = C * torch.exp(m)[..., None, None], n * torch.exp(m)[..., None]  # the true memory
        out = []
        for step in range(q.shape[2]):
            q_t, k_t, v_t = q[:, :, step], k[:, :, step], v[:, :, step]  # (b, nh, d_h)
            if self.stabilised:
                m_new = torch.maximum(log_f[..., step] + m, i_pre[..., step])  # (b, nh)
                i = torch.exp(i_pre[..., step] - m_new)  # i'_t
                f = torch.exp(log_f[..., step] + m - m_new)  # f'_t
                m, floor = m_new, stabilised_floor(m_new)  # the floor 1 of eq-mlstm, scaled by e^{-m}
            else:
                i, f = torch.exp(i_pre[..., step]), torch.exp(log_f[..., step])
                m, floor = torch.zeros_like(m), torch.ones_like(m)
            C = f[..., None, None] * C + i[..., None, None] * v_t[..., :, None] * k_t[..., None, :]  # eq-mlstm
            n = f[..., None] * n + i[..., None] * k_t  # eq-mlstm
            num = (C @ q_t[..., None])[..., 0]  # (b, nh, d_v): C_t q_t
            den = torch.maximum((n * q_t).sum(-1).abs(), floor)  # (b, nh)
            out.append(num / den[..., None])  # eq-mlstm
        return torch.stack(out, dim=2), (C, n, m)  # (b, nh, t, d_h)

    def forward_parallel(self, q, k, v, i_pre, log_f, C0, n0, m0):
        """The attention-like form: all steps at once, O(t^2) memory; per-head h~ (b, nh, t, d_h).

        log D_ts = F_t - F_s + i~_s for s <= t (F the cumulative sum of log f), the weight of
        step s's write in C_t; the initial state enters with weight log D_t0 = F_t + m_0.
        m_t = max over s of log D_ts is the recurrent stabiliser, so both forms store the same state.
        """
        t = q.shape[2]
        Fc = torch.cumsum(log_f, dim=-1)  # (b, nh, t)
        causal = torch.ones(t, t, dtype=torch.bool, device=q.device).tril()
        log_D = Fc[..., :, None] - Fc[..., None, :] + i_pre[..., None, :]  # (b, nh, t, t)
        log_D = log_D.masked_fill(~causal, -math.inf)  # s > t: step s has not been written yet
        log_D0 = Fc + m0[..., None]  # (b, nh, t)
        m = torch.maximum(log_D.amax(dim=-1), log_D0)  # (b, nh, t)
        D = torch.exp(log_D - m[..., None])  # (b, nh, t, t)
        D0 = torch.exp(log_D0 - m)  # (b, nh, t)
        S = (q @ k.transpose(-1, -2)) * D  # (b, nh, t, t)
        num = S @ v + D0[..., None] * (q @ C0.transpose(-1, -2))  # (b, nh, t, d_v)
        nq = S.sum(-1) + D0 * (q @ n0[..., None])[..., 0]  # (b, nh, t): n_t^T q_t
        den = torch.maximum(nq.abs(), stabilised_floor(m))  # (b, nh, t)
        h_tilde = num / den[..., None]  # eq-mlstm
        w = D[..., -1, :]  # (b, nh, t): weights of each write in the final state
        C_T = torch.einsum("bhs,bhsv,bhsk->bhvk", w, v, k) + D0[..., -1, None, None] * C0  # (b, nh, d_v, d_k)
        n_T = torch.einsum("bhs,bhsk->bhk", w, k) + D0[..., -1, None] * n0  # (b, nh, d_k)
        return h_tilde, (C_T, n_T, m[..., -1])

    def extra_repr(self) -> str:
        return (
            f"{self.input_size}, {self.hidden_size}, n_heads={self.n_heads}, stabilised={self.stabilised}, "
            f"forget_gate={self.forget_gate!r}"
        )
