"""Tests of lessons_lib.blockwise_bilevel: the hyper-cleaning toy's oracles, the MSVR update and its weight, the
tracking demo and BSVRB's run.

Measured (single thread, under load on 2 shared cores): tracking m = 50 blocks with I = 5, noise 0.1, 4000 steps,
seeds 0-2, mean error over the second half: alpha = 0.1: moving average (gamma = 0) 1.60 / 1.74 / 1.54 against the
code's theory weight 0.56 / 0.62 / 0.56 (2.8-2.9x lower); alpha = 0.9: 0.40 / 0.44 / 0.38 against 2.35 / 2.67 / 2.25
(5.9-6.1x higher). BSVRB (m = 20, d = 10, n = 200, I = 5, B = 32, eta = 100, 400 iterations, task seeds = run seeds
0-2): ||grad F|| falls 31x / 36x / 44x (start over last record), 19x / 34x / 51x (start over the mean of the last 5
records, iterations 320-400); one run takes about 1 s. The drift-unbiased weight m/I - alpha (9.9, 9.1) tracks
with errors 0.557 / 0.614 / 0.552 at alpha = 0.1 and 0.302 / 0.331 / 0.295 at alpha = 0.9; without noise the theory
rule's error at alpha = 0.9 is 2.35 / 2.67 / 2.24 (unchanged).
"""

from __future__ import annotations

import math

import fuzz_specs
import pytest
import torch
from checkcases import Case

from lessons_lib import blockwise_bilevel as BB
from lessons_lib import check


def tasks(seed: int = 0, **kw) -> BB.LogisticTasks:
    return BB.weighted_logistic_tasks(20, dim=10, n_train=200, n_val=200, generator=seed, device="cpu", **kw)


def small(seed: int = 0, **kw) -> BB.LogisticTasks:
    return BB.weighted_logistic_tasks(4, dim=3, n_train=12, n_val=10, generator=seed, device="cpu", **kw)


# --- the toy's oracles -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1])
def test_hypergradient_matches_finite_differences_of_F(seed):
    P = tasks(seed)
    p = 0.5 * torch.randn(200, generator=torch.Generator().manual_seed(seed + 10), dtype=torch.float64)
    g = P.hypergradient(p)
    eps = 1e-5
    for j in (0, 37, 101, 199):
        e = torch.zeros(200, dtype=torch.float64)
        e[j] = eps
        fd = (P.F(p + e) - P.F(p - e)) / (2 * eps)
        assert abs(float(fd - g[j])) < 1e-6 * float(g.abs().max()), j


def test_sampled_oracles_match_autograd_and_the_lower_solution_is_stationary():
    P = small(3)
    m, n, n_val, d = P.sizes
    gen = torch.Generator().manual_seed(0)
    p, w = torch.randn(n, generator=gen, dtype=torch.float64), torch.randn(m, d, generator=gen, dtype=torch.float64)
    tasks_, rows = torch.arange(m), torch.randint(n, (m, 5), generator=gen)

    def g_of(p, w):  # sum over tasks of g_i on the sampled rows
        x, y, s = P.X_train[rows], P.y_train[rows], P.s[:, None]
        z = s * y * torch.einsum("kbd,kd->kb", x, w)
        return (torch.sigmoid(p[rows]) * torch.nn.functional.softplus(-z)).mean(1).sum() + 0.5 * P.lam * (w**2).sum()

    w_req = w.clone().requires_grad_(True)
    (grad_w,) = torch.autograd.grad(g_of(p, w_req), w_req)
    assert torch.allclose(P.lower_grad(p, w, tasks_, rows), grad_w, atol=1e-12)
    hess = torch.autograd.functional.hessian(lambda w_: g_of(p, w_), w)  # (m, d, m, d), block diagonal
    blocks = torch.stack([hess[i, :, i, :] for i in range(m)])
    assert torch.allclose(P.lower_hessian(p, w, tasks_, rows), blocks, atol=1e-12)
    v = torch.randn(m, d, generator=gen, dtype=torch.float64)
    p_ = p.clone().requires_grad_(True)
    w_ = w.clone().requires_grad_(True)
    (gw,) = torch.autograd.grad(g_of(p_, w_), w_, create_graph=True)
    (cross,) = torch.autograd.grad((gw * v).sum(), p_)
    assert torch.allclose(P.cross_times(p, w, tasks_, rows, v), cross, atol=1e-12)
    w_star = P.lower_solution(p)
    assert float(P.lower_grad(p, w_star, tasks_, P._all(m, n)[1]).norm()) < 1e-10


def test_toy_has_the_asked_flips_scalings_and_alike_validation_labels():
    P = tasks(0)
    assert int(P.flipped.sum()) == 40
    assert float(P.s.min()) == pytest.approx(0.5) and float(P.s.max()) == pytest.approx(2.0)
    assert bool((P.y_val == P.y_val[0]).all())  # shift = 0: every task judges by the same labels
    assert not bool((tasks(0, shift=2.0).y_val == P.y_val[0]).all())


# --- the MSVR update and its weight --------------------------------------------------------------------------------

def test_storm_weight_keeps_an_exact_estimate_exact():
    """With gamma = 1 - alpha, u = h(old) exactly gives u = h(new) exactly, whatever alpha."""
    gen = torch.Generator().manual_seed(1)
    old, new = torch.randn(6, 4, generator=gen, dtype=torch.float64), torch.randn(6, 4, generator=gen,
                                                                                  dtype=torch.float64)
    for alpha in (0.1, 0.5, 0.9):
        out = BB.msvr_update(old, new, old, alpha=alpha, gamma=1 - alpha)
        assert torch.allclose(out, new, rtol=0, atol=1e-14)
    # the moving average (gamma = 0) does not
    assert float((BB.msvr_update(old, new, old, alpha=0.5, gamma=0.0) - new).abs().max()) > 0.1


def test_msvr_update_is_the_written_formula():
    u, hn, ho = (torch.full((2,), v, dtype=torch.float64) for v in (1.0, 3.0, 2.0))
    want = torch.full((2,), 0.75 + 4.25 * 3 - 8, dtype=torch.float64)
    assert torch.allclose(BB.msvr_update(u, hn, ho, alpha=0.25, gamma=4.0), want)


def test_msvr_gamma_is_the_codes_rule():
    assert BB.msvr_gamma(20, 20, 0.9) == 0.0  # I = m: a moving average, not STORM's 1 - alpha = 0.1
    assert BB.msvr_gamma(50, 5, 0.1) == pytest.approx(45 / (5 * 0.9))
    assert BB.msvr_gamma(50, 5, 1.0) == 0.0


# --- the claims ------------------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_correction_cuts_tracking_error_at_small_alpha_and_over_corrects_the_drift_at_large_alpha(seed):
    alphas = [0.1, 0.1, 0.9, 0.9, 0.9]
    gammas = [0.0, BB.msvr_gamma(50, 5, 0.1), 0.0, BB.msvr_gamma(50, 5, 0.9), 50 / 5 - 0.9]
    r = BB.tracking_demo(50, 5, alpha=alphas, gamma=gammas, steps=4000, noise=0.1, generator=seed)
    ema_small, theory_small, ema_large, theory_large, unbiased_large = r.error[2000:].mean(0).tolist()
    assert ema_small / theory_small >= 2.0, (ema_small, theory_small)  # measured 2.8-2.9x
    assert theory_large / ema_large >= 3.0, (theory_large, ema_large)  # measured 5.9-6.1x
    # the drift-unbiased weight m/I - alpha of the exercise beats both at alpha = 0.9
    assert unbiased_large < ema_large and unbiased_large < theory_large / 3, (unbiased_large, ema_large)
    # over-correction of the drift, not amplified noise: the excess is the same without noise
    quiet = BB.tracking_demo(50, 5, alpha=[0.9], gamma=[gammas[3]], steps=4000, noise=0.0, generator=seed)
    assert float(quiet.error[2000:].mean()) == pytest.approx(theory_large, rel=0.1)
    # at I = 1 (gaps of about 50 steps) even the drift-unbiased weight loses to the moving average (3.2 against 2.6)
    one = BB.tracking_demo(50, 1, alpha=[0.1, 0.1], gamma=[0.0, 50 - 0.1], steps=4000, noise=0.1, generator=seed)
    ema_one, unbiased_one = one.error[2000:].mean(0).tolist()
    assert unbiased_one > ema_one, (unbiased_one, ema_one)


def test_tracking_starts_exact_and_a_batch_is_the_runs_one_by_one():
    r = BB.tracking_demo(10, 2, alpha=[0.1, 0.9], gamma=[1.0, 0.0], steps=30, generator=4)
    assert r.error.shape == (31, 2) and float(r.error[0].abs().max()) == 0.0
    one = BB.tracking_demo(10, 2, alpha=0.9, gamma=0.0, steps=30, generator=4)
    assert one.error.shape == (31,) and torch.allclose(one.error, r.error[:, 1])
    # with I = m, no noise and gamma = 1 - alpha the estimate stays exact
    exact = BB.tracking_demo(10, 10, alpha=0.3, gamma=0.7, steps=50, noise=0.0, generator=4)
    assert float(exact.error.max()) < 1e-12


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bsvrb_cuts_the_gradient_norm_tenfold_in_400_iterations(seed):
    r = BB.bsvrb(tasks(seed), iters=400, I=5, B=32, eta=100.0, generator=seed, record_every=20)
    assert not bool(r.diverged)
    assert float(r.grad_norm[0] / r.grad_norm[-5:].mean()) >= 10.0  # measured 19x, 34x, 51x


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_on_alike_tasks_more_tasks_per_iteration_lower_F_but_not_the_fall_of_the_gradient(seed):
    """Measured F after 400 iterations, I = 1 / 20: 0.252 / 0.191, 0.255 / 0.189, 0.237 / 0.176; the falls of
    ||grad F|| (start over the mean of the last 5 records) 26 / 39, 40 / 51, 187 / 48: no consistent order."""
    P = tasks(seed)
    one, all_ = (BB.bsvrb(P, iters=400, I=k, B=32, eta=100.0, generator=seed, record_every=20) for k in (1, 20))
    assert float(one.F[-1] - all_.F[-1]) >= 0.03
    falls = [float(r.grad_norm[0] / r.grad_norm[-5:].mean()) for r in (one, all_)]
    assert max(falls) / min(falls) < 5.0 and min(falls) >= 10.0


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_on_heterogeneous_tasks_twenty_tasks_per_iteration_reach_a_lower_F_without_saturating(seed):
    """shift = 0.5, s in [0.5, 2], eta = 100 (task seed 0, run seeds 0, 1), F(0) = 0.597: F ends at 0.589 / 0.554
    and 0.581 / 0.553 for I = 1 / 20, with 93 % / 0 % and 90 % / 0 % of |p_j| > 5 (the fall of ||grad F|| is
    larger for I = 1, 42x / 15x and 30x / 25x: saturation, not progress)."""
    P = tasks(0, shift=0.5)
    one, all_ = (BB.bsvrb(P, iters=400, I=k, B=32, eta=100.0, generator=seed, record_every=100) for k in (1, 20))
    assert float(one.F[-1] - all_.F[-1]) >= 0.015
    assert float((one.p.abs() > 5).float().mean()) > 0.5 > 0.05 > float((all_.p.abs() > 5).float().mean())
    # at I = 1's budget of sampled points (20 iterations of I = 20) the two are level:
    # 0.577 / 0.592 against 0.589 / 0.581
    level = BB.bsvrb(P, iters=20, I=20, B=32, eta=100.0, generator=seed, record_every=20)
    assert abs(float(level.F[-1] - one.F[-1])) < 0.03, (float(level.F[-1]), float(one.F[-1]))


@pytest.mark.slow
def test_on_much_more_spread_out_tasks_every_run_saturates_and_stays_above_ln2():
    """shift = 2, s in [0.1, 10], eta = 400 (run seeds 0, 1; I = 1, 5, 20): F(0) = 0.743 > ln 2, and every run ends
    with F in 0.71-0.78 and 99-100 % of |p_j| > 5, the inconclusive setting the chapter reports."""
    P = tasks(0, shift=2.0, s_range=(0.1, 10.0))
    for seed in (0, 1):
        for k in (1, 5, 20):
            r = BB.bsvrb(P, iters=400, I=k, B=32, eta=400.0, generator=seed, record_every=100)
            assert float(r.F[0]) > math.log(2) and 0.69 < float(r.F[-1]) < 0.8, (seed, k, r.F)
            assert float((r.p.abs() > 5).float().mean()) > 0.95, (seed, k)


@pytest.mark.slow
def test_bsvrb_lowers_the_flipped_weights_and_a_huge_step_saturates_them_without_diverging():
    """I = 5, eta = 100, 400 iterations, seeds 0, 1: mean sigma(p) flipped / clean 0.28 / 0.92 and 0.09 / 0.91,
    17 % and 17 % of |p_j| > 5. Explorer 2 (100 iterations, lam = 0.01): eta = 6400 ends near F = 0.2."""
    for seed in (0, 1):
        P = tasks(seed)
        r = BB.bsvrb(P, iters=400, I=5, B=32, eta=100.0, generator=seed, record_every=50)
        weight = torch.sigmoid(r.p)
        assert float(weight[P.flipped].mean()) < float(weight[~P.flipped].mean()) - 0.4
        assert 0.1 < float((r.p.abs() > 5).float().mean()) < 0.25
    r = BB.bsvrb(tasks(0), iters=100, I=5, B=32, eta=6400.0, generator=0, record_every=10)
    assert not bool(r.diverged) and 0.15 < float(r.F[-1]) < 0.25
    assert float((r.p.abs() > 5).float().mean()) > 0.5


def test_msvr_step_updates_the_sampled_rows_only_and_is_the_step_bsvrb_takes():
    gen = torch.Generator().manual_seed(5)
    u = torch.randn(7, 3, 3, generator=gen, dtype=torch.float64)
    blocks = torch.tensor([5, 0, 2])
    hn, ho = torch.randn(3, 3, 3, generator=gen, dtype=torch.float64), torch.randn(3, 3, 3, generator=gen,
                                                                                     dtype=torch.float64)
    before = u.clone()
    out = BB.msvr_step(u, blocks, hn, ho, alpha=0.3, gamma=4.0)
    assert torch.equal(u, before)  # not modified in place
    assert torch.allclose(out[blocks], BB.msvr_update(u[blocks], hn, ho, alpha=0.3, gamma=4.0), rtol=0, atol=1e-14)
    rest = torch.tensor([1, 3, 4, 6])
    assert torch.equal(out[rest], u[rest])
    with pytest.raises(ValueError, match="^blocks:"):
        BB.msvr_step(u, torch.tensor([1, 1, 2]), hn, ho, alpha=0.3, gamma=4.0)
    with pytest.raises(ValueError, match="^blocks:"):
        BB.msvr_step(u, torch.tensor([1, 7, 2]), hn, ho, alpha=0.3, gamma=4.0)
    with pytest.raises(ValueError, match="^h_old:"):
        BB.msvr_step(u, blocks, hn, ho[:2], alpha=0.3, gamma=4.0)


def test_drift_unbiased_weight_removes_the_mean_lag_without_noise():
    """Exercise ex-bsvrb-noise: with a linear drift, gamma = m/I - alpha makes the stationary mean error zero."""
    m, I, alpha, delta = 10, 2, 0.6, 1.0  # noqa: E741
    gen = torch.Generator().manual_seed(0)
    gamma = m / I - alpha
    e = torch.zeros(20000, m, dtype=torch.float64)  # error u - h of m blocks, many independent chains
    for _ in range(300):
        sampled = torch.rand(20000, m, generator=gen, dtype=torch.float64) < I / m
        e = torch.where(sampled, (1 - alpha) * (e - delta) + gamma * delta, e - delta)
    assert abs(float(e.mean())) < 0.05  # the moving average (gamma = 0) lags by (1 - p alpha) / (p alpha) = 7.33
    assert abs(float(e.std())) > 1.0  # unbiased on average, not exact


def test_bsvrb_is_deterministic_and_counts_its_samples():
    P = small(2)
    a = BB.bsvrb(P, iters=30, I=2, B=4, eta=5.0, generator=3, record_every=10)
    b = BB.bsvrb(P, iters=30, I=2, B=4, eta=5.0, generator=3, record_every=10)
    assert torch.equal(a.grad_norm, b.grad_norm) and torch.equal(a.p, b.p)
    assert a.samples == 16


# --- bad input ------------------------------------------------------------------------------------------------

def test_functions_name_their_bad_arguments():
    with pytest.raises(ValueError, match="^I:"):
        BB.msvr_gamma(5, 6, 0.5)
    with pytest.raises(ValueError, match="^alpha:"):
        BB.msvr_gamma(5, 2, 0.0)
    with pytest.raises(ValueError, match="^alpha:"):
        BB.msvr_update(torch.zeros(2), torch.zeros(2), torch.zeros(2), alpha=1.5, gamma=0.0)
    with pytest.raises(ValueError, match="^h_old:"):
        BB.msvr_update(torch.zeros(2), torch.zeros(2), torch.zeros(3), alpha=0.5, gamma=0.0)
    with pytest.raises(ValueError, match="^gamma:"):
        BB.tracking_demo(5, 2, alpha=[0.1, 0.2], gamma=[0.0, 1.0, 2.0], steps=2)
    with pytest.raises(ValueError, match="^problem:"):
        BB.bsvrb(None, iters=2)
    with pytest.raises(ValueError, match="^I:"):
        BB.bsvrb(small(), iters=2, I=5)
    with pytest.raises(ValueError, match="^s_range:"):
        BB.weighted_logistic_tasks(3, s_range=(2.0, 1.0), generator=0, device="cpu")
    with pytest.raises(ValueError, match="^flip:"):
        BB.weighted_logistic_tasks(3, flip=1.0, generator=0, device="cpu")


# --- the self-check's cases (run by tests/test_course.py) -----------------------------------------------------

def _step(u, blocks, h_new, h_old, alpha, gamma, *, scale=1.0, ema=False, sign=False, storm=False, old=False,
          shrink=False):
    if ema:
        rows = (1 - alpha) * u[blocks] + alpha * h_new
    elif sign:
        rows = (1 - alpha) * u[blocks] + (alpha - gamma) * h_new + gamma * h_old
    elif storm:
        rows = (1 - alpha) * (u[blocks] - h_old) + h_new
    elif old:
        rows = (1 - alpha) * u[blocks] + alpha * h_old + gamma * (h_new - h_old)
    else:
        rows = scale * ((1 - alpha) * u[blocks] + (alpha + gamma) * h_new - gamma * h_old)
    out = (1 - alpha) * u if shrink else u.clone()
    out[blocks] = rows
    return out


CHECK_CASES = {
    "msvr_step": Case(
        _step, lambda *a: _step(*a, scale=1.01),
        (lambda *a: _step(*a, ema=True), lambda *a: _step(*a, shrink=True)),
        expected=[v for c in check.blockwise_bilevel.CASES.values()
                  for v in BB.msvr_step(c["u"], c["blocks"], c["h_new"], c["h_old"], alpha=c["alpha"],
                                        gamma=c["gamma"]).flatten().tolist()],
        inputs=[6, 4, 1, 0.5, 2, 5, 3, 0, 0.9, 50, 0.1, 10], function=True,
        nan=lambda u, blocks, h_new, h_old, alpha, gamma: torch.full_like(u, float("nan")),
        hints=((lambda *a: _step(*a, ema=True), "plain moving average"),
               (lambda *a: _step(*a, sign=True), "wrong sign"),
               (lambda *a: _step(*a, storm=True), "STORM's recursion"),
               (lambda *a: _step(*a, old=True), "old point"),
               (lambda *a: _step(*a, shrink=True), "not sampled"),
               (lambda u, blocks, h_new, h_old, alpha, gamma: h_new, "only the sampled"))),
}


# --- cases run by tests/test_divergence.py ----------------------------------------------------------------------

def _run(m):  # eta = 100 converges; the toy's upper curvature puts the critical step of exact GD near 10^3
    return BB.bsvrb(small(0), iters=30, I=2, B=4, eta=m * 1000.0, generator=0, record_every=5)


DIVERGENCE_CASES = {"blockwise_bilevel.bsvrb": (_run, "diverges from 1e6x", ())}
NOT_RUNNERS = {"blockwise_bilevel.tracking_demo": "tracks drifting targets with a fixed averaging weight alpha; it "
                                                  "has no learning rate and no state that can blow up"}


# --- baseline calls for tests/test_fuzz.py --------------------------------------------------------------------

FUZZ_OPT_OUT = {f"blockwise_bilevel.LogisticTasks.{name}": "an exact or sampled oracle of the toy, called inside "
                "the loop on whatever the state holds; the public functions that build or run the toy check "
                "their arguments"
                for name in ("lower_grad", "lower_hessian", "cross_times", "upper_grad", "lower_solution", "F",
                             "hypergradient")}

FUZZ_SPECS = {
    # the learner's function is probed by tests/test_course.py's odd-input test
    "check.blockwise_bilevel.msvr_step": fuzz_specs.Spec(
        lambda: dict(fn=lambda u, blocks, h_new, h_old, alpha, gamma: u), skip="fn"),
    "blockwise_bilevel.msvr_step": fuzz_specs.Spec(lambda: dict(u=fuzz_specs.randn(4, 2), blocks=torch.tensor([2, 0]),
                                                                h_new=fuzz_specs.randn(2, 2),
                                                                h_old=fuzz_specs.randn(2, 2), alpha=0.5, gamma=1.0),
                                                   nonneg="alpha gamma", skip="blocks"),
    "blockwise_bilevel.weighted_logistic_tasks": fuzz_specs.Spec(
        lambda: dict(m=3, dim=2, n_train=6, n_val=4, lam=0.1, flip=0.2, shift=0.5, generator=0, device="cpu"),
        positive="lam", nonneg="flip shift", skip="s_range device"),  # s_range: a pair, checked by its own test
    "blockwise_bilevel.msvr_update": fuzz_specs.Spec(lambda: dict(u=fuzz_specs.randn(3), h_new=fuzz_specs.randn(3),
                                                                  h_old=fuzz_specs.randn(3), alpha=0.5, gamma=1.0),
                                                     nonneg="alpha gamma"),
    "blockwise_bilevel.msvr_gamma": fuzz_specs.Spec(lambda: dict(m=10, I=2, alpha=0.5), positive="alpha"),
    "blockwise_bilevel.tracking_demo": fuzz_specs.Spec(lambda: dict(m=4, I=2, alpha=0.5, gamma=1.0, steps=3,
                                                                    noise=0.1, drift=0.01, generator=0),
                                                       nonneg="alpha gamma noise drift"),
    "blockwise_bilevel.bsvrb": fuzz_specs.Spec(lambda: dict(problem=small(), iters=3, I=2, B=3, eta=1.0, tau=0.5,
                                                            beta=0.9, alpha=0.9, gamma=1.0, generator=0,
                                                            record_every=1, blowup=1e6),
                                               positive="eta tau beta blowup", nonneg="alpha gamma"),
}
