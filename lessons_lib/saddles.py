"""Saddle-to-saddle dynamics: from a small start, networks learn one unit of complexity at a time.

* **Two-layer linear network** on whitened data, ``L = ||W2 W1 - A||_F^2 / 2`` (eq-saddle-linear-loss).
  Each singular mode of ``A`` has a strength ``z`` that grows on its own, ``z' = 2z(s - z)``
  (eq-saddle-mode-ode), a logistic curve (eq-saddle-mode-solution) that is half-learned after
  ``ln(s/z0 - 1) / (2 s lr)`` steps (eq-saddle-half-time). A random start enters through an effective
  initial strength ``z0`` per mode (eq-saddle-effective-init). The functions' argument for ``z0`` is
  named ``u0``.
* **Diagonal linear network** ``beta = u*u - v*v`` with an orthogonal design: coordinate ``i`` switches
  on after about ``ln(1/alpha) / (2 |beta*_i|)`` time units (eq-saddle-diagonal-time). The model is
  :func:`lessons_lib.models.train_diagonal_net`; this module only chooses the data.
* **One-dimensional ReLU network** ``f(x) = sum_j a_j relu(w_j x + b_j)`` (eq-saddle-relu-net): its
  plateaus sit at the best function a narrower network can express, first the best single unit.

The three networks and their trainers live in :mod:`lessons_lib.models` (their names work here too);
this module holds the closed forms that predict the plateaus and the times between them.

References:
    Zhang, Saxe & Latham (2026), Saddle-to-Saddle Dynamics Explains A Simplicity Bias Across Neural
    Network Architectures, ICLR, arXiv:2512.20607.
    Saxe, McClelland & Ganguli (2014), Exact solutions to the nonlinear dynamics of learning in deep
    linear neural networks, ICLR, arXiv:1312.6120.
    Pesme & Flammarion (2023), Saddle-to-Saddle Dynamics in Diagonal Linear Networks, NeurIPS,
    arXiv:2304.00488.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from . import measure, models
from .backend import Record, as_generator, as_tensor, check_count, check_positive
from .descent import check_lr

# --- two-layer linear network ------------------------------------------------------------------

#: The model and its trainer live in :mod:`lessons_lib.models`; the chapter's names still work.
LinearNetRun = models.LinearNetRun
train_linear_net = models.train_linear_net
effective_mode_strengths = models.effective_mode_strengths


def random_target(s, *, d_out: int, d_in: int, generator: int | torch.Generator = 0, device=None) -> torch.Tensor:
    """A target map ``A = U diag(s) V^T`` with singular values ``s`` and random orthonormal ``U, V``.

    Args:
        s: singular values ``>= 0``, at most ``min(d_out, d_in)`` of them. generator: seed or generator.
        device: where ``A`` is made; by default :func:`lessons_lib.backend.default_device`.

    Returns:
        ``A`` of shape ``(d_out, d_in)``, float64: the target of (eq-saddle-linear-loss).

    References:
        Saxe, McClelland & Ganguli (2014), arXiv:1312.6120.
    """
    d_out, d_in = check_count(d_out, name="d_out"), check_count(d_in, name="d_in")
    gen = as_generator(generator, device)  # default_device() unless a device or a generator says otherwise
    s = as_tensor(s, name="s", device=gen.device)
    if s.ndim != 1 or s.numel() > min(d_out, d_in) or bool((s < 0).any()):
        raise ValueError(f"s: expected at most min(d_out, d_in) = {min(d_out, d_in)} values >= 0, got {s.tolist()}")
    U = torch.linalg.qr(torch.randn(d_out, d_out, generator=gen, dtype=s.dtype, device=gen.device)).Q
    V = torch.linalg.qr(torch.randn(d_in, d_in, generator=gen, dtype=s.dtype, device=gen.device)).Q
    return U[:, : s.numel()] @ torch.diag(s) @ V[:, : s.numel()].T


def _mode_inputs(s, u0, init_scale):
    s = as_tensor(s, name="s")
    if not bool((s > 0).all()):
        raise ValueError("s: singular values must be > 0 (a zero mode is never learned)")
    if u0 is None:
        if init_scale is None:
            raise ValueError("init_scale: give init_scale (then u0 = init_scale^2) or u0")
        u0 = torch.full_like(s, check_positive(init_scale, name="init_scale") ** 2)
    else:
        u0 = as_tensor(u0, name="u0", dtype=s.dtype, device=s.device)
        if not bool((u0 >= 0).all()):
            raise ValueError("u0: initial mode strengths must be >= 0")
    return s, u0


def saxe_mode_strength(s, t, *, init_scale: float | None = None, u0=None) -> torch.Tensor:
    """Logistic solution ``z(t) = s / (1 + (s/z0 - 1) e^{-2 s t})`` of ``z' = 2z(s - z)`` (eq-saddle-mode-solution).

    Args:
        s: singular value(s) of the target, shape ``(m,)`` or scalar. t: time ``t = lr * step``, shape ``(K,)``.
        init_scale: ``eps``, giving ``z0 = eps^2``; or pass the initial strength ``z0`` as ``u0``.

    Returns:
        The mode strength ``z`` of shape ``(K, m)`` (or ``(K,)`` for a scalar ``s``).

    References:
        Saxe, McClelland & Ganguli (2014), arXiv:1312.6120.
    """
    s, u0 = _mode_inputs(s, u0, init_scale)
    t = as_tensor(t, name="t", dtype=s.dtype, device=s.device)
    tt = t.reshape(-1, *([1] * s.ndim))
    return s / (1 + (s / u0.clamp_min(1e-300) - 1) * torch.exp(-2 * s * tt))


def saxe_learning_time(s, *, init_scale: float | None = None, lr: float, u0=None,
                       rate: Literal["flow", "gd"] = "flow") -> torch.Tensor:
    """Step at which a mode of strength ``s`` is half learned (eq-saddle-half-time).

    ``k_half = ln(s/z0 - 1) / (2 s lr)``, with ``z0 = init_scale^2`` by default, which is
    ``~ ln(s/eps^2) / (2 s lr)`` for a small start. ``rate="gd"`` replaces the flow's growth
    ``e^{2 s lr}`` per step by GD's ``(1 + s lr)^2`` (eq-saddle-effective-init). A mode that starts
    above half strength has time 0.

    Args:
        s: singular value(s) ``> 0``. init_scale: ``eps > 0``. lr: ``eta > 0``.
        u0: effective initial strengths ``z0`` (e.g. :attr:`LinearNetRun.u0`), overriding ``eps^2``.

    Returns:
        Steps (float tensor shaped like ``s``); ``inf`` where ``z0 = 0``.

    References:
        Saxe, McClelland & Ganguli (2014), arXiv:1312.6120; Zhang, Saxe & Latham (2026), arXiv:2512.20607.
    """
    s, u0 = _mode_inputs(s, u0, init_scale)
    lr = check_positive(lr, name="lr")
    if rate not in ("flow", "gd"):
        raise ValueError(f"rate: expected 'flow' or 'gd', got {rate!r}")
    per_step = 2 * s * lr if rate == "flow" else 2 * torch.log1p(s * lr)
    with torch.no_grad():
        logs = torch.log((s / u0 - 1).clamp_min(1.0))
    return torch.where(u0 > 0, logs / per_step, torch.full_like(s, math.inf))


#: Measuring helpers moved to :mod:`lessons_lib.measure`; the chapter's names still work.
half_learning_steps = measure.first_crossing
plateau_losses = measure.plateau_losses
count_plateaus = measure.count_plateaus


def half_times(run, s) -> torch.Tensor:
    """Measured half-learning steps of the first ``m = len(s)`` modes of a run (eq-saddle-half-time).

    The first recorded step at which mode ``i`` reaches ``|s_i| / 2``
    (:func:`lessons_lib.measure.first_crossing`): the singular values of ``W2 W1`` for a
    :class:`LinearNetRun`, the coordinates of ``beta`` for a :class:`DiagonalSparseRun`
    (eq-saddle-diagonal-time), against targets ``s``.

    Args:
        run: a :class:`LinearNetRun` or a :class:`DiagonalSparseRun`.
        s: the targets of the first ``m`` modes (or coordinates), shape ``(m,)``.

    Returns:
        Long tensor of shape ``(m,)``: steps, ``-1`` for a mode not yet half learned.

    References:
        Saxe, McClelland & Ganguli (2014), arXiv:1312.6120; Pesme & Flammarion (2023), arXiv:2304.00488.
    """
    if isinstance(run, LinearNetRun):
        history = run.singular_values
    elif isinstance(run, DiagonalSparseRun):
        history = run.beta
    else:
        raise ValueError(f"run: expected a LinearNetRun or a DiagonalSparseRun, got {type(run).__name__}")
    if history.ndim != 2:
        raise ValueError("run: a batched LinearNetRun holds several runs; pick one with run.single(r)")
    s = as_tensor(s, name="s")
    if s.ndim != 1 or not 0 < s.numel() <= history.shape[1]:
        raise ValueError(f"s: expected between 1 and {history.shape[1]} targets, got shape {tuple(s.shape)}")
    return measure.first_crossing(history[:, : s.numel()], s, steps=run.steps)


# --- diagonal linear network (the stability chapter's model, in lessons_lib.models) ---------------


@dataclass(frozen=True)
class DiagonalSparseRun(Record):
    """Result of :func:`train_diagonal_net_sparse`: ``beta`` ``(K, d)`` and loss ``(K,)`` at ``steps``;
    ``diverged_at`` is the step at which the run left the blow-up ball (``None`` if it did not)."""

    steps: torch.Tensor
    beta: torch.Tensor
    loss: torch.Tensor
    beta_star: torch.Tensor
    init_scale: float
    lr: float
    diverged: bool
    diverged_at: int | None = None


def train_diagonal_net_sparse(beta_star, *, init_scale: float, lr: float, steps: int,
                              record_every: int = 1) -> DiagonalSparseRun:
    """GD on ``L = ||beta - beta*||^2 / 2`` with ``beta = u*u - v*v``, ``u = v = alpha`` at start.

    The loss is that of :func:`lessons_lib.models.train_diagonal_net` (eq-stab-diagonal-net) with
    the orthogonal design ``X = sqrt(d) I``, ``y = X beta*``; coordinates decouple and activate one at a
    time, after about ``ln(1/alpha) / (2 |beta*_i|)`` time units (eq-saddle-diagonal-time).

    Args:
        beta_star: target ``(d,)``. init_scale: ``alpha > 0``. lr: ``eta``. steps: GD steps.
        record_every: record ``beta`` and the loss every this many steps.

    Returns:
        :class:`DiagonalSparseRun` with ``beta`` of shape ``(K, d)``.

    References:
        Pesme & Flammarion (2023), arXiv:2304.00488.
    """
    beta_star = as_tensor(beta_star, name="beta_star")
    if beta_star.ndim != 1 or beta_star.numel() == 0:
        raise ValueError(f"beta_star: expected a non-empty vector, got shape {tuple(beta_star.shape)}")
    d = beta_star.numel()
    X = math.sqrt(d) * torch.eye(d, dtype=beta_star.dtype, device=beta_star.device)
    run = models.train_diagonal_net(X, X @ beta_star, lr=check_lr(lr), steps=steps, init_scale=init_scale,
                                    record_every=record_every)
    return DiagonalSparseRun(run.record_steps, run.beta_history, run.loss_history, beta_star,
                             float(init_scale), float(lr), bool(run.diverged),
                             int(run.diverged_at) if bool(run.diverged) else None)


def diagonal_learning_time(beta_star, *, init_scale: float, lr: float) -> torch.Tensor:
    """Steps until ``beta_i`` reaches ``beta*_i / 2`` (eq-saddle-diagonal-time).

    Once ``|beta| >> alpha^2``, ``u^2 + v^2 ~ |beta|`` and ``beta' = 4 beta (beta* - beta)``: logistic from
    ``alpha^2``, so ``k = ln(|beta*|/alpha^2 - 1) / (4 |beta*| lr)`` and ``lr k / ln(1/alpha) -> 1 / (2 |beta*|)``.
    Zero targets never activate (``inf``).

    References:
        Pesme & Flammarion (2023), arXiv:2304.00488.
    """
    b = as_tensor(beta_star, name="beta_star").abs()
    alpha = check_positive(init_scale, name="init_scale")
    lr = check_positive(lr, name="lr")
    k = torch.log((b / alpha**2 - 1).clamp_min(1.0)) / (4 * b.clamp_min(1e-300) * lr)
    return torch.where(b > 0, k, torch.full_like(b, math.inf))


# --- one-dimensional ReLU network -------------------------------------------------------------------


#: The network, its gradients and trainer live in :mod:`lessons_lib.models`; the chapter's names still work.
relu_network = models.relu_network
relu_gradients = models.relu_gradients
relu_kinks = models.relu_kinks
ReluRun = models.ReluRun
train_relu_1d = models.train_relu_1d


@dataclass(frozen=True)
class SingleUnit:
    """Best single ReLU unit ``coef * relu(direction * (x - kink))`` and its loss."""

    loss: float
    kink: float
    direction: int
    coef: float


def best_single_unit(x, y, *, grid: int = 4001) -> SingleUnit:
    """The width-1 fixed point that a plateau of a wide ReLU network sits at (eq-saddle-single-unit).

    By homogeneity a unit is ``c * relu(+-(x - kink))``. For a fixed kink and direction the best ``c``
    is a least-squares coefficient, so the loss is a function of the kink alone. It is scanned on a
    grid over ``[x_min - span, x_max + span]`` plus a geometric tail out to ``1000 span`` (a kink far
    outside the data gives an affine fit): every start at once. The best grid point is refined by
    golden-section search between its neighbours.

    References:
        Zhang, Saxe & Latham (2026), arXiv:2512.20607 (width-1 fixed points embedded in wide networks).
    """
    x, y = models.check_xy(x, y)
    grid = check_count(grid, name="grid", minimum=16)
    base = 0.5 * float((y**2).mean())
    span = float(x.max() - x.min())

    def profile(c, sgn):
        phi = torch.relu(sgn * (x - c[..., None]))
        num, den = (phi * y).sum(-1), (phi**2).sum(-1)
        return base - 0.5 * torch.where(den > 0, num**2 / den.clamp_min(1e-300), torch.zeros_like(den)) / x.numel()

    tail = span * torch.logspace(0, 3, 32, dtype=x.dtype, device=x.device)[1:]
    cs = torch.cat([float(x.min()) - tail.flip(0), torch.linspace(float(x.min()) - span, float(x.max()) + span, grid,
                                                                dtype=x.dtype, device=x.device), float(x.max()) + tail])
    grid = cs.numel()
    best = None
    for sgn in (1, -1):
        losses = profile(cs, sgn)
        i = int(losses.argmin())
        lo, hi = float(cs[max(i - 1, 0)]), float(cs[min(i + 1, grid - 1)])
        g = (math.sqrt(5) - 1) / 2
        for _ in range(60):  # golden section on the bracket around the grid minimum
            m1, m2 = hi - g * (hi - lo), lo + g * (hi - lo)
            f1, f2 = (float(profile(torch.tensor(m, dtype=x.dtype, device=x.device), sgn)) for m in (m1, m2))
            lo, hi = (lo, m2) if f1 <= f2 else (m1, hi)
        c = 0.5 * (lo + hi)
        loss = min(float(profile(torch.tensor(c, dtype=x.dtype, device=x.device), sgn)), float(losses[i]))
        c = c if loss < float(losses[i]) else float(cs[i])
        if best is None or loss < best.loss:
            phi = torch.relu(sgn * (x - c))
            coef = float((phi * y).sum() / (phi**2).sum().clamp_min(1e-300))
            best = SingleUnit(loss, c, sgn, coef)
    return best


def best_single_unit_loss(x, y) -> float:
    """Loss of the best width-1 ReLU network (eq-saddle-single-unit); see :func:`best_single_unit`.

    References:
        Zhang, Saxe & Latham (2026), arXiv:2512.20607.
    """
    return best_single_unit(x, y).loss
