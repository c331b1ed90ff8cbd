"""The linear scan h_t = a_t * h_{t-1} + b_t: every method against an explicit loop (values and
gradients through autograd), gradcheck of the custom backward, extreme decays, clear errors."""

import pytest
import torch
from torch.testing import assert_close

from lstm_lab.nn.scan import METHODS, choose_method, linear_scan

FAST = ["sequential", "parallel", "chunked", "auto"]
TOL = {torch.float32: dict(rtol=1e-5, atol=1e-6), torch.float64: dict(rtol=1e-10, atol=1e-12)}


def loop(a, b, h0=None):
    """Independent reference: the recurrence one step at a time, in plain autograd."""
    h = torch.zeros_like(b[:, 0]) if h0 is None else h0
    hs = []
    for s in range(b.shape[1]):
        h = a[:, s] * h + b[:, s]
        hs.append(h)
    return torch.stack(hs, dim=1)


def inputs(shape, dtype, a_value=None, a_shape=None, seed=0):
    gen = torch.Generator().manual_seed(seed)
    a_shape = a_shape or shape
    a = torch.rand(a_shape, generator=gen, dtype=torch.float64) if a_value is None else \
        torch.full(a_shape, a_value, dtype=torch.float64)
    b = torch.randn(shape, generator=gen, dtype=torch.float64)
    h0 = torch.randn((shape[0], *shape[2:]), generator=gen, dtype=torch.float64)
    return a.to(dtype), b.to(dtype), h0.to(dtype)


@pytest.mark.equation("eq-linear-recurrence", "eq-linear-scan-combine")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("t", [1, 7, 4096])
@pytest.mark.parametrize("method", FAST)
def test_methods_equal_loop(method, t, dtype):
    a, b, h0 = inputs((2, t, 3), dtype)
    for h_init in (None, h0):
        # the reference in float64, so that float32 is held to its own rounding only
        ref = loop(a.double(), b.double(), None if h_init is None else h_init.double()).to(dtype)
        assert_close(linear_scan(a, b, h_init, method=method), ref, **TOL[dtype])


@pytest.mark.parametrize("a_value", [1e-6, 1 - 1e-6])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("method", FAST)
def test_extreme_decay_equals_loop(method, dtype, a_value):
    a, b, h0 = inputs((2, 300, 4), dtype, a_value=a_value)
    ref = loop(a.double(), b.double(), h0.double()).to(dtype)
    tol = TOL[dtype]
    if dtype == torch.float32 and a_value > 0.5:
        # almost no decay: h_t is a running sum of up to 300 terms (|h| up to ~30), and float32
        # rounds each of those additions, ~2e-5 in all; float64 is held to the usual 1e-10.
        tol = dict(rtol=1e-5, atol=5e-5)
    assert_close(linear_scan(a, b, h0, method=method), ref, **tol)


@pytest.mark.parametrize("a_shape", [(2, 50, 1, 4), (1, 50, 3, 1), (1, 1, 3, 4), (2, 50, 3, 4)])
@pytest.mark.parametrize("method", FAST)
def test_broadcast_a_values_and_gradients(method, a_shape):
    a, b, h0 = inputs((2, 50, 3, 4), torch.float64, a_shape=a_shape)
    a1, b1, h1 = (x.clone().requires_grad_() for x in (a, b, h0))
    a2, b2, h2 = (x.clone().requires_grad_() for x in (a, b, h0))
    out = linear_scan(a1, b1, h1, method=method, chunk_size=8)
    ref = loop(a2.expand(b2.shape), b2, h2)
    assert_close(out, ref, **TOL[torch.float64])
    dh = torch.randn_like(ref)
    out.backward(dh)
    ref.backward(dh)
    assert a1.grad.shape == a_shape
    for ours, theirs in [(a1, a2), (b1, b2), (h1, h2)]:
        assert_close(ours.grad, theirs.grad, **TOL[torch.float64])


@pytest.mark.equation("eq-linear-scan-backward")
@pytest.mark.parametrize("with_h0", [False, True])
@pytest.mark.parametrize("t", [1, 7, 37])
@pytest.mark.parametrize("method", FAST)
def test_gradients_equal_autograd_through_loop(method, t, with_h0):
    a, b, h0 = inputs((2, t, 3), torch.float64, seed=1)
    leaves1 = [x.clone().requires_grad_() for x in (a, b, h0)]
    leaves2 = [x.clone().requires_grad_() for x in (a, b, h0)]
    out = linear_scan(leaves1[0], leaves1[1], leaves1[2] if with_h0 else None, method=method, chunk_size=4)
    ref = loop(leaves2[0], leaves2[1], leaves2[2] if with_h0 else None)
    dh = torch.randn_like(ref)
    out.backward(dh)
    ref.backward(dh)
    for ours, theirs in zip(leaves1[: 3 if with_h0 else 2], leaves2):
        assert_close(ours.grad, theirs.grad, **TOL[torch.float64])
    assert leaves1[2].grad is None or with_h0


@pytest.mark.parametrize("method", ["sequential", "parallel", "chunked"])
def test_gradcheck(method):
    a, b, h0 = inputs((2, 9, 2), torch.float64, seed=2)
    a_bc = torch.rand(1, 9, 1, dtype=torch.float64)
    for args in [(a, b, h0), (a_bc, b, h0), (a, b, None)]:
        args = tuple(None if x is None else x.clone().requires_grad_() for x in args)
        assert torch.autograd.gradcheck(lambda *xs: linear_scan(*xs, method=method, chunk_size=2), args)


@pytest.mark.parametrize("method", ["sequential", "parallel", "chunked"])
def test_gradcheck_complex(method):
    gen = torch.Generator().manual_seed(3)
    a, b, h0 = (0.7 * torch.randn(s, generator=gen, dtype=torch.complex128, requires_grad=True)
                for s in [(2, 9, 2), (2, 9, 2), (2, 2)])
    assert torch.autograd.gradcheck(lambda *xs: linear_scan(*xs, method=method, chunk_size=2), (a, b, h0))


@pytest.mark.parametrize("a_value", [1e-8, 1.0])
@pytest.mark.parametrize("method", FAST)
def test_long_sequence_stays_finite(method, a_value):
    a, b, h0 = inputs((1, 8192, 4), torch.float32, a_value=a_value)
    a.requires_grad_()
    b.requires_grad_()
    h = linear_scan(a, b, h0, method=method)
    h.sum().backward()
    for x in (h, a.grad, b.grad):
        assert torch.isfinite(x).all()
    if a_value == 1.0:  # no decay: h is the running sum, g_t the number of steps from t to the end
        assert_close(h, (h0[:, None] + b.detach().double().cumsum(1)).float(), rtol=1e-4, atol=1e-2)
        assert_close(b.grad[0, :, 0], torch.arange(8192, 0, -1, dtype=torch.float32))
    else:  # strong decay: h_t is b_t to working precision
        assert_close(h, b.detach(), rtol=1e-6, atol=1e-6)


def test_inputs_are_not_modified_and_dtype_device_follow_input():
    a, b, h0 = inputs((2, 20, 3), torch.float32)
    copies = [x.clone() for x in (a, b, h0)]
    for method in FAST:
        h = linear_scan(a, b, h0, method=method)
        assert h.dtype == b.dtype and h.device == b.device and h.shape == b.shape
    for x, c in zip((a, b, h0), copies):
        assert torch.equal(x, c)


def test_missing_h0_equals_zeros():
    a, b, h0 = inputs((2, 40, 3), torch.float64)
    for method in FAST:
        assert_close(linear_scan(a, b, method=method), linear_scan(a, b, torch.zeros_like(h0), method=method))


def test_chunk_sizes_that_do_not_divide_t():
    a, b, h0 = inputs((2, 103, 3), torch.float64)
    ref = loop(a, b, h0)
    for L in (1, 2, 5, 16, 51, 52, 200):
        assert_close(linear_scan(a, b, h0, method="chunked", chunk_size=L), ref, **TOL[torch.float64])


def test_choose_method_by_shape():
    assert choose_method((1, 4096, 64)) == "parallel"  # narrow: per-step overhead dominates
    assert choose_method((8, 4096, 64, 16)) == "sequential"  # wide: bandwidth dominates
    assert choose_method((1, 4096, 1024)) == "chunked"
    assert choose_method((4, 16, 8)) == "sequential"  # short
    assert choose_method((1, 4096, 64), "cuda") == "chunked"


@pytest.mark.gpu
@pytest.mark.parametrize("method", FAST)
def test_cuda_equals_cpu(method):
    a, b, h0 = inputs((2, 500, 3), torch.float64)
    cpu = linear_scan(a, b, h0, method=method)
    gpu = linear_scan(a.cuda(), b.cuda(), h0.cuda(), method=method)
    assert gpu.device.type == "cuda"
    assert_close(gpu.cpu(), cpu, **TOL[torch.float64])


def test_errors():
    a, b, h0 = inputs((2, 5, 3), torch.float32)
    with pytest.raises(ValueError, match=r"a must have b's shape \(2, 5, 3\)"):
        linear_scan(a[:, :4], b)
    with pytest.raises(ValueError, match="a must have b's shape"):
        linear_scan(a[..., 0], b)
    with pytest.raises(ValueError, match=r"h0 must have shape \(b, \.\.\.\) = \(2, 3\)"):
        linear_scan(a, b, h0[:, :2])
    with pytest.raises(ValueError, match=r"b must have shape \(b, t, \.\.\.\) with at least 2 dimensions"):
        linear_scan(a[0, 0], b[0, 0])
    with pytest.raises(ValueError, match="at least one time step"):
        linear_scan(a[:, :0], b[:, :0])
    with pytest.raises(TypeError, match="b must have a floating-point"):
        linear_scan(a, torch.ones(2, 5, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match="a must have a floating-point"):
        linear_scan(torch.ones(2, 5, 3, dtype=torch.int32), b)
    with pytest.raises(TypeError, match="same dtype"):
        linear_scan(a.double(), b)
    with pytest.raises(TypeError, match="a must be a torch.Tensor"):
        linear_scan(a.numpy(), b)
    with pytest.raises(ValueError, match="method must be one of 'auto', 'sequential', 'parallel', 'chunked', "
                                         "got 'fast'"):
        linear_scan(a, b, method="fast")
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        linear_scan(a, b, method="chunked", chunk_size=0)
    assert set(FAST) == set(METHODS), "the parametrised tests must cover every method linear_scan accepts"
