"""Tests of lessons_lib.constrained_bilevel: the coupled toy, the proximal Lagrangian value function and LV-HBA.

Claims (Yao, Yu, Zeng & Zhang 2024, arXiv:2401.16164, on the toy with n = 10): with c_lower = 10, p = 0.3,
alpha = eta = 0.05, beta = 0.1, gamma1 = gamma2 = 1, 20k steps from the authors' start reach
||x - x*|| / ||x*|| < 1e-2 (measured 0.0040) and |lam + 1| < 0.01 (measured 0.0010); the error after 20k
steps falls monotonically over c_lower = 0.05, 0.2, 0.5, 2, 10 (measured 0.368, 0.157, 0.073, 0.020, 0.0040);
the lower-level gap against cvxpy is <= 1e-4 (measured 4.7e-5); only first-order oracles are called.
"""

from __future__ import annotations

import cvxpy as cp
import fuzz_specs
import numpy as np
import pytest
import torch
from checkcases import Case

from lessons_lib import check
from lessons_lib import constrained_bilevel as CB

SWEEP = [0.05, 0.2, 0.5, 2.0, 10.0]
MEASURED = [0.368, 0.157, 0.073, 0.020, 0.0040]  # error after 20k steps at each c_lower of SWEEP


def toy(n=10):
    return CB.coupled_toy(n, device="cpu")


def feasible(problem, runs, seed):
    g = torch.Generator().manual_seed(seed)
    n = problem.n
    x, y = torch.randn(runs, n, generator=g, dtype=torch.float64), torch.randn(runs, 2 * n, generator=g,
                                                                               dtype=torch.float64)
    return problem.project(x, y)


@pytest.fixture(scope="module")
def sweep():
    """The c_lower sweep of the claims, one batched 20k-step run from the authors' start (about 3 s)."""
    return CB.lv_hba(toy(), steps=20_000, c=SWEEP, p=0.3, alpha=0.05, eta=0.05, beta=0.1, gamma1=1.0, gamma2=1.0,
                     record_every=1000)


# --- the toy -----------------------------------------------------------------------------------------------

def lower_level_cvxpy(x: np.ndarray) -> float:
    """min_theta f(x, theta) s.t. 1.x + 1.theta = 0, solved by cvxpy (CLARABEL)."""
    n = x.size
    theta = cp.Variable(2 * n)
    objective = 0.5 * cp.sum_squares(theta[:n]) - x @ theta[:n] + cp.sum(theta[n:])
    problem = cp.Problem(cp.Minimize(objective), [cp.sum(theta) == -x.sum()])
    problem.solve(solver=cp.CLARABEL)
    return float(problem.value)


def test_solution_solves_both_levels():
    P = toy(4)
    x, y, lam = P.solution()
    assert float(P.constraint(x, y).abs()) < 1e-12
    assert abs(float(CB.lower_gap(P, x, y))) < 1e-12  # y* is a lower-level solution at x*
    # KKT of the lower level with multiplier lam*: grad_y f + lam* grad_y g = 0
    assert torch.allclose(P.grad_lower(x, y)[1] + lam, torch.zeros(8, dtype=torch.float64), atol=1e-12)
    # upper level over the lower-level solution set: y1 = x + 1, 1.y2 = -2 1.x - n; F restricted to it, solved by
    # cvxpy, is minimised at x* and y2*
    n = 4
    xv, y2 = cp.Variable(n), cp.Variable(n)
    objective = 0.5 * cp.sum_squares(xv - y2) + 0.5 * cp.sum_squares(xv)
    cp.Problem(cp.Minimize(objective), [cp.sum(y2) == -2 * cp.sum(xv) - n]).solve(solver=cp.CLARABEL)
    assert np.allclose(xv.value, -0.3, atol=1e-6) and np.allclose(y2.value, -0.4, atol=1e-6)


def test_lower_gap_matches_cvxpy():
    P = toy(5)
    x, y = feasible(P, 3, seed=1)
    for i in range(3):
        want = float(P.lower(x[i], y[i])) - lower_level_cvxpy(x[i].numpy())
        assert float(CB.lower_gap(P, x[i], y[i])) == pytest.approx(want, abs=1e-6)


def test_projection_is_the_euclidean_one():
    P = toy(3)
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(4, 6, generator=g, dtype=torch.float64)
    px, py = P.project(x, y)
    assert float(P.constraint(px, py).abs().max()) < 1e-12
    shift = torch.cat([x - px, y - py], dim=-1)  # the move is along the normal 1 of the hyperplane
    assert torch.allclose(shift, shift[:, :1].expand_as(shift), atol=1e-12)
    assert torch.allclose(torch.cat(P.project(px, py), -1), torch.cat([px, py], -1), atol=1e-12)  # idempotent


# --- the value function ------------------------------------------------------------------------------------

@pytest.mark.parametrize("gammas", [(1.0, 1.0), (0.3, 4.0)])
def test_saddle_is_the_fixed_point_of_the_inner_step(gammas):
    """The dense solve and LV-HBA's own inner descent-ascent step, iterated, find the same saddle."""
    gamma1, gamma2 = gammas
    P = toy(3)
    x, y = feasible(P, 2, seed=3)
    z = torch.tensor([[0.4], [-1.2]], dtype=torch.float64)
    v = CB.value_function(P, x, y, z, gamma1=gamma1, gamma2=gamma2)
    theta, lam = torch.zeros_like(y), torch.zeros_like(z)
    for _ in range(4000):  # the inner step alone: alpha = beta = 0 leaves (x, y, z) where they are
        _, _, _, theta, lam = CB.lv_hba_step(P, (x, y, z, theta, lam), 0, alpha=0.0, eta=0.05, beta=0.0, c=1.0,
                                             p=0.0, gamma1=gamma1, gamma2=gamma2)
    assert torch.allclose(theta, v.theta, atol=1e-9) and torch.allclose(lam, v.lam, atol=1e-9)


def test_danskin_gradient_matches_finite_differences():
    P = toy(3)
    x, y = feasible(P, 1, seed=4)
    x, y, z = x[0], y[0], torch.tensor([0.7], dtype=torch.float64)
    v = CB.value_function(P, x, y, z, gamma1=0.8, gamma2=1.5)
    h = 1e-5
    for name, point, grad in (("x", x, v.grad_x), ("y", y, v.grad_y), ("z", z, v.grad_z)):
        for i in range(point.numel()):
            e = torch.zeros_like(point)
            e[i] = h
            args = {"x": x, "y": y, "z": z}
            plus = CB.value_function(P, **{**args, name: point + e}, gamma1=0.8, gamma2=1.5).value
            minus = CB.value_function(P, **{**args, name: point - e}, gamma1=0.8, gamma2=1.5).value
            fd = float(plus - minus) / (2 * h)
            assert fd == pytest.approx(float(grad[i]), abs=1e-6), (name, i)


def test_penalty_gap_is_nonnegative_and_zero_at_lower_level_solutions():
    """f - v_gamma >= 0 on the constraint, and 0 at a lower-level solution with z = its multiplier."""
    P = toy(4)
    x, y = feasible(P, 20, seed=5)
    z = torch.randn(20, 1, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    v = CB.value_function(P, x, y, z, gamma1=1.0, gamma2=1.0)
    assert bool((P.lower(x, y) - v.value >= -1e-12).all())
    xs, ys, lam = P.solution()
    at = CB.value_function(P, xs, ys, torch.tensor([lam], dtype=torch.float64), gamma1=1.0, gamma2=1.0)
    assert float(P.lower(xs, ys) - at.value) == pytest.approx(0.0, abs=1e-12)


# --- LV-HBA --------------------------------------------------------------------------------------------------

def test_claim_converges_with_the_published_settings(sweep):
    error, lam = float(sweep.error[-1, -1]), float(sweep.lam[-1])
    assert error < 1e-2  # measured 0.0040
    assert abs(lam + 1) < 0.01  # measured 0.0010
    assert not bool(sweep.diverged.any())


def test_claim_bias_falls_monotonically_with_the_penalty(sweep):
    final = sweep.error[-1]
    assert bool((final.diff() < 0).all())
    assert torch.allclose(final, torch.tensor(MEASURED, dtype=torch.float64), rtol=0.05)


def test_claim_lower_level_gap_against_cvxpy(sweep):
    P = toy()
    x, y = sweep.x[-1], sweep.y[-1]
    gap = float(P.lower(x, y)) - lower_level_cvxpy(x.numpy())
    assert -1e-7 <= gap <= 1e-4  # measured 4.7e-5


def test_claim_only_first_order_oracles():
    P = toy(4)
    run = CB.lv_hba(P, steps=50, tabulate=False)
    assert run.calls == {"first": 7 * 50, "second": 0}  # counted call by call
    # the replayed map extrapolates one instrumented step (7 calls) to the steps made: equal by construction
    assert CB.lv_hba(P, steps=50).calls == run.calls
    P.hvp_lower(*P.solution()[:2], torch.ones(8, dtype=torch.float64))  # the counter does see a Hessian product
    assert P.calls["second"] == 1


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_claim_large_penalty_is_slow_from_a_random_start(seed):
    """From N(0, 10^2) starts, c_lower = 10 is still far off after 20k steps, c_lower = 0.5 is not."""
    kw = dict(steps=20_000, c=[0.5, 10.0], p=0.3, record_every=20_000)
    authors = CB.lv_hba(toy(), **kw)
    random = CB.lv_hba(toy(), generator=seed, same_start=True, **kw)
    small, large = random.error[-1]
    assert float(small) == pytest.approx(float(authors.error[-1, 0]), rel=1e-3)  # bias dominates
    assert float(large) > 10 * float(authors.error[-1, 1])  # measured 0.11 against 0.004 for seed 0


def test_tabulated_map_replays_the_oracle_step():
    P = toy(3)
    kw = dict(steps=200, c=[0.3, 3.0], p=[0.5, 0.2], alpha=[0.05, 0.1], eta=0.07, beta=[0.1, 0.2],
              gamma1=[0.5, 2.0], gamma2=1.5, generator=7, record_every=50)
    a, b = CB.lv_hba(P, tabulate=True, **kw), CB.lv_hba(P, tabulate=False, **kw)
    for name in ("x", "y", "z", "lam", "theta", "error"):
        assert torch.allclose(getattr(a, name), getattr(b, name), atol=1e-10), name


def test_affine_map_is_exact():
    P = toy(2)
    A0, b0, A1, b1 = CB.step_as_affine_map(P, alpha=0.1, eta=0.05, beta=0.2, gamma1=0.7, gamma2=1.3)
    g = torch.Generator().manual_seed(8)
    s = torch.randn(3, 12, generator=g, dtype=torch.float64)
    k, c, p = 4, 2.0, 0.4
    want = torch.cat(CB.lv_hba_step(P, CB._unpack(s, 2), k, alpha=0.1, eta=0.05, beta=0.2, c=c, p=p, gamma1=0.7,
                                    gamma2=1.3), dim=-1)
    got = s @ A0[0] + b0[0] + (s @ A1[0] + b1[0]) / (c * (k + 1) ** p)
    assert torch.allclose(got, want, atol=1e-12)


def test_fixed_penalty_leaves_a_bias_that_growth_removes():
    """p = 0 keeps c_k = c: the error stalls; p = 0.5 keeps shrinking it (2k steps)."""
    run = CB.lv_hba(toy(4), steps=2000, c=1.0, p=[0.0, 0.5], record_every=1000)
    stalled, growing = run.error[-1]
    assert float(growing) < 0.5 * float(stalled)
    assert float(run.error[-1, 0]) == pytest.approx(float(run.error[-2, 0]), rel=0.05)


def test_same_seed_same_run_and_seeds_differ():
    P = toy(3)
    a, b = CB.lv_hba(P, steps=30, runs=2, generator=3), CB.lv_hba(P, steps=30, runs=2, generator=3)
    assert torch.equal(a.x, b.x) and torch.equal(a.error, b.error)
    assert not torch.equal(a.x[0], a.x[1])  # runs draw their own starts
    shared = CB.lv_hba(P, steps=30, runs=2, generator=3, same_start=True)
    assert torch.equal(shared.x[0], shared.x[1])
    assert not torch.equal(CB.lv_hba(P, steps=30, generator=4).x, CB.lv_hba(P, steps=30, generator=5).x)


def test_authors_start_and_zero_steps():
    """The authors' code projects x, then y, then theta, each with the others held fixed."""
    P = toy(3)
    run = CB.lv_hba(P, steps=0)
    assert torch.equal(run.x, torch.full((1, 3), -20.0, dtype=torch.float64))
    assert torch.equal(run.y, torch.full((1, 6), 10.0, dtype=torch.float64))
    assert torch.allclose(run.theta, torch.full((1, 6), 10.0, dtype=torch.float64), atol=1e-12)
    assert float(run.lam[0]) == 1.0 and float(run.z[0]) == -1.0
    assert float(P.constraint(run.x, run.y).abs()) < 1e-12
    assert float(run.error[0, 0]) == pytest.approx(197 / 3)
    assert run.calls == {"first": 0, "second": 0}


def _asymmetric_start(rms, seed):
    """(x*, y*) plus a perturbation whose coordinates sum to zero within x, within y1 and within y2."""
    P = toy()
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(3, 10, generator=g, dtype=torch.float64)
    v = v - v.mean(dim=1, keepdim=True)
    v = (v * rms / v.pow(2).mean().sqrt()).reshape(30)
    xs, ys, _ = P.solution()
    return xs + v[:10], ys + v[10:]


def test_claim_slowness_comes_from_the_non_symmetric_part():
    """At c_lower = 10 (20k steps) the authors' start, 66 away but only along blockwise-constant directions, ends
    at 0.004; a start 1 or 10 (RMS) away within the blocks ends 2x and 19x higher (measured 0.0088 and 0.078)."""
    P = toy()
    authors = CB.lv_hba(P, steps=0)
    x, y = zip(*[(authors.x[0], authors.y[0])] + [_asymmetric_start(r, seed=0) for r in (1.0, 10.0)])
    lam = torch.ones(3, 1, dtype=torch.float64)  # theta, lam and z as in the authors' start, for all three
    start = (torch.stack(x), torch.stack(y), -lam, torch.full((3, 20), 10.0, dtype=torch.float64), lam)
    run = CB.lv_hba(P, steps=20_000, c=10.0, p=0.3, start=start, record_every=20_000)
    first, last = run.error[0], run.error[-1]
    assert float(first[0]) > 1.5 * float(first[2])  # the authors' start is the farthest one (66 against 34)
    assert float(last[0]) < 1e-2  # yet it ends the closest
    assert float(last[1]) > 1.5 * float(last[0]) and float(last[2]) > 10 * float(last[0])


def test_script_settings_with_the_clip_reproduce_the_script_and_diverge_without_it():
    """n = 100, 1500 steps, c_k = 0.025 (k + 1)^0.3, alpha = 0.008, eta = 0.01, beta = 0.02, gamma = 10. The
    authors' script (SUSTech-Optimization/LV-HBA, Toy-example/LLC/LV-HBA.py), run as published, printed errors
    30.17 after one step, 0.1497 at their lowest, 146.7 at their highest and 118.65 at the end."""
    kw = dict(steps=1500, c=0.025, p=0.3, alpha=0.008, eta=0.01, beta=0.02, gamma1=10.0, gamma2=10.0)
    clipped = CB.lv_hba(toy(100), clip=1000.0, **kw)
    e = clipped.error[1:, 0]
    assert float(e[0]) == pytest.approx(30.168, abs=1e-3)
    assert float(e.min()) == pytest.approx(0.1497, abs=1e-3) and float(e.max()) == pytest.approx(146.74, abs=0.01)
    assert float(e[-1]) == pytest.approx(118.65, abs=0.01)
    assert float(clipped.lam_history.abs().max()) == 1000.0 and not bool(clipped.diverged)
    free = CB.lv_hba(toy(100), **kw)
    assert bool(free.diverged) and 1000 < int(free.diverged_at) < 1500
    lam = free.lam_history[:, 0]
    assert bool((lam.abs() > 1000).any()) and int((lam.abs() > 1000).nonzero()[0]) < 200  # long before the blow-up


def test_shared_step_maps_replay_the_oracle_step():
    """Runs in blocks that share (alpha, eta, beta, gamma1, gamma2) use one map per block, as the notebook's
    sweep and explorer do; they must agree with the oracle loop, divergence flags included."""
    P = toy(10)
    alphas, gammas, cs, ps = [0.05, 0.2], [0.25, 1.0], [0.5, 5.0], [0.0, 0.3]
    grid = [(a, g1, c, p) for a in alphas for g1 in gammas for c in cs for p in ps]
    kw = dict(steps=600, alpha=[a for a, *_ in grid], eta=[a for a, *_ in grid], gamma1=[g[1] for g in grid],
              c=[g[2] for g in grid], p=[g[3] for g in grid], generator=1, same_start=True, record_every=100)
    assert CB._blocks({k: torch.tensor(v, dtype=torch.float64) if isinstance(v, list) else v
                       for k, v in dict(alpha=kw["alpha"], eta=kw["eta"], beta=0.1, gamma1=kw["gamma1"],
                                        gamma2=1.0).items()}, len(grid), "cpu") == 4
    a, b = CB.lv_hba(P, tabulate=True, **kw), CB.lv_hba(P, tabulate=False, **kw)
    assert a.diverged.tolist() == b.diverged.tolist() and 0 < int(a.diverged.sum()) < len(grid)
    assert a.diverged_at.tolist() == b.diverged_at.tolist()
    ok = ~a.diverged
    assert torch.allclose(a.x[ok], b.x[ok], atol=1e-10) and torch.allclose(a.error[:, ok], b.error[:, ok], atol=1e-10)


def test_large_step_diverges_as_data():
    run = CB.lv_hba(toy(3), steps=200, alpha=[0.05, 0.5], eta=[0.05, 0.5])
    assert run.diverged.tolist() == [False, True] and int(run.diverged_at[1]) > 0
    assert bool(torch.isfinite(run.error).all())


@pytest.mark.parametrize("tabulate", [True, False])
def test_float32_toy_stays_float32(tabulate):
    P = CB.coupled_toy(4, dtype=torch.float32, device="cpu")
    run = CB.lv_hba(P, steps=50, c=[0.5, 10.0], alpha=[0.05, 0.1], tabulate=tabulate, record_every=50)
    assert run.x.dtype == run.y.dtype == run.lam.dtype == torch.float32


def test_penalty_schedule():
    assert torch.allclose(CB.penalty(torch.arange(3), c=2.0, p=0.5),
                          2.0 * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64).sqrt())


def test_bad_input():
    P = toy(3)
    x, y = feasible(P, 1, seed=0)
    with pytest.raises(ValueError, match="^n:"):
        CB.coupled_toy(0)
    with pytest.raises(ValueError, match="^dtype:"):
        CB.coupled_toy(3, dtype=torch.int64)
    with pytest.raises(ValueError, match="^problem:"):
        CB.lv_hba(None, steps=3)
    with pytest.raises(ValueError, match="^c:"):
        CB.lv_hba(P, steps=3, c=0.0)
    with pytest.raises(ValueError, match="^p:"):
        CB.lv_hba(P, steps=3, p=-0.1)
    with pytest.raises(ValueError, match="^alpha:"):
        CB.lv_hba(P, steps=3, alpha=[0.1, -0.1])
    with pytest.raises(ValueError, match="^runs:"):
        CB.lv_hba(P, steps=3, c=[1.0, 2.0], alpha=[0.1, 0.1, 0.1])
    with pytest.raises(ValueError, match="^gamma1:"):
        CB.value_function(P, x, y, torch.zeros(1, 1), gamma1=0.0)
    with pytest.raises(ValueError, match="^y:"):
        CB.value_function(P, x, y[:, :3], torch.zeros(1, 1))
    with pytest.raises(ValueError, match="^z:"):
        CB.value_function(P, x, y, torch.zeros(1, 2))
    with pytest.raises(ValueError, match="^y:"):
        CB.lower_gap(P, x, y + 1.0)  # off the constraint
    with pytest.raises(ValueError, match="^k:"):
        CB.penalty(-1, c=1.0, p=0.3)
    with pytest.raises(ValueError, match="^clip:"):
        CB.lv_hba(P, steps=3, clip=0.0)
    start = (x[0], y[0], torch.zeros(1), torch.zeros(6), torch.zeros(1))
    with pytest.raises(ValueError, match="^start:"):
        CB.lv_hba(P, steps=3, start=start, generator=0)
    with pytest.raises(ValueError, match="^start:"):
        CB.lv_hba(P, steps=3, start=start[:4])
    with pytest.raises(ValueError, match="^start:"):
        CB.lv_hba(P, steps=3, start=(x[0], y[0, :4]) + start[2:])


def test_self_check_names_the_penalty_for_an_off_by_one_in_k():
    """c k^p (k from 0) makes c_0 = 0 and the step infinite; c (k + 2)^p is close. Both messages point at c_k."""
    def shifted(shift):
        def fn(problem, state, k, *, c, p, **kw):  # the right step with c (k + shift)^p in place of c (k + 1)^p
            return CB.lv_hba_step(problem, state, k, c=c * (k + shift) ** p / (k + 1) ** p, p=p, **kw)
        return fn
    for shift, status in ((0, "wrong"), (2, "close")):
        result = check.constrained_bilevel.one_loop_step(shifted(shift))
        assert result.status == status and "c_k" in result.message, result.message


def _inner_radius(n, eta, gamma1):
    """Spectral radius of the inner descent-ascent step on (theta, lam) alone (alpha = beta = 0)."""
    P = toy(n)
    A0 = CB.step_as_affine_map(P, alpha=0.0, eta=eta, beta=0.0, gamma1=gamma1, gamma2=1.0)[0][0]
    idx = list(range(3 * n + 1, 5 * n + 2))
    return float(torch.linalg.eigvals(A0[idx][:, idx]).abs().max())


def test_small_gamma1_damps_the_inner_descent_ascent():
    """The explorer's observation: at eta = 0.2 and n = 10 only gamma1 = 0.25 is stable. The inner step alone
    shows it (measured radii 0.94, 1.16, 1.21 for gamma1 = 0.25, 1, 4), and the constraint's gradient, of norm
    sqrt(2n), sets the rotation: at n = 3 gamma1 = 1 is stable (0.89)."""
    radii = [_inner_radius(10, 0.2, g1) for g1 in (0.25, 1.0, 4.0)]
    assert radii[0] < 1 < radii[1] < radii[2]
    assert _inner_radius(3, 0.2, 1.0) < 1
    assert _inner_radius(10, 0.1, 4.0) > 1 > _inner_radius(10, 0.1, 1.0)


def _slow_rates(alpha, *, eta=0.05, c=1e5):
    """Rates (1 - eigenvalue) c / alpha of the one-step affine map at penalty c that are below 100, sorted: the
    modes that move along the lower-level solution set, in units of alpha / c."""
    A0, _, A1, _ = CB.step_as_affine_map(toy(), alpha=alpha, eta=eta, beta=0.1, gamma1=1.0, gamma2=1.0)
    rate = (1 - torch.linalg.eigvals(A0[0] + A1[0] / c)) * c / alpha
    slow = rate[rate.abs() < 100]
    assert float(slow.imag.abs().max()) < 1e-6
    return torch.sort(slow.real).values.numpy()


def test_slow_rates_of_the_step_tend_to_the_curvatures_of_F_along_the_set():
    """The notebook's rates: along the lower-level solution set (19 directions at n = 10) the step contracts by
    1 - rate * alpha / c_k. As alpha / eta -> 0 the rates tend to the curvatures of F restricted to the set
    (1 - 1/sqrt2 nine times, 5/3 once, 1 + 1/sqrt2 nine times); at alpha = eta = 0.05, where theta lags, they are
    larger (measured 0.868 within the blocks, 7.69 blockwise constant) but the within-block mode stays the
    slowest by a wide margin. The two slowest rates are first order in 1 / c: c = 1e4 and 1e6 agree."""
    limit = _slow_rates(5e-5)
    expected = np.array([1 - 2**-0.5] * 9 + [5 / 3] + [1 + 2**-0.5] * 9)
    assert limit.shape == (19,)
    np.testing.assert_allclose(limit, expected, rtol=2e-3)
    fast = _slow_rates(0.05)
    assert fast.shape == (19,)
    for c in (1e4, 1e6):  # the two slowest rates; the third (21 at c = 1e5) sits near a fast mode and moves more
        np.testing.assert_allclose(fast[:10], _slow_rates(0.05, c=c)[:10], rtol=1e-3)
    assert np.ptp(fast[:9]) < 1e-6 and fast[0] > limit[0]  # nine equal within-block rates, above the curvature
    assert 0.5 < fast[0] < 1.5 and fast[9] > 5 * fast[0]  # the within-block mode is the slow one
    S = float((0.05 / CB.penalty(torch.arange(20_000), c=10.0, p=0.3)).sum())
    assert 1e-3 < np.exp(-fast[0] * S) < 1e-2 < np.exp(-limit[0] * S)  # the lag matters over a 20k-step run


# --- the self-check's cases (run by tests/test_course.py) ---------------------------------------------

def _step(problem, state, k, **kw):
    return CB.lv_hba_step(problem, state, k, **kw)


def _scaled(problem, state, k, **kw):  # a step 1 % too long on (x, y): "close"
    new = CB.lv_hba_step(problem, state, k, **kw)
    x, y = state[0], state[1]
    return (x + 1.01 * (new[0] - x), y + 1.01 * (new[1] - y)) + tuple(new[2:])


def _mistake(**flag):
    return lambda problem, state, k, **kw: check.constrained_bilevel._variant(problem, state, k, **kw, **flag)


def _nan(problem, state, k, **kw):
    return tuple(torch.full_like(s, float("nan")) for s in state)


def _expected():
    values = []
    for c in check.constrained_bilevel.CASES.values():
        values += check.constrained_bilevel._reference(**c).flatten().tolist()
    return values


CHECK_CASES = {
    "one_loop_step": Case(
        _step, _scaled, (_mistake(descend=True), _mistake(old=True)), expected=_expected(),
        inputs=[3, 0, 10, 0.3, 0.05, 0.1, 1, 4, 2, 99, 0.2, 0.5, 0.5, 2], function=True, nan=_nan,
        hints=((_mistake(descend=True), "ascent step"), (_mistake(old=True), "before this iteration"),
               (_mistake(flat=True), "(k + 1)^p"), (_mistake(times=True), "divided by c_k"),
               (_mistake(unprojected=True), "problem.project"), (_mistake(z_away=True), "z follows"))),
}


# --- cases run by tests/test_divergence.py ----------------------------------------------------------

def _lv_hba(m):  # alpha = eta = 0.2 already diverges with gamma1 = 1; m = 10 puts both at 0.5
    return CB.lv_hba(toy(3), steps=150, alpha=m * 0.05, eta=m * 0.05, record_every=50)


DIVERGENCE_CASES = {"constrained_bilevel.lv_hba": (_lv_hba, "diverges", ())}
NOT_RUNNERS = {}


# --- baseline calls for tests/test_fuzz.py ------------------------------------------------------------

def _toy():
    return CB.coupled_toy(2, device="cpu")


def _state():
    return tuple(fuzz_specs.randn(1, d, seed=i) for i, d in enumerate((2, 4, 1, 4, 1)))


FUZZ_OPT_OUT = {f"constrained_bilevel.CoupledToy.{name}": "a closed-form oracle of the toy, evaluated inside the "
                "loop on whatever the state holds (a NaN check there would turn divergence into an exception); "
                "the public functions that hand it points check them"
                for name in ("constraint", "grad_constraint", "grad_lower", "grad_upper", "hvp_lower", "lower",
                             "project", "upper")}
FUZZ_OPT_OUT["constrained_bilevel.CoupledToy.solution"] = "takes no argument: the toy's closed-form solution"
FUZZ_OPT_OUT["constrained_bilevel.CoupledToy.reset_calls"] = "takes no argument: resets the call counters"
FUZZ_OPT_OUT["constrained_bilevel.lv_hba_step"] = ("the unchecked step the loop calls every iteration (checks there "
                                                   "would cost a sync per step); lv_hba checks its arguments")
FUZZ_OPT_OUT["constrained_bilevel.step_as_affine_map"] = ("called by lv_hba on arguments it has checked; it "
                                                          "applies the unchecked step to unit states")

FUZZ_SPECS = {
    # the learner's function is probed by tests/test_course.py's odd-input test, as for check.bilevel
    "check.constrained_bilevel.one_loop_step": fuzz_specs.Spec(lambda: dict(fn=_step), skip="fn"),
    "constrained_bilevel.coupled_toy": fuzz_specs.Spec(lambda: dict(n=3)),
    "constrained_bilevel.value_function": fuzz_specs.Spec(
        lambda: dict(problem=_toy(), x=fuzz_specs.randn(2), y=fuzz_specs.randn(4, seed=1),
                     z=fuzz_specs.randn(1, seed=2), gamma1=1.0, gamma2=1.0), positive="gamma1 gamma2"),
    "constrained_bilevel.penalty": fuzz_specs.Spec(lambda: dict(k=3, c=1.0, p=0.3), positive="c", nonneg="p",
                                                   skip="k"),  # k: an int or a tensor of step counts
    "constrained_bilevel.lv_hba": fuzz_specs.Spec(
        lambda: dict(problem=_toy(), steps=3, c=1.0, p=0.3, alpha=0.05, eta=0.05, beta=0.1, gamma1=1.0, gamma2=1.0,
                     generator=0, spread=1.0, record_every=1),
        positive="c alpha eta beta gamma1 gamma2 spread", nonneg="p"),
    "constrained_bilevel.lower_gap": fuzz_specs.Spec(
        lambda: dict(problem=_toy(), x=fuzz_specs.t(0.1, -0.2), y=fuzz_specs.t(0.3, 0.1, -0.5, 0.2))),
}
