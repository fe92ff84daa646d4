"""Langevin dynamics, its 2/curvature rule, and iterate averaging on the sphere (tensor PCA).

Unadjusted Langevin (ULA, eq-langevin-ula) is gradient descent plus a Gaussian kick of size
``sqrt(2 lr / beta)``: ``x <- x - lr grad L(x) + sqrt(2 lr / beta) xi``. For a small step it samples the
Gibbs density ``exp(-beta L)``; on a quadratic of curvature ``h`` its stationary variance is exactly
``1 / (beta h (1 - lr h / 2))`` (eq-langevin-ula-variance), which is infinite from ``lr h = 2`` on,
the same threshold as plain GD.

On the unit sphere, spherical Langevin (eq-langevin-sphere) projects the gradient and the kick on the
tangent space at ``theta`` and normalises; ``beta = inf`` is projected GD. The estimator of Wei, Damian
& Lee is the normalised mean of the iterates over a window (eq-langevin-average). Their test bed is
tensor PCA (eq-langevin-tensor-pca): recover ``theta*`` from ``T = theta*^{(x)3} + Z / sqrt(n)`` by
minimising ``L(theta) = -<T, theta^{(x)3}>``. The population losses of a single-index model
(eq-langevin-information) and of its smoothed version (eq-langevin-smoothed) explain why: the loss is
flat to order ``k`` at the equator ``m = <theta, theta*> ~ d^(-1/2)``, and smoothing over a cap of
radius ``lam`` gives it a linear slope there.

Shapes: chains are the leading dimension, ``(M, d)``; every runner is a step function on
:func:`lessons_lib.run.run` (batched), so divergence has the book's one meaning. Records come back on
the host.

References:
    Wei, Damian & Lee (2026), Improved high-dimensional estimation with Langevin dynamics and
    stochastic weight averaging, ICLR 2026, arXiv:2603.06028.
    Ben Arous, Gheissari & Jagannath (2021), Online stochastic gradient descent on non-convex losses
    from high-dimensional inference, JMLR 22, arXiv:2003.10409.
    Damian, Nichani, Ge & Lee (2023), Smoothing the landscape boosts the signal for SGD: optimal sample
    complexity for learning single index models, NeurIPS 2023, arXiv:2305.10633.
    Richard & Montanari (2014), A statistical model for tensor PCA, NeurIPS 2014, arXiv:1411.1076.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import permutations
from typing import Callable, Sequence

import torch

from .backend import (
    DTYPE,
    Record,
    as_generator,
    as_tensor,
    check_callable,
    check_count,
    check_float_tensor,
    check_positive,
    check_real,
    default_device,
)
from .run import run

GradFn = Callable[[torch.Tensor], torch.Tensor]


# --- checks ------------------------------------------------------------------------------------

def _check_chains(x, *, name: str) -> torch.Tensor:
    x = check_float_tensor(x, name=name)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name}: expected shape (M, d) with M chains in the leading dimension, got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return x


def _check_beta(beta, like: torch.Tensor) -> torch.Tensor:
    """``beta`` as a tensor of shape ``(M,)`` on ``like``'s device: a number or ``M`` numbers in ``(0, inf]``."""
    if isinstance(beta, (bool, str, bytes)) or beta is None:
        raise ValueError(f"beta: expected a positive number (or inf), got {type(beta).__name__} {beta!r}")
    try:
        b = torch.as_tensor(beta, dtype=like.dtype).to(like.device)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"beta: expected a positive number (or inf), got {type(beta).__name__}") from None
    if b.is_complex() or b.ndim > 1 or (b.ndim == 1 and b.shape[0] != like.shape[0]):
        raise ValueError(f"beta: expected a number or one value per chain ({like.shape[0]}), "
                         f"got shape {tuple(b.shape)}")
    if bool(torch.isnan(b).any()) or bool((b <= 0).any()):
        raise ValueError("beta: must be > 0 (inf for noiseless GD)")
    return b.expand(like.shape[0])


def _noise_scale(lr, beta: torch.Tensor) -> torch.Tensor:
    """``sqrt(2 lr / beta)`` per chain, shape ``(M, 1)`` (0 where ``beta`` is infinite)."""
    return torch.sqrt(2 * torch.as_tensor(lr, dtype=beta.dtype, device=beta.device) / beta).reshape(-1, 1)


def _finite(x, *, name: str) -> torch.Tensor:
    x = check_float_tensor(x, name=name)
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return x


def _check_grad(g: torch.Tensor, like: torch.Tensor, name: str = "grad_fn") -> torch.Tensor:
    if not isinstance(g, torch.Tensor) or g.shape != like.shape:
        got = tuple(g.shape) if isinstance(g, torch.Tensor) else type(g).__name__
        what = "must return" if name == "grad_fn" else "must be"
        raise ValueError(f"{name}: {what} a tensor of the state's shape {tuple(like.shape)}, got {got}")
    return g


def _draw(noise, like: torch.Tensor, generator) -> torch.Tensor:
    if noise is not None:
        noise = _finite(noise, name="noise")
        if noise.shape != like.shape:
            raise ValueError(f"noise: expected shape {tuple(like.shape)}, got {tuple(noise.shape)}")
        return noise.to(like.dtype)
    if generator is None:
        raise ValueError("generator: needed to draw the noise when no noise= is given")
    g = as_generator(generator, like.device)
    return torch.randn(like.shape, generator=g, dtype=like.dtype, device=like.device)


# --- Euclidean Langevin ---------------------------------------------------------------------------

@dataclass(frozen=True)
class LangevinRun(Record):
    """A batch of Langevin chains.

    Attributes:
        steps: recorded steps, shape ``(K,)``.
        params: the chains at those steps, shape ``(K, M, d)``.
        final: the last state, shape ``(M, d)``.
        diverged: bool, shape ``(M,)``; diverged_at: long, shape ``(M,)``, ``-1`` where not diverged.
    """

    steps: torch.Tensor
    params: torch.Tensor
    final: torch.Tensor
    diverged: torch.Tensor
    diverged_at: torch.Tensor


def langevin_step(grad: torch.Tensor, x: torch.Tensor, *, lr: float, beta, noise: torch.Tensor | None = None,
                  generator: int | torch.Generator | None = None) -> torch.Tensor:
    """One ULA step: ``x - lr * grad + sqrt(2 lr / beta) * xi`` (eq-langevin-ula).

    Args:
        grad: the gradient of the loss at ``x``, shape ``(M, d)``.
        x: the chains, shape ``(M, d)``.
        lr: step ``eta > 0``.
        beta: inverse temperature ``> 0``, a number or one per chain; ``inf`` gives a plain GD step.
        noise: the standard normal ``xi`` of shape ``(M, d)``; drawn from ``generator`` when ``None``.
        generator: seed or generator for the noise.

    Returns:
        The new chains, shape ``(M, d)``.

    References:
        Wei, Damian & Lee (2026), arXiv:2603.06028 (the Langevin update they average).
    """
    x = _check_chains(x, name="x")
    lr = check_positive(lr, name="lr")
    b = _check_beta(beta, x)
    grad = _check_grad(_finite(grad, name="grad"), x, "grad").to(x.dtype)
    return x - lr * grad + _noise_scale(lr, b) * _draw(noise, x, generator)


def langevin(grad_fn: GradFn, x0: torch.Tensor, *, lr: float, beta, steps: int,
             generator: int | torch.Generator = 0, record_every: int = 1, blowup: float = 1e6) -> LangevinRun:
    """Run ``M`` ULA chains (eq-langevin-ula) through :func:`lessons_lib.run.run`.

    Args:
        grad_fn: ``(M, d) -> (M, d)``, the gradient of the loss of each chain.
        x0: the starts, shape ``(M, d)``.
        lr: step ``eta > 0``.
        beta: inverse temperature ``> 0`` (a number or ``M`` numbers; ``inf`` for GD).
        steps: number of steps.
        generator: seed or generator of the noise.
        record_every: recording interval (the last step is always recorded).
        blowup: divergence radius relative to the start (see :mod:`lessons_lib.run`).

    Returns:
        A :class:`LangevinRun`; from ``lr * curvature >= 2`` on a quadratic the chains diverge.

    References:
        Wei, Damian & Lee (2026), arXiv:2603.06028.
    """
    check_callable(grad_fn, name="grad_fn")
    x0 = _check_chains(x0, name="x0")
    lr = check_positive(lr, name="lr")
    b = _check_beta(beta, x0)
    steps = check_count(steps, name="steps", minimum=0)
    record_every = check_count(record_every, name="record_every")
    gen = as_generator(generator, x0.device)
    scale = _noise_scale(lr, b)

    def step(x, t, lr_t):
        g = _check_grad(grad_fn(x), x)
        return x - lr * g + scale * torch.randn(x.shape, generator=gen, dtype=x.dtype, device=x.device)

    out = run(step, x0, steps=steps, lr=lr, record_every=record_every, blowup=blowup, batched=True)
    return LangevinRun(steps=out.steps, params=out.history["params"], final=out.state, diverged=out.diverged,
                       diverged_at=out.diverged_at)


def ula_stationary_variance(*, lr: float, curvature: float, beta: float = 1.0) -> float:
    """The exact stationary variance of ULA on ``L(x) = curvature x^2 / 2`` (eq-langevin-ula-variance).

    ``v = (1 - lr h)^2 v + 2 lr / beta`` gives ``v = 1 / (beta h (1 - lr h / 2))``: the Gibbs variance
    ``1 / (beta h)`` inflated by the step, and infinite from ``lr h = 2`` on (GD's stability threshold).

    Args:
        lr: step ``eta > 0``.
        curvature: ``h > 0``.
        beta: inverse temperature ``> 0``.

    Returns:
        The variance, ``inf`` when ``lr * curvature >= 2``.

    References:
        Wei, Damian & Lee (2026), arXiv:2603.06028 (the ULA they build on).
    """
    lr, h = check_positive(lr, name="lr"), check_positive(curvature, name="curvature")
    beta = check_positive(beta, name="beta")
    if lr * h >= 2:
        return math.inf
    return 1.0 / (beta * h * (1.0 - lr * h / 2.0))


# --- spherical Langevin -----------------------------------------------------------------------------

def tangent(theta: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The projection ``P_theta^perp v = v - <theta, v> theta`` on the tangent space of the unit sphere.

    Args:
        theta: unit vectors, shape ``(..., d)``; v: vectors of the same shape.

    Returns:
        Shape ``(..., d)``, orthogonal to ``theta`` (eq-langevin-sphere).
    """
    theta, v = _finite(theta, name="theta"), _finite(v, name="v")
    if theta.shape != v.shape:
        raise ValueError(f"v: expected the shape of theta {tuple(theta.shape)}, got {tuple(v.shape)}")
    return v - (theta * v).sum(-1, keepdim=True) * theta


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp(min=torch.finfo(x.dtype).tiny)


def spherical_step(theta: torch.Tensor, grad: torch.Tensor, *, lr: float, beta,
                   noise: torch.Tensor | None = None, generator: int | torch.Generator | None = None) -> torch.Tensor:
    """One spherical Langevin step (eq-langevin-sphere).

    ``theta <- normalise(theta - lr P grad + sqrt(2 lr / beta) P xi)`` with ``P = I - theta theta^T``,
    the projection on the tangent space; ``beta = inf`` is projected (Riemannian) GD.

    Args:
        theta: unit vectors, shape ``(M, d)``.
        grad: the Euclidean gradient of the loss at ``theta``, shape ``(M, d)``.
        lr: step ``eta > 0``.
        beta: inverse temperature ``> 0`` (a number or one per chain; ``inf`` for GD).
        noise: the standard normal ``xi``, shape ``(M, d)``; drawn from ``generator`` when ``None``.
        generator: seed or generator for the noise.

    Returns:
        Unit vectors, shape ``(M, d)``.

    References:
        Wei, Damian & Lee (2026), arXiv:2603.06028.
    """
    theta = _check_chains(theta, name="theta")
    lr = check_positive(lr, name="lr")
    b = _check_beta(beta, theta)
    grad = _check_grad(_finite(grad, name="grad"), theta, "grad").to(theta.dtype)
    xi = _draw(noise, theta, generator)
    return _normalise(theta + tangent(theta, -lr * grad + _noise_scale(lr, b) * xi))


@dataclass(frozen=True)
class SphericalRun(Record):
    """Spherical Langevin chains and their averaged iterates.

    Attributes:
        steps: recorded steps, shape ``(K,)``.
        overlaps: ``<theta_t, reference>`` of the last iterate, shape ``(K, M)`` (``(0, M)`` without a reference).
        average_overlaps: the same for the running average; before the window starts, the iterate itself.
        last: the last iterate, shape ``(M, d)``.
        average: normalised mean of the iterates of steps ``average_from .. steps``, shape ``(M, d)``.
        diverged, diverged_at: as in :mod:`lessons_lib.run` (a normalised chain diverges only through NaN).
    """

    steps: torch.Tensor
    overlaps: torch.Tensor
    average_overlaps: torch.Tensor
    last: torch.Tensor
    average: torch.Tensor
    diverged: torch.Tensor
    diverged_at: torch.Tensor


def spherical_langevin(grad_fn: GradFn, theta0: torch.Tensor, *, lr: float, beta, steps: int,
                       generator: int | torch.Generator = 0, average_from: int | Sequence[int] = 0,
                       reference: torch.Tensor | None = None, record_every: int = 1) -> SphericalRun:
    """Run ``M`` spherical Langevin chains (eq-langevin-sphere) and average their iterates (eq-langevin-average).

    The average is ``normalise(sum_{t = average_from}^{steps} theta_t)``; the factor ``1 / |W|`` does not
    matter after normalising. Several windows of the same chains cost one run: pass a sequence of starts.

    Args:
        grad_fn: ``(M, d) -> (M, d)``, the Euclidean gradient of each chain's loss (it is projected here).
        theta0: the starts, shape ``(M, d)`` (normalised here).
        lr: step ``eta > 0``.
        beta: inverse temperature ``> 0``, a number or ``M`` numbers; ``inf`` is projected GD.
        steps: number of steps.
        generator: seed or generator of the noise.
        average_from: first step of the averaging window, ``0 <= average_from <= steps``; or a sequence of
            ``W`` such starts.
        reference: ``theta*``, shape ``(d,)`` or ``(M, d)``, for the recorded overlaps; ``None`` records none.
        record_every: recording interval.

    Returns:
        A :class:`SphericalRun`; with ``W`` window starts, ``average`` has shape ``(W, M, d)`` and
        ``average_overlaps`` shape ``(K, W, M)``.

    References:
        Wei, Damian & Lee (2026), arXiv:2603.06028.
    """
    check_callable(grad_fn, name="grad_fn")
    theta0 = _check_chains(theta0, name="theta0")
    if bool((torch.linalg.vector_norm(theta0, dim=-1) == 0).any()):
        raise ValueError("theta0: a start is the zero vector and cannot be normalised")
    lr = check_positive(lr, name="lr")
    b = _check_beta(beta, theta0)
    steps = check_count(steps, name="steps", minimum=0)
    single = not isinstance(average_from, (list, tuple))
    starts = [average_from] if single else list(average_from)
    if not starts:
        raise ValueError("average_from: expected a start or a non-empty sequence of starts")
    starts = [check_count(a, name="average_from", minimum=0) for a in starts]
    if max(starts) > steps:
        raise ValueError(f"average_from: must be <= steps = {steps}, got {max(starts)}")
    record_every = check_count(record_every, name="record_every")
    ref = None
    if reference is not None:
        ref = as_tensor(reference, name="reference", dtype=theta0.dtype, device=theta0.device)
        if ref.shape not in (theta0.shape[1:], theta0.shape):
            raise ValueError(f"reference: expected shape (d,) or (M, d) = {tuple(theta0.shape)}, "
                             f"got {tuple(ref.shape)}")
        ref = ref.expand(theta0.shape)
    gen = as_generator(generator, theta0.device)
    scale = _noise_scale(lr, b)
    theta0 = _normalise(theta0)
    start = torch.tensor(starts, device=theta0.device).reshape(1, -1, 1)  # (1, W, 1)

    def step(state, t, lr_t):
        theta, total = state  # (M, d), (M, W, d)
        g = _check_grad(grad_fn(theta), theta)
        xi = torch.randn(theta.shape, generator=gen, dtype=theta.dtype, device=theta.device)
        new = _normalise(theta + tangent(theta, -lr * g + scale * xi))
        return new, torch.where(start <= t + 1, total + new.unsqueeze(1), total)

    def averaged(theta, total):  # (M, W, d); an empty window stands for the iterate itself
        empty = (total == 0).all(dim=-1, keepdim=True)
        return torch.where(empty, theta.unsqueeze(1), _normalise(total))

    def record(state, t):
        if ref is None:
            return {}
        theta, total = state
        return {"last": (theta * ref).sum(-1), "average": (averaged(theta, total) * ref.unsqueeze(1)).sum(-1).T}

    total0 = torch.where(start == 0, theta0.unsqueeze(1), torch.zeros(()).to(theta0))
    out = run(step, (theta0, total0), steps=steps, lr=lr, record=record, record_every=record_every, batched=True,
              blowup=10.0 * (steps + 2) * len(starts))
    theta, total = out.state
    average = averaged(theta, total).transpose(0, 1)  # (W, M, d)
    M = theta0.shape[0]
    over = out.history.get("average", torch.zeros((0, len(starts), M), dtype=theta0.dtype))
    return SphericalRun(steps=out.steps, overlaps=out.history.get("last", torch.zeros((0, M), dtype=theta0.dtype)),
                        average_overlaps=over[:, 0] if single else over, last=theta,
                        average=average[0] if single else average, diverged=out.diverged,
                        diverged_at=out.diverged_at)


# --- information exponent and smoothing --------------------------------------------------------------

def hermite(k: int, x) -> torch.Tensor:
    """The probabilists' Hermite polynomial ``He_k(x)`` by its three-term recurrence.

    ``He_0 = 1``, ``He_1 = x``, ``He_{j+1} = x He_j - j He_{j-1}``; orthogonal under ``N(0, 1)`` with
    ``E[He_j He_k] = k! delta_jk`` (eq-langevin-information).

    Args:
        k: degree ``>= 0``.
        x: points, any shape (float64 unless a float tensor is given).

    Returns:
        ``He_k(x)``, the shape of ``x``.
    """
    k = check_count(k, name="k", minimum=0)
    x = _finite(x, name="x") if isinstance(x, torch.Tensor) and x.is_floating_point() else as_tensor(x, name="x")
    prev, cur = torch.ones_like(x), x.clone()
    if k == 0:
        return prev
    for j in range(1, k):
        prev, cur = cur, x * cur - j * prev
    return cur


def _overlap(m, name: str = "m") -> torch.Tensor:
    m = m if isinstance(m, torch.Tensor) and m.is_floating_point() else as_tensor(m, name=name)
    if not bool(torch.isfinite(m).all()) or bool((m.abs() > 1).any()):
        raise ValueError(f"{name}: an overlap must lie in [-1, 1]")
    return m


def single_index_population_loss(m, *, k: int) -> torch.Tensor:
    """``(1/2) E (He_k(<theta*, x>) - He_k(<theta, x>))^2 = k! (1 - m^k)`` for unit vectors with overlap ``m``.

    With ``x ~ N(0, I)`` the two projections are standard normals with correlation ``m``, and
    ``E[He_k(z*) He_k(z)] = k! m^k`` (eq-langevin-information). Near ``m = 0`` the loss is flat to
    order ``k``: its slope ``k! k m^{k-1}`` is of size ``d^{-(k-1)/2}`` at a random start.

    Args:
        m: overlaps in ``[-1, 1]``, any shape.
        k: the degree, which is the information exponent ``k* = k`` here.

    Returns:
        The loss, the shape of ``m``.

    References:
        Ben Arous, Gheissari & Jagannath (2021), arXiv:2003.10409.
    """
    k = check_count(k, name="k")
    m = _overlap(m)
    return math.factorial(k) * (1 - m ** k)


def single_index_loss_estimate(m: float, *, k: int, d: int, samples: int,
                               generator: int | torch.Generator = 0) -> float:
    """Monte Carlo estimate of ``(1/2) E (He_k(<theta*, x>) - He_k(<theta, x>))^2`` with ``x ~ N(0, I_d)``.

    ``theta* = e_1`` and ``theta = m e_1 + sqrt(1 - m^2) e_2``; the oracle for
    :func:`single_index_population_loss` (eq-langevin-information).

    Args:
        m: overlap in ``[-1, 1]``; k: degree ``>= 1``; d: dimension ``>= 2``; samples: number of ``x``.
        generator: seed or generator.

    Returns:
        The estimate.
    """
    m = float(_overlap(check_real(m, name="m")))
    k, d = check_count(k, name="k"), check_count(d, name="d", minimum=2)
    samples = check_count(samples, name="samples")
    gen = as_generator(generator, default_device())
    x = torch.randn(samples, d, generator=gen, dtype=DTYPE, device=gen.device)
    z_star, z = x[:, 0], m * x[:, 0] + math.sqrt(1 - m * m) * x[:, 1]
    return float(0.5 * ((hermite(k, z_star) - hermite(k, z)) ** 2).mean())


def smoothed_population_loss(m, *, lam: float, d: int) -> torch.Tensor:
    """Population tensor-PCA loss ``-m^3`` averaged over a cap of radius ``lam`` (eq-langevin-smoothed).

    ``L_lam(theta) = E_z L((theta + lam z) / ||theta + lam z||)`` with ``z`` uniform on the unit sphere of
    the tangent space at ``theta``: ``||theta + lam z|| = sqrt(1 + lam^2)`` and ``<theta*, z>`` has mean 0
    and variance ``(1 - m^2)/(d - 1)``, so
    ``L_lam(m) = -[m^3 + 3 lam^2 m (1 - m^2)/(d - 1)] / (1 + lam^2)^{3/2}``, linear in ``m`` at the equator.

    Args:
        m: overlaps in ``[-1, 1]``, any shape.
        lam: smoothing radius ``>= 0``.
        d: dimension ``>= 2``.

    Returns:
        The smoothed loss, the shape of ``m``.

    References:
        Damian, Nichani, Ge & Lee (2023), arXiv:2305.10633.
    """
    lam = check_positive(lam, name="lam", allow_zero=True)
    d = check_count(d, name="d", minimum=2)
    m = _overlap(m)
    return -(m ** 3 + 3 * lam ** 2 * m * (1 - m ** 2) / (d - 1)) / (1 + lam ** 2) ** 1.5


def smoothed_loss_estimate(m: float, *, lam: float, d: int, samples: int,
                           generator: int | torch.Generator = 0) -> float:
    """Monte Carlo estimate of the smoothed loss: the mean of ``-<theta*, normalise(theta + lam z)>^3``.

    ``z`` is uniform on the unit sphere orthogonal to ``theta`` (eq-langevin-smoothed); the oracle for
    :func:`smoothed_population_loss`.

    Args:
        m: overlap in ``[-1, 1]``; lam: radius ``>= 0``; d: dimension ``>= 2``; samples: number of ``z``.
        generator: seed or generator.

    Returns:
        The estimate.
    """
    m = float(_overlap(check_real(m, name="m")))
    lam = check_positive(lam, name="lam", allow_zero=True)
    d, samples = check_count(d, name="d", minimum=2), check_count(samples, name="samples")
    gen = as_generator(generator, default_device())
    star = torch.zeros(d, dtype=DTYPE, device=gen.device)
    star[0] = 1.0
    theta = torch.zeros_like(star)
    theta[0], theta[1] = m, math.sqrt(1 - m * m)
    z = torch.randn(samples, d, generator=gen, dtype=DTYPE, device=gen.device)
    z = _normalise(tangent(theta.expand_as(z), z))
    return float(-(_normalise(theta + lam * z) @ star).pow(3).mean())


# --- tensor PCA ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TensorPCA(Record):
    """A tensor-PCA instance ``T = theta*^{(x)3} + Z_sym / sqrt(n)``.

    Attributes:
        tensor: ``T``, shape ``(d, d, d)`` or ``(B, d, d, d)``, symmetric.
        signal: ``theta*``, unit vectors of shape ``(d,)`` or ``(B, d)``.
        n: the sample size the noise stands for.
    """

    tensor: torch.Tensor
    signal: torch.Tensor
    n: float


def tensor_pca(d: int, *, n: float, generator: int | torch.Generator = 0, batch: int | None = None,
               device=None) -> TensorPCA:
    """Draw tensor PCA instances (eq-langevin-tensor-pca).

    ``Z`` has i.i.d. ``N(0, 1)`` entries, symmetrised by averaging over the 6 permutations of its
    indices; ``theta*`` is uniform on the sphere. ``n`` plays the role of the number of samples.

    Args:
        d: dimension ``>= 2``.
        n: sample size ``> 0`` (the noise is ``Z_sym / sqrt(n)``).
        generator: seed or generator.
        batch: ``None`` for one instance, else the number ``B`` of independent instances.
        device: where to draw (default :func:`lessons_lib.backend.default_device`).

    Returns:
        A :class:`TensorPCA`.

    References:
        Richard & Montanari (2014), arXiv:1411.1076; Wei, Damian & Lee (2026), arXiv:2603.06028.
    """
    d = check_count(d, name="d", minimum=2)
    n = check_positive(n, name="n")
    B = 1 if batch is None else check_count(batch, name="batch")
    gen = as_generator(generator, device if device is not None else default_device())
    dev = gen.device
    star = _normalise(torch.randn(B, d, generator=gen, dtype=DTYPE, device=dev))
    Z = torch.randn(B, d, d, d, generator=gen, dtype=DTYPE, device=dev)
    Z = sum(Z.permute(0, *(1 + p for p in perm)) for perm in permutations(range(3))) / 6
    T = torch.einsum("bi,bj,bk->bijk", star, star, star) + Z / math.sqrt(n)
    if batch is None:
        return TensorPCA(tensor=T[0], signal=star[0], n=n)
    return TensorPCA(tensor=T, signal=star, n=n)


def _check_tensor(T) -> torch.Tensor:
    T = _finite(T, name="T")
    if T.ndim not in (3, 4) or len(set(T.shape[-3:])) != 1:
        raise ValueError(f"T: expected shape (d, d, d) or (B, d, d, d), got {tuple(T.shape)}")
    return T


def tensor_pca_gradient(T: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """The Euclidean gradient ``-3 T(., theta, theta)`` of ``L(theta) = -<T, theta^{(x)3}>`` (eq-langevin-tensor-pca).

    Args:
        T: a symmetric tensor ``(d, d, d)`` shared by all chains, or ``(B, d, d, d)``, one per group of
            ``M / B`` consecutive chains.
        theta: the chains, shape ``(M, d)``.

    Returns:
        Shape ``(M, d)``.
    """
    T = _check_tensor(T)
    theta = _finite(theta, name="theta").to(T.dtype)
    B = 1 if T.ndim == 3 else T.shape[0]
    if theta.ndim != 2 or theta.shape[1] != T.shape[-1] or theta.shape[0] % B:
        raise ValueError(f"theta: expected shape (M, {T.shape[-1]}) with M a multiple of {B}, got {tuple(theta.shape)}")
    groups = theta.reshape(B, -1, theta.shape[1])
    d = T.shape[-1]
    inner = torch.bmm(groups, T.reshape(B, d * d, d).transpose(1, 2))  # T(theta, ., .) flattened, (B, C, d*d)
    inner = inner.reshape(B, groups.shape[1], d, d)
    return -3 * (inner @ groups.unsqueeze(-1)).squeeze(-1).reshape(theta.shape)


def tensor_pca_loss(T: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """``L(theta) = -<T, theta^{(x)3}>`` per chain, shape ``(M,)`` (shapes as in :func:`tensor_pca_gradient`)."""
    g = tensor_pca_gradient(T, theta)
    return (g * theta).sum(-1) / 3


def _signed(v: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
    """Unit ``v`` with the sign that makes ``<T, v^{(x)3}> >= 0`` (the cube is odd: ``-theta*`` is a maximum of L)."""
    v = _normalise(v)
    value = torch.einsum("...ijk,...i,...j,...k->...", T, v, v, v)
    return torch.where(value.unsqueeze(-1) < 0, -v, v)


def partial_trace(T: torch.Tensor) -> torch.Tensor:
    """The partial-trace estimator ``normalise(sum_a T_{i a a})``, signed so that ``<T, v^3> >= 0``.

    Its signal is ``theta*`` and its noise has norm of order ``d / sqrt(n)``: it needs ``n >> d^2``. The
    unnormalised ``v_i = sum_a T_{iaa}`` is, to first order in ``beta``, the direction of the mean of the Gibbs
    density ``exp(-beta L)`` on the sphere (eq-langevin-gibbs-mean), and the gradient of the linear term of the
    loss smoothed over a cap: the direction that a hot chain's average finds at the equator.

    Args:
        T: shape ``(d, d, d)`` or ``(B, d, d, d)``.

    Returns:
        Unit vectors, shape ``(d,)`` or ``(B, d)``.
    """
    T = _check_tensor(T)
    return _signed(torch.diagonal(T, dim1=-2, dim2=-1).sum(-1), T)


def tensor_unfolding(T: torch.Tensor) -> torch.Tensor:
    """The tensor-unfolding estimator: the top left singular vector of the ``d x d^2`` unfolding of ``T``.

    Signed so that ``<T, v^3> >= 0``; it succeeds for ``n >> d^{3/2}`` (Richard & Montanari 2014).

    Args:
        T: shape ``(d, d, d)`` or ``(B, d, d, d)``.

    Returns:
        Unit vectors, shape ``(d,)`` or ``(B, d)``.
    """
    T = _check_tensor(T)
    d = T.shape[-1]
    U, _, _ = torch.linalg.svd(T.reshape(*T.shape[:-3], d, d * d), full_matrices=False)
    return _signed(U[..., 0], T)
