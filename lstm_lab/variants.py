"""The LSTM variants, defined once and used by both backends (NumPy and PyTorch).

Greff et al. (2017), "LSTM: A Search Space Odyssey", compare a *vanilla* LSTM that has
peephole connections with eight variants, each changing one thing. PyTorch's
``torch.nn.LSTM`` is that model without peepholes (the paper's NP). Here:

========== ======================================================================
variant    what changes, relative to the equations of chapter 3 (eq-lstm-*)
========== ======================================================================
vanilla    PyTorch's LSTM: gates i, f, o, candidate g, no peepholes
peephole   Greff's vanilla: i, f see c_{t-1}; o sees c_t (Gers & Schmidhuber 2000)
NIG        peephole LSTM with no input gate: i = 1
NFG        peephole LSTM with no forget gate: f = 1 (the 1997 constant error carousel)
NOG        peephole LSTM with no output gate: o = 1
NIAF       peephole LSTM with no input activation: g = g_pre (no tanh)
NOAF       peephole LSTM with no output activation: h = o * c (no tanh)
NP         no peepholes: the same model as ``vanilla``
CIFG       peephole LSTM with coupled input and forget gate: f = 1 - i
FGR        peephole LSTM with full gate recurrence: each gate's pre-activation also
           receives the previous step's i, f and o through nine matrices R_<from><to>
========== ======================================================================

Parameter names follow the book: ``W_x<k>`` (d, h) input weights, ``W_h<k>`` (h, h)
recurrent weights and ``b_<k>`` (h,) bias of gate or candidate ``k``; ``p_<k>`` (h,) a
peephole weight (a diagonal matrix stored as its diagonal); ``R_<a><k>`` (h, h) carries the
previous activation of gate ``a`` into the pre-activation of gate ``k`` (FGR only).
"""

from __future__ import annotations

from dataclasses import dataclass

from lstm_lab.checks import check_choice

LSTM_VARIANTS = ("vanilla", "peephole", "NIG", "NFG", "NOG", "NIAF", "NOAF", "NP", "CIFG", "FGR")


@dataclass(frozen=True)
class LSTMSpec:
    """What one LSTM variant computes; derived from its name by :func:`lstm_spec`."""

    name: str
    input_gate: bool = True  # False: i = 1
    forget_gate: bool = True  # False: f = 1
    coupled: bool = False  # True: f = 1 - i (no forget-gate parameters)
    output_gate: bool = True  # False: o = 1
    input_activation: bool = True  # False: g = g_pre
    output_activation: bool = True  # False: h = o * c
    peepholes: bool = False
    full_gate_recurrence: bool = False

    @property
    def gates(self) -> tuple[str, ...]:
        """The sigmoid gates that have parameters, in the order i, f, o."""
        out = []
        if self.input_gate:
            out.append("i")
        if self.forget_gate and not self.coupled:
            out.append("f")
        if self.output_gate:
            out.append("o")
        return tuple(out)

    @property
    def blocks(self) -> tuple[str, ...]:
        """Every block with weights W_x*, W_h*, b_*: the gates and the candidate g."""
        return (*self.gates, "g")

    @property
    def torch_twin(self) -> bool:
        """Whether ``torch.nn.LSTM`` computes this variant: the vanilla LSTM (and NP, the same
        model under Greff et al.'s name). The one place this is decided."""
        return (self.gates == ("i", "f", "o") and not self.peepholes and not self.full_gate_recurrence
                and self.input_activation and self.output_activation)

    @property
    def peephole_gates(self) -> tuple[str, ...]:
        return self.gates if self.peepholes else ()

    @property
    def recurrent_gate_pairs(self) -> tuple[tuple[str, str], ...]:
        """(from, to) pairs of the FGR matrices R_<from><to>."""
        if not self.full_gate_recurrence:
            return ()
        return tuple((a, k) for a in self.gates for k in self.gates)


def lstm_spec(variant: str) -> LSTMSpec:
    """The :class:`LSTMSpec` of ``variant`` (case-insensitive; see the module docstring)."""
    if not isinstance(variant, str):
        raise TypeError(f"variant must be a str, one of {', '.join(LSTM_VARIANTS)}; got {type(variant).__name__}")
    lookup = {v.lower(): v for v in LSTM_VARIANTS}
    name = lookup.get(variant.strip().lower())
    if name is None:
        raise ValueError(f"unknown LSTM variant {variant!r}; valid variants: {', '.join(LSTM_VARIANTS)}")
    peep = name not in ("vanilla", "NP")
    return LSTMSpec(
        name=name,
        input_gate=name != "NIG",
        forget_gate=name != "NFG",
        coupled=name == "CIFG",
        output_gate=name != "NOG",
        input_activation=name != "NIAF",
        output_activation=name != "NOAF",
        peepholes=peep,
        full_gate_recurrence=name == "FGR",
    )


def check_forget_bias(spec: LSTMSpec, forget_bias: float) -> None:
    """The forget-gate bias both backends add at initialisation: a number, and 0 for NFG (no
    forget gate to add it to)."""
    if not isinstance(forget_bias, (int, float)) or isinstance(forget_bias, bool):
        raise TypeError(f"forget_bias must be a float, got {type(forget_bias).__name__}")
    if not spec.forget_gate and forget_bias != 0:
        raise ValueError("forget_bias must be 0 for the NFG variant, which has no forget gate")


def lstm_param_shapes(variant: str | LSTMSpec, input_size: int, hidden_size: int) -> dict[str, tuple[int, ...]]:
    """Names and shapes of every parameter of one LSTM layer of ``variant``."""
    spec = variant if isinstance(variant, LSTMSpec) else lstm_spec(variant)
    d, h = input_size, hidden_size
    shapes: dict[str, tuple[int, ...]] = {}
    for k in spec.blocks:
        shapes[f"W_x{k}"] = (d, h)
        shapes[f"W_h{k}"] = (h, h)
        shapes[f"b_{k}"] = (h,)
    for k in spec.peephole_gates:
        shapes[f"p_{k}"] = (h,)
    for a, k in spec.recurrent_gate_pairs:
        shapes[f"R_{a}{k}"] = (h, h)
    return shapes


GRU_FORMS = ("torch", "cho")


def rnn_param_shapes(input_size: int, hidden_size: int) -> dict[str, tuple[int, ...]]:
    d, h = input_size, hidden_size
    return {"W_xh": (d, h), "W_hh": (h, h), "b_h": (h,)}


def gru_param_shapes(form: str, input_size: int, hidden_size: int) -> dict[str, tuple[int, ...]]:
    """GRU parameters. ``form="torch"`` has an extra bias ``b_hn`` inside the reset product."""
    form = check_gru_form(form)
    d, h = input_size, hidden_size
    shapes: dict[str, tuple[int, ...]] = {}
    for k in ("r", "z", "n"):
        shapes[f"W_x{k}"] = (d, h)
        shapes[f"W_h{k}"] = (h, h)
        shapes[f"b_{k}"] = (h,)
    if form == "torch":
        shapes["b_hn"] = (h,)
    return shapes


def check_gru_form(form: str) -> str:
    """``form`` is one of :data:`GRU_FORMS`: "torch" or "cho"."""
    return check_choice(form, GRU_FORMS, "form")
