"""DADAO: decentralised optimisation with two Poisson clocks (gradients, gossip) and a linear ODE in between.

``n`` nodes, joined by the edges of a graph, minimise ``sum_i f_i(x)``. Each node keeps six vectors
``x, x~, y, y~, z, z~`` (one ``(6, d)`` tensor, rows in that order). Between events they follow the linear ODE
``s' = M s`` (eq-dadao-ode), applied lazily as ``exp(tau M)`` when the node next takes part in an event. Gradient
events (rate ``n``, a uniform node) jump ``x, x~, y~`` (eq-dadao-grad); gossip events (rate ``lam_mix``, a uniform
edge) jump ``z, z~`` of both ends by the difference of their ``y + z`` (eq-dadao-comm).

:func:`simulate` plays a shared event schedule in one process; :func:`run_distributed` plays the same schedule
with one torch.distributed (gloo) process per node, each running the same per-node code (:func:`node_event`),
which makes the two bit-equal. ``python -m lessons_lib.dadao`` is the worker (:mod:`lessons_lib.distributed`).

References:
    Nabli, A. and Oyallon, E. (2023). DADAO: Decoupled Accelerated Decentralized Asynchronous Optimization.
    ICML 2023, arXiv:2208.00779.
"""

from __future__ import annotations

import cmath
import math
from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch

from . import distributed
from .backend import Record, as_generator, check_choice, check_count, check_flag, check_positive, default_device

Method = Literal["dadao", "gossip"]
ROWS = ("x", "x~", "y", "y~", "z", "z~")


# --- the graph ---------------------------------------------------------------------------------------------

def _check_edges(edges, n: int) -> list[tuple[int, int]]:
    n = check_count(n, name="n", minimum=2)
    try:
        pairs = [(int(i), int(j)) for i, j in edges]
    except (TypeError, ValueError):
        raise ValueError(f"edges: expected a list of pairs of node indices, got {edges!r}") from None
    if not pairs:
        raise ValueError("edges: the graph has no edge")
    for i, j in pairs:
        if not (0 <= i < n and 0 <= j < n) or i == j:
            raise ValueError(f"edges: ({i}, {j}) is not an edge between two different nodes of 0..{n - 1}")
    if len({(min(p), max(p)) for p in pairs}) != len(pairs):
        raise ValueError("edges: an edge is listed twice")
    return pairs


def laplacian(edges, n: int) -> torch.Tensor:
    """The graph Laplacian divided by the number of edges, ``(n, n)`` float64: the expected gossip operator when
    each event picks one edge uniformly (eq-dadao-chi)."""
    pairs = _check_edges(edges, n)
    Lap = torch.zeros(n, n, dtype=torch.float64)
    for i, j in pairs:
        Lap[i, i] += 1
        Lap[j, j] += 1
        Lap[i, j] -= 1
        Lap[j, i] -= 1
    return Lap / len(pairs)


def graph_constants(edges, n: int) -> tuple[float, float]:
    """The two graph constants of DADAO (eq-dadao-chi), from ``Lambda = Laplacian / |E|``.

    ``chi1 = 1 / lambda_2^+(Lambda)`` (one over the smallest positive eigenvalue) and
    ``chi2 = max_{(i,j) in E} (e_i - e_j)^T Lambda^+ (e_i - e_j) / 2`` (half the largest effective resistance).

    Args:
        edges: list of pairs ``(i, j)`` of node indices, each edge once.
        n: number of nodes, ``>= 2``.

    Returns:
        ``(chi1, chi2)`` as floats.

    Raises:
        ValueError: for a node outside ``0..n-1`` or a disconnected graph.

    References:
        Nabli and Oyallon (2023), DADAO, arXiv:2208.00779.
    """
    Lap = laplacian(edges, n)
    evals = torch.linalg.eigvalsh(Lap)
    if float(evals[1]) < 1e-10 * float(evals[-1]):
        raise ValueError("edges: the graph is disconnected (its Laplacian has a second zero eigenvalue)")
    pinv = torch.linalg.pinv(Lap, hermitian=True)
    eye = torch.eye(n, dtype=torch.float64)
    chi2 = max(float(0.5 * (eye[i] - eye[j]) @ pinv @ (eye[i] - eye[j])) for i, j in _check_edges(edges, n))
    return 1.0 / float(evals[1]), chi2


def graph_edges(kind: Literal["cycle", "complete", "path"], n: int) -> list[tuple[int, int]]:
    """The edges of the cycle, complete graph or path on ``n`` nodes."""
    n = check_count(n, name="n", minimum=2)
    kind = check_choice(kind, ("cycle", "complete", "path"), name="kind")
    if kind == "complete":
        return [(i, j) for i in range(n) for j in range(i + 1, n)]
    path = [(i, i + 1) for i in range(n - 1)]
    return path + [(0, n - 1)] if kind == "cycle" and n > 2 else path


# --- the constants and the flow ----------------------------------------------------------------------------

@dataclass(frozen=True)
class DadaoParams(Record):
    """DADAO's constants (eq-dadao-constants) and the eigen-decomposition of its ODE matrix ``M``."""

    L: float
    mu: float
    nu: float
    alpha: float
    alpha_t: float
    eta: float
    eta_t: float
    theta: float
    beta: float
    beta_t: float
    delta: float
    delta_t: float
    gamma: float
    gamma_t: float
    lam_grad: float
    lam_mix: float
    M: torch.Tensor        # (6, 6) float64
    evals: tuple           # the six (complex) eigenvalues of M
    P: torch.Tensor        # (12, 36) float64: rows Re and -Im of the projectors v_k w_k^T; empty: use matrix_exp
    grad_jump: torch.Tensor  # (6, 1): the jump of a gradient event is grad_jump * r
    comm_jump: torch.Tensor  # (6, 1): the jump of a gossip event is comm_jump * p


def ode_matrix(*, L: float, mu: float) -> torch.Tensor:
    """The ``6 x 6`` matrix ``M`` of the ODE between events (eq-dadao-ode), rows ``x, x~, y, y~, z, z~``."""
    L, mu = check_positive(L, name="L"), check_positive(mu, name="mu")
    nu = mu / 2
    r = math.sqrt(nu / L)
    alpha, alpha_t, eta, theta = r / 4, r / 8, r / 8, 0.5 / r
    M = torch.zeros(6, 6, dtype=torch.float64)
    M[0, 0], M[0, 1] = -eta, eta
    M[1, 0], M[1, 1] = eta, -eta
    M[2, 2], M[2, 3] = -alpha, alpha
    M[3, 1], M[3, 2], M[3, 4] = -theta * nu, -theta, -theta
    M[4, 4], M[4, 5] = -alpha, alpha
    M[5, 4], M[5, 5] = alpha_t, -alpha_t
    return M


def dadao_params(*, L: float, mu: float, chi1: float, chi2: float, n: int, lam_mult: float = 1.0,
                 gamma_mult: float = 1.0) -> DadaoParams:
    """DADAO's constants for smoothness ``L``, strong convexity ``mu`` and graph constants ``chi1, chi2``.

    With ``nu = mu / 2`` and ``r = sqrt(nu / L)`` (eq-dadao-constants): ``alpha = r/4``, ``alpha~ = r/8``,
    ``eta = eta~ = r/8``, ``theta = 1/(2r)``, ``beta = 1/2``, ``beta~ = 2 (chi1 / lam_mix) / r``, ``delta = r/4``,
    ``delta~ = 1``, ``gamma = gamma_mult / (4L)``, ``gamma~ = gamma_mult / (4 sqrt(L nu))``. The gossip rate is
    ``lam_mix = lam_mult sqrt(2 chi1 chi2)`` and ``beta~`` follows the actual rate; the gradient rate is ``n``.

    Args:
        L: smoothness, ``>= mu``.  mu: strong convexity, ``> 0``.
        chi1, chi2: the graph constants (:func:`graph_constants`), ``> 0``.
        n: number of nodes (the gradient clock's rate).
        lam_mult: multiplier on the gossip rate, ``> 0`` (1 is the paper's choice).
        gamma_mult: multiplier on both gradient step sizes ``gamma, gamma~``, ``> 0`` (1 is the paper's).

    References:
        Nabli and Oyallon (2023), DADAO, arXiv:2208.00779, and the authors' code AdelNabli/DADAO.
    """
    L, mu = check_positive(L, name="L"), check_positive(mu, name="mu")
    if L < mu:
        raise ValueError(f"L: the smoothness must be at least mu = {mu:g}, got {L:g}")
    chi1, chi2 = check_positive(chi1, name="chi1"), check_positive(chi2, name="chi2")
    n = check_count(n, name="n", minimum=2)
    lam_mult, gamma_mult = check_positive(lam_mult, name="lam_mult"), check_positive(gamma_mult, name="gamma_mult")
    nu = mu / 2
    r = math.sqrt(nu / L)
    lam_mix = lam_mult * math.sqrt(2 * chi1 * chi2)
    M = ode_matrix(L=L, mu=mu)
    evals, V = torch.linalg.eig(M)
    if float(torch.linalg.cond(V)) > 1e8:  # eigenvectors (numerically) dependent: use matrix_exp instead
        P = torch.zeros(0, 36, dtype=torch.float64)
    else:
        proj = (V.T.unsqueeze(2) * torch.linalg.inv(V).unsqueeze(1)).reshape(6, 36)
        P = torch.cat([proj.real, -proj.imag])
    gamma, gamma_t = gamma_mult / (4 * L), gamma_mult / (4 * math.sqrt(L * nu))
    beta, beta_t, delta = 0.5, 2 * (chi1 / lam_mix) / r, r / 4
    col = partial(torch.tensor, dtype=torch.float64)
    return DadaoParams(L=L, mu=mu, nu=nu, alpha=r / 4, alpha_t=r / 8, eta=r / 8, eta_t=r / 8, theta=0.5 / r,
                       beta=beta, beta_t=beta_t, delta=delta, delta_t=1.0, gamma=gamma, gamma_t=gamma_t,
                       lam_grad=float(n), lam_mix=lam_mix, M=M, evals=tuple(complex(z) for z in evals.tolist()), P=P,
                       grad_jump=col([[-gamma], [-gamma_t], [0.0], [delta + 1.0], [0.0], [0.0]]),
                       comm_jump=col([[0.0], [0.0], [0.0], [0.0], [-beta], [-beta_t]]))


def flow(state: torch.Tensor, tau: float, params: DadaoParams) -> torch.Tensor:
    """Advance a node's six vectors by time ``tau`` along the ODE between events: ``exp(tau M) state``
    (eq-dadao-ode).

    Uses ``exp(tau M) = sum_k exp(tau lambda_k) v_k w_k^T`` (right and left eigenvectors), diagonalised once in
    :func:`dadao_params`. ``M`` has a double eigenvalue 0 (the states with ``x = x~``, ``y = y~``, ``z = z~`` and
    ``nu x + y + z = 0``, a plane the flow leaves alone); it is diagonalisable, but at some ``L / mu`` (1.7, 1.8, 1.9
    and 2 among those tried) LAPACK returns two nearly parallel eigenvectors for that eigenvalue. Where their
    condition number passes ``1e8``, ``torch.linalg.matrix_exp`` is used instead.

    Args:
        state: ``(6, d)`` rows ``x, x~, y, y~, z, z~``.
        tau: elapsed time, ``>= 0``.
        params: from :func:`dadao_params`.

    Returns:
        The ``(6, d)`` state at time ``tau`` later, same dtype and device (``exp(tau M)`` is formed in float64 and
        cast to the state's dtype).

    Raises:
        ValueError: for ``tau < 0`` (or not finite).
    """
    if not 0 <= tau < math.inf:
        raise ValueError(f"tau: the elapsed time must be finite and >= 0, got {tau!r}")
    if params.P.numel() == 0:
        expm = torch.linalg.matrix_exp(params.M * tau)
    else:
        w = [cmath.exp(lam * tau) for lam in params.evals]  # exp(tau lambda_k), six complex numbers
        weights = torch.tensor([z.real for z in w] + [z.imag for z in w], dtype=torch.float64)
        expm = (weights @ params.P).view(6, 6)
    if expm.dtype != state.dtype or expm.device != state.device:
        expm = expm.to(state)
    return expm @ state


def grad_event(state: torch.Tensor, grad: torch.Tensor, params: DadaoParams) -> torch.Tensor:
    """The jump of a gradient event at one node (eq-dadao-grad), given ``grad = grad f_i(x)``.

    ``r = grad - nu x - y~``; ``x -= gamma r``; ``x~ -= gamma~ r``; ``y~ += (delta + delta~) r``.
    Returns a new ``(6, d)`` state.
    """
    r = grad - params.nu * state[0] - state[3]
    return state + params.grad_jump * r


def message(state: torch.Tensor) -> torch.Tensor:
    """What a node sends on a gossip event: ``y + z``, shape ``(d,)``."""
    return state[2] + state[4]


def comm_half(state: torch.Tensor, other: torch.Tensor, params: DadaoParams) -> torch.Tensor:
    """One end of a gossip event (eq-dadao-comm): ``p = (y + z) - other``; ``z -= beta p``; ``z~ -= beta~ p``."""
    return state + params.comm_jump * (message(state) - other)


def comm_event(si: torch.Tensor, sj: torch.Tensor, params: DadaoParams) -> tuple[torch.Tensor, torch.Tensor]:
    """A gossip event on edge ``(i, j)`` (eq-dadao-comm): both ends jump by ``-+beta (m_i - m_j)``, with
    ``m = y + z``; ``sum z`` and ``sum z~`` are conserved. Returns the two new ``(6, d)`` states."""
    mi, mj = message(si), message(sj)
    return comm_half(si, mj, params), comm_half(sj, mi, params)


# --- the problem -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LogisticProblem:
    """``f_i(x) = mean_k log(1 + exp(-b_ik a_ik . x)) + mu/2 |x|^2`` at node ``i`` (picklable).

    Attributes:
        A: ``(n, s, d)`` features. b: ``(n, s)`` labels in ``{-1, 1}``. mu: strong convexity.
        L: ``max_i lambda_max(A_i^T A_i / s) / 4 + mu``. x_star: ``(d,)`` the minimiser of ``sum_i f_i``.
    """

    A: torch.Tensor
    b: torch.Tensor
    mu: float
    L: float
    x_star: torch.Tensor

    @property
    def n(self) -> int:
        return self.A.shape[0]

    def grad(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """``grad f_i(x)``, shape ``(d,)``."""
        A, b = self.A[i], self.b[i]
        return -(A.T @ (b * torch.sigmoid(-b * (A @ x)))) / A.shape[0] + self.mu * x

    def cpu(self) -> LogisticProblem:
        return LogisticProblem(self.A.cpu(), self.b.cpu(), self.mu, self.L, self.x_star.cpu())


def logistic_problem(n_nodes: int, *, dim: int = 5, samples: int = 100, mu: float = 1.0, spread: float = 1.0,
                     generator: int | torch.Generator = 0, device=None) -> LogisticProblem:
    """Heterogeneous l2-regularised logistic regression, one data set per node.

    Node ``i`` draws ``samples`` features ``a = c_i + N(0, I_dim)`` around its own centre ``c_i ~ spread N(0, I)``
    and labels ``b = sign(a . w + N(0, 1/4))`` from one shared teacher ``w ~ N(0, I)``; ``x*`` is found by Newton's
    method on ``sum_i f_i`` in float64.

    Args:
        n_nodes: number of nodes, ``>= 2``. dim: dimension ``d``. samples: samples per node ``s``.
        mu: the l2 weight (strong convexity), ``> 0``. spread: scale of the node centres, ``>= 0`` (0: i.i.d.).
        generator: seed or torch.Generator. device: default :func:`backend.default_device`.
    """
    n, dim = check_count(n_nodes, name="n_nodes", minimum=2), check_count(dim, name="dim")
    samples, mu = check_count(samples, name="samples"), check_positive(mu, name="mu")
    spread = check_positive(spread, name="spread", allow_zero=True)
    gen = as_generator(generator, "cpu")
    w = torch.randn(dim, generator=gen, dtype=torch.float64)
    centres = spread * torch.randn(n, 1, dim, generator=gen, dtype=torch.float64)
    A = centres + torch.randn(n, samples, dim, generator=gen, dtype=torch.float64)
    b = torch.sign(A @ w + 0.5 * torch.randn(n, samples, generator=gen, dtype=torch.float64))
    b = torch.where(b == 0, torch.ones_like(b), b)
    L = float(torch.linalg.eigvalsh(A.transpose(1, 2) @ A / samples)[:, -1].max()) / 4 + mu
    x = torch.zeros(dim, dtype=torch.float64)
    for _ in range(50):  # Newton on F(x) = sum_i f_i(x)
        s = torch.sigmoid(-b * (A @ x))
        g = -(A.transpose(1, 2) @ (b * s).unsqueeze(-1)).squeeze(-1).sum(0) / samples + n * mu * x
        H = (A.transpose(1, 2) @ ((s * (1 - s)).unsqueeze(-1) * A)).sum(0) / samples + n * mu * torch.eye(dim)
        step = torch.linalg.solve(H, g)
        x = x - step
        if float(step.norm()) < 1e-15:
            break
    device = torch.device(device) if device is not None else default_device()
    return LogisticProblem(A.to(device), b.to(device), mu, L, x.to(device))


# --- the event schedule ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Schedule(Record):
    """A shared event schedule: ``times (K,)`` float64 increasing, ``kind (K,)`` (0 gradient, 1 gossip),
    ``i (K,)`` the node (or the edge's first end), ``j (K,)`` the edge's second end (``-1`` for gradients)."""

    times: torch.Tensor
    kind: torch.Tensor
    i: torch.Tensor
    j: torch.Tensor

    @property
    def grads(self) -> int:
        return int((self.kind == 0).sum())

    @property
    def comms(self) -> int:
        return int((self.kind == 1).sum())


def event_schedule(n: int, edges, *, t_max: float, lam_mix: float, lam_grad: float | None = None,
                   generator: int | torch.Generator = 0) -> Schedule:
    """The merged events of two Poisson clocks on ``[0, t_max]`` (eq-dadao-clocks).

    Gradient events come at total rate ``lam_grad`` (default ``n``) on a uniform node; gossip events at rate
    ``lam_mix`` on a uniform edge. Drawn as a Poisson number of uniform times, then a kind and a place for each.

    Args:
        n: number of nodes. edges: list of pairs. t_max: horizon, ``> 0``. lam_mix: gossip rate, ``> 0``.
        lam_grad: gradient rate, ``> 0``. generator: seed or CPU torch.Generator.
    """
    pairs = _check_edges(edges, n)
    t_max, lam_mix = check_positive(t_max, name="t_max"), check_positive(lam_mix, name="lam_mix")
    lam_grad = float(n) if lam_grad is None else check_positive(lam_grad, name="lam_grad")
    gen = as_generator(generator, "cpu")
    rate = lam_grad + lam_mix
    count = int(torch.poisson(torch.tensor([rate * t_max], dtype=torch.float64), generator=gen))
    times = torch.sort(torch.rand(count, generator=gen, dtype=torch.float64) * t_max).values
    kind = (torch.rand(count, generator=gen, dtype=torch.float64) < lam_mix / rate).long()
    node = torch.randint(n, (count,), generator=gen)
    edge = torch.randint(len(pairs), (count,), generator=gen)
    ends = torch.tensor(pairs, dtype=torch.long).reshape(-1, 2)
    i = torch.where(kind == 1, ends[edge, 0], node)
    j = torch.where(kind == 1, ends[edge, 1], torch.full_like(node, -1))
    return Schedule(times, kind, i, j)


# --- one node's events: the code shared by the simulation and the processes ---------------------------------

def node_event(state: torch.Tensor, tau: float, params: DadaoParams, *, grad_fn=None, other=None,
               method: Method = "dadao", lr: float | None = None, advanced: bool = False) -> torch.Tensor:
    """Play one event at one node (eq-dadao-ode, eq-dadao-grad, eq-dadao-comm): advance the node's state by
    the time ``tau`` since its last event, then jump.

    Args:
        state: ``(6, d)``. tau: time since the node's last event, ``>= 0``. params: :func:`dadao_params`.
        grad_fn: for a gradient event, ``x -> grad f_i(x)``. other: for a gossip event, the neighbour's message.
        method: ``"dadao"``, or ``"gossip"``: no flow, ``x -= lr grad`` on gradients, ``x = (x + x_j)/2`` on gossip.
        lr: the gossip baseline's step size.
        advanced: the state is already at the event's time (skip the flow; ``tau`` is ignored).

    Returns:
        The node's new ``(6, d)`` state.
    """
    if (grad_fn is None) == (other is None):
        raise ValueError("grad_fn: give exactly one of grad_fn (a gradient event) and other (a gossip event)")
    if method not in ("dadao", "gossip"):
        check_choice(method, ("dadao", "gossip"), name="method")
    if advanced is not True and advanced is not False:
        check_flag(advanced, name="advanced")
    if method == "gossip":
        out = state.clone()
        out[0] = state[0] - lr * grad_fn(state[0]) if grad_fn is not None else (state[0] + other) / 2
        return out
    if not advanced:
        state = flow(state, tau, params)
    return grad_event(state, grad_fn(state[0]), params) if grad_fn is not None else comm_half(state, other, params)


def _play(problem, params, schedule: Schedule, grid: torch.Tensor, nodes, exchange, method: Method, lr,
          blowup: float):
    """Play the events of ``nodes`` in time order; ``exchange(event k, own node, other node, own message)``
    returns the message of a gossip partner that is not in ``nodes``; a frozen node still calls it (its partner
    is waiting for its message). Returns per node: the final x, the squared errors on ``grid``, the event at which
    the node left the ball (``-1``: never) and the final ``(6, d)`` state (at ``grid[-1]``, or where it froze)."""
    d = problem.x_star.shape[0]
    states = {v: torch.zeros(6, d, dtype=torch.float64) for v in nodes}
    last = {v: 0.0 for v in nodes}
    frozen = {v: -1 for v in nodes}
    errors = {v: [] for v in nodes}
    x_star = problem.x_star
    times, kind, ii, jj = (schedule.times.tolist(), schedule.kind.tolist(), schedule.i.tolist(),
                           schedule.j.tolist())
    grid_list, g = grid.tolist(), 0

    def x_at(v, t):
        if method == "gossip" or frozen[v] >= 0:
            return states[v][0]
        return flow(states[v], t - last[v], params)[0]

    def record_until(t):
        nonlocal g
        while g < len(grid_list) and grid_list[g] <= t:
            for v in nodes:
                errors[v].append(((x_at(v, grid_list[g]) - x_star) ** 2).sum())
            g += 1

    for k, t in enumerate(times):
        record_until(t)
        ends = [v for v in ((ii[k],) if kind[k] == 0 else (ii[k], jj[k])) if v in states]
        if kind[k] == 1:  # every owned end advances and computes its message before any end jumps
            now = {v: states[v] if method == "gossip" or frozen[v] >= 0 else flow(states[v], t - last[v], params)
                   for v in ends}
            out = {v: now[v][0] if method == "gossip" else message(now[v]) for v in ends}
        for v in ends:
            if frozen[v] >= 0:  # a frozen node no longer moves, but its partner still gets its (frozen) message
                if kind[k] == 1:
                    w = jj[k] if v == ii[k] else ii[k]
                    if w not in states:
                        exchange(k, v, w, out[v])  # the reply is discarded; skipping the call would deadlock
                continue
            if kind[k] == 0:
                new = node_event(states[v], t - last[v], params, grad_fn=lambda x, v=v: problem.grad(v, x),
                                 method=method, lr=lr)
            else:
                w = jj[k] if v == ii[k] else ii[k]
                other = out[w] if w in states else exchange(k, v, w, out[v])
                new = node_event(now[v], 0.0, params, other=other, method=method, lr=lr, advanced=True)
            if not (float(new.norm()) <= blowup):  # left the ball (or not finite): freeze this node
                frozen[v] = k + 1
            else:
                states[v], last[v] = new, t
    record_until(math.inf)
    end = float(grid[-1])
    final = {v: states[v] if method == "gossip" or frozen[v] >= 0 else flow(states[v], end - last[v], params)
             for v in nodes}
    return {v: (x_at(v, end), torch.stack(errors[v]), frozen[v], final[v]) for v in nodes}


# --- the runners -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DadaoRun(Record):
    """A DADAO (or gossip) run.

    Attributes:
        x: ``(n, d)`` every node's x at ``t_max``. times: ``(G,)`` the grid. error: ``(G,)`` mean ``|x_i - x*|^2``.
        grads, comms: numbers of gradient and gossip events. diverged: a node left the ball ``|state| <= blowup``.
        diverged_at: the first event (1-based) at which one did, ``-1`` if none. lam_mix: the gossip rate.
        state: ``(n, 6, d)`` every node's six vectors at ``t_max`` (a frozen node's at its last finite event).
    """

    x: torch.Tensor
    times: torch.Tensor
    error: torch.Tensor
    grads: int
    comms: int
    diverged: bool
    diverged_at: int
    lam_mix: float
    state: torch.Tensor


def _setup(problem, edges, t_max, generator, lam_mult, gamma_mult, method, n_grid, blowup):
    if not isinstance(problem, LogisticProblem):
        raise ValueError(f"problem: expected a LogisticProblem, got {type(problem).__name__}")
    n = problem.n
    _check_edges(edges, n)
    chi1, chi2 = graph_constants(edges, n)
    method = check_choice(method, ("dadao", "gossip"), name="method")
    params = dadao_params(L=problem.L, mu=problem.mu, chi1=chi1, chi2=chi2, n=n, lam_mult=lam_mult,
                          gamma_mult=gamma_mult)
    t_max = check_positive(t_max, name="t_max")
    n_grid = check_count(n_grid, name="n_grid", minimum=2)
    blowup = check_positive(blowup, name="blowup")
    gen = as_generator(generator, "cpu")
    return params, method, torch.linspace(0, t_max, n_grid, dtype=torch.float64), gen, blowup


def _record(problem, params, schedule, grid, per_node) -> DadaoRun:
    n = problem.n
    first = [per_node[v][2] for v in range(n) if per_node[v][2] >= 0]
    return DadaoRun(x=torch.stack([per_node[v][0] for v in range(n)]), times=grid,
                    error=torch.stack([per_node[v][1] for v in range(n)]).mean(0), grads=schedule.grads,
                    comms=schedule.comms, diverged=bool(first), diverged_at=min(first) if first else -1,
                    lam_mix=params.lam_mix, state=torch.stack([per_node[v][3] for v in range(n)]))


def simulate(problem: LogisticProblem, edges, *, t_max: float = 200.0, generator: int | torch.Generator = 0,
             lam_mult: float = 1.0, gamma_mult: float = 1.0, method: Method = "dadao", n_grid: int = 101,
             blowup: float = 1e6) -> DadaoRun:
    """Run DADAO (eq-dadao-ode, eq-dadao-grad, eq-dadao-comm) or the gossip baseline in one process.

    Every node starts at zero. The schedule (:func:`event_schedule`, gossip rate
    ``lam_mult sqrt(2 chi1 chi2)``) is played in time order; each node is advanced only at its own events.
    ``"gossip"`` takes ``x -= (gamma_mult / L) grad f_i(x)`` on gradient events and averages ``x`` on edges.
    A node whose state leaves the ball ``|state| <= blowup`` (or stops being finite) is frozen at its last finite
    state; the run is then ``diverged`` at that event.

    Args:
        problem: :func:`logistic_problem`. edges: list of pairs. t_max: horizon, ``> 0``. generator: seed.
        lam_mult, gamma_mult: the knobs of :func:`dadao_params`. method: ``"dadao"`` or ``"gossip"``.
        n_grid: points of the error grid on ``[0, t_max]``. blowup: divergence radius, ``> 0``.

    Returns:
        :class:`DadaoRun`, on the host (computed on the CPU).

    References:
        Nabli and Oyallon (2023), DADAO, arXiv:2208.00779.
    """
    params, method, grid, gen, blowup = _setup(problem, edges, t_max, generator, lam_mult, gamma_mult, method,
                                               n_grid, blowup)
    problem = problem.cpu()
    schedule = event_schedule(problem.n, edges, t_max=float(grid[-1]), lam_mix=params.lam_mix, generator=gen)
    lr = 4 * params.gamma if method == "gossip" else None
    per_node = _play(problem, params, schedule, grid, range(problem.n), None, method, lr, blowup)
    return _record(problem, params, schedule, grid, per_node)


def run_distributed(problem: LogisticProblem, edges, *, t_max: float = 200.0,
                    generator: int | torch.Generator = 0, lam_mult: float = 1.0, gamma_mult: float = 1.0,
                    method: Method = "dadao", n_grid: int = 101, blowup: float = 1e6,
                    timeout: float = 60.0) -> DadaoRun:
    """:func:`simulate` on ``n`` real processes, one per node, talking through torch.distributed (gloo).

    Rank 0 draws the schedule (the same one :func:`simulate` draws from ``generator``) and broadcasts it; each
    rank plays its own node's events in time order with :func:`node_event`, the code the simulation uses. A gossip
    event is a blocking exchange of messages, the lower rank sending first; the run ends at a barrier. The
    workers are ``python -m lessons_lib.dadao`` (:func:`distributed.launch`). On one machine the result equals
    :func:`simulate`'s bit for bit.

    Args:
        as :func:`simulate`; timeout: seconds for the whole run, start-up included, ``> 0``.

    Returns:
        :class:`DadaoRun`.

    Raises:
        RuntimeError, TimeoutError: from :func:`distributed.launch`.
    """
    timeout = check_positive(timeout, name="timeout")
    payload = make_payload(problem, edges, t_max=t_max, generator=generator, lam_mult=lam_mult,
                           gamma_mult=gamma_mult, method=method, n_grid=n_grid, blowup=blowup)
    results = distributed.launch("lessons_lib.dadao", payload, world_size=problem.n, timeout=timeout)
    return from_results(payload, results)


def make_payload(problem: LogisticProblem, edges, *, t_max: float = 200.0, generator: int | torch.Generator = 0,
                 lam_mult: float = 1.0, gamma_mult: float = 1.0, method: Method = "dadao", n_grid: int = 101,
                 blowup: float = 1e6) -> dict:
    """What every worker of :func:`run_distributed` receives; save it with ``torch.save`` for a ``torchrun`` launch.

    Arguments as :func:`simulate` (the problem is moved to the CPU; the generator's state is stored, so the workers
    draw the schedule :func:`simulate` would draw). Returns a dict for ``python -m lessons_lib.dadao``.
    """
    _, method, grid, gen, blowup = _setup(problem, edges, t_max, generator, lam_mult, gamma_mult, method, n_grid,
                                          blowup)
    return dict(problem=problem.cpu(), edges=[tuple(e) for e in edges], t_max=float(grid[-1]), n_grid=len(grid),
                generator=gen.get_state(), lam_mult=lam_mult, gamma_mult=gamma_mult, method=method, blowup=blowup)


def from_results(payload: dict, results: list) -> DadaoRun:
    """The record of a distributed run from its payload (:func:`make_payload`) and the workers' results in rank
    order (the files ``result-<rank>.pt``, read with ``torch.load(..., weights_only=False)``)."""
    if not isinstance(payload, dict) or "problem" not in payload:
        raise ValueError("payload: expected the dict make_payload returns")
    problem = payload["problem"]
    if not isinstance(results, (list, tuple)) or len(results) != problem.n:
        raise ValueError(f"results: expected one result per node ({problem.n}), in rank order")
    params, _, grid, _, _ = _setup(problem, payload["edges"], payload["t_max"], 0, payload["lam_mult"],
                                   payload["gamma_mult"], payload["method"], payload["n_grid"], payload["blowup"])
    return _record(problem, params, results[0][0], grid, {r: res[1] for r, res in enumerate(results)})


def _worker(payload: dict, rank: int, world: int):
    """One node of :func:`run_distributed` (rank = node): returns (schedule or None, (x, errors, diverged_at))."""
    import torch.distributed as dist

    problem = payload["problem"]
    params, method, grid, _, blowup = _setup(problem, payload["edges"], payload["t_max"], 0, payload["lam_mult"],
                                             payload["gamma_mult"], payload["method"], payload["n_grid"],
                                             payload["blowup"])
    if world != problem.n:
        raise RuntimeError(f"world size {world} != {problem.n} nodes: run one process per node")
    count = torch.zeros(1, dtype=torch.long)
    if rank == 0:
        gen = torch.Generator()
        gen.set_state(payload["generator"])
        schedule = event_schedule(problem.n, payload["edges"], t_max=payload["t_max"], lam_mix=params.lam_mix,
                                  generator=gen)
        count[0] = schedule.times.numel()
    dist.broadcast(count, src=0)
    if rank != 0:
        K = int(count[0])
        schedule = Schedule(torch.zeros(K, dtype=torch.float64), *(torch.zeros(K, dtype=torch.long) for _ in "kij"))
    for tensor in (schedule.times, schedule.kind, schedule.i, schedule.j):
        dist.broadcast(tensor, src=0)

    def exchange(k, v, w, own):
        buffer = torch.empty_like(own)
        if v < w:  # the lower rank sends first: both sides agree on the order, so it never deadlocks
            dist.send(own.contiguous(), dst=w)
            dist.recv(buffer, src=w)
        else:
            dist.recv(buffer, src=w)
            dist.send(own.contiguous(), dst=w)
        return buffer

    lr = 4 * params.gamma if method == "gossip" else None
    per_node = _play(problem, params, schedule, grid, [rank], exchange, method, lr, blowup)
    return (schedule if rank == 0 else None), per_node[rank]


if __name__ == "__main__":  # a worker of run_distributed: use the imported module, whose classes were pickled
    from lessons_lib import dadao as _imported

    distributed.serve(_imported._worker)
