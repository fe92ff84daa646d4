"""Benchmark: our CG and Jacobi-PCG against pyamg's smoothed-aggregation AMG as a CG preconditioner.

The problem is the chapter's, on a finer grid: the L-shape on a 64 x 64 grid (``N = 3072`` cells), the
5-point Laplacian ``A`` of ``lessons_lib.poisson.poisson_matrix`` and one source ``f = B z``, the sum of 16
Gaussian bumps of width 3 weighted by ``z ~ N(0, I)`` (seed 0). Each solver starts from ``x = 0`` and
must reach a relative residual ``||f - A x|| / ||f|| <= 1e-8``:

* ``lessons_lib.poisson.cg`` without a preconditioner, and with ``preconditioner="jacobi"`` (on this
  matrix, whose diagonal is the constant 4, Jacobi is a rescaling and changes no iterate);
* pyamg 5.4.1: ``smoothed_aggregation_solver(A).solve(f, tol=1e-8, accel="cg")`` (a V-cycle as the
  preconditioner of CG), its set-up timed apart.

Our ``cg`` has no stopping test: the first iteration count that reaches the target is found by scanning,
then one call with exactly that many iterations is timed. Times are wall-clock, best of ``--repeat``, and
indicative only (they vary by a factor of two to three with the load of a shared machine); the
final relative residual of every answer is measured the same way for all.

    python benchmarks/poisson_amg.py            # best of 3 timings per entry
    python benchmarks/poisson_amg.py --quick    # one timing per entry

A script, not a timed test; :func:`run` returns the rows. pyamg is a benchmark-only dependency: without
it only our rows are filled.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.sparse as sp
import torch

from lessons_lib import poisson

TOL = 1e-8


def problem(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A, f)``: the L-shape Laplacian on an ``n x n`` grid and one bump source, float64 on the CPU."""
    mask = poisson.l_shape_mask(n, device="cpu")
    A = poisson.poisson_matrix(mask)
    B = poisson.bump_sources(mask, generator=seed)
    z = torch.randn(B.shape[1], generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return A, B @ z


def _relres(A: torch.Tensor, f: torch.Tensor, x: torch.Tensor) -> float:
    return float(torch.linalg.norm(f - A @ x) / torch.linalg.norm(f))


def iterations_needed(A: torch.Tensor, f: torch.Tensor, preconditioner: str | None, cap: int = 5000) -> int:
    """The first iteration count at which our CG's relative residual is ``<= TOL`` (scanned in blocks of 10)."""
    k = 0
    while k < cap:
        k += 10
        if _relres(A, f, poisson.cg(A, f, steps=k, preconditioner=preconditioner)) <= TOL:
            for j in range(k - 9, k + 1):
                if _relres(A, f, poisson.cg(A, f, steps=j, preconditioner=preconditioner)) <= TOL:
                    return j
    raise RuntimeError(f"CG did not reach {TOL:g} in {cap} iterations")


def _best(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def run(n: int = 64, repeat: int = 3) -> list[dict]:
    """One row per solver: name, iterations, set-up and solve time (s), final relative residual."""
    A, f = problem(n)
    rows = []
    for name, pre in (("ours: CG", None), ("ours: Jacobi-PCG", "jacobi")):
        k = iterations_needed(A, f, pre)
        t, x = _best(lambda k=k, pre=pre: poisson.cg(A, f, steps=k, preconditioner=pre), repeat)
        rows.append(dict(solver=name, iterations=k, setup_s=0.0, solve_s=t, residual=_relres(A, f, x)))
    try:
        import pyamg
    except ImportError:
        return rows
    As = sp.csr_array(A.to_dense().numpy())
    b = f.numpy()
    setup, ml = _best(lambda: pyamg.smoothed_aggregation_solver(As), repeat)
    residuals: list[float] = []

    def solve():
        residuals.clear()
        return ml.solve(b, x0=np.zeros_like(b), tol=TOL, accel="cg", residuals=residuals)

    t, x = _best(solve, repeat)
    rows.append(dict(solver=f"pyamg {pyamg.__version__}: SA-AMG-PCG", iterations=len(residuals) - 1,
                     setup_s=setup, solve_s=t, residual=_relres(A, f, torch.as_tensor(x))))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one timing per entry")
    parser.add_argument("--n", type=int, default=64, help="grid side (even)")
    args = parser.parse_args()
    rows = run(args.n, repeat=1 if args.quick else 3)
    print(f"L-shape {args.n} x {args.n}, N = {int(poisson.l_shape_mask(args.n, device='cpu').sum())}, "
          f"target relative residual {TOL:g}")
    print("| solver | iterations | set-up (ms) | solve (ms) | final residual |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['solver']} | {r['iterations']} | {1e3 * r['setup_s']:.1f} | {1e3 * r['solve_s']:.1f} | "
              f"{r['residual']:.1e} |")
    print("Iteration counts are the comparison; times are wall-clock on this machine and vary with its load "
          "(indicative only: at this size AMG's set-up plus solve need not beat plain CG).")


if __name__ == "__main__":
    main()
