"""Tests of lessons_lib.zeroth_order: probe estimators, their alignment and variance, node against weight
perturbation, and a digits MLP at matched forward passes (chapter zeroth-order.ipynb)."""

from __future__ import annotations

import math

import pytest
import torch
from checkcases import Case
from fuzz_specs import Spec

from lessons_lib import check, models
from lessons_lib import zeroth_order as Z

F64 = dict(dtype=torch.float64)


@pytest.fixture(autouse=True)
def _one_thread():
    """Thousands of tiny ops: torch's default intra-op threads oversubscribe two shared cores (the digits test ran
    14 times slower with them)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _quadratic(d, seed):
    """f(x) = x^T A x / 2 + b^T x with a random SPD A: a quadratic, so the central difference is exact."""
    g = _gen(100 + seed)
    M = torch.randn(d, d, generator=g, **F64)
    A, b = M @ M.T / d + torch.eye(d, **F64), torch.randn(d, generator=g, **F64)
    x = torch.randn(d, generator=g, **F64)
    return (lambda X: 0.5 * torch.einsum("...i,ij,...j->...", X, A, X) + X @ b), x, A @ x + b


def _bowl(X):
    return 0.5 * (X ** 2).sum(-1)


# --- claim 1: unbiased on a quadratic -----------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("kind", ["gaussian", "rademacher", "forward"])
def test_the_estimators_are_unbiased_on_a_quadratic_within_three_standard_errors(kind, seed):
    """20,000 one-probe estimates in d = 5 (sigma = 0.5: the central difference is exact on a quadratic): every
    coordinate of their mean is within 3 standard errors of the autograd gradient. The library computes the first
    20 estimates; the rest use the same formula vectorised, checked equal on those 20."""
    f, x, grad = _quadratic(5, seed)
    v = torch.randn(20000, 5, generator=_gen(seed), **F64)
    v = torch.sign(v) if kind == "rademacher" else v
    est = ((f(x + 0.5 * v) - f(x - 0.5 * v)) / 1.0)[:, None] * v
    if kind == "forward":
        lib = torch.stack([Z.forward_gradient(f, x, noise=v[i:i + 1]) for i in range(20)])
    else:
        lib = torch.stack([Z.two_point_estimate(f, x, sigma=0.5, noise=v[i:i + 1]) for i in range(20)])
    assert torch.allclose(lib, est[:20], rtol=1e-10, atol=1e-12)
    z = (est.mean(0) - grad) / (est.std(0) / math.sqrt(est.shape[0]))
    assert float(z.abs().max()) < 3, z


def test_the_library_draws_its_own_probes_from_the_named_law():
    """The probes of two_point_estimate, read back on f(x) = e_j . x, are +-1 (Rademacher) or have mean 0 and
    variance 1 (Gaussian): each estimate is v_j v."""
    x = torch.zeros(4, **F64)
    ests = torch.stack([Z.two_point_estimate(lambda X: X[..., 0], x, sigma=0.1, probe="rademacher", generator=i)
                        for i in range(50)])
    assert torch.allclose(ests.abs(), torch.ones_like(ests))
    gauss = Z.two_point_estimate(lambda X: X[..., 0], x, sigma=0.1, n_probes=4000, generator=0)
    assert float(gauss[0]) == pytest.approx(1.0, abs=0.08) and float(gauss[1:].abs().max()) < 0.08


def test_spsa_is_biased_off_a_quadratic_for_a_large_sigma_and_not_for_a_small_one():
    """On f = sum cos(x_i) the central difference's bias is O(sigma^2): averaged over all 2^d Rademacher probes
    (the exact expectation), sigma = 1e-3 matches the gradient to 1e-6 and sigma = 1 is off by more than 10 %."""
    d = 4
    x = torch.tensor([0.3, -1.1, 0.7, 2.0], **F64)
    grad = -torch.sin(x)
    signs = torch.tensor([[1.0 if (k >> i) & 1 else -1.0 for i in range(d)] for k in range(2 ** d)], **F64)

    def mean_estimate(sigma):
        return Z.two_point_estimate(lambda X: torch.cos(X).sum(-1), x, sigma=sigma, n_probes=2 ** d, noise=signs)

    assert torch.allclose(mean_estimate(1e-3), grad, atol=1e-6)
    assert float((mean_estimate(1.0) - grad).norm() / grad.norm()) > 0.1


# --- claim 2: the cosine of one probe -----------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("d", [10, 100, 1000])
def test_one_probe_cosine_matches_the_gamma_formula(d, seed):
    """E|cos(g_hat, grad f)| = Gamma(d/2) / (sqrt(pi) Gamma((d+1)/2)) within 6 % (4,000 repeats), for the
    forward gradient and SPSA (the latter at a generic gradient)."""
    # x from its own seed (100 + seed): drawn from the probes' seed, x would equal the first probe (cosine 1)
    f, x, _ = _quadratic(d, seed) if d <= 100 else (_bowl, torch.randn(d, generator=_gen(100 + seed), **F64), None)
    theory = Z.cosine_theory(d)
    for method in ("forward", "spsa"):
        cos = Z.probe_cosines(f, x, method=method, n_repeats=4000, generator=seed)
        assert cos.shape == (4000,) and bool((cos >= 0).all())  # one probe: cos = |v . g| / (|v| |g|)
        assert float(cos.mean()) == pytest.approx(theory, rel=0.06)
    assert theory == pytest.approx(math.sqrt(2 / (math.pi * d)), rel=0.03 if d == 10 else 0.005)


def test_the_exact_cosine_values_quoted_in_the_chapter():
    assert [round(Z.cosine_theory(d), 4) for d in (10, 100, 1000)] == [0.2587, 0.0800, 0.0252]
    assert Z.cosine_theory(1) == pytest.approx(1.0) and Z.cosine_theory(2) == pytest.approx(2 / math.pi)


# --- claim 3: variance and the K-probe cosine ---------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("probe,excess", [("gaussian", 1), ("rademacher", -1)])
@pytest.mark.parametrize("K", [1, 4])
def test_the_error_variance_is_d_plus_or_minus_one_over_K(probe, excess, K, seed):
    """E||g_hat - grad f||^2 = (d + 1) ||grad f||^2 / K (Gaussian), (d - 1) ||grad f||^2 / K (Rademacher),
    within 10 % over 3,000 estimates in d = 50."""
    d, n = 50, 3000
    f, x, grad = _quadratic(d, seed)
    v = torch.randn(n, K, d, generator=_gen(seed), **F64)
    v = v if probe == "gaussian" else torch.sign(v)
    slopes = (f(x + 0.1 * v) - f(x - 0.1 * v)) / 0.2
    est = torch.einsum("nk,nkd->nd", slopes, v) / K  # the estimator, vectorised; the library on 20 of them:
    lib = torch.stack([Z.two_point_estimate(f, x, sigma=0.1, n_probes=K, noise=v[i]) for i in range(20)])
    assert torch.allclose(lib, est[:20], rtol=1e-10, atol=1e-12)
    mse = float(((est - grad) ** 2).sum(-1).mean())
    assert mse == pytest.approx((d + excess) * float(grad @ grad) / K, rel=0.10)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("d,K,rel", [(100, 4, 0.08), (400, 4, 0.08), (100, 16, 0.04), (400, 32, 0.04)])
def test_the_K_probe_cosine_is_sqrt_K_over_d_plus_K_plus_one(d, K, rel, seed):
    """Mean cosine of a K-probe forward gradient against sqrt(K / (d + K + 1)) over 1,000 repeats: within 4 % for
    K >= 16; at K = 4 the mean is about 5 % below (measured -4.8 % at d = 100, -5.2 % at d = 1000 with 4,000
    repeats: the mean of a square root is below the square root of the mean), so K = 4 gets 8 %."""
    cos = Z.probe_cosines(_bowl, torch.randn(d, generator=_gen(100 + seed), **F64), n_probes=K, n_repeats=1000,
                          generator=seed)
    assert float(cos.mean()) == pytest.approx(math.sqrt(K / (d + K + 1)), rel=rel)


# --- claim 4: node against weight perturbation --------------------------------------------------------------------

def _cosine(a, b):
    return float((a * b).sum() / (a.norm() * b.norm()))


@pytest.mark.parametrize("seed", [0, 1])
def test_node_perturbation_aligns_about_sqrt_n_in_times_better_than_weight_perturbation(seed):
    """A 100 -> 10 linear layer, one input: node perturbation probes 10 outputs, weight perturbation 1,000 weights.
    Mean cosines over 1,000 probes each: the ratio is within 25 % of sqrt(n_in) = 10 (exact 10.25)."""
    g = _gen(seed)
    W, x, t = torch.randn(10, 100, generator=g, **F64) / 10, torch.randn(100, generator=g, **F64), \
        torch.randn(10, generator=g, **F64)
    W.requires_grad_(True)
    grad = torch.autograd.grad(Z.layer_loss(W, x, t), W)[0]
    W = W.detach()
    gen = _gen(seed + 50)
    node = sum(_cosine(Z.node_perturbation(W, x, t, sigma=1e-3, generator=gen), grad) for _ in range(1000)) / 1000
    weight = sum(_cosine(Z.weight_perturbation(W, x, t, sigma=1e-3, generator=gen), grad) for _ in range(1000)) / 1000
    assert node == pytest.approx(Z.cosine_theory(10), rel=0.06)
    assert weight == pytest.approx(Z.cosine_theory(1000), rel=0.06)
    assert node / weight == pytest.approx(10.0, rel=0.25)
    assert node / weight == pytest.approx(Z.cosine_theory(10) / Z.cosine_theory(1000), rel=0.25)


def test_injected_noise_gives_the_exact_estimates():
    """On quadratics the central differences are exact: each estimator is (directional derivative) x probe."""
    g = _gen(3)
    W, X, T = (torch.randn(3, 4, generator=g, **F64), torch.randn(5, 4, generator=g, **F64),
               torch.randn(5, 3, generator=g, **F64))
    grad_y = (X @ W.T - T) / 5  # d loss / d y_i for the mean loss
    xi = torch.randn(5, 3, generator=g, **F64)
    want = ((grad_y * 5 * xi).sum(-1)[:, None] * xi).T @ X / 5
    assert torch.allclose(Z.node_perturbation(W, X, T, sigma=0.3, noise=xi), want, rtol=1e-10)
    Xi = torch.randn(3, 4, generator=g, **F64)
    gW = grad_y.T @ X
    assert torch.allclose(Z.weight_perturbation(W, X, T, sigma=0.7, noise=Xi), (gW * Xi).sum() * Xi, rtol=1e-10)
    f, x, grad = _quadratic(6, 0)
    v = torch.randn(3, 6, generator=g, **F64)
    want = (v @ grad) @ v / 3
    assert torch.allclose(Z.two_point_estimate(f, x, sigma=2.0, n_probes=3, noise=v), want, rtol=1e-10)
    assert torch.allclose(Z.forward_gradient(f, x, n_probes=3, noise=v), want, rtol=1e-10)


def test_node_perturbation_of_an_mlp_matches_its_first_order_oracle():
    """With injected xi and sigma = 1e-6 (float64) the MLP estimate equals (1/n) sum_i (sum_l dL_i/da_l . xi_l)
    xi_l [x_l, 1], the derivatives from autograd through additive offsets on the pre-activations."""
    model = models.mlp_classifier((6, 5, 4, 3))
    params = model.init(0, dtype=torch.float64, device="cpu")
    g = _gen(4)
    X, y = torch.rand(7, 6, generator=g, **F64), torch.randint(3, (7,), generator=g)
    xi = [torch.randn(7, w, generator=g, **F64) for w in (5, 4, 3)]
    offsets = [torch.zeros(7, w, **F64, requires_grad=True) for w in (5, 4, 3)]
    logits, inputs = Z._forward(params, X, model.sizes, torch.relu, offsets, 1.0)
    per_sample = torch.nn.functional.cross_entropy(logits, y, reduction="none")
    da = torch.autograd.grad(per_sample.sum(), offsets)
    delta = sum((a * z).sum(-1) for a, z in zip(da, xi))
    want = torch.cat([t for z, inp in zip(xi, inputs) for t in
                      (((delta[:, None] * z).T @ inp.detach()).flatten() / 7, (delta[:, None] * z).sum(0) / 7)])
    got = Z.node_perturbation_mlp(model, params, X, y, sigma=1e-6, noise=xi)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-8)
    full = torch.func.grad(lambda p: model.loss(p, X, y))(params)
    assert got.shape == full.shape


# --- claim 5: a digits MLP at matched forward passes ---------------------------------------------------------------

LRS = {"backprop": 1.0, "node": 0.03, "forward": 0.01, "spsa": 0.01}


@pytest.mark.slow
def test_digits_at_matched_passes_orders_backprop_node_then_forward_and_spsa():
    """2,000 forward passes, batch 64, a 64-32-10 MLP, 3 seeds: the median final training loss of backprop is
    under a fifth of node perturbation's, and node perturbation's under half of the forward gradient's and
    SPSA's (measured medians 0.028, 0.26, 0.77, 0.79; about 14 s on one thread)."""
    med = {}
    for method, lr in LRS.items():
        runs = [Z.train_digits(method, lr=lr, passes=2000, generator=s, records=2) for s in (0, 1, 2)]
        assert not any(bool(r.diverged) for r in runs)
        assert all(int(r.passes[-1]) <= 2000 and int(r.passes[-1]) > 2000 - 2 * Z.PASSES[method] for r in runs)
        med[method] = float(torch.tensor([float(r.loss[-1]) for r in runs]).median())
    assert med["backprop"] < med["node"] / 5
    assert med["node"] < min(med["forward"], med["spsa"]) / 2
    assert max(med["forward"], med["spsa"]) < float(math.log(10))  # the probes do learn something


def test_digits_budget_buys_the_right_number_of_steps_and_repeats():
    a = Z.train_digits("spsa", lr=0.01, passes=40, records=5, generator=1)
    b = Z.train_digits("spsa", lr=0.01, passes=40, records=5, generator=1)
    assert torch.equal(a.loss, b.loss) and a.test_accuracy == b.test_accuracy
    assert int(a.passes[-1]) == 40 and a.loss.shape == a.passes.shape
    c = Z.train_digits("backprop", lr=0.5, passes=40, records=100)
    assert c.passes.tolist() == list(range(0, 40, 3))  # 13 steps of 3 passes
    with pytest.raises(ValueError, match="^passes:"):
        Z.train_digits("backprop", lr=0.5, passes=2)


# --- ZO descent on a quadratic ------------------------------------------------------------------------------------

def test_zo_descent_with_method_gd_is_the_closed_form():
    h = Z.quadratic_problem(4, kappa=10.0)
    x0 = torch.ones(4, **F64)
    out = Z.zo_descent(h, x0, lr=0.5, steps=6, method="gd", runs=2)
    want = 0.5 * (h * ((1 - 0.5 * h) ** 6) ** 2).sum()
    assert torch.allclose(out.loss[-1], want.expand(2), rtol=1e-12) and not bool(out.diverged.any())
    assert float(h.max()) == pytest.approx(1.0) and float(h.max() / h.min()) == pytest.approx(10.0)


@pytest.mark.parametrize("K", [1, 8])
def test_zo_descent_is_stable_below_2K_over_d_plus_K_plus_one_and_not_above(K):
    """On an isotropic quadratic (h = 1) in d = 50 the mean-square stability limit of K-probe ZO descent is
    2K / (tr H + (K + 1) h_max) = 2K / (d + K + 1) (0.038 for K = 1, 0.27 for K = 8; GD's is 2): at 0.8 times it
    every run (8 runs, 400 steps) ends 10x below its start; at 1.25 times every run ends 100x above it."""
    d = 50
    h, x0 = Z.quadratic_problem(d, kappa=1.0), torch.ones(d, **F64)
    limit = 2 * K / (d + K + 1)
    below = Z.zo_descent(h, x0, lr=0.8 * limit, steps=400, n_probes=K, runs=8, generator=0, record_every=400)
    above = Z.zo_descent(h, x0, lr=1.25 * limit, steps=400, n_probes=K, runs=8, generator=0, record_every=400)
    assert not bool(below.diverged.any()) and bool((below.loss[-1] < 0.1 * below.loss[0]).all())
    assert bool((above.loss[-1] > 100 * above.loss[0]).all())
    gd = Z.zo_descent(h, x0, lr=1.9, steps=400, method="gd", record_every=400)
    assert float(gd.loss[-1, 0]) < 1e-6 * float(gd.loss[0, 0])


def test_same_seed_same_estimates():
    f, x, _ = _quadratic(5, 0)
    assert torch.equal(Z.two_point_estimate(f, x, sigma=0.1, n_probes=3, generator=5),
                       Z.two_point_estimate(f, x, sigma=0.1, n_probes=3, generator=5))
    assert torch.equal(Z.probe_cosines(f, x, n_repeats=10, generator=2), Z.probe_cosines(f, x, n_repeats=10,
                                                                                          generator=2))
    W, t = torch.ones(2, 3, **F64), torch.zeros(2, **F64)
    assert torch.equal(Z.node_perturbation(W, torch.ones(3, **F64), t, sigma=0.1, generator=3),
                       Z.node_perturbation(W, torch.ones(3, **F64), t, sigma=0.1, generator=3))


def test_bad_inputs_name_the_argument():
    f, x, _ = _quadratic(3, 0)
    with pytest.raises(ValueError, match="^sigma:"):
        Z.two_point_estimate(f, x, sigma=0.0)
    with pytest.raises(ValueError, match="^sigma:"):
        Z.two_point_estimate(f, x, sigma=-1.0)
    with pytest.raises(ValueError, match="^n_probes:"):
        Z.two_point_estimate(f, x, sigma=0.1, n_probes=0)
    with pytest.raises(ValueError, match="^n_probes:"):
        Z.forward_gradient(f, x, n_probes=0)
    with pytest.raises(ValueError, match="^probe:"):
        Z.two_point_estimate(f, x, sigma=0.1, probe="uniform")
    with pytest.raises(ValueError, match="^method:"):
        Z.probe_cosines(f, x, method="es")
    with pytest.raises(ValueError, match="^noise:"):
        Z.two_point_estimate(f, x, sigma=0.1, n_probes=2, noise=torch.ones(1, 3, **F64))
    with pytest.raises(ValueError, match="^x:"):
        Z.probe_cosines(_bowl, torch.zeros(3, **F64))  # zero gradient: no cosine
    with pytest.raises(ValueError, match="^f:"):
        Z.two_point_estimate(lambda X: X, x, sigma=0.1)
    W = torch.ones(2, 3, **F64)
    with pytest.raises(ValueError, match="^target:"):
        Z.node_perturbation(W, torch.ones(3, **F64), torch.ones(3, **F64), sigma=0.1)
    with pytest.raises(ValueError, match="^sigma:"):
        Z.weight_perturbation(W, torch.ones(3, **F64), torch.ones(2, **F64), sigma=0.0)
    with pytest.raises(ValueError, match="^steps:"):
        Z.zo_descent(torch.ones(3, **F64), torch.ones(3, **F64), lr=0.1, steps=0)
    with pytest.raises(ValueError, match="^kappa:"):
        Z.quadratic_problem(3, kappa=0.5)
    with pytest.raises(ValueError, match="^method:"):
        Z.train_digits("es", lr=0.1)


# --- self-check, divergence and fuzz registrations ------------------------------------------------------------------

def _two_point(f, x, sigma, v, *, scale=1.0, one_sided=False, summed=False):
    up = f(x + sigma * v)
    low = f(x) if one_sided else f(x - sigma * v)
    width = sigma if one_sided else 2 * sigma
    return scale * ((up - low) / width) @ v / (1 if summed else v.shape[0])


def _expected():
    return [c for case in check.zeroth_order.CASES.values() for c in _two_point(*case).tolist()]


CHECK_CASES = {
    "two_point": Case(
        _two_point, lambda *a: _two_point(*a, scale=1.01),
        (lambda *a: _two_point(*a, one_sided=True), lambda *a: _two_point(*a, scale=2.0)),
        expected=_expected(), inputs=[3, 5, 4, 6, 0.1, 0.05, 0.3, 1, 2], function=True,
        nan=lambda f, x, sigma, v: torch.full_like(x, float("nan")),
        hints=((lambda *a: _two_point(*a, one_sided=True), "one-sided"),
               (lambda *a: _two_point(*a, scale=2.0), "2 sigma"),
               (lambda *a: _two_point(*a, scale=-1.0), "wrong way"),
               (lambda *a: _two_point(*a, summed=True), "average"))),
}


def _descent(m):
    """lr = m / d (the rate at which one-probe ZO descent in d = 20 still converges) times m."""
    h = Z.quadratic_problem(20, kappa=1.0)
    return Z.zo_descent(h, torch.ones(20, **F64), lr=m * 2.0 / 20, steps=30, runs=2, generator=0)


def _digits(m):
    """Backprop on the digits MLP at lr = 2 m (lr = 2 trains it), 10 steps. The cross-entropy's gradient is bounded,
    so at 10x the weights grow only linearly and stay inside the ball (loss 3.8); from 1e6x they leave it."""
    return Z.train_digits("backprop", lr=2.0 * m, passes=30, records=10, generator=0)


DIVERGENCE_CASES = {"zeroth_order.zo_descent": (_descent, "diverges", ()),
                    "zeroth_order.train_digits": (_digits, "diverges from 1e6x", ())}
NOT_RUNNERS = {"zeroth_order.train_all": "calls train_digits (its case above) once per method and seed"}

FUZZ_SPECS = {
    "zeroth_order.two_point_estimate": Spec(lambda: dict(f=_bowl, x=torch.ones(3, **F64), sigma=0.1, n_probes=2,
                                                         probe="gaussian", generator=0, noise=None),
                                            positive="sigma", skip="noise"),  # noise: None or a tensor, tested above
    "zeroth_order.forward_gradient": Spec(lambda: dict(f=_bowl, x=torch.ones(3, **F64), n_probes=2, generator=0,
                                                       noise=None), skip="noise"),
    "zeroth_order.cosine_theory": Spec(lambda: dict(d=10)),
    "zeroth_order.probe_cosines": Spec(lambda: dict(f=_bowl, x=torch.ones(3, **F64), method="forward", n_probes=1,
                                                    n_repeats=5, sigma=1e-3, generator=0), positive="sigma"),
    "zeroth_order.layer_loss": Spec(lambda: dict(W=torch.ones(2, 3, **F64), x=torch.ones(3, **F64),
                                                 target=torch.zeros(2, **F64))),
    "zeroth_order.node_perturbation": Spec(lambda: dict(W=torch.ones(2, 3, **F64), x=torch.ones(3, **F64),
                                                        target=torch.zeros(2, **F64), sigma=0.1, generator=0,
                                                        noise=None), positive="sigma", skip="noise"),
    "zeroth_order.weight_perturbation": Spec(lambda: dict(W=torch.ones(2, 3, **F64), x=torch.ones(3, **F64),
                                                          target=torch.zeros(2, **F64), sigma=0.1, generator=0,
                                                          noise=None), positive="sigma", skip="noise"),
    "zeroth_order.quadratic_problem": Spec(lambda: dict(d=3, kappa=10.0, dtype=torch.float64, device="cpu"),
                                           positive="kappa", skip="dtype device"),  # passed to torch
    "zeroth_order.zo_descent": Spec(lambda: dict(h=torch.ones(3, **F64), x0=torch.ones(3, **F64), lr=0.1, steps=2,
                                                 method="forward", n_probes=1, runs=2, generator=0, record_every=1),
                                    positive="lr"),
    "zeroth_order.node_perturbation_mlp": Spec(
        lambda: dict(model=models.mlp_classifier((3, 4, 2)), params=models.mlp_classifier((3, 4, 2)).init(
            0, dtype=torch.float64, device="cpu"), X=torch.ones(5, 3, **F64), y=torch.tensor([0, 1, 0, 1, 1]),
            sigma=0.1, generator=0, noise=None), positive="sigma", skip="noise"),
    "zeroth_order.train_digits": Spec(lambda: dict(method="node", lr=0.1, passes=8, batch_size=4, n_probes=1,
                                                   sigma=1e-3, sizes=(64, 4, 10), records=2, data=None, generator=0),
                                      positive="lr sigma", skip="sizes data"),  # sizes: models' check; data: default
    "zeroth_order.train_all": Spec(lambda: dict(lrs={"node": 0.1}, passes=8, seeds=(0,)), skip="seeds lrs"),
    "check.zeroth_order.two_point": Spec(lambda: dict(fn=lambda f, x, sigma, v: x), skip="fn"),  # learner's function
}
FUZZ_OPT_OUT = {}
