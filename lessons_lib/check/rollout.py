"""Self-checks of the chapter on Jacobian-regularised rollouts (jacobian-rollouts.ipynb)."""

from __future__ import annotations

from typing import Callable

import torch

from .. import rollout
from .core import CheckResult, _missing, check_function


def _cases() -> dict[str, tuple]:
    gen = torch.Generator().manual_seed(3)
    n = 6
    A = torch.randn(n, n, generator=gen, dtype=torch.float64) / n ** 0.5  # not symmetric: J xi differs from J^T xi
    u = torch.randn(3, n, generator=gen, dtype=torch.float64)
    probe = rollout.rademacher((3, n), generator=5)
    w = torch.linspace(0.2, 1.8, n, dtype=torch.float64)  # mean 1, not constant

    def linear(v):
        return v @ A.T

    def residual(v):
        return v + torch.tanh(v @ A.T)

    ones = torch.ones(n, dtype=torch.float64)
    return {"a linear map u -> A u (A not symmetric), three states, w = 1": (linear, u, ones, probe),
            "the same linear map with a weight w that varies along x": (linear, u, w, probe),
            "a residual map u -> u + tanh(A u) with the varying weight": (residual, u, w, probe)}


#: the inputs (step_fn, u, weight, probe) that jvp_penalty hands the learner's function, by description
PENALTY_CASES = _cases()


def _reference(step_fn, u, weight, probe):
    return rollout.jacobian_penalty(step_fn, u, weight=weight, probe=probe)


def _variants(step_fn, u, weight, probe) -> dict[str, torch.Tensor]:
    """Values of the usual mistakes, on the case's own inputs."""
    n = u.shape[-1]
    _, jv = torch.func.jvp(step_fn, (u,), (probe,))
    _, pullback = torch.func.vjp(step_fn, u)
    (vj,) = pullback(probe)
    weight = weight.expand_as(u)
    jac = torch.func.vmap(torch.func.jacrev(lambda v: step_fn(v[None])[0]))(u)  # (B, n, n), one state at a time
    return {"frobenius": (weight * (jac ** 2).sum(-1)).sum(-1).mean() / n,
            "minus_identity": (weight * (jv - probe) ** 2).sum(-1).mean() / n,
            "abs": (weight * jv.abs()).sum(-1).mean() / n,
            "no_n": (weight * jv ** 2).sum(-1).mean(),
            "vjp": (weight * vj ** 2).sum(-1).mean() / n,
            "unweighted": (jv ** 2).sum(-1).mean() / n,
            "weight_squared": (weight ** 2 * jv ** 2).sum(-1).mean() / n,
            "batch_sum": (weight * jv ** 2).sum() / n,
            "not_squared": (weight * jv).sum(-1).mean() / n,
            "output": (weight * step_fn(u) ** 2).sum(-1).mean() / n}


def _hint(case, value) -> str:
    try:
        got = torch.as_tensor(value, dtype=torch.float64).reshape(())
    except Exception:
        return "return one number (a 0-d tensor): the penalty averaged over the batch"
    variants = _variants(*case)

    def near(name):
        return bool(torch.isclose(got, variants[name].to(torch.float64), rtol=1e-6, atol=1e-12))

    if near("frobenius"):
        return ("you computed the exact weighted Frobenius norm, which is the penalty's mean over all probes; "
                "the penalty uses the one probe it is given, through one Jacobian-vector product")
    if near("minus_identity"):
        return "you penalised (J - I) xi: the penalty is on J itself, the Jacobian of the whole step"
    if near("abs"):
        return "you weighted |(J xi)_x|: the penalty squares each component"
    if near("no_n"):
        return "your value is n times too large: divide the weighted sum over x by the number of grid points n"
    if near("batch_sum"):
        return "your value grows with the batch size: take the mean over the batch, not the sum"
    if near("vjp"):
        return ("you applied the transpose of the Jacobian (a vector-Jacobian product, as in backpropagation); "
                "the penalty needs J xi, a Jacobian-vector product (torch.func.jvp)")
    if near("unweighted") and not near("weight_squared"):
        return "your value ignores the weight: multiply each squared component (J xi)_x by w(x) before summing"
    if near("weight_squared"):
        return "you used w(x) squared: the weight multiplies (J xi)_x^2 once"
    if near("not_squared"):
        return "square each component of J xi before weighting and summing"
    if near("output"):
        return ("you penalised the map's output, not its Jacobian: push the probe xi through the Jacobian with "
                "torch.func.jvp(step_fn, (u,), (probe,))")
    if float(got) < 0:
        return "your penalty is negative, but it is a weighted sum of squares with w >= 0"
    return "not right yet: compare each step of your computation with equation eq-rollout-penalty"


def jvp_penalty(fn: Callable) -> CheckResult:
    """Check a learner's ``fn(step_fn, u, weight, probe)`` for the weighted Jacobian penalty (eq-rollout-penalty).

    ``step_fn`` maps states ``(B, n)`` to ``(B, n)``; ``u`` has shape ``(B, n)``, ``weight`` shape ``(n,)`` and
    ``probe`` (Rademacher signs) shape ``(B, n)``; the answer is one number. The cases use a non-symmetric linear
    map (so a vector-Jacobian product gives a different value), a weight that varies in space and a nonlinear
    residual map. Messages describe the learner's value, never the expected one.
    """
    if not _missing(fn) and callable(fn):
        learner = fn

        def fn(step_fn, u, weight, probe):
            out = learner(step_fn, u, weight, probe)
            return out.detach() if isinstance(out, torch.Tensor) else out

    return check_function(
        fn, _reference, PENALTY_CASES, rtol=1e-8, close_rtol=0.02, hint=_hint,
        close_note="nearly there: is everything computed in float64?",
        nonfinite="your penalty is NaN or infinite: check the Jacobian-vector product and the division by n",
        praise="for a non-symmetric map, a varying weight and a nonlinear step")
