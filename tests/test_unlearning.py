"""Tests of lessons_lib.unlearning: NPO unlearning, its SAM / RS smoothing and the relearning attack.

Numbers were measured with the library itself on 2 CPU cores (digits, 64-64-10 MLP, Adam lr 1e-3, 150 unlearning
steps, attack k = 10 samples and 30 steps): with seeds 0, 1, 2 and forget class 3, recovered forget accuracy
0.58 / 0.29 / 0.56 for NPO, 0.02 / 0.00 / 0.00 for NPO+SAM (rho 0.5); forget NLL about 19 (NPO) and 31-34 (SAM).
"""

from __future__ import annotations

import math

import pytest
import torch
from checkcases import Case
from fuzz_specs import Spec
from hypothesis import given, settings
from hypothesis import strategies as st

from lessons_lib import unlearning as U
from lessons_lib.check import unlearning as check


@pytest.fixture(scope="module")
def seed0():
    split = U.digits_split(generator=0)
    return split, U.pretrain(split, generator=0)


def test_pretrained_model_is_a_good_digit_classifier(seed0):
    split, theta = seed0
    assert 0.95 <= U.accuracy(theta, split.X_test, split.y_test) <= 0.99  # measured 0.974


def test_npo_forgets_the_class_and_keeps_the_rest(seed0):
    """Claim 2: beta = gamma = 1, Adam lr 1e-3, 150 steps: forget accuracy 0, retain within 1.2 points."""
    split, theta = seed0
    keep = split.y_test != 3
    before = U.accuracy(theta, split.X_test[keep], split.y_test[keep])
    run = U.unlearn(theta, split, method="npo")
    assert run.forget_accuracy == 0.0 and not run.diverged
    assert abs(run.retain_accuracy - before) <= 0.012, (run.retain_accuracy, before)


def test_sam_resists_the_attack_and_forgets_deeper_than_npo_on_one_seed(seed0):
    split, theta = seed0
    npo, sam = U.unlearn(theta, split, method="npo"), U.unlearn(theta, split, method="npo_sam", rho=0.5)
    rec_npo, rec_sam = (float(U.relearn(r.theta, split)[-1]) for r in (npo, sam))
    assert rec_npo - rec_sam >= 0.2 and rec_sam <= 0.15, (rec_npo, rec_sam)  # measured 0.58, 0.02
    assert sam.forget_nll > npo.forget_nll + 5, (sam.forget_nll, npo.forget_nll)  # measured 31.4 vs 18.7


def test_relearn_curve_starts_at_the_unlearned_accuracy(seed0):
    split, theta = seed0
    curve = U.relearn(theta, split, steps=3)
    f = split.y_test == 3
    assert curve.shape == (4,) and curve.dtype == torch.float64
    assert float(curve[0]) == U.accuracy(theta, split.X_test[f], split.y_test[f])


def test_npo_weights_are_one_at_the_reference_and_twice_the_sigmoid_elsewhere(seed0):
    split, theta = seed0
    assert torch.allclose(U.npo_weights(theta, theta, split), torch.ones(int((split.y_train == 3).sum())))
    other = theta + 0.05 * torch.randn(theta.shape, generator=torch.Generator().manual_seed(1))
    f = split.y_train == 3
    nll = lambda th: torch.nn.functional.cross_entropy(U.mlp_logits(th, split.X_train[f]), split.y_train[f],  # noqa: E731
                                                       reduction="none")
    want = 2 * torch.sigmoid(-0.5 * (nll(other) - nll(theta)))
    assert torch.allclose(U.npo_weights(other, theta, split, beta=0.5), want, rtol=1e-5)


def _loss(theta):
    return torch.nn.functional.softplus(2.0 * theta).sum() + (theta ** 4).sum() / 4 + theta[0] * theta[1]


def test_sam_gradient_is_autograd_at_the_perturbed_point():
    theta = torch.tensor([0.3, -1.2, 0.8], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(_loss(theta), theta)
    point = (theta + 0.4 * g / g.norm()).detach().requires_grad_(True)
    (want,) = torch.autograd.grad(_loss(point), point)
    got = U.sam_gradient(_loss, theta.detach(), rho=0.4)
    assert torch.allclose(got, want, rtol=1e-12, atol=1e-14)
    assert torch.equal(U.sam_gradient(_loss, theta.detach(), rho=0.0), g)
    assert not torch.allclose(got, g)


def test_sam_gradient_on_a_quadratic_is_g_plus_rho_h_u():
    H = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    theta = torch.tensor([1.0, -2.0], dtype=torch.float64)
    g = H @ theta
    got = U.sam_gradient(lambda x: 0.5 * x @ H @ x, theta, rho=0.7)
    assert torch.allclose(got, g + 0.7 * H @ g / g.norm(), rtol=1e-13)


vectors = st.lists(st.floats(-10, 10, allow_nan=False), min_size=4, max_size=4)


@settings(max_examples=60, deadline=None)
@given(vectors, vectors)
def test_pcgrad_never_opposes_the_retain_gradient_and_leaves_agreement_alone(a, b):
    g_f, g_r = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    out = U.pcgrad(g_f, g_r)
    scale = float(g_f.norm() * g_r.norm()) + 1e-30
    assert float(out @ g_r) >= -1e-12 * scale
    if float(g_f @ g_r) >= 0:
        assert torch.equal(out, g_f)
    else:
        assert abs(float(out @ g_r)) <= 1e-12 * scale * max(1.0, float(g_r.norm()))


def test_npo_loss_at_the_reference_is_two_over_beta_log_two(seed0):
    split, theta = seed0
    f = split.y_train == 3
    X, y = split.X_train[f], split.y_train[f]
    ref = torch.nn.functional.cross_entropy(U.mlp_logits(theta, X), y, reduction="none")
    for beta in (1.0, 0.1):
        assert float(U.npo_loss(theta, X, y, ref, beta=beta)) == pytest.approx(2 / beta * math.log(2), rel=1e-6)
    # lower likelihood than the reference lowers the loss
    assert float(U.npo_loss(theta, X, y, ref - 3.0)) < 2 * math.log(2)


def test_npo_gradient_is_ga_weighted_by_twice_the_sigmoid(seed0):
    """grad L_f = -(2/n) sum_i sigmoid(-beta (l_i - l_ref_i)) grad l_i: the weights at theta = ref are 1/2."""
    split, theta = seed0
    f = split.y_train == 3
    X, y = split.X_train[f][:5], split.y_train[f][:5]
    ref = torch.nn.functional.cross_entropy(U.mlp_logits(theta, X), y, reduction="none").detach() - 1.0
    g_npo = torch.func.grad(lambda th: U.npo_loss(th, X, y, ref, beta=0.5))(theta)
    w = torch.sigmoid(-0.5 * (torch.nn.functional.cross_entropy(U.mlp_logits(theta, X), y, reduction="none") - ref))
    g_w = torch.func.grad(lambda th: -(2 * w.detach() * torch.nn.functional.cross_entropy(
        U.MODEL.logits(th, X), y, reduction="none")).mean())(theta)
    assert torch.allclose(g_npo, g_w, rtol=1e-4, atol=1e-6)


def test_same_seed_same_run_and_injected_noise_is_used(seed0):
    split, theta = seed0
    a = U.unlearn(theta, split, method="npo_rs", steps=3, generator=5)
    b = U.unlearn(theta, split, method="npo_rs", steps=3, generator=5)
    c = U.unlearn(theta, split, method="npo_rs", steps=3, generator=6)
    assert torch.equal(a.theta, b.theta) and not torch.equal(a.theta, c.theta)
    gen = torch.Generator().manual_seed(5)
    noise = torch.stack([torch.randn(4, theta.numel(), generator=gen) for _ in range(3)])  # one draw per step
    d = U.unlearn(theta, split, method="npo_rs", steps=3, noise=noise)
    assert torch.equal(a.theta, d.theta)
    assert torch.equal(U.relearn(theta, split, steps=2, generator=1), U.relearn(theta, split, steps=2, generator=1))


def test_bad_input_is_named(seed0):
    split, theta = seed0
    with pytest.raises(ValueError, match="^method:"):
        U.unlearn(theta, split, method="sam")
    with pytest.raises(ValueError, match="^rho:"):
        U.unlearn(theta, split, method="npo_sam", rho=-0.1)
    with pytest.raises(ValueError, match="^rho:"):
        U.sam_gradient(_loss, torch.zeros(3, dtype=torch.float64), rho=-1.0)
    with pytest.raises(ValueError, match="^forget_class:"):
        U.unlearn(theta, split, forget_class=10)
    with pytest.raises(ValueError, match="^k:"):
        U.relearn(theta, split, k=10_000)
    with pytest.raises(ValueError, match="^theta:"):
        U.relearn(theta[:5], split)
    with pytest.raises(ValueError, match="^split:"):
        U.pretrain((split.X_train, split.y_train))
    with pytest.raises(ValueError, match="^g_r:"):
        U.pcgrad(torch.ones(3), torch.ones(2))
    with pytest.raises(ValueError, match="^noise:"):
        U.unlearn(theta, split, method="npo_rs", steps=2, noise=torch.zeros(2, 3, 5))
    with pytest.raises(ValueError, match="^theta_ref:"):
        U.npo_weights(theta, theta[:5], split)
    with pytest.raises(ValueError, match="^rho:"):
        U.npo_weights(theta, theta, split, rho=-0.5)


# --- the claims over seeds (slow) -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def three_seeds():
    out = []
    for seed in range(3):
        split = U.digits_split(generator=seed)
        out.append((seed, split, U.pretrain(split, generator=seed)))
    return out


@pytest.mark.slow
def test_every_method_forgets_keeps_retain_and_sam_resists_relearning_over_three_seeds(three_seeds):
    """Claims 2-4 and the issue's test list: forget <= 0.15, retain within 5 points; mean recovery of NPO minus
    NPO+SAM >= 0.2 with SAM <= 0.15; recovery falls over rho in (0, 0.1, 0.25, 0.5); rho = 1 no longer forgets;
    SAM's forget NLL exceeds NPO's; gradient ascent resists but loses retained accuracy."""
    rec = {m: [] for m in ("npo", "npo_rs", "multipoint", 0.0, 0.1, 0.25, 0.5)}
    for seed, split, theta in three_seeds:
        keep = split.y_test != 3
        before = U.accuracy(theta, split.X_test[keep], split.y_test[keep])
        runs = {m: U.unlearn(theta, split, method=m, generator=seed) for m in ("npo", "npo_rs", "multipoint", "ga")}
        for rho in (0.1, 0.25, 0.5):
            runs[rho] = U.unlearn(theta, split, method="npo_sam", rho=rho, generator=seed)
        runs[0.0] = runs["npo"]
        for key, r in runs.items():
            if key == "ga":
                continue
            assert r.forget_accuracy <= 0.15 and abs(r.retain_accuracy - before) <= 0.05, (key, r)
            if key in rec:
                rec[key].append(float(U.relearn(r.theta, split, generator=seed)[-1]))
        assert runs[0.5].forget_nll > runs["npo"].forget_nll
        # the sharpness explanation does not reproduce: SAM's forget NLL is not flatter (measured 45/35, 47/31, 41/32)
        assert U.forget_sharpness(runs[0.5].theta, split) >= U.forget_sharpness(runs["npo"].theta, split)
        ga = runs["ga"]
        assert ga.forget_accuracy <= 0.15 and ga.retain_accuracy < before - 0.1  # measured 0.60-0.69
        assert float(U.relearn(ga.theta, split, generator=seed)[-1]) <= 0.15
        assert U.unlearn(theta, split, method="npo_sam", rho=1.0).forget_accuracy > 0.5  # measured 0.88
    mean = {k: sum(v) / len(v) for k, v in rec.items()}
    rec["npo"] = rec[0.0]
    mean["npo"] = mean[0.0]
    assert mean["npo"] - mean[0.5] >= 0.2 and mean[0.5] <= 0.15, mean
    assert mean[0.0] > mean[0.1] > mean[0.25] > mean[0.5], mean
    assert mean["npo"] > mean["npo_rs"] > mean["multipoint"] > mean[0.5], mean


@pytest.mark.slow
def test_depth_claims_on_one_seed(seed0):
    """The depth section and the explorer's table, seed 0, digit 3: beta = 0.1 forgets deeper and is not relearned;
    NPO at beta = 1 saturates however long it runs; NPO at unlearning lr 3e-3 resists the 30-step attack; an
    attacker at lr 3e-3 restores NPO+SAM's digit; NPO's weights have collapsed at its end point but not at its
    SAM point."""
    split, theta = seed0
    deep = U.unlearn(theta, split, method="npo", beta=0.1)
    assert deep.forget_nll > 40 and float(U.relearn(deep.theta, split)[-1]) <= 0.15, deep  # measured 45-60, 0.00
    npo = U.unlearn(theta, split, method="npo")
    long_npo = U.unlearn(theta, split, method="npo", steps=500)
    assert long_npo.forget_nll < 25 and long_npo.forget_nll < npo.forget_nll + 4, (long_npo, npo)  # ~20 vs 18.7
    fast = U.unlearn(theta, split, method="npo", lr=3e-3)
    assert fast.forget_nll > 25 and float(U.relearn(fast.theta, split)[-1]) <= 0.15, fast  # measured 31, 0.05
    sam = U.unlearn(theta, split, method="npo_sam", rho=0.5)
    assert float(U.relearn(sam.theta, split, lr=3e-3)[-1]) >= 0.8  # measured >= 0.89
    w, w_up = U.npo_weights(npo.theta, theta, split), U.npo_weights(npo.theta, theta, split, rho=0.5)
    assert float(w.max()) < 0.1 and float(w.mean()) < 1e-2, (w.max(), w.mean())  # measured 1.6e-2, 2e-4
    assert float(w_up.mean()) > 10 * float(w.mean()), (w_up.mean(), w.mean())  # measured 0.11


@pytest.mark.slow
def test_order_of_the_methods_and_sharpness_on_digit_seven():
    """Digit 7, seed 0: recovery NPO > NPO+RS > multi-point > NPO+SAM (measured 0.67, 0.35, 0.08, 0.00), retain
    within 5 points, and SAM's forget NLL not clearly flatter than NPO's (measured 22 against 21)."""
    split = U.digits_split(generator=0)
    theta = U.pretrain(split, generator=0)
    keep = split.y_test != 7
    before = U.accuracy(theta, split.X_test[keep], split.y_test[keep])
    runs = {m: U.unlearn(theta, split, forget_class=7, method=m) for m in ("npo", "npo_rs", "multipoint", "npo_sam")}
    rec = {m: float(U.relearn(r.theta, split, forget_class=7)[-1]) for m, r in runs.items()}
    for m, r in runs.items():
        assert r.forget_accuracy <= 0.15 and abs(r.retain_accuracy - before) <= 0.05, (m, r)
    assert rec["npo"] > rec["npo_rs"] > rec["multipoint"] > rec["npo_sam"], rec
    lam = {m: U.forget_sharpness(runs[m].theta, split, forget_class=7) for m in ("npo", "npo_sam")}
    assert lam["npo_sam"] >= 0.8 * lam["npo"], lam


# --- self-check cases, divergence, fuzz ---------------------------------------------------------------

def _right(loss_fn, theta, rho):
    return U.sam_gradient(loss_fn, theta, rho=rho)


def _at_theta(loss_fn, theta, rho):
    return torch.func.grad(loss_fn)(theta)


def _downhill(loss_fn, theta, rho):
    g = torch.func.grad(loss_fn)(theta)
    return torch.func.grad(loss_fn)(theta - rho * g / g.norm())


def _unnormalised(loss_fn, theta, rho):
    g = torch.func.grad(loss_fn)(theta)
    return torch.func.grad(loss_fn)(theta + rho * g)


def _expected():
    return [float(x) for case in check.SAM_CASES.values() for x in U.sam_gradient(case[0], case[1], rho=case[2])]


CHECK_CASES = {
    "sam_forget_gradient": Case(
        _right, lambda f, th, r: 1.01 * _right(f, th, r), (_at_theta, _downhill, _unnormalised),
        expected=_expected(), inputs=[1, -0.5, 0.3, 0.2, -1, 0.7, 0.5, 0, 3, 2, 4, 0.25], function=True,
        nan=lambda f, th, r: torch.full_like(th, float("nan")),
        hints=((_at_theta, "gradient at theta itself"), (_downhill, "perturbed downhill"),
               (_unnormalised, "divide g by its norm"))),
}


def _theta0():
    return U.pretrain(U.digits_split(generator=0), steps=2)


DIVERGENCE_CASES = {
    "unlearning.unlearn": (lambda m: U.unlearn(_theta0(), U.digits_split(generator=0), method="npo", steps=5,
                                               lr=m * 1e-2), None, ()),
    "unlearning.pretrain": (lambda m: U.pretrain(U.digits_split(generator=0), steps=5, lr=m * 1e-2), None, ()),
    "unlearning.relearn": (lambda m: U.relearn(_theta0(), U.digits_split(generator=0), steps=5, lr=m * 1e-2),
                           None, ()),
}
NOT_RUNNERS = {}


def _split():
    return U.digits_split(generator=0)


FUZZ_SPECS = {
    "unlearning.digits_split": Spec(lambda: dict(test_fraction=0.3, generator=0), skip="generator"),
    "unlearning.mlp_logits": Spec(lambda: dict(theta=torch.zeros(U.MODEL.n_params), X=torch.rand(3, 64))),
    "unlearning.accuracy": Spec(lambda: dict(theta=torch.zeros(U.MODEL.n_params), X=torch.rand(3, 64),
                                             y=torch.tensor([1, 2, 3]))),
    "unlearning.pretrain": Spec(lambda: dict(split=_split(), steps=2, lr=1e-2, generator=0), positive="lr",
                                skip="split generator"),
    "unlearning.npo_loss": Spec(lambda: dict(theta=torch.zeros(U.MODEL.n_params), X=torch.rand(3, 64),
                                             y=torch.tensor([1, 2, 3]), ref_nll=torch.ones(3), beta=1.0),
                                positive="beta"),
    "unlearning.sam_gradient": Spec(lambda: dict(loss_fn=_loss, theta=torch.tensor([0.3, -1.0], dtype=torch.float64),
                                                 rho=0.5), nonneg="rho", skip="loss_fn"),
    "unlearning.npo_weights": Spec(lambda: dict(theta=torch.zeros(U.MODEL.n_params),
                                                theta_ref=torch.zeros(U.MODEL.n_params), split=_split(),
                                                forget_class=3, beta=1.0, rho=0.1),
                                   positive="beta", nonneg="rho", skip="split forget_class"),
    "unlearning.pcgrad": Spec(lambda: dict(g_f=torch.tensor([1.0, -2.0]), g_r=torch.tensor([0.5, 1.0]))),
    "unlearning.unlearn": Spec(lambda: dict(theta0=torch.zeros(U.MODEL.n_params), split=_split(), forget_class=3,
                                            method="multipoint", steps=2, lr=1e-3, beta=1.0, gamma=1.0, rho=0.5,
                                            sigma=0.3, n_points=2, generator=0),
                               positive="lr beta", nonneg="gamma rho sigma",
                               skip="split forget_class method generator"),
    "unlearning.relearn": Spec(lambda: dict(theta=torch.zeros(U.MODEL.n_params), split=_split(), forget_class=3, k=3,
                                            steps=2, lr=1e-3, generator=0), positive="lr",
                               skip="split forget_class generator"),
    "unlearning.forget_sharpness": Spec(lambda: dict(theta=torch.zeros(U.MODEL.n_params), split=_split(),
                                                     forget_class=3, max_iter=5), skip="split forget_class"),
    "check.unlearning.sam_forget_gradient": Spec(lambda: dict(fn=_right), skip="fn"),
    # fn: the learner's function
}
