"""Benchmark: the cost of M-FAC's inverse-Hessian-vector product against the dimension d and the window m.

Times, in float64 on the default device, (a) the static recursion's setup (expected O(d m^2)), (b) one static IHVP
(expected O(d m)) and (c) one sliding-window IHVP by Woodbury with a cached Cholesky factor (expected O(d m + m^2)),
over a grid of d at fixed m and of m at fixed d, and prints the log-log slopes (least squares over all sizes).
Expected slopes: about 1 for the IHVPs in d and in m, about 2 for the setup in m.

    python benchmarks/mfac_ihvp.py            # d up to 64k, m up to 512
    python benchmarks/mfac_ihvp.py --quick    # a smoke run

The quick scale is a smoke run, not a measurement of the exponents: its operations last about a millisecond, so
cache effects, BLAS thresholds and other work on a shared CPU inflate the slopes. On a loaded two-core machine it
gave 1.19 to 1.29 in d and 1.33 to 1.65 for the IHVPs in m (expected 1). Read the exponents from the full scale,
on an otherwise idle machine or a GPU.

A script, not a timed test; ``run()`` returns the rows for a caller such as ``make bench``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lessons_lib import mfac
from lessons_lib.backend import default_device
from lessons_lib.measure import loglog_slope


def _time(fn, device, repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(d: int, m: int, device) -> dict[str, float]:
    gen = torch.Generator(device=device).manual_seed(0)
    G = torch.randn(m, d, generator=gen, dtype=torch.float64, device=device)
    x = torch.randn(d, generator=gen, dtype=torch.float64, device=device)
    inv = mfac.static_inverse(G, damp=1e-3)
    win = mfac.window_init(d, m=m, damp=1e-3, device=device)
    for g in G:
        win = mfac.window_add(win, g)
    return {"d": d, "m": m,
            "setup_s": _time(lambda: mfac.static_inverse(G, damp=1e-3), device, repeats=2),
            "static_ihvp_s": _time(lambda: inv.ihvp(x), device, repeats=20),
            "window_ihvp_s": _time(lambda: mfac.window_ihvp(win, x), device, repeats=20)}


def run(quick: bool = False) -> list[dict[str, float]]:
    device = default_device()
    ds = [4000, 8000, 16000, 32000] if quick else [4000, 8000, 16000, 32000, 64000]
    ms = [32, 64, 128] if quick else [32, 64, 128, 256, 512]
    rows = [measure(d, 64, device) for d in ds] + [measure(16000, m, device) for m in ms]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    rows = run(parser.parse_args().quick)
    print("| d | m | setup (s) | static IHVP (ms) | window IHVP (ms) |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['d']} | {r['m']} | {r['setup_s']:.3g} | {1e3 * r['static_ihvp_s']:.3g} | "
              f"{1e3 * r['window_ihvp_s']:.3g} |")
    for axis in ("d", "m"):
        part = [r for r in rows if (r["m"] == 64 if axis == "d" else r["d"] == 16000)]
        part = sorted({r[axis]: r for r in part}.values(), key=lambda r: r[axis])
        xs = [r[axis] for r in part]
        slopes = {k: loglog_slope(xs, [r[k] for r in part]) for k in ("setup_s", "static_ihvp_s", "window_ihvp_s")}
        print(f"slopes against {axis}: " + ", ".join(f"{k[:-2]} {v:.2f}" for k, v in slopes.items()))


if __name__ == "__main__":
    main()
