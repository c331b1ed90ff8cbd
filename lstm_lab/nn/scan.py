"""The linear recurrence h_t = a_t * h_{t-1} + b_t, computed four ways, with a scan for its gradient.

Glossary (book symbols -> code):

- b batch, t time steps; ``...`` any number of trailing dimensions (channels d, state size n, ...).
- ``a`` (b, t, ...): the per-step decay (an S6 model's ``A_bar = exp(delta_t A)``, a gate's forget
  value); ``b`` (b, t, ...): the per-step input; ``h0`` (b, ...): the state before step 0;
  ``h`` (b, t, ...): the state after every step.
- Capital B is never the batch here (it is the SSM input matrix elsewhere in the book); inside
  this module ``bsz`` is the batch size.

Equations (labels of the scan chapter):

- eq-linear-recurrence:     h_t = a_t * h_{t-1} + b_t   (elementwise; h_{-1} = h0, zeros by default)
- eq-linear-scan-combine:   two steps (a1, b1) then (a2, b2) act like one step (a2 * a1, a2 * b1 + b2);
                            this combine is associative, so any bracketing of the sequence gives h.
- eq-linear-scan-backward:  with g_t = dL/dh_t in total (from h_t itself and through h_{t+1}),
                            g_t = dh_t + a_{t+1} g_{t+1},  dL/db_t = g_t,  dL/da_t = g_t * h_{t-1},
                            dL/dh0 = a_0 g_0  -- the same recurrence run backwards in time.

Methods (all compute eq-linear-recurrence; they differ only in the order of the arithmetic):

- ``"sequential"``: the readable loop, one step at a time: t steps, each one fused multiply-add
  over the (b, ...) slice. Best when each step already has much work.
- ``"parallel"``: the Hillis-Steele (doubling) scan with the combine above: ceil(log2 t) steps,
  each over the whole sequence. Only products of a's and multiply-adds, no division by a
  cumulative product and no exp/log, so a near 0 (strong decay; products underflow to 0, which
  is their true value to working precision) and a near 1 (no decay) are both safe. It does
  O(t log t) work, so it pays only when per-step overhead dominates.
- ``"chunked"``: time is cut into chunks of L steps. (1) each chunk is scanned from a zero state
  (chunk 0 from h0), all chunks at once, L steps; (2) the chunk-final states are carried across
  chunks, t / L steps of size (b, ...); (3) each chunk adds its carried-in state times the
  within-chunk cumulative product of a. L defaults to about sqrt(t), which balances (1) and (2).
- ``"auto"``: see :func:`choose_method`: "sequential" when the sequence is short or each step is
  wide (on the CPU here, >= 8192 elements per step), "parallel" for small narrow problems on
  the CPU, otherwise "chunked". The thresholds come from ``benchmarks/scan_speed.py`` and a grid
  of shapes on the 2-core CPU.

The gradient is a custom :class:`torch.autograd.Function`: its backward runs the same scan
(same method) backwards in time (eq-linear-scan-backward), so memory stays O(size of h)
instead of an autograd graph of every step. ``a`` may broadcast against ``b``: every
dimension of ``a`` is either the one of ``b`` or 1 (for example a (1, t, d, 1) decay shared by
the batch and the state entries); its gradient is summed over the broadcast dimensions.
Real dtypes (float32, float64; half precision runs but accumulates in half) and complex dtypes
(PyTorch's conjugate-gradient convention) are accepted; device and dtype come from the input.
"""

from __future__ import annotations

import math

import torch
from torch.autograd.function import once_differentiable

from lstm_lab.checks import check_choice, check_like, check_size

METHODS = ("auto", "sequential", "parallel", "chunked")

# Measured on the 2-core CPU with benchmarks/scan_speed.py and a grid of (t, width) shapes,
# width = elements per time step = b * prod(...): the loop costs a few microseconds per step, so
# it loses wherever steps are narrow; the doubling scan wins while the whole problem is small
# (width <= 128 and t * width <= 2**19, e.g. 6-8 ms -> 1 ms); the chunked scan wins up to
# width ~4096; from width 8192 the loop's three passes over memory tie with or beat the
# chunked scan's eight. CUDA is not measured yet: launches cost ~10 us there and bandwidth is far
# larger, so "auto" takes the chunked scan for every sequence longer than 32 steps.
_SHORT_SEQUENCE = 32
_CPU_WIDE_STEP = 8192
_CPU_PARALLEL_WIDTH, _CPU_PARALLEL_SIZE = 128, 1 << 19


def linear_scan(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None, *,
                method: str = "auto", chunk_size: int | None = None) -> torch.Tensor:
    """All states of h_t = a_t * h_{t-1} + b_t (eq-linear-recurrence), differentiable.

    Parameters
    ----------
    a : tensor (b, t, ...), or broadcastable to b's shape dimension by dimension (each size
        equal to b's or 1; same number of dimensions)
    b : tensor (b, t, ...), t >= 1, same dtype and device as ``a``
    h0 : tensor (b, ...), optional; zeros when omitted
    method : "auto", "sequential", "parallel" or "chunked" (see the module docstring)
    chunk_size : int, optional; the chunk length L of "chunked" (default about sqrt(t))

    Returns
    -------
    h : tensor (b, t, ...), the state after every step, with b's dtype and device.
    """
    _check_inputs(a, b, h0, method, chunk_size)
    if method == "auto":
        method = choose_method(b.shape, b.device)
    return _LinearScanFunction.apply(a, b, h0, method, chunk_size)


def choose_method(shape: tuple[int, ...] | torch.Size, device: torch.device | str = "cpu") -> str:
    """The method "auto" runs for inputs of shape (b, t, ...) on this device.

    With width = b * prod(...) (elements per time step): "sequential" when t <= 32, or on the
    CPU when width >= 8192 (each step already has enough work); on the CPU "parallel" when
    width <= 128 and t * width <= 2**19; "chunked" otherwise.
    """
    t = shape[1]
    width = math.prod(shape) // max(t, 1)
    if t <= _SHORT_SEQUENCE:
        return "sequential"
    if torch.device(device).type != "cpu":
        return "chunked"
    if width >= _CPU_WIDE_STEP:
        return "sequential"
    if width <= _CPU_PARALLEL_WIDTH and t * width <= _CPU_PARALLEL_SIZE:
        return "parallel"
    return "chunked"


# ----------------------------------------------------------------------------- checks
def _check_inputs(a, b, h0, method, chunk_size) -> None:
    for name, x in (("a", a), ("b", b)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of shape (b, t, ...), got {type(x).__name__}")
        if not (x.is_floating_point() or x.is_complex()):
            raise TypeError(f"{name} must have a floating-point (or complex) dtype, got {x.dtype}")
    if b.dim() < 2:
        raise ValueError(f"b must have shape (b, t, ...) with at least 2 dimensions, got shape {tuple(b.shape)}")
    if b.shape[1] < 1:
        raise ValueError(f"b must have at least one time step (axis 1), got shape {tuple(b.shape)}")
    if a.dim() != b.dim() or any(sa not in (1, sb) for sa, sb in zip(a.shape, b.shape)):
        raise ValueError(
            f"a must have b's shape {tuple(b.shape)} or broadcast to it dimension by dimension "
            f"(each size equal or 1, same number of dimensions), got shape {tuple(a.shape)}"
        )
    if a.dtype != b.dtype:
        raise TypeError(f"a and b must have the same dtype, got a {a.dtype} and b {b.dtype}")
    if a.device != b.device:
        raise ValueError(f"a and b must be on the same device, got a on {a.device} and b on {b.device}")
    if h0 is not None:
        if not isinstance(h0, torch.Tensor):
            raise TypeError(f"h0 must be a torch.Tensor of shape (b, ...) or None, got {type(h0).__name__}")
        expected = (b.shape[0], *b.shape[2:])
        if tuple(h0.shape) != expected:
            raise ValueError(f"h0 must have shape (b, ...) = {expected}, got {tuple(h0.shape)}")
        check_like(h0, b, "h0", "b")
    check_choice(method, METHODS)
    if chunk_size is not None:
        check_size(chunk_size, "chunk_size")


# ----------------------------------------------------------------------------- forward kernels
def _scan(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None, method: str,
          chunk_size: int | None) -> torch.Tensor:
    """Dispatch without autograd. a is already expanded to b's shape (possibly as a view)."""
    if method == "sequential":
        return _scan_sequential(a, b, h0)
    if method == "parallel":
        return _scan_parallel(a, b, h0)
    return _scan_chunked(a, b, h0, chunk_size)


def _scan_sequential(a, b, h0, out=None):
    """The reference: one step at a time along axis 1. a, b (b, t, ...); h0 (b, ...) or None."""
    if out is None:
        out = b.new_empty(b.shape)  # (b, t, ...)
    h = h0
    for s in range(b.shape[1]):
        if h is None:
            out[:, s] = b[:, s]  # h_{-1} = 0
        else:
            torch.addcmul(b[:, s], a[:, s], h, out=out[:, s])  # eq-linear-recurrence: a_s * h_{s-1} + b_s
        h = out[:, s]
    return out


def _scan_parallel(a, b, h0):
    """Hillis-Steele scan: after the step with offset k, (A[s], B[s]) combine steps s-2k+1..s."""
    t = b.shape[1]
    A, B = a, b
    if h0 is not None:  # fold h0 into step 0: h_0 = a_0 h0 + b_0, then start from zero
        B = b.clone()
        B[:, 0] = torch.addcmul(b[:, 0], a[:, 0], h0)  # eq-linear-recurrence
    k = 1
    while k < t:
        B_new = b.new_empty(b.shape)  # (b, t, ...)
        B_new[:, :k] = B[:, :k]
        torch.addcmul(B[:, k:], A[:, k:], B[:, :-k], out=B_new[:, k:])  # eq-linear-scan-combine: a2 * b1 + b2
        if 2 * k < t:  # the last step needs no products
            A_new = b.new_empty(b.shape)  # (b, t, ...)
            A_new[:, :k] = A[:, :k]
            torch.mul(A[:, k:], A[:, :-k], out=A_new[:, k:])  # eq-linear-scan-combine: a2 * a1
            A = A_new
        B = B_new
        k *= 2
    return B if B is not b else b.clone()


def default_chunk_size(t: int) -> int:
    """The chunk length "chunked" uses by default: the power of two nearest sqrt(t), at least 8."""
    return max(8, 2 ** round(math.log2(max(t, 1)) / 2))


def _scan_chunked(a, b, h0, chunk_size=None):
    """Scan within chunks (all at once), carry chunk-final states across chunks, then correct."""
    bsz, t = b.shape[:2]
    L = chunk_size or default_chunk_size(t)
    nc = t // L  # full chunks; the t - nc * L remaining steps run sequentially at the end
    if nc < 2:
        return _scan_sequential(a, b, h0)
    m = nc * L
    out = b.new_empty(b.shape)  # (b, t, ...)
    a_c = a[:, :m].unflatten(1, (nc, L))  # (b, nc, L, ...)
    b_c = b[:, :m].unflatten(1, (nc, L))  # (b, nc, L, ...)
    h_c = out[:, :m].unflatten(1, (nc, L))  # (b, nc, L, ...), a view: writes land in out
    # (1) every chunk from a zero state, chunk 0 from h0; time is axis 2, so scan the transposes
    start = None
    if h0 is not None:
        start = b.new_zeros((bsz, nc, *b.shape[2:]))  # (b, nc, ...)
        start[:, 0] = h0
    _scan_sequential(a_c.transpose(1, 2), b_c.transpose(1, 2), start, out=h_c.transpose(1, 2))
    # cumulative products of a within chunks 1.. (chunk 0 is already exact)
    P = _cumprod_within_chunks(a_c[:, 1:])  # (b, nc - 1, L, ...)
    # (2) carry: the true final state of chunk c = local final + P_end[c] * true final of chunk c - 1
    ends = b.new_empty((bsz, nc, *b.shape[2:]))  # (b, nc, ...)
    ends[:, 0] = h_c[:, 0, L - 1]
    for c in range(1, nc):
        torch.addcmul(h_c[:, c, L - 1], P[:, c - 1, L - 1], ends[:, c - 1], out=ends[:, c])  # eq-linear-recurrence
    # (3) correct chunks 1..: h += P * (state carried in)
    h_c[:, 1:].addcmul_(P, ends[:, :-1].unsqueeze(2))  # (b, nc - 1, L, ...)
    if m < t:
        _scan_sequential(a[:, m:], b[:, m:], out[:, m - 1], out=out[:, m:])
    return out


def _cumprod_within_chunks(a_c: torch.Tensor) -> torch.Tensor:
    """torch.cumprod(a_c, dim=2) for a_c (b, c, L, ...); a loop of L products when the slab is big.

    (torch.cumprod along a middle axis ran 4-6x slower than L vectorised products for
    16 MiB and more on the CPU here; below 1M elements the single call is cheaper.)
    """
    if a_c.numel() < (1 << 20):
        return torch.cumprod(a_c, dim=2)
    P = a_c.new_empty(a_c.shape)  # (b, c, L, ...)
    P[:, :, 0] = a_c[:, :, 0]
    for s in range(1, a_c.shape[2]):
        torch.mul(P[:, :, s - 1], a_c[:, :, s], out=P[:, :, s])
    return P


# ----------------------------------------------------------------------------- autograd
def _sum_to_shape(x: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Sum x over the dimensions where ``shape`` has 1 and x does not (undo broadcasting)."""
    dims = tuple(i for i, (sx, s) in enumerate(zip(x.shape, shape)) if s == 1 and sx != 1)
    return x.sum(dim=dims, keepdim=True) if dims else x


class _LinearScanFunction(torch.autograd.Function):
    """``(a, b, h0, method, chunk_size) -> h``; backward by a reverse-time scan (eq-linear-scan-backward)."""

    @staticmethod
    def forward(ctx, a, b, h0, method, chunk_size):
        a_full = a.expand(b.shape)  # a view: no copy
        h = _scan(a_full, b, h0, method, chunk_size)  # (b, t, ...)
        ctx.save_for_backward(a, h0, h)
        ctx.method, ctx.chunk_size, ctx.a_shape = method, chunk_size, a.shape
        ctx.h0_given = h0 is not None
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, dh):
        a, h0, h = ctx.saved_tensors
        a_full = a.expand(h.shape)
        # g runs backwards: in reversed time r = t-1-s, g_r = conj(a_{s+1}) g_{r-1} + dh_r, g_{-1} = 0
        a_next_rev = h.new_zeros(h.shape)  # (b, t, ...); position 0 multiplies the zero start
        a_next_rev[:, 1:] = a_full[:, 1:].flip(1).conj()
        g = _scan(a_next_rev, dh.flip(1), None, ctx.method, ctx.chunk_size).flip(1)  # eq-linear-scan-backward
        da = dh0 = None
        if ctx.needs_input_grad[0]:
            da = torch.empty_like(g)  # (b, t, ...)
            torch.mul(g[:, 1:], h[:, :-1].conj(), out=da[:, 1:])  # eq-linear-scan-backward: g_s * h_{s-1}
            if ctx.h0_given:
                torch.mul(g[:, 0], h0.conj(), out=da[:, 0])
            else:
                da[:, 0] = 0
            da = _sum_to_shape(da, ctx.a_shape)
        if ctx.h0_given and ctx.needs_input_grad[2]:
            dh0 = a_full[:, 0].conj() * g[:, 0]  # eq-linear-scan-backward: a_0 g_0
        db = g if ctx.needs_input_grad[1] else None
        return da, db, dh0, None, None
