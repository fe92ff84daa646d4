"""Levenberg–Marquardt–Langevin: damped curvature as a preconditioner of Langevin steps and of diffusion sampling.

Two halves, one idea: precondition a noisy step by ``(H + lam I)^{-1}``, a curvature damped as in
Levenberg–Marquardt.

* **Preconditioned Langevin** on ``U(x)``:
  ``x <- x - lr P grad U(x) + sqrt(2 lr) P^{1/2} xi`` with ``P = (H + lam I)^{-1}``
  (eq-lml-langevin). ``lam -> 0`` is Newton–Langevin, ``lam -> infinity`` plain Langevin with step
  ``lr / lam``. On the Gaussian ``N(0, H^{-1})`` each eigen-direction of curvature ``h`` is an AR(1)
  chain with lag-1 autocorrelation ``1 - lr h / (h + lam)`` (eq-lml-autocorr); the chain's covariance
  solves a discrete Lyapunov equation (eq-lml-lyapunov).
* **LML in a diffusion sampler**: a rank-one curvature ``eps_bar eps_bar^T`` from an exponential
  moving average of the noise predictions, damped by ``lam`` and inverted with Sherman–Morrison
  (eq-lml-correct), corrects the noise that DDIM's "direction to x_t" uses (eq-lml-ddim). With
  ``kappa = 0`` the correction is the identity.

The diffusion toy is a variance-preserving (VP) diffusion with a linear ``beta(t)`` from 0.1 to 20 on
``t in [0, 1]``, started from a mixture of isotropic Gaussians, whose noise prediction
``eps(x, t) = -sqrt(1 - abar_t) grad log p_t(x)`` is exact (eq-lml-mixture-eps): nothing is trained.

References:
    Wang, Yin et al. (2025), Unleashing High-Quality Image Generation in Diffusion Sampling Using
    Second-Order Levenberg-Marquardt-Langevin, ICCV, arXiv:2505.24222.
    Song, Meng & Ermon (2021), Denoising Diffusion Implicit Models, ICLR, arXiv:2010.02502.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from .backend import (
    Record,
    as_generator,
    as_tensor,
    check_callable,
    check_count,
    check_float_tensor,
    check_positive,
    check_real,
)
from .run import run

BETA_MIN, BETA_MAX = 0.1, 20.0  # the linear VP schedule beta(t) = BETA_MIN + t (BETA_MAX - BETA_MIN)
T_END = 1e-3  # DDIM's last time: the sampler runs on t uniform from 1 down to T_END


# --------------------------------------------------------------------------- the damped rank-one correction

def _check_unit(value, *, name: str) -> float:
    v = check_real(value, name=name)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{name}: must lie in [0, 1], got {v}")
    return v


def _correct(eps: torch.Tensor, eps_prev: torch.Tensor | None, lam, kappa, renormalize: bool) -> torch.Tensor:
    """eq-lml-correct on rows of ``eps`` (n, d); ``lam``, ``kappa`` numbers or (n, 1) tensors. No checks."""
    bar = eps if eps_prev is None else kappa * eps_prev + (1 - kappa) * eps
    coef = (bar * eps).sum(-1, keepdim=True) / (lam + (bar * bar).sum(-1, keepdim=True))
    d = eps - coef * bar
    if not renormalize:
        return d
    norm_d = d.norm(dim=-1, keepdim=True)
    scale = eps.norm(dim=-1, keepdim=True) / torch.where(norm_d > 0, norm_d, torch.ones_like(norm_d))
    return d * scale


def lm_correct(eps: torch.Tensor, eps_prev: torch.Tensor | None, *, lam: float, kappa: float,
               renormalize: bool = True) -> torch.Tensor:
    """The LML correction of a noise prediction: a damped rank-one curvature inverted by Sherman–Morrison.

    Per sample (row) ``eps_i``, with the moving average ``eps_bar = kappa eps_prev + (1 - kappa) eps``
    (``eps_bar = eps`` at the first step, ``eps_prev=None``):
    ``d = lam (lam I + eps_bar eps_bar^T)^{-1} eps = eps - eps_bar (eps_bar^T eps) / (lam + ||eps_bar||^2)``,
    then ``d <- d ||eps|| / ||d||`` (eq-lml-correct). With ``kappa = 0``, ``d`` is parallel to ``eps`` and
    the rescaling returns ``eps`` itself: the correction is switched off. ``lam -> infinity`` gives
    ``eps``; ``lam -> 0`` the part of ``eps`` orthogonal to ``eps_bar``.

    Args:
        eps: the noise predictions, shape ``(n, d)``: one sample per row.
        eps_prev: the previous step's (uncorrected) predictions, shape ``(n, d)``, or ``None``.
        lam: the damping ``lambda > 0``.
        kappa: the moving-average weight ``kappa`` in ``[0, 1]``.
        renormalize: rescale each corrected row to the norm of its ``eps`` (the paper's choice).

    Returns:
        The corrected directions ``d``, shape ``(n, d)``, dtype and device of ``eps``.

    Raises:
        ValueError: naming ``lam`` (not > 0), ``kappa`` (outside [0, 1]), ``eps`` or ``eps_prev`` (shape).

    References:
        Wang, Yin et al. (2025), Unleashing High-Quality Image Generation in Diffusion Sampling Using
        Second-Order Levenberg-Marquardt-Langevin, arXiv:2505.24222.
    """
    eps = as_tensor(check_float_tensor(eps, name="eps"), name="eps", dtype=None)
    if eps.ndim != 2:
        raise ValueError(f"eps: expected shape (n, d), one sample per row, got {tuple(eps.shape)}")
    if eps_prev is not None:
        eps_prev = as_tensor(check_float_tensor(eps_prev, name="eps_prev"), name="eps_prev", dtype=eps.dtype,
                             device=eps.device)
        if eps_prev.shape != eps.shape:
            raise ValueError(f"eps_prev: expected the shape of eps {tuple(eps.shape)}, got {tuple(eps_prev.shape)}")
    lam = check_positive(lam, name="lam")
    kappa = _check_unit(kappa, name="kappa")
    if not isinstance(renormalize, bool):
        raise ValueError(f"renormalize: expected True or False, got {renormalize!r}")
    return _correct(eps, eps_prev, lam, kappa, renormalize)


# --------------------------------------------------------------------------- preconditioned Langevin

def lm_preconditioner(H: torch.Tensor, *, lam: float) -> torch.Tensor:
    """The Levenberg–Marquardt preconditioner ``P = (H + lam I)^{-1}`` of a symmetric curvature ``H``.

    ``lam = 0`` is Newton's ``H^{-1}`` (``H`` must then be positive definite); a large ``lam`` gives
    ``I / lam``, plain gradient steps of size ``lr / lam`` (eq-lml-langevin).

    Args:
        H: symmetric matrix, shape ``(d, d)``.
        lam: damping ``lambda >= 0``.

    Returns:
        ``P``, shape ``(d, d)``, symmetric positive definite, dtype and device of ``H``.

    Raises:
        ValueError: naming ``H`` (not square and symmetric, or ``H + lam I`` not positive definite) or ``lam``.
    """
    H = as_tensor(H, name="H", dtype=None)
    if not H.is_floating_point() or H.ndim != 2 or H.shape[0] != H.shape[1]:
        raise ValueError(f"H: expected a square floating-point matrix, got shape {tuple(H.shape)}")
    if not torch.allclose(H, H.T, rtol=1e-10, atol=1e-12):
        raise ValueError("H: expected a symmetric matrix")
    lam = check_positive(lam, name="lam", allow_zero=True)
    vals, vecs = torch.linalg.eigh(H + lam * torch.eye(H.shape[0], dtype=H.dtype, device=H.device))
    if float(vals.min()) <= 0:
        raise ValueError(f"H: H + lam I must be positive definite, its smallest eigenvalue is {float(vals.min()):.3g}")
    return (vecs / vals) @ vecs.T


def _sqrt_spd(P: torch.Tensor) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(P)
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T


def _check_precond(precond, d: int, like: torch.Tensor) -> torch.Tensor:
    if precond is None:
        return torch.eye(d, dtype=like.dtype, device=like.device)
    P = as_tensor(precond, name="precond", dtype=like.dtype, device=like.device)
    tol = 1e-10 if P.dtype == torch.float64 else 1e-5
    if P.shape != (d, d) or not torch.allclose(P, P.T, rtol=tol, atol=tol * 1e-2):
        raise ValueError(f"precond: expected a symmetric ({d}, {d}) matrix, got shape {tuple(P.shape)}")
    if float(torch.linalg.eigvalsh(P).min()) <= 0:
        raise ValueError("precond: must be positive definite")
    return P


def langevin_step(x: torch.Tensor, grad: torch.Tensor, *, lr: float | torch.Tensor, precond: torch.Tensor,
                  precond_sqrt: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """One preconditioned Langevin step, ``x - lr P grad + sqrt(2 lr) P^{1/2} xi`` (eq-lml-langevin).

    Args:
        x: the chains, shape ``(R, d)``.
        grad: ``grad U(x)``, shape ``(R, d)``.
        lr: the step ``eta``: a number, or a tensor of shape ``(R,)`` (one per chain).
        precond: ``P``, shape ``(d, d)``; precond_sqrt: its symmetric square root.
        noise: the standard normal draw ``xi``, shape ``(R, d)`` (injected, so the step is exact to test).

    Returns:
        The new chains, shape ``(R, d)``.
    """
    for name, value in (("x", x), ("grad", grad), ("noise", noise), ("precond", precond),
                        ("precond_sqrt", precond_sqrt)):
        check_float_tensor(value, name=name)
    if grad.shape != x.shape or noise.shape != x.shape:
        raise ValueError(f"noise: grad and noise must have the shape of x {tuple(x.shape)}")
    if len({v.dtype for v in (x, grad, noise, precond, precond_sqrt)}) != 1:
        raise ValueError(f"x: x, grad, noise, precond and precond_sqrt must share one dtype, x has {x.dtype}")
    if not isinstance(lr, torch.Tensor):
        lr = check_positive(lr, name="lr", allow_zero=True)
    elif lr.ndim == 1:  # one step per chain (a batched run with per-run rates)
        lr = lr.unsqueeze(-1)
    return x - lr * grad @ precond + (2 * lr) ** 0.5 * noise @ precond_sqrt


@dataclass(frozen=True)
class Chains(Record):
    """Preconditioned Langevin chains (from :func:`preconditioned_langevin`).

    Attributes:
        samples: the recorded states, shape ``(K, R, d)`` (``K`` recorded steps, ``R`` chains).
        steps: the recorded step numbers, shape ``(K,)``.
        diverged: bool, shape ``(R,)``; diverged_at: the step each chain left the ball, ``-1`` if never.
    """

    samples: torch.Tensor
    steps: torch.Tensor
    diverged: torch.Tensor
    diverged_at: torch.Tensor


def preconditioned_langevin(grad_fn: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, *,
                            lr: float | Sequence[float],
                            precond: torch.Tensor | None = None, steps: int, generator: int | torch.Generator,
                            record_every: int = 1, blowup: float = 1e6) -> Chains:
    """Run ``R`` preconditioned Langevin chains (eq-lml-langevin) through :func:`lessons_lib.run.run`.

    ``x <- x - lr P grad U(x) + sqrt(2 lr) P^{1/2} xi``: with ``P = I`` plain (unadjusted) Langevin, with
    ``P = lm_preconditioner(H, lam=lam)`` Levenberg–Marquardt–Langevin. It samples ``exp(-U)`` up to a
    discretisation bias of order ``lr``.

    Args:
        grad_fn: ``grad U`` of a batch, ``(R, d) -> (R, d)``.
        x0: the chains' start, shape ``(R, d)``.
        lr: the step ``eta > 0``, or ``R`` steps, one per chain.
        precond: ``P``, symmetric positive definite ``(d, d)``; ``None`` for the identity.
        steps: number of steps.
        generator: int seed or ``torch.Generator`` for the noise.
        record_every: recording interval.
        blowup: divergence radius relative to ``max(1, ||x0||)`` per chain (see :mod:`lessons_lib.run`).

    Returns:
        :class:`Chains`.
    """
    check_callable(grad_fn, name="grad_fn")
    x0 = as_tensor(x0, name="x0", dtype=None)
    if not x0.is_floating_point() or x0.ndim != 2:
        raise ValueError(f"x0: expected a floating-point tensor of shape (R, d), got {tuple(x0.shape)}")
    if isinstance(lr, (list, tuple, torch.Tensor)):
        lr = [check_positive(float(v), name="lr") for v in lr]
    else:
        lr = check_positive(lr, name="lr")
    P = _check_precond(precond, x0.shape[1], x0)
    S = _sqrt_spd(P)
    gen = as_generator(generator, x0.device)

    def step(x, t, eta):
        xi = torch.randn(x.shape, generator=gen, dtype=x.dtype, device=x.device)
        return langevin_step(x, grad_fn(x), lr=eta, precond=P, precond_sqrt=S, noise=xi)

    out = run(step, x0, steps=check_count(steps, name="steps", minimum=0), lr=lr, record_every=record_every,
              blowup=blowup, batched=True)
    return Chains(samples=out.history["params"], steps=out.steps, diverged=out.diverged,
                  diverged_at=out.diverged_at)


@dataclass(frozen=True)
class Mixing(Record):
    """The exact statistics of (LM-)Langevin on ``N(0, H^{-1})`` along the eigen-directions of ``H``.

    Attributes:
        curvatures: the eigenvalues ``h`` of ``H``, ascending, shape ``(d,)``.
        autocorrelation: lag-1 autocorrelation ``rho = 1 - lr h p`` per direction (eq-lml-autocorr).
        integrated_time: ``(1 + rho) / (1 - rho)``, the steps per independent sample (inf where ``rho >= 1``).
        variance_ratio: the chain's stationary variance over the target's ``1/h``, ``1 / (1 - lr h p / 2)``.
        stable: whether ``|rho| < 1`` in every direction (``lr h p < 2``).
        covariance: the stationary covariance (eq-lml-lyapunov), shape ``(d, d)``; NaN where not stable.
    """

    curvatures: torch.Tensor
    autocorrelation: torch.Tensor
    integrated_time: torch.Tensor
    variance_ratio: torch.Tensor
    stable: bool
    covariance: torch.Tensor


def stationary_covariance(H: torch.Tensor, *, lr: float, precond: torch.Tensor | None = None) -> torch.Tensor:
    """The stationary covariance of preconditioned Langevin on ``U = x^T H x / 2`` by a dense Lyapunov solve.

    The chain is ``x' = A x + sqrt(2 lr) P^{1/2} xi`` with ``A = I - lr P H``; its covariance ``S`` solves
    ``S = A S A^T + 2 lr P`` (eq-lml-lyapunov), solved here as a ``d^2 x d^2`` linear system.

    Args:
        H: symmetric positive definite, shape ``(d, d)``.
        lr: the step ``eta > 0``.
        precond: ``P``, shape ``(d, d)``; ``None`` for the identity.

    Returns:
        ``S``, shape ``(d, d)``.

    Raises:
        ValueError: naming ``lr`` when the chain is unstable (a spectral radius of ``A`` >= 1), or a bad argument.
    """
    H = as_tensor(H, name="H", dtype=None)
    if not H.is_floating_point() or H.ndim != 2 or H.shape[0] != H.shape[1]:
        raise ValueError(f"H: expected a square floating-point matrix, got shape {tuple(H.shape)}")
    lr = check_positive(lr, name="lr")
    d = H.shape[0]
    P = _check_precond(precond, d, H)
    eye = torch.eye(d, dtype=H.dtype, device=H.device)
    A = eye - lr * P @ H
    if float(torch.linalg.eigvals(A).abs().max()) >= 1:
        raise ValueError("lr: the chain is unstable at this step (a spectral radius of I - lr P H >= 1)")
    K = torch.eye(d * d, dtype=H.dtype, device=H.device) - torch.kron(A, A)
    S = torch.linalg.solve(K, (2 * lr * P).reshape(-1)).reshape(d, d)
    return (S + S.T) / 2


def lm_langevin_mixing(H: torch.Tensor, *, lr: float, lam: float | None) -> Mixing:
    """How LM-Langevin mixes on ``N(0, H^{-1})``: per eigen-direction autocorrelation and variance, exactly.

    With ``P = (H + lam I)^{-1}`` each eigen-direction of curvature ``h`` is an AR(1) chain
    ``z' = rho z + sqrt(2 lr p) xi`` with ``p = 1 / (h + lam)`` and ``rho = 1 - lr h / (h + lam)``
    (eq-lml-autocorr); ``lam=None`` is plain Langevin (``p = 1``).

    Args:
        H: symmetric positive definite, shape ``(d, d)``.
        lr: the step ``eta > 0``.
        lam: damping ``>= 0``, or ``None`` for plain Langevin.

    Returns:
        :class:`Mixing`.
    """
    H = as_tensor(H, name="H", dtype=None)
    if not H.is_floating_point() or H.ndim != 2 or H.shape[0] != H.shape[1]:
        raise ValueError(f"H: expected a square floating-point matrix, got shape {tuple(H.shape)}")
    lr = check_positive(lr, name="lr")
    h = torch.linalg.eigvalsh((H + H.T) / 2)
    if float(h.min()) <= 0:
        raise ValueError("H: expected a positive definite matrix (the target N(0, H^-1) needs it)")
    if lam is None:
        p, P = torch.ones_like(h), None
    else:
        lam = check_positive(lam, name="lam", allow_zero=True)
        p, P = 1 / (h + lam), lm_preconditioner(H, lam=lam)
    x = lr * h * p
    rho = 1 - x
    stable = bool((x < 2).all())
    tau = torch.where(rho < 1, (1 + rho) / (1 - rho), torch.full_like(rho, math.inf))
    ratio = torch.where(x < 2, 1 / (1 - x / 2), torch.full_like(x, math.inf))
    cov = stationary_covariance(H, lr=lr, precond=P) if stable else torch.full_like(H, math.nan)
    return Mixing(curvatures=h, autocorrelation=rho, integrated_time=tau, variance_ratio=ratio, stable=stable,
                  covariance=cov)


# --------------------------------------------------------------------------- a diffusion with an exact score

@dataclass(frozen=True)
class GaussianMixture(Record):
    """A mixture of isotropic Gaussians ``sum_k w_k N(mu_k, std^2 I)``.

    Attributes:
        means: shape ``(K, d)``; std: the components' standard deviation; weights: shape ``(K,)``, summing to 1.
    """

    means: torch.Tensor
    std: float
    weights: torch.Tensor

    def sample(self, n: int, *, generator: int | torch.Generator, device=None) -> torch.Tensor:
        """``n`` draws, shape ``(n, d)`` (float64, on ``device`` or the default device)."""
        n = check_count(n, name="n")
        gen = as_generator(generator, device)
        means, weights = self.means.to(gen.device), self.weights.to(gen.device)
        k = torch.multinomial(weights, n, replacement=True, generator=gen)
        z = torch.randn((n, means.shape[1]), generator=gen, dtype=means.dtype, device=gen.device)
        return means[k] + self.std * z


def gaussian_mixture(means, std: float, weights=None) -> GaussianMixture:
    """A mixture of isotropic Gaussians (the data distribution of the diffusion toy).

    Args:
        means: the component means, shape ``(K, d)``.
        std: the components' standard deviation ``> 0``.
        weights: ``K`` positive weights (normalised here); ``None`` for equal weights.

    Returns:
        :class:`GaussianMixture` (float64, on the host).
    """
    means = as_tensor(means, name="means", device="cpu")
    if means.ndim != 2 or means.shape[0] == 0 or means.shape[1] == 0:
        raise ValueError(f"means: expected shape (K, d), got {tuple(means.shape)}")
    std = check_positive(std, name="std")
    if weights is None:
        w = torch.full((means.shape[0],), 1.0 / means.shape[0], dtype=torch.float64)
    else:
        w = as_tensor(weights, name="weights", device="cpu")
        if w.shape != (means.shape[0],) or bool((w <= 0).any()):
            raise ValueError(f"weights: expected {means.shape[0]} positive numbers, got {w.tolist()}")
        w = w / w.sum()
    return GaussianMixture(means=means, std=std, weights=w)


def ring_mixture(k: int = 8, *, radius: float = 2.0, std: float = 0.1) -> GaussianMixture:
    """``k`` equal Gaussians of standard deviation ``std`` evenly spaced on a circle of ``radius``.

    Returns:
        :class:`GaussianMixture` in 2-D.
    """
    k = check_count(k, name="k")
    radius = check_positive(radius, name="radius")
    angle = 2 * math.pi * torch.arange(k, dtype=torch.float64) / k
    return gaussian_mixture(radius * torch.stack([angle.cos(), angle.sin()], dim=1), std)


def alpha_bar(t) -> torch.Tensor:
    """``abar(t) = exp(-(BETA_MIN t + (BETA_MAX - BETA_MIN) t^2 / 2))``, the VP signal level (eq-lml-vp)."""
    t = as_tensor(t, name="t", dtype=None) if not isinstance(t, torch.Tensor) else t
    return torch.exp(-(BETA_MIN * t + 0.5 * (BETA_MAX - BETA_MIN) * t * t))


def _mixture_eps(x: torch.Tensor, abar: torch.Tensor, mixture: GaussianMixture) -> torch.Tensor:
    """eq-lml-mixture-eps for x (n, d) and abar broadcasting against (n, 1). No checks."""
    mu = mixture.means.to(x.device, x.dtype)
    a = abar.sqrt()
    var = abar * mixture.std ** 2 + 1 - abar  # every component's variance at t
    # log r_k = log w_k - ||a mu_k - x||^2 / (2 var) + const; the ||x||^2 term is the same for every k
    logits = mixture.weights.to(x.device, x.dtype).log() + (a * (x @ mu.T) - 0.5 * abar * (mu * mu).sum(-1)) / var
    resp = torch.softmax(logits, dim=-1)  # (n, K)
    score = (a * (resp @ mu) - x) / var
    return -(1 - abar).sqrt() * score


def mixture_eps(x: torch.Tensor, t, mixture: GaussianMixture) -> torch.Tensor:
    """The exact noise prediction ``eps(x, t) = -sqrt(1 - abar_t) grad log p_t(x)`` of a Gaussian mixture.

    Under the VP diffusion ``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) z`` the mixture stays a mixture,
    with means ``sqrt(abar_t) mu_k`` and variance ``s_t^2 = abar_t std^2 + 1 - abar_t``, so
    ``grad log p_t(x) = sum_k r_k(x) (sqrt(abar_t) mu_k - x) / s_t^2`` with the responsibilities
    ``r_k`` (eq-lml-mixture-eps). It is what a perfectly trained network would predict.

    Args:
        x: points, shape ``(n, d)``.
        t: diffusion time in ``(0, 1]``: a number, or a tensor of shape ``(n,)``.
        mixture: the data distribution (:func:`gaussian_mixture`).

    Returns:
        ``eps``, shape ``(n, d)``.
    """
    if not isinstance(mixture, GaussianMixture):
        raise ValueError(f"mixture: expected a GaussianMixture, got {type(mixture).__name__}")
    x = as_tensor(check_float_tensor(x, name="x"), name="x", dtype=None)
    if x.ndim != 2 or x.shape[1] != mixture.means.shape[1]:
        raise ValueError(f"x: expected shape (n, {mixture.means.shape[1]}), got {tuple(x.shape)}")
    t = as_tensor(t, name="t", dtype=x.dtype, device=x.device)
    if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != x.shape[0]) or bool((t <= 0).any() | (t > 1).any()):
        raise ValueError("t: expected a time in (0, 1], one number or one per row of x")
    return _mixture_eps(x, alpha_bar(t).reshape(-1, 1), mixture)


@dataclass(frozen=True)
class Samples(Record):
    """DDIM samples (from :func:`ddim_sample`).

    Attributes:
        samples: shape ``(n, d)``, or ``(S, n, d)`` for ``S`` settings of ``(lam, kappa)``.
        times: the sampler's time grid, from 1 down to ``T_END``, shape ``(steps + 1,)``.
        lam, kappa: the settings, shape ``(S,)`` (``S = 1`` for a single setting).
        diverged: bool, shape of ``samples`` without its last dimension.
    """

    samples: torch.Tensor
    times: torch.Tensor
    lam: torch.Tensor
    kappa: torch.Tensor
    diverged: torch.Tensor


def _settings(value, name: str, check) -> list[float]:
    if isinstance(value, (list, tuple)) or (isinstance(value, torch.Tensor) and value.ndim == 1):
        values = [check(float(v), name=name) for v in value]
        if not values:
            raise ValueError(f"{name}: expected at least one value")
        return values
    return [check(value, name=name)]


def ddim_sample(mixture: GaussianMixture, *, steps: int, n: int, lam: float | Sequence[float] = 1.0,
                kappa: float | Sequence[float] = 0.0, generator: int | torch.Generator,
                noise: torch.Tensor | None = None) -> Samples:
    """Deterministic DDIM with the exact ``eps`` of a mixture, its direction term corrected by LML.

    On the grid ``t_0 = 1 > t_1 > ... > t_steps = T_END`` (uniform), each step takes ``eps = eps(x, t_i)``,
    the data prediction ``x0_hat = (x - sqrt(1 - abar_i) eps) / sqrt(abar_i)`` (from the *uncorrected*
    ``eps``) and ``x <- sqrt(abar_{i+1}) x0_hat + sqrt(1 - abar_{i+1}) d`` with ``d = lm_correct(eps,
    eps_prev)`` (eq-lml-ddim); ``kappa = 0`` is plain DDIM. Runs through :func:`lessons_lib.run.run`
    with the ``S * n`` samples as batched runs; every setting starts from the same noise.

    Args:
        mixture: the data distribution.
        steps: number of sampling steps (network evaluations).
        n: number of samples per setting.
        lam: damping ``> 0``, or a sequence of ``S`` values.
        kappa: moving-average weight in ``[0, 1]``, or a sequence (broadcast against ``lam``).
        generator: int seed or ``torch.Generator`` for the starting noise.
        noise: the starting points ``x_T``, shape ``(n, d)`` (injected; ``generator`` is then unused).

    Returns:
        :class:`Samples`; ``samples`` has shape ``(n, d)`` when ``lam`` and ``kappa`` are both numbers.
    """
    if not isinstance(mixture, GaussianMixture):
        raise ValueError(f"mixture: expected a GaussianMixture, got {type(mixture).__name__}")
    steps, n = check_count(steps, name="steps"), check_count(n, name="n")
    single = not any(isinstance(v, (list, tuple, torch.Tensor)) for v in (lam, kappa))
    lams = _settings(lam, "lam", check_positive)
    kappas = _settings(kappa, "kappa", _check_unit)
    if len(lams) != len(kappas) and 1 not in (len(lams), len(kappas)):
        raise ValueError(f"kappa: {len(kappas)} values do not broadcast against {len(lams)} values of lam")
    S = max(len(lams), len(kappas))
    lams, kappas = lams * (S // len(lams)), kappas * (S // len(kappas))
    d = mixture.means.shape[1]
    if noise is None:
        gen = as_generator(generator)
        noise = torch.randn((n, d), generator=gen, dtype=torch.float64, device=gen.device)
    else:
        noise = as_tensor(noise, name="noise", dtype=torch.float64)
        if noise.shape != (n, d):
            raise ValueError(f"noise: expected shape ({n}, {d}), got {tuple(noise.shape)}")
    dev = noise.device
    times = torch.linspace(1.0, T_END, steps + 1, dtype=torch.float64, device=dev)
    abar = alpha_bar(times)
    lam_t = torch.tensor(lams, dtype=torch.float64, device=dev).repeat_interleave(n).unsqueeze(1)
    kap_t = torch.tensor(kappas, dtype=torch.float64, device=dev).repeat_interleave(n).unsqueeze(1)
    x0 = noise.repeat(S, 1)

    def step(state, i, _lr):
        x, prev = state
        eps = _mixture_eps(x, abar[i], mixture)
        d = _correct(eps, prev if i > 0 else None, lam_t, kap_t, True)
        x0_hat = (x - (1 - abar[i]).sqrt() * eps) / abar[i].sqrt()
        return abar[i + 1].sqrt() * x0_hat + (1 - abar[i + 1]).sqrt() * d, eps

    out = run(step, (x0, torch.zeros_like(x0)), steps=steps, batched=True, record=lambda s, t: {},
              record_every=steps)
    x = out.state[0].reshape(S, n, d)
    diverged = out.diverged.reshape(S, n)
    return Samples(samples=x[0] if single else x, times=times, lam=torch.tensor(lams), kappa=torch.tensor(kappas),
                   diverged=diverged[0] if single else diverged)


def sliced_wasserstein(X: torch.Tensor, Y: torch.Tensor, *, projections: int = 128,
                       generator: int | torch.Generator) -> torch.Tensor:
    """Sliced Wasserstein-1 distance between two equal-size samples (eq-lml-sw).

    ``SW_1 = mean over directions theta of W_1(theta^T X, theta^T Y)``, each 1-D ``W_1`` the mean absolute
    difference of the sorted projections; ``theta`` uniform on the sphere, drawn from ``generator``.

    Args:
        X: samples, shape ``(..., n, d)`` (leading dimensions are batches, e.g. settings and seeds).
        Y: samples, shape ``(..., n, d)``, broadcasting against ``X``.
        projections: number of random directions.
        generator: int seed or ``torch.Generator`` for the directions (same directions for every batch).

    Returns:
        The distances, shape ``X.shape[:-2]`` broadcast with ``Y.shape[:-2]`` (0-d for plain samples).
    """
    X = as_tensor(check_float_tensor(X, name="X"), name="X", dtype=None)
    Y = as_tensor(check_float_tensor(Y, name="Y"), name="Y", dtype=X.dtype, device=X.device)
    if X.ndim < 2 or Y.ndim < 2 or X.shape[-2:] != Y.shape[-2:]:
        raise ValueError(f"Y: expected samples of the same size (n, d) as X {tuple(X.shape[-2:])}, "
                         f"got {tuple(Y.shape[-2:])}")
    projections = check_count(projections, name="projections")
    gen = as_generator(generator, X.device)
    theta = torch.randn((X.shape[-1], projections), generator=gen, dtype=X.dtype, device=X.device)
    theta = theta / theta.norm(dim=0, keepdim=True)
    px, _ = torch.sort((X @ theta).transpose(-1, -2), dim=-1)  # (..., projections, n): sort contiguous rows
    py, _ = torch.sort((Y @ theta).transpose(-1, -2), dim=-1)
    return (px - py).abs().mean(dim=(-2, -1))


@dataclass(frozen=True)
class RingStudy(Record):
    """Sliced-W1 of LML-corrected DDIM against the true mixture, over settings and seeds.

    Attributes:
        steps: the step counts, shape ``(M,)``; lam, kappa: the settings, shape ``(S,)``.
        sw: shape ``(M, S, seeds)``; baseline: plain DDIM, shape ``(M, seeds)``.
        relative: ``sw / baseline - 1`` averaged over seeds, shape ``(M, S)`` (positive: worse than DDIM).
    """

    steps: torch.Tensor
    lam: torch.Tensor
    kappa: torch.Tensor
    sw: torch.Tensor
    baseline: torch.Tensor
    relative: torch.Tensor


def ring_study(mixture: GaussianMixture, *, steps: Sequence[int], lam: Sequence[float], kappa: Sequence[float],
               n: int, seeds: int = 4, projections: int = 128, generator: int = 0) -> RingStudy:
    """Compare LML-corrected DDIM with plain DDIM on a mixture by sliced W1, batched over settings and seeds.

    Every setting of one seed shares the sampler's starting noise, the reference sample of the mixture
    and the projection directions, so differences between settings are not sampling noise.

    Args:
        mixture: the data distribution.
        steps: the step counts to compare.
        lam, kappa: the ``S`` settings, paired (equal lengths); empty lists give plain DDIM's distances only.
        n: samples per setting and seed.
        seeds: number of seeds (seed ``generator + j`` for the ``j``-th).
        projections: directions of the sliced W1.
        generator: the first seed.

    Returns:
        :class:`RingStudy`.
    """
    if not isinstance(mixture, GaussianMixture):
        raise ValueError(f"mixture: expected a GaussianMixture, got {type(mixture).__name__}")
    if not isinstance(steps, (list, tuple)) or not steps:
        raise ValueError(f"steps: expected a non-empty list of step counts, got {steps!r}")
    steps = [check_count(s, name="steps") for s in steps]
    if not isinstance(lam, (list, tuple)):
        raise ValueError(f"lam: expected a list of dampings, got {lam!r}")
    if not isinstance(kappa, (list, tuple)):
        raise ValueError(f"kappa: expected a list of weights, got {kappa!r}")
    lam = [check_positive(v, name="lam") for v in lam]
    kappa = [_check_unit(v, name="kappa") for v in kappa]
    if len(lam) != len(kappa):
        raise ValueError(f"kappa: expected as many values as lam ({len(lam)}), got {len(kappa)}")
    n, seeds = check_count(n, name="n"), check_count(seeds, name="seeds")
    generator = check_count(generator, name="generator", minimum=0)
    d = mixture.means.shape[1]
    gens = [as_generator(generator + j) for j in range(seeds)]
    noise = torch.cat([torch.randn((n, d), generator=g, dtype=torch.float64, device=g.device) for g in gens])
    ref = torch.stack([mixture.sample(n, generator=g, device=g.device) for g in gens])  # (seeds, n, d)
    sw, base = [], []
    for m in steps:
        out = ddim_sample(mixture, steps=m, n=n * seeds, lam=[1.0] + lam, kappa=[0.0] + kappa, generator=0,
                          noise=noise).samples.reshape(len(lam) + 1, seeds, n, d)
        dist = torch.stack([sliced_wasserstein(out[:, j], ref[j], projections=projections, generator=gens[j])
                            for j in range(seeds)], dim=-1)  # (S + 1, seeds)
        base.append(dist[0])
        sw.append(dist[1:])
    sw_t, base_t = torch.stack(sw), torch.stack(base)
    return RingStudy(steps=torch.tensor(steps), lam=torch.tensor(lam, dtype=torch.float64),
                     kappa=torch.tensor(kappa, dtype=torch.float64), sw=sw_t, baseline=base_t,
                     relative=(sw_t / base_t.unsqueeze(1) - 1).mean(-1))
