"""The Mamba block (lstm_lab.nn.mamba): against an independent reference written the way
mamba-minimal does it, step-by-step generation against the full forward pass, causality, the
scan methods against each other, Mamba's initialisation, gradients and clear errors.

Equations checked (labels of the state-space chapter, not written yet; the
``@pytest.mark.equation`` markers come with it): eq-s6-recurrence, eq-ssm-zoh-a, eq-ssm-simple-b.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from lstm_lab.nn.mamba import MambaBlock

TIGHT = dict(rtol=1e-10, atol=1e-10)


def _block(d_model=6, seed=0, dtype=torch.float64, **kwargs):
    torch.manual_seed(seed)
    return MambaBlock(d_model, **{"d_state": 4, **kwargs}).to(dtype)


def _x(b=2, t=9, d=6, seed=1, dtype=torch.float64):
    return torch.randn(b, t, d, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _reference(m: MambaBlock, u: torch.Tensor) -> torch.Tensor:
    """The block written independently: symmetric conv padding cut back to t (mamba-minimal),
    and the selective scan as an explicit loop with a dense (e, n) state per batch element."""
    t = u.shape[1]
    e, n, r = m.d_inner, m.d_state, m.dt_rank
    xz = u @ m.in_proj.weight.T
    x, z = xz[..., :e], xz[..., e:]
    x = F.conv1d(x.transpose(1, 2), m.conv1d.weight, m.conv1d.bias, padding=m.d_conv - 1, groups=e)[..., :t]
    x = F.silu(x.transpose(1, 2))
    dbc = x @ m.x_proj.weight.T
    dt, B, C = dbc[..., :r], dbc[..., r : r + n], dbc[..., r + n :]
    delta = F.softplus(dt @ m.dt_proj.weight.T + m.dt_proj.bias)
    A = -torch.exp(m.A_log)
    ys = []
    for i in range(u.shape[0]):
        h = torch.zeros(e, n, dtype=u.dtype)
        rows = []
        for s in range(t):
            h = torch.exp(delta[i, s][:, None] * A) * h + delta[i, s][:, None] * B[i, s][None, :] * x[i, s][:, None]
            rows.append(h @ C[i, s] + m.D * x[i, s])
        ys.append(torch.stack(rows))
    y = torch.stack(ys) * F.silu(z)
    return y @ m.out_proj.weight.T


@pytest.mark.equation("eq-s6-recurrence", "eq-ssm-zoh-a", "eq-ssm-simple-b")
@pytest.mark.parametrize("d_conv", [1, 4])
@pytest.mark.parametrize("method", ["sequential", "parallel"])
def test_forward_equals_independent_reference(d_conv, method):
    m = _block(d_conv=d_conv, method=method)
    u = _x()
    out = m(u)
    assert out.shape == u.shape and out.dtype == torch.float64
    assert_close(out, _reference(m, u), **TIGHT)


def test_initialisation_follows_mamba():
    torch.manual_seed(0)
    m = MambaBlock(40, d_state=16)
    assert m.d_inner == 80 and m.dt_rank == math.ceil(40 / 16) == 3
    delta0 = F.softplus(m.dt_proj.bias.detach())
    assert torch.all(delta0 >= 1e-3 * (1 - 1e-5)) and torch.all(delta0 <= 1e-1 * (1 + 1e-5))
    logs = torch.log10(delta0)
    assert logs.min() < -2.6 and logs.max() > -1.4  # spread over the log-uniform range, not clustered
    assert_close(-torch.exp(m.A_log.detach()), -torch.arange(1.0, 17.0).expand(80, 16))
    assert_close(m.D.detach(), torch.ones(80))
    bound = 3**-0.5
    assert m.dt_proj.weight.abs().max() <= bound
    assert m.in_proj.weight.shape == (160, 40) and m.in_proj.bias is None
    assert m.x_proj.weight.shape == (3 + 32, 80) and m.out_proj.weight.shape == (40, 80)
    assert m.conv1d.weight.shape == (80, 1, 4)
    assert MambaBlock(40, dt_rank=7).dt_rank == 7


@pytest.mark.parametrize("d_conv", [1, 2, 4])
def test_step_by_step_equals_forward(d_conv):
    m = _block(d_conv=d_conv, method="sequential")
    u = _x(t=8)
    u_copy = u.clone()
    full = m(u)
    state = None
    outs = []
    for s in range(u.shape[1]):
        y, state = m.step(u[:, s], state)
        assert state[0].shape == (2, m.d_inner, d_conv - 1) and state[1].shape == (2, m.d_inner, m.d_state)
        outs.append(y)
    assert_close(torch.stack(outs, 1), full, **TIGHT)
    assert torch.equal(u, u_copy)
    # a missing state equals zeros
    assert_close(m.step(u[:, 0], m.initial_state(2))[0], outs[0], **TIGHT)


def test_prompt_state_then_steps_equals_forward():
    m = _block(method="parallel")
    u = _x(t=10)
    full = m(u)
    out, state = m(u[:, :6], return_state=True)
    assert_close(out, full[:, :6], **TIGHT)
    for s in range(6, 10):
        y, state = m.step(u[:, s], state)
        assert_close(y, full[:, s], **TIGHT)


@pytest.mark.parametrize("j", [0, 4, 8])
def test_causal(j):
    m = _block()
    u = _x(t=9)
    v = u.clone()
    v[:, j] += 1.0
    a, b = m(u), m(v)
    assert_close(a[:, :j], b[:, :j], rtol=0, atol=0)
    assert (a[:, j] - b[:, j]).abs().min() > 0


@pytest.mark.parametrize("dtype, tol", [(torch.float32, dict(rtol=1e-5, atol=1e-5)), (torch.float64, TIGHT)])
def test_scan_methods_agree_outputs_and_gradients(dtype, tol):
    u = _x(t=40, dtype=dtype)
    results = []
    for method in ("sequential", "parallel", "chunked", "auto"):
        m = _block(dtype=dtype, method=method)
        ui = u.clone().requires_grad_()
        out = m(ui)
        (out * torch.cos(out)).sum().backward()
        results.append((out.detach(), ui.grad, {k: p.grad for k, p in m.named_parameters()}))
    ref = results[0]
    for out, du, grads in results[1:]:
        assert_close(out, ref[0], **tol)
        assert_close(du, ref[1], **tol)
        for k in grads:
            assert_close(grads[k], ref[2][k], **tol, msg=lambda msg, k=k: f"{k}: {msg}")


def test_gradients_reach_every_parameter():
    m = _block(dtype=torch.float32)
    m(_x(dtype=torch.float32)).square().sum().backward()
    names = {k for k, _ in m.named_parameters()}
    assert names == {
        "A_log", "D", "in_proj.weight", "conv1d.weight", "conv1d.bias", "x_proj.weight",
        "dt_proj.weight", "dt_proj.bias", "out_proj.weight",
    }
    for k, p in m.named_parameters():
        assert p.grad is not None and torch.all(torch.isfinite(p.grad)) and p.grad.abs().sum() > 0, k


def test_float32_default_module():
    m = MambaBlock(8, d_state=4)
    out = m(torch.randn(3, 5, 8))
    assert out.shape == (3, 5, 8) and out.dtype == torch.float32


def test_errors():
    m = _block()
    with pytest.raises(ValueError, match=r"shape \(b, t, d\)"):
        m(_x()[0])
    with pytest.raises(ValueError, match="expects input_size = 6"):
        m(_x(d=5))
    with pytest.raises(TypeError, match="floating-point"):
        m(_x().long())
    with pytest.raises(TypeError, match="torch.Tensor"):
        m(_x().numpy())
    with pytest.raises(TypeError, match="dtype"):
        m(_x().float())
    with pytest.raises(ValueError, match="u_t must have shape"):
        m.step(_x())
    with pytest.raises(ValueError, match="expects input_size = 6"):
        m.step(_x(d=5)[:, 0])
    with pytest.raises(TypeError, match="floating-point"):
        m.step(_x()[:, 0].long())
    with pytest.raises(ValueError, match="ssm_state must have shape"):
        m.step(_x()[:, 0], (torch.zeros(2, 12, 3, dtype=torch.float64), torch.zeros(2, 12, 5, dtype=torch.float64)))
    with pytest.raises(TypeError, match="state must be a tuple"):
        m.step(_x()[:, 0], torch.zeros(2, 12, 3))
    with pytest.raises(ValueError, match="d_model must be a positive int"):
        MambaBlock(0)
    with pytest.raises(ValueError, match="method must be one of"):
        MambaBlock(4, method="fast")
    with pytest.raises(ValueError, match="dt_min"):
        MambaBlock(4, dt_min=0.2, dt_max=0.1)


@pytest.mark.gpu
def test_cuda_matches_cpu():
    m = _block(dtype=torch.float32, method="parallel")
    u = _x(dtype=torch.float32)
    m_gpu = _block(dtype=torch.float32, method="parallel").cuda()
    out = m_gpu(u.cuda())
    assert out.device.type == "cuda"
    assert_close(out.cpu(), m(u), rtol=1e-4, atol=1e-5)
    y, state = m_gpu.step(u[:, 0].cuda())
    assert state[0].device.type == state[1].device.type == "cuda"
    assert_close(y.cpu(), out[:, 0].cpu(), rtol=1e-4, atol=1e-5)
