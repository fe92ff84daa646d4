"""Consensus-based optimization (CBO): a gradient-free swarm that behaves like gradient descent.

``N`` particles ``x^i`` in ``R^d`` see only values ``f(x^i)``. Their Gibbs-weighted mean, the
consensus point ``c_alpha`` (eq-cbo-consensus), computed with log-sum-exp (eq-cbo-logsumexp), is a
Laplace-principle estimate of the best particle. Each particle drifts towards it and diffuses in
proportion to its distance from it (eq-cbo-step), with isotropic or anisotropic noise
(eq-cbo-noise). Noise convention: the increment is ``sigma * sqrt(dt) * D(x - c) xi`` with no factor
``sqrt(2)`` (Pinnau et al. write ``sqrt(2) sigma``); CBXpy and the authors' MATLAB code use the same
convention as this module.

Consensus hopping (eq-cbo-hopping) samples around the current point and jumps to the samples'
consensus point; as the sample count grows it becomes the proximal (implicit-GD) step
(eq-cbo-prox), exactly ``x / (1 + tau a)`` with ``tau = alpha sigma^2`` on ``f = a |x|^2 / 2``.

Shapes: particles are ``(..., N, d)`` and everything batches over the leading dimensions; CBO runs
``M`` independent swarms at once as ``(M, N, d)``. The runs are a step function on
:func:`lessons_lib.run.run`, so divergence has the book's one meaning: a run whose swarm leaves the
blow-up ball (relative to its start, checked every step) is flagged, its step recorded, and its
particles frozen together with their consensus point. Records come back on the host.

References:
    Pinnau, Totzeck, Tse & Martin (2017), A Consensus-Based Model for Global Optimization and its
    Mean-Field Limit, M3AS 27(1), arXiv:1604.05648.
    Carrillo, Jin, Li & Zhu (2021), A Consensus-Based Global Optimization Method for High Dimensional
    Machine Learning Problems, ESAIM:COCV 27, S5, arXiv:1909.09249.
    Riedl, Klock, Geldhauser & Fornasier (2023), Gradient is All You Need? How Consensus-Based
    Optimization can be Interpreted as a Stochastic Relaxation of Gradient Descent, arXiv:2306.09778.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

import torch

from .backend import (
    DTYPE,
    Record,
    as_generator,
    as_tensor,
    check_callable,
    check_count,
    check_flag,
    check_float_tensor,
    check_positive,
    check_real,
    default_device,
    progress,
)
from .run import run

NoiseType = Literal["anisotropic", "isotropic"]
NOISE_TYPES: tuple[str, ...] = ("anisotropic", "isotropic")
Objective = Callable[[torch.Tensor], torch.Tensor]


# --- checks ------------------------------------------------------------------------------------

def _check_particles(X, *, name: str = "X") -> torch.Tensor:
    if not isinstance(X, torch.Tensor) or not X.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor of shape (..., N, d), got {type(X).__name__}")
    if X.ndim < 2:
        raise ValueError(f"{name}: expected shape (..., N, d), got {tuple(X.shape)}")
    if X.shape[-2] < 1:
        raise ValueError(f"{name}: the swarm needs N >= 1 particles, got N = {X.shape[-2]}")
    if X.shape[-1] < 1:
        raise ValueError(f"{name}: the dimension d must be >= 1, got {X.shape[-1]}")
    return X


def _check_alpha(alpha, like: torch.Tensor) -> torch.Tensor | float:
    if not isinstance(like, torch.Tensor) or not like.is_floating_point():
        raise ValueError(f"fX: expected a real floating-point tensor of objective values, got {type(like).__name__}"
                         f"{'' if not isinstance(like, torch.Tensor) else ' of dtype ' + str(like.dtype)}")
    if isinstance(alpha, torch.Tensor):
        if not bool(torch.isfinite(alpha).all()) or bool((alpha < 0).any()):
            raise ValueError("alpha: must be finite and >= 0")
        return alpha.to(like.dtype).unsqueeze(-1)
    return check_positive(alpha, name="alpha", allow_zero=True)


def check_noise_type(noise_type: str) -> str:
    """Return ``noise_type`` if it is ``"anisotropic"`` or ``"isotropic"``, else raise a ValueError."""
    if noise_type not in NOISE_TYPES:
        raise ValueError(f"noise_type: expected one of {NOISE_TYPES}, got {noise_type!r}")
    return noise_type


def _generator(generator, device) -> torch.Generator:
    if generator is None:
        raise ValueError("generator: pass an int seed or a torch.Generator; the noise never comes from global RNG")
    return as_generator(generator, device)


def _check_values(fX, X: torch.Tensor, *, name: str) -> torch.Tensor:
    """``fX`` if it has shape ``X.shape[:-1]`` (one value per particle); else a ValueError naming ``name``."""
    if not isinstance(fX, torch.Tensor) or fX.shape != X.shape[:-1]:
        got = tuple(fX.shape) if isinstance(fX, torch.Tensor) else type(fX).__name__
        raise ValueError(f"{name}: expected values of shape {tuple(X.shape[:-1])} for particles of shape "
                         f"{tuple(X.shape)} (..., N, d), got {got}")
    return fX


def _values(f: Objective, X: torch.Tensor) -> torch.Tensor:
    return _check_values(f(X), X, name="f")


# --- the consensus point -----------------------------------------------------------------------

def consensus_weights(fX: torch.Tensor, *, alpha: float | torch.Tensor) -> torch.Tensor:
    """Normalised Gibbs weights ``w_i = exp(-alpha f_i - logsumexp_j(-alpha f_j))`` (eq-cbo-logsumexp).

    Exactly ``exp(-alpha f_i) / sum_j exp(-alpha f_j)``, computed without overflow or underflow: the
    largest exponent is subtracted first, so the weights sum to 1 for any ``alpha`` and are
    unchanged when a constant is added to ``f``.

    Args:
        fX: values ``f(x^i)``, shape ``(..., N)``.
        alpha: inverse temperature ``alpha >= 0`` (a float, or a tensor of shape ``(...)``).

    Returns:
        Weights of shape ``(..., N)``, non-negative, summing to 1 over the last dimension.

    References:
        Pinnau et al. (2017), arXiv:1604.05648; Riedl et al. (2023), arXiv:2306.09778.
    """
    a = _check_alpha(alpha, fX)
    return torch.softmax(-a * fX, dim=-1)


def consensus_point(X: torch.Tensor, fX: torch.Tensor, *, alpha: float | torch.Tensor) -> torch.Tensor:
    """The consensus point ``c_alpha = sum_i x^i w_alpha(x^i) / sum_j w_alpha(x^j)`` (eq-cbo-consensus).

    ``w_alpha(x) = exp(-alpha f(x))``: a softmin-weighted mean of the particles ``X`` with values
    ``fX``. ``alpha = 0`` gives the plain mean; as ``alpha`` grows it tends to the best particle (the
    Laplace principle). Computed stably with normalised log-sum-exp weights (eq-cbo-logsumexp).

    Args:
        X: particles, shape ``(..., N, d)``; batched over the leading dimensions.
        fX: their values, shape ``(..., N)``.
        alpha: inverse temperature ``alpha >= 0`` (a float, or a tensor of shape ``(...)``).

    Returns:
        The consensus points, shape ``(..., d)``.

    Raises:
        ValueError: if ``X`` has no particles (``N < 1``), the shapes disagree or ``alpha < 0``.

    References:
        Pinnau, Totzeck, Tse & Martin (2017), arXiv:1604.05648.
    """
    X = _check_particles(X)
    check_float_tensor(fX, name="fX")
    _check_values(fX, X, name="fX")
    w = consensus_weights(fX.to(X.dtype), alpha=alpha)
    return (w.unsqueeze(-2) @ X).squeeze(-2)


# --- one CBO step --------------------------------------------------------------------------------

def _consensus(X, fX, alpha):
    """Unchecked :func:`consensus_point` for the hot loop (``alpha`` a float)."""
    return (torch.softmax(fX * -alpha, dim=-1).unsqueeze(-2) @ X).squeeze(-2)


def _update(X, c, *, lam, sigma, dt, noise_type, xi):
    """The CBO update of particles ``X`` towards their consensus point ``c`` (eq-cbo-step)."""
    drift = X - c.unsqueeze(-2)
    if sigma == 0:
        return X - (lam * dt) * drift
    if noise_type == "anisotropic":  # X + drift * (sigma sqrt(dt) xi - lam dt), one fused pass
        return X + drift * (xi * (sigma * math.sqrt(dt)) - lam * dt)
    norm = torch.linalg.vector_norm(drift, dim=-1, keepdim=True)
    return X - (lam * dt) * drift + (sigma * math.sqrt(dt)) * norm * xi


def _noise(X, generator, noise, noise_dtype):
    if noise is not None:
        if not isinstance(noise, torch.Tensor) or noise.shape != X.shape:
            got = tuple(noise.shape) if isinstance(noise, torch.Tensor) else type(noise).__name__
            raise ValueError(f"noise: expected a tensor of shape {tuple(X.shape)}, got {got}")
        return noise.to(device=X.device, dtype=X.dtype)
    return _draw(X, _generator(generator, X.device), noise_dtype)


def _draw(X, gen, noise_dtype):
    xi = torch.randn(X.shape, generator=gen, dtype=noise_dtype or X.dtype, device=X.device)
    return xi if xi.dtype == X.dtype else xi.to(X.dtype)


def cbo_step(X: torch.Tensor, f: Objective, *, alpha: float | torch.Tensor, lam: float, sigma: float, dt: float,
             noise_type: NoiseType = "anisotropic", generator: int | torch.Generator | None = None,
             noise: torch.Tensor | None = None, noise_dtype: torch.dtype | None = torch.float32) -> torch.Tensor:
    """One Euler-Maruyama step of CBO (eq-cbo-step) with isotropic or anisotropic noise (eq-cbo-noise).

    ``x^i <- x^i - lam dt (x^i - c) + sigma sqrt(dt) D(x^i - c) xi^i`` with ``c = c_alpha(X)``
    (eq-cbo-consensus), ``D(v) = |v|_2 I`` (isotropic) or ``diag(|v_1|, ..., |v_d|)`` (anisotropic;
    the sign of ``v_k`` is absorbed by the symmetric ``xi``) and ``xi^i ~ N(0, I_d)``. No ``sqrt(2)``:
    Pinnau et al. write ``sqrt(2) sigma``; this is CBXpy's convention, so a step equals ``cbx``'s
    ``CBO.step()`` on identical noise.

    Args:
        X: particles, shape ``(..., N, d)``.
        f: objective mapping ``(..., N, d)`` to values ``(..., N)``.
        alpha: inverse temperature ``alpha >= 0`` (float, or a tensor of shape ``(...)``).
        lam: drift strength ``lambda >= 0``.
        sigma: noise strength ``sigma >= 0``.
        dt: time step ``dt > 0`` (the swarm's learning rate: ``lam dt`` plays ``lr * curvature``).
        noise_type: ``"anisotropic"`` or ``"isotropic"``.
        generator: int seed or ``torch.Generator`` for ``xi`` (needed when ``sigma > 0`` and no
            ``noise`` is given).
        noise: injected standard normal ``xi`` of shape ``X.shape`` (for exact tests).
        noise_dtype: dtype in which ``xi`` is drawn before being cast to ``X``'s dtype. The default
            float32 is about 5x faster than float64 on a CPU and changes nothing that matters for a
            stochastic step (its normal tails are cut near 5.8 standard deviations); ``None`` draws in
            ``X``'s dtype.

    Returns:
        The new particles, shape ``(..., N, d)``.

    References:
        Pinnau et al. (2017), arXiv:1604.05648 (isotropic); Carrillo, Jin, Li & Zhu (2021),
        arXiv:1909.09249 (anisotropic).
    """
    X = _check_particles(X)
    check_callable(f, name="f")
    lam = check_positive(lam, name="lam", allow_zero=True)
    sigma = check_positive(sigma, name="sigma", allow_zero=True)
    dt = check_positive(dt, name="dt")
    check_noise_type(noise_type)
    xi = _noise(X, generator, noise, noise_dtype) if sigma > 0 else None
    c = consensus_point(X, _values(f, X), alpha=alpha)
    return _update(X, c, lam=lam, sigma=sigma, dt=dt, noise_type=noise_type, xi=xi)


# --- many steps, many runs ------------------------------------------------------------------------

def alpha_schedule(alpha: float, *, steps: int, growth: float = 1.0, alpha_max: float = 1e5) -> list[float]:
    """The inverse temperatures ``alpha_0 .. alpha_steps``: ``alpha_{k+1} = min(growth * alpha_k, alpha_max)``.

    ``alpha_k`` is used in step ``k`` (eq-cbo-step); CBXpy's default scheduler multiplies by 1.05 per
    step up to 1e5 in exactly this way (``growth = 1`` keeps ``alpha`` fixed).
    """
    a = check_positive(alpha, name="alpha", allow_zero=True)
    growth = check_positive(growth, name="growth")
    alpha_max = check_positive(alpha_max, name="alpha_max")
    out = [a]
    for _ in range(check_count(steps, name="steps", minimum=0)):
        a = min(growth * a, alpha_max)
        out.append(a)
    return out


@dataclass(frozen=True)
class CBOResult(Record):
    """A batch of ``M`` CBO runs (eq-cbo-step), on the host.

    Attributes:
        steps: recorded step indices, shape ``(S,)`` (always includes 0 and the last step).
        consensus: consensus points ``c_{alpha_k}(X_k)`` at those steps, shape ``(S, M, d)``.
        f_consensus: ``f`` at the consensus points, shape ``(S, M)``.
        alpha: the ``alpha_k`` used, shape ``(S,)``.
        final: the final consensus point, shape ``(M, d)``.
        particles: final particles ``(M, N, d)``, or all recorded ones ``(S, M, N, d)`` when the run
            kept them (``keep_particles=True``).
        extent: the largest ``|coordinate|`` of any particle since the previous record, ``(S, M)``:
            how far the swarm reached out (anisotropic swarms make excursions far beyond their start).
        diverged: ``(M,)`` bools: the run left the blow-up ball; its particles, consensus point and
            extent were frozen there (:mod:`lessons_lib.run`), so its later records repeat them.
        diverged_at: ``(M,)`` step at which it did, ``-1`` if it did not.
    """

    steps: torch.Tensor
    consensus: torch.Tensor
    f_consensus: torch.Tensor
    alpha: torch.Tensor
    final: torch.Tensor
    particles: torch.Tensor
    extent: torch.Tensor
    diverged: torch.Tensor
    diverged_at: torch.Tensor

    def error(self, x_star=0.0) -> torch.Tensor:
        """``|c_K - x*|_inf`` per run, shape ``(M,)`` (diverged runs give their frozen, large error)."""
        x_star = as_tensor(x_star, name="x_star", dtype=self.final.dtype, device=self.final.device)
        return (self.final - x_star).abs().amax(-1)

    def success(self, x_star=0.0, *, tol: float = 0.25) -> torch.Tensor:
        """Runs whose final consensus point lies within ``tol`` of ``x_star`` in the max norm and did not diverge."""
        tol = check_positive(tol, name="tol")
        return (self.error(x_star) < tol) & ~self.diverged

    def success_rate(self, x_star=0.0, *, tol: float = 0.25) -> float:
        """Fraction of the ``M`` runs that succeeded (see :meth:`success`)."""
        return float(self.success(x_star, tol=tol).double().mean())


def cbo_minimize(f: Objective, X0: torch.Tensor, *, alpha: float, lam: float = 1.0, sigma: float, dt: float,
                 steps: int, noise_type: NoiseType = "anisotropic", alpha_growth: float = 1.0,
                 alpha_max: float = 1e5, generator: int | torch.Generator | None = None, record_every: int = 1,
                 keep_particles: bool = False, blowup: float = 1e100,
                 noise_dtype: torch.dtype | None = torch.float32) -> CBOResult:
    """Run ``steps`` CBO steps (eq-cbo-step, eq-cbo-noise) on ``M`` independent swarms at once.

    Step ``k`` uses ``alpha_k`` from :func:`alpha_schedule` (``alpha_growth = 1.05``,
    ``alpha_max = 1e5`` reproduce CBXpy's default schedule). The loop is :func:`lessons_lib.run.run`
    over the state ``(X_k, c_k, extent_k)``: the particles, their consensus point
    ``c_k = c_{alpha_k}(X_k)`` and the largest ``|coordinate|`` since the last record. A run
    *diverges* when that state leaves the ball of radius ``blowup * max(1, |state_0|)`` or ``f``
    stops being finite at its particles; it is then flagged, the step recorded, and the run frozen
    with its consensus point, so every returned tensor is finite. The radius is generous on purpose:
    with anisotropic noise and large ``sigma`` single particles roam out to ``|x| ~ 1e10`` while the
    consensus point sits at the minimum (the chapter measures this), so a small radius would stop
    runs that succeed. Computes on ``X0``'s device; the record comes back on the host.

    Args:
        f: objective mapping ``(M, N, d)`` to ``(M, N)``.
        X0: initial particles, shape ``(M, N, d)`` (or ``(N, d)`` for one run).
        alpha, lam, sigma, dt, noise_type: as in :func:`cbo_step`.
        steps: number of steps ``K >= 0``.
        alpha_growth, alpha_max: the ``alpha`` schedule.
        generator: int seed or ``torch.Generator`` on ``X0``'s device (required when ``sigma > 0``).
        record_every: record the consensus point every this many steps (and at the last step).
        keep_particles: also keep the particles at the recorded steps.
        blowup: divergence radius relative to ``max(1, |state_0|)`` (default ``1e100``).
        noise_dtype: dtype the noise is drawn in (see :func:`cbo_step`).

    Returns:
        A :class:`CBOResult`.

    References:
        Pinnau et al. (2017), arXiv:1604.05648; Carrillo et al. (2021), arXiv:1909.09249;
        Riedl et al. (2023), arXiv:2306.09778.
    """
    check_callable(f, name="f")
    X = _check_particles(X0, name="X0")
    if X.ndim == 2:
        X = X.unsqueeze(0)
    if X.ndim != 3:
        raise ValueError(f"X0: expected shape (M, N, d) or (N, d), got {tuple(X0.shape)}")
    if not bool(torch.isfinite(X).all()):
        raise ValueError("X0: contains NaN or infinite values")
    lam = check_positive(lam, name="lam", allow_zero=True)
    sigma = check_positive(sigma, name="sigma", allow_zero=True)
    dt = check_positive(dt, name="dt")
    check_noise_type(noise_type)
    record_every = check_count(record_every, name="record_every")
    keep_particles = check_flag(keep_particles, name="keep_particles")
    alpha_growth = check_positive(alpha_growth, name="alpha_growth")
    alphas = alpha_schedule(alpha, steps=steps, growth=alpha_growth, alpha_max=alpha_max)
    gen = _generator(generator, X.device) if sigma > 0 else None
    fX = _values(f, X)
    if not bool(torch.isfinite(fX).all()):
        raise ValueError("f: is not finite at the initial particles X0")
    M = X.shape[0]
    nan = torch.tensor(math.nan, dtype=X.dtype, device=X.device)
    # a progress bar for long runs in a live kernel (silent on the site); short runs skip its overhead
    ticks = iter(progress(range(steps), leave=False, desc="CBO")) if steps >= 5000 else None

    def extent(X):
        return X.reshape(M, -1).abs().amax(dim=1)

    def step(state, k, _):
        X, c, peak = state
        if ticks is not None:
            next(ticks, None)
        xi = _draw(X, gen, noise_dtype) if gen is not None else None
        X_new = _update(X, c, lam=lam, sigma=sigma, dt=dt, noise_type=noise_type, xi=xi)
        f_new = _values(f, X_new)
        c_new = _consensus(X_new, f_new, alphas[k + 1])
        # a non-finite f makes the state non-finite, so run() freezes the run before this step
        c_new = torch.where(torch.isfinite(f_new).all(dim=1, keepdim=True), c_new, nan)
        return X_new, c_new, torch.maximum(extent(X) if k % record_every == 0 else peak, extent(X_new))

    def record(state, k):
        X, c, peak = state
        return {"consensus": c, "extent": peak, **({"particles": X} if keep_particles else {})}

    out = run(step, (X, _consensus(X, fX, alphas[0]), extent(X)), steps=steps, record=record,
              record_every=record_every, blowup=blowup, batched=True)
    at, history = out.on_grid(steps, record_every)  # after the loop stopped: the frozen records
    consensus = history["consensus"]
    return CBOResult(
        steps=at,
        consensus=consensus,
        f_consensus=f(consensus.to(X.device)),
        alpha=torch.tensor([alphas[k] for k in at.tolist()], dtype=X.dtype),
        final=out.state[1],
        particles=history["particles"] if keep_particles else out.state[0],
        extent=history["extent"],
        diverged=out.diverged,
        diverged_at=out.diverged_at,
    )


def init_particles(runs: int, n: int, d: int, *, low: float = -3.0, high: float = 3.0,
                   generator: int | torch.Generator | None = None, device=None,
                   dtype: torch.dtype = DTYPE) -> torch.Tensor:
    """Particles drawn uniformly from the cube ``[low, high]^d``, shape ``(runs, n, d)``."""
    runs, n, d = (check_count(v, name=k) for v, k in ((runs, "runs"), (n, "n"), (d, "d")))
    low, high = check_real(low, name="low"), check_real(high, name="high")
    if not high > low:
        raise ValueError(f"high: must exceed low ({low}), got {high}")
    device = torch.device(device) if device is not None else default_device()
    gen = _generator(generator, device)
    return low + (high - low) * torch.rand(runs, n, d, generator=gen, dtype=dtype, device=device)


# --- consensus hopping and the proximal step --------------------------------------------------------

def prox_quadratic(x, *, tau: float, a: float) -> torch.Tensor:
    """The proximal (implicit-GD) step on ``f = a |x|^2 / 2``: ``prox_{tau f}(x) = x / (1 + tau a)`` (eq-cbo-prox).

    It solves ``y = x - tau grad f(y)``. Unlike explicit GD, ``x (1 - tau a)``, it contracts for every
    ``tau a > 0``.

    References:
        Riedl et al. (2023), arXiv:2306.09778.
    """
    tau = check_positive(tau, name="tau", allow_zero=True)
    a = check_positive(a, name="a", allow_zero=True)
    return as_tensor(x, name="x") / (1 + tau * a)


def hopping_tau(*, alpha: float, sigma: float) -> float:
    """The implicit step size ``tau = alpha sigma^2`` that consensus hopping takes (eq-cbo-prox)."""
    return check_positive(alpha, name="alpha", allow_zero=True) * check_positive(sigma, name="sigma") ** 2


def consensus_hopping(f: Objective, x0, *, alpha: float, sigma: float, n_samples: int, steps: int,
                      generator: int | torch.Generator | None = None,
                      noise_dtype: torch.dtype | None = torch.float32) -> torch.Tensor:
    """Consensus hopping (eq-cbo-hopping): ``x_{k+1} = c_alpha(Y^1..Y^n)`` with ``Y^j ~ N(x_k, sigma^2 I)``.

    As ``n_samples`` grows, one hop tends to the proximal step ``prox_{tau f}(x_k)`` with
    ``tau = alpha sigma^2`` (eq-cbo-prox): an implicit gradient step. With finite samples and large
    ``alpha`` the weights collapse onto the best sample and the hop is biased.

    Args:
        f: objective mapping ``(..., n, d)`` to ``(..., n)``.
        x0: starting point(s), shape ``(..., d)``; leading dimensions are independent runs.
        alpha: inverse temperature ``alpha >= 0``.
        sigma: sampling width ``sigma > 0``.
        n_samples: samples per hop, ``>= 1``.
        steps: number of hops ``>= 0``.
        generator: int seed or ``torch.Generator``.
        noise_dtype: dtype the standard normal samples are drawn in (see :func:`cbo_step`).

    Returns:
        The iterates ``x_0 .. x_K``, shape ``(K + 1, ..., d)``, on the host (the loop is
        :func:`lessons_lib.run.run`; hops cannot blow up, but a run whose ``f`` stops being finite is
        frozen there).

    References:
        Riedl, Klock, Geldhauser & Fornasier (2023), arXiv:2306.09778.
    """
    check_callable(f, name="f")
    x = as_tensor(x0, name="x0", dtype=x0.dtype if isinstance(x0, torch.Tensor) and x0.is_floating_point() else DTYPE)
    if x.ndim < 1 or not bool(torch.isfinite(x).all()):
        raise ValueError(f"x0: expected finite points of shape (..., d), got {tuple(x.shape)}")
    alpha = check_positive(alpha, name="alpha", allow_zero=True)
    sigma = check_positive(sigma, name="sigma")
    n = check_count(n_samples, name="n_samples")
    steps = check_count(steps, name="steps", minimum=0)
    gen = _generator(generator, x.device)

    def hop(x, t, _):
        xi = torch.randn(*x.shape[:-1], n, x.shape[-1], generator=gen, dtype=noise_dtype or x.dtype, device=x.device)
        Y = x.unsqueeze(-2) + sigma * xi.to(x.dtype)
        return consensus_point(Y, _values(f, Y), alpha=alpha)

    batched = x.ndim > 1  # leading dimensions are runs: flattened into one for the loop
    out = run(hop, x.reshape(-1, x.shape[-1]) if batched else x, steps=steps, batched=batched)
    xs = out.on_grid(steps)[1]["params"]  # frozen after the loop stopped
    return xs.reshape(steps + 1, *x.shape)


def spread(X: torch.Tensor) -> torch.Tensor:
    """Root-mean-square distance of the particles from their mean, shape ``(...)`` for ``X`` of shape ``(..., N, d)``.

    Without noise every particle moves along ``x - c`` with the same factor, so the spread obeys
    ``spread_{k+1} = |1 - lam dt| spread_k`` exactly (eq-cbo-step with ``sigma = 0``).
    """
    X = _check_particles(X)
    return (X - X.mean(dim=-2, keepdim=True)).pow(2).sum(-1).mean(-1).sqrt()


# --- typical growth of a particle's offset: the log-growth per step -----------------------------------

def log_growth(*, sigma: float, dt: float, d: int, noise_type: NoiseType, lam: float = 1.0,
               n_samples: int = 1_000_000, generator: int | torch.Generator | None = None) -> float:
    """Mean log-growth per step of a particle's offset from a frozen consensus point (eq-cbo-log-growth).

    With ``c`` held fixed, one step (eq-cbo-step) maps the offset ``v = x - c`` to
    ``(1 - lam dt) v + sigma sqrt(dt) D(v) xi``. Anisotropic noise multiplies each coordinate by
    ``1 - lam dt + sigma sqrt(dt) xi_j``, so the log of its size grows on average by
    ``g = E log|1 - lam dt + sigma sqrt(dt) xi|`` (independent of ``d``). Isotropic noise multiplies the
    length by ``|(1 - lam dt) e + sigma sqrt(dt) xi|`` with ``e`` a unit vector and ``xi ~ N(0, I_d)``,
    so ``g = E log|(1 - lam dt) e + sigma sqrt(dt) xi|``. A typical particle shrinks towards ``c`` when
    ``g < 0`` even if its mean square grows. Computed by Monte Carlo in float64 (standard error below
    ``1.5 / sqrt(n_samples)``).

    Args:
        sigma: noise strength ``sigma >= 0``.
        dt: time step ``dt > 0``.
        d: dimension ``d >= 1``.
        noise_type: ``"anisotropic"`` or ``"isotropic"``.
        lam: drift strength ``lambda >= 0``.
        n_samples: number of Monte Carlo draws of ``xi``.
        generator: int seed or ``torch.Generator`` (CPU) for the draws.

    Returns:
        ``g``, the expected change of the log offset per step (a float).

    References:
        Riedl, Klock, Geldhauser & Fornasier (2023), arXiv:2306.09778; Carrillo, Jin, Li & Zhu (2021),
        arXiv:1909.09249.
    """
    sigma = check_positive(sigma, name="sigma", allow_zero=True)
    dt = check_positive(dt, name="dt")
    d = check_count(d, name="d")
    check_noise_type(noise_type)
    lam = check_positive(lam, name="lam", allow_zero=True)
    n = check_count(n_samples, name="n_samples")
    gen = _generator(generator, torch.device("cpu"))
    q, s = 1 - lam * dt, sigma * math.sqrt(dt)
    if noise_type == "anisotropic":
        xi = torch.randn(n, generator=gen, dtype=DTYPE)
        return float(torch.log((q + s * xi).abs()).mean())
    xi = torch.randn(n, d, generator=gen, dtype=DTYPE) * s
    xi[:, 0] += q
    return float(torch.log(torch.linalg.vector_norm(xi, dim=-1)).mean())


def median_log_offset(particles: torch.Tensor, consensus: torch.Tensor, *, noise_type: NoiseType) -> torch.Tensor:
    """Median log distance of the particles from their consensus point, per recorded step (eq-cbo-log-growth).

    The measured counterpart of :func:`log_growth`: its slope over steps is the typical log-growth.
    Anisotropic noise acts per coordinate, so the median runs over ``log|x_j - c_j|`` of every run,
    particle and coordinate; isotropic noise acts on the length, so over ``log|x - c|`` of every run
    and particle. Offsets of exactly zero count as ``log(1e-300)``.

    Args:
        particles: recorded particles, shape ``(S, M, N, d)`` (``CBOResult.particles`` with
            ``keep_particles=True``).
        consensus: their consensus points, shape ``(S, M, d)``.
        noise_type: ``"anisotropic"`` or ``"isotropic"``.

    Returns:
        The medians, shape ``(S,)``.
    """
    check_float_tensor(particles, name="particles")
    check_float_tensor(consensus, name="consensus")
    if particles.ndim != 4 or consensus.shape != particles.shape[:2] + particles.shape[3:]:
        raise ValueError(f"consensus: expected shape (S, M, d) matching particles (S, M, N, d) = "
                         f"{tuple(particles.shape)}, got {tuple(consensus.shape)}")
    check_noise_type(noise_type)
    for name, value in (("particles", particles), ("consensus", consensus)):
        if not torch.isfinite(value).all():
            raise ValueError(f"{name}: holds NaN or inf; recorded runs are frozen at their last finite state")
    offset = particles - consensus.unsqueeze(-2)
    size = offset.abs() if noise_type == "anisotropic" else torch.linalg.vector_norm(offset, dim=-1)
    return size.clamp_min(1e-300).log().flatten(1).median(dim=1).values
