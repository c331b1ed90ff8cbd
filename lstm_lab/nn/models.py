"""Small models built around a recurrent core, used by the chapters' experiments."""

from __future__ import annotations

import torch
from torch import nn


class SequenceModel(nn.Module):
    """Optional token embedding -> recurrent core -> linear readout at every step.

    Parameters
    ----------
    core
        A batch-first recurrent module returning ``(outputs, state)``, e.g.
        ``lstm_lab.nn.LSTM`` or ``torch.nn.GRU(batch_first=True)``; it must have
        ``input_size`` and ``hidden_size`` attributes.
    output_size
        Size of the readout at every step (classes, or 1 for regression).
    vocab_size
        If given, inputs are integer tokens (b, t) embedded to ``core.input_size``.

    ``forward(x, state=None)`` returns ``(y, state)`` with y of shape (b, t, output_size).
    """

    def __init__(self, core: nn.Module, output_size: int, *, vocab_size: int | None = None):
        super().__init__()
        for attr in ("input_size", "hidden_size"):
            if not hasattr(core, attr):
                raise TypeError(f"core must have an {attr!r} attribute, got {type(core).__name__}")
        self.embed = nn.Embedding(vocab_size, core.input_size) if vocab_size else None
        self.core = core
        self.head = nn.Linear(core.hidden_size, output_size)

    def forward(self, x: torch.Tensor, state=None):
        if self.embed is not None:
            if x.is_floating_point() or x.dim() != 2:
                raise TypeError(f"x must be integer tokens of shape (b, t), got {x.dtype} {tuple(x.shape)}")
            x = self.embed(x)  # (b, t, d)
        out, state = self.core(x, state)  # (b, t, h)
        return self.head(out), state  # (b, t, output_size)
