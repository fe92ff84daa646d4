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

from .backend import check_positive


@dataclass(frozen=True)
class RiverValley:
    """``L(x, y) = (mu/2) x^2 + (a/2) (y - A sin(k x))^2``; points are tensors of shape ``(..., 2)``."""

    mu: float
    a: float
    amplitude: float = 0.0
    k: float = 1.0

    def bed(self, x: torch.Tensor) -> torch.Tensor:
        """The river bed ``g(x) = A sin(k x)``."""
        return self.amplitude * torch.sin(self.k * x)

    def river(self, theta: torch.Tensor) -> torch.Tensor:
        """River part ``(mu/2) x^2``, shape ``(...)``."""
        return 0.5 * self.mu * theta[..., 0] ** 2

    def hill(self, theta: torch.Tensor) -> torch.Tensor:
        """Hill part ``(a/2) (y - g(x))^2``, shape ``(...)``."""
        return 0.5 * self.a * (theta[..., 1] - self.bed(theta[..., 0])) ** 2

    def loss(self, theta: torch.Tensor) -> torch.Tensor:
        """``river + hill``, shape ``(...)``."""
        return self.river(theta) + self.hill(theta)

    def grad(self, theta: torch.Tensor) -> torch.Tensor:
        """Closed-form gradient, shape ``(..., 2)`` (batched; no autograd needed)."""
        x, y = theta[..., 0], theta[..., 1]
        r = y - self.bed(x)
        dx = self.mu * x - self.a * r * self.amplitude * self.k * torch.cos(self.k * x)
        return torch.stack([dx, self.a * r], dim=-1)


def river_valley(*, mu: float = 0.01, a: float = 10.0, amplitude: float = 0.0, k: float = 1.0) -> RiverValley:
    """Build a :class:`RiverValley`; ``mu`` and ``a`` must be > 0 (a river needs ``mu << a``)."""
    mu = check_positive(mu, name="mu")
    a = check_positive(a, name="a")
    if not math.isfinite(float(amplitude)):
        raise ValueError(f"amplitude: must be finite, got {amplitude}")
    k = check_positive(k, name="k")
    return RiverValley(mu, a, float(amplitude), k)
