"""Small models shared by several chapters, each with its loss, gradient and trainer.

Every trainer here is a step function handed to :func:`lessons_lib.run.run`, so divergence has the
book's one meaning (see :mod:`lessons_lib.run`). Data factories without tensor inputs create their
tensors on :func:`lessons_lib.backend.default_device`; everything else follows its inputs' device.
Result records come back on the host (:class:`lessons_lib.backend.Record`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal, Sequence

import torch

from . import schedules
from .backend import (
    DTYPE,
    Record,
    as_generator,
    as_tensor,
    as_tensors,
    check_count,
    check_float_tensor,
    check_positive,
    check_real,
    default_device,
)
from .curvature import gauss_newton
from .run import per_run, run

# --- diagonal linear network ---------------------------------------------------------------------


def rates_and_scales(lr, init_scale, *, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """``lr`` and ``init_scale`` (each a number or a sequence, see :func:`per_run_values`) as per-run tensors
    broadcast against each other, and whether either was a sequence (so the result has a run dimension)."""
    lrs, many_lr = per_run_values(lr, name="lr", like=like)
    eps, many_eps = per_run_values(init_scale, name="init_scale", like=like, positive=True)
    try:
        lrs, eps = torch.broadcast_tensors(lrs, eps)
    except RuntimeError:
        raise ValueError(f"lr: {lrs.numel()} learning rates do not broadcast against "
                         f"{eps.numel()} init scales") from None
    return lrs, eps, many_lr or many_eps


def per_run_values(values, *, name: str, like: torch.Tensor, positive: bool = False) -> tuple[torch.Tensor, bool]:
    """A number or a sequence of ``R`` numbers (one per run) as a 1-D tensor, and whether it was a sequence.

    Args:
        values: a number, or a sequence or 1-D tensor of numbers.
        name: the argument's name, for errors.
        like: the tensor whose dtype and device the result takes.
        positive: require ``> 0`` instead of ``>= 0``.

    Returns:
        ``(tensor of shape (R,), many)``; ``R = 1`` and ``many = False`` for a single number.

    Raises:
        ValueError: naming ``name`` if a value is missing, not finite or out of range.
    """
    many = not isinstance(values, (int, float)) or isinstance(values, bool)
    bound = "> 0" if positive else ">= 0"
    if isinstance(values, (bool, str, bytes, complex)) or (isinstance(values, torch.Tensor) and (
            values.dtype == torch.bool or values.is_complex())):
        raise ValueError(f"{name}: expected a number or a sequence of numbers {bound}, got {values!r}")
    try:
        t = torch.atleast_1d(torch.as_tensor(values, dtype=like.dtype, device=like.device))
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{name}: expected a number or a sequence of numbers {bound}, got {values!r}") from None
    low = (t <= 0) if positive else (t < 0)
    if t.ndim != 1 or t.numel() == 0 or not bool(torch.isfinite(t).all()) or bool(low.any()):
        raise ValueError(f"{name}: expected finite value(s) {bound}, got {values!r}")
    return t, many


def check_diagonal_net(u, v, X) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate the weights ``u, v`` ``(..., d)`` and the inputs ``X`` ``(n, d)`` of the diagonal network.

    Returns:
        ``(u, v, X)`` as float64 tensors on the device of the first tensor.

    Raises:
        ValueError: naming the argument that is not finite real numbers or has the wrong shape.
    """
    u, v, X = as_tensors(u=u, v=v, X=X)
    if u.ndim < 1 or v.shape != u.shape:
        raise ValueError(f"v: expected u and v of the same shape (..., d), got {tuple(u.shape)} and {tuple(v.shape)}")
    if X.ndim != 2 or X.shape[1] != u.shape[-1]:
        raise ValueError(f"X: expected shape (n, d) with d = {u.shape[-1]}, got {tuple(X.shape)}")
    return u, v, X


def diagonal_net_jacobian(u: torch.Tensor, v: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Per-sample gradients of ``f(x) = <u*u - v*v, x>``: rows ``[2 u*x_i, -2 v*x_i]``, shape ``(..., n, 2d)``.

    Feed them to :func:`lessons_lib.curvature.gauss_newton` for ``Tr G`` and ``lambda_max(G)``
    (eq-stab-gauss-newton) of the diagonal network (eq-stab-diagonal-net).
    """
    u, v, X = check_diagonal_net(u, v, X)
    return torch.cat([2 * u[..., None, :] * X, -2 * v[..., None, :] * X], dim=-1)


def weighted_l1(beta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """``4 sum_j sigma_j^2 |beta_j|`` with ``sigma_j^2 = mean_i x_ij^2``: the lower bound of eq-stab-trace-l1."""
    beta, X = as_tensors(beta=beta, X=X)
    if X.ndim != 2 or beta.ndim < 1 or beta.shape[-1] != X.shape[1]:
        raise ValueError(f"beta: expected beta (..., d) and X (n, d), got {tuple(beta.shape)} and {tuple(X.shape)}")
    return 4 * (beta.abs() * (X**2).mean(dim=0)).sum(dim=-1)


def diagonal_net_step(u: torch.Tensor, v: torch.Tensor, X: torch.Tensor, y: torch.Tensor, *,
                      lr) -> tuple[torch.Tensor, torch.Tensor]:
    """One GD step of the diagonal network on the batch ``(X, y)`` (eq-stab-diagonal-net).

    With ``g = dL/dbeta = (1/|b|) sum_i (<beta, x_i> - y_i) x_i`` and ``beta = u*u - v*v`` the chain rule
    gives ``u <- u - 2 lr g * u`` and ``v <- v + 2 lr g * v``.

    Args:
        u, v: weights, shape ``(..., d)``; leading dimensions are runs.
        X, y: the batch, shapes ``(b, d)`` and ``(b,)``.
        lr: a number, or a tensor that broadcasts against ``u`` (e.g. ``(R, 1)``).

    Returns:
        The new ``(u, v)``.
    """
    # type and shape checks only: this runs every step, where a NaN check would cost a sync and turn
    # divergence (data, :mod:`lessons_lib.run`) into an exception
    u, v, X, y = (check_float_tensor(t, name=k) for k, t in (("u", u), ("v", v), ("X", X), ("y", y)))
    if X.ndim != 2 or X.shape[1] != u.shape[-1] or y.shape != X.shape[:1] or v.shape != u.shape:
        raise ValueError(f"X: expected u, v (..., d), X (b, d), y (b,), got {tuple(u.shape)}, {tuple(v.shape)}, "
                         f"{tuple(X.shape)}, {tuple(y.shape)}")
    dtype = torch.promote_types(u.dtype, v.dtype)
    u, v, X, y = u.to(dtype), v.to(dtype), X.to(dtype), y.to(dtype)
    if not isinstance(lr, torch.Tensor):
        lr = check_positive(lr, name="lr", allow_zero=True)
    g = ((u**2 - v**2) @ X.T - y) @ X / X.shape[0]
    s = 2 * lr * g
    return u - s * u, v + s * v


@dataclass(frozen=True)
class DiagonalNetRun(Record):
    """Result of :func:`train_diagonal_net`. With a sequence of learning rates every tensor gains a
    leading run dimension ``R``; histories are indexed by ``record_steps``.

    Attributes:
        lr: the learning rate(s) asked for (the peak of a warm-up), shape ``(R?)``; for a schedule,
            the learning rate of every step, shape ``(steps,)``.
        beta, u, v: final weights, shape ``(R?, d)``; a diverged run is frozen at its last finite state.
        trace, lam_max: final ``Tr G`` and ``lambda_max(G)``.
        record_steps: steps at which histories were recorded, shape ``(K,)``.
        trace_history, lam_max_history, l1_history, loss_history: shape ``(K, R?)``; ``l1_history``
            is ``4 sum_j sigma_j^2 |beta_j|`` and ``loss_history`` the full-batch training loss.
        diverged: bool ``(R?,)``; ``diverged_at``: the step at which the run left the blow-up ball, or ``-1``.
        beta_history: ``beta`` at the recorded steps, shape ``(K, R?, d)`` (the saddle-to-saddle
            chapter reads activation times from it).
    """

    lr: torch.Tensor
    batch_size: int | None
    beta: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor
    trace: torch.Tensor
    lam_max: torch.Tensor
    record_steps: torch.Tensor
    trace_history: torch.Tensor
    lam_max_history: torch.Tensor
    l1_history: torch.Tensor
    loss_history: torch.Tensor
    diverged: torch.Tensor
    diverged_at: torch.Tensor
    beta_history: torch.Tensor | None = None


def train_diagonal_net(X, y, *, lr: float | Sequence[float] | Callable, steps: int, batch_size: int | None = None,
                       init_scale: float = 0.5, generator: int | torch.Generator = 0, warmup_steps: int = 0,
                       record_every: int = 500, blowup: float = 1e6) -> DiagonalNetRun:
    """Train ``f(x) = <u*u - v*v, x>`` on the square loss with GD or SGD (eq-stab-diagonal-net).

    The loss on a batch ``b`` is ``L_b = (1/2|b|) sum_{i in b} (f(x_i) - y_i)^2``; each step is
    :func:`diagonal_net_step`, driven by :func:`lessons_lib.run.run`. ``batch_size=None`` is
    full-batch GD; otherwise each step draws ``batch_size`` distinct samples uniformly (the same draws
    for every learning rate of a batched call, so runs differ only through ``lr``). With
    ``warmup_steps = w > 0`` the learning rate warms up linearly,
    ``lr_t = lr * min(1, (t + 1) / w)`` (:func:`lessons_lib.schedules.warmup_schedule`).
    Initialisation is ``u = v = init_scale`` (so ``beta = 0``). A run that leaves the blow-up ball is
    frozen at its last finite state and flagged (:mod:`lessons_lib.run`), checked after every step.

    Args:
        X, y: training data, shapes ``(n, d)`` and ``(n,)``.
        lr: learning rate; a sequence of them, trained side by side as a batch of runs; or a schedule
            from :mod:`lessons_lib.schedules` (one run, then ``warmup_steps`` must be 0).
        steps: number of updates, ``>= 1``.
        batch_size: ``None`` for GD, else ``1 <= batch_size <= n``.
        init_scale: ``alpha`` of the initialisation ``u = v = alpha 1``.
        generator: seed or generator for the minibatch draws.
        warmup_steps: length of the linear warm-up (0: constant ``lr`` from step 0).
        record_every: record ``Tr G``, ``lambda_max(G)`` and the loss every this many steps.
        blowup: divergence radius relative to ``max(1, ||(u_0, v_0)||)``, per run.

    Returns:
        A :class:`DiagonalNetRun`.

    References:
        Wu & Su (2023), The Implicit Regularization of Dynamical Stability in Stochastic Gradient
        Descent, ICML, arXiv:2305.17490.
    """
    X = as_tensor(X, name="X")
    y = as_tensor(y, name="y", dtype=X.dtype, device=X.device)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"X: expected X of shape (n, d) and y of shape (n,), "
                         f"got {tuple(X.shape)} and {tuple(y.shape)}")
    n, d = X.shape
    steps = check_count(steps, name="steps")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                   or not 1 <= batch_size <= n):
        raise ValueError(f"batch_size: expected None (GD) or an int in [1, n={n}], got {batch_size!r}")
    init_scale = check_positive(init_scale, name="init_scale")
    warmup_steps = check_count(warmup_steps, name="warmup_steps", minimum=0)
    record_every = check_count(record_every, name="record_every")
    if callable(lr):
        if warmup_steps:
            raise ValueError("warmup_steps: must be 0 when lr is a schedule (put the warm-up in the schedule)")
        lrs, many, rates = None, False, lr
    else:
        lrs, many = per_run_values(lr, name="lr", like=X)
        rates = lrs
        if warmup_steps:
            ramp = schedules.warmup_schedule(1.0, warmup=warmup_steps)
            rates = lambda t: lrs * ramp(t)[:, None]  # noqa: E731  (steps, R)
    gen = as_generator(generator, X.device)
    u0 = torch.full((1 if lrs is None else lrs.numel(), d), init_scale, dtype=X.dtype, device=X.device)

    def step(state, t, eta):
        if batch_size is None:
            Xb, yb = X, y
        else:
            i = (torch.randint(n, (1,), generator=gen, device=X.device) if batch_size == 1
                 else torch.randperm(n, generator=gen, device=X.device)[:batch_size])
            Xb, yb = X[i], y[i]
        return diagonal_net_step(*state, Xb, yb, lr=per_run(eta, state[0]))

    def record(state, t):
        u, v = state
        beta = u**2 - v**2
        gn = gauss_newton(diagonal_net_jacobian(u, v, X))
        return {"beta": beta, "trace": gn.trace, "lam_max": gn.lam_max, "l1": weighted_l1(beta, X),
                "loss": 0.5 * ((beta @ X.T - y) ** 2).mean(dim=-1)}

    out = run(step, (u0, u0.clone()), steps=steps, lr=rates, record=record, record_every=record_every,
              blowup=blowup, batched=True)
    one = (lambda t: t) if many else (lambda t: t[0])  # drop the run dimension of a single run
    hist = (lambda k: out.history[k]) if many else (lambda k: out.history[k][:, 0])
    u, v = out.state
    return DiagonalNetRun(
        lr=out.lr if lrs is None else one(lrs), batch_size=batch_size, beta=one(u**2 - v**2), u=one(u), v=one(v),
        trace=hist("trace")[-1], lam_max=hist("lam_max")[-1], record_steps=out.steps,
        trace_history=hist("trace"), lam_max_history=hist("lam_max"), l1_history=hist("l1"),
        loss_history=hist("loss"), diverged=one(out.diverged), diverged_at=one(out.diverged_at),
        beta_history=hist("beta"),
    )


# --- two-layer linear network --------------------------------------------------------------------


@dataclass(frozen=True)
class LinearNetRun(Record):
    """Result of :func:`train_linear_net`; histories are indexed by ``steps`` (shape ``(K,)``).

    ``R?`` is the run dimension, present when ``lr`` or ``init_scale`` is a sequence (a batched call);
    :meth:`single` gives one run of a batched result as the call with that run's numbers returns it.

    Attributes:
        singular_values: singular values of ``W2 W1``, descending, shape ``(K, R?, r)``, ``r = min(d_out, d_in)``.
        loss: ``||W2 W1 - A||_F^2 / 2``, shape ``(K, R?)``.
        target: singular values ``s`` of ``A``, shape ``(r,)``.
        u0: effective initial strength of each target mode (eq-saddle-effective-init), shape ``(R?, r)``.
        W1, W2: final weights, shapes ``(R?, h, d_in)`` and ``(R?, d_out, h)``.
        lr, init_scale: the run's numbers: floats, or float64 tensors of shape ``(R,)``.
        diverged, diverged_at: the run left the blow-up ball at that step (``bool`` and ``int`` or ``None``;
            in a batch, tensors of shape ``(R,)`` with ``diverged_at = -1`` where a run did not diverge). A
            single run's histories end there, at its frozen last finite state; in a batch a diverged run
            stays frozen while the others go on, and the histories end when every run has diverged.
        mode_strengths: ``u_i^T W2 W1 v_i`` for the singular pairs ``(u_i, v_i)`` of ``A`` (descending ``s_i``),
            the strength of each target mode itself rather than the sorted singular values, shape ``(K, R?, r)``.
    """

    steps: torch.Tensor
    singular_values: torch.Tensor
    loss: torch.Tensor
    target: torch.Tensor
    u0: torch.Tensor
    W1: torch.Tensor
    W2: torch.Tensor
    lr: float | torch.Tensor
    init_scale: float | torch.Tensor
    diverged: bool | torch.Tensor = False
    diverged_at: int | torch.Tensor | None = None
    mode_strengths: torch.Tensor | None = None

    def single(self, run: int) -> LinearNetRun:
        """Run ``run`` of a batched result, as :func:`train_linear_net` returns it for that run's ``lr`` and
        ``init_scale`` alone: the run dimension dropped and, for a run that diverged at step ``k``, the
        histories cut at ``k`` (whose row is its frozen last finite state, as the single call records it).

        Raises:
            ValueError: naming ``run`` if the result is not batched or ``run`` is not in ``0 .. R - 1``.
        """
        if self.loss.ndim != 2:
            raise ValueError("run: this result holds a single run (call with a sequence of lr to batch)")
        run = check_count(run, name="run", minimum=0)
        if run >= self.loss.shape[1]:
            raise ValueError(f"run: expected 0 <= run < {self.loss.shape[1]}, got {run}")
        at = int(self.diverged_at[run])
        rows = torch.arange(len(self.steps) if at < 0 else int((self.steps < at).sum()) + 1)
        steps = self.steps[rows].clone()
        if at >= 0:  # the first row from step k on holds the frozen state the single run recorded at k
            steps[-1] = at
        return LinearNetRun(steps, self.singular_values[rows, run], self.loss[rows, run], self.target,
                            self.u0[run], self.W1[run], self.W2[run], float(self.lr[run]),
                            float(self.init_scale[run]), at >= 0, at if at >= 0 else None,
                            None if self.mode_strengths is None else self.mode_strengths[rows, run])


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
    W1, W2, A = as_tensors(W1=W1, W2=W2, A=A)
    if A.ndim != 2 or W1.ndim != 2 or W2.ndim != 2 or W1.shape[1] != A.shape[1] or W2.shape != (A.shape[0],
                                                                                             W1.shape[0]):
        raise ValueError(f"W1: expected W1 (h, d_in), W2 (d_out, h), A (d_out, d_in), got {tuple(W1.shape)}, "
                         f"{tuple(W2.shape)}, {tuple(A.shape)}")
    U, _, Vh = torch.linalg.svd(A)
    r = min(A.shape)
    C = 0.5 * (W1 @ Vh[:r].T + W2.T @ U[:, :r])  # (h, r)
    R = torch.linalg.qr(C, mode="r").R
    u0 = torch.zeros(r, dtype=A.dtype, device=A.device)
    k = min(R.shape)
    u0[:k] = R.diagonal()[:k] ** 2
    return u0


def _mode_projections(P: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """``u_i^T P_k v_i`` for each recorded product ``P_k`` (``(K, d_out, d_in)``) and singular pair of ``A``."""
    U, _, Vh = torch.linalg.svd(A.to(P.device))
    r = min(A.shape)
    # elementwise products summed per row, so each row rounds alike however many rows there are (a batched
    # run's history is longer than the single call's where it diverged: both must agree bit for bit)
    return (U.T[:r, :, None] * P[:, None] * Vh[:r, None, :]).sum(dim=(-2, -1))


def _is_sequence(value) -> bool:
    """Whether ``value`` asks for a batch: a list, tuple, 1-D tensor or array (not a number, 0-d tensor or string)."""
    return hasattr(value, "__len__") and not isinstance(value, (str, bytes)) and getattr(value, "ndim", 1) >= 1


def _linear_net_step(W1: torch.Tensor, W2: torch.Tensor, A: torch.Tensor, lr) -> tuple[torch.Tensor, torch.Tensor]:
    """One full-batch GD step on ``L = ||W2 W1 - A||_F^2 / 2`` (eq-saddle-linear-loss).

    ``W1 <- W1 - lr W2^T E`` and ``W2 <- W2 - lr E W1^T`` with the residual ``E = W2 W1 - A``.

    Args:
        W1: ``(h, d_in)``. W2: ``(d_out, h)``. A: target ``(d_out, d_in)``. lr: ``eta`` (a number or a 0-d tensor).

    Returns:
        The new ``(W1, W2)``.

    References:
        Saxe, McClelland & Ganguli (2014), arXiv:1312.6120.
    """
    E = W2 @ W1 - A
    return W1 - lr * W2.T @ E, W2 - lr * E @ W1.T


def train_linear_net(A, *, width: int, init_scale: float | Sequence[float], lr: float | Sequence[float],
                     steps: int, generator: int | torch.Generator = 0, init: Literal["random", "aligned"] = "random",
                     record_every: int = 1, blowup: float = 1e6) -> LinearNetRun:
    """Full-batch GD on ``L = ||W2 W1 - A||_F^2 / 2`` (eq-saddle-linear-loss), whitened inputs.

    ``W2 <- W2 - lr (W2 W1 - A) W1^T`` and ``W1 <- W1 - lr W2^T (W2 W1 - A)`` (:func:`_linear_net_step`),
    driven by :func:`lessons_lib.run.run`. ``init="random"`` draws every weight from ``init_scale * N(0, 1)``;
    ``init="aligned"`` starts each mode of ``A`` at exactly ``u0 = init_scale^2`` (``W1 = eps E V^T``,
    ``W2 = eps U E^T``), where the mode ODE (eq-saddle-mode-ode) is exact.

    Sequences of ``lr`` and ``init_scale`` (broadcast against each other) train side by side, ``R`` runs in
    one batched loop from the *same* standard-normal draw, so runs differ only through their numbers. Each
    run diverges and freezes on its own, and each equals the single call with its numbers
    (:meth:`LinearNetRun.single`), bit for bit: every run takes the single call's matrix products.

    Args:
        A: target map ``(d_out, d_in)``; its singular values are the mode strengths ``s_i``.
        width: hidden units ``h``.
        init_scale: ``eps > 0``, or a sequence of them (one per run).
        lr: ``eta >= 0``, or a sequence of them (one per run).
        steps: GD steps.
        generator: seed or generator for the random start.
        init: ``"random"`` or ``"aligned"``.
        record_every: record the singular values and the loss every this many steps (and the last).
        blowup: divergence radius relative to ``max(1, ||(W1_0, W2_0)||)`` (per run), checked every step;
            a diverged run is frozen there (:mod:`lessons_lib.run`).

    Returns:
        A :class:`LinearNetRun`, with a run dimension ``R`` when ``lr`` or ``init_scale`` is a sequence.

    Raises:
        ValueError: naming the argument, e.g. ``lr`` for a bool, a string, a negative rate or an empty sequence.

    References:
        Saxe, McClelland & Ganguli (2014), arXiv:1312.6120; Zhang, Saxe & Latham (2026), arXiv:2512.20607.
    """
    A = as_tensor(A, name="A")
    if A.ndim != 2 or 0 in A.shape:
        raise ValueError(f"A: expected a non-empty matrix (d_out, d_in), got shape {tuple(A.shape)}")
    width = check_count(width, name="width")
    batched = _is_sequence(lr) or _is_sequence(init_scale)
    if batched:
        for value, name in ((lr, "lr"), (init_scale, "init_scale")):
            if _is_sequence(value) and any(isinstance(v, bool) for v in value):
                raise ValueError(f"{name}: expected numbers, got a bool in {value!r}")
        lrs, epss, _ = rates_and_scales(lr, init_scale, like=A)
        eps_list = epss.tolist()
    else:
        eps = check_positive(init_scale, name="init_scale")
        lr = check_positive(lr, name="lr", allow_zero=True)
        eps_list = [eps]
    if init not in ("random", "aligned"):
        raise ValueError(f"init: expected 'random' or 'aligned', got {init!r}")
    (d_out, d_in), kw = A.shape, dict(dtype=A.dtype, device=A.device)
    if init == "random":
        gen = as_generator(generator, A.device)
        z1 = torch.randn(width, d_in, generator=gen, **kw)
        z2 = torch.randn(d_out, width, generator=gen, **kw)
        starts = [(e * z1, e * z2) for e in eps_list]
    else:
        U, _, Vh = torch.linalg.svd(A)
        k = min(width, d_in, d_out)
        E = torch.eye(width, k, **kw)
        starts = [(e * E @ Vh[:k], e * U[:, :k] @ E.T) for e in eps_list]

    if not batched:
        (W1, W2), = starts
        out = run(lambda s, t, eta: _linear_net_step(*s, A, eta), (W1, W2), steps=steps, lr=lr,
                  record=lambda s, t: {"product": s[1] @ s[0]}, record_every=record_every, blowup=blowup)
        P = out.history["product"]  # (K, d_out, d_in), on the host like every record
        return LinearNetRun(out.steps, torch.linalg.svdvals(P), 0.5 * ((P - A.to(P.device)) ** 2).sum(dim=(1, 2)),
                            torch.linalg.svdvals(A), effective_mode_strengths(W1, W2, A), *out.state, lr, eps,
                            bool(out.diverged), out.diverged_step, _mode_projections(P, A))

    # One batched loop; inside a step each run takes the single call's 2-D products (a batched matmul
    # rounds differently, and where the top mode never settles that difference grows to O(1)).
    def step(state, t, eta):
        new = [_linear_net_step(w1, w2, A, e) for w1, w2, e in zip(state[0].unbind(), state[1].unbind(), eta.unbind())]
        return torch.stack([w1 for w1, _ in new]), torch.stack([w2 for _, w2 in new])

    def record(state, t):
        return {"product": torch.stack([w2 @ w1 for w1, w2 in zip(state[0].unbind(), state[1].unbind())])}

    W1, W2 = (torch.stack(w) for w in zip(*starts))
    out = run(step, (W1, W2), steps=steps, lr=lrs, record=record, record_every=record_every, blowup=blowup,
              batched=True)
    products = [P.contiguous() for P in out.history["product"].unbind(1)]  # each run's (K, d_out, d_in)
    sv = torch.stack([torch.linalg.svdvals(P) for P in products], dim=1)  # per run, as the single call rounds
    loss = torch.stack([0.5 * ((P - A.to(P.device)) ** 2).sum(dim=(1, 2)) for P in products], dim=1)
    u0 = torch.stack([effective_mode_strengths(w1, w2, A) for w1, w2 in starts])
    modes = torch.stack([_mode_projections(P, A) for P in products], dim=1)
    return LinearNetRun(out.steps, sv, loss, torch.linalg.svdvals(A), u0, *out.state, lrs, epss, out.diverged,
                        out.diverged_at, modes)


# --- one-dimensional ReLU network ----------------------------------------------------------------


def check_xy(x, y) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate one-dimensional regression data: ``x`` and ``y`` of the same shape ``(n,)``, ``n >= 2``.

    Returns:
        ``(x, y)`` as float64 tensors, ``y`` on the device of ``x``.

    Raises:
        ValueError: naming ``x`` if the shapes are wrong (or a value is not finite).
    """
    x = as_tensor(x, name="x")
    y = as_tensor(y, name="y", dtype=x.dtype, device=x.device)
    if x.ndim != 1 or y.shape != x.shape or x.numel() < 2:
        raise ValueError(f"x: expected x and y of the same shape (n,), n >= 2, "
                         f"got {tuple(x.shape)} and {tuple(y.shape)}")
    return x, y


def relu_network(x, a, w, b) -> torch.Tensor:
    """The network ``f(x) = sum_j a_j relu(w_j x + b_j)`` of (eq-saddle-relu-net).

    Args:
        x: inputs ``(n,)``. a, w, b: weights ``(..., m)``; leading dimensions are runs.

    Returns:
        ``f`` at ``x``, shape ``(..., n)``.

    References:
        Zhang, Saxe & Latham (2026), arXiv:2512.20607.
    """
    x, = as_tensors(x=x)
    if x.ndim != 1:
        raise ValueError(f"x: expected inputs of shape (n,), got {tuple(x.shape)}")
    a, w, b = check_relu_weights(a, w, b, like=x)
    return (torch.relu(x[:, None] * w[..., None, :] + b[..., None, :]) * a[..., None, :]).sum(-1)


def check_relu_weights(a, w, b, *, like: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
    """Validate the weights ``a, w, b`` of the ReLU network: finite real tensors of one shape ``(..., m)``.

    Returns them as float64 tensors (on the device of ``like`` when given). Raises a ValueError naming the
    argument that is wrong.
    """
    a, w, b = as_tensors(a=a, w=w, b=b)
    if like is not None:
        a, w, b = (z.to(like.device) for z in (a, w, b))
    if a.ndim < 1 or w.shape != a.shape or b.shape != a.shape:
        raise ValueError(f"w: expected a, w, b of one shape (..., m), got {tuple(a.shape)}, {tuple(w.shape)}, "
                         f"{tuple(b.shape)}")
    return a, w, b


def _relu_residual(x, y, a, w, b):
    """Hidden activations ``(..., n, m)``, their active sets, and the residuals ``f(x_i) - y_i`` ``(..., n)``."""
    z = x[:, None] * w[..., None, :] + b[..., None, :]
    on = (z > 0).to(z.dtype)
    h = z * on
    return h, on, (h @ a[..., None])[..., 0] - y


def relu_loss(x, y, a, w, b) -> torch.Tensor:
    """``L = mean_i (f(x_i) - y_i)^2 / 2`` for the network of (eq-saddle-relu-net), batched like the weights."""
    x, y = check_xy(x, y)
    r = _relu_residual(x, y, *check_relu_weights(a, w, b, like=x))[2]
    return 0.5 * (r**2).mean(-1)


def relu_gradients(x, y, a, w, b) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hand-written gradients of ``L = mean_i (f(x_i) - y_i)^2 / 2`` in ``(a, w, b)``, batched like the weights.

    With residuals ``r_i`` and active sets ``1[w_j x_i + b_j > 0]``: ``dL/da_j = mean_i r_i relu(w_j x_i + b_j)``,
    ``dL/dw_j = a_j mean_i r_i x_i 1[...]``, ``dL/db_j = a_j mean_i r_i 1[...]`` (eq-saddle-relu-net).

    References:
        Zhang, Saxe & Latham (2026), arXiv:2512.20607.
    """
    x, y = check_xy(x, y)
    a, w, b = check_relu_weights(a, w, b, like=x)
    return _relu_backward(x, a, *_relu_residual(x, y, a, w, b))


def _relu_backward(x, a, h, on, r):
    n = x.shape[0]
    ga = (r[..., None, :] @ h)[..., 0, :] / n
    gb = (r[..., None, :] @ on)[..., 0, :] * a / n
    gw = ((r * x)[..., None, :] @ on)[..., 0, :] * a / n
    return ga, gw, gb


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
    a, w, b = check_relu_weights(a, w, b)
    if a.ndim != 1:
        raise ValueError(f"a: expected the weights of one network, shape (m,), got {tuple(a.shape)}")
    if not isinstance(x_range, (tuple, list)) or len(x_range) != 2:
        raise ValueError(f"x_range: expected (lo, hi), got {x_range!r}")
    lo, hi = (check_real(v, name="x_range") for v in x_range)
    if not lo < hi:
        raise ValueError(f"x_range: expected lo < hi, got {x_range!r}")
    min_slope = check_positive(min_slope, name="min_slope", allow_zero=True)
    merge = check_positive(merge, name="merge", allow_zero=True)
    margin = check_positive(margin, name="margin", allow_zero=True)
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
class ReluRun(Record):
    """Result of :func:`train_relu_1d`. ``R?`` is the run dimension (present when ``lr`` or
    ``init_scale`` is a sequence). ``loss`` ``(steps + 1, R?)`` at every step; ``a, w, b``
    ``(K, R?, width)`` at ``record_steps``; ``diverged`` ``(R?,)`` bool and ``diverged_at`` the step
    at which a run left the blow-up ball (``-1`` if it did not). When every run diverged, the
    histories end at the last divergence."""

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
    diverged_at: torch.Tensor | None = None

    def kinks(self, k: int, run: int | None = None, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`relu_kinks` of recorded row ``k`` (of ``run`` for a batched result)."""
        k = check_count(k, name="k", minimum=-len(self.record_steps))
        if run is not None:
            run = check_count(run, name="run", minimum=-self.a.shape[1] if self.a.ndim == 3 else 0)
        if k >= len(self.record_steps) or (run is not None and (self.a.ndim != 3 or run >= self.a.shape[1])):
            raise ValueError(f"k: no recorded row k = {k} (run = {run}) in a result of shape {tuple(self.a.shape)}")
        pick = (lambda t: t[k]) if run is None else (lambda t: t[k, run])
        return relu_kinks(pick(self.a), pick(self.w), pick(self.b), x_range=(float(self.x.min()), float(self.x.max())),
                          **kwargs)


def train_relu_1d(x, y, *, width: int, init_scale: float | Sequence[float], lr: float | Sequence[float],
                  steps: int, generator: int | torch.Generator = 0, record_every: int = 100,
                  blowup: float = 1e6) -> ReluRun:
    """Full-batch GD on ``L = mean_i (f(x_i) - y_i)^2 / 2`` for the network of (eq-saddle-relu-net).

    Every weight starts at ``init_scale * N(0, 1)``. Sequences of ``lr`` and ``init_scale`` (broadcast
    against each other) train side by side from the *same* standard-normal draw, so runs differ only
    through the parameters. The steps use :func:`relu_gradients`, driven by :func:`lessons_lib.run.run`.

    Args:
        x, y: data ``(n,)``. width: hidden units. steps: GD steps. generator: seed or generator.
        record_every: record the weights every this many steps (and the last); the loss is recorded
            at every step.
        blowup: divergence radius relative to ``max(1, ||(a_0, w_0, b_0)||)``, per run, checked every
            step; a diverged run is frozen at its last finite state and flagged.

    Returns:
        A :class:`ReluRun`; :meth:`ReluRun.kinks` gives the kink locations at each recorded step.

    References:
        Zhang, Saxe & Latham (2026), arXiv:2512.20607.
    """
    x, y = check_xy(x, y)
    width = check_count(width, name="width")
    record_every = check_count(record_every, name="record_every")
    lrs, eps, many = rates_and_scales(lr, init_scale, like=x)
    gen = as_generator(generator, x.device)
    z = torch.randn(3, width, generator=gen, dtype=x.dtype, device=x.device)

    seen = {}  # the loss recorded at a state and the step from it share one forward pass

    def forward(state):
        if seen.get("state") is not state:
            seen.update(state=state, terms=_relu_residual(x, y, *state))
        return seen["terms"]

    def step(state, t, eta):
        eta = per_run(eta, state[0])
        return tuple(p - eta * g for p, g in zip(state, _relu_backward(x, state[0], *forward(state))))

    def record(state, t):
        return {"loss": 0.5 * (forward(state)[2] ** 2).mean(-1), "a": state[0], "w": state[1], "b": state[2]}

    out = run(step, tuple(eps[:, None] * z[i] for i in range(3)), steps=steps, lr=lrs, batched=True, record=record,
              blowup=blowup)
    kept = (out.steps % record_every == 0) | (out.steps == out.steps[-1])
    # without a sequence, drop the run dimension of the single run (many is False)
    hist = (lambda t: t) if many else (lambda t: t[:, 0])
    last = (lambda t: t) if many else (lambda t: t[0])
    return ReluRun(x, y, hist(out.history["loss"]), out.steps[kept], *(hist(out.history[k][kept]) for k in "awb"),
                   last(lrs), last(eps), last(out.diverged), last(out.diverged_at))


# --- tiny MLP (flat parameter vector) ------------------------------------------------------------

MLPActivation = Literal["tanh", "relu", "elu"]
MLPTargets = Literal["random", "smooth"]
_MLP_ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "elu": torch.nn.functional.elu}


def mlp_activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The elementwise nonlinearity the MLPs of this module apply between layers, by name.

    For a chapter that runs its own forward pass through an :class:`MLPClassifier`'s parameters (node
    perturbation, say) and must apply the same nonlinearity. ``name`` is ``"tanh"``, ``"relu"`` or ``"elu"``.
    """
    if name not in _MLP_ACTIVATIONS:
        raise ValueError(f"name: expected one of {sorted(_MLP_ACTIVATIONS)}, got {name!r}")
    return _MLP_ACTIVATIONS[name]


def mlp_shapes(sizes: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    """Parameter shapes of a fully connected net of widths ``sizes``, in flat order: ``(fan_out, fan_in)``
    then ``(fan_out,)`` per layer."""
    out: list[tuple[int, ...]] = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        out += [(fan_out, fan_in), (fan_out,)]
    return tuple(out)


def _mlp_forward(params: torch.Tensor, X: torch.Tensor, sizes: Sequence[int], activation: str) -> torch.Tensor:
    """Outputs ``W_L s(... s(W_1 x + b_1) ...) + b_L`` of a fully connected net, shape ``(n, sizes[-1])``.

    ``params`` is the flat vector, each weight (row-major ``(fan_out, fan_in)``) followed by its bias; the
    function is written with plain tensor operations so that ``torch.func`` (``jvp``, ``vmap``, ``grad``)
    differentiates it.
    """
    shapes = mlp_shapes(sizes)
    act = _MLP_ACTIVATIONS[activation]
    chunks = torch.split(params, [math.prod(s) for s in shapes])
    h = X
    n_layers = len(sizes) - 1
    for i in range(n_layers):
        h = h @ chunks[2 * i].view(shapes[2 * i]).T + chunks[2 * i + 1]
        if i < n_layers - 1:
            h = act(h)
    return h


@dataclass(frozen=True)
class MLPProblem:
    """A synthetic square-loss regression task for a fully connected network with flat parameters.

    The network is ``f(x) = W_L s(... s(W_1 x + b_1) ...) + b_L`` with activation ``s``; its
    parameters live in one flat vector, layer by layer, each weight (row-major, shape
    ``(fan_out, fan_in)``) followed by its bias. The flat vector is what the curvature tools
    (Hessian-vector products, Lanczos) and :func:`lessons_lib.run.run` work on.

    Attributes:
        X: inputs, shape ``(n, d)``.
        y: targets, shape ``(n,)``.
        sizes: layer widths ``(d, width, ..., width, 1)``.
        activation: name of the hidden activation.
        init_scale: weights start as ``N(0, init_scale**2 / fan_in)``; biases start at 0.
    """

    X: torch.Tensor
    y: torch.Tensor
    sizes: tuple[int, ...]
    activation: MLPActivation
    init_scale: float

    @property
    def shapes(self) -> tuple[tuple[int, ...], ...]:
        """Parameter shapes in flat order: ``(fan_out, fan_in)`` then ``(fan_out,)`` per layer."""
        return mlp_shapes(self.sizes)

    @property
    def n_params(self) -> int:
        """Length of the flat parameter vector."""
        return sum(math.prod(s) for s in self.shapes)

    def predict(self, params: torch.Tensor) -> torch.Tensor:
        """Network outputs on ``X`` for flat ``params`` of shape ``(n_params,)``; shape ``(n,)``.

        ``params`` is not checked for NaN: the sharpness estimate differentiates this with torch.func.
        """
        check_float_tensor(params, name="params")
        if params.shape != (self.n_params,):
            raise ValueError(f"params: expected shape ({self.n_params},), got {tuple(params.shape)}")
        return _mlp_forward(params, self.X.to(params), self.sizes, self.activation)[:, 0]

    def loss(self, params: torch.Tensor) -> torch.Tensor:
        """Square loss ``L = 1/(2n) sum_i (f(x_i) - y_i)^2`` (half the mean squared error)."""
        return 0.5 * ((self.predict(params) - self.y.to(params)) ** 2).mean()

    def init(self, generator: int | torch.Generator = 0) -> torch.Tensor:
        """Random flat parameters: weights ``N(0, init_scale**2 / fan_in)`` (LeCun), zero biases.

        Args:
            generator: seed or generator, on the device of ``X``.

        Returns:
            Tensor of shape ``(n_params,)`` with the dtype and device of ``X``.
        """
        gen = as_generator(generator, self.X.device)
        parts = []
        for shape in self.shapes:
            if len(shape) == 2:
                w = torch.randn(shape, generator=gen, dtype=self.X.dtype, device=self.X.device)
                parts.append((w * (self.init_scale / math.sqrt(shape[1]))).flatten())
            else:
                parts.append(torch.zeros(shape, dtype=self.X.dtype, device=self.X.device))
        return torch.cat(parts)


def mlp_problem(
    *,
    n: int = 64,
    d: int = 8,
    width: int = 16,
    depth: int = 3,
    activation: MLPActivation = "tanh",
    targets: MLPTargets = "random",
    init_scale: float = 0.8,
    generator: int | torch.Generator = 0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = DTYPE,
) -> MLPProblem:
    """A synthetic regression task for a ``depth``-hidden-layer MLP, generated from a seed.

    Inputs are ``x_i ~ N(0, I_d)``. ``targets="random"`` draws ``y_i ~ N(0, 1)`` independently of
    ``x_i`` (random labels: a hard task that the network has to memorise, which makes progressive
    sharpening strong); ``targets="smooth"`` uses ``y_i = sin(2 w^T x_i / sqrt(d))`` for a random
    unit-variance ``w`` (an easier task that sharpens more slowly: at ``lr = 0.2`` it reaches
    ``2 / lr`` after 150-500 steps instead of 50-120).

    Args:
        n: number of data points.
        d: input dimension.
        width: hidden width.
        depth: number of hidden layers.
        activation: ``"tanh"``, ``"relu"`` or ``"elu"``.
        targets: ``"random"`` or ``"smooth"``.
        init_scale: gain of the LeCun-normal weight initialisation used by :meth:`MLPProblem.init`;
            0.8 puts the initial sharpness at about 1.5-3, below ``2 / lr = 5`` for lr 0.4.
        generator: seed or generator for the data.
        device: where the data live; defaults to :func:`~lessons_lib.backend.default_device`.
        dtype: floating dtype of the data (float64 by default).

    Returns:
        An :class:`MLPProblem`.
    """
    n, d = check_count(n, name="n"), check_count(d, name="d")
    width, depth = check_count(width, name="width"), check_count(depth, name="depth")
    if activation not in _MLP_ACTIVATIONS:
        raise ValueError(f"activation: expected one of {sorted(_MLP_ACTIVATIONS)}, got {activation!r}")
    if targets not in ("random", "smooth"):
        raise ValueError(f"targets: expected 'random' or 'smooth', got {targets!r}")
    init_scale = check_positive(init_scale, name="init_scale")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"dtype: expected a floating torch dtype, got {dtype!r}")
    device = torch.device(device) if device is not None else default_device()
    gen = as_generator(generator, device)
    X = torch.randn(n, d, generator=gen, dtype=dtype, device=device)
    if targets == "random":
        y = torch.randn(n, generator=gen, dtype=dtype, device=device)
    else:
        w = torch.randn(d, generator=gen, dtype=dtype, device=device)
        y = torch.sin(2 * X @ w / math.sqrt(d))
    return MLPProblem(X, y, (d,) + (width,) * depth + (1,), activation, init_scale)


# --- digits classification (scikit-learn's 8x8 digits, which ship inside the package) ------------


@dataclass(frozen=True)
class DigitsSplit:
    """scikit-learn's 1,797 handwritten 8x8 digits, split once into a training and a test set.

    Pixels are scaled from ``0..16`` to ``[0, 1]``. The tensors live on the device they were made on
    (not the host: a trainer uses them on every step).

    Attributes:
        X_train: inputs, shape ``(n_train, 64)``.
        y_train: labels ``0..9``, long tensor of shape ``(n_train,)``.
        X_test: inputs, shape ``(n_test, 64)``.
        y_test: labels, shape ``(n_test,)``.
    """

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor


def digits_split(*, test_fraction: float = 0.25, generator: int | torch.Generator = 0,
                 dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> DigitsSplit:
    """The digits data, shuffled by ``generator`` and split into train and test sets.

    The data come from :func:`sklearn.datasets.load_digits`, which reads a file inside the installed
    package: nothing is downloaded. The shuffle is drawn on the CPU, so a seed gives the same split on
    every device.

    Args:
        test_fraction: share of the 1,797 samples held out, in ``(0, 1)``; the test set has
            ``round(test_fraction * 1797)`` samples.
        generator: seed or CPU generator of the shuffle.
        dtype: floating dtype of the inputs (float32 by default: these are network inputs).
        device: where the tensors live; defaults to :func:`~lessons_lib.backend.default_device`.

    Returns:
        A :class:`DigitsSplit`.
    """
    from sklearn.datasets import load_digits

    test_fraction = check_real(test_fraction, name="test_fraction")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction: expected a number in (0, 1), got {test_fraction}")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"dtype: expected a floating torch dtype, got {dtype!r}")
    device = torch.device(device) if device is not None else default_device()
    data = load_digits()
    X = torch.as_tensor(data.data, dtype=torch.float64) / 16.0
    y = torch.as_tensor(data.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=as_generator(generator, "cpu"))
    n_test = round(test_fraction * len(y))
    if not 0 < n_test < len(y):
        raise ValueError(f"test_fraction: {test_fraction} leaves an empty training or test set")
    test, train = order[:n_test], order[n_test:]
    return DigitsSplit(*(t.to(device=device, dtype=dtype if t.is_floating_point() else None)
                         for t in (X[train], y[train], X[test], y[test])))


@dataclass(frozen=True)
class MLPClassifier:
    """A fully connected classifier with flat parameters and the cross-entropy loss.

    The logits are ``z = W_L s(... s(W_1 x + b_1) ...) + b_L`` (see :func:`mlp_forward`); the loss is
    the mean cross-entropy ``(1/n) sum_i [logsumexp(z_i) - z_{i, y_i}]``. Parameters are one flat
    vector, so ``torch.func`` can take Jacobian-vector products (the logits' change along a direction)
    and per-sample gradients of it.

    Attributes:
        sizes: layer widths, e.g. ``(64, 128, 10)``.
        activation: ``"relu"``, ``"tanh"`` or ``"elu"``.
    """

    sizes: tuple[int, ...]
    activation: MLPActivation

    @property
    def n_params(self) -> int:
        """Length of the flat parameter vector."""
        return sum(math.prod(s) for s in mlp_shapes(self.sizes))

    def logits(self, params: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        """Logits of inputs ``X`` (shape ``(n, sizes[0])``) for flat ``params``; shape ``(n, sizes[-1])``.

        The device follows ``params``: ``X`` (and the labels of :meth:`loss` and :meth:`accuracy`) are moved to it.

        Shapes and types are checked, values are not (``torch.func`` differentiates this): NaN in, NaN out.
        """
        check_float_tensor(params, name="params")
        check_float_tensor(X, name="X")
        if params.shape != (self.n_params,):
            raise ValueError(f"params: expected shape ({self.n_params},), got {tuple(params.shape)}")
        if X.ndim != 2 or X.shape[1] != self.sizes[0]:
            raise ValueError(f"X: expected shape (n, {self.sizes[0]}), got {tuple(X.shape)}")
        return _mlp_forward(params, X.to(params), self.sizes, self.activation)

    def loss(self, params: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of the logits against labels ``y`` (long, shape ``(n,)``)."""
        z = self.logits(params, X)
        if not isinstance(y, torch.Tensor) or y.dtype != torch.long or y.shape != z.shape[:1]:
            raise ValueError(f"y: expected a long tensor of {z.shape[0]} labels, got {_describe(y)}")
        return torch.nn.functional.cross_entropy(z, y.to(z.device))

    def accuracy(self, params: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> float:
        """Share of inputs whose largest logit is the label."""
        z = self.logits(params, X)
        if not isinstance(y, torch.Tensor) or y.dtype != torch.long or y.shape != z.shape[:1]:
            raise ValueError(f"y: expected a long tensor of {z.shape[0]} labels, got {_describe(y)}")
        return float((z.argmax(-1) == y.to(z.device)).to(torch.float64).mean())

    def init(self, generator: int | torch.Generator = 0, *, dtype: torch.dtype = torch.float32,
             device: torch.device | str | None = None) -> torch.Tensor:
        """Random flat parameters: weights ``N(0, gain**2 / fan_in)`` with gain ``sqrt(2)`` for ReLU
        (He) and 1 otherwise (LeCun), zero biases; shape ``(n_params,)``."""
        device = torch.device(device) if device is not None else default_device()
        gen = as_generator(generator, device)
        gain = math.sqrt(2.0) if self.activation == "relu" else 1.0
        parts = []
        for shape in mlp_shapes(self.sizes):
            if len(shape) == 2:
                w = torch.randn(shape, generator=gen, dtype=dtype, device=device)
                parts.append((w * (gain / math.sqrt(shape[1]))).flatten())
            else:
                parts.append(torch.zeros(shape, dtype=dtype, device=device))
        return torch.cat(parts)


def _describe(y) -> str:
    return f"{y.dtype} of shape {tuple(y.shape)}" if isinstance(y, torch.Tensor) else type(y).__name__


def mlp_classifier(sizes: Sequence[int] = (64, 128, 10), *, activation: MLPActivation = "relu") -> MLPClassifier:
    """An :class:`MLPClassifier` of widths ``sizes`` (at least an input and ``>= 2`` classes)."""
    sizes = tuple(sizes) if isinstance(sizes, (list, tuple)) else sizes
    if not isinstance(sizes, tuple) or len(sizes) < 2:
        raise ValueError(f"sizes: expected a sequence of at least two widths, got {sizes!r}")
    sizes = tuple(check_count(s, name="sizes") for s in sizes)
    if sizes[-1] < 2:
        raise ValueError(f"sizes: a classifier needs at least 2 classes, got {sizes[-1]}")
    if activation not in _MLP_ACTIVATIONS:
        raise ValueError(f"activation: expected one of {sorted(_MLP_ACTIVATIONS)}, got {activation!r}")
    return MLPClassifier(sizes, activation)


# --- layered bias-free ReLU network (a list of weight matrices) -----------------------------------


def layered_relu_init(widths: Sequence[int], *, generator: int | torch.Generator = 0,
                      dtype: torch.dtype = torch.float32,
                      device: torch.device | str | None = None) -> list[torch.Tensor]:
    """Weights of a bias-free ReLU network of widths ``widths``, one matrix per layer.

    Layer ``i`` maps width ``widths[i]`` to ``widths[i + 1]``; its weight has shape
    ``(fan_out, fan_in)`` (``torch.nn.Linear``'s convention) and entries drawn from
    ``N(0, 1 / fan_in)``, the first layer's first.

    Args:
        widths: ``(d_in, h_1, ..., d_out)``, at least two positive widths.
        generator: seed or generator of the draws.
        dtype: floating dtype (float32 by default: network weights).
        device: where the weights live; defaults to :func:`~lessons_lib.backend.default_device`.

    Returns:
        A list of ``len(widths) - 1`` weight matrices.
    """
    widths = _check_widths(widths)
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"dtype: expected a floating torch dtype, got {dtype!r}")
    device = torch.device(device) if device is not None else default_device()
    gen = as_generator(generator, device)
    return [torch.randn((fan_out, fan_in), generator=gen, dtype=dtype, device=device) / math.sqrt(fan_in)
            for fan_in, fan_out in zip(widths[:-1], widths[1:])]


def _check_widths(widths) -> tuple[int, ...]:
    if not isinstance(widths, (list, tuple)) or len(widths) < 2:
        raise ValueError(f"widths: expected a sequence of at least two widths, got {widths!r}")
    return tuple(check_count(w, name="widths") for w in widths)


def layered_relu_forward(weights: Sequence[torch.Tensor], X: torch.Tensor, *, start: int = 0) -> torch.Tensor:
    """Outputs ``W_b relu(... relu(W_1 x))`` of a bias-free ReLU network, shape ``(n, d_out)``.

    The layers below ``start`` (0-based) run under :func:`torch.no_grad`, so back-propagation
    through the result stops at layer ``start``: only ``weights[start:]`` get gradients, and
    autograd keeps no activations of the layers below it.

    Args:
        weights: the list of :func:`layered_relu_init`, shapes ``(fan_out, fan_in)``, chained.
        X: inputs, shape ``(n, d_in)``; moved to the first weight's device and dtype.
        start: the first layer that is differentiated, ``0 <= start < len(weights)``.

    Returns:
        The logits, shape ``(n, d_out)``.
    """
    if not isinstance(weights, (list, tuple)) or not weights:
        raise ValueError(f"weights: expected a non-empty list of weight matrices, got {type(weights).__name__}")
    for i, W in enumerate(weights):
        check_float_tensor(W, name="weights")
        if W.ndim != 2 or (i and W.shape[1] != weights[i - 1].shape[0]):
            raise ValueError(f"weights: layer {i} has shape {tuple(W.shape)}, which does not chain")
    check_float_tensor(X, name="X")
    if X.ndim != 2 or X.shape[1] != weights[0].shape[1]:
        raise ValueError(f"X: expected shape (n, {weights[0].shape[1]}), got {tuple(X.shape)}")
    if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start < len(weights):
        raise ValueError(f"start: expected an integer in [0, {len(weights) - 1}], got {start!r}")
    h = X.to(weights[0])
    last = len(weights) - 1
    with torch.no_grad():
        for i in range(start):
            h = torch.relu(h @ weights[i].T)
    for i in range(start, len(weights)):
        h = h @ weights[i].T
        if i < last:
            h = torch.relu(h)
    return h


# --- student-teacher network ---------------------------------------------------------------------

StudentActivation = Literal["linear", "tanh"]
_STUDENT_ACTIVATIONS = {
    "linear": (lambda z: z, torch.ones_like),
    "tanh": (torch.tanh, lambda z: 1 - torch.tanh(z) ** 2),
}


@dataclass(frozen=True)
class TeacherData:
    """Training sets of ``S`` independent linear teachers ``y = beta* . x``, batched over seeds.

    Attributes:
        X: inputs ``x ~ N(0, I/2)``, shape ``(S, n, M)``.
        y: teacher outputs, shape ``(S, n)``.
        beta: teacher weights ``beta* ~ N(0, I/M)``, shape ``(S, M)``.
    """

    X: torch.Tensor
    y: torch.Tensor
    beta: torch.Tensor


def teacher_data(*, n_inputs: int, n_samples: int = 100, seeds: int = 3,
                 generator: int | torch.Generator = 0) -> TeacherData:
    """``n_samples`` points ``x ~ N(0, I/2)`` labelled by a linear teacher ``beta* ~ N(0, I/M)``, per seed.

    Draws ``X`` and then ``beta`` from ``generator``; an int seed makes a generator on
    :func:`~lessons_lib.backend.default_device`, a generator keeps its own device.

    Returns:
        A :class:`TeacherData` in float64 on the generator's device.
    """
    M = check_count(n_inputs, name="n_inputs")
    n, S = check_count(n_samples, name="n_samples"), check_count(seeds, name="seeds")
    gen = as_generator(generator)
    f64 = dict(dtype=torch.float64, device=gen.device)
    X = torch.randn(S, n, M, generator=gen, **f64) / math.sqrt(2)
    beta = torch.randn(S, M, generator=gen, **f64) / math.sqrt(M)
    return TeacherData(X, (X @ beta[..., None])[..., 0], beta)


def init_student(*, n_inputs: int, n_hidden: int, seeds: int = 3, init_scale: float = 2.0,
                 generator: int | torch.Generator = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Student weights ``W1 ~ N(0, init_scale^2 / M)``, shape ``(S, N, M)``, then ``w2 ~ N(0, init_scale^2 / N)``,
    shape ``(S, N)``, drawn in that order from ``generator`` (an int seed draws on the default device)."""
    M, N = check_count(n_inputs, name="n_inputs"), check_count(n_hidden, name="n_hidden")
    S, init_scale = check_count(seeds, name="seeds"), check_positive(init_scale, name="init_scale")
    gen = as_generator(generator)
    f64 = dict(dtype=torch.float64, device=gen.device)
    W1 = torch.randn(S, N, M, generator=gen, **f64) * init_scale / math.sqrt(M)
    w2 = torch.randn(S, N, generator=gen, **f64) * init_scale / math.sqrt(N)
    return W1, w2


def flip_signs(n: int, flipped: int, S: int, generator: int | torch.Generator) -> torch.Tensor:
    """``S`` sign vectors of length ``n`` with ``flipped`` entries ``-1`` at random positions, shape ``(S, n)``.

    Args:
        n: length of each vector.
        flipped: how many entries are ``-1``, in ``[0, n]``.
        S: number of vectors (one random permutation each, drawn in order).
        generator: seed or generator; required (the global RNG is never used).
    """
    if generator is None:
        raise ValueError("generator: flip_signs needs an int seed or a torch.Generator")
    n, S = check_count(n, name="n"), check_count(S, name="S")
    if isinstance(flipped, bool) or not isinstance(flipped, int) or not 0 <= flipped <= n:
        raise ValueError(f"flipped: expected an int in [0, n = {n}], got {flipped!r}")
    gen = as_generator(generator)
    order = torch.stack([torch.randperm(n, generator=gen, device=gen.device) for _ in range(S)])
    return torch.where(order < flipped, -1.0, 1.0).to(torch.float64)


def _student_activation(activation: str):
    if activation not in _STUDENT_ACTIVATIONS:
        raise ValueError(f"activation: expected one of {sorted(_STUDENT_ACTIVATIONS)}, got {activation!r}")
    return _STUDENT_ACTIVATIONS[activation]


def check_student(W1, w2, X, y) -> tuple[torch.Tensor, ...]:
    """Validate a student and its data: ``W1`` ``(S, N, M)``, ``w2`` ``(S, N)``, ``X`` ``(S, n, M)``, ``y`` ``(S, n)``.

    Returns them as float64 tensors on the device of the first tensor; raises a ValueError naming the
    argument that is not finite real numbers or has the wrong shape.
    """
    W1, w2, X, y = as_tensors(W1=W1, w2=w2, X=X, y=y)
    if W1.ndim != 3 or w2.shape != W1.shape[:2]:
        raise ValueError(f"w2: expected W1 (S, N, M) and w2 (S, N), got {tuple(W1.shape)} and {tuple(w2.shape)}")
    if X.ndim != 3 or X.shape[0] != W1.shape[0] or X.shape[2] != W1.shape[2] or y.shape != X.shape[:2]:
        raise ValueError(f"X: expected X (S, n, M) and y (S, n) with S, M = {W1.shape[0]}, {W1.shape[2]}, got "
                         f"{tuple(X.shape)} and {tuple(y.shape)}")
    return W1, w2, X, y


def student_loss(W1: torch.Tensor, w2: torch.Tensor, X: torch.Tensor, y: torch.Tensor, *,
                 activation: StudentActivation = "linear") -> torch.Tensor:
    """``L = 1/(2n) sum_i (w2 . phi(W1 x_i) - y_i)^2`` per seed, for ``W1`` ``(S, N, M)``, ``w2`` ``(S, N)``,
    ``X`` ``(S, n, M)``, ``y`` ``(S, n)``; shape ``(S,)``."""
    phi, _ = _student_activation(activation)
    W1, w2, X, y = check_student(W1, w2, X, y)
    return 0.5 * (((phi(X @ W1.mT) * w2[:, None, :]).sum(-1) - y) ** 2).mean(-1)


def student_update(W1: torch.Tensor, w2: torch.Tensor, X: torch.Tensor, y: torch.Tensor, *, lr: float,
                   D1: torch.Tensor | None = None, D2: torch.Tensor | None = None,
                   activation: StudentActivation = "linear") -> tuple[torch.Tensor, torch.Tensor]:
    """One presynaptic sign-flipped learning step (eq-curl-updates), back-propagated by hand.

    With ``z = W1 x``, ``h = phi(z)``, ``e = w2 . h - y`` and ``delta1 = (w2 e) * phi'(z)`` over a
    batch of ``B`` points: ``dw2 = -lr D2 sum_b e_b h_b / B`` and ``dW1 = -lr sum_b delta1_b x_b^T D1 / B``.
    ``D1 = D2 = None`` (every sign ``+1``) is a gradient step on :func:`student_loss`.

    Args:
        W1, w2: student weights, shapes ``(S, N, M)`` and ``(S, N)``.
        X, y: a batch per seed, shapes ``(S, B, M)`` and ``(S, B)``.
        lr: the learning rate ``eta``.
        D1, D2: signs ``+-1`` per input ``(S, M)`` and per hidden unit ``(S, N)``.
        activation: ``"linear"`` or ``"tanh"``.

    Returns:
        The increments ``(dW1, dw2)``, shapes ``(S, N, M)`` and ``(S, N)``.
    """
    phi, dphi = _student_activation(activation)
    # type and shape checks only: this runs every step (see diagonal_net_step)
    W1, w2, X, y = (check_float_tensor(t, name=k) for k, t in (("W1", W1), ("w2", w2), ("X", X), ("y", y)))
    if W1.ndim != 3 or w2.shape != W1.shape[:2] or X.ndim != 3 or X.shape[::2] != W1.shape[::2] or (
            y.shape != X.shape[:2]):
        raise ValueError(f"X: expected W1 (S, N, M), w2 (S, N), X (S, B, M), y (S, B), got {tuple(W1.shape)}, "
                         f"{tuple(w2.shape)}, {tuple(X.shape)}, {tuple(y.shape)}")
    w2, X, y = w2.to(W1.dtype), X.to(W1.dtype), y.to(W1.dtype)
    if not isinstance(lr, torch.Tensor):
        lr = check_positive(lr, name="lr", allow_zero=True)
    z = X @ W1.mT  # (S, B, N)
    h = phi(z)
    e = (h * w2[:, None, :]).sum(-1) - y  # (S, B)
    B = X.shape[1]
    step1 = lr * ((e[..., None] * w2[:, None, :] * dphi(z)).mT @ X / B)
    step2 = lr * (e[..., None] * h).sum(1) / B
    if D1 is not None:
        step1 = step1 * D1[:, None, :]
    if D2 is not None:
        step2 = step2 * D2
    return -step1, -step2


def student_grad(W1: torch.Tensor, w2: torch.Tensor, X: torch.Tensor, y: torch.Tensor, *,
                 activation: StudentActivation = "linear") -> tuple[torch.Tensor, torch.Tensor]:
    """The gradient ``(dL/dW1, dL/dw2)`` of :func:`student_loss`, written out (see :func:`student_update`)."""
    _student_activation(activation)
    dW1, dw2 = student_update(*check_student(W1, w2, X, y), lr=1.0, activation=activation)
    return -dW1, -dw2
