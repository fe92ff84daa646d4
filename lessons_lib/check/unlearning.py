"""Self-checks of the chapter on unlearning that resists relearning (unlearning.ipynb)."""

from __future__ import annotations

from typing import Callable

import torch

from .. import unlearning
from .core import CheckResult, check_function


def _quadratic(theta):
    H = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    return 0.5 * theta @ H @ theta - theta[0]


def _bowl(theta):
    H = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    return 0.5 * theta @ H @ theta


def _softplus_sum(theta):
    return torch.nn.functional.softplus(3.0 * theta).sum() + 0.25 * (theta ** 4).sum()


def _cases() -> dict:
    t = lambda *v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    return {"a 2-d quadratic at theta = (1, -0.5), rho = 0.3": (_quadratic, t(1.0, -0.5), 0.3),
            "softplus plus a quartic in 3-d at theta = (0.2, -1, 0.7), rho = 0.5": (_softplus_sum, t(0.2, -1.0, 0.7),
                                                                                   0.5),
            "the same 3-d loss with rho = 0 (no perturbation)": (_softplus_sum, t(0.2, -1.0, 0.7), 0.0),
            "a 2-d quadratic bowl at its minimiser theta = (0, 0), rho = 0.3 (g = 0)": (_bowl, t(0.0, 0.0), 0.3)}


# the inputs (loss_fn, theta, rho) handed to the learner's function, by description
SAM_CASES = _cases()


def _reference(loss_fn, theta, rho):
    return unlearning.sam_gradient(loss_fn, theta, rho=rho)


def _grad(loss_fn, x):
    return torch.func.grad(loss_fn)(x)


def _hint(case, value) -> str:
    loss_fn, theta, rho = case
    v = torch.as_tensor(value, dtype=torch.float64)
    if v.shape != theta.shape:
        return f"return a gradient of the shape of theta, ({len(theta)},)"
    g = _grad(loss_fn, theta)
    if not float(g.norm()) > 0.0:
        return ("at a stationary point g = 0 there is no uphill direction: return the gradient at theta "
                "(zero) without dividing by ||g||")
    u = g / g.norm()

    def near(a):
        return bool(torch.allclose(v, a, rtol=1e-6, atol=1e-9))

    if rho > 0 and near(g):
        return ("you returned the gradient at theta itself: SAM takes the gradient at the perturbed point "
                "theta + rho g/||g||, which needs a second gradient evaluation")
    if near(_grad(loss_fn, theta - rho * u)):
        return ("you perturbed downhill: the worst case within the radius is uphill, along +g, since the loss "
                "is being minimised")
    if near(_grad(loss_fn, theta + rho * g)):
        return ("the perturbation must have length rho: divide g by its norm before scaling by rho")
    if near(theta + rho * u):
        return "you returned the perturbed point; return the loss's gradient there"
    return ("not right yet: compute g at theta, move to theta + rho g/||g||, and return the gradient of the "
            "loss at that point")


def sam_forget_gradient(fn: Callable) -> CheckResult:
    """Check a learner's ``fn(loss_fn, theta, rho)`` for the two-pass SAM gradient (eq-unlearn-sam).

    ``loss_fn`` maps a float64 vector to a scalar, ``theta`` is the point and ``rho`` the radius; the answer
    is the gradient at ``theta + rho g / ||g||``. Messages name the case and describe the learner's output,
    never the expected gradient.
    """
    return check_function(fn, _reference, SAM_CASES, rtol=1e-8, close_rtol=0.05, hint=_hint,
                          close_note="nearly there: is everything computed in float64?",
                          nonfinite=("your gradient contains NaN or infinity: with rho = 0 or a zero gradient g, "
                                     "do not divide by ||g|| blindly"),
                          praise="including rho = 0, where SAM is plain gradient descent")
