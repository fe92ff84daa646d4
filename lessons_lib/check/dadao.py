"""Self-checks of the chapter on DADAO (dadao.ipynb)."""

from __future__ import annotations

from typing import Callable

import torch

from .. import dadao
from .core import CheckResult, check_function


def _cases() -> dict[str, dict]:
    gen = torch.Generator().manual_seed(3)
    problem = dadao.logistic_problem(3, dim=4, samples=20, generator=5, device="cpu")
    chi1, chi2 = dadao.graph_constants(dadao.graph_edges("cycle", 3), 3)
    params = dadao.dadao_params(L=problem.L, mu=problem.mu, chi1=chi1, chi2=chi2, n=3)

    def state():
        return torch.randn(6, 4, generator=gen, dtype=torch.float64)

    return {"a gradient event at node 1, 0.7 time units after its last event":
            dict(state=state(), tau=0.7, params=params, grad_fn=lambda x: problem.grad(1, x), other=None),
            "a gossip event, 1.3 time units after the node's last event, with a neighbour's message y + z":
            dict(state=state(), tau=1.3, params=params, grad_fn=None, other=torch.randn(4, generator=gen,
                                                                                        dtype=torch.float64)),
            "a gradient event at node 2, 4.0 time units after its last event":
            dict(state=state(), tau=4.0, params=params, grad_fn=lambda x: problem.grad(2, x), other=None)}


# the inputs (state, tau, params, grad_fn, other) that dadao_event hands the learner's function, by description
CASES = _cases()


def _reference(state, tau, params, grad_fn, other):
    return dadao.node_event(state, tau, params, grad_fn=grad_fn, other=other)


def _variants(case) -> list[tuple[torch.Tensor, str]]:
    """The usual wrong players, each with what its output shows."""
    s, tau, p, g, o = (case[k] for k in ("state", "tau", "params", "grad_fn", "other"))
    ahead = dadao.flow(s, tau, p)
    if g is not None:
        def jump(at, grad, nu=p.nu, ys=None):
            r = grad - nu * at[0] - (at[3] if ys is None else ys)
            return at + p.grad_jump * r
        return [(jump(s, g(s[0])), "your node jumps from where it was at its last event: advance it by the flow "
                                   "exp(tau M) first (eq-dadao-ode), then jump"),
                (jump(ahead, g(s[0])), "you advance the node, but the gradient is taken at the old x: evaluate it "
                                       "at the advanced x"),
                (dadao.flow(jump(s, g(s[0])), tau, p), "you jump first and flow afterwards: the flow covers the "
                                                       "time before the event, so it comes first"),
                (jump(ahead, g(ahead[0]), nu=0.0), "your r lacks the term - nu x: r = grad f_i(x) - nu x - y~"),
                (ahead + p.grad_jump * -(g(ahead[0]) - p.nu * ahead[0] - ahead[3]),
                 "your jump goes the wrong way: x moves against r = grad f_i(x) - nu x - y~, y~ along it")]
    pm = ahead[2] + ahead[4] - o
    return [(s + p.comm_jump * (s[2] + s[4] - o), "your node jumps from where it was at its last event: advance it "
                                                    "by the flow exp(tau M) first (eq-dadao-ode), then jump"),
            (ahead - p.comm_jump * pm, "your jump has the wrong sign: p is your own y + z minus the neighbour's, and "
                                       "z, z~ move against p"),
            (ahead + torch.tensor([[0.0]] * 4 + [[-p.beta]] * 2, dtype=torch.float64) * pm,
             "your z~ jumps by beta p; it jumps by beta~ p (beta~ carries the graph constant chi1)"),
            (ahead + p.comm_jump * (ahead[4] - o), "your message is z alone: a node sends y + z")]


def _hint(case, value) -> str:
    v = torch.as_tensor(value, dtype=torch.float64)
    if v.shape != case["state"].shape:
        return f"return the node's whole new state, shape {tuple(case['state'].shape)} (rows x, x~, y, y~, z, z~)"
    for wrong, words in _variants(case):
        if torch.allclose(v, wrong, rtol=1e-8, atol=1e-12):
            return words
    rows = [dadao.ROWS[k] for k in range(6) if not torch.allclose(v[k], _reference(**case)[k], rtol=1e-6,
                                                                   atol=1e-12)]
    return "not right yet: the rows " + ", ".join(rows) + " differ; advance by the flow, then apply the event's jump"


def dadao_event(fn: Callable) -> CheckResult:
    """Check a learner's per-node event player ``fn(state, tau, params, grad_fn, other)`` (eq-dadao-ode,
    eq-dadao-grad, eq-dadao-comm).

    ``state`` is the node's ``(6, d)`` state at its last event, ``tau`` the time since, and exactly one of
    ``grad_fn`` (a gradient event: ``x -> grad f_i(x)``) and ``other`` (a gossip event: the neighbour's
    ``y + z``) is given. The answer is the node's new state just after the event. Messages name the case and
    describe the learner's output, never the expected one.
    """
    return check_function(
        fn, _reference, CASES, rtol=1e-8, close_rtol=0.02, hint=_hint,
        close_note="nearly there: is everything in float64?",
        nonfinite="your state contains NaN or infinity: is tau used as a time (exp(tau M)), not as a rate?",
        praise="gradient and gossip events alike")
