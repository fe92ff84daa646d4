"""Gradient sliding: many cheap subgradient steps on h for every gradient of f, and the price of restarts.

The composite problem (eq-sliding-problem) is ``Psi(x) = f(x) + h(x) + chi(x)`` with ``f`` smooth
(``L``-Lipschitz gradient), ``h`` nonsmooth with subgradients bounded by ``M`` and ``chi`` simple
and ``mu``-strongly convex. The toy here is 1-D total-variation regression,
``f = ||A x - b||^2 / 2``, ``h = rho ||D x||_1`` (``D`` the forward difference) and
``chi = (mu / 2) ||x||^2``.

Lan's gradient sliding (GS, eq-sliding-outer) pays one gradient of ``f`` per outer step and then
*slides*: it freezes that gradient and takes ``T_k`` prox-subgradient steps on ``h + chi``, each a
closed form (eq-sliding-prox). The schedule (eq-sliding-schedule) is the one of Lan's textbook for
the convex case. Multi-phase GS (M-GS) restarts GS from its last averaged point with the distance
estimate ``D_tilde`` halved: ``O(log 1/eps)`` gradients and ``O(1/eps)`` subgradients in all, but
every restart first throws away the averaged point, so ``Psi`` jumps up (the sawtooth).

Wu, Xu & Zhang (2026) choose the parameters so that no restart is needed; their schedule is not
implemented here (it could not be obtained).

Every method is a step function handed to :func:`lessons_lib.run.run`, so divergence has the book's
one meaning. ``beta_scale`` multiplies ``beta_k``: the inner step is ``1 / beta_k``, so a small
``beta_scale`` is a long step.

References:
    Lan (2016), Gradient sliding for composite optimization, Mathematical Programming 159, 201-235.
    Wu, Xu & Zhang (2026), Restart-Free (Accelerated) Gradient Sliding Methods for Strongly Convex
    Composite Optimization, arXiv:2602.04161.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import run as runner
from .backend import (
    Record,
    as_generator,
    as_tensor,
    check_count,
    check_flag,
    check_float_tensor,
    check_positive,
    default_device,
)

_BLOWUP = 1e6  # the divergence radius of lessons_lib.run.run, relative to the start


@dataclass(frozen=True)
class TVProblem:
    """1-D total-variation regression (eq-sliding-problem) with its oracles.

    Attributes:
        A: the design, shape ``(m, n)``. b: the observations, shape ``(m,)``.
        D: the forward difference, shape ``(n - 1, n)``, ``(D x)_i = x_{i+1} - x_i``.
        x_true: the piecewise-constant signal behind ``b``, shape ``(n,)``.
        rho: the weight of the total variation. mu: the strong convexity of ``chi``.
        L: ``||A||_2^2``, the Lipschitz constant of ``grad f``.
        M: ``rho ||D||_2 sqrt(n - 1)``, a bound on ``||h'(x)||``.
    """

    A: torch.Tensor
    b: torch.Tensor
    D: torch.Tensor
    x_true: torch.Tensor
    rho: float
    mu: float
    L: float
    M: float

    def grad_f(self, x: torch.Tensor) -> torch.Tensor:
        """``A^T (A x - b)`` for points of shape ``(..., n)``: one gradient call."""
        return (x @ self.A.T - self.b) @ self.A

    def subgrad_h(self, x: torch.Tensor) -> torch.Tensor:
        """``rho D^T sign(D x)``, a subgradient of ``h`` (0 where ``D x`` is 0), shape ``(..., n)``."""
        return self.rho * torch.sign(x @ self.D.T) @ self.D

    def psi(self, x: torch.Tensor) -> torch.Tensor:
        """``Psi(x)`` of eq-sliding-problem, shape ``(...)`` for points of shape ``(..., n)``."""
        x = as_tensor(x, name="x", dtype=self.A.dtype, device=self.A.device)
        if x.shape[-1:] != (self.A.shape[1],):
            raise ValueError(f"x: expected points of shape (..., {self.A.shape[1]}), got {tuple(x.shape)}")
        return self._psi(x)

    def _psi(self, x: torch.Tensor) -> torch.Tensor:  # unchecked: recorded every step, inf past a huge state
        fit = 0.5 * (x @ self.A.T - self.b).pow(2).sum(-1)
        return fit + self.rho * (x @ self.D.T).abs().sum(-1) + 0.5 * self.mu * x.pow(2).sum(-1)


def tv_problem(n: int = 60, m: int = 120, *, rho: float = 0.5, mu: float = 0.3, noise: float = 0.1,
               jumps: int = 4, generator: int | torch.Generator = 0, dtype: torch.dtype = torch.float64,
               device=None) -> TVProblem:
    """Draw a TV-regression problem (eq-sliding-problem).

    ``A`` has i.i.d. ``N(0, 1/m)`` entries (so ``L = ||A||^2 ~ (1 + sqrt(n/m))^2``, about 3 for
    ``n = 60, m = 120``); ``x_true`` is piecewise constant with ``jumps`` jumps at distinct random
    places and ``N(0, 1)`` levels; ``b = A x_true + noise * xi`` with ``xi ~ N(0, I)``.

    Args:
        n: unknowns (``>= 2``). m: observations. rho: TV weight ``> 0``. mu: strong convexity ``> 0``.
        noise: the noise level ``>= 0``. jumps: number of jumps, ``1 <= jumps <= n - 1``.
        generator: an int seed or a ``torch.Generator``.
        dtype: float64 (default) or float32. device: default :func:`~lessons_lib.backend.default_device`.

    Returns:
        A :class:`TVProblem`.

    References:
        Lan (2016), Gradient sliding for composite optimization, Mathematical Programming 159, 201-235.
    """
    n, m = check_count(n, name="n", minimum=2), check_count(m, name="m")
    jumps = check_count(jumps, name="jumps")
    if jumps > n - 1:
        raise ValueError(f"jumps: at most n - 1 = {n - 1} jumps fit, got {jumps}")
    rho, mu = check_positive(rho, name="rho"), check_positive(mu, name="mu")
    noise = check_positive(noise, name="noise", allow_zero=True)
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype: expected torch.float32 or torch.float64, got {dtype}")
    try:
        device = torch.device(device) if device is not None else default_device()
        torch.empty(0, device=device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device: cannot compute on {device!r} ({exc})") from None
    try:
        gen = as_generator(generator, device)
    except ValueError as exc:
        raise ValueError(f"generator: {exc}") from None
    kw = dict(generator=gen, dtype=torch.float64, device=device)
    A = torch.randn(m, n, **kw) / math.sqrt(m)
    cuts = (torch.randperm(n - 1, generator=gen, device=device)[:jumps].sort().values + 1).tolist()
    levels = torch.randn(jumps + 1, **kw)
    edges = [0, *cuts, n]
    x_true = torch.cat([levels[i].expand(edges[i + 1] - edges[i]) for i in range(jumps + 1)])
    b = A @ x_true + noise * torch.randn(m, **kw)
    D = torch.diff(torch.eye(n, dtype=torch.float64, device=device), dim=0)
    L = float(torch.linalg.matrix_norm(A, 2)) ** 2
    M = rho * float(torch.linalg.matrix_norm(D, 2)) * math.sqrt(n - 1)
    return TVProblem(A.to(dtype), b.to(dtype), D.to(dtype), x_true.to(dtype), rho, mu, L, M)


def _check_problem(problem) -> TVProblem:
    if not isinstance(problem, TVProblem):
        raise ValueError(f"problem: expected a TVProblem from tv_problem(), got {type(problem).__name__}")
    return problem


def _start(problem: TVProblem, x0) -> torch.Tensor:
    n = problem.A.shape[1]
    if x0 is None:
        return torch.zeros(n, dtype=problem.A.dtype, device=problem.A.device)
    x0 = as_tensor(x0, name="x0", dtype=problem.A.dtype, device=problem.A.device)
    if x0.shape != (n,):
        raise ValueError(f"x0: expected shape ({n},), got {tuple(x0.shape)}")
    return x0


def prox_step(g: torch.Tensor, x: torch.Tensor, u_prev: torch.Tensor, *, beta, p: float,
              mu: float) -> torch.Tensor:
    """One prox-sliding step (eq-sliding-prox), in closed form.

    ``u = argmin_u <g, u> + (beta/2)||x - u||^2 + (beta p / 2)||u_prev - u||^2 + (mu/2)||u||^2``
    ``  = (beta (x + p u_prev) - g) / (beta (1 + p) + mu)``.

    Args:
        g: the whole linear term, ``g_k + h'(u_prev)`` (the frozen gradient of ``f`` plus a
            subgradient of ``h``), shape ``(..., n)``.
        x: the prox centre of the outer step, ``x_{k-1}``, shape ``(..., n)``.
        u_prev: the previous inner iterate, shape ``(..., n)``.
        beta: ``beta_k > 0``, a number or a tensor broadcasting against ``(..., 1)``.
        p: ``p_t >= 0``. mu: the strong convexity of ``chi``, ``>= 0``.

    Returns:
        ``u_t``, shape ``(..., n)``.

    References:
        Lan (2016), Gradient sliding for composite optimization, Mathematical Programming 159, 201-235.
    """
    g = as_tensor(g, name="g", dtype=None)
    x = as_tensor(x, name="x", dtype=None, device=g.device)
    u_prev = as_tensor(u_prev, name="u_prev", dtype=None, device=g.device)
    for name, v in (("g", g), ("x", x), ("u_prev", u_prev)):
        check_float_tensor(v, name=name)
    try:
        torch.broadcast_shapes(g.shape, x.shape, u_prev.shape)
    except RuntimeError:
        raise ValueError(f"u_prev: shapes of g {tuple(g.shape)}, x {tuple(x.shape)} and u_prev "
                         f"{tuple(u_prev.shape)} do not broadcast") from None
    if isinstance(beta, torch.Tensor):
        beta = as_tensor(beta, name="beta", dtype=None, device=g.device)
        if not bool((beta > 0).all()):
            raise ValueError("beta: must be > 0")
    else:
        beta = check_positive(beta, name="beta")
    p = check_positive(p, name="p", allow_zero=True)
    mu = check_positive(mu, name="mu", allow_zero=True)
    return _prox(g, x, u_prev, beta, p, mu)


def _prox(g, x, u_prev, beta, p, mu):
    return (beta * (x + p * u_prev) - g) / (beta * (1 + p) + mu)


def gs_schedule(k: int, *, L: float, M: float, D_tilde: float) -> tuple[float, int, float]:
    """Lan's convex-case GS parameters at outer step ``k`` (eq-sliding-schedule).

    ``gamma_k = 3/(k+2)``, ``T_k = ceil(M^2 (k+1)^3 / (D_tilde L^2))``,
    ``P_k = 2/((T_k+1)(T_k+2))`` and ``beta_k = 9 L (1 - P_k) / (2 (k+1))``.

    Args:
        k: the outer step, ``>= 1``. L: smoothness of ``f``. M: subgradient bound of ``h``.
        D_tilde: the distance estimate ``> 0`` (a squared distance).

    Returns:
        ``(gamma_k, T_k, beta_k)``.

    References:
        Lan (2016), Gradient sliding for composite optimization, Mathematical Programming 159, 201-235.
    """
    k = check_count(k, name="k")
    L, D_tilde = check_positive(L, name="L"), check_positive(D_tilde, name="D_tilde")
    M = check_positive(M, name="M", allow_zero=True)
    T = max(1, math.ceil(M * M * (k + 1) ** 3 / (D_tilde * L * L) - 1e-9))
    P = 2 / ((T + 1) * (T + 2))
    return 3 / (k + 2), T, 9 * L * (1 - P) / (2 * (k + 1))


@dataclass(frozen=True)
class SlidingRun(Record):
    """A GS, M-GS or subgradient run, recorded after every gradient call.

    Attributes:
        psi: ``Psi`` at the output point (``x_bar_k``, or the subgradient method's average) after each
            outer step, shape ``(K + 1,)`` or ``(K + 1, R)`` for ``R`` values of ``beta_scale``.
        grad_calls: gradient calls of ``f`` made so far, long ``(K + 1,)``.
        sub_calls: subgradient calls of ``h`` made so far, long ``(K + 1,)``.
        phase: the phase each row belongs to (0 for the start and for runs without phases), ``(K + 1,)``.
        x: the final output point, ``(n,)`` or ``(R, n)`` (a diverged run's: at the end of the phase in which it
            diverged).
        diverged, diverged_at: as in :mod:`lessons_lib.run` (``diverged_at`` counts gradient calls), with the
            ball around the first start for every phase; ``psi`` stays at its value from ``diverged_at`` on.
    """

    psi: torch.Tensor
    grad_calls: torch.Tensor
    sub_calls: torch.Tensor
    phase: torch.Tensor
    x: torch.Tensor
    diverged: torch.Tensor
    diverged_at: torch.Tensor

    @property
    def restarts(self) -> list[int]:
        """Rows that end the first outer step of a new phase: where the sawtooth jumps."""
        return [i for i in range(1, len(self.phase)) if int(self.phase[i]) != int(self.phase[i - 1])]


def _scales(beta_scale):
    if isinstance(beta_scale, (list, tuple)) or (isinstance(beta_scale, torch.Tensor) and beta_scale.ndim == 1):
        values = [check_positive(float(v), name="beta_scale") for v in beta_scale]
        if not values:
            raise ValueError("beta_scale: expected a number or a non-empty sequence of numbers")
        return values, True
    return check_positive(beta_scale, name="beta_scale"), False


def _gs(problem: TVProblem, x0: torch.Tensor, outer: int, D_tilde: float, scales: list):
    """One GS run from ``x = x_bar = x0``, shape ``(R, n)``, one row per scale: (psi history, T_k, run)."""
    sched = [gs_schedule(k, L=problem.L, M=problem.M, D_tilde=D_tilde) for k in range(1, outer + 1)]
    mu, DT, rhoD = problem.mu, problem.D.T, problem.rho * problem.D

    def step(state, t, scale):
        x, xbar = state
        gamma, T, beta = sched[t]
        beta = beta * runner.per_run(scale, x)
        g = problem.grad_f((1 - gamma) * xbar + gamma * x)  # the one gradient call of the step
        u, ubar = x, x.clone()
        for s in range(1, T + 1):  # prox-sliding: h' calls only, each step eq-sliding-prox
            u = _prox(torch.addmm(g, torch.sign(u @ DT), rhoD), x, u, beta, s / 2, mu)  # g + h'(u)
            ubar.lerp_(u, 2 * (s + 1) / (s * (s + 3)))  # (1 - theta_s) ubar + theta_s u
        return u, (1 - gamma) * xbar + gamma * ubar

    def record(state, t):
        return {"psi": problem._psi(state[1]), "size": torch.cat(state, -1).double().norm(dim=-1)}

    out = runner.run(step, (x0, x0), steps=outer, lr=scales, batched=True, record=record)
    _, hist = out.on_grid(outer)
    return hist, [T for _, T, _ in sched], out


def _pack(psi, calls, phases, out_x, diverged, at) -> SlidingRun:
    grad = torch.arange(len(calls), dtype=torch.long)
    return SlidingRun(psi=psi, grad_calls=grad, sub_calls=torch.tensor(calls, dtype=torch.long).cumsum(0),
                      phase=torch.tensor(phases, dtype=torch.long), x=out_x, diverged=diverged, diverged_at=at)


def gradient_sliding(problem: TVProblem, *, outer: int, D_tilde: float, beta_scale=1.0, x0=None) -> SlidingRun:
    """Lan's gradient sliding (eq-sliding-outer, eq-sliding-prox, eq-sliding-schedule), convex schedule.

    Each outer step ``k`` calls ``grad f`` once at ``x_low = (1 - gamma_k) x_bar + gamma_k x``, then
    takes ``T_k`` prox steps on ``<g_k, u> + h(u) + chi(u)`` around ``x`` and averages them.

    Args:
        problem: a :class:`TVProblem`. outer: outer steps ``N >= 1`` (gradient calls).
        D_tilde: the distance estimate in ``T_k`` (larger: fewer inner steps).
        beta_scale: multiplier of ``beta_k`` (the inner step is ``1/beta_k``), a number or a sequence
            of ``R`` numbers for a batch of runs.
        x0: the start, shape ``(n,)`` (default 0).

    Returns:
        A :class:`SlidingRun` with ``K = outer``.

    References:
        Lan (2016), Gradient sliding for composite optimization, Mathematical Programming 159, 201-235.
    """
    outer = check_count(outer, name="outer")
    D_tilde = check_positive(D_tilde, name="D_tilde")
    return multiphase_sliding(problem, phases=1, outer_per_phase=outer, D0=D_tilde, beta_scale=beta_scale, x0=x0)


def multiphase_sliding(problem: TVProblem, *, phases: int, outer_per_phase: int, D0: float, beta_scale=1.0,
                       restart: bool = True, x0=None) -> SlidingRun:
    """Lan's multi-phase GS (M-GS): GS restarted from its last ``x_bar`` with ``D_tilde`` halved (eq-sliding-mgs).

    Phase ``s = 0, 1, ...`` runs ``outer_per_phase`` outer steps of :func:`gradient_sliding` with
    ``D_tilde = D0 / 2^s`` from ``x = x_bar =`` the previous phase's output, so the inner steps
    ``T_k`` double from phase to phase. With ``restart=False`` one GS run of
    ``phases * outer_per_phase`` outer steps with ``D_tilde = D0`` is made instead (same gradient budget).

    Args:
        problem: a :class:`TVProblem`. phases: ``>= 1``. outer_per_phase: ``>= 1``.
        D0: the first phase's distance estimate ``> 0``.
        beta_scale: multiplier of ``beta_k``, a number or a sequence (a batch of runs).
        restart: whether to restart (M-GS) or run plain GS straight through.
        x0: the start, shape ``(n,)`` (default 0).

    Returns:
        A :class:`SlidingRun` with ``K = phases * outer_per_phase``; ``phase`` numbers the phases.

    References:
        Lan (2016), Gradient sliding for composite optimization, Mathematical Programming 159, 201-235.
    """
    problem = _check_problem(problem)
    phases = check_count(phases, name="phases")
    per = check_count(outer_per_phase, name="outer_per_phase")
    D0 = check_positive(D0, name="D0")
    restart = check_flag(restart, name="restart")
    scales, batched = _scales(beta_scale)
    scales = scales if batched else [scales]  # inside, every run is a row of a batch
    x = _start(problem, x0).expand(len(scales), -1).clone()
    if not restart:
        phases, per = 1, phases * per
    # divergence as in lessons_lib.run, measured from the first start across all phases (a restart from a far
    # point must not move the ball): runs that leave it are frozen at the step they left
    limit = _BLOWUP * max(1.0, float(torch.cat([x[0], x[0]]).double().norm()))
    psis, calls, marks, ends = [problem.psi(x)[None].cpu()], [0], [0], []
    at = torch.full((len(scales),), -1, dtype=torch.long)
    for s in range(phases):
        hist, T, out = _gs(problem, x, per, D0 / 2 ** s, scales)
        psis.append(hist["psi"][1:])
        calls += T
        marks += [s] * per
        far = (hist["size"][1:] > limit) | out.diverged.reshape(1, -1) & (torch.arange(1, per + 1)[:, None]
                                                                          >= out.diverged_at.reshape(1, -1))
        first = torch.where(far.any(0), s * per + 1 + far.long().argmax(0), -1)
        at = torch.where((at < 0) & (first > 0), first, at)
        x = out.state[1].to(problem.A.device)  # the restart point: the last averaged iterate
        ends.append(x)
    psi, diverged = torch.cat(psis), at > 0
    for i in torch.nonzero(diverged).flatten().tolist():  # frozen from the step it left the ball
        psi[int(at[i]):, i] = psi[int(at[i]), i]
        x[i] = ends[(int(at[i]) - 1) // per][i]
    if not batched:
        return _pack(psi[:, 0], calls, marks, x[0], diverged[0], at[0])
    return _pack(psi, calls, marks, x, diverged, at)


def subgradient_method(problem: TVProblem, *, steps: int, lr0: float, x0=None) -> SlidingRun:
    """The subgradient method on all of ``Psi``, step ``lr0 / sqrt(k)``, weighted average (eq-sliding-subgradient).

    ``x_k = x_{k-1} - (lr0 / sqrt(k)) (grad f(x_{k-1}) + h'(x_{k-1}) + mu x_{k-1})``; the output is
    ``x_hat_k = sum_j sqrt(j) x_{j-1} / sum_j sqrt(j)`` over ``j = 1 .. k`` (weights proportional to
    the inverse step), and ``Psi`` is recorded at ``x_hat``. Each step calls ``grad f`` and ``h'`` once.

    Args:
        problem: a :class:`TVProblem`. steps: ``>= 1``. lr0: the step scale ``> 0`` (``1/L`` is natural).
        x0: the start, shape ``(n,)`` (default 0).

    Returns:
        A :class:`SlidingRun` with ``K = steps`` (``sub_calls == grad_calls``, ``phase`` all 0).

    References:
        Lan (2016), Gradient sliding for composite optimization, Mathematical Programming 159, 201-235.
    """
    problem = _check_problem(problem)
    steps = check_count(steps, name="steps")
    lr0 = check_positive(lr0, name="lr0")
    x0 = _start(problem, x0)

    def step(state, t, lr):
        x, avg, weight = state
        w = math.sqrt(t + 1)  # the weight of x_t in the average: proportional to 1 / step
        g = problem.grad_f(x) + problem.subgrad_h(x) + problem.mu * x
        return x - lr * g, avg + (w / (weight + w)) * (x - avg), weight + w  # a running average: no overflow

    def record(state, t):
        x, avg, _ = state
        return {"psi": problem._psi(avg if t > 0 else x)}

    one = torch.ones((), dtype=x0.dtype, device=x0.device)
    out = runner.run(step, (x0, x0, 0 * one), steps=steps,
                     lr=lambda t: lr0 / torch.sqrt(t.double() + 1), record=record)
    _, hist = out.on_grid(steps)
    calls = torch.arange(steps + 1, dtype=torch.long)
    return SlidingRun(psi=hist["psi"], grad_calls=calls, sub_calls=calls.clone(), phase=torch.zeros_like(calls),
                      x=out.state[1], diverged=out.diverged, diverged_at=out.diverged_at)


@dataclass(frozen=True)
class Reference(Record):
    """The solution of eq-sliding-problem from the dual (eq-sliding-dual).

    Attributes:
        x: the minimiser, ``(n,)``. y: the dual point, ``(n - 1,)``, ``|y_i| <= rho``.
        psi_star: ``Psi(x*)``, from the dual value. gap: the duality gap ``Psi(x(y)) - d(y) >= 0`` at the end.
        iterations: FISTA iterations used.
    """

    x: torch.Tensor
    y: torch.Tensor
    psi_star: float
    gap: float
    iterations: int


def reference_solution(problem: TVProblem, *, tol: float = 1e-11, max_iter: int = 200_000) -> Reference:
    """``Psi*`` by projected FISTA on the dual of eq-sliding-problem (eq-sliding-dual), to a certified gap.

    With ``rho ||D x||_1 = max_{|y_i| <= rho} y^T D x``, the inner minimum over ``x`` is a ridge solve,
    ``x(y) = (A^T A + mu I)^{-1} (A^T b - D^T y)``, and the dual ``d(y)`` is concave and smooth with
    gradient ``D x(y)``. FISTA (with gradient restarts) ascends it on the box; ``Psi(x(y)) - d(y)``
    bounds the error of both and stops the loop.

    Args:
        problem: a :class:`TVProblem`. tol: the duality gap to reach, ``> 0``. max_iter: ``>= 1``.

    Returns:
        A :class:`Reference`.

    References:
        Beck & Teboulle (2009), A fast iterative shrinkage-thresholding algorithm for linear inverse
        problems, SIAM J. Imaging Sciences 2, 183-202.
    """
    problem = _check_problem(problem)
    tol = check_positive(tol, name="tol")
    max_iter = check_count(max_iter, name="max_iter")
    A, b, D = (v.to(torch.float64) for v in (problem.A, problem.b, problem.D))
    n = A.shape[1]
    H_inv = torch.linalg.inv(A.T @ A + problem.mu * torch.eye(n, dtype=A.dtype, device=A.device))
    Atb = A.T @ b
    Ld = float(torch.linalg.eigvalsh(D @ H_inv @ D.T)[-1])

    def primal(y):
        return H_inv @ (Atb - D.T @ y)

    def dual(y):
        x = primal(y)
        return 0.5 * (A @ x - b).pow(2).sum() + 0.5 * problem.mu * x.pow(2).sum() + y @ (D @ x)

    def psi(x):
        return 0.5 * (A @ x - b).pow(2).sum() + problem.rho * (D @ x).abs().sum() + 0.5 * problem.mu * x.pow(2).sum()

    y = torch.zeros(n - 1, dtype=A.dtype, device=A.device)
    z, tk, gap, it = y, 1.0, math.inf, 0
    for it in range(1, max_iter + 1):
        y_new = (z + D @ primal(z) / Ld).clamp(-problem.rho, problem.rho)
        if float((y_new - y) @ (z - y_new)) > 0:  # momentum points downhill: restart it
            tk = 1.0
        t_new = (1 + math.sqrt(1 + 4 * tk * tk)) / 2
        z, y, tk = y_new + (tk - 1) / t_new * (y_new - y), y_new, t_new
        if it % 25 == 0 or it == max_iter:
            gap = float(psi(primal(y)) - dual(y))
            if gap <= tol:
                break
    return Reference(x=primal(y).to(problem.A.dtype), y=y.to(problem.A.dtype), psi_star=float(dual(y)),
                     gap=max(gap, 0.0), iterations=it)
