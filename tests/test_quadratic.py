import math

import numpy as np
import pytest
import torch
from conftest import random_spd
from hypothesis import given, settings
from hypothesis import strategies as st

from lessons_lib import descent, quadratic


@settings(max_examples=40, deadline=None)
@given(st.floats(0.05, 10), st.floats(0, 2.5), st.floats(-5, 5))
def test_scalar_iterates_are_the_closed_form(a, lr_times_a, x0):
    lr = lr_times_a / a
    traj = quadratic.gd_scalar(a, x0, lr=lr, steps=15, blowup=1e300)
    k = torch.arange(16, dtype=torch.float64)
    expected = x0 * (1 - lr * a) ** k
    assert torch.allclose(traj.params[:, 0], expected, rtol=1e-10, atol=1e-12)
    assert torch.allclose(traj.loss, 0.5 * a * expected**2, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gd_quadratic_is_independent_per_eigendirection(seed):
    H = random_spd(6, seed, shift=0.1)
    lam, V = torch.linalg.eigh(H)
    x0 = torch.randn(6, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    lr = 0.9 * quadratic.critical_lr(H)
    traj = quadratic.gd_quadratic(H, x0, lr=lr, steps=30)
    k = torch.arange(31, dtype=torch.float64)[:, None]
    expected = (V.T @ x0) * (1 - lr * lam) ** k
    assert torch.allclose(traj.params @ V, expected, atol=1e-11)


def test_generic_gd_agrees_with_quadratic_runner():
    H = random_spd(4, 5, shift=0.2)
    x0 = torch.ones(4, dtype=torch.float64)
    a = descent.gd(quadratic.quadratic_loss(H), x0, lr=0.3, steps=20)
    b = quadratic.gd_quadratic(H, x0, lr=0.3, steps=20)
    assert torch.allclose(a.params, b.params, atol=1e-13)
    assert torch.allclose(a.loss, b.loss, atol=1e-13)


@pytest.mark.parametrize(
    "lr,a,expected",
    [(0.25, 2, "monotone"), (0.5, 2, "one-step"), (0.8, 2, "oscillating"), (1.0, 2, "two-cycle"),
     (1.08, 2, "divergent"), (0.0, 2, "flat"), (0.3, 0.0, "flat"), (0.1, -1.0, "divergent"),
     (2 / 3, 3.0, "two-cycle")],
)
def test_regime(lr, a, expected):
    assert quadratic.regime(lr, a) == expected


@pytest.mark.parametrize("lr", [0.3, 0.7, 0.99])
def test_stability_boundary_is_two_over_lambda_max(lr):
    H = random_spd(5, 1, shift=0.1)
    lam_max = float(torch.linalg.eigvalsh(H)[-1])
    eta_c = quadratic.critical_lr(H)
    assert eta_c == pytest.approx(2 / lam_max)
    x0 = torch.ones(5, dtype=torch.float64)
    stable = quadratic.gd_quadratic(H, x0, lr=lr * eta_c, steps=4000)
    unstable = quadratic.gd_quadratic(H, x0, lr=(2 - lr) * eta_c * 1.02, steps=4000, blowup=1e6)
    assert not stable.diverged and float(stable.params[-1].norm()) < 1e-3 * float(x0.norm())
    assert unstable.diverged


def test_two_cycle_bounces_forever():
    traj = quadratic.gd_scalar(4.0, 1.5, lr=0.5, steps=101)
    assert not traj.diverged
    assert torch.equal(traj.params[::2, 0], torch.full((51,), 1.5, dtype=torch.float64))
    assert torch.equal(traj.params[1::2, 0], torch.full((51,), -1.5, dtype=torch.float64))


def test_divergence_is_data_not_nan():
    traj = quadratic.gd_scalar(2.0, 1.0, lr=2.0, steps=10_000, blowup=1e6)
    assert traj.diverged
    # |1 - 4|^k > 1e6  first at k = 13
    assert traj.diverged_at == math.ceil(math.log(1e6) / math.log(3)) == traj.steps
    assert bool(torch.isfinite(traj.params).all()) and bool(torch.isfinite(traj.loss).all())


def test_batched_runs_follow_the_closed_form_and_diverge_one_by_one():
    H = torch.diag(torch.tensor([1.0, 3.0], dtype=torch.float64))
    x0 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, -1.0]], dtype=torch.float64)
    lr = 0.9  # factors 1 - 0.9 = 0.1 and 1 - 2.7 = -1.7: the runs with a sharp component diverge
    traj = quadratic.gd_quadratic(H, x0, lr=lr, steps=40, blowup=100.0)
    assert traj.params.shape == (41, 3, 2) and traj.loss.shape == (41, 3)
    # |x_k| = 1.7^k crosses 100 * max(1, ||x0||) at k = 9 from (0, 1); from (2, -1) at k = 11
    # (1.7^10 = 202 < 100 sqrt 5 = 224 < 1.7^11 = 343)
    assert traj.diverged.tolist() == [False, True, True] and traj.diverged_at.tolist() == [-1, 9, 11]
    k = torch.arange(41, dtype=torch.float64)[:, None]
    assert torch.allclose(traj.params[:, 0], torch.tensor([1.0, 0.0], dtype=torch.float64) * 0.1**k)
    assert torch.allclose(traj.params[:10, 1, 1], (-1.7) ** k[:10, 0])
    assert bool((traj.params[9:, 1] == traj.params[9, 1]).all())  # frozen where it left the ball
    assert torch.allclose(traj.loss, 0.5 * (traj.params**2 * torch.tensor([1.0, 3.0], dtype=torch.float64)).sum(-1))
    # each row is the unbatched run, up to its divergence
    for r in range(3):
        one = quadratic.gd_quadratic(H, x0[r], lr=lr, steps=40, blowup=100.0)
        assert torch.allclose(one.params, traj.params[: one.params.shape[0], r], rtol=1e-14, atol=0)


def test_optimal_lr_and_rate():
    H = quadratic.rotated_hessian([1.0, 100.0], angle=0.4)
    assert quadratic.optimal_lr(H) == pytest.approx(2 / 101)
    assert quadratic.convergence_rate(H, lr=2 / 101) == pytest.approx(99 / 101)
    # any other lr is worse
    for lr in np.linspace(0.001, 0.0199, 25):
        assert quadratic.convergence_rate(H, lr=float(lr)) >= 99 / 101 - 1e-12
    assert torch.allclose(torch.linalg.eigvalsh(H), torch.tensor([1.0, 100.0], dtype=torch.float64))


def test_regime_and_steps_to_tolerance_refuse_values_that_gave_confident_wrong_answers():
    # regime(0.1, 2.0, rtol=inf) answered "one-step" and steps_to_tolerance(0.1, nan) answered 0
    with pytest.raises(ValueError, match="^rtol:"):
        quadratic.regime(0.1, 2.0, rtol=float("inf"))
    with pytest.raises(ValueError, match="^rtol:"):
        quadratic.regime(0.1, 2.0, rtol=0.6)  # wide enough to call lr*a = 0.2 "one-step"
    assert quadratic.regime(0.1, 2.0, rtol=1e-3) == "monotone"
    with pytest.raises(ValueError, match="^a:"):
        quadratic.steps_to_tolerance(0.1, float("nan"))
    with pytest.raises(ValueError, match="^tol:"):
        quadratic.steps_to_tolerance(0.1, 2.0, tol=1.5)
    for bad in (True, "2.0", 2 + 0j):
        with pytest.raises(ValueError, match="^a:"):
            quadratic.regime(0.1, bad)


def test_steps_to_tolerance():
    assert quadratic.steps_to_tolerance(0.25, 2.0, tol=1e-3) == pytest.approx(math.log(1e-3) / math.log(0.5))
    assert quadratic.steps_to_tolerance(0.5, 2.0) == 1.0
    assert quadratic.steps_to_tolerance(1.0, 2.0) == math.inf


def test_zero_steps_and_zero_lr():
    traj = quadratic.gd_scalar(1.0, 2.0, lr=0.0, steps=0)
    assert traj.params.shape == (1, 1) and traj.steps == 0
    still = quadratic.gd_scalar(1.0, 2.0, lr=0.0, steps=5)
    assert torch.equal(still.params[:, 0], torch.full((6,), 2.0, dtype=torch.float64))


def test_bad_input_names_the_argument():
    H = torch.eye(2, dtype=torch.float64)
    with pytest.raises(ValueError, match="lr"):
        quadratic.gd_quadratic(H, [1.0, 1.0], lr=-0.1, steps=3)
    with pytest.raises(ValueError, match="H: expected a non-empty square"):
        quadratic.gd_quadratic(torch.ones(2, 3), [1.0, 1.0], lr=0.1, steps=3)
    with pytest.raises(ValueError, match="H: must be symmetric"):
        quadratic.gd_quadratic([[1.0, 2.0], [0.0, 1.0]], [1.0, 1.0], lr=0.1, steps=3)
    with pytest.raises(ValueError, match="x0"):
        quadratic.gd_quadratic(H, [1.0, 1.0, 1.0], lr=0.1, steps=3)
    with pytest.raises(ValueError, match="steps"):
        quadratic.gd_quadratic(H, [1.0, 1.0], lr=0.1, steps=-1)
    with pytest.raises(ValueError, match="H"):
        quadratic.critical_lr(-H)
    with pytest.raises(ValueError, match="H"):
        quadratic.optimal_lr(torch.diag(torch.tensor([0.0, 1.0])))
    with pytest.raises(ValueError, match="a:"):
        quadratic.regime(0.1, float("nan"))
    with pytest.raises(ValueError, match="eigenvalues"):
        quadratic.rotated_hessian([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="loss_fn"):
        descent.gd(None, [1.0], lr=0.1, steps=2)
    with pytest.raises(ValueError, match="x0"):
        descent.gd(lambda x: (x**2).sum(), [[1.0]], lr=0.1, steps=2)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gd_follows_the_device_of_its_inputs():
    H = torch.eye(3, dtype=torch.float64, device="cuda")
    traj = quadratic.gd_quadratic(H, torch.ones(3, dtype=torch.float64, device="cuda"), lr=0.5, steps=3)
    # the run happens on the inputs' device; the record comes back on the host, ready to plot
    assert traj.params.device.type == "cpu"
    assert torch.allclose(traj.params[-1], torch.full((3,), 0.5**3, dtype=torch.float64))
    plain = quadratic.gd_scalar(2.0, 1.0, lr=0.1, steps=3)  # python numbers: computed on default_device()
    assert plain.params.device.type == "cpu" and torch.allclose(plain.params[:, 0], 0.8 ** torch.arange(4.0).double())


# --- self-check cases (collected by tests/test_course.py) ---

from checkcases import Case, leaks  # noqa: E402

from lessons_lib import check  # noqa: E402


def _gd_iterates(a, x0, lr, steps, *, sign=-1.0, scale=1.0):
    """The GD iterates on a x^2 / 2, written out (``sign=1`` climbs instead, ``scale`` misses by a factor)."""
    xs = [x0]
    for _ in range(steps):
        xs.append(xs[-1] + sign * lr * a * xs[-1])
    return [x * scale for x in xs]


CHECK_CASES = {
    "critical_lr": Case(0.5, 0.505, (0.3, 0.7), expected=[0.5], inputs=[4.0], args=dict(a=4.0),
                        hints=((0.3, "1 - lr*a = -0.2, so GD still converges"),
                               (0.7, "1 - lr*a = -1.8, so GD diverges"))),
    "gd_iterates": Case(_gd_iterates, lambda **k: _gd_iterates(**k, scale=1.002),
                        (lambda **k: _gd_iterates(**k, sign=1.0), lambda **k: _gd_iterates(**k)[1:]),
                        expected=[0.5 * 0.7**k for k in range(1, 6)], inputs=[1.0, 0.5, 0.3, 5],
                        args=dict(cases=[dict(a=1.0, x0=0.5, lr=0.3, steps=5)]), function=True,
                        nan=lambda **k: [float("nan")] * (k["steps"] + 1),
                        hints=((lambda **k: _gd_iterates(**k)[1:], "return steps + 1 = 6 values"),
                               (lambda **k: [0.0] + _gd_iterates(**k)[1:], "the first entry"),
                               (lambda **k: _gd_iterates(**k, sign=1.0), "multiplies x by 1.3;"))),
}


def test_gd_iterates_check_runs_a_contracting_an_oscillating_and_a_two_cycle_case_by_default():
    calls = []

    def spy(a, x0, lr, steps):
        calls.append((a, x0, lr, steps))
        return _gd_iterates(a, x0, lr, steps)

    assert check.gd_iterates(spy).status == "correct"
    assert calls == [(1.0, 1.0, 0.5, 5), (3.0, -2.0, 0.6, 7), (0.5, 0.3, 4.0, 6)]  # the docstring's three runs
    assert [1 - lr * a for a, _, lr, _ in calls] == pytest.approx([0.5, -0.8, -1.0])


@pytest.mark.parametrize("a", [0.5, 4.0, 10.0])
def test_critical_lr_check_hints_from_the_learners_lr(a):
    right = 2 / a
    case = Case(right, None, (), expected=[right], inputs=[a])
    for value, status in [(right, "correct"), (right * 1.01, "close"), (right * 0.5, "wrong"),
                          (right * 1.5, "wrong"), (None, "not attempted")]:
        res = check.critical_lr(value, a=a)
        assert res.status == status
        assert not leaks(res, case, value)
    assert "still converges" in check.critical_lr(right * 0.5, a=a).message
    assert "diverges" in check.critical_lr(right * 1.5, a=a).message


def test_gd_iterates_check_accepts_lists_tensors_and_arrays_and_says_what_is_off():
    assert check.gd_iterates(_gd_iterates).status == "correct"
    assert check.gd_iterates(lambda **k: torch.tensor(_gd_iterates(**k))).status == "correct"
    assert check.gd_iterates(lambda **k: np.array(_gd_iterates(**k))).status == "correct"
    r = check.gd_iterates(lambda **k: _gd_iterates(**k)[1:])
    assert r.status == "wrong" and "steps + 1" in r.message
    r = check.gd_iterates(lambda **k: _gd_iterates(**k, sign=1.0))
    assert r.status == "wrong" and "multiplies x by 1.5" in r.message
    r = check.gd_iterates(lambda a, x0, lr, steps: 1 / 0)
    assert r.status == "wrong" and "ZeroDivisionError" in r.message


@pytest.mark.parametrize("factor, diverged", [(1.005e6, True), (0.995e6, False)])
def test_gd_quadratic_default_blowup_radius_is_a_million_times_the_start(factor, diverged):
    H = torch.eye(2, dtype=torch.float64)
    run = quadratic.gd_quadratic(H, [1.0, 0.0], lr=1.0 + factor, steps=1)  # one step multiplies x by -factor
    assert bool(run.diverged) is diverged


# --- the Hessian-vector product and power-iteration checks (cases on the check's own hidden losses) ---

from lessons_lib import curvature  # noqa: E402
from lessons_lib.check.quadratic import _hidden_losses  # noqa: E402


def _hvp(loss_fn, x, v, *, scale=1.0, differentiate_twice=True):
    """H v by double backprop (``differentiate_twice=False`` returns the gradient, ``scale`` misses by a factor)."""
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss_fn(x), x, create_graph=differentiate_twice)
    if not differentiate_twice:
        return g
    (hv,) = torch.autograd.grad(g @ v, x)
    return scale * hv


def _power(loss_fn, x, v0, iters, *, square=False, scale=1.0):
    """Power iteration on H v (``square=True`` returns |H v|^2, ``iters`` = 0 the start's Rayleigh quotient)."""
    v = v0 / v0.norm()
    for _ in range(iters):
        hv = _hvp(loss_fn, x, v)
        v = hv / hv.norm()
    hv = _hvp(loss_fn, x, v)
    return scale * float(hv @ hv if square else v @ hv)


_TOPS = [float(torch.linalg.eigvalsh(curvature.hessian(f, x))[-1]) for f, x in _hidden_losses().values()]
_HVS = [v for f, x in _hidden_losses().values()
        for v in curvature.hvp(f, x, torch.ones_like(x)).tolist()]  # not the check's v, but the same Hessians

CHECK_CASES.update({
    "hvp": Case(_hvp, lambda *a: _hvp(*a, scale=1.0005),
                (lambda *a: _hvp(*a, differentiate_twice=False), lambda *a: float(_hvp(*a) @ a[2])),
                expected=_TOPS + _HVS, function=True, close_rtol=1e-3, nan=lambda *a: torch.full_like(a[1], math.nan),
                hints=((lambda *a: _hvp(*a, differentiate_twice=False), "you returned the gradient"),
                       (lambda *a: float(_hvp(*a, differentiate_twice=False) @ a[2]), "a single number"),
                       (lambda *a: _hvp(*a, scale=2.0), "must return H @ v at every x"))),
    "power_sharpness": Case(_power, lambda *a: _power(*a, scale=1.0005),
                            (lambda f, x, v0, it: _power(f, x, v0, 0), lambda *a: _power(*a, square=True)),
                            expected=_TOPS, function=True, close_rtol=1e-3, nan=lambda *a: math.nan,
                            hints=((lambda f, x, v0, it: _power(f, x, v0, 0), "Rayleigh quotient v0 . H v0"),
                                   (lambda *a: _power(*a, square=True), "the square of an eigenvalue"),
                                   (lambda f, x, v0, it: _power(f, x, v0, 3), "is not the top eigenvalue"))),
})


def _hvp_central_difference(loss_fn, x, v, h=1e-5):
    def grad(y):
        y = y.detach().clone().requires_grad_(True)
        return torch.autograd.grad(loss_fn(y), y)[0]
    return (grad(x + h * v) - grad(x - h * v)) / (2 * h)


def _hvp_without_graph(loss_fn, x, v):
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss_fn(x), x)  # the graph of g is not kept, so g . v cannot be differentiated
    return torch.autograd.grad(g @ v, x)[0]


def test_hvp_check_tells_a_finite_difference_and_a_lost_graph_apart_from_autograd():
    assert check.hvp(_hvp).status == "correct"
    for h in (1e-4, 1e-5, 3e-6, 1e-6, 1e-7):  # no step makes a finite difference pass for autograd
        fd = check.hvp(lambda f, x, v, h=h: _hvp_central_difference(f, x, v, h=h))
        assert fd.status != "correct", h
    fd = check.hvp(_hvp_central_difference)
    assert fd.status == "close" and "finite difference" in fd.message
    lost = check.hvp(_hvp_without_graph)
    assert lost.status == "wrong" and "lost its link to x" in lost.message
    assert "create_graph" not in lost.message.split("raised")[0]


def test_power_sharpness_check_runs_sixty_steps_on_losses_with_a_gap():
    # the check's claim that 60 power steps pin lambda_max far below its 1e-6 tolerance: top two
    # eigenvalues of each hidden loss with a ratio whose 120th power is below 1e-12
    for loss_fn, x in _hidden_losses().values():
        lam = torch.linalg.eigvalsh(curvature.hessian(loss_fn, x)).abs().sort(descending=True).values
        assert float(lam[1] / lam[0]) ** 120 < 1e-12
    seen = []
    check.power_sharpness(lambda f, x, v0, iters: seen.append(iters) or _power(f, x, v0, iters))
    assert seen == [60, 60]
