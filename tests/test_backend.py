import pytest
import torch

from lessons_lib import backend


def test_default_device_cpu_override(monkeypatch):
    monkeypatch.setenv("LESSONS_DEVICE", "cpu")
    assert backend.default_device() == torch.device("cpu")


def test_default_device_auto(monkeypatch):
    monkeypatch.delenv("LESSONS_DEVICE")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert backend.default_device().type == expected


def test_default_device_bad_name(monkeypatch):
    monkeypatch.setenv("LESSONS_DEVICE", "tpu-please")
    with pytest.raises(ValueError, match="LESSONS_DEVICE"):
        backend.default_device()


@pytest.mark.parametrize("name", ["mps", "meta", "xpu:0"])
def test_default_device_rejects_devices_the_book_does_not_run_on(monkeypatch, name):
    monkeypatch.setenv("LESSONS_DEVICE", name)
    with pytest.raises(ValueError, match=rf"^LESSONS_DEVICE='{name}': the book runs on 'cpu' or 'cuda\[:n\]'"):
        backend.default_device()


@pytest.mark.parametrize("name", ["cpu", "cpu:0", " cpu "])
def test_default_device_accepts_the_cpu(monkeypatch, name):
    monkeypatch.setenv("LESSONS_DEVICE", name)
    assert backend.default_device().type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error path")
def test_default_device_cuda_unavailable(monkeypatch):
    monkeypatch.setenv("LESSONS_DEVICE", "cuda")
    with pytest.raises(ValueError, match="LESSONS_DEVICE.*CUDA"):
        backend.default_device()


def test_as_generator_seed_is_deterministic():
    a = torch.randn(5, generator=backend.as_generator(7, "cpu"))
    b = torch.randn(5, generator=backend.as_generator(7, "cpu"))
    c = torch.randn(5, generator=backend.as_generator(8, "cpu"))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_as_generator_passes_generator_through_and_leaves_global_state():
    g = torch.Generator().manual_seed(3)
    assert backend.as_generator(g) is g
    state = torch.random.get_rng_state()
    torch.randn(3, generator=backend.as_generator(1, "cpu"))
    assert torch.equal(state, torch.random.get_rng_state())


@pytest.mark.parametrize("bad", [None, -1, 1.5, "3", True])
def test_as_generator_bad_input(bad):
    with pytest.raises(ValueError, match="seed_or_generator"):
        backend.as_generator(bad, "cpu")


def test_as_generator_device_mismatch():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA to build a generator on another device")
    with pytest.raises(ValueError, match="generator"):
        backend.as_generator(torch.Generator(device="cuda"), "cpu")


def test_scale(monkeypatch):
    assert backend.scale() == "quick"
    assert backend.pick(1, 2) == 1
    monkeypatch.setenv("LESSONS_SCALE", "full")
    assert backend.scale() == "full"
    assert backend.pick(1, 2) == 2
    monkeypatch.setenv("LESSONS_SCALE", "huge")
    with pytest.raises(ValueError, match="LESSONS_SCALE"):
        backend.scale()


def test_static_build_flag(monkeypatch):
    assert not backend.static_build()
    monkeypatch.setenv("LESSONS_STATIC", "1")
    assert backend.static_build()
    assert list(backend.progress(range(3))) == [0, 1, 2]
    # a caller's own disable flag is accepted in both modes (it used to be passed to tqdm twice)
    assert list(backend.progress(range(2), disable=True)) == [0, 1]
    monkeypatch.setenv("LESSONS_STATIC", "0")
    assert list(backend.progress(range(2), disable=False)) == [0, 1]


def test_as_tensor_rejects_nan_and_junk():
    with pytest.raises(ValueError, match="x0: contains NaN"):
        backend.as_tensor([1.0, float("nan")], name="x0")
    with pytest.raises(ValueError, match="x0: cannot be converted"):
        backend.as_tensor("abc", name="x0")
    t = backend.as_tensor([1, 2], name="x0")
    assert t.dtype == torch.float64 and t.device.type == "cpu"


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "x"])
def test_check_positive(bad):
    with pytest.raises(ValueError, match="lr"):
        backend.check_positive(bad, name="lr")
    assert backend.check_positive(0, name="lr", allow_zero=True) == 0.0


def test_check_count():
    assert backend.check_count(3, name="steps") == 3
    for bad in (0, -2, 1.0, True):
        with pytest.raises(ValueError, match="steps"):
            backend.check_count(bad, name="steps")



def _record_type():
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Rec:
        x: torch.Tensor
        parts: list
        info: dict
        name: str = "r"

    return Rec


def test_to_host_leaves_host_records_alone():
    Rec = _record_type()
    cpu = torch.arange(3.0)
    r = Rec(cpu, [torch.ones(1), 3], {"y": torch.ones(2)})
    backend.to_host(r)
    assert r.x is cpu and r.parts[1] == 3 and r.name == "r"  # already on the host: no copy


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_to_host_moves_record_tensors_in_place():
    from lessons_lib.descent import Trajectory

    Rec = _record_type()
    r = Rec(torch.zeros(2, device="cuda"), [torch.ones(1, device="cuda"), 3], {"y": torch.ones(3, device="cuda")})
    backend.to_host(r)
    assert r.x.device.type == r.parts[0].device.type == r.info["y"].device.type == "cpu"
    traj = Trajectory(torch.zeros(3, 2, device="cuda"), torch.zeros(3, device="cuda"), 0.1)
    assert traj.params.device.type == traj.loss.device.type == "cpu"


@pytest.mark.parametrize("value, expected", [("on", True), ("1", True), ("off", False), ("0", False), ("", False)])
def test_static_build_understands_on_and_off(monkeypatch, value, expected):
    monkeypatch.setenv("LESSONS_STATIC", value)
    assert backend.static_build() is expected


def test_static_build_refuses_an_unknown_value(monkeypatch):
    monkeypatch.setenv("LESSONS_STATIC", "sure")  # used to mean "live explorers" silently
    with pytest.raises(ValueError, match="LESSONS_STATIC"):
        backend.static_build()


def test_as_tensors_promotes_mixed_dtypes_and_refuses_bools():
    u, v = backend.as_tensors(u=torch.ones(2, dtype=torch.float32), v=torch.ones(2, dtype=torch.int64))
    assert u.dtype == v.dtype == torch.float64
    with pytest.raises(ValueError, match="^v:"):
        backend.as_tensors(u=torch.ones(2), v=True)
    with pytest.raises(ValueError, match="^flag:"):
        backend.check_flag("yes", name="flag")


def test_counts_start_at_one_by_default_and_progress_honours_disable():
    assert backend.check_count(1, name="n") == 1
    with pytest.raises(ValueError, match="^n:"):
        backend.check_count(0, name="n")
    assert backend.progress(range(3), disable=True).disable
    assert list(backend.progress(range(3), disable=True)) == [0, 1, 2]
