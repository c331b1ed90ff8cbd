"""The figure helpers draw what they say, and reject input they cannot draw."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from numpy.testing import assert_allclose  # noqa: E402

from lstm_lab.plotting import plot_activations, plot_curves, plot_series  # noqa: E402
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


def test_plot_gradient_norms_is_log_scale_and_skips_zeros():
    from lstm_lab.plotting import plot_gradient_norms

    fig = plot_gradient_norms({"a": [1.0, 0.5, 0.0, 0.125], "b": np.ones(4)}, title="t")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert_allclose(ax.lines[0].get_xdata(), [0, 1, 3])  # the exact zero is dropped
    with pytest.raises(ValueError, match="1-D"):
        plot_gradient_norms({"a": np.ones((2, 2))})
    plt.close(fig)


def test_plot_losses_smooths_and_draws_the_baseline():
    from lstm_lab.plotting import plot_losses
    from lstm_lab.train import History

    fig = plot_losses({"run": History(losses=[4.0, 2.0, 0.0]), "list": [1.0, 1.0, 1.0]}, baseline=1 / 6, window=2)
    ax = fig.axes[0]
    assert_allclose(ax.lines[0].get_ydata(), [4.0, 3.0, 1.0])
    assert_allclose(ax.lines[2].get_ydata(), [1 / 6, 1 / 6])
    with pytest.raises(ValueError, match="non-empty"):
        plot_losses({"x": []})
    plt.close(fig)


def test_plot_heatmaps_one_panel_per_array():
    from lstm_lab.plotting import plot_heatmaps

    fig = plot_heatmaps({"gate": np.random.default_rng(0).uniform(size=(10, 4)), "signal": np.arange(10.0)},
                        vlims={"gate": (0, 1)})
    assert len([a for a in fig.axes if a.get_label() != "<colorbar>"]) == 2
    mesh = fig.axes[0].collections[0]
    assert mesh.get_clim() == (0, 1)
    with pytest.raises(ValueError, match="same number of steps"):
        plot_heatmaps({"a": np.ones((3, 2)), "b": np.ones((4, 2))})
    plt.close(fig)


def test_plot_series_token_labels():
    fig = plot_series({"a": [0, 1, 0]}, xticklabels=["the", "cat", "sat"])
    assert [t.get_text() for t in fig.axes[-1].get_xticklabels()] == ["the", "cat", "sat"]
    with pytest.raises(ValueError, match="one label per step"):
        plot_series({"a": [0, 1, 0]}, xticklabels=["the"])
    plt.close(fig)


def test_plot_curves_one_panel_with_every_curve_and_the_reference():
    fig = plot_curves([16, 64, 256], {"a": [1.0, 1.0, 0.9], "b": [0.5, 0.5, 0.5]}, xlabel="t", ylabel="acc",
                      logx=True, reference=(0.5, "chance"))
    (ax,) = fig.axes
    assert [line.get_label() for line in ax.lines] == ["a", "b", "chance"]
    assert_allclose(ax.lines[0].get_ydata(), [1.0, 1.0, 0.9])
    assert ax.get_xscale() == "log"
    plt.close(fig)
    with pytest.raises(ValueError, match="shape of x"):
        plot_curves([1, 2], {"a": [1.0]}, xlabel="x", ylabel="y")
    with pytest.raises(ValueError, match="at least one curve"):
        plot_curves([1, 2], {}, xlabel="x", ylabel="y")


def test_a_notebook_shows_each_figure_under_the_cell_that_drew_it():
    """In a kernel, a figure from lstm_lab.plotting appears in its own cell's output. With
    IPython 9 and matplotlib < 3.9 the first figure of a notebook showed up under the next cell;
    pyproject.toml asks for matplotlib >= 3.9, and this checks whatever is installed."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("from lstm_lab.plotting import plot_curves\n"
                                  "fig = plot_curves([1, 2], {'a': [1.0, 2.0]}, xlabel='x', ylabel='y')"),
        nbformat.v4.new_code_cell("print('next cell')"),
    ])
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    drew, after = ([o.get("data", {}) for o in cell.outputs] for cell in nb.cells)
    assert any("image/png" in d for d in drew), "the figure is not in the cell that drew it"
    assert not any("image/png" in d for d in after), "the figure appeared under the next cell"


def test_plot_scaling_one_log_log_panel_per_measurement_with_guides():
    from lstm_lab.plotting import plot_scaling

    lengths = [128, 256, 512]
    fig = plot_scaling(lengths, {"time": {"a": [1.0, 2.0, 4.0], "b": [1.0, 4.0, 16.0]}, "memory": {"a": [3, 3, 3]}},
                       guides=(1, 2))
    first, second = fig.axes
    assert first.get_xscale() == first.get_yscale() == "log"
    assert [t.get_text() for t in first.get_xticklabels()] == ["128", "256", "512"]
    assert len(first.lines) == 2 + 2 and len(second.lines) == 1 + 2  # curves, then one guide per slope
    assert [a.get_title() for a in fig.axes] == ["time", "memory"]
    with pytest.raises(ValueError, match="has shape"):
        plot_scaling(lengths, {"time": {"a": [1.0, 2.0]}})
    with pytest.raises(ValueError, match="at least one"):
        plot_scaling(lengths, {})


def test_plot_alignment_one_cell_per_pair_with_the_words_on_the_axes():
    from lstm_lab.plotting import plot_alignment

    w = np.full((3, 4), 0.25)
    fig = plot_alignment(w, list("abcd"), ["X", "Y", ">"], title="one sentence")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == list("abcd")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["X", "Y", ">"]
    mesh = ax.collections[0]
    assert mesh.get_array().size == 12 and mesh.get_clim() == (0.0, 1.0)
    assert ax.get_ylim()[0] > ax.get_ylim()[1]  # the first output word on top
    plt.close(fig)
    with pytest.raises(ValueError, match=r"\(len\(target\), len\(source\)\) = \(2, 4\)"):
        plot_alignment(w, list("abcd"), ["X", "Y"])
