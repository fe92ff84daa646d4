"""Ghosts of softmax: the complex zeros of the softmax normaliser cap the step a Taylor model can trust.

Along a unit direction ``v`` in parameter space the logits of a classifier move, to first order, as
``z + tau a`` with ``a = J v`` (one Jacobian-vector product for the whole batch). The loss then contains
``logsumexp(z + tau a) = log F(tau)`` with ``F(tau) = sum_k exp(z_k + tau a_k)``, an entire function
of ``tau`` that has complex zeros; at a zero ``log F`` is singular, so the Taylor series of the loss
in ``tau`` converges only inside the disc that reaches the nearest zero:

* binary (two classes, exact): ``rho* = sqrt(delta^2 + pi^2) / |Delta a|`` with ``delta = z_1 - z_2``
  and ``Delta a = a_1 - a_2`` (eq-ghosts-binary);
* multiclass (a bound): ``F != 0`` while ``|Im tau| Delta_a < pi``, with ``Delta_a = max_k a_k - min_k a_k``,
  so the radius is at least ``rho_a = pi / Delta_a``; over a batch ``Delta_a`` is the largest spread
  over the samples (eq-ghosts-radius). This is the radius of the loss with its logits linearised as
  ``z + tau a``; the network's own loss along ``v`` is a different function, and the experiments
  (:func:`loss_inflation`, :func:`spike_run`) test whether ``rho_a`` still predicts what it does;
* the Taylor coefficients of ``logsumexp(z + tau a)`` are the cumulants of ``a`` under
  ``softmax(z)`` divided by ``n!`` (eq-ghosts-cumulants).

The normalised step is ``r = tau / rho_a`` (eq-ghosts-r). A controller caps the length
``tau = lr ||p||`` of an Adam step at ``kappa rho_a`` (eq-ghosts-cap), with ``rho_a`` from a JVP of the
logits on the whole training set along ``p / ||p||``.

The digits runs are float32 whatever torch's default dtype is, as in the paper's experiments.
A float32 run whose numbers underflow into subnormals can run some thirty times slower on a CPU,
so :func:`spike_run` flushes subnormals to zero while it runs (:func:`flush_subnormals`).

References:
    Sao (2026), Ghosts of Softmax: Complex Singularities That Limit Safe Step Sizes in
    Cross-Entropy, arXiv:2603.13552.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Iterator, Literal, Sequence

import torch
from torch.func import jvp

from . import models
from .backend import (
    Record,
    as_generator,
    as_tensor,
    check_callable,
    check_choice,
    check_count,
    check_flag,
    check_float_tensor,
    check_positive,
    default_device,
)
from .descent import adam_direction
from .run import run

Controller = Literal["none", "rho", "clip"]
F32 = torch.float32


# --- the radius: complex zeros of the partition function --------------------------------------------


def _finite(x, name: str) -> torch.Tensor:
    x = check_float_tensor(x, name=name)
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return x


def _spreads(a: torch.Tensor) -> torch.Tensor:
    return a.amax(-1) - a.amin(-1)


def _logit_tensor(x, name: str) -> torch.Tensor:
    x = x if isinstance(x, torch.Tensor) and x.is_floating_point() else as_tensor(x, name=name)
    if x.ndim < 1 or x.shape[-1] < 2:
        raise ValueError(f"{name}: expected shape (..., K) with K >= 2 classes, got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return x


def taylor_radius(a, *, per_sample: bool = False) -> torch.Tensor:
    """The multiclass radius ``rho_a = pi / Delta_a`` (eq-ghosts-radius).

    ``F(tau) = sum_k exp(z_k + tau a_k)`` has no zero where ``|Im tau| Delta_a < pi`` (every term then
    lies in one open half-plane), so the Taylor series of ``logsumexp(z + tau a)`` converges at least
    for ``|tau| < pi / Delta_a``, whatever the logits ``z``. A batch's loss is the mean over samples,
    so its radius is the smallest of theirs: ``Delta_a`` is the *largest* spread over the samples.

    Args:
        a: logit velocities ``a = J v``, shape ``(..., K)`` with ``K >= 2``.
        per_sample: return one radius per row (shape ``(...)``) instead of the batch's.

    Returns:
        0-d tensor (or shape ``(...)``): ``pi / Delta_a``; ``inf`` where ``a`` has no spread.

    References:
        Sao (2026), Ghosts of Softmax, arXiv:2603.13552.
    """
    a = _logit_tensor(a, "a")
    per_sample = check_flag(per_sample, name="per_sample")
    spread = _spreads(a) if per_sample else _spreads(a).max()
    return math.pi / spread


def binary_radius(z, a) -> torch.Tensor:
    """The exact radius ``rho* = sqrt(delta^2 + pi^2) / |Delta a|`` of two classes (eq-ghosts-binary).

    ``F = 0`` exactly where ``delta + tau Delta a = i pi (2n + 1)``, ``n`` an integer, with
    ``delta = z_1 - z_2`` and ``Delta a = a_1 - a_2``; the nearest of these zeros (``n = 0`` or ``-1``)
    has modulus ``rho*``. A confident sample (large ``|delta|``) has a large radius.

    Args:
        z: logits, shape ``(..., 2)``.
        a: logit velocities, shape ``(..., 2)``.

    Returns:
        shape ``(...)``; ``inf`` where ``Delta a = 0``.

    References:
        Sao (2026), Ghosts of Softmax, arXiv:2603.13552.
    """
    z, a = _logit_tensor(z, "z"), _logit_tensor(a, "a")
    if z.shape[-1] != 2 or a.shape[-1] != 2:
        raise ValueError(f"z, a: expected two classes (..., 2), got {tuple(z.shape)} and {tuple(a.shape)}")
    delta, da = z[..., 0] - z[..., 1], a[..., 0] - a[..., 1]
    return torch.sqrt(delta ** 2 + math.pi ** 2) / da.abs()


def lse_taylor_coefficients(z, a, *, order: int) -> torch.Tensor:
    """Taylor coefficients ``c_0 .. c_order`` of ``logsumexp(z + tau a)`` in ``tau`` (eq-ghosts-cumulants).

    ``c_n = C_n / n!`` with ``C_n`` the ``n``-th cumulant of ``a`` under ``p = softmax(z)``.
    They are computed in float64 from the moments ``f_n = E_p[a^n] / n!`` of the normalised
    ``F(tau) / F(0) = sum_n f_n tau^n`` by the series logarithm
    ``c_n = f_n - (1/n) sum_{j<n} j c_j f_{n-j}`` (with ``a`` centred first, which changes ``c_1``
    only and keeps the sums small).

    Args:
        z: logits, shape ``(..., K)``.
        a: logit velocities, same shape.
        order: the largest degree, ``>= 1``.

    Returns:
        float64 tensor of shape ``(..., order + 1)``.
    """
    z, a = _logit_tensor(z, "z").double(), _logit_tensor(a, "a").double()
    order = check_count(order, name="order")
    if z.shape != a.shape:
        raise ValueError(f"a: expected the shape of z, {tuple(z.shape)}, got {tuple(a.shape)}")
    p = torch.softmax(z, -1)
    mean = (p * a).sum(-1)
    x = a - mean[..., None]
    f = [torch.ones_like(mean)]
    power = torch.ones_like(x)
    for n in range(1, order + 1):
        power = power * x / n
        f.append((p * power).sum(-1))
    c = [torch.logsumexp(z, -1), mean]
    centred = [torch.zeros_like(mean), torch.zeros_like(mean)]  # coefficients of log F for the centred x
    for n in range(2, order + 1):
        acc = sum(j * centred[j] * f[n - j] for j in range(1, n))
        centred.append(f[n] - acc / n)
        c.append(centred[n])
    return torch.stack(c, -1)


def partial_sums(coefficients, tau) -> torch.Tensor:
    """Partial sums ``S_N(tau) = sum_{n <= N} c_n tau^n`` for every ``N`` (eq-ghosts-cumulants).

    Args:
        coefficients: shape ``(N + 1,)``, e.g. from :func:`lse_taylor_coefficients`.
        tau: real points, shape ``(m,)``.

    Returns:
        float64 tensor of shape ``(N + 1, m)``: row ``N`` is the sum up to degree ``N``.
    """
    c = as_tensor(coefficients, name="coefficients")
    t = as_tensor(tau, name="tau", device=c.device)
    if c.ndim != 1 or t.ndim != 1:
        raise ValueError("coefficients, tau: expected 1-D tensors")
    terms = c[:, None] * t[None, :] ** torch.arange(len(c), dtype=c.dtype, device=c.device)[:, None]
    return terms.cumsum(0)


# --- measuring the radius of a network ---------------------------------------------------------------


def logit_jvp(logits_fn: Callable[[torch.Tensor], torch.Tensor], params: torch.Tensor,
              direction: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``z`` and their velocity ``a = J v`` along the unit direction ``v = d / ||d||`` (eq-ghosts-r).

    One forward-mode pass (``torch.func.jvp``) gives ``a`` for every sample of the batch at once.

    Args:
        logits_fn: ``params -> logits`` of shape ``(n, K)``.
        params: flat parameters, shape ``(P,)``.
        direction: ``d``, shape ``(P,)``, not zero.

    Returns:
        ``(z, a)``, both of shape ``(n, K)``.
    """
    check_callable(logits_fn, name="logits_fn")
    params = _finite(params, "params")
    direction = check_float_tensor(direction, name="direction")
    if direction.shape != params.shape:
        raise ValueError(f"direction: expected the shape of params, {tuple(params.shape)}, got "
                         f"{tuple(direction.shape)}")
    norm = direction.norm()
    if not bool(torch.isfinite(norm)) or float(norm) == 0.0:
        raise ValueError("direction: expected a finite, non-zero vector")
    return jvp(logits_fn, (params,), ((direction / norm).to(params),))


def capped_lr(logits_fn: Callable[[torch.Tensor], torch.Tensor], params: torch.Tensor, p: torch.Tensor, *,
              lr: float, kappa: float = 1.0) -> tuple[float, float]:
    """The learning rate that keeps the step ``-lr p`` inside ``kappa rho_a`` (eq-ghosts-cap).

    ``tau = lr ||p||`` is the step's length; ``rho_a`` comes from :func:`logit_jvp` along ``p / ||p||``
    and :func:`taylor_radius`. The rate is ``min(lr, kappa rho_a / ||p||)``.

    Args:
        logits_fn: ``params -> logits`` on the data the radius should hold for, shape ``(n, K)``.
        params: flat parameters, shape ``(P,)``.
        p: the proposed direction (the step is ``-lr p``), shape ``(P,)``, not zero.
        lr: the proposed learning rate, ``>= 0``.
        kappa: safety factor, ``> 0``.

    Returns:
        ``(lr_eff, rho_a)`` as floats.
    """
    lr = check_positive(lr, name="lr", allow_zero=True)
    kappa = check_positive(kappa, name="kappa")
    p = _finite(p, "p")
    if float(p.norm()) == 0.0:
        raise ValueError("p: expected a non-zero direction")
    _, a = logit_jvp(logits_fn, params, p)
    rho = float(taylor_radius(a))
    return min(lr, kappa * rho / float(p.double().norm())), rho


@dataclass(frozen=True)
class Inflation(Record):
    """Loss ratios ``L(theta + tau v) / L(theta)`` at normalised steps ``r`` (see :func:`loss_inflation`).

    Attributes:
        r: normalised steps, shape ``(m,)``.
        tau: step lengths ``r rho_a``, shape ``(m,)``.
        ratio: loss ratios, shape ``(m,)``.
        rho: the radius ``rho_a`` along the direction.
    """

    r: torch.Tensor
    tau: torch.Tensor
    ratio: torch.Tensor
    rho: float


def loss_inflation(loss_fn: Callable[[torch.Tensor], torch.Tensor],
                   logits_fn: Callable[[torch.Tensor], torch.Tensor], params: torch.Tensor,
                   direction: torch.Tensor, *, r) -> Inflation:
    """The loss ratio after a step of length ``tau = r rho_a`` along ``direction`` (eq-ghosts-r).

    Args:
        loss_fn: ``params -> scalar loss``.
        logits_fn: ``params -> logits`` of the same samples, shape ``(n, K)``.
        params: flat parameters, shape ``(P,)``.
        direction: shape ``(P,)``; normalised here.
        r: normalised step lengths ``>= 0``, a number or shape ``(m,)``.

    Returns:
        An :class:`Inflation`.
    """
    check_callable(loss_fn, name="loss_fn")
    _, a = logit_jvp(logits_fn, params, direction)
    rho = float(taylor_radius(a))
    r = as_tensor(r, name="r").reshape(-1)
    if len(r) == 0 or bool((r < 0).any()):
        raise ValueError("r: expected normalised step lengths >= 0")
    v = direction / direction.norm()
    base = float(loss_fn(params))
    with torch.no_grad():
        ratio = torch.tensor([float(loss_fn(params + float(t) * rho * v)) / base for t in r], dtype=torch.float64)
    return Inflation(r, r * rho, ratio, rho)


def onset(inflation: Inflation, *, threshold: float = 1.1) -> float:
    """The smallest ``r`` at which the loss ratio reaches ``threshold`` (log-linear interpolation
    between the grid's points); ``inf`` if it never does.

    Args:
        inflation: from :func:`loss_inflation`, with ``r`` increasing.
        threshold: the loss ratio that counts as inflation, ``> 0``.
    """
    if not isinstance(inflation, Inflation):
        raise ValueError(f"inflation: expected an Inflation record, got {type(inflation).__name__}")
    threshold = check_positive(threshold, name="threshold")
    r, q = inflation.r, inflation.ratio
    above = (q >= threshold).nonzero()
    if len(above) == 0:
        return math.inf
    i = int(above[0])
    if i == 0 or float(r[i - 1]) <= 0:
        return float(r[i])
    lo, hi = math.log(float(r[i - 1])), math.log(float(r[i]))
    w = (threshold - float(q[i - 1])) / (float(q[i]) - float(q[i - 1]))
    return math.exp(lo + w * (hi - lo))


def curvature_along(loss_fn: Callable[[torch.Tensor], torch.Tensor], params: torch.Tensor,
                    direction: torch.Tensor) -> float:
    """The loss's curvature ``v^T H v`` along the unit ``v = d / ||d||``, with its sign.

    ``v^T H v`` is a Hessian-vector product by double backpropagation (the value of
    :func:`lessons_lib.curvature.hvp`, which a test checks; plain autograd here spares a notebook the
    one-off cost of importing ``torch.func.grad``'s machinery, about a second on a CPU). The quadratic
    model of a step of length ``tau`` along ``v`` is ``L + tau g.v + tau^2 v^T H v / 2``.

    Args:
        loss_fn: ``params -> scalar loss``.
        params: flat parameters, shape ``(P,)``.
        direction: ``d``, shape ``(P,)``, not zero.

    Returns:
        ``v^T H v`` as a float; ``0.0`` where the loss is constant or linear in the parameters.
    """
    check_callable(loss_fn, name="loss_fn")
    params = _finite(params, "params")
    direction = _finite(direction, "direction")
    if direction.shape != params.shape or float(direction.norm()) == 0.0:
        raise ValueError(f"direction: expected a non-zero vector of the shape of params, {tuple(params.shape)}")
    v = (direction / direction.norm()).to(params)
    x = params.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        loss = loss_fn(x)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ValueError("loss_fn: expected a function returning a scalar tensor")
        if not loss.requires_grad:
            return 0.0  # constant in the parameters: no curvature
        (g,) = torch.autograd.grad(loss.reshape(()), x, create_graph=True, allow_unused=True)
        if g is None or not g.requires_grad:
            return 0.0  # linear in the parameters
        (hv,) = torch.autograd.grad(torch.dot(g, v), x, allow_unused=True)
    return float(torch.dot(hv, v)) if hv is not None else 0.0


def hessian_scale(loss_fn: Callable[[torch.Tensor], torch.Tensor], params: torch.Tensor,
                  direction: torch.Tensor) -> float:
    """The quadratic model's step scale ``2 / |v^T H v|`` along the unit ``v = d / ||d||``.

    This is the *Stability* limit ``2 / lambda`` with the curvature along ``v``
    (:func:`curvature_along`); ``inf`` where it is zero.

    Args:
        loss_fn: ``params -> scalar loss``.
        params: flat parameters, shape ``(P,)``.
        direction: ``d``, shape ``(P,)``, not zero.
    """
    curv = curvature_along(loss_fn, params, direction)
    return 2.0 / abs(curv) if curv != 0 else math.inf


# --- training the digits MLP ------------------------------------------------------------------------


def flush_subnormals() -> contextlib.AbstractContextManager:
    """A context in which the CPU flushes float subnormals to zero (``torch.set_flush_denormal``).

    torch has a setter but no getter, so the previous setting is read by a probe: ``1e-30 * 1e-10``
    in float32 is a subnormal, which comes out as zero while flushing is on. The setting found is
    restored on exit. Where the CPU cannot flush (``set_flush_denormal`` returns False) nothing changes.
    """

    @contextlib.contextmanager
    def context() -> Iterator[None]:
        before = subnormals_flushed()
        torch.set_flush_denormal(True)
        try:
            yield
        finally:
            torch.set_flush_denormal(before)

    return context()


def subnormals_flushed() -> bool:
    """Whether the CPU currently flushes float32 subnormals to zero (the probe of :func:`flush_subnormals`)."""
    x = torch.tensor(1e-30, dtype=F32, device="cpu") * torch.tensor(1e-10, dtype=F32, device="cpu")
    return float(x) == 0.0


def clip_norm(g: torch.Tensor, max_norm: float) -> torch.Tensor:
    """``g`` scaled down to norm ``max_norm`` when it is longer (``torch.nn.utils.clip_grad_norm_``'s rule)."""
    g = _finite(g, "g")
    max_norm = check_positive(max_norm, name="max_norm")
    return g * (max_norm / (g.norm() + 1e-6)).clamp(max=1.0)


def _digits(data, device):
    if data is None:
        return models.digits_split(generator=0, dtype=F32, device=device)
    if not isinstance(data, models.DigitsSplit):
        raise ValueError(f"data: expected a models.DigitsSplit, got {type(data).__name__}")
    # the data follow ``device`` (that of the parameters), as in ``MLPClassifier``
    return models.DigitsSplit(*(t.to(device=device, dtype=F32) if t.is_floating_point() else t.to(device)
                                for t in (data.X_train, data.y_train, data.X_test, data.y_test)))


_SIZES = (64, 128, 10)
_PARTS = [math.prod(s) for s in models.mlp_shapes(_SIZES)]


def _mlp_jvp(theta: torch.Tensor, u: torch.Tensor, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and their JVP along ``u`` for the ReLU MLP 64-128-10, written out by hand: the same numbers as
    :func:`logit_jvp` (a test checks it) in a fraction of the time of forward-mode autodiff on a CPU. The
    first layer's value and tangent come from one matrix product."""
    W1, b1, W2, b2 = torch.split(theta, _PARTS)
    dW1, db1, dW2, db2 = torch.split(u, _PARTS)
    pre = torch.addmm(torch.cat([b1, db1]), X, torch.cat([W1.view(128, 64), dW1.view(128, 64)]).T)
    h, dpre = pre[:, :128].clamp(min=0), pre[:, 128:]
    dh = dpre * h.sign()  # the ReLU's derivative: h >= 0, so sign(h) is 0 or 1 (and fast, unlike torch.where)
    W2, dW2 = W2.view(10, 128), dW2.view(10, 128)
    return torch.addmm(b2, h, W2.T), torch.addmm(db2, dh, W2.T).addmm_(h, dW2.T)


def _mlp_params(params) -> torch.Tensor:
    params = _finite(params, "params")
    if params.shape != (sum(_PARTS),):
        raise ValueError(f"params: expected the {sum(_PARTS)} parameters of mlp_classifier((64, 128, 10)), "
                         f"got shape {tuple(params.shape)}")
    return params


def _mlp_logits(theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Logits of the ReLU MLP 64-128-10 without the input checks of ``MLPClassifier.logits``."""
    W1, b1, W2, b2 = torch.split(theta, _PARTS)
    return torch.addmm(b2, torch.addmm(b1, X, W1.view(128, 64).T).clamp(min=0), W2.view(10, 128).T)


def _mlp_grad(theta: torch.Tensor, X: torch.Tensor, y: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Gradient of the mean cross-entropy of the logits ``f(theta, X) / temperature`` of the ReLU MLP
    64-128-10, by hand (backpropagation written out): the numbers of ``torch.func.grad`` (a test checks it)
    at a few times its speed for a minibatch on a CPU."""
    W1, b1, W2, b2 = torch.split(theta, _PARTS)
    W1, W2 = W1.view(128, 64), W2.view(10, 128)
    h = torch.addmm(b1, X, W1.T).clamp(min=0)
    z = torch.addmm(b2, h, W2.T) / temperature
    dz = torch.softmax(z, -1)
    dz[torch.arange(len(y), device=y.device), y] -= 1.0
    dz = dz / (len(y) * temperature)
    dh = (dz @ W2) * h.sign()
    return torch.cat([(dh.T @ X).reshape(-1), dh.sum(0), (dz.T @ h).reshape(-1), dz.sum(0)])


def _batches(batches, steps: int, batch_size: int, n: int, gen: torch.Generator, device) -> torch.Tensor:
    if batches is None:
        return torch.randint(n, (steps, batch_size), generator=gen, device=gen.device).to(device)
    if (not isinstance(batches, torch.Tensor) or batches.dtype != torch.long or batches.ndim != 2
            or batches.shape[0] < steps or len(batches) and not (0 <= int(batches.min()) and int(batches.max()) < n)):
        raise ValueError(f"batches: expected a long tensor (steps, batch) of indices below {n}")
    return batches.to(device)


def train_gradient(params: torch.Tensor, *, temperature: float = 1.0,
                   data: models.DigitsSplit | None = None) -> torch.Tensor:
    """Full-batch gradient of the digits MLP's training loss, the mean cross-entropy of the logits ``z / T``.

    The MLP is ``mlp_classifier((64, 128, 10))``; backpropagation is written out by hand (the numbers of
    ``torch.func.grad``, which a test checks), so a notebook need not load ``torch.func.grad``'s machinery.

    Args:
        params: flat parameters, shape ``(P,)``.
        temperature: ``T > 0``.
        data: the digits split (default ``digits_split(generator=0)``); its training set is used.

    Returns:
        The gradient, shape ``(P,)``, in the dtype of ``params``.
    """
    params = _mlp_params(params)
    temperature = check_positive(temperature, name="temperature")
    d = _digits(data, params.device)
    return _mlp_grad(params, d.X_train.to(params), d.y_train, temperature)


@dataclass(frozen=True)
class SpikeRun(Record):
    """A digits run under a learning-rate spike (see :func:`spike_run`); per-step rows are steps ``0 .. T-1``.

    Attributes:
        loss: training loss (whole training set) at each step's start, shape ``(T,)``.
        tau: the step's length ``lr_eff ||p||``, shape ``(T,)``.
        rho: ``rho_a`` along the step (JVP on the training set), shape ``(T,)``.
        r: ``tau / rho``, shape ``(T,)``.
        lr: the learning rate asked for (with the spike), shape ``(T,)``.
        test_acc: test accuracy at steps ``0 .. T``, shape ``(T + 1,)``.
        final_test_acc: ``test_acc[-1]``.
        diverged: whether the parameters or Adam's moments stopped being finite (float32 overflow).
        diverged_at: the step at which they did, ``-1`` if never.
        params: the parameters after the last step (the last finite ones if the run diverged), shape ``(P,)``.
    """

    loss: torch.Tensor
    tau: torch.Tensor
    rho: torch.Tensor
    r: torch.Tensor
    lr: torch.Tensor
    test_acc: torch.Tensor
    final_test_acc: float
    diverged: bool
    diverged_at: int
    params: torch.Tensor


def spike_run(*, base_lr: float = 1e-3, spike: float = 1000.0, spike_step: int = 50, steps: int = 200,
              controller: Controller = "none", kappa: float = 1.0, clip: float = 1.0, temperature: float = 1.0,
              batch_size: int = 64, data: models.DigitsSplit | None = None, batches: torch.Tensor | None = None,
              generator: int | torch.Generator = 0) -> SpikeRun:
    """Adam on the digits MLP 64-128-10 with the learning rate multiplied by ``spike`` from ``spike_step`` on.

    Each step draws a minibatch, forms Adam's direction ``p`` (:func:`~lessons_lib.descent.adam_direction`)
    and measures ``rho_a`` along ``p / ||p||`` by one JVP of the logits on the whole training set
    (eq-ghosts-radius). ``controller`` chooses what happens to the step ``-lr p``:

    * ``"none"``: plain Adam;
    * ``"rho"``: the step's length ``tau = lr ||p||`` is capped at ``kappa rho_a`` (eq-ghosts-cap);
    * ``"clip"``: the minibatch gradient is clipped to norm ``clip`` before Adam (:func:`clip_norm`).

    The model is ``mlp_classifier((64, 128, 10))`` with logits divided by ``temperature``; everything
    is float32, whatever the default dtype, with subnormals flushed (:func:`flush_subnormals`). The
    loop is :func:`lessons_lib.run.run` with a radius far beyond any float32 value, so ``diverged``
    means the state stopped being finite.

    Args:
        base_lr: the learning rate before the spike, ``> 0``.
        spike: the factor from ``spike_step`` to the end, ``> 0``.
        spike_step: the first step of the spike, ``>= 0``.
        steps: number of steps ``T >= 1``.
        controller: ``"none"``, ``"rho"`` or ``"clip"``.
        kappa: safety factor of ``"rho"``, ``> 0``.
        clip: gradient norm of ``"clip"``, ``> 0``.
        temperature: ``T > 0``, the logits are ``z / T`` (``rho_a`` scales as ``T``).
        batch_size: minibatch size, ``>= 1``.
        data: a :class:`~lessons_lib.models.DigitsSplit` (default: ``digits_split(generator=0)``).
        batches: injected minibatch indices, long tensor of shape ``(steps, batch_size)``; drawn from
            ``generator`` when None.
        generator: seed or generator of the initialisation and the minibatches.

    Returns:
        A :class:`SpikeRun`.

    References:
        Sao (2026), Ghosts of Softmax, arXiv:2603.13552 (the learning-rate spike experiment).
    """
    base_lr, spike = check_positive(base_lr, name="base_lr"), check_positive(spike, name="spike")
    spike_step = check_count(spike_step, name="spike_step", minimum=0)
    steps, batch_size = check_count(steps, name="steps"), check_count(batch_size, name="batch_size")
    controller = check_choice(controller, ("none", "rho", "clip"), name="controller")
    kappa, clip = check_positive(kappa, name="kappa"), check_positive(clip, name="clip")
    temperature = check_positive(temperature, name="temperature")
    device = data.X_train.device if isinstance(data, models.DigitsSplit) else default_device()
    gen = as_generator(generator, device)
    d = _digits(data, device)
    idx = _batches(batches, steps, batch_size, len(d.y_train), gen, device)
    clf = models.mlp_classifier((64, 128, 10))

    def step(state, t, lr):
        theta, m, v, _ = state
        g = _mlp_grad(theta, d.X_train[idx[t]], d.y_train[idx[t]], temperature)
        if controller == "clip":
            g = clip_norm(g, clip)
        p, m, v = adam_direction(g, m, v, t + 1)
        norm = float(p.double().norm())
        z, a = _mlp_jvp(theta, p / max(norm, 1e-300), d.X_train)
        z, a = z / temperature, a / temperature
        spread = float((a.amax(-1) - a.amin(-1)).max())  # taylor_radius without its input checks
        rho = math.pi / spread if norm > 0 and spread > 0 else math.inf
        lr = float(lr)
        if controller == "rho" and lr * norm > kappa * rho:
            lr = kappa * rho / norm
        tau = lr * norm
        loss = float(torch.nn.functional.cross_entropy(z.double(), d.y_train))
        info = torch.tensor([loss, tau, min(rho, 1e300), tau / rho], dtype=torch.float64, device=device)
        return theta - lr * p, m, v, info

    def record(state, t):
        acc = float((_mlp_logits(state[0], d.X_test).argmax(-1) == d.y_test).double().mean())  # T > 0: same argmax
        return {"info": state[3], "acc": torch.tensor(acc, dtype=torch.float64)}

    theta0 = clf.init(gen, dtype=F32, device=device)
    zeros = torch.zeros_like(theta0)
    schedule = torch.full((steps,), base_lr, dtype=torch.float64)
    schedule[spike_step:] *= spike
    with flush_subnormals():
        res = run(step, (theta0, zeros, zeros.clone(), torch.zeros(4, dtype=torch.float64, device=device)),
                  steps=steps, lr=lambda t: schedule[t.cpu()], record=record, blowup=1e30)
    _, hist = res.on_grid(steps)
    info = hist["info"][1:]
    acc = hist["acc"]
    return SpikeRun(info[:, 0], info[:, 1], info[:, 2], info[:, 3], schedule, acc, float(acc[-1]),
                    bool(res.diverged), int(res.diverged_at), res.state[0])


@dataclass(frozen=True)
class Checkpoints(Record):
    """Parameters of one plain-Adam digits run at chosen steps (see :func:`adam_checkpoints`).

    Attributes:
        steps: the checkpoints' steps, long tensor of shape ``(C,)``.
        params: float32, shape ``(C, P)``.
    """

    steps: torch.Tensor
    params: torch.Tensor


def adam_checkpoints(*, checkpoints: Sequence[int] = (30, 300, 1500), lr: float = 1e-3, batch_size: int | None = 64,
                     data: models.DigitsSplit | None = None, generator: int | torch.Generator = 0) -> Checkpoints:
    """Train the digits MLP 64-128-10 with minibatch Adam and keep its parameters at ``checkpoints``.

    The same model, float32 data and minibatch stream as :func:`spike_run` without a spike; the loop is
    :func:`lessons_lib.run.run`, recording the parameters at the checkpoints only.

    Args:
        checkpoints: increasing steps ``>= 0``.
        lr: Adam's learning rate, ``> 0``.
        batch_size: minibatch size, or None for full-batch Adam.
        data: a :class:`~lessons_lib.models.DigitsSplit` (default: ``digits_split(generator=0)``).
        generator: seed or generator of the initialisation and the minibatches.

    Returns:
        A :class:`Checkpoints`.
    """
    if not isinstance(checkpoints, (list, tuple)):
        raise ValueError(f"checkpoints: expected a sequence of steps, got {type(checkpoints).__name__}")
    cps = [check_count(c, name="checkpoints", minimum=0) for c in checkpoints]
    if not cps or cps != sorted(set(cps)):
        raise ValueError(f"checkpoints: expected increasing steps, got {list(checkpoints)!r}")
    lr = check_positive(lr, name="lr")
    if batch_size is not None:
        batch_size = check_count(batch_size, name="batch_size")
    device = data.X_train.device if isinstance(data, models.DigitsSplit) else default_device()
    gen = as_generator(generator, device)
    d = _digits(data, device)
    steps = cps[-1]
    theta0 = models.mlp_classifier((64, 128, 10)).init(gen, dtype=F32, device=device)
    n = len(d.y_train)
    idx = (_batches(None, steps, batch_size, n, gen, device) if batch_size is not None
           else torch.arange(n, device=device).expand(steps, n))
    every = math.gcd(*cps) or 1

    def step(state, t, eta):
        theta, m, v = state
        p, m, v = adam_direction(_mlp_grad(theta, d.X_train[idx[t]], d.y_train[idx[t]]), m, v, t + 1)
        return theta - eta * p, m, v

    with flush_subnormals():
        res = run(step, (theta0, torch.zeros_like(theta0), torch.zeros_like(theta0)), steps=steps, lr=lr,
                  record=lambda s, t: {"params": s[0]}, record_every=every, blowup=1e30)
    _, hist = res.on_grid(steps, every)
    grid = list(range(0, steps + 1, every))
    return Checkpoints(torch.tensor(cps), hist["params"][[grid.index(c) for c in cps]])


@dataclass(frozen=True)
class TemperatureOnsets(Record):
    """Where the loss starts to inflate along the gradient, for logits divided by several temperatures.

    Attributes:
        temperatures: shape ``(m,)``.
        rho: ``rho_a(T)`` along each temperature's gradient, shape ``(m,)``.
        onset_r: the normalised onset ``r`` (ratio ``threshold``), shape ``(m,)``.
        onset_tau: the same onset as a step length ``tau = r rho_a(T)``, shape ``(m,)``.
        spread_r: standard deviation of ``log10(onset_r)`` over the temperatures.
        spread_tau: standard deviation of ``log10(onset_tau)``.
    """

    temperatures: torch.Tensor
    rho: torch.Tensor
    onset_r: torch.Tensor
    onset_tau: torch.Tensor
    spread_r: float
    spread_tau: float


def temperature_onsets(params: torch.Tensor, *, temperatures: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0),
                       r=None, threshold: float = 1.1, data: models.DigitsSplit | None = None) -> TemperatureOnsets:
    """The onset of loss inflation along ``-grad L_T`` for the digits MLP with logits ``z / T`` (eq-ghosts-r).

    Dividing the logits by ``T`` divides ``a`` by ``T``, so ``rho_a(T) = T rho_a``: measured in ``r`` the
    onsets of different temperatures should line up, measured in ``tau`` they should not.

    Args:
        params: flat parameters of ``mlp_classifier((64, 128, 10))``, shape ``(P,)``.
        temperatures: ``T > 0`` values.
        r: the grid of normalised steps searched, increasing (default 40 points from 1e-3 to 35).
        threshold: the loss ratio that counts as inflation.
        data: the digits split (default ``digits_split(generator=0)``); the training set is used.

    Returns:
        A :class:`TemperatureOnsets` (an onset never reached is ``inf`` and is left out of the spreads).
    """
    params = _mlp_params(params)
    if not isinstance(temperatures, (list, tuple)):
        raise ValueError(f"temperatures: expected a sequence of numbers, got {type(temperatures).__name__}")
    temps = torch.tensor([check_positive(t, name="temperatures") for t in temperatures], dtype=torch.float64)
    if len(temps) == 0:
        raise ValueError("temperatures: expected at least one temperature")
    r = torch.logspace(-3, math.log10(35.0), 40, dtype=torch.float64) if r is None else as_tensor(r, name="r")
    if r.ndim != 1 or len(r) < 2 or bool((r <= 0).any()) or bool((r.diff() <= 0).any()):
        raise ValueError("r: expected at least two increasing normalised steps > 0")
    threshold = check_positive(threshold, name="threshold")
    d = _digits(data, params.device)
    X, y = d.X_train.to(params), d.y_train
    rhos, onsets = [], []
    for T in temps.tolist():
        # the steps of loss_inflation along -grad L_T, with the logits, their JVP and the gradient written out
        # for this MLP (the same numbers; forward-mode autodiff through z / T costs a second to set up on a CPU)
        v = -_mlp_grad(params, X, y, T)
        v = v / v.norm()
        _, a = _mlp_jvp(params, v, X)
        rho = T * math.pi / float(_spreads(a).max())  # rho_a of the logits z / T, whose velocity is a / T

        def loss(theta, T=T):
            return float(torch.nn.functional.cross_entropy(_mlp_logits(theta, X) / T, y))

        base = loss(params)
        ratio = torch.tensor([loss(params + float(t) * rho * v) / base for t in r], dtype=torch.float64)
        rhos.append(rho)
        onsets.append(onset(Inflation(r, r * rho, ratio, rho), threshold=threshold))
    rho, on_r = torch.tensor(rhos, dtype=torch.float64), torch.tensor(onsets, dtype=torch.float64)
    on_tau = on_r * rho
    ok = torch.isfinite(on_r)

    def spread(x):
        return float(x[ok].log10().std()) if int(ok.sum()) > 1 else 0.0

    return TemperatureOnsets(temps, rho, on_r, on_tau, spread(on_r), spread(on_tau))
