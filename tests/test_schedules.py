"""Schedules: exact boundary values, monotone pieces, join semantics, areas, WSD-S / branching plans.

Conventions under test (see lessons_lib/schedules.py): warmup ``peak * (t + 1) / warmup``; a decay
over ``d = round(decay_frac * total)`` steps runs ``s = t / (d - 1)`` from 0 (peak) to 1 (final at
step ``total - 1``); branching WSD uses ``d_i = round(decay_frac * C_i)`` and spends
``C_last + sum_{i<last} d_i``; WSD-S decays over the last fraction of each period and spends ``C_last``.
"""

import dataclasses
import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lessons_lib import schedules as S

SHAPES = ["linear", "sqrt", "cosine", "inverse", "exponential"]


def values(f, n):
    return S.schedule_values(f, n).tolist()


def test_warmup_and_constant_exact_values_and_area():
    f = S.constant_schedule(2.0, warmup=4)
    assert values(f, 7) == [0.5, 1.0, 1.5, 2.0, 2.0, 2.0, 2.0]
    assert values(S.constant_schedule(2.0), 3) == [2.0, 2.0, 2.0]
    assert S.area(f, 10) == 0.5 + 1.0 + 1.5 + 2.0 + 6 * 2.0
    assert float(f(10_000)) == 2.0


def test_wsd_linear_boundaries_exact_and_area():
    f = S.wsd_schedule(1.0, total=10, warmup=2, decay_frac=0.3)  # d = 3: steps 7, 8, 9
    assert values(f, 12) == [0.5, 1, 1, 1, 1, 1, 1, 1.0, 0.5, 0.0, 0.0, 0.0]
    assert S.area(f, 10) == 0.5 + 6 * 1.0 + 1.0 + 0.5 + 0.0
    g = S.wsd_schedule(2.0, total=8, warmup=0, decay_frac=0.5, final=0.4)  # d = 4
    assert torch.allclose(S.schedule_values(g, 8), torch.tensor(
        [2.0, 2.0, 2.0, 2.0, 2.0, 2.0 - 1.6 / 3, 2.0 - 3.2 / 3, 0.4], dtype=torch.float64), atol=1e-15)


@pytest.mark.parametrize("shape, mid", [("sqrt", 0.5), ("cosine", (1 + math.cos(math.pi / 4)) / 2)])
def test_wsd_sqrt_and_cosine_quarter_point(shape, mid):
    f = S.wsd_schedule(1.0, total=5, warmup=0, decay_frac=1.0, shape=shape)  # s = t / 4
    v = S.schedule_values(f, 5)
    assert v[0] == 1.0 and v[-1] == 0.0
    assert math.isclose(float(v[1]), mid, rel_tol=1e-14)


def test_wsd_inverse_and_exponential_midpoints():
    inv = S.wsd_schedule(1.0, total=3, warmup=0, decay_frac=1.0, shape="inverse", final=0.25)
    exp = S.wsd_schedule(1.0, total=3, warmup=0, decay_frac=1.0, shape="exponential", final=0.01)
    assert torch.allclose(S.schedule_values(inv, 3), torch.tensor([1.0, 1 / 2.5, 0.25], dtype=torch.float64))
    assert torch.allclose(S.schedule_values(exp, 3), torch.tensor([1.0, 0.1, 0.01], dtype=torch.float64))


def test_cosine_schedule_values_and_area():
    f = S.cosine_schedule(1.0, total=6, warmup=2)  # decay over steps 2..5, s = 0, 1/3, 2/3, 1
    expected = [0.5, 1.0, 1.0, 0.75, 0.25, 0.0, 0.0]
    assert torch.allclose(S.schedule_values(f, 7), torch.tensor(expected, dtype=torch.float64), atol=1e-15)
    assert math.isclose(S.area(f, 6), 3.5, rel_tol=1e-14)
    g = S.cosine_schedule(3.0, total=4, final=1.0)
    assert float(g(0)) == 3.0 and float(g(3)) == 1.0 and math.isclose(float(g(1)), 2.5, rel_tol=1e-14)


@pytest.mark.parametrize("shape", SHAPES)
def test_pieces_are_monotone_and_end_at_final(shape):
    peak, final, total, warmup = 1.0, 0.1, 50, 5
    f = S.wsd_schedule(peak, total=total, warmup=warmup, decay_frac=0.4, shape=shape, final=final)
    v = S.schedule_values(f, total + 5)
    assert bool((v[:warmup].diff() > 0).all()) and v[warmup - 1] == peak
    assert bool((v[warmup - 1: 30 + 1] == peak).all())  # stable; first decay step (s = 0) is still peak
    assert bool((v[30:].diff() <= 0).all()) and bool((v[31:total] < peak).all())
    assert math.isclose(float(v[total - 1]), final, rel_tol=1e-12)
    assert torch.allclose(v[total:], torch.full((5,), final, dtype=torch.float64))  # held afterwards


def test_decay_frac_edges():
    assert values(S.wsd_schedule(1.0, total=6, warmup=2, decay_frac=0.0), 8) == [0.5, 1, 1, 1, 1, 1, 1, 1]
    # decay_frac = 1: decay starts right after warmup (d = total - warmup = 4)
    v = values(S.wsd_schedule(3.0, total=6, warmup=2, decay_frac=1.0), 6)
    assert v == [1.5, 3.0, 3.0, 2.0, 1.0, 0.0]
    # warmup == total: just warmup, then peak
    assert values(S.wsd_schedule(1.0, total=2, warmup=2, decay_frac=0.0), 3) == [0.5, 1.0, 1.0]
    # a one-step decay is final at the last step
    assert values(S.wsd_schedule(1.0, total=10, warmup=0, decay_frac=0.1), 10)[-2:] == [1.0, 0.0]


def test_vectorised_equals_elementwise_and_is_pure():
    f = S.wsd_schedule(1.0, total=12, warmup=3, decay_frac=0.5, shape="sqrt", final=0.05)
    steps = torch.tensor([[0, 1, 2, 3], [5, 6, 7, 8], [10, 11, 12, 40]])
    out = f(steps)
    assert out.shape == (3, 4) and out.dtype == torch.float64
    expected = torch.stack([f(int(s)) for s in steps.flatten()]).reshape(3, 4)
    assert torch.equal(out, expected)
    assert f(7).shape == () and f(7).dtype == torch.float64
    assert torch.equal(f(steps.double()), out)
    first = f(steps).clone()
    f(1000), f(torch.arange(100))  # unrelated calls in between change nothing
    assert torch.equal(f(steps), first)


def test_join_schedules_semantics():
    f = S.join_schedules([lambda t: 10 + t, lambda t: 100 + t, lambda t: 1000 + t], [2, 5])
    assert values(f, 8) == [10, 11, 100, 101, 102, 1000, 1001, 1002]
    assert torch.equal(f(torch.tensor([[6], [0]])), torch.tensor([[1001.0], [10.0]], dtype=torch.float64))
    assert values(S.join_schedules([lambda t: 7 + 0 * t], []), 2) == [7.0, 7.0]


def test_wsd_is_a_join_of_warmup_constant_decay():
    peak, total, warmup, d = 2.0, 20, 4, 6
    joined = S.join_schedules([S.warmup_schedule(peak, warmup=warmup), S.constant_schedule(peak),
                               S.decay_schedule(peak, length=d, shape="cosine", final=0.2)],
                              [warmup, total - d])
    wsd = S.wsd_schedule(peak, total=total, warmup=warmup, decay_frac=d / total, shape="cosine", final=0.2)
    assert torch.equal(S.schedule_values(joined, 25), S.schedule_values(wsd, 25))


def test_branch_and_wsd_s_plans_step_counts():
    branches = S.wsd_branch_plan([1000, 2000, 4000], decay_frac=0.2)  # d_i = 0.2 * C_i = 200, 400, 800
    assert [(b.fork, b.end, b.decay_steps) for b in branches] == [(800, 1000, 200), (1600, 2000, 400),
                                                                   (3200, 4000, 800)]
    assert [b.total_steps for b in branches] == [1000, 2200, 4600]  # 4000 + 200 + 400
    assert all(b.start == b.decay_start == b.fork for b in branches)
    periods = S.wsd_s_plan([1000, 2000, 4000], decay_frac=0.2)  # d_i = 0.2 * (C_i - C_{i-1})
    assert [(p.start, p.decay_start, p.end) for p in periods] == [(0, 800, 1000), (1000, 1800, 2000),
                                                                   (2000, 3600, 4000)]
    assert [p.decay_steps for p in periods] == [200, 200, 400] and periods[-1].total_steps == 4000
    with pytest.raises(dataclasses.FrozenInstanceError):
        branches[0].fork = 1  # frozen


def test_each_branch_is_the_wsd_schedule_of_its_checkpoint():
    for b in S.wsd_branch_plan([40, 100], decay_frac=0.25):
        v = S.schedule_values(S.wsd_schedule(1.0, total=b.end, warmup=5, decay_frac=0.25), b.end)
        assert v[b.fork - 1] == v[b.fork] == 1.0 and v[b.fork + 1] < 1.0 and v[-1] == 0.0


def test_wsd_s_schedule_periods():
    f = S.wsd_s_schedule(1.0, checkpoints=[5, 10], warmup=1, decay_frac=0.4)
    assert values(f, 12) == [1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    g = S.wsd_s_schedule(2.0, checkpoints=[1000, 2000, 4000], warmup=50, decay_frac=0.2, shape="sqrt")
    v = S.schedule_values(g, 4000)
    for p in S.wsd_s_plan([1000, 2000, 4000], decay_frac=0.2):
        assert v[p.decay_start] == 2.0 and v[p.decay_start + 1] < 2.0 and v[p.end - 1] == 0.0
        assert p.start == 0 or v[p.start] == 2.0  # back at peak, no re-warmup
    one = S.wsd_s_schedule(1.0, checkpoints=[30], warmup=3, decay_frac=0.3, shape="cosine", final=0.1)
    ref = S.wsd_schedule(1.0, total=30, warmup=3, decay_frac=0.3, shape="cosine", final=0.1)
    assert torch.equal(S.schedule_values(one, 35), S.schedule_values(ref, 35))


@settings(max_examples=60, deadline=None)
@given(total=st.integers(1, 120), warmup_frac=st.floats(0, 1), decay_frac=st.floats(0, 1),
       shape=st.sampled_from(SHAPES), final_frac=st.floats(0.01, 0.9))
def test_wsd_after_warmup_stays_in_final_peak_and_never_rises(total, warmup_frac, decay_frac, shape, final_frac):
    warmup = int(warmup_frac * total)
    assume(decay_frac == 1 or round(decay_frac * total) <= total - warmup)
    peak, final = 3.0, 3.0 * final_frac
    v = S.schedule_values(S.wsd_schedule(peak, total=total, warmup=warmup, decay_frac=decay_frac,
                                         shape=shape, final=final), total + 3)
    assert bool((v[:warmup] > 0).all()) and bool((v <= peak).all())
    after = v[warmup:]
    assert bool((after >= final * (1 - 1e-12)).all()) and bool((after.diff() <= 1e-15).all())


@pytest.mark.parametrize("call, name", [
    (lambda: S.wsd_schedule(1.0, total=10, warmup=0, decay_frac=-0.1), "decay_frac"),
    (lambda: S.wsd_schedule(1.0, total=10, warmup=0, decay_frac=1.5), "decay_frac"),
    (lambda: S.wsd_schedule(1.0, total=10, warmup=5, decay_frac=0.6), "decay_frac"),  # overlaps warmup
    (lambda: S.wsd_schedule(1.0, total=10, warmup=11, decay_frac=0.1), "warmup"),
    (lambda: S.cosine_schedule(1.0, total=10, warmup=11), "warmup"),
    (lambda: S.wsd_schedule(1.0, total=10, warmup=0, decay_frac=0.1, shape="cosin"), "shape"),
    (lambda: S.wsd_schedule(1.0, total=10, warmup=0, decay_frac=0.1, shape="inverse"), "final"),
    (lambda: S.wsd_schedule(1.0, total=10, warmup=0, decay_frac=0.1, shape="exponential"), "final"),
    (lambda: S.wsd_schedule(1.0, total=10, warmup=0, decay_frac=0.1, final=1.0), "final"),
    (lambda: S.cosine_schedule(1.0, total=10, final=-0.1), "final"),
    (lambda: S.constant_schedule(0.0), "peak"),
    (lambda: S.wsd_schedule(1.0, total=0, warmup=0, decay_frac=0.1), "total"),
    (lambda: S.wsd_branch_plan([1000, 1000], decay_frac=0.2), "checkpoints"),
    (lambda: S.wsd_s_plan([2000, 1000], decay_frac=0.2), "checkpoints"),
    (lambda: S.wsd_s_schedule(1.0, checkpoints=[0, 10], warmup=0, decay_frac=0.2), "checkpoints"),
    (lambda: S.wsd_branch_plan([1000], decay_frac=1.5), "decay_frac"),
    (lambda: S.join_schedules([S.constant_schedule(1.0)] * 2, [1, 2]), "boundaries"),
    (lambda: S.join_schedules([S.constant_schedule(1.0)] * 3, [4, 4]), "boundaries"),
    (lambda: S.constant_schedule(1.0)(-1), "step"),
    (lambda: S.schedule_values(S.constant_schedule(1.0), 0), "total"),
])
def test_bad_arguments_raise_value_error_naming_the_argument(call, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        call()


def test_branch_plan_with_period_decays_matches_wsd_s_decays():
    branches = S.wsd_branch_plan([1000, 2000, 4000], decay_frac=0.2, per="period")
    assert [(b.fork, b.decay_steps) for b in branches] == [(800, 200), (1800, 200), (3600, 400)]
    assert branches[-1].total_steps == 4400  # the last checkpoint plus the earlier branches' decays: 4000 + 200 + 200
    with pytest.raises(ValueError, match="^per:"):
        S.wsd_branch_plan([10, 20], decay_frac=0.2, per="epoch")


def test_a_one_step_warmup_is_already_at_the_peak():
    # warmup convention: eta(t) = peak * (t + 1) / warmup, so with warmup = 1 step 0 trains at the peak
    assert float(S.wsd_schedule(2.0, total=4, warmup=1, decay_frac=0.0)(0)) == 2.0


def _printed_decay(shape, s, r):
    """The decay factor D(s) of eq-wsd-schedule as the chapter prints it, written out independently."""
    return {"linear": r + (1 - r) * (1 - s), "sqrt": r + (1 - r) * (1 - math.sqrt(s)),
            "cosine": r + (1 - r) * (1 + math.cos(math.pi * s)) / 2, "exponential": r**s,
            "inverse": 1 / (1 + s * (1 / r - 1))}[shape]


@pytest.mark.parametrize("shape", SHAPES)
def test_decay_follows_the_printed_equation_and_ends_at_eta_min_not_twice_it(shape):
    # eq-wsd-schedule: eta = eta_max D((t - (T - T_d)) / (T_d - 1)) in the decay, D(0) = 1, D(1) = r
    peak, final, T, T_w, T_d = 2.0, 0.02, 40, 4, 12  # r = 0.01
    f = S.wsd_schedule(peak, total=T, warmup=T_w, decay_frac=T_d / T, shape=shape, final=final)
    v = S.schedule_values(f, T)
    for t in range(T - T_d, T):
        s = (t - (T - T_d)) / (T_d - 1)
        assert math.isclose(float(v[t]), peak * _printed_decay(shape, s, final / peak), rel_tol=1e-12), (t, shape)
    # the last step is eta_min; the earlier printed form eta_min + (eta_max - eta_min) S(1) gave about 2 eta_min
    assert math.isclose(float(v[-1]), final, rel_tol=1e-12)


def test_cyclic_cosine_restarts_a_full_cosine_every_period():
    f = S.cyclic_cosine_schedule(1.0, checkpoints=[5, 10], warmup=0)
    half = [(1 + math.cos(math.pi * k / 4)) / 2 for k in range(5)]  # s = k / 4 over each 5-step period
    assert torch.allclose(S.schedule_values(f, 12), torch.tensor(half + half + [0.0, 0.0], dtype=torch.float64),
                          atol=1e-15)
    # with warmup the first period warms up and then decays over what is left; later periods restart at peak
    g = S.cyclic_cosine_schedule(2.0, checkpoints=[6, 16, 26], warmup=2, final=0.2)
    v = S.schedule_values(g, 26)
    assert v.tolist()[:3] == [1.0, 2.0, 2.0] and math.isclose(float(v[5]), 0.2, rel_tol=1e-12)
    for start, end in ((6, 16), (16, 26)):
        assert float(v[start]) == 2.0 and math.isclose(float(v[end - 1]), 0.2, rel_tol=1e-12)
        assert bool((v[start:end].diff() < 0).all())  # no stable phase: it decays all the time
    assert torch.equal(v, S.schedule_values(S.wsd_s_schedule(2.0, checkpoints=[6, 16, 26], warmup=2, decay_frac=1.0,
                                                              shape="cosine", final=0.2), 26))
    with pytest.raises(ValueError, match="^checkpoints:"):
        S.cyclic_cosine_schedule(1.0, checkpoints=[5, 5])
    with pytest.raises(ValueError, match="^final:"):
        S.cyclic_cosine_schedule(1.0, checkpoints=[5], final=1.0)


# --- the book-wide fuzz test's baseline call of the new schedule (tests/test_fuzz.py)

from fuzz_specs import Spec  # noqa: E402

FUZZ_SPECS = {
    "schedules.cyclic_cosine_schedule": Spec(lambda: dict(peak=0.1, checkpoints=[10, 20], warmup=1),
                                             positive="peak", nonneg="final"),
}
