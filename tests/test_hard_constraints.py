"""Tests of lessons_lib.hard_constraints: the basis network's derivatives, the least-squares layer and its
implicit backward, the iterative solver's three backwards, the slab experts and the training claims.

Measured here (float64, N = 16, width 32, nu = 0.1, 256/64/64 points, seeds 0-2): at initialisation the
residual norm falls with K = 1, 2, 4, 8 as 0.87/0.25/0.053/0.014 (seed 0); implicit and unrolled gradients of
the training loss agree to 1.5e-8..7.1e-8 after 200 damped Gauss-Newton steps (damping 10 sigma_min^2, in these
tests as in the notebook) and only to 3.6e-3..1.4e-2 after 60; the shortcut is off by 16-31 %; after 200 Adam
steps (3e-3) K = 1 reaches errors 4.2e-4..9.4e-4 and K = 4 errors 141-162x larger with a 105-283x lower loss.
The notebook's explorer (128/32/32 points, 80 Adam steps, seed 0; nu = 0.1, rate 3e-3): K = 1 error 2.2e-3,
K = 2, 4, 8 errors 24x, 39x and 126x larger.
"""

from __future__ import annotations

import functools

import fuzz_specs
import pytest
import torch
from checkcases import Case

from lessons_lib import check
from lessons_lib import hard_constraints as hc
from lessons_lib.check import hard_constraints as C

F64 = dict(dtype=torch.float64)
SEEDS = (0, 1, 2)


def _setup(seed, nu=0.1, n_pde=256, n_ic=64, n_bc=64, n_basis=16):
    problem = hc.heat_problem(nu, n_pde=n_pde, n_ic=n_ic, n_bc=n_bc, generator=seed, device="cpu")
    return hc.BasisNet(n_basis, generator=seed, device="cpu"), problem


def _linear(w, A, c):
    return A @ w - c


@functools.lru_cache(maxsize=None)
def _heat_gradients(seed):
    """d(training loss)/d(theta) through lm_solve on the heat rows at initialisation, damping 10 s_min^2 as in the
    notebook: implicit and shortcut after 200 steps, unrolled after 60 and 200 (one solve, continued). Cached per
    seed: three tests read the same gradients."""
    net, problem = _setup(seed)
    theta = net.params.clone().requires_grad_(True)
    A, c, _ = hc.heat_rows(net, problem, params=theta)
    damping = 10.0 * float(torch.linalg.svdvals(A.detach())[-1]) ** 2
    w0 = torch.zeros(16, **F64)

    def grad(omega):
        loss = hc._group_loss((A @ omega - c)[None], problem.sizes)[0]
        return torch.autograd.grad(loss, theta, retain_graph=True)[0]

    out = {kind: grad(hc.lm_solve(_linear, (A, c), w0, iters=200, backward=kind, damping=damping))
           for kind in ("implicit", "shortcut")}
    w60 = hc.lm_solve(_linear, (A, c), w0, iters=60, backward="unrolled", damping=damping)
    out[60] = grad(w60)
    out[200] = grad(hc.lm_solve(_linear, (A, c), w60, iters=140, backward="unrolled", damping=damping))
    return out


def _gap(seed, kind):
    g = _heat_gradients(seed)
    return float((g[kind] - g["implicit"]).norm() / g["implicit"].norm())


# --- the basis network and the rows --------------------------------------------------------------------

def test_forward_mode_jets_match_autograd():
    net = hc.BasisNet(5, generator=3, width=7, device="cpu")
    points = torch.rand(2, 2, generator=torch.Generator().manual_seed(1), **F64)
    b, bx, bxx, bt = net.jets(points)
    for i in range(2):
        J = torch.func.jacrev(net.basis)(points[i:i + 1])[0, :, 0]          # (N, 2)
        H = torch.func.hessian(lambda p: net.basis(p[None])[0])(points[i])  # (N, 2, 2)
        torch.testing.assert_close(bx[i], J[:, 0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(bt[i], J[:, 1], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(bxx[i], H[:, 0, 0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(b[i], net.basis(points[i:i + 1])[0], rtol=1e-13, atol=1e-13)


def test_batched_jets_equal_single_ones():
    net = hc.BasisNet(4, generator=0, width=6, device="cpu")
    theta = torch.stack([net.params, 2 * net.params])
    points = torch.rand(5, 2, generator=torch.Generator().manual_seed(0), **F64)
    batched = net.jets(points, theta)
    for r in range(2):
        for got, want in zip(batched, net.jets(points, theta[r])):
            torch.testing.assert_close(got[r], want, rtol=1e-13, atol=1e-13)


def test_heat_rows_layout_and_the_exact_solution_satisfies_the_pde():
    net, problem = _setup(0, n_pde=10, n_ic=4, n_bc=6)
    A, c, points = hc.heat_rows(net, problem)
    assert A.shape == (20, 16) and c.shape == (20,) and points.shape == (20, 2)
    torch.testing.assert_close(c[10:14], torch.sin(torch.pi * problem.ic[:, 0]))
    assert bool((c[:10] == 0).all()) and bool((c[14:] == 0).all())
    assert problem.bc[:3, 0].tolist() == [0.0] * 3 and problem.bc[3:, 0].tolist() == [1.0] * 3
    b, _, bxx, bt = net.jets(points)
    torch.testing.assert_close(A[:10], bt[:10] - 0.1 * bxx[:10])
    torch.testing.assert_close(A[10:], b[10:])
    # the exact solution u = exp(-nu pi^2 t) sin(pi x) solves u_t = nu u_xx (autograd on the formula)
    p = problem.pde[0]
    u = lambda q: problem.exact(q[None])[0]  # noqa: E731
    g, H = torch.func.grad(u)(p), torch.func.hessian(u)(p)
    assert abs(float(g[1] - 0.1 * H[0, 0])) < 1e-12
    assert float(problem.exact(problem.bc).abs().max()) < 1e-12


# --- the least-squares layer ---------------------------------------------------------------------------------

def _small(seed=0, n=9, N=4):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, N, generator=gen, **F64), torch.randn(n, generator=gen, **F64)


@pytest.mark.parametrize("damping", [0.0, 0.3])
def test_least_squares_backward_matches_autograd_through_the_normal_equations(damping):
    A, c = _small()
    A.requires_grad_(True)
    c.requires_grad_(True)
    v = torch.randn(4, generator=torch.Generator().manual_seed(5), **F64)
    g_impl = torch.autograd.grad(hc.least_squares(A, c, damping=damping) @ v, (A, c))
    dense = torch.linalg.solve(A.T @ A + damping * torch.eye(4, **F64), A.T @ c)  # autograd through a dense solve
    g_dense = torch.autograd.grad(dense @ v, (A, c))
    for got, want in zip(g_impl, g_dense):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(lambda A_, c_: hc.least_squares(A_, c_, damping=damping),
                                    (A.detach().requires_grad_(), c.detach().requires_grad_()))


@pytest.mark.parametrize("seed", SEEDS)
def test_the_normal_equations_hold_on_the_heat_layer(seed):
    net, problem = _setup(seed)
    A, c, _ = hc.heat_rows(net, problem)
    omega = hc.least_squares(A, c)
    normal = A.T @ (A @ omega - c)
    assert float(normal.norm()) <= 1e-10 * float(A.norm()) * float(c.norm())
    assert float((A @ omega - c).norm()) > 1e-3  # r != 0: more rows than the basis can fit


def test_lm_solve_converges_to_the_least_squares_solution():
    A, c = _small(1, 12, 3)
    omega = hc.lm_solve(_linear, (A, c), torch.zeros(3, **F64), iters=30, damping=0.5)
    torch.testing.assert_close(omega, hc.least_squares(A, c), rtol=1e-10, atol=1e-12)
    one = hc.lm_solve(_linear, (A, c), torch.zeros(3, **F64), iters=1, damping=0.0)  # Gauss-Newton: one step
    torch.testing.assert_close(one, hc.least_squares(A, c), rtol=1e-10, atol=1e-12)


# --- claim 2: implicit equals unrolled once converged; the shortcut does not -----------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_implicit_equals_unrolled_after_200_steps_with_r_nonzero(seed):
    assert _gap(seed, 200) < 1e-6  # measured 1.5e-8 .. 7.1e-8


@pytest.mark.parametrize("seed", SEEDS)
def test_implicit_and_unrolled_differ_before_convergence(seed):
    assert _gap(seed, 60) > 1e-3  # measured 3.6e-3 .. 1.4e-2


def test_implicit_equals_unrolled_on_a_nonlinear_residual():
    """With r(omega) nonlinear the implicit backward needs the full Hessian of (1/2)||r||^2."""
    t = torch.linspace(0, 1, 8, **F64)
    y = torch.exp(-1.3 * t) + 0.05 * torch.cos(7 * t)  # not an exact fit: r != 0 at the solution
    a = torch.tensor(1.0, **F64, requires_grad=True)

    def residual(w, a_, y_):
        return a_ * torch.exp(-w[0] * t) + w[1] - y_

    grads = {}
    for backward in ("implicit", "unrolled", "shortcut"):
        omega = hc.lm_solve(residual, (a, y), torch.tensor([1.0, 0.0], **F64), iters=60, backward=backward,
                            damping=1e-3)
        grads[backward] = torch.autograd.grad(omega.sum(), a)[0]
    assert abs(float(grads["implicit"] - grads["unrolled"])) < 1e-8 * abs(float(grads["unrolled"]))
    assert abs(float(grads["shortcut"] - grads["unrolled"])) > 1e-4 * abs(float(grads["unrolled"]))


@pytest.mark.parametrize("seed", SEEDS)
def test_the_shortcut_is_off_when_r_is_nonzero(seed):
    assert _gap(seed, "shortcut") > 0.1  # measured 0.16 .. 0.31


def test_the_shortcut_is_exact_on_a_consistent_system():
    A, _ = _small(2, 10, 3)
    A.requires_grad_(True)
    c = (A.detach() @ torch.tensor([0.5, -1.0, 2.0], **F64)).requires_grad_(True)
    v = torch.tensor([1.0, 2.0, -0.5], **F64)
    grads = {}
    for backward in ("implicit", "shortcut"):
        omega = hc.lm_solve(_linear, (A, c), torch.zeros(3, **F64), iters=40, backward=backward, damping=1e-2)
        grads[backward] = torch.autograd.grad(omega @ v, (A, c))
    for s, i in zip(grads["shortcut"], grads["implicit"]):
        torch.testing.assert_close(s, i, rtol=1e-8, atol=1e-10)


def test_least_squares_vjp_drops_nothing():
    """The exercise's formula against autograd through lstsq on an inconsistent system."""
    A, c = _small(3, 7, 3)
    omega = torch.linalg.lstsq(A, c[:, None]).solution[:, 0]
    g = torch.tensor([0.3, -1.0, 0.7], **F64)
    A_, c_ = A.clone().requires_grad_(), c.clone().requires_grad_()
    want = torch.autograd.grad(torch.linalg.solve(A_.T @ A_, A_.T @ c_) @ g, (A_, c_))
    for got, w in zip(hc.least_squares_vjp(A, c, omega, g), want):
        torch.testing.assert_close(got, w, rtol=1e-10, atol=1e-12)


# --- claim 3: experts -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_one_expert_is_the_global_layer(seed):
    net, problem = _setup(seed)
    A, c, _ = hc.heat_rows(net, problem)
    solved = hc.hard_solve(net, problem, experts=1)
    torch.testing.assert_close(solved.omega[0], hc.least_squares(A, c, damping=1e-10), rtol=1e-12, atol=1e-12)
    assert abs(solved.residual - float((A @ solved.omega[0] - c).norm())) < 1e-12


def test_each_expert_solves_only_its_own_rows():
    net, problem = _setup(0)
    A, c, points = hc.heat_rows(net, problem)
    solved = hc.hard_solve(net, problem, experts=4, damping=0.0)
    routes = hc.expert_of(points, 4)
    for k in range(4):
        mine = routes == k
        torch.testing.assert_close(solved.omega[k], hc.least_squares(A[mine], c[mine]), rtol=1e-6, atol=1e-6)
        assert abs(float(solved.expert_residual[k]) - float((A[mine] @ solved.omega[k] - c[mine]).norm())) < 1e-10
    assert hc.expert_of(torch.tensor([[0.0, 0.5], [0.25, 0.1], [0.999, 0.0], [1.0, 1.0]], **F64), 4).tolist() \
        == [0, 1, 3, 3]


@pytest.mark.parametrize("seed", SEEDS)
def test_the_residual_does_not_rise_with_k(seed):
    net, problem = _setup(seed)
    residuals = [hc.hard_solve(net, problem, experts=k).residual for k in (1, 2, 4, 8)]
    assert all(b <= a * (1 + 1e-9) for a, b in zip(residuals, residuals[1:])), residuals
    assert residuals[-1] < 0.1 * residuals[0]  # measured 0.013-0.025 of it


# --- claim 4: a lower residual is not a better solution -----------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_after_training_four_experts_have_a_lower_loss_but_a_larger_error(seed):
    _, problem = _setup(seed)
    runs = hc.train_hard(problem, experts=[1, 4], n_basis=16, lr=3e-3, steps=200, generator=seed)
    (err1, err4), (loss1, loss4) = runs.error[-1].tolist(), runs.loss[-1].tolist()
    assert err1 < 5e-3, err1            # measured 4.2e-4 .. 9.4e-4
    assert err4 > 30 * err1, (err1, err4)  # measured 141-162x
    assert loss4 < loss1 / 50, (loss1, loss4)  # measured 105-283x lower
    assert not bool(runs.diverged.any())


@pytest.mark.slow
def test_the_explorers_default_frames_order_the_errors_by_k():
    """The explorer's settings (128/32/32 points, 80 Adam steps at 3e-3, nu = 0.1, seed 0), as its prompt states."""
    problem = hc.heat_problem(0.1, n_pde=128, n_ic=32, n_bc=32, generator=0, device="cpu")
    runs = hc.train_hard(problem, experts=[1, 2, 4, 8], n_basis=16, lr=3e-3, steps=80, generator=0)
    err = runs.error[-1].tolist()
    assert err[0] < 5e-3, err                       # measured 2.2e-3
    assert err[0] < err[1] < err[2] < err[3], err   # measured 24x, 39x, 126x K = 1's
    assert err[1] > 10 * err[0], err


def test_batched_training_equals_single_runs():
    _, problem = _setup(0, n_pde=24, n_ic=8, n_bc=8, n_basis=4)
    both = hc.train_hard(problem, experts=[1, 2], n_basis=4, lr=[1e-2, 3e-2], steps=4, generator=0, width=6,
                         record_every=2)
    assert both.loss.shape == (3, 2, 2) and both.omega.shape == (2, 2, 2, 4) and both.params.shape[:2] == (2, 2)
    one = hc.train_hard(problem, experts=2, n_basis=4, lr=3e-2, steps=4, generator=0, width=6, record_every=2)
    assert one.loss.shape == (3,) and one.omega.shape == (2, 4) and one.diverged.shape == ()
    torch.testing.assert_close(both.loss[:, 1, 1], one.loss, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(both.params[1, 1], one.params, rtol=1e-9, atol=1e-12)
    assert both.experts.tolist() == [[1, 1], [2, 2]]
    assert float(both.loss[-1, 0, 1]) < float(both.loss[0, 0, 1])


def test_relative_error_of_the_exact_weights_is_small():
    """A basis that holds the exact solution gives a tiny error: check the error's plumbing on a fitted basis."""
    net, problem = _setup(0, n_basis=8)
    s = torch.linspace(0, 1, 21, **F64)
    points = torch.cartesian_prod(s, s)
    b = net.basis(points)
    omega = torch.linalg.lstsq(b, problem.exact(points)[:, None]).solution[:, 0]
    err = float(hc.relative_error(net, problem, omega[None], grid=21))
    fit = float((b @ omega - problem.exact(points)).norm() / problem.exact(points).norm())
    assert abs(err - fit) < 1e-12
    assert float(hc.relative_error(net, problem, torch.zeros(1, 8, **F64))) == pytest.approx(1.0)


# --- same seed, same result; bad input ------------------------------------------------------------------------

def test_same_seed_same_result():
    a, b = hc.heat_problem(generator=4, device="cpu"), hc.heat_problem(generator=4, device="cpu")
    assert torch.equal(a.points, b.points)
    nets = [hc.BasisNet(6, generator=4, device="cpu") for _ in range(2)]
    assert torch.equal(nets[0].params, nets[1].params)
    assert not torch.equal(a.points, hc.heat_problem(generator=5, device="cpu").points)
    _, small = _setup(1, n_pde=16, n_ic=8, n_bc=8, n_basis=4)
    runs = [hc.train_hard(small, experts=2, n_basis=4, steps=3, generator=1, width=5, record_every=1)
            for _ in range(2)]
    assert torch.equal(runs[0].loss, runs[1].loss) and torch.equal(runs[0].params, runs[1].params)


@pytest.mark.parametrize("call, match", [
    (lambda: hc.BasisNet(0, generator=0), "n_basis"),
    (lambda: hc.BasisNet(4, generator=-1), "seed"),
    (lambda: hc.heat_problem(-0.1), "nu"),
    (lambda: hc.heat_problem(0.1, n_pde=0), "n_pde"),
    (lambda: hc.heat_problem(0.1, n_bc=1), "n_bc"),
    (lambda: hc.hard_solve(*_setup(0, n_pde=8, n_ic=4, n_bc=4, n_basis=4), experts=0), "experts"),
    (lambda: hc.train_hard(_setup(0, n_pde=8, n_ic=4, n_bc=4)[1], steps=-1), "steps"),
    (lambda: hc.train_hard(_setup(0, n_pde=8, n_ic=4, n_bc=4)[1], lr=[]), "lr"),
    (lambda: hc.train_hard(_setup(0, n_pde=8, n_ic=4, n_bc=4)[1], lr=-1.0), "lr"),
    (lambda: hc.train_hard("heat", steps=1), "problem"),
    (lambda: hc.lm_solve(_linear, (torch.eye(2, **F64), torch.ones(2, **F64)), torch.zeros(2, **F64), iters=-1),
     "iters"),
    (lambda: hc.lm_solve(_linear, (torch.eye(2, **F64),), torch.zeros(2, **F64), iters=1, backward="adjoint"),
     "backward"),
    (lambda: hc.least_squares(torch.ones(2, 3, **F64), torch.ones(2, **F64)), "A"),
    (lambda: hc.least_squares(torch.ones(4, 3, **F64), torch.ones(3, **F64)), "c"),
    (lambda: hc.heat_rows(hc.BasisNet(3, generator=0, device="cpu"), "problem"), "problem"),
    (lambda: hc.BasisNet(3, generator=0, device="cpu").jets(torch.ones(4, 3, **F64)), "points"),
    (lambda: hc.relative_error(*_setup(0, n_basis=4), torch.zeros(2, 4, **F64), experts=3), "experts"),
])
def test_bad_input_is_refused_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# --- self-check cases (tests/test_course.py) ---------------------------------------------------------------

def _right(A, c, omega, grad):
    lam = torch.linalg.solve(A.T @ A, grad)
    r = A @ omega - c
    return -(torch.outer(r, lam) + torch.outer(A @ lam, omega)), A @ lam


def _scaled(A, c, omega, grad):
    gA, gc = _right(A, c, omega, grad)
    return 1.01 * gA, 1.01 * gc


def _shortcut(A, c, omega, grad):
    lam = torch.linalg.solve(A.T @ A, grad)
    return -torch.outer(A @ lam, omega), A @ lam


def _no_solve(A, c, omega, grad):
    r = A @ omega - c
    return -(torch.outer(r, grad) + torch.outer(A @ grad, omega)), A @ grad


def _flipped(A, c, omega, grad):
    gA, gc = _right(A, c, omega, grad)
    return -gA, -gc


def _c_sign(A, c, omega, grad):
    gA, gc = _right(A, c, omega, grad)
    return gA, -gc


def _A_sign(A, c, omega, grad):
    gA, gc = _right(A, c, omega, grad)
    return -gA, gc


def _nan(A, c, omega, grad):
    return torch.full_like(A, float("nan")), torch.full_like(c, float("nan"))


_EXPECTED = [v for case in C.BACKWARD_CASES.values() for part in _right(*case) for v in part.reshape(-1).tolist()
             if abs(v) > 1e-9]


def test_the_check_accepts_the_library_and_says_which_case_fails():
    assert check.least_squares_backward(lambda A, c, w, g: hc.least_squares_vjp(A, c, w, g)).status == "correct"
    res = check.least_squares_backward(lambda A, c, w, g: _right(A, c, w, g)[0].T)
    assert res.status == "wrong" and "pair" in res.message


CHECK_CASES = {
    "least_squares_backward": Case(
        _right, _scaled, (_shortcut, _no_solve, _flipped, _c_sign, _A_sign), expected=_EXPECTED,
        inputs=[6, 3, 10, 4, 8, 0], function=True, nan=_nan,
        hints=((_shortcut, "residual r = A omega - c is zero"), (_no_solve, "linear system"),
               (_flipped, "point the wrong way"), (_c_sign, "grad_c has the wrong sign"),
               (_A_sign, "grad_A has the wrong sign"))),
}


# --- divergence cases (tests/test_divergence.py) ---------------------------------------------------------

def _train_far(m):
    """Adam at m times the chapter's rate 3e-3 on a tiny problem: the step is about lr, so only 1e300x leaves."""
    _, problem = _setup(0, n_pde=12, n_ic=6, n_bc=6, n_basis=3)
    return hc.train_hard(problem, experts=2, n_basis=3, lr=m * 3e-3, steps=4, generator=0, width=4, record_every=1)


DIVERGENCE_CASES = {"hard_constraints.train_hard": (_train_far, None, ())}
NOT_RUNNERS = {}


def _tiny():
    return _setup(0, n_pde=12, n_ic=6, n_bc=6, n_basis=3)


FUZZ_SPECS = {
    "hard_constraints.heat_problem": fuzz_specs.Spec(lambda: dict(nu=0.1, n_pde=8, n_ic=4, n_bc=4, generator=0,
                                                                   device="cpu"), positive="nu"),
    "hard_constraints.heat_rows": fuzz_specs.Spec(lambda: dict(net=_tiny()[0], problem=_tiny()[1])),
    "hard_constraints.least_squares": fuzz_specs.Spec(lambda: dict(A=fuzz_specs.randn(5, 2), c=fuzz_specs.randn(5),
                                                                    damping=0.1), nonneg="damping"),
    "hard_constraints.least_squares_vjp": fuzz_specs.Spec(
        lambda: dict(A=fuzz_specs.randn(5, 2), c=fuzz_specs.randn(5), omega=fuzz_specs.randn(2),
                     grad=fuzz_specs.randn(2, seed=1), damping=0.0), nonneg="damping"),
    "hard_constraints.lm_solve": fuzz_specs.Spec(
        lambda: dict(residual=_linear, params=(fuzz_specs.randn(5, 2), fuzz_specs.randn(5, seed=1)),
                     omega0=fuzz_specs.t(0.0, 0.0), iters=3, backward="implicit", damping=0.1),
        nonneg="damping", skip="params"),  # params: any tuple of tensors the residual accepts
    "hard_constraints.expert_of": fuzz_specs.Spec(lambda: dict(points=fuzz_specs.t([0.1, 0.2], [0.9, 0.5]),
                                                               experts=2)),
    "hard_constraints.hard_solve": fuzz_specs.Spec(lambda: dict(net=_tiny()[0], problem=_tiny()[1], experts=2,
                                                                damping=1e-10), nonneg="damping"),
    "hard_constraints.relative_error": fuzz_specs.Spec(lambda: dict(net=_tiny()[0], problem=_tiny()[1],
                                                                    omega=torch.zeros(2, 3, **F64), experts=2,
                                                                    grid=5)),
    "hard_constraints.hard_output": fuzz_specs.Spec(lambda: dict(net=_tiny()[0], omega=torch.zeros(2, 3, **F64),
                                                                 points=fuzz_specs.t([0.1, 0.2], [0.9, 0.5]),
                                                                 experts=2)),
    "hard_constraints.train_hard": fuzz_specs.Spec(lambda: dict(problem=_tiny()[1], experts=2, n_basis=3, lr=1e-2,
                                                                steps=2, generator=0, width=4, record_every=1,
                                                                damping=1e-10), positive="lr", nonneg="damping"),
    "hard_constraints.BasisNet.jets": fuzz_specs.Spec(lambda: dict(points=fuzz_specs.t([0.1, 0.2], [0.9, 0.5])),
                                                      instance=lambda: _tiny()[0]),
    "hard_constraints.BasisNet.basis": fuzz_specs.Spec(lambda: dict(points=fuzz_specs.t([0.1, 0.2], [0.9, 0.5])),
                                                       instance=lambda: _tiny()[0]),
    "hard_constraints.HeatProblem.exact": fuzz_specs.Spec(lambda: dict(points=fuzz_specs.t([0.1, 0.2], [0.9, 0.5])),
                                                          instance=lambda: _tiny()[1]),
    "check.hard_constraints.least_squares_backward": fuzz_specs.Spec(lambda: dict(fn=_right), skip="fn"),
}
