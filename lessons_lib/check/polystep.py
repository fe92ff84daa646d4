"""Self-checks of the chapter on PolyStep (polystep.ipynb)."""

from __future__ import annotations

from typing import Callable

import torch

from .. import polystep
from .core import CheckResult, check_function


def _cases() -> dict[str, dict]:
    g = torch.Generator().manual_seed(24)

    def case(P, V, d, low, high, eps):
        points = torch.randn(P, V, d, generator=g, dtype=torch.float64)
        costs = low + (high - low) * torch.rand(P, V, generator=g, dtype=torch.float64)
        return dict(points=points, costs=costs, eps=eps)

    return {"3 particles, 4 vertices each in R^2, costs in [100, 130], eps = 0.5": case(3, 4, 2, 100.0, 130.0, 0.5),
            "2 particles, 6 vertices each in R^3, costs in [-2, 0], eps = 0.2": case(2, 6, 3, -2.0, 0.0, 0.2),
            "1 particle, 10 vertices in R^5, costs in [0, 1000], eps = 1": case(1, 10, 5, 0.0, 1000.0, 1.0),
            "4 particles, 8 vertices each in R^4, costs in [5, 6], eps = 0.05": case(4, 8, 4, 5.0, 6.0, 0.05)}


# the keyword arguments (points (P, V, d), costs (P, V), eps) that plan_and_barycentre hands the learner's function
CASES = _cases()


def _pack(plan, X_new) -> torch.Tensor:
    """The plan and the new particles as one flat vector (what the check compares)."""
    return torch.cat([torch.as_tensor(plan, dtype=torch.float64).flatten(),
                      torch.as_tensor(X_new, dtype=torch.float64).flatten()])


def _written_out(points, costs, eps, *, scale="matrix", sign=-1.0, rows_to_one=False, plan_for_weights=False,
                uniform=False):
    """The plan and barycentre written out; the keywords make the mistakes the hints diagnose."""
    if scale == "matrix":
        C = costs - costs.amin()
        C = C / C.abs().mean()
    elif scale == "row":
        C = costs - costs.amin(-1, keepdim=True)
        C = C / C.abs().mean(-1, keepdim=True)
    else:
        C = costs
    W = torch.full_like(C, 1.0 / C.shape[1]) if uniform else torch.softmax(sign * C / eps, dim=-1)
    plan = W if rows_to_one else W / W.shape[0]
    X_new = torch.einsum("pv,pvi->pi", plan if plan_for_weights else W, points)
    return plan, X_new


def _reference(points, costs, eps):
    W, plan = polystep.softmin_plan(costs, eps=eps)
    return _pack(plan, torch.einsum("pv,pvi->pi", W, points))


_MISTAKES = (
    ("your weights favour the vertices with the highest cost: the softmax takes -C / eps, so that low cost means a "
     "large weight", dict(sign=1.0)),
    ("your weights ignore eps's units: eq-polystep-costs first subtracts the smallest cost and divides by the mean "
     "absolute value, so that eps does not depend on the loss's scale", dict(scale="raw")),
    ("your costs are rescaled row by row; eq-polystep-costs takes the minimum and the mean over the whole (P, V) "
     "matrix at once", dict(scale="row")),
    ("your plan's rows sum to 1: the plan is the weights times the source marginal a = 1/P, so each row sums to 1/P",
     dict(rows_to_one=True)),
    ("your new particles are averaged with the plan's rows, which sum to 1/P; the barycentre uses the weights, whose "
     "rows sum to 1", dict(plan_for_weights=True)),
    ("your weights are uniform: they must depend on the costs through softmax(-C / eps)", dict(uniform=True)),
)


def _hint(case, value) -> str:
    P, V, d = case["points"].shape
    v = torch.as_tensor(value, dtype=torch.float64)
    if v.shape != (P * V + P * d,):
        return f"return (plan, X_new) with shapes (P, V) = ({P}, {V}) and (P, d) = ({P}, {d})"
    plan, X_new = _written_out(**case)
    if torch.allclose(v, torch.cat([X_new.flatten(), plan.flatten()]), rtol=1e-9, atol=1e-12):
        return "your pair is in the wrong order: return (plan, X_new), the plan first and the new particles second"
    for words, kw in _MISTAKES:
        if torch.allclose(v, _pack(*_written_out(**case, **kw)), rtol=1e-9, atol=1e-12):
            return words
    n = P * V
    if torch.allclose(v[:n].reshape(P, V).sum(-1), torch.full((P,), 1.0 / P, dtype=torch.float64), atol=1e-9):
        return ("the rows of your plan sum to 1/P as they should, but the plan or the barycentre differs; are the "
                "weights softmax(-C~ / eps) of the scaled costs, and X_new the weighted sum of each row's vertices?")
    return ("not right yet; scale the costs (eq-polystep-costs), take each row's softmax(-C~ / eps), divide by P "
            "for the plan, and average each particle's vertices with its weights")


def _packed(fn: Callable) -> Callable:
    def wrapped(**case):
        out = fn(**case)
        if out is None or out is ...:
            return out  # "not attempted"
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise ValueError("return a pair (plan, X_new), not a single value")
        return _pack(*out)
    return wrapped


def plan_and_barycentre(fn: Callable) -> CheckResult:
    """Check a learner's ``fn(points, costs, eps)`` returning ``(plan, X_new)`` (eq-polystep-plan, eq-polystep-step).

    ``points`` has shape ``(P, V, d)``, ``costs`` shape ``(P, V)``; the answer is the transport plan ``(P, V)``
    and the barycentres ``(P, d)``. The hints name the learner's mistake (the pair in the wrong order, a reversed
    sign, unscaled or row-scaled costs, plan rows summing to 1, the plan used as weights, uniform weights) without
    showing the answer.
    """
    if callable(fn):
        fn = _packed(fn)
    return check_function(fn, _reference, CASES, rtol=1e-8, close_rtol=0.05, hint=_hint,
                          close_note="nearly there: compare the cost scaling and the softmax with eq-polystep-plan "
                                     "one term at a time",
                          nonfinite=("your plan or particles contain NaN or infinity; exp(-C / eps) over- or "
                                     "underflowed: scale the costs first (eq-polystep-costs) and use torch.softmax, "
                                     "which subtracts the row's largest exponent"),
                          praise="including the unscaled costs near 100 and 1000")
