"""The GRU as a PyTorch module, in both forms; mirrors ``lstm_lab.scratch.gru``.

Glossary: b batch, t time steps, d input features, h hidden units; gates r (reset),
z (update), n the new state. Equations (chapter 4):

    r_t = sigma(x_t W_xr + h_{t-1} W_hr + b_r)                          eq-gru-reset
    z_t = sigma(x_t W_xz + h_{t-1} W_hz + b_z)                          eq-gru-update
    n_t = tanh(x_t W_xn + b_n + r_t * (h_{t-1} W_hn + b_hn))   "torch"  eq-gru-candidate
    n_t = tanh(x_t W_xn + (r_t * h_{t-1}) W_hn + b_n)          "cho"    eq-gru-candidate-cho
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}                               eq-gru-hidden
"""

from __future__ import annotations

import torch

from lstm_lab.nn.base import RecurrentLayer, StackedRecurrent, hold, recurrent_input, resolve_method
from lstm_lab.variants import check_gru_form, gru_param_shapes


class GRULayer(RecurrentLayer):
    torch_kind = "GRU"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, form: str = "torch", method: str = "auto",
                 reverse: bool = False):
        self.form = check_gru_form(form)
        self.method = resolve_method(method, ("cell", "torch"), form == "torch", f"the {form!r} GRU")
        self.auto = method == "auto"
        super().__init__(gru_param_shapes(form, input_size, hidden_size), hidden_size, bias, reverse)

    def forward_cell(self, x: torch.Tensor, h0: torch.Tensor, mask: torch.Tensor | None = None,
                     h_mask: torch.Tensor | None = None):
        """The GRU's readable loop, in either form: x (b, t, d), h0 (b, h) -> hs (b, t, h), (h_T,)."""
        h_prev = h0
        hs = []
        for step in range(x.shape[1]):
            x_t = x[:, step]
            h_in = recurrent_input(h_prev, h_mask)  # (b, h): what the weights W_h· read
            r = torch.sigmoid(self.linear("r", x_t, h_in))  # eq-gru-reset
            z = torch.sigmoid(self.linear("z", x_t, h_in))  # eq-gru-update
            x_n = x_t @ self.W_xn + (self.b_n if self.bias else 0)  # (b, d) @ (d, h)
            if self.form == "torch":
                h_n = h_in @ self.W_hn + (self.b_hn if self.bias else 0)  # (b, h) @ (h, h)
                n = torch.tanh(x_n + r * h_n)  # eq-gru-candidate
            else:
                n = torch.tanh(x_n + (r * h_in) @ self.W_hn)  # eq-gru-candidate-cho
            h = (1 - z) * n + z * h_prev  # eq-gru-hidden
            h_prev = hold(mask, step, h, h_prev)  # padded steps keep the state
            hs.append(h_prev)
        return torch.stack(hs, dim=1), (h_prev,)


class GRU(StackedRecurrent):
    """A stack of GRU layers, batch-first.

    ``form="torch"`` (default) computes exactly what ``torch.nn.GRU`` computes; ``form="cho"``
    is the original GRU of Cho et al. (2014), which resets the state before multiplying by
    W_hn. ``method`` is "cell" (the readable loop), "torch" (PyTorch's kernel; form "torch"
    only) or "auto" (the kernel where it applies, but "cell" under ``torch.func.vmap``).
    ``forward(x, h0=None)`` returns ``(outputs (b, t, h), h_n (num_layers, b, h))``.
    ``dropout`` and ``bidirectional`` mean what they mean in ``torch.nn.GRU`` (then the outputs are
    (b, t, 2h) and the states (num_layers * 2, b, h)); ``variational=True`` makes the dropout
    Gal and Ghahramani's (see :class:`~lstm_lab.nn.base.StackedRecurrent`), and ``forward(x, h0, lengths=...)`` runs a
    right-padded batch of sequences of different lengths: see :meth:`StackedRecurrent.forward`.
    """

    state_names = ("h",)
    torch_kind = "GRU"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 form: str = "torch", method: str = "auto", *, dropout: float = 0.0, bidirectional: bool = False,
                 variational: bool = False):
        self.form = check_gru_form(form)
        self.method = method
        super().__init__(input_size, hidden_size, num_layers, bias, dropout=dropout, bidirectional=bidirectional,
                         variational=variational)

    def make_layer(self, input_size: int, reverse: bool = False) -> GRULayer:
        return GRULayer(input_size, self.hidden_size, self.bias, self.form, self.method, reverse)

    def extra_repr(self) -> str:
        return ", ".join(part for part in (f"form={self.form!r}", self.stack_repr()) if part)

    def check_torch_equivalent(self) -> None:
        if self.form != "torch":
            raise ValueError("only form='torch' has a torch.nn.GRU equivalent")
