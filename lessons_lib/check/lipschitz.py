"""Self-checks of the chapter on local Lipschitz constants (local-lipschitz.ipynb)."""

from __future__ import annotations

from typing import Callable

import torch

from .. import lipschitz
from .core import CheckResult, _missing, check_function


def _cases() -> dict[str, tuple]:
    def t(*v):
        return torch.tensor(v, dtype=torch.float64)

    return {
        "three stable neurons (active, inactive, active) with g of either sign":
            (t(-1.0, 0.5, 2.0), t(3.0, 1.5, 4.0), t(0.5, -2.0, 0.1), t(2.0, -0.1, 1.0)),
        "unstable neurons with g in [-1, 3], g in [2, 4] and g in [-5, -2]":
            (t(-1.0, 2.0, -5.0), t(3.0, 4.0, -2.0), t(-1.0, -0.5, -3.0), t(2.0, 0.5, 1.0)),
        "a mix: one neuron of each kind, with a point interval for g":
            (t(0.7, -2.0, 1.0), t(0.7, -1.0, 2.5), t(0.3, -1.0, -4.0), t(0.9, 1.0, -1.0)),
    }


# the inputs (g_lo, g_hi, lo, hi) that relu_grad_interval hands the learner's function, by description
CASES = _cases()


def _stack(value):
    """The learner's pair ``(y_lo, y_hi)`` as one tensor of shape ``(2, n)``; anything else unchanged."""
    if _missing(value) or not isinstance(value, (tuple, list)) or len(value) != 2:
        return value
    try:
        return torch.stack([torch.as_tensor(v, dtype=torch.float64).detach().cpu() for v in value])
    except Exception:
        return value


def _reference(g_lo, g_hi, lo, hi):
    return _stack(lipschitz.relu_grad_interval(g_lo, g_hi, lo, hi))


def _hint(case, value) -> str:
    g_lo, g_hi, lo, hi = case
    v = torch.as_tensor(value, dtype=torch.float64)
    if v.shape != (2, len(g_lo)):
        return f"return a pair (y_lo, y_hi) of tensors of shape ({len(g_lo)},), like g_lo"
    y_lo, y_hi = v
    if bool((y_lo > y_hi + 1e-12).any()):
        return "some lower end lies above its upper end: return (y_lo, y_hi) in that order, lower end first"
    active, inactive = lo >= 0, hi <= 0
    unstable = ~(active | inactive)
    if bool(unstable.any()):
        u, g = v[:, unstable], torch.stack([g_lo, g_hi])[:, unstable]
        as_on, as_off = (u - g).abs().amax(0) < 1e-12, u.abs().amax(0) < 1e-12
        if bool(((as_on | as_off) & ((g[0] > 0) | (g[1] < 0) | as_off)).any()) and bool((u[0] > 0).any()
                                                                                     | (u[1] < 0).any()):
            return ("you treated a neuron whose pre-activation interval straddles 0 as if it were on (or off): "
                    "inside the ball it is both, so s ranges over all of [0, 1]")
    if bool(active.any()) and not torch.allclose(v[:, active], torch.stack([g_lo, g_hi])[:, active]):
        return "a neuron whose pre-activation is never negative has s = 1: there y is exactly g, so [g_lo, g_hi]"
    if bool(inactive.any()) and not bool((v[:, inactive] == 0).all()):
        return "a neuron whose pre-activation is never positive has s = 0: there y is exactly 0"
    if bool(unstable.any()):
        u = v[:, unstable]
        if bool((u[0] > 0).any() | (u[1] < 0).any()):
            return ("for a neuron whose pre-activation interval straddles 0, s can be 0 as well as 1, so y "
                    "can be 0: the interval must contain 0")
        if bool(((u[0] < g_lo[unstable].clamp(max=0) - 1e-12) | (u[1] > g_hi[unstable].clamp(min=0) + 1e-12)).any()):
            return ("your interval for an unstable neuron is wider than needed: y = g * s with s in [0, 1] lies "
                    "between 0 and g")
        lo_too_high = u[0] > g_lo[unstable].clamp(max=0) + 1e-12
        if bool((lo_too_high & (g_lo[unstable] < 0)).any()):
            return ("for an unstable neuron with g_lo < 0, s = 1 is allowed, so y can be negative: your lower end "
                    "is too high")
        if bool(((u[1] < g_hi[unstable].clamp(min=0) - 1e-12) & (g_hi[unstable] > 0)).any()):
            return ("for an unstable neuron with g_hi > 0, s = 1 is allowed, so y can be positive: your upper end "
                    "is too low")
    return ("not right yet: y = g * s lies in [g_lo, g_hi] when s = 1 (lo >= 0), is 0 when s = 0 (hi <= 0), and "
            "lies between min(g_lo, 0) and max(g_hi, 0) when s is anywhere in [0, 1]")


def relu_grad_interval(fn: Callable) -> CheckResult:
    """Check a learner's ``fn(g_lo, g_hi, lo, hi) -> (y_lo, y_hi)``: interval bounds on ``y = g * s``, with
    ``g in [g_lo, g_hi]`` and ``s`` the Clarke derivative of ReLU at a pre-activation in ``[lo, hi]``
    (eq-lip-interval). The cases cover active, inactive and unstable neurons, with ``g`` of either sign."""
    if not _missing(fn) and callable(fn):
        learner = fn

        def fn(g_lo, g_hi, lo, hi):
            return _stack(learner(g_lo, g_hi, lo, hi))

    return check_function(
        fn, _reference, CASES, rtol=1e-10, close_rtol=0.05, hint=_hint,
        close_note="nearly there: is everything computed in float64?",
        nonfinite="your interval contains NaN or infinity: every end is a g bound or 0, never a division",
        praise="for active, inactive and unstable neurons with g of either sign")
