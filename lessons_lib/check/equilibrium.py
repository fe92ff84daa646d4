"""Self-checks of the chapter on equilibrium propagation without weight symmetry (equilibrium-propagation.ipynb)."""

from __future__ import annotations

import cmath
import math
from typing import Callable

import torch

from .. import equilibrium
from .core import CheckResult, _is_bool, _missing, check_function


def _as(z, *values):
    """The values as one tensor, complex128 for a complex ``z`` and float64 for a real one."""
    return torch.stack([torch.as_tensor(v, dtype=torch.complex128 if isinstance(z, complex) else torch.float64)
                        for v in values])


def _exp(z):
    return _as(z, cmath.exp(z) if isinstance(z, complex) else math.exp(z))


def _three(z):
    """exp(z), 1/(1 - z) and sin(2z) + z^3: three holomorphic maps near 0 (derivatives 1, 1 and 2)."""
    if isinstance(z, complex):
        return _as(z, cmath.exp(z), 1 / (1 - z), cmath.sin(2 * z) + z ** 3)
    return _as(z, math.exp(z), 1 / (1 - z), math.sin(2 * z) + z ** 3)


# the inputs (f, beta, n_points) that cauchy_mean hands the learner's function, by description
CASES = {
    "f = exp, beta = 0.3, N = 1 (one-sided)": (_exp, 0.3, 1),
    "f = exp, beta = 0.3, N = 2 (symmetric)": (_exp, 0.3, 2),
    "f = exp, beta = 0.5, N = 3 (complex nudges)": (_exp, 0.5, 3),
    "f = (exp z, 1/(1 - z), sin 2z + z^3), beta = 0.4, N = 4": (_three, 0.4, 4),
    "f = (exp z, 1/(1 - z), sin 2z + z^3), beta = 0.6, N = 5": (_three, 0.6, 5),
}


def _real(value):
    """A learner's complex answer with a negligible imaginary part as its real part; anything else unchanged."""
    if _missing(value) or isinstance(value, (str, bytes)) or _is_bool(value):
        return value
    try:
        v = value.detach().cpu() if isinstance(value, torch.Tensor) else torch.as_tensor(value)
    except Exception:
        return value
    if v.is_complex():
        if bool((v.imag.abs() <= 1e-9 * max(1.0, float(v.abs().max()))).all()):
            return v.real.to(torch.float64)
        return v  # a real imaginary part is a mistake: _hint explains it
    return value


def _reference(f, beta, n_points):
    return equilibrium.cauchy_derivative(f, beta, n_points=n_points)


def _points(beta, n):
    return [beta * cmath.exp(2j * math.pi * k / n) for k in range(n)]


def _variants(f, beta, n):
    """What the usual mistakes give on this case: name -> value."""
    zs = _points(beta, n)
    f0 = f(0.0).to(torch.complex128)
    vals = [f(z).to(torch.complex128) for z in zs]
    mean_over_z = sum(v / z for v, z in zip(vals, zs)) / n
    out = {"no f(0)": (vals[0] / beta).real, "difference not divided": (vals[0] - f0).real} if n == 1 else {}
    out |= {
        "no division": (sum(vals) / n).real,
        "divided by beta": (sum(vals) / (n * beta)).real,
        "summed": (n * mean_over_z).real,
        "times z": (sum(v * z for v, z in zip(vals, zs)) / n).real,
    }
    if n > 1:
        out["half circle"] = (sum(f(beta * cmath.exp(1j * math.pi * k / n)).to(torch.complex128)
                                  / (beta * cmath.exp(1j * math.pi * k / n)) for k in range(n)) / n).real
        out["minus f(0) twice"] = (mean_over_z - f0 / beta).real
    return out


def _hint(case, value) -> str:
    f, beta, n = case
    v = torch.as_tensor(value)
    want = _reference(f, beta, n)
    if v.is_complex():
        return ("your estimate is complex with a sizeable imaginary part: for a map that is real on the real axis "
                "the exact average over the full circle is real, so check that the N points go once round the "
                "circle and return the real part")
    if v.numel() != want.numel():
        return f"return one number per output of f: f here returns {want.numel()} value(s)"
    v = v.to(torch.float64).reshape(want.shape)
    for name, wrong in _variants(f, beta, n).items():
        if torch.allclose(v, wrong.to(torch.float64).reshape(want.shape), rtol=1e-6, atol=1e-12):
            return {
                "no division": "you averaged f over the circle: that estimates f(0), not f'(0); divide each value "
                               "by its own nudge beta*w^k first",
                "divided by beta": "you divided every value by the radius beta; divide each by its own complex "
                                   "nudge beta*w^k (the points differ in phase)",
                "summed": "you summed over the N points: Cauchy's integral is an average, so divide the sum by N",
                "times z": "you multiplied by the nudge; the derivative needs f(z_k) / z_k",
                "difference not divided": "you took the difference of f between the nudge and 0 but did not divide it "
                                          "by the nudge: a derivative is a difference over a step",
                "no f(0)": "with one point the circle is a single real nudge: subtract f(0) before dividing by beta "
                           "(for N >= 2 the f(0) terms cancel on their own)",
                "half circle": "your points span half the circle; use w = exp(2 pi i / N), so the N points go once "
                               "round it",
                "minus f(0) twice": "for N >= 2 the f(0)/z_k terms already average to zero: do not subtract f(0) "
                                    "again after averaging",
            }[name]
    return ("not right yet: evaluate f at the N nudges z_k = beta*exp(2 pi i k / N), average f(z_k) / z_k "
            "(for N = 1, (f(beta) - f(0)) / beta) and return the real part")


def cauchy_mean(fn: Callable) -> CheckResult:
    """Check a learner's ``fn(f, beta, n_points)``: the N-point Cauchy estimate of ``f'(0)`` (eq-ep-cauchy).

    ``f`` maps a number (a float on the real axis, a complex number elsewhere) to a tensor; the answer
    is a real tensor of ``f``'s shape. Cases: the one-sided and symmetric differences and three to
    five complex nudges on scalar and vector maps. Messages name the case, never the expected value.
    """
    if not _missing(fn) and callable(fn):
        learner = fn

        def fn(f, beta, n_points):
            return _real(learner(f, beta, n_points))

    return check_function(
        fn, _reference, CASES, rtol=1e-9, close_rtol=0.05, hint=_hint,
        close_note="nearly there: are the nudges and values kept in complex128, not complex64?",
        nonfinite="your estimate contains NaN or infinity: did you divide by a nudge of zero?",
        praise="from the one-sided difference up to five complex nudges")
