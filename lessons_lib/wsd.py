"""Warmup-stable-decay in a river valley: SGD on the analytic valley and on a bigram language model.

On the straight valley (``g = 0``) with gradient noise ``sigma xi`` in the hill direction, SGD is
``y_{t+1} = (1 - eta_t a) y_t - eta_t sigma xi_t`` and ``x_{t+1} = (1 - eta_t mu) x_t``. Hence

* the hill loss ``E[a y^2 / 2]`` settles at ``eta sigma^2 / (2 (2 - eta a))`` under a constant rate
  (eq-wsd-hill), and diverges iff ``eta > 2 / a``;
* the river coordinate is ``x_T = x_0 prod_t (1 - eta_t mu) ~ x_0 exp(-mu sum_t eta_t)``
  (eq-wsd-river): river progress depends only on the area under the schedule.

So the stable phase makes river progress, the decay removes the hill noise, and both matter.

Both trainers are step functions on :func:`lessons_lib.run.run`, with the schedule as its learning
rate and divergence in its one meaning (the state leaves a ball of radius ``blowup`` relative to its
start; the run is frozen and flagged). Their histories cover every recorded step: after the loop
stops (once every run has diverged) the frozen state's values are repeated.

The bigram task is our reconstruction of the paper's picture of how a river valley arises in
next-token prediction. Its excess loss splits exactly, row by row, into two parts
(:func:`support_split`, eq-wsd-leakage):

* the *leakage* ``-log sum_{j in supp P_i} q_ij``, the probability mass the model still puts on
  successors that never occur. It goes to 0 only as those logits go to ``-inf``, so it is progress
  along a river. A deterministic token's whole excess is leakage, and so is most of a stochastic
  token's excess early in training;
* the *within-support* KL between ``P_i`` and the model renormalised on the support: the shape of
  the prediction among the successors that do occur. Only stochastic tokens have one; SGD noise
  keeps it above 0 at a rate set by the current learning rate, so it is the hill.

Splitting by token kind instead (deterministic tokens = river, stochastic tokens = hill) credits
the stochastic tokens' leakage, a progress quantity, to the hill.

References:
    Wen, Li, Wang, Hall, Liang & Ma (2025), Understanding Warmup-Stable-Decay Learning Rates: A River
    Valley Loss Landscape Perspective, ICLR, arXiv:2410.05192.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from .backend import Record, as_generator, as_tensor, check_count, check_positive, check_real, default_device
from .landscapes import RiverValley
from .run import learning_rates, run
from .schedules import constant_schedule, wsd_branch_plan, wsd_s_plan, wsd_s_schedule, wsd_schedule

Schedule = Callable[[torch.Tensor], torch.Tensor]


def stationary_hill_loss(lr: float, a: float, sigma: float) -> float:
    """``lr sigma^2 / (2 (2 - lr a))`` (eq-wsd-hill); ``inf`` when ``lr a >= 2`` (the hill diverges)."""
    lr, a = check_positive(lr, name="lr"), check_positive(a, name="a")
    sigma = check_positive(sigma, name="sigma", allow_zero=True)
    return math.inf if lr * a >= 2 else lr * sigma**2 / (2 * (2 - lr * a))


def river_progress(x0: float, mu: float, lrs: torch.Tensor) -> float:
    """``x0 exp(-mu sum_t lr_t)`` (eq-wsd-river) for the learning rates ``lrs`` of a run."""
    x0, mu = check_real(x0, name="x0"), check_positive(mu, name="mu")
    lrs = as_tensor(lrs, name="lrs")
    if bool((lrs < 0).any()):
        raise ValueError(f"lrs: learning rates must be >= 0, got a minimum of {float(lrs.min())}")
    return x0 * math.exp(-mu * float(lrs.sum()))


def check_valley(valley) -> RiverValley:
    """Return ``valley`` if it is a :class:`~lessons_lib.landscapes.RiverValley`; else raise a ValueError naming it."""
    if not isinstance(valley, RiverValley):
        raise ValueError(f"valley: expected a RiverValley (landscapes.river_valley), got {type(valley).__name__}")
    return valley


def check_task(task) -> BigramTask:
    """Return ``task`` if it is a :class:`BigramTask`; else raise a ValueError naming it."""
    if not isinstance(task, BigramTask):
        raise ValueError(f"task: expected a BigramTask (wsd.bigram_task), got {type(task).__name__}")
    return task


def _rates(schedule: Schedule, steps: int) -> torch.Tensor:
    """The schedule's learning rates (float64, on the host), errors naming ``schedule``."""
    if not callable(schedule):
        raise ValueError(f"schedule: expected a callable step -> learning rate, got {type(schedule).__name__}")
    try:
        return learning_rates(schedule, steps)
    except ValueError as exc:
        raise ValueError(f"schedule: {str(exc).removeprefix('lr: ')}") from None


@dataclass(frozen=True)
class RiverHill(Record):
    """A loss split into its ``river`` and ``hill`` parts; ``total`` is their sum."""

    river: torch.Tensor
    hill: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        return self.river + self.hill


@dataclass(frozen=True)
class ValleyRun(RiverHill):
    """SGD on a river valley: ``params`` (steps+1, R, 2), ``river``/``hill`` (steps+1, R), ``lr`` (steps,).

    ``diverged`` and ``diverged_at`` have shape ``(R,)`` (``-1``: did not diverge); a diverged
    replica's rows after ``diverged_at`` repeat its frozen state.
    """

    params: torch.Tensor
    lr: torch.Tensor
    diverged: torch.Tensor
    diverged_at: torch.Tensor

    @property
    def loss(self) -> torch.Tensor:
        """The total loss (``river + hill``), shape ``(steps+1, R)``."""
        return self.total


def sgd_valley(valley: RiverValley, start, *, schedule: Schedule, steps: int, sigma: float, replicas: int = 1,
               generator: int | torch.Generator = 0, blowup: float = 1e6) -> ValleyRun:
    """SGD with hill-direction gradient noise on ``valley`` (eq-wsd-sgd).

    ``theta_{t+1} = theta_t - eta_t (grad L(theta_t) + sigma xi_t e_y)`` with ``xi_t ~ N(0, 1)``
    independent across ``replicas``; ``e_y`` is the hill direction of the straight valley.

    Args:
        valley: the landscape.
        start: ``(x0, y0)``, or one start per replica of shape ``(replicas, 2)``; a tensor sets the
            device, otherwise :func:`~lessons_lib.backend.default_device` is used.
        schedule: ``step -> eta`` (see :mod:`lessons_lib.schedules`), the learning rate of the loop.
        steps: number of updates.
        sigma: noise scale.
        replicas: independent runs, batched in the second dimension.
        generator: seed or generator for the noise (all ``steps x replicas`` values are drawn up front).
        blowup: a replica whose ``|theta|`` leaves ``blowup * max(1, |theta_0|)`` (or stops being
            finite) is frozen and flagged as diverged (:mod:`lessons_lib.run`).
    """
    steps = check_count(steps, name="steps")
    replicas = check_count(replicas, name="replicas")
    sigma = check_positive(sigma, name="sigma", allow_zero=True)
    _rates(schedule, steps)
    check_valley(valley)
    device = start.device if isinstance(start, torch.Tensor) else default_device()
    theta = as_tensor(start, name="start", device=device)
    if theta.shape not in ((2,), (replicas, 2)):
        raise ValueError(f"start: expected (x0, y0) or shape ({replicas}, 2), got shape {tuple(theta.shape)}")
    gen = as_generator(generator, device)
    noise = sigma * torch.randn(steps, replicas, generator=gen, dtype=torch.float64, device=device)

    def step(theta, t, lr):
        g = valley.grad(theta)
        g[:, 1] += noise[t]
        return theta - lr * g

    out = run(step, theta.expand(replicas, 2).clone(), steps=steps, lr=schedule, blowup=blowup, batched=True)
    params = out.on_grid(steps)[1]["params"]
    return ValleyRun(river=valley.river(params), hill=valley.hill(params), params=params, lr=out.lr,
                     diverged=out.diverged, diverged_at=out.diverged_at)


# --- the bigram language model -------------------------------------------------------------------

def support_split(p: torch.Tensor, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``KL(p || softmax(logits))`` row by row into leakage and within-support parts (eq-wsd-leakage).

    With ``q = softmax(logits)``, the support ``S = {j : p_j > 0}`` and the mass ``m = sum_{j in S} q_j``
    that the model puts on it,

    ``KL(p || q) = -log m + KL(p || q_S / m)``:

    the *leakage* ``-log m >= 0`` (mass on successors that never occur; a river quantity, 0 only in
    the limit of infinitely negative logits off the support) plus the *within-support* KL between
    ``p`` and the model renormalised on ``S`` (the hill). Computed with log-sum-exp, so large
    logits neither overflow nor underflow.

    Args:
        p: target distributions, shape ``(..., V)``, each row >= 0 and summing to 1.
        logits: model logits, shape ``(..., V)`` (broadcast against ``p``).

    Returns:
        ``(leak, within)``, each of the broadcast batch shape ``(...)``.

    Raises:
        ValueError: naming ``p`` (negative entries, rows not summing to 1, not finite) or ``logits``
            (not finite, or a shape that does not broadcast).

    References:
        Wen, Li, Wang, Hall, Liang & Ma (2025), Understanding Warmup-Stable-Decay Learning Rates: A
        River Valley Loss Landscape Perspective, ICLR, arXiv:2410.05192 (the bigram river valley; this
        split is ours).
    """
    p = as_tensor(p, name="p")
    logits = as_tensor(logits, name="logits", device=p.device)
    if p.ndim == 0 or logits.ndim == 0:
        raise ValueError("p: expected distributions over a last axis of size V, got a scalar"
                         if p.ndim == 0 else "logits: expected a last axis of size V, got a scalar")
    if not bool(torch.isfinite(p).all()) or bool((p < 0).any()):
        raise ValueError("p: entries must be finite and >= 0")
    if not torch.allclose(p.sum(dim=-1), torch.ones((), dtype=p.dtype, device=p.device), atol=1e-9):
        raise ValueError("p: every row must sum to 1")
    if not bool(torch.isfinite(logits).all()):
        raise ValueError("logits: must be finite")
    try:
        p, logits = torch.broadcast_tensors(p, logits)
    except RuntimeError:
        raise ValueError(f"logits: shape {tuple(logits.shape)} does not broadcast with p's {tuple(p.shape)}") from None
    support = p > 0
    logq = torch.log_softmax(logits, dim=-1)
    log_mass = torch.logsumexp(logq.masked_fill(~support, -math.inf), dim=-1)  # log m, <= 0
    logp = torch.where(support, p.log(), torch.zeros_like(p))
    within = torch.where(support, p * (logp - logq + log_mass.unsqueeze(-1)), torch.zeros_like(p)).sum(dim=-1)
    return (-log_mass).clamp(min=0), within.clamp(min=0)


@dataclass(frozen=True)
class BigramTask:
    """A bigram source over ``vocab`` tokens: the previous token is uniform, the next one follows ``P``.

    Attributes:
        P: transition matrix, shape ``(V, V)``; rows of deterministic tokens are one-hot.
        deterministic: bool mask ``(V,)`` of tokens with a single successor (the river).
        entropy_floor: the best achievable cross-entropy ``mean_i H(P_i)`` (nats).
    """

    P: torch.Tensor
    deterministic: torch.Tensor

    @property
    def vocab(self) -> int:
        return self.P.shape[0]

    @property
    def entropy_floor(self) -> float:
        logp = torch.where(self.P > 0, self.P.log(), torch.zeros_like(self.P))
        return float(-(self.P * logp).sum(dim=1).mean())

    def _logits(self, logits) -> torch.Tensor:
        logits = as_tensor(logits, name="logits", device=self.P.device)
        if logits.shape[-2:] != self.P.shape:
            raise ValueError(f"logits: expected shape (..., {self.P.shape[0]}, {self.P.shape[1]}), "
                             f"got {tuple(logits.shape)}")
        return logits

    def excess(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact population excess loss ``mean_i KL(P_i || softmax(W_i))`` split by *token kind*.

        Returns ``(deterministic, stochastic)``: each is the contribution of its tokens to the mean
        over all ``V`` previous tokens, so their sum is the total excess cross-entropy
        (eq-wsd-bigram). ``logits`` has shape ``(..., V, V)``; the results have shape ``(...)``.
        This is *not* the river/hill split: a stochastic token's excess is mostly leakage, a river
        quantity (see :meth:`split`).
        """
        logits = self._logits(logits)
        logq = torch.log_softmax(logits, dim=-1)
        logp = torch.where(self.P > 0, self.P.log(), torch.zeros_like(self.P))
        kl = (self.P * (logp - logq)).sum(dim=-1)  # (..., V)
        V = self.vocab
        return (kl * self.deterministic).sum(dim=-1) / V, (kl * ~self.deterministic).sum(dim=-1) / V

    def split(self, logits: torch.Tensor) -> RiverHill:
        """Exact population excess loss split into river (leakage) and hill (within-support) parts.

        ``river = mean_i leak_i`` and ``hill = mean_i within_i`` with the per-row parts of
        :func:`support_split` (eq-wsd-leakage); ``river + hill`` equals the sum of :meth:`excess`
        up to rounding. ``logits`` has shape ``(..., V, V)``; the parts have shape ``(...)``.
        """
        leak, within = support_split(self.P, self._logits(logits))
        return RiverHill(river=leak.mean(dim=-1), hill=within.mean(dim=-1))


def bigram_task(vocab: int = 40, *, deterministic_frac: float = 0.5, branching: int = 5,
                generator: int | torch.Generator = 0) -> BigramTask:
    """Half the tokens (``deterministic_frac``) have one fixed successor, the rest ``branching``
    equally likely successors; successors are drawn at random from the vocabulary (on
    :func:`~lessons_lib.backend.default_device`)."""
    V = check_count(vocab, name="vocab", minimum=2)
    branching = check_count(branching, name="branching", minimum=2)
    if branching > V:
        raise ValueError(f"branching: must be <= vocab = {V}, got {branching}")
    if not 0 <= check_real(deterministic_frac, name="deterministic_frac") <= 1:
        raise ValueError(f"deterministic_frac: must lie in [0, 1], got {deterministic_frac}")
    device = default_device()
    gen = as_generator(generator, device)
    n_det = round(deterministic_frac * V)
    P = torch.zeros(V, V, dtype=torch.float64, device=device)
    for i in range(V):
        succ = torch.randperm(V, generator=gen, device=device)[: 1 if i < n_det else branching]
        P[i, succ] = 1.0 / len(succ)
    det = torch.arange(V, device=device) < n_det
    return BigramTask(P, det)


@dataclass(frozen=True)
class BigramRun(RiverHill):
    """Excess loss over training, batched over seeds: ``river``/``hill``/``deterministic`` have shape ``(K, S)``.

    ``river`` is the leakage and ``hill`` the within-support part (:meth:`BigramTask.split`,
    eq-wsd-leakage); ``deterministic`` is the deterministic tokens' excess (all of it leakage, so
    part of ``river``); ``stochastic_leakage = river - deterministic`` is the part of the river that
    a split by token kind would have called hill. ``steps`` (K,) are the recorded steps, ``lr``
    (steps,) the schedule, ``logits`` (S, V, V) the final logit tables; ``diverged``/``diverged_at``
    (S,) flag seeds whose logits blew up (frozen there; their later records repeat the frozen values).
    """

    deterministic: torch.Tensor
    steps: torch.Tensor
    lr: torch.Tensor
    logits: torch.Tensor
    diverged: torch.Tensor
    diverged_at: torch.Tensor

    @property
    def stochastic_leakage(self) -> torch.Tensor:
        """The stochastic tokens' leakage, ``river - deterministic``, shape ``(K, S)``."""
        return self.river - self.deterministic

    @property
    def stochastic(self) -> torch.Tensor:
        """The stochastic tokens' whole excess (leakage plus within-support), shape ``(K, S)``."""
        return self.total - self.deterministic


def train_bigram(task: BigramTask, schedule: Schedule, *, steps: int, batch: int = 32, seeds: int = 3,
                 generator: int | torch.Generator = 0, record_every: int = 50,
                 init: torch.Tensor | None = None, blowup: float = 1e6) -> BigramRun:
    """SGD on the next-token cross-entropy of a ``V x V`` logit table (eq-wsd-bigram).

    Each step draws ``batch`` previous tokens uniformly and their successors from ``task.P``; the
    gradient of the mean cross-entropy on row ``i`` is ``softmax(W_i) - onehot(next)``. ``seeds``
    independent runs are trained side by side (leading dimension ``S``) on ``task.P``'s device;
    logits start at zero, or at ``init`` (shape ``(S, V, V)``) to resume a run, e.g. to branch off a
    decay. The excess loss is computed exactly on the population (no evaluation sampling) and
    recorded split into leakage (river) and within-support (hill) parts (eq-wsd-leakage). A seed
    whose logits leave ``blowup * max(1, |W_0|)`` diverges: it is frozen and flagged
    (:mod:`lessons_lib.run`).
    """
    check_task(task)
    steps = check_count(steps, name="steps")
    batch = check_count(batch, name="batch")
    seeds = check_count(seeds, name="seeds")
    record_every = check_count(record_every, name="record_every")
    _rates(schedule, steps)
    device = task.P.device
    gen = as_generator(generator, device)
    V = task.vocab
    W = torch.zeros(seeds, V, V, dtype=torch.float64, device=device)
    if init is not None:
        if not isinstance(init, torch.Tensor) or init.shape != W.shape:
            raise ValueError(f"init: expected logits of shape {tuple(W.shape)}")
        W = init.to(W).clone()
    cum = task.P.cumsum(dim=1)
    cum[:, -1] = 1.0
    rows = torch.arange(seeds, device=device)[:, None].expand(seeds, batch)
    cols = torch.arange(batch, device=device).expand(seeds, batch)

    def step(W, t, lr):
        prev = torch.randint(V, (seeds, batch), generator=gen, device=device)
        u = torch.rand(seeds, batch, 1, generator=gen, dtype=torch.float64, device=device)
        nxt = (cum[prev] < u).sum(dim=-1).clamp(max=V - 1)  # inverse-CDF sampling
        probs = torch.softmax(W[rows, prev], dim=-1)  # (S, B, V)
        probs[rows, cols, nxt] -= 1.0
        return W.index_put((rows, prev), -(lr / batch) * probs, accumulate=True)

    def record(W, t):
        parts = task.split(W)
        return {"river": parts.river, "hill": parts.hill, "deterministic": task.excess(W)[0]}

    out = run(step, W, steps=steps, lr=schedule, record=record, record_every=record_every, blowup=blowup,
              batched=True)
    at, history = out.on_grid(steps, record_every)
    return BigramRun(river=history["river"], hill=history["hill"], deterministic=history["deterministic"],
                     steps=at, lr=out.lr, logits=out.state,
                     diverged=out.diverged, diverged_at=out.diverged_at)


@dataclass(frozen=True)
class CheckpointComparison(Record):
    """Excess loss at each checkpoint for branching WSD and WSD-S, and the steps each used."""

    checkpoints: list[int]
    wsd: torch.Tensor  # (C, S) total excess at each checkpoint
    wsd_s: torch.Tensor  # (C, S)
    wsd_steps: int
    wsd_s_steps: int


def compare_wsd_s(task: BigramTask, *, peak: float, checkpoints: list[int], decay_frac: float, seeds: int = 3,
                  batch: int = 32, generator: int | torch.Generator = 0) -> CheckpointComparison:
    """Branching WSD against WSD-S on the bigram task at the same checkpoints (eq-wsd-s).

    Branching WSD keeps one constant-rate main run; for checkpoint ``C_i`` it forks at ``C_i - d_i``
    and decays linearly to 0 over ``d_i = round(decay_frac * (C_i - C_{i-1}))`` steps (the same decay
    lengths as WSD-S), while the main run continues from the pre-decay weights: it uses
    ``C_last + sum_{i < last} d_i`` steps. WSD-S is a single run that
    decays over the last ``decay_frac`` of every period between checkpoints and then resumes at the
    peak rate *from the decayed weights*: it uses ``C_last`` steps.

    ``generator``: an int seed gives every segment its own seed (the main-run segment from step
    ``s`` uses ``seed + 1000 + s``, the decay ending at ``e`` uses ``seed + 2000 + e``, WSD-S uses
    ``seed``); a ``torch.Generator`` is drawn from by all segments in that order, then by WSD-S.
    """
    check_task(task)
    peak = check_positive(peak, name="peak")
    if isinstance(generator, bool) or not isinstance(generator, (int, torch.Generator)) or (
            isinstance(generator, int) and generator < 0):
        raise ValueError(f"generator: expected an int seed >= 0 or a torch.Generator, got {generator!r}")

    def seed(offset: int) -> int | torch.Generator:
        return generator if isinstance(generator, torch.Generator) else generator + offset

    branches = wsd_branch_plan(checkpoints, decay_frac=decay_frac, per="period")
    main = constant_schedule(peak)
    W = None
    done = 0
    wsd_losses = []
    for br in branches:  # advance the main branch to the fork, then decay a copy
        if br.fork > done:
            trunk = train_bigram(task, main, steps=br.fork - done, batch=batch, seeds=seeds,
                                 generator=seed(1000 + done), record_every=br.fork - done, init=W)
            W, done = trunk.logits, br.fork
        d = br.end - br.fork
        decay = wsd_schedule(peak, total=d, warmup=0, decay_frac=1.0)  # linear from peak to 0
        dec = train_bigram(task, decay, steps=d, batch=batch, seeds=seeds, generator=seed(2000 + br.end),
                           record_every=d, init=W)
        wsd_losses.append(dec.total[-1])
    sched = wsd_s_schedule(peak, checkpoints=checkpoints, warmup=0, decay_frac=decay_frac)
    single = train_bigram(task, sched, steps=checkpoints[-1], batch=batch, seeds=seeds, generator=seed(0),
                          record_every=math.gcd(*checkpoints))
    at = [int((single.steps == c).nonzero()[0, 0]) for c in checkpoints]
    wsd_s_steps = wsd_s_plan(checkpoints, decay_frac=decay_frac)[-1].total_steps
    return CheckpointComparison(list(checkpoints), torch.stack(wsd_losses), single.total[at],
                                branches[-1].total_steps, wsd_s_steps)


@dataclass(frozen=True)
class ValleyLoss(Record):
    """What :func:`expected_valley_loss` returns; it unpacks as ``river, hill = ...`` (and sums).

    Attributes:
        river, hill: the expected final losses ``mu x_T^2 / 2`` and ``a v_T / 2``.
        diverged: whether the expected state left the blow-up ball; the losses are then those of the
            state it was frozen at (:mod:`lessons_lib.run`), finite but not the losses at ``T``.
        diverged_at: the step at which it did, ``None`` if it did not.
    """

    river: float
    hill: float
    diverged: bool = False
    diverged_at: int | None = None

    def __iter__(self):
        return iter((self.river, self.hill))


def expected_valley_loss(valley: RiverValley, x0: float, *, schedule: Schedule, steps: int,
                         sigma: float, blowup: float = 1e6) -> ValleyLoss:
    """Exact expected final (river, hill) loss of SGD on the straight valley (eq-wsd-hill, eq-wsd-river).

    With ``y_0 = 0``: ``x_{t+1} = (1 - eta_t mu) x_t`` and the hill variance
    ``v_{t+1} = (1 - eta_t a)^2 v_t + eta_t^2 sigma^2``; the losses are ``mu x_T^2 / 2`` and
    ``a v_T / 2``. No sampling, so it is the reference for "which decay fraction is best".

    Divergence has the meaning of :mod:`lessons_lib.run`, applied to the root-mean-square state
    ``(x_t, sqrt(v_t))``: once it leaves ``blowup * max(1, |x0|)`` (or stops being finite, as a
    variance beyond float64 does at rates past ``2 / a``) the recursion stops and is frozen.
    """
    check_valley(valley)
    x0 = check_real(x0, name="x0")
    if valley.amplitude != 0:
        raise ValueError("valley: the closed form holds for the straight valley (amplitude 0) only")
    lrs = _rates(schedule, check_count(steps, name="steps"))
    sigma = check_positive(sigma, name="sigma", allow_zero=True)
    x, v = float(x0), 0.0
    radius, at = check_positive(blowup, name="blowup") * max(1.0, abs(x)), None
    for t, eta in enumerate(lrs.tolist()):
        q, kick = 1 - eta * valley.a, eta * sigma
        nx, nv = x * (1 - eta * valley.mu), q * q * v + kick * kick  # products overflow to inf, not an error
        size = math.sqrt(nx * nx + nv) if math.isfinite(nx * nx + nv) else math.inf
        if not size <= radius:
            at = t + 1
            if math.isfinite(size):
                x, v = nx, nv
            break
        x, v = nx, nv
    return ValleyLoss(0.5 * valley.mu * x * x, 0.5 * valley.a * v, at is not None, at)
