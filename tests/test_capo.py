"""Tests of lessons_lib.capo: the per-token quadratic model against finite differences and exact enumeration,
the two masking rules, and the token bandit at a moderate and an aggressive learning rate (Melo, Abate & Gal 2025,
Stabilizing Policy Gradients for Sample-Efficient Reinforcement Learning in LLM Reasoning, arXiv 2510.00819)."""

from __future__ import annotations

import math

import pytest
import torch
from checkcases import Case
from fuzz_specs import Spec

from lessons_lib import capo, check

F64 = dict(dtype=torch.float64)


def _problem(n=7, V=5, H=4, scale=1.0, seed=0, per_token=False):
    g = torch.Generator().manual_seed(seed)
    W = scale * torch.randn(V, H, generator=g, **F64)
    h = torch.randn(n, H, generator=g, **F64)
    a = torch.randint(V, (n,), generator=g)
    A = torch.randn(n, generator=g, **F64)
    G = torch.randn(n, V, H, generator=g, **F64) if per_token else torch.randn(V, H, generator=g, **F64)
    return W, h, a, A, G


def _objective(W, h, a, A, G, s):
    """A * pi_a(W + s G) / pi_a(W), token by token (the surrogate whose derivatives the terms are)."""
    return capo.realised_change(W, h, a, A, G, s) + A if s > 0 else A.clone()


# --- the per-token model ------------------------------------------------------------------------------------

@pytest.mark.parametrize("per_token", [False, True])
def test_first_and_hessian_terms_match_finite_differences(per_token):
    W, h, a, A, G = _problem(per_token=per_token)
    terms = capo.token_terms(W, h, a, A, G)
    def f(x):  # A * pi_a(W + x G) / pi_a(W), for any real x (negative too)
        Wn = W + x * G
        new = torch.einsum("nvk,nk->nv", Wn, h) if G.ndim == 3 else h @ Wn.T
        idx = a[:, None]
        return A * torch.exp(torch.log_softmax(new, -1).gather(-1, idx) - torch.log_softmax(h @ W.T, -1).gather(-1, idx)
                             ).squeeze(-1)

    s1 = s2 = 1e-4  # central differences: truncation errors about 1e-9 and 1e-8 here, round-off 1e-12 and 1e-8
    first_fd = (f(s1) - f(-s1)) / (2 * s1)
    second_fd = (f(s2) - 2 * f(0.0) + f(-s2)) / s2 ** 2
    assert torch.allclose(terms.first_order, first_fd, atol=1e-6, rtol=0)
    assert torch.allclose(terms.hessian, second_fd, atol=1e-6, rtol=0)


def test_first_order_term_is_the_inner_product_of_gradient_and_update():
    W, h, a, A, _ = _problem()
    pi = torch.softmax(h @ W.T, -1)
    v = torch.nn.functional.one_hot(a, W.shape[0]).to(torch.float64) - pi
    g = A[:, None, None] * v[:, :, None] * h[:, None, :]        # per-token gradient A v h^T of A log pi_a
    terms = capo.token_terms(W, h, a, A, g / 7)
    assert torch.allclose(terms.first_order, (g * g / 7).sum((1, 2)), rtol=1e-12, atol=1e-14)


def test_fisher_term_is_unbiased_for_the_kl_curvature():
    """sum_a pi_a (v_a^T u)^2 = u^T F u, exactly, by enumerating every token a (same h, same G)."""
    W, h, _, _, G = _problem(n=1, V=6, H=3, scale=1.5)
    G = 5 * G
    V = W.shape[0]
    hs = h.expand(V, -1)
    terms = capo.token_terms(W, hs, torch.arange(V), torch.ones(V, **F64), G)
    pi = torch.softmax(h @ W.T, -1)[0]
    u = (h @ G.T)[0]
    uFu = (pi * u * u).sum() - (pi * u).sum() ** 2
    assert abs(float((pi * terms.fisher).sum() - uFu)) < 1e-12
    assert float(uFu) > 0.1  # a non-trivial curvature


def test_kl_over_half_s_squared_is_the_fisher_quadratic_form():
    W, h, _, _, G = _problem(n=3, V=6, H=3)
    s = 1e-3
    logp0 = torch.log_softmax(h @ W.T, -1)
    logp1 = torch.log_softmax(h @ (W + s * G).T, -1)
    kl = (logp0.exp() * (logp0 - logp1)).sum(-1)
    pi, u = logp0.exp(), h @ G.T
    uFu = (pi * u * u).sum(-1) - (pi * u).sum(-1) ** 2
    assert torch.allclose(kl / (0.5 * s ** 2), uFu, atol=1e-3, rtol=0)


def test_predicted_and_kl_terms_follow_the_quadratic_model():
    W, h, a, A, G = _problem()
    terms = capo.token_terms(W, h, a, A, G)
    lr = 0.3
    assert torch.equal(capo.predicted_change(terms, lr), lr * terms.first_order + 0.5 * lr ** 2 * terms.hessian)
    assert torch.equal(capo.kl_term(terms, lr), 0.5 * lr ** 2 * terms.fisher)
    # the remainder of the model is third order in lr: halving lr divides the error by about 8
    err = [float((capo.realised_change(W, h, a, A, G, s) - capo.predicted_change(terms, s)).abs().max())
           for s in (1e-2, 5e-3)]
    assert 6.0 < err[0] / err[1] < 10.0


# --- the masks ---------------------------------------------------------------------------------------------

def test_code_rule_on_crafted_values():
    m_H = torch.tensor([0.0, 0.05, -0.05, 0.2, -0.2, 0.05])
    m_F = torch.tensor([0.0, 0.01, 0.01, 0.01, 0.01, 0.5])
    sym = capo.token_mask(m_H, m_F, tau_H=0.1, tau_F=0.1)
    assert sym.tolist() == [True, True, True, False, False, False]
    one = capo.token_mask(m_H, m_F, tau_H=0.1, tau_F=0.1, symmetric=False)
    assert one.tolist() == [True, True, False, False, False, False]
    # strict inequalities at the thresholds
    assert capo.token_mask(torch.tensor([0.1]), torch.tensor([0.0]), tau_H=0.1, tau_F=1.0).tolist() == [False]
    assert capo.token_mask(torch.tensor([0.0]), torch.tensor([0.1]), tau_H=1.0, tau_F=0.1).tolist() == [False]


def test_theorem_rule_on_crafted_values():
    m_H = torch.tensor([0.0, 0.05, -0.05, 0.2, 0.2])
    m_F = torch.tensor([0.0, 0.01, 0.01, 0.01, 0.5])
    keep = capo.token_mask(m_H, m_F, tau_H=0.0, tau_F=0.1, rule="theorem")
    assert keep.tolist() == [True, True, False, True, False]
    # the rules disagree on a large predicted gain: the code drops it, the theorem keeps it
    code = capo.token_mask(m_H, m_F, tau_H=0.1, tau_F=0.1)
    assert code[3].item() is False and keep[3].item() is True


def test_thresholds_per_run_broadcast_over_tokens():
    m_H = torch.zeros(2, 3)
    m_F = torch.tensor([[0.0, 0.2, 0.4], [0.0, 0.2, 0.4]])
    keep = capo.token_mask(m_H, m_F, tau_H=math.inf, tau_F=[0.3, 0.1])
    assert keep.tolist() == [[True, True, False], [True, False, False]]


# --- the bandit --------------------------------------------------------------------------------------------

def test_accuracy_is_exact_by_enumeration():
    b = capo.token_bandit(vocab=3, length=3, hidden=4, generator=1, dtype=torch.float64, device="cpu")
    W = torch.randn(3, 4, generator=torch.Generator().manual_seed(2), **F64)
    phi = b.features
    total = 0.0
    for c in range(3):
        for seq in __import__("itertools").product(range(3), repeat=3):
            p, s = 1.0, 0
            for t, tok in enumerate(seq):
                p *= float(torch.softmax(W @ phi[c, t, s], -1)[tok])
                s = (s + tok) % 3
            total += p * (s == c) / 3
    assert abs(float(capo.accuracy(b, W)) - total) < 1e-12
    assert abs(float(capo.accuracy(b, torch.zeros(3, 4, **F64))) - 1 / 3) < 1e-12  # uniform policy: 1/V


def _final(method_runs):
    r = method_runs
    return r.accuracy[-1], r.entropy[-1], r.mask_rate[1:].mean(0)


@pytest.fixture(scope="module")
def bandit():
    return capo.token_bandit(generator=0, device="cpu")


@pytest.mark.slow
def test_moderate_rate_grpo_learns_and_capo_keeps_up(bandit):
    """lr 8, 200 steps, 5 seeds each (batched): GRPO's median final accuracy >= 0.95 (measured 0.986) and CAPO with
    tau_F = 0.3 within 0.02 of it (measured 0.984; it masks nothing at this rate)."""
    r = capo.train(bandit, lr=8.0, steps=200, runs=10, tau_F=[math.inf] * 5 + [0.3] * 5, generator=0,
                   record_every=50)
    acc, _, _ = _final(r)
    grpo, capo_ = acc[:5].median(), acc[5:].median()
    assert grpo >= 0.95, acc
    assert abs(float(capo_ - grpo)) <= 0.02, acc


def test_aggressive_rate_grpo_collapses_and_capo_is_rescued(bandit):
    """lr 128, 200 steps, 5 seeds each. Measured (seed 0): GRPO median 0.50 (0.375-0.75), entropy 0.007-0.05; CAPO
    with tau_F = 0.3 median 0.744 (0.62-0.86), mask rate (every step) about 2-3%;
    tau_F = 0.03 masks 63-69% and stays at 1/V.
    The claimed CAPO median >= 0.75 did not hold (0.744, 0.739, 0.732 for generators 0, 1, 2): tested at >= 0.7."""
    r = capo.train(bandit, lr=128.0, steps=200, runs=15, tau_F=[math.inf] * 5 + [0.3] * 5 + [0.03] * 5,
                   generator=0, record_every=1)  # every step: most masking happens in the first ~10 steps
    acc, ent, rate = _final(r)
    assert acc[:5].median() <= 0.65 and bool((ent[:5] < 0.2).all()), (acc, ent)
    assert acc[5:10].median() >= 0.7 and acc[5:10].median() >= acc[:5].median() + 0.15, acc
    assert float(rate[5:10].mean()) < 0.08, rate
    assert bool((rate[10:] > 0.5).all()) and float((acc[10:] - 1 / 8).abs().max()) < 0.02, (rate, acc)
    assert not bool(r.diverged.any())


@pytest.mark.slow
def test_a_hessian_mask_alone_does_not_rescue_grpo(bandit):
    """lr 128: tau_H in {0.1, 1} with no Fisher mask; measured median 0.32 and 0.50 (GRPO 0.50)."""
    r = capo.train(bandit, lr=128.0, steps=200, runs=10, tau_H=[0.1] * 5 + [1.0] * 5, tau_F=math.inf,
                   generator=0, record_every=50)
    acc = r.accuracy[-1]
    assert acc[:5].median() <= 0.65 and acc[5:].median() <= 0.65, acc


@pytest.mark.slow
def test_a_fixed_tau_F_slows_learning_at_a_moderate_rate(bandit):
    """lr 32, 200 steps, 5 seeds each: CAPO with tau_F = 0.3 ends at least 0.2 below GRPO's median (notebook table,
    seed 0: 0.619 against 0.997), although it drops only 0.9-1.7% of the tokens."""
    r = capo.train(bandit, lr=32.0, steps=200, runs=10, tau_F=[math.inf] * 5 + [0.3] * 5, generator=0,
                   record_every=5)
    acc, _, rate = _final(r)
    assert acc[5:].median() <= acc[:5].median() - 0.2, acc
    assert float(rate[5:].mean()) < 0.03, rate


def test_code_and_theorem_rules_keep_the_same_tokens_on_the_bandit(bandit):
    """With tau_H = 1e9 (code) and delta_H = 0 (theorem) and tau_F = 0.3, the rules differ only on tokens with m_H < 0,
    which at lr 128 all have m_F >= 0.3 on this bandit: the same masks and accuracies over 40 steps, 3 seeds."""
    kw = dict(lr=128.0, steps=40, runs=3, tau_F=0.3, generator=3, record_every=40)
    code = capo.train(bandit, tau_H=1e9, rule="code", **kw)
    thm = capo.train(bandit, tau_H=0.0, rule="theorem", **kw)
    assert torch.allclose(code.accuracy, thm.accuracy, atol=1e-6)
    assert torch.equal(code.mask_rate, thm.mask_rate)


def test_same_seed_same_run_and_adam_runs(bandit):
    kw = dict(lr=0.05, steps=5, runs=2, optimizer="adam", generator=4, record_every=1)
    a, b = capo.train(bandit, **kw), capo.train(bandit, **kw)
    assert torch.equal(a.W, b.W) and torch.equal(a.accuracy, b.accuracy)
    c = capo.train(bandit, **{**kw, "generator": 5})
    assert not torch.equal(a.W, c.W)
    assert bool((a.accuracy[-1] > a.accuracy[0]).all())


def test_bad_input_names_the_argument(bandit):
    W, h, a, A, G = _problem()
    with pytest.raises(ValueError, match="^rule:"):
        capo.token_mask(torch.zeros(2), torch.zeros(2), tau_H=1.0, tau_F=1.0, rule="paper")
    with pytest.raises(ValueError, match="^rule:"):
        capo.train(bandit, rule="paper", steps=1)
    with pytest.raises(ValueError, match="^method:"):
        capo.train(bandit, method="ppo", steps=1)
    with pytest.raises(ValueError, match="^G:"):
        capo.token_terms(W, h, a, A, G[:, :2])
    with pytest.raises(ValueError, match="^a:"):
        capo.token_terms(W, h, a + 10, A, G)
    with pytest.raises(ValueError, match="^tau_F:"):
        capo.token_mask(torch.zeros(2), torch.zeros(2), tau_H=1.0, tau_F=-1.0)
    with pytest.raises(ValueError, match="^lr:"):
        capo.train(bandit, lr=[1.0, 2.0], runs=3, steps=1)
    with pytest.raises(ValueError, match="^tau_F:"):
        capo.token_mask(torch.zeros(2), torch.zeros(2), tau_H=1.0, tau_F=math.nan)
    with pytest.raises(ValueError, match="^tau_H:"):
        capo.train(bandit, tau_H=0.0, steps=1)  # the code's rule needs tau_H > 0
    with pytest.raises(ValueError, match="^m_F:"):
        capo.token_mask(torch.zeros(2), torch.tensor([0.0, math.nan]), tau_H=1.0, tau_F=1.0)
    with pytest.raises(ValueError, match="^samples:"):
        capo.train(bandit, samples=1, steps=1)


def test_self_check_names_a_factor_of_one_half_and_does_not_reveal_the_formula():
    half = check.capo_hessian(lambda *x: 0.5 * _hess(*x))
    assert not half and "factor 1/2" in half.message, half
    other = check.capo_hessian(lambda *x: _hess(*x) + 0.3 * x[3])
    assert not other and "diag pi - pi pi^T" not in other.message, other


# --- self-check, divergence and fuzz registrations --------------------------------------------------------

def _hess(W, h, a, A, G, *, sign=-1.0, adv=True, scale=1.0):
    pi = torch.softmax(h @ W.T, -1)
    u = h @ G.T
    vu = u.gather(-1, a[:, None]).squeeze(-1) - (pi * u).sum(-1)
    uFu = (pi * u * u).sum(-1) - (pi * u).sum(-1) ** 2
    return scale * (A if adv else 1.0) * (vu ** 2 + sign * uFu)


CHECK_CASES = {
    "capo_hessian": Case(
        _hess, lambda *x: _hess(*x, scale=1.01),
        (lambda *x: _hess(*x, adv=False), lambda *x: _hess(*x, sign=1.0)),
        expected=[v for x in check.capo.CASES.values() for v in _hess(*x).tolist()],
        inputs=[5, 4, 3, 12, 8, 6, 1, 2], function=True,
        nan=lambda W, h, a, A, G: torch.full((h.shape[0],), float("nan"), **F64),
        hints=((lambda *x: _hess(*x, adv=False), "advantage"), (lambda *x: _hess(*x, sign=1.0), "minus sign"))),
}


def _runner(mult):
    """lr = 8 (a rate at which GRPO learns smoothly) times mult, 5 steps. The policy gradient is bounded, so the
    weights grow only linearly in lr: no flag at 10x and 1e6x; at 1e300x the float32 step overflows on the first
    update and the run is flagged at step 1, frozen at W = 0."""
    b = capo.token_bandit(generator=0, device="cpu")
    r = capo.train(b, lr=8.0 * mult, steps=5, runs=2, generator=0)
    if mult >= 1e300:
        assert bool(r.diverged.all()) and r.diverged_at.tolist() == [1, 1] and not bool(r.W.any()), r.diverged_at
    else:
        assert not bool(r.diverged.any())
    return r


DIVERGENCE_CASES = {"capo.train": (_runner, None, ())}  # its own checks above: flagged at 1e300x
NOT_RUNNERS = {}


def _terms():
    return capo.token_terms(*_problem(n=3, V=4, H=2))


def _small():
    return capo.token_bandit(vocab=3, length=2, hidden=4, generator=0, device="cpu")


FUZZ_SPECS = {
    "capo.token_terms": Spec(lambda: dict(zip("W h a A G".split(), _problem(n=3, V=4, H=2)))),
    "capo.realised_change": Spec(lambda: dict(**dict(zip("W h a A G".split(), _problem(n=3, V=4, H=2))), lr=0.1),
                                 positive="lr"),
    "capo.predicted_change": Spec(lambda: dict(terms=_terms(), lr=0.5), positive="lr"),
    "capo.kl_term": Spec(lambda: dict(terms=_terms(), lr=0.5), positive="lr"),
    "capo.token_mask": Spec(lambda: dict(m_H=torch.tensor([0.1, -0.2], **F64), m_F=torch.tensor([0.0, 0.3], **F64),
                                         tau_H=0.5, tau_F=0.2, rule="code", symmetric=True), nonneg="tau_F",
                            skip="tau_H tau_F"),  # inf is a valid threshold (no test); NaN and < 0 tested above
    "capo.token_bandit": Spec(lambda: dict(vocab=3, length=2, hidden=4, generator=0, dtype=torch.float64,
                                           device="cpu"), skip="dtype device"),  # dtype, device: passed to torch
    "capo.accuracy": Spec(lambda: dict(bandit=_small(), W=torch.zeros(3, 4))),
    "capo.train": Spec(lambda: dict(bandit=_small(), method="capo", lr=1.0, steps=2, runs=2, prompts=2, samples=2,
                                    tau_H=1.0, tau_F=0.3, rule="code", symmetric=True, optimizer="sgd",
                                    betas=(0.9, 0.999), eps=1e-8, record_every=1, generator=0),
                       positive="lr eps", skip="betas tau_H tau_F"),
    # betas: a pair, checked in range; tau_H, tau_F: inf is a valid threshold (no test), validated by token_mask
    "capo.token_batch": Spec(lambda: dict(bandit=_small(), W=torch.zeros(3, 4, **F64), prompts=2, samples=2,
                                          generator=0), positive="prompts samples"),
    "check.capo.capo_hessian": Spec(lambda: dict(fn=lambda W, h, a, A, G: A), skip="fn"),  # the learner's function
}
FUZZ_OPT_OUT = {}
