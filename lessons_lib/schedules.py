"""Learning-rate schedules as pure functions of the step, composed optax-style.

A *schedule* is a plain callable ``schedule(step)``: ``step`` is an int or a tensor of steps of any
shape, and the result is a float64 tensor of the same shape (0-d for an int) on the device of the
input. A schedule holds no state, so calling it twice gives the same values. Schedules are built
from small pieces with :func:`join_schedules`; warmup-stable-decay (WSD, eq-wsd-schedule) is a
join of a warmup, a constant and a decay piece.

Conventions (shared by every schedule here):

* warmup: ``eta(t) = peak * (t + 1) / warmup`` for ``t < warmup``, so the first step already
  trains and step ``warmup - 1`` reaches ``peak``;
* decay over ``d`` steps: ``s = t / (d - 1)`` runs from 0 at the first decay step (value ``peak``)
  to 1 at the last (value ``final``); a one-step decay takes ``s = 1``; later steps hold ``final``;
* WSD decays over the last ``d = round(decay_frac * total)`` steps (Python's ``round``).

References:
    Hu et al. (2024), MiniCPM: Unveiling the Potential of Small Language Models with Scalable
    Training Strategies, arXiv:2404.06395 (origin of WSD).
    Hägele et al. (2024), Scaling Laws and Compute-Optimal Training Beyond Fixed Training
    Durations, arXiv:2405.18392 (the 1 - sqrt cooldown).
    Wen et al. (2025), Understanding Warmup-Stable-Decay Learning Rates: A River Valley Loss
    Landscape Perspective, arXiv:2410.05192 (WSD-S and the river-valley picture).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal, Sequence, Union

import torch

from .backend import DTYPE, check_callable, check_count, check_positive, default_device

Steps = Union[int, torch.Tensor]
Schedule = Callable[[Steps], torch.Tensor]
Shape = Literal["linear", "sqrt", "cosine", "inverse", "exponential"]
SHAPES = ("linear", "sqrt", "cosine", "inverse", "exponential")


def _steps(step: Steps) -> torch.Tensor:
    """Return ``step`` as a float64 tensor (device kept), rejecting negative or non-finite steps."""
    if isinstance(step, torch.Tensor):
        t = step.to(DTYPE)
    elif isinstance(step, bool) or not isinstance(step, (int, float)):
        raise ValueError(f"step: expected an int or a tensor of steps, got {type(step).__name__}")
    else:
        t = torch.tensor(float(step), dtype=DTYPE, device=default_device())
    if not bool(torch.isfinite(t).all()) or bool((t < 0).any()):
        raise ValueError("step: steps must be finite and >= 0")
    return t


def _check_fraction(value: float, *, name: str) -> float:
    v = check_positive(value, name=name, allow_zero=True)
    if v > 1:
        raise ValueError(f"{name}: must lie in [0, 1], got {v}")
    return v


def _check_final(final: float, peak: float, shape: str = "linear") -> float:
    final = check_positive(final, name="final", allow_zero=True)
    if final >= peak:
        raise ValueError(f"final: must be < peak={peak}, got {final}")
    if shape in ("inverse", "exponential") and final == 0:
        raise ValueError(f"final: shape={shape!r} needs final > 0, got 0")
    return final


def _check_warmup(warmup: int, total: int) -> int:
    warmup = check_count(warmup, name="warmup", minimum=0)
    if warmup > total:
        raise ValueError(f"warmup: must be <= total={total}, got {warmup}")
    return warmup


def _decay_length(decay_frac: float, *, total: int, warmup: int) -> int:
    """``round(decay_frac * total)``; ``decay_frac == 1`` clips to ``total - warmup``."""
    decay_frac = _check_fraction(decay_frac, name="decay_frac")
    if decay_frac == 1:
        return total - warmup
    d = round(decay_frac * total)
    if d > total - warmup:
        raise ValueError(f"decay_frac: {decay_frac} * {total} = {d} decay steps overlap the "
                         f"{warmup} warmup steps; at most {total - warmup} fit (or pass decay_frac=1)")
    return d


def warmup_schedule(peak: float, *, warmup: int) -> Schedule:
    """Linear warmup ``eta(t) = peak * min(t + 1, warmup) / warmup``: ``peak`` from step ``warmup - 1`` on.

    Args:
        peak: eta_max, > 0.  warmup: number of warmup steps T_w, >= 1.
    """
    peak = check_positive(peak, name="peak")
    warmup = check_count(warmup, name="warmup", minimum=1)

    def schedule(step: Steps) -> torch.Tensor:
        return peak * (torch.clamp(_steps(step), max=warmup - 1) + 1) / warmup

    return schedule


def decay_schedule(peak: float, *, length: int, shape: Shape = "linear", final: float = 0.0) -> Schedule:
    """Decay from ``peak`` at step 0 to ``final`` at step ``length - 1``, then hold ``final``.

    With ``s = t / (length - 1)`` clipped to [0, 1] (``s = 1`` when ``length == 1``) the value is
    ``final + (peak - final) * S(s)`` with ``S = 1 - s`` (linear), ``1 - sqrt(s)`` (sqrt, the
    Hägele et al. 2024 cooldown) or ``(1 + cos(pi s)) / 2`` (cosine); ``peak / (1 + s (peak/final - 1))``
    (inverse) or ``peak**(1-s) * final**s`` = ``peak (final/peak)**s`` (exponential, MiniCPM-style).
    In the unified form of eq-wsd-schedule, ``peak * D(s)`` with ``r = final / peak`` and
    ``D(s) = r + (1 - r) S(s)`` for the first three shapes, ``r**s`` (exponential) and
    ``1 / (1 + s (1/r - 1))`` (inverse): every shape is ``peak`` at ``s = 0`` and ``final`` at ``s = 1``.

    Args:
        peak: value at the first decay step; > 0.
        length: number of decay steps T_d; >= 1.
        shape: one of ``"linear"``, ``"sqrt"``, ``"cosine"``, ``"inverse"``, ``"exponential"``.
        final: value at the last decay step; 0 <= final < peak (> 0 for inverse / exponential).

    Raises:
        ValueError: naming ``peak``, ``length``, ``shape`` or ``final``.
    """
    peak = check_positive(peak, name="peak")
    length = check_count(length, name="length", minimum=1)
    if shape not in SHAPES:
        raise ValueError(f"shape: expected one of {SHAPES}, got {shape!r}")
    final = _check_final(final, peak, shape)

    def schedule(step: Steps) -> torch.Tensor:
        t = _steps(step)
        s = torch.clamp(t / (length - 1), 0, 1) if length > 1 else torch.ones_like(t)
        if shape == "linear":
            return final + (peak - final) * (1 - s)
        if shape == "sqrt":
            return final + (peak - final) * (1 - torch.sqrt(s))
        if shape == "cosine":
            return final + (peak - final) * (1 + torch.cos(math.pi * s)) / 2
        if shape == "inverse":
            return peak / (1 + s * (peak / final - 1))
        return peak ** (1 - s) * final**s  # exponential

    return schedule


def join_schedules(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """Join schedules at step boundaries, each piece seeing steps counted from its own start.

    ``step < boundaries[0]`` uses ``schedules[0](step)``; ``boundaries[i-1] <= step < boundaries[i]``
    uses ``schedules[i](step - boundaries[i-1])``; the last piece runs for ever (optax's
    ``join_schedules``). Vectorised: every piece is evaluated on the shifted steps and the results
    are merged with ``torch.where``.

    Args:
        schedules: n >= 1 schedules.
        boundaries: n - 1 strictly increasing non-negative integer steps.

    Raises:
        ValueError: naming ``schedules`` or ``boundaries``.
    """
    for name, value in (("schedules", schedules), ("boundaries", boundaries)):
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise ValueError(f"{name}: expected a sequence, got {type(value).__name__}")
    schedules, boundaries = list(schedules), list(boundaries)
    if not schedules or not all(callable(f) for f in schedules):
        raise ValueError("schedules: expected a non-empty sequence of callables")
    if len(boundaries) != len(schedules) - 1:
        raise ValueError(f"boundaries: expected len(schedules) - 1 = {len(schedules) - 1} "
                         f"boundaries, got {len(boundaries)}")
    for b in boundaries:
        check_count(b, name="boundaries", minimum=0)
    if any(b1 >= b2 for b1, b2 in zip(boundaries, boundaries[1:])):
        raise ValueError(f"boundaries: must be strictly increasing, got {boundaries}")

    def evaluate(f: Schedule, t: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(f(t), dtype=DTYPE, device=t.device).expand(t.shape)

    def schedule(step: Steps) -> torch.Tensor:
        t = _steps(step)
        out = evaluate(schedules[0], t)
        for b, f in zip(boundaries, schedules[1:]):
            out = torch.where(t >= b, evaluate(f, torch.clamp(t - b, min=0)), out)
        return out

    return schedule


def _join_nonempty(pieces: Sequence[tuple[Schedule, int]]) -> Schedule:
    """Join ``(schedule, length)`` pieces, skipping empty ones; the last kept piece runs on."""
    kept = [(f, n) for f, n in pieces if n > 0] or [pieces[-1]]
    boundaries = [int(sum(n for _, n in kept[: i + 1])) for i in range(len(kept) - 1)]
    return join_schedules([f for f, _ in kept], boundaries)


def constant_schedule(peak: float, *, warmup: int = 0) -> Schedule:
    """Linear warmup ``peak * (t + 1) / warmup`` for ``t < warmup``, then the constant ``peak``.

    Args:
        peak: the constant learning rate eta_max, > 0.  warmup: warmup steps T_w (0 for none).
    """
    peak = check_positive(peak, name="peak")
    warmup = check_count(warmup, name="warmup", minimum=0)

    def constant(step: Steps) -> torch.Tensor:
        return torch.full_like(_steps(step), peak)

    if warmup == 0:
        return join_schedules([constant], [])
    return join_schedules([warmup_schedule(peak, warmup=warmup), constant], [warmup])


def cosine_schedule(peak: float, *, total: int, warmup: int = 0, final: float = 0.0) -> Schedule:
    """Linear warmup, then a half cosine from ``peak`` at step ``warmup`` to ``final`` at ``total - 1``.

    ``eta(t) = final + (peak - final) (1 + cos(pi s)) / 2``, ``s = (t - warmup) / (total - 1 - warmup)``;
    unlike optax, ``final`` is reached at the last step, ``total - 1``, and held afterwards.

    Args:
        peak: eta_max > 0.  total: steps T >= 1.  warmup: T_w in [0, total].  final: in [0, peak).
    """
    peak = check_positive(peak, name="peak")
    total = check_count(total, name="total")
    warmup = _check_warmup(warmup, total)
    final = _check_final(final, peak)
    if warmup == total:
        return constant_schedule(peak, warmup=warmup)
    decay = decay_schedule(peak, length=total - warmup, shape="cosine", final=final)
    return _join_nonempty([(warmup_schedule(peak, warmup=max(warmup, 1)), warmup),
                           (decay, total - warmup)])


def wsd_schedule(peak: float, *, total: int, warmup: int, decay_frac: float,
                 shape: Shape = "linear", final: float = 0.0) -> Schedule:
    """Warmup-stable-decay (eq-wsd-schedule): warmup, a long stable phase at ``peak``, a short decay.

    ``eta(t) = peak (t + 1) / T_w`` for ``t < T_w``; ``peak`` until ``T - T_d``; then
    :func:`decay_schedule` (``shape``, ``final``) over the last ``T_d = round(decay_frac * T)`` steps,
    reaching ``final`` at step ``T - 1``. Here ``T = total``, ``T_w = warmup``, ``eta_max = peak``.
    Built with :func:`join_schedules` from the three pieces. ``decay_frac = 0`` never decays;
    ``decay_frac = 1`` decays from right after warmup (``T_d = T - T_w``). The ``"inverse"`` shape,
    ``peak / (1 + s (peak/final - 1))``, is attributed to Wen et al. by a third-party scheduler as
    "derived on quadratics"; that attribution is **unverified**.

    Args:
        peak: eta_max; > 0.
        total: training steps T; >= 1.
        warmup: warmup steps T_w, 0 <= warmup <= total.
        decay_frac: decay fraction f_d in [0, 1]; ``round(decay_frac * total)`` must fit after warmup
            unless ``decay_frac == 1``.
        shape: decay shape S, see :func:`decay_schedule`.
        final: eta_min reached at the last step; 0 <= final < peak (> 0 for inverse / exponential).

    Returns:
        A schedule ``step -> eta`` (float64 tensor, same shape as ``step``).

    Raises:
        ValueError: naming ``peak``, ``total``, ``warmup``, ``decay_frac``, ``shape`` or ``final``.

    References:
        Hu et al. (2024), MiniCPM, arXiv:2404.06395. Hägele et al. (2024), arXiv:2405.18392.
        Wen et al. (2025), Understanding Warmup-Stable-Decay Learning Rates: A River Valley Loss
        Landscape Perspective, arXiv:2410.05192.
    """
    peak = check_positive(peak, name="peak")
    total = check_count(total, name="total")
    warmup = _check_warmup(warmup, total)
    d = _decay_length(decay_frac, total=total, warmup=warmup)
    decay = decay_schedule(peak, length=max(d, 1), shape=shape, final=final)
    return _join_nonempty([(warmup_schedule(peak, warmup=max(warmup, 1)), warmup),
                           (constant_schedule(peak), total - warmup - d), (decay, d)])


def _check_checkpoints(checkpoints: Sequence[int]) -> list[int]:
    if isinstance(checkpoints, (str, bytes)) or not hasattr(checkpoints, "__iter__"):
        raise ValueError(f"checkpoints: expected a sequence of steps, got {type(checkpoints).__name__}")
    cps = list(checkpoints)
    if not cps:
        raise ValueError("checkpoints: expected at least one checkpoint")
    for c in cps:
        check_count(c, name="checkpoints", minimum=1)
    if any(a >= b for a, b in zip(cps, cps[1:])):
        raise ValueError(f"checkpoints: must be strictly increasing, got {cps}")
    return cps


@dataclass(frozen=True)
class Period:
    """One WSD-S period: stable at peak on ``[start, decay_start)``, decay on ``[decay_start, end)``.

    ``total_steps`` is the compute spent when the checkpoint at ``end`` is saved (= ``end``).
    """

    index: int
    start: int
    decay_start: int
    end: int
    decay_steps: int
    total_steps: int


@dataclass(frozen=True)
class Branch:
    """One branching-WSD cooldown: forks off the constant main run at ``fork`` (= ``start`` =
    ``decay_start``) and decays until ``end``; ``total_steps`` is the compute spent when checkpoint
    ``end`` is ready: ``end`` plus the earlier branches' decay steps."""

    index: int
    start: int
    fork: int
    decay_start: int
    end: int
    decay_steps: int
    total_steps: int


def wsd_branch_plan(checkpoints: Sequence[int], *, decay_frac: float,
                    per: Literal["checkpoint", "period"] = "checkpoint") -> list[Branch]:
    """Branching WSD: one constant main run; checkpoint C_i forks at ``C_i - d_i`` and decays to C_i.

    ``per="checkpoint"``: ``d_i = round(decay_frac * C_i)``, so each branch follows
    ``wsd_schedule(total=C_i, decay_frac=decay_frac)`` (eq-wsd-schedule). ``per="period"``:
    ``d_i = round(decay_frac * (C_i - C_{i-1}))``, the same decay lengths as :func:`wsd_s_plan`
    (the fair comparison with WSD-S). The main run continues from the pre-decay weights. Total compute
    ``C_last + sum_{i<last} d_i`` (``plan[-1].total_steps``).

    References:
        Hu et al. (2024), arXiv:2404.06395; Wen et al. (2025), arXiv:2410.05192.
    """
    cps = _check_checkpoints(checkpoints)
    decay_frac = _check_fraction(decay_frac, name="decay_frac")
    if per not in ("checkpoint", "period"):
        raise ValueError(f"per: expected 'checkpoint' or 'period', got {per!r}")
    plan, spent = [], 0
    for i, c in enumerate(cps):
        d = round(decay_frac * (c if per == "checkpoint" or i == 0 else c - cps[i - 1]))
        plan.append(Branch(index=i, start=c - d, fork=c - d, decay_start=c - d, end=c, decay_steps=d,
                           total_steps=c + spent))
        spent += d
    return plan


def wsd_s_plan(checkpoints: Sequence[int], *, decay_frac: float) -> list[Period]:
    """WSD-S: one run; period i spans ``[C_{i-1}, C_i)`` (C_0 = 0), stable then decay, no re-warmup.

    Each period decays over its last ``d_i = round(decay_frac * (C_i - C_{i-1}))`` steps; the next
    period resumes from the *decayed* weights at peak. Total compute ``C_last``. The exact protocol of
    Wen et al. (2025), arXiv:2410.05192, is **unverified** here.
    """
    cps = _check_checkpoints(checkpoints)
    decay_frac = _check_fraction(decay_frac, name="decay_frac")
    plan, prev = [], 0
    for i, c in enumerate(cps):
        d = round(decay_frac * (c - prev))
        plan.append(Period(index=i, start=prev, decay_start=c - d, end=c, decay_steps=d, total_steps=c))
        prev = c
    return plan


def wsd_s_schedule(peak: float, *, checkpoints: Sequence[int], warmup: int, decay_frac: float,
                   shape: Shape = "linear", final: float = 0.0) -> Schedule:
    """The single-run WSD-S schedule: per period of :func:`wsd_s_plan`, stable at ``peak`` then decay.

    Warmup (``peak (t + 1) / warmup``) happens only in the first period; each period then decays as
    in eq-wsd-schedule to ``final`` at step ``C_i - 1`` and jumps back to ``peak`` at ``C_i``. After
    the last checkpoint the schedule holds ``final``. With one checkpoint this is :func:`wsd_schedule`.

    Args:
        peak, shape, final: as in :func:`wsd_schedule`.
        checkpoints: strictly increasing positive steps C_1 < ... < C_n.
        warmup: warmup steps, <= C_1.
        decay_frac: fraction of each period spent decaying (``decay_frac == 1`` in the first period
            decays from right after warmup).

    References:
        Wen et al. (2025), arXiv:2410.05192.
    """
    peak = check_positive(peak, name="peak")
    plan = wsd_s_plan(checkpoints, decay_frac=decay_frac)
    warmup = _check_warmup(warmup, plan[0].end)
    pieces: list[tuple[Schedule, int]] = [(warmup_schedule(peak, warmup=max(warmup, 1)), warmup)]
    for p in plan:
        first = p.index == 0
        d = _decay_length(decay_frac, total=p.end - p.start, warmup=warmup if first else 0)
        stable = p.end - p.start - d - (warmup if first else 0)
        decay = decay_schedule(peak, length=max(d, 1), shape=shape, final=final)
        pieces += [(constant_schedule(peak), stable), (decay, d)]
    return _join_nonempty(pieces)


def cyclic_cosine_schedule(peak: float, *, checkpoints: Sequence[int], warmup: int = 0,
                           final: float = 0.0) -> Schedule:
    """Cyclic cosine: a half cosine from ``peak`` to ``final`` over every period between checkpoints.

    Period ``i`` spans ``[C_{i-1}, C_i)`` (``C_0 = 0``). The first period warms up linearly
    (``peak (t + 1) / warmup``) and then decays; each later period restarts at ``peak`` and decays
    ``eta(t) = final + (peak - final) (1 + cos(pi s)) / 2`` with ``s = (t - C_{i-1}) / (C_i - C_{i-1} - 1)``,
    so ``final`` is reached at step ``C_i - 1`` (eq-wsd-schedule with the cosine shape and
    ``T_d`` the whole period). It is WSD-S with no stable phase: ``wsd_s_schedule(..., decay_frac=1,
    shape="cosine")``. Wen et al. (2025) compare WSD-S against such a schedule ("Cyclic-Cosine"); the
    exact form they use (restart value, warmup) is our reading, not checked against their code.

    Args:
        peak: eta_max, > 0.
        checkpoints: strictly increasing positive steps C_1 < ... < C_n.
        warmup: warmup steps in the first period, 0 <= warmup <= C_1.
        final: eta_min at the end of every period, 0 <= final < peak.

    Raises:
        ValueError: naming ``peak``, ``checkpoints``, ``warmup`` or ``final``.

    References:
        Wen et al. (2025), Understanding Warmup-Stable-Decay Learning Rates: A River Valley Loss
        Landscape Perspective, arXiv:2410.05192.
    """
    return wsd_s_schedule(peak, checkpoints=checkpoints, warmup=warmup, decay_frac=1.0, shape="cosine",
                          final=final)


def schedule_values(schedule: Schedule, total: int) -> torch.Tensor:
    """Return ``schedule`` at steps ``0 .. total - 1`` as a float64 tensor of shape ``(total,)``."""
    check_callable(schedule, name="schedule")
    total = check_count(total, name="total")
    steps = torch.arange(total, dtype=torch.int64, device=default_device())
    return torch.as_tensor(schedule(steps), dtype=DTYPE)


def area(schedule: Schedule, total: int) -> float:
    """Area under the schedule, ``sum_{t < total} eta(t)``: it sets the river progress
    ``x_T ~ x_0 exp(-mu * area)`` in the river-valley picture of Wen et al. (2025), arXiv:2410.05192."""
    return float(schedule_values(schedule, total).sum())
