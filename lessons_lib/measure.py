"""Measuring a run, not making one: first crossings, steps to a tolerance, plateaus, log-log slopes.

These helpers read histories returned by the trainers (tensors indexed by recorded steps) and never
train anything themselves. Histories have the recorded steps as their first dimension.
"""

from __future__ import annotations

import numpy as np
import torch

from .backend import as_tensor, check_positive, check_real


def _steps_of(history: torch.Tensor, steps) -> torch.Tensor:
    if steps is None:
        return torch.arange(history.shape[0], device=history.device)
    steps = torch.as_tensor(steps, device=history.device)
    if steps.shape != history.shape[:1]:
        raise ValueError(f"steps: expected one step per row of the history ({history.shape[0]}), "
                         f"got shape {tuple(steps.shape)}")
    return steps


def _first(hit: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """The step of the first ``True`` of each column of ``hit`` (shape ``(K, ...)``), ``-1`` if none."""
    first = hit.to(torch.uint8).argmax(0)
    return torch.where(hit.any(0), steps[first], torch.full_like(first, -1))


# --- first crossings and steps to a tolerance ------------------------------------------------------

def first_crossing(history, targets, *, steps=None, fraction: float = 0.5) -> torch.Tensor:
    """First recorded step at which ``|history[:, i]| >= fraction * |targets[i]|``; ``-1`` if never.

    With ``fraction = 1/2`` this is the measured half-learning time, the counterpart of
    (eq-saddle-half-time) and (eq-saddle-diagonal-time).

    Args:
        history: ``(K, m)``, e.g. singular values or ``beta`` over the recorded steps.
        targets: ``(m,)``.
        steps: the step of each row, ``(K,)`` (default ``0 .. K-1``).
        fraction: the fraction of the target to reach, in ``(0, 1]``.

    Returns:
        Long tensor of shape ``(m,)``.

    References:
        Saxe, McClelland & Ganguli (2014), Exact solutions to the nonlinear dynamics of learning in
        deep linear neural networks, ICLR, arXiv:1312.6120.
    """
    history = as_tensor(history, name="history")
    targets = as_tensor(targets, name="targets", dtype=history.dtype, device=history.device)
    if history.ndim != 2 or targets.shape != history.shape[1:]:
        raise ValueError(f"history: expected (K, m) with m = len(targets), got {tuple(history.shape)}")
    fraction = check_real(fraction, name="fraction")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction: must lie in (0, 1], got {fraction}")
    return _first(history.abs() >= fraction * targets.abs(), _steps_of(history, steps))


def steps_below(loss, tol: float, *, steps=None) -> torch.Tensor:
    """First recorded step at which the loss is below ``tol``; ``-1`` if it never is.

    Args:
        loss: ``(K,)`` or ``(K, R)`` for ``R`` runs.
        tol: the tolerance, ``> 0``.
        steps: the step of each row, ``(K,)`` (default ``0 .. K-1``).

    Returns:
        Long tensor of shape ``()`` or ``(R,)``.
    """
    loss = as_tensor(loss, name="loss")
    tol = check_positive(tol, name="tol")
    if loss.ndim not in (1, 2) or loss.shape[0] == 0:
        raise ValueError(f"loss: expected a history of shape (K,) or (K, R), got {tuple(loss.shape)}")
    return _first(loss < tol, _steps_of(loss, steps))


# --- plateaus --------------------------------------------------------------------------------------

def plateau_levels(s) -> torch.Tensor:
    """Loss ``1/2 sum_{j >= i} s_j^2`` on the plateau after the first ``i`` modes were learned
    (eq-saddle-plateau-loss), for ``i = 0 .. m``; ``s`` sorted in decreasing order.

    Returns:
        ``(m + 1,)``, ending with ``0`` (every mode learned).

    References:
        Saxe, McClelland & Ganguli (2014), arXiv:1312.6120.
    """
    s = as_tensor(s, name="s")
    if s.ndim != 1:
        raise ValueError(f"s: expected a vector of mode strengths, got shape {tuple(s.shape)}")
    tail = torch.flip(torch.cumsum(torch.flip(s**2, (0,)), 0), (0,))
    return 0.5 * torch.cat([tail, tail.new_zeros(1)])


def plateau_losses(loss, times) -> torch.Tensor:
    """Loss at the flattest step between consecutive drops (eq-saddle-plateau-loss).

    Args:
        loss: per-step loss ``(K,)``.
        times: increasing drop steps (indices into ``loss``), ``(m,)``.

    Returns:
        ``(m - 1,)``: for each gap ``(times[i], times[i+1])`` the loss where ``|L_{k+1} - L_{k-1}|``
        is smallest.

    References:
        Zhang, Saxe & Latham (2026), Saddle-to-Saddle Dynamics Explains A Simplicity Bias Across
        Neural Network Architectures, ICLR, arXiv:2512.20607.
    """
    loss = as_tensor(loss, name="loss")
    times = as_tensor(times, name="times", dtype=None, device="cpu")
    if times.is_floating_point() and not bool((times == times.round()).all()):
        raise ValueError(f"times: expected integer steps, got {times.tolist()}")
    times = [int(t) for t in times.reshape(-1).tolist()]
    if any(b - a < 3 for a, b in zip(times, times[1:])) or not all(0 <= t < len(loss) for t in times):
        raise ValueError(f"times: expected increasing steps at least 3 apart within the loss, got {times}")
    out = []
    for a, b in zip(times, times[1:]):
        seg = loss[a:b + 1]
        out.append(seg[1 + int((seg[2:] - seg[:-2]).abs().argmin())])
    return torch.stack(out) if out else loss.new_zeros(0)


def count_plateaus(loss, *, lr: float, max_rate: float = 0.1, min_duration: float = 0.5,
                   floor: float = 1e-3) -> int:
    """Number of plateaus (eq-saddle-plateau-loss) in a per-step loss curve.

    A plateau is a stretch of at least ``min_duration`` time units (``t = lr * step``) in which the
    loss falls by less than ``max_rate`` (relative, per unit time) while above ``floor * L_0``.

    References:
        Zhang, Saxe & Latham (2026), arXiv:2512.20607.
    """
    loss = as_tensor(loss, name="loss")
    lr = check_positive(lr, name="lr")
    max_rate = check_positive(max_rate, name="max_rate")
    min_duration = check_positive(min_duration, name="min_duration")
    floor = check_positive(floor, name="floor", allow_zero=True)
    rate = -(torch.log(loss[1:]) - torch.log(loss[:-1])) / lr
    flat = ((rate < max_rate) & (loss[1:] > floor * loss[0])).tolist() + [False]
    count, length = 0, 0
    for f in flat:
        if f:
            length += 1
        else:
            count += length * lr >= min_duration
            length = 0
    return count


# --- log-log slopes --------------------------------------------------------------------------------

def loglog_slope(x, y) -> float:
    """Least-squares slope of ``log y`` against ``log x`` (a measured power law's exponent).

    Raises:
        ValueError: naming ``x`` or ``y`` if they differ in length, hold fewer than two points, or
            hold values that are not finite and positive.
    """
    lx, ly = (as_tensor(v, name=name, device="cpu").numpy() for name, v in (("x", x), ("y", y)))
    for name, v in (("x", lx), ("y", ly)):
        if v.ndim != 1 or v.size < 2 or not np.all(np.isfinite(v)) or not np.all(v > 0):
            raise ValueError(f"{name}: expected at least two finite positive values")
    if lx.shape != ly.shape:
        raise ValueError(f"y: expected as many values as x ({lx.size}), got {ly.size}")
    return float(np.polyfit(np.log(lx), np.log(ly), 1)[0])
