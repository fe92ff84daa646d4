"""M-FAC: inverse-Hessian-vector products from a window of gradients, for pruning and for preconditioning.

The curvature is modelled by the damped empirical Fisher of ``m`` gradients ``g_1 .. g_m`` (rows of
``G``, shape ``(m, d)``),

    ``F = lam I + (1/m) sum_i g_i g_i^T``                                   (eq-mfac-fisher)

which is never formed. Two ways to apply its inverse:

* **static** (:func:`static_inverse`): Sherman-Morrison applied ``m`` times. With
  ``v_i = F_{i-1}^{-1} g_i`` and ``F_i = F_{i-1} + g_i g_i^T / m``,
  ``v_i = g_i / lam - sum_{j<i} (v_j . g_i) / (m + g_j . v_j) v_j`` (eq-mfac-recursion), an
  ``O(d m^2)`` precomputation, after which ``F^{-1} x = x / lam - sum_j (v_j . x) / (m + g_j . v_j) v_j``
  costs ``O(d m)`` (eq-mfac-ihvp) and each diagonal entry
  ``[F^{-1}]_qq = 1 / lam - sum_j v_jq^2 / (m + g_j . v_j)`` costs ``O(m)`` (eq-mfac-diag);
* **sliding window** (:func:`window_init`, :func:`window_add`, :func:`window_ihvp`): the last
  ``k = min(count, m)`` gradients with weight ``1/k``, applied by Woodbury,
  ``F^{-1} x = (x - G^T (k lam I + G G^T)^{-1} G x) / lam`` (eq-mfac-woodbury). The ``k x k`` Gram
  matrix is updated in ``O(d m)`` when a gradient replaces the oldest and factored by Cholesky in
  ``O(m^3)``; an IHVP then costs ``O(d m + m^2)``. The public code factors the same matrix by an LU
  decomposition without pivoting, which torch does not implement on the CPU; for a symmetric
  positive definite matrix ``A = C C^T`` the unpivoted LU is ``L = C diag(C)^{-1}``,
  ``U = diag(C) C^T``, so the Cholesky factor gives the same solves.

Uses: Optimal Brain Surgeon pruning (:func:`obs_prune`, saliency ``w_q^2 / (2 [F^{-1}]_qq)``,
eq-mfac-saliency, with a joint correction of the kept weights, eq-mfac-obs, or the sum of the single-weight
updates, eq-mfac-summed, as the public code applies them) against :func:`magnitude_prune`, and M-FAC as an
optimiser (:func:`train_digits`, ``theta <- theta - lr F^{-1} g``, eq-mfac-step) on the digits MLP 64-32-10 (tanh).

References:
    Frantar, Kurtic & Alistarh (2021), M-FAC: Efficient Matrix-Free Approximations of Second-Order
    Information, NeurIPS, arXiv:2107.03356.
    Hassibi & Stork (1993), Second order derivatives for network pruning: Optimal Brain Surgeon, NeurIPS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple, Sequence

import torch
from torch.func import grad, vmap

from . import models
from .backend import Record, as_generator, check_choice, check_count, check_float_tensor, check_positive, check_real
from .descent import adam_direction
from .run import run

Method = Literal["mfac", "sgd", "adam"]
Correction = Literal["joint", "summed", "none"]
SIZES = (64, 32, 10)  # the digits MLP of the chapter, d = 2410 parameters


def _check_damp(damp) -> float:
    return check_positive(damp, name="damp")


def _check_grads(G) -> torch.Tensor:
    G = check_float_tensor(G, name="G")
    if G.ndim != 2 or G.shape[0] < 1 or G.shape[1] < 1:
        raise ValueError(f"G: expected a matrix of m >= 1 gradients as rows, shape (m, d), got {tuple(G.shape)}")
    if not bool(torch.isfinite(G).all()):
        raise ValueError("G: contains NaN or infinite values")
    return G


def _check_vector(x, d: int, like: torch.Tensor, name: str = "x") -> torch.Tensor:
    x = check_float_tensor(x, name=name)
    if x.ndim < 1 or x.shape[-1] != d:
        raise ValueError(f"{name}: expected shape (..., {d}), got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return x.to(like)


# --- the static algorithm ---------------------------------------------------------------------------

@dataclass(frozen=True)
class StaticInverse:
    """``F^{-1}`` of eq-mfac-fisher, held as the vectors ``v_j`` of eq-mfac-recursion (an operator, not a result:
    its tensors stay on the device of ``G``).

    Attributes:
        V: the vectors ``v_j`` as rows, shape ``(m, d)``.
        denom: ``m + g_j . v_j``, shape ``(m,)``.
        damp: ``lam > 0``.
    """

    V: torch.Tensor
    denom: torch.Tensor
    damp: float

    @property
    def d(self) -> int:
        return self.V.shape[1]

    def ihvp(self, x: torch.Tensor) -> torch.Tensor:
        """``F^{-1} x`` for ``x`` of shape ``(..., d)`` in ``O(d m)`` per vector (eq-mfac-ihvp)."""
        x = _check_vector(x, self.d, self.V)
        return x / self.damp - ((x @ self.V.T) / self.denom) @ self.V

    def diag(self) -> torch.Tensor:
        """The diagonal of ``F^{-1}``, shape ``(d,)``, ``O(m)`` per entry (eq-mfac-diag)."""
        return 1.0 / self.damp - (self.V.pow(2) / self.denom[:, None]).sum(0)

    def _check_index(self, index) -> torch.Tensor:
        if not isinstance(index, torch.Tensor) or index.dtype != torch.long or index.ndim != 1:
            raise ValueError(f"index: expected a 1-d long tensor of indices, got {type(index).__name__}")
        if len(index) and not (0 <= int(index.min()) and int(index.max()) < self.d):
            raise ValueError(f"index: indices must lie in [0, {self.d})")
        return index.to(self.V.device)

    def block(self, index: torch.Tensor) -> torch.Tensor:
        """The submatrix ``[F^{-1}]_{SS}`` for the indices ``S = index`` (long, shape ``(s,)``), shape ``(s, s)``."""
        index = self._check_index(index)
        Vs = self.V[:, index]
        eye = torch.eye(len(index), dtype=self.V.dtype, device=self.V.device)
        return eye / self.damp - (Vs / self.denom[:, None]).T @ Vs

    def solve_block(self, index: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``z = ([F^{-1}]_{SS})^{-1} b`` for ``S = index`` without the ``s x s`` block, in ``O(s m^2 + m^3)``.

        The block is ``I / lam - U^T D^{-1} U`` with ``U = V[:, S]`` and ``D = diag(m + g_j . v_j)``, a rank-``m``
        change of ``I / lam``; by Woodbury its inverse is ``lam I + lam^2 U^T (D - lam U U^T)^{-1} U``, and
        ``D - lam U U^T`` is symmetric positive definite (the block is), so it is solved by Cholesky (and the
        block itself when rounding has broken that).

        Args:
            index: the indices ``S`` (long, shape ``(s,)``).
            b: right-hand side, shape ``(s,)``.

        Returns:
            ``z``, shape ``(s,)``; the same as ``torch.linalg.solve(self.block(index), b)`` to rounding.
        """
        index = self._check_index(index)
        b = check_float_tensor(b, name="b")
        if b.shape != index.shape:
            raise ValueError(f"b: expected shape {tuple(index.shape)}, got {tuple(b.shape)}")
        if not bool(torch.isfinite(b).all()):
            raise ValueError("b: contains NaN or infinite values")
        b = b.to(self.V)
        U = self.V[:, index]
        K = torch.diag(self.denom) - self.damp * (U @ U.T)
        C, info = torch.linalg.cholesky_ex(K)
        if int(info):  # K lost definiteness to rounding (a block near singular): solve the block itself
            return torch.linalg.solve(self.block(index), b)
        y = torch.cholesky_solve((U @ b)[:, None], C)[:, 0]
        return self.damp * b + self.damp ** 2 * (U.T @ y)


def static_inverse(G: torch.Tensor, *, damp: float) -> StaticInverse:
    """The static M-FAC inverse of ``F = lam I + (1/m) G^T G`` by the recursion eq-mfac-recursion.

    Each ``v_i = F_{i-1}^{-1} g_i`` is the IHVP of ``g_i`` under the first ``i - 1`` gradients; one
    Sherman-Morrison step per gradient, ``O(d m^2)`` in all, and no ``d x d`` matrix.

    Args:
        G: the gradients ``g_i`` as rows, shape ``(m, d)``, finite (float64 for accuracy).
        damp: the damping ``lam > 0``.

    Returns:
        A :class:`StaticInverse` with ``ihvp(x)`` (eq-mfac-ihvp), ``diag()`` (eq-mfac-diag), ``block(S)`` and
        ``solve_block(S, b)``.

    References:
        Frantar, Kurtic & Alistarh (2021), M-FAC, arXiv:2107.03356 (the static algorithm).
    """
    G = _check_grads(G)
    lam = _check_damp(damp)
    m = G.shape[0]
    V = torch.empty_like(G)
    denom = torch.empty(m, dtype=G.dtype, device=G.device)
    for i in range(m):
        g = G[i]
        v = g / lam
        if i:
            v = v - ((V[:i] @ g) / denom[:i]) @ V[:i]
        V[i] = v
        denom[i] = m + g @ v
    return StaticInverse(V, denom, lam)


def dense_fisher(G: torch.Tensor, *, damp: float) -> torch.Tensor:
    """The ``d x d`` matrix ``lam I + (1/m) G^T G`` of eq-mfac-fisher, formed: the oracle for small ``d``."""
    G = _check_grads(G)
    lam = _check_damp(damp)
    return lam * torch.eye(G.shape[1], dtype=G.dtype, device=G.device) + G.T @ G / G.shape[0]


# --- the sliding window ---------------------------------------------------------------------------

class Window(NamedTuple):
    """A sliding window of the last ``min(count, m)`` gradients (eq-mfac-woodbury).

    Attributes:
        G: ring buffer of gradients, shape ``(m, d)``; slot ``count % m`` is replaced next.
        gram: ``G G^T``, shape ``(m, m)``, updated one row and column per gradient.
        chol: Cholesky factor of ``k lam I + G_k G_k^T`` (``k = min(count, m)``) in its leading ``k x k`` block.
        count: gradients added so far (0-d long tensor).
        damp: ``lam`` (0-d tensor).
    """

    G: torch.Tensor
    gram: torch.Tensor
    chol: torch.Tensor
    count: torch.Tensor
    damp: torch.Tensor


def window_init(d: int, *, m: int, damp: float, dtype: torch.dtype = torch.float64,
                device: torch.device | str | None = None) -> Window:
    """An empty window for gradients of length ``d``, holding at most ``m`` of them.

    While it is empty, ``F^{-1} = I / lam``. Tensors are made with ``dtype`` on ``device``.
    """
    d, m = check_count(d, name="d"), check_count(m, name="m")
    lam = _check_damp(damp)
    f = dict(dtype=dtype, device=device)
    return Window(torch.zeros(m, d, **f), torch.zeros(m, m, **f), torch.zeros(m, m, **f),
                  torch.zeros((), dtype=torch.long, device=device), torch.tensor(lam, **f))


def window_add(state: Window, g: torch.Tensor) -> Window:
    """Put gradient ``g`` (shape ``(d,)``) into the window, replacing the oldest once ``m`` are held.

    Updates one row and column of the Gram matrix (``O(d m)``) and refactors ``k lam I + G G^T`` by
    Cholesky (``O(m^3)``); a replaced gradient gives the same window as one rebuilt from scratch.
    """
    if not isinstance(state, Window):
        raise ValueError(f"state: expected a Window from window_init, got {type(state).__name__}")
    G, gram, _, count, damp = state
    g = _check_vector(g, G.shape[1], G, name="g")
    if g.ndim != 1:
        raise ValueError(f"g: expected one gradient of shape ({G.shape[1]},), got {tuple(g.shape)}")
    m = G.shape[0]
    slot = int(count) % m
    G = G.clone()
    G[slot] = g
    row = G @ g
    gram = gram.clone()
    gram[slot, :] = row
    gram[:, slot] = row
    k = min(int(count) + 1, m)
    chol = torch.zeros_like(gram)
    chol[:k, :k] = torch.linalg.cholesky(gram[:k, :k] + k * damp * torch.eye(k, dtype=G.dtype, device=G.device))
    return Window(G, gram, chol, count + 1, damp)


def window_ihvp(state: Window, x: torch.Tensor) -> torch.Tensor:
    """``F^{-1} x`` for the window's ``F = lam I + (1/k) sum g g^T`` by Woodbury (eq-mfac-woodbury), ``O(d m + m^2)``.

    Args:
        state: a :class:`Window`.
        x: shape ``(..., d)``.

    Returns:
        ``F^{-1} x``, the shape of ``x``.
    """
    if not isinstance(state, Window):
        raise ValueError(f"state: expected a Window from window_init, got {type(state).__name__}")
    G, _, chol, count, damp = state
    x = _check_vector(x, G.shape[1], G)
    k = min(int(count), G.shape[0])
    if k == 0:
        return x / damp
    Gk = G[:k]
    y = torch.cholesky_solve((x @ Gk.T).unsqueeze(-1), chol[:k, :k]).squeeze(-1)
    return (x - y @ Gk) / damp


# --- pruning -----------------------------------------------------------------------------------------

def _check_sparsity(w, sparsity) -> tuple[torch.Tensor, int]:
    w = check_float_tensor(w, name="w")
    if w.ndim != 1:
        raise ValueError(f"w: expected a flat weight vector, got shape {tuple(w.shape)}")
    if not bool(torch.isfinite(w).all()):
        raise ValueError("w: contains NaN or infinite values")
    s = check_real(sparsity, name="sparsity")
    if not 0.0 <= s < 1.0:
        raise ValueError(f"sparsity: expected a share of weights in [0, 1), got {s}")
    return w, round(s * w.numel())


def magnitude_prune(w: torch.Tensor, *, sparsity: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero the ``round(sparsity * d)`` weights of smallest ``|w_q|``; the rest unchanged.

    Returns:
        ``(w, mask)``: the pruned weights and a bool mask, True for kept weights.
    """
    w, n = _check_sparsity(w, sparsity)
    mask = torch.ones_like(w, dtype=torch.bool)
    mask[torch.argsort(w.abs(), stable=True)[:n]] = False
    return torch.where(mask, w, torch.zeros_like(w)), mask


def obs_prune(w: torch.Tensor, inverse: StaticInverse, *, sparsity: float,
              correction: Correction = "joint") -> tuple[torch.Tensor, torch.Tensor]:
    """One-shot Optimal Brain Surgeon: drop the set ``S`` of lowest saliency and correct the kept weights.

    The saliency of weight ``q`` is ``rho_q = w_q^2 / (2 [F^{-1}]_qq)`` (eq-mfac-saliency), the rise of
    the quadratic model ``(1/2) dw^T F dw`` when ``w_q`` alone is set to 0 and the others adapt. The
    ``round(sparsity * d)`` weights of smallest saliency form ``S``, with saliencies computed once, and all of
    them go in one step. The correction of the kept weights is

    * ``"joint"``: ``dw = -F^{-1} E_S (E_S^T F^{-1} E_S)^{-1} w_S`` (eq-mfac-obs), the exact minimiser of the
      quadratic model with ``w_S + dw_S = 0``;
    * ``"summed"``: ``dw = -F^{-1} sum_{q in S} e_q w_q / [F^{-1}]_qq`` (eq-mfac-summed), the sum of the
      single-weight updates of eq-mfac-saliency, as the public M-FAC code (``MFACPruner.prune``) applies them;
      exact only when ``|S| = 1`` or ``F^{-1}`` is diagonal on ``S``;
    * ``"none"``: no correction, only the OBS mask.

    The pruned weights are set to exactly 0 in every case. The public code differs in more than the
    correction: it removes the weights in 16 steps with fresh gradients and a fresh inverse between them, and
    its Fisher is block-diagonal (blocks of 128 weights, biases not pruned); here the Fisher is full, and one
    step removes all of ``S``.

    Args:
        w: flat weights, shape ``(d,)``.
        inverse: a :class:`StaticInverse` of the same ``d`` (or anything with ``ihvp``, ``diag`` and
            ``solve_block``).
        sparsity: share of weights to remove, in ``[0, 1)``.
        correction: ``"joint"``, ``"summed"`` or ``"none"``.

    Returns:
        ``(w, mask)``: corrected weights with the pruned ones exactly 0, and the bool mask (True: kept).

    References:
        Hassibi & Stork (1993), Optimal Brain Surgeon; Frantar, Kurtic & Alistarh (2021), arXiv:2107.03356.
    """
    w, n = _check_sparsity(w, sparsity)
    correction = check_choice(correction, ("joint", "summed", "none"), name="correction")
    if not all(callable(getattr(inverse, a, None)) for a in ("ihvp", "diag", "solve_block")):
        raise ValueError(f"inverse: expected a StaticInverse (ihvp, diag, solve_block), got {type(inverse).__name__}")
    diag = inverse.diag()
    if diag.shape != w.shape:
        raise ValueError(f"inverse: built for d = {diag.numel()}, but w has {w.numel()} entries")
    w64 = w.to(diag)
    saliency = w64.pow(2) / (2 * diag)
    S = torch.argsort(saliency, stable=True)[:n]
    mask = torch.ones_like(w, dtype=torch.bool)
    if n == 0:
        return w.clone(), mask
    mask[S] = False
    e = torch.zeros_like(w64)
    if correction == "joint":
        e[S] = inverse.solve_block(S, w64[S])  # (E_S^T F^{-1} E_S)^{-1} w_S by Woodbury, O(|S| m^2 + m^3)
    elif correction == "summed":
        e[S] = w64[S] / diag[S]  # each weight's own multiplier, as if it were removed alone
    new = w64 - inverse.ihvp(e) if correction != "none" else w64
    return torch.where(mask, new, torch.zeros_like(new)).to(w.dtype), mask


# --- the digits MLP ---------------------------------------------------------------------------------

def digits_problem(dtype: torch.dtype = torch.float64, device=None) -> tuple[models.MLPClassifier, models.DigitsSplit]:
    """The chapter's model and data: ``mlp_classifier((64, 32, 10), activation="tanh")`` and the digits split.

    The split is the shared one of :func:`~lessons_lib.models.digits_split` (seed 0), in ``dtype`` on ``device``.
    """
    return models.mlp_classifier(SIZES, activation="tanh"), models.digits_split(dtype=dtype, device=device)


def per_sample_gradients(params: torch.Tensor, *, m: int, generator: int | torch.Generator = 0) -> torch.Tensor:
    """Gradients of the cross-entropy of ``m`` training digits (drawn without replacement), shape ``(m, D)``.

    Computed in one pass with ``torch.func.vmap(grad(...))``; the rows are the ``g_i`` of eq-mfac-fisher.
    """
    params = check_float_tensor(params, name="params")
    if not bool(torch.isfinite(params).all()):
        raise ValueError("params: contains NaN or infinite values")
    model, data = digits_problem(params.dtype, params.device)
    if params.shape != (model.n_params,):
        raise ValueError(f"params: expected shape ({model.n_params},), got {tuple(params.shape)}")
    m = check_count(m, name="m")
    if m > len(data.y_train):
        raise ValueError(f"m: at most {len(data.y_train)} training digits, got {m}")
    idx = torch.randperm(len(data.y_train), generator=as_generator(generator, "cpu"))[:m].to(params.device)

    def one(p, x, y):
        return model.loss(p, x[None], y[None])

    return vmap(grad(one), in_dims=(None, 0, 0))(params, data.X_train[idx], data.y_train[idx])


@dataclass(frozen=True)
class DigitsRun(Record):
    """A training run of the digits MLP.

    Attributes:
        steps: recorded steps, shape ``(K,)``.
        loss: full training-set loss at those steps, shape ``(K,)``.
        params: final parameters, shape ``(D,)``.
        test_accuracy: final test accuracy.
        diverged: whether the run left the divergence ball (see :mod:`lessons_lib.run`).
        diverged_at: the step at which it did, ``-1`` if it did not.
    """

    steps: torch.Tensor
    loss: torch.Tensor
    params: torch.Tensor
    test_accuracy: float
    diverged: bool
    diverged_at: int


def train_digits(*, method: Method, lr: float, steps: int, damp: float = 1e-3, m: int = 32,
                 momentum: float = 0.9, batch_size: int | None = 64, generator: int | torch.Generator = 0,
                 record_every: int = 10, device=None) -> DigitsRun:
    """Train the digits MLP 64-32-10 (tanh, float64) with M-FAC, SGD with momentum or Adam.

    M-FAC adds each mini-batch gradient ``g_t`` to a window of the last ``m`` and steps
    ``theta <- theta - lr F_t^{-1} g_t`` (eq-mfac-step), ``F_t`` of eq-mfac-woodbury with damping ``lam``;
    as ``lam -> infinity``, ``F_t^{-1} g_t -> g_t / lam``: SGD with rate ``lr / lam``. SGD uses heavy-ball
    momentum ``b <- momentum b + g``, ``theta <- theta - lr b``; Adam uses
    :func:`~lessons_lib.descent.adam_direction`. The loop is :func:`lessons_lib.run.run`.

    Args:
        method: ``"mfac"``, ``"sgd"`` or ``"adam"``.
        lr: learning rate ``> 0``.
        steps: number of updates.
        damp: ``lam > 0`` (M-FAC only).
        m: window size (M-FAC only).
        momentum: in ``[0, 1)`` (SGD only).
        batch_size: mini-batch size (drawn with replacement of batches, without within one), or None for the full batch.
        generator: seed of the initialisation (and, through it, of the mini-batches).
        record_every: interval of the full-data loss history.
        device: where to train (default: :func:`~lessons_lib.backend.default_device`).

    Returns:
        A :class:`DigitsRun`.

    References:
        Frantar, Kurtic & Alistarh (2021), M-FAC, arXiv:2107.03356.
    """
    method = check_choice(method, ("mfac", "sgd", "adam"), name="method")
    lr = check_positive(lr, name="lr")
    steps = check_count(steps, name="steps", minimum=0)
    lam = _check_damp(damp)
    m = check_count(m, name="m")
    momentum = check_real(momentum, name="momentum")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum: expected a number in [0, 1), got {momentum}")
    if batch_size is not None:
        batch_size = check_count(batch_size, name="batch_size")
    record_every = check_count(record_every, name="record_every")
    model, data = digits_problem(torch.float64, device)
    dev = data.X_train.device
    gen = as_generator(generator, dev)
    theta0 = model.init(gen, dtype=torch.float64, device=dev)
    n = len(data.y_train)
    D = model.n_params

    def loss_grad(theta, X, y):  # plain reverse mode: the same gradient as torch.func.grad, with less overhead per call
        with torch.enable_grad():
            leaf = theta.detach().requires_grad_(True)
            return torch.autograd.grad(model.loss(leaf, X, y), leaf)[0]

    def batch_grad(theta):
        if batch_size is None or batch_size >= n:
            return loss_grad(theta, data.X_train, data.y_train)
        idx = torch.randperm(n, generator=gen, device=dev)[:batch_size]
        return loss_grad(theta, data.X_train[idx], data.y_train[idx])

    if method == "mfac":
        w0 = window_init(D, m=m, damp=lam, device=dev)
        state0 = (theta0, *w0)

        def step(state, t, eta):
            theta, *win = state
            win = window_add(Window(*win), batch_grad(theta))
            return (theta - eta * window_ihvp(win, win.G[(int(win.count) - 1) % m]), *win)
    elif method == "sgd":
        state0 = (theta0, torch.zeros_like(theta0))

        def step(state, t, eta):
            theta, buf = state
            buf = momentum * buf + batch_grad(theta)
            return theta - eta * buf, buf
    else:
        state0 = (theta0, torch.zeros_like(theta0), torch.zeros_like(theta0))

        def step(state, t, eta):
            theta, mom, var = state
            p, mom, var = adam_direction(batch_grad(theta), mom, var, t + 1)
            return theta - eta * p, mom, var

    def record(state, t):
        return {"loss": model.loss(state[0], data.X_train, data.y_train).detach()}

    out = run(step, state0, steps=steps, lr=lr, record=record, record_every=record_every, blowup=1e6)
    theta = out.state[0]
    acc = model.accuracy(theta, data.X_test, data.y_test)
    return DigitsRun(out.steps, out.history["loss"], theta, acc, bool(out.diverged), int(out.diverged_at))


# --- the pruning study ---------------------------------------------------------------------------

@dataclass(frozen=True)
class PruningCurve(Record):
    """Test accuracy after one-shot pruning at several sparsities.

    Attributes:
        sparsity: shape ``(S,)``.
        obs: accuracy after :func:`obs_prune` with the joint correction (eq-mfac-obs), shape ``(S,)``.
        obs_summed: the same with the summed single-weight corrections (eq-mfac-summed), shape ``(S,)``.
        obs_mask: the same mask with no correction, shape ``(S,)``.
        magnitude: accuracy after :func:`magnitude_prune`, shape ``(S,)``.
        dense: accuracy before pruning.
    """

    sparsity: torch.Tensor
    obs: torch.Tensor
    obs_summed: torch.Tensor
    obs_mask: torch.Tensor
    magnitude: torch.Tensor
    dense: float


def pruning_curve(params: torch.Tensor, *, sparsities: Sequence[float], m: int = 512, damp: float = 1e-4,
                  generator: int | torch.Generator = 0) -> PruningCurve:
    """Prune the trained digits MLP ``params`` by OBS (static M-FAC of ``m`` per-sample gradients) and by magnitude.

    OBS is run with each ``correction`` of :func:`obs_prune` (the same mask for all three).

    Args:
        params: trained flat parameters of the digits MLP, shape ``(2410,)``.
        sparsities: shares in ``[0, 1)`` to prune to.
        m: number of per-sample gradients in the Fisher (eq-mfac-fisher).
        damp: ``lam > 0``.
        generator: seed of which training digits give the gradients.

    Returns:
        A :class:`PruningCurve`.
    """
    params = check_float_tensor(params, name="params")
    if isinstance(sparsities, (str, bytes)) or not hasattr(sparsities, "__len__") or len(sparsities) == 0:
        raise ValueError(f"sparsities: expected a non-empty sequence of shares, got {sparsities!r}")
    shares = [check_real(s, name="sparsities") for s in sparsities]
    if not all(0.0 <= s < 1.0 for s in shares):
        raise ValueError(f"sparsities: expected shares in [0, 1), got {shares}")
    if not bool(torch.isfinite(params).all()):
        raise ValueError("params: contains NaN or infinite values")
    lam = _check_damp(damp)
    G = per_sample_gradients(params.to(torch.float64), m=m, generator=generator)
    inverse = static_inverse(G, damp=lam)
    model, data = digits_problem(torch.float64, params.device)
    w = params.to(torch.float64)
    acc = {k: [] for k in ("joint", "summed", "none", "magnitude")}
    for s in shares:
        for k in ("joint", "summed", "none"):
            acc[k].append(model.accuracy(obs_prune(w, inverse, sparsity=s, correction=k)[0], data.X_test, data.y_test))
        acc["magnitude"].append(model.accuracy(magnitude_prune(w, sparsity=s)[0], data.X_test, data.y_test))
    f = dict(dtype=torch.float64)
    return PruningCurve(torch.tensor(shares, **f), *(torch.tensor(acc[k], **f) for k in ("joint", "summed", "none")),
                        torch.tensor(acc["magnitude"], **f),
                        model.accuracy(params.to(torch.float64), data.X_test, data.y_test))


def flops(d: int, m: int) -> dict[str, float]:
    """Operation counts (multiply-adds, leading order) of the static algorithm against a dense inverse.

    Returns:
        ``{"setup": d m^2, "ihvp": 2 d m, "diag": d m, "dense_setup": d^2 m + d^3 / 3, "dense_ihvp": d^2}``.
    """
    d, m = check_count(d, name="d"), check_count(m, name="m")
    return {"setup": float(d * m * m), "ihvp": 2.0 * d * m, "diag": float(d * m),
            "dense_setup": float(d * d * m + d ** 3 / 3), "dense_ihvp": float(d * d)}

