"""Benchmark: our CBO (lessons_lib.cbo, torch) against CBXpy (``cbx``, numpy) on the same problem.

Rastrigin in ``d = 20`` with ``N = 40`` particles, 50 independent runs, 5000 steps, anisotropic noise
``sigma = 10.1``, ``lam = 1``, ``dt = 0.01``, ``alpha`` starting at 30 and multiplied by 1.05 per step up
to 1e5 (CBXpy's default scheduler, matched on our side with ``alpha_growth``/``alpha_max``). Both start
from particles uniform on ``[-3, 3]^d``; success is ``|c - 0|_inf < 0.25`` for the final consensus point.
CBXpy runs with history tracking switched off (its fastest setting); we record only the first and last
consensus point. One call times both and reports the ratio ``cbx_s / ours_s`` (> 1: ours is faster).

    python benchmarks/cbo_vs_cbx.py            # full size, prints a markdown table
    python benchmarks/cbo_vs_cbx.py --quick    # 500 steps, a smoke run

This is a script, not a timed test; ``make bench`` imports :func:`run`.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from lessons_lib import cbo, landscapes

SETTINGS = dict(sigma=10.1, alpha=30.0, alpha_growth=1.05, alpha_max=1e5, dt=0.01, lam=1.0,
                noise_type="anisotropic", low=-3.0, high=3.0, tol=0.25)


def _ours(X0: torch.Tensor, steps: int, seed: int) -> tuple[float, float]:
    s = SETTINGS
    t0 = time.perf_counter()
    res = cbo.cbo_minimize(landscapes.rastrigin, X0, alpha=s["alpha"], lam=s["lam"], sigma=s["sigma"], dt=s["dt"],
                           steps=steps, noise_type=s["noise_type"], alpha_growth=s["alpha_growth"],
                           alpha_max=s["alpha_max"], generator=seed, record_every=max(steps, 1))
    seconds = time.perf_counter() - t0
    return seconds, res.success_rate(tol=s["tol"])


def _cbx(X0: np.ndarray, steps: int, seed: int) -> tuple[float, float]:
    from cbx.dynamics import CBO
    from cbx.objectives import Rastrigin

    s = SETTINGS
    t0 = time.perf_counter()
    dyn = CBO(Rastrigin(), f_dim="3D", x=X0.copy(), noise=s["noise_type"], sigma=s["sigma"], alpha=s["alpha"],
              dt=s["dt"], lamda=s["lam"], max_it=steps, verbosity=0, seed=seed, track_args={"names": []})
    dyn.optimize(sched="default")  # multiplies alpha by 1.05 per step, capped at 1e5
    seconds = time.perf_counter() - t0
    err = np.abs(dyn.consensus[:, 0, :]).max(axis=-1)
    return seconds, float((err < s["tol"]).mean())


def run(*, runs: int = 50, steps: int = 5000, d: int = 20, N: int = 40, seed: int = 0) -> dict:
    """Time our CBO and CBXpy's on the same Rastrigin problem; returns times, ratio and success rates.

    Returns:
        ``{"ours_s", "cbx_s", "ratio" (cbx_s / ours_s), "ours_success", "cbx_success", "runs", "steps",
        "d", "N", "seed", "threads", "cbx_version", ...SETTINGS}``; the cbx entries are ``None`` when
        ``cbx`` is not installed.
    """
    X0 = cbo.init_particles(runs, N, d, low=SETTINGS["low"], high=SETTINGS["high"], generator=seed, device="cpu")
    ours_s, ours_success = _ours(X0, steps, seed)
    try:
        import cbx
    except ImportError:
        cbx_s = cbx_success = ratio = version = None
    else:
        version = getattr(cbx, "__version__", None)
        if version is None:
            from importlib.metadata import version as _v

            version = _v("cbx")
        cbx_s, cbx_success = _cbx(X0.numpy(), steps, seed)
        ratio = cbx_s / ours_s
    return dict(ours_s=ours_s, cbx_s=cbx_s, ratio=ratio, ours_success=ours_success, cbx_success=cbx_success,
                runs=runs, steps=steps, d=d, N=N, seed=seed, threads=torch.get_num_threads(), cbx_version=version,
                **SETTINGS)


def markdown(r: dict) -> str:
    """The result of :func:`run` as a markdown table."""
    def fmt(v, spec):
        return "n/a" if v is None else format(v, spec)

    return "\n".join([
        f"CBO on Rastrigin d={r['d']}, N={r['N']}, {r['runs']} runs, {r['steps']} steps, "
        f"anisotropic sigma={r['sigma']}, alpha {r['alpha']:g} x{r['alpha_growth']} (cap {r['alpha_max']:g}), "
        f"dt={r['dt']}, torch threads={r['threads']}",
        "",
        "| implementation | time (s) | success (|c|_inf < 0.25) |",
        "|:--|--:|--:|",
        f"| lessons_lib.cbo (torch, CPU) | {r['ours_s']:.2f} | {r['ours_success']:.0%} |",
        f"| cbx {r['cbx_version'] or ''} (numpy) | {fmt(r['cbx_s'], '.2f')} | "
        f"{'n/a' if r['cbx_success'] is None else format(r['cbx_success'], '.0%')} |",
        "",
        f"speed ratio cbx / ours: {fmt(r['ratio'], '.2f')}x",
    ])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="500 steps instead of 5000")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(markdown(run(steps=500 if args.quick else 5000, seed=args.seed)))
