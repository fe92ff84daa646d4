"""Self-checks of the chapter on curvature-aware policy optimisation (capo.ipynb)."""

from __future__ import annotations

from typing import Callable

import torch

from .. import capo
from .core import CheckResult, check_function


def _cases() -> dict[str, tuple]:
    g = torch.Generator().manual_seed(13)

    def case(n, V, H, scale):
        W = scale * torch.randn(V, H, generator=g, dtype=torch.float64)
        h = torch.randn(n, H, generator=g, dtype=torch.float64)
        a = torch.randint(V, (n,), generator=g)
        A = torch.randn(n, generator=g, dtype=torch.float64)
        G = torch.randn(V, H, generator=g, dtype=torch.float64)
        return W, h, a, A, G

    return {"5 tokens, V = 4, H = 3, small weights": case(5, 4, 3, 0.3),
            "12 tokens, V = 8, H = 6, larger weights (a peaked policy)": case(12, 8, 6, 1.5),
            "1 token, V = 2, H = 1": case(1, 2, 1, 1.0)}


# the inputs (W, h, a, A, G) that capo_hessian hands the learner's function, by description
CASES = _cases()


def _reference(W, h, a, A, G):
    return capo.token_terms(W, h, a, A, G).hessian


def _parts(W, h, a, A, G):
    """``(pi, vu, uFu, u diag(pi) u)`` of each token, for the hints."""
    pi = torch.softmax(h @ W.T, -1)
    u = h @ G.T
    vu = u.gather(-1, a[:, None]).squeeze(-1) - (pi * u).sum(-1)
    diag = (pi * u * u).sum(-1)
    return vu, diag - (pi * u).sum(-1) ** 2, diag


def _hint(case, value) -> str:
    W, h, a, A, G = case
    v = torch.as_tensor(value, dtype=torch.float64)
    if v.shape != (h.shape[0],):
        return f"return one number per token, shape (n,) = ({h.shape[0]},); yours has shape {tuple(v.shape)}"
    vu, uFu, diag = _parts(W, h, a, A, G)
    mistakes = (
        (vu ** 2 - uFu, "your terms are not multiplied by the token's advantage A"),
        (A * vu ** 2, "you returned A (v^T u)^2 only, the Fisher part: the second derivative of pi_a(W + sG) "
                      "also has a term from the curvature of log pi_a, -u^T F u"),
        (A * (vu ** 2 + uFu), "the curvature term enters with a minus sign: the second derivative of "
                              "log pi_a along G is -u^T F u"),
        (A * (vu ** 2 - diag), "your F is diag(pi) only; the softmax's covariance is diag(pi) - pi pi^T"),
        (A * vu, "that is the first-order term A v^T u, the slope; the exercise asks for the second derivative"),
        (-A * uFu, "you kept only the curvature of log pi_a; the ratio's second derivative adds (v^T u)^2, "
                   "the square of its slope"),
        (0.5 * A * (vu ** 2 - uFu), "off by a factor 1/2: the 1/2 is the Taylor coefficient that multiplies the "
                                    "second derivative in m_H; the Hessian term is the second derivative itself"),
        (2 * A * (vu ** 2 - uFu), "off by a factor 2: return the second derivative itself, without doubling it"),
    )
    for want, words in mistakes:
        if torch.allclose(v, want, rtol=1e-8, atol=1e-12):
            return words
    return ("not right yet: write the ratio as exp(log pi_a(W + sG) - log pi_a(W)), differentiate twice in s at "
            "s = 0, and check each part (the slope of log pi_a, its curvature, the advantage) against a finite "
            "difference on one token")


def capo_hessian(fn: Callable) -> CheckResult:
    """Check a learner's ``fn(W, h, a, A, G)`` for the per-token Hessian term (eq-capo-terms).

    ``W`` is ``(V, H)``, ``h`` is ``(n, H)``, ``a`` the sampled tokens ``(n,)``, ``A`` the advantages ``(n,)`` and
    ``G`` the update direction ``(V, H)``; the answer is ``A [(v^T u)^2 - u^T F u]``, shape ``(n,)``. The hints
    name the usual mistakes (no advantage, the Fisher part alone, the wrong sign, ``F = diag pi``, the first-order
    term, a factor 1/2 or 2) without showing the expected numbers.
    """
    return check_function(fn, _reference, CASES, rtol=1e-8, close_rtol=0.05, hint=_hint,
                          close_note="nearly there: are pi, v and u computed in float64 from the given W, h and G?",
                          nonfinite="your terms contain NaN or infinity; use torch.softmax for pi",
                          praise="the quadratic model's curvature is right")
