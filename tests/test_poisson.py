"""Tests of lessons_lib.poisson: the claims of the chapter on a PCG-supervised Poisson solver (poisson-solver.ipynb).

Claims (L-shape on a 32 x 32 grid, N = 768, 16 bumps of width 3, W = 0 at the start):
1. kappa(A) = 236 and the residual loss's Hessian A^T A has kappa^2 = 5.6e4.
2. At lr = 1 / lambda_max(A)^2 the residual loss leaves an error above 0.9 after 1,000 steps; the error it
   removes is high-frequency (mode by mode, the low modes are untouched).
3. The PCG target at lr 1: K = 10 below 0.01 after 1,000 steps (below 1e-6 by 250), and at step 250
   error(K = 1) > error(K = 3) >= error(K = 10).
4. With Richardson in place of CG the effective Hessian has eigenvalues 1 - (1 - lambda_i / lambda_max)^K
   (to 1e-10) and kappa_eff = 24 at K = 10, far below kappa^2; training with it follows the closed form.
5. Labels (supervised loss) reach the answer in one step at lr 1.
Oracles: scipy.sparse.linalg.cg iterate by iterate, a dense solve, the closed form of Richardson.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
from checkcases import Case
from fuzz_specs import Spec

from lessons_lib import poisson as P
from lessons_lib.check import poisson as check


@functools.lru_cache(maxsize=None)
def _problem(n: int = 32, seed: int = 0):
    mask = P.l_shape_mask(n, device="cpu")
    A = P.poisson_matrix(mask)
    return mask, A, P.bump_sources(mask, generator=seed)


def _scipy(A: torch.Tensor) -> sp.csr_array:
    d = A.to_dense().numpy()
    return sp.csr_array(d)


# ---------------------------------------------------------------------------------------------- the problem

def test_l_shape_has_768_cells_and_kappa_236():
    mask, A, B = _problem()
    assert int(mask.sum()) == 768 and A.shape == (768, 768) and A.dtype == torch.float64
    assert A.layout == torch.sparse_csr
    assert P.condition_number(A) == pytest.approx(236, abs=0.5)
    assert P.condition_number(A) ** 2 == pytest.approx(5.6e4, rel=0.01)
    assert B.shape == (768, 16) and float(B.max()) == pytest.approx(1.0)  # each bump peaks at its centre


def test_poisson_matrix_is_the_five_point_laplacian_against_a_finite_difference():
    """Applied to a smooth function, A p equals -h^2 (p_xx + p_yy) of the interpolated field, row by row."""
    mask = torch.ones(5, 5, dtype=torch.bool)
    A = P.poisson_matrix(mask).to_dense()
    assert torch.equal(A, A.T) and bool((torch.linalg.eigvalsh(A) > 0).all())
    i, j = torch.meshgrid(torch.arange(5.0), torch.arange(5.0), indexing="ij")
    p = (i ** 2 + 3 * j).double().flatten()
    interior = ((i > 0) & (i < 4) & (j > 0) & (j < 4)).flatten()
    assert torch.allclose((A @ p)[interior], torch.full((9,), -2.0, dtype=torch.float64))  # -(2 + 0)
    # a corner cell has two neighbours outside (zero Dirichlet values): A p = 4 p - (two inside neighbours)
    assert float((A @ p)[0]) == pytest.approx(4 * 0 - (1 + 3))


def test_same_seed_same_bumps_and_other_seed_other_bumps():
    mask = P.l_shape_mask(16, device="cpu")
    assert torch.equal(P.bump_sources(mask, generator=1), P.bump_sources(mask, generator=1))
    assert not torch.equal(P.bump_sources(mask, generator=1), P.bump_sources(mask, generator=2))


# ---------------------------------------------------------------------------------------------- CG

@pytest.mark.parametrize("preconditioner", [None, "jacobi"])
def test_cg_equals_scipy_iterate_by_iterate(preconditioner):
    """On a matrix with a non-constant diagonal (so that Jacobi changes the iterates) and a non-zero start."""
    _, A0, _ = _problem(16)
    gen = torch.Generator().manual_seed(0)
    A = (A0.to_dense() + torch.diag(torch.rand(A0.shape[0], generator=gen, dtype=torch.float64) * 5)).to_sparse_csr()
    b = torch.randn(A.shape[0], generator=gen, dtype=torch.float64)
    x0 = torch.randn(A.shape[0], generator=gen, dtype=torch.float64)
    iterates = []
    M = sp.diags(1.0 / np.diag(A.to_dense().numpy())) if preconditioner == "jacobi" else None
    spla.cg(_scipy(A), b.numpy(), x0=x0.numpy().copy(), rtol=0.0, atol=0.0, maxiter=25, M=M,
            callback=lambda xk: iterates.append(xk.copy()))
    assert len(iterates) == 25
    for k, want in enumerate(iterates, start=1):
        got = P.cg(A, b, x0=x0, steps=k, preconditioner=preconditioner).numpy()
        assert np.linalg.norm(got - want) <= 1e-10 * np.linalg.norm(want), k
    if preconditioner == "jacobi":  # and Jacobi really changed the iterates on this matrix
        assert not torch.allclose(P.cg(A, b, x0=x0, steps=5), P.cg(A, b, x0=x0, steps=5, preconditioner="jacobi"))


def test_cg_columns_are_independent_and_solve_exactly_in_n_steps():
    _, A, B = _problem(16)
    X = P.cg(A, B[:, :3], steps=40)
    for c in range(3):
        assert torch.allclose(X[:, c], P.cg(A, B[:, c], steps=40), rtol=1e-12, atol=1e-12)
    small = torch.diag(torch.tensor([1.0, 3.0, 10.0], dtype=torch.float64))
    b = torch.ones(3, dtype=torch.float64)
    assert torch.allclose(P.cg(small, b, steps=3), b / torch.diag(small), rtol=1e-12)  # 3 distinct eigenvalues
    assert torch.equal(P.cg(small, b, steps=5), P.cg(small, b, steps=5))  # past convergence: no NaN
    assert bool(torch.isfinite(P.cg(small, b, steps=10)).all())


def test_pyamg_preconditioned_cg_reaches_our_solution_in_far_fewer_iterations():
    """The peer of benchmarks/poisson_amg.py, on the 32 x 32 L-shape: same answer, an order of magnitude fewer steps."""
    pyamg = pytest.importorskip("pyamg")
    _, A, B = _problem()
    f = B.sum(1)
    ours = P.cg(A, f, steps=200)
    assert float(torch.linalg.norm(f - A @ ours) / torch.linalg.norm(f)) < 1e-10
    residuals = []
    x = pyamg.smoothed_aggregation_solver(_scipy(A)).solve(f.numpy(), tol=1e-10, accel="cg", residuals=residuals)
    assert np.linalg.norm(x - ours.numpy()) <= 1e-8 * np.linalg.norm(ours.numpy())
    needed = next(k for k in range(1, 201) if float(torch.linalg.norm(f - A @ P.cg(A, f, steps=k))
                                                     / torch.linalg.norm(f)) <= 1e-10)
    assert len(residuals) - 1 < needed / 5


def test_jacobi_changes_nothing_on_the_laplacian_with_its_constant_diagonal():
    _, A, B = _problem(16)
    assert torch.allclose(P.cg(A, B, steps=7), P.cg(A, B, steps=7, preconditioner="jacobi"), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------- the three losses

@functools.lru_cache(maxsize=None)
def _trained(loss: str, K: int = 10, steps: int = 1000, seed: int = 0, n: int = 32):
    _, A, B = _problem(n, seed)
    return P.train_linear_solver(A, B, loss=loss, K=K, steps=steps)


def test_residual_loss_stalls_above_0_9_after_1000_steps():
    r = _trained("residual")
    _, A, _ = _problem()
    assert r.lr == pytest.approx(1 / P.lam_max(A) ** 2)
    assert r.error.shape == (1001,) and float(r.error[0]) == pytest.approx(1.0)
    assert float(r.error[1000]) > 0.9 and float(r.error[250]) > 0.95
    assert bool((r.error[1:] <= r.error[:-1] + 1e-15).all())  # GD below 2/lambda_max on a quadratic: monotone


def test_residual_loss_moves_high_modes_and_leaves_low_modes():
    """Mode i shrinks by (1 - lr lambda_i^2)^t: the closed form, and the split it makes."""
    _, A, B = _problem()
    r = _trained("residual")
    lam, err = P.mode_errors(A, B, r.W)
    want = (1 - r.lr * lam ** 2).abs() ** 1000
    moved = want > 1e-4  # below that, rounding of W* (about 1e-8 of a tiny component) dominates
    assert torch.allclose(err[moved], want[moved], rtol=1e-6)
    assert float(err[:3].min()) > 0.9 and float(err[-100:].max()) < 1e-6


def test_pcg_target_reaches_the_answer_without_labels():
    r = _trained("pcg", 10)
    assert float(r.error[1000]) < 0.01 and float(r.error[250]) < 1e-6
    assert float(_trained("pcg", 3).error[250]) < 1e-6


def test_error_at_step_250_is_monotone_in_K():
    e = {K: float(_trained("pcg", K).error[250]) for K in (1, 3, 10)}
    assert e[1] > e[3] >= e[10] - 1e-12
    assert 0.01 < e[1] < 0.2  # K = 1 is steepest descent restarted: it still lags at step 250
    assert float(_trained("pcg", 1).error[1000]) < 1e-3


def test_pcg_target_at_lr_1_is_restarted_cg():
    """W <- W - (W - P) = P: three training steps are three CG_K calls, each started where the last one ended."""
    _, A, B = _problem(16)
    r = P.train_linear_solver(A, B, loss="pcg", K=4, steps=3, preconditioner="jacobi")
    W = torch.zeros_like(B)
    for _ in range(3):
        W = P.cg(A, B, x0=W, steps=4, preconditioner="jacobi")
    assert torch.allclose(r.W, W, rtol=1e-12, atol=1e-14)


def test_supervised_labels_land_in_one_step():
    r = _trained("supervised", steps=3)
    assert float(r.error[1]) < 1e-14


def test_effective_hessian_matches_its_closed_form_and_is_well_conditioned():
    _, A, _ = _problem()
    lam = torch.linalg.eigvalsh(A.to_dense())
    Q = P.effective_hessian(A, K=10)
    got = torch.linalg.eigvalsh(Q)
    want = torch.sort(1 - (1 - lam / lam[-1]) ** 10).values
    assert torch.allclose(got, want, rtol=0, atol=1e-10)
    kappa_eff = float(got[-1] / got[0])
    assert kappa_eff == pytest.approx(24, abs=0.5)
    assert kappa_eff < 1e-3 * float((lam[-1] / lam[0]) ** 2)


def test_richardson_target_follows_the_effective_hessian_step_by_step():
    """At lr eta, W_t - W* = (I - eta Q_K)^t (W_0 - W*): the training run against the matrix power."""
    _, A, B = _problem(16)
    eta, K, steps = 0.7, 4, 12
    r = P.train_linear_solver(A, B, loss="pcg", K=K, solver="richardson", lr=eta, steps=steps)
    Ad = A.to_dense()
    W_star = torch.linalg.solve(Ad, B)
    step = torch.eye(len(Ad), dtype=torch.float64) - eta * P.effective_hessian(A, K=K)
    E = -W_star
    for t in range(1, steps + 1):
        E = step @ E
        assert float(r.error[t]) == pytest.approx(float(torch.linalg.norm(E) / torch.linalg.norm(W_star)), rel=1e-9)


def test_the_stochastic_version_uses_its_generator_and_still_learns():
    _, A, B = _problem(16)
    a = P.train_linear_solver(A, B, loss="pcg", K=3, steps=30, batch=32, generator=5)
    b = P.train_linear_solver(A, B, loss="pcg", K=3, steps=30, batch=32, generator=5)
    c = P.train_linear_solver(A, B, loss="pcg", K=3, steps=30, batch=32, generator=6)
    assert torch.equal(a.error, b.error) and not torch.equal(a.error, c.error)
    assert float(a.error[-1]) < 0.1


def test_residual_loss_diverges_past_its_limit():
    _, A, B = _problem(16)
    r = P.train_linear_solver(A, B, loss="residual", lr=2.2 / P.lam_max(A) ** 2, steps=400)
    assert bool(r.diverged) and bool(torch.isfinite(r.error).all())
    ok = P.train_linear_solver(A, B, loss="residual", lr=1.9 / P.lam_max(A) ** 2, steps=400)
    assert not bool(ok.diverged)


def test_smooth_modes_carry_a_small_share_of_the_sources_and_most_of_the_solutions():
    """The printed shares of the squared norm in the 1 and 5 smoothest modes: 19 / 75 % and 50 / 95 %."""
    _, A, B = _problem()
    Ad = A.to_dense()
    _, U = torch.linalg.eigh(Ad)
    W_star = torch.linalg.solve(Ad, B)

    def share(k, M):
        return float((U[:, :k].T @ M).square().sum() / M.square().sum())

    assert share(1, B) == pytest.approx(0.19, abs=0.02) and share(1, W_star) == pytest.approx(0.75, abs=0.02)
    assert share(5, B) == pytest.approx(0.50, abs=0.02) and share(5, W_star) == pytest.approx(0.95, abs=0.02)


def test_residual_error_after_300_steps_grows_with_the_grid():
    """The explorer's frames at half the limit: about 0.90 at n = 16 and 0.98 at n = 32 after 300 steps."""
    e = {n: float(_trained("residual", steps=300, n=n).error[300]) for n in (16, 32)}
    assert e[16] == pytest.approx(0.90, abs=0.01) and e[32] == pytest.approx(0.98, abs=0.01)


def test_cg_target_stability_limit_is_lr_2():
    """K = 10, 150 steps on the 16 x 16 L-shape: lr 1.9 converges (top mode x 0.9 per step), lr 2.1 blows up."""
    _, A, B = _problem(16)
    ok = P.train_linear_solver(A, B, loss="pcg", K=10, lr=1.9, steps=150)
    bad = P.train_linear_solver(A, B, loss="pcg", K=10, lr=2.1, steps=150)
    assert not bool(ok.diverged) and float(ok.error[-1]) < 1e-5
    assert bool(bad.diverged) or float(bad.error[-1]) > 1e3


def test_cg_refuses_an_indefinite_matrix_but_not_a_converged_column():
    _, A, _ = _problem(8)
    with pytest.raises(ValueError, match="A: not positive definite"):
        P.cg(-A.to_dense(), torch.ones(A.shape[0], dtype=torch.float64), steps=3)
    two = 2.0 * torch.eye(3, dtype=torch.float64)  # exact after one step: later steps have p^T A p = 0
    x = P.cg(two, torch.ones(3, dtype=torch.float64), steps=4)
    assert torch.equal(x, torch.full((3,), 0.5, dtype=torch.float64))


def test_the_self_check_refuses_an_unguarded_cg():
    """Textbook CG without guards gives 0/0 once the residual is exactly zero; the check must catch it."""
    result = check.conjugate_gradients(lambda A, b, x0, steps: _cg(A, b, x0, steps, guard=False))
    assert result.status == "wrong" and "NaN" in result.message
    assert check.conjugate_gradients(_cg).status == "correct"


def test_the_self_check_does_not_pass_a_cg_that_stops_early():
    """A CG that stops once the residual is small is not `steps` iterations; the twelve-step case shows it."""
    result = check.conjugate_gradients(lambda A, b, x0, steps: _cg(A, b, x0, steps, stop_below=1e-6))
    assert result.status != "correct" and "twelve steps" in result.message and "early stop" in result.message


def test_zero_steps_returns_the_start():
    _, A, B = _problem(16)
    r = P.train_linear_solver(A, B, loss="pcg", steps=0)
    assert r.error.shape == (1,) and torch.equal(r.W, torch.zeros_like(B))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_claims_hold_for_other_bump_positions(seed):
    res = _trained("residual", seed=seed)
    assert float(res.error[1000]) > 0.9
    e = {K: float(_trained("pcg", K, steps=250, seed=seed).error[250]) for K in (1, 3, 10)}
    assert e[1] > e[3] >= e[10] - 1e-12 and e[10] < 0.01


# ---------------------------------------------------------------------------------------------- bad input

def test_bad_input_raises():
    _, A, B = _problem(16)
    with pytest.raises(ValueError, match="loss"):
        P.train_linear_solver(A, B, loss="pinn")
    with pytest.raises(ValueError, match="steps"):
        P.train_linear_solver(A, B, steps=-1)
    with pytest.raises(ValueError, match="steps"):
        P.cg(A, B, steps=-1)
    with pytest.raises(ValueError, match="preconditioner"):
        P.cg(A, B, steps=1, preconditioner="ilu")
    with pytest.raises(ValueError, match="A"):
        P.cg(A.to(torch.float32), B, steps=1)
    with pytest.raises(ValueError, match="b"):
        P.cg(A, B[:5], steps=1)
    with pytest.raises(ValueError, match="x0"):
        P.cg(A, B, x0=B[:, 0], steps=1)
    with pytest.raises(ValueError, match="n"):
        P.l_shape_mask(7)
    with pytest.raises(ValueError, match="mask"):
        P.poisson_matrix(torch.zeros(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="n_bumps"):
        P.bump_sources(P.l_shape_mask(4, device="cpu"), n_bumps=13)
    with pytest.raises(ValueError, match="method"):
        P.effective_hessian(A, K=2, method="chebyshev")
    with pytest.raises(ValueError, match="W"):
        P.mode_errors(A, B, B[:, :2])


# ---------------------------------------------------------------------------------------------- self-check

def _cg(A, b, x0, steps, *, beta=True, start=True, scale=1.0, guard=True, stop_below=None):
    """CG written out; ``beta=False``: steepest descent; ``start=False``: ignores x0; ``guard=False``: divides
    0 by 0 once the residual is exactly zero; ``stop_below``: stops early once r.r < stop_below * b.b."""
    x = x0.clone() if start else torch.zeros_like(b)
    r = b - A @ x
    p = r.clone()
    rr = r @ r
    for _ in range(steps):
        if stop_below is not None and rr < stop_below * (b @ b):
            break
        Ap = A @ p
        alpha = rr / (p @ Ap) if (rr > 0 or not guard) else 0.0
        x = x + alpha * p
        r = r - alpha * Ap
        rr_new = r @ r
        p = r + (rr_new / rr if (beta and (rr > 0 or not guard)) else 0.0) * p
        rr = rr_new
    return x * scale


_CG_EXPECTED = [v for A, b, x0, steps in check.CG_CASES.values() for v in P.cg(A, b, x0=x0, steps=steps).tolist()
                if v != 0]

CHECK_CASES = {
    "conjugate_gradients": Case(
        _cg, lambda A, b, x0, steps: _cg(A, b, x0, steps, scale=1.01),
        (lambda A, b, x0, steps: _cg(A, b, x0, steps, beta=False), lambda A, b, x0, steps: _cg(A, b, x0, steps + 1)),
        expected=_CG_EXPECTED, inputs=[4, 12, 0, 1, 3, 10, 2, -1], function=True,
        nan=lambda A, b, x0, steps: torch.full_like(b, float("nan")),
        rtol=1e-8, close_rtol=0.05,
        hints=((lambda A, b, x0, steps: _cg(A, b, x0, steps, beta=False), "steepest descent"),
               (lambda A, b, x0, steps: _cg(A, b, x0, steps + 1), "one iteration too many"),
               (lambda A, b, x0, steps: _cg(A, b, x0, max(steps - 1, 0)), "one iteration too few"),
               (lambda A, b, x0, steps: _cg(A, b, x0, steps, start=False), "does not depend on x0"))),
}

DIVERGENCE_CASES = {
    "poisson.train_linear_solver": (lambda m: P.train_linear_solver(
        _problem(8)[1], _problem(8)[2][:, :4], loss="residual", lr=m * 2 / P.lam_max(_problem(8)[1]) ** 2,
        steps=30), "diverges", ()),
    "poisson.train_linear_solver[pcg]": (lambda m: P.train_linear_solver(
        _problem(8)[1], _problem(8)[2][:, :4], loss="pcg", K=2, lr=m * 2.0, steps=30), "diverges", ()),
}
NOT_RUNNERS = {"poisson.cg": "a linear solver's iterations: no learning rate, it converges for every SPD matrix",
               "poisson.richardson": "a fixed-step linear solver used as a target; its step is set below 2/lambda_max"}


def _A8():
    return _problem(8)[1]


FUZZ_OPT_OUT = {"poisson.poisson_matrix": "returns a sparse CSR matrix, which the fuzz test's NaN probe of results "
                                      "cannot read; its one argument, a bool mask, is probed in test_bad_input_raises"}

FUZZ_SPECS = {
    "poisson.l_shape_mask": Spec(lambda: dict(n=8), skip="device"),  # device: a torch device, not a number
    "poisson.bump_sources": Spec(lambda: dict(mask=P.l_shape_mask(8, device="cpu"), n_bumps=3, width=2.0,
                                              generator=0), positive="width", skip="generator"),
    "poisson.cg": Spec(lambda: dict(A=_A8(), b=torch.ones(48, dtype=torch.float64), x0=None, steps=3,
                                    preconditioner=None), skip="x0 preconditioner"),  # None-able choices
    "poisson.richardson": Spec(lambda: dict(A=_A8(), b=torch.ones(48, dtype=torch.float64), x0=None, steps=3,
                                            omega=0.1), positive="omega", skip="x0"),
    "poisson.lam_max": Spec(lambda: dict(A=_A8())),
    "poisson.condition_number": Spec(lambda: dict(A=_A8())),
    "poisson.effective_hessian": Spec(lambda: dict(A=_A8(), K=2, method="richardson")),
    "poisson.default_lr": Spec(lambda: dict(A=_A8(), loss="residual")),
    "poisson.train_linear_solver": Spec(lambda: dict(A=_A8(), B=_problem(8)[2][:, :2], loss="pcg", K=2, steps=3,
                                                     lr=0.5, solver="cg", preconditioner=None, batch=None,
                                                     generator=0),
                                        positive="lr", skip="preconditioner batch generator"),
    "poisson.mode_errors": Spec(lambda: dict(A=_A8(), B=_problem(8)[2][:, :2], W=torch.zeros(48, 2,
                                                                                              dtype=torch.float64))),
    "check.poisson.conjugate_gradients": Spec(lambda: dict(fn=_cg), skip="fn"),
}
