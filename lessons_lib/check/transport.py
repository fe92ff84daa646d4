"""Self-checks of the chapter on Sinkhorn–Newton–Sparse (sinkhorn-newton-sparse.ipynb)."""

from __future__ import annotations

from typing import Callable

import torch

from .. import transport
from .core import CheckResult, _missing, check_function


def _sweep_cases() -> dict[str, tuple]:
    small = transport.ot_problem_1d(6, device="cpu")
    chapter = transport.ot_problem_1d(40, device="cpu")
    gen = torch.Generator().manual_seed(0)
    rect_C = torch.rand(4, 7, generator=gen, dtype=torch.float64)
    rect_r = torch.rand(4, generator=gen, dtype=torch.float64) + 0.1
    rect_c = torch.rand(7, generator=gen, dtype=torch.float64) + 0.1
    rect_r, rect_c = rect_r / rect_r.sum(), rect_c / rect_c.sum()
    z = torch.zeros
    return {
        "6 grid points, eta = 5, from x = y = 0": (z(6, dtype=torch.float64), z(6, dtype=torch.float64),
                                                   small.C, small.r, small.c, 5.0),
        "4 sources and 7 targets (a rectangular C), eta = 3, from nonzero potentials": (
            0.1 * torch.arange(4, dtype=torch.float64), -0.05 * torch.arange(7, dtype=torch.float64),
            rect_C, rect_r, rect_c, 3.0),
        "40 grid points, eta = 1200, from x = -y = 1 (exp(eta y) underflows, exp(eta x) overflows)": (
            torch.ones(40, dtype=torch.float64), -torch.ones(40, dtype=torch.float64), chapter.C, chapter.r,
            chapter.c, 1200.0),
    }


# the inputs (x, y, C, r, c, eta) that sinkhorn_sweep hands the learner's function, by description
SWEEP_CASES = _sweep_cases()


def _reference(x, y, C, r, c, eta):
    return torch.cat(list(transport._sweep(x, y, C, r, c, eta)))


def _stacked(value):
    """The learner's ``(x_new, y_new)`` joined into one tensor of shape ``(n + m,)``; anything else unchanged."""
    if _missing(value) or not isinstance(value, (tuple, list)) or len(value) != 2:
        return value
    try:
        a, b = (torch.as_tensor(v.detach().cpu() if isinstance(v, torch.Tensor) else v, dtype=torch.float64)
                for v in value)
        return torch.cat([a.reshape(-1), b.reshape(-1)]) if a.ndim == b.ndim == 1 else value
    except Exception:
        return value


def _variants(x, y, C, r, c, eta):
    """The learner's usual slips, each as a full sweep (same layout as the reference)."""
    lse = torch.logsumexp
    join = torch.cat
    xn = (torch.log(r) - lse(eta * (y[None, :] - C) - 1, dim=1)) / eta
    yn = (torch.log(c) - lse(eta * (xn[:, None] - C) - 1, dim=0)) / eta
    jacobi_y = (torch.log(c) - lse(eta * (x[:, None] - C) - 1, dim=0)) / eta
    x0 = (torch.log(r) - lse(eta * (y[None, :] - C), dim=1)) / eta
    y0 = (torch.log(c) - lse(eta * (x0[:, None] - C), dim=0)) / eta
    yf = (torch.log(c) - lse(eta * (x[:, None] - C) - 1, dim=0)) / eta
    xf = (torch.log(r) - lse(eta * (yf[None, :] - C) - 1, dim=1)) / eta
    out = {"jacobi": join([xn, jacobi_y]), "no_minus_one": join([x0, y0]), "y_first": join([xf, yf]),
           "old_y": join([xn, y])}
    xe = torch.log(r) - lse(eta * (y[None, :] - C) - 1, dim=1)  # eta x, not x: the division forgotten
    out["no_eta"] = join([xe, torch.log(c) - lse(eta * (xe[:, None] - C) - 1, dim=0)])
    if C.shape[0] == C.shape[1]:  # the sums over the wrong axes (on a rectangular C they raise instead)
        xa = (torch.log(r) - lse(eta * (y[None, :] - C) - 1, dim=0)) / eta
        out["axes"] = join([xa, (torch.log(c) - lse(eta * (xa[:, None] - C) - 1, dim=1)) / eta])
    out["x_only"] = xn  # the right x, for telling which half is wrong
    out["y_given_x"] = yn
    return out


def _hint(case, value) -> str:
    x, y, C, r, c, eta = case
    want = _reference(*case)
    v = torch.as_tensor(value, dtype=torch.float64)
    n = C.shape[0]
    if v.shape != want.shape:
        return (f"return the pair (x_new, y_new), of shapes ({C.shape[0]},) and ({C.shape[1]},): x has one entry "
                "per row of C, y one per column")

    def near(a, b=v):
        return bool(torch.allclose(b, a, rtol=1e-6, atol=1e-9))

    slips = _variants(*case)
    if near(slips["jacobi"]):
        return ("your x update is right, but y was computed from the old x: Sinkhorn is block coordinate ascent, so "
                "the y update must use the x just computed")
    if near(slips["no_minus_one"]):
        return ("your potentials are all shifted by the same amount: the plan here is exp(eta (x_i + y_j - C_ij) - 1); "
                "keep the -1 inside the exponent")
    if near(slips["y_first"]):
        return "you updated y first, then x: this sweep maximises over x first, then over y with the new x"
    if near(slips["old_y"]):
        return ("your x update is right, but the y you return is the y you were given: a sweep also maximises over y, "
                "with the new x")
    if near(slips["no_eta"]):
        return ("your potentials are eta times too large: the log-sum-exp expression gives eta x_i, not x_i; "
                "divide by eta")
    if "axes" in slips and near(slips["axes"]):
        return ("each logsumexp sums over the wrong axis: x_i must make row i of the plan sum to r_i, so its sum runs "
                "over the columns j of C; the y update sums over the rows i")
    if near(slips["x_only"], v[:n]):
        return ("your x_new is right, your y_new is not: compare it with the second update of eq-transport-sinkhorn, "
                "which makes the column sums of the plan equal c")
    return ("not right yet, already in x_new: compare it with the first update of eq-transport-sinkhorn, which "
            "makes the row sums of the plan equal r for the y you were given")


def _error_hint(exc: Exception) -> str | None:
    """A shape clash usually means a sum over the wrong axis (4 sources, 7 targets: rows and columns differ)."""
    if "size of tensor" in str(exc) or "shape" in str(exc):
        return ("on a rectangular C a shape clash usually means a logsumexp over the wrong axis: x has one entry per "
                "row of C, so its sum runs over the columns; y one per column, its sum over the rows")
    return None


def sinkhorn_sweep(fn: Callable) -> CheckResult:
    """Check a learner's ``fn(x, y, C, r, c, eta) -> (x_new, y_new)``: one log-domain Sinkhorn sweep.

    The cases include a rectangular cost matrix (rows and columns must not be mixed up) and ``eta = 1200``
    on 40 points, where ``exp(-eta C)`` underflows to zero for most entries, so only a log-domain sweep
    (log-sum-exp) stays finite. Messages describe the learner's output, never the expected potentials.
    """
    if not _missing(fn) and callable(fn):
        learner = fn

        def fn(x, y, C, r, c, eta):
            return _stacked(learner(x, y, C, r, c, eta))

    return check_function(
        fn, _reference, SWEEP_CASES, rtol=1e-8, close_rtol=0.05, hint=_hint,
        close_note="nearly there: is everything computed in float64?",
        nonfinite=("your potentials contain NaN or infinity: at eta = 1200 exponentials such as exp(eta y) underflow "
                   "to 0 or overflow to infinity; use torch.logsumexp on the exponents instead of exponentiating "
                   "first"),
        praise="including eta = 1200, where only the log domain stays finite", error_hint=_error_hint)
