"""The figure helpers draw what they say, and reject input they cannot draw."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from numpy.testing import assert_allclose  # noqa: E402

from lstm_lab.plotting import plot_activations, plot_series  # noqa: E402
from lstm_lab.scratch import sigmoid, tanh  # noqa: E402


def test_plot_activations_draws_the_functions_and_slopes():
    fig = plot_activations((-3, 3), num=7)
    left, right = fig.axes
    x, s = left.lines[0].get_data()
    assert_allclose(s, sigmoid(x))
    assert_allclose(left.lines[1].get_ydata(), tanh(x))
    assert_allclose(right.lines[0].get_ydata().max(), 0.25)
    assert_allclose(right.lines[1].get_ydata().max(), 1.0)
    plt.close(fig)


def test_plot_series_one_panel_per_signal():
    fig = plot_series({"a": [0, 1, 0], "b": np.ones(3)}, ylims={"a": (-1, 2)}, title="t")
    assert len(fig.axes) == 2
    assert fig.axes[0].get_ylim() == (-1, 2)
    assert_allclose(fig.axes[1].lines[0].get_ydata(), 1.0)
    plt.close(fig)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(series={}), "at least one"),
        (dict(series={"a": [1, 2], "b": [1, 2, 3]}), "same length"),
        (dict(series={"a": [[1, 2]]}), "1-D"),
        (dict(series={"a": [1, 2]}, x=[0, 1, 2]), "x must have shape"),
    ],
)
def test_plot_series_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        plot_series(**kwargs)


def test_plot_activations_rejects_empty_range():
    with pytest.raises(ValueError, match="x_range"):
        plot_activations((1, 1))
