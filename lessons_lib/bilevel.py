"""Bilevel optimisation under unbounded smoothness: AID hypergradients and BO-REP's normalised steps.

A bilevel problem minimises ``Phi(x) = f(x, y*(x))`` with ``y*(x) = argmin_y g(x, y)``
(eq-bilevel-problem). Implicit differentiation gives ``grad Phi = grad_x f - grad2_xy g . z*`` with
``grad2_yy g . z* = grad_y f`` at ``y = y*`` (eq-bilevel-hypergradient); approximate implicit
differentiation (AID) replaces ``y*`` and ``z*`` by iterates ``y`` and ``z`` that are updated a few
steps at a time.

When ``Phi`` is only ``(L0, L1)``-smooth, ``||grad^2 Phi|| <= L0 + L1 ||grad Phi||`` (eq-bilevel-l0l1),
no fixed step ``x <- x - lr h`` is safe everywhere: far from the solution the gradient, and with it
the curvature, is large. BO-REP (eq-bilevel-borep) moves ``x`` by normalised momentum, a step of
length exactly ``lr``, refines the lower-level variable at the start and then updates it only every
``period`` iterations.

The toy (eq-bilevel-toy): ``g = ||y - A x||^2 / 2 + (mu / 2) ||y||^2``, so ``y* = A x / (1 + mu)``,
and ``f = (||y||^2 - 1)^2 / 4 + reg ||x||^2``; ``Phi`` is a quartic in ``x``, whose curvature grows
like its gradient to the power 2/3.

Every trainer here is a step function handed to :func:`lessons_lib.run.run`, so divergence has the
book's one meaning. Tensors of points carry any leading batch dimensions, ``(..., d)``.

References:
    Hao, Gong & Liu (2024), Bilevel Optimization under Unbounded Smoothness: A New Algorithm and
    Convergence Analysis, ICLR, arXiv:2401.09587.
    Zhang, He, Sra & Jadbabaie (2020), Why Gradient Clipping Accelerates Training: A Theoretical
    Justification for Adaptivity, ICLR, arXiv:1905.11881.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import run as runner
from .backend import Record, as_generator, as_tensor, check_count, check_flag, check_float_tensor, check_positive

State = tuple  # (x, m, y, z), each of shape (..., d)


@dataclass(frozen=True)
class ToyProblem:
    """The bilevel toy of eq-bilevel-toy with its exact oracles.

    Attributes:
        A: the coupling matrix, shape ``(dy, dx)``.
        mu: the lower level's ridge ``mu > 0`` (its strong convexity is ``1 + mu``).
        reg: the weight of ``reg ||x||^2`` in the upper level, ``>= 0``.
    """

    A: torch.Tensor
    mu: float
    reg: float

    @property
    def dims(self) -> tuple[int, int]:
        """``(dx, dy)``."""
        return self.A.shape[1], self.A.shape[0]

    def y_star(self, x: torch.Tensor) -> torch.Tensor:
        """The lower-level solution ``A x / (1 + mu)``, shape ``(..., dy)``."""
        return x @ self.A.T / (1 + self.mu)

    def lower(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``g(x, y)``, shape ``(...)``."""
        return 0.5 * ((y - x @ self.A.T) ** 2).sum(-1) + 0.5 * self.mu * (y**2).sum(-1)

    def upper(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``f(x, y)``, shape ``(...)``."""
        return 0.25 * ((y**2).sum(-1) - 1) ** 2 + self.reg * (x**2).sum(-1)

    def grad_y_g(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``grad_y g = (1 + mu) y - A x``."""
        return (1 + self.mu) * y - x @ self.A.T

    def hvp_yy_g(self, z: torch.Tensor) -> torch.Tensor:
        """``grad2_yy g . z = (1 + mu) z``."""
        return (1 + self.mu) * z

    def jvp_xy_g(self, z: torch.Tensor) -> torch.Tensor:
        """``grad2_xy g . z = -A^T z`` (the mixed second derivative, shape ``(dx, dy)``, times ``z``)."""
        return -z @ self.A

    def grad_x_f(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``grad_x f = 2 reg x``."""
        return 2 * self.reg * x

    def grad_y_f(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``grad_y f = (||y||^2 - 1) y``."""
        return ((y**2).sum(-1, keepdim=True) - 1) * y

    def phi(self, x: torch.Tensor) -> torch.Tensor:
        """``Phi(x) = f(x, y*(x))``, shape ``(...)``."""
        return self.upper(x, self.y_star(x))

    def grad_phi(self, x: torch.Tensor) -> torch.Tensor:
        """``grad Phi(x) = (||y*||^2 - 1) B x + 2 reg x`` with ``B = A^T A / (1 + mu)^2``."""
        y = self.y_star(x)
        return ((y**2).sum(-1, keepdim=True) - 1) * (y @ self.A) / (1 + self.mu) + 2 * self.reg * x

    def minimiser(self) -> torch.Tensor:
        """A global minimiser ``x*`` of ``Phi`` in closed form, shape ``(dx,)`` (``-x*`` is the other one).

        With ``B = A^T A / (1 + mu)^2``, a stationary point ``x != 0`` satisfies ``(x^T B x - 1) B x + 2 reg x = 0``,
        so ``x = r v`` for an eigenpair ``(c, v)`` of ``B`` with ``c r^2 = 1 - 2 reg / c``; there
        ``Phi = reg / c - reg^2 / c^2``, smallest for the largest ``c``, and
        ``lambda_max(grad^2 Phi(x*)) = 2 c - 4 reg`` (the other eigenvalues are ``2 reg (1 - c_j / c) < 2 reg``).
        Needs ``c > 2 reg``; otherwise ``x* = 0``.
        """
        B = self.A.T @ self.A / (1 + self.mu) ** 2
        evals, evecs = torch.linalg.eigh(B)
        c, v = evals[-1], evecs[:, -1]
        r2 = (1 - 2 * self.reg / c) / c
        return torch.sqrt(r2.clamp(min=0)) * v

    def hessian_phi(self, x: torch.Tensor) -> torch.Tensor:
        """``grad^2 Phi(x) = (||y*||^2 - 1) B + 2 B x x^T B + 2 reg I``, shape ``(..., dx, dx)``."""
        B = self.A.T @ self.A / (1 + self.mu) ** 2
        y = self.y_star(x)
        Bx = x @ B
        eye = torch.eye(B.shape[0], dtype=B.dtype, device=B.device)
        c = ((y**2).sum(-1) - 1)[..., None, None]
        return c * B + 2 * Bx[..., :, None] * Bx[..., None, :] + 2 * self.reg * eye


def gaussian_matrix(dim: int = 5, *, generator: int | torch.Generator = 0, device=None) -> torch.Tensor:
    """A ``dim x dim`` float64 matrix of independent N(0, 1) entries, drawn from ``generator``."""
    dim = check_count(dim, name="dim")
    gen = as_generator(generator, "cpu" if device is None and isinstance(generator, int) else device)
    A = torch.randn(dim, dim, generator=gen, dtype=torch.float64, device=gen.device)
    return A.to(device) if device is not None else A


def toy_problem(A, *, mu: float = 1.0, reg: float = 0.05) -> ToyProblem:
    """The bilevel toy of eq-bilevel-toy for a coupling matrix ``A``.

    ``g(x, y) = ||y - A x||^2 / 2 + (mu / 2) ||y||^2`` (strongly convex in ``y`` with modulus
    ``1 + mu``, minimiser ``y* = A x / (1 + mu)``) and ``f(x, y) = (||y||^2 - 1)^2 / 4 + reg ||x||^2``.

    Args:
        A: shape ``(dy, dx)``, float (converted to float64 on its device).
        mu: lower-level ridge ``> 0``.
        reg: upper-level weight ``>= 0``.

    Returns:
        A :class:`ToyProblem` with ``phi``, ``grad_phi``, ``hessian_phi``, ``y_star`` and the oracles.

    References:
        Hao, Gong & Liu (2024), arXiv:2401.09587 (the bilevel setting and BO-REP).
    """
    A = as_tensor(A, name="A")
    if A.ndim != 2 or A.numel() == 0:
        raise ValueError(f"A: expected a non-empty matrix of shape (dy, dx), got shape {tuple(A.shape)}")
    return ToyProblem(A, check_positive(mu, name="mu"), check_positive(reg, name="reg", allow_zero=True))


def _check_problem(problem) -> ToyProblem:
    if not isinstance(problem, ToyProblem):
        raise ValueError(f"problem: expected a ToyProblem from toy_problem(), got {type(problem).__name__}")
    return problem


def _check_point(v, *, name: str, size: int, like: torch.Tensor | None = None) -> torch.Tensor:
    """``v`` as a finite float tensor (of ``like``'s dtype and device when given) of shape ``(..., size)``."""
    if like is not None:
        v = as_tensor(v, name=name, dtype=like.dtype, device=like.device)
    else:
        v = as_tensor(v, name=name, dtype=None)
        check_float_tensor(v, name=name)
    if v.ndim == 0 or v.shape[-1] != size:
        raise ValueError(f"{name}: expected shape (..., {size}), got {tuple(v.shape)}")
    return v


def hypergradient(problem: ToyProblem, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """The AID hypergradient estimate ``h = grad_x f(x, y) - grad2_xy g(x, y) . z`` (eq-bilevel-hypergradient).

    At ``y = y*(x)`` and ``z = z*`` solving ``grad2_yy g . z* = grad_y f`` it equals ``grad Phi(x)``.

    Args:
        problem: a :class:`ToyProblem`.
        x: upper variable, shape ``(..., dx)``.
        y: lower variable, shape ``(..., dy)``.
        z: linear-system variable, shape ``(..., dy)``.

    Returns:
        ``h``, shape ``(..., dx)``.

    References:
        Hao, Gong & Liu (2024), arXiv:2401.09587, the AID estimator of their Algorithm 1.
    """
    problem = _check_problem(problem)
    dx, dy = problem.dims
    x = _check_point(x, name="x", size=dx, like=problem.A)
    y = _check_point(y, name="y", size=dy, like=problem.A)
    z = _check_point(z, name="z", size=dy, like=problem.A)
    return problem.grad_x_f(x, y) - problem.jvp_xy_g(z)


def upper_step(x: torch.Tensor, m: torch.Tensor, h: torch.Tensor, *, lr, beta: float = 0.9,
               normalize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """BO-REP's upper-level update (eq-bilevel-momentum and eq-bilevel-normalised).

    ``m <- beta m + (1 - beta) h``, then ``x <- x - lr m / ||m||`` (``normalize=True``: a step of
    length exactly ``lr``, per run over the last dimension) or ``x <- x - lr m`` (plain). Where
    ``||m|| = 0`` the normalised step is zero.

    Args:
        x: shape ``(..., dx)``. m: momentum, same shape. h: hypergradient estimate, same shape.
        lr: ``lr > 0``, a number or a tensor broadcasting against ``x[..., 0]`` (one per run).
        beta: momentum ``0 <= beta < 1`` (``0``: no momentum).
        normalize: whether to normalise the step.

    Returns:
        ``(x_new, m_new)``.

    References:
        Hao, Gong & Liu (2024), arXiv:2401.09587, Algorithm 1 (BO-REP), the update of x.
    """
    x = _check_point(x, name="x", size=x.shape[-1] if isinstance(x, torch.Tensor) and x.ndim else 0)
    m = _check_point(m, name="m", size=x.shape[-1], like=x)
    h = _check_point(h, name="h", size=x.shape[-1], like=x)
    for name, v in (("m", m), ("h", h)):
        if v.shape != x.shape:
            raise ValueError(f"{name}: expected the shape of x {tuple(x.shape)}, got {tuple(v.shape)}")
    beta = check_positive(beta, name="beta", allow_zero=True)
    if beta >= 1:
        raise ValueError(f"beta: must be < 1, got {beta}")
    normalize = check_flag(normalize, name="normalize")
    if isinstance(lr, torch.Tensor) and lr.ndim > 0:
        if lr.shape != x.shape[:-1] or not bool((lr > 0).all()):
            raise ValueError(f"lr: expected learning rates > 0 of shape {tuple(x.shape[:-1])}")
    elif check_positive(lr, name="lr") == 0:
        raise ValueError("lr: must be > 0")
    return _upper(x, m, h, lr=lr, beta=beta, normalize=normalize)


def _upper(x, m, h, *, lr, beta, normalize):
    """:func:`upper_step` without the checks (it runs every step of the loop, on whatever the state holds)."""
    if isinstance(lr, torch.Tensor) and lr.ndim > 0:
        lr = lr[..., None]
    m = beta * m + (1 - beta) * h
    if not normalize:
        return x - lr * m, m
    size = m.norm(dim=-1, keepdim=True)
    return x - lr * (m / torch.where(size > 0, size, 1.0)), m  # m = 0 exactly where its norm is 0: no step


@dataclass(frozen=True)
class Noise:
    """Standard normal draws for one step (multiplied by the noise level ``sigma``).

    Attributes:
        lower: shape ``(inner_steps, ..., dy)``, one per lower-level gradient call.
        linear: shape ``(2, ..., dy)``, for ``grad2_yy g . z`` and ``grad_y f``.
        upper: shape ``(2, ..., dx)``, for ``grad_x f`` and ``grad2_xy g . z``.
    """

    lower: torch.Tensor
    linear: torch.Tensor
    upper: torch.Tensor


def draw_noise(problem: ToyProblem, batch: tuple, *, inner_steps: int, generator: torch.Generator) -> Noise:
    """Draw one step's :class:`Noise` for runs of batch shape ``batch`` (the same number every step)."""
    dx, dy = _check_problem(problem).dims
    inner_steps = check_count(inner_steps, name="inner_steps", minimum=0)
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator: expected a torch.Generator, got {type(generator).__name__}")
    return _draw(problem, batch, inner_steps, generator)


def _draw(problem: ToyProblem, batch: tuple, inner_steps: int, generator: torch.Generator) -> Noise:
    """:func:`draw_noise` without the checks (it runs every step of the loop)."""
    dx, dy = problem.dims
    kw = dict(generator=generator, dtype=problem.A.dtype, device=problem.A.device)
    return Noise(torch.randn(inner_steps, *batch, dy, **kw), torch.randn(2, *batch, dy, **kw),
                 torch.randn(2, *batch, dx, **kw))


def bo_rep_step(problem: ToyProblem, state: State, t: int, *, lr, beta: float = 0.9, period: int = 5,
                inner_steps: int = 3, lr_inner: float = 0.3, nu: float = 0.3, sigma: float = 0.0,
                normalize: bool = True, noise: Noise | None = None,
                generator: int | torch.Generator | None = None) -> State:
    """One iteration of BO-REP (eq-bilevel-borep) on the state ``(x, m, y, z)``.

    In order: when ``t % period == 0``, ``inner_steps`` SGD steps ``y <- y - lr_inner (grad_y g + e)``
    at the current ``x`` (periodic updates); one step on the linear system
    ``z <- z - nu (grad2_yy g . z - grad_y f)`` (each oracle with its own noise); the hypergradient
    ``h`` of eq-bilevel-hypergradient with noisy oracles; and :func:`upper_step`. Each oracle adds
    ``sigma * xi`` with ``xi`` from ``noise`` (injected, for exact tests) or drawn from ``generator``.

    Args:
        problem: a :class:`ToyProblem`.
        state: ``(x, m, y, z)``, shapes ``(..., dx)``, ``(..., dx)``, ``(..., dy)``, ``(..., dy)``.
        t: the iteration count (decides the periodic update).
        lr: ``lr > 0`` (a number, or one per run of shape ``x.shape[:-1]``).
        beta, normalize: see :func:`upper_step`. period: ``I >= 1``. inner_steps: ``N >= 0``.
        lr_inner: lower-level step ``> 0``. nu: linear-system step ``> 0``. sigma: noise level ``>= 0``.
        noise: a :class:`Noise` of standard normals, or ``None`` to draw one from ``generator``.
        generator: seed or generator (needed when ``sigma > 0`` and no ``noise`` is given).

    Returns:
        The new state.
    """
    problem = _check_problem(problem)
    x, m, y, z = state
    period = check_count(period, name="period")
    inner_steps = check_count(inner_steps, name="inner_steps", minimum=0)
    lr_inner, nu = check_positive(lr_inner, name="lr_inner"), check_positive(nu, name="nu")
    sigma = check_positive(sigma, name="sigma", allow_zero=True)
    beta, normalize = check_positive(beta, name="beta", allow_zero=True), check_flag(normalize, name="normalize")
    if beta >= 1:
        raise ValueError(f"beta: must be < 1, got {beta}")
    if isinstance(lr, torch.Tensor) and lr.ndim > 0:  # one per run, from the loop: shape only (no sync per step)
        if lr.shape != x.shape[:-1] or not lr.is_floating_point():
            raise ValueError(f"lr: expected one learning rate per run, shape {tuple(x.shape[:-1])}")
    elif check_positive(lr, name="lr") == 0:
        raise ValueError("lr: must be > 0")
    if noise is None:
        if sigma > 0 and generator is None:
            raise ValueError("generator: needed to draw the oracle noise when sigma > 0")
        noise = (draw_noise(problem, x.shape[:-1], inner_steps=inner_steps, generator=as_generator(generator, x.device))
                 if sigma > 0 else Noise(torch.zeros((inner_steps,) + y.shape, dtype=y.dtype, device=y.device),
                                         torch.zeros((2,) + y.shape, dtype=y.dtype, device=y.device),
                                         torch.zeros((2,) + x.shape, dtype=x.dtype, device=x.device)))
    elif not isinstance(noise, Noise):
        raise ValueError(f"noise: expected a Noise (or None), got {type(noise).__name__}")
    return _step(problem, (x, m, y, z), t, lr=lr, beta=beta, period=period, inner_steps=inner_steps,
                 lr_inner=lr_inner, nu=nu, sigma=sigma, normalize=normalize, noise=noise)


def _step(problem: ToyProblem, state: State, t: int, *, lr, beta, period, inner_steps, lr_inner, nu, sigma,
          normalize, noise: Noise) -> State:
    """:func:`bo_rep_step` without the checks (the loop of :func:`bo_rep` calls it every step)."""
    x, m, y, z = state
    if t % period == 0:
        for k in range(inner_steps):
            y = y - lr_inner * (problem.grad_y_g(x, y) + sigma * noise.lower[k])
    z = z - nu * ((problem.hvp_yy_g(z) + sigma * noise.linear[0]) - (problem.grad_y_f(x, y) + sigma * noise.linear[1]))
    h = (problem.grad_x_f(x, y) + sigma * noise.upper[0]) - (problem.jvp_xy_g(z) + sigma * noise.upper[1])
    x, m = _upper(x, m, h, lr=lr, beta=beta, normalize=normalize)
    return x, m, y, z


@dataclass(frozen=True)
class BORepRun(Record):
    """What :func:`bo_rep` returns (on the host).

    Attributes:
        steps: recorded steps, shape ``(K,)``.
        x: upper iterates, shape ``(K, ..., dx)``.
        grad_phi_norm: ``||grad Phi(x_t)||`` (exact), shape ``(K, ...)``.
        phi: ``Phi(x_t)``, shape ``(K, ...)``.
        lower_level_calls: lower-level gradient calls ``refine_steps + ceil(T'/period) * inner_steps``,
            ``T'`` the steps a run made (``diverged_at`` for a diverged run), shape ``(...)``.
        diverged: shape ``(...)``. diverged_at: ``-1`` where a run did not diverge.
        lr: the learning rate of every step (see :class:`lessons_lib.run.Run`).
    """

    steps: torch.Tensor
    x: torch.Tensor
    grad_phi_norm: torch.Tensor
    phi: torch.Tensor
    lower_level_calls: torch.Tensor
    diverged: torch.Tensor
    diverged_at: torch.Tensor
    lr: torch.Tensor


def refine(problem: ToyProblem, x0: torch.Tensor, *, steps: int = 50, lr_inner: float = 0.3, sigma: float = 0.0,
           generator: int | torch.Generator | None = None) -> torch.Tensor:
    """Initialisation refinement: ``steps`` noisy SGD steps on ``g(x0, .)`` from ``y = 0``, shape ``(..., dy)``."""
    problem = _check_problem(problem)
    steps = check_count(steps, name="steps", minimum=0)
    lr_inner = check_positive(lr_inner, name="lr_inner")
    sigma = check_positive(sigma, name="sigma", allow_zero=True)
    x0 = _check_point(x0, name="x0", size=problem.dims[0], like=problem.A)
    y = torch.zeros(x0.shape[:-1] + (problem.dims[1],), dtype=x0.dtype, device=x0.device)
    gen = as_generator(generator, x0.device) if sigma > 0 and steps > 0 else None
    for _ in range(steps):
        e = torch.randn(y.shape, generator=gen, dtype=y.dtype, device=y.device) if gen is not None else 0.0
        y = y - lr_inner * (problem.grad_y_g(x0, y) + sigma * e)
    return y


def bo_rep(problem: ToyProblem, x0, *, lr, steps: int, beta: float = 0.9, period: int = 5, inner_steps: int = 3,
           refine_steps: int = 50, lr_inner: float = 0.3, nu: float = 0.3, noise: float = 0.1,
           normalize: bool = True, generator: int | torch.Generator = 0, record_every: int = 1,
           blowup: float = 1e6) -> BORepRun:
    """Run BO-REP (eq-bilevel-borep) from ``x0``; ``beta=0, normalize=False`` is the plain AID step.

    Initialisation refinement (:func:`refine`, ``refine_steps`` lower-level calls at ``x0``), ``z = 0``
    and ``m = 0``; then ``steps`` iterations of :func:`bo_rep_step` through :func:`lessons_lib.run.run`
    (its one meaning of divergence: the whole state ``(x, m, y, z)`` leaves ``blowup`` times its start's
    norm). Every gradient oracle adds N(0, ``noise``^2) noise drawn from ``generator``.

    Args:
        problem: a :class:`ToyProblem`.
        x0: start, shape ``(dx,)`` or ``(n, dx)`` for ``n`` runs in one batch.
        lr: ``lr > 0``, a number or ``n`` numbers (one per run), or a schedule ``t -> lr`` (see
            :mod:`lessons_lib.schedules`).
        steps: iterations ``T >= 0``.
        beta: momentum in ``[0, 1)``. period: ``I >= 1``. inner_steps: ``N >= 0``. refine_steps: ``>= 0``.
        lr_inner: lower-level step ``> 0``. nu: linear-system step ``> 0``. noise: oracle noise level ``>= 0``.
        normalize: normalised (BO-REP) or plain steps.
        generator: int seed or generator for all the noise.
        record_every: recording interval. blowup: divergence radius (see :mod:`lessons_lib.run`).

    Returns:
        A :class:`BORepRun`.

    References:
        Hao, Gong & Liu (2024), Bilevel Optimization under Unbounded Smoothness: A New Algorithm and
        Convergence Analysis, ICLR, arXiv:2401.09587 (Algorithm 1).
    """
    problem = _check_problem(problem)
    dx, _ = problem.dims
    x0 = as_tensor(x0, name="x0", dtype=problem.A.dtype, device=problem.A.device)
    if x0.ndim not in (1, 2) or x0.shape[-1] != dx:
        raise ValueError(f"x0: expected shape ({dx},) or (n, {dx}), got {tuple(x0.shape)}")
    steps = check_count(steps, name="steps", minimum=0)
    period = check_count(period, name="period")
    inner_steps = check_count(inner_steps, name="inner_steps", minimum=0)
    refine_steps = check_count(refine_steps, name="refine_steps", minimum=0)
    sigma = check_positive(noise, name="noise", allow_zero=True)
    batched = x0.ndim == 2
    if isinstance(lr, bool):
        raise ValueError(f"lr: expected a learning rate > 0 (a number, one per run or a schedule), got the bool {lr}")
    if isinstance(lr, (int, float)):
        if check_positive(lr, name="lr") == 0:
            raise ValueError("lr: must be > 0")
    elif callable(lr):
        pass  # a schedule of lessons_lib.schedules: lessons_lib.run.run checks its values
    else:
        if not batched:
            raise ValueError("lr: one learning rate per run needs x0 of shape (n, dx)")
        lr_t = as_tensor(lr, name="lr", device=x0.device)
        if lr_t.shape != x0.shape[:1] or bool((lr_t <= 0).any()):
            raise ValueError(f"lr: expected {x0.shape[0]} learning rates > 0, got shape {tuple(lr_t.shape)}")
    gen = as_generator(generator, x0.device)
    y0 = refine(problem, x0, steps=refine_steps, lr_inner=lr_inner, sigma=sigma, generator=gen)
    beta, normalize = check_positive(beta, name="beta", allow_zero=True), check_flag(normalize, name="normalize")
    if beta >= 1:
        raise ValueError(f"beta: must be < 1, got {beta}")
    lr_inner, nu = check_positive(lr_inner, name="lr_inner"), check_positive(nu, name="nu")
    kw = dict(beta=beta, period=period, inner_steps=inner_steps, lr_inner=lr_inner, nu=nu, sigma=sigma,
              normalize=normalize)

    def step(state, t, eta):  # the options were checked above: the loop calls the unchecked step
        return _step(problem, state, t, lr=eta, noise=_draw(problem, x0.shape[:-1], inner_steps, gen), **kw)

    def record(state, t):
        x = state[0]
        return {"x": x, "grad_phi_norm": problem.grad_phi(x).norm(dim=-1), "phi": problem.phi(x)}

    state0 = (x0, torch.zeros_like(x0), y0, torch.zeros_like(y0))
    out = runner.run(step, state0, steps=steps, lr=lr, record=record, record_every=record_every, blowup=blowup,
                     batched=batched)
    made = torch.where(out.diverged, out.diverged_at, torch.full_like(out.diverged_at, steps))
    calls = refine_steps + torch.div(made + period - 1, period, rounding_mode="floor") * inner_steps
    h = out.history
    return BORepRun(out.steps, h["x"], h["grad_phi_norm"], h["phi"], calls, out.diverged, out.diverged_at, out.lr)


@dataclass(frozen=True)
class DivergenceMap(Record):
    """What :func:`divergence_map` returns (on the host).

    Attributes:
        lrs: shape ``(L,)``. scales: start scales ``s`` (start ``s * 1``), shape ``(S,)``.
        diverged: shape ``(S, L)``. diverged_at: shape ``(S, L)``, ``-1`` where a run did not diverge.
        final_grad_norm: ``||grad Phi||`` at the last state, shape ``(S, L)``.
        largest_stable: per scale, the largest ``lr`` of the grid below which no run diverged
            (0 where even the smallest diverged), shape ``(S,)``.
    """

    lrs: torch.Tensor
    scales: torch.Tensor
    diverged: torch.Tensor
    diverged_at: torch.Tensor
    final_grad_norm: torch.Tensor
    largest_stable: torch.Tensor


def divergence_map(problem: ToyProblem, *, lrs, scales, steps: int, beta: float = 0.9, normalize: bool = True,
                   period: int = 5, inner_steps: int = 3, refine_steps: int = 50, lr_inner: float = 0.3,
                   nu: float = 0.3, noise: float = 0.1, generator: int | torch.Generator = 0) -> DivergenceMap:
    """Which ``(lr, s)`` diverge from ``x0 = s * 1``: every pair run in one batch of :func:`bo_rep`.

    Args:
        problem: a :class:`ToyProblem`.
        lrs: learning rates ``> 0``, increasing, shape ``(L,)``.
        scales: start scales ``> 0``, shape ``(S,)``.
        steps, beta, normalize, period, inner_steps, refine_steps, lr_inner, nu, noise, generator: as in
            :func:`bo_rep` (``lr_inner = nu = 0.5`` with ``mu = 1`` solves ``y`` and ``z`` exactly in one step).

    Returns:
        A :class:`DivergenceMap`.
    """
    problem = _check_problem(problem)
    steps = check_count(steps, name="steps", minimum=0)
    lrs = as_tensor(lrs, name="lrs", device=problem.A.device).reshape(-1)
    scales = as_tensor(scales, name="scales", device=problem.A.device).reshape(-1)
    if lrs.numel() == 0 or bool((lrs <= 0).any()) or bool((lrs.diff() <= 0).any()):
        raise ValueError("lrs: expected increasing learning rates > 0")
    if scales.numel() == 0 or bool((scales <= 0).any()):
        raise ValueError("scales: expected start scales > 0")
    S, L = scales.numel(), lrs.numel()
    dx = problem.dims[0]
    x0 = (scales[:, None, None] * torch.ones(S, L, dx, dtype=lrs.dtype, device=lrs.device)).reshape(S * L, dx)
    out = bo_rep(problem, x0, lr=lrs.repeat(S), steps=steps, beta=beta, normalize=normalize, period=period,
                 inner_steps=inner_steps, refine_steps=refine_steps, lr_inner=lr_inner, nu=nu, noise=noise,
                 generator=generator, record_every=max(steps, 1))
    diverged = out.diverged.reshape(S, L)
    ok = ~diverged.cumsum(dim=1).bool()  # stable and every smaller lr stable too
    count = ok.sum(dim=1)
    largest = torch.where(count > 0, lrs.cpu()[(count - 1).clamp(min=0)], torch.zeros(S, dtype=torch.float64))
    return DivergenceMap(lrs, scales, diverged, out.diverged_at.reshape(S, L),
                         out.grad_phi_norm[-1].reshape(S, L), largest)
