"""Self-checks of the chapter on the learning rate and curvature (learning-rate-and-curvature.ipynb)."""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from .. import quadratic
from ..backend import check_positive
from .core import CheckResult, check_function, compare


def critical_lr(answer, *, a: float) -> CheckResult:
    """Check the largest learning rate for which GD converges on ``a x^2 / 2``."""
    a = check_positive(a, name="a")
    def hint(v):
        q = 1 - float(v) * a
        side = "diverges" if abs(q) > 1 else "still converges"
        return (f"with lr = {float(v):.4g}, the factor 1 - lr*a = {q:.3g}, so GD {side}; "
                "the limit is where the factor reaches -1")
    # the boundary itself (lr*a = 2) is the answer; a convergent lr is not the *largest* one
    return compare(answer, quadratic.critical_lr([[a]]), rtol=1e-6, close_rtol=0.02, hint=hint)


def gd_iterates(fn: Callable, *, cases: Sequence[dict] | None = None) -> CheckResult:
    """Check a learner's ``fn(a, x0, lr, steps)`` returning the ``steps + 1`` GD iterates on ``a x^2/2``.

    By default three runs ``(a, x0, lr, steps)``: ``(1, 1, 0.5, 5)`` contracts by 0.5 a step,
    ``(3, -2, 0.6, 7)`` oscillates by -0.8 from a negative start, and ``(0.5, 0.3, 4, 6)`` is the
    two-cycle at the critical rate (factor -1).
    """
    cases = cases or [dict(a=1.0, x0=1.0, lr=0.5, steps=5), dict(a=3.0, x0=-2.0, lr=0.6, steps=7),
                      dict(a=0.5, x0=0.3, lr=4.0, steps=6)]

    def reference(a, x0, lr, steps):
        return quadratic.gd_scalar(a, x0, lr=lr, steps=steps, blowup=1e300).params[:, 0]

    def hint(case, value):
        v = torch.as_tensor(value, dtype=torch.float64).flatten()
        if v.numel() != case["steps"] + 1:
            return f"return steps + 1 = {case['steps'] + 1} values (x_0 included), you returned {v.numel()}"
        if float(v[0]) != case["x0"]:
            return "the first entry should be the starting point x_0"
        ratio = float(v[1] / v[0]) if float(v[0]) != 0 else float("nan")
        return (f"your first step multiplies x by {ratio:.4g}; each step should multiply it by the "
                "same factor, built from lr and a")

    return check_function(fn, reference, cases, hint=hint)
