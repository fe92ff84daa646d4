"""The one training loop of the book: batched runs, recording, schedules, and divergence as data.

Every trainer in ``lessons_lib`` is a *step function* handed to :func:`run`; the loop itself, the
recording of histories, the learning-rate schedule and the handling of divergence are written here
once.

**What "diverged" means, everywhere in the book.** A run diverges at the first step ``k`` at which
its state leaves the ball of radius ``blowup * max(1, ||state_0||)`` around the origin, or stops
being finite. ``||state||`` is the Euclidean norm of all of the run's tensors together, computed in
float64, and the test is made after every step; a state whose squared norm overflows float64 (a
norm beyond about ``1e154``) counts as not finite. From then on the run is *frozen*: its state stays
at the last finite state (the first one outside the ball when that one is still finite, else the one
before it), so no state in a history is NaN or infinite and a diverged run is never zeroed (a
quantity the record function derives from a state, such as a loss, can still overflow when ``blowup``
puts the radius beyond about ``1e150``). The record carries ``diverged`` and ``diverged_at = k``.
When every run of a batch has diverged the loop stops, so histories end at the step of the last
divergence.

**Batches.** With ``batched=True`` every tensor of the state has a leading run dimension ``R``, and
each run diverges and freezes on its own (``diverged`` and ``diverged_at`` have shape ``(R,)``).

**Learning rates.** ``lr`` is a number, a sequence of ``R`` per-run values, or a schedule from
:mod:`lessons_lib.schedules` (any pure function of the step count). Step ``t`` (the update from
``state_t`` to ``state_{t+1}``) uses ``lr(t)``, following the schedules' conventions.

Example:
    GD on ``f(x) = x^2 / 2``: ``run(lambda x, t, lr: x - lr * x, torch.tensor([1.0]), steps=10, lr=0.5)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Union

import torch

from .backend import Record, check_count, check_flag, check_float_tensor, check_positive, check_real

State = Union[torch.Tensor, tuple]
StepFn = Callable[[State, int, Union[float, torch.Tensor]], State]
RecordFn = Callable[[State, int], dict]


@dataclass(frozen=True)
class Run(Record):
    """What :func:`run` returns (on the host, like every record).

    Attributes:
        steps: the steps at which the histories were recorded, long tensor of shape ``(K,)``.
        history: ``name -> tensor of shape (K, ...)``, one entry per key of the record function.
        state: the final state, with diverged runs frozen at their last finite state.
        diverged: bool tensor, shape ``(R,)`` for batched runs and ``()`` otherwise.
        diverged_at: long tensor of the same shape, ``-1`` where a run did not diverge.
        lr: the learning rate of every step, shape ``(T,)`` or ``(T, R)`` (``T`` steps asked for).
    """

    steps: torch.Tensor
    history: dict = field(default_factory=dict)
    state: State = ()
    diverged: torch.Tensor = None  # type: ignore[assignment]
    diverged_at: torch.Tensor = None  # type: ignore[assignment]
    lr: torch.Tensor = None  # type: ignore[assignment]

    def on_grid(self, steps: int, record_every: int = 1) -> tuple[torch.Tensor, dict]:
        """The histories at every step of the grid ``0, record_every, ..., steps`` (and ``steps``).

        After the loop stopped early (every run diverged) the frozen state's last record is repeated,
        so a caller can return histories of a fixed length whatever happened.

        Returns:
            ``(grid, history)``: the grid's steps, shape ``(K,)``, and each history at those steps.
        """
        steps = check_count(steps, name="steps", minimum=0)
        record_every = check_count(record_every, name="record_every")
        grid = torch.tensor(sorted({*range(0, steps + 1, record_every), steps}), dtype=torch.long)
        last = int(self.steps[-1])
        recorded = set(self.steps.tolist())
        missing = [t for t in grid.tolist() if t <= last and t not in recorded]
        if missing:
            raise ValueError(f"record_every: the run recorded steps {self.steps[:4].tolist()}..., not step "
                             f"{missing[0]} of the asked grid; record at least as often as the grid")
        rows = (torch.searchsorted(self.steps, grid, right=True) - 1).clamp(min=0)
        return grid, {name: h[rows] for name, h in self.history.items()}

    @property
    def diverged_step(self) -> int | None:
        """For an unbatched run: the step at which it diverged, or ``None``."""
        return int(self.diverged_at) if bool(self.diverged) else None


def _tensors(state: State, name: str = "state0") -> tuple[torch.Tensor, ...]:
    if isinstance(state, torch.Tensor):
        return (state,)
    if isinstance(state, tuple) and state and all(isinstance(s, torch.Tensor) for s in state):
        return state
    raise ValueError(f"{name}: expected a tensor or a non-empty tuple of tensors, got {type(state).__name__}")


def _size(state: State, batched: bool) -> torch.Tensor:
    """Euclidean norm of the whole state (per run when batched); NaN or inf when it is not finite
    or its square overflows float64 (a norm above about 1e154). Such a state counts as not finite,
    so the run freezes at the state before it, and whatever is recorded from it stays finite."""
    parts = _tensors(state, "step")
    if batched:
        squares = sum(p.reshape(p.shape[0], -1).double().pow(2).sum(dim=1) for p in parts)
    else:
        squares = sum(p.double().pow(2).sum() for p in parts)
    return squares.sqrt()


def _freeze(new: State, old: State, keep_new: torch.Tensor) -> State:
    def pick(n, o):
        mask = keep_new.reshape(keep_new.shape + (1,) * (n.ndim - keep_new.ndim))
        return torch.where(mask, n, o)

    if isinstance(new, torch.Tensor):
        return pick(new, old)
    return tuple(pick(n, o) for n, o in zip(new, old))


def learning_rates(lr, steps: int, *, runs: int | None = None, device=None) -> torch.Tensor:
    """The learning rate of every step as a float64 tensor of shape ``(steps,)`` or ``(steps, R)``.

    Args:
        lr: a number ``>= 0`` (or a 0-d tensor); a sequence (or 1-D tensor) of ``R`` per-run numbers
            (batched runs only); or a schedule,
            a callable mapping a tensor of steps to learning rates of the same shape, or of shape
            ``(steps, R)``.
        steps: number of steps ``T >= 0``.
        runs: the number of runs ``R`` of a batched call (checked against a per-run ``lr``).
        device: where the tensor lives.

    Raises:
        ValueError: naming ``lr`` if a value is negative or not finite, or the shape is wrong.
    """
    steps = check_count(steps, name="steps", minimum=0)
    if callable(lr):
        t = torch.arange(steps, device=device)
        values = torch.as_tensor(lr(t), dtype=torch.float64).to(device if device is not None else t.device)
        if values.shape not in ((steps,), (steps, runs)):
            raise ValueError(f"lr: a schedule must return one learning rate per step, got shape {tuple(values.shape)}")
    elif isinstance(lr, bool):
        raise ValueError("lr: expected a number, a sequence of numbers or a schedule, got a bool")
    elif isinstance(lr, (int, float)):
        values = torch.full((steps,), float(lr), dtype=torch.float64, device=device)
    else:
        try:
            per_run = torch.as_tensor(lr, dtype=torch.float64, device=device)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"lr: expected a number, a sequence of numbers or a schedule, got {lr!r}") from None
        if per_run.ndim == 0:  # a 0-d tensor or NumPy scalar: a constant
            values = per_run.expand(steps)
        elif per_run.ndim != 1 or per_run.numel() == 0 or (runs is not None and per_run.numel() != runs):
            raise ValueError(f"lr: expected one learning rate per run ({runs}), got shape {tuple(per_run.shape)}")
        else:
            values = per_run.expand(steps, -1)
    if not bool(torch.isfinite(values).all()) or bool((values < 0).any()):
        raise ValueError("lr: learning rates must be finite and >= 0")
    return values


def run(step: StepFn, state0: State, *, steps: int, lr=0.0, record: RecordFn | None = None,
        record_every: int = 1, blowup: float = 1e6, batched: bool = False) -> Run:
    """Iterate ``state_{t+1} = step(state_t, t, lr_t)`` for ``t = 0 .. steps - 1``, recording as it goes.

    Args:
        step: the update. It receives the state, the step count ``t`` and the learning rate of that
            step (a float for a constant ``lr``, else a 0-d tensor, or a tensor of shape ``(R,)`` for
            per-run rates), and returns a new state of the same structure. It must not modify its
            input in place. Randomness is drawn inside ``step`` from the caller's generator.
        state0: the start: a tensor or a tuple of tensors (leading run dimension ``R`` if ``batched``).
        steps: number of updates ``T >= 0``.
        lr: a number, ``R`` per-run numbers, or a schedule (see :func:`learning_rates`).
        record: ``(state, t) -> {name: tensor}``, called at ``t = 0``, every ``record_every`` steps,
            at the last step and at the step where the last run diverged. Default: the state itself
            under ``"params"`` (a tensor state only).
        record_every: recording interval ``>= 1``.
        blowup: divergence radius relative to ``max(1, ||state_0||)`` (module docstring), ``> 0``.
        batched: whether the state carries a leading run dimension.

    Returns:
        A :class:`Run`.
    """
    if not callable(step):
        raise ValueError(f"step: expected a callable (state, t, lr) -> state, got {type(step).__name__}")
    steps = check_count(steps, name="steps", minimum=0)
    record_every = check_count(record_every, name="record_every")
    blowup = check_positive(blowup, name="blowup")
    batched = check_flag(batched, name="batched")
    parts = _tensors(state0)
    if record is not None and not callable(record):
        raise ValueError(f"record: expected a callable (state, t) -> dict of tensors, got {type(record).__name__}")
    if record is None:
        if not isinstance(state0, torch.Tensor):
            raise ValueError("record: needed when the state is a tuple of tensors")
        record = lambda s, t: {"params": s}  # noqa: E731
    runs = None
    if batched:
        if any(p.ndim == 0 for p in parts) or len({p.shape[0] for p in parts}) != 1:
            raise ValueError("state0: batched runs need the same leading run dimension on every tensor")
        runs = parts[0].shape[0]
    device = parts[0].device
    lrs = learning_rates(lr, steps, runs=runs, device=device)
    if not batched and lrs.ndim == 2:
        raise ValueError("lr: one learning rate per run needs batched=True; pass a number or a schedule")
    constant = isinstance(lr, (int, float))
    size0 = _size(state0, batched)
    if not bool(torch.isfinite(size0).all()):
        raise ValueError("state0: contains NaN or infinite values")
    radius = blowup * size0.clamp(min=1.0)
    if math.isinf(blowup * max(1.0, float(size0.max()))):
        radius = torch.full_like(size0, math.inf)
    limit = radius.clamp(max=torch.finfo(torch.float64).max)  # NaN and inf sizes are never inside
    active = torch.ones_like(size0, dtype=torch.bool)
    all_active = True
    at = torch.full(size0.shape, -1, dtype=torch.long, device=device)

    rec_steps, rows = [], []

    def keep(state, t):
        rec_steps.append(t)
        rows.append(record(state, t))

    state = state0
    keep(state, 0)
    for t in range(steps):
        eta = float(lr) if constant else lrs[t]
        new = step(state, t, eta)
        if isinstance(new, torch.Tensor) != isinstance(state0, torch.Tensor) or len(_tensors(new, "step")) != len(
                parts):
            raise ValueError("step: must return a state of the same structure as state0")
        size = _size(new, batched)
        inside = size <= limit
        stop = False
        if all_active and bool(inside.all()):  # the common step: every run moves on
            state = new
        else:  # some run left the ball now, or some run is frozen: freeze run by run
            bad = active & ~inside
            at = torch.where(bad, torch.full_like(at, t + 1), at)
            state = _freeze(new, state, active & torch.isfinite(size))
            active, all_active = active & ~bad, False
            stop = not bool(active.any())
        if (t + 1) % record_every == 0 or t + 1 == steps or stop:
            keep(state, t + 1)
        if stop:
            break
    history = {name: torch.stack([r[name] for r in rows]) for name in rows[0]}
    return Run(steps=torch.tensor(rec_steps, dtype=torch.long), history=history, state=state,
               diverged=at >= 0, diverged_at=at, lr=lrs)


def per_run(values: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor | float:
    """Reshape per-run values of shape ``(R,)`` to broadcast against ``like`` of shape ``(R, ...)``.

    Runs every step: types are checked, finiteness only for a Python number (no per-step sync).
    """
    check_float_tensor(like, name="like")
    if not isinstance(values, torch.Tensor):
        return check_real(values, name="values")
    if values.ndim == 1:
        return values.reshape(values.shape + (1,) * (like.ndim - 1))
    return values
