"""Self-checks of the chapter on the ghosts of softmax (ghosts-of-softmax.ipynb)."""

from __future__ import annotations

import math
from typing import Callable

import torch

from .. import ghosts
from .core import CheckResult, _missing, check_function


def _linear_logits(X: torch.Tensor, K: int) -> Callable[[torch.Tensor], torch.Tensor]:
    d = X.shape[1]
    return lambda theta: X @ theta.reshape(d, K)


def _shifted_logits(X: torch.Tensor, K: int, shift: torch.Tensor,
                    w: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """A linear model plus ``shift_i (w . theta)`` added to every logit of sample ``i``: the samples' logits
    move up or down as a whole, which changes no sample's own spread ``max_k a_k - min_k a_k``."""
    d = X.shape[1]
    return lambda theta: X @ theta.reshape(d, K) + shift[:, None] * (theta @ w)


def _cases() -> dict[str, tuple]:
    g = torch.Generator().manual_seed(7)
    X = torch.randn(6, 3, generator=g, dtype=torch.float64)
    X[5] *= 6.0  # one sample whose logits move much faster than the others': a max, not a mean, sees it
    theta = torch.randn(12, generator=g, dtype=torch.float64)
    p = torch.randn(12, generator=g, dtype=torch.float64)
    logits = _linear_logits(X, 4)
    # the largest and the smallest entry of a in different samples: a spread over the whole batch is wrong
    shifted = _shifted_logits(X[:5], 4, torch.tensor([1.0, -1.0, 0.0, 0.0, 0.0], dtype=torch.float64), p)
    return {"a long proposed step (the cap binds)": (logits, theta, p, 1.0, 1.0),
            "a short proposed step (the cap does not bind)": (logits, theta, 0.05 * p, 1e-3, 1.0),
            "a long step with a safety factor kappa = 1/2": (logits, theta, 3.0 * p, 0.5, 0.5),
            "samples whose logits also shift as a whole (the cap binds)": (shifted, theta, p, 1.0, 1.0)}


#: the inputs ``(logits_fn, params, p, lr, kappa)`` handed to the learner's function, by description
CAPPED_CASES = _cases()


def _reference(logits_fn, params, p, lr, kappa):
    """The step taken, ``new params - params`` (compared instead of the new parameters, so that a relative
    tolerance measures the step and not the parameters)."""
    lr_eff, _ = ghosts.capped_lr(logits_fn, params, p, lr=lr, kappa=kappa)
    return -lr_eff * p


def _variant(logits_fn, params, p, lr, kappa, *, spread="max", normalise=True, always=False):
    _, a = torch.func.jvp(logits_fn, (params,), ((p / p.norm() if normalise else p),))
    widths = a.amax(-1) - a.amin(-1)
    if spread == "batch":  # one spread over every entry of the batch at once
        rho = math.pi / float(a.max() - a.min())
    else:
        rho = math.pi / float(widths.max() if spread == "max" else widths.mean())
    lr_eff = kappa * rho / float(p.norm()) if always else min(lr, kappa * rho / float(p.norm()))
    return -lr_eff * p


def _hint(case, value) -> str:
    logits_fn, params, p, lr, kappa = case
    v = torch.as_tensor(value, dtype=torch.float64)
    if v.shape != params.shape:
        return f"return the new parameters, a vector of the shape of params, {tuple(params.shape)}"

    def near(w):
        return bool(torch.allclose(v, w, rtol=1e-6, atol=1e-9))

    want = _reference(*case)
    if near(want - params):
        return ("you returned the step itself, -lr_eff * p; return the new parameters, params - lr_eff * p")
    if near(-want):
        return "your step goes along +p: the update is params - lr_eff * p"
    if near(-lr * p) and not near(want):
        return ("your step is the full proposed step lr * p: it is longer than kappa * rho_a here, so it must be "
                "shortened to that length")
    if near(_variant(*case, spread="mean")):
        return ("your radius uses the mean spread over the samples; the batch's loss is singular as soon as one "
                "sample's is, so take the largest spread (a max)")
    if near(_variant(*case, spread="batch")):
        return ("your spread is taken over the whole batch at once (largest entry of a minus smallest): the "
                "half-plane argument holds for each sample's own F_i, so take max_k a_k - min_k a_k within each "
                "sample, then the largest of these over the samples")
    if near(_variant(*case, normalise=False)):
        return ("your JVP is taken along p itself, not along the unit vector p / ||p||: rho_a is a length along a "
                "unit direction")
    if near(_variant(*case, always=True)):
        return ("your step always has length kappa * rho_a, even when the proposed step is shorter: cap it, do not "
                "stretch it")
    moved = float(v.norm())
    return (f"your step has length {moved:.3g}; it should be min(lr * ||p||, kappa * rho_a), along -p, with "
            "rho_a = pi / (largest spread max_k a_k - min_k a_k of a = J p / ||p|| over the samples)")


def capped_step(fn: Callable) -> CheckResult:
    """Check a learner's ``fn(logits_fn, params, p, lr, kappa)``: the Adam step capped at ``kappa rho_a``.

    The answer is the new parameter vector ``params - lr_eff p`` with
    ``lr_eff = min(lr, kappa rho_a / ||p||)`` and ``rho_a`` from one JVP of ``logits_fn`` along
    ``p / ||p||`` (eq-ghosts-radius, eq-ghosts-cap). The cases are a linear softmax model of six
    samples (one of them moving much faster), with the cap binding, not binding, and ``kappa = 1/2``, and
    one whose samples' logits also shift as a whole, so that the spread over the whole batch differs from
    the largest spread within a sample.
    Messages name the case and describe the learner's step, never the expected one.
    """
    if not _missing(fn) and callable(fn):
        learner = fn

        def fn(logits_fn, params, p, lr, kappa):
            out = learner(logits_fn, params.clone(), p.clone(), lr, kappa)
            if isinstance(out, torch.Tensor) and out.shape == params.shape:
                return out.detach().to(torch.float64) - params  # the step taken
            return out

    return check_function(fn, _reference, CAPPED_CASES, rtol=1e-8, close_rtol=0.02, hint=_hint,
                          close_note="nearly there: is everything computed in float64?",
                          nonfinite="your step contains NaN or infinity: is the spread zero, or p zero?",
                          praise="with the cap binding, not binding, and a safety factor")
