"""Curl descent: learning rules with sign-flipped (anti-Hebbian) units are not gradients of any loss.

Flip the sign of the update for some units and the weight dynamics gain an antisymmetric Jacobian
part, a *curl* (eq-curl-field): no loss decreases along them. Two exact cases:

* the scalar chain ``y = w2 w1 x`` with target ``a`` and the readout rule flipped,
  ``w1' = -w2 e``, ``w2' = +w1 e``, ``e = w1 w2 - a`` (eq-curl-chain): ``r^2 = w1^2 + w2^2`` is
  conserved (GD conserves ``w1^2 - w2^2``), a solution is reachable iff ``r0^2 >= 2|a|``, and the
  origin is a center;
* the linear student-teacher network with presynaptic flips ``D1`` (inputs) and ``D2`` (hidden
  units): the end-to-end error ``delta = W1^T w2 - beta*`` obeys ``delta' = -K Sigma delta`` with
  ``K = ||w2||^2 D1 + W1^T D2 W1`` (eq-curl-stability), exactly for the plain flow; the solution
  manifold is linearly stable iff ``K > 0``. The weight-norm rescaling of the authors' scripts
  (``renormalize=True``) is not part of this derivation.

References:
    Ninou, Kadmon & Cayco-Gajic (2025), Curl Descent: Non-Gradient Learning Dynamics with
    Sign-Diverse Plasticity, NeurIPS, arXiv:2510.02765.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch.func import jacrev

from . import models
from .backend import (
    Record,
    as_generator,
    as_tensor,
    as_tensors,
    check_callable,
    check_count,
    check_flag,
    check_float_tensor,
    check_positive,
    check_real,
    progress,
)
from .descent import Trajectory, iterate
from .run import per_run, run

#: The student-teacher network lives in :mod:`lessons_lib.models`; these names are kept for the chapter.
Activation = models.StudentActivation
flip_signs = models.flip_signs


def chain_field(w: torch.Tensor, *, a: float, flipped: bool = True) -> torch.Tensor:
    """Continuous-time learning field of the scalar chain (eq-curl-chain); GD when ``flipped=False``.

    ``w`` is not checked for NaN: the field runs every step of :func:`scalar_chain` (and under torch.func).
    """
    check_float_tensor(w, name="w")
    if w.shape[:1] != (2,):
        raise ValueError(f"w: expected (w1, w2) in the first dimension, got shape {tuple(w.shape)}")
    a, flipped = check_real(a, name="a"), check_flag(flipped, name="flipped")
    e = w[0] * w[1] - a
    return torch.stack([-w[1] * e, (w[0] if flipped else -w[0]) * e])


def _rates(lr, *, positive: bool) -> float | list[float]:
    """``lr`` as one float, or as a list of floats (one per run) when it is a list, a tuple or a 1-D array.

    Raises:
        ValueError: naming ``lr`` for a bool, a string, an empty sequence, or a rate that is not finite
            and ``> 0`` (``>= 0`` when ``positive`` is false).
    """
    if not (isinstance(lr, (list, tuple)) or getattr(lr, "ndim", 0) == 1):
        return check_positive(lr, name="lr", allow_zero=not positive)
    rates = [check_positive(v, name="lr", allow_zero=not positive) for v in lr]
    if not rates:
        raise ValueError("lr: expected a learning rate or a non-empty sequence of them, got an empty sequence")
    return rates


def scalar_chain(w0, *, a: float, lr: float | Sequence[float], steps: int, flipped: bool = True,
                 blowup: float = 1e6) -> Trajectory:
    """Forward-Euler learning on ``y = w2 w1 x`` (``x = 1``) with target ``a`` (eq-curl-chain).

    ``w <- w + lr * chain_field(w)``. With ``flipped=True`` the readout's rule has its sign flipped
    (curl descent); ``False`` is GD on ``L = (w1 w2 - a)^2 / 2``. Forward Euler drifts ``r^2``
    upwards by ``O(lr)`` per revolution (the continuous flow conserves it). Several starts run side
    by side in one loop (:func:`lessons_lib.run.run`, batched), each diverging on its own.

    Args:
        w0: the start ``(w1, w2)``, shape ``(2,)``, or ``R`` starts, shape ``(R, 2)``.
        a: the target of ``w1 w2``.
        lr: the learning rate ``eta >= 0``; with ``R`` starts, also a sequence of ``R`` rates, one per run.
        steps: number of updates ``K >= 0``.
        flipped: curl descent (``True``) or GD (``False``).
        blowup: divergence radius relative to ``max(1, ||w0||)``, per run (:mod:`lessons_lib.run`).

    Returns:
        A :class:`~lessons_lib.descent.Trajectory` of ``(w1, w2)`` with ``loss = e^2 / 2``. For ``w0`` of
        shape ``(2,)``: ``K + 1`` iterates of shape ``(2,)``, ending at divergence. For ``(R, 2)``:
        ``params`` ``(K + 1, R, 2)`` and ``loss`` ``(K + 1, R)``; ``lr`` is the float, or a float64
        tensor ``(R,)`` of the per-run rates; ``diverged`` is a bool tensor ``(R,)`` and
        ``diverged_at`` a long tensor ``(R,)`` (``-1`` where a run did not diverge). A diverged run
        stays frozen at its last iterate, so nothing is NaN or infinite: its first
        ``diverged_at + 1`` iterates (all ``K + 1`` of a run that did not diverge) are exactly those
        of the call with its start and rate alone. When every run diverged, the histories end at the
        last divergence.

    References:
        Ninou, Kadmon & Cayco-Gajic (2025), Curl Descent: Non-Gradient Learning Dynamics with
        Sign-Diverse Plasticity, NeurIPS, arXiv:2510.02765.
    """
    lr = _rates(lr, positive=False)
    a = check_real(a, name="a")
    flipped = check_flag(flipped, name="flipped")
    w0 = as_tensor(w0, name="w0")
    if w0.shape == (2,):
        if isinstance(lr, list):
            raise ValueError("lr: one learning rate per run needs R starts, w0 of shape (R, 2); got one start (2,)")
        return iterate(lambda w: w + lr * chain_field(w, a=a, flipped=flipped),
                       lambda w: 0.5 * (w[0] * w[1] - a) ** 2, w0, lr=lr, steps=steps, blowup=blowup)
    if w0.ndim != 2 or w0.shape[1] != 2 or w0.shape[0] == 0:
        raise ValueError(f"w0: expected (w1, w2) of shape (2,) or R starts of shape (R, 2), "
                         f"got shape {tuple(w0.shape)}")
    if isinstance(lr, list) and len(lr) != w0.shape[0]:
        raise ValueError(f"lr: expected one learning rate per start ({w0.shape[0]}), got {len(lr)}")

    def step(w, t, eta):  # the same floating-point operations as one run's, column by column
        return w + per_run(eta, w) * chain_field(w.T, a=a, flipped=flipped).T

    out = run(step, w0, steps=steps, lr=lr, blowup=blowup, batched=True,
              record=lambda w, t: {"params": w, "loss": 0.5 * (w[:, 0] * w[:, 1] - a) ** 2})
    label = torch.tensor(lr, dtype=torch.float64) if isinstance(lr, list) else lr
    return Trajectory(out.history["params"], out.history["loss"], label, out.diverged, out.diverged_at)


def learning_field_jacobian(field: Callable[[torch.Tensor], torch.Tensor], w) -> torch.Tensor:
    """Jacobian ``d field / d w`` at ``w`` (torch.func.jacrev); symmetric iff the field is locally a gradient."""
    check_callable(field, name="field")
    return jacrev(field)(as_tensor(w, name="w"))


def curl_fraction(J: torch.Tensor) -> float:
    """``||J - J^T|| / (2 ||J||)``: the relative size of the antisymmetric (curl) part of ``J``."""
    J = as_tensor(J, name="J")
    if J.ndim != 2 or J.shape[0] != J.shape[1]:
        raise ValueError("J: expected a square matrix")
    n = float(J.norm())
    return 0.0 if n == 0 else float((J - J.T).norm()) / (2 * n)


def stability_matrix(W1: torch.Tensor, w2: torch.Tensor, D1: torch.Tensor, D2: torch.Tensor) -> torch.Tensor:
    """``K = ||w2||^2 diag(D1) + W1^T diag(D2) W1`` (eq-curl-stability), batched over leading dims.

    Args:
        W1: first layer, shape ``(..., N, M)`` (hidden x inputs).
        w2: readout, shape ``(..., N)``.
        D1, D2: signs ``+-1`` per input ``(..., M)`` and per hidden unit ``(..., N)``.

    Returns:
        ``K`` of shape ``(..., M, M)``. For the plain flow (no weight-norm rescaling) of a linear student,
        ``delta' = -K Sigma delta`` holds exactly, with ``delta = W1^T w2 - beta*``; the solution manifold is
        linearly stable there iff the smallest eigenvalue of ``K`` is > 0 (when ``Sigma`` is full rank). With
        ``renormalize=True`` in :func:`train_student_teacher` the rescaling adds further, non-symmetric
        terms, so the sign of ``lambda_min(K)`` is then a heuristic.

    References:
        Ninou, Kadmon & Cayco-Gajic (2025), Curl Descent: Non-Gradient Learning Dynamics with
        Sign-Diverse Plasticity, NeurIPS, arXiv:2510.02765.
    """
    W1, w2, D1, D2 = as_tensors(W1=W1, w2=w2, D1=D1, D2=D2)
    if W1.ndim < 2 or w2.shape[-1] != W1.shape[-2] or D1.shape[-1] != W1.shape[-1] or D2.shape[-1] != W1.shape[-2]:
        raise ValueError("W1: shapes must be W1 (..., N, M), w2 (..., N), D1 (..., M), D2 (..., N)")
    eye = torch.diag_embed(D1.to(W1))
    return (w2**2).sum(-1)[..., None, None] * eye + W1.mT @ (D2.to(W1)[..., :, None] * W1)


@dataclass(frozen=True)
class StudentTeacherRun(Record):
    """Training curves batched over seeds ``S``: ``loss`` and ``lam_min`` (of ``K``) have shape ``(K, S)``.

    With ``L`` learning rates (``lr`` a sequence) a rate axis comes before the seeds: ``loss`` and
    ``lam_min`` ``(K, L, S)``, ``W1`` ``(L, S, N, M)``, ``w2`` ``(L, S, N)``, ``diverged`` and
    ``diverged_at`` ``(L, S)``; ``D1`` ``(S, M)`` and ``D2`` ``(S, N)`` are shared by every rate.

    ``diverged`` and ``diverged_at`` (``(S,)``, ``-1`` where a run did not diverge) follow the
    book's one meaning of divergence (:mod:`lessons_lib.run`): a diverged run is frozen at its last
    finite weights. When every run diverged, the histories end at the last divergence.
    """

    steps: torch.Tensor
    loss: torch.Tensor
    lam_min: torch.Tensor
    W1: torch.Tensor
    w2: torch.Tensor
    D1: torch.Tensor
    D2: torch.Tensor
    diverged: torch.Tensor
    diverged_at: torch.Tensor

    def learned(self, tol: float = 1e-6) -> torch.Tensor:
        """Bool ``(S,)`` (``(L, S)`` with ``L`` rates): the final training loss is below ``tol``."""
        tol = check_positive(tol, name="tol")
        return (self.loss[-1] < tol) & ~self.diverged


def train_student_teacher(*, n_inputs: int, n_hidden: int, flipped_inputs: int = 0, flipped_hidden: int = 0,
                          activation: Activation = "linear", lr: float | Sequence[float] = 0.05, steps: int = 5000,
                          batch_size: int | None = None, n_samples: int = 100, init_scale: float = 2.0,
                          renormalize: bool = False, seeds: int = 3, generator: int | torch.Generator = 0,
                          record_every: int = 100, blowup: float = 1e6) -> StudentTeacherRun:
    """A two-layer student ``y = w2 . phi(W1 x)`` learns a linear teacher ``y = beta* . x`` with
    sign-flipped units (eq-curl-updates).

    ``x ~ N(0, I/2)``, ``beta* ~ N(0, I/M)``, ``n_samples`` fixed training points
    (:func:`lessons_lib.models.teacher_data`). With ``e = y_hat - y`` and
    ``delta1 = (w2 e) * phi'(W1 x)``, presynaptic flips give ``dW2 = -lr (e h^T) D2 / B`` and
    ``dW1 = -lr (delta1 x^T) D1 / B`` (:func:`lessons_lib.models.student_update`); ``D = I`` is GD.
    ``renormalize=True`` rescales each layer after every update to its initial Frobenius norm, as
    the authors' released scripts do unconditionally (whether the paper describes it is
    unverified); it is off by default, and the chapter switches it on to follow the scripts. The
    loop is :func:`lessons_lib.run.run`, batched over seeds, and over learning rates when ``lr`` is a
    sequence: every rate then trains the same ``S`` students on the same data, flips and minibatches
    (those a single-rate call with the same seed draws), and each ``(rate, seed)`` run is exactly the
    single-rate call's. One difference: a rate whose every seed diverged keeps its frozen state in
    the histories until every run of the batch has diverged, where a single-rate call ends them at its
    own last divergence.

    Args:
        n_inputs, n_hidden: ``M`` and ``N``; ``N > M`` is expansive, ``N < M`` compressive.
        flipped_inputs, flipped_hidden: how many input / hidden units are flipped (random positions).
        activation: ``"linear"`` or ``"tanh"``.
        lr, steps: learning rate ``> 0`` (or a sequence of ``L`` rates, trained side by side) and number
            of updates.
        batch_size: ``None`` for the full batch.
        init_scale: student weights are ``N(0, init_scale^2 / fan_in)``.
        renormalize: see above.
        seeds: independent runs (data, teacher, student, flip positions), batched.
        generator: seed or generator; an int seed draws on
            :func:`~lessons_lib.backend.default_device`, a generator on its own device. With a
            generator, a sequence of rates matches single-rate calls that each start from its state.
        record_every: record the loss and ``lambda_min(K)`` every this many steps.
        blowup: a run diverges when the norm of its weights ``(W1, w2)`` exceeds
            ``blowup * max(1, ||(W1, w2)_0||)`` (:mod:`lessons_lib.run`).

    Returns:
        A :class:`StudentTeacherRun` (with a rate axis ``L`` when ``lr`` is a sequence).

    References:
        Ninou, Kadmon & Cayco-Gajic (2025), Curl Descent: Non-Gradient Learning Dynamics with
        Sign-Diverse Plasticity, NeurIPS, arXiv:2510.02765.
    """
    M, N = check_count(n_inputs, name="n_inputs"), check_count(n_hidden, name="n_hidden")
    flipped_inputs = check_count(flipped_inputs, name="flipped_inputs", minimum=0)
    flipped_hidden = check_count(flipped_hidden, name="flipped_hidden", minimum=0)
    renormalize = check_flag(renormalize, name="renormalize")
    if not 0 <= flipped_inputs <= M:
        raise ValueError(f"flipped_inputs: must lie in [0, n_inputs = {M}], got {flipped_inputs}")
    if not 0 <= flipped_hidden <= N:
        raise ValueError(f"flipped_hidden: must lie in [0, n_hidden = {N}], got {flipped_hidden}")
    if activation not in ("linear", "tanh"):
        raise ValueError(f"activation: expected 'linear' or 'tanh', got {activation!r}")
    lr = _rates(lr, positive=True)
    steps, S = check_count(steps, name="steps"), check_count(seeds, name="seeds")
    n = check_count(n_samples, name="n_samples")
    if batch_size is not None and not 1 <= batch_size <= n:
        raise ValueError(f"batch_size: expected None or an int in [1, n_samples = {n}], got {batch_size}")
    init_scale = check_positive(init_scale, name="init_scale")
    record_every = check_count(record_every, name="record_every")
    blowup = check_positive(blowup, name="blowup")
    gen = as_generator(generator)
    data = models.teacher_data(n_inputs=M, n_samples=n, seeds=S, generator=gen)
    X, y = data.X, data.y
    W1, w2 = models.init_student(n_inputs=M, n_hidden=N, seeds=S, init_scale=init_scale, generator=gen)
    D1, D2 = flip_signs(M, flipped_inputs, S, gen), flip_signs(N, flipped_hidden, S, gen)
    many = isinstance(lr, list)
    L, signs = (len(lr) if many else 1), (D1, D2)
    if many:  # run l * S + s is rate l, seed s: every rate starts from the same draws
        lr = [rate for rate in lr for _ in range(S)]
        X, y, W1, w2, D1, D2 = (z.repeat(L, *(1,) * (z.ndim - 1)) for z in (X, y, W1, w2, D1, D2))
    R = L * S
    norm1, norm2 = W1.norm(dim=(1, 2), keepdim=True), w2.norm(dim=1, keepdim=True)

    def step(state, t, eta):
        W1, w2 = state
        Xb, yb = X, y
        if batch_size is not None:
            idx = torch.randint(n, (S, batch_size), generator=gen, device=gen.device).repeat(L, 1)
            Xb, yb = torch.gather(X, 1, idx[..., None].expand(R, batch_size, M)), torch.gather(y, 1, idx)
        d1, d2 = _student_update(W1, w2, Xb, yb, eta, D1, D2, activation)
        new1, new2 = W1 + d1, w2 + d2
        if renormalize:
            new1 = new1 * norm1 / new1.norm(dim=(1, 2), keepdim=True)
            new2 = new2 * norm2 / new2.norm(dim=1, keepdim=True)
        return new1, new2

    def record(state, t):
        W1, w2 = state
        K = stability_matrix(W1, w2, D1, D2)
        # eigvalsh rounds differently with the size of its batch: one batch of S per rate, as a single-rate call
        return {"loss": models.student_loss(W1, w2, X, y, activation=activation),
                "lam_min": torch.cat([torch.linalg.eigvalsh(k)[:, 0] for k in K.split(S)])}

    out = run(step, (W1, w2), steps=steps, lr=lr, record=record, record_every=record_every, blowup=blowup,
              batched=True)
    if not many:
        return StudentTeacherRun(out.steps, out.history["loss"], out.history["lam_min"], *out.state, D1, D2,
                                 out.diverged, out.diverged_at)
    loss, lam_min = (out.history[k].unflatten(1, (L, S)) for k in ("loss", "lam_min"))  # (K, L, S)
    W1, w2, diverged, at = (z.unflatten(0, (L, S)) for z in (*out.state, out.diverged, out.diverged_at))
    return StudentTeacherRun(out.steps, loss, lam_min, W1, w2, *signs, diverged, at)


def _student_update(W1, w2, X, y, eta, D1, D2, activation):
    """:func:`lessons_lib.models.student_update` with a rate ``eta`` that is a number or one per run, ``(R,)``.

    ``student_update`` takes one rate; a per-run one, shaped ``(R, 1, 1)``, scales ``dW1`` run by run,
    and in ``dw2`` (``lr * sum / B``) it broadcasts to ``(R, R, N)``, whose diagonal holds each run's
    own increment (``O(R^2 N)`` numbers). Either way each run gets the very floating-point operations
    of a single-rate call, so a batch of rates agrees with those calls bit for bit (multiplying the
    increments of ``lr = 1`` by the rates would not: ``(lr * s) / B`` is not ``lr * (s / B)``).
    """
    if not isinstance(eta, torch.Tensor):
        return models.student_update(W1, w2, X, y, lr=eta, D1=D1, D2=D2, activation=activation)
    d1, d2 = models.student_update(W1, w2, X, y, lr=eta.to(W1)[:, None, None], D1=D1, D2=D2, activation=activation)
    return d1, (d2.diagonal(dim1=0, dim2=1).mT if d2.ndim == 3 else d2)


@dataclass(frozen=True)
class SignCensus(Record):
    """Final loss and ``lambda_min(K)`` of several student-teacher configurations, from :func:`sign_census`.

    Attributes:
        final_loss: shape ``(C, S)`` for ``C`` configurations and ``S`` seeds.
        lam_min: final ``lambda_min(K)``, shape ``(C, S)``.
        learned: bool ``(C, S)``, the final loss is below the tolerance (and the run did not diverge).
        lam_min_start: ``lambda_min(K)`` at the initial weights, shape ``(C, S)``.
    """

    final_loss: torch.Tensor
    lam_min: torch.Tensor
    learned: torch.Tensor
    lam_min_start: torch.Tensor

    @property
    def agree(self) -> int:
        """Runs where the sign of the final ``lambda_min(K)`` matches the outcome (``learned == (lam_min > 0)``).

        Read at the end of training this is a diagnosis, not a prediction: see :attr:`agree_at_start`.
        """
        return int((self.learned == (self.lam_min > 0)).sum())

    @property
    def agree_at_start(self) -> int:
        """Runs whose outcome the sign of ``lambda_min(K)`` at the initial weights predicted."""
        return int((self.learned == (self.lam_min_start > 0)).sum())

    @property
    def total(self) -> int:
        """Number of runs, ``C * S``."""
        return self.learned.numel()


def sign_census(configs: Sequence[dict], *, steps: int, seeds: int = 2, generator: int | torch.Generator = 0,
                tol: float = 1e-6, **kwargs) -> SignCensus:
    """Train each configuration and record whether the sign of ``lambda_min(K)`` (eq-curl-stability), at the
    initial and at the final weights, matches success.

    Args:
        configs: keyword arguments of :func:`train_student_teacher` per configuration, e.g.
            ``dict(n_inputs=20, n_hidden=40, flipped_inputs=5)``.
        steps: training steps of every run (only the final state is recorded).
        seeds: runs per configuration.
        generator: an int seed gives every configuration the same seed; a generator is threaded
            through them in order.
        tol: a run learned when its final loss is below ``tol``.
        **kwargs: further arguments shared by every run (``lr``, ``renormalize``, ...).

    Returns:
        A :class:`SignCensus`: the sign of the final ``lambda_min(K)`` matches the outcome in ``agree`` of
        ``total`` runs, the sign at the initial weights in ``agree_at_start``.

    References:
        Ninou, Kadmon & Cayco-Gajic (2025), Curl Descent: Non-Gradient Learning Dynamics with
        Sign-Diverse Plasticity, NeurIPS, arXiv:2510.02765.
    """
    tol = check_positive(tol, name="tol")
    if not configs:
        raise ValueError("configs: expected at least one configuration")
    runs = [train_student_teacher(**config, **kwargs, steps=steps, seeds=seeds, generator=generator,
                                  record_every=steps)
            for config in progress(configs, desc="configurations")]
    return SignCensus(torch.stack([r.loss[-1] for r in runs]), torch.stack([r.lam_min[-1] for r in runs]),
                      torch.stack([r.learned(tol) for r in runs]), torch.stack([r.lam_min[0] for r in runs]))


def network_field(params: torch.Tensor, *, X: torch.Tensor, y: torch.Tensor, D1: torch.Tensor,
                  D2: torch.Tensor) -> torch.Tensor:
    """The full-batch learning field of one linear two-layer net, flat ``params = (W1, w2)`` (eq-curl-field).

    ``W1`` is ``(N, M)`` row-major, then ``w2`` ``(N,)``. With ``D1 = D2 = 1`` it is ``-grad L``.
    ``params`` is not checked for NaN: the field is differentiated with torch.func (see
    :func:`learning_field_jacobian`), where a data-dependent check cannot run.
    """
    check_float_tensor(params, name="params")
    X, y, D1, D2 = as_tensors(X=X, y=y, D1=D1, D2=D2, dtype=params.dtype)
    X, y, D1, D2 = (z.to(params.device) for z in (X, y, D1, D2))
    if X.ndim != 2 or y.shape != X.shape[:1] or D1.shape != X.shape[1:] or D2.ndim != 1:
        raise ValueError(f"X: expected X (n, M), y (n,), D1 (M,), D2 (N,), got {tuple(X.shape)}, {tuple(y.shape)}, "
                         f"{tuple(D1.shape)}, {tuple(D2.shape)}")
    M, N = X.shape[1], D2.shape[0]
    if params.shape != (N * M + N,):
        raise ValueError(f"params: expected the flat (W1, w2) of shape ({N * M + N},), got {tuple(params.shape)}")
    W1, w2 = params[: N * M].view(N, M), params[N * M:]
    e = X @ W1.T @ w2 - y
    g2 = (X @ W1.T).T @ e / len(y)
    g1 = torch.outer(w2, e @ X / len(y))
    return -torch.cat([(g1 * D1[None, :]).flatten(), g2 * D2])
