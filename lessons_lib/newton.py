"""Newton with approximate Hessians, damped by the gradient: gradient-normalised smoothness.

One step solves ``(H + lam I) d = -g`` with ``lam = ||g|| / gamma`` (eq-newton-step). ``H`` is the exact
Hessian, a fixed bound on it, or a mixture of the two; ``gamma`` is the radius, measured against
``||g||``, within which ``H`` predicts the change of the gradient. It is found by a doubling-and-halving
search (eq-newton-accept): a trial step is accepted when the loss falls by at least
``||g+||^2 / (8 lam)`` (the constant 8 is an argument), and then ``gamma`` doubles; otherwise ``gamma``
halves and the step is tried again. With the exact Hessian the damping vanishes with the gradient and the
method turns into Newton's method; with a fixed approximation ``gamma`` falls with the gradient and the
damping levels off (a linear rate).

The problem of the chapter is l2-regularised logistic regression, digits even against odd
(:func:`digits_parity`, :func:`logistic_regression`).

References:
    Semenov, Jaggi & Doikov (2025), Gradient-Normalized Smoothness for Optimization with Approximate
    Hessians, arXiv:2506.13710.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Union

import torch

from . import models
from .backend import Record, check_count, check_flag, check_float_tensor, check_positive, check_real
from .run import run

HessianChoice = Union[str, float, Callable[[torch.Tensor], torch.Tensor]]


def _finite_vector(x, name: str) -> torch.Tensor:
    x = check_float_tensor(x, name=name)
    if x.is_complex() or x.ndim != 1:
        raise ValueError(f"{name}: expected a real vector of shape (d,), got {x.dtype} of shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return x


# --- the problem -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LogisticRegression:
    """``f(x) = mean_i log(1 + exp(-b_i a_i.x)) + (mu / 2) ||x||^2`` with ``b_i = 2 y_i - 1`` (eq-newton-logistic).

    Attributes:
        X: the inputs ``a_i`` as rows, shape ``(n, d)`` (a bias is a column of ones, regularised like
            every other weight).
        y: the labels in ``{0, 1}``, shape ``(n,)``, same dtype as ``X``.
        mu: the l2 regularisation ``>= 0``.
    """

    X: torch.Tensor
    y: torch.Tensor
    mu: float

    def _x(self, x) -> torch.Tensor:
        x = _finite_vector(x, "x")
        if x.shape != (self.X.shape[1],):
            raise ValueError(f"x: expected shape ({self.X.shape[1]},), got {tuple(x.shape)}")
        return x.to(dtype=self.X.dtype, device=self.X.device)  # the device follows the data

    def _margins(self, x: torch.Tensor) -> torch.Tensor:
        return (2 * self.y - 1) * (self.X @ self._x(x))

    def value(self, x: torch.Tensor) -> torch.Tensor:
        """``f(x)``, a 0-d tensor on ``X``'s device; ``x`` has shape ``(d,)`` (moved to ``X``'s device)."""
        x = self._x(x)
        return torch.nn.functional.softplus(-self._margins(x)).mean() + 0.5 * self.mu * (x @ x)

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        """``grad f(x) = X^T (p - y) / n + mu x`` with ``p = sigmoid(X x)``, shape ``(d,)``."""
        x = self._x(x)
        p = torch.sigmoid(self.X @ x)
        return self.X.T @ (p - self.y) / len(self.y) + self.mu * x

    def hess(self, x: torch.Tensor) -> torch.Tensor:
        """``X^T diag(p (1 - p)) X / n + mu I``, shape ``(d, d)``."""
        x = self._x(x)
        p = torch.sigmoid(self.X @ x)
        H = (self.X.T * (p * (1 - p))) @ self.X / len(self.y)
        return H + self.mu * torch.eye(len(x), dtype=x.dtype, device=x.device)

    def fixed_hessian(self) -> torch.Tensor:
        """``X^T X / (4 n) + mu I`` (eq-newton-fixed): since ``p (1 - p) <= 1/4``, it bounds every Hessian."""
        d = self.X.shape[1]
        return self.X.T @ self.X / (4 * len(self.y)) + self.mu * torch.eye(d, dtype=self.X.dtype,
                                                                            device=self.X.device)


def logistic_regression(X, y, *, mu: float) -> LogisticRegression:
    """The l2-regularised logistic regression of (eq-newton-logistic).

    Args:
        X: inputs, float tensor of shape ``(n, d)``.
        y: labels in ``{0, 1}``, shape ``(n,)`` (any numeric dtype; converted to ``X``'s).
        mu: regularisation ``>= 0``.

    Returns:
        A :class:`LogisticRegression`.

    References:
        Semenov, Jaggi & Doikov (2025), arXiv:2506.13710 (their logistic-regression experiments).
    """
    X = check_float_tensor(X, name="X")
    if X.is_complex() or not bool(torch.isfinite(X).all()):
        raise ValueError("X: expected real, finite inputs")
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X: expected a non-empty matrix of shape (n, d), got {tuple(X.shape)}")
    if not isinstance(y, torch.Tensor):
        try:
            y = torch.as_tensor(y)
        except (TypeError, RuntimeError, ValueError):
            raise ValueError(f"y: expected labels 0 or 1, got {type(y).__name__}") from None
    if y.is_complex():
        raise ValueError("y: labels must be real 0 or 1")
    if y.shape != (X.shape[0],):
        raise ValueError(f"y: expected shape ({X.shape[0]},), one label per row of X, got {tuple(y.shape)}")
    y = y.to(dtype=X.dtype, device=X.device)
    if not bool(((y == 0) | (y == 1)).all()):
        raise ValueError("y: labels must be 0 or 1")
    mu = check_positive(mu, name="mu", allow_zero=True)
    return LogisticRegression(X, y, mu)


def digits_parity(*, subset: str = "all", dtype: torch.dtype = torch.float64,
                  device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The digits as ``(X, y)``: pixels / 16 plus a bias column of ones, ``y = 1`` for an even digit.

    ``subset="all"`` gives all 1,797 samples, the union of :func:`~lessons_lib.models.digits_split`'s
    training and test sets (seed 0), in a shuffled order (the mean loss does not depend on the order);
    ``subset="train"`` gives its 1,348 training samples only.

    Args:
        subset: ``"all"`` or ``"train"``.
        dtype: floating dtype of ``X`` and ``y``.
        device: where the tensors live (``None``: the default device).

    Returns:
        ``X`` of shape ``(n, 65)`` and ``y`` of shape ``(n,)``, both of ``dtype``, with ``n = 1797`` or ``1348``.
    """
    if subset not in ("all", "train"):
        raise ValueError(f"subset: expected 'all' or 'train', got {subset!r}")
    if device is not None and not isinstance(device, (str, torch.device)):
        raise ValueError(f"device: expected a device name or torch.device, got {type(device).__name__}")
    try:
        device = torch.device(device) if device is not None else None
        torch.empty(0, device=device)
    except RuntimeError as exc:
        raise ValueError(f"device: {exc}") from None
    split = models.digits_split(generator=0, dtype=dtype, device=device)
    X = torch.cat([split.X_train, split.X_test]) if subset == "all" else split.X_train
    X = torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype, device=X.device)], dim=1)
    y = (torch.cat([split.y_train, split.y_test]) if subset == "all" else split.y_train) % 2 == 0
    y = y.to(dtype)
    return X, y


# --- one step and one search -------------------------------------------------------------------------

def regularized_newton_step(g, H, lam: float) -> torch.Tensor:
    """The step ``d = -(H + lam I)^{-1} g`` of (eq-newton-step), by one Cholesky factorisation.

    For a positive semidefinite ``H`` its length is at most ``||g|| / lam`` (eq-newton-radius), and at most
    ``||g|| / sigma_min(H)`` whatever ``lam``.

    Args:
        g: gradient, shape ``(d,)``.
        H: symmetric Hessian or approximation, shape ``(d, d)``; ``H + lam I`` must be positive definite.
        lam: damping ``>= 0``.

    Returns:
        The step, shape ``(d,)`` (add it to ``x``).

    References:
        Semenov, Jaggi & Doikov (2025), Gradient-Normalized Smoothness for Optimization with
        Approximate Hessians, arXiv:2506.13710.
    """
    g = _finite_vector(g, "g")
    H = check_float_tensor(H, name="H")
    if not bool(torch.isfinite(H).all()):
        raise ValueError("H: contains NaN or infinite values")
    if H.shape != (len(g), len(g)):
        raise ValueError(f"H: expected shape ({len(g)}, {len(g)}), got {tuple(H.shape)}")
    lam = check_positive(lam, name="lam", allow_zero=True)
    A = H + lam * torch.eye(len(g), dtype=H.dtype, device=H.device)
    L, info = torch.linalg.cholesky_ex(A)
    if int(info) != 0:
        raise ValueError(f"H: H + lam I is not positive definite (lam = {lam:.3g})")
    return -torch.cholesky_solve(g.unsqueeze(1).to(A.dtype), L).squeeze(1)


@dataclass(frozen=True)
class Search(Record):
    """One adaptive search (eq-newton-accept).

    Attributes:
        x: the new point (the old one if no trial was accepted), shape ``(d,)``.
        gamma: ``gamma`` for the next step: twice the accepted trial's, or the last halved value.
        lam: the damping of the last trial.
        tries: trials made, each one Cholesky factorisation and one evaluation of ``f`` and ``grad f``.
        accepted: whether the last trial passed the test.
    """

    x: torch.Tensor
    gamma: float
    lam: float
    tries: int
    accepted: bool


def gamma_search(value: Callable, grad: Callable, x, H, *, gamma: float, max_tries: int = 40,
                 adaptive: bool = True, constant: float = 8.0) -> Search:
    """One step of the adaptive search for ``gamma`` (eq-newton-accept).

    Trial ``i`` uses ``gamma_i = gamma / 2^(i-1)``, ``lam_i = ||g|| / gamma_i`` and
    ``x+ = x - (H + lam_i I)^{-1} g``. It is accepted when
    ``f(x) - f(x+) >= ||grad f(x+)||^2 / (constant lam_i)``, with ``constant = 8`` as in the paper's code,
    and then the next step starts from ``2 gamma_i``. After ``max_tries`` rejections ``x`` stays where it
    was. With ``adaptive=False`` the first trial is taken whatever the test says and ``gamma`` is kept.

    Args:
        value: ``x -> f(x)``.
        grad: ``x -> grad f(x)``.
        x: the current point, shape ``(d,)``.
        H: the Hessian or its approximation at ``x``, shape ``(d, d)``.
        gamma: the first trial's radius, ``> 0``.
        max_tries: at most this many trials.
        adaptive: search (``True``) or take one step with the fixed ``gamma``.
        constant: the constant ``> 0`` of the test (8 in eq-newton-accept; a smaller one is stricter).

    Returns:
        A :class:`Search`.

    References:
        Semenov, Jaggi & Doikov (2025), arXiv:2506.13710, Algorithm 1.
    """
    x = _finite_vector(x, "x")
    if not callable(value):
        raise ValueError(f"value: expected a callable x -> f(x), got {type(value).__name__}")
    if not callable(grad):
        raise ValueError(f"grad: expected a callable x -> grad f(x), got {type(grad).__name__}")
    gamma = check_positive(gamma, name="gamma")
    max_tries = check_count(max_tries, name="max_tries")
    adaptive = check_flag(adaptive, name="adaptive")
    constant = check_positive(constant, name="constant")
    g = grad(x)
    g_norm = float(g.norm())
    f0 = float(value(x))
    if g_norm == 0.0:  # a stationary point: nothing to do
        return Search(x, 2 * gamma if adaptive else gamma, 0.0, 0, True)
    for tries in range(1, max_tries + 1):
        lam = g_norm / gamma
        x_new = x + regularized_newton_step(g, H, lam)
        g_new = grad(x_new)
        accepted = bool(f0 - float(value(x_new)) >= float(g_new @ g_new) / (constant * lam))
        if not adaptive:
            return Search(x_new, gamma, lam, tries, accepted)
        if accepted:
            return Search(x_new, 2 * gamma, lam, tries, True)
        gamma = gamma / 2
    return Search(x, gamma, lam, max_tries, False)


# --- the method ----------------------------------------------------------------------------------------

class _LastCall:
    """``fn`` with a one-entry cache: the loop asks for ``f`` and ``grad f`` at the same point several times
    (the stopping test, the search, the record), so each point is evaluated once."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]):
        self.fn, self.x, self.out = fn, None, None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.x is None or self.x.shape != x.shape or not torch.equal(self.x, x):
            self.x, self.out = x.clone(), self.fn(x)
        return self.out


@dataclass(frozen=True)
class NewtonRun(Record):
    """A run of :func:`gradient_regularized_newton` (or :func:`gradient_descent`).

    Attributes:
        x: iterates, shape ``(K + 1, d)``.
        f: ``f`` at each iterate, shape ``(K + 1,)``.
        grad_norm: ``||grad f||`` at each iterate, shape ``(K + 1,)``.
        gamma: the accepted radius ``gamma_k`` of each step (the last tried where none was), ``(K,)``.
        lam: the damping of each step, ``(K,)``.
        accepted: whether each step passed the test, bool ``(K,)``.
        tries: trials (Cholesky factorisations) per step, long ``(K,)``.
        converged: whether ``||grad f|| <= tol`` was reached (``False`` without ``tol``).
        diverged: whether the run left the divergence ball of :func:`lessons_lib.run.run`.
        diverged_at: the step at which it did, or ``-1``.
    """

    x: torch.Tensor
    f: torch.Tensor
    grad_norm: torch.Tensor
    gamma: torch.Tensor
    lam: torch.Tensor
    accepted: torch.Tensor
    tries: torch.Tensor
    converged: bool
    diverged: bool
    diverged_at: int

    @property
    def steps(self) -> int:
        """Number of steps ``K`` made."""
        return len(self.gamma)


def _hessian_fn(problem: LogisticRegression, hessian: HessianChoice) -> Callable[[torch.Tensor], torch.Tensor]:
    if isinstance(hessian, str):
        if hessian == "exact":
            return problem.hess
        if hessian == "fixed":
            fixed = problem.fixed_hessian()
            return lambda x: fixed
        raise ValueError(f"hessian: expected 'exact', 'fixed', a number s in [0, 1] or a callable, got {hessian!r}")
    if callable(hessian):
        return hessian
    if isinstance(hessian, bool) or not isinstance(hessian, (int, float)):
        raise ValueError(f"hessian: expected 'exact', 'fixed', a number s in [0, 1] or a callable, "
                         f"got {type(hessian).__name__}")
    s = check_real(hessian, name="hessian")
    if not 0.0 <= s <= 1.0:
        raise ValueError(f"hessian: the mixing weight s must lie in [0, 1], got {s}")
    if s == 0.0:  # the ends need one matrix, not both (the sum would give the same bits)
        return problem.hess
    fixed = problem.fixed_hessian()
    if s == 1.0:
        return lambda x: fixed
    return lambda x: (1 - s) * problem.hess(x) + s * fixed


def _check_start(problem, x0, methods: tuple[str, ...]) -> torch.Tensor:
    """Check that ``problem`` has the oracles ``methods`` and that ``x0`` is a finite start of its dtype and size;
    return ``x0`` on the problem's device (the device follows the data: a start made on the host joins X)."""
    if not all(callable(getattr(problem, a, None)) for a in methods):
        raise ValueError(f"problem: expected a LogisticRegression ({', '.join(methods[:-1])} and {methods[-1]})")
    x0 = _finite_vector(x0, "x0")
    if x0.shape != (problem.X.shape[1],) or x0.dtype != problem.X.dtype:
        raise ValueError(f"x0: expected {problem.X.dtype} of shape ({problem.X.shape[1]},), got {x0.dtype} "
                         f"of shape {tuple(x0.shape)}")
    return x0.to(problem.X.device)


def gradient_regularized_newton(problem: LogisticRegression, x0, *, hessian: HessianChoice = "exact",
                                gamma0: float = 1.0, adaptive: bool = True, steps: int = 100,
                                max_tries: int = 40, tol: float | None = None, constant: float = 8.0) -> NewtonRun:
    """Newton with gradient regularisation and an adaptive radius (eq-newton-step, eq-newton-accept).

    ``x_{k+1} = x_k - (H_k + lam_k I)^{-1} grad f(x_k)`` with ``lam_k = ||grad f(x_k)|| / gamma_k``, where
    ``gamma_k`` comes from :func:`gamma_search` started at ``gamma0`` (``hessian`` picks ``H_k``). The
    loop is :func:`lessons_lib.run.run`; the state carries ``x``, ``log2 gamma`` and the step's numbers.

    Args:
        problem: a :class:`LogisticRegression` (anything with ``value``, ``grad``, ``hess`` and
            ``fixed_hessian``).
        x0: start, shape ``(d,)``, of ``problem.X``'s dtype (moved to ``problem.X``'s device).
        hessian: ``"exact"``; ``"fixed"`` (eq-newton-fixed); a number ``s`` in ``[0, 1]`` for
            ``(1 - s) H_exact + s H_fixed`` (eq-newton-mix); or a callable ``x -> H``.
        gamma0: the first radius ``> 0`` (with ``adaptive=False`` the fixed radius of every step).
        adaptive: search ``gamma`` (``True``) or keep ``gamma0``.
        steps: at most this many steps.
        max_tries: trials per step of the search.
        tol: stop once ``||grad f(x_k)|| <= tol`` (``None``: run every step). Without it a run past
            machine precision keeps failing the test and halves ``gamma`` up to ``2^max_tries`` times.
        constant: the constant ``> 0`` of the test (eq-newton-accept), 8 by default.

    Returns:
        A :class:`NewtonRun`.

    References:
        Semenov, Jaggi & Doikov (2025), Gradient-Normalized Smoothness for Optimization with
        Approximate Hessians, arXiv:2506.13710.
    """
    x0 = _check_start(problem, x0, ("value", "grad", "hess", "fixed_hessian"))
    gamma0 = check_positive(gamma0, name="gamma0")
    adaptive = check_flag(adaptive, name="adaptive")
    steps = check_count(steps, name="steps", minimum=0)
    max_tries = check_count(max_tries, name="max_tries")
    if tol is not None:
        tol = check_positive(tol, name="tol")
    constant = check_positive(constant, name="constant")
    H_of = _hessian_fn(problem, hessian)
    kw = dict(dtype=x0.dtype, device=x0.device)
    value, grad = _LastCall(problem.value), _LastCall(problem.grad)

    def numbers(x):
        return torch.stack([value(x), grad(x).norm()])

    def step(state, t, lr):
        x, log2_gamma, _, done = state
        if bool(done) or (tol is not None and float(grad(x).norm()) <= tol):
            return x, log2_gamma, torch.zeros(3, **kw), torch.ones((), **kw)
        s = gamma_search(value, grad, x, H_of(x), gamma=2.0 ** float(log2_gamma),
                         max_tries=max_tries, adaptive=adaptive, constant=constant)
        gamma_used = s.gamma / 2 if (adaptive and s.accepted) else s.gamma
        info = torch.tensor([math.log2(gamma_used), s.lam, s.tries + 0.5 * s.accepted], **kw)
        return s.x.to(**kw), torch.tensor(math.log2(s.gamma), **kw), info, torch.zeros((), **kw)

    state0 = (x0, torch.tensor(math.log2(gamma0), **kw), torch.zeros(3, **kw), torch.zeros((), **kw))
    out = run(step, state0, steps=steps, record=lambda s, t: {"fg": numbers(s[0]), "x": s[0], "info": s[2],
                                                              "done": s[3]})
    h = out.history
    done = h["done"][1:] > 0
    k = int(done.nonzero()[0, 0]) if bool(done.any()) else len(done)
    info = h["info"][1:k + 1]
    last_g = float(h["fg"][k, 1])
    return NewtonRun(x=h["x"][:k + 1], f=h["fg"][:k + 1, 0], grad_norm=h["fg"][:k + 1, 1],
                     gamma=2.0 ** info[:, 0], lam=info[:, 1], accepted=(info[:, 2] % 1) > 0.25,
                     tries=info[:, 2].floor().long(), converged=tol is not None and last_g <= tol,
                     diverged=bool(out.diverged), diverged_at=int(out.diverged_at))


def gradient_descent(problem: LogisticRegression, x0, *, steps: int = 200, lr: float | None = None) -> NewtonRun:
    """Gradient descent ``x_{k+1} = x_k - lr grad f(x_k)``, by default with ``lr = 1/L`` (eq-newton-gd).

    ``L`` is the largest eigenvalue of :meth:`LogisticRegression.fixed_hessian`, a bound on the
    smoothness of ``f``. The record's per-step fields hold ``lr`` as ``lam = 1/lr`` and one "try" per step.

    Args:
        problem: a :class:`LogisticRegression`.
        x0: start, shape ``(d,)``, of ``problem.X``'s dtype (moved to ``problem.X``'s device).
        steps: number of steps.
        lr: step size ``> 0`` (``None``: ``1/L``).

    Returns:
        A :class:`NewtonRun` (``gamma`` is ``inf``: no radius).
    """
    x0 = _check_start(problem, x0, ("value", "grad", "fixed_hessian"))
    steps = check_count(steps, name="steps", minimum=0)
    lr = 1.0 / float(torch.linalg.eigvalsh(problem.fixed_hessian())[-1]) if lr is None else check_positive(lr,
                                                                                                           name="lr")
    out = run(lambda x, t, h: x - h * problem.grad(x), x0, steps=steps, lr=lr,
              record=lambda x, t: {"x": x, "fg": torch.stack([problem.value(x), problem.grad(x).norm()])})
    h = out.history
    k = len(h["x"]) - 1
    kw = dict(dtype=x0.dtype)
    return NewtonRun(x=h["x"], f=h["fg"][:, 0], grad_norm=h["fg"][:, 1], gamma=torch.full((k,), math.inf, **kw),
                     lam=torch.full((k,), 1 / lr, **kw), accepted=torch.ones(k, dtype=torch.bool),
                     tries=torch.ones(k, dtype=torch.long), converged=False, diverged=bool(out.diverged),
                     diverged_at=int(out.diverged_at))


def minimum(problem: LogisticRegression, *, tol: float = 1e-12) -> tuple[torch.Tensor, float]:
    """``(x*, f*)``: the minimiser and minimum, by the exact-Hessian method run to ``||grad f|| <= tol``.

    Args:
        problem: a :class:`LogisticRegression` with ``mu > 0`` (otherwise there may be no minimiser).
        tol: gradient-norm tolerance ``> 0``.

    Raises:
        ValueError: naming ``problem`` if ``mu`` is not ``> 0`` or the method does not reach ``tol`` within
            200 steps.
    """
    if not hasattr(problem, "X") or not hasattr(problem, "mu"):
        raise ValueError("problem: expected a LogisticRegression")
    if not float(problem.mu) > 0:
        raise ValueError(f"problem: mu must be > 0 for a unique minimiser, got mu = {problem.mu}")
    tol = check_positive(tol, name="tol")
    x0 = torch.zeros(problem.X.shape[1], dtype=problem.X.dtype, device=problem.X.device)
    out = gradient_regularized_newton(problem, x0, hessian="exact", steps=200, tol=tol)
    if not out.converged:
        raise ValueError(f"problem: the exact method did not reach ||grad f|| <= {tol:g} in 200 steps "
                         "(is mu too small?)")
    return out.x[-1], float(out.f[-1])


def iterations_to(run_: NewtonRun, f_star: float, *, tol: float = 1e-8) -> int:
    """The first iteration ``k`` with ``f(x_k) - f* < tol``, or ``-1`` if the run never gets there.

    Args:
        run_: a :class:`NewtonRun`.
        f_star: the minimum, from :func:`minimum`.
        tol: the gap ``> 0``.
    """
    if not isinstance(run_, NewtonRun):
        raise ValueError(f"run_: expected a NewtonRun, got {type(run_).__name__}")
    f_star = check_real(f_star, name="f_star")
    tol = check_positive(tol, name="tol")
    below = (run_.f - f_star < tol).nonzero()
    return int(below[0, 0]) if len(below) else -1
