"""Self-checks of the chapter on the learning rate and curvature (learning-rate-and-curvature.ipynb)."""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from .. import curvature, quadratic
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


# --- Hessian-vector products and power iteration (eq-curv-hvp, eq-curv-sharpness) ----------------------

def _hidden_losses() -> dict[str, tuple[Callable, torch.Tensor]]:
    """Losses the learner's functions are tried on, with a point each; the learner never sees them.

    A rotated quadratic (its Hessian is the same everywhere), and a non-quadratic loss
    ``sum(log cosh(B x)) + (x.x)^2 / 4`` whose Hessian changes with ``x``. Their spectra have a clear gap,
    so 60 power steps from any generic start pin the top eigenvalue to far below ``1e-6``.
    """
    gen = torch.Generator().manual_seed(1234)
    Q, _ = torch.linalg.qr(torch.randn(5, 5, dtype=torch.float64, generator=gen))
    H = Q @ torch.diag(torch.tensor([6.0, 2.5, 1.0, 0.5, 0.2], dtype=torch.float64)) @ Q.T
    B = torch.randn(4, 4, dtype=torch.float64, generator=gen)
    x_quad = torch.randn(5, dtype=torch.float64, generator=gen)
    x_bumpy = 0.3 * torch.randn(4, dtype=torch.float64, generator=gen)
    return {"a 5-dimensional quadratic": (lambda x: 0.5 * x @ H @ x, x_quad),
            "a non-quadratic loss in 4 dimensions": (lambda x: torch.log(torch.cosh(B @ x)).sum() + 0.25 * (x @ x) ** 2,
                                                    x_bumpy)}


def hvp(fn: Callable) -> CheckResult:
    """Check a learner's ``fn(loss_fn, x, v)`` returning the Hessian-vector product ``H(x) v`` (eq-curv-hvp).

    The learner's function is called on two hidden losses (a quadratic and a non-quadratic one, at a
    point and along a direction of their own) and compared with :func:`lessons_lib.curvature.hvp`.
    The hint recognises the gradient returned in place of ``H v`` and the scalar ``g . v`` not yet
    differentiated.
    """
    gen = torch.Generator().manual_seed(99)
    cases = {}
    for name, (loss_fn, x) in _hidden_losses().items():
        v = torch.randn(x.numel(), dtype=torch.float64, generator=gen)
        cases[name] = (loss_fn, x, v)  # positional: the learner may name the arguments as they like

    def reference(loss_fn, x, v):
        return curvature.hvp(loss_fn, x, v)

    def hint(case, value):
        got = torch.as_tensor(value, dtype=torch.float64).detach().flatten()
        loss_fn, x, _ = case
        x = x.detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(loss_fn(x), x)
        if got.numel() == 1:
            return ("you returned a single number: g . v is a scalar; differentiate it once more with respect "
                    "to x to get the vector H v")
        if got.shape == g.shape and torch.allclose(got, g, rtol=1e-6, atol=1e-12):
            return "you returned the gradient at x; H v is its derivative along v: differentiate g . v once more"
        return ("not H v yet: on a quadratic 0.5 x^T H x your function must return H @ v at every x; "
                "differentiate the scalar g . v with respect to x, with v held fixed as given (not normalised, "
                "not multiplied in afterwards)")

    def error_hint(exc):
        if isinstance(exc, RuntimeError) and "does not require grad" in str(exc):
            return ("the gradient you differentiate a second time has lost its link to x: the first "
                    "gradient must itself be recorded for differentiation")
        return None

    # rtol 1e-12: autograd agrees with the library to rounding (1e-15), while a central finite difference cannot get
    # below about 1e-11 whatever its step (truncation h^2 against rounding eps/h); tests/test_quadratic.py tries steps
    return check_function(fn, reference, cases, hint=hint, rtol=1e-12, close_rtol=1e-3, error_hint=error_hint,
                          close_note="near H v but not equal: a finite difference instead of autograd?")


def power_sharpness(fn: Callable) -> CheckResult:
    """Check a learner's ``fn(loss_fn, x, v0, iters)`` estimating ``lambda_max`` by power iteration.

    Called with ``iters = 60`` on the two hidden losses of :func:`hvp` and a start vector ``v0`` of
    its own; compared with the Lanczos value of :func:`lessons_lib.curvature.sharpness` (eq-curv-sharpness).
    The hint recognises the Rayleigh quotient of the start vector (no iteration) and the square of
    an eigenvalue (``|H v|^2`` instead of ``v . H v``).
    """
    gen = torch.Generator().manual_seed(7)
    cases = {}
    for name, (loss_fn, x) in _hidden_losses().items():
        cases[name] = (loss_fn, x, torch.randn(x.numel(), dtype=torch.float64, generator=gen), 60)

    def reference(loss_fn, x, v0, iters):
        return curvature.sharpness(loss_fn, x, tol=1e-12, max_iter=200).value

    def hint(case, value):
        got = float(torch.as_tensor(value, dtype=torch.float64).flatten()[0])
        loss_fn, x, v0, _ = case
        lam = torch.linalg.eigvalsh(curvature.hessian(loss_fn, x))
        start = float(v0 @ curvature.hvp(loss_fn, x, v0) / (v0 @ v0))
        if math.isclose(got, start, rel_tol=1e-6):
            return ("that is the Rayleigh quotient v0 . H v0 / |v0|^2 of the start vector: repeat "
                    "v <- H v / |H v| first, then take the quotient")
        if any(math.isclose(got, float(m) ** 2, rel_tol=1e-4) for m in lam):
            return "your value is the square of an eigenvalue of H: take v . H v with |v| = 1, not |H v|^2"
        return (f"your estimate {got:.4g} is not the top eigenvalue of H: normalise v at every step and "
                "return v . H v for the final unit vector")

    return check_function(fn, reference, cases, hint=hint, close_rtol=1e-3,
                          close_note="near the top eigenvalue: too few iterations, or an unnormalised v?")
