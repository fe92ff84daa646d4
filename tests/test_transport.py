"""Tests of lessons_lib.transport: the dual, Sinkhorn, Sinkhorn–Newton–Sparse, and their claims.

Claims measured on the chapter's problem (n = 200, ot_problem_1d), marginal l1 error to 1e-8; counts
are iterations (Sinkhorn sweeps plus Newton steps). Measured here: Sinkhorn 1642 / 411 / 68 at
eta = 1200 / 300 / 50; 20 sweeps then dense Newton 32 / 26 / 22; at 10% density 99 / 150 / 60; at 5%
and eta = 1200 the error is 2.3e-5 after 300 Newton steps, shrinking by 0.970 per step. Count bands are
+-12% around these.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lessons_lib import check, curvature
from lessons_lib import transport as T


@pytest.fixture(scope="module")
def prob():
    return T.ot_problem_1d(200, device="cpu")


@pytest.fixture(scope="module")
def small():
    return T.ot_problem_1d(8, device="cpu")


def _band(value, target, rel=0.12):
    return (1 - rel) * target <= value <= (1 + rel) * target


# --- oracles ---------------------------------------------------------------------------------------

def _torch_dual(z, C, r, c, eta):
    n = C.shape[0]
    x, y = z[:n], z[n:]
    return r @ x + c @ y - torch.exp(eta * (x[:, None] + y[None, :] - C) - 1).sum() / eta


def test_gradient_and_hessian_of_the_dual_match_autograd(small):
    eta = 7.0
    gen = torch.Generator().manual_seed(1)
    z = 0.1 * torch.randn(16, generator=gen, dtype=torch.float64)
    x, y = z[:8], z[8:]
    P = T.transport_plan(x, y, small.C, eta=eta)
    H = curvature.hessian(lambda v: _torch_dual(v, small.C, small.r, small.c, eta), z)
    want = -eta * torch.cat([torch.cat([torch.diag(P.sum(1)), P], 1), torch.cat([P.T, torch.diag(P.sum(0))], 1)])
    assert torch.allclose(H, want, rtol=1e-10, atol=1e-12)
    zz = z.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(_torch_dual(zz, small.C, small.r, small.c, eta), zz)
    assert torch.allclose(g, torch.cat([small.r - P.sum(1), small.c - P.sum(0)]), atol=1e-12)
    assert T.dual_potential(x, y, small.C, small.r, small.c, eta=eta) == pytest.approx(
        float(_torch_dual(z, small.C, small.r, small.c, eta)), rel=1e-12)


def test_hessian_is_singular_along_the_gauge_and_negative_semidefinite(small):
    P = T.transport_plan(torch.zeros(8, dtype=torch.float64), torch.zeros(8, dtype=torch.float64), small.C, eta=3.0)
    M = torch.cat([torch.cat([torch.diag(P.sum(1)), P], 1), torch.cat([P.T, torch.diag(P.sum(0))], 1)])
    gauge = torch.cat([torch.ones(8), -torch.ones(8)]).double()
    assert torch.allclose(M @ gauge, torch.zeros(16, dtype=torch.float64), atol=1e-14)
    eig = torch.linalg.eigvalsh(M)
    assert eig[0].abs() < 1e-12 and eig[1] > 1e-6  # exactly one zero eigenvalue: the gauge


def test_the_gauge_leaves_the_plan_and_the_dual_unchanged(small):
    gen = torch.Generator().manual_seed(2)
    x, y = torch.randn(8, generator=gen, dtype=torch.float64) * 0.1, torch.randn(8, generator=gen,
                                                                                 dtype=torch.float64) * 0.1
    for t in (0.3, -1.7):
        assert torch.allclose(T.transport_plan(x + t, y - t, small.C, eta=20.0),
                              T.transport_plan(x, y, small.C, eta=20.0), rtol=1e-12)
        assert T.dual_potential(x + t, y - t, small.C, small.r, small.c, eta=20.0) == pytest.approx(
            T.dual_potential(x, y, small.C, small.r, small.c, eta=20.0), rel=1e-12, abs=1e-14)


def test_a_sinkhorn_sweep_maximises_exactly_in_each_block(small):
    run = T.sinkhorn(small.C, small.r, small.c, eta=30.0, steps=1, tol=0.0)
    P = run.plan
    assert torch.allclose(P.sum(0), small.c, rtol=1e-12)  # the y update: the column sums are exact
    # the x half-step alone makes the row sums exact
    x = (torch.log(small.r) - torch.logsumexp(30.0 * (0 - small.C) - 1, dim=1)) / 30.0
    assert torch.allclose(T.transport_plan(x, torch.zeros(8).double(), small.C, eta=30.0).sum(1), small.r,
                          rtol=1e-12)
    assert run.errors[1] == pytest.approx(T.marginal_error(P, small.r, small.c), rel=1e-12)


def test_dense_newton_direction_solves_the_newton_system(small):
    run = T.sinkhorn(small.C, small.r, small.c, eta=40.0, steps=3, tol=0.0)
    x, y = run.x, run.y
    P, d, slope = T._newton_direction(x, y, small.C, small.r, small.c, 40.0, 1.0)
    M = torch.cat([torch.cat([torch.diag(P.sum(1)), P], 1), torch.cat([P.T, torch.diag(P.sum(0))], 1)])
    g = torch.cat([small.r - P.sum(1), small.c - P.sum(0)])
    dense = torch.linalg.pinv(M) @ g / 40.0
    # equal up to the gauge: compare the plan's exponent increments d_x,i + d_y,j
    assert torch.allclose(d[:8, None] + d[None, 8:], dense[:8, None] + dense[None, 8:], atol=1e-9)
    assert slope > 0


def test_the_preconditioned_cg_direction_is_d_orthogonal_to_the_gauge(prob):
    """Jacobi-preconditioned CG from zero stays in D^-1 range(M): d^T D (1, -1) = 0, not d^T (1, -1) = 0."""
    s = T.sinkhorn(prob.C, prob.r, prob.c, eta=1200.0, steps=20, tol=0.0)
    P, d, _ = T._newton_direction(s.x, s.y, prob.C, prob.r, prob.c, 1200.0, 1.0)
    u = torch.cat([torch.ones(200), -torch.ones(200)]).double()
    D = torch.cat([P.sum(1), P.sum(0)])
    assert abs(float(d @ (D * u))) < 1e-12 * float(d.norm() * (D * u).norm())
    assert float(d @ u / (u @ u)) == pytest.approx(0.023, abs=0.001)  # a real gauge component
    # which changes nothing: the plan's exponent increments d_x,i + d_y,j are those of the gauge-free solution
    free = d - (d @ u / (u @ u)) * u
    assert torch.allclose(d[:200, None] + d[None, 200:], free[:200, None] + free[None, 200:], atol=1e-12)


def test_sparsify_keeps_exactly_the_largest_entries():
    gen = torch.Generator().manual_seed(3)
    P = torch.rand(20, 20, generator=gen, dtype=torch.float64)
    for density in (0.02, 0.1, 0.55, 1.0):
        S = T.sparsify(P, density=density)
        k = round(density * 400)
        assert int((S > 0).sum()) == k
        assert float(S[S > 0].min()) >= float(P[S == 0].max()) if k < 400 else torch.equal(S, P)
        assert torch.equal(S[S > 0], P[S > 0])


# --- claims ------------------------------------------------------------------------------------------

def _top_mass(P, frac=0.02):
    v = P.reshape(-1).sort(descending=True).values
    return float(v[:round(frac * v.numel())].sum() / v.sum())


@pytest.mark.parametrize("eta, mass", [(1200.0, 0.64), (300.0, 0.39)])
def test_after_twenty_sweeps_two_percent_of_the_plan_holds_most_of_its_mass(prob, eta, mass):
    P = T.sinkhorn(prob.C, prob.r, prob.c, eta=eta, steps=20, tol=0.0).plan
    assert _top_mass(P) == pytest.approx(mass, abs=0.015)


@pytest.mark.slow
def test_sns_needs_ten_times_fewer_iterations_at_eta_1200(prob):
    s = T.sinkhorn(prob.C, prob.r, prob.c, eta=1200.0, steps=2000)
    d = T.sns(prob.C, prob.r, prob.c, eta=1200.0)
    q = T.sns(prob.C, prob.r, prob.c, eta=1200.0, density=0.1, steps=150)
    assert s.converged and d.converged and q.converged
    assert s.iterations >= 10 * d.iterations
    assert _band(s.iterations, 1642) and _band(d.iterations, 32) and _band(q.iterations, 99)
    assert s.iterations / q.iterations > 10  # 16.6x measured


def _newton_matrix(P, Ps):
    return torch.cat([torch.cat([torch.diag(P.sum(1)), Ps], 1), torch.cat([Ps.T, torch.diag(P.sum(0))], 1)])


@pytest.mark.slow
def test_five_percent_density_crawls(prob):
    q = T.sns(prob.C, prob.r, prob.c, eta=1200.0, density=0.05, steps=300)
    assert not q.converged and 1e-5 < float(q.errors[-1]) < 1e-4
    assert bool((q.step_sizes[21:] == 1.0).all())  # full steps are accepted: slow, not stuck
    factor = float(q.errors[-1] / q.errors[-101]) ** (1 / 100)  # a linear rate, not a floor
    assert 0.95 < factor < 0.99
    # the rate is 1 - the smallest eigenvalue of M_rho^-1 M on M's range (a dense solve as the oracle)
    M = _newton_matrix(q.plan, q.plan)
    Mr = _newton_matrix(q.plan, T.sparsify(q.plan, density=0.05))
    lam = torch.linalg.eigvals(torch.linalg.solve(Mr, M)).real.sort().values
    assert abs(float(lam[0])) < 1e-10  # the gauge
    assert float(1 - lam[1]) == pytest.approx(factor, abs=0.003)  # 0.970 measured


def test_the_lead_at_eta_300(prob):
    s = T.sinkhorn(prob.C, prob.r, prob.c, eta=300.0, steps=600)
    d = T.sns(prob.C, prob.r, prob.c, eta=300.0)
    assert _band(s.iterations, 411) and _band(d.iterations, 26)
    assert s.iterations >= 10 * d.iterations


@pytest.mark.slow
def test_the_sparse_lead_at_eta_300(prob):
    q = T.sns(prob.C, prob.r, prob.c, eta=300.0, density=0.1, steps=200)
    assert q.converged and _band(q.iterations, 150)


def test_the_lead_fades_at_eta_50(prob):
    s = T.sinkhorn(prob.C, prob.r, prob.c, eta=50.0, steps=200)
    d = T.sns(prob.C, prob.r, prob.c, eta=50.0)
    q = T.sns(prob.C, prob.r, prob.c, eta=50.0, density=0.1, steps=100)
    assert _band(s.iterations, 68) and _band(d.iterations, 22) and _band(q.iterations, 60)
    assert s.iterations / d.iterations < 4  # 3x, against 51x at eta = 1200
    assert q.iterations > 0.75 * s.iterations  # 10% density: hardly ahead of Sinkhorn


@pytest.mark.slow
def test_a_line_search_on_two_evaluations_of_f_stalls_at_eta_50(prob, monkeypatch):
    """The increase measured directly reaches 1e-8; the difference of two rounded values of f does not."""
    C, r, c = prob.C, prob.r, prob.c

    def difference_armijo(P, d, x, eta, start, slope):
        n = len(x)
        y = (torch.log(P[0]) + 1) / eta + C[0] - x[0]  # the y of the plan P with this x
        f0 = T.dual_potential(x, y, C, r, c, eta=eta)
        a = start
        for _ in range(40):
            if T.dual_potential(x + a * d[:n], y + a * d[n:], C, r, c, eta=eta) - f0 >= 1e-4 * a * slope:
                return a
            a /= 2
        return 0.0

    exact = T.sns(C, r, c, eta=50.0, density=0.1, steps=100)
    monkeypatch.setattr(T, "_armijo", difference_armijo)
    rounded = T.sns(C, r, c, eta=50.0, density=0.1, steps=100)
    assert exact.converged and _band(exact.iterations, 60)
    assert not rounded.converged and float(rounded.errors.min()) < 1e-7  # stuck just above 1e-8
    assert int((rounded.step_sizes[exact.iterations:] == 0).sum()) > 10  # every trial step rejected


@pytest.mark.parametrize("density", [1.0, 0.1, 0.05])
def test_every_step_raises_the_dual(prob, density):
    q = T.sns(prob.C, prob.r, prob.c, eta=1200.0, density=density, steps=30)
    rise = q.potential.diff()
    assert bool((rise >= -1e-15).all()), float(rise.min())
    assert float(q.potential[-1] - q.potential[0]) > 1e-3


@pytest.mark.slow
def test_plans_agree_with_pot_and_regot(prob):
    ot = pytest.importorskip("ot")
    regot = pytest.importorskip("regot")
    ours = T.sns(prob.C, prob.r, prob.c, eta=1200.0, tol=1e-11).plan.numpy()
    loose = T.sns(prob.C, prob.r, prob.c, eta=1200.0, tol=1e-8).plan.numpy()
    C, r, c = prob.C.numpy(), prob.r.numpy(), prob.c.numpy()
    pot = ot.sinkhorn(r, c, C, reg=1 / 1200, method="sinkhorn_log", numItermax=10000, stopThr=1e-12)
    newton = regot.sinkhorn_newton(np.asfortranarray(C), r, c, 1 / 1200, tol=1e-10, max_iter=100).plan
    assert np.abs(pot - ours).sum() < 1e-10  # 6.8e-11 measured
    assert np.abs(newton - ours).sum() < 1e-12  # 5e-15 measured
    assert 1e-9 < np.abs(pot - loose).sum() < 3e-9  # 1.9e-9 measured: the gap of stopping at 1e-8


def test_the_plan_is_exact_at_the_optimum(prob):
    """Newton's plan against an independent algorithm: Sinkhorn alone, solved to the same tolerance."""
    d = T.sns(prob.C, prob.r, prob.c, eta=300.0, tol=1e-12)
    s = T.sinkhorn(prob.C, prob.r, prob.c, eta=300.0, steps=3000, tol=1e-12)
    assert d.converged and s.converged and T.marginal_error(d.plan, prob.r, prob.c) < 1e-12
    assert float((d.plan - s.plan).abs().sum()) < 1e-10  # 3.4e-12 measured


def test_kept_mass_is_reported_at_the_switch(prob):
    q = T.sns(prob.C, prob.r, prob.c, eta=1200.0, density=0.02, steps=0)
    assert q.kept_mass == pytest.approx(0.64, abs=0.015) and q.iterations == 20 and q.sinkhorn_steps == 20
    assert np.isnan(T.sinkhorn(prob.C, prob.r, prob.c, eta=1200.0, steps=1).kept_mass)


def test_the_first_dense_newton_step_at_eta_1200_overshoots_the_marginals(prob):
    """Backtracked to 1/4, it raises the dual while the marginal error jumps from 0.48 to 7.1."""
    d = T.sns(prob.C, prob.r, prob.c, eta=1200.0)
    s = T.sinkhorn(prob.C, prob.r, prob.c, eta=1200.0, steps=40, tol=0.0)
    assert float(d.step_sizes[21]) == 0.25 and bool((d.step_sizes[22:d.iterations + 1] == 1.0).all())
    assert float(d.errors[20]) == pytest.approx(0.48, abs=0.01) and float(d.errors[21]) == pytest.approx(7.1, abs=0.1)
    assert float(d.potential[21]) > float(d.potential[20])  # the objective rose
    below = next(k for k in range(21, 40) if d.errors[k] < s.errors[k])
    assert below == 27  # 6 Newton steps after the overshoot, SNS is below Sinkhorn's error again


def test_five_sweeps_beat_twenty_with_a_dense_hessian(prob):
    """The explorer-free check of N_1: dense SNS after 5 sweeps needs 18 / 14 / 9 iterations, after 20 32 / 26 / 22."""
    for eta, five, twenty in ((1200.0, 18, 32), (300.0, 14, 26), (50.0, 9, 22)):
        a = T.sns(prob.C, prob.r, prob.c, eta=eta, sinkhorn_steps=5)
        b = T.sns(prob.C, prob.r, prob.c, eta=eta, sinkhorn_steps=20)
        assert a.converged and b.converged and a.iterations < b.iterations
        assert abs(a.iterations - five) <= 2 and abs(b.iterations - twenty) <= 2


@pytest.mark.slow
def test_five_sweeps_are_enough_at_ten_percent_density_too(prob):
    """SNS at 10% density after 5 sweeps needs 93 / 143 / 58 iterations, after 20 99 / 150 / 60: no more."""
    for eta, five, twenty in ((1200.0, 93, 99), (300.0, 143, 150), (50.0, 58, 60)):
        a = T.sns(prob.C, prob.r, prob.c, eta=eta, sinkhorn_steps=5, density=0.1)
        b = T.sns(prob.C, prob.r, prob.c, eta=eta, sinkhorn_steps=20, density=0.1)
        assert a.converged and b.converged and a.iterations <= b.iterations
        assert abs(a.iterations - five) <= 3 and abs(b.iterations - twenty) <= 3


def test_the_explorers_fixed_steps(prob):
    """At eta = 1200 a fixed step 1 diverges at the first Newton step (dense and 10%); a fixed step alpha
    converges linearly, by about 1 - alpha per step (eta = 300, dense); 1/2 throws the error above 1e4 first."""
    for density in (1.0, 0.1):
        q = T.sns(prob.C, prob.r, prob.c, eta=1200.0, density=density, steps=40, line_search=False)
        assert q.diverged and q.diverged_at == 21
    for alpha in (0.5, 0.25):  # at eta = 1200 neither reaches 1e-8 within 40 Newton steps
        q = T.sns(prob.C, prob.r, prob.c, eta=1200.0, steps=40, step=alpha, line_search=False)
        assert not q.diverged and not q.converged and float(q.errors[-1]) < 1e-2
        assert (float(q.errors[21]) > 1e4) == (alpha == 0.5)  # 1/2 overshoots above 1e4 first, 1/4 does not
    # at rho = 0.1 it is the other way round: 1/2 stays below 1e4 (peak about 4.2e3), while 1/4 stays above
    # 1e4 for 15 Newton steps and ends above the error it started from
    half, quarter = (T.sns(prob.C, prob.r, prob.c, eta=1200.0, density=0.1, steps=40, step=alpha, line_search=False)
                     for alpha in (0.5, 0.25))
    assert not half.diverged and 1e3 < float(half.errors[20:].max()) < 1e4
    assert not quarter.diverged and int((quarter.errors[20:] > 1e4).sum()) == 15
    assert float(quarter.errors[-1]) > float(quarter.errors[20])
    for alpha in (0.5, 0.25):
        q = T.sns(prob.C, prob.r, prob.c, eta=300.0, steps=40, step=alpha, line_search=False)
        e = q.errors[21:]
        k = int(torch.nonzero(e < 1e-6)[0]) if bool((e < 1e-6).any()) else len(e) - 1
        rate = float(e[k] / e[k - 10]) ** 0.1
        assert rate == pytest.approx(1 - alpha, abs=0.05), rate
        assert not q.diverged
        if alpha == 0.5:  # 52 iterations against the line search's 26
            assert q.converged and abs(q.iterations - 52) <= 3
        else:
            assert not q.converged


def test_a_fixed_newton_step_that_is_too_long_diverges_as_data(prob):
    q = T.sns(prob.C, prob.r, prob.c, eta=1200.0, steps=20, step=1e6, line_search=False)
    assert q.diverged and q.diverged_at > 20 and bool(torch.isfinite(q.errors).all())
    ok = T.sns(prob.C, prob.r, prob.c, eta=300.0, steps=30, line_search=False)
    assert not ok.diverged and ok.converged


def test_same_call_same_result(small):
    a = T.sns(small.C, small.r, small.c, eta=50.0, density=0.3, steps=10)
    b = T.sns(small.C, small.r, small.c, eta=50.0, density=0.3, steps=10)
    assert torch.equal(a.x, b.x) and torch.equal(a.errors, b.errors)


# --- bad input ---------------------------------------------------------------------------------------

def test_bad_input_names_the_argument(small):
    C, r, c = small.C, small.r, small.c
    for eta in (0.0, -1.0):
        with pytest.raises(ValueError, match="^eta:"):
            T.sinkhorn(C, r, c, eta=eta)
        with pytest.raises(ValueError, match="^eta:"):
            T.sns(C, r, c, eta=eta)
    bad = r.clone()
    bad[0] = 0.0
    with pytest.raises(ValueError, match="^r:.*positive"):
        T.sinkhorn(C, bad, c, eta=1.0)
    with pytest.raises(ValueError, match="^c:.*positive"):
        T.sns(C, r, -c, eta=1.0)
    with pytest.raises(ValueError, match="^c:.*mass"):
        T.sns(C, r, 2 * c, eta=1.0)
    with pytest.raises(ValueError, match="^density:"):
        T.sns(C, r, c, eta=1.0, density=1.5)
    with pytest.raises(ValueError, match="^density:"):
        T.sparsify(C, density=0.0)
    with pytest.raises(ValueError, match="^r:"):
        T.sinkhorn(C, r[:-1], c, eta=1.0)
    with pytest.raises(ValueError, match="^x:"):
        T.transport_plan(torch.zeros(3).double(), torch.zeros(8).double(), C, eta=1.0)
    with pytest.raises(ValueError, match="^step:"):
        T.sns(C, r, c, eta=1.0, step=0.0)
    with pytest.raises(ValueError, match="^n:"):
        T.ot_problem_1d(1)


def test_the_self_check_names_the_axis_on_a_shape_clash():
    def square_only(x, y, C, r, c, eta):  # right on a square C, the wrong axes elsewhere
        return _sweep(x, y, C, r, c, eta) if C.shape[0] == C.shape[1] else _axes(x, y, C, r, c, eta)

    res = check.sinkhorn_sweep(square_only)
    assert res.status == "wrong" and "4 sources and 7 targets" in res.message and "wrong axis" in res.message


# --- self-check cases (collected by tests/test_course.py) ---

from checkcases import Case  # noqa: E402


def _sweep(x, y, C, r, c, eta, scale=1.0):
    x = (torch.log(r) - torch.logsumexp(eta * (y[None, :] - C) - 1, dim=1)) / eta * scale
    y = (torch.log(c) - torch.logsumexp(eta * (x[:, None] - C) - 1, dim=0)) / eta
    return x, y


def _jacobi(x, y, C, r, c, eta):
    return ((torch.log(r) - torch.logsumexp(eta * (y[None, :] - C) - 1, dim=1)) / eta,
            (torch.log(c) - torch.logsumexp(eta * (x[:, None] - C) - 1, dim=0)) / eta)


def _no_minus_one(x, y, C, r, c, eta):
    x = (torch.log(r) - torch.logsumexp(eta * (y[None, :] - C), dim=1)) / eta
    return x, (torch.log(c) - torch.logsumexp(eta * (x[:, None] - C), dim=0)) / eta


def _naive(x, y, C, r, c, eta):  # exponentiates first: exp(-eta C) underflows at eta = 1200
    K = torch.exp(-eta * C - 1)
    x = torch.log(r / (K @ torch.exp(eta * y))) / eta
    return x, torch.log(c / (K.T @ torch.exp(eta * x))) / eta


def _old_y(x, y, C, r, c, eta):
    return (torch.log(r) - torch.logsumexp(eta * (y[None, :] - C) - 1, dim=1)) / eta, y


def _no_eta(x, y, C, r, c, eta):
    x = torch.log(r) - torch.logsumexp(eta * (y[None, :] - C) - 1, dim=1)
    return x, torch.log(c) - torch.logsumexp(eta * (x[:, None] - C) - 1, dim=0)


def _axes(x, y, C, r, c, eta):  # sums over the wrong axes: fine in shape on a square C only
    x = (torch.log(r) - torch.logsumexp(eta * (y[None, :] - C) - 1, dim=0)) / eta
    return x, (torch.log(c) - torch.logsumexp(eta * (x[:, None] - C) - 1, dim=1)) / eta


def _wrong_y(x, y, C, r, c, eta):
    x, y = _sweep(x, y, C, r, c, eta)
    return x, 2 * y


def _y_first(x, y, C, r, c, eta):
    y = (torch.log(c) - torch.logsumexp(eta * (x[:, None] - C) - 1, dim=0)) / eta
    return (torch.log(r) - torch.logsumexp(eta * (y[None, :] - C) - 1, dim=1)) / eta, y


_SWEEP_EXPECTED = [v for case in check.transport.SWEEP_CASES.values()
                   for v in torch.cat(list(T._sweep(*case))).tolist() if v != 0]

CHECK_CASES = {
    "sinkhorn_sweep": Case(
        _sweep, lambda *a: _sweep(*a, scale=1.01), (_jacobi, _no_minus_one, _y_first, _old_y, _no_eta, _axes),
        expected=_SWEEP_EXPECTED, inputs=[6, 5, 4, 7, 3, 40, 1200, -1, 0, 1], function=True,
        nan=lambda x, y, C, r, c, eta: (torch.full_like(x, float("nan")), torch.full_like(y, float("nan"))),
        hints=((_jacobi, "old x"), (_no_minus_one, "keep the -1"), (_y_first, "updated y first"),
               (_naive, "logsumexp"), (_old_y, "the y you were given"), (_no_eta, "divide by eta"),
               (_axes, "wrong axis"), (_wrong_y, "your x_new is right, your y_new is not"))),
}

DIVERGENCE_CASES = {
    # the Newton step's natural size is 1; a fixed step of m (no line search) throws the potentials away
    "transport.sns": (lambda m: T.sns(*_problem8(), eta=50.0, sinkhorn_steps=2, steps=5, step=m,
                                      line_search=False), "diverges", ()),
}
NOT_RUNNERS = {"transport.sinkhorn": "exact block maximisation: no step size, nothing to diverge"}


def _problem8():
    p = T.ot_problem_1d(8, device="cpu")
    return p.C, p.r, p.c


def _fuzz_problem() -> dict:
    p = T.ot_problem_1d(5, device="cpu")
    return dict(C=p.C, r=p.r, c=p.c)


_Z5 = dict(x=torch.zeros(5, dtype=torch.float64), y=torch.zeros(5, dtype=torch.float64))


def _fuzz_specs():
    from fuzz_specs import Spec

    return {
        "transport.ot_problem_1d": Spec(lambda: dict(n=5), skip="device"),  # device: any torch device name
        "transport.transport_plan": Spec(lambda: dict(**_Z5, C=_fuzz_problem()["C"], eta=2.0), positive="eta"),
        "transport.dual_potential": Spec(lambda: dict(**_Z5, **_fuzz_problem(), eta=2.0), positive="eta"),
        "transport.marginal_error": Spec(lambda: dict(P=torch.full((5, 5), 0.04, dtype=torch.float64),
                                                      r=_fuzz_problem()["r"], c=_fuzz_problem()["c"])),
        "transport.sparsify": Spec(lambda: dict(P=torch.full((5, 5), 0.04, dtype=torch.float64), density=0.5),
                                   positive="density"),
        "transport.sinkhorn": Spec(lambda: dict(**_fuzz_problem(), eta=2.0, steps=3, tol=1e-8), positive="eta",
                                   nonneg="tol", nan_fields="kept_mass"),
        "transport.sns": Spec(lambda: dict(**_fuzz_problem(), eta=2.0, sinkhorn_steps=1, density=0.5, steps=2,
                                           tol=1e-8, step=1.0, line_search=True), positive="eta density step",
                              nonneg="tol"),
        "check.transport.sinkhorn_sweep": Spec(lambda: dict(fn=_sweep), skip="fn"),
    }


FUZZ_SPECS = _fuzz_specs()
