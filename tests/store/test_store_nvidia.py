"""The CUDA JIT-cache capture: managed only when the user configured nothing; snapshot and restore are safe."""

from __future__ import annotations

import os

import pytest

from clmace.core import drivers
from clmace.store.capture import nvidia


@pytest.fixture()
def fresh_setup(monkeypatch):
    """Forget any earlier configuration, and clear the user's CUDA cache variables."""
    monkeypatch.setattr(nvidia, "_setup", None)
    monkeypatch.delenv("CUDA_CACHE_PATH", raising=False)
    monkeypatch.delenv("CUDA_CACHE_DISABLE", raising=False)
    monkeypatch.setattr(drivers, "nvidia_opencl_installed", lambda: True)


def test_managed_dir_snapshot_and_restore(tmp_path, fresh_setup, monkeypatch):
    """clmace's own cache dir is captured file by file and written back where files are missing."""
    setup = nvidia.configure_cache_dir(str(tmp_path / "a"))
    assert setup.managed and setup.path == str(tmp_path / "a" / "cuda")
    (tmp_path / "a" / "cuda" / "sub").mkdir(parents=True)
    (tmp_path / "a" / "cuda" / "index").write_bytes(b"idx")
    (tmp_path / "a" / "cuda" / "sub" / "entry").write_bytes(b"sass")
    blobs = nvidia.snapshot()
    assert blobs == {"cuda/index": b"idx", "cuda/sub/entry": b"sass"}
    monkeypatch.setattr(nvidia, "_setup", nvidia.CudaCacheSetup(str(tmp_path / "b"), managed=True))
    hostile = {"cuda/../../escape": b"x", "pocl/other": b"y"}
    assert nvidia.restore({**blobs, **hostile}) == 2
    assert (tmp_path / "b" / "sub" / "entry").read_bytes() == b"sass"
    assert not (tmp_path / "escape").exists()
    assert nvidia.restore(blobs) == 0  # present files are left alone


def test_no_nvidia_driver_no_change(tmp_path, fresh_setup, monkeypatch):
    """Without NVIDIA's driver nothing is configured."""
    monkeypatch.setattr(drivers, "nvidia_opencl_installed", lambda: False)
    assert not nvidia.configure_cache_dir(str(tmp_path)).managed and "CUDA_CACHE_PATH" not in os.environ


@pytest.mark.parametrize("var,value", [("CUDA_CACHE_PATH", "/somewhere"), ("CUDA_CACHE_DISABLE", "1")])
def test_user_settings_are_left_alone(tmp_path, fresh_setup, monkeypatch, var, value):
    """A user who configured the CUDA cache keeps it: nothing is captured or restored."""
    monkeypatch.setenv(var, value)
    setup = nvidia.configure_cache_dir(str(tmp_path))
    assert not setup.managed and not (tmp_path / "cuda").exists()
    assert nvidia.snapshot() == {} and nvidia.restore({"cuda/x": b"1"}) == 0


def test_sections_restore_only_for_the_gpu_and_driver_present(monkeypatch):
    """Before OpenCL starts, a section is matched against the GPUs and driver the kernel module reports."""
    from types import SimpleNamespace

    h200 = SimpleNamespace(device_name="NVIDIA H200", driver_version="550.54.15")
    monkeypatch.setattr(nvidia, "proc_gpus", lambda: ({"NVIDIA H200"}, "NVRM version: NVIDIA UNIX x86_64 Kernel "
                                                                       "Module  550.54.15  Tue Mar 5 2024"))
    assert nvidia.present(h200)
    assert not nvidia.present(SimpleNamespace(device_name="NVIDIA A100", driver_version="550.54.15"))
    assert not nvidia.present(SimpleNamespace(device_name="NVIDIA H200", driver_version="535.104.05"))
    monkeypatch.setattr(nvidia, "proc_gpus", lambda: (set(), ""))
    assert not nvidia.present(h200)
