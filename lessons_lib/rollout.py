"""Spatially weighted Jacobian regularisation of a learned PDE step (rollouts.ipynb: jacobian-rollouts).

A one-step surrogate of a PDE, applied to its own output again and again (a *rollout*), can amplify errors
in the directions its training data never pinned down. Penalising the step's Jacobian makes the map
contractive there; weighting the penalty in space lets it act strongly where the field is smooth and
weakly at shocks. The idea follows the abstract of Nie & Suzuki (2026), *JAWS: Enhancing Long-term
Rollout of Neural Operators via Spatially-Adaptive Jacobian Regularization*, arXiv 2603.05538. Their
loss, their learned uncertainty and their numbers are not known to us: the weight here is a fixed
indicator of steep gradients, written for this chapter.

Pieces:

* :func:`burgers_step` and :func:`burgers_trajectories`: the data, periodic viscous Burgers
  (equation ``eq-rollout-burgers``), float64;
* :func:`init_surrogate`, :func:`surrogate_step`: a residual periodic CNN ``u -> u + CNN(u)`` with a flat
  parameter vector (usable under ``torch.func``);
* :func:`shock_weight`, :func:`jacobian_penalty`: the weighted Jacobian penalty with one Rademacher probe and
  one Jacobian-vector product (equation ``eq-rollout-penalty``);
* :func:`train_surrogate`: Adam on MSE plus the penalty, a step function handed to :func:`lessons_lib.run.run`;
* :func:`rollout`, :func:`relative_error`, :func:`high_k_energy`: what a rollout does;
* :func:`seed_study`: several penalties over several seeds, with the error that remains once each state's mean
  level is reset to the solver's (the surrogate does not conserve ``sum(u)``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

import torch

from .backend import Record, as_generator, check_choice, check_count, check_float_tensor, check_positive
from .descent import adam_direction
from .run import run

LENGTH = 2 * math.pi  # the periodic domain [0, 2 pi)


def _check_field(u, name: str = "u") -> torch.Tensor:
    u = check_float_tensor(u, name=name)
    if u.ndim < 1 or u.shape[-1] < 3:
        raise ValueError(f"{name}: expected a tensor of shape (..., n) with n >= 3 grid points, got {tuple(u.shape)}")
    if not bool(torch.isfinite(u).all()):
        raise ValueError(f"{name}: contains NaN or inf")
    return u


def burgers_step(u: torch.Tensor, *, nu, dt: float, dx: float) -> torch.Tensor:
    """One forward-Euler step of periodic viscous Burgers (equation ``eq-rollout-burgers``).

    Finite volume: the Rusanov flux of ``f(u) = u^2 / 2`` at each cell face plus central diffusion,

        u_i <- u_i - dt/dx (F_{i+1/2} - F_{i-1/2}) + nu dt/dx^2 (u_{i+1} - 2 u_i + u_{i-1}),
        F_{i+1/2} = (f(u_i) + f(u_{i+1})) / 2 - max(|u_i|, |u_{i+1}|) (u_{i+1} - u_i) / 2.

    The update is a difference of face fluxes, so ``sum(u)`` is conserved to rounding; under
    ``dt (max|u| + 2 nu / dx) / dx <= 1`` it is total-variation diminishing and ``max|u|`` does not grow.

    Args:
        u: cell averages, shape ``(..., n)``, periodic in the last dimension.
        nu: viscosity ``>= 0``: a number or a tensor broadcastable to ``u.shape[:-1] + (1,)``.
        dt: time step ``> 0``.
        dx: cell width ``> 0``.

    Returns:
        The next state, same shape, dtype and device as ``u``.

    Raises:
        ValueError: naming ``u``, ``nu``, ``dt`` or ``dx`` when it is not valid.
    """
    u = _check_field(u)
    dt, dx = check_positive(dt, name="dt"), check_positive(dx, name="dx")
    if isinstance(nu, torch.Tensor):
        if not bool(torch.isfinite(nu).all()) or bool((nu < 0).any()):
            raise ValueError("nu: expected finite values >= 0")
        nu = nu.to(u)
    else:
        nu = check_positive(nu, name="nu", allow_zero=True)
    right = torch.roll(u, -1, dims=-1)  # u_{i+1}
    speed = torch.maximum(u.abs(), right.abs())
    flux = 0.25 * (u ** 2 + right ** 2) - 0.5 * speed * (right - u)  # F_{i+1/2}
    left_flux = torch.roll(flux, 1, dims=-1)  # F_{i-1/2}
    laplacian = right - 2 * u + torch.roll(u, 1, dims=-1)
    return u - dt / dx * (flux - left_flux) + nu * dt / dx ** 2 * laplacian


def total_variation(u: torch.Tensor) -> torch.Tensor:
    """The periodic total variation ``sum_i |u_{i+1} - u_i|`` over the last dimension.

    Raises:
        ValueError: naming ``u`` when it is not a finite float tensor of shape ``(..., n)``.
    """
    u = _check_field(u)
    return (torch.roll(u, -1, dims=-1) - u).abs().sum(-1)


def burgers_trajectories(n_traj: int, *, n_points: int = 128, steps: int = 40, every: int = 5, dt: float = 0.01,
                         nu_range: tuple[float, float] = (0.005, 0.02), amplitude: float = 1.0,
                         generator=0) -> torch.Tensor:
    """Solutions of :func:`burgers_step` from random low-mode starts, sampled every ``every`` solver steps.

    Each start is ``u_0(x) = sum_{k=1..3} a_k sin(k x + phi_k)`` on ``[0, 2 pi)`` with ``a_k`` uniform in
    ``[-amplitude, amplitude]`` and ``phi_k`` uniform in ``[0, 2 pi)``; each trajectory draws its viscosity
    uniformly from ``nu_range`` (a range of one value fixes it). With the defaults the time step satisfies the
    stability condition of :func:`burgers_step` for ``max|u| <= 4.0``, and shocks form before ``t = 1``.

    Args:
        n_traj: number of trajectories ``>= 1``.
        n_points: grid points ``>= 8``.
        steps: snapshots after the start ``>= 1`` (each one surrogate step later).
        every: solver steps per snapshot ``>= 1``.
        dt: solver time step ``> 0``.
        nu_range: ``(low, high)`` with ``0 <= low <= high``.
        amplitude: bound on the modes' amplitudes ``> 0``.
        generator: int seed or ``torch.Generator``.

    Returns:
        float64 tensor of shape ``(n_traj, steps + 1, n_points)``.

    Raises:
        ValueError: naming the argument that is not valid, or ``dt`` when the stability condition fails.
    """
    n_traj, steps = check_count(n_traj, name="n_traj"), check_count(steps, name="steps")
    n_points, every = check_count(n_points, name="n_points", minimum=8), check_count(every, name="every")
    dt, amplitude = check_positive(dt, name="dt"), check_positive(amplitude, name="amplitude")
    if not isinstance(nu_range, (tuple, list)) or len(nu_range) != 2:
        raise ValueError(f"nu_range: expected (low, high), got {nu_range!r}")
    low = check_positive(nu_range[0], name="nu_range", allow_zero=True)
    high = check_positive(nu_range[1], name="nu_range", allow_zero=True)
    if high < low:
        raise ValueError(f"nu_range: expected low <= high, got {nu_range!r}")
    gen = as_generator(generator, device="cpu")
    dx = LENGTH / n_points
    if dt * (3 * amplitude + 2 * high / dx) / dx > 1:
        raise ValueError(f"dt: {dt:g} breaks dt (max|u| + 2 nu/dx)/dx <= 1 for max|u| up to 3*amplitude")
    x = torch.arange(n_points, dtype=torch.float64) * dx
    a = (2 * torch.rand(n_traj, 3, 1, generator=gen, dtype=torch.float64) - 1) * amplitude
    phi = torch.rand(n_traj, 3, 1, generator=gen, dtype=torch.float64) * LENGTH
    k = torch.arange(1, 4, dtype=torch.float64).reshape(1, 3, 1)
    u = (a * torch.sin(k * x + phi)).sum(1)
    nu = low + (high - low) * torch.rand(n_traj, 1, generator=gen, dtype=torch.float64)
    out = [u]
    for _ in range(steps):
        for _ in range(every):
            u = burgers_step(u, nu=nu, dt=dt, dx=dx)
        out.append(u)
    return torch.stack(out, dim=1)


@dataclass(frozen=True)
class Surrogate:
    """Shapes of the residual CNN: three periodic convolutions ``1 -> channels -> channels -> 1``."""

    channels: int = 8
    kernel: int = 5

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        c, k = self.channels, self.kernel
        return [(c, 1, k), (c,), (c, c, k), (c,), (1, c, k), (1,)]

    @property
    def n_params(self) -> int:
        return sum(math.prod(s) for s in self.shapes)


@functools.lru_cache(maxsize=None)
def _arch_of_size(size: int) -> Surrogate | None:
    for channels in range(1, 65):
        for kernel in range(1, 16, 2):
            if Surrogate(channels, kernel).n_params == size:
                return Surrogate(channels, kernel)
    return None


def _arch(params: torch.Tensor) -> Surrogate:
    # The architecture is read off the parameter count. Two (channels, kernel) pairs with the same count would be
    # told apart silently in favour of the smaller channel count; the sizes this chapter uses (417 = (8, 5),
    # 29 = (2, 3), 52 = (3, 3)) are read back as themselves.
    arch = _arch_of_size(int(params.shape[-1]))
    if arch is None:
        raise ValueError(f"params: {params.shape[-1]} numbers fit no (channels, kernel) of init_surrogate")
    return arch


def init_surrogate(*, channels: int = 8, kernel: int = 5, dtype: torch.dtype = torch.float64,
                   generator=0) -> torch.Tensor:
    """Random parameters of the residual CNN of :func:`surrogate_step`, as one flat vector.

    Weights are uniform in ``+-1/sqrt(fan_in)`` (PyTorch's default), biases zero; the last layer is scaled
    by 0.1, so the untrained step is close to the identity.

    Args:
        channels: hidden channels ``>= 1``.
        kernel: odd kernel width ``>= 1``.
        dtype: float dtype of the parameters.
        generator: int seed or ``torch.Generator``.

    Returns:
        A flat tensor of ``Surrogate(channels, kernel).n_params`` numbers.

    Raises:
        ValueError: naming ``channels`` or ``kernel`` when it is not valid.
    """
    channels, kernel = check_count(channels, name="channels"), check_count(kernel, name="kernel")
    if kernel % 2 == 0:
        raise ValueError(f"kernel: expected an odd width (a centred stencil), got {kernel}")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype: expected torch.float32 or torch.float64, got {dtype}")
    gen = as_generator(generator, device="cpu")
    parts = []
    shapes = Surrogate(channels, kernel).shapes
    for i, shape in enumerate(shapes):
        if len(shape) == 1:
            parts.append(torch.zeros(shape, dtype=torch.float64))
            continue
        bound = 1 / math.sqrt(shape[1] * shape[2]) * (0.1 if i == len(shapes) - 2 else 1.0)
        parts.append((2 * torch.rand(shape, generator=gen, dtype=torch.float64) - 1) * bound)
    return torch.cat([p.reshape(-1) for p in parts]).to(dtype)


def _conv(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    pad = w.shape[-1] // 2
    h = torch.cat([h[..., -pad:], h, h[..., :pad]], dim=-1) if pad else h  # periodic padding
    return torch.nn.functional.conv1d(h, w, b)


def surrogate_step(params: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The learned step ``u -> u + CNN(u)``: periodic convolutions with tanh between them.

    Args:
        params: flat parameters from :func:`init_surrogate`.
        u: states of shape ``(n,)`` or ``(B, n)``.

    Returns:
        The predicted next states, same shape as ``u``.

    Raises:
        ValueError: naming ``params`` or ``u`` when the shapes do not fit.
    """
    params = check_float_tensor(params, name="params")
    if params.ndim != 1:
        raise ValueError(f"params: expected a flat vector, got shape {tuple(params.shape)}")
    if not bool(torch.isfinite(params).all()):
        raise ValueError("params: contains NaN or inf")
    u = _check_field(u)
    if u.ndim not in (1, 2):
        raise ValueError(f"u: expected shape (n,) or (B, n) with n >= 3, got {tuple(u.shape)}")
    arch = _arch(params)
    pieces, start = [], 0
    for shape in arch.shapes:
        size = math.prod(shape)
        pieces.append(params[start:start + size].reshape(shape))
        start += size
    w1, b1, w2, b2, w3, b3 = pieces
    h = u.to(params.dtype).reshape(-1, 1, u.shape[-1])
    h = torch.tanh(_conv(h, w1, b1))
    h = torch.tanh(_conv(h, w2, b2))
    return u + _conv(h, w3, b3).reshape(u.shape)


def shock_weight(u: torch.Tensor, *, kind: str = "global", scale: float = 1.0) -> torch.Tensor:
    """The spatial weight ``w(x)`` of the Jacobian penalty (equation ``eq-rollout-penalty``).

    ``"global"``: ``w = 1`` everywhere. ``"adaptive"``: ``w ∝ 1 / (1 + (d_x u / s)^2)`` with the central
    difference ``d_x u`` on ``[0, 2 pi)``, normalised to mean 1 over each state: strong where the field is
    smooth, weak at a shock. This is a fixed indicator written for this chapter, a stand-in for the learned
    uncertainty of Nie & Suzuki (2026), arXiv 2603.05538, whose rule we do not know. The weight carries no
    gradient.

    Args:
        u: states of shape ``(..., n)``.
        kind: ``"global"`` or ``"adaptive"``.
        scale: the slope ``s > 0`` at which the weight has halved.

    Returns:
        Weights of the same shape as ``u``, mean 1 along the last dimension.

    Raises:
        ValueError: naming ``u``, ``kind`` or ``scale`` when it is not valid.
    """
    u = _check_field(u)
    kind = check_choice(kind, ("global", "adaptive"), name="kind")
    scale = check_positive(scale, name="scale")
    if kind == "global":
        return torch.ones_like(u)
    dx = LENGTH / u.shape[-1]
    slope = (torch.roll(u, -1, dims=-1) - torch.roll(u, 1, dims=-1)).detach() / (2 * dx)
    w = 1 / (1 + (slope / scale) ** 2)
    return w / w.mean(-1, keepdim=True)


def rademacher(shape, *, generator=0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Independent signs ``+-1`` with probability 1/2 each, of the given shape.

    Raises:
        ValueError: naming ``shape`` when it is not a tuple of counts.
    """
    if not isinstance(shape, (tuple, list, torch.Size)) or not all(isinstance(s, int) and s >= 1 for s in shape):
        raise ValueError(f"shape: expected a tuple of positive ints, got {shape!r}")
    gen = as_generator(generator, device="cpu")
    return (2 * torch.randint(0, 2, tuple(shape), generator=gen) - 1).to(dtype)


def jacobian_penalty(step_fn: Callable[[torch.Tensor], torch.Tensor], u: torch.Tensor, *,
                     weight: torch.Tensor | None = None, probe: torch.Tensor | None = None,
                     generator=None) -> torch.Tensor:
    """The weighted Jacobian penalty ``mean_batch sum_x w(x) (J xi)_x^2 / n`` (equation ``eq-rollout-penalty``).

    ``J`` is the Jacobian of ``step_fn`` at each state of the batch and ``xi`` a Rademacher probe; ``J xi``
    costs one forward-mode Jacobian-vector product (``torch.func.jvp``). Since ``E[xi xi^T] = I``, the
    penalty's mean over probes is ``mean_batch sum_x w(x) sum_y J_xy^2 / n``: the ``w``-weighted squared
    Frobenius norm of ``J`` divided by ``n``. Differentiable in the parameters inside ``step_fn``.

    Args:
        step_fn: maps a batch of states ``(B, n)`` to ``(B, n)``, one state at a time (no mixing across
            the batch).
        u: states, shape ``(B, n)`` (or ``(n,)``, a batch of one).
        weight: ``w``, broadcastable to ``u``; default 1.
        probe: ``xi`` of the shape of ``u``; default a fresh Rademacher probe from ``generator``.
        generator: int seed or ``torch.Generator`` for the probe (needed when ``probe`` is None).

    Returns:
        A 0-d tensor.

    Raises:
        ValueError: naming ``step_fn``, ``u``, ``weight``, ``probe`` or ``generator`` when it is not valid.
    """
    if not callable(step_fn):
        raise ValueError(f"step_fn: expected a callable, got {type(step_fn).__name__}")
    u = _check_field(u)
    batch = u.reshape(-1, u.shape[-1]) if u.ndim == 1 else u
    if batch.ndim != 2:
        raise ValueError(f"u: expected shape (B, n) or (n,), got {tuple(u.shape)}")
    if probe is None:
        if generator is None:
            raise ValueError("generator: needed to draw the probe when no probe is given")
        probe = rademacher(tuple(batch.shape), generator=generator, dtype=batch.dtype).to(batch.device)
    else:
        probe = check_float_tensor(probe, name="probe")
        if probe.shape != u.shape:
            raise ValueError(f"probe: expected the shape of u {tuple(u.shape)}, got {tuple(probe.shape)}")
        probe = probe.reshape(batch.shape).to(batch)
    if weight is None:
        weight = torch.ones_like(batch)
    else:
        weight = check_float_tensor(weight, name="weight")
        try:
            weight = torch.broadcast_to(weight.to(batch), u.shape).reshape(batch.shape)
        except RuntimeError:
            raise ValueError(f"weight: shape {tuple(weight.shape)} does not broadcast to u {tuple(u.shape)}") from None
        if bool((weight < 0).any()):
            raise ValueError("weight: expected values >= 0")
    _, jv = torch.func.jvp(step_fn, (batch,), (probe,))
    return (weight * jv ** 2).sum(-1).mean() / batch.shape[-1]


def surrogate_penalty(params: torch.Tensor, u: torch.Tensor, *, kind: str = "global", generator=0) -> torch.Tensor:
    """:func:`jacobian_penalty` of the learned step :func:`surrogate_step` at the states ``u`` (one probe each).

    Over a large batch of states this estimates ``mean_batch ||W^(1/2) J||_F^2 / n`` (equation
    ``eq-rollout-penalty``); with ``kind="global"`` it is the size of the step's Jacobian that the chapter
    compares across penalty strengths.

    Args:
        params: flat parameters from :func:`train_surrogate`.
        u: states, ``(B, n)``.
        kind: the weight, ``"global"`` or ``"adaptive"`` (:func:`shock_weight`).
        generator: int seed or ``torch.Generator`` for the probes.

    Returns:
        A 0-d tensor (no gradient).

    Raises:
        ValueError: naming ``params``, ``u``, ``kind`` or ``generator``.
    """
    params = check_float_tensor(params, name="params")
    u = _check_field(u).to(params.dtype)
    weight = shock_weight(u, kind=kind)
    with torch.no_grad():
        return jacobian_penalty(lambda v: surrogate_step(params, v), u, weight=weight, generator=generator)


@dataclass(frozen=True)
class TrainedSurrogate(Record):
    """What :func:`train_surrogate` returns (on the host).

    Attributes:
        params: the final flat parameters.
        loss: training loss (MSE + lambda * penalty) of each step's batch, shape ``(steps,)``.
        mse: the MSE part, shape ``(steps,)``.
        penalty: the penalty part (before the factor lambda), shape ``(steps,)``.
        lam: the penalty's strength.
        weighting: ``"global"`` or ``"adaptive"``.
        diverged: whether training diverged (:mod:`lessons_lib.run`); ``diverged_at`` its step or -1.
    """

    params: torch.Tensor
    loss: torch.Tensor
    mse: torch.Tensor
    penalty: torch.Tensor
    lam: float
    weighting: str
    diverged: bool
    diverged_at: int


def train_surrogate(trajectories: torch.Tensor, *, lam: float = 0.0, weighting: str = "global", lr: float = 3e-3,
                    steps: int = 300, batch: int = 64, channels: int = 8, kernel: int = 5, scale: float = 1.0,
                    dtype: torch.dtype = torch.float32, generator=0) -> TrainedSurrogate:
    """Fit :func:`surrogate_step` to consecutive pairs of ``trajectories`` with Adam, plus the Jacobian penalty.

    Each step draws ``batch`` pairs ``(u^t, u^{t+1})`` at random and takes an Adam step
    (:func:`lessons_lib.descent.adam_direction`, betas (0.9, 0.999)) on

        mean_batch ||G(u^t) - u^{t+1}||^2 / n  +  lam * jacobian_penalty(G, u^t, weight=shock_weight(u^t)),

    with a fresh Rademacher probe per step (equation ``eq-rollout-penalty``). At ``lam = 0`` the penalty is
    not computed and the loss is the MSE exactly. The loop is :func:`lessons_lib.run.run`.

    Args:
        trajectories: ``(n_traj, T + 1, n)`` from :func:`burgers_trajectories`.
        lam: penalty strength ``>= 0``.
        weighting: ``"global"`` or ``"adaptive"`` (:func:`shock_weight`).
        lr: Adam's step ``>= 0``.
        steps: Adam steps ``>= 1``.
        batch: pairs per step ``>= 1``.
        channels: hidden channels of the CNN ``>= 1``.
        kernel: odd kernel width ``>= 1``.
        scale: the slope scale ``s`` of the adaptive weight ``> 0``.
        dtype: float dtype of training (float32 is faster; float64 for checks).
        generator: int seed or ``torch.Generator`` (initialisation, batches and probes).

    Returns:
        A :class:`TrainedSurrogate`.

    Raises:
        ValueError: naming the argument that is not valid.
    """
    trajectories = _check_field(trajectories, name="trajectories")
    if trajectories.ndim != 3 or trajectories.shape[1] < 2:
        raise ValueError("trajectories: expected shape (n_traj, T + 1, n) with T >= 1, "
                         f"got {tuple(trajectories.shape)}")
    lam = check_positive(lam, name="lam", allow_zero=True)
    weighting = check_choice(weighting, ("global", "adaptive"), name="weighting")
    lr = check_positive(lr, name="lr", allow_zero=True)
    steps, batch = check_count(steps, name="steps"), check_count(batch, name="batch")
    scale = check_positive(scale, name="scale")
    gen = as_generator(generator, device="cpu")
    params0 = init_surrogate(channels=channels, kernel=kernel, dtype=dtype, generator=gen)
    device = trajectories.device
    params0 = params0.to(device)
    data = trajectories.to(dtype)
    inputs = data[:, :-1].reshape(-1, data.shape[-1])
    targets = data[:, 1:].reshape(-1, data.shape[-1])
    weights = shock_weight(inputs, kind=weighting, scale=scale)

    def objective(p, idx, probe):
        u, target = inputs[idx], targets[idx]
        pred = surrogate_step(p, u)
        mse = ((pred - target) ** 2).mean()
        if lam == 0:
            return mse, (mse, torch.zeros((), dtype=mse.dtype, device=mse.device))
        pen = jacobian_penalty(lambda v: surrogate_step(p, v), u, weight=weights[idx], probe=probe)
        return mse + lam * pen, (mse, pen)

    grad_fn = torch.func.grad(objective, has_aux=True)

    def step(state, t, lr_t):
        p, m, v, _ = state
        idx = torch.randint(0, inputs.shape[0], (batch,), generator=gen).to(device)
        probe = rademacher((batch, inputs.shape[-1]), generator=gen, dtype=p.dtype).to(device)
        g, (mse, pen) = grad_fn(p, idx, probe)
        direction, m, v = adam_direction(g, m, v, t + 1, betas=(0.9, 0.999), eps=1e-8)
        stats = torch.stack([(mse + lam * pen).detach(), mse.detach(), pen.detach()])
        return p - lr_t * direction, m, v, stats

    zeros = torch.zeros_like(params0)
    state0 = (params0, zeros, zeros, torch.zeros(3, dtype=dtype, device=device))
    result = run(step, state0, steps=steps, lr=lr, record=lambda s, t: {"stats": s[3]})
    stats = result.history["stats"][1:]
    return TrainedSurrogate(params=result.state[0], loss=stats[:, 0], mse=stats[:, 1], penalty=stats[:, 2],
                            lam=lam, weighting=weighting, diverged=bool(result.diverged),
                            diverged_at=int(result.diverged_at))


@dataclass(frozen=True)
class Rollout(Record):
    """What :func:`rollout` returns (on the host).

    Attributes:
        u: the states, shape ``(steps + 1,) + u0.shape`` (frozen at the last finite state after divergence).
        diverged: bool tensor of shape ``(B,)`` (``()`` for one state).
        diverged_at: the step of divergence, ``-1`` where none.
    """

    u: torch.Tensor
    diverged: torch.Tensor
    diverged_at: torch.Tensor


def rollout(params: torch.Tensor, u0: torch.Tensor, *, steps: int, blowup: float = 1e6) -> Rollout:
    """Apply :func:`surrogate_step` to its own output ``steps`` times (the loop of :func:`lessons_lib.run.run`).

    A state that leaves the ball of radius ``blowup * max(1, ||u0||)`` (per state) counts as diverged and stays
    frozen, as everywhere in the book.

    Args:
        params: flat parameters from :func:`train_surrogate`.
        u0: start states, ``(n,)`` or ``(B, n)``.
        steps: number of surrogate steps ``>= 0``.
        blowup: divergence radius factor ``> 0``.

    Returns:
        A :class:`Rollout`.

    Raises:
        ValueError: naming ``params``, ``u0``, ``steps`` or ``blowup``.
    """
    params = check_float_tensor(params, name="params")
    if params.ndim != 1 or not bool(torch.isfinite(params).all()):
        raise ValueError("params: expected a flat vector of finite numbers")
    u0 = _check_field(u0, name="u0")
    if u0.ndim > 2:
        raise ValueError(f"u0: expected shape (n,) or (B, n), got {tuple(u0.shape)}")
    steps = check_count(steps, name="steps", minimum=0)
    single = u0.ndim == 1
    start = u0.reshape(1, -1).to(params.dtype) if single else u0.to(params.dtype)
    with torch.no_grad():
        result = run(lambda u, t, lr: surrogate_step(params, u), start, steps=steps, blowup=blowup, batched=True,
                     record=lambda u, t: {"u": u})
        _, hist = result.on_grid(steps)
    u = hist["u"][:, 0] if single else hist["u"]
    diverged, at = (result.diverged[0], result.diverged_at[0]) if single else (result.diverged, result.diverged_at)
    return Rollout(u=u, diverged=diverged, diverged_at=at)


def relative_error(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """The relative L2 error ``||pred - true|| / ||true||`` along the last dimension.

    Raises:
        ValueError: naming ``pred`` or ``true`` when the shapes differ or ``true`` is zero somewhere.
    """
    pred, true = _check_field(pred, name="pred"), _check_field(true, name="true")
    if pred.shape != true.shape:
        raise ValueError(f"pred: expected the shape of true {tuple(true.shape)}, got {tuple(pred.shape)}")
    norm = true.norm(dim=-1)
    if bool((norm == 0).any()):
        raise ValueError("true: a state is zero, its relative error is undefined")
    return (pred.to(true.dtype) - true).norm(dim=-1) / norm


def mean_reset_error(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """:func:`relative_error` after shifting each predicted state so that its mean equals the true state's.

    The solver conserves ``sum(u)``; a learned step does not, so its level drifts. The part of the error that
    this shift removes is the drift of the mean; what remains is the error in the shape (front position, smoothing).

    Raises:
        ValueError: naming ``pred`` or ``true``, as :func:`relative_error`.
    """
    pred, true = _check_field(pred, name="pred"), _check_field(true, name="true")
    if pred.shape != true.shape:
        raise ValueError(f"pred: expected the shape of true {tuple(true.shape)}, got {tuple(pred.shape)}")
    pred = pred.to(true.dtype)
    return relative_error(pred - pred.mean(-1, keepdim=True) + true.mean(-1, keepdim=True), true)


def high_k_energy(u: torch.Tensor, *, k_min: int = 16) -> torch.Tensor:
    """The mean square of ``u``'s Fourier modes ``|k| >= k_min`` (the energy at high wavenumbers).

    By Parseval it equals ``mean_x (u_high(x))^2`` for the high-passed field ``u_high``.

    Args:
        u: states of shape ``(..., n)``.
        k_min: the first wavenumber counted, ``1 <= k_min <= n / 2``.

    Returns:
        Shape ``u.shape[:-1]``.

    Raises:
        ValueError: naming ``u`` or ``k_min``.
    """
    u = _check_field(u)
    n = u.shape[-1]
    k_min = check_count(k_min, name="k_min")
    if k_min > n // 2:
        raise ValueError(f"k_min: expected at most n/2 = {n // 2}, got {k_min}")
    coef = torch.fft.rfft(u, dim=-1)
    mult = torch.full((coef.shape[-1],), 2.0, dtype=u.dtype, device=u.device)
    mult[0] = 1.0
    if n % 2 == 0:
        mult[-1] = 1.0
    mult[:k_min] = 0.0
    return (mult * coef.abs() ** 2).sum(-1) / n ** 2


@dataclass(frozen=True)
class SeedStudy(Record):
    """What :func:`seed_study` returns (on the host). Arrays are indexed ``[config, seed]``.

    Attributes:
        configs: the ``(lam, weighting)`` pairs, in order.
        seeds: the seeds (initialisation, batches and probes; the data are the same for every seed).
        params: trained parameters, shape ``(C, S, P)``.
        mse: the mean training MSE of the last ten steps, ``(C, S)``.
        penalty: the global penalty of the trained step on held-out states (:func:`surrogate_penalty`), ``(C, S)``.
        error: median relative error over the test trajectories at the end of the rollout, ``(C, S)``.
        error_mean_reset: the same with each state's mean reset to the solver's (:func:`mean_reset_error`).
        mean_offset: median ``|mean(pred) - mean(true)|`` at the end of the rollout, ``(C, S)``.
        high_k: median :func:`high_k_energy` (``k >= 16``, or ``n / 2`` on a coarser grid) of the surrogate's states
            at the end of the rollout, ``(C, S)``.
        n_diverged: number of rollouts that left their ball, ``(C, S)`` (training's own divergence is frozen
            by :func:`train_surrogate`, as everywhere in the book).
    """

    configs: tuple
    seeds: tuple
    params: torch.Tensor
    mse: torch.Tensor
    penalty: torch.Tensor
    error: torch.Tensor
    error_mean_reset: torch.Tensor
    mean_offset: torch.Tensor
    high_k: torch.Tensor
    n_diverged: torch.Tensor


def seed_study(train: torch.Tensor, test: torch.Tensor, *,
               configs=((0.0, "global"), (1e-4, "global"), (1e-3, "global"), (1e-3, "adaptive")),
               seeds=(0, 1, 2, 3), lr: float = 3e-3, steps: int = 300, batch: int = 64,
               progress: Callable | None = None) -> SeedStudy:
    """Train one surrogate per ``(lam, weighting)`` and seed on ``train``, roll each out over ``test``.

    Every seed uses the same data; it changes the initialisation, the batches and the probes. For each run the
    study records the trained step's global penalty (equation ``eq-rollout-penalty``) on the held-out states
    ``test[:, :T]`` (``T`` the training trajectories' length), and, after a rollout of ``test.shape[1] - 1`` steps
    from ``test[:, 0]``, the median relative error, the same with the mean level reset, the median mean offset
    and the high-wavenumber energy.

    Args:
        train: training trajectories ``(n_traj, T + 1, n)`` (:func:`burgers_trajectories`).
        test: test trajectories ``(m, L + 1, n)`` with ``L >= T``.
        configs: ``(lam, weighting)`` pairs, ``lam >= 0``, weighting ``"global"`` or ``"adaptive"``.
        seeds: int seeds, at least one.
        lr, steps, batch: as in :func:`train_surrogate`.
        progress: an optional wrapper of an iterable (e.g. :func:`lessons_lib.backend.progress`).

    Returns:
        A :class:`SeedStudy`.

    Raises:
        ValueError: naming ``train``, ``test``, ``configs`` or ``seeds`` when it is not valid, or an argument of
            :func:`train_surrogate`.
    """
    train, test = _check_field(train, name="train"), _check_field(test, name="test")
    if train.ndim != 3 or train.shape[1] < 2:
        raise ValueError(f"train: expected shape (n_traj, T + 1, n) with T >= 1, got {tuple(train.shape)}")
    if test.ndim != 3 or test.shape[-1] != train.shape[-1] or test.shape[1] < train.shape[1]:
        raise ValueError(f"test: expected shape (m, L + 1, {train.shape[-1]}) with L >= {train.shape[1] - 1}, "
                         f"got {tuple(test.shape)}")
    configs = tuple((float(lam), str(wt)) for lam, wt in configs) if isinstance(configs, (tuple, list)) else None
    if not configs:
        raise ValueError("configs: expected a non-empty sequence of (lam, weighting) pairs")
    for lam, wt in configs:
        check_positive(lam, name="configs", allow_zero=True)
        check_choice(wt, ("global", "adaptive"), name="configs")
    if not isinstance(seeds, (tuple, list, range)) or len(seeds) == 0 or not all(isinstance(s, int) for s in seeds):
        raise ValueError(f"seeds: expected a non-empty sequence of ints, got {seeds!r}")
    seeds = tuple(seeds)
    held = test[:, :train.shape[1] - 1].reshape(-1, test.shape[-1])
    length = test.shape[1] - 1
    runs = [(c, s) for c in configs for s in seeds]
    rows = {key: [] for key in ("params", "mse", "penalty", "error", "error_mean_reset", "mean_offset", "high_k",
                                "n_diverged")}
    for (lam, wt), seed in (progress(runs) if progress is not None else runs):
        res = train_surrogate(train, lam=lam, weighting=wt, lr=lr, steps=steps, batch=batch, generator=seed)
        out = rollout(res.params, test[:, 0], steps=length)
        end, true = out.u[-1].to(test.dtype), test[:, -1].cpu()
        rows["params"].append(res.params)
        rows["mse"].append(res.mse[-10:].mean())
        rows["penalty"].append(surrogate_penalty(res.params, held.to(res.params), generator=seed).cpu())
        rows["error"].append(relative_error(end, true).median())
        rows["error_mean_reset"].append(mean_reset_error(end, true).median())
        rows["mean_offset"].append((end.mean(-1) - true.mean(-1)).abs().median())
        rows["high_k"].append(high_k_energy(end, k_min=min(16, end.shape[-1] // 2)).median())
        rows["n_diverged"].append(out.diverged.sum())
    shape = (len(configs), len(seeds))
    arrays = {key: torch.stack(val).reshape(shape + val[0].shape) for key, val in rows.items()}
    return SeedStudy(configs=configs, seeds=seeds, **arrays)
