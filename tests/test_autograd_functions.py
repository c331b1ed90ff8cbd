"""Every custom ``torch.autograd.Function`` in lstm_lab: its backward never writes into a tensor
it was given (inputs, saved tensors' sources, or the upstream gradients), and the fused LSTM is
right inside a residual connection, where autograd hands the same gradient tensor to two users.

A backward that updates ``grad_output`` in place is wrong exactly when that tensor is shared:
``y = lstm(u) + u`` sends dL/dy to the LSTM and to u, so an in-place ``+=`` on it corrupts
dL/du. ``dhs.transpose(0, 1).contiguous()`` is such an alias when b = 1 or t = 1.
"""

import importlib
import inspect
import pkgutil

import pytest
import torch
from torch.testing import assert_close

import lstm_lab
from lstm_lab.nn import LSTM, FusedLSTMFunction
from lstm_lab.nn.scan import _LinearScanFunction

SHAPES = [(1, 5), (3, 1), (1, 1), (3, 4)]  # (b, t): b = 1 and t = 1 are the aliasing cases


def _all_custom_functions():
    found = set()
    for info in pkgutil.walk_packages(lstm_lab.__path__, "lstm_lab."):
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, torch.autograd.Function) and obj.__module__ == info.name:
                found.add(obj)
    return found


def _fused_case(b, t):
    d, h = 3, 4
    shapes = [(b, t, d), (b, h), (b, h), (d, 4 * h), (h, 4 * h), (4 * h,)]
    inputs = [torch.randn(*s, dtype=torch.double, requires_grad=True) for s in shapes]
    return FusedLSTMFunction.apply, inputs


def _scan_case(b, t, method):
    a = torch.rand(b, t, 2, 3, dtype=torch.double).requires_grad_()
    x = torch.randn(b, t, 2, 3, dtype=torch.double, requires_grad=True)
    h0 = torch.randn(b, 2, 3, dtype=torch.double, requires_grad=True)
    return (lambda a, x, h0: _LinearScanFunction.apply(a, x, h0, method, 2)), [a, x, h0]


CASES = {
    FusedLSTMFunction: [("fused", _fused_case)],
    _LinearScanFunction: [(m, lambda b, t, m=m: _scan_case(b, t, m)) for m in ("sequential", "parallel", "chunked")],
}
PARAMS = [(fn, name, make, b, t) for fn, cases in CASES.items() for name, make in cases for b, t in SHAPES]


def test_every_custom_function_is_covered_here():
    assert _all_custom_functions() == set(CASES)


@pytest.mark.parametrize("fn, name, make, b, t", PARAMS,
                         ids=[f"{fn.__name__}-{name}-b{b}-t{t}" for fn, name, make, b, t in PARAMS])
def test_backward_leaves_every_tensor_it_was_given_unchanged(fn, name, make, b, t):
    torch.manual_seed(0)
    apply, inputs = make(b, t)
    before = [x.detach().clone() for x in inputs]
    outputs = apply(*inputs)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    upstream = [torch.randn_like(o) for o in outputs]
    kept = [u.clone() for u in upstream]
    torch.autograd.grad(outputs, inputs, upstream)
    for u, k in zip(upstream, kept):
        assert_close(u, k, rtol=0, atol=0, msg="backward wrote into an upstream gradient")
    for x, k in zip(inputs, before):
        assert_close(x.detach(), k, rtol=0, atol=0, msg="forward or backward wrote into an input")


@pytest.mark.parametrize("b, t", SHAPES)
def test_fused_lstm_inside_a_residual_equals_the_cell(b, t):
    """y = lstm(u) + u, with gradients on the outputs and on both final states."""
    grads = {}
    for method in ("cell", "fused"):
        torch.manual_seed(0)
        model = LSTM(4, 4, method=method).double()
        torch.manual_seed(1)
        u = torch.randn(b, t, 4, dtype=torch.double, requires_grad=True)
        up = [torch.randn(b, t, 4, dtype=torch.double), torch.randn(1, b, 4, dtype=torch.double),
              torch.randn(1, b, 4, dtype=torch.double)]
        kept = [x.clone() for x in up]
        out, (h_n, c_n) = model(u)
        torch.autograd.backward([out + u, h_n, c_n], up)
        for x, k in zip(up, kept):
            assert_close(x, k, rtol=0, atol=0, msg=f"{method}: the caller's upstream gradient changed")
        grads[method] = [u.grad, *(p.grad for p in model.parameters())]
    for g_fused, g_cell in zip(grads["fused"], grads["cell"]):
        assert_close(g_fused, g_cell, rtol=1e-12, atol=1e-12)
