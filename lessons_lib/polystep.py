"""PolyStep: training with forward passes only, by one-sided optimal transport onto polytope vertices.

Around each particle ``X_p`` (a point in ``R^d``) PolyStep places the vertices of a randomly rotated
polytope of radius ``r`` (eq-polystep-vertices), evaluates the loss there, rescales the costs
(eq-polystep-costs), turns each particle's row of costs into softmax weights with temperature ``eps``
(the one-sided limit of entropic optimal transport, eq-polystep-plan) and moves the particle to the
weighted barycentre of its vertices (eq-polystep-step). Nothing is differentiated, so staircases,
sign activations and 0-1 losses, whose gradients are zero almost everywhere, can still be descended.

Limits (the chapter measures them): ``eps -> infinity`` gives uniform weights and no move (the
orthoplex is centrally symmetric); ``eps -> 0`` jumps to the lowest-cost vertex; for a linear cost
and large ``eps`` the move is exactly along ``-grad f`` because ``sum_v v v^T = 2 I`` over the
orthoplex. The baseline is OpenAI's evolution strategy (eq-polystep-es) with antithetic sampling and
z-scored fitness.

Shapes: particles ``(P, d)``; vertices ``(P, V, d)``; costs, weights and plan ``(P, V)``. Records come
back on the host.

References:
    An T. Le (2026), Training Non-Differentiable Networks via Optimal Transport, arXiv:2605.01928
    (code: anindex/polystep).
    Salimans, Ho, Chen, Sidor & Sutskever (2017), Evolution Strategies as a Scalable Alternative to
    Reinforcement Learning, arXiv:1703.03864.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable, Literal

import torch

from .backend import (
    Record,
    as_generator,
    check_callable,
    check_choice,
    check_count,
    check_positive,
    default_device,
)
from .run import run

Polytope = Literal["orthoplex", "cube"]
POLYTOPES: tuple[str, ...] = ("orthoplex", "cube")
Objective = Callable[[torch.Tensor], torch.Tensor]


# --- checks --------------------------------------------------------------------------------------

def _check_matrix(X, *, name: str, finite: bool = True) -> torch.Tensor:
    if not isinstance(X, torch.Tensor) or not X.is_floating_point():
        got = f"a tensor of dtype {X.dtype}" if isinstance(X, torch.Tensor) else type(X).__name__
        raise ValueError(f"{name}: expected a real floating-point tensor of shape (P, d), got {got}")
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"{name}: expected shape (P, d) with P, d >= 1, got {tuple(X.shape)}")
    if finite and not bool(torch.isfinite(X).all()):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return X


def _check_costs(costs, *, rows: int | None = None) -> torch.Tensor:
    if not isinstance(costs, torch.Tensor) or not costs.is_floating_point():
        raise ValueError(f"costs: expected a real floating-point tensor of shape (P, V), got {type(costs).__name__}")
    if costs.ndim != 2 or costs.shape[1] < 1 or (rows is not None and costs.shape[0] != rows):
        raise ValueError(f"costs: expected shape (P, V){'' if rows is None else f' with P = {rows}'}, "
                         f"got {tuple(costs.shape)}")
    if not bool(torch.isfinite(costs).all()):
        raise ValueError("costs: contains NaN or infinite values")
    return costs


def _check_finite(x, *, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        got = f"a tensor of dtype {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name}: expected a real floating-point tensor, got {got}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return x


# --- the pieces of one step ------------------------------------------------------------------------

def _generator(generator, device) -> torch.Generator:
    """``backend.as_generator`` with its errors naming this module's argument, ``generator``."""
    try:
        return as_generator(generator, device)
    except ValueError as exc:
        raise ValueError(str(exc).replace("seed_or_generator:", "generator:", 1)) from None


def polytope_vertices(d: int, *, polytope: Polytope = "orthoplex", dtype: torch.dtype = torch.float64,
                      device=None) -> torch.Tensor:
    """The unit polytope template ``V_0`` (eq-polystep-vertices): its ``V`` vertices as rows, shape ``(V, d)``.

    ``"orthoplex"``: ``+e_1, ..., +e_d, -e_1, ..., -e_d`` (``V = 2d``, in the order of the official
    code); ``"cube"``: the ``2^d`` points ``(+-1, ..., +-1) / sqrt(d)`` (``d <= 12``). Both lie on the
    unit sphere and are centrally symmetric, so their vertices sum to zero.
    """
    d = check_count(d, name="d")
    check_choice(polytope, POLYTOPES, name="polytope")
    device = default_device() if device is None else device
    if polytope == "orthoplex":
        eye = torch.eye(d, dtype=dtype, device=device)
        return torch.cat([eye, -eye])
    if d > 12:
        raise ValueError(f"d: the cube has 2^d vertices; use d <= 12 for it, got d = {d}")
    signs = torch.tensor(list(itertools.product((1.0, -1.0), repeat=d)), dtype=dtype, device=device)
    return signs / math.sqrt(d)


def random_rotations(P: int, d: int, *, generator: int | torch.Generator, dtype: torch.dtype = torch.float64,
                     device=None) -> torch.Tensor:
    """``P`` independent Haar-random rotations of ``R^d`` (determinant +1), shape ``(P, d, d)``.

    QR of a Gaussian matrix with the signs of ``R``'s diagonal moved into ``Q`` (Haar on O(d)), then the
    first column negated where the determinant is -1 (Mezzadri 2007); in the plane, a uniform angle.
    """
    P, d = check_count(P, name="P"), check_count(d, name="d")
    device = default_device() if device is None else torch.device(device)
    gen = _generator(generator, device)
    if d == 2:  # a uniform angle: the same law, without a QR per particle
        t = 2 * math.pi * torch.rand(P, generator=gen, dtype=dtype, device=device)
        c, s = torch.cos(t), torch.sin(t)
        return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    A = torch.randn(P, d, d, generator=gen, dtype=dtype, device=device)
    Q, R = torch.linalg.qr(A)
    s = torch.diagonal(R, dim1=-2, dim2=-1).sign()
    Q = Q * torch.where(s == 0, torch.ones_like(s), s).unsqueeze(-2)
    flip = torch.ones(P, d, dtype=dtype, device=device)
    flip[:, 0] = torch.linalg.det(Q).sign()
    return Q * flip.unsqueeze(-2)


def scaled_costs(costs: torch.Tensor) -> torch.Tensor:
    """The costs minus their minimum, divided by their mean absolute value (eq-polystep-costs), shape ``(P, V)``.

    Minimum and mean are over the whole ``(P, V)`` matrix, as in the official code, so ``eps`` is measured in
    units of a typical cost gap whatever the loss's scale; a matrix of equal costs gives zeros.
    """
    costs = _check_costs(costs)
    C = costs - costs.amin()
    return C / C.abs().mean().clamp_min(1e-10)


def softmin_plan(costs: torch.Tensor, *, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The one-sided entropic transport plan (eq-polystep-plan): ``(weights, plan)``, each of shape ``(P, V)``.

    ``W_p = softmax(-C~_p / eps)`` row by row, with ``C~`` the scaled costs (eq-polystep-costs); the plan is
    ``T = diag(a) W`` with source marginal ``a = 1/P``, so each row of ``T`` sums to ``1/P``. It is the limit of
    Sinkhorn's plan when the constraint on the vertices' marginal is dropped.

    Args:
        costs: raw losses at the vertices, shape ``(P, V)``.
        eps: temperature ``eps > 0`` (small: the best vertex; large: uniform).
    """
    eps = check_positive(eps, name="eps")
    C = scaled_costs(costs)
    # softmax written out (torch.softmax is slow on tiny matrices); shifted by each row's minimum, so exp <= 1
    E = torch.exp(-(C - C.amin(-1, keepdim=True)) / eps)
    W = E / E.sum(-1, keepdim=True)
    return W, W / W.shape[0]


@dataclass(frozen=True)
class PolyStepUpdate(Record):
    """One PolyStep step (eq-polystep-step), on the host.

    Attributes:
        X: the new particles, shape ``(P, d)``.
        points: the vertices evaluated, shape ``(P, V, d)``.
        costs: the raw losses at the vertices, shape ``(P, V)``.
        weights: softmax weights, rows summing to 1, shape ``(P, V)``.
        plan: the transport plan ``weights / P``, rows summing to ``1/P``.
    """

    X: torch.Tensor
    points: torch.Tensor
    costs: torch.Tensor
    weights: torch.Tensor
    plan: torch.Tensor


def _values(f: Objective, points: torch.Tensor) -> torch.Tensor:
    C = f(points)
    if not isinstance(C, torch.Tensor) or C.shape != points.shape[:-1]:
        raise ValueError(f"f: must map points of shape (..., d) to values of shape (...), got "
                         f"{tuple(C.shape) if isinstance(C, torch.Tensor) else type(C).__name__} for "
                         f"{tuple(points.shape)}")
    return C.to(points.dtype)


def _step(f, X, *, radius, eps, template, gen, rotation=None):
    P, d = X.shape
    R = random_rotations(P, d, generator=gen, dtype=X.dtype, device=X.device) if rotation is None else rotation
    points = X.unsqueeze(1) + radius * torch.einsum("pij,vj->pvi", R, template)
    costs = _values(f, points)
    bad = ~torch.isfinite(costs)
    if bool(bad.any()):  # a vertex where f is not finite gets the worst finite cost plus one (never chosen)
        worst = costs.masked_fill(bad, -math.inf).amax() if bool((~bad).any()) else costs.new_zeros(())
        costs = costs.masked_fill(bad, float(worst) + 1.0)
    W, plan = softmin_plan(costs, eps=eps)
    return torch.einsum("pv,pvi->pi", W, points), points, costs, W, plan


def polystep_step(f: Objective, X: torch.Tensor, *, radius: float, eps: float, polytope: Polytope = "orthoplex",
                  generator: int | torch.Generator | None = None,
                  rotation: torch.Tensor | None = None) -> PolyStepUpdate:
    """One PolyStep step (eq-polystep-step) for every particle at once.

    ``x_pv = X_p + r R_p v`` (eq-polystep-vertices), ``C_pv = f(x_pv)``, ``W = softmax(-C~ / eps)``
    (eq-polystep-costs, eq-polystep-plan) and ``X_p <- sum_v W_pv x_pv``. ``radius`` is the step knob (how far
    a particle can move), ``eps`` the temperature.

    Args:
        f: loss mapping points ``(..., d)`` to values ``(...)``; only called, never differentiated.
        X: particles, shape ``(P, d)``.
        radius: polytope radius ``r > 0``.
        eps: temperature ``eps > 0``.
        polytope: ``"orthoplex"`` (``2d`` vertices) or ``"cube"`` (``2^d``).
        generator: int seed or ``torch.Generator`` for the rotations (required unless ``rotation`` is given).
        rotation: injected rotations ``R_p``, shape ``(P, d, d)`` (for exact tests and the peer comparison).

    Returns:
        A :class:`PolyStepUpdate`.

    References:
        Le (2026), Training Non-Differentiable Networks via Optimal Transport, arXiv:2605.01928.
    """
    check_callable(f, name="f")
    X = _check_matrix(X, name="X")
    radius, eps = check_positive(radius, name="radius"), check_positive(eps, name="eps")
    template = polytope_vertices(X.shape[1], polytope=polytope, dtype=X.dtype, device=X.device)
    gen = None
    if rotation is None:
        if generator is None:
            raise ValueError("generator: needed to draw the rotations (or pass rotation=)")
        gen = _generator(generator, X.device)
    else:
        P, d = X.shape
        if not isinstance(rotation, torch.Tensor) or not rotation.is_floating_point() or rotation.shape != (P, d, d):
            raise ValueError(f"rotation: expected a floating-point tensor of shape (P, d, d) = ({P}, {d}, {d}), got "
                             f"{getattr(rotation, 'shape', type(rotation).__name__)}")
        if not bool(torch.isfinite(rotation).all()):
            raise ValueError("rotation: contains NaN or infinite values")
        rotation = rotation.to(X.dtype)
    return PolyStepUpdate(*_step(f, X, radius=radius, eps=eps, template=template, gen=gen, rotation=rotation))


# --- many steps ----------------------------------------------------------------------------------

def cosine_decay(k: int, *, steps: int, decay: float) -> float:
    """The factor ``decay + (1 - decay) (1 + cos(pi k / K)) / 2``: 1 at ``k = 0``, ``decay`` at ``k = K``."""
    k, steps = check_count(k, name="k", minimum=0), check_count(steps, name="steps", minimum=0)
    decay = check_positive(decay, name="decay")
    if decay > 1:
        raise ValueError(f"decay: must be in (0, 1], got {decay}")
    return decay + (1 - decay) * 0.5 * (1 + math.cos(math.pi * min(int(k), steps) / max(steps, 1)))


@dataclass(frozen=True)
class PolyStepResult(Record):
    """A PolyStep run (eq-polystep-step), on the host.

    Attributes:
        steps: step indices ``0..K``, shape ``(K+1,)``.
        particles: the particles at every step, shape ``(K+1, P, d)``.
        loss: ``f`` at the particles, shape ``(K+1, P)``.
        best: the lowest loss evaluated so far (particles and vertices), shape ``(K+1,)``.
        evaluations: forward passes (loss evaluations) used so far, shape ``(K+1,)``.
        diverged, diverged_at: as in :mod:`lessons_lib.run` (a run whose particles leave the blow-up ball).
    """

    steps: torch.Tensor
    particles: torch.Tensor
    loss: torch.Tensor
    best: torch.Tensor
    evaluations: torch.Tensor
    diverged: torch.Tensor
    diverged_at: torch.Tensor


def polystep_minimize(f: Objective, X0: torch.Tensor, *, radius: float, eps: float, steps: int,
                      decay: float = 1.0, polytope: Polytope = "orthoplex",
                      generator: int | torch.Generator | None = None, blowup: float = 1e6) -> PolyStepResult:
    """``steps`` PolyStep steps (eq-polystep-step) from ``X0``, with ``r`` and ``eps`` on a cosine decay.

    Step ``k`` uses ``r_k = radius * c_k`` and ``eps_k = eps * c_k`` with ``c_k`` from :func:`cosine_decay`
    (``decay = 1``: constant; the official code decays both, broad to fine). The loop is
    :func:`lessons_lib.run.run`, so a run whose particles leave the ball ``blowup * max(1, |X0|)`` is frozen
    and flagged.

    Args:
        f: loss mapping ``(..., d)`` to ``(...)``.
        X0: initial particles, shape ``(P, d)``.
        radius, eps, polytope: as in :func:`polystep_step`.
        steps: number of steps ``K >= 0``.
        decay: final fraction ``0 < decay <= 1`` of ``radius`` and ``eps``.
        generator: int seed or ``torch.Generator`` for the rotations.
        blowup: divergence radius relative to ``max(1, |X0|)``.

    Returns:
        A :class:`PolyStepResult`.

    References:
        Le (2026), arXiv:2605.01928.
    """
    check_callable(f, name="f")
    X = _check_matrix(X0, name="X0")
    radius, eps = check_positive(radius, name="radius"), check_positive(eps, name="eps")
    steps = check_count(steps, name="steps", minimum=0)
    decay = check_positive(decay, name="decay")
    if decay > 1:
        raise ValueError(f"decay: must be in (0, 1], got {decay}")
    blowup = check_positive(blowup, name="blowup")
    template = polytope_vertices(X.shape[1], polytope=polytope, dtype=X.dtype, device=X.device)
    gen = _generator(generator if generator is not None else _missing_generator(), X.device)
    V = template.shape[0]
    f0 = _values(f, X)
    if not bool(torch.isfinite(f0).all()):
        raise ValueError("f: is not finite at the initial particles X0")

    def step(state, k, _):
        X, fX, best = state
        c = cosine_decay(k, steps=steps, decay=decay)
        X_new, _, costs, _, _ = _step(f, X, radius=radius * c, eps=eps * c, template=template, gen=gen)
        f_new = _values(f, X_new)
        return X_new, f_new, torch.minimum(best, torch.minimum(costs.amin(), f_new.amin()))

    out = run(step, (X, f0, f0.amin()), steps=steps, record=lambda s, k: {"X": s[0], "loss": s[1], "best": s[2]},
              blowup=blowup)
    P = X.shape[0]
    ks = out.steps
    return PolyStepResult(steps=ks, particles=out.history["X"], loss=out.history["loss"], best=out.history["best"],
                          evaluations=P * (1 + ks * (V + 1)), diverged=out.diverged, diverged_at=out.diverged_at)


def _missing_generator():
    raise ValueError("generator: an int seed or torch.Generator is required (the rotations are random)")


# --- the baseline: OpenAI-ES ------------------------------------------------------------------------

@dataclass(frozen=True)
class ESResult(Record):
    """An OpenAI-ES run (eq-polystep-es), on the host.

    Attributes:
        params: the mean ``x_k`` at every generation, shape ``(K+1, d)``.
        loss: ``f(x_k)``, shape ``(K+1,)``.
        best: the lowest loss of any evaluated candidate so far, shape ``(K+1,)``.
        evaluations: forward passes so far, shape ``(K+1,)``.
        diverged, diverged_at: as in :mod:`lessons_lib.run` (a mean that leaves the blow-up ball, or whose loss
            stops being finite, is frozen and flagged).
    """

    params: torch.Tensor
    loss: torch.Tensor
    best: torch.Tensor
    evaluations: torch.Tensor
    diverged: torch.Tensor
    diverged_at: torch.Tensor


def es_direction(losses: torch.Tensor, noise: torch.Tensor, *, sigma: float) -> torch.Tensor:
    """OpenAI-ES's search gradient from antithetic pairs (eq-polystep-es), shape ``(d,)``.

    ``losses`` has shape ``(2m,)``: the losses at ``x + sigma z_i`` then at ``x - sigma z_i``; ``noise`` holds
    the ``z_i``, shape ``(m, d)``. The losses are z-scored (minus their mean, over their standard deviation;
    all equal gives a zero direction) and ``g = sum_i (s_i^+ - s_i^-) z_i / (2 m sigma)``, a rescaled
    (fitness-shaped) estimate of the gradient of the Gaussian-smoothed loss.
    """
    sigma = check_positive(sigma, name="sigma")
    noise = _check_matrix(noise, name="noise")
    losses = _check_finite(losses, name="losses")
    if losses.shape != (2 * noise.shape[0],):
        raise ValueError(f"losses: expected shape (2m,) = ({2 * noise.shape[0]},), got {tuple(losses.shape)}")
    sd = losses.std(correction=0)
    s = (losses - losses.mean()) / sd if float(sd) > 0 else torch.zeros_like(losses)
    n = noise.shape[0]
    return ((s[:n] - s[n:]).to(noise.dtype) @ noise) / (2 * n * sigma)


def openai_es(f: Objective, x0: torch.Tensor, *, sigma: float, lr: float, population: int, steps: int,
              generator: int | torch.Generator) -> ESResult:
    """OpenAI-ES (eq-polystep-es): ``x <- x - lr g`` with the antithetic, z-scored search gradient ``g``.

    Each generation evaluates ``population`` candidates ``x +- sigma z_i`` (``population`` even) and
    ``x`` itself is not counted; plain SGD on ``g`` (no Adam), as in the measured comparison.

    Args:
        f: loss mapping ``(..., d)`` to ``(...)``.
        x0: start, shape ``(d,)``.
        sigma: perturbation scale ``sigma > 0``.
        lr: learning rate ``lr > 0``.
        population: candidates per generation, an even number ``>= 2``.
        steps: generations ``K >= 0``.
        generator: int seed or ``torch.Generator`` for the perturbations.

    Returns:
        An :class:`ESResult`.

    References:
        Salimans et al. (2017), Evolution Strategies as a Scalable Alternative to Reinforcement Learning,
        arXiv:1703.03864.
    """
    check_callable(f, name="f")
    if not isinstance(x0, torch.Tensor) or x0.ndim != 1:
        raise ValueError(f"x0: expected a tensor of shape (d,), got {getattr(x0, 'shape', type(x0).__name__)}")
    x = _check_matrix(x0.unsqueeze(0), name="x0")[0]
    sigma, lr = check_positive(sigma, name="sigma"), check_positive(lr, name="lr")
    population = check_count(population, name="population", minimum=2)
    if population % 2:
        raise ValueError(f"population: must be even (antithetic pairs), got {population}")
    steps = check_count(steps, name="steps", minimum=0)
    gen = _generator(generator, x.device)
    n = population // 2
    f0 = _values(f, x.unsqueeze(0))[0]

    def step(state, k, _):
        x, fx, best = state
        z = torch.randn(n, x.shape[0], generator=gen, dtype=x.dtype, device=x.device)
        losses = _values(f, x + sigma * torch.cat([z, -z]))
        x_new = x - lr * es_direction(losses, z, sigma=sigma)
        return x_new, _values(f, x_new.unsqueeze(0))[0], torch.minimum(best, losses.amin())

    out = run(step, (x, f0, f0), steps=steps, record=lambda s, k: {"x": s[0], "loss": s[1], "best": s[2]},
              blowup=1e6)
    return ESResult(params=out.history["x"], loss=out.history["loss"], best=out.history["best"],
                    evaluations=out.steps * population, diverged=out.diverged, diverged_at=out.diverged_at)


# --- the sign network on a checkerboard ----------------------------------------------------------------

def checkerboard(n: int, *, cells: int = 3, noise: float = 0.05,
                 generator: int | torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points of a ``cells x cells`` checkerboard in ``[-1, 1]^2``: ``(X (n, 2) float32, y (n,) in {0, 1})``.

    The label is the parity of the cell (an XOR of the cell indices); the points are then jittered by
    Gaussian noise of standard deviation ``noise``, so labels near the cell edges are noisy.
    """
    n, cells = check_count(n, name="n"), check_count(cells, name="cells")
    noise = check_positive(noise, name="noise", allow_zero=True)
    gen = _generator(generator, "cpu")
    U = 2 * torch.rand(n, 2, generator=gen) - 1
    idx = ((U + 1) / 2 * cells).floor().clamp(max=cells - 1).long()
    y = (idx.sum(1) % 2).long()
    return U + noise * torch.randn(n, 2, generator=gen), y


def sign_net_size(hidden: int) -> int:
    """Parameters of the 2-``hidden``-1 sign network: ``4 hidden + 1`` (129 for ``hidden = 32``)."""
    return 4 * check_count(hidden, name="hidden") + 1


def sign_net_predict(params: torch.Tensor, X: torch.Tensor, *, hidden: int = 32) -> torch.Tensor:
    """Class predictions of sign networks (eq-polystep-signnet), shape ``(B, n)`` in {0, 1}.

    ``y^ = [q . sign(A x + b) + beta > 0]`` with ``sign(0) = -1``; ``params`` has shape ``(B, 4 hidden + 1)``
    (``A`` row-major, ``b``, ``q``, ``beta``) or ``(4 hidden + 1,)``; its gradient is zero almost everywhere.
    """
    size = sign_net_size(hidden)
    params, X = _check_finite(params, name="params"), _check_finite(X, name="X")
    if params.shape[-1] != size or params.ndim > 2:
        raise ValueError(f"params: expected shape (B, {size}) or ({size},), got "
                         f"{getattr(params, 'shape', type(params).__name__)}")
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"X: expected shape (n, 2), got {tuple(X.shape)}")
    p = params.reshape(-1, size).to(X.dtype)
    h = hidden
    W1, b1, w2, b2 = p[:, :2 * h].reshape(-1, h, 2), p[:, 2 * h:3 * h], p[:, 3 * h:4 * h], p[:, 4 * h:]
    # sign(z) = 2 [z > 0] - 1, so w2 . sign(z) = 2 w2 . [z > 0] - sum(w2): one comparison, one product
    on = (torch.matmul(X, W1.transpose(1, 2)) > -b1.unsqueeze(1)).to(X.dtype)
    out = 2 * (on @ w2.unsqueeze(-1)).squeeze(-1) - w2.sum(-1, keepdim=True) + b2
    return (out > 0).long().reshape(params.shape[:-1] + (X.shape[0],))


@dataclass(frozen=True)
class SignNetResult(Record):
    """A sign network trained by PolyStep or OpenAI-ES on a fixed data set, on the host.

    Attributes:
        best_accuracy: the best training accuracy of any candidate evaluated.
        accuracy_curve: best-so-far training accuracy after each generation, shape ``(G+1,)``.
        forward_passes: forward passes (network evaluations on the data set) so far, shape ``(G+1,)``.
        method: ``"polystep"`` or ``"openai_es"``.
    """

    best_accuracy: float
    accuracy_curve: torch.Tensor
    forward_passes: torch.Tensor
    method: str


def train_sign_net(X: torch.Tensor, y: torch.Tensor, *, method: Literal["polystep", "openai_es"] = "polystep",
                   hidden: int = 32, generations: int = 200, eps: float = 0.02, radius: float = 2.0,
                   sigma: float = 0.5, lr: float = 0.2, generator: int | torch.Generator) -> SignNetResult:
    """Train a sign network (eq-polystep-signnet) on its 0-1 loss with PolyStep or OpenAI-ES.

    Both start from ``0.5 N(0, I)`` (the same draw for the same seed) and spend ``2 n_params`` forward passes
    per generation: one PolyStep particle with the ``2 n_params`` vertices of the orthoplex (``eps``,
    ``radius``), or OpenAI-ES with a population of ``2 n_params`` (``sigma``, ``lr``). The accuracy reported
    is the best over every candidate evaluated so far, as in the official example.

    Args:
        X: inputs, shape ``(n, 2)``; y: labels in {0, 1}, shape ``(n,)``.
        method: ``"polystep"`` or ``"openai_es"``.
        hidden: hidden width (``4 hidden + 1`` parameters).
        generations: generations ``G >= 0``.
        eps, radius: PolyStep's temperature and radius (eq-polystep-step).
        sigma, lr: OpenAI-ES's perturbation scale and learning rate (eq-polystep-es).
        generator: int seed or ``torch.Generator`` (start, rotations and perturbations).

    Returns:
        A :class:`SignNetResult`.

    References:
        Le (2026), arXiv:2605.01928; Salimans et al. (2017), arXiv:1703.03864.
    """
    check_choice(method, ("polystep", "openai_es"), name="method")
    eps, radius = check_positive(eps, name="eps"), check_positive(radius, name="radius")
    sigma, lr = check_positive(sigma, name="sigma"), check_positive(lr, name="lr")
    size = sign_net_size(hidden)
    if not isinstance(X, torch.Tensor) or not X.is_floating_point() or X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"X: expected a floating-point tensor of shape (n, 2), got "
                         f"{getattr(X, 'shape', type(X).__name__)}")
    if not bool(torch.isfinite(X).all()):
        raise ValueError("X: contains NaN or infinite values")
    if not isinstance(y, torch.Tensor) or y.shape != X.shape[:1] or not bool(((y == 0) | (y == 1)).all()):
        raise ValueError(f"y: expected {X.shape[0]} labels in {{0, 1}}")
    generations = check_count(generations, name="generations", minimum=0)
    gen = _generator(generator, X.device)
    x0 = 0.5 * torch.randn(size, generator=gen, dtype=X.dtype, device=X.device)

    def zero_one(params):
        return (sign_net_predict(params.reshape(-1, size), X, hidden=hidden) != y).to(X.dtype).mean(-1).reshape(
            params.shape[:-1])

    if method == "polystep":
        out = polystep_minimize(zero_one, x0.unsqueeze(0), radius=radius, eps=eps, steps=generations,
                                generator=gen)
    else:
        out = openai_es(zero_one, x0, sigma=sigma, lr=lr, population=2 * size, steps=generations, generator=gen)
    acc = 1 - out.best
    return SignNetResult(best_accuracy=float(acc[-1]), accuracy_curve=acc,
                         forward_passes=torch.arange(generations + 1) * 2 * size, method=method)


def staircase(x: torch.Tensor, *, height: float = 1.0, width: float = 0.5) -> torch.Tensor:
    """The radial staircase ``height * floor(|x| / width)`` over the last axis (eq-polystep-staircase).

    The defaults give ``floor(2 |x|)``. Its gradient is zero almost everywhere (autograd returns exactly 0),
    its minimum 0 is the disc ``|x| < width``; ``width`` sets how steep the stairs are on average (slope
    ``height / width``).
    """
    x = _check_finite(x, name="x")
    height, width = check_positive(height, name="height"), check_positive(width, name="width")
    return height * torch.floor(torch.linalg.vector_norm(x, dim=-1) / width)
