"""Self-checks of the chapter on Drop-Muon (drop-muon.ipynb)."""

from __future__ import annotations

from typing import Callable

import torch

from .. import dropmuon
from .core import CheckResult, _missing, check_function


def _cases() -> dict[str, dict]:
    gen = torch.Generator().manual_seed(11)
    f64 = dict(dtype=torch.float64, generator=gen)

    def case(rows, cols, frozen, lr, momentum):
        return dict(W=torch.randn(rows, cols, **f64), G=torch.randn(rows, cols, **f64),
                    M=0.3 * torch.randn(rows, cols, **f64), frozen=frozen, lr=lr, momentum=momentum)

    return {"a wide 3 x 5 layer that is updated, lr = 0.1, mu = 0.9": case(3, 5, False, 0.1, 0.9),
            "a tall 6 x 2 layer that is updated, lr = 0.05, mu = 0.95": case(6, 2, False, 0.05, 0.95),
            "a 4 x 4 layer below the start (frozen), lr = 0.1, mu = 0.9": case(4, 4, True, 0.1, 0.9)}


# the inputs handed to the learner's layer_update(W, G, M, frozen=..., lr=..., momentum=...), by description
UPDATE_CASES = _cases()


def _variant(W, G, M, frozen, lr, momentum, *, ema: bool = True, nesterov: bool = True, scale: bool = True,
             sign: float = 1.0, decay_frozen: bool = False, move_frozen: bool = False, transposed: bool = False,
             polar: bool = False) -> torch.Tensor:
    """The step ``(W - W') / lr`` and the new momentum ``M'`` as one flat vector, for the right update or for one
    of its usual mistakes (the step, not ``W'``, so that a wrong direction is not hidden by the size of ``W``):
    ``transposed`` uses the shape factor of ``W``'s transpose, ``polar`` the exact polar factor (an SVD) in place
    of five Newton-Schulz steps."""
    if frozen and not move_frozen:
        return torch.cat([torch.zeros(W.numel(), dtype=W.dtype), (momentum * M if decay_frozen else M).flatten()])
    M2 = momentum * M + ((1 - momentum) * G if ema else G)
    U = ((1 - momentum) * G + momentum * M2) if nesterov else M2
    factor = dropmuon.layer_scale(W.shape[::-1] if transposed else W.shape) if scale else 1.0
    if polar:
        P, _, Qt = torch.linalg.svd(U, full_matrices=False)
        direction = P @ Qt
    else:
        direction = dropmuon.newton_schulz(U)
    return torch.cat([(sign * factor * direction).flatten(), M2.flatten()])


def _reference(W, G, M, frozen, lr, momentum):
    state = dropmuon.MuonState((M,))
    (W2,), state = dropmuon.update([W], [None if frozen else G], state, start=0, lr=lr, momentum=momentum)
    return _pack(W, W2, state.momenta[0], lr)


def _pack(W, W_new, M_new, lr):
    return torch.cat([((W - W_new) / lr).flatten(), M_new.flatten()])


def _near(value, case, **flags) -> bool:
    want = _variant(**case, **flags)
    return value.shape == want.shape and bool(torch.allclose(value, want, rtol=1e-6, atol=1e-9))


def _hint(case, value) -> str:
    value = torch.as_tensor(value, dtype=torch.float64)
    n = case["W"].numel()
    if value.shape != (2 * n,):
        return "return the pair (new W, new M), each of W's shape"
    if case["frozen"]:
        if _near(value, case, decay_frozen=True):
            return ("this layer is frozen, but its momentum shrank: a layer that gets no gradient keeps its "
                    "momentum exactly as it was")
        if _near(value, case, move_frozen=True):
            return ("you updated this layer as if it were in the suffix: its weight moved and its momentum took a "
                    "gradient, but a layer below the start gets no gradient this step")
        if torch.allclose(value[n:], case["M"].flatten()):
            return "the momentum is kept, but the frozen layer's weight moved: a frozen layer keeps W as it is"
        return "a frozen layer receives no gradient this step: return its W and its M unchanged"
    for flags, words in (
            (dict(sign=-1.0), "your step goes uphill: the update subtracts lr times the orthogonalised direction"),
            (dict(ema=False), "your momentum adds the whole gradient, mu M + G: Muon averages, mu M + (1 - mu) G"),
            (dict(nesterov=False), "you step along M itself: the Nesterov look-ahead steps along (1 - mu) G + mu M, "
                                   "with the new M"),
            (dict(scale=False), "right direction, wrong length on this tall layer: Muon multiplies lr by "
                                "sqrt(max(1, rows / cols))"),
            (dict(transposed=True), "right direction, wrong length: your shape factor is not 1 on this layer "
                                    "where Muon's is, or the other way round; check which of W's two sizes "
                                    "(rows = outputs, columns = inputs) goes on top of the ratio"),
            (dict(polar=True), "every singular value of your direction is exactly one: that is the exact polar "
                               "factor (an SVD), but Muon's step, and this exercise, use dropmuon.newton_schulz's "
                               "five steps, which leave them only near one"),
            (dict(polar=True, transposed=True), "two things: your direction is the exact polar factor rather than "
                                                "dropmuon.newton_schulz's five steps, and your shape factor uses "
                                                "the wrong ratio of W's sizes")):
        if _near(value, case, **flags):
            return words
    if torch.allclose(value[:n], torch.zeros(n, dtype=torch.float64)):
        return "this layer is not frozen, but its weight did not move"
    return ("not right yet: update the momentum, form the look-ahead, orthogonalise it with "
            "dropmuon.newton_schulz and step against it")


def dropmuon_update(fn: Callable) -> CheckResult:
    """Check a learner's ``fn(W, G, M, *, frozen, lr, momentum) -> (W_new, M_new)``: one layer of Drop-Muon
    (eq-dropmuon-muon, eq-dropmuon-suffix), with Nesterov momentum and Muon's shape factor.

    The cases are a wide and a tall updated layer and a frozen one. Messages name the case and describe
    the learner's output, never the expected one.
    """
    if not _missing(fn) and callable(fn):
        learner = fn

        def fn(W, G, M, frozen, lr, momentum):
            out = learner(W.clone(), G.clone(), M.clone(), frozen=frozen, lr=lr, momentum=momentum)
            if _missing(out):
                return out
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                raise TypeError("expected the pair (W_new, M_new)")
            W_new, M_new = (torch.as_tensor(t, dtype=torch.float64) for t in out)
            if W_new.shape != W.shape or M_new.shape != M.shape:
                raise TypeError(f"expected W_new and M_new of W's shape {tuple(W.shape)}")
            return _pack(W, W_new, M_new, lr)

    return check_function(
        fn, _reference, UPDATE_CASES, rtol=1e-8, close_rtol=0.02, hint=_hint,
        close_note="nearly there: is everything in float64, and Newton-Schulz run for its default 5 steps?",
        praise="including a frozen layer and Muon's factor for a tall one")
