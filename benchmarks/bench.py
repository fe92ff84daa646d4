"""``make bench``: what readers feel and what peers do, measured in one run into ``benchmarks/results.md``.

    python benchmarks/bench.py                       # everything (the site build takes minutes)
    python benchmarks/bench.py --skip-build          # everything but the clean `make book`
    python benchmarks/bench.py --chapters learning-rate-and-curvature --tiny   # a smoke run (~30 s)

Sections (``--sections``, comma-separated; default all):

* ``chapters``: each ``book/*.ipynb`` executed headless (``LESSONS_STATIC=1``, as ``make book``
  does), ``--runs`` times (default 3); median, max, total; chapters over the 45 s budget are flagged.
* ``latency``: each notebook executed once more with ``benchmarks/latency.py`` installed before its
  first cell (``runner.py --setup``): through ``lessons_lib.explore``'s display hook, every displayed
  explorer is timed warm (cached frame + ``Image`` refresh), cold (first visits) and for the warm-up
  of its whole grid, and appends a JSON line. With nbclient the notebook runs live, in a real kernel
  with ipywidgets, as a reader's would; without Jupyter (``--executor inprocess``) the widget refresh
  is not part of the time.
* ``weight``: bytes of each built page in ``_build/html`` (HTML with its inline explorer frames, plus
  the figure PNGs it references) and frames per explorer; needs ``make book`` first.
* ``build``: wall time of ``make book`` in a clean copy of the working tree (``_build`` absent), and
  of its notebook step (nbmake) alone. Skip with ``--skip-build`` (it takes minutes).
* ``peers``: CBO against cbx (``benchmarks/cbo_vs_cbx.py``), and sharpness + Hessian trace against a
  dense Hessian with ``eigvalsh``, with the crossover in parameter count.
* ``scaling``: log-log slopes of time against problem size (CBO against N·d and steps, curvature
  against parameter count), with plots saved next to the results file.

``--tiny`` (for the test) runs each chapter once with the latency sweep in the same run, thins each
explorer's grid to a few points, shrinks peers and scaling, and skips the build.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import runner  # noqa: E402  (benchmarks/runner.py)

BUDGET_S = 45.0
GOAL_MEDIAN_MS, GOAL_P95_MS, GOAL_COLD_MS = 50.0, 150.0, 300.0
GOAL_PAGE_BYTES = 3_000_000
SECTIONS = ("chapters", "latency", "weight", "build", "peers", "scaling")


def log(msg: str) -> None:
    print(msg, flush=True)


def find_notebooks(names: list[str] | None) -> list[Path]:
    """Every chapter in ``book/*.ipynb`` (new chapters are picked up), or the ``names`` given."""
    found = sorted(p for p in BOOK.glob("*.ipynb"))
    if not names:
        return found
    by_stem = {p.stem: p for p in found}
    wanted = [n.removesuffix(".ipynb").split("/")[-1] for part in names for n in part.split(",") if n]
    unknown = [n for n in wanted if n not in by_stem]
    if unknown:
        raise SystemExit(f"--chapters: no book/{unknown[0]}.ipynb; chapters: {', '.join(by_stem)}")
    return [by_stem[n] for n in wanted]


# -- machine -----------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_lines(args, device: str) -> list[str]:
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    dev = device
    if device.startswith("cuda") and torch.cuda.is_available():
        dev = f"{device} ({torch.cuda.get_device_name(0)})"
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return [
        f"- **CPU:** {cpu_model()}, {cores} cores available (`os.cpu_count()` = {os.cpu_count()})",
        f"- **torch:** {torch.__version__}, {torch.get_num_threads()} intra-op threads"
        f" (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}); Python {platform.python_version()}",
        f"- **device:** {dev}; scale `{args.scale}`; executor `{args.executor_name}`",
        f"- **date:** {dt.datetime.now().isoformat(timespec='seconds')}; load average at start (1/5/15 min): {load}",
        f"- **command:** `{args.command}`",
    ]


# -- running notebooks ---------------------------------------------------------------------------
def run_notebook(nb: Path, args, *, static: bool, latency_file: Path | None = None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["PYTHONUNBUFFERED"] = "1"
    env["LESSONS_SCALE"] = args.scale
    env["LESSONS_STATIC"] = "1" if static else "0"
    if args.device:
        env["LESSONS_DEVICE"] = args.device
    setup = ""
    if latency_file is not None:  # benchmarks/latency.py measures each explorer through the display hook
        setup = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import latency; "
                 f"latency.install({str(latency_file)!r}, {int(args.grid or 0)})")
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out = Path(fh.name)
    cmd = [sys.executable, str(HERE / "runner.py"), str(nb), "--executor", args.executor_name,
           "--timeout", str(args.timeout), "--json", str(out), "--setup", setup]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=args.timeout + 60)
        result = json.loads(out.read_text()) if out.stat().st_size else {
            "ok": False, "seconds": time.perf_counter() - t0, "error": (proc.stderr or "no result").strip()[-400:]}
    except subprocess.TimeoutExpired:
        result = {"ok": False, "seconds": time.perf_counter() - t0, "error": f"timed out after {args.timeout} s"}
    finally:
        out.unlink(missing_ok=True)
    return result


def read_latency(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def chapters_and_latency(nbs: list[Path], args, tmp: Path, do_chapters: bool, do_latency: bool,
                         on_progress=lambda times, latency: None):
    """Run the notebooks; returns ({stem: [result, ...]}, {stem: [latency record, ...]})."""
    times: dict[str, list[dict]] = {}
    latency: dict[str, list[dict]] = {}
    live = args.executor_name == "nbclient" and runner.available("ipywidgets")
    start = time.perf_counter()
    for nb in nbs:
        stem = nb.stem
        if args.budget and time.perf_counter() - start > args.budget:
            skipped = {"ok": False, "seconds": float("nan"), "error": f"not run: --budget {args.budget:.0f} s spent"}
            log(f"  {stem}: {skipped['error']}")
            if do_chapters:
                times[stem] = [skipped]
            if do_latency:
                latency[stem] = [{"error": skipped["error"]}]
            continue
        if do_chapters:
            times[stem] = []
            for i in range(args.runs):
                lat = tmp / f"{stem}-combined-{i}.jsonl" if args.combined and do_latency and i == 0 else None
                r = run_notebook(nb, args, static=True, latency_file=lat)
                if lat is not None:
                    latency[stem] = read_latency(lat)
                    sweep = sum(rec["warmup_s"] + sum(rec["warm_s"]) + sum(rec["cold_s"])
                                for rec in latency[stem] if "cold_s" in rec)
                    r["sweep_s"] = sweep
                    r["seconds"] -= sweep  # the chapter's own time, without the benchmark's sweep
                times[stem].append(r)
                status = "ok" if r["ok"] else f"FAILED: {r['error']}"
                log(f"  {stem}: run {i + 1}/{args.runs} {r['seconds']:7.1f} s  {status}")
                if not r["ok"]:
                    break  # a failing chapter fails every run; do not spend its budget twice
        if do_latency and stem not in latency:
            lat = tmp / f"{stem}-latency.jsonl"
            r = run_notebook(nb, args, static=not live, latency_file=lat)
            latency[stem] = read_latency(lat)
            if not r["ok"]:
                latency[stem].append({"error": r["error"]})
            n = sum(rec.get("points", 0) for rec in latency[stem])
            log(f"  {stem}: latency run ({'live' if live else 'static'}) {r['seconds']:.1f} s, "
                f"{len([x for x in latency[stem] if 'cold_s' in x])} explorers, {n} updates timed"
                + ("" if r["ok"] else f"  FAILED: {r['error']}"))
        on_progress(times, latency)
    return times, latency


def chapters_markdown(times: dict[str, list[dict]], args) -> str:
    quick = args.scale == "quick"
    lines = [
        f"Each notebook executed headless with `LESSONS_STATIC=1` (explorer frames included), {args.runs} "
        f"run(s), fresh process each, `{args.executor_name}` executor"
        + (", kernel start included" if args.executor_name == "nbclient" else "")
        + (". With `--combined` (or `--tiny`) the first run also swept the explorers; that sweep's time is "
           "subtracted, and it warms caches the static frames reuse, so these times are a little low."
           if args.combined else ".")
        + (f" Budget: {BUDGET_S:.0f} s per chapter at quick scale." if quick else ""),
        "",
        "| chapter | median (s) | max (s) | runs | status |",
        "|:--|--:|--:|--:|:--|",
    ]
    total = 0.0
    over = []
    for stem, rs in times.items():
        secs = [r["seconds"] for r in rs]
        med, mx = statistics.median(secs), max(secs)
        if med != med:  # not run (budget)
            lines.append(f"| {stem} | – | – | 0 | {rs[0]['error']} |")
            continue
        ok = all(r["ok"] for r in rs)
        total += med
        status = "ok" if ok else f"**failed**: {rs[-1]['error']}".replace("|", "\\|").replace("\n", " ")[:300]
        if ok and quick and med > BUDGET_S:
            status = f"**over the {BUDGET_S:.0f} s budget**"
            over.append(stem)
        lines.append(f"| {stem} | {med:.1f} | {mx:.1f} | {len(rs)} | {status} |")
    lines.append(f"| **total** | **{total:.1f}** | | | |")
    if quick:
        lines += ["", f"Over budget: {', '.join(over) if over else 'none'}."]
    return "\n".join(lines)


def _pct(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q))


def latency_markdown(latency: dict[str, list[dict]], args) -> str:
    live = args.executor_name == "nbclient" and runner.available("ipywidgets") and not args.combined
    how = ("live kernel (nbclient + ipywidgets): an update includes the `Image` widget refresh"
           if live else "static build: no widget refresh measured")
    lines = [
        f"Each explorer's control grid{f' (thinned to ≤ {args.grid} points)' if args.grid else ''}, measured in a "
        f"{how}, through `lessons_lib.explore`'s display hook (`benchmarks/latency.py`). *Warm*: one update per "
        "grid point with its frame cached, as after the live explorer's idle-time warm-up; *cold*: the caches "
        "emptied, one first visit per point (compute where a batched call has not yet done it, draw, render, "
        "encode, refresh); *warm-up*: rendering the whole grid from empty caches. *In draw*: the cold updates' "
        f"time inside the chapter's `compute` + `draw`, median. Goal: warm median ≤ {GOAL_MEDIAN_MS:.0f} ms and "
        f"p95 ≤ {GOAL_P95_MS:.0f} ms, cold median ≤ {GOAL_COLD_MS:.0f} ms.",
        "",
        "| chapter | explorer | controls | points | warm median (ms) | warm p95 (ms) | cold median (ms) "
        "| cold p95 (ms) | in draw (ms) | warm-up (s) | goal |",
        "|:--|:--|:--|--:|--:|--:|--:|--:|--:|--:|:--|",
    ]
    rows = []
    for stem, recs in latency.items():
        if not recs:
            lines.append(f"| {stem} | (no explorer displayed) | | | | | | | | | |")
        for rec in recs:
            if "error" in rec:
                err = str(rec["error"]).replace("|", "\\|").replace("\n", " ")[:200]
                lines.append(f"| {stem} | **run failed**: {err} | | | | | | | | | |")
                continue
            warm = [1e3 * t for t in rec["warm_s"]]
            cold = [1e3 * t for t in rec["cold_s"]]
            dr = [1e3 * t for t in rec.get("draw_s") or [float("nan")]]
            wm, wp, cm, cp = statistics.median(warm), _pct(warm, 95), statistics.median(cold), _pct(cold, 95)
            ok = wm <= GOAL_MEDIAN_MS and wp <= GOAL_P95_MS and cm <= GOAL_COLD_MS
            cause = "its computation and plotting" if statistics.median(dr) >= cm / 2 else "rendering the figure"
            rows.append((stem, rec["draw"], cm, cp, ok, cause))
            lines.append(f"| {stem} | `{rec['draw']}` | {', '.join(rec['controls'])} | {rec['points']} "
                         f"| {wm:.1f} | {wp:.1f} | {cm:.0f} | {cp:.0f} | {statistics.median(dr):.0f} "
                         f"| {rec['warmup_s']:.1f} | {'meets' if ok else '**misses**'} |")
    if rows:
        slow = sorted(rows, key=lambda r: -r[3])[:3]
        misses = [f"{s}/`{d}` (cold: {cause})" for s, d, _, _, ok, cause in rows if not ok]
        lines += ["", "Slowest first visits (cold p95): "
                  + "; ".join(f"{r[0]}/`{r[1]}` ({r[3]:.0f} ms)" for r in slow) + ".",
                  f"Missing the goal, and what dominates: {'; '.join(misses) if misses else 'none'}."]
    return "\n".join(lines)


# -- static weight -----------------------------------------------------------------------------
def weight_markdown(nbs: list[Path], site: Path) -> str:
    pages = site / "book"
    where = site.relative_to(ROOT) if site.is_relative_to(ROOT) else site
    if not pages.is_dir():
        return f"Not measured: no built site in `{where}`; run `make book` first."
    lines = [
        f"Pages in `{where}`: the HTML (explorer frames are inline) "
        f"plus the figure PNGs it references. Goal ≤ {GOAL_PAGE_BYTES / 1e6:.0f} MB per page.",
        "",
        "| chapter | HTML (kB) | figures (kB) | total (MB) | explorer frames: drawn (distinct) | goal |",
        "|:--|--:|--:|--:|:--|:--|",
    ]
    for nb in nbs:
        page = pages / f"{nb.stem}.html"
        if not page.is_file():
            lines.append(f"| {nb.stem} | not built | | | | run `make book` |")
            continue
        text = page.read_text(encoding="utf-8", errors="replace")
        html_b = page.stat().st_size
        imgs = set(re.findall(r'src="(?:\.\./)*(_images/[^"]+)"', text))
        img_b = sum((site / i).stat().st_size for i in imgs if (site / i).is_file())
        frames = []
        for m in re.finditer(r'<script type="application/json" class="lx-data">(.*?)</script>', text, re.S):
            data = json.loads(m.group(1).replace("<\\/", "</"))
            frames.append(f"{len(data['frames'])} ({len(data['images'])})")
        for m in re.finditer(r"grid thinned from (\d+) to (\d+)", text):
            frames.append(f"thinned {m.group(1)}→{m.group(2)}")
        total = html_b + img_b
        note = "meets" if total <= GOAL_PAGE_BYTES else "**over 3 MB**"
        if nb.stat().st_mtime > page.stat().st_mtime:
            note += " (stale: the notebook changed after this build)"
        lines.append(f"| {nb.stem} | {html_b / 1e3:.0f} | {img_b / 1e3:.0f} | {total / 1e6:.2f} "
                     f"| {', '.join(frames) or 'none'} | {note} |")
    return "\n".join(lines)


# -- build -----------------------------------------------------------------------------------------
def build_markdown(args, dst: Path) -> str:
    """Time ``make book`` in ``dst``, a fresh copy of the working tree (its ``_build/html`` is then weighed)."""
    if args.skip_build:
        return ("Skipped (`--skip-build`/`--tiny`). Run `make bench` without it to time a clean `make book` "
                "(several minutes).")
    venv = ROOT / ".venv"
    if not (venv / "bin" / "python").exists() or shutil.which("make") is None:
        return "Not measured: needs `make` and the `.venv` that `make setup` creates."
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split("\n")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file() and not rel.startswith("benchmarks/results"):
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)
    (dst / ".venv").symlink_to(venv)
    log("  make book in a clean copy (this takes minutes) ...")
    t0 = time.perf_counter()
    proc = subprocess.run(["make", "-o", ".venv/.installed", "book"], cwd=dst, capture_output=True, text=True,
                          timeout=3600)
    wall = time.perf_counter() - t0
    m = re.search(r"=+ .*?(\d+) (?:passed|failed).* in ([\d.]+)s", proc.stdout)
    nb_s = float(m.group(2)) if m else float("nan")
    log(f"  make book: {wall:.0f} s (notebooks {nb_s:.0f} s), exit {proc.returncode}")
    failed = ""
    if proc.returncode != 0:
        tail = " / ".join((proc.stdout + proc.stderr).strip().splitlines()[-3:]).replace("|", "\\|")
        failed = f" **`make book` failed** (exit {proc.returncode}), so the times are up to the failure: `{tail[:400]}`"
    return "\n".join([
        f"`make book` in a clean copy of the working tree (no `_build`, no `_stage`; `.venv` reused), "
        f"JOBS={os.environ.get('JOBS', '2')}.{failed}",
        "",
        "| step | wall time (s) |", "|:--|--:|",
        f"| `make book` (stage + execute + jupyter-book build) | {wall:.0f} |",
        f"| notebook step alone (nbmake, all chapters in parallel) | {nb_s:.0f} |",
        f"| the rest (staging, Sphinx build) | {wall - nb_s:.0f} |",
    ])


# -- report ----------------------------------------------------------------------------------------
def write(out: Path, header: list[str], parts: dict[str, str]) -> None:
    titles = {"chapters": "Chapter execution time", "latency": "Explorer latency",
              "weight": "Static weight", "build": "Build", "cbo": "Peers: CBO against cbx",
              "curvature": "Peers: sharpness and Hessian trace against a dense Hessian",
              "scaling": "Scaling"}
    fresh = {titles.get(key, key): body for key, body in parts.items()}
    old = sections(out.read_text() if out.is_file() else "")
    kept = [(title, body) for title, body in old if title not in fresh]  # a run of some sections keeps the others
    order = [title for title, _ in old] + [title for title in fresh if title not in dict(old)]  # (the mutation
    merged = {**dict(old), **fresh}                                                            # score too)
    text = ["# Benchmarks", "", "Written by `make bench` (`benchmarks/bench.py`); do not edit by hand.", ""]
    text += header + ([f"- **kept from the previous results file** (not run by this command): "
                       f"{', '.join(title for title, _ in kept)}"] if kept else []) + [""]
    for title in order:
        text += [f"## {title}", "", merged[title], ""]
    out.write_text("\n".join(text))


def sections(text: str) -> list[tuple[str, str]]:
    """The ``## `` sections of a results file, in order: (title, body without its surrounding blank lines)."""
    found, title, body = [], None, []
    for line in text.split("\n"):
        if line.startswith("## "):
            if title is not None:
                found.append((title, "\n".join(body).strip("\n")))
            title, body = line[3:].strip(), []
        elif title is not None:
            body.append(line)
    if title is not None:
        found.append((title, "\n".join(body).strip("\n")))
    return found


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chapters", nargs="*", help="notebook names (default: every book/*.ipynb)")
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    ap.add_argument("--runs", type=int, default=None, help="runs per chapter (default 3; 1 with --tiny)")
    ap.add_argument("--tiny", action="store_true", help="smoke run: 1 run, thinned grids, small peers, no build")
    ap.add_argument("--combined", action="store_true", help="sweep explorers during the first chapter run")
    ap.add_argument("--grid", type=int, default=None, help="thin each explorer's grid to at most this many points")
    ap.add_argument("--skip-build", action="store_true", help="do not time a clean `make book`")
    ap.add_argument("--executor", default="auto", choices=("auto", "nbclient", "inprocess"))
    ap.add_argument("--timeout", type=float, default=300, help="seconds per notebook run (default 300)")
    ap.add_argument("--budget", type=float, default=0, help="stop starting notebooks after this many seconds")
    ap.add_argument("--note", default="", help="a line to add to the header (gpu_check.sh uses it)")
    ap.add_argument("--scale", default=os.environ.get("LESSONS_SCALE", "quick") or "quick", choices=("quick", "full"))
    ap.add_argument("--device", default=os.environ.get("LESSONS_DEVICE", ""), help="LESSONS_DEVICE for everything")
    ap.add_argument("--site", type=Path, default=None,
                    help="built site to weigh (default: the clean build when timed, else _build/html)")
    ap.add_argument("--out", type=Path, default=HERE / "results.md", help="results file; plots go next to it")
    args = ap.parse_args(argv)
    args.site_given, args.site = args.site, args.site or ROOT / "_build" / "html"
    given = argv if argv is not None else sys.argv[1:]
    args.command = "python benchmarks/bench.py" + "".join(" " + shlex.quote(a) for a in given)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    bad = [s for s in sections if s not in SECTIONS]
    if bad:
        ap.error(f"--sections: unknown {bad}; choose from {', '.join(SECTIONS)}")
    if args.tiny:
        args.runs = args.runs or 1
        args.grid = args.grid or 6
        args.combined = True
        args.skip_build = True
    args.runs = args.runs or 3
    args.executor_name = runner.pick_executor(args.executor)
    if args.device:
        os.environ["LESSONS_DEVICE"] = args.device
    os.environ["LESSONS_SCALE"] = args.scale
    os.environ["LESSONS_STATIC"] = "1"  # no progress bars from the peers (notebook runs set their own)

    from lessons_lib.backend import default_device

    device = default_device()
    nbs = find_notebooks(args.chapters)
    out = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    header = machine_lines(args, str(device)) + ([f"- **note:** {args.note}"] if args.note else [])
    parts: dict[str, str] = {}
    log(f"bench: {len(nbs)} chapter(s), sections {','.join(sections)}, executor {args.executor_name}, "
        f"device {device}, scale {args.scale} -> {out}")

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        if "chapters" in sections or "latency" in sections:
            log("chapters / latency:")

            def progress(times, latency):
                if "chapters" in sections:
                    parts["chapters"] = chapters_markdown(times, args)
                if "latency" in sections:
                    parts["latency"] = latency_markdown(latency, args)
                write(out, header, parts)  # partial results survive an interrupted run

            progress(*chapters_and_latency(nbs, args, Path(tmp), "chapters" in sections, "latency" in sections,
                                           progress))
    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp:
        site = args.site.resolve()
        if "build" in sections:
            log("build:")
            parts["build"] = build_markdown(args, Path(tmp))
            write(out, header, parts)
            if (Path(tmp) / "_build" / "html" / "book").is_dir() and args.site_given is None:
                site = Path(tmp) / "_build" / "html"  # weigh the build just made: current and complete
        if "weight" in sections:
            parts["weight"] = weight_markdown(nbs, site)
            if site != args.site.resolve():
                parts["weight"] = parts["weight"].replace(
                    f"Pages in `{site}`", "Pages of the clean `make book` above (`_build/html` of its copy)")
            write(out, header, parts)
    if "peers" in sections or "scaling" in sections:
        import peers

        log("peers / scaling:")
        if "peers" in sections:
            parts["cbo"] = peers.cbo_peer(tiny=args.tiny, log=log)
            write(out, header, parts)
        widths = [1, 3, 10] if args.tiny else [1, 3, 10, 30, 100, 300] + ([1000] if device.type == "cuda" else [])
        try:
            rows = peers.curvature_peer(widths, device=device, repeats=1 if args.tiny else 3, log=log)
        except Exception as exc:  # noqa: BLE001  (e.g. out of memory: report it, keep the other tables)
            rows = None
            parts["curvature"] = f"Failed: `{type(exc).__name__}: {str(exc)[:300]}`."
        if "peers" in sections and rows is not None:
            parts["curvature"] = peers.curvature_markdown(rows, None, device)
            write(out, header, parts)
        if "scaling" in sections and rows is not None:
            cbo_md, _ = peers.cbo_scaling(tiny=args.tiny, device=device, plot=out.parent / f"{out.stem}-cbo.png",
                                          log=log)
            curv_md, _ = peers.curvature_scaling(rows, out.parent / f"{out.stem}-curvature.png")
            parts["scaling"] = "\n".join([
                "### CBO: time against N·d and steps", "", cbo_md, "",
                f"![CBO scaling]({out.stem}-cbo.png)" if (out.parent / f"{out.stem}-cbo.png").is_file() else "",
                "", "### Curvature tools: time against parameter count", "",
                "Same runs as the peer table above; slopes fitted over the larger half of the sizes.", "",
                curv_md, "", f"![curvature scaling]({out.stem}-curvature.png)"])
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    header.append(f"- **load average at the end:** {load} (well above the core count means other work "
                  "shared the CPU and the times are inflated; rerun on a quiet machine)")
    write(out, header, parts)
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
