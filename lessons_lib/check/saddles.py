"""Self-checks of the chapter on saddle-to-saddle dynamics (saddle-to-saddle.ipynb)."""

from __future__ import annotations

import math
from typing import Callable

import torch

from .. import saddles
from ..backend import as_tensor
from .core import CheckResult, check_function, compare


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

    def half_step(z0, rate):
        return math.log(target / z0 - 1) / (rate * target * lr)

    def hint(v):
        k = float(v)
        if not k > 0:
            return "a drop happens at a positive step count k = t / lr"
        if math.isclose(k, half_step(init_scale**2, 1), rel_tol=5e-3):
            return (f"step {k:.4g} fits the closed form without the factor 2 in its denominator: the strength "
                    "z = a^2 is a product of two growing weights and grows like e^(2 s t), twice the amplitude's rate")
        if init_scale < 1 and math.isclose(k, half_step(init_scale, 2), rel_tol=5e-3):
            return (f"step {k:.4g} fits the closed form with z0 = eps; the start strength is the product of two "
                    "weights of size eps, z0 = eps^2")
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

    return compare(answer, want, rtol=5e-3, close_rtol=0.15, hint=hint,
                   close_note="near the closed form but not on it: a drop measured from a simulation or read off "
                              "a plot lands here; evaluate the closed form itself")


def mode_strengths(fn: Callable) -> CheckResult:
    """Check a learner's ``fn(s, z0, lr, steps)``: the mode strengths of GD on the aligned linear network.

    ``s`` is a 1-D tensor of singular values (decreasing), ``z0`` the common starting strength, and
    the learner returns the ``(steps + 1, len(s))`` strengths ``z_{i,k}`` without forming the matrices.
    They are compared with the singular values of ``W2 W1`` that :func:`lessons_lib.saddles.train_linear_net`
    records from the aligned, balanced start (``init="aligned"``) on the target ``diag(s)``, where the
    mode equation (eq-saddle-mode-ode) holds exactly for the flow and its GD version is exact for the
    weights. The hint recognises an Euler step of the flow for ``z`` (GD moves the amplitude
    ``a = sqrt(z)``, not ``z``) and the amplitude's rate used for ``z``.
    """
    cases = {"two modes s = (3, 1), z0 = 1e-4, lr = 0.1, 60 steps": (torch.tensor([3.0, 1.0], dtype=torch.float64),
                                                                     1e-4, 0.1, 60),
             "three modes s = (4, 2, 1), z0 = 1e-6, lr = 0.05, 150 steps": (
                 torch.tensor([4.0, 2.0, 1.0], dtype=torch.float64), 1e-6, 0.05, 150)}

    def reference(s, z0, lr, steps):
        run = saddles.train_linear_net(torch.diag(s), width=len(s), init_scale=math.sqrt(z0), lr=lr, steps=steps,
                                       init="aligned")
        return run.singular_values

    def hint(case, value):
        s, z0, lr, steps = case
        z = torch.as_tensor(value, dtype=torch.float64)
        if z.shape != (steps + 1, len(s)):
            return (f"return an array of shape (steps + 1, number of modes) = ({steps + 1}, {len(s)}): "
                    f"one row per step, z_0 included; yours has shape {tuple(z.shape)}")
        if not torch.allclose(z[0], torch.full_like(z[0], z0), rtol=1e-9):
            return "the first row should be the starting strength z0 of every mode"
        ratio = float(z[1, 0] / z[0, 0])
        growth = float(s[0]) - z0
        if math.isclose(ratio, 1 + 2 * lr * growth, rel_tol=1e-6):
            return ("your first step is an Euler step of the flow for z; GD moves the amplitude a = sqrt(z) "
                    "of each weight matrix, and z = a^2 follows: square after the step")
        if math.isclose(ratio, 1 + lr * growth, rel_tol=1e-6):
            return "you grew z at the amplitude's rate; z = a^2, so square the amplitude's growth factor"
        a = math.sqrt(z0)
        a1 = a + lr * (float(s[0]) - a * a) * a  # W1 first, then W2 from the new W1: a sequential update
        if math.isclose(ratio, a1 * (a + lr * (float(s[0]) - a1 * a) * a1) / z0, rel_tol=1e-6):
            return ("your second matrix steps from the first one's new value; in GD both matrices step from "
                    "the same old weights, so both amplitudes change by the same amount")
        return (f"your first step multiplies mode 1's strength by {ratio:.4g}; derive what one GD step on W1 and W2 "
                "does to the amplitude a of an aligned mode, then square it")

    return check_function(fn, reference, cases, hint=hint, rtol=1e-9, close_rtol=0.02,
                          close_note="nearly right: compute in float64 (float32 rounding alone lands here) and "
                                     "check that row k is the strength after k steps")
