"""Schematic diagrams of recurrent cells, drawn by our own code with matplotlib patches.

Every public ``draw_*`` function returns a new :class:`matplotlib.figure.Figure`, 6.5 to
8.5 inches wide (a book page), and draws the same picture every time it is called.

Coordinates are in inches: each figure has one axes that fills it, with limits equal to
the figure size and an equal aspect, so a circle of radius 0.2 is 0.4 inches across on
the page. Lines and arrows are drawn from node centre to node centre *under* the nodes
(``zorder``), so only arrowheads need to stop at a node's edge (``end=`` below).

Building blocks, usable on any axes set up this way:

- :func:`add_box`: a rounded box with a label (a layer: sigma, tanh, a matrix);
- :func:`add_op`: a circle holding a pointwise operator (``×``, ``+``, ``1-``, ``tanh``);
- :func:`add_arrow`: a polyline through several points, with an arrowhead at the end;
- :func:`add_line`: the same without an arrowhead;
- :func:`add_split`: the dot that marks where a line splits (a crossing has no dot).

Colours come from the Okabe-Ito palette, which stays distinguishable under the common
forms of colour blindness: sigmoid gates sky blue, tanh layers orange, pointwise operators
white, the LSTM's cell-state line (and the GRU's state line) thick and nearly black,
peephole connections dashed reddish purple.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.cbook import is_math_text
from matplotlib.lines import Line2D
from matplotlib.mathtext import MathTextParser
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

from lstm_lab.checks import check_choice, check_int
from lstm_lab.variants import GRU_FORMS, lstm_spec

__all__ = [
    "LSTM_DIAGRAM_VARIANTS",
    "GRU_DIAGRAM_FORMS",
    "add_arrow",
    "add_box",
    "add_line",
    "add_op",
    "add_split",
    "draw_gate",
    "draw_gru_cell",
    "draw_lstm_cell",
    "draw_unrolled_rnn",
]

# Okabe-Ito colours (and light tints of them for fills behind black text).
GATE_COLOR = "#56B4E9"  # sky blue: sigmoid gates
TANH_COLOR = "#E69F00"  # orange: tanh layers and the tanh on c_t
BLOCK_COLOR = "#9AD8C4"  # light bluish green: the plain RNN block
MATRIX_COLOR = "#DDDDDD"  # light grey: a bare matrix product (the GRU's W_hn)
PEEPHOLE_COLOR = "#CC79A7"  # reddish purple: peephole connections
STATE_COLOR = "#1A1A1A"  # the cell-state line
WIRE_COLOR = "#4D4D4D"  # every other connection
EDGE_COLOR = "#333333"
CELL_COLOR = "#F3F3F3"  # the background of one cell
NOTE_COLOR = "#555555"  # small explanatory words

LABEL_SIZE = 12
NOTE_SIZE = 9
TITLE_SIZE = 12

TIMES = r"$\times$"
ONE_MINUS = r"$1-$"

LSTM_DIAGRAM_VARIANTS = ("vanilla", "peephole", "CIFG", "NFG")
GRU_DIAGRAM_FORMS = GRU_FORMS  # both forms have a diagram


# ---------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------


def _canvas(width: float, height: float):
    """A figure of ``width`` x ``height`` inches with one frameless axes in inch units."""
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(0.0, width)
    ax.set_ylim(0.0, height)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig, ax


def add_box(ax, center, label, *, width=0.6, height=0.5, color=GATE_COLOR, fontsize=LABEL_SIZE, gid=None):
    """A rounded box of ``width`` x ``height`` centred on ``center`` with ``label`` inside.

    Returns the patch, so that an arrow can stop at its edge (``add_arrow(..., end=box)``).
    """
    x, y = center
    box = FancyBboxPatch(
        (x - width / 2, y - height / 2),
        width,
        height,
        boxstyle="round,pad=0,rounding_size=0.08",
        facecolor=color,
        edgecolor=EDGE_COLOR,
        linewidth=1.2,
        zorder=3,
        gid=gid,
    )
    ax.add_patch(box)
    ax.text(x, y, label, ha="center", va="center", fontsize=fontsize, zorder=4)
    return box


def add_op(ax, center, symbol, *, radius=0.2, color="white", fontsize=13, gid=None):
    """A circle of ``radius`` centred on ``center`` holding a pointwise operator ``symbol``.

    Returns the patch (see :func:`add_box`).
    """
    circle = Circle(center, radius, facecolor=color, edgecolor=EDGE_COLOR, linewidth=1.2, zorder=3, gid=gid)
    ax.add_patch(circle)
    ax.text(*center, symbol, ha="center", va="center", fontsize=fontsize, zorder=4)
    return circle


def add_line(ax, *points, color=WIRE_COLOR, lw=1.4, linestyle="-", gid=None):
    """A polyline through ``points`` (at least two ``(x, y)`` pairs), without an arrowhead."""
    if len(points) < 2:
        raise ValueError(f"points must hold at least two (x, y) pairs, got {len(points)}")
    xs, ys = zip(*points)
    line = Line2D(xs, ys, color=color, lw=lw, linestyle=linestyle, solid_capstyle="projecting", zorder=1, gid=gid)
    line.set_dash_capstyle("butt")
    ax.add_line(line)
    return line


def add_arrow(ax, *points, end=None, color=WIRE_COLOR, lw=1.4, linestyle="-", gid=None):
    """A polyline through ``points`` with an arrowhead at the last point.

    ``end``: a patch (from :func:`add_box` or :func:`add_op`); the arrowhead then stops at
    its edge, so the last point may simply be the patch's centre.
    Returns the list of artists drawn (a line for the bends, then the arrow).
    """
    if len(points) < 2:
        raise ValueError(f"points must hold at least two (x, y) pairs, got {len(points)}")
    artists = []
    if len(points) > 2:
        artists.append(add_line(ax, *points[:-1], color=color, lw=lw, linestyle=linestyle, gid=gid))
    arrow = FancyArrowPatch(
        points[-2],
        points[-1],
        arrowstyle="-|>,head_length=0.5,head_width=0.25",
        mutation_scale=14,
        patchB=end,
        shrinkA=0,
        shrinkB=0,
        color=color,
        lw=lw,
        linestyle=linestyle,
        zorder=2,
        gid=gid,
    )
    ax.add_patch(arrow)
    artists.append(arrow)
    return artists


def add_split(ax, point, *, color=WIRE_COLOR, radius=0.045):
    """The dot that marks a junction: where one line splits into two (or two join)."""
    dot = Circle(point, radius, facecolor=color, edgecolor="none", zorder=3)
    ax.add_patch(dot)
    return dot


def _label(ax, xy, text, *, ha="center", va="center", fontsize=LABEL_SIZE, color="black", **kwargs):
    return ax.text(*xy, text, ha=ha, va=va, fontsize=fontsize, color=color, zorder=5, **kwargs)


def _note(ax, xy, text, **kwargs):
    """A small grey explanatory word (``forget``, ``write``...)."""
    return _label(ax, xy, text, fontsize=NOTE_SIZE, color=NOTE_COLOR, style="italic", **kwargs)


def _title(ax, fig, text):
    width, height = fig.get_size_inches()
    return _label(ax, (width / 2, height - 0.12), text, va="top", fontsize=TITLE_SIZE, gid="title")


def _cell_background(ax, x0, y0, x1, y1):
    """The light rounded rectangle that groups the parts of one cell."""
    ax.add_patch(
        FancyBboxPatch(
            (x0, y0),
            x1 - x0,
            y1 - y0,
            boxstyle="round,pad=0,rounding_size=0.25",
            facecolor=CELL_COLOR,
            edgecolor="#BBBBBB",
            linewidth=1.0,
            zorder=0,
        )
    )


def _is_one_formula(label: str) -> bool:
    return len(label) >= 2 and label.startswith("$") and label.endswith("$") and label.count("$") == 2


def _product_label(left: str, right: str) -> str:
    """``"$a$", "$v$"`` -> ``"$a \\odot v$"``; other labels are joined by a mathtext ⊙."""
    if _is_one_formula(left) and _is_one_formula(right):
        return "$" + left[1:-1] + r" \odot " + right[1:-1] + "$"
    return left + r" $\odot$ " + right


def _check_label(name: str, label) -> None:
    """A label must be a non-empty str, and valid mathtext where it holds a formula."""
    if not isinstance(label, str) or not label.strip():
        raise ValueError(f"{name} must be a non-empty str, got {label!r}")
    if is_math_text(label):
        try:
            MathTextParser("path").parse(label)
        except ValueError as err:
            raise ValueError(f"{name} is not valid mathtext: {label!r}") from err


# ---------------------------------------------------------------------------------------
# 1. The RNN, folded and unrolled
# ---------------------------------------------------------------------------------------


def draw_unrolled_rnn(steps: int = 4):
    """An RNN block with its loop (left) equals the same block unrolled over ``steps`` steps (right).

    Left: block A reads ``x_t`` from below and emits ``h_t`` above; a loop carries ``h_t``
    back into A for the next step. Right: ``steps`` copies of A (the same weights), copy
    ``t`` reading ``x_t`` and passing ``h_t`` to copy ``t + 1``; ``h_0`` enters the first
    copy and a trailing arrow with "..." says that the sequence may go on.

    ``steps`` must be an int in [2, 8]. Returns the :class:`matplotlib.figure.Figure`.
    """
    steps = check_int(steps, "steps", minimum=2, maximum=8)
    fig_width = 8.5
    fig, ax = _canvas(fig_width, 3.2)
    y_in, y_box, y_out = 0.35, 1.4, 2.5  # rows: the x labels, the blocks, the h labels
    box_h = 0.6

    # Horizontal layout from the left end of the drawing (x = 0), centred on the page at the end.
    # The copies share what is left after 3.7 inches for the loop, "=", h_0 and the trailing arrow.
    spacing = min(1.2, (fig_width - 0.3 - 3.7) / (steps - 0.5))
    width = min(0.7, 0.5 * spacing)
    x_loop, x_a, x_eq, x_h0 = 0.0, 0.65, 1.6, 2.0
    centres = [x_h0 + 0.8 + width / 2 + k * spacing for k in range(steps)]
    x_end = centres[-1] + width / 2 + 0.55  # where the trailing arrow ends, before the "..."
    shift = (fig_width - (x_end + 0.35)) / 2
    x_loop, x_a, x_eq, x_h0, x_end = (x + shift for x in (x_loop, x_a, x_eq, x_h0, x_end))
    centres = [x + shift for x in centres]

    # Left: the folded RNN, one block with a loop.
    block = add_box(ax, (x_a, y_box), "A", width=0.7, height=box_h, color=BLOCK_COLOR)
    _label(ax, (x_a, y_in), "$x_t$", va="top")
    add_arrow(ax, (x_a, y_in + 0.05), (x_a, y_box), end=block)
    _label(ax, (x_a, y_out), "$h_t$", va="bottom")
    add_arrow(ax, (x_a, y_box), (x_a, y_out - 0.05))
    y_loop = y_box + 0.62
    add_split(ax, (x_a, y_loop))
    add_arrow(ax, (x_a, y_loop), (x_loop, y_loop), (x_loop, y_box), (x_a, y_box), end=block)

    _label(ax, (x_eq, y_box), "$=$", fontsize=22)

    # Right: the same block, once per time step, h_t passed to the right.
    size = LABEL_SIZE if steps <= 6 else LABEL_SIZE - 1
    blocks = [
        add_box(ax, (x, y_box), "A", width=width, height=box_h, color=BLOCK_COLOR, fontsize=size) for x in centres
    ]
    _label(ax, (x_h0, y_box), "$h_0$", ha="left", fontsize=size)
    add_arrow(ax, (x_h0 + 0.35, y_box), (centres[0], y_box), end=blocks[0])
    for t, (x, blk) in enumerate(zip(centres, blocks), start=1):
        _label(ax, (x, y_in), f"$x_{{{t}}}$", va="top", fontsize=size)
        add_arrow(ax, (x, y_in + 0.05), (x, y_box), end=blk)
        _label(ax, (x, y_out), f"$h_{{{t}}}$", va="bottom", fontsize=size)
        add_arrow(ax, (x, y_box), (x, y_out - 0.05))
    for x, blk in zip(centres[:-1], blocks[1:]):
        add_arrow(ax, (x, y_box), (x + spacing, y_box), end=blk)
    add_arrow(ax, (centres[-1], y_box), (x_end, y_box))
    _label(ax, (x_end + 0.08, y_box), r"$\cdots$", ha="left", fontsize=size)

    _title(ax, fig, f"One RNN block with a loop is the same block applied at every step ({steps} steps shown)")
    return fig


# ---------------------------------------------------------------------------------------
# 2. The LSTM cell and three of its variants
# ---------------------------------------------------------------------------------------

_LSTM_TITLES = {
    "vanilla": "LSTM cell (vanilla, as torch.nn.LSTM)",
    "peephole": "Peephole LSTM: the gates also see the cell state (dashed)",
    "CIFG": "CIFG: coupled input and forget gates, $f_t = 1 - i_t$ (with peepholes)",
    "NFG": "NFG: no forget gate, the cell only adds, $c_t = c_{t-1} + i_t \\odot g_t$ (with peepholes)",
}


def draw_lstm_cell(variant: str = "vanilla"):
    """One LSTM cell: the cell-state line on top, four layers below, the output on the right.

    The cell state runs from ``c_{t-1}`` (left) to ``c_t`` (right) through a × (forget:
    ``f_t ⊙ c_{t-1}``) and a + (write: ``+ i_t ⊙ g_t``). Below it the boxes for ``f_t``,
    ``i_t`` (sigmoid), ``g_t = c~_t`` (tanh) and ``o_t`` (sigmoid) all read the concatenated
    ``[h_{t-1}, x_t]``. On the right, ``tanh(c_t)`` times ``o_t`` gives ``h_t``.

    ``variant`` (case-insensitive), as defined in :mod:`lstm_lab.variants`:

    - ``"vanilla"``: PyTorch's LSTM, no peepholes;
    - ``"peephole"``: dashed peephole lines, ``c_{t-1}`` into f and i, ``c_t`` into o;
    - ``"CIFG"``: no forget-gate layer; a "1−" node makes ``f_t = 1 - i_t`` from the input gate;
    - ``"NFG"``: no forget gate (f = 1): the × on the cell line is gone and the cell only adds.

    CIFG and NFG are peephole LSTMs in :mod:`lstm_lab.variants` (as in Greff et al. 2017),
    so their diagrams show the peepholes of the gates they keep (i and o).
    Returns the :class:`matplotlib.figure.Figure`.
    """
    lookup = {v.lower(): v for v in LSTM_DIAGRAM_VARIANTS}
    name = lookup.get(variant.strip().lower()) if isinstance(variant, str) else None
    if name is None:
        raise ValueError(f"variant must be one of {', '.join(map(repr, LSTM_DIAGRAM_VARIANTS))}; got {variant!r}")
    spec = lstm_spec(name)
    has_f_box = spec.forget_gate and not spec.coupled  # a forget-gate layer of its own
    has_forget = spec.forget_gate  # a × on the cell line (CIFG keeps it, fed by 1 - i)

    fig, ax = _canvas(8.5, 5.2)
    y_c, y_prod, y_box, y_bus = 4.3, 3.2, 2.0, 1.3  # cell line, i*g product, layers, [h, x]
    x_xt, x_peep, x_f, x_i, x_g, x_o, x_out = 1.25, 1.6, 2.3, 3.4, 4.5, 5.6, 6.6
    x_right = 8.05
    _cell_background(ax, 0.9, 0.7, 7.6, 4.72)

    # The cell-state line: c_{t-1} -> (× f_t) -> (+ i_t ⊙ g_t) -> c_t.
    _label(ax, (0.1, y_c), "$c_{t-1}$", ha="left")
    plus = add_op(ax, (x_g, y_c), "+", gid="cell-write")
    if has_forget:
        forget = add_op(ax, (x_f, y_c), TIMES, gid="cell-forget")
        add_arrow(ax, (0.65, y_c), (x_f, y_c), end=forget, color=STATE_COLOR, lw=2.8)
        add_arrow(ax, (x_f, y_c), (x_g, y_c), end=plus, color=STATE_COLOR, lw=2.8)
        _label(ax, ((x_f + x_g) / 2, y_c + 0.1), r"$f_t \odot c_{t-1}$", va="bottom", fontsize=11)
        _note(ax, (x_f - 0.25, y_c + 0.12), "forget", ha="right", va="bottom")
    else:
        add_arrow(ax, (0.65, y_c), (x_g, y_c), end=plus, color=STATE_COLOR, lw=2.8)
    _note(ax, (x_g + 0.25, y_c + 0.12), "write", ha="left", va="bottom")
    add_arrow(ax, (x_g, y_c), (x_right, y_c), color=STATE_COLOR, lw=2.8)
    _label(ax, (x_right + 0.08, y_c), "$c_t$", ha="left")

    # The inputs: h_{t-1} from the left and x_t from below join into one bus [h_{t-1}, x_t].
    _label(ax, (0.1, y_bus), "$h_{t-1}$", ha="left")
    _label(ax, (x_xt, 0.08), "$x_t$", va="bottom")
    add_line(ax, (0.65, y_bus), (x_o, y_bus))
    add_line(ax, (x_xt, 0.4), (x_xt, y_bus))
    add_split(ax, (x_xt, y_bus))
    _label(ax, (x_xt + 0.2, y_bus - 0.1), "$[h_{t-1}, x_t]$", ha="left", va="top", fontsize=11)

    # The four layers, each fed from the bus.
    layers = {}
    if has_f_box:
        layers["f"] = add_box(ax, (x_f, y_box), r"$\sigma$", color=GATE_COLOR)
    layers["i"] = add_box(ax, (x_i, y_box), r"$\sigma$", color=GATE_COLOR)
    layers["g"] = add_box(ax, (x_g, y_box), "tanh", color=TANH_COLOR, fontsize=11)
    layers["o"] = add_box(ax, (x_o, y_box), r"$\sigma$", color=GATE_COLOR)
    x_of = {"f": x_f, "i": x_i, "g": x_g, "o": x_o}
    for k, box in layers.items():
        x = x_of[k]
        if k != "o":  # the bus ends at the o layer: a corner, not a split
            add_split(ax, (x, y_bus))
        add_arrow(ax, (x, y_bus), (x, y_box), end=box)

    # Forget gate: f_t up into the × on the cell line (CIFG: f_t = 1 - i_t from a "1−" node).
    if has_f_box:
        add_arrow(ax, (x_f, y_box), (x_f, y_c), end=forget)
        _label(ax, (x_f + 0.08, 3.45), "$f_t$", ha="left")
    elif spec.coupled:
        y_one = 2.65
        one_minus = add_op(ax, (x_f, y_one), ONE_MINUS, radius=0.22, fontsize=12, gid="one-minus")
        add_split(ax, (x_i, y_one))
        add_arrow(ax, (x_i, y_one), (x_f, y_one), end=one_minus)
        add_arrow(ax, (x_f, y_one), (x_f, y_c), end=forget)
        _label(ax, (x_f + 0.08, 3.45), "$f_t = 1 - i_t$", ha="left", fontsize=11)

    # Input gate times candidate: i_t ⊙ g_t, written into the cell by the +.
    write = add_op(ax, (x_g, y_prod), TIMES)
    add_arrow(ax, (x_i, y_box), (x_i, y_prod), (x_g, y_prod), end=write)
    add_arrow(ax, (x_g, y_box), (x_g, y_prod), end=write)
    add_arrow(ax, (x_g, y_prod), (x_g, y_c), end=plus)
    _label(ax, ((x_i + x_g) / 2, y_prod + 0.08), "$i_t$", va="bottom")
    _label(ax, (x_g - 0.08, 2.62), r"$g_t = \tilde c_t$", ha="right", fontsize=11)
    _label(ax, (x_g - 0.08, (y_prod + y_c) / 2), r"$i_t \odot g_t$", ha="right", fontsize=11)

    # Output: h_t = o_t ⊙ tanh(c_t).
    add_split(ax, (x_out, y_c))
    squash = add_op(ax, (x_out, y_prod), "tanh", radius=0.25, color=TANH_COLOR, fontsize=9)
    read = add_op(ax, (x_out, y_box), TIMES)
    add_arrow(ax, (x_out, y_c), (x_out, y_prod), end=squash)
    add_arrow(ax, (x_out, y_prod), (x_out, y_box), end=read)
    add_arrow(ax, (x_o, y_box), (x_out, y_box), end=read)
    _label(ax, ((x_o + x_out) / 2 + 0.05, y_box + 0.08), "$o_t$", va="bottom")
    _note(ax, (x_out + 0.28, y_prod - 0.55), "read", ha="left", va="center")
    add_arrow(ax, (x_out, y_box), (x_right, y_box))
    _label(ax, (x_right + 0.08, y_box), "$h_t$", ha="left")

    # Peepholes (dashed): c_{t-1} into the f and i layers, c_t into the o layer.
    peep = dict(color=PEEPHOLE_COLOR, lw=1.3, linestyle="--")
    if spec.peepholes:
        add_split(ax, (x_peep, y_c), color=PEEPHOLE_COLOR)
        if has_f_box:
            add_arrow(ax, (x_peep, y_c), (x_peep, y_box), (x_f, y_box), end=layers["f"], gid="peephole-f", **peep)
            y_hop = 2.75  # the i peephole crosses the f_t line (no dot: not connected)
            points = [(x_peep, y_c), (x_peep, y_hop), (x_i - 0.55, y_hop), (x_i - 0.55, y_box), (x_i, y_box)]
        else:
            points = [(x_peep, y_c), (x_peep, y_box), (x_i, y_box)]
        add_arrow(ax, *points, end=layers["i"], gid="peephole-i", **peep)
        add_split(ax, (x_o, y_c), color=PEEPHOLE_COLOR)  # right of the +: this is c_t
        add_arrow(ax, (x_o, y_c), (x_o, y_box), end=layers["o"], gid="peephole-o", **peep)

    _title(ax, fig, _LSTM_TITLES[name])
    return fig


# ---------------------------------------------------------------------------------------
# 3. The GRU cell in its two forms
# ---------------------------------------------------------------------------------------

_GRU_TITLES = {
    "torch": (
        'GRU cell, form="torch" (as torch.nn.GRU): reset AFTER the matrix\n'
        r"$n_t = \tanh(x_t W_{xn} + b_n + r_t \odot (h_{t-1} W_{hn} + b_{hn}))$"
    ),
    "cho": (
        'GRU cell, form="cho" (Cho et al. 2014): reset BEFORE the matrix\n'
        r"$n_t = \tanh(x_t W_{xn} + (r_t \odot h_{t-1}) W_{hn} + b_n)$"
    ),
}


def draw_gru_cell(form: str = "torch"):
    """One GRU cell with reset gate r, update gate z and candidate n.

    The state line runs along the top from ``h_{t-1}`` to ``h_t`` through a × (``z_t ⊙
    h_{t-1}``) and a + that adds ``(1 - z_t) ⊙ n_t`` (the "1−" node and the second ×):
    ``h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}``. The gates r and z read ``[h_{t-1}, x_t]``;
    the candidate n reads ``x_t`` and, along the reset row, ``h_{t-1}`` through the matrix
    box ``W_hn`` and the reset ×.

    ``form``: ``"torch"`` (the × comes after ``W_hn``: ``r_t ⊙ (h_{t-1} W_hn + b_hn)``, as
    ``torch.nn.GRU``) or ``"cho"`` (the × comes before: ``(r_t ⊙ h_{t-1}) W_hn``). The title
    says which. Returns the :class:`matplotlib.figure.Figure`.
    """
    check_choice(form, GRU_DIAGRAM_FORMS, "form")
    fig, ax = _canvas(8.5, 5.7)
    y_top, y_one, y_reset, y_box, y_bus, y_xn = 4.4, 3.85, 3.0, 2.0, 1.3, 0.85
    x_drop, x_xt, x_z, x_n, x_mix, x_plus, x_right = 1.15, 1.6, 4.05, 5.15, 6.3, 7.3, 8.05
    # The one difference between the forms: the order of W_hn and the reset × on the reset row.
    x_matrix, x_reset = (2.3, 3.2) if form == "torch" else (3.2, 2.3)
    _cell_background(ax, 0.9, 0.55, 7.65, 4.8)

    # The state line: h_{t-1} -> (× z_t) -> (+ (1 - z_t) ⊙ n_t) -> h_t.
    _label(ax, (0.1, y_top), "$h_{t-1}$", ha="left")
    keep = add_op(ax, (x_z, y_top), TIMES)
    plus = add_op(ax, (x_plus, y_top), "+")
    add_arrow(ax, (0.65, y_top), (x_z, y_top), end=keep, color=STATE_COLOR, lw=2.8)
    add_arrow(ax, (x_z, y_top), (x_plus, y_top), end=plus, color=STATE_COLOR, lw=2.8)
    add_arrow(ax, (x_plus, y_top), (x_right, y_top), color=STATE_COLOR, lw=2.8)
    _label(ax, (x_right + 0.08, y_top), "$h_t$", ha="left")
    _label(ax, ((x_z + x_plus) / 2, y_top + 0.1), r"$z_t \odot h_{t-1}$", va="bottom", fontsize=11)

    # h_{t-1} drops down the left edge; x_t comes from below; they join into [h_{t-1}, x_t].
    add_split(ax, (x_drop, y_top))
    add_line(ax, (x_drop, y_top), (x_drop, y_bus), (x_z, y_bus))
    _label(ax, (x_xt, 0.08), "$x_t$", va="bottom")
    add_line(ax, (x_xt, 0.4), (x_xt, y_bus))
    add_split(ax, (x_xt, y_bus))
    _label(ax, (x_xt + 0.15, y_bus - 0.08), "$[h_{t-1}, x_t]$", ha="left", va="top", fontsize=11)

    # The gates r and z.
    r_box = add_box(ax, (x_reset, y_box), r"$\sigma$", color=GATE_COLOR)
    z_box = add_box(ax, (x_z, y_box), r"$\sigma$", color=GATE_COLOR)
    add_split(ax, (x_reset, y_bus))
    add_arrow(ax, (x_reset, y_bus), (x_reset, y_box), end=r_box)
    add_arrow(ax, (x_z, y_bus), (x_z, y_box), end=z_box)

    # The reset row: h_{t-1} -> W_hn and the reset × (order set by the form) -> candidate n.
    matrix = add_box(ax, (x_matrix, y_reset), "$W_{hn}$", width=0.62, height=0.45, color=MATRIX_COLOR, gid="W_hn")
    reset = add_op(ax, (x_reset, y_reset), TIMES, gid="reset-product")
    first, second = (matrix, reset) if form == "torch" else (reset, matrix)
    x_first, x_second = min(x_matrix, x_reset), max(x_matrix, x_reset)
    n_box = add_box(ax, (x_n, y_reset), "tanh", width=0.62, color=TANH_COLOR, fontsize=11)
    add_split(ax, (x_drop, y_reset))
    add_arrow(ax, (x_drop, y_reset), (x_first, y_reset), end=first)
    add_arrow(ax, (x_first, y_reset), (x_second, y_reset), end=second)
    add_arrow(ax, (x_second, y_reset), (x_n, y_reset), end=n_box)  # crosses the z_t line: no dot
    add_arrow(ax, (x_reset, y_box), (x_reset, y_reset), end=reset)
    _label(ax, (x_reset + 0.08, 2.5), "$r_t$", ha="left")
    _note(ax, (x_reset, y_reset + 0.26), "reset", va="bottom")

    # The candidate also reads x_t, along its own line under the bus.
    add_split(ax, (x_xt, y_xn))
    add_arrow(ax, (x_xt, y_xn), (x_n, y_xn), (x_n, y_reset), end=n_box)
    _label(ax, (x_n + 0.08, 1.5), "$x_t$", ha="left")

    # The update gate: z_t into the × on the state line, 1 - z_t into the × with n_t.
    mix = add_op(ax, (x_mix, y_reset), TIMES)
    one_minus = add_op(ax, (x_mix, y_one), ONE_MINUS, radius=0.22, fontsize=12, gid="one-minus")
    add_split(ax, (x_z, y_one))
    add_arrow(ax, (x_z, y_box), (x_z, y_top), end=keep)
    add_arrow(ax, (x_z, y_one), (x_mix, y_one), end=one_minus)
    add_arrow(ax, (x_mix, y_one), (x_mix, y_reset), end=mix)
    add_arrow(ax, (x_n, y_reset), (x_mix, y_reset), end=mix)
    add_arrow(ax, (x_mix, y_reset), (x_plus, y_reset), (x_plus, y_top), end=plus)
    _label(ax, (x_z + 0.08, 2.5), "$z_t$", ha="left")
    _label(ax, (x_mix + 0.1, (y_one + y_reset) / 2), "$1 - z_t$", ha="left", fontsize=11)
    _label(ax, ((x_n + x_mix) / 2 + 0.05, y_reset - 0.1), "$n_t$", va="top")
    _note(ax, (x_plus + 0.1, (y_reset + y_top) / 2 - 0.2), "mix", ha="left")

    _title(ax, fig, _GRU_TITLES[form])
    return fig


# ---------------------------------------------------------------------------------------
# 4. One gate
# ---------------------------------------------------------------------------------------


def draw_gate(value_label: str = "$v$", gate_label: str = r"$\sigma(a)$", *, input_label: str = "$a$"):
    """The simplest gate: a value passes through a × whose other input comes from a sigmoid.

    ``value_label`` names the value arriving from the left, ``gate_label`` the sigmoid's
    output (each entry in (0, 1)), ``input_label`` the sigmoid's input (its pre-activation).
    The output is labelled ``gate_label ⊙ value_label``. Labels may be mathtext (``"$v$"``).
    Returns the :class:`matplotlib.figure.Figure`.
    """
    for name, label in (("value_label", value_label), ("gate_label", gate_label), ("input_label", input_label)):
        _check_label(name, label)
    fig, ax = _canvas(6.5, 3.4)
    y_value, y_box, x_gate = 2.35, 1.15, 3.0

    times = add_op(ax, (x_gate, y_value), TIMES, radius=0.24, fontsize=15)
    sigma = add_box(ax, (x_gate, y_box), r"$\sigma$", width=0.7, height=0.5, color=GATE_COLOR, fontsize=14)
    add_arrow(ax, (0.4, y_value), (x_gate, y_value), end=times, lw=2.2, color=STATE_COLOR)
    _label(ax, (1.6, y_value + 0.12), value_label, va="bottom", fontsize=14)
    add_arrow(ax, (x_gate, y_value), (4.3, y_value), lw=2.2, color=STATE_COLOR)
    _label(ax, (4.4, y_value), _product_label(gate_label, value_label), ha="left", fontsize=14, gid="output")

    _label(ax, (x_gate, 0.12), input_label, va="bottom")
    add_arrow(ax, (x_gate, 0.45), (x_gate, y_box), end=sigma)
    add_arrow(ax, (x_gate, y_box), (x_gate, y_value), end=times)
    _label(ax, (x_gate + 0.12, (y_box + y_value) / 2 + 0.05), gate_label, ha="left")
    _note(ax, (3.7, y_box - 0.15), "each entry in (0, 1):\n0 blocks, 1 lets through", ha="left", va="center")

    _title(ax, fig, "A gate: a sigmoid decides how much of each entry passes")
    return fig
