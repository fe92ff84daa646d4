"""Self-checks of the chapter on stability (stability.ipynb)."""

from __future__ import annotations

from typing import Callable

import torch

from .. import quadratic, stability
from .core import CheckResult, check_function, compare


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


def _mean_square_cases() -> dict[str, dict]:
    g = torch.tensor([[2.0, 0.0, 0.0], [0.5, 1.5, 0.0], [1.0, 1.0, 1.0], [0.0, -1.0, 1.5]], dtype=torch.float64)
    orth = torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    return {"4 gradients in R^3 (rows of g), lr = 0.6, B = 1": dict(g=g, lr=0.6, batch_size=1),
            "the same 4 gradients, lr = 0.6, B = 2": dict(g=g, lr=0.6, batch_size=2),
            "3 orthogonal gradients with squared norms 1, 4 and 9, lr = 0.25, B = 1":
                dict(g=orth, lr=0.25, batch_size=1),
            "the same 4 gradients, lr = 0.6, B = 4 (the full batch)": dict(g=g, lr=0.6, batch_size=4)}


# the inputs that minibatch_mean_square_radius hands the learner's function, by description
MEAN_SQUARE_CASES = _mean_square_cases()


def _with_replacement(g, lr, batch_size) -> float:
    """The radius if the B samples of a batch were drawn independently (repeats allowed)."""
    n, p = g.shape
    G = g.T @ g / n
    eye = torch.eye(p, dtype=g.dtype)
    GG = torch.kron(G, G)
    AA = sum(torch.kron(torch.outer(x, x), torch.outer(x, x)) for x in g) / n
    T = torch.kron(eye, eye) - lr * (torch.kron(G, eye) + torch.kron(eye, G)) + lr**2 * (GG + (AA - GG) / batch_size)
    return float(torch.linalg.eigvalsh(T).abs().max())


def _mean_square_hint(case: dict, v) -> str:
    g, lr, B = case["g"], case["lr"], case["batch_size"]
    v = float(v)
    lam = torch.linalg.eigvalsh(g.T @ g / g.shape[0])
    same = lambda w: abs(v - w) <= 1e-6 * max(abs(w), 1e-12)  # noqa: E731
    if same(float(((1 - lr * lam) ** 2).max())):
        return ("your radius is the one of full-batch GD, (I - lr G) kron (I - lr G): the batch noise is missing. "
                "Average kron(M_xi, M_xi) over the batches; the average of the product is not the product of the "
                "averages")
    if same(float((1 - lr * lam).abs().max())):
        return ("your value is the contraction of the mean E[delta] (the factors 1 - lr lambda of G), not of the "
                "second moment E[delta delta^T]: the operator acts on vec of a p x p matrix")
    if same(stability.mean_square_radius(g, lr=lr, batch_size=B) ** 0.5):
        return ("you returned the growth factor of |delta| per step, not of the second moment E[delta delta^T]: "
                "the radius asked for is that of the map acting on Sigma, which is quadratic in delta")
    if B > 1 and same(_with_replacement(g, lr, B)):
        return ("your batches may repeat a sample (drawn with replacement); SGD here draws B distinct samples: "
                "average over the C(n, B) subsets")
    side = "above 1 (unstable)" if v > 1 else "at most 1 (stable)"
    return (f"your radius, {v:.4g}, is {side}, but it is not the one of the second-moment map; check "
            "G_xi = (1/B) sum over the batch of g_i g_i^T, M_xi = I - lr G_xi, and that you average "
            "kron(M_xi, M_xi) with equal weight over every batch before taking the largest |eigenvalue|")


def minibatch_mean_square_radius(fn: Callable) -> CheckResult:
    """Check a learner's ``fn(g, lr, batch_size)`` for the spectral radius of linearised minibatch SGD's
    second-moment map (eq-stab-mean-square), against :func:`lessons_lib.stability.mean_square_radius`.

    ``g`` has shape ``(n, p)``; batches are ``batch_size`` distinct samples, every subset equally likely.
    Messages name the case by its description and describe the learner's value, never the expected one.
    """
    return check_function(
        fn, lambda g, lr, batch_size: stability.mean_square_radius(g, lr=lr, batch_size=batch_size),
        MEAN_SQUARE_CASES, rtol=1e-8, close_rtol=0.005, hint=_mean_square_hint,
        close_note="nearly there: are the eigenvalues of the whole p^2 x p^2 operator computed in float64?",
        praise="including a batch size at which SGD is stable and B = 1 is not")
