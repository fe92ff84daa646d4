"""Self-checks of the chapter on gradient-normalised smoothness (gradient-normalised-smoothness.ipynb)."""

from __future__ import annotations

from typing import Callable

import torch

from .. import newton
from .core import CheckResult, _missing, check_function


def _cases() -> dict[str, tuple]:
    gen = torch.Generator().manual_seed(3)
    X = torch.randn(30, 3, generator=gen, dtype=torch.float64)
    y = (torch.rand(30, generator=gen, dtype=torch.float64) < 0.5).to(torch.float64)
    P = newton.logistic_regression(X, y, mu=0.01)
    x = torch.tensor([0.5, -1.0, 0.8], dtype=torch.float64)
    A = torch.tensor([[4.0, 1.0], [1.0, 2.0]], dtype=torch.float64)

    def quad(v):
        return 0.5 * v @ A @ v + 0.25 * (v ** 4).sum()

    def quad_grad(v):
        return A @ v + v ** 3

    z = torch.tensor([1.5, -2.0], dtype=torch.float64)
    # at gamma = 16 the first trial passes with (f - f+) lam / ||grad f+||^2 = 0.16, between 1/8 and 1/4: a test
    # with the constant 4 rejects it; at gamma = 22 the ratio is 0.092, between 1/16 and 1/8: the test with the
    # constant 8 rejects the first trial (the second, at gamma = 11, passes), one with the constant 16 accepts it
    return {"logistic regression in 3-d, exact Hessian, gamma = 16 (the first trial passes)":
            (P.value, P.grad, x, P.hess(x), 16.0),
            "the same problem, H = 0.001 I (far too flat), gamma = 50 (trials must be rejected)":
            (P.value, P.grad, x, 1e-3 * torch.eye(3, dtype=torch.float64), 50.0),
            "a quartic in 2-d, H = A / 10 (too flat), gamma = 8": (quad, quad_grad, z, A / 10, 8.0),
            "logistic regression in 3-d, exact Hessian, gamma = 22 (the first trial narrowly fails)":
            (P.value, P.grad, x, P.hess(x), 22.0)}


# the inputs (value, grad, x, H, gamma) handed to the learner's function, by description
CASES = _cases()


def _pack(out):
    """``(x_new, gamma_new)`` as one float64 vector ``[*x_new, gamma_new]``; anything else unchanged."""
    if _missing(out) or not isinstance(out, (tuple, list)) or len(out) != 2:
        return out
    try:
        x_new = torch.as_tensor(out[0], dtype=torch.float64).reshape(-1)
        g_new = torch.as_tensor(out[1], dtype=torch.float64).reshape(1)
    except Exception:
        return out
    return torch.cat([x_new, g_new])


def _variant(value, grad, x, H, gamma, *, double=True, inverted=False, old_grad=False, no_search=False,
             constant=8.0, stale=False):
    """The search with one deliberate mistake, to recognise a learner's output (``stale``: lambda computed
    once, before the loop)."""
    g = grad(x)
    gn = float(g.norm())
    f0 = float(value(x))
    lam = gn / gamma
    for _ in range(40):
        if not stale:
            lam = gn * gamma if inverted else gn / gamma
        x_new = x + newton.regularized_newton_step(g, H, lam)
        gt = g if old_grad else grad(x_new)
        if no_search or f0 - float(value(x_new)) >= float(gt @ gt) / (constant * lam):
            return _pack((x_new, 2 * gamma if double else gamma))
        gamma /= 2
    return _pack((x, gamma))


def _reference(value, grad, x, H, gamma):
    s = newton.gamma_search(value, grad, x, H, gamma=gamma)
    return _pack((s.x, s.gamma))


def _hint(case, out) -> str:
    value, grad, x, H, gamma = case
    if not isinstance(out, torch.Tensor) or out.shape != (len(x) + 1,):
        return f"return a pair (x_new, gamma_new): x_new a vector of shape ({len(x)},) like x, gamma_new a number"
    want = _reference(*case)

    def near(v):
        return isinstance(v, torch.Tensor) and bool(torch.allclose(out, v, rtol=1e-6, atol=1e-10))

    if torch.allclose(out[:-1], want[:-1], rtol=1e-6, atol=1e-10):
        return ("your new point is right but not the gamma you return: after an accepted trial the next step "
                "starts from twice the radius of that trial")
    if near(_variant(*case, inverted=True)):
        return "your damping grows with gamma: lambda = ||g|| / gamma shrinks as the radius grows"
    if near(_variant(*case, old_grad=True)):
        return ("your test uses the gradient at the old point; the acceptance test needs the gradient at the "
                "trial point x+")
    # before the no-search variant: where a laxer constant accepts the first trial, the two agree
    if any(near(_variant(*case, constant=c)) for c in (1.0, 2.0, 4.0, 16.0)):
        return ("your search accepts a different trial than the test (eq-newton-accept) does: check the "
                "constant in the denominator of its right-hand side")
    if near(_variant(*case, no_search=True)) or near(_variant(*case, no_search=True, double=False)):
        return ("you take the first trial whatever happens; in this case it fails the descent test, so halve "
                "gamma and try again")
    if near(_variant(*case, stale=True)):
        return ("your damping keeps its first value: lambda must be recomputed from the halved gamma at every "
                "trial")
    return ("not right yet: try lambda = ||g|| / gamma, x+ = x - (H + lambda I)^(-1) g, accept if "
            "f(x) - f(x+) >= ||grad f(x+)||^2 / (8 lambda), otherwise halve gamma and retry")


def gamma_search(fn: Callable) -> CheckResult:
    """Check a learner's ``fn(value, grad, x, H, gamma) -> (x_new, gamma_new)``: one adaptive search (eq-newton-accept).

    The cases include one where the first trial passes, two where trials must be rejected first and one
    where the first trial fails the test narrowly (it would pass with the constant 16 instead of 8).
    Messages name the case and describe the learner's output, never the expected point.
    """
    low_precision = []  # the dtypes of learner outputs below float64 (the max-norm comparison would miss them)
    if not _missing(fn) and callable(fn):
        learner = fn

        def fn(value, grad, x, H, gamma):
            out = learner(value, grad, x.clone(), H.clone(), gamma)
            if isinstance(out, (tuple, list)) and len(out) == 2:
                dtype = getattr(out[0], "dtype", None)
                if dtype is not None and str(dtype).replace("torch.", "") in ("float32", "float16", "bfloat16"):
                    low_precision.append(str(dtype).replace("torch.", ""))
            return _pack(out)

    result = check_function(
        fn, _reference, CASES, rtol=1e-8, close_rtol=0.05, hint=_hint,
        close_note="nearly there: is everything computed in float64?",
        nonfinite="your answer contains NaN or infinity: is lambda zero or H + lambda I singular?",
        praise="including searches that must reject trials before one passes")
    if result.status == "correct" and low_precision:
        return CheckResult("close", "nearly there: your x_new has a lower precision than x; keep it in float64 "
                                    "like x, as the exercise asks")
    return result
