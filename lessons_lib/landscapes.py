"""Loss surfaces shared by several chapters.

The river valley ``L(x, y) = (mu/2) x^2 + (a/2) (y - g(x))^2`` (eq-wsd-valley) has a flat *river*
direction ``x`` (curvature ``mu``) between steep *hills* (curvature ``a >> mu``) around the river bed
``y = g(x)``. The loss splits exactly into a river part ``(mu/2) x^2`` and a hill part
``(a/2) (y - g(x))^2``. ``g = 0`` gives the straight valley with closed forms; ``g(x) = A sin(k x)``
a curved river.

References:
    Wen, Li, Wang, Hall, Liang & Ma (2025), Understanding Warmup-Stable-Decay Learning Rates: A River
    Valley Loss Landscape Perspective, ICLR, arXiv:2410.05192.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .backend import DTYPE, as_tensor, check_positive, check_real


def _points(x, name: str) -> torch.Tensor:
    """``x`` as a real floating tensor (integers promoted to float64), refusing strings, None and complex.

    No NaN check: landscapes are evaluated on whole swarms every step and under torch.func, where an
    overflowing point is data and a data-dependent check cannot run; NaN in gives NaN out.
    """
    if not isinstance(x, torch.Tensor):
        return as_tensor(x, name=name)
    if x.is_complex():
        raise ValueError(f"{name}: expected real points, got a complex tensor")
    return x if x.is_floating_point() else x.to(DTYPE)


@dataclass(frozen=True)
class RiverValley:
    """``L(x, y) = (mu/2) x^2 + (a/2) (y - A sin(k x))^2``; points are tensors of shape ``(..., 2)``."""

    mu: float
    a: float
    amplitude: float = 0.0
    k: float = 1.0

    def bed(self, x: torch.Tensor) -> torch.Tensor:
        """The river bed ``g(x) = A sin(k x)``."""
        x = _points(x, "x")
        return self.amplitude * torch.sin(self.k * x)

    def river(self, theta: torch.Tensor) -> torch.Tensor:
        """River part ``(mu/2) x^2``, shape ``(...)``."""
        theta = _points(theta, "theta")
        return 0.5 * self.mu * theta[..., 0] ** 2

    def hill(self, theta: torch.Tensor) -> torch.Tensor:
        """Hill part ``(a/2) (y - g(x))^2``, shape ``(...)``."""
        theta = _points(theta, "theta")
        return 0.5 * self.a * (theta[..., 1] - self.bed(theta[..., 0])) ** 2

    def loss(self, theta: torch.Tensor) -> torch.Tensor:
        """``river + hill``, shape ``(...)``."""
        theta = _points(theta, "theta")
        return self.river(theta) + self.hill(theta)

    def grad(self, theta: torch.Tensor) -> torch.Tensor:
        """Closed-form gradient, shape ``(..., 2)`` (batched; no autograd needed)."""
        theta = _points(theta, "theta")
        x, y = theta[..., 0], theta[..., 1]
        r = y - self.bed(x)
        dx = self.mu * x - self.a * r * self.amplitude * self.k * torch.cos(self.k * x)
        return torch.stack([dx, self.a * r], dim=-1)


def river_valley(*, mu: float = 0.01, a: float = 10.0, amplitude: float = 0.0, k: float = 1.0) -> RiverValley:
    """Build a :class:`RiverValley`; ``mu`` and ``a`` must be > 0 (a river needs ``mu << a``)."""
    mu = check_positive(mu, name="mu")
    a = check_positive(a, name="a")
    amplitude = check_real(amplitude, name="amplitude")
    k = check_positive(k, name="k")
    return RiverValley(mu, a, amplitude, k)


# --- landscapes for consensus-based optimization (eq-cbo-rastrigin, eq-cbo-canyon) ----------------

def rastrigin(x: torch.Tensor, *, amplitude: float = 10.0) -> torch.Tensor:
    """Rastrigin's function ``A d + sum_i (x_i^2 - A cos(2 pi x_i))`` (eq-cbo-rastrigin), batched.

    A convex bowl ``|x|^2`` with a grid of local minima near the integer points; the amplitude ``A``
    sets the height of the barriers between them (``A = 0`` is the plain quadratic). The global
    minimum is ``f(0) = 0``.

    Args:
        x: points, shape ``(..., d)``.
        amplitude: barrier height ``A >= 0`` (the standard choice is 10).

    Returns:
        Values of shape ``(...)``.

    References:
        Rastrigin (1974), Systems of Extremal Control, Nauka; the CBO benchmark of Pinnau, Totzeck, Tse &
        Martin (2017), arXiv:1604.05648.
    """
    A = check_positive(amplitude, name="amplitude", allow_zero=True)
    x = _points(x, "x")
    return A * x.shape[-1] + (x * x - A * torch.cos(2 * math.pi * x)).sum(dim=-1)


def grand_canyon(x: torch.Tensor) -> torch.Tensor:
    """A 2-D "Grand Canyon" landscape (eq-cbo-canyon): a curved, rippled canyon that ends at the global minimum 0.

    ``f = 100 (1 - exp(-1.4 v^2 exp(-0.002 x1^4))) + 1.6 x1^2 + 0.8 x2^2 + 8 sum_i (1 - cos(0.75 pi x_i))
    + 16 exp(1 - 2 v^4) max(0, (1 - exp(-9 b^2)) sign b)`` with the canyon floor ``v = x2 - g(x1)``,
    ``g(x1) = (x1 - 1)(x1 - 4)^2 / 8 + 2``, and a wall ``b = -x1 - 1.6 x2`` closing the canyon past the
    minimum. Gradient descent started high up (near ``(8, 8)``) stops in one of the cosine ripples;
    the global minimum is ``f(0) = 0``. The formula follows the landscape of the authors' released
    MATLAB scripts for their Figures 1(b) and 2.

    Args:
        x: points, shape ``(..., 2)``.

    Returns:
        Values of shape ``(...)``; differentiable (autograd) for gradient-descent comparisons.

    References:
        Riedl, Klock, Geldhauser & Fornasier (2023), Gradient is All You Need? How Consensus-Based
        Optimization can be Interpreted as a Stochastic Relaxation of Gradient Descent, arXiv:2306.09778.
    """
    x = _points(x, "x")
    if x.shape[-1] != 2:
        raise ValueError(f"x: the canyon is two-dimensional, got points of dimension {x.shape[-1]}")
    x1, x2 = x[..., 0], x[..., 1]
    v = x2 - ((x1 - 1) * (x1 - 4) ** 2 / 8 + 2)
    b = -x1 - 1.6 * x2
    canyon = 100 * (1 - torch.exp(-1.4 * v**2 * torch.exp(-0.002 * x1**4)))
    bowl = 1.6 * x1**2 + 0.8 * x2**2
    ripples = 8 * (1 - torch.cos(0.75 * math.pi * x)).sum(dim=-1)
    wall = 16 * torch.exp(1 - 2 * v**4) * torch.where(b > 0, 1 - torch.exp(-9 * b**2), torch.zeros_like(b))
    return canyon + bowl + ripples + wall
