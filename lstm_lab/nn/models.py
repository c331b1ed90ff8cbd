"""Small models built around a core, used by the chapters' experiments.

- :class:`SequenceModel`: optional embedding -> a recurrent core -> linear readout at every step.
- :class:`SSMTokenModel`: embedding -> ``n_layers`` residual blocks ``x + block(norm(x))`` of
  :class:`lstm_lab.nn.MambaBlock` or its time-invariant twin :class:`lstm_lab.nn.LTIBlock`
  -> norm -> linear head, logits at every step (b, t, m); :func:`selective_deltas` reads the
  step sizes delta_t a selective block computes.

Symbols: b batch, t time steps, d ``d_model``, e ``d_inner = expand * d_model``, n ``d_state``,
v the input vocabulary, m the number of output classes.
"""

from __future__ import annotations

import torch
from torch import nn

from lstm_lab.checks import check_int, check_size
from lstm_lab.nn.mamba import LTIBlock, MambaBlock

BLOCKS = ("selective", "lti")


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
        return self.head(out), state  # eq-rnn-readout  y_t = h_t W_hy + b_y  (b, t, output_size)


class SSMTokenModel(nn.Module):
    """Embedding -> residual SSM blocks -> linear head: tokens (b, t) -> ``(logits (b, t, m), None)``.

    ``block`` is "selective" (:class:`lstm_lab.nn.MambaBlock`) or "lti" (:class:`LTIBlock`).
    """

    def __init__(self, vocab_size: int, output_size: int, d_model: int = 32, n_layers: int = 2,
                 *, block: str = "selective", d_state: int = 16, expand: int = 2, d_conv: int = 4):
        super().__init__()
        if block not in BLOCKS:
            raise ValueError(f"block must be one of {', '.join(map(repr, BLOCKS))}, got {block!r}")
        self.block = block
        self.vocab_size = check_size(vocab_size, "vocab_size")
        self.output_size = check_size(output_size, "output_size")
        self.d_model = check_size(d_model, "d_model")
        self.n_layers = check_size(n_layers, "n_layers")
        make = MambaBlock if block == "selective" else LTIBlock
        self.embedding = nn.Embedding(self.vocab_size, self.d_model)
        self.norms = nn.ModuleList(nn.LayerNorm(self.d_model) for _ in range(self.n_layers))
        self.blocks = nn.ModuleList(make(self.d_model, d_state, expand, d_conv) for _ in range(self.n_layers))
        self.norm_f = nn.LayerNorm(self.d_model)
        self.head = nn.Linear(self.d_model, self.output_size)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (b, t) of int64 ids in [0, vocab_size) -> ``(logits (b, t, output_size), None)``:
        outputs first, as every sequence model of the package returns them (it keeps no state
        to hand back)."""
        if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2 or tokens.is_floating_point():
            raise TypeError("tokens must be an integer torch.Tensor of shape (b, t)")
        x = self.embedding(tokens)  # (b, t, d)
        for norm, block in zip(self.norms, self.blocks):
            x = x + block(norm(x))  # (b, t, d)
        return self.head(self.norm_f(x)), None  # (b, t, m)


@torch.no_grad()
def selective_deltas(model: SSMTokenModel, tokens: torch.Tensor, layer: int = 0) -> torch.Tensor:
    """The step sizes delta_t (b, t, e) that the selective block ``layer`` of ``model`` computes for ``tokens`` (b, t).

    Runs the model's embedding and the residual blocks below ``layer``, then the block's input
    projection, causal convolution, SiLU and delta = softplus(dt_proj(.)), exactly as
    :meth:`lstm_lab.nn.MambaBlock.forward` does.
    """
    if model.block != "selective":
        raise ValueError("selective_deltas needs a model with block='selective' (an LTI block has one delta)")
    layer = check_int(layer, "layer", minimum=0, maximum=model.n_layers - 1)
    device = next(model.parameters()).device
    x = model.embedding(tokens.to(device))  # (b, t, d)
    for norm, block in zip(model.norms[:layer], model.blocks[:layer]):
        x = x + block(norm(x))
    block = model.blocks[layer]
    _, x_conv, _ = block.conv_front(model.norms[layer](x))  # (b, t, e)
    delta, _, _ = block._ssm_inputs(x_conv)  # (b, t, e)
    return delta
