"""Ninou, Kadmon & Cayco-Gajic (2025): curl descent. Margins from our runs (see the chapter)."""


import pytest
import torch

from lessons_lib import curl as C
from lessons_lib import measure


def small_net(seed=0, M=4, N=6, n=20):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, M, generator=g, dtype=torch.float64)
    y = X @ torch.randn(M, generator=g, dtype=torch.float64)
    p = torch.randn(N * M + N, generator=g, dtype=torch.float64)
    return X, y, p, M, N


def test_gd_field_is_a_gradient_and_flips_add_curl():
    X, y, p, M, N = small_net()
    ones_M, ones_N = torch.ones(M, dtype=torch.float64), torch.ones(N, dtype=torch.float64)

    def loss(q):
        W1, w2 = q[: N * M].view(N, M), q[N * M:]
        return 0.5 * ((X @ W1.T @ w2 - y) ** 2).mean()

    gd = C.learning_field_jacobian(lambda q: C.network_field(q, X=X, y=y, D1=ones_M, D2=ones_N), p)
    assert torch.allclose(C.network_field(p, X=X, y=y, D1=ones_M, D2=ones_N), -torch.func.grad(loss)(p))
    assert C.curl_fraction(gd) < 1e-12
    for D1, D2 in ((ones_M.clone().index_fill_(0, torch.tensor([0]), -1.0), ones_N),
                   (ones_M, ones_N.clone().index_fill_(0, torch.tensor([2]), -1.0))):
        J = C.learning_field_jacobian(lambda q, D1=D1, D2=D2: C.network_field(q, X=X, y=y, D1=D1, D2=D2), p)
        assert C.curl_fraction(J) > 1e-3
    chain_gd = C.learning_field_jacobian(lambda w: C.chain_field(w, a=1.0, flipped=False), [0.4, 0.9])
    chain_curl = C.learning_field_jacobian(lambda w: C.chain_field(w, a=1.0, flipped=True), [0.4, 0.9])
    assert C.curl_fraction(chain_gd) < 1e-12 and C.curl_fraction(chain_curl) > 1e-3


@pytest.mark.slow  # about 4 s alone, 9-12 s on two busy cores
def test_scalar_chain_conserves_radius_and_threshold():
    good = C.scalar_chain([0.3, 1.6], a=1.0, lr=1e-3, steps=20_000)  # r0^2 = 2.65 >= 2a
    bad = C.scalar_chain([0.5, 1.0], a=1.0, lr=1e-3, steps=20_000)  # r0^2 = 1.25 < 2a
    r2 = (bad.params**2).sum(dim=1)
    assert float((r2 - r2[0]).abs().max() / r2[0]) < 0.02  # measured 1.6% (Euler drifts upwards)
    assert float(r2[-1]) > float(r2[0])
    assert float(good.loss[-1]) < 1e-10 and float(bad.loss[-1]) > 1e-3
    gd = C.scalar_chain([0.5, 1.0], a=1.0, lr=1e-2, steps=5000, flipped=False)
    assert float(gd.loss[-1]) < 1e-10  # GD learns from the same start
    w1sq_minus_w2sq = gd.params[:, 0] ** 2 - gd.params[:, 1] ** 2
    assert float((w1sq_minus_w2sq - w1sq_minus_w2sq[0]).abs().max()) < 0.05


@pytest.mark.parametrize("a", [0.5, 1.0, 2.0])
def test_origin_is_a_center(a):
    J = C.learning_field_jacobian(lambda w: C.chain_field(w, a=a, flipped=True), [0.0, 0.0])
    ev = torch.linalg.eigvals(J)
    assert float(ev.real.abs().max()) < 1e-12
    assert sorted(ev.imag.tolist()) == pytest.approx([-a, a])


def _error_rate(W1, w2, dW1, dw2):
    """d/dt of the end-to-end weights W1^T w2 along the velocities (dW1, dw2) (product rule)."""
    return dW1.T @ w2 + W1.T @ dw2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stability_matrix_is_exact_for_the_plain_flow_and_not_for_the_rescaled_one(seed):
    """delta' = -K Sigma delta for the plain field of a linear student (eq-curl-stability); the per-layer
    norm rescaling that the chapter's runs use removes each layer's radial part and breaks the identity."""
    g = torch.Generator().manual_seed(seed)
    M, N, n = 5, 3, 40
    X = torch.randn(n, M, generator=g, dtype=torch.float64)
    beta = torch.randn(M, generator=g, dtype=torch.float64)
    W1, w2 = torch.randn(N, M, generator=g, dtype=torch.float64), torch.randn(N, generator=g, dtype=torch.float64)
    D1 = torch.tensor([-1.0, 1, 1, -1, 1], dtype=torch.float64)
    D2 = torch.tensor([1.0, -1, 1], dtype=torch.float64)
    F = C.network_field(torch.cat([W1.flatten(), w2]), X=X, y=X @ beta, D1=D1, D2=D2)
    dW1, dw2 = F[: N * M].view(N, M), F[N * M:]
    delta, Sigma = W1.T @ w2 - beta, X.T @ X / n
    predicted = -C.stability_matrix(W1, w2, D1, D2) @ Sigma @ delta
    plain = _error_rate(W1, w2, dW1, dw2)
    assert torch.allclose(plain, predicted, rtol=1e-12, atol=1e-12 * float(predicted.norm()))
    # the rescaled flow: each layer's velocity without its component along the layer (the norm stays put)
    rW1 = dW1 - W1 * (W1 * dW1).sum() / (W1 * W1).sum()
    rw2 = dw2 - w2 * (w2 @ dw2) / (w2 @ w2)
    rescaled = _error_rate(W1, w2, rW1, rw2)
    assert float((rescaled - predicted).norm()) > 0.05 * float(predicted.norm())  # measured 0.3-0.9


def test_expansive_tolerates_all_inputs_flipped_compressive_fails_with_five():
    exp = C.train_student_teacher(n_inputs=10, n_hidden=50, flipped_inputs=10, steps=5000, record_every=5000,
                                  renormalize=True)
    comp = C.train_student_teacher(n_inputs=40, n_hidden=10, flipped_inputs=5, steps=5000, record_every=5000,
                                   renormalize=True)
    assert bool((exp.loss[-1] < 1e-8).all())  # measured <= 5e-31 on 3/3 seeds
    assert bool((comp.loss[-1] > 1e-3).all())  # measured 0.14-0.30
    assert bool((exp.lam_min[-1] > 0).all()) and bool((comp.lam_min[-1] < 0).all())
    # lambda_min(K) at initialisation would have predicted failure for one expansive seed, which learns anyway
    assert bool((exp.lam_min[0] < 0).any())  # measured 3.25, 3.15, -0.45


@pytest.mark.slow  # about 15 s alone
def test_one_flipped_hidden_unit_speeds_a_contracting_net_only_without_rescaling():
    """The paper's speed-up architecture 100 -> 10 -> 1 at init scale 2 (full batch here), three draws of six seeds
    (the chapter shows the first two): without the weight-norm rescaling one flipped hidden unit reaches loss 1e-6
    several times sooner than GD, because GD shrinks ||w2|| more; with the rescaling there is no systematic speed-up,
    seeds differ by up to about 25 % either way, and the flipped run is more often slower than faster."""
    faster = slower = 0
    for seed in (0, 1, 2):
        kw = dict(n_inputs=100, n_hidden=10, init_scale=2.0, lr=0.1, n_samples=150, steps=2000, record_every=20,
                  seeds=6, generator=seed)
        runs = {(renorm, k): C.train_student_teacher(flipped_hidden=k, renormalize=renorm, **kw)
                for renorm in (True, False) for k in (0, 1)}
        hit = {key: measure.steps_below(r.loss, 1e-6, steps=r.steps).double() for key, r in runs.items()}
        for h in hit.values():
            h[h < 0] = float("inf")  # not reached within the 2000 steps
        free, pinned = hit[False, 1] / hit[False, 0], hit[True, 1] / hit[True, 0]
        assert bool(torch.isfinite(hit[False, 1]).all())  # without rescaling the flipped unit always gets there
        assert float(free.median()) < 0.5  # measured 0.29, 0.33, 0.22
        assert int((free < 0.9).sum()) >= 5  # measured 5, 6, 6 of 6 (one tie)
        assert 0.9 < float(pinned.median()) < 1.15  # measured 1.00, 1.04, 1.06: no systematic speed-up
        finite = pinned[torch.isfinite(pinned)]
        assert bool(((finite > 0.7) & (finite < 1.3)).all())  # measured 0.74-1.22: within about +-25 %
        faster += int((pinned < 0.9).sum())
        slower += int((pinned > 1.1).sum())
        norm0 = runs[True, 0].w2.norm(dim=1)  # the rescaled runs keep the initial norm
        assert bool((runs[False, 0].w2.norm(dim=1) < 0.8 * norm0).all())  # GD shrinks ||w2||: measured 0.41-0.71
        # the flipped unit shrinks it less (one near-tie in seed 0: 0.64 and 0.64)
        assert bool((runs[False, 1].w2.norm(dim=1) >= 0.99 * runs[False, 0].w2.norm(dim=1)).all())
    assert faster <= 2 and slower > faster  # measured 2 faster (0.89, 0.74) and 4 slower of 18


def test_more_flipped_inputs_than_hidden_units_is_always_unstable():
    """k flipped inputs with k > N: the span of the flipped axes meets the null space of W1^T D2 W1, and there
    v^T K v = -||w2||^2, so lambda_min(K) <= -||w2||^2 at any weights (eq-curl-stability); with k <= N it need
    not be."""
    g = torch.Generator().manual_seed(0)
    M, N = 12, 4
    for k in (5, 8, 12):
        for _ in range(20):
            W1 = 3.0 * torch.randn(N, M, generator=g, dtype=torch.float64)  # large W1: covering would need only rank
            w2 = torch.randn(N, generator=g, dtype=torch.float64)
            D1 = torch.ones(M, dtype=torch.float64)
            D1[torch.randperm(M, generator=g)[:k]] = -1.0
            D2 = torch.where(torch.rand(N, generator=g) < 0.25, -1.0, 1.0).double()
            lam = float(torch.linalg.eigvalsh(C.stability_matrix(W1, w2, D1, D2))[0])
            assert lam <= -float(w2 @ w2) * (1 - 1e-9)
    # with k <= N a large W1 can cover the flipped axes: the bound is not a property of any flip
    W1 = torch.zeros(N, M, dtype=torch.float64)
    W1[torch.arange(N), torch.arange(N)] = 3.0  # each hidden unit reads one of the first N inputs
    D1 = torch.ones(M, dtype=torch.float64)
    D1[:N] = -1.0
    w2 = torch.ones(N, dtype=torch.float64)
    K = C.stability_matrix(W1, w2, D1, torch.ones(N, dtype=torch.float64))
    assert float(torch.linalg.eigvalsh(K[:N, :N])[0]) > 0  # the flipped block is covered: 9 - 4 = 5


@pytest.mark.slow  # about 4 s alone, 9-12 s on two busy cores
def test_sign_of_lambda_min_predicts_success():
    configs = [dict(n_inputs=M, n_hidden=N, flipped_inputs=fi, flipped_hidden=fh)
               for M, N, fi, fh in [(10, 50, 10, 0), (40, 10, 5, 0), (40, 10, 1, 0), (10, 50, 0, 50), (40, 10, 0, 10),
                                    (20, 20, 10, 0)]]
    census = C.sign_census(configs, steps=3000, seeds=2, renormalize=True)
    assert census.final_loss.shape == census.lam_min.shape == census.learned.shape == (6, 2)
    assert census.total == 12
    assert census.agree >= 0.9 * census.total  # measured 36/36 over 12 configurations x 3 seeds


def test_sign_census_counts_agreement_like_the_runs_it_makes():
    configs = [dict(n_inputs=6, n_hidden=12, flipped_inputs=6), dict(n_inputs=12, n_hidden=4, flipped_inputs=6)]
    census = C.sign_census(configs, steps=400, seeds=2, generator=5, renormalize=True, tol=1e-3)
    runs = [C.train_student_teacher(**c, steps=400, seeds=2, generator=5, renormalize=True, record_every=400)
            for c in configs]
    assert torch.equal(census.final_loss, torch.stack([r.loss[-1] for r in runs]))
    assert torch.equal(census.lam_min, torch.stack([r.lam_min[-1] for r in runs]))
    assert torch.equal(census.learned, torch.stack([r.learned(1e-3) for r in runs]))
    assert torch.equal(census.lam_min_start, torch.stack([r.lam_min[0] for r in runs]))
    assert census.agree_at_start == sum(int((r.learned(1e-3) == (r.lam_min[0] > 0)).sum()) for r in runs)
    assert census.agree == sum(int((r.learned(1e-3) == (r.lam_min[-1] > 0)).sum()) for r in runs)
    with pytest.raises(ValueError, match="^configs:"):
        C.sign_census([], steps=10)
    with pytest.raises(ValueError, match="^tol:"):
        C.sign_census(configs, steps=10, tol=0.0)


@pytest.mark.slow  # about 4 s alone, 9-12 s on two busy cores
def test_one_flipped_hidden_unit_learns_like_gd():
    one = C.train_student_teacher(n_inputs=10, n_hidden=50, flipped_hidden=1, steps=5000, record_every=5000,
                                  renormalize=True)
    gd = C.train_student_teacher(n_inputs=10, n_hidden=50, steps=5000, record_every=5000, renormalize=True)
    assert bool((one.loss[-1] < 1e-8).all()) and bool((gd.loss[-1] < 1e-8).all())


def test_stability_matrix_formula_and_gd_case():
    g = torch.Generator().manual_seed(1)
    W1 = torch.randn(5, 3, generator=g, dtype=torch.float64)
    w2 = torch.randn(5, generator=g, dtype=torch.float64)
    D1 = torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)
    D2 = torch.tensor([1.0, 1.0, -1.0, 1.0, 1.0], dtype=torch.float64)
    K = C.stability_matrix(W1, w2, D1, D2)
    assert torch.allclose(K, (w2 @ w2) * torch.diag(D1) + W1.T @ torch.diag(D2) @ W1)
    Kgd = C.stability_matrix(W1, w2, torch.ones(3, dtype=torch.float64), torch.ones(5, dtype=torch.float64))
    assert float(torch.linalg.eigvalsh(Kgd)[0]) > 0


def test_determinism_divergence_and_bad_input():
    a = C.train_student_teacher(n_inputs=5, n_hidden=8, flipped_inputs=1, steps=200, record_every=100, generator=4)
    b = C.train_student_teacher(n_inputs=5, n_hidden=8, flipped_inputs=1, steps=200, record_every=100, generator=4)
    assert torch.equal(a.W1, b.W1) and torch.equal(a.loss, b.loss)
    for kwargs, name in [(dict(flipped_inputs=6), "flipped_inputs"), (dict(flipped_hidden=9), "flipped_hidden"),
                         (dict(activation="relu"), "activation"), (dict(lr=0.0), "lr"),
                         (dict(batch_size=0), "batch_size"), (dict(blowup=0.0), "blowup"),
                         (dict(generator=None), "seed_or_generator")]:
        with pytest.raises(ValueError, match=name):
            C.train_student_teacher(n_inputs=5, n_hidden=8, steps=10, **kwargs)
    with pytest.raises(ValueError, match="w0"):
        C.scalar_chain([1.0], a=1.0, lr=0.1, steps=10)
    with pytest.raises(ValueError, match="J"):
        C.curl_fraction(torch.zeros(2, 3))


def test_renormalize_is_off_by_default_and_holds_the_layer_norms():
    kw = dict(n_inputs=5, n_hidden=8, flipped_inputs=1, steps=300, record_every=300, generator=2)
    default, off, on = (C.train_student_teacher(**kw, **extra) for extra in ({}, dict(renormalize=False),
                                                                             dict(renormalize=True)))
    assert torch.equal(default.W1, off.W1) and torch.equal(default.w2, off.w2) and torch.equal(default.loss, off.loss)
    start = C.train_student_teacher(**(kw | dict(steps=1)), renormalize=True)  # one step: still the initial norms
    assert torch.allclose(on.W1.norm(dim=(1, 2)), start.W1.norm(dim=(1, 2)), rtol=1e-12)
    assert torch.allclose(on.w2.norm(dim=1), start.w2.norm(dim=1), rtol=1e-12)
    # without the rescaling the weight norms move (measured: by 0.02 %, 3.0 % and 3.3 % over these 300 steps)
    assert float((off.W1.norm(dim=(1, 2)) / on.W1.norm(dim=(1, 2)) - 1).abs().max()) > 0.01
    assert not torch.allclose(off.W1, on.W1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_huge_learning_rate_diverges_frozen_finite_and_flagged(seed):
    steps = 200
    wild = C.train_student_teacher(n_inputs=5, n_hidden=8, lr=50.0, steps=steps, record_every=10, generator=seed)
    assert bool(wild.diverged.all()) and bool((wild.diverged_at > 0).all()) and bool((wild.diverged_at < steps).all())
    for name in ("loss", "lam_min", "W1", "w2"):
        assert bool(torch.isfinite(getattr(wild, name)).all()), name
    # every run left the ball of radius blowup * max(1, ||theta_0||) and stopped there; the loop stops with the last one
    assert int(wild.steps[-1]) == int(wild.diverged_at.max())
    tame = C.train_student_teacher(n_inputs=5, n_hidden=8, lr=50.0, steps=steps, record_every=10, generator=seed,
                                   blowup=1e12)
    assert bool((tame.diverged_at >= wild.diverged_at).all())  # a larger radius is left later
    assert not bool(C.train_student_teacher(n_inputs=5, n_hidden=8, steps=steps, generator=seed).diverged.any())


def test_student_teacher_records_are_on_the_host():
    run = C.train_student_teacher(n_inputs=4, n_hidden=6, steps=20, record_every=10)
    for name in ("steps", "loss", "lam_min", "W1", "w2", "D1", "D2", "diverged", "diverged_at"):
        assert getattr(run, name).device.type == "cpu", name
    assert run.loss.shape == run.lam_min.shape == (3, 3) and run.steps.tolist() == [0, 10, 20]


# --- batched runs: several starts / learning rates in one loop, each run exactly its single call ---

CHAIN_STARTS = [(0.3, 1.6), (1.6, 0.3), (0.5, 1.0), (1.0, 0.5), (-0.8, 0.6)]


@pytest.mark.parametrize("flipped", [False, True])
def test_scalar_chain_batch_of_starts_and_rates_is_the_loop_of_single_calls(flipped):
    rates = [0.02, 0.3, 1.5]  # at the larger rates some runs leave the ball of radius 20 max(1, ||w0||)
    w0 = torch.tensor(CHAIN_STARTS, dtype=torch.float64).repeat(len(rates), 1)
    lr = [eta for eta in rates for _ in CHAIN_STARTS]
    batch = C.scalar_chain(w0, a=1.0, lr=lr, steps=200, flipped=flipped, blowup=20.0)
    assert batch.params.shape == (201, 15, 2) and batch.loss.shape == (201, 15)
    assert torch.equal(batch.lr, torch.tensor(lr, dtype=torch.float64))
    assert bool(torch.isfinite(batch.params).all()) and bool(torch.isfinite(batch.loss).all())
    for i in range(len(lr)):
        one = C.scalar_chain(w0[i], a=1.0, lr=lr[i], steps=200, flipped=flipped, blowup=20.0)
        k = len(one.params)  # it ends at divergence; the batch keeps the run frozen there
        assert torch.equal(batch.params[:k, i], one.params) and torch.equal(batch.loss[:k, i], one.loss), i
        assert bool((batch.params[k:, i] == one.params[-1]).all()), i
        assert bool(batch.diverged[i]) == one.diverged
        assert int(batch.diverged_at[i]) == (one.diverged_at if one.diverged else -1)
    assert 0 < int(batch.diverged.sum()) < len(lr)  # measured 3 of 15 under GD, 6 under curl descent
    same_rate = C.scalar_chain(w0[:5], a=1.0, lr=0.3, steps=200, flipped=flipped, blowup=20.0)  # a number: every run
    assert torch.equal(same_rate.params, batch.params[:, 5:10]) and same_rate.lr == 0.3


def test_scalar_chain_batch_ends_at_the_last_divergence_and_keeps_the_single_start_call():
    w0 = torch.tensor([[1.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    wild = C.scalar_chain(w0, a=1.0, lr=[10.0, 20.0], steps=50, flipped=False)  # GD far past its critical rate
    assert bool(wild.diverged.all()) and len(wild.params) == int(wild.diverged_at.max()) + 1
    assert bool(torch.isfinite(wild.params).all()) and bool(torch.isfinite(wild.loss).all())
    one = C.scalar_chain([0.5, 1.0], a=1.0, lr=0.1, steps=10)  # one start: as before, plain numbers
    assert one.params.shape == (11, 2) and one.diverged is False and one.diverged_at is None and one.lr == 0.1


@pytest.mark.parametrize("kwargs", [
    dict(n_inputs=5, n_hidden=8, flipped_inputs=2, renormalize=True),
    dict(n_inputs=6, n_hidden=12, flipped_hidden=3, activation="tanh", seeds=3),
    dict(n_inputs=6, n_hidden=4, flipped_inputs=2, batch_size=5, n_samples=30, renormalize=True),  # minibatches
], ids=["renormalized", "tanh", "minibatch"])
def test_student_teacher_batch_of_rates_is_the_loop_of_single_calls(kwargs):
    rates = [0.02, 0.05, 0.2]
    kw = dict(steps=300, record_every=25, generator=3) | kwargs
    batch = C.train_student_teacher(lr=rates, **kw)
    S = kw.get("seeds", 3)
    assert batch.loss.shape == batch.lam_min.shape == (13, 3, S) and batch.diverged.shape == (3, S)
    for i, lr in enumerate(rates):
        one = C.train_student_teacher(lr=lr, **kw)
        for name in ("loss", "lam_min"):
            assert torch.equal(getattr(batch, name)[:, i], getattr(one, name)), (lr, name)
        for name in ("W1", "w2", "diverged", "diverged_at"):
            assert torch.equal(getattr(batch, name)[i], getattr(one, name)), (lr, name)
        assert torch.equal(batch.D1, one.D1) and torch.equal(batch.D2, one.D2) and torch.equal(batch.steps, one.steps)
    assert torch.equal(batch.learned(1e-3)[1], C.train_student_teacher(lr=0.05, **kw).learned(1e-3))


def test_student_teacher_rates_diverge_on_their_own():
    kw = dict(n_inputs=5, n_hidden=8, steps=200, record_every=10, generator=1)
    batch = C.train_student_teacher(lr=[0.05, 50.0], **kw)
    wild = C.train_student_teacher(lr=50.0, **kw)
    assert not bool(batch.diverged[0].any()) and bool(batch.diverged[1].all())
    assert torch.equal(batch.diverged_at[1], wild.diverged_at) and torch.equal(batch.W1[1], wild.W1)
    assert int(batch.steps[-1]) == 200 > int(wild.steps[-1])  # the tame rate goes on; the wild one stays frozen
    for name in ("loss", "lam_min", "W1", "w2"):
        assert bool(torch.isfinite(getattr(batch, name)).all()), name
    common = torch.isin(wild.steps, batch.steps)
    assert torch.equal(batch.loss[: int(common.sum()), 1], wild.loss[common])
    frozen = int(torch.searchsorted(batch.steps, wild.steps[-1]))  # the first record at or after its last divergence
    assert torch.equal(batch.loss[frozen:, 1], wild.loss[-1].expand(len(batch.steps) - frozen, -1))
    assert torch.equal(batch.loss[:, 0], C.train_student_teacher(lr=0.05, **kw).loss)
    both = C.train_student_teacher(lr=[50.0, 80.0], **kw)  # every run diverges: the histories end at the last one
    assert bool(both.diverged.all()) and int(both.steps[-1]) == int(both.diverged_at.max())


@pytest.mark.parametrize("lr, match", [
    (True, "^lr:"), ("0.1", "^lr:"), (-0.1, "^lr:"), ([0.1, True], "^lr:"), ([0.1, -0.1], "^lr:"), ([], "^lr:"),
    ([0.1, "x"], "^lr:"), ([[0.1, 0.2]], "^lr:"), ([0.1, float("nan")], "^lr:"), ([0.1, 0.2, 0.3], "^lr:"),
])
def test_scalar_chain_refuses_bad_rates(lr, match):
    with pytest.raises(ValueError, match=match):
        C.scalar_chain(torch.zeros(2, 2, dtype=torch.float64) + 0.5, a=1.0, lr=lr, steps=3)


@pytest.mark.parametrize("w0, lr", [
    ([0.5, 1.0], [0.1, 0.2]),  # one start, two rates
    (torch.zeros(2, 3), 0.1), (torch.zeros(0, 2), 0.1), (torch.zeros(2, 2, 2), 0.1), ([0.5, 1.0, 2.0], 0.1),
])
def test_scalar_chain_refuses_mismatched_shapes(w0, lr):
    with pytest.raises(ValueError, match="^(w0|lr):"):
        C.scalar_chain(w0, a=1.0, lr=lr, steps=3)


@pytest.mark.parametrize("lr", [True, "0.05", 0.0, -0.05, [0.05, 0.0], [0.05, -1.0], [], [0.05, "x"], [0.05, False],
                                [[0.05]], torch.tensor([0.05, float("inf")])])
def test_student_teacher_refuses_bad_rates(lr):
    with pytest.raises(ValueError, match="^lr:"):
        C.train_student_teacher(n_inputs=3, n_hidden=2, lr=lr, steps=2, record_every=1)


# --- self-check cases (collected by tests/test_course.py) ---

import math  # noqa: E402

from checkcases import Case  # noqa: E402


def _stability_example():
    g = torch.Generator().manual_seed(3)
    W1 = torch.randn(5, 8, generator=g, dtype=torch.float64) / math.sqrt(8)
    w2 = torch.randn(5, generator=g, dtype=torch.float64) / math.sqrt(5)
    D1 = torch.tensor([-1.0, 1, 1, 1, 1, 1, 1, 1], dtype=torch.float64)
    D2 = torch.ones(5, dtype=torch.float64)
    K = (w2 @ w2) * torch.diag(D1) + W1.T @ torch.diag(D2) @ W1  # written out, not the library's
    return dict(W1=W1, w2=w2, D1=D1, D2=D2), torch.linalg.eigvalsh(K).tolist()


_K_ARGS, _K_EIGS = _stability_example()

def _stability_matrix(W1, w2, D1, D2, *, signs1=True, signs2=True, squared=True, scale=1.0):
    """K of eq-curl-stability written out (not the library's); the flags make the usual slips."""
    first = (w2 @ w2) ** (1.0 if squared else 0.5) * torch.diag(D1 if signs1 else torch.ones_like(D1))
    return scale * (first + W1.T @ torch.diag(D2 if signs2 else torch.ones_like(D2)) @ W1)


def _stability_cases_numbers():
    from lessons_lib.check import curl as checks

    return [v for case in checks.CASES.values() for v in _stability_matrix(**case).flatten().tolist()]


CHECK_CASES = {
    "curl_stability_matrix": Case(
        _stability_matrix, lambda W1, w2, D1, D2: _stability_matrix(W1, w2, D1, D2, scale=1.01),
        (lambda W1, w2, D1, D2: _stability_matrix(W1, w2, D1, D2, signs1=False),
         lambda W1, w2, D1, D2: _stability_matrix(W1, w2, D1, D2, signs2=False)),
        expected=_stability_cases_numbers(), inputs=[6, 3, 4, 1, 2], function=True,
        nan=lambda W1, w2, D1, D2: torch.full((W1.shape[1], W1.shape[1]), float("nan")),
        hints=((lambda W1, w2, D1, D2: _stability_matrix(W1, w2, D1, D2, signs1=False), "input flips"),
               (lambda W1, w2, D1, D2: _stability_matrix(W1, w2, D1, D2, signs2=False), "hidden-unit flips"),
               (lambda W1, w2, D1, D2: _stability_matrix(W1, w2, D1, D2, squared=False), "squared norm"),
               (lambda W1, w2, D1, D2: W1 @ torch.diag(D2) @ W1.T, "shape"),
               (lambda W1, w2, D1, D2: W1.T @ torch.diag(D2) @ W1, "update of w2"),
               (lambda W1, w2, D1, D2: torch.linalg.eigvalsh(_stability_matrix(W1, w2, D1, D2)), "not its eigenvalues"),
               (lambda W1, w2, D1, D2: -_stability_matrix(W1, w2, D1, D2), "overall sign"),
               (lambda W1, w2, D1, D2: (w2 @ w2) * torch.diag(D1) + torch.diag(D1) @ W1.T @ W1, "symmetric"))),
    "curl_lambda_min": Case(
        _K_EIGS[0], _K_EIGS[0] * 1.01, (_K_EIGS[-1], 1.0), expected=[_K_EIGS[0]], args=_K_ARGS,
        # W1 is 5 x 8, so W1^T W1 has the eigenvalue 0: "near" it means within 2e-5 (2 % of 1e-3)
        hints=((_K_EIGS[1], "not the smallest"), (-float(_K_ARGS["w2"] @ _K_ARGS["w2"]), "one of the two terms"),
               (1.9e-5, "one of the two terms"), (2.1e-5, "would be stable"), (-3.0, "would be unstable"))),
}


def test_network_field_promotes_mixed_dtypes_and_checks_shapes():
    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(10, 3, generator=g, dtype=torch.float64), torch.randn(10, generator=g, dtype=torch.float64)
    p = torch.randn(8, generator=g, dtype=torch.float64)
    D1, D2 = torch.tensor([1.0, -1.0, 1.0]), torch.tensor([1, 1])  # float32 and int64 signs
    field = C.network_field(p, X=X.float(), y=y, D1=D1, D2=D2)  # used to raise a dtype RuntimeError
    assert torch.allclose(field, C.network_field(p, X=X.float().double(), y=y, D1=D1.double(), D2=D2.double()))
    with pytest.raises(ValueError, match="^params:"):
        C.network_field(p[:-1], X=X, y=y, D1=D1, D2=D2)


def test_flip_counts_are_named_and_integral():
    for name in ("flipped_inputs", "flipped_hidden"):
        with pytest.raises(ValueError, match=f"^{name}:"):  # 2.5 used to be refused as "flipped:"
            C.train_student_teacher(n_inputs=3, n_hidden=3, steps=2, record_every=1, **{name: 2.5})
    with pytest.raises(ValueError, match="^renormalize:"):
        C.train_student_teacher(n_inputs=3, n_hidden=3, steps=2, record_every=1, renormalize="yes")


def test_scalar_chain_records_the_square_loss_of_its_iterates():
    run = C.scalar_chain(torch.tensor([0.3, -1.2], dtype=torch.float64), a=1.5, lr=0.05, steps=40)
    w = run.params
    assert torch.allclose(run.loss, 0.5 * (w[:, 0] * w[:, 1] - 1.5) ** 2, rtol=1e-13, atol=0)


@pytest.mark.parametrize("J, expected", [
    ([[2.0, 0.5], [0.5, -1.0]], 0.0),                       # symmetric: a gradient field
    ([[0.0, 1.0], [-1.0, 0.0]], 1.0),                       # a pure rotation: all curl
    ([[0.0, 2 ** -0.5], [-(2 ** -0.5), 0.0]], 1.0),         # the same rotation scaled to norm exactly 1
    ([[1.0, 1.0], [0.0, 1.0]], (2 / 3) ** 0.5 / 2),         # a shear: ||J - J^T|| = sqrt 2, ||J|| = sqrt 3
    ([[0.0, 0.0, 3.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], 0.5 ** 0.5),  # one off-diagonal entry, n = 3
    ([[0.0, 0.0], [0.0, 0.0]], 0.0),                        # the zero matrix has no curl
])
def test_curl_fraction_by_hand(J, expected):
    assert C.curl_fraction(torch.tensor(J, dtype=torch.float64)) == pytest.approx(expected, rel=1e-12, abs=1e-15)


# --- cases run by tests/test_divergence.py (collected by tests/collect.py) ---

def _chain_batch(m):  # GD on the chain from the cases' start and its mirror image, at two rates
    w0 = torch.tensor([[1.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    return C.scalar_chain(w0, a=1.0, lr=[m * 1.0, m * 2.0], steps=30, flipped=False)


def _student_rates(m):
    return C.train_student_teacher(n_inputs=2, n_hidden=3, lr=[m * 0.5, m * 1.0], steps=20, seeds=2, n_samples=20,
                                   record_every=5)


DIVERGENCE_CASES = {
    "curl.scalar_chain[batched]": (_chain_batch, "diverges", ()),
    "curl.train_student_teacher[rates]": (_student_rates, "diverges", ()),
}


def test_curl_lambda_min_hints_on_a_network_with_distinct_eigenvalues():
    """W1 of shape (N, M) = (8, 5): W1^T W1 is full rank, so each term's smallest eigenvalue and each eigenvalue of K
    is a distinct number, and the hint must name the right one."""
    from lessons_lib import check

    g = torch.Generator().manual_seed(5)
    W1 = torch.randn(8, 5, generator=g, dtype=torch.float64) / math.sqrt(5)
    w2 = torch.randn(8, generator=g, dtype=torch.float64) / math.sqrt(8)
    D1, D2 = torch.tensor([-1.0, 1, 1, 1, 1], dtype=torch.float64), torch.ones(8, dtype=torch.float64)
    args = dict(W1=W1, w2=w2, D1=D1, D2=D2)
    lams = torch.linalg.eigvalsh((w2 @ w2) * torch.diag(D1) + W1.T @ W1).tolist()
    term = torch.linalg.eigvalsh(W1.T @ W1).tolist()
    assert min(abs(a - b) for a, b in zip(lams, lams[1:])) > 0.05 * max(map(abs, lams))  # distinct, as said
    assert check.curl_lambda_min(lams[0], **args).status == "correct"
    for lam in lams[1:]:
        assert "not the smallest" in check.curl_lambda_min(lam, **args).message
    assert "one of the two terms" in check.curl_lambda_min(term[0], **args).message
    assert "one of the two terms" not in check.curl_lambda_min(term[1], **args).message
