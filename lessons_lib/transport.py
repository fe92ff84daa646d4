"""Entropic optimal transport: Sinkhorn as block ascent on a concave dual, and Sinkhorn–Newton–Sparse.

The dual potential of entropic optimal transport (eq-transport-dual),

    f(x, y) = <r, x> + <c, y> - (1/eta) sum_ij exp(eta (x_i + y_j - C_ij) - 1),

is concave in the dual variables ``x`` (one per source point) and ``y`` (one per target point). Its
maximiser gives the transport plan ``P_ij = exp(eta (x_i + y_j - C_ij) - 1)`` (eq-transport-plan),
whose row and column sums are the marginals ``r`` and ``c``. Sinkhorn maximises ``f`` exactly in
``x``, then in ``y`` (eq-transport-sinkhorn); Sinkhorn–Newton–Sparse (SNS) runs a few of those sweeps
and then takes Newton steps with the Hessian (eq-transport-hessian) whose plan block keeps only the
largest entries of ``P``, solved by Jacobi-preconditioned conjugate gradients with an Armijo
line search (eq-transport-newton).

Everything is computed in the log domain: the exponent ``eta (x_i + y_j - C_ij) - 1`` is formed
first and exponentiated once, row and column updates use log-sum-exp, and the line search measures
the increase of ``f`` with ``expm1`` (no cancellation near the optimum) and refuses a trial step
whose exponents would overflow float64. Both solvers are step functions run by
:func:`lessons_lib.run.run`.

References:
    Tang, Shavlovsky, Rahmanian, Tardini, Thekumparampil, Xiao & Ying (2024), *Accelerating Sinkhorn
    Algorithm with Sparse Newton Iterations*, ICLR 2024, arXiv:2401.12253.
    Cuturi (2013), *Sinkhorn Distances: Lightspeed Computation of Optimal Transport*, arXiv:1306.0895.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .backend import Record, as_tensor, check_count, check_flag, check_positive, default_device
from .run import run

#: Exponents above this are refused by the line search: exp(700) is about 1e304, below float64's 1.8e308.
_MAX_EXPONENT = 700.0
_ARMIJO = 1e-4          # sufficient-increase constant of the Armijo rule
_HALVINGS = 40          # the line search gives up (takes no step) after this many halvings
_CG_TOL = 1e-10         # relative residual at which conjugate gradients stops


@dataclass(frozen=True)
class OTProblem(Record):
    """A discrete transport problem on a 1-D grid.

    Attributes:
        t: grid points, shape ``(n,)``.
        r: source marginal, shape ``(n,)``, positive, sums to 1.
        c: target marginal, shape ``(n,)``, positive, sums to 1.
        C: cost matrix ``(t_i - t_j)^2 / max``, shape ``(n, n)``, entries in ``[0, 1]``.
    """

    t: torch.Tensor
    r: torch.Tensor
    c: torch.Tensor
    C: torch.Tensor


@dataclass(frozen=True)
class OTRun(Record):
    """What :func:`sinkhorn` and :func:`sns` return (on the host).

    Attributes:
        x: final row potential, shape ``(n,)``.
        y: final column potential, shape ``(m,)``.
        plan: the transport plan of the final potentials, shape ``(n, m)``.
        errors: marginal l1 error per iteration, shape ``(K + 1,)`` (index 0 = start).
        potential: the dual potential ``f`` per iteration, shape ``(K + 1,)``.
        step_sizes: the step taken at each iteration, shape ``(K + 1,)`` (0 at index 0, 1 for a Sinkhorn
            sweep, the accepted Newton step size afterwards, 0 where the run had already converged).
        kept_mass: fraction of the plan's mass kept by the sparsified Hessian at the switch to Newton
            (1.0 for dense Newton, NaN for plain Sinkhorn).
        iterations: iterations (Sinkhorn sweeps plus Newton steps) until the error first fell below
            ``tol``, or all of them if it never did.
        converged: whether the error fell below ``tol``.
        sinkhorn_steps: how many of the iterations were Sinkhorn sweeps.
        diverged: whether the iterates left every bound (a fixed Newton step that is too long).
        diverged_at: the iteration at which they did, ``-1`` if never.
    """

    x: torch.Tensor
    y: torch.Tensor
    plan: torch.Tensor
    errors: torch.Tensor
    potential: torch.Tensor
    step_sizes: torch.Tensor
    kept_mass: float
    iterations: int
    converged: bool
    sinkhorn_steps: int
    diverged: bool
    diverged_at: int


def _gaussian(t: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    return torch.exp(-0.5 * ((t - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))


def ot_problem_1d(n: int = 200, *, device=None) -> OTProblem:
    """The chapter's transport problem: a bimodal density moved onto a unimodal one on ``[0, 1]``.

    ``r`` is proportional to ``N(0.25, 0.07^2) + 0.8 N(0.7, 0.1^2) + 1e-3`` and ``c`` to
    ``N(0.55, 0.15^2) + 1e-3`` (densities evaluated at ``n`` equally spaced points, then normalised);
    the cost is the squared distance divided by its maximum.

    Args:
        n: number of grid points, ``>= 2``.
        device: where the tensors live (default: :func:`lessons_lib.backend.default_device`).

    Returns:
        An :class:`OTProblem` (float64).
    """
    n = check_count(n, name="n", minimum=2)
    t = torch.linspace(0.0, 1.0, n, dtype=torch.float64, device=device if device is not None else default_device())
    r = _gaussian(t, 0.25, 0.07) + 0.8 * _gaussian(t, 0.7, 0.1) + 1e-3
    c = _gaussian(t, 0.55, 0.15) + 1e-3
    C = (t[:, None] - t[None, :]) ** 2
    return OTProblem(t, r / r.sum(), c / c.sum(), C / C.max())


def _problem(C, r, c, eta) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Validate a transport problem: a real cost matrix and two positive marginals of equal mass."""
    C = as_tensor(C, name="C")
    if C.ndim != 2 or C.numel() == 0:
        raise ValueError(f"C: expected a non-empty matrix of shape (n, m), got shape {tuple(C.shape)}")
    r = as_tensor(r, name="r", device=C.device)
    c = as_tensor(c, name="c", device=C.device)
    for name, v, size in (("r", r, C.shape[0]), ("c", c, C.shape[1])):
        if v.shape != (size,):
            raise ValueError(f"{name}: expected shape ({size},) to match C of shape {tuple(C.shape)}, "
                             f"got {tuple(v.shape)}")
        if not bool((v > 0).all()):
            raise ValueError(f"{name}: every marginal entry must be positive (the log domain takes log {name})")
    if abs(float(r.sum()) - float(c.sum())) > 1e-9 * float(r.sum()):
        raise ValueError(f"c: total mass {float(c.sum()):.12g} differs from r's {float(r.sum()):.12g}")
    return C, r, c, check_positive(eta, name="eta")


def _duals(x, y, C) -> tuple[torch.Tensor, torch.Tensor]:
    x = as_tensor(x, name="x", device=C.device)
    y = as_tensor(y, name="y", device=C.device)
    if x.shape != (C.shape[0],):
        raise ValueError(f"x: expected shape ({C.shape[0]},) to match C, got {tuple(x.shape)}")
    if y.shape != (C.shape[1],):
        raise ValueError(f"y: expected shape ({C.shape[1]},) to match C, got {tuple(y.shape)}")
    return x, y


def _log_plan(x, y, C, eta) -> torch.Tensor:
    return eta * (x[:, None] + y[None, :] - C) - 1.0


def transport_plan(x, y, C, *, eta: float) -> torch.Tensor:
    """The plan of dual potentials ``(x, y)``: ``P_ij = exp(eta (x_i + y_j - C_ij) - 1)`` (eq-transport-plan).

    Args:
        x: row potential, shape ``(n,)``.
        y: column potential, shape ``(m,)``.
        C: cost matrix, shape ``(n, m)``.
        eta: regularisation strength ``> 0`` (POT's and regot's ``reg`` is ``1 / eta``).

    Returns:
        ``P``, shape ``(n, m)``. Adding ``s`` to ``x`` and subtracting it from ``y`` leaves it unchanged.
    """
    C = as_tensor(C, name="C")
    if C.ndim != 2:
        raise ValueError(f"C: expected a matrix of shape (n, m), got shape {tuple(C.shape)}")
    x, y = _duals(x, y, C)
    return torch.exp(_log_plan(x, y, C, check_positive(eta, name="eta")))


def dual_potential(x, y, C, r, c, *, eta: float) -> float:
    """The concave dual ``f(x, y) = <r, x> + <c, y> - (1/eta) sum_ij P_ij`` (eq-transport-dual).

    Args:
        x, y: dual potentials, shapes ``(n,)`` and ``(m,)``.
        C: cost matrix, shape ``(n, m)``.
        r, c: positive marginals of equal mass, shapes ``(n,)`` and ``(m,)``.
        eta: regularisation strength ``> 0``.

    Returns:
        ``f`` as a float. Its gradient is ``(r - P 1, c - P^T 1)``; its maximum is at the plan with
        marginals ``r`` and ``c``.
    """
    C, r, c, eta = _problem(C, r, c, eta)
    x, y = _duals(x, y, C)
    return float(r @ x + c @ y - torch.exp(_log_plan(x, y, C, eta)).sum() / eta)


def marginal_error(P, r, c) -> float:
    """The l1 marginal error ``||P 1 - r||_1 + ||P^T 1 - c||_1`` of a plan ``P`` (shape ``(n, m)``)."""
    P = as_tensor(P, name="P")
    if P.ndim != 2:
        raise ValueError(f"P: expected a matrix of shape (n, m), got shape {tuple(P.shape)}")
    r, c = as_tensor(r, name="r", device=P.device), as_tensor(c, name="c", device=P.device)
    if r.shape != (P.shape[0],) or c.shape != (P.shape[1],):
        raise ValueError(f"r: expected marginals of shapes ({P.shape[0]},) and ({P.shape[1]},), got "
                         f"{tuple(r.shape)} and {tuple(c.shape)}")
    return float((P.sum(1) - r).abs().sum() + (P.sum(0) - c).abs().sum())


def _keep(P: torch.Tensor, density: float) -> torch.Tensor:
    k = max(1, round(density * P.numel()))
    if k >= P.numel():
        return P
    idx = torch.topk(P.reshape(-1), k).indices
    return torch.zeros_like(P).reshape(-1).index_copy(0, idx, P.reshape(-1)[idx]).reshape(P.shape)


def sparsify(P, *, density: float) -> torch.Tensor:
    """Keep exactly ``round(density * n * m)`` largest entries of ``P`` and zero the rest.

    This is the sparsification of the plan block of the Hessian (eq-transport-hessian); the diagonal
    blocks ``P 1`` and ``P^T 1`` are kept whole (each is at least as large as any entry of its row or
    column, so a rule that keeps the Hessian's largest entries keeps them first).

    Args:
        P: a plan, shape ``(n, m)``, entries ``>= 0``.
        density: the fraction ``rho`` of entries kept, in ``(0, 1]`` (at least one entry is kept).

    Returns:
        A dense tensor of the shape of ``P`` with the others set to zero (ties broken by position).
    """
    P = as_tensor(P, name="P")
    if P.ndim != 2 or P.numel() == 0:
        raise ValueError(f"P: expected a non-empty matrix of shape (n, m), got shape {tuple(P.shape)}")
    if bool((P < 0).any()):
        raise ValueError("P: a plan has no negative entries")
    density = check_positive(density, name="density")
    if density > 1:
        raise ValueError(f"density: expected a fraction in (0, 1], got {density}")
    return _keep(P, density)


def _measure(x, y, C, r, c, eta):
    """(plan, error, potential) of a state, each computed from one exponential."""
    P = torch.exp(_log_plan(x, y, C, eta))
    err = (P.sum(1) - r).abs().sum() + (P.sum(0) - c).abs().sum()
    return P, err, r @ x + c @ y - P.sum() / eta


def _sweep(x, y, C, r, c, eta):
    """One Sinkhorn sweep in the log domain (eq-transport-sinkhorn): the exact maximiser in x, then in y."""
    x = (torch.log(r) - torch.logsumexp(eta * (y[None, :] - C) - 1.0, dim=1)) / eta
    y = (torch.log(c) - torch.logsumexp(eta * (x[:, None] - C) - 1.0, dim=0)) / eta
    return x, y


def _pcg(P, Ps, g):
    """Solve ``M d = g`` with ``M = [[diag(P1), Ps], [Ps^T, diag(P^T 1)]]`` by Jacobi-preconditioned CG."""
    n = P.shape[0]
    diag = torch.cat([P.sum(1), P.sum(0)])

    def matvec(v):
        return torch.cat([diag[:n] * v[:n] + Ps @ v[n:], Ps.T @ v[:n] + diag[n:] * v[n:]])

    d = torch.zeros_like(g)
    res = g.clone()
    z = res / diag
    p, rz, limit = z.clone(), res @ z, _CG_TOL * torch.linalg.vector_norm(g)
    for _ in range(2 * len(g)):
        Mp = matvec(p)
        a = rz / (p @ Mp)
        d, res = d + a * p, res - a * Mp
        if torch.linalg.vector_norm(res) <= limit:
            break
        z = res / diag
        rz, rz_old = res @ z, rz
        p = z + (rz / rz_old) * p
    return d


def _newton_direction(x, y, C, r, c, eta, density):
    """The (sparse) Newton direction of eq-transport-newton and the slope ``g . d`` along it."""
    P = torch.exp(_log_plan(x, y, C, eta))
    g = torch.cat([r - P.sum(1), c - P.sum(0)])
    d = _pcg(P, _keep(P, density), g) / eta
    return P, d, g @ d


def _armijo(P, d, x, eta, start, slope):
    """The largest ``start / 2^k`` with ``f(z + a d) - f(z) >= 1e-4 a g.d``; 0 if none is found.

    The increase is ``a g.d - (1/eta) sum_ij P_ij (expm1(E_ij) - E_ij)`` with ``E_ij = eta a (dx_i + dy_j)``:
    exact, free of the gauge (a multiple of ``(1, -1)`` in ``d`` changes no ``E_ij``) and accurate even when
    it is far below ``f``'s rounding error. A trial whose exponents pass 700 is refused.
    """
    n = len(x)
    S = d[:n, None] + d[None, n:]
    log_p = torch.log(P)
    a = start
    for _ in range(_HALVINGS):
        E = eta * a * S
        if float((log_p + E).max()) < _MAX_EXPONENT:
            gain = a * slope - (P * (torch.expm1(E) - E)).sum() / eta
            if bool(gain >= _ARMIJO * a * slope):
                return a
        a = a / 2
    return 0.0


def _result(out, C, r, c, eta, tol, sinkhorn_steps, kept_mass, extra=None) -> OTRun:
    h = out.history
    errors, potential, sizes = h["error"], h["potential"], h["step_size"]
    if extra is not None:  # the Sinkhorn stage before the Newton stage
        errors, potential, sizes = (torch.cat([extra[k], h[k][1:]]) for k in ("error", "potential", "step_size"))
    x, y = out.state[0], out.state[1]
    below = torch.nonzero(errors < tol)
    converged = len(below) > 0
    diverged = bool(out.diverged)
    offset = 0 if extra is None else len(extra["error"]) - 1
    return OTRun(x, y, torch.exp(_log_plan(x, y, C, eta)), errors, potential, sizes, kept_mass,
                 int(below[0]) if converged else len(errors) - 1, converged, sinkhorn_steps, diverged,
                 int(out.diverged_at) + offset if diverged else -1)


def _record(state, t):
    return {"error": state[2], "potential": state[3], "step_size": state[4]}


def _sinkhorn_run(C, r, c, eta, steps, tol, x0=None, y0=None):
    zero = torch.zeros((), dtype=C.dtype, device=C.device)
    x = torch.zeros(C.shape[0], dtype=C.dtype, device=C.device) if x0 is None else x0
    y = torch.zeros(C.shape[1], dtype=C.dtype, device=C.device) if y0 is None else y0
    _, err, pot = _measure(x, y, C, r, c, eta)

    def step(state, t, lr):
        x, y, err, _, _ = state
        if float(err) < tol:  # converged: the state stays where it is
            return (*state[:4], zero)
        x, y = _sweep(x, y, C, r, c, eta)
        _, err, pot = _measure(x, y, C, r, c, eta)
        return x, y, err, pot, torch.ones_like(zero)

    return run(step, (x, y, err, pot, zero), steps=steps, record=_record, blowup=1e300)


def sinkhorn(C, r, c, *, eta: float, steps: int = 2000, tol: float = 1e-8) -> OTRun:
    """Log-domain Sinkhorn: exact block ascent on the dual, first in ``x``, then in ``y`` (eq-transport-sinkhorn).

    ``x_i <- (log r_i - logsumexp_j(eta (y_j - C_ij) - 1)) / eta``, then the same for ``y`` with the new
    ``x``. After a sweep the column marginals are exact and the error is the row marginals'. Sweeps stop
    changing the state once the error is below ``tol``.

    Args:
        C: cost matrix, shape ``(n, m)``.
        r, c: positive marginals of equal mass, shapes ``(n,)`` and ``(m,)``.
        eta: regularisation strength ``> 0`` (``reg = 1 / eta`` in POT and regot).
        steps: the most sweeps, ``>= 0``.
        tol: marginal l1 error at which to stop, ``>= 0``.

    Returns:
        An :class:`OTRun` starting from ``x = y = 0``.

    References:
        Cuturi (2013), arXiv:1306.0895; Tang et al. (2024), arXiv:2401.12253, section 2.
    """
    C, r, c, eta = _problem(C, r, c, eta)
    steps = check_count(steps, name="steps", minimum=0)
    tol = check_positive(tol, name="tol", allow_zero=True)
    out = _sinkhorn_run(C, r, c, eta, steps, tol)
    return _result(out, C, r, c, eta, tol, min(steps, len(out.history["error"]) - 1), float("nan"))


def sns(C, r, c, *, eta: float, sinkhorn_steps: int = 20, density: float = 1.0, steps: int = 200,
        tol: float = 1e-8, step: float = 1.0, line_search: bool = True) -> OTRun:
    """Sinkhorn–Newton–Sparse: ``sinkhorn_steps`` Sinkhorn sweeps, then sparse Newton steps (eq-transport-newton).

    Each Newton step solves ``M d = g / eta`` with ``g = (r - P 1, c - P^T 1)`` the gradient of the dual and
    ``M = [[diag(P 1), P_s], [P_s^T, diag(P^T 1)]]`` (``-eta M`` is the Hessian of eq-transport-hessian with
    the plan block ``P_s`` = :func:`sparsify` ``(P, density=density)``), by conjugate gradients
    preconditioned with ``M``'s diagonal ``D``. ``M`` is singular along ``(1, -1)`` (the gauge ``x + s, y - s``)
    but ``g`` is orthogonal to that direction, so the system is consistent; CG started at zero returns the
    solution that is ``D``-orthogonal to the gauge (not the one with no gauge component), and any gauge
    component leaves the plan, and so the step, unchanged. The step is ``step`` halved until Armijo's rule
    holds (``line_search=True``) or ``step`` itself.

    Args:
        C: cost matrix, shape ``(n, m)``.
        r, c: positive marginals of equal mass, shapes ``(n,)`` and ``(m,)``.
        eta: regularisation strength ``> 0``.
        sinkhorn_steps: Sinkhorn sweeps before the switch, ``N_1 >= 0``.
        density: fraction ``rho`` of the plan's entries kept in the Hessian, in ``(0, 1]``.
        steps: the most Newton steps, ``>= 0``.
        tol: marginal l1 error at which to stop, ``>= 0``.
        step: the (first trial) Newton step size, ``> 0``.
        line_search: whether to backtrack (Armijo); without it a long ``step`` can diverge.

    Returns:
        An :class:`OTRun` over both stages (index 0 = the start ``x = y = 0``); ``iterations`` counts
        Sinkhorn sweeps and Newton steps together.

    References:
        Tang, Shavlovsky, Rahmanian, Tardini, Thekumparampil, Xiao & Ying (2024), *Accelerating Sinkhorn
        Algorithm with Sparse Newton Iterations*, arXiv:2401.12253, Algorithm 1.
    """
    C, r, c, eta = _problem(C, r, c, eta)
    n1 = check_count(sinkhorn_steps, name="sinkhorn_steps", minimum=0)
    density = check_positive(density, name="density")
    if density > 1:
        raise ValueError(f"density: expected a fraction in (0, 1], got {density}")
    steps = check_count(steps, name="steps", minimum=0)
    tol = check_positive(tol, name="tol", allow_zero=True)
    step = check_positive(step, name="step")
    line_search = check_flag(line_search, name="line_search")
    first = _sinkhorn_run(C, r, c, eta, n1, tol)
    x, y, err, pot, _ = first.state
    kept = _keep(torch.exp(_log_plan(x, y, C, eta)), density)
    kept_mass = float(kept.sum() / torch.exp(_log_plan(x, y, C, eta)).sum())

    def newton(state, t, lr):
        x, y, err, pot, _ = state
        if float(err) < tol:
            return (*state[:4], torch.zeros_like(err))
        P, d, slope = _newton_direction(x, y, C, r, c, eta, density)
        a = _armijo(P, d, x, eta, lr, float(slope)) if line_search else lr
        x, y = x + a * d[:len(x)], y + a * d[len(x):]
        _, err, pot = _measure(x, y, C, r, c, eta)
        return x, y, err, pot, torch.full_like(err, a)

    # the sweeps in the first stage never leave any ball; the radius of the Newton stage is 1e6 times
    # the size of its start, so only a step that throws the potentials far away counts as diverged
    out = run(newton, first.state, steps=steps, lr=step, record=_record, blowup=1e6)
    return _result(out, C, r, c, eta, tol, len(first.history["error"]) - 1, kept_mass, extra=first.history)
