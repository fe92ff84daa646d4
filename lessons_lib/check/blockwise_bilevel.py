"""Self-checks of the chapter on multi-block bilevel optimisation and BSVRB (blockwise-bilevel.ipynb)."""

from __future__ import annotations

from typing import Callable

import torch

from .. import blockwise_bilevel
from .core import CheckResult, _missing, check_function


def _cases() -> dict[str, dict]:
    g = torch.Generator().manual_seed(11)

    def rand(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    return {"3 blocks of 4 numbers (rows), alpha = 0.5, gamma = 2":
            dict(u=rand(3, 4), h_new=rand(3, 4), h_old=rand(3, 4), alpha=0.5, gamma=2.0),
            "2 blocks of 3 x 3 tracked Hessians, alpha = 0.9, gamma = 1":
            dict(u=rand(2, 3, 3), h_new=rand(2, 3, 3), h_old=rand(2, 3, 3), alpha=0.9, gamma=1.0),
            "one block of 5 numbers, alpha = 0.1, gamma = 18 (the code's theory rule for m = 50, I = 5)":
            dict(u=rand(5), h_new=rand(5), h_old=rand(5), alpha=0.1, gamma=18.0)}


# the inputs (u, h_new, h_old, alpha, gamma) that msvr_update hands the learner's function, by description
CASES = _cases()


def _reference(u, h_new, h_old, alpha, gamma):
    return blockwise_bilevel.msvr_update(u, h_new, h_old, alpha=alpha, gamma=gamma)


def _hint(case, value) -> str:
    u, hn, ho, a, g = (case[k] for k in ("u", "h_new", "h_old", "alpha", "gamma"))
    v = torch.as_tensor(value, dtype=torch.float64)
    if v.shape != u.shape:
        return f"return the new estimates with the shape of u {tuple(u.shape)}"

    def near(x):
        return bool(torch.allclose(v, x, rtol=1e-8, atol=1e-12))

    if near((1 - a) * u + a * hn):
        return ("your update is a plain moving average: it leaves out the correction gamma * (h_new - h_old), "
                "which carries the change of the block between the old and the new point")
    if near((1 - a) * u + (a - g) * hn + g * ho):
        return ("your correction has the wrong sign: it should add gamma times the change h_new - h_old, "
                "not subtract it")
    if near((1 - a) * (u - ho) + hn):
        return ("you wrote STORM's recursion, whose correction weight is fixed at 1 - alpha; MSVR's weight is "
                "gamma, a separate argument")
    if near((1 - a) * u + a * ho + g * (hn - ho)):
        return "your moving average takes in the value at the old point; it should take in h_new"
    if near(a * u + (1 - a) * hn + g * (hn - ho)):
        return "alpha and 1 - alpha are swapped: the old estimate keeps the fraction 1 - alpha"
    return ("not right yet: keep the fraction 1 - alpha of u, add alpha times the new value, and add gamma times "
            "the change between the new and the old value (both on the same sample)")


def msvr_update(fn: Callable) -> CheckResult:
    """Check a learner's ``fn(u, h_new, h_old, alpha, gamma)`` for the MSVR update (eq-bsvrb-msvr).

    The cases hold blocks of vectors, blocks of matrices (tracked Hessians) and a large ``gamma``.
    Messages name the case and describe the learner's output, never the expected one.
    """
    if not _missing(fn) and callable(fn):
        learner = fn

        def fn(u, h_new, h_old, alpha, gamma):
            out = learner(u, h_new, h_old, alpha, gamma)
            return out.detach().cpu() if isinstance(out, torch.Tensor) else out

    return check_function(
        fn, _reference, CASES, rtol=1e-8, close_rtol=0.02, hint=_hint,
        close_note="nearly there: is everything in float64?",
        nonfinite="your update contains NaN or infinity: does it divide by something that can be zero?",
        praise="including blocks of matrices and a large correction weight")
