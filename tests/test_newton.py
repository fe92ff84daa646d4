"""Tests of lessons_lib.newton: gradient-regularised Newton with approximate Hessians (arXiv:2506.13710).

The digits problem (all 1,797 samples, pixels / 16, a bias column, even against odd, mu = 1e-3, x0 = 0,
gamma0 = 1) gives, measured: exact Hessian 8 iterations to f - f* < 1e-8, fixed bound 117, s = 0.5 62,
s = 0.9 106, and GD with step 1/L 0.0412 above f* after 200 steps. With the constant 4 in the acceptance test
instead of 8: 137, 72, 124; on the 1,348-sample training split alone: 122, 64, 110.
"""

from __future__ import annotations

import fuzz_specs
import pytest
import torch
from checkcases import Case

from lessons_lib import newton as N
from lessons_lib.check import newton as C

F64 = dict(dtype=torch.float64)


@pytest.fixture(scope="module")
def digits():
    X, y = N.digits_parity(device="cpu")
    P = N.logistic_regression(X, y, mu=1e-3)
    x_star, f_star = N.minimum(P)
    return P, x_star, f_star


def _small(seed=0, n=40, d=4, mu=0.05):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=gen, **F64)
    y = (torch.rand(n, generator=gen, **F64) < 0.5).to(torch.float64)
    return N.logistic_regression(X, y, mu=mu)


def test_digits_problem_has_the_stated_shape(digits):
    P, _, _ = digits
    assert P.X.shape == (1797, 65) and bool((P.X[:, -1] == 1).all()) and float(P.X[:, :-1].max()) == 1.0
    from sklearn.datasets import load_digits

    target = load_digits().target
    assert int(P.y.sum()) == int((target % 2 == 0).sum())  # every sample once: the even ones labelled 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grad_and_hess_match_autograd(seed):
    P = _small(seed)
    x = torch.randn(4, generator=torch.Generator().manual_seed(seed + 10), **F64)
    g = torch.func.grad(P.value)(x)
    H = torch.func.hessian(P.value)(x)
    assert torch.allclose(P.grad(x), g, rtol=1e-10, atol=1e-12)
    assert torch.allclose(P.hess(x), H, rtol=1e-10, atol=1e-12)
    assert bool((torch.linalg.eigvalsh(P.fixed_hessian() - P.hess(x)) > -1e-12).all())  # the fixed bound


@pytest.mark.parametrize("lam", [0.0, 1e-3, 2.0])
def test_step_equals_a_dense_solve(lam):
    P = _small(1)
    x = torch.ones(4, **F64)
    g, H = P.grad(x), P.hess(x)
    want = -torch.linalg.solve(H + lam * torch.eye(4, **F64), g)
    step = N.regularized_newton_step(g, H, lam)
    assert torch.allclose(step, want, rtol=1e-10, atol=1e-14)
    sigma_min = float(torch.linalg.eigvalsh(H)[0])
    assert float(step.norm()) <= float(g.norm()) / max(lam, sigma_min) * (1 + 1e-12)  # eq-newton-radius


def test_minimum_matches_scipy_and_sklearn(digits):
    from scipy.optimize import minimize
    from sklearn.linear_model import LogisticRegression as SkLR

    P, x_star, f_star = digits
    res = minimize(lambda v: float(P.value(torch.as_tensor(v))), torch.zeros(65, **F64).numpy(), method="trust-exact",
                   jac=lambda v: P.grad(torch.as_tensor(v)).numpy(), hess=lambda v: P.hess(torch.as_tensor(v)).numpy(),
                   options=dict(gtol=1e-10))
    assert abs(res.fun - f_star) < 1e-8
    n = len(P.y)
    sk = SkLR(C=1 / (n * P.mu), fit_intercept=False, solver="newton-cholesky", tol=1e-12, max_iter=100)
    sk.fit(P.X.numpy(), P.y.numpy())
    f_sk = float(P.value(torch.as_tensor(sk.coef_[0])))
    assert abs(f_sk - f_star) < 1e-8 and f_star <= min(f_sk, res.fun) + 1e-12


def test_exact_fixed_and_gd_on_digits(digits):
    """Claim 3: exact <= 15 iterations (measured 8), fixed <= 200 (measured 117) at a linear rate, GD with 1/L
    still 0.02-0.08 above f* after 200 steps (measured 0.0412) and never below 1e-4."""
    P, _, f_star = digits
    x0 = torch.zeros(65, **F64)
    exact = N.gradient_regularized_newton(P, x0, hessian="exact", steps=30, tol=1e-8)
    assert 0 < N.iterations_to(exact, f_star) <= 15
    fixed = N.gradient_regularized_newton(P, x0, hessian="fixed", steps=200, tol=1e-8)
    k = N.iterations_to(fixed, f_star)
    assert 0 < k <= 200
    gap = torch.log10(fixed.f[:k + 1] - f_star)
    half = k // 2
    s1, s2 = (gap[half] - gap[10]) / (half - 10), (gap[k] - gap[half]) / (k - half)
    assert s1 < 0 and s2 < 0 and 0.5 < float(s1 / s2) < 2  # linear: a roughly constant negative slope
    gd = N.gradient_descent(P, x0, steps=200)
    assert 0.02 < float(gd.f[-1]) - f_star < 0.08 and float((gd.f - f_star).min()) > 1e-4


@pytest.mark.slow
def test_iterations_grow_monotonically_with_s(digits):
    """Claim 4: (1 - s) H_exact + s H_fixed; measured 8, 62, 106, 117 for s = 0, 0.5, 0.9, 1."""
    P, _, f_star = digits
    x0 = torch.zeros(65, **F64)
    its = [N.iterations_to(N.gradient_regularized_newton(P, x0, hessian=s, steps=200, tol=1e-8), f_star)
           for s in (0.0, 0.5, 0.9, 1.0)]
    assert all(k > 0 for k in its) and its == sorted(its) and len(set(its)) == 4, its
    assert its[0] <= 15 and its[1] < its[3] * 0.75


@pytest.mark.slow
def test_a_stricter_test_and_the_training_split_move_the_counts_towards_140_74_127(digits):
    """What did not reproduce: counts of 140, 74 and 127 (fixed, s = 0.5, s = 0.9) reported for an earlier setup.
    The constant 4 in the test gives 137, 72, 124 (each within 10 % of those, above the constant 8's 117, 62,
    106); the 1,348-sample training split gives 122, 64, 110 (closer to 117, 62, 106 than to 140, 74, 127)."""
    P, _, f_star = digits
    x0 = torch.zeros(65, **F64)

    def counts(problem, f_min, constant):
        return [N.iterations_to(N.gradient_regularized_newton(problem, x0, hessian=s, steps=200, tol=1e-8,
                                                              constant=constant), f_min) for s in (1.0, 0.5, 0.9)]

    eight, four = counts(P, f_star, 8.0), counts(P, f_star, 4.0)
    assert all(0 < a < b for a, b in zip(eight, four)), (eight, four)
    assert all(abs(b - ref) < 0.1 * ref for b, ref in zip(four, (140, 74, 127))), four
    X, y = N.digits_parity(subset="train")
    assert X.shape == (1348, 65)
    train = N.logistic_regression(X, y, mu=1e-3)
    split = counts(train, N.minimum(train)[1], 8.0)
    assert all(abs(c - a) < abs(c - ref) for c, a, ref in zip(split, eight, (140, 74, 127))), split


@pytest.mark.parametrize("s, search_its", [(1.0, 115), (0.5, 60)])
def test_a_large_fixed_radius_beats_the_search_with_approximate_hessians(digits, s, search_its):
    """The explorer at mu = 1e-3, gamma0 = 100 (runs to ||grad f|| <= 1e-6, 130 steps): the fixed radius takes
    every first trial, fails the test at most steps, and still reaches f - f* < 1e-8 sooner (measured 87
    against 115 for s = 1, 46 against 60 for s = 0.5)."""
    P, _, f_star = digits
    x0 = torch.zeros(65, **F64)
    its = {}
    for adaptive in (True, False):
        r = N.gradient_regularized_newton(P, x0, hessian=s, gamma0=100.0, adaptive=adaptive, steps=130, tol=1e-6)
        its[adaptive] = N.iterations_to(r, f_star)
        if not adaptive:
            assert float((~r.accepted).float().mean()) > 0.5  # it fails the descent test at most steps
    assert 0 < its[False] < 0.9 * its[True] and abs(its[True] - search_its) <= 0.1 * search_its, its


def test_every_step_passes_the_descent_test(digits):
    """The invariant f - f+ >= ||grad f+||^2 / (8 lam) at every step while f - f* > 1e-10, for s = 0.5."""
    P, _, f_star = digits
    r = N.gradient_regularized_newton(P, torch.zeros(65, **F64), hessian=0.5, steps=60)
    for k in range(r.steps):
        if float(r.f[k]) - f_star <= 1e-10:
            break
        assert bool(r.accepted[k])
        assert float(r.f[k] - r.f[k + 1]) >= float(r.grad_norm[k + 1]) ** 2 / (8 * float(r.lam[k]))
        assert float(r.lam[k]) == pytest.approx(float(r.grad_norm[k]) / float(r.gamma[k]), rel=1e-12)


def test_damping_fades_with_the_gradient_and_gamma_doubles_with_the_exact_hessian(digits):
    P, _, _ = digits
    r = N.gradient_regularized_newton(P, torch.zeros(65, **F64), hessian="exact", steps=30, tol=1e-8)
    assert r.converged and bool(r.accepted.all()) and r.lam[-1] < 1e-6 * r.lam[0]
    assert bool((r.gamma[1:] >= r.gamma[:-1]).all())  # every first trial passes: gamma only grows


def test_with_the_fixed_bound_gamma_follows_the_gradient_and_the_damping_levels_off(digits):
    """The figure's reading: with H_fixed, gamma_k falls with ||grad f|| (a factor ~500 from step 20 to the
    117th) while lam_k stays within a factor of 2 (measured 0.013 to 0.026), unlike the exact Hessian's."""
    P, _, f_star = digits
    r = N.gradient_regularized_newton(P, torch.zeros(65, **F64), hessian="fixed", steps=150, tol=1e-8)
    k = N.iterations_to(r, f_star)
    lam = r.lam[20:k]
    assert 0.005 < float(lam.min()) and float(lam.max()) < 0.05 and float(lam.max() / lam.min()) < 4
    shrink_gamma, shrink_grad = float(r.gamma[k - 1] / r.gamma[20]), float(r.grad_norm[k - 1] / r.grad_norm[20])
    assert shrink_gamma < 0.01 and 0.25 < shrink_gamma / shrink_grad < 4


def test_search_halves_until_accepted_and_gives_up_after_max_tries():
    P = _small(2)
    x = torch.ones(4, **F64)
    flat = 1e-4 * torch.eye(4, **F64)
    s = N.gamma_search(P.value, P.grad, x, flat, gamma=1e3)
    assert s.accepted and s.tries > 1 and s.gamma == pytest.approx(2 * 1e3 / 2 ** (s.tries - 1))
    stuck = N.gamma_search(P.value, P.grad, x, flat, gamma=1e3, max_tries=1)
    assert not stuck.accepted and torch.equal(stuck.x, x) and stuck.gamma == 500.0
    fixed = N.gamma_search(P.value, P.grad, x, flat, gamma=1e3, adaptive=False)
    assert not fixed.accepted and fixed.gamma == 1e3 and not torch.equal(fixed.x, x)


def test_a_too_large_fixed_gamma_fails_the_test():
    P = _small(0, mu=0.01)
    r = N.gradient_regularized_newton(P, torch.zeros(4, **F64), hessian="fixed", gamma0=1e4, adaptive=False,
                                      steps=5)
    assert not bool(r.accepted.any()) and torch.allclose(r.gamma, torch.full((5,), 1e4, **F64), rtol=1e-12)


def test_same_inputs_same_run(digits):
    P, _, _ = digits
    a = N.gradient_regularized_newton(P, torch.zeros(65, **F64), hessian=0.9, steps=15)
    b = N.gradient_regularized_newton(P, torch.zeros(65, **F64), hessian=0.9, steps=15)
    assert torch.equal(a.x, b.x) and torch.equal(a.gamma, b.gamma) and torch.equal(a.tries, b.tries)


def test_a_callable_hessian_is_used():
    P = _small(1)
    x0 = torch.zeros(4, **F64)
    a = N.gradient_regularized_newton(P, x0, hessian=lambda x: P.hess(x), steps=5)
    b = N.gradient_regularized_newton(P, x0, hessian="exact", steps=5)
    assert torch.allclose(a.x, b.x, rtol=0, atol=0)


def test_bad_input_names_the_argument():
    P = _small(0)
    x0 = torch.zeros(4, **F64)
    with pytest.raises(ValueError, match="^mu:"):
        N.logistic_regression(P.X, P.y, mu=-1.0)
    with pytest.raises(ValueError, match="^gamma0:"):
        N.gradient_regularized_newton(P, x0, gamma0=0.0, steps=2)
    with pytest.raises(ValueError, match="^hessian:"):
        N.gradient_regularized_newton(P, x0, hessian=1.5, steps=2)
    with pytest.raises(ValueError, match="^hessian:"):
        N.gradient_regularized_newton(P, x0, hessian="exactly", steps=2)
    with pytest.raises(ValueError, match="^y:"):
        N.logistic_regression(P.X, P.y * 2, mu=0.1)
    with pytest.raises(ValueError, match="^lam:"):
        N.regularized_newton_step(P.grad(x0), P.hess(x0), -1.0)
    with pytest.raises(ValueError, match="^x0:"):
        N.gradient_regularized_newton(P, torch.zeros(2, 4, **F64), steps=2)
    with pytest.raises(ValueError, match="^tol:"):
        N.iterations_to(N.gradient_descent(P, x0, steps=2), 0.0, tol=0.0)
    with pytest.raises(ValueError, match="^constant:"):
        N.gradient_regularized_newton(P, x0, steps=2, constant=0.0)
    with pytest.raises(ValueError, match="^subset:"):
        N.digits_parity(subset="test")


def test_minimum_rejects_mu_zero():
    """mu = 0 on separable data has no minimiser (the loss decreases along a separating direction)."""
    X = torch.tensor([[1.0, 1.0], [2.0, 1.0], [-1.0, 1.0], [-2.0, 1.0]], **F64)
    P = N.logistic_regression(X, torch.tensor([1.0, 1.0, 0.0, 0.0], **F64), mu=0.0)
    with pytest.raises(ValueError, match="^problem:.*mu"):
        N.minimum(P)
    assert N.minimum(N.logistic_regression(P.X, P.y, mu=0.1))[1] > 0


# --- self-check cases (tests/test_course.py) ---

def _right(value, grad, x, H, gamma):
    s = N.gamma_search(value, grad, x, H, gamma=gamma)
    return s.x, s.gamma


def _close(value, grad, x, H, gamma):
    s = N.gamma_search(value, grad, x, H, gamma=gamma)
    return s.x * 1.01, s.gamma * 1.01


def _variant(**kw):
    def fn(value, grad, x, H, gamma):
        out = C._variant(value, grad, x, H, gamma, **kw)
        return out[:-1], float(out[-1])
    return fn


def _nan(value, grad, x, H, gamma):
    return torch.full_like(x, float("nan")), float("nan")


_EXPECTED = [float(v) for case in C.CASES.values() for v in C._reference(*case)]
_INPUTS = [16.0, 22.0, 50.0, 8.0, 0.001, 3.0, 2.0, 0.5, -1.0, 0.8, 1.5, -2.0, 4.0, 1.0, 0.01, 0.25, 40.0]
CHECK_CASES = {
    "gamma_search": Case(
        _right, _close, (_variant(double=False), _variant(inverted=True), _variant(old_grad=True),
                         _variant(no_search=True), _variant(constant=4.0), _variant(constant=16.0),
                         _variant(stale=True)),
        expected=_EXPECTED, inputs=_INPUTS, function=True, nan=_nan,
        hints=((_variant(double=False), "twice the radius"), (_variant(inverted=True), "damping grows"),
               (_variant(old_grad=True), "gradient at the old point"), (_variant(no_search=True), "first trial"),
               (_variant(constant=4.0), "constant in the denominator"),
               (_variant(constant=16.0), "constant in the denominator"),
               (_variant(stale=True), "recomputed from the halved gamma"))),
}


# --- divergence cases (tests/test_divergence.py) ---

def _fixed_radius(m):
    """A fixed radius m times gamma0 = 1 without the search: the step nears plain Newton (lam -> 0)."""
    return N.gradient_regularized_newton(_small(0, mu=0.01), torch.zeros(4, **F64), hessian="exact",
                                         gamma0=m, adaptive=False, steps=20)


def _gd_far(m):
    """GD at m times 2 / L (L: the top eigenvalue of the fixed bound)."""
    P = _small(0, mu=0.01)
    return N.gradient_descent(P, torch.ones(4, **F64), steps=30,
                              lr=m * 2 / float(torch.linalg.eigvalsh(P.fixed_hessian())[-1]))


DIVERGENCE_CASES = {"newton.gradient_regularized_newton": (_fixed_radius, None, ()),
                    "newton.gradient_descent": (_gd_far, "diverges from 1e6x", ("gamma",))}
NOT_RUNNERS = {"newton.gamma_search": "one search of one step: no dynamics"}


def _p():
    return _small(0)


FUZZ_SPECS = {
    "newton.logistic_regression": fuzz_specs.Spec(lambda: dict(X=fuzz_specs.randn(6, 2),
                                                               y=fuzz_specs.t(0, 1, 0, 1, 1, 0), mu=0.1),
                                                  nonneg="mu"),
    "newton.digits_parity": fuzz_specs.Spec(lambda: dict(subset="train", dtype=torch.float64, device="cpu")),
    "newton.regularized_newton_step": fuzz_specs.Spec(lambda: dict(g=fuzz_specs.t(1.0, -1.0), H=fuzz_specs.spd(),
                                                                   lam=0.5), nonneg="lam"),
    "newton.gamma_search": fuzz_specs.Spec(lambda: dict(value=fuzz_specs.bowl1, grad=lambda x: 2 * x,
                                                        x=fuzz_specs.t(1.0, 2.0), H=fuzz_specs.spd(), gamma=1.0,
                                                        max_tries=3, adaptive=True, constant=8.0),
                                           positive="gamma constant"),
    "newton.gradient_regularized_newton": fuzz_specs.Spec(lambda: dict(problem=_p(), x0=torch.zeros(4, **F64),
                                                                       hessian="fixed", gamma0=1.0, adaptive=True,
                                                                       steps=3, max_tries=5, tol=1e-6, constant=8.0),
                                                          positive="gamma0 tol constant"),
    "newton.gradient_descent": fuzz_specs.Spec(lambda: dict(problem=_p(), x0=torch.zeros(4, **F64), steps=3, lr=0.1),
                                               positive="lr", nan_fields="gamma"),
    "newton.minimum": fuzz_specs.Spec(lambda: dict(problem=_p(), tol=1e-8), positive="tol"),
    "newton.iterations_to": fuzz_specs.Spec(lambda: dict(run_=N.gradient_descent(_p(), torch.zeros(4, **F64), steps=3),
                                                         f_star=0.0, tol=1e-3), positive="tol"),
    "newton.LogisticRegression.value": fuzz_specs.Spec(lambda: dict(x=torch.zeros(4, **F64)), instance=_p),
    "newton.LogisticRegression.grad": fuzz_specs.Spec(lambda: dict(x=torch.zeros(4, **F64)), instance=_p),
    "newton.LogisticRegression.hess": fuzz_specs.Spec(lambda: dict(x=torch.zeros(4, **F64)), instance=_p),
    "newton.LogisticRegression.fixed_hessian": fuzz_specs.Spec(lambda: dict(), instance=_p),
    "check.newton.gamma_search": fuzz_specs.Spec(lambda: dict(fn=_right), skip="fn"),
}
