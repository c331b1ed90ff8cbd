"""One small training loop shared by every notebook.

It picks the device with :func:`lstm_lab.get_device`, seeds everything, draws each batch from
a seeded NumPy generator, clips the gradient norm if asked, and returns the history of the
loss and of the gradient norm (before clipping), one entry per step.

The objectives it trains on are here too: the last step's MSE or cross-entropy, the
cross-entropy of every step, and those of the last k steps, where recall tasks
(:func:`lstm_lab.tasks.selective_copying`, :func:`lstm_lab.tasks.associative_recall`) ask for
their answers (:func:`last_k_cross_entropy`, :func:`last_k_accuracy`).

One rule for all of them: an objective is ``loss(model, x, *targets) -> scalar`` (what
:func:`train` calls), and every sequence model of the package returns ``(outputs, state)``
from its forward pass, outputs (b, t, k) first (``state`` None where it keeps none).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lstm_lab.checks import check_size
from lstm_lab.runtime import eval_mode, get_device, seed_everything
from lstm_lab.tasks import IGNORE_INDEX, as_tensors

Batch = Sequence["np.ndarray | torch.Tensor"]


@dataclass
class History:
    """What :func:`train` returns: one entry per step taken."""

    losses: list[float] = field(default_factory=list)
    grad_norms: list[float] = field(default_factory=list)  # before clipping
    stopped_early: bool = False

    @property
    def steps(self) -> int:
        return len(self.losses)

    def smoothed(self, window: int = 50) -> np.ndarray:
        """Running mean of the loss over the last ``window`` steps (shorter at the start)."""
        return running_mean(self.losses, window)


def running_mean(values: Sequence[float] | np.ndarray, window: int) -> np.ndarray:
    """Mean of the last ``window`` values at every position (fewer at the start), shape (n,)."""
    values = np.asarray(values, dtype=float)
    csum = np.concatenate([[0.0], np.cumsum(values)])
    idx = np.arange(1, values.size + 1)
    lo = np.maximum(0, idx - window)
    return (csum[idx] - csum[lo]) / (idx - lo)


def train(
    model: torch.nn.Module,
    make_batch: Callable[[np.random.Generator], Batch],
    loss_fn: Callable[..., torch.Tensor],
    *,
    steps: int,
    lr: float = 1e-3,
    optimizer: str = "adam",
    clip_norm: float | None = None,
    device: str | torch.device = "auto",
    seed: int = 0,
    stop_when: Callable[[int, History], bool] | None = None,
    progress: bool = False,
) -> History:
    """Train ``model`` for ``steps`` steps and return the :class:`History`.

    Parameters
    ----------
    model
        Moved to ``device`` in place.
    make_batch
        Called with a seeded ``numpy.random.Generator`` each step; returns a tuple of arrays or
        tensors, for example ``(x, y)`` from :mod:`lstm_lab.tasks`.
    loss_fn
        ``loss_fn(model, *batch)`` returns a scalar loss tensor.
    steps, lr, optimizer
        Number of steps, learning rate, and "adam" or "sgd".
    clip_norm
        If given, rescale the gradient so that its total norm is at most ``clip_norm``.
    device
        Passed to :func:`lstm_lab.get_device`.
    seed
        Seeds Python, NumPy and torch, and the batch generator.
    stop_when
        Optional ``stop_when(step, history) -> bool``, checked after every step.
    progress
        Show a tqdm progress bar (if tqdm is installed) on stderr. It shows no timings and
        redraws only every 10% of the steps, so a notebook's stored output does not depend
        on the machine's speed.
    """
    steps = check_size(steps, "steps")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if clip_norm is not None and not clip_norm > 0:
        raise ValueError(f"clip_norm must be positive or None, got {clip_norm!r}")
    opt_cls = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}.get(optimizer)
    if opt_cls is None:
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")

    rng = seed_everything(seed)
    dev = get_device(device)
    model.to(dev)
    dtype = next(model.parameters()).dtype
    opt = opt_cls(model.parameters(), lr=lr)
    history = History()
    bar = _progress_bar(steps) if progress else None
    model.train()
    for step in range(steps):
        batch = as_tensors(*make_batch(rng), device=dev, dtype=dtype)
        batch = batch if isinstance(batch, tuple) else (batch,)
        loss = loss_fn(model, *batch)
        if loss.dim() != 0:
            raise ValueError(f"loss_fn must return a scalar tensor, got shape {tuple(loss.shape)}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm if clip_norm else math.inf)
        opt.step()
        history.losses.append(loss.item())
        history.grad_norms.append(float(norm))
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"loss {history.losses[-1]:.4f}", refresh=False)
        if stop_when is not None and stop_when(step, history):
            history.stopped_early = step + 1 < steps
            break
    if bar is not None:
        bar.close()
    model.eval()
    return history


def _progress_bar(total: int):
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is optional
        return None
    return tqdm(
        total=total,
        file=sys.stderr,
        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} {postfix}",  # no elapsed time, no rate
        miniters=max(1, total // 10),
        mininterval=0,
        dynamic_ncols=False,
        ncols=80,
    )


# ----------------------------------------------------------------------------- objectives
# Each takes (model, x, y[, mask]) with a model returning (outputs (b, t, k), state), as
# lstm_lab.nn.SequenceModel does, and returns a scalar loss: ready to pass to train().


def last_step_mse(model, x, y):
    """Mean squared error of the last step's output (b, k) against y (b, k): regression tasks."""
    out, _ = model(x)
    return torch.nn.functional.mse_loss(out[:, -1], y)


def last_step_cross_entropy(model, x, y):
    """Cross-entropy of the last step's logits (b, k) against class labels y (b,)."""
    out, _ = model(x)
    return torch.nn.functional.cross_entropy(out[:, -1], y)


def sequence_cross_entropy(model, x, y, mask=None):
    """Cross-entropy at every step: logits (b, t, k) against labels y (b, t).

    Steps whose label is ``IGNORE_INDEX`` (-100), or where ``mask`` (b, t) is False, do not count.
    """
    out, _ = model(x)
    if mask is not None:  # eq-masked-loss: padded steps count neither in the sum nor in the number of steps
        y = y.masked_fill(~mask.bool(), IGNORE_INDEX)
    # eq-rnn-loss: the mean over the counted steps of -log softmax(y_t)[target]
    return torch.nn.functional.cross_entropy(out.flatten(0, 1), y.flatten(), ignore_index=IGNORE_INDEX)


@torch.no_grad()
def predict(model, x, *, device: str | torch.device | None = None) -> torch.Tensor:
    """The model's outputs (b, t, k) for x (a NumPy array or tensor), in eval mode, no grad."""
    dev = next(model.parameters()).device if device is None else get_device(device)
    dtype = next(model.parameters()).dtype
    with eval_mode(model):
        out, _ = model(as_tensors(x, device=dev, dtype=dtype))
    return out


def last_step_accuracy(model, x, y) -> float:
    """Fraction of sequences whose last-step argmax equals the label y (b,)."""
    out = predict(model, x)
    y = torch.as_tensor(y, device=out.device)
    return (out[:, -1].argmax(-1) == y).float().mean().item()


def _last_k_logits(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Logits (b, k, m) at the last k = y.shape[1] steps of x: where the answers are read out."""
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError("x and y must be torch tensors (use lstm_lab.tasks.as_tensors)")
    if y.dim() != 2 or x.dim() < 2 or y.shape[0] != x.shape[0] or y.shape[1] > x.shape[1]:
        raise ValueError(f"need x (b, t, ...) and y (b, k) with k <= t, got {tuple(x.shape)} and {tuple(y.shape)}")
    device = next(model.parameters()).device
    logits, _ = model(x.to(device))  # (b, t, m)
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


# ----------------------------------------------------------------------------- sequence to sequence
# A model of lstm_lab.nn.Seq2Seq maps (x, y_in) to (logits (b, u, v_t), weights): the decoder
# reads y_in (BOS, y_1, ..., y_{u-1}) under teacher forcing and predicts y (y_1, ..., y_u).


def seq2seq_cross_entropy(model: nn.Module, x: torch.Tensor, y_in: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the teacher-forced logits against the targets y (b, u): a loss for ``train``."""
    logits, _ = model(x, y_in)  # (b, u, v_t)
    # eq-seq2seq-prob: -log p(y | x) = -sum_i log p(y_i | y_<i, x), here averaged over the b * u tokens
    return F.cross_entropy(logits.flatten(0, 1), y.to(logits.device).flatten().long())


@torch.no_grad()
def teacher_forced_accuracy(model: nn.Module, x: torch.Tensor, y_in: torch.Tensor, y: torch.Tensor) -> float:
    """Share of the target tokens y (b, u) that the model ranks first when it reads the true
    previous tokens y_in: what it would get right if it never had to read its own mistakes."""
    with eval_mode(model):
        logits, _ = model(x, y_in)  # (b, u, v_t)
    return (logits.argmax(-1).cpu() == y.cpu().long()).float().mean().item()
