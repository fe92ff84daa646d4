"""Spatially weighted Jacobian regularisation of a learned Burgers step (inspired by Nie & Suzuki 2026, JAWS).

The solver's claims (conservation, no growth of max|u| or of the total variation under the stability condition,
shocks form) are exact properties of the scheme, tested to rounding. The penalty is tested against an explicit
Jacobian (autograd is the oracle; there is no peer library). Trained numbers (the slow test, the notebook's full-size
study: data generators 0 and 1, 4 seeds, 32 trajectories x 40 pairs, 300 Adam steps, batch 64): the probe penalty of
the trained step on held-out states was 0.85-0.88 (lambda = 0), 0.43-0.70 (1e-4) and 0.17-0.20 (1e-3, global and
adaptive) over seeds 0-3; the test asserts the strict fall per seed, ranges with margins around these, that no
rollout diverged and that the mean reset removes a large part of the error at lambda = 1e-3. Rollout errors are not
asserted (their ranking changes from seed to seed and with the data draw); the slow test prints them.
"""

import math

import pytest
import torch
from checkcases import Case
from fuzz_specs import Spec
from scipy.stats import spearmanr

from lessons_lib import check
from lessons_lib import rollout as R

DX = 2 * math.pi / 128


def _start(seed, n=128):
    gen = torch.Generator().manual_seed(seed)
    x = torch.arange(n, dtype=torch.float64) * 2 * math.pi / n
    a = 2 * torch.rand(3, 1, generator=gen, dtype=torch.float64) - 1
    phi = 2 * math.pi * torch.rand(3, 1, generator=gen, dtype=torch.float64)
    return (a * torch.sin(torch.arange(1, 4, dtype=torch.float64).reshape(3, 1) * x + phi)).sum(0)


# ---------------------------------------------------------------- the solver (eq-rollout-burgers)

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_solver_conserves_the_sum_to_rounding(seed):
    traj = R.burgers_trajectories(4, steps=40, generator=seed)
    sums = traj.sum(-1)
    rel = (sums - sums[:, :1]).abs().max() / traj[:, 0].abs().sum(-1).max()
    assert float(rel) < 1e-12


@pytest.mark.parametrize("nu", [0.0, 0.005, 0.02])
def test_max_and_total_variation_never_grow_under_the_stability_condition(nu):
    u = torch.stack([2.0 * _start(s) for s in range(4)])  # max|u| up to ~4: the condition still holds at dt = 0.01
    dt = 0.01
    assert dt * (float(u.abs().max()) + 2 * nu / DX) / DX <= 1
    for _ in range(300):
        new = R.burgers_step(u, nu=nu, dt=dt, dx=DX)
        assert bool((new.abs().amax(-1) <= u.abs().amax(-1) + 1e-12).all())
        assert bool((R.total_variation(new) <= R.total_variation(u) + 1e-11).all())
        u = new


def test_total_variation_can_grow_when_the_condition_is_broken():
    """The condition is not decoration: a step four times too long makes oscillations at once."""
    u = _start(0).reshape(1, -1)
    tv0 = float(R.total_variation(u))
    max0 = float(u.abs().max())
    for _ in range(3):
        u = R.burgers_step(u, nu=0.0, dt=0.2, dx=DX)  # dt max|u| / dx ~ 6
    assert float(R.total_variation(u)) > 1.2 * tv0 and float(u.abs().max()) > 1.2 * max0


def test_shocks_form():
    traj = R.burgers_trajectories(8, steps=40, nu_range=(0.005, 0.005), generator=0)
    slope = (traj.roll(-1, -1) - traj).abs().amax(-1) / DX
    # in every trajectory the steepest slope at least quadruples at some time (a front a few cells wide)
    assert bool((slope.amax(1) > 4 * slope[:, 0]).all())


def test_rusanov_flux_of_a_constant_state_does_nothing_and_matches_the_written_flux():
    u = torch.full((5, 16), 0.7, dtype=torch.float64)
    assert torch.equal(R.burgers_step(u, nu=0.01, dt=0.01, dx=0.4), u)
    v = torch.tensor([0.0, 1.0, -0.5, 0.2], dtype=torch.float64)
    right = v.roll(-1)
    flux = (v ** 2 + right ** 2) / 4 - torch.maximum(v.abs(), right.abs()) * (right - v) / 2
    want = v - 0.1 / 0.5 * (flux - flux.roll(1)) + 0.0
    assert torch.allclose(R.burgers_step(v, nu=0.0, dt=0.1, dx=0.5), want, atol=1e-15)


# ---------------------------------------------------------------- the penalty (eq-rollout-penalty)

def _tiny():
    params = R.init_surrogate(channels=3, kernel=3, generator=1)
    params = params * 4  # larger weights, a Jacobian far from the identity
    u = R.burgers_trajectories(3, n_points=16, steps=2, dt=0.05, generator=2)[:, -1]
    return params, u


def _explicit_jacobians(params, u):
    return torch.stack([torch.func.jacrev(lambda v: R.surrogate_step(params, v))(ui) for ui in u])


def test_fixed_probe_penalty_equals_the_explicit_jacobian():
    params, u = _tiny()
    J = _explicit_jacobians(params, u)  # (B, n, n)
    probe = R.rademacher(tuple(u.shape), generator=4)
    w = R.shock_weight(u, kind="adaptive")
    want = (w * torch.einsum("bxy,by->bx", J, probe) ** 2).sum(-1).mean() / u.shape[-1]
    got = R.jacobian_penalty(lambda v: R.surrogate_step(params, v), u, weight=w, probe=probe)
    assert abs(float(got - want)) <= 1e-10 * float(want)


def test_probe_mean_is_the_weighted_frobenius_norm():
    params, u = _tiny()
    J = _explicit_jacobians(params, u)
    w = R.shock_weight(u, kind="adaptive")
    frob = (w * (J ** 2).sum(-1)).sum(-1).mean() / u.shape[-1]
    copies = 2000  # one call over many copies of the batch: each copy gets its own probe
    big, wbig = u.repeat(copies, 1), w.repeat(copies, 1)
    est = R.jacobian_penalty(lambda v: R.surrogate_step(params, v), big, weight=wbig, generator=0)
    assert abs(float(est / frob) - 1) < 0.05


def test_penalty_of_the_identity_is_the_mean_weight():
    u = _start(0).reshape(1, -1)
    w = R.shock_weight(u, kind="adaptive")
    # J = I: (J xi)_x^2 = 1 for every sign pattern, so the penalty is mean(w) = 1 exactly
    assert float(R.jacobian_penalty(lambda v: v, u, weight=w, generator=0)) == pytest.approx(1.0, abs=1e-12)


def test_adaptive_weight_has_mean_one_and_falls_with_the_slope_on_a_front():
    traj = R.burgers_trajectories(1, steps=40, nu_range=(0.005, 0.005), generator=0)
    u = traj[0, -1]
    w = R.shock_weight(u, kind="adaptive")
    assert float(w.mean()) == pytest.approx(1.0, abs=1e-12)
    slope = (u.roll(-1) - u.roll(1)).abs() / (2 * DX)
    assert spearmanr(w.numpy(), slope.numpy()).statistic < -0.8
    front = int(slope.argmax())
    assert float(w[front]) < 0.2 * float(w.max())  # weak at the shock
    assert torch.equal(R.shock_weight(u), torch.ones_like(u))


# ---------------------------------------------------------------- training and rollouts

def _small_data():
    return R.burgers_trajectories(6, steps=10, generator=0)


def test_lambda_zero_loss_is_the_mse_exactly():
    res = R.train_surrogate(_small_data(), lam=0.0, steps=5, batch=8, generator=0)
    assert torch.equal(res.loss, res.mse) and bool((res.penalty == 0).all())
    res = R.train_surrogate(_small_data(), lam=1e-2, steps=5, batch=8, generator=0)
    assert torch.allclose(res.loss, res.mse + 1e-2 * res.penalty, rtol=1e-6)
    assert bool((res.penalty > 0).all())


def test_recorded_mse_is_the_mse_of_the_batch_in_float64():
    """The first recorded MSE is the untrained step's on a batch: of the size of one step's change."""
    data = _small_data()
    res = R.train_surrogate(data, lam=0.0, steps=3, batch=16, dtype=torch.float64, generator=0)
    change = ((data[:, 1:] - data[:, :-1]) ** 2).mean()
    assert 0.1 * float(change) < float(res.mse[0]) < 10 * float(change)


def test_same_seed_same_run_and_another_seed_another():
    a = R.train_surrogate(_small_data(), lam=1e-3, weighting="adaptive", steps=5, batch=8, generator=3)
    b = R.train_surrogate(_small_data(), lam=1e-3, weighting="adaptive", steps=5, batch=8, generator=3)
    c = R.train_surrogate(_small_data(), lam=1e-3, weighting="adaptive", steps=5, batch=8, generator=4)
    assert torch.equal(a.params, b.params) and torch.equal(a.loss, b.loss)
    assert not torch.equal(a.params, c.params)
    assert torch.equal(R.burgers_trajectories(2, steps=3, generator=5), R.burgers_trajectories(2, steps=3, generator=5))


def test_trained_penalty_falls_strictly_with_lambda_one_seed():
    data = R.burgers_trajectories(16, generator=0)
    held = R.burgers_trajectories(4, generator=1)[:, :-1].reshape(-1, 128).float()
    pens = []
    for lam in (0.0, 1e-4, 1e-3):
        params = R.train_surrogate(data, lam=lam, steps=100, batch=32, generator=0).params
        pens.append(float(R.surrogate_penalty(params, held, generator=0)))
    assert pens[0] > pens[1] > pens[2], pens


@pytest.mark.slow
def test_seed_study_at_the_full_size_penalty_ranges_and_no_blow_up():
    """The four-seed study the notebook runs at LESSONS_SCALE=full (its data: generators 0 and 1), four of its rows.

    Measured (seeds 0-3): trained penalty 0.85-0.88 (lambda = 0), 0.43-0.70 (global 1e-4), 0.17-0.20 (global 1e-3),
    0.17-0.20 (adaptive 1e-3, within 1 % of the global one seed by seed); no rollout left its ball; at lambda = 1e-3
    resetting the mean removed 24-83 % of the median error at 4x. Errors themselves are printed, not asserted.
    """
    configs = ((0.0, "global"), (1e-4, "global"), (1e-3, "global"), (1e-3, "adaptive"))
    study = R.seed_study(R.burgers_trajectories(32, generator=0), R.burgers_trajectories(8, steps=160, generator=1),
                         configs=configs, seeds=range(4))
    for i, config in enumerate(configs):
        print(config, "penalty", study.penalty[i].numpy().round(3), "error at 4x", study.error[i].numpy().round(2),
              "with the mean reset", study.error_mean_reset[i].numpy().round(2))
    pen = study.penalty
    assert bool((pen[0] > pen[1]).all() and (pen[1] > pen[2]).all())  # strictly falling with lambda, every seed
    assert bool(((0.75 < pen[0]) & (pen[0] < 0.95)).all()), pen[0]
    assert bool(((0.3 < pen[1]) & (pen[1] < 0.8)).all()), pen[1]
    assert bool(((0.1 < pen[2]) & (pen[2] < 0.3)).all()), pen[2]
    assert bool(((0.1 < pen[3]) & (pen[3] < 0.3)).all()), pen[3]
    assert bool(((pen[3] / pen[2] - 1).abs() < 0.1).all())  # the adaptive weight shrinks J as much as the global
    assert int(study.n_diverged.sum()) == 0  # these surrogates do not blow up
    assert bool((study.error_mean_reset[2:] < 0.85 * study.error[2:]).all())  # the drift of the mean is a large part


def test_rollout_of_a_zero_residual_is_constant_and_keeps_shapes():
    params = R.init_surrogate(generator=0)
    params = params.clone()
    params[-(8 * 5 + 1):] = 0  # the last convolution and its bias: CNN(u) = 0
    u0 = R.burgers_trajectories(3, steps=1, generator=0)[:, 0]
    out = R.rollout(params, u0, steps=7)
    assert out.u.shape == (8, 3, 128) and torch.allclose(out.u[-1], u0)
    assert R.rollout(params, u0[0], steps=2).u.shape == (3, 128)
    assert not bool(out.diverged.any()) and bool((out.diverged_at == -1).all())


def test_rollout_that_leaves_its_ball_is_flagged_and_frozen():
    """The tanh layers bound each step's change, so a rollout grows at most linearly; with a small radius it
    leaves the ball and freezes, as every run of the book does."""
    params = 30.0 * R.init_surrogate(generator=0)
    out = R.rollout(params, _start(0).reshape(1, -1), steps=60, blowup=3.0)
    at = int(out.diverged_at[0])
    assert bool(out.diverged.all()) and 0 < at < 60 and bool(torch.isfinite(out.u).all())
    assert torch.equal(out.u[-1], out.u[at])


def test_relative_error_and_high_k_energy_against_their_definitions():
    x = torch.arange(128, dtype=torch.float64) * DX
    assert float(R.high_k_energy(torch.sin(20 * x))) == pytest.approx(0.5, abs=1e-12)
    assert float(R.high_k_energy(torch.sin(3 * x))) == pytest.approx(0.0, abs=1e-20)
    u = _start(4) + 0.1 * torch.cos(40 * x) + 0.05 * torch.cos(64 * x)
    coef = torch.fft.rfft(u)
    coef[:16] = 0
    assert float(R.high_k_energy(u)) == pytest.approx(float((torch.fft.irfft(coef, n=128) ** 2).mean()), rel=1e-12)
    assert float(R.relative_error(2 * u, u)) == pytest.approx(1.0, rel=1e-12)


def test_mean_reset_error_is_the_error_of_the_mean_free_parts():
    """||p - t - mean(p - t)||^2 = ||p - t||^2 - n mean(p - t)^2: the reset removes exactly the mean offset."""
    t = torch.stack([_start(1), _start(2)])
    p = t + 0.3 + 0.1 * torch.stack([_start(3), _start(4)])
    got = R.mean_reset_error(p, t)
    d = p - t
    want = (d - d.mean(-1, keepdim=True)).norm(dim=-1) / t.norm(dim=-1)
    assert torch.allclose(got, want, rtol=1e-12)
    full = R.relative_error(p, t)
    assert torch.allclose(got ** 2, full ** 2 - 128 * d.mean(-1) ** 2 / (t ** 2).sum(-1), rtol=1e-10)
    assert float(R.mean_reset_error(t + 5.0, t).max()) < 1e-12  # a pure shift of the level is all drift


def test_seed_study_matches_separate_runs():
    train, test = R.burgers_trajectories(4, steps=6, generator=0), R.burgers_trajectories(2, steps=12, generator=1)
    study = R.seed_study(train, test, configs=((0.0, "global"), (1e-3, "adaptive")), seeds=(3, 5), steps=4, batch=8)
    assert study.penalty.shape == (2, 2) and study.params.shape[:2] == (2, 2)
    res = R.train_surrogate(train, lam=1e-3, weighting="adaptive", steps=4, batch=8, generator=5)
    assert torch.equal(study.params[1, 1], res.params)
    end = R.rollout(res.params, test[:, 0], steps=12).u[-1].double()
    assert float(study.error[1, 1]) == pytest.approx(float(R.relative_error(end, test[:, -1]).median()), rel=1e-12)
    assert float(study.penalty[1, 1]) == pytest.approx(
        float(R.surrogate_penalty(res.params, test[:, :6].reshape(-1, 128).float(), generator=5)), rel=1e-6)
    assert bool((study.error_mean_reset <= study.error + 1e-12).all())


# ---------------------------------------------------------------- bad input

def test_bad_input_is_refused_by_name():
    u = _start(0)
    with pytest.raises(ValueError, match="^dt:"):
        R.burgers_step(u, nu=0.01, dt=-1.0, dx=DX)
    with pytest.raises(ValueError, match="^nu:"):
        R.burgers_step(u, nu=-0.1, dt=0.01, dx=DX)
    with pytest.raises(ValueError, match="^u:"):
        R.burgers_step(torch.tensor([1.0, float("nan"), 0.0, 1.0]), nu=0.0, dt=0.01, dx=DX)
    with pytest.raises(ValueError, match="^dt:"):
        R.burgers_trajectories(2, dt=0.1)
    with pytest.raises(ValueError, match="^nu_range:"):
        R.burgers_trajectories(2, nu_range=(0.02, 0.01))
    with pytest.raises(ValueError, match="^kind:"):
        R.shock_weight(u, kind="learned")
    with pytest.raises(ValueError, match="^kernel:"):
        R.init_surrogate(kernel=4)
    with pytest.raises(ValueError, match="^generator:"):
        R.jacobian_penalty(lambda v: v, u.reshape(1, -1))
    with pytest.raises(ValueError, match="^probe:"):
        R.jacobian_penalty(lambda v: v, u.reshape(1, -1), probe=torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="^weighting:"):
        R.train_surrogate(_small_data(), weighting="learned", steps=1)
    with pytest.raises(ValueError, match="^lam:"):
        R.train_surrogate(_small_data(), lam=-1.0, steps=1)
    with pytest.raises(ValueError, match="^params:"):
        R.surrogate_step(torch.zeros(7, dtype=torch.float64), u)
    with pytest.raises(ValueError, match="^k_min:"):
        R.high_k_energy(u, k_min=65)
    with pytest.raises(ValueError, match="^pred:"):
        R.mean_reset_error(u[:5], u)
    data = _small_data()
    with pytest.raises(ValueError, match="^test:"):
        R.seed_study(data, data[:, :3], steps=1)
    with pytest.raises(ValueError, match="^configs:"):
        R.seed_study(data, data, configs=((1e-3, "learned"),), steps=1)
    with pytest.raises(ValueError, match="^seeds:"):
        R.seed_study(data, data, seeds=(), steps=1)


# ---------------------------------------------------------------- shared registries

def _right(step_fn, u, weight, probe):
    _, jv = torch.func.jvp(step_fn, (u,), (probe,))
    return (weight * jv ** 2).sum(-1).mean() / u.shape[-1]


def _no_n(step_fn, u, weight, probe):
    return _right(step_fn, u, weight, probe) * u.shape[-1]


def _vjp(step_fn, u, weight, probe):
    _, pull = torch.func.vjp(step_fn, u)
    return (weight * pull(probe)[0] ** 2).sum(-1).mean() / u.shape[-1]


def _unweighted(step_fn, u, weight, probe):
    return _right(step_fn, u, torch.ones_like(weight), probe)


def _frobenius(step_fn, u, weight, probe):
    jac = torch.func.vmap(torch.func.jacrev(lambda v: step_fn(v[None])[0]))(u)
    return (weight * (jac ** 2).sum(-1)).sum(-1).mean() / u.shape[-1]


def _expected():
    return [float(R.jacobian_penalty(f, u, weight=w, probe=p)) for f, u, w, p in check.rollout.PENALTY_CASES.values()]


CHECK_CASES = {
    "jvp_penalty": Case(
        _right, lambda f, u, w, p: 1.01 * _right(f, u, w, p), (_no_n, _vjp, _unweighted, _frobenius),
        expected=_expected(), inputs=[6, 3, 0.2, 1.8], function=True,
        nan=lambda f, u, w, p: torch.tensor(float("nan"), dtype=torch.float64),
        hints=((_no_n, "n times too large"), (_vjp, "Jacobian-vector product"), (_unweighted, "ignores the weight"),
               (_frobenius, "one probe"))),
}

DIVERGENCE_CASES = {
    # Adam's step is lr: at 10x the default 3e-3 training is merely noisy; at 1e6x and 1e300x the parameters leave
    # the ball of the run loop and the run freezes
    "rollout.train_surrogate": (lambda m: R.train_surrogate(_small_data(), lam=1e-3, lr=m * 3e-3, steps=5, batch=8,
                                                            generator=0), None, ()),
    # no learning rate: the scale of the parameters plays its role (a step whose Jacobian is m times larger); the
    # tanh layers bound each step's change, so the state grows only linearly and need not leave the ball
    "rollout.rollout": (lambda m: R.rollout(m * R.init_surrogate(generator=0), _start(0), steps=20), None, ()),
}
DIVERGENCE_CASES["rollout.seed_study"] = (
    # its training is train_surrogate's (frozen on divergence); the rollouts of a frozen step stay finite
    lambda m: R.seed_study(_small_data(), _small_data(), configs=((1e-3, "global"),), seeds=(0,), lr=m * 3e-3,
                           steps=3, batch=4), None, ())
NOT_RUNNERS = {
    "rollout.burgers_trajectories": "its time step is checked against the stability condition and refused past it",
}

FUZZ_SPECS = {
    "rollout.burgers_step": Spec(lambda: dict(u=randn_field(), nu=0.01, dt=0.01, dx=DX), positive="dt dx",
                                 nonneg="nu"),
    "rollout.total_variation": Spec(lambda: dict(u=randn_field())),
    "rollout.burgers_trajectories": Spec(lambda: dict(n_traj=2, n_points=16, steps=2, every=1, dt=0.01,
                                                      nu_range=(0.005, 0.02), amplitude=1.0, generator=0),
                                         positive="dt amplitude", skip="generator nu_range"),
    # nu_range: a pair, probed by the bad-input test above
    "rollout.init_surrogate": Spec(lambda: dict(channels=2, kernel=3, dtype=torch.float64, generator=0),
                                   skip="dtype generator"),
    "rollout.surrogate_step": Spec(lambda: dict(params=R.init_surrogate(channels=2, kernel=3), u=randn_field())),
    "rollout.shock_weight": Spec(lambda: dict(u=randn_field(), kind="adaptive", scale=1.0), positive="scale"),
    "rollout.rademacher": Spec(lambda: dict(shape=(2, 3), generator=0, dtype=torch.float64),
                               skip="shape generator dtype"),
    "rollout.jacobian_penalty": Spec(lambda: dict(step_fn=lambda v: 2 * v, u=randn_field().reshape(1, -1),
                                                  weight=None, probe=None, generator=0),
                                     skip="step_fn weight probe generator"),
    "rollout.train_surrogate": Spec(lambda: dict(trajectories=R.burgers_trajectories(2, n_points=16, steps=2,
                                                                                     generator=0),
                                                 lam=1e-3, weighting="adaptive", lr=1e-3, steps=2, batch=2,
                                                 channels=2, kernel=3, scale=1.0, dtype=torch.float64, generator=0),
                                    positive="scale", nonneg="lam lr", skip="dtype generator"),
    "rollout.rollout": Spec(lambda: dict(params=R.init_surrogate(channels=2, kernel=3), u0=randn_field(), steps=2,
                                         blowup=1e6), positive="blowup"),
    "rollout.surrogate_penalty": Spec(lambda: dict(params=R.init_surrogate(channels=2, kernel=3),
                                                   u=randn_field().reshape(1, -1), kind="adaptive", generator=0),
                                      skip="generator"),
    "rollout.relative_error": Spec(lambda: dict(pred=randn_field(), true=randn_field() + 0.1)),
    "rollout.mean_reset_error": Spec(lambda: dict(pred=randn_field(), true=randn_field() + 0.1)),
    "rollout.seed_study": Spec(lambda: dict(train=R.burgers_trajectories(2, n_points=16, steps=2, generator=0),
                                            test=R.burgers_trajectories(2, n_points=16, steps=3, generator=1),
                                            configs=((1e-3, "adaptive"),), seeds=(0,), lr=1e-3, steps=2, batch=2,
                                            progress=None),
                               positive="steps batch", nonneg="lr", skip="configs seeds progress"),
    "rollout.high_k_energy": Spec(lambda: dict(u=randn_field(), k_min=4)),
    "check.rollout.jvp_penalty": Spec(lambda: dict(fn=_right), skip="fn"),
    # fn: the learner's function
}


def randn_field():
    return torch.randn(16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
