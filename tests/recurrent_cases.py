"""Shared helpers for the recurrent-model tests: run a NumPy model and its PyTorch twin."""

from __future__ import annotations

import numpy as np
import torch

from lstm_lab import nn as lnn
from lstm_lab import scratch
from lstm_lab.variants import LSTM_VARIANTS

# (family, option) pairs: every NumPy model the package has.
CASES = [("rnn", None)] + [("lstm", v) for v in LSTM_VARIANTS] + [("gru", "torch"), ("gru", "cho")]


def case_id(case) -> str:
    family, option = case
    return family if option is None else f"{family}-{option}"


def state_names(family: str, option) -> tuple[str, ...]:
    if family == "lstm":
        return ("h0", "c0", "gates0") if option == "FGR" else ("h0", "c0")
    return ("h0",)


def state_width(name: str, h: int) -> int:
    return 3 * h if name == "gates0" else h


def init_params(family, option, d, h, rng):
    if family == "rnn":
        return scratch.init_rnn_params(d, h, rng=rng)
    if family == "lstm":
        return scratch.init_lstm_params(d, h, variant=option, rng=rng)
    return scratch.init_gru_params(d, h, form=option, rng=rng)


def forward(family, option, x, params, **states):
    if family == "rnn":
        return scratch.rnn_forward(x, params, **states)
    if family == "lstm":
        return scratch.lstm_forward(x, params, variant=option, **states)
    return scratch.gru_forward(x, params, form=option, **states)


def backward(family, dhs, cache):
    return {"rnn": scratch.rnn_backward, "lstm": scratch.lstm_backward, "gru": scratch.gru_backward}[family](dhs, cache)


def torch_model(family, option, d, h, num_layers=1, bias=True, method="cell"):
    if family == "rnn":
        return lnn.RNN(d, h, num_layers, bias, method=method)
    if family == "lstm":
        return lnn.LSTM(d, h, num_layers, bias, variant=option, method=method)
    return lnn.GRU(d, h, num_layers, bias, form=option, method=method)


def torch_state(family, option, states: dict):
    """NumPy (b, h) initial states -> the module's state argument (num_layers = 1)."""
    tensors = [torch.from_numpy(states[n])[None].requires_grad_() for n in state_names(family, option)]
    return tensors, (tensors[0] if len(tensors) == 1 else tuple(tensors))


def random_case(family, option, *, b=2, t=4, d=3, h=5, seed=0, with_state=True):
    rng = np.random.default_rng(seed)
    params = init_params(family, option, d, h, rng)
    # Peepholes and FGR matrices start as small as the rest; make them matter.
    x = rng.normal(size=(b, t, d))
    states = {n: rng.normal(scale=0.5, size=(b, state_width(n, h))) for n in state_names(family, option)}
    if option == "FGR":
        states["gates0"] = rng.uniform(size=(b, 3 * h))
    dhs = rng.normal(size=(b, t, h))
    return x, params, (states if with_state else {}), dhs
