"""Figures for the book, drawn by our own code with matplotlib.

Each helper draws on a new figure (or on the axes it is given) and returns the figure,
so a notebook cell can write ``fig = plot_...(...)`` and the figure appears once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np

from lstm_lab.scratch.activations import dsigmoid, dtanh, sigmoid, tanh
from lstm_lab.train import running_mean

if TYPE_CHECKING:
    from lstm_lab.experiments import OdysseyResult

# Width of every plot, in inches. The book's text column is about 684 px wide on a 1280 px
# screen; at matplotlib's 100 dpi a figure this wide appears at its own size there, so its
# 9-10 pt labels read at the size they were set (the setup cell asks for 2x pixels).
FIG_WIDTH = 6.8
LEGEND_SIZE = 9


def plot_activations(x_range: tuple[float, float] = (-6.0, 6.0), num: int = 601):
    """Sigmoid and tanh (left) and their derivatives (right) on ``x_range``.

    Returns the :class:`matplotlib.figure.Figure`.
    """
    lo, hi = map(float, x_range)
    if not lo < hi:
        raise ValueError(f"x_range must be (low, high) with low < high, got {x_range!r}")
    x = np.linspace(lo, hi, num)
    s, t = sigmoid(x), tanh(x)
    fig, (ax_f, ax_d) = plt.subplots(1, 2, figsize=(FIG_WIDTH, 2.8), constrained_layout=True)
    ax_f.plot(x, s, label=r"$\sigma(x)$")
    ax_f.plot(x, t, label=r"$\tanh(x)$")
    ax_d.plot(x, dsigmoid(s), label=r"$\sigma'(x) = \sigma(x)(1-\sigma(x))$")
    ax_d.plot(x, dtanh(t), label=r"$\tanh'(x) = 1-\tanh^2(x)$")
    for ax, title in ((ax_f, "the functions"), (ax_d, "their derivatives")):
        ax.axhline(0.0, color="0.6", lw=0.8)
        ax.axvline(0.0, color="0.6", lw=0.8)
        ax.set_xlabel("$x$")
        ax.set_title(title)
        ax.legend(loc="upper left", fontsize=LEGEND_SIZE)
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
    xticklabels: Sequence[str] | None = None,
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
    xticklabels
        Optional label for every step (e.g. the tokens of a sentence), shape ``(t,)``.

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
        len(arrays), 1, figsize=(FIG_WIDTH, 1.5 * len(arrays) + 0.4), sharex=True, constrained_layout=True
    )
    axes = np.atleast_1d(axes)
    for ax, (label, values) in zip(axes, arrays.items()):
        ax.step(xs, values, where="mid")
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
        if label in ylims:
            ax.set_ylim(*ylims[label])
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel(xlabel)
    if xticklabels is not None:
        if len(xticklabels) != xs.shape[0]:
            raise ValueError(f"xticklabels must have one label per step ({xs.shape[0]}), got {len(xticklabels)}")
        axes[-1].set_xticks(xs)
        axes[-1].set_xticklabels(list(xticklabels), rotation=45, ha="right")
    if title:
        axes[0].set_title(title)
    return fig


def plot_gradient_norms(
    curves: Mapping[str, Sequence[float] | np.ndarray],
    *,
    title: str | None = None,
    ylabel: str = r"$\|\partial L / \partial h_{T-k}\|$",
    ax=None,
):
    """Gradient norm against the lag k on a log scale, one line per ``{label: norms}``.

    Each ``norms`` has shape (t,): the norm at lag 0, 1, ..., t-1, as returned by
    :func:`lstm_lab.gradients.state_gradient_norms`. Exact zeros are not drawn.
    Returns the figure.
    """
    if not curves:
        raise ValueError("curves must hold at least one {label: norms} entry")
    fig, ax = _figure(ax, figsize=(FIG_WIDTH, 3.4))
    for label, norms in curves.items():
        norms = np.asarray(norms, dtype=float)
        if norms.ndim != 1:
            raise ValueError(f"curves[{label!r}] must be 1-D (one norm per lag), got shape {norms.shape}")
        lag = np.arange(norms.shape[0])
        keep = norms > 0
        ax.semilogy(lag[keep], norms[keep], label=label)
    return _finish_axes(ax, "lag $k$ (steps back from the loss)", ylabel, title)


def plot_curves(
    x: Sequence[float] | np.ndarray,
    curves: Mapping[str, Sequence[float] | np.ndarray],
    *,
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    logx: bool = False,
    logy: bool = False,
    reference: tuple[float, str] | None = None,
    ax=None,
):
    """Several curves over one shared x axis in one panel, with markers: ``{label: y}``.

    Each ``y`` has the shape of ``x`` (n,). ``reference=(value, label)`` draws a dashed
    horizontal line (chance level, a bound). Returns the figure.
    """
    x = np.asarray(x, dtype=float)
    if x.ndim != 1 or not curves:
        raise ValueError(f"need a 1-D x and at least one curve, got x of shape {x.shape} and {len(curves)} curves")
    fig, ax = _figure(ax, figsize=(FIG_WIDTH, 3.4))
    for label, y in curves.items():
        y = np.asarray(y, dtype=float)
        if y.shape != x.shape:
            raise ValueError(f"curves[{label!r}] must have the shape of x {x.shape}, got {y.shape}")
        ax.plot(x, y, marker="o", markersize=4, label=label)
    if reference is not None:
        value, text = reference
        ax.axhline(value, color="0.4", linestyle="--", linewidth=1, label=text)
    if logx:
        ax.set_xscale("log", base=2 if np.all(np.log2(x) == np.round(np.log2(x))) else 10)
    if logy:
        ax.set_yscale("log")
    return _finish_axes(ax, xlabel, ylabel, title)


def plot_losses(
    histories: Mapping[str, Sequence[float] | np.ndarray | object],
    *,
    baseline: float | None = None,
    baseline_label: str = "baseline",
    window: int = 50,
    log: bool = True,
    ylabel: str = "training loss",
    title: str | None = None,
    ax=None,
):
    """Training curves, smoothed by a running mean over ``window`` steps.

    ``histories`` maps a label to a list of losses or to a :class:`lstm_lab.train.History`.
    ``baseline`` draws a horizontal reference line (e.g. the constant predictor's loss).
    Returns the figure.
    """
    if not histories:
        raise ValueError("histories must hold at least one {label: losses} entry")
    fig, ax = _figure(ax, figsize=(FIG_WIDTH, 3.4))
    for label, hist in histories.items():
        losses = np.asarray(getattr(hist, "losses", hist), dtype=float)
        if losses.ndim != 1 or losses.size == 0:
            raise ValueError(f"histories[{label!r}] must be a non-empty 1-D sequence of losses")
        ax.plot(np.arange(1, losses.size + 1), running_mean(losses, window), label=label)
    if baseline is not None:
        ax.axhline(baseline, color="0.3", ls="--", lw=1, label=baseline_label)
    if log:
        ax.set_yscale("log")
    return _finish_axes(ax, "training step", ylabel, title)


def plot_heatmaps(
    panels: Mapping[str, np.ndarray],
    *,
    x: Sequence[float] | np.ndarray | None = None,
    xlabel: str = "time step $t$",
    vlims: Mapping[str, tuple[float, float]] | None = None,
    title: str | None = None,
    cmap: str = "viridis",
):
    """Stacked heat maps sharing a time axis: each panel is an array (t, units) or (t,).

    Used for gate activations over one sequence (units on the vertical axis). ``vlims``
    fixes a panel's colour range, e.g. ``{"forget gate": (0, 1)}``. Returns the figure.
    """
    if not panels:
        raise ValueError("panels must hold at least one {label: array} entry")
    arrays = {}
    for label, a in panels.items():
        a = np.asarray(a, dtype=float)
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2:
            raise ValueError(f"panels[{label!r}] must have shape (t,) or (t, units), got {a.shape}")
        arrays[label] = a
    t = next(iter(arrays.values())).shape[0]
    if any(a.shape[0] != t for a in arrays.values()):
        raise ValueError(f"every panel must have the same number of steps, got {[a.shape for a in arrays.values()]}")
    xs = np.arange(t) if x is None else np.asarray(x, dtype=float)
    if xs.shape != (t,):
        raise ValueError(f"x must have shape ({t},), got {xs.shape}")
    vlims = dict(vlims or {})
    heights = [max(1.0, min(3.0, a.shape[1] / 8)) for a in arrays.values()]
    fig, axes = plt.subplots(len(arrays), 1, figsize=(FIG_WIDTH, 0.9 * sum(heights) + 0.9), sharex=True,
                             gridspec_kw={"height_ratios": heights}, constrained_layout=True)
    axes = np.atleast_1d(axes)
    edges = np.concatenate([xs - 0.5, [xs[-1] + 0.5]]) if t > 0 else xs
    for ax, (label, a) in zip(axes, arrays.items()):
        lo, hi = vlims.get(label, (None, None))
        mesh = ax.pcolormesh(edges, np.arange(a.shape[1] + 1), a.T, cmap=cmap, vmin=lo, vmax=hi, shading="flat")
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
        ax.set_yticks([])
        fig.colorbar(mesh, ax=ax, pad=0.01, aspect=10)
    axes[-1].set_xlabel(xlabel)
    if title:
        axes[0].set_title(title)
    return fig


def plot_alignment(
    weights: np.ndarray,
    source: Sequence[str],
    target: Sequence[str],
    *,
    title: str | None = None,
    ax=None,
):
    """Attention weights as an alignment: one row per output word, one column per source word.

    ``weights`` (u, t): row i holds the weights a_ij with which output word i looked at the
    source words (each row sums to 1). ``source`` (t labels) and ``target`` (u labels) name the
    columns and the rows. The colour scale runs from 0 (white) to 1. Returns the figure.
    """
    w = np.asarray(weights, dtype=float)
    if w.ndim != 2 or w.shape != (len(target), len(source)):
        raise ValueError(f"weights must have shape (len(target), len(source)) = ({len(target)}, {len(source)}), "
                         f"got {w.shape}")
    u, t = w.shape
    fig, ax = _figure(ax, (min(FIG_WIDTH, 1.2 + 0.45 * t), 1.0 + 0.4 * u))
    mesh = ax.pcolormesh(np.arange(t + 1) - 0.5, np.arange(u + 1) - 0.5, w, cmap="Greys", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(t), list(source))
    ax.set_yticks(range(u), list(target))
    ax.invert_yaxis()  # the first output word on top, as one reads
    ax.xaxis.tick_top()
    ax.set_xlabel("source word $j$")
    ax.xaxis.set_label_position("top")
    ax.set_ylabel("output word $i$")
    ax.set_aspect("equal")
    if title:
        ax.set_title(title, pad=28)
    fig.colorbar(mesh, ax=ax, pad=0.02, shrink=0.8, label="weight $a_{ij}$")
    return fig


def _finish_axes(ax, xlabel: str, ylabel: str, title: str | None):
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=LEGEND_SIZE)
    return ax.figure


def _figure(ax, figsize):
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, constrained_layout=True)
        return fig, ax
    return ax.figure, ax


def plot_scaling(
    lengths: Sequence[float],
    panels: Mapping[str, Mapping[str, Sequence[float]]],
    *,
    xlabel: str = "sequence length $t$",
    guides: Sequence[int] = (1, 2),
):
    """One log-log panel per ``{title: {curve label: costs}}``, with dashed guide lines t^p.

    The x ticks are the measured lengths themselves. Each guide of slope p is drawn through
    the first point of the panel's highest curve and labelled inside the panel.
    Returns the :class:`matplotlib.figure.Figure`.
    """
    if not panels:
        raise ValueError("panels must hold at least one {title: {label: costs}} entry")
    t = np.asarray(lengths, dtype=float)
    fig, axes = plt.subplots(1, len(panels), figsize=(min(FIG_WIDTH, 3.6 * len(panels)), 3.4), constrained_layout=True)
    for ax, (title, curves) in zip(np.atleast_1d(axes), panels.items()):
        top = 0.0
        for label, costs in curves.items():
            c = np.asarray(costs, dtype=float)
            if c.shape != t.shape:
                raise ValueError(f"curve {label!r} has shape {c.shape}, lengths have {t.shape}")
            ax.loglog(t, c, "o-", label=label)
            top = max(top, c[0])
        for p in guides:
            ax.loglog(t, top * (t / t[0]) ** p, "k--", lw=0.8, alpha=0.5)
            ax.annotate(f"$\\propto t^{p}$", (t[-1], top * (t[-1] / t[0]) ** p), fontsize=9, alpha=0.8,
                        ha="right", va="bottom", xytext=(-2, 2), textcoords="offset points")
        ax.set_xticks(t, [f"{v:g}" for v in t])
        ax.xaxis.set_minor_locator(plt.NullLocator())
        ax.set_xlabel(xlabel)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=LEGEND_SIZE)
    return fig


def plot_odyssey(
    result: "OdysseyResult",
    metric: str,
    *,
    reference: str | None = None,
    log: bool = False,
    ylabel: str | None = None,
    title: str | None = None,
    ax=None,
):
    """A strip plot: one column per variant, one dot per seed, a bar at the median.

    ``reference`` draws a dashed line at that variant's median across the whole plot.
    Returns the figure.
    """
    vals = result.values(metric)
    if ax is None:
        fig, ax = plt.subplots(figsize=(FIG_WIDTH, 3.4), constrained_layout=True)
    else:
        fig = ax.figure
    n = len(result.seeds)
    offsets = np.linspace(-0.18, 0.18, n) if n > 1 else np.zeros(1)  # fixed jitter: reproducible
    for i, v in enumerate(result.variants):
        a = vals[v]
        ax.scatter(i + offsets, a, s=18, color="C0", alpha=0.8, zorder=3)
        ax.hlines(np.median(a), i - 0.3, i + 0.3, color="C1", lw=2, zorder=4)
    if reference is not None:
        ax.axhline(np.median(vals[reference]), color="0.4", ls="--", lw=1,
                   label=f"median of {reference}")
        ax.legend(fontsize=LEGEND_SIZE, loc="best")
    ax.set_xticks(range(len(result.variants)), result.variants)
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel or metric)
    ax.set_xlabel("variant (one dot per seed, bar at the median)")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3, axis="y", which="both")
    return fig
