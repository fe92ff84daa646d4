"""Tests of lessons_lib.lipschitz: the bound hierarchy, soundness, exactness and the LP oracle."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from checkcases import Case
from fuzz_specs import Spec, t
from scipy.optimize import linprog

from lessons_lib import lipschitz as L
from lessons_lib.check import lipschitz as check_lip

EPSS = (0.001, 0.01, 0.05)


def small_net():
    return L.relu_mlp((2, 16, 16, 1), generator=0)


def wide_net():
    return L.relu_mlp((16, 32, 32, 10), generator=0)


def centres(n, dim, seed=1):
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def exhaustive_lp(net, x0, eps, *, output=0):
    """The exact max of ||grad f_j||_1 over the ball: every activation pattern whose region has an interior,
    found neuron by neuron with an LP (no bounds used), and the largest gradient norm among them.

    Independent of the library's rule: the LP works in x (not in the scaled box), each row is normalised to unit
    length so that the margin t is a Euclidean distance, and a region counts when t > 1e-7 eps."""
    x = x0.numpy()
    box = [(v - eps, v + eps) for v in x] + [(None, eps)]
    Ws = [W.numpy() for W in net.weights]
    bs = [b.numpy() for b in net.biases]
    best = 0.0

    def interior(rows, rhs):
        if not rows:
            return True
        A, b = np.array(rows), np.array(rhs)
        norms = np.linalg.norm(A, axis=1)
        if (norms == 0).any():  # a pre-activation constant on the region (never here)
            raise AssertionError("a split neuron with a zero row")
        res = linprog(np.r_[np.zeros(len(x)), -1.0], A_ub=np.c_[A / norms[:, None], np.ones(len(rows))],
                      b_ub=b / norms, bounds=box, method="highs")
        assert res.status == 0
        return -res.fun > 1e-7 * eps

    def grad_norm(pattern):
        g = Ws[-1][output]
        for W, s in zip(reversed(Ws[:-1]), reversed(pattern)):
            g = (g * s) @ W
        return float(np.abs(g).sum())

    def visit(layer, i, A, c, pattern, rows, rhs):
        nonlocal best
        if i == len(bs[layer]):
            if layer + 1 == len(Ws) - 1:
                best = max(best, grad_norm(pattern))
                return
            s = np.array(pattern[layer])
            nA, nc = Ws[layer + 1] @ (s[:, None] * A), Ws[layer + 1] @ (s * c) + bs[layer + 1]
            visit(layer + 1, 0, nA, nc, pattern + [[]], rows, rhs)
            return
        for sign in (1.0, -1.0):
            r, h = rows + [-sign * A[i]], rhs + [sign * c[i]]
            if interior(r, h):
                visit(layer, i + 1, A, c, pattern[:-1] + [pattern[-1] + [1.0 if sign > 0 else 0.0]], r, h)

    visit(0, 0, Ws[0], bs[0], [[]], [], [])
    return best


# ---------------------------------------------------------------- basics and oracles

def test_gradient_l1_matches_autograd():
    net = wide_net()
    X = centres(5, 16)
    for j in (0, 7):
        Xg = X.clone().requires_grad_(True)
        want = torch.autograd.grad(net(Xg)[:, j].sum(), Xg)[0].abs().sum(1)
        assert torch.allclose(L.gradient_l1(net, X, output=j), want, atol=1e-12)


def test_naive_bound_of_the_two_d_net_and_its_formula():
    net = small_net()
    assert L.naive_bound(net) == pytest.approx(76.1, abs=0.05)
    W1, W2, W3 = net.weights
    want = W3[0].abs().sum() * W1.abs().sum(1).max() * W2.abs().sum(1).max()
    assert L.naive_bound(net) == pytest.approx(float(want), rel=1e-12)


def test_relu_grad_interval_cases():
    lo_g, hi_g = t(-1.0, -1.0, 2.0), t(3.0, 3.0, 4.0)
    y_lo, y_hi = L.relu_grad_interval(lo_g, hi_g, t(1.0, -1.0, -2.0), t(2.0, -0.5, 1.0))
    assert y_lo.tolist() == [-1.0, 0.0, 0.0] and y_hi.tolist() == [3.0, 0.0, 4.0]


def test_ibp_preactivation_bounds_contain_samples():
    net = small_net()
    x0, eps = t(0.0, 0.0), 0.4
    pre = L.preactivation_bounds(net, x0, eps)
    X = x0 + eps * (2 * torch.rand(2000, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64) - 1)
    a = X
    for (lo, hi), W, b in zip(pre, net.weights, net.biases):
        z = a @ W.T + b
        assert bool((z >= lo - 1e-12).all() and (z <= hi + 1e-12).all())
        a = torch.relu(z)


# ---------------------------------------------------------------- claims 1-5: hierarchy and soundness

def _assert_chain(net, centres_, *, max_branches=None, exact=False):
    """naive >= interval >= linear >= BaB >= sampled at every centre and radius of EPSS (each link to rounding)."""
    naive = L.naive_bound(net)
    for x0 in centres_:
        for eps in EPSS:
            inter, lin = L.interval_bound(net, x0, eps), L.linear_bound(net, x0, eps)
            bab = L.bab_bound(net, x0, eps, max_branches=max_branches)
            low = L.sampled_lower_bound(net, x0, eps, n_samples=1000, generator=2)
            assert bab.exact or not exact, (x0, eps)
            assert naive >= inter - 1e-12 >= lin - 2e-12 >= bab.value - 3e-12 >= low - 4e-12, (x0, eps)


def test_hierarchy_on_the_two_d_net_with_complete_bab():
    _assert_chain(small_net(), centres(10, 2), exact=True)


def test_hierarchy_on_the_wide_net_with_a_budget_quick():
    _assert_chain(wide_net(), centres(2, 16), max_branches=10)


@pytest.mark.slow
def test_hierarchy_on_the_wide_net_with_200_branches_ten_centres():
    net = wide_net()
    unstable = [int(sum(((lo < 0) & (hi > 0)).sum() for lo, hi in L.preactivation_bounds(net, x0, 0.05)))
                for x0 in centres(10, 16)]
    assert max(unstable) >= 15  # many unstable neurons (20 at most here; 23 was not reproduced)
    _assert_chain(net, centres(10, 16), max_branches=200)


def test_random_points_never_exceed_a_bound():
    for net, dim in ((small_net(), 2), (wide_net(), 16)):
        for k, x0 in enumerate(centres(3, dim, seed=5)):
            for eps in (0.05, 0.4):
                X = x0 + eps * (2 * torch.rand(1000, dim, generator=torch.Generator().manual_seed(k),
                                               dtype=torch.float64) - 1)
                worst = float(L.gradient_l1(net, X).max())
                assert worst <= L.linear_bound(net, x0, eps) + 1e-12
                assert worst <= L.interval_bound(net, x0, eps) + 1e-12


def test_tiny_ball_all_bounds_meet_the_gradient_at_the_centre():
    for net, dim in ((small_net(), 2), (wide_net(), 16)):
        for x0 in centres(5, dim):
            g = float(L.gradient_l1(net, x0[None])[0])
            assert L.interval_bound(net, x0, 1e-7) == pytest.approx(g, abs=1e-8)
            assert L.linear_bound(net, x0, 1e-7) == pytest.approx(g, abs=1e-8)


def test_complete_bab_equals_the_exhaustive_lp_enumeration():
    net = small_net()
    for x0, eps in ((t(0.0, 0.0), 0.05), (centres(1, 2)[0], 0.3)):
        bab = L.bab_bound(net, x0, eps)
        assert bab.exact
        assert bab.value == pytest.approx(exhaustive_lp(net, x0, eps), rel=1e-10)


@pytest.mark.slow
def test_complete_bab_at_eps_04_is_exact_and_sampling_falls_short():
    net, x0 = small_net(), t(0.0, 0.0)
    bab = L.bab_bound(net, x0, 0.4)
    exact = exhaustive_lp(net, x0, 0.4)
    assert bab.exact and bab.value == pytest.approx(exact, rel=1e-10)
    assert L.linear_bound(net, x0, 0.4) > 5 * exact
    assert L.sampled_lower_bound(net, x0, 0.4, n_samples=5000, generator=0) < exact - 1e-3  # a thin region missed


def _kink_centre(net):
    """A point on the kink of the first hidden neuron: z_1(x0) = 0."""
    w, b = net.weights[0][0], net.biases[0][0]
    return -b * w / (w @ w)


def test_bab_on_a_tiny_ball_centred_on_a_kink_is_exact():
    # regression: an absolute LP margin on unnormalised rows pruned both sides of the kink and returned 0.0
    net = small_net()
    x0 = _kink_centre(net)
    assert abs(float(net.weights[0][0] @ x0 + net.biases[0][0])) < 1e-12
    for eps in (1e-6, 1e-10):
        X = x0 + eps * (2 * torch.rand(2000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
                        - 1)
        worst = float(L.gradient_l1(net, X).max())
        r = L.bab_bound(net, x0, eps)
        assert r.exact and r.value == pytest.approx(worst, rel=1e-9)  # two regions, both sampled
        assert r.value > 1.0


@pytest.mark.parametrize("delta", [1e-8, 1e-10, 1e-12])
def test_bab_never_certifies_below_a_sliver_thinner_than_the_lp_resolves(delta):
    # regression: two first-layer kinks delta apart bound a sliver where ||grad f||_1 = 5.1; below the LP's
    # resolution the sliver was dropped and BaB returned 0.1 with exact=True. The value must stay an upper bound.
    W1 = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    b1 = torch.tensor([0.0, -delta, 0.0], dtype=torch.float64)
    net = L.ReluNet([W1, torch.tensor([[5.0, -5.0, 0.1]], dtype=torch.float64)],
                    [b1, torch.zeros(1, dtype=torch.float64)])
    inside = torch.tensor([[delta / 2, 0.3]], dtype=torch.float64)  # in the ball around (0.3, 0) of radius 1
    truth = float(L.gradient_l1(net, inside)[0])
    assert truth == pytest.approx(5.1)
    r = L.bab_bound(net, torch.tensor([0.3, 0.0], dtype=torch.float64), 1.0)
    assert r.value >= truth - 1e-12
    assert all(a >= b - 1e-12 for a, b in zip(r.trace, r.trace[1:]))  # the certified bound never rises


def test_bab_does_not_depend_on_the_scale_of_a_hidden_layer():
    # regression: (W2, b2) * c and W3 / c leave f unchanged; an absolute margin in z-units lost regions for
    # small c and returned a value below the true maximum with exact=True
    net, x0, eps = small_net(), t(0.0, 0.0), 0.05
    W1, W2, W3 = net.weights
    b1, b2, b3 = net.biases
    want = L.bab_bound(net, x0, eps)
    for c in (1e-8, 1e-10):
        scaled = L.ReluNet((W1, c * W2, W3 / c), (b1, c * b2, b3))
        r = L.bab_bound(scaled, x0, eps)
        assert r.exact and r.value == pytest.approx(want.value, rel=1e-9)
        assert r.value >= L.sampled_lower_bound(scaled, x0, eps, n_samples=20000, generator=0) - 1e-9
    assert want.value == pytest.approx(exhaustive_lp(L.ReluNet((W1, 1e-8 * W2, W3 * 1e8), (b1, 1e-8 * b2, b3)),
                                                     x0, eps), rel=1e-9)


def test_bab_witness_attains_the_exact_value():
    net = small_net()
    for centre, eps in (((0.0, 0.0), 0.2), ((0.3, 0.3), 0.05)):
        x0 = t(*centre)
        r = L.bab_bound(net, x0, eps)
        w = torch.tensor(r.witness, dtype=torch.float64)
        assert r.exact and float((w - x0).abs().max()) <= eps + 1e-12
        assert float(L.gradient_l1(net, w[None])[0]) == pytest.approx(r.value, rel=1e-12)
    assert L.bab_bound(net, t(0.0, 0.0), 0.2, max_branches=3).witness == ()


def test_region_has_interior_does_not_depend_on_row_scale():
    x0 = t(0.3, -0.2)
    for scale in (1.0, 1e-12, 1e12):
        assert L.region_has_interior([scale * t(1.0, 1.0)], [scale * 0.1], x0, 1e-9)  # the line passes x0
        assert not L.region_has_interior([scale * t(1.0, 1.0)], [scale * 0.09], x0, 1e-9)


def test_naive_dominates_interval_on_random_nets():
    # a theorem: |y| <= max(|g-|, |g+|) at every node, so ||M_{l-1}||_1 <= ||W_l||_inf ||M_l||_1
    gen = torch.Generator().manual_seed(7)
    for k in range(20):
        sizes = (2 + k % 3,) + tuple(int(v) for v in torch.randint(2, 9, (1 + k % 3,), generator=gen)) + (2,)
        net = L.relu_mlp(sizes, generator=k)
        x0 = torch.randn(sizes[0], generator=gen, dtype=torch.float64)
        for eps in (0.01, 0.3, 3.0):
            assert L.naive_bound(net, output=1) >= L.interval_bound(net, x0, eps, output=1) - 1e-12


@pytest.mark.slow
def test_complete_bab_equals_the_oracle_on_random_rescaled_nets():
    # small random nets, each hidden layer rescaled by a random power of ten (f unchanged up to the last layer)
    gen = torch.Generator().manual_seed(11)
    for k in range(12):
        sizes = (2, 6 + k % 4, 5 + k % 3, 1)
        net = L.relu_mlp(sizes, generator=100 + k)
        c = [10.0 ** float(torch.randint(-6, 7, (), generator=gen)) for _ in range(2)]
        ws = (net.weights[0] * c[0], net.weights[1] * c[1], net.weights[2] / (c[0] * c[1]))
        bs = (net.biases[0] * c[0], net.biases[1] * c[0] * c[1], net.biases[2])
        scaled = L.ReluNet(ws, bs)
        x0 = torch.randn(2, generator=gen, dtype=torch.float64)
        for eps in (0.05, 0.5):
            r = L.bab_bound(scaled, x0, eps)
            assert r.exact and r.value == pytest.approx(exhaustive_lp(scaled, x0, eps), rel=1e-8)
            assert r.value == pytest.approx(L.bab_bound(net, x0, eps).value, rel=1e-8)


def test_budgeted_bab_lies_between_exact_and_linear():
    net, x0, eps = small_net(), t(0.0, 0.0), 0.2
    exact = L.bab_bound(net, x0, eps)
    lin = L.linear_bound(net, x0, eps)
    previous = lin
    for budget in (0, 5, 20):
        r = L.bab_bound(net, x0, eps, max_branches=budget)
        assert not r.exact and r.branches == budget
        assert exact.value - 1e-12 <= r.value <= previous + 1e-12
        previous = r.value


def test_bounds_grow_with_eps():
    net, x0 = small_net(), t(0.0, 0.0)
    epss = (0.01, 0.05, 0.1, 0.2, 0.4)
    for fn in (L.interval_bound, L.linear_bound):
        values = [fn(net, x0, e) for e in epss]
        assert values == sorted(values)


def test_same_seed_same_net_and_samples():
    a, b = small_net(), small_net()
    assert all(torch.equal(u, v) for u, v in zip(a.weights, b.weights))
    x0 = t(0.1, 0.2)
    assert L.sampled_lower_bound(a, x0, 0.3, generator=4) == L.sampled_lower_bound(b, x0, 0.3, generator=4)


def test_region_has_interior():
    x0 = t(0.0, 0.0)
    assert L.region_has_interior([t(1.0, 0.0)], [0.5], x0, 1.0)       # x1 < 0.5 cuts the box
    assert not L.region_has_interior([t(1.0, 0.0)], [-2.0], x0, 1.0)  # x1 < -2 misses it
    assert not L.region_has_interior([t(1.0, 0.0), t(-1.0, 0.0)], [0.0, 0.0], x0, 1.0)  # x1 = 0: no interior


def test_bad_input():
    net, x0 = small_net(), t(0.0, 0.0)
    with pytest.raises(ValueError, match="eps"):
        L.interval_bound(net, x0, -0.1)
    with pytest.raises(ValueError, match="output"):
        L.linear_bound(net, x0, 0.1, output=1)
    with pytest.raises(ValueError, match="output"):
        L.bab_bound(net, x0, 0.1, output=-1)
    with pytest.raises(ValueError, match="x0"):
        L.interval_bound(net, t(0.0, 0.0, 0.0), 0.1)
    with pytest.raises(ValueError, match="weights"):
        L.ReluNet((torch.zeros(3, 2, dtype=torch.float64), torch.zeros(1, 4, dtype=torch.float64)),
                  (torch.zeros(3, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)))
    with pytest.raises(ValueError, match="max_branches"):
        L.bab_bound(net, x0, 0.1, max_branches=-1)
    with pytest.raises(ValueError, match="net"):
        L.naive_bound("net")


# ---------------------------------------------------------------- the self-check

def _interval(g_lo, g_hi, lo, hi):
    return L.relu_grad_interval(g_lo, g_hi, lo, hi)


def _all_unstable(g_lo, g_hi, lo, hi):  # ignores the stable cases: every neuron gets [min(g_lo, 0), max(g_hi, 0)]
    return g_lo.clamp(max=0.0), g_hi.clamp(min=0.0)


def _fixed_sign(g_lo, g_hi, lo, hi):  # uses the sign of the pre-activation's midpoint for unstable neurons
    active = (lo + hi) / 2 >= 0
    zero = torch.zeros_like(g_lo)
    return torch.where(active, g_lo, zero), torch.where(active, g_hi, zero)


def _scaled(g_lo, g_hi, lo, hi):
    y_lo, y_hi = L.relu_grad_interval(g_lo, g_hi, lo, hi)
    return 1.01 * y_lo, 1.01 * y_hi


CHECK_CASES = {
    "relu_grad_interval": Case(
        _interval, _scaled, (_all_unstable, _fixed_sign), expected=[], function=True,
        nan=lambda g_lo, g_hi, lo, hi: (torch.full_like(g_lo, float("nan")), torch.full_like(g_lo, float("nan"))),
        hints=((_all_unstable, "never negative"), (_fixed_sign, "as if it were on"))),
}


def _strict(g_lo, g_hi, lo, hi):  # the paper's code's convention: active iff lo > 0
    zero = torch.zeros_like(g_lo)
    y_lo = torch.where(lo > 0, g_lo, torch.where(hi <= 0, zero, g_lo.clamp(max=0.0)))
    y_hi = torch.where(lo > 0, g_hi, torch.where(hi <= 0, zero, g_hi.clamp(min=0.0)))
    return y_lo, y_hi


def _no_negative(g_lo, g_hi, lo, hi):  # forgets that s = 1 with g < 0 makes y negative
    y_lo, y_hi = L.relu_grad_interval(g_lo, g_hi, lo, hi)
    unstable = (lo < 0) & (hi > 0)
    return torch.where(unstable, torch.zeros_like(y_lo), y_lo), y_hi


def test_check_praises_the_reference_and_flags_a_swapped_pair():
    assert check_lip.relu_grad_interval(_interval).status == "correct"
    assert check_lip.relu_grad_interval(_strict).status == "correct"  # both conventions at lo = 0 pass
    res = check_lip.relu_grad_interval(_no_negative)
    assert res.status == "wrong" and "lower end is too high" in res.message and "max(" not in res.message
    res = check_lip.relu_grad_interval(lambda g_lo, g_hi, lo, hi: _interval(g_lo, g_hi, lo, hi)[::-1])
    assert res.status == "wrong" and "lower end" in res.message


NOT_RUNNERS = {
    "lipschitz.bab_bound": "a search over regions of an input ball: no training dynamics",
    "lipschitz.gradient_l1": "a gradient norm at given points: no dynamics",
    "lipschitz.interval_bound": "a bound on one network: no dynamics",
    "lipschitz.linear_bound": "a bound on one network: no dynamics",
    "lipschitz.naive_bound": "a bound on one network: no dynamics",
    "lipschitz.preactivation_bounds": "interval bounds on one network: no dynamics",
    "lipschitz.relu_grad_interval": "one interval operation: no dynamics",
    "lipschitz.sampled_lower_bound": "a maximum over random points: no dynamics",
    "lipschitz.region_has_interior": "one LP: no dynamics",
    "lipschitz.relu_mlp": "builds a network: no dynamics",
}


def _ball():
    return dict(net=L.relu_mlp((2, 4, 1), generator=0), x0=t(0.1, -0.2), eps=0.1)


FUZZ_SPECS = {
    "lipschitz.relu_mlp": Spec(lambda: dict(sizes=(2, 3, 1), generator=0, scale=1.0), positive="scale",
                               skip="sizes"),
    # sizes: a tuple of widths
    "lipschitz.gradient_l1": Spec(lambda: dict(net=_ball()["net"], X=t([0.1, 0.2], [0.3, -0.1]), output=0),
                                  skip="net output"),
    # net: a ReluNet; output: an index into the outputs, checked by test_bad_input
    "lipschitz.naive_bound": Spec(lambda: dict(net=_ball()["net"], output=0), skip="net output"),
    "lipschitz.preactivation_bounds": Spec(lambda: dict(**_ball(), splits=None), nonneg="eps",
                                           skip="net splits"),
    # splits: a list of int tensors or None
    "lipschitz.relu_grad_interval": Spec(lambda: dict(g_lo=t(-1.0, 0.5), g_hi=t(1.0, 2.0), lo=t(-1.0, 0.5),
                                                      hi=t(1.0, 1.0))),
    "lipschitz.interval_bound": Spec(lambda: dict(**_ball(), output=0), nonneg="eps", skip="net output"),
    "lipschitz.linear_bound": Spec(lambda: dict(**_ball(), output=0), nonneg="eps", skip="net output"),
    "lipschitz.bab_bound": Spec(lambda: dict(**_ball(), output=0, max_branches=3), nonneg="eps max_branches",
                                skip="net output"),
    "lipschitz.sampled_lower_bound": Spec(lambda: dict(**_ball(), output=0, n_samples=10, generator=0),
                                          nonneg="eps", positive="n_samples", skip="net output"),
    "lipschitz.region_has_interior": Spec(lambda: dict(A_ub=[t(1.0, 0.0)], b_ub=[0.5], x0=t(0.0, 0.0), eps=1.0),
                                          nonneg="eps", skip="A_ub b_ub"),
    # A_ub, b_ub: rows and right-hand sides of an LP
    "check.lipschitz.relu_grad_interval": Spec(lambda: dict(fn=_interval), skip="fn"),  # fn: the learner's function
}
FUZZ_OPT_OUT = {}
