"""Self-checks of the chapter on constrained bilevel optimisation and LV-HBA (constrained-bilevel.ipynb)."""

from __future__ import annotations

from typing import Callable

import torch

from .. import constrained_bilevel as cb
from .core import CheckResult, _missing, check_function

_KEYS = ("alpha", "eta", "beta", "c", "p", "gamma1", "gamma2")


def _cases() -> dict[str, dict]:
    g = torch.Generator().manual_seed(11)

    def start(problem, runs):
        n = problem.n
        x, y, z, theta, lam = (2 * torch.randn(runs, d, generator=g, dtype=torch.float64)
                               for d in (n, 2 * n, 1, 2 * n, 1))
        x, y = problem.project(x, y)
        return (x, y, z, theta, lam)

    small, pair = cb.coupled_toy(3, device="cpu"), cb.coupled_toy(2, device="cpu")
    return {"one run with n = 3 at step k = 0, c = 10, p = 0.3, alpha = eta = 0.05, beta = 0.1, gamma1 = gamma2 = 1":
            dict(problem=small, state=start(small, 1), k=0, alpha=0.05, eta=0.05, beta=0.1, c=10.0, p=0.3,
                 gamma1=1.0, gamma2=1.0),
            "4 runs with n = 2 at step k = 99, c = 0.2, p = 0.5, alpha = 0.1, eta = 0.05, beta = 0.2, "
            "gamma1 = 0.5, gamma2 = 2":
            dict(problem=pair, state=start(pair, 4), k=99, alpha=0.1, eta=0.05, beta=0.2, c=0.2, p=0.5,
                 gamma1=0.5, gamma2=2.0)}


# the inputs that one_loop_step hands the learner's function, by description
CASES = _cases()


def _moves(new, state, case):
    """The step per unit of its step size, ``((x - x+) / alpha, (y - y+) / alpha, (z - z+) / beta,
    (theta - theta+) / eta, (lam - lam+) / eta)``, packed in one row per run: a wrong step shows as an
    O(1) difference, not one of size alpha next to the state."""
    if _missing(new) or not isinstance(new, (tuple, list)) or len(new) != 5:
        return new
    try:
        parts = [torch.as_tensor(v, dtype=torch.float64).detach().cpu() for v in new]
        if any(p.shape != s.shape for p, s in zip(parts, state)):
            return new
        sizes = (case["alpha"], case["alpha"], case["beta"], case["eta"], case["eta"])
        return torch.cat([(s - p) / h for s, p, h in zip(state, parts, sizes)], dim=-1)
    except Exception:
        return new


def _variant(problem, state, k, *, alpha, eta, beta, c, p, gamma1, gamma2, old=False, descend=False, flat=False,
             times=False, unprojected=False, z_away=False):
    """LV-HBA's step with one deliberate mistake (for the hints)."""
    x, y, z, theta, lam = state
    fx, fy = problem.grad_lower(x, theta)
    theta_new = theta - eta * (fy + lam + (theta - y) / gamma1)
    ascent = problem.constraint(x, theta) - (lam - z) / gamma2
    lam_new = lam - eta * ascent if descend else lam + eta * ascent
    ck = c if flat else c * (k + 1) ** p
    Fx, Fy = problem.grad_upper(x, y)
    fx_y, fy_y = problem.grad_lower(x, y)
    th, la = (theta, lam) if old else (theta_new, lam_new)
    fx_t, _ = problem.grad_lower(x, th)
    scaled_x, scaled_y = (Fx * ck, Fy * ck) if times else (Fx / ck, Fy / ck)
    x_new, y_new = x - alpha * (scaled_x + fx_y - fx_t - la), y - alpha * (scaled_y + fy_y - (y - th) / gamma1)
    if not unprojected:
        x_new, y_new = problem.project(x_new, y_new)
    z_new = z + beta * (z - lam_new) / gamma2 if z_away else z - beta * (z - lam_new) / gamma2
    return x_new, y_new, z_new, theta_new, lam_new


def _reference(problem, state, k, **kw):
    return _moves(cb.lv_hba_step(problem, state, k, **kw), state, kw)


def _hint(case, value) -> str:
    problem, state, k = case["problem"], case["state"], case["k"]
    kw = {key: case[key] for key in _KEYS}
    v = torch.as_tensor(value, dtype=torch.float64)
    want = _reference(problem, state, k, **kw)
    if v.shape != want.shape:
        return ("return the new state (x, y, z, theta, lam) as a tuple of five tensors, each of the shape of the "
                "one it replaces")
    n = problem.n

    def near(**mistake):
        return bool(torch.allclose(v, _moves(_variant(problem, state, k, **kw, **mistake), state, kw),
                                   rtol=1e-8, atol=1e-10))

    checks = [
        (dict(descend=True), "your multiplier lam goes down along g - (lam - z) / gamma2; lam maximises, so it "
                             "takes an ascent step (theta descends, lam ascends)"),
        (dict(old=True), "your (x, y) step uses theta and lam from before this iteration's inner step; LV-HBA "
                         "first updates (theta, lam), then uses the new ones in the gradient of the value function"),
        (dict(flat=True), "your penalty stays at c_lower; it grows with the step count, c_k = c_lower (k + 1)^p"),
        (dict(times=True), "your step multiplies grad F by c_k; the scaled objective is F / c_k + f - v, so grad F "
                           "is divided by c_k"),
        (dict(unprojected=True), "your (x+, y+) leave the coupled constraint 1.x + 1.y = 0: project the pair "
                                 "after the gradient step (problem.project)"),
        (dict(z_away=True), "your z moves away from lam; z follows the multiplier, z+ = z + beta (lam+ - z) / gamma2"),
    ]
    for mistake, words in checks:
        if near(**mistake):
            return words
    new_x, new_y = state[0] - case["alpha"] * v[:, :n], state[1] - case["alpha"] * v[:, n:3 * n]
    if float(problem.constraint(new_x, new_y).abs().max()) > 1e-8:
        return "your (x+, y+) do not satisfy the coupled constraint 1.x + 1.y = 0: project the pair after the step"
    parts = ("x", "y", "z", "theta", "lam")
    bounds = ((0, n), (n, 3 * n), (3 * n, 3 * n + 1), (3 * n + 1, 5 * n + 1), (5 * n + 1, 5 * n + 2))
    wrong = [name for name, (a, b) in zip(parts, bounds)
             if not torch.allclose(v[:, a:b], want[:, a:b], rtol=1e-8, atol=1e-10)]
    return (f"not right yet: the new {', '.join(wrong)} differ from one LV-HBA step; do the descent-ascent step "
            "on (theta, lam) first, then the projected step on (x, y) and the step on z with the new (theta, lam)")


def one_loop_step(fn: Callable) -> CheckResult:
    """Check a learner's ``fn(problem, state, k, *, alpha, eta, beta, c, p, gamma1, gamma2)`` for one
    iteration of LV-HBA (eq-lvhba-step).

    ``state`` is ``(x, y, z, theta, lam)`` with a leading run dimension; the answer is the new state. The
    step of each block per unit of its step size is compared, so that a wrong direction is not hidden
    by a small step. Messages name the case and describe the learner's output, never the expected one.
    """
    if not _missing(fn) and callable(fn):
        learner = fn

        def fn(problem, state, k, **kw):
            return _moves(learner(problem, state, k, **kw), state, kw)

    return check_function(
        fn, _reference, CASES, rtol=1e-8, close_rtol=0.02, hint=_hint,
        close_note="nearly there: check the penalty c_k at step k (k counts from 0) and that everything is in "
                   "float64",
        nonfinite="your step contains NaN or infinity: at k = 0, is your penalty c_k zero (k counts from 0), or "
                  "is a division the wrong way round?",
        praise="including a batch of runs at a later step, where the penalty has grown")
