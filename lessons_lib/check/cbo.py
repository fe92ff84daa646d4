"""Self-checks of the chapter on consensus-based optimization (consensus-based-optimization.ipynb)."""

from __future__ import annotations

import math
from typing import Callable

import torch

from .. import cbo
from .core import CheckResult, check_function


def _cases() -> dict[str, tuple[torch.Tensor, torch.Tensor, float]]:
    g = torch.Generator().manual_seed(8)
    X = 3 * torch.rand(6, 2, generator=g, dtype=torch.float64) - 1.5
    f = (X**2).sum(1) + 0.5 * torch.rand(6, generator=g, dtype=torch.float64)
    Y = 2 * torch.rand(40, 3, generator=g, dtype=torch.float64) - 1
    return {"6 particles in the square [-1.5, 1.5]^2, alpha = 1": (X, f, 1.0),
            "the same 6 particles, alpha = 3": (X, f, 3.0),
            "40 particles in the cube [-1, 1]^3, values in [100, 103], alpha = 1e4": (Y, 100 + (Y**2).sum(1), 1e4),
            "the same 40 particles, values in [-500, -497], alpha = 10": (Y, (Y**2).sum(1) - 500, 10.0)}


# the inputs (X, fX, alpha) that stable_consensus_point hands the learner's function, by description
CASES = _cases()


def _reference(X, fX, alpha):
    return cbo.consensus_point(X, fX, alpha=alpha)


def _hint(case, v) -> str:
    X, fX, alpha = case
    v = torch.as_tensor(v, dtype=torch.float64)
    if v.shape != (X.shape[1],):
        return f"return one point of shape (d,) = ({X.shape[1]},), yours has shape {tuple(v.shape)}"
    if torch.allclose(v, X.mean(0), rtol=1e-9, atol=1e-12):
        return "your point is the plain mean of the particles; weight each one by exp(-alpha f)"
    if torch.allclose(v, cbo.consensus_point(X, -fX, alpha=alpha), rtol=1e-6, atol=1e-12):
        return ("your point favours the particles with high values; check the sign in exp(-alpha f): "
                "low values should get the large weights")
    return ("not right yet; are the weights exp(-alpha f) divided by their sum, and is the point the "
            "weighted sum of the particle positions?")


def stable_consensus_point(fn: Callable) -> CheckResult:
    """Check a learner's ``fn(X, fX, alpha)`` for the consensus point ``c_alpha`` (eq-cbo-consensus).

    ``X`` has shape ``(N, d)``, ``fX`` shape ``(N,)``; the answer has shape ``(d,)``. Two cases use a
    large ``alpha`` or large values, where a naive ``exp(-alpha f)`` underflows or overflows.
    Messages name the case and describe the learner's output, never the expected point.
    """
    return check_function(
        fn, _reference, CASES, rtol=1e-8, close_rtol=0.05, hint=_hint,
        close_note="nearly there: are all the weights normalised by the same sum, and computed in float64?",
        nonfinite=("your point contains NaN or infinity, so exp(-alpha f) overflowed or underflowed; shift the "
                   "exponents by their largest value before exp (the weights do not change), or use "
                   "torch.softmax / torch.logsumexp"),
        praise="including the large-alpha ones a naive exp gets wrong")


# --- one CBO step with injected noise ------------------------------------------------------------------

def _step_cases() -> dict[str, dict]:
    g = torch.Generator().manual_seed(16)

    def case(n, d, noise_type, sigma, dt, lam, alpha):
        X = 4 * torch.rand(n, d, generator=g, dtype=torch.float64) - 2
        return dict(X=X, fX=(X**2).sum(1) + torch.rand(n, generator=g, dtype=torch.float64), alpha=alpha, lam=lam,
                    sigma=sigma, dt=dt, xi=torch.randn(n, d, generator=g, dtype=torch.float64),
                    noise_type=noise_type)

    # alpha = 0.5 in d = 3 keeps the consensus point well away from the best particle, so that using the best
    # particle instead of c_alpha is a clear mistake with its own hint rather than a "close" answer
    return {"5 particles in [-2, 2]^3, anisotropic, sigma = 1, dt = 0.1, lam = 1, alpha = 0.5":
            case(5, 3, "anisotropic", 1.0, 0.1, 1.0, 0.5),
            "5 particles in [-2, 2]^3, isotropic, sigma = 1, dt = 0.1, lam = 1, alpha = 0.5":
            case(5, 3, "isotropic", 1.0, 0.1, 1.0, 0.5),
            "8 particles in [-2, 2]^10, isotropic, sigma = 3, dt = 0.04, lam = 0.5, alpha = 5":
            case(8, 10, "isotropic", 3.0, 0.04, 0.5, 5.0),
            "8 particles in [-2, 2]^10, anisotropic, sigma = 3, dt = 0.04, lam = 0.5, alpha = 5":
            case(8, 10, "anisotropic", 3.0, 0.04, 0.5, 5.0)}


# the keyword arguments that check.one_cbo_step hands the learner's function, by description
STEP_CASES = _step_cases()


# the isotropic length |x - c| computed in the ways a learner may get wrong: (name, function of the offsets V)
_LENGTHS = {
    "right": lambda V: torch.linalg.vector_norm(V, dim=-1, keepdim=True),
    "columns": lambda V: torch.linalg.vector_norm(V, dim=0, keepdim=True),  # one length per coordinate
    "squared": lambda V: V.pow(2).sum(-1, keepdim=True),  # |x - c|^2 instead of |x - c|
    "frobenius": lambda V: torch.linalg.vector_norm(V),  # one length for the whole swarm
}


def _step(X, fX, alpha, lam, sigma, dt, xi, noise_type, *, kick=None, drift_sign=1.0, swap=False,
          after_drift=False, absolute=False, best=False, length="right"):
    """One step written out; the keywords make the mistakes the hints diagnose."""
    c = X[fX.argmin()] if best else cbo.consensus_point(X, fX, alpha=alpha)
    v = X - c
    moved = X - drift_sign * lam * dt * v
    base = moved - c if after_drift else v
    kind = ("isotropic" if noise_type == "anisotropic" else "anisotropic") if swap else noise_type
    # anisotropic: the signed offset times xi, equal in law to diag(|v|) xi and what cbo.cbo_step computes
    size = (base.abs() if absolute else base) if kind == "anisotropic" else _LENGTHS[length](base)
    scale = sigma * math.sqrt(dt) if kick is None else kick(sigma, dt)
    return moved + scale * size * xi


def _reference_step(X, fX, alpha, lam, sigma, dt, xi, noise_type):
    return cbo.cbo_step(X, lambda _: fX, alpha=alpha, lam=lam, sigma=sigma, dt=dt, noise_type=noise_type, noise=xi)


# (description of the mistake, the step it gives); the first that matches the learner's value is the hint
_MISTAKES = (
    ("your noise uses the other model: anisotropic noise scales each coordinate's kick by that coordinate's "
     "own offset x_j - c_j, isotropic noise scales every coordinate's kick by the one length |x - c|",
     dict(swap=True)),
    ("your anisotropic kick uses |x_j - c_j| xi_j; that has the same distribution, but with a given xi the "
     "convention here (and in CBXpy) is the signed offset, (x_j - c_j) xi_j", dict(absolute=True)),
    ("your kick is scaled by dt; a Brownian increment over a time dt has size sqrt(dt), so the noise term is "
     "sigma sqrt(dt) D(x - c) xi", dict(kick=lambda s, dt: s * dt)),
    ("your kick has an extra factor sqrt(2): that is Pinnau et al.'s convention; this chapter writes "
     "sigma sqrt(dt) with no sqrt(2)", dict(kick=lambda s, dt: math.sqrt(2) * s * math.sqrt(dt))),
    ("your kick is scaled by sigma but not by sqrt(dt)", dict(kick=lambda s, dt: s)),
    ("your particles move away from the consensus point: the drift is -lam dt (x - c)", dict(drift_sign=-1.0)),
    ("your kick uses the offset after the drift (the authors' MATLAB order); eq-cbo-step takes both the drift "
     "and the kick from the offset x - c before the step", dict(after_drift=True)),
    ("your step uses the best particle where eq-cbo-step uses the consensus point c_alpha, the weighted mean with "
     "weights exp(-alpha f); the two agree only as alpha grows large", dict(best=True)),
    ("isotropic: one length per particle, kept as an (N, 1) column; your lengths are taken down the columns "
     "(over the particles, dim=0) instead of along each row (over the coordinates, dim=-1)", dict(length="columns")),
    ("isotropic: one length per particle, kept as an (N, 1) column; yours is the squared length |x - c|^2, "
     "take its square root", dict(length="squared")),
    ("isotropic: one length per particle, kept as an (N, 1) column; yours is a single length for the whole "
     "swarm (the norm of the full (N, d) array)", dict(length="frobenius")),
)

# the RuntimeError torch raises when an (N,) vector of lengths meets the (N, d) noise
_KEEPDIM = ("isotropic: one length per particle, kept as an (N, 1) column (vector_norm(..., dim=-1, keepdim=True)) "
            "so that it multiplies every coordinate of that particle's row of xi")


def _explain_errors(fn: Callable) -> Callable:
    """The learner's function, with a shape clash of the isotropic lengths explained (not only torch's message)."""
    def wrapped(**case):
        try:
            return fn(**case)
        except RuntimeError as exc:
            if "must match the size" in str(exc) and case.get("noise_type") == "isotropic":
                raise RuntimeError(f"{exc}; hint: {_KEEPDIM}") from None
            raise
    return wrapped


def _step_hint(case, v) -> str:
    X = case["X"]
    v = torch.as_tensor(v, dtype=torch.float64)
    if v.shape != X.shape:
        return f"return the new particles, of the same shape (N, d) = {tuple(X.shape)} as X; yours has {tuple(v.shape)}"
    if torch.allclose(v, X - case["lam"] * case["dt"] * (X - cbo.consensus_point(X, case["fX"], alpha=case["alpha"])),
                      rtol=1e-9, atol=1e-12):
        return "your step has the drift but no noise: add sigma sqrt(dt) D(x - c) xi, with xi the given noise"
    moved_mean = X - case["lam"] * case["dt"] * (X - X.mean(0))
    if torch.allclose(v - moved_mean, torch.zeros_like(v), atol=1e-12) or torch.allclose(
            v, _step(**{**case, "alpha": 0.0}), rtol=1e-9, atol=1e-12):
        return "your particles move towards the plain mean; the drift and the kick use the consensus point c_alpha"
    for words, kw in _MISTAKES:
        if torch.allclose(v, _step(**case, **kw), rtol=1e-9, atol=1e-12):
            return words
    return ("not right yet; compute c = c_alpha(X) once, then for every particle x - lam dt (x - c) plus the kick "
            "sigma sqrt(dt) D(x - c) xi with this case's noise model")


def one_cbo_step(fn: Callable) -> CheckResult:
    """Check a learner's ``fn(X, fX, alpha, lam, sigma, dt, xi, noise_type)`` for one CBO step (eq-cbo-step).

    ``X`` has shape ``(N, d)``, ``fX`` shape ``(N,)``, ``xi`` the injected standard normal noise of shape
    ``(N, d)`` and ``noise_type`` is ``"anisotropic"`` or ``"isotropic"`` (eq-cbo-noise); the answer is
    the new particles, shape ``(N, d)``. The hints name the learner's mistake (the other noise model,
    ``dt`` for ``sqrt(dt)``, a ``sqrt(2)``, a reversed drift, the kick taken after the drift, no noise,
    the plain mean, the best particle for ``c_alpha``, an isotropic length over the wrong axis, squared,
    for the whole swarm or without ``keepdim``) without showing the expected particles.
    """
    if callable(fn):
        fn = _explain_errors(fn)
    return check_function(fn, _reference_step, STEP_CASES, rtol=1e-8, close_rtol=0.05, hint=_step_hint,
                          close_note="nearly there, but not exact: compare the drift, the consensus point and the "
                                     "kick with eq-cbo-step one term at a time",
                          nonfinite="your particles contain NaN or infinity; the step only adds and multiplies "
                                    "finite numbers, so check the consensus point first",
                          praise="for both noise models")
