"""Benchmark: one Muon step on a 256 x 256 weight, ours (lessons_lib.dropmuon.update) against torch.optim.Muon.

torch.optim.Muon runs its five Newton-Schulz steps in bfloat16, ours in the weight's dtype (float32 here).
Whether bfloat16 is slower depends on the CPU's support for it: an earlier measurement on a two-core machine
found a 256 x 256 bfloat16 product about 50 times slower than float32, but with torch 2.13 on the book's
loaded two-core machine torch's step took 12 ms against our 21 ms (one run each, under load). The script
times both on one thread and prints the median of several repeats and the relative gap between the two weight
changes (about 1-2 %, the bfloat16 rounding). Not wired into ``make bench``: run it by hand.

    python benchmarks/dropmuon_step.py            # 256 x 256, 20 repeats
    python benchmarks/dropmuon_step.py --quick    # 64 x 64, 3 repeats (a smoke run)
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lessons_lib import dropmuon


def run(n: int = 256, repeats: int = 20) -> dict[str, float]:
    """Median seconds per step of ours and of torch.optim.Muon, and the relative gap of their weight changes."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        gen = torch.Generator().manual_seed(0)
        W0 = torch.randn(n, n, generator=gen) / n**0.5
        G = torch.randn(n, n, generator=gen)
        ours, theirs = [], []
        for _ in range(repeats):
            state = dropmuon.init([W0])
            t0 = time.perf_counter()
            (W1,), _ = dropmuon.update([W0], [G], state, start=0, lr=0.02)
            ours.append(time.perf_counter() - t0)
            p = torch.nn.Parameter(W0.clone())
            opt = torch.optim.Muon([p], lr=0.02, weight_decay=0)
            p.grad = G.clone()
            t0 = time.perf_counter()
            opt.step()
            theirs.append(time.perf_counter() - t0)
        gap = float(((W1 - W0) - (p.detach() - W0)).norm() / (p.detach() - W0).norm())
    finally:
        torch.set_num_threads(previous)
    return {"n": n, "ours_s": statistics.median(ours), "torch_s": statistics.median(theirs), "gap": gap}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64 x 64, 3 repeats")
    args = parser.parse_args()
    r = run(64, 3) if args.quick else run()
    print(f"{r['n']} x {r['n']}: ours {1e3 * r['ours_s']:.2f} ms, torch.optim.Muon {1e3 * r['torch_s']:.2f} ms "
          f"(torch / ours = {r['torch_s'] / r['ours_s']:.2f}), relative gap of the weight change {r['gap']:.3f}")


if __name__ == "__main__":
    main()
