"""Gradient descent on a quadratic: the one-dimensional picture behind every stability result.

On ``f(x) = 1/2 x^T H x`` the GD update is linear, ``x_{k+1} = (I - lr H) x_k``
(eq-lr-gd-quadratic). In the eigenbasis of ``H`` each coordinate evolves on its own,
``x_k^(i) = (1 - lr * lambda_i)^k x_0^(i)`` (eq-lr-eigen-solution), so everything is decided by the
contraction factors ``1 - lr * lambda_i``: GD converges iff ``lr * lambda_max < 2`` (eq-lr-stability).

References:
    Nesterov (2004), Introductory Lectures on Convex Optimization, Springer, section 2.1.
    Goh (2017), Why Momentum Really Works, Distill, doi:10.23915/distill.00006.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

from .backend import as_tensor, check_positive, check_real
from .descent import Trajectory, check_lr, iterate
from .run import run

Regime = Literal["monotone", "one-step", "oscillating", "two-cycle", "divergent", "flat"]


def check_hessian(H, *, name: str = "H") -> torch.Tensor:
    """Validate a Hessian: a finite, square, symmetric 2-D tensor (float64 unless given a tensor)."""
    H = as_tensor(H, name=name, dtype=None if isinstance(H, torch.Tensor) else torch.float64)
    if H.ndim != 2 or H.shape[0] != H.shape[1] or H.shape[0] == 0:
        raise ValueError(f"{name}: expected a non-empty square matrix, got shape {tuple(H.shape)}")
    if not H.is_floating_point():
        H = H.to(torch.float64)
    if not torch.allclose(H, H.T, rtol=1e-10, atol=1e-12 * max(1.0, float(H.abs().max()))):
        raise ValueError(f"{name}: must be symmetric (a Hessian), but H != H.T")
    return H


def quadratic_loss(H) -> callable:
    """The loss ``f(x) = 1/2 x^T H x`` as a function of a flat tensor (eq-lr-quadratic)."""
    H = check_hessian(H)
    return lambda x: 0.5 * x @ (H.to(x) @ x)


def gd_quadratic(H, x0, *, lr: float, steps: int, blowup: float = 1e6) -> Trajectory:
    """Gradient descent on ``f(x) = 1/2 x^T H x``: ``x_{k+1} = (I - lr H) x_k`` (eq-lr-gd-quadratic).

    Args:
        H: symmetric Hessian, shape ``(n, n)``.
        x0: start, shape ``(n,)``, or ``(R, n)`` for ``R`` runs at once; the device and dtype of
            ``H`` are used.
        lr: learning rate ``eta >= 0``.
        steps: number of steps ``K >= 0``.
        blowup: divergence radius relative to ``max(1, ||x0||)`` (per run); see :mod:`lessons_lib.run`.

    Returns:
        A :class:`~lessons_lib.descent.Trajectory`. For ``x0`` of shape ``(n,)``: ``K + 1`` iterates
        of shape ``(n,)``, ending at divergence. For ``(R, n)``: ``params`` of shape ``(K + 1, R, n)``
        and ``loss`` of shape ``(K + 1, R)``; ``diverged`` is a bool tensor ``(R,)`` and
        ``diverged_at`` a long tensor ``(R,)`` (``-1`` where a run did not diverge). A diverged run is
        frozen where it left the ball, so no value is NaN or infinite.
    """
    H = check_hessian(H)
    lr = check_lr(lr)
    x0 = as_tensor(x0, name="x0", dtype=H.dtype, device=H.device)
    if x0.ndim == 1 and x0.shape == (H.shape[0],):
        return iterate(lambda x: x - lr * (H @ x), quadratic_loss(H), x0, lr=lr, steps=steps, blowup=blowup)
    if x0.ndim != 2 or x0.shape[1] != H.shape[0]:
        raise ValueError(f"x0: expected shape ({H.shape[0]},) or (R, {H.shape[0]}) to match H, got {tuple(x0.shape)}")
    out = run(lambda x, t, eta: x - lr * x @ H, x0, steps=steps, blowup=blowup, batched=True)  # H is symmetric
    params = out.history["params"]
    loss = 0.5 * torch.einsum("kri,ij,krj->kr", params, H.cpu(), params)
    return Trajectory(params, loss, lr, out.diverged, out.diverged_at)


def gd_scalar(a: float, x0: float, *, lr: float, steps: int, blowup: float = 1e6) -> Trajectory:
    """GD on the 1-D quadratic ``f(x) = a x^2 / 2``: ``x_{k+1} = (1 - lr a) x_k`` (eq-lr-1d-update)."""
    a = check_real(a, name="a")
    return gd_quadratic([[a]], [check_real(x0, name="x0")], lr=lr, steps=steps, blowup=blowup)


def contraction_factor(lr, a):
    """The per-step factor ``q = 1 - lr * a`` of the scalar update (eq-lr-1d-update).

    Works elementwise on floats, numpy arrays and tensors; ``|q| < 1`` means convergence.
    """
    if not isinstance(lr, (np.ndarray, torch.Tensor)):
        check_lr(lr)
    if not isinstance(a, (np.ndarray, torch.Tensor)):
        check_real(a, name="a")
    return 1 - lr * a


def regime(lr: float, a: float, *, rtol: float = 1e-9) -> Regime:
    """Name the behaviour of GD on ``a x^2 / 2`` at learning rate ``lr`` (eq-lr-regimes).

    With ``q = 1 - lr a``: ``0 < q < 1`` monotone; ``q = 0`` one step to the minimum;
    ``-1 < q < 0`` oscillating convergence; ``q = -1`` a two-cycle (``lr a = 2``); ``|q| > 1``
    divergent; ``q = 1`` flat (``a = 0`` or ``lr = 0``: nothing moves). Boundaries are detected with
    relative tolerance ``rtol`` on ``lr * a``.
    """
    lr = check_lr(lr)
    a = check_real(a, name="a")
    rtol = check_positive(rtol, name="rtol")
    if rtol >= 0.5:
        raise ValueError(f"rtol: a relative tolerance on lr * a must be < 0.5 (the regimes' boundaries are 1 and 2 "
                         f"apart by a factor 2), got {rtol}")
    p = lr * a
    if math.isclose(p, 0.0, abs_tol=1e-300):
        return "flat"
    if math.isclose(p, 1.0, rel_tol=rtol):
        return "one-step"
    if math.isclose(p, 2.0, rel_tol=rtol):
        return "two-cycle"
    if p < 0 or p > 2:
        return "divergent"
    return "monotone" if p < 1 else "oscillating"


def _eigenvalues(H) -> torch.Tensor:
    return torch.linalg.eigvalsh(check_hessian(H))


def critical_lr(H) -> float:
    """The largest stable learning rate ``2 / lambda_max(H)`` (eq-lr-stability).

    Raises:
        ValueError: if ``H`` has no positive eigenvalue (then no learning rate makes GD converge).
    """
    lam_max = float(_eigenvalues(H)[-1])
    if lam_max <= 0:
        raise ValueError(f"H: needs a positive eigenvalue for a critical learning rate, lambda_max={lam_max:g}")
    return 2.0 / lam_max


def optimal_lr(H) -> float:
    """The learning rate ``2 / (lambda_min + lambda_max)`` minimising the worst factor (eq-lr-optimal).

    Raises:
        ValueError: if ``H`` is not positive definite.
    """
    lam = _eigenvalues(H)
    if float(lam[0]) <= 0:
        raise ValueError(f"H: must be positive definite for an optimal learning rate, lambda_min={float(lam[0]):g}")
    return 2.0 / float(lam[0] + lam[-1])


def convergence_rate(H, *, lr: float) -> float:
    """The worst contraction ``max_i |1 - lr lambda_i|`` per step (eq-lr-rate); < 1 iff GD converges."""
    lr = check_lr(lr)
    return float((1 - lr * _eigenvalues(H)).abs().max())


def rotated_hessian(eigenvalues, angle: float = 0.0) -> torch.Tensor:
    """A 2x2 Hessian with the given eigenvalues whose eigenbasis is rotated by ``angle`` radians."""
    lam = as_tensor(eigenvalues, name="eigenvalues", dtype=torch.float64)
    if lam.shape != (2,):
        raise ValueError(f"eigenvalues: expected two values, got shape {tuple(lam.shape)}")
    angle = check_real(angle, name="angle")
    c, s = math.cos(angle), math.sin(angle)
    R = torch.tensor([[c, -s], [s, c]], dtype=torch.float64, device=lam.device)
    return R @ torch.diag(lam) @ R.T


def steps_to_tolerance(lr: float, a: float, *, tol: float = 1e-3) -> float:
    """Steps for ``|x_k / x_0|`` to fall below ``tol`` on ``a x^2 / 2``: ``ln tol / ln|1 - lr a|``.

    Returns ``inf`` when GD does not converge and ``1`` when ``lr a = 1``.
    """
    tol = check_positive(tol, name="tol")
    if tol >= 1:
        raise ValueError(f"tol: a relative tolerance |x_k / x_0| must be < 1, got {tol}")
    q = abs(contraction_factor(check_lr(lr), check_real(a, name="a")))
    if q >= 1:
        return math.inf
    if q == 0:
        return 1.0
    return max(0.0, math.log(tol) / math.log(q))
