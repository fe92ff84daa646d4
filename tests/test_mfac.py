"""M-FAC (lessons_lib.mfac): the static recursion and the sliding window against a dense inverse, OBS against the
exact constrained minimiser, the pruning study on the digits MLP and M-FAC as an optimiser."""

from __future__ import annotations

import pytest
import torch
from checkcases import Case
from fuzz_specs import Spec

from lessons_lib import check
from lessons_lib import mfac as M

F64 = dict(dtype=torch.float64)


def grads(m, d, seed=0, scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(m, d, generator=gen, **F64) * scale, torch.randn(d, generator=gen, **F64)


def rel(a, b):
    return float((a - b).norm() / b.norm())


# --- claim 1: the static recursion -----------------------------------------------------------------

@pytest.mark.parametrize("lam", [0.1, 1e-3])
def test_static_ihvp_and_diagonal_match_a_dense_inverse_at_m64_d2000(lam):
    """m = 64, d = 2000: measured 5e-15 (IHVP) and 1e-15 (diagonal) at lam = 0.1; about 2e-12 at the chapter's
    lam = 1e-3, where the condition number of F is near 4e4."""
    G, x = grads(64, 2000)
    inv = M.static_inverse(G, damp=lam)
    F = M.dense_fisher(G, damp=lam)
    assert rel(inv.ihvp(x), torch.linalg.solve(F, x)) < 1e-10
    assert rel(inv.diag(), torch.linalg.inv(F).diagonal()) < 1e-10


@pytest.mark.parametrize("m, d, lam", [(1, 5, 1.0), (7, 3, 0.01), (20, 50, 1e-4)])
def test_static_inverse_block_and_batched_ihvp_match_dense(m, d, lam):
    """Including m > d (the Fisher has full rank without damping) and one gradient (Sherman-Morrison once)."""
    G, x = grads(m, d, seed=m)
    inv = M.static_inverse(G, damp=lam)
    Finv = torch.linalg.inv(M.dense_fisher(G, damp=lam))
    X = torch.stack([x, 2 * x + 1])
    assert float((inv.ihvp(X) - X @ Finv).abs().max() / Finv.abs().max()) < 1e-10
    S = torch.tensor([0, d - 1])
    assert torch.allclose(inv.block(S), Finv[S][:, S], rtol=1e-9, atol=1e-12 / lam)


@pytest.mark.parametrize("m, d, s, lam", [(4, 30, 25, 0.1), (20, 15, 3, 1e-3), (8, 60, 59, 1e-4)])
def test_solve_block_by_woodbury_matches_a_dense_solve_of_the_block(m, d, s, lam):
    """OBS's (E_S^T F^{-1} E_S)^{-1} w_S in O(s m^2 + m^3): against torch.linalg.solve of the formed block."""
    G, w = grads(m, d, seed=d)
    inv = M.static_inverse(G, damp=lam)
    S = torch.randperm(d, generator=torch.Generator().manual_seed(s))[:s]
    block = torch.linalg.inv(M.dense_fisher(G, damp=lam))[S][:, S]
    assert rel(inv.solve_block(S, w[S]), torch.linalg.solve(block, w[S])) < 1e-9


def test_fisher_with_one_gradient_has_the_sherman_morrison_closed_form():
    g = torch.tensor([3.0, 4.0], **F64)
    inv = M.static_inverse(g[None], damp=1.0)  # F = I + g g^T, F^{-1} g = g / (1 + |g|^2)
    assert torch.allclose(inv.ihvp(g), g / 26, rtol=1e-14)
    assert torch.allclose(inv.diag(), 1 - g**2 / 26, rtol=1e-14)


def test_damping_to_infinity_gives_x_over_lambda():
    G, x = grads(5, 10)
    inv = M.static_inverse(G, damp=1e8)
    assert rel(inv.ihvp(x) * 1e8, x) < 1e-6


# --- claim 2: the sliding window -------------------------------------------------------------------

def test_window_ihvp_matches_dense_while_filling_and_after_wrapping():
    G, x = grads(11, 30, seed=3)
    m, lam = 4, 0.05
    win = M.window_init(30, m=m, damp=lam)
    assert torch.allclose(M.window_ihvp(win, x), x / lam)
    for i in range(11):
        win = M.window_add(win, G[i])
        k = min(i + 1, m)
        F = M.dense_fisher(G[i + 1 - k:i + 1], damp=lam)  # the last k gradients, weight 1/k
        assert rel(M.window_ihvp(win, x), torch.linalg.solve(F, x)) < 1e-10


def test_replacing_a_gradient_equals_rebuilding_the_window():
    G, x = grads(9, 25, seed=4)
    win = M.window_init(25, m=5, damp=0.01)
    for g in G:
        win = M.window_add(win, g)
    fresh = M.window_init(25, m=5, damp=0.01)
    for g in G[4:]:
        fresh = M.window_add(fresh, g)
    assert rel(M.window_ihvp(win, x), M.window_ihvp(fresh, x)) < 1e-10
    assert torch.allclose(win.gram, win.G @ win.G.T, rtol=1e-12, atol=1e-12)  # the one-row updates stay exact


def test_cholesky_gives_the_factor_of_an_unpivoted_lu():
    """For A = C C^T (SPD) Doolittle's LU without pivoting has U = diag(C) C^T; torch has no unpivoted LU on the CPU."""
    G, _ = grads(6, 20, seed=5)
    A = G @ G.T + 6 * 0.1 * torch.eye(6, **F64)
    C = torch.linalg.cholesky(A)
    U = A.clone()  # Doolittle elimination, no pivoting
    for j in range(6):
        U[j + 1:] -= (U[j + 1:, j:j + 1] / U[j, j]) * U[j]
    assert torch.allclose(torch.triu(U), torch.diag(C.diagonal()) @ C.T, rtol=1e-10, atol=1e-10)
    with pytest.raises(RuntimeError, match="pivot"):
        torch.linalg.lu_factor(A, pivot=False)


def test_operation_counts_scale_linearly_in_d_and_m():
    a, b = M.flops(1000, 32), M.flops(2000, 64)
    assert b["ihvp"] == 4 * a["ihvp"] and b["setup"] == 8 * a["setup"] and b["dense_setup"] > 7.9 * a["dense_setup"]


# --- claim 3: OBS pruning --------------------------------------------------------------------------

@pytest.mark.parametrize("sparsity", [0.1, 0.5, 0.8])
def test_obs_is_the_exact_minimiser_of_the_quadratic_model_with_the_pruned_set_at_zero(sparsity):
    G, w = grads(8, 30, seed=6)
    inv = M.static_inverse(G, damp=0.1)
    F = M.dense_fisher(G, damp=0.1)
    new, mask = M.obs_prune(w, inv, sparsity=sparsity)
    K, S = mask, ~mask
    assert int(S.sum()) == round(sparsity * 30) and bool((new[S] == 0).all())
    # min over dw of dw^T F dw / 2 subject to dw_S = -w_S: dw_K = F_KK^{-1} F_KS w_S
    best_K = w[K] + torch.linalg.solve(F[K][:, K], F[K][:, S] @ w[S])
    assert torch.allclose(new[K], best_K, rtol=1e-9, atol=1e-12)
    # and it beats magnitude pruning on the same quadratic model
    mag, _ = M.magnitude_prune(w, sparsity=sparsity)
    assert (new - w) @ F @ (new - w) <= (mag - w) @ F @ (mag - w) + 1e-12


def test_single_weight_obs_uses_the_textbook_saliency_and_update():
    G, w = grads(6, 12, seed=7)
    inv = M.static_inverse(G, damp=0.2)
    Finv = torch.linalg.inv(M.dense_fisher(G, damp=0.2))
    new, mask = M.obs_prune(w, inv, sparsity=1 / 12)
    q = int(torch.argmin(w**2 / Finv.diagonal()))
    assert not bool(mask[q]) and int((~mask).sum()) == 1
    assert torch.allclose(new, w - w[q] / Finv[q, q] * Finv[:, q], atol=1e-12)


@pytest.mark.parametrize("sparsity", [0.2, 0.6])
def test_summed_correction_is_the_sum_of_single_weight_obs_updates(sparsity):
    """eq-mfac-summed (the public code's update): w - F^{-1} sum_{q in S} e_q w_q / [F^{-1}]_qq against a dense
    inverse; the same mask as the joint correction, no better on the quadratic model, and "none" only zeroes S."""
    G, w = grads(8, 30, seed=8)
    inv = M.static_inverse(G, damp=0.05)
    F = M.dense_fisher(G, damp=0.05)
    Finv = torch.linalg.inv(F)
    summed, mask = M.obs_prune(w, inv, sparsity=sparsity, correction="summed")
    joint, mask_j = M.obs_prune(w, inv, sparsity=sparsity)
    bare, mask_n = M.obs_prune(w, inv, sparsity=sparsity, correction="none")
    assert torch.equal(mask, mask_j) and torch.equal(mask, mask_n)
    S = (~mask).nonzero()[:, 0]
    want = w - sum(w[q] / Finv[q, q] * Finv[:, q] for q in S.tolist())
    want[S] = 0
    assert torch.allclose(summed, want, rtol=1e-9, atol=1e-12)
    assert torch.equal(bare, torch.where(mask, w, torch.zeros_like(w)))
    rise = {k: float((v - w) @ F @ (v - w)) for k, v in (("joint", joint), ("summed", summed), ("none", bare))}
    assert rise["joint"] < rise["summed"] and rise["joint"] < rise["none"], rise


def test_summed_and_joint_corrections_agree_for_one_weight():
    G, w = grads(6, 12, seed=9)
    inv = M.static_inverse(G, damp=0.2)
    a, _ = M.obs_prune(w, inv, sparsity=1 / 12, correction="summed")
    b, _ = M.obs_prune(w, inv, sparsity=1 / 12, correction="joint")
    assert torch.allclose(a, b, rtol=1e-10, atol=1e-13)


def test_magnitude_prune_zeroes_the_smallest_and_keeps_the_rest():
    w = torch.tensor([0.3, -2.0, 0.1, 1.0, -0.05], **F64)
    new, mask = M.magnitude_prune(w, sparsity=0.6)
    assert mask.tolist() == [False, True, False, True, False] and new.tolist() == [0.0, -2.0, 0.0, 1.0, 0.0]
    same, keep = M.obs_prune(w, M.static_inverse(torch.ones(1, 5, **F64), damp=1.0), sparsity=0.0)
    assert bool(keep.all()) and torch.equal(same, w)


@pytest.fixture(scope="module")
def pruned():
    """Per seed 0, 1, 2: the digits MLP trained once (Adam 3e-3, 1500 steps, batch 64) and pruned at 70, 80 and 90 %
    by OBS with m = 512 per-sample gradients (lam = 1e-4) and by magnitude, and at 80 % with m = 128; the pruning
    tests below share it. Measured (seeds 0, 1, 2): OBS 0.955, 0.949, 0.964 at 70 % and 0.829, 0.889, 0.882 at
    80 %; magnitude 0.878, 0.931, 0.918 and 0.639, 0.724, 0.746; at 90 % OBS 0.261, 0.379, 0.423 and magnitude
    0.165, 0.314, 0.405. With m = 128 the 80 % margin drops from 0.189, 0.165, 0.136 to 0.102, 0.049, 0.060.
    With the summed correction instead of the joint one: 0.891, 0.949, 0.942 at 70 %, 0.653, 0.759, 0.746 at 80 %."""
    out = {}
    for seed in (0, 1, 2):
        params = M.train_digits(method="adam", lr=3e-3, steps=1500, batch_size=64, generator=seed,
                                record_every=1500).params
        big = M.pruning_curve(params, sparsities=[0.7, 0.8, 0.9], m=512, damp=1e-4, generator=seed)
        small = M.pruning_curve(params, sparsities=[0.8], m=128, damp=1e-4, generator=seed)
        out[seed] = (big.obs.tolist(), big.magnitude.tolist(), float(small.obs[0] - small.magnitude[0]),
                     big.obs_summed.tolist())
    return out


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_obs_keeps_the_digits_mlp_at_70_percent_but_its_lead_over_magnitude_is_small(pruned, seed):
    """OBS keeps >= 0.93 on every seed. A lead of 0.05 over magnitude pruning did NOT reproduce: the measured leads
    are 0.078, 0.018, 0.047, so only OBS >= magnitude + 0.01 is asserted (the chapter says so)."""
    obs, mag, *_ = pruned[seed]
    assert obs[0] >= 0.93 and obs[0] >= mag[0] + 0.01, (obs, mag)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_obs_leads_magnitude_pruning_by_0_10_at_80_percent(pruned, seed):
    obs, mag, *_ = pruned[seed]
    assert obs[1] >= mag[1] + 0.10, (obs, mag)  # measured leads 0.189, 0.165, 0.136


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_90_percent_breaks_both_pruners(pruned, seed):
    obs, mag, *_ = pruned[seed]
    assert max(obs[2], mag[2]) <= 0.46, (obs, mag)  # measured at most 0.423


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fewer_gradients_shrink_the_80_percent_lead(pruned, seed):
    obs, mag, lead_128, _ = pruned[seed]
    assert lead_128 < obs[1] - mag[1], (lead_128, obs[1] - mag[1])


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_in_one_step_the_summed_correction_loses_the_lead_at_80_percent(pruned, seed):
    """Joint minus summed at 80 %: measured 0.176, 0.129, 0.136; summed minus magnitude: 0.013, 0.036, 0.000.
    At 70 % the joint correction is never worse (leads 0.065, 0.000, 0.022)."""
    obs, mag, _, summed = pruned[seed]
    assert obs[1] >= summed[1] + 0.10 and abs(summed[1] - mag[1]) <= 0.06 and obs[0] >= summed[0], (obs, summed, mag)


# --- claim 4: M-FAC as an optimiser --------------------------------------------------------------

@pytest.mark.slow
def test_mfac_optimiser_reaches_a_small_loss_but_not_below_sgd_with_momentum_and_only_at_lr_0_01():
    """m = 32, lam = 1e-3, lr = 1e-2, 400 steps, batch 64: measured full-data loss 0.0079, 0.0210, 0.0087 (seeds
    0-2); SGD lr 0.5, momentum 0.9: 0.0018, 0.0020, 0.0043; M-FAC at lr 0.1: 0.77, 0.71, 2.71; at lr 0.003: 0.51,
    0.51, 0.52; at lr 0.03: 0.16, 0.12, 0.25 (5.9 to 65 times the loss at lr 0.01)."""
    for seed in (0, 1, 2):
        def mfac_loss(lr, seed=seed):
            return float(M.train_digits(method="mfac", lr=lr, damp=1e-3, m=32, steps=400, generator=seed,
                                        record_every=400).loss[-1])
        mf, slow, fast, bad = (mfac_loss(lr) for lr in (1e-2, 3e-3, 3e-2, 0.1))
        sgd = float(M.train_digits(method="sgd", lr=0.5, momentum=0.9, steps=400, generator=seed,
                                   record_every=400).loss[-1])
        assert 0.003 < mf < 0.045 and sgd < mf and bad > 0.3, (seed, mf, sgd, bad)
        assert min(slow, fast) > 3 * mf, (seed, mf, slow, fast)


def test_mfac_with_huge_damping_is_sgd_at_lr_over_lambda():
    """F^{-1} g = g / lam + O(|g|^2 / lam^2): the gap to plain SGD at lr / lam shrinks like 1 / lam."""
    sgd = M.train_digits(method="sgd", lr=1e-2, momentum=0.0, steps=15, generator=0, record_every=15).params
    gaps = [float((M.train_digits(method="mfac", lr=1e-2 * lam, damp=lam, m=4, steps=15, generator=0,
                                  record_every=15).params - sgd).abs().max()) for lam in (1e3, 1e5)]
    assert gaps[1] < 1e-6 and 50 < gaps[0] / gaps[1] < 200, gaps


def test_mfac_step_is_the_window_ihvp_of_the_batch_gradient():
    """One step from the initialisation: the window holds one gradient g, so the step is -lr g / (lam + |g|^2)."""
    model, data = M.digits_problem()
    theta0 = model.init(torch.Generator().manual_seed(0), dtype=torch.float64, device="cpu")
    g = torch.func.grad(model.loss)(theta0, data.X_train, data.y_train)
    run = M.train_digits(method="mfac", lr=0.3, damp=0.5, m=3, steps=1, batch_size=None, generator=0, record_every=1)
    assert torch.allclose(run.params, theta0 - 0.3 * g / (0.5 + g @ g), rtol=1e-10, atol=1e-13)


def test_same_seed_same_run_and_different_seeds_differ():
    a = M.train_digits(method="mfac", lr=1e-2, steps=5, generator=3, record_every=5)
    b = M.train_digits(method="mfac", lr=1e-2, steps=5, generator=3, record_every=5)
    c = M.train_digits(method="mfac", lr=1e-2, steps=5, generator=4, record_every=5)
    assert torch.equal(a.params, b.params) and torch.equal(a.loss, b.loss) and not torch.equal(a.params, c.params)
    p = M.per_sample_gradients(a.params, m=4, generator=1)
    assert torch.equal(p, M.per_sample_gradients(a.params, m=4, generator=1)) and p.shape == (4, 2410)


def test_per_sample_gradients_average_to_the_batch_gradient():
    model, data = M.digits_problem()
    theta = model.init(0, dtype=torch.float64, device="cpu")
    G = M.per_sample_gradients(theta, m=len(data.y_train), generator=0)
    full = torch.func.grad(model.loss)(theta, data.X_train, data.y_train)
    assert torch.allclose(G.mean(0), full, atol=1e-12)


def test_adam_and_sgd_lower_the_loss():
    for method, lr in (("adam", 3e-3), ("sgd", 0.1)):
        r = M.train_digits(method=method, lr=lr, steps=30, generator=0, record_every=30)
        assert float(r.loss[-1]) < float(r.loss[0]) and not r.diverged


def test_mfac_diverges_as_data_at_an_absurd_learning_rate():
    r = M.train_digits(method="mfac", lr=1e9, steps=5, generator=0, record_every=1)
    assert r.diverged and bool(torch.isfinite(r.loss).all()) and bool(torch.isfinite(r.params).all())


# --- bad input ---------------------------------------------------------------------------------

def test_bad_input_names_the_argument():
    G, x = grads(3, 4)
    for damp in (0.0, -1.0):
        with pytest.raises(ValueError, match="^damp:"):
            M.static_inverse(G, damp=damp)
        with pytest.raises(ValueError, match="^damp:"):
            M.window_init(4, m=2, damp=damp)
        with pytest.raises(ValueError, match="^damp:"):
            M.train_digits(method="mfac", lr=0.1, steps=1, damp=damp)
    with pytest.raises(ValueError, match="^G:"):
        M.static_inverse(G[0], damp=1.0)
    with pytest.raises(ValueError, match="^x:"):
        M.static_inverse(G, damp=1.0).ihvp(torch.ones(5, **F64))
    with pytest.raises(ValueError, match="^g:"):
        M.window_add(M.window_init(4, m=2, damp=1.0), torch.ones(3, **F64))
    with pytest.raises(ValueError, match="^state:"):
        M.window_ihvp((G,), x)
    with pytest.raises(ValueError, match="^sparsity:"):
        M.obs_prune(x, M.static_inverse(G, damp=1.0), sparsity=1.0)
    with pytest.raises(ValueError, match="^b:"):
        M.static_inverse(G, damp=1.0).solve_block(torch.tensor([0, 1]), torch.ones(3, **F64))
    with pytest.raises(ValueError, match="^index:"):
        M.static_inverse(G, damp=1.0).solve_block(torch.tensor([0, 4]), torch.ones(2, **F64))
    with pytest.raises(ValueError, match="^correction:"):
        M.obs_prune(x, M.static_inverse(G, damp=1.0), sparsity=0.5, correction="blocked")
    with pytest.raises(ValueError, match="^inverse:"):
        M.obs_prune(torch.ones(5, **F64), M.static_inverse(G, damp=1.0), sparsity=0.5)
    with pytest.raises(ValueError, match="^method:"):
        M.train_digits(method="lbfgs", lr=0.1, steps=1)
    with pytest.raises(ValueError, match="^momentum:"):
        M.train_digits(method="sgd", lr=0.1, steps=1, momentum=1.0)
    with pytest.raises(ValueError, match="^m:"):
        M.per_sample_gradients(torch.zeros(2410, **F64), m=5000)


# --- the self-check's cases (tests/test_course.py) ------------------------------------------------

def _ihvp_dense(G, x, damp):
    return torch.linalg.solve(M.dense_fisher(G, damp=damp), x)


def test_self_check_rejects_a_dense_solve_and_passes_the_recursion():
    assert check.mfac.ihvp(_ihvp_written_out).status == "correct"
    verdict = check.mfac.ihvp(_ihvp_dense)
    assert verdict.status == "wrong" and "d x d" in verdict.message


def _ihvp_written_out(G, x, damp, *, weight=True, recursion=True, sign=1.0, scale=1.0):
    m = G.shape[0]
    n = m if weight else 1
    V, den = [], []
    for g in G:
        v = g / damp
        if recursion:
            for vj, dj in zip(V, den):
                v = v - (vj @ g) / dj * vj
        V.append(v)
        den.append(n + g @ v)
    out = x / damp - sign * sum((v @ x) / d * v for v, d in zip(V, den))
    return out * scale


_EXPECTED = [v for G, x, damp in check.mfac.IHVP_CASES.values() for v in _ihvp_written_out(G, x, damp).tolist()]

CHECK_CASES = {
    "ihvp": Case(
        _ihvp_written_out, lambda G, x, damp: _ihvp_written_out(G, x, damp, scale=1.01),
        (lambda G, x, damp: _ihvp_written_out(G, x, damp, weight=False),
         lambda G, x, damp: _ihvp_written_out(G, x, damp, recursion=False),
         lambda G, x, damp: _ihvp_written_out(G, x, damp, sign=-1.0), _ihvp_dense),
        expected=_EXPECTED, inputs=[3, 6, 0.5, 8, 40, 0.01, 5, 12, 0.1, 1, 2, 4], function=True,
        nan=lambda G, x, damp: torch.full_like(x, float("nan")),
        hints=((lambda G, x, damp: _ihvp_written_out(G, x, damp, weight=False), "weight 1/m"),
               (lambda G, x, damp: _ihvp_written_out(G, x, damp, recursion=False), "earlier"),
               (lambda G, x, damp: _ihvp_written_out(G, x, damp, sign=-1.0), "wrong sign"),
               (lambda G, x, damp: x / damp, "terms are missing"), (_ihvp_dense, "d x d"))),
}


def _mfac_runner(mult):
    """M-FAC from the initialisation with lam = 1: the first step is -lr g / (1 + |g|^2), so lr of order 1 is the
    scale of a stable step; mult times it, 20 steps. The tanh network's gradients are bounded, so the weights grow
    only linearly in lr: at 10x and 1e6x they stay inside the divergence ball (radius 1e6 times the initial state's
    norm; at 1e6x the training loss is near 1e6, a wrecked but bounded run), and at 1e300x the first step leaves it.
    The shared claims cannot say "from 1e300x", so the case checks its own: no flag below 1e300x, and at 1e300x the
    flag at step 1 with the weights frozen at the initialisation and the loss history finite."""
    r = M.train_digits(method="mfac", lr=float(mult), damp=1.0, m=2, steps=20, batch_size=16, generator=0,
                       record_every=1)
    if mult >= 1e300:
        model, _ = M.digits_problem()
        theta0 = model.init(torch.Generator().manual_seed(0), dtype=torch.float64, device="cpu")
        assert r.diverged and r.diverged_at == 1 and torch.equal(r.params, theta0), (r.diverged, r.diverged_at)
        assert len(r.loss) == 2 and bool(torch.isfinite(r.loss).all()), r.loss
    else:
        assert not r.diverged and len(r.loss) == 21, (mult, r.diverged_at)
    return r


DIVERGENCE_CASES = {"mfac.train_digits": (_mfac_runner, None, ())}  # its own checks above: flagged from 1e300x
NOT_RUNNERS = {}


def _inverse():
    return M.static_inverse(grads(3, 6)[0], damp=0.5)


FUZZ_SPECS = {
    "mfac.static_inverse": Spec(lambda: dict(G=grads(3, 6)[0], damp=0.5), positive="damp"),
    "mfac.dense_fisher": Spec(lambda: dict(G=grads(3, 6)[0], damp=0.5), positive="damp"),
    "mfac.window_init": Spec(lambda: dict(d=6, m=3, damp=0.5, dtype=torch.float64, device="cpu"),
                             positive="damp", skip="dtype device"),  # dtype, device: passed on to torch.zeros
    "mfac.window_add": Spec(lambda: dict(state=M.window_init(6, m=3, damp=0.5), g=grads(3, 6)[1])),
    "mfac.window_ihvp": Spec(lambda: dict(state=M.window_init(6, m=3, damp=0.5), x=grads(3, 6)[1])),
    "mfac.obs_prune": Spec(lambda: dict(w=grads(3, 6)[1], inverse=_inverse(), sparsity=0.5, correction="summed"),
                           nonneg="sparsity"),
    "mfac.magnitude_prune": Spec(lambda: dict(w=grads(3, 6)[1], sparsity=0.5), nonneg="sparsity"),
    "mfac.per_sample_gradients": Spec(lambda: dict(params=torch.zeros(2410, **F64), m=3, generator=0)),
    "mfac.train_digits": Spec(lambda: dict(method="mfac", lr=0.01, steps=2, damp=1e-3, m=2, momentum=0.9,
                                                batch_size=8, generator=0, record_every=1, device="cpu"),
                              positive="lr damp", nonneg="momentum", skip="device batch_size"),
    # device: torch's to decide; batch_size: None is valid (the full batch)
    "mfac.pruning_curve": Spec(lambda: dict(params=torch.zeros(2410, **F64), sparsities=[0.5], m=2, damp=0.1,
                                                 generator=0), positive="damp"),
    "mfac.flops": Spec(lambda: dict(d=10, m=2)),
    "mfac.StaticInverse.ihvp": Spec(lambda: dict(x=grads(3, 6)[1]), instance=_inverse),
    "mfac.StaticInverse.diag": Spec(lambda: dict(), instance=_inverse),
    "mfac.StaticInverse.block": Spec(lambda: dict(index=torch.tensor([0, 2])), instance=_inverse),
    "mfac.StaticInverse.solve_block": Spec(lambda: dict(index=torch.tensor([0, 2]), b=grads(3, 2)[1]),
                                           instance=_inverse),
    "check.mfac.ihvp": Spec(lambda: dict(fn=lambda G, x, damp: x / damp), skip="fn"),  # fn: the learner's function
}
FUZZ_OPT_OUT = {"mfac.digits_problem": "takes only a dtype and a device, passed on to the shared digits split"}
