import matplotlib
import numpy as np
import pytest

from lessons_lib import plotting


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
