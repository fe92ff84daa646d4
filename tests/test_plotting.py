import matplotlib
import numpy as np
import pytest
import torch

from lessons_lib import plotting, quadratic


def test_colours_fixed_and_case_insensitive():
    assert plotting.color("GD") == plotting.color("gd") == plotting.COLORS["gd"]
    assert len(set(plotting.COLORS[k] for k in ("gd", "sgd", "gradient flow", "modified flow", "cbo"))) == 5
    with pytest.raises(ValueError, match="method"):
        plotting.color("newton-raphson")


def test_figure_is_opaque_and_titled():
    fig, axes = plotting.figure(2, title="A takeaway")
    assert len(axes) == 2
    assert matplotlib.colors.to_hex(fig.get_facecolor()) == "#ffffff"
    assert matplotlib.rcParams["savefig.facecolor"] == "white"
    assert fig._suptitle.get_text() == "A takeaway"


def test_mark_divergence_marks_the_exit_and_clips():
    fig, ax = plotting.figure()
    k = np.arange(10)
    y = 3.0 ** k
    ax.semilogy(k, y)
    plotting.mark_divergence(ax, k, y, limit=100.0)
    assert ax.get_ylim()[1] == 100.0
    marker = [line for line in ax.lines if line.get_marker() == "^"]
    assert len(marker) == 1 and marker[0].get_xdata()[0] == 5  # 3**5 = 243 > 100 first
    fig2, ax2 = plotting.figure()
    plotting.mark_divergence(ax2, k, np.ones(10), limit=10.0)
    assert not [line for line in ax2.lines if line.get_marker() in "^v"]


def _quartic_of_point(p):  # one point (2,) -> scalar
    return (p[0] - 0.5) ** 2 + 3 * p[0] * p[1] + p[1] ** 4


def test_loss_grid_values_are_the_loss_at_the_grid_points():
    X, Y, Z = plotting.loss_grid(lambda P: _quartic_of_point(P.T), (-1.0, 2.0), (0.5, 1.5), n=7)
    assert X.shape == Y.shape == Z.shape == (7, 7)
    assert np.allclose(X[0], np.linspace(-1, 2, 7)) and np.allclose(Y[:, 0], np.linspace(0.5, 1.5, 7))
    assert bool((X[1:] == X[:-1]).all()) and bool((Y[:, 1:] == Y[:, :-1]).all())  # x along columns
    expected = (X - 0.5) ** 2 + 3 * X * Y + Y**4
    assert np.allclose(Z, expected, rtol=1e-14, atol=1e-14)
    # point by point, and a library loss of one point made batched with vmap: the same values
    _, _, Z1 = plotting.loss_grid(_quartic_of_point, (-1.0, 2.0), (0.5, 1.5), n=7, batched=False)
    H = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    _, _, Zq = plotting.loss_grid(torch.vmap(quadratic.quadratic_loss(H)), (-1.0, 2.0), (0.5, 1.5), n=7)
    assert np.allclose(Z1, expected, rtol=1e-14)
    assert np.allclose(Zq, 0.5 * (2 * X**2 + X * Y + Y**2), rtol=1e-14)


@pytest.mark.parametrize("kwargs,name", [
    (dict(loss=None), "loss"),
    (dict(loss=lambda P: P.sum()), "loss"),  # one value for the whole grid
    (dict(n=1), "n"),
    (dict(n=10.0), "n"),
    (dict(n=True), "n"),
    (dict(xlim=(1.0, 0.0)), "xlim"),
    (dict(xlim=(0.0, float("inf"))), "xlim"),
    (dict(xlim=3.0), "xlim"),
    (dict(xlim=(0.0, 1.0, 2.0)), "xlim"),
    (dict(ylim=(0.0, float("nan"))), "ylim"),
    (dict(ylim=("a", "b")), "ylim"),
])
def test_loss_grid_bad_input_names_the_argument(kwargs, name):
    args = dict(loss=lambda P: P.sum(1), xlim=(0.0, 1.0), ylim=(0.0, 1.0), n=5) | kwargs
    with pytest.raises(ValueError, match=rf"^{name}:"):
        plotting.loss_grid(args.pop("loss"), args.pop("xlim"), args.pop("ylim"), **args)


@pytest.mark.parametrize("kwargs, name", [(dict(ncols=2.5), "ncols"), (dict(nrows=True), "nrows"),
                                          (dict(width=0.0), "width"), (dict(height="3"), "height")])
def test_figure_names_a_bad_size(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):  # used to be matplotlib's message, or a 0-wide figure
        plotting.figure(**kwargs)


def test_mark_divergence_names_bad_arguments():
    _, ax = plotting.figure()
    with pytest.raises(ValueError, match="^limit:"):
        plotting.mark_divergence(ax, [0.0, 1.0], [1.0, 2.0], limit=True)
    with pytest.raises(ValueError, match="^ax:"):
        plotting.mark_divergence(None, [0.0, 1.0], [1.0, 2.0], limit=10.0)
