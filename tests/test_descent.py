"""Gradient descent on any loss (lessons_lib.descent) and its Trajectory record."""

import math

import pytest
import torch
from conftest import random_spd
from hypothesis import given, settings
from hypothesis import strategies as st

from lessons_lib import backend, descent

F64 = torch.float64


def rosenbrock(x):
    return (1 - x[0]) ** 2 + 10 * (x[1] - x[0] ** 2) ** 2


@pytest.mark.parametrize("loss,x0,lr", [
    (rosenbrock, [-1.2, 1.0], 0.01),
    (lambda x: torch.log(torch.cosh(x)).sum() + 0.1 * (x**4).sum(), [2.0, -1.0, 0.5], 0.3),
    (lambda x: torch.logsumexp(x, 0) + 0.5 * (x**2).sum(), [0.3, -0.7], 0.5),
])
def test_each_step_is_x_minus_lr_times_the_autograd_gradient(loss, x0, lr):
    traj = descent.gd(loss, x0, lr=lr, steps=30)
    assert traj.params.shape == (31, len(x0)) and traj.loss.shape == (31,) and traj.steps == 30
    for k in range(30):
        x = traj.params[k].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(loss(x), x)
        assert torch.allclose(traj.params[k + 1], x.detach() - lr * g, rtol=1e-12, atol=1e-14)
        assert float(traj.loss[k]) == pytest.approx(float(loss(traj.params[k])), rel=1e-13)
    assert traj.lr == lr and not traj.diverged and traj.diverged_at is None


@settings(max_examples=30, deadline=None)
@given(st.floats(0.0, 1.95), st.lists(st.floats(-3, 3), min_size=1, max_size=4), st.floats(-2, 2))
def test_gd_on_a_shifted_isotropic_quadratic_is_the_closed_form(lr, x0, b):
    # f(x) = ||x - b||^2 / 2: x_k = b + (1 - lr)^k (x0 - b)
    x0 = torch.tensor(x0, dtype=F64)
    traj = descent.gd(lambda x: 0.5 * ((x - b) ** 2).sum(), x0, lr=lr, steps=20)
    k = torch.arange(21, dtype=F64)[:, None]
    assert torch.allclose(traj.params, b + (1 - lr) ** k * (x0 - b), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gd_on_a_random_quadratic_follows_the_eigenbasis(seed):
    H = random_spd(5, seed, shift=0.1)
    lam, V = torch.linalg.eigh(H)
    x0 = torch.randn(5, dtype=F64, generator=torch.Generator().manual_seed(seed))
    lr = 1.5 / float(lam[-1])
    traj = descent.gd(lambda x: 0.5 * x @ H @ x, x0, lr=lr, steps=40)
    k = torch.arange(41, dtype=F64)[:, None]
    assert torch.allclose(traj.params @ V, (V.T @ x0) * (1 - lr * lam) ** k, atol=1e-12)


def test_divergence_by_hand_on_a_quartic():
    # f = x^4 / 4 from x0 = 2 at lr 1: x1 = 2 - 8 = -6, x2 = -6 + 216 = 210, x3 = 210 - 210^3 outside 1e6 * 2
    traj = descent.gd(lambda x: (x**4).sum() / 4, [2.0], lr=1.0, steps=100)
    assert traj.diverged and traj.diverged_at == 3 == traj.steps
    assert traj.params[:, 0].tolist() == [2.0, -6.0, 210.0, 210.0 - 210.0**3]  # ends at the first state outside
    assert bool(torch.isfinite(traj.loss).all())


def test_a_nan_gradient_ends_the_run_at_the_last_finite_iterate():
    # sqrt(x) has a NaN gradient once x < 0: from x0 = 1 at lr 4, x1 = 1 - 4 / 2 = -1, then NaN
    traj = descent.gd(lambda x: torch.sqrt(x).sum(), [1.0], lr=4.0, steps=10)
    assert traj.diverged and traj.diverged_at == 2
    assert traj.params[:, 0].tolist() == [1.0, -1.0, -1.0]  # frozen: the NaN state is never stored
    assert bool(torch.isfinite(traj.params).all())


def test_zero_lr_and_zero_steps():
    still = descent.gd(rosenbrock, [0.5, 0.5], lr=0.0, steps=4)
    assert bool((still.params == torch.tensor([0.5, 0.5], dtype=F64)).all()) and still.steps == 4
    none = descent.gd(rosenbrock, [0.5, 0.5], lr=0.1, steps=0)
    assert none.params.shape == (1, 2) and none.loss.shape == (1,)


def test_iterate_runs_any_step_and_stops_at_blowup():
    traj = descent.iterate(lambda x: 3 * x, lambda x: x.sum(), torch.ones(2, dtype=F64), lr=0.5, steps=50,
                           blowup=100.0)
    # ||x_k|| = 3^k sqrt 2 > 100 sqrt 2 first at k = 5 (243)
    assert traj.diverged and traj.diverged_at == 5 and traj.params[-1].tolist() == [243.0, 243.0]
    assert traj.lr == 0.5


def test_trajectory_is_a_record_moved_to_the_host(monkeypatch):
    moved = []
    real = backend.to_host
    monkeypatch.setattr(backend, "to_host", lambda rec: (moved.append(type(rec)), real(rec)))
    traj = descent.gd(rosenbrock, [0.0, 0.0], lr=0.01, steps=3)
    assert isinstance(traj, backend.Record) and descent.Trajectory in moved
    assert traj.params.device.type == "cpu" and traj.loss.device.type == "cpu"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gd_on_the_gpu_returns_a_host_trajectory():
    x0 = torch.tensor([-1.2, 1.0], dtype=F64, device="cuda")
    traj = descent.gd(rosenbrock, x0, lr=0.01, steps=5)
    ref = descent.gd(rosenbrock, x0.cpu(), lr=0.01, steps=5)
    assert traj.params.device.type == "cpu" and torch.allclose(traj.params, ref.params, atol=1e-12)


@pytest.mark.parametrize("call,name", [
    (lambda: descent.gd(rosenbrock, [0.0, 0.0], lr=-0.1, steps=3), "lr"),
    (lambda: descent.gd(rosenbrock, [0.0, 0.0], lr=math.nan, steps=3), "lr"),
    (lambda: descent.gd(None, [0.0, 0.0], lr=0.1, steps=3), "loss_fn"),
    (lambda: descent.gd(rosenbrock, [[0.0, 0.0]], lr=0.1, steps=3), "x0"),
    (lambda: descent.gd(rosenbrock, [0.0, math.inf], lr=0.1, steps=3), "x0"),
    (lambda: descent.gd(rosenbrock, [0.0, 0.0], lr=0.1, steps=-2), "steps"),
    (lambda: descent.gd(rosenbrock, [0.0, 0.0], lr=0.1, steps=3, blowup=0.0), "blowup"),
])
def test_bad_input_names_the_argument(call, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        call()


def test_iterate_validates_a_numeric_lr_label():
    step = lambda x: 0.5 * x  # noqa: E731
    with pytest.raises(ValueError, match="^lr:"):
        descent.iterate(step, lambda x: (x**2).sum(), torch.ones(2, dtype=torch.float64), lr=-0.5, steps=3)
    assert math.isnan(descent.iterate(step, lambda x: (x**2).sum(), torch.ones(2, dtype=torch.float64),
                                      lr=float("nan"), steps=3).lr)  # NaN labels a varying rate


@pytest.mark.parametrize("factor, diverged", [(1.005e6, True), (0.995e6, False)])
def test_the_default_blowup_radius_is_a_million_times_the_start(factor, diverged):
    """One step of GD on x^2 / 2 multiplies x by 1 - lr; a step just past or just inside 1e6 * |x0| tells the
    default radius apart from a slightly different one."""
    lr = 1.0 + factor  # |1 - lr| = factor
    loss = lambda x: 0.5 * (x**2).sum()  # noqa: E731
    assert descent.gd(loss, [1.0], lr=lr, steps=1).diverged is diverged
    assert descent.iterate(lambda x: (1 - lr) * x, loss, torch.ones(1, dtype=F64), lr=lr, steps=1).diverged is diverged


def test_adam_direction_matches_torch_adam_step_by_step():
    w = torch.randn(6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ref = w.clone().requires_grad_()
    opt = torch.optim.Adam([ref], lr=0.03, betas=(0.8, 0.99), eps=1e-6)
    m, v = torch.zeros(6, dtype=torch.float64), torch.zeros(6, dtype=torch.float64)
    for t in range(1, 21):
        p, m, v = descent.adam_direction(torch.cos(w) + w, m, v, t, betas=(0.8, 0.99), eps=1e-6)
        w = w - 0.03 * p
        opt.zero_grad()
        (torch.sin(ref) + ref ** 2 / 2).sum().backward()
        opt.step()
    assert torch.allclose(w, ref.detach(), atol=1e-14)


def test_adam_direction_first_step_is_the_gradient_sign():
    g = torch.tensor([3.0, -0.01, 0.0], dtype=torch.float64)
    p, m, v = descent.adam_direction(g, torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64), 1,
                                     eps=1e-12)
    assert torch.allclose(p, torch.tensor([1.0, -1.0, 0.0], dtype=torch.float64), atol=1e-9)


@pytest.mark.parametrize("kwargs, name", [(dict(t=0), "t"), (dict(t=True), "t"), (dict(betas=(1.0, 0.9)), "betas"),
                                          (dict(eps=0.0), "eps")])
def test_bad_adam_direction_names_the_argument(kwargs, name):
    z = torch.zeros(2)
    with pytest.raises(ValueError, match=name):
        descent.adam_direction(z, z, z, **{"t": 1, **kwargs})
