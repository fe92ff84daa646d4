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

    return {"6 blocks of 4 numbers, blocks 4 and 1 sampled, alpha = 0.5, gamma = 2":
            dict(u=rand(6, 4), blocks=torch.tensor([4, 1]), h_new=rand(2, 4), h_old=rand(2, 4), alpha=0.5,
                 gamma=2.0),
            "5 tracked 3 x 3 Hessians, blocks 0, 3 and 2 sampled, alpha = 0.9, gamma = 1":
            dict(u=rand(5, 3, 3), blocks=torch.tensor([0, 3, 2]), h_new=rand(3, 3, 3), h_old=rand(3, 3, 3),
                 alpha=0.9, gamma=1.0),
            "50 blocks of 2 numbers, 5 sampled, alpha = 0.1, gamma = 10 (the code's theory rule for m = 50, I = 5)":
            dict(u=rand(50, 2), blocks=torch.tensor([7, 42, 0, 19, 33]), h_new=rand(5, 2), h_old=rand(5, 2),
                 alpha=0.1, gamma=10.0)}


# the inputs (u, blocks, h_new, h_old, alpha, gamma) that msvr_step hands the learner's function, by description
CASES = _cases()


def _reference(u, blocks, h_new, h_old, alpha, gamma):
    return blockwise_bilevel.msvr_step(u, blocks, h_new, h_old, alpha=alpha, gamma=gamma)


def _rows(u, blocks, rows):
    out = u.clone()
    out[blocks] = rows
    return out


def _hint(case, value) -> str:
    u, b, hn, ho, a, g = (case[k] for k in ("u", "blocks", "h_new", "h_old", "alpha", "gamma"))
    v = torch.as_tensor(value, dtype=torch.float64)
    if v.shape == hn.shape and v.shape != u.shape:
        return ("you returned only the sampled blocks' rows; return all the estimates, shape of u "
                f"{tuple(u.shape)}, with the other rows unchanged")
    if v.shape != u.shape:
        return f"return the new estimates with the shape of u {tuple(u.shape)}"
    keep = torch.ones(u.shape[0], dtype=torch.bool)
    keep[b] = False

    def near(x, rows=None):
        x = x if rows is None else _rows(u, b, rows)
        return bool(torch.allclose(v, x, rtol=1e-8, atol=1e-12))

    if not torch.allclose(v[keep], u[keep], rtol=1e-8, atol=1e-12):
        if torch.allclose(v[keep], (1 - a) * u[keep], rtol=1e-8, atol=1e-12):
            return ("the blocks that were not sampled shrank by the factor 1 - alpha: they were not visited, so "
                    "they must keep their estimates unchanged")
        return "the rows of blocks that were not sampled changed: they must keep their estimates unchanged"
    ub = u[b]
    if near(None, (1 - a) * ub + a * hn):
        return ("your update is a plain moving average: it leaves out the correction gamma * (h_new - h_old), "
                "which carries the change of the block between the old and the new point")
    if near(None, (1 - a) * ub + (a - g) * hn + g * ho):
        return ("your correction has the wrong sign: it should add gamma times the change h_new - h_old, "
                "not subtract it")
    if near(None, (1 - a) * (ub - ho) + hn):
        return ("you wrote STORM's recursion, whose correction weight is fixed at 1 - alpha; MSVR's weight is "
                "gamma, a separate argument")
    if near(None, (1 - a) * ub + a * ho + g * (hn - ho)):
        return "your moving average takes in the value at the old point; it should take in h_new"
    if near(None, a * ub + (1 - a) * hn + g * (hn - ho)):
        return "alpha and 1 - alpha are swapped: the old estimate keeps the fraction 1 - alpha"
    return ("the sampled rows are not right yet: row blocks[k] of u pairs with row k of h_new and h_old; keep "
            "1 - alpha of it, add alpha times h_new[k] and gamma times the change h_new[k] - h_old[k]")


def msvr_step(fn: Callable) -> CheckResult:
    """Check a learner's ``fn(u, blocks, h_new, h_old, alpha, gamma)`` for the blockwise MSVR step (eq-bsvrb-msvr).

    The cases hold blocks of vectors, blocks of matrices (tracked Hessians) and a large ``gamma`` with
    5 of 50 blocks sampled. Messages name the case and describe the learner's output, never the
    expected one.
    """
    if not _missing(fn) and callable(fn):
        learner = fn

        def fn(u, blocks, h_new, h_old, alpha, gamma):
            out = learner(u, blocks, h_new, h_old, alpha, gamma)
            return out.detach().cpu() if isinstance(out, torch.Tensor) else out

    return check_function(
        fn, _reference, CASES, rtol=1e-8, close_rtol=0.02, hint=_hint,
        close_note="nearly there: is everything in float64?",
        nonfinite="your update contains NaN or infinity: does it divide by something that can be zero?",
        praise="including tracked matrices and a large correction weight with most blocks left alone")
