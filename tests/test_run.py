"""The one training loop (lessons_lib.run): its recording, learning rates and divergence contract."""

import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lessons_lib import backend, schedules
from lessons_lib import run as R

F64 = torch.float64


def gd_step(a):
    """GD on f(x) = a x^2 / 2, per-run rates broadcast with run.per_run."""
    return lambda x, t, lr: x - R.per_run(lr, x) * a * x


def scalar(x0):
    return torch.tensor([float(x0)], dtype=F64)


# --- oracle: GD on a quadratic is x_k = (1 - lr a)^k x0 ----------------------------------------------

@settings(max_examples=40, deadline=None)
@given(st.floats(0.05, 10), st.floats(0, 1.99), st.floats(-5, 5))
def test_gd_on_a_quadratic_is_the_closed_form(a, lr_times_a, x0):
    lr = lr_times_a / a
    out = R.run(gd_step(a), scalar(x0), steps=25, lr=lr)
    k = torch.arange(26, dtype=F64)
    assert torch.equal(out.steps, torch.arange(26))
    assert torch.allclose(out.history["params"][:, 0], x0 * (1 - lr * a) ** k, rtol=1e-10, atol=1e-12)
    assert not bool(out.diverged) and int(out.diverged_at) == -1 and out.diverged_step is None


def test_batched_per_run_rates_follow_their_own_closed_form():
    a, lrs = 2.0, [0.1, 0.5, 0.9]  # q = 0.8, 0, -0.8
    x0 = torch.tensor([[1.0, -2.0], [3.0, 1.0], [-1.0, 0.5]], dtype=F64)
    out = R.run(gd_step(a), x0, steps=12, lr=lrs, batched=True)
    q = 1 - torch.tensor(lrs, dtype=F64) * a
    expected = q[None, :, None] ** torch.arange(13, dtype=F64)[:, None, None] * x0
    assert torch.allclose(out.history["params"], expected, atol=1e-14)
    assert out.lr.shape == (12, 3) and torch.equal(out.lr[0], torch.tensor(lrs, dtype=F64))
    assert out.diverged.shape == (3,) and not bool(out.diverged.any())


# --- recording ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("steps,every,expected", [
    (10, 3, [0, 3, 6, 9, 10]),  # every 3rd step and the last one
    (9, 3, [0, 3, 6, 9]),  # the last step is not recorded twice
    (5, 1, [0, 1, 2, 3, 4, 5]),
    (4, 100, [0, 4]),
    (0, 1, [0]),  # no step: only the start
])
def test_records_at_zero_every_k_and_the_last_step(steps, every, expected):
    seen = []

    def record(x, t):
        seen.append(t)
        return {"x": x.clone(), "t": torch.tensor(t)}

    out = R.run(lambda x, t, lr: x + 1, torch.zeros(1, dtype=F64), steps=steps, record=record, record_every=every)
    assert out.steps.tolist() == expected == seen
    assert out.history["t"].tolist() == expected
    assert out.history["x"][:, 0].tolist() == [float(t) for t in expected]  # x_t = t: the state at that step
    assert out.lr.shape == (steps,)


def test_records_the_step_at_which_the_last_run_diverged():
    # x_k = 2^k crosses 100 at k = 7, between the recording steps 6 and 9
    out = R.run(lambda x, t, lr: 2 * x, torch.ones(1, dtype=F64), steps=50, blowup=100.0, record_every=3)
    assert out.steps.tolist() == [0, 3, 6, 7]
    assert out.history["params"][-1, 0] == 128.0


def test_default_record_is_the_state_and_a_tuple_state_records_what_it_is_told():
    out = R.run(lambda s, t, lr: (s[0] + 1, s[1] * 2), (torch.zeros(2), torch.ones(1)), steps=3,
                record=lambda s, t: {"a": s[0], "b": s[1]})
    assert out.history["a"].shape == (4, 2) and out.history["b"][:, 0].tolist() == [1, 2, 4, 8]
    assert isinstance(out.state, tuple) and out.state[1].item() == 8
    plain = R.run(lambda x, t, lr: x + 1, torch.zeros(3), steps=2)
    assert list(plain.history) == ["params"] and plain.history["params"][-1].tolist() == [2, 2, 2]


# --- learning rates ----------------------------------------------------------------------------------

def test_step_t_uses_the_schedule_at_t():
    sched = schedules.warmup_schedule(0.4, warmup=4)  # 0.1, 0.2, 0.3, 0.4, 0.4, ...
    used = []

    def step(x, t, lr):
        assert isinstance(lr, torch.Tensor) and lr.ndim == 0
        used.append((t, float(lr)))
        return x - lr * x

    out = R.run(step, torch.ones(1, dtype=F64), steps=7, lr=sched)
    assert [t for t, _ in used] == list(range(7))
    assert [v for _, v in used] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.4, 0.4, 0.4])
    assert torch.allclose(out.lr, sched(torch.arange(7)).double())
    expected = math.prod(1 - v for _, v in used)
    assert float(out.state) == pytest.approx(expected, rel=1e-14)


def test_a_constant_rate_reaches_the_step_as_a_float_and_per_run_rates_as_a_vector():
    kinds = []

    def step(x, t, lr):
        kinds.append(lr)
        return x

    R.run(step, torch.ones(1), steps=1, lr=0.3)
    R.run(step, torch.ones(3, 1), steps=1, lr=[0.1, 0.2, 0.3], batched=True)
    R.run(step, torch.ones(1), steps=1, lr=torch.tensor(0.3))  # a 0-d tensor is a constant
    assert kinds[0] == 0.3 and isinstance(kinds[0], float)
    assert kinds[1].shape == (3,) and kinds[1].tolist() == pytest.approx([0.1, 0.2, 0.3])
    assert kinds[2].ndim == 0 and float(kinds[2]) == pytest.approx(0.3)


def test_batched_schedule_may_give_one_rate_per_run():
    sched = lambda t: torch.stack([0.1 * torch.ones_like(t, dtype=F64), 0.2 * (t + 1).double()], dim=1)  # noqa: E731
    out = R.run(lambda x, t, lr: x - R.per_run(lr, x) * x, torch.ones(2, 1, dtype=F64), steps=3, lr=sched,
                batched=True)
    assert torch.allclose(out.state[:, 0], torch.tensor([0.9**3, 0.8 * 0.6 * 0.4], dtype=F64))


# --- divergence: one meaning -------------------------------------------------------------------------

def test_diverged_at_by_hand_and_frozen_at_the_first_state_outside_the_ball():
    # q = 1 - 3 * 1 = -2 from x0 = 1, radius 100: |x_6| = 64 <= 100 < |x_7| = 128
    out = R.run(gd_step(1.0), scalar(1.0), steps=1000, lr=3.0, blowup=100.0)
    assert bool(out.diverged) and int(out.diverged_at) == 7 == out.diverged_step
    assert out.history["params"][:, 0].tolist() == [(-2.0) ** k for k in range(8)]
    assert float(out.state) == -128.0  # finite, so the run keeps it
    # the radius is relative to max(1, ||x0||): from x0 = 10 the same run crosses 1000 at |x| = 1280
    far = R.run(gd_step(1.0), scalar(10.0), steps=1000, lr=3.0, blowup=100.0)
    assert int(far.diverged_at) == 7 and float(far.state) == -1280.0
    small = R.run(gd_step(1.0), scalar(0.01), steps=1000, lr=3.0, blowup=100.0)  # radius 100, not 1
    assert int(small.diverged_at) == 14 and float(small.state) == pytest.approx(0.01 * 2**14)


def test_one_run_diverges_and_is_frozen_while_the_others_continue():
    x0 = torch.ones(3, 1, dtype=F64)
    out = R.run(gd_step(1.0), x0, steps=20, lr=[0.5, 1.5, 3.0], blowup=100.0, batched=True)
    p = out.history["params"][:, :, 0]
    assert out.diverged.tolist() == [False, False, True] and out.diverged_at.tolist() == [-1, -1, 7]
    assert out.steps[-1] == 20  # the loop ran on for the two stable runs
    k = torch.arange(21, dtype=F64)
    assert torch.allclose(p[:, 0], 0.5**k) and torch.allclose(p[:, 1], (-0.5) ** k)
    assert p[:8, 2].tolist() == [(-2.0) ** j for j in range(8)]
    assert bool((p[7:, 2] == -128.0).all())  # frozen at its first state outside the ball


def test_a_step_returning_nan_or_inf_keeps_the_previous_state():
    for bad in (float("nan"), float("inf")):
        def step(x, t, lr, bad=bad):
            return x + 1 if t < 4 else x * bad

        out = R.run(step, torch.zeros(2, dtype=F64), steps=10, record_every=2)
        assert int(out.diverged_at) == 5  # state_5 is the first bad one
        assert out.steps.tolist() == [0, 2, 4, 5]
        assert out.state.tolist() == [4.0, 4.0] and bool(torch.isfinite(out.history["params"]).all())


def test_the_loop_stops_when_every_run_diverged():
    calls = []

    def step(x, t, lr):
        calls.append(t)
        return x * torch.tensor([[2.0], [3.0]], dtype=F64)

    out = R.run(step, torch.ones(2, 1, dtype=F64), steps=10_000, blowup=50.0, batched=True)
    # 3^4 = 81 > 50 at step 4; 2^6 = 64 > 50 at step 6, the last: no step after it
    assert out.diverged_at.tolist() == [6, 4] and calls == list(range(6))
    assert out.steps[-1] == 6 and out.history["params"][-1, :, 0].tolist() == [64.0, 81.0]


@pytest.mark.parametrize("factor", [1.1, 3.0, 1e10, 1e100, 1e300])
@pytest.mark.parametrize("blowup", [1e6, 1e300])
def test_no_nan_or_inf_in_any_history_far_beyond_the_critical_rate(factor, blowup):
    H = torch.diag(torch.tensor([0.5, 2.0, 4.0], dtype=F64))  # critical lr 2 / 4
    x0 = torch.tensor([[1.0, -1.0, 0.5], [0.0, 0.0, 1e-3]], dtype=F64)
    lr = [factor * 0.5, 0.1]  # run 1 diverges, run 2 converges
    out = R.run(lambda x, t, eta: x - R.per_run(eta, x) * x @ H, x0, steps=3000, lr=lr, blowup=blowup,
                batched=True, record=lambda x, t: {"params": x, "loss": 0.5 * ((x @ H) * x).sum(1)})
    assert bool(torch.isfinite(out.history["params"]).all())
    if blowup < 1e150:  # with a radius past 1e154 the frozen state is finite but its loss may overflow
        assert bool(torch.isfinite(out.history["loss"]).all())
    assert out.diverged.tolist() == [True, False] and int(out.diverged_at[0]) >= 1


def test_infinite_radius_never_diverges_a_finite_run():
    out = R.run(lambda x, t, lr: 1.5 * x, scalar(1.0), steps=50, blowup=1e300)
    assert not bool(out.diverged) and float(out.state) == 1.5**50


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0, 5), min_size=1, max_size=6), st.floats(0.1, 4), st.floats(1.0, 1e4))
def test_frozen_runs_never_change_after_diverged_at(lrs, a, blowup):
    x0 = torch.linspace(-2, 2, len(lrs), dtype=F64)[:, None] + 0.1
    out = R.run(gd_step(a), x0, steps=60, lr=lrs, blowup=blowup, batched=True)
    p = out.history["params"][:, :, 0]
    steps = out.steps
    radius = blowup * x0[:, 0].abs().clamp(min=1)
    for r, at in enumerate(out.diverged_at.tolist()):
        if at < 0:
            assert bool((p[:, r].abs() <= radius[r]).all())
            continue
        assert bool((p[steps < at, r].abs() <= radius[r]).all())  # inside the ball before
        frozen = p[steps >= at, r]
        assert bool((frozen == frozen[0]).all()) and abs(float(frozen[0])) > radius[r]


@settings(max_examples=40, deadline=None)
@given(st.floats(2.05, 50), st.floats(0.01, 10), st.floats(2, 1e8))
def test_diverged_at_is_the_first_k_with_q_to_the_k_outside_the_ball(lr_times_a, x0, blowup):
    q = abs(1 - lr_times_a)
    exact = math.log(blowup * max(1.0, x0) / x0) / math.log(q)  # |x0| q^k > radius  <=>  k > exact
    assume(abs(exact - round(exact)) > 1e-6)
    out = R.run(gd_step(1.0), scalar(x0), steps=10_000, lr=lr_times_a, blowup=blowup)
    assert out.diverged_step == math.floor(exact) + 1


def test_the_radius_is_blowup_times_one_for_a_start_inside_the_unit_ball():
    """A start of norm 0.5 gets the radius ``blowup * 1`` (not ``blowup * 0.5``, not anything above 1)."""
    grow = lambda x, t, lr: x * 20.1  # noqa: E731
    out = R.run(grow, scalar(0.5), steps=3, lr=1.0, blowup=10.0)  # |x_1| = 10.05: just outside 10
    assert out.diverged_step == 1
    out = R.run(lambda x, t, lr: x * 19.9, scalar(0.5), steps=1, lr=1.0, blowup=10.0)  # 9.95: just inside
    assert not out.diverged.any()


# --- records on the host -----------------------------------------------------------------------------

def test_the_run_is_a_record_moved_to_the_host(monkeypatch):
    moved = []
    real = backend.to_host
    monkeypatch.setattr(backend, "to_host", lambda rec: (moved.append(type(rec)), real(rec)))
    out = R.run(lambda x, t, lr: x / 2, torch.ones(2), steps=3)
    assert isinstance(out, backend.Record) and moved == [R.Run]
    assert all(v.device.type == "cpu" for v in (out.steps, out.state, out.diverged, out.lr, *out.history.values()))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_run_on_the_gpu_comes_back_on_the_host():
    x0 = torch.ones(2, 3, device="cuda", dtype=F64)
    out = R.run(lambda x, t, lr: x * R.per_run(lr, x), x0, steps=4, lr=schedules.constant_schedule(3.0),
                blowup=10.0, batched=True, record=lambda x, t: {"x": x, "n": x.norm(dim=1)})
    tensors = [out.steps, out.state, out.diverged, out.diverged_at, out.lr, *out.history.values()]
    assert all(v.device.type == "cpu" for v in tensors)
    assert out.diverged_at.tolist() == [3, 3] and out.history["x"][-1, 0, 0] == 27.0


# --- bad input names the argument --------------------------------------------------------------------

def _ok(x, t, lr):
    return x


X = torch.ones(2, dtype=F64)
XB = torch.ones(3, 2, dtype=F64)


@pytest.mark.parametrize("call,name", [
    (lambda: R.run(_ok, X, steps=-1), "steps"),
    (lambda: R.run(_ok, X, steps=2.5), "steps"),
    (lambda: R.run(_ok, X, steps=True), "steps"),
    (lambda: R.run(_ok, X, steps=3, record_every=0), "record_every"),
    (lambda: R.run(_ok, X, steps=3, blowup=0.0), "blowup"),
    (lambda: R.run(_ok, X, steps=3, blowup=-1.0), "blowup"),
    (lambda: R.run(_ok, X, steps=3, blowup=float("nan")), "blowup"),
    (lambda: R.run(_ok, X, steps=3, lr=-0.1), "lr"),
    (lambda: R.run(_ok, X, steps=3, lr=float("nan")), "lr"),
    (lambda: R.run(_ok, X, steps=3, lr=float("inf")), "lr"),
    (lambda: R.run(_ok, X, steps=3, lr=True), "lr"),
    (lambda: R.run(_ok, X, steps=3, lr="fast"), "lr"),
    (lambda: R.run(_ok, XB, steps=3, lr=[0.1, 0.2], batched=True), "lr"),  # 3 runs, 2 rates
    (lambda: R.run(_ok, XB, steps=3, lr=[[0.1, 0.2, 0.3]], batched=True), "lr"),
    (lambda: R.run(_ok, XB, steps=3, lr=[0.1, -0.2, 0.3], batched=True), "lr"),
    (lambda: R.run(_ok, X, steps=3, lr=[0.1, 0.2]), "lr"),  # per-run rates without a run dimension
    (lambda: R.run(_ok, X, steps=3, lr=lambda t: torch.ones(2)), "lr"),  # wrong number of rates
    (lambda: R.run(_ok, X, steps=3, lr=lambda t: -torch.ones(len(t))), "lr"),
    (lambda: R.run(_ok, torch.tensor([1.0, float("nan")]), steps=3), "state0"),
    (lambda: R.run(_ok, torch.tensor([float("inf")]), steps=3), "state0"),
    (lambda: R.run(_ok, [1.0, 2.0], steps=3), "state0"),
    (lambda: R.run(_ok, (), steps=3, record=lambda s, t: {}), "state0"),
    (lambda: R.run(_ok, (torch.ones(3), torch.ones(2)), steps=3, record=lambda s, t: {}, batched=True), "state0"),
    (lambda: R.run(_ok, torch.tensor(1.0), steps=3, batched=True), "state0"),
    (lambda: R.run("step", X, steps=3), "step"),
    (lambda: R.run(lambda x, t, lr: (x, x), X, steps=3), "step"),  # returns another structure
    (lambda: R.run(_ok, (X, X), steps=3), "record"),  # a tuple state needs a record function
    (lambda: R.run(_ok, X, steps=3, record="params"), "record"),
])
def test_bad_input_raises_value_error_naming_the_argument(call, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        call()


def test_determinism_the_step_draws_from_the_callers_generator():
    def noisy(seed):
        g = torch.Generator().manual_seed(seed)
        return R.run(lambda x, t, lr: x - lr * x + 0.1 * torch.randn(x.shape, generator=g, dtype=F64),
                     torch.ones(4, dtype=F64), steps=20, lr=0.3).history["params"]

    assert torch.equal(noisy(3), noisy(3)) and not torch.equal(noisy(3), noisy(4))


def test_on_grid_repeats_the_frozen_record_after_an_early_stop():
    # x_k = (-2)^k leaves the ball of radius 10 * max(1, |x0|) at step 4 (|x_3| = 8 < 10 < 16 = |x_4|)
    out = R.run(lambda x, t, lr: x - lr * x, torch.tensor([1.0], dtype=torch.float64), steps=8, lr=3.0,
                  blowup=10.0)
    assert out.steps.tolist() == [0, 1, 2, 3, 4]  # the loop stopped at the divergence step
    grid, history = out.on_grid(8, record_every=3)
    assert grid.tolist() == [0, 3, 6, 8]
    assert history["params"][:, 0].tolist() == [1.0, -8.0, 16.0, 16.0]


def test_on_grid_refuses_a_grid_finer_than_the_recording():
    out = R.run(lambda x, t, lr: 0.5 * x, torch.ones(1, dtype=torch.float64), steps=20, record_every=10)
    with pytest.raises(ValueError, match="^record_every:"):
        out.on_grid(20, 5)
    assert out.on_grid(20, 10)[1]["params"][:, 0].tolist() == [1.0, 0.5**10, 0.5**20]


def test_on_grid_at_every_step_and_a_grid_point_between_the_last_two_records():
    out = R.run(lambda x, t, lr: 0.5 * x, torch.ones(1, dtype=torch.float64), steps=6)
    grid, history = out.on_grid(6)
    assert grid.tolist() == list(range(7)) and history["params"][:, 0].tolist() == [0.5**k for k in range(7)]
    coarse = R.run(lambda x, t, lr: 0.5 * x, torch.ones(1, dtype=torch.float64), steps=20, record_every=10)
    with pytest.raises(ValueError, match="^record_every:"):
        coarse.on_grid(20, 15)  # step 15 lies between the last two records
