"""Execute one chapter notebook headless and report its time as JSON (used by ``bench.py``).

    python benchmarks/runner.py book/stability.ipynb [--executor auto|nbclient|inprocess]
                                [--timeout 300] [--json out.json] [-v]

Two executors:

* ``nbclient`` runs the notebook in a real IPython kernel, as ``make book`` does (via nbmake);
* ``inprocess`` needs no Jupyter at all: it reads the ``.ipynb`` JSON and executes the code cells in
  order in one namespace, like a kernel would. The value of a cell's last expression is "displayed"
  (its ``_repr_mimebundle_``/``_repr_html_`` is called, so explorers render), open matplotlib figures
  are rendered to PNG and closed at the end of each cell (as the inline backend does), ``%`` and
  ``!`` lines are skipped, and ``IPython.display`` is stubbed when IPython is missing.

``auto`` picks nbclient when it and ipykernel are importable, else inprocess. The first failing cell
(reported as "code cell i", counting code cells from 0, with its first line) stops the notebook; the
error is reported in the JSON (``ok: false``), never raised, so a caller can carry on with the next
chapter. The caller enforces the wall-clock timeout (``bench.py`` runs this script in a subprocess).
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import io
import json
import os
import sys
import time
import traceback
import types
from pathlib import Path


def available(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def pick_executor(name: str = "auto") -> str:
    if name not in ("auto", "nbclient", "inprocess"):
        raise ValueError(f"executor: expected 'auto', 'nbclient' or 'inprocess', got {name!r}")
    if name == "auto":
        return "nbclient" if available("nbclient") and available("ipykernel") else "inprocess"
    return name


# -- in-process executor ----------------------------------------------------------------------------
def _display(*objs, **_kwargs) -> None:
    """What a notebook front end does with a displayed object, minus the front end: build its HTML."""
    for obj in objs:
        if obj is None:
            continue
        if hasattr(obj, "_repr_mimebundle_"):
            obj._repr_mimebundle_()
        elif hasattr(obj, "_repr_html_"):
            obj._repr_html_()
        elif hasattr(obj, "savefig"):  # a matplotlib Figure as the cell's value
            _render_figure(obj)


class _Rich:
    """Minimal stand-in for IPython.display.HTML / Markdown / Math / Latex."""

    def __init__(self, data=None, *args, **kwargs):
        self.data = data

    def _repr_html_(self):
        return str(self.data)


def _stub_ipython() -> None:
    """Install a tiny ``IPython.display`` when IPython is not installed."""
    ipy = types.ModuleType("IPython")
    disp = types.ModuleType("IPython.display")
    disp.display = _display
    disp.HTML = disp.Markdown = disp.Math = disp.Latex = _Rich
    disp.clear_output = lambda *a, **k: None
    ipy.display = disp
    ipy.get_ipython = lambda: None  # "no shell": matplotlib and tqdm then behave as in a script
    ipy.version_info = (8, 24, 0, "stub")  # matplotlib asks before it looks for a shell
    sys.modules["IPython"] = ipy
    sys.modules["IPython.display"] = disp


def _render_figure(fig) -> None:
    import matplotlib.pyplot as plt

    fig.savefig(io.BytesIO(), format="png")
    plt.close(fig)


def _flush_figures() -> None:
    import matplotlib.pyplot as plt

    for num in plt.get_fignums():
        _render_figure(plt.figure(num))


def _cell_source(cell) -> str:
    src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
    if src.lstrip().startswith("%%"):
        return ""  # a cell magic: the whole cell belongs to it
    return "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in src.splitlines())


def _first_line(cell) -> str:
    """The first non-blank source line of a cell, shortened: names the failing cell in reports."""
    src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
    line = next((ln.strip() for ln in src.splitlines() if ln.strip()), "")
    return line if len(line) <= 40 else line[:37] + "..."


def run_inprocess(path: Path, *, verbose: bool = False, setup: str = "") -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if available("IPython"):
        import IPython.display

        IPython.display.display = _display  # no shell: show rich output the way a front end would
    else:
        _stub_ipython()
    plt.show = lambda *a, **k: _flush_figures()  # the inline backend renders shown figures

    nb = json.loads(path.read_text(encoding="utf-8"))
    cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    namespace: dict = {"__name__": "__main__", "display": _display}
    if setup:
        exec(compile(setup, "<setup>", "exec"), {"__name__": "__setup__"})
    cell_times: list[float] = []
    old_cwd = os.getcwd()
    os.chdir(path.parent)
    sys.path.insert(0, str(path.parent))
    t_start = time.perf_counter()
    try:
        for i, cell in enumerate(cells):
            t0 = time.perf_counter()
            try:
                tree = ast.parse(_cell_source(cell), filename=f"<{path.name} cell {i}>")
                last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
                exec(compile(tree, f"<{path.name} cell {i}>", "exec"), namespace)
                if last is not None:
                    value = eval(compile(ast.Expression(last.value), f"<{path.name} cell {i}>", "eval"), namespace)
                    _display(value)
                _flush_figures()
            except BaseException as exc:  # noqa: BLE001  (reported, not raised: the caller goes on)
                if isinstance(exc, KeyboardInterrupt):
                    raise
                cell_times.append(time.perf_counter() - t0)
                return {"ok": False, "seconds": time.perf_counter() - t_start, "cells": cell_times,
                        "error": f"code cell {i} ({_first_line(cell)}): {type(exc).__name__}: {exc}",
                        "traceback": traceback.format_exc(limit=-4)}
            cell_times.append(time.perf_counter() - t0)
            if verbose:
                print(f"    cell {i:2d}: {cell_times[-1]:6.2f} s", flush=True)
    finally:
        os.chdir(old_cwd)
    return {"ok": True, "seconds": time.perf_counter() - t_start, "cells": cell_times, "error": None}


# -- nbclient executor ------------------------------------------------------------------------------
def run_nbclient(path: Path, *, timeout: float, verbose: bool = False, setup: str = "") -> dict:
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    if setup:
        nb.cells.insert(0, nbformat.v4.new_code_cell(setup))
    client = nbclient.NotebookClient(nb, timeout=int(timeout), kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    t0 = time.perf_counter()
    try:
        client.execute()
    except Exception as exc:  # noqa: BLE001  (CellExecutionError, timeouts, dead kernels)
        first = str(exc).strip().splitlines()
        return {"ok": False, "seconds": time.perf_counter() - t0, "cells": [],
                "error": f"{type(exc).__name__}: {first[-1] if first else ''}"[:500],
                "traceback": str(exc)[-3000:]}
    return {"ok": True, "seconds": time.perf_counter() - t0, "cells": [], "error": None}


def run(path: Path, *, executor: str = "auto", timeout: float = 300, verbose: bool = False,
        setup: str = "") -> dict:
    executor = pick_executor(executor)
    if executor == "nbclient":
        out = run_nbclient(path, timeout=timeout, verbose=verbose, setup=setup)
    else:
        out = run_inprocess(path, verbose=verbose, setup=setup)
    return {"notebook": path.stem, "executor": executor, **out}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebook", type=Path)
    ap.add_argument("--executor", default="auto", choices=("auto", "nbclient", "inprocess"))
    ap.add_argument("--timeout", type=float, default=300, help="seconds (nbclient's per-cell limit)")
    ap.add_argument("--json", type=Path, help="write the result here (default: stdout)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print each cell's time")
    ap.add_argument("--setup", default="", help="code run before the first cell (bench.py installs its hooks)")
    args = ap.parse_args(argv)
    result = run(args.notebook.resolve(), executor=args.executor, timeout=args.timeout, verbose=args.verbose,
                 setup=args.setup)
    text = json.dumps(result)
    if args.json:
        args.json.write_text(text)
    else:
        print(text)
    if not result["ok"]:
        print(f"{args.notebook.name}: {result['error']}", file=sys.stderr)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
