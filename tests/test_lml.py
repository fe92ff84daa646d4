"""Tests of lessons_lib.lml: the LML correction, LM-preconditioned Langevin, and LML in DDIM on a Gaussian ring."""

from __future__ import annotations

import math

import fuzz_specs
import numpy as np
import pytest
import torch
from checkcases import Case

from lessons_lib import lml as L
from lessons_lib.check import lml as C

F64 = dict(dtype=torch.float64)
H3 = torch.diag(torch.tensor([100.0, 10.0, 1.0], **F64))


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), **F64)


# --- the correction (items 2 and 3) ---

@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("lam", [1e-4, 1.0, 1e3])
def test_kappa_zero_returns_eps(seed, lam):
    """kappa = 0: eps_bar = eps, d is parallel to eps, and the rescaling gives eps back (the public code's default)."""
    eps, prev = _randn(16, 5, seed=seed) * 3, _randn(16, 5, seed=seed + 10)
    for eps_prev in (prev, None):
        assert float((L.lm_correct(eps, eps_prev, lam=lam, kappa=0.0) - eps).abs().max()) < 1e-8


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sherman_morrison_equals_a_dense_solve(seed):
    eps, prev = _randn(6, 4, seed=seed), _randn(6, 4, seed=seed + 5)
    lam, kappa = 0.3, 0.6
    d = L.lm_correct(eps, prev, lam=lam, kappa=kappa, renormalize=False)
    bar = kappa * prev + (1 - kappa) * eps
    for i in range(6):
        M = lam * torch.eye(4, **F64) + torch.outer(bar[i], bar[i])
        assert torch.allclose(d[i], lam * torch.linalg.solve(M, eps[i]), rtol=0, atol=1e-10)


def test_damping_limits():
    """lam -> infinity gives eps; lam -> 0 the part of eps orthogonal to eps_bar, with the norm of eps."""
    eps, prev = _randn(8, 3, seed=3), _randn(8, 3, seed=4)
    big = L.lm_correct(eps, prev, lam=1e10, kappa=0.5)
    assert float((big - eps).abs().max()) < 1e-8
    small = L.lm_correct(eps, prev, lam=1e-12, kappa=0.5)
    bar = 0.5 * prev + 0.5 * eps
    assert float((small * bar).sum(-1).abs().max()) < 1e-9
    assert torch.allclose(small.norm(dim=-1), eps.norm(dim=-1), rtol=1e-12)
    ortho = eps - bar * (bar * eps).sum(-1, keepdim=True) / (bar * bar).sum(-1, keepdim=True)
    assert torch.allclose(small, ortho * eps.norm(dim=-1, keepdim=True) / ortho.norm(dim=-1, keepdim=True),
                          atol=1e-9)


def test_first_step_and_zero_rows():
    eps = _randn(5, 2, seed=1)
    assert torch.allclose(L.lm_correct(eps, None, lam=0.01, kappa=0.9), eps, rtol=1e-12)  # eps_bar = eps
    eps[2] = 0.0
    out = L.lm_correct(eps, _randn(5, 2, seed=2), lam=0.01, kappa=0.5)
    assert bool(torch.isfinite(out).all()) and float(out[2].abs().max()) == 0.0


def test_correction_names_its_bad_arguments():
    eps = _randn(3, 2)
    for kw, name in ((dict(lam=0.0, kappa=0.5), "lam"), (dict(lam=-1.0, kappa=0.5), "lam"),
                     (dict(lam=1.0, kappa=1.5), "kappa"), (dict(lam=1.0, kappa=-0.1), "kappa")):
        with pytest.raises(ValueError, match=f"^{name}:"):
            L.lm_correct(eps, None, **kw)
    with pytest.raises(ValueError, match="^eps_prev:"):
        L.lm_correct(eps, _randn(2, 2), lam=1.0, kappa=0.5)
    with pytest.raises(ValueError, match="^eps:"):
        L.lm_correct(_randn(3), None, lam=1.0, kappa=0.5)


# --- preconditioned Langevin (item 1) ---

def test_preconditioner_and_its_limits():
    H = torch.tensor([[4.0, 1.0], [1.0, 2.0]], **F64)
    P = L.lm_preconditioner(H, lam=0.5)
    assert torch.allclose(P @ (H + 0.5 * torch.eye(2, **F64)), torch.eye(2, **F64), atol=1e-12)
    assert torch.allclose(L.lm_preconditioner(H, lam=0.0), torch.linalg.inv(H), atol=1e-12)  # Newton
    assert torch.allclose(L.lm_preconditioner(H, lam=1e8) * 1e8, torch.eye(2, **F64), atol=1e-7)  # I / lam
    with pytest.raises(ValueError, match="^H:"):
        L.lm_preconditioner(torch.diag(torch.tensor([1.0, -1.0], **F64)), lam=0.5)
    with pytest.raises(ValueError, match="^lam:"):
        L.lm_preconditioner(H, lam=-1.0)


def test_langevin_step_with_injected_noise_is_the_formula():
    x, g, xi = _randn(4, 2, seed=1), _randn(4, 2, seed=2), _randn(4, 2, seed=3)
    P = torch.tensor([[0.5, 0.1], [0.1, 0.3]], **F64)
    S = L._sqrt_spd(P)
    assert torch.allclose(S @ S, P, atol=1e-12)
    new = L.langevin_step(x, g, lr=0.2, precond=P, precond_sqrt=S, noise=xi)
    want = torch.stack([x[i] - 0.2 * P @ g[i] + math.sqrt(0.4) * S @ xi[i] for i in range(4)])
    assert torch.allclose(new, want, atol=1e-14)


def test_mixing_numbers():
    """h in {100, 10, 1}: plain Langevin is stable only below lr = 0.02 and then mixes its slow direction with
    rho >= 0.98 (tau >= 99); LM with lam = 0.5, lr = 0.2: rho = 0.867 (tau = 14), variances 7-11 % too wide."""
    plain = L.lm_langevin_mixing(H3, lr=0.0199, lam=None)
    assert plain.stable and not L.lm_langevin_mixing(H3, lr=0.0201, lam=None).stable
    assert float(plain.autocorrelation[0]) >= 0.98 and float(plain.integrated_time[0]) >= 99
    lm = L.lm_langevin_mixing(H3, lr=0.2, lam=0.5)
    assert float(lm.autocorrelation[0]) == pytest.approx(1 - 0.2 / 1.5, abs=1e-12)
    assert round(float(lm.autocorrelation[0]), 2) == 0.87 and float(lm.integrated_time[0]) == pytest.approx(14.0)
    assert torch.allclose(lm.variance_ratio, torch.tensor([1 / (1 - 0.1 / 1.5), 1 / (1 - 1 / 10.5),
                                                           1 / (1 - 10 / 100.5)], **F64), rtol=1e-12)
    assert 1.07 <= float(lm.variance_ratio.min()) and float(lm.variance_ratio.max()) <= 1.111
    # plain Langevin pays too: at lr = 0.0199 its sharp direction is 200 times too wide; held to LM's widest
    # variance (1.11) it needs lr <= 0.002 and its flat direction tau ~ 1000
    assert float(plain.variance_ratio[2]) == pytest.approx(200.0, rel=1e-9)
    lr_fair = 2 * (1 - 1 / float(lm.variance_ratio.max())) / 100
    fair = L.lm_langevin_mixing(H3, lr=lr_fair, lam=None)
    assert float(fair.variance_ratio.max()) == pytest.approx(float(lm.variance_ratio.max()), rel=1e-9)
    assert lr_fair == pytest.approx(0.002, rel=0.01) and 990 < float(fair.integrated_time[0]) < 1010
    # the Lyapunov solve agrees with the per-direction closed form
    assert torch.allclose(lm.covariance.diagonal() * torch.tensor([100.0, 10.0, 1.0], **F64),
                          lm.variance_ratio.flip(0), rtol=1e-10)


def test_newton_langevin_ignores_conditioning_and_large_lam_is_plain_langevin():
    for cond in (10.0, 1e4):
        H = torch.diag(torch.tensor([cond, 1.0], **F64))
        newton = L.lm_langevin_mixing(H, lr=0.3, lam=0.0)
        assert torch.allclose(newton.autocorrelation, torch.full((2,), 0.7, **F64), atol=1e-12)
        big = L.lm_langevin_mixing(H, lr=1e-4 * 1e10, lam=1e10)  # step lr / lam = 1e-4; lam >> every h
        plain = L.lm_langevin_mixing(H, lr=1e-4, lam=None)
        assert torch.allclose(big.autocorrelation, plain.autocorrelation, atol=1e-5)


def test_lyapunov_solve_for_a_preconditioner_that_does_not_commute_with_H():
    H = torch.tensor([[5.0, 1.0], [1.0, 1.0]], **F64)
    P = torch.tensor([[1.0, 0.3], [0.3, 0.5]], **F64)
    S = L.stationary_covariance(H, lr=0.1, precond=P)
    A = torch.eye(2, **F64) - 0.1 * P @ H
    assert torch.allclose(S, A @ S @ A.T + 0.2 * P, atol=1e-12)
    with pytest.raises(ValueError, match="^lr:"):
        L.stationary_covariance(H, lr=10.0, precond=P)
    with pytest.raises(ValueError, match="^lam:"):
        L.lm_langevin_mixing(H, lr=0.1, lam=-0.5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_chains_match_the_exact_covariance_and_autocorrelation(seed):
    """LM-Langevin (lam = 0.5, lr = 0.2) on N(0, H^-1), h in {100, 10, 1}, 1024 chains of 200 steps started in
    the stationary law: variances within 5 %, lag-1 autocorrelations within 0.02 of eq-lml-lyapunov, eq-lml-autocorr."""
    theory = L.lm_langevin_mixing(H3, lr=0.2, lam=0.5)
    x0 = _randn(1024, 3, seed=100 + seed) @ torch.linalg.cholesky(theory.covariance).T
    chains = L.preconditioned_langevin(lambda x: x @ H3, x0, lr=0.2, precond=L.lm_preconditioner(H3, lam=0.5),
                                       steps=200, generator=seed)
    z = chains.samples  # (K, R, 3); H3 is diagonal: coordinates are the eigen-directions (h = 100, 10, 1)
    var = z.pow(2).mean(dim=(0, 1))
    rho = (z[1:] * z[:-1]).mean(dim=(0, 1)) / var
    assert torch.allclose(var, theory.covariance.diagonal(), rtol=0.05), (var, theory.covariance.diagonal())
    assert float((rho - theory.autocorrelation.flip(0)).abs().max()) < 0.02, rho


def test_same_seed_same_chains_and_per_chain_steps():
    run = lambda g: L.preconditioned_langevin(lambda x: x, torch.zeros(3, 2, **F64), lr=[0.1, 0.2, 0.3],  # noqa: E731
                                              steps=5, generator=g).samples
    assert torch.equal(run(7), run(7)) and not torch.equal(run(7), run(8))


# --- the diffusion toy (item 4) ---

@pytest.mark.parametrize("t", [0.02, 0.3, 1.0])
def test_mixture_eps_is_minus_sigma_times_the_autograd_score(t):
    mix = L.gaussian_mixture([[1.0, 0.0], [-0.5, 1.5], [0.0, -2.0]], 0.3, weights=[0.5, 0.3, 0.2])
    abar = float(L.alpha_bar(torch.tensor(t, **F64)))
    comp = torch.distributions.Independent(torch.distributions.Normal(
        math.sqrt(abar) * mix.means, math.sqrt(abar * 0.09 + 1 - abar) * torch.ones(3, 2, **F64)), 1)
    p_t = torch.distributions.MixtureSameFamily(torch.distributions.Categorical(mix.weights), comp)
    x = (_randn(20, 2, seed=5) * 2).requires_grad_(True)
    score, = torch.autograd.grad(p_t.log_prob(x).sum(), x)  # row i's log-density depends on row i only
    x = x.detach()
    assert torch.allclose(L.mixture_eps(x, t, mix), -math.sqrt(1 - abar) * score, atol=1e-10)


def test_ddim_on_one_gaussian_lands_on_it():
    """With 100 steps DDIM carries N(0, I) onto the data Gaussian (mean (1, -0.5), std 0.5): mean within 0.03,
    std within 4 % (4000 samples)."""
    mix = L.gaussian_mixture([[1.0, -0.5]], 0.5)
    x = L.ddim_sample(mix, steps=100, n=4000, generator=0).samples
    assert torch.allclose(x.mean(0), torch.tensor([1.0, -0.5], **F64), atol=0.03), x.mean(0)
    assert torch.allclose(x.std(0), torch.tensor([0.5, 0.5], **F64), rtol=0.04), x.std(0)


def test_kappa_zero_is_plain_ddim_at_every_lam_and_settings_share_noise():
    mix = L.ring_mixture()
    out = L.ddim_sample(mix, steps=5, n=300, lam=[1e-3, 1.0, 100.0], kappa=0.0, generator=3).samples
    base = L.ddim_sample(mix, steps=5, n=300, generator=3).samples
    assert out.shape == (3, 300, 2) and float((out - base).abs().max()) < 1e-10
    lml = L.ddim_sample(mix, steps=5, n=300, lam=0.01, kappa=0.6, generator=3).samples
    assert float((lml - base).abs().max()) > 1e-3  # kappa > 0 does act


def _w1_by_cdfs(a, b):
    """W1 of two 1-D samples as the area between their empirical CDFs (not by matching sorted values)."""
    grid = np.sort(np.concatenate([a, b]))
    cdf_a = np.searchsorted(np.sort(a), grid[:-1], side="right") / len(a)
    cdf_b = np.searchsorted(np.sort(b), grid[:-1], side="right") / len(b)
    return float(np.sum(np.abs(cdf_a - cdf_b) * np.diff(grid)))


def test_sliced_wasserstein_oracles():
    x1, y1 = _randn(500, 1, seed=1), _randn(500, 1, seed=2) * 2 + 1
    assert float(L.sliced_wasserstein(x1, y1, projections=3, generator=0)) == pytest.approx(
        _w1_by_cdfs(x1[:, 0].numpy(), y1[:, 0].numpy()), rel=1e-12)  # in 1-D: exactly W1
    X = _randn(30, 2, seed=3)  # a shift moves every projection by theta . c: SW is the mean of |theta . c|
    shift = torch.tensor([0.3, -0.4], **F64)  # |c| = 0.5: the mean of |theta . c| is 2 |c| / pi
    assert float(L.sliced_wasserstein(X, X + shift, projections=4096, generator=0)) == pytest.approx(1 / math.pi,
                                                                                                      rel=0.02)
    assert float(L.sliced_wasserstein(X, X, generator=0)) == 0.0
    with pytest.raises(ValueError, match="^Y:"):
        L.sliced_wasserstein(X, X[:10], generator=0)


def test_ring_and_mixture_inputs():
    ring = L.ring_mixture(8, radius=2.0, std=0.1)
    assert torch.allclose(ring.means.norm(dim=1), torch.full((8,), 2.0, **F64))
    s = ring.sample(4000, generator=0, device="cpu")
    assert float((s.norm(dim=1) - 2).abs().mean()) < 0.1
    with pytest.raises(ValueError, match="^weights:"):
        L.gaussian_mixture([[0.0], [1.0]], 0.1, weights=[1.0, -1.0])
    with pytest.raises(ValueError, match="^t:"):
        L.mixture_eps(torch.zeros(2, 2, **F64), 0.0, ring)
    with pytest.raises(ValueError, match="^kappa:"):
        L.ddim_sample(ring, steps=2, n=4, kappa=2.0, generator=0)


_GRID_LAM = [1e-3, 1e-2, 0.1, 1.0, 10.0] * 2
_GRID_KAPPA = [0.3] * 5 + [0.6] * 5


@pytest.mark.slow
def test_ddim_baseline_on_the_ring():
    """Plain DDIM, 20000 samples, 4 seeds, 128 projections: measured 0.1928 / 0.0468 / 0.0264 at 5 / 10 / 20 steps
    (0.1946 / 0.0475 / 0.0270 with other seeds); within 5 %. No LML setting: only the baseline is sampled."""
    study = L.ring_study(L.ring_mixture(), steps=[5, 10, 20], lam=[], kappa=[], n=20000, seeds=4)
    got = study.baseline.mean(-1)
    assert torch.allclose(got, torch.tensor([0.1946, 0.0475, 0.0270], **F64), rtol=0.05), got
    assert study.sw.shape == (3, 0, 4) and study.relative.shape == (3, 0)


@pytest.mark.slow
def test_lml_does_not_beat_ddim_on_the_ring():
    """The grid kappa in {0.3, 0.6} x lam in {1e-3 ... 10}, 5000 samples, 4 seeds, shared noise: measured relative
    changes of sliced W1 from -0.01 % to +48 % (5 steps +0.01 to +4.5 %, 10 steps +0.2 to +31 %, 20 steps -0.01 to
    +48 %; at 20000 samples -0.48 % to +71 %). Nothing better by more than 2 %; kappa = 0.6, lam = 0.01 at 10 steps
    worse by at least 10 % (measured 26 %); lam = 10 within 1 %; every lam <= 0.1 worse by more than 10 % at 10 steps
    (measured 23-31 %) and worse at 5 steps (an independent review measured +0.46 to +2.4 % over seed sets). At 20
    steps only kappa = 0.3, lam = 0.1 is asserted worse (+30 to +45 % over seed sets): the other small dampings sit
    near the 5000-sample floor of SW there, and their sign depends on the seeds."""
    study = L.ring_study(L.ring_mixture(), steps=[5, 10, 20], lam=_GRID_LAM, kappa=_GRID_KAPPA, n=5000, seeds=4)
    rel = study.relative  # (steps, settings), averaged over seeds
    assert float(rel.min()) > -0.02, rel
    assert float(rel[1, _GRID_LAM.index(1e-2) + 5]) >= 0.10, rel
    big = study.lam == 10.0
    assert float(rel[:, big].abs().max()) < 0.01, rel
    small = study.lam <= 0.1
    assert float(rel[0, small].min()) > 0.0, rel  # at 5 steps every small damping costs something
    assert float(rel[1, small].min()) > 0.10, rel  # at 10 steps every small damping costs more than 10 %
    assert float(rel[2, _GRID_LAM.index(0.1)]) > 0.10, rel  # kappa = 0.3, lam = 0.1 at 20 steps


# --- self-check cases (tests/test_course.py) ---

def _right(eps, eps_prev, lam, kappa):
    return L.lm_correct(eps, eps_prev, lam=lam, kappa=kappa)


def _close(eps, eps_prev, lam, kappa):
    return L.lm_correct(eps, eps_prev, lam=lam, kappa=kappa) * 1.01


def _variant(name):
    def fn(eps, eps_prev, lam, kappa):
        out = C._variants(eps, eps_prev, lam, kappa)
        return out.get(name, _right(eps, eps_prev, lam, kappa))
    return fn


def _nan(eps, eps_prev, lam, kappa):
    return torch.full_like(eps, float("nan"))


_EXPECTED = [float(v) for case in C.CASES.values() for v in C._reference(*case).flatten()]
_INPUTS = [4.0, 3.0, 0.5, 0.1, 0.6, 0.2, 7.0, 0.001, 1e-3, 100.0, 0.3]
CHECK_CASES = {
    "lm_correct": Case(
        _right, _close, (_variant("swapped"), _variant("raw"), _variant("global"), _variant("plus"),
                         _variant("prev_none"), _variant("nolam"), _variant("lamtimes")),
        expected=_EXPECTED, inputs=_INPUTS, function=True, nan=_nan,
        hints=((_variant("swapped"), "other way round"), (_variant("raw"), "keep the length"),
               (_variant("global"), "one number"), (_variant("plus"), "adds the projection"),
               (_variant("prev_none"), "returns eps unchanged"), (_variant("nolam"), "leaves out lam"),
               (_variant("lamtimes"), "multiplies the whole"))),
}


# --- divergence cases (tests/test_divergence.py) ---

def _langevin_far(m):
    """LM-Langevin on N(0, H^-1), h in {100, 10, 1}, lam = 0.5: critical lr 2 / max(h / (h + lam)) = 2.01."""
    return L.preconditioned_langevin(lambda x: x @ H3, torch.ones(4, 3, **F64), lr=m * 2.01,
                                     precond=L.lm_preconditioner(H3, lam=0.5), steps=20, generator=0)


DIVERGENCE_CASES = {"lml.preconditioned_langevin": (_langevin_far, "diverges", ())}
NOT_RUNNERS = {
    "lml.ddim_sample": "no step size to push: the step count sets a time grid from 1 to 1e-3, and every DDIM step "
                       "contracts towards the data prediction",
    "lml.ring_study": "runs ddim_sample over a grid of settings: no step size",
    "lml.lm_langevin_mixing": "closed-form statistics of the chain, no dynamics run (an unstable lr is reported)",
    "lml.stationary_covariance": "solves a linear system, no dynamics run",
    "lml.langevin_step": "one step, no loop",
}


# --- fuzz specs (tests/test_fuzz.py) ---

def _ring():
    return L.ring_mixture(4)


FUZZ_SPECS = {
    "lml.lm_correct": fuzz_specs.Spec(lambda: dict(eps=fuzz_specs.randn(3, 2), eps_prev=fuzz_specs.randn(3, 2, seed=1),
                                                   lam=0.5, kappa=0.3, renormalize=True), positive="lam",
                                      nonneg="kappa", skip="eps_prev"),  # None is valid: the first step
    "lml.lm_preconditioner": fuzz_specs.Spec(lambda: dict(H=fuzz_specs.spd(), lam=0.5), nonneg="lam"),
    "lml.preconditioned_langevin": fuzz_specs.Spec(lambda: dict(grad_fn=lambda x: x, x0=fuzz_specs.randn(3, 2), lr=0.1,
                                                                precond=fuzz_specs.spd(), steps=3, generator=0,
                                                                record_every=1, blowup=1e6),
                                                   positive="lr blowup"),
    "lml.stationary_covariance": fuzz_specs.Spec(lambda: dict(H=fuzz_specs.spd(), lr=0.1, precond=None),
                                                 positive="lr"),
    "lml.lm_langevin_mixing": fuzz_specs.Spec(lambda: dict(H=fuzz_specs.spd(), lr=0.1, lam=0.5), positive="lr",
                                              skip="lam"),  # None is valid (plain Langevin); lam < 0: a unit test
    "lml.gaussian_mixture": fuzz_specs.Spec(lambda: dict(means=fuzz_specs.randn(3, 2), std=0.1, weights=None),
                                            positive="std"),
    "lml.ring_mixture": fuzz_specs.Spec(lambda: dict(k=4, radius=2.0, std=0.1), positive="radius std"),
    "lml.alpha_bar": fuzz_specs.Spec(lambda: dict(t=0.5)),
    "lml.mixture_eps": fuzz_specs.Spec(lambda: dict(x=fuzz_specs.randn(3, 2), t=0.5, mixture=_ring())),
    "lml.ddim_sample": fuzz_specs.Spec(lambda: dict(mixture=_ring(), steps=2, n=4, lam=1.0, kappa=0.3, generator=0,
                                                    noise=None), positive="lam", nonneg="kappa"),
    "lml.sliced_wasserstein": fuzz_specs.Spec(lambda: dict(X=fuzz_specs.randn(5, 2), Y=fuzz_specs.randn(5, 2, seed=1),
                                                           projections=4, generator=0)),
    "lml.ring_study": fuzz_specs.Spec(lambda: dict(mixture=_ring(), steps=[2], lam=[0.1], kappa=[0.3], n=8, seeds=1,
                                                   projections=4, generator=0)),
    "lml.GaussianMixture.sample": fuzz_specs.Spec(lambda: dict(n=4, generator=0, device="cpu"), instance=_ring),
    "check.lml.lm_correct": fuzz_specs.Spec(lambda: dict(fn=_right), skip="fn"),
}
FUZZ_OPT_OUT = {"lml.langevin_step": "the step function, evaluated inside the loop on whatever the state holds (a NaN "
                                     "check there would turn divergence into an exception); preconditioned_langevin, "
                                     "which hands it its inputs, checks them"}
