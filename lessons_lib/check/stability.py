"""Self-checks of the chapter on stability (stability.ipynb)."""

from __future__ import annotations

import torch

from .. import quadratic
from .core import CheckResult, compare


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
