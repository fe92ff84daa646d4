"""A neural Poisson solver supervised by a few CG steps of its own prediction (NPSolver, on a linear toy).

A learned solver maps a source ``f`` to a potential ``p`` with ``A p = f``, where ``A`` is the 5-point
Laplacian on a mask (:func:`poisson_matrix`). Here the "network" is linear, ``p = W z`` for sources
``f = B z`` (:func:`bump_sources`), trained from ``W = 0``; the exact answer is ``W* = A^{-1} B`` and the
error is ``||W - W*|| / ||W*||`` (Frobenius norms). Three losses (:func:`train_linear_solver`):

* the residual loss ``(1/2) ||A W - B||^2`` (physics-informed, no labels): its Hessian is ``A^T A``,
  whose condition number is ``kappa(A)^2``, so the low modes of the error barely move;
* supervised labels ``(1/2) ||W - W*||^2``: Hessian ``I``, one step at ``lr = 1`` lands on ``W*``;
* the PCG target ``(1/2) ||W - P||^2`` with ``P = CG_K(A, B; start W)`` held fixed (stop-gradient,
  eq-npsolver-target): no labels, yet for a fixed polynomial solver (Richardson with
  ``omega = 1 / lambda_max``) the gradient is ``Q_K(A) (W - W*)`` with ``Q_K(A) = I - (I - omega A)^K``
  (eq-npsolver-precond, :func:`effective_hessian`), a preconditioned error.

CG (:func:`cg`) runs column by column in float64 and matches ``scipy.sparse.linalg.cg`` iterate by
iterate. Every trainer is a step function on :func:`lessons_lib.run.run`, with ``W`` as the state.

References:
    Zeng, Zhang et al. (2026), NPSolver: Neural Poisson Solver with Iterative Physics Supervision,
    KDD 2026, arXiv:2605.25786.
    Hestenes & Stiefel (1952), Methods of conjugate gradients for solving linear systems, J. Res. NBS 49.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from . import quadratic
from .backend import Record, as_generator, check_choice, check_count, check_float_tensor, check_positive, default_device
from .run import run

LOSSES = ("residual", "supervised", "pcg")
SOLVERS = ("cg", "richardson")
PRECONDITIONERS = (None, "jacobi")


def l_shape_mask(n: int = 32, *, device=None) -> torch.Tensor:
    """The L-shaped domain on an ``n x n`` grid: the square without its upper-right quarter.

    Args:
        n: grid side, an even number ``>= 4`` (``n = 32`` gives ``N = 768`` cells).
        device: where the mask lives (default :func:`~lessons_lib.backend.default_device`).

    Returns:
        Bool tensor of shape ``(n, n)``; ``True`` marks an unknown. Row 0 is the top of the picture.
    """
    n = check_count(n, name="n", minimum=4)
    if n % 2:
        raise ValueError(f"n: expected an even grid side, got {n}")
    mask = torch.ones(n, n, dtype=torch.bool, device=default_device() if device is None else device)
    mask[: n // 2, n // 2:] = False
    return mask


def _check_mask(mask) -> torch.Tensor:
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.ndim != 2:
        raise ValueError("mask: expected a 2-D bool tensor (True marks an unknown)")
    if not bool(mask.any()):
        raise ValueError("mask: has no True cell, so there is nothing to solve")
    return mask


def poisson_matrix(mask: torch.Tensor) -> torch.Tensor:
    """The 5-point Laplacian on ``mask`` with zero Dirichlet values outside it (eq-npsolver-poisson).

    ``(A p)_i = 4 p_i - sum of p_j over the four neighbours j of cell i that lie in the mask``; the grid
    spacing is 1 (scaling by ``1/h^2`` changes no condition number). Cells are numbered row by row.

    Args:
        mask: bool tensor ``(n, m)`` from :func:`l_shape_mask` or any other shape.

    Returns:
        ``A``, a symmetric positive definite ``N x N`` torch sparse CSR matrix, float64, on the mask's device.
    """
    mask = _check_mask(mask)
    n, m = mask.shape
    index = torch.full((n, m), -1, dtype=torch.long, device=mask.device)
    cells = mask.nonzero()
    N = len(cells)
    index[cells[:, 0], cells[:, 1]] = torch.arange(N, device=mask.device)
    rows, cols, vals = [torch.arange(N, device=mask.device)], [torch.arange(N, device=mask.device)], [
        torch.full((N,), 4.0, dtype=torch.float64, device=mask.device)]
    for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        i, j = cells[:, 0] + di, cells[:, 1] + dj
        inside = (i >= 0) & (i < n) & (j >= 0) & (j < m)
        k = torch.full((N,), -1, dtype=torch.long, device=mask.device)
        k[inside] = index[i[inside], j[inside]]
        keep = k >= 0
        rows.append(torch.arange(N, device=mask.device)[keep])
        cols.append(k[keep])
        vals.append(torch.full((int(keep.sum()),), -1.0, dtype=torch.float64, device=mask.device))
    A = torch.sparse_coo_tensor(torch.stack([torch.cat(rows), torch.cat(cols)]), torch.cat(vals), (N, N),
                                check_invariants=True)
    with warnings.catch_warnings():  # torch calls its sparse CSR support "beta"; the operations used here are stable
        warnings.simplefilter("ignore", UserWarning)
        return A.coalesce().to_sparse_csr()


def bump_sources(mask: torch.Tensor, *, n_bumps: int = 16, width: float = 3.0,
                 generator: int | torch.Generator = 0) -> torch.Tensor:
    """Sources ``f = B z``: the columns of ``B`` are Gaussian bumps centred on random cells of the mask.

    Column ``k`` is ``exp(-|x - c_k|^2 / (2 width^2))`` over the cells ``x`` of the mask, with ``c_k`` a cell
    drawn uniformly (without replacement) from the mask.

    Args:
        mask: bool tensor ``(n, m)``.
        n_bumps: number of bumps (columns), at most the number of cells.
        width: bump width in grid cells, ``> 0``.
        generator: int seed or ``torch.Generator`` on the mask's device (the bump positions).

    Returns:
        ``B``, float64 tensor of shape ``(N, n_bumps)``.
    """
    mask = _check_mask(mask)
    width = check_positive(width, name="width")
    cells = mask.nonzero().to(torch.float64)
    n_bumps = check_count(n_bumps, name="n_bumps")
    if n_bumps > len(cells):
        raise ValueError(f"n_bumps: at most the {len(cells)} cells of the mask, got {n_bumps}")
    gen = as_generator(generator, device=mask.device)
    centres = cells[torch.randperm(len(cells), generator=gen, device=mask.device)[:n_bumps]]
    dist2 = ((cells[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    return torch.exp(-dist2 / (2 * width ** 2))


def _check_preconditioner(value) -> str | None:
    if value is not None and value != "jacobi":
        raise ValueError(f"preconditioner: expected None or 'jacobi', got {value!r}")
    return value


def _check_matrix(A) -> torch.Tensor:
    if not isinstance(A, torch.Tensor) or A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] == 0:
        raise ValueError("A: expected a square (sparse or dense) torch matrix")
    if A.dtype != torch.float64:
        raise ValueError(f"A: expected float64 (CG runs in double precision), got {A.dtype}")
    values = A.values() if A.layout == torch.sparse_csr else A
    if not bool(torch.isfinite(values).all()):
        raise ValueError("A: contains NaN or infinity")
    return A


def _dense(A: torch.Tensor) -> torch.Tensor:
    return A.to_dense() if A.layout != torch.strided else A


def _diagonal(A: torch.Tensor) -> torch.Tensor:
    if A.layout == torch.sparse_csr:
        crow, col, val = A.crow_indices(), A.col_indices(), A.values()
        row = torch.repeat_interleave(torch.arange(A.shape[0], device=A.device), crow[1:] - crow[:-1])
        d = torch.zeros(A.shape[0], dtype=A.dtype, device=A.device)
        return d.index_add(0, row[row == col], val[row == col])
    return torch.diagonal(_dense(A))


def _finite(x, *, name: str) -> torch.Tensor:
    x = check_float_tensor(x, name=name)
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: contains NaN or infinity")
    return x


def _as_columns(A, b, name="b") -> tuple[torch.Tensor, bool]:
    b = _finite(b, name=name)
    if b.ndim not in (1, 2) or b.shape[0] != A.shape[0]:
        raise ValueError(f"{name}: expected shape ({A.shape[0]},) or ({A.shape[0]}, m), got {tuple(b.shape)}")
    return (b[:, None], True) if b.ndim == 1 else (b, False)


def _start(x0, b: torch.Tensor, vector: bool) -> torch.Tensor:
    """The start as columns like ``b`` (zero when ``x0`` is None), float64."""
    if x0 is None:
        return torch.zeros_like(b)
    x0 = _finite(x0, name="x0")
    if x0.shape != (b[:, 0].shape if vector else b.shape):
        raise ValueError(f"x0: expected the shape of b, got {tuple(x0.shape)}")
    return (x0[:, None] if vector else x0).to(torch.float64).clone()


def cg(A: torch.Tensor, b: torch.Tensor, *, x0: torch.Tensor | None = None, steps: int,
       preconditioner: str | None = None) -> torch.Tensor:
    """``steps`` iterations of (preconditioned) conjugate gradients on ``A x = b``, each column on its own.

    The iteration of Hestenes and Stiefel, in the form ``scipy.sparse.linalg.cg`` uses: ``r = b - A x``,
    ``z = M^{-1} r``, ``p = z + beta p``, ``x += alpha p`` with ``alpha = r.z / p.Ap``, ``beta`` the ratio of
    successive ``r.z``. With ``preconditioner="jacobi"``, ``M = diag(A)``. A column whose residual has
    become exactly zero (``p^T A p = 0``) stays where it is; ``p^T A p < 0`` (``A`` not positive definite)
    raises. This is ``CG_K`` of eq-npsolver-target (Zeng, Zhang et al. 2026, NPSolver, arXiv:2605.25786).

    Args:
        A: symmetric positive definite ``N x N`` matrix, float64 (sparse CSR or dense).
        b: right-hand sides, shape ``(N,)`` or ``(N, m)``; columns are solved independently.
        x0: start, same shape as ``b`` (default zero).
        steps: number of iterations ``>= 0``.
        preconditioner: ``None`` or ``"jacobi"``.

    Returns:
        ``x`` after ``steps`` iterations, shape of ``b``, float64.
    """
    A = _check_matrix(A)
    b, vector = _as_columns(A, b)
    steps = check_count(steps, name="steps", minimum=0)
    preconditioner = _check_preconditioner(preconditioner)
    b = b.to(torch.float64)
    x = _start(x0, b, vector)
    minv = 1.0 / _diagonal(A)[:, None] if preconditioner == "jacobi" else None
    r = b - A @ x
    z = r * minv if minv is not None else r
    p = z
    rz = (r * z).sum(0)
    for _ in range(steps):
        q = A @ p
        pq = (p * q).sum(0)
        if bool((pq < 0).any()):
            raise ValueError("A: not positive definite (a search direction p has p^T A p < 0)")
        alpha = torch.where(pq > 0, rz / torch.where(pq > 0, pq, 1.0), 0.0)
        x = x + alpha * p
        r = r - alpha * q
        z = r * minv if minv is not None else r
        rz_new = (r * z).sum(0)
        beta = torch.where(rz > 0, rz_new / torch.where(rz > 0, rz, 1.0), 0.0)
        p = z + beta * p
        rz = rz_new
    return x[:, 0] if vector else x


def lam_max(A: torch.Tensor) -> float:
    """The largest eigenvalue of the symmetric matrix ``A``: ``2 / quadratic.critical_lr(A)`` (a dense eigensolve).

    The residual loss's stability limit is ``2 / lam_max(A)^2`` (eq-npsolver-residual).
    """
    return 2.0 / quadratic.critical_lr(_dense(_check_matrix(A)))


def richardson(A: torch.Tensor, b: torch.Tensor, *, x0: torch.Tensor | None = None, steps: int,
               omega: float | None = None) -> torch.Tensor:
    """``steps`` Richardson iterations ``x <- x + omega (b - A x)``, the fixed-polynomial stand-in for CG.

    After ``K`` steps from ``x0`` the error is ``(I - omega A)^K (x0 - x*)``, a polynomial in ``A`` that does
    not depend on ``b`` (eq-npsolver-precond; Zeng, Zhang et al. 2026, NPSolver, arXiv:2605.25786).

    Args:
        A: symmetric positive definite matrix, float64.
        b: right-hand sides ``(N,)`` or ``(N, m)``.
        x0: start (default zero).
        steps: ``K >= 0``.
        omega: step, ``> 0`` (default ``1 / lambda_max(A)``).

    Returns:
        ``x`` after ``steps`` iterations, shape of ``b``.
    """
    A = _check_matrix(A)
    b, vector = _as_columns(A, b)
    steps = check_count(steps, name="steps", minimum=0)
    omega = 1.0 / lam_max(A) if omega is None else check_positive(omega, name="omega")
    b = b.to(torch.float64)
    x = _start(x0, b, vector)
    for _ in range(steps):
        x = x + omega * (b - A @ x)
    return x[:, 0] if vector else x


def effective_hessian(A: torch.Tensor, *, K: int, method: str = "richardson") -> torch.Tensor:
    """The effective Hessian ``Q_K(A) = I - (I - omega A)^K`` of the stop-gradient loss (eq-npsolver-precond).

    With ``P = Richardson_K(A, B; start W)`` held fixed, ``W - P = Q_K(A) (W - W*)``: gradient descent on
    ``(1/2) ||W - P||^2`` moves the error by ``(I - lr Q_K(A))`` per step. With ``omega = 1 / lambda_max`` its
    eigenvalues are ``1 - (1 - lambda_i / lambda_max)^K``, all in ``(0, 1]`` (Zeng, Zhang et al. 2026,
    NPSolver, arXiv:2605.25786; CG is nonlinear in its start and has no such fixed matrix).

    Args:
        A: symmetric positive definite matrix, float64.
        K: solver steps, ``>= 1``.
        method: ``"richardson"`` (the one fixed polynomial implemented).

    Returns:
        Dense symmetric ``N x N`` float64 matrix.
    """
    A = _dense(_check_matrix(A))
    K = check_count(K, name="K")
    check_choice(method, ("richardson",), name="method")
    eye = torch.eye(A.shape[0], dtype=A.dtype, device=A.device)
    step = eye - A / lam_max(A)
    return eye - torch.linalg.matrix_power(step, K)


@dataclass(frozen=True)
class SolverRun(Record):
    """What :func:`train_linear_solver` returns (on the host).

    Attributes:
        W: the trained operator, ``(N, m)``.
        error: relative error ``||W_t - W*|| / ||W*||`` at steps ``0 .. steps``, shape ``(steps + 1,)``
            (frozen after a divergence, see :mod:`lessons_lib.run`).
        lr: the learning rate used.
        loss: ``"residual"``, ``"supervised"`` or ``"pcg"``.
        K: solver steps of the target (``pcg`` only; 0 otherwise).
        diverged: bool tensor; ``diverged_at`` the step of divergence or -1.
    """

    W: torch.Tensor
    error: torch.Tensor
    lr: float
    loss: str
    K: int
    diverged: torch.Tensor
    diverged_at: torch.Tensor


def default_lr(A: torch.Tensor, loss: str) -> float:
    """The default learning rate: ``1 / lambda_max(A)^2`` for the residual loss, 1 for the other two.

    Half of each loss's stability limit ``2 / lambda_max`` of its Hessian (``A^T A``, or ``I`` in ``W``).
    """
    loss = check_choice(loss, LOSSES, name="loss")
    return 1.0 / lam_max(A) ** 2 if loss == "residual" else 1.0


def train_linear_solver(A: torch.Tensor, B: torch.Tensor, *, loss: str = "pcg", K: int = 10, steps: int = 1000,
                        lr: float | None = None, solver: str = "cg", preconditioner: str | None = None,
                        batch: int | None = None, generator: int | torch.Generator = 0) -> SolverRun:
    """Train the linear solver ``p = W z`` from ``W = 0`` by gradient descent on one of three losses.

    ``residual``: ``(1/2) ||A W - B||^2``, gradient ``A^T (A W - B)``. ``supervised``: ``(1/2) ||W - W*||^2``
    with the labels ``W* = A^{-1} B``. ``pcg``: ``(1/2) ||W - P||^2`` with ``P = CG_K(A, B; start W)`` computed
    without gradient (eq-npsolver-target), gradient ``W - P``; ``solver="richardson"`` replaces CG by
    Richardson and makes the gradient ``Q_K(A) (W - W*)`` exactly (eq-npsolver-precond). With ``batch=None`` the
    residual, supervised and Richardson losses are the exact expectation over ``z ~ N(0, I)`` of their per-sample
    forms (they are linear in the source); the CG target is not, since CG's step sizes depend on the right-hand
    side: it is then CG run on each basis source (column of ``B``), a design choice. With ``batch = m`` every
    step draws ``m`` sources ``Z`` from ``generator`` and uses ``(1/m)`` times the loss on ``W Z`` against ``B Z``.
    Reference: Zeng, Zhang et al. (2026), NPSolver, arXiv:2605.25786.

    Args:
        A: the Poisson matrix, float64 ``N x N``.
        B: source basis ``(N, m)``.
        loss: ``"residual"``, ``"supervised"`` or ``"pcg"``.
        K: solver steps inside the target, ``>= 1`` (``pcg`` only).
        steps: gradient steps ``>= 0``.
        lr: learning rate ``> 0`` (default :func:`default_lr`).
        solver: ``"cg"`` or ``"richardson"`` (``omega = 1 / lambda_max``), for the ``pcg`` target.
        preconditioner: ``None`` or ``"jacobi"`` for the CG target.
        batch: ``None`` (exact expectation) or the number of sources drawn per step.
        generator: int seed or ``torch.Generator`` (used only with ``batch``).

    Returns:
        A :class:`SolverRun`; the run is on :func:`lessons_lib.run.run` and diverges like every run there.
    """
    A = _check_matrix(A)
    B = _finite(B, name="B")
    if B.ndim != 2 or B.shape[0] != A.shape[0]:
        raise ValueError(f"B: expected shape ({A.shape[0]}, m), got {tuple(B.shape)}")
    B = B.to(torch.float64)
    loss = check_choice(loss, LOSSES, name="loss")
    K = check_count(K, name="K")
    steps = check_count(steps, name="steps", minimum=0)
    solver = check_choice(solver, SOLVERS, name="solver")
    preconditioner = _check_preconditioner(preconditioner)
    lr = default_lr(A, loss) if lr is None else check_positive(lr, name="lr")
    if batch is not None:
        batch = check_count(batch, name="batch")
    gen = as_generator(generator, device=A.device)
    W_star = torch.linalg.solve(_dense(A), B)
    norm_star = torch.linalg.norm(W_star)
    omega = 1.0 / lam_max(A) if loss == "pcg" and solver == "richardson" else None

    def target(W, rhs):
        with torch.no_grad():  # stop-gradient: P is a constant of the loss
            if solver == "cg":
                return cg(A, rhs, x0=W, steps=K, preconditioner=preconditioner)
            return richardson(A, rhs, x0=W, steps=K, omega=omega)

    def gradient(W: torch.Tensor) -> torch.Tensor:
        if batch is None:
            if loss == "residual":
                return A @ (A @ W - B)
            if loss == "supervised":
                return W - W_star
            return W - target(W, B)
        Z = torch.randn(B.shape[1], batch, generator=gen, dtype=torch.float64, device=A.device)
        P, F = W @ Z, B @ Z
        if loss == "residual":
            E = A @ (A @ P - F)
        elif loss == "supervised":
            E = P - W_star @ Z
        else:
            E = P - target(P, F)
        return E @ Z.T / batch

    result = run(lambda W, t, step_lr: W - step_lr * gradient(W), torch.zeros_like(B), steps=steps, lr=lr,
                 record=lambda W, t: {"error": torch.linalg.norm(W - W_star) / norm_star})
    _, history = result.on_grid(steps)  # after a divergence the frozen error is repeated to the last step
    return SolverRun(W=result.state, error=history["error"], lr=float(lr), loss=loss,
                     K=K if loss == "pcg" else 0, diverged=result.diverged, diverged_at=result.diverged_at)


def mode_errors(A: torch.Tensor, B: torch.Tensor, W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The error of ``W`` mode by mode: along each eigenvector ``u_i`` of ``A``, ``||u_i^T (W - W*)|| / ||u_i^T W*||``.

    For GD on the residual loss the component along ``u_i`` shrinks by ``(1 - lr lambda_i^2)`` per step, so the
    modes with small ``lambda_i`` (smooth, low frequency) stay where they started (eq-npsolver-residual).

    Args:
        A: symmetric positive definite matrix, float64.
        B: source basis ``(N, m)``.
        W: an operator ``(N, m)``.

    Returns:
        ``(lambdas, errors)``: the eigenvalues in ascending order and the relative error along each, both ``(N,)``.
    """
    A = _dense(_check_matrix(A))
    B, W = _finite(B, name="B"), _finite(W, name="W")
    if B.ndim != 2 or B.shape[0] != A.shape[0]:
        raise ValueError(f"B: expected shape ({A.shape[0]}, m), got {tuple(B.shape)}")
    if W.shape != B.shape:
        raise ValueError(f"W: expected the shape of B {tuple(B.shape)}, got {tuple(W.shape)}")
    lam, U = torch.linalg.eigh(A)
    W_star = torch.linalg.solve(A, B.to(A))
    star = torch.linalg.norm(U.T @ W_star, dim=1)
    err = torch.linalg.norm(U.T @ (W.to(A) - W_star), dim=1)
    return lam, err / torch.clamp(star, min=torch.finfo(A.dtype).tiny)


def condition_number(A: torch.Tensor) -> float:
    """``kappa(A) = lambda_max / lambda_min`` of a symmetric positive definite matrix (dense eigensolve)."""
    lam = torch.linalg.eigvalsh(_dense(_check_matrix(A)))
    if float(lam[0]) <= 0:
        raise ValueError("A: not positive definite")
    return float(lam[-1] / lam[0])


__all__ = ["l_shape_mask", "poisson_matrix", "bump_sources", "cg", "richardson", "lam_max", "effective_hessian",
           "SolverRun", "default_lr", "train_linear_solver", "mode_errors", "condition_number"]
