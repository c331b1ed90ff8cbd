"""The schematic diagrams show what they say, keep their labels apart and inside the page,
and reject arguments they cannot draw."""

import matplotlib

matplotlib.use("Agg")

from itertools import combinations  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Circle, FancyBboxPatch  # noqa: E402

from lstm_lab.diagrams import (  # noqa: E402
    GRU_DIAGRAM_FORMS,
    LSTM_DIAGRAM_VARIANTS,
    add_arrow,
    add_box,
    add_line,
    add_op,
    draw_gate,
    draw_gru_cell,
    draw_lstm_cell,
    draw_unrolled_rnn,
)

TIMES, ONE_MINUS = r"$\times$", r"$1-$"

FIGURES = {
    **{f"rnn-{n}": (draw_unrolled_rnn, dict(steps=n)) for n in (2, 3, 4, 5, 8)},
    **{f"lstm-{v}": (draw_lstm_cell, dict(variant=v)) for v in LSTM_DIAGRAM_VARIANTS},
    **{f"gru-{f}": (draw_gru_cell, dict(form=f)) for f in GRU_DIAGRAM_FORMS},
    "gate": (draw_gate, {}),
    "gate-words": (draw_gate, dict(value_label="memory", gate_label="$f_t$", input_label="pre-activation")),
}


@pytest.fixture(autouse=True)
def close_new_figures():
    """Close every figure a test opened, also when it fails."""
    before = set(plt.get_fignums())
    yield
    for num in set(plt.get_fignums()) - before:
        plt.close(num)


# --- helpers -------------------------------------------------------------------------------


def texts(fig):
    """Every non-empty Text artist of the figure (labels, operator symbols, titles)."""
    found = list(fig.texts)
    for ax in fig.axes:
        found += [*ax.texts, ax.title, ax._left_title, ax._right_title]
    return [t for t in found if t.get_visible() and t.get_text().strip()]


def labels(fig):
    return [t.get_text() for t in texts(fig)]


def extents(fig):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    return [(t.get_text(), t.get_window_extent(renderer)) for t in texts(fig)]


def overlapping_texts(fig):
    """Pairs of texts whose bounding boxes share an area (touching edges are fine)."""
    pairs = []
    for (a, box_a), (b, box_b) in combinations(extents(fig), 2):
        dx = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
        dy = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
        if dx > 0 and dy > 0:
            pairs.append((a, b))
    return pairs


def texts_outside(fig):
    page = fig.bbox
    return [
        text
        for text, box in extents(fig)
        if box.x0 < page.x0 or box.y0 < page.y0 or box.x1 > page.x1 or box.y1 > page.y1
    ]


def nodes(fig):
    """The boxes, operator circles and junction dots (not the cell's background)."""
    return [p for ax in fig.axes for p in ax.patches if isinstance(p, (Circle, FancyBboxPatch)) and p.zorder >= 3]


def texts_on_foreign_nodes(fig):
    """Texts that cover a node other than the one they label (a node's label sits at its centre)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    hits = []
    for t in texts(fig):
        box = t.get_window_extent(renderer)
        anchor = t.get_transform().transform(t.get_position())
        for node in nodes(fig):
            node_box = node.get_window_extent(renderer)
            if node_box.contains(*anchor):
                continue  # the node's own label
            dx = min(box.x1, node_box.x1) - max(box.x0, node_box.x0)
            dy = min(box.y1, node_box.y1) - max(box.y0, node_box.y0)
            if dx > 0.5 and dy > 0.5:
                hits.append(t.get_text())
    return hits


def dashed_groups(fig):
    """{gid: [artists]} of every dashed line or arrow (an arrow with bends is two artists)."""
    groups = {}
    for ax in fig.axes:
        for artist in [*ax.lines, *ax.patches]:
            if artist.get_linestyle() in ("--", "dashed"):
                groups.setdefault(artist.get_gid(), []).append(artist)
    return groups


def start_x(artists):
    """Where a dashed group begins: its line's first point, or its lone arrow's first vertex."""
    first = artists[0]  # dashed_groups lists lines before patches
    return first.get_xdata()[0] if hasattr(first, "get_xdata") else first.get_path().vertices[0, 0]


def patch_by_gid(fig, gid):
    found = [p for ax in fig.axes for p in ax.patches if p.get_gid() == gid]
    assert len(found) <= 1, f"several patches with gid {gid!r}"
    return found[0] if found else None


def centre_x(patch):
    if isinstance(patch, Circle):
        return patch.center[0]
    return patch.get_x() + patch.get_width() / 2


def title(fig):
    return next(t.get_text() for t in texts(fig) if t.get_gid() == "title")


# --- the checks catch what they are meant to catch ------------------------------------------


def test_layout_checks_catch_overlap_and_overflow():
    fig = plt.figure(figsize=(4, 2))
    fig.text(0.5, 0.5, "$x_t$")
    assert overlapping_texts(fig) == []
    fig.text(0.51, 0.51, "$h_t$")
    assert overlapping_texts(fig) == [("$x_t$", "$h_t$")]
    assert texts_outside(fig) == []
    fig.text(0.98, 0.5, "runs off the page")
    assert texts_outside(fig) == ["runs off the page"]


def test_node_check_catches_a_label_on_a_box():
    fig = plt.figure(figsize=(4, 2))
    ax = fig.add_axes((0, 0, 1, 1), xlim=(0, 4), ylim=(0, 2))
    add_box(ax, (2, 1), "A")
    ax.text(2.4, 1.5, "$h_t$", ha="right", va="bottom")  # beside the box, above it
    assert texts_on_foreign_nodes(fig) == []
    ax.text(2.4, 1.0, "$x_t$", ha="right", va="center")  # anchored beside it, drawn over it
    assert texts_on_foreign_nodes(fig) == ["$x_t$"]
    plt.close(fig)


def test_arrow_stops_at_the_edge_of_its_end_node():
    fig = plt.figure(figsize=(4, 2))
    ax = fig.add_axes((0, 0, 1, 1), xlim=(0, 4), ylim=(0, 2))
    op = add_op(ax, (3, 1), "+", radius=0.25)
    (arrow,) = add_arrow(ax, (0.5, 1), (3, 1), end=op)
    fig.canvas.draw()
    tip = arrow.get_path().vertices[:, 0].max()  # the edge of the circle is at x = 2.75
    assert 2.7 < tip <= 2.75  # (the head is drawn a stroke's width short of the edge)
    bent = add_arrow(ax, (0.5, 0.2), (1.5, 0.2), (1.5, 1.8))
    assert len(bent) == 2  # a line for the bend, an arrow for the last segment
    plt.close(fig)


@pytest.mark.parametrize("draw", [add_line, add_arrow])
def test_lines_need_two_points(draw):
    fig = plt.figure()
    with pytest.raises(ValueError, match="points"):
        draw(fig.add_subplot(), (0, 0))
    plt.close(fig)


# --- every figure ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", FIGURES)
def test_figure_is_a_page_wide_figure_with_readable_text(name):
    draw, kwargs = FIGURES[name]
    fig = draw(**kwargs)
    assert isinstance(fig, Figure)
    width, _ = fig.get_size_inches()
    assert 6 <= width <= 9
    assert min(t.get_fontsize() for t in texts(fig)) >= 9
    assert title(fig)
    plt.close(fig)


@pytest.mark.parametrize("name", FIGURES)
def test_no_text_overlaps_other_text(name):
    draw, kwargs = FIGURES[name]
    fig = draw(**kwargs)
    assert overlapping_texts(fig) == []
    plt.close(fig)


@pytest.mark.parametrize("name", FIGURES)
def test_all_text_lies_inside_the_figure(name):
    draw, kwargs = FIGURES[name]
    fig = draw(**kwargs)
    assert texts_outside(fig) == []
    plt.close(fig)


@pytest.mark.parametrize("name", FIGURES)
def test_no_text_covers_a_box_or_operator_it_does_not_label(name):
    draw, kwargs = FIGURES[name]
    fig = draw(**kwargs)
    assert texts_on_foreign_nodes(fig) == []
    plt.close(fig)


@pytest.mark.parametrize("name", ["rnn-4", "lstm-peephole", "gru-cho", "gate"])
def test_drawing_is_deterministic(name):
    draw, kwargs = FIGURES[name]
    images = []
    for _ in range(2):
        fig = draw(**kwargs)
        fig.canvas.draw()
        images.append(np.asarray(fig.canvas.buffer_rgba()).copy())
        plt.close(fig)
    assert np.array_equal(*images)


# --- the unrolled RNN --------------------------------------------------------------------------


@pytest.mark.parametrize("steps", [2, 3, 4, 8])
def test_unrolled_rnn_has_one_copy_per_step(steps):
    fig = draw_unrolled_rnn(steps)
    found = labels(fig)
    assert found.count("A") == steps + 1  # the folded block and one copy per step
    for t in range(1, steps + 1):
        assert found.count(f"$x_{{{t}}}$") == 1
        assert found.count(f"$h_{{{t}}}$") == 1
    assert f"$x_{{{steps + 1}}}$" not in found
    for label in ("$x_t$", "$h_t$", "$h_0$", "$=$", r"$\cdots$"):
        assert label in found
    assert f"{steps} steps" in title(fig)
    plt.close(fig)


@pytest.mark.parametrize("steps", [1, 9, 0, -3])
def test_unrolled_rnn_rejects_bad_steps(steps):
    with pytest.raises(ValueError, match=r"steps must be an int in \[2, 8\], got"):
        draw_unrolled_rnn(steps)


@pytest.mark.parametrize("steps", [2.0, 4.5, "4", None, True])
def test_unrolled_rnn_rejects_steps_that_are_not_ints(steps):
    with pytest.raises(TypeError, match="steps must be an int, got"):
        draw_unrolled_rnn(steps)


# --- the LSTM cell -------------------------------------------------------------------------------

LSTM_COMMON = ("$c_{t-1}$", "$c_t$", "$h_{t-1}$", "$h_t$", "$x_t$", "$i_t$", "$o_t$", r"$g_t = \tilde c_t$", "+")
PEEPHOLES = {"vanilla": set(), "peephole": {"f", "i", "o"}, "CIFG": {"i", "o"}, "NFG": {"i", "o"}}


@pytest.mark.parametrize("variant", LSTM_DIAGRAM_VARIANTS)
def test_lstm_cell_shows_the_gates_and_states(variant):
    fig = draw_lstm_cell(variant)
    found = labels(fig)
    for label in LSTM_COMMON:
        assert label in found
    assert found.count("tanh") == 2  # the candidate layer g and the tanh on c_t
    assert variant.lower() in title(fig).lower()
    plt.close(fig)


@pytest.mark.parametrize("variant", LSTM_DIAGRAM_VARIANTS)
def test_lstm_peephole_lines(variant):
    fig = draw_lstm_cell(variant)
    groups = dashed_groups(fig)
    assert set(groups) == {f"peephole-{k}" for k in PEEPHOLES[variant]}
    if groups:  # c_{t-1} (left of the +) feeds f and i; c_t (right of the +) feeds o
        x_write = centre_x(patch_by_gid(fig, "cell-write"))
        for gid, artists in groups.items():
            x_tap = start_x(artists)
            assert (x_tap > x_write) == (gid == "peephole-o"), gid
    plt.close(fig)


def test_lstm_vanilla_has_three_sigmoid_gates_and_a_forget_product():
    fig = draw_lstm_cell("vanilla")
    found = labels(fig)
    assert found.count(r"$\sigma$") == 3
    assert "$f_t$" in found
    assert found.count(TIMES) == 3  # forget, i ⊙ g, o ⊙ tanh(c)
    assert patch_by_gid(fig, "cell-forget") is not None
    assert ONE_MINUS not in found
    plt.close(fig)


def test_lstm_nfg_has_no_forget_gate():
    fig = draw_lstm_cell("NFG")
    found = labels(fig)
    assert not any("f_t" in label for label in found)
    assert found.count(r"$\sigma$") == 2
    assert found.count(TIMES) == 2  # the × on the cell line is gone
    assert patch_by_gid(fig, "cell-forget") is None
    assert "forget" not in found
    plt.close(fig)


def test_lstm_cifg_derives_the_forget_gate_from_the_input_gate():
    fig = draw_lstm_cell("CIFG")
    found = labels(fig)
    assert found.count(ONE_MINUS) == 1
    assert patch_by_gid(fig, "one-minus") is not None
    assert "$f_t = 1 - i_t$" in found
    assert found.count(r"$\sigma$") == 2  # no forget-gate layer of its own
    assert patch_by_gid(fig, "cell-forget") is not None  # but the cell still forgets
    plt.close(fig)


def test_lstm_variant_is_case_insensitive():
    a, b = draw_lstm_cell("cifg"), draw_lstm_cell(" CIFG ")
    assert labels(a) == labels(b) == labels(draw_lstm_cell("CIFG"))


@pytest.mark.parametrize("variant", ["LSTM", "", "NIG", "FGR", None, 3])
def test_lstm_cell_rejects_unknown_variants(variant):
    with pytest.raises(ValueError, match="variant must be one of 'vanilla', 'peephole', 'CIFG', 'NFG'"):
        draw_lstm_cell(variant)


# --- the GRU cell --------------------------------------------------------------------------------


@pytest.mark.parametrize("form", GRU_DIAGRAM_FORMS)
def test_gru_cell_shows_gates_candidate_and_interpolation(form):
    fig = draw_gru_cell(form)
    found = labels(fig)
    for label in ("$h_{t-1}$", "$h_t$", "$x_t$", "$r_t$", "$z_t$", "$n_t$", "$1 - z_t$", "$W_{hn}$", "tanh"):
        assert label in found
    assert found.count(ONE_MINUS) == 1
    assert found.count(TIMES) == 3  # reset, z ⊙ h_{t-1}, (1 - z) ⊙ n
    assert found.count("+") == 1
    assert found.count(r"$\sigma$") == 2
    assert f'form="{form}"' in title(fig)
    plt.close(fig)


@pytest.mark.parametrize("form, reset_after_matrix", [("torch", True), ("cho", False)])
def test_gru_form_sets_the_order_of_matrix_and_reset(form, reset_after_matrix):
    fig = draw_gru_cell(form)
    x_matrix = centre_x(patch_by_gid(fig, "W_hn"))
    x_reset = centre_x(patch_by_gid(fig, "reset-product"))
    assert (x_reset > x_matrix) == reset_after_matrix  # the reset row runs left to right
    heading = title(fig)
    assert ("AFTER" in heading) == reset_after_matrix
    assert ("BEFORE" in heading) == (not reset_after_matrix)
    assert (r"r_t \odot (h_{t-1} W_{hn} + b_{hn})" in heading) == reset_after_matrix
    assert (r"(r_t \odot h_{t-1}) W_{hn}" in heading) == (not reset_after_matrix)
    plt.close(fig)


@pytest.mark.parametrize("form", ["Torch", "cudnn", ""])
def test_gru_cell_rejects_unknown_forms(form):
    with pytest.raises(ValueError, match="form must be one of 'torch', 'cho'"):
        draw_gru_cell(form)


def test_gru_cell_rejects_a_form_that_is_no_str():
    with pytest.raises(TypeError, match="form must be a str, one of 'torch', 'cho'"):
        draw_gru_cell(None)


# --- one gate ------------------------------------------------------------------------------------


def test_gate_labels_value_gate_and_product():
    fig = draw_gate()
    found = labels(fig)
    for label in ("$v$", r"$\sigma(a)$", "$a$", r"$\sigma$", TIMES, r"$\sigma(a) \odot v$"):
        assert label in found
    plt.close(fig)


def test_gate_accepts_words_and_formulas():
    fig = draw_gate("memory", "$f_t$", input_label="pre-activation")
    found = labels(fig)
    assert "memory" in found and "$f_t$" in found and "pre-activation" in found
    assert r"$f_t$ $\odot$ memory" in found
    plt.close(fig)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(value_label=""), "value_label"),
        (dict(value_label=3), "value_label"),
        (dict(gate_label="  "), "gate_label"),
        (dict(gate_label=r"$\notacommand$"), "gate_label"),
        (dict(input_label=None), "input_label"),
    ],
)
def test_gate_rejects_bad_labels(kwargs, name):
    with pytest.raises(ValueError, match=name):
        draw_gate(**kwargs)
