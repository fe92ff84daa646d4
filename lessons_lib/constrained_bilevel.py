"""Constrained bilevel optimisation through a proximal Lagrangian value function: LV-HBA.

A bilevel problem with a constrained lower level (eq-lvhba-problem) asks for

    min_{x, y} F(x, y)   subject to   y in argmin_theta { f(x, theta) : g(x, theta) = 0 },

where the constraint ``g`` may couple ``x`` and ``theta``. The proximal Lagrangian value function
(eq-lvhba-value)

    v_gamma(x, y, z) = min_theta max_lam  f(x, theta) + lam g(x, theta)
                       + ||theta - y||^2 / (2 gamma1) - ||lam - z||^2 / (2 gamma2)

is smooth, and by Danskin's theorem its gradient needs only first derivatives at the inner saddle
``(theta_hat, lam_hat)(x, y, z)`` (eq-lvhba-danskin). Since ``f(x, y) - v_gamma(x, y, z) >= 0`` on the
feasible set, with equality exactly at lower-level solutions (with ``z`` the multiplier), the bilevel problem becomes
the single-level penalised problem ``min F / c + f - v_gamma`` (eq-lvhba-penalty). LV-HBA (eq-lvhba-step)
runs one loop on it: one gradient descent-ascent step on ``(theta, lam)``, then one projected gradient
step on ``(x, y, z)`` with the penalty ``c_k = c_lower (k + 1)^p`` growing slowly; no Hessian is ever
used.

The toy (eq-lvhba-toy), with ``x in R^n`` and ``y = (y1, y2) in R^{2n}``: ``F = ||x - y2||^2 / 2 +
||y1 - 1||^2 / 2``, ``f = ||y1||^2 / 2 - x.y1 + 1.y2`` and the coupled equality ``g = 1.x + 1.y = 0``.
Its solution is ``x* = -0.3 * 1``, ``y1* = 0.7 * 1``, ``y2* = -0.4 * 1`` with multiplier ``lam* = -1``;
the lower level has a whole affine set of solutions (only ``1.y2`` is pinned).

An equality constraint needs a multiplier of either sign, so ``lam`` and ``z`` are not projected onto
``lam >= 0`` as for an inequality; ``(x, y)`` is projected onto the hyperplane ``1.x + 1.y = 0`` after
every step, as in the authors' code. The trainer is a step function handed to :func:`lessons_lib.run.run`,
batched over runs in the leading dimension.

References:
    Yao, Yu, Zeng & Zhang (2024), Constrained Bi-Level Optimization: Proximal Lagrangian Value Function
    Approach and Hessian-free Algorithm, ICLR, arXiv:2401.16164.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

from . import run as runner
from .backend import Record, as_generator, as_tensor, check_count, check_flag, check_positive, default_device

State = tuple  # (x, y, z, theta, lam): shapes (R, n), (R, 2n), (R, 1), (R, 2n), (R, 1)


@dataclass(frozen=True)
class CoupledToy:
    """The toy of eq-lvhba-toy with first-order oracles that count their calls.

    Every oracle takes ``x`` of shape ``(..., n)`` and ``y`` of shape ``(..., 2n)``. ``calls`` counts
    the first-order calls (``"first"``: values and gradients) and second-order ones (``"second"``:
    :meth:`hvp_lower`, which LV-HBA never needs); reset it with :meth:`reset_calls`.

    Attributes:
        n: dimension of ``x`` (and of each half of ``y``).
        dtype, device: of the tensors the toy makes.
    """

    n: int
    dtype: torch.dtype = torch.float64
    device: torch.device = field(default_factory=default_device)
    calls: dict = field(default_factory=lambda: {"first": 0, "second": 0}, compare=False, repr=False)

    def reset_calls(self) -> None:
        """Set both call counters to zero."""
        self.calls.update(first=0, second=0)

    def _split(self, y):
        return y[..., :self.n], y[..., self.n:]

    def upper(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``F(x, y) = ||x - y2||^2 / 2 + ||y1 - 1||^2 / 2``, shape ``(...)``."""
        y1, y2 = self._split(y)
        return 0.5 * ((x - y2) ** 2).sum(-1) + 0.5 * ((y1 - 1) ** 2).sum(-1)

    def lower(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``f(x, y) = ||y1||^2 / 2 - x.y1 + 1.y2``, shape ``(...)``."""
        self.calls["first"] += 1
        y1, y2 = self._split(y)
        return 0.5 * (y1**2).sum(-1) - (x * y1).sum(-1) + y2.sum(-1)

    def constraint(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``g(x, y) = 1.x + 1.y``, shape ``(..., 1)`` (one equality constraint)."""
        self.calls["first"] += 1
        return x.sum(-1, keepdim=True) + y.sum(-1, keepdim=True)

    def grad_upper(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(grad_x F, grad_y F)``, shapes ``(..., n)`` and ``(..., 2n)``."""
        self.calls["first"] += 1
        y1, y2 = self._split(y)
        return x - y2, torch.cat([y1 - 1, y2 - x], dim=-1)

    def grad_lower(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(grad_x f, grad_y f) = (-y1, (y1 - x, 1))``, shapes ``(..., n)`` and ``(..., 2n)``."""
        self.calls["first"] += 1
        y1, y2 = self._split(y)
        return -y1, torch.cat([y1 - x, torch.ones_like(y2)], dim=-1)

    def grad_constraint(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(grad_x g, grad_y g) = (1, 1)`` for the one constraint, shapes ``(..., n)`` and ``(..., 2n)``."""
        self.calls["first"] += 1
        return torch.ones_like(x), torch.ones_like(y)

    def hvp_lower(self, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """A second-order oracle: ``grad^2_yy f . v = (v1, 0)``, shape ``(..., 2n)``.

        Implicit-differentiation methods need this product (and a mixed one); LV-HBA does not, and
        the counter ``calls["second"]`` shows it.
        """
        self.calls["second"] += 1
        v1, v2 = self._split(v)
        return torch.cat([v1, torch.zeros_like(v2)], dim=-1)

    def project(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Euclidean projection of ``(x, y)`` onto the coupled constraint ``1.x + 1.y = 0``.

        The projection subtracts the mean of all ``3n`` coordinates from each of them.
        """
        mean = (x.sum(-1, keepdim=True) + y.sum(-1, keepdim=True)) / (3 * self.n)
        return x - mean, y - mean

    def solution(self) -> tuple[torch.Tensor, torch.Tensor, float]:
        """``(x*, y*, lam*)``: ``x* = -0.3 * 1``, ``y* = (0.7 * 1, -0.4 * 1)`` and ``lam* = -1``.

        ``y*`` is the lower-level solution the upper level picks among all of them.
        """
        one = torch.ones(self.n, dtype=self.dtype, device=self.device)
        return -0.3 * one, torch.cat([0.7 * one, -0.4 * one]), -1.0


def coupled_toy(n: int = 10, *, dtype: torch.dtype = torch.float64, device=None) -> CoupledToy:
    """The coupled-constraint toy of eq-lvhba-toy in dimension ``n`` (``x in R^n``, ``y in R^{2n}``).

    Args:
        n: dimension ``>= 1`` of ``x``; ``y = (y1, y2)`` has shape ``(2n,)``.
        dtype: ``torch.float64`` (default) or ``torch.float32``.
        device: defaults to :func:`lessons_lib.backend.default_device`.

    Returns:
        A :class:`CoupledToy`.

    References:
        Yao, Yu, Zeng & Zhang (2024), arXiv:2401.16164 (the toy with a coupled lower-level constraint).
    """
    n = check_count(n, name="n")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype: expected torch.float32 or torch.float64, got {dtype}")
    return CoupledToy(n, dtype, torch.device(device) if device is not None else default_device())


def _check_problem(problem) -> CoupledToy:
    if not isinstance(problem, CoupledToy):
        raise ValueError(f"problem: expected a CoupledToy (from coupled_toy), got {type(problem).__name__}")
    return problem


def _check_pair(problem, x, y) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` of shape ``(..., n)`` and ``y`` of shape ``(..., 2n)`` as tensors of the problem's dtype, on x's device."""
    x = as_tensor(x, name="x", dtype=problem.dtype, device=problem.device)
    y = as_tensor(y, name="y", dtype=problem.dtype, device=x.device)
    n = problem.n
    if x.ndim == 0 or x.shape[-1] != n:
        raise ValueError(f"x: expected shape (..., {n}), got {tuple(x.shape)}")
    if y.shape != x.shape[:-1] + (2 * n,):
        raise ValueError(f"y: expected shape {tuple(x.shape[:-1]) + (2 * n,)}, got {tuple(y.shape)}")
    return x, y


@dataclass(frozen=True)
class ValueFunction(Record):
    """What :func:`value_function` returns (on the host).

    Attributes:
        value: ``v_gamma(x, y, z)``, shape ``(...)``.
        theta: the inner minimiser ``theta_hat(x, y, z)``, shape ``(..., 2n)``.
        lam: the inner maximiser ``lam_hat(x, y, z)``, shape ``(..., 1)``.
        grad_x, grad_y, grad_z: Danskin's gradient (eq-lvhba-danskin), shapes ``(..., n)``,
            ``(..., 2n)`` and ``(..., 1)``.
    """

    value: torch.Tensor
    theta: torch.Tensor
    lam: torch.Tensor
    grad_x: torch.Tensor
    grad_y: torch.Tensor
    grad_z: torch.Tensor


def _saddle(problem: CoupledToy, x, y, z, gamma1: float, gamma2: float):
    """The inner saddle of eq-lvhba-value for the toy: its optimality conditions are linear, so one
    dense solve of size ``2n + 1`` (grad_theta = 0, grad_lam = 0) gives ``(theta_hat, lam_hat)``."""
    n = problem.n
    eye = torch.eye(2 * n, dtype=x.dtype, device=x.device)
    hess = eye / gamma1
    hess[:n, :n] += torch.eye(n, dtype=x.dtype, device=x.device)  # grad^2_theta f: I on theta1, 0 on theta2
    ones = torch.ones(2 * n, 1, dtype=x.dtype, device=x.device)
    top = torch.cat([hess, ones], dim=1)
    bottom = torch.cat([ones.T, torch.full((1, 1), -1.0 / gamma2, dtype=x.dtype, device=x.device)], dim=1)
    K = torch.cat([top, bottom], dim=0)
    y1, y2 = problem._split(y)
    rhs_theta = torch.cat([x + y1 / gamma1, y2 / gamma1 - 1], dim=-1)  # minus the parts of the gradient free of theta
    rhs_lam = -x.sum(-1, keepdim=True) - z / gamma2
    sol = torch.linalg.solve(K, torch.cat([rhs_theta, rhs_lam], dim=-1).unsqueeze(-1)).squeeze(-1)
    return sol[..., :2 * n], sol[..., 2 * n:]


def value_function(problem: CoupledToy, x, y, z, *, gamma1: float = 1.0, gamma2: float = 1.0) -> ValueFunction:
    """The proximal Lagrangian value function ``v_gamma`` (eq-lvhba-value) and its Danskin gradient.

    ``v_gamma(x, y, z) = min_theta max_lam f(x, theta) + lam g(x, theta) + ||theta - y||^2 / (2 gamma1)
    - ||lam - z||^2 / (2 gamma2)``; with ``f(x, .)`` convex and ``g(x, .)`` affine, as on the toy, the inner
    function is strongly convex in ``theta`` and strongly concave in ``lam``, so its saddle ``(theta_hat,
    lam_hat)(x, y, z)`` is unique, and Danskin's theorem (eq-lvhba-danskin) gives ``grad_x v = grad_x f(x,
    theta_hat) + lam_hat grad_x g(x, theta_hat)``, ``grad_y v = (y - theta_hat) / gamma1`` and ``grad_z v =
    (lam_hat - z) / gamma2``.
    On the toy the saddle is the solution of a linear system, solved exactly.

    Args:
        problem: a :class:`CoupledToy`.
        x: shape ``(..., n)``. y: shape ``(..., 2n)``. z: shape ``(..., 1)`` (or ``(...)``).
        gamma1, gamma2: proximal parameters ``> 0``; ``1 / gamma1`` and ``1 / gamma2`` are the curvatures
            the proximal terms add.

    Returns:
        A :class:`ValueFunction`.

    References:
        Yao, Yu, Zeng & Zhang (2024), arXiv:2401.16164 (the proximal Lagrangian value function).
    """
    problem = _check_problem(problem)
    gamma1, gamma2 = check_positive(gamma1, name="gamma1"), check_positive(gamma2, name="gamma2")
    x, y = _check_pair(problem, x, y)
    z = as_tensor(z, name="z", dtype=problem.dtype, device=x.device)
    if z.shape == x.shape[:-1]:
        z = z.unsqueeze(-1)
    if z.shape != x.shape[:-1] + (1,):
        raise ValueError(f"z: expected shape {tuple(x.shape[:-1]) + (1,)}, got {tuple(z.shape)}")
    theta, lam = _saddle(problem, x, y, z, gamma1, gamma2)
    value = (problem.lower(x, theta) + (lam * problem.constraint(x, theta)).sum(-1)
             + ((theta - y) ** 2).sum(-1) / (2 * gamma1) - ((lam - z) ** 2).sum(-1) / (2 * gamma2))
    gfx, _ = problem.grad_lower(x, theta)
    ggx, _ = problem.grad_constraint(x, theta)
    return ValueFunction(value, theta, lam, gfx + lam * ggx, (y - theta) / gamma1, (lam - z) / gamma2)


def penalty(k, *, c: float, p: float) -> torch.Tensor:
    """The growing penalty ``c_k = c_lower (k + 1)^p`` of eq-lvhba-penalty, as a float64 tensor like ``k``.

    Args:
        k: step count(s) ``>= 0`` (an int or a tensor).
        c: ``c_lower > 0``. p: growth exponent ``>= 0``.
    """
    c, p = check_positive(c, name="c"), check_positive(p, name="p", allow_zero=True)
    k = torch.as_tensor(k, dtype=torch.float64)
    if bool((k < 0).any()):
        raise ValueError("k: step counts must be >= 0")
    return c * (k + 1) ** p


def lv_hba_step(problem: CoupledToy, state: State, k: int, *, alpha, eta, beta, c, p, gamma1, gamma2,
                clip: float | None = None) -> State:
    """One iteration of LV-HBA (eq-lvhba-step) on a batch of runs; unchecked (the loop calls it).

    With ``c_k = c (k + 1)^p``:
    ``theta+ = theta - eta (grad_theta f(x, theta) + lam grad_theta g(x, theta) + (theta - y) / gamma1)``,
    ``lam+ = lam + eta (g(x, theta) - (lam - z) / gamma2)`` (both at the old point), then at ``(theta+, lam+)``
    ``d_x = grad_x F / c_k + grad_x f(x, y) - grad_x f(x, theta+) - lam+ grad_x g(x, theta+)``,
    ``d_y = grad_y F / c_k + grad_y f(x, y) - (y - theta+) / gamma1``, ``d_z = (z - lam+) / gamma2``,
    ``(x+, y+) = Proj_C(x - alpha d_x, y - alpha d_y)`` and ``z+ = z - beta d_z``.

    Args:
        problem: a :class:`CoupledToy`.
        state: ``(x, y, z, theta, lam)`` of shapes ``(R, n)``, ``(R, 2n)``, ``(R, 1)``, ``(R, 2n)``, ``(R, 1)``.
        k: the step count. alpha: step on ``(x, y)``. eta: step on ``(theta, lam)``. beta: step on ``z``.
            c, p: penalty ``c_lower`` and exponent. gamma1, gamma2: proximal parameters. Each is a number
            or one value per run, shape ``(R,)``.
        clip: ``None``, or a bound ``u``: ``lam+`` and ``z+`` are clipped to ``[-u, u]`` after their updates,
            as the authors' toy script does with ``u = 1000``.

    Returns:
        The new state.
    """
    x, y, z, theta, lam = state
    alpha, eta, beta, gamma1, gamma2 = (_column(v) for v in (alpha, eta, beta, gamma1, gamma2))
    fx, fy = problem.grad_lower(x, theta)
    gx, gy = problem.grad_constraint(x, theta)
    theta_new = theta - eta * (fy + lam * gy + (theta - y) / gamma1)
    lam_new = lam + eta * (problem.constraint(x, theta) - (lam - z) / gamma2)
    if clip is not None:
        lam_new = lam_new.clamp(-clip, clip)
    ck = _column(c * (k + 1) ** p)
    Fx, Fy = problem.grad_upper(x, y)
    fx_y, fy_y = problem.grad_lower(x, y)
    fx_t, _ = problem.grad_lower(x, theta_new)
    gx_t, _ = problem.grad_constraint(x, theta_new)
    d_x = Fx / ck + fx_y - fx_t - lam_new * gx_t
    d_y = Fy / ck + fy_y - (y - theta_new) / gamma1
    x_new, y_new = problem.project(x - alpha * d_x, y - alpha * d_y)
    z_new = z - beta * (z - lam_new) / gamma2
    if clip is not None:
        z_new = z_new.clamp(-clip, clip)
    return x_new, y_new, z_new, theta_new, lam_new


def _column(v):
    """A per-run value of shape ``(R,)`` as a column ``(R, 1)``; a number or 0-d tensor unchanged."""
    return v.unsqueeze(-1) if isinstance(v, torch.Tensor) and v.ndim == 1 else v


def _pack(state: State) -> torch.Tensor:
    return torch.cat(state, dim=-1)


def _unpack(s: torch.Tensor, n: int) -> State:
    return tuple(s[..., a:b] for a, b in ((0, n), (n, 3 * n), (3 * n, 3 * n + 1), (3 * n + 1, 5 * n + 1),
                                          (5 * n + 1, 5 * n + 2)))


def step_as_affine_map(problem: CoupledToy, *, alpha, eta, beta, gamma1, gamma2):
    """Tabulate :func:`lv_hba_step` on the quadratic toy as the affine map it is.

    Every oracle of the toy is affine in the state ``s = (x, y, z, theta, lam)`` (packed, ``D = 5n + 2``),
    so one step is ``s+ = s A0 + b0 + (1 / c_k)(s A1 + b1)``: the penalty enters only through
    ``grad F / c_k``. The map is read off by applying the step itself to the zero state and the
    ``D`` unit states, with ``1 / c_k = 0`` and ``1``; replaying it is exact up to rounding.

    Args:
        problem: a :class:`CoupledToy`. alpha, eta, beta, gamma1, gamma2: as in :func:`lv_hba_step`,
            numbers or shape ``(R,)``.

    Returns:
        ``(A0, b0, A1, b1)`` of shapes ``(R, D, D)``, ``(R, 1, D)``, ``(R, D, D)``, ``(R, 1, D)`` (``R = 1``
        when every argument is a number).
    """
    n, D = problem.n, 5 * problem.n + 2
    per = {k: v for k, v in dict(alpha=alpha, eta=eta, beta=beta, gamma1=gamma1, gamma2=gamma2).items()}
    R = max([v.numel() for v in per.values() if isinstance(v, torch.Tensor)] + [1])
    basis = torch.cat([torch.zeros(1, D, dtype=problem.dtype, device=problem.device),
                       torch.eye(D, dtype=problem.dtype, device=problem.device)])  # (D + 1, D)
    states = _unpack(basis.repeat(R, 1), n)
    kw = {k: v.repeat_interleave(D + 1) if isinstance(v, torch.Tensor) else v for k, v in per.items()}
    calls = dict(problem.calls)
    maps = []
    for c in (float("inf"), 1.0):  # 1 / c_k = 0, then 1
        out = _pack(lv_hba_step(problem, states, 0, c=c, p=0.0, **kw)).reshape(R, D + 1, D)
        maps.append((out[:, 1:] - out[:, :1], out[:, :1]))
    problem.calls.update(calls)  # tabulating is bookkeeping, not the algorithm's oracle calls
    (A0, b0), (A, b) = maps
    return A0, b0, A - A0, b - b0


@dataclass(frozen=True)
class LVHBARun(Record):
    """What :func:`lv_hba` returns (on the host); ``R`` runs, ``K`` recorded steps.

    Attributes:
        steps: recorded steps, shape ``(K,)``.
        x: final ``x``, shape ``(R, n)``. y: final ``y``, shape ``(R, 2n)``. z: final ``z``, shape ``(R,)``.
        lam: final multiplier ``lam``, shape ``(R,)``. theta: final ``theta``, shape ``(R, 2n)``.
        error: ``||x - x*|| / ||x*||`` at each recorded step, shape ``(K, R)``.
        lam_history: ``lam`` at each recorded step, shape ``(K, R)``.
        calls: oracle calls of the iteration, ``{"first": int, "second": int}`` (see :func:`lv_hba`).
        diverged, diverged_at: shape ``(R,)`` (see :mod:`lessons_lib.run`).
    """

    steps: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
    z: torch.Tensor
    lam: torch.Tensor
    theta: torch.Tensor
    error: torch.Tensor
    lam_history: torch.Tensor
    calls: dict
    diverged: torch.Tensor
    diverged_at: torch.Tensor


def _per_run(value, name: str, *, device, dtype=torch.float64, allow_zero: bool = False):
    """A hyperparameter as a float or a float64 tensor of shape ``(R,)``, every entry checked."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return check_positive(value, name=name, allow_zero=allow_zero)
    t = as_tensor(value, name=name, dtype=dtype, device=device)
    if t.ndim == 0:
        return check_positive(float(t), name=name, allow_zero=allow_zero)
    if t.ndim != 1 or t.numel() == 0:
        raise ValueError(f"{name}: expected a number or a 1-D sequence of per-run numbers, got shape {tuple(t.shape)}")
    if bool((t < 0).any()) or (not allow_zero and bool((t == 0).any())):
        raise ValueError(f"{name}: every value must be {'>= 0' if allow_zero else '> 0'}")
    return t


def lv_hba(problem: CoupledToy, *, steps: int, c=10.0, p=0.3, alpha=0.05, eta=0.05, beta=0.1, gamma1=1.0,
           gamma2=1.0, runs: int | None = None, generator: int | torch.Generator | None = None, start=None,
           spread: float = 10.0, same_start: bool = False, record_every: int = 1, tabulate: bool = True,
           clip: float | None = None, blowup: float = 1e6) -> LVHBARun:
    """LV-HBA (eq-lvhba-step) on the toy: one loop, first-order oracles only, batched over runs.

    Every hyperparameter may be a number or one value per run (shape ``(R,)``), so a sweep over the
    penalty or the step sizes is a single batched run. Without ``generator`` or ``start`` every run starts
    where the authors' code starts once its projections are done: it sets ``x = y = 10 * 1``, projects ``x``
    onto the constraint with ``y`` held fixed, then ``y`` with the new ``x`` held fixed, which gives
    ``x = -20 * 1``, ``y = 10 * 1`` (error ``||x - x*|| / ||x*|| = 197 / 3``); ``theta``, set to ``1`` and
    projected with ``x`` held fixed, becomes ``10 * 1``; ``lam = 1`` and ``z = -1``. This start is far from
    the solution but only along the all-ones direction. With ``generator``, ``x, y, theta, z, lam`` are
    drawn from ``N(0, spread^2)``, independently per run (or once for all runs with ``same_start=True``),
    and ``(x, y)`` is projected jointly. With ``start``, the given point is used (``(x, y)`` projected
    jointly).

    With ``tabulate=True`` (the default) the loop replays :func:`lv_hba_step` as the affine map it is on
    the quadratic toy (:func:`step_as_affine_map`), about ten times faster on a CPU; ``calls`` then is the
    oracle calls of one instrumented step times the number of steps made (an extrapolation, not a count).
    With ``tabulate=False`` every step calls the oracles and ``calls`` counts them one by one.

    Args:
        problem: a :class:`CoupledToy`.
        steps: iterations ``>= 0``.
        c: ``c_lower > 0`` of ``c_k = c_lower (k + 1)^p``. p: exponent ``>= 0``.
        alpha: step ``> 0`` on ``(x, y)``. eta: step ``> 0`` on ``(theta, lam)``. beta: step ``> 0`` on ``z``.
        gamma1, gamma2: proximal parameters ``> 0`` (eq-lvhba-value).
        runs: number of runs ``R`` (default: the length of a per-run argument, else 1).
        generator: ``None`` for the start above ("the authors' start"), or an int seed / generator for random
            starts.
        start: ``None``, or a start ``(x, y, z, theta, lam)`` of shapes ``(n,)``, ``(2n,)``, ``(1,)``, ``(2n,)``,
            ``(1,)``, or each with a leading run dimension ``R``; not together with ``generator``.
        spread: standard deviation ``> 0`` of a random start. same_start: one random start for every run.
        record_every: recording interval. tabulate: replay the step as an affine map (ignored with ``clip``).
        clip: ``None`` (the method), or a bound ``u > 0`` to which ``lam`` and ``z`` are clipped after each
            update, as in the authors' toy script (``u = 1000``); a clipped step is not affine, so the loop then
            calls the oracles step by step.
        blowup: divergence radius (see :mod:`lessons_lib.run`).

    Returns:
        An :class:`LVHBARun`.

    References:
        Yao, Yu, Zeng & Zhang (2024), Constrained Bi-Level Optimization: Proximal Lagrangian Value Function
        Approach and Hessian-free Algorithm, ICLR, arXiv:2401.16164 (Algorithm 1, LV-HBA).
    """
    problem = _check_problem(problem)
    steps = check_count(steps, name="steps", minimum=0)
    dev = problem.device
    hyper = {name: _per_run(value, name, device=dev, dtype=problem.dtype, allow_zero=name == "p")
             for name, value in dict(c=c, p=p, alpha=alpha, eta=eta, beta=beta, gamma1=gamma1, gamma2=gamma2).items()}
    spread = check_positive(spread, name="spread")
    tabulate, same_start = check_flag(tabulate, name="tabulate"), check_flag(same_start, name="same_start")
    if clip is not None:
        clip, tabulate = check_positive(clip, name="clip"), False
    sizes = {v.numel() for v in hyper.values() if isinstance(v, torch.Tensor)}
    if runs is not None:
        sizes.add(check_count(runs, name="runs"))
    if start is not None and isinstance(start, (tuple, list)) and len(start) == 5:
        lead = {tuple(torch.as_tensor(v).shape[:-1]) for v in start if isinstance(v, torch.Tensor) and v.ndim == 2}
        sizes |= {shape[0] for shape in lead if shape[0] > 1}
    if len(sizes) > 1:
        raise ValueError(f"runs: the per-run hyperparameters and runs disagree on the number of runs: {sorted(sizes)}")
    R, n = (sizes.pop() if sizes else 1), problem.n
    opts = dict(dtype=problem.dtype, device=dev)
    if start is not None:
        if generator is not None:
            raise ValueError("start: give either start or generator, not both")
        x0, y0, z0, theta0, lam0 = _check_start(start, problem, R)
        x0, y0 = problem.project(x0, y0)
    elif generator is None:  # the authors' code: x, y = 10 * 1, projected one after the other (the other held fixed)
        x0, y0 = torch.full((R, n), 10.0, **opts), torch.full((R, 2 * n), 10.0, **opts)
        x0 = x0 - problem.constraint(x0, y0) / n
        y0 = y0 - problem.constraint(x0, y0) / (2 * n)
        theta0 = torch.ones(R, 2 * n, **opts)
        theta0 = theta0 - problem.constraint(x0, theta0) / (2 * n)
        z0, lam0 = torch.full((R, 1), -1.0, **opts), torch.ones(R, 1, **opts)
    else:
        gen = as_generator(generator, dev)
        x0, y0, z0, theta0, lam0 = (spread * torch.randn(1 if same_start else R, d, generator=gen, **opts).expand(R, d)
                                    for d in (n, 2 * n, 1, 2 * n, 1))
        x0, y0 = problem.project(x0, y0)
    state0 = (x0, y0, z0, theta0, lam0)
    c, p = hyper.pop("c"), hyper.pop("p")
    before = dict(problem.calls)
    with _one_thread():
        out, final, calls = _loop(problem, state0, steps, c, p, {**hyper, "clip": clip}, tabulate, record_every,
                                  blowup, before)
    x, y, z, theta, lam = final
    return LVHBARun(out.steps, x, y, z[:, 0], lam[:, 0], theta, out.history["error"], out.history["lam"], calls,
                    out.diverged, out.diverged_at)


def _check_start(start, problem: CoupledToy, R: int) -> State:
    """A given start as five tensors of shapes ``(R, d)``, each checked."""
    if not isinstance(start, (tuple, list)) or len(start) != 5:
        raise ValueError("start: expected a tuple (x, y, z, theta, lam) of five tensors")
    n, out = problem.n, []
    for name, v, d in zip(("x", "y", "z", "theta", "lam"), start, (n, 2 * n, 1, 2 * n, 1)):
        t = as_tensor(v, name="start", dtype=problem.dtype, device=problem.device)
        if t.ndim == 1:
            t = t.unsqueeze(0)
        if t.ndim != 2 or t.shape[-1] != d or t.shape[0] not in (1, R):
            raise ValueError(f"start: its {name} should have shape ({d},) or ({R}, {d}), got {tuple(t.shape)}")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"start: its {name} must be finite")
        out.append(t.expand(R, d))
    return tuple(out)


def _blocks(hyper: dict, R: int, device) -> int:
    """The number ``G`` of contiguous blocks of equal size in which the runs share one step map (the same
    ``alpha, eta, beta, gamma1, gamma2``); ``R`` (one map per run) when they do not come in such blocks."""
    table = torch.stack([v if isinstance(v, torch.Tensor) else torch.full((R,), v, dtype=torch.float64, device=device)
                         for v in hyper.values()], dim=1)  # (R, 5)
    change = torch.ones(R, dtype=torch.bool, device=device)
    change[1:] = (table[1:] != table[:-1]).any(dim=1)
    groups = int(change.sum())
    if R % groups == 0 and bool((table.reshape(groups, R // groups, -1) == table[::R // groups, None]).all()):
        return groups
    return R


@contextlib.contextmanager
def _one_thread():
    """One intra-op thread for the loop (restored afterwards): its tensors are tiny, and on shared cores a
    thread pool made each step several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _loop(problem, state0, steps, c, p, hyper, tabulate, record_every, blowup, before):
    R, n, dev = state0[0].shape[0], problem.n, problem.device
    x_star = problem.solution()[0]
    norm_star = float(x_star.norm())
    clip = hyper.pop("clip")
    if tabulate:
        groups = _blocks(hyper, R, dev)  # runs sharing a map in G contiguous blocks: one product per block
        A0, b0, A1, b1 = step_as_affine_map(problem, **{k: v[::R // groups] if isinstance(v, torch.Tensor) else v
                                                         for k, v in hyper.items()})
        D = A0.shape[-1]
        W = torch.cat([A0, A1], dim=-1).expand(groups, D, 2 * D).contiguous()  # one product gives both parts
        B = torch.cat([b0, b1], dim=-1).expand(groups, 1, 2 * D).contiguous()
        k = torch.arange(1, steps + 1, dtype=torch.float64, device=dev).unsqueeze(-1)
        inv = (1.0 / (c * k**p)).expand(steps, R).unsqueeze(-1).to(problem.dtype)  # 1 / c_k, k = 0 .. T - 1

        def step(s, t, lr):
            u = torch.baddbmm(B, s.reshape(groups, R // groups, D), W).reshape(R, 2 * D)
            return u[:, :D] + inv[t] * u[:, D:]

        def record(s, t):
            return {"error": (s[:, :n] - x_star).norm(dim=-1) / norm_star, "lam": s[:, -1]}

        out = runner.run(step, _pack(state0), steps=steps, record=record, record_every=record_every,
                         blowup=blowup, batched=True)
        final = _unpack(out.state, n)
        made = int(out.steps[-1])
        lv_hba_step(problem, state0, 0, c=c, p=p, **hyper)  # one instrumented step: its oracle calls
        calls = {key: (problem.calls[key] - before[key]) * made for key in before}
        problem.calls.update({key: before[key] + calls[key] for key in before})
    else:
        def step(state, t, lr):
            return lv_hba_step(problem, state, t, c=c, p=p, clip=clip, **hyper)

        def record(state, t):
            return {"error": (state[0] - x_star).norm(dim=-1) / norm_star, "lam": state[4][:, 0]}

        out = runner.run(step, state0, steps=steps, record=record, record_every=record_every, blowup=blowup,
                         batched=True)
        final = out.state
        calls = {key: problem.calls[key] - before[key] for key in before}
    return out, final, calls


def lower_gap(problem: CoupledToy, x, y) -> torch.Tensor:
    """The lower-level optimality gap ``f(x, y) - min {f(x, theta) : g(x, theta) = 0}`` of feasible ``(x, y)``.

    On the toy the lower-level value has a closed form: eliminating ``1.y2 = -1.x - 1.y1`` leaves
    ``||y1||^2 / 2 - (x + 1).y1 - 1.x``, minimised at ``y1 = x + 1``, so the minimum is
    ``-||x + 1||^2 / 2 - 1.x``.

    Args:
        problem: a :class:`CoupledToy`.
        x: shape ``(..., n)``. y: shape ``(..., 2n)``, with ``1.x + 1.y = 0`` (checked to ``1e-8`` relative).

    Returns:
        The gap, shape ``(...)``, ``>= 0`` up to rounding.
    """
    problem = _check_problem(problem)
    x, y = _check_pair(problem, x, y)
    g = problem.constraint(x, y)
    scale = 1.0 + x.abs().sum(-1, keepdim=True) + y.abs().sum(-1, keepdim=True)
    if bool((g.abs() > 1e-8 * scale).any()):
        raise ValueError("y: (x, y) must satisfy the coupled constraint 1.x + 1.y = 0 (project it first)")
    best = -0.5 * ((x + 1) ** 2).sum(-1) - x.sum(-1)
    return problem.lower(x, y) - best

