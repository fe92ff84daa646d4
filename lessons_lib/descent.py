"""Plain gradient descent on any differentiable loss, and the :class:`Trajectory` record.

Single-run optimisers return a :class:`Trajectory`. Divergence is data, not a cascade of NaN, with
the one meaning of :mod:`lessons_lib.run`: the run stops at the first step where the iterate leaves
the ball of radius ``blowup * max(1, ||x0||)`` (or stops being finite) and says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch.func import grad

from .backend import Record, as_tensor, check_callable, check_float_tensor, check_positive
from .run import run


@dataclass(frozen=True)
class Trajectory(Record):
    """Iterates of an optimiser.

    Attributes:
        params: iterates ``x_0 .. x_K``, shape ``(K + 1, n)``; they end at divergence.
        loss: loss at each iterate, shape ``(K + 1,)``.
        lr: the learning rate used.
        diverged: whether the run blew up.
        diverged_at: the step at which the run left the blow-up ball (``None`` if it did not); the
            last iterate is the first one outside the ball, or the one before it when that one is
            not finite or its norm overflows (see :mod:`lessons_lib.run`).
    """

    params: torch.Tensor
    loss: torch.Tensor
    lr: float
    diverged: bool = False
    diverged_at: int | None = None

    @property
    def steps(self) -> int:
        """Number of steps actually taken (``len(params) - 1``)."""
        return self.params.shape[0] - 1


def check_lr(lr: float) -> float:
    """Validate a learning rate: a finite number ``>= 0`` (0 is allowed: nothing moves)."""
    return check_positive(lr, name="lr", allow_zero=True)


def iterate(step: Callable[[torch.Tensor], torch.Tensor], loss_fn: Callable[[torch.Tensor], torch.Tensor],
            x0: torch.Tensor, *, lr: float, steps: int, blowup: float = 1e6) -> Trajectory:
    """Run ``x <- step(x)`` for ``steps`` steps with :func:`lessons_lib.run.run`, recording every
    iterate and its loss; the trajectory ends at divergence (``diverged_at`` is its last index).
    ``lr`` is the label stored in the trajectory: a rate ``>= 0``, or NaN when the rate varies."""
    check_callable(step, name="step")
    check_callable(loss_fn, name="loss_fn")
    x0 = as_tensor(x0, name="x0", dtype=None)
    if not (isinstance(lr, float) and math.isnan(lr)):
        lr = check_lr(lr)
    out = run(lambda x, t, eta: step(x), x0, steps=steps, blowup=blowup,
              record=lambda x, t: {"params": x, "loss": loss_fn(x)})
    return Trajectory(out.history["params"], out.history["loss"], lr, bool(out.diverged), out.diverged_step)


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


def adam_direction(g: torch.Tensor, m: torch.Tensor, v: torch.Tensor, t: int, *,
                   betas: tuple[float, float] = (0.9, 0.999),
                   eps: float = 1e-8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One Adam moment update and its bias-corrected direction ``p`` (the step is ``-lr * p``).

    ``m <- b1 m + (1 - b1) g``, ``v <- b2 v + (1 - b2) g^2`` and ``p = m_hat / (sqrt(v_hat) + eps)`` with
    ``m_hat = m / (1 - b1^t)``, ``v_hat = v / (1 - b2^t)`` (Kingma & Ba 2015, Adam: A Method for
    Stochastic Optimization, arXiv 1412.6980, Algorithm 1); it matches :class:`torch.optim.Adam` without
    weight decay. Returning the direction rather than the new parameters lets a caller choose the
    step's length, as the step-capping controllers of the book do.

    Args:
        g: gradient, any shape.
        m: first moment, same shape (zeros at the start).
        v: second moment, same shape (zeros at the start).
        t: the step's number, counted from 1.
        betas: decay rates ``(b1, b2)``, each in ``[0, 1)``.
        eps: added to ``sqrt(v_hat)``, ``> 0``.

    Returns:
        ``(p, m, v)``: the direction and the updated moments.
    """
    if isinstance(t, bool) or not isinstance(t, int) or t < 1:
        raise ValueError(f"t: expected the step's number counted from 1, got {t!r}")
    b1, b2 = (float(b) for b in betas)
    if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
        raise ValueError(f"betas: expected two numbers in [0, 1), got {betas!r}")
    eps = check_positive(eps, name="eps")
    g, m, v = (check_float_tensor(x, name=name) for x, name in ((g, "g"), (m, "m"), (v, "v")))
    if not g.shape == m.shape == v.shape:
        raise ValueError(f"m, v: expected the shape of g, {tuple(g.shape)}, got {tuple(m.shape)} and {tuple(v.shape)}")
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    p = (m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt() + eps)
    return p, m, v
