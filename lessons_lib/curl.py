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

import math
from dataclasses import dataclass
from typing import Callable, Literal

import torch
from torch.func import jacrev

from .backend import as_generator, as_tensor, check_count, check_positive, to_host
from .descent import Trajectory, check_lr, iterate

Activation = Literal["linear", "tanh"]


def chain_field(w: torch.Tensor, *, a: float, flipped: bool = True) -> torch.Tensor:
    """Continuous-time learning field of the scalar chain (eq-curl-chain); GD when ``flipped=False``."""
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
    a = float(a)
    if not math.isfinite(a):
        raise ValueError(f"a: the target must be finite, got {a}")
    w0 = as_tensor(w0, name="w0")
    if w0.shape != (2,):
        raise ValueError(f"w0: expected (w1, w2), got shape {tuple(w0.shape)}")
    return iterate(lambda w: w + lr * chain_field(w, a=a, flipped=flipped),
                   lambda w: 0.5 * (w[0] * w[1] - a) ** 2, w0, lr=lr, steps=steps, blowup=blowup)


def learning_field_jacobian(field: Callable[[torch.Tensor], torch.Tensor], w) -> torch.Tensor:
    """Jacobian ``d field / d w`` at ``w`` (torch.func.jacrev); symmetric iff the field is locally a gradient."""
    return jacrev(field)(as_tensor(w, name="w"))


def curl_fraction(J: torch.Tensor) -> float:
    """``||J - J^T|| / (2 ||J||)``: the relative size of the antisymmetric (curl) part of ``J``."""
    if not isinstance(J, torch.Tensor) or J.ndim != 2 or J.shape[0] != J.shape[1]:
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
    if W1.ndim < 2 or w2.shape[-1] != W1.shape[-2] or D1.shape[-1] != W1.shape[-1] or D2.shape[-1] != W1.shape[-2]:
        raise ValueError("W1: shapes must be W1 (..., N, M), w2 (..., N), D1 (..., M), D2 (..., N)")
    eye = torch.diag_embed(D1.to(W1))
    return (w2**2).sum(-1)[..., None, None] * eye + W1.mT @ (D2.to(W1)[..., :, None] * W1)


@dataclass(frozen=True)
class StudentTeacherRun:
    """Training curves batched over seeds ``S``: ``loss`` and ``lam_min`` (of ``K``) have shape ``(K, S)``.

    ``diverged`` (``(S,)``) marks runs whose weights stopped being finite; they are frozen there.
    """

    steps: torch.Tensor
    loss: torch.Tensor
    lam_min: torch.Tensor
    W1: torch.Tensor
    w2: torch.Tensor
    D1: torch.Tensor
    D2: torch.Tensor
    diverged: torch.Tensor

    def __post_init__(self):
        to_host(self)  # records are read on the host (see backend.to_host)

    def learned(self, tol: float = 1e-6) -> torch.Tensor:
        """Bool ``(S,)``: the final training loss is below ``tol``."""
        return (self.loss[-1] < tol) & ~self.diverged


def flip_signs(n: int, flipped: int, S: int, gen: torch.Generator) -> torch.Tensor:
    """``S`` sign vectors of length ``n`` with ``flipped`` entries ``-1`` at random positions."""
    order = torch.stack([torch.randperm(n, generator=gen) for _ in range(S)])
    return torch.where(order < flipped, -1.0, 1.0).to(torch.float64)


def train_student_teacher(*, n_inputs: int, n_hidden: int, flipped_inputs: int = 0, flipped_hidden: int = 0,
                          activation: Activation = "linear", lr: float = 0.05, steps: int = 5000,
                          batch_size: int | None = None, n_samples: int = 100, init_scale: float = 2.0,
                          renormalize: bool = False, seeds: int = 3, generator: int | torch.Generator = 0,
                          record_every: int = 100) -> StudentTeacherRun:
    """A two-layer student ``y = w2 . phi(W1 x)`` learns a linear teacher ``y = beta* . x`` with
    sign-flipped units (eq-curl-updates).

    ``x ~ N(0, I/2)``, ``beta* ~ N(0, I/M)``, ``n_samples`` fixed training points. With ``e = y_hat - y``
    and ``delta1 = (w2 e) * phi'(W1 x)``, presynaptic flips give
    ``dW2 = -lr (e h^T) D2 / B`` and ``dW1 = -lr (delta1 x^T) D1 / B``; ``D = I`` is GD.
    ``renormalize=True`` rescales each layer after every update to its initial Frobenius norm, as the
    authors' released scripts do unconditionally (whether the paper describes it is unverified); it
    is off by default, and the chapter switches it on to follow the scripts.

    Args:
        n_inputs, n_hidden: ``M`` and ``N``; ``N > M`` is expansive, ``N < M`` compressive.
        flipped_inputs, flipped_hidden: how many input / hidden units are flipped (random positions).
        activation: ``"linear"`` or ``"tanh"``.
        lr, steps: learning rate and number of updates.
        batch_size: ``None`` for the full batch.
        init_scale: student weights are ``N(0, init_scale^2 / fan_in)``.
        renormalize: see above.
        seeds: independent runs (data, teacher, student, flip positions), batched.
        generator: seed or generator.
        record_every: record the loss and ``lambda_min(K)`` every this many steps.
    """
    M, N = check_count(n_inputs, name="n_inputs"), check_count(n_hidden, name="n_hidden")
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
    gen = as_generator(generator, "cpu")
    f64 = dict(dtype=torch.float64)

    X = torch.randn(S, n, M, generator=gen, **f64) / math.sqrt(2)
    beta = torch.randn(S, M, generator=gen, **f64) / math.sqrt(M)
    y = (X @ beta[..., None])[..., 0]
    W1 = torch.randn(S, N, M, generator=gen, **f64) * init_scale / math.sqrt(M)
    w2 = torch.randn(S, N, generator=gen, **f64) * init_scale / math.sqrt(N)
    D1, D2 = flip_signs(M, flipped_inputs, S, gen), flip_signs(N, flipped_hidden, S, gen)
    phi = (lambda z: z) if activation == "linear" else torch.tanh
    dphi = (lambda z: torch.ones_like(z)) if activation == "linear" else (lambda z: 1 - torch.tanh(z) ** 2)
    norm1, norm2 = W1.norm(dim=(1, 2), keepdim=True), w2.norm(dim=1, keepdim=True)
    dead = torch.zeros(S, dtype=torch.bool)
    rec, losses, lams = [], [], []

    def record(t):
        rec.append(t)
        losses.append(0.5 * (((phi(X @ W1.mT) * w2[:, None, :]).sum(-1) - y) ** 2).mean(-1))
        lams.append(torch.linalg.eigvalsh(stability_matrix(W1, w2, D1, D2))[:, 0])

    record(0)
    for t in range(steps):
        if batch_size is None:
            Xb, yb = X, y
        else:
            idx = torch.randint(n, (S, batch_size), generator=gen)
            Xb, yb = torch.gather(X, 1, idx[..., None].expand(S, batch_size, M)), torch.gather(y, 1, idx)
        z = Xb @ W1.mT  # (S, B, N)
        h = phi(z)
        e = (h * w2[:, None, :]).sum(-1) - yb  # (S, B)
        B = Xb.shape[1]
        new2 = w2 - lr * (e[..., None] * h).sum(1) / B * D2
        new1 = W1 - lr * ((e[..., None] * w2[:, None, :] * dphi(z)).mT @ Xb / B) * D1[:, None, :]
        if renormalize:
            new1 = new1 * norm1 / new1.norm(dim=(1, 2), keepdim=True)
            new2 = new2 * norm2 / new2.norm(dim=1, keepdim=True)
        bad = ~(torch.isfinite(new1).all(dim=(1, 2)) & torch.isfinite(new2).all(dim=1)) | (new2.abs().amax(1) > 1e6)
        dead = dead | bad
        W1 = torch.where(dead[:, None, None], W1, new1)
        w2 = torch.where(dead[:, None], w2, new2)
        if (t + 1) % record_every == 0 or t + 1 == steps:
            record(t + 1)
    return StudentTeacherRun(torch.tensor(rec), torch.stack(losses), torch.stack(lams), W1, w2, D1, D2, dead)


def network_field(params: torch.Tensor, *, X: torch.Tensor, y: torch.Tensor, D1: torch.Tensor,
                  D2: torch.Tensor) -> torch.Tensor:
    """The full-batch learning field of one linear two-layer net, flat ``params = (W1, w2)`` (eq-curl-field).

    ``W1`` is ``(N, M)`` row-major, then ``w2`` ``(N,)``. With ``D1 = D2 = 1`` it is ``-grad L``.
    """
    M, N = X.shape[1], D2.shape[0]
    W1, w2 = params[: N * M].view(N, M), params[N * M:]
    e = X @ W1.T @ w2 - y
    g2 = (X @ W1.T).T @ e / len(y)
    g1 = torch.outer(w2, e @ X / len(y))
    return -torch.cat([(g1 * D1[None, :]).flatten(), g2 * D2])
