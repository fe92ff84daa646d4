"""Hard physics constraints: a least-squares layer on a basis network, split into slab experts.

A small tanh network maps a point ``(x, t)`` to ``N`` basis functions ``b(x, t)``. For the heat equation
``u_t = nu u_xx`` on ``[0, 1]^2`` each sampled point gives one row that is *linear* in the output weights
``omega``: the PDE at interior points, the initial condition ``u(x, 0) = sin(pi x)`` and the boundaries
``u(0, t) = u(1, t) = 0`` (:func:`heat_rows`, eq-hard-rows). The hard-constraint layer solves the
least-squares problem over these rows for ``omega`` inside every forward pass (:func:`least_squares`,
eq-hard-layer) and is differentiated by the implicit function theorem (eq-hard-implicit). A mixture of
``K`` experts splits ``[0, 1]`` into ``K`` slabs in ``x``; expert ``k`` solves the rows of its own
points only (:func:`hard_solve`, eq-hard-experts). :func:`lm_solve` is the general, iterative version
(damped Gauss-Newton on any residual) with an implicit, an unrolled or the shortcut backward
(eq-hard-shortcut), and :func:`train_hard` trains the basis network with Adam on the residual loss.

Everything is float64, as the paper's solver requires.

References:
    Chalapathi, Du & Krishnapriyan (2024), Scaling physics-informed hard constraints with
    mixture-of-experts, ICLR 2024, arXiv:2402.13412.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal, Sequence, Union

import torch

from .backend import (
    Record,
    as_generator,
    check_choice,
    check_count,
    check_float_tensor,
    check_positive,
    default_device,
)
from .descent import adam_direction
from .run import per_run, run

F64 = torch.float64
Backward = Literal["implicit", "unrolled", "shortcut"]


# --- the basis network ---------------------------------------------------------------------------------

class BasisNet:
    """A tanh network ``(x, t) -> b(x, t)`` in ``R^N`` with two hidden layers of ``width`` units (eq-hard-rows).

    The input ``(x, t)`` in ``[0, 1]^2`` is mapped to ``[-1, 1]^2`` first; the output layer is linear. The
    parameters are one flat float64 vector ``params`` (weights and biases uniform in ``+-1/sqrt(fan_in)``,
    as ``torch.nn.Linear`` starts), so that a
    batch of networks is a matrix of shape ``(R, P)``.

    Args:
        n_basis: the number of basis functions ``N >= 1``.
        generator: an int seed or a ``torch.Generator`` for the initial weights.
        width: hidden units per layer, ``>= 1``.
        device: where the parameters live (default: :func:`~lessons_lib.backend.default_device`).

    References:
        Chalapathi, Du & Krishnapriyan (2024), arXiv:2402.13412 (an FNO there; a small MLP here).
    """

    def __init__(self, n_basis: int, *, generator: Union[int, torch.Generator] = 0, width: int = 32,
                 device=None):
        self.n_basis = check_count(n_basis, name="n_basis")
        self.width = check_count(width, name="width")
        device = _device(device)
        gen = as_generator(generator, device)
        parts = []
        for fan_out, fan_in in self._layers():  # torch.nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
            bound = 1 / math.sqrt(fan_in)
            for size in (fan_out * fan_in, fan_out):
                parts.append(bound * (2 * torch.rand(size, generator=gen, dtype=F64, device=device) - 1))
        self.params = torch.cat(parts)

    def _layers(self) -> list[tuple[int, int]]:
        return [(self.width, 2), (self.width, self.width), (self.n_basis, self.width)]

    @property
    def n_params(self) -> int:
        """The length ``P`` of the flat parameter vector."""
        return sum(o * i + o for o, i in self._layers())

    def _unpack(self, theta: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out, i = [], 0
        for fan_out, fan_in in self._layers():
            W = theta[:, i:i + fan_out * fan_in].reshape(-1, fan_out, fan_in)
            i += fan_out * fan_in
            out.append((W, theta[:, i:i + fan_out]))
            i += fan_out
        return out

    def jets(self, points, params=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``b``, ``b_x``, ``b_xx`` and ``b_t`` at ``points``, propagated forward through the layers.

        Forward mode by hand: each layer carries the value with its first ``x``- and ``t``-derivatives
        and its second ``x``-derivative (for ``tanh``, ``s' = 1 - s^2`` and ``s'' = -2 s s'``), so one
        pass gives every derivative the rows need, differentiable in the parameters by autograd.

        Args:
            points: ``(n, 2)`` tensor of ``(x, t)``.
            params: ``(P,)`` or ``(R, P)``; default: the network's own ``params``.

        Returns:
            four tensors of shape ``(n, N)``, or ``(R, n, N)`` for batched ``params``.
        """
        theta = self.params if params is None else check_float_tensor(params, name="params").to(F64)
        if theta.shape[-1] != self.n_params or theta.ndim not in (1, 2):
            raise ValueError(f"params: expected shape ({self.n_params},) or (R, {self.n_params}), "
                             f"got {tuple(theta.shape)}")
        points = _points(points, "points")
        single = theta.ndim == 1
        theta = theta.reshape(-1, self.n_params)
        n = points.shape[0]
        (W1, b1), *hidden, (Wo, bo) = self._unpack(theta)
        # first layer: the input (2x - 1, 2t - 1) has constant derivatives, so z_x and z_t are columns of W1
        h = torch.tanh(torch.baddbmm(b1[:, None], (2 * points - 1).expand(theta.shape[0], n, 2), W1.transpose(1, 2)))
        d1 = 1 - h * h
        zx, zt = 2 * W1[:, None, :, 0], 2 * W1[:, None, :, 1]
        streams = torch.cat([h, d1 * zx, d1 * zt, -2 * h * d1 * zx * zx], dim=1)  # b, b_x, b_t, b_xx stacked
        for W, b in hidden:
            z = torch.bmm(streams, W.transpose(1, 2))
            a = torch.tanh(z[:, :n] + b[:, None])
            d1 = 1 - a * a
            zx, zt, zxx = z[:, n:2 * n], z[:, 2 * n:3 * n], z[:, 3 * n:]
            streams = torch.cat([a, d1 * zx, d1 * zt, d1 * zxx - 2 * a * d1 * zx * zx], dim=1)
        z = torch.bmm(streams, Wo.transpose(1, 2))
        out = (z[:, :n] + bo[:, None], z[:, n:2 * n], z[:, 3 * n:], z[:, 2 * n:3 * n])
        return tuple(o[0] for o in out) if single else out

    def basis(self, points, params=None) -> torch.Tensor:
        """The basis ``b(x, t)`` at ``points`` (``(n, 2)``): shape ``(n, N)`` or ``(R, n, N)``."""
        theta = self.params if params is None else check_float_tensor(params, name="params").to(F64)
        if theta.shape[-1] != self.n_params or theta.ndim not in (1, 2):
            raise ValueError(f"params: expected shape ({self.n_params},) or (R, {self.n_params}), "
                             f"got {tuple(theta.shape)}")
        points = _points(points, "points")
        *hidden, (Wo, bo) = self._unpack(theta.reshape(-1, self.n_params))
        h = (2 * points - 1).expand(theta.reshape(-1, self.n_params).shape[0], -1, 2)
        for W, b in hidden:
            h = torch.tanh(torch.baddbmm(b[:, None], h, W.transpose(1, 2)))
        out = torch.baddbmm(bo[:, None], h, Wo.transpose(1, 2))
        return out[0] if theta.ndim == 1 else out


def _finite(x, name: str) -> torch.Tensor:
    """A finite real tensor, in float64 (the solver's precision)."""
    x = check_float_tensor(x, name=name)
    if x.is_complex():
        raise ValueError(f"{name}: expected a real tensor, got {x.dtype}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return x.to(F64)


def _points(points, name: str) -> torch.Tensor:
    points = _finite(points, name)
    if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] < 1:
        raise ValueError(f"{name}: expected (x, t) pairs of shape (n, 2) with n >= 1, got {tuple(points.shape)}")
    return points


def _device(device) -> torch.device:
    if device is None:
        return default_device()
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device: not a torch device: {device!r} ({exc})") from None
    if device.type not in ("cpu", "cuda") or (device.type == "cuda" and not torch.cuda.is_available()):
        raise ValueError(f"device: expected 'cpu' or an available 'cuda' device, got {device}")
    return device


def _check_net(net) -> "BasisNet":
    if not isinstance(net, BasisNet):
        raise ValueError(f"net: expected a BasisNet, got {type(net).__name__}")
    return net


def _check_problem(problem) -> "HeatProblem":
    if not isinstance(problem, HeatProblem):
        raise ValueError(f"problem: expected a HeatProblem, got {type(problem).__name__}")
    return problem


def _expert_counts(experts, runs: int, k_max: int) -> list[int]:
    """``experts`` (an int, ``runs`` ints, or ``None`` for ``k_max``) as one count per run, each in ``1 .. k_max``."""
    if experts is None:
        return [k_max] * runs
    counts = list(experts) if isinstance(experts, (list, tuple)) else [experts] * runs
    counts = [check_count(k, name="experts") for k in counts]
    if len(counts) != runs or any(k > k_max for k in counts):
        raise ValueError(f"experts: expected {runs} counts in 1..{k_max}, got {experts!r}")
    return counts


# --- the problem and its rows ------------------------------------------------------------------------

@dataclass(frozen=True)
class HeatProblem:
    """The heat equation ``u_t = nu u_xx`` on ``[0, 1]^2``, ``u(x, 0) = sin(pi x)``, ``u(0, t) = u(1, t) = 0``.

    Its solution is ``u(x, t) = exp(-nu pi^2 t) sin(pi x)`` (eq-hard-heat). An input, not a result: its points
    stay on the device they were drawn on.

    Attributes:
        nu: the diffusivity ``> 0``.
        pde: interior points ``(n_pde, 2)``; ic: ``(x, 0)`` points ``(n_ic, 2)``; bc: ``(0, t)`` then
            ``(1, t)`` points ``(n_bc, 2)``.
    """

    nu: float
    pde: torch.Tensor
    ic: torch.Tensor
    bc: torch.Tensor

    @property
    def points(self) -> torch.Tensor:
        """Every row's point, in the order of the rows: PDE, initial condition, boundaries; ``(n, 2)``."""
        return torch.cat([self.pde, self.ic, self.bc])

    @property
    def sizes(self) -> tuple[int, int, int]:
        """The numbers of PDE, initial and boundary rows."""
        return self.pde.shape[0], self.ic.shape[0], self.bc.shape[0]

    def exact(self, points) -> torch.Tensor:
        """``exp(-nu pi^2 t) sin(pi x)`` at ``points`` ``(n, 2)``, shape ``(n,)``."""
        points = _points(points, "points")
        return torch.exp(-self.nu * math.pi ** 2 * points[:, 1]) * torch.sin(math.pi * points[:, 0])


def heat_problem(nu: float = 0.1, *, n_pde: int = 256, n_ic: int = 64, n_bc: int = 64,
                 generator: Union[int, torch.Generator] = 0, device=None) -> HeatProblem:
    """Sample the points of the heat problem (eq-hard-heat): uniform in the square, on ``t = 0`` and on both walls.

    Args:
        nu: diffusivity ``> 0`` (the stiffness of the constraint).
        n_pde: interior points ``>= 1``; n_ic: initial points ``>= 1``; n_bc: boundary points ``>= 2``
            (the first half on ``x = 0``, the rest on ``x = 1``).
        generator: an int seed or a ``torch.Generator``.
        device: where the points live (default: :func:`~lessons_lib.backend.default_device`).

    Returns:
        A :class:`HeatProblem`.
    """
    nu = check_positive(nu, name="nu")
    n_pde, n_ic = check_count(n_pde, name="n_pde"), check_count(n_ic, name="n_ic")
    n_bc = check_count(n_bc, name="n_bc", minimum=2)
    device = _device(device)
    gen = as_generator(generator, device)

    def uniform(*shape):
        return torch.rand(*shape, generator=gen, dtype=F64, device=device)

    pde = uniform(n_pde, 2)
    ic = torch.stack([uniform(n_ic), torch.zeros(n_ic, dtype=F64, device=device)], 1)
    wall = (torch.arange(n_bc, device=device) >= n_bc // 2).to(F64)
    bc = torch.stack([wall, uniform(n_bc)], 1)
    return HeatProblem(nu=nu, pde=pde, ic=ic, bc=bc)


def heat_rows(net: BasisNet, problem: HeatProblem, *, params=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The rows ``A omega ~ c`` of the heat problem for the basis ``b`` of ``net`` (eq-hard-rows).

    PDE rows ``b_t - nu b_xx`` (target 0) at the interior points, then ``b(x, 0)`` (target ``sin(pi x)``),
    then ``b(0, t)`` and ``b(1, t)`` (target 0). The derivatives come from :meth:`BasisNet.jets`
    (forward mode), not from nested reverse mode.

    Args:
        net: a :class:`BasisNet`. problem: a :class:`HeatProblem`.
        params: ``(P,)`` or ``(R, P)`` parameters; default ``net.params``.

    Returns:
        ``(A, c, points)``: ``A`` of shape ``(n, N)`` (or ``(R, n, N)``), ``c`` of shape ``(n,)`` and the
        rows' points ``(n, 2)``, with ``n = n_pde + n_ic + n_bc``.
    """
    _check_net(net), _check_problem(problem)
    points = problem.points
    b, _, bxx, bt = net.jets(points, params)
    n_pde = problem.pde.shape[0]
    A = torch.cat([bt[..., :n_pde, :] - problem.nu * bxx[..., :n_pde, :], b[..., n_pde:, :]], dim=-2)
    c = torch.zeros(points.shape[0], dtype=F64, device=points.device)
    n_ic = problem.ic.shape[0]
    c[n_pde:n_pde + n_ic] = torch.sin(math.pi * problem.ic[:, 0])
    return A, c, points


# --- the least-squares layer and its implicit backward -----------------------------------------------

def _qr(A: torch.Tensor, damping: float) -> torch.Tensor:
    """``R`` of the QR factorisation of ``A`` stacked on ``sqrt(damping) I`` (so ``R^T R = A^T A + damping I``)."""
    if damping > 0:
        eye = math.sqrt(damping) * torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
        A = torch.cat([A, eye.expand(*A.shape[:-2], -1, -1)], dim=-2)
    return torch.linalg.qr(A, mode="r")[1]


def _normal_solve(R: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``(R^T R)^{-1} g`` by two triangular solves (``g`` of shape ``(..., N)``)."""
    y = torch.linalg.solve_triangular(R.transpose(-1, -2), g[..., None], upper=False)
    return torch.linalg.solve_triangular(R, y, upper=True)[..., 0]


def least_squares_vjp(A, c, omega, grad, *, damping: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The implicit backward of the least-squares layer: ``(dL/dA, dL/dc)`` from ``g = dL/domega`` (eq-hard-implicit).

    At the solution the normal equations ``A^T (A omega - c) + damping omega = 0`` hold; differentiating
    them (the implicit function theorem) gives, with ``lam = (A^T A + damping I)^{-1} g`` and
    ``r = A omega - c``, ``dL/dA = -(r lam^T + A lam omega^T)`` and ``dL/dc = A lam``.

    Args:
        A: ``(..., n, N)``; c: ``(..., n)``; omega: the solution ``(..., N)``; grad: ``dL/domega``,
            ``(..., N)``.
        damping: the ridge ``>= 0`` of the solve.

    Returns:
        ``(grad_A, grad_c)`` of the shapes of ``A`` and ``c``.

    References:
        Chalapathi, Du & Krishnapriyan (2024), arXiv:2402.13412, the implicit backward of each expert.
    """
    A, c, omega, grad = (_finite(x, name) for x, name in ((A, "A"), (c, "c"), (omega, "omega"), (grad, "grad")))
    damping = check_positive(damping, name="damping", allow_zero=True)
    if A.ndim < 2 or c.shape != A.shape[:-1] or omega.shape != A.shape[:-2] + A.shape[-1:] \
            or grad.shape != omega.shape:
        raise ValueError(f"A, c, omega, grad: expected shapes (..., n, N), (..., n), (..., N), (..., N), got "
                         f"{tuple(A.shape)}, {tuple(c.shape)}, {tuple(omega.shape)}, {tuple(grad.shape)}")
    return _vjp(A, c, omega, grad, damping)


def _vjp(A, c, omega, grad, damping):
    lam = _normal_solve(_qr(A, damping), grad)
    r = (A @ omega[..., None])[..., 0] - c
    A_lam = (A @ lam[..., None])[..., 0]
    return -(r[..., :, None] * lam[..., None, :] + A_lam[..., :, None] * omega[..., None, :]), A_lam


class _LeastSquares(torch.autograd.Function):
    @staticmethod
    def forward(ctx, A, c, damping):
        R = _qr(A, damping)
        Atc = (A.transpose(-1, -2) @ c[..., None])[..., 0]
        omega = _normal_solve(R, Atc)
        ctx.save_for_backward(A, c, omega)
        ctx.damping = damping
        return omega

    @staticmethod
    def backward(ctx, grad):
        A, c, omega = ctx.saved_tensors
        gA, gc = _vjp(A, c, omega, grad, ctx.damping)
        return gA, gc, None


def least_squares(A, c, *, damping: float = 0.0) -> torch.Tensor:
    """The hard-constraint layer: ``omega = argmin ||A omega - c||^2 + damping ||omega||^2`` (eq-hard-layer).

    Solved by a QR factorisation (of ``A`` stacked on ``sqrt(damping) I``), batched over leading dimensions;
    its backward is the implicit one of :func:`least_squares_vjp` (eq-hard-implicit), not autograd
    through the factorisation. Zero rows change nothing, which is how the experts mask their rows.

    Args:
        A: ``(..., n, N)`` rows; c: ``(..., n)`` targets; damping: ridge ``>= 0``.

    Returns:
        ``omega`` of shape ``(..., N)``.

    References:
        Chalapathi, Du & Krishnapriyan (2024), arXiv:2402.13412.
    """
    if isinstance(A, torch.Tensor) and isinstance(c, torch.Tensor) and A.dtype != c.dtype:
        raise ValueError(f"A, c: expected one dtype, got {A.dtype} and {c.dtype}")
    for x, name in ((A, "A"), (c, "c")):
        check_float_tensor(x, name=name)
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name}: contains NaN or infinite values")
    damping = check_positive(damping, name="damping", allow_zero=True)
    if A.ndim < 2 or c.shape != A.shape[:-1]:
        raise ValueError(f"A, c: expected shapes (..., n, N) and (..., n), got {tuple(A.shape)} and {tuple(c.shape)}")
    if damping == 0 and A.shape[-2] < A.shape[-1]:
        raise ValueError(f"A: {A.shape[-2]} rows for {A.shape[-1]} unknowns: give damping > 0 or more rows")
    return _LeastSquares.apply(A, c, damping)


# --- the general solver: damped Gauss-Newton with three backwards ------------------------------------

class _ImplicitLM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, residual, kind, omega, *params):
        ctx.residual, ctx.kind = residual, kind
        ctx.save_for_backward(omega, *params)
        return omega.clone()

    @staticmethod
    def backward(ctx, grad):
        omega, *params = ctx.saved_tensors
        residual = ctx.residual
        if ctx.kind == "implicit":  # the full Hessian of (1/2)||r||^2, second-order terms included
            def stationarity(w, *p):
                return torch.func.grad(lambda v: 0.5 * residual(v, *p).pow(2).sum())(w)

            lam = torch.linalg.solve(torch.func.jacfwd(stationarity)(omega, *params), grad)
            _, vjp = torch.func.vjp(lambda *p: stationarity(omega, *p), *params)
            grads = vjp(-lam)
        else:  # the shortcut -(J^T J)^{-1} J^T dr/dtheta: the terms in r are dropped
            J = torch.func.jacfwd(residual)(omega, *params)
            lam = torch.linalg.solve(J.T @ J, grad)
            _, vjp = torch.func.vjp(lambda *p: residual(omega, *p), *params)
            grads = vjp(-(J @ lam))
        return (None, None, None, *grads)


def lm_solve(residual: Callable[..., torch.Tensor], params: Sequence[torch.Tensor], omega0, *, iters: int = 100,
             backward: Backward = "implicit", damping: float = 1e-3) -> torch.Tensor:
    """Minimise ``(1/2)||r(omega, *params)||^2`` over ``omega`` by damped Gauss-Newton steps (eq-hard-lm).

    Each step is ``omega <- omega - (J^T J + damping I)^{-1} J^T r`` with ``J = dr/domega`` (Levenberg-
    Marquardt with a fixed damping; ``damping = 0`` is Gauss-Newton). The gradient with respect to
    ``params`` comes from one of three backwards:

    * ``"unrolled"``: autograd through every step;
    * ``"implicit"``: the implicit function theorem on ``grad_omega (1/2)||r||^2 = 0`` (eq-hard-implicit),
      exact at a converged solution whatever the residual;
    * ``"shortcut"``: ``-(J^T J)^{-1} J^T dr/dparams`` (eq-hard-shortcut), which drops the terms in ``r``
      and is exact only where ``r = 0``.

    Args:
        residual: ``residual(omega, *params) -> r`` of shape ``(m,)``, differentiable by ``torch.func``.
        params: the tensors it depends on (gradients flow to those that require them).
        omega0: the start ``(N,)``.
        iters: steps ``>= 0``; backward: ``"implicit"``, ``"unrolled"`` or ``"shortcut"``; damping: ``>= 0``.

    Returns:
        ``omega`` of shape ``(N,)``.

    References:
        Chalapathi, Du & Krishnapriyan (2024), arXiv:2402.13412 (Levenberg-Marquardt with an implicit
        backward in each expert).
    """
    if not callable(residual):
        raise ValueError(f"residual: expected a callable (omega, *params) -> r, got {type(residual).__name__}")
    if isinstance(params, torch.Tensor) or not all(isinstance(p, torch.Tensor) for p in params):
        raise ValueError("params: expected a sequence of tensors")
    params = tuple(params)
    omega = check_float_tensor(omega0, name="omega0")
    if not bool(torch.isfinite(omega).all()):
        raise ValueError("omega0: contains NaN or infinite values")
    if omega.ndim != 1:
        raise ValueError(f"omega0: expected a vector of shape (N,), got {tuple(omega.shape)}")
    if any(p.is_floating_point() and p.dtype != omega.dtype for p in params):
        raise ValueError(f"omega0: its dtype {omega.dtype} differs from that of params")
    iters = check_count(iters, name="iters", minimum=0)
    backward = check_choice(backward, ("implicit", "unrolled", "shortcut"), name="backward")
    damping = check_positive(damping, name="damping", allow_zero=True)
    eye = torch.eye(omega.shape[0], dtype=omega.dtype, device=omega.device)

    def step(w, p):
        r = residual(w, *p)
        J = torch.func.jacfwd(residual)(w, *p)
        return w - torch.linalg.solve(J.T @ J + damping * eye, J.T @ r)

    if backward == "unrolled":
        for _ in range(iters):
            omega = step(omega, params)
        return omega
    with torch.no_grad():
        detached = tuple(p.detach() for p in params)
        w = omega.detach()
        for _ in range(iters):
            w = step(w, detached)
    return _ImplicitLM.apply(residual, backward, w, *params)


# --- experts --------------------------------------------------------------------------------------------

def expert_of(points, experts: int) -> torch.Tensor:
    """The expert of each point: slab ``k`` holds ``k/K <= x < (k+1)/K`` (``x = 1`` in the last) (eq-hard-experts).

    Args:
        points: ``(n, 2)``; experts: ``K >= 1``.

    Returns:
        a long tensor ``(n,)`` with values in ``0 .. K-1``.
    """
    points = _points(points, "points")
    experts = check_count(experts, name="experts")
    return torch.clamp((points[:, 0] * experts).floor().long(), 0, experts - 1)


def _solve(A: torch.Tensor, c: torch.Tensor, points: torch.Tensor, experts: Sequence[int], damping: float):
    """Each run's experts' ``omega`` ``(R, K_max, N)`` and every row's residual under its own expert ``(R, n)``.

    Run ``i`` has ``experts[i]`` slabs; expert ``k`` sees the rows of its slab and zeros elsewhere (zero rows
    change no least-squares solution), and the slots ``k >= experts[i]`` see only zero rows.
    """
    k_max = max(experts)
    slots = torch.arange(k_max, device=A.device)
    mask = torch.stack([expert_of(points, k)[None, :] == slots[:, None] for k in experts]).to(A.dtype)
    A_k = A[:, None] * mask[..., None]
    c_k = c * mask
    omega = _LeastSquares.apply(A_k, c_k, damping)
    r = ((A_k @ omega[..., None])[..., 0] - c_k).sum(1)
    return omega, r


def _group_loss(r: torch.Tensor, sizes: tuple[int, int, int]) -> torch.Tensor:
    """Mean squared residual of the PDE, initial and boundary rows, summed with weight 1 each: ``(R,)``."""
    return sum(part.pow(2).mean(-1) for part in torch.split(r, list(sizes), dim=-1))


@dataclass(frozen=True)
class HardSolve(Record):
    """What :func:`hard_solve` returns.

    Attributes:
        omega: each expert's weights, ``(K, N)``.
        residual: the norm ``||r||`` of the residual of all rows, each under its own expert.
        loss: the training loss (mean squared residual of the PDE, initial and boundary rows, summed).
        expert_residual: each expert's residual norm over its own rows, ``(K,)``.
    """

    omega: torch.Tensor
    residual: float
    loss: float
    expert_residual: torch.Tensor


def hard_solve(net: BasisNet, problem: HeatProblem, *, experts: int = 1, params=None,
               damping: float = 1e-10) -> HardSolve:
    """Solve the hard-constraint layer with ``K`` slab experts (eq-hard-experts); ``K = 1`` is the global layer.

    Args:
        net: the basis network; problem: the heat problem; experts: ``K >= 1``.
        params: the network's parameters ``(P,)`` (default ``net.params``).
        damping: a tiny ridge ``>= 0`` that keeps a rank-deficient expert solvable.

    Returns:
        A :class:`HardSolve`.

    References:
        Chalapathi, Du & Krishnapriyan (2024), arXiv:2402.13412.
    """
    _check_net(net), _check_problem(problem)
    experts = check_count(experts, name="experts")
    damping = check_positive(damping, name="damping", allow_zero=True)
    theta = net.params if params is None else check_float_tensor(params, name="params")
    if theta.ndim != 1:
        raise ValueError(f"params: expected one parameter vector (P,), got shape {tuple(theta.shape)}")
    if damping == 0 and problem.points.shape[0] < experts * net.n_basis:
        raise ValueError("damping: an expert with fewer rows than unknowns needs damping > 0")
    A, c, points = heat_rows(net, problem, params=theta[None])
    omega, r = _solve(A, c, points, [experts], damping)
    routes = expert_of(points, experts)
    per = torch.stack([r[0, routes == k].norm() for k in range(experts)])
    return HardSolve(omega=omega[0], residual=float(r.norm()),
                     loss=float(_group_loss(r, problem.sizes)[0]), expert_residual=per.detach())


def hard_output(net: BasisNet, omega, points, *, experts=None, params=None) -> torch.Tensor:
    """The layer's output ``u(x, t) = b(x, t) . omega_k``, each point under the expert of its slab (eq-hard-experts).

    Args:
        net: the basis network; omega: ``(K, N)`` or batched ``(R, K, N)``; points: ``(n, 2)``.
        experts: the number of experts of each run (an int, or ``R`` ints); default: ``K``, all slots.
        params: ``(P,)`` or ``(R, P)`` (default ``net.params``).

    Returns:
        ``u`` of shape ``(n,)`` (or ``(R, n)``).
    """
    _check_net(net)
    omega = _finite(omega, "omega")
    if omega.ndim not in (2, 3):
        raise ValueError(f"omega: expected shape (K, N) or (R, K, N), got {tuple(omega.shape)}")
    points = _points(points, "points")
    b = net.basis(points, params)
    single = b.ndim == 2 and omega.ndim == 2
    b, om = b.reshape(-1, *b.shape[-2:]), omega.reshape(-1, *omega.shape[-2:])
    if om.shape[-1] != b.shape[-1] or om.shape[0] != b.shape[0]:
        raise ValueError(f"omega: expected shape (K, {b.shape[-1]}) per network, got {tuple(omega.shape)}")
    ks = _expert_counts(experts, om.shape[0], om.shape[1])
    routes = torch.stack([expert_of(points, k) for k in ks])  # (R, n)
    u = (b * torch.gather(om, 1, routes[..., None].expand(-1, -1, om.shape[-1]))).sum(-1)
    return u[0] if single else u


def relative_error(net: BasisNet, problem: HeatProblem, omega, *, experts=None, params=None,
                   grid: int = 41) -> torch.Tensor:
    """Relative L2 error ``||u - u_exact|| / ||u_exact||`` of :func:`hard_output` on a uniform grid of ``[0, 1]^2``.

    Args:
        net, problem: as in :func:`hard_solve`; omega, experts, params: as in :func:`hard_output`.
        grid: points per side ``>= 2``.

    Returns:
        the error, a 0-d tensor (or ``(R,)``).
    """
    _check_net(net), _check_problem(problem)
    grid = check_count(grid, name="grid", minimum=2)
    omega = _finite(omega, "omega")
    s = torch.linspace(0, 1, grid, dtype=F64, device=omega.device)
    points = torch.cartesian_prod(s, s)
    u = hard_output(net, omega, points, experts=experts, params=params)
    exact = problem.exact(points)
    return (u - exact).norm(dim=-1) / exact.norm()


# --- training -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HardTraining(Record):
    """What :func:`train_hard` returns: one run, or a batch over the numbers of experts and learning rates.

    ``B`` below is the batch shape: ``()`` for one run, ``(E,)`` for a sequence of ``E`` expert counts or of
    ``E`` learning rates, ``(E, L)`` for both (experts first).

    Attributes:
        steps: recorded steps ``(T,)``.
        loss: the training loss at those steps, ``(T, *B)``.
        error: the relative L2 error against the exact solution at those steps, ``(T, *B)``.
        params: the final parameters ``(*B, P)``.
        omega: the final experts' weights ``(*B, K_max, N)`` (slots beyond a run's ``K`` are zero).
        diverged, diverged_at: as in :class:`lessons_lib.run.Run`, shape ``B``.
        experts, lr: the settings, long and float64 tensors of shape ``B``.
    """

    steps: torch.Tensor
    loss: torch.Tensor
    error: torch.Tensor
    params: torch.Tensor
    omega: torch.Tensor
    diverged: torch.Tensor
    diverged_at: torch.Tensor
    experts: torch.Tensor
    lr: torch.Tensor


def _settings(value, name: str, check) -> tuple[list, bool]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [check(value, name=name)], False
    if isinstance(value, (str, bytes, bool)) or not hasattr(value, "__len__") or len(value) == 0:
        raise ValueError(f"{name}: expected a number or a non-empty sequence of numbers, got {value!r}")
    return [check(v, name=name) for v in value], True


def train_hard(problem: HeatProblem, *, experts: Union[int, Sequence[int]] = 1, n_basis: int = 16,
               lr: Union[float, Sequence[float]] = 3e-3, steps: int = 200,
               generator: Union[int, torch.Generator] = 0, width: int = 32, record_every: int = 10,
               damping: float = 1e-10) -> HardTraining:
    """Train the basis network with Adam on the residual loss of the hard layer with ``K`` experts (eq-hard-loss).

    Each step builds the rows (:func:`heat_rows`), solves every expert (:func:`least_squares`, implicit
    backward) and takes an Adam step on the loss: the mean squared residual of the PDE rows, of the initial
    rows and of the boundary rows, summed with weight 1 each. Sequences of expert counts and of learning
    rates train as one batch (every pair, experts first), all from the same initial network.

    Args:
        problem: a :class:`HeatProblem`; n_basis: ``N >= 1``.
        experts: ``K >= 1`` or a sequence of them; lr: an Adam learning rate ``> 0`` or a sequence of them.
        steps: Adam steps ``>= 0``; generator: seed of the initial network; width: hidden units.
        record_every: recording interval of loss and error; damping: the solve's ridge ``>= 0``.

    Returns:
        A :class:`HardTraining`.

    References:
        Chalapathi, Du & Krishnapriyan (2024), arXiv:2402.13412 (Adam on the PDE, initial and boundary
        residuals with weight 1 each).
    """
    _check_problem(problem)
    ks, k_seq = _settings(experts, "experts", check_count)
    lrs, lr_seq = _settings(lr, "lr", check_positive)
    steps = check_count(steps, name="steps", minimum=0)
    record_every = check_count(record_every, name="record_every")
    damping = check_positive(damping, name="damping", allow_zero=True)
    shape = tuple(n for n, seq in ((len(ks), k_seq), (len(lrs), lr_seq)) if seq)
    run_k = [k for k in ks for _ in lrs]
    run_lr = [v for _ in ks for v in lrs]
    net = BasisNet(n_basis, generator=generator, width=width, device=problem.pde.device)
    theta0 = net.params.expand(len(run_k), -1).clone()

    def forward(theta):
        A, c, points = heat_rows(net, problem, params=theta)
        omega, r = _solve(A, c, points, run_k, damping)
        return _group_loss(r, problem.sizes), omega

    def step(state, t, eta):
        theta, m, v = state
        with torch.enable_grad():
            theta_ = theta.detach().requires_grad_(True)
            loss, _ = forward(theta_)
            g, = torch.autograd.grad(loss.sum(), theta_)
        g = torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)  # a saturated network: no direction
        p, m, v = adam_direction(g, m, v, t + 1)
        return theta - per_run(eta, theta) * p, m, v

    big = torch.finfo(F64).max

    def record(state, t):
        with torch.no_grad():
            loss, omega = forward(state[0])
            err = relative_error(net, problem, omega, experts=run_k, params=state[0])
        return {"loss": torch.nan_to_num(loss, nan=big, posinf=big),
                "error": torch.nan_to_num(err, nan=big, posinf=big)}

    zeros = torch.zeros_like(theta0)
    out = run(step, (theta0, zeros, zeros.clone()), steps=steps, lr=run_lr, record=record,
              record_every=record_every, batched=True)
    with torch.no_grad():  # the run's record lives on the host; the rows live with the problem
        _, omega = forward(out.state[0].to(theta0.device))
    T = out.steps.shape[0]
    return HardTraining(steps=out.steps, loss=out.history["loss"].reshape(T, *shape),
                        error=out.history["error"].reshape(T, *shape),
                        params=out.state[0].reshape(*shape, -1),
                        omega=torch.nan_to_num(omega).reshape(*shape, *omega.shape[1:]),
                        diverged=out.diverged.reshape(shape), diverged_at=out.diverged_at.reshape(shape),
                        experts=torch.tensor(run_k).reshape(shape),
                        lr=torch.tensor(run_lr, dtype=F64).reshape(shape))
