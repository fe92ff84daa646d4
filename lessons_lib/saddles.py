"""Saddle-to-saddle dynamics: from a small start, networks learn one unit of complexity at a time.

* **Two-layer linear network** on whitened data, ``L = ||W2 W1 - A||_F^2 / 2`` (eq-saddle-linear-loss).
  Each singular mode of ``A`` grows on its own, ``u' = 2u(s - u)`` (eq-saddle-mode-ode), a logistic
  curve (eq-saddle-mode-solution) that is half-learned after ``ln(s/u0 - 1) / (2 s lr)`` steps
  (eq-saddle-half-time). A random start enters through an effective initial strength ``u0`` per mode
  (eq-saddle-effective-init).
* **Diagonal linear network** ``beta = u*u - v*v`` with an orthogonal design: coordinate ``i`` switches
  on after about ``ln(1/alpha) / (2 |beta*_i|)`` time units (eq-saddle-diagonal-time). The model is
  :func:`lessons_lib.stability.train_diagonal_net`; this module only chooses the data.
* **One-dimensional ReLU network** ``f(x) = sum_j a_j relu(w_j x + b_j)`` (eq-saddle-relu-net): its
  plateaus sit at the best function a narrower network can express, first the best single unit.

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
from typing import Literal, Sequence

import torch

from . import measure, stability
from .backend import as_generator, as_tensor, check_count, check_positive, to_host
from .descent import check_lr

# --- two-layer linear network ------------------------------------------------------------------


@dataclass(frozen=True)
class LinearNetRun:
    """Result of :func:`train_linear_net`; histories are indexed by ``steps`` (shape ``(K,)``).

    Attributes:
        singular_values: singular values of ``W2 W1``, descending, shape ``(K, r)``, ``r = min(d_out, d_in)``.
        loss: ``||W2 W1 - A||_F^2 / 2``, shape ``(K,)``.
        target: singular values ``s`` of ``A``, shape ``(r,)``.
        u0: effective initial strength of each target mode (eq-saddle-effective-init), shape ``(r,)``.
        W1, W2: final weights. ``diverged`` / ``diverged_at``: the run left the blow-up ball (then the
        histories stop at that step).
    """

    steps: torch.Tensor
    singular_values: torch.Tensor
    loss: torch.Tensor
    target: torch.Tensor
    u0: torch.Tensor
    W1: torch.Tensor
    W2: torch.Tensor
    lr: float
    init_scale: float
    diverged: bool = False
    diverged_at: int | None = None


def random_target(s, *, d_out: int, d_in: int, generator: int | torch.Generator = 0, device=None) -> torch.Tensor:
    """A target map ``A = U diag(s) V^T`` with singular values ``s`` and random orthonormal ``U, V``.

    Args:
        s: singular values ``>= 0``, at most ``min(d_out, d_in)`` of them. generator: seed or generator.

    Returns:
        ``A`` of shape ``(d_out, d_in)``, float64: the target of (eq-saddle-linear-loss).

    References:
        Saxe, McClelland & Ganguli (2014), arXiv:1312.6120.
    """
    d_out, d_in = check_count(d_out, name="d_out"), check_count(d_in, name="d_in")
    gen = as_generator(generator, device if device is not None else "cpu")
    s = as_tensor(s, name="s", device=gen.device)
    if s.ndim != 1 or s.numel() > min(d_out, d_in) or bool((s < 0).any()):
        raise ValueError(f"s: expected at most min(d_out, d_in) = {min(d_out, d_in)} values >= 0, got {s.tolist()}")
    U = torch.linalg.qr(torch.randn(d_out, d_out, generator=gen, dtype=s.dtype, device=gen.device)).Q
    V = torch.linalg.qr(torch.randn(d_in, d_in, generator=gen, dtype=s.dtype, device=gen.device)).Q
    return U[:, : s.numel()] @ torch.diag(s) @ V[:, : s.numel()].T


def effective_mode_strengths(W1: torch.Tensor, W2: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """Effective initial strength ``u0_i`` of each singular mode of ``A`` (eq-saddle-effective-init).

    In the early, linear phase the hidden vectors ``p_i = W1 v_i`` and ``q_i = W2^T u_i`` of mode ``i``
    grow along ``c_i = (p_i + q_i)/2``; a mode learned later must first shed its overlap with the
    directions of the modes learned before it. So ``u0_i = R_ii^2`` where ``C = QR`` and the columns of
    ``C`` are the ``c_i`` in order of decreasing ``s_i``. Modes beyond the width get ``0``.

    Args:
        W1: ``(h, d_in)``; W2: ``(d_out, h)``; A: target ``(d_out, d_in)``.

    Returns:
        Tensor of shape ``(min(d_out, d_in),)``.

    References:
        Our refinement of the small-start time of Saxe, McClelland & Ganguli (2014), arXiv:1312.6120.
    """
    U, _, Vh = torch.linalg.svd(A)
    r = min(A.shape)
    C = 0.5 * (W1 @ Vh[:r].T + W2.T @ U[:, :r])  # (h, r)
    R = torch.linalg.qr(C, mode="r").R
    u0 = torch.zeros(r, dtype=A.dtype, device=A.device)
    k = min(R.shape)
    u0[:k] = R.diagonal()[:k] ** 2
    return u0


def train_linear_net(A, *, width: int, init_scale: float, lr: float, steps: int,
                     generator: int | torch.Generator = 0, init: Literal["random", "aligned"] = "random",
                     record_every: int = 1, blowup: float = 1e6) -> LinearNetRun:
    """Full-batch GD on ``L = ||W2 W1 - A||_F^2 / 2`` (eq-saddle-linear-loss), whitened inputs.

    ``W2 <- W2 - lr (W2 W1 - A) W1^T`` and ``W1 <- W1 - lr W2^T (W2 W1 - A)``. ``init="random"`` draws
    every weight from ``init_scale * N(0, 1)``; ``init="aligned"`` starts each mode of ``A`` at exactly
    ``u0 = init_scale^2`` (``W1 = eps E V^T``, ``W2 = eps U E^T``), where the mode ODE
    (eq-saddle-mode-ode) is exact.

    Args:
        A: target map ``(d_out, d_in)``; its singular values are the mode strengths ``s_i``.
        width: hidden units ``h``. init_scale: ``eps > 0``. lr: ``eta >= 0``. steps: GD steps.
        generator: seed or generator for the random start.
        record_every: record the singular values and the loss every this many steps (and the last).
        blowup: the run diverged when a weight exceeds ``blowup * max(1, ||A||)``.

    Returns:
        A :class:`LinearNetRun`.

    References:
        Saxe, McClelland & Ganguli (2014), arXiv:1312.6120; Zhang, Saxe & Latham (2026), arXiv:2512.20607.
    """
    A = as_tensor(A, name="A")
    if A.ndim != 2 or 0 in A.shape:
        raise ValueError(f"A: expected a non-empty matrix (d_out, d_in), got shape {tuple(A.shape)}")
    width = check_count(width, name="width")
    eps = check_positive(init_scale, name="init_scale")
    lr = check_lr(lr)
    steps = check_count(steps, name="steps", minimum=0)
    record_every = check_count(record_every, name="record_every")
    if init not in ("random", "aligned"):
        raise ValueError(f"init: expected 'random' or 'aligned', got {init!r}")
    limit = check_positive(blowup, name="blowup") * max(1.0, float(A.norm()))
    (d_out, d_in), kw = A.shape, dict(dtype=A.dtype, device=A.device)
    if init == "random":
        gen = as_generator(generator, A.device)
        W1 = eps * torch.randn(width, d_in, generator=gen, **kw)
        W2 = eps * torch.randn(d_out, width, generator=gen, **kw)
    else:
        U, _, Vh = torch.linalg.svd(A)
        k = min(width, d_in, d_out)
        E = torch.eye(width, k, **kw)
        W1, W2 = eps * E @ Vh[:k], eps * U[:, :k] @ E.T
    u0 = effective_mode_strengths(W1, W2, A)
    rec, prods, at = [0], [W2 @ W1], None
    for t in range(1, steps + 1):
        E_ = W2 @ W1 - A
        W1, W2 = W1 - lr * W2.T @ E_, W2 - lr * E_ @ W1.T
        if t % record_every == 0 or t == steps:
            bad = not (bool(torch.isfinite(W1).all()) and bool(torch.isfinite(W2).all())) or \
                max(float(W1.abs().max()), float(W2.abs().max())) > limit
            if bad:
                at = t
                break
            rec.append(t)
            prods.append(W2 @ W1)
    P = torch.stack(prods)
    loss = 0.5 * ((P - A) ** 2).sum(dim=(1, 2))
    return LinearNetRun(torch.tensor(rec, device=A.device), torch.linalg.svdvals(P), loss,
                        torch.linalg.svdvals(A), u0, W1, W2, lr, eps, at is not None, at)


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
    """Logistic solution ``u(t) = s / (1 + (s/u0 - 1) e^{-2 s t})`` of ``u' = 2u(s - u)`` (eq-saddle-mode-solution).

    Args:
        s: mode strength(s), shape ``(m,)`` or scalar. t: time ``t = lr * step``, shape ``(K,)``.
        init_scale: ``eps``, giving ``u0 = eps^2``; or pass ``u0`` directly.

    Returns:
        ``u`` of shape ``(K, m)`` (or ``(K,)`` for a scalar ``s``).

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

    ``k_half = ln(s/u0 - 1) / (2 s lr)``, with ``u0 = init_scale^2`` by default, which is
    ``~ ln(s/eps^2) / (2 s lr)`` for a small start. ``rate="gd"`` replaces the flow's growth
    ``e^{2 s lr}`` per step by GD's ``(1 + s lr)^2`` (eq-saddle-effective-init). A mode that starts
    above half strength has time 0.

    Args:
        s: singular value(s) ``> 0``. init_scale: ``eps > 0``. lr: ``eta > 0``.
        u0: effective initial strengths (e.g. :attr:`LinearNetRun.u0`), overriding ``eps^2``.

    Returns:
        Steps (float tensor shaped like ``s``); ``inf`` where ``u0 = 0``.

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


# --- diagonal linear network (the stability chapter's model) -------------------------------------


@dataclass(frozen=True)
class DiagonalSparseRun:
    """Result of :func:`train_diagonal_net_sparse`: ``beta`` ``(K, d)`` and loss ``(K,)`` at ``steps``."""

    steps: torch.Tensor
    beta: torch.Tensor
    loss: torch.Tensor
    beta_star: torch.Tensor
    init_scale: float
    lr: float
    diverged: bool

    def __post_init__(self):
        to_host(self)  # records are read on the host (see backend.to_host)


def train_diagonal_net_sparse(beta_star, *, init_scale: float, lr: float, steps: int,
                              record_every: int = 1) -> DiagonalSparseRun:
    """GD on ``L = ||beta - beta*||^2 / 2`` with ``beta = u*u - v*v``, ``u = v = alpha`` at start.

    The loss is that of :func:`lessons_lib.stability.train_diagonal_net` (eq-stab-diagonal-net) with
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
    run = stability.train_diagonal_net(X, X @ beta_star, lr=check_lr(lr), steps=steps, init_scale=init_scale,
                                       record_every=record_every)
    return DiagonalSparseRun(run.record_steps, run.beta_history, run.loss_history, beta_star,
                             float(init_scale), float(lr), bool(run.diverged))


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


def relu_network(x, a, w, b) -> torch.Tensor:
    """The network ``f(x) = sum_j a_j relu(w_j x + b_j)`` of (eq-saddle-relu-net).

    Args:
        x: inputs ``(n,)``. a, w, b: weights ``(..., m)``; leading dimensions are runs.

    Returns:
        ``f`` at ``x``, shape ``(..., n)``.

    References:
        Zhang, Saxe & Latham (2026), arXiv:2512.20607.
    """
    return (torch.relu(x[:, None] * w[..., None, :] + b[..., None, :]) * a[..., None, :]).sum(-1)


def _relu_terms(x, y, a, w, b):
    z = x[:, None] * w[..., None, :] + b[..., None, :]  # (..., n, width)
    on = (z > 0).to(z.dtype)
    h = z * on
    r = (h @ a[..., None])[..., 0] - y  # residual (..., n)
    n = x.shape[0]
    ga = (r[..., None, :] @ h)[..., 0, :] / n
    gb = (r[..., None, :] @ on)[..., 0, :] * a / n
    gw = ((r * x)[..., None, :] @ on)[..., 0, :] * a / n
    return 0.5 * (r**2).mean(-1), ga, gw, gb


def relu_gradients(x, y, a, w, b) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hand-written gradients of ``L = mean_i (f(x_i) - y_i)^2 / 2`` in ``(a, w, b)``, batched like the weights.

    With residuals ``r_i`` and active sets ``1[w_j x_i + b_j > 0]``: ``dL/da_j = mean_i r_i relu(w_j x_i + b_j)``,
    ``dL/dw_j = a_j mean_i r_i x_i 1[...]``, ``dL/db_j = a_j mean_i r_i 1[...]`` (eq-saddle-relu-net).

    References:
        Zhang, Saxe & Latham (2026), arXiv:2512.20607.
    """
    return _relu_terms(x, y, a, w, b)[1:]


@dataclass(frozen=True)
class ReluRun:
    """Result of :func:`train_relu_1d`. ``R?`` is the run dimension (present when ``lr`` or
    ``init_scale`` is a sequence). ``loss`` ``(steps + 1, R?)`` at every step; ``a, w, b``
    ``(K, R?, width)`` at ``record_steps``; ``diverged`` ``(R?,)`` bool."""

    x: torch.Tensor
    y: torch.Tensor
    loss: torch.Tensor
    record_steps: torch.Tensor
    a: torch.Tensor
    w: torch.Tensor
    b: torch.Tensor
    lr: torch.Tensor
    init_scale: torch.Tensor
    diverged: torch.Tensor

    def kinks(self, k: int, run: int | None = None, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`relu_kinks` of recorded row ``k`` (of ``run`` for a batched result)."""
        pick = (lambda t: t[k]) if run is None else (lambda t: t[k, run])
        return relu_kinks(pick(self.a), pick(self.w), pick(self.b), x_range=(float(self.x.min()), float(self.x.max())),
                          **kwargs)


def train_relu_1d(x, y, *, width: int, init_scale: float | Sequence[float], lr: float | Sequence[float],
                  steps: int, generator: int | torch.Generator = 0, record_every: int = 100,
                  blowup: float = 1e6) -> ReluRun:
    """Full-batch GD on ``L = mean_i (f(x_i) - y_i)^2 / 2`` for the network of (eq-saddle-relu-net).

    Every weight starts at ``init_scale * N(0, 1)``. Sequences of ``lr`` and ``init_scale`` (broadcast
    against each other) train side by side from the *same* standard-normal draw, so runs differ only
    through the parameters.

    Args:
        x, y: data ``(n,)``. width: hidden units. steps: GD steps. generator: seed or generator.
        record_every: record the weights every this many steps (and the last).
        blowup: a run whose weights exceed this diverged; it is frozen and flagged.

    Returns:
        A :class:`ReluRun`; :meth:`ReluRun.kinks` gives the kink locations at each recorded step.

    References:
        Zhang, Saxe & Latham (2026), arXiv:2512.20607.
    """
    x = as_tensor(x, name="x")
    y = as_tensor(y, name="y", dtype=x.dtype, device=x.device)
    if x.ndim != 1 or y.shape != x.shape or x.numel() < 2:
        raise ValueError(f"x: expected x and y of the same shape (n,), n >= 2, "
                         f"got {tuple(x.shape)} and {tuple(y.shape)}")
    width = check_count(width, name="width")
    steps = check_count(steps, name="steps", minimum=0)
    record_every = check_count(record_every, name="record_every")
    blowup = check_positive(blowup, name="blowup")
    batched = not (isinstance(lr, (int, float)) and isinstance(init_scale, (int, float)))
    lrs = torch.atleast_1d(torch.as_tensor(lr, dtype=x.dtype, device=x.device))
    eps = torch.atleast_1d(torch.as_tensor(init_scale, dtype=x.dtype, device=x.device))
    if lrs.numel() == 0 or lrs.ndim != 1 or not bool(torch.isfinite(lrs).all()) or bool((lrs < 0).any()):
        raise ValueError(f"lr: expected finite learning rate(s) >= 0, got {lr!r}")
    if eps.numel() == 0 or eps.ndim != 1 or not bool(torch.isfinite(eps).all()) or bool((eps <= 0).any()):
        raise ValueError(f"init_scale: expected finite initial scale(s) > 0, got {init_scale!r}")
    try:
        lrs, eps = torch.broadcast_tensors(lrs, eps)
    except RuntimeError:
        raise ValueError(f"lr: {lrs.numel()} learning rates do not broadcast against "
                         f"{eps.numel()} init scales") from None
    gen = as_generator(generator, x.device)
    z = torch.randn(3, width, generator=gen, dtype=x.dtype, device=x.device)
    a, w, b = (eps[:, None] * z[i] for i in range(3))
    live = torch.ones_like(lrs, dtype=torch.bool)
    losses, rec, hist = [], [], []
    for t in range(steps + 1):
        if t % record_every == 0 or t == steps:
            rec.append(t)
            hist.append((a, w, b))
        loss, ga, gw, gb = _relu_terms(x, y, a, w, b)
        losses.append(loss)
        if t == steps:
            break
        step = (lrs * live)[:, None]
        a, w, b = a - step * ga, w - step * gw, b - step * gb
        if t % 64 == 63:
            big = torch.stack([a, w, b]).abs().amax(dim=(0, 2))
            live = live & torch.isfinite(big) & (big < blowup)
    sq = (lambda t: t) if batched else (lambda t: t[:, 0])
    stack = lambda i: sq(torch.stack([h[i] for h in hist]))  # noqa: E731
    return ReluRun(x, y, sq(torch.stack(losses)), torch.tensor(rec, device=x.device), stack(0), stack(1), stack(2),
                   lrs if batched else lrs[0], eps if batched else eps[0], ~live if batched else ~live[0])


def relu_kinks(a, w, b, *, x_range: tuple[float, float], min_slope: float = 0.05, merge: float = 0.05,
               margin: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    """Kinks of ``f`` inside ``x_range``: locations ``-b_j/w_j`` and slope changes ``a_j |w_j|``.

    Units whose kinks lie within ``merge`` of each other form one kink (their slope changes add up: the
    aligned units of a plateau act as one); kinks whose total slope change is below ``min_slope`` are
    dropped, and so are kinks within ``margin * (hi - lo)`` of an end of the range (they bend the fit
    at the last sample at most). Returns ``(locations, slope_changes)``, sorted by location.

    References:
        Kinks of (eq-saddle-relu-net), as counted by Zhang, Saxe & Latham (2026), arXiv:2512.20607.
    """
    lo, hi = x_range
    pad = margin * (hi - lo)
    ok = w != 0
    c, slope = -b[ok] / w[ok], (a * w.abs())[ok]
    keep = (c > lo + pad) & (c < hi - pad)
    c, slope = c[keep], slope[keep]
    order = torch.argsort(c)
    c, slope = c[order], slope[order]
    new = torch.cat([torch.zeros(1, dtype=torch.long, device=c.device), (c[1:] - c[:-1] > merge).long()])
    groups = new[: c.numel()].cumsum(0)
    m = int(groups.max()) + 1 if c.numel() else 0
    zeros = lambda: torch.zeros(m, dtype=c.dtype, device=c.device)  # noqa: E731
    total = zeros().index_add_(0, groups, slope)
    weight = zeros().index_add_(0, groups, slope.abs()).clamp_min(1e-300)
    where = zeros().index_add_(0, groups, c * slope.abs()) / weight
    big = total.abs() >= min_slope
    return where[big], total[big]


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
    x = as_tensor(x, name="x")
    y = as_tensor(y, name="y", dtype=x.dtype, device=x.device)
    if x.ndim != 1 or y.shape != x.shape or x.numel() < 2:
        raise ValueError(f"x: expected x and y of the same shape (n,), n >= 2, "
                         f"got {tuple(x.shape)} and {tuple(y.shape)}")
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
