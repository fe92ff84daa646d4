"""Self-checks of the chapter on hard physics constraints (hard-constraints.ipynb)."""

from __future__ import annotations

from typing import Callable

import torch

from .. import hard_constraints as hc
from .core import CheckResult, _missing, check_function


def _cases() -> dict[str, tuple[torch.Tensor, ...]]:
    gen = torch.Generator().manual_seed(7)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    out = {}
    for name, (n, N, consistent) in {"6 rows, 3 unknowns, r != 0": (6, 3, False),
                                     "10 rows, 4 unknowns, r != 0": (10, 4, False),
                                     "8 rows, 3 unknowns, a consistent system (r = 0)": (8, 3, True)}.items():
        A = randn(n, N)
        c = A @ randn(N) if consistent else randn(n)
        omega = torch.linalg.lstsq(A, c[:, None]).solution[:, 0]
        out[name] = (A, c, omega, randn(N))
    return out


# the inputs (A, c, omega, grad) that least_squares_backward hands the learner's function, by description
BACKWARD_CASES = _cases()


def _flat(value):
    """The learner's ``(grad_A, grad_c)`` as one vector; anything else unchanged (the comparison then says why)."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        try:
            parts = [torch.as_tensor(v.detach().cpu() if isinstance(v, torch.Tensor) else v, dtype=torch.float64)
                     for v in value]
            return torch.cat([p.reshape(-1) for p in parts])
        except Exception:
            return value
    return value


def _variants(A, c, omega, grad) -> dict[str, torch.Tensor]:
    """Usual mistakes, flattened like an answer."""
    lam = torch.linalg.solve(A.T @ A, grad)
    r = A @ omega - c
    A_lam = A @ lam

    def flat(gA, gc):
        return torch.cat([gA.reshape(-1), gc])

    no_solve_r, no_solve_A = A @ grad, -(torch.outer(r, grad) + torch.outer(A @ grad, omega))
    return {"sign": -flat(-(torch.outer(r, lam) + torch.outer(A_lam, omega)), A_lam),
            "shortcut": flat(-torch.outer(A_lam, omega), A_lam),
            "no solve": flat(no_solve_A, no_solve_r),
            "c sign": flat(-(torch.outer(r, lam) + torch.outer(A_lam, omega)), -A_lam),
            "A sign": flat(torch.outer(r, lam) + torch.outer(A_lam, omega), A_lam)}


def _hint(case, value) -> str:
    A, c, omega, grad = case
    n, N = A.shape
    v = torch.as_tensor(value, dtype=torch.float64).reshape(-1)
    if v.numel() != n * N + n:
        return (f"return a pair (grad_A, grad_c) with grad_A of the shape of A, ({n}, {N}), and grad_c of the "
                f"shape of c, ({n},)")
    near = {k: bool(torch.allclose(v, w, rtol=1e-6, atol=1e-9)) for k, w in _variants(A, c, omega, grad).items()}
    if near["sign"]:
        return "both gradients point the wrong way: check the sign in front of the implicit-function solve"
    if near["shortcut"]:
        return ("your grad_A is right only where the residual r = A omega - c is zero: the normal equations contain "
                "A twice, and the A in front of the residual has a derivative too")
    if near["no solve"]:
        return ("you used grad itself where the implicit function theorem needs the solution lam of a linear system "
                "with the matrix of the normal equations")
    if near["c sign"]:
        return "grad_A is right but grad_c has the wrong sign: c enters the normal equations as -A^T c"
    if near["A sign"]:
        return ("grad_c is right but grad_A has the wrong sign: moving A moves omega against lam, so both terms "
                "of grad_A carry a minus")
    return ("not right yet: solve the normal-equations matrix against grad for lam, then differentiate "
            "A^T (A omega - c) with respect to A and c, paired with -lam")


def least_squares_backward(fn: Callable) -> CheckResult:
    """Check a learner's ``fn(A, c, omega, grad) -> (grad_A, grad_c)``, the implicit backward of the
    least-squares layer (eq-hard-implicit). Cases: two with ``r != 0`` and a consistent system (``r = 0``).
    Messages name the case and describe the learner's output, never the expected gradients.
    """
    if not _missing(fn) and callable(fn):
        learner = fn

        def fn(A, c, omega, grad):
            return _flat(learner(A, c, omega, grad))

    def reference(A, c, omega, grad):
        return _flat(hc.least_squares_vjp(A, c, omega, grad))

    return check_function(
        fn, reference, BACKWARD_CASES, rtol=1e-7, close_rtol=0.02, hint=_hint,
        close_note="nearly there: is everything in float64, and lam solved rather than inverted?",
        nonfinite="your gradients contain NaN or infinity: is the matrix you solve with A^T A (N x N)?",
        praise="including a system with a nonzero residual")
