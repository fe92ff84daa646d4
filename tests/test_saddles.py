"""Saddle-to-saddle dynamics (Zhang, Saxe & Latham 2026; Saxe et al. 2014; Pesme & Flammarion 2023).

Measured margins (the chapter's target, seeds 0-2 unless said otherwise):
* linear net, d = 6, s = (4, 2, 1), lr = 0.02: half-learning times against ln(s/u0 - 1)/(2 s lr) with the
  effective u0 of the random start: <= 4.8% (flow rate) and <= 0.81% (GD rate, 10 seeds); against the
  plain ln(s/eps^2)/(2 s lr): <= 7.6% at eps in {1e-4, 1e-6} (10 seeds), but up to 16% at eps = 1e-2;
* plateau losses: <= 1.1% at eps = 1e-4, <= 0.03% at 1e-6 (up to 75% at 1e-2: no flat stretch);
* ln(1/eps) linearity: ratio of successive differences 0.9915-1.0169; halving lr 0.01 -> 0.005:
  ratios 1.979-1.995;
* diagonal net, beta* = (3, 1.5, 0.75, 0, 0), lr = 0.01, alpha = 1e-8: rescaled times off by 6.2%,
  2.6%, 0.0%; unlearned coordinates <= 2e-7;
* ReLU 1-D, width 50, eps = 1e-4, lr = 0.1: plateau / best single unit - 1 = -3e-5; relative change
  over steps 1000-2000 <= 2.4e-4; one kink there (8 seeds);
* plateau counts (measure.count_plateaus), lr = 0.02, over 8 targets x 3 starts: eps = 1e-6 always 3, eps = 1e-3
  1 or 2, eps = 1e-2 always 1, eps >= 0.1 always 0; s = (4, 4r, 4r^2) at lr = 0.05: r = 0.5 always 3, r = 0.9
  always 1.
"""

import math
import re

import pytest
import torch

from lessons_lib import check, measure, models, stability
from lessons_lib import saddles as S

S_TARGET = torch.tensor([4.0, 2.0, 1.0], dtype=torch.float64)


@pytest.fixture(scope="module")
def A():
    return S.random_target(S_TARGET, d_out=6, d_in=6, generator=0)  # the chapter's target


def test_random_target_has_the_asked_spectrum():
    A = S.random_target([3.0, 1.0], d_out=5, d_in=4, generator=2)
    assert A.shape == (5, 4) and A.dtype == torch.float64
    assert torch.allclose(torch.linalg.svdvals(A), torch.tensor([3.0, 1.0, 0.0, 0.0], dtype=torch.float64), atol=1e-12)
    assert not torch.equal(A, S.random_target([3.0, 1.0], d_out=5, d_in=4, generator=3))


def half_times(run):
    return S.half_times(run, S_TARGET).double()


@pytest.fixture(scope="module")
def staircase(A):
    """Runs at lr = 0.02 for eps in {1e-2, 1e-4, 1e-6} and seeds 0-2."""
    return {(eps, seed): S.train_linear_net(A, width=6, init_scale=eps, lr=0.02, steps=800, generator=seed)
            for eps in (1e-2, 1e-4, 1e-6) for seed in (0, 1, 2)}


# --- linear network: oracles -------------------------------------------------------------------

def test_aligned_start_follows_the_logistic_solution(A):
    eps, lr = 3e-2, 1e-3
    run = S.train_linear_net(A, width=4, init_scale=eps, lr=lr, steps=4000, init="aligned")
    assert torch.allclose(run.u0[:3], torch.full((3,), eps**2, dtype=torch.float64), rtol=1e-10)
    theory = S.saxe_mode_strength(S_TARGET, lr * run.steps.double(), init_scale=eps)
    assert float((run.singular_values[:, :3] - theory).abs().max()) < 0.03  # measured 0.013 (on s = 4)
    assert float((run.singular_values[:, :3] - theory).abs().max()) > 0  # a genuine comparison
    # the discrete half times agree with the GD-rate closed form to a fraction of a percent
    rel = half_times(run) / S.saxe_learning_time(S_TARGET, init_scale=eps, lr=lr, rate="gd") - 1
    assert float(rel.abs().max()) < 0.003  # measured 2e-4


def test_one_gd_step_is_the_autograd_gradient(A):
    g = torch.Generator().manual_seed(0)
    W1 = 0.3 * torch.randn(4, 6, generator=g, dtype=torch.float64)
    W2 = 0.3 * torch.randn(6, 4, generator=g, dtype=torch.float64)
    W1r, W2r = W1.clone().requires_grad_(), W2.clone().requires_grad_()
    (0.5 * ((W2r @ W1r - A) ** 2).sum()).backward()
    # the library draws the same start from the same seed
    run = S.train_linear_net(A, width=4, init_scale=0.3, lr=0.1, steps=1, generator=0)
    assert torch.allclose(run.W1, W1 - 0.1 * W1r.grad, atol=1e-12)
    assert torch.allclose(run.W2, W2 - 0.1 * W2r.grad, atol=1e-12)
    assert float(run.loss[0]) == pytest.approx(0.5 * float(((W2 @ W1 - A) ** 2).sum()), rel=1e-12)


def test_effective_strengths_are_gram_schmidt_of_the_hidden_directions(A):
    g = torch.Generator().manual_seed(4)
    W1 = torch.randn(5, 6, generator=g, dtype=torch.float64)
    W2 = torch.randn(6, 5, generator=g, dtype=torch.float64)
    U, _, Vh = torch.linalg.svd(A)
    c = [0.5 * (W1 @ Vh[i] + W2.T @ U[:, i]) for i in range(3)]
    e1 = c[0] / c[0].norm()
    r2 = c[1] - (c[1] @ e1) * e1
    u0 = S.effective_mode_strengths(W1, W2, A)
    assert float(u0[0]) == pytest.approx(float(c[0] @ c[0]), rel=1e-10)
    assert float(u0[1]) == pytest.approx(float(r2 @ r2), rel=1e-10)
    narrow = S.effective_mode_strengths(W1[:2], W2[:, :2], A)  # width 2: modes 3.. cannot be learned
    assert bool((narrow[2:] == 0).all()) and bool((narrow[:2] > 0).all())
    assert torch.isinf(S.saxe_learning_time(S_TARGET, init_scale=1.0, lr=0.1, u0=narrow[:3]))[2]


def test_closed_forms_agree_with_each_other():
    s, eps, lr = torch.tensor([3.0, 0.5], dtype=torch.float64), 1e-3, 0.05
    k = S.saxe_learning_time(s, init_scale=eps, lr=lr)
    u = S.saxe_mode_strength(s, lr * k, init_scale=eps).diagonal()  # strength at its own half time
    assert torch.allclose(u, s / 2, rtol=1e-12)
    plain = torch.log(s / eps**2) / (2 * s * lr)
    assert torch.allclose(k, plain, rtol=1e-6)  # ln(s/eps^2 - 1) ~ ln(s/eps^2) for a small start
    assert float(S.saxe_learning_time(1.0, init_scale=1.0, lr=0.1)) == 0.0  # starts above half strength


# --- linear network: the paper's claims ---------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("eps", [1e-2, 1e-4, 1e-6])
def test_half_learning_times_match_the_closed_form(staircase, eps, seed):
    run = staircase[(eps, seed)]
    t = half_times(run)
    assert bool((t > 0).all())
    assert bool((t[1:] > t[:-1]).all())  # largest s first
    flow = S.saxe_learning_time(S_TARGET, init_scale=eps, lr=0.02, u0=run.u0[:3])
    assert float((t / flow - 1).abs().max()) < 0.10  # measured <= 4.8%
    gd = S.saxe_learning_time(S_TARGET, init_scale=eps, lr=0.02, u0=run.u0[:3], rate="gd")
    assert float((t / gd - 1).abs().max()) < 0.02  # measured <= 0.81% over 10 seeds
    if eps <= 1e-4:  # the plain ln(s/eps^2) form: the random start's O(1) offset matters less
        plain = S.saxe_learning_time(S_TARGET, init_scale=eps, lr=0.02)
        assert float((t / plain - 1).abs().max()) < 0.10  # measured <= 7.6% (10 seeds)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("eps", [1e-4, 1e-6])
def test_plateau_losses_are_half_the_unlearned_energy(staircase, eps, seed):
    run = staircase[(eps, seed)]
    levels = S.plateau_losses(run.loss, half_times(run).long())
    expected = measure.plateau_levels(S_TARGET)  # 1/2 sum_{j >= i} s_j^2: (10.5, 2.5, 0.5, 0)
    assert torch.allclose(levels, expected[1:3], rtol=0.025)  # measured <= 1.1%
    assert float(run.loss[0]) == pytest.approx(float(expected[0]), rel=1e-3)  # the first plateau


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_plateau_length_is_linear_in_log_one_over_eps(staircase, seed):
    t = {eps: half_times(staircase[(eps, seed)]) for eps in (1e-2, 1e-4, 1e-6)}
    ratio = (t[1e-6] - t[1e-4]) / (t[1e-4] - t[1e-2])
    assert torch.allclose(ratio, torch.ones(3, dtype=torch.float64), atol=0.035)  # measured 0.9915-1.0169


def test_halving_the_learning_rate_doubles_every_time(A):
    slow = S.train_linear_net(A, width=6, init_scale=1e-4, lr=0.005, steps=2000, generator=0)
    fast = S.train_linear_net(A, width=6, init_scale=1e-4, lr=0.01, steps=1000, generator=0)
    ratio = half_times(slow) / half_times(fast)
    assert torch.allclose(ratio, 2 * torch.ones(3, dtype=torch.float64), rtol=0.03)  # measured 1.979-1.995


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_large_init_erodes_the_staircase(seed):
    target = S.random_target(S_TARGET, d_out=6, d_in=6, generator=seed)
    counts = [S.count_plateaus(S.train_linear_net(target, width=6, init_scale=eps, lr=0.02, steps=900,
                                                  generator=seed).loss, lr=0.02)
              for eps in (1e-6, 1e-3, 1e-2, 0.1, 1.0)]
    assert counts[0] == 3  # the start and two intermediate saddles (measured: always 3)
    assert counts[1] in (1, 2) and counts[2] == 1  # eroding (measured 1-2, and always 1)
    assert counts[-2:] == [0, 0]  # no staircase once eps^2 is comparable to s (measured: always 0)
    assert counts == sorted(counts, reverse=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_close_singular_values_merge_the_plateaus(seed):
    counts = []
    for ratio in (0.5, 0.9):  # s = (4, 4r, 4r^2), as in the chapter's explorer
        s = torch.tensor([4.0, 4.0 * ratio, 4.0 * ratio**2], dtype=torch.float64)
        run = S.train_linear_net(S.random_target(s, d_out=6, d_in=6, generator=seed), width=6, init_scale=1e-6,
                                 lr=0.05, steps=1500, generator=seed)
        counts.append(S.count_plateaus(run.loss, lr=0.05))
    assert counts == [3, 1]  # separate plateaus, then only the start (measured: always, 24 seed pairs)


def test_learning_rate_above_one_over_s_max_never_settles(A):
    ok = S.train_linear_net(A, width=6, init_scale=1e-3, lr=0.9 / 4, steps=300, generator=0)
    assert float(ok.loss[-1]) < 1e-8
    rough = S.train_linear_net(A, width=6, init_scale=1e-3, lr=1.1 / 4, steps=300, generator=0)
    assert not rough.diverged  # bounded, but the top mode oscillates
    assert float(rough.loss[-20:].min()) > 0.1 and float(rough.loss[-20:].max()) > 1.5 * float(rough.loss[-20:].min())
    assert torch.allclose(rough.singular_values[-1, 1:3], S_TARGET[1:], atol=1e-6)  # weaker modes still converge


def test_mode_strengths_are_the_target_modes_coefficients_and_batch_like_a_single_call():
    # aligned start: every mode stays on its own singular pair, so u_i^T W2 W1 v_i is the sorted singular value
    s = torch.tensor([4.0, 2.0, 1.0], dtype=torch.float64)
    target = S.random_target(s, d_out=6, d_in=6, generator=1)
    aligned = S.train_linear_net(target, width=6, init_scale=1e-2, lr=0.05, steps=200, init="aligned")
    assert torch.allclose(aligned.mode_strengths[:, :3], aligned.singular_values[:, :3], rtol=1e-9, atol=1e-12)
    batch = S.train_linear_net(target, width=6, init_scale=1e-3, lr=[0.02, 0.27], steps=300, generator=0,
                               record_every=3)
    one = S.train_linear_net(target, width=6, init_scale=1e-3, lr=0.27, steps=300, generator=0, record_every=3)
    assert torch.equal(batch.single(1).mode_strengths, one.mode_strengths)
    assert batch.mode_strengths.shape == (len(batch.steps), 2, 6)


def test_near_top_mode_is_dragged_into_the_oscillation_through_coupling_not_its_own_factor():
    # the staircase explorer at its largest eta (eta s1 = 1.08 > 1), eps = 1e-6: with s2/s1 = 0.5 modes 2 and 3
    # settle; with s2/s1 = 0.9 mode 2 (own factor 1 - 2 eta s2 = -0.94, stable) holds s2 for ~1000 steps
    # and then bounces (measured range 3.01-4.13 over steps 900-1200), while mode 3 stays at s3 throughout
    for ratio, dragged in ((0.5, False), (0.9, True)):
        s = torch.tensor([4.0, 4.0 * ratio, 4.0 * ratio**2], dtype=torch.float64)
        run = S.train_linear_net(S.random_target(s, d_out=6, d_in=6, generator=0), width=6, init_scale=1e-6,
                                 lr=0.27, steps=1500, generator=0, record_every=3)
        z = run.mode_strengths
        assert abs(1 - 2 * 0.27 * float(s[1])) < 1 and float(z[100:, 0].max() - z[100:, 0].min()) > 1
        early, late = (run.steps > 300) & (run.steps < 600), run.steps > 1200
        assert float((z[early, 1] - s[1]).abs().max()) < 1e-6  # mode 2 first holds its target
        assert float((z[run.steps > 300, 2] - s[2]).abs().max()) < 1e-6  # mode 3 never moves off it
        assert (float((z[late, 1] - s[1]).abs().max()) > 0.2) == dragged


def test_divergence_is_data(A):
    run = S.train_linear_net(A, width=6, init_scale=0.5, lr=2.0, steps=200, generator=0, blowup=1e3)
    assert run.diverged and 0 < run.diverged_at <= 200
    assert bool(torch.isfinite(run.loss).all()) and len(run.loss) == len(run.steps) < 201
    assert int(run.steps[-1]) == run.diverged_at  # the history ends at the frozen last finite state


# --- diagonal network -------------------------------------------------------------------------------

BETA = torch.tensor([3.0, 1.5, 0.75, 0.0, 0.0], dtype=torch.float64)


@pytest.fixture(scope="module")
def diagonal():
    return S.train_diagonal_net_sparse(BETA, init_scale=1e-8, lr=0.01, steps=1700)


def test_diagonal_net_is_the_stability_chapters_model():
    assert stability.train_diagonal_net is models.train_diagonal_net  # one model, shared through models
    d = BETA.numel()
    X = math.sqrt(d) * torch.eye(d, dtype=torch.float64)
    ref = models.train_diagonal_net(X, X @ BETA, lr=0.01, steps=300, init_scale=1e-3, record_every=300)
    run = S.train_diagonal_net_sparse(BETA, init_scale=1e-3, lr=0.01, steps=300, record_every=300)
    assert torch.equal(run.beta[-1], ref.beta) and torch.equal(run.loss, ref.loss_history)
    # its loss is 1/2 ||beta - beta*||^2
    assert float(run.loss[-1]) == pytest.approx(0.5 * float(((run.beta[-1] - BETA) ** 2).sum()), rel=1e-12)


def test_diagonal_coordinates_activate_in_order_at_one_over_two_beta(diagonal):
    t = S.half_times(diagonal, BETA[:3]).double()
    assert bool((t[1:] > t[:-1]).all())
    rescaled = t * 0.01 / math.log(1e8)
    assert torch.allclose(rescaled, 1 / (2 * BETA[:3]), rtol=0.10)  # measured 6.2%, 2.6%, 0.0%
    logistic = S.diagonal_learning_time(BETA[:3], init_scale=1e-8, lr=0.01)
    assert torch.allclose(t, logistic, rtol=0.05)  # measured <= 3.1% (discretisation)
    assert bool((diagonal.beta[:, 3:] == 0).all())  # zero targets never move


def test_unlearned_coordinates_stay_tiny_while_one_is_learned(diagonal):
    for i in range(2):
        col = diagonal.beta[:, i:i + 1]
        start = int(S.half_learning_steps(col, BETA[i:i + 1], fraction=0.01))
        end = int(S.half_learning_steps(col, BETA[i:i + 1], fraction=0.99))
        assert 0 <= start < end
        assert float(diagonal.beta[start:end + 1, i + 1:].abs().max()) < 1e-6  # measured 2e-7


def test_negative_targets_activate_by_magnitude():
    beta = torch.tensor([-2.0, 1.0], dtype=torch.float64)
    run = S.train_diagonal_net_sparse(beta, init_scale=1e-6, lr=0.01, steps=1500, record_every=1)
    t = S.half_learning_steps(run.beta, beta, steps=run.steps)
    assert 0 < int(t[0]) < int(t[1])
    assert float(run.beta[-1, 0]) == pytest.approx(-2.0, abs=1e-6)


# --- ReLU network in one dimension ------------------------------------------------------------------

X = torch.linspace(-1, 1, 64, dtype=torch.float64)
Y = 2 * (2 * torch.relu(X) - 3 * torch.relu(X - 0.5))


def test_relu_gradients_are_autograd():
    g = torch.Generator().manual_seed(0)
    a, w, b = (torch.randn(2, 7, generator=g, dtype=torch.float64) for _ in range(3))  # two runs at once
    params = [t.clone().requires_grad_() for t in (a, w, b)]
    loss = 0.5 * ((S.relu_network(X, *params) - Y) ** 2).mean(-1).sum()
    loss.backward()
    for mine, p in zip(S.relu_gradients(X, Y, a, w, b), params):
        assert torch.allclose(mine, p.grad, atol=1e-12)


def test_best_single_unit_is_exact_on_a_single_unit_target():
    fit = S.best_single_unit(X, 3 * torch.relu(X - 0.2))
    assert fit.loss < 1e-10 and fit.kink == pytest.approx(0.2, abs=2e-3) and fit.direction == 1
    left = S.best_single_unit(X, -2 * torch.relu(-(X + 0.4)))
    assert left.loss < 1e-10 and left.direction == -1 and left.coef == pytest.approx(-2, rel=1e-3)


def test_best_single_unit_beats_many_gd_starts_of_a_width_one_network():
    best = S.best_single_unit_loss(X, Y)
    g = torch.Generator().manual_seed(1)
    a, w, b = (torch.randn(256, 1, generator=g, dtype=torch.float64) for _ in range(3))  # 256 starts
    for _ in range(3000):
        ga, gw, gb = S.relu_gradients(X, Y, a, w, b)
        a, w, b = a - 0.1 * ga, w - 0.1 * gw, b - 0.1 * gb
    losses = 0.5 * ((S.relu_network(X, a, w, b) - Y) ** 2).mean(-1)
    assert float(losses.min()) >= best - 1e-9  # nothing found by GD is better
    assert float(losses.min()) == pytest.approx(best, rel=1e-3)  # and the best start finds it
    assert float((losses > 0.4).double().mean()) > 0.05  # many starts die at the zero function


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_relu_plateau_is_the_best_single_unit_with_one_kink(seed):
    run = S.train_relu_1d(X, Y, width=50, init_scale=1e-4, lr=0.1, steps=2000, generator=seed, record_every=250)
    best = S.best_single_unit(X, Y)
    plateau = run.loss[1000:2001]
    assert float((plateau.max() - plateau.min()) / plateau[0]) < 0.01  # flat: measured <= 2.4e-4
    assert float(run.loss[1500]) == pytest.approx(best.loss, rel=1e-4)  # measured 3e-5
    assert float(run.loss[0]) > 5 * best.loss  # a genuine drop
    for k in range(4, 9):  # steps 1000 .. 2000
        loc, slope = run.kinks(k)
        assert len(loc) == 1
        assert float(loc[0]) == pytest.approx(best.kink, abs=0.02)
        assert float(slope[0]) == pytest.approx(best.coef, rel=0.02)
    assert len(run.kinks(0)[0]) == 0  # the start is flat


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_relu_large_init_skips_the_single_unit_plateau(seed):
    best = S.best_single_unit_loss(X, Y)
    run = S.train_relu_1d(X, Y, width=50, init_scale=[1e-4, 0.3], lr=0.1, steps=3000, generator=seed, record_every=3000)
    near = ((run.loss / best - 1).abs() < 0.01).sum(0)
    assert int(near[0]) > 2000  # small start: more than 2000 steps within 1% of L1* (measured 2761 for seed 0)
    assert int(near[1]) < 20  # eps = 0.3 passes L1* without stopping (measured 1-2 steps)
    assert float(run.loss[-1, 1]) < 1e-3 * best  # and has learned the target (measured <= 2.1e-5)


def test_relu_halving_the_learning_rate_doubles_the_plateau():
    # first drop onto the plateau (L < 0.2) and escape from it (L < 0.05), lr = 0.1 against 0.05
    run = S.train_relu_1d(X, Y, width=50, init_scale=1e-2, lr=[0.1, 0.05], steps=6000, generator=0, record_every=6000)
    first = measure.steps_below(run.loss, 0.2).tolist()
    escape = measure.steps_below(run.loss, 0.05).tolist()
    assert first[1] / first[0] == pytest.approx(2.0, rel=0.05)  # measured 1.980 (49 -> 97 steps)
    assert escape[1] / escape[0] == pytest.approx(2.0, rel=0.03)  # measured 1.996 (2267 -> 4526)


def test_relu_runs_batch_without_changing_them():
    kw = dict(width=10, steps=300, generator=3, record_every=100)
    both = S.train_relu_1d(X, Y, init_scale=[1e-3, 1e-1], lr=0.1, **kw)
    one = S.train_relu_1d(X, Y, init_scale=1e-1, lr=0.1, **kw)
    assert both.loss.shape == (301, 2) and one.loss.shape == (301,)
    assert torch.allclose(both.loss[:, 1], one.loss, rtol=1e-12)
    assert torch.allclose(both.a[:, 1], one.a, rtol=1e-12)


def test_relu_divergence_is_flagged_per_run():
    run = S.train_relu_1d(X, Y, width=10, init_scale=0.5, lr=[0.1, 50.0], steps=300, generator=0, blowup=1e4)
    assert run.diverged.tolist() == [False, True]
    assert bool(torch.isfinite(run.loss).all())


def test_relu_kinks_merge_aligned_units_and_drop_tiny_or_outside_ones():
    a = torch.tensor([1.0, 1.0, 1e-4, 2.0, -3.0], dtype=torch.float64)
    w = torch.tensor([1.0, 2.0, 1.0, 1.0, -1.0], dtype=torch.float64)
    b = torch.tensor([-0.3, -0.61, 0.2, -5.0, 0.5], dtype=torch.float64)  # kinks 0.3, 0.305, -0.2, 5, 0.5
    loc, slope = S.relu_kinks(a, w, b, x_range=(-1, 1))
    assert loc.tolist() == pytest.approx([0.3033, 0.5], abs=1e-3)
    assert slope.tolist() == pytest.approx([3.0, -3.0])
    assert len(S.relu_kinks(a, w, b, x_range=(-1, 1), merge=0.001)[0]) == 3


# --- helpers, determinism, bad input -------------------------------------------------------------

def test_half_times_read_the_run_the_chapter_way():
    # the measuring helpers are lessons_lib.measure's (tested in test_measure.py) under the chapter's names
    assert (S.half_learning_steps, S.plateau_losses, S.count_plateaus) == (
        measure.first_crossing, measure.plateau_losses, measure.count_plateaus)
    sv = torch.tensor([[0.0, 0.0], [1.0, 0.1], [2.0, 0.2], [2.0, 0.3]], dtype=torch.float64)
    run = models.LinearNetRun(torch.tensor([0, 10, 20, 30]), sv, torch.zeros(4), torch.tensor([2.0, 1.0]),
                              torch.zeros(2), torch.zeros(1), torch.zeros(1), 0.1, 0.1)
    assert S.half_times(run, [2.0, 1.0]).tolist() == [10, -1] and S.half_times(run, [2.0]).tolist() == [10]
    diag = S.DiagonalSparseRun(torch.tensor([0, 5, 9]), torch.tensor([[0.0, 0.0], [-1.5, 0.2], [-2.0, 0.6]]),
                               torch.zeros(3), torch.tensor([-2.0, 1.0]), 0.1, 0.1, False)
    assert S.half_times(diag, diag.beta_star).tolist() == [5, 9]  # by magnitude, in recorded steps


def test_every_public_function_names_its_equation_and_paper():
    import inspect

    for name, fn in vars(S).items():
        if name.startswith("_") or not inspect.isfunction(fn) or fn.__module__ != S.__name__:
            continue
        doc = fn.__doc__ or ""
        assert re.search(r"\beq-saddle-[a-z-]+", doc), name
        assert "arXiv:" in doc, name


def test_determinism(A):
    a = S.train_linear_net(A, width=6, init_scale=1e-3, lr=0.02, steps=50, generator=7)
    b = S.train_linear_net(A, width=6, init_scale=1e-3, lr=0.02, steps=50, generator=7)
    c = S.train_linear_net(A, width=6, init_scale=1e-3, lr=0.02, steps=50, generator=8)
    assert torch.equal(a.W1, b.W1) and torch.equal(a.loss, b.loss) and not torch.equal(a.W1, c.W1)
    r1 = S.train_relu_1d(X, Y, width=5, init_scale=0.1, lr=0.1, steps=20, generator=7)
    r2 = S.train_relu_1d(X, Y, width=5, init_scale=0.1, lr=0.1, steps=20, generator=7)
    r3 = S.train_relu_1d(X, Y, width=5, init_scale=0.1, lr=0.1, steps=20, generator=8)
    assert torch.equal(r1.a, r2.a) and not torch.equal(r1.a, r3.a)


def test_bad_input_names_the_argument(A):
    lin = dict(width=3, init_scale=0.1, lr=0.1, steps=5)
    cases = [
        (lambda: S.train_linear_net(A[0], **lin), "A"),
        (lambda: S.train_linear_net(A, **{**lin, "width": 0}), "width"),
        (lambda: S.train_linear_net(A, **{**lin, "init_scale": 0.0}), "init_scale"),
        (lambda: S.train_linear_net(A, **{**lin, "lr": -1.0}), "lr"),
        (lambda: S.train_linear_net(A, **{**lin, "steps": -1}), "steps"),
        (lambda: S.train_linear_net(A, **lin, init="spectral"), "init"),
        (lambda: S.train_linear_net(A, **lin, generator=None), "seed_or_generator"),
        (lambda: S.saxe_learning_time([1.0, 0.0], init_scale=0.1, lr=0.1), "s"),
        (lambda: S.random_target([1.0, 2.0, 3.0], d_out=2, d_in=4), "s"),
        (lambda: S.random_target([1.0], d_out=0, d_in=4), "d_out"),
        (lambda: S.saxe_learning_time(1.0, init_scale=0.1, lr=0.0), "lr"),
        (lambda: S.saxe_learning_time(1.0, init_scale=0.1, lr=0.1, rate="euler"), "rate"),
        (lambda: S.saxe_mode_strength(1.0, [0.0], u0=-1.0), "u0"),
        (lambda: S.half_learning_steps(torch.zeros(3, 2), [1.0]), "history"),
        (lambda: S.half_times(torch.zeros(3, 2), [1.0]), "run"),
        (lambda: S.half_times(S.train_linear_net(A, **lin), [1.0] * 7), "s"),
        (lambda: S.half_learning_steps(torch.zeros(3, 2), [1.0, 1.0], fraction=0), "fraction"),
        (lambda: S.plateau_losses(torch.ones(10), [5, 2]), "times"),
        (lambda: S.count_plateaus(torch.ones(10), lr=0), "lr"),
        (lambda: S.train_diagonal_net_sparse(torch.zeros(2, 2), init_scale=0.1, lr=0.1, steps=5), "beta_star"),
        (lambda: S.train_diagonal_net_sparse(BETA, init_scale=-1.0, lr=0.1, steps=5), "init_scale"),
        (lambda: S.diagonal_learning_time(BETA, init_scale=0.0, lr=0.1), "init_scale"),
        (lambda: S.train_relu_1d(X, Y[:-1], width=3, init_scale=0.1, lr=0.1, steps=5), "x"),
        (lambda: S.train_relu_1d(X, Y, width=3, init_scale=[0.1, -0.1], lr=0.1, steps=5), "init_scale"),
        (lambda: S.train_relu_1d(X, Y, width=3, init_scale=[0.1, 0.2], lr=[0.1, 0.2, 0.3], steps=5), "lr"),
        (lambda: S.train_relu_1d(X, Y, width=3, init_scale=0.1, lr=float("nan"), steps=5), "lr"),
        (lambda: S.best_single_unit(X[:1], Y[:1]), "x"),
        (lambda: S.best_single_unit_loss(X, Y[:3]), "x"),
    ]
    for call, name in cases:
        with pytest.raises(ValueError, match=rf"\b{name}\b"):
            call()


# --- the chapter's self-check ---------------------------------------------------------------------

SPECTRUM, EPS, LR = [3.0, 1.5, 0.5], 1e-3, 0.02


from checkcases import shown  # noqa: E402


def test_drop_step_check_verdicts_and_no_leak():
    want = float(S.saxe_learning_time(0.5, init_scale=EPS, lr=LR))
    digits = str(int(want))
    assert len(digits) >= 3
    kw = dict(spectrum=SPECTRUM, mode=3, init_scale=EPS, lr=LR)
    assert check.drop_step(round(want), **kw).status == "correct"
    assert check.drop_step(want * 1.08, **kw).status == "close"
    assert check.drop_step(None, **kw).status == "not attempted"
    for wrong in (want * 0.5, want * 2, want * LR, -3.0, float(S.saxe_learning_time(1.5, init_scale=EPS, lr=LR))):
        res = check.drop_step(wrong, **kw)
        assert res.status == "wrong" and res.message
        assert digits not in shown(res) and f"{want:.3g}" not in shown(res)
    assert "mode 2" in check.drop_step(float(S.saxe_learning_time(1.5, init_scale=EPS, lr=LR)), **kw).message
    assert "instead of a step count" in check.drop_step(want * LR, **kw).message
    assert "learned later" in check.drop_step(want * 0.5, **kw).message  # too early: a stronger mode
    assert "learned sooner" in check.drop_step(want * 2.5, **kw).message
    assert "without the factor 2" in check.drop_step(want * 2, **kw).message  # the mode is right, the rate is not
    for ok in (round(want), want * 1.08):
        assert digits not in shown(check.drop_step(ok, **kw))
    with pytest.raises(ValueError, match="mode"):
        check.drop_step(1.0, spectrum=SPECTRUM, mode=4, init_scale=EPS, lr=LR)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_saddles_on_cuda_follow_the_device():
    A = S.random_target(S_TARGET, d_out=6, d_in=6, generator=0, device="cuda")
    assert A.device.type == "cuda"  # computed on the device of its inputs ...
    run = S.train_linear_net(A, width=6, init_scale=1e-4, lr=0.02, steps=600, generator=0)
    assert run.W1.device.type == "cpu" and run.singular_values.device.type == "cpu"  # ... returned on the host
    t = S.half_times(run, run.target[:3]).double()
    gd = S.saxe_learning_time(run.target[:3], init_scale=1e-4, lr=0.02, u0=run.u0[:3], rate="gd")
    assert float((t / gd - 1).abs().max()) < 0.02
    relu = S.train_relu_1d(X.cuda(), Y.cuda(), width=20, init_scale=1e-4, lr=0.1, steps=200, generator=0)
    assert relu.a.device.type == "cpu" and bool(torch.isfinite(relu.loss).all())
    diag = S.train_diagonal_net_sparse(BETA.cuda(), init_scale=1e-3, lr=0.01, steps=100)
    assert diag.beta.device.type == "cpu"  # every record comes back on the host (backend.Record)


# --- self-check cases (collected by tests/test_course.py) ---

from checkcases import Case  # noqa: E402

_DROP_RIGHT = math.log(0.5 / 1e-6 - 1) / (2 * 0.5 * 0.02)  # ln(s/eps^2 - 1) / (2 s lr), written out
_DROP_MODE2 = math.log(1.5 / 1e-6 - 1) / (2 * 1.5 * 0.02)

CHECK_CASES = {
    "drop_step": Case(_DROP_RIGHT, _DROP_RIGHT * 1.1, (_DROP_MODE2, _DROP_RIGHT * 0.02), expected=[_DROP_RIGHT],
                      inputs=[3.0, 1.5, 0.5, 1e-3, 0.02, 3], rtol=5e-3, close_rtol=0.15,
                      args=dict(spectrum=[3.0, 1.5, 0.5], mode=3, init_scale=1e-3, lr=0.02),
                      hints=((0.0, "a drop happens at a positive step count"),
                             (_DROP_MODE2, "half-learns mode 2 (s = 1.5)"),
                             (math.log(2.0 / 1e-6 - 1) / (2 * 2.0 * 0.02), "a mode of strength s = 2, but mode 3"),
                             (math.log(9.0 / 1e-6 - 1) / (2 * 9.0 * 0.02), "s = 9, stronger than any mode"),
                             (2 * _DROP_RIGHT, "without the factor 2"),  # ln(s/eps^2 - 1) / (s lr)
                             (math.log(0.5 / 1e-3 - 1) / (2 * 0.5 * 0.02), "z0 = eps^2"))),  # eps for eps^2
}


def test_diagonal_learning_time_is_the_half_time_of_the_discrete_logistic():
    # beta_{k+1} = beta_k + 4 lr beta_k (beta* - beta_k) from alpha^2: the steps to beta*/2 against
    # ln(beta*/alpha^2 - 1) / (4 beta* lr), at ratios beta*/alpha^2 of 3.3, 11 and 33 where the -1 matters
    bstar, alpha, lr = torch.tensor([0.3, 1.0, 3.0], dtype=torch.float64), 0.3, 1e-4
    beta, steps = torch.full_like(bstar, alpha**2), torch.zeros_like(bstar)
    for k in range(1, 20_000):
        beta = beta + 4 * lr * beta * (bstar - beta)
        steps[(steps == 0) & (beta >= bstar / 2)] = k
    predicted = S.diagonal_learning_time(bstar, init_scale=alpha, lr=lr)
    assert bool((steps > 0).all())
    assert torch.allclose(steps, predicted, rtol=1e-3)  # measured <= 4.3e-4 (Euler steps, integer k)



def test_best_single_unit_accepts_the_smallest_grid_and_refuses_a_smaller_one():
    x = torch.linspace(-1, 1, 21, dtype=torch.float64)
    y = 2 * torch.relu(x - 0.3)
    coarse = S.best_single_unit(x, y, grid=16)  # the golden-section refinement still finds the exact kink
    assert coarse.loss < 1e-10 and coarse.coef == pytest.approx(2, rel=1e-3)
    with pytest.raises(ValueError, match="^grid:"):
        S.best_single_unit(x, y, grid=15)
    # data far from 0: the scan spans the data +- its width, so 16 points suffice (agree to 1e-13)
    x = torch.linspace(10, 12, 21, dtype=torch.float64)
    y = 2 * torch.relu(x - 11.3) - 0.5 * torch.relu(11.8 - x)
    fine, coarse = S.best_single_unit(x, y), S.best_single_unit(x, y, grid=16)
    assert coarse.loss == pytest.approx(fine.loss, rel=1e-9) and coarse.kink == pytest.approx(fine.kink, rel=1e-6)


def _mode_gd_sequential(s, z0, lr, steps):
    """The mistake of stepping W2 from the already updated W1: two amplitudes, z = a1 a2."""
    s = torch.as_tensor(s, dtype=torch.float64)
    a1 = torch.full_like(s, math.sqrt(z0))
    a2, out = a1.clone(), [a1 * a1]
    for _ in range(steps):
        a1 = a1 + lr * (s - a1 * a2) * a2
        a2 = a2 + lr * (s - a1 * a2) * a1
        out.append(a1 * a2)
    return torch.stack(out)


def _mode_gd(s, z0, lr, steps, *, rule="gd", scale=1.0):
    """Mode strengths of GD on the aligned linear net, written out: a <- a + lr (s - a^2) a and z = a^2.

    ``rule="euler"`` steps the flow for z instead, ``rule="half"`` grows z at the amplitude's rate.
    """
    s = torch.as_tensor(s, dtype=torch.float64)
    z = torch.full_like(s, z0)
    out = [z]
    for _ in range(steps):
        if rule == "gd":
            z = z * (1 + lr * (s - z)) ** 2
        else:
            z = z + (2 if rule == "euler" else 1) * lr * z * (s - z)
        out.append(z)
    return scale * torch.stack(out)


CHECK_CASES["mode_strengths"] = Case(
    _mode_gd, lambda *a: _mode_gd(*a, scale=1.01),
    (lambda *a: _mode_gd(*a, rule="euler"), lambda *a: _mode_gd(*a, rule="half")),
    expected=[float(v) for v in _mode_gd(torch.tensor([3.0, 1.0]), 1e-4, 0.1, 60)[20:61:10].flatten()],
    inputs=[3.0, 1.0, 1e-4, 0.1, 60, 4.0, 2.0, 1.0, 1e-6, 0.05, 150], function=True, rtol=1e-9, close_rtol=0.02,
    nan=lambda s, z0, lr, steps: torch.full((steps + 1, len(s)), math.nan, dtype=torch.float64),
    hints=((lambda *a: _mode_gd(*a, rule="euler"), "an Euler step of the flow"),
           (lambda *a: _mode_gd(*a, rule="half"), "at the amplitude's rate"),
           (lambda *a: _mode_gd(*a)[1:], "one row per step, z_0 included"),
           (lambda s, z0, lr, steps: _mode_gd(s, z0, 1.3 * lr, steps), "multiplies mode 1's strength by"),
           (_mode_gd_sequential, "both matrices step from the same old weights")))


def test_mode_strengths_in_float32_is_close_and_told_to_use_float64():
    def in_float32(s, z0, lr, steps):  # the right recursion, rounded to float32 (relative error ~1e-7)
        s = s.float()
        z = [torch.full_like(s, z0)]
        for _ in range(steps):
            z.append(z[-1] * (1 + lr * (s - z[-1])) ** 2)
        return torch.stack(z)

    result = check.mode_strengths(in_float32)
    assert result.status == "close" and "float64" in result.message


def test_mode_strengths_of_gd_on_the_aligned_net_are_the_squared_amplitude_recursion():
    # the exercise's claim: from the aligned, balanced start GD on the matrices moves each amplitude by
    # a <- a + lr (s - a^2) a exactly, so z_k = a_k^2 (checked to 1e-9 relative, also past the drop)
    s = torch.tensor([4.0, 2.0, 1.0], dtype=torch.float64)
    run = S.train_linear_net(torch.diag(s), width=3, init_scale=1e-3, lr=0.05, steps=200, init="aligned")
    assert torch.allclose(run.singular_values, _mode_gd(s, 1e-6, 0.05, 200), rtol=1e-9)
    assert float(run.singular_values[-1, 0]) == pytest.approx(4.0, rel=1e-6)  # the top mode has been learned
    # and the flow's Euler step is a different, slower recursion (the hint the check gives for it)
    assert float((_mode_gd(s, 1e-6, 0.05, 200, rule="euler") / run.singular_values - 1).abs().max()) > 0.5
