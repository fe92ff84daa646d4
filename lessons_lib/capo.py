"""Curvature-aware policy optimisation (CAPO): a per-token quadratic model of a softmax policy update.

A policy-gradient step moves the last-layer weights ``W`` of a softmax policy ``pi = softmax(W h)`` by
``lr * G``. For one generated token (hidden state ``h``, sampled token ``a``, advantage ``A``) the
objective ``A * pi_a(W + s G) / pi_a(W)`` and the policy's KL divergence are expanded to second order in
``s``, which gives the token's predicted objective change ``m_H`` and predicted KL change ``m_F``
(``eq-capo-terms``, ``eq-capo-model``). CAPO drops the tokens whose predicted change is unsafe
(``eq-capo-mask``) before taking the step. The chapter trains on a token bandit in which the policy is
exactly such a last-layer model (``eq-capo-bandit``), so the model is exact up to its Taylor remainder.

References:
    Melo, Abate & Gal (2025), Stabilizing Policy Gradients for Sample-Efficient Reinforcement Learning in
    LLM Reasoning, arXiv 2510.00819 (ICLR 2026). The masking rule follows the authors' released code
    (luckeciano/stable-pg-llm); their Theorem 5.1 motivates it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from .backend import (
    Record,
    as_generator,
    check_choice,
    check_count,
    check_flag,
    check_float_tensor,
    check_positive,
    default_device,
)
from .run import run

Rule = Literal["code", "theorem"]
Method = Literal["grpo", "capo"]
Optimizer = Literal["sgd", "adam"]


@dataclass(frozen=True)
class TokenTerms(Record):
    """The three per-token coefficients of the quadratic model (``eq-capo-terms``), each of shape ``(..., n)``.

    Attributes:
        first_order: ``A v^T u``, the slope of ``A * pi_a(W + s G) / pi_a(W)`` at ``s = 0``.
        hessian: ``A [(v^T u)^2 - u^T F u]``, its second derivative at ``s = 0``.
        fisher: ``(v^T u)^2``, the squared slope of ``log pi_a`` along ``G``: an unbiased one-sample
            estimate of the KL curvature ``u^T F u``.
    """

    first_order: torch.Tensor
    hessian: torch.Tensor
    fisher: torch.Tensor


def _finite(x: torch.Tensor, name: str) -> torch.Tensor:
    """``x`` as a float tensor with only finite entries, else a ValueError naming ``name``."""
    x = check_float_tensor(x, name=name)
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return x


def _terms(pi: torch.Tensor, a: torch.Tensor, A: torch.Tensor, u: torch.Tensor) -> tuple:
    """``(first, hessian, fisher)`` from probabilities ``pi (..., n, V)``, tokens, advantages and ``u = G h``."""
    vu = u.gather(-1, a.unsqueeze(-1)).squeeze(-1) - (pi * u).sum(-1)  # v^T u with v = e_a - pi
    uFu = (pi * u * u).sum(-1) - (pi * u).sum(-1) ** 2                   # u^T (diag pi - pi pi^T) u
    return A * vu, A * (vu ** 2 - uFu), vu ** 2


def token_terms(W: torch.Tensor, h: torch.Tensor, a: torch.Tensor, A: torch.Tensor,
                G: torch.Tensor) -> TokenTerms:
    """The per-token first-order, Hessian and Fisher terms of a softmax policy update (``eq-capo-terms``).

    With ``pi = softmax(W h)``, ``v = e_a - pi``, ``u = G h`` and ``F = diag(pi) - pi pi^T``: first order
    ``A v^T u``, Hessian ``A [(v^T u)^2 - u^T F u]`` and Fisher ``(v^T u)^2``. These are the first and
    second derivatives in ``s`` of ``A * pi_a(W + s G) / pi_a(W)`` and the squared derivative of
    ``log pi_a(W + s G)``, all at ``s = 0``.

    Args:
        W: last-layer weights, shape ``(V, H)``.
        h: hidden states, shape ``(n, H)``.
        a: sampled tokens, integers in ``[0, V)``, shape ``(n,)``.
        A: advantages, shape ``(n,)``.
        G: update direction of ``W``: one per token, ``(n, V, H)``, or one for all, ``(V, H)``.

    Returns:
        A :class:`TokenTerms` with three tensors of shape ``(n,)``.

    References:
        Melo, Abate & Gal (2025), Stabilizing Policy Gradients for Sample-Efficient Reinforcement Learning
        in LLM Reasoning, arXiv 2510.00819.
    """
    W, h, A, G = (_finite(x, n) for x, n in ((W, "W"), (h, "h"), (A, "A"), (G, "G")))
    dtype = torch.promote_types(torch.promote_types(W.dtype, h.dtype), torch.promote_types(A.dtype, G.dtype))
    W, h, A, G = (x.to(dtype) for x in (W, h, A, G))
    if W.ndim != 2:
        raise ValueError(f"W: expected shape (V, H), got {tuple(W.shape)}")
    V, H = W.shape
    if h.ndim != 2 or h.shape[1] != H:
        raise ValueError(f"h: expected shape (n, {H}), got {tuple(h.shape)}")
    n = h.shape[0]
    if not isinstance(a, torch.Tensor) or a.dtype not in (torch.int32, torch.int64) or a.shape != (n,):
        raise ValueError(f"a: expected an integer tensor of shape ({n},)")
    if n and (int(a.min()) < 0 or int(a.max()) >= V):
        raise ValueError(f"a: tokens must lie in [0, {V})")
    if A.shape != (n,):
        raise ValueError(f"A: expected shape ({n},), got {tuple(A.shape)}")
    if G.shape == (V, H):
        u = h @ G.T
    elif G.shape == (n, V, H):
        u = torch.einsum("nvk,nk->nv", G, h)
    else:
        raise ValueError(f"G: expected shape ({V}, {H}) or ({n}, {V}, {H}), got {tuple(G.shape)}")
    pi = torch.softmax(h @ W.T, dim=-1)
    return TokenTerms(*_terms(pi, a.long(), A, u))


def predicted_change(terms: TokenTerms, lr: float) -> torch.Tensor:
    """The predicted objective change of each token, ``m_H = lr * first + lr^2 / 2 * hessian`` (``eq-capo-model``).

    Args:
        terms: the output of :func:`token_terms`.
        lr: the learning rate ``> 0`` (the step is ``W + lr * G``).

    Returns:
        ``m_H``, shape of ``terms.first_order``.
    """
    if not isinstance(terms, TokenTerms):
        raise ValueError(f"terms: expected a TokenTerms record, got {type(terms).__name__}")
    lr = check_positive(lr, name="lr")
    return lr * terms.first_order + 0.5 * lr ** 2 * terms.hessian


def kl_term(terms: TokenTerms, lr: float) -> torch.Tensor:
    """The predicted KL change of each token, ``m_F = lr^2 / 2 * fisher`` (``eq-capo-model``).

    Args:
        terms: the output of :func:`token_terms`.
        lr: the learning rate ``> 0``.

    Returns:
        ``m_F >= 0``, shape of ``terms.fisher``.
    """
    if not isinstance(terms, TokenTerms):
        raise ValueError(f"terms: expected a TokenTerms record, got {type(terms).__name__}")
    lr = check_positive(lr, name="lr")
    return 0.5 * lr ** 2 * terms.fisher


def _per_run(value, *, name: str, like: torch.Tensor) -> torch.Tensor:
    """A threshold as a tensor broadcastable against ``like`` (a number, or one per run along dim 0)."""
    if isinstance(value, torch.Tensor):
        t = value.to(dtype=like.dtype, device=like.device)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        t = torch.tensor(float(value), dtype=like.dtype, device=like.device)
    else:
        try:
            t = torch.tensor([float(v) for v in value], dtype=like.dtype, device=like.device)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: expected a number or one number per run, got {value!r}") from None
    if bool(torch.isnan(t).any()):
        raise ValueError(f"{name}: contains NaN")
    if t.ndim == 1:
        if t.shape[0] != like.shape[0]:
            raise ValueError(f"{name}: expected {like.shape[0]} values (one per run), got {t.shape[0]}")
        t = t.reshape(t.shape + (1,) * (like.ndim - 1))
    elif t.ndim > 1:
        raise ValueError(f"{name}: expected a number or a 1-d sequence, got shape {tuple(t.shape)}")
    return t


def token_mask(m_H: torch.Tensor, m_F: torch.Tensor, *, tau_H, tau_F, rule: Rule = "code",
               symmetric: bool = True) -> torch.Tensor:
    """Which tokens CAPO keeps (``eq-capo-mask``): the released code's rule or Theorem 5.1's.

    * ``rule="code"``: keep ``|m_H| < tau_H`` (``symmetric=True``; else ``0 <= m_H < tau_H``) and ``m_F < tau_F``.
    * ``rule="theorem"``: keep ``m_H >= tau_H`` and ``m_F <= tau_F`` (the theorem's ``delta_H`` and
      ``delta_F``); ``symmetric`` is ignored.

    Args:
        m_H: predicted objective changes, any shape.
        m_F: predicted KL changes, the same shape.
        tau_H: threshold on ``m_H`` (may be ``inf`` for the code's rule), a number or one per run (dim 0).
        tau_F: threshold on ``m_F``, ``>= 0``, a number or one per run.
        rule: ``"code"`` or ``"theorem"``.
        symmetric: the code's two-sided clipping of ``m_H``.

    Returns:
        A bool tensor of the shape of ``m_H``: True where the token is kept.
    """
    m_H, m_F = check_float_tensor(m_H, name="m_H"), check_float_tensor(m_F, name="m_F")
    for x, name in ((m_H, "m_H"), (m_F, "m_F")):
        if bool(torch.isnan(x).any()):
            raise ValueError(f"{name}: contains NaN")
    if m_H.shape != m_F.shape:
        raise ValueError(f"m_F: expected the shape of m_H, {tuple(m_H.shape)}, got {tuple(m_F.shape)}")
    rule = check_choice(rule, ("code", "theorem"), name="rule")
    symmetric = check_flag(symmetric, name="symmetric")
    tH, tF = _per_run(tau_H, name="tau_H", like=m_H), _per_run(tau_F, name="tau_F", like=m_H)
    if bool((tF < 0).any()):
        raise ValueError("tau_F: must be >= 0 (m_F is never negative)")
    if rule == "code" and bool((tH <= 0).any()):
        raise ValueError("tau_H: the code's rule needs tau_H > 0")
    return _keep(m_H, m_F, tH, tF, rule, symmetric)


def _keep(m_H, m_F, tH, tF, rule: str, symmetric: bool) -> torch.Tensor:
    """The mask of :func:`token_mask` on validated inputs (NaN values, from an overflowing step, are dropped)."""
    if rule == "theorem":
        return (m_H >= tH) & (m_F <= tF)
    keep_H = (m_H.abs() < tH) if symmetric else ((m_H >= 0) & (m_H < tH))
    return keep_H & (m_F < tF)


@dataclass(frozen=True)
class TokenBandit(Record):
    """A prompt-conditioned token bandit whose policy is ``softmax(W phi)`` (``eq-capo-bandit``).

    Attributes:
        features: ``phi[target, position, partial_sum]``, shape ``(V, T, V, H)``.
        vocab: ``V``. length: ``T``. hidden: ``H``.
    """

    features: torch.Tensor
    vocab: int
    length: int
    hidden: int


def token_bandit(*, vocab: int = 8, length: int = 6, hidden: int = 32, generator=0,
                 dtype: torch.dtype = torch.float32, device=None) -> TokenBandit:
    """A token bandit: ``T`` tokens from ``V``, reward 1 when their sum mod ``V`` is the prompt's target.

    The features are ``phi = tanh(R[target] + R[V + position] + R[V + T + partial_sum])`` with ``R`` of
    shape ``(2V + T, H)`` and entries ``N(0, 1/3)``, fixed; the policy is ``softmax(W phi)`` (``eq-capo-bandit``).

    Args:
        vocab: ``V >= 2``. length: ``T >= 1``. hidden: ``H >= 1``.
        generator: int seed or ``torch.Generator`` for ``R``.
        dtype: floating dtype of the features. device: defaults to :func:`default_device`.

    Returns:
        A :class:`TokenBandit` (features on the host; :func:`train` moves them to ``device``).
    """
    V = check_count(vocab, name="vocab", minimum=2)
    T = check_count(length, name="length")
    H = check_count(hidden, name="hidden")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"dtype: expected a floating torch dtype, got {dtype!r}")
    device = torch.device(device) if device is not None else default_device()
    gen = as_generator(generator, device)
    R = torch.randn(2 * V + T, H, generator=gen, device=device, dtype=torch.float64) / math.sqrt(3.0)
    phi = torch.tanh(R[:V, None, None] + R[V:V + T][None, :, None] + R[V + T:][None, None, :])
    return TokenBandit(features=phi.to(dtype), vocab=V, length=T, hidden=H)


def _visits(bandit: TokenBandit, W: torch.Tensor):
    """Exact policy and visit probabilities: ``pi (R, V_c, T, V_s, V_a)`` and ``p (R, V_c, T + 1, V_s)``."""
    phi = bandit.features.to(W.device, W.dtype)
    V, T = bandit.vocab, bandit.length
    pi = torch.softmax(torch.einsum("rak,ctsk->rctsa", W, phi), dim=-1)
    p = torch.zeros(W.shape[0], V, V, dtype=W.dtype, device=W.device)
    p[:, :, 0] = 1.0
    shift = (torch.arange(V, device=W.device)[:, None] + torch.arange(V, device=W.device)) % V  # [s, a] -> s'
    ps = [p]
    for t in range(T):
        joint = p[..., None] * pi[:, :, t]                          # (R, V_c, V_s, V_a)
        p = torch.zeros_like(p).scatter_add_(-1, shift.expand_as(joint).flatten(-2), joint.flatten(-2))
        ps.append(p)
    return pi, torch.stack(ps, dim=2)


def accuracy(bandit: TokenBandit, W: torch.Tensor) -> torch.Tensor:
    """The exact success probability of ``softmax(W phi)``, averaged over the ``V`` targets (dynamic programming).

    Args:
        bandit: a :class:`TokenBandit`.
        W: weights ``(V, H)`` or a batch ``(R, V, H)``.

    Returns:
        The accuracy, shape ``()`` or ``(R,)``.
    """
    if not isinstance(bandit, TokenBandit):
        raise ValueError(f"bandit: expected a TokenBandit, got {type(bandit).__name__}")
    W = _finite(W, "W")
    if W.shape[-2:] != (bandit.vocab, bandit.hidden) or W.ndim not in (2, 3):
        raise ValueError(f"W: expected shape ({bandit.vocab}, {bandit.hidden}) or (R, ...), got {tuple(W.shape)}")
    Wb = W if W.ndim == 3 else W[None]
    _, p = _visits(bandit, Wb)
    acc = p[:, :, -1].diagonal(dim1=-2, dim2=-1).mean(-1)      # P(final sum = target), mean over targets
    return acc if W.ndim == 3 else acc[0]


def _entropy(bandit: TokenBandit, W: torch.Tensor) -> torch.Tensor:
    """The per-token entropy of the policy (nats), averaged over its own visits, targets and positions."""
    pi, p = _visits(bandit, W)
    ent = -(pi * torch.log(pi.clamp_min(1e-30))).sum(-1)           # (R, V_c, T, V_s)
    return (p[:, :, :-1] * ent).sum(-1).mean((-1, -2))


@dataclass(frozen=True)
class BanditRun(Record):
    """What :func:`train` returns; histories have shape ``(K, R)`` at ``steps``.

    Attributes:
        steps: recorded steps ``(K,)``.
        accuracy: exact success probability. entropy: per-token entropy (nats).
        mask_rate: the fraction of the step's tokens that the mask dropped (0 for GRPO; 0 at step 0).
        W: final weights ``(R, V, H)`` (a diverged run frozen at its last finite state).
        diverged, diverged_at: per run, as in :class:`lessons_lib.run.Run` (``-1`` where not diverged).
    """

    steps: torch.Tensor
    accuracy: torch.Tensor
    entropy: torch.Tensor
    mask_rate: torch.Tensor
    W: torch.Tensor
    diverged: torch.Tensor
    diverged_at: torch.Tensor


def _rollout(bandit: TokenBandit, W: torch.Tensor, targets: torch.Tensor, uniforms: torch.Tensor):
    """Sample sequences by inverse CDF: features ``(R, n, H)``, tokens ``(R, n)`` and rewards ``(R, B)``."""
    phi = bandit.features.to(W.device, W.dtype)
    R, B, T = uniforms.shape
    s = torch.zeros(R, B, dtype=torch.long, device=W.device)
    hs, toks = [], []
    for t in range(T):
        h = phi[targets, t, s]                                          # (R, B, H)
        pi = torch.softmax(torch.einsum("rak,rbk->rba", W, h), dim=-1)
        a = (pi.cumsum(-1) < uniforms[..., t, None]).sum(-1).clamp_max(bandit.vocab - 1)
        hs.append(h)
        toks.append(a)
        s = (s + a) % bandit.vocab
    reward = (s == targets).to(W.dtype)
    return torch.stack(hs, 2).flatten(1, 2), torch.stack(toks, 2).flatten(1, 2), reward


@dataclass(frozen=True)
class TokenBatch(Record):
    """One step's tokens, flattened: hidden states ``h (n, H)``, tokens ``a (n,)``, GRPO advantages ``A (n,)`` and
    each token's share of the SGD update, ``G = A v h^T / n``, shape ``(n, V, H)``."""

    h: torch.Tensor
    a: torch.Tensor
    A: torch.Tensor
    G: torch.Tensor


def _advantages(r: torch.Tensor, P: int, S: int, T: int) -> torch.Tensor:
    """GRPO advantages ``(r - mean) / (std + 1e-4)`` within groups of ``S`` (unbiased std), one per token."""
    rg = r.reshape(r.shape[0], P, S)
    A = ((rg - rg.mean(-1, keepdim=True)) / (rg.std(-1, keepdim=True) + 1e-4)).reshape(r.shape[0], P * S)
    return A.repeat_interleave(T, dim=1)


def token_batch(bandit: TokenBandit, W: torch.Tensor, *, prompts: int = 16, samples: int = 8,
                generator=0) -> TokenBatch:
    """Sample one step's batch from ``softmax(W phi)``, its GRPO advantages and per-token updates (``eq-capo-grpo``).

    Args:
        bandit: a :class:`TokenBandit`.
        W: weights ``(V, H)``.
        prompts, samples: prompts and sequences per prompt (``samples >= 2``).
        generator: int seed or ``torch.Generator``.

    Returns:
        A :class:`TokenBatch` with ``n = prompts * samples * T`` tokens.
    """
    if not isinstance(bandit, TokenBandit):
        raise ValueError(f"bandit: expected a TokenBandit, got {type(bandit).__name__}")
    W = _finite(W, "W")
    if W.shape != (bandit.vocab, bandit.hidden):
        raise ValueError(f"W: expected shape ({bandit.vocab}, {bandit.hidden}), got {tuple(W.shape)}")
    P, S = check_count(prompts, name="prompts"), check_count(samples, name="samples", minimum=2)
    T, V = bandit.length, bandit.vocab
    gen = as_generator(generator, W.device)
    targets = torch.randint(V, (1, P), generator=gen, device=W.device).repeat_interleave(S, dim=1)
    uniforms = torch.rand(1, P * S, T, generator=gen, device=W.device, dtype=W.dtype)
    h, a, r = _rollout(bandit, W[None], targets, uniforms)
    A = _advantages(r, P, S, T)[0]
    h, a = h[0], a[0]
    v = torch.nn.functional.one_hot(a, V).to(W.dtype) - torch.softmax(h @ W.T, -1)
    G = (A / len(a))[:, None, None] * v[:, :, None] * h[:, None, :]
    return TokenBatch(h=h, a=a, A=A, G=G)


def train(bandit: TokenBandit, *, method: Method = "capo", lr=8.0, steps: int = 200, runs: int = 5,
          prompts: int = 16, samples: int = 8, tau_H=math.inf, tau_F=0.3, rule: Rule = "code",
          symmetric: bool = True, optimizer: Optimizer = "sgd", betas: tuple = (0.9, 0.999), eps: float = 1e-8,
          record_every: int = 1, generator=0) -> BanditRun:
    """Train ``R`` runs of GRPO or CAPO on a token bandit, batched (``eq-capo-grpo``, ``eq-capo-mask``).

    Each step draws ``prompts`` targets and ``samples`` sequences per target, computes the GRPO advantage
    ``A = (r - mean) / (std + 1e-4)`` within each group (unbiased std), and ascends the mean over all
    tokens of ``A log pi_a``. CAPO first computes each token's ``m_H`` and ``m_F`` for its share ``G`` of
    the update (its gradient over the number of tokens; with Adam, that share after Adam's prospective
    preconditioning and bias correction) and drops the tokens that :func:`token_mask` rejects; the kept
    tokens' gradients are still divided by the total number of tokens.

    Args:
        bandit: a :class:`TokenBandit`.
        method: ``"grpo"`` (no mask) or ``"capo"``.
        lr: learning rate ``> 0``, or one per run.
        steps: updates. runs: ``R`` independent runs (seeds), batched.
        prompts, samples: prompts per step and sequences per prompt (``samples >= 2``).
        tau_H, tau_F, rule, symmetric: the mask (see :func:`token_mask`); numbers or one per run.
        optimizer: ``"sgd"`` or ``"adam"`` (with ``betas`` and ``eps``).
        record_every: recording interval.
        generator: int seed or ``torch.Generator``.

    Returns:
        A :class:`BanditRun`.

    References:
        Melo, Abate & Gal (2025), arXiv 2510.00819; GRPO advantages: Shao et al. (2024), DeepSeekMath,
        arXiv 2402.03300.
    """
    if not isinstance(bandit, TokenBandit):
        raise ValueError(f"bandit: expected a TokenBandit, got {type(bandit).__name__}")
    method = check_choice(method, ("grpo", "capo"), name="method")
    optimizer = check_choice(optimizer, ("sgd", "adam"), name="optimizer")
    rule = check_choice(rule, ("code", "theorem"), name="rule")
    steps = check_count(steps, name="steps", minimum=0)
    R = check_count(runs, name="runs")
    P = check_count(prompts, name="prompts")
    S = check_count(samples, name="samples", minimum=2)
    eps = check_positive(eps, name="eps")
    b1, b2 = (float(b) for b in betas)
    if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
        raise ValueError(f"betas: expected two numbers in [0, 1), got {betas!r}")
    if isinstance(lr, (int, float)):
        check_positive(lr, name="lr")
    else:
        try:
            lrs = [float(x) for x in lr]
        except (TypeError, ValueError):
            raise ValueError(f"lr: expected a number or one number per run, got {lr!r}") from None
        if len(lrs) != runs:
            raise ValueError(f"lr: expected {runs} values (one per run), got {len(lrs)}")
        for x in lrs:
            check_positive(x, name="lr")
    device = bandit.features.device
    gen = as_generator(generator, device)
    V, T, H = bandit.vocab, bandit.length, bandit.hidden
    dtype = bandit.features.dtype
    W0 = torch.zeros(R, V, H, dtype=dtype, device=device)
    token_mask(W0[:, :1, 0], W0[:, :1, 0], tau_H=tau_H, tau_F=tau_F, rule=rule, symmetric=symmetric)  # validate
    tH, tF = _per_run(tau_H, name="tau_H", like=W0[:, :1, 0]), _per_run(tau_F, name="tau_F", like=W0[:, :1, 0])
    n = P * S * T

    def step(state, t, eta):
        W, m, v, _ = state
        eta_r = torch.as_tensor(eta, dtype=dtype, device=device).reshape(-1, 1)  # (R or 1, 1)
        targets = torch.randint(V, (R, P), generator=gen, device=device).repeat_interleave(S, dim=1)
        uniforms = torch.rand(R, P * S, T, generator=gen, device=device, dtype=dtype)
        h, a, r = _rollout(bandit, W, targets, uniforms)
        A = _advantages(r, P, S, T)                                     # (R, n): one advantage per token
        pi = torch.softmax(torch.einsum("rak,rnk->rna", W, h), dim=-1)
        vv = torch.nn.functional.one_hot(a, V).to(dtype) - pi          # (R, n, V)
        coef = A / n                                                    # the token's share: A v h^T / n
        g = torch.einsum("rn,rna,rnk->rak", coef, vv, h)               # ascent direction of the batch
        if optimizer == "adam":
            v_new = b2 * v + (1 - b2) * g ** 2
            m_new = b1 * m + (1 - b1) * g
            precond = 1.0 / (torch.sqrt(v_new / (1 - b2 ** (t + 1))) + eps) * ((1 - b1) / (1 - b1 ** (t + 1)))
            u = coef[..., None] * vv * torch.einsum("rnk,rak->rna", h * h, precond)
        else:
            m_new, v_new = m, v
            u = (coef * (h * h).sum(-1))[..., None] * vv               # u = G h for G = A v h^T / n
        if method == "capo":
            first, hess, fisher = _terms(pi, a, A, u)
            m_H = eta_r * first + 0.5 * eta_r ** 2 * hess
            m_F = 0.5 * eta_r ** 2 * fisher
            keep = _keep(m_H, m_F, tH, tF, rule, symmetric)
            rate = 1.0 - keep.to(dtype).mean(-1)
            g = torch.einsum("rn,rna,rnk->rak", coef * keep, vv, h)
            if optimizer == "adam":
                v_new = b2 * v + (1 - b2) * g ** 2
                m_new = b1 * m + (1 - b1) * g
        else:
            rate = torch.zeros(R, dtype=dtype, device=device)
        if optimizer == "adam":
            direction = (m_new / (1 - b1 ** (t + 1))) / (torch.sqrt(v_new / (1 - b2 ** (t + 1))) + eps)
        else:
            direction = g
        return W + eta_r[..., None] * direction, m_new, v_new, rate

    def record(state, t):
        W = state[0]
        return {"accuracy": accuracy(bandit, W), "entropy": _entropy(bandit, W), "mask_rate": state[3]}

    state0 = (W0, torch.zeros_like(W0), torch.zeros_like(W0), torch.zeros(R, dtype=dtype, device=device))
    out = run(step, state0, steps=steps, lr=lr, record=record, record_every=record_every, blowup=1e12,
              batched=True)
    hist = out.history
    return BanditRun(steps=out.steps, accuracy=hist["accuracy"], entropy=hist["entropy"],
                     mask_rate=hist["mask_rate"], W=out.state[0], diverged=out.diverged,
                     diverged_at=out.diverged_at)


def realised_change(W: torch.Tensor, h: torch.Tensor, a: torch.Tensor, A: torch.Tensor, G: torch.Tensor,
                    lr: float) -> torch.Tensor:
    """The exact change ``A * (pi_a(W + lr G) / pi_a(W) - 1)`` of each token's objective (what ``m_H`` predicts).

    Args:
        W, h, a, A, G: as in :func:`token_terms`.
        lr: the step length ``> 0``.

    Returns:
        Shape ``(n,)``.
    """
    token_terms(W, h, a, A, G)  # validates the shapes
    lr = check_positive(lr, name="lr")
    dtype = torch.promote_types(torch.promote_types(W.dtype, h.dtype), torch.promote_types(A.dtype, G.dtype))
    W, h, A, G = (x.to(dtype) for x in (W, h, A, G))
    Wn = W + lr * G
    logits = h @ W.T
    new = torch.einsum("nvk,nk->nv", Wn, h) if G.ndim == 3 else h @ Wn.T
    idx = a.long().unsqueeze(-1)
    ratio = torch.exp(torch.log_softmax(new, -1).gather(-1, idx) - torch.log_softmax(logits, -1).gather(-1, idx))
    return A * (ratio.squeeze(-1) - 1.0)


__all__ = ["TokenTerms", "token_terms", "predicted_change", "kl_term", "token_mask", "TokenBandit",
           "token_bandit", "accuracy", "TokenBatch", "token_batch", "BanditRun", "train", "realised_change"]
