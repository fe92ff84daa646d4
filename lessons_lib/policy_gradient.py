"""Normalised policy gradients with momentum transport: GPOMDP on an LQR, N-PG-IGT and (N)-HARPG.

A policy gradient is a noisy gradient *ascent* on the expected return ``J(theta)``. Momentum
averages the noise away, but it averages gradients taken at old parameters. Two corrections make
the average track the gradient at the current parameters:

* **implicit gradient transport (IGT)**: draw the next sample at the extrapolated point
  ``theta_t + ((1 - eta_t) / eta_t) (theta_t - theta_{t-1})`` (``eq-pg-igt``); on a quadratic the
  momentum ``d_t`` is then exactly ``grad J(theta_t)``;
* **Hessian-aided momentum (HARPG)**: add a Hessian-vector product at a random point of the last
  segment (``eq-pg-harpg``), whose mean is exactly the change of the gradient along it
  (``eq-pg-midpoint``).

Both normalise the step, ``theta_{t+1} = theta_t + gamma_t d_t / ||d_t||`` (``eq-pg-normalised``).
The test problem is a two-dimensional linear-quadratic regulator with a linear-Gaussian policy,
whose return is exact by covariance propagation (``eq-pg-lqr``), so the gap ``J* - J`` of every
iterate is known without sampling.

Schedules (``t`` counts from 0, as in a public implementation that follows the authors' poster):
``eta_t = (2 / (t + 2))^p`` with ``p = 0.8`` for IGT and ``eta_t = 2 / (t + 2)`` for HARPG;
``gamma_t = gamma0 * 2 / (t + 2)`` for normalised steps and ``gamma0 * (2 / (t + 2))^(1/2)`` for
unnormalised HARPG. ``eta_0 = 1``, so ``d_0`` is the first gradient estimate.

References:
    Fatkhullin, Barakat, Kireeva & He (2023), "Stochastic Policy Gradient Methods: Improved Sample
    Complexity for Fisher-non-degenerate Policies", ICML 2023, arXiv:2302.01734.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .backend import (
    Record,
    as_generator,
    as_tensor,
    check_callable,
    check_count,
    check_flag,
    check_float_tensor,
    check_positive,
    check_real,
)
from .run import per_run, run

GradFn = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
HvpFn = Callable[[torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]
BLOWUP = 1e12  # a run is flagged diverged when theta or d exceeds 1e12 times its start (run.run's radius)


@dataclass(frozen=True)
class LQR:
    """A linear-quadratic regulator with the linear-Gaussian policy ``a = theta . s + sigma * eps``.

    Dynamics ``s' = A s + b a + w`` with ``w ~ N(0, noise^2 I)``, reward ``r = -(s.Q s + R a^2)``,
    start ``s_0 ~ N(0, I)``, horizon ``H`` and discount ``gamma``. A configuration (its tensors live
    where they were made), not a result record.
    """

    A: torch.Tensor
    b: torch.Tensor
    Q: torch.Tensor
    R: float
    sigma: float
    horizon: int
    discount: float
    noise: float


@dataclass(frozen=True)
class Trajectories:
    """Sampled trajectories (kept on the sampling device: an intermediate of the loop, not a result).

    Attributes:
        states: ``(..., n, H, 2)``; actions, rewards: ``(..., n, H)``; eps: the policy noise
            ``(a - theta . s) / sigma``, ``(..., n, H)``.
    """

    states: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    eps: torch.Tensor


@dataclass(frozen=True)
class PGRun(Record):
    """A run of :func:`npg_igt` or :func:`harpg` (on the host).

    Attributes:
        theta: the iterates ``theta_0 .. theta_T``, shape ``(T + 1, ..., d)``.
        direction: ``direction[t] = d_t``, the direction that moves ``theta[t]``, shape ``(T, ..., d)``.
        diverged, diverged_at: as in :func:`lessons_lib.run.run` (shape ``(S,)`` for ``S`` batched seeds).
    """

    theta: torch.Tensor
    direction: torch.Tensor
    diverged: torch.Tensor
    diverged_at: torch.Tensor


def lqr(*, sigma: float = 0.3, horizon: int = 20, discount: float = 0.95, noise: float = 0.1, R: float = 0.1,
        dtype: torch.dtype = torch.float64, device=None) -> LQR:
    """The chapter's LQR (``eq-pg-lqr``): ``A = [[1, .1], [0, 1]]``, ``b = (0, .1)``, ``Q = I``.

    Args:
        sigma: the policy's standard deviation (``> 0``); the curvature of ``log pi`` is ``-s s^T / sigma^2``.
        horizon: ``H >= 1`` steps per trajectory. discount: ``gamma`` in ``(0, 1]``.
        noise: the state noise's standard deviation (``>= 0``). R: the action cost (``>= 0``).

    References:
        Fatkhullin et al. (2023), arXiv:2302.01734 (the problem is ours; the paper uses MuJoCo tasks).
    """
    sigma = check_positive(sigma, name="sigma")
    horizon = check_count(horizon, name="horizon")
    discount = check_positive(discount, name="discount")
    if discount > 1:
        raise ValueError(f"discount: expected a value in (0, 1], got {discount}")
    noise = check_positive(noise, name="noise", allow_zero=True)
    R = check_positive(R, name="R", allow_zero=True)
    t = dict(dtype=dtype, device=device)
    return LQR(A=torch.tensor([[1.0, 0.1], [0.0, 1.0]], **t), b=torch.tensor([0.0, 0.1], **t),
               Q=torch.eye(2, **t), R=R, sigma=sigma, horizon=horizon, discount=discount, noise=noise)


def _check_env(env) -> LQR:
    if not isinstance(env, LQR):
        raise ValueError(f"env: expected an LQR from lqr(), got {type(env).__name__}")
    return env


def _check_theta(theta, name: str = "theta") -> torch.Tensor:
    theta = check_float_tensor(theta, name=name)
    as_tensor(theta, name=name, dtype=None)  # refuses NaN and inf
    if theta.ndim == 0 or theta.shape[-1] != 2:
        raise ValueError(f"{name}: expected shape (..., 2), got {tuple(theta.shape)}")
    return theta


def lqr_return(theta: torch.Tensor, env: LQR) -> torch.Tensor:
    """The exact discounted return ``J(theta)`` by covariance propagation (``eq-pg-lqr``); differentiable.

    With ``K = A + b theta^T`` the state covariance obeys ``Sigma_{h+1} = K Sigma_h K^T + sigma^2 b b^T +
    noise^2 I`` from ``Sigma_0 = I``, and ``E r_h = -(tr(Q Sigma_h) + R (theta^T Sigma_h theta + sigma^2))``.

    Args:
        theta: policy parameters, shape ``(..., 2)``.
        env: from :func:`lqr`.

    Returns:
        ``J = sum_h gamma^h E r_h``, shape ``(...)``.
    """
    return _return(_check_theta(theta), _check_env(env))


def _return(theta: torch.Tensor, env: LQR) -> torch.Tensor:
    A, b = env.A.to(theta), env.b.to(theta)
    K = A + b[:, None] * theta[..., None, :]
    eye = torch.eye(2, dtype=theta.dtype, device=theta.device)
    drive = env.sigma ** 2 * torch.outer(b, b) + env.noise ** 2 * eye
    cov = eye.expand(K.shape).clone()
    total = theta.new_zeros(theta.shape[:-1])
    for h in range(env.horizon):
        quad = torch.einsum("...i,...ij,...j->...", theta, cov, theta)
        reward = -(torch.einsum("ij,...ji->...", env.Q.to(theta), cov) + env.R * (quad + env.sigma ** 2))
        total = total + env.discount ** h * reward
        cov = K @ cov @ K.transpose(-1, -2) + drive
    return total


def lqr_optimum(env: LQR, *, start=(-1.0, -2.0), iters: int = 20) -> tuple[torch.Tensor, float]:
    """``(theta*, J*)`` of :func:`lqr_return` by Newton's method with autograd derivatives.

    Args:
        env: from :func:`lqr`. start: the first iterate, 2 numbers (a stabilising gain). iters: at most this
            many Newton steps (it stops once a step is below 1e-12).
    """
    env = _check_env(env)
    iters = check_count(iters, name="iters")
    theta = torch.as_tensor(start, dtype=torch.float64, device=env.A.device).clone()
    theta = _check_theta(theta)
    for _ in range(iters):
        g = torch.func.grad(lambda x: _return(x, env))(theta)
        H = torch.func.hessian(lambda x: _return(x, env))(theta)
        step = torch.linalg.solve(H, g)
        theta = theta - step
        if float(step.norm()) < 1e-12:
            break
    return theta, float(lqr_return(theta, env))


def sample_trajectories(theta: torch.Tensor, env: LQR, *, n: int = 1, generator=0) -> Trajectories:
    """Roll out ``n`` trajectories of the policy ``a = theta . s + sigma eps`` per parameter vector.

    Args:
        theta: ``(d,)`` or ``(S, d)`` (any leading shape), ``d = 2``.
        env: from :func:`lqr`.
        n: trajectories per parameter vector, ``>= 1``.
        generator: int seed or ``torch.Generator`` (on ``theta``'s device).

    Returns:
        :class:`Trajectories` with a ``(..., n)`` batch.
    """
    theta, env = _check_theta(theta), _check_env(env)
    return _sample(theta, env, check_count(n, name="n"), as_generator(generator, theta.device))


def _sample(theta: torch.Tensor, env: LQR, n: int, gen: torch.Generator) -> Trajectories:
    th = theta.detach()[..., None, :].expand(*theta.shape[:-1], n, 2)
    kw = dict(generator=gen, dtype=theta.dtype, device=theta.device)
    A, b, Q = env.A.to(theta), env.b.to(theta), env.Q.to(theta)
    H = env.horizon
    s = torch.randn(*th.shape, **kw)
    e = torch.randn(*th.shape[:-1], H, **kw)  # every random number drawn at once: three calls, not 2H + 1
    w = env.noise * torch.randn(*th.shape[:-1], H, 2, **kw)
    states, actions = [], []
    for h in range(H):
        a = (th * s).sum(-1) + env.sigma * e[..., h]
        states.append(s), actions.append(a)
        s = s @ A.T + a[..., None] * b + w[..., h, :]
    states, actions = torch.stack(states, -2), torch.stack(actions, -1)
    rewards = -(((states @ Q) * states).sum(-1) + env.R * actions ** 2)
    return Trajectories(states, actions, rewards, e)


def _check_traj(traj) -> Trajectories:
    if not isinstance(traj, Trajectories):
        raise ValueError(f"traj: expected Trajectories from sample_trajectories(), got {type(traj).__name__}")
    return traj


def gpomdp(theta: torch.Tensor, traj: Trajectories, env: LQR) -> torch.Tensor:
    """The GPOMDP estimate of ``grad J`` of each trajectory (``eq-pg-gpomdp``).

    ``g(tau) = sum_h gamma^h r_h sum_{k <= h} grad log pi(a_k | s_k)``: each reward is credited only to
    the actions before it. Unbiased for the finite-horizon return :func:`lqr_return`.

    Args:
        theta: the parameters the trajectories were drawn with, ``(..., d)`` (the score is
            ``(a - theta . s) s / sigma^2``; a different ``theta`` gives a different estimate).
        traj: from :func:`sample_trajectories`. env: from :func:`lqr`.

    Returns:
        per-trajectory estimates, shape ``(..., n, d)``.
    """
    return _gpomdp(_check_theta(theta), _check_traj(traj), _check_env(env))


def _gpomdp(theta: torch.Tensor, traj: Trajectories, env: LQR) -> torch.Tensor:
    eps = (traj.actions - (traj.states * theta[..., None, None, :]).sum(-1)) / env.sigma
    score = eps[..., None] * traj.states / env.sigma
    weights = env.discount ** torch.arange(env.horizon, dtype=theta.dtype, device=theta.device) * traj.rewards
    return (weights[..., None] * score.cumsum(-2)).sum(-2)


def trajectory_hvp(theta: torch.Tensor, vec: torch.Tensor, traj: Trajectories, env: LQR) -> torch.Tensor:
    """The trajectory Hessian estimate ``B(tau) v = grad Phi (grad log p . v) + (grad^2 Phi) v`` (``eq-pg-harpg``).

    ``Phi = sum_h gamma^h r_h sum_{k <= h} log pi(a_k | s_k)``, so ``grad Phi`` is GPOMDP and
    ``grad^2 Phi v = -sum_h gamma^h r_h sum_{k <= h} s_k (s_k . v) / sigma^2``; ``grad log p = sum_k`` scores.
    Its mean is ``grad^2 J(theta) v``.

    Args:
        theta: ``(..., d)``; vec: ``(..., d)``; traj, env as in :func:`gpomdp`.

    Returns:
        per-trajectory products, shape ``(..., n, d)``.
    """
    theta, traj, env = _check_theta(theta), _check_traj(traj), _check_env(env)
    vec = _check_theta(vec, name="vec")
    return _hvp(theta, vec, traj, env)


def _hvp(theta: torch.Tensor, vec: torch.Tensor, traj: Trajectories, env: LQR) -> torch.Tensor:
    g = _gpomdp(theta, traj, env)
    v = vec[..., None, None, :]
    eps = (traj.actions - (traj.states * theta[..., None, None, :]).sum(-1)) / env.sigma
    score = eps[..., None] * traj.states / env.sigma
    logp_v = (score.sum(-2) * vec[..., None, :]).sum(-1)
    curv = -(traj.states * (traj.states * v).sum(-1, keepdim=True)).cumsum(-2) / env.sigma ** 2
    weights = env.discount ** torch.arange(env.horizon, dtype=theta.dtype, device=theta.device) * traj.rewards
    return g * logp_v[..., None] + (weights[..., None] * curv).sum(-2)


def lqr_oracles(env: LQR, *, batch: int = 1) -> tuple[GradFn, HvpFn]:
    """Stochastic oracles on the LQR, averaged over ``batch`` fresh trajectories per call.

    Returns:
        ``(grad_fn, hvp_fn)``: ``grad_fn(theta, generator)`` is the mean GPOMDP estimate, shape
        ``(..., d)``; ``hvp_fn(theta, vec, generator)`` the mean trajectory Hessian-vector product
        :func:`trajectory_hvp`, shape ``(..., d)``.
    """
    env = _check_env(env)
    batch = check_count(batch, name="batch")

    def grad_fn(theta, generator):  # unchecked inside: a diverging run must not raise (run.run freezes it)
        return _gpomdp(theta, _sample(theta, env, batch, generator), env).mean(-2)

    def hvp_fn(theta, vec, generator):
        return _hvp(theta, vec, _sample(theta, env, batch, generator), env).mean(-2)

    return grad_fn, hvp_fn


def noisy_quadratic(*, dim: int = 10, low: float = 0.5, high: float = 2.0, sigma: float = 1.0,
                    hessian_sigma: float | None = None) -> tuple[GradFn, HvpFn, Callable]:
    """Oracles of the concave quadratic ``J(theta) = -theta^T H theta / 2``, ``H = diag(linspace(low, high, dim))``.

    The gradient oracle adds ``sigma * xi``, ``xi ~ N(0, I)``; the Hessian-vector oracle returns
    ``-H v + hessian_sigma * ||v|| * xi'`` (noise proportional to the displacement, like a sampled Hessian).

    Returns:
        ``(grad_fn, hvp_fn, exact_grad)`` with ``exact_grad(theta) = -H theta``; tensors follow ``theta``.
    """
    dim = check_count(dim, name="dim")
    low, high = check_positive(low, name="low"), check_positive(high, name="high")
    if high < low:
        raise ValueError(f"high: expected >= low ({low}), got {high}")
    sigma = check_positive(sigma, name="sigma", allow_zero=True)
    hs = sigma if hessian_sigma is None else check_positive(hessian_sigma, name="hessian_sigma", allow_zero=True)

    def spectrum(theta):
        if theta.shape[-1] != dim:
            raise ValueError(f"theta: expected last dimension {dim}, got {tuple(theta.shape)}")
        return torch.linspace(low, high, dim, dtype=theta.dtype, device=theta.device)

    def exact_grad(theta):
        return -spectrum(theta) * theta

    def grad_fn(theta, generator):
        noise = torch.randn(theta.shape, generator=generator, dtype=theta.dtype, device=theta.device)
        return exact_grad(theta) + sigma * noise

    def hvp_fn(theta, vec, generator):
        noise = torch.randn(vec.shape, generator=generator, dtype=vec.dtype, device=vec.device)
        return -spectrum(theta) * vec + hs * vec.norm(dim=-1, keepdim=True) * noise

    return grad_fn, hvp_fn, exact_grad


def _unit(d: torch.Tensor) -> torch.Tensor:
    norm = d.norm(dim=-1, keepdim=True)
    return torch.where(norm > 0, d / norm.clamp_min(torch.finfo(d.dtype).tiny), torch.zeros_like(d))


def igt_direction(d_prev: torch.Tensor, theta: torch.Tensor, theta_prev: torch.Tensor, *, eta: float,
                  grad_fn: GradFn, generator=0) -> torch.Tensor:
    """One IGT momentum update (``eq-pg-igt``): the gradient taken ahead of ``theta_t``, mixed into ``d_{t-1}``.

    ``d_t = (1 - eta) d_{t-1} + eta g(theta_t + ((1 - eta)/eta)(theta_t - theta_{t-1}))``.

    Args:
        d_prev: ``d_{t-1}``, ``(..., d)``. theta, theta_prev: ``theta_t`` and ``theta_{t-1}``, ``(..., d)``.
        eta: the momentum weight ``eta_t`` in ``(0, 1]``. grad_fn: ``grad_fn(point, generator)``.
        generator: int seed or ``torch.Generator`` handed to ``grad_fn``.

    Returns:
        ``d_t``, shape ``(..., d)``.
    """
    eta = check_positive(eta, name="eta")
    if eta > 1:
        raise ValueError(f"eta: expected a value in (0, 1], got {eta}")
    check_callable(grad_fn, name="grad_fn")
    d_prev, theta, theta_prev = (as_tensor(x, name=k, dtype=None) for k, x in
                                 (("d_prev", d_prev), ("theta", theta), ("theta_prev", theta_prev)))
    gen = as_generator(generator, theta.device)
    point = theta + (1 - eta) / eta * (theta - theta_prev)
    return (1 - eta) * d_prev + eta * grad_fn(point, gen)


def _start(theta0, steps, gamma0, generator):
    theta0 = check_float_tensor(theta0, name="theta0")
    as_tensor(theta0, name="theta0", dtype=None)
    if theta0.ndim not in (1, 2):
        raise ValueError(f"theta0: expected shape (d,) or (S, d), got {tuple(theta0.shape)}")
    steps = check_count(steps, name="steps")
    if isinstance(gamma0, (int, float)) and not isinstance(gamma0, bool):
        gamma0 = torch.tensor(check_positive(gamma0, name="gamma0"), dtype=torch.float64)
    else:  # one value per batched run: a sweep of gamma0 is one batched call
        gamma0 = as_tensor(gamma0, name="gamma0", device="cpu")
        if theta0.ndim != 2 or gamma0.shape != theta0.shape[:1] or not bool((gamma0 > 0).all()):
            raise ValueError(f"gamma0: expected a number > 0 or one value > 0 per run, got shape {tuple(gamma0.shape)}")
    return theta0, steps, gamma0, as_generator(generator, theta0.device)


def _schedule(gamma0: torch.Tensor, power: float) -> Callable:
    """``t -> gamma0 (2 / (t + 2))^power``, shape ``(T,)`` or ``(T, R)`` for per-run ``gamma0``."""
    def schedule(t):
        decay = (2.0 / (t.double() + 2.0)) ** power
        return gamma0 * decay if gamma0.ndim == 0 else decay[:, None] * gamma0.to(decay.device)
    return schedule


def _finish(result, steps) -> PGRun:
    _, hist = result.on_grid(steps)
    return PGRun(theta=hist["theta"], direction=hist["d"][1:], diverged=result.diverged,
                 diverged_at=result.diverged_at)


def npg_igt(grad_fn: GradFn, theta0: torch.Tensor, *, steps: int, gamma0: float | torch.Tensor, eta_power: float = 0.8,
            normalized: bool = True, transport: bool = True, generator=0) -> PGRun:
    """N-PG-IGT (``eq-pg-igt``, ``eq-pg-normalised``): normalised ascent with transported momentum.

    ``eta_t = (2/(t+2))^eta_power``, ``gamma_t = gamma0 * 2/(t+2)``; the gradient is sampled at
    ``theta_t + ((1 - eta_t)/eta_t)(theta_t - theta_{t-1})`` (at ``theta_t`` with ``transport=False``:
    plain momentum); ``d_t = (1 - eta_t) d_{t-1} + eta_t g``; ``theta_{t+1} = theta_t + gamma_t d_t/||d_t||``
    (``+ gamma_t d_t`` with ``normalized=False``). ``eta_power=0`` is normalised PG without momentum.
    The randomness is all in ``grad_fn``: a deterministic oracle makes the update exact.

    Args:
        grad_fn: ``grad_fn(theta, generator) -> (..., d)``, e.g. from :func:`lqr_oracles`.
        theta0: ``(d,)``, or ``(S, d)`` for ``S`` runs batched in the leading dimension.
        steps: iterations ``T >= 1`` (one oracle call each). gamma0: ``> 0``, or ``(S,)`` values for
            ``S`` batched runs (a sweep in one call). eta_power: ``>= 0``.
        normalized, transport: flags. generator: int seed or ``torch.Generator``.

    Returns:
        :class:`PGRun`.

    References:
        Fatkhullin, Barakat, Kireeva & He (2023), "Stochastic Policy Gradient Methods: Improved Sample
        Complexity for Fisher-non-degenerate Policies", arXiv:2302.01734, Algorithm 1.
    """
    check_callable(grad_fn, name="grad_fn")
    theta0, steps, gamma0, gen = _start(theta0, steps, gamma0, generator)
    eta_power = check_positive(eta_power, name="eta_power", allow_zero=True)
    normalized, transport = check_flag(normalized, name="normalized"), check_flag(transport, name="transport")

    def step(state, t, lr):
        theta, prev, d = state
        eta = (2.0 / (t + 2)) ** eta_power
        point = theta + (1 - eta) / eta * (theta - prev) if transport else theta
        d = (1 - eta) * d + eta * grad_fn(point, gen)
        return theta + per_run(lr, theta) * (_unit(d) if normalized else d), theta, d

    state0 = (theta0, theta0, torch.zeros_like(theta0))
    result = run(step, state0, steps=steps, lr=_schedule(gamma0, 1.0), batched=theta0.ndim == 2,
                 record=lambda s, t: {"theta": s[0], "d": s[2]}, blowup=BLOWUP)
    return _finish(result, steps)


def harpg(grad_fn: GradFn, hvp_fn: HvpFn, theta0: torch.Tensor, *, steps: int, gamma0: float | torch.Tensor,
          normalized: bool = True, generator=0) -> PGRun:
    """(N)-HARPG (``eq-pg-harpg``): momentum corrected by a Hessian-vector product at a random midpoint.

    ``q_t ~ U[0, 1]`` (one per run), ``theta_hat = q theta_t + (1 - q) theta_{t-1}``,
    ``v_t = hvp(theta_hat, theta_t - theta_{t-1})``, ``d_t = (1 - eta_t)(d_{t-1} + v_t) + eta_t g(theta_t)``
    with ``eta_t = 2/(t+2)``; ``theta_{t+1} = theta_t + gamma_t d_t/||d_t||``, ``gamma_t = gamma0 * 2/(t+2)``
    (``normalized=False``: ``theta_t + gamma_t d_t`` with ``gamma_t = gamma0 (2/(t+2))^(1/2)``).

    Args:
        grad_fn: as in :func:`npg_igt`. hvp_fn: ``hvp_fn(theta, vec, generator) -> (..., d)``.
        theta0, steps, gamma0, normalized, generator: as in :func:`npg_igt`.

    Returns:
        :class:`PGRun` (two oracle calls per iteration after the first).

    References:
        Fatkhullin, Barakat, Kireeva & He (2023), arXiv:2302.01734, Algorithm 2.
    """
    check_callable(grad_fn, name="grad_fn")
    check_callable(hvp_fn, name="hvp_fn")
    theta0, steps, gamma0, gen = _start(theta0, steps, gamma0, generator)
    normalized = check_flag(normalized, name="normalized")

    def step(state, t, lr):
        theta, prev, d = state
        eta = 2.0 / (t + 2)
        if t == 0:  # eta_0 = 1: d_0 is the first gradient estimate
            d = grad_fn(theta, gen)
        else:
            q = torch.rand((*theta.shape[:-1], 1), generator=gen, dtype=theta.dtype, device=theta.device)
            v = hvp_fn(q * theta + (1 - q) * prev, theta - prev, gen)
            d = (1 - eta) * (d + v) + eta * grad_fn(theta, gen)
        return theta + per_run(lr, theta) * (_unit(d) if normalized else d), theta, d

    schedule = _schedule(gamma0, 1.0 if normalized else 0.5)
    state0 = (theta0, theta0, torch.zeros_like(theta0))
    result = run(step, state0, steps=steps, lr=schedule, batched=theta0.ndim == 2,
                 record=lambda s, t: {"theta": s[0], "d": s[2]}, blowup=BLOWUP)
    return _finish(result, steps)


def tracking_error(result: PGRun, exact_grad: Callable) -> torch.Tensor:
    """``||d_t - grad J(theta_t)||`` for every step (``eq-pg-tracking``), shape ``(T, ...)``.

    Args:
        result: from :func:`npg_igt` or :func:`harpg`. exact_grad: ``theta -> grad J(theta)``.
    """
    if not isinstance(result, PGRun):
        raise ValueError(f"result: expected a PGRun, got {type(result).__name__}")
    check_callable(exact_grad, name="exact_grad")
    return (result.direction - exact_grad(result.theta[:-1])).norm(dim=-1)


def gap(result: PGRun, env: LQR, j_star: float) -> torch.Tensor:
    """The optimality gap ``J* - J(theta_t)`` of every iterate, shape ``(T + 1, ...)``."""
    if not isinstance(result, PGRun):
        raise ValueError(f"result: expected a PGRun, got {type(result).__name__}")
    j_star = check_real(j_star, name="j_star")
    env = _check_env(env)
    with torch.no_grad():
        return j_star - _return(result.theta.to(env.A), env).cpu()
