"""Self-checks of the chapter on discretisation drift (drift.ipynb)."""

from __future__ import annotations

import cmath

import torch

from ..backend import check_positive, check_real
from .core import CheckResult, _is_bool, compare, not_attempted


def principal_coefficient(answer, *, lr: float, lam: float) -> CheckResult:
    """Check the principal-flow coefficient ``log(1 - h lambda) / h`` (a complex number)."""
    lr, lam = check_positive(lr, name="lr"), check_real(lam, name="lam")
    if (missing := not_attempted(answer)) is not None:
        return missing
    try:
        if isinstance(answer, (str, bytes)) or _is_bool(answer):
            raise TypeError
        z = complex(answer)
    except Exception:
        return CheckResult("wrong", f"expected a (complex) number, got a {type(answer).__name__}")
    want = complex(torch.log(torch.tensor(1 - lr * lam, dtype=torch.complex128)) / lr)
    factor = 1 - lr * lam

    def hint(_):
        if abs(z.imag) < 1e-12 and factor < 0:
            return (f"your answer is real, but 1 - h*lambda = {factor:.3g} is negative: "
                    "its logarithm has an imaginary part")
        implied = cmath.exp(lr * z)  # the per-step factor that the learner's coefficient stands for
        if abs(implied - factor) <= 1e-6 * max(abs(factor), 1.0):
            return ("your coefficient gives the right per-step factor, but it is not the principal logarithm: "
                    "its imaginary part must lie in (-pi/h, pi/h]")
        return (f"your coefficient stands for the per-step factor exp(h*z) = {implied.real:.3g}{implied.imag:+.3g}i, "
                f"but one GD step multiplies by 1 - h*lambda = {factor:.3g}: take the complex logarithm of "
                "that factor, then divide by h")

    return compare([z.real, z.imag], [want.real, want.imag], rtol=1e-6, close_rtol=0.02, hint=hint,
                   close_note="check rounding")
