"""Tests of lessons_lib.bilevel: the toy's oracles, the AID hypergradient, BO-REP's step and the chapter's claims.

The toy (eq-bilevel-toy) uses A = gaussian_matrix(5, generator=k), k = 0..4, mu = 1, reg = 0.05, x0 = 5 * 1.
Measured (single thread), in the notebook's configuration (three runs per matrix in one batch, generator 0): the
first plain step at lr = 0.05 multiplies ||grad Phi|| by 8 to 5200, and the run is flagged diverged at step 6
(k = 0, 1, 2, 4) or 11 (k = 3), just after a lower-level update (period 5); BO-REP's mean ||grad Phi|| over the last
100 of 1000 steps is 0.23-0.72, 0.9-2.5 times lr * lambda_max(grad^2 Phi(x*)), and 0.44-0.88 (1.7-2.5 times) without
noise; lambda_max(grad^2 Phi(x*)) = 4.93-7.43 bounds the (L0, L1) ratio from below; the plain method's largest
stable lr shrinks like s^(-2.02 .. -2.06) over the starts s * 1, s = 2 .. 16 (matrices 0-2), with
lr * lambda_max(grad^2 Phi(x0)) = 1.0-2.0 at the boundary for period 5 and 7.6-14.8 for period 1 (matrix 0).
"""

from __future__ import annotations

import math

import fuzz_specs
import pytest
import torch
from checkcases import Case

from lessons_lib import bilevel as B
from lessons_lib import check, measure

ONES = torch.ones(5, dtype=torch.float64)
X0 = 5 * ONES


def problem(k: int) -> B.ToyProblem:
    return B.toy_problem(B.gaussian_matrix(5, generator=k))


# --- the toy's oracles against autograd and finite differences ----------------------------------------

@pytest.mark.parametrize("k", [0, 1, 2])
def test_closed_forms_match_autograd(k):
    P = problem(k)
    x = torch.randn(5, generator=torch.Generator().manual_seed(k), dtype=torch.float64) * 3
    assert torch.allclose(P.grad_phi(x), torch.func.grad(P.phi)(x), rtol=1e-12, atol=1e-12)
    assert torch.allclose(P.hessian_phi(x), torch.func.hessian(P.phi)(x), rtol=1e-12, atol=1e-10)
    y_star = P.y_star(x)
    assert torch.allclose(torch.func.grad(lambda y: P.lower(x, y))(y_star), torch.zeros(5, dtype=torch.float64),
                          atol=1e-12)  # y* is the lower level's minimiser


@pytest.mark.parametrize("k", [0, 1, 2])
def test_hypergradient_at_exact_y_and_z_matches_finite_differences_of_phi(k):
    """Claim 4: h = grad_x f - grad2_xy g . z with grad2_yy g . z = grad_y f matches central differences of Phi."""
    P = problem(k)
    x = torch.randn(5, generator=torch.Generator().manual_seed(10 + k), dtype=torch.float64)
    y = P.y_star(x)
    z = torch.linalg.solve((1 + P.mu) * torch.eye(5, dtype=torch.float64), P.grad_y_f(x, y))
    h = B.hypergradient(P, x, y, z)
    eps = 1e-6
    fd = torch.stack([(P.phi(x + eps * e) - P.phi(x - eps * e)) / (2 * eps) for e in torch.eye(5, dtype=torch.float64)])
    assert torch.allclose(h, fd, rtol=1e-4, atol=1e-6)
    # the mixed derivative is the autograd one: d/dx <grad_y g(x, y), z>
    mixed = torch.func.grad(lambda xx: (torch.func.grad(lambda yy: P.lower(xx, yy))(y) * z).sum())(x)
    assert torch.allclose(P.jvp_xy_g(z), mixed, rtol=1e-12, atol=1e-12)
    # with z solved at a y away from y* (on this toy y enters h only through z), h is not grad Phi
    z_off = P.grad_y_f(x, y + 0.5) / (1 + P.mu)
    assert not torch.allclose(B.hypergradient(P, x, y + 0.5, z_off), fd, rtol=1e-2)


@pytest.mark.parametrize("k", range(5))
def test_closed_form_minimiser_and_its_curvature(k):
    """x* = r v (top eigenpair (c, v) of B): grad Phi(x*) = 0, Hessian positive definite with lambda_max = 2c - 4 reg,
    Phi(x*) below Phi at the other stationary points and at random points (measured lambda_max 4.93-7.43)."""
    P = problem(k)
    x = P.minimiser()
    assert float(P.grad_phi(x).norm()) < 1e-12
    H = P.hessian_phi(x)
    evals = torch.linalg.eigvalsh(H)
    c = torch.linalg.eigvalsh(P.A.T @ P.A / (1 + P.mu) ** 2)
    assert float(evals[0]) > 0 and math.isclose(float(evals[-1]), float(2 * c[-1] - 4 * P.reg), rel_tol=1e-12)
    assert 4.9 < float(evals[-1]) < 7.5
    # the other stationary points r_j v_j (c_j > 2 reg) lie higher: Phi = reg / c - reg^2 / c^2
    others = [P.reg / cj - P.reg**2 / cj**2 for cj in c[:-1].tolist() if cj > 2 * P.reg]
    assert all(float(P.phi(x)) < v for v in others)
    Z = torch.randn(4000, 5, generator=torch.Generator().manual_seed(k), dtype=torch.float64)
    assert float(P.phi(x)) <= float(P.phi(Z * torch.rand(4000, 1, generator=torch.Generator().manual_seed(k),
                                                          dtype=torch.float64)).min())


@pytest.mark.parametrize("k", range(5))
def test_the_l0l1_ratio_is_largest_at_the_minimiser(k):
    """At x* the gradient vanishes, so the ratio ||grad^2 Phi|| / (1 + ||grad Phi||) is lambda_max(x*) there (4.93-7.43,
    above the ray's 2.56-5.89: the ray gives only a lower bound on L0); 20 000 random points, far and near x*, stay
    below it (measured max 0.98-0.99 of it)."""
    P = problem(k)
    lam = float(torch.linalg.eigvalsh(P.hessian_phi(P.minimiser()))[-1])
    g = torch.Generator().manual_seed(100 + k)
    far = torch.randn(10000, 5, generator=g, dtype=torch.float64) * torch.logspace(-2, 1.3, 10000,
                                                                                 dtype=torch.float64)[:, None]
    near = P.minimiser() + 0.3 * torch.randn(10000, 5, generator=g, dtype=torch.float64)
    Z = torch.cat([far, near])
    ratio = torch.linalg.eigvalsh(P.hessian_phi(Z)).abs().amax(-1) / (1 + P.grad_phi(Z).norm(dim=-1))
    s = torch.linspace(0, 20, 401, dtype=torch.float64)[:, None] * ONES
    on_ray = torch.linalg.matrix_norm(P.hessian_phi(s), 2) / (1 + P.grad_phi(s).norm(dim=-1))
    assert float(ratio.max()) <= lam * (1 + 1e-9)
    assert float(on_ray.max()) < lam


def test_start_gradients_span_390_to_4500():
    """Claim 2: ||grad Phi(5 * 1)|| = 390-4500 over the 5 matrices (measured 388-4514)."""
    norms = [float(problem(k).grad_phi(X0).norm()) for k in range(5)]
    assert 380 < min(norms) < 400 and 4400 < max(norms) < 4600


@pytest.mark.parametrize("k", [0, 1, 2])
def test_curvature_grows_with_the_gradient_but_the_ratio_stays_bounded(k):
    """Claim 1 on the ray s * 1, s in [0, 20]: ||grad^2 Phi|| passes 1e4 while ||grad^2 Phi|| / (1 + ||grad Phi||)
    stays below 6.5 (measured: 1.06e4-2.8e4 and 4.2-5.9 for k = 0, 1, 2) and is largest near the origin."""
    P = problem(k)
    s = torch.linspace(0, 20, 401, dtype=torch.float64)
    X = s[:, None] * ONES
    H = torch.linalg.matrix_norm(P.hessian_phi(X), 2)
    ratio = H / (1 + P.grad_phi(X).norm(dim=-1))
    assert 1e4 < float(H.max()) < 3e4
    assert float(ratio.max()) < 6.5
    assert float(ratio[s > 10].max()) < 0.2 * float(ratio.max())  # far out the gradient outgrows the curvature


# --- the update rules -------------------------------------------------------------------------------

def test_upper_step_written_out():
    g = torch.Generator().manual_seed(3)
    x, m, h = (torch.randn(4, 5, generator=g, dtype=torch.float64) for _ in range(3))
    lr = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    x1, m1 = B.upper_step(x, m, h, lr=lr, beta=0.7)
    want_m = 0.7 * m + 0.3 * h
    assert torch.allclose(m1, want_m, rtol=1e-15, atol=1e-15)
    assert torch.allclose(x1, x - lr[:, None] * want_m / want_m.norm(dim=1, keepdim=True), rtol=1e-14, atol=1e-15)
    assert torch.allclose((x1 - x).norm(dim=1), lr, rtol=1e-13)
    x2, _ = B.upper_step(x, m, h, lr=0.1, beta=0.0, normalize=False)
    assert torch.allclose(x2, x - 0.1 * h, rtol=1e-15, atol=1e-15)  # the plain step
    x3, m3 = B.upper_step(x, torch.zeros_like(x), torch.zeros_like(x), lr=0.1)
    assert torch.equal(x3, x) and torch.equal(m3, torch.zeros_like(x))  # no momentum, no step (not NaN)


def test_bo_rep_step_with_injected_noise_written_out():
    P = problem(0)
    g = torch.Generator().manual_seed(5)
    x, m, y, z = (torch.randn(5, generator=g, dtype=torch.float64) for _ in range(4))
    noise = B.draw_noise(P, (), inner_steps=2, generator=g)
    s = 0.3
    for t, updated in ((0, True), (1, False)):
        x1, m1, y1, z1 = B.bo_rep_step(P, (x, m, y, z), t, lr=0.05, beta=0.9, period=2, inner_steps=2, lr_inner=0.3,
                                       nu=0.2, sigma=s, noise=noise)
        yy = y
        if updated:
            for k in range(2):
                yy = yy - 0.3 * ((2 * yy - P.A @ x) + s * noise.lower[k])
        zz = z - 0.2 * ((2 * z + s * noise.linear[0]) - ((yy @ yy - 1) * yy + s * noise.linear[1]))
        h = (0.1 * x + s * noise.upper[0]) - (-P.A.T @ zz + s * noise.upper[1])
        mm = 0.9 * m + 0.1 * h
        assert torch.allclose(y1, yy, rtol=1e-13) and torch.allclose(z1, zz, rtol=1e-13)
        assert torch.allclose(m1, mm, rtol=1e-13) and torch.allclose(x1, x - 0.05 * mm / mm.norm(), rtol=1e-13)


@pytest.mark.parametrize("k", [0, 1, 2])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_normalised_steps_have_length_exactly_lr_and_travel_at_most_lr_T(k, seed):
    """Claim 5 (step length): ||x_{t+1} - x_t|| = lr to 1e-12, so ||x_T - x_0|| <= lr T."""
    r = B.bo_rep(problem(k), X0, lr=0.05, steps=60, generator=seed)
    lengths = (r.x[1:] - r.x[:-1]).norm(dim=-1)
    assert torch.allclose(lengths, torch.full_like(lengths, 0.05), rtol=0, atol=1e-12)
    crawl = B.bo_rep(problem(k), X0, lr=0.001, steps=60, generator=seed)
    assert float((crawl.x[-1] - crawl.x[0]).norm()) <= 0.001 * 60 + 1e-12
    assert float(crawl.grad_phi_norm[-1]) > 0.5 * float(crawl.grad_phi_norm[0])  # too small a step crawls


@pytest.mark.parametrize("period, inner, refine, steps", [(5, 3, 50, 1000), (1, 3, 0, 7), (10, 2, 4, 25),
                                                          (3, 0, 5, 9)])
def test_lower_level_calls_are_refinement_plus_ceil_T_over_I_times_N(period, inner, refine, steps):
    """Claim 6: 650 at R = 50, I = 5, N = 3, T = 1000."""
    r = B.bo_rep(problem(0), X0, lr=0.01, steps=steps, period=period, inner_steps=inner, refine_steps=refine,
                 generator=0, record_every=max(steps, 1))
    assert int(r.lower_level_calls) == refine + math.ceil(steps / period) * inner
    if (period, inner, refine, steps) == (5, 3, 50, 1000):
        assert int(r.lower_level_calls) == 650


def test_a_diverged_run_is_charged_only_for_the_steps_it_made():
    r = B.bo_rep(problem(0), X0, lr=0.05, steps=100, beta=0.0, normalize=False, generator=0)
    assert bool(r.diverged) and int(r.lower_level_calls) == 50 + math.ceil(int(r.diverged_at) / 5) * 3
    assert bool(torch.isfinite(r.x).all())


# --- the claims about the two methods ------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("k", range(5))
def test_plain_steps_diverge_and_bo_rep_converges_at_lr_0_05(k):
    """Claim 5 in the notebook's configuration (three runs of a matrix in one batch, generator 0, 15 runs in all):
    the first plain step multiplies ||grad Phi|| by 8-5200 and the run is flagged diverged just after a lower-level
    update (step 6 or 11); BO-REP's mean ||grad Phi|| over the last 100 of 1000 steps is 0.23-0.72 (window 0.2-0.8),
    0.9-2.5 times lr * lambda_max(grad^2 Phi(x*)) (window 0.75-3); without noise it is no lower (0.44-0.88 against
    a mean of 0.38-0.69 with noise)."""
    P = problem(k)
    X0S = X0.repeat(3, 1)
    plain = B.bo_rep(P, X0S, lr=0.05, steps=30, beta=0.0, normalize=False, generator=0)
    assert bool(plain.diverged.all()) and bool(((plain.diverged_at - 1) % 5 == 0).all())
    assert bool((plain.grad_phi_norm[1] > 5 * plain.grad_phi_norm[0]).all())
    ours = B.bo_rep(P, X0S, lr=0.05, steps=1000, generator=0)
    assert not bool(ours.diverged.any())
    floors = ours.grad_phi_norm[-100:].mean(dim=0)
    lam = float(torch.linalg.eigvalsh(P.hessian_phi(P.minimiser()))[-1])
    assert bool(((floors > 0.2) & (floors < 0.8)).all())
    assert bool(((floors / (0.05 * lam) > 0.75) & (floors / (0.05 * lam) < 3.0)).all())
    quiet = B.bo_rep(P, X0, lr=0.05, steps=1000, noise=0.0, generator=0)
    quiet_floor = float(quiet.grad_phi_norm[-100:].mean())
    assert quiet_floor > 0.9 * float(floors.mean())  # the oracle noise does not set the floor
    assert 1.5 < quiet_floor / (0.05 * lam) < 3.0


@pytest.mark.parametrize("k", [0, 1, 2])
def test_the_floor_is_about_lr_times_the_curvature_at_the_solution(k):
    """Noise-free normalised steps at lr = 0.05 end oscillating with ||grad Phi|| between 1 and 6 times
    lr * lambda_max(grad^2 Phi(x*)) (measured 1.8-2.4 at 600 steps, 0.48-0.69 absolute); the minimiser reached by
    small plain steps from there has the closed form's curvature."""
    P = problem(k)
    r = B.bo_rep(P, X0, lr=0.05, steps=600, noise=0.0, generator=0)
    x = r.x[-1]
    for _ in range(3000):  # walk down to a minimiser with small plain steps
        x = x - 0.05 * P.grad_phi(x)
    assert float(P.grad_phi(x).norm()) < 1e-3  # near enough: lambda_max changes by less than 1e-3 here
    lam = float(torch.linalg.eigvalsh(P.hessian_phi(x))[-1])
    assert math.isclose(lam, float(torch.linalg.eigvalsh(P.hessian_phi(P.minimiser()))[-1]), rel_tol=1e-3)
    assert 1.0 < float(r.grad_phi_norm[-100:].mean()) / (0.05 * lam) < 6.0


@pytest.mark.parametrize("period", [1, 2, 5, 10])
@pytest.mark.parametrize("beta", [0.0, 0.9])
def test_the_plain_step_blows_up_at_once_and_is_flagged_after_a_lower_level_update(period, beta):
    """From 5 * 1 at lr = 0.05 (matrix 0) ||grad Phi|| grows more than 100-fold in the first step (4073 -> 2.1e7
    without momentum); while y is frozen the state drifts, and the flag trips one step after a lower-level update
    (explorer 2: step 3 for I = 1, 2 without momentum, 5 with; 6 for I = 5; 11 for I = 10)."""
    r = B.bo_rep(problem(0), X0, lr=0.05, steps=40, beta=beta, normalize=False, period=period, generator=0)
    assert bool(r.diverged) and (int(r.diverged_at) - 1) % period == 0 and int(r.diverged_at) <= 2 * period + 3
    if beta == 0.0:
        assert float(r.grad_phi_norm[1]) > 100 * float(r.grad_phi_norm[0])


@pytest.mark.slow
@pytest.mark.parametrize("k", [0, 1, 2])
def test_the_plain_methods_largest_stable_lr_shrinks_like_s_to_the_minus_2(k):
    """Claim 3: fitted exponent -2.0 to -2.2 (measured -2.02 to -2.10); BO-REP stable on the whole grid up to 0.3."""
    P = problem(k)
    lrs = torch.logspace(-5, math.log10(0.3), 31, dtype=torch.float64)
    scales = torch.tensor([2.0, 3, 4, 6, 8, 11, 16], dtype=torch.float64)
    plain = B.divergence_map(P, lrs=lrs, scales=scales, steps=300, beta=0.0, normalize=False)
    assert bool((plain.largest_stable > 0).all())
    assert -2.3 < measure.loglog_slope(scales, plain.largest_stable) < -1.9
    ours = B.divergence_map(P, lrs=lrs, scales=scales, steps=300)
    assert not bool(ours.diverged.any())  # by construction: ||x_T - x_0|| <= lr T


@pytest.mark.slow
def test_the_lag_of_the_lower_level_sets_the_constant_of_the_plain_steps_boundary():
    """Matrix 0: lr * lambda_max(grad^2 Phi(x0)) at the last stable / first unstable lr is 1.0-1.4 / 1.4-2.0 with
    y updated every I = 5 steps, 7.6-10.5 / 10.7-14.8 with y updated every step but z taking one step of nu = 0.3,
    and 3.8-5.3 / 5.4-7.5 (around the 6 of Euler's identity) with y and z exact at every step (I = 1,
    nu = lr_inner = 0.5); the s^-2 law holds for all three."""
    P = problem(0)
    lrs = torch.logspace(-5, math.log10(0.3), 31, dtype=torch.float64)
    scales = torch.tensor([2.0, 3, 4, 6, 8, 11, 16], dtype=torch.float64)
    lam0 = torch.linalg.eigvalsh(P.hessian_phi(scales[:, None] * ONES))[:, -1]
    for period, step, low, high in ((5, 0.3, 0.8, 2.5), (1, 0.3, 6.0, 16.0), (1, 0.5, 3.0, 8.0)):
        d = B.divergence_map(P, lrs=lrs, scales=scales, steps=300, beta=0.0, normalize=False, period=period,
                             lr_inner=step, nu=step)
        first = lrs[torch.searchsorted(lrs, d.largest_stable) + 1]
        assert bool((d.largest_stable * lam0 > low).all()) and bool((first * lam0 < high).all())
        assert -2.3 < measure.loglog_slope(scales, d.largest_stable) < -1.9


def test_divergence_map_lays_out_runs_by_scale_and_lr():
    P = problem(3)
    lrs, scales = [1e-4, 1e-2, 0.3], [1.0, 6.0]
    d = B.divergence_map(P, lrs=lrs, scales=scales, steps=40, beta=0.0, normalize=False, generator=1)
    assert d.diverged.shape == (2, 3) and d.final_grad_norm.shape == (2, 3)
    assert bool(d.diverged[1, 2]) and not bool(d.diverged[0, 0])  # far and fast diverges, near and slow does not
    one = B.bo_rep(P, 6.0 * ONES, lr=0.3, steps=40, beta=0.0, normalize=False, generator=1)
    assert bool(one.diverged)


def test_same_seed_same_run_and_another_seed_another_run():
    a = B.bo_rep(problem(1), X0, lr=0.05, steps=50, generator=4)
    b = B.bo_rep(problem(1), X0, lr=0.05, steps=50, generator=4)
    c = B.bo_rep(problem(1), X0, lr=0.05, steps=50, generator=5)
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)
    quiet = B.bo_rep(problem(1), X0, lr=0.05, steps=50, noise=0.0, generator=4)
    assert torch.equal(quiet.x, B.bo_rep(problem(1), X0, lr=0.05, steps=50, noise=0.0, generator=9).x)


def test_batched_runs_match_single_runs_without_noise():
    P = problem(2)
    X = torch.stack([X0, 2 * ONES])
    both = B.bo_rep(P, X, lr=[0.05, 0.02], steps=30, noise=0.0)
    for i, (x0, lr) in enumerate(((X0, 0.05), (2 * ONES, 0.02))):
        one = B.bo_rep(P, x0, lr=lr, steps=30, noise=0.0)
        assert torch.allclose(both.x[:, i], one.x, rtol=1e-13, atol=1e-13)


def test_a_schedule_sets_each_normalised_steps_length():
    from lessons_lib import schedules

    P = problem(1)
    flat = B.bo_rep(P, X0, lr=schedules.constant_schedule(0.05), steps=20, generator=3)
    assert torch.equal(flat.x, B.bo_rep(P, X0, lr=0.05, steps=20, generator=3).x)
    decay = schedules.decay_schedule(0.05, length=20, final=0.005)
    r = B.bo_rep(P, X0, lr=decay, steps=20, generator=3)
    lengths = (r.x[1:] - r.x[:-1]).norm(dim=-1)
    assert torch.allclose(lengths, decay(torch.arange(20)), rtol=0, atol=1e-12)


# --- bad input ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, name", [(dict(period=0), "period"), (dict(lr=0.0), "lr"), (dict(lr=-0.1), "lr"),
                                          (dict(beta=1.0), "beta"), (dict(noise=-1.0), "noise"),
                                          (dict(inner_steps=-1), "inner_steps"), (dict(normalize=1), "normalize"),
                                          (dict(lr=[0.1, 0.2]), "lr"), (dict(lr=True), "lr")])
def test_bo_rep_names_its_bad_arguments(kwargs, name):
    args = dict(lr=0.05, steps=3) | kwargs
    with pytest.raises(ValueError, match=f"^{name}:"):
        B.bo_rep(problem(0), X0, **args)


def test_other_functions_name_their_bad_arguments():
    with pytest.raises(ValueError, match="^A:"):
        B.toy_problem(torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="^mu:"):
        B.toy_problem(torch.eye(2, dtype=torch.float64), mu=0.0)
    with pytest.raises(ValueError, match="^problem:"):
        B.hypergradient(None, X0, X0, X0)
    with pytest.raises(ValueError, match="^y:"):
        B.hypergradient(problem(0), X0, torch.ones(3, dtype=torch.float64), X0)
    with pytest.raises(ValueError, match="^h:"):
        B.upper_step(X0, X0, torch.ones(3, dtype=torch.float64), lr=0.1)
    with pytest.raises(ValueError, match="^lrs:"):
        B.divergence_map(problem(0), lrs=[0.1, 0.01], scales=[1.0], steps=3)
    with pytest.raises(ValueError, match="^x0:"):
        B.bo_rep(problem(0), torch.ones(3, dtype=torch.float64), lr=0.1, steps=3)


# --- the self-check's cases (run by tests/test_course.py) ---------------------------------------------

def _step(x, m, h, lr, beta, *, scale=1.0, swap=False, fresh=False, whole=False, plain=False, old=False):
    m_new = (1 - beta) * m + beta * h if swap else beta * m + (1 - beta) * h
    d = h if fresh else m if old else m_new
    if plain:
        return x - lr * d, m_new
    size = d.norm() if whole else d.norm(dim=-1, keepdim=True)
    return x - scale * lr * d / size, m_new


CHECK_CASES = {
    "upper_step": Case(
        _step, lambda *a: _step(*a, scale=1.01),
        (lambda *a: _step(*a, plain=True), lambda *a: _step(*a, fresh=True)),
        expected=[v for c in check.bilevel.CASES.values()
                  for v in torch.stack(B.upper_step(c["x"], c["m"], c["h"], lr=c["lr"], beta=c["beta"]))
                  .flatten().tolist()],
        inputs=[5, 0.9, 0.05, 3, 0, 0.2, 4, 0.5, 0.01, 0.1, 1.0, 10.0], function=True,
        nan=lambda x, m, h, lr, beta: (torch.full_like(x, float("nan")), m),
        hints=((lambda *a: _step(*a, plain=True), "divide the momentum by its norm"),
               (lambda *a: _step(*a, fresh=True), "fresh hypergradient"),
               (lambda *a: _step(*a, whole=True), "each run (row) needs its own norm"),
               (lambda *a: _step(*a, swap=True), "keeps a fraction 1 - beta"),
               (lambda *a: _step(*a, old=True), "follow the old momentum"))),
}


# --- cases run by tests/test_divergence.py ----------------------------------------------------------

def _plain(m):  # lambda_max(grad^2 Phi(x*)) = 7.4 near the minimiser: a critical rate of order 2 / 7.4
    return B.bo_rep(problem(0), 0.5 * ONES, lr=m / 3.0, steps=30, beta=0.0, normalize=False, generator=0)


def _map(m):
    return B.divergence_map(problem(0), lrs=[m / 3.0, 2 * m / 3.0], scales=[0.5, 1.0], steps=30, beta=0.0,
                            normalize=False)


DIVERGENCE_CASES = {
    "bilevel.bo_rep": (_plain, "diverges", ()),
    "bilevel.divergence_map": (_map, "diverges", ()),
}
NOT_RUNNERS = {"bilevel.refine": "lower-level SGD at a fixed x: a contraction with a fixed step, not a runner "
                                 "with a learning rate"}


# --- baseline calls for tests/test_fuzz.py ------------------------------------------------------------

def _toy():
    return B.toy_problem(fuzz_specs.randn(3, 3))


FUZZ_OPT_OUT = {f"bilevel.ToyProblem.{name}": "a closed-form oracle of the toy, evaluated inside the loop on "
                 "whatever the state holds (a NaN check there would turn divergence into an exception); the "
                 "public functions that hand it points check them"
                 for name in ("grad_phi", "grad_x_f", "grad_y_f", "grad_y_g", "hessian_phi", "hvp_yy_g", "jvp_xy_g",
                              "lower", "phi", "upper", "y_star")}
FUZZ_OPT_OUT["bilevel.ToyProblem.minimiser"] = "takes no argument: a closed form of the problem's own A, mu and reg"

FUZZ_SPECS = {
    # the learner's function is probed by tests/test_course.py's odd-input test, as for check.cbo
    "check.bilevel.upper_step": fuzz_specs.Spec(lambda: dict(fn=lambda x, m, h, lr, beta: (x, m)), skip="fn"),
    "bilevel.toy_problem": fuzz_specs.Spec(lambda: dict(A=fuzz_specs.randn(3, 3), mu=1.0, reg=0.05), positive="mu",
                                           nonneg="reg"),
    "bilevel.gaussian_matrix": fuzz_specs.Spec(lambda: dict(dim=3, generator=0)),
    "bilevel.hypergradient": fuzz_specs.Spec(lambda: dict(problem=_toy(), x=fuzz_specs.randn(3), y=fuzz_specs.randn(3),
                                                          z=fuzz_specs.randn(3))),
    "bilevel.upper_step": fuzz_specs.Spec(lambda: dict(x=fuzz_specs.randn(3), m=fuzz_specs.randn(3, seed=1),
                                                       h=fuzz_specs.randn(3, seed=2), lr=0.1, beta=0.9),
                                          positive="lr", nonneg="beta"),
    "bilevel.refine": fuzz_specs.Spec(lambda: dict(problem=_toy(), x0=fuzz_specs.randn(3), steps=3, lr_inner=0.3,
                                                   sigma=0.1, generator=0), positive="lr_inner", nonneg="sigma"),
    "bilevel.bo_rep": fuzz_specs.Spec(lambda: dict(problem=_toy(), x0=fuzz_specs.randn(3), lr=0.05, steps=3,
                                                   beta=0.9, period=2, inner_steps=1, refine_steps=2, lr_inner=0.3,
                                                   nu=0.3, noise=0.1, generator=0),
                                      positive="lr lr_inner nu", nonneg="beta noise"),
    "bilevel.bo_rep_step": fuzz_specs.Spec(lambda: dict(problem=_toy(), state=tuple(fuzz_specs.randn(3, seed=s)
                                                                                    for s in range(4)),
                                                        t=0, lr=0.05, beta=0.9, period=2, inner_steps=1,
                                                        lr_inner=0.3, nu=0.3, sigma=0.1, generator=0),
                                           positive="lr lr_inner nu", nonneg="beta sigma",
                                           skip="state t"),  # state: a tuple the loop hands over; t: any int
    "bilevel.draw_noise": fuzz_specs.Spec(lambda: dict(problem=_toy(), batch=(), inner_steps=2,
                                                       generator=torch.Generator().manual_seed(0)),
                                          skip="batch"),  # batch: a shape tuple
    "bilevel.divergence_map": fuzz_specs.Spec(lambda: dict(problem=_toy(), lrs=[0.01, 0.1], scales=[1.0, 2.0],
                                                           steps=3, generator=0)),
}
