"""Exercise self-checks: they say correct, close or wrong, with a hint, and never the answer.

A check compares the learner's value (or function) with the library's reference. The displayed
text is built only from the learner's own value and the verdict, so the expected answer never
appears in the output (tests check the repr and the HTML). Missing work (``None``, a function that
raises ``NotImplementedError``), NaN and wrong shapes get a friendly message, not a traceback.

A new check builds on :func:`compare` or :func:`check_function` with a hint computed from the
learner's value, and gets a row in ``CHECKS`` in tests/test_course.py (right, near and two wrong
values); a check without one fails the tests (book/how-to-use.md, "For authors").
"""

from __future__ import annotations

import cmath
import html
import math
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
    """The learner's value as a float64 CPU tensor, or ``None`` if it is not numbers at all."""
    try:
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu()
        if isinstance(value, (str, bytes, complex)):
            return None
        return torch.as_tensor(value, dtype=torch.float64)
    except Exception:  # ragged lists, objects, complex arrays ...: all mean "not an array of reals"
        return None


def _missing(value) -> bool:
    """``None`` or ``...``: the placeholder a student notebook starts with."""
    return value is None or value is Ellipsis


def _is_number(value) -> bool:
    """A real number (a Python or numpy float or int, a one-element tensor), not a string or a bool."""
    try:
        float(value)
        return not isinstance(value, (str, bytes, bool))
    except Exception:
        return False


def _hint(hint: Callable | None, *args, fallback: str) -> str:
    """``hint(*args)``, or ``fallback`` if there is no hint or it cannot make sense of the value."""
    if hint is None:
        return fallback
    try:
        return hint(*args)
    except Exception:  # a hint must never turn a learner's odd value into a traceback
        return fallback


def compare(value, expected, *, rtol: float = 1e-6, close_rtol: float = 0.05,
            hint: Callable[[Any], str] | None = None,
            close_note: str = "check rounding or an off-by-one step count") -> CheckResult:
    """Compare a learner's number or array with the expected one.

    ``correct`` within ``rtol`` (relative, in the max norm), ``close`` within ``close_rtol`` (the
    message gives the relative error and ``close_note``), otherwise ``wrong`` with ``hint(value)``,
    which must be derived from the learner's own value. ``None`` or ``...`` is "not attempted";
    NaN, a wrong shape or a non-number is "wrong" with a plain message; a one-element array counts
    as a number.
    """
    if _missing(value):
        return CheckResult("not attempted", "no answer yet: replace the placeholder and run the cell again")
    got = _as_array(value)
    want = torch.as_tensor(expected, dtype=torch.float64)
    if got is None:
        return CheckResult("wrong", f"expected a number or an array of numbers, got a {type(value).__name__}")
    if got.shape != want.shape and got.numel() == want.numel() == 1:
        got = got.reshape(want.shape)  # 0.5, [0.5] and tensor([0.5]) are the same answer
    if got.shape != want.shape:
        shape = (f"your answer has shape {tuple(got.shape)}, which is not the shape asked for"
                 if got.ndim else "your answer is a single number, but an array is asked for")
        return CheckResult("wrong", _hint(hint, value, fallback=shape))
    if not bool(torch.isfinite(got).all()):
        return CheckResult("wrong", "your answer contains NaN or infinity: did the iteration diverge?")
    scale = max(float(want.abs().max()) if want.numel() else 0.0, 1e-300)
    err = float((got - want).abs().max()) / scale if want.numel() else 0.0
    if err <= rtol:
        return CheckResult("correct", "well done")
    if err <= close_rtol:
        return CheckResult("close", f"relative error {err:.1e}: {close_note}")
    return CheckResult("wrong", _hint(hint, value, fallback="not right yet: re-read the question and try again"))


def check_function(fn: Callable, reference: Callable, cases: Sequence[dict], *, rtol: float = 1e-6,
                   close_rtol: float = 0.05, hint: Callable[[dict, Any], str] | None = None) -> CheckResult:
    """Call the learner's ``fn(**case)`` for each case and compare with ``reference(**case)``.

    The first failing case decides the verdict; ``hint(case, value)`` explains it from the
    learner's own output. The cases shown in a message are inputs, never outputs.
    """
    if _missing(fn):
        return CheckResult("not attempted", "define the function first, then run this check")
    if not callable(fn):
        return CheckResult("wrong", f"expected a function, got a {type(fn).__name__}")
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
            return CheckResult("not attempted", "the function returned None: return its result")
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
    if _missing(answer):
        return compare(None, 0.0)
    try:
        if isinstance(answer, (str, bytes)):
            raise TypeError
        z = complex(answer)
    except Exception:
        return CheckResult("wrong", f"expected a (complex) number, got a {type(answer).__name__}")
    want = complex(torch.log(torch.tensor(1 - lr * lam, dtype=torch.complex128)) / lr)
    factor = 1 - lr * lam

    def hint(_):
        if abs(z.imag) < 1e-12 and factor < 0:
            return (f"your answer is real, but 1 - h*lambda = {factor:.3g} is negative: "
                    "its logarithm has an imaginary part")
        implied = cmath.exp(lr * z)  # the per-step factor that the learner's coefficient stands for
        if abs(implied - factor) <= 1e-6 * max(abs(factor), 1.0):
            return ("your coefficient gives the right per-step factor, but it is not the principal logarithm: "
                    "its imaginary part must lie in (-pi/h, pi/h]")
        return (f"your coefficient stands for the per-step factor exp(h*z) = {implied.real:.3g}{implied.imag:+.3g}i, "
                f"but one GD step multiplies by 1 - h*lambda = {factor:.3g}: take the complex logarithm of "
                "that factor, then divide by h")

    return compare([z.real, z.imag], [want.real, want.imag], rtol=1e-6, close_rtol=0.02, hint=hint,
                   close_note="check rounding")


# --- chapter checks: warmup-stable-decay -------------------------------------------------------

def best_decay_fraction(answer, *, fractions, valley, x0: float, peak: float, steps: int, sigma: float,
                        close_rtol: float = 0.05) -> CheckResult:
    """Check the decay fraction (one of ``fractions``) with the lowest expected final loss on ``valley``.

    A pick whose expected final loss is within ``close_rtol`` of the lowest one is ``close`` (the
    message gives that relative excess); the hint says which way the loss still falls from the pick.
    """
    from . import schedules, wsd

    def parts(f):
        sched = schedules.wsd_schedule(peak, total=steps, warmup=0, decay_frac=f)
        return wsd.expected_valley_loss(valley, x0, schedule=sched, steps=steps, sigma=sigma)

    if _missing(answer):
        return compare(None, 0.0)
    offered = sorted(fractions)
    pick = next((f for f in offered if _is_number(answer) and math.isclose(float(answer), f, rel_tol=1e-6)), None)
    if pick is None:
        return CheckResult("wrong", f"pick one of the fractions offered: {list(fractions)}")
    losses = {f: sum(parts(f)) for f in offered}
    best = min(losses.values())
    excess = (losses[pick] - best) / best
    if excess <= 1e-12:
        return CheckResult("correct", "well done")
    if excess <= close_rtol:
        return CheckResult("close", f"the expected final loss of your pick is {excess:.1%} above the lowest one "
                                    "on offer: compare it with its neighbours")
    i = offered.index(pick)
    longer = i + 1 < len(offered) and losses[offered[i + 1]] < losses[pick]
    river, hill = parts(pick)
    return CheckResult("wrong", f"at decay fraction {pick} the expected final loss is {river + hill:.3g} "
                                f"(river {river:.3g}, hill {hill:.3g}), and it still falls if you make the decay "
                                f"{'longer' if longer else 'shorter'}: evaluate every fraction offered")


# --- chapter checks: curl descent --------------------------------------------------------------

def curl_lambda_min(answer, *, W1, w2, D1, D2) -> CheckResult:
    """Check ``lambda_min(K)`` for ``K = ||w2||^2 diag(D1) + W1^T diag(D2) W1`` (eq-curl-stability).

    Its sign decides stability, so a True/False answer would give the result away with every
    verdict; the check asks for the number and hints from the learner's value.
    """
    from . import curl

    W1, w2, D1, D2 = (torch.as_tensor(t, dtype=torch.float64) for t in (W1, w2, D1, D2))
    lams = torch.linalg.eigvalsh(curl.stability_matrix(W1, w2, D1, D2))
    parts = (float(-(w2**2).sum()) if bool((D1 < 0).any()) else float((w2**2).sum()),
             float(torch.linalg.eigvalsh(W1.mT @ (D2[:, None] * W1))[0]))

    def near(v, x):
        return abs(v - x) <= 0.02 * max(abs(x), 1e-3)

    def hint(v):
        v = float(v)
        if any(near(v, float(x)) for x in lams[1:]):
            return "that is an eigenvalue of K, but not the smallest (torch.linalg.eigvalsh sorts them ascending)"
        if any(near(v, x) for x in parts):
            return ("that is the smallest eigenvalue of one of the two terms of K alone: "
                    "add ||w2||^2 diag(D1) and W1^T diag(D2) W1 first, then take the eigenvalue")
        return (f"with lambda_min = {v:.3g} the manifold would be {'stable' if v > 0 else 'unstable'}; build K with "
                "curl.stability_matrix(W1, w2, D1, D2) and take the first entry of torch.linalg.eigvalsh(K)")

    if isinstance(answer, bool):
        return CheckResult("wrong", "give the number lambda_min(K), not True or False: its sign then tells stability")
    return compare(answer, lams[0], rtol=1e-6, close_rtol=0.02, hint=hint, close_note="check rounding")


# --- chapter checks: saddle-to-saddle dynamics ----------------------------------------------------

def drop_step(answer, *, spectrum, mode: int, init_scale: float, lr: float) -> CheckResult:
    """Check the predicted step at which mode ``mode`` (1 = largest ``s``) of a two-layer linear network
    is half learned, by the closed form ``ln(s/eps^2 - 1) / (2 s lr)`` (eq-saddle-half-time).

    ``close`` within 15%, where a drop measured in a simulation lands. The hint turns the learner's
    step into the mode strength that the closed form half-learns at that step.
    """
    from . import saddles

    s = sorted((float(v) for v in spectrum), reverse=True)
    if isinstance(mode, bool) or not isinstance(mode, int) or not 1 <= mode <= len(s):
        raise ValueError(f"mode: expected an integer in [1, {len(s)}], got {mode!r}")
    target = s[mode - 1]
    want = float(saddles.saxe_learning_time(target, init_scale=init_scale, lr=lr))

    def strength_at(k: float) -> float:
        # the half time ln(s/eps^2 - 1) / (2 s lr) falls with s for s > e eps^2: bisect in log s
        lo, hi = math.log(math.e * init_scale**2), math.log(1e12)
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            t = float(saddles.saxe_learning_time(math.exp(mid), init_scale=init_scale, lr=lr))
            lo, hi = (mid, hi) if t > k else (lo, mid)
        return math.exp(0.5 * (lo + hi))

    def hint(v):
        k = float(v)
        if not k > 0:
            return "a drop happens at a positive step count k = t / lr"
        sv = strength_at(k)
        for i, si in enumerate(s):
            if i != mode - 1 and abs(sv / si - 1) < 0.05:
                return (f"at step {k:.4g} the closed form half-learns mode {i + 1} (s = {si:g}); the drops come "
                        f"in order of decreasing s, and the question asks for mode {mode}")
        if sv > 1.5 * s[0]:
            return (f"at step {k:.4g} the closed form would half-learn a mode of strength s = {sv:.3g}, stronger than "
                    "any mode of this target: did you give a time t instead of a step count t / lr?")
        order = "weaker modes are learned later" if sv > target else "stronger modes are learned sooner"
        return (f"at step {k:.4g} the closed form half-learns a mode of strength s = {sv:.3g}, but mode {mode} has "
                f"s = {target:g}; {order}")

    return compare(answer, want, rtol=5e-3, close_rtol=0.15, hint=hint)


# --- chapter checks: consensus-based optimization -------------------------------------------------

def _consensus_cases() -> list[tuple[str, torch.Tensor, torch.Tensor, float]]:
    g = torch.Generator().manual_seed(8)
    X = 3 * torch.rand(6, 2, generator=g, dtype=torch.float64) - 1.5
    f = (X**2).sum(1) + 0.5 * torch.rand(6, generator=g, dtype=torch.float64)
    Y = 2 * torch.rand(40, 3, generator=g, dtype=torch.float64) - 1
    return [("6 particles in 2-D, alpha = 1", X, f, 1.0),
            ("6 particles, alpha = 3", X, f, 3.0),
            ("40 particles in 3-D, values near 100, alpha = 1e4", Y, 100 + (Y**2).sum(1), 1e4),
            ("40 particles, values near -500, alpha = 10", Y, (Y**2).sum(1) - 500, 10.0)]


def stable_consensus_point(fn: Callable) -> CheckResult:
    """Check a learner's ``fn(X, fX, alpha)`` for the consensus point ``c_alpha`` (eq-cbo-consensus).

    ``X`` has shape ``(N, d)``, ``fX`` shape ``(N,)``; the answer has shape ``(d,)``. Two cases use a
    large ``alpha`` or large values, where a naive ``exp(-alpha f)`` underflows or overflows.
    Messages name the case and describe the learner's output, never the expected point.
    """
    from . import cbo

    if fn is None or not callable(fn):
        return CheckResult("not attempted", "define the function first, then run this check")
    for name, X, fX, alpha in _consensus_cases():
        try:
            value = fn(X.clone(), fX.clone(), alpha)
        except NotImplementedError:
            return CheckResult("not attempted", "the function still raises NotImplementedError: fill it in")
        except Exception as exc:  # a learner's bug is feedback, not a traceback
            return CheckResult("wrong", f"{name}: calling it raised {type(exc).__name__}: {exc}")
        if value is None:
            return CheckResult("not attempted", "the function returned None: return the consensus point")
        got = _as_array(value.detach().cpu() if isinstance(value, torch.Tensor) else value)
        if got is not None and got.shape == (X.shape[1],) and not bool(torch.isfinite(got).all()):
            return CheckResult("wrong", f"{name}: your point contains NaN or infinity, so exp(-alpha f) overflowed "
                                        "or underflowed; shift the exponents by their largest value before exp "
                                        "(the weights do not change), or use torch.softmax / torch.logsumexp")

        def hint(v, X=X, fX=fX, name=name):
            v = torch.as_tensor(v, dtype=torch.float64)
            if v.shape != (X.shape[1],):
                return f"{name}: return one point of shape (d,) = ({X.shape[1]},), yours has shape {tuple(v.shape)}"
            if torch.allclose(v, X.mean(0), rtol=1e-9, atol=1e-12):
                return f"{name}: your point is the plain mean of the particles; weight each one by exp(-alpha f)"
            if torch.allclose(v, cbo.consensus_point(X, -fX, alpha=alpha), rtol=1e-6, atol=1e-12):
                return (f"{name}: your point favours the particles with high values; check the sign in "
                        "exp(-alpha f): low values should get the large weights")
            return (f"{name}: not right yet; are the weights exp(-alpha f) divided by their sum, and is the "
                    "point the weighted sum of the particle positions?")

        verdict = compare(got if got is not None else value, cbo.consensus_point(X, fX, alpha=alpha),
                          rtol=1e-8, close_rtol=0.05, hint=hint)
        if verdict.status == "close":
            return CheckResult("close", f"{name}: {verdict.message.split(':')[0]}; nearly there: are all the "
                                        "weights normalised by the same sum, and computed in float64?")
        if verdict.status != "correct":
            return verdict
    return CheckResult("correct", "all 4 cases agree, including the large-alpha ones a naive exp gets wrong")
