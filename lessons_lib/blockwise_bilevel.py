"""Multi-block bilevel optimisation: blockwise variance reduction (MSVR) and BSVRB on a hyper-cleaning toy.

A multi-block bilevel problem has one upper variable ``p`` and ``m`` lower problems,
``F(p) = (1/m) sum_i f_i(w_i*(p))`` with ``w_i*(p) = argmin_w g_i(p, w)`` (eq-bsvrb-problem). Its
gradient follows from implicit differentiation (eq-bsvrb-hypergradient). BSVRB samples ``I`` of the
``m`` blocks and ``B`` data points per iteration, and keeps one running estimate per block of each
block quantity it needs (the lower gradient and the lower Hessian), updated only when the block is
sampled by the MSVR rule (eq-bsvrb-msvr)::

    u_i <- (1 - alpha) u_i + (alpha + gamma) h_i(new; xi) - gamma h_i(old; xi),

with the same sample ``xi`` at the new and the old point; the weight ``gamma`` of the correction
follows eq-bsvrb-gamma in the authors' code.

The toy (eq-bsvrb-tasks) is a miniature of the paper's hyper-cleaning experiment: ``p`` holds one
weight ``sigmoid(p_j)`` per training point (20 % of whose labels are flipped), task ``i`` fits a
ridge-regularised logistic regression with the loss scaled by ``s_i``, and the upper loss is the
validation logistic loss. ``F`` and its gradient are exact (Newton-solved lower problems).

References:
    Hu, Qiu, Guo, Zhang & Yang (2023), Blockwise Stochastic Variance-Reduced Methods with Parallel
    Speedup for Multi-Block Bilevel Optimization, ICML, arXiv:2305.18730 (authors' code:
    github.com/quanqihu/BSVRB_ICML2023).
    Jiang, Li, Wang, Zhang & Yang (2022), Multi-block-single-probe variance reduced estimator for
    coupled compositional optimization (MSVR), NeurIPS, arXiv:2207.08540.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as tnf

from . import run as runner
from .backend import Record, as_generator, as_tensor, check_count, check_positive, default_device


def _loss_terms(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``l(z) = log(1 + e^{-z})``, ``l'(z) = -sigmoid(-z)`` and ``l''(z) = sigmoid(z) sigmoid(-z)``."""
    return tnf.softplus(-z), -torch.sigmoid(-z), torch.sigmoid(z) * torch.sigmoid(-z)


@dataclass(frozen=True)
class LogisticTasks:
    """The hyper-cleaning toy of eq-bsvrb-tasks with exact oracles.

    Attributes:
        X_train: training inputs, shape ``(n, d)``. y_train: labels in ``{-1, +1}``, shape ``(n,)``.
        flipped: which training labels were flipped, bool, shape ``(n,)``.
        X_val: validation inputs, shape ``(n_val, d)``. y_val: clean validation labels of every task,
            shape ``(m, n_val)`` (identical rows unless the tasks' teachers differ, ``shift > 0``).
        s: the tasks' loss scalings ``s_i``, shape ``(m,)``. lam: the ridge strength ``lambda > 0``.
    """

    X_train: torch.Tensor
    y_train: torch.Tensor
    flipped: torch.Tensor
    X_val: torch.Tensor
    y_val: torch.Tensor
    s: torch.Tensor
    lam: float

    @property
    def sizes(self) -> tuple[int, int, int, int]:
        """``(m, n, n_val, d)``."""
        return self.s.shape[0], self.X_train.shape[0], self.X_val.shape[0], self.X_train.shape[1]

    # -- the lower and upper oracles of the tasks ``tasks`` (shape (k,)) on rows ``rows`` (shape (k, b)) ----------
    def _train(self, p, w, tasks, rows):
        """Sampled pieces; ``p`` of shape ``(n,)`` or one per task ``(k, n)``."""
        x, y, s = self.X_train[rows], self.y_train[rows], self.s[tasks][:, None]  # (k, b, d), (k, b), (k, 1)
        z = s * y * torch.einsum("kbd,kd->kb", x, w)
        return x, y, s, z, torch.sigmoid(p.gather(1, rows) if p.ndim == 2 else p[rows])

    def lower_grad(self, p, w, tasks, rows) -> torch.Tensor:
        """``grad_w g_i`` on the sample ``rows`` for each task, shape ``(k, d)`` (``w`` of shape ``(k, d)``)."""
        x, y, s, z, q = self._train(p, w, tasks, rows)
        return torch.einsum("kb,kbd->kd", q * _loss_terms(z)[1] * s * y, x) / rows.shape[1] + self.lam * w

    def lower_hessian(self, p, w, tasks, rows) -> torch.Tensor:
        """``grad2_ww g_i`` on the sample, shape ``(k, d, d)``."""
        x, y, s, z, q = self._train(p, w, tasks, rows)
        c = q * _loss_terms(z)[2] * s**2 / rows.shape[1]
        eye = torch.eye(w.shape[-1], dtype=w.dtype, device=w.device)
        return torch.einsum("kb,kbd,kbe->kde", c, x, x) + self.lam * eye

    def cross_times(self, p, w, tasks, rows, v) -> torch.Tensor:
        """``sum_i grad2_pw g_i . v_i`` over the tasks, shape ``(n,)``: nonzero only at the sampled rows."""
        x, y, s, z, q = self._train(p, w, tasks, rows)
        c = q * (1 - q) * _loss_terms(z)[1] * s * y * torch.einsum("kbd,kd->kb", x, v) / rows.shape[1]
        return p.new_zeros(p.shape[-1]).index_add_(0, rows.reshape(-1), c.reshape(-1))

    def upper_grad(self, w, tasks, rows) -> torch.Tensor:
        """``grad_w f_i`` (validation logistic loss) on validation rows ``rows``, shape ``(k, d)``."""
        x, y, s = self.X_val[rows], self.y_val[tasks[:, None], rows], self.s[tasks][:, None]
        z = s * y * torch.einsum("kbd,kd->kb", x, w)
        return torch.einsum("kb,kbd->kd", _loss_terms(z)[1] * s * y, x) / rows.shape[1]

    def _all(self, count: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        dev = self.X_train.device
        return torch.arange(count, device=dev), torch.arange(size, device=dev).expand(count, size)

    def lower_solution(self, p: torch.Tensor, *, tol: float = 1e-12, max_iter: int = 50) -> torch.Tensor:
        """``w_i*(p)`` of every task by Newton's method from 0, shape ``(m, d)`` (``p`` of shape ``(n,)``)."""
        m, n, _, d = self.sizes
        tasks, rows = self._all(m, n)
        w = torch.zeros(m, d, dtype=p.dtype, device=p.device)
        for _ in range(max_iter):
            g = self.lower_grad(p, w, tasks, rows)
            w = w - torch.linalg.solve(self.lower_hessian(p, w, tasks, rows), g)
            if float(g.norm()) < tol:
                break
        return w

    def F(self, p: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        """``F(p) = (1/m) sum_i f_i(w_i*(p))``, the mean validation loss at the lower solutions (a scalar).

        ``w``: the lower solutions ``w*(p)`` if already known, shape ``(m, d)``.
        """
        w = self.lower_solution(p) if w is None else w
        z = self.s[:, None] * self.y_val * (w @ self.X_val.T)
        return _loss_terms(z)[0].mean()

    def hypergradient(self, p: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        """``grad F(p) = -(1/m) sum_i grad2_pw g_i [grad2_ww g_i]^{-1} grad_w f_i`` at ``w*`` (eq-bsvrb-hypergradient).

        Args:
            p: shape ``(n,)``.
            w: the lower solutions ``w*(p)`` if already known, shape ``(m, d)``; solved for otherwise.

        Returns:
            The exact gradient of ``F``, shape ``(n,)``.
        """
        m, n, n_val, _ = self.sizes
        w = self.lower_solution(p) if w is None else w
        tasks, rows = self._all(m, n)
        v = torch.linalg.solve(self.lower_hessian(p, w, tasks, rows),
                               self.upper_grad(w, tasks, self._all(m, n_val)[1]))
        return -self.cross_times(p, w, tasks, rows, v) / m


def weighted_logistic_tasks(m: int = 20, *, dim: int = 10, n_train: int = 200, n_val: int = 200,
                            lam: float = 0.01, flip: float = 0.2, s_range: tuple[float, float] = (0.5, 2.0),
                            shift: float = 0.0, generator: int | torch.Generator = 0,
                            device=None) -> LogisticTasks:
    """The hyper-cleaning toy of eq-bsvrb-tasks: ``m`` weighted logistic regressions sharing per-example weights.

    Inputs are standard normal in ``dim`` dimensions; labels are ``sign(x . w0)`` for a random unit
    teacher ``w0``, and a fraction ``flip`` of the training labels is flipped. Task ``i`` minimises
    ``g_i(p, w) = (1/n) sum_j sigmoid(p_j) log(1 + exp(-s_i y_j w . x_j)) + (lam/2) ||w||^2`` with
    ``s_i`` evenly spread over ``s_range`` (log scale), and its upper loss ``f_i`` is the validation
    logistic loss with the same ``s_i``. With ``shift > 0`` task ``i`` judges its validation points by
    its own teacher ``w0 + shift * e_i`` (``e_i`` standard normal): heterogeneous tasks.

    Args:
        m: number of tasks. dim: input dimension ``d``. n_train, n_val: numbers of points.
        lam: ridge strength ``> 0`` (the lower problems' curvature floor). flip: fraction in ``[0, 1)``.
        s_range: ``(low, high)``, ``0 < low <= high``. shift: teacher spread ``>= 0``.
        generator: int seed or generator. device: where the data live (default: the generator's, or
            :func:`lessons_lib.backend.default_device` for a seed).

    Returns:
        A :class:`LogisticTasks` with exact ``F``, ``hypergradient`` and sampled oracles.

    References:
        Hu, Qiu, Guo, Zhang & Yang (2023), arXiv:2305.18730, their hyperparameter-optimisation task.
    """
    m, dim = check_count(m, name="m"), check_count(dim, name="dim")
    n_train, n_val = check_count(n_train, name="n_train", minimum=2), check_count(n_val, name="n_val")
    lam, shift = check_positive(lam, name="lam"), check_positive(shift, name="shift", allow_zero=True)
    flip = check_positive(flip, name="flip", allow_zero=True)
    if flip >= 1:
        raise ValueError(f"flip: must be < 1, got {flip}")
    if not isinstance(s_range, (tuple, list)) or len(s_range) != 2:
        raise ValueError(f"s_range: expected (low, high), got {s_range!r}")
    lo, hi = (check_positive(v, name="s_range") for v in s_range)
    if lo > hi:
        raise ValueError(f"s_range: low must be <= high, got {s_range!r}")
    gen = as_generator(generator, device if device is not None else
                       (generator.device if isinstance(generator, torch.Generator) else default_device()))
    kw = dict(generator=gen, dtype=torch.float64, device=gen.device)
    w0 = torch.randn(dim, **kw)
    w0 = w0 / w0.norm()
    X_train, X_val = torch.randn(n_train, dim, **kw), torch.randn(n_val, dim, **kw)
    y_train = torch.where(X_train @ w0 >= 0, 1.0, -1.0).to(torch.float64)
    flipped = torch.zeros(n_train, dtype=torch.bool, device=gen.device)
    flipped[torch.randperm(n_train, generator=gen, device=gen.device)[: round(flip * n_train)]] = True
    y_train = torch.where(flipped, -y_train, y_train)
    teachers = w0 + shift * torch.randn(m, dim, **kw)
    y_val = torch.where(teachers @ X_val.T >= 0, 1.0, -1.0).to(torch.float64)
    s = torch.exp(torch.linspace(math.log(lo), math.log(hi), m, dtype=torch.float64, device=gen.device))
    return LogisticTasks(X_train, y_train, flipped, X_val, y_val, s, lam)


def msvr_update(u, h_new, h_old, *, alpha: float, gamma: float) -> torch.Tensor:
    """The MSVR update of a block estimate (eq-bsvrb-msvr): ``(1 - alpha) u + (alpha + gamma) h_new - gamma h_old``.

    ``h_new`` and ``h_old`` are the block quantity at the new and the old point *on the same sample*;
    ``gamma = 0`` is a moving average, ``gamma = 1 - alpha`` is STORM's recursive momentum.

    Args:
        u: the current estimates, any shape. h_new, h_old: the same shape.
        alpha: the averaging weight in ``[0, 1]``. gamma: the correction weight ``>= 0``.

    Returns:
        The new estimates, the shape of ``u``.

    References:
        Hu, Qiu, Guo, Zhang & Yang (2023), arXiv:2305.18730; Jiang, Li, Wang, Zhang & Yang (2022),
        arXiv:2207.08540 (MSVR).
    """
    u = as_tensor(u, name="u", dtype=None)
    h_new = as_tensor(h_new, name="h_new", dtype=u.dtype, device=u.device)
    h_old = as_tensor(h_old, name="h_old", dtype=u.dtype, device=u.device)
    for name, v in (("h_new", h_new), ("h_old", h_old)):
        if v.shape != u.shape:
            raise ValueError(f"{name}: expected the shape of u {tuple(u.shape)}, got {tuple(v.shape)}")
    alpha, gamma = _check_alpha(alpha), check_positive(gamma, name="gamma", allow_zero=True)
    return (1 - alpha) * u + (alpha + gamma) * h_new - gamma * h_old


def msvr_step(u, blocks, h_new, h_old, *, alpha: float, gamma: float) -> torch.Tensor:
    """One blockwise MSVR step (eq-bsvrb-msvr): update the sampled blocks' estimates, keep the others.

    This is the step BSVRB takes for its tracked lower gradients and Hessians: row ``blocks[k]`` of
    ``u`` becomes ``(1 - alpha) u[blocks[k]] + (alpha + gamma) h_new[k] - gamma h_old[k]``, where
    ``h_new[k]`` and ``h_old[k]`` are block ``blocks[k]``'s quantity at the new and the old point on
    the same sample; rows not in ``blocks`` are returned unchanged (``u`` itself is not modified).

    Args:
        u: the ``m`` block estimates, shape ``(m, ...)``.
        blocks: the sampled blocks, distinct integers in ``[0, m)``, shape ``(I,)``.
        h_new, h_old: the sampled blocks' quantity at the new and the old point, shape ``(I, ...)``.
        alpha: the averaging weight in ``[0, 1]``. gamma: the correction weight ``>= 0``.

    Returns:
        The new estimates, shape ``(m, ...)``.

    References:
        Hu, Qiu, Guo, Zhang & Yang (2023), arXiv:2305.18730; Jiang, Li, Wang, Zhang & Yang (2022),
        arXiv:2207.08540 (MSVR).
    """
    u = as_tensor(u, name="u", dtype=None)
    if u.ndim == 0:
        raise ValueError("u: expected one row per block, shape (m, ...), got a scalar")
    if not u.is_floating_point():
        raise ValueError(f"u: expected floating-point estimates, got dtype {u.dtype}")
    blocks = torch.as_tensor(blocks, device=u.device)
    if blocks.ndim != 1 or blocks.dtype.is_floating_point or blocks.dtype == torch.bool:
        raise ValueError(f"blocks: expected a 1-d tensor of integer block indices, got {blocks!r}")
    if blocks.numel() and (int(blocks.min()) < 0 or int(blocks.max()) >= u.shape[0]):
        raise ValueError(f"blocks: indices must lie in [0, {u.shape[0]}), got {blocks.tolist()}")
    if blocks.unique().numel() != blocks.numel():
        raise ValueError(f"blocks: must be distinct (sampled without replacement), got {blocks.tolist()}")
    want = (blocks.numel(), *u.shape[1:])
    h_new = as_tensor(h_new, name="h_new", dtype=u.dtype, device=u.device)
    h_old = as_tensor(h_old, name="h_old", dtype=u.dtype, device=u.device)
    for name, v in (("h_new", h_new), ("h_old", h_old)):
        if tuple(v.shape) != want:
            raise ValueError(f"{name}: expected one row per sampled block, shape {want}, got {tuple(v.shape)}")
    alpha, gamma = _check_alpha(alpha), check_positive(gamma, name="gamma", allow_zero=True)
    return _msvr_step(u, blocks, h_new, h_old, alpha, gamma)


def _msvr_step(u, blocks, h_new, h_old, alpha, gamma):
    """:func:`msvr_step` without the checks (the loops call it twice an iteration)."""
    out = u.clone()
    out[blocks] = (1 - alpha) * u[blocks] + (alpha + gamma) * h_new - gamma * h_old
    return out


def _check_alpha(alpha) -> float:
    alpha = check_positive(alpha, name="alpha", allow_zero=True)
    if alpha > 1:
        raise ValueError(f"alpha: must be in [0, 1], got {alpha}")
    return alpha


def msvr_gamma(m: int, I: int, alpha: float) -> float:  # noqa: E741 (I is the paper's symbol)
    """The correction weight of the authors' code, ``gamma = (m - I) / (I (1 - alpha))`` (eq-bsvrb-gamma).

    It is ``0`` for ``alpha = 1`` and for ``I = m`` (every block sampled: then MSVR is a plain moving
    average, not STORM's ``gamma = 1 - alpha``).

    Args:
        m: number of blocks. I: blocks sampled per iteration, ``1 <= I <= m``. alpha: in ``(0, 1]``.

    Returns:
        ``gamma >= 0``.

    References:
        Hu, Qiu, Guo, Zhang & Yang (2023), arXiv:2305.18730 (code option ``--auto_gamma``).
    """
    m, I = check_count(m, name="m"), check_count(I, name="I")  # noqa: E741
    if I > m:
        raise ValueError(f"I: at most m = {m} blocks can be sampled, got {I}")
    alpha = _check_alpha(alpha)
    if alpha == 0:
        raise ValueError("alpha: must be > 0 (the rule divides by I (1 - alpha) and needs alpha > 0)")
    return 0.0 if alpha == 1 else (m - I) / (I * (1 - alpha))


@dataclass(frozen=True)
class Tracking(Record):
    """What :func:`tracking_demo` returns (on the host).

    Attributes:
        error: ``||u_t - h(x_t)|| / sqrt(m)`` at steps ``0..steps``, shape ``(steps + 1,)``, or
            ``(steps + 1, R)`` for ``R`` (alpha, gamma) pairs run on the same draws.
        alpha, gamma: the pairs, shape ``(R,)`` (``(1,)`` for one pair).
    """

    error: torch.Tensor
    alpha: torch.Tensor
    gamma: torch.Tensor


def _pairs(alpha, gamma) -> tuple[torch.Tensor, torch.Tensor, bool]:
    batched = not isinstance(alpha, (int, float)) or not isinstance(gamma, (int, float))
    a = as_tensor(alpha, name="alpha", device="cpu").reshape(-1)
    g = as_tensor(gamma, name="gamma", device="cpu").reshape(-1)
    if a.numel() == 0 or g.numel() == 0:
        raise ValueError("alpha: expected at least one value (and gamma too)")
    if bool(((a < 0) | (a > 1)).any()):
        raise ValueError("alpha: every value must be in [0, 1]")
    if bool((g < 0).any()):
        raise ValueError("gamma: every value must be >= 0")
    try:
        a, g = torch.broadcast_tensors(a, g)
    except RuntimeError:
        raise ValueError(f"gamma: expected one value or one per alpha ({a.numel()}), got {g.numel()}") from None
    return a, g, batched


def tracking_demo(m: int = 50, I: int = 5, *, alpha=0.1, gamma=0.0, steps: int = 4000,  # noqa: E741
                  noise: float = 0.1, drift: float = 0.01, generator: int | torch.Generator = 0) -> Tracking:
    """Track ``m`` drifting block values with MSVR, sampling ``I`` blocks a step (eq-bsvrb-msvr).

    Block ``i``'s value is ``h_i(x) = A_i sin(C_i x)`` with ``A_i``, ``C_i`` standard normal
    ``4 x 4`` matrices; ``x`` (4 numbers) moves by ``drift`` a step along one random direction
    (drawn once); the estimates start exact. Each step samples ``I`` blocks without replacement and
    updates them by the MSVR step (:func:`msvr_step`) with ``h_i(x_new) + noise * xi`` and
    ``h_i(x_old) + noise * xi`` (the same draw ``xi`` at both points); the other blocks keep their
    estimates.

    Args:
        m: number of blocks. I: blocks per step, ``1 <= I <= m``.
        alpha: averaging weight in ``[0, 1]``, a number or ``R`` numbers. gamma: correction weight
            ``>= 0``, a number or ``R`` numbers (pairs with ``alpha``; all pairs see the same draws).
        steps: number of steps. noise: sample noise ``>= 0``. drift: step length of ``x``, ``>= 0``.
        generator: int seed or generator (CPU).

    Returns:
        A :class:`Tracking` record.

    References:
        Hu, Qiu, Guo, Zhang & Yang (2023), arXiv:2305.18730 (the MSVR estimator of BSVRB).
    """
    m, I = check_count(m, name="m"), check_count(I, name="I")  # noqa: E741
    if I > m:
        raise ValueError(f"I: at most m = {m} blocks can be sampled, got {I}")
    steps = check_count(steps, name="steps", minimum=0)
    noise, drift = check_positive(noise, name="noise", allow_zero=True), check_positive(drift, name="drift",
                                                                                         allow_zero=True)
    a, g, batched = _pairs(alpha, gamma)
    gen = as_generator(generator, "cpu")
    kw = dict(generator=gen, dtype=torch.float64)
    A, Bm = torch.randn(m, 4, 4, **kw), torch.randn(m, 4, 4, **kw)

    def h(x):
        return torch.einsum("mij,mj->mi", A, torch.sin(Bm @ x))  # (m, 4)

    x, direction = torch.randn(4, **kw), torch.randn(4, **kw)
    step = drift * direction / direction.norm()
    u = h(x)[None].expand(a.numel(), m, 4).clone()  # (R, m, 4)
    aa, gg = a[:, None, None], g[:, None, None]
    errors = [torch.zeros(a.numel(), dtype=torch.float64)]
    for _ in range(steps):
        x_new = x + step
        blocks = torch.randperm(m, generator=gen)[:I]
        xi = noise * torch.randn(I, 4, **kw)
        new, old = h(x_new), h(x)
        u[:, blocks] = (1 - aa) * u[:, blocks] + (aa + gg) * (new[blocks] + xi) - gg * (old[blocks] + xi)
        x = x_new
        errors.append((u - new).flatten(1).norm(dim=1) / math.sqrt(m))
    err = torch.stack(errors)
    return Tracking(err if batched else err[:, 0], a, g)


@dataclass(frozen=True)
class BSVRBRun(Record):
    """What :func:`bsvrb` returns (on the host).

    Attributes:
        steps: recorded iterations, shape ``(K,)``.
        grad_norm: the exact ``||grad F(p_t)||``, shape ``(K,)``. F: ``F(p_t)``, shape ``(K,)``.
        p: the final upper variable, shape ``(n,)``.
        samples: data points drawn per iteration, ``2 I B`` (training and validation).
        diverged: bool. diverged_at: ``-1`` where the run did not diverge.
    """

    steps: torch.Tensor
    grad_norm: torch.Tensor
    F: torch.Tensor
    p: torch.Tensor
    samples: int
    diverged: torch.Tensor
    diverged_at: torch.Tensor


def _bsvrb_step(problem: LogisticTasks, state, *, eta, I, B, tau, beta, alpha, gamma, gen):  # noqa: E741
    """One BSVRB (v1) iteration on ``state = (p, p_old, w, w_old, s, H, z)``.

    The new and the old point are evaluated in one batch of ``2 I`` rows (tasks, then the same tasks).
    """
    p, p_old, w, w_old, s, H, z = state
    m, n, n_val, _ = problem.sizes
    dev = p.device
    tasks = torch.randperm(m, generator=gen, device=dev)[:I]
    rows = torch.randint(n, (I, B), generator=gen, device=dev)
    vrows = torch.randint(n_val, (I, B), generator=gen, device=dev)
    t2, r2, v2 = torch.cat([tasks, tasks]), torch.cat([rows, rows]), torch.cat([vrows, vrows])
    p2 = torch.stack([p, p_old]).repeat_interleave(I, dim=0)  # (2I, n)
    w2 = torch.cat([w[tasks], w_old[tasks]])
    gs = problem.lower_grad(p2, w2, t2, r2)
    hs = problem.lower_hessian(p2, w2, t2, r2)
    H_prev = H
    s = _msvr_step(s, tasks, gs[:I], gs[I:], alpha, gamma)
    H = _msvr_step(H, tasks, hs[:I], hs[I:], alpha, gamma)
    v = torch.linalg.solve(torch.cat([H[tasks], H_prev[tasks]]), problem.upper_grad(w2, t2, v2))
    v = torch.cat([v[:I], -(1 - beta) * v[I:]]) / I  # G_new / I - (1 - beta) G_old / I in one sum
    z = (1 - beta) * z - problem.cross_times(p2, w2, t2, r2, v)
    return p - eta * z, p, w - tau * s, w, s, H, z


def bsvrb(problem: LogisticTasks, *, iters: int = 400, I: int = 5, B: int = 32, eta: float = 100.0,  # noqa: E741
          tau: float = 0.5, beta: float = 0.9, alpha: float = 0.9, gamma: float = 1.0,
          generator: int | torch.Generator = 0, record_every: int = 10, blowup: float = 1e6) -> BSVRBRun:
    """Run BSVRB (v1, eq-bsvrb-v1) on the hyper-cleaning toy from ``p = 0``, ``w_i = 0``.

    Every iteration samples ``I`` tasks without replacement and, for each, ``B`` training and ``B``
    validation points. For the sampled tasks it updates the tracked lower gradient ``q_i`` and the
    tracked Hessian ``H_i`` by :func:`msvr_step` (the same sample at the new and the old point),
    forms ``G = -(1/I) sum_i grad2_pw g_i H_i^{-1} grad_w f_i`` at the new and (with the previous
    ``H_i``) the old point, takes a STORM step ``z <- (1 - beta)(z - G_old) + G_new``,
    ``p <- p - eta z``, and moves *every* ``w_i <- w_i - tau q_i``. Tracked Hessians start at the
    identity and are not projected; ``q`` and ``z`` start at zero. Runs through
    :func:`lessons_lib.run.run` (divergence: the state leaves ``blowup`` times its start's norm).

    Args:
        problem: a :class:`LogisticTasks`.
        iters: iterations. I: tasks per iteration, ``1 <= I <= m``. B: points per task, ``>= 1``.
        eta: upper step ``> 0`` (the learning rate). tau: lower step ``> 0``.
        beta: STORM weight in ``(0, 1]``. alpha: MSVR weight in ``[0, 1]``. gamma: correction ``>= 0``.
        generator: int seed or generator. record_every: recording interval (exact ``||grad F||``).
        blowup: divergence radius factor.

    Returns:
        A :class:`BSVRBRun`.

    References:
        Hu, Qiu, Guo, Zhang & Yang (2023), Blockwise Stochastic Variance-Reduced Methods with Parallel
        Speedup for Multi-Block Bilevel Optimization, ICML, arXiv:2305.18730 (BSVRB v1).
    """
    if not isinstance(problem, LogisticTasks):
        raise ValueError("problem: expected LogisticTasks from weighted_logistic_tasks(), got "
                         f"{type(problem).__name__}")
    m, n, _, d = problem.sizes
    iters, I, B = check_count(iters, name="iters", minimum=0), check_count(I, name="I"), check_count(B, name="B")  # noqa: E741
    if I > m:
        raise ValueError(f"I: at most m = {m} tasks can be sampled, got {I}")
    eta, tau = check_positive(eta, name="eta"), check_positive(tau, name="tau")
    beta, alpha = check_positive(beta, name="beta"), _check_alpha(alpha)
    if beta > 1:
        raise ValueError(f"beta: must be in (0, 1], got {beta}")
    gamma = check_positive(gamma, name="gamma", allow_zero=True)
    record_every = check_count(record_every, name="record_every")
    dev = problem.X_train.device
    gen = as_generator(generator, dev)
    kw = dict(dtype=torch.float64, device=dev)
    p0, w0 = torch.zeros(n, **kw), torch.zeros(m, d, **kw)
    H0 = torch.eye(d, **kw).expand(m, d, d).clone()
    state0 = (p0, p0.clone(), w0, w0.clone(), torch.zeros(m, d, **kw), H0, torch.zeros(n, **kw))

    def step(state, t, lr):
        return _bsvrb_step(problem, state, eta=lr, I=I, B=B, tau=tau, beta=beta, alpha=alpha, gamma=gamma, gen=gen)

    def record(state, t):
        p = state[0]
        w = problem.lower_solution(p)
        return {"grad_norm": problem.hypergradient(p, w).norm(), "F": problem.F(p, w)}

    out = runner.run(step, state0, steps=iters, lr=eta, record=record, record_every=record_every, blowup=blowup)
    return BSVRBRun(out.steps, out.history["grad_norm"], out.history["F"], out.state[0], 2 * I * B,
                    out.diverged, out.diverged_at)
