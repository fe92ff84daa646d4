"""Equilibrium propagation without weight symmetry (lessons_lib.equilibrium, book/equilibrium-propagation.ipynb).

Claims of Laborieux & Zenke (2024), arXiv 2309.02214, at toy scale: the fixed point, the Cauchy estimators'
bias slopes, EP = RBP for symmetric weights and the asymmetry bias, the homeostatic identity, and (slow) the
effect of homeostasis on training at 90 degrees. No peer library (the authors' code is JAX).
"""

from __future__ import annotations

import cmath
import math

import pytest
import torch
from checkcases import Case
from fuzz_specs import Spec

from lessons_lib import equilibrium as E
from lessons_lib import measure, models

F64 = dict(dtype=torch.float64)


def _data(seed, B=16, n_in=20, n_out=5):
    g = torch.Generator().manual_seed(100 + seed)
    x = torch.randn(B, n_in, generator=g, **F64)
    y = torch.nn.functional.one_hot(torch.randint(n_out, (B,), generator=g), n_out).to(torch.float64)
    return x, y


def _net(seed=0, angle=45.0, scale=1.0):
    return E.make_net(20, 40, 5, angle=angle, scale=scale, generator=seed, device="cpu")


def _exp(z):
    return torch.exp(torch.tensor(z, dtype=torch.complex128 if isinstance(z, complex) else torch.float64))


BETAS = torch.logspace(-1.3, -0.3, 6, **F64)  # 0.05 .. 0.5


# --- the fixed point (claim 1) ---

@pytest.mark.parametrize("beta", [0.0, 0.3, -0.3, 0.2j, 0.3 * cmath.exp(2j * math.pi / 3)])
def test_relaxation_reaches_its_fixed_point(beta):
    net, (x, y) = _net(), _data(0)
    a = E.relax(net, x, y, beta=beta)
    h = net.n_hidden
    u = torch.log(a) - torch.log1p(-a)  # sigma^-1
    drive = torch.cat([x @ net.W_in.T, torch.zeros(len(x), 5, **F64)], 1).to(a)
    nudge = torch.cat([torch.zeros_like(a[:, :h]), beta * (a[:, h:] - y.to(a))], 1)
    residual = (u - (a @ net.matrix().T.to(a) + drive + nudge)).abs().max()
    assert float(residual) < 1e-12
    assert a.dtype == (torch.complex128 if isinstance(beta, complex) else torch.float64)


def test_symmetric_nudge_uses_real_points_only():
    calls = []

    def f(z):
        calls.append(z)
        return _exp(z)

    E.cauchy_derivative(f, 0.1, n_points=2)
    E.cauchy_derivative(f, 0.1, n_points=1)
    assert all(isinstance(z, float) for z in calls) and sorted(calls) == [-0.1, 0.0, 0.1, 0.1]


# --- finite-nudge bias (claim 2) ---

@pytest.mark.parametrize("n_points", [1, 2, 3, 4])
def test_scalar_cauchy_error_slope_is_n(n_points):
    err = [abs(float(E.cauchy_derivative(_exp, float(b), n_points=n_points)) - 1.0) for b in BETAS]
    assert abs(measure.loglog_slope(BETAS, torch.tensor(err)) - n_points) < 0.3  # measured 1.07, 2.00, 3.00, 4.00


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_network_cauchy_error_slopes(seed):
    net, (x, y) = _net(seed), _data(seed)
    exact = E.exact_error_vector(net, x, y)
    for n_points in (1, 2, 4):  # measured 1.01-1.02, 1.99, 4.00
        err = [float((E.ep_error_vector(net, x, y, beta=float(b), n_points=n_points) - exact).norm() / exact.norm())
               for b in BETAS]
        assert abs(measure.loglog_slope(BETAS, torch.tensor(err)) - n_points) < 0.3, (n_points, err)


def test_exact_error_vector_matches_a_central_difference():
    net, (x, y) = _net(1), _data(1)
    eps = 1e-5
    fd = (E.relax(net, x, y, beta=eps) - E.relax(net, x, y, beta=-eps)) / (2 * eps)
    exact = E.exact_error_vector(net, x, y)
    assert torch.allclose(fd, exact, rtol=0, atol=1e-8 * float(exact.abs().max()))


def test_rbp_gives_the_autograd_gradient_of_the_loss_at_the_fixed_point():
    """Paired with the activations, RBP's vector is the true gradient: autograd through a long unrolled
    relaxation (whose derivative converges to the implicit one) agrees."""
    net, (x, y) = _net(2, angle=60.0), _data(2)
    leaves = [t.clone().requires_grad_(True) for t in (net.W_in, net.b, net.W_out, net.B)]
    a = E.relax(E.Net(*leaves), x, y, steps=300)
    loss = 0.5 * ((a[:, net.n_hidden:] - y) ** 2).sum(1).mean()
    auto = torch.autograd.grad(loss, leaves)
    a0 = E.relax(net, x, y)
    g = E.weight_gradient(net, x, a0, E.rbp_error_vector(net, x, y))
    ep = E.weight_gradient(net, x, a0, E.exact_error_vector(net, x, y))
    for name, want in zip(("W_in", "b", "W_out", "B"), auto):
        assert torch.allclose(getattr(g, name), want, rtol=1e-9, atol=1e-12), name
    assert not torch.allclose(ep.W_in, auto[0], rtol=1e-3)  # EP's update differs at 60 degrees


# --- asymmetry bias (claim 3) ---

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ep_equals_rbp_at_zero_angle_and_drifts_away_with_the_angle(seed):
    x, y = _data(seed)
    cos, asym = [], []
    for angle in (0, 30, 60, 90):  # measured 1.000, 0.975-0.981, 0.915-0.931, 0.848-0.865
        net = _net(seed, angle=angle)
        cos.append(E.cosine(E.exact_error_vector(net, x, y), E.rbp_error_vector(net, x, y)))
        asym.append(float(E.jacobian_asymmetry(net.matrix())))
    assert cos[0] > 0.999 and asym[0] == 0.0
    assert all(a > b for a, b in zip(cos, cos[1:])), cos
    assert all(a < b for a, b in zip(asym, asym[1:])), asym


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_asymmetry_bias_grows_with_the_loop_gain(seed):
    x, y = _data(seed)
    for angle in (30.0, 60.0, 90.0):
        cos = [E.cosine(E.exact_error_vector(n, x, y), E.rbp_error_vector(n, x, y))
               for n in (_net(seed, angle=angle, scale=s) for s in (0.5, 0.75, 1.0, 1.5))]
        assert all(a > b for a, b in zip(cos, cos[1:])), (angle, cos)
    # at 90 degrees: about 0.96 at scale 0.5 and 0.70-0.75 at 1.5 (the chapter prints the table)
    assert cos[0] > 0.93 and cos[-1] < 0.8, cos


def test_homeostasis_probes_are_independent_of_the_matrix():
    # the chapter draws J with seed s and the probes with seed 1000 + s: the probes must not be J's rows
    J = torch.randn(30, 30, generator=torch.Generator().manual_seed(0), **F64)
    eps = torch.randn(30, 30, generator=torch.Generator().manual_seed(1000), **F64)
    assert not torch.equal(eps, J)
    # the Monte-Carlo error shrinks with the probes: 100x more probes, clearly closer (1/sqrt(p): 10x)
    exact = float(E.jacobian_asymmetry(J))
    err = [abs(float(E.homeostatic_loss(J, n_probes=p, generator=1000 + s)) / exact - 1)
           for p in (100, 10_000) for s in range(3)]
    assert max(err[3:]) < 0.5 * max(err[:3]), err


def test_jacobian_is_w_minus_inverse_d_and_inherits_the_weight_asymmetry():
    net, (x, y) = _net(0, angle=90.0), _data(0)
    J = E.jacobian(net, x, y)
    assert J.shape == (16, 45, 45)
    W = net.matrix()
    assert torch.allclose(E.jacobian_asymmetry(J), E.jacobian_asymmetry(W).expand(16), rtol=1e-12)
    assert torch.allclose(E.jacobian_asymmetry(W), E.jacobian_asymmetry(W - torch.eye(45, **F64)))
    g = torch.cat([torch.zeros(16, 40, **F64), E.relax(net, x, y)[:, 40:] - y], 1)
    assert torch.allclose(torch.linalg.solve(-J, g), E.exact_error_vector(net, x, y), rtol=1e-10, atol=1e-14)


# --- homeostatic identity (claim 4) ---

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_homeostatic_loss_matches_the_asymmetry_within_one_percent(seed):
    J = torch.randn(30, 30, generator=torch.Generator().manual_seed(seed), **F64)
    mc = float(E.homeostatic_loss(J, n_probes=10 ** 5, generator=1000 + seed))  # probes independent of J
    exact = float(E.jacobian_asymmetry(J))  # (|J|_F^2 - tr J^2) / n
    assert exact == pytest.approx(float(((J ** 2).sum() - torch.trace(J @ J)) / 30), rel=1e-12)
    assert mc == pytest.approx(exact, rel=0.01)  # measured within 0.15 %


def test_homeostatic_loss_is_zero_for_symmetric_and_batched():
    S = torch.randn(6, 6, generator=torch.Generator().manual_seed(3), **F64)
    S = S + S.T
    assert abs(float(E.homeostatic_loss(S, n_probes=50, generator=0))) < 1e-12
    batch = torch.stack([S, S + torch.triu(torch.ones(6, 6, **F64), 1)])
    out = E.homeostatic_loss(batch, n_probes=10, generator=0)
    assert out.shape == (2,) and abs(float(out[0])) < 1e-12 and float(out[1]) > 0
    # by hand: J - J^T of the strict upper triangle of ones has 30 entries of size 1
    assert float(E.jacobian_asymmetry(batch)[1]) == pytest.approx(30 / 12)


# --- homeostasis in training (claim 5) ---

@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_homeostasis_at_ninety_degrees_aligns_ep_with_rbp_and_helps_accuracy(seed):
    d = models.digits_split(generator=0, dtype=torch.float64, device="cpu")
    Y, Yt = (torch.nn.functional.one_hot(t, 10).to(torch.float64) for t in (d.y_train, d.y_test))
    out = {}
    for c in (0.0, 1.0):
        net = E.make_net(64, 64, 10, angle=90, generator=seed, device="cpu")
        out[c] = E.train(net, d.X_train, Y, d.X_test, Yt, lr=3e-3, steps=300, homeostasis=c, record_every=100,
                         generator=seed)
    # measured (seeds 0, 1): cos 0.895, 0.910 -> 1.000; accuracy 0.56, 0.50 -> 0.79, 0.81
    assert float(out[1.0].cos_rbp[-1]) > 0.99 > float(out[0.0].cos_rbp[-1]) + 0.05
    assert float(out[1.0].asymmetry[-1]) < 0.05 * float(out[0.0].asymmetry[-1])
    assert float(out[1.0].accuracy[-1]) > float(out[0.0].accuracy[-1]) + 0.1


@pytest.mark.slow
def test_homeostasis_helps_at_every_learning_rate_of_the_explorer():
    # the chapter's learning-rate explorer (seed 0, 90 degrees, 300 steps, relax_steps 25); lr 3e-3 is tested above
    d = models.digits_split(generator=0, dtype=torch.float64, device="cpu")
    Y, Yt = (torch.nn.functional.one_hot(t, 10).to(torch.float64) for t in (d.y_train, d.y_test))
    for lr in (1e-3, 1e-2, 3e-2):
        out = {c: E.train(E.make_net(64, 64, 10, angle=90, generator=0, device="cpu"), d.X_train, Y, d.X_test, Yt,
                          lr=lr, steps=300, homeostasis=c, relax_steps=25, record_every=300, generator=0)
               for c in (0.0, 1.0)}
        # measured accuracy 0.111 -> 0.405, 0.935 -> 0.969, 0.468 -> 0.944; cos without 0.87-0.89
        assert float(out[1.0].accuracy[-1]) > float(out[0.0].accuracy[-1]) + 0.02, lr
        assert float(out[0.0].cos_rbp[-1]) < 0.92 and not bool(out[0.0].diverged), lr
        assert float(out[1.0].cos_rbp[-1]) > (0.999 if lr >= 1e-2 else 0.95), lr


def test_train_is_deterministic_and_a_symmetric_start_does_not_stay_symmetric():
    d = models.digits_split(generator=0, dtype=torch.float64, device="cpu")
    X, Y = d.X_train[:200], torch.nn.functional.one_hot(d.y_train[:200], 10).to(torch.float64)
    net = E.make_net(64, 16, 10, angle=0, generator=0, device="cpu")
    r1 = E.train(net, X, Y, X[:50], Y[:50], estimator="rbp", steps=20, record_every=10, generator=3)
    r2 = E.train(net, X, Y, X[:50], Y[:50], estimator="rbp", steps=20, record_every=10, generator=3)
    assert torch.equal(r1.accuracy, r2.accuracy) and torch.equal(r1.cos_rbp, r2.cos_rbp)
    assert r1.steps.tolist() == [0, 10, 20] and float(r1.cos_rbp[0]) > 0.999999 and float(r1.asymmetry[0]) == 0
    # the two weight sets get different updates (delta_out a_h^T against delta_h a_out^T): symmetry is lost
    assert float(r1.asymmetry[-1]) > 0 and float(r1.cos_rbp[-1]) < 1 - 1e-6


# --- edge cases, bad input, determinism ---

def test_make_net_same_seed_same_net_and_angle_zero_is_symmetric():
    a, b = _net(4, angle=0), _net(4, angle=0)
    assert torch.equal(a.matrix(), b.matrix()) and torch.equal(a.matrix(), a.matrix().T)
    c = _net(4, angle=90)
    assert torch.equal(a.W_out, c.W_out) and not torch.allclose(a.B, c.B)


def test_bad_input_names_the_argument():
    net, (x, y) = _net(), _data(0)
    with pytest.raises(ValueError, match="^angle:"):
        E.make_net(3, 4, 2, angle=120.0, generator=0)
    with pytest.raises(ValueError, match="^scale:"):
        E.make_net(3, 4, 2, angle=0.0, scale=0.0, generator=0)
    with pytest.raises(ValueError, match="^x:"):
        E.relax(net, x[:, :3], y)
    with pytest.raises(ValueError, match="^y:"):
        E.relax(net, x, y[:, :2])
    with pytest.raises(ValueError, match="^beta:"):
        E.relax(net, x, y, beta=float("nan"))
    with pytest.raises(ValueError, match="^net:"):
        E.relax("net", x, y)
    with pytest.raises(ValueError, match="^n_points:"):
        E.cauchy_derivative(_exp, 0.1, n_points=0)
    with pytest.raises(ValueError, match="^beta:"):
        E.cauchy_derivative(_exp, -0.1, n_points=2)
    with pytest.raises(ValueError, match="^J:"):
        E.jacobian_asymmetry(torch.ones(3, 4, **F64))
    with pytest.raises(ValueError, match="^estimator:"):
        E.train(net, x, y, x, y, estimator="bp", steps=1)
    with pytest.raises(ValueError, match="^homeostasis:"):
        E.train(net, x, y, x, y, homeostasis=-1.0, steps=1)


# --- self-check cases (tests/test_course.py) ---

def _cauchy(f, beta, n, *, scale=1.0, divide=True, f0=True, average=True):
    if n == 1:
        return scale * ((f(beta) - (f(0.0) if f0 else 0)) / (beta if divide else 1))
    zs = [beta * cmath.exp(2j * math.pi * k / n) for k in range(n)]
    total = sum(f(z) / (z if divide else 1) for z in zs)
    return scale * (total / (n if average else 1)).real


def _cauchy_expected():
    from lessons_lib.check import equilibrium as checks

    return [v for case in checks.CASES.values() for v in E.cauchy_derivative(*case[:2], n_points=case[2]).tolist()]


CHECK_CASES = {
    "cauchy_mean": Case(
        _cauchy, lambda f, b, n: _cauchy(f, b, n, scale=1.01),
        (lambda f, b, n: _cauchy(f, b, n, divide=False), lambda f, b, n: _cauchy(f, b, n, f0=False)),
        expected=_cauchy_expected(), inputs=[0.3, 1, 2, 0.5, 3, 0.4, 4, 0.6, 5], function=True,
        nan=lambda f, b, n: torch.full_like(torch.as_tensor(f(b)).real, float("nan")),
        rtol=1e-9,
        hints=((lambda f, b, n: _cauchy(f, b, n, divide=False), "did not divide it by the nudge"),
               (lambda f, b, n: _cauchy(f, b, n, f0=False), "subtract f(0)"),
               (lambda f, b, n: _cauchy(f, b, n, average=False) if n > 1 else _cauchy(f, b, n), "divide the sum by N"),
               (lambda f, b, n: _cauchy(f, b, n) * 0 + 7.0, "not right yet"))),
}

def _train_runner(mult):
    """Adam at lr = 3e-3 times mult on a small digits net, 3 steps: Adam's step is about lr per weight, so at
    1e300x the first step overflows and the run is flagged at step 1, frozen at its start (at 1e6x every unit
    saturates and the weights stay inside the radius)."""
    d = models.digits_split(generator=0, dtype=torch.float64, device="cpu")
    X, Y = d.X_train[:60], torch.nn.functional.one_hot(d.y_train[:60], 10).to(torch.float64)
    net = E.make_net(64, 8, 10, angle=90, generator=0, device="cpu")
    r = E.train(net, X, Y, X[:20], Y[:20], lr=3e-3 * mult, steps=3, batch=20, record_every=1, generator=0)
    if mult >= 1e300:
        assert bool(r.diverged) and int(r.diverged_at) == 1
    return r


DIVERGENCE_CASES = {"equilibrium.train": (_train_runner, None, ())}
NOT_RUNNERS = {
    "equilibrium.relax": "a fixed-point relaxation of a fixed network (sigmoid-bounded): no learning rate",
    "equilibrium.ep_error_vector": "nudged relaxations of a fixed network: no learning rate",
    "equilibrium.exact_error_vector": "one relaxation and a dense solve: no learning rate",
    "equilibrium.rbp_error_vector": "one relaxation and a dense solve: no learning rate",
    "equilibrium.jacobian": "one relaxation: no learning rate",
}


def _spec_data():
    return dict(zip(("x", "y"), _data(0, B=3, n_in=4, n_out=2)))


def _small_net():
    return E.make_net(4, 3, 2, angle=45.0, generator=0, device="cpu")


def _grad_args():
    net, d = _small_net(), _spec_data()
    a = E.relax(net, **d, steps=5)
    return dict(net=net, x=d["x"], a=a, delta=a.clone())


FUZZ_SPECS = {
    "equilibrium.make_net": Spec(lambda: dict(n_in=3, n_hidden=4, n_out=2, angle=30.0, scale=1.0, generator=0,
                                              dtype=torch.float64, device="cpu"),
                                 positive="scale", skip="dtype device"),  # dtype, device: passed to torch
    "equilibrium.relax": Spec(lambda: dict(net=_small_net(), **_spec_data(), beta=0.1, steps=5), skip="beta"),
    # beta: any finite real or complex number is valid (negative too); NaN and inf tested above
    "equilibrium.cauchy_derivative": Spec(lambda: dict(fn=_exp, beta=0.1, n_points=3), positive="beta n_points"),
    "equilibrium.ep_error_vector": Spec(lambda: dict(net=_small_net(), **_spec_data(), beta=0.1, n_points=2,
                                                     steps=5), positive="beta n_points steps"),
    "equilibrium.exact_error_vector": Spec(lambda: dict(net=_small_net(), **_spec_data(), steps=5), positive="steps"),
    "equilibrium.rbp_error_vector": Spec(lambda: dict(net=_small_net(), **_spec_data(), steps=5), positive="steps"),
    "equilibrium.jacobian": Spec(lambda: dict(net=_small_net(), **_spec_data(), steps=5), positive="steps"),
    "equilibrium.homeostatic_loss": Spec(lambda: dict(J=torch.eye(3, **F64), n_probes=4, generator=0),
                                         positive="n_probes"),
    "equilibrium.jacobian_asymmetry": Spec(lambda: dict(J=torch.eye(3, **F64))),
    "equilibrium.cosine": Spec(lambda: dict(u=torch.ones(3, **F64), v=torch.arange(3.0, **F64) + 1)),
    "equilibrium.weight_gradient": Spec(_grad_args),
    "equilibrium.train": Spec(lambda: dict(net=_small_net(), X=_spec_data()["x"], y=_spec_data()["y"],
                                           X_test=_spec_data()["x"], y_test=_spec_data()["y"], estimator="ep",
                                           lr=0.01, steps=2, batch=2, homeostasis=0.5, relax_steps=5,
                                           record_every=1, generator=0),
                              positive="lr batch relax_steps record_every", nonneg="homeostasis steps"),
    "equilibrium.Net.matrix": Spec(lambda: dict(), instance=_small_net),
    "check.equilibrium.cauchy_mean": Spec(lambda: dict(fn=lambda f, beta, n_points: f(beta)), skip="fn"),
}
FUZZ_OPT_OUT = {}
