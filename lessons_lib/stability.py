"""Which minima can gradient methods stay in? Linear stability under GD and SGD.

Near a minimum the square loss is a quadratic with Hessian ``H``; at an interpolating minimum
``H = G``, the Gauss-Newton matrix ``G = (1/n) sum_i grad f_i grad f_i^T`` built from per-sample
gradients of the model output (eq-stab-gauss-newton). GD stays iff ``lambda_max(G) <= 2/lr``
(eq-stab-gd). SGD with batch size 1 applies ``I - lr grad f_i grad f_i^T`` for a random sample; with
orthogonal per-sample gradients each factor must be a contraction, which gives
``Tr G <= 2/lr`` (eq-stab-sgd), a condition ``n`` times stronger than GD's in the worst case.

For the diagonal linear network ``f(x) = <u*u - v*v, x>`` with ``beta = u^2 - v^2`` the trace is a
weighted l1 norm in disguise, ``Tr G >= 4 sum_j sigma_j^2 |beta_j|`` (eq-stab-trace-l1), so large-step
SGD is pushed towards sparse interpolators.

References:
    Wu & Su (2023), The Implicit Regularization of Dynamical Stability in Stochastic Gradient
    Descent, ICML, arXiv:2305.17490.
    Wu, Ma & E (2018), How SGD selects the global minima in over-parameterized learning: a
    dynamical stability perspective, NeurIPS.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import curvature, models, quadratic
from .backend import Record, as_generator, as_tensor, check_count, check_positive
from .descent import check_lr
from .run import run

#: GD on a quadratic, batched over runs, is :func:`lessons_lib.quadratic.gd_quadratic`.
gd_quadratic = quadratic.gd_quadratic
#: The Gauss-Newton matrix is curvature: :func:`lessons_lib.curvature.gauss_newton`.
gauss_newton = curvature.gauss_newton
GaussNewton = curvature.GaussNewton
#: The diagonal linear network lives in :mod:`lessons_lib.models`; the chapter's names still work.
diagonal_net_jacobian = models.diagonal_net_jacobian
weighted_l1 = models.weighted_l1
DiagonalNetRun = models.DiagonalNetRun
train_diagonal_net = models.train_diagonal_net


def contraction_factors(H, *, lr: float) -> torch.Tensor:
    """Per-eigendirection factors ``1 - lr lambda_i`` of GD on a quadratic (eq-lr-eigen-solution)."""
    lam = torch.linalg.eigvalsh(quadratic.check_hessian(H))
    return 1 - check_lr(lr) * lam


@dataclass(frozen=True)
class SparseRegression:
    """Noiseless sparse regression ``y = X beta_star`` with a held-out test set (data, on its device)."""

    X: torch.Tensor
    y: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    beta_star: torch.Tensor

    def test_mse(self, beta: torch.Tensor) -> torch.Tensor:
        """Mean squared test error of the linear predictor ``beta`` (batched over leading dims)."""
        beta = as_tensor(beta, name="beta", device=self.X_test.device)
        if beta.ndim < 1 or beta.shape[-1] != self.X_test.shape[1]:
            raise ValueError(f"beta: expected shape (..., {self.X_test.shape[1]}), got {tuple(beta.shape)}")
        return ((beta @ self.X_test.T - self.y_test) ** 2).mean(dim=-1)


def sparse_regression(*, n: int = 40, d: int = 100, support: int = 5, n_test: int = 2000,
                      generator: int | torch.Generator = 0, device=None) -> SparseRegression:
    """Gaussian design ``x ~ N(0, I_d)``, ``beta_star = 1`` on the first ``support`` coordinates.

    The data are made on ``device``, by default :func:`lessons_lib.backend.default_device` (the
    policy of every data factory); a generator given instead of a seed fixes the device.
    """
    n, d, n_test = (check_count(v, name=k) for k, v in (("n", n), ("d", d), ("n_test", n_test)))
    support = check_count(support, name="support")
    if support > d:
        raise ValueError(f"support: must be <= d = {d}, got {support}")
    gen = as_generator(generator, device)
    X = torch.randn(n + n_test, d, generator=gen, dtype=torch.float64, device=gen.device)
    beta = torch.zeros(d, dtype=torch.float64, device=gen.device)
    beta[:support] = 1.0
    y = X @ beta
    return SparseRegression(X[:n], y[:n], X[n:], y[n:], beta)


def top_direction(u: torch.Tensor, v: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Unit top eigenvector of ``G`` in ``(u, v)`` coordinates, shape ``(2d,)`` (for one run)."""
    u, v, X = models.check_diagonal_net(u, v, X)
    if u.ndim != 1:
        raise ValueError(f"u: expected the weights of one run, shape (d,), got {tuple(u.shape)}")
    J = diagonal_net_jacobian(u, v, X)
    _, evecs = torch.linalg.eigh(J @ J.T)
    w = J.T @ evecs[:, -1]
    return w / w.norm()


@dataclass(frozen=True)
class PerturbationGrowth(Record):
    """What :func:`perturbation_growth` returns (on the host).

    Attributes:
        distance: ``||(u_k, v_k) - (u, v)||`` for ``k = 0..steps``, shape ``(steps + 1,)``. After a
            divergence the distance of the frozen state is repeated (:meth:`lessons_lib.run.Run.on_grid`).
        diverged: whether the perturbed run left the blow-up ball (:mod:`lessons_lib.run`).
        diverged_at: the step at which it did, ``None`` if it did not.
    """

    distance: torch.Tensor
    diverged: bool = False
    diverged_at: int | None = None


def perturbation_growth(u, v, X, y, *, lr: float, eps: float = 1e-8, steps: int = 200,
                        blowup: float = 1e6) -> PerturbationGrowth:
    """Distance from the minimum after perturbing ``(u, v)`` by ``eps`` along G's top eigenvector
    and running ``steps`` steps of constant-``lr`` GD (eq-stab-gd): grows iff ``lr lambda_max > 2``.

    ``blowup`` is the divergence radius of :func:`lessons_lib.run.run`, relative to
    ``max(1, ||(u, v)||)``: far past ``2 / lambda_max`` the run diverges and is frozen, and flagged.

    Returns:
        A :class:`PerturbationGrowth`: the distance at every step, and whether the run diverged.
    """
    lr = check_lr(lr)
    eps = check_positive(eps, name="eps")
    steps = check_count(steps, name="steps")
    u, v, X = models.check_diagonal_net(u, v, X)
    y = as_tensor(y, name="y", device=u.device)
    if y.shape != X.shape[:1]:
        raise ValueError(f"y: expected shape ({X.shape[0]},), got {tuple(y.shape)}")
    start = (u, v)
    push = eps * top_direction(u, v, X)
    d = u.shape[-1]
    out = run(lambda s, t, eta: models.diagonal_net_step(*s, X, y, lr=lr), (u + push[:d], v + push[d:]),
              steps=steps, blowup=blowup,
              record=lambda s, t: {"dist": torch.cat([s[0] - start[0], s[1] - start[1]]).norm()})
    return PerturbationGrowth(out.on_grid(steps)[1]["dist"], bool(out.diverged), out.diverged_step)


def _check_gradients(g) -> torch.Tensor:
    """Per-sample gradients as a float64 ``(n, p)`` tensor, or a ValueError naming ``g``."""
    g = as_tensor(g, name="g")
    if g.ndim != 2 or g.shape[0] < 1 or g.shape[1] < 1:
        raise ValueError(f"g: expected per-sample gradients of shape (n, p), got {tuple(g.shape)}")
    return g


def mean_square_operator(g, *, lr: float, batch_size: int = 1) -> torch.Tensor:
    """The second-moment map of linearised minibatch SGD at an interpolating minimum, as a matrix.

    Linearised SGD (eq-stab-linear-sgd) is ``delta <- (I - lr G_xi) delta`` with
    ``G_xi = (1/B) sum_{i in xi} g_i g_i^T`` over a batch ``xi`` of ``B`` distinct samples drawn uniformly
    (as :func:`lessons_lib.models.train_diagonal_net` draws them). The second moment
    ``Sigma = E[delta delta^T]`` then evolves linearly, ``Sigma <- E[M_xi Sigma M_xi]`` with
    ``M_xi = I - lr G_xi`` (eq-stab-mean-square); on ``vec(Sigma)`` that map is the symmetric
    ``p^2 x p^2`` matrix ``E[M_xi kron M_xi]``, which this returns. In closed form, with
    ``A_i = g_i g_i^T``, ``G = mean_i A_i`` and ``c = (n - B) / (B (n - 1))`` (the variance of a mean of
    ``B`` draws without replacement; ``c = 0`` when ``B = n``, which is GD),
    ``E[G_xi kron G_xi] = G kron G + c (mean_i A_i kron A_i - G kron G)``.

    Args:
        g: per-sample gradients ``g_i`` of the model output at the minimum, shape ``(n, p)``.
        lr: learning rate ``eta >= 0``.
        batch_size: ``B``, an int in ``1 .. n``.

    Returns:
        The ``(p^2, p^2)`` float64 matrix, on the device of ``g``.

    References:
        Wu & Su (2023), The Implicit Regularization of Dynamical Stability in Stochastic Gradient
        Descent, ICML, arXiv:2305.17490; Wu, Ma & E (2018), NeurIPS (linear stability of SGD).
    """
    g = _check_gradients(g)
    lr = check_lr(lr)
    n, p = g.shape
    batch_size = check_count(batch_size, name="batch_size")
    if batch_size > n:
        raise ValueError(f"batch_size: must be <= n = {n}, got {batch_size}")
    A = g[:, :, None] * g[:, None, :]  # (n, p, p)
    G = A.mean(0)
    c = 0.0 if n == 1 else (n - batch_size) / (batch_size * (n - 1))
    eye = torch.eye(p, dtype=g.dtype, device=g.device)
    GG = torch.kron(G, G)
    AA = sum(torch.kron(a, a) for a in A) / n
    return (torch.kron(eye, eye) - lr * (torch.kron(G, eye) + torch.kron(eye, G))
            + lr**2 * (GG + c * (AA - GG)))


def mean_square_radius(g, *, lr: float, batch_size: int = 1) -> float:
    """Spectral radius of :func:`mean_square_operator` (eq-stab-mean-square): the factor by which the
    second moment ``E[delta delta^T]`` of linearised SGD grows per step in the long run.

    The minimum is linearly stable in mean square iff this is ``<= 1``. A direction orthogonal to every
    ``g_i`` is never moved, so when the ``g_i`` do not span ``R^p`` the radius is at least 1; pass the
    gradients in coordinates of their span (``p <= n``) to see the directions that matter.

    Args:
        g: per-sample gradients, shape ``(n, p)``.
        lr: learning rate ``eta >= 0``.
        batch_size: ``B`` in ``1 .. n`` (``B = n`` is GD, whose radius is ``max_i (1 - lr lambda_i)^2``).

    Returns:
        The radius, a Python float.

    References:
        Wu & Su (2023), arXiv:2305.17490.
    """
    T = mean_square_operator(g, lr=lr, batch_size=batch_size)
    return float(torch.linalg.eigvalsh(T).abs().max())
