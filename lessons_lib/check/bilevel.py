"""Self-checks of the chapter on unbounded smoothness and BO-REP (unbounded-smoothness.ipynb)."""

from __future__ import annotations

from typing import Callable

import torch

from .. import bilevel
from .core import CheckResult, _missing, check_function


def _cases() -> dict[str, dict]:
    g = torch.Generator().manual_seed(7)

    def rand(*shape, scale=1.0):
        return scale * torch.randn(*shape, generator=g, dtype=torch.float64)

    return {"one run in 5 dimensions, beta = 0.9, lr = 0.05, a hypergradient as large as the momentum":
            dict(x=rand(5), m=rand(5), h=rand(5), lr=0.05, beta=0.9),
            "one run in 3 dimensions, beta = 0 (no momentum), lr = 0.2":
            dict(x=rand(3), m=rand(3), h=rand(3), lr=0.2, beta=0.0),
            "4 runs of 5 dimensions in a batch (rows), beta = 0.5, lr = 0.01, hypergradients of very different sizes":
            dict(x=rand(4, 5), m=rand(4, 5), h=rand(4, 5) * torch.tensor([[0.1], [1.0], [3.0], [10.0]],
                                                                            dtype=torch.float64), lr=0.01, beta=0.5)}


# the inputs (x, m, h, lr, beta) that upper_step hands the learner's function, by description
CASES = _cases()


def _stack(pair, x, lr):
    """``(x_new, m_new)`` as the rows ``((x - x_new) / lr, m_new)``: the step per unit of lr is compared,
    not ``x_new`` itself (a wrong step of length ``lr`` is small next to ``x``)."""
    if _missing(pair) or not isinstance(pair, (tuple, list)) or len(pair) != 2:
        return pair
    try:
        x_new, m_new = (torch.as_tensor(p, dtype=torch.float64).detach().cpu() for p in pair)
        return torch.stack([(x - x_new) / lr, m_new])
    except Exception:
        return pair


def _reference(x, m, h, lr, beta):
    return _stack(bilevel.upper_step(x, m, h, lr=lr, beta=beta), x, lr)


def _hint(case, value) -> str:
    x, m, h, lr, beta = (case[k] for k in ("x", "m", "h", "lr", "beta"))
    v = torch.as_tensor(value, dtype=torch.float64)
    if v.shape != (2,) + tuple(x.shape):
        return f"return a pair (x_new, m_new), each of the shape of x {tuple(x.shape)}"
    step, m_new = lr * v[0], v[1]
    want_m = beta * m + (1 - beta) * h
    if not torch.allclose(m_new, want_m, rtol=1e-8, atol=1e-12):
        if torch.allclose(m_new, (1 - beta) * m + beta * h, rtol=1e-8, atol=1e-12):
            return "your momentum keeps a fraction 1 - beta of the old m; it should keep beta of it"
        return "your new momentum m_new is not the running average beta * m + (1 - beta) * h"
    length = step.norm(dim=-1)
    if torch.allclose(step, lr * want_m, rtol=1e-8, atol=1e-12):
        return ("your step is lr times the momentum itself, so its length grows with the hypergradient; "
                "divide the momentum by its norm first")
    if torch.allclose(step, lr * h / h.norm(dim=-1, keepdim=True), rtol=1e-8, atol=1e-12):
        return "your step follows the fresh hypergradient h; the direction is that of the new momentum"
    if x.ndim == 2 and torch.allclose(step, lr * want_m / want_m.norm(), rtol=1e-8, atol=1e-12):
        return ("you divided by one norm of the whole batch; each run (row) needs its own norm: "
                "norm over the last dimension, keepdim=True")
    if torch.allclose(step, -lr * want_m / want_m.norm(dim=-1, keepdim=True), rtol=1e-8, atol=1e-12):
        return "your step goes uphill: x moves against the momentum"
    if torch.allclose(step, lr * m / m.norm(dim=-1, keepdim=True), rtol=1e-8, atol=1e-12):
        return ("your steps have length lr but follow the old momentum m; the step should use the momentum "
                "after this iteration's update")
    if torch.allclose(length, torch.full_like(length, lr), rtol=1e-6):
        return "your steps have length lr, as they should, but do not point along the new momentum"
    lengths = ", ".join(f"{float(s):.3g}" for s in length.reshape(-1)[:4])
    return f"your step lengths ||x - x_new|| are {lengths}; each should be lr, along the new momentum"


def _error_hint(exc: Exception) -> str | None:
    """A hint for the usual cause of a shape clash in the batch case."""
    if isinstance(exc, RuntimeError) and "must match the size" in str(exc):
        return ("in the batch case a norm over the last dimension has one value per run, shape (n,), which does "
                "not broadcast against rows of shape (n, d); keep that dimension so each row is divided by its own")
    return None


def upper_step(fn: Callable) -> CheckResult:
    """Check a learner's ``fn(x, m, h, lr, beta)`` for BO-REP's normalised momentum step (eq-bilevel-normalised).

    The answer is the pair ``(x_new, m_new)``; one case holds a batch of runs as rows, whose steps are
    normalised one run at a time. Messages name the case and describe the learner's output, never the
    expected one.
    """
    if not _missing(fn) and callable(fn):
        learner = fn

        def fn(x, m, h, lr, beta):
            return _stack(learner(x, m, h, lr, beta), x, lr)

    return check_function(
        fn, _reference, CASES, rtol=1e-8, close_rtol=0.02, hint=_hint,
        close_note="nearly there: is everything in float64, and is the norm the Euclidean one?",
        nonfinite="your step contains NaN or infinity: is a norm zero, or a division the wrong way round?",
        praise="including a batch of runs normalised one by one", error_hint=_error_hint)
