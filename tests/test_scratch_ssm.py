"""lstm_lab.scratch.ssm: the NumPy selective SSM equals its PyTorch twin (outputs and every
gradient, both discretisations), its backward passes central differences, and bad input is
named."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstm_lab import scratch
from lstm_lab.nn import ssm

NAMES = ("x", "delta", "A", "B", "C", "D")


def _inputs(b=2, t=7, d=3, n=4, seed=0):
    rng = np.random.default_rng(seed)
    return dict(x=rng.normal(size=(b, t, d)), delta=np.log1p(np.exp(rng.normal(size=(b, t, d)) - 1)),
                A=-rng.uniform(0.5, 3.0, size=(d, n)), B=rng.normal(size=(b, t, n)),
                C=rng.normal(size=(b, t, n)), D=rng.normal(size=d))


@pytest.mark.equation("eq-s6-recurrence", "eq-ssm-zoh-a", "eq-ssm-simple-b", "eq-ssm-zoh-b")
@pytest.mark.parametrize("discretization", ["zoh_a_euler_b", "zoh"])
@pytest.mark.parametrize("with_h0", [False, True])
def test_numpy_equals_torch_outputs_and_gradients(discretization, with_h0):
    arrays = _inputs()
    rng = np.random.default_rng(1)
    h0 = rng.normal(size=(2, 3, 4)) if with_h0 else None
    dy = rng.normal(size=(2, 7, 3))
    y, cache = scratch.selective_scan(**arrays, h0=h0, discretization=discretization)
    grads = scratch.selective_scan_backward(dy, cache)
    ts = {k: torch.tensor(v, requires_grad=True) for k, v in arrays.items()}
    h0_t = None if h0 is None else torch.tensor(h0, requires_grad=True)
    y_t = ssm.selective_scan(*(ts[k] for k in NAMES), h0=h0_t, discretization=discretization)
    y_t.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, y_t.detach().numpy(), rtol=1e-12, atol=1e-12)
    for k in NAMES:
        np.testing.assert_allclose(grads[k], ts[k].grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=k)
    if with_h0:
        np.testing.assert_allclose(grads["h0"], h0_t.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_backward_passes_central_differences():
    arrays = _inputs(b=1, t=5, d=2, n=3, seed=2)
    h0 = np.random.default_rng(3).normal(size=(1, 2, 3))
    dy = np.random.default_rng(4).normal(size=(1, 5, 2))
    grads = scratch.selective_scan_backward(dy, scratch.selective_scan(**arrays, h0=h0)[1])
    values = dict(arrays, h0=h0)

    def loss(v):
        return np.sum(dy * scratch.selective_scan(**{k: v[k] for k in NAMES}, h0=v["h0"])[0])

    eps = 1e-6
    for name, value in values.items():
        numeric = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            up, down = value.copy(), value.copy()
            up[idx] += eps
            down[idx] -= eps
            numeric[idx] = (loss({**values, name: up}) - loss({**values, name: down})) / (2 * eps)
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-6, atol=1e-8, err_msg=name)


def test_no_skip_and_inputs_left_alone():
    arrays = _inputs()
    copies = {k: v.copy() for k, v in arrays.items()}
    y_skip, _ = scratch.selective_scan(**arrays)
    y, cache = scratch.selective_scan(**{**arrays, "D": None})
    np.testing.assert_allclose(y, y_skip - arrays["D"] * arrays["x"], rtol=1e-12, atol=1e-12)
    assert scratch.selective_scan_backward(np.ones_like(y), cache)["D"] is None
    for k, v in arrays.items():
        assert np.array_equal(v, copies[k]), f"{k} was changed"


@pytest.mark.parametrize("change, message", [
    (dict(x=np.zeros((2, 7))), "x must have shape"),
    (dict(delta=np.zeros((2, 7, 4))), "delta must have the shape of x"),
    (dict(A=np.zeros((4, 4))), "A must have shape"),
    (dict(B=np.zeros((2, 7, 5))), "B must have shape"),
    (dict(D=np.zeros(2)), "D must have shape"),
    (dict(x=np.array([["a"]])), "x must be numeric"),
])
def test_bad_input_is_named(change, message):
    with pytest.raises((ValueError, TypeError), match=message):
        scratch.selective_scan(**{**_inputs(), **change})
    with pytest.raises(ValueError, match="discretization must be one of"):
        scratch.selective_scan(**_inputs(), discretization="euler")
