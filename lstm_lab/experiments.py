"""Experiments over many seeds and variants: seed ensembles, the variants' "odyssey", training on
continual streams, and how long a model takes to solve a task (chapters 4 to 9 use them).

Glossary: ``s`` ensemble members (one per seed), b batch, t time steps, d input features,
k outputs per step. Arrays are batch-first; an ensemble puts its member axis in front:
inputs (s, b, t, d), outputs (s, b, t, k).

- :class:`SeedEnsemble` trains ``s`` copies of one model, each initialised from its own
  seed, side by side with :func:`torch.func.vmap`. With Adam this is the same computation
  as ``s`` separate runs (each member's gradient is the gradient of its own loss), but one
  Python loop drives all of them, which matters for the readable ``method="cell"`` LSTM,
  whose cost is mostly Python overhead per time step.
- :func:`run_odyssey` trains every LSTM variant of a list with several seeds and returns an
  :class:`OdysseyResult` (a table and the raw numbers); :func:`lstm_lab.plotting.plot_odyssey` draws it.
- :class:`StreamChunks`, :class:`ReberChunks` and :class:`CarriedStateLoss` train a model on
  long streams read in chunks, with the state carried from chunk to chunk (truncated
  backpropagation through time): a text cut into parallel streams
  (:func:`lstm_lab.tasks.token_streams`) or continual embedded Reber streams
  (:func:`lstm_lab.tasks.continual_embedded_reber`); :func:`stream_losses`,
  :func:`long_range_accuracy` and :func:`cell_state_norms` measure a model on such a stream.
- :func:`steps_to_solve`, :func:`stop_when_solved` and :func:`solve_times` time how long a
  model takes to solve a task such as the adding problem.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from lstm_lab import scratch
from lstm_lab.checks import check_flag, check_int
from lstm_lab.runtime import eval_mode, seed_everything
from lstm_lab.tasks import as_tensors, continual_embedded_reber
from lstm_lab.train import History, predict, running_mean, train

__all__ = [
    "SeedEnsemble",
    "stacked_batches",
    "MemberLosses",
    "OdysseyResult",
    "run_odyssey",
    "StreamChunks",
    "ReberChunks",
    "CarriedStateLoss",
    "stream_losses",
    "long_range_accuracy",
    "cell_state_norms",
    "steps_to_solve",
    "stop_when_solved",
    "solve_times",
]


# ----------------------------------------------------------------------------- ensembles
class SeedEnsemble(nn.Module):
    """``s`` copies of one model, member ``j`` initialised after ``seed_everything(seeds[j])``.

    Parameters
    ----------
    make_model
        Builds one model (no arguments), e.g. ``lambda: SequenceModel(LSTM(8, 16), 4)``.
        It must have parameters and no buffers.
    seeds
        One int per member.

    ``forward(x)`` takes x (s, b, t, d), one batch per member, and returns the members'
    outputs (s, b, t, k): member ``j`` runs on ``x[j]`` with its own parameters.
    The stacked parameters are the ensemble's only parameters, so ``train`` with Adam and
    the sum of the members' losses trains every member exactly as a separate run would.
    The members run in the ensemble's mode (``train()`` or ``eval()``); in training mode
    each member draws its own dropout masks.
    """

    def __init__(self, make_model: Callable[[], nn.Module], seeds: Sequence[int]):
        super().__init__()
        seeds = tuple(int(s) for s in seeds)
        if not seeds:
            raise ValueError("seeds must hold at least one seed")
        models = []
        for seed in seeds:
            seed_everything(seed)
            models.append(make_model())
        if any(True for _ in models[0].buffers()):
            raise ValueError("SeedEnsemble supports models without buffers only")
        params, _ = stack_module_state(models)  # name -> (s, *shape)
        self.seeds = seeds
        self.names = tuple(params)
        self.stacked = nn.ParameterList([nn.Parameter(params[n]) for n in self.names])
        # The template holds the structure only (meta tensors); it is not a submodule, so
        # .to() and .parameters() see the stacked parameters alone.
        self.__dict__["_template"] = copy.deepcopy(models[0]).to("meta")

    @property
    def size(self) -> int:
        """``s``, the number of members."""
        return len(self.seeds)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != self.size:
            raise ValueError(f"x must have one batch per member: shape (s={self.size}, ...), got {tuple(x.shape)}")
        template, names = self._template, self.names

        def one(weights, x_j):  # one member: x_j (b, t, d) -> (b, t, k)
            return functional_call(template, dict(zip(names, weights)), (x_j,))[0]

        template.train(self.training)  # not a submodule: .train() and .eval() do not reach it
        # randomness="different": in training mode each member draws its own dropout masks
        return vmap(one, randomness="different")(tuple(self.stacked), x)  # (s, b, t, k)

    def member(self, j: int) -> nn.Module:
        """A stand-alone copy of member ``j``: an ordinary model with its trained parameters."""
        if not 0 <= j < self.size:
            raise IndexError(f"member must be in [0, {self.size}), got {j}")
        first = self.stacked[0]
        model = copy.deepcopy(self._template).to_empty(device=first.device).to(first.dtype)
        with torch.no_grad():
            for name, p in zip(self.names, self.stacked):
                model.get_parameter(name).copy_(p[j])
        return model.eval()


def stacked_batches(make_batch: Callable[[np.random.Generator], tuple], size: int):
    """A ``make_batch`` for an ensemble: ``size`` batches drawn one after another, stacked.

    Each array of the result gets a leading member axis: (s, b, ...).
    """

    def make(rng):
        parts = [make_batch(rng) for _ in range(size)]
        return tuple(np.stack(arrays) for arrays in zip(*parts))

    return make


class _Outputs(nn.Module):
    """A stand-in for one member of an ensemble: returns that member's outputs, already computed."""

    def __init__(self, out: torch.Tensor):
        super().__init__()
        self.out = out

    def forward(self, x, state=None):
        return self.out, None


class MemberLosses:
    """A ``loss_fn`` for :func:`lstm_lab.train.train` on a :class:`SeedEnsemble`.

    ``objective`` is an objective of :mod:`lstm_lab.train`, ``objective(model, x, *targets)``
    (e.g. :func:`lstm_lab.train.last_step_cross_entropy`), applied to each member. The call
    returns the sum of the members' losses (so each member gets exactly its own gradient) and
    records every member's loss; :attr:`losses` is then an array (s, steps).
    """

    def __init__(self, objective: Callable[..., torch.Tensor]):
        self.objective = objective
        self._steps: list[torch.Tensor] = []

    def __call__(self, ensemble: SeedEnsemble, x: torch.Tensor, *targets: torch.Tensor) -> torch.Tensor:
        out = ensemble(x)  # (s, b, t, k)
        losses = torch.stack([self.objective(_Outputs(out[j]), x[j], *(y[j] for y in targets))
                              for j in range(out.shape[0])])
        self._steps.append(losses.detach())
        return losses.sum()

    @property
    def losses(self) -> np.ndarray:
        if not self._steps:
            return np.zeros((0, 0))
        return torch.stack(self._steps, dim=1).cpu().numpy()  # (s, steps)


# ----------------------------------------------------------------------------- the odyssey
@dataclass
class OdysseyResult:
    """What :func:`run_odyssey` measured.

    ``metrics[variant][name]`` is an array (s,), one value per seed; ``train_losses[variant]``
    an array (s, steps); ``num_params[variant]`` the parameter count of one model.
    """

    variants: tuple[str, ...]
    seeds: tuple[int, ...]
    metrics: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    train_losses: dict[str, np.ndarray] = field(default_factory=dict)
    num_params: dict[str, int] = field(default_factory=dict)

    def values(self, metric: str) -> dict[str, np.ndarray]:
        """``{variant: per-seed values (s,)}`` of one metric."""
        if metric not in self.metrics[self.variants[0]]:
            raise KeyError(f"unknown metric {metric!r}; measured: {', '.join(self.metrics[self.variants[0]])}")
        return {v: self.metrics[v][metric] for v in self.variants}

    def table(self, metric: str, *, decimals: int = 3, sort: bool = True, lower_is_better: bool = True) -> str:
        """A plain-text table: one row per variant with the median, mean, min and max over
        the seeds, and every seed's value; sorted from best to worst if ``sort`` (by the
        median, ties broken by the mean)."""
        vals = self.values(metric)
        order = list(self.variants)
        if sort:  # by the median, ties broken by the mean
            sign = 1 if lower_is_better else -1
            order.sort(key=lambda v: (sign * np.median(vals[v]), sign * vals[v].mean()))
        fmt = f"{{:>{decimals + 4}.{decimals}f}}"
        cols = ("median", "mean", "min", "max")
        head = f"{'variant':<9}{'params':>7}" + "".join(f"{c:>{decimals + 4}}" for c in cols)
        lines = [f"{metric} over seeds {', '.join(map(str, self.seeds))}", head + "   per seed"]
        for v in order:
            a = vals[v]
            stats = (np.median(a), a.mean(), a.min(), a.max())
            row = f"{v:<9}{self.num_params[v]:>7}" + "".join(fmt.format(s) for s in stats)
            lines.append(row + "   " + " ".join(f"{x:.{decimals}f}" for x in a))
        return "\n".join(lines)


def run_odyssey(
    make_model: Callable[[str], nn.Module],
    make_batch: Callable[[np.random.Generator], tuple],
    objective: Callable[..., torch.Tensor],
    evaluate: Callable[[nn.Module], Mapping[str, float]],
    *,
    variants: Sequence[str],
    seeds: Sequence[int],
    steps: int,
    lr: float = 1e-2,
    data_seed: int = 0,
    device: str | torch.device = "auto",
) -> OdysseyResult:
    """Train every variant with every seed and measure each trained model.

    Parameters
    ----------
    make_model
        ``make_model(variant)`` builds one model, e.g.
        ``lambda v: SequenceModel(LSTM(8, 16, variant=v, method="cell"), 4)``.
    make_batch
        ``make_batch(rng)`` returns one batch ``(x, *targets)`` as for :func:`lstm_lab.train.train`.
    objective
        an objective of :mod:`lstm_lab.train`, e.g. :func:`lstm_lab.train.last_step_cross_entropy`.
    evaluate
        ``evaluate(model) -> {metric: float}`` for one trained model (in eval mode).
    variants, seeds
        Every variant is trained once per seed; seed ``j`` initialises the model, and the
        members of one variant draw different batches from one stream seeded by
        ``data_seed`` (the same stream for every variant).
    steps, lr
        Adam steps and learning rate.
    """
    seeds = tuple(int(s) for s in seeds)
    result = OdysseyResult(variants=tuple(variants), seeds=seeds)
    for variant in result.variants:
        ensemble = SeedEnsemble(lambda: make_model(variant), seeds)  # noqa: B023
        loss_fn = MemberLosses(objective)
        train(ensemble, stacked_batches(make_batch, len(seeds)), loss_fn, steps=steps, lr=lr,
              seed=data_seed, device=device)
        result.train_losses[variant] = loss_fn.losses
        members = [ensemble.member(j) for j in range(len(seeds))]
        result.num_params[variant] = sum(p.numel() for p in members[0].parameters())
        measured = [dict(evaluate(m)) for m in members]
        result.metrics[variant] = {k: np.array([m[k] for m in measured]) for k in measured[0]}
    return result


# ----------------------------------------------------------------------------- continual Reber
def long_range_accuracy(model: nn.Module, stream: Mapping[str, np.ndarray]) -> float:
    """Accuracy of the most likely next symbol at the long-range steps of a Reber stream.

    ``stream`` is a dict from :func:`lstm_lab.tasks.continual_embedded_reber`; the model
    (a :class:`lstm_lab.nn.SequenceModel` with 7 outputs) runs over the whole of ``stream["x"]``
    from a zero state, never reset. At a long-range step the target is the penultimate
    ``T``/``P`` of an embedded string, which must repeat the string's second symbol.
    """
    guess = predict(model, stream["x"]).argmax(-1).cpu().numpy()  # (b, t)
    where = np.asarray(stream["long_range"], dtype=bool)
    return float((guess == stream["y"])[where].mean())


def cell_state_norms(model: nn.Module, x: np.ndarray) -> np.ndarray:
    """Mean over the batch of ``||c_t||`` at every step, from the NumPy LSTM.

    ``model`` is a :class:`lstm_lab.nn.SequenceModel` whose core is a one-layer
    :class:`lstm_lab.nn.LSTM` (any variant) fed ``x`` (b, t, d) directly (no embedding).
    Its weights are copied with ``scratch_params()`` and ``x`` is run through
    :func:`lstm_lab.scratch.lstm_forward` in float64. Returns an array (t,).
    """
    core = model.core
    _, cache = scratch.lstm_forward(np.asarray(x, dtype=np.float64), core.scratch_params(), variant=core.variant)
    return np.linalg.norm(cache["cs"], axis=-1).mean(axis=0)  # (b, t, h) -> (t,)


# ----------------------------------------------------------------------------- time to solve
def steps_to_solve(losses: Sequence[float] | History, *, threshold: float, window: int) -> int | None:
    """The first step count ``n >= window`` at which the mean of the last ``window`` losses
    is below ``threshold``; None if that never happens."""
    losses = np.asarray(getattr(losses, "losses", losses), dtype=float)
    if losses.size < window:
        return None
    means = running_mean(losses, window)[window - 1 :]  # means[i]: steps i+1 .. i+window
    below = np.flatnonzero(means < threshold)
    return int(below[0] + window) if below.size else None


def stop_when_solved(*, threshold: float, window: int) -> Callable[[int, History], bool]:
    """A ``stop_when`` for :func:`lstm_lab.train.train`: stop as soon as
    :func:`steps_to_solve` would report the current step."""

    def stop(step: int, history: History) -> bool:
        n = len(history.losses)
        return n >= window and float(np.mean(history.losses[-window:])) < threshold

    return stop


def solve_times(
    make_model: Callable[[], nn.Module],
    make_batch: Callable[[np.random.Generator], tuple],
    loss_fn: Callable[..., torch.Tensor],
    *,
    seeds: Sequence[int],
    max_steps: int,
    threshold: float,
    window: int,
    lr: float = 1e-3,
    clip_norm: float | None = None,
    device: str | torch.device = "auto",
) -> list[int | None]:
    """Train one model per seed until it solves the task; the steps each needed (None: not
    within ``max_steps``). Seed ``j`` initialises the model and draws its batches."""
    out = []
    for seed in seeds:
        seed_everything(int(seed))
        model = make_model()
        history = train(model, make_batch, loss_fn, steps=max_steps, lr=lr, clip_norm=clip_norm,
                        device=device, seed=int(seed), stop_when=stop_when_solved(threshold=threshold, window=window))
        out.append(steps_to_solve(history, threshold=threshold, window=window))
    return out


class StreamChunks:
    """A ``make_batch`` that reads ``b`` parallel streams in consecutive chunks of ``chunk`` steps.

    ``x`` (b, n) (ids, or features (b, n, d)) and ``y`` (b, n) are the streams and their targets,
    e.g. from :func:`lstm_lab.tasks.token_streams`. Each call returns ``(x (b, chunk, ...),
    y (b, chunk), fresh)``: the next chunk of every stream. After the last whole chunk it starts
    again at the beginning (a tail shorter than a chunk is never served), and ``fresh`` (a 0-d
    bool array) is True for the first chunk of each pass, so that :class:`CarriedStateLoss`
    starts from zeros there and carries its state everywhere else.
    """

    def __init__(self, x, y, *, chunk: int):
        x, y = np.asarray(x), np.asarray(y)
        if x.ndim < 2 or y.shape != x.shape[:2]:
            raise ValueError(f"x must be (b, n) or (b, n, d) and y (b, n), got shapes {x.shape} and {y.shape}")
        self.chunk = check_int(chunk, "chunk", minimum=1, maximum=x.shape[1])
        self.chunks_per_stream = x.shape[1] // self.chunk
        self._stream = (x, y)
        self._next = 0

    def next_stream(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The streams of the next pass: the same ones every time (subclasses draw new ones)."""
        return self._stream

    def __call__(self, rng: np.random.Generator):
        if self._next == 0:
            self._stream = self.next_stream(rng)
        x, y = self._stream
        part = slice(self._next * self.chunk, (self._next + 1) * self.chunk)
        fresh = np.array(self._next == 0)
        self._next = (self._next + 1) % self.chunks_per_stream
        return x[:, part], y[:, part], fresh


class ReberChunks(StreamChunks):
    """A ``make_batch`` that serves continual embedded Reber streams in consecutive chunks.

    Each call returns ``(x (b, chunk, 7), y (b, chunk), fresh)``: the next ``chunk`` symbols
    of ``b`` streams and their next-symbol targets. Every ``chunks_per_stream`` calls it draws
    ``b`` new streams (with the generator it is given) and ``fresh`` is True (a 0-d bool
    array): a model that carries its state from chunk to chunk (:class:`CarriedStateLoss`)
    starts again from zeros there, and nowhere else.
    """

    def __init__(self, *, batch_size: int, chunk: int, chunks_per_stream: int):
        self.batch_size = check_int(batch_size, "batch_size", minimum=1)
        self.chunk = check_int(chunk, "chunk", minimum=1)
        self.chunks_per_stream = check_int(chunks_per_stream, "chunks_per_stream", minimum=1)
        self._next = 0

    def next_stream(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        stream = continual_embedded_reber(
            batch_size=self.batch_size, length=self.chunk * self.chunks_per_stream, rng=rng
        )
        return stream["x"], stream["y"]


class CarriedStateLoss:
    """A ``loss_fn`` for :func:`lstm_lab.train.train`: next-symbol cross-entropy at every step,
    with the model's final state carried (detached) into the next call.

    Called as ``loss_fn(model, x, y, fresh)`` with batches from :class:`StreamChunks` or
    :class:`ReberChunks`; the state restarts from zeros when ``fresh`` is True. Backpropagation
    stops at the chunk's start (truncated BPTT), but the forward pass never forgets: the model
    sees one long stream. With ``carry=False`` every chunk starts from zeros instead (the
    baseline that carrying the state is measured against).
    """

    def __init__(self, carry: bool = True):
        self.carry = check_flag(carry, "carry")
        self.state = None

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, fresh: torch.Tensor) -> torch.Tensor:
        if bool(fresh) or not self.carry:
            self.state = None
        out, state = model(x, self.state)  # (b, chunk, k)
        # eq-tbptt: the next chunk starts from this state as a constant; no gradient flows back into this chunk
        self.state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
        return nn.functional.cross_entropy(out.flatten(0, 1), y.flatten())


@torch.no_grad()
def stream_losses(model: nn.Module, x, y, *, chunk: int, carry: bool = True) -> np.ndarray:
    """The cross-entropy of ``model`` at every step of ``b`` streams read in chunks, in eval mode.

    ``x`` (b, n) ids (or (b, n, d) features) and ``y`` (b, n) targets, e.g. from
    :func:`lstm_lab.tasks.token_streams`; ``model`` maps a chunk and a state to ``(logits
    (b, chunk, k), state)``. With ``carry`` the state runs on from chunk to chunk (the model
    reads one long stream, so ``chunk`` only bounds the memory used); without it every chunk
    starts from zeros. Returns float64 (b, m * chunk), m = n // chunk: a tail shorter than a
    chunk is left out, so the losses of a reset model can be averaged by position in the chunk.
    """
    first = next(model.parameters())
    x_all, y_all = as_tensors(x, y, device=first.device)
    if x_all.is_floating_point():
        x_all = x_all.to(first.dtype)
    chunk = check_int(chunk, "chunk", minimum=1, maximum=x_all.shape[1])
    state, losses = None, []
    with eval_mode(model):
        for start in range(0, x_all.shape[1] - chunk + 1, chunk):
            part = slice(start, start + chunk)
            out, state = model(x_all[:, part], state if carry else None)  # (b, chunk, k)
            loss = nn.functional.cross_entropy(out.transpose(1, 2), y_all[:, part], reduction="none")  # (b, chunk)
            losses.append(loss.double().cpu().numpy())
    return np.concatenate(losses, axis=1)
