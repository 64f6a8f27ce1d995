"""One reading of --device (train.model.resolve_device): training, explain, predict and torchrun all use it."""
from __future__ import annotations

import pytest
import torch

from train.model import Device, DeviceError, resolve_device


def test_auto_is_cuda_when_there_else_cpu():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert Device.resolve("auto").device.type == resolve_device("auto").type


@pytest.mark.skipif(torch.cuda.is_available(), reason="refusal needs a machine without CUDA")
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_cuda_without_cuda_is_refused_naming_the_choices(name):
    with pytest.raises(DeviceError, match="cpu or auto"):
        resolve_device(name)
    with pytest.raises(DeviceError):
        Device.resolve(name)
