"""One model around any core: embed the tokens, run the core, read out at every step.

:class:`SequenceModel` wraps every sequence model of the course the same way::

    x (b, t) tokens --embed--> (b, t, d) --core--> (b, t, h) --head--> (b, t, m)

and the core is any batch-first module that maps (b, t, d) to ``(outputs (b, t, h), state)``
and names d and h in ``input_size`` and ``hidden_size``: a recurrent stack
(:class:`lstm_lab.nn.LSTM`, ``torch.nn.GRU(batch_first=True)``, :class:`lstm_lab.nn.SLSTM` ...),
:class:`lstm_lab.nn.TransformerStack` (its state is the KV cache) or
:class:`lstm_lab.nn.MambaStack` (no state). :func:`selective_deltas` reads the step sizes
delta_t that a Mamba stack's selective block computes.

Symbols: b batch, t time steps, d the core's input size, h its output size, v the
vocabulary, m the number of outputs per step.
"""

from __future__ import annotations

import torch
from torch import nn

from lstm_lab.checks import check_int, check_size
from lstm_lab.nn.mamba import MambaStack


class SequenceModel(nn.Module):
    """Optional token embedding -> core -> linear readout at every step.

    Parameters
    ----------
    core
        A batch-first module returning ``(outputs, state)``, with ``input_size`` and
        ``hidden_size`` attributes: see the module docstring.
    output_size
        Size of the readout at every step (classes, or 1 for regression).
    vocab_size
        If given, inputs are integer tokens (b, t) in ``[0, vocab_size)``, embedded to
        ``core.input_size``; if None, inputs are float features (b, t, core.input_size).

    ``forward(x, state=None)`` returns ``(y, state)`` with y of shape (b, t, output_size);
    ``state`` is what the core takes and returns: None for zeros or an empty cache, or the
    state of an earlier call (an LSTM's ``(h_n, c_n)``, a Transformer's ``DecoderCache``).

    Parameters: ``embed`` (``nn.Embedding(v, d)``, if ``vocab_size``), ``core``, ``head``
    (``nn.Linear(h, output_size)``).
    """

    def __init__(self, core: nn.Module, output_size: int, *, vocab_size: int | None = None):
        super().__init__()
        if not isinstance(core, nn.Module):
            raise TypeError(f"core must be a torch.nn.Module, got {type(core).__name__}")
        for attr in ("input_size", "hidden_size"):
            if not hasattr(core, attr):
                raise TypeError(f"core must have an {attr!r} attribute, got {type(core).__name__}")
        self.output_size = check_size(output_size, "output_size")
        self.vocab_size = None if vocab_size is None else check_size(vocab_size, "vocab_size")
        self.core = core
        self.embed = nn.Embedding(self.vocab_size, core.input_size) if self.vocab_size else None
        directions = getattr(core, "num_directions", 1)  # a bidirectional stack outputs 2h features
        self.head = nn.Linear(core.hidden_size * directions, self.output_size)

    def check_tokens(self, tokens) -> torch.Tensor:
        """``tokens`` must be an integer tensor (b, t) of ids in [0, vocab_size) on the model's device."""
        if not isinstance(tokens, torch.Tensor):
            raise TypeError(f"tokens must be a torch.Tensor of shape (b, t), got {type(tokens).__name__}")
        if tokens.dtype == torch.bool or tokens.is_floating_point() or tokens.is_complex():
            raise TypeError(f"tokens must be an integer tensor of token ids, shape (b, t), got dtype {tokens.dtype}")
        if tokens.dim() != 2:
            raise ValueError(f"tokens must have shape (b, t), got shape {tuple(tokens.shape)}")
        if tokens.shape[1] == 0:
            raise ValueError(f"tokens must have at least one time step, got shape {tuple(tokens.shape)}")
        device = self.embed.weight.device
        if tokens.device != device:
            raise ValueError(f"tokens are on {tokens.device} but the model is on {device}; move one of them with .to()")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.vocab_size):
            raise ValueError(f"token ids must lie in [0, vocab_size) = [0, {self.vocab_size})")
        return tokens

    def forward(self, x: torch.Tensor, state=None):
        if self.embed is not None:
            x = self.embed(self.check_tokens(x))  # (b, t, d)
        out, state = self.core(x, state)  # (b, t, h)
        return self.head(out), state  # eq-rnn-readout  y_t = h_t W_hy + b_y  (b, t, output_size)


@torch.no_grad()
def selective_deltas(model: SequenceModel, tokens: torch.Tensor, layer: int = 0) -> torch.Tensor:
    """The step sizes delta_t (b, t, e) that the selective block ``layer`` of ``model`` computes for ``tokens`` (b, t).

    ``model`` is a :class:`SequenceModel` around a :class:`lstm_lab.nn.MambaStack` of
    selective blocks. Runs the embedding and the residual blocks below ``layer``, then the
    block's input projection, causal convolution, SiLU and delta = softplus(dt_proj(.)), exactly
    as :meth:`lstm_lab.nn.MambaBlock.forward` does.
    """
    stack = model.core
    if not isinstance(stack, MambaStack) or model.embed is None:
        raise TypeError("selective_deltas needs a SequenceModel with a vocab_size around a MambaStack")
    if stack.block != "selective":
        raise ValueError("selective_deltas needs a stack with block='selective' (an LTI block has one delta)")
    layer = check_int(layer, "layer", minimum=0, maximum=stack.n_layers - 1)
    x = model.embed(model.check_tokens(tokens))  # (b, t, d)
    for norm, block in zip(stack.norms[:layer], stack.blocks[:layer]):
        x = x + block(norm(x))  # (b, t, d)
    block = stack.blocks[layer]
    _, x_conv, _ = block.conv_front(stack.norms[layer](x))  # (b, t, e)
    delta, _, _ = block._ssm_inputs(x_conv)  # (b, t, e)
    return delta
