"""lessons_lib.measure: first crossings, steps below a tolerance, plateau levels and counts, log-log slopes.

Oracle cases are small hand-made histories whose answers can be read off; edge cases are the first and
last recorded rows, never reaching a target, and runs in a second dimension; bad input names the argument.
"""

import math

import pytest
import torch

from lessons_lib import measure

HIST = torch.tensor([[0.0, 0.0], [1.0, 0.1], [2.0, 0.2], [2.0, 0.3]], dtype=torch.float64)


# --- first_crossing --------------------------------------------------------------------------------

def test_first_crossing_reads_the_first_row_at_the_fraction_of_the_target():
    assert measure.first_crossing(HIST, [2.0, 1.0]).tolist() == [1, -1]  # 1 >= 0.5 * 2; 0.3 < 0.5
    assert measure.first_crossing(HIST, [2.0, 1.0], steps=[0, 10, 20, 30]).tolist() == [10, -1]
    assert measure.first_crossing(HIST, [2.0, 0.5], fraction=1.0).tolist() == [2, -1]  # reaches, not passes
    assert measure.first_crossing(HIST, [2.0, 0.5], fraction=0.4).tolist() == [1, 2]  # 0.8 and 0.2


def test_first_crossing_edges_and_signs():
    assert measure.first_crossing(HIST, [0.0, 0.0]).tolist() == [0, 0]  # a zero target is met at once
    negative = torch.tensor([[-0.2], [-0.9], [-1.5]], dtype=torch.float64)
    assert measure.first_crossing(negative, [-2.0]).tolist() == [2]  # by magnitude
    assert measure.first_crossing(HIST[:1], [2.0, 1.0]).tolist() == [-1, -1]  # one row, never reached
    out = measure.first_crossing(HIST, [2.0, 1.0])
    assert out.dtype == torch.long and out.shape == (2,)


# --- steps_below -----------------------------------------------------------------------------------

def test_steps_below_is_the_first_step_strictly_below_the_tolerance():
    loss = torch.tensor([1.0, 0.5, 0.2, 0.01], dtype=torch.float64)
    assert int(measure.steps_below(loss, 0.3)) == 2
    assert int(measure.steps_below(loss, 0.2)) == 3  # 0.2 is not below 0.2
    assert int(measure.steps_below(loss, 0.3, steps=[0, 50, 100, 150])) == 100
    assert int(measure.steps_below(loss, 1e-3)) == -1
    assert int(measure.steps_below(loss, 2.0)) == 0  # already below at the start


def test_steps_below_works_per_run():
    runs = torch.tensor([[1.0, 1.0], [0.1, 0.9], [0.1, 0.05]], dtype=torch.float64)  # (K, R)
    out = measure.steps_below(runs, 0.5)
    assert out.tolist() == [1, 2] and out.shape == (2,)
    assert measure.steps_below(runs, 1e-3).tolist() == [-1, -1]


# --- plateaus --------------------------------------------------------------------------------------

def test_plateau_levels_are_half_the_unlearned_energy():
    levels = measure.plateau_levels(torch.tensor([4.0, 2.0, 1.0], dtype=torch.float64))
    assert levels.tolist() == [0.5 * (16 + 4 + 1), 0.5 * (4 + 1), 0.5 * 1, 0.0]
    assert measure.plateau_levels(torch.zeros(0, dtype=torch.float64)).tolist() == [0.0]
    s = torch.rand(7, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).sort(descending=True).values
    expected = torch.stack([0.5 * (s[i:] ** 2).sum() for i in range(8)])
    assert torch.allclose(measure.plateau_levels(s), expected, rtol=1e-14, atol=0)


def test_plateau_losses_take_the_flattest_point_between_drops():
    loss = torch.tensor([4.0, 3.0, 2.0, 2.0, 2.0, 1.0, 0.5, 0.5, 0.5, 0.1], dtype=torch.float64)
    assert measure.plateau_losses(loss, [1, 5, 9]).tolist() == [2.0, 0.5]
    assert measure.plateau_losses(loss, [4]).shape == (0,)  # one drop: no gap between drops


def test_count_plateaus_counts_long_flat_stretches_above_the_floor():
    flat = torch.cat([torch.full((100,), 1.0), torch.full((100,), 0.5), torch.full((5,), 1e-5)]).double()
    assert measure.count_plateaus(flat, lr=0.1) == 2  # 10 time units each
    assert measure.count_plateaus(flat, lr=0.1, min_duration=20.0) == 0  # neither lasts 20 time units
    assert measure.count_plateaus(flat, lr=0.001) == 0  # 0.1 time units each: too short
    low = torch.cat([torch.full((100,), 1.0), torch.full((100,), 1e-4)]).double()
    assert measure.count_plateaus(low, lr=0.1) == 1  # the second stretch lies below floor * L_0
    assert measure.count_plateaus(torch.exp(-torch.arange(200.0, dtype=torch.float64)), lr=0.1) == 0


# --- log-log slopes --------------------------------------------------------------------------------

def test_loglog_slope_recovers_a_power_law():
    x = [1.0, 2.0, 4.0, 8.0, 16.0]
    assert measure.loglog_slope(x, [3 * v**2 for v in x]) == pytest.approx(2.0, abs=1e-12)
    assert measure.loglog_slope(x, [5 / v for v in x]) == pytest.approx(-1.0, abs=1e-12)
    assert measure.loglog_slope(torch.tensor(x), torch.tensor(x) ** 0.5) == pytest.approx(0.5, abs=1e-6)


# --- bad input -------------------------------------------------------------------------------------

@pytest.mark.parametrize("call, name", [
    (lambda: measure.first_crossing(torch.zeros(3), [1.0]), "history"),
    (lambda: measure.first_crossing(torch.zeros(3, 2), [1.0]), "history"),
    (lambda: measure.first_crossing(torch.full((3, 1), math.nan), [1.0]), "history"),
    (lambda: measure.first_crossing(torch.zeros(3, 1), [1.0], fraction=0.0), "fraction"),
    (lambda: measure.first_crossing(torch.zeros(3, 1), [1.0], fraction=1.5), "fraction"),
    (lambda: measure.first_crossing(torch.zeros(3, 1), [1.0], steps=[0, 1]), "steps"),
    (lambda: measure.steps_below(torch.ones(3), 0.0), "tol"),
    (lambda: measure.steps_below(torch.ones(3), -1.0), "tol"),
    (lambda: measure.steps_below(torch.ones(2, 2, 2), 0.5), "loss"),
    (lambda: measure.steps_below(torch.ones(0), 0.5), "loss"),
    (lambda: measure.steps_below(torch.ones(3), 0.5, steps=[0, 1]), "steps"),
    (lambda: measure.plateau_levels(torch.ones(2, 2)), "s"),
    (lambda: measure.plateau_losses(torch.ones(10), [5, 2]), "times"),
    (lambda: measure.plateau_losses(torch.ones(10), [0, 2]), "times"),
    (lambda: measure.plateau_losses(torch.ones(10), [0, 12]), "times"),
    (lambda: measure.count_plateaus(torch.ones(10), lr=0), "lr"),
    (lambda: measure.loglog_slope([1.0], [1.0]), "x"),
    (lambda: measure.loglog_slope([1.0, -2.0], [1.0, 2.0]), "x"),
    (lambda: measure.loglog_slope([1.0, 2.0], [1.0, math.inf]), "y"),
    (lambda: measure.loglog_slope([1.0, 2.0, 3.0], [1.0, 2.0]), "y"),
])
def test_bad_input_names_the_argument(call, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        call()


def test_count_plateaus_refuses_negative_thresholds():
    loss = torch.tensor([1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.1], dtype=torch.float64)
    for name in ("min_duration", "max_rate", "floor"):
        with pytest.raises(ValueError, match=f"^{name}:"):
            measure.count_plateaus(loss, lr=0.1, **{name: -1.0})  # min_duration=-1 used to count every step


def test_plateau_losses_names_bad_times():
    with pytest.raises(ValueError, match="^times:"):
        measure.plateau_losses(torch.ones(8, dtype=torch.float64), [0, math.nan, 6])


def test_plateau_losses_pick_the_smallest_central_difference():
    # between drops at 0 and 6 the central differences |L[k+1] - L[k-1]| are 1.1, 4, 5.9, 4, 2.5: the flattest
    # is k = 1 (the sums L[k+1] + L[k-1], smallest at k = 5, would pick another point)
    loss = torch.tensor([10.0, 9.0, 8.9, 5.0, 3.0, 1.0, 0.5, 0.1], dtype=torch.float64)
    assert measure.plateau_losses(loss, [0, 6]).tolist() == [9.0]


def test_count_plateaus_of_a_steady_fall_is_zero_and_the_floor_is_strict():
    assert measure.count_plateaus(torch.exp(-0.5 * torch.arange(100.0, dtype=torch.float64)), lr=1.0) == 0
    # a plateau exactly at floor * L_0 is not above it
    level = torch.cat([torch.ones(1, dtype=torch.float64), torch.full((30,), 1e-3, dtype=torch.float64)])
    assert measure.count_plateaus(level, lr=0.1, floor=1e-3) == 0
    assert measure.count_plateaus(level, lr=0.1, floor=0.9e-3) == 1


def test_count_plateaus_counts_a_stretch_of_exactly_the_minimum_duration():
    # 5 flat steps at lr = 0.1 last 0.5 time units, the default minimum: counted
    loss = torch.tensor([1.0] + [0.1] * 6 + [1e-4] * 3, dtype=torch.float64)
    assert measure.count_plateaus(loss, lr=0.1) == 1
    assert measure.count_plateaus(loss, lr=0.1, min_duration=0.51) == 0
