"""Self-checks of the chapter on normalised policy gradients (normalised-policy-gradients.ipynb)."""

from __future__ import annotations

from typing import Callable

import torch

from .. import policy_gradient as pg
from .core import CheckResult, check_function


def _t(*values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def _cubic(x: torch.Tensor) -> torch.Tensor:
    """The gradient of the concave J(x) = -sum(x^2/2 + x^4/4): not linear, so where it is evaluated shows."""
    return -(x + x ** 3)


def _linear(x: torch.Tensor) -> torch.Tensor:
    return -torch.tensor([0.5, 2.0], dtype=x.dtype) * x


# the inputs (d_prev, theta, theta_prev, eta, grad) that igt_direction hands the learner's function, by description
IGT_CASES = {
    # eta = 0.3, not 0.5: at 0.5 the coefficients (1 - eta) / eta, eta / (1 - eta) and 1 - eta coincide or halve
    "a linear gradient -H x, H = diag(0.5, 2), eta = 0.3": (_t(0.3, -0.2), _t(1.0, 0.5), _t(0.8, 0.7), 0.3, _linear),
    "a cubic gradient -(x + x^3), eta = 0.2": (_t(-1.0, 0.4), _t(0.6, -0.3), _t(0.5, -0.1), 0.2, _cubic),
    "the first step, eta = 1 (no momentum yet)": (_t(0.0, 0.0), _t(0.2, 0.9), _t(0.2, 0.9), 1.0, _cubic),
}


def _reference(d_prev, theta, theta_prev, eta, grad):
    return pg.igt_direction(d_prev, theta, theta_prev, eta=eta, grad_fn=lambda x, _: grad(x))


def _variants(d_prev, theta, theta_prev, eta, grad):
    """Common mistakes, each with what to say about it (never the expected value)."""
    at = {"at": theta, "back": theta - (1 - eta) / eta * (theta - theta_prev),
          "inverse": theta + eta / (1 - eta) * (theta - theta_prev) if eta < 1 else theta,
          "plain": theta + (1 - eta) * (theta - theta_prev)}
    return [
        ((1 - eta) * d_prev + eta * grad(at["at"]),
         "your direction is plain momentum: the new gradient was evaluated at theta_t itself; IGT evaluates it "
         "ahead of theta_t, along the last step, so that the average of old gradients lands on theta_t"),
        ((1 - eta) * d_prev + eta * grad(at["back"]),
         "you extrapolated backwards: the evaluation point must lie beyond theta_t, on the far side from theta_{t-1}"),
        ((1 - eta) * d_prev + eta * grad(at["inverse"]),
         "the extrapolation coefficient is upside down: it is the weight of the old momentum divided by the weight "
         "of the new gradient"),
        ((1 - eta) * d_prev + eta * grad(at["plain"]),
         "the extrapolation coefficient is missing its division by eta: the lag of a momentum with weight eta is "
         "(1 - eta) / eta steps"),
        (eta * d_prev + (1 - eta) * grad(theta + (1 - eta) / eta * (theta - theta_prev)),
         "the two weights are swapped: the new gradient gets weight eta and the old momentum 1 - eta"),
    ]


def _hint(case, value) -> str:
    v = torch.as_tensor(value, dtype=torch.float64)
    if v.shape != case[0].shape:
        return f"return one vector of the shape of d_prev, ({len(case[0])},)"
    for wrong, why in _variants(*case):
        if torch.allclose(v, wrong, rtol=1e-6, atol=1e-9):
            return why
    return ("not right yet: check two things, the point where the new gradient is evaluated (on the line through "
            "theta_{t-1} and theta_t; how far along it, and why?) and the weights with which it is mixed into d_prev")


def igt_direction(fn: Callable) -> CheckResult:
    """Check a learner's ``fn(d_prev, theta, theta_prev, eta, grad)`` for the IGT direction (eq-pg-igt).

    ``grad(x)`` is a deterministic gradient of ``J``; the answer is ``d_t``, of the shape of ``d_prev``.
    The cases use a linear and a cubic gradient and the first step (``eta = 1``); messages name the
    case and describe the learner's output, never the expected direction.
    """
    return check_function(
        fn, _reference, IGT_CASES, rtol=1e-8, close_rtol=0.05, hint=_hint,
        close_note="nearly there: is everything in float64?",
        nonfinite="your direction contains NaN or infinity: at eta = 1 the extrapolation has weight 0, not 0/0",
        praise="including a nonlinear gradient and the first step")
