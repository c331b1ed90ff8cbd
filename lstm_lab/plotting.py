"""Figures for the book, drawn by our own code with matplotlib.

Each helper draws on a new figure (or on the axes it is given) and returns the figure,
so a notebook cell can write ``fig = plot_...(...)`` and the figure appears once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from lstm_lab.scratch.activations import dsigmoid, dtanh, sigmoid, tanh


def plot_activations(x_range: tuple[float, float] = (-6.0, 6.0), num: int = 601):
    """Sigmoid and tanh (left) and their derivatives (right) on ``x_range``.

    Returns the :class:`matplotlib.figure.Figure`.
    """
    lo, hi = map(float, x_range)
    if not lo < hi:
        raise ValueError(f"x_range must be (low, high) with low < high, got {x_range!r}")
    x = np.linspace(lo, hi, num)
    s, t = sigmoid(x), tanh(x)
    fig, (ax_f, ax_d) = plt.subplots(1, 2, figsize=(9, 3.2), constrained_layout=True)
    ax_f.plot(x, s, label=r"$\sigma(x)$")
    ax_f.plot(x, t, label=r"$\tanh(x)$")
    ax_d.plot(x, dsigmoid(s), label=r"$\sigma'(x) = \sigma(x)(1-\sigma(x))$")
    ax_d.plot(x, dtanh(t), label=r"$\tanh'(x) = 1-\tanh^2(x)$")
    for ax, title in ((ax_f, "the functions"), (ax_d, "their derivatives")):
        ax.axhline(0.0, color="0.6", lw=0.8)
        ax.axvline(0.0, color="0.6", lw=0.8)
        ax.set_xlabel("$x$")
        ax.set_title(title)
        ax.legend(loc="upper left", fontsize=8)
        ax.grid(alpha=0.3)
    ax_f.set_ylim(-1.15, 1.15)
    return fig


def plot_series(
    series: Mapping[str, Sequence[float] | np.ndarray],
    x: Sequence[float] | np.ndarray | None = None,
    *,
    xlabel: str = "time step $t$",
    title: str | None = None,
    ylims: Mapping[str, tuple[float, float]] | None = None,
):
    """Stack several 1-D signals that share a time axis, one panel each, top to bottom.

    Parameters
    ----------
    series
        ``{label: values}``, every ``values`` of shape ``(t,)``.
    x
        The shared horizontal axis, shape ``(t,)``; ``0, 1, ..., t-1`` when omitted.
    ylims
        Optional ``{label: (low, high)}`` for panels whose range should be fixed.

    Returns the :class:`matplotlib.figure.Figure`.
    """
    if not series:
        raise ValueError("series must hold at least one {label: values} entry")
    arrays = {label: np.asarray(v, dtype=float) for label, v in series.items()}
    lengths = {label: a.shape for label, a in arrays.items()}
    first = next(iter(arrays.values()))
    if any(a.ndim != 1 or a.shape != first.shape for a in arrays.values()):
        raise ValueError(f"every series must be 1-D with the same length, got shapes {lengths}")
    xs = np.arange(first.shape[0]) if x is None else np.asarray(x, dtype=float)
    if xs.shape != first.shape:
        raise ValueError(f"x must have shape {first.shape}, got {xs.shape}")
    ylims = dict(ylims or {})
    fig, axes = plt.subplots(
        len(arrays), 1, figsize=(8, 1.6 * len(arrays) + 0.4), sharex=True, constrained_layout=True
    )
    axes = np.atleast_1d(axes)
    for ax, (label, values) in zip(axes, arrays.items()):
        ax.step(xs, values, where="mid")
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
        if label in ylims:
            ax.set_ylim(*ylims[label])
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel(xlabel)
    if title:
        axes[0].set_title(title)
    return fig
