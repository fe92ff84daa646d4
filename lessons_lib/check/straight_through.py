"""Self-checks of the chapter on straight-through estimators (straight-through.ipynb)."""

from __future__ import annotations

from typing import Callable

import torch

from .. import straight_through as st
from .core import CheckResult, check_function


def _cases() -> dict[str, tuple]:
    x = torch.tensor([-3.0, -1.6, -1.5, -1.2, -0.5, -0.1, -0.04, 0.0, 0.03, 0.1, 0.12, 0.3, 1.0, 1.4, 1.7, 2.5],
                     dtype=torch.float64)
    g = torch.tensor([0.7, -1.1, 0.4, 1.3, -0.6, 0.9, 1.2, -0.8, 0.5, -1.4, 0.6, 1.1, -0.9, 0.8, 1.5, -0.7],
                     dtype=torch.float64)
    return {"o = 3, t = 1.5, interval = 0.1 (the setting of the text)": (x, g, 3.0, 1.5, 0.1),
            "o = 1, t = 1, interval = 0.1 (the plain STE)": (x, g, 1.0, 1.0, 0.1),
            "o = 6, t = 1.2, interval = 0.2": (x, g, 6.0, 1.2, 0.2)}


# the inputs (x, grad_output, o, t, interval) that reste_backward hands the learner's function, by description
BACKWARD_CASES = _cases()


def _reference(x, grad_output, o, t, interval):
    return grad_output * st.reste_surrogate(x, o=o, t=t, interval=interval)


def _hint(case, value) -> str:
    x, g, o, t, interval = case
    v = torch.as_tensor(value, dtype=torch.float64)
    if v.shape != x.shape:
        return f"return one gradient per entry of x, shape {tuple(x.shape)}, like grad_output"
    want = _reference(*case)
    a = x.abs()

    def near(u, mask=None):
        mask = torch.ones_like(a, dtype=torch.bool) if mask is None else mask
        return bool(torch.allclose(v[mask], u[mask].to(torch.float64), rtol=1e-6, atol=1e-9))

    if near(st.reste_surrogate(x, o=o, t=t, interval=interval)):
        return ("you returned the surrogate derivative itself: the backward pass returns the upstream gradient "
                "grad_output times it (the chain rule)")
    if near(-want):
        return "your gradient has the wrong sign: the surrogate slope is positive where it is not zero"
    outside = a > t
    if near(want, ~outside) and not near(want, outside):
        return (f"you are right for |x| <= t, but not zero beyond t = {t:g}: the surrogate cuts the gradient off "
                "where |x| > t")
    inner = a <= interval
    if near(want, ~inner) and not near(want, inner):
        tangent = g * (interval ** ((1 - o) / o) / o)
        if near(tangent, inner):
            return ("inside |x| <= interval you use the slope of f_o at x = interval (its tangent there); ReSTE uses "
                    "the slope of the straight line (the chord) from the origin to the point (interval, f_o(interval))")
        return ("right outside the interval around 0, not inside it: for |x| <= interval the slope is constant, that "
                "of the chord of f_o from the origin to x = interval")
    if near(want * o, ~inner & ~outside):
        return "between interval and t your slope is o times too large: the derivative of |x|^(1/o) carries 1/o"
    return ("not right yet: multiply grad_output by the slope of f_o(x) = sign(x)|x|^(1/o) for interval < |x| <= t, "
            "by the slope of its chord over [0, interval] for |x| <= interval, and by 0 for |x| > t")


def reste_backward(fn: Callable) -> CheckResult:
    """Check a learner's ``fn(x, grad_output, o, t, interval)``, the backward pass of ReSTE
    (eq-straight-through-reste): ``grad_output`` times the surrogate derivative at ``x``.

    The cases hold points in the chord segment (``x = 0`` included), on the edges ``|x| = interval`` and
    ``|x| = t``, and beyond ``t``, for ``o = 3``, the STE (``o = 1, t = 1``) and ``o = 6``. Messages name the
    case and describe the learner's output, never the expected gradient.
    """
    return check_function(
        fn, _reference, BACKWARD_CASES, rtol=1e-8, close_rtol=0.05, hint=_hint,
        close_note="nearly there: is everything computed in float64?",
        nonfinite=("your gradient contains NaN or infinity: |x|^((1-o)/o) is infinite at x = 0 when o > 1, which "
                   "is what the chord segment around 0 is for"),
        praise="including x = 0, the edges |x| = interval and |x| = t, and the plain STE")
