"""Where code runs, how it is seeded, evaluation mode, and how a device's result is checked
against NumPy: one helper for each."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np
import torch

from lstm_lab.checks import check_int

_DEVICE_KINDS = ("auto", "cpu", "cuda", "mps")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return backend is not None and backend.is_available()


def get_device(device: str | torch.device = "auto") -> torch.device:
    """Return the :class:`torch.device` to run on.

    Parameters
    ----------
    device
        ``"auto"`` picks CUDA if a CUDA device is present, then Apple's MPS, then the CPU.
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` and ``"mps"`` (or a :class:`torch.device`) ask
        for that device and raise :class:`RuntimeError` if it is not available here, rather
        than failing later inside a model.

    Examples
    --------
    >>> get_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, torch.device):
        requested = device
    elif isinstance(device, str):
        name = device.strip().lower()
        if name == "auto":
            if torch.cuda.is_available():
                return torch.device("cuda")
            if _mps_available():
                return torch.device("mps")
            return torch.device("cpu")
        kind = name.split(":", 1)[0]
        if kind not in _DEVICE_KINDS:
            raise ValueError(
                f"device must be one of {', '.join(map(repr, _DEVICE_KINDS))} "
                f"(optionally 'cuda:N'), got {device!r}"
            )
        try:
            requested = torch.device(name)
        except RuntimeError as err:  # e.g. "cuda:x"
            raise ValueError(f"device {device!r} is not a valid device string: {err}") from None
    else:
        raise TypeError(
            f"device must be a str such as 'auto', 'cpu' or 'cuda', or a torch.device; "
            f"got {type(device).__name__}"
        )

    if requested.type == "cpu":
        return requested
    if requested.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"device={device!r} was requested but no CUDA device is available "
                "(torch.cuda.is_available() is False). Use device='auto' or 'cpu', or install "
                "a CUDA build of PyTorch (see the README's GPU section)."
            )
        count = torch.cuda.device_count()
        if requested.index is not None and requested.index >= count:
            raise RuntimeError(
                f"device={device!r} was requested but only {count} CUDA device(s) exist "
                f"(valid indices 0..{count - 1})."
            )
        return requested
    if requested.type == "mps":
        if not _mps_available():
            raise RuntimeError(
                f"device={device!r} was requested but Apple's MPS backend is not available here. "
                "Use device='auto' or 'cpu'."
            )
        return requested
    raise ValueError(
        f"device must be one of {', '.join(map(repr, _DEVICE_KINDS))}, got {device!r}"
    )


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python's :mod:`random`, NumPy's global generator and PyTorch (every device).

    Call it once at the top of a notebook or experiment so that every number it prints
    is the same on every run.

    Parameters
    ----------
    seed
        A non-negative integer below ``2**32``.

    Returns
    -------
    numpy.random.Generator
        A fresh generator seeded with ``seed``, for code that prefers an explicit generator
        over NumPy's global one.
    """
    seed = check_int(seed, "seed", minimum=0, maximum=2**32 - 1)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA and MPS device
    return np.random.default_rng(seed)


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """``with eval_mode(model):`` runs the block with ``model.eval()`` and then restores the
    mode the model had before, also when the block raises."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def agrees(tensor: torch.Tensor, reference, *, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    """Whether a PyTorch tensor (any device and float dtype: float32 in the chapters) equals a
    NumPy reference (float64) elementwise, |t - r| <= atol + rtol |r| with the same shape: how the
    chapters check their devices' float32 results against the NumPy code."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"tensor must be a torch.Tensor, got {type(tensor).__name__}")
    t = tensor.detach().cpu().double().numpy()
    r = np.asarray(reference, dtype=np.float64)
    return t.shape == r.shape and bool(np.allclose(t, r, rtol=rtol, atol=atol))
