"""Self-checks of the chapter on zeroth-order learning (zeroth-order.ipynb)."""

from __future__ import annotations

from typing import Callable

import torch

from .. import zeroth_order
from .core import CheckResult, check_function


def _bumpy(X: torch.Tensor) -> torch.Tensor:
    """A non-quadratic test function on ``(..., d)``: a one-sided difference is visibly wrong on it."""
    return (X ** 2).sum(-1) / 2 + torch.sin(3 * X).sum(-1) + (X[..., 0] ** 3) / 3


def _quartic(X: torch.Tensor) -> torch.Tensor:
    return (X ** 4).sum(-1) / 4 + X[..., 0] * X[..., -1]


def _cases() -> dict[str, tuple]:
    g = torch.Generator().manual_seed(24)
    x3 = torch.randn(3, generator=g, dtype=torch.float64)
    x5 = torch.randn(5, generator=g, dtype=torch.float64)
    gauss = torch.randn(1, 3, generator=g, dtype=torch.float64)
    rade = torch.sign(torch.randn(4, 5, generator=g, dtype=torch.float64))
    many = torch.randn(6, 3, generator=g, dtype=torch.float64)
    return {"one Gaussian probe in d = 3, sigma = 0.1, a function with a sine and a cubic": (_bumpy, x3, 0.1, gauss),
            "four Rademacher probes in d = 5, sigma = 0.05, a quartic": (_quartic, x5, 0.05, rade),
            "six Gaussian probes in d = 3, sigma = 0.3": (_bumpy, x3, 0.3, many)}


# the inputs (f, x, sigma, v) that two_point hands the learner's function, by description
CASES = _cases()


def _reference(f, x, sigma, v):
    return zeroth_order.two_point_estimate(f, x, sigma=sigma, n_probes=v.shape[0], noise=v)


def _hint(case, value) -> str:
    f, x, sigma, v = case
    out = torch.as_tensor(value, dtype=torch.float64)
    K, d = v.shape
    if out.shape != (d,):
        return (f"return one vector of shape (d,) = ({d},), an estimate of the gradient; yours has shape "
                f"{tuple(out.shape)}: average the K probes' contributions")
    up, down, mid = f(x + sigma * v), f(x - sigma * v), f(x)
    central = (up - down) / (2 * sigma)

    def near(w):
        return bool(torch.allclose(out, w, rtol=1e-8, atol=1e-12))

    mistakes = (
        (central @ v, "you summed the K probes' contributions; average them (divide by K)"),
        (2 * central @ v / K, "off by a factor 2: a central difference over x + sigma v and x - sigma v spans "
                              "2 sigma, so divide by 2 sigma"),
        (0.5 * central @ v / K, "off by a factor 1/2: divide the difference of the two values by 2 sigma, once"),
        ((up - mid) / sigma @ v / K, "that is a one-sided difference (f(x + sigma v) - f(x)) / sigma: evaluate "
                                     "f on both sides, x + sigma v and x - sigma v"),
        (-central @ v / K, "your estimate points the wrong way: take f(x + sigma v) minus f(x - sigma v)"),
        (central.mean() * v.mean(0), "multiply each probe's slope by its own probe v_k before averaging; you "
                                     "multiplied the mean slope by the mean probe"),
    )
    for want, words in mistakes:
        if near(want):
            return words
    return ("not right yet, and not one of the usual slips: print your estimate next to a few slopes of f along "
            "the probes, and check against the equation which values of f each probe needs and what its slope "
            "multiplies")


def two_point(fn: Callable) -> CheckResult:
    """Check a learner's ``fn(f, x, sigma, v)`` for the two-point estimate on injected probes (eq-zo-two-point).

    ``f`` maps ``(..., d)`` to ``(...)``, ``x`` is ``(d,)``, ``sigma`` the probe radius and ``v`` the
    probes ``(K, d)``; the answer is ``(1/K) sum_k [f(x + sigma v_k) - f(x - sigma v_k)] / (2 sigma) v_k``,
    shape ``(d,)``. The functions are not quadratic, so a one-sided difference is told apart.
    """
    return check_function(fn, _reference, CASES, rtol=1e-8, close_rtol=0.05, hint=_hint,
                          close_note="nearly there: is everything computed in float64?",
                          nonfinite=("your estimate contains NaN or infinity: divide the difference of the two "
                                     "values by 2 sigma, and by nothing that can be zero"),
                          praise="with Gaussian and Rademacher probes on non-quadratic functions")
