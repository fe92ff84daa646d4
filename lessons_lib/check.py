"""Exercise self-checks: they say correct, close or wrong, with a hint, and never the answer.

A check compares the learner's value (or function) with the library's reference. The displayed
text is built only from the learner's own value and the verdict, so the expected answer never
appears in the output (tests check the repr and the HTML). Missing work (``None``, a function that
raises ``NotImplementedError``), NaN and wrong shapes get a friendly message, not a traceback.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any, Callable, Literal, Sequence

import torch

from . import quadratic

Status = Literal["correct", "close", "wrong", "not attempted"]
# plain symbols that every text font has (emoji fonts are missing on many machines)
_ICON = {"correct": "✓", "close": "≈", "wrong": "✗", "not attempted": "…"}


@dataclass(frozen=True)
class CheckResult:
    """The verdict of a self-check: ``status`` and a ``message`` that never holds the answer."""

    status: Status
    message: str

    def __bool__(self) -> bool:
        return self.status == "correct"

    def __repr__(self) -> str:
        return f"{_ICON[self.status]} {self.status}: {self.message}"

    def _repr_html_(self) -> str:
        colour = {"correct": "#1a7f37", "close": "#9a6700", "wrong": "#cf222e", "not attempted": "#57606a"}
        return (f'<div class="lessons-check" style="border-left:4px solid {colour[self.status]};'
                f'padding:0.2em 0.6em"><b>{_ICON[self.status]} {self.status}</b>: '
                f"{html.escape(self.message)}</div>")


def _as_array(value) -> torch.Tensor | None:
    try:
        return torch.as_tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        return None


def compare(value, expected, *, rtol: float = 1e-6, close_rtol: float = 0.05,
            hint: Callable[[Any], str] | None = None) -> CheckResult:
    """Compare a learner's number or array with the expected one.

    ``correct`` within ``rtol`` (relative, in the max norm), ``close`` within ``close_rtol`` (the
    message gives the relative error), otherwise ``wrong`` with ``hint(value)``, which must be
    derived from the learner's own value.
    """
    if value is None or value is Ellipsis:
        return CheckResult("not attempted", "no answer yet: replace the placeholder and run the cell again")
    got = _as_array(value)
    want = torch.as_tensor(expected, dtype=torch.float64)
    if got is None:
        return CheckResult("wrong", f"expected a number or an array of numbers, got a {type(value).__name__}")
    if got.shape != want.shape:
        return CheckResult("wrong", hint(value) if hint else
                           f"your answer has shape {tuple(got.shape)}, which is not the shape asked for")
    if not bool(torch.isfinite(got).all()):
        return CheckResult("wrong", "your answer contains NaN or infinity: did the iteration diverge?")
    scale = max(float(want.abs().max()) if want.numel() else 0.0, 1e-300)
    err = float((got - want).abs().max()) / scale if want.numel() else 0.0
    if err <= rtol:
        return CheckResult("correct", "well done")
    if err <= close_rtol:
        return CheckResult("close", f"relative error {err:.1e}: check rounding or an off-by-one step count")
    return CheckResult("wrong", hint(value) if hint else "not right yet: re-read the question and try again")


def check_function(fn: Callable, reference: Callable, cases: Sequence[dict], *, rtol: float = 1e-6,
                   close_rtol: float = 0.05, hint: Callable[[dict, Any], str] | None = None) -> CheckResult:
    """Call the learner's ``fn(**case)`` for each case and compare with ``reference(**case)``.

    The first failing case decides the verdict; ``hint(case, value)`` explains it from the
    learner's own output. The cases shown in a message are inputs, never outputs.
    """
    if fn is None or not callable(fn):
        return CheckResult("not attempted", "define the function first, then run this check")
    worst: CheckResult = CheckResult("correct", f"all {len(cases)} test cases agree")
    for case in cases:
        try:
            value = fn(**case)
        except NotImplementedError:
            return CheckResult("not attempted", "the function still raises NotImplementedError: fill it in")
        except Exception as exc:  # a learner's bug is feedback, not a traceback
            return CheckResult("wrong", f"calling it with {case} raised {type(exc).__name__}: {exc}")
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu()
        verdict = compare(value, reference(**case), rtol=rtol, close_rtol=close_rtol,
                          hint=(lambda v, c=case: hint(c, v)) if hint else None)
        if verdict.status == "not attempted":
            return CheckResult("not attempted", "the function returned None: return the iterates")
        if verdict.status == "wrong":
            return CheckResult("wrong", f"for inputs {case}: {verdict.message}")
        if verdict.status == "close":
            worst = CheckResult("close", f"for inputs {case}: {verdict.message}")
    return worst


# --- chapter checks: learning rate and curvature ------------------------------------------------

def critical_lr(answer, *, a: float) -> CheckResult:
    """Check the largest learning rate for which GD converges on ``a x^2 / 2``."""
    def hint(v):
        q = 1 - float(v) * a
        side = "diverges" if abs(q) > 1 else "still converges"
        return (f"with lr = {float(v):.4g}, the factor 1 - lr*a = {q:.3g}, so GD {side}; "
                "the limit is where the factor reaches -1")
    # the boundary itself (lr*a = 2) is the answer; a convergent lr is not the *largest* one
    return compare(answer, quadratic.critical_lr([[a]]), rtol=1e-6, close_rtol=0.02, hint=hint)


def gd_iterates(fn: Callable, *, cases: Sequence[dict] | None = None) -> CheckResult:
    """Check a learner's ``fn(a, x0, lr, steps)`` returning the ``steps + 1`` GD iterates on ``a x^2/2``."""
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


# --- chapter checks: stability ----------------------------------------------------------------

def largest_stable_lr(answer, *, H) -> CheckResult:
    """Check the largest learning rate for which GD on ``1/2 x^T H x`` still converges (``2/lambda_max``)."""
    H = quadratic.check_hessian(H)
    lam = torch.linalg.eigvalsh(H)

    def hint(v):
        q = 1 - float(v) * lam
        worst = int(q.abs().argmax())
        verdict = "diverges" if float(q.abs().max()) > 1 else "still contracts"
        return (f"with lr = {float(v):.4g} the factors 1 - lr*lambda_i are {[round(float(x), 3) for x in q]}; "
                f"the worst one ({float(q[worst]):.3g}) {verdict}, so look at the direction whose factor "
                "is closest to -1")

    return compare(answer, quadratic.critical_lr(H), rtol=1e-6, close_rtol=0.02, hint=hint)


# --- chapter checks: discretisation drift -----------------------------------------------------

def principal_coefficient(answer, *, lr: float, lam: float) -> CheckResult:
    """Check the principal-flow coefficient ``log(1 - h lambda) / h`` (a complex number)."""
    if answer is None or answer is Ellipsis:
        return compare(None, 0.0)
    try:
        z = complex(answer)
    except (TypeError, ValueError):
        return CheckResult("wrong", f"expected a (complex) number, got a {type(answer).__name__}")
    want = complex(torch.log(torch.tensor(1 - lr * lam, dtype=torch.complex128)) / lr)

    def hint(_):
        if abs(z.imag) < 1e-12 and lr * lam > 1:
            return (f"your answer is real, but 1 - h*lambda = {1 - lr * lam:.3g} is negative: "
                    "its logarithm has an imaginary part")
        if z.real > 0 and lr * lam < 2:
            return "a positive real part means growth, yet |1 - h*lambda| < 1 here: check the sign"
        return "take the complex logarithm of the per-step factor 1 - h*lambda, then divide by h"

    return compare([z.real, z.imag], [want.real, want.imag], rtol=1e-6, close_rtol=0.02, hint=hint)


# --- chapter checks: warmup-stable-decay -------------------------------------------------------

def best_decay_fraction(answer, *, fractions, valley, x0: float, peak: float, steps: int, sigma: float) -> CheckResult:
    """Check the decay fraction (one of ``fractions``) with the lowest expected final loss on ``valley``."""
    from . import schedules, wsd

    def final(f):
        sched = schedules.wsd_schedule(peak, total=steps, warmup=0, decay_frac=f)
        return sum(wsd.expected_valley_loss(valley, x0, schedule=sched, steps=steps, sigma=sigma))

    losses = {f: final(f) for f in fractions}
    best = min(losses, key=losses.get)
    if answer is None or answer is Ellipsis:
        return compare(None, best)
    if answer not in losses:
        return CheckResult("wrong", f"pick one of the fractions offered: {list(fractions)}")

    def hint(v):
        river, hill = wsd.expected_valley_loss(valley, x0, steps=steps, sigma=sigma,
                                               schedule=schedules.wsd_schedule(peak, total=steps, warmup=0, decay_frac=v))
        side = "river" if river > hill else "hill"
        return (f"at decay fraction {v} the final loss is {river + hill:.3g}, of which the {side} part is larger; "
                + ("a shorter decay leaves more time for river progress" if side == "river"
                   else "a longer decay removes more of the hill noise"))

    return compare(answer, best, rtol=1e-12, close_rtol=0.0, hint=hint)


# --- chapter checks: curl descent --------------------------------------------------------------

def curl_stable(answer, *, W1, w2, D1, D2) -> CheckResult:
    """Check a True/False prediction that the solution manifold is stable (``lambda_min(K) > 0``)."""
    from . import curl

    if answer is None or answer is Ellipsis:
        return compare(None, 0.0)
    if not isinstance(answer, bool):
        return CheckResult("wrong", f"answer True (stable) or False (unstable), got a {type(answer).__name__}")
    stable = bool(torch.linalg.eigvalsh(curl.stability_matrix(W1, w2, D1, D2))[0] > 0)
    if answer == stable:
        return CheckResult("correct", "well done")
    return CheckResult("wrong", "compute the smallest eigenvalue of K = ||w2||^2 D1 + W1^T D2 W1 "
                                "(curl.stability_matrix, then torch.linalg.eigvalsh) and look at its sign")
