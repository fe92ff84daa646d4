"""Self-checks of the chapter on Langevin dynamics and iterate averaging (langevin-averaging.ipynb)."""

from __future__ import annotations

import math
from typing import Callable

import torch

from .. import langevin
from .core import CheckResult, check_function


def _unit(*rows) -> torch.Tensor:
    x = torch.tensor(rows, dtype=torch.float64)
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True)


def _step_cases() -> dict[str, tuple]:
    # positional inputs (theta, grad, lr, beta, xi): the learner may name the parameters as they like.
    # The first case has beta != 2, so that sqrt(2 lr) / beta and sqrt(lr / beta) differ there.
    t = lambda *rows: torch.tensor(rows, dtype=torch.float64)  # noqa: E731
    theta = _unit([0.6, 0.8, 0.0], [1.0, 1.0, 1.0], [0.2, -0.3, 0.9])
    grad = t([1.5, -0.5, 2.0], [0.3, 0.9, -1.2], [-2.0, 0.4, 1.0])  # every gradient has a radial part
    xi = t([0.7, -1.1, 0.4], [-0.3, 0.5, 1.6], [1.2, 0.8, -0.6])
    return {"three chains in d = 3, lr = 0.1, beta = 5": (theta, grad, 0.1, 5.0, xi),
            "the same chains, lr = 0.05, beta = 40": (theta, grad, 0.05, 40.0, xi),
            "one chain in d = 4, lr = 0.2, beta = 0.5": (_unit([0.5, -0.5, 0.5, 0.5]), t([0.2, 1.0, -0.4, 0.8]),
                                                         0.2, 0.5, t([-0.9, 0.1, 1.3, 0.6]))}


# the inputs the learner's function is called with, by description
STEP_CASES = _step_cases()


def _reference(theta, grad, lr, beta, xi):
    return langevin.spherical_step(theta, grad, lr=lr, beta=beta, noise=xi)


def _normalise(x):
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True)


def _step_hint(case, value) -> str:
    theta, grad, lr, beta, xi = case
    v = torch.as_tensor(value, dtype=torch.float64)
    if v.shape != theta.shape:
        return f"return the new chains with the shape of theta, {tuple(theta.shape)}"
    norms = torch.linalg.vector_norm(v, dim=-1)
    if not torch.allclose(norms, torch.ones_like(norms), atol=1e-6):
        return ("your new vectors do not have unit length: the step leaves the sphere, and the last operation must "
                "bring it back (divide each row by its norm)")

    def P(w):
        return w - (theta * w).sum(-1, keepdim=True) * theta

    def near(w):
        return bool(torch.allclose(v, w, rtol=1e-6, atol=1e-9))

    kick = math.sqrt(2 * lr / beta)
    if near(_normalise(theta - lr * grad + kick * P(xi))) or near(_normalise(theta - lr * grad + kick * xi)):
        return ("your gradient step is not projected: its radial part <theta, g> theta changes the length of the "
                "vector before normalising, so it rescales the tangent move; project the gradient too")
    if near(_normalise(theta - lr * P(grad) + kick * xi)):
        return ("your noise is not projected on the tangent space: its radial part is thrown away by the "
                "normalisation only to first order; project xi with I - theta theta^T")
    if near(_normalise(theta + lr * P(grad) + kick * P(xi))):
        return "your chains move uphill: Langevin descends, the gradient enters with a minus sign"
    for wrong, what in ((math.sqrt(lr / beta), "sqrt(lr / beta)"), (2 * lr / beta, "2 lr / beta without the root"),
                        (math.sqrt(2 * lr) / beta, "sqrt(2 lr) / beta, beta outside the root"),
                        (math.sqrt(2 / beta), "sqrt(2 / beta)"), (0.0, "no noise at all")):
        if near(_normalise(theta - lr * P(grad) + wrong * P(xi))):
            return (f"your noise has the size {what}: a Brownian increment over a time lr at temperature 1/beta "
                    "has variance 2 lr / beta per coordinate")
    return ("not right yet: project the gradient and the noise on the tangent space at theta, take the step "
            "-lr P g + sqrt(2 lr / beta) P xi, add it to theta and normalise each row")


def spherical_step(fn: Callable) -> CheckResult:
    """Check a learner's ``fn(theta, grad, lr, beta, xi)`` for one spherical Langevin step (eq-langevin-sphere).

    ``theta`` (unit rows), ``grad`` and ``xi`` have shape ``(M, d)``; the answer is the new ``(M, d)``
    unit vectors; the inputs are passed by position, so any parameter names work. Every case has a
    gradient with a radial part, so an unprojected gradient is caught. The outputs are unit vectors, so
    real mistakes change them by a few per cent at most: only a relative error below ``1e-4`` (float32
    arithmetic, say) counts as close, and every larger one gets the hint that diagnoses it. Messages name
    the case and describe the learner's output, never the expected one.
    """
    return check_function(
        fn, _reference, STEP_CASES, rtol=1e-8, close_rtol=1e-4, hint=_step_hint,
        close_note="nearly there: is everything computed in float64?",
        nonfinite="your step contains NaN or infinity: is a norm zero, or beta used as 1/beta?",
        praise="the step stays on the sphere and matches the library's spherical_step")
