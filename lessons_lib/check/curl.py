"""Self-checks of the chapter on curl descent (curl-descent.ipynb)."""

from __future__ import annotations

import torch

from .. import curl
from ..backend import as_tensors
from .core import CheckResult, compare


def curl_lambda_min(answer, *, W1, w2, D1, D2) -> CheckResult:
    """Check ``lambda_min(K)`` for ``K = ||w2||^2 diag(D1) + W1^T diag(D2) W1`` (eq-curl-stability).

    Its sign decides stability, so a True/False answer would give the result away with every
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
        return (f"with lambda_min = {v:.3g} the manifold would be {'stable' if v > 0 else 'unstable'}; build K with "
                "curl.stability_matrix(W1, w2, D1, D2) and take the first entry of torch.linalg.eigvalsh(K)")

    if isinstance(answer, bool):
        return CheckResult("wrong", "give the number lambda_min(K), not True or False: its sign then tells stability")
    return compare(answer, lams[0], rtol=1e-6, close_rtol=0.02, hint=hint, close_note="check rounding")
