"""A small time-invariant (LTI, S4D-style) state-space language model, and recall objectives.

Chapter 5 sets this model against a Transformer on multi-query associative recall: the SSM's
kernel is the same for every input, so it cannot decide, from what it reads, what to keep.

Glossary (book symbols -> code): b batch, t time steps (tokens), d ``d_model`` channels (each
with its own SSM), n ``d_state`` state entries per channel, V ``vocab_size``.

- :class:`LTISSM`: one diagonal SSM per channel with learned ``A_log`` (d, n), ``B`` (d, n),
  ``C`` (d, n), ``log_delta`` (d,) and ``D`` (d,). A = -exp(A_log) < 0, delta = exp(log_delta);
  the zero-order hold (:func:`lstm_lab.ssm.discretize_zoh`) gives A_bar, B_bar, and the layer is the
  causal convolution y = K * x + D x with K_k = C A_bar^k B_bar (:func:`lstm_lab.ssm.lti_kernel`,
  :func:`lstm_lab.ssm.lti_convolution`; eq-ssm-kernel, eq-ssm-convolution of the state-space chapter).
  :meth:`LTISSM.forward_recurrent` runs the same SSM step by step (the slow reference).
- :class:`LTIModel`: embedding -> n_layers pre-norm blocks [x + W_o GELU(SSM(LN(x))), then
  x + MLP(LN(x))] -> LayerNorm -> linear head, logits (b, t, V). No gate depends on the input.
- :func:`query_cross_entropy`, :func:`query_accuracy`: the loss and accuracy on the last
  ``num_queries`` positions of a recall sequence (:func:`lstm_lab.tasks.associative_recall`), for
  any model whose forward returns logits (b, t, V) or a tuple whose first item is the logits.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from lstm_lab.nn.base import check_size
from lstm_lab.ssm import discretize_zoh, lti_convolution, lti_kernel, lti_recurrence, s4d_real_A_log


class LTISSM(nn.Module):
    """d independent diagonal SSMs of state size n, time-invariant: (b, t, d) -> (b, t, d).

    Starts as S4D-real (A[:, k] = -(k + 1)), B = 1, C ~ N(0, 1/n), D = 1 and delta log-uniform
    in [dt_min, dt_max] per channel.
    """

    def __init__(self, d_model: int, d_state: int = 16, *, dt_min: float = 1e-3, dt_max: float = 1e-1):
        super().__init__()
        self.d_model = check_size(d_model, "d_model")
        self.d_state = check_size(d_state, "d_state")
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"need 0 < dt_min <= dt_max, got dt_min = {dt_min!r}, dt_max = {dt_max!r}")
        d, n = self.d_model, self.d_state
        self.A_log = nn.Parameter(s4d_real_A_log(d, n))
        self.B = nn.Parameter(torch.ones(d, n))
        self.C = nn.Parameter(torch.randn(d, n) / math.sqrt(n))
        self.D = nn.Parameter(torch.ones(d))
        u = torch.rand(d)
        self.log_delta = nn.Parameter(math.log(dt_min) + u * (math.log(dt_max) - math.log(dt_min)))

    def discrete(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(A_bar, B_bar), each (d, n), by the zero-order hold."""
        A = -torch.exp(self.A_log)  # (d, n), negative
        return discretize_zoh(A, self.B, torch.exp(self.log_delta))

    def kernel(self, t: int) -> torch.Tensor:
        """K (d, t): K_k = C A_bar^k B_bar for k = 0 .. t-1."""
        A_bar, B_bar = self.discrete()
        return lti_kernel(A_bar, B_bar, self.C, t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (b, t, d) -> y (b, t, d), the causal convolution computed with the FFT."""
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[2] != self.d_model:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must be a tensor of shape (b, t, d) with d = {self.d_model}, got {shape}")
        return lti_convolution(x, self.kernel(x.shape[1]), self.D)  # (b, t, d)

    def forward_recurrent(self, x: torch.Tensor) -> torch.Tensor:
        """The same map run as a recurrence, one step at a time: the slow reference for :meth:`forward`."""
        A_bar, B_bar = self.discrete()
        return lti_recurrence(x, A_bar, B_bar, self.C, self.D)  # (b, t, d)


class LTIBlock(nn.Module):
    """x + W_o GELU(SSM(LN_1(x))), then x + MLP(LN_2(x)) with a GELU and 4d hidden units."""

    def __init__(self, d_model: int, d_state: int = 16):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model)
        self.ssm = LTISSM(d_model, d_state)
        self.out = nn.Linear(d_model, d_model)
        self.ln_2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (b, t, d) -> (b, t, d)."""
        x = x + self.out(F.gelu(self.ssm(self.ln_1(x))))  # (b, t, d)
        return x + self.mlp(self.ln_2(x))  # (b, t, d)


class LTIModel(nn.Module):
    """Token ids (b, t) -> next-token logits (b, t, vocab_size) through n_layers :class:`LTIBlock`."""

    def __init__(self, vocab_size: int, d_model: int = 64, d_state: int = 16, n_layers: int = 2):
        super().__init__()
        self.vocab_size = check_size(vocab_size, "vocab_size")
        self.d_model = check_size(d_model, "d_model")
        self.n_layers = check_size(n_layers, "n_layers")
        self.embed = nn.Embedding(self.vocab_size, self.d_model)
        self.blocks = nn.ModuleList([LTIBlock(self.d_model, d_state) for _ in range(self.n_layers)])
        self.ln_f = nn.LayerNorm(self.d_model)
        self.head = nn.Linear(self.d_model, self.vocab_size)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens: integer (b, t) in [0, vocab_size) -> logits (b, t, vocab_size)."""
        if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2 or tokens.is_floating_point():
            what = f"shape {tuple(tokens.shape)}, dtype {tokens.dtype}" if isinstance(tokens, torch.Tensor) else type(
                tokens
            ).__name__
            raise ValueError(f"tokens must be an integer tensor of shape (b, t), got {what}")
        x = self.embed(tokens.long())  # (b, t, d)
        for block in self.blocks:
            x = block(x)  # (b, t, d)
        return self.head(self.ln_f(x))  # (b, t, V)


def _query_logits(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Logits (b, q, V) at the last q = y.shape[1] positions of x: where the queries are."""
    if y.dim() != 2 or x.dim() != 2 or y.shape[0] != x.shape[0] or y.shape[1] > x.shape[1]:
        raise ValueError(f"need x (b, t) and y (b, q) with q <= t, got {tuple(x.shape)} and {tuple(y.shape)}")
    out = model(x)
    logits = out[0] if isinstance(out, tuple) else out  # (b, t, V)
    return logits[:, x.shape[1] - y.shape[1] :]  # (b, q, V)


def query_cross_entropy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the value predicted at each query position; x (b, t), y (b, q)."""
    logits = _query_logits(model, x, y)  # (b, q, V)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1).long())


@torch.no_grad()
def query_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of queries whose most likely token is the right value; x (b, t), y (b, q)."""
    was_training = model.training
    model.eval()
    try:
        logits = _query_logits(model, x, y)
    finally:
        model.train(was_training)
    return float((logits.argmax(-1) == y.long()).float().mean())
