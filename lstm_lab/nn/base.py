"""What the PyTorch RNN, LSTM and GRU modules share: input checks, initial states, stacking,
both directions of a bidirectional stack, sequences of different lengths and dropout between
layers, per step (as ``torch.nn``) or variational (one mask per sequence, Gal and Ghahramani).

Shapes: x (b, t, d) batch-first; a state tensor (num_layers * num_directions, b, h) as in
``torch.nn`` (num_directions is 2 for a bidirectional stack, else 1); ``lengths`` (b,): the
number of real steps of each sequence of a right-padded batch.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from lstm_lab.checks import check_choice, check_flag, check_int, check_size
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


def check_lengths(lengths, x: torch.Tensor) -> torch.Tensor | None:
    """``lengths`` as a (b,) int64 CPU tensor with every length in [1, t], or None.

    ``lengths`` is None (every sequence has all t steps), a 1-D int64 CPU tensor or a sequence
    of ints (a list, a tuple or a 1-D NumPy integer array), one per sequence of ``x`` (b, t, d).
    """
    if lengths is None:
        return None
    b, t = x.shape[0], x.shape[1]
    if isinstance(lengths, torch.Tensor):
        if lengths.dtype != torch.int64:
            raise TypeError(f"lengths must be an int64 tensor (or a sequence of ints), got dtype {lengths.dtype}")
        if lengths.device.type != "cpu":
            raise ValueError(f"lengths must be on the CPU (as pack_padded_sequence wants), got {lengths.device}")
        values = lengths.tolist() if lengths.dim() == 1 else None
    elif isinstance(lengths, np.ndarray):
        if lengths.dtype.kind not in "iu":
            raise TypeError(f"lengths must hold ints, got a NumPy array of dtype {lengths.dtype}")
        values = lengths.tolist() if lengths.ndim == 1 else None
    elif isinstance(lengths, (list, tuple)):
        values = [check_int(n, "every entry of lengths", minimum=-(2**63)) for n in lengths]
    else:
        raise TypeError(f"lengths must be a 1-D int64 tensor or a sequence of ints, got {type(lengths).__name__}")
    if values is None:
        raise ValueError(f"lengths must have shape (b,) = ({b},), got shape {tuple(np.shape(lengths))}")
    if len(values) != b:
        raise ValueError(f"lengths must hold one length per sequence: shape (b,) = ({b},), got {len(values)}")
    bad = [n for n in values if not 1 <= n <= t]
    if bad:
        raise ValueError(f"every entry of lengths must be in [1, t] = [1, {t}], got {bad[0]}")
    return torch.tensor(values, dtype=torch.int64)


def step_mask(lengths: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor | None:
    """(b, t, 1) bool, True at the real steps of each sequence of ``x`` (b, t, ·); None if ``lengths`` is."""
    if lengths is None:
        return None
    steps = torch.arange(x.shape[1], device=x.device)  # (t,)
    return (steps < lengths.to(x.device)[:, None])[..., None]  # (b, t, 1)


def hold(mask: torch.Tensor | None, step: int, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """``new`` where ``step`` is a real step, ``old`` where it is padding: the state does not move.

    ``mask`` (b, t, 1) from :func:`step_mask`; None means every step is real (then ``new`` itself).
    """
    return new if mask is None else torch.where(mask[:, step], new, old)  # eq-masked-update


def zero_padding(hs: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``hs`` (b, t, ·) with zeros at the padded steps (``hs`` itself when ``mask`` is None)."""
    return hs if mask is None else torch.where(mask, hs, 0.0)


def reverse_steps(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """``x`` (b, t, ·) with each sequence's real steps in reverse order and its padding left in place.

    Step s of sequence j becomes step lengths[j] - 1 - s (s < lengths[j]); so a forward pass over
    the result reads each sequence backwards from its own last real step. Its own inverse.
    """
    if lengths is None:
        return x.flip(1)
    steps = torch.arange(x.shape[1], device=x.device)  # (t,)
    n = lengths.to(x.device)[:, None]  # (b, 1)
    index = torch.where(steps < n, n - 1 - steps, steps)  # (b, t)
    return x.gather(1, index[..., None].expand(x.shape))  # (b, t, ·)


def check_dropout(dropout, num_layers: int) -> float:
    """``dropout`` as a float in [0, 1); like ``torch.nn``, a warning if ``num_layers`` is 1 (then it does nothing)."""
    if isinstance(dropout, (bool, np.bool_)) or not isinstance(dropout, numbers.Real):
        raise TypeError(f"dropout must be a float in [0, 1), got {type(dropout).__name__} {dropout!r}")
    dropout = float(dropout)
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be a float in [0, 1), got {dropout}")
    if dropout > 0 and num_layers == 1:
        warnings.warn(
            "dropout adds dropout after all but the last recurrent layer, so non-zero dropout expects "
            f"num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}",
            UserWarning, stacklevel=4,
        )
    return dropout


def dropout_mask(like: torch.Tensor, shape: tuple[int, ...], p: float) -> torch.Tensor:
    """A dropout mask of ``shape``: each entry 0 with probability ``p``, else 1 / (1 - p).

    ``like`` gives the dtype and device. The scaling keeps every unit's expected value, so a
    model in eval mode (no mask) needs no rescaling.
    """
    keep = torch.bernoulli(like.new_full(shape, 1.0 - p))
    return keep / (1.0 - p)  # eq-variational-dropout  m ~ Bernoulli(1 - p) / (1 - p)


def recurrent_input(h_prev: torch.Tensor, h_mask: torch.Tensor | None) -> torch.Tensor:
    """h_{t-1} as the recurrent weights read it: times the variational mask m_h (b, h), the same
    at every step, or ``h_prev`` itself when there is none (eval mode, or no variational dropout)."""
    return h_prev if h_mask is None else h_prev * h_mask  # eq-variational-dropout  (b, h)


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
    """One layer, one direction: book-named parameters registered as attributes (``layer.W_xh`` ...).

    ``method`` chooses how the layer runs: "cell" (the readable loop, one line per equation,
    autograd for the backward pass) or "torch" (PyTorch's own kernel, oneDNN on a CPU and
    cuDNN on a GPU, called directly on these same parameters, with no hidden module).
    A layer built with "auto" records it in ``auto``: see :meth:`method_for`.

    Each layer's ``forward_cell(x, *states, mask=None, h_mask=None)`` is the readable loop: one
    line per equation, autograd for the backward pass. ``mask`` (b, t, 1), True at real steps,
    comes from :meth:`forward` for a padded batch, and the loop holds its states still where it
    is False (:func:`hold`). ``h_mask`` (b, h), from a stack with variational dropout, multiplies
    h_{t-1} wherever a weight matrix reads it (:func:`recurrent_input`); the state itself is
    carried undropped.
    A ``reverse`` layer (the second direction of a bidirectional stack) reads each sequence
    backwards, from its own last real step: see :meth:`forward`.
    """

    #: "RNN", "LSTM" or "GRU": the torch.nn module with the same function, if any
    torch_kind: str = ""

    def __init__(self, shapes: dict[str, tuple[int, ...]], hidden_size: int, bias: bool, reverse: bool = False):
        super().__init__()
        self.hidden_size = hidden_size
        self.bias = bias
        self.reverse = reverse
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

    def extra_repr(self) -> str:
        return "reverse=True" if self.reverse else ""

    def forward(self, x: torch.Tensor, *states: torch.Tensor, lengths: torch.Tensor | None = None,
                h_mask: torch.Tensor | None = None):
        """x (b, t, d) and the layer's states, each (b, ·) -> hs (b, t, h), final states.

        Runs ``forward_<method>`` for the method :meth:`method_for` picks: ``forward_cell``
        (every layer), ``forward_torch`` (here) and, for the LSTM, ``forward_fused``.
        ``lengths`` (b,) int64 (checked by :func:`check_lengths`), or None for all t steps:
        outputs at padded steps are zeros, and the final states are those after each
        sequence's last real step. A reverse layer runs the same forward pass on each sequence
        reversed within its own length (:func:`reverse_steps`), and reverses the outputs back.
        ``h_mask`` (b, h), the recurrent dropout mask of a variational stack, runs the cell
        (no PyTorch kernel drops the recurrent input; the stack allows it with "auto" or "cell").
        """
        method = "cell" if h_mask is not None else self.method_for(x, *states)
        if self.reverse:
            x = reverse_steps(x, lengths)  # each sequence read from its own last real step
        if method == "cell":  # the readable loop holds its states still at padded steps
            mask = step_mask(lengths, x)  # (b, t, 1): True at real steps; None without lengths
            x = zero_padding(x, mask)  # padded inputs never enter the arithmetic (not even a NaN)
            hs, finals = self.forward_cell(x, *states, mask=mask, h_mask=h_mask)
            hs = zero_padding(hs, mask)  # (b, t, h), zeros at padded steps
        else:
            hs, finals = getattr(self, f"forward_{method}")(x, *states, lengths=lengths)
        if self.reverse:
            hs = reverse_steps(hs, lengths)  # back in the order of x
        return hs, finals

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

    def forward_torch(self, x: torch.Tensor, *states: torch.Tensor, lengths: torch.Tensor | None = None):
        """Run PyTorch's kernel for ``torch.nn.<torch_kind>`` on this layer's parameters.

        Stateless: the aten op is called on the book-named parameters, stacked in torch's
        layout for this call (differentiably), so no module is built, no random number is
        drawn and no second copy of the weights is kept. With ``lengths``, the kernel runs
        on the packed sequences (``pack_padded_sequence``), as ``torch.nn`` runs a
        ``PackedSequence``, and the outputs are padded back to t steps with zeros.
        """
        weights = list(torch_weights(self.full_params(detach=False), self.torch_kind, 0, self.bias).values())
        op = _TORCH_KERNELS[self.torch_kind]
        if lengths is None:
            hx = tuple(s.unsqueeze(0) for s in states)  # (1, b, h) each: one layer
            with warnings.catch_warnings():  # cuDNN notes that the weights are not one contiguous block
                warnings.filterwarnings("ignore", message=".*contiguous chunk of memory.*")
                # (input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first)
                out, *final = op(x, hx if len(hx) > 1 else hx[0], weights, self.bias, 1, 0.0, self.training, False,
                                 True)
            return out, tuple(f[0] for f in final)
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)  # longest first
        hx = tuple(s[packed.sorted_indices].unsqueeze(0) for s in states)  # (1, b, h) each, in the packed order
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*contiguous chunk of memory.*")
            # (data, batch_sizes, hx, params, has_biases, num_layers, dropout, train, bidirectional)
            data, *final = op(packed.data, packed.batch_sizes, hx if len(hx) > 1 else hx[0], weights, self.bias,
                              1, 0.0, self.training, False)
        packed_out = PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
        out, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=x.shape[1])  # (b, t, h)
        return out, tuple(f[0][packed.unsorted_indices] for f in final)  # back in the order of x

    def linear(self, k: str, x_t: torch.Tensor, h_prev: torch.Tensor) -> torch.Tensor:
        """x_t W_xk + h_{t-1} W_hk + b_k (no bias when the layer has none)."""
        a = x_t @ getattr(self, f"W_x{k}") + h_prev @ getattr(self, f"W_h{k}")  # (b, d) @ (d, h) + (b, h) @ (h, h)
        return a + getattr(self, f"b_{k}") if self.bias else a


class StackedRecurrent(nn.Module):
    """``num_layers`` layers, each reading the hidden states of the one below.

    With ``bidirectional=True`` each layer has a forward direction (``layers[k]``) and a reverse
    one (``reverse_layers[k]``), both reading the whole output of the layer below; a layer's
    output is the two directions' hidden states side by side, (b, t, 2h), the forward half
    first, as in ``torch.nn``. ``dropout`` (a probability in [0, 1)) zeroes each feature of
    every layer's output but the last one's with that probability in training mode, as in
    ``torch.nn`` (see :meth:`forward`). With ``variational=True`` the dropout follows Gal and
    Ghahramani: each sequence draws its masks once and keeps them at every step, and every
    layer's recurrent input h_{t-1} is dropped too (the layers then run their readable cell in
    training mode: ``method`` must be "auto" or "cell").
    """

    #: names of the state tensors, e.g. ("h",) or ("h", "c")
    state_names: tuple[str, ...] = ("h",)
    #: the matching torch.nn class name: "RNN", "LSTM" or "GRU"
    torch_kind: str = ""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, bias: bool, *,
                 dropout: float = 0.0, bidirectional: bool = False, variational: bool = False):
        super().__init__()
        self.input_size = check_size(input_size, "input_size")
        self.hidden_size = check_size(hidden_size, "hidden_size")
        self.num_layers = check_size(num_layers, "num_layers")
        self.bias = check_flag(bias, "bias")
        self.bidirectional = check_flag(bidirectional, "bidirectional")
        self.variational = check_flag(variational, "variational")
        # variational dropout also drops the recurrent input, so one layer is enough for it to act
        self.dropout = check_dropout(dropout, 2 if self.variational else self.num_layers)
        method = getattr(self, "method", "auto")
        if self.variational and self.dropout and method not in ("auto", "cell"):
            raise ValueError(
                f"variational dropout drops h_(t-1) inside the loop, which method={method!r} cannot do; "
                "use method='auto' or method='cell'"
            )
        self.layers = nn.ModuleList([self.make_layer(self.layer_input_size(k)) for k in range(self.num_layers)])
        if self.bidirectional:  # only then: a unidirectional stack keeps the modules it always had
            self.reverse_layers = nn.ModuleList(
                [self.make_layer(self.layer_input_size(k), reverse=True) for k in range(self.num_layers)]
            )

    def make_layer(self, input_size: int, reverse: bool = False) -> RecurrentLayer:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def num_directions(self) -> int:
        """2 for a bidirectional stack, else 1."""
        return 2 if self.bidirectional else 1

    def layer_input_size(self, layer: int) -> int:
        """d for layer 0; the size of the layer below's output (h, or 2h if bidirectional) above it."""
        return self.input_size if layer == 0 else self.hidden_size * self.num_directions

    def directions(self, layer: int) -> tuple[RecurrentLayer, ...]:
        """The modules of one layer: (forward,) or, if bidirectional, (forward, reverse)."""
        return (self.layers[layer], self.reverse_layers[layer]) if self.bidirectional else (self.layers[layer],)

    def direction(self, layer: int = 0, direction: int = 0) -> RecurrentLayer:
        """The module of one layer and direction (0 forward, 1 reverse); ``IndexError`` if there is none."""
        if not 0 <= layer < self.num_layers:
            raise IndexError(f"layer must be in [0, {self.num_layers}), got {layer}")
        check_int(direction, "direction", minimum=-(2**63))  # the type; the range is an index's, as for layer
        if not 0 <= direction < self.num_directions:
            what = "0 (forward) or 1 (reverse)" if self.bidirectional else "0 (forward; the stack is not bidirectional)"
            raise IndexError(f"direction must be {what}, got {direction}")
        return self.directions(layer)[direction]

    def state_sizes(self) -> tuple[int, ...]:
        """The last dimension of each state tensor."""
        return (self.hidden_size,) * len(self.state_names)

    def _initial_states(self, x: torch.Tensor, state) -> list[tuple[torch.Tensor, ...]]:
        """One tuple of (b, ·) states per layer and direction, in torch's order (layer 0 forward,
        layer 0 reverse, layer 1 forward ...)."""
        b = x.shape[0]
        sizes = self.state_sizes()
        n = self.num_layers * self.num_directions
        if state is None:
            tensors = [x.new_zeros(n, b, size) for size in sizes]
        else:
            names = [f"{name}0" for name in self.state_names]
            if len(sizes) == 1:
                state = (state,)
            layout = "(num_layers * 2, b, h)" if self.bidirectional else "(num_layers, b, h)"
            tensors = check_state_tuple(state, names, [(n, b, size) for size in sizes], x, layout=layout)
        return [tuple(t[k] for t in tensors) for k in range(n)]

    def forward(self, x: torch.Tensor, state=None, *, lengths=None):
        """Run the stack over ``x`` (b, t, input_size).

        ``state`` is None (zeros) or the initial state(s), each (num_layers * num_directions,
        b, h) in torch's order: layer 0 forward, layer 0 reverse, layer 1 forward ...
        ``lengths`` is None (every sequence has t steps) or the length of each sequence of a
        right-padded batch: a 1-D int64 CPU tensor or a sequence of b ints in [1, t]. It
        computes what ``torch.nn`` computes on ``pack_padded_sequence(x, lengths,
        batch_first=True, enforce_sorted=False)``, padded back to t steps: outputs at padded
        steps are zeros, each sequence's final state is the one after its own last real step,
        and a reverse direction starts at each sequence's own last real step.
        Returns ``(outputs, final_state)``: outputs (b, t, h), or (b, t, 2h) if bidirectional
        (forward half first), from the top layer, and the final state(s) of every layer and
        direction in the same form as ``state``. In training mode with ``dropout`` > 0, the
        input of every layer above the first (the output of the one below) goes through dropout:
        a new mask at every step, as in ``torch.nn``; or, if ``variational``, one mask per
        sequence for all its steps, and one more per layer and direction on h_{t-1}.
        """
        first = next(self.parameters())
        x = check_input(x, self.input_size, first)
        lengths = check_lengths(lengths, x)
        states = iter(self._initial_states(x, state))
        drop = self.dropout > 0 and self.training
        b, p = x.shape[0], self.dropout
        finals = []
        out = x
        for k in range(self.num_layers):
            if k > 0 and drop and self.variational:  # eq-variational-dropout  one mask for all t steps
                out = out * dropout_mask(out, (b, 1, out.shape[2]), p)  # (b, t, ·) * (b, 1, ·)
            elif k > 0 and drop:
                out = nn.functional.dropout(out, p, training=True)  # as torch.nn: between layers
            outs = []
            for layer in self.directions(k):
                h_mask = dropout_mask(out, (b, self.hidden_size), p) if drop and self.variational else None
                hs, final = layer(out, *next(states), lengths=lengths, h_mask=h_mask)
                outs.append(hs)
                finals.append(final)
            out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)  # eq-bidirectional  (b, t, h) or (b, t, 2h)
        stacked = tuple(torch.stack([f[j] for f in finals]) for j in range(len(self.state_names)))
        return out, (stacked[0] if len(stacked) == 1 else stacked)

    def stack_repr(self) -> str:
        """The stack's options that differ from their defaults, for ``extra_repr``."""
        parts = [f"dropout={self.dropout}"] if self.dropout else []
        parts += ["variational=True"] if self.variational else []
        return ", ".join(parts + (["bidirectional=True"] if self.bidirectional else []))

    def extra_repr(self) -> str:
        return self.stack_repr()

    # ------------------------------------------------------------------ conversions
    def scratch_params(self, layer: int = 0, *, direction: int = 0) -> dict[str, np.ndarray]:
        """The NumPy ``params`` dict of one layer, for ``lstm_lab.scratch``; ``direction=1``
        gives the reverse direction's of a bidirectional stack.

        Missing biases (``bias=False``) are returned as zeros, which the NumPy models expect.
        """
        module = self.direction(layer, direction)
        return {name: p.cpu().numpy().copy() for name, p in module.full_params().items()}

    def check_torch_equivalent(self) -> None:
        """Raise if ``torch.nn`` has no module that computes what this model computes."""

    @classmethod
    def from_torch(cls, module: nn.Module, **kwargs):
        """A copy of a ``torch.nn.<torch_kind>``, same dtype and device, with its ``dropout`` and
        ``bidirectional`` (both directions' weights).

        ``kwargs`` go to the constructor (e.g. ``method=`` for the LSTM).
        """
        check_convertible(module, cls.torch_kind)
        w = module.weight_ih_l0
        options = {"dropout": module.dropout, "bidirectional": module.bidirectional, **kwargs}
        model = cls(module.input_size, module.hidden_size, module.num_layers, module.bias, **options)
        model = model.to(w.device, w.dtype)
        for k in range(module.num_layers):
            for j in range(model.num_directions):
                model.load_params(params_from_torch(module, k, j), layer=k, direction=j)
        return model

    def to_torch(self) -> nn.Module:
        """An equivalent ``torch.nn.<torch_kind>(batch_first=True)``, same dtype, device,
        ``dropout``, ``bidirectional`` and mode (training or eval)."""
        self.check_torch_equivalent()
        if self.variational and self.dropout:
            raise ValueError("torch.nn has no variational dropout (its masks change at every step); "
                             "build the model with variational=False")
        w = next(self.parameters())
        module = getattr(nn, self.torch_kind)(
            self.input_size, self.hidden_size, self.num_layers, bias=self.bias, batch_first=True,
            dropout=self.dropout, bidirectional=self.bidirectional,
        ).to(w.device, w.dtype).train(self.training)
        for k in range(self.num_layers):
            for j, layer in enumerate(self.directions(k)):
                params_to_torch(layer.full_params(), module, k, j)
        return module

    @torch.no_grad()
    def load_params(self, params: dict, layer: int = 0, *, direction: int = 0) -> "StackedRecurrent":
        """Copy book-named parameters (NumPy arrays or tensors) into one layer; returns self.
        ``direction=1`` copies them into the reverse direction of a bidirectional stack.

        ``params`` must hold exactly the layer's keys (a missing or an unknown key raises
        ``KeyError``, as the NumPy models do); everything is checked before anything is copied.
        """
        lay = self.direction(layer, direction)
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
