"""Self-checks of the chapter on consensus-based optimization (consensus-based-optimization.ipynb)."""

from __future__ import annotations

from typing import Callable

import torch

from .. import cbo
from .core import CheckResult, check_function


def _cases() -> dict[str, tuple[torch.Tensor, torch.Tensor, float]]:
    g = torch.Generator().manual_seed(8)
    X = 3 * torch.rand(6, 2, generator=g, dtype=torch.float64) - 1.5
    f = (X**2).sum(1) + 0.5 * torch.rand(6, generator=g, dtype=torch.float64)
    Y = 2 * torch.rand(40, 3, generator=g, dtype=torch.float64) - 1
    return {"6 particles in the square [-1.5, 1.5]^2, alpha = 1": (X, f, 1.0),
            "the same 6 particles, alpha = 3": (X, f, 3.0),
            "40 particles in the cube [-1, 1]^3, values in [100, 103], alpha = 1e4": (Y, 100 + (Y**2).sum(1), 1e4),
            "the same 40 particles, values in [-500, -497], alpha = 10": (Y, (Y**2).sum(1) - 500, 10.0)}


# the inputs (X, fX, alpha) that stable_consensus_point hands the learner's function, by description
CASES = _cases()


def _reference(X, fX, alpha):
    return cbo.consensus_point(X, fX, alpha=alpha)


def _hint(case, v) -> str:
    X, fX, alpha = case
    v = torch.as_tensor(v, dtype=torch.float64)
    if v.shape != (X.shape[1],):
        return f"return one point of shape (d,) = ({X.shape[1]},), yours has shape {tuple(v.shape)}"
    if torch.allclose(v, X.mean(0), rtol=1e-9, atol=1e-12):
        return "your point is the plain mean of the particles; weight each one by exp(-alpha f)"
    if torch.allclose(v, cbo.consensus_point(X, -fX, alpha=alpha), rtol=1e-6, atol=1e-12):
        return ("your point favours the particles with high values; check the sign in exp(-alpha f): "
                "low values should get the large weights")
    return ("not right yet; are the weights exp(-alpha f) divided by their sum, and is the point the "
            "weighted sum of the particle positions?")


def stable_consensus_point(fn: Callable) -> CheckResult:
    """Check a learner's ``fn(X, fX, alpha)`` for the consensus point ``c_alpha`` (eq-cbo-consensus).

    ``X`` has shape ``(N, d)``, ``fX`` shape ``(N,)``; the answer has shape ``(d,)``. Two cases use a
    large ``alpha`` or large values, where a naive ``exp(-alpha f)`` underflows or overflows.
    Messages name the case and describe the learner's output, never the expected point.
    """
    return check_function(
        fn, _reference, CASES, rtol=1e-8, close_rtol=0.05, hint=_hint,
        close_note="nearly there: are all the weights normalised by the same sum, and computed in float64?",
        nonfinite=("your point contains NaN or infinity, so exp(-alpha f) overflowed or underflowed; shift the "
                   "exponents by their largest value before exp (the weights do not change), or use "
                   "torch.softmax / torch.logsumexp"),
        praise="including the large-alpha ones a naive exp gets wrong")
