"""Benchmark: time to a marginal error of 1e-8 of our Sinkhorn and SNS against regot's solvers.

The problem is the chapter's (``transport.ot_problem_1d(200)``: a bimodal density moved onto a unimodal
one, squared-distance cost) at ``eta = 1200, 300, 50`` (regot's and POT's ``reg`` is ``1 / eta``). Timed,
each from its own cold start:

* ``lessons_lib.transport.sinkhorn`` (log-domain Sinkhorn, torch);
* ``lessons_lib.transport.sns`` with 20 Sinkhorn sweeps, then Newton steps on the dense Hessian and on a
  10%-density one;
* regot's ``sinkhorn_bcd`` (Sinkhorn), ``sinkhorn_newton`` (dense Newton) and ``sinkhorn_ssns`` (its
  safe-and-sparse Newton), C++ with Eigen.

Ours stops when the l1 marginal error ``||P 1 - r||_1 + ||P^T 1 - c||_1`` falls below 1e-8. regot stops
when the Euclidean norm of the marginal error (its ``mar_errs``) falls below its ``tol``; as
``l1 <= sqrt(n + m) l2``, it gets ``tol = 1e-8 / sqrt(n + m)``, which guarantees the same l1 target (and
asks a little more). The table shows the l1 error of every final plan, measured the same way for all.
Iterations are each solver's own count (ours: sweeps plus Newton steps). Times are wall-clock and
process CPU time of one call; ours is timed with exactly as many iterations as it needs (its loop does
not stop early) and records the error and the dual at every iteration. A second
table compares the plans at ``eta = 1200`` with POT's log-domain Sinkhorn (``stopThr = 1e-12``) and
regot's Newton (``tol = 1e-10``): the sum of absolute differences, with our dense SNS stopped at 1e-8
and at 1e-11.

    python benchmarks/transport_time.py            # best of 3 timings per entry
    python benchmarks/transport_time.py --quick    # one timing per entry

This is a script, not a timed test; :func:`run` returns the rows for a caller. regot and POT are
test-only dependencies: without them only our rows are filled.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from lessons_lib import transport

ETAS = (1200.0, 300.0, 50.0)
TOL = 1e-8


def _ours(name: str, budget: int | None = None):
    """Our solver ``name``; ``budget`` = total iterations (else a cap far above the count)."""
    if name == "sinkhorn":
        return lambda C, r, c, eta: transport.sinkhorn(C, r, c, eta=eta, steps=budget or 5000, tol=TOL)
    density = {"sns dense": 1.0, "sns 10%": 0.1}[name]
    steps = 500 if budget is None else max(budget - 20, 0)
    return lambda C, r, c, eta: transport.sns(C, r, c, eta=eta, sinkhorn_steps=20, density=density,
                                              steps=steps, tol=TOL)


def _regot(name: str):
    import regot

    fn, cap = {"sinkhorn_bcd": (regot.sinkhorn_bcd, 10000), "sinkhorn_newton": (regot.sinkhorn_newton, 500),
               "sinkhorn_ssns": (regot.sinkhorn_ssns, 2000)}[name]
    # an l2 bound that guarantees the l1 target: ||v||_1 <= sqrt(n + m) ||v||_2
    return lambda C, r, c, eta: fn(C, r, c, 1.0 / eta, tol=TOL / math.sqrt(sum(C.shape)), max_iter=cap)


def _best(fn, args, repeats: int):
    best, cpu, out = float("inf"), float("inf"), None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn(*args)
        best, cpu = min(best, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    return best, cpu, out


def run(*, etas=ETAS, repeats: int = 3, n: int = 200) -> dict:
    """Time every solver at every ``eta`` and compare the plans at ``etas[0]``.

    Returns:
        ``{"rows": [{"solver", "eta", "iterations", "seconds", "cpu", "l1_error", "converged"}, ...],
        "agreement": {"eta", our tol: {peer: l1 difference of plans}} or None, "n", "repeats", "threads",
        "regot"/"pot": installed versions or None}``.
    """
    prob = transport.ot_problem_1d(n, device="cpu")
    C, r, c = prob.C, prob.r, prob.c
    Cn, rn, cn = np.asfortranarray(C.numpy()), r.numpy(), c.numpy()
    try:
        from importlib.metadata import version

        import regot  # noqa: F401

        regot_version = version("regot")
    except ImportError:
        regot_version = None
    transport.sinkhorn(C, r, c, eta=50.0, steps=5)  # warm up torch
    rows = []
    for eta in etas:
        for name in ("sinkhorn", "sns dense", "sns 10%"):
            # our runs take every step asked for (a converged state stays put): find the count, then time
            # the same deterministic run with exactly that many iterations
            count = _ours(name)(C, r, c, eta).iterations
            seconds, cpu, res = _best(_ours(name, count), (C, r, c, eta), repeats)
            rows.append(dict(solver=f"lessons_lib {name}", eta=eta, iterations=res.iterations, seconds=seconds,
                             cpu=cpu, l1_error=float(res.errors[res.iterations]), converged=res.converged))
        if regot_version is None:
            continue
        for name in ("sinkhorn_bcd", "sinkhorn_newton", "sinkhorn_ssns"):
            seconds, cpu, res = _best(_regot(name), (Cn, rn, cn, eta), repeats)
            err = transport.marginal_error(torch.tensor(np.array(res.plan)), r, c)
            rows.append(dict(solver=f"regot {name}", eta=eta, iterations=int(res.niter), seconds=seconds,
                             cpu=cpu, l1_error=err, converged=err < TOL))
    agreement, pot_version = None, None
    try:
        import ot

        pot_version = ot.__version__
    except ImportError:
        pass
    if pot_version is not None and regot_version is not None:
        import regot

        eta = etas[0]
        pot = ot.sinkhorn(rn, cn, Cn, reg=1 / eta, method="sinkhorn_log", numItermax=10000, stopThr=1e-12)
        newton = np.asarray(regot.sinkhorn_newton(Cn, rn, cn, 1 / eta, tol=1e-10, max_iter=100).plan)
        agreement = {"eta": eta}
        for tol in (TOL, 1e-11):
            ours = transport.sns(C, r, c, eta=eta, tol=tol).plan.numpy()
            agreement[tol] = {"POT sinkhorn_log": float(np.abs(pot - ours).sum()),
                              "regot sinkhorn_newton": float(np.abs(newton - ours).sum())}
    return dict(rows=rows, agreement=agreement, n=n, repeats=repeats, threads=torch.get_num_threads(),
                regot=regot_version, pot=pot_version)


def markdown(res: dict) -> str:
    """The result of :func:`run` as markdown tables."""
    lines = [f"Time to an l1 marginal error of {TOL:g} on ot_problem_1d({res['n']}), best of {res['repeats']}, "
             f"torch threads={res['threads']}, regot {res['regot'] or 'not installed'}", "",
             "| solver | eta | iterations | wall (s) | CPU (s) | l1 error of the final plan |",
             "|:--|--:|--:|--:|--:|--:|"]
    for row in res["rows"]:
        mark = "" if row["converged"] else " (not reached)"
        lines.append(f"| {row['solver']} | {row['eta']:g} | {row['iterations']} | {row['seconds']:.3f} | "
                     f"{row['cpu']:.3f} | {row['l1_error']:.1e}{mark} |")
    if res["agreement"] is not None:
        a = res["agreement"]
        peers = [k for k in a[TOL]]
        lines += ["", f"Plans at eta = {a['eta']:g}: sum |P_ours - P_peer|, ours = dense SNS stopped at the tol "
                  f"shown; POT {res['pot']} sinkhorn_log at stopThr 1e-12, regot's Newton at tol 1e-10", "",
                  "| our tol | " + " | ".join(peers) + " |", "|--:|" + "--:|" * len(peers)]
        lines += [f"| {tol:g} | " + " | ".join(f"{a[tol][k]:.1e}" for k in peers) + " |"
                  for tol in a if tol != "eta"]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one timing per entry instead of the best of 3")
    args = parser.parse_args()
    print(markdown(run(repeats=1 if args.quick else 3)))
