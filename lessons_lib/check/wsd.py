"""Self-checks of the chapter on river valleys and warmup-stable-decay schedules (river-valleys.ipynb)."""

from __future__ import annotations

import math

from .. import schedules, wsd
from ..backend import as_tensor, check_count, check_positive, check_real
from .core import CheckResult, _is_number, not_attempted


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
