"""Curvature of a loss at a point: Hessian-vector products, dense Hessians, sharpness, trace.

Every function takes ``loss_fn``, a function from a flat parameter vector ``params`` of shape
``(n,)`` to a scalar tensor, and uses :mod:`torch.func`, so the same code runs on CPU and CUDA and
never touches ``.grad`` attributes. Results follow the device and dtype of ``params``. The one
exception is :func:`gauss_newton`, which reads the Gauss-Newton matrix of a square loss off the
per-sample gradients of the model output (its Jacobian) instead of a loss function.

References:
    Pearlmutter (1994), Fast exact multiplication by the Hessian, Neural Computation 6(1).
    Lanczos (1950), An iteration method for the solution of the eigenvalue problem of linear
    differential and integral operators, J. Res. Nat. Bur. Standards 45.
    Hutchinson (1989), A stochastic estimator of the trace of the influence matrix for Laplacian
    smoothing splines, Comm. Statist. Simulation Comput. 18(3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

import torch
from torch.func import grad, jvp, vjp, vmap
from torch.func import hessian as _func_hessian

from .backend import as_generator, check_count, check_positive

LossFn = Callable[[torch.Tensor], torch.Tensor]

#: Smallest ``tol`` of :func:`sharpness`, in machine epsilons of the dtype of ``params``: a float32
#: Hessian-vector product on a 705-parameter MLP leaves a relative residual of about 3 eps.
_TOL_EPS = 8


def _check(loss_fn: LossFn, params: torch.Tensor) -> None:
    if not callable(loss_fn):
        raise ValueError(f"loss_fn: expected a callable params -> scalar, got {type(loss_fn).__name__}")
    if not isinstance(params, torch.Tensor):
        raise ValueError(f"params: expected a 1-D torch.Tensor, got {type(params).__name__}")
    if params.ndim != 1 or params.numel() == 0:
        raise ValueError(f"params: expected a non-empty flat tensor of shape (n,), got {tuple(params.shape)}")
    if not params.is_floating_point():
        raise ValueError(f"params: expected a floating dtype, got {params.dtype}")
    if not bool(torch.isfinite(params).all()):
        raise ValueError("params: contains NaN or infinite values")


def hvp(loss_fn: LossFn, params: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Hessian-vector product ``H(params) @ v`` without forming ``H``.

    Computes the directional derivative of the gradient, ``d/dt grad L(params + t v)`` at ``t = 0``
    (Pearlmutter's trick, eq-curv-hvp), at the cost of about two gradient evaluations. It is taken
    as a vector-Jacobian product of the gradient map (reverse-over-reverse; ``H`` is symmetric, so
    ``v^T H = (H v)^T``), which torch.func runs several times faster than forward-over-reverse
    ``jvp`` on small models.

    Args:
        loss_fn: maps a parameter tensor of shape ``(n,)`` to a scalar.
        params: point of shape ``(n,)``.
        v: direction of shape ``(n,)``, same dtype and device as ``params``.

    Returns:
        Tensor of shape ``(n,)``.
    """
    _check(loss_fn, params)
    if not isinstance(v, torch.Tensor) or v.shape != params.shape:
        got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
        raise ValueError(f"v: expected a tensor of shape {tuple(params.shape)}, got {got}")
    if v.is_complex() or not bool(torch.isfinite(v).all()):
        raise ValueError("v: expected finite real values")
    _, pullback = vjp(grad(loss_fn), params)
    return pullback(v.to(params))[0]


def hessian(loss_fn: LossFn, params: torch.Tensor) -> torch.Tensor:
    """Dense Hessian ``H_ij = d^2 L / d params_i d params_j`` (eq-curv-hessian), for small models.

    Costs ``O(n)`` gradient evaluations and ``O(n^2)`` memory: use :func:`sharpness` and
    :func:`hessian_trace` beyond a few thousand parameters.

    Args:
        loss_fn: maps a parameter tensor of shape ``(n,)`` to a scalar.
        params: point of shape ``(n,)``.

    Returns:
        Symmetric tensor of shape ``(n, n)``.
    """
    _check(loss_fn, params)
    H = _func_hessian(loss_fn)(params)
    return 0.5 * (H + H.T)


@dataclass(frozen=True)
class _Estimate:
    """A scalar estimate with diagnostics; ``float(estimate)`` is its ``value``."""

    value: float

    def __float__(self) -> float:
        return self.value


@dataclass(frozen=True)
class Sharpness(_Estimate):
    """Top Hessian eigenvalue found by :func:`sharpness`.

    Attributes:
        value: the eigenvalue estimate (``lambda_max``).
        vector: unit eigenvector estimate, shape ``(n,)``.
        iterations: Lanczos or power steps taken (one Hessian-vector product each; Lanczos spends
            one more product to measure ``residual``).
        residual: ``||H v - value v||``, absolute, recomputed for the returned pair with one
            Hessian-vector product in the dtype of ``params`` (not the Lanczos estimate, which
            can fall far below what that dtype resolves); the certificate behind ``converged``.
        converged: whether ``residual <= tol * max(1, |value|)``.
    """

    vector: torch.Tensor
    iterations: int
    residual: float
    converged: bool


def sharpness(
    loss_fn: LossFn,
    params: torch.Tensor,
    *,
    method: Literal["lanczos", "power"] = "lanczos",
    tol: float = 1e-6,
    max_iter: int = 100,
    generator: int | torch.Generator = 0,
    v0: torch.Tensor | None = None,
) -> Sharpness:
    """Sharpness: the largest eigenvalue of the loss Hessian, from Hessian-vector products only.

    ``lambda_max(H) = max_{||v|| = 1} v^T H v`` (eq-curv-sharpness). GD on a quadratic is stable
    iff ``lr * lambda_max < 2``, which is why the book tracks this number.

    ``method="lanczos"`` builds a Krylov basis with full re-orthogonalisation and returns the top
    Ritz value: the largest *algebraic* eigenvalue, also when the Hessian is indefinite.
    ``method="power"`` runs power iteration, which finds the eigenvalue of largest *magnitude*;
    the two agree near a minimum, where the Hessian is positive semi-definite.

    Args:
        loss_fn: maps a parameter tensor of shape ``(n,)`` to a scalar.
        params: point of shape ``(n,)``.
        method: ``"lanczos"`` or ``"power"``.
        tol: stop when the eigen-residual ``||H v - lambda v||`` falls below
            ``tol * max(1, |lambda|)``. At least ``8 * eps`` of the dtype of ``params``
            (9.5e-7 in float32, 1.8e-15 in float64): a smaller tolerance cannot be certified.
        max_iter: cap on Hessian-vector products (Lanczos stops earlier at ``n``).
        generator: seed or generator for the random start vector.
        v0: optional start vector of shape ``(n,)`` (e.g. the previous top eigenvector, to
            warm-start a measurement along a training run); ``generator`` is then unused.

    Returns:
        A :class:`Sharpness` record; ``float(result)`` is the eigenvalue.
    """
    _check(loss_fn, params)
    tol = check_positive(tol, name="tol")
    floor = _TOL_EPS * torch.finfo(params.dtype).eps
    if tol < floor:
        raise ValueError(f"tol: {tol:.1e} is below what {params.dtype} resolves; use at least {floor:.1e} "
                         f"({_TOL_EPS} x its machine epsilon)")
    max_iter = check_count(max_iter, name="max_iter")
    if method not in ("lanczos", "power"):
        raise ValueError(f"method: expected 'lanczos' or 'power', got {method!r}")
    if v0 is None:
        gen = as_generator(generator, params.device)
        q = torch.randn(params.shape, generator=gen, dtype=params.dtype, device=params.device)
    elif not isinstance(v0, torch.Tensor) or v0.shape != params.shape or not float(v0.norm()) > 0:
        raise ValueError(f"v0: expected a non-zero start vector of shape {tuple(params.shape)}")
    else:
        q = v0.to(params)
    q = q / q.norm()
    # linearise the gradient map once: each product u -> H u is then one backward pass
    _, pullback = vjp(grad(loss_fn), params)
    matvec = lambda u: pullback(u)[0]  # noqa: E731  (H is symmetric, so H^T u = H u)
    if method == "power":
        return _power(matvec, q, tol, max_iter)
    return _lanczos(matvec, q, tol, min(max_iter, params.numel()))


def _power(matvec, q, tol, max_iter) -> Sharpness:
    for it in range(1, max_iter + 1):
        w = matvec(q)
        value = float(q @ w)
        residual = float((w - value * q).norm())  # the true residual of the pair (value, q)
        converged = residual <= tol * max(1.0, abs(value))
        norm = w.norm()
        # norm 0: q lies in the null space, H q = 0, so 0 is an eigenvalue (value and residual are 0)
        if converged or norm == 0 or it == max_iter:
            return Sharpness(value, q, it, residual, converged)
        q = w / norm
    raise AssertionError("unreachable")  # pragma: no cover


def _lanczos(matvec, q, tol, max_iter) -> Sharpness:
    basis = [q]
    alphas: list[torch.Tensor] = []
    betas: list[torch.Tensor] = []
    for it in range(1, max_iter + 1):
        w = matvec(basis[-1])
        alphas.append(basis[-1] @ w)
        Q = torch.stack(basis, dim=1)
        for _ in range(2):  # full re-orthogonalisation, twice for safety ("twice is enough")
            w = w - Q @ (Q.T @ w)
        beta = w.norm()
        T = torch.diag(torch.stack(alphas))
        if betas:
            off = torch.stack(betas)
            T = T + torch.diag(off, 1) + torch.diag(off, -1)
        evals, evecs = torch.linalg.eigh(T)
        value, s = float(evals[-1]), evecs[:, -1]
        estimate = float(beta * s[-1].abs())  # ||H y - theta y|| for the Ritz pair (theta, y), in exact arithmetic
        exhausted = it == q.numel() or float(beta) <= 1e-12 * max(1.0, abs(value))
        if estimate <= tol * max(1.0, abs(value)) or exhausted or it == max_iter:
            vector = Q @ s
            vector = vector / vector.norm()
            # the estimate keeps falling below the dtype's rounding of H y: measure the residual itself
            residual = float((matvec(vector) - value * vector).norm())
            return Sharpness(value, vector, it, residual, residual <= tol * max(1.0, abs(value)))
        betas.append(beta)
        basis.append(w / beta)
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True)
class TraceEstimate(_Estimate):
    """Hutchinson estimate of ``Tr H``: ``value`` +- ``stderr`` from ``n_probes`` probes."""

    stderr: float
    n_probes: int


def hessian_trace(
    loss_fn: LossFn,
    params: torch.Tensor,
    n_probes: int = 100,
    generator: int | torch.Generator = 0,
) -> TraceEstimate:
    """Hutchinson's estimator of the Hessian trace, ``Tr H = E[z^T H z]`` (eq-curv-hutchinson).

    ``z`` has independent Rademacher (+-1) entries, so ``E[z z^T] = I`` and each probe
    ``z^T H z`` is an unbiased estimate of the trace; the mean over ``n_probes`` probes is returned
    with its standard error (sample standard deviation over ``sqrt(n_probes)``). Probes are batched
    with :func:`torch.func.vmap`.

    Args:
        loss_fn: maps a parameter tensor of shape ``(n,)`` to a scalar.
        params: point of shape ``(n,)``.
        n_probes: number of probe vectors, at least 2 (for the standard error).
        generator: seed or generator for the probes.

    Returns:
        A :class:`TraceEstimate`; ``float(result)`` is the estimate.
    """
    _check(loss_fn, params)
    n_probes = check_count(n_probes, name="n_probes", minimum=2)
    gen = as_generator(generator, params.device)
    signs = torch.randint(0, 2, (n_probes, params.numel()), generator=gen, device=params.device)
    Z = signs.to(params.dtype) * 2 - 1
    g = grad(loss_fn)
    HZ = vmap(lambda z: jvp(g, (params,), (z,))[1])(Z)
    samples = (Z * HZ).sum(dim=1)
    return TraceEstimate(float(samples.mean()), float(samples.std() / math.sqrt(n_probes)), n_probes)


# --- the Gauss-Newton matrix of a square loss ----------------------------------------------------


@dataclass(frozen=True)
class GaussNewton:
    """Spectral summary of ``G = J^T J / n``: ``trace`` and ``lam_max``, tensors batched like ``J``.

    It follows the device of ``J`` (trainers compute it inside their recording), unlike the result
    records of the runners, which come back on the host.
    """

    trace: torch.Tensor
    lam_max: torch.Tensor


def gauss_newton(J: torch.Tensor) -> GaussNewton:
    """Exact trace and top eigenvalue of the Gauss-Newton matrix (eq-stab-gauss-newton).

    ``G = (1/n) sum_i g_i g_i^T`` where row ``i`` of ``J`` is the per-sample gradient ``g_i`` of the
    model output; at an interpolating minimum of the square loss ``G`` is the Hessian.
    ``Tr G = ||J||_F^2 / n``; ``lambda_max(G)`` is the top eigenvalue of the smaller of ``J J^T / n``
    and ``J^T J / n`` (they share their non-zero spectrum). No sampling is involved.

    Args:
        J: per-sample gradients, shape ``(..., n, p)``.

    Returns:
        :class:`GaussNewton` with tensors of shape ``(...)``.

    References:
        Wu, Ma & E (2018), How SGD selects the global minima in over-parameterized learning: a
        dynamical stability perspective, NeurIPS.
    """
    if not isinstance(J, torch.Tensor) or J.ndim < 2 or J.shape[-2] == 0 or J.shape[-1] == 0:
        raise ValueError(f"J: expected a tensor of shape (..., n, p) with n, p > 0, got "
                         f"{tuple(J.shape) if isinstance(J, torch.Tensor) else type(J).__name__}")
    if J.is_complex() or not bool(torch.isfinite(J).all()):
        raise ValueError("J: expected finite real values")
    n, p = J.shape[-2:]
    trace = (J**2).sum(dim=(-2, -1)) / n
    small = J @ J.mT if n <= p else J.mT @ J
    lam_max = torch.linalg.eigvalsh(small / n)[..., -1]
    return GaussNewton(trace, lam_max)
