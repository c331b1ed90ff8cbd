"""The Mamba block (Gu and Dao, 2023): a selective SSM between a gated MLP's two projections.

Glossary (book symbols -> code):

- b batch, t time steps, d ``d_model`` (the block's width), e ``d_inner = expand * d_model``
  (the SSM's channels), n ``d_state`` (state size per channel), r ``dt_rank``, k ``d_conv``.
- ``in_proj`` (d -> 2e): x and the gate z; ``conv1d``: causal depthwise convolution over time,
  kernel k, padded on the left only; ``x_proj`` (e -> r + 2n): delta's low-rank input, B_t, C_t;
  ``dt_proj`` (r -> e): delta_t = softplus(dt_proj(.)); ``A_log`` (e, n): A = -exp(A_log);
  ``D`` (e,): skip; ``out_proj`` (e -> d).
- The SSM input matrix is B (capital); the batch size is b (lowercase).

Forward pass, per time step (all steps at once in :meth:`MambaBlock.forward`)::

    x, z  = in_proj(u)                          # (b, t, e) each
    x     = SiLU(causal_conv1d(x))              # (b, t, e)
    dt, B, C = x_proj(x)                        # (b, t, r), (b, t, n), (b, t, n)
    delta = softplus(dt_proj(dt))               # (b, t, e), > 0
    y     = selective_scan(x, delta, A, B, C, D)   # eq-s6-recurrence
    out   = out_proj(y * SiLU(z))               # (b, t, d)

Discretisation: ZOH for A and B_bar = delta B (``discretization="zoh_a_euler_b"``, eq-ssm-zoh-a and
eq-ssm-simple-b), as in Mamba's reference code. Generation: :meth:`MambaBlock.step` consumes one
token with a constant-size state ``(conv_state (b, e, k - 1), ssm_state (b, e, n))``.

:class:`LTIBlock` is the same block with the selection removed: delta (e,), B (e, n) and C (e, n)
are parameters, the same at every time step, instead of functions of the input. Everything else
(input projection, causal depthwise convolution, SiLU, the output gate SiLU(z), skip D, output
projection, the initialisation of delta and A) is the same, so the two blocks have almost the
same number of parameters and differ only in selectivity. Being time-invariant, it runs as an
FFT convolution with the kernel K_k = C A_bar^k B_bar (eq-ssm-kernel, eq-ssm-convolution),
discretised like Mamba (eq-ssm-zoh-a, eq-ssm-simple-b).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lstm_lab.checks import check_choice, check_size
from lstm_lab.nn.base import check_input, check_state_tuple
from lstm_lab.nn.ssm import (
    SCAN_METHODS,
    A_from_log,
    discretize_euler_b,
    lti_convolution,
    lti_kernel,
    s4d_real_A_log,
    selective_scan,
    selective_step,
)


def delta_bias(u: torch.Tensor, dt_min: float, dt_max: float) -> torch.Tensor:
    """Mamba's start for the step size: the bias b with softplus(b) = delta0, where delta0 is
    log-uniform in [dt_min, dt_max] (``u`` uniform in [0, 1), any shape)."""
    delta0 = torch.exp(u * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
    return delta0 + torch.log(-torch.expm1(-delta0))  # softplus^-1: log(exp(x) - 1)


class CausalConvFront:
    """The front every Mamba-shaped block shares (a mixin: needs ``in_proj``, ``conv1d``, ``d_conv``).

    :meth:`conv_front` splits the input projection into the SSM branch x and the gate branch z,
    and runs x through the causal depthwise convolution and SiLU.
    """

    def conv_front(self, u: torch.Tensor):
        """u (b, t, d_model) -> (x_c (b, e, t + k - 1) the padded conv input, x_conv (b, t, e), z (b, t, e))."""
        x, z = self.in_proj(u).chunk(2, dim=-1)  # (b, t, e) each
        x_c = F.pad(x.transpose(1, 2), (self.d_conv - 1, 0))  # left padding only: causal  (b, e, t + k - 1)
        x_conv = F.silu(self.conv1d(x_c).transpose(1, 2))  # (b, t, e)
        return x_c, x_conv, z


class MambaBlock(CausalConvFront, nn.Module):
    """One Mamba block: (b, t, d_model) -> (b, t, d_model), no residual and no normalisation.

    ``dt_rank`` defaults to ceil(d_model / 16), as in Mamba. ``method`` is the ``method`` of
    :func:`lstm_lab.nn.ssm.selective_scan`: "sequential" (the readable loop), or "parallel",
    "chunked", "auto" (the default; :func:`lstm_lab.nn.scan.linear_scan`).
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        expand: int = 2,
        d_conv: int = 4,
        dt_rank: int | None = None,
        *,
        method: str = "auto",
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
    ):
        super().__init__()
        self.d_model = check_size(d_model, "d_model")
        self.d_state = check_size(d_state, "d_state")
        self.expand = check_size(expand, "expand")
        self.d_conv = check_size(d_conv, "d_conv")
        self.dt_rank = math.ceil(self.d_model / 16) if dt_rank is None else check_size(dt_rank, "dt_rank")
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"need 0 < dt_min <= dt_max, got dt_min = {dt_min!r}, dt_max = {dt_max!r}")
        self.method = check_choice(method, SCAN_METHODS)
        self.dt_min, self.dt_max = float(dt_min), float(dt_max)
        self.d_inner = e = self.expand * self.d_model
        n, r = self.d_state, self.dt_rank
        self.in_proj = nn.Linear(self.d_model, 2 * e, bias=False)
        self.conv1d = nn.Conv1d(e, e, kernel_size=self.d_conv, groups=e, bias=True)  # depthwise; we pad
        self.x_proj = nn.Linear(e, r + 2 * n, bias=False)
        self.dt_proj = nn.Linear(r, e, bias=True)
        self.A_log = nn.Parameter(torch.empty(e, n))
        self.D = nn.Parameter(torch.empty(e))
        self.out_proj = nn.Linear(e, self.d_model, bias=False)
        self.reset_ssm_parameters()

    @torch.no_grad()
    def reset_ssm_parameters(self) -> None:
        """Mamba's initialisation of the SSM parameters (the linear layers keep torch's).

        - ``dt_proj.weight`` uniform in (-r^-1/2, r^-1/2);
        - ``dt_proj.bias`` = softplus^-1(delta0), delta0 log-uniform in [dt_min, dt_max], so that
          delta = softplus(dt_proj(0)) starts in [1e-3, 1e-1];
        - ``A_log`` S4D-real (A[:, k] = -(k + 1)); ``D`` ones.
        """
        bound = self.dt_rank**-0.5
        self.dt_proj.weight.uniform_(-bound, bound)
        u = torch.rand(self.d_inner, dtype=self.dt_proj.bias.dtype, device=self.dt_proj.bias.device)
        self.dt_proj.bias.copy_(delta_bias(u, self.dt_min, self.dt_max))
        self.A_log.copy_(s4d_real_A_log(self.d_inner, self.d_state, dtype=self.A_log.dtype, device=self.A_log.device))
        self.D.fill_(1.0)

    # ------------------------------------------------------------------ pieces shared by forward and step
    def _ssm_inputs(self, x: torch.Tensor):
        """x (..., e) after the conv and SiLU -> delta (..., e), B (..., n), C (..., n)."""
        dt, B, C = self.x_proj(x).split([self.dt_rank, self.d_state, self.d_state], dim=-1)  # (..., r), (..., n) x2
        delta = F.softplus(self.dt_proj(dt))  # (..., e), > 0
        return delta, B, C

    def forward(self, u: torch.Tensor, *, return_state: bool = False):
        """Run the block over ``u`` (b, t, d_model); returns (b, t, d_model).

        With ``return_state`` returns ``(out, state)``, ``state`` as for :meth:`step`, so that
        generation can go on from the end of ``u`` (a prompt).
        """
        u = check_input(u, self.d_model, self.A_log, name="u")
        b, t, _ = u.shape
        x_c, x_conv, z = self.conv_front(u)  # (b, e, t + k - 1), (b, t, e), (b, t, e)
        delta, B, C = self._ssm_inputs(x_conv)
        A = A_from_log(self.A_log)  # (e, n), negative
        y, h = selective_scan(
            x_conv, delta, A, B, C, self.D, method=self.method, return_state=True
        )  # eq-s6-recurrence  (b, t, e), (b, e, n)
        out = self.out_proj(y * F.silu(z))  # (b, t, d)
        if not return_state:
            return out
        conv_state = x_c[:, :, x_c.shape[2] - (self.d_conv - 1) :]  # last k - 1 conv inputs  (b, e, k - 1)
        return out, (conv_state, h)

    def initial_state(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Zeros: ``(conv_state (b, e, d_conv - 1), ssm_state (b, e, n))``, the parameters' dtype and device."""
        b = check_size(batch_size, "batch_size")
        w = self.A_log
        return w.new_zeros(b, self.d_inner, self.d_conv - 1), w.new_zeros(b, self.d_inner, self.d_state)

    def _check_state(self, state, u_t: torch.Tensor):
        b = u_t.shape[0]
        if state is None:
            return self.initial_state(b)
        shapes = ((b, self.d_inner, self.d_conv - 1), (b, self.d_inner, self.d_state))
        return check_state_tuple(state, ("conv_state", "ssm_state"), shapes, u_t, x_name="u_t")

    def step(self, u_t: torch.Tensor, state=None):
        """Consume one token: ``u_t`` (b, d_model) -> ``(y_t (b, d_model), state)``.

        ``state`` is None (zeros) or ``(conv_state (b, e, d_conv - 1), ssm_state (b, e, n))``;
        the new state has the same shapes, whatever the number of tokens seen. The inputs are
        not modified.
        """
        if not isinstance(u_t, torch.Tensor):
            raise TypeError(f"u_t must be a torch.Tensor of shape (b, d_model), got {type(u_t).__name__}")
        if u_t.dim() != 2:
            raise ValueError(f"u_t must have shape (b, d_model), one time step, got shape {tuple(u_t.shape)}")
        u_t = check_input(u_t[:, None], self.d_model, self.A_log, name="u_t")[:, 0]  # (b, d)
        conv_state, h = self._check_state(state, u_t)
        x_t, z_t = self.in_proj(u_t).chunk(2, dim=-1)  # (b, e) each
        window = torch.cat([conv_state, x_t[..., None]], dim=-1)  # (b, e, k)
        x_conv = F.silu((window * self.conv1d.weight[:, 0]).sum(-1) + self.conv1d.bias)  # (b, e)
        delta_t, B_t, C_t = self._ssm_inputs(x_conv)  # (b, e), (b, n), (b, n)
        A = A_from_log(self.A_log)  # (e, n)
        y_t, h = selective_step(x_conv, delta_t, A, B_t, C_t, self.D, h)  # eq-s6-recurrence
        out = self.out_proj(y_t * F.silu(z_t))  # (b, d)
        return out, (window[..., 1:], h)


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
            self.dt_bias.copy_(delta_bias(torch.rand(e), dt_min, dt_max))
            self.B.normal_(0.0, n**-0.5)
            self.C.normal_(0.0, n**-0.5)
            self.A_log.copy_(s4d_real_A_log(e, n))
            self.D.fill_(1.0)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """u (b, t, d_model) -> (b, t, d_model)."""
        u = check_input(u, self.d_model, self.A_log, name="u")
        t = u.shape[1]
        _, x_conv, z = self.conv_front(u)  # (b, t, e) each
        A = A_from_log(self.A_log)  # (e, n)
        delta = F.softplus(self.dt_bias)  # (e,), the same at every step
        A_bar, B_bar = discretize_euler_b(A, self.B, delta)  # eq-ssm-zoh-a, eq-ssm-simple-b  (e, n)
        K = lti_kernel(A_bar, B_bar, self.C, t)  # eq-ssm-kernel  (e, t)
        y = lti_convolution(x_conv, K, self.D)  # eq-ssm-convolution  (b, t, e)
        return self.out_proj(y * F.silu(z))  # (b, t, d)


#: the blocks a :class:`MambaStack` can stack: "selective" (:class:`MambaBlock`) or "lti" (:class:`LTIBlock`)
BLOCKS = ("selective", "lti")


class MambaStack(nn.Module):
    """``n_layers`` residual blocks ``x + block(norm(x))``, then a final LayerNorm: (b, t, d) -> (b, t, d).

    The backbone of a Mamba language model (the reference code calls it ``MixerModel``), with
    LayerNorm where the reference offers RMSNorm. ``block`` is "selective" (:class:`MambaBlock`)
    or "lti" (:class:`LTIBlock`). Wrapped in :class:`lstm_lab.nn.SequenceModel`, which adds the
    token embedding and the readout, it is a language model.

    ``forward(x (b, t, d_model), state=None)`` returns ``(y (b, t, d_model), None)``: a stack run
    over whole sequences keeps no state between calls (:meth:`MambaBlock.step` decodes one
    token at a time with one). ``input_size`` and ``hidden_size`` are both ``d_model``.

    Parameters: ``norms`` (n_layers ``nn.LayerNorm(d)``), ``blocks``, ``norm_f`` (``nn.LayerNorm(d)``).
    """

    def __init__(self, d_model: int, n_layers: int = 2, *, block: str = "selective", d_state: int = 16,
                 expand: int = 2, d_conv: int = 4):
        super().__init__()
        self.block = check_choice(block, BLOCKS, "block")
        self.d_model = check_size(d_model, "d_model")
        self.n_layers = check_size(n_layers, "n_layers")
        self.input_size = self.hidden_size = self.d_model
        make = MambaBlock if block == "selective" else LTIBlock
        self.norms = nn.ModuleList(nn.LayerNorm(self.d_model) for _ in range(self.n_layers))
        self.blocks = nn.ModuleList(make(self.d_model, d_state, expand, d_conv) for _ in range(self.n_layers))
        self.norm_f = nn.LayerNorm(self.d_model)

    def forward(self, x: torch.Tensor, state=None):
        """x (b, t, d_model) -> ``(y (b, t, d_model), None)``; ``state`` must be None."""
        if state is not None:
            raise TypeError(f"MambaStack keeps no state between calls: state must be None, got {type(state).__name__}")
        x = check_input(x, self.d_model, self.norm_f.weight, size_name="d_model")
        for norm, block in zip(self.norms, self.blocks):
            x = x + block(norm(x))  # (b, t, d)
        return self.norm_f(x), None  # (b, t, d)
