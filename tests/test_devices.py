"""Which device and dtype a network runs on (pipeline/imaging/devices.py): auto never asks for what is not there, and a
device asked for by name that is not there is an error naming the setting."""

import pytest
import torch

from pipeline.imaging import devices
from pipeline.engine.artifacts import StageError


def test_auto_is_the_cpu_without_cuda_or_mps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert devices.pick_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert devices.pick_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert devices.pick_device("auto") == torch.device("cuda"), "CUDA first"


def test_a_missing_device_asked_for_by_name_is_an_error_naming_the_setting(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(StageError, match=r"parametric.device=cuda but no CUDA device"):
        devices.pick_device("cuda", "parametric.device")
    with pytest.raises(StageError, match=r"extract.device=mps but torch reports no MPS device"):
        devices.pick_device("mps")
    assert devices.pick_device("cpu") == torch.device("cpu")


def test_dtype_auto_is_fp32_on_a_cpu_and_a_name_is_kept():
    cpu = torch.device("cpu")
    assert devices.pick_dtype("auto", cpu) == torch.float32
    assert devices.pick_dtype("bf16", cpu) == torch.bfloat16 and devices.pick_dtype("fp32", cpu) == torch.float32
    with pytest.raises(StageError, match="auto, fp32 or bf16"):
        devices.pick_dtype("fp16", cpu)
    assert devices.native_bf16(torch.device("mps")) is False, "never claimed for MPS"
