"""The process helpers (lessons_lib.distributed): ports, torchrun's environment, launch and its failures."""

from __future__ import annotations

import os
import pathlib
import socket

import pytest

from lessons_lib import distributed as dist


def test_free_port_can_be_bound():
    port = dist.free_port()
    assert 0 < port < 65536
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_worker_env_sets_torchruns_variables_and_one_thread():
    env = dist.worker_env(2, 3, 29511)
    assert (env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"]) == ("2", "3", "2")
    assert (env["MASTER_ADDR"], env["MASTER_PORT"], env["OMP_NUM_THREADS"]) == ("127.0.0.1", "29511", "1")
    assert env["PYTHONPATH"].split(":")[0] == str(dist._ROOT)


def test_backend_follows_the_device():
    assert dist.backend_for("cpu") == "gloo" and dist.backend_for("cuda:0") == "nccl"


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="^rank:"):
        dist.worker_env(3, 3, 29511)
    with pytest.raises(ValueError, match="^world_size:"):
        dist.worker_env(0, 0, 29511)
    with pytest.raises(ValueError, match="^port:"):
        dist.worker_env(0, 2, 70000)
    with pytest.raises(ValueError, match="^module:"):
        dist.launch("not a module", None, world_size=1)
    with pytest.raises(ValueError, match="^timeout:"):
        dist.launch("lessons_lib.dadao", None, world_size=1, timeout=0)


@pytest.mark.slow
def test_a_failing_worker_is_reported_with_its_error():
    with pytest.raises(RuntimeError, match="No module named"):
        dist.launch("lessons_lib.no_such_module", {}, world_size=2, timeout=120)


def _children():
    """The ids of this process's live (or unreaped) children, from /proc."""
    me, out = os.getpid(), []
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me:
            out.append(int(stat.parent.name))
    return out


@pytest.mark.slow
@pytest.mark.skipif(not pathlib.Path("/proc/self/stat").exists(), reason="needs /proc")
def test_a_worker_past_the_timeout_is_killed():
    before = set(_children())
    with pytest.raises(TimeoutError, match="did not finish"):
        dist.launch("lessons_lib.dadao", {"problem": None}, world_size=2, timeout=0.5)
    assert set(_children()) <= before  # every worker was killed and reaped


def test_serve_takes_the_timeout_launch_passes(monkeypatch, tmp_path):
    """serve's process-group timeout is launch's (through LESSONS_DIST_TIMEOUT), not a fixed 60 s."""
    import datetime

    import torch
    import torch.distributed as tdist

    seen = {}
    monkeypatch.setenv(dist.TIMEOUT_VAR, "7.5")
    monkeypatch.setattr(tdist, "init_process_group", lambda backend, timeout: seen.update(timeout=timeout))
    monkeypatch.setattr(tdist, "get_rank", lambda: 0)
    monkeypatch.setattr(tdist, "get_world_size", lambda: 1)
    monkeypatch.setattr(tdist, "barrier", lambda: None)
    monkeypatch.setattr(tdist, "destroy_process_group", lambda: None)
    torch.save({"a": 1}, tmp_path / "payload.pt")
    dist.serve(lambda payload, rank, world: payload["a"] + 1, argv=[str(tmp_path / "payload.pt"), str(tmp_path)])
    assert seen["timeout"] == datetime.timedelta(seconds=7.5)
    assert torch.load(tmp_path / "result-0.pt") == 2
    with pytest.raises(ValueError, match="^timeout:"):
        dist.serve(lambda *a: None, timeout=0.0, argv=[str(tmp_path / "payload.pt"), str(tmp_path)])
