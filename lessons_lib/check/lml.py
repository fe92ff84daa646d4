"""Self-checks of the chapter on Levenberg–Marquardt–Langevin (levenberg-marquardt-langevin.ipynb)."""

from __future__ import annotations

from typing import Callable

import torch

from .. import lml
from .core import CheckResult, _missing, check_function


def _cases() -> dict[str, tuple]:
    gen = torch.Generator().manual_seed(11)
    eps = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    prev = eps + 0.8 * torch.randn(4, 3, generator=gen, dtype=torch.float64)
    scaled = eps * torch.tensor([[0.2], [1.0], [3.0], [7.0]], dtype=torch.float64)  # rows of very different norms
    prev_scaled = scaled.flip(0) + 0.3 * scaled
    return {"4 samples in 3-d, lam = 0.5, kappa = 0.5": (eps, prev, 0.5, 0.5),
            "the first step (eps_prev = None), lam = 0.1, kappa = 0.6": (eps, None, 0.1, 0.6),
            "rows of norms 0.2 to 7 (each sample on its own), lam = 0.001, kappa = 0.6": (scaled, prev_scaled,
                                                                                          1e-3, 0.6),
            "4 samples in 3-d, a heavy damping lam = 100, kappa = 0.3": (eps, prev, 100.0, 0.3)}


# the inputs (eps, eps_prev, lam, kappa) handed to the learner's function, by description
CASES = _cases()


def _reference(eps, eps_prev, lam, kappa):
    return lml.lm_correct(eps, eps_prev, lam=lam, kappa=kappa)


def _variants(eps, eps_prev, lam, kappa) -> dict[str, torch.Tensor]:
    """Outputs of the usual mistakes on one case (each a complete, wrong implementation)."""
    def rows(v):
        return v.norm(dim=-1, keepdim=True)

    out = {}
    if eps_prev is not None:
        swapped = (1 - kappa) * eps_prev + kappa * eps
        d = eps - swapped * (swapped * eps).sum(-1, keepdim=True) / (lam + (swapped * swapped).sum(-1, keepdim=True))
        out["swapped"] = d * rows(eps) / rows(d)
    out["raw"] = lml.lm_correct(eps, eps_prev, lam=lam, kappa=kappa, renormalize=False)
    raw = out["raw"]
    out["global"] = raw * eps.norm() / raw.norm()
    bar = eps if eps_prev is None else kappa * eps_prev + (1 - kappa) * eps
    plus = eps + bar * (bar * eps).sum(-1, keepdim=True) / (lam + (bar * bar).sum(-1, keepdim=True))
    out["plus"] = plus * rows(eps) / rows(plus)
    out["prev_none"] = eps.clone()
    for name, denom in (("nolam", (bar * bar).sum(-1, keepdim=True)),  # the damping forgotten
                        ("lamtimes", lam * (1 + (bar * bar).sum(-1, keepdim=True)))):  # lam (1 + ||bar||^2)
        dd = eps - bar * (bar * eps).sum(-1, keepdim=True) / denom
        out[name] = dd * rows(eps) / rows(dd)
    return out


def _hint(case, value) -> str:
    eps, eps_prev, lam, kappa = case
    v = torch.as_tensor(value, dtype=torch.float64)
    if v.shape != eps.shape:
        return f"return one corrected row per sample: shape {tuple(eps.shape)}, like eps"
    variants = _variants(eps, eps_prev, lam, kappa)

    def near(name):
        return name in variants and bool(torch.allclose(v, variants[name], rtol=1e-6, atol=1e-9))

    if near("swapped"):
        return ("your moving average weighs the two predictions the other way round: kappa is the weight of the "
                "previous prediction, so kappa = 0 must switch the correction off")
    if near("global"):
        return ("your rows have the right directions, but you rescaled the whole batch by one number: restore the "
                "norm of each sample (row) on its own")
    if near("raw"):
        return ("your rows point the right way but keep the length the damped inverse gives them: rescale each "
                "row to the norm of its eps")
    if near("plus"):
        return ("your correction adds the projection on eps_bar instead of removing it: (lam I + u u^T)^-1 shrinks "
                "the component along u, so Sherman-Morrison subtracts it")
    if near("nolam") or near("lamtimes"):
        what = ("leaves out lam" if near("nolam") else
                "multiplies the whole of 1 + ||eps_bar||^2 by lam")
        return (f"your denominator {what}: check what your correction does as lam -> infinity, where it must "
                "return eps, and as lam -> 0, where it keeps only the part of eps orthogonal to eps_bar")
    if eps_prev is not None and bool(torch.allclose(v, eps, rtol=1e-6, atol=1e-9)):
        return ("your function returns eps unchanged although kappa > 0 and there is a previous prediction: form "
                "eps_bar from eps_prev and eps, and remove its damped component")
    if eps_prev is None and not bool(torch.allclose(v, eps, rtol=1e-6, atol=1e-9)):
        return ("at the first step there is no previous prediction: use eps_bar = eps (then the renormalised "
                "correction changes nothing)")
    return ("not right yet: compare your function with eq-lml-correct term by term: the moving average eps_bar, "
            "the damped term that Sherman-Morrison removes, and the rescaling of each row")


def lm_correct(fn: Callable) -> CheckResult:
    """Check a learner's ``fn(eps, eps_prev, lam, kappa)`` for the LML correction (eq-lml-correct).

    ``eps`` and ``eps_prev`` have shape ``(n, d)`` (``eps_prev`` may be ``None``: the first step); the
    answer is the corrected, renormalised ``d`` of shape ``(n, d)``. The cases cover the first step,
    rows of very different norms (the rescaling is per sample) and a heavy damping. Messages name the
    case and describe the learner's output, never the expected one.
    """
    if not _missing(fn) and callable(fn):
        learner = fn

        def fn(eps, eps_prev, lam, kappa):
            out = learner(eps, eps_prev, lam, kappa)
            return out.detach().cpu() if isinstance(out, torch.Tensor) else out

    return check_function(
        fn, _reference, CASES, rtol=1e-8, close_rtol=0.05, hint=_hint,
        close_note="nearly there: is everything computed in float64?",
        nonfinite=("your output contains NaN or infinity: does a division by a norm or by lam + ||eps_bar||^2 go "
                   "wrong somewhere?"),
        praise="including the first step and rows of very different norms")
