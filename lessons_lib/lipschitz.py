"""Local Lipschitz constants of ReLU networks by bound propagation on the gradient's graph.

For an output ``f_j`` of a ReLU network and the input ball ``B = {x : ||x - x0||_inf <= eps}``, the local
Lipschitz constant in the l_inf -> |.| sense is

    L_j = max_{x in B} ||grad f_j(x)||_1                       (l1 is the dual norm of l_inf),

and the gradient follows the Clarke chain rule ``g_{l-1} = W_l^T (g_l * s_l)`` with ``s_l`` the ReLU
derivative: {1} for a neuron active on all of B, {0} for one inactive on all of B, [0, 1] for an unstable one
(eq-lip-clarke). Four upper bounds, loosest first, and a lower bound:

* :func:`naive_bound`: the product of layer norms, blind to ``x0``;
* :func:`interval_bound`: interval (IBP) pre-activation bounds, then intervals backwards through the Clarke
  graph (RecurJac style, eq-lip-interval);
* :func:`linear_bound`: linear relaxations of the Clarke node and of ``|g|``, back-substituted to the
  constant top row (eq-lip-linear), a simplified version of the paper's relaxation;
* :func:`bab_bound`: branch and bound over unstable neurons with an LP that prunes empty regions, exact when
  run to completion;
* :func:`sampled_lower_bound`: the largest ``||grad f_j||_1`` at random points of the ball.

Reference: Z. Shi, Y. Wang, H. Zhang, J. Z. Kolter and C.-J. Hsieh (2022), "Efficiently Computing Local
Lipschitz Constants of Neural Networks via Bound Propagation", NeurIPS 2022, arXiv:2210.07394. The paper bounds
the forward pre-activations with optimised CROWN; this module uses IBP, which makes its linear bound looser
than the paper's.

Networks and bounds are torch float64; the LPs run in :func:`scipy.optimize.linprog` on NumPy copies.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from scipy.optimize import linprog

from .backend import Record, as_generator, check_count, check_positive

__all__ = ["ReluNet", "BaBResult", "relu_mlp", "gradient_l1", "naive_bound", "preactivation_bounds",
           "relu_grad_interval", "interval_bound", "linear_bound", "bab_bound", "sampled_lower_bound",
           "region_has_interior"]

_INTERIOR_TOL = 1e-9  # LP margin, in units of eps on unit-normalised rows: below it a region counts as thin


@dataclass(frozen=True)
class ReluNet:
    """A fully connected ReLU network ``f = W_L relu(... relu(W_1 x + b_1) ...) + b_L``.

    Args:
        weights: the matrices ``W_l``, each of shape ``(out, in)``; consecutive shapes must chain.
        biases: the vectors ``b_l``, one per matrix, of shape ``(out,)``.
    """

    weights: tuple
    biases: tuple

    def __post_init__(self):
        if not isinstance(self.weights, (tuple, list)) or not isinstance(self.biases, (tuple, list)):
            raise ValueError("weights, biases: expected sequences of tensors")
        if len(self.weights) == 0 or len(self.weights) != len(self.biases):
            raise ValueError(f"weights: expected one bias per weight matrix and at least one layer, got "
                             f"{len(self.weights)} weights and {len(self.biases)} biases")
        ws, bs = [], []
        for k, (W, b) in enumerate(zip(self.weights, self.biases)):
            if not isinstance(W, torch.Tensor) or W.ndim != 2 or not W.is_floating_point():
                raise ValueError(f"weights: layer {k} must be a 2-D float tensor")
            if not isinstance(b, torch.Tensor) or b.shape != (W.shape[0],):
                raise ValueError(f"biases: layer {k} must have shape ({W.shape[0]},)")
            if k and W.shape[1] != ws[-1].shape[0]:
                raise ValueError(f"weights: layer {k} takes {W.shape[1]} inputs but layer {k - 1} gives "
                                 f"{ws[-1].shape[0]}")
            if not (torch.isfinite(W).all() and torch.isfinite(b).all()):
                raise ValueError(f"weights: layer {k} holds NaN or infinity")
            ws.append(W.to(torch.float64))
            bs.append(b.to(device=W.device, dtype=torch.float64))
        object.__setattr__(self, "weights", tuple(ws))
        object.__setattr__(self, "biases", tuple(bs))

    @property
    def sizes(self) -> tuple[int, ...]:
        """The layer widths, input first."""
        return (self.weights[0].shape[1],) + tuple(W.shape[0] for W in self.weights)

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        """The outputs for a batch ``X`` of shape ``(n, in)``: shape ``(n, out)``."""
        a = X
        for W, b in zip(self.weights[:-1], self.biases[:-1]):
            a = torch.relu(a @ W.T + b)
        return a @ self.weights[-1].T + self.biases[-1]


@dataclass(frozen=True)
class BaBResult(Record):
    """The outcome of :func:`bab_bound`.

    Attributes:
        value: the certified upper bound on ``max ||grad f_j||_1`` over the ball.
        exact: True when the search finished: ``value`` is then the exact maximum.
        branches: the number of splits made.
        trace: the certified bound before the first split and after each split (``branches + 1`` numbers,
            not increasing): what a budget of ``k`` splits would have returned is ``trace[k]``.
        witness: when ``exact``, a point of the ball inside the maximising linear region (the centre of the
            largest ball that fits in it), where ``||grad f_j||_1`` equals ``value``; else empty.
    """

    value: float
    exact: bool
    branches: int
    trace: tuple = ()
    witness: tuple = ()


def relu_mlp(sizes: Sequence[int], *, generator, scale: float = 1.0) -> ReluNet:
    """A random ReLU network with He-scaled Gaussian weights and Gaussian biases of std ``0.5 * scale``.

    Args:
        sizes: the widths, input first, at least two.
        generator: int seed or ``torch.Generator``.
        scale: multiplies every weight and bias (> 0).

    Returns:
        a float64 :class:`ReluNet` on the CPU.
    """
    scale = check_positive(scale, name="scale")
    if not isinstance(sizes, (tuple, list)) or len(sizes) < 2:
        raise ValueError("sizes: expected at least two widths (input and output)")
    sizes = [check_count(s, name="sizes") for s in sizes]
    gen = as_generator(generator, device="cpu")
    ws, bs = [], []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        ws.append(scale * (2.0 / n_in) ** 0.5 * torch.randn(n_out, n_in, generator=gen, dtype=torch.float64))
        bs.append(0.5 * scale * torch.randn(n_out, generator=gen, dtype=torch.float64))
    return ReluNet(tuple(ws), tuple(bs))


def _check_net(net) -> ReluNet:
    if not isinstance(net, ReluNet):
        raise ValueError(f"net: expected a ReluNet, got {type(net).__name__}")
    return net


def _check_output(net: ReluNet, output) -> int:
    n_out = net.weights[-1].shape[0]
    if isinstance(output, bool) or not isinstance(output, int) or not 0 <= output < n_out:
        raise ValueError(f"output: expected an index in [0, {n_out}), got {output!r}")
    return output


def _check_ball(net: ReluNet, x0, eps) -> tuple[torch.Tensor, float]:
    eps = check_positive(eps, name="eps", allow_zero=True)
    return _finite(x0, "x0", (net.sizes[0],)).to(device=net.weights[0].device, dtype=torch.float64), eps


def _finite(x, name: str, shape: tuple | None = None) -> torch.Tensor:
    """``x`` if it is a finite real float tensor (of ``shape`` when given); else a ValueError naming ``name``."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f"{name}: expected a real floating-point tensor, got {type(x).__name__}")
    if shape is not None and tuple(x.shape) != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: holds NaN or infinity")
    return x


def gradient_l1(net: ReluNet, X: torch.Tensor, *, output: int = 0) -> torch.Tensor:
    """``||grad f_j(x)||_1`` for each row ``x`` of ``X`` (shape ``(n, in)``), by the chain rule (eq-lip-clarke).

    A neuron at exactly zero takes the derivative 0, as torch's ReLU does.

    Returns:
        a tensor of shape ``(n,)``.
    """
    net, output = _check_net(net), _check_output(net, output)
    if _finite(X, "X").ndim != 2 or X.shape[1] != net.sizes[0]:
        raise ValueError(f"X: expected a tensor of shape (n, {net.sizes[0]})")
    a, masks = X.to(net.weights[0].device, torch.float64), []
    for W, b in zip(net.weights[:-1], net.biases[:-1]):
        z = a @ W.T + b
        masks.append((z > 0).to(torch.float64))
        a = torch.relu(z)
    g = net.weights[-1][output].expand(X.shape[0], -1)
    for W, s in zip(reversed(net.weights[:-1]), reversed(masks)):
        g = (g * s) @ W
    return g.abs().sum(1)


def naive_bound(net: ReluNet, *, output: int = 0) -> float:
    """The global bound ``||W_L[j]||_1 prod_l ||W_l||_inf`` (max row sums), the same for every ball."""
    net, output = _check_net(net), _check_output(net, output)
    value = net.weights[-1][output].abs().sum()
    for W in net.weights[:-1]:
        value = value * W.abs().sum(1).max()
    return float(value)


def _decided(split: torch.Tensor | None, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """+1 active, -1 inactive, 0 unstable, for one layer."""
    s = torch.where(lo >= 0, 1, torch.where(hi <= 0, -1, 0))
    return s if split is None else torch.where(split != 0, split.to(s.dtype), s)


def preactivation_bounds(net: ReluNet, x0: torch.Tensor, eps: float, *, splits=None) -> list:
    """Interval bounds ``(lo, hi)`` on every hidden layer's pre-activations over the ball.

    Bounds come from interval arithmetic (IBP); a layer whose predecessors are all stable or split is an affine
    map of ``x``, and its exact box bound is used instead. ``splits`` (a list of int tensors, one per hidden
    layer, +1 forcing ``z >= 0``, -1 forcing ``z <= 0``, 0 free) clamps the bounds of split neurons.

    Returns:
        a list of ``(lo, hi)`` pairs, one per hidden layer.
    """
    net = _check_net(net)
    x0, eps = _check_ball(net, x0, eps)
    hidden = len(net.weights) - 1
    if splits is not None and (not isinstance(splits, (list, tuple)) or len(splits) != hidden or any(
            not isinstance(s, torch.Tensor) or s.shape != net.biases[k].shape for k, s in enumerate(splits))):
        raise ValueError(f"splits: expected {hidden} int tensors, one per hidden layer, shaped like its biases")
    a_lo, a_hi = x0 - eps, x0 + eps
    A, c = torch.eye(len(x0), dtype=torch.float64, device=x0.device), torch.zeros_like(x0)  # z = A x + c
    out = []
    for k, (W, b) in enumerate(zip(net.weights[:-1], net.biases[:-1])):
        mid, rad = W @ ((a_lo + a_hi) / 2) + b, W.abs() @ ((a_hi - a_lo) / 2)
        lo, hi = mid - rad, mid + rad
        if A is not None:
            A, c = W @ A, W @ c + b
            centre, reach = A @ x0 + c, eps * A.abs().sum(1)
            lo, hi = torch.maximum(lo, centre - reach), torch.minimum(hi, centre + reach)
        if splits is not None:
            lo = torch.where(splits[k] > 0, lo.clamp(min=0.0), lo)
            hi = torch.where(splits[k] < 0, hi.clamp(max=0.0), hi)
            hi = torch.maximum(hi, lo)  # an empty split region keeps a point interval (pruned by the LP)
        out.append((lo, hi))
        state = _decided(None if splits is None else splits[k], lo, hi)
        if A is not None and bool((state != 0).all()):
            s = (state > 0).to(torch.float64)
            A, c = s[:, None] * A, s * c
        else:
            A = c = None
        a_lo, a_hi = lo.clamp(min=0.0), hi.clamp(min=0.0)
    return out


def relu_grad_interval(g_lo: torch.Tensor, g_hi: torch.Tensor, lo: torch.Tensor,
                       hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Interval bounds on ``y = g * s`` with ``g in [g_lo, g_hi]`` and ``s`` the Clarke ReLU derivative at a
    pre-activation in ``[lo, hi]`` (eq-lip-interval): ``y = g`` if ``lo >= 0``, ``y = 0`` if ``hi <= 0``, else
    ``y in [min(g_lo, 0), max(g_hi, 0)]``.

    Returns:
        ``(y_lo, y_hi)``, tensors shaped like ``g_lo``.
    """
    for name, v in (("g_lo", g_lo), ("g_hi", g_hi), ("lo", lo), ("hi", hi)):
        _finite(v, name)
    if g_lo.shape != g_hi.shape or lo.shape != g_lo.shape or hi.shape != g_lo.shape:
        raise ValueError("g_lo: g_lo, g_hi, lo and hi must share one shape")
    if bool((g_lo > g_hi).any()) or bool((lo > hi).any()):
        raise ValueError("g_lo: each lower end must be at most its upper end")
    active, inactive = lo >= 0, hi <= 0
    zero = torch.zeros_like(g_lo)
    y_lo = torch.where(active, g_lo, torch.where(inactive, zero, g_lo.clamp(max=0.0)))
    y_hi = torch.where(active, g_hi, torch.where(inactive, zero, g_hi.clamp(min=0.0)))
    return y_lo, y_hi


def _backward_intervals(net: ReluNet, pre: list, output: int) -> list:
    """Interval bounds on the backward values ``g_{L-1}, ..., g_0`` (top first)."""
    g = net.weights[-1][output]
    gs = [(g, g)]
    g_lo, g_hi = g, g
    for W, (lo, hi) in zip(reversed(net.weights[:-1]), reversed(pre)):
        y_lo, y_hi = relu_grad_interval(g_lo, g_hi, lo, hi)
        mid, rad = W.T @ ((y_lo + y_hi) / 2), W.T.abs() @ ((y_hi - y_lo) / 2)
        g_lo, g_hi = mid - rad, mid + rad
        gs.append((g_lo, g_hi))
    return gs


def _interval_value(net, pre, output) -> float:
    g_lo, g_hi = _backward_intervals(net, pre, output)[-1]
    return float(torch.maximum(g_lo.abs(), g_hi.abs()).sum())


def interval_bound(net: ReluNet, x0: torch.Tensor, eps: float, *, output: int = 0) -> float:
    """The interval (RecurJac-style) upper bound on ``max_{x in B} ||grad f_j(x)||_1`` (eq-lip-interval)."""
    net, output = _check_net(net), _check_output(net, output)
    return _interval_value(net, preactivation_bounds(net, x0, eps), output)


def _chord(lo, hi):
    """Slope and intercept of the upper chord of relu on ``[lo, hi]`` (relu itself when the sign is fixed)."""
    width = torch.where(hi > lo, hi - lo, torch.ones_like(lo))
    unstable = (lo < 0) & (hi > 0)
    slope = torch.where(unstable, hi / width, (lo >= 0).to(lo.dtype))
    return slope, torch.where(unstable, -slope * lo, torch.zeros_like(lo))


def _linear_value(net, pre, output) -> float:
    gs = _backward_intervals(net, pre, output)
    l0, u0 = gs[-1]
    # |g_0| <= its chord on [l0, u0]: slope (|u| - |l|) / (u - l), exact when the sign is fixed
    width = torch.where(u0 > l0, u0 - l0, torch.ones_like(l0))
    slope = torch.where(l0 >= 0, 1.0, torch.where(u0 <= 0, -1.0, (u0.abs() - l0.abs()) / width))
    const = (torch.where((l0 < 0) & (u0 > 0), l0.abs() - slope * l0, torch.zeros_like(l0))).sum()
    lam = slope  # coefficient on g_0
    for depth, (W, (lo, hi)) in enumerate(zip(net.weights[:-1], pre)):
        mu = W @ lam  # coefficient on y_l = g_l * s_l
        g_lo, g_hi = gs[-2 - depth]
        active, inactive = lo >= 0, hi <= 0
        # unstable: -relu(-g) <= y <= relu(g); mu > 0 uses relu(g) <= chord, mu < 0 uses relu(-g) <= chord
        a_pos, c_pos = _chord(g_lo, g_hi)
        a_neg, c_neg = _chord(-g_hi, -g_lo)  # relu(-g) <= a_neg * (-g) + c_neg
        coef = torch.where(mu >= 0, mu * a_pos, mu * a_neg)  # -mu * a_neg * (-g) = mu * a_neg * g
        add = torch.where(mu >= 0, mu * c_pos, -mu * c_neg)
        coef = torch.where(active, mu, torch.where(inactive, torch.zeros_like(mu), coef))
        const = const + torch.where(active | inactive, torch.zeros_like(mu), add).sum()
        lam = coef  # coefficient on g_l
    return float(lam @ gs[0][0] + const)


def linear_bound(net: ReluNet, x0: torch.Tensor, eps: float, *, output: int = 0) -> float:
    """The linear-relaxation upper bound on ``max_{x in B} ||grad f_j(x)||_1`` (eq-lip-linear).

    Each unstable Clarke node obeys ``-relu(-g) <= y <= relu(g)``; each ``relu`` lies below its chord on the
    interval ``[l_g, u_g]`` of its input, and ``|g_0|`` below its chord. Back-substituting these linear upper
    bounds through ``g_{l-1} = W_l^T y_l`` down to the constant top row ``W_L[j]`` gives a number.
    """
    net, output = _check_net(net), _check_output(net, output)
    return _linear_value(net, preactivation_bounds(net, x0, eps), output)


def _constraints(net, splits, pre):
    """``A_ub x <= b_ub`` for the split neurons whose pre-activation is an affine map of ``x``."""
    rows, rhs = [], []
    A = torch.eye(net.sizes[0], dtype=torch.float64, device=net.weights[0].device)
    c = torch.zeros(net.sizes[0], dtype=torch.float64, device=A.device)
    for k, (W, b) in enumerate(zip(net.weights[:-1], net.biases[:-1])):
        A, c = W @ A, W @ c + b
        for i in torch.nonzero(splits[k]).flatten().tolist():
            sign = float(splits[k][i])  # sign * z >= margin  <=>  -sign * A_i x + margin <= sign * c_i
            rows.append(-sign * A[i]), rhs.append(sign * c[i])
        state = _decided(splits[k], *pre[k])
        if not bool((state != 0).all()):
            break
        s = (state > 0).to(torch.float64)
        A, c = s[:, None] * A, s * c
    return rows, rhs


def _interior_margin(A_ub, b_ub, x0: torch.Tensor, eps: float, point: bool = False):
    """The largest ``t`` with ``A_ub x + t ||A_ub,i|| eps <= b_ub`` for some ``x`` in the box, divided by ``eps``:
    the radius (in units of ``eps``) of the largest Euclidean ball of the scaled box ``u = (x - x0) / eps`` whose
    centre satisfies every constraint with that margin, capped at 1. Rows are normalised, so the margin is a
    distance and does not depend on the scale of a row; a negative margin means the region misses the box.
    With ``point``, also the maximising ``x`` (a NumPy array; ``x0`` when there is no constraint)."""
    n = len(x0)
    A = np.asarray(torch.stack([torch.as_tensor(r) for r in A_ub]).cpu().numpy(), dtype=np.float64) \
        if not isinstance(A_ub, np.ndarray) else np.asarray(A_ub, dtype=np.float64)
    b = np.asarray([float(v) for v in b_ub], dtype=np.float64)
    if A.shape != (len(b), n):
        raise ValueError(f"A_ub: expected shape ({len(b)}, {n})")
    x = x0.detach().cpu().numpy().astype(np.float64)
    # x = x0 + eps u with u in [-1, 1]^n:  (eps A_i) u < b_i - A_i x0, then divide each row by ||eps A_i||_2
    Au, bu = eps * A, b - A @ x
    norms = np.linalg.norm(Au, axis=1)
    flat = norms == 0  # a row that does not depend on x: 0 < b_i holds everywhere or nowhere
    if bool((bu[flat] <= 0).any()):
        return (-1.0, x) if point else -1.0
    Au, bu = Au[~flat] / norms[~flat, None], bu[~flat] / norms[~flat]
    if len(bu) == 0:
        return (1.0, x) if point else 1.0
    res = linprog(np.r_[np.zeros(n), -1.0], A_ub=np.c_[Au, np.ones(len(bu))], b_ub=bu,
                  bounds=[(-1.0, 1.0)] * n + [(None, 1.0)], method="highs")
    if res.status != 0:
        raise RuntimeError(f"linprog failed on a region of the ball: {res.message}")
    return (float(-res.fun), x + eps * res.x[:n]) if point else float(-res.fun)


def region_has_interior(A_ub, b_ub, x0: torch.Tensor, eps: float) -> bool:
    """Whether ``{x : ||x - x0||_inf <= eps, A_ub x < b_ub}`` has an interior point, by an LP
    (``scipy.optimize.linprog``) on the scaled box ``u = (x - x0) / eps`` with each row normalised to unit length:
    ``max t  s.t.  a_i u + t <= r_i, t <= 1``. The region counts as having an interior when ``t > 1e-9``, that is
    when a Euclidean ball of radius ``1e-9 eps`` fits in it; the test does not depend on how a row is scaled.

    Args:
        A_ub: a sequence of row tensors (or an ``(m, n)`` array); empty means no constraint.
        b_ub: the right-hand sides, ``m`` numbers.
    """
    eps = check_positive(eps, name="eps", allow_zero=True)
    if _finite(x0, "x0").ndim != 1:
        raise ValueError(f"x0: expected a 1-D tensor, got shape {tuple(x0.shape)}")
    if eps == 0:
        return False  # a point has no interior
    if len(A_ub) == 0:
        return True
    return _interior_margin(A_ub, b_ub, x0, eps) > _INTERIOR_TOL


def bab_bound(net: ReluNet, x0: torch.Tensor, eps: float, *, output: int = 0,
              max_branches: int | None = None) -> BaBResult:
    """Branch and bound on unstable neurons for ``max_{x in B} ||grad f_j(x)||_1``.

    Best first: the open region with the largest bound is split on an unstable neuron of its lowest undecided
    layer (the one with the largest ``min(-lo, hi)``), each child's region is checked for an interior by an LP
    (:func:`region_has_interior`: unit-normalised rows, a margin relative to ``eps``; empty ones are dropped,
    but never both children of a split: if round-off rejects both, the thicker is kept and the result is marked
    not exact; a child dropped as thinner than ``1e-9 eps`` although its margin is positive keeps its bound in
    reserve, and a result below that bound is raised to it and marked not exact), and a child's bound is the
    smallest of its interval bound, its linear bound and its parent's. When the region on top has no unstable
    neuron its bound is its exact gradient norm and the search ends exact. With ``max_branches`` splits spent it
    stops and returns the largest open bound (sound, not exact).
    """
    net, output = _check_net(net), _check_output(net, output)
    x0, eps = _check_ball(net, x0, eps)
    if max_branches is not None:
        max_branches = check_count(max_branches, name="max_branches", minimum=0)

    def bound(splits, parent):
        pre = preactivation_bounds(net, x0, eps, splits=splits)
        value = min(_interval_value(net, pre, output), _linear_value(net, pre, output), parent)
        states = [_decided(s, *p) for s, p in zip(splits, pre)]
        return value, pre, states

    root = [torch.zeros_like(b, dtype=torch.int64) for b in net.biases[:-1]]
    value, pre, states = bound(root, float("inf"))
    heap, counter, branches, trace, inexact = [(-value, 0, root, pre, states)], 1, 0, [], False
    # the largest bound of a child dropped as thin although its LP margin was positive: a sliver of the ball
    # thinner than the LP can resolve may still hold the maximum, so the result is never below this bound
    doubt = float("-inf")
    while heap:
        neg, _, splits, pre, states = heap[0]
        trace.append(max(-neg, doubt))
        layer = next((k for k, s in enumerate(states) if bool((s == 0).any())), None)
        if layer is None:
            rows, rhs = _constraints(net, splits, pre)
            if doubt > -neg:  # a dropped sliver might beat the best region: certified, not exact
                return BaBResult(doubt, False, branches, tuple(trace))
            x = _interior_margin(rows, rhs, x0, eps, point=True)[1] if rows else x0.detach().cpu().numpy()
            return BaBResult(-neg, not inexact, branches, tuple(trace), tuple(float(v) for v in x))
        if max_branches is not None and branches >= max_branches:
            return BaBResult(max(-neg, doubt), False, branches, tuple(trace))
        heapq.heappop(heap)
        lo, hi = pre[layer]
        score = torch.where(states[layer] == 0, torch.minimum(-lo, hi), torch.full_like(lo, -1.0))
        i = int(score.argmax())
        branches += 1
        children = []
        for sign in (1, -1):
            child = [s.clone() for s in splits]
            child[layer][i] = sign
            value, cpre, cstates = bound(child, -neg)
            rows, rhs = _constraints(net, child, cpre)
            children.append((_interior_margin(rows, rhs, x0, eps) if rows else 1.0, value, child, cpre, cstates))
        kept = [c for c in children if c[0] > _INTERIOR_TOL]
        if not kept:  # round-off: the parent has an interior, so one side must; keep the thicker one, not exact
            kept, inexact = [max(children, key=lambda c: c[0])], True
        doubt = max([doubt] + [c[1] for c in children if 0 < c[0] <= _INTERIOR_TOL and all(c is not k for k in kept)])
        for _, value, child, cpre, cstates in kept:
            heapq.heappush(heap, (-value, counter, child, cpre, cstates))
            counter += 1
    raise RuntimeError("bab_bound: every region was dropped")  # unreachable: each split keeps a child


def sampled_lower_bound(net: ReluNet, x0: torch.Tensor, eps: float, *, output: int = 0, n_samples: int = 1000,
                        generator=0) -> float:
    """A lower bound: the largest ``||grad f_j||_1`` over ``x0`` and ``n_samples`` uniform points of the ball."""
    net, output = _check_net(net), _check_output(net, output)
    x0, eps = _check_ball(net, x0, eps)
    n_samples = check_count(n_samples, name="n_samples")
    gen = as_generator(generator, device="cpu")
    U = torch.rand(n_samples, len(x0), generator=gen, dtype=torch.float64).to(x0.device)
    X = torch.cat([x0[None], x0 + eps * (2 * U - 1)])
    return float(gradient_l1(net, X, output=output).max())
