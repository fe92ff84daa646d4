"""Discretisation drift: the continuous-time flows that gradient descent really follows.

Gradient descent ``theta_{n+1} = theta_n - h g(theta_n)`` (``g = grad E``, ``H = grad^2 E``) is
not the negative gradient flow (NGF) ``theta' = -g`` (eq-drift-ngf): after a fixed time ``T = N h``
the two differ by ``O(h)``, the *discretisation drift*. Backward error analysis gives flows that
follow GD more closely:

* the first-order modified flow, implicit gradient regularisation (IGR),
  ``theta' = -g - (h/2) H g``, the gradient flow of ``E + (h/4) ||g||^2`` (eq-drift-igr), with
  ``O(h^2)`` global error;
* the second-order modified flow,
  ``theta' = -[g + (h/2) H g + h^2 ((1/3) H^2 g + (1/12) D^3E[g, g])]`` (eq-drift-mf2), with ``O(h^3)``
  global error;
* the principal flow, ``theta' = sum_i [log(1 - h lambda_i) / (h lambda_i)] (g . u_i) u_i`` with
  ``(lambda_i, u_i)`` the eigenpairs of ``H(theta)`` (eq-drift-pf-general): every term of the form
  ``h^k H^k g`` of the modified-flow series, summed; it drops the terms with third and higher
  derivatives, the first of which is ``-(h^2/12) D^3E[g, g]`` (added back with ``correction=True``).
  On a quadratic it equals GD at every integer time (eq-drift-principal); it is complex when some
  ``h lambda_i > 1``.

Flows are integrated with SciPy's DOP853 (8th-order Runge-Kutta, rtol 1e-10, atol 1e-12) on float64
copies of the parameters; vector fields come from :mod:`torch.func` through
:mod:`lessons_lib.curvature`.

References:
    Rosca (2023), On discretisation drift and smoothness regularisation in neural network training,
    PhD thesis, arXiv:2310.14036.
    Barrett & Dherin (2021), Implicit Gradient Regularization, ICLR, arXiv:2009.11162.
    Rosca, Wu, Qin & Dherin (2023), On a continuous time model of gradient descent dynamics and
    instability in deep learning, TMLR, arXiv:2302.01952.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from scipy.integrate import DOP853
from torch.func import grad, vjp

from . import curvature, measure, quadratic
from .backend import Record, as_tensor, check_callable, check_count, check_float_tensor, check_positive, check_real
from .descent import Trajectory, check_lr, gd, iterate

LossFn = Callable[[torch.Tensor], torch.Tensor]


def _check_times(times) -> np.ndarray:
    t = as_tensor(times, name="times", device="cpu").numpy().ravel()
    if t.size == 0 or not np.all(np.isfinite(t)) or t[0] < 0 or np.any(np.diff(t) < 0):
        raise ValueError("times: expected a non-empty, non-decreasing sequence of finite times >= 0")
    return t


@dataclass(frozen=True)
class Flow(Trajectory):
    """A :class:`~lessons_lib.descent.Trajectory` of an integrated flow, with why the integration ended.

    Attributes:
        status: ``"completed"`` (every time reached), ``"left the ball"`` (``||theta||`` exceeded the
            blow-up radius: ``diverged``), ``"not finite"`` (the field stopped being finite, or the
            integrator's step size collapsed: ``diverged``), ``"budget"`` (``max_evals``
            evaluations of the field were spent first, as on a very stiff flow; not ``diverged``), or
            ``"complex"`` (:func:`principal_flow` only: the field turned complex, some
            ``h lambda_i > 1`` with the gradient along ``u_i``; not ``diverged``).
        t_end: the last time the integrator reached.

    A flow is integrated between the requested times, not stepped, so where it diverged its rows end
    at the last requested time it reached inside the ball and ``diverged_at`` is the index of the first
    requested time it did not reach (``len(params)``); a stepped :class:`Trajectory` instead keeps the
    first iterate outside the ball as its last row (see :mod:`lessons_lib.run`).
    """

    status: str = "completed"
    t_end: float = 0.0


class _Budget(Exception):
    pass


class _Stop(Exception):
    """Raised by a vector field to end the integration with ``status`` (not a divergence)."""

    def __init__(self, status: str):
        super().__init__(status)
        self.status = status


def _integrate(field: Callable[[torch.Tensor], torch.Tensor], loss: LossFn, theta0, times, lr: float,
               blowup: float, rtol: float, max_evals: int) -> Flow:
    check_callable(loss, name="loss")
    x0 = as_tensor(theta0, name="theta0")
    if x0.ndim != 1:
        raise ValueError(f"theta0: expected a flat tensor of shape (n,), got {tuple(x0.shape)}")
    t = _check_times(times)
    rtol = check_positive(rtol, name="rtol")
    max_evals = check_count(max_evals, name="max_evals")
    radius = blowup * max(1.0, float(x0.norm()))
    evals = [0]

    def rhs(_, y):
        evals[0] += 1
        if evals[0] > max_evals:
            raise _Budget
        return field(torch.from_numpy(y)).detach().numpy()

    def inside(y):
        return bool(np.all(np.isfinite(y))) and float(np.linalg.norm(y)) <= radius

    y0 = x0.detach().cpu().numpy()
    try:
        first = rhs(0.0, y0)
    except _Stop as stop:
        raise ValueError(f"theta0: the flow cannot start there ({stop.status})") from None
    if not np.all(np.isfinite(first)):  # the integrator's first step would be NaN and never end
        raise ValueError("theta0: the flow's vector field is not finite there")
    rows, status, t_end = [y0] * int(np.sum(t <= 0)), "completed", 0.0
    solver = None
    while len(rows) < len(t) and status == "completed":
        try:
            with np.errstate(over="ignore", invalid="ignore"):  # a blow-up is reported in the record
                solver = solver or DOP853(rhs, 0.0, y0, float(t[-1]), rtol=rtol, atol=1e-12)
                solver.step()
                if solver.status == "failed":  # the step size collapsed: the field stopped being finite
                    status = "not finite"
                    break
                dense = solver.dense_output()
        except _Budget:
            status = "budget"
            break
        except _Stop as stop:
            status = stop.status
            break
        t_end, y = solver.t, solver.y
        while len(rows) < len(t) and t[len(rows)] <= t_end:
            y = dense(t[len(rows)])
            if not inside(y):
                break
            rows.append(y)
        if not (inside(y) and inside(solver.y)):
            status = "left the ball" if np.all(np.isfinite(y)) and np.all(np.isfinite(solver.y)) else "not finite"
    params = torch.from_numpy(np.array(rows).reshape(len(rows), len(y0))).to(x0)
    losses = torch.stack([loss(p) for p in params]) if len(params) else params.new_zeros(0)
    diverged = status in ("left the ball", "not finite")
    return Flow(params, losses, lr, diverged, len(params) if diverged else None, status, float(t_end))


def gradient_flow(loss: LossFn, theta0, *, times, blowup: float = 1e6, rtol: float = 1e-10,
                  max_evals: int = 5000) -> Flow:
    """The negative gradient flow ``theta' = -grad E(theta)`` (eq-drift-ngf) at the given ``times``.

    Args:
        loss: maps a flat parameter tensor of shape ``(n,)`` to a scalar.
        theta0: start, shape ``(n,)``.
        times: non-decreasing times ``>= 0``; GD step ``k`` with rate ``h`` corresponds to ``t = k h``.
        blowup: integration stops (``diverged=True``) if ``||theta||`` exceeds this times
            ``max(1, ||theta0||)``, or if the integrator's step size collapses (the field stops being
            finite); the rows then end at the last time reached and ``diverged_at`` is their count.
        rtol: relative tolerance of the integrator (1e-10 keeps its error far below the drift; a
            figure can use 1e-7).
        max_evals: budget of evaluations of the vector field (the chapter's flows use at most about
            600). A flow too stiff to finish within it, such as a modified flow at a huge ``lr``,
            stops with ``status="budget"``; its rows end at the last time reached.

    Returns:
        A :class:`Flow` with one row per time reached (``lr`` is 0); ``status`` says why it ended.

    Raises:
        ValueError: naming ``theta0`` if the vector field is not finite there.
    """
    g = grad(loss)
    return _integrate(lambda x: -g(x), loss, theta0, times, 0.0, check_positive(blowup, name="blowup"), rtol,
                      max_evals)


def modified_flow_field(loss: LossFn, theta: torch.Tensor, *, lr: float, order: int = 1) -> torch.Tensor:
    """The right-hand side of the modified flow of GD with step ``h = lr``.

    ``order=1`` (eq-drift-igr): ``-(g + (h/2) H g)``. ``order=2`` (eq-drift-mf2): adds
    ``-h^2 ((1/3) H^2 g + (1/12) D^3E[g, g])``, where ``D^3E[g, g] = grad_theta (g_s^T H(theta) g_s)``
    with ``g_s`` held fixed.
    """
    h = check_lr(lr)
    check_callable(loss, name="loss")
    check_float_tensor(theta, name="theta")
    if check_count(order, name="order") not in (1, 2):
        raise ValueError(f"order: expected 1 or 2, got {order!r}")
    g, pullback = vjp(grad(loss), theta)  # linearise the gradient map once: u -> H u
    Hg = pullback(g)[0]
    out = g + 0.5 * h * Hg
    if order == 2:
        H2g = pullback(Hg)[0]
        gs = g.detach()
        third = grad(lambda p: gs @ vjp(grad(loss), p)[1](gs)[0])(theta)
        out = out + h**2 * (H2g / 3 + third / 12)
    return -out


def modified_flow(loss: LossFn, theta0, *, lr: float, times, order: int = 1, blowup: float = 1e6,
                  rtol: float = 1e-10, max_evals: int = 5000) -> Flow:
    """Integrate the modified flow of GD (eq-drift-igr for ``order=1``, eq-drift-mf2 for ``order=2``).

    Order 1 is the gradient flow of the modified loss ``E + (h/4) ||grad E||^2`` (implicit gradient
    regularisation, Barrett & Dherin 2021); its global error against GD at a fixed time is
    ``O(h^2)``, against ``O(h)`` for the plain gradient flow. Order 2 has error ``O(h^3)``.

    Args:
        loss: maps a flat parameter tensor of shape ``(n,)`` to a scalar.
        theta0: start, shape ``(n,)``.
        lr: the GD step ``h`` whose drift is modelled.
        times: evaluation times (GD step ``k`` is time ``k h``).
        order: 1 or 2.
        blowup: divergence radius (see :func:`gradient_flow`).
        rtol: integrator tolerance (see :func:`gradient_flow`).
        max_evals: budget of field evaluations (see :func:`gradient_flow`): the flow's stiffness grows
            with ``h``, so a huge ``h`` ends with ``status="budget"`` instead of running for minutes.
    """
    lr = check_lr(lr)
    if check_count(order, name="order") not in (1, 2):
        raise ValueError(f"order: expected 1 or 2, got {order!r}")
    return _integrate(lambda x: modified_flow_field(loss, x, lr=lr, order=order), loss, theta0, times, lr,
                      check_positive(blowup, name="blowup"), rtol, max_evals)


def principal_flow_coefficients(H, *, lr: float) -> torch.Tensor:
    """``log(1 - h lambda_i) / h`` per eigenvalue of ``H`` (eq-drift-principal), complex128.

    The chapter calls these the *rates*; the *coefficients* of eq-drift-pf-general are the rates
    divided by ``lambda_i``, ``log(1 - h lambda_i) / (h lambda_i)``.

    The real part is the growth rate per unit time (positive iff ``h lambda_i > 2``); the imaginary
    part is ``pi / h`` whenever ``h lambda_i > 1`` (an oscillation with period ``2 h``: a sign flip
    per step). ``h lambda_i = 1`` exactly maps to ``-inf`` (that component vanishes after one step).
    """
    h = check_positive(lr, name="lr")
    lam = torch.linalg.eigvalsh(quadratic.check_hessian(H)).to(torch.complex128)
    return torch.log(1 - h * lam) / h


def principal_flow_quadratic(H, theta0, *, lr: float, times, blowup: float = 1e6) -> Flow:
    """The principal flow of GD on ``E = 1/2 theta^T H theta`` (eq-drift-principal), complex-valued.

    ``theta(t) = sum_i exp(t log(1 - h lambda_i) / h) (u_i^T theta0) u_i``, so
    ``theta(n h) = (I - h H)^n theta0``: GD exactly at integer times ``n = t / h``, and a smooth
    (complex) interpolation in between.

    Past ``h lambda_max = 2`` the flow grows like GD; as in :func:`gradient_flow`, the rows end
    before the first time at which ``|theta|`` leaves the ball of radius ``blowup * max(1, |theta0|)``
    or stops being finite (``diverged``, ``diverged_at`` = the rows kept).

    Returns:
        A :class:`Flow` whose ``params`` (shape ``(len(times), n)``) and ``loss`` are complex128.
    """
    H = quadratic.check_hessian(H)
    h = check_positive(lr, name="lr")
    blowup = check_positive(blowup, name="blowup")
    theta0 = as_tensor(theta0, name="theta0", dtype=H.dtype, device=H.device)
    if theta0.shape != (H.shape[0],):
        raise ValueError(f"theta0: expected shape ({H.shape[0]},), got {tuple(theta0.shape)}")
    t = torch.as_tensor(_check_times(times), dtype=torch.float64, device=H.device)
    lam, U = torch.linalg.eigh(H)
    c0 = (U.T @ theta0).to(torch.complex128)
    logq = torch.log((1 - h * lam).to(torch.complex128))  # log of the per-step factor
    steps = (t / h)[:, None].to(torch.complex128)
    coeffs = torch.exp(steps * logq[None, :]) * c0  # (T, n) in the eigenbasis
    params = coeffs @ U.T.to(torch.complex128)
    size = params.abs().double().pow(2).sum(dim=1).sqrt()  # inf where the square overflows
    out = ~(size <= blowup * max(1.0, float(theta0.norm())))  # NaN sizes are outside too
    kept = int(out.to(torch.long).argmax()) if bool(out.any()) else len(t)
    params = params[:kept]
    loss = 0.5 * torch.einsum("ti,ij,tj->t", params, H.to(torch.complex128), params)
    status = "completed" if kept == len(t) else ("left the ball" if bool(size[kept].isfinite()) else "not finite")
    return Flow(params, loss, h, kept < len(t), kept if kept < len(t) else None, status,
                float(t[max(kept - 1, 0)]))


def principal_vector_field(g, H, *, lr: float) -> torch.Tensor:
    """The principal-flow vector field from a gradient and a Hessian (eq-drift-pf-general), complex128.

    ``theta' = sum_i r(h lambda_i) (g . u_i) u_i`` with ``r(x) = log(1 - x) / x``, where
    ``(lambda_i, u_i)`` are the eigenpairs of the symmetric ``H``, ``g`` is the gradient and
    ``h = lr``. The factor ``r`` is ``-1`` at ``x = 0`` (the gradient flow's), ``-(1 + x/2 + x^2/3
    + ...)`` for ``|x| < 1`` (the modified flows' ``h^k H^k g`` terms, summed), complex with imaginary
    part ``pi / x`` for ``x > 1``, and ``-inf`` at ``x = 1`` exactly (that component vanishes in one
    GD step: no finite flow does that), where the field is not finite unless ``g . u_i = 0``.

    Args:
        g: the gradient ``grad E(theta)``, shape ``(n,)``.
        H: the Hessian ``grad^2 E(theta)``, shape ``(n, n)``, symmetric.
        lr: the GD step ``h > 0``.

    Returns:
        The field, shape ``(n,)``, complex128 (its imaginary part is 0 when every ``h lambda_i < 1``).

    References:
        Rosca, Wu, Qin & Dherin (2023), On a continuous time model of gradient descent dynamics and
        instability in deep learning, TMLR, arXiv:2302.01952.
    """
    h = check_positive(lr, name="lr")
    H = quadratic.check_hessian(H)
    g = as_tensor(g, name="g", device=H.device)
    if g.shape != (H.shape[0],):
        raise ValueError(f"g: expected shape ({H.shape[0]},), got {tuple(g.shape)}")
    lam, U = torch.linalg.eigh(H.to(torch.float64))
    proj = U.T @ g.to(torch.float64)
    x = h * lam
    # log|1 - x| / x in real arithmetic (log1p keeps it accurate near x = 0), plus i pi / x past x = 1
    with torch.no_grad():
        safe = torch.where(x == 0, torch.ones_like(x), x)
        real = torch.where(x == 0, -torch.ones_like(x), torch.log1p(-x).where(x < 1, torch.log((x - 1).abs())) / safe)
        imag = torch.where(x > 1, math.pi / safe, torch.zeros_like(x))
    coeff = torch.complex(real, imag)
    terms = torch.where(proj == 0, torch.zeros_like(coeff), coeff * proj)  # no inf * 0 for an unused direction
    return U.to(torch.complex128) @ terms


def principal_flow_field(loss: LossFn, theta: torch.Tensor, *, lr: float, correction: bool = False) -> torch.Tensor:
    """The principal flow's vector field at ``theta`` (eq-drift-pf-general), complex128.

    :func:`principal_vector_field` of the loss's gradient and dense Hessian at ``theta`` (one
    eigendecomposition: for small models). With ``correction=True`` the lowest-order term the principal
    flow leaves out, ``-(h^2/12) D^3E[g, g]`` (the third-derivative term of eq-drift-mf2), is added, as
    in the public notebooks of Rosca et al. (2023); with it the field agrees with the modified-flow
    series up to ``O(h^3)`` terms.

    Args:
        loss: maps a flat real parameter tensor of shape ``(n,)`` to a scalar.
        theta: the point, shape ``(n,)``, real.
        lr: the GD step ``h > 0``.
        correction: add ``-(h^2/12) D^3E[g, g]``.

    Returns:
        Shape ``(n,)``, complex128.
    """
    check_callable(loss, name="loss")
    theta = check_float_tensor(theta, name="theta")
    if theta.ndim != 1:
        raise ValueError(f"theta: expected a flat tensor of shape (n,), got {tuple(theta.shape)}")
    if not bool(torch.isfinite(theta).all()):  # the eigendecomposition below would fail on NaN
        raise ValueError("theta: contains NaN or infinite values")
    if not isinstance(correction, bool):
        raise ValueError(f"correction: expected True or False, got {correction!r}")
    h = check_positive(lr, name="lr")
    g, pullback = vjp(grad(loss), theta)  # linearise the gradient map once: H e_j for every basis vector
    H = torch.stack([pullback(e)[0] for e in torch.eye(len(theta), dtype=theta.dtype, device=theta.device)])
    out = principal_vector_field(g, 0.5 * (H + H.T), lr=h)
    if correction:
        gs = g.detach()
        third = grad(lambda p: gs @ vjp(grad(loss), p)[1](gs)[0])(theta)
        out = out - (h**2 / 12) * third.to(torch.complex128)
    return out


def principal_flow(loss: LossFn, theta0, *, lr: float, times, correction: bool = False, blowup: float = 1e6,
                   rtol: float = 1e-10, max_evals: int = 5000, imag_tol: float = 1e-9) -> Flow:
    """Integrate the principal flow of GD (eq-drift-pf-general) on a general loss, while it stays real.

    The field is real as long as the gradient has no component along an eigenvector with
    ``h lambda_i > 1``. Past that the flow is complex and needs the loss continued to complex
    parameters, which this function does not do: the integration stops with ``status="complex"``
    (not ``diverged``) at the first field whose imaginary part exceeds ``imag_tol`` times its size.
    On a quadratic use :func:`principal_flow_quadratic`, which is exact in the complex regime too.

    Args:
        loss: maps a flat parameter tensor of shape ``(n,)`` to a scalar.
        theta0: start, shape ``(n,)``.
        lr: the GD step ``h > 0``.
        times: evaluation times (GD step ``k`` is time ``k h``).
        correction: add the lowest-order term the principal flow leaves out (see
            :func:`principal_flow_field`).
        blowup, rtol, max_evals: as in :func:`gradient_flow`.
        imag_tol: relative size of the imaginary part that ends the real integration.

    Returns:
        A real :class:`Flow`; ``status`` says why it ended.

    Raises:
        ValueError: naming ``theta0`` if the field is already complex (or not finite) there.
    """
    h = check_positive(lr, name="lr")
    imag_tol = check_positive(imag_tol, name="imag_tol")
    if not isinstance(correction, bool):
        raise ValueError(f"correction: expected True or False, got {correction!r}")

    def field(x):
        f = principal_flow_field(loss, x, lr=h, correction=correction)
        if float(f.imag.abs().max()) > imag_tol * max(float(f.abs().max()), 1e-300):
            raise _Stop("complex")
        return f.real

    return _integrate(field, loss, theta0, times, h, check_positive(blowup, name="blowup"), rtol, max_evals)


def drift_adjusted_lr(loss: LossFn, theta, *, power: float = 1.0, scale: float = 1.0, cap: float = 5.0) -> float:
    """Drift-adjusted learning rate ``h = scale * 2 / (||H g|| / ||g||)^p``, at most ``cap`` (eq-drift-dal).

    The first-order drift term of GD is ``(h/2) H g`` (eq-drift-igr); its size relative to the
    gradient is ``(h/2) ||H g|| / ||g||``. Holding that ratio at ``scale`` gives
    ``h = 2 scale / (||H g|| / ||g||)``: a large step where the gradient points along flat
    directions, a small one where it points along sharp ones. ``power`` tempers the adaptation
    (``power = 0``: the constant rate ``2 scale``). At a stationary point the cap is returned.
    ``||H g|| / ||g||`` is an upper bound on the curvature along the gradient, ``g^T H g / ||g||^2``
    (Cauchy-Schwarz), equal to it only when ``g`` is an eigenvector of ``H``; so with ``power = 1``
    and ``scale = 1`` the step is at or below the stability limit ``2 / (g^T H g / ||g||^2)`` of the
    gradient's direction (exactly at it, a two-cycle, when ``g`` is an eigenvector), and
    ``scale < 1`` keeps a margin.
    """
    check_callable(loss, name="loss")
    return _dal_step(loss, as_tensor(theta, name="theta"), *_check_dal(power, scale, cap))[0]


def _check_dal(power, scale, cap) -> tuple[float, float, float]:
    return (check_positive(power, name="power", allow_zero=True), check_positive(scale, name="scale"),
            check_positive(cap, name="cap"))


def _dal_step(loss: LossFn, theta: torch.Tensor, power: float, scale: float, cap: float) -> tuple[float, torch.Tensor]:
    """The drift-adjusted rate and the gradient it was computed from (one gradient, one HVP)."""
    g, pullback = vjp(grad(loss), theta)
    gn = float(g.norm())
    ratio = float(pullback(g)[0].norm()) / gn if gn > 0 else 0.0
    return (cap if ratio == 0 else min(cap, 2.0 * scale / ratio**power)), g


def dal_descent(loss: LossFn, theta0, *, steps: int, power: float = 1.0, scale: float = 1.0, cap: float = 5.0,
                blowup: float = 1e6) -> tuple[Trajectory, torch.Tensor]:
    """GD whose step is :func:`drift_adjusted_lr` at every iterate (eq-drift-dal).

    ``theta_{n+1} = theta_n - h_n g(theta_n)`` with ``h_n`` the drift-adjusted rate at ``theta_n``;
    the loop, and divergence, are those of :func:`lessons_lib.descent.iterate`.

    Returns:
        The trajectory (its ``lr`` is NaN: the rate changes every step) and the rate of every step
        taken, shape ``(steps_taken,)``: ``rates[n]`` moved ``params[n]`` to ``params[n + 1]``.
    """
    check_callable(loss, name="loss")
    rates: list[float] = []
    checked = _check_dal(power, scale, cap)

    def step(x):
        h, g = _dal_step(loss, x, *checked)
        rates.append(h)
        return x - h * g

    x0 = as_tensor(theta0, name="theta0")
    traj = iterate(step, loss, x0, lr=float("nan"), steps=check_count(steps, name="steps"), blowup=blowup)
    return traj, torch.tensor(rates, dtype=x0.dtype)


# --- the scalar factorisation L(u, v) = (uv - 1)^2 / 2 ----------------------------------------------

def factorisation_loss(theta: torch.Tensor) -> torch.Tensor:
    """``L(u, v) = (u v - 1)^2 / 2`` for ``theta = (u, v)``; minima ``uv = 1`` have sharpness ``u^2 + v^2``."""
    check_float_tensor(theta, name="theta")
    return 0.5 * (theta[0] * theta[1] - 1) ** 2


@dataclass(frozen=True)
class FactorisationRun(Record):
    """GD on :func:`factorisation_loss`: the trajectory, the start's and the end's sharpness
    (``diverged_at``: the trajectory's, ``None`` if it did not diverge)."""

    trajectory: Trajectory
    initial_sharpness: float
    final_sharpness: float
    converged: bool
    diverged: bool
    diverged_at: int | None = None


def factorisation_gd(u0: float, v0: float, *, lr: float, steps: int = 2000, tol: float = 1e-10) -> FactorisationRun:
    """GD from ``(u0, v0)`` on ``(uv - 1)^2 / 2`` (eq-drift-catapult).

    The run converged if the final loss is below ``tol``; sharpness is ``lambda_max`` of the exact
    2x2 Hessian (``u^2 + v^2`` at a minimum).
    """
    lr = check_lr(lr)
    tol = check_positive(tol, name="tol")

    def step(p):  # the gradient in closed form, (uv - 1) (v, u): 20x faster than autodiff here
        return p - lr * (p[0] * p[1] - 1) * p.flip(0)

    x0 = as_tensor([check_real(u0, name="u0"), check_real(v0, name="v0")], name="u0")
    traj = iterate(step, factorisation_loss, x0, lr=lr, steps=steps, blowup=1e3)

    def sharp(p):
        return float(torch.linalg.eigvalsh(curvature.hessian(factorisation_loss, p))[-1])

    converged = (not traj.diverged) and float(traj.loss[-1]) < tol
    return FactorisationRun(traj, sharp(traj.params[0]), sharp(traj.params[-1]), converged, traj.diverged,
                            traj.diverged_at)


def quartic_loss(theta: torch.Tensor, nonlinearity: float = 1.0, a: float = 4.0) -> torch.Tensor:
    """A 2-D test loss ``(x^2 + a y^2)/2 + c (x^4/4 + x y^2/2)`` (eq-drift-quartic).

    ``a`` is the sharp direction's curvature at the minimum and ``c = nonlinearity``; ``c = 0`` is a
    quadratic. With the defaults (``a = 4, c = 1``) the chapter measures the global errors of the
    flows against GD from ``theta0 = (1, 0.8)`` at ``T = 1`` (:func:`drift_errors`): slopes 1, 2
    and 3 in ``h`` for the gradient flow and the modified flows of order 1 and 2.

    Args:
        theta: the point ``(x, y)``, shape ``(2,)``.
        nonlinearity: ``c``; ``0`` gives the quadratic with Hessian ``diag(1, a)``.
        a: the curvature of the sharp direction ``y`` at the minimum.
    """
    check_float_tensor(theta, name="theta")
    a, nonlinearity = check_real(a, name="a"), check_real(nonlinearity, name="nonlinearity")
    x, y = theta[0], theta[1]
    return 0.5 * (x**2 + a * y**2) + nonlinearity * (x**4 / 4 + x * y**2 / 2)


def drift_errors(loss: LossFn, theta0, *, lrs, T: float = 1.0, order: int = 1,
                 max_evals: int = 5000) -> dict[str, torch.Tensor]:
    """Global errors at time ``T`` of the gradient flow and of the modified flow against GD.

    For each ``h`` in ``lrs`` (``T / h`` must be an integer) returns ``||GD_{T/h} - NGF(T)||`` and
    ``||GD_{T/h} - MF_h(T)||``; their log-log slopes in ``h`` are 1 and ``order + 1``.

    Also returns, per ``h``, ``"diverged"`` (GD or a flow diverged) and ``"completed"`` (both flows
    reached ``T``, see :class:`Flow`); where a run did not finish, its errors are measured from the
    last state it reached (finite, but not an error at ``T``). ``max_evals`` is each flow's budget
    (:func:`gradient_flow`).
    """
    check_callable(loss, name="loss")
    if isinstance(lrs, (str, bytes)) or not hasattr(lrs, "__iter__"):
        raise ValueError(f"lrs: expected a sequence of learning rates, got {type(lrs).__name__}")
    lrs = [check_positive(h, name="lrs") for h in lrs]
    T, order = check_positive(T, name="T"), check_count(order, name="order")
    ngf = gradient_flow(loss, theta0, times=[0.0, T], max_evals=max_evals)
    out = {"lr": torch.tensor(lrs, dtype=torch.float64), "ngf": [], "modified": [], "diverged": [], "completed": []}
    for h in lrs:
        n = round(T / h)
        if not math.isclose(n * h, T, rel_tol=1e-9):
            raise ValueError(f"lrs: T / h must be an integer, got T = {T}, h = {h}")
        run = gd(loss, theta0, lr=h, steps=n)
        mf = modified_flow(loss, theta0, lr=h, times=[0.0, T], order=order, max_evals=max_evals)
        out["ngf"].append(float((run.params[-1] - ngf.params[-1]).norm()))
        out["modified"].append(float((run.params[-1] - mf.params[-1]).norm()))
        out["diverged"].append(run.diverged or ngf.diverged or mf.diverged)
        out["completed"].append(ngf.status == mf.status == "completed")
    return {k: torch.as_tensor(v, dtype=torch.bool if k in ("diverged", "completed") else torch.float64)
            for k, v in out.items()}


#: Moved to :mod:`lessons_lib.measure`.
loglog_slope = measure.loglog_slope
