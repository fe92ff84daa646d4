"""Shared loss surfaces: the river valley (Wen et al. 2025), Rastrigin and the Grand Canyon (Riedl et al. 2023)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lessons_lib import landscapes

F64 = torch.float64


# --- the river valley ------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(mu=st.floats(1e-3, 1.0), a=st.floats(0.1, 100.0), amplitude=st.floats(-2.0, 2.0), k=st.floats(0.1, 3.0),
       seed=st.integers(0, 2**16))
def test_river_valley_gradient_is_autograd_at_random_points(mu, a, amplitude, k, seed):
    valley = landscapes.river_valley(mu=mu, a=a, amplitude=amplitude, k=k)
    g = torch.Generator().manual_seed(seed)
    theta = (10 * torch.rand(7, 3, 2, generator=g, dtype=F64) - 5).requires_grad_(True)
    (auto,) = torch.autograd.grad(valley.loss(theta).sum(), theta)
    closed = valley.grad(theta.detach())
    assert closed.shape == theta.shape
    assert torch.allclose(closed, auto, rtol=1e-12, atol=1e-12 * (1 + float(auto.abs().max())))


def test_river_valley_splits_into_river_and_hill_and_its_bed_is_the_minimum_of_the_hill():
    valley = landscapes.river_valley(mu=0.05, a=20.0, amplitude=0.5, k=2.0)
    x = torch.linspace(-3, 3, 13, dtype=F64)
    on_bed = torch.stack([x, valley.bed(x)], dim=-1)
    assert torch.equal(valley.hill(on_bed), torch.zeros_like(x))
    assert torch.allclose(valley.loss(on_bed), 0.5 * 0.05 * x**2, rtol=0, atol=1e-15)
    off = on_bed + torch.tensor([0.0, 0.1], dtype=F64)
    assert torch.allclose(valley.hill(off), torch.full_like(x, 0.5 * 20.0 * 0.01), rtol=1e-12)
    assert torch.allclose(valley.loss(off), valley.river(off) + valley.hill(off), rtol=0, atol=0)
    straight = landscapes.river_valley(mu=0.01, a=10.0)
    assert torch.equal(straight.bed(x), torch.zeros_like(x))


@pytest.mark.parametrize("kwargs,name", [
    (dict(mu=0.0), "mu"), (dict(a=-1.0), "a"), (dict(amplitude=math.inf), "amplitude"), (dict(k=0.0), "k"),
    (dict(mu=math.nan), "mu"),
])
def test_river_valley_bad_input_names_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        landscapes.river_valley(**kwargs)


# --- Rastrigin --------------------------------------------------------------------------------------

def test_river_valley_defaults_are_the_builders_defaults():
    """The dataclass and the builder agree: a straight river (A = 0) with k = 1 unless told otherwise."""
    built = landscapes.river_valley(mu=0.02, a=5.0)
    assert landscapes.RiverValley(mu=0.02, a=5.0) == built
    assert (built.amplitude, built.k) == (0.0, 1.0)


def test_rastrigin_global_minimum_is_zero_at_the_origin():
    assert float(landscapes.rastrigin(torch.zeros(5, dtype=F64))) == 0.0
    u = torch.linspace(-4, 4, 161, dtype=F64)  # step 0.05: the grid contains 0 and every integer
    grid = torch.stack(torch.meshgrid(u, u, indexing="xy"), -1)
    values = landscapes.rastrigin(grid)
    assert values.shape == (161, 161) and float(values.min()) == 0.0
    assert bool((values[values == 0] == 0).all()) and int((values == 0).sum()) == 1
    assert torch.allclose(landscapes.rastrigin(grid, amplitude=0.0), (grid**2).sum(-1), rtol=0, atol=1e-12)


@pytest.mark.parametrize("amplitude", [1.0, 10.0])
def test_rastrigin_ripples_have_period_one_on_top_of_the_bowl(amplitude):
    # the cosines repeat with period 1 in every coordinate, so f(x + e_i) - f(x) = 2 x_i + 1 exactly
    g = torch.Generator().manual_seed(0)
    x = 6 * torch.rand(50, 3, generator=g, dtype=F64) - 3
    for i in range(3):
        e = torch.zeros(3, dtype=F64)
        e[i] = 1.0
        diff = landscapes.rastrigin(x + e, amplitude=amplitude) - landscapes.rastrigin(x, amplitude=amplitude)
        assert torch.allclose(diff, 2 * x[:, i] + 1, rtol=0, atol=1e-11)
    # and a local minimum sits near each integer point: the barrier between 0 and 1 in 1-D is 2A high
    half = landscapes.rastrigin(torch.tensor([0.5], dtype=F64), amplitude=amplitude)
    assert float(half) == pytest.approx(0.25 + 2 * amplitude)


# --- the Grand Canyon --------------------------------------------------------------------------------

def canyon_formula(x1: float, x2: float) -> float:
    """The docstring's formula, written again in plain Python."""
    v = x2 - ((x1 - 1) * (x1 - 4) ** 2 / 8 + 2)
    b = -x1 - 1.6 * x2
    f = 100 * (1 - math.exp(-1.4 * v**2 * math.exp(-0.002 * x1**4))) + 1.6 * x1**2 + 0.8 * x2**2
    f += 8 * sum(1 - math.cos(0.75 * math.pi * xi) for xi in (x1, x2))
    return f + 16 * math.exp(1 - 2 * v**4) * (max(0.0, 1 - math.exp(-9 * b**2)) if b > 0 else 0.0)


# Three points probe the wall left of the origin: (-0.2, -0.646) and (-0.1, -0.311) lie on the canyon floor (v = 0)
# where the wall's factor 1 - exp(-9 b^2) is still below 1 (b = 1.23 and 0.60), and (-0.5, -1.297) sits half a
# unit above the floor (v = 0.5), where exp(1 - 2 v^4) is away from its peak.
@pytest.mark.parametrize("point", [(0.0, 0.0), (8.0, 8.0), (6.62, 7.55), (-1.0, 0.5), (3.0, 2.0), (-2.0, -2.0),
                                   (-0.2, -0.646), (-0.1, -0.311), (-0.5, -1.297)])
def test_grand_canyon_values_follow_the_formula(point):
    value = float(landscapes.grand_canyon(torch.tensor(point, dtype=F64)))
    assert value == pytest.approx(canyon_formula(*point), rel=1e-12, abs=1e-12)


def test_grand_canyon_minimum_is_zero_at_the_origin_and_batches():
    assert float(landscapes.grand_canyon(torch.zeros(2, dtype=F64))) == 0.0
    u = torch.linspace(-2, 9, 221, dtype=F64)  # step 0.05, with a grid point within 1e-16 of 0
    grid = torch.stack(torch.meshgrid(u, u, indexing="xy"), -1)
    values = landscapes.grand_canyon(grid)
    assert values.shape == (221, 221) and 0.0 <= float(values.min()) < 1e-12
    i = int(values.argmin())
    assert float(grid.reshape(-1, 2)[i].abs().max()) < 1e-12
    one_by_one = torch.stack([landscapes.grand_canyon(p) for p in grid[::40, ::40].reshape(-1, 2)])
    assert torch.equal(one_by_one, values[::40, ::40].reshape(-1))


def test_landscape_bad_input_names_the_argument():
    with pytest.raises(ValueError, match=r"^amplitude:"):
        landscapes.rastrigin(torch.zeros(2, dtype=F64), amplitude=-1.0)
    with pytest.raises(ValueError, match=r"^x:"):
        landscapes.grand_canyon(torch.zeros(4, 3, dtype=F64))
