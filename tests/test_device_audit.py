"""Every chapter runs unchanged on a GPU: checked on the CPU with the device audit (tests/device_audit.py).

The audit runs each notebook with ``LESSONS_DEVICE=cpu:0`` and labels tensors by where they were made,
raising where CUDA would: NumPy conversion of a default-device tensor, or an operation mixing
default-device and host tensors. The first three tests show that it catches both and passes clean code.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
AUDIT = ROOT / "tests" / "device_audit.py"
CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))


def audit(path: Path, **env) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg", **env}
    return subprocess.run([sys.executable, str(AUDIT), str(path)], capture_output=True, text=True,
                          env=full_env, timeout=600, cwd=ROOT)


def notebook(tmp_path: Path, *cells: str) -> Path:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    path = tmp_path / "probe.ipynb"
    nbformat.write(nb, path)
    return path


SETUP = "import torch\nfrom lessons_lib import backend, quadratic\ndev = backend.default_device()"


def test_audit_flags_numpy_of_a_device_tensor(tmp_path):
    out = audit(notebook(tmp_path, SETUP, "torch.ones(3, device=dev).numpy()"))
    assert out.returncode == 1 and "to numpy" in out.stdout, out.stdout + out.stderr


def test_audit_flags_mixing_device_and_host_tensors(tmp_path):
    out = audit(notebook(tmp_path, SETUP, "torch.ones(3, device=dev) + torch.ones(3)"))
    assert out.returncode == 1 and "mixes default-device and host" in out.stdout, out.stdout + out.stderr


def test_audit_passes_clean_code_and_catches_records_left_on_the_device(tmp_path):
    clean = notebook(tmp_path, SETUP,
                     "x = torch.ones(3, device=dev) * 2\nassert x.cpu().numpy().sum() == 6\n"
                     "traj = quadratic.gd_scalar(2.0, 1.0, lr=0.1, steps=3)\n"
                     "assert torch.allclose(traj.params[:, 0], 0.8 ** torch.arange(4.0).double())")
    out = audit(clean)
    assert out.returncode == 0, out.stdout + out.stderr
    # without backend.to_host the same trajectory stays on the device, and the comparison with a host tensor fails
    out = audit(clean, AUDIT_NO_HOST="1")
    assert out.returncode == 1 and "allclose" in out.stdout, out.stdout + out.stderr


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_runs_unchanged_on_another_device(path):
    out = audit(path)
    assert out.returncode == 0, f"device audit of {path.name}:\n{out.stdout[-4000:]}\n{out.stderr[-2000:]}"
