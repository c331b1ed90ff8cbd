"""The one place that knows how ``torch.nn.RNN/LSTM/GRU`` stack their weights.

PyTorch keeps, per layer ``k``, ``weight_ih_l{k}`` of shape (G*h, d) and ``weight_hh_l{k}``
of shape (G*h, h) with the G blocks stacked in the order below, multiplies column vectors
(``W @ x``), and has two biases ``bias_ih_l{k}`` and ``bias_hh_l{k}``. The book and
``lstm_lab`` use one matrix per block, row vectors (``x @ W``, so ours is the transpose), and
one bias per block, except the GRU's ``b_hn``, which sits inside the reset product and so
cannot be merged.
"""

from __future__ import annotations

import torch

TORCH_BLOCKS = {"RNN": ("h",), "LSTM": ("i", "f", "g", "o"), "GRU": ("r", "z", "n")}


def _kind(module: torch.nn.Module) -> str:
    for kind in TORCH_BLOCKS:
        if type(module) is getattr(torch.nn, kind):
            return kind
    raise TypeError(f"expected torch.nn.RNN, torch.nn.LSTM or torch.nn.GRU, got {type(module).__name__}")


def params_from_torch(module: torch.nn.Module, layer: int = 0) -> dict[str, torch.Tensor]:
    """Book-named parameters of one layer of a ``torch.nn.RNN/LSTM/GRU`` (detached copies)."""
    kind = _kind(module)
    blocks = TORCH_BLOCKS[kind]
    w_ih = getattr(module, f"weight_ih_l{layer}").detach()
    w_hh = getattr(module, f"weight_hh_l{layer}").detach()
    h = module.hidden_size
    zeros = w_ih.new_zeros(len(blocks) * h)
    b_ih = getattr(module, f"bias_ih_l{layer}").detach() if module.bias else zeros
    b_hh = getattr(module, f"bias_hh_l{layer}").detach() if module.bias else zeros
    out = {}
    for j, k in enumerate(blocks):
        rows = slice(j * h, (j + 1) * h)
        suffix = "h" if kind == "RNN" else k
        out[f"W_x{suffix}"] = w_ih[rows].T.clone()
        out[f"W_h{suffix}"] = w_hh[rows].T.clone()
        if kind == "GRU" and k == "n":
            out["b_n"] = b_ih[rows].clone()
            out["b_hn"] = b_hh[rows].clone()
        else:
            out[f"b_{suffix}"] = (b_ih[rows] + b_hh[rows]).clone()
    return out


@torch.no_grad()
def params_to_torch(params: dict[str, torch.Tensor], module: torch.nn.Module, layer: int = 0) -> None:
    """Write book-named parameters into one layer of a ``torch.nn.RNN/LSTM/GRU``.

    A merged bias goes to ``bias_ih`` and ``bias_hh`` is set to zero (the GRU's ``b_hn`` goes
    to the n block of ``bias_hh``).
    """
    kind = _kind(module)
    blocks = TORCH_BLOCKS[kind]
    h = module.hidden_size
    w_ih = getattr(module, f"weight_ih_l{layer}")
    w_hh = getattr(module, f"weight_hh_l{layer}")
    for j, k in enumerate(blocks):
        rows = slice(j * h, (j + 1) * h)
        suffix = "h" if kind == "RNN" else k
        w_ih[rows] = params[f"W_x{suffix}"].T
        w_hh[rows] = params[f"W_h{suffix}"].T
        if module.bias:
            getattr(module, f"bias_ih_l{layer}")[rows] = params[f"b_{suffix}"]
            b_hh = getattr(module, f"bias_hh_l{layer}")
            b_hh[rows] = params["b_hn"] if (kind == "GRU" and k == "n") else 0.0


def check_convertible(module: torch.nn.Module, kind: str) -> None:
    """``module`` is a ``torch.nn.<kind>`` that ``lstm_lab`` can represent."""
    if type(module) is not getattr(torch.nn, kind):
        raise TypeError(f"from_torch expects a torch.nn.{kind}, got {type(module).__name__}")
    if module.bidirectional:
        raise ValueError("bidirectional modules are not supported")
    if getattr(module, "proj_size", 0):
        raise ValueError("LSTMs with proj_size > 0 are not supported")
    if kind == "RNN" and module.nonlinearity != "tanh":
        raise ValueError(f"only the tanh RNN is supported, got nonlinearity={module.nonlinearity!r}")
