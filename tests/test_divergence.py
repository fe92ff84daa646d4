"""Divergence is data: every runner and flow, far past its critical learning rate.

Every public function of ``lessons_lib`` that runs dynamics (found by introspection: it takes
``steps``, ``times`` or ``lrs``, or returns a record with a ``diverged`` field) has a case or a reason
not to: in ``CASES`` / ``NOT_RUNNERS`` below for the chapters written before this test, and for a new
chapter in its own tests/test_<topic>.py as ``DIVERGENCE_CASES`` / ``NOT_RUNNERS`` dicts of the same
form (collected by tests/collect.py). A runner without one fails ``test_every_runner_has_a_case``.
Each case runs a small problem for a few steps at 10x, 1e6x and 1e300x its critical learning
rate (``2 / lambda_max`` of the update at the start, or the step size, time step or curvature
scale playing that role), and must

* return, within ``LIMIT_S`` seconds, without raising;
* return finite data: no NaN or inf in any tensor or number of the record, except the fields a case
  names as non-finite by design;
* flag divergence consistently: ``diverged_at > 0`` where ``diverged``, ``-1`` or ``None`` elsewhere;
  and flag it (or, for an integrated flow, stop with a status) where the dynamics blow up.

Measured on 2 cores under load: the 81 runs take 13 s together; the slowest, the stiff modified
flow at 1e6x, spends its budget of 5000 field evaluations in about 3 s.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import pkgutil
import signal
import sys
import time
import typing

import numpy as np
import pytest
import torch
from collect import collect

import lessons_lib
from lessons_lib import (
    cbo,
    curl,
    curvature,
    descent,
    drift,
    edge,
    landscapes,
    models,
    quadratic,
    saddles,
    schedules,
    stability,
    wsd,
)

MULTIPLES = (10.0, 1e6, 1e300)
LIMIT_S = 20

#: Public functions that take ``steps``/``times``/``lrs`` but run no dynamics of their own.
NOT_RUNNERS = {
    "run.run": "the loop itself; every case below runs on it",
    "run.learning_rates": "expands a learning rate, runs nothing",
    "cbo.alpha_schedule": "a schedule of alpha, runs nothing",
    "cbo.consensus_hopping": "no step size: each hop samples around the last consensus point",
    "measure.first_crossing": "measures a recorded run",
    "measure.steps_below": "measures a recorded run",
    "measure.plateau_losses": "measures a recorded run",
}

H2 = torch.diag(torch.tensor([1.0, 4.0], dtype=torch.float64))  # lambda_max = 4: critical lr 0.5
ONES = torch.ones(2, dtype=torch.float64)
QUAD = quadratic.quadratic_loss(H2)


def _crit(loss, p) -> float:
    """``2 / lambda_max`` of ``loss``'s Hessian at ``p``: GD's critical rate there."""
    return 2.0 / float(torch.linalg.eigvalsh(curvature.hessian(loss, torch.as_tensor(p, dtype=torch.float64)))[-1])


def _diag_net():
    data = stability.sparse_regression(n=10, d=20, n_test=10)
    lam0 = float(models.train_diagonal_net(data.X, data.y, lr=0.0, steps=1, record_every=1).lam_max)
    return data, 2.0 / lam0


def _perturbation(m):
    data, crit0 = _diag_net()
    at = models.train_diagonal_net(data.X, data.y, lr=0.5 * crit0, steps=1500, record_every=1500)
    return stability.perturbation_growth(at.u, at.v, data.X, data.y, lr=m * 2 / float(at.lam_max), steps=50)


def _relu(m):
    x = torch.linspace(-1, 1, 8, dtype=torch.float64)
    y = x.abs()
    gen = torch.Generator().manual_seed(0)
    p0 = 0.5 * torch.randn(3 * 4, generator=gen, dtype=torch.float64)
    crit = _crit(lambda p: models.relu_loss(x, y, *p.reshape(3, 4)), p0)
    return models.train_relu_1d(x, y, width=4, init_scale=0.5, lr=m * crit, steps=30, record_every=5)


def _edge(m):
    problem = models.mlp_problem(n=16, d=4, width=8, depth=2, device="cpu")
    lam = float(curvature.sharpness(problem.loss, problem.init(0)).value)
    return edge.edge_of_stability(problem, lr=m * 2 / lam, steps=10, sharpness_every=5, max_iter=20)


def _bigram(m, compare=False):
    task = wsd.bigram_task(vocab=8)
    if compare:
        return wsd.compare_wsd_s(task, peak=m * 4.0, checkpoints=[10, 20], decay_frac=0.5, seeds=2, batch=8)
    return wsd.train_bigram(task, schedules.constant_schedule(m * 4.0), steps=20, batch=8, seeds=2, record_every=5)


def _stiff_flow(m):  # the flow of m (x^2 - y^2) / 2: x decays at rate m, y grows at rate m
    return drift.gradient_flow(lambda p: 0.5 * m * (p[0] ** 2 - p[1] ** 2), [1.0, 0.5], times=[0.0, 1.0, 2.0])


def _times(lr, n=4):
    return [k * lr for k in range(n + 1)]


def _dal(m):
    return drift.dal_descent(drift.quartic_loss, [1.0, 0.8], steps=20, scale=m, cap=5.0 * m)[0]


def _census(m):
    return curl.sign_census([{"flipped_hidden": 0}, {"flipped_hidden": 1}], steps=20, seeds=1, n_inputs=2,
                            n_hidden=3, lr=m * 0.5, n_samples=20)


def _valley_loss(m):
    return wsd.expected_valley_loss(landscapes.river_valley(), 10.0, schedule=schedules.constant_schedule(m * 0.2),
                                    steps=50, sigma=1.0)


def _sparse_net(m):  # L = ||u^2 - v^2 - beta*||^2 / 2: curvature 4 |beta*_i| at the minimum
    return saddles.train_diagonal_net_sparse([1.0, 0.5], init_scale=0.1, lr=m * 0.5, steps=40, record_every=5)


def _cbo(m):  # Euler step of x' = -lam (x - c): stable for lam dt < 2
    X0 = cbo.init_particles(2, 10, 2, generator=0, device="cpu")
    return cbo.cbo_minimize(lambda X: landscapes.rastrigin(X), X0, alpha=10.0, lam=1.0, sigma=0.5, dt=m * 2.0,
                            steps=100, generator=0)


def _student(m):
    return curl.train_student_teacher(n_inputs=2, n_hidden=3, lr=m * 0.5, steps=20, seeds=2, n_samples=20,
                                      record_every=5)


def _linear_net(m):  # at the balanced minimum lambda_max ~ 2 s_max: critical lr ~ 1 / s_max
    A = torch.diag(torch.tensor([3.0, 1.0], dtype=torch.float64))
    return models.train_linear_net(A, width=4, init_scale=0.3, lr=m / 3.0, steps=30, record_every=5)


#: name -> (run at multiple m of the critical rate, claim, fields non-finite by design). Claims:
#: "diverges": the record must flag divergence at every multiple ("diverges from 1e6x": at 1e6x and
#: 1e300x); "stops": an integrated flow must flag divergence or end with status "budget"; None: no
#: claim (a flow that stays bounded, a closed form, a record with no flag).
CASES = {
    "descent.gd": (lambda m: descent.gd(QUAD, ONES, lr=m * 0.5, steps=20), "diverges", ()),
    "descent.iterate": (lambda m: descent.iterate(lambda x: x - m * 0.5 * (H2 @ x), QUAD, ONES, lr=m * 0.5,
                                                  steps=20), "diverges", ()),
    "quadratic.gd_quadratic": (lambda m: quadratic.gd_quadratic(H2, ONES, lr=m * 0.5, steps=20), "diverges", ()),
    "quadratic.gd_quadratic[batched]": (lambda m: quadratic.gd_quadratic(H2, torch.rand(3, 2, dtype=torch.float64),
                                                                         lr=m * 0.5, steps=20), "diverges", ()),
    "quadratic.gd_scalar": (lambda m: quadratic.gd_scalar(2.0, 1.0, lr=m * 1.0, steps=20), "diverges", ()),
    "models.train_diagonal_net": (lambda m: models.train_diagonal_net(
        _diag_net()[0].X, _diag_net()[0].y, lr=m * _diag_net()[1], steps=30, record_every=1), "diverges", ()),
    "models.train_diagonal_net[sgd]": (lambda m: models.train_diagonal_net(
        _diag_net()[0].X, _diag_net()[0].y, lr=[m * _diag_net()[1], 0.01], steps=30, batch_size=1,
        record_every=10), None, ()),
    "models.train_linear_net": (_linear_net, "diverges", ()),
    "models.train_relu_1d": (_relu, "diverges from 1e6x", ()),  # at 10x the units die: the loss stalls
    "stability.perturbation_growth": (_perturbation, "diverges", ()),
    "drift.gradient_flow": (_stiff_flow, "stops", ()),
    "drift.modified_flow": (lambda m: drift.modified_flow(drift.quartic_loss, [1.0, 0.8], lr=m * 0.5,
                                                          times=_times(m * 0.5)), None, ()),
    "drift.principal_flow_quadratic": (lambda m: drift.principal_flow_quadratic(
        H2, ONES, lr=m * 0.5, times=_times(m * 0.5, 20)), "diverges", ()),
    "drift.dal_descent": (_dal, "diverges", ("lr",)),  # the rate changes every step: lr is NaN by design
    "drift.factorisation_gd": (lambda m: drift.factorisation_gd(2.0, 0.6, lr=m * _crit(drift.factorisation_loss,
                                                                                     [2.0, 0.6]), steps=30),
                               "diverges", ()),
    "drift.drift_errors": (lambda m: drift.drift_errors(drift.quartic_loss, [1.0, 0.8], lrs=[m * 0.5], T=4 * m * 0.5,
                                                        max_evals=1000), "diverges", ()),
    "saddles.train_diagonal_net_sparse": (_sparse_net, "diverges", ()),
    "curl.scalar_chain": (lambda m: curl.scalar_chain([1.0, 0.5], a=1.0, lr=m * 1.0, steps=30, flipped=False),
                          "diverges", ()),
    "curl.train_student_teacher": (_student, "diverges", ()),
    "curl.sign_census": (_census, None, ()),
    "edge.edge_of_stability": (_edge, "diverges", ()),
    "cbo.cbo_minimize": (_cbo, "diverges", ()),
    "wsd.sgd_valley": (lambda m: wsd.sgd_valley(landscapes.river_valley(), (1.0, 0.5),
                                                schedule=schedules.constant_schedule(m * 0.2), steps=20, sigma=0.1,
                                                replicas=2), "diverges", ()),
    "wsd.train_bigram": (_bigram, None, ()),
    "wsd.compare_wsd_s": (lambda m: _bigram(m, compare=True), None, ()),
    "wsd.expected_valley_loss": (_valley_loss, "diverges", ()),
    "wsd.river_progress": (lambda m: wsd.river_progress(10.0, 0.01, torch.full((20,), m * 0.2, dtype=torch.float64)),
                           None, ()),
}


def _chapter_cases() -> None:
    """Add the ``DIVERGENCE_CASES`` and ``NOT_RUNNERS`` that chapters keep in their own test files."""
    for attribute, into in (("DIVERGENCE_CASES", CASES), ("NOT_RUNNERS", NOT_RUNNERS)):
        for name, (stem, value) in collect(attribute, skip=("test_divergence",)).items():
            assert name not in into, f"{attribute}[{name!r}] of {stem}.py is also in tests/test_divergence.py"
            into[name] = value


_chapter_cases()


def _discover() -> set[str]:
    """``module.function`` for every public function that runs dynamics."""
    found = set()
    for info in pkgutil.iter_modules(lessons_lib.__path__):
        if info.ispkg or info.name in ("explore", "plotting"):
            continue
        module = importlib.import_module(f"lessons_lib.{info.name}")
        for name, fn in vars(module).items():
            if name.startswith("_") or not inspect.isfunction(fn) or fn.__module__ != module.__name__:
                continue
            params = set(inspect.signature(fn).parameters)
            try:
                ret = typing.get_type_hints(fn).get("return")
            except Exception:  # an annotation that does not resolve is no record
                ret = None
            flagged = isinstance(ret, type) and dataclasses.is_dataclass(ret) and "diverged" in {
                f.name for f in dataclasses.fields(ret)}
            if flagged or params & {"steps", "times", "lrs"}:
                found.add(f"{info.name}.{name}")
    return found


def test_a_chapters_own_cases_are_collected(tmp_path, monkeypatch):
    (tmp_path / "test_newtopic.py").write_text(
        "DIVERGENCE_CASES = {'newtopic.train': (lambda m: None, None, ())}\nNOT_RUNNERS = {'newtopic.plan': 'why'}\n")
    monkeypatch.setattr(sys.modules["collect"], "TESTS", tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert list(collect("DIVERGENCE_CASES")) == ["newtopic.train"]
    assert collect("NOT_RUNNERS")["newtopic.plan"] == ("test_newtopic", "why")
    sys.modules.pop("test_newtopic", None)


def test_every_runner_has_a_case():
    cased = {name.split("[")[0] for name in CASES}
    missing = _discover() - cased - set(NOT_RUNNERS)
    assert not missing, (f"runners with no divergence case: add one to DIVERGENCE_CASES (or a reason to NOT_RUNNERS) "
                         f"at the end of the chapter's tests/test_<topic>.py: {missing}")
    for name in cased | set(NOT_RUNNERS):  # no stale entries
        module, function = name.split(".")
        assert inspect.isfunction(getattr(importlib.import_module(f"lessons_lib.{module}"), function, None)), name


def _leaves(obj, path=""):
    """``(path, value)`` for every tensor, array or number in a record, tuple, list or dict."""
    if isinstance(obj, (torch.Tensor, np.ndarray, float, int)) and not isinstance(obj, bool):
        yield path, obj
    elif dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            yield from _leaves(getattr(obj, f.name), f"{path}.{f.name}".lstrip("."))
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, f"{path}.{k}".lstrip("."))
    elif isinstance(obj, (tuple, list)):
        for i, v in enumerate(obj):
            yield from _leaves(v, f"{path}[{i}]")


def _finite(value) -> bool:
    if isinstance(value, torch.Tensor):
        return not value.is_floating_point() and not value.is_complex() or bool(torch.isfinite(value).all())
    if isinstance(value, np.ndarray):
        return bool(np.isfinite(value).all())
    return math.isfinite(value)


def _flags(result):
    """``(diverged, diverged_at)`` as tensors (one entry per run), or ``None`` for a record with no flag."""
    if isinstance(result, dict) and "diverged" in result:
        d = torch.as_tensor(result["diverged"]).reshape(-1)
        return d, torch.where(d, torch.ones_like(d, dtype=torch.long), -torch.ones_like(d, dtype=torch.long))
    if not hasattr(result, "diverged"):
        return None
    d = torch.as_tensor(result.diverged).reshape(-1)
    at = getattr(result, "diverged_at", None)
    at = torch.full(d.shape, -1) if at is None else torch.as_tensor(at).reshape(-1)
    return d, at


def _alarm(signum, frame):
    raise TimeoutError(f"no answer within {LIMIT_S} s")


@pytest.mark.parametrize("m", MULTIPLES, ids=lambda m: f"{m:g}x")
@pytest.mark.parametrize("name", sorted(CASES))
def test_divergence_is_data(name, m):
    case, claim, nonfinite = CASES[name]
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(LIMIT_S)
    start = time.perf_counter()
    try:
        result = case(m)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert time.perf_counter() - start < LIMIT_S
    bad = [path for path, value in _leaves(result) if path not in nonfinite and not _finite(value)]
    assert not bad, f"non-finite values in {bad}"
    flags = _flags(result)
    if flags is not None:
        diverged, at = flags
        assert bool((at[diverged] > 0).all()) and bool((at[~diverged] == -1).all()), (diverged, at)
    stopped = flags is not None and bool(flags[0].any())
    if claim == "stops":
        stopped = stopped or getattr(result, "status", None) == "budget"
    if claim is not None and not (claim == "diverges from 1e6x" and m < 1e6):
        assert stopped, f"{name} at {m:g}x its critical rate did not flag divergence"


# --- regressions: one test per failure reproduced far past stability, each with its old symptom ---

def _within(seconds, fn):
    """``fn()``, failing the test if it takes longer than ``seconds`` (SIGALRM)."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(seconds)
    try:
        return fn()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_gradient_flow_of_a_nan_loss_answers_at_once():
    # it never returned (over 240 s): DOP853's first step size was NaN
    def nan_loss(p):
        return (p * float("nan")).sum()

    with pytest.raises(ValueError, match="^theta0:"):
        _within(LIMIT_S, lambda: drift.gradient_flow(nan_loss, [1.0, -0.5], times=[0.0, 1.0]))


def test_gradient_flow_that_fails_says_so():
    # log(1 - |p|^2) ends at |p| = 1, reached before t = 1: it returned 1 row of 3 with diverged=False
    flow = drift.gradient_flow(lambda p: torch.log(1 - p @ p), [0.5, 0.0], times=[0.0, 1.0, 2.0])
    assert flow.params.shape == (1, 2) and flow.diverged and flow.diverged_at == 1
    assert flow.status == "not finite" and 0 < flow.t_end < 1.0


def test_modified_flow_at_a_huge_rate_stops_on_its_budget():
    # lr = 9e4 took 77 s (the flow's stiffness grows with lr); 1e200 raised AttributeError
    quad = lambda p: (p**2).sum()  # noqa: E731
    start = time.perf_counter()
    stiff = _within(LIMIT_S, lambda: drift.modified_flow(quad, [1.0, -0.5], lr=9e4, times=[0.0, 1.0]))
    assert time.perf_counter() - start < 15  # measured 2-5 s for the 5000 evaluations of the budget
    assert stiff.status == "budget" and not stiff.diverged and stiff.t_end < 1.0
    assert stiff.params.shape == (1, 2) and bool(torch.isfinite(stiff.params).all())
    huge = drift.modified_flow(quad, [1.0, -0.5], lr=1e200, times=[0.0, 1.0])
    assert huge.diverged and huge.diverged_at == 1 and huge.status == "not finite"
    assert huge.params.tolist() == [[1.0, -0.5]]


def test_a_flow_within_budget_is_unchanged():
    # the budget must not cut the chapter's flows: the quartic's modified flow at h = 0.25 to t = 3
    flow = drift.modified_flow(drift.quartic_loss, [1.0, 0.8], lr=0.25, times=np.linspace(0, 3, 200))
    assert flow.status == "completed" and flow.params.shape == (200, 2) and flow.t_end == 3.0


def test_principal_flow_flags_its_growth():
    # h lambda = 10 grows like GD, |1 - 10|^k: past the 1e6 ball after 7 steps; the rows end there
    flow = drift.principal_flow_quadratic(torch.eye(1, dtype=torch.float64) * 4, [1.0], lr=2.5,
                                          times=[2.5 * k for k in range(400)])
    assert flow.diverged and flow.diverged_at == 7 and flow.params.shape == (7, 1) and flow.status == "left the ball"
    assert bool(torch.isfinite(flow.params).all()) and bool(torch.isfinite(flow.loss).all())


def test_train_diagonal_net_recording_often_reports_divergence():
    # record_every < 256 raised LinAlgError (eigvalsh of a NaN Gauss-Newton matrix) at 10x
    data = stability.sparse_regression()
    out = stability.train_diagonal_net(data.X, data.y, lr=0.7, steps=300, record_every=100)
    assert bool(out.diverged) and int(out.diverged_at) > 0
    assert bool(torch.isfinite(out.lam_max).all()) and bool(torch.isfinite(out.loss_history).all())


def test_sparse_diagonal_net_histories_stay_finite_after_divergence():
    # diverged=True came with NaN beta and loss histories
    out = saddles.train_diagonal_net_sparse([1.0, 0.5], init_scale=0.1, lr=1.0, steps=300, record_every=50)
    assert out.diverged and out.diverged_at > 0
    assert bool(torch.isfinite(out.beta).all()) and bool(torch.isfinite(out.loss).all())


def test_perturbation_growth_flags_divergence_and_keeps_its_length():
    # at 10x the critical rate 43 of 51 distances were inf or NaN, with no flag
    data, crit0 = _diag_net()
    at = models.train_diagonal_net(data.X, data.y, lr=0.5 * crit0, steps=1500, record_every=1500)
    crit = 2 / float(at.lam_max)
    fast = stability.perturbation_growth(at.u, at.v, data.X, data.y, lr=10 * crit, steps=50)
    assert fast.diverged and fast.diverged_at > 0 and fast.distance.shape == (51,)
    assert bool(torch.isfinite(fast.distance).all())
    assert bool((fast.distance[fast.diverged_at:] == fast.distance[fast.diverged_at]).all())  # frozen
    slow = stability.perturbation_growth(at.u, at.v, data.X, data.y, lr=0.5 * crit, steps=50)
    assert not slow.diverged and slow.diverged_at is None and float(slow.distance[-1]) < 1e-7


def test_expected_valley_loss_flags_an_overflowing_variance():
    # lr = 20 (100x 2/a) gave hill = inf; 1e300x raised OverflowError
    valley = landscapes.river_valley(mu=0.01, a=10.0)
    for lr in (20.0, 2e299):
        out = wsd.expected_valley_loss(valley, 10.0, schedule=schedules.constant_schedule(lr), steps=1000, sigma=3.0)
        assert out.diverged and out.diverged_at > 0 and math.isfinite(out.river) and math.isfinite(out.hill)


def test_expected_valley_loss_matches_the_geometric_sums():
    # constant eta: x_T = (1 - eta mu)^T x0 and v_T = eta^2 sigma^2 (1 - q^(2T)) / (1 - q^2), q = 1 - eta a
    valley = landscapes.river_valley(mu=0.01, a=10.0)
    eta, T, sigma, x0 = 0.15, 300, 3.0, 10.0
    river, hill = wsd.expected_valley_loss(valley, x0, schedule=schedules.constant_schedule(eta), steps=T,
                                           sigma=sigma)
    q = 1 - eta * 10.0
    assert river == pytest.approx(0.5 * 0.01 * ((1 - eta * 0.01) ** T * x0) ** 2, rel=1e-12)
    assert hill == pytest.approx(0.5 * 10.0 * eta**2 * sigma**2 * (1 - q ** (2 * T)) / (1 - q**2), rel=1e-12)


def test_relu_net_far_past_stability_keeps_a_finite_loss_history():
    # at 1e300x, 200 of the 201 recorded losses were NaN
    x = torch.linspace(-1, 1, 8, dtype=torch.float64)
    out = models.train_relu_1d(x, x.abs(), width=4, init_scale=0.5, lr=1e300, steps=200, record_every=100)
    assert bool(out.diverged) and int(out.diverged_at) > 0 and bool(torch.isfinite(out.loss).all())
