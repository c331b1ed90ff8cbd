"""What the PyTorch RNN, LSTM and GRU modules share: input checks, initial states, stacking.

Shapes: x (b, t, d) batch-first; a state tensor (num_layers, b, h) as in ``torch.nn``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from torch import nn

from lstm_lab.checks import check_choice, check_flag, check_size
from lstm_lab.nn.torch_layout import check_convertible, params_from_torch, params_to_torch, torch_weights


def check_input(
    x, input_size: int, like: torch.Tensor, name: str = "x", size_name: str = "input_size"
) -> torch.Tensor:
    """``x`` is a float tensor (b, t, d) on the parameters' device and in their dtype.

    ``size_name`` is what the error message calls d (e.g. "d_model" for attention layers).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (b, t, d), got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor of shape (b, t, d), got dtype {x.dtype}; "
            "one-hot encode or embed integer tokens first"
        )
    if x.dim() != 3:
        raise ValueError(f"{name} must have shape (b, t, d) (batch-first), got shape {tuple(x.shape)}")
    if x.shape[1] == 0:
        raise ValueError(f"{name} must have at least one time step, got shape {tuple(x.shape)}")
    if x.shape[2] != input_size:
        raise ValueError(
            f"{name} has {x.shape[2]} features per step but the model expects {size_name} = {input_size}"
        )
    if x.dtype != like.dtype:
        raise TypeError(f"{name} has dtype {x.dtype} but the model's parameters are {like.dtype}; convert one of them")
    if x.device != like.device:
        raise ValueError(f"{name} is on {x.device} but the model is on {like.device}; move one of them with .to()")
    return x


def resolve_method(method: str, allowed: tuple[str, ...], has_torch_kernel: bool, what: str) -> str:
    """The method a layer runs: "auto" -> "torch" where PyTorch has the model, else "cell".

    (Under ``torch.func.vmap`` an "auto" layer runs "cell": see :meth:`RecurrentLayer.method_for`.)"""
    check_choice(method, ("auto", *allowed))
    if method == "torch" and not has_torch_kernel:
        raise ValueError(f"method='torch' needs a model that torch.nn has; {what} is not one; use method='cell'")
    if method == "auto":
        return "torch" if has_torch_kernel else "cell"
    return method


def check_state_tensor(
    s, name: str, shape: tuple[int, ...], x: torch.Tensor, *, layout: str = "(num_layers, b, h)", x_name: str = "x"
) -> torch.Tensor:
    """``s`` must be a tensor of ``shape`` with ``x``'s dtype and device; errors name it and its axes.

    ``layout`` spells the axes in the message (e.g. "(b, h)"; "" for none); ``x_name`` names the input.
    """
    what = f"{layout} = {shape}" if layout else f"{shape}"
    if not isinstance(s, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {what}, got {type(s).__name__}")
    if tuple(s.shape) != shape:
        raise ValueError(f"{name} must have shape {what}, got {tuple(s.shape)}")
    if s.dtype != x.dtype or s.device != x.device:
        raise TypeError(
            f"{name} must match {x_name}'s dtype and device ({x.dtype}, {x.device}), got ({s.dtype}, {s.device})"
        )
    return s


def check_state_tuple(state, names, shapes, x: torch.Tensor, *, x_name: str = "x", prefix: str = "",
                      layout: str = "") -> tuple[torch.Tensor, ...]:
    """A state given as a tuple: one tensor per name in ``names``, each checked by :func:`check_state_tensor`."""
    if not isinstance(state, (tuple, list)) or len(state) != len(names):
        raise TypeError(f"state must be a tuple ({', '.join(names)}) of tensors, or None")
    return tuple(check_state_tensor(s, f"{prefix}{name}", shape, x, layout=layout, x_name=x_name)
                 for s, name, shape in zip(state, names, shapes))


def add_parameters(module: nn.Module, shapes: dict[str, tuple[int, ...]]) -> None:
    """Register an uninitialised parameter of each given shape under its book name."""
    for name, shape in shapes.items():
        module.register_parameter(name, nn.Parameter(torch.empty(shape)))


@torch.no_grad()
def uniform_init(module: nn.Module, hidden_size: int) -> None:
    """Every parameter uniform in (-1/sqrt(h), 1/sqrt(h)), the initialisation ``torch.nn`` uses."""
    bound = 1.0 / math.sqrt(hidden_size)
    for p in module.parameters():
        p.uniform_(-bound, bound)


#: PyTorch's kernels for torch.nn.RNN/LSTM/GRU, called without a module
_TORCH_KERNELS = {"RNN": torch.rnn_tanh, "LSTM": torch.lstm, "GRU": torch.gru}


def _batched_by_vmap(x: torch.Tensor) -> bool:
    """True if ``x`` is (or wraps) a tensor batched by ``torch.func.vmap``."""
    functorch = torch._C._functorch
    while functorch.is_functorch_wrapped_tensor(x):
        if functorch.is_batchedtensor(x):
            return True
        x = functorch.get_unwrapped(x)
    return False


class RecurrentLayer(nn.Module):
    """One layer: book-named parameters registered as attributes (``layer.W_xh`` ...).

    ``method`` chooses how the layer runs: "cell" (the readable loop, one line per equation,
    autograd for the backward pass) or "torch" (PyTorch's own kernel, oneDNN on a CPU and
    cuDNN on a GPU, called directly on these same parameters, with no hidden module).
    A layer built with "auto" records it in ``auto``: see :meth:`method_for`.
    """

    #: "RNN", "LSTM" or "GRU": the torch.nn module with the same function, if any
    torch_kind: str = ""

    def __init__(self, shapes: dict[str, tuple[int, ...]], hidden_size: int, bias: bool):
        super().__init__()
        self.hidden_size = hidden_size
        self.bias = bias
        self.shapes = dict(shapes)  # every parameter of the model, biases included
        add_parameters(self, {n: s for n, s in shapes.items() if bias or not n.startswith("b_")})
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform in (-1/sqrt(h), 1/sqrt(h)), the initialisation ``torch.nn`` uses."""
        uniform_init(self, self.hidden_size)

    def full_params(self, detach: bool = True) -> dict[str, torch.Tensor]:
        """Every parameter by its book name; absent biases (bias=False) as zeros."""
        w = next(self.parameters())
        out = {}
        for n, shape in self.shapes.items():
            p = getattr(self, n, None)
            out[n] = w.new_zeros(shape) if p is None else (p.detach() if detach else p)
        return out

    def forward(self, x: torch.Tensor, *states: torch.Tensor):
        """x (b, t, d) and the layer's states, each (b, ·) -> hs (b, t, h), final states.

        Runs ``forward_<method>`` for the method :meth:`method_for` picks: ``forward_cell``
        (every layer), ``forward_torch`` (here) and, for the LSTM, ``forward_fused``.
        """
        return getattr(self, f"forward_{self.method_for(x, *states)}")(x, *states)

    def method_for(self, *tensors: torch.Tensor) -> str:
        """The method this call runs: ``self.method``, except under ``torch.func.vmap``.

        PyTorch's RNN kernels (aten::lstm, gru, rnn_tanh) have no vmap batching rule, and
        neither has the fused Function; so a layer built with ``method="auto"`` runs the
        readable cell (the same function) when any of ``tensors`` or its weights is batched
        by vmap, and an explicit "torch" or "fused" raises.
        """
        if self.method == "cell" or not any(map(_batched_by_vmap, (*tensors, self.first_weight()))):
            return self.method
        if getattr(self, "auto", False):
            return "cell"
        raise ValueError(
            f"method={self.method!r} cannot run under torch.func.vmap (PyTorch has no batching rule "
            "for it); use method='auto' or method='cell'"
        )

    def first_weight(self) -> torch.Tensor:
        """The layer's first weight matrix, as the current call sees it (functional_call swaps it)."""
        return getattr(self, next(iter(self.shapes)))

    def forward_torch(self, x: torch.Tensor, *states: torch.Tensor):
        """Run PyTorch's kernel for ``torch.nn.<torch_kind>`` on this layer's parameters.

        Stateless: the aten op is called on the book-named parameters, stacked in torch's
        layout for this call (differentiably), so no module is built, no random number is
        drawn and no second copy of the weights is kept.
        """
        weights = list(torch_weights(self.full_params(detach=False), self.torch_kind, 0, self.bias).values())
        hx = tuple(s.unsqueeze(0) for s in states)  # (1, b, h) each: one layer
        op = _TORCH_KERNELS[self.torch_kind]
        with warnings.catch_warnings():  # cuDNN notes that the weights are not one contiguous block
            warnings.filterwarnings("ignore", message=".*contiguous chunk of memory.*")
            # (input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first)
            out, *final = op(x, hx if len(hx) > 1 else hx[0], weights, self.bias, 1, 0.0, self.training, False, True)
        return out, tuple(f[0] for f in final)

    def linear(self, k: str, x_t: torch.Tensor, h_prev: torch.Tensor) -> torch.Tensor:
        """x_t W_xk + h_{t-1} W_hk + b_k (no bias when the layer has none)."""
        a = x_t @ getattr(self, f"W_x{k}") + h_prev @ getattr(self, f"W_h{k}")  # (b, d) @ (d, h) + (b, h) @ (h, h)
        return a + getattr(self, f"b_{k}") if self.bias else a


class StackedRecurrent(nn.Module):
    """``num_layers`` layers, each reading the hidden states of the one below."""

    #: names of the state tensors, e.g. ("h",) or ("h", "c")
    state_names: tuple[str, ...] = ("h",)
    #: the matching torch.nn class name: "RNN", "LSTM" or "GRU"
    torch_kind: str = ""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, bias: bool):
        super().__init__()
        self.input_size = check_size(input_size, "input_size")
        self.hidden_size = check_size(hidden_size, "hidden_size")
        self.num_layers = check_size(num_layers, "num_layers")
        self.bias = check_flag(bias, "bias")
        self.layers = nn.ModuleList(
            [self.make_layer(self.input_size if k == 0 else self.hidden_size) for k in range(self.num_layers)]
        )

    def make_layer(self, input_size: int) -> RecurrentLayer:  # pragma: no cover - abstract
        raise NotImplementedError

    def state_sizes(self) -> tuple[int, ...]:
        """The last dimension of each state tensor."""
        return (self.hidden_size,) * len(self.state_names)

    def _initial_states(self, x: torch.Tensor, state) -> list[tuple[torch.Tensor, ...]]:
        b = x.shape[0]
        sizes = self.state_sizes()
        if state is None:
            tensors = [x.new_zeros(self.num_layers, b, n) for n in sizes]
        else:
            names = [f"{n}0" for n in self.state_names]
            if len(sizes) == 1:
                state = (state,)
            tensors = check_state_tuple(state, names, [(self.num_layers, b, n) for n in sizes], x,
                                        layout="(num_layers, b, h)")
        return [tuple(t[k] for t in tensors) for k in range(self.num_layers)]

    def forward(self, x: torch.Tensor, state=None):
        """Run the stack over ``x`` (b, t, input_size).

        ``state`` is None (zeros) or the initial state(s), each (num_layers, b, h).
        Returns ``(outputs, final_state)``: outputs (b, t, h) from the top layer, and the
        final state(s) of every layer in the same form as ``state``.
        """
        first = next(self.parameters())
        x = check_input(x, self.input_size, first)
        states = self._initial_states(x, state)
        finals = []
        out = x
        for layer, s in zip(self.layers, states):
            out, final = layer(out, *s)
            finals.append(final)
        stacked = tuple(torch.stack([f[j] for f in finals]) for j in range(len(self.state_names)))
        return out, (stacked[0] if len(stacked) == 1 else stacked)

    # ------------------------------------------------------------------ conversions
    def scratch_params(self, layer: int = 0) -> dict[str, np.ndarray]:
        """The NumPy ``params`` dict of one layer, for ``lstm_lab.scratch``.

        Missing biases (``bias=False``) are returned as zeros, which the NumPy models expect.
        """
        if not 0 <= layer < self.num_layers:
            raise IndexError(f"layer must be in [0, {self.num_layers}), got {layer}")
        return {name: p.cpu().numpy().copy() for name, p in self.layers[layer].full_params().items()}

    def check_torch_equivalent(self) -> None:
        """Raise if ``torch.nn`` has no module that computes what this model computes."""

    @classmethod
    def from_torch(cls, module: nn.Module, **kwargs):
        """A copy of a ``torch.nn.<torch_kind>`` (unidirectional), same dtype and device.

        ``kwargs`` go to the constructor (e.g. ``method=`` for the LSTM).
        """
        check_convertible(module, cls.torch_kind)
        w = module.weight_ih_l0
        model = cls(module.input_size, module.hidden_size, module.num_layers, module.bias, **kwargs)
        model = model.to(w.device, w.dtype)
        for k in range(module.num_layers):
            model.load_params(params_from_torch(module, k), layer=k)
        return model

    def to_torch(self) -> nn.Module:
        """An equivalent ``torch.nn.<torch_kind>(batch_first=True)``, same dtype and device."""
        self.check_torch_equivalent()
        w = next(self.parameters())
        module = getattr(nn, self.torch_kind)(
            self.input_size, self.hidden_size, self.num_layers, bias=self.bias, batch_first=True
        ).to(w.device, w.dtype)
        for k, layer in enumerate(self.layers):
            params_to_torch(layer.full_params(), module, k)
        return module

    @torch.no_grad()
    def load_params(self, params: dict, layer: int = 0) -> "StackedRecurrent":
        """Copy book-named parameters (NumPy arrays or tensors) into one layer; returns self.

        ``params`` must hold exactly the layer's keys (a missing or an unknown key raises
        ``KeyError``, as the NumPy models do); everything is checked before anything is copied.
        """
        if not 0 <= layer < self.num_layers:
            raise IndexError(f"layer must be in [0, {self.num_layers}), got {layer}")
        lay = self.layers[layer]
        missing = [k for k in lay.shapes if k not in params]
        extra = [k for k in params if k not in lay.shapes]
        if missing or extra:
            what = f"is missing {missing}" if missing else f"has unexpected keys {extra}"
            raise KeyError(f"params {what}; expected keys {list(lay.shapes)}")
        values = {}
        for name, shape in lay.shapes.items():
            value = params[name]
            value = value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
            if tuple(value.shape) != shape:
                raise ValueError(f"params[{name!r}] must have shape {shape}, got {tuple(value.shape)}")
            if getattr(lay, name, None) is None and torch.any(value != 0):
                raise ValueError(f"this model has bias=False but params[{name!r}] is not zero")
            values[name] = value
        for name, value in values.items():
            p = getattr(lay, name, None)
            if p is not None:
                p.copy_(value.to(p.dtype))
        return self
