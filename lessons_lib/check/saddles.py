"""Self-checks of the chapter on saddle-to-saddle dynamics (saddle-to-saddle.ipynb)."""

from __future__ import annotations

import math

from .. import saddles
from ..backend import as_tensor
from .core import CheckResult, compare


def drop_step(answer, *, spectrum, mode: int, init_scale: float, lr: float) -> CheckResult:
    """Check the predicted step at which mode ``mode`` (1 = largest ``s``) of a two-layer linear network
    is half learned, by the closed form ``ln(s/eps^2 - 1) / (2 s lr)`` (eq-saddle-half-time).

    ``close`` within 15%, where a drop measured in a simulation lands. The hint turns the learner's
    step into the mode strength that the closed form half-learns at that step.
    """
    spectrum = as_tensor(spectrum, name="spectrum", device="cpu")
    if spectrum.ndim != 1:
        raise ValueError(f"spectrum: expected singular values of shape (m,), got {tuple(spectrum.shape)}")
    s = sorted(spectrum.tolist(), reverse=True)
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
