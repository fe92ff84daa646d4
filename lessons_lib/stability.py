"""Which minima can gradient methods stay in? Linear stability under GD and SGD.

Near a minimum the square loss is a quadratic with Hessian ``H``; at an interpolating minimum
``H = G``, the Gauss-Newton matrix ``G = (1/n) sum_i grad f_i grad f_i^T`` built from per-sample
gradients of the model output (eq-stab-gauss-newton). GD stays iff ``lambda_max(G) <= 2/lr``
(eq-stab-gd). SGD with batch size 1 applies ``I - lr grad f_i grad f_i^T`` for a random sample; with
orthogonal per-sample gradients each factor must be a contraction, which gives
``Tr G <= 2/lr`` (eq-stab-sgd), a condition ``n`` times stronger than GD's in the worst case.

For the diagonal linear network ``f(x) = <u*u - v*v, x>`` with ``beta = u^2 - v^2`` the trace is a
weighted l1 norm in disguise, ``Tr G >= 4 sum_j sigma_j^2 |beta_j|`` (eq-stab-trace-l1), so large-step
SGD is pushed towards sparse interpolators.

References:
    Wu & Su (2023), The Implicit Regularization of Dynamical Stability in Stochastic Gradient
    Descent, ICML, arXiv:2305.17490.
    Wu, Ma & E (2018), How SGD selects the global minima in over-parameterized learning: a
    dynamical stability perspective, NeurIPS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from . import quadratic
from .backend import as_generator, as_tensor, check_count, check_positive, to_host
from .descent import Trajectory, check_lr


#: GD on a quadratic, batched over runs, is :func:`lessons_lib.quadratic.gd_quadratic`.
gd_quadratic = quadratic.gd_quadratic


def contraction_factors(H, *, lr: float) -> torch.Tensor:
    """Per-eigendirection factors ``1 - lr lambda_i`` of GD on a quadratic (eq-lr-eigen-solution)."""
    lam = torch.linalg.eigvalsh(quadratic.check_hessian(H))
    return 1 - check_lr(lr) * lam


@dataclass(frozen=True)
class GaussNewton:
    """Spectral summary of ``G = J^T J / n``: ``trace`` and ``lam_max`` (tensors, batched like J)."""

    trace: torch.Tensor
    lam_max: torch.Tensor


def gauss_newton(J: torch.Tensor) -> GaussNewton:
    """Exact trace and top eigenvalue of the Gauss-Newton matrix (eq-stab-gauss-newton).

    ``G = (1/n) sum_i g_i g_i^T`` where row ``i`` of ``J`` is the per-sample gradient ``g_i`` of the
    model output. ``Tr G = ||J||_F^2 / n``; ``lambda_max(G)`` is the top eigenvalue of the smaller of
    ``J J^T / n`` and ``J^T J / n`` (they share their non-zero spectrum). No sampling is involved.

    Args:
        J: per-sample gradients, shape ``(..., n, p)``.

    Returns:
        :class:`GaussNewton` with tensors of shape ``(...)``.
    """
    if not isinstance(J, torch.Tensor) or J.ndim < 2 or J.shape[-2] == 0 or J.shape[-1] == 0:
        raise ValueError(f"J: expected a tensor of shape (..., n, p) with n, p > 0, got "
                         f"{tuple(J.shape) if isinstance(J, torch.Tensor) else type(J).__name__}")
    n, p = J.shape[-2:]
    trace = (J**2).sum(dim=(-2, -1)) / n
    small = J @ J.mT if n <= p else J.mT @ J
    lam_max = torch.linalg.eigvalsh(small / n)[..., -1]
    return GaussNewton(trace, lam_max)


def diagonal_net_jacobian(u: torch.Tensor, v: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Per-sample gradients of ``f(x) = <u*u - v*v, x>``: rows ``[2 u*x_i, -2 v*x_i]``, shape ``(..., n, 2d)``."""
    return torch.cat([2 * u[..., None, :] * X, -2 * v[..., None, :] * X], dim=-1)


def weighted_l1(beta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """``4 sum_j sigma_j^2 |beta_j|`` with ``sigma_j^2 = mean_i x_ij^2``: the lower bound of eq-stab-trace-l1."""
    return 4 * (beta.abs() * (X**2).mean(dim=0)).sum(dim=-1)


@dataclass(frozen=True)
class SparseRegression:
    """Noiseless sparse regression ``y = X beta_star`` with a held-out test set."""

    X: torch.Tensor
    y: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    beta_star: torch.Tensor

    def test_mse(self, beta: torch.Tensor) -> torch.Tensor:
        """Mean squared test error of the linear predictor ``beta`` (batched over leading dims)."""
        return ((beta @ self.X_test.T - self.y_test) ** 2).mean(dim=-1)


def sparse_regression(*, n: int = 40, d: int = 100, support: int = 5, n_test: int = 2000,
                      generator: int | torch.Generator = 0, device=None) -> SparseRegression:
    """Gaussian design ``x ~ N(0, I_d)``, ``beta_star = 1`` on the first ``support`` coordinates."""
    n, d, n_test = (check_count(v, name=k) for k, v in (("n", n), ("d", d), ("n_test", n_test)))
    support = check_count(support, name="support")
    if support > d:
        raise ValueError(f"support: must be <= d = {d}, got {support}")
    gen = as_generator(generator, device if device is not None else "cpu")
    X = torch.randn(n + n_test, d, generator=gen, dtype=torch.float64, device=gen.device)
    beta = torch.zeros(d, dtype=torch.float64, device=gen.device)
    beta[:support] = 1.0
    y = X @ beta
    return SparseRegression(X[:n], y[:n], X[n:], y[n:], beta)


@dataclass(frozen=True)
class DiagonalNetRun:
    """Result of :func:`train_diagonal_net`. With a sequence of learning rates every tensor gains a
    leading run dimension ``R``; histories are indexed by ``record_steps``.

    Attributes:
        beta, u, v: final weights, shape ``(R?, d)``.
        trace, lam_max: final ``Tr G`` and ``lambda_max(G)``.
        record_steps: steps at which histories were recorded, shape ``(K,)``.
        trace_history, lam_max_history, l1_history, loss_history: shape ``(K, R?)``; ``l1_history``
            is ``4 sum_j sigma_j^2 |beta_j|`` and ``loss_history`` the full-batch training loss.
        diverged: bool ``(R?,)``; ``diverged_at``: step or ``-1``.
        beta_history: ``beta`` at the recorded steps, shape ``(K, R?, d)`` (the saddle-to-saddle
            chapter reads activation times from it).
    """

    lr: torch.Tensor
    batch_size: int | None
    beta: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor
    trace: torch.Tensor
    lam_max: torch.Tensor
    record_steps: torch.Tensor
    trace_history: torch.Tensor
    lam_max_history: torch.Tensor
    l1_history: torch.Tensor
    loss_history: torch.Tensor
    diverged: torch.Tensor
    diverged_at: torch.Tensor
    beta_history: torch.Tensor | None = None

    def __post_init__(self):
        to_host(self)  # records are read on the host (see backend.to_host)


def train_diagonal_net(X, y, *, lr: float | Sequence[float], steps: int, batch_size: int | None = None,
                       init_scale: float = 0.5, generator: int | torch.Generator = 0, warmup_steps: int = 0,
                       record_every: int = 500, blowup: float = 1e6) -> DiagonalNetRun:
    """Train ``f(x) = <u*u - v*v, x>`` on the square loss with GD or SGD (eq-stab-diagonal-net).

    The loss on a batch ``b`` is ``L_b = (1/2|b|) sum_{i in b} (f(x_i) - y_i)^2``. ``batch_size=None``
    is full-batch GD; otherwise each step draws ``batch_size`` distinct samples uniformly (the same
    draws for every learning rate of a batched call, so runs differ only through ``lr``). The
    learning rate warms up linearly, ``lr_t = lr * min(1, (t + 1) / warmup_steps)``. Initialisation
    is ``u = v = init_scale`` (so ``beta = 0``).

    Args:
        X, y: training data, shapes ``(n, d)`` and ``(n,)``.
        lr: learning rate, or a sequence of them trained side by side as a batch of runs.
        steps: number of updates.
        batch_size: ``None`` for GD, else ``1 <= batch_size <= n``.
        init_scale: ``alpha`` of the initialisation ``u = v = alpha 1``.
        generator: seed or generator for the minibatch draws.
        warmup_steps: length of the linear warm-up (0: constant ``lr`` from step 0).
        record_every: record ``Tr G``, ``lambda_max(G)`` and the loss every this many steps.
        blowup: a run whose ``|beta|`` exceeds this diverged; it is frozen and flagged.

    Returns:
        A :class:`DiagonalNetRun`.
    """
    X = as_tensor(X, name="X")
    y = as_tensor(y, name="y", dtype=X.dtype, device=X.device)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"X: expected X of shape (n, d) and y of shape (n,), got {tuple(X.shape)} and {tuple(y.shape)}")
    n, d = X.shape
    scalar = isinstance(lr, (int, float))
    lrs = torch.as_tensor([lr] if scalar else list(lr), dtype=X.dtype, device=X.device)
    if lrs.numel() == 0 or not bool(torch.isfinite(lrs).all()) or bool((lrs < 0).any()):
        raise ValueError(f"lr: expected non-negative finite learning rate(s), got {lr!r}")
    steps = check_count(steps, name="steps")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                   or not 1 <= batch_size <= n):
        raise ValueError(f"batch_size: expected None (GD) or an int in [1, n={n}], got {batch_size!r}")
    init_scale = check_positive(init_scale, name="init_scale")
    warmup_steps = check_count(warmup_steps, name="warmup_steps", minimum=0)
    record_every = check_count(record_every, name="record_every")
    blowup = check_positive(blowup, name="blowup")
    gen = as_generator(generator, X.device)

    R = lrs.numel()
    u = torch.full((R, d), init_scale, dtype=X.dtype, device=X.device)
    v = u.clone()
    at = torch.full((R,), -1, dtype=torch.long, device=X.device)
    rec_steps, traces, lams, l1s, losses, betas = [], [], [], [], [], []

    def record(step):
        beta = u**2 - v**2
        gn = gauss_newton(diagonal_net_jacobian(u, v, X))
        rec_steps.append(step)
        betas.append(beta)
        traces.append(gn.trace)
        lams.append(gn.lam_max)
        l1s.append(weighted_l1(beta, X))
        losses.append(0.5 * ((beta @ X.T - y) ** 2).mean(dim=-1))

    record(0)
    for t in range(steps):
        if batch_size is None:
            Xb, yb = X, y
        elif batch_size == 1:
            i = torch.randint(n, (1,), generator=gen, device=X.device)
            Xb, yb = X[i], y[i]
        else:
            i = torch.randperm(n, generator=gen, device=X.device)[:batch_size]
            Xb, yb = X[i], y[i]
        eta = lrs * min(1.0, (t + 1) / warmup_steps) if warmup_steps else lrs
        beta = u**2 - v**2
        g = (beta @ Xb.T - yb) @ Xb / Xb.shape[0]  # dL/dbeta, shape (R, d)
        step = (2 * eta * (at < 0))[:, None] * g
        u, v = u - step * u, v + step * v
        if (t + 1) % 256 == 0 or t + 1 == steps:  # cheap divergence check, frozen per run
            # weights that decay multiplicatively towards 0 reach subnormal floats, which are ~10x
            # slower on CPUs; below 1e-150 they are zero for every practical purpose
            u = torch.where(u.abs() < 1e-150, torch.zeros_like(u), u)
            v = torch.where(v.abs() < 1e-150, torch.zeros_like(v), v)
            bad = (~torch.isfinite(u).all(dim=1) | ~torch.isfinite(v).all(dim=1)
                   | ((u**2 - v**2).abs().amax(dim=1) > blowup)) & (at < 0)
            if bool(bad.any()):
                at = torch.where(bad, torch.full_like(at, t + 1), at)
                u = torch.where(bad[:, None], torch.zeros_like(u), u)
                v = torch.where(bad[:, None], torch.zeros_like(v), v)
        if (t + 1) % record_every == 0 or t + 1 == steps:
            record(t + 1)

    pick = (lambda t: t[..., 0]) if scalar else (lambda t: t)  # histories are (K, R)
    stack = lambda items: pick(torch.stack(items))  # noqa: E731
    squeeze = (lambda t: t[0]) if scalar else (lambda t: t)
    return DiagonalNetRun(
        lr=squeeze(lrs), batch_size=batch_size, beta=squeeze(u**2 - v**2), u=squeeze(u), v=squeeze(v),
        trace=squeeze(traces[-1]), lam_max=squeeze(lams[-1]),
        record_steps=torch.tensor(rec_steps, device=X.device), trace_history=stack(traces),
        lam_max_history=stack(lams), l1_history=stack(l1s), loss_history=stack(losses),
        diverged=squeeze(at >= 0), diverged_at=squeeze(at),
        beta_history=torch.stack(betas)[:, 0] if scalar else torch.stack(betas),
    )


def top_direction(u: torch.Tensor, v: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Unit top eigenvector of ``G`` in ``(u, v)`` coordinates, shape ``(2d,)`` (for one run)."""
    J = diagonal_net_jacobian(u, v, X)
    evals, evecs = torch.linalg.eigh(J @ J.T)
    w = J.T @ evecs[:, -1]
    return w / w.norm()


def perturbation_growth(u, v, X, y, *, lr: float, eps: float = 1e-8, steps: int = 200) -> torch.Tensor:
    """Distance from the minimum after perturbing ``(u, v)`` by ``eps`` along G's top eigenvector
    and running ``steps`` steps of constant-``lr`` GD (eq-stab-gd): grows iff ``lr lambda_max > 2``.

    Returns:
        ``||(u_k, v_k) - (u, v)||`` for ``k = 0..steps``, shape ``(steps + 1,)``.
    """
    lr = check_lr(lr)
    eps = check_positive(eps, name="eps")
    d = u.shape[-1]
    start = torch.cat([u, v])
    theta = start + eps * top_direction(u, v, X)
    dist = [float(eps)]
    for _ in range(check_count(steps, name="steps")):
        uu, vv = theta[:d], theta[d:]
        g = ((uu**2 - vv**2) @ X.T - y) @ X / X.shape[0]
        theta = torch.cat([uu - 2 * lr * g * uu, vv + 2 * lr * g * vv])
        dist.append(float((theta - start).norm()))
    return torch.tensor(dist, dtype=X.dtype)
