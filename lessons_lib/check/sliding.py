"""Self-checks of the chapter on gradient sliding (gradient-sliding.ipynb)."""

from __future__ import annotations

from typing import Callable

import torch

from .. import sliding
from .core import CheckResult, check_function


def _cases() -> dict[str, tuple]:
    gen = torch.Generator().manual_seed(5)

    def vec(n):
        return torch.randn(n, generator=gen, dtype=torch.float64)

    g, x, u = vec(6), vec(6), vec(6)
    g2, x2, u2 = vec(4), vec(4), vec(4)
    return {"n = 6, beta = 2, p = 1.5, mu = 0.3": (g, x, u, 2.0, 1.5, 0.3),
            "n = 6, beta = 0.4, p = 4, mu = 0 (no chi)": (g, x, u, 0.4, 4.0, 0.0),
            "n = 4, beta = 5, p = 0.5 (the first inner step), mu = 1.2": (g2, x2, u2, 5.0, 0.5, 1.2),
            "a batch of 3 points in 4-d, beta = 1, p = 2.5, mu = 0.3": (torch.stack([g2, -g2, 2 * g2]),
                                                                      torch.stack([x2, u2, x2]),
                                                                      torch.stack([u2, x2, -u2]), 1.0, 2.5, 0.3)}


# the inputs (g, x, u_prev, beta, p, mu) handed to the learner's function, by description
CASES = _cases()


def _reference(g, x, u_prev, beta, p, mu):
    return sliding.prox_step(g, x, u_prev, beta=beta, p=p, mu=mu)


def _variant(g, x, u_prev, beta, p, mu, *, kind: str) -> torch.Tensor:
    """The inner step with one typical mistake (used to recognise a learner's output, and by the tests)."""
    if kind == "no mu":
        return (beta * (x + p * u_prev) - g) / (beta * (1 + p))
    if kind == "plus g":
        return (beta * (x + p * u_prev) + g) / (beta * (1 + p) + mu)
    if kind == "no p below":
        return (beta * (x + p * u_prev) - g) / (beta + mu)
    if kind == "swapped":
        return (beta * (p * x + u_prev) - g) / (beta * (1 + p) + mu)
    if kind == "gradient step":
        return x - g / beta
    raise ValueError(f"kind: unknown mistake {kind!r}")


def _hint(case, value) -> str:
    g, x, u_prev, beta, p, mu = case
    v = torch.as_tensor(value, dtype=torch.float64)
    if v.shape != x.shape:
        return f"return one point of the same shape as x, {tuple(x.shape)}"

    def near(kind):
        return bool(torch.allclose(v, _variant(g, x, u_prev, beta, p, mu, kind=kind), rtol=1e-6, atol=1e-9))

    if mu > 0 and near("no mu"):
        return ("your step ignores chi: the term (mu/2)||u||^2 adds mu u to the stationarity condition, "
                "so mu belongs in the denominator")
    if near("plus g"):
        return ("your step moves along +g: setting the gradient of the objective to zero gives g + beta (u - x) + "
                "beta p (u - u_prev) + mu u = 0, so g enters with a minus sign")
    if near("no p below"):
        return ("your denominator misses a term: u appears in both distance terms, (beta/2)||x - u||^2 and "
                "(beta p/2)||u_prev - u||^2, so the coefficient of u collects beta and beta p")
    if near("swapped"):
        return ("you weighted the wrong centre by p: p multiplies the distance to the previous inner iterate u_prev, "
                "not the distance to the prox centre x")
    if near("gradient step"):
        return ("your step is a plain gradient step from x: it drops the pull towards u_prev and the term of chi; "
                "write the stationarity condition of the whole objective and solve it for u")
    return ("not right yet: differentiate <g, u> + (beta/2)||x - u||^2 + (beta p/2)||u_prev - u||^2 + "
            "(mu/2)||u||^2 with respect to u, set it to zero and solve for u")


def sliding_prox(fn: Callable) -> CheckResult:
    """Check a learner's ``fn(g, x, u_prev, beta, p, mu)`` for the inner step of gradient sliding (eq-sliding-prox).

    ``g`` is the whole linear term, ``x`` the prox centre, ``u_prev`` the previous inner iterate
    (each of shape ``(n,)`` or ``(R, n)``), and ``beta``, ``p``, ``mu`` are numbers. The cases include
    ``mu = 0`` and a batch of points. Messages name the case and describe the learner's output.
    """
    return check_function(fn, _reference, CASES, rtol=1e-8, close_rtol=0.02, hint=_hint,
                          close_note="nearly there: is everything computed in float64?",
                          praise="including mu = 0 and a batch of points")
