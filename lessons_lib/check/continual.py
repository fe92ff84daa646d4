"""Self-checks of the chapter on the stability gap (stability-gap.ipynb)."""

from __future__ import annotations

from typing import Callable

import torch

from .. import continual
from .core import CheckResult, _is_bool, _missing, check_function


def _matrix_cases() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    f64 = dict(dtype=torch.float64)
    # three tasks; task 0 dips right after each switch and recovers, task 1 dips during task 2
    acc3 = torch.tensor([[0.10, 0.00, 0.00], [0.80, 0.00, 0.00], [0.95, 0.00, 0.00],
                         [0.60, 0.40, 0.00], [0.85, 0.90, 0.00], [0.90, 0.95, 0.00],
                         [0.70, 0.50, 0.30], [0.75, 0.80, 0.85], [0.88, 0.70, 0.92]], **f64)
    task3 = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
    # two tasks, the old one at its lowest on its own last evaluation (which must not count)
    acc2 = torch.tensor([[0.2, 0.1], [0.5, 0.1], [0.97, 0.3], [0.99, 0.6], [0.98, 0.9]], **f64)
    task2 = torch.tensor([0, 0, 1, 1, 1])
    # four tasks, one evaluation per task: task-end evaluation only
    acc4 = torch.tensor([[0.9, 0.0, 0.0, 0.0], [0.7, 0.9, 0.0, 0.0], [0.8, 0.6, 0.95, 0.0],
                         [0.5, 0.7, 0.8, 1.0]], **f64)
    task4 = torch.tensor([0, 1, 2, 3])
    return {"three tasks, nine evaluations": (acc3, task3),
            "two tasks, the old task lowest at its own last evaluation": (acc2, task2),
            "four tasks, one evaluation each": (acc4, task4)}


# the inputs (acc, task_of_eval) that min_and_wc_acc hands the learner's function, by description
MATRIX_CASES = _matrix_cases()


def _reference(acc, task_of_eval):
    n_tasks = acc.shape[1]
    mins = [continual.min_acc(acc, task_of_eval, task=i) for i in range(n_tasks - 1)]
    return torch.cat([torch.tensor(mins, dtype=torch.float64), continual.wc_acc(acc, task_of_eval)])


def _flat(value, n_tasks: int):
    """A learner's ``(min_accs, wc)`` as one vector; anything else unchanged (for the verdict to explain)."""
    if _missing(value) or not isinstance(value, (tuple, list)) or len(value) != 2:
        return value
    try:
        parts = [torch.as_tensor(v.detach().cpu() if isinstance(v, torch.Tensor) else v, dtype=torch.float64)
                 .reshape(-1) for v in value]
    except Exception:
        return value
    if len(parts[0]) != n_tasks - 1 and len(parts[1]) != n_tasks - 1:
        return value
    return torch.cat(parts)  # the pair in the learner's order: a swapped pair gets its own hint


def _variants(acc, task_of_eval) -> dict[str, torch.Tensor]:
    """What common slips compute, each as the flattened ``(min_accs, wc)``."""
    acc = acc.to(torch.float64)
    n_evals, n_tasks = acc.shape
    own = torch.tensor([float(acc[task_of_eval >= i, i].min()) for i in range(n_tasks - 1)], dtype=torch.float64)
    final_min = torch.tensor([float(acc[task_of_eval > i, i].min()) for i in range(n_tasks - 1)],
                             dtype=torch.float64)
    current = torch.stack([acc[k, :int(task_of_eval[k]) + 1].mean() for k in range(n_evals)])
    whole_run = torch.stack([(acc[k, int(task_of_eval[k])] + final_min[:int(task_of_eval[k])].sum())
                             / (int(task_of_eval[k]) + 1) for k in range(n_evals)])
    wc = continual.wc_acc(acc, task_of_eval)
    by_all = torch.stack([wc[k] * (int(task_of_eval[k]) + 1) / n_tasks for k in range(n_evals)])
    return {"own": torch.cat([own, wc]), "current": torch.cat([final_min, current]),
            "whole_run": torch.cat([final_min, whole_run]), "by_all": torch.cat([final_min, by_all])}


def _hint(case, value) -> str:
    acc, task_of_eval = case
    n_tasks = acc.shape[1]
    v = torch.as_tensor(value, dtype=torch.float64) if isinstance(value, torch.Tensor) else None
    if v is None or v.ndim != 1 or len(v) != n_tasks - 1 + acc.shape[0]:
        return (f"return a pair (min_accs, wc): min_accs with one entry per finished task ({n_tasks - 1} here), "
                f"wc with one entry per evaluation ({acc.shape[0]} here)")
    ref = _reference(acc, task_of_eval)
    k = n_tasks - 1
    if torch.allclose(v, torch.cat([ref[k:], ref[:k]]), rtol=1e-6, atol=1e-9):
        return ("your values look right but come in the order (wc, min_accs): return the pair as "
                "(min_accs, wc)")
    slips = _variants(acc, task_of_eval)

    def near(a, part=slice(None)):
        return bool(torch.allclose(v[part], a[part], rtol=1e-6, atol=1e-9))

    if near(slips["own"], slice(0, k)) and not near(ref, slice(0, k)):
        return ("your min-ACC counts evaluations made while the task itself was still training (for instance its "
                "own last one): take the minimum only over evaluations of later tasks")
    if near(ref, slice(0, k)):
        if near(slips["current"], slice(k, None)):
            return ("your WC-ACC averages the earlier tasks' current accuracies: it is a worst case, so each earlier "
                    "task enters with its min-ACC, the lowest accuracy seen so far")
        if near(slips["whole_run"], slice(k, None)):
            return ("your WC-ACC uses each earlier task's min-ACC over the whole run, including evaluations still "
                    "in the future: at evaluation k, take the minimum over evaluations up to k only")
        if near(slips["by_all"], slice(k, None)):
            return ("your WC-ACC divides by the total number of tasks: average over the tasks seen so far, the "
                    "current one and those before it")
        return "your min-ACC values agree, your WC-ACC values do not yet: check the running minimum and the mean"
    return ("your min-ACC values are not right yet: for each finished task i, the smallest acc[j, i] over the "
            "evaluations j whose task is later than i")


def min_and_wc_acc(fn: Callable) -> CheckResult:
    """Check a learner's ``fn(acc, task_of_eval) -> (min_accs, wc)`` (eq-cl-metrics).

    ``acc`` has shape ``(n_evals, n_tasks)``, ``task_of_eval`` the task trained at each evaluation;
    ``min_accs`` holds the min-ACC of tasks ``0 .. n_tasks - 2`` over the whole run, ``wc`` the WC-ACC
    at every evaluation. Messages name the case and describe the learner's output, never the answer.
    """
    if not _missing(fn) and callable(fn) and not _is_bool(fn):
        learner = fn

        def fn(acc, task_of_eval):
            return _flat(learner(acc, task_of_eval), acc.shape[1])

    return check_function(fn, _reference, MATRIX_CASES, rtol=1e-6, close_rtol=0.05, hint=_hint,
                          close_note="nearly there: are the accuracies rounded somewhere?",
                          praise="including an old task that is lowest while it is still being trained")
