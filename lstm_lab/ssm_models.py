"""Small token models: a selective (Mamba) stack, its time-invariant (LTI) twin, and the
objectives that read answers at the last k steps (chapters 5 and 6).

Glossary (book symbols -> code):

- b batch, t time steps, d ``d_model``, e ``d_inner = expand * d_model`` (the SSM's channels),
  n ``d_state``, k ``d_conv``, v the input vocabulary, m the number of output classes.
- :class:`LTIBlock` is :class:`lstm_lab.nn.MambaBlock` with the selection removed: delta (e,),
  B (e, n) and C (e, n) are parameters, the same at every time step, instead of functions of
  the input. Everything else (input projection, causal depthwise convolution, SiLU, the output
  gate SiLU(z), skip D, output projection, the initialisation of delta and A) is the same, so
  the two blocks have almost the same number of parameters and differ only in selectivity.
  Being time-invariant, it runs as an FFT convolution with the kernel K_k = C A_bar^k B_bar
  (eq-ssm-kernel, eq-ssm-convolution), discretised like Mamba (eq-ssm-zoh-a, eq-ssm-simple-b).
- :class:`SSMTokenModel`: embedding -> ``n_layers`` residual blocks ``x + block(norm(x))``
  -> norm -> linear head, logits at every step (b, t, m).
- :func:`last_k_cross_entropy`, :func:`last_k_accuracy`: loss and accuracy on the last k steps,
  where recall tasks (:func:`lstm_lab.tasks.selective_copying`,
  :func:`lstm_lab.tasks.associative_recall`) ask for their answers; for any model whose forward
  returns logits (b, t, m) or a tuple whose first item is the logits.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lstm_lab.nn.base import check_input, check_size
from lstm_lab.nn.mamba import CausalConvFront, MambaBlock
from lstm_lab.runtime import eval_mode
from lstm_lab.ssm import discretize_euler_b, lti_convolution, lti_kernel, s4d_real_A_log

BLOCKS = ("selective", "lti")


class LTIBlock(CausalConvFront, nn.Module):
    """A Mamba block whose delta, B and C do not depend on the input: (b, t, d) -> (b, t, d)."""

    def __init__(self, d_model: int, d_state: int = 16, expand: int = 2, d_conv: int = 4,
                 *, dt_min: float = 1e-3, dt_max: float = 1e-1):
        super().__init__()
        self.d_model = check_size(d_model, "d_model")
        self.d_state = check_size(d_state, "d_state")
        self.expand = check_size(expand, "expand")
        self.d_conv = check_size(d_conv, "d_conv")
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"need 0 < dt_min <= dt_max, got dt_min = {dt_min!r}, dt_max = {dt_max!r}")
        self.d_inner = e = self.expand * self.d_model
        n = self.d_state
        self.in_proj = nn.Linear(self.d_model, 2 * e, bias=False)
        self.conv1d = nn.Conv1d(e, e, kernel_size=self.d_conv, groups=e, bias=True)  # depthwise; we pad
        self.dt_bias = nn.Parameter(torch.empty(e))  # delta = softplus(dt_bias)  (e,)
        self.B = nn.Parameter(torch.empty(e, n))
        self.C = nn.Parameter(torch.empty(e, n))
        self.A_log = nn.Parameter(torch.empty(e, n))
        self.D = nn.Parameter(torch.empty(e))
        self.out_proj = nn.Linear(e, self.d_model, bias=False)
        with torch.no_grad():  # as MambaBlock: delta0 log-uniform in [dt_min, dt_max], S4D-real A, D = 1
            u = torch.rand(e)
            delta0 = torch.exp(u * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
            self.dt_bias.copy_(delta0 + torch.log(-torch.expm1(-delta0)))  # softplus^-1
            self.B.normal_(0.0, n**-0.5)
            self.C.normal_(0.0, n**-0.5)
            self.A_log.copy_(s4d_real_A_log(e, n))
            self.D.fill_(1.0)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """u (b, t, d_model) -> (b, t, d_model)."""
        u = check_input(u, self.d_model, self.A_log, name="u")
        t = u.shape[1]
        _, x_conv, z = self.conv_front(u)  # (b, t, e) each
        A = -torch.exp(self.A_log)  # (e, n)
        delta = F.softplus(self.dt_bias)  # (e,), the same at every step
        A_bar, B_bar = discretize_euler_b(A, self.B, delta)  # eq-ssm-zoh-a, eq-ssm-simple-b  (e, n)
        K = lti_kernel(A_bar, B_bar, self.C, t)  # eq-ssm-kernel  (e, t)
        y = lti_convolution(x_conv, K, self.D)  # eq-ssm-convolution  (b, t, e)
        return self.out_proj(y * F.silu(z))  # (b, t, d)


class SSMTokenModel(nn.Module):
    """Embedding -> residual SSM blocks -> linear head: tokens (b, t) -> logits (b, t, m).

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
        """tokens (b, t) of int64 ids in [0, vocab_size) -> logits (b, t, output_size)."""
        if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2 or tokens.is_floating_point():
            raise TypeError("tokens must be an integer torch.Tensor of shape (b, t)")
        x = self.embedding(tokens)  # (b, t, d)
        for norm, block in zip(self.norms, self.blocks):
            x = x + block(norm(x))  # (b, t, d)
        return self.head(self.norm_f(x))  # (b, t, m)


def _last_k_logits(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Logits (b, k, m) at the last k = y.shape[1] steps of x: where the answers are read out.

    ``model(x)`` may return the logits (b, t, m) or a tuple whose first item is the logits
    (as :class:`lstm_lab.nn.SequenceModel` and the Transformer do).
    """
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError("x and y must be torch tensors (use lstm_lab.tasks.as_tensors)")
    if y.dim() != 2 or x.dim() < 2 or y.shape[0] != x.shape[0] or y.shape[1] > x.shape[1]:
        raise ValueError(f"need x (b, t, ...) and y (b, k) with k <= t, got {tuple(x.shape)} and {tuple(y.shape)}")
    device = next(model.parameters()).device
    out = model(x.to(device))
    logits = out[0] if isinstance(out, tuple) else out  # (b, t, m)
    return logits[:, x.shape[1] - y.shape[1] :]  # (b, k, m)


def last_k_cross_entropy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the last k = y.shape[1] steps' logits against y (b, k): a loss_fn for ``train``."""
    logits = _last_k_logits(model, x, y)  # (b, k, m)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.to(logits.device).reshape(-1).long())


@torch.no_grad()
def last_k_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int | None = None) -> float:
    """Fraction of the last k = y.shape[1] steps whose arg-max logit equals y (b, k), in eval mode.

    ``batch_size`` runs the model on that many sequences at a time (same result, less memory for
    long sequences); None runs them all at once.
    """
    step = x.shape[0] if batch_size is None else check_size(batch_size, "batch_size")
    correct = 0
    with eval_mode(model):
        for i in range(0, x.shape[0], step):
            logits = _last_k_logits(model, x[i : i + step], y[i : i + step])  # (step, k, m)
            correct += (logits.argmax(-1).cpu() == y[i : i + step].cpu().long()).sum().item()
    return correct / y.numel()


@torch.no_grad()
def selective_deltas(model: SSMTokenModel, tokens: torch.Tensor, layer: int = 0) -> torch.Tensor:
    """The step sizes delta_t (b, t, e) that the selective block ``layer`` of ``model`` computes for ``tokens`` (b, t).

    Runs the model's embedding and the residual blocks below ``layer``, then the block's input
    projection, causal convolution, SiLU and delta = softplus(dt_proj(.)), exactly as
    :meth:`lstm_lab.nn.MambaBlock.forward` does.
    """
    if model.block != "selective":
        raise ValueError("selective_deltas needs a model with block='selective' (an LTI block has one delta)")
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < model.n_layers:
        raise ValueError(f"layer must be an int in [0, {model.n_layers}), got {layer!r}")
    device = next(model.parameters()).device
    x = model.embedding(tokens.to(device))  # (b, t, d)
    for norm, block in zip(model.norms[:layer], model.blocks[:layer]):
        x = x + block(norm(x))
    block = model.blocks[layer]
    _, x_conv, _ = block.conv_front(model.norms[layer](x))  # (b, t, e)
    delta, _, _ = block._ssm_inputs(x_conv)  # (b, t, e)
    return delta
