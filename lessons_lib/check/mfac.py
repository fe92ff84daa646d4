"""Self-checks of the chapter on M-FAC (m-fac.ipynb)."""

from __future__ import annotations

from typing import Callable

import torch
from torch.overrides import TorchFunctionMode

from .. import mfac
from .core import CheckResult, check_function

DENSE = ("your function builds a d x d matrix (such as G^T G, an outer product v v^T or torch.eye(d)): the "
         "point of the recursion is never to form one; keep only vectors of length d and scalars")


def _cases() -> dict[str, tuple[torch.Tensor, torch.Tensor, float]]:
    gen = torch.Generator().manual_seed(7)
    f64 = dict(dtype=torch.float64, generator=gen)
    G1 = torch.randn(3, 6, **f64)
    x1 = torch.randn(6, **f64)
    G2 = torch.randn(8, 40, **f64) * 0.5
    x2 = torch.randn(40, **f64)
    G3 = torch.randn(5, 12, **f64)
    G3[3] = G3[1]  # a gradient seen twice: the recursion must still hold
    x3 = torch.randn(12, **f64)
    return {"m = 3 gradients in d = 6, lam = 0.5": (G1, x1, 0.5),
            "m = 8 gradients in d = 40, lam = 0.01 (the damping barely matters)": (G2, x2, 0.01),
            "m = 5 gradients in d = 12, one of them repeated, lam = 0.1": (G3, x3, 0.1)}


# the inputs (G, x, damp) handed to the learner's function, by description
IHVP_CASES = _cases()


def _reference(G, x, damp):
    return mfac.static_inverse(G, damp=damp).ihvp(x)


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(torch.allclose(a, b, rtol=1e-6, atol=1e-10))


def _ihvp_hint(case, value) -> str:
    G, x, damp = case
    v = torch.as_tensor(value, dtype=torch.float64)
    if v.shape != x.shape:
        return f"return one vector of the shape of x, ({x.numel()},)"
    m, d = G.shape
    eye = torch.eye(d, dtype=torch.float64)
    if _close(v, torch.linalg.solve(damp * eye + G.T @ G, x)):
        return ("your answer inverts lam I + sum_i g_i g_i^T: the Fisher averages the outer products, so each "
                "g_i g_i^T carries the weight 1/m (it shows up as m in the denominators m + g_j . v_j)")
    if _close(v, x / damp):
        return "your answer is x / lam: the gradients' terms are missing (is the sum over j empty?)"
    naive = G / damp
    denom = m + (G * naive).sum(1)
    if _close(v, x / damp - ((naive @ x) / denom) @ naive):
        return ("you took v_i = g_i / lam for every i: each v_i must also subtract the terms of the earlier "
                "v_j (j < i), so that v_i is the inverse of the Fisher built from the first i - 1 gradients "
                "applied to g_i")
    ref = _reference(G, x, damp)
    if _close(2 * x / damp - v, ref):
        return "the correction terms have the wrong sign: F^{-1} x is x / lam MINUS the sum over j"
    return ("not right yet: go through your loop term by term against eq-mfac-recursion (which vector each v_i "
            "starts from, which earlier v_j it subtracts, which denominator), then against eq-mfac-ihvp, which "
            "applies the finished v_j to x")


class _SquareWatch(TorchFunctionMode):
    """Notes whether any torch call inside the block returns a tensor with two trailing dimensions ``d x d``."""

    def __init__(self, d: int):
        super().__init__()
        self.d, self.seen = d, False

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.ndim >= 2 and t.shape[-1] == t.shape[-2] == self.d:
                self.seen = True
        return out


def ihvp(fn: Callable) -> CheckResult:
    """Check a learner's ``fn(G, x, damp)`` for ``F^{-1} x`` by the static recursion (eq-mfac-recursion,
    eq-mfac-ihvp), ``F = damp I + (1/m) G^T G`` with ``G`` of shape ``(m, d)`` and ``x`` of shape ``(d,)``.

    Messages name the case and describe the learner's output, never the expected vector. A function whose torch
    calls return a ``d x d`` tensor (a dense solve, ``G.T @ G``, an outer product) is "wrong" even when its
    values agree: the exercise forbids it. The watch sees torch only: a dense solve in NumPy passes unnoticed.
    """
    if not callable(fn):
        return check_function(fn, _reference, IHVP_CASES)
    dense = []

    def watched(G, x, damp):
        with _SquareWatch(G.shape[1]) as watch:
            out = fn(G, x, damp)
        dense.append(watch.seen)
        return out

    watched.__name__ = getattr(fn, "__name__", "fn")
    result = check_function(watched, _reference, IHVP_CASES, rtol=1e-8, close_rtol=0.05, hint=_ihvp_hint,
                            close_note="nearly there: is everything in float64?",
                            nonfinite="your vector contains NaN or infinity: does a denominator vanish?",
                            praise="including a repeated gradient")
    if result.status in ("correct", "close") and any(dense):
        return CheckResult("wrong", DENSE)
    return result
