"""Every chapter runs unchanged on a GPU: checked on the CPU with the device audit (tests/device_audit.py).

The audit labels tensors by where they were made (``LESSONS_DEVICE=cpu:0``) and raises where CUDA would:
NumPy conversion of a default-device tensor, or an operation mixing default-device and host tensors.
``make test`` runs it inside its one execution of each chapter (nbmake, kernels started with the audit's
IPython startup file). The tests here show that the audit catches both faults and passes clean code, that a
kernel started as the Makefile starts it runs under the audit (and dies when the audit cannot start, rather
than run the chapter unaudited), and that the Makefile does start it so. The
last test audits one chapter on its own (``pytest tests/test_device_audit.py -k <chapter>``); it is marked
``slow`` and ``notebook``, since ``make test`` already audits every chapter in its notebook run.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import device_audit  # noqa: E402

sys.path.insert(0, str(ROOT / "tools"))
from course import ordered_chapters  # noqa: E402

CHAPTERS = ordered_chapters(ROOT / "book")


@pytest.fixture
def audited(monkeypatch):
    """Run the test body under the audit, with the default device the audit's ``cpu:0``."""
    monkeypatch.setenv("LESSONS_DEVICE", "cpu:0")
    with device_audit.Mode():
        yield


def dev():
    from lessons_lib import backend

    return backend.default_device()


def test_audit_flags_numpy_of_a_device_tensor(audited):
    with pytest.raises(TypeError, match="AUDIT: can't convert a default-device tensor to numpy"):
        torch.ones(3, device=dev()).numpy()


def test_audit_flags_mixing_device_and_host_tensors(audited):
    with pytest.raises(RuntimeError, match="AUDIT: add mixes default-device and host"):
        torch.ones(3, device=dev()) + torch.ones(3)


def test_audit_passes_clean_code_and_catches_records_left_on_the_device(audited, monkeypatch):
    from lessons_lib import backend, quadratic

    x = torch.ones(3, device=dev()) * 2 + torch.tensor(1.0)  # a host scalar may join a device tensor
    assert x.cpu().numpy().sum() == 9
    expected = 0.8 ** torch.arange(4.0).double()
    traj = quadratic.gd_scalar(2.0, 1.0, lr=0.1, steps=3)  # its record comes back on the host
    assert torch.allclose(traj.params[:, 0], expected)
    # without backend.to_host the same trajectory stays on the device, and the comparison with a host tensor fails
    monkeypatch.setattr(backend, "to_host", lambda record: None)
    traj = quadratic.gd_scalar(2.0, 1.0, lr=0.1, steps=3)
    with pytest.raises(RuntimeError, match="AUDIT: allclose mixes"):
        torch.allclose(traj.params[:, 0], expected)


PROBE = [
    "names = [k for k in dir() if not k.startswith('_')]\nimport torch\nfrom lessons_lib import backend\n"
    "print(backend.default_device(), names)",
    "torch.ones(3, device=backend.default_device()).numpy()",
]


@pytest.mark.slow  # a kernel start: about 4 s on an idle machine
def test_a_kernel_started_as_the_makefile_starts_it_runs_under_the_audit(tmp_path):
    path = tmp_path / "probe.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in PROBE]), path)
    out = device_audit.run(path)
    assert not out["ok"] and "AUDIT: can't convert" in out["error"], out["error"]
    first = out["nb"].cells[0].outputs[0]["text"]
    assert first.startswith("cpu:0 ") and "audit" not in first, first  # the startup file leaves no name behind
    assert not (device_audit.KERNEL_DIR / "profile_default" / "history.sqlite").exists()


@pytest.mark.slow  # a kernel start
def test_a_kernel_whose_audit_cannot_start_dies_instead_of_running_unaudited(tmp_path):
    import nbclient

    path = tmp_path / "probe.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")]), path)
    env = device_audit.kernel_env()
    env["LESSONS_DEVICE"] = "cpu"  # activate() refuses to audit on a device that is not the audit's cpu:0
    client = nbclient.NotebookClient(nbformat.read(path, as_version=4), kernel_name="python3", timeout=60)
    try:
        with pytest.raises(RuntimeError, match="Kernel died"):
            client.execute(env=env)
    finally:
        atexit.unregister(client._cleanup_kernel)  # nbclient's exit hook would find no kernel to clean up


@pytest.mark.skipif(not shutil.which("make"), reason="needs make")
def test_make_test_executes_the_chapters_under_the_audit():
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}  # not make's
    recipe = subprocess.run(["make", "-n", "-o", ".venv/.installed", "-o", "stage", "test"], cwd=ROOT, env=env,
                            capture_output=True, text=True, check=True).stdout
    execute = [line for line in recipe.replace("\\\n", " ").splitlines() if " --nbmake " in line]
    assert len(execute) == 1, recipe  # each chapter is executed once (the student run is the course test's)
    env = dict(re.findall(r"\b([A-Z_]+)=(\S+)", execute[0].split("python -m pytest")[0]))
    expected = device_audit.kernel_env({}, audit=True)
    for key in ("LESSONS_DEVICE_AUDIT", "LESSONS_DEVICE", "LESSONS_STATIC"):
        assert env.get(key) == expected[key], (key, execute[0])
    assert Path(env["IPYTHONDIR"]).resolve() == device_audit.KERNEL_DIR
    assert (device_audit.KERNEL_DIR / "profile_default" / "startup" / "00-device-audit.py").is_file()


@pytest.mark.slow
@pytest.mark.notebook
@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_runs_unchanged_on_another_device(path):
    out = device_audit.run(path)
    assert out["ok"], f"device audit of {path.name}: {out['error']}"
