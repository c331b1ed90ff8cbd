"""The LSTM and its variants as a PyTorch module; mirrors ``lstm_lab.scratch.lstm``.

Glossary: b batch, t time steps, d input features, h hidden units; gates i, f, o, candidate
g, cell state c, hidden state h (PyTorch's letters). ``lstm_lab.variants`` lists the
variants and their parameters. Equations (chapter 3; variants in chapter 4):

    i_t = sigma(x_t W_xi + h_{t-1} W_hi + b_i [+ c_{t-1} * p_i])     eq-lstm-input
    f_t = sigma(x_t W_xf + h_{t-1} W_hf + b_f [+ c_{t-1} * p_f])     eq-lstm-forget
    g_t = tanh(x_t W_xg + h_{t-1} W_hg + b_g)                        eq-lstm-candidate
    c_t = f_t * c_{t-1} + i_t * g_t                                  eq-lstm-cell
    o_t = sigma(x_t W_xo + h_{t-1} W_ho + b_o [+ c_t * p_o])         eq-lstm-output
    h_t = o_t * tanh(c_t)                                            eq-lstm-hidden
"""

from __future__ import annotations

import torch

from lstm_lab.nn.base import RecurrentLayer, StackedRecurrent, hold, recurrent_input, resolve_method
from lstm_lab.nn.fused_lstm import FUSED_ORDER, fused_lstm
from lstm_lab.variants import LSTMSpec, check_forget_bias, lstm_param_shapes, lstm_spec

LSTM_METHODS = ("cell", "fused", "torch")


class LSTMLayer(RecurrentLayer):
    torch_kind = "LSTM"

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool, spec: LSTMSpec, forget_bias: float, method: str,
        reverse: bool = False,
    ):
        self.spec = spec
        self.forget_bias = forget_bias
        self.method = resolve_method(method, LSTM_METHODS, spec.torch_twin, f"the {spec.name} LSTM")
        self.auto = method == "auto"
        super().__init__(lstm_param_shapes(spec, input_size, hidden_size), hidden_size, bias, reverse)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        super().reset_parameters()
        if self.bias and self.forget_bias:
            if self.spec.coupled:  # f = 1 - i = sigma(-i_pre)
                self.b_i -= self.forget_bias
            else:
                self.b_f += self.forget_bias

    def pre_activation(self, k: str, x_t, h_prev, prev):
        """Block k's pre-activation x_t W_xk + h_{t-1} W_hk + b_k (b, h), plus FGR's terms from the
        previous step's gates ``prev``."""
        a = self.linear(k, x_t, h_prev)  # (b, h)
        for src, dst in self.spec.recurrent_gate_pairs:
            if dst == k:
                a = a + prev[src] @ getattr(self, f"R_{src}{k}")  # (b, h) @ (h, h)
        return a

    def forward_cell(self, x, h0, c0, gates0=None, mask=None, h_mask=None):
        """The LSTM's readable cell, every variant: x (b, t, d), h0 and c0 (b, h), FGR's gates0
        (b, 3h) -> hs (b, t, h), final states."""
        spec = self.spec
        peep = spec.peepholes
        h_prev, c_prev = h0, c0
        prev = dict(zip("ifo", gates0.chunk(3, dim=1))) if spec.full_gate_recurrence else {}
        ones = torch.ones_like(h0)
        hs = []
        for step in range(x.shape[1]):
            x_t = x[:, step]
            h_in = recurrent_input(h_prev, h_mask)  # (b, h): what the weights W_h· read
            if spec.input_gate:
                i_pre = self.pre_activation("i", x_t, h_in, prev)  # (b, h)
                i = torch.sigmoid(i_pre + (c_prev * self.p_i if peep else 0))  # eq-lstm-input, eq-peephole-input
            else:
                i = ones
            if spec.coupled:
                f = 1 - i  # eq-cifg
            elif spec.forget_gate:
                f_pre = self.pre_activation("f", x_t, h_in, prev)  # (b, h)
                f = torch.sigmoid(f_pre + (c_prev * self.p_f if peep else 0))  # eq-lstm-forget, eq-peephole-forget
            else:
                f = ones
            g_pre = self.pre_activation("g", x_t, h_in, prev)  # (b, h)
            g = torch.tanh(g_pre) if spec.input_activation else g_pre  # eq-lstm-candidate
            c = f * c_prev + i * g  # eq-lstm-cell  (b, h)
            if spec.output_gate:
                o_pre = self.pre_activation("o", x_t, h_in, prev)  # (b, h)
                o = torch.sigmoid(o_pre + (c * self.p_o if peep else 0))  # eq-lstm-output, eq-peephole-output
            else:
                o = ones
            h = o * (torch.tanh(c) if spec.output_activation else c)  # eq-lstm-hidden
            h_prev = hold(mask, step, h, h_prev)  # padded steps keep the state
            c_prev = hold(mask, step, c, c_prev)
            hs.append(h_prev)
            if spec.full_gate_recurrence:
                prev = {k: hold(mask, step, new, prev[k]) for k, new in zip("ifo", (i, f, o))}
        finals = (h_prev, c_prev)
        if spec.full_gate_recurrence:
            finals += (torch.cat([prev["i"], prev["f"], prev["o"]], dim=1),)
        return torch.stack(hs, dim=1), finals

    def stacked_weights(self):
        """``W_x`` (d, 4h), ``W_h`` (h, 4h), ``b`` (4h,) in the fused order [i, f, g, o]."""
        W_x = torch.cat([getattr(self, f"W_x{k}") for k in FUSED_ORDER], dim=1)
        W_h = torch.cat([getattr(self, f"W_h{k}") for k in FUSED_ORDER], dim=1)
        if self.bias:
            b = torch.cat([getattr(self, f"b_{k}") for k in FUSED_ORDER])
        else:
            b = W_x.new_zeros(W_x.shape[1])
        return W_x, W_h, b

    def forward_fused(self, x, h0, c0, lengths=None):
        """The fast path (vanilla LSTM only): ``lstm_lab.nn.fused_lstm``; every sequence has all t steps."""
        if lengths is not None:
            raise ValueError(
                "lengths needs method='cell' (the masked loop) or method='torch' (PyTorch's kernel on packed "
                "sequences); method='fused' runs batches of equal lengths only"
            )
        hs, h_n, c_n = fused_lstm(x, h0, c0, *self.stacked_weights())
        return hs, (h_n, c_n)


class LSTM(StackedRecurrent):
    """A stack of LSTM layers, batch-first, with a choice of variant.

    Parameters
    ----------
    input_size, hidden_size, num_layers, bias
        As in ``torch.nn.LSTM``.
    variant
        One of ``lstm_lab.variants.LSTM_VARIANTS``: "vanilla" (PyTorch's LSTM), "peephole"
        and Greff et al.'s NIG, NFG, NOG, NIAF, NOAF, NP, CIFG, FGR.
    forget_bias
        Added to the forget gate's bias at initialisation (Jozefowicz et al. 2015 use 1).
    method
        "cell" runs the readable cell (one line per equation, autograd backward); "fused"
        our fast path with a hand-written backward, built the way cuDNN builds it; "torch"
        PyTorch's own kernel (oneDNN on a CPU, cuDNN on a GPU) on these same parameters.
        "fused" and "torch" exist for the vanilla LSTM (and NP) only. "auto" (default) picks
        "torch" where it applies and "cell" otherwise: the fastest choice for training. Under
        ``torch.func.vmap`` (e.g. ``lstm_lab.experiments.SeedEnsemble``) "auto" runs "cell",
        since PyTorch's LSTM kernel has no batching rule. No choice draws random numbers or
        keeps a copy of the weights: all of them compute on the parameters below.

    dropout, bidirectional
        As in ``torch.nn.LSTM``: dropout on the output of every layer but the last, in training
        mode; a reverse direction beside the forward one in every layer (outputs (b, t, 2h),
        forward half first), for every variant and every method.
    variational
        Gal and Ghahramani's dropout instead of ``torch.nn``'s: one mask per sequence for all
        its steps, between layers and on every layer's h_{t-1} (methods "auto" and "cell"; see
        :class:`~lstm_lab.nn.base.StackedRecurrent`).

    ``forward(x, state=None)`` takes x (b, t, input_size) and ``state = (h0, c0)``, each
    (num_layers, b, h) (num_layers * 2 if bidirectional), or None for zeros; FGR adds a third
    tensor, the previous gates (num_layers, b, 3h). It returns ``(outputs (b, t, h), (h_n, c_n))``
    like ``torch.nn.LSTM``. ``forward(x, state, lengths=...)`` runs a right-padded batch of
    sequences of different lengths (methods "cell" and "torch"): see :meth:`StackedRecurrent.forward`.
    """

    torch_kind = "LSTM"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 variant: str = "vanilla", forget_bias: float = 0.0, method: str = "auto", *,
                 dropout: float = 0.0, bidirectional: bool = False, variational: bool = False):
        self.spec = lstm_spec(variant)
        check_forget_bias(self.spec, forget_bias)
        if forget_bias and not bias:
            raise ValueError("forget_bias needs bias=True")
        if method == "fused" and not self.spec.torch_twin:
            raise ValueError(f"method='fused' supports the vanilla LSTM only, not {self.spec.name!r}; "
                             "use method='cell'")
        self.forget_bias = float(forget_bias)
        self.method = method
        self.state_names = ("h", "c", "gates") if self.spec.full_gate_recurrence else ("h", "c")
        super().__init__(input_size, hidden_size, num_layers, bias, dropout=dropout, bidirectional=bidirectional,
                         variational=variational)

    @property
    def variant(self) -> str:
        return self.spec.name

    def make_layer(self, input_size: int, reverse: bool = False) -> LSTMLayer:
        return LSTMLayer(input_size, self.hidden_size, self.bias, self.spec, self.forget_bias, self.method, reverse)

    def state_sizes(self) -> tuple[int, ...]:
        h = self.hidden_size
        return (h, h, 3 * h) if self.spec.full_gate_recurrence else (h, h)

    def extra_repr(self) -> str:
        own = f"variant={self.variant!r}, forget_bias={self.forget_bias}, method={self.method!r}"
        return ", ".join(part for part in (own, self.stack_repr()) if part)

    def check_torch_equivalent(self) -> None:
        if not self.spec.torch_twin:
            raise ValueError(f"torch.nn.LSTM has no {self.variant!r} variant")
