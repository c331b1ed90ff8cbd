"""get_device and seed_everything: the two helpers every notebook calls first."""

import random

import numpy as np
import pytest
import torch

import lstm_lab
from lstm_lab import get_device, seed_everything


def test_version_is_a_version_string():
    parts = lstm_lab.__version__.split(".")
    assert len(parts) >= 2 and all(p.isdigit() for p in parts[:2])


def test_auto_prefers_cuda_then_mps_then_cpu():
    device = get_device("auto")
    if torch.cuda.is_available():
        assert device.type == "cuda"
    elif torch.backends.mps.is_available():
        assert device.type == "mps"
    else:
        assert device == torch.device("cpu")
    assert get_device() == device  # "auto" is the default


@pytest.mark.parametrize("spec", ["cpu", "CPU", " cpu ", torch.device("cpu")])
def test_cpu_is_always_available(spec):
    assert get_device(spec) == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", torch.device("cuda")])
def test_missing_cuda_is_a_clear_error(spec):
    with pytest.raises(RuntimeError, match="no CUDA device is available"):
        get_device(spec)


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_missing_mps_is_a_clear_error():
    with pytest.raises(RuntimeError, match="MPS backend is not available"):
        get_device("mps")


@pytest.mark.gpu
def test_cuda_when_present():
    assert get_device("cuda").type == "cuda"
    assert get_device("auto").type == "cuda"
    count = torch.cuda.device_count()
    with pytest.raises(RuntimeError, match="CUDA device"):
        get_device(f"cuda:{count}")


@pytest.mark.parametrize("spec", ["gpu", "tpu", "", "cuda:x"])
def test_unknown_device_names_the_valid_ones(spec):
    with pytest.raises(ValueError, match="device"):
        get_device(spec)


@pytest.mark.parametrize("spec", [0, None, 1.5, ["cpu"]])
def test_device_of_wrong_type(spec):
    with pytest.raises(TypeError, match="device must be a str"):
        get_device(spec)


def _draw():
    return (
        random.random(),
        np.random.rand(3).tolist(),
        torch.rand(3).tolist(),
    )


def test_same_seed_same_numbers_everywhere():
    seed_everything(123)
    first = _draw()
    seed_everything(123)
    assert _draw() == first


def test_different_seeds_differ():
    seed_everything(1)
    a = _draw()
    seed_everything(2)
    b = _draw()
    assert all(x != y for x, y in zip(a, b))


def test_returns_a_seeded_generator():
    g1 = seed_everything(7)
    g2 = seed_everything(7)
    assert isinstance(g1, np.random.Generator)
    np.testing.assert_array_equal(g1.normal(size=4), g2.normal(size=4))


def test_numpy_integer_seed_accepted():
    seed_everything(np.int64(5))
    a = _draw()
    seed_everything(5)
    assert _draw() == a


@pytest.mark.parametrize("seed, error", [(-1, ValueError), (2**32, ValueError),
                                         (1.0, TypeError), ("0", TypeError), (True, TypeError)])
def test_bad_seed(seed, error):
    with pytest.raises(error, match="seed must be"):
        seed_everything(seed)


@pytest.mark.gpu
def test_seed_reaches_cuda():
    seed_everything(3)
    a = torch.rand(4, device="cuda").tolist()
    seed_everything(3)
    assert torch.rand(4, device="cuda").tolist() == a


def test_agrees_checks_a_device_tensor_against_numpy_with_shape_and_tolerance():
    from lstm_lab.runtime import agrees

    ref = np.array([1.0, -2.0, 3.0])
    assert agrees(torch.tensor(ref, dtype=torch.float32), ref)
    assert agrees(torch.tensor(ref + 1e-6, requires_grad=True), ref)  # detached for the check
    assert not agrees(torch.tensor(ref + 1e-3), ref)
    assert agrees(torch.tensor(ref + 1e-3), ref, atol=1e-2)
    assert not agrees(torch.tensor(ref[:2]), ref)  # shapes must match, no broadcasting
    with pytest.raises(TypeError, match="tensor must be a torch.Tensor"):
        agrees(ref, ref)
