"""Wu & Su (2023): linear stability of GD (lambda_max <= 2/lr) and SGD (Tr G <= 2/lr).

Tolerances come from our own runs (see the chapter's "what did not reproduce"): over data seeds 0-3,
SGD's final Tr G / (2/lr) lay in [0.71, 0.90]; GD's final trace varied by < 0.1% across lr; GD's test
MSE lay in [2.18, 3.51]. At lr = 0.07 (20k SGD steps after a 5k warm-up) SGD's test MSE over seeds 0-3 was
0.0071, 0.0030, 0.465, 0.0104 (SGD / GD at most 0.133). Over seeds 0-9 GD's test MSE lay in [1.96, 3.53],
and SGD diverged on draws 4 and 6: lr = 0.07 is close to SGD's edge of stability.
"""

import functools
import itertools

import pytest
import torch
from conftest import random_spd

from lessons_lib import check, curvature, models, quadratic, schedules
from lessons_lib import stability as S
from lessons_lib.backend import default_device

LRS = [0.01, 0.02, 0.05, 0.07]


@pytest.fixture(scope="module")
def data():
    return S.sparse_regression(generator=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gd_quadratic_matches_closed_form_and_stability_boundary(seed):
    H = random_spd(6, seed, shift=0.05)
    lam, V = torch.linalg.eigh(H)
    eta_c = 2 / float(lam[-1])
    x0 = torch.randn(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    for frac in (0.5, 0.99):
        traj = S.gd_quadratic(H, x0, lr=frac * eta_c, steps=50)
        k = torch.arange(51, dtype=torch.float64)[:, None, None]
        expected = (x0 @ V) * (1 - frac * eta_c * lam) ** k  # (steps+1, R, d) in the eigenbasis
        assert torch.allclose(traj.params @ V, expected, atol=1e-11)
        assert traj.params.shape == (51, 3, 6) and traj.loss.shape == (51, 3)
    top = V[:, -1].expand(3, 6) + 0.1 * x0  # every start has a component along the top direction
    conv = S.gd_quadratic(H, top, lr=0.99 * eta_c, steps=6000)
    div = S.gd_quadratic(H, top, lr=1.01 * eta_c, steps=6000)
    assert not bool(conv.diverged.any()) and float(conv.params[-1].norm()) < 1e-6 * float(top.norm())
    assert bool(div.diverged.all()) and bool((div.diverged_at > 0).all())
    assert bool(torch.isfinite(div.params).all())


def test_gd_quadratic_unbatched_is_the_foundation_runner():
    H = torch.diag(torch.tensor([1.0, 3.0], dtype=torch.float64))
    a = S.gd_quadratic(H, [1.0, 1.0], lr=0.2, steps=10)
    b = quadratic.gd_quadratic(H, [1.0, 1.0], lr=0.2, steps=10)
    assert torch.equal(a.params, b.params)
    assert torch.allclose(S.contraction_factors(H, lr=0.2), torch.tensor([0.8, 0.4], dtype=torch.float64))


def test_the_chapters_names_are_the_shared_ones():
    # Gauss-Newton is curvature (tested in test_curvature.py); the diagonal network is a shared model
    assert S.gauss_newton is curvature.gauss_newton and S.GaussNewton is curvature.GaussNewton
    assert S.train_diagonal_net is models.train_diagonal_net and S.DiagonalNetRun is models.DiagonalNetRun
    assert S.diagonal_net_jacobian is models.diagonal_net_jacobian and S.weighted_l1 is models.weighted_l1


def test_sparse_regression_is_made_on_the_default_device_and_is_reproducible():
    a, b = S.sparse_regression(generator=4), S.sparse_regression(generator=4)
    assert a.X.device.type == default_device().type and a.beta_star.device.type == default_device().type
    assert torch.equal(a.X, b.X) and torch.equal(a.y_test, b.y_test)
    assert torch.equal(a.y, a.X @ a.beta_star) and a.beta_star.tolist() == [1.0] * 5 + [0.0] * 95
    assert a.X.shape == (40, 100) and a.X_test.shape == (2000, 100)


def test_perturbation_growth_runs_two_hundred_steps_by_default():
    u = torch.tensor([1.0, 0.5], dtype=torch.float64)
    X = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    y = X @ (u**2)
    growth = S.perturbation_growth(u, torch.zeros(2, dtype=torch.float64), X, y, lr=0.01)
    assert growth.distance.shape == (201,) and not growth.diverged


def test_diagonal_net_jacobian_is_autograd(data):
    u = torch.rand(100, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    v = torch.rand(100, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    X = data.X[:5]
    f = lambda p: X @ (p[:100] ** 2 - p[100:] ** 2)  # noqa: E731
    J = torch.autograd.functional.jacobian(f, torch.cat([u, v]))
    assert torch.allclose(S.diagonal_net_jacobian(u, v, X), J, atol=1e-12)
    # at an interpolating minimum the loss Hessian equals G
    loss = lambda p: 0.5 * ((f(p) - X @ (u**2 - v**2)) ** 2).mean()  # noqa: E731
    H = torch.autograd.functional.hessian(loss, torch.cat([u, v]))
    assert torch.allclose(H, J.T @ J / 5, atol=1e-10)


@pytest.mark.parametrize("seed", [0, 1])
def test_sgd_final_trace_is_below_two_over_lr(seed):
    d = S.sparse_regression(generator=seed)
    run = S.train_diagonal_net(d.X, d.y, lr=LRS, steps=30_000, batch_size=1, init_scale=0.5,
                               warmup_steps=5000, generator=seed, record_every=10_000)
    ratio = run.trace * torch.tensor(LRS, dtype=torch.float64) / 2
    assert not bool(run.diverged.any())
    assert bool((ratio <= 1.0).all()), ratio  # measured 0.71-0.90
    assert bool((ratio >= 0.6).all()), ratio  # and it hugs the bound, not far below it
    assert bool((run.loss_history[-1] < 1e-4).all())  # (nearly) interpolating: measured 1e-30 to 7e-6
    # the identity Tr G >= 4 sum_j sigma_j^2 |beta_j| along the whole run
    assert bool((run.trace_history >= run.l1_history - 1e-10).all())


def test_gd_final_trace_is_flat_in_lr_and_far_above_two_over_lr(data):
    run = S.train_diagonal_net(data.X, data.y, lr=LRS, steps=10_000, batch_size=None, init_scale=0.5,
                               warmup_steps=5000, record_every=5000)
    assert float(run.trace.max() / run.trace.min()) < 1.002  # measured < 1.001
    assert float(run.trace[2]) > 4 * 2 / 0.05  # 207 against 40
    assert bool((run.trace_history >= run.l1_history - 1e-10).all())


@functools.lru_cache(maxsize=None)
def large_lr_test_errors(seed: int) -> tuple[float, float, bool]:
    """Test MSE of SGD (batch 1) and of GD at lr = 0.07 on data draw ``seed``, and whether SGD diverged."""
    d = S.sparse_regression(generator=seed)
    sgd = S.train_diagonal_net(d.X, d.y, lr=0.07, steps=20_000, batch_size=1, init_scale=0.5,
                               warmup_steps=5000, generator=seed, record_every=20_000)
    gd = S.train_diagonal_net(d.X, d.y, lr=0.07, steps=10_000, init_scale=0.5, warmup_steps=5000,
                              record_every=10_000)
    return float(d.test_mse(sgd.beta)), float(d.test_mse(gd.beta)), bool(sgd.diverged)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_large_lr_sgd_generalises_where_gd_does_not(seed):
    sgd_mse, gd_mse, diverged = large_lr_test_errors(seed)
    assert not diverged
    assert gd_mse > 1.5  # measured 2.18-3.51 (1.96-3.53 over seeds 0-9)
    assert sgd_mse < 0.3 * gd_mse  # measured ratio <= 0.133


@pytest.mark.slow
def test_large_lr_sgd_finds_the_sparse_solution_on_most_draws():
    # one draw in four may stall on a non-sparse interpolator at lr = 0.07 (draw 2: test MSE 0.465)
    sgd = sorted(large_lr_test_errors(seed)[0] for seed in range(4))
    assert sgd[2] < 0.03  # three of four draws: measured 0.003-0.010


def test_gd_at_constant_lr_ends_linearly_stable(data):
    const = S.train_diagonal_net(data.X, data.y, lr=0.05, steps=10_000, init_scale=1.0, record_every=10_000)
    assert float(const.lam_max) * 0.05 <= 2.0  # measured 0.83-0.95 of the bound
    stable = S.perturbation_growth(const.u, const.v, data.X, data.y, lr=0.05, eps=1e-8, steps=300)
    assert float(stable.distance[-1]) < 1e-7


def test_warmup_trap_is_a_floating_point_fixed_point_that_any_push_leaves(data):
    """The chapter's warm-up cell: GD parks at an unstable minimum only because its update rounds to zero."""
    lr = 0.05
    warm = S.train_diagonal_net(data.X, data.y, lr=lr, steps=8000, init_scale=1.0, warmup_steps=5000,
                                record_every=8000)
    assert float(warm.lam_max) > 2 / lr * 1.1  # measured 47.7 against 40: linearly unstable at the final lr
    assert float(warm.loss_history[-1]) < 1e-20
    # the gradient is tiny but not zero (measured 9.7e-15), and one more step changes no bit of (u, v)
    J = S.diagonal_net_jacobian(warm.u, warm.v, data.X)
    grad = J.T @ (data.X @ warm.beta - data.y) / data.X.shape[0]
    assert 0 < float(grad.norm()) < 1e-12
    u1, v1 = models.diagonal_net_step(warm.u, warm.v, data.X, data.y, lr=lr)
    assert torch.equal(u1, warm.u) and torch.equal(v1, warm.v)
    # in exact arithmetic the factor |1 - lr lambda_max| > 1 would act; a push of 1e-12 shows it does
    assert abs(1 - lr * float(warm.lam_max)) > 1.3  # measured 1.387
    growth = S.perturbation_growth(warm.u, warm.v, data.X, data.y, lr=lr, eps=1e-12, steps=300)
    assert not growth.diverged and growth.distance.shape == (301,)
    assert float(growth.distance[50]) > 1e4 * 1e-12  # measured 1.25e-5 after 50 steps
    assert float(growth.distance[-1]) > 0.5  # it left for another minimum: measured 1.89 away


def test_determinism(data):
    kw = dict(lr=[0.005, 0.01], steps=2000, batch_size=1, warmup_steps=500, record_every=500)
    a = S.train_diagonal_net(data.X, data.y, generator=5, **kw)
    b = S.train_diagonal_net(data.X, data.y, generator=5, **kw)
    c = S.train_diagonal_net(data.X, data.y, generator=6, **kw)
    assert not bool(a.diverged.any())
    assert torch.equal(a.beta, b.beta) and torch.equal(a.trace_history, b.trace_history)
    assert not torch.equal(a.beta, c.beta)


def test_divergence_is_reported_per_run_and_frozen_not_zeroed(data):
    run = S.train_diagonal_net(data.X, data.y, lr=[0.01, 5.0], steps=600, batch_size=1, record_every=300)
    assert run.diverged.tolist() == [False, True] and int(run.diverged_at[1]) > 0
    assert bool(torch.isfinite(run.beta).all()) and bool(torch.isfinite(run.trace_history).all())
    assert bool((run.beta[1] != 0).any())  # frozen where it blew up: a zeroed run would look like beta = 0
    assert torch.equal(run.beta_history[-1, 1], run.beta[1]) and not bool(run.diverged[0])


@pytest.mark.slow  # about 7 s on one busy core
def test_minibatch_between_sgd_and_gd(data):
    # the chapter's setting and its explorer's batch sizes: B = 1, 4 and 40 (GD)
    runs = S.train_diagonal_net(data.X, data.y, lr=[0.02, 0.05], steps=20_000, batch_size=4, warmup_steps=5000,
                                generator=0, record_every=20_000)
    sgd = S.train_diagonal_net(data.X, data.y, lr=[0.02, 0.05], steps=20_000, batch_size=1, warmup_steps=5000,
                               generator=0, record_every=20_000)
    gd = S.train_diagonal_net(data.X, data.y, lr=[0.02, 0.05], steps=10_000, warmup_steps=5000, record_every=10_000)
    # the final trace does not decrease with B; at the small lr B = 4 already ends where GD ends (207 both)
    assert bool((sgd.trace < runs.trace).all()) and bool((runs.trace <= gd.trace * (1 + 1e-6)).all()), (
        sgd.trace, runs.trace, gd.trace)
    assert float(runs.trace[0]) == pytest.approx(float(gd.trace[0]), rel=1e-3)


CHAPTER_LRS = [0.01, 0.02, 0.035, 0.05, 0.06, 0.07]  # the chapter's figure and diagonal-net explorer


def test_chapter_figure_sgd_trace_stays_below_the_bound_and_only_the_largest_lr_finds_the_sparse_solution(data):
    """The figure's title: SGD's trace at 0.72-0.90 of 2/lr, only lr = 0.07 recovers beta*, GD's trace flat in lr."""
    lrs = torch.tensor(CHAPTER_LRS, dtype=torch.float64)
    sgd = S.train_diagonal_net(data.X, data.y, lr=CHAPTER_LRS, steps=20_000, batch_size=1, init_scale=0.5,
                               warmup_steps=5000, generator=0, record_every=20_000)
    assert not bool(sgd.diverged.any())
    ratio = sgd.trace * lrs / 2
    assert bool((ratio < 0.95).all()) and bool((ratio > 0.65).all()), ratio  # measured 0.72-0.90
    mse = [float(data.test_mse(b)) for b in sgd.beta]
    assert mse[-1] < 0.02, mse  # lr = 0.07: measured 0.007
    assert min(mse[:-1]) > 0.1, mse  # every smaller lr misses beta*: measured 0.15-2.0 (1.0-2.0 at lr <= 0.035)


def test_explorer_gd_frames_above_two_over_lr_are_held_only_by_rounding(data):
    """Diagonal-net explorer at alpha = 1, B = 40 (GD): where lambda_max(G) > 2/lr GD did not leave only because
    one more step changes no bit of (u, v) (the warm-up trap); the explorer labels those frames so."""
    gd = S.train_diagonal_net(data.X, data.y, lr=CHAPTER_LRS, steps=20_000, init_scale=1.0, warmup_steps=5000,
                              record_every=20_000)
    lrs = torch.tensor(CHAPTER_LRS, dtype=torch.float64)
    above = gd.lam_max * lrs > 2
    assert above.tolist() == [False, False, False, True, True, True], gd.lam_max  # measured 47.7 vs 40, 33, 29
    assert float((gd.lam_max * lrs / 2)[-1]) > 1.5  # factor |1 - lr lambda_max| = 2.34 at lr = 0.07
    for i in torch.nonzero(above).flatten().tolist():
        # one more step moves (u, v) by at most a rounding step (the update is below the float spacing) ...
        u1, v1 = models.diagonal_net_step(gd.u[i], gd.v[i], data.X, data.y, lr=CHAPTER_LRS[i])
        moved = max(float((u1 - gd.u[i]).abs().max()), float((v1 - gd.v[i]).abs().max()))
        assert moved <= 4.5e-16 * float(torch.cat([gd.u[i], gd.v[i]]).abs().max()), (CHAPTER_LRS[i], moved)
    # ... yet the minimum is unstable: a 1e-12 push leaves it (lr = 0.05, the mildest of the three)
    growth = S.perturbation_growth(gd.u[3], gd.v[3], data.X, data.y, lr=0.05, eps=1e-12, steps=300)
    assert float(growth.distance[-1]) > 0.1


def test_sgd_with_replacement_edge_for_orthogonal_gradients():
    """Batches of B draws WITH replacement: for orthogonal g_i the mean-square edge is
    lr ||g_i||^2 = 2 n B / (n - 1 + B), which equals 2B (the distinct-sample edge) only at B = 1."""
    norms2 = torch.tensor([1.0, 4.0, 9.0, 6.25], dtype=torch.float64)
    g, n = torch.diag(norms2.sqrt()), 4
    for B in (1, 2, 3, 4):
        edge = 2 * n * B / (n - 1 + B) / 9.0
        below = check.stability._with_replacement(g, 0.99 * edge, B)
        above = check.stability._with_replacement(g, 1.01 * edge, B)
        assert below < 1 < above, (B, below, above)
        if B > 1:  # distinct samples allow more: the edge 2B / ||g||^2 lies above the with-replacement one
            assert S.mean_square_radius(g, lr=1.01 * edge, batch_size=B) < 1


def test_bad_input_names_the_argument(data):
    X, y = data.X, data.y
    cases = [
        (dict(lr=-0.1, steps=10), "lr"), (dict(lr=[], steps=10), "lr"), (dict(lr=0.1, steps=0), "steps"),
        (dict(lr=0.1, steps=10, batch_size=0), "batch_size"), (dict(lr=0.1, steps=10, batch_size=41), "batch_size"),
        (dict(lr=0.1, steps=10, init_scale=0), "init_scale"), (dict(lr=0.1, steps=10, warmup_steps=-1), "warmup_steps"),
        (dict(lr=0.1, steps=10, record_every=0), "record_every"),
        (dict(lr=schedules.warmup_schedule(0.1, warmup=5), steps=10, warmup_steps=5), "warmup_steps"),
    ]
    for kwargs, name in cases:
        with pytest.raises(ValueError, match=name):
            S.train_diagonal_net(X, y, **kwargs)
    with pytest.raises(ValueError, match="X"):
        S.train_diagonal_net(X, y[:-1], lr=0.1, steps=10)
    with pytest.raises(ValueError, match="x0"):
        S.gd_quadratic(torch.eye(2), torch.zeros(2, 3), lr=0.1, steps=2)
    with pytest.raises(ValueError, match="J"):
        S.gauss_newton(torch.zeros(3))
    with pytest.raises(ValueError, match="support"):
        S.sparse_regression(d=3, support=4)
    with pytest.raises(ValueError, match="eps"):
        S.perturbation_growth(torch.ones(2), torch.ones(2), torch.ones(3, 2), torch.ones(3), lr=0.1, eps=0)
    g = torch.ones(3, 2, dtype=torch.float64)
    for kwargs, name in [(dict(g=torch.ones(3), lr=0.1), "g"), (dict(g=g, lr=-0.1), "lr"),
                         (dict(g=g, lr=0.1, batch_size=0), "batch_size"),
                         (dict(g=g, lr=0.1, batch_size=4), "batch_size"),
                         (dict(g=g, lr=0.1, batch_size=1.0), "batch_size")]:
        for fn in (S.mean_square_operator, S.mean_square_radius):
            with pytest.raises(ValueError, match=f"^{name}:"):
                fn(**kwargs)


# ---------------------------------------------------------------- mean-square stability (eq-stab-mean-square)


def _enumerated_operator(g, lr, B):
    """E[(I - lr G_xi) kron (I - lr G_xi)], averaged over every batch of B distinct samples."""
    n, p = g.shape
    eye = torch.eye(p, dtype=torch.float64)
    batches = list(itertools.combinations(range(n), B))
    mats = [eye - lr * g[list(b)].T @ g[list(b)] / B for b in batches]
    return sum(torch.kron(M, M) for M in mats) / len(batches)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mean_square_operator_is_the_average_over_batches(seed):
    g = torch.randn(5, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    for B in (1, 2, 3, 5):
        T = S.mean_square_operator(g, lr=0.3, batch_size=B)
        assert torch.allclose(T, _enumerated_operator(g, 0.3, B), atol=1e-12)
        # one step of the second moment: E[M Sigma M] for a random Sigma, written out
        Sig = torch.randn(3, 3, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
        batches = list(itertools.combinations(range(5), B))
        want = sum((torch.eye(3, dtype=torch.float64) - 0.3 * g[list(b)].T @ g[list(b)] / B) @ Sig
                   @ (torch.eye(3, dtype=torch.float64) - 0.3 * g[list(b)].T @ g[list(b)] / B) for b in batches)
        assert torch.allclose((T @ Sig.reshape(-1)).reshape(3, 3), want / len(batches), atol=1e-12)


def test_mean_square_radius_closed_forms():
    # orthogonal gradients, B = 1: the chapter's factor 1 - 1/n + (1/n)(1 - lr ||g_i||^2)^2, worst over i
    norms2 = torch.tensor([1.0, 4.0, 9.0], dtype=torch.float64)
    g = torch.diag(norms2.sqrt())
    for lr in (0.1, 0.2, 0.25, 0.3):
        want = float((1 - 1 / 3 + (1 - lr * norms2) ** 2 / 3).max())
        assert S.mean_square_radius(g, lr=lr, batch_size=1) == pytest.approx(want, rel=1e-12)
        # B = n is GD: max_i (1 - lr lambda_i)^2
        assert S.mean_square_radius(g, lr=lr, batch_size=3) == pytest.approx(
            float(((1 - lr * norms2 / 3) ** 2).max()), rel=1e-12)
    # orthogonal, batch B of n: stable iff lr ||g_i||^2 <= 2B for every i (our batch-size derivation)
    g = torch.diag(torch.tensor([1.0, 2.0, 3.0, 2.5], dtype=torch.float64))
    for B in (1, 2, 3):
        edge = 2 * B / 9.0
        assert S.mean_square_radius(g, lr=0.99 * edge, batch_size=B) < 1 < S.mean_square_radius(
            g, lr=1.01 * edge, batch_size=B)


def _critical_lr(g, B):
    """The largest lr with mean-square radius <= 1 (bisection; g spans its space, so the radius < 1 below it)."""
    lo, hi = 0.0, 1.0
    while S.mean_square_radius(g, lr=hi, batch_size=B) <= 1:
        hi *= 2
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if S.mean_square_radius(g, lr=mid, batch_size=B) <= 1 else (lo, mid)
    return lo


@pytest.mark.parametrize("seed", range(6))
def test_sgd_mean_square_stable_implies_trace_bound_for_non_orthogonal_gradients(seed):
    """Wu & Su's headline, Tr G <= 2/lr at any SGD-stable (B = 1) minimum, on random non-orthogonal gradients;
    GD's edge (B = n) is 2/lambda_max, and B = 1 is never more permissive than GD."""
    gen = torch.Generator().manual_seed(seed)
    g = torch.randn(5, 3, generator=gen, dtype=torch.float64) * (0.5 + 2 * torch.rand(5, 1, generator=gen,
                                                                                      dtype=torch.float64))
    G = g.T @ g / 5
    tr, lam_max = float(G.trace()), float(torch.linalg.eigvalsh(G)[-1])
    eta1, eta_gd = _critical_lr(g, 1), _critical_lr(g, 5)
    assert eta1 * tr <= 2 + 1e-9  # measured at most 0.97 x 2 over 30 random draws of this kind
    assert eta_gd * lam_max == pytest.approx(2, rel=1e-9)
    assert eta1 <= eta_gd + 1e-12
    assert eta1 <= _critical_lr(g, 2) <= eta_gd + 1e-12  # a larger batch allows a larger lr


# --- self-check cases (collected by tests/test_course.py) ---

from checkcases import Case  # noqa: E402

_H_EXERCISE = torch.tensor([[3.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 1.0]], dtype=torch.float64)
_STABLE_LR = 2 / float(torch.linalg.eigvalsh(_H_EXERCISE)[-1])  # 2 / lambda_max, written out


def _worst_factor_words(lr):
    """What the hint must say at ``lr``: the factor 1 - lr * lambda farthest from 0, and its verdict."""
    q = [1 - lr * lam for lam in torch.linalg.eigvalsh(_H_EXERCISE).tolist()]
    worst = max(q, key=abs)
    return (f"the factors 1 - lr*lambda_i are {[round(x, 3) for x in q]}; "
            f"the worst one ({worst:.3g}) {'diverges' if abs(worst) > 1 else 'still contracts'}")


def _radius(g, lr, batch_size):
    return S.mean_square_radius(g, lr=lr, batch_size=batch_size)


def _gd_radius(g, lr, batch_size):
    """The mistake of dropping the batch noise: full-batch GD's factor max (1 - lr lambda)^2."""
    return float(((1 - lr * torch.linalg.eigvalsh(g.T @ g / g.shape[0])) ** 2).max())


def _first_moment(g, lr, batch_size):
    """The mistake of tracking E[delta] instead of E[delta delta^T]."""
    return float((1 - lr * torch.linalg.eigvalsh(g.T @ g / g.shape[0])).abs().max())


def _root_radius(g, lr, batch_size):
    """The mistake of reporting the growth of |delta| (the square root of the radius) instead of E[delta delta^T]."""
    return S.mean_square_radius(g, lr=lr, batch_size=batch_size) ** 0.5


_MS_CASES = check.stability.MEAN_SQUARE_CASES

CHECK_CASES = {
    "minibatch_mean_square_radius": Case(
        _radius, lambda g, lr, batch_size: 1.002 * _radius(g, lr, batch_size),
        (_gd_radius, _first_moment, _root_radius),
        expected=[_radius(**c) for c in _MS_CASES.values()],
        inputs=[4, 3, 0.6, 1, 2, 9, 0.25, 4], function=True, rtol=1e-8, close_rtol=0.005,
        nan=lambda g, lr, batch_size: float("nan"),
        hints=((_gd_radius, "full-batch GD"), (_first_moment, "the mean E[delta]"),
               (_root_radius, "growth factor of |delta|"))),
    "largest_stable_lr": Case(_STABLE_LR, _STABLE_LR * 1.01, (_STABLE_LR * 0.6, _STABLE_LR * 1.5),
                              expected=[_STABLE_LR], args=dict(H=_H_EXERCISE),
                              hints=tuple((f * _STABLE_LR, _worst_factor_words(f * _STABLE_LR)) for f in (0.6, 1.5))),
}


def test_diagonal_net_functions_promote_mixed_dtypes_and_name_bad_shapes():
    g = torch.Generator().manual_seed(0)
    u, v = torch.randn(5, generator=g, dtype=torch.float64) + 1, torch.randn(5, generator=g, dtype=torch.float64) + 1
    X, y = torch.randn(6, 5, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)
    mixed = S.perturbation_growth(u, v, X.float(), y, lr=0.01, steps=3)  # used to raise a dtype RuntimeError
    assert bool(torch.isfinite(mixed.distance).all())
    assert torch.allclose(S.top_direction(u, v, X.float()).abs(), S.top_direction(u, v, X.float().double()).abs())
    with pytest.raises(ValueError, match="^X:"):
        S.top_direction(u, v, X[:, :4])
    with pytest.raises(ValueError, match="^y:"):
        S.perturbation_growth(u, v, X, y[:5], lr=0.01, steps=3)
