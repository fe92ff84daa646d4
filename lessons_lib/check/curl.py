"""Self-checks of the chapter on curl descent (curl-descent.ipynb)."""

from __future__ import annotations

from typing import Callable

import torch

from .. import curl
from ..backend import as_tensors
from .core import CheckResult, check_function, compare


def _cases() -> dict[str, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(11)

    def net(N, M, flipped_inputs, flipped_hidden):
        W1 = torch.randn(N, M, generator=g, dtype=torch.float64) / M**0.5
        w2 = torch.randn(N, generator=g, dtype=torch.float64) / N**0.5
        D1, D2 = torch.ones(M, dtype=torch.float64), torch.ones(N, dtype=torch.float64)
        D1[list(flipped_inputs)], D2[list(flipped_hidden)] = -1.0, -1.0
        return dict(W1=W1, w2=w2, D1=D1, D2=D2)

    return {"an expansive net, 6 hidden units and 3 inputs, the first input flipped": net(6, 3, [0], []),
            "a compressive net, 3 hidden units and 6 inputs, the second hidden unit flipped": net(3, 6, [], [1]),
            "4 hidden units and 4 inputs, the last input and the first hidden unit flipped": net(4, 4, [3], [0])}


# the inputs (W1, w2, D1, D2) that curl_stability_matrix hands the learner's function, by description
CASES = _cases()


def _reference(W1, w2, D1, D2):
    return curl.stability_matrix(W1, w2, D1, D2)


def _near(v: torch.Tensor, x: torch.Tensor) -> bool:
    return v.shape == x.shape and bool(torch.allclose(v, x, rtol=1e-6, atol=1e-9 * float(x.abs().max())))


def _matrix_hint(case, v) -> str:
    """What the learner's matrix ``v`` for ``case`` looks like: built from the mistakes it matches, never from K."""
    W1, w2, D1, D2 = case["W1"], case["w2"], case["D1"], case["D2"]
    N, M = W1.shape
    v = torch.as_tensor(v, dtype=torch.float64)
    if v.ndim == 1:
        return (f"you returned a vector of length {len(v)}; return the matrix K itself, not its eigenvalues "
                "(the smallest eigenvalue comes later, from your matrix)")
    if v.shape != (M, M):
        return (f"your matrix has shape {tuple(v.shape)}; K acts on the end-to-end weights W1^T w2, one entry per "
                "input, so it is (inputs x inputs): check which side of W1 the transpose goes")
    if not torch.allclose(v, v.T, rtol=1e-9, atol=1e-12):
        return ("your matrix is not symmetric, but both terms of K are: did the hidden-unit signs D2 end up "
                "on one side of the product only, or the input signs D1 multiply whole columns of W1?")
    sq, ones_M = (w2 @ w2), torch.ones_like(D1)
    first, second = sq * torch.diag(D1), W1.T @ (D2[:, None] * W1)
    mistakes = [
        (sq * torch.diag(ones_M) + second, "your first term ignores the input flips: the signs D1 belong in it"),
        (first + W1.T @ W1, "your second term ignores the hidden-unit flips: the signs D2 sit between W1^T and W1"),
        (sq.sqrt() * torch.diag(D1) + second, "your first term scales by the norm of w2; it needs the squared norm"),
        (first, "your matrix has only the term that comes from the update of W1; add the one from w2's update"),
        (second, "your matrix has only the term that comes from the update of w2; add the one from W1's update"),
        (-(first + second), "your matrix has the wrong overall sign: for gradient descent K is positive definite"),
    ]
    for wrong, message in mistakes:
        if _near(v, wrong):
            return message
    return ("your matrix is symmetric and of the right shape but matches none of the usual slips; differentiate "
            "delta = W1^T w2 with the two updates of eq-curl-updates, one term from each layer, and compare")


def curl_stability_matrix(fn: Callable) -> CheckResult:
    """Check a learner's ``fn(W1, w2, D1, D2)`` for the stability matrix ``K`` (eq-curl-stability).

    ``W1`` has shape ``(N, M)``, ``w2`` ``(N,)``, the signs ``D1`` ``(M,)`` and ``D2`` ``(N,)``; the answer is
    ``K = ||w2||^2 diag(D1) + W1^T diag(D2) W1`` of shape ``(M, M)``. Three networks (expansive,
    compressive, square) with flips in one layer, the other, and both. Messages name the case and
    describe the learner's matrix (its shape, its symmetry, the slip it matches), never the expected K.
    """
    return check_function(
        fn, _reference, CASES, rtol=1e-8, close_rtol=0.05, hint=_matrix_hint,
        close_note="nearly there: are all the products computed in float64?",
        nonfinite="your matrix contains NaN or infinity; K is a sum of two finite products",
        praise="flips in either layer and both shapes of network")


def curl_lambda_min(answer, *, W1, w2, D1, D2) -> CheckResult:
    """Check ``lambda_min(K)`` for ``K = ||w2||^2 diag(D1) + W1^T diag(D2) W1`` (eq-curl-stability).

    Its sign decides linear stability, so a True/False answer would give the result away with every
    verdict; the check asks for the number and hints from the learner's value.
    """
    W1, w2, D1, D2 = as_tensors(W1=W1, w2=w2, D1=D1, D2=D2)
    if W1.ndim != 2 or w2.ndim != 1 or D1.ndim != 1 or D2.ndim != 1:
        raise ValueError(f"W1: expected one network, W1 (N, M), w2 (N,), D1 (M,), D2 (N,), got {tuple(W1.shape)}, "
                         f"{tuple(w2.shape)}, {tuple(D1.shape)}, {tuple(D2.shape)}")
    lams = torch.linalg.eigvalsh(curl.stability_matrix(W1, w2, D1, D2))
    # the smallest eigenvalue of each term of K alone: ||w2||^2 min(D1), and that of W1^T diag(D2) W1
    parts = (float((w2**2).sum() * D1.min()), float(torch.linalg.eigvalsh(W1.mT @ (D2[:, None] * W1))[0]))

    def near(v, x):
        return abs(v - x) <= 0.02 * max(abs(x), 1e-3)

    def hint(v):
        v = float(v)
        if any(near(v, float(x)) for x in lams[1:]):
            return "that is an eigenvalue of K, but not the smallest (torch.linalg.eigvalsh sorts them ascending)"
        if any(near(v, x) for x in parts):
            return ("that is the smallest eigenvalue of one of the two terms of K alone: "
                    "add ||w2||^2 diag(D1) and W1^T diag(D2) W1 first, then take the eigenvalue")
        return (f"with lambda_min = {v:.3g} the manifold would be {'stable' if v > 0 else 'unstable'}; is it the "
                "smallest eigenvalue of the symmetric M x M matrix K, built from these four arrays with your "
                "stability_matrix?")

    if isinstance(answer, bool):
        return CheckResult("wrong", "give the number lambda_min(K), not True or False: its sign then tells stability")
    return compare(answer, lams[0], rtol=1e-6, close_rtol=0.02, hint=hint, close_note="check rounding")
