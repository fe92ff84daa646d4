"""Self-checks of the chapter on river valleys and warmup-stable-decay schedules (river-valleys.ipynb)."""

from __future__ import annotations

import math

import torch

from .. import schedules, wsd
from ..backend import as_tensor, check_count, check_positive, check_real
from .core import CheckResult, _is_number, _missing, check_function, not_attempted


def best_decay_fraction(answer, *, fractions, valley, x0: float, peak: float, steps: int, sigma: float,
                        close_rtol: float = 0.05) -> CheckResult:
    """Check the decay fraction (one of ``fractions``) with the lowest expected final loss on ``valley``.

    A pick whose expected final loss is within ``close_rtol`` of the lowest one is ``close`` (the
    message gives that relative excess); the hint says which way the loss still falls from the pick.
    """
    fractions = as_tensor(fractions, name="fractions", device="cpu")
    if fractions.ndim != 1 or fractions.numel() == 0:
        raise ValueError(f"fractions: expected a non-empty sequence of decay fractions, got {fractions.tolist()}")
    fractions = fractions.tolist()
    wsd.check_valley(valley)
    x0, peak = check_real(x0, name="x0"), check_positive(peak, name="peak")
    steps, sigma = check_count(steps, name="steps"), check_positive(sigma, name="sigma", allow_zero=True)
    close_rtol = check_positive(close_rtol, name="close_rtol")

    def parts(f):
        sched = schedules.wsd_schedule(peak, total=steps, warmup=0, decay_frac=f)
        return wsd.expected_valley_loss(valley, x0, schedule=sched, steps=steps, sigma=sigma)

    if (missing := not_attempted(answer)) is not None:
        return missing
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


def _split_cases() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(27)
    five = torch.zeros(8, dtype=torch.float64)
    five[[0, 2, 3, 5, 6]] = 0.2
    skew = torch.tensor([0.7, 0.0, 0.2, 0.0, 0.1, 0.0], dtype=torch.float64)
    one = torch.zeros(6, dtype=torch.float64)
    one[4] = 1.0
    big = torch.where(five > 0, 800.0, 790.0) + torch.rand(8, generator=g, dtype=torch.float64)
    return {"5 equally likely successors among 8 tokens, logits in [-2, 2]":
                (five, 4 * torch.rand(8, generator=g, dtype=torch.float64) - 2),
            "successor probabilities 0.7, 0.2, 0.1 on 3 of 6 tokens, logits in [-3, 3]":
                (skew, 6 * torch.rand(6, generator=g, dtype=torch.float64) - 3),
            "one deterministic successor among 6 tokens, logits in [-2, 2]":
                (one, 4 * torch.rand(6, generator=g, dtype=torch.float64) - 2),
            "the first case's 5 successors, logits in [800, 801] on them and [790, 791] off them": (five, big)}


# the inputs (p, logits) that leakage_split hands the learner's function, by description
SPLIT_CASES = _split_cases()


def _split_reference(p, logits):
    return torch.stack(wsd.support_split(p, logits))


def _kl(p, logits) -> float:
    logq = torch.log_softmax(logits, dim=-1)
    return float(torch.where(p > 0, p * (torch.log(torch.where(p > 0, p, 1.0)) - logq), 0.0).sum())


def _split_hint(case, value) -> str:
    p, logits = case
    v = torch.as_tensor(value, dtype=torch.float64).flatten()
    if v.numel() != 2:
        return f"return the two numbers (leak, within); your function returned {v.numel()} of them"
    leak, within = float(v[0]), float(v[1])
    kl = _kl(p, logits)
    if leak < -1e-12:
        return ("your leakage is negative; the mass m on the support is at most 1, so -log m >= 0: "
                "check the sign")
    if within < -1e-12:
        return "your within-support part is negative, but a KL divergence is >= 0: check the sign and the ratio"
    if math.isclose(leak, kl, rel_tol=1e-6) and abs(within) < 1e-9:
        return ("your leakage is the whole excess KL(p || q) and your within-support part is 0; the leakage is "
                "only -log m, the log of the mass q puts on the successors with p > 0")
    if math.isclose(within, kl, rel_tol=1e-6):
        return ("your within-support part is the whole KL(p || q): renormalise q on the support "
                "(divide by the mass m there) before comparing it with p")
    on = p > 0
    logr = torch.log_softmax(logits[on].to(torch.float64), dim=-1)  # the model renormalised on the support
    reverse = float((logr.exp() * (logr - torch.log(p[on]))).sum())
    if math.isclose(within, reverse, rel_tol=1e-6, abs_tol=1e-12) and not math.isclose(within, kl - leak,
                                                                                          rel_tol=1e-6):
        return ("your within-support part is KL(renormalised q || p), the divergence the other way round; "
                "the excess loss is KL(p || q), so weight the log-ratio by p, not by q")
    if not math.isclose(leak + within, kl, rel_tol=1e-6):
        return "your two parts do not add up to KL(p || softmax(logits)); they must, for every p and logits"
    return "the parts add up to the KL, but they are split differently: leak = -log m, the rest is within"


def leakage_split(fn) -> CheckResult:
    """Check a learner's ``fn(p, logits)`` for the leakage and within-support parts of one row (eq-wsd-leakage).

    ``p`` and ``logits`` have shape ``(V,)``; the answer is ``(leak, within)`` (two numbers, or a
    tensor of shape ``(2,)``), compared part by part (each relative to its own size) with
    :func:`lessons_lib.wsd.support_split`. The last case
    has logits near 800, where a plain ``exp`` overflows. Messages name the case and describe the
    learner's output, never the expected parts.
    """
    if _missing(fn) or not callable(fn):
        return check_function(fn, _split_reference, SPLIT_CASES)  # "not attempted" or "expected a function"
    raw = {}

    def per_part(p, logits):
        # each part's error relative to its own size (with a floor for a part that is 0), so a wrong
        # within-support part is not hidden behind a larger leakage
        value = raw["value"] = fn(p, logits)
        if value is None or value is ...:
            return value
        try:
            got = torch.as_tensor([float(v) for v in value], dtype=torch.float64) if isinstance(value, (tuple, list)) \
                else torch.as_tensor(value, dtype=torch.float64).detach().cpu().flatten()
        except (TypeError, ValueError):
            return value
        want = _split_reference(p, logits)
        if got.shape != want.shape:
            return value
        scale = torch.clamp(want.abs(), min=1e-6 * float(want.abs().max()) + 1e-300)
        return 1.0 + (got - want) / scale

    def hint(case, _value):
        return _split_hint(case, raw["value"])

    return check_function(
        per_part, lambda p, logits: torch.ones(2, dtype=torch.float64), SPLIT_CASES, rtol=1e-8, close_rtol=0.05,
        hint=hint,
        close_note="nearly there: is everything computed in float64, and is m the sum of softmax over the support?",
        nonfinite=("your parts contain NaN or infinity, so exp overflowed or log met a 0; compute log m with "
                   "torch.logsumexp over the support's log-probabilities (torch.log_softmax)"),
        praise="including the one with large logits")
