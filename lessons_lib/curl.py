"""Curl descent: learning rules with sign-flipped (anti-Hebbian) units are not gradients of any loss.

Flip the sign of the update for some units and the weight dynamics gain an antisymmetric Jacobian
part, a *curl* (eq-curl-field): no loss decreases along them. Two exact cases:

* the scalar chain ``y = w2 w1 x`` with target ``a`` and the readout rule flipped,
  ``w1' = -w2 e``, ``w2' = +w1 e``, ``e = w1 w2 - a`` (eq-curl-chain): ``r^2 = w1^2 + w2^2`` is
  conserved (GD conserves ``w1^2 - w2^2``), a solution is reachable iff ``r0^2 >= 2|a|``, and the
  origin is a center;
* the linear student-teacher network with presynaptic flips ``D1`` (inputs) and ``D2`` (hidden
  units): the end-to-end error ``delta = W1^T w2 - beta*`` obeys ``delta' = -K Sigma delta`` with
  ``K = ||w2||^2 D1 + W1^T D2 W1`` (eq-curl-stability); the solution manifold is stable iff ``K > 0``.

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
from .descent import Trajectory, check_lr, iterate
from .run import run

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


def scalar_chain(w0, *, a: float, lr: float, steps: int, flipped: bool = True, blowup: float = 1e6) -> Trajectory:
    """Forward-Euler learning on ``y = w2 w1 x`` (``x = 1``) with target ``a`` (eq-curl-chain).

    ``w <- w + lr * chain_field(w)``. With ``flipped=True`` the readout's rule has its sign flipped
    (curl descent); ``False`` is GD on ``L = (w1 w2 - a)^2 / 2``. Forward Euler drifts ``r^2``
    upwards by ``O(lr)`` per revolution (the continuous flow conserves it).

    Returns:
        A :class:`~lessons_lib.descent.Trajectory` of ``(w1, w2)`` with ``loss = e^2 / 2``.
    """
    lr = check_lr(lr)
    a = check_real(a, name="a")
    flipped = check_flag(flipped, name="flipped")
    w0 = as_tensor(w0, name="w0")
    if w0.shape != (2,):
        raise ValueError(f"w0: expected (w1, w2), got shape {tuple(w0.shape)}")
    return iterate(lambda w: w + lr * chain_field(w, a=a, flipped=flipped),
                   lambda w: 0.5 * (w[0] * w[1] - a) ** 2, w0, lr=lr, steps=steps, blowup=blowup)


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
        ``K`` of shape ``(..., M, M)``; the solution manifold is stable iff its smallest eigenvalue is > 0.
    """
    W1, w2, D1, D2 = as_tensors(W1=W1, w2=w2, D1=D1, D2=D2)
    if W1.ndim < 2 or w2.shape[-1] != W1.shape[-2] or D1.shape[-1] != W1.shape[-1] or D2.shape[-1] != W1.shape[-2]:
        raise ValueError("W1: shapes must be W1 (..., N, M), w2 (..., N), D1 (..., M), D2 (..., N)")
    eye = torch.diag_embed(D1.to(W1))
    return (w2**2).sum(-1)[..., None, None] * eye + W1.mT @ (D2.to(W1)[..., :, None] * W1)


@dataclass(frozen=True)
class StudentTeacherRun(Record):
    """Training curves batched over seeds ``S``: ``loss`` and ``lam_min`` (of ``K``) have shape ``(K, S)``.

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
        """Bool ``(S,)``: the final training loss is below ``tol``."""
        tol = check_positive(tol, name="tol")
        return (self.loss[-1] < tol) & ~self.diverged


def train_student_teacher(*, n_inputs: int, n_hidden: int, flipped_inputs: int = 0, flipped_hidden: int = 0,
                          activation: Activation = "linear", lr: float = 0.05, steps: int = 5000,
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
    loop is :func:`lessons_lib.run.run`, batched over seeds.

    Args:
        n_inputs, n_hidden: ``M`` and ``N``; ``N > M`` is expansive, ``N < M`` compressive.
        flipped_inputs, flipped_hidden: how many input / hidden units are flipped (random positions).
        activation: ``"linear"`` or ``"tanh"``.
        lr, steps: learning rate and number of updates.
        batch_size: ``None`` for the full batch.
        init_scale: student weights are ``N(0, init_scale^2 / fan_in)``.
        renormalize: see above.
        seeds: independent runs (data, teacher, student, flip positions), batched.
        generator: seed or generator; an int seed draws on
            :func:`~lessons_lib.backend.default_device`, a generator on its own device.
        record_every: record the loss and ``lambda_min(K)`` every this many steps.
        blowup: a run diverges when the norm of its weights ``(W1, w2)`` exceeds
            ``blowup * max(1, ||(W1, w2)_0||)`` (:mod:`lessons_lib.run`).
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
    lr = check_positive(lr, name="lr")
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
    norm1, norm2 = W1.norm(dim=(1, 2), keepdim=True), w2.norm(dim=1, keepdim=True)

    def step(state, t, eta):
        W1, w2 = state
        Xb, yb = X, y
        if batch_size is not None:
            idx = torch.randint(n, (S, batch_size), generator=gen, device=gen.device)
            Xb, yb = torch.gather(X, 1, idx[..., None].expand(S, batch_size, M)), torch.gather(y, 1, idx)
        d1, d2 = models.student_update(W1, w2, Xb, yb, lr=eta, D1=D1, D2=D2, activation=activation)
        new1, new2 = W1 + d1, w2 + d2
        if renormalize:
            new1 = new1 * norm1 / new1.norm(dim=(1, 2), keepdim=True)
            new2 = new2 * norm2 / new2.norm(dim=1, keepdim=True)
        return new1, new2

    def record(state, t):
        W1, w2 = state
        return {"loss": models.student_loss(W1, w2, X, y, activation=activation),
                "lam_min": torch.linalg.eigvalsh(stability_matrix(W1, w2, D1, D2))[:, 0]}

    out = run(step, (W1, w2), steps=steps, lr=lr, record=record, record_every=record_every, blowup=blowup,
              batched=True)
    return StudentTeacherRun(out.steps, out.history["loss"], out.history["lam_min"], *out.state, D1, D2,
                             out.diverged, out.diverged_at)


@dataclass(frozen=True)
class SignCensus(Record):
    """Final loss and ``lambda_min(K)`` of several student-teacher configurations, from :func:`sign_census`.

    Attributes:
        final_loss: shape ``(C, S)`` for ``C`` configurations and ``S`` seeds.
        lam_min: final ``lambda_min(K)``, shape ``(C, S)``.
        learned: bool ``(C, S)``, the final loss is below the tolerance (and the run did not diverge).
    """

    final_loss: torch.Tensor
    lam_min: torch.Tensor
    learned: torch.Tensor

    @property
    def agree(self) -> int:
        """Runs where the sign of ``lambda_min(K)`` predicted the outcome (``learned == (lam_min > 0)``)."""
        return int((self.learned == (self.lam_min > 0)).sum())

    @property
    def total(self) -> int:
        """Number of runs, ``C * S``."""
        return self.learned.numel()


def sign_census(configs: Sequence[dict], *, steps: int, seeds: int = 2, generator: int | torch.Generator = 0,
                tol: float = 1e-6, **kwargs) -> SignCensus:
    """Train each configuration and record whether ``lambda_min(K) > 0`` (eq-curl-stability) predicted success.

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
        A :class:`SignCensus`; ``agree`` of ``total`` runs were predicted by the sign.
    """
    tol = check_positive(tol, name="tol")
    if not configs:
        raise ValueError("configs: expected at least one configuration")
    runs = [train_student_teacher(**config, **kwargs, steps=steps, seeds=seeds, generator=generator,
                                  record_every=steps)
            for config in progress(configs, desc="configurations")]
    return SignCensus(torch.stack([r.loss[-1] for r in runs]), torch.stack([r.lam_min[-1] for r in runs]),
                      torch.stack([r.learned(tol) for r in runs]))


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
