"""Self-checks of the chapter on a neural Poisson solver supervised by PCG (poisson-solver.ipynb)."""

from __future__ import annotations

from typing import Callable

import torch

from .. import poisson
from .core import CheckResult, _missing, check_function


def _cases() -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]]:
    A = poisson.poisson_matrix(poisson.l_shape_mask(4, device="cpu")).to_dense()  # 12 cells
    gen = torch.Generator().manual_seed(3)
    b = torch.randn(12, generator=gen, dtype=torch.float64)
    x0 = torch.randn(12, generator=gen, dtype=torch.float64)
    D = torch.diag(torch.tensor([1.0, 3.0, 10.0], dtype=torch.float64))
    return {"the 4x4 L-shape (12 cells), x0 = 0, one step": (A, b, torch.zeros(12, dtype=torch.float64), 1),
            "the 4x4 L-shape, x0 = 0, four steps": (A, b, torch.zeros(12, dtype=torch.float64), 4),
            "the 4x4 L-shape, a random x0, three steps": (A, b, x0, 3),
            # as many steps as unknowns: a CG that stops early on a small residual is caught here
            "the 4x4 L-shape, x0 = 0, twelve steps": (A, b, torch.zeros(12, dtype=torch.float64), 12),
            "A = diag(1, 3, 10), b = (1, 1, 1), x0 = 0, zero steps": (D, torch.ones(3, dtype=torch.float64),
                                                                      torch.zeros(3, dtype=torch.float64), 0),
            "A = diag(1, 3, 10), b = (1, 1, 1), x0 = (1, 0, -1), two steps": (
                D, torch.ones(3, dtype=torch.float64), torch.tensor([1.0, 0.0, -1.0], dtype=torch.float64), 2),
            "A = diag(1, 3, 10), b = (1, 1, 1), x0 = 0, three steps (exact in exact arithmetic)": (
                D, torch.ones(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64), 3),
            # one step is exact in floating point here (alpha = 1/2, r = 0 exactly), so the next steps divide 0 by 0
            # unless the divisions are guarded
            "A = 2 I (3 x 3), b = (1, 1, 1), x0 = 0, three steps (the residual is exactly zero after one)": (
                2.0 * torch.eye(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64),
                torch.zeros(3, dtype=torch.float64), 3)}


# the inputs (A, b, x0, steps) that conjugate_gradients hands the learner's function, by description
CG_CASES = _cases()


def _reference(A, b, x0, steps):
    return poisson.cg(A, b, x0=x0, steps=steps)


def _steepest(A, b, x0, steps):
    x = x0.clone()
    for _ in range(steps):
        r = b - A @ x
        rr = r @ r
        x = x + (rr / (r @ A @ r) if rr > 0 else 0.0) * r
    return x


def _hint(case, value) -> str:
    A, b, x0, steps = case
    v = torch.as_tensor(value, dtype=torch.float64)
    if v.shape != b.shape:
        return f"return one vector x of shape (n,) = ({len(b)},), like b"

    def near(w):
        return bool(torch.allclose(v, w, rtol=1e-8, atol=1e-10))

    if steps == 0:
        return "with steps = 0 no iteration runs: return the start x0 unchanged"
    if near(poisson.cg(A, b, steps=steps)) and bool(x0.abs().sum() > 0):
        return ("your result does not depend on x0: start from x = x0 and compute the first residual as "
                "r = b - A x0, not r = b")
    if near(poisson.cg(A, b, x0=x0, steps=steps - 1)):
        return "your function does one iteration too few: run exactly `steps` updates of x"
    if near(poisson.cg(A, b, x0=x0, steps=steps + 1)):
        return "your function does one iteration too many: run exactly `steps` updates of x"
    if near(_steepest(A, b, x0, steps)):
        return ("your iterates are steepest descent with exact line search: after the first step the new "
                "direction must be the residual plus beta times the previous direction, with "
                "beta = (r_new . r_new) / (r_old . r_old)")
    if near(x0 - (poisson.cg(A, b, x0=x0, steps=steps) - x0)):
        return ("your steps go the wrong way: x moves along +alpha d, with the direction d starting at the "
                "residual b - A x0")
    return ("not right yet: alpha = (r . r) / (d . A d), x += alpha d, r -= alpha A d, then "
            "beta = (r_new . r_new) / (r_old . r_old) and d = r_new + beta d")


def conjugate_gradients(fn: Callable) -> CheckResult:
    """Check a learner's ``fn(A, b, x0, steps)``: ``steps`` plain CG iterations on ``A x = b`` from ``x0``.

    ``A`` is a dense symmetric positive definite float64 matrix, ``b`` and ``x0`` vectors; the answer is the
    iterate ``x_steps``. The cases include zero steps, a non-zero start, a diagonal matrix and a multiple of the
    identity on which the residual becomes exactly zero after one step (so ``0 / 0`` must be guarded). Messages name
    the case and describe the learner's output, never the expected iterate.
    """
    if not _missing(fn) and callable(fn):
        learner = fn

        def fn(A, b, x0, steps):
            return learner(A.clone(), b.clone(), x0.clone(), steps)

    return check_function(
        fn, _reference, CG_CASES, rtol=1e-8, close_rtol=0.05, hint=_hint,
        close_note=("nearly there: is everything computed in float64, and does your loop run all `steps` updates "
                    "(no early stop on a small residual)?"),
        nonfinite=("your iterate contains NaN or infinity: a division by d . A d or r . r that is zero? "
                   "(that happens only once the residual is exactly zero)"),
        praise="including a zero-step call, a non-zero start, a diagonal matrix and an exactly zero residual")
