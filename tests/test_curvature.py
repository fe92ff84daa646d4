import math

import pytest
import torch
from conftest import random_spd
from hypothesis import given, settings
from hypothesis import strategies as st

from lessons_lib import curvature


def quad(H):
    return lambda x: 0.5 * x @ (H @ x)


def mlp_problem(seed=0, d=3, h=5, n=16):
    """A tiny tanh MLP with square loss; returns (loss_fn of flat params, params)."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.sin(X.sum(1, keepdim=True))
    sizes = [h * d, h, h]

    def loss(p):
        W1, b1, w2 = torch.split(p, sizes)
        hidden = torch.tanh(X @ W1.view(h, d).T + b1)
        return 0.5 * ((hidden @ w2.view(h, 1) - y) ** 2).mean()

    return loss, torch.randn(sum(sizes), generator=g, dtype=torch.float64)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hessian_matches_dense_autograd_on_quadratic(seed):
    H = random_spd(7, seed, shift=-1.0)  # indefinite is fine
    x = torch.randn(7, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    assert torch.allclose(curvature.hessian(quad(H), x), H, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_hessian_and_hvp_match_autograd_on_mlp(seed):
    loss, p = mlp_problem(seed)
    dense = torch.autograd.functional.hessian(loss, p)
    H = curvature.hessian(loss, p)
    assert torch.allclose(H, dense, atol=1e-10)
    v = torch.randn(p.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 10))
    assert torch.allclose(curvature.hvp(loss, p, v), dense @ v, atol=1e-10)


def test_hvp_matches_finite_differences():
    loss, p = mlp_problem(3)
    v = torch.randn(p.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    g = lambda q: torch.func.grad(loss)(q)  # noqa: E731
    eps = 1e-5
    fd = (g(p + eps * v) - g(p - eps * v)) / (2 * eps)
    assert torch.allclose(curvature.hvp(loss, p, v), fd, atol=1e-7)


@settings(max_examples=25, deadline=None)
@given(st.floats(-3, 3), st.floats(-3, 3), st.integers(0, 1000))
def test_hvp_is_linear_in_v(alpha, beta, seed):
    loss, p = mlp_problem(0)
    gen = torch.Generator().manual_seed(seed)
    u, w = torch.randn(2, p.numel(), dtype=torch.float64, generator=gen)
    lhs = curvature.hvp(loss, p, alpha * u + beta * w)
    rhs = alpha * curvature.hvp(loss, p, u) + beta * curvature.hvp(loss, p, w)
    assert torch.allclose(lhs, rhs, atol=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_sharpness_matches_eigvalsh(seed, method):
    H = random_spd(40, seed)
    x = torch.zeros(40, dtype=torch.float64)
    exact = float(torch.linalg.eigvalsh(H)[-1])
    res = curvature.sharpness(quad(H), x, method=method, tol=1e-8, max_iter=2000, generator=seed)
    assert res.converged
    assert abs(res.value - exact) <= 1e-6 * exact
    assert float((H @ res.vector - res.value * res.vector).norm()) <= 1e-6 * exact
    assert float(res) == res.value


def test_sharpness_on_mlp_matches_dense_spectrum():
    loss, p = mlp_problem(5)
    exact = float(torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss, p))[-1])
    assert curvature.sharpness(loss, p, tol=1e-9).value == pytest.approx(exact, rel=1e-7)


def test_lanczos_uses_few_products_on_low_rank_spectrum():
    # 3 distinct eigenvalues: Krylov space is exhausted after 3 products
    H = torch.diag(torch.tensor([5.0, 5.0, 2.0, 2.0, 1.0, 1.0], dtype=torch.float64))
    res = curvature.sharpness(quad(H), torch.zeros(6, dtype=torch.float64), tol=1e-12)
    assert res.value == pytest.approx(5.0, rel=1e-12)
    assert res.iterations <= 3


def test_sharpness_indefinite_lanczos_is_algebraic_power_is_magnitude():
    H = torch.diag(torch.tensor([-10.0, 1.0, 3.0], dtype=torch.float64))
    x = torch.zeros(3, dtype=torch.float64)
    assert curvature.sharpness(quad(H), x, method="lanczos").value == pytest.approx(3.0, rel=1e-9)
    assert curvature.sharpness(quad(H), x, method="power", tol=1e-10, max_iter=500).value == pytest.approx(
        -10.0, rel=1e-8)


def test_sharpness_edge_cases():
    one = curvature.sharpness(lambda x: 2.5 * (x**2).sum(), torch.zeros(1, dtype=torch.float64))
    assert one.value == pytest.approx(5.0) and one.iterations == 1
    flat = curvature.sharpness(lambda x: (x * 0).sum(), torch.ones(4, dtype=torch.float64))
    assert flat.value == 0.0 and flat.converged
    flat_p = curvature.sharpness(lambda x: (x * 0).sum(), torch.ones(4, dtype=torch.float64), method="power")
    assert flat_p.value == 0.0 and flat_p.converged


def test_sharpness_reports_non_convergence():
    H = random_spd(50, 9)
    res = curvature.sharpness(quad(H), torch.zeros(50, dtype=torch.float64), method="power", tol=1e-14, max_iter=3)
    assert not res.converged and res.iterations == 3


def test_sharpness_is_deterministic_for_a_seed():
    loss, p = mlp_problem(1)
    a = curvature.sharpness(loss, p, method="power", max_iter=5, generator=3)
    b = curvature.sharpness(loss, p, method="power", max_iter=5, generator=3)
    assert a.value == b.value and torch.equal(a.vector, b.vector)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_hessian_trace_within_three_standard_errors(seed):
    H = random_spd(30, seed, shift=-0.5)
    est = curvature.hessian_trace(quad(H), torch.zeros(30, dtype=torch.float64), n_probes=200, generator=seed)
    exact = float(torch.trace(H))
    assert est.stderr > 0
    assert abs(est.value - exact) <= 3 * est.stderr
    # the standard error is honest: it matches the Rademacher variance 2 * sum_{i != j} H_ij^2
    off = H - torch.diag(torch.diag(H))
    assert est.stderr == pytest.approx(math.sqrt(2 * float((off**2).sum()) / 200), rel=0.3)


def test_hessian_trace_exact_for_diagonal():
    # z^T D z = tr D for every sign vector z: zero variance
    D = torch.diag(torch.tensor([1.0, -2.0, 7.0], dtype=torch.float64))
    est = curvature.hessian_trace(quad(D), torch.zeros(3, dtype=torch.float64), n_probes=5)
    assert est.value == pytest.approx(6.0, abs=1e-12) and est.stderr == pytest.approx(0.0, abs=1e-12)


def test_hessian_trace_on_mlp():
    loss, p = mlp_problem(2)
    exact = float(torch.trace(torch.autograd.functional.hessian(loss, p)))
    est = curvature.hessian_trace(loss, p, n_probes=400, generator=1)
    assert abs(est.value - exact) <= 3 * est.stderr


def test_bad_input_names_the_argument():
    H = torch.eye(3, dtype=torch.float64)
    x = torch.zeros(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="loss_fn"):
        curvature.hessian("not callable", x)
    with pytest.raises(ValueError, match="params"):
        curvature.hessian(quad(H), torch.zeros(3, 1, dtype=torch.float64))
    with pytest.raises(ValueError, match="params"):
        curvature.hessian(quad(H), torch.zeros(0, dtype=torch.float64))
    with pytest.raises(ValueError, match="params"):
        curvature.hessian(quad(H), [0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="params"):
        curvature.sharpness(quad(H), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="v:"):
        curvature.hvp(quad(H), x, torch.zeros(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="method"):
        curvature.sharpness(quad(H), x, method="arnoldi")
    with pytest.raises(ValueError, match="tol"):
        curvature.sharpness(quad(H), x, tol=-1)
    with pytest.raises(ValueError, match="max_iter"):
        curvature.sharpness(quad(H), x, max_iter=0)
    with pytest.raises(ValueError, match="n_probes"):
        curvature.hessian_trace(quad(H), x, n_probes=1)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_curvature_on_cuda_matches_cpu():
    H = random_spd(20, 0)
    x = torch.zeros(20, dtype=torch.float64)
    cpu = curvature.sharpness(quad(H), x, tol=1e-10).value
    Hc, xc = H.cuda(), x.cuda()
    res = curvature.sharpness(quad(Hc), xc, tol=1e-10)
    assert res.vector.device.type == "cuda"
    assert res.value == pytest.approx(cpu, rel=1e-8)
    est = curvature.hessian_trace(quad(Hc), xc, n_probes=100)
    assert abs(est.value - float(torch.trace(H))) <= 3 * est.stderr + 1e-9


def test_sharpness_warm_start_and_bad_v0():
    H = random_spd(30, 4)
    x = torch.zeros(30, dtype=torch.float64)
    exact = float(torch.linalg.eigvalsh(H)[-1])
    top = torch.linalg.eigh(H).eigenvectors[:, -1]
    warm = curvature.sharpness(quad(H), x, v0=top + 1e-3 * torch.ones(30, dtype=torch.float64), tol=1e-8)
    cold = curvature.sharpness(quad(H), x, tol=1e-8)
    assert warm.value == pytest.approx(exact, rel=1e-8) and warm.iterations < cold.iterations
    with pytest.raises(ValueError, match="v0"):
        curvature.sharpness(quad(H), x, v0=torch.zeros(30, dtype=torch.float64))
    with pytest.raises(ValueError, match="v0"):
        curvature.sharpness(quad(H), x, v0=torch.ones(3, dtype=torch.float64))


def test_estimates_are_floats_of_their_value():
    x = torch.zeros(4, dtype=torch.float64)
    H = torch.diag(torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64))
    assert float(curvature.sharpness(quad(H), x)) == pytest.approx(4.0, rel=1e-8)
    assert float(curvature.hessian_trace(quad(H), x, n_probes=4)) == pytest.approx(10.0, rel=1e-12)


# --- the Gauss-Newton matrix ---------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1])
def test_gauss_newton_matches_dense_matrix(seed):
    J = torch.randn(7, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    G = J.T @ J / 7
    gn = curvature.gauss_newton(J)
    assert float(gn.trace) == pytest.approx(float(torch.trace(G)), rel=1e-12)
    assert float(gn.lam_max) == pytest.approx(float(torch.linalg.eigvalsh(G)[-1]), rel=1e-10)
    tall = curvature.gauss_newton(J.T.contiguous())  # n > p branch
    assert float(tall.lam_max) == pytest.approx(float(torch.linalg.eigvalsh(J @ J.T / 12)[-1]), rel=1e-10)


def test_gauss_newton_is_the_hessian_of_the_square_loss_at_an_interpolating_point():
    g = torch.Generator().manual_seed(3)
    X, w = torch.randn(5, 3, dtype=torch.float64, generator=g), torch.randn(3, dtype=torch.float64, generator=g)
    f = lambda p: torch.tanh(X @ p)  # noqa: E731  (a nonlinear model)
    y = f(w)  # w interpolates the data
    H = curvature.hessian(lambda p: 0.5 * ((f(p) - y) ** 2).mean(), w)
    gn = curvature.gauss_newton(torch.autograd.functional.jacobian(f, w))
    assert float(gn.trace) == pytest.approx(float(torch.trace(H)), rel=1e-10)
    assert float(gn.lam_max) == pytest.approx(float(torch.linalg.eigvalsh(H)[-1]), rel=1e-10)


def test_gauss_newton_is_batched_over_leading_dimensions():
    J = torch.randn(4, 6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    gn = curvature.gauss_newton(J)
    assert gn.trace.shape == gn.lam_max.shape == (4,)
    assert torch.allclose(gn.lam_max, torch.stack([curvature.gauss_newton(j).lam_max for j in J]), rtol=1e-12)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 6), p=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_gauss_newton_top_eigenvalue_lies_between_zero_and_the_trace(n, p, seed):
    J = torch.randn(n, p, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    gn = curvature.gauss_newton(J)
    assert -1e-12 <= float(gn.lam_max) <= float(gn.trace) * (1 + 1e-12) + 1e-12
    assert float(gn.lam_max) >= float(gn.trace) / min(n, p) * (1 - 1e-12)  # the largest of at most min(n, p)


def test_gauss_newton_bad_input_names_the_argument():
    for bad in (torch.zeros(3), torch.zeros(0, 2), "J"):
        with pytest.raises(ValueError, match="^J:"):
            curvature.gauss_newton(bad)


def _float32_mlp():
    """The edge chapter's MLP in float32 (705 parameters), where the Lanczos residual estimate
    falls to 8e-13 while the residual itself stays near 6e-7."""
    import dataclasses

    from lessons_lib import edge

    problem = edge.mlp_problem(device="cpu")
    problem32 = dataclasses.replace(problem, X=problem.X.float(), y=problem.y.float())
    return problem32.loss, problem.init(0).float()


def test_a_tolerance_below_the_dtype_resolution_is_refused():
    loss, theta = _float32_mlp()
    for tol in (1e-9, 5e-7):  # below 8 float32 epsilons (9.5e-7)
        with pytest.raises(ValueError, match="^tol:.*float32"):
            curvature.sharpness(loss, theta, tol=tol, max_iter=300)
    with pytest.raises(ValueError, match="^tol:"):
        curvature.sharpness(quad(torch.eye(2, dtype=torch.float64)), torch.ones(2, dtype=torch.float64), tol=1e-16)


@pytest.mark.parametrize("method", ["lanczos", "power"])
@pytest.mark.parametrize("tol", [1e-6, 3e-6])
def test_the_reported_residual_is_the_true_one_in_float32(method, tol):
    loss, theta = _float32_mlp()
    res = curvature.sharpness(loss, theta, method=method, tol=tol, max_iter=300)
    true = float((curvature.hvp(loss, theta, res.vector) - res.value * res.vector).norm())
    # the Lanczos estimate was 30 % below the true residual at tol=1e-6; recomputing agrees to rounding
    assert res.residual == pytest.approx(true, rel=1e-3)
    assert res.converged == (res.residual <= tol * max(1.0, abs(res.value)))
    assert res.vector.dtype == torch.float32


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_the_reported_residual_is_the_true_one_in_float64(method):
    loss, p = mlp_problem(5)
    res = curvature.sharpness(loss, p, method=method, tol=1e-10, max_iter=2000)
    true = float((curvature.hvp(loss, p, res.vector) - res.value * res.vector).norm())
    assert res.converged and res.residual == pytest.approx(true, rel=1e-6)
    short = curvature.sharpness(loss, p, method=method, tol=1e-12, max_iter=2)
    assert not short.converged
    assert short.residual == pytest.approx(
        float((curvature.hvp(loss, p, short.vector) - short.value * short.vector).norm()), rel=1e-6)


@pytest.mark.parametrize("fn", ["hessian", "sharpness", "hessian_trace"])
def test_nan_params_are_refused(fn):
    params = torch.tensor([math.nan, 1.0], dtype=torch.float64)
    with pytest.raises(ValueError, match="^params:"):
        getattr(curvature, fn)(lambda p: (p**2).sum(), params)  # used to return NaN curvature


def test_hvp_refuses_a_nan_direction():
    with pytest.raises(ValueError, match="^v:"):
        curvature.hvp(lambda p: (p**2).sum(), torch.ones(2, dtype=torch.float64),
                      torch.tensor([math.nan, 0.0], dtype=torch.float64))


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_sharpness_stops_at_the_first_step_that_meets_the_relative_tolerance(method):
    # lambda_max ~ 300: the tolerance is tol * |lambda|, so a criterion of tol / |lambda| (or tol) stops later
    H = 100 * random_spd(40, 4)
    x, tol = torch.zeros(40, dtype=torch.float64), 1e-6
    res = curvature.sharpness(quad(H), x, method=method, tol=tol, max_iter=2000, generator=0)
    assert res.value > 10 and res.converged and res.residual <= tol * res.value
    before = curvature.sharpness(quad(H), x, method=method, tol=tol, max_iter=res.iterations - 1, generator=0)
    assert not before.converged and before.residual > tol * res.value
    assert curvature.hessian_trace(quad(H), x).n_probes == 100  # the documented default


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hutchinson_probe_variance_is_twice_the_squared_off_diagonal(seed):
    # Var(z^T H z) = 2 sum_{i != j} H_ij^2 for Rademacher z (the chapter's exercise ex-lr-hutchinson):
    # the probes' sample variance, n_probes * stderr^2, against it; 20 000 probes give a spread of
    # about 1-2 % (measured 0.2-0.7 % over these seeds), so 6 % fails a formula off by a factor 1.1
    H = random_spd(6, seed, shift=0.1)
    predicted = 2 * float((H**2).sum() - (H.diagonal() ** 2).sum())
    est = curvature.hessian_trace(lambda x: 0.5 * x @ H @ x, torch.zeros(6, dtype=torch.float64),
                                  n_probes=20_000, generator=seed)
    assert est.n_probes * est.stderr**2 == pytest.approx(predicted, rel=0.06)
    assert 2 * float((H**2).sum()) > 1.1 * predicted  # Gaussian probes' 2 ||H||_F^2 is told apart


def test_hutchinson_is_exact_on_a_diagonal_hessian():
    # no off-diagonal entries: every Rademacher probe returns Tr H exactly, with zero spread
    d = torch.tensor([3.0, 0.5, 2.0], dtype=torch.float64)
    est = curvature.hessian_trace(lambda x: 0.5 * (d * x * x).sum(), torch.ones(3, dtype=torch.float64), n_probes=50)
    assert est.value == pytest.approx(5.5, abs=1e-12) and est.stderr < 1e-12
