"""The one place that knows how ``torch.nn.RNN/LSTM/GRU`` stack their weights.

PyTorch keeps, per layer ``k``, ``weight_ih_l{k}`` of shape (G*h, d) and ``weight_hh_l{k}``
of shape (G*h, h) with the G blocks stacked in the order below, multiplies column vectors
(``W @ x``), and has two biases ``bias_ih_l{k}`` and ``bias_hh_l{k}``; a bidirectional module
names its reverse direction's the same with ``_reverse`` added (``weight_ih_l{k}_reverse`` ...),
and ``direction=1`` below picks those. The book and
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


def torch_suffix(layer: int = 0, direction: int = 0) -> str:
    """The end of torch's parameter names for one layer and direction: "l0", "l0_reverse" ..."""
    return f"l{layer}_reverse" if direction else f"l{layer}"


def params_from_torch(module: torch.nn.Module, layer: int = 0, direction: int = 0) -> dict[str, torch.Tensor]:
    """Book-named parameters of one layer of a ``torch.nn.RNN/LSTM/GRU`` (detached copies).

    ``direction`` 0 is the forward direction, 1 the reverse one of a bidirectional module."""
    kind = _kind(module)
    blocks = TORCH_BLOCKS[kind]
    suffix = torch_suffix(layer, direction)
    w_ih = getattr(module, f"weight_ih_{suffix}").detach()
    w_hh = getattr(module, f"weight_hh_{suffix}").detach()
    h = module.hidden_size
    zeros = w_ih.new_zeros(len(blocks) * h)
    b_ih = getattr(module, f"bias_ih_{suffix}").detach() if module.bias else zeros
    b_hh = getattr(module, f"bias_hh_{suffix}").detach() if module.bias else zeros
    out = {}
    for j, k in enumerate(blocks):
        rows = slice(j * h, (j + 1) * h)
        name = "h" if kind == "RNN" else k
        out[f"W_x{name}"] = w_ih[rows].T.clone()
        out[f"W_h{name}"] = w_hh[rows].T.clone()
        if kind == "GRU" and k == "n":
            out["b_n"] = b_ih[rows].clone()
            out["b_hn"] = b_hh[rows].clone()
        else:
            out[f"b_{name}"] = (b_ih[rows] + b_hh[rows]).clone()
    return out


def torch_weights(
    params: dict[str, torch.Tensor], kind: str, layer: int = 0, bias: bool = True, direction: int = 0
) -> dict[str, torch.Tensor]:
    """Book-named parameters -> ``{weight_ih_l{layer}: ..., ...}`` of a ``torch.nn.<kind>``
    (``weight_ih_l{layer}_reverse`` ... for ``direction=1``).

    Differentiable: gradients flow back to ``params``. A merged bias goes to ``bias_ih`` and
    ``bias_hh`` is zero, except the GRU's ``b_hn``, which is the n block of ``bias_hh``.
    """
    blocks = TORCH_BLOCKS[kind]
    names = ["h"] if kind == "RNN" else list(blocks)
    suffix = torch_suffix(layer, direction)
    out = {
        f"weight_ih_{suffix}": torch.cat([params[f"W_x{k}"] for k in names], dim=1).t().contiguous(),
        f"weight_hh_{suffix}": torch.cat([params[f"W_h{k}"] for k in names], dim=1).t().contiguous(),
    }
    if bias:
        b_ih = torch.cat([params[f"b_{k}"] for k in names])
        zeros = torch.zeros_like(params[f"b_{names[0]}"])
        b_hh = [params["b_hn"] if (kind == "GRU" and k == "n") else zeros for k in names]
        out[f"bias_ih_{suffix}"] = b_ih
        out[f"bias_hh_{suffix}"] = torch.cat(b_hh)
    return out


@torch.no_grad()
def params_to_torch(
    params: dict[str, torch.Tensor], module: torch.nn.Module, layer: int = 0, direction: int = 0
) -> None:
    """Write book-named parameters into one layer (and ``direction``) of a ``torch.nn.RNN/LSTM/GRU``."""
    for name, value in torch_weights(params, _kind(module), layer, module.bias, direction).items():
        getattr(module, name).copy_(value)


def check_convertible(module: torch.nn.Module, kind: str) -> None:
    """``module`` is a ``torch.nn.<kind>`` that ``lstm_lab`` can represent."""
    if type(module) is not getattr(torch.nn, kind):
        raise TypeError(f"from_torch expects a torch.nn.{kind}, got {type(module).__name__}")
    if getattr(module, "proj_size", 0):
        raise ValueError("LSTMs with proj_size > 0 are not supported")
    if kind == "RNN" and module.nonlinearity != "tanh":
        raise ValueError(f"only the tanh RNN is supported, got nonlinearity={module.nonlinearity!r}")
