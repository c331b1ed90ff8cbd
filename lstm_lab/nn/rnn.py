"""The Elman (tanh) RNN as a PyTorch module; mirrors ``lstm_lab.scratch.rnn``.

Glossary: b batch, t time steps, d input features, h hidden units.
Equation (chapter 1):  h_t = tanh(x_t W_xh + h_{t-1} W_hh + b_h)     eq-rnn
"""

from __future__ import annotations

import torch

from lstm_lab.nn.base import RecurrentLayer, StackedRecurrent, hold, recurrent_input, resolve_method
from lstm_lab.variants import rnn_param_shapes


class RNNLayer(RecurrentLayer):
    torch_kind = "RNN"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, method: str = "auto",
                 reverse: bool = False):
        self.method = resolve_method(method, ("cell", "torch"), True, "the tanh RNN")
        self.auto = method == "auto"
        super().__init__(rnn_param_shapes(input_size, hidden_size), hidden_size, bias, reverse)

    def forward_cell(self, x: torch.Tensor, h0: torch.Tensor, mask: torch.Tensor | None = None,
                     h_mask: torch.Tensor | None = None):
        """The tanh RNN's readable loop: x (b, t, d), h0 (b, h) -> hs (b, t, h), (h_T,)."""
        h_prev = h0
        hs = []
        for step in range(x.shape[1]):
            h_in = recurrent_input(h_prev, h_mask)  # (b, h)
            h = torch.tanh(self.linear("h", x[:, step], h_in))  # eq-rnn
            h_prev = hold(mask, step, h, h_prev)  # padded steps keep the state
            hs.append(h_prev)
        return torch.stack(hs, dim=1), (h_prev,)


class RNN(StackedRecurrent):
    """A stack of tanh RNN layers, batch-first, like ``torch.nn.RNN(batch_first=True)``.

    ``method`` is "cell" (the readable loop), "torch" (PyTorch's kernel on these parameters)
    or "auto" (= "torch"; "cell" under ``torch.func.vmap``). ``forward(x, h0=None)`` takes x (b, t, input_size) and h0
    (num_layers, b, h) and returns ``(outputs (b, t, h), h_n (num_layers, b, h))``.
    ``dropout`` and ``bidirectional`` mean what they mean in ``torch.nn.RNN`` (then the outputs are
    (b, t, 2h) and the states (num_layers * 2, b, h)); ``variational=True`` makes the dropout
    Gal and Ghahramani's (see :class:`~lstm_lab.nn.base.StackedRecurrent`), and ``forward(x, h0, lengths=...)`` runs a
    right-padded batch of sequences of different lengths: see :meth:`StackedRecurrent.forward`.
    """

    state_names = ("h",)
    torch_kind = "RNN"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True, method: str = "auto",
                 *, dropout: float = 0.0, bidirectional: bool = False, variational: bool = False):
        self.method = method
        super().__init__(input_size, hidden_size, num_layers, bias, dropout=dropout, bidirectional=bidirectional,
                         variational=variational)

    def make_layer(self, input_size: int, reverse: bool = False) -> RNNLayer:
        return RNNLayer(input_size, self.hidden_size, self.bias, self.method, reverse)
