"""Shared fixtures. Unit tests run on CPU in float64 unless a test says otherwise."""

from __future__ import annotations

import os
import pathlib

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"


@pytest.fixture(autouse=True)
def _cpu_quick(monkeypatch):
    """Unit tests see the default environment: quick scale, live explorers, CPU unless CUDA asked."""
    monkeypatch.delenv("LESSONS_STATIC", raising=False)
    monkeypatch.delenv("LESSONS_SCALE", raising=False)
    if os.environ.get("LESSONS_DEVICE", "") != "cuda":
        monkeypatch.setenv("LESSONS_DEVICE", "cpu")
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def random_spd(n: int, seed: int, *, shift: float = 0.0, dtype=torch.float64) -> torch.Tensor:
    """A random symmetric matrix with spectrum roughly in [shift, shift + 4]."""
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(n, n, generator=g, dtype=dtype)
    return A @ A.T / n + shift * torch.eye(n, dtype=dtype)


def has_cuda() -> bool:
    return torch.cuda.is_available()
