"""Self-checks of the chapter on discretisation drift (drift.ipynb)."""

from __future__ import annotations

import cmath
import math
from functools import partial
from typing import Callable

import torch

from .. import drift
from ..backend import check_positive, check_real
from .core import CheckResult, _is_bool, _missing, check_function, compare, not_attempted


def principal_coefficient(answer, *, lr: float, lam: float) -> CheckResult:
    """Check the principal-flow rate ``log(1 - h lambda) / h`` (a complex number; exercise ex-drift-pf)."""
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


def _field_cases() -> dict[str, tuple[torch.Tensor, torch.Tensor, float]]:
    t = partial(torch.tensor, dtype=torch.float64)
    c, s = math.cos(0.6), math.sin(0.6)
    R = t([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ t([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    H3 = R @ torch.diag(t([0.0, 1.0, 2.5])) @ R.T  # eigenvalues 0, 1 and 2.5, eigenvectors not the axes
    g3 = t([0.4, -0.8, 0.6])
    H2 = torch.diag(t([1.0, 4.0]))
    return {"H = diag(1, 4), g = (0.5, -1), h = 0.1 (every h*lambda below 1)": (t([0.5, -1.0]), H2, 0.1),
            "a rotated 3x3 H with eigenvalues 0, 1 and 2.5, h = 0.3 (every h*lambda below 1)": (g3, H3, 0.3),
            "the same 3x3 H, h = 0.6 (one h*lambda between 1 and 2)": (g3, H3, 0.6),
            "H = [[3, 1], [1, 3]], g = (1, 0.5), h = 0.6 (one h*lambda above 2)": (t([1.0, 0.5]),
                                                                                  t([[3.0, 1.0], [1.0, 3.0]]), 0.6)}


# the inputs (g, H, lr) that principal_field hands the learner's function, by description
FIELD_CASES = _field_cases()


def _pairs(value):
    """A complex (or real) vector as its (real, imaginary) pairs, shape ``(n, 2)``; anything else unchanged."""
    if _missing(value) or isinstance(value, (str, bytes)) or _is_bool(value):
        return value
    try:
        v = value.detach().cpu() if isinstance(value, torch.Tensor) else torch.as_tensor(value)
        if not (v.is_complex() or v.is_floating_point() or v.dtype in (torch.int32, torch.int64)):
            return value
        return torch.view_as_real(v.to(torch.complex128).resolve_conj()).clone()
    except Exception:
        return value


def _field_reference(g, H, lr):
    return _pairs(drift.principal_vector_field(g, H, lr=lr))


def _field_hint(case, value) -> str:
    g, H, lr = case
    v = torch.as_tensor(value, dtype=torch.float64)
    if v.shape != (len(g), 2):
        return f"return one complex vector of shape (n,) = ({len(g)},), like g"
    z = torch.complex(v[:, 0], v[:, 1])
    want = drift.principal_vector_field(g, H, lr=lr)
    lam, U = torch.linalg.eigh(H)

    def near(a):
        return bool(torch.allclose(z, a.to(torch.complex128), rtol=1e-6, atol=1e-9))

    if near(-want):
        return ("your field points the wrong way: for a small h it must be close to -g, the gradient flow; "
                "check the sign of the coefficients")
    if near(want.conj()):
        return ("your imaginary parts have the wrong sign: the principal logarithm of a negative number has imaginary "
                "part +pi, not -pi (careful: negating a complex x with imaginary part +0 gives -0, and log1p(-x) then "
                "lands on -pi; negate before converting to complex)")
    x = (lr * lam).to(torch.complex128)
    over_h = U.to(torch.complex128) @ (torch.log(1 - x) / lr * (U.T @ g).to(torch.complex128))
    if near(over_h):
        return ("the projection g . u_i already carries a factor lambda_i (on a quadratic g = H theta): divide "
                "log(1 - h*lambda_i) by h*lambda_i, not by h")
    coeff = torch.where(x == 0, -torch.ones_like(x), torch.log(1 - x) / torch.where(x == 0, torch.ones_like(x), x))
    rows = U.T.to(torch.complex128) @ (coeff * (U @ g).to(torch.complex128))
    if near(rows):
        return ("torch.linalg.eigh returns the eigenvectors as the columns of its matrix: project g onto the "
                "columns u_i = U[:, i], and sum the columns back")
    if near(-(g + 0.5 * lr * H @ g)):
        return ("your field is the first-order modified flow -(g + (h/2) H g), the first two terms of the series; "
                "the principal flow sums all of them through the logarithm")
    safe = torch.where(x == 0, torch.ones_like(x), x)
    naive = U.to(torch.complex128) @ (torch.log(1 - x) / safe * (U.T @ g).to(torch.complex128))
    if near(naive):
        return ("one eigenvalue of H is zero up to rounding (about 1e-16): for so small an x, 1 - x rounds to 1 and "
                "log(1 - x) / x loses every digit; compute log1p(-x) / x instead (its limit at x = 0 is -1)")
    if bool((z.imag.abs() < 1e-12).all()) and bool((lr * lam > 1).any()):
        return ("your field is real, but in this case some h*lambda_i is above 1, so 1 - h*lambda_i is negative: "
                "take its logarithm in complex arithmetic (its imaginary part is pi)")
    return ("not right yet: for each eigenpair (lambda_i, u_i) of H, multiply the projection g . u_i by "
            "log(1 - h*lambda_i) / (h*lambda_i), and sum the vectors u_i with these weights")


def principal_field(fn: Callable) -> CheckResult:
    """Check a learner's ``fn(g, H, lr)`` for the principal-flow vector field (eq-drift-pf-general).

    ``g`` has shape ``(n,)``, ``H`` shape ``(n, n)`` (symmetric), ``lr`` is ``h``; the answer is a
    complex vector of shape ``(n,)``. The cases cover a zero eigenvalue (the limit ``-1`` of the
    coefficient), a direction with ``1 < h lambda < 2`` and one with ``h lambda > 2``. Messages name
    the case and describe the learner's output, never the expected field.
    """
    if not _missing(fn) and callable(fn):
        learner = fn

        def fn(g, H, lr):
            return _pairs(learner(g, H, lr))

    return check_function(
        fn, _field_reference, FIELD_CASES, rtol=1e-8, close_rtol=0.05, hint=_field_hint,
        close_note="nearly there: is everything computed in float64 / complex128?",
        nonfinite=("your field contains NaN or infinity: a zero eigenvalue makes log(1 - x) / x a 0/0 (its limit "
                   "is -1), and torch.log of a negative real number is NaN (convert to complex first)"),
        praise="including a zero eigenvalue and the oscillating and diverging directions")
