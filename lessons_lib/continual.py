"""Continual learning evaluated every iteration: the stability gap and the metrics that see it.

A class-incremental learner meets the digits two classes at a time, tasks ``{0, 1}, {2, 3}, ...``,
with one shared 10-way head. Experience replay (ER) keeps a small memory of each finished task and
trains on (eq-cl-replay)

    ``L_t(theta) = (1 - lambda) L(theta; B_new) + lambda L(theta; B_mem)``,

a batch of the current task and a batch drawn from the memory, weighted by the replay weight
``lambda``. Evaluating the old tasks after *every* iteration shows that their accuracy dips right
after a task switch and then recovers (the *stability gap*); evaluating only at task ends misses the
dip. The continual-evaluation metrics (eq-cl-metrics) make the dip a number:

* ``min-ACC`` of a finished task: its lowest accuracy while later tasks train;
* ``WC-ACC`` at an evaluation: the mean of the current task's accuracy and every earlier task's
  min-ACC so far (a worst-case accuracy);
* ``WF^w``: the largest drop ``A_i - A_j`` (``i < j``) within ``w`` consecutive evaluations.

The paper's explanation of the recovery: right after a switch the replay gradient is near zero
(the old tasks still fit), so the new task's gradient alone moves the weights until the old loss
has risen; :func:`train_continual` records both gradient norms so a reader can see it.

Evaluation draws no random numbers: the evaluation period changes what is seen, never the run.

References:
    De Lange, van de Ven & Tuytelaars (2023), Continual evaluation for lifelong learning: identifying
    the stability gap, ICLR, arXiv:2205.13452 (metrics as in their code, Mattdl/ContinualEvaluation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from . import models
from .backend import Record, as_generator, check_count, check_flag, check_positive, check_real
from .run import run


@dataclass(frozen=True)
class Task:
    """One task of a continual sequence (tensors on the device they were made on).

    Attributes:
        X_train: inputs, shape ``(n_train, 64)``, pixels in ``[0, 1]``.
        y_train: labels ``0..9``, long tensor of shape ``(n_train,)``.
        X_test: inputs, shape ``(n_test, 64)``.
        y_test: labels, shape ``(n_test,)``.
        classes: the labels this task contains.
    """

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple[int, ...]


def split_digits(*, n_tasks: int = 5, test_fraction: float = 0.3, generator: int | torch.Generator = 0,
                 device: torch.device | str | None = None) -> list[Task]:
    """Class-incremental digits: ``n_tasks`` tasks of ``10 / n_tasks`` consecutive classes each.

    A thin layer over :func:`lessons_lib.models.digits_split` (one shuffled train/test split, float32),
    cut by class: with ``n_tasks = 5`` the tasks are ``{0, 1}, {2, 3}, ..., {8, 9}``.

    Args:
        n_tasks: number of tasks, a divisor of 10 (1, 2, 5 or 10).
        test_fraction: share of the 1,797 digits held out for evaluation, in ``(0, 1)``.
        generator: seed or generator of the shuffle.
        device: where the tensors live.

    Returns:
        A list of :class:`Task`.
    """
    n_tasks = check_count(n_tasks, name="n_tasks")
    if 10 % n_tasks:
        raise ValueError(f"n_tasks: expected a divisor of 10 (1, 2, 5 or 10), got {n_tasks}")
    data = models.digits_split(test_fraction=test_fraction, generator=generator, device=device)
    per = 10 // n_tasks
    tasks = []
    for k in range(n_tasks):
        classes = tuple(range(k * per, (k + 1) * per))
        tr = (data.y_train >= classes[0]) & (data.y_train <= classes[-1])
        te = (data.y_test >= classes[0]) & (data.y_test <= classes[-1])
        tasks.append(Task(data.X_train[tr], data.y_train[tr], data.X_test[te], data.y_test[te], classes))
    return tasks


def rotate_images(X: torch.Tensor, *, angle: float) -> torch.Tensor:
    """The 8x8 digits ``X`` (shape ``(n, 64)``) rotated by ``angle`` degrees about their centre.

    Bilinear interpolation, zero outside the image; ``angle = 0`` returns ``X`` unchanged (to rounding).
    """
    if not isinstance(X, torch.Tensor) or not X.is_floating_point() or X.ndim != 2 or X.shape[1] != 64:
        raise ValueError(f"X: expected a float tensor of shape (n, 64), got {getattr(X, 'shape', type(X).__name__)}")
    if not bool(torch.isfinite(X).all()):
        raise ValueError("X: contains NaN or infinite values")
    a = math.radians(check_real(angle, name="angle"))
    c, s = math.cos(a), math.sin(a)
    theta = torch.tensor([[c, -s, 0.0], [s, c, 0.0]], dtype=X.dtype, device=X.device).expand(len(X), 2, 3)
    img = X.reshape(-1, 1, 8, 8)
    grid = torch.nn.functional.affine_grid(theta, list(img.shape), align_corners=False)
    out = torch.nn.functional.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.reshape(-1, 64)


def rotated_digits(*, angles: Sequence[float] = (0.0, 90.0), test_fraction: float = 0.3,
                   generator: int | torch.Generator = 0, device: torch.device | str | None = None) -> list[Task]:
    """Domain-incremental digits: every task holds all ten classes, task ``k`` rotated by ``angles[k]``.

    Each task uses its own disjoint share of the training digits (so no task replays another's
    images), and the whole test set rotated by the task's angle. The angle between consecutive
    tasks is a knob for how dissimilar they are.

    Args:
        angles: rotation of each task in degrees, at least two numbers.
        test_fraction: share of the digits held out for evaluation, in ``(0, 1)``.
        generator: seed or generator of the shuffle.
        device: where the tensors live.
    """
    if not isinstance(angles, (list, tuple)) or len(angles) < 2:
        raise ValueError(f"angles: expected a sequence of at least two angles, got {angles!r}")
    angles = [check_real(a, name="angles") for a in angles]
    data = models.digits_split(test_fraction=test_fraction, generator=generator, device=device)
    parts = torch.arange(len(data.y_train), device=data.y_train.device) % len(angles)
    classes = tuple(range(10))
    return [Task(rotate_images(data.X_train[parts == k], angle=a), data.y_train[parts == k],
                 rotate_images(data.X_test, angle=a), data.y_test, classes) for k, a in enumerate(angles)]


@dataclass(frozen=True)
class ContinualRun(Record):
    """What :func:`train_continual` returns (on the host).

    Attributes:
        acc: test accuracy of every task at every evaluation, shape ``(n_evals, n_tasks)``.
        step: the iteration of each evaluation (0 = before training), long, shape ``(n_evals,)``.
        task: the task being trained at each evaluation (0-based; the evaluation at a task's last
            iteration belongs to that task), long, shape ``(n_evals,)``.
        boundaries: the iteration at which each task after the first starts, shape ``(n_tasks - 1,)``.
        grad_new: ``||grad L(theta; B_new)||`` at every iteration, shape ``(n_iters,)``.
        grad_replay: ``||grad L(theta; B_mem)||`` at every iteration, 0 where there is no replay term
            (the first task, or ``replay=False``), shape ``(n_iters,)``.
        params: the final flat parameters of the 64-hidden-10 MLP.
        diverged: whether the weights left the ball of :func:`lessons_lib.run.run` (then frozen).
        diverged_at: the iteration at which they did, ``-1`` if never.
    """

    acc: torch.Tensor
    step: torch.Tensor
    task: torch.Tensor
    boundaries: torch.Tensor
    grad_new: torch.Tensor
    grad_replay: torch.Tensor
    params: torch.Tensor
    diverged: bool = False
    diverged_at: int = -1


def _check_tasks(tasks) -> list[Task]:
    if not isinstance(tasks, (list, tuple)) or not tasks or not all(isinstance(t, Task) for t in tasks):
        raise ValueError(f"tasks: expected a non-empty list of Task (see split_digits), got {type(tasks).__name__}")
    for t in tasks:
        if len(t.y_train) == 0 or len(t.y_test) == 0:
            raise ValueError("tasks: every task needs training and test samples")
    return list(tasks)


def train_continual(tasks: Sequence[Task], *, lr: float = 0.1, iters_per_task: int = 150, batch: int = 16,
                    replay: bool = True, memory_per_task: int = 40, replay_weight: float = 0.5, hidden: int = 128,
                    eval_every: int = 1, generator: int | torch.Generator = 0) -> ContinualRun:
    """SGD through a sequence of tasks with experience replay (eq-cl-replay), evaluated as it goes.

    Each iteration draws ``batch`` samples of the current task and, once a memory exists and
    ``replay`` is on, ``batch`` samples of the memory, and takes one SGD step on
    ``(1 - replay_weight) L_new + replay_weight L_mem``. At the end of a task, ``memory_per_task``
    of its training samples (drawn at random, without replacement) join the memory. Every task's
    test accuracy is measured once before training, every ``eval_every`` iterations (counted from
    each task's start) and at each task's end; evaluation uses no random numbers, so ``eval_every``
    never changes the run.
    De Lange, van de Ven & Tuytelaars (2023), arXiv:2205.13452.

    Args:
        tasks: the sequence, e.g. from :func:`split_digits`.
        lr: SGD step size, ``> 0``.
        iters_per_task: SGD iterations on each task.
        batch: samples per batch (new and replayed each).
        replay: whether to replay the memory (``False``: plain fine-tuning).
        memory_per_task: samples stored per finished task (at most its training set).
        replay_weight: ``lambda`` in ``[0, 1]``, the weight of the replay loss.
        hidden: width of the hidden layer of the ReLU MLP ``64-hidden-10``.
        eval_every: evaluation period ``rho_eval >= 1`` in iterations.
        generator: seed or generator of the initialisation, the batches and the memory.

    Returns:
        A :class:`ContinualRun`.
    """
    tasks = _check_tasks(tasks)
    lr = check_positive(lr, name="lr")
    iters_per_task = check_count(iters_per_task, name="iters_per_task")
    batch = check_count(batch, name="batch")
    replay = check_flag(replay, name="replay")
    memory_per_task = check_count(memory_per_task, name="memory_per_task")
    replay_weight = check_real(replay_weight, name="replay_weight")
    if not 0.0 <= replay_weight <= 1.0:
        raise ValueError(f"replay_weight: expected a weight in [0, 1], got {replay_weight}")
    hidden = check_count(hidden, name="hidden")
    eval_every = check_count(eval_every, name="eval_every")
    device = tasks[0].X_train.device
    gen = as_generator(generator, device)
    model = models.mlp_classifier((tasks[0].X_train.shape[1], hidden, 10))
    params = model.init(gen, dtype=tasks[0].X_train.dtype, device=device)
    X_eval = torch.cat([t.X_test for t in tasks])
    y_eval = torch.cat([t.y_test for t in tasks])
    owner = torch.cat([torch.full((len(t.y_test),), k, device=device) for k, t in enumerate(tasks)])
    counts = torch.bincount(owner, minlength=len(tasks)).to(torch.float64)
    grad = torch.func.grad(model.loss)

    def evaluate(theta, t):
        with torch.no_grad():
            right = (model.logits(theta, X_eval).argmax(-1) == y_eval).to(torch.float64)
        return {"acc": torch.zeros(len(tasks), dtype=torch.float64, device=device).index_add(0, owner, right) / counts}

    mem_X, mem_y = X_eval[:0], y_eval[:0]
    records, steps, owners, g_new, g_rep = [], [], [], [], []
    diverged_at = -1
    for k, task in enumerate(tasks):
        use_memory = replay and len(mem_y) > 0 and replay_weight > 0

        def step(theta, t, eta, task=task, use_memory=use_memory, mem_X=mem_X, mem_y=mem_y):
            i = torch.randint(len(task.y_train), (batch,), generator=gen, device=device)
            gn = grad(theta, task.X_train[i], task.y_train[i])
            g_new.append(gn.norm())
            if not use_memory:
                g_rep.append(torch.zeros((), device=device))
                return theta - eta * gn
            j = torch.randint(len(mem_y), (batch,), generator=gen, device=device)
            gr = grad(theta, mem_X[j], mem_y[j])
            g_rep.append(gr.norm())
            return theta - eta * ((1 - replay_weight) * gn + replay_weight * gr)

        out = run(step, params, steps=iters_per_task, lr=lr, record=evaluate, record_every=eval_every)
        first = 0 if k == 0 else 1  # a later task's record at its step 0 repeats the previous task's end
        records.append(out.history["acc"][first:])
        steps.append(out.steps[first:] + k * iters_per_task)
        owners.append(torch.full((len(out.steps) - first,), k, dtype=torch.long))
        if bool(out.diverged) and diverged_at < 0:
            diverged_at = int(out.diverged_at) + k * iters_per_task
        params = out.state.to(device)  # a Record keeps its tensors on the host; the next task trains on the device
        done = len(out.steps) - 1
        if done < iters_per_task:  # the loop stopped at a divergence: pad the missing iterations
            g_new.extend([g_new[-1]] * (iters_per_task - len(g_new) + k * iters_per_task))
            g_rep.extend([g_rep[-1]] * (iters_per_task - len(g_rep) + k * iters_per_task))
        keep = torch.randperm(len(task.y_train), generator=gen, device=device)[:memory_per_task]
        mem_X, mem_y = torch.cat([mem_X, task.X_train[keep]]), torch.cat([mem_y, task.y_train[keep]])
    g_new_t = torch.stack(g_new[:len(tasks) * iters_per_task]).to(torch.float64)
    g_rep_t = torch.stack(g_rep[:len(tasks) * iters_per_task]).to(torch.float64)
    return ContinualRun(acc=torch.cat(records), step=torch.cat(steps), task=torch.cat(owners),
                        boundaries=torch.arange(1, len(tasks), dtype=torch.long) * iters_per_task,
                        grad_new=g_new_t, grad_replay=g_rep_t, params=params,
                        diverged=diverged_at >= 0, diverged_at=diverged_at)


# --- the continual-evaluation metrics (eq-cl-metrics) ----------------------------------------------


def _check_matrix(acc, task_of_eval) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(acc, torch.Tensor) or not acc.is_floating_point() or acc.ndim != 2 or acc.numel() == 0:
        raise ValueError(f"acc: expected a non-empty float tensor of shape (n_evals, n_tasks), got "
                         f"{getattr(acc, 'shape', type(acc).__name__)}")
    if not bool(torch.isfinite(acc).all()):
        raise ValueError("acc: contains NaN or infinite values")
    if (not isinstance(task_of_eval, torch.Tensor) or task_of_eval.dtype != torch.long
            or task_of_eval.shape != acc.shape[:1]):
        raise ValueError(f"task_of_eval: expected a long tensor of shape ({acc.shape[0]},), got "
                         f"{getattr(task_of_eval, 'shape', type(task_of_eval).__name__)}")
    if bool((task_of_eval < 0).any()) or bool((task_of_eval >= acc.shape[1]).any()):
        raise ValueError(f"task_of_eval: every entry must be a task index in 0..{acc.shape[1] - 1}")
    if bool((task_of_eval.diff() < 0).any()):
        raise ValueError("task_of_eval: tasks must come in order (a non-decreasing sequence)")
    return acc.to(torch.float64), task_of_eval.to(acc.device)


def min_acc(acc: torch.Tensor, task_of_eval: torch.Tensor, *, task: int) -> float:
    """min-ACC of a finished task (eq-cl-metrics): its lowest accuracy at the evaluations of later tasks.

    ``acc[j, task]`` over the evaluations ``j`` with ``task_of_eval[j] > task``; the evaluations of
    the task itself (including its last one) are not counted. De Lange, van de Ven & Tuytelaars
    (2023), arXiv:2205.13452.

    Args:
        acc: accuracies, shape ``(n_evals, n_tasks)`` (e.g. :attr:`ContinualRun.acc`).
        task_of_eval: the task trained at each evaluation, long, shape ``(n_evals,)``, non-decreasing.
        task: the finished task (0-based).

    Raises:
        ValueError: if no later task was evaluated (the task has not finished).
    """
    acc, task_of_eval = _check_matrix(acc, task_of_eval)
    task = check_count(task, name="task", minimum=0)
    if task >= acc.shape[1]:
        raise ValueError(f"task: expected a task index below {acc.shape[1]}, got {task}")
    later = task_of_eval > task
    if not bool(later.any()):
        raise ValueError(f"task: task {task} has no later evaluation, so no min-ACC yet")
    return float(acc[later, task].min())


def wc_acc(acc: torch.Tensor, task_of_eval: torch.Tensor) -> torch.Tensor:
    """WC-ACC at every evaluation (eq-cl-metrics): the mean of the current task's accuracy and every
    earlier task's min-ACC so far, shape ``(n_evals,)``.

    At evaluation ``k`` with current task ``c``:
    ``(acc[k, c] + sum_{i < c} min_{j <= k, task_of_eval[j] > i} acc[j, i]) / (c + 1)``.
    De Lange, van de Ven & Tuytelaars (2023), arXiv:2205.13452.

    Args:
        acc: accuracies, shape ``(n_evals, n_tasks)``.
        task_of_eval: the task trained at each evaluation, long, shape ``(n_evals,)``, non-decreasing.
    """
    acc, task_of_eval = _check_matrix(acc, task_of_eval)
    n_evals, n_tasks = acc.shape
    running = torch.full((n_tasks,), math.inf, dtype=torch.float64, device=acc.device)
    out = torch.empty(n_evals, dtype=torch.float64, device=acc.device)
    for k in range(n_evals):
        c = int(task_of_eval[k])
        running[:c] = torch.minimum(running[:c], acc[k, :c])
        out[k] = (acc[k, c] + running[:c].sum()) / (c + 1)
    return out


def windowed_forgetting(curve: torch.Tensor, *, window: int = 10) -> float:
    """WF^w (eq-cl-metrics): the largest drop ``A_i - A_j`` with ``i < j <= i + w - 1``, 0 if none.

    Args:
        curve: one task's accuracies at consecutive evaluations, shape ``(n,)``.
        window: ``w >= 2``, the number of consecutive evaluations a drop may span.
    """
    if not isinstance(curve, torch.Tensor) or not curve.is_floating_point() or curve.ndim != 1 or len(curve) == 0:
        raise ValueError(f"curve: expected a non-empty 1-d float tensor, got {getattr(curve, 'shape', type(curve))}")
    if not bool(torch.isfinite(curve).all()):
        raise ValueError("curve: contains NaN or infinite values")
    window = check_count(window, name="window", minimum=2)
    c = curve.to(torch.float64)
    best = 0.0
    for lag in range(1, min(window, len(c))):
        best = max(best, float((c[:-lag] - c[lag:]).max()))
    return best


def dip(run_: ContinualRun, *, task: int = 0, during: int = 2) -> dict[str, float]:
    """The stability gap of ``task`` while task ``during`` trains: accuracy before the switch, the
    minimum, the iterations from the switch to the minimum, and the accuracy at the end of ``during``.

    Args:
        run_: a :class:`ContinualRun`.
        task: the old task watched (0-based).
        during: the later task whose training is examined (0-based, ``> task``).
    """
    if not isinstance(run_, ContinualRun):
        raise ValueError(f"run_: expected a ContinualRun, got {type(run_).__name__}")
    n_tasks = run_.acc.shape[1]
    task = check_count(task, name="task", minimum=0)
    during = check_count(during, name="during", minimum=1)
    if not task < during < n_tasks:
        raise ValueError(f"during: expected a task after {task} and below {n_tasks}, got {during}")
    inside = run_.task == during
    before = float(run_.acc[run_.task == during - 1][-1, task])
    curve = run_.acc[inside, task]
    j = int(curve.argmin())
    start = int(run_.boundaries[during - 1])
    return {"before": before, "min": float(curve[j]), "at": int(run_.step[inside][j]) - start,
            "end": float(curve[-1])}
