"""Plain gradient descent on any differentiable loss, and the :class:`Trajectory` record.

Every runner in the book returns a :class:`Trajectory`. Divergence is data, not a cascade of NaN:
a run stops at the first step where the iterate leaves a ball of radius
``blowup * max(1, ||x0||)`` or the loss stops being finite, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch.func import grad

from .backend import as_tensor, check_count, check_positive, to_host


@dataclass(frozen=True)
class Trajectory:
    """Iterates of an optimiser.

    Attributes:
        params: iterates ``x_0 .. x_K``, shape ``(K + 1, n)``; truncated at divergence.
        loss: loss at each iterate, shape ``(K + 1,)``.
        lr: the learning rate used.
        diverged: whether the run blew up.
        diverged_at: index of the first iterate outside the blow-up ball (``None`` if it did not).
    """

    params: torch.Tensor
    loss: torch.Tensor
    lr: float
    diverged: bool = False
    diverged_at: int | None = None

    def __post_init__(self):
        to_host(self)  # records are read on the host (see backend.to_host)

    @property
    def steps(self) -> int:
        """Number of steps actually taken (``len(params) - 1``)."""
        return self.params.shape[0] - 1


def check_lr(lr: float) -> float:
    """Validate a learning rate: a finite number ``>= 0`` (0 is allowed: nothing moves)."""
    return check_positive(lr, name="lr", allow_zero=True)


def iterate(step: Callable[[torch.Tensor], torch.Tensor], loss_fn: Callable[[torch.Tensor], torch.Tensor],
            x0: torch.Tensor, *, lr: float, steps: int, blowup: float = 1e6) -> Trajectory:
    """Run ``x <- step(x)`` for ``steps`` steps, recording losses and stopping at divergence."""
    steps = check_count(steps, name="steps", minimum=0)
    blowup = check_positive(blowup, name="blowup")
    radius = blowup * max(1.0, float(x0.norm()))
    xs, losses = [x0], [loss_fn(x0)]
    for k in range(1, steps + 1):
        x = step(xs[-1])
        f = loss_fn(x)
        xs.append(x)
        losses.append(f)
        if not bool(torch.isfinite(f)) or not bool(torch.isfinite(x).all()) or float(x.norm()) > radius:
            return Trajectory(torch.stack(xs), torch.stack(losses), lr, True, k)
    return Trajectory(torch.stack(xs), torch.stack(losses), lr)


def gd(loss_fn: Callable[[torch.Tensor], torch.Tensor], x0, *, lr: float, steps: int,
       blowup: float = 1e6) -> Trajectory:
    """Gradient descent ``x_{k+1} = x_k - lr * grad L(x_k)`` (eq-lr-gd-update) on any loss.

    Args:
        loss_fn: maps a parameter tensor of shape ``(n,)`` to a scalar (differentiated with
            :func:`torch.func.grad`).
        x0: starting point, shape ``(n,)``.
        lr: learning rate ``eta >= 0``.
        steps: number of steps ``K >= 0``.
        blowup: divergence radius, relative to ``max(1, ||x0||)``.

    Returns:
        A :class:`Trajectory` with ``K + 1`` iterates (fewer if it diverged).
    """
    lr = check_lr(lr)
    if not callable(loss_fn):
        raise ValueError(f"loss_fn: expected a callable, got {type(loss_fn).__name__}")
    x0 = as_tensor(x0, name="x0")
    if x0.ndim != 1:
        raise ValueError(f"x0: expected a flat tensor of shape (n,), got {tuple(x0.shape)}")
    g = grad(loss_fn)
    return iterate(lambda x: x - lr * g(x), loss_fn, x0, lr=lr, steps=steps, blowup=blowup)
